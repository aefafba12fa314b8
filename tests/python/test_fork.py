"""Fork safety from Python (issue 16, point 1): forked workers (multiprocessing's fork start
method, PyTorch DataLoader workers) never release, free, end or unlink what their parent owns."""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest

import shmframes


def _exit_child_after(work) -> None:  # type: ignore[no-untyped-def]
    """In a forked child: run `work`, collect every object (finalizers run, as at a normal
    exit), and leave without returning into pytest. Exit status 0 only if `work` returned
    True."""
    ok = False
    try:
        ok = bool(work())
        gc.collect()
    finally:
        os._exit(0 if ok else 1)


def _fork(work) -> int:  # type: ignore[no-untyped-def]
    pid = os.fork()
    if pid == 0:
        _exit_child_after(work)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_dataloader_workers_leave_the_parents_frames_alone(channel: str) -> None:
    with shmframes.Writer(channel, 32, 16, buffer_frames=4) as w, shmframes.Reader(channel, timeout=5) as r:
        held = []
        for v in range(3):
            w.write(np.full((16, 32, 3), v, np.uint8))
            held.append(r.read(timeout=5))

        def worker() -> bool:
            # What a worker may do: look at the frames the parent held when it forked...
            seen = [int(f.array[0, 0, 0]) for f in held]
            # ...and not read with the parent's reader.
            try:
                r.read(timeout=0)
                return False
            except shmframes.ForkedChild as e:
                if "open a new reader" not in str(e):
                    return False
            # Releasing them, closing the reader and exiting must change nothing for the parent.
            for f in held:
                f.release()
            r.close()
            return seen == [0, 1, 2]

        assert [_fork(worker) for _ in range(2)] == [0, 0]
        for v in range(10, 40):  # had a worker released the frames, these would overwrite them
            w.write(np.full((16, 32, 3), v, np.uint8), timeout=0)
        assert [int(f.array.max()) for f in held] == [0, 1, 2], "held frames changed under the parent"
        assert [int(f.array.min()) for f in held] == [0, 1, 2]
        assert len(shmframes.readers(channel)) == 1, "a worker freed the parent's reader place"
        del held
        w.write(np.full((16, 32, 3), 99, np.uint8))
        f = r.latest(timeout=5)
        assert f is not None and int(f.array[0, 0, 0]) == 99, "the parent reads on"


def _mp_worker(r: shmframes.Reader, q) -> None:  # type: ignore[no-untyped-def]
    try:
        r.read(timeout=0)
        q.put("read")
    except shmframes.ForkedChild:
        q.put("refused")


def test_multiprocessing_fork_workers(channel: str) -> None:
    with shmframes.Writer(channel, 8, 8, buffer_frames=2) as w, shmframes.Reader(channel, timeout=5) as r:
        w.write(np.full((8, 8, 3), 1, np.uint8))
        frame = r.read(timeout=5)
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        workers = [ctx.Process(target=_mp_worker, args=(r, q)) for _ in range(2)]
        for p in workers:
            p.start()
        for p in workers:
            p.join(20)
            assert p.exitcode == 0
        assert sorted(q.get(timeout=5) for _ in workers) == ["refused", "refused"]
        for v in range(2, 20):
            w.write(np.full((8, 8, 3), v, np.uint8), timeout=0)
        assert int(frame.array[0, 0, 0]) == 1


def test_a_child_leaving_the_writers_with_block_does_not_end_the_stream(channel: str) -> None:
    with shmframes.Writer(channel, 8, 8) as w:
        r = shmframes.Reader(channel, timeout=5)

        def child() -> bool:
            with w:  # leaving the block ends nothing: the writer is the parent's
                pass
            try:
                w.write(np.zeros((8, 8, 3), np.uint8))
            except shmframes.ForkedChild:
                pass
            else:
                return False
            # A slot taken before the fork cannot be published from the child either.
            try:
                slot.publish()
            except shmframes.ForkedChild:
                return True
            return False

        slot = w.frame()
        slot.array[:] = 8

        assert _fork(child) == 0
        assert os.path.exists(f"/dev/shm/{channel}"), "the child unlinked the parent's channel"
        assert slot.publish() == 0, "the parent's slot is still the parent's to publish"
        f = r.read(timeout=5)
        assert f is not None and int(f.array[0, 0, 0]) == 8
        w.write(np.full((8, 8, 3), 5, np.uint8))
        f = r.read(timeout=5)
        assert f is not None and int(f.array[0, 0, 0]) == 5
        shmframes.Reader(channel, timeout=1).close()  # new readers still find it
        r.close()


def test_a_killed_producer_with_a_living_child_is_gone_at_once(procs, channel: str) -> None:  # type: ignore[no-untyped-def]
    # The producer forks a child that outlives it, holding copies of every descriptor. With
    # kernel liveness off, only the producer's lock tells its death: the child must not hold it.
    code = f"""
import os, sys, time, numpy as np, shmframes
w = shmframes.Writer({channel!r}, 8, 8)
pid = os.fork()
if pid == 0:
    time.sleep(30); os._exit(0)
print(pid, flush=True)
w.write(np.zeros((8, 8, 3), np.uint8))
time.sleep(30)
"""
    env = dict(os.environ, SHMFRAMES_LIVENESS="poll")
    import subprocess

    p = procs.python(code, stdout=subprocess.PIPE, text=True, env=env)
    child = int(p.stdout.readline())
    try:
        r = shmframes.Reader(channel, timeout=10)
        p.kill()
        p.wait()
        t0 = time.monotonic()
        with pytest.raises(shmframes.ProducerGone):
            while r.read(timeout=5) is not None:
                pass
        assert time.monotonic() - t0 < 2.0
        r.close()
        # And a new producer may replace the stale channel.
        shmframes.Writer(channel, 8, 8).close()
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_child_writing_through_an_inherited_slot_array_reaches_no_frame(channel: str) -> None:
    with shmframes.Writer(channel, 16, 8) as w, shmframes.Reader(channel, timeout=5, lossless=True) as r:
        slot = w.frame()
        slot.array[:] = 4
        kept = slot.array

        def child() -> bool:
            kept[:] = 0xEE  # the child's copy of the window is zero pages
            return int(kept.max()) == 0xEE

        assert _fork(child) == 0
        slot.publish()
        f = r.read(timeout=5)
        assert f is not None and int(f.array.min()) == 4 == int(f.array.max()), "the child's write reached the frame"
