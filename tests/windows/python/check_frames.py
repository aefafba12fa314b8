"""The Windows Python checks of issue 23, run by tests/windows/run.sh under Wine with the
embeddable CPython 3.13, numpy 2.1.3 and the Windows wheel unpacked into site-packages:

    python.exe check_frames.py PATH\\frame-producer.exe NAME
    python.exe check_frames.py python NAME

1. starts the producer, frame-producer.exe (synthetic, 320x240, 60 fps) or a Python one with
   the same white bar (`python`: what `make test` runs, without building the tools for
   Windows), and reads 100 frames: contiguous sequence numbers, the right shape, and the white
   bar (191, 191, 191) at pixel (10, 10);
2. blocks in read() and kills the producer (Popen.kill: TerminateProcess): ProducerGone must
   come within 50 ms (10 ms is the aim; Wine adds its own latency), the time is printed.
Prints one line per check; exit 0 when all pass."""
import subprocess
import sys
import threading
import time

import numpy as np

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

exe, name = sys.argv[1], sys.argv[2]
if exe == "python":
    producer = subprocess.Popen([sys.executable, "-c", PYTHON_PRODUCER, name])
else:
    producer = subprocess.Popen([exe, "--synthetic", "--size", "320x240", "--fps", "60", "--name", name])
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
