//! The SPSC byte ring of cpp_py_shmbuf, on raw memory.
//!
//! This module is the protocol's core and holds most of the crate's `unsafe` code. It knows
//! nothing about files, processes or frames: it runs on any suitably aligned memory (a heap
//! buffer in unit tests, a shared-memory mapping in production).
//!
//! # Layout (fixed by cpp_py_shmbuf, byte for byte)
//!
//! | offset | size | field | written by |
//! |---|---|---|---|
//! | 0 | 4 | `head`: u32 LE, total bytes ever written (monotonic, wraps at 2^32) | producer |
//! | 4 | 4 | `tail`: u32 LE, total bytes ever consumed (monotonic, wraps at 2^32) | consumer |
//! | 8 | 4 | `capacity`: u32 LE, size of the data area, a power of two | producer, once |
//! | 12 | 4 | `reserved`: u32, 0 in their producer; ours: see [`crate::control`] | both (RMW) |
//! | 16 | capacity | data area, circular | producer |
//!
//! A message is `[u32 LE payload length][payload]` at data offset `head & (capacity - 1)`; both
//! the prefix and the payload may be split across the end of the data area. Readable bytes are
//! `head - tail`, writable bytes `capacity - (head - tail)`, in wrapping u32 arithmetic, so the
//! indices may wrap past 2^32 any number of times (streams far beyond 4 GiB).
//!
//! # Memory ordering
//!
//! | atomic | written by | read by | store | load | publishes |
//! |---|---|---|---|---|---|
//! | `head` | producer ([`Producer::commit`]) | consumer ([`Consumer::peek`]) | Release | Acquire | the message bytes before `head` (`SYNC POINT: head`) |
//! | `tail` | consumer ([`Consumer::release_to`]) | producer (free-space check) | Release | Acquire | that the consumer is done reading the bytes before `tail`, so they may be overwritten (`SYNC POINT: tail`) |
//! | `capacity` | producer, before the segment is visible | both, once at attach | Relaxed | Relaxed | nothing (it is published by the segment's creation) |
//! | `reserved` | both, by atomic RMW ([`crate::control`]) | both | see there | | flags, never data |
//!
//! Each side keeps a *cached* copy of the other side's index and reloads the shared one only when
//! the cached value says the ring is full (producer) or empty (consumer). In the steady state the
//! producer and consumer therefore touch each other's cache line only once per "lap" instead of
//! once per message, which is what makes small messages fast.
//!
//! # Trust
//!
//! The other side may be a buggy or hostile process. Every index and length read from the shared
//! header is copied into a local, validated against `capacity`, and only then used; nothing is
//! read from shared memory twice and trusted the second time. A bad value yields a
//! [`RingError`] naming the field, never an out-of-bounds access or an endless loop.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Size of the ring header in bytes; the data area starts here.
pub const HEADER_LEN: usize = 16;
/// Size of a message's length prefix.
pub const PREFIX_LEN: u32 = 4;
/// Largest capacity we accept. With capacities up to 2^31, `head - tail` (wrapping) is always
/// unambiguous; cpp_py_shmbuf cannot exceed this either (its sizes are u32 powers of two).
pub const MAX_CAPACITY: u32 = 1 << 31;
/// Smallest capacity we accept: a length prefix plus a few bytes.
pub const MIN_CAPACITY: u32 = 8;

#[cfg(not(target_endian = "little"))]
compile_error!("the cpp_py_shmbuf layout is little-endian; big-endian targets are not supported");

/// The 16-byte shared header, exactly as laid out in memory.
#[repr(C)]
pub(crate) struct RingHeader {
    pub(crate) head: AtomicU32,
    pub(crate) tail: AtomicU32,
    pub(crate) capacity: AtomicU32,
    pub(crate) reserved: AtomicU32,
}

/// Offset of the `reserved` word in the ring header (our flags, see [`crate::control`]).
pub const RESERVED_OFFSET: usize = std::mem::offset_of!(RingHeader, reserved);

const _: () = {
    assert!(std::mem::size_of::<RingHeader>() == HEADER_LEN);
    assert!(std::mem::align_of::<RingHeader>() == 4);
    assert!(std::mem::offset_of!(RingHeader, head) == 0);
    assert!(std::mem::offset_of!(RingHeader, tail) == 4);
    assert!(std::mem::offset_of!(RingHeader, capacity) == 8);
    assert!(std::mem::offset_of!(RingHeader, reserved) == 12);
};

/// Why a ring could not be attached or read: the shared bytes break the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingError {
    /// The memory is too small or misaligned for a ring header.
    TooSmall {
        /// Bytes available.
        len: usize,
    },
    /// The capacity field is not a power of two in `MIN_CAPACITY..=MAX_CAPACITY`.
    BadCapacity {
        /// The value found.
        capacity: u32,
    },
    /// The capacity field claims more data bytes than the memory holds.
    CapacityExceedsSegment {
        /// The value found.
        capacity: u32,
        /// Bytes available after the header.
        available: usize,
    },
    /// `tail` (written by the consumer) is not within one capacity behind `head`.
    BadTail {
        /// The tail found.
        tail: u32,
        /// The producer's head.
        head: u32,
        /// The capacity.
        capacity: u32,
    },
    /// `head` (written by the producer) is more than one capacity ahead of `tail`.
    BadHead {
        /// The head found.
        head: u32,
        /// The consumer's tail.
        tail: u32,
        /// The capacity.
        capacity: u32,
    },
    /// `head` moved backwards, behind what the consumer already read.
    HeadBackwards {
        /// The head found.
        head: u32,
        /// The consumer's read index.
        read: u32,
    },
    /// Fewer bytes published than a length prefix.
    ShortPrefix {
        /// Bytes published.
        readable: u32,
        /// Ring index of the message.
        index: u32,
    },
    /// A length prefix longer than what is published after it.
    LengthTooLong {
        /// The length found.
        len: u32,
        /// Ring index of the message.
        index: u32,
        /// Bytes published after the prefix.
        available: u32,
    },
    /// A pad to the end of the data area that cannot hold a length prefix (a producer bug).
    PadTooShort {
        /// Bytes left to the end.
        rest: u32,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::TooSmall { len } => {
                write!(f, "segment is {len} bytes, smaller than the {HEADER_LEN}-byte ring header")
            }
            RingError::BadCapacity { capacity } => write!(
                f,
                "capacity field is {capacity}, not a power of two between {MIN_CAPACITY} and {MAX_CAPACITY}"
            ),
            RingError::CapacityExceedsSegment { capacity, available } => write!(
                f,
                "capacity field is {capacity} but the segment has only {available} bytes after its header"
            ),
            RingError::BadTail { tail, head, capacity } => write!(
                f,
                "tail {tail} is not within one capacity ({capacity}) behind head {head}: the tail word was overwritten (the consumer writes it, or another program scribbled on the segment)"
            ),
            RingError::BadHead { head, tail, capacity } => write!(
                f,
                "head {head} is more than one capacity ({capacity}) ahead of tail {tail}: one of the two words was overwritten (the producer writes head, the consumer tail; or another program scribbled on the segment)"
            ),
            RingError::HeadBackwards { head, read } => {
                write!(f, "head {head} moved backwards behind the read index {read}: the head word was overwritten (the producer writes it, or another program scribbled on the segment)")
            }
            RingError::ShortPrefix { readable, index } => {
                write!(f, "only {readable} bytes published at index {index}, less than a length prefix")
            }
            RingError::LengthTooLong { len, index, available } => {
                write!(f, "length prefix {len} at index {index} exceeds the {available} bytes published after it")
            }
            RingError::PadTooShort { rest } => {
                write!(f, "cannot pad {rest} bytes: a message needs at least {PREFIX_LEN}")
            }
        }
    }
}

impl std::error::Error for RingError {}

/// Why a message could not be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Not enough free space now; the consumer has to release some first.
    Full,
    /// The message can never fit: prefix + payload exceed the capacity.
    TooLarge {
        /// Bytes the message needs, prefix included.
        needed: u64,
        /// The ring's capacity.
        capacity: u32,
    },
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full => f.write_str("the ring is full"),
            PushError::TooLarge { needed, capacity } => write!(
                f,
                "a message of {needed} bytes (prefix included) can never fit a ring of {capacity} bytes"
            ),
        }
    }
}

impl std::error::Error for PushError {}

/// A validated view of a ring in memory: header pointer plus capacity.
///
/// Copying a `RingMemory` is cheap and does not copy the ring; the roles ([`Producer`],
/// [`Consumer`]) are what must stay unique.
#[derive(Clone, Copy, Debug)]
pub struct RingMemory {
    header: NonNull<RingHeader>,
    data: NonNull<u8>,
    capacity: u32,
}

// SAFETY: RingMemory is a pointer pair to memory that the constructor's caller promised stays
// valid; all shared access goes through atomics or through the SPSC discipline of the roles.
unsafe impl Send for RingMemory {}
// SAFETY: as above; `&RingMemory` only exposes atomics and the capacity.
unsafe impl Sync for RingMemory {}

impl RingMemory {
    /// Writes a fresh header (`head = tail = start_index`, the given capacity, `reserved`) into
    /// `len` bytes at `base`, as a creating producer does, and returns the view.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `len` bytes, 4-byte aligned, for as long as
    /// the returned value (or anything made from it) is used, and nobody else may use the memory
    /// during this call.
    pub unsafe fn init(
        base: NonNull<u8>,
        len: usize,
        capacity: u32,
        start_index: u32,
        reserved: u32,
    ) -> Result<RingMemory, RingError> {
        check_capacity(capacity, len)?;
        if base.as_ptr().align_offset(4) != 0 {
            return Err(RingError::TooSmall { len: 0 });
        }
        let header = base.cast::<RingHeader>();
        // SAFETY: the caller guarantees `len >= HEADER_LEN` valid, aligned bytes (checked just
        // above), used by nobody else during init.
        let h = unsafe { header.as_ref() };
        // On Linux the segment becomes visible to other processes only after this function
        // returns (it is linked under its name afterwards), which orders these writes. Where it
        // is visible while made (Windows sections), `capacity` goes last, with Release: a
        // reader that sees it (Acquire) sees the rest of the header (and what was written
        // before this call: the table, the Windows block).
        h.head.store(start_index, Ordering::Relaxed);
        h.tail.store(start_index, Ordering::Relaxed);
        h.reserved.store(reserved, Ordering::Relaxed);
        h.capacity.store(capacity, Ordering::Release);
        // SAFETY: as for `attach`, with the header just written.
        unsafe { Self::attach(base, len) }
    }

    /// Validates the header found in `len` bytes at `base` and returns a view of the ring.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `len` bytes for as long as the returned
    /// value (or anything made from it) is used. Other processes may write the memory
    /// concurrently; that cannot cause out-of-bounds accesses, only [`RingError`]s.
    pub unsafe fn attach(base: NonNull<u8>, len: usize) -> Result<RingMemory, RingError> {
        if len < HEADER_LEN || base.as_ptr().align_offset(4) != 0 {
            return Err(RingError::TooSmall { len });
        }
        let header = base.cast::<RingHeader>();
        // SAFETY: `len >= HEADER_LEN`, aligned: the header is in bounds and fields are atomics.
        let capacity = unsafe { header.as_ref() }.capacity.load(Ordering::Relaxed);
        check_capacity(capacity, len)?;
        // SAFETY: HEADER_LEN < len, so the data pointer is in bounds (and non-null).
        let data = unsafe { NonNull::new_unchecked(base.as_ptr().add(HEADER_LEN)) };
        Ok(RingMemory { header, data, capacity })
    }

    /// The data area's size in bytes.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    #[inline]
    pub(crate) fn header(&self) -> &RingHeader {
        // SAFETY: validated in `attach`; the constructor's caller keeps the memory alive.
        unsafe { self.header.as_ref() }
    }

    /// The first byte of the ring header (of the segment).
    pub(crate) fn base_ptr(&self) -> *mut u8 {
        self.header.as_ptr().cast()
    }

    /// The first byte of the data area.
    pub(crate) fn data_ptr(&self) -> *mut u8 {
        self.data.as_ptr()
    }

    /// The `reserved` word, the one place for state beyond the ring (see [`crate::control`]).
    pub fn reserved(&self) -> &AtomicU32 {
        &self.header().reserved
    }

    /// The shared `head` index (the futex word a sleeping consumer waits on).
    pub fn head_word(&self) -> &AtomicU32 {
        &self.header().head
    }

    /// The shared `tail` index (the futex word a sleeping producer waits on).
    pub fn tail_word(&self) -> &AtomicU32 {
        &self.header().tail
    }

    #[inline]
    fn mask(&self) -> u32 {
        self.capacity - 1
    }

    /// Pointer to the data byte at ring index `index`.
    #[inline]
    fn at(&self, index: u32) -> *mut u8 {
        // SAFETY: the offset is masked into 0..capacity, inside the data area.
        unsafe { self.data.as_ptr().add((index & self.mask()) as usize) }
    }

    /// Copies `src` into the data area starting at ring index `index`, splitting at the end.
    ///
    /// # Safety
    /// The caller must own the bytes `index..index + src.len()` (producer side, free space) and
    /// `src.len() <= capacity`.
    #[inline]
    unsafe fn copy_in(&self, index: u32, src: &[u8]) {
        let off = (index & self.mask()) as usize;
        if src.len() <= self.capacity as usize - off {
            // SAFETY: contiguous: `off + len <= capacity`; the caller owns the range.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.at(index), src.len()) };
            return;
        }
        let first = self.capacity as usize - off;
        // SAFETY: `first` bytes fit before the end of the data area; the rest (< capacity) fits
        // from its start; the caller owns both ranges, and `src` cannot overlap them (it is a
        // Rust slice the caller holds while we hold exclusive access to the range).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.at(index), first);
            std::ptr::copy_nonoverlapping(
                src.as_ptr().add(first),
                self.data.as_ptr(),
                src.len() - first,
            );
        }
    }

    /// Copies bytes out of the data area starting at ring index `index`, joining a split.
    ///
    /// # Safety
    /// The caller must own the bytes `index..index + dst.len()` (consumer side, published and not
    /// yet released) and `dst.len() <= capacity`.
    #[inline]
    unsafe fn copy_out(&self, index: u32, dst: &mut [u8]) {
        let off = (index & self.mask()) as usize;
        if dst.len() <= self.capacity as usize - off {
            // SAFETY: contiguous: `off + len <= capacity`; the caller owns the range.
            unsafe { std::ptr::copy_nonoverlapping(self.at(index), dst.as_mut_ptr(), dst.len()) };
            return;
        }
        let first = self.capacity as usize - off;
        // SAFETY: mirror of `copy_in`.
        unsafe {
            std::ptr::copy_nonoverlapping(self.at(index), dst.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data.as_ptr(),
                dst.as_mut_ptr().add(first),
                dst.len() - first,
            );
        }
    }

    /// Raw pointer to the contiguous bytes of a message payload that does not wrap.
    #[inline]
    pub(crate) fn contiguous_ptr(&self, msg: &Message) -> Option<NonNull<u8>> {
        if msg.is_contiguous(self.capacity) {
            NonNull::new(self.at(msg.payload_start()))
        } else {
            None
        }
    }
}

fn check_capacity(capacity: u32, len: usize) -> Result<(), RingError> {
    if len < HEADER_LEN {
        return Err(RingError::TooSmall { len });
    }
    if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(RingError::BadCapacity { capacity });
    }
    let available = len - HEADER_LEN;
    if capacity as usize > available {
        return Err(RingError::CapacityExceedsSegment { capacity, available });
    }
    Ok(())
}

/// Rounds a requested byte count UP to a valid capacity (power of two, at least
/// [`MIN_CAPACITY`]); `None` if it would exceed [`MAX_CAPACITY`].
pub fn capacity_for(bytes: u64) -> Option<u32> {
    let c = bytes.max(MIN_CAPACITY as u64).checked_next_power_of_two()?;
    (c <= MAX_CAPACITY as u64).then_some(c as u32)
}

/// cpp_py_shmbuf's sizing: the largest power of two that fits `segment_size - 16`.
pub fn capacity_rounded_down(segment_size: usize) -> Option<u32> {
    let avail = segment_size.checked_sub(HEADER_LEN)?.min(MAX_CAPACITY as usize);
    if avail < MIN_CAPACITY as usize {
        return None;
    }
    Some(1u32 << (usize::BITS - 1 - avail.leading_zeros()))
}

/// A message found by [`Consumer::peek`]: where it is, not its bytes. Only `peek` makes them,
/// and the consumer checks every message it is handed against what it has read and not yet
/// released, so a stale or foreign `Message` is a panic, never an out-of-bounds access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    start: u32,
    len: u32,
}

impl Message {
    /// Ring index of the length prefix.
    #[inline]
    pub fn start(&self) -> u32 {
        self.start
    }
    /// Payload length in bytes.
    #[inline]
    pub fn len(&self) -> u32 {
        self.len
    }
    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Ring index of the first payload byte.
    #[inline]
    pub fn payload_start(&self) -> u32 {
        self.start.wrapping_add(PREFIX_LEN)
    }
    /// Ring index just past the message.
    #[inline]
    pub fn end(&self) -> u32 {
        self.payload_start().wrapping_add(self.len)
    }
    /// Whether the payload lies in one piece in a ring of `capacity` bytes.
    #[inline]
    pub fn is_contiguous(&self, capacity: u32) -> bool {
        let off = self.payload_start() & (capacity - 1);
        self.len <= capacity - off
    }
}

/// The producer role: the only writer of `head` and of free data bytes.
///
/// Messages are appended at a local write index and become visible only at [`commit`]
/// (so a batch costs one release store).
///
/// [`commit`]: Producer::commit
#[derive(Debug)]
pub struct Producer {
    mem: RingMemory,
    /// Local write index: everything before it is written, everything before `head` published.
    write: u32,
    /// Last published head (what the consumer can see).
    head: u32,
    /// Cached copy of the shared tail; refreshed only when the ring looks full.
    cached_tail: u32,
}

impl Producer {
    /// Takes the producer role on `mem`, continuing from the published `head`.
    ///
    /// # Safety
    /// No other `Producer` (in any process) may exist for this ring while this one is used.
    pub unsafe fn new(mem: RingMemory) -> Result<Producer, RingError> {
        let h = mem.header();
        // We are the only writer of head.
        let head = h.head.load(Ordering::Relaxed);
        // SYNC POINT: tail (Acquire; pairs with the consumer's Release store in `release_to`).
        let tail = h.tail.load(Ordering::Acquire);
        let p = Producer { mem, write: head, head, cached_tail: tail };
        p.check_used(tail)?;
        Ok(p)
    }

    /// The ring this producer writes.
    pub fn memory(&self) -> &RingMemory {
        &self.mem
    }

    #[inline]
    fn check_used(&self, tail: u32) -> Result<u32, RingError> {
        let used = self.write.wrapping_sub(tail);
        if used > self.mem.capacity {
            return Err(RingError::BadTail { tail, head: self.write, capacity: self.mem.capacity });
        }
        Ok(used)
    }

    /// Free bytes, trusting the cached tail (may under-estimate, never over-estimate).
    #[inline]
    fn free_cached(&self) -> u32 {
        self.mem.capacity - self.write.wrapping_sub(self.cached_tail)
    }

    /// Free bytes after reloading the shared tail.
    #[inline]
    pub fn refresh_free(&mut self) -> Result<u32, RingError> {
        // SYNC POINT: tail (Acquire; pairs with the consumer's Release store in `release_to`):
        // the consumer has finished reading every byte before this tail.
        let tail = self.mem.header().tail.load(Ordering::Acquire);
        let used = self.check_used(tail)?;
        self.cached_tail = tail;
        Ok(self.mem.capacity - used)
    }

    /// Whether `needed` bytes are free, reloading the shared tail only if the cached one says
    /// they are not.
    pub fn has_free(&mut self, needed: u32) -> Result<bool, RingError> {
        Ok(self.free_cached() >= needed || self.refresh_free()? >= needed)
    }

    /// Ensures `needed` free bytes, reloading the tail only if the cache says there are not.
    #[inline]
    fn ensure_free(&mut self, needed: u64) -> Result<(), RingPushError> {
        if needed > self.mem.capacity as u64 {
            return Err(RingPushError::Push(PushError::TooLarge {
                needed,
                capacity: self.mem.capacity,
            }));
        }
        if (self.free_cached() as u64) < needed && (self.refresh_free()? as u64) < needed {
            return Err(RingPushError::Push(PushError::Full));
        }
        Ok(())
    }

    /// Appends one message (prefix and payload may split at the ring's end, as in
    /// cpp_py_shmbuf). Not visible until [`commit`](Producer::commit).
    #[inline]
    pub fn append(&mut self, payload: &[u8]) -> Result<(), RingPushError> {
        let needed = PREFIX_LEN as u64 + payload.len() as u64;
        self.ensure_free(needed)?;
        // Fits: needed <= capacity <= 2^31.
        let len = payload.len() as u32;
        // SAFETY: ensure_free proved that `needed` bytes from `write` are free, so the producer
        // owns them; both pieces are at most `capacity` long.
        unsafe {
            self.mem.copy_in(self.write, &len.to_le_bytes());
            self.mem.copy_in(self.write.wrapping_add(PREFIX_LEN), payload);
        }
        self.write = self.write.wrapping_add(needed as u32);
        Ok(())
    }

    /// Appends a message whose payload (`len` bytes) lies contiguously in the data area and
    /// returns it for the caller to fill in place. Fails with `Full` if the payload would split
    /// at the ring's end (see [`bytes_to_end`](Producer::bytes_to_end) and
    /// [`append_pad_to_end`](Producer::append_pad_to_end)). Not visible until `commit`.
    pub fn append_in_place(&mut self, len: u32) -> Result<&mut [u8], RingPushError> {
        let needed = PREFIX_LEN as u64 + len as u64;
        self.ensure_free(needed)?;
        let payload_index = self.write.wrapping_add(PREFIX_LEN);
        let off = payload_index & self.mem.mask();
        if len > self.mem.capacity - off {
            return Err(RingPushError::Push(PushError::Full));
        }
        // SAFETY: the producer owns the `needed` free bytes from `write` (ensure_free).
        unsafe { self.mem.copy_in(self.write, &len.to_le_bytes()) };
        self.write = self.write.wrapping_add(needed as u32);
        // SAFETY: `off + len <= capacity` (checked), the bytes are free and owned by the
        // producer until commit publishes them; the slice borrows `self` mutably, so no other
        // append can alias it.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.mem.at(payload_index), len as usize) })
    }

    /// Local write index: where the next message goes (before `commit`, ahead of `head`).
    #[inline]
    pub fn write_index(&self) -> u32 {
        self.write
    }

    /// Bytes from the write index to the end of the data area.
    pub fn bytes_to_end(&self) -> u32 {
        self.mem.capacity - (self.write & self.mem.mask())
    }

    /// Appends a message that takes exactly the rest of the data area (so that the next message
    /// starts at offset 0), letting `fill` write its payload. Needs `bytes_to_end() >= 4`.
    pub fn append_pad_to_end(&mut self, fill: impl FnOnce(&mut [u8])) -> Result<(), RingPushError> {
        let rest = self.bytes_to_end();
        if rest < PREFIX_LEN {
            return Err(RingPushError::Ring(RingError::PadTooShort { rest }));
        }
        let slot = self.append_in_place(rest - PREFIX_LEN)?;
        fill(slot);
        Ok(())
    }

    /// Publishes everything appended so far. Returns the new head.
    #[inline]
    pub fn commit(&mut self) -> u32 {
        if self.write != self.head {
            // SYNC POINT: head (Release; pairs with the consumer's Acquire load in `peek`):
            // every message byte before `write` is visible before the new head is.
            self.mem.header().head.store(self.write, Ordering::Release);
            self.head = self.write;
        }
        self.head
    }

    /// Drops everything appended since the last commit.
    pub fn abandon(&mut self) {
        self.write = self.head;
    }

    /// Appends one message and publishes it.
    pub fn push(&mut self, payload: &[u8]) -> Result<(), RingPushError> {
        self.append(payload)?;
        self.commit();
        Ok(())
    }

    /// Published bytes the consumer has not released yet (reloads the shared tail).
    pub fn backlog(&mut self) -> Result<u32, RingError> {
        Ok(self.mem.capacity - self.refresh_free()?)
    }

    /// The last published head.
    pub fn head(&self) -> u32 {
        self.head
    }
}

/// Error of a producer append: the ring is full / too small, or the consumer corrupted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingPushError {
    /// See [`PushError`].
    Push(PushError),
    /// See [`RingError`].
    Ring(RingError),
}

impl From<RingError> for RingPushError {
    fn from(e: RingError) -> Self {
        RingPushError::Ring(e)
    }
}

impl fmt::Display for RingPushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingPushError::Push(e) => e.fmt(f),
            RingPushError::Ring(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RingPushError {}

/// The consumer role: the only writer of `tail`.
///
/// Reading is split in two steps so that messages can be held ("leased") while later ones are
/// read: [`peek`](Consumer::peek) finds the message at the local read index and
/// [`advance`](Consumer::advance) moves past it; [`release_to`](Consumer::release_to) publishes
/// a new `tail`, handing bytes back to the producer.
#[derive(Debug)]
pub struct Consumer {
    mem: RingMemory,
    /// Local read index: messages before it have been handed out.
    read: u32,
    /// Last published tail.
    tail: u32,
    /// Cached copy of the shared head; refreshed only when the ring looks empty.
    cached_head: u32,
}

impl Consumer {
    /// Takes the consumer role on `mem`, starting at the published `tail`.
    ///
    /// # Safety
    /// No other `Consumer` (in any process) may exist for this ring while this one is used.
    pub unsafe fn new(mem: RingMemory) -> Consumer {
        let tail = mem.header().tail.load(Ordering::Relaxed); // we are the only writer of tail
        Consumer { mem, read: tail, tail, cached_head: tail }
    }

    /// The ring this consumer reads.
    pub fn memory(&self) -> &RingMemory {
        &self.mem
    }

    /// Local read index (start of the next message).
    pub fn read_index(&self) -> u32 {
        self.read
    }

    /// Last published tail.
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// Readable bytes from the read index, after reloading the shared head if the cache says
    /// the ring is empty. Validates the head against the capacity.
    #[inline]
    fn readable(&mut self) -> Result<u32, RingError> {
        if self.cached_head != self.read {
            return Ok(self.cached_head.wrapping_sub(self.read));
        }
        // SYNC POINT: head (Acquire; pairs with the producer's Release store in `commit`):
        // every message byte before this head is visible to us.
        let head = self.mem.header().head.load(Ordering::Acquire);
        let in_ring = head.wrapping_sub(self.tail);
        if in_ring > self.mem.capacity {
            return Err(RingError::BadHead { head, tail: self.tail, capacity: self.mem.capacity });
        }
        let readable = head.wrapping_sub(self.read);
        if readable > in_ring {
            return Err(RingError::HeadBackwards { head, read: self.read });
        }
        self.cached_head = head;
        Ok(readable)
    }

    /// The next message at the read index, or `None` if nothing is published.
    ///
    /// The length prefix is validated against what is published: a prefix claiming more bytes
    /// than the producer published is a protocol error (it can never complete), not "wait".
    #[inline]
    pub fn peek(&mut self) -> Result<Option<Message>, RingError> {
        let readable = self.readable()?;
        if readable == 0 {
            return Ok(None);
        }
        if readable < PREFIX_LEN {
            return Err(RingError::ShortPrefix { readable, index: self.read });
        }
        let mut prefix = [0u8; 4];
        // SAFETY: the 4 bytes at `read` are published (readable >= 4) and not released.
        unsafe { self.mem.copy_out(self.read, &mut prefix) };
        // Read once into a local: from here on `len` is ours, whatever the producer does.
        let len = u32::from_le_bytes(prefix);
        if len > readable - PREFIX_LEN {
            return Err(RingError::LengthTooLong {
                len,
                index: self.read,
                available: readable - PREFIX_LEN,
            });
        }
        Ok(Some(Message { start: self.read, len }))
    }

    /// Moves the read index past `msg`, the message `peek` just returned.
    ///
    /// Panics if `msg` is not the message at the read index.
    #[inline]
    pub fn advance(&mut self, msg: &Message) {
        assert_eq!(msg.start, self.read, "advance() takes the message peek() returned");
        self.read = msg.end();
    }

    /// Panics unless `msg` lies in what this consumer may read: published, not released.
    /// This is what makes the accessors below safe with any `Message` value.
    #[inline]
    fn check_owned(&self, msg: &Message) {
        let cached = self.cached_head.wrapping_sub(self.tail);
        let start = msg.start.wrapping_sub(self.tail);
        let owned =
            start <= cached && msg.len <= cached - start && PREFIX_LEN <= cached - start - msg.len;
        assert!(owned, "message {msg:?} is not in this consumer's unreleased window");
    }

    /// Copies a message's payload out (joining a split payload).
    pub fn copy_payload(&self, msg: &Message, dst: &mut Vec<u8>) {
        self.check_owned(msg);
        dst.clear();
        dst.resize(msg.len as usize, 0);
        // SAFETY: `check_owned` proved the bytes are published and not released; they stay
        // ours until `release_to` passes them, which needs `&mut self`.
        unsafe { self.mem.copy_out(msg.payload_start(), dst) };
    }

    /// Copies the first `out.len()` payload bytes (at most the payload's length) out.
    pub fn copy_payload_prefix(&self, msg: &Message, out: &mut [u8]) {
        self.check_owned(msg);
        assert!(out.len() <= msg.len as usize, "prefix longer than the payload");
        // SAFETY: as in `copy_payload`, for a prefix of the payload.
        unsafe { self.mem.copy_out(msg.payload_start(), out) };
    }

    /// The payload as one slice if it does not wrap, else `None`.
    #[inline]
    pub fn payload(&self, msg: &Message) -> Option<&[u8]> {
        self.check_owned(msg);
        let ptr = self.mem.contiguous_ptr(msg)?;
        // SAFETY: contiguous, published, unreleased (`check_owned`); the borrow of `self`
        // prevents `release_to` while the slice lives.
        Some(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), msg.len as usize) })
    }

    /// Raw pointer to a contiguous payload, for callers that manage the lease themselves.
    pub(crate) fn payload_ptr(&self, msg: &Message) -> Option<NonNull<u8>> {
        self.check_owned(msg);
        self.mem.contiguous_ptr(msg)
    }

    /// Publishes `index` as the new tail: every byte before it may now be overwritten.
    ///
    /// Panics unless `index` lies between the current tail and the read index.
    #[inline]
    pub fn release_to(&mut self, index: u32) {
        assert!(
            index.wrapping_sub(self.tail) <= self.read.wrapping_sub(self.tail),
            "release_to({index}) outside tail {}..read {}",
            self.tail,
            self.read
        );
        if index != self.tail {
            // SYNC POINT: tail (Release; pairs with the producer's Acquire load in
            // `refresh_free`): our reads of the bytes before `index` happen before the producer
            // may overwrite them.
            self.mem.header().tail.store(index, Ordering::Release);
            self.tail = index;
        }
    }

    /// Reads the next message into `dst` and releases it at once (the cpp_py_shmbuf way).
    pub fn pop(&mut self, dst: &mut Vec<u8>) -> Result<bool, RingError> {
        let Some(msg) = self.peek()? else { return Ok(false) };
        self.copy_payload(&msg, dst);
        self.advance(&msg);
        self.release_to(self.read);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heap buffer with the alignment of the header.
    pub(crate) struct Buf(Vec<u64>, usize);
    impl Buf {
        pub(crate) fn new(len: usize) -> Buf {
            Buf(vec![0u64; len.div_ceil(8)], len)
        }
        pub(crate) fn ptr(&mut self) -> NonNull<u8> {
            NonNull::new(self.0.as_mut_ptr().cast::<u8>()).unwrap()
        }
    }

    fn ring(buf: &mut Buf, cap: u32, start: u32) -> (Producer, Consumer) {
        // SAFETY: the buffer outlives the roles in each test; one producer, one consumer.
        unsafe {
            let mem = RingMemory::init(buf.ptr(), buf.1, cap, start, 0).unwrap();
            (Producer::new(mem).unwrap(), Consumer::new(mem))
        }
    }

    #[test]
    fn capacity_validation() {
        let mut b = Buf::new(16 + 64);
        for bad in [0u32, 3, 48, 128, 1 << 31 | 1] {
            // SAFETY: buffer valid for its length.
            let r = unsafe { RingMemory::init(b.ptr(), b.1, bad, 0, 0) };
            assert!(r.is_err(), "capacity {bad} accepted");
        }
        assert!(matches!(
            // SAFETY: buffer valid for 8 bytes.
            unsafe { RingMemory::attach(b.ptr(), 8) },
            Err(RingError::TooSmall { .. })
        ));
    }

    #[test]
    fn capacity_rounding() {
        assert_eq!(capacity_for(0), Some(MIN_CAPACITY));
        assert_eq!(capacity_for(65), Some(128));
        assert_eq!(capacity_for(64), Some(64));
        assert_eq!(capacity_for(1 << 31), Some(1 << 31));
        assert_eq!(capacity_for((1 << 31) + 1), None);
        assert_eq!(capacity_rounded_down(116), Some(64));
        assert_eq!(capacity_rounded_down(16 + 10 * 6_220_800), Some(1 << 25));
        assert_eq!(capacity_rounded_down(20), None);
    }

    #[test]
    fn push_pop_split_prefix_and_payload() {
        let mut b = Buf::new(16 + 32);
        let (mut p, mut c) = ring(&mut b, 32, 0);
        let mut out = Vec::new();
        p.push(&[0x43; 26]).unwrap();
        assert!(c.pop(&mut out).unwrap());
        assert_eq!(out, [0x43; 26]);
        // write index 30: the prefix splits (2 + 2 bytes)
        p.push(&[0x44; 10]).unwrap();
        assert!(c.pop(&mut out).unwrap());
        assert_eq!(out, [0x44; 10]);
        assert!(!c.pop(&mut out).unwrap());
    }

    #[test]
    fn full_and_too_large() {
        let mut b = Buf::new(16 + 16);
        let (mut p, mut c) = ring(&mut b, 16, 0);
        assert_eq!(
            p.push(&[1; 13]),
            Err(RingPushError::Push(PushError::TooLarge { needed: 17, capacity: 16 }))
        );
        p.push(&[1; 12]).unwrap();
        assert_eq!(p.push(&[]), Err(RingPushError::Push(PushError::Full)));
        let mut out = Vec::new();
        assert!(c.pop(&mut out).unwrap());
        p.push(&[]).unwrap();
        assert!(c.pop(&mut out).unwrap());
        assert!(out.is_empty());
    }

    #[test]
    fn in_place_refuses_split_and_pads() {
        let mut b = Buf::new(16 + 64);
        let (mut p, mut c) = ring(&mut b, 64, 0);
        p.push(&[7; 36]).unwrap(); // 40 bytes used
        let mut out = Vec::new();
        assert!(c.pop(&mut out).unwrap());
        assert_eq!(p.append_in_place(30), Err(RingPushError::Push(PushError::Full)));
        assert_eq!(p.bytes_to_end(), 24);
        p.append_pad_to_end(|s| s.fill(0xEE)).unwrap();
        p.append_in_place(30).unwrap().fill(9);
        p.commit();
        assert!(c.pop(&mut out).unwrap());
        assert_eq!(out, [0xEE; 20]);
        let m = c.peek().unwrap().unwrap();
        assert_eq!(c.payload(&m).unwrap(), &[9u8; 30][..]);
    }

    #[test]
    fn u32_wrap_of_indices() {
        let mut b = Buf::new(16 + 64);
        let (mut p, mut c) = ring(&mut b, 64, u32::MAX - 20);
        let mut out = Vec::new();
        for i in 0..1000u32 {
            let msg: Vec<u8> = (0..(i % 50) as u8).collect();
            p.push(&msg).unwrap();
            assert!(c.pop(&mut out).unwrap());
            assert_eq!(out, msg);
        }
    }

    #[test]
    fn hostile_lengths_are_errors_not_hangs() {
        for bad in [0x7FFF_FFFFu32, 0xFFFF_FFFE, 0xFFFF_FFFF, 61] {
            let mut b = Buf::new(16 + 64);
            let (mut p, mut c) = ring(&mut b, 64, 0);
            // 64 bytes published.
            p.push(&[1; 60]).unwrap();
            // overwrite the prefix with a hostile length
            // SAFETY: test-only poke of the buffer while no role is using it.
            unsafe { (b.ptr().as_ptr().add(16) as *mut u32).write_unaligned(bad.to_le()) };
            assert!(
                matches!(c.peek(), Err(RingError::LengthTooLong { .. })),
                "length {bad:#x} not rejected"
            );
        }
    }

    #[test]
    fn stale_or_foreign_messages_panic_instead_of_reading_out_of_bounds() {
        let mut b = Buf::new(16 + 64);
        let (mut p, mut c) = ring(&mut b, 64, 0);
        p.push(&[1; 10]).unwrap();
        let m = c.peek().unwrap().unwrap();
        c.advance(&m);
        c.release_to(m.end());
        let stale = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.payload(&m).map(|s| s.len())
        }));
        assert!(stale.is_err(), "a released message was readable");
        let mut b2 = Buf::new(16 + 64);
        let (mut p2, mut c2) = ring(&mut b2, 64, 0);
        p2.push(&[2; 50]).unwrap();
        let big = c2.peek().unwrap().unwrap();
        // `big` belongs to another ring: ours has nothing published.
        let foreign = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.copy_payload(&big, &mut Vec::new())
        }));
        assert!(foreign.is_err(), "a foreign message was readable");
        assert!(
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.release_to(1000))).is_err()
        );
    }

    #[test]
    fn hostile_head_and_tail() {
        let mut b = Buf::new(16 + 64);
        let (mut p, mut c) = ring(&mut b, 64, 0);
        p.memory().head_word().store(1000, Ordering::Relaxed);
        assert!(matches!(c.peek(), Err(RingError::BadHead { head: 1000, .. })));
        p.memory().head_word().store(0, Ordering::Relaxed);
        p.memory().tail_word().store(500, Ordering::Relaxed);
        assert!(matches!(p.refresh_free(), Err(RingError::BadTail { tail: 500, .. })));
        p.memory().head_word().store(3, Ordering::Relaxed);
        p.memory().tail_word().store(0, Ordering::Relaxed);
        assert!(matches!(c.peek(), Err(RingError::ShortPrefix { readable: 3, .. })));
    }
}
