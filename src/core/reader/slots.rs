//! The slots transport: a place in a framed channel's reader table. Every reader views each
//! frame in the one slot the producer wrote it to; a held frame is a claim on its slot, which
//! the producer does not reuse until every reader has released it (the protocol is in the
//! `table` module, model-checked by `make loom`).

use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::anticipate::{Anticipation, Plan, PREEMPTED_NS};
use super::held::{Frame, Holder, Pixels};
use super::{Transport, Wake};
use crate::channels::live_readers;
use crate::control::{self, PRODUCER_SLEEPING};
use crate::error::{Error, Result, Violation};
use crate::frame::{FrameHeader, MessageKind, FRAME_HEADER_LEN};
use crate::ring::PREFIX_LEN;
use crate::segment::Segment;
use crate::sys::liveness::{self, Keeper, Life};
use crate::sys::{self, WaitWord};
use crate::table::{Cursor, Start, TableMemory, Take};
use crate::timing::LIVENESS_PERIOD;
use crate::wait::{self, Backoff};

/// A reader's place in a framed channel's table.
#[derive(Debug)]
pub(super) struct SlotReader {
    att: Arc<SlotAttachment>,
    cursor: Cursor,
    /// When the next frame is due, for waking just before it (see `anticipate`).
    rhythm: Anticipation,
    /// The `published` word when we last found nothing: what a sleep waits to change.
    seen: u32,
    /// Set once the stream broke the protocol: nothing more is read from it.
    broken: Option<Violation>,
}

impl SlotReader {
    /// Takes a free place in `seg`'s table.
    pub(super) fn open(
        seg: Segment,
        lossless: bool,
        start: Start,
        wake: Wake,
    ) -> Result<SlotReader> {
        let (att, cursor) = SlotAttachment::open(seg, lossless, start)?;
        let rhythm = Anticipation::new(wake == Wake::Anticipate);
        Ok(SlotReader { att: Arc::new(att), cursor, rhythm, seen: 0, broken: None })
    }

    /// The next frame from the slots (with `newest`, the newest), if one is published.
    fn take(&mut self, newest: bool) -> Result<Option<Frame>> {
        let SlotReader { att, cursor, rhythm, seen, broken } = self;
        let name = att.seg.name();
        if let Some(detail) = broken {
            return Err(Error::protocol(name, detail.clone()));
        }
        let view = att.table.view();
        // CLOSED before the frames: every frame published before closing is then visible.
        let closed = control::is_closed(att.seg.ring().reserved());
        let mut spins = 0u32;
        loop {
            let took = cursor.take(&view, newest);
            if cursor.take_bumped_room() {
                // A claim that lost its race, or frames `latest()` skipped: room a sleeping
                // producer may be waiting for.
                att.wake_producer();
            }
            match took {
                Take::Frame { slot, skipped, .. } => {
                    let (header, pixels, n) = match att.frame_at(slot) {
                        Ok(f) => f,
                        Err(detail) => {
                            att.release(slot);
                            *broken = Some(detail.clone());
                            return Err(Error::protocol(name, detail));
                        }
                    };
                    rhythm.observe(header.publish_ns);
                    return Ok(Some(Frame {
                        holder: att.clone(),
                        token: Some(slot as u64),
                        pixels: Pixels::Shared(pixels, n),
                        shape: header.shape.expect("frames carry a shape"),
                        seq: header.seq,
                        capture_ns: header.capture_ns,
                        publish_ns: header.publish_ns,
                        raw: false,
                        lost_before: skipped,
                    }));
                }
                Take::Nothing { seen: now } => {
                    *seen = now;
                    if closed {
                        return Err(Error::EndOfStream { name: name.to_owned() });
                    }
                    // Holding every slot, we would wait for ever: no frame can be published into
                    // a slot we hold. (Only looked at when there is nothing to read: off the hot
                    // path.)
                    let held = view.reader_info(att.entry).held;
                    if held as usize >= view.slots() {
                        return Err(Error::HoldsEverySlot { name: name.to_owned(), slots: held });
                    }
                    return Ok(None);
                }
                // The producer is deciding about a frame we want, within a few loads unless it was
                // preempted: give it the CPU.
                Take::Pending if spins < 1000 => {
                    spins += 1;
                    std::thread::yield_now();
                }
                // Still undecided: it was preempted for long, or died deciding. Nothing to read for
                // now: the wait loop sleeps until the next publish (which follows the verdict),
                // and notices a death, the deadline or a cancel.
                Take::Pending => {
                    *seen = view.published_word().load(Ordering::Acquire);
                    return Ok(None);
                }
            }
        }
    }
}

impl SlotReader {
    /// Watches the `published` word, unannounced (the producer makes no system call), until
    /// it leaves `seen` (returns `true`) or the clock reaches `until` (CLOCK_MONOTONIC ns).
    /// Bounded by the anticipation's budget: a few percent of a frame interval at most. Yields
    /// the CPU between looks, so a producer sharing our core is not held up.
    /// Tells the anticipation how the watch went (see `Anticipation::watched`).
    fn watch(&mut self, until: u64) -> bool {
        let published = self.att.table.view().published_word();
        let switches = sys::involuntary_switches();
        let mut before = sys::monotonic_ns();
        let mut longest_gap = 0;
        let came = loop {
            // The gap first: a look delayed by a lost CPU counts even when it finds the frame.
            let now = sys::monotonic_ns();
            longest_gap = longest_gap.max(now.saturating_sub(before));
            before = now;
            // SYNC POINT: publish (Acquire; the frame's slot is then taken by the next attempt,
            // which synchronizes with the publisher as without anticipation).
            if published.load(Ordering::Acquire) != self.seen {
                break true;
            }
            if now >= until {
                break false;
            }
            for _ in 0..32 {
                std::hint::spin_loop();
            }
            std::thread::yield_now();
        };
        // Whether the kernel switched us out during the watch (its own yields included, when
        // another task was ready to run): asked again only after a long gap.
        let gave_way = (longest_gap >= PREEMPTED_NS)
            .then(|| switches.zip(sys::involuntary_switches()).map(|(a, b)| b > a))
            .flatten();
        self.rhythm.watched(longest_gap, gave_way);
        came
    }
}

impl Transport for SlotReader {
    fn seg(&self) -> &Segment {
        &self.att.seg
    }

    fn is_ours(&self) -> bool {
        true
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn take(&mut self, newest: bool) -> Result<Option<Frame>> {
        SlotReader::take(self, newest)
    }

    /// The newest frame is taken directly (the cursor skips to it).
    fn newest(&mut self, newest: Option<Frame>) -> Result<Option<Frame>> {
        match SlotReader::take(self, true) {
            Ok(Some(f)) => Ok(Some(f)),
            Ok(None) => Ok(newest),
            Err(e) if newest.is_none() => Err(e),
            Err(_) => Ok(newest), // delivered with the next call; hand out what we have
        }
    }

    fn frames_held(&self) -> usize {
        self.att.table.view().reader_info(self.att.entry).held as usize
    }

    fn dropped(&self) -> u64 {
        self.cursor.dropped()
    }

    fn lag(&self) -> Option<u64> {
        Some(self.cursor.lag(&self.att.table.view()))
    }

    fn producer_life(&self) -> Life {
        liveness::life(self.att.table.view().producer_live(self.att.entry))
    }

    fn unread(&self) -> bool {
        self.cursor.lag(&self.att.table.view()) > 0
    }

    /// Every frame published before the death was taken by the attempt that found nothing;
    /// a frame counted but never finished (a slot the producer died writing) never comes.
    fn unread_after_death(&self) -> bool {
        false
    }

    fn mark_ended(&self) {}

    fn sleep(
        &mut self,
        announced: bool,
        left: Duration,
        wake: &[WaitWord<'_>],
        _backoff: &mut Backoff,
    ) {
        if !announced {
            // A producer we cannot tell about: look again within a liveness period.
            std::thread::sleep(left.min(LIVENESS_PERIOD));
            return;
        }
        let mut left = left;
        let now = sys::monotonic_ns();
        match self.rhythm.plan(now) {
            Plan::Block => {}
            // Sleep as usual, but only until the frame is nearly due.
            Plan::SleepUntil(at) => left = left.min(Duration::from_nanos(at - now)),
            Plan::Watch(until) => {
                let limit = until.min(now.saturating_add(left.as_nanos() as u64));
                if self.watch(limit) {
                    return;
                }
                // Late past the allowance: sleep as without anticipation.
                self.rhythm.given_up();
            }
        }
        let att = &self.att;
        let view = att.table.view();
        let reserved = att.seg.ring().reserved();
        self.cursor.announce_sleep(&view);
        if !control::is_closed(reserved)
            && view.published_word().load(Ordering::Relaxed) == self.seen
        {
            wait::sleep_watching(
                view.published_word(),
                self.seen,
                att.entry as u32,
                [view.producer_live(att.entry)],
                wake,
                left,
                LIVENESS_PERIOD,
            );
        }
        self.cursor.end_sleep(&view);
    }

    fn sleeps_on_words(&self) -> bool {
        sys::kernel_watches_liveness()
    }

    fn set_wake(&mut self, wake: Wake) {
        self.rhythm.set_enabled(wake == Wake::Anticipate);
    }

    fn watch_begins(&self) -> Option<u64> {
        self.rhythm.watch_begins()
    }
}

impl Drop for SlotReader {
    fn drop(&mut self) {
        // The reader is gone: its place stops protecting and counting frames; frames still held
        // keep the place (and their slots) until they are released.
        if !self.att.seg.owned_here() {
            return; // a fork child's copy: the parent still reads (see `fork`)
        }
        Cursor::stop(&self.att.table.view(), self.att.entry);
        // A waiting producer may be waiting for us (lossless): it is not any more.
        self.att.wake_producer();
    }
}

impl Holder for SlotAttachment {
    fn seg(&self) -> &Segment {
        &self.seg
    }

    fn release(&self, token: u64) {
        SlotAttachment::release(self, token as usize);
    }
}

/// lock the segment's descriptor holds). The last frame or reader to let go frees the place.
#[derive(Debug)]
struct SlotAttachment {
    /// Owns the entry's liveness word (first: dropped before the segment is unmapped).
    keeper: Option<Keeper>,
    seg: Segment,
    table: TableMemory,
    entry: usize,
}

impl SlotAttachment {
    /// Takes a free place in the table.
    fn open(seg: Segment, lossless: bool, start: Start) -> Result<(SlotAttachment, Cursor)> {
        let table = seg.table()?;
        let max = table.geometry().max_readers;
        for r in 0..max as usize {
            if seg.lock_entry(r)? {
                let view = table.view();
                // Our liveness word before the entry is ours (the claim below): a producer
                // that sees the new claim sees a live word, never the dead owner's.
                // SAFETY: the word and node are in our mapping, which `seg` keeps until the
                // keeper is dropped (it is dropped first); the entry's lock makes them ours.
                let keeper = unsafe {
                    Keeper::start(vec![view.reader_watch(r)], crate::table::READER_WORD_FROM_NODE)
                };
                if keeper.is_none() {
                    view.reader_live(r).word.store(0, Ordering::SeqCst);
                }
                let mut cursor = Cursor::attach(&view, r, lossless, start, std::process::id());
                let att = SlotAttachment { keeper, seg, table, entry: r };
                if cursor.take_bumped_room() {
                    // We took over a dead reader's place and its slots are free: wake a
                    // producer waiting for them.
                    att.wake_producer();
                }
                return Ok((att, cursor));
            }
        }
        // The table knows the readers (the producer, which also has the segment open, is not one).
        let users = live_readers(&seg, &table)
            .into_iter()
            .map(|r| (r.pid, crate::sys::process_name(r.pid)))
            .collect();
        Err(Error::ChannelBusy { name: seg.name().to_owned(), users, max_readers: Some(max) })
    }

    /// Gives slot `k` back and wakes a producer waiting for room.
    fn release(&self, k: usize) {
        Cursor::release(&self.table.view(), self.entry, k);
        self.wake_producer();
    }

    /// Wakes a producer that sleeps waiting for room, after `room` was bumped (`SYNC POINT:
    /// room`: the bump, then the fence inside, then the flag; the producer sets the flag, its
    /// fence, then compares `room`, so a wake that comes before its sleep is not needed).
    fn wake_producer(&self) {
        let mem = self.seg.ring();
        wait::wake_if_sleeping(self.table.view().room_word(), mem.reserved(), PRODUCER_SLEEPING);
    }

    /// Reads slot `k`'s header (which the caller holds) and returns the frame's header and
    /// pixels.
    fn frame_at(
        &self,
        k: usize,
    ) -> std::result::Result<(FrameHeader, NonNull<u8>, usize), Violation> {
        slot_frame(&self.seg, self.table.geometry(), k)
    }
}

/// Reads slot `k`'s header (`k < slots`) and returns the frame's header and pixels.
pub(crate) fn slot_frame(
    seg: &Segment,
    g: crate::table::Geometry,
    k: usize,
) -> std::result::Result<(FrameHeader, NonNull<u8>, usize), Violation> {
    // SAFETY: `k < slots` and `slots * slot_len <= capacity` (validated at attach), so the
    // slot lies inside the data area.
    let slot = unsafe { seg.ring().data_ptr().add(k * g.slot_len as usize) };
    let mut prefix = [0u8; PREFIX_LEN as usize];
    // SAFETY: the slot's first 4 bytes are in bounds (see above); we copy them out once.
    unsafe { std::ptr::copy_nonoverlapping(slot, prefix.as_mut_ptr(), prefix.len()) };
    // A payload longer than the slot is cut to the slot: the header check below then
    // refuses pixels that would not fit.
    let len = u32::from_le_bytes(prefix).min(g.slot_len - PREFIX_LEN);
    let mut hb = [0u8; FRAME_HEADER_LEN];
    let n = (len as usize).min(FRAME_HEADER_LEN);
    // SAFETY: `n <= slot_len - 4` bytes after the prefix are inside the slot.
    unsafe { std::ptr::copy_nonoverlapping(slot.add(PREFIX_LEN as usize), hb.as_mut_ptr(), n) };
    let header = FrameHeader::decode(&hb[..n], len)?;
    if header.kind != MessageKind::Frame {
        return Err(Violation::SlotKind { slot: k, kind: header.kind as u16 });
    }
    let shape = header.shape.expect("frames carry a shape");
    // SAFETY: `decode` checked that the header and `pixel_bytes` fit in `len`, which is
    // inside the slot.
    let pixels =
        unsafe { NonNull::new_unchecked(slot.add(PREFIX_LEN as usize + FRAME_HEADER_LEN)) };
    Ok((header, pixels, shape.pixel_bytes() as usize))
}

impl Drop for SlotAttachment {
    fn drop(&mut self) {
        // Every frame is released and the reader is gone: free the place, then stop watching
        // its word. The segment's descriptor, and with it the entry's lock, closes after this.
        if !self.seg.owned_here() {
            return; // a fork child's copy: the place is the parent's (see `fork`)
        }
        Cursor::detach(&self.table.view(), self.entry);
        self.wake_producer();
        self.keeper = None;
    }
}
