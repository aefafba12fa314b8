//! The slots transport of a writer: frames in the slots of a framed channel, readers in its
//! table (the protocol is in the `table` module, model-checked by `make loom`). The producer's
//! keeper owns its liveness words, which readers sleep on.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{ReadersNow, Target, Transport};
use crate::channels::live_readers;
use crate::control::PRODUCER_SLEEPING;
use crate::error::Result;
use crate::format::FrameShape;
use crate::frame::{FrameHeader, MessageKind, FRAME_HEADER_LEN};
use crate::ring;
use crate::segment::Segment;
use crate::sys::liveness::{self, Keeper, Life};
use crate::sys::{self, WaitWord};
use crate::table::{self, Geometry, Publisher, TableMemory, Taken};
use crate::timing::SWEEP_PERIOD;
use crate::wait::{self, Backoff};

/// A producer's table and its place as the publisher.
#[derive(Debug)]
pub(super) struct SlotWriter {
    /// Owns the producer's liveness words (first: dropped before the table's memory).
    keeper: Option<Keeper>,
    table: TableMemory,
    publisher: Publisher,
    /// When dead readers were last looked for (CLOCK_MONOTONIC ns).
    last_sweep_ns: u64,
}

impl SlotWriter {
    /// Takes the producer role on a fresh `table` of `seg` (ours alone until published): the
    /// slots' length prefixes, the keeper of the producer's liveness words.
    pub(super) fn new(seg: &Segment, table: TableMemory, shape: FrameShape) -> SlotWriter {
        write_slot_prefixes(seg, table.geometry(), shape);
        let view = table.view();
        let words = (0..view.max_readers()).map(|r| view.producer_watch(r)).collect();
        // SAFETY: the words and nodes are in our mapping, which the writer's segment keeps
        // until this SlotWriter (and the keeper, its first field) is dropped: the Writer drops
        // its transport before its segment. We are the segment's only producer.
        let keeper = unsafe { Keeper::start(words, table::PRODUCER_WORD_FROM_NODE) };
        SlotWriter { keeper, table, publisher: Publisher::new(), last_sweep_ns: 0 }
    }

    /// Frees the entries of readers whose lock is free (dead, however they died), at most
    /// once per [`SWEEP_PERIOD`]. Returns whether it freed one.
    fn sweep_if_due(&mut self, seg: &Segment) -> bool {
        let now = sys::monotonic_ns();
        if now.saturating_sub(self.last_sweep_ns) < SWEEP_PERIOD.as_nanos() as u64 {
            return false;
        }
        self.last_sweep_ns = now;
        self.sweep(seg, true)
    }

    /// Frees the table entries of dead readers: those whose liveness word the kernel marked (a
    /// load each), and with `probe` those nobody watches whose lock byte is free (a system
    /// call each). Returns whether it freed one.
    fn sweep(&self, seg: &Segment, probe: bool) -> bool {
        let view = self.table.view();
        let mut freed = false;
        for r in 0..view.max_readers() {
            freed |= self.publisher.free_if_dead(&view, r, || {
                match liveness::life(view.reader_live(r)) {
                    Life::Dead => false,
                    Life::Alive => true,
                    Life::Unwatched => !probe || seg.entry_alive(r),
                }
            });
        }
        freed
    }
}

impl Transport for SlotWriter {
    fn slots(&self) -> Option<u32> {
        Some(self.table.geometry().slots)
    }

    fn reader_list(&self, seg: &Segment) -> Vec<crate::ReaderInfo> {
        live_readers(seg, &self.table)
    }

    fn reader_attached(&self, seg: &Segment) -> bool {
        self.readers(seg).attached > 0
    }

    fn readers(&self, seg: &Segment) -> ReadersNow {
        let live = live_readers(seg, &self.table);
        let lag = live.iter().filter(|r| r.lossless).map(|r| r.lag).max();
        let view = self.table.view();
        ReadersNow {
            attached: live.len() as u32,
            lossless_lag: lag,
            held_slots: view.held_slots(),
            slots: view.slots() as u32,
        }
    }

    fn take(
        &mut self,
        seg: &Segment,
        shape: FrameShape,
        protect_lossless: bool,
    ) -> Result<Option<Target>> {
        let mut taken = self.publisher.take_slot(&self.table.view(), protect_lossless);
        // Readers hold or need every slot: is one of them dead?
        if taken.is_none() && self.free_dead_readers(seg) {
            taken = self.publisher.take_slot(&self.table.view(), protect_lossless);
        }
        let Some(Taken { slot }) = taken else { return Ok(None) };
        let payload = slot_payload(seg, self.table.geometry(), slot);
        let header = FrameHeader {
            kind: MessageKind::Frame,
            shape: Some(shape),
            seq: 0,
            capture_ns: 0,
            publish_ns: 0,
        };
        // SAFETY: the slot is ours (WRITING) until publish or abandon; its payload is
        // `slot_len - 4 >= FRAME_HEADER_LEN + pixel bytes` bytes inside the data area.
        header.encode(unsafe { std::slice::from_raw_parts_mut(payload, FRAME_HEADER_LEN) });
        // SAFETY: as above: the pixels follow the header inside the slot.
        let pixels = unsafe { payload.add(FRAME_HEADER_LEN) };
        Ok(Some(Target { pixels, slot }))
    }

    fn staging(&mut self, _target: Target, _n: usize) -> Option<&mut [u8]> {
        None
    }

    fn lendable(&self, target: Target) -> Option<usize> {
        Some(target.slot)
    }

    fn publish(&mut self, seg: &Segment, target: Target, seq: u64, capture_ns: u64, now: u64) {
        // SAFETY: the FRAME_HEADER_LEN bytes before the pixels of our unpublished slot are its
        // frame header (see `take`), which no reader reads before the publication below.
        let header = unsafe {
            std::slice::from_raw_parts_mut(target.pixels.sub(FRAME_HEADER_LEN), FRAME_HEADER_LEN)
        };
        FrameHeader::stamp(header, seq, capture_ns, now);
        let view = self.table.view();
        let (_, sleepers) = self.publisher.publish(&view, Taken { slot: target.slot });
        if sleepers != 0 {
            sys::wake_sleepers(view.published_word(), sleepers);
        }
        // Free the places of readers that died, so that they neither pin slots nor count as
        // readers (rate-limited: a clock comparison per frame).
        if now.saturating_sub(self.last_sweep_ns) >= SWEEP_PERIOD.as_nanos() as u64 {
            self.sweep_if_due(seg);
        }
    }

    fn abandon(&mut self, target: Target) {
        self.publisher.abandon(&self.table.view(), Taken { slot: target.slot });
    }

    fn has_room(&mut self, _seg: &Segment) -> Result<bool> {
        Ok(self.publisher.has_room(&self.table.view(), true))
    }

    fn room_word(&self) -> &AtomicU32 {
        self.table.view().room_word()
    }

    /// Sleeps until a reader gives a slot back (`room` leaves `seen`), a reader in the table
    /// dies, a cancel word changes or `max` passes: one kernel wait on the room word and every
    /// live reader's liveness word, so a reader killed with SIGKILL wakes us at once and the
    /// next attempt frees its place. Readers nobody watches (an old kernel) are probed every
    /// [`SWEEP_PERIOD`] instead.
    fn sleep_for_room(
        &mut self,
        seg: &Segment,
        seen: u32,
        wake: &[WaitWord<'_>],
        max: Duration,
        _backoff: &mut Backoff,
    ) {
        let reserved = seg.ring().reserved();
        let view = self.table.view();
        reserved.fetch_or(PRODUCER_SLEEPING, Ordering::Relaxed);
        // SYNC POINT: sleep (SeqCst fence; pairs with the fence in `wait::wake_if_sleeping`,
        // which readers call after bumping `room`).
        std::sync::atomic::fence(Ordering::SeqCst);
        let room = view.room_word();
        if room.load(Ordering::Relaxed) == seen {
            let active = (0..view.max_readers()).filter(|&r| view.entry_active(r));
            let peers = active.map(|r| view.reader_live(r));
            wait::sleep_watching(room, seen, 0, peers, wake, max, SWEEP_PERIOD);
        }
        reserved.fetch_and(!PRODUCER_SLEEPING, Ordering::Relaxed);
    }

    fn sleeps_on_words(&self) -> bool {
        sys::kernel_watches_liveness()
    }

    /// Frees the entries of dead readers when the producer needs room: those the kernel
    /// marked at once (a load each), those nobody watches by their lock byte when a probe is
    /// due. Returns whether it freed one.
    fn free_dead_readers(&mut self, seg: &Segment) -> bool {
        self.sweep(seg, false) || self.sweep_if_due(seg)
    }

    /// Readers check CLOSED before they sleep; wake the ones asleep, changing the word they
    /// sleep on so that one between its check and its sleep does not sleep. Then the stream
    /// is over: our liveness words are unwatched from here on (a reader that sees one sees
    /// CLOSED first).
    fn end_stream(&mut self, _seg: &Segment) {
        let published = self.table.view().published_word();
        published.fetch_add(1, Ordering::SeqCst);
        sys::wake_sleepers(published, u32::MAX);
        self.keeper = None;
    }
}

/// The first payload byte of slot `k` (the frame header; the length prefix is before it).
fn slot_payload(seg: &Segment, g: Geometry, k: usize) -> *mut u8 {
    let data = seg.ring().data_ptr();
    // SAFETY: `k < slots` and `slots * slot_len <= capacity` (the geometry was made so), so
    // the slot and its 4-byte prefix lie inside the data area.
    unsafe { data.add(k * g.slot_len as usize + ring::PREFIX_LEN as usize) }
}

/// Writes every slot's length prefix once (they never change): the payload is a frame header
/// and the pixels.
fn write_slot_prefixes(seg: &Segment, g: Geometry, shape: FrameShape) {
    let len = (FRAME_HEADER_LEN as u32 + shape.pixel_bytes()).to_le_bytes();
    for k in 0..g.slots as usize {
        let payload = slot_payload(seg, g, k);
        // SAFETY: the 4 bytes before a slot's payload are its prefix, inside the data area; the
        // segment is not visible to readers before its first publication reaches a slot, and
        // no slot is published yet.
        unsafe {
            std::ptr::copy_nonoverlapping(len.as_ptr(), payload.sub(ring::PREFIX_LEN as usize), 4)
        };
    }
}
