"""The Python package against the real frame-producer, across processes."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

import shmframes
from conftest import Lines, binary, exists, kill9, wait_until

# 75 % colour bars of the synthetic pattern, RGB (README, "The test pattern").
BARS = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191)]


def open_reader(name: str, **kw) -> shmframes.Reader:  # type: ignore[no-untyped-def]
    """A lossless reader: a producer with --when-full wait delivers every frame to it."""
    kw.setdefault("lossless", True)
    return shmframes.Reader(name, timeout=20.0, **kw)


def test_all_frames_arrive_in_order_with_pixels_and_metadata(procs, channel):
    p = procs.producer(channel, "--size", "640x360", "--fps", "0", "--frames", "120", "--when-full", "wait")
    seqs = []
    with open_reader(channel) as reader:
        for frame in reader:
            a = frame.array
            assert a.shape == (360, 640, 3) and a.dtype == np.uint8
            assert not a.flags.writeable, "frames are read-only views of shared memory"
            assert frame.format == "bgr" and (frame.width, frame.height) == (640, 360)
            assert 0 < frame.capture_ns <= frame.publish_ns <= shmframes.monotonic_ns()
            for i, rgb in enumerate(BARS):
                x = (2 * i + 1) * 640 // 14
                assert tuple(a[120, x][::-1]) == rgb, f"bar {i} of frame {frame.seq}"
            seqs.append(frame.seq)
    assert seqs == list(range(120))
    assert p.wait(20) == 0
    assert not exists(channel)


def test_zero_copy_view_is_the_shared_memory(procs, channel):
    procs.producer(channel, "--size", "64x64", "--fps", "0", "--frames", "8", "--when-full", "wait")
    with open_reader(channel) as reader:
        f = reader.read(timeout=20)
        a = f.array
        assert a.base is not None, "the array is a view, not a copy"
        assert f.array is a, "repeated access returns the same view"
        assert a.ctypes.data % 64 == 0, "pixels are 64-byte aligned"
        c = f.copy()
        assert c.flags.writeable and c.base is None or c.base is not a
        assert np.array_equal(c, a)
        del a
        f.release()  # held, it would stop the (lossless) producer from finishing
        assert sum(1 for _ in reader) == 7


def test_latest_skips_the_backlog(procs, channel):
    procs.producer(channel, "--size", "64x64", "--fps", "0", "--when-full", "wait", "--buffer-frames", "8")
    with open_reader(channel) as reader:
        first = reader.read(timeout=20)
        assert first is not None and first.seq == 0
        first.release()
        # The producer fills the ring while we wait; latest() jumps over everything queued.
        assert wait_until(lambda: reader.frames_held == 0)
        time.sleep(0.3)
        newest = reader.latest(timeout=20)
        assert newest is not None and newest.seq > 3, f"latest() returned frame {newest.seq}"
        nxt = reader.read(timeout=20)
        assert nxt is not None and nxt.seq > newest.seq


def test_held_frames_stay_intact_while_the_producer_keeps_writing(procs, channel):
    procs.producer(channel, "--size", "160x120", "--fps", "0", "--buffer-frames", "4")  # drop mode
    with open_reader(channel) as reader:
        held = [reader.read(timeout=20) for _ in range(3)]
        arrays = [f.array for f in held]
        copies = [a.copy() for a in arrays]
        time.sleep(0.5)  # the producer keeps writing (and dropping) meanwhile
        for f, a, c in zip(held, arrays, copies):
            assert np.array_equal(a, c), f"frame {f.seq} changed while held"
        # Release out of order: last, first, middle (the arrays hold leases too: drop them).
        del arrays, a
        for i in (2, 0, 1):
            held[i].release()
            assert reader.frames_held == (0 if i == 1 else 3 - [2, 0, 1].index(i) - 1)
        assert reader.frames_held == 0
        more = reader.read(timeout=20)
        assert more is not None and more.seq > held[2].seq


def test_arrays_keep_the_lease_after_release_and_close(procs, channel):
    procs.producer(channel, "--size", "160x120", "--fps", "0", "--buffer-frames", "2", "--max-readers", "1")
    reader = open_reader(channel)
    f = reader.read(timeout=20)
    a = f.array
    snapshot = a.copy()
    with f:
        pass  # leaving the block releases the frame object's hold...
    assert f.released
    with pytest.raises(shmframes.Error, match="released"):
        _ = f.array
    reader.close()  # ...but the array keeps the bytes leased and mapped
    assert reader.closed
    with pytest.raises(shmframes.Error, match="closed"):
        reader.read(timeout=0)
    time.sleep(0.3)
    assert np.array_equal(a, snapshot)
    # While the array lives, the reader's place stays taken (the one place of this channel);
    # once it is gone, it is free.
    with pytest.raises(shmframes.ChannelBusy):
        shmframes.Reader(channel)
    del a
    gc.collect()
    with shmframes.Reader(channel) as again:
        assert again.read(timeout=20) is not None


def test_channel_not_found(channel):
    with pytest.raises(shmframes.ChannelNotFound, match="start the producer"):
        shmframes.Reader(channel, timeout=0)
    t = time.monotonic()
    with pytest.raises(shmframes.ChannelNotFound, match="after waiting"):
        shmframes.Reader(channel, timeout=0.3)
    assert time.monotonic() - t >= 0.3


def test_producer_gone_after_sigkill(procs, channel):
    p = procs.producer(channel, "--size", "64x64", "--fps", "100")
    with open_reader(channel) as reader:
        assert reader.read(timeout=20) is not None
        assert reader.producer_state == "live"
        kill9(p)
        t = time.monotonic()
        with pytest.raises(shmframes.ProducerGone, match="gone"):
            while True:
                reader.read(timeout=5)
        assert time.monotonic() - t < 2.0
        assert reader.producer_state == "gone"


def test_channel_busy_only_when_every_place_is_taken(procs, channel):
    procs.producer(channel, "--size", "64x64", "--fps", "10", "--max-readers", "2")
    with open_reader(channel), open_reader(channel):
        with pytest.raises(shmframes.ChannelBusy, match="--max-readers"):
            shmframes.Reader(channel)
    raw = channel + "-raw"
    procs.producer(raw, "--size", "64x64", "--fps", "10", "--raw")
    try:
        with open_reader(raw, raw=(64, 64, "bgr")):
            with pytest.raises(shmframes.ChannelBusy, match="single-consumer"):
                shmframes.Reader(raw, raw=(64, 64, "bgr"))
    finally:
        procs.cleanup()
        if exists(raw):
            os.unlink(f"/dev/shm/{raw}")


def test_protocol_error_on_corrupt_segment(channel):
    header = struct.pack("<IIII", 0, 0, 48, 0)  # capacity 48: not a power of two
    with open(f"/dev/shm/{channel}", "wb") as f:
        f.write(header + bytes(64))
    with pytest.raises(shmframes.ProtocolError, match="power of two"):
        shmframes.Reader(channel)
    with open(f"/dev/shm/{channel}", "wb") as f:
        f.write(struct.pack("<IIII", 64, 0, 64, 0) + struct.pack("<I", 0x7FFFFFFF) + bytes(60))
    with shmframes.Reader(channel, raw=(1, 4, "gray")) as r:
        with pytest.raises(shmframes.ProtocolError, match="length prefix"):
            r.read(timeout=5)


def test_end_of_stream_ends_iteration_and_read_raises(procs, channel):
    procs.producer(channel, "--size", "64x64", "--fps", "0", "--frames", "10", "--when-full", "wait")
    with open_reader(channel) as reader:
        assert sum(1 for _ in reader) == 10  # (a list would hold every frame: more than the ring)
        with pytest.raises(shmframes.EndOfStream):
            reader.read(timeout=1)
        assert reader.producer_state == "ended"


def test_producer_alive_for_a_second_writer(channel):
    with shmframes.Writer(channel, 32, 32) as w:
        with pytest.raises(shmframes.ProducerAlive, match="live producer"):
            shmframes.Writer(channel, 32, 32)
        assert w.name == channel
    assert not exists(channel)


def test_reads_a_raw_stream(procs, channel):
    procs.producer(channel, "--size", "320x200", "--fps", "0", "--frames", "30", "--raw", "--when-full", "wait", "--buffer-frames", "3")
    n = 0
    with open_reader(channel, raw=(200, 320, "bgr")) as reader:
        for frame in reader:
            assert frame.raw and frame.array.shape == (200, 320, 3)
            assert tuple(frame.array[50, 320 // 14][::-1]) == BARS[0]
            n += 1
            if n == 30:
                break
    assert n == 30


def test_writer_read_back_by_the_rust_reader(procs, channel):
    stats = procs.start(
        [binary("frame-stats"), channel, "--json", "--frames", "20", "--timeout", "20", "--lossless"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    rng = np.random.default_rng(7)
    sent = []
    with shmframes.Writer(channel, width=96, height=64, format="rgb", buffer_frames=4) as w:
        assert w.shape == [64, 96, 3]
        assert wait_until(lambda: w.readers == 1), "frame-stats never attached"
        for i in range(20):
            img = rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
            if i % 2:
                img = np.ascontiguousarray(img[:, ::-1])[:, ::-1]  # a strided view, copied right
            assert w.write(img, timeout=20, capture_ns=1000 + i)
            sent.append(zlib.crc32(np.ascontiguousarray(img).tobytes()))
    out, err = stats.communicate(timeout=30)
    assert stats.returncode == 0, err
    got = [json.loads(line) for line in out.decode().splitlines()]
    assert [g["seq"] for g in got] == list(range(20))
    assert [g["crc32"] for g in got] == sent
    assert all(g["format"] == "rgb" and g["width"] == 96 and g["capture_ns"] == 1000 + g["seq"] for g in got)


def test_writer_rejects_bad_arrays(channel):
    with shmframes.Writer(channel, 8, 4, format="gray") as w:
        with pytest.raises(ValueError, match="shape"):
            w.write(np.zeros((4, 8, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            w.write(np.zeros((4, 8), np.float32))
        assert w.write(np.zeros((4, 8), np.uint8), timeout=0)
        assert w.write(np.zeros((4, 8, 1), np.uint8), timeout=0)
    with pytest.raises(ValueError, match="unknown pixel format"):
        shmframes.Writer(channel, 8, 4, format="yuv")
    with pytest.raises(ValueError, match="empty"):  # a bad argument, like the format above
        shmframes.Writer(channel, 0, 4)


def test_waits_release_the_gil_and_ctrl_c_interrupts_promptly(channel):
    with shmframes.Writer(channel, 8, 8):
        code = (
            "import sys, time, shmframes\n"
            "r = shmframes.Reader(sys.argv[1])\n"
            "print('waiting', flush=True)\n"
            "try:\n"
            "    r.read()\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted', flush=True)\n"
        )
        p = subprocess.Popen([sys.executable, "-c", code, channel], stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout is not None and p.stdout.readline().strip() == "waiting"
            time.sleep(0.2)
            t = time.monotonic()
            p.send_signal(signal.SIGINT)
            out, _ = p.communicate(timeout=10)
            assert "interrupted" in out
            assert time.monotonic() - t < 2.0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_other_threads_run_while_a_read_waits(channel):
    import threading

    with shmframes.Writer(channel, 8, 8) as w, shmframes.Reader(channel) as r:
        result = []
        t = threading.Thread(target=lambda: result.append(r.read(timeout=10)))
        t.start()
        time.sleep(0.2)  # if read() held the GIL, this thread could not run to publish
        w.write(np.full((8, 8, 3), 5, np.uint8))
        t.join(10)
        assert result and result[0] is not None and int(result[0].array[0, 0, 0]) == 5


@pytest.mark.parametrize("wake", ["anticipate", "publish"])
def test_both_wakes_read_every_frame_of_a_steady_producer(procs, channel, wake):
    # "anticipate" (the default) learns the producer's rhythm, then reads each frame in two
    # parts (until its watch begins, a warm-up, the rest). Short timeouts end the first part
    # early: each read either returns a frame, in order, or None when its timeout passed.
    procs.producer(channel, "--size", "320x240", "--fps", "40", "--frames", "60", "--when-full", "wait")
    seqs, nones = [], 0
    with open_reader(channel, wake=wake) as reader:
        while len(seqs) < 60:
            timeout = 0.002 if len(seqs) % 2 else 20.0
            f = reader.read(timeout=timeout)
            if f is None:
                assert timeout < 1, "a 20 s read returned nothing from a 40 fps producer"
                nones += 1
                continue
            assert f.array.shape == (240, 320, 3)
            seqs.append(f.seq)
            f.release()
    assert seqs == list(range(60))
    assert nones > 0, "no 2 ms read ever timed out between frames 25 ms apart"


def test_an_anticipated_read_keeps_its_timeout(procs, channel):
    # A 4 fps producer, read until it is anticipated, then stopped (SIGSTOP) just after a
    # frame: the next read(timeout=0.3) reads until the watch would begin (~250 ms), warms up,
    # and reads on, all within the one 0.3 s it was given (it once restarted the timeout).
    p = procs.producer(channel, "--size", "64x48", "--fps", "4", "--frames", "100")
    with open_reader(channel, lossless=False) as reader:
        for _ in range(8):  # steady for 4 intervals and more
            f = reader.read(timeout=20)
            assert f is not None
            f.release()
        os.kill(p.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            reader.read(timeout=0.3)  # None, or a frame published just before the stop
            took = time.monotonic() - t0
        finally:
            os.kill(p.pid, signal.SIGCONT)
    assert took < 0.45, f"read(timeout=0.3) took {took:.3f} s"


def test_wake_is_checked(channel):
    with shmframes.Writer(channel, 8, 8):
        with pytest.raises(ValueError, match='wake must be "anticipate" or "publish", not "soon"'):
            shmframes.Reader(channel, wake="soon")
    out = subprocess.run([sys.executable, "-m", "shmframes.view", channel, "--wake", "soon"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice: 'soon'" in out.stderr, out.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timer slack is Linux's")
def test_precise_timers_sets_this_threads_timer_slack():
    # In a child: the setting stays with the thread (here the main one, which /proc/self shows).
    code = "import shmframes; before = open('/proc/self/timerslack_ns').read().strip(); print(before, shmframes.precise_timers(), open('/proc/self/timerslack_ns').read().strip())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    before, took, after = out.stdout.split()
    assert (took, after) == ("True", "1") and int(before) > 1, out.stdout


def test_view_headless(procs, channel):
    procs.producer(channel, "--size", "320x240", "--fps", "100", "--frames", "1000")
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    out = subprocess.run(
        [sys.executable, "-m", "shmframes.view", channel, "--headless", "--frames", "50", "--timeout", "20"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    # 50 frames read; the newest one already there when it attached (if one was) is shown, not
    # measured.
    assert "total: 50 frames" in out.stdout and (
        "published before attaching" not in out.stdout or "1 of them published before attaching" in out.stdout
    ), out.stdout
    assert "latency p50" in out.stdout


def test_view_without_a_display_falls_back_to_stats(procs, channel):
    procs.producer(channel, "--size", "64x64", "--fps", "0", "--frames", "30", "--when-full", "wait")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run([sys.executable, "-m", "shmframes.view", channel, "--timeout", "20"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "no display" in out.stderr and "ended the stream" in out.stderr
    # A default (lossy) reader never slows the producer: against a full-speed stream it may
    # lose frames, and counts each one. The producer waits for its first reader, so the view
    # starts at frame 0: every one of the 30 frames is either shown or counted as dropped.
    m = re.search(r"total: (\d+) frames .* dropped (\d+),", out.stdout)
    assert m and int(m[1]) + int(m[2]) == 30, out.stdout


def test_view_errors_are_one_clear_line(channel):
    out = subprocess.run([sys.executable, "-m", "shmframes.view", channel, "--headless", "--timeout", "0.1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.startswith("shmframes.view: error")]
    assert len(lines) == 1 and "no channel named" in lines[0], out.stderr
    assert "waiting for channel" in out.stderr, out.stderr  # it said what it waited for
    assert "Traceback" not in out.stderr


def test_errors_are_also_the_builtin_that_fits(channel):
    for cls, builtin in [
        (shmframes.ChannelNotFound, FileNotFoundError),
        (shmframes.PermissionDenied, PermissionError),
        (shmframes.NameTaken, FileExistsError),
        (shmframes.ProducerAlive, FileExistsError),
        (shmframes.ChannelBusy, BlockingIOError),
        (shmframes.ProducerGone, ConnectionError),
        (shmframes.EndOfStream, EOFError),
        (shmframes.ProtocolError, ValueError),
        (shmframes.NoSpace, OSError),
        (shmframes.Closed, ValueError),
    ]:
        assert issubclass(cls, shmframes.Error) and issubclass(cls, builtin), cls
    with pytest.raises(FileNotFoundError, match="start the producer"):
        shmframes.Reader(channel + "-missing", timeout=0)
    with shmframes.Writer(channel, 8, 8):
        with pytest.raises(FileExistsError, match="live producer"):
            shmframes.Writer(channel, 8, 8)
        r = shmframes.Reader(channel)
        r.close()
        with pytest.raises(shmframes.Closed, match="closed"):
            r.read(timeout=0)
    # What the caller passed wrongly: ValueError, whatever the argument.
    for bad in [lambda: shmframes.Reader("a/b"), lambda: shmframes.Reader(channel, raw=(0, 4, "bgr")),
                lambda: shmframes.Writer(channel, 7, 4, format="nv12"), lambda: shmframes.Reader(channel, timeout=-1)]:
        with pytest.raises(ValueError):
            bad()


def test_yuv_frames_pass_through_in_opencv_shapes(channel):
    with shmframes.Writer(channel, 64, 32, format="nv12") as w, shmframes.Reader(channel) as r:
        assert w.shape == [48, 64]
        src = (np.arange(48 * 64) % 251).astype(np.uint8).reshape(48, 64)
        assert w.write(src, timeout=0)
        f = r.read(timeout=5)
        assert f.format == "nv12" and f.array.shape == (48, 64)
        assert np.array_equal(f.array, src)
    assert shmframes.pixel_formats()["yuyv"]["opencv_to_bgr"] == "COLOR_YUV2BGR_YUYV"


def test_stats_count_frames_drops_and_latency(channel):
    with shmframes.Writer(channel, 8, 8, buffer_frames=4) as w, shmframes.Reader(channel) as r:
        stats = shmframes.Stats()
        for _ in range(3):
            assert w.write(np.zeros((8, 8, 3), np.uint8), timeout=0)
        for _ in range(3):
            with r.read(timeout=5) as f:
                stats.record(f)
        window = stats.take_window()
        assert window["frames"] == 3 and window["latency_p50_ms"] is not None
        assert stats.dropped == 0 and stats.frames == 3
        assert "total: 3 frames" in stats.summary()


LOSSLESS_CHILD = """
import json, sys, time, shmframes
import numpy  # now: imported by the first frame.array, it would count as a gap between frames
r = shmframes.Reader(sys.argv[1], timeout=20, lossless=True)
seqs, stamps = [], []
for f in r:
    seqs.append(f.seq)
    stamps.append(time.monotonic())
    a = f.array
    assert a[0, 0, 0] == a[0, 0, 0]
gaps = [b - a for a, b in zip(stamps, stamps[1:])] or [0.0]
print(json.dumps({"seqs": seqs, "dropped": r.dropped, "max_gap": max(gaps)}))
"""

SLEEPER_CHILD = """
import json, sys, time, shmframes
r = shmframes.Reader(sys.argv[1], timeout=20)
seqs = []
for _ in range(3):
    f = r.read(timeout=20)
    seqs.append(f.seq)
    time.sleep(1.0)  # holds the frame while it "works"
    del f
try:
    while True:
        f = r.read(timeout=20)
        seqs.append(f.seq)
except shmframes.EndOfStream:
    pass
print(json.dumps({"seqs": seqs, "dropped": r.dropped}))
"""


def test_many_readers_in_many_processes_and_a_sleeper_slows_nobody(procs, channel):
    """A lossless reader, a reader that sleeps 1 s per frame and the headless viewer, each in
    its own process, on one channel: the lossless reader gets every frame on time, the sleeper
    loses frames and counts them, the viewer runs."""
    p = procs.producer(channel, "--size", "160x120", "--fps", "100", "--frames", "400", "--when-full", "wait")
    lossless = procs.python(LOSSLESS_CHILD, channel, stdout=subprocess.PIPE)
    assert wait_until(lambda: exists(channel) and len(shmframes.readers(channel)) == 1), "the lossless reader never attached"
    sleeper = procs.python(SLEEPER_CHILD, channel, stdout=subprocess.PIPE)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    view = procs.start([sys.executable, "-m", "shmframes.view", channel, "--headless", "--timeout", "20"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    assert wait_until(lambda: len(shmframes.readers(channel)) == 3 or not exists(channel)), "three readers never attached"
    listed = shmframes.readers(channel) if exists(channel) else []
    assert sorted(r["lossless"] for r in listed) in ([], [False, False, True])
    assert p.wait(30) == 0
    out_l, _ = lossless.communicate(timeout=30)
    out_s, _ = sleeper.communicate(timeout=30)
    out_v, err_v = view.communicate(timeout=30)
    assert lossless.returncode == 0 and sleeper.returncode == 0 and view.returncode == 0, err_v
    got = json.loads(out_l)
    assert got["seqs"] == list(range(400)) and got["dropped"] == 0
    # 100 fps: a frame every 10 ms. Slowed by the sleeper, it would wait a second.
    assert got["max_gap"] < 0.5, f"the lossless reader waited {got['max_gap']:.3f} s for a frame"
    slept = json.loads(out_s)
    seqs = slept["seqs"]
    assert seqs == sorted(seqs) and slept["dropped"] > 0
    assert slept["dropped"] + len(seqs) == seqs[-1] - seqs[0] + 1, "every frame is either read or counted as dropped"
    assert "total:" in out_v


def context_switches(pid: int) -> int:
    """Context switches of every thread of process `pid` so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            for line in f:
                if "ctxt_switches" in line:
                    total += int(line.split()[1])
    return total


IDLE_CHILD = """
import sys, shmframes
r = shmframes.Reader(sys.argv[1], timeout=20)
for n in range(2):
    print("waiting", flush=True)
    try:
        r.read()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
"""


def test_an_idle_reader_never_wakes_and_ctrl_c_still_ends_its_read(procs, channel):
    """No periodic wake-up while a read waits on a quiet channel (no polling for the producer's
    life or for signals), and Ctrl+C still ends it at once, twice in a row."""
    with shmframes.Writer(channel, 8, 8):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        p = procs.python(IDLE_CHILD, channel, stdout=subprocess.PIPE, text=True, env=env)
        lines = Lines(p.stdout)
        for n in range(2):
            assert lines.next() == "waiting"
            time.sleep(0.5)  # settle into the sleep
            if n == 0:
                before = context_switches(p.pid)
                time.sleep(2.0)
                assert context_switches(p.pid) - before == 0, "an idle Python reader woke up"
            t = time.monotonic()
            p.send_signal(signal.SIGINT)
            assert lines.next() == "interrupted"
            assert time.monotonic() - t < 2.0
        assert p.wait(10) == 0


def test_writer_modes_are_permission_bits_that_keep_the_owners(channel):
    """Issue 16, point 5: mode=0o7777 used to create a setuid, setgid, world-writable segment."""
    for bad in (0o7777, 0o4600, 0, 0o100000, 0o400):
        with pytest.raises(ValueError, match="0o600"):
            shmframes.Writer(channel, 8, 8, mode=bad)
        assert not exists(channel)
    with shmframes.Writer(channel, 8, 8, mode=0o640):
        assert os.stat(f"/dev/shm/{channel}").st_mode & 0o7777 == 0o640


def test_an_infinite_timeout_waits_for_ever(channel):
    with shmframes.Writer(channel, 8, 8) as w:
        r = shmframes.Reader(channel, timeout=float("inf"))  # wait for ever, not an error
        w.write(np.full((8, 8, 3), 3, np.uint8), timeout=float("inf"))
        f = r.read(timeout=float("inf"))
        assert f is not None and int(f.array[0, 0, 0]) == 3
        r.close()


def test_view_ctrl_c_prints_the_summary_and_exits_0(procs, channel):
    procs.producer(channel, "--size", "64x48", "--fps", "100")
    view = procs.python(
        "import sys, shmframes.view; sys.exit(shmframes.view.main(sys.argv[1:]))",
        channel,
        "--headless",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Once it reads (its first once-a-second line), not before: Python may start slowly here.
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(view.stdout, selectors.EVENT_READ)
    assert sel.select(timeout=30), "the view printed nothing in 30 s"
    assert view.stdout.readline().startswith(f"[{channel}]")
    view.send_signal(signal.SIGINT)
    out, err = view.communicate(timeout=20)
    assert view.returncode == 0, err
    assert "total: " in out and "latency p50" in out, out
