"""C and C++ programs on our channels (issue 24), against the install `make test-c` makes in
target/c-install (SHMFRAMES_C_PREFIX to use another): the C++ examples with Python readers and
writers, frame-stats, frame-viewer (under Xvfb), the GStreamer source, a killed producer, and the README's C++ example."""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

import numpy as np
import pytest

import shmframes
from conftest import ROOT, Procs, binary, wait_until

PREFIX = Path(os.environ.get("SHMFRAMES_C_PREFIX", ROOT / "target" / "c-install"))
GST_DIR = ROOT / "target" / "gst"


def cbin(name: str) -> str:
    path = PREFIX / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make install-c PREFIX={PREFIX}` (make test-c does)")
    return str(path)


def expected_first_pixel(seq: int) -> List[int]:
    """The C++ producer's synthetic frame `seq` is this colour (B, G, R) at its top left."""
    return [seq * 7 % 256, seq * 13 % 256, seq * 29 % 256]


class Lines:
    """A child's stdout, read as it comes (so that a chatty child never blocks on the pipe)."""

    def __init__(self, p: subprocess.Popen) -> None:
        self.lines: List[str] = []
        self._t = threading.Thread(target=self._read, args=(p,), daemon=True)
        self._t.start()

    def _read(self, p: subprocess.Popen) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            self.lines.append(line.rstrip("\n"))

    def join(self) -> List[str]:
        self._t.join(timeout=30)
        return self.lines


READER = r"""
import json, sys, shmframes
name, lossless = sys.argv[1], sys.argv[2] == "1"
with shmframes.Reader(name, timeout=30.0, lossless=lossless, start="oldest" if lossless else "newest") as r:
    for f in r:
        a = f.array
        print(json.dumps(dict(seq=f.seq, width=f.width, height=f.height, stride=f.stride, format=f.format,
                              capture_ns=f.capture_ns, publish_ns=f.publish_ns, pixel=a[0, 0].tolist(),
                              bar=a[f.height // 3 + 1, f.width - 1].tolist())), flush=True)
"""


def test_cpp_producer_to_several_python_readers(procs: Procs, channel: str) -> None:
    """Two lossless Python readers and a lossy one at once: the lossless get frames 0..N-1,
    every reader's metadata and pixels are exactly what the C++ producer wrote."""
    n = 40
    readers = [procs.python(READER, channel, flag, stdout=subprocess.PIPE, text=True) for flag in ("1", "1", "0")]
    producer = procs.start([cbin("shmframes-cpp-producer"), "--name", channel, "--frames", str(n), "--size", "320x240",
                            "--readers", "3"], stderr=subprocess.PIPE, text=True)
    _, err = producer.communicate(timeout=60)
    assert producer.returncode == 0, err
    assert f"{n} frames published, 0 dropped" in err
    for i, p in enumerate(readers):
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0, f"reader {i} failed"
        frames = [json.loads(line) for line in out.splitlines()]
        seqs = [f["seq"] for f in frames]
        if i < 2:
            assert seqs == list(range(n)), f"lossless reader {i}: {seqs}"
        else:
            assert seqs and seqs == sorted(set(seqs)) and set(seqs) <= set(range(n)), seqs
        for f in frames:
            assert (f["width"], f["height"], f["stride"], f["format"]) == (320, 240, 960, "bgr")
            assert 0 < f["capture_ns"] <= f["publish_ns"] <= time.monotonic_ns()
            assert f["pixel"] == expected_first_pixel(f["seq"]), f
        # The producer's later frames are later.
        assert all(a["publish_ns"] < b["publish_ns"] for a, b in zip(frames, frames[1:]))


def test_python_writer_to_cpp_reader(procs: Procs, channel: str) -> None:
    n = 20
    with shmframes.Writer(channel, 64, 48, "bgr", buffer_frames=4) as writer:
        reader = procs.start([cbin("shmframes-cpp-reader"), "--name", channel, "--frames", str(n)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_until(lambda: writer.readers >= 1), "the C++ reader never attached"
        for i in range(n):
            img = np.full((48, 64, 3), i, np.uint8)
            img[0, 0] = (i, i + 1, i + 2)
            assert writer.write(img, timeout=None, capture_ns=1000 + i)
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == n
    for i, line in enumerate(lines):
        f = dict(kv.split("=", 1) for kv in line.split())
        assert f["seq"] == str(i) and f["size"] == "64x48" and f["stride"] == "192" and f["format"] == "bgr", line
        assert f["capture_ns"] == str(1000 + i) and int(f["publish_ns"]) > 1000 + i and f["lost_before"] == "0", line
        assert f["first_pixel"] == f"{i},{i + 1},{i + 2}", line


def test_cpp_producer_to_frame_stats(procs: Procs, channel: str) -> None:
    n = 30
    stats = procs.start([binary("frame-stats"), channel, "--frames", str(n), "--json", "--lossless", "--timeout", "30"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    producer = procs.start([cbin("shmframes-cpp-producer"), "--name", channel, "--frames", str(n), "--size", "640x360"],
                           stderr=subprocess.PIPE, text=True)
    out, err = stats.communicate(timeout=60)
    assert stats.returncode == 0, err
    frames = [json.loads(line) for line in out.splitlines()]
    assert [f["seq"] for f in frames] == list(range(n))
    for f in frames:
        assert (f["width"], f["height"], f["stride"], f["format"], f["raw"]) == (640, 360, 1920, "bgr", False)
        assert 0 < f["capture_ns"] <= f["publish_ns"]
    assert producer.wait(timeout=30) == 0


def test_gstreamer_source_on_a_cpp_channel(procs: Procs, channel: str) -> None:
    if not (GST_DIR / "libgstshmframes.so").exists():
        pytest.fail(f"{GST_DIR}/libgstshmframes.so missing: run `make gst` first")
    n = 15
    env = dict(os.environ, GST_PLUGIN_PATH=str(GST_DIR), GST_REGISTRY=str(GST_DIR / "registry.bin"))
    gst = procs.start(["gst-launch-1.0", "-v", "shmframessrc", f"channel={channel}", "lossless=true", "timeout=30",
                       "!", "video/x-raw,format=BGR,width=320,height=240", "!", "fakesink", "silent=false"],
                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    producer = procs.start([cbin("shmframes-cpp-producer"), "--name", channel, "--frames", str(n), "--size", "320x240"],
                           stderr=subprocess.PIPE, text=True)
    out, _ = gst.communicate(timeout=90)
    assert gst.returncode == 0, out
    buffers = re.findall(r"chain\s+\*+ \(fakesink\d*:sink\) \((\d+) bytes", out)
    assert buffers == [str(320 * 240 * 3)] * n, out[-2000:]
    assert producer.wait(timeout=30) == 0


def test_cpp_reader_learns_of_a_killed_producer_at_once(procs: Procs, channel: str) -> None:
    """SIGKILL the C++ producer: the C++ reader reports ProducerGone (the kernel tells it)
    well within 100 ms; the figure is printed (typically well under a millisecond)."""
    delays = []
    for attempt in range(5):
        name = f"{channel}-{attempt}"
        producer = procs.start([cbin("shmframes-cpp-producer"), "--name", name, "--size", "160x120", "--fps", "100",
                                "--when-full", "drop"])
        reader = procs.start([cbin("shmframes-cpp-reader"), "--name", name, "--frames", "0", "--lossy"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = Lines(reader)
        assert wait_until(lambda: len(lines.lines) >= 5, 30), "the reader read nothing"
        killed_ns = time.monotonic_ns()
        producer.send_signal(signal.SIGKILL)
        producer.wait()
        _, err = reader.communicate(timeout=30)
        assert reader.returncode == 3, err
        noticed = int(re.search(r"noticed at (\d+) ns", err).group(1))  # type: ignore[union-attr]
        delays.append((noticed - killed_ns) / 1e6)
        try:
            os.unlink(f"/dev/shm/{name}")
        except FileNotFoundError:
            pass
    print(f"ProducerGone after SIGKILL: median {statistics.median(delays):.3f} ms, max {max(delays):.3f} ms "
          f"({', '.join(f'{d:.3f}' for d in delays)})", file=sys.stderr)
    assert max(delays) < 100, delays


def test_the_readme_cpp_example_runs_as_written(procs: Procs, channel: str, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```cpp\n(.*?)```", readme, re.S)
    assert len(blocks) == 1, "the README has one C++ example"
    src = tmp_path / "app.cpp"
    src.write_text(blocks[0].replace('"shm_video"', f'"{channel}"'))
    pc = dict(os.environ, PKG_CONFIG_PATH=str(PREFIX / "lib" / "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "shmframes"], env=pc, capture_output=True, text=True,
                           check=True).stdout.split()
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", str(src), "-o", str(tmp_path / "app"), *flags],
                   check=True, timeout=300)
    reader = procs.python(
        "import sys, shmframes\n"
        "seqs = []\n"
        "with shmframes.Reader(sys.argv[1], timeout=30.0, lossless=True, start='oldest') as r:\n"
        "    for f in r:\n"
        "        assert f.array.shape == (480, 640, 3) and (f.array == f.seq % 256).all(), f.seq\n"
        "        seqs.append(f.seq)\n"
        "print(len(seqs), seqs == list(range(100)))\n",
        channel, stdout=subprocess.PIPE, text=True)
    app = procs.start([str(tmp_path / "app")], env=dict(os.environ, LD_LIBRARY_PATH=str(PREFIX / "lib")))
    assert app.wait(timeout=60) == 0
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0 and out.split() == ["100", "True"], out


def test_cpp_producer_plays_a_video_file_into_the_slots(procs: Procs, channel: str, tmp_path: Path) -> None:
    """--video: cv::VideoCapture reads each frame into a cv::Mat that is the slot; the file's
    size as is, and another size scaled into the slot."""
    import cv2

    clip = tmp_path / "clip.avi"
    out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for i in range(10):
        out.write(np.full((240, 320, 3), (i * 20, 100, 200), np.uint8))
    out.release()
    for size in ("320x240", "160x120"):
        name = f"{channel}-{size}"
        producer = procs.start([cbin("shmframes-cpp-producer"), "--name", name, "--frames", "12", "--size", size,
                                "--video", str(clip)], stderr=subprocess.PIPE, text=True)
        reader = subprocess.run([cbin("shmframes-cpp-reader"), "--name", name, "--frames", "12"], capture_output=True,
                                text=True, timeout=60)
        assert reader.returncode == 0, reader.stderr
        assert producer.wait(timeout=30) == 0
        for i, line in enumerate(reader.stdout.splitlines()):
            f = dict(kv.split("=", 1) for kv in line.split())
            assert f["seq"] == str(i) and f["size"] == size, line
            b, g, r = map(int, f["first_pixel"].split(","))
            want = (i % 10) * 20  # the file loops after its 10 frames
            assert abs(b - want) <= 8 and abs(g - 100) <= 8 and abs(r - 200) <= 8, line


def test_cpp_producer_to_frame_viewer(procs: Procs, channel: str) -> None:
    """frame-viewer shows a C++ producer's frames in a real window (Xvfb, lavapipe) and exits 0
    after --frames (as tests/tools/viewer.rs runs it)."""
    n = 4000 + os.getpid() % 3000
    xvfb = procs.start(["Xvfb", f":{n}", "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: Path(f"/tmp/.X11-unix/X{n}").exists()), "Xvfb did not start"
    procs.start([cbin("shmframes-cpp-producer"), "--name", channel, "--size", "320x240", "--fps", "60",
                 "--when-full", "drop"])
    env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
    env["DISPLAY"] = f":{n}"
    viewer = subprocess.run([binary("frame-viewer"), channel, "--frames", "30", "--timeout", "30"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert viewer.returncode == 0, viewer.stderr
    xvfb.terminate()
