"""Watch a shmframes channel: ``python -m shmframes.view [NAME]``.

Opens an OpenCV window with the frame rate and delivery latency drawn over the picture
(``q`` or Esc quits). With ``--headless``, with no display, or without OpenCV, it prints
statistics once a second instead: frames/s, latency percentiles and dropped frames.

Waiting: up to ``--timeout`` seconds (default 10) for the channel to appear and, with
``--follow``, for the next producer; a live producer's next frame is awaited for ever (its end or
death is reported at once), and a producer that cannot be watched (cpp_py_shmbuf's) is given up
on after ``--timeout`` without a frame.

Latency and frame rate count only frames published after the view attached: the newest frame
already published when it joins is shown, not measured.

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
        help="seconds to wait for a producer: for the channel, for the next one with --follow, "
        "and between frames of a producer that cannot be watched (default 10)",
    )
    p.add_argument("--raw", type=_parse_raw, metavar="WxH", help="header-less frames of this size (cpp_py_shmbuf)")
    p.add_argument("--raw-format", choices=_FORMATS, default="bgr", help="pixel format of --raw frames (default bgr)")
    p.add_argument("--follow", action="store_true", help="keep going across producer restarts")
    p.add_argument(
        "--wake",
        choices=("anticipate", "publish"),
        default="anticipate",
        help="anticipate (default): wake just before a steady producer's next frame is due; "
        "publish: always sleep until the producer's wake-up (no watching, slower)",
    )
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


def _overlay_layout(width: int, height: int, lines: List[str], scale: float):  # type: ignore[no-untyped-def]
    """Where the overlay goes on a `width` x `height` frame shown at `scale`: (font size,
    thickness, [(line, origin)], box). The text reads about 20 px high on screen, smaller only
    as far as needed to fit the frame: never cut."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    size, thick = 0.8 / scale, max(1, round(2 / scale))
    pad = max(2, int(6 / scale))

    def extent(size: float, thick: int) -> Tuple[int, int, int]:
        dims = [cv2.getTextSize(line, font, size, thick) for line in lines]
        w = max(d[0][0] for d in dims)
        h = max(d[0][1] for d in dims)
        base = max(d[1] for d in dims)
        return w, h, base

    w, h, base = extent(size, thick)
    room_w, room_h = width - 4 * pad, height - 4 * pad
    step = h + base + pad
    if w > room_w or step * len(lines) > room_h:
        shrink = min(room_w / w, room_h / (step * len(lines)))
        size, thick = size * shrink, max(1, round(thick * shrink))
        w, h, base = extent(size, thick)
        step = h + base + pad
    x0 = y0 = pad
    placed = [(line, (x0 + pad, y0 + pad + h + i * step)) for i, line in enumerate(lines)]
    box = (x0, y0, min(width - 1, x0 + w + 2 * pad), min(height - 1, y0 + len(lines) * step + pad))
    return size, thick, placed, box


def _overlay(img, lines: List[str], scale: float):  # type: ignore[no-untyped-def]
    """The text drawn over a copy of the frame: white on an opaque black box, so it reads on
    any picture (contrast 21:1), sized by `_overlay_layout`."""
    import cv2

    canvas = img.copy()  # the frame is read-only shared memory
    height, width = canvas.shape[:2]
    size, thick, placed, (x0, y0, x1, y1) = _overlay_layout(width, height, lines, scale)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 0, 0), cv2.FILLED)
    for line, at in placed:
        cv2.putText(canvas, line, at, cv2.FONT_HERSHEY_SIMPLEX, size, (255, 255, 255), thick, cv2.LINE_AA)
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
        return Reader(args.name, timeout=0, raw=raw, follow=args.follow, wake=args.wake)
    except ChannelNotFound:
        if args.timeout == 0:
            raise
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
            return Reader(args.name, timeout=max(0.0, min(0.2, left)), raw=raw, follow=args.follow, wake=args.wake)
        except ChannelNotFound:
            if left <= 0:
                raise ChannelNotFound(
                    f"no channel named {args.name!r} appeared in {args.timeout:g} s: start its producer "
                    f"(frame-producer --name {args.name}), or check the name (frame-stats --list)"
                ) from None


def run(args: argparse.Namespace) -> int:
    window, why = (False, "--headless") if args.headless else _display_available()
    raw = (args.raw[1], args.raw[0], args.raw_format) if args.raw else None
    title = None
    if not window:
        print(f"shmframes.view: reading {args.name!r} headless ({why}); Ctrl+C to stop", file=sys.stderr)
    else:
        import cv2

        title = f"shmframes: {args.name}"
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
    try:
        return _show(args, raw, title, window)
    finally:
        if window:
            import cv2

            cv2.destroyAllWindows()


def _silence_is_final(reader: Reader) -> bool:
    """Whether a read that timed out means giving up: not while the producer is live (its end
    or death is reported at once), only when none is there to wait for (following after its
    end or death) or it cannot be watched (cpp_py_shmbuf's)."""
    return reader.producer_state != "live"


def _show(args: argparse.Namespace, raw, title: Optional[str], window: bool) -> int:  # type: ignore[no-untyped-def]
    """Reads (and shows) frames until the end; the exit status."""
    shown: dict = {}  # the last window's figures, for the overlay
    try:
        reader = _open(args, raw, title)
    except (KeyboardInterrupt, _Quit):
        print(f"[{args.name}] {Stats().summary()}", flush=True)
        return 0
    # The newest frame already there when the view attached is shown, not measured.
    stats = Stats(since_ns=reader.attached_ns)
    read = 0
    sized: Optional[Tuple[int, int]] = None  # the frame size the window was sized for
    scale = 1.0
    last_frame = time.monotonic()
    with reader:
        try:
            while args.frames is None or read < args.frames:
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
                            if time.monotonic() - last_frame < args.timeout or not _silence_is_final(reader):
                                continue
                    else:
                        frame = reader.read(timeout=max(args.timeout, 0.05))
                        if frame is None and not _silence_is_final(reader):
                            continue
                except EndOfStream as e:
                    print(f"shmframes.view: {e}", file=sys.stderr)
                    break
                if frame is None:
                    why = {
                        "gone": "its producer died, and no new one came",
                        "ended": "its producer ended the stream, and no new one came",
                    }.get(reader.producer_state, "its producer (one that does not say whether it lives) sends nothing")
                    print(f"shmframes.view: no frame for {args.timeout:g} s on {args.name!r}: {why}; giving up", file=sys.stderr)
                    print(f"[{args.name}] {stats.summary()}", flush=True)
                    return 1
                read += 1
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
                        lines = [
                            f"{frame.width}x{frame.height} {frame.format}  {shown.get('fps', 0.0):.1f} fps",
                            f"latency {'-' if latency is None else f'{latency:.2f} ms'}  dropped {stats.dropped}",
                        ]
                        cv2.imshow(title, _overlay(_to_bgr(frame), lines, scale))
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
