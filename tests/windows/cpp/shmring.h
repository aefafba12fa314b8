// cpp_py_shmbuf's ring, written from the layout in ../shared/PROTOCOL.md (docs/protocol.md,
// "Fixed"), for the raw peers of the Windows tests: raw_producer.cpp and raw_consumer.cpp.
// C++14, one header, Windows (a pagefile-backed named file mapping under the bare name, as
// cpp_py_shmbuf's Windows code makes it) and POSIX (shm_open("/NAME")).
//
//   offset 0  head      u32 LE, bytes ever written (wraps)   producer
//   offset 4  tail      u32 LE, bytes ever consumed (wraps)  consumer
//   offset 8  capacity  u32 LE, a power of two               producer, at creation
//   offset 12 reserved  u32, 0                               producer, at creation
//   offset 16 data      capacity bytes: [u32 LE length][payload] messages, split at the end
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#ifdef _WIN32
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#endif

namespace ring {

static const uint32_t HEADER = 16;

inline uint32_t load_acquire(const uint8_t* p) {
    return __atomic_load_n(reinterpret_cast<const uint32_t*>(p), __ATOMIC_ACQUIRE);
}
inline void store_release(uint8_t* p, uint32_t v) {
    __atomic_store_n(reinterpret_cast<uint32_t*>(p), v, __ATOMIC_RELEASE);
}
inline void sleep_ms(unsigned ms) {
#ifdef _WIN32
    Sleep(ms);
#else
    struct timespec t = {static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000L};
    nanosleep(&t, nullptr);
#endif
}
inline double now_s() {
#ifdef _WIN32
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return double(c.QuadPart) / double(f.QuadPart);
#else
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
#endif
}

// Largest power of two <= n (n >= 1).
inline uint32_t round_down_pow2(uint64_t n) {
    uint64_t p = 1;
    while (p * 2 <= n && p * 2 <= 0x80000000ull) p *= 2;
    return static_cast<uint32_t>(p);
}

// A mapped segment. The producer creates it (replacing a leftover on POSIX, as shm_unlink
// before shm_open does); the consumer opens an existing one.
struct Segment {
    uint8_t* base = nullptr;
    uint64_t size = 0;
#ifdef _WIN32
    HANDLE mapping = nullptr;
#else
    std::string posix_name;
#endif

    // `bytes` is the data size asked for: the segment is 16 + bytes long and the capacity is
    // `bytes` rounded down to a power of two, as cpp_py_shmbuf's producer does.
    bool create(const std::string& name, uint64_t bytes) {
        size = HEADER + bytes;
#ifdef _WIN32
        mapping = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE,
                                     static_cast<DWORD>(size >> 32), static_cast<DWORD>(size),
                                     name.c_str());
        if (!mapping) return fail("CreateFileMappingA");
        if (GetLastError() == ERROR_ALREADY_EXISTS) {
            std::fprintf(stderr, "a mapping named %s exists already\n", name.c_str());
            return false;
        }
        base = static_cast<uint8_t*>(MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, size));
        if (!base) return fail("MapViewOfFile");
#else
        posix_name = "/" + name;
        shm_unlink(posix_name.c_str());
        int fd = shm_open(posix_name.c_str(), O_CREAT | O_RDWR, 0666);
        if (fd < 0) return fail("shm_open");
        if (ftruncate(fd, static_cast<off_t>(size)) != 0) return fail("ftruncate");
        void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (p == MAP_FAILED) return fail("mmap");
        base = static_cast<uint8_t*>(p);
#endif
        std::memset(base, 0, HEADER);
        uint32_t capacity = round_down_pow2(bytes);
        std::memcpy(base + 8, &capacity, 4);
        store_release(base + 0, 0);
        return true;
    }

    // Opens an existing segment; false (quietly) while it does not exist.
    bool open(const std::string& name) {
#ifdef _WIN32
        mapping = OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, name.c_str());
        if (!mapping) return false;
        base = static_cast<uint8_t*>(MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, 0));
        if (!base) return fail("MapViewOfFile");
        MEMORY_BASIC_INFORMATION info;
        if (!VirtualQuery(base, &info, sizeof info)) return fail("VirtualQuery");
        size = info.RegionSize;  // whole pages: at least the segment's size
#else
        posix_name = "/" + name;
        int fd = shm_open(posix_name.c_str(), O_RDWR, 0);
        if (fd < 0) return false;
        struct stat st;
        if (fstat(fd, &st) != 0) return fail("fstat");
        size = static_cast<uint64_t>(st.st_size);
        if (size < HEADER) {
            close(fd);
            return false;  // being created
        }
        void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (p == MAP_FAILED) return fail("mmap");
        base = static_cast<uint8_t*>(p);
#endif
        return true;
    }

    uint32_t capacity() const { return load_acquire(base + 8); }
    uint8_t* data() const { return base + HEADER; }

    void close_and_unlink(bool unlink) {
#ifdef _WIN32
        (void)unlink;  // the mapping goes with its last handle
        if (base) UnmapViewOfFile(base);
        if (mapping) CloseHandle(mapping);
#else
        if (base) munmap(base, size);
        if (unlink) shm_unlink(posix_name.c_str());
#endif
        base = nullptr;
    }

    static bool fail(const char* what) {
#ifdef _WIN32
        std::fprintf(stderr, "%s failed: error %lu\n", what, GetLastError());
#else
        std::perror(what);
#endif
        return false;
    }
};

// Copies `len` bytes to/from the circular data area at index `at` (split at the end).
inline void put(const Segment& s, uint32_t at, const uint8_t* src, uint32_t len) {
    uint32_t cap = s.capacity(), off = at & (cap - 1), first = cap - off < len ? cap - off : len;
    std::memcpy(s.data() + off, src, first);
    std::memcpy(s.data(), src + first, len - first);
}
inline void get(const Segment& s, uint32_t at, uint8_t* dst, uint32_t len) {
    uint32_t cap = s.capacity(), off = at & (cap - 1), first = cap - off < len ? cap - off : len;
    std::memcpy(dst, s.data() + off, first);
    std::memcpy(dst + first, s.data(), len - first);
}

// Writes one message; false (nothing written) when it does not fit.
inline bool write(const Segment& s, const uint8_t* payload, uint32_t len) {
    uint32_t head = load_acquire(s.base + 0);  // ours
    uint32_t tail = load_acquire(s.base + 4);  // acquire: the consumer is done with those bytes
    uint32_t writable = s.capacity() - (head - tail);
    if (uint64_t(len) + 4 > writable) return false;
    uint8_t prefix[4];
    std::memcpy(prefix, &len, 4);  // little endian on every target here
    put(s, head, prefix, 4);
    put(s, head + 4, payload, len);
    store_release(s.base + 0, head + 4 + len);  // publishes the message
    return true;
}

// Reads one message into `out` (at most `max` bytes). Returns its length, 0 when there is
// none (a zero length prefix also counts as none, as in cpp_py_shmbuf), or -1 when the
// message is longer than `max` or than the bytes published (a broken segment).
inline int64_t read(const Segment& s, uint8_t* out, uint32_t max) {
    uint32_t head = load_acquire(s.base + 0);  // acquire: the message's bytes
    uint32_t tail = load_acquire(s.base + 4);
    uint32_t readable = head - tail;
    if (readable < 4) return 0;
    uint32_t len;
    get(s, tail, reinterpret_cast<uint8_t*>(&len), 4);
    if (len == 0) return 0;
    if (len > max || uint64_t(len) + 4 > readable) return -1;
    get(s, tail + 4, out, len);
    store_release(s.base + 4, tail + 4 + len);  // gives the bytes back
    return len;
}

// The test pattern: frame `i`, pixel (x, y), BGR.
inline void pattern(uint8_t* px, uint32_t w, uint32_t h, uint32_t i) {
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint8_t* p = px + (size_t(y) * w + x) * 3;
            p[0] = uint8_t(x + i);
            p[1] = uint8_t(y + 2 * i);
            p[2] = uint8_t(x ^ y ^ i);
        }
}

}  // namespace ring
