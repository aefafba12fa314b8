//! The crate's one error type. Every message says what happened and what to do about it.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in shmframes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A channel name that cannot name a shared-memory object.
    #[error("invalid channel name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// No segment exists under this name (or none appeared in time).
    #[error(
        "no channel named {name:?} (looked for {path}){waited}: start the producer first \
         (e.g. `frame-producer --name {name}`), check the name, or wait longer for it",
        waited = match waited { Some(d) => format!(" after waiting {:.1} s", d.as_secs_f64()), None => String::new() }
    )]
    ChannelNotFound {
        /// The channel name.
        name: String,
        /// Where the segment was looked for.
        path: PathBuf,
        /// How long we waited for it to appear, if we did.
        waited: Option<Duration>,
    },

    /// A live producer already owns this name.
    #[error(
        "channel {name:?} already has a live producer{users}: stop that producer or choose another name",
        users = users_of(users)
    )]
    ProducerAlive {
        /// The channel name.
        name: String,
        /// Processes that have the segment open (the producer among them): `(pid, name)`.
        users: Vec<(u32, String)>,
    },

    /// The name holds a segment that is not ours (no shmframes mark): perhaps a live
    /// cpp_py_shmbuf producer, which announces no liveness, so we never replace it.
    #[error(
        "channel {name:?} ({path}) exists but was not made by a shmframes producer (it may be a \
         live cpp_py_shmbuf producer, which cannot be told from a leftover): stop that producer, \
         or remove the file if it is a leftover, or choose another name"
    )]
    NameTaken {
        /// The channel name.
        name: String,
        /// The segment's path.
        path: PathBuf,
    },

    /// Another consumer is attached; the ring has exactly one consumer.
    #[error(
        "channel {name:?} is busy: another consumer{pid} is already reading it, and the ring is \
         single-consumer (two readers would corrupt each other's stream); stop that reader, or \
         have the producer publish a second channel (frame-producer --name A --name B)",
        pid = users_of(users)
    )]
    ChannelBusy {
        /// The channel name.
        name: String,
        /// Processes that have the segment open (the other consumer among them): `(pid, name)`.
        users: Vec<(u32, String)>,
    },

    /// The producer died (or dropped its segment) without ending the stream.
    #[error(
        "the producer of channel {name:?} is gone (it exited without ending the stream, or was \
         killed); restart it, or open the reader in follow mode to switch to the next producer \
         automatically"
    )]
    ProducerGone {
        /// The channel name.
        name: String,
    },

    /// The producer ended the stream.
    #[error("the producer of channel {name:?} ended the stream")]
    EndOfStream {
        /// The channel name.
        name: String,
    },

    /// Bytes in the segment break the protocol; reading cannot continue safely.
    #[error(
        "channel {name:?} breaks the shared-memory protocol: {detail}; the segment is corrupt or \
         was written by an incompatible program: restart the producer"
    )]
    Protocol {
        /// The channel name.
        name: String,
        /// What exactly is wrong.
        detail: String,
    },

    /// A stream of header-less frames whose size does not match what the reader was told.
    #[error(
        "channel {name:?} sent a {got}-byte raw frame, but {expected} bytes were expected for \
         {shape}: pass the producer's real size and pixel format"
    )]
    RawSizeMismatch {
        /// The channel name.
        name: String,
        /// Payload bytes received.
        got: u32,
        /// Bytes expected from the configured shape.
        expected: u64,
        /// The configured shape, e.g. `1920x1080 bgr`.
        shape: String,
    },

    /// A stream of header-less frames read without being told their shape.
    #[error(
        "channel {name:?} sends raw frames without a shmframes header (e.g. cpp_py_shmbuf's \
         producer): tell the reader their size and pixel format (raw mode)"
    )]
    RawWithoutShape {
        /// The channel name.
        name: String,
    },

    /// A configuration that cannot work (size, format, frame count ...).
    #[error("{0}")]
    Config(String),

    /// `/dev/shm` (or its quota) cannot hold the segment.
    #[error(
        "cannot reserve {bytes} bytes for channel {name:?} in {dir}: {cause}; free space there \
         or enlarge it (Docker: `--shm-size=1g`; Linux: `mount -o remount,size=2G /dev/shm`), or \
         ask for fewer buffered frames"
    )]
    NoSpace {
        /// The channel name.
        name: String,
        /// Bytes requested.
        bytes: u64,
        /// The shared-memory directory.
        dir: PathBuf,
        /// The OS error (part of the message, not a separate `source`, so that error chains do
        /// not print it twice).
        cause: std::io::Error,
    },

    /// The segment exists but we may not use it.
    #[error(
        "permission denied for channel {name:?} ({path}): it belongs to another user or is not \
         readable and writable by you; run as the producer's user, or have the producer create it \
         with a wider mode"
    )]
    PermissionDenied {
        /// The channel name.
        name: String,
        /// The segment's path.
        path: PathBuf,
    },

    /// A leftover segment of another user blocks the name.
    #[error(
        "channel {name:?} ({path}) is a leftover of user id {uid}, not yours: refusing to reuse \
         it; remove it as that user (or root), or choose another name"
    )]
    ForeignSegment {
        /// The channel name.
        name: String,
        /// The segment's path.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },

    /// Any other operating-system error, with what we were doing.
    #[error("{context}: {cause}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error (in the message; see `NoSpace`).
        cause: std::io::Error,
    },
}

/// " (open in frame-producer[1234], python3[99])", or nothing when unknown.
fn users_of(users: &[(u32, String)]) -> String {
    if users.is_empty() {
        return String::new();
    }
    let list: Vec<String> = users.iter().map(|(pid, name)| format!("{name}[{pid}]")).collect();
    format!(" (the segment is open in {})", list.join(", "))
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, cause: std::io::Error) -> Error {
        Error::Io { context: context.into(), cause }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
