//! The producer end: [`Writer`] creates a channel and publishes frames into it.
//!
//! One [`Writer`] type, one implementation per transport behind the private [`Transport`]
//! trait, chosen once at creation: `slots.rs` (a framed channel: frames in slots, readers in a
//! table) and `raw.rs` (cpp_py_shmbuf's ring, one consumer). What stays here is what both share:
//! options, sequence numbers, the one publish and discard path for slots and open slots, lending an
//! slot's pixels, waiting for room, ending the stream.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::control;
use crate::error::{Error, Result, Role};
use crate::format::FrameShape;
use crate::lend::{SlotWindow, Windows};
use crate::ring;
use crate::segment::Segment;
use crate::sys::WaitWord;
use crate::table::{self, Geometry};
use crate::wait::{Cancel, Deadline, Waitable};
use crate::{sys, wait};

mod raw;
mod slots;

use raw::RawWriter;
use slots::SlotWriter;

/// What a writer writes into: one implementation per transport (see the module docs). The
/// writer calls these without knowing which it has.
trait Transport: std::fmt::Debug + Send {
    /// Frame slots of a framed channel (`None` for a raw one).
    fn slots(&self) -> Option<u32>;
    /// The live readers (empty for a raw channel).
    fn reader_list(&self, seg: &Segment) -> Vec<crate::ReaderInfo>;
    /// Whether a reader is attached.
    fn reader_attached(&self, seg: &Segment) -> bool;
    /// How many readers are attached, and how far the slowest lossless one is behind.
    fn readers(&self, seg: &Segment) -> ReadersNow;
    /// Takes room for one frame of `shape` (a slot with its header written, or room in the
    /// ring); `None` when there is none now. With `protect_lossless`, frames a lossless reader
    /// has not read are spared.
    fn take(
        &mut self,
        seg: &Segment,
        shape: FrameShape,
        protect_lossless: bool,
    ) -> Result<Option<Target>>;
    /// The buffer `target`'s pixels are drawn into when they are not in place (raw frames
    /// that would wrap), `None` when they are in place at `target.pixels`.
    fn staging(&mut self, target: Target, n: usize) -> Option<&mut [u8]>;
    /// The slot whose pixels may be lent through a window (`None`: not lendable).
    fn lendable(&self, target: Target) -> Option<usize>;
    /// Makes the frame in `target` visible to readers and wakes those asleep.
    fn publish(&mut self, seg: &Segment, target: Target, seq: u64, capture_ns: u64, now: u64);
    /// Gives the room in `target` back unpublished.
    fn abandon(&mut self, target: Target);
    /// Whether a frame would find room now (sparing lossless readers), without taking it.
    fn has_room(&mut self, seg: &Segment) -> Result<bool>;
    /// The word that changes when room is given back (what a wait for room sleeps on).
    fn room_word(&self) -> &AtomicU32;
    /// Sleeps until room may be there (`room_word` leaves `seen`), at most `max`.
    fn sleep_for_room(
        &mut self,
        seg: &Segment,
        seen: u32,
        wake: &[WaitWord<'_>],
        max: Duration,
        backoff: &mut wait::Backoff,
    );
    /// Whether `sleep_for_room` also wakes on the `wake` words (a cancel needs no period).
    fn sleeps_on_words(&self) -> bool;
    /// Frees what dead readers hold, if a check is due; whether it freed anything.
    fn free_dead_readers(&mut self, seg: &Segment) -> bool;
    /// Wakes readers for the end of the stream (the CLOSED flag is set) and stops watching
    /// the producer's liveness words.
    fn end_stream(&mut self, seg: &Segment);
}

/// How to create a channel.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Shape of every frame.
    pub shape: FrameShape,
    /// How many published frames the channel keeps (at least 1): a reader may fall this many
    /// frames behind before it loses frames (or, lossless, before a waiting writer waits).
    /// A framed channel has `buffer_frames + 1` slots (at most 32; more when rounding the data
    /// area up to a power of two leaves room for more); while readers keep up, frames cycle
    /// through two of them, which stay in the CPU cache.
    pub buffer_frames: u32,
    /// Send header-less payloads (pixels only), exactly like cpp_py_shmbuf's producer, so that
    /// its consumers read the stream unchanged. Requires a packed stride.
    pub raw: bool,
    /// Permission bits of the segment (default `0o600`: only this user may attach).
    pub mode: u32,
    /// Ends this writer's waits for room early with [`Error::Interrupted`]; see [`Cancel`].
    pub cancel: Option<Cancel>,
    /// How many readers a framed channel serves at once (1 to [`table::MAX_READERS`]; default
    /// [`table::DEFAULT_MAX_READERS`]). Each costs 64 bytes of shared memory, nothing per
    /// frame. A raw channel has one consumer.
    pub max_readers: u32,
}

impl WriterOptions {
    /// Packed frames of the given size and format, 4 buffered frames, framed, mode 0600, up to
    /// 8 readers.
    ///
    /// # Errors
    /// [`Error::Shape`] for a size the format cannot have.
    pub fn new(width: u32, height: u32, format: crate::PixelFormat) -> Result<WriterOptions> {
        let shape = FrameShape::packed(width, height, format)?;
        Ok(WriterOptions {
            shape,
            buffer_frames: 4,
            raw: false,
            mode: 0o600,
            cancel: None,
            max_readers: table::DEFAULT_MAX_READERS,
        })
    }

    /// Checks a segment mode: permission bits only (within `0o777`) that keep `0o600`.
    ///
    /// # Errors
    /// [`Error::BadMode`] otherwise: setuid, setgid and sticky bits, file-type bits, and modes
    /// without the owner's read and write are refused.
    pub fn check_mode(mode: u32) -> Result<u32> {
        if mode > 0o777 || mode & 0o600 != 0o600 {
            return Err(Error::BadMode { mode });
        }
        Ok(mode)
    }

    /// Bytes one message of this configuration takes in the ring.
    fn message_len(&self) -> u64 {
        if self.raw {
            ring::PREFIX_LEN as u64 + self.shape.pixel_bytes() as u64
        } else {
            self.shape.framed_message_len() as u64
        }
    }

    /// The data-area capacity these options need: room for `buffer_frames` messages (raw),
    /// or for `buffer_frames + 1` slots (framed: one more to write into while readers hold
    /// the others), rounded up to a power of two.
    ///
    /// # Errors
    /// [`Error::Shape`], [`Error::NoBufferFrames`], [`Error::TooManyBufferFrames`],
    /// [`Error::MaxReaders`], [`Error::RingTooLarge`].
    pub fn capacity(&self) -> Result<u32> {
        self.shape.validate()?;
        if self.buffer_frames == 0 {
            return Err(Error::NoBufferFrames);
        }
        let msg = self.message_len();
        let messages = if self.raw {
            self.buffer_frames as u64
        } else {
            if self.buffer_frames >= table::MAX_SLOTS {
                return Err(Error::TooManyBufferFrames { frames: self.buffer_frames });
            }
            if !(1..=table::MAX_READERS).contains(&self.max_readers) {
                return Err(Error::MaxReaders { got: self.max_readers });
            }
            self.buffer_frames as u64 + 1
        };
        let need = msg * messages;
        ring::capacity_for(need).ok_or(Error::RingTooLarge {
            frames: self.buffer_frames,
            shape: self.shape,
            needed: need,
            limit: ring::MAX_CAPACITY,
        })
    }

    /// The reader table of a framed channel: as many slots as the capacity holds (at most
    /// [`table::MAX_SLOTS`]).
    fn geometry(&self, capacity: u32) -> Geometry {
        let slot_len = self.message_len() as u32;
        Geometry {
            slots: (capacity / slot_len).min(table::MAX_SLOTS),
            slot_len,
            max_readers: self.max_readers,
        }
    }
}

/// The producer end of a channel. Creating it creates the shared-memory segment; dropping or
/// [`close`](Writer::close)-ing it ends the stream and removes the name.
///
/// A framed channel (the default) serves up to `max_readers` readers at once: each frame is
/// written once, into a slot every reader views in place. A raw channel is cpp_py_shmbuf's
/// single-consumer ring.
///
/// ```no_run
/// use shmframes::{PixelFormat, Writer, WriterOptions};
/// let opts = WriterOptions::new(640, 480, PixelFormat::Bgr24)?;
/// let mut writer = Writer::create("demo", &opts)?;
/// if let Some(mut slot) = writer.try_frame()? {     // None: every slot is held, frame dropped
///     slot.pixels().fill(128);                      // draw straight into shared memory
///     slot.publish();
/// }
/// writer.close()?;
/// # Ok::<(), shmframes::Error>(())
/// ```
#[derive(Debug)]
pub struct Writer {
    /// The transport (first: dropped before the segment is unmapped; it owns the producer's
    /// liveness words).
    src: Box<dyn Transport>,
    seg: Segment,
    opts: WriterOptions,
    /// Sequence number of the next frame unless the slot sets its own.
    next_seq: u64,
    /// Frames published so far.
    published: u64,
    /// Back-off of timed waits for room when no wake-up can come.
    backoff: wait::Backoff,
    closed: bool,
    /// A frame's pixel bytes: fixed at creation, needed on every frame.
    pixel_bytes: u32,
    /// The slot lent to an [`OpenSlot`]'s holder, if one is open.
    in_progress: Option<SlotInProgress>,
    /// Identity of the next open slot.
    next_slot_id: u64,
    /// Windows onto slots, for open slots whose pixels are lent (see `lend`).
    windows: Windows,
}

/// The frame an [`OpenSlot`] holds: the room taken and what the holder set.
#[derive(Debug)]
struct SlotInProgress {
    id: u64,
    target: Target,
    /// The window its pixels are lent through, and the slot's index.
    lent: Option<(usize, SlotWindow)>,
}

// SAFETY: the target's pointer points into the writer's own mapping (its segment) or staging
// buffer, which move with the writer; only the writer dereferences it.
unsafe impl Send for SlotInProgress {}

/// A frame slot a writer lends to a holder that cannot borrow the writer (a binding: Python's
/// `Writer.frame()` returns one as `shmframes.FrameSlot`): the writer keeps the slot, the handle
/// names it. Publish it with [`Writer::publish_slot`] or discard it with
/// [`Writer::discard_slot`]. A writer lends one slot at a time: taking room for another frame
/// (another open slot, [`Writer::frame`], [`Writer::write`]) discards an open slot's frame, and
/// that open slot then returns [`Error::SlotGone`]. An open slot dropped unpublished keeps its slot until
/// then.
#[derive(Debug)]
#[must_use = "publish or discard the slot, or its slot stays taken until the next frame"]
pub struct OpenSlot {
    id: u64,
}

/// An open slot's pixels, lent at an address of their own (see `lend`): writable until the open slot is
/// published or discarded, after which the address holds private zero pages, so that a view
/// kept past the open slot can neither see nor change any frame. The address stays mapped while
/// `owner` (or a clone) lives: make it the owner of whatever view is built on `ptr`.
#[derive(Debug)]
pub struct SlotPixels {
    /// The first pixel byte.
    pub ptr: NonNull<u8>,
    /// [`FrameShape::pixel_bytes`].
    pub len: usize,
    /// Keeps the address mapped.
    pub owner: SlotWindow,
}

impl Writer {
    /// Creates the channel `name`. Fails if a live producer owns the name; replaces a stale
    /// segment left by a dead one.
    ///
    /// # Errors
    /// The configuration errors of [`WriterOptions::capacity`], [`Error::RawNeedsPackedRows`],
    /// and those of creating the segment ([`Error::ProducerAlive`], [`Error::NameTaken`],
    /// [`Error::NoSpace`], [`Error::PermissionDenied`], ...).
    pub fn create(name: &str, opts: &WriterOptions) -> Result<Writer> {
        WriterOptions::check_mode(opts.mode)?;
        let capacity = opts.capacity()?;
        if opts.raw && opts.shape.stride != opts.shape.row_bytes() {
            return Err(Error::RawNeedsPackedRows { shape: opts.shape });
        }
        let geometry = (!opts.raw).then(|| opts.geometry(capacity));
        let (seg, table) =
            Segment::create(name, capacity, control::initial(!opts.raw), geometry, opts.mode)?;
        let src: Box<dyn Transport> = match table {
            Some(table) => Box::new(SlotWriter::new(&seg, table, opts.shape)),
            None => Box::new(RawWriter::new(&seg, opts.message_len() as u32)?),
        };
        Ok(Writer {
            src,
            seg,
            opts: opts.clone(),
            next_seq: 0,
            published: 0,
            backoff: wait::Backoff::new(),
            closed: false,
            pixel_bytes: opts.shape.pixel_bytes(),
            in_progress: None,
            next_slot_id: 0,
            windows: Windows::default(),
        })
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// Replaces the cancel that ends this writer's waits for room (from the next wait on). A
    /// fired [`Cancel`] stays fired: an owner that interrupts waits and then resumes (a
    /// GStreamer element's unlock, then unlock_stop) gives the writer a fresh one.
    pub fn set_cancel(&mut self, cancel: Option<Cancel>) {
        self.opts.cancel = cancel;
    }

    /// Shape of the frames.
    pub fn shape(&self) -> FrameShape {
        self.opts.shape
    }

    /// Data-area capacity in bytes.
    pub fn capacity(&self) -> u32 {
        self.seg.ring().capacity()
    }

    /// Frame slots of a framed channel (`None` for a raw one).
    pub fn slots(&self) -> Option<u32> {
        self.src.slots()
    }

    /// The sequence number the next frame carries unless its slot sets one.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Frames published so far.
    pub fn frames_published(&self) -> u64 {
        self.published
    }

    /// The live readers of a framed channel (empty for a raw one). A system call per reader:
    /// call it about once a second, not per frame.
    pub fn reader_list(&self) -> Vec<crate::ReaderInfo> {
        self.src.reader_list(&self.seg)
    }

    /// Whether a reader is attached (a system call per reader place: call it about once a
    /// second, not per frame).
    pub fn reader_attached(&self) -> bool {
        self.src.reader_attached(&self.seg)
    }

    /// How many readers are attached, and how far the slowest lossless one is behind.
    pub fn readers(&self) -> ReadersNow {
        self.src.readers(&self.seg)
    }

    fn check_open(&self) -> Result<()> {
        self.seg.check_owner(Role::Writer)?;
        if self.closed {
            return Err(Error::Closed { role: Role::Writer, name: self.seg.name().to_owned() });
        }
        Ok(())
    }

    /// A slot for the next frame of a live source, without waiting; `None` when there is no
    /// room now (the caller drops the frame). Nothing is visible to readers until
    /// [`FrameSlot::publish`].
    ///
    /// Framed channels: a frame any reader holds is never overwritten, and `None` means that
    /// readers hold every slot. A frame a lossless reader has not read yet may be overwritten
    /// (the camera cannot wait; that reader counts it as dropped); [`frame`](Writer::frame)
    /// waits for lossless readers instead. Raw channels: `None` when the ring is full.
    pub fn try_frame(&mut self) -> Result<Option<FrameSlot<'_>>> {
        self.check_open()?;
        match self.take(false)? {
            Some(target) => Ok(Some(self.slot(target))),
            None => Ok(None),
        }
    }

    /// Takes room for one frame: a slot of the table, or room in the raw ring.
    fn take(&mut self, protect_lossless: bool) -> Result<Option<Target>> {
        // One frame at a time: room for a new one ends an open slot's.
        self.end_slot();
        self.src.take(&self.seg, self.opts.shape, protect_lossless)
    }

    /// The slot handed to the caller for `target`.
    fn slot(&mut self, target: Target) -> FrameSlot<'_> {
        FrameSlot { writer: self, target, capture_ns: None, seq: None }
    }

    /// Takes room for a frame as [`frame`](Writer::frame) does (waiting until `deadline`), and
    /// lends it: see [`OpenSlot`]. `Ok(None)` when the deadline passed without room.
    ///
    /// # Errors
    /// As [`frame`](Writer::frame).
    pub fn open_slot(&mut self, deadline: impl Into<Deadline>) -> Result<Option<OpenSlot>> {
        self.check_open()?;
        let cancel = self.opts.cancel.clone();
        let Some(Some(target)) = wait::wait_for(
            &mut Room { writer: self, seen: 0, dry_run: false },
            deadline.into(),
            cancel.as_ref(),
        )?
        else {
            return Ok(None);
        };
        let id = self.next_slot_id;
        self.next_slot_id += 1;
        self.in_progress = Some(SlotInProgress { id, target, lent: None });
        Ok(Some(OpenSlot { id }))
    }

    /// The open slot `opened` names, or `SlotGone`.
    fn slot_in_progress(&mut self, opened: &OpenSlot) -> Result<&mut SlotInProgress> {
        match &mut self.in_progress {
            Some(open) if open.id == opened.id => Ok(open),
            _ => Err(Error::SlotGone { name: self.seg.name().to_owned() }),
        }
    }

    /// Lends `opened`'s pixels through a window of their own (see [`SlotPixels`]); the same
    /// window on every call for one open slot. Framed channels only: a raw channel's frame may wrap
    /// around the ring's end (`Ok(None)`: draw elsewhere and [`write`](Writer::write) it).
    ///
    /// # Errors
    /// [`Error::SlotGone`]; [`Error::Io`] when the window cannot be mapped.
    pub fn slot_pixels(&mut self, opened: &OpenSlot) -> Result<Option<SlotPixels>> {
        self.seg.check_owner(Role::Writer)?;
        let n = self.pixel_bytes as usize;
        let page = sys::page_size();
        let base = self.seg.ring().base_ptr() as usize;
        let open = match &mut self.in_progress {
            Some(open) if open.id == opened.id => open,
            _ => return Err(Error::SlotGone { name: self.seg.name().to_owned() }),
        };
        let Some(slot) = self.src.lendable(open.target) else { return Ok(None) };
        // The window covers whole pages around the pixels.
        let pixels = open.target.pixels as usize - base;
        let start = pixels / page * page;
        let len = (pixels + n).div_ceil(page) * page - start;
        let lent = match &open.lent {
            Some((_, lent)) => lent.clone(),
            None => {
                let lent = self
                    .windows
                    .lend(slot, self.seg.file(), start as u64, len)
                    .map_err(|e| Error::io("cannot map a window onto the frame's slot", e))?;
                open.lent = Some((slot, lent.clone()));
                lent
            }
        };
        let (addr, _) = lent.range();
        // SAFETY: `pixels - start < len`: the pixels lie inside the window.
        let ptr = unsafe { NonNull::new_unchecked(addr.as_ptr().add(pixels - start)) };
        Ok(Some(SlotPixels { ptr, len: n, owner: lent }))
    }

    /// Takes back the pixels of the open slot (if lent). An error means they could not be,
    /// and the slot must then stay taken for ever (see `lend`).
    fn take_back(&mut self) -> std::io::Result<()> {
        let Some(open) = &mut self.in_progress else { return Ok(()) };
        let Some((slot, lent)) = &open.lent else { return Ok(()) };
        self.windows.take_back(*slot, lent)
    }

    /// Publishes `opened`'s frame (with `seq` and `capture_ns` as [`FrameSlot::set_seq`] and
    /// [`FrameSlot::set_capture_ns`]): its lent pixels are taken back first, so nothing written
    /// through them afterwards reaches a frame. Returns the frame's sequence number.
    ///
    /// # Errors
    /// [`Error::SlotGone`]; [`Error::Io`] when the pixels could not be taken back (the frame is
    /// not published, and its slot stays taken).
    pub fn publish_slot(
        &mut self,
        opened: OpenSlot,
        seq: Option<u64>,
        capture_ns: Option<u64>,
    ) -> Result<u64> {
        self.seg.check_owner(Role::Writer)?;
        self.slot_in_progress(&opened)?;
        if let Err(e) = self.take_back() {
            self.in_progress = None; // its slot stays WRITING: never reused, never read
            return Err(Error::io("cannot take a lent frame back (the frame is dropped)", e));
        }
        let open = self.in_progress.take().expect("checked above");
        Ok(self.publish_target(open.target, seq, capture_ns))
    }

    /// Discards `opened`'s frame: readers never see it, and its lent pixels are taken back.
    /// An open slot that is already gone is ignored.
    pub fn discard_slot(&mut self, opened: OpenSlot) {
        if self.slot_in_progress(&opened).is_ok() {
            self.end_slot();
        }
    }

    /// Discards the open slot's frame, if any (see [`OpenSlot`]).
    fn end_slot(&mut self) {
        if self.in_progress.is_none() {
            return;
        }
        let taken_back = self.take_back().is_ok();
        let open = self.in_progress.take().expect("checked above");
        if taken_back {
            self.abandon_target(open.target);
        }
    }

    /// Like [`try_frame`](Writer::try_frame), but waits (asleep, woken by the readers) until
    /// `deadline` for room (`None`: for ever), and spares every frame a lossless reader has
    /// not read yet: a lossless reader never loses a frame. `Ok(None)` means the deadline
    /// passed. A reader that dies holding frames is noticed within 100 ms.
    ///
    /// # Errors
    /// [`Error::Interrupted`] when the options' [`Cancel`] fired; [`Error::Protocol`] when a
    /// raw channel's consumer broke the ring's indices; [`Error::Closed`].
    pub fn frame(&mut self, deadline: impl Into<Deadline>) -> Result<Option<FrameSlot<'_>>> {
        self.check_open()?;
        let cancel = self.opts.cancel.clone();
        match wait::wait_for(
            &mut Room { writer: self, seen: 0, dry_run: false },
            deadline.into(),
            cancel.as_ref(),
        )? {
            Some(Some(target)) => Ok(Some(self.slot(target))),
            _ => Ok(None),
        }
    }

    /// Waits (asleep, woken by the readers) until `deadline` (`None`: for ever) until a frame
    /// fits as [`frame`](Writer::frame) would take it. Returns whether it does. Errors as
    /// [`frame`](Writer::frame).
    pub fn wait_for_room(&mut self, deadline: impl Into<Deadline>) -> Result<bool> {
        self.check_open()?;
        let cancel = self.opts.cancel.clone();
        Ok(wait::wait_for(
            &mut Room { writer: self, seen: 0, dry_run: true },
            deadline.into(),
            cancel.as_ref(),
        )?
        .is_some())
    }

    /// Whether [`frame`](Writer::frame) would find room now, without taking it.
    fn has_room(&mut self) -> Result<bool> {
        self.src.has_room(&self.seg)
    }

    /// Copies `pixels` (exactly [`FrameShape::pixel_bytes`]) into the next frame and publishes
    /// it, waiting as [`frame`](Writer::frame) until `deadline` for room (`None`: for ever; a
    /// passed deadline or `Some(Duration::ZERO)`: drop the frame if there is none). Returns
    /// whether the frame was published.
    ///
    /// # Errors
    /// [`Error::WrongFrameSize`], and as [`frame`](Writer::frame).
    pub fn write(
        &mut self,
        pixels: &[u8],
        capture_ns: Option<u64>,
        deadline: impl Into<Deadline>,
    ) -> Result<bool> {
        let expected = self.pixel_bytes as usize;
        if pixels.len() != expected {
            return Err(Error::WrongFrameSize {
                got: pixels.len(),
                expected,
                shape: self.opts.shape,
            });
        }
        let slot = self.frame(deadline)?;
        let Some(mut slot) = slot else { return Ok(false) };
        slot.pixels().copy_from_slice(pixels);
        if let Some(t) = capture_ns {
            slot.set_capture_ns(t);
        }
        slot.publish();
        Ok(true)
    }

    /// Ends the stream: the `CLOSED` flag, a wake-up for sleeping readers, and removal of the
    /// name. Readers still read every frame published before.
    ///
    /// # Errors
    /// None today (the stream always ends); kept for the end-of-stream work that may fail.
    pub fn close(mut self) -> Result<()> {
        self.finish();
        Ok(())
    }

    fn finish(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        if !self.seg.owned_here() {
            // A fork child's copy: the stream and its name are the parent's, still live.
            return;
        }
        // An unpublished open slot: its frame is discarded, its pixels taken back.
        self.end_slot();
        control::close(self.seg.ring().reserved());
        self.src.end_stream(&self.seg);
        self.seg.unlink_if_ours();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// How many readers a writer has now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadersNow {
    /// Readers attached.
    pub attached: u32,
    /// Frames published and not yet read by the slowest lossless reader (a raw channel's
    /// consumer counts as one); `None` without lossless readers.
    pub lossless_lag: Option<u64>,
    /// Slots of a framed channel that readers hold now (0 for a raw one). Held frames are
    /// never overwritten: when readers hold every slot, [`Writer::try_frame`] finds no room
    /// (the frame is dropped) and [`Writer::frame`] waits until one is released.
    pub held_slots: u32,
    /// Slots of a framed channel (0 for a raw one).
    pub slots: u32,
}

/// Room taken for one frame: where its pixels go (null: the transport's staging buffer) and,
/// in a framed channel, its slot.
#[derive(Clone, Copy, Debug)]
struct Target {
    pixels: *mut u8,
    slot: usize,
}

/// Room for one frame, reserved in the channel (or, rarely in raw mode, in a staging buffer).
/// Draw into [`pixels`](FrameSlot::pixels), then [`publish`](FrameSlot::publish); dropping it
/// unpublished discards the frame.
#[derive(Debug)]
pub struct FrameSlot<'w> {
    writer: &'w mut Writer,
    target: Target,
    capture_ns: Option<u64>,
    seq: Option<u64>,
}

impl FrameSlot<'_> {
    /// The frame's pixel bytes ([`FrameShape::pixel_bytes`]), rows top to bottom, to fill in
    /// place.
    pub fn pixels(&mut self) -> &mut [u8] {
        let n = self.writer.pixel_bytes as usize;
        let target = self.target;
        let writer = &mut *self.writer;
        if let Some(staging) = writer.src.staging(target, n) {
            return staging;
        }
        // SAFETY: `pixels..pixels + n` is a payload taken by our producer and not published:
        // a slot marked WRITING, which no reader reads or holds, or raw ring space no one
        // reads until `publish` commits it. The slot holds `&mut Writer`, so nothing else can
        // take it meanwhile, and the payload was sized from the same shape.
        unsafe { std::slice::from_raw_parts_mut(target.pixels, n) }
    }

    /// Sequence number this frame will carry: one more than the previous frame's, unless set.
    pub fn seq(&self) -> u64 {
        self.seq.unwrap_or(self.writer.next_seq)
    }

    /// Sets the sequence number, e.g. the source's frame counter, so that frames this channel
    /// dropped show as gaps to the reader.
    pub fn set_seq(&mut self, seq: u64) {
        self.seq = Some(seq);
    }

    /// Stamps the capture time (CLOCK_MONOTONIC ns, see [`crate::monotonic_ns`]); default:
    /// the time of publishing.
    pub fn set_capture_ns(&mut self, ns: u64) {
        self.capture_ns = Some(ns);
    }

    /// Makes the frame visible to readers (and wakes those asleep). Returns its sequence
    /// number.
    pub fn publish(self) -> u64 {
        // Published: nothing for `Drop` to abandon.
        let mut this = std::mem::ManuallyDrop::new(self);
        let (target, seq, capture_ns) = (this.target, this.seq, this.capture_ns);
        this.writer.publish_target(target, seq, capture_ns)
    }
}

impl Writer {
    /// Makes the frame in `target` visible to readers (and wakes those asleep): the one
    /// implementation of publishing, for slots and open slots. Returns its sequence number.
    fn publish_target(&mut self, target: Target, seq: Option<u64>, capture_ns: Option<u64>) -> u64 {
        let now = sys::monotonic_ns();
        let seq = seq.unwrap_or(self.next_seq);
        if !self.seg.owned_here() {
            return seq; // a slot taken before a fork, published in the child: not ours to publish
        }
        let capture_ns = capture_ns.unwrap_or(now);
        self.src.publish(&self.seg, target, seq, capture_ns, now);
        self.next_seq = seq.wrapping_add(1);
        self.published += 1;
        seq
    }

    /// Gives the room in `target` back unpublished: the one implementation of discarding.
    fn abandon_target(&mut self, target: Target) {
        if !self.seg.owned_here() {
            return; // the slot is the parent's (see `fork`)
        }
        self.src.abandon(target);
    }
}

impl Drop for FrameSlot<'_> {
    fn drop(&mut self) {
        let target = self.target;
        self.writer.abandon_target(target);
    }
}

/// [`Writer::frame`] and [`Writer::wait_for_room`] as a [`Waitable`].
struct Room<'w> {
    writer: &'w mut Writer,
    /// The futex word (`room` of the table, `tail` of a raw ring) as read before the last
    /// attempt: what the sleep waits to change.
    seen: u32,
    /// Only check for room (`wait_for_room`), do not take it.
    dry_run: bool,
}

impl Waitable for Room<'_> {
    type Output = Option<Target>;
    fn attempt(&mut self) -> Result<Option<Option<Target>>> {
        let w = &mut *self.writer;
        // Read the word *before* checking for room: if a reader releases in between, the
        // futex sees a changed value and does not sleep.
        self.seen = w.src.room_word().load(Ordering::Acquire);
        let found = if self.dry_run {
            // Room may be pinned by a dead reader: look for those before giving up.
            (w.has_room()? || (w.src.free_dead_readers(&w.seg) && w.has_room()?)).then_some(None)
        } else {
            w.take(true)?.map(Some)
        };
        if found.is_some() {
            w.backoff.reset();
        }
        Ok(found)
    }

    fn sleep(&mut self, max: Duration, wake: &[WaitWord<'_>]) {
        let w = &mut *self.writer;
        w.src.sleep_for_room(&w.seg, self.seen, wake, max, &mut w.backoff);
    }

    fn sleeps_on_words(&self) -> bool {
        self.writer.src.sleeps_on_words()
    }

    fn channel(&self) -> &str {
        self.writer.seg.name()
    }
}
