// shmframes.hpp: a C++17 header-only wrapper over shmframes.h (docs/c.md).
//
//   shmframes::Writer writer("cam", shmframes::WriterOptions(1280, 720));
//   shmframes::Slot slot = writer.slot();           // room for a frame, in shared memory
//   std::memset(slot.data(), 0x80, slot.size());     // draw or decode straight into it
//   slot.publish();
//
//   shmframes::Reader reader("cam", shmframes::ReaderOptions().wait_for(std::chrono::seconds(5)));
//   if (auto frame = reader.read(std::chrono::milliseconds(500)))
//       std::printf("#%llu %ux%u\n", (unsigned long long)frame->seq(), frame->width(), frame->height());
//
// RAII: Writer, Reader, Slot, Frame and Cancel free their handle when destroyed (a writer ends
// its stream, an unpublished slot is discarded, a frame is released); they move, never copy.
// Errors are exceptions of one hierarchy, shmframes::Error, whose classes mirror the Rust
// `shmframes::Error` variants and the Python exceptions (ProducerGone, EndOfStream, ...).
// "Nothing in time" is not an error: read() returns an empty std::optional (next() throws
// Timeout instead). Include OpenCV's core header first to get to_mat(frame) / to_mat(slot):
// a cv::Mat over the pixels in place, no copy.
// Thread safety as in shmframes.h: one thread at a time per Writer/Slot/Reader/Frame; a
// Cancel fires from any thread.

#ifndef SHMFRAMES_HPP
#define SHMFRAMES_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "shmframes.h"

namespace shmframes {

// ---- errors -----------------------------------------------------------------------------

// Every shmframes error: code() is the C result, what() the message (what to do included).
class Error : public std::runtime_error {
public:
    Error(shmframes_result code, const std::string& message)
        : std::runtime_error(message), code_(code) {}
    shmframes_result code() const noexcept { return code_; }

private:
    shmframes_result code_;
};

// Mistakes in what was passed: NULL, sizes, formats, options (Python: ValueError, TypeError).
struct InvalidArgument : Error { using Error::Error; };
// The slot was published or discarded, the frame released, the reader or writer closed.
struct Closed : Error { using Error::Error; };
// No channel of that name (Python: ChannelNotFound, a FileNotFoundError).
struct ChannelNotFound : Error { using Error::Error; };
// The name is taken by a segment a new producer may not replace (Python: NameTaken).
struct NameTaken : Error { using Error::Error; };
// A live producer owns the name (Python: ProducerAlive, a NameTaken).
struct ProducerAlive : NameTaken { using NameTaken::NameTaken; };
// Every reader place is taken (Python: ChannelBusy).
struct ChannelBusy : Error { using Error::Error; };
// The producer died without ending the stream (Python: ProducerGone).
struct ProducerGone : Error { using Error::Error; };
// The producer ended the stream; every frame was read (Python: EndOfStream, an EOFError).
struct EndOfStream : Error { using Error::Error; };
// The segment breaks the protocol, or raw frames of another size (Python: ProtocolError).
struct ProtocolError : Error { using Error::Error; };
// /dev/shm cannot hold the channel (Python: NoSpace).
struct NoSpace : Error { using Error::Error; };
// Permission denied (Python: PermissionDenied).
struct PermissionDenied : Error { using Error::Error; };
// This reader holds every slot: release a frame first (Python: HoldsEverySlot).
struct HoldsEverySlot : Error { using Error::Error; };
// Used in a child made by fork() (Python: ForkedChild).
struct ForkedChild : Error { using Error::Error; };
// A wait ended by a Cancel (Python: KeyboardInterrupt's place).
struct Interrupted : Error { using Error::Error; };
// Reader::next() found no frame in time.
struct Timeout : Error { using Error::Error; };
// A bug in shmframes (a Rust panic caught at the boundary), or another OS error.
struct InternalError : Error { using Error::Error; };

namespace detail {

[[noreturn]] inline void throw_error(shmframes_result r) {
    std::string m = shmframes_last_error_message();
    switch (r) {
    case SHMFRAMES_TIMEOUT: throw Timeout(r, m);
    case SHMFRAMES_ERR_NULL_ARGUMENT:
    case SHMFRAMES_ERR_INVALID_ARGUMENT:
    case SHMFRAMES_ERR_SLOT_OPEN:
    case SHMFRAMES_ERR_INVALID_NAME:
    case SHMFRAMES_ERR_CONFIG:
    case SHMFRAMES_ERR_WRONG_FRAME_SIZE: throw InvalidArgument(r, m);
    case SHMFRAMES_ERR_SLOT_DONE:
    case SHMFRAMES_ERR_FRAME_RELEASED:
    case SHMFRAMES_ERR_CLOSED: throw Closed(r, m);
    case SHMFRAMES_ERR_CHANNEL_NOT_FOUND: throw ChannelNotFound(r, m);
    case SHMFRAMES_ERR_PRODUCER_ALIVE: throw ProducerAlive(r, m);
    case SHMFRAMES_ERR_NAME_TAKEN: throw NameTaken(r, m);
    case SHMFRAMES_ERR_CHANNEL_BUSY: throw ChannelBusy(r, m);
    case SHMFRAMES_ERR_PRODUCER_GONE: throw ProducerGone(r, m);
    case SHMFRAMES_ERR_END_OF_STREAM: throw EndOfStream(r, m);
    case SHMFRAMES_ERR_PROTOCOL:
    case SHMFRAMES_ERR_RAW_SHAPE: throw ProtocolError(r, m);
    case SHMFRAMES_ERR_HOLDS_EVERY_SLOT: throw HoldsEverySlot(r, m);
    case SHMFRAMES_ERR_FORKED_CHILD: throw ForkedChild(r, m);
    case SHMFRAMES_ERR_INTERRUPTED: throw Interrupted(r, m);
    case SHMFRAMES_ERR_NO_SPACE: throw NoSpace(r, m);
    case SHMFRAMES_ERR_PERMISSION_DENIED: throw PermissionDenied(r, m);
    default: throw InternalError(r, m);
    }
}

// Throws unless OK; returns whether it was OK (false: SHMFRAMES_TIMEOUT).
inline bool check(shmframes_result r) {
    if (r == SHMFRAMES_OK) return true;
    if (r == SHMFRAMES_TIMEOUT) return false;
    throw_error(r);
}

// A std::chrono duration as the C API's nanoseconds; std::nullopt waits for ever.
using Timeout_t = std::optional<std::chrono::nanoseconds>;
inline int64_t ns(const Timeout_t& t) {
    if (!t) return SHMFRAMES_FOREVER;
    return t->count() < 0 ? 0 : static_cast<int64_t>(t->count());
}

template <class T, void (*Free)(T*)>
class Handle {
public:
    Handle() = default;
    explicit Handle(T* p) : p_(p) {}
    Handle(Handle&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) reset(std::exchange(o.p_, nullptr));
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(nullptr); }
    T* get() const noexcept { return p_; }
    void reset(T* p) noexcept {
        if (p_) Free(p_);
        p_ = p;
    }

private:
    T* p_ = nullptr;
};

}  // namespace detail

// Waits for ever (the default of every blocking call).
inline constexpr std::nullopt_t forever = std::nullopt;

enum class Format : uint32_t {
    BGR = SHMFRAMES_FORMAT_BGR, RGB = SHMFRAMES_FORMAT_RGB, GRAY = SHMFRAMES_FORMAT_GRAY,
    RGBA = SHMFRAMES_FORMAT_RGBA, BGRA = SHMFRAMES_FORMAT_BGRA, NV12 = SHMFRAMES_FORMAT_NV12,
    I420 = SHMFRAMES_FORMAT_I420, YUYV = SHMFRAMES_FORMAT_YUYV,
};

inline std::string format_name(Format f) {
    const char* n = shmframes_format_name(static_cast<uint32_t>(f));
    return n ? n : "unknown";
}

// "bgr", "gray", "yuy2", ... as the tools spell them.
inline Format parse_format(const std::string& name) {
    uint32_t f = 0;
    detail::check(shmframes_format_parse(name.c_str(), &f));
    return static_cast<Format>(f);
}

// CLOCK_MONOTONIC nanoseconds, the clock of every frame timestamp.
inline uint64_t monotonic_ns() { return shmframes_monotonic_ns(); }

// Ends blocking calls from another thread: give it to options (or set_cancel), call fire().
class Cancel {
public:
    Cancel() {
        shmframes_cancel* c = nullptr;
        detail::check(shmframes_cancel_new(&c));
        h_ = decltype(h_)(c);
    }
    void fire() const { detail::check(shmframes_cancel_fire(h_.get())); }
    bool fired() const { return shmframes_cancel_is_fired(h_.get()); }
    const shmframes_cancel* get() const noexcept { return h_.get(); }

private:
    detail::Handle<shmframes_cancel, shmframes_cancel_free> h_;
};

using ReaderInfo = shmframes_reader_info;

// The live readers of a channel, without becoming one.
inline std::vector<ReaderInfo> readers(const std::string& name) {
    size_t n = 0;
    detail::check(shmframes_readers(name.c_str(), nullptr, 0, &n));
    std::vector<ReaderInfo> v(n + 4);
    detail::check(shmframes_readers(name.c_str(), v.data(), v.size(), &n));
    v.resize(n < v.size() ? n : v.size());
    return v;
}

// ---- writing ------------------------------------------------------------------------------

enum class WhenFull : uint32_t { Drop = SHMFRAMES_WHEN_FULL_DROP, Wait = SHMFRAMES_WHEN_FULL_WAIT };

struct WriterOptions {
    shmframes_writer_options c{};
    WriterOptions(uint32_t width, uint32_t height, Format format = Format::BGR) {
        detail::check(shmframes_writer_options_init(&c, width, height, static_cast<uint32_t>(format)));
    }
    WriterOptions& stride(uint32_t bytes) { c.shape.stride = bytes; return *this; }
    WriterOptions& buffer_frames(uint32_t n) { c.buffer_frames = n; return *this; }
    WriterOptions& max_readers(uint32_t n) { c.max_readers = n; return *this; }
    WriterOptions& when_full(WhenFull w) { c.when_full = static_cast<uint32_t>(w); return *this; }
    WriterOptions& raw(bool on = true) { c.raw = on; return *this; }
    WriterOptions& mode(uint32_t bits) { c.mode = bits; return *this; }
    WriterOptions& cancel(const Cancel& k) { c.cancel = k.get(); return *this; }
};

// Room for one frame, in shared memory: fill data(), then publish(). Destroyed unpublished,
// the frame is discarded. While a Slot is open its Writer takes no other call.
class Slot {
public:
    Slot() = default;
    Slot(shmframes_slot* s, const shmframes_shape& shape) : h_(s), shape_(shape) {}
    explicit operator bool() const noexcept { return h_.get() != nullptr; }
    uint8_t* data() const {
        uint8_t* d = nullptr;
        detail::check(shmframes_slot_pixels(h_.get(), &d, nullptr));
        return d;
    }
    size_t size() const {
        size_t n = 0;
        detail::check(shmframes_slot_pixels(h_.get(), nullptr, &n));
        return n;
    }
    // Copies one frame's bytes in (exactly size() bytes).
    void write(const void* pixels, size_t len) {
        detail::check(shmframes_slot_write(h_.get(), static_cast<const uint8_t*>(pixels), len));
    }
    uint64_t seq() const {
        uint64_t s = 0;
        detail::check(shmframes_slot_seq(h_.get(), &s));
        return s;
    }
    void set_seq(uint64_t seq) { detail::check(shmframes_slot_set_seq(h_.get(), seq)); }
    void set_capture_ns(uint64_t ns) { detail::check(shmframes_slot_set_capture_ns(h_.get(), ns)); }
    // Makes the frame visible to readers; returns its sequence number.
    uint64_t publish() {
        uint64_t s = 0;
        detail::check(shmframes_slot_publish(h_.get(), &s));
        return s;
    }
    void discard() { detail::check(shmframes_slot_discard(h_.get())); }
    // The frame's shape (the writer's).
    const shmframes_shape& shape() const noexcept { return shape_; }
    shmframes_slot* get() const noexcept { return h_.get(); }

private:
    detail::Handle<shmframes_slot, shmframes_slot_free> h_;
    shmframes_shape shape_{};
};

// A channel's producer end; destroying it (or close()) ends the stream and removes the name.
class Writer {
public:
    Writer(const std::string& name, const WriterOptions& opts)
        : Writer(name, opts.c) {}
    Writer(const std::string& name, const shmframes_writer_options& opts) : name_(name) {
        shmframes_writer* w = nullptr;
        detail::check(shmframes_writer_create(name.c_str(), &opts, &w));
        h_ = decltype(h_)(w);
        detail::check(shmframes_writer_shape(w, &shape_));
    }
    const std::string& name() const noexcept { return name_; }

    // Room for the next frame: waits up to `timeout` (WhenFull::Wait; Drop never waits).
    // An empty Slot when there was none in time (Drop: readers hold every slot).
    Slot try_slot(detail::Timeout_t timeout = forever) {
        shmframes_slot* s = nullptr;
        detail::check(shmframes_writer_take_slot(h_.get(), detail::ns(timeout), &s));
        return s ? Slot(s, shape_) : Slot();
    }
    // Room for the next frame, or Timeout.
    Slot slot(detail::Timeout_t timeout = forever) {
        Slot s = try_slot(timeout);
        if (!s) detail::throw_error(SHMFRAMES_TIMEOUT);
        return s;
    }
    // Copies a frame in and publishes it; false if it was dropped (no room in time).
    bool write(const void* pixels, size_t len, uint64_t capture_ns = 0,
               detail::Timeout_t timeout = forever) {
        return detail::check(shmframes_writer_write(h_.get(), static_cast<const uint8_t*>(pixels),
                                                    len, capture_ns, detail::ns(timeout)));
    }
    const shmframes_shape& shape() const noexcept { return shape_; }
    uint64_t frames_published() const {
        uint64_t n = 0;
        detail::check(shmframes_writer_frames_published(h_.get(), &n));
        return n;
    }
    std::vector<ReaderInfo> readers() const {
        size_t n = 0;
        detail::check(shmframes_writer_readers(h_.get(), nullptr, 0, &n));
        std::vector<ReaderInfo> v(n + 4);
        detail::check(shmframes_writer_readers(h_.get(), v.data(), v.size(), &n));
        v.resize(n < v.size() ? n : v.size());
        return v;
    }
    void set_cancel(const Cancel* c) {
        detail::check(shmframes_writer_set_cancel(h_.get(), c ? c->get() : nullptr));
    }
    void close() { detail::check(shmframes_writer_close(h_.get())); }
    shmframes_writer* get() const noexcept { return h_.get(); }

private:
    std::string name_;
    detail::Handle<shmframes_writer, shmframes_writer_free> h_;
    shmframes_shape shape_{};
};

// ---- reading ------------------------------------------------------------------------------

struct ReaderOptions {
    shmframes_reader_options c{};
    ReaderOptions() { detail::check(shmframes_reader_options_init(&c)); }
    // How long open waits for the channel to appear (default: not at all).
    ReaderOptions& wait_for(detail::Timeout_t t) { c.timeout_ns = detail::ns(t); return *this; }
    ReaderOptions& lossless(bool on = true) { c.lossless = on; return *this; }
    ReaderOptions& follow(bool on = true) { c.follow = on; return *this; }
    ReaderOptions& start_oldest(bool on = true) { c.start_oldest = on; return *this; }
    ReaderOptions& raw(uint32_t width, uint32_t height, Format f = Format::BGR) {
        c.raw = true;
        c.raw_shape = shmframes_shape{width, height, 0, static_cast<uint32_t>(f)};
        return *this;
    }
    ReaderOptions& cancel(const Cancel& k) { c.cancel = k.get(); return *this; }
};

// A frame in place in shared memory; destroying it (or release()) gives its slot back.
class Frame {
public:
    explicit Frame(shmframes_frame* f) : h_(f) { load(); }
    const uint8_t* data() const { load(); return info_.data; }
    size_t size() const { load(); return info_.len; }
    uint32_t width() const { load(); return info_.shape.width; }
    uint32_t height() const { load(); return info_.shape.height; }
    uint32_t stride() const { load(); return info_.shape.stride; }
    Format format() const { load(); return static_cast<Format>(info_.shape.format); }
    uint64_t seq() const { load(); return info_.seq; }
    uint64_t capture_ns() const { load(); return info_.capture_ns; }
    uint64_t publish_ns() const { load(); return info_.publish_ns; }
    uint64_t lost_before() const { load(); return info_.lost_before; }
    bool raw() const { load(); return info_.raw; }
    // Everything at once (planes included).
    const shmframes_frame_info& info() const { load(); return info_; }
    // Gives the slot back now; any later use throws Closed.
    void release() { detail::check(shmframes_frame_release(h_.get())); }
    shmframes_frame* get() const noexcept { return h_.get(); }

private:
    void load() const { detail::check(shmframes_frame_get_info(h_.get(), &info_)); }
    detail::Handle<shmframes_frame, shmframes_frame_free> h_;
    mutable shmframes_frame_info info_{};
};

enum class ProducerState : uint32_t {
    Live = SHMFRAMES_PRODUCER_LIVE, Unknown = SHMFRAMES_PRODUCER_UNKNOWN,
    Ended = SHMFRAMES_PRODUCER_ENDED, Gone = SHMFRAMES_PRODUCER_GONE,
};

// A channel's reading end.
class Reader {
public:
    explicit Reader(const std::string& name, const ReaderOptions& opts = ReaderOptions()) {
        shmframes_reader* r = nullptr;
        detail::check(shmframes_reader_open(name.c_str(), &opts.c, &r));
        h_ = decltype(h_)(r);
    }
    // The next frame, waiting up to `timeout` (default: for ever); empty when none came.
    // Throws EndOfStream, ProducerGone, Interrupted, ...
    std::optional<Frame> read(detail::Timeout_t timeout = forever) {
        shmframes_frame* f = nullptr;
        if (!detail::check(shmframes_reader_read(h_.get(), detail::ns(timeout), &f))) return std::nullopt;
        return Frame(f);
    }
    // The newest frame, skipping older ones; waits like read().
    std::optional<Frame> latest(detail::Timeout_t timeout = forever) {
        shmframes_frame* f = nullptr;
        if (!detail::check(shmframes_reader_latest(h_.get(), detail::ns(timeout), &f))) return std::nullopt;
        return Frame(f);
    }
    // The next frame, or Timeout.
    Frame next(detail::Timeout_t timeout = forever) {
        auto f = read(timeout);
        if (!f) detail::throw_error(SHMFRAMES_TIMEOUT);
        return std::move(*f);
    }
    uint64_t dropped() const {
        uint64_t n = 0;
        detail::check(shmframes_reader_dropped(h_.get(), &n));
        return n;
    }
    uint64_t lag() const {
        uint64_t n = 0;
        detail::check(shmframes_reader_lag(h_.get(), &n));
        return n;
    }
    ProducerState producer_state() const {
        uint32_t s = 0;
        detail::check(shmframes_reader_producer_state(h_.get(), &s));
        return static_cast<ProducerState>(s);
    }
    // true (the default): wake just before a steady producer's next frame is due; false:
    // always sleep until the producer's wake-up.
    void set_anticipate(bool on) { detail::check(shmframes_reader_set_anticipate(h_.get(), on)); }
    void set_cancel(const Cancel* c) {
        detail::check(shmframes_reader_set_cancel(h_.get(), c ? c->get() : nullptr));
    }
    void close() { detail::check(shmframes_reader_close(h_.get())); }
    shmframes_reader* get() const noexcept { return h_.get(); }

private:
    detail::Handle<shmframes_reader, shmframes_reader_free> h_;
};

}  // namespace shmframes

// ---- OpenCV, when its core header was included first ---------------------------------------
#if defined(CV_VERSION_MAJOR) || defined(OPENCV_CORE_HPP)
namespace shmframes {
namespace detail {
inline cv::Mat mat_of(uint8_t* data, const shmframes_shape& s) {
    int rows = static_cast<int>(s.height), cols = static_cast<int>(s.width);
    int type = CV_8UC3;
    switch (static_cast<Format>(s.format)) {
    case Format::BGR: case Format::RGB: type = CV_8UC3; break;
    case Format::GRAY: type = CV_8UC1; break;
    case Format::RGBA: case Format::BGRA: type = CV_8UC4; break;
    case Format::YUYV: type = CV_8UC2; break;
    case Format::NV12: case Format::I420: type = CV_8UC1; rows = rows + rows / 2; break;
    }
    return cv::Mat(rows, cols, type, data, s.stride);
}
}  // namespace detail

// The frame's pixels as a cv::Mat, in place (no copy): read-only, valid while the frame is
// held. 4:2:0 formats are one (H + H/2) x W plane, as cv::cvtColor takes them.
inline cv::Mat to_mat(const Frame& f) {
    return detail::mat_of(const_cast<uint8_t*>(f.data()), f.info().shape);
}
// The slot's pixels as a writable cv::Mat, in place: decode or draw straight into it.
inline cv::Mat to_mat(const Slot& s) { return detail::mat_of(s.data(), s.shape()); }
}  // namespace shmframes
#endif

#endif  // SHMFRAMES_HPP
