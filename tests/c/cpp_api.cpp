// The C++ wrapper (shmframes.hpp): RAII, std::chrono timeouts, and errors as exceptions of
// one hierarchy. Built and run by `make test-c`, plainly, statically linked, and under
// ASan + UBSan.
#include <shmframes.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace sf = shmframes;

static int checks = 0, failures = 0;
#define EXPECT(cond)                                                          \
    do {                                                                      \
        ++checks;                                                             \
        if (!(cond)) {                                                        \
            ++failures;                                                       \
            std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                     \
    } while (0)

// `body` throws E (and what() is not empty).
template <class E, class F>
static void expect_throw(int line, F body, const char* what) {
    ++checks;
    try {
        body();
    } catch (const E& e) {
        if (std::strlen(e.what()) > 0 && e.code() != SHMFRAMES_OK) return;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "FAIL line %d (%s): wrong exception: %s\n", line, what, e.what());
        ++failures;
        return;
    }
    std::fprintf(stderr, "FAIL line %d (%s): no exception\n", line, what);
    ++failures;
}
#define THROWS(E, body) expect_throw<E>(__LINE__, [&] { body; }, #body)

static std::string unique(const char* what) { return std::string("shmframes-cpptest-") + what + "-" + std::to_string(getpid()); }

int main() {
    const std::string name = unique("a");

    // Round trip, with a waiting writer and a lossless reader in another thread.
    {
        sf::Writer writer(name, sf::WriterOptions(32, 16, sf::Format::GRAY).when_full(sf::WhenFull::Wait).buffer_frames(2));
        THROWS(sf::ProducerAlive, sf::Writer(name, sf::WriterOptions(32, 16)));
        THROWS(sf::NameTaken, sf::Writer(name, sf::WriterOptions(32, 16)));  // the base class
        THROWS(sf::Error, sf::Writer(name, sf::WriterOptions(32, 16)));      // and the root
        THROWS(sf::InvalidArgument, sf::WriterOptions(31, 16, sf::Format::NV12); sf::Writer(unique("odd"), sf::WriterOptions(31, 16, sf::Format::NV12)));
        const int frames = 50;
        std::atomic<int> got{0};
        std::atomic<bool> exact{true};
        std::thread reader_thread([&] {
            sf::Reader reader(name, sf::ReaderOptions().lossless().start_oldest().wait_for(5s));
            try {
                for (;;) {
                    auto f = reader.read(5s);
                    if (!f) break;
                    if (f->seq() != uint64_t(got) || f->width() != 32 || f->height() != 16 || f->format() != sf::Format::GRAY ||
                        f->size() != 32 * 16 || f->data()[5] != uint8_t(f->seq()) || f->capture_ns() != 1000 + f->seq())
                        exact = false;
                    ++got;
                }
            } catch (const sf::EndOfStream&) {
            }
        });
        for (int i = 0; i < frames; ++i) {
            sf::Slot slot = writer.slot(5s);  // the first waits for the reader
            EXPECT(slot.size() == 32 * 16);
            std::memset(slot.data(), i, slot.size());
            slot.set_capture_ns(1000 + uint64_t(i));
            EXPECT(slot.publish() == uint64_t(i));
            THROWS(sf::Closed, slot.publish());  // a slot published twice
        }
        EXPECT(writer.frames_published() == uint64_t(frames));
        writer.close();
        THROWS(sf::Closed, writer.try_slot(0ms));
        reader_thread.join();
        EXPECT(got == frames);
        EXPECT(exact);
    }

    // A slot destroyed unpublished is discarded; a writer call while one is open throws.
    {
        sf::Writer writer(name, sf::WriterOptions(8, 8));
        sf::Reader reader(name);
        {
            sf::Slot s = writer.slot(0ms);
            THROWS(sf::InvalidArgument, writer.frames_published());
            sf::Slot moved = std::move(s);
            EXPECT(!s && moved);
        }
        EXPECT(writer.frames_published() == 0);
        reader.set_anticipate(false);
        EXPECT(!reader.read(0ms));
        reader.set_anticipate(true);
        std::vector<uint8_t> px(8 * 8 * 3, 9);
        EXPECT(writer.write(px.data(), px.size(), 0, 0ms));
        THROWS(sf::InvalidArgument, writer.write(px.data(), px.size() - 1));
        EXPECT(writer.readers().size() == 1 && sf::readers(name).size() == 1);
        sf::Frame f = reader.next(1s);
        EXPECT(f.seq() == 0 && f.data()[7] == 9 && f.info().planes == 1);
        f.release();
        THROWS(sf::Closed, f.seq());  // a released frame used again
        THROWS(sf::Timeout, reader.next(1ms));
        EXPECT(reader.dropped() == 0 && reader.lag() == 0 && reader.producer_state() == sf::ProducerState::Live);
    }

    // Frames are independent of their reader: held past it, and released on other threads.
    {
        sf::Writer writer(name, sf::WriterOptions(16, 16).buffer_frames(8));
        std::vector<sf::Frame> held;
        {
            sf::Reader reader(name, sf::ReaderOptions().lossless());
            std::vector<uint8_t> px(16 * 16 * 3);
            for (int i = 0; i < 6; ++i) {
                std::fill(px.begin(), px.end(), uint8_t(i));
                EXPECT(writer.write(px.data(), px.size(), 0, 0ms));
                held.push_back(reader.next(1s));
            }
        }  // the reader is gone; its frames stay valid
        std::vector<std::thread> releasers;
        std::atomic<int> good{0};
        for (auto& f : held) {
            releasers.emplace_back([f = std::move(f), &good]() mutable {
                if (f.data()[0] == uint8_t(f.seq()) && f.size() == 16 * 16 * 3) ++good;
                f.release();
            });
        }
        for (auto& t : releasers) t.join();
        EXPECT(good == 6);
    }

    // A Cancel ends a read blocked for ever, from another thread.
    {
        sf::Writer writer(name, sf::WriterOptions(8, 8));
        sf::Cancel cancel;
        sf::Reader reader(name, sf::ReaderOptions().cancel(cancel));
        std::thread firer([&] {
            std::this_thread::sleep_for(50ms);
            cancel.fire();
        });
        auto t0 = std::chrono::steady_clock::now();
        THROWS(sf::Interrupted, reader.read(sf::forever));
        firer.join();
        EXPECT(std::chrono::steady_clock::now() - t0 < 10s);
        EXPECT(cancel.fired());
    }

    THROWS(sf::ChannelNotFound, sf::Reader(unique("missing")));
    THROWS(sf::ChannelNotFound, sf::Reader(unique("missing"), sf::ReaderOptions().wait_for(20ms)));
    THROWS(sf::InvalidArgument, sf::parse_format("purple"));
    EXPECT(sf::parse_format("gray") == sf::Format::GRAY && sf::format_name(sf::Format::NV12) == "nv12");
    EXPECT(access(("/dev/shm/" + name).c_str(), F_OK) != 0);

    std::printf("cpp_api: %d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
