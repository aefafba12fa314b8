//! The consumer end: [`Reader`] attaches to a channel and hands out [`Frame`]s in place.
//!
//! # Many readers
//!
//! A framed channel serves several readers at once: each takes a place in the channel's reader
//! table and views every frame in place, in the slot the producer wrote it to once (see the
//! `table` module for the protocol). A raw channel (cpp_py_shmbuf's ring, or a framed channel
//! of an older producer) has one consumer.
//!
//! # Transports
//!
//! One [`Reader`] type, one implementation per transport behind the private [`Transport`]
//! trait, chosen once when the reader attaches:
//! - `slots.rs`: a place in a framed channel's reader table (our producers);
//! - `ring.rs`: the one consumer of a ring (raw channels, cpp_py_shmbuf's producer, framed
//!   channels of older producers).
//!
//! What stays here is what every transport shares: opening (and its retry policy), the
//! producer's state (live, ended, gone; sticky once terminal), following a restarted producer,
//! and the wait loop. Held frames are in `held.rs`.
use std::time::{Duration, Instant};

use crate::control::{self, Origin};
use crate::error::{Error, Result, Role};
use crate::format::FrameShape;
use crate::segment::Segment;
use crate::sys::liveness::Life;
use crate::sys::WaitWord;
use crate::table::Start;
use crate::timing::{
    FOLLOW_PERIOD, LIVENESS_PERIOD, OPEN_FIRST_PAUSE, OPEN_MAX_PAUSE, SETUP_GRACE,
};
use crate::wait::{self, Backoff, Cancel, Deadline, Waitable};

mod anticipate;
mod held;
mod ring;
mod slots;

pub use held::Frame;
pub(crate) use slots::slot_frame;

use ring::RingReader;
use slots::SlotReader;

/// How to attach.
#[derive(Clone, Debug, Default)]
pub struct ReaderOptions {
    /// How long to wait for the channel to appear (`ZERO`: fail at once if it does not exist).
    pub timeout: Duration,
    /// Shape of header-less (raw) frames, e.g. from cpp_py_shmbuf's producer. Framed channels
    /// describe their frames themselves: giving a shape for one is an error
    /// ([`Error::RawOnFramed`]).
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

/// How a blocked [`Reader::read`] wakes for the next frame of a framed channel (set with
/// [`Reader::set_wake`]).
///
/// [`Anticipate`](Wake::Anticipate) (the default): a reader that has seen a few frames at a
/// steady rate sleeps in the kernel until just before the next one is due, then watches for it
/// for a short, self-tuning window (at most 1.5 % of the frame interval). A frame that comes
/// early still wakes it, a late one is waited for in the kernel as usual, irregular producers are
/// never watched for, a watch that loses its CPU to other processes backs off, and a producer
/// that falls silent costs one early wake-up, then none. On the project's VM, behind a 30 fps
/// `frame-producer`, `frame-stats` held each frame 8-11 us after its publication (p50) against
/// 94-98 us with `Publish`, and a Python reader 23-26 us against 144-147 us at 0.6 % of a core
/// (`docs/performance.md`). [`Publish`](Wake::Publish) sleeps until the producer's wake-up:
/// for a machine where every CPU cycle counts more than latency. Raw channels always wait for
/// the producer's wake-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wake {
    /// Wake just before a steady producer's next frame is due.
    #[default]
    Anticipate,
    /// Wake only when the producer publishes.
    Publish,
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

/// What a reader reads from: one implementation per transport (see the module docs). The
/// reader calls these without knowing which it has; each is chosen once, at attach.
trait Transport: std::fmt::Debug + Send {
    /// The segment read.
    fn seg(&self) -> &Segment;
    /// Whether our producer made it: it takes a lock, wakes sleepers, ends streams.
    fn is_ours(&self) -> bool;
    /// Whether this is a place in a reader table (`false`: the one consumer of a ring).
    fn is_shared(&self) -> bool;
    /// The next frame (with `newest`, the newest) if one is published.
    fn take(&mut self, newest: bool) -> Result<Option<Frame>>;
    /// The newest frame published, or `newest` if there is none newer; errors only when there
    /// is no frame to hand out (else they come with the next call).
    fn newest(&mut self, newest: Option<Frame>) -> Result<Option<Frame>>;
    /// Frames held now by this reader's frames.
    fn frames_held(&self) -> usize;
    /// Frames lost (see [`Reader::dropped`]).
    fn dropped(&self) -> u64;
    /// Frames published and not read yet, where the transport counts them.
    fn lag(&self) -> Option<u64>;
    /// The producer's liveness word as the kernel marks it (`Unwatched`: probe its lock).
    fn producer_life(&self) -> Life;
    /// Whether something published is still unread (or unreadable: an error to report).
    fn unread(&self) -> bool;
    /// Whether frames a producer published just before dying may still be read.
    fn unread_after_death(&self) -> bool;
    /// Notes that the stream ended (the CLOSED flag was seen and everything read).
    fn mark_ended(&self);
    /// Sleeps until a frame may be there, at most `left`: announced to our producer (which
    /// wakes us) or, with `announced` false, a timed wait on a producer that wakes nobody.
    fn sleep(
        &mut self,
        announced: bool,
        left: Duration,
        wake: &[WaitWord<'_>],
        backoff: &mut Backoff,
    );
    /// Whether an announced sleep also wakes on the `wake` words (a cancel needs no period).
    fn sleeps_on_words(&self) -> bool;
    /// How blocked reads wake, where the transport can anticipate frames.
    fn set_wake(&mut self, wake: Wake);
    /// When a blocked read would begin watching for the next frame, if it anticipates it.
    fn watch_begins(&self) -> Option<u64>;
}

/// Attaches to `seg` with the transport its producer's extension version says.
fn attach(seg: Segment, opts: &ReaderOptions, wake: Wake) -> Result<Box<dyn Transport>> {
    let origin = control::origin(seg.ring().reserved()).map_err(|found| {
        Error::protocol(seg.name(), crate::error::Violation::ExtensionVersion { found })
    })?;
    if opts.raw.is_some() && matches!(origin, Origin::Ours { framed: true, .. }) {
        return Err(Error::RawOnFramed { name: seg.name().to_owned() });
    }
    Ok(match origin {
        Origin::Ours { table: true, .. } => {
            Box::new(SlotReader::open(seg, opts.lossless, opts.start, wake)?)
        }
        _ => Box::new(RingReader::open(seg, origin, opts.raw)?),
    })
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
    src: Box<dyn Transport>,
    backoff: Backoff,
    last_liveness: Instant,
    state: ProducerState,
    /// Following: the retry policy for the next producer's segment.
    switch_retry: OpenRetry,
    /// How blocked reads wake (kept for the next producer's channel when following).
    wake: Wake,
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
        let src = attach(seg, opts, Wake::default())?;
        let state = if src.is_ours() { ProducerState::Live } else { ProducerState::Unknown };
        Ok(Reader {
            name,
            opts: opts.clone(),
            src,
            backoff: Backoff::new(),
            last_liveness: Instant::now(),
            state,
            switch_retry: OpenRetry::default(),
            wake: Wake::default(),
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

    /// How blocked reads wake for the next frame: [`Wake::Anticipate`] (the default) or
    /// [`Wake::Publish`]. Applies from the next read on, and to the channels of later
    /// producers when following.
    pub fn set_wake(&mut self, wake: Wake) {
        self.wake = wake;
        self.src.set_wake(wake);
    }

    /// How blocked reads wake (see [`set_wake`](Reader::set_wake)).
    pub fn wake(&self) -> Wake {
        self.wake
    }

    /// When a blocked read would begin watching for the next frame (CLOCK_MONOTONIC ns, see
    /// [`Wake::Anticipate`]); `None` when it is not anticipated (too few frames yet, an
    /// irregular producer, [`Wake::Publish`], a raw channel). For a binding whose own path to
    /// the caller goes cold while it sleeps (Python): read until then, warm that path up (make
    /// a throwaway object of what a frame becomes), then read on. Changes nothing.
    pub fn watch_begins(&self) -> Option<u64> {
        self.src.watch_begins()
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
        match self.src.producer_life() {
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
        self.src.frames_held()
    }

    /// Frames this reader lost: overwritten before it read them (it fell behind by more than
    /// the channel holds, or, lossless, behind a producer that could not wait), counted since
    /// it attached to the current producer. Frames skipped by [`latest`](Reader::latest) are
    /// not lost: it chose to skip them. On a ring (raw or older framed channels) these are the
    /// gaps in the frames' sequence numbers.
    pub fn dropped(&self) -> u64 {
        self.src.dropped()
    }

    /// Frames published that this reader has not read yet (framed channels; `None` on a ring).
    pub fn lag(&self) -> Option<u64> {
        self.src.lag()
    }

    /// Whether this reader has a place in a framed channel's reader table (`false`: the one
    /// consumer of a ring).
    pub fn is_shared(&self) -> bool {
        self.src.is_shared()
    }

    /// The next frame if one is published, without waiting.
    ///
    /// `Err(EndOfStream)` once the producer ended the stream and every frame was read.
    pub fn try_read(&mut self) -> Result<Option<Frame>> {
        self.take(false)
    }

    /// The next frame (or with `newest`, the newest one) if one is published.
    fn take(&mut self, newest: bool) -> Result<Option<Frame>> {
        self.checked(|src| src.take(newest))
    }

    /// Runs one read of the transport, after the checks every read makes, noting an end of
    /// stream in the producer's state.
    fn checked(
        &mut self,
        read: impl FnOnce(&mut dyn Transport) -> Result<Option<Frame>>,
    ) -> Result<Option<Frame>> {
        self.src.seg().check_owner(Role::Reader)?;
        // Terminal states are sticky: once a death was reported, every later call says so at
        // once (a retry loop must not hang on a producer that will never come back). End of
        // stream is sticky through the stream itself. Following readers go on to the next
        // producer instead (see `attempt_read`).
        if self.state == ProducerState::Gone && !self.opts.follow {
            return Err(Error::ProducerGone { name: self.name.clone() });
        }
        let r = read(&mut *self.src);
        if let Err(Error::EndOfStream { .. }) = r {
            self.state = ProducerState::Ended;
        }
        r
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
        let dead = match self.src.producer_life() {
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
            if self.src.unread_after_death() {
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
        self.src.mark_ended();
        if self.opts.follow {
            Ok(())
        } else {
            Err(Error::EndOfStream { name: self.name.clone() })
        }
    }

    /// Whether something published is still unread (or unreadable: an error to report).
    fn unread(&self) -> bool {
        self.src.unread()
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
        let src = match attach(seg, &self.opts, self.wake) {
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
        match self.state {
            ProducerState::Live => self.src.sleep(true, left, wake, &mut self.backoff),
            ProducerState::Unknown => self.src.sleep(false, left, wake, &mut self.backoff),
            // Following a dead or ended producer: look for its successor a few times a second.
            ProducerState::Gone | ProducerState::Ended => {
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
        self.checked(|src| src.newest(newest))
    }
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
        self.0.state == ProducerState::Live && self.0.src.sleeps_on_words()
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
