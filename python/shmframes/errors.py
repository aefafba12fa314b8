"""The exceptions shmframes raises: one per kind of failure you would handle differently.

Each is a ``shmframes.Error`` and also the builtin exception that fits, so code that knows
nothing of shmframes still catches them naturally (``except FileNotFoundError`` catches a
missing channel, ``except EOFError`` the end of a stream). Mistakes in what you pass (a bad
size, format or channel name) raise plain ``ValueError`` / ``TypeError``.

The classes are made once, in the extension (``python/src/errors.rs``); this module is their
public home (their ``__module__``), so ``pickle`` and tracebacks name them
``shmframes.errors.ChannelNotFound``.
"""

from ._shmframes import (
    ChannelBusy,
    ChannelNotFound,
    Closed,
    EndOfStream,
    Error,
    ForkedChild,
    HoldsEverySlot,
    NameTaken,
    NoSpace,
    PermissionDenied,
    ProducerAlive,
    ProducerGone,
    ProtocolError,
)

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
