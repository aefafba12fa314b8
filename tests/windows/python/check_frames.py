"""The Windows Python checks of issue 23, run by tests/windows/run.sh under Wine with the
embeddable CPython 3.13, numpy 2.1.3 and the Windows wheel unpacked into site-packages:

    python.exe check_frames.py PATH\\frame-producer.exe NAME
    python.exe check_frames.py python NAME

1. starts the producer, frame-producer.exe (synthetic, 320x240, 60 fps) or a Python one with
   the same white bar (`python`; run.sh runs both), and reads 100 frames: contiguous sequence
   numbers, the right shape, and the white bar (191, 191, 191) at pixel (10, 10);
2. an idle reader: a second, quiet producer (Python, alive, publishing nothing); a reader thread
   blocked in read() must not wake up for 3 s. Counted under Wine only, where each Windows
   thread is a Linux thread: the context switches of every thread of this process but the
   main one (which measures), from /proc through drive Z:. Then `taskkill /F` on the quiet
   producer: ProducerGone within 50 ms of the producer's end (as its process handle reports it);
3. blocks in read() and kills the first producer (Popen.kill: TerminateProcess): ProducerGone
   must come within 50 ms (10 ms is the aim; Wine adds its own latency), the time is printed.
Prints one line per check; exit 0 when all pass."""
import os
import subprocess
import sys
import threading
import time

import numpy  # noqa: F401 (frame.array needs it: fail here, at once, without it)

import shmframes

# The Python producer: 320x240 BGR at 60 fps, the test pattern's white bar (191) on the left.
PYTHON_PRODUCER = """
import sys, time
import numpy as np
import shmframes
w = shmframes.Writer(sys.argv[1], 320, 240)
img = np.zeros((240, 320, 3), np.uint8)
img[:, :45] = 191
while True:
    w.write(img)
    time.sleep(1 / 60)
"""

# A producer that is alive and publishes nothing.
QUIET_PRODUCER = """
import sys, time
import shmframes
w = shmframes.Writer(sys.argv[1], 320, 240)
print("ready", flush=True)
time.sleep(60)
"""


def unix_threads() -> "dict[str, int] | None":
    """Under Wine: context switches of each thread of this process (by Linux thread id), the
    main thread's id being the process's. None elsewhere (no /proc)."""
    if not os.path.isdir("Z:\\proc"):
        return None
    script, channel = b"check_frames.py\0", sys.argv[2].encode()
    for pid in os.listdir("Z:\\proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"Z:\\proc\\{pid}\\cmdline", "rb") as f:
                cmdline = f.read()
            # (not the shell that started Wine, whose command line names the script too)
            if not cmdline.split(b"\0")[0].lower().endswith(b"python.exe") or script not in cmdline or channel not in cmdline:
                continue
        except OSError:
            continue
        counts = {}
        for tid in os.listdir(f"Z:\\proc\\{pid}\\task"):
            try:
                with open(f"Z:\\proc\\{pid}\\task\\{tid}\\status") as f:
                    counts[tid] = sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
            except OSError:
                pass  # a thread that ended meanwhile
        counts.pop(pid, None)  # the main thread: it measures
        return counts
    raise AssertionError("under Wine, yet this process was not found in /proc: nothing would be measured")


def idle_then_taskkill(name: str) -> None:
    quiet = subprocess.Popen([sys.executable, "-c", QUIET_PRODUCER, name], stdout=subprocess.PIPE, text=True)
    try:
        assert quiet.stdout is not None and quiet.stdout.readline().strip() == "ready"
        reader = shmframes.Reader(name, timeout=10)
        outcome = {}

        def wait() -> None:
            try:
                outcome["frame"] = reader.read(timeout=30)
            except shmframes.ProducerGone:
                outcome["gone"] = time.perf_counter()

        t = threading.Thread(target=wait)
        t.start()
        # Settled into the wait: two looks 0.5 s apart see no thread move (at most 10 s).
        before = unix_threads()
        for _ in range(20):
            time.sleep(0.5)
            now = unix_threads()
            if now == before:
                break
            before = now
        time.sleep(3.0)
        after = unix_threads()
        if before is None or after is None:
            print("idle reader: not counted (no /proc: not under Wine)")
        else:
            woke = {tid: after[tid] - before[tid] for tid in before if tid in after and after[tid] != before[tid]}
            print(f"idle reader: {sum(woke.values())} wake-ups in 3 s across {len(after)} threads besides the main one")
            assert not woke, f"threads woke while idle: {woke}"
        ended = {}

        def reap() -> None:
            quiet.wait()
            ended["at"] = time.perf_counter()

        reaper = threading.Thread(target=reap)
        reaper.start()
        started = time.perf_counter()
        subprocess.run(["taskkill", "/F", "/PID", str(quiet.pid)], check=True, stdout=subprocess.DEVNULL)
        reaper.join(10)
        t.join(10)
        assert "gone" in outcome, f"read() ended without ProducerGone: {outcome}"
        ms = (outcome["gone"] - ended["at"]) * 1e3
        # (Negative: the reader heard of the death before the thread waiting on the process
        # handle woke; both wait on Wine's server.)
        print(
            f"ProducerGone {ms:+.1f} ms from the producer's end as its process handle reports it "
            f"(taskkill /F; {(outcome['gone'] - started) * 1e3:.0f} ms after taskkill started) (bound 50 ms, aim 10 ms)"
        )
        assert ms < 50, f"ProducerGone only {ms:.1f} ms after the producer ended"
    finally:
        quiet.kill()
        quiet.wait()


exe, name = sys.argv[1], sys.argv[2]
if exe == "python":
    producer = subprocess.Popen([sys.executable, "-c", PYTHON_PRODUCER, name])
else:
    # (--when-full wait: the producer waits for the lossless reader, as the Python one does)
    producer = subprocess.Popen(
        [exe, "--synthetic", "--size", "320x240", "--fps", "60", "--name", name, "--when-full", "wait"]
    )
try:
    # Lossless: the producer waits for this reader, so every frame of the 100 is read.
    reader = shmframes.Reader(name, timeout=30, lossless=True)
    seqs = []
    first = None
    while len(seqs) < 100:
        frame = reader.read(timeout=10)
        assert frame is not None, f"no frame within 10 s after {len(seqs)}"
        a = frame.array
        assert a.shape == (240, 320, 3), a.shape
        assert a[10, 10].tolist() == [191, 191, 191], a[10, 10].tolist()
        seqs.append(frame.seq)
        if first is None:
            first = frame.seq
        del a, frame
    assert seqs == list(range(first, first + 100)), f"not contiguous: {seqs[:5]}...{seqs[-5:]}"
    print(f"100 frames, contiguous ({seqs[0]}..{seqs[-1]}), white bar (191, 191, 191) at (10, 10): ok")

    idle_then_taskkill(name + "-quiet")

    # Drain what is there, then block in read() while the producer is killed.
    while reader.read(timeout=0) is not None:
        pass
    killed_at = []

    def kill() -> None:
        time.sleep(0.3)
        killed_at.append(time.perf_counter())
        producer.kill()

    t = threading.Thread(target=kill)
    t.start()
    try:
        while True:
            reader.read(timeout=20)
    except shmframes.ProducerGone:
        gone_at = time.perf_counter()
    t.join()
    ms = (gone_at - killed_at[0]) * 1e3
    print(f"ProducerGone {ms:.1f} ms after TerminateProcess (bound 50 ms, aim 10 ms)")
    assert ms < 50, f"ProducerGone only after {ms:.1f} ms"
    print("check_frames: all passed")
finally:
    producer.kill()
    producer.wait()
