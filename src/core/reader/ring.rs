//! The ring transport: the one consumer of a ring (raw channels, cpp_py_shmbuf's producer, and
//! framed channels of older producers without a reader table). Frames are messages of the ring,
//! viewed in place where they are contiguous and copied out where a foreign producer split
//! them; each held frame keeps its message from being given back (the ring's `tail` advances
//! only past released messages, in ring order).

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::held::{Frame, Holder, Pixels};
use super::Transport;
use crate::control::{self, Origin, CONSUMER_SLEEPING, PRODUCER_SLEEPING};
use crate::error::{Error, Result, Violation};
use crate::format::FrameShape;
use crate::frame::{has_magic, FrameHeader, MessageKind, FRAME_HEADER_LEN, FRAME_TAG_LEN};
use crate::ring::{Consumer, Message};
use crate::segment::Segment;
use crate::sys::liveness::Life;
use crate::sys::WaitWord;
use crate::timing::LIVENESS_PERIOD;
use crate::wait::{self, Backoff};

/// A reader of a ring: its attachment (shared with the frames it hands out) and the shape of
/// header-less frames.
#[derive(Debug)]
pub(super) struct RingReader {
    att: Arc<Attachment>,
    raw: Option<FrameShape>,
}

/// One attachment to one segment: the mapping, the consumer role and its held messages.
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
    held: VecDeque<HeldMessage>,
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
struct HeldMessage {
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
            held: VecDeque::new(),
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
        if let Some(l) = st.held.iter_mut().find(|l| l.start == start) {
            l.released = true;
        }
        self.publish_tail(&mut st);
    }

    fn publish_tail(&self, st: &mut ConsumerState) {
        let mut new_tail = None;
        while st.held.front().is_some_and(|l| l.released) {
            new_tail = st.held.pop_front().map(|l| l.end);
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

impl RingReader {
    /// Attaches to `seg` as its one consumer (taking the consumer lock).
    pub(super) fn open(
        seg: Segment,
        origin: Origin,
        raw: Option<FrameShape>,
    ) -> Result<RingReader> {
        Ok(RingReader { att: Arc::new(Attachment::open(seg, origin)?), raw })
    }

    fn next_frame(&self, att: &Arc<Attachment>, st: &mut ConsumerState) -> Result<Option<Frame>> {
        if let Some(detail) = &st.broken {
            return Err(att.protocol(detail.clone()));
        }
        if st.ended {
            return Err(Error::EndOfStream { name: self.att.seg.name().to_owned() });
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
                None if st.ended => {
                    return Err(Error::EndOfStream { name: self.att.seg.name().to_owned() })
                }
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
                let raw_exact = self.raw.is_some_and(|s| s.pixel_bytes() == msg.len());
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
        let Some(shape) = self.raw else {
            return Err(Error::RawWithoutShape { name: self.att.seg.name().to_owned() });
        };
        if msg.len() != shape.pixel_bytes() {
            return Err(Error::RawSizeMismatch {
                name: self.att.seg.name().to_owned(),
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
        let lease: Option<u32> = if matches!(pixels, Pixels::Owned(_)) {
            consume_now(att, st, msg);
            None
        } else {
            st.consumer.advance(msg);
            st.held.push_back(HeldMessage { start: msg.start(), end: msg.end(), released: false });
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
            holder: att.clone(),
            token: lease.map(u64::from),
            pixels,
            shape,
            seq,
            capture_ns,
            publish_ns,
            raw,
            lost_before,
        }
    }
}

impl Transport for RingReader {
    fn seg(&self) -> &Segment {
        &self.att.seg
    }

    fn is_ours(&self) -> bool {
        self.att.is_ours()
    }

    fn is_shared(&self) -> bool {
        false
    }

    fn take(&mut self, _newest: bool) -> Result<Option<Frame>> {
        let att = self.att.clone();
        let mut st = att.lock();
        self.next_frame(&att, &mut st)
    }

    /// Reads what is published, keeping only the newest frame (dropping older ones releases
    /// them). Bounded to one lap, so a fast producer cannot keep us here.
    fn newest(&mut self, newest: Option<Frame>) -> Result<Option<Frame>> {
        let mut newest = newest;
        let capacity = self.att.seg.ring().capacity() as u64;
        let mut skipped = 0u64;
        while skipped <= capacity {
            match self.take(false) {
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

    fn frames_held(&self) -> usize {
        self.att.lock().held.iter().filter(|l| !l.released).count()
    }

    fn dropped(&self) -> u64 {
        self.att.lock().dropped
    }

    fn lag(&self) -> Option<u64> {
        None
    }

    /// A ring's producer has no liveness word: its lock byte is probed.
    fn producer_life(&self) -> Life {
        Life::Unwatched
    }

    fn unread(&self) -> bool {
        matches!(self.att.lock().consumer.peek(), Ok(Some(_)) | Err(_))
    }

    /// The producer may have published its last frames just before dying: they are still to
    /// be read.
    fn unread_after_death(&self) -> bool {
        self.unread()
    }

    fn mark_ended(&self) {
        self.att.lock().ended = true;
    }

    fn sleep(
        &mut self,
        announced: bool,
        left: Duration,
        _wake: &[WaitWord<'_>],
        backoff: &mut Backoff,
    ) {
        let mem = *self.att.seg.ring();
        let read = self.att.lock().consumer.read_index();
        if announced {
            // Our producer wakes us when it publishes; its death is noticed by probing its
            // lock, every LIVENESS_PERIOD.
            let t = left.min(LIVENESS_PERIOD);
            wait::sleep_announced(
                mem.head_word(),
                read,
                mem.reserved(),
                CONSUMER_SLEEPING,
                control::CLOSED,
                t,
            );
        } else {
            wait::sleep_unannounced(mem.head_word(), read, backoff, left);
        }
    }

    fn sleeps_on_words(&self) -> bool {
        false
    }

    /// A ring's reader always waits for the producer's wake-up (or its timed waits).
    fn set_wake(&mut self, _wake: super::Wake) {}

    fn watch_begins(&self) -> Option<u64> {
        None
    }
}

impl Holder for Attachment {
    fn seg(&self) -> &Segment {
        &self.seg
    }

    fn release(&self, token: u64) {
        Attachment::release(self, token as u32);
    }
}

/// Consumes a message that needs no holding (filler, end of stream, copied frames).
fn consume_now(att: &Attachment, st: &mut ConsumerState, msg: &Message) {
    st.consumer.advance(msg);
    st.held.push_back(HeldMessage { start: msg.start(), end: msg.end(), released: true });
    att.publish_tail(st);
}
