//! The consumer end: [`Reader`] attaches to a channel and hands out [`Frame`]s in place.
//!
//! # Many readers
//!
//! A framed channel serves several readers at once: each takes a place in the channel's reader
//! table and views every frame in place, in the slot the producer wrote it to once (see the
//! `table` module for the protocol). A raw channel (cpp_py_shmbuf's ring, or a framed channel
//! of an older producer) has one consumer.
//!
//! # Leases
//!
//! A [`Frame`] is a lease on its bytes: while it lives, the producer cannot overwrite them.
//! Frames may be held several at a time and dropped in any order, from any thread. Each frame
//! keeps the mapping (and the reader's place) alive, so a frame outliving its reader stays
//! valid. Holding frames pins slots: hold only what you use.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::control::{self, Origin, CONSUMER_SLEEPING, PRODUCER_SLEEPING};
use crate::error::{Error, Result, Role, Violation};
use crate::format::FrameShape;
use crate::frame::{has_magic, FrameHeader, MessageKind, FRAME_HEADER_LEN, FRAME_TAG_LEN};
use crate::ring::{Consumer, Message, PREFIX_LEN};
use crate::segment::Segment;
use crate::sys::liveness::{self, Keeper, Life};
use crate::sys::{self, WaitWord};
use crate::table::{Cursor, Start, TableMemory, Take};
use crate::wait::{self, Backoff, Cancel, Deadline, Waitable};

/// How often a waiting reader checks that our producer is still alive (the liveness promise is
/// "noticed within 100 ms").
use crate::timing::{
    FOLLOW_PERIOD, LIVENESS_PERIOD, OPEN_FIRST_PAUSE, OPEN_MAX_PAUSE, SETUP_GRACE,
};

/// How to attach.
#[derive(Clone, Debug, Default)]
pub struct ReaderOptions {
    /// How long to wait for the channel to appear (`ZERO`: fail at once if it does not exist).
    pub timeout: Duration,
    /// Shape of header-less (raw) frames, e.g. from cpp_py_shmbuf's producer. Framed streams
    /// describe themselves and ignore this.
    pub raw: Option<FrameShape>,
    /// Survive the producer: on end of stream or its death, wait for a new producer under the
    /// same name and continue with it (reads report a timeout meanwhile, see
    /// [`Reader::producer_state`]).
    pub follow: bool,
    /// Ends any of this reader's waits early (opening included) with [`Error::Interrupted`];
    /// see [`Cancel`].
    pub cancel: Option<Cancel>,
    /// Never lose a frame to a producer that waits for room (`Writer::frame`,
    /// `frame-producer --when-full wait`): it then waits for this reader. A live source that
    /// cannot wait (`Writer::try_frame`) still overwrites frames this reader has not read, and
    /// it counts them in [`Reader::dropped`]. Default: lossy, the producer never waits for
    /// this reader, which loses its oldest unread frames when it falls behind by more than the
    /// channel holds.
    pub lossless: bool,
    /// Where to start: the newest frame (default), or the oldest still in the channel.
    pub start: Start,
}

/// What the reader knows of its producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerState {
    /// Our producer, holding its lock.
    Live,
    /// A producer that does not announce liveness (cpp_py_shmbuf's): cannot tell.
    Unknown,
    /// The stream ended normally.
    Ended,
    /// The producer died without ending the stream.
    Gone,
}

/// One attachment to one segment: the mapping, the consumer role and its leases.
#[derive(Debug)]
struct Attachment {
    seg: Segment,
    origin: Origin,
    state: Mutex<ConsumerState>,
}

#[derive(Debug)]
struct ConsumerState {
    consumer: Consumer,
    /// Messages handed out and not yet given back to the producer, in ring order.
    leases: VecDeque<Lease>,
    /// Set once the stream broke the protocol: nothing more is read from it.
    broken: Option<Violation>,
    /// An end-of-stream message was read.
    ended: bool,
    /// Frames read so far (used as the sequence number of raw frames).
    frames: u64,
    /// Sequence number of the last framed frame, and the gaps seen (frames lost).
    last_seq: Option<u64>,
    dropped: u64,
}

#[derive(Debug)]
struct Lease {
    start: u32,
    end: u32,
    released: bool,
}

impl Attachment {
    fn open(seg: Segment, origin: Origin) -> Result<Attachment> {
        seg.lock_consumer()?;
        // SAFETY: we hold the consumer lock, so no other shmframes consumer exists for this ring
        // (foreign consumers that ignore the lock are outside what we can prevent).
        let consumer = unsafe { Consumer::new(*seg.ring()) };
        let state = ConsumerState {
            consumer,
            leases: VecDeque::new(),
            broken: None,
            ended: false,
            frames: 0,
            last_seq: None,
            dropped: 0,
        };
        Ok(Attachment { seg, origin, state: Mutex::new(state) })
    }

    fn lock(&self) -> MutexGuard<'_, ConsumerState> {
        // A panic while holding the lock cannot leave the ring state inconsistent (every update
        // is a single assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_ours(&self) -> bool {
        matches!(self.origin, Origin::Ours { .. })
    }

    /// Gives back the message starting at `start`; publishes the tail up to the oldest held.
    fn release(&self, start: u32) {
        let mut st = self.lock();
        if let Some(l) = st.leases.iter_mut().find(|l| l.start == start) {
            l.released = true;
        }
        self.publish_tail(&mut st);
    }

    fn publish_tail(&self, st: &mut ConsumerState) {
        let mut new_tail = None;
        while st.leases.front().is_some_and(|l| l.released) {
            new_tail = st.leases.pop_front().map(|l| l.end);
        }
        if let Some(t) = new_tail {
            st.consumer.release_to(t);
            if self.is_ours() {
                let mem = st.consumer.memory();
                wait::wake_if_sleeping(mem.tail_word(), mem.reserved(), PRODUCER_SLEEPING);
            }
        }
    }

    fn protocol(&self, detail: impl Into<Violation>) -> Error {
        Error::protocol(self.seg.name(), detail)
    }
}

/// A reader of a framed channel, as its place in the channel's reader table says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Its place in the table (0-based).
    pub place: usize,
    /// Its process id (as seen in its own PID namespace).
    pub pid: u32,
    /// Whether it is lossless.
    pub lossless: bool,
    /// Frames it read.
    pub frames_read: u64,
    /// Frames it lost.
    pub dropped: u64,
    /// Frames published that it has not read yet.
    pub lag: u64,
    /// Frames it holds now.
    pub held: u32,
}

/// The live readers of a framed channel's table (the dead are left out: their lock is free).
pub(crate) fn live_readers(seg: &Segment, table: &TableMemory) -> Vec<ReaderInfo> {
    let view = table.view();
    let count = view.count();
    (0..view.max_readers())
        .filter_map(|r| {
            let e = view.reader_info(r);
            (e.active && e.next != crate::table::NOT_READING && seg.entry_alive(r)).then_some(
                ReaderInfo {
                    place: r,
                    pid: e.pid,
                    lossless: e.lossless,
                    frames_read: e.read,
                    dropped: e.dropped,
                    lag: count.saturating_sub(e.next),
                    held: e.held,
                },
            )
        })
        .collect()
}

/// A channel found by [`channels`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Its name.
    pub name: String,
    /// Made by shmframes: framed (frames with headers) or raw; `false` for another producer's
    /// segment (cpp_py_shmbuf's), of which only the ring is known.
    pub ours: bool,
    /// Frames carry headers (shape, format, timestamps).
    pub framed: bool,
    /// What its producer is doing: live, ended (the stream was closed), gone (it died), or
    /// unknown (a producer that takes no lock).
    pub producer: ProducerState,
    /// The frames' shape, when a frame says it (framed channels with a frame published).
    pub shape: Option<FrameShape>,
    /// Frames published (framed channels with a reader table).
    pub frames_published: Option<u64>,
    /// Readers attached now (framed channels with a reader table).
    pub readers: Option<usize>,
    /// Data-area capacity in bytes.
    pub capacity: u32,
    /// The processes that have it open, `(pid, command name)`: its producer and readers (the
    /// kernel does not say which is which; a framed channel's readers are in `readers_of`).
    pub open_by: Vec<(u32, String)>,
}

/// Every channel in the segment directory (`/dev/shm` on Linux), shmframes' and other
/// producers' (a valid ring header is enough), sorted by name, without attaching to any: headers,
/// tables and lock bytes are only read. Files that are not channels are left out.
///
/// # Errors
/// When the directory cannot be listed.
pub fn channels() -> Result<Vec<ChannelInfo>> {
    let dir = crate::segment::segment_dir();
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    let mut found: Vec<ChannelInfo> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| crate::validate_name(n).is_ok())
        .filter_map(|n| channel_info(&n))
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

fn channel_info(name: &str) -> Option<ChannelInfo> {
    let seg = Segment::open(name).ok()?;
    let reserved = seg.ring().reserved();
    let origin = control::origin(reserved).ok()?;
    let closed = control::is_closed(reserved);
    let (ours, framed, table) = match origin {
        Origin::Foreign => (false, false, false),
        Origin::Ours { framed, table, .. } => (true, framed, table),
    };
    let producer = match (ours, closed) {
        (false, _) => ProducerState::Unknown,
        (true, true) => ProducerState::Ended,
        (true, false) if seg.producer_alive() => ProducerState::Live,
        (true, false) => ProducerState::Gone,
    };
    let mut info = ChannelInfo {
        name: seg.name().to_owned(),
        ours,
        framed,
        producer,
        shape: None,
        frames_published: None,
        readers: None,
        capacity: seg.ring().capacity(),
        open_by: seg.other_users(),
    };
    if table {
        if let Ok(t) = seg.table() {
            let view = t.view();
            info.frames_published = Some(view.count());
            info.readers = Some(live_readers(&seg, &t).len());
            info.shape = view
                .some_frame_slot()
                .and_then(|k| slot_frame(&seg, t.geometry(), k).ok())
                .and_then(|(h, _, _)| h.shape);
        }
    }
    Some(info)
}

/// The readers of channel `name` now, without becoming one (what `frame-stats --readers`
/// lists). Empty for a raw channel, whose one consumer has no entry.
///
/// # Errors
/// As opening: [`Error::ChannelNotFound`], [`Error::PermissionDenied`], [`Error::Protocol`].
pub fn readers_of(name: &str) -> Result<Vec<ReaderInfo>> {
    let seg = Segment::open(name)?;
    match control::origin(seg.ring().reserved()) {
        Ok(Origin::Ours { table: true, .. }) => Ok(live_readers(&seg, &seg.table()?)),
        Ok(_) => Ok(Vec::new()),
        Err(found) => Err(Error::protocol(seg.name(), Violation::ExtensionVersion { found })),
    }
}

/// One place in a framed channel's reader table: the mapping, the table and the entry (whose
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
                    view.reader_live(r).store(0, std::sync::atomic::Ordering::SeqCst);
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
fn slot_frame(
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

/// Where a frame's pixels are.
#[derive(Debug)]
enum Pixels {
    /// In place, in the ring (kept valid by the lease).
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
    hold: Hold,
    pixels: Pixels,
    shape: FrameShape,
    seq: u64,
    capture_ns: u64,
    publish_ns: u64,
    raw: bool,
    lost_before: u64,
}

/// What a frame holds on to: the mapping, and its lease.
#[derive(Debug)]
enum Hold {
    /// A message of a ring (`Some(start)`: leased; `None`: already consumed, pixels copied).
    Ring(Arc<Attachment>, Option<u32>),
    /// A slot of a framed channel.
    Slot(Arc<SlotAttachment>, usize),
}

// SAFETY: the pixel pointer refers to the mapping owned by the attachment (kept alive by the
// Arc); the bytes are immutable while the lease is held; releasing is an atomic operation
// (slots) or goes through the attachment's mutex (rings).
unsafe impl Send for Frame {}
// SAFETY: `&Frame` only gives shared reads of immutable bytes.
unsafe impl Sync for Frame {}

impl Frame {
    /// The pixel bytes: `stride * height`, rows top to bottom.
    pub fn pixels(&self) -> &[u8] {
        match &self.pixels {
            // SAFETY: the lease keeps these published bytes from being overwritten by a
            // conforming producer, and `att` keeps the mapping alive; bounds were validated
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
    /// (the frames [`Reader::dropped`] counted on this read; 0 after [`Reader::latest`], which
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
        match &self.hold {
            Hold::Ring(att, _) => &att.seg,
            Hold::Slot(att, _) => &att.seg,
        }
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
        match &self.hold {
            Hold::Ring(att, Some(start)) => att.release(*start),
            Hold::Ring(_, None) => {}
            Hold::Slot(att, k) => att.release(*k),
        }
    }
}

/// The reading end of a channel. A framed channel serves up to its `max_readers` readers at
/// once, each reading every frame in place; a raw channel has one (another gets
/// [`Error::ChannelBusy`]).
///
/// ```no_run
/// use std::time::Duration;
/// use shmframes::{Reader, ReaderOptions};
/// let opts = ReaderOptions { timeout: Duration::from_secs(5), ..Default::default() };
/// let mut reader = Reader::open("shm_video", &opts)?;
/// while let Some(frame) = reader.read(Some(Duration::from_secs(1)))? {
///     println!("frame {} {} ({} bytes)", frame.seq(), frame.shape(), frame.pixels().len());
/// }   // ends with Err(EndOfStream) or Err(ProducerGone), or Ok(None) after a 1 s silence
/// # Ok::<(), shmframes::Error>(())
/// ```
#[derive(Debug)]
pub struct Reader {
    name: String,
    opts: ReaderOptions,
    src: Source,
    backoff: Backoff,
    last_liveness: Instant,
    state: ProducerState,
    /// Following: the retry policy for the next producer's segment.
    switch_retry: OpenRetry,
}

/// What a reader reads from.
#[derive(Debug)]
enum Source {
    /// A ring with one consumer (raw channels, cpp_py_shmbuf producers, older framed channels).
    Ring(Arc<Attachment>),
    /// A place in a framed channel's reader table.
    Slots {
        att: Arc<SlotAttachment>,
        cursor: Cursor,
        /// The `published` word when we last found nothing: what a sleep waits to change.
        seen: u32,
        /// Set once the stream broke the protocol: nothing more is read from it.
        broken: Option<Violation>,
    },
}

impl Source {
    /// Attaches to `seg` as its producer's extension version says.
    fn open(seg: Segment, opts: &ReaderOptions) -> Result<Source> {
        let origin = control::origin(seg.ring().reserved())
            .map_err(|found| Error::protocol(seg.name(), Violation::ExtensionVersion { found }))?;
        match origin {
            Origin::Ours { table: true, .. } => {
                let (att, cursor) = SlotAttachment::open(seg, opts.lossless, opts.start)?;
                Ok(Source::Slots { att: Arc::new(att), cursor, seen: 0, broken: None })
            }
            _ => Ok(Source::Ring(Arc::new(Attachment::open(seg, origin)?))),
        }
    }

    fn seg(&self) -> &Segment {
        match self {
            Source::Ring(att) => &att.seg,
            Source::Slots { att, .. } => &att.seg,
        }
    }

    fn is_ours(&self) -> bool {
        match self {
            Source::Ring(att) => att.is_ours(),
            Source::Slots { .. } => true,
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        // The reader is gone: its place stops protecting and counting frames; frames still held
        // keep the place (and their slots) until they are released.
        if let Source::Slots { att, .. } = self {
            if !att.seg.owned_here() {
                return; // a fork child's copy: the parent still reads (see `fork`)
            }
            Cursor::stop(&att.table.view(), att.entry);
            // A waiting producer may be waiting for us (lossless): it is not any more.
            att.wake_producer();
        }
    }
}

impl Reader {
    /// Attaches to channel `name` as one of its readers, waiting up to `opts.timeout` for it to
    /// exist.
    ///
    /// # Errors
    /// [`Error::ChannelNotFound`] when no channel appeared in time, [`Error::ChannelBusy`] when
    /// every reader place is taken, [`Error::PermissionDenied`], [`Error::Protocol`] for a
    /// segment that is not a valid channel, [`Error::Interrupted`] when `opts.cancel` fired,
    /// [`Error::InvalidName`], [`Error::Shape`] for a bad `opts.raw`.
    pub fn open(name: &str, opts: &ReaderOptions) -> Result<Reader> {
        if let Some(raw) = opts.raw {
            raw.validate()?;
        }
        let mut opening =
            Opening { name, last: None, pause: OPEN_FIRST_PAUSE, retry: OpenRetry::default() };
        let seg = match wait::wait_for(
            &mut opening,
            Deadline::after(opts.timeout),
            opts.cancel.as_ref(),
        )? {
            Some(seg) => seg,
            None => return Err(opening.gave_up(opts.timeout)),
        };
        let name = seg.name().to_owned();
        let src = Source::open(seg, opts)?;
        let state = if src.is_ours() { ProducerState::Live } else { ProducerState::Unknown };
        Ok(Reader {
            name,
            opts: opts.clone(),
            src,
            backoff: Backoff::new(),
            last_liveness: Instant::now(),
            state,
            switch_retry: OpenRetry::default(),
        })
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces the cancel that ends this reader's waits (from the next wait on). A fired
    /// [`Cancel`] stays fired: an owner that interrupts waits and then resumes (a GStreamer
    /// element's unlock, then unlock_stop) gives the reader a fresh one.
    pub fn set_cancel(&mut self, cancel: Option<Cancel>) {
        self.opts.cancel = cancel;
    }

    /// What the reader knows of the producer now: a death the kernel reported shows at once
    /// (one load of the producer's liveness word, or a probe of its lock where nobody watches
    /// it), without a read. A reader that still has frames of a dead producer to read says
    /// [`Gone`](ProducerState::Gone) too; its reads hand them out first.
    pub fn producer_state(&self) -> ProducerState {
        match self.state {
            ProducerState::Live if self.producer_dead_now() => ProducerState::Gone,
            state => state,
        }
    }

    /// Whether our producer is known dead right now (its liveness word marked by the kernel,
    /// or, unwatched, its lock free).
    fn producer_dead_now(&self) -> bool {
        let life = match &self.src {
            Source::Slots { att, .. } => liveness::life(att.table.view().producer_live(att.entry)),
            Source::Ring(_) => Life::Unwatched,
        };
        match life {
            Life::Dead => true,
            Life::Alive => false,
            Life::Unwatched => !self.src.seg().producer_alive(),
        }
    }

    /// Data-area capacity of the current segment.
    pub fn capacity(&self) -> u32 {
        self.src.seg().ring().capacity()
    }

    /// Frames currently held (leased) by this reader's frames.
    pub fn frames_held(&self) -> usize {
        match &self.src {
            Source::Ring(att) => att.lock().leases.iter().filter(|l| !l.released).count(),
            Source::Slots { att, .. } => att.table.view().reader_info(att.entry).held as usize,
        }
    }

    /// Frames this reader lost: overwritten before it read them (it fell behind by more than
    /// the channel holds, or, lossless, behind a producer that could not wait), counted since
    /// it attached to the current producer. Frames skipped by [`latest`](Reader::latest) are
    /// not lost: it chose to skip them. On a ring (raw or older framed channels) these are the
    /// gaps in the frames' sequence numbers.
    pub fn dropped(&self) -> u64 {
        match &self.src {
            Source::Ring(att) => att.lock().dropped,
            Source::Slots { cursor, .. } => cursor.dropped(),
        }
    }

    /// Frames published that this reader has not read yet (framed channels; `None` on a ring).
    pub fn lag(&self) -> Option<u64> {
        match &self.src {
            Source::Ring(_) => None,
            Source::Slots { att, cursor, .. } => Some(cursor.lag(&att.table.view())),
        }
    }

    /// Whether this reader has a place in a framed channel's reader table (`false`: the one
    /// consumer of a ring).
    pub fn is_shared(&self) -> bool {
        matches!(self.src, Source::Slots { .. })
    }

    /// The next frame if one is published, without waiting.
    ///
    /// `Err(EndOfStream)` once the producer ended the stream and every frame was read.
    pub fn try_read(&mut self) -> Result<Option<Frame>> {
        self.take(false)
    }

    /// The next frame (or with `newest`, the newest one) if one is published.
    fn take(&mut self, newest: bool) -> Result<Option<Frame>> {
        self.src.seg().check_owner(Role::Reader)?;
        // Terminal states are sticky: once a death was reported, every later call says so at
        // once (a retry loop must not hang on a producer that will never come back). End of
        // stream is sticky through the stream itself. Following readers go on to the next
        // producer instead (see `attempt_read`).
        if self.state == ProducerState::Gone && !self.opts.follow {
            return Err(Error::ProducerGone { name: self.name.clone() });
        }
        let r = match &mut self.src {
            Source::Ring(att) => {
                let att = att.clone();
                let mut st = att.lock();
                self.next_frame(&att, &mut st)
            }
            Source::Slots { att, cursor, seen, broken } => {
                take_slot(&self.name, att, cursor, seen, broken, newest)
            }
        };
        if let Err(Error::EndOfStream { .. }) = r {
            self.state = ProducerState::Ended;
        }
        r
    }

    fn next_frame(&self, att: &Arc<Attachment>, st: &mut ConsumerState) -> Result<Option<Frame>> {
        if let Some(detail) = &st.broken {
            return Err(att.protocol(detail.clone()));
        }
        if st.ended {
            return Err(Error::EndOfStream { name: self.name.clone() });
        }
        // Bounded: a producer flooding empty or filler messages cannot keep us here (and
        // keep the caller from checking its timeout or Ctrl+C).
        let mut skipped = 0u64;
        let limit = st.consumer.memory().capacity() as u64;
        loop {
            if skipped > limit {
                return Ok(None);
            }
            let msg = match st.consumer.peek() {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.broken(att, st, e)),
            };
            skipped += 4 + msg.len() as u64;
            if msg.is_empty() {
                // An empty message carries no frame (cpp_py_shmbuf's reader would hang on it):
                // consume it and go on, the stream stays in step.
                consume_now(att, st, &msg);
                continue;
            }
            match self.classify(att, st, &msg)? {
                Some(frame) => return Ok(Some(frame)),
                None if st.ended => return Err(Error::EndOfStream { name: self.name.clone() }),
                None => continue, // filler
            }
        }
    }

    fn broken(
        &self,
        att: &Attachment,
        st: &mut ConsumerState,
        detail: impl Into<Violation>,
    ) -> Error {
        let detail = detail.into();
        st.broken = Some(detail.clone());
        att.protocol(detail)
    }

    /// Turns the message at the read index into a frame, or consumes it (filler, end of
    /// stream) and returns `None`.
    fn classify(
        &self,
        att: &Arc<Attachment>,
        st: &mut ConsumerState,
        msg: &Message,
    ) -> Result<Option<Frame>> {
        let framed = match att.origin {
            Origin::Ours { framed, .. } => framed,
            Origin::Foreign => {
                let raw_exact = self.opts.raw.is_some_and(|s| s.pixel_bytes() == msg.len());
                !raw_exact && msg.len() as usize >= FRAME_TAG_LEN && {
                    let mut head = [0u8; 4];
                    st.consumer.copy_payload_prefix(msg, &mut head);
                    has_magic(&head)
                }
            }
        };
        if framed {
            self.classify_framed(att, st, msg)
        } else {
            self.classify_raw(att, st, msg).map(Some)
        }
    }

    fn classify_framed(
        &self,
        att: &Arc<Attachment>,
        st: &mut ConsumerState,
        msg: &Message,
    ) -> Result<Option<Frame>> {
        // Copy the header out once: another process could change the shared bytes, so what we
        // validate must be what we use.
        let mut hb = [0u8; FRAME_HEADER_LEN];
        let hb = &mut hb[..(msg.len() as usize).min(FRAME_HEADER_LEN)];
        st.consumer.copy_payload_prefix(msg, hb);
        let header = match FrameHeader::decode(hb, msg.len()) {
            Ok(h) => h,
            Err(d) => return Err(self.broken(att, st, d)),
        };
        match header.kind {
            MessageKind::Filler | MessageKind::EndOfStream => {
                st.ended |= header.kind == MessageKind::EndOfStream;
                consume_now(att, st, msg);
                Ok(None)
            }
            MessageKind::Frame => {
                let shape = header.shape.expect("frames carry a shape");
                let n = shape.pixel_bytes() as usize;
                let pixels = match st.consumer.payload_ptr(msg) {
                    // SAFETY: the payload is contiguous and at least FRAME_HEADER_LEN + n bytes
                    // long (validated by `decode` against `msg.len()`).
                    Some(p) => Pixels::Shared(
                        unsafe { NonNull::new_unchecked(p.as_ptr().add(FRAME_HEADER_LEN)) },
                        n,
                    ),
                    None => {
                        // Only a foreign producer can split a framed payload: copy it.
                        let mut v = Vec::new();
                        st.consumer.copy_payload(msg, &mut v);
                        v.drain(..FRAME_HEADER_LEN);
                        v.truncate(n);
                        Pixels::Owned(v)
                    }
                };
                st.frames += 1;
                Ok(Some(self.hand_out(
                    att,
                    st,
                    msg,
                    pixels,
                    shape,
                    header.seq,
                    header.capture_ns,
                    header.publish_ns,
                    false,
                )))
            }
        }
    }

    fn classify_raw(
        &self,
        att: &Arc<Attachment>,
        st: &mut ConsumerState,
        msg: &Message,
    ) -> Result<Frame> {
        let Some(shape) = self.opts.raw else {
            return Err(Error::RawWithoutShape { name: self.name.clone() });
        };
        if msg.len() != shape.pixel_bytes() {
            return Err(Error::RawSizeMismatch {
                name: self.name.clone(),
                got: msg.len(),
                expected: shape.pixel_bytes() as u64,
                shape,
            });
        }
        let pixels = match st.consumer.payload_ptr(msg) {
            Some(p) => Pixels::Shared(p, msg.len() as usize),
            None => {
                let mut v = Vec::new();
                st.consumer.copy_payload(msg, &mut v);
                Pixels::Owned(v)
            }
        };
        let seq = st.frames;
        st.frames += 1;
        Ok(self.hand_out(att, st, msg, pixels, shape, seq, 0, 0, true))
    }

    #[allow(clippy::too_many_arguments)]
    fn hand_out(
        &self,
        att: &Arc<Attachment>,
        st: &mut ConsumerState,
        msg: &Message,
        pixels: Pixels,
        shape: FrameShape,
        seq: u64,
        capture_ns: u64,
        publish_ns: u64,
        raw: bool,
    ) -> Frame {
        let lease = if matches!(pixels, Pixels::Owned(_)) {
            consume_now(att, st, msg);
            None
        } else {
            st.consumer.advance(msg);
            st.leases.push_back(Lease { start: msg.start(), end: msg.end(), released: false });
            Some(msg.start())
        };
        let mut lost_before = 0;
        if !raw {
            if let Some(last) = st.last_seq.filter(|&l| seq > l) {
                lost_before = seq - last - 1;
                st.dropped += lost_before;
            }
            st.last_seq = Some(seq);
        }
        Frame {
            hold: Hold::Ring(att.clone(), lease),
            pixels,
            shape,
            seq,
            capture_ns,
            publish_ns,
            raw,
            lost_before,
        }
    }

    /// The next frame, waiting (asleep) until `deadline` (`None`: for ever, a `Duration`, an
    /// `Instant`). `Ok(None)` when the deadline passes first.
    ///
    /// # Errors
    /// [`Error::EndOfStream`] after the last frame of a stream the producer ended,
    /// [`Error::ProducerGone`] within 100 ms of the producer's death (unless following),
    /// [`Error::Protocol`] when the stream breaks the protocol, [`Error::Interrupted`] when the
    /// options' [`Cancel`] fired.
    pub fn read(&mut self, deadline: impl Into<Deadline>) -> Result<Option<Frame>> {
        let cancel = self.opts.cancel.clone();
        wait::wait_for(&mut NextFrame(self), deadline.into(), cancel.as_ref())
    }

    /// One attempt of [`read`](Reader::read): a frame if one is published, else updates what we
    /// know of the producer (and switches to a new one when following).
    fn attempt_read(&mut self) -> Result<Option<Frame>> {
        loop {
            match self.try_read() {
                Ok(Some(f)) => {
                    self.backoff.reset();
                    return Ok(Some(f));
                }
                Ok(None) => {}
                // Following survives the end of a producer, nothing else: a protocol error is
                // the stream's bug, which waiting cannot fix.
                Err(e @ (Error::EndOfStream { .. } | Error::ProducerGone { .. }))
                    if !self.opts.follow =>
                {
                    return Err(e)
                }
                Err(Error::EndOfStream { .. } | Error::ProducerGone { .. }) => {}
                // Raised when following too: following the next producer would hide the bug
                // (and, while this producer lives, never come).
                Err(e) => return Err(e),
            }
            // Nothing to read. Has the producer ended or died?
            if matches!(self.state, ProducerState::Live) {
                self.check_producer()?;
            }
            if self.opts.follow
                && matches!(self.state, ProducerState::Ended | ProducerState::Gone)
                && self.try_switch()?
            {
                continue;
            }
            return Ok(None);
        }
    }

    /// Updates `state` from the CLOSED flag and the producer lock (rate-limited), and returns the
    /// matching error when the stream cannot continue.
    fn check_producer(&mut self) -> Result<()> {
        let reserved = self.src.seg().ring().reserved();
        if control::is_closed(reserved) {
            return self.drained_end();
        }
        // A framed channel's producer is watched by the kernel (one load, no system call);
        // otherwise, and for rings, its lock byte is probed every LIVENESS_PERIOD.
        let life = match &self.src {
            Source::Slots { att, .. } => liveness::life(att.table.view().producer_live(att.entry)),
            Source::Ring(_) => Life::Unwatched,
        };
        let dead = match life {
            Life::Dead => true,
            Life::Alive => false,
            Life::Unwatched if self.last_liveness.elapsed() >= LIVENESS_PERIOD => {
                self.last_liveness = Instant::now();
                !self.src.seg().producer_alive()
            }
            Life::Unwatched => false,
        };
        if dead {
            if control::is_closed(reserved) {
                return self.drained_end();
            }
            // The producer may have published its last frames just before dying: a ring's are
            // still to be read. (A framed channel's were all taken by the attempt that found
            // nothing and brought us here; frames it counted but never finished, a slot it died
            // writing, will never come.)
            if matches!(self.src, Source::Ring(_)) && self.unread() {
                return Ok(());
            }
            self.state = ProducerState::Gone;
            if !self.opts.follow {
                return Err(Error::ProducerGone { name: self.name.clone() });
            }
        }
        Ok(())
    }

    /// After seeing CLOSED: end of stream once every published frame is read.
    fn drained_end(&mut self) -> Result<()> {
        if self.unread() {
            return Ok(()); // frames published before closing: read them first
        }
        self.state = ProducerState::Ended;
        if let Source::Ring(att) = &self.src {
            att.lock().ended = true;
        }
        if self.opts.follow {
            Ok(())
        } else {
            Err(Error::EndOfStream { name: self.name.clone() })
        }
    }

    /// Whether something published is still unread (or unreadable: an error to report).
    fn unread(&self) -> bool {
        match &self.src {
            Source::Ring(att) => matches!(att.lock().consumer.peek(), Ok(Some(_)) | Err(_)),
            Source::Slots { att, cursor, .. } => cursor.lag(&att.table.view()) > 0,
        }
    }

    /// Follow mode: attaches to a new segment under the name, if one with a live producer is
    /// there. Returns whether it switched.
    fn try_switch(&mut self) -> Result<bool> {
        // Only a new file under the name is a new producer. (Not even opening the old one again:
        // on systems with process-owned record locks, closing that second descriptor would drop
        // our locks.)
        if self.src.seg().name_points_here() {
            return Ok(false);
        }
        let seg = match Segment::open(&self.name) {
            Ok(s) => s,
            Err(e) if self.switch_retry.retry(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        let src = match Source::open(seg, &self.opts) {
            Ok(s) => s,
            Err(Error::ChannelBusy { .. }) => return Ok(false),
            Err(e) if self.switch_retry.retry(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        self.switch_retry = OpenRetry::default();
        self.state = if src.is_ours() { ProducerState::Live } else { ProducerState::Unknown };
        self.src = src;
        self.last_liveness = Instant::now();
        self.backoff.reset();
        Ok(true)
    }

    fn sleep(&mut self, left: Duration, wake: &[WaitWord<'_>]) {
        // `left` is bounded by the caller's deadline (and cancel period where the sleep
        // cannot wake on the cancel's words; see `wait::wait_for`).
        match (self.state, &self.src) {
            (ProducerState::Live, Source::Slots { att, cursor, seen, .. }) => {
                let view = att.table.view();
                let reserved = att.seg.ring().reserved();
                cursor.announce_sleep(&view);
                if !control::is_closed(reserved)
                    && view.published_word().load(std::sync::atomic::Ordering::Relaxed) == *seen
                {
                    wait::sleep_watching(
                        view.published_word(),
                        *seen,
                        [view.producer_live(att.entry)],
                        wake,
                        left,
                        LIVENESS_PERIOD,
                    );
                }
                cursor.end_sleep(&view);
            }
            (ProducerState::Live, Source::Ring(att)) => {
                let mem = *att.seg.ring();
                let read = att.lock().consumer.read_index();
                let t = left.min(LIVENESS_PERIOD);
                wait::sleep_announced(
                    mem.head_word(),
                    read,
                    mem.reserved(),
                    CONSUMER_SLEEPING,
                    control::CLOSED,
                    t,
                );
            }
            (ProducerState::Unknown, Source::Ring(att)) => {
                let mem = *att.seg.ring();
                let read = att.lock().consumer.read_index();
                wait::sleep_unannounced(mem.head_word(), read, &mut self.backoff, left);
            }
            (ProducerState::Unknown, Source::Slots { .. }) => {
                std::thread::sleep(left.min(LIVENESS_PERIOD))
            }
            // Following a dead or ended producer: look for its successor a few times a second.
            (ProducerState::Gone | ProducerState::Ended, _) => {
                std::thread::sleep(left.min(FOLLOW_PERIOD));
            }
        }
    }

    /// The newest frame, skipping (and, on a ring, releasing) every older one already
    /// published; waits until `deadline` if none is. Errors as [`read`](Reader::read).
    pub fn latest(&mut self, deadline: impl Into<Deadline>) -> Result<Option<Frame>> {
        if let Some(f) = self.newest_published(None)? {
            return Ok(Some(f));
        }
        match self.read(deadline)? {
            Some(first) => self.newest_published(Some(first)),
            None => Ok(None),
        }
    }

    /// The newest frame published, or `newest` if there is none newer.
    fn newest_published(&mut self, newest: Option<Frame>) -> Result<Option<Frame>> {
        if let Source::Slots { .. } = self.src {
            return match self.take(true) {
                Ok(Some(f)) => Ok(Some(f)),
                Ok(None) => Ok(newest),
                Err(e) if newest.is_none() => Err(e),
                Err(_) => Ok(newest), // delivered with the next call; hand out what we have
            };
        }
        // A ring: read what is published, keeping only the newest frame (dropping older ones
        // releases them). Bounded to one lap, so a fast producer cannot keep us here.
        let mut newest = newest;
        let capacity = self.capacity() as u64;
        let mut skipped = 0u64;
        while skipped <= capacity {
            match self.try_read() {
                Ok(Some(f)) => {
                    skipped += f.shape.pixel_bytes() as u64 + 64;
                    newest = Some(f);
                }
                Ok(None) => break,
                Err(e) if newest.is_none() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(newest)
    }
}

/// The next frame from a framed channel's slots (with `newest`, the newest), if one is
/// published.
fn take_slot(
    name: &str,
    att: &Arc<SlotAttachment>,
    cursor: &mut Cursor,
    seen: &mut u32,
    broken: &mut Option<Violation>,
    newest: bool,
) -> Result<Option<Frame>> {
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
                return Ok(Some(Frame {
                    hold: Hold::Slot(att.clone(), slot),
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
                *seen = view.published_word().load(std::sync::atomic::Ordering::Acquire);
                return Ok(None);
            }
        }
    }
}

/// Consumes a message that needs no lease (filler, end of stream, copied frames).
fn consume_now(att: &Attachment, st: &mut ConsumerState, msg: &Message) {
    st.consumer.advance(msg);
    st.leases.push_back(Lease { start: msg.start(), end: msg.end(), released: true });
    att.publish_tail(st);
}

/// [`Reader::read`] as a [`Waitable`].
struct NextFrame<'r>(&'r mut Reader);

impl Waitable for NextFrame<'_> {
    type Output = Frame;
    fn attempt(&mut self) -> Result<Option<Frame>> {
        self.0.attempt_read()
    }
    fn sleep(&mut self, max: Duration, wake: &[WaitWord<'_>]) {
        self.0.sleep(max, wake)
    }
    fn sleeps_on_words(&self) -> bool {
        matches!((self.0.state, &self.0.src), (ProducerState::Live, Source::Slots { .. }))
            && sys::kernel_watches_liveness()
    }
    fn channel(&self) -> &str {
        &self.0.name
    }
}

/// The one retry policy for attaching: a channel that does not exist yet may appear, and a
/// segment that fails validation may be one a foreign producer is still setting up (it takes
/// no lock and writes its header after creating the object), for [`SETUP_GRACE`](crate::timing::SETUP_GRACE) at
/// most: a segment still invalid after that is broken, and the error says so, however long
/// the caller was willing to wait. Nothing else changes by waiting.
#[derive(Debug, Default)]
pub(crate) struct OpenRetry {
    /// When the segment under the name was first found invalid (in a row).
    invalid_since: Option<Instant>,
}

impl OpenRetry {
    /// Whether opening again may succeed after error `e`.
    pub(crate) fn retry(&mut self, e: &Error) -> bool {
        match e {
            Error::ChannelNotFound { .. } => {
                self.invalid_since = None;
                true
            }
            Error::Protocol { .. } => {
                self.invalid_since.get_or_insert_with(Instant::now).elapsed() < SETUP_GRACE
            }
            _ => false,
        }
    }
}

/// [`Reader::open`]'s wait for the segment, as a [`Waitable`].
struct Opening<'n> {
    name: &'n str,
    /// The last error worth retrying, reported if time runs out.
    last: Option<Error>,
    pause: Duration,
    retry: OpenRetry,
}

impl Opening<'_> {
    /// The error for a deadline that passed.
    fn gave_up(self, timeout: Duration) -> Error {
        match self.last {
            Some(Error::ChannelNotFound { name, path, .. }) if !timeout.is_zero() => {
                Error::ChannelNotFound { name, path, waited: Some(timeout) }
            }
            Some(e) => e,
            None => unreachable!("the wait loop makes an attempt before giving up"),
        }
    }
}

impl Waitable for Opening<'_> {
    type Output = Segment;
    fn attempt(&mut self) -> Result<Option<Segment>> {
        match Segment::open(self.name) {
            Ok(seg) => Ok(Some(seg)),
            Err(e) if self.retry.retry(&e) => {
                self.last = Some(e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
    fn sleep(&mut self, max: Duration, _wake: &[WaitWord<'_>]) {
        std::thread::sleep(self.pause.min(max));
        self.pause = (self.pause * 2).min(OPEN_MAX_PAUSE);
    }
    fn channel(&self) -> &str {
        self.name
    }
}
