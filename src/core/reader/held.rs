//! A frame a reader holds: its metadata and its pixels, in place in shared memory.
//!
//! # Held frames
//!
//! A [`Frame`] holds its bytes: while it lives, the producer cannot overwrite them. Frames may
//! be held several at a time and released (dropped) in any order, from any thread. Each frame
//! keeps the mapping (and the reader's place) alive, so a frame outliving its reader stays
//! valid. Holding frames pins slots: hold only what you use.

use std::ptr::NonNull;
use std::sync::Arc;

use crate::format::FrameShape;
use crate::segment::Segment;

/// Where a frame's pixels are.
#[derive(Debug)]
pub(crate) enum Pixels {
    /// In place, in the segment (kept valid while the frame is held).
    Shared(NonNull<u8>, usize),
    /// Copied out (a raw payload split at the ring's end).
    Owned(Vec<u8>),
}

/// A frame: its metadata and its pixels, in place in shared memory.
///
/// Holding a `Frame` holds its bytes: the producer cannot overwrite them until it is dropped.
/// Hold as few as you need: a producer with a full ring drops (or waits for) new frames.
#[derive(Debug)]
pub struct Frame {
    /// What keeps the frame's bytes valid, and the token that releases them (`None`: nothing to
    /// release, the pixels were copied out).
    pub(crate) holder: Arc<dyn Holder>,
    pub(crate) token: Option<u64>,
    pub(crate) pixels: Pixels,
    pub(crate) shape: FrameShape,
    pub(crate) seq: u64,
    pub(crate) capture_ns: u64,
    pub(crate) publish_ns: u64,
    pub(crate) raw: bool,
    pub(crate) lost_before: u64,
}

/// What a frame holds on to: the attachment that keeps its mapping alive and gives its bytes
/// back when the frame is released (a ring's consumer, a place in a table), whatever the
/// transport.
pub(crate) trait Holder: std::fmt::Debug + Send + Sync {
    /// The segment the frame lies in.
    fn seg(&self) -> &Segment;
    /// Gives the held bytes named by `token` back to the producer.
    fn release(&self, token: u64);
}

// SAFETY: the pixel pointer refers to the mapping owned by the holder (kept alive by the Arc);
// the bytes are immutable while the frame is held; releasing is an atomic operation (slots) or
// goes through the ring attachment's mutex (rings): `Holder` is Send + Sync.
unsafe impl Send for Frame {}
// SAFETY: `&Frame` only gives shared reads of immutable bytes.
unsafe impl Sync for Frame {}

impl Frame {
    /// The pixel bytes: `stride * height`, rows top to bottom.
    ///
    /// # Shared memory
    /// The slice is a view of memory another process maps. A conforming producer never writes
    /// these bytes while the frame is held, but a buggy or hostile process with write access
    /// to the segment can change them while you read (wrong pixel values, never an
    /// out-of-bounds access) or truncate the segment, which makes the next access fault with
    /// SIGBUS. Channels are created for their owner only (mode 0600) unless asked otherwise;
    /// give no other user write access to a channel you depend on.
    pub fn pixels(&self) -> &[u8] {
        match &self.pixels {
            // SAFETY: holding the frame keeps these published bytes from being overwritten by a
            // conforming producer, and the holder keeps the mapping alive; bounds were validated
            // against the message length when the frame was read.
            Pixels::Shared(p, n) => unsafe { std::slice::from_raw_parts(p.as_ptr(), *n) },
            Pixels::Owned(v) => v,
        }
    }

    /// Width, height, stride and format.
    pub fn shape(&self) -> FrameShape {
        self.shape
    }
    /// Sequence number (for raw frames: the reader's own count).
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Capture time, CLOCK_MONOTONIC ns (0 for raw frames: unknown).
    pub fn capture_ns(&self) -> u64 {
        self.capture_ns
    }
    /// Publish time, CLOCK_MONOTONIC ns (0 for raw frames: unknown).
    pub fn publish_ns(&self) -> u64 {
        self.publish_ns
    }
    /// Frames this reader lost just before this one: overwritten before it could read them
    /// (the frames [`Reader::dropped`](crate::Reader::dropped) counted on this read; 0 after [`Reader::latest`](crate::Reader::latest), which
    /// skips on purpose, and for raw frames). Unlike a gap in [`seq`](Frame::seq), this also
    /// counts frames lost before a reader's first frame, and never frames the producer itself
    /// dropped.
    pub fn lost_before(&self) -> u64 {
        self.lost_before
    }
    /// Whether the frame came without a header.
    pub fn is_raw(&self) -> bool {
        self.raw
    }
    /// Whether the pixels are viewed in place (not copied).
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.pixels, Pixels::Shared(..))
    }
    /// Where the pixels lie in the channel's segment: their byte offset from the start of the
    /// shared-memory object (`None` when they were copied out). Every reader of a frame sees
    /// the same offset: the frame exists once, however many readers view it.
    pub fn segment_offset(&self) -> Option<usize> {
        let Pixels::Shared(p, _) = &self.pixels else { return None };
        Some(p.as_ptr() as usize - self.seg().ring().base_ptr() as usize)
    }

    fn seg(&self) -> &Segment {
        self.holder.seg()
    }

    /// Row `y` of the first plane (all of a packed frame), without its padding. Panics if
    /// `y >= height`.
    pub fn row(&self, y: u32) -> &[u8] {
        let s = self.shape;
        assert!(y < s.height, "row {y} of a frame {} rows high", s.height);
        let start = y as usize * s.stride as usize;
        &self.pixels()[start..start + s.row_bytes() as usize]
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        if !self.seg().owned_here() {
            return; // a fork child's copy: the parent still holds the frame (see `fork`)
        }
        if let Some(token) = self.token {
            self.holder.release(token);
        }
    }
}
