"""Fixtures for the Python tests: unique channel names that never outlive a test, and the
real `frame-producer` / `frame-stats` binaries as child processes that are always reaped."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

# A test run started in the background by a shell without job control (`make test &`, CI
# runners) inherits SIGINT ignored, and so would every child: Python then installs no
# KeyboardInterrupt handler, and the Ctrl+C tests would wait for ever. Children are to behave
# as if started from a terminal: a handled signal is reset to its default at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("SHMFRAMES_BIN_DIR", ROOT / "target" / "release"))
_counter = itertools.count()


def binary(name: str) -> str:
    path = BIN_DIR / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build it first (cargo build --release --bins)")
    return str(path)


@pytest.fixture
def channel(request: pytest.FixtureRequest) -> Iterator[str]:
    """A channel name unique to this test; its segment is removed afterwards, pass or fail."""
    name = f"shmframes-pytest-{os.getpid()}-{next(_counter)}-{request.node.name[:40]}"
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    yield name
    try:
        os.unlink(f"/dev/shm/{name}")
    except FileNotFoundError:
        pass


class Procs:
    def __init__(self) -> None:
        self.procs: List[subprocess.Popen] = []

    def start(self, args: List[str], **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def producer(self, name: str, *args: str, **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
        return self.start([binary("frame-producer"), "--name", name, "--quiet", *args], **kw)

    def python(self, code: str, *args: str, **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
        return self.start([sys.executable, "-c", code, *args], **kw)

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.fixture
def procs() -> Iterator[Procs]:
    """Starts child processes; kills and reaps every one when the test ends."""
    p = Procs()
    yield p
    p.cleanup()


class Lines:
    """A child's output lines, read by a thread, so that a test waits for each within a bound
    (a child that never prints fails the test instead of hanging it)."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        import queue
        import threading

        self._q: "queue.Queue[str]" = queue.Queue()
        self._empty = queue.Empty
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self._q.put(line)

    def next(self, secs: float = 30.0) -> str:
        try:
            return self._q.get(timeout=secs).strip()
        except self._empty:
            pytest.fail(f"the child printed no line within {secs} s")


def wait_until(cond: Callable[[], bool], secs: float = 20.0) -> bool:
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def exists(name: str) -> bool:
    return os.path.exists(f"/dev/shm/{name}")


def kill9(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGKILL)
    p.wait()
