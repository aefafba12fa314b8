"""Watch a shmframes channel: ``python -m shmframes.view [NAME]``.

Opens an OpenCV window with the frame rate and delivery latency drawn over the picture
(``q`` or Esc quits). With ``--headless``, with no display, or without OpenCV, it prints
statistics once a second instead: frames/s, latency percentiles and dropped frames.

Exit status: 0 after ``--frames N`` frames, at end of stream, or when the window is closed;
1 with one clear line on errors (no channel, producer gone, bad arguments).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Tuple

from . import EndOfStream, Error, Frame, Reader, Stats, pixel_formats

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
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
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
        prog="python -m shmframes.view",
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
    """Whether a window can open. OpenCV aborts the whole process without a display, so look first."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY is not set)"
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False, "OpenCV is not installed (pip install 'shmframes[view]')"
    return True, ""


def _overlay(img, text: str):  # type: ignore[no-untyped-def]
    import cv2

    canvas = img.copy()  # the frame is read-only shared memory
    cv2.putText(canvas, text, (12, 36), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(canvas, text, (12, 36), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    return canvas


def _to_bgr(frame: Frame):  # type: ignore[no-untyped-def]
    import cv2

    conversion = _FORMAT_INFO[frame.format]["opencv_to_bgr"]
    return frame.array if conversion is None else cv2.cvtColor(frame.array, getattr(cv2, conversion))


def run(args: argparse.Namespace) -> int:
    window, why = (False, "--headless") if args.headless else _display_available()
    raw = (args.raw[1], args.raw[0], args.raw_format) if args.raw else None
    reader = Reader(args.name, timeout=args.timeout, raw=raw, follow=args.follow)
    stats = Stats()
    shown: dict = {}  # the last window's figures, for the overlay
    if not window:
        print(f"shmframes.view: reading {args.name!r} headless ({why}); Ctrl+C to stop", file=sys.stderr)
    else:
        import cv2

        title = f"shmframes: {args.name}"
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
    with reader:
        while args.frames is None or stats.frames < args.frames:
            # A window shows the newest frame (a slow display skips); headless reads every
            # frame so that drops and latency describe the stream.
            try:
                frame = reader.latest(timeout=args.timeout) if window else reader.read(timeout=args.timeout)
            except EndOfStream as e:
                print(f"shmframes.view: {e}", file=sys.stderr)
                break
            if frame is None:
                if args.follow:
                    continue
                print(f"shmframes.view: no frame for {args.timeout:g} s on {args.name!r}; giving up", file=sys.stderr)
                return 1
            with frame:
                stats.record(frame)
                if window:
                    import cv2

                    latency = shown.get("latency_p50_ms")
                    text = (
                        f"{frame.width}x{frame.height} {frame.format}  {shown.get('fps', 0.0):.1f} fps"
                        f"  latency {'-' if latency is None else f'{latency:.2f} ms'}  dropped {stats.dropped}"
                    )
                    cv2.imshow(title, _overlay(_to_bgr(frame), text))
            if stats.window_due:
                shown = stats.take_window()
                if not window:
                    print(f"[{args.name}] {shown['text']}", flush=True)
            if window:
                key = cv2.waitKey(1) & 0xFF
                if key in (ord("q"), 27) or cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1:
                    break
        print(f"[{args.name}] {stats.summary()}", flush=True)
    if window:
        import cv2

        cv2.destroyAllWindows()
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
