"""Frames are arrays to numpy and DLPack consumers, in place (issue 15); raw shapes spelled as on
the command line."""

from __future__ import annotations

import numpy as np
import pytest

import shmframes


def _frame(w: shmframes.Writer, r: shmframes.Reader, value: int) -> shmframes.Frame:
    w.write(np.full((16, 32, 3), value, np.uint8))
    f = r.read(timeout=5)
    assert f is not None
    return f


def test_numpy_and_dlpack_share_the_frames_memory(channel: str) -> None:
    with shmframes.Writer(channel, 32, 16, buffer_frames=2) as w, shmframes.Reader(channel, timeout=5, lossless=True) as r:
        f = _frame(w, r, 7)
        assert f.shape == (16, 32, 3) == f.array.shape and f.dtype == np.uint8 and f.strides == f.array.strides
        a = np.asarray(f)
        assert np.shares_memory(a, f.array) and not a.flags.writeable
        assert not np.shares_memory(np.array(f, copy=True), f.array)
        assert np.asarray(f, dtype=np.float32).dtype == np.float32
        with pytest.raises(ValueError):
            np.asarray(f, dtype=np.float32, copy=False)
        d = np.from_dlpack(f)
        assert np.shares_memory(d, f.array) and not d.flags.writeable and int(d[0, 0, 0]) == 7
        assert f.__dlpack_device__() == (1, 0)


def test_a_dlpack_consumer_alone_keeps_the_lease(channel: str) -> None:
    with shmframes.Writer(channel, 32, 16, buffer_frames=1) as w, shmframes.Reader(channel, timeout=5) as r:
        f = _frame(w, r, 3)
        d = np.from_dlpack(f)
        f.release()
        del f
        for v in range(10, 30):  # a live producer: would overwrite an unleased frame
            w.write(np.full((16, 32, 3), v, np.uint8), timeout=0)
        assert int(d.min()) == 3 == int(d.max()), "the frame changed while a DLPack consumer held it"


def test_raw_shapes_are_spelled_as_on_the_command_line(channel: str) -> None:
    with shmframes.Writer(channel, 6, 4, raw=True) as w:
        w.write(np.arange(6 * 4 * 3, dtype=np.uint8).reshape(4, 6, 3))
        with shmframes.Reader(channel, timeout=5, raw="6x4") as r:  # WIDTHxHEIGHT, as --raw 6x4
            f = r.read(timeout=5)
            assert f is not None and f.array.shape == (4, 6, 3) and int(f.array[0, 1, 0]) == 3
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        shmframes.Reader(channel, raw="640")
    with pytest.raises(TypeError, match='raw="640x480"'):
        shmframes.Reader(channel, raw=640)


def test_opencv_takes_the_frames_array(channel: str) -> None:
    cv2 = pytest.importorskip("cv2", reason="OpenCV (.ci/setup installs it)")
    with shmframes.Writer(channel, 32, 16) as w, shmframes.Reader(channel, timeout=5) as r:
        f = _frame(w, r, 9)
        gray = cv2.cvtColor(f.array, cv2.COLOR_BGR2GRAY)  # what the README says to pass
        assert gray.shape == (16, 32) and int(gray[0, 0]) == 9
