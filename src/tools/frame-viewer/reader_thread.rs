//! The reader thread: attaches (and re-attaches across producer restarts), keeps only the newest
//! frame, and wakes the window thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use shmframes::stats::Stats;
use shmframes::{Cancel, Deadline, Error, Frame, FrameShape, ProducerState, Reader, ReaderOptions};
use winit::event_loop::EventLoopProxy;

/// Why the reader thread woke the window thread.
#[derive(Debug, Clone, Copy)]
pub enum Wake {
    /// A new frame is waiting.
    Frame,
    /// The status (attached, producer state) changed, or a periodic tick.
    Status,
    /// The reader thread stopped on an error (see `Status::error`).
    Fatal,
}

/// What the window shows about the channel.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub attached: bool,
    /// When the reader attached (CLOCK_MONOTONIC ns): frames published before are not measured.
    pub attached_ns: Option<u64>,
    pub state: Option<ProducerState>,
    pub dropped: u64,
    pub error: Option<String>,
}

#[derive(Default)]
struct Inner {
    newest: Option<Frame>,
    status: Status,
    /// Every frame read (shown or skipped): the producer's drops are its sequence gaps.
    read: Stats,
}

/// State shared between the reader thread and the window.
#[derive(Default)]
pub struct Shared {
    inner: Mutex<Inner>,
    pub quit: AtomicBool,
    /// A `Wake::Frame` is on its way and the window has not taken the frame yet: do not send
    /// another (a fast producer would flood the event loop and starve its redraws).
    frame_wake_pending: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest frame, if one came since the last call.
    pub fn take_newest(&self) -> Option<Frame> {
        let f = self.lock().newest.take();
        self.frame_wake_pending.store(false, Ordering::Release);
        f
    }

    pub fn status(&self) -> Status {
        self.lock().status.clone()
    }
}

/// Starts the reader thread.
/// `how`: how blocked reads wake (`--wake`).
pub fn spawn(
    name: String,
    raw: Option<FrameShape>,
    how: shmframes::Wake,
    proxy: EventLoopProxy<Wake>,
) -> Arc<Shared> {
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    std::thread::Builder::new()
        .name("frame-viewer reader".into())
        .spawn(move || {
            if let Err(e) = read_loop(&name, raw, how, &s, &proxy) {
                s.lock().status.error = Some(e.to_string());
                let _ = proxy.send_event(Wake::Fatal);
            }
        })
        .expect("spawn the reader thread");
    shared
}

fn read_loop(
    name: &str,
    raw: Option<FrameShape>,
    how: shmframes::Wake,
    shared: &Arc<Shared>,
    proxy: &EventLoopProxy<Wake>,
) -> Result<(), Error> {
    // Every wait ends within 100 ms of the window closing; while the channel is awaited, the
    // window gets a status tick (it checks its --timeout on those).
    let (s, p) = (shared.clone(), proxy.clone());
    let cancel = Cancel::with_check(Duration::from_millis(100), move || {
        if !s.lock().status.attached {
            let _ = p.send_event(Wake::Status);
        }
        s.quit.load(Ordering::Relaxed)
    });
    let opts = ReaderOptions {
        timeout: Duration::MAX,
        raw,
        follow: true,
        cancel: Some(cancel.clone()),
        ..Default::default()
    };
    let mut reader = loop {
        match Reader::open(name, &opts) {
            Ok(r) => break r,
            Err(Error::ChannelBusy { .. }) => {
                // A UI choice, not a transport retry: show it and look again shortly.
                shared.lock().status.error =
                    Some("another reader is attached; waiting for it to go".into());
                let _ = proxy.send_event(Wake::Status);
                if !cancel.sleep_until(Deadline::after(Duration::from_millis(200))) {
                    return Ok(());
                }
            }
            Err(Error::Interrupted { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
    };
    reader.set_wake(how);
    {
        let mut g = shared.lock();
        g.status.attached = true;
        g.status.attached_ns = Some(shmframes::monotonic_ns());
        g.status.error = None;
        g.status.state = Some(reader.producer_state());
    }
    let _ = proxy.send_event(Wake::Status);
    loop {
        // A bounded read: a producer that ends or dies (followed, so no error) shows in the
        // window within this time.
        let got = match reader.read(Duration::from_millis(100)) {
            Ok(f) => f,
            Err(Error::Interrupted { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let state = reader.producer_state();
        let mut g = shared.lock();
        let changed = g.status.state != Some(state);
        g.status.state = Some(state);
        if changed && matches!(state, ProducerState::Ended | ProducerState::Gone) {
            g.read.restart(); // the next producer counts from 0 again
        }
        if let Some(f) = got {
            g.read.record(f.seq(), 0, 0, f.lost_before());
            g.status.dropped = g.read.dropped();
            // Replacing the previous newest frame releases it: a slow window skips frames.
            g.newest = Some(f);
            drop(g);
            if !shared.frame_wake_pending.swap(true, Ordering::AcqRel)
                && proxy.send_event(Wake::Frame).is_err()
            {
                return Ok(()); // the window is gone
            }
        } else {
            drop(g);
            if proxy.send_event(Wake::Status).is_err() {
                return Ok(());
            }
        }
    }
}
