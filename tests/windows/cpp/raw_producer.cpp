// A raw producer as cpp_py_shmbuf's C++ producer behaves: creates the segment NAME (Windows:
// CreateFileMappingA with the bare name; POSIX: shm_open("/NAME")), sized for FRAMES_IN_RING
// messages of W*H*3 bytes with the capacity rounded down to a power of two, and writes COUNT
// BGR frames of the test pattern (ring::pattern), retrying while the ring is full. Then it
// waits until a consumer has taken every byte (or LINGER_S seconds pass: on Windows the
// mapping must stay open until the consumer has opened it) and exits.
//
//   raw_producer NAME W H COUNT [FRAMES_IN_RING=3] [LINGER_S=20]
//
// Exit 0 when all frames were written and consumed, 1 otherwise. Prints one summary line.
#include <cstdlib>
#include <vector>

#include "shmring.h"

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s NAME W H COUNT [FRAMES_IN_RING=3] [LINGER_S=20]\n", argv[0]);
        return 2;
    }
    std::string name = argv[1];
    uint32_t w = std::strtoul(argv[2], nullptr, 10), h = std::strtoul(argv[3], nullptr, 10);
    uint32_t count = std::strtoul(argv[4], nullptr, 10);
    uint32_t in_ring = argc > 5 ? std::strtoul(argv[5], nullptr, 10) : 3;
    double linger = argc > 6 ? std::atof(argv[6]) : 20.0;
    uint32_t frame = w * h * 3;
    ring::Segment seg;
    if (!seg.create(name, uint64_t(in_ring) * (4 + frame))) return 1;
    if (seg.capacity() < 4 + frame) {
        std::fprintf(stderr, "capacity %u cannot hold one %u-byte frame\n", seg.capacity(), frame);
        return 1;
    }
    std::vector<uint8_t> px(frame);
    double start = ring::now_s(), deadline = start + linger;
    uint32_t written = 0;
    while (written < count && ring::now_s() < deadline) {
        ring::pattern(px.data(), w, h, written);
        while (!ring::write(seg, px.data(), frame) && ring::now_s() < deadline) ring::sleep_ms(1);
        written++;
    }
    // Until the consumer has read everything (tail == head).
    while (ring::load_acquire(seg.base + 4) != ring::load_acquire(seg.base + 0) &&
           ring::now_s() < deadline)
        ring::sleep_ms(1);
    bool drained = ring::load_acquire(seg.base + 4) == ring::load_acquire(seg.base + 0);
    std::printf("raw_producer %s: %ux%u, capacity %u, wrote %u of %u frames, %s, %.3f s\n",
                name.c_str(), w, h, seg.capacity(), written, count,
                drained ? "all consumed" : "NOT all consumed", ring::now_s() - start);
    seg.close_and_unlink(true);
    return written == count && drained ? 0 : 1;
}
