//! The reader table of a framed channel: frame slots shared by many readers, each frame written
//! once and viewed in place by all of them.
//!
//! A framed channel (extension version 2) uses its data area as a pool of `slots` equal
//! *slots*, each holding one framed message (`[u32 length][frame header][pixels]`, 64-byte
//! aligned pixels), and keeps this table after the data area, where cpp_py_shmbuf's code never
//! looks. The ring header's `head` and `tail` stay 0, so a cpp_py_shmbuf consumer attaching
//! anyway sees an empty ring: it reads nothing and writes nothing that we read.
//!
//! # Layout (after the data area, at `16 + capacity` rounded up to 64)
//!
//! | offset | size | word | written by | read by |
//! |---|---|---|---|---|
//! | 0 | 4 | magic `b"SFRT"` | producer, at creation | readers, at attach |
//! | 4 | 4 | table version, 1 | producer, at creation | readers, at attach |
//! | 8 | 4 | `slots`: frame slots, 1..=32 | producer, at creation | readers, at attach |
//! | 12 | 4 | `slot_len`: bytes per slot, a multiple of 64 | producer, at creation | readers, at attach |
//! | 16 | 4 | `max_readers`: reader entries, 1..=32 | producer, at creation | readers, at attach |
//! | 20 | 4 | `table_len`: bytes of this table | producer, at creation | readers, at attach |
//! | 64 | 8 | `count`: frames published so far (the next publication number) | producer | readers |
//! | 72 | 4 | `published`: `count` mod 2^32 (one more once the stream ends, so that a reader between its CLOSED check and its sleep does not sleep), the futex word readers sleep on | producer | readers (futex) |
//! | 76 | 4 | `sleepers`: bit r set while reader r sleeps (or is about to) | readers (RMW), producer (clears a dead reader's bit) | producer |
//! | 80 | 4 | `room`: bumped by a reader each time it gives a slot back; the producer sleeps on it | readers (RMW) | producer (futex) |
//! | 84 | 44 | reserved, 0 | | |
//! | 128 | 8 per slot | `seq[k]`: what slot k holds (see below) | producer | readers |
//! | 128 + 8·slots, rounded up to 64 | 64 per reader | reader entry r (see below) | | |
//!
//! `seq[k]` is a publication number `p < 2^62` (slot k holds frame `p`, complete), `EMPTY`
//! (`u64::MAX`, never written), `WRITING` (`u64::MAX - 1`, the producer is filling it), or
//! `RECLAIM | q` (bit 63 plus `q`: the producer is checking whether it may take frame `q`'s
//! slot; it either goes on to `WRITING` or puts `q` back).
//!
//! A reader entry (64 bytes, one cache line):
//!
//! | offset | size | word | written by | read by |
//! |---|---|---|---|---|
//! | 0 | 8 | `claim`: bits 0..32 the slots the reader holds, bit 32 `ACTIVE`, bit 33 `LOSSLESS`, bits 40..64 an epoch | the reader (RMW); the producer clears a dead reader's with a CAS | producer |
//! | 8 | 8 | `next`: publication number of the next frame it will read (`u64::MAX`: not reading) | the reader | producer |
//! | 16 | 8 | `read`: frames it read | the reader | listings |
//! | 24 | 8 | `dropped`: frames it lost (overwritten before it read them) | the reader | listings |
//! | 32 | 4 | `pid`: the reader's process id, for listings | the reader | listings |
//! | 36 | 4 | `reader_live`: the reader's liveness word | the reader's keeper; the kernel at its death | producer (futex) |
//! | 40 | 8 | the reader keeper's robust-list node | the reader's keeper | the kernel |
//! | 48 | 4 | `producer_live`: the producer's liveness word for this reader | the producer's keeper; the kernel at its death | reader (futex) |
//! | 56 | 8 | the producer keeper's robust-list node | the producer's keeper | the kernel |
//!
//! The liveness words and their robust-list nodes are explained in [`crate::sys::liveness`]: 0 is
//! "unwatched" (probe the lock byte), a thread id is "alive, the kernel will mark its death",
//! `OWNER_DIED` is "dead".
//!
//! An entry belongs to the reader holding the segment file's lock byte `2 + r` (see the
//! `segment` module), which the kernel drops when the reader dies. The producer frees the entry
//! of a reader whose lock is free; a new reader takes any entry whose lock it can take.
//!
//! # The claim protocol: a held frame is never overwritten
//!
//! The race to get right: the producer takes a lagging reader's oldest frame's slot while that
//! reader takes that very frame. Both sides write their intent, issue a SeqCst fence, then look
//! at the other's (a Dekker-style handshake; `SYNC POINT: claim` in the code):
//!
//! ```text
//! reader, taking frame p in slot k          producer, taking slot k (holding frame q)
//! R1 claim |= 1 << k                        P1 seq[k] = RECLAIM | q
//!    fence(SeqCst)                             fence(SeqCst)
//! R2 if seq[k] != p: claim &= !(1 << k)     P2 if any reader's claim has bit k (or, waiting
//!    (frame gone: try the next one)            for lossless readers, one has next <= q):
//!                                              seq[k] = q, choose another slot
//!                                           P3 seq[k] = WRITING, write, seq[k] = p'
//! ```
//!
//! The fences fall in one order or the other: either R1 is visible to P2 (the producer sees
//! the claim and backs off) or P1 is visible to R2 (the reader sees that the frame is gone).
//! Never neither. A reader that finds `RECLAIM | p` for the frame it wants waits for the
//! outcome (the producer settles it within a few loads), so a lossless reader never skips a
//! frame the producer only looked at. A lossless reader's `next` is protected the same way: it
//! is stored before the fence that precedes its first look at the slots.
//!
//! # Memory ordering, the other words
//!
//! | atomic | store | load | publishes |
//! |---|---|---|---|
//! | `seq[k] = p` | Release (producer, after writing the slot) | Acquire (readers) | the slot's header and pixels (`SYNC POINT: slot`) |
//! | `count` | Release (producer, after `seq[k] = p`) | Acquire (readers) | that frames up to `count - 1` exist (`SYNC POINT: count`) |
//! | `published` / `sleepers` | SeqCst store, fence / RMW, fence | after the fence | a sleeping reader is woken (`SYNC POINT: sleep`, see [`crate::wait`]) |
//! | `claim` release (`&= !(1 << k)`) | Release RMW (reader, after its last read of the slot) | Acquire (producer) | the slot may be rewritten (`SYNC POINT: release`) |
//! | `room` | SeqCst RMW (reader), then a SeqCst fence and `PRODUCER_SLEEPING` | futex (producer), after its own fence | a waiting producer is woken (`SYNC POINT: room`): bumped by every change that can give it room: a release, a reader stopping or leaving, a skip by `latest()`, a new reader dropping a dead owner's slots |
//!
//! This module holds the protocol only, on atomics it is handed; under `--cfg loom` they are
//! loom's, and `make loom` model-checks one producer and two readers (claims, releases in any
//! order, a reader dying mid-claim).

use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};

/// Most slots a channel may have (the `claim` word's held bits).
pub const MAX_SLOTS: u32 = 32;
/// Most reader entries a channel may have (the `sleepers` bits).
pub const MAX_READERS: u32 = 32;
/// Reader entries unless configured otherwise.
pub const DEFAULT_MAX_READERS: u32 = 8;

const TABLE_MAGIC: u32 = u32::from_le_bytes(*b"SFRT");
const TABLE_VERSION: u32 = 1;
const HEADER_BYTES: usize = 128;
const ENTRY_BYTES: usize = 64;

/// `seq[k]`: never written.
pub(crate) const EMPTY: u64 = u64::MAX;
/// `seq[k]`: the producer is writing the slot.
pub(crate) const WRITING: u64 = u64::MAX - 1;
/// `seq[k]`: the producer checks whether it may take the slot of the frame in the low bits.
const RECLAIM: u64 = 1 << 63;
/// Publication numbers stay below this (2^62 frames: forever at any frame rate).
const PUBLICATION_LIMIT: u64 = 1 << 62;

const HELD_MASK: u64 = 0xFFFF_FFFF;
/// `claim`: the entry is in use.
pub(crate) const ACTIVE: u64 = 1 << 32;
/// `claim`: the reader is lossless (a waiting producer waits for it).
pub(crate) const LOSSLESS: u64 = 1 << 33;
const EPOCH_SHIFT: u32 = 40;
const EPOCH_MASK: u64 = !((1u64 << EPOCH_SHIFT) - 1);
/// `next`: the reader is not reading (gone, its frames still held).
pub(crate) const NOT_READING: u64 = u64::MAX;

/// The table's fixed part, as laid out in memory (128 bytes).
#[repr(C)]
pub(crate) struct TableHeader {
    magic: AtomicU32,
    version: AtomicU32,
    slots: AtomicU32,
    slot_len: AtomicU32,
    max_readers: AtomicU32,
    table_len: AtomicU32,
    _geometry_reserved: [AtomicU32; 10],
    count: AtomicU64,
    published: AtomicU32,
    sleepers: AtomicU32,
    room: AtomicU32,
    _live_reserved: [AtomicU32; 11],
}

/// One reader entry, as laid out in memory (64 bytes).
#[repr(C)]
pub(crate) struct ReaderEntry {
    claim: AtomicU64,
    next: AtomicU64,
    read: AtomicU64,
    dropped: AtomicU64,
    pid: AtomicU32,
    /// The reader's liveness word (see [`crate::sys::liveness`]): its keeper's thread id.
    reader_live: AtomicU32,
    /// The reader keeper's robust-list node for `reader_live` (a pointer in its process).
    reader_node: AtomicU64,
    /// The producer's liveness word for this reader to wait on: the producer keeper's id.
    producer_live: AtomicU32,
    _pad: AtomicU32,
    /// The producer keeper's robust-list node for `producer_live`.
    producer_node: AtomicU64,
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<TableHeader>() == HEADER_BYTES);
    assert!(std::mem::offset_of!(TableHeader, count) == 64);
    assert!(std::mem::offset_of!(TableHeader, published) == 72);
    assert!(std::mem::offset_of!(TableHeader, sleepers) == 76);
    assert!(std::mem::offset_of!(TableHeader, room) == 80);
    assert!(std::mem::size_of::<ReaderEntry>() == ENTRY_BYTES);
    assert!(std::mem::offset_of!(ReaderEntry, next) == 8);
    assert!(std::mem::offset_of!(ReaderEntry, pid) == 32);
    assert!(std::mem::offset_of!(ReaderEntry, reader_live) == 36);
    assert!(std::mem::offset_of!(ReaderEntry, reader_node) == 40);
    assert!(std::mem::offset_of!(ReaderEntry, producer_live) == 48);
    assert!(std::mem::offset_of!(ReaderEntry, producer_node) == 56);
};

/// From a robust-list node to its liveness word, for the reader's keeper.
#[cfg(not(loom))]
pub(crate) const READER_WORD_FROM_NODE: isize = 36 - 40;
/// From a robust-list node to its liveness word, for the producer's keeper.
#[cfg(not(loom))]
pub(crate) const PRODUCER_WORD_FROM_NODE: isize = 48 - 56;

/// The shape of a table: how many slots of how many bytes, how many reader entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) slots: u32,
    pub(crate) slot_len: u32,
    pub(crate) max_readers: u32,
}

impl Geometry {
    fn seq_bytes(self) -> usize {
        (self.slots as usize * 8).div_ceil(64) * 64
    }

    /// Bytes of the table.
    pub(crate) fn table_len(self) -> usize {
        HEADER_BYTES + self.seq_bytes() + self.max_readers as usize * ENTRY_BYTES
    }

    /// Where the table starts in a segment with a data area of `capacity` bytes.
    pub(crate) fn table_offset(capacity: u32) -> usize {
        (crate::ring::HEADER_LEN + capacity as usize).div_ceil(64) * 64
    }
}

/// Why a table cannot be used: it breaks the layout above.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// The segment ends before the table does.
    #[error("the segment ({len} bytes) has no room for a reader table at offset {offset}")]
    Missing {
        /// Segment size.
        len: usize,
        /// Where the table would start.
        offset: usize,
    },
    /// No table magic, or another table version.
    #[error("no reader table (magic {magic:#010x}, version {version}) after the data area")]
    BadMagic {
        /// The magic found.
        magic: u32,
        /// The version found.
        version: u32,
    },
    /// Slot count, slot size, reader count or table size out of range.
    #[error("reader table geometry is invalid: {slots} slots of {slot_len} bytes in a {capacity}-byte data area, {max_readers} readers, table of {table_len} bytes")]
    Geometry {
        /// Slots.
        slots: u32,
        /// Bytes per slot.
        slot_len: u32,
        /// The data area's size.
        capacity: u32,
        /// Reader entries.
        max_readers: u32,
        /// Declared table size.
        table_len: u32,
    },
}

/// A view of a table's words: the header, the slot words and the reader entries.
#[derive(Clone, Copy)]
pub(crate) struct Table<'a> {
    header: &'a TableHeader,
    seq: &'a [AtomicU64],
    readers: &'a [ReaderEntry],
}

/// What a slot word says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Empty,
    Writing,
    Reclaiming(u64),
    Frame(u64),
}

fn slot_state(v: u64) -> SlotState {
    match v {
        EMPTY => SlotState::Empty,
        WRITING => SlotState::Writing,
        v if v & RECLAIM != 0 && v & !RECLAIM < PUBLICATION_LIMIT => {
            SlotState::Reclaiming(v & !RECLAIM)
        }
        v if v < PUBLICATION_LIMIT => SlotState::Frame(v),
        // Only a broken producer writes anything else: treat it as a slot being written,
        // which no reader takes.
        _ => SlotState::Writing,
    }
}

impl<'a> Table<'a> {
    pub(crate) fn new(
        header: &'a TableHeader,
        seq: &'a [AtomicU64],
        readers: &'a [ReaderEntry],
    ) -> Table<'a> {
        Table { header, seq, readers }
    }

    /// Number of slots.
    pub(crate) fn slots(&self) -> usize {
        self.seq.len()
    }

    /// Number of reader entries.
    pub(crate) fn max_readers(&self) -> usize {
        self.readers.len()
    }

    /// A slot that holds a published frame, if any (for a listing's look at the shape; its
    /// bytes may be rewritten meanwhile: validate what is read).
    #[cfg(not(loom))]
    pub(crate) fn some_frame_slot(&self) -> Option<usize> {
        self.seq
            .iter()
            .position(|w| matches!(slot_state(w.load(Ordering::Acquire)), SlotState::Frame(_)))
    }

    /// Frames published so far.
    pub(crate) fn count(&self) -> u64 {
        // SYNC POINT: count (Acquire; pairs with the Release store in `Publisher::publish`).
        self.header.count.load(Ordering::Acquire)
    }

    /// The readers' futex word.
    #[cfg(not(loom))]
    pub(crate) fn published_word(&self) -> &'a AtomicU32 {
        &self.header.published
    }

    /// The producer's futex word.
    #[cfg(not(loom))]
    pub(crate) fn room_word(&self) -> &'a AtomicU32 {
        &self.header.room
    }

    /// Reader `r`'s liveness word (its keeper's) and robust-list node.
    #[cfg(not(loom))]
    pub(crate) fn reader_watch(&self, r: usize) -> crate::sys::liveness::Watched {
        let e = &self.readers[r];
        crate::sys::liveness::Watched { word: &e.reader_live, node: e.reader_node.as_ptr().cast() }
    }

    /// The producer's liveness word that reader `r` waits on, and its robust-list node.
    #[cfg(not(loom))]
    pub(crate) fn producer_watch(&self, r: usize) -> crate::sys::liveness::Watched {
        let e = &self.readers[r];
        crate::sys::liveness::Watched {
            word: &e.producer_live,
            node: e.producer_node.as_ptr().cast(),
        }
    }

    /// Reader `r`'s liveness word.
    #[cfg(not(loom))]
    pub(crate) fn reader_live(&self, r: usize) -> crate::sys::liveness::LiveWord<'a> {
        let e = &self.readers[r];
        crate::sys::liveness::LiveWord { word: &e.reader_live, node: &e.reader_node }
    }

    /// The producer's liveness word in entry `r`.
    #[cfg(not(loom))]
    pub(crate) fn producer_live(&self, r: usize) -> crate::sys::liveness::LiveWord<'a> {
        let e = &self.readers[r];
        crate::sys::liveness::LiveWord { word: &e.producer_live, node: &e.producer_node }
    }

    /// What the readers' entries say, for listings.
    pub(crate) fn reader_info(&self, r: usize) -> EntryInfo {
        let e = &self.readers[r];
        let claim = e.claim.load(Ordering::Acquire);
        EntryInfo {
            active: claim & ACTIVE != 0,
            lossless: claim & LOSSLESS != 0,
            held: (claim & HELD_MASK).count_ones(),
            next: e.next.load(Ordering::Acquire),
            read: e.read.load(Ordering::Relaxed),
            dropped: e.dropped.load(Ordering::Relaxed),
            pid: e.pid.load(Ordering::Relaxed),
        }
    }

    /// Whether entry `r` is in use (a reader reads through it or holds slots).
    pub(crate) fn entry_active(&self, r: usize) -> bool {
        self.readers[r].claim.load(Ordering::Acquire) & (ACTIVE | HELD_MASK) != 0
    }

    /// How many slots some reader holds now (the producer may take none of them).
    pub(crate) fn held_slots(&self) -> u32 {
        self.readers
            .iter()
            .fold(0u64, |held, e| held | (e.claim.load(Ordering::Relaxed) & HELD_MASK))
            .count_ones()
    }

    /// Whether entry `r` is in use or pins slots.
    #[cfg(test)]
    pub(crate) fn entry_in_use(&self, r: usize) -> bool {
        self.readers[r].claim.load(Ordering::Acquire) & (ACTIVE | HELD_MASK) != 0
    }
}

/// A reader entry's contents, for listings and the producer's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryInfo {
    pub(crate) active: bool,
    pub(crate) lossless: bool,
    pub(crate) held: u32,
    pub(crate) next: u64,
    pub(crate) read: u64,
    pub(crate) dropped: u64,
    pub(crate) pid: u32,
}

/// Writes a fresh table (every slot empty, every entry free).
pub(crate) fn init(t: &Table<'_>, g: Geometry) {
    let h = t.header;
    // Relaxed: the segment becomes visible to other processes only after creation returns (it
    // is linked under its name afterwards), which orders these writes.
    h.magic.store(TABLE_MAGIC, Ordering::Relaxed);
    h.version.store(TABLE_VERSION, Ordering::Relaxed);
    h.slots.store(g.slots, Ordering::Relaxed);
    h.slot_len.store(g.slot_len, Ordering::Relaxed);
    h.max_readers.store(g.max_readers, Ordering::Relaxed);
    h.table_len.store(g.table_len() as u32, Ordering::Relaxed);
    h.count.store(0, Ordering::Relaxed);
    h.published.store(0, Ordering::Relaxed);
    h.sleepers.store(0, Ordering::Relaxed);
    h.room.store(0, Ordering::Relaxed);
    for s in t.seq {
        s.store(EMPTY, Ordering::Relaxed);
    }
    for e in t.readers {
        e.claim.store(0, Ordering::Relaxed);
        e.next.store(NOT_READING, Ordering::Relaxed);
        e.reader_live.store(0, Ordering::Relaxed);
        e.producer_live.store(0, Ordering::Relaxed);
    }
}

/// Reads and validates the geometry a producer wrote (`capacity`: the data area's size).
pub(crate) fn read_geometry(
    h: &TableHeader,
    capacity: u32,
    room: usize,
) -> Result<Geometry, TableError> {
    let (magic, version) = (h.magic.load(Ordering::Relaxed), h.version.load(Ordering::Relaxed));
    if magic != TABLE_MAGIC || version != TABLE_VERSION {
        return Err(TableError::BadMagic { magic, version });
    }
    let g = Geometry {
        slots: h.slots.load(Ordering::Relaxed),
        slot_len: h.slot_len.load(Ordering::Relaxed),
        max_readers: h.max_readers.load(Ordering::Relaxed),
    };
    let table_len = h.table_len.load(Ordering::Relaxed);
    let min_slot = crate::frame::framed_message_len(0);
    let ok = (1..=MAX_SLOTS).contains(&g.slots)
        && (1..=MAX_READERS).contains(&g.max_readers)
        && g.slot_len >= min_slot
        && g.slot_len % crate::frame::FRAME_ALIGN == 0
        && g.slots as u64 * g.slot_len as u64 <= capacity as u64
        && table_len as usize == g.table_len()
        && g.table_len() <= room;
    if !ok {
        return Err(TableError::Geometry {
            slots: g.slots,
            slot_len: g.slot_len,
            capacity,
            max_readers: g.max_readers,
            table_len,
        });
    }
    Ok(g)
}

/// The producer's side of the protocol.
#[derive(Debug)]
pub(crate) struct Publisher {
    /// Frames published (the next publication number).
    count: u64,
}

/// The producer's choice of slot, with its old frame if it had one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) slot: usize,
}

impl Publisher {
    /// The producer role on a fresh table (the creator's).
    pub(crate) fn new() -> Publisher {
        Publisher { count: 0 }
    }

    /// Frames published so far.
    #[cfg(loom)]
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Takes a slot for the next frame, or `None` when none may be taken now.
    ///
    /// A slot any reader holds is never taken. `protect_lossless` (a producer that waits rather
    /// than lose frames) also spares every frame a lossless reader has not read yet. Among the
    /// rest, in order of preference: a frame every reader has read (the most recent one that is
    /// not the newest frame, so few slots cycle while readers keep up, and stay in the CPU
    /// cache), an empty slot, the newest frame when every reader has read it, and last the
    /// oldest frame some (lossy) reader has not read yet, which it loses.
    pub(crate) fn take_slot(&mut self, t: &Table<'_>, protect_lossless: bool) -> Option<Taken> {
        let newest = self.count.checked_sub(1);
        let mut excluded = 0u64;
        for _ in 0..=t.slots() {
            let needs = Needs::scan(t);
            let blocked = needs.held | excluded;
            let mut best: Option<(u8, u64, usize)> = None; // (class, key, slot): lowest wins
            for (k, word) in t.seq.iter().enumerate() {
                if blocked & (1 << k) != 0 {
                    continue;
                }
                let (class, key) = match slot_state(word.load(Ordering::Relaxed)) {
                    SlotState::Frame(q) if q < needs.min_next && Some(q) != newest => {
                        (0, u64::MAX - q)
                    }
                    SlotState::Empty => (1, 0),
                    SlotState::Frame(q) if q < needs.min_next => (2, 0),
                    SlotState::Frame(q) if !protect_lossless || q < needs.min_lossless => (3, q),
                    _ => continue,
                };
                if best.is_none_or(|b| (class, key) < (b.0, b.1)) {
                    best = Some((class, key, k));
                }
            }
            let (_, _, k) = best?;
            let word = &t.seq[k];
            let q = match slot_state(word.load(Ordering::Relaxed)) {
                SlotState::Empty => {
                    // No reader can hold a slot that never held a frame.
                    word.store(WRITING, Ordering::Relaxed);
                    return Some(Taken { slot: k });
                }
                SlotState::Frame(q) => q,
                _ => unreachable!("only the producer writes slot words"),
            };
            // SYNC POINT: claim (P1, then a SeqCst fence; pairs with the fence between R1 and
            // R2 in `Cursor::claim` and `Cursor::attach`).
            word.store(RECLAIM | q, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            // P2: every reader's claim and next, after the fence.
            let now = Needs::scan(t);
            if now.held & (1 << k) != 0 || (protect_lossless && q >= now.min_lossless) {
                word.store(q, Ordering::Release); // put it back: a reader holds or needs it
                excluded |= 1 << k;
                continue;
            }
            word.store(WRITING, Ordering::Relaxed);
            return Some(Taken { slot: k });
        }
        None
    }

    /// Whether [`take_slot`](Publisher::take_slot) would find a slot now (it changes nothing).
    pub(crate) fn has_room(&self, t: &Table<'_>, protect_lossless: bool) -> bool {
        let needs = Needs::scan(t);
        t.seq.iter().enumerate().any(|(k, word)| {
            needs.held & (1 << k) == 0
                && match slot_state(word.load(Ordering::Relaxed)) {
                    SlotState::Empty => true,
                    SlotState::Frame(q) => !protect_lossless || q < needs.min_lossless,
                    _ => false,
                }
        })
    }

    /// Publishes the frame written into `taken`. Returns its publication number and the
    /// `sleepers` bits of the readers that sleep (the caller then wakes them on `published`).
    pub(crate) fn publish(&mut self, t: &Table<'_>, taken: Taken) -> (u64, u32) {
        let p = self.count;
        // SYNC POINT: slot (Release; pairs with the readers' Acquire/SeqCst loads of `seq[k]`):
        // the slot's header and pixels are visible before its publication number.
        t.seq[taken.slot].store(p, Ordering::Release);
        self.count += 1;
        // SYNC POINT: count (Release; pairs with the Acquire in `Table::count`).
        t.header.count.store(self.count, Ordering::Release);
        t.header.published.store(self.count as u32, Ordering::SeqCst);
        // SYNC POINT: sleep (SeqCst fence; pairs with the one in `Cursor::announce_sleep`).
        fence(Ordering::SeqCst);
        (p, t.header.sleepers.load(Ordering::Relaxed))
    }

    /// Gives back a slot taken but not published (its old frame is gone: the slot is empty).
    pub(crate) fn abandon(&mut self, t: &Table<'_>, taken: Taken) {
        t.seq[taken.slot].store(EMPTY, Ordering::Release);
    }

    /// Frees the entry of reader `r` if it is in use and `alive` says its owner is gone: its
    /// held slots are free again and it no longer counts. Returns whether it freed it.
    pub(crate) fn free_if_dead(
        &self,
        t: &Table<'_>,
        r: usize,
        alive: impl FnOnce() -> bool,
    ) -> bool {
        let e = &t.readers[r];
        let seen = e.claim.load(Ordering::SeqCst);
        if seen & (ACTIVE | HELD_MASK) == 0 || alive() {
            return false;
        }
        // Keep the epoch: a reader that took the entry over meanwhile bumped it, so this CAS
        // then fails and leaves the new reader alone.
        let free = seen & EPOCH_MASK;
        let freed =
            e.claim.compare_exchange(seen, free, Ordering::SeqCst, Ordering::SeqCst).is_ok();
        if freed {
            // Its `next` is left alone (ignored once ACTIVE is clear; a new owner writes its
            // own, which a store here could overwrite). Its sleeper bit would cost a wake-up
            // call per frame: clear it, and give it back if a new owner took the entry
            // meanwhile (it may have set the bit to sleep: the claim it wrote first shows).
            let bit = 1u32 << r;
            t.header.sleepers.fetch_and(!bit, Ordering::SeqCst);
            if e.claim.load(Ordering::SeqCst) != free {
                t.header.sleepers.fetch_or(bit, Ordering::SeqCst);
            }
        }
        freed
    }
}

/// What the readers hold and still need, from one pass over their entries.
struct Needs {
    held: u64,
    /// Lowest `next` of any active reader: frames below it were read by all.
    min_next: u64,
    /// Lowest `next` of any active lossless reader.
    min_lossless: u64,
}

impl Needs {
    fn scan(t: &Table<'_>) -> Needs {
        let mut n = Needs { held: 0, min_next: u64::MAX, min_lossless: u64::MAX };
        for e in t.readers {
            let c = e.claim.load(Ordering::Acquire);
            n.held |= c & HELD_MASK;
            if c & ACTIVE != 0 {
                let next = e.next.load(Ordering::Acquire);
                n.min_next = n.min_next.min(next);
                if c & LOSSLESS != 0 {
                    n.min_lossless = n.min_lossless.min(next);
                }
            }
        }
        n
    }
}

/// Where a reader starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// The newest frame published (or the first to come): what a viewer wants.
    #[default]
    Newest,
    /// The oldest frame still kept among the last `slots` published: for lossless readers
    /// that want the backlog.
    Oldest,
}

/// A reader's side of the protocol: its entry and its position.
#[derive(Debug)]
pub(crate) struct Cursor {
    r: usize,
    next: u64,
    dropped: u64,
    read: u64,
    /// Set when the last `take` bumped `room`: the caller must wake a sleeping producer.
    bumped_room: bool,
}

/// What [`Cursor::take`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// Frame `publication` in `slot`, now held; `skipped` frames were lost before it.
    Frame { slot: usize, publication: u64, skipped: u64 },
    /// Nothing to read; `seen` is the `published` word to sleep on.
    Nothing { seen: u32 },
    /// The producer is deciding about a frame we want: try again at once.
    Pending,
}

impl Cursor {
    /// Takes entry `r` (whose lock the caller holds: any previous owner is gone) and places
    /// the reader at `start`.
    pub(crate) fn attach(
        t: &Table<'_>,
        r: usize,
        lossless: bool,
        start: Start,
        pid: u32,
    ) -> Cursor {
        let e = &t.readers[r];
        // Protect every frame while we look for our start (a waiting producer spares what a
        // lossless reader has not read), then mark the entry ours under a new epoch, which
        // drops whatever a dead previous owner held and makes a sweep of it fail.
        // SYNC POINT: claim (R1 for the start: stored, with the flags below, before the fence
        // that precedes our first look at the slots).
        e.next.store(0, Ordering::Relaxed);
        let flags = ACTIVE | if lossless { LOSSLESS } else { 0 };
        let mut c = e.claim.load(Ordering::SeqCst);
        loop {
            let epoch = (c & EPOCH_MASK).wrapping_add(1 << EPOCH_SHIFT);
            match e.claim.compare_exchange(c, epoch | flags, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        // A dead owner's slots are free now: room for a producer waiting (the caller wakes it,
        // see `take_bumped_room`).
        let freed_slots = c & HELD_MASK != 0;
        if freed_slots {
            t.header.room.fetch_add(1, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
        // Our sleeper bit: a dead owner's may be left (the producer's sweep clears it, unless
        // it raced with us); we set ours when we sleep.
        t.header.sleepers.fetch_and(!(1u32 << r), Ordering::SeqCst);
        e.read.store(0, Ordering::Relaxed);
        e.dropped.store(0, Ordering::Relaxed);
        e.pid.store(pid, Ordering::Relaxed);
        let count = t.count();
        let next = match start {
            Start::Newest => count.saturating_sub(1),
            Start::Oldest => oldest_frame(t, count).unwrap_or(count),
        };
        e.next.store(next, Ordering::SeqCst);
        // A lossless start protected every frame for a moment (`next` 0 above): a producer
        // that found no room then may sleep; what we no longer protect is room for it.
        let protected_all = lossless && next > 0;
        if protected_all && !freed_slots {
            t.header.room.fetch_add(1, Ordering::SeqCst);
        }
        Cursor { r, next, dropped: 0, read: 0, bumped_room: freed_slots || protected_all }
    }

    /// Frames this reader lost (overwritten before it read them).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Frames published that this reader has not read yet.
    pub(crate) fn lag(&self, t: &Table<'_>) -> u64 {
        t.count().saturating_sub(self.next)
    }

    /// Takes the next frame (`newest`: the newest one, skipping older ones without counting
    /// them as lost). A frame it returns is held until [`release`](Cursor::release).
    pub(crate) fn take(&mut self, t: &Table<'_>, newest: bool) -> Take {
        for _ in 0..=t.slots() {
            let count = t.count();
            if self.next >= count {
                return Take::Nothing { seen: count as u32 };
            }
            // Find the frame we want: `next` itself, or else the oldest after it (we lost the
            // ones between), or with `newest` the newest.
            let mut target: Option<(u64, usize)> = None;
            let mut reclaiming = u64::MAX; // the oldest wanted frame the producer is deciding on
            for (k, word) in t.seq.iter().enumerate() {
                match slot_state(word.load(Ordering::Acquire)) {
                    SlotState::Frame(p) if p >= self.next && p < count => {
                        let better = match target {
                            None => true,
                            Some((b, _)) => (p > b) == newest,
                        };
                        if better {
                            target = Some((p, k));
                        }
                    }
                    SlotState::Reclaiming(q) if q >= self.next && q < count => {
                        reclaiming = reclaiming.min(q)
                    }
                    _ => {}
                }
            }
            let Some((p, k)) = target else {
                if reclaiming != u64::MAX {
                    return Take::Pending;
                }
                // Everything we could read is being rewritten: newer frames are on their way.
                return Take::Nothing { seen: count as u32 };
            };
            // A frame under reclaim before our target may be put back: wait for the verdict
            // rather than skip it (a lossless reader must not lose it).
            if !newest && reclaiming < p {
                return Take::Pending;
            }
            if self.claim(t, k, p) {
                if newest && p > self.next {
                    // The frames skipped are no longer protected for us (lossless): room for a
                    // waiting producer.
                    self.bump_room(t);
                }
                let skipped = if newest { 0 } else { p - self.next };
                self.dropped += skipped;
                self.read += 1;
                self.next = p + 1;
                let e = &t.readers[self.r];
                // The held bit protects `p`; from here `next` protects what follows.
                e.next.store(self.next, Ordering::Release);
                e.read.store(self.read, Ordering::Relaxed);
                e.dropped.store(self.dropped, Ordering::Relaxed);
                return Take::Frame { slot: k, publication: p, skipped };
            }
            // Gone under our hands: look again.
        }
        Take::Pending
    }

    /// Whether the last [`take`](Cursor::take) (or the attach) bumped `room`, so that the
    /// caller must wake a producer sleeping for room (`SYNC POINT: room`). Clears the flag.
    ///
    /// Wake only after a bump: a wake that lands before the producer's sleep is only not lost
    /// because the bump changed the word that sleep compares.
    pub(crate) fn take_bumped_room(&mut self) -> bool {
        std::mem::take(&mut self.bumped_room)
    }

    fn bump_room(&mut self, t: &Table<'_>) {
        t.header.room.fetch_add(1, Ordering::SeqCst);
        self.bumped_room = true;
    }

    /// Tries to hold slot `k`, which showed frame `p`.
    fn claim(&mut self, t: &Table<'_>, k: usize, p: u64) -> bool {
        let e = &t.readers[self.r];
        let bit = 1u64 << k;
        // SYNC POINT: claim (R1, then a SeqCst fence; pairs with the fence between P1 and P2
        // in `Publisher::take_slot`).
        let before = e.claim.fetch_or(bit, Ordering::AcqRel);
        debug_assert_eq!(before & bit, 0, "a slot we hold cannot show a new frame");
        fence(Ordering::SeqCst);
        // R2 (also Acquire for the slot's bytes: pairs with the Release in `Publisher::publish`).
        if t.seq[k].load(Ordering::Acquire) == p {
            return true;
        }
        e.claim.fetch_and(!bit, Ordering::AcqRel);
        // A producer that saw our bit for an instant may have passed the slot over and gone
        // to sleep for room: tell it the slot is free.
        self.bump_room(t);
        false
    }

    /// Gives slot `k` back. Callable from any thread, after the reader is gone too (`r` is the
    /// entry, kept owned until every frame is released).
    pub(crate) fn release(t: &Table<'_>, r: usize, k: usize) {
        // SYNC POINT: release (Release; pairs with the Acquire loads of `Needs::scan`): our
        // reads of the slot happen before the producer may rewrite it.
        t.readers[r].claim.fetch_and(!(1u64 << k), Ordering::Release);
        t.header.room.fetch_add(1, Ordering::SeqCst);
    }

    /// Stops reading: the entry no longer protects or counts frames; held frames stay held.
    pub(crate) fn stop(t: &Table<'_>, r: usize) {
        t.readers[r].next.store(NOT_READING, Ordering::SeqCst);
        t.header.room.fetch_add(1, Ordering::SeqCst);
    }

    /// Frees the entry (every frame released, the reader gone). The caller then drops the
    /// entry's lock.
    pub(crate) fn detach(t: &Table<'_>, r: usize) {
        let e = &t.readers[r];
        e.next.store(NOT_READING, Ordering::SeqCst);
        e.claim.fetch_and(EPOCH_MASK, Ordering::SeqCst);
        t.header.sleepers.fetch_and(!(1u32 << r), Ordering::SeqCst);
        t.header.room.fetch_add(1, Ordering::SeqCst);
    }

    /// Announces that this reader is about to sleep on `published` (the caller then re-checks
    /// the word and sleeps while it equals what it saw).
    pub(crate) fn announce_sleep(&self, t: &Table<'_>) {
        t.header.sleepers.fetch_or(1 << self.r, Ordering::SeqCst);
        // SYNC POINT: sleep (SeqCst fence; pairs with the one in `Publisher::publish`).
        fence(Ordering::SeqCst);
    }

    /// Ends the sleep announced by [`announce_sleep`](Cursor::announce_sleep).
    pub(crate) fn end_sleep(&self, t: &Table<'_>) {
        t.header.sleepers.fetch_and(!(1 << self.r), Ordering::Relaxed);
    }
}

/// The oldest of the last `slots` frames published (of `count`) that is still kept. (Older
/// frames may linger in slots nobody needed, since the producer reuses few slots while readers
/// keep up: they are the past, not a backlog.)
fn oldest_frame(t: &Table<'_>, count: u64) -> Option<u64> {
    let recent = count.saturating_sub(t.slots() as u64);
    t.seq
        .iter()
        .filter_map(|w| match slot_state(w.load(Ordering::Acquire)) {
            SlotState::Frame(p) if p >= recent => Some(p),
            _ => None,
        })
        .min()
}

/// A table in a mapped segment: where it is and its validated geometry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TableMemory {
    base: std::ptr::NonNull<u8>,
    geometry: Geometry,
}

// SAFETY: a pointer to shared memory that the constructor's caller keeps mapped; all access
// goes through atomics.
unsafe impl Send for TableMemory {}
// SAFETY: as above.
unsafe impl Sync for TableMemory {}

impl TableMemory {
    /// Writes a fresh table of geometry `g` at `base` (`room` bytes available).
    ///
    /// # Safety
    /// `base` must be 64-byte aligned and valid for reads and writes of `room` bytes for as
    /// long as the returned value is used, and nobody else may use the memory during this call.
    pub(crate) unsafe fn init(
        base: std::ptr::NonNull<u8>,
        room: usize,
        g: Geometry,
    ) -> Option<TableMemory> {
        if g.table_len() > room || base.as_ptr().align_offset(64) != 0 {
            return None;
        }
        let mem = TableMemory { base, geometry: g };
        init(&mem.view(), g);
        Some(mem)
    }

    /// Validates the table at `base` (`room` bytes available) for a data area of `capacity`.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `room` bytes for as long as the returned
    /// value is used. Other processes may change the memory at any time; what is read is
    /// validated.
    pub(crate) unsafe fn attach(
        base: std::ptr::NonNull<u8>,
        room: usize,
        capacity: u32,
    ) -> Result<TableMemory, TableError> {
        if room < HEADER_BYTES || base.as_ptr().align_offset(64) != 0 {
            return Err(TableError::Missing { len: room, offset: 0 });
        }
        // SAFETY: HEADER_BYTES are in bounds and aligned (checked above); the header is atomics.
        let header = unsafe { base.cast::<TableHeader>().as_ref() };
        let geometry = read_geometry(header, capacity, room)?;
        Ok(TableMemory { base, geometry })
    }

    pub(crate) fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The table's words.
    pub(crate) fn view(&self) -> Table<'_> {
        let g = self.geometry;
        let base = self.base.as_ptr();
        // SAFETY: the constructor checked that `g.table_len()` bytes from the 64-aligned base
        // are mapped: header, then `slots` slot words, then `max_readers` entries, at the
        // offsets `Geometry` computes. Every field is an atomic (or padding), valid for any
        // bit pattern, and shared memory is only ever accessed through them.
        unsafe {
            let header = &*(base as *const TableHeader);
            let seq = std::slice::from_raw_parts(
                base.add(HEADER_BYTES) as *const AtomicU64,
                g.slots as usize,
            );
            let readers = std::slice::from_raw_parts(
                base.add(HEADER_BYTES + g.seq_bytes()) as *const ReaderEntry,
                g.max_readers as usize,
            );
            Table::new(header, seq, readers)
        }
    }
}

/// A table in ordinary memory, for tests and the model checker.
#[cfg(any(test, loom))]
pub(crate) struct OwnedTable {
    header: TableHeader,
    seq: Vec<AtomicU64>,
    readers: Vec<ReaderEntry>,
}

#[cfg(any(test, loom))]
impl OwnedTable {
    pub(crate) fn new(slots: u32, max_readers: u32) -> OwnedTable {
        let header = TableHeader {
            magic: AtomicU32::new(0),
            version: AtomicU32::new(0),
            slots: AtomicU32::new(0),
            slot_len: AtomicU32::new(0),
            max_readers: AtomicU32::new(0),
            table_len: AtomicU32::new(0),
            _geometry_reserved: std::array::from_fn(|_| AtomicU32::new(0)),
            count: AtomicU64::new(0),
            published: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            room: AtomicU32::new(0),
            _live_reserved: std::array::from_fn(|_| AtomicU32::new(0)),
        };
        let readers = (0..max_readers)
            .map(|_| ReaderEntry {
                claim: AtomicU64::new(0),
                next: AtomicU64::new(0),
                read: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                pid: AtomicU32::new(0),
                reader_live: AtomicU32::new(0),
                reader_node: AtomicU64::new(0),
                producer_live: AtomicU32::new(0),
                _pad: AtomicU32::new(0),
                producer_node: AtomicU64::new(0),
            })
            .collect();
        let t =
            OwnedTable { header, seq: (0..slots).map(|_| AtomicU64::new(0)).collect(), readers };
        init(&t.table(), Geometry { slots, slot_len: 128, max_readers });
        t
    }

    pub(crate) fn table(&self) -> Table<'_> {
        Table::new(&self.header, &self.seq, &self.readers)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn frame(c: &mut Cursor, t: &Table<'_>) -> (usize, u64, u64) {
        match c.take(t, false) {
            Take::Frame { slot, publication, skipped } => (slot, publication, skipped),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    fn publish(p: &mut Publisher, t: &Table<'_>, protect: bool) -> Option<usize> {
        let taken = p.take_slot(t, protect)?;
        p.publish(t, taken);
        Some(taken.slot)
    }

    #[test]
    fn late_joiners_start_at_the_newest_frame_and_nobody_loses_what_nobody_missed() {
        let owned = OwnedTable::new(4, 2);
        let t = owned.table();
        let mut p = Publisher::new();
        for _ in 0..20 {
            assert!(
                publish(&mut p, &t, true).is_some(),
                "with no reader the producer never stalls"
            );
        }
        let mut c = Cursor::attach(&t, 0, false, Start::Newest, 1);
        let (_, first, skipped) = frame(&mut c, &t);
        assert_eq!((first, skipped), (19, 0));
        assert_eq!(c.take(&t, false), Take::Nothing { seen: 20 });
    }

    #[test]
    fn a_reader_that_keeps_up_cycles_through_two_slots() {
        let owned = OwnedTable::new(6, 2);
        let t = owned.table();
        let mut p = Publisher::new();
        let mut c = Cursor::attach(&t, 0, false, Start::Newest, 1);
        let mut used = 0u64;
        for i in 0..50 {
            let k = publish(&mut p, &t, true).unwrap();
            used |= 1 << k;
            let (slot, publication, _) = frame(&mut c, &t);
            assert_eq!((slot, publication), (k, i));
            Cursor::release(&t, 0, slot);
        }
        assert_eq!(used.count_ones(), 2, "slots used: {used:b}");
    }

    #[test]
    fn a_lagging_lossy_reader_loses_its_oldest_frames_and_counts_them() {
        let owned = OwnedTable::new(3, 2);
        let t = owned.table();
        let mut p = Publisher::new();
        let mut c = Cursor::attach(&t, 0, false, Start::Newest, 1);
        for _ in 0..10 {
            publish(&mut p, &t, true).expect("a lossy reader never blocks the producer");
        }
        let (_, first, skipped) = frame(&mut c, &t);
        assert_eq!(first, 7, "the three newest frames are kept");
        assert_eq!(skipped, 7);
        assert_eq!(c.dropped(), 7);
    }

    #[test]
    fn held_frames_are_never_taken_and_a_lossless_reader_is_waited_for() {
        let owned = OwnedTable::new(3, 2);
        let t = owned.table();
        let mut p = Publisher::new();
        let mut lossless = Cursor::attach(&t, 0, true, Start::Newest, 1);
        let mut holder = Cursor::attach(&t, 1, false, Start::Newest, 2);
        publish(&mut p, &t, true).unwrap();
        let (held_slot, _, _) = frame(&mut holder, &t);
        publish(&mut p, &t, true).unwrap();
        publish(&mut p, &t, true).unwrap();
        // Three frames: one held by the lossy reader, all unread by the lossless one.
        assert!(!p.has_room(&t, true));
        assert!(p.take_slot(&t, true).is_none());
        // A live source (not protecting lossless readers) takes the oldest unheld frame.
        assert!(p.has_room(&t, false));
        let (_, f0, _) = frame(&mut lossless, &t);
        assert_eq!(f0, 0);
        Cursor::release(&t, 0, held_slot);
        // Frame 0 is still held by the lossy reader: the producer must not take its slot.
        let taken = p.take_slot(&t, true);
        assert!(taken.is_none(), "took slot {taken:?}, held by a reader");
    }

    #[test]
    fn a_dead_readers_place_and_frames_are_freed_but_not_a_new_owners() {
        let owned = OwnedTable::new(2, 1);
        let t = owned.table();
        let mut p = Publisher::new();
        let mut c = Cursor::attach(&t, 0, true, Start::Newest, 1);
        publish(&mut p, &t, true).unwrap();
        publish(&mut p, &t, true).unwrap();
        let _ = frame(&mut c, &t);
        assert!(p.take_slot(&t, true).is_none());
        assert!(!p.free_if_dead(&t, 0, || true), "alive");
        // A new owner took the entry over between our look and our CAS: not freed.
        let seen_dead = || {
            let _ = Cursor::attach(&t, 0, false, Start::Newest, 2);
            false
        };
        assert!(!p.free_if_dead(&t, 0, seen_dead));
        assert!(t.reader_info(0).active);
        assert!(p.free_if_dead(&t, 0, || false));
        assert!(!t.entry_in_use(0));
        assert!(p.take_slot(&t, true).is_some());
    }

    #[test]
    fn geometry_is_validated() {
        let owned = OwnedTable::new(4, 8);
        let t = owned.table();
        let g = read_geometry(t.header, 4096, 4096).unwrap();
        assert_eq!(g, Geometry { slots: 4, slot_len: 128, max_readers: 8 });
        assert!(matches!(read_geometry(t.header, 256, 4096), Err(TableError::Geometry { .. })));
        assert!(matches!(read_geometry(t.header, 4096, 100), Err(TableError::Geometry { .. })));
        t.header.magic.store(0, Ordering::Relaxed);
        assert!(matches!(read_geometry(t.header, 4096, 4096), Err(TableError::BadMagic { .. })));
    }
}

/// The claim protocol under loom: every interleaving (within a preemption bound) of a producer
/// and readers, with the slots' bytes as loom cells, so a write to a slot a reader is reading is
/// reported as a data race.
#[cfg(all(test, loom))]
mod model {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;

    struct Shared {
        table: OwnedTable,
        pixels: Vec<UnsafeCell<u64>>,
        alive: Vec<AtomicBool>,
    }

    // SAFETY: loom checks every access to the cells; the protocol under test is what makes them
    // exclusive.
    unsafe impl Sync for Shared {}
    // SAFETY: as above.
    unsafe impl Send for Shared {}

    fn shared(slots: u32, readers: u32) -> Arc<Shared> {
        Arc::new(Shared {
            table: OwnedTable::new(slots, readers),
            pixels: (0..slots).map(|_| UnsafeCell::new(u64::MAX)).collect(),
            alive: (0..readers).map(|_| AtomicBool::new(true)).collect(),
        })
    }

    /// Publishes up to `frames` frames in at most `attempts` tries, freeing dead readers when
    /// no slot is free. Returns how many it published.
    fn produce(s: &Shared, p: &mut Publisher, frames: u64, attempts: u32, protect: bool) -> u64 {
        let t = s.table.table();
        let mut published = 0;
        for _ in 0..attempts {
            if published == frames {
                break;
            }
            let Some(taken) = p.take_slot(&t, protect) else {
                for r in 0..t.max_readers() {
                    p.free_if_dead(&t, r, || s.alive[r].load(Ordering::SeqCst));
                }
                loom::thread::yield_now();
                continue;
            };
            // SAFETY: loom tracks the access.
            s.pixels[taken.slot].with_mut(|v| unsafe { *v = p.count() });
            p.publish(&t, taken);
            published += 1;
        }
        published
    }

    /// Reads up to `frames` frames in at most `attempts` tries, checking each one's bytes, and
    /// releases them (at once, or all at the end in reverse order). Returns the publications.
    fn consume(
        s: &Shared,
        r: usize,
        lossless: bool,
        frames: usize,
        attempts: u32,
        hold: bool,
    ) -> Vec<u64> {
        let t = s.table.table();
        let mut c = Cursor::attach(&t, r, lossless, Start::Oldest, r as u32);
        let mut seen = Vec::new();
        let mut held = Vec::new();
        for _ in 0..attempts {
            if seen.len() == frames {
                break;
            }
            match c.take(&t, false) {
                Take::Frame { slot, publication, .. } => {
                    // SAFETY: loom tracks the access.
                    let v = s.pixels[slot].with(|v| unsafe { *v });
                    assert_eq!(v, publication, "slot {slot} rewritten under a reader");
                    seen.push(publication);
                    if hold {
                        held.push((slot, publication));
                    } else {
                        Cursor::release(&t, r, slot);
                    }
                }
                _ => loom::thread::yield_now(),
            }
        }
        for (slot, publication) in held.into_iter().rev() {
            // SAFETY: loom tracks the access.
            let v = s.pixels[slot].with(|v| unsafe { *v });
            assert_eq!(v, publication, "held slot {slot} rewritten");
            Cursor::release(&t, r, slot);
        }
        Cursor::detach(&t, r);
        seen
    }

    #[test]
    fn lossy_readers_never_see_a_held_slot_rewritten() {
        loom::model(|| {
            let s = shared(2, 2);
            let a = {
                let s = s.clone();
                loom::thread::spawn(move || consume(&s, 0, false, 2, 3, true))
            };
            let b = {
                let s = s.clone();
                loom::thread::spawn(move || consume(&s, 1, false, 1, 2, false))
            };
            produce(&s, &mut Publisher::new(), 3, 4, false);
            for seen in [a.join().unwrap(), b.join().unwrap()] {
                assert!(seen.windows(2).all(|w| w[0] < w[1]), "out of order: {seen:?}");
            }
        });
    }

    #[test]
    fn a_lossless_reader_never_skips_a_frame() {
        loom::model(|| {
            let s = shared(2, 2);
            let lossless = {
                let s = s.clone();
                loom::thread::spawn(move || consume(&s, 0, true, 2, 3, false))
            };
            let lossy = {
                let s = s.clone();
                loom::thread::spawn(move || consume(&s, 1, false, 1, 2, true))
            };
            produce(&s, &mut Publisher::new(), 3, 4, true);
            let seen = lossless.join().unwrap();
            lossy.join().unwrap();
            assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "a gap: {seen:?}");
        });
    }

    #[test]
    fn a_reader_dying_mid_claim_leaves_nothing_pinned() {
        loom::model(|| {
            let s = shared(2, 2);
            let dying = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let t = s.table.table();
                    let mut c = Cursor::attach(&t, 0, true, Start::Oldest, 1);
                    let _ = c.take(&t, false); // may hold a slot; never gives it back
                    s.alive[0].store(false, Ordering::SeqCst);
                })
            };
            let mut p = Publisher::new();
            produce(&s, &mut p, 2, 2, true);
            dying.join().unwrap();
            // Once the dead reader is freed, every slot is the producer's again.
            let t = s.table.table();
            p.free_if_dead(&t, 0, || false);
            assert_eq!(produce(&s, &mut p, 2, 2, true), 2);
        });
    }
}
