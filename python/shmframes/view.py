"""Watch a shmframes channel: ``python -m shmframes.view [NAME]``.

Opens an OpenCV window with the frame rate and delivery latency drawn over the picture
(``q`` or Esc quits). With ``--headless``, with no display, or without OpenCV, it prints
statistics once a second instead: frames/s, latency percentiles and dropped frames.

Exit status: 0 after ``--frames N`` frames, at end of stream, on Ctrl+C, or when the window is
closed; 1 with one clear line on errors (no channel, producer gone); 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional, Tuple

from . import ChannelNotFound, EndOfStream, Error, Frame, Reader, Stats, pixel_formats

_FORMAT_INFO = pixel_formats()  # the one format table, read once
_FORMATS = tuple(_FORMAT_INFO)


def _parse_raw(text: str) -> Tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        width, height = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT (e.g. 1920x1080)") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be at least 1")
    return width, height


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} must be a number of seconds >= 0 (inf: for ever)")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return v


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="shmframes-view" if os.path.basename(sys.argv[0]) == "shmframes-view" else "python -m shmframes.view",
        description="Show a shmframes channel in a window, or print its statistics.",
    )
    p.add_argument("name", nargs="?", default="shm_video", help="channel name (default: shm_video)")
    p.add_argument("--headless", action="store_true", help="print statistics instead of opening a window")
    p.add_argument("--frames", type=_count, metavar="N", help="exit 0 after N frames")
    p.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        metavar="S",
        help="seconds to wait for the channel and between frames (default 10)",
    )
    p.add_argument("--raw", type=_parse_raw, metavar="WxH", help="header-less frames of this size (cpp_py_shmbuf)")
    p.add_argument("--raw-format", choices=_FORMATS, default="bgr", help="pixel format of --raw frames (default bgr)")
    p.add_argument("--follow", action="store_true", help="keep going across producer restarts")
    return p.parse_args(argv)


def _display_available() -> Tuple[bool, str]:
    """Whether a window can open. OpenCV's window (Qt on X11) aborts the whole process when it
    cannot reach the display, so look first: DISPLAY set, and an X server answering there."""
    display = os.environ.get("DISPLAY")
    if not display:
        wayland = " (Wayland without XWayland is not supported by OpenCV's window)" if os.environ.get("WAYLAND_DISPLAY") else ""
        return False, f"no display (DISPLAY is not set{wayland})"
    if _have_libx11() and _screen_size() is None:
        return False, f"no X server answers on DISPLAY={display}"
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False, "OpenCV is not installed (pip install opencv-python)"
    return True, ""


def _have_libx11() -> bool:
    try:
        import ctypes

        ctypes.CDLL("libX11.so.6")
        return True
    except OSError:
        return False


def _screen_size() -> Optional[Tuple[int, int]]:
    """The X screen's size (OpenCV does not tell): from libX11 if it is there, else None."""
    try:
        import ctypes

        x11 = ctypes.CDLL("libX11.so.6")
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XDisplayWidth.argtypes = x11.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        d = x11.XOpenDisplay(None)
        if not d:
            return None
        try:
            return int(x11.XDisplayWidth(d, 0)), int(x11.XDisplayHeight(d, 0))
        finally:
            x11.XCloseDisplay(d)
    except (OSError, AttributeError):
        return None


def _fit(width: int, height: int) -> float:
    """The window's scale for a frame: down to fit 90 % of the screen, never up past 1:1."""
    screen = _screen_size() or (1920, 1080)
    return min(1.0, 0.9 * screen[0] / width, 0.9 * screen[1] / height)


def _overlay(img, text: str, scale: float):  # type: ignore[no-untyped-def]
    """The text drawn over a copy of the frame, sized to read about 20 px high on screen once
    the window scales the frame by `scale`."""
    import cv2

    canvas = img.copy()  # the frame is read-only shared memory
    size = 0.8 / scale
    at = (int(12 / scale), int(34 / scale))
    thick = max(1, round(2 / scale))
    cv2.putText(canvas, text, at, cv2.FONT_HERSHEY_SIMPLEX, size, (0, 0, 0), thick * 3, cv2.LINE_AA)
    cv2.putText(canvas, text, at, cv2.FONT_HERSHEY_SIMPLEX, size, (255, 255, 255), thick, cv2.LINE_AA)
    return canvas


def _to_bgr(frame: Frame):  # type: ignore[no-untyped-def]
    import cv2

    conversion = _FORMAT_INFO[frame.format]["opencv_to_bgr"]
    return frame.array if conversion is None else cv2.cvtColor(frame.array, getattr(cv2, conversion))


class _Quit(Exception):
    """The user closed the window, or pressed q or Esc, while it waited."""


def _open(args: argparse.Namespace, raw, title: Optional[str]) -> Reader:  # type: ignore[no-untyped-def]
    """The reader, once the channel exists: says that it waits (on the console, and in the
    window if there is one) and gives up after --timeout. Raises `_Quit` if the window is closed
    (or q/Esc pressed) meanwhile."""
    try:
        return Reader(args.name, timeout=0, raw=raw, follow=args.follow)
    except ChannelNotFound:
        pass
    print(f"shmframes.view: waiting for channel {args.name!r} (up to {args.timeout:g} s; Ctrl+C to stop)", file=sys.stderr)
    deadline = time.monotonic() + args.timeout
    while True:
        if title is not None:
            import cv2
            import numpy as np

            board = np.zeros((360, 640, 3), np.uint8)
            cv2.putText(board, f"waiting for channel {args.name!r} ...", (20, 180), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
            cv2.imshow(title, board)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27) or cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1:
                raise _Quit
        left = deadline - time.monotonic()
        try:
            return Reader(args.name, timeout=max(0.0, min(0.2, left)), raw=raw, follow=args.follow)
        except ChannelNotFound:
            if left <= 0:
                raise ChannelNotFound(
                    f"no channel named {args.name!r} appeared in {args.timeout:g} s: start its producer "
                    f"(frame-producer --name {args.name}), or check the name (frame-stats --list)"
                ) from None


def run(args: argparse.Namespace) -> int:
    window, why = (False, "--headless") if args.headless else _display_available()
    raw = (args.raw[1], args.raw[0], args.raw_format) if args.raw else None
    stats = Stats()
    title = None
    if not window:
        print(f"shmframes.view: reading {args.name!r} headless ({why}); Ctrl+C to stop", file=sys.stderr)
    else:
        import cv2

        title = f"shmframes: {args.name}"
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
    try:
        return _show(args, raw, title, window, stats)
    finally:
        if window:
            import cv2

            cv2.destroyAllWindows()


def _show(args: argparse.Namespace, raw, title: Optional[str], window: bool, stats: Stats) -> int:  # type: ignore[no-untyped-def]
    """Reads (and shows) frames until the end; the exit status."""
    shown: dict = {}  # the last window's figures, for the overlay
    try:
        reader = _open(args, raw, title)
    except (KeyboardInterrupt, _Quit):
        print(f"[{args.name}] {stats.summary()}", flush=True)
        return 0
    sized: Optional[Tuple[int, int]] = None  # the frame size the window was sized for
    scale = 1.0
    last_frame = time.monotonic()
    with reader:
        try:
            while args.frames is None or stats.frames < args.frames:
                # A window shows the newest frame (a slow display skips), waiting in short steps
                # so that it keeps answering (keys, closing, repaints); headless reads every
                # frame so that drops and latency describe the stream.
                try:
                    if window:
                        import cv2

                        frame = reader.latest(timeout=0.05)
                        if frame is None:
                            if cv2.waitKey(1) & 0xFF in (ord("q"), 27) or cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1:
                                break
                            if time.monotonic() - last_frame < args.timeout:
                                continue
                    else:
                        frame = reader.read(timeout=args.timeout)
                except EndOfStream as e:
                    print(f"shmframes.view: {e}", file=sys.stderr)
                    break
                if frame is None:
                    if args.follow:
                        continue
                    print(f"shmframes.view: no frame for {args.timeout:g} s on {args.name!r}; giving up", file=sys.stderr)
                    print(f"[{args.name}] {stats.summary()}", flush=True)
                    return 1
                last_frame = time.monotonic()
                with frame:
                    stats.record(frame)
                    if window:
                        import cv2

                        if sized != (frame.width, frame.height):
                            # OpenCV opens a WINDOW_NORMAL window small whatever the image:
                            # the frame's size, scaled down to fit the screen.
                            sized, scale = (frame.width, frame.height), _fit(frame.width, frame.height)
                            cv2.resizeWindow(title, int(frame.width * scale), int(frame.height * scale))
                        latency = shown.get("latency_p50_ms")
                        text = (
                            f"{frame.width}x{frame.height} {frame.format}  {shown.get('fps', 0.0):.1f} fps"
                            f"  latency {'-' if latency is None else f'{latency:.2f} ms'}  dropped {stats.dropped}"
                        )
                        cv2.imshow(title, _overlay(_to_bgr(frame), text, scale))
                if stats.window_due:
                    shown = stats.take_window()
                    if not window:
                        print(f"[{args.name}] {shown['text']}", flush=True)
                if window:
                    key = cv2.waitKey(1) & 0xFF
                    if key in (ord("q"), 27) or cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1:
                        break
        except KeyboardInterrupt:
            pass  # Ctrl+C: the summary, exit 0
        print(f"[{args.name}] {stats.summary()}", flush=True)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 0
    except Error as e:
        print(f"shmframes.view: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
