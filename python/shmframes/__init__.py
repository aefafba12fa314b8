"""shmframes: live video frames from shared memory as zero-copy numpy arrays.

Read frames from a channel (a producer such as ``frame-producer`` publishes them)::

    import shmframes

    with shmframes.Reader("shm_video", timeout=5.0) as reader:  # waits up to 5 s for the channel
        for frame in reader:                   # blocks with the GIL released; ends at end of stream
            img = frame.array                  # numpy uint8 (H, W, 3), read-only, no copy
            print(frame.seq, frame.width, frame.height, frame.format, frame.age_ns)

A frame's bytes stay untouched while the ``Frame`` or any array derived from ``frame.array``
lives; release frames you are done with (``with frame:``, ``frame.release()``, or just drop
them) so the producer can reuse the space, and take ``frame.copy()`` to keep pixels for long.

Publish frames from Python (to our viewer, a Python reader, or cpp_py_shmbuf consumers with
``raw=True``)::

    with shmframes.Writer("out", width=1920, height=1080, format="bgr") as writer:
        writer.write(image)                    # numpy uint8 (1080, 1920, 3): one copy

or draw in place, with no copy at all: ``Writer.frame()`` lends the next slot as a writable
array (after ``publish()`` that array reaches no frame any more)::

        with writer.frame() as slot:           # published when the block ends normally
            cap.read(image=slot.array)         # OpenCV decodes straight into shared memory

Errors are ``shmframes.Error`` subclasses that are also the builtin exception that fits (see
``shmframes.errors``): ``ChannelNotFound`` (a ``FileNotFoundError``), ``PermissionDenied``,
``NameTaken`` and ``ProducerAlive``, ``ChannelBusy``, ``ProducerGone``, ``EndOfStream`` (an
``EOFError``), ``ProtocolError`` (a ``ValueError``), ``NoSpace``, ``Closed``, ``HoldsEverySlot``,
``ForkedChild``. Bad arguments raise
``ValueError`` or ``TypeError``.
"""

from . import errors


class _Octal(int):
    """An int that shows itself in octal: ``help(Writer)`` reads ``mode=0o600``, not 384."""

    def __repr__(self) -> str:
        return f"0o{self:o}"


# The default mode as Writer's signature names it (inspect looks it up in this module).
_MODE_600 = _Octal(0o600)

from ._shmframes import (
    Frame,
    FrameSlot,
    Reader,
    Stats,
    Writer,
    __version__,
    monotonic_ns,
    pixel_formats,
    precise_timers,
    readers,
)
from .errors import *  # noqa: F403 (the exception classes, as errors.__all__ lists them)

__all__ = [
    "Frame",
    "FrameSlot",
    "Reader",
    "Stats",
    "Writer",
    "__version__",
    "monotonic_ns",
    "pixel_formats",
    "precise_timers",
    "readers",
]
__all__ += errors.__all__
