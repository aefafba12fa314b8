"""How fast a death is noticed, and what waiting costs: the kernel-watched liveness words
against the polling fallback (`SHMFRAMES_LIVENESS=poll`, today's behaviour before them), in
alternating trials of one run.

Run: .venv/bin/python benches/liveness.py [--trials N] [--idle S]   (after `make build`)

Measured, each trial in fresh processes (a Python `Writer` and a Python `Reader`):
- a reader blocked in `read()`: the producer is SIGKILLed; time until the reader has
  `ProducerGone` (both sides stamp CLOCK_MONOTONIC);
- a producer blocked in `write()` waiting for room (its one lossless reader reads nothing): the
  reader is SIGKILLed; time until `write` returns, the dead reader's place freed;
- an idle reader blocked in `read()` on a live, silent channel, watched from outside for
  `--idle` seconds: context switches of all its threads (wake-ups) per second, and CPU time
  (/proc/PID/task/*/schedstat, in ns).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")

PRODUCER_IDLE = """
import sys, time, numpy as np, shmframes
with shmframes.Writer(sys.argv[1], 64, 64, "gray") as w:
    w.write(np.zeros((64, 64), np.uint8))
    print("ready", flush=True)
    time.sleep(600)
"""

READER_BLOCKED = """
import sys, time, json, resource, os, shmframes
r = shmframes.Reader(sys.argv[1], timeout=20, start="oldest")
assert r.read(timeout=20) is not None
idle = float(sys.argv[2])
def switches():
    total = 0
    for t in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{t}/status") as f:
            total += sum(int(l.split()[1]) for l in f if "ctxt_switches" in l)
    return total
if idle > 0:
    u0, s0, t0 = resource.getrusage(resource.RUSAGE_SELF), switches(), time.perf_counter()
    assert r.read(timeout=idle) is None
    u1, s1, dt = resource.getrusage(resource.RUSAGE_SELF), switches(), time.perf_counter() - t0
    cpu = (u1.ru_utime - u0.ru_utime + u1.ru_stime - u0.ru_stime) / dt * 100
    print(json.dumps({"wakeups_per_s": (s1 - s0) / dt, "cpu_pct": cpu}), flush=True)
    sys.exit(0)
print("blocked", flush=True)
try:
    r.read()
except shmframes.ProducerGone:
    print(json.dumps({"gone_ns": time.monotonic_ns()}), flush=True)
"""

PRODUCER_WAITING = """
import sys, time, json, numpy as np, shmframes
with shmframes.Writer(sys.argv[1], 64, 64, "gray", buffer_frames=1) as w:
    print("ready", flush=True)
    while w.reader_attached == False:
        time.sleep(0.001)
    frame = np.zeros((64, 64), np.uint8)
    while w.write(frame, timeout=0):
        pass
    print("full", flush=True)
    assert w.write(frame, timeout=20), "no room after the reader's death"
    print(json.dumps({"room_ns": time.monotonic_ns()}), flush=True)
"""

READER_STALLED = """
import sys, time, shmframes
r = shmframes.Reader(sys.argv[1], timeout=20, lossless=True, start="oldest")
print("attached", flush=True)
time.sleep(600)
"""


def spawn(code: str, *args: str, poll: bool) -> subprocess.Popen:
    env = dict(ENV, SHMFRAMES_LIVENESS="poll") if poll else ENV
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env)


def expect(p: subprocess.Popen, word: str) -> str:
    assert p.stdout is not None
    line = p.stdout.readline().strip()
    assert word in line, f"expected {word!r}, got {line!r}"
    return line


def reap(name: str, *ps: "subprocess.Popen | None") -> None:
    """Kills and reaps the processes; removes the channel a killed producer left."""
    for p in ps:
        if p is not None:
            if p.poll() is None:
                p.kill()
            p.wait()
    try:
        os.unlink(f"/dev/shm/{name}")
    except FileNotFoundError:
        pass


def producer_death(name: str, poll: bool) -> float:
    prod = spawn(PRODUCER_IDLE, name, poll=poll)
    reader = None
    try:
        expect(prod, "ready")
        reader = spawn(READER_BLOCKED, name, "0", poll=poll)
        expect(reader, "blocked")
        time.sleep(0.2)
        t0 = time.monotonic_ns()
        prod.send_signal(signal.SIGKILL)
        gone = json.loads(expect(reader, "gone_ns"))["gone_ns"]
        return (gone - t0) / 1e6
    finally:
        reap(name, prod, reader)


def reader_death(name: str, poll: bool) -> float:
    prod = spawn(PRODUCER_WAITING, name, poll=poll)
    reader = None
    try:
        expect(prod, "ready")
        reader = spawn(READER_STALLED, name, poll=poll)
        expect(reader, "attached")
        expect(prod, "full")
        time.sleep(0.2)
        t0 = time.monotonic_ns()
        reader.send_signal(signal.SIGKILL)
        room = json.loads(expect(prod, "room_ns"))["room_ns"]
        return (room - t0) / 1e6
    finally:
        reap(name, prod, reader)


def sample(pid: int) -> tuple:
    """(context switches of every thread, CPU seconds) of process `pid` so far."""
    switches, cpu_ns = 0, 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/status") as f:
            switches += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        with open(f"/proc/{pid}/task/{t}/schedstat") as f:
            cpu_ns += int(f.read().split()[0])  # ns spent on a CPU
    return switches, cpu_ns / 1e9


def idle(name: str, poll: bool, secs: float) -> dict:
    """A reader blocked in `read()` on a live, silent channel, watched from outside."""
    prod = spawn(PRODUCER_IDLE, name, poll=poll)
    reader = None
    try:
        expect(prod, "ready")
        reader = spawn(READER_BLOCKED, name, "0", poll=poll)
        expect(reader, "blocked")
        time.sleep(0.5)  # settle into the sleep
        (s0, c0), t0 = sample(reader.pid), time.perf_counter()
        time.sleep(secs)
        (s1, c1), dt = sample(reader.pid), time.perf_counter() - t0
        return {"wakeups_per_s": (s1 - s0) / dt, "cpu_pct": (c1 - c0) / dt * 100}
    finally:
        reap(name, prod, reader)


def pct(v: list, p: float) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, round((len(s) - 1) * p))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20, help="trials per measure and mode")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle waiting measured")
    ap.add_argument("--idle-rounds", type=int, default=2, help="idle measurements per mode")
    a = ap.parse_args()
    modes = {"kernel-watched": False, "polling (before)": True}
    death = {m: [] for m in modes}
    room = {m: [] for m in modes}
    idles = {m: [] for m in modes}
    base = f"livebench-{os.getpid()}"
    for i in range(a.trials):
        order = list(modes.items()) if i % 2 == 0 else list(modes.items())[::-1]
        for m, poll in order:
            death[m].append(producer_death(f"{base}-d{i}", poll))
            room[m].append(reader_death(f"{base}-r{i}", poll))
    for i in range(a.idle_rounds):
        order = list(modes.items()) if i % 2 == 0 else list(modes.items())[::-1]
        for m, poll in order:
            idles[m].append(idle(f"{base}-i{i}", poll, a.idle))
    print(f"Python Writer and Reader processes, {a.trials} alternating trials per measure")
    print(f"{'measure':58} {'kernel-watched':>16} {'polling (before)':>18}")
    for label, data in (("producer SIGKILLed -> blocked reader has ProducerGone (ms)", death),
                        ("reader SIGKILLed -> waiting producer has room (ms)", room)):
        print(label)
        for q, f in (("  p50", 0.5), ("  p99", 0.99)):
            print(f"{q:58} {pct(data['kernel-watched'], f):16.2f} {pct(data['polling (before)'], f):18.2f}")
        print(f"{'  max':58} {max(data['kernel-watched']):16.2f} {max(data['polling (before)']):18.2f}")
    w = {m: statistics.median(x["wakeups_per_s"] for x in idles[m]) for m in modes}
    c = {m: statistics.median(x["cpu_pct"] for x in idles[m]) for m in modes}
    print(f"{'idle reader, wake-ups per second (median of rounds)':58} {w['kernel-watched']:16.2f} {w['polling (before)']:18.2f}")
    print(f"{'idle reader, CPU % of a core (median of rounds)':58} {c['kernel-watched']:16.3f} {c['polling (before)']:18.3f}")


if __name__ == "__main__":
    main()
