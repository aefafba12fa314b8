"""A Python producer drawing in place (`Writer.frame()`) against copying (`Writer.write`), and
against iceoryx2's loaned samples, side by side in one run.

Run: .venv/bin/python benches/python_slot.py       (after `make build`; `make bench-deps`
                                                    installs iceoryx2 into .venv)

Every mode is a Python publisher process and a Python subscriber process, 1080p BGR, lossless
(the publisher waits for room; the subscriber checks every sequence number and holds each frame
as a zero-copy numpy array), full rate, 2 frames of backlog. Modes, in alternating rounds:
- `write`: `Writer.write(src)`, one copy of a numpy frame into the ring;
- `slot-row`: `Writer.frame()`, one row drawn into `slot.array`, `publish()`: a producer that
  decodes or renders straight into the slot (OpenCV `cap.read(image=slot.array)`) pays no copy;
- `slot-copyto`: `Writer.frame()`, `np.copyto(slot.array, src)`, `publish()`: should match `write`;
- `iceoryx2-copyto` / `iceoryx2-row`: the same two on iceoryx2's `loan_slice_uninit` path.

Reported per mode: frames/s at the subscriber, and the publisher's CPU time per frame (user +
system, from its first frame to its last).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import side_by_side as sbs  # noqa: E402  (the shared workload: frames, subscribers, iceoryx2 set-up)

H, W, C, N = sbs.H, sbs.W, sbs.C, sbs.N


def publish(mode: str, name: str, frames: int) -> None:
    src = sbs.source_frames()
    if mode.startswith("iceoryx2"):
        flat = [f.reshape(-1) for f in src]
        node, svc, event, publisher, notifier = sbs.iox_publisher(name)

        def fill(dst: np.ndarray, i: int) -> None:
            if mode == "iceoryx2-row":
                dst[: W * C] = i & 0xFF
            else:
                np.copyto(dst, flat[i & 1])

        c0 = sbs.cpu_seconds()
        for i in range(frames):
            sbs.iox_send(publisher, notifier, i, lambda dst: fill(dst, i))
        cpu = sbs.cpu_seconds() - c0
        print(json.dumps({"cpu_us_per_frame": cpu / frames * 1e6}), flush=True)
        sys.stdin.read()
        del publisher, notifier, svc, event, node
        return
    import shmframes

    with shmframes.Writer(name, W, H, "bgr", buffer_frames=sbs.BUFFER) as w:
        print("ready", flush=True)
        while not w.reader_attached:
            time.sleep(0.001)
        c0 = sbs.cpu_seconds()
        for i in range(frames):
            if mode == "write":
                w.write(src[i & 1])
                continue
            slot = w.frame()
            if mode == "slot-row":
                slot.array[0] = i & 0xFF
            else:
                np.copyto(slot.array, src[i & 1])
            slot.publish()
        cpu = sbs.cpu_seconds() - c0
        print(json.dumps({"cpu_us_per_frame": cpu / frames * 1e6}), flush=True)
        sys.stdin.read()


def run(mode: str, frames: int) -> dict:
    system = "iceoryx2" if mode.startswith("iceoryx2") else "shmframes"
    name = f"slot-{mode}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    return sbs.pub_sub(
        [os.path.abspath(__file__), "--role", "pub", mode, name, str(frames)],
        [sbs.__file__, "--role", system, "sub", name, str(frames), "0"],
        mode,
        pub_reports=True,
    )


MODES = ["write", "slot-row", "slot-copyto", "iceoryx2-copyto", "iceoryx2-row"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000, help="frames per run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    ap.add_argument("--quick", action="store_true", help="a short smoke run, not a measurement")
    ap.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role:
        _, mode, name, frames = a.role
        publish(mode, name, int(frames))
        return
    if a.quick:
        a.frames, a.rounds = 60, 1
    modes = MODES if sbs.have_iceoryx2("shmframes modes") else MODES[:3]
    results: dict = {m: [] for m in modes}
    for r in range(a.rounds):
        for m in modes:
            got = run(m, a.frames)
            results[m].append(got)
            print(f"round {r + 1} {m:16} {got['fps']:8.0f} frames/s  publisher {got['cpu_us_per_frame']:7.0f} us CPU/frame", flush=True)
    limit = sbs.copy_limit(300 if a.quick else 1000, 2)
    print(f"\nlimit: numpy copy of one frame into 2 buffers in turn, no IPC: {limit:.0f} frames/s\n")
    print(f"| mode | frames/s (median of {a.rounds}) | runs | publisher CPU per frame |")
    print("|---|---|---|---|")
    for m in modes:
        fps = [g["fps"] for g in results[m]]
        cpu = [g["cpu_us_per_frame"] for g in results[m]]
        runs = ", ".join(f"{v:.0f}" for v in fps)
        print(f"| {m} | {statistics.median(fps):.0f} | {runs} | {statistics.median(cpu):.0f} µs |")


if __name__ == "__main__":
    main()
