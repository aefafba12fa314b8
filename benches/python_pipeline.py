"""Cross-process, end to end, into Python: frame-producer (synthetic 1080p BGR) -> shmframes.Reader.

Run: .venv/bin/python benches/python_pipeline.py   (after `make build`)
     .venv/bin/python benches/python_pipeline.py --readers [--json F] [--svg F]   (the reader
     counts alone)

Prints lossless throughput (every frame read, its numpy array touched), the Python `Writer`'s
lossless throughput into a Rust reader with 2 and 4 buffered frames, delivery latency at 30 fps
(publish -> the Python loop holds `frame.array`), the reader-count table (1, 2, 4 and 8 Python
readers on one channel, in alternating order: each lossless reader's rate at the producer's full
rate, each default reader's latency and CPU at 30 fps), and the CPU use of a Python reader
waiting on an idle channel.
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
r = shmframes.Reader(sys.argv[1], timeout=30, lossless=sys.argv[2] == "lossless", start="oldest")
print("attached", flush=True)
lat, n, first, last, checksum = [], 0, None, None, 0
cpu0 = t1 = 0.0
for f in r:  # until the end of the stream
    if n == 15:  # CPU from the 16th frame: not numpy's import, not the start
        cpu0, t1 = time.process_time(), time.perf_counter()
    a = f.array  # the numpy view the ML code would use
    checksum += int(a[540, 960, 0])
    now = time.perf_counter()
    lat.append((shmframes.monotonic_ns() - f.publish_ns) / 1000.0)
    first = first or (n, now)
    last = (n, now)
    n += 1
    del a
    f.release()
secs = last[1] - first[1] if last else 0.0
rate = (last[0] - first[0]) / secs if secs > 0 else 0.0
cpu = (time.process_time() - cpu0) / (last[1] - t1) * 100 if n > 16 else 0.0
print(json.dumps({"read": n, "dropped": r.dropped, "rate": rate, "cpu_pct": cpu, "latency_us": lat, "checksum": checksum}))
"""


def many_readers(readers: int, frames: int, fps: float, lossless: bool) -> list:
    """`readers` Python reader processes on one 1080p channel of frame-producer; each reports
    the frames it read per second, its CPU and its delivery latencies."""
    name = f"pybench-many-{os.getpid()}-{readers}-{int(fps)}"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    mode = "lossless" if lossless else "default"
    procs = [subprocess.Popen([sys.executable, "-c", MANY_READER, name, mode], stdout=subprocess.PIPE, text=True, env=env) for _ in range(readers)]
    p = None
    try:
        wait = ["--when-full", "wait"] if lossless else []
        p = producer(name, "--fps", str(fps), "--frames", str(frames), "--max-readers", str(max(readers, 1)), *wait)
        for r in procs:
            assert r.stdout is not None and r.stdout.readline().strip() == "attached"
        p.wait(300)
        got = [json.loads(r.communicate(timeout=60)[0].strip().splitlines()[-1]) for r in procs]
        if lossless:
            # Readers attach while the producer waits for the first one: a late one may start a
            # few frames in, but loses none after attaching.
            assert all(g["dropped"] == 0 for g in got), "a lossless reader lost frames"
        return got
    finally:
        for x in procs + ([p] if p else []):
            if x.poll() is None:
                x.kill()
            x.wait()


COUNTS = (1, 2, 4, 8)


def many(rounds: int, frames: int, lat_frames: int, json_path: str | None = None, svg_path: str | None = None) -> None:
    """1, 2, 4 and 8 Python readers, in alternating order: each lossless reader's rate at the
    producer's full rate, and each default reader's latency and CPU at 30 fps."""
    rate: dict = {n: [] for n in COUNTS}
    lat: dict = {n: [] for n in COUNTS}
    cpu: dict = {n: [] for n in COUNTS}
    for i in range(rounds):
        for n in (COUNTS if i % 2 == 0 else tuple(reversed(COUNTS))):
            got = many_readers(n, frames, 0, lossless=True)
            rate[n].append(min(g["rate"] for g in got))  # the slowest reader's
            got = many_readers(n, lat_frames, 30, lossless=False)
            # Skip each reader's first frames: they measure its start, not delivery.
            lat[n].append(statistics.median(pct(g["latency_us"][15:], 0.5) for g in got))
            cpu[n].append(statistics.median(g["cpu_pct"] for g in got))
    one = statistics.median(rate[1])
    print("\n| Python readers | lossless frames/s, slowest reader (runs) | of one reader's | 30 fps p50 us, median reader (runs) | CPU % per reader |")
    print("|---|---|---|---|---|")
    summary = {}
    for n in COUNTS:
        r, p50, c = statistics.median(rate[n]), statistics.median(lat[n]), statistics.median(cpu[n])
        summary[n] = {"rate": r, "share": r / one, "p50": p50, "cpu": c}
        print(
            f"| {n} | {r:.0f} ({' '.join(f'{x:.0f}' for x in rate[n])}) | {r / one * 100:.0f} % "
            f"| {p50:.0f} ({' '.join(f'{x:.0f}' for x in lat[n])}) | {c:.2f} |"
        )
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"rounds": rounds, "rate": rate, "latency_p50": lat, "cpu": cpu, "median": summary}, f, indent=1)
    if svg_path:
        import plot

        plot.bars(
            svg_path,
            f"N Python readers of frame-producer, 1080p BGR (median of {rounds})",
            "% of one reader's lossless rate",
            [f"{n} reader{'s' if n > 1 else ''}" for n in COUNTS],
            ["lossless rate, slowest reader"],
            [[summary[n]["share"] * 100] for n in COUNTS],
            [[f"{summary[n]['rate']:.0f}/s, 30 fps p50 {summary[n]['p50']:.0f} us"] for n in COUNTS],
        )


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


def arg(flag: str) -> str | None:
    """The value after `flag` on the command line, if given."""
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv[:-1] else None


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    if "--readers" in sys.argv:  # the reader-count table alone
        many(1 if quick else 2, 60 if quick else 2000, 40 if quick else 255, arg("--json"), arg("--svg"))
        sys.exit(0)
    throughput(60 if quick else 3000)
    for buffer_frames in (2, 4):
        writer_throughput(60 if quick else 2000, buffer_frames)
    latency(30 if quick else 600)
    if "--one-reader" not in sys.argv:  # (benches/old_vs_new.sh compares the one-reader part)
        many(1 if quick else 2, 60 if quick else 2000, 40 if quick else 255, arg("--json"), arg("--svg"))
    idle_cpu(1 if quick else 10)
