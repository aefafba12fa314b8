//! Where frames come from, and the pace at which they are produced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmframes::{Cancel, Deadline, FrameShape, PixelFormat};
use shmframes_tools::pattern::TestPattern;

use crate::{camera, images, shape_of, Opts};

/// A frame that was captured (or is to be made), before it is rendered into the ring.
pub struct Captured {
    /// CLOCK_MONOTONIC ns of a camera's capture; `None` for a made frame, captured when it is
    /// published (on its tick).
    pub capture_ns: Option<u64>,
}

/// One of the three sources.
pub enum Source {
    Synthetic(TestPattern),
    Images(images::Images),
    Camera(Box<camera::CameraSource>),
}

impl Source {
    /// Opens the source the options ask for (the synthetic pattern when none is named).
    pub fn open(opts: &Opts, format: PixelFormat) -> anyhow::Result<Source> {
        let (w, h) = opts.size;
        if let Some(index) = opts.camera {
            return Ok(Source::Camera(Box::new(camera::CameraSource::open(
                index, w, h, opts.fps, format,
            )?)));
        }
        let shape = shape_of(w, h, format)?;
        if let Some(path) = &opts.image {
            return Ok(Source::Images(images::Images::open(path, shape)?));
        }
        Ok(Source::Synthetic(TestPattern::new(shape)))
    }

    pub fn shape(&self) -> FrameShape {
        match self {
            Source::Synthetic(p) => p.shape(),
            Source::Images(i) => i.shape(),
            Source::Camera(c) => c.shape(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Synthetic(_) => "test pattern".into(),
            Source::Images(i) => i.describe(),
            Source::Camera(c) => c.describe(),
        }
    }

    /// A camera delivers frames at its own rate; the others are paced by --fps.
    pub fn paces_itself(&self) -> bool {
        matches!(self, Source::Camera(_))
    }

    /// Waits for the next frame (a camera blocks until one arrives). `None` once stopped.
    pub fn capture(&mut self, stop: &AtomicBool) -> anyhow::Result<Option<Captured>> {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if let Source::Camera(c) = self {
            c.grab()?;
            return Ok(Some(Captured { capture_ns: Some(shmframes::monotonic_ns()) }));
        }
        Ok(Some(Captured { capture_ns: None }))
    }

    /// Renders (draws, copies or decodes) the frame last captured into `out`, the ring slot.
    /// `millis`: the frame's time since the stream began (the pattern's clock).
    pub fn render(&mut self, seq: u64, millis: u64, out: &mut [u8]) -> anyhow::Result<()> {
        match self {
            Source::Synthetic(p) => {
                p.render(seq, millis, out);
                Ok(())
            }
            Source::Images(i) => i.render(seq, out),
            Source::Camera(c) => c.decode_into(out),
        }
    }
}

/// Keeps a steady frame rate without drifting, and without bursts after a stall.
pub struct Pacer {
    period: Option<Duration>,
    next: Instant,
    cancel: Cancel,
}

impl Pacer {
    /// `fps == 0` or a self-paced source: no pacing. `cancel` ends a wait (Ctrl+C).
    pub fn new(fps: f64, source_paces_itself: bool, cancel: Cancel) -> Pacer {
        let period =
            (fps > 0.0 && !source_paces_itself).then(|| Duration::from_secs_f64(1.0 / fps));
        Pacer { period, next: Instant::now(), cancel }
    }

    /// The next frame's due time, in milliseconds since `start` (now, when unpaced or late).
    pub fn due(&self, start: Instant) -> u64 {
        let now = Instant::now();
        match self.period {
            Some(_) if self.next > now => self.next - start,
            _ => now - start,
        }
        .as_millis() as u64
    }

    /// Sleeps until the next frame is due. Returns `false` if cancelled.
    pub fn wait(&mut self) -> bool {
        let Some(period) = self.period else { return !self.cancel.is_cancelled() };
        if !self.cancel.sleep_until(Deadline::at(self.next)) {
            return false;
        }
        let now = Instant::now();
        self.next += period;
        if self.next + period < now {
            self.next = now + period; // fell behind by more than a frame: do not burst
        }
        true
    }
}
