"""A blocked Python reader's latency against its CPU: waking just before the frame
(`wake="anticipate"`, the default) against waking on the producer's wake-up
(`wake="publish"`), alternating rounds in one run, behind frame-producer (synthetic 1080p BGR)
at 30 and 60 fps. The 30 fps "anticipate" rows are issue 26's check.

Run: .venv/bin/python benches/python_wake.py [FRAMES] [ROUNDS]   (after `make build`)

Latency is publish -> the Python loop holds `frame.array` (CLOCK_MONOTONIC in both processes),
over FRAMES frames after 15 of warm-up (default 240, as issue 26's check); CPU is this process's
CPU time over the measured frames' wall time (one reader thread, numpy's threads off).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import shmframes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRODUCER = str(ROOT / "target" / "release" / "frame-producer")
WARMUP = 15


def pct(values: list, p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round((len(v) - 1) * p))]


def measured_reads(r: shmframes.Reader, frames: int) -> tuple[list, float]:
    """`WARMUP` + `frames` blocking reads, each frame held as its numpy array: the latencies
    (publish -> array in hand, us) of the last `frames`, and this process's CPU over their wall
    time, in % of one core."""
    lat = []
    cpu0 = wall0 = 0.0
    for i in range(WARMUP + frames):
        if i == WARMUP:
            cpu0, wall0 = time.process_time(), time.perf_counter()
        f = r.read(timeout=30)
        assert f is not None, "no frame within 30 s"
        _ = f.array
        now = shmframes.monotonic_ns()
        if i >= WARMUP:
            lat.append((now - f.publish_ns) / 1000.0)
        f.release()
    return lat, (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 100.0


def one_round(wake: str, fps: int, frames: int) -> tuple[float, float, float]:
    name = f"pybench-wake-{os.getpid()}-{wake}-{fps}"
    total = WARMUP + frames
    p = subprocess.Popen(
        [PRODUCER, "--name", name, "--quiet", "--size", "1920x1080", "--fps", str(fps), "--frames", str(total + 2)]
    )
    try:
        with shmframes.Reader(name, timeout=30, wake=wake) as r:
            lat, cpu = measured_reads(r, frames)
    finally:
        p.wait(30)
    return pct(lat, 0.5), pct(lat, 0.99), cpu


def main() -> None:
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 240
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    print(f"python wake: {frames} frames per round after {WARMUP} of warm-up, {rounds} rounds, alternating")
    print("| producer | wake | p50 us | p99 us | reader CPU % |")
    print("|---|---|---|---|---|")
    for fps in (30, 60):
        rows: dict[str, list] = {"anticipate": [], "publish": []}
        for k in range(rounds):
            order = ("anticipate", "publish") if k % 2 == 0 else ("publish", "anticipate")
            for wake in order:
                rows[wake].append(one_round(wake, fps, frames))
        for wake, results in rows.items():
            for p50, p99, cpu in results:
                print(f"| frame-producer {fps} fps | {wake} | {p50:.1f} | {p99:.1f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
