"""Cross-process, end to end, into Python: frame-producer (synthetic 1080p BGR) -> shmframes.Reader.

Run: .venv/bin/python benches/python_pipeline.py   (after `make build`)

Prints lossless throughput (every frame read, its numpy array touched), the Python `Writer`'s
lossless throughput into a Rust reader with 2 and 4 buffered frames, delivery latency at 30 fps
(publish -> the Python loop holds `frame.array`), one Python reader against four on one channel
(the producer's full rate, and each reader's latency at 30 fps), and the CPU use of a Python
reader waiting on an idle channel.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import shmframes

ROOT = Path(__file__).resolve().parents[1]
PRODUCER = str(ROOT / "target" / "release" / "frame-producer")


def producer(name: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([PRODUCER, "--name", name, "--quiet", "--size", "1920x1080", *args])


def pct(values: list, p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round((len(v) - 1) * p))]


def throughput(frames: int) -> None:
    name = f"pybench-tput-{os.getpid()}"
    p = producer(name, "--fps", "0", "--when-full", "wait", "--frames", str(frames))
    try:
        with shmframes.Reader(name, timeout=30, lossless=True, start="oldest") as r:
            first = r.read(timeout=30)
            assert first is not None
            nbytes = first.array.nbytes
            first.release()
            n, start, checksum = 1, time.perf_counter(), 0
            for f in r:
                a = f.array  # the numpy view the ML code would use
                checksum += int(a[540, 960, 0])
                assert f.seq == n, "lost or reordered"
                n += 1
                f.release()
            dt = time.perf_counter() - start
        print(f"lossless 1080p BGR into Python numpy: {n} frames, {(n - 1) / dt:.0f} frames/s, {(n - 1) * nbytes / dt / 1e9:.2f} GB/s (checksum {checksum})")
    finally:
        p.wait(30)


def latency(frames: int) -> None:
    name = f"pybench-lat-{os.getpid()}"
    # One frame more than measured: the producer's last frame waits for its process to exit when
    # the woken reader shares its CPU (a shut-down effect, not delivery).
    p = producer(name, "--fps", "30", "--frames", str(frames + 1))
    lat, late = [], 0
    try:
        with shmframes.Reader(name, timeout=30) as r:
            attached = shmframes.monotonic_ns()
            for _ in range(frames):
                f = r.read(timeout=30)
                assert f is not None, "no frame within 30 s"
                _ = f.array
                # Frames published before the reader attached measure its start-up, not delivery.
                if f.publish_ns >= attached:
                    lat.append((shmframes.monotonic_ns() - f.publish_ns) / 1000.0)
                else:
                    late += 1
                f.release()
    finally:
        p.wait(30)
    print(
        f"delivery latency at 30 fps into Python (publish -> frame.array in hand), {len(lat)} frames ({late} published before the reader attached): "
        f"p50 {pct(lat, 0.5):.1f} us, p99 {pct(lat, 0.99):.1f} us, p99.9 {pct(lat, 0.999):.1f} us, max {max(lat):.1f} us"
    )


def writer_throughput(frames: int, buffer_frames: int) -> None:
    """The Python `Writer` at full speed into a Rust reader (`frame-stats`), lossless."""
    import numpy as np

    name = f"pybench-writer-{os.getpid()}-{buffer_frames}"
    rng = np.random.default_rng(1)
    src = [rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(2)]
    times = []
    with shmframes.Writer(name, 1920, 1080, "bgr", buffer_frames=buffer_frames) as w:
        stats = ROOT / "target" / "release" / "frame-stats"
        # --lossless: the Writer waits for it (a default reader is never waited for).
        reader = subprocess.Popen([str(stats), name, "--frames", str(frames), "--lossless"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not w.reader_attached:
                time.sleep(0.001)
            start = time.perf_counter()
            for i in range(frames):
                t = time.perf_counter()
                w.write(src[i & 1])
                times.append(time.perf_counter() - t)
            secs = time.perf_counter() - start
        finally:
            reader.wait(30)
    print(
        f"Python Writer (buffer_frames={buffer_frames}) -> Rust reader, lossless 1080p BGR: {frames / secs:.0f} frames/s, "
        f"write() p50 {pct(times, 0.5) * 1e3:.3f} ms"
    )


MANY_READER = """
import json, sys, time, shmframes
r = shmframes.Reader(sys.argv[1], timeout=30)
print("attached", flush=True)
lat, n, first, last, checksum = [], 0, None, None, 0
for f in r:  # until the end of the stream
    a = f.array  # the numpy view the ML code would use
    checksum += int(a[540, 960, 0])
    now = time.perf_counter()
    lat.append((shmframes.monotonic_ns() - f.publish_ns) / 1000.0)
    first = first or (f.seq, now)
    last = (f.seq, now)
    n += 1
    del a
    f.release()
rate = (last[0] - first[0]) / (last[1] - first[1]) if last[1] > first[1] else 0.0
print(json.dumps({"read": n, "dropped": r.dropped, "producer_fps": rate, "latency_us": lat, "checksum": checksum}))
"""


def many_readers(readers: int, frames: int, fps: float) -> list:
    """`readers` Python reader processes (default delivery) on one 1080p channel; each reports
    how fast the producer published while it read, and its delivery latencies."""
    name = f"pybench-many-{os.getpid()}-{readers}-{int(fps)}"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", MANY_READER, name], stdout=subprocess.PIPE, text=True, env=env) for _ in range(readers)]
    p = None
    try:
        p = producer(name, "--fps", str(fps), "--frames", str(frames), "--max-readers", str(max(readers, 1)))
        for r in procs:
            assert r.stdout is not None and r.stdout.readline().strip() == "attached"
        p.wait(120)
        return [json.loads(r.communicate(timeout=60)[0].strip().splitlines()[-1]) for r in procs]
    finally:
        for x in procs + ([p] if p else []):
            if x.poll() is None:
                x.kill()
            x.wait()


def many(rounds: int, frames: int, lat_frames: int) -> None:
    """One reader against four, alternating: the producer's full rate, and latency at 30 fps."""
    rate = {1: [], 4: []}
    lat = {1: [], 4: []}
    for i in range(rounds):
        for n in ((1, 4) if i % 2 == 0 else (4, 1)):
            got = many_readers(n, frames, 0)
            rate[n].append(min(g["producer_fps"] for g in got))
            got = many_readers(n, lat_frames, 30)
            # Skip each reader's first frames: they measure its start, not delivery.
            lat[n].append([pct(g["latency_us"][5:], 0.5) for g in got])
    for n in (1, 4):
        print(
            f"{n} Python reader(s), 1080p BGR: producer full rate {statistics.median(rate[n]):.0f} frames/s "
            f"(runs {' '.join(f'{x:.0f}' for x in rate[n])}); latency p50 at 30 fps per reader, per run: "
            + "; ".join(" ".join(f"{x:.0f}" for x in run) for run in lat[n]) + " us"
        )
    print(f"4 readers / 1 reader, producer rate: {statistics.median(rate[4]) / statistics.median(rate[1]):.2f}")


def idle_cpu(secs: float) -> None:
    name = f"pybench-idle-{os.getpid()}"
    p = producer(name, "--fps", "0.001")
    try:
        with shmframes.Reader(name, timeout=30) as r:
            r.read(timeout=30)
            u0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            assert r.read(timeout=secs) is None
            u1 = resource.getrusage(resource.RUSAGE_SELF)
            dt = time.perf_counter() - t0
        cpu = (u1.ru_utime - u0.ru_utime + u1.ru_stime - u0.ru_stime) / dt * 100
        print(f"idle Python reader waiting {secs:.0f} s on a live channel: {cpu:.3f} % of one core")
    finally:
        p.terminate()
        p.wait(30)


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    throughput(60 if quick else 3000)
    for buffer_frames in (2, 4):
        writer_throughput(60 if quick else 2000, buffer_frames)
    latency(30 if quick else 600)
    if "--one-reader" not in sys.argv:  # (benches/old_vs_new.sh compares the one-reader part)
        many(1 if quick else 3, 60 if quick else 3000, 40 if quick else 300)
    idle_cpu(1 if quick else 10)
