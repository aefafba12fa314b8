"""Writer.frame(): Python producers draw in place into a lent slot (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

import shmframes


def test_a_slot_is_drawn_in_place_and_published(channel: str) -> None:
    with shmframes.Writer(channel, 32, 16, buffer_frames=2) as w, shmframes.Reader(channel, timeout=5, lossless=True) as r:
        slot = w.frame()
        assert slot is not None and slot.seq == 0
        a = slot.array
        assert a.shape == (16, 32, 3) and a.dtype == np.uint8 and a.flags.writeable and a.flags.c_contiguous
        a[:] = 7
        a[0, 0] = (1, 2, 3)
        slot.capture_ns = 12345
        assert slot.publish() == 0
        f = r.read(timeout=5)
        assert f is not None and f.capture_ns == 12345 and f.seq == 0
        assert list(f.array[0, 0]) == [1, 2, 3] and int(f.array[1:].min()) == 7
        with pytest.raises(shmframes.Closed):
            slot.array  # noqa: B018
        with pytest.raises(shmframes.Closed):
            slot.publish()


def test_a_stale_view_can_change_no_frame(channel: str) -> None:
    with shmframes.Writer(channel, 64, 48, buffer_frames=2) as w, shmframes.Reader(channel, timeout=5, lossless=True) as r:
        stale = []
        for v in range(1, 16):
            slot = w.frame(timeout=5)
            assert slot is not None
            slot.array.fill(v)
            stale.append(slot.array[::2, 1:])  # a derived view, kept past publish
            stale.append(slot.array)
            slot.publish()
            assert int(stale[-1].max()) == 0, "after publish the array still shows the slot"
            for s in stale:
                s.fill(0xEE)  # scribbles nowhere
            f = r.read(timeout=5)
            assert f is not None and int(f.array.min()) == v == int(f.array.max()), f"frame {v} changed"


def test_the_context_manager_publishes_or_discards(channel: str) -> None:
    with shmframes.Writer(channel, 8, 8) as w, shmframes.Reader(channel, timeout=5, lossless=True) as r:
        with pytest.raises(RuntimeError):
            with w.frame() as slot:
                slot.array[:] = 1
                raise RuntimeError("the camera failed mid-frame")
        assert slot.done and r.read(timeout=0.05) is None, "a half-drawn frame was published"
        with w.frame() as slot:
            slot.array[:] = 2
        f = r.read(timeout=5)
        assert f is not None and int(f.array.min()) == 2


def test_one_slot_at_a_time(channel: str) -> None:
    with shmframes.Writer(channel, 8, 8) as w, shmframes.Reader(channel, timeout=5, lossless=True) as r:
        first = w.frame()
        second = w.frame()  # discards the first
        assert first is not None and second is not None
        with pytest.raises(shmframes.Closed, match="one slot at a time"):
            first.publish()
        second.array[:] = 3
        second.publish()
        f = r.read(timeout=5)
        assert f is not None and int(f.array.max()) == 3
        dropped = w.frame()
        del dropped  # forgotten unpublished: discarded, nothing published
        assert r.read(timeout=0.05) is None


def test_no_room_gives_none_and_a_raw_channel_slot_works(channel: str) -> None:
    with shmframes.Writer(channel, 8, 8, buffer_frames=1) as w, shmframes.Reader(channel, timeout=5, lossless=True):
        while True:  # fill the channel; the lossless reader reads nothing
            s = w.frame(timeout=0)
            if s is None:
                break
            s.publish()
    raw = channel + "-raw"
    try:
        with shmframes.Writer(raw, 4, 2, raw=True) as w, shmframes.Reader(raw, timeout=5, raw=(2, 4, "bgr")) as r:
            with w.frame() as slot:
                slot.array[:] = 9
            f = r.read(timeout=5)
            assert f is not None and int(f.array.min()) == 9
    finally:
        try:
            import os

            os.unlink(f"/dev/shm/{raw}")
        except FileNotFoundError:
            pass
