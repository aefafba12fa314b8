//! The raw transport of a writer: cpp_py_shmbuf's ring with its one consumer. Frames are
//! messages of the ring, pixels only (no header), drawn in place where they fit before the
//! ring's end and into a staging buffer (copied at publish) where they would wrap.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{ReadersNow, Target, Transport};
use crate::control::{CONSUMER_SLEEPING, PRODUCER_SLEEPING};
use crate::error::{Error, Result};
use crate::format::FrameShape;
use crate::ring::{Producer, PushError, RingPushError};
use crate::segment::Segment;
use crate::sys::WaitWord;
use crate::timing::CONSUMER_CHECK_PERIOD;
use crate::wait::{self, Backoff};

/// The producer of a raw ring.
#[derive(Debug)]
pub(super) struct RawWriter {
    producer: Producer,
    /// A frame that would split at the ring's end is drawn here first.
    staging: Vec<u8>,
    /// Bytes one message takes in the ring.
    msg_len: u32,
}

impl RawWriter {
    /// The producer role on `seg`'s fresh ring, frames of `msg_len` bytes per message.
    pub(super) fn new(seg: &Segment, msg_len: u32) -> Result<RawWriter> {
        // SAFETY: the caller created the segment and holds its producer lock, so we are its
        // only producer.
        let producer =
            unsafe { Producer::new(*seg.ring()) }.map_err(|e| Error::protocol(seg.name(), e))?;
        Ok(RawWriter { producer, staging: Vec::new(), msg_len })
    }

    fn free_bytes(&self) -> Option<u32> {
        let tail = self.producer.memory().tail_word().load(Ordering::Acquire);
        let used = self.producer.write_index().wrapping_sub(tail);
        self.producer.memory().capacity().checked_sub(used)
    }
}

impl Transport for RawWriter {
    fn slots(&self) -> Option<u32> {
        None
    }

    fn reader_list(&self, _seg: &Segment) -> Vec<crate::ReaderInfo> {
        Vec::new()
    }

    fn reader_attached(&self, seg: &Segment) -> bool {
        seg.consumer_attached()
    }

    fn readers(&self, seg: &Segment) -> ReadersNow {
        let attached = u32::from(seg.consumer_attached());
        // The one consumer of a raw ring holds up the producer like a lossless reader.
        let backlog = self.producer.memory().capacity() - self.free_bytes().unwrap_or(0);
        let lossless_lag = (attached > 0).then(|| backlog.div_ceil(self.msg_len) as u64);
        ReadersNow { attached, lossless_lag, held_slots: 0, slots: 0 }
    }

    fn take(&mut self, seg: &Segment, shape: FrameShape, _protect: bool) -> Result<Option<Target>> {
        let name = seg.name();
        let len = shape.pixel_bytes();
        if !self.producer.has_free(self.msg_len).map_err(|e| Error::protocol(name, e))? {
            return Ok(None);
        }
        match self.producer.append_in_place(len) {
            Ok(s) => Ok(Some(Target { pixels: s.as_mut_ptr(), slot: 0 })),
            Err(RingPushError::Push(PushError::Full)) => {
                // Would split at the ring's end: draw into staging, copy at publish.
                self.staging.resize(len as usize, 0);
                Ok(Some(Target { pixels: std::ptr::null_mut(), slot: 0 }))
            }
            Err(e) => Err(Error::protocol(name, e)),
        }
    }

    fn staging(&mut self, target: Target, n: usize) -> Option<&mut [u8]> {
        target.pixels.is_null().then(|| &mut self.staging[..n])
    }

    /// A raw frame may wrap around the ring's end: never lent (draw elsewhere and write it).
    fn lendable(&self, _target: Target) -> Option<usize> {
        None
    }

    fn publish(&mut self, _seg: &Segment, target: Target, _seq: u64, _capture: u64, _now: u64) {
        if target.pixels.is_null() {
            // `take` proved the room; the split copy cannot fail.
            self.producer.append(&self.staging).expect("room was checked");
        }
        self.producer.commit();
        let mem = *self.producer.memory();
        wait::wake_if_sleeping(mem.head_word(), mem.reserved(), CONSUMER_SLEEPING);
    }

    fn abandon(&mut self, _target: Target) {
        self.producer.abandon();
    }

    fn has_room(&mut self, seg: &Segment) -> Result<bool> {
        self.producer.has_free(self.msg_len).map_err(|e| Error::protocol(seg.name(), e))
    }

    fn room_word(&self) -> &AtomicU32 {
        self.producer.memory().tail_word()
    }

    fn sleep_for_room(
        &mut self,
        seg: &Segment,
        seen: u32,
        _wake: &[WaitWord<'_>],
        max: Duration,
        backoff: &mut Backoff,
    ) {
        let mem = *seg.ring();
        if seg.consumer_attached() {
            // Our consumer wakes us when it releases. Look again after a while anyway, to
            // notice a consumer that went away (and stop waiting for its wake-up).
            let max = max.min(CONSUMER_CHECK_PERIOD);
            wait::sleep_announced(mem.tail_word(), seen, mem.reserved(), PRODUCER_SLEEPING, 0, max);
        } else {
            // No consumer, or one that knows nothing of wake-ups (cpp_py_shmbuf's): poll with
            // a bounded back-off so that room is noticed within milliseconds.
            wait::sleep_unannounced(mem.tail_word(), seen, backoff, max);
        }
    }

    fn sleeps_on_words(&self) -> bool {
        false
    }

    fn free_dead_readers(&mut self, _seg: &Segment) -> bool {
        false
    }

    fn end_stream(&mut self, seg: &Segment) {
        let mem = *seg.ring();
        wait::wake_if_sleeping(mem.head_word(), mem.reserved(), CONSUMER_SLEEPING);
    }
}
