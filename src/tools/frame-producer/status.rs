//! The once-a-second status line on stderr.

use std::time::Instant;

use shmframes::{FrameShape, Writer};

/// Per-channel counters and the periodic report.
pub struct Status {
    quiet: bool,
    frame_bytes: u64,
    names: Vec<String>,
    published: Vec<u64>,
    dropped: Vec<u64>,
    attached: Vec<bool>,
    last: Instant,
    last_published: Vec<u64>,
    total_published: u64,
    total_dropped: u64,
    bad_frames: u64,
}

impl Status {
    pub fn new(writers: &[Writer], shape: FrameShape, quiet: bool) -> Status {
        let n = writers.len();
        Status {
            quiet,
            frame_bytes: shape.pixel_bytes() as u64,
            names: writers.iter().map(|w| w.name().to_owned()).collect(),
            published: vec![0; n],
            dropped: vec![0; n],
            attached: writers.iter().map(|w| w.reader_attached()).collect(),
            last: Instant::now(),
            last_published: vec![0; n],
            total_published: 0,
            total_dropped: 0,
            bad_frames: 0,
        }
    }

    /// Which channels had a reader at the last check (refreshed once a second).
    pub fn attached_snapshot(&self) -> Vec<bool> {
        self.attached.clone()
    }

    pub fn published(&mut self, i: usize) {
        self.published[i] += 1;
        self.total_published += 1;
    }

    pub fn dropped(&mut self, i: usize) {
        self.dropped[i] += 1;
        self.total_dropped += 1;
    }

    /// A source frame that could not be decoded (reported for the first few, then counted).
    pub fn bad_frame(&mut self, e: &anyhow::Error) {
        self.bad_frames += 1;
        if self.bad_frames <= 3 || self.bad_frames.is_power_of_two() {
            eprintln!("frame-producer: skipped a bad frame ({} so far): {e:#}", self.bad_frames);
        }
    }

    /// Once a second: refresh reader presence, print the line unless quiet.
    pub fn tick(&mut self, writers: &mut [Writer]) {
        let dt = self.last.elapsed().as_secs_f64();
        if dt < 1.0 {
            return;
        }
        self.last = Instant::now();
        for (i, w) in writers.iter_mut().enumerate() {
            self.attached[i] = w.reader_attached();
            if self.quiet {
                continue;
            }
            let frames = self.published[i] - self.last_published[i];
            self.last_published[i] = self.published[i];
            let readers = w.readers();
            let plural =
                |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            let reader = match (readers.attached, readers.lossless_lag) {
                (0, _) => "no reader".to_owned(),
                (n, None) => format!("{} attached", plural(n as u64, "reader")),
                (n, Some(lag)) => format!(
                    "{} attached, slowest lossless {} behind",
                    plural(n as u64, "reader"),
                    plural(lag, "frame")
                ),
            };
            let held = if readers.slots > 0 && readers.held_slots == readers.slots {
                format!(
                    ", readers hold all {} slots (no room until they release one)",
                    readers.slots
                )
            } else {
                String::new()
            };
            eprintln!(
                // Prefixed by the program's name: in a terminal shared with a reader (make demo
                // without a display), `[name]` alone is the reader's line.
                "frame-producer [{}] {:7.1} fps {:8.1} MB/s  dropped {:6}  {reader}{held}",
                self.names[i],
                frames as f64 / dt,
                (frames * self.frame_bytes) as f64 / dt / 1e6,
                self.dropped[i],
            );
        }
    }

    /// The closing summary.
    pub fn finish(&self, frames: u64) {
        if !self.quiet {
            eprintln!(
                "frame-producer: {frames} frames from the source, {} published, {} dropped; ending the stream",
                self.total_published, self.total_dropped
            );
        }
    }
}
