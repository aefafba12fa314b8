// shmframes-cpp-producer: an OpenCV VideoCapture-style producer that decodes (or draws) each
// frame straight into the channel's slot, in shared memory: no copy.
//
//   shmframes-cpp-producer --name NAME --frames N --size WxH [--video PATH] [--fps F]
//                          [--when-full wait|drop] [--readers K] [--buffer-frames K]
//
// Without --video the source is synthetic (no camera needed): frame i is filled with the
// colour (B, G, R) = (7i, 13i, 29i) mod 256, with a white bar moving across it and its number
// written in the middle (what the tests check). --video plays a file (looping) through
// cv::VideoCapture, read into a cv::Mat over the slot. Frames carry sequence numbers 0..N-1
// and their capture time. --when-full wait (the default) waits for K readers (default 1)
// before the first frame and then for lossless readers, as frame-producer --when-full wait
// does. Ctrl+C or SIGTERM ends the stream cleanly.
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <shmframes.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

std::atomic<bool> stop{false};
void on_signal(int) { stop = true; }

// A source with VideoCapture's read(): fills `out` in place when it has the right size and
// type (as VideoCapture does for a preallocated Mat of the stream's size).
class SyntheticCapture {
public:
    bool read(cv::Mat& out) {
        const uint64_t i = n_++;
        out.setTo(cv::Scalar(double(i * 7 % 256), double(i * 13 % 256), double(i * 29 % 256)));
        const int w = out.cols, h = out.rows, bar = std::max(1, w / 16);
        const int x = int((i * 8) % uint64_t(std::max(1, w - bar)));
        cv::rectangle(out, cv::Rect(x, h / 3, bar, std::max(1, h / 3)), cv::Scalar(255, 255, 255), cv::FILLED);
        const std::string text = "#" + std::to_string(i);
        const double scale = std::max(0.4, h / 240.0);
        cv::putText(out, text, cv::Point(w / 3, h / 2), cv::FONT_HERSHEY_SIMPLEX, scale, cv::Scalar(0, 0, 0),
                    std::max(1, int(scale * 2)));
        return true;
    }

private:
    uint64_t n_ = 0;
};

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr,
                 "shmframes-cpp-producer: %s\nusage: shmframes-cpp-producer --name NAME --frames N --size WxH "
                 "[--video PATH] [--fps F] [--when-full wait|drop] [--readers K] [--buffer-frames K]\n",
                 msg);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string name = "shm_video", video;
    uint64_t frames = 0;  // 0: until stopped
    unsigned width = 640, height = 480, readers = 1, buffer_frames = 4;
    double fps = 0;  // 0: as fast as the readers take them
    bool wait = true;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value after " + a).c_str());
            return argv[++i];
        };
        if (a == "--name") name = value();
        else if (a == "--frames") frames = std::stoull(value());
        else if (a == "--size") {
            std::string s = value();
            if (std::sscanf(s.c_str(), "%ux%u", &width, &height) != 2) usage("--size takes WxH, e.g. 1280x720");
        } else if (a == "--video") video = value();
        else if (a == "--fps") fps = std::stod(value());
        else if (a == "--readers") readers = unsigned(std::stoul(value()));
        else if (a == "--buffer-frames") buffer_frames = unsigned(std::stoul(value()));
        else if (a == "--when-full") {
            std::string w = value();
            if (w != "wait" && w != "drop") usage("--when-full takes wait or drop");
            wait = w == "wait";
        } else if (a == "--help" || a == "-h") usage("help");
        else usage(("unknown argument " + a).c_str());
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    try {
        shmframes::Writer writer(name, shmframes::WriterOptions(width, height, shmframes::Format::BGR)
                                           .buffer_frames(buffer_frames)
                                           .when_full(wait ? shmframes::WhenFull::Wait : shmframes::WhenFull::Drop));
        cv::VideoCapture cap;
        SyntheticCapture synthetic;
        if (!video.empty() && !cap.open(video)) {
            std::fprintf(stderr, "shmframes-cpp-producer: cannot open video %s\n", video.c_str());
            return 1;
        }
        if (wait) {  // every reader the caller expects, before the first frame
            while (!stop && writer.readers().size() < readers)
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        const auto period = fps > 0 ? std::chrono::nanoseconds(int64_t(1e9 / fps)) : std::chrono::nanoseconds(0);
        auto next = std::chrono::steady_clock::now();
        uint64_t published = 0, dropped = 0;
        for (uint64_t i = 0; !stop && (frames == 0 || i < frames); ++i) {
            if (period.count()) {
                std::this_thread::sleep_until(next);
                next += period;
            }
            // Room for the frame: waits (in steps, to notice Ctrl+C) for lossless readers.
            shmframes::Slot slot;
            while (!stop && !(slot = writer.try_slot(std::chrono::milliseconds(100))) && wait) {
            }
            if (!slot) {
                ++dropped;  // drop: readers hold every slot
                continue;
            }
            slot.set_capture_ns(shmframes::monotonic_ns());
            cv::Mat into = shmframes::to_mat(slot);  // the slot's pixels, in shared memory
            if (video.empty()) {
                synthetic.read(into);
            } else {
                cv::Mat got = into;  // VideoCapture decodes into it when the sizes match
                if (!cap.read(got)) {
                    cap.set(cv::CAP_PROP_POS_FRAMES, 0);  // loop the file
                    if (!cap.read(got)) {
                        std::fprintf(stderr, "shmframes-cpp-producer: cannot read %s\n", video.c_str());
                        return 1;
                    }
                }
                if (got.data != into.data) cv::resize(got, into, into.size());  // another size
            }
            slot.set_seq(i);
            slot.publish();
            ++published;
        }
        writer.close();
        std::fprintf(stderr, "shmframes-cpp-producer: %llu frames published, %llu dropped\n",
                     (unsigned long long)published, (unsigned long long)dropped);
    } catch (const shmframes::Error& e) {
        std::fprintf(stderr, "shmframes-cpp-producer: %s\n", e.what());
        return 1;
    }
    return 0;
}
