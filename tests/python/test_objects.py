"""Python objects as a user meets them (issues 27 and 22): arguments checked with the right
builtin and the argument's name, final figures after `with`, closed objects refused, slots that
refuse a second ending, readable signatures, the buffer protocol, the defaults policy, errors
that stay raised after a producer's death, and statistics that measure only what they saw."""

from __future__ import annotations

import inspect
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import shmframes
from conftest import wait_until


def test_bad_arguments_raise_value_or_type_error_naming_the_argument(channel):
    with pytest.raises(ValueError, match="width"):
        shmframes.Writer(channel, width=-1, height=10)
    with pytest.raises(ValueError, match="height"):
        shmframes.Writer(channel, width=10, height=2**40)
    with pytest.raises(TypeError, match="height"):
        shmframes.Writer(channel, width=10, height=10.5)
    with pytest.raises(TypeError, match="name"):
        shmframes.Reader(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name"):
        shmframes.Writer(123, 8, 8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer_frames"):
        shmframes.Writer(channel, 8, 8, buffer_frames=-2)
    with pytest.raises(TypeError, match="start"):
        shmframes.Reader(channel, timeout=0, start=1)  # type: ignore[arg-type]


def test_raw_on_a_framed_channel_is_refused(channel):
    with shmframes.Writer(channel, 64, 48):
        with pytest.raises(ValueError, match="framed"):
            shmframes.Reader(channel, timeout=0, raw="640x480")
        assert shmframes.readers(channel) == []  # the refused reader left its place


def test_final_figures_after_with_and_closed_objects_refused(channel):
    with shmframes.Writer(channel, 8, 8) as w:
        with shmframes.Reader(channel, timeout=0) as r:
            w.write(np.zeros((8, 8, 3), np.uint8))
            assert r.read(timeout=5) is not None
        assert r.closed and r.dropped == 0 and r.lag == 0 and r.frames_held == 0
        assert r.producer_state == "live"
        with pytest.raises(shmframes.Closed):
            with r:
                pass
        with pytest.raises(shmframes.Closed):
            r.read(timeout=0)
    assert "closed" in repr(w) and w.closed and w.frames_published == 1
    with pytest.raises(shmframes.Closed):
        with w:
            pass


def test_a_slot_ends_once(channel):
    with shmframes.Writer(channel, 8, 8) as w:
        slot = w.frame(timeout=0)
        assert slot is not None
        slot.publish()
        with pytest.raises(shmframes.Closed, match="published already"):
            slot.discard()
        with pytest.raises(shmframes.Closed, match="published already"):
            slot.publish()
        other = w.frame(timeout=0)
        assert other is not None
        other.discard()
        with pytest.raises(shmframes.Closed, match="discarded already"):
            other.discard()
        with pytest.raises(shmframes.Closed, match="discarded already"):
            other.publish()
        assert "discarded" in repr(other)


def test_signatures_read_as_written():
    writer = str(inspect.signature(shmframes.Writer))
    assert "mode=0o600" in writer and "buffer_frames=4" in writer, writer
    reader = str(inspect.signature(shmframes.Reader))
    assert "timeout=10.0" in reader and "start='newest'" in reader, reader
    assert "mode=0o600" in shmframes.Writer.__doc__


def test_memoryview_is_zero_copy_read_only_and_holds_the_frame(channel):
    with shmframes.Writer(channel, 65, 4) as w, shmframes.Reader(channel, timeout=0) as r:
        src = (np.arange(4 * 65 * 3) % 251).astype(np.uint8).reshape(4, 65, 3)
        w.write(src)
        frame = r.read(timeout=5)
        view = memoryview(frame)
        assert view.readonly and view.format == "B" and view.itemsize == 1
        assert view.shape == frame.shape == (4, 65, 3)
        assert view.strides == frame.strides
        assert view.obj is frame
        pixels = np.asarray(view)
        address = pixels.__array_interface__["data"][0]
        assert address == frame.array.__array_interface__["data"][0]  # the same bytes
        assert np.array_equal(pixels, src) and not pixels.flags.writeable
        with pytest.raises(TypeError):
            view[0, 0, 0] = 1  # type: ignore[index]
        # The view holds the frame, even after the frame object let go of it.
        frame.release()
        assert r.frames_held == 1
        del pixels
        view.release()
        assert r.frames_held == 0
        # A released frame exports nothing.
        with pytest.raises(shmframes.Closed):
            memoryview(frame)


def test_default_waits_policy_in_signatures():
    """One policy: a reader waits 10 s for its channel (Python, view, frame-stats, viewer)."""
    assert inspect.signature(shmframes.Reader).parameters["timeout"].default == 10.0
    from shmframes import view

    assert view.parse_args([]).timeout == 10.0


def test_a_dead_producer_stays_dead(procs, channel):
    """Issue 27's done-when: after SIGKILL, three read(timeout=1) each raise ProducerGone
    within 50 ms, and so does latest(); producer_state is "gone" within 50 ms of the death
    without a read."""
    p = procs.producer(channel, "--size", "64x48", "--fps", "100")
    with shmframes.Reader(channel, timeout=20) as r:
        assert r.read(timeout=20) is not None
        assert r.producer_state == "live"
        p.send_signal(signal.SIGKILL)
        p.wait()
        died = time.monotonic()
        assert wait_until(lambda: r.producer_state == "gone", 5.0)
        noticed = time.monotonic() - died
        # Drain what was published before the death; then it is final.
        with pytest.raises(shmframes.ProducerGone):
            while r.read(timeout=1) is not None:
                pass
        for call in [lambda: r.read(timeout=1)] * 3 + [lambda: r.latest()]:
            t = time.monotonic()
            with pytest.raises(shmframes.ProducerGone):
                call()
            assert time.monotonic() - t < 0.05
        with pytest.raises(shmframes.ProducerGone):
            next(iter(r))
    assert noticed < 0.05, f"producer_state said gone {noticed * 1e3:.1f} ms after the death"


def test_stats_measure_only_frames_published_after_attaching(channel):
    with shmframes.Writer(channel, 8, 8) as w:
        w.write(np.zeros((8, 8, 3), np.uint8))  # there before the reader
        time.sleep(0.3)
        with shmframes.Reader(channel, timeout=0) as r:
            stats = shmframes.Stats(since_ns=r.attached_ns)
            with r.read(timeout=5) as f:
                stats.record(f)
            assert stats.frames == 0 and stats.before_attach == 1
            w.write(np.zeros((8, 8, 3), np.uint8))
            with r.read(timeout=5) as f:
                stats.record(f)
            window = stats.take_window()
            assert window["frames"] == 1 and window["latency_max_ms"] < 250, window
            assert "total: 2 frames" in stats.summary(), stats.summary()
            assert "1 of them published before attaching" in stats.summary(), stats.summary()


def test_view_and_stats_wait_for_a_slow_live_producer(procs, channel):
    """A documented --fps 0.05 producer: nothing for 20 s, alive. With --timeout 0.5 neither
    the view nor frame-stats gives up; Ctrl+C ends each with its summary, exit 0."""
    from conftest import binary

    procs.producer(channel, "--size", "64x48", "--fps", "0.05")
    assert wait_until(lambda: os.path.exists(f"/dev/shm/{channel}"))
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    view = procs.start([sys.executable, "-m", "shmframes.view", channel, "--headless", "--timeout", "0.5"],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stats = procs.start([binary("frame-stats"), channel, "--timeout", "0.5"], stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    assert view.poll() is None, view.communicate()
    assert stats.poll() is None, stats.communicate()
    for p in (view, stats):
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err


def test_overlay_reads_on_any_picture_and_fits_small_frames():
    cv2 = pytest.importorskip("cv2")
    from shmframes.view import _overlay, _overlay_layout

    lines = ["320x240 gray  30.0 fps", "latency 0.12 ms  dropped 0"]
    for width, height, scale in [(320, 240, 1.0), (1920, 1080, 0.5), (160, 90, 1.0)]:
        size, thick, placed, (x0, y0, x1, y1) = _overlay_layout(width, height, lines, scale)
        assert 0 <= x0 < x1 < width and 0 <= y0 < y1 < height
        for line, (x, y) in placed:
            (w, h), base = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, size, thick)
            assert x0 <= x and x + w <= x1 and y0 <= y - h and y + base <= y1, (width, line)
    grey = np.full((240, 320, 3), 191, np.uint8)  # the pattern's 75 % grey bar
    out = _overlay(grey, lines, 1.0)
    _, _, _, (x0, y0, x1, y1) = _overlay_layout(320, 240, lines, 1.0)
    box = out[y0 : y1 + 1, x0 : x1 + 1]
    assert box.min() == 0 and box.max() == 255  # white text on black: 21:1, whatever is under
    assert np.array_equal(out[y1 + 2 :], grey[y1 + 2 :])  # the rest of the picture untouched


def test_demo_lines_say_whose_they_are(procs, channel):
    """`make demo` without a display: the producer's and the view's lines share one terminal; the
    view's begin `[name]`, the producer's `frame-producer [name]`."""
    from conftest import binary

    p = procs.start([binary("frame-producer"), "--name", channel, "--size", "64x48", "--fps", "30"],
                    stderr=subprocess.PIPE, text=True)
    lines = []
    assert p.stderr is not None
    while len(lines) < 4:
        line = p.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "fps" in line and "MB/s" in line:
            assert line.startswith(f"frame-producer [{channel}]"), line
            break
    else:
        pytest.fail(f"no status line: {lines}")
    assert any(line.startswith(f"frame-producer [{channel}]") for line in lines), lines


def test_readers_writers_and_frames_refuse_pickling_with_what_to_do(channel):
    """multiprocessing (spawn: Windows, macOS) pickles what it hands a child: a Reader, Writer
    or Frame cannot move to another process, and the error says what to pass instead."""
    import pickle

    with shmframes.Writer(channel, 8, 8) as w:
        r = shmframes.Reader(channel)
        w.write(np.zeros((8, 8, 3), np.uint8))
        f = r.read(timeout=5)
        assert f is not None
        for obj, hint in ((r, f'shmframes.Reader("{channel}")'), (w, "create the Writer"), (f, "frame.array.copy()")):
            with pytest.raises(TypeError, match=re.escape(hint)):
                pickle.dumps(obj)
        f.release()
        r.close()
