//! Our use of the ring header's `reserved` word: a feature mark and flags.
//!
//! cpp_py_shmbuf's producer writes 0 to `reserved` once and nobody reads it. Ours marks it at
//! creation; from then on both sides change single bits with atomic read-modify-write, so the
//! word never loses an update. A reader that finds no mark (their producer) never writes it.
//!
//! | bits | meaning | set by | cleared by |
//! |---|---|---|---|
//! | 31..16 | mark `0x5346` ("SF"): a shmframes producer created this segment | producer, at creation | never |
//! | 15..8 | extension version: 1 for a raw channel, 2 for a framed one (frames in slots with a reader table after the data area, see the `table` module); framed channels of version 1 (older producers: frames in the ring, one consumer) are still read | producer, at creation | never |
//! | 0 | `FRAMED`: payloads carry the frame header of [`crate::frame`] (else raw pixels) | producer, at creation | never |
//! | 1 | `CLOSED`: the producer ended the stream (even if the ring was too full for an end-of-stream message) | producer | never |
//! | 2 | `CONSUMER_SLEEPING`: the consumer sleeps on the `head` futex (version 1; framed channels use the table's `sleepers`) | consumer | consumer (only the sleeper clears its bit) |
//! | 3 | `PRODUCER_SLEEPING`: the producer sleeps on the `tail` futex (version 1) or the table's `room` word (version 2) | producer | producer (only the sleeper clears its bit) |
//!
//! Liveness and exclusivity do not live here (a dead process could never clear a bit): they are
//! byte-range locks on the segment file that the kernel drops when the holder dies, see
//! the `segment` module (and the README).

use std::sync::atomic::{AtomicU32, Ordering};

/// The mark in bits 31..16.
pub const MARK: u32 = 0x5346 << 16;
const MARK_MASK: u32 = 0xFFFF << 16;
/// Our extension version of a raw channel (and of a framed channel of an older producer),
/// bits 15..8.
pub const VERSION: u32 = 1;
/// Our extension version of a framed channel: frames in slots, a reader table after the data
/// area.
pub const VERSION_TABLE: u32 = 2;
/// Payloads are framed (see [`crate::frame`]).
pub const FRAMED: u32 = 1 << 0;
/// The stream has ended.
pub const CLOSED: u32 = 1 << 1;
/// The consumer is (about to be) asleep on `head`.
pub const CONSUMER_SLEEPING: u32 = 1 << 2;
/// The producer is (about to be) asleep on `tail` (version 1) or the table's `room` word
/// (version 2).
pub const PRODUCER_SLEEPING: u32 = 1 << 3;

/// The value our producer writes at creation.
pub fn initial(framed: bool) -> u32 {
    if framed {
        MARK | (VERSION_TABLE << 8) | FRAMED
    } else {
        MARK | (VERSION << 8)
    }
}

/// What a reader learns from the word when it attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// No mark: cpp_py_shmbuf's producer (or another that knows nothing of ours).
    Foreign,
    /// Our producer, with its flags.
    Ours {
        /// Payloads carry frame headers.
        framed: bool,
        /// Frames lie in slots with a reader table (version 2): many readers. Else the ring
        /// of version 1: one consumer.
        table: bool,
    },
}

/// Whether a `reserved` value carries our producer's mark (of any extension version).
pub fn is_marked(v: u32) -> bool {
    v & MARK_MASK == MARK
}

/// Reads the mark. An unknown extension version is reported as `Err(version)`.
pub fn origin(reserved: &AtomicU32) -> Result<Origin, u32> {
    decode(reserved.load(Ordering::Acquire))
}

fn decode(v: u32) -> Result<Origin, u32> {
    if v & MARK_MASK != MARK {
        return Ok(Origin::Foreign);
    }
    let version = (v >> 8) & 0xFF;
    let framed = v & FRAMED != 0;
    match version {
        VERSION => Ok(Origin::Ours { framed, table: false }),
        VERSION_TABLE if framed => Ok(Origin::Ours { framed, table: true }),
        _ => Err(version),
    }
}

/// Whether the producer has ended the stream.
pub fn is_closed(reserved: &AtomicU32) -> bool {
    // SYNC POINT: closed (Acquire; pairs with the Release in `close`): every message the
    // producer committed before closing is visible once we see the flag.
    reserved.load(Ordering::Acquire) & CLOSED != 0
}

/// Marks the stream as ended.
pub fn close(reserved: &AtomicU32) {
    // SYNC POINT: closed (Release; pairs with the Acquire in `is_closed`).
    reserved.fetch_or(CLOSED, Ordering::Release);
}
