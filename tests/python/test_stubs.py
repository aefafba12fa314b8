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


def test_the_extension_carries_no_app_code():
    """The wheel is the channel only: no camera, window, GPU or test-pattern code is linked in
    (their crates' names would appear in the binary's panic locations and symbols)."""
    import shmframes._shmframes as ext

    data = open(ext.__file__, "rb").read()
    assert b"shmframes" in data  # the check can see crate names at all
    for crate in [b"nokhwa", b"winit", b"wgpu", b"pixels-0.", b"shmframes_tools", b"mozjpeg", b"clap"]:
        assert crate not in data, crate
