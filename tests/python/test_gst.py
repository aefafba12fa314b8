"""The GStreamer elements across processes (issue 14), with real GStreamer: the recipes of
docs/gstreamer.md (and so the README's copies) run as written (channel names, files and
addresses replaced), a recording decoded back by GStreamer and by OpenCV, RTP over loopback into
another channel, videotestsrc into Python, and a producer killed under a running pipeline. The
plugin comes from target/gst (`make gst`), with a registry of its own (never the user's
~/.cache)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest

import shmframes
from conftest import ROOT, Procs, kill9, wait_until

GST_DIR = ROOT / "target" / "gst"
if shutil.which("gst-launch-1.0") is None or shutil.which("gst-inspect-1.0") is None:
    raise RuntimeError("gst-launch-1.0 / gst-inspect-1.0 missing: install gstreamer1.0-tools (.ci/setup does)")
if not (GST_DIR / "libgstshmframes.so").exists():
    raise RuntimeError(f"{GST_DIR}/libgstshmframes.so missing: run `make gst` first")

# The pattern's 75 % bars, left to right, in BGR.
BARS_BGR = [(191, 191, 191), (0, 191, 191), (191, 191, 0), (0, 191, 0), (191, 0, 191), (0, 0, 191), (191, 0, 0)]


def gst_env(**extra: str) -> Dict[str, str]:
    return dict(os.environ, GST_PLUGIN_PATH=str(GST_DIR), GST_REGISTRY=str(GST_DIR / "registry.bin"), **extra)


def assert_bars(img: np.ndarray, tol: int = 30) -> None:
    """The seven colour bars across the frame's upper part (within codec tolerance)."""
    h, w = img.shape[:2]
    y = h // 3
    for i, want in enumerate(BARS_BGR):
        x = int((i + 0.5) * w / 7)
        got = img[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3).mean(axis=0)
        assert np.abs(got - np.array(want)).max() <= tol, f"bar {i} at x={x}: {got.round().tolist()}, not {want}"


class Output:
    """A child's merged stdout/stderr, read as it comes, each line with its arrival time."""

    def __init__(self, p: subprocess.Popen) -> None:
        self.lines: List[tuple] = []
        self._t = threading.Thread(target=self._read, args=(p,), daemon=True)
        self._t.start()

    def _read(self, p: subprocess.Popen) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def first(self, pattern: str) -> Optional[tuple]:
        return next(((t, line) for t, line in self.lines if re.search(pattern, line)), None)


def launch(procs: Procs, args: List[str], **env: str) -> tuple:
    p = procs.start(args, env=gst_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p, Output(p)


def gst(procs: Procs, pipeline: str, *flags: str) -> tuple:
    return launch(procs, ["gst-launch-1.0", *flags, *shlex.split(pipeline)])


def recipes(path: Path) -> Dict[str, str]:
    """The recipes of a Markdown file: `# recipe: NAME` blocks, by name."""
    blocks = re.findall(r"```sh\n# recipe: (\w+)[^\n]*\n(.*?)```", path.read_text(), re.S)
    return {n: body for n, body in blocks}


GST_DOC = ROOT / "docs" / "gstreamer.md"


def test_the_readme_recipes_are_the_reference_ones():
    """The README keeps a few of docs/gstreamer.md's recipes: the same text, so the tests of
    the reference's run the README's as written too."""
    readme, reference = recipes(ROOT / "README.md"), recipes(GST_DOC)
    assert readme, "the README shows a recipe or two"
    assert len(reference) >= 6, sorted(reference)
    for name, body in readme.items():
        assert reference.get(name) == body, f"README recipe {name!r} differs from docs/gstreamer.md's"


def recipe(name: str, subs: Dict[str, str]) -> List[str]:
    """docs/gstreamer.md's recipe NAME as argv, with `subs` replacing whole arguments (every one
    must be used: the docs and this test stay in step)."""
    found = recipes(GST_DOC)
    assert name in found, f"docs/gstreamer.md has no recipe {name!r} (has {sorted(found)})"
    args = shlex.split(found[name].replace("\\\n", " "))
    used = set()
    for i, a in enumerate(args):
        if a in subs:
            args[i] = subs[a]
            used.add(a)
    assert used == set(subs), f"recipe {name}: {sorted(set(subs) - used)} not in {args}"
    return args


def reads(channel: str, pid: int, frames: int = 0) -> bool:
    """Whether process `pid` reads `channel` and has read more than `frames` frames."""
    try:
        return any(r["pid"] == pid and r["frames_read"] > frames for r in shmframes.readers(channel))
    except shmframes.ChannelNotFound:
        return False


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def other(channel: str):
    """A second channel name for the test (removed afterwards, pass or fail)."""
    name = channel[:200] + "-b"
    yield name
    try:
        os.unlink(f"/dev/shm/{name}")
    except FileNotFoundError:
        pass


def finish(p: subprocess.Popen, out: Output, secs: float = 60) -> str:
    try:
        p.wait(timeout=secs)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail(f"gst-launch-1.0 still running after {secs} s:\n{out.text()}")
    time.sleep(0.1)
    return out.text()


def read_all(name: str, timeout: float = 30) -> List[tuple]:
    """Every frame of a stream up to its end, as (seq, a copy of the pixels): lossless, from
    the oldest frame the channel still keeps (a reader that opens a moment late loses none)."""
    got = []
    with shmframes.Reader(name, timeout=timeout, lossless=True, start="oldest") as r:
        for f in r:
            got.append((f.seq, f.array.copy()))
    return got


def test_gst_inspect_documents_both_elements():
    for element, props in [
        ("shmframessrc", ["channel", "timeout", "follow", "lossless", "anticipate", "raw", "raw-format"]),
        ("shmframessink", ["channel", "buffer-frames", "max-readers", "when-full", "raw"]),
    ]:
        out = subprocess.run(["gst-inspect-1.0", element], env=gst_env(), capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        for p in props:
            line = re.search(rf"^\s+{re.escape(p)}\s+: (.+)$", out.stdout, re.M)
            assert line and len(line.group(1)) > 20, f"{element} {p}: no description in\n{out.stdout}"
        assert "shmframes" in out.stdout
    # The format list comes from the core's table: every format the Python side knows.
    out = subprocess.run(["gst-inspect-1.0", "shmframessrc"], env=gst_env(), capture_output=True, text=True, timeout=60)
    for name in shmframes.pixel_formats():
        assert re.search(rf"header-less stream \(.*\b{name}\b", out.stdout), f"raw-format does not list {name}"
    # The release date comes from the build (SOURCE_DATE_EPOCH, the commit's date or the build's day).
    out = subprocess.run(["gst-inspect-1.0", "shmframes"], env=gst_env(), capture_output=True, text=True, timeout=60)
    date = re.search(r"^\s+Source release date\s+(\S+)$", out.stdout, re.M)
    assert date and re.fullmatch(r"\d{4}-\d{2}-\d{2}", date.group(1)), out.stdout


def test_recipe_watch_shows_the_pattern_in_a_window(procs, channel, tmp_path):
    if shutil.which("Xvfb") is None or shutil.which("import") is None:
        pytest.skip("needs Xvfb and ImageMagick's import (.ci/setup installs them)")
    cv2 = pytest.importorskip("cv2")
    display = f":{100 + os.getpid() % 97}"
    xvfb = procs.start(["Xvfb", display, "-screen", "0", "1280x720x24", "-br", "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: os.path.exists(f"/tmp/.X11-unix/X{display[1:]}") and xvfb.poll() is None), "Xvfb did not start"
    procs.producer(channel, "--size", "640x360", "--fps", "30")
    p, out = launch(procs, recipe("watch", {"channel=shm_video": f"channel={channel}"}), DISPLAY=display)
    shot = tmp_path / "screen.png"
    for _ in range(40):
        time.sleep(0.5)
        assert p.poll() is None, out.text()
        if subprocess.run(["import", "-display", display, "-window", "root", str(shot)], capture_output=True).returncode != 0:
            continue
        img = cv2.imread(str(shot))
        lit = np.argwhere(img.max(axis=2) > 40)
        if len(lit) and (lit.max(axis=0) - lit.min(axis=0)).min() >= 300:
            (y0, x0), (y1, x1) = lit.min(axis=0), lit.max(axis=0)
            assert (x1 - x0 + 1, y1 - y0 + 1) == (640, 360), f"window content {x1 - x0 + 1}x{y1 - y0 + 1}"
            assert_bars(img[y0 : y1 + 1, x0 : x1 + 1], tol=8)
            return
    pytest.fail(f"no window with the pattern appeared:\n{out.text()}")


def test_recipe_record_writes_an_mp4_that_opencv_plays(procs, channel, tmp_path):
    cv2 = pytest.importorskip("cv2")
    mp4 = tmp_path / "recording.mp4"
    procs.producer(channel, "--size", "640x360", "--fps", "30")
    p, out = launch(procs, recipe("record", {"channel=shm_video": f"channel={channel}", "location=recording.mp4": f"location={mp4}"}))
    assert wait_until(lambda: reads(channel, p.pid), 20), out.text()
    time.sleep(3)
    p.send_signal(signal.SIGINT)  # Ctrl+C: -e sends EOS, mp4mux finishes the file
    text = finish(p, out, 30)
    assert p.returncode == 0, text
    cap = cv2.VideoCapture(str(mp4))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    # 3 s at 30 fps, give or take the start and a busy machine.
    assert 30 <= len(frames) <= 130, f"{len(frames)} frames in a 3 s recording"
    assert frames[0].shape == (360, 640, 3)
    assert_bars(frames[len(frames) // 2])


def test_a_recording_has_every_frame_and_gstreamer_decodes_it_back(procs, channel, other, tmp_path):
    """frame-producer -> shmframessrc ! x264enc ! mp4mux, lossless: the file holds all 60 frames
    at 1080p; decoded by GStreamer into another channel, Python sees 60 frames with the bars."""
    cv2 = pytest.importorskip("cv2")
    mp4 = tmp_path / "exact.mp4"
    procs.producer(channel, "--size", "1920x1080", "--frames", "60", "--fps", "60", "--when-full", "wait")
    p, out = gst(procs, f"shmframessrc channel={channel} lossless=true ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast ! mp4mux ! filesink location={mp4}")
    text = finish(p, out, 120)
    assert p.returncode == 0, text
    p, out = gst(procs, f"filesrc location={mp4} ! qtdemux ! avdec_h264 ! videoconvert ! video/x-raw,format=BGR ! shmframessink channel={other} when-full=wait sync=false")
    got = read_all(other)
    assert finish(p, out) is not None and p.returncode == 0, out.text()
    assert [s for s, _ in got] == list(range(60)), f"{len(got)} frames decoded"
    assert got[0][1].shape == (1080, 1920, 3)
    assert_bars(got[0][1])
    assert_bars(got[-1][1])
    # OpenCV reads the same file.
    cap = cv2.VideoCapture(str(mp4))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 60


def test_recipes_send_and_receive_carry_a_channel_over_rtp(procs, channel, other):
    port = free_port()
    recv, rout = launch(procs, recipe("receive", {"port=5000": f"port={port}", "channel=shm_video": f"channel={other}"}))
    procs.producer(channel, "--size", "640x360", "--fps", "30")
    send, sout = launch(procs, recipe("send", {"channel=shm_video": f"channel={channel}", "host=RECEIVER": "host=127.0.0.1", "port=5000": f"port={port}"}))
    with shmframes.Reader(other, timeout=30) as r:
        first = r.read(timeout=30)
        assert first is not None, f"nothing arrived\nsend:\n{sout.text()}\nreceive:\n{rout.text()}"
        del first
        t0, n, last = time.monotonic(), 0, None
        while time.monotonic() - t0 < 3:
            f = r.read(timeout=5)
            assert f is not None, f"the stream stopped\nsend:\n{sout.text()}\nreceive:\n{rout.text()}"
            n += 1
            last = f.array.copy()
            del f
        fps = n / (time.monotonic() - t0)
    assert 20 <= fps <= 40, f"{fps:.1f} frames/s arrived from a 30 frames/s producer"
    assert last is not None and last.shape == (360, 640, 3)
    assert_bars(last)
    assert send.poll() is None and recv.poll() is None


def test_recipe_file_feeds_a_video_file_into_a_channel(procs, channel, other, tmp_path):
    clip = tmp_path / "recording.mp4"
    procs.producer(channel, "--size", "320x240", "--frames", "30", "--when-full", "wait")
    p, out = gst(procs, f"shmframessrc channel={channel} lossless=true ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast ! mp4mux ! filesink location={clip}")
    assert finish(p, out, 60) is not None and p.returncode == 0, out.text()
    p, out = launch(procs, recipe("file", {"location=recording.mp4": f"location={clip}", "channel=shm_video": f"channel={other}"}))
    # The file's 30 frames at its 30 frames/s; the channel keeps 4, so a reader that opens
    # within 100 ms of the first loses none.
    got = read_all(other)
    finish(p, out)
    assert p.returncode == 0, out.text()
    assert [s for s, _ in got] == list(range(30)), f"{len(got)} frames: {[s for s, _ in got]}"
    assert got[0][1].shape == (240, 320, 3)
    assert_bars(got[-1][1])


def test_recipe_rtsp_is_a_well_formed_pipeline(procs, other):
    """No camera here: pointed at a port nobody listens on, the recipe must fail in rtspsrc's
    connection, not in parsing (every element and property exists)."""
    port = free_port(socket.SOCK_STREAM)
    p, out = launch(procs, recipe("rtsp", {"location=rtsp://CAMERA/stream": f"location=rtsp://127.0.0.1:{port}/stream", "channel=shm_video": f"channel={other}"}))
    text = finish(p, out, 60)
    assert p.returncode != 0
    assert re.search(r"ERROR: from element .*rtspsrc0.*Could not open resource", text), text
    assert "no element" not in text and "no property" not in text, text


def test_videotestsrc_300_buffers_and_the_end_reach_python(procs, channel):
    p, out = gst(procs, f"videotestsrc num-buffers=300 ! shmframessink channel={channel} when-full=wait sync=false")
    seqs = []
    with shmframes.Reader(channel, timeout=30, lossless=True) as r:
        for f in r:  # ends at the end of stream
            seqs.append(f.seq)
            shape = f.array.shape
    assert seqs == list(range(300))
    assert shape[:2] == (240, 320)
    finish(p, out)
    assert p.returncode == 0, out.text()
    assert not os.path.exists(f"/dev/shm/{channel}"), "the sink removed its channel at EOS"


def test_a_killed_producer_is_a_pipeline_error_within_a_second(procs, channel):
    prod = procs.producer(channel, "--size", "320x240", "--fps", "30")
    p, out = gst(procs, f"shmframessrc channel={channel} ! fakesink")
    assert wait_until(lambda: reads(channel, p.pid, 3), 20), out.text()
    kill9(prod)
    t0 = time.monotonic()
    text = finish(p, out, 10)
    err = out.first(r"^ERROR: from element .*shmframessrc")
    assert err is not None, text
    assert err[0] - t0 < 1.0, f"the error came {err[0] - t0:.2f} s after the kill"
    assert "producer" in err[1] and channel in err[1], err[1]
    assert p.returncode != 0


def test_with_follow_a_pipeline_resumes_on_a_new_producer_of_another_size(procs, channel, other):
    """shmframessrc follow=true ! shmframessink: the producer is killed and another starts with
    another size; the pipeline renegotiates and goes on (the sink starts its channel again)."""
    prod = procs.producer(channel, "--size", "320x240", "--fps", "30")
    p, out = gst(procs, f"shmframessrc channel={channel} follow=true ! shmframessink channel={other}")
    with shmframes.Reader(other, timeout=30, follow=True) as r:
        f = r.read(timeout=20)
        assert f is not None and f.array.shape == (240, 320, 3), out.text()
        del f
        kill9(prod)
        procs.producer(channel, "--size", "640x360", "--fps", "30")
        def bigger() -> bool:
            f = r.read(timeout=0.5)
            return f is not None and f.array.shape == (360, 640, 3)
        assert wait_until(bigger, 20), f"no frame of the new size\n{out.text()}"
    assert p.poll() is None, out.text()
