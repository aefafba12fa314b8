"""The hand-written type stubs match the built module."""

import subprocess
import sys


def test_stubs_match_the_module():
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "shmframes._shmframes", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
