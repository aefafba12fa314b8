"""`python -m shmframes.view` in a real X server (Xvfb, 1920x1080): the OpenCV window opens at the
frame's size (scaled to fit the screen), and its overlay is large enough to read (issue 15)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import wait_until

cv2 = pytest.importorskip("cv2", reason="OpenCV is the view's window (.ci/setup installs it)")
if shutil.which("Xvfb") is None or shutil.which("import") is None:
    pytest.skip("needs Xvfb and ImageMagick's import (.ci/setup installs them)", allow_module_level=True)


@pytest.mark.parametrize("screen", [(1920, 1080), (1280, 720)])
def test_the_window_fits_a_1080p_stream_with_a_readable_overlay(procs, channel, tmp_path, screen):
    sw, sh = screen
    display = f":{200 + (os.getpid() * 2 + sw // 1280) % 600}"
    xvfb = procs.start(["Xvfb", display, "-screen", "0", f"{sw}x{sh}x24", "-br", "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: os.path.exists(f"/tmp/.X11-unix/X{display[1:]}") and xvfb.poll() is None), "Xvfb did not start"
    want = int(1920 * min(1.0, 0.9 * sw / 1920, 0.9 * sh / 1080))  # 90 % of the screen, never past 1:1"
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
    procs.producer(channel, "--size", "1920x1080", "--fps", "30")
    view = procs.start([sys.executable, "-m", "shmframes.view", channel, "--frames", "300", "--timeout", "20"], env=env, stderr=subprocess.PIPE, text=True)
    shot = tmp_path / "screen.png"
    box = None
    for _ in range(40):
        time.sleep(0.5)
        assert view.poll() is None, view.stderr.read() if view.stderr else ""
        if subprocess.run(["import", "-display", display, "-window", "root", str(shot)], capture_output=True).returncode != 0:
            continue
        img = cv2.imread(str(shot))
        lit = np.argwhere(img.max(axis=2) > 40)  # the root window is black (-br)
        if len(lit) == 0:
            continue
        (y0, x0), (y1, x1) = lit.min(axis=0), lit.max(axis=0)
        box = (x0, y0, x1, y1)
        if x1 - x0 + 1 >= want - 2:
            break
    assert box is not None, "nothing appeared on the screen"
    x0, y0, x1, y1 = box
    print("window box", box, file=sys.stderr)
    assert abs(x1 - x0 + 1 - want) <= 2, f"the window is {x1 - x0 + 1} px wide for a 1080p stream on a {sw}x{sh} screen, not {want}"
    assert sw < 1920 or x1 - x0 >= 1280
    # The overlay: pure white text (the pattern's brightest is 75 % grey) in the top band.
    top = img[y0 : y0 + 60, x0 : x0 + 700]
    white = int(((top > 240).all(axis=2)).sum())
    print("white", white, file=sys.stderr)
    assert white > 300, f"only {white} white overlay pixels in the window's top band"
