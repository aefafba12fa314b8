"""The exceptions shmframes raises: one per kind of failure you would handle differently.

Each is a ``shmframes.Error`` and also the builtin exception that fits, so code that knows
nothing of shmframes still catches them naturally (``except FileNotFoundError`` catches a
missing channel, ``except EOFError`` the end of a stream). Mistakes in what you pass (a bad
size, format or channel name) raise plain ``ValueError`` / ``TypeError``.
"""

__all__ = [
    "ChannelBusy",
    "ChannelNotFound",
    "Closed",
    "EndOfStream",
    "Error",
    "HoldsEverySlot",
    "NameTaken",
    "NoSpace",
    "PermissionDenied",
    "ProducerAlive",
    "ProducerGone",
    "ProtocolError",
    "ForkedChild",
]


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
    """The producer died (or was killed) without ending the stream."""


class EndOfStream(Error, EOFError):
    """The producer ended the stream; every frame it published was read."""


class ProtocolError(Error, ValueError):
    """Bytes in the segment break the protocol (a corrupt segment or an incompatible peer)."""


class NoSpace(Error, OSError):
    """/dev/shm (or its quota) cannot hold the channel."""


class HoldsEverySlot(Error, RuntimeError):
    """The reader holds every frame slot of the channel, so no new frame can come: release a
    frame (``del frame``, or keep ``frame.copy()``) before reading the next."""


class Closed(Error, ValueError):
    """The reader, writer or frame was closed (released) already."""


class ForkedChild(Error, RuntimeError):
    """A Reader or Writer used in a child made by ``fork()`` (a ``multiprocessing`` or PyTorch
    ``DataLoader`` worker): it belongs to the parent. The child may look at the frames the
    parent held when it forked, and drop them (that never releases them for the parent); to
    read frames itself, it opens its own ``shmframes.Reader``."""
