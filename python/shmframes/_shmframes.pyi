"""Type stubs for the native module shmframes._shmframes (checked with mypy.stubtest)."""

from types import TracebackType
from typing import Any, Dict, Literal, Optional, Tuple, Type, Union, final

import numpy as np
import numpy.typing as npt

__version__: str

_PixelFormat = Literal["bgr", "rgb", "gray", "rgba", "bgra", "nv12", "i420", "yuyv"]

__all__ = [
    "ChannelBusy",
    "ChannelNotFound",
    "Closed",
    "EndOfStream",
    "Error",
    "ForkedChild",
    "Frame",
    "FrameSlot",
    "HoldsEverySlot",
    "NameTaken",
    "NoSpace",
    "PermissionDenied",
    "ProducerAlive",
    "ProducerGone",
    "ProtocolError",
    "Reader",
    "Stats",
    "Writer",
    "__version__",
    "monotonic_ns",
    "pixel_formats",
    "precise_timers",
    "readers",
]

# The exceptions (re-exported by shmframes.errors, their __module__).
class Error(Exception):
    """Base class of every shmframes error."""

class ChannelNotFound(Error, FileNotFoundError):
    """No channel of that name exists (or none appeared in time)."""

class PermissionDenied(Error, PermissionError):
    """The channel belongs to another user, or its mode does not let you in."""

class NameTaken(Error, FileExistsError):
    """The name is taken by a segment a new producer may not replace."""

class ProducerAlive(NameTaken):
    """A live producer already owns the channel name."""

class ChannelBusy(Error, BlockingIOError):
    """Every reader place of the channel is taken (or another consumer reads a raw channel)."""

class ProducerGone(Error, ConnectionResetError):
    """The producer died without ending the stream; every later read raises it again (a reader
    opened with ``follow=True`` goes on to the next producer instead)."""

class EndOfStream(Error, EOFError):
    """The producer ended the stream; every frame it published was read."""

class ProtocolError(Error, ValueError):
    """Bytes in the segment break the protocol (a corrupt segment or an incompatible peer)."""

class NoSpace(Error, OSError):
    """/dev/shm (or its quota) cannot hold the channel."""

class HoldsEverySlot(Error, RuntimeError):
    """The reader holds every frame slot of the channel: release a frame before reading on."""

class Closed(Error, ValueError):
    """The reader, writer, slot or frame was closed (released, published) already."""

class ForkedChild(Error, RuntimeError):
    """A Reader or Writer used in a child made by ``fork()``: it belongs to the parent."""

def pixel_formats() -> Dict[str, Dict[str, Any]]:
    """Every pixel format: name -> {code, aliases, gstreamer, opencv_to_bgr, rgb_family}."""

def monotonic_ns() -> int:
    """Nanoseconds of CLOCK_MONOTONIC, the clock of Frame.capture_ns and Frame.publish_ns."""

def precise_timers() -> bool:
    """Makes this thread's timed sleeps (``time.sleep``, timeouts) end on time (Linux: 1 ns
    timer slack instead of 50 us), for a producer that fills a frame, sleeps until it is due,
    then publishes it. False where the system has no such setting."""

@final
class Frame:
    """One frame: metadata and a zero-copy, read-only numpy view of its pixels.

    The frame is held (its bytes never overwritten) while this object or any array or
    memoryview derived from it lives. ``release()`` or leaving ``with frame:`` gives up this
    object's hold early. ``memoryview(frame)`` views the pixels in place, read-only (builds for
    one interpreter and the abi3-py311 wheel; see docs/python.md).
    """

    @property
    def array(self) -> npt.NDArray[np.uint8]:
        """Pixels, read-only, no copy: (H, W, C), (H, W) for gray, (H + H/2, W) for NV12 and
        I420, (H, W, 2) for YUYV."""
    def copy(self) -> npt.NDArray[np.uint8]:
        """An owned, writable copy of the pixels."""
    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> npt.NDArray[Any]:
        """``np.asarray(frame)`` is ``frame.array`` (no copy); ``copy=True`` or another dtype
        makes a new array."""
    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: Optional[Tuple[int, int]] = None,
        dl_device: Any = None,
        copy: Optional[bool] = None,
    ) -> Any:
        """DLPack export in place (``np.from_dlpack(frame)``); read-only, so consumers must ask
        for DLPack 1.0 (``max_version``); older ones get ``BufferError``."""
    def __dlpack_device__(self) -> Tuple[int, int]: ...
    @property
    def shape(self) -> Tuple[int, ...]:
        """``frame.array.shape``."""
    @property
    def strides(self) -> Tuple[int, ...]:
        """``frame.array.strides``."""
    @property
    def dtype(self) -> np.dtype[np.uint8]: ...
    def release(self) -> None:
        """Gives up this object's hold on the frame now (arrays still alive keep theirs)."""
    @property
    def released(self) -> bool:
        """Whether release() was called."""
    @property
    def seq(self) -> int:
        """Sequence number (the producer's frame counter: gaps are dropped frames)."""
    @property
    def capture_ns(self) -> int:
        """Capture time, CLOCK_MONOTONIC ns (0 for raw frames)."""
    @property
    def publish_ns(self) -> int:
        """Publish time, CLOCK_MONOTONIC ns (0 for raw frames)."""
    @property
    def raw(self) -> bool:
        """Whether the frame came without a header (e.g. from cpp_py_shmbuf's producer)."""
    @property
    def lost_before(self) -> int:
        """Frames this reader lost just before this one (overwritten before it read them; 0 after
        ``latest()``, which skips on purpose). Counts losses before a reader's first frame too."""
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def stride(self) -> int:
        """Bytes per row."""
    @property
    def format(self) -> _PixelFormat: ...
    @property
    def age_ns(self) -> Optional[int]:
        """Nanoseconds since publish (None for raw frames)."""
    def __enter__(self) -> "Frame": ...
    def __exit__(
        self,
        *_args: Union[Optional[Type[BaseException]], Optional[BaseException], Optional[TracebackType]],
    ) -> bool: ...

@final
class Reader:
    """A reader of a channel. A framed channel serves several readers at once (up to the
    writer's ``max_readers``), each viewing every frame in place; a raw channel has one.

    ``timeout``: seconds to wait for the channel to appear (default 10; 0: fail at once; None:
    for ever). Reads wait for ever by default: a producer's end or death is reported at once.
    ``raw``: header-less frames (cpp_py_shmbuf's producer): ``"WIDTHxHEIGHT"`` as the command
    line spells it, with ``raw_format``, or ``(height, width, format)``; a ``ValueError`` on a
    framed channel, whose frames describe themselves.
    ``follow``: survive the producer: switch to the next one started under the same name.
    ``lossless``: a writer that waits (``write(timeout=None)``) waits for this reader, which
    never loses a frame; by default a reader that falls behind loses its oldest unread frames
    (counted in ``dropped``) and never slows the writer.
    ``start``: ``"newest"`` (the newest frame, default) or ``"oldest"`` (the oldest still kept).
    ``wake``: ``"anticipate"`` (default: a blocked read of a steady producer wakes just
    before its next frame is due and watches for it briefly, at most 1.5 % of the frame
    interval; irregular producers are waited for in the kernel) or ``"publish"`` (always
    wait in the kernel for the producer's wake-up: slower, and no watching).
    """

    def __new__(
        cls,
        name: str = "shm_video",
        timeout: Optional[float] = 10.0,
        raw: Union[str, Tuple[int, int, _PixelFormat], None] = None,
        follow: bool = False,
        lossless: bool = False,
        start: Literal["newest", "oldest"] = "newest",
        raw_format: _PixelFormat = "bgr",
        wake: Literal["anticipate", "publish"] = "anticipate",
    ) -> "Reader": ...
    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        """The next frame, waiting up to ``timeout`` s (None: forever); None on timeout.
        ``EndOfStream`` and ``ProducerGone`` are final: every later call raises them again."""
    def latest(self, timeout: Optional[float] = None) -> Optional[Frame]:
        """The newest frame, skipping (and releasing) older ones; waits like read()."""
    def __iter__(self) -> "Reader": ...
    def __next__(self) -> Frame: ...
    def close(self) -> None:
        """Stops reading; frames still alive stay valid."""
    @property
    def closed(self) -> bool: ...
    @property
    def name(self) -> str: ...
    @property
    def attached_ns(self) -> int:
        """When it attached (CLOCK_MONOTONIC ns): ``Stats(since_ns=reader.attached_ns)``."""
    @property
    def producer_state(self) -> Literal["live", "unknown", "ended", "gone"]:
        """The producer's state now ("gone" as soon as the kernel reports its death)."""
    @property
    def frames_held(self) -> int: ...
    @property
    def dropped(self) -> int:
        """Frames this reader lost (overwritten before it read them); readable after close."""
    @property
    def lag(self) -> Optional[int]:
        """Frames published and not read yet (None on a raw channel); the last figure after
        close."""
    def __enter__(self) -> "Reader": ...
    def __exit__(
        self,
        *_args: Union[Optional[Type[BaseException]], Optional[BaseException], Optional[TracebackType]],
    ) -> bool: ...

@final
class FrameSlot:
    """Room for one frame, from ``Writer.frame()``. Draw into ``array`` in place
    (``cap.read(image=slot.array)``, ``cv2.resize(src, (w, h), dst=slot.array)``,
    ``np.copyto(slot.array, src)``), then ``publish()``. After ``publish()`` or ``discard()``
    the array, and every view of it, reaches no frame any more: it reads zeros, and what is
    written through it goes nowhere."""

    @property
    def array(self) -> npt.NDArray[np.uint8]:
        """The frame's pixels, writable, C-contiguous, in the channel's shape
        (``Writer.shape``). Raises ``Closed`` once the slot is done."""
    @property
    def seq(self) -> int:
        """The sequence number the frame will carry (settable)."""
    @seq.setter
    def seq(self, value: int) -> None: ...
    @property
    def capture_ns(self) -> int:
        """Capture time, CLOCK_MONOTONIC ns (settable; default: when the slot was taken)."""
    @capture_ns.setter
    def capture_ns(self, value: int) -> None: ...
    @property
    def done(self) -> bool:
        """Whether it was published or discarded (or discarded by a newer slot)."""
    def publish(self) -> int:
        """Makes the frame visible to readers; returns its sequence number. Raises ``Closed``
        if the slot is done already."""
    def discard(self) -> None:
        """Drops the frame: readers never see it. Raises ``Closed`` if the slot is done
        already."""
    def __enter__(self) -> "FrameSlot": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class Writer:
    """The producer end of a channel; creating it creates the channel.

    A framed channel serves up to ``max_readers`` readers at once (default 8). ``buffer_frames``
    (default 4) is how far a reader may fall behind before it loses frames, or, for a lossless
    reader, before ``write`` waits for it (with ``timeout=0``: drops the frame). While readers
    keep up, frames cycle through two slots, which stay in the CPU cache.
    """

    def __new__(
        cls,
        name: str,
        width: int,
        height: int,
        format: _PixelFormat = "bgr",
        buffer_frames: int = 4,
        raw: bool = False,
        mode: int = ...,  # 0o600 (the runtime default is an int that shows itself in octal)
        max_readers: int = 8,
    ) -> "Writer": ...
    def write(
        self,
        array: npt.NDArray[np.uint8],
        timeout: Optional[float] = None,
        capture_ns: Optional[int] = None,
    ) -> bool:
        """Publishes one frame; waits up to ``timeout`` s for lossless readers to make room
        (None: forever, 0: drop the frame if there is none). Returns whether it was published."""
    def frame(self, timeout: Optional[float] = None) -> Optional["FrameSlot"]:
        """Room for the next frame, in place: fill ``slot.array``, then ``publish()`` (or
        use the slot as a context manager: published on a normal exit, discarded on an
        exception). Waits up to ``timeout`` s for lossless readers to make room (None: forever);
        None when there is none in time. One slot at a time: taking the next one (or calling
        ``write``) discards an unpublished slot."""
    def close(self) -> None:
        """Ends the stream and removes the channel name."""
    @property
    def closed(self) -> bool: ...
    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> list[int]:
        """The numpy shape ``write`` takes."""
    @property
    def format(self) -> _PixelFormat: ...
    @property
    def frames_published(self) -> int: ...
    @property
    def reader_attached(self) -> bool: ...
    @property
    def readers(self) -> int:
        """Readers attached now."""
    def __enter__(self) -> "Writer": ...
    def __exit__(
        self,
        *_args: Union[Optional[Type[BaseException]], Optional[BaseException], Optional[TracebackType]],
    ) -> bool: ...

@final
class Stats:
    """Frame rate, delivery latency percentiles and dropped frames (what frame-stats,
    frame-viewer and ``python -m shmframes.view`` report)."""

    def __new__(cls, since_ns: Optional[int] = None) -> "Stats":
        """``since_ns`` (default: now): frames published before it are shown, not measured
        (pass ``reader.attached_ns``)."""
    def record(self, frame: Frame, now_ns: Optional[int] = None) -> None:
        """Counts a frame read now (or at ``now_ns``, CLOCK_MONOTONIC)."""
    def restart(self) -> None:
        """Forgets the last sequence number (a new producer counts from 0)."""
    @property
    def window_due(self) -> bool:
        """Whether a second has passed since the last take_window()."""
    @property
    def frames(self) -> int:
        """Frames measured (published after ``since_ns``)."""
    @property
    def before_attach(self) -> int:
        """Frames recorded that were published before ``since_ns``."""
    @property
    def dropped(self) -> int: ...
    def take_window(self) -> Dict[str, Any]:
        """This window's frames, fps, latency_p50_ms, latency_p99_ms, latency_max_ms,
        dropped, total and text; starts a new window."""
    def summary(self) -> str:
        """The whole run in one line."""

def readers(name: str) -> list[dict[str, Union[int, bool]]]:
    """The readers of a framed channel now: place, pid, lossless, frames_read, dropped, lag,
    held. Empty for a raw channel."""
