//! The crate's one error type. Every message says what happened and what to do about it; every
//! variant carries its facts as data (shapes, fields, the OS error as `source()`), so callers
//! match on what went wrong instead of parsing text.

use std::path::PathBuf;
use std::time::Duration;

use crate::format::{FrameShape, ShapeError};
use crate::frame::HeaderError;
use crate::ring::{PushError, RingError, RingPushError};
use crate::segment::NameProblem;

/// Which end of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The producer's [`crate::Writer`].
    Writer,
    /// A consumer's [`crate::Reader`].
    Reader,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
        })
    }
}

/// How the bytes of a segment break the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// The ring header or a length prefix.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// A frame header.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// An append the ring refused although room was checked (a peer moved an index).
    #[error(transparent)]
    Push(#[from] PushError),
    /// A framed channel's reader table.
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    /// A published slot that holds no frame.
    #[error("slot {slot} was published holding a message of kind {kind}, not a frame")]
    SlotKind {
        /// The slot.
        slot: usize,
        /// The message kind found.
        kind: u16,
    },
    /// Our mark with an extension version this code does not know.
    #[error("shmframes extension version {found} is not understood by this version: use matching shmframes versions")]
    ExtensionVersion {
        /// The version found in the `reserved` word.
        found: u32,
    },
    /// Something other than a regular file under the name.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A segment larger than this process can map.
    #[error("segment size {len} does not fit in memory")]
    TooBigToMap {
        /// The file's size.
        len: u64,
    },
}

impl From<RingPushError> for Violation {
    fn from(e: RingPushError) -> Violation {
        match e {
            RingPushError::Ring(r) => Violation::Ring(r),
            RingPushError::Push(p) => Violation::Push(p),
        }
    }
}

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
        reason: NameProblem,
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
        users = if users.is_empty() { String::new() } else { format!(" (the segment is open in {})", process_list(users)) }
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

    /// No reader place is free: every one of a framed channel's `max_readers` is taken, or
    /// another consumer reads a raw (single-consumer) channel.
    #[error("{}", busy_message(name, users, *max_readers))]
    ChannelBusy {
        /// The channel name.
        name: String,
        /// Who reads it, `(pid, command name)`: a framed channel's readers (from its table); for
        /// a raw channel this process alone if it is the consumer, else the processes that
        /// have the segment open (the producer among them; the kernel does not say which one
        /// holds the consumer lock).
        users: Vec<(u32, String)>,
        /// A framed channel's reader limit; `None` for a single-consumer (raw) channel.
        max_readers: Option<u32>,
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
        detail: Violation,
    },

    /// A stream of header-less frames whose size does not match what the reader was told.
    #[error(
        "channel {name:?} sent a {got}-byte raw frame, but {expected} bytes were expected for \
         {shape}: pass the producer's real size and pixel format, width first ({})",
        raw_size_hint(*got, shape.format)
    )]
    RawSizeMismatch {
        /// The channel name.
        name: String,
        /// Payload bytes received.
        got: u32,
        /// Bytes expected from the configured shape.
        expected: u64,
        /// The configured shape.
        shape: FrameShape,
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

    /// A raw shape given for a framed channel, whose frames describe themselves.
    #[error(
        "channel {name:?} is framed: its frames carry their own shape and pixel format, so a raw \
         shape does not apply; open it without raw mode"
    )]
    RawOnFramed {
        /// The channel name.
        name: String,
    },

    /// A frame shape that cannot be used (as given to a writer, or as a raw reader's shape).
    #[error(transparent)]
    Shape(#[from] ShapeError),

    /// `buffer_frames` of 0.
    #[error("buffer_frames must be at least 1 (a ring must hold a frame)")]
    NoBufferFrames,

    /// More buffered frames than a framed channel has slots for.
    #[error(
        "buffer_frames {frames} is too many: a framed channel holds at most {max} frames \
         (buffer_frames + 1 slots, at most {slots}); buffer fewer frames",
        max = crate::table::MAX_SLOTS - 1, slots = crate::table::MAX_SLOTS
    )]
    TooManyBufferFrames {
        /// `buffer_frames` asked for.
        frames: u32,
    },

    /// A reader limit out of range.
    #[error("max_readers must be between 1 and {max}, not {got}", max = crate::table::MAX_READERS)]
    MaxReaders {
        /// The value asked for.
        got: u32,
    },

    /// The ring the options ask for is larger than the protocol allows.
    #[error(
        "{frames} buffered {shape} frames need {needed} bytes, more than the ring's limit of \
         {limit} bytes: buffer fewer frames or use a smaller size"
    )]
    RingTooLarge {
        /// `buffer_frames` asked for.
        frames: u32,
        /// The frame shape.
        shape: FrameShape,
        /// Bytes needed.
        needed: u64,
        /// The limit.
        limit: u32,
    },

    /// Raw frames (cpp_py_shmbuf's) have no stride: rows must be packed.
    #[error("raw frames must be packed: {shape} has stride {stride}, not {packed}", stride = shape.stride, packed = shape.row_bytes())]
    RawNeedsPackedRows {
        /// The shape given.
        shape: FrameShape,
    },

    /// Pixels handed to [`crate::Writer::write`] that are not one frame.
    #[error("frame has {got} bytes, but a {shape} frame with stride {stride} has {expected}", stride = shape.stride)]
    WrongFrameSize {
        /// Bytes given.
        got: usize,
        /// Bytes of one frame.
        expected: usize,
        /// The writer's shape.
        shape: FrameShape,
    },

    /// A segment mode that is not plain permission bits keeping the owner's read and write
    /// (setuid, setgid or sticky bits, file-type bits, or a mode the producer itself could
    /// not use).
    #[error(
        "mode {mode:#o} is not a mode for a channel: give permission bits only (within 0o777) that \
         keep 0o600, the owner's read and write: 0o600 (only you, the default), 0o640 or 0o660 \
         (your group may read or also write)"
    )]
    BadMode {
        /// The mode given.
        mode: u32,
    },

    /// A reader holds every slot of a framed channel: the producer has nowhere to write the
    /// next frame, so waiting for one could never end.
    #[error(
        "this reader of channel {name:?} holds all {slots} of its frame slots, so the producer \
         has nowhere to write the next frame: release a frame first (drop it; in Python `del \
         frame`, or keep `frame.copy()` instead), or restart the producer with more buffered \
         frames (--buffer-frames N)"
    )]
    HoldsEverySlot {
        /// The channel name.
        name: String,
        /// The channel's slots (all held by this reader).
        slots: u32,
    },

    /// The handle was closed; nothing more can be done with it.
    #[error("the {role} of channel {name:?} is closed")]
    Closed {
        /// Which end.
        role: Role,
        /// The channel name.
        name: String,
    },

    /// A [`crate::Reader`] or [`crate::Writer`] used in a child made by `fork()`: its role is
    /// its parent's (reading would move the parent's place; writing would race the parent).
    #[error(
        "this {role} of channel {name:?} belongs to process {owner}, and this process is a child \
         made by fork(): a child may view the frames its parent held, nothing more; open a new \
         {role} in the child"
    )]
    ForkedChild {
        /// The channel name.
        name: String,
        /// Which end.
        role: Role,
        /// The process that opened it.
        owner: u32,
    },

    /// A [`crate::OpenSlot`] whose frame is no longer open: published or discarded already, or
    /// discarded because its writer took room for a newer frame (a writer lends one at a
    /// time), or closed.
    #[error(
        "this frame slot of channel {name:?} is gone: it was published or discarded already, or \
         its writer took room for a newer frame (a writer lends one slot at a time: publish or \
         discard a slot before taking the next)"
    )]
    SlotGone {
        /// The channel name.
        name: String,
    },

    /// A symbolic link under the channel's name, which shmframes never follows.
    #[error(
        "{} is a symbolic link, not a channel: shmframes never follows links there (a link could \
         point a channel at any file); remove it (rm {0}) or choose another name",
        path.display()
    )]
    SymbolicLink {
        /// The channel name.
        name: String,
        /// The link.
        path: PathBuf,
    },

    /// A wait ended because its [`crate::Cancel`] was cancelled (or its check said stop).
    #[error("the wait on channel {name:?} was interrupted")]
    Interrupted {
        /// The channel name.
        name: String,
    },

    /// `/dev/shm` (or its quota) cannot hold the segment.
    #[error(
        "cannot reserve {bytes} bytes for channel {name:?} in {dir}: free space there or enlarge \
         it (Docker: `--shm-size=1g`; Linux: `mount -o remount,size=2G /dev/shm`), or ask for \
         fewer buffered frames"
    )]
    NoSpace {
        /// The channel name.
        name: String,
        /// Bytes requested.
        bytes: u64,
        /// The shared-memory directory.
        dir: PathBuf,
        /// The OS error.
        #[source]
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
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        #[source]
        cause: std::io::Error,
    },
}

/// Common frame sizes whose frames in `format` take `got` bytes, spelled as arguments.
fn raw_size_hint(got: u32, format: crate::PixelFormat) -> String {
    const SIZES: [(u32, u32); 12] = [
        (320, 240),
        (640, 360),
        (640, 480),
        (800, 600),
        (1024, 768),
        (1280, 720),
        (1280, 960),
        (1280, 1024),
        (1600, 1200),
        (1920, 1080),
        (2560, 1440),
        (3840, 2160),
    ];
    let fits: Vec<String> = SIZES
        .iter()
        .filter(|&&(w, h)| {
            crate::FrameShape::packed(w, h, format)
                .is_ok_and(|s| s.pixel_bytes() as u64 == got as u64)
        })
        .map(|&(w, h)| format!("--raw {w}x{h}, or raw=\"{w}x{h}\" in Python"))
        .collect();
    if fits.is_empty() {
        "--raw WIDTHxHEIGHT, or raw=\"WIDTHxHEIGHT\" in Python".to_owned()
    } else {
        format!("this size fits: {}", fits.join("; "))
    }
}

/// A busy channel's message: who reads it (a framed channel's readers; for a raw one, this
/// process, or the processes that have it open), and what to do.
fn busy_message(name: &str, users: &[(u32, String)], max_readers: Option<u32>) -> String {
    let me = std::process::id();
    match max_readers {
        Some(n) => format!(
            "channel {name:?} is busy: all {n} reader places are taken{}; close a reader, or \
             restart the producer with more places (frame-producer --max-readers N, \
             WriterOptions::max_readers, Writer(..., max_readers=N) in Python)",
            if users.is_empty() {
                String::new()
            } else {
                format!(" (readers: {})", process_list(users))
            }
        ),
        None => {
            let who = if users.iter().any(|&(pid, _)| pid == me) {
                format!("another reader in this process (pid {me}) is already reading it")
            } else if users.is_empty() {
                "another consumer is already reading it".to_owned()
            } else {
                format!(
                    "another consumer is already reading it (processes with the channel open, its \
                     producer among them: {})",
                    process_list(users)
                )
            };
            format!(
                "channel {name:?} is busy: {who}, and a raw channel is single-consumer (two \
                 readers would corrupt each other's stream); close that reader, or publish a \
                 framed channel (without --raw), which serves several readers"
            )
        }
    }
}

/// `name[pid]` for each, this process as `this process[pid]`.
fn process_list(users: &[(u32, String)]) -> String {
    let me = std::process::id();
    let list: Vec<String> = users
        .iter()
        .map(|(pid, name)| match (*pid == me, name.is_empty()) {
            (true, _) => format!("this process[{pid}]"),
            (false, true) => format!("pid {pid}"),
            (false, false) => format!("{name}[{pid}]"),
        })
        .collect();
    list.join(", ")
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, cause: std::io::Error) -> Error {
        Error::Io { context: context.into(), cause }
    }

    pub(crate) fn protocol(name: &str, detail: impl Into<Violation>) -> Error {
        Error::Protocol { name: name.to_owned(), detail: detail.into() }
    }

    /// The message with every `source()` appended (`what: cause: cause`), for callers that
    /// print one line and have no error-chain printer (`anyhow`'s `{:#}` does the same). No
    /// variant quotes its source in its own message, so nothing is said twice.
    pub fn full_message(&self) -> String {
        let mut s = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cause = c.source();
        }
        s
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    #[test]
    fn a_raw_size_mismatch_quotes_the_argument_that_fits() {
        let e = Error::RawSizeMismatch {
            name: "cam".into(),
            got: 640 * 480 * 3,
            expected: 480 * 640 * 3 + 3,
            shape: crate::FrameShape::packed(641, 480, crate::PixelFormat::Bgr24).unwrap(),
        };
        assert!(e.to_string().contains("--raw 640x480, or raw=\"640x480\" in Python"), "{e}");
        let odd = Error::RawSizeMismatch {
            got: 7,
            expected: 3,
            shape: crate::FrameShape::packed(1, 1, crate::PixelFormat::Bgr24).unwrap(),
            name: "x".into(),
        };
        assert!(odd.to_string().contains("raw=\"WIDTHxHEIGHT\""), "{odd}");
    }

    use super::*;

    #[test]
    fn full_message_says_each_cause_once() {
        let cause = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device");
        let e = Error::io("cannot size segment", cause);
        let text = e.full_message();
        assert!(text.starts_with("cannot size segment: "), "{text}");
        assert_eq!(text.matches("space").count(), 1, "{text}");
        let shape = crate::FrameShape::packed(0, 1, crate::PixelFormat::Gray8).unwrap_err();
        let e = Error::Shape(shape.clone());
        assert_eq!(e.full_message(), shape.to_string());
        let e = Error::protocol("cam", crate::frame::HeaderError::from(shape.clone()));
        assert_eq!(e.full_message().matches(&shape.to_string()).count(), 1);
    }
}
