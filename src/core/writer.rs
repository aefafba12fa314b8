//! The producer end: [`Writer`] creates a channel and publishes frames into it.

use std::time::Duration;

use crate::control::{self, CONSUMER_SLEEPING, PRODUCER_SLEEPING};
use crate::error::{Error, Result, Role};
use crate::format::FrameShape;
use crate::frame::{FrameHeader, MessageKind, FRAME_ALIGN, FRAME_HEADER_LEN};
use crate::ring::{self, Producer, PushError, RingPushError};
use crate::segment::Segment;
use crate::wait::{Cancel, Deadline, Waitable};
use crate::{sys, wait};

/// How to create a channel.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Shape of every frame.
    pub shape: FrameShape,
    /// How many frames the ring must be able to hold at once (at least 1): a reader may fall
    /// this many frames behind before the writer drops or waits. The capacity is rounded up to
    /// a power of two; while the reader keeps up, frames cycle through the first
    /// `buffer_frames` slots (so few, 1 or 2, keep big frames in the CPU cache), and the rest
    /// of the ring is slack a lagging reader may also use.
    pub buffer_frames: u32,
    /// Send header-less payloads (pixels only), exactly like cpp_py_shmbuf's producer, so that
    /// its consumers read the stream unchanged. Requires a packed stride.
    pub raw: bool,
    /// Permission bits of the segment (default `0o600`: only this user may attach).
    pub mode: u32,
    /// Ends this writer's waits for room early with [`Error::Interrupted`]; see [`Cancel`].
    pub cancel: Option<Cancel>,
}

impl WriterOptions {
    /// Packed frames of the given size and format, 4 buffered frames, framed, mode 0600.
    ///
    /// # Errors
    /// [`Error::Shape`] for a size the format cannot have.
    pub fn new(width: u32, height: u32, format: crate::PixelFormat) -> Result<WriterOptions> {
        let shape = FrameShape::packed(width, height, format)?;
        Ok(WriterOptions { shape, buffer_frames: 4, raw: false, mode: 0o600, cancel: None })
    }

    /// Bytes one message of this configuration takes in the ring.
    fn message_len(&self) -> u64 {
        if self.raw {
            ring::PREFIX_LEN as u64 + self.shape.pixel_bytes() as u64
        } else {
            self.shape.framed_message_len() as u64
        }
    }

    /// The data-area capacity these options need: room for `buffer_frames` messages wherever
    /// the ring's end falls. Framed frames never split, so a filler of up to one message minus
    /// 64 bytes may sit at the end: size for it too.
    ///
    /// # Errors
    /// [`Error::Shape`], [`Error::NoBufferFrames`], [`Error::RingTooLarge`].
    pub fn capacity(&self) -> Result<u32> {
        self.shape.validate()?;
        if self.buffer_frames == 0 {
            return Err(Error::NoBufferFrames);
        }
        let msg = self.message_len();
        let mut need = msg * self.buffer_frames as u64;
        if !self.raw {
            need += msg - FRAME_ALIGN as u64;
        }
        ring::capacity_for(need).ok_or(Error::RingTooLarge {
            frames: self.buffer_frames,
            shape: self.shape,
            needed: need,
            limit: ring::MAX_CAPACITY,
        })
    }
}

/// The producer end of a channel. Creating it creates the shared-memory segment; dropping or
/// [`close`](Writer::close)-ing it ends the stream and removes the name.
///
/// ```no_run
/// use shmframes::{PixelFormat, Writer, WriterOptions};
/// let opts = WriterOptions::new(640, 480, PixelFormat::Bgr24)?;
/// let mut writer = Writer::create("demo", &opts)?;
/// if let Some(mut slot) = writer.try_frame()? {     // None: the ring is full, frame dropped
///     slot.pixels().fill(128);                      // draw straight into shared memory
///     slot.publish();
/// }
/// writer.close()?;
/// # Ok::<(), shmframes::Error>(())
/// ```
#[derive(Debug)]
pub struct Writer {
    seg: Segment,
    producer: Producer,
    opts: WriterOptions,
    /// Sequence number of the next frame unless the slot sets its own.
    next_seq: u64,
    /// Frames published so far.
    published: u64,
    /// Raw mode only: a frame that would split at the ring's end is drawn here first.
    staging: Vec<u8>,
    /// Back-off of timed waits for room when no wake-up can come.
    backoff: wait::Backoff,
    closed: bool,
    /// Bytes one message takes in the ring, and a frame's pixel bytes: fixed at creation,
    /// needed on every frame.
    msg_len: u32,
    pixel_bytes: u32,
    /// Ring index and length (prefix included) of the last filler appended: a reader that has
    /// not passed it yet is not behind by the frames its bytes would hold.
    last_filler: Option<(u32, u32)>,
}

impl Writer {
    /// Creates the channel `name`. Fails if a live producer owns the name; replaces a stale
    /// segment left by a dead one.
    pub fn create(name: &str, opts: &WriterOptions) -> Result<Writer> {
        let capacity = opts.capacity()?;
        if opts.raw && opts.shape.stride != opts.shape.row_bytes() {
            return Err(Error::RawNeedsPackedRows { shape: opts.shape });
        }
        let seg = Segment::create(name, capacity, control::initial(!opts.raw), opts.mode)?;
        // SAFETY: we created the segment and hold its producer lock, so we are its only producer.
        let producer = unsafe { Producer::new(*seg.ring()) }.map_err(|e| Error::protocol(seg.name(), e))?;
        Ok(Writer {
            seg,
            producer,
            opts: opts.clone(),
            next_seq: 0,
            published: 0,
            staging: Vec::new(),
            backoff: wait::Backoff::new(),
            closed: false,
            msg_len: opts.message_len() as u32,
            pixel_bytes: opts.shape.pixel_bytes(),
            last_filler: None,
        })
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// Shape of the frames.
    pub fn shape(&self) -> FrameShape {
        self.opts.shape
    }

    /// Data-area capacity in bytes.
    pub fn capacity(&self) -> u32 {
        self.producer.memory().capacity()
    }

    /// Frames published so far.
    pub fn frames_published(&self) -> u64 {
        self.published
    }

    /// Whether a consumer is attached (a system call; call it about once a second, not per frame).
    pub fn reader_attached(&self) -> bool {
        self.seg.consumer_attached()
    }

    /// Bytes published but not yet released by the consumer.
    pub fn backlog_bytes(&mut self) -> Result<u32> {
        self.producer.backlog().map_err(|e| self.protocol(e))
    }

    /// Frames published but not yet released by the consumer (rounded up; an end-of-stream
    /// message counts as one).
    pub fn backlog_frames(&mut self) -> Result<u32> {
        let msg = self.msg_len;
        let mut bytes = self.backlog_bytes()?;
        if let Some((start, len)) = self.last_filler {
            // Unreleased (and published) if it starts in [tail, head) = the backlog's bytes.
            let tail = self.producer.write_index().wrapping_sub(bytes);
            if start.wrapping_sub(tail) < bytes {
                bytes -= len.min(bytes);
            }
        }
        Ok(bytes.div_ceil(msg))
    }

    fn protocol(&self, e: impl Into<crate::error::Violation>) -> Error {
        Error::protocol(self.seg.name(), e)
    }

    /// Whether a frame fits now (reloads the consumer's tail only if needed).
    fn has_room(&mut self) -> Result<bool> {
        let msg = self.msg_len;
        let needed = if self.opts.raw || self.producer.bytes_to_end() >= msg {
            msg
        } else {
            self.producer.bytes_to_end() + msg // filler first
        };
        self.producer.has_free(needed).map_err(|e| self.protocol(e))
    }

    /// A slot for the next frame, or `None` if the ring is full right now (a live source drops
    /// the frame). Nothing is visible to the reader until [`FrameSlot::publish`].
    pub fn try_frame(&mut self) -> Result<Option<FrameSlot<'_>>> {
        if self.closed {
            return Err(Error::Closed { role: Role::Writer, name: self.seg.name().to_owned() });
        }
        if !self.has_room()? {
            return Ok(None);
        }
        let shape = self.opts.shape;
        let name = self.seg.name().to_owned();
        let map_err = |e: RingPushError| Error::protocol(&name, e);
        let (ptr, len) = if self.opts.raw {
            let len = shape.pixel_bytes();
            match self.producer.append_in_place(len) {
                Ok(s) => (s.as_mut_ptr(), s.len()),
                Err(RingPushError::Push(PushError::Full)) => {
                    // Would split at the ring's end: draw into staging, copy at publish.
                    self.staging.resize(len as usize, 0);
                    (std::ptr::null_mut(), len as usize)
                }
                Err(e) => return Err(map_err(e)),
            }
        } else {
            let header =
                FrameHeader { kind: MessageKind::Frame, shape: Some(shape), seq: self.next_seq, capture_ns: 0, publish_ns: 0 };
            self.wrap_early().map_err(map_err)?;
            let payload = self.append_framed(shape.pixel_bytes(), &header)?;
            (payload.as_mut_ptr(), payload.len())
        };
        Ok(Some(FrameSlot { writer: self, ptr, len, capture_ns: None, seq: None }))
    }

    /// Keeps frames in few, cache-hot bytes: pads to the end of the ring and puts the next
    /// frame at offset 0 when the room before the unread frames then still holds every frame
    /// the buffer promises (`buffer_frames`, counting the unread ones), so the promise holds
    /// whatever the reader does next. With a reader that keeps up, frames then cycle through
    /// the first `buffer_frames` slots of the ring instead of all of it: with 2, through two
    /// slots (12 MB at 1080p BGR) that stay in the CPU cache.
    ///
    /// The pad only takes room that is free now. Framed mode only (the filler is ours; raw
    /// peers would read it as a frame).
    fn wrap_early(&mut self) -> Result<(), RingPushError> {
        let msg = self.msg_len;
        let capacity = self.producer.memory().capacity();
        let to_end = self.producer.bytes_to_end();
        if to_end == capacity || to_end < msg {
            return Ok(()); // already at offset 0, or `append_framed` pads anyway
        }
        let free = self.producer.refresh_free()?;
        if free < to_end + msg {
            return Ok(()); // unread frames lie (partly) at the start of the ring
        }
        // Everything unread lies in [tail, head), after `free - to_end` free bytes at the start.
        // Unread messages are all frames of `msg` bytes (a filler always ends the ring).
        let room_at_start = (free - to_end) as u64;
        let unread = (capacity - free) / msg;
        let keep = self.opts.buffer_frames.saturating_sub(unread).max(1);
        if room_at_start >= keep as u64 * msg as u64 {
            self.append_filler()?;
        }
        Ok(())
    }

    /// Appends (uncommitted) a filler message over the rest of the data area.
    fn append_filler(&mut self) -> Result<(), RingPushError> {
        let start = self.producer.write_index();
        let len = self.producer.bytes_to_end();
        let filler = FrameHeader { kind: MessageKind::Filler, shape: None, seq: 0, capture_ns: 0, publish_ns: 0 };
        self.producer.append_pad_to_end(|p| filler.encode(p))?;
        self.last_filler = Some((start, len));
        Ok(())
    }

    /// Appends (uncommitted) a framed message with `pixel_bytes` of pixels and its header, first
    /// padding to the end of the data area if it would not lie there contiguously. The caller
    /// has checked the room (`has_room`, or a free-space check for end of stream).
    fn append_framed(&mut self, pixel_bytes: u32, header: &FrameHeader) -> Result<&mut [u8]> {
        let msg = crate::frame::framed_message_len(pixel_bytes);
        let name = self.seg.name().to_owned();
        let map_err = |e: RingPushError| Error::protocol(&name, e);
        if self.producer.bytes_to_end() < msg {
            self.append_filler().map_err(map_err)?;
        }
        let payload = self.producer.append_in_place(msg - ring::PREFIX_LEN).map_err(map_err)?;
        header.encode(payload);
        Ok(payload)
    }

    /// Like [`try_frame`](Writer::try_frame), but waits (asleep, woken by the reader) until
    /// `deadline` for room (`None`: for ever). `Ok(None)` means the deadline passed.
    ///
    /// # Errors
    /// [`Error::Interrupted`] when the options' [`Cancel`] fired; [`Error::Protocol`] when the
    /// reader broke the ring's indices; [`Error::Closed`].
    pub fn frame(&mut self, deadline: impl Into<Deadline>) -> Result<Option<FrameSlot<'_>>> {
        if self.wait_for_room(deadline)? {
            self.try_frame()
        } else {
            Ok(None)
        }
    }

    /// Waits (asleep, woken by the reader) until `deadline` (`None`: for ever) until a frame
    /// fits. Returns whether it does. Errors as [`frame`](Writer::frame).
    pub fn wait_for_room(&mut self, deadline: impl Into<Deadline>) -> Result<bool> {
        let cancel = self.opts.cancel.clone();
        Ok(wait::wait_for(&mut Room { writer: self, seen: 0 }, deadline.into(), cancel.as_ref())?.is_some())
    }

    /// Copies `pixels` (exactly [`FrameShape::pixel_bytes`]) into the next frame and publishes
    /// it, waiting until `deadline` for room (`None`: for ever; a passed deadline or
    /// `Some(Duration::ZERO)`: drop the frame if the ring is full). Returns whether the frame was
    /// published.
    ///
    /// # Errors
    /// [`Error::WrongFrameSize`], and as [`frame`](Writer::frame).
    pub fn write(&mut self, pixels: &[u8], capture_ns: Option<u64>, deadline: impl Into<Deadline>) -> Result<bool> {
        let expected = self.pixel_bytes as usize;
        if pixels.len() != expected {
            return Err(Error::WrongFrameSize { got: pixels.len(), expected, shape: self.opts.shape });
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

    fn wake_reader(&self) {
        let mem = self.producer.memory();
        wait::wake_if_sleeping(mem.head_word(), mem.reserved(), CONSUMER_SLEEPING);
    }

    /// Ends the stream: an end-of-stream message (framed mode, if it fits), the `CLOSED` flag
    /// (always), a wake-up for a sleeping reader, and removal of the name. The reader still
    /// reads every frame published before.
    pub fn close(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        // The end-of-stream message is a courtesy; the CLOSED flag and the unlink below happen
        // whatever it meets (a full ring, a reader that broke the indices).
        let message = if self.opts.raw { Ok(()) } else { self.append_end_of_stream() };
        control::close(self.producer.memory().reserved());
        self.wake_reader();
        self.seg.unlink_if_ours();
        message
    }

    /// Appends and publishes an end-of-stream message if it fits now (else the `CLOSED` flag
    /// alone ends the stream).
    fn append_end_of_stream(&mut self) -> Result<()> {
        let msg = crate::frame::framed_message_len(0);
        let needed = if self.producer.bytes_to_end() < msg { self.producer.bytes_to_end() + msg } else { msg };
        if self.producer.refresh_free().map_err(|e| self.protocol(e))? >= needed {
            let eos = FrameHeader {
                kind: MessageKind::EndOfStream,
                shape: None,
                seq: self.published,
                capture_ns: 0,
                publish_ns: sys::monotonic_ns(),
            };
            self.append_framed(0, &eos)?;
            self.producer.commit();
        }
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Space for one frame, reserved in the ring (or, rarely in raw mode, in a staging buffer).
/// Draw into [`pixels`](FrameSlot::pixels), then [`publish`](FrameSlot::publish); dropping it
/// unpublished discards the frame.
#[derive(Debug)]
pub struct FrameSlot<'w> {
    writer: &'w mut Writer,
    /// Start of the payload in the ring; null when drawing into `writer.staging`.
    ptr: *mut u8,
    len: usize,
    capture_ns: Option<u64>,
    seq: Option<u64>,
}

impl FrameSlot<'_> {
    /// The frame's pixel bytes (`stride * height`), rows top to bottom, to fill in place.
    pub fn pixels(&mut self) -> &mut [u8] {
        if self.ptr.is_null() {
            return &mut self.writer.staging[..];
        }
        let skip = if self.writer.opts.raw { 0 } else { FRAME_HEADER_LEN };
        let n = self.writer.pixel_bytes as usize;
        assert!(skip + n <= self.len, "slot smaller than its frame");
        // SAFETY: `ptr..ptr+len` is a payload appended but not committed by our producer: free
        // ring space no one else reads or writes until `publish` commits it. The slot holds
        // `&mut Writer`, so no other append can alias it, and `skip + n <= len` by construction
        // (the payload was sized from the same shape).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(skip), n) }
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

    /// Makes the frame visible to the reader (and wakes it if it sleeps). Returns its sequence
    /// number.
    pub fn publish(self) -> u64 {
        let now = sys::monotonic_ns();
        let seq = self.seq();
        let w = &mut *self.writer;
        if w.opts.raw {
            if self.ptr.is_null() {
                // `has_room` proved the room; the split copy cannot fail.
                let staging = std::mem::take(&mut w.staging);
                w.producer.append(&staging).expect("room was checked");
                w.staging = staging;
            }
        } else {
            // SAFETY: the first FRAME_HEADER_LEN bytes of our uncommitted payload (see `pixels`).
            let header = unsafe { std::slice::from_raw_parts_mut(self.ptr, FRAME_HEADER_LEN) };
            FrameHeader::stamp(header, seq, self.capture_ns.unwrap_or(now), now);
        }
        w.producer.commit();
        w.wake_reader();
        w.next_seq = seq.wrapping_add(1);
        w.published += 1;
        std::mem::forget(self);
        seq
    }
}

impl Drop for FrameSlot<'_> {
    fn drop(&mut self) {
        self.writer.producer.abandon();
    }
}

/// How often a writer waiting for room checks whether its reader is still attached.
const READER_CHECK_PERIOD: Duration = Duration::from_secs(1);

/// [`Writer::wait_for_room`] as a [`Waitable`].
struct Room<'w> {
    writer: &'w mut Writer,
    /// The tail word as read before the last room check: the sleep's futex value.
    seen: u32,
}

impl Waitable for Room<'_> {
    type Output = ();
    fn attempt(&mut self) -> Result<Option<()>> {
        let w = &mut *self.writer;
        // Read the tail *before* checking for room: if the reader releases in between, the
        // futex sees a changed value and does not sleep.
        self.seen = w.producer.memory().tail_word().load(std::sync::atomic::Ordering::Acquire);
        if w.has_room()? {
            w.backoff.reset();
            return Ok(Some(()));
        }
        Ok(None)
    }

    fn sleep(&mut self, max: Duration) {
        let w = &mut *self.writer;
        let mem = *w.producer.memory();
        if w.seg.consumer_attached() {
            // Our reader: it wakes us when it releases. Look again after a while anyway, to
            // notice a reader that went away (and stop waiting for its wake-up).
            let max = max.min(READER_CHECK_PERIOD);
            wait::sleep_announced(mem.tail_word(), self.seen, mem.reserved(), PRODUCER_SLEEPING, 0, max);
        } else {
            // No reader, or one that knows nothing of wake-ups (cpp_py_shmbuf's): poll with a
            // bounded back-off so that room is noticed within milliseconds.
            wait::sleep_unannounced(mem.tail_word(), self.seen, &mut w.backoff, max);
        }
    }

    fn channel(&self) -> &str {
        self.writer.seg.name()
    }
}
