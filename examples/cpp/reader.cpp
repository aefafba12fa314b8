// shmframes-cpp-reader: prints one line per frame with its metadata.
//
//   shmframes-cpp-reader --name NAME --frames N [--timeout S] [--lossy] [--latest]
//
// Lossless by default, from the oldest frame the channel keeps (a waiting producer waits for
// it, so it sees every frame); --lossy reads like a viewer. Each line: sequence number, size,
// stride, format, capture and publish times (CLOCK_MONOTONIC ns), frames lost before it, its
// age when read, and the first pixel's bytes (read through a cv::Mat over the frame, in place).
// Exits 0 after N frames (N = 0: until the stream ends); 3 when the producer dies (printing
// when it noticed, in CLOCK_MONOTONIC ns), 1 on other errors.
#include <opencv2/core.hpp>

#include <shmframes.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
    std::string name = "shm_video";
    uint64_t frames = 0;
    double timeout = 10;
    bool lossless = true, latest = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "shmframes-cpp-reader: missing value after %s\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--name") name = value();
        else if (a == "--frames") frames = std::stoull(value());
        else if (a == "--timeout") timeout = std::stod(value());
        else if (a == "--lossy") lossless = false;
        else if (a == "--latest") latest = true, lossless = false;
        else {
            std::fprintf(stderr,
                         "usage: shmframes-cpp-reader --name NAME --frames N [--timeout S] [--lossy] [--latest]\n");
            return 2;
        }
    }
    const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(timeout));
    uint64_t n = 0;
    try {
        shmframes::Reader reader(name, shmframes::ReaderOptions().wait_for(wait).lossless(lossless).start_oldest(lossless));
        while (frames == 0 || n < frames) {
            auto frame = latest ? reader.latest(wait) : reader.read(wait);
            if (!frame) {
                std::fprintf(stderr, "shmframes-cpp-reader: no frame within %.1f s\n", timeout);
                return 1;
            }
            const uint64_t now = shmframes::monotonic_ns();
            cv::Mat m = shmframes::to_mat(*frame);  // no copy: the pixels in shared memory
            const uint8_t* p = m.ptr<uint8_t>(0);
            std::printf("seq=%llu size=%ux%u stride=%u format=%s capture_ns=%llu publish_ns=%llu lost_before=%llu "
                        "age_us=%.1f first_pixel=%u,%u,%u\n",
                        (unsigned long long)frame->seq(), frame->width(), frame->height(), frame->stride(),
                        shmframes::format_name(frame->format()).c_str(), (unsigned long long)frame->capture_ns(),
                        (unsigned long long)frame->publish_ns(), (unsigned long long)frame->lost_before(),
                        (now - frame->publish_ns()) / 1e3, p[0], m.channels() > 1 ? p[1] : 0u,
                        m.channels() > 2 ? p[2] : 0u);
            std::fflush(stdout);
            ++n;
        }
    } catch (const shmframes::EndOfStream&) {
        if (frames == 0) return 0;
        std::fprintf(stderr, "shmframes-cpp-reader: the stream ended after %llu of %llu frames\n",
                     (unsigned long long)n, (unsigned long long)frames);
        return 1;
    } catch (const shmframes::ProducerGone& e) {
        const uint64_t now = shmframes::monotonic_ns();
        std::fprintf(stderr, "shmframes-cpp-reader: producer gone (noticed at %llu ns) after %llu frames: %s\n",
                     (unsigned long long)now, (unsigned long long)n, e.what());
        return 3;
    } catch (const shmframes::Error& e) {
        std::fprintf(stderr, "shmframes-cpp-reader: %s\n", e.what());
        return 1;
    }
    return 0;
}
