// A raw consumer as cpp_py_shmbuf's C++ consumer behaves: opens the existing segment NAME
// (Windows: OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, "NAME"); POSIX: shm_open("/NAME")),
// waiting up to TIMEOUT_S for it to appear, and reads COUNT messages of exactly W*H*3 bytes,
// checking each against the test pattern of the frame that should come next (ring::pattern).
// Advances the tail as it reads (so the producer can go on). Validates what it trusts: the
// capacity a power of two that fits the mapping, lengths within bounds.
//
//   raw_consumer NAME W H COUNT [TIMEOUT_S=20]
//
// Exit 0 when COUNT correct frames were read in order, 1 otherwise. Prints one summary line.
#include <cstdlib>
#include <vector>

#include "shmring.h"

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s NAME W H COUNT [TIMEOUT_S=20]\n", argv[0]);
        return 2;
    }
    std::string name = argv[1];
    uint32_t w = std::strtoul(argv[2], nullptr, 10), h = std::strtoul(argv[3], nullptr, 10);
    uint32_t count = std::strtoul(argv[4], nullptr, 10);
    double timeout = argc > 5 ? std::atof(argv[5]) : 20.0;
    uint32_t frame = w * h * 3;
    double start = ring::now_s(), deadline = start + timeout;
    ring::Segment seg;
    while (!seg.open(name)) {
        if (ring::now_s() > deadline) {
            std::fprintf(stderr, "raw_consumer: no segment %s after %.0f s\n", name.c_str(), timeout);
            return 1;
        }
        ring::sleep_ms(2);
    }
    // The producer writes the capacity right after creating the segment.
    uint32_t cap = 0;
    while ((cap = seg.capacity()) == 0 && ring::now_s() < deadline) ring::sleep_ms(1);
    if (cap == 0 || (cap & (cap - 1)) != 0 || uint64_t(cap) + ring::HEADER > seg.size) {
        std::fprintf(stderr, "raw_consumer: bad capacity %u for a %llu-byte mapping\n", cap,
                     (unsigned long long)seg.size);
        return 1;
    }
    std::vector<uint8_t> got(frame), want(frame);
    uint32_t good = 0, bad = 0;
    for (uint32_t i = 0; i < count;) {
        int64_t n = ring::read(seg, got.data(), frame);
        if (n == 0) {
            if (ring::now_s() > deadline) break;
            ring::sleep_ms(1);
            continue;
        }
        if (n != int64_t(frame)) {
            std::fprintf(stderr, "raw_consumer: message %u has length %lld, not %u\n", i,
                         (long long)n, frame);
            bad++;
            break;
        }
        ring::pattern(want.data(), w, h, i);
        if (got == want) {
            good++;
        } else {
            bad++;
            std::fprintf(stderr, "raw_consumer: frame %u differs from the pattern\n", i);
        }
        i++;
    }
    std::printf("raw_consumer %s: %ux%u, capacity %u, %u good, %u bad of %u frames, %.3f s\n",
                name.c_str(), w, h, cap, good, bad, count, ring::now_s() - start);
    seg.close_and_unlink(false);
    return good == count && bad == 0 ? 0 : 1;
}
