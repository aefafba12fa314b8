"""Latency against CPU of one Python subscriber: shmframes (waking before the frame, the default,
and waking on the producer's wake-up) against iceoryx2 (blocking on its event listener, and
busy-polling), side by side, alternating in one run.

Run: .venv/bin/python benches/latency_cpu.py [--frames 240] [--rounds 2]   (after `make build`;
     `make bench-deps` installs iceoryx2 into .venv; without it, shmframes' rows only)

Producers: a Python publisher process per run, 1080p BGR. Each frame is filled ahead (a numpy
copy into the loaned slot or sample), then published on its tick (`shmframes.precise_timers()`
in the publisher: its sleeps end on time). Three schedules: 30 fps, 60 fps, and 30 fps with
each tick moved by up to +-2 ms (uniform, the same seeded sequence for every subscriber).
Subscribers, each a Python process:
- `shmframes`: `Reader(name)` (wake="anticipate", the default), blocking `read()`;
- `shmframes publish`: `Reader(name, wake="publish")`;
- `iceoryx2 blocking`: `Listener.timed_wait` until notified (the publisher notifies after each
  send), then `receive()`;
- `iceoryx2 busy-poll`: `receive()` in a loop, never sleeping.
Latency: the publish stamp (CLOCK_MONOTONIC, taken just before the frame becomes visible) to the
subscriber holding the frame as a numpy array, over FRAMES frames after 15 of warm-up. CPU: the
subscriber process's CPU time over the measured frames' wall time, in % of one core.

Writes the table to stdout, the figures to --json and a plot to --svg.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import python_wake  # noqa: E402  (a shmframes reader's measured reads)
import side_by_side as sbs  # noqa: E402  (the shared workload: frames, iceoryx2 set-up, process pairs)

H, W, C, N = sbs.H, sbs.W, sbs.C, sbs.N
WARMUP = python_wake.WARMUP
SCHEDULES = {"30 fps": (30.0, 0.0), "60 fps": (60.0, 0.0), "30 fps +-2 ms": (30.0, 2.0)}
MODES = ["shmframes", "shmframes publish", "iceoryx2 blocking", "iceoryx2 busy-poll"]


def ticks(fps: float, jitter_ms: float, n: int) -> list:
    """Each frame's due time in seconds from the start: on the period, moved by the jitter."""
    rng = random.Random(26)
    return [i / fps + rng.uniform(-jitter_ms, jitter_ms) / 1000 for i in range(n)]


def sleep_until(t: float) -> None:
    d = t - time.perf_counter()
    if d > 0:
        time.sleep(d)


def publish(system: str, name: str, frames: int, fps: float, jitter_ms: float) -> None:
    import shmframes

    shmframes.precise_timers()
    src = sbs.source_frames()
    due = ticks(fps, jitter_ms, frames)
    if system == "iceoryx2":
        flat = [f.reshape(-1) for f in src]
        node, svc, event, publisher, notifier = sbs.iox_publisher(name)
        start = time.perf_counter() + 0.1
        for i in range(frames):
            sample = publisher.loan_slice_uninit(N)
            np.copyto(np.frombuffer(sbs.SLOT.from_address(sample.payload_ptr), np.uint8), flat[i & 1])
            header = sample.user_header().contents
            header.seq = i
            sample = sample.assume_init()
            sleep_until(start + due[i])
            header.publish_ns = sbs.now_ns()
            sample.send()
            notifier.notify()
        sys.stdin.read()
        del publisher, notifier, svc, event, node
        return
    with shmframes.Writer(name, W, H, "bgr") as w:
        print("ready", flush=True)
        while not w.reader_attached:
            time.sleep(0.001)
        start = time.perf_counter() + 0.1
        for i in range(frames):
            slot = w.frame()
            np.copyto(slot.array, src[i & 1])
            slot.seq = i
            sleep_until(start + due[i])
            slot.publish()  # publish_ns is stamped here
        sys.stdin.read()


def subscribe(mode: str, name: str, frames: int) -> dict:
    total = WARMUP + frames
    lat = []
    cpu0 = wall0 = 0.0
    if mode.startswith("shmframes"):
        import shmframes

        with shmframes.Reader(name, timeout=30, wake="publish" if mode.endswith("publish") else "anticipate") as r:
            lat, cpu = python_wake.measured_reads(r, frames)
        return {"latency_us": lat, "cpu_pct": cpu}
    iox2, node, svc, event = sbs.iox_open(name)
    subscriber = svc.subscriber_builder().create()
    listener = event.listener_builder().create()
    busy = mode.endswith("busy-poll")
    slot_type = ctypes_slot()
    for i in range(total):
        if i == WARMUP:
            cpu0, wall0 = time.process_time(), time.perf_counter()
        sample = subscriber.receive()
        while sample is None:
            if not busy:
                listener.timed_wait(iox2.Duration.from_secs(30))
            sample = subscriber.receive()
        _ = np.frombuffer(slot_type.from_address(sample.payload_ptr), np.uint8).reshape(H, W, C)
        t = sbs.now_ns()
        header = sample.user_header().contents
        assert header.seq == i, f"frame {i} lost: got {header.seq}"
        if i >= WARMUP:
            lat.append((t - header.publish_ns) / 1000.0)
        del header, sample
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 100.0
    del subscriber, listener, svc, event, node
    return {"latency_us": lat, "cpu_pct": cpu}


def ctypes_slot():  # type: ignore[no-untyped-def]
    import ctypes

    return ctypes.c_uint8 * N


def run(mode: str, schedule: str, frames: int) -> dict:
    system = "iceoryx2" if mode.startswith("iceoryx2") else "shmframes"
    fps, jitter = SCHEDULES[schedule]
    name = f"latcpu-{system}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    me = os.path.abspath(__file__)
    got = sbs.pub_sub(
        [me, "--role", "pub", system, name, str(WARMUP + frames), str(fps), str(jitter)],
        [me, "--role", "sub", mode, name, str(frames)],
        system,
    )
    lat = got["latency_us"]
    return {"p50": sbs.pct(lat, 0.5), "p99": sbs.pct(lat, 0.99), "cpu": got["cpu_pct"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=240, help="measured frames per run (after 15 of warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    ap.add_argument("--quick", action="store_true", help="a short smoke run, not a measurement")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--svg", help="write the plot here")
    ap.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role:
        if a.role[0] == "pub":
            _, system, name, frames, fps, jitter = a.role
            publish(system, name, int(frames), float(fps), float(jitter))
        else:
            _, mode, name, frames = a.role
            print(json.dumps(subscribe(mode, name, int(frames))), flush=True)
        return
    if a.quick:
        a.frames, a.rounds = 30, 1
    modes = MODES if sbs.have_iceoryx2("shmframes rows") else MODES[:2]
    results: dict = {s: {m: [] for m in modes} for s in SCHEDULES}
    for r in range(a.rounds):
        for schedule in SCHEDULES:
            order = modes if r % 2 == 0 else list(reversed(modes))
            for m in order:
                got = run(m, schedule, a.frames)
                results[schedule][m].append(got)
                print(f"round {r + 1} {schedule:14} {m:18} p50 {got['p50']:7.1f} us  p99 {got['p99']:8.1f} us  CPU {got['cpu']:6.2f} %", flush=True)
    print(f"\n| producer | subscriber | p50 us (median of {a.rounds}) | p99 us | CPU % of a core | runs (p50 / CPU) |")
    print("|---|---|---|---|---|---|")
    summary: dict = {}
    for schedule in SCHEDULES:
        for m in modes:
            rs = results[schedule][m]
            row = {k: statistics.median(x[k] for x in rs) for k in ("p50", "p99", "cpu")}
            summary.setdefault(schedule, {})[m] = row
            runs = ", ".join(f"{x['p50']:.0f} / {x['cpu']:.1f}" for x in rs)
            print(f"| {schedule} | {m} | {row['p50']:.1f} | {row['p99']:.0f} | {row['cpu']:.2f} | {runs} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"frames": a.frames, "rounds": a.rounds, "runs": results, "median": summary}, f, indent=1)
    if a.svg:
        import plot

        groups = list(SCHEDULES)
        plot.bars(
            a.svg,
            f"One Python subscriber, 1080p BGR: p50 latency (bar) and CPU (label), median of {a.rounds}",
            "p50 publish -> numpy array (us)",
            groups,
            modes,
            [[summary[g][m]["p50"] for m in modes] for g in groups],
            [[f"{summary[g][m]['cpu']:.1f}%" for m in modes] for g in groups],
        )


if __name__ == "__main__":
    main()
