//! # shmframes
//!
//! Live video frames between processes on one machine, through POSIX shared memory: one
//! producer, and up to [`MAX_READERS`] readers that each see every frame in place, lock-free.
//!
//! A channel is a segment with cpp_py_shmbuf's ring header. A *framed* channel (the default)
//! keeps frames in slots of the data area with a reader table after it, so many readers view
//! each frame in place at once; a *raw* channel is cpp_py_shmbuf's single-producer /
//! single-consumer ring byte for byte ([`ring`]), so its C++ producer and its C++ and Python
//! consumers interoperate with ours in both directions. Everything new is layered on top
//! without breaking it: a frame header with shape, format, sequence number and timestamps
//! ([`frame`]); futex wake-ups and flags in the header's reserved word ([`control`], [`wait`]);
//! liveness through words and locks the kernel marks or drops when a process dies (see
//! [`Writer::create`] and [`Reader::open`]; `docs/protocol.md` has the full protocol).
//!
//! A producer and a reader, here in one process (they are usually two):
//!
//! ```
//! use std::time::Duration;
//! use shmframes::{Error, PixelFormat, Reader, ReaderOptions, Writer, WriterOptions};
//!
//! let name = format!("doctest-crate-{}", std::process::id()); // a name no one else uses
//! // Producer: creates the channel (and removes its name again when closed or dropped).
//! let mut writer = Writer::create(&name, &WriterOptions::new(64, 48, PixelFormat::Bgr24)?)?;
//! // Reader: attaches, waiting up to 5 s for the channel to appear.
//! let opts = ReaderOptions { timeout: Duration::from_secs(5), ..Default::default() };
//! let mut reader = Reader::open(&name, &opts)?;
//!
//! if let Some(mut slot) = writer.try_frame()? {
//!     slot.pixels().fill(0x80); // render or decode straight into shared memory
//!     slot.publish();
//! }
//!
//! let frame = reader.read(Duration::from_secs(5))?.expect("a frame within 5 s");
//! let (w, h) = (frame.shape().width, frame.shape().height);
//! let bgr: &[u8] = frame.pixels(); // in place; the producer cannot overwrite it while held
//! assert_eq!((w, h, bgr.len()), (64, 48, 64 * 48 * 3));
//! assert!(bgr.iter().all(|&b| b == 0x80));
//! drop(frame); // gives the slot back
//!
//! writer.close()?; // ends the stream: the reader gets EndOfStream once it has read every frame
//! assert!(matches!(reader.read(Duration::from_secs(5)), Err(Error::EndOfStream { .. })));
//! # Ok::<(), shmframes::Error>(())
//! ```
//!
//! A [`FrameSlot`] borrows its writer mutably until it is published or dropped, so the writer
//! cannot take a second slot while one is open:
//!
//! ```compile_fail,E0499
//! # use shmframes::{PixelFormat, Writer, WriterOptions};
//! # let opts = WriterOptions::new(64, 48, PixelFormat::Bgr24)?;
//! # let mut writer = Writer::create("never-created", &opts)?;
//! let first = writer.try_frame()?;
//! let second = writer.try_frame()?; // error: `writer` is already borrowed by `first`
//! drop(first);
//! # Ok::<(), shmframes::Error>(())
//! ```
//!
//! and a slot's pixels cannot outlive it: once published, the frame belongs to its readers.
//!
//! ```compile_fail,E0505
//! # use shmframes::{PixelFormat, Writer, WriterOptions};
//! # let opts = WriterOptions::new(64, 48, PixelFormat::Bgr24)?;
//! # let mut writer = Writer::create("never-created", &opts)?;
//! let mut slot = writer.try_frame()?.expect("room");
//! let pixels = slot.pixels();
//! slot.publish();
//! pixels.fill(0); // error: `slot` was moved into `publish` while `pixels` borrowed it
//! # Ok::<(), shmframes::Error>(())
//! ```
//!
//! # Layers
//!
//! This crate is the channel and nothing else (its dependencies: memmap2, libc, thiserror).
//! The command-line tools (camera, conversions, display, test pattern) are the
//! `shmframes-tools` crate, the Python extension `shmframes-python`; the protocol is described
//! once, in `docs/protocol.md`.
//!
//! # Where the unsafe code is, and what a peer can do
//!
//! Unsafe code is in these modules only, each block with a `// SAFETY:` reason: [`ring`] (raw
//! memory of the ring), `table` (the reader table's memory), `segment` (the mapping), `sys`
//! (system calls, and the liveness keeper's robust-futex list), `reader` (handing out a
//! frame's pixels in place), `writer` (a slot's pixels), `lend` (the windows that lend a slot's
//! pixels) and `fork` (the list of lock descriptors its fork handlers share). The tools crate
//! forbids unsafe code; the Python crate has two blocks (numpy views of leased pixels).
//!
//! Everything read from shared memory is copied into a local and validated before it is used,
//! so a buggy or hostile peer that *writes* the segment can cause errors
//! ([`Error::Protocol`]) or wrong pixel values, never out-of-bounds accesses or hangs. Pixels
//! handed out in place are shared memory: a peer that breaks the protocol could change them
//! while you read them. A peer that *truncates* the segment file (`ftruncate`, which needs
//! write access: the same user with the default mode 0600) makes the next access to the
//! vanished pages fault with SIGBUS, which kills the reader or the producer: this crate does
//! not catch it. Give other users no write access to channels you depend on.

#![deny(missing_docs)]
#![cfg_attr(loom, allow(dead_code, unused_imports))]

// Under `--cfg loom` (`make loom`) only the reader table's protocol and what it needs are
// built: the model checker runs it on loom's atomics, with no segments or system calls.
#[cfg(not(loom))]
mod channels;
#[cfg(not(loom))]
pub mod control;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
#[cfg_attr(windows, path = "fork_windows.rs")]
mod fork;
pub mod format;
pub mod frame;
#[cfg(not(loom))]
mod lend;
#[cfg(not(loom))]
mod reader;
pub mod ring;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
pub mod stats;
mod sync;
#[cfg(not(loom))]
mod sys;
mod table;
#[cfg(not(loom))]
pub mod timing;
#[cfg(not(loom))]
pub mod wait;
#[cfg(not(loom))]
mod writer;

#[cfg(not(loom))]
pub use channels::{channels, readers_of, ChannelInfo, ReaderInfo};
#[cfg(not(loom))]
pub use error::{Error, Result, Role, Violation};
pub use format::{FrameShape, PixelFormat};
#[cfg(not(loom))]
pub use lend::SlotWindow;
#[cfg(not(loom))]
pub use reader::{Frame, ProducerState, Reader, ReaderOptions, Wake};
#[cfg(not(loom))]
pub use segment::{clean_leftovers, validate_name, Leftover, NameProblem, MAX_NAME_LEN};
pub use table::{Start, TableError, DEFAULT_MAX_READERS, MAX_READERS, MAX_SLOTS};
#[cfg(not(loom))]
pub use wait::{Cancel, Deadline};
#[cfg(not(loom))]
pub use writer::{FrameSlot, OpenSlot, ReadersNow, SlotPixels, Writer, WriterOptions};

/// Makes the calling thread's timed sleeps (a [`Cancel::sleep_until`], a wait with a deadline)
/// end on time, for a producer that keeps a schedule: render a frame, sleep until it is due,
/// publish it. Readers that wake just before a frame (see [`Wake`]) then find it where they
/// expect it. On Linux a normal thread's timer may fire up to 50 µs late (its timer slack,
/// which batches wake-ups); this sets it to the least. Affects this thread only (and threads it
/// starts later). Returns whether it took effect: `false` on systems without timer slack,
/// where timers keep their own precision.
#[cfg(not(loom))]
pub fn precise_timers() -> bool {
    sys::precise_timers()
}

/// Nanoseconds of CLOCK_MONOTONIC, the clock of every timestamp in frame headers: comparable
/// between processes on one machine (latency = reader's `monotonic_ns()` - `publish_ns`).
#[cfg(not(loom))]
pub fn monotonic_ns() -> u64 {
    sys::monotonic_ns()
}
