"""Every Python block in the README runs as written (issue 15), against a real producer; and
`pip install .` installs the `shmframes-view` command."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
import subprocess
import sys

from conftest import ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
# A block that needs hardware says so on its first line, and is only compiled.
NEEDS_HARDWARE = "# needs: a camera"


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


def test_every_python_block_runs(procs, channel):
    procs.producer(channel, "--size", "320x240", "--fps", "60")
    for i, block in enumerate(BLOCKS):
        compile(block, f"README.md python block {i + 1}", "exec")  # every block at least parses
        if block.startswith(NEEDS_HARDWARE):
            continue
        # The README's channel names, made unique to this test.
        code = block.replace('"shm_video"', repr(channel)).replace('"out"', repr(channel + "-out"))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"README block {i + 1} failed:\n{block}\n{out.stderr}"


def test_pip_install_gives_the_view_command():
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts") if e.name.startswith("shmframes")}
    assert scripts.get("shmframes-view") == "shmframes.view:main", scripts
    command = Path(sys.prefix) / "bin" / "shmframes-view"
    out = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("usage: shmframes-view"), out.stdout + out.stderr


def test_the_readme_is_at_most_16000_bytes():
    """The README is a user's page (issue 22): references and internals live in docs/."""
    size = len((ROOT / "README.md").read_bytes())
    assert size <= 16_000, f"README.md is {size} bytes: move a reference into docs/ (the limit is 16,000)"
