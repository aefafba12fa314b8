"""shmframes and iceoryx2, side by side, on the same Python workload.

Run: .venv/bin/python benches/side_by_side.py        (after `make build`; `make bench-deps`
                                                      installs iceoryx2 into .venv)

Both systems get the same job, in the same run, alternating:
- a Python publisher process copies 1080p BGR numpy frames (two random 6,220,800-byte
  frames, used in turn) into a slot of shared memory and publishes it;
- a Python subscriber process in another process holds each frame as a numpy array (zero-copy)
  and touches one pixel of it, then releases it.

Measured, each in its own pair of fresh processes:
- lossless throughput: the publisher waits for room, the subscriber checks every sequence number;
  both may fall 2 frames behind (shmframes `buffer_frames=2`, its default; iceoryx2's subscriber
  buffer 2);
- delivery latency at 30 fps with a blocking wait (shmframes: `Reader.read`; iceoryx2: its
  event `Listener`, notified by the publisher after each `send`): publish (a CLOCK_MONOTONIC stamp
  taken just before the frame becomes visible) to the subscriber holding the array, for every
  frame published after the subscriber started reading;
- CPU of a subscriber blocked on an idle channel.

iceoryx2 is a benchmark-only dependency; shmframes never imports it. (iceoryx2 keeps a
management file of its own in /dev/shm, `iox2_*global_mgmt`, from one run to the next: by its
design, not a leftover of this script, which removes its channels even when a run fails.)
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time

import numpy as np

H, W, C = 1080, 1920, 3
N = H * W * C
BUFFER = 2  # frames a subscriber may fall behind: shmframes' Writer default, iceoryx2's subscriber buffer


def now_ns() -> int:
    return time.monotonic_ns()  # CLOCK_MONOTONIC, the clock of shmframes' publish_ns


def source_frames() -> list:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (H, W, C), dtype=np.uint8) for _ in range(2)]


def pace(fps: float, i: int, start: float) -> None:
    if fps > 0:
        delay = start + i / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def switches() -> int:
    """Context switches of every thread of this process so far (its wake-ups)."""
    total = 0
    for t in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{t}/status") as f:
            total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
    return total


def idle_result(c0: float, s0: int, t0: float) -> dict:
    dt = time.perf_counter() - t0
    # One context switch is the timed wait's own end.
    return {"idle_cpu_pct": (cpu_seconds() - c0) / dt * 100, "idle_wakeups_per_s": (switches() - s0) / dt}


def cpu_seconds() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


# --- shmframes ---------------------------------------------------------------------------------


def shm_publish(name: str, frames: int, fps: float) -> None:
    import shmframes

    src = source_frames()
    with shmframes.Writer(name, W, H, "bgr", buffer_frames=BUFFER) as w:
        print("ready", flush=True)
        while not w.reader_attached:
            time.sleep(0.001)
        start = time.perf_counter()
        for i in range(frames):
            pace(fps, i, start)
            w.write(src[i & 1])  # copies into the ring; publish_ns is stamped at publish
        sys.stdin.read()  # stay alive (an idle, live channel) until the orchestrator says


def shm_subscribe(name: str, frames: int, idle: float) -> dict:
    import shmframes

    lat, late = [], 0
    # Lossless: the publisher waits for this reader, as iceoryx2's does for its subscriber.
    with shmframes.Reader(name, timeout=30, lossless=True, start="oldest") as r:
        if idle > 0:
            assert r.read(timeout=30) is not None, "no first frame"
            c0, s0, t0 = cpu_seconds(), switches(), time.perf_counter()
            got = r.read(timeout=idle)
            assert got is None, "the idle channel published a frame"
            return idle_result(c0, s0, t0)
        checksum, start, attached = 0, 0.0, now_ns()
        for n in range(frames):
            f = r.read(timeout=30)
            assert f is not None, "no frame within 30 s"
            a = f.array
            t = now_ns()
            if n == 0:
                start = time.perf_counter()
            assert f.seq == n, f"frame {n} lost: got {f.seq}"
            checksum += int(a[540, 960, 0])
            if f.publish_ns >= attached:
                lat.append((t - f.publish_ns) / 1000)
            else:
                late += 1  # published before this subscriber started reading
            del a
            f.release()
        secs = time.perf_counter() - start
    return {"fps": (frames - 1) / secs, "latency_us": lat, "late": late, "checksum": checksum}


# --- iceoryx2 ----------------------------------------------------------------------------------


class Header(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint64), ("publish_ns", ctypes.c_uint64)]


def iox_open(name: str):
    import iceoryx2 as iox2

    iox2.set_log_level(iox2.LogLevel.Error)
    node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    svc = (
        node.service_builder(iox2.ServiceName.new(name))
        .publish_subscribe(iox2.Slice[ctypes.c_uint8])
        .user_header(Header)
        .enable_safe_overflow(False)  # lossless: a full subscriber makes the publisher wait
        .subscriber_max_buffer_size(BUFFER)
        .history_size(0)
        .open_or_create()
    )
    event = node.service_builder(iox2.ServiceName.new(name + "/event")).event().open_or_create()
    return iox2, node, svc, event


SLOT = ctypes.c_uint8 * N


def iox_publisher(name: str):
    """iceoryx2's publishing end: a lossless publisher of N-byte samples and its event
    notifier; says "ready" and returns once a subscriber is there."""
    iox2, node, svc, event = iox_open(name)
    publisher = (
        svc.publisher_builder()
        .initial_max_slice_len(N)
        .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
        .create()
    )
    notifier = event.notifier_builder().create()
    print("ready", flush=True)
    while svc.dynamic_config.number_of_subscribers < 1:
        time.sleep(0.001)
    return node, svc, event, publisher, notifier


def iox_send(publisher, notifier, seq: int, fill) -> None:  # type: ignore[no-untyped-def]
    """One sample: loaned, `fill`ed (a numpy view of its payload), stamped with `seq` and its
    publish time just before it becomes visible, sent, notified."""
    sample = publisher.loan_slice_uninit(N)
    fill(np.frombuffer(SLOT.from_address(sample.payload_ptr), np.uint8))
    header = sample.user_header().contents
    header.seq = seq
    sample = sample.assume_init()
    header.publish_ns = now_ns()
    sample.send()
    notifier.notify()


def iox_publish(name: str, frames: int, fps: float) -> None:
    src = [f.reshape(-1) for f in source_frames()]
    node, svc, event, publisher, notifier = iox_publisher(name)
    start = time.perf_counter()
    for i in range(frames):
        pace(fps, i, start)
        iox_send(publisher, notifier, i, lambda dst: np.copyto(dst, src[i & 1]))
    sys.stdin.read()  # stay alive (an idle, live channel) until the orchestrator says
    del publisher, notifier, svc, event, node


def iox_subscribe(name: str, frames: int, idle: float) -> dict:
    iox2, node, svc, event = iox_open(name)
    subscriber = svc.subscriber_builder().create()
    listener = event.listener_builder().create()
    if idle > 0:
        while subscriber.receive() is None:
            listener.timed_wait(iox2.Duration.from_secs(30))
        listener.try_wait()  # drop the notification of that sample, if still pending
        c0, s0, t0 = cpu_seconds(), switches(), time.perf_counter()
        events = listener.timed_wait(iox2.Duration.from_secs_f64(idle))
        assert not events, "the idle channel notified"
        return idle_result(c0, s0, t0)
    slot_type = ctypes.c_uint8 * N
    lat, late, n, checksum, start, attached = [], 0, 0, 0, 0.0, now_ns()
    while n < frames:
        sample = subscriber.receive()
        while sample is None:
            listener.timed_wait(iox2.Duration.from_secs(30))  # blocks until notified
            sample = subscriber.receive()
        # The fastest zero-copy view (iceoryx2's own `payload().as_memory_view()` builds a new
        # ctypes type per sample).
        a = np.frombuffer(slot_type.from_address(sample.payload_ptr), np.uint8).reshape(H, W, C)
        t = now_ns()
        header = sample.user_header().contents
        if n == 0:
            start = time.perf_counter()
        assert header.seq == n, f"frame {n} lost: got {header.seq}"
        checksum += int(a[540, 960, 0])
        if header.publish_ns >= attached:
            lat.append((t - header.publish_ns) / 1000)
        else:
            late += 1  # published before this subscriber started reading
        del a, header, sample
        n += 1
    secs = time.perf_counter() - start
    del subscriber, listener, svc, event, node
    return {"fps": (frames - 1) / secs, "latency_us": lat, "late": late, "checksum": checksum}


# --- orchestration -----------------------------------------------------------------------------

ROLES = {
    ("shmframes", "pub"): shm_publish,
    ("shmframes", "sub"): shm_subscribe,
    ("iceoryx2", "pub"): iox_publish,
    ("iceoryx2", "sub"): iox_subscribe,
}


# numpy's OpenBLAS threads spin for a while after start-up; neither side uses BLAS, and on a
# small machine the spinning would steal a core from whichever system runs.
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")


def have_iceoryx2(without: str) -> bool:
    """Whether iceoryx2 is installed; if not, says on stderr what runs without it."""
    try:
        import iceoryx2  # noqa: F401
    except ImportError:
        print(f"iceoryx2 is not installed (make bench-deps): {without} only", file=sys.stderr)
        return False
    return True


def pub_sub(pub_args: list, sub_args: list, label: str, pub_reports: bool = False) -> dict:
    """One measured pair of fresh processes (this interpreter, `ENV`): the publisher
    (`pub_args`) prints "ready" once its channel exists, then the subscriber (`sub_args`) runs to
    its end. Returns the JSON object on the subscriber's last line, with the publisher's own
    JSON line (printed after its last frame) merged in if `pub_reports`. The publisher ends, and
    cleans up, at the end of its input."""
    pub = subprocess.Popen([sys.executable, *pub_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert pub.stdout is not None and pub.stdout.readline().strip() == "ready", f"{label} publisher failed"
        sub = subprocess.run([sys.executable, *sub_args], stdout=subprocess.PIPE, text=True, timeout=600, check=True, env=ENV)
        got = json.loads(sub.stdout.strip().splitlines()[-1])
        if pub_reports:
            got.update(json.loads(pub.stdout.readline()))
        return got
    finally:
        pub.stdin.close()  # the publisher ends (and cleans up) at end of input
        try:
            pub.wait(30)
        except subprocess.TimeoutExpired:
            pub.terminate()  # a publisher stuck waiting for a subscriber that failed
            try:
                pub.wait(10)
            except subprocess.TimeoutExpired:
                pub.kill()
                pub.wait()


def run_pair(system: str, frames: int, fps: float, idle: float) -> dict:
    name = f"sbs-{system}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    me = os.path.abspath(__file__)
    pub_frames = 1 if idle > 0 else frames
    return pub_sub(
        [me, "--role", system, "pub", name, str(pub_frames), str(fps)],
        [me, "--role", system, "sub", name, str(frames), str(idle)],
        system,
    )


def copy_limit(frames: int, slots: int) -> float:
    """Frames/s of the publisher's copy alone, no IPC: numpy copies of the same source frames
    into `slots` destinations in turn."""
    src = source_frames()
    dst = [np.empty_like(src[0]) for _ in range(slots)]
    for i in range(20):  # warm up: fault the pages in
        np.copyto(dst[i % slots], src[i & 1])
    start = time.perf_counter()
    for i in range(frames):
        np.copyto(dst[i % slots], src[i & 1])
    return frames / (time.perf_counter() - start)


def pct(v: list, p: float) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, round((len(s) - 1) * p))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=3000, help="frames per lossless throughput run")
    ap.add_argument("--latency-frames", type=int, default=600, help="frames per 30 fps latency run")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle waiting measured")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per measure")
    ap.add_argument("--quick", action="store_true", help="a short smoke run, not a measurement")
    ap.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role:
        # SIGTERM (a stuck run being cleaned up) unwinds normally, so channels are removed.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
        system, role, name, frames, *rest = a.role
        result = ROLES[system, role](name, int(frames), *map(float, rest))
        if result is not None:
            print(json.dumps(result))
        return
    try:
        import iceoryx2  # noqa: F401
    except ImportError:
        sys.exit("side_by_side.py needs iceoryx2 (benchmark-only): `make bench-deps`, or `.venv/bin/pip install 'iceoryx2==0.10.*'`")
    if a.quick:
        a.frames, a.latency_frames, a.idle, a.rounds = 60, 30, 0.5, 1
    systems = ["shmframes", "iceoryx2"]
    tput = {s: [] for s in systems}
    lat = {s: [] for s in systems}
    late = {s: 0 for s in systems}
    idle = {s: [] for s in systems}
    wakeups = {s: [] for s in systems}
    limit = {1: [], 2: [], 5: []}
    for rnd in range(a.rounds):
        for slots in limit:
            limit[slots].append(copy_limit(a.frames, slots))
        order = systems if rnd % 2 == 0 else systems[::-1]
        for s in order:
            tput[s].append(run_pair(s, a.frames, 0, 0)["fps"])
        for s in order:
            r = run_pair(s, a.latency_frames, 30, 0)
            lat[s] += r["latency_us"]
            late[s] += r["late"]
        for s in order:
            r = run_pair(s, 1, 0, a.idle)
            idle[s].append(r["idle_cpu_pct"])
            wakeups[s].append(r["idle_wakeups_per_s"])
    print(f"1080p BGR, Python publisher -> Python subscriber (numpy), {a.rounds} alternating round(s)")
    print(f"{'measure':44} {'shmframes':>22} {'iceoryx2 0.10':>22}")
    row = lambda m, f: print(f"{m:44} {f('shmframes'):>22} {f('iceoryx2'):>22}")  # noqa: E731
    row("lossless frames/s (median of runs)", lambda s: f"{statistics.median(tput[s]):.0f}")
    row("  runs", lambda s: " ".join(f"{x:.0f}" for x in tput[s]))
    row("latency at 30 fps p50 (us)", lambda s: f"{pct(lat[s], 0.5):.1f}")
    row("latency at 30 fps p99 (us)", lambda s: f"{pct(lat[s], 0.99):.1f}")
    row("latency at 30 fps p99.9 (us)", lambda s: f"{pct(lat[s], 0.999):.1f}")
    row("  frames counted (published after attaching)", lambda s: f"{len(lat[s])} of {len(lat[s]) + late[s]}")
    row("idle subscriber CPU (% of a core, median)", lambda s: f"{statistics.median(idle[s]):.3f}")
    row("idle subscriber wake-ups per second (median)", lambda s: f"{statistics.median(wakeups[s]):.2f}")
    print(
        "limit: the publisher's copy alone, no IPC (frames/s, median): "
        f"{statistics.median(limit[1]):.0f} into one slot, {statistics.median(limit[2]):.0f} into two in turn, "
        f"{statistics.median(limit[5]):.0f} into five in turn (a 32 MiB ring walked through)"
    )
    ratio = statistics.median(tput["shmframes"]) / statistics.median(tput["iceoryx2"])
    print(f"throughput ratio shmframes / iceoryx2: {ratio:.2f}x")
    if a.quick:
        print("(smoke run: run without --quick to measure)")


if __name__ == "__main__":
    main()
