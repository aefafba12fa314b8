//! `frame-viewer`: shows a shmframes channel in a window (winit + pixels).
//!
//! A reader thread takes frames as they come and keeps only the newest (older ones are released
//! at once, so a slow display skips frames and never holds the producer back). The window thread
//! converts the newest frame to RGBA, scaled to the window with the aspect ratio kept, and
//! presents it.

mod reader_thread;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::Parser;
use pixels::{Pixels, PixelsBuilder, SurfaceTexture};
use shmframes::stats::Stats;
use shmframes::{FrameShape, PixelFormat, ProducerState};
use shmframes_tools::display::Scaler;
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::{ElementState, KeyEvent, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Fullscreen, Window, WindowId};

use crate::reader_thread::{Shared, Wake};

/// Shows a shmframes channel in a window (winit + pixels), always its newest frame.
///
/// Keys: q or Esc quit, f full screen, space pause. The title shows the shape, frame rate,
/// latency from publish to present and frames dropped; it says what the viewer waits for when
/// no frame comes, and follows the producer across restarts.
#[derive(Parser, Debug)]
#[command(
    name = "frame-viewer",
    version,
    after_help = "Examples:\n  \
    frame-viewer                      the channel \"shm_video\"\n  \
    frame-viewer cam --frames 300     show 300 frames of \"cam\", then exit 0\n  \
    frame-viewer legacy --raw 640x480 header-less frames from a cpp_py_shmbuf producer"
)]
struct Opts {
    /// Channel name.
    #[arg(default_value = "shm_video")]
    name: String,
    /// Exit 0 after showing N frames.
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Header-less frames of this size (cpp_py_shmbuf's producer), WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", value_parser = shmframes::format::parse_size)]
    raw: Option<(u32, u32)>,
    /// Pixel format of --raw frames.
    #[arg(long, default_value = "bgr", value_parser = |s: &str| s.parse::<PixelFormat>())]
    raw_format: PixelFormat,
    /// Give up (exit 1) after S seconds without a frame and without a live producer: no
    /// channel, or its producer ended or died and no new one came (the window says what it
    /// waits for). A live producer is waited for however slow; `inf` waits for ever.
    #[arg(long, value_name = "S", default_value = "10", value_parser = shmframes_tools::parse_secs, allow_negative_numbers = true)]
    timeout: Duration,
    /// How a blocked read wakes: anticipate (just before a steady producer's next frame is
    /// due) or publish (always sleep until the producer's wake-up: no watching, slower).
    #[arg(long, value_name = "HOW", default_value = "anticipate", value_parser = shmframes_tools::parse_wake)]
    wake: shmframes::Wake,
}

fn main() -> ExitCode {
    match run(Opts::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("frame-viewer: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Opts) -> anyhow::Result<()> {
    let raw = match opts.raw {
        Some((w, h)) => Some(FrameShape::packed(w, h, opts.raw_format)?),
        None => None,
    };
    shmframes::validate_name(&opts.name)?;
    // Without a display winit's error names its own source file: say what to do instead.
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        anyhow::bail!(
            "no display: neither DISPLAY nor WAYLAND_DISPLAY is set; run frame-viewer in a desktop \
             session (or with ssh -X, or under xvfb-run), or read the channel headless with \
             frame-stats {}",
            opts.name
        );
    }
    let event_loop = EventLoop::<Wake>::with_user_event().build().map_err(|_| {
        anyhow!(
            "cannot open a window on display {:?}: is the X server (or Wayland compositor) running \
             and yours to use?",
            std::env::var("DISPLAY").or_else(|_| std::env::var("WAYLAND_DISPLAY")).unwrap_or_default()
        )
    })?;
    let shared = reader_thread::spawn(opts.name.clone(), raw, opts.wake, event_loop.create_proxy());
    let mut app = App::new(opts, shared.clone());
    let run = event_loop.run_app(&mut app);
    shared.quit.store(true, Ordering::Relaxed);
    run.context("the window's event loop failed")?;
    // Frames shown, with their latency from publish to present; drops are what the producer
    // dropped (gaps in what the reader thread read), not frames the window skipped.
    eprintln!(
        "frame-viewer: showed {}; dropped by the producer {}",
        app.stats.summary(),
        shared.status().dropped
    );
    match app.outcome {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

/// What the viewer is waiting for, when it is not showing a live stream (the title says it, and
/// the window draws it over the picture).
fn status_message(st: &reader_thread::Status) -> Option<String> {
    match (&st.error, st.state, st.attached) {
        (Some(e), _, _) => Some(e.clone()),
        (None, _, false) => Some("waiting for the channel".to_owned()),
        (None, Some(ProducerState::Gone), _) => {
            Some("producer gone, waiting for a new one".to_owned())
        }
        (None, Some(ProducerState::Ended), _) => {
            Some("stream ended, waiting for a new one".to_owned())
        }
        _ => None,
    }
}

struct App {
    opts: Opts,
    shared: Arc<Shared>,
    window: Option<Arc<Window>>,
    pixels: Option<Pixels<'static>>,
    size: PhysicalSize<u32>,
    scaler: Scaler,
    paused: bool,
    /// Frames shown, and their latency from publish to present (frames published before the
    /// reader attached are shown, not measured).
    stats: Stats,
    /// The attach instant `stats` measures from.
    stats_since: Option<u64>,
    /// Frames shown (for --frames).
    shown: u64,
    last_frame: Instant,
    current: Option<(FrameShape, u64)>,
    /// The reader status the title shows: (attached, producer state, error).
    title_status: Option<(bool, Option<ProducerState>, Option<String>)>,
    outcome: Option<anyhow::Result<()>>,
    /// Draws the status into the window.
    painter: shmframes_tools::text::TextPainter,
    /// The picture without the status drawn over it, kept while a status is shown: redrawn
    /// from, so the text never piles up and goes away when the status clears.
    clean: Option<Vec<u8>>,
}

impl App {
    fn new(opts: Opts, shared: Arc<Shared>) -> App {
        App {
            opts,
            shared,
            window: None,
            pixels: None,
            size: PhysicalSize::new(0, 0),
            scaler: Scaler::new(),
            paused: false,
            stats: Stats::new(),
            stats_since: None,
            shown: 0,
            last_frame: Instant::now(),
            current: None,
            title_status: None,
            outcome: None,
            painter: shmframes_tools::text::TextPainter::new(),
            clean: None,
        }
    }

    /// Stops with `e`: in the window's title (its last state, for a desktop session without a
    /// console), then on the console as the process exits 1.
    fn fail(&mut self, el: &ActiveEventLoop, e: anyhow::Error) {
        if let Some(w) = &self.window {
            w.set_title(&format!("{}: error: {e:#}", self.opts.name));
        }
        self.outcome = Some(Err(e));
        el.exit();
    }

    fn create(&mut self, el: &ActiveEventLoop) -> anyhow::Result<()> {
        let attrs = Window::default_attributes()
            .with_title(format!("{}: waiting for the channel", self.opts.name))
            .with_inner_size(PhysicalSize::new(1280u32, 720u32));
        let window = Arc::new(el.create_window(attrs).context("cannot create a window")?);
        let size = window.inner_size();
        let surface = SurfaceTexture::new(size.width.max(1), size.height.max(1), window.clone());
        // Vulkan, Metal or DX12 (not GL, which does not work under Xvfb); WGPU_BACKEND overrides.
        let backends =
            pixels::wgpu::Backends::from_env().unwrap_or(pixels::wgpu::Backends::PRIMARY);
        let pixels = PixelsBuilder::new(size.width.max(1), size.height.max(1), surface)
            .wgpu_backend(backends)
            .enable_vsync(false)
            .build()
            .map_err(|e| {
                anyhow!(
                    "cannot draw in the window: {e}. No usable GPU adapter was found: install Vulkan \
                     drivers (Debian: mesa-vulkan-drivers libvulkan1; they include a CPU renderer)"
                )
            })?;
        self.size = size;
        self.window = Some(window);
        self.pixels = Some(pixels);
        Ok(())
    }

    fn resize(&mut self, size: PhysicalSize<u32>) -> anyhow::Result<()> {
        if size.width == 0 || size.height == 0 {
            return Ok(()); // minimised
        }
        if let Some(p) = self.pixels.as_mut() {
            p.resize_surface(size.width, size.height).context("cannot resize the surface")?;
            p.resize_buffer(size.width, size.height).context("cannot resize the buffer")?;
        }
        self.size = size;
        // Redraw the last frame at the new size only when a new one comes; meanwhile the
        // buffer is black.
        Ok(())
    }

    /// Shows the newest frame, if there is one and we are not paused.
    fn draw(&mut self, el: &ActiveEventLoop) -> anyhow::Result<()> {
        let Some(mut pixels) = self.pixels.take() else { return Ok(()) };
        let r = self.draw_into(el, &mut pixels);
        self.pixels = Some(pixels);
        r
    }

    fn draw_into(
        &mut self,
        el: &ActiveEventLoop,
        pixels: &mut Pixels<'static>,
    ) -> anyhow::Result<()> {
        let frame = if self.paused { None } else { self.shared.take_newest() };
        let fits =
            pixels.frame().len() == (self.size.width as usize * self.size.height as usize * 4);
        if let Some(frame) = frame {
            let (w, h) = (self.size.width, self.size.height);
            if fits {
                self.scaler.render(frame.pixels(), &frame.shape(), pixels.frame_mut(), w, h);
                self.clean = None;
                self.draw_status(pixels);
            }
            pixels.render().context("cannot present the frame")?;
            let since = self.shared.status().attached_ns;
            if since.is_some() && since != self.stats_since {
                // (Re)attached: measure from then. The run so far stays in the summary's
                // frame count only through `shown`.
                self.stats = Stats::since(since.unwrap_or(0));
                self.stats_since = since;
            }
            self.shown += 1;
            self.stats.record(
                frame.seq(),
                frame.publish_ns(),
                shmframes::monotonic_ns(),
                frame.lost_before(),
            );
            self.current = Some((frame.shape(), frame.seq()));
            drop(frame); // released: the producer may reuse its bytes
            self.last_frame = Instant::now();
            if self.opts.frames.is_some_and(|n| self.shown >= n) {
                self.outcome = Some(Ok(()));
                el.exit();
            }
        } else {
            if fits {
                // Back to the picture as it was before any status was drawn over it.
                if let Some(clean) = self.clean.as_ref().filter(|c| c.len() == pixels.frame().len())
                {
                    pixels.frame_mut().copy_from_slice(clean);
                }
                self.draw_status(pixels);
            }
            pixels.render().context("cannot present")?;
        }
        Ok(())
    }

    /// Draws the status (if any) over the picture in `pixels`, as the title says it, keeping
    /// the picture as it was without it (see `clean`).
    fn draw_status(&mut self, pixels: &mut Pixels<'static>) {
        let Some(message) = status_message(&self.shared.status()) else {
            self.clean = None;
            return;
        };
        if self.clean.as_ref().is_none_or(|c| c.len() != pixels.frame().len()) {
            self.clean = Some(pixels.frame().to_vec());
        }
        let (w, h) = (self.size.width, self.size.height);
        let first = format!("{}: {message}", self.opts.name);
        let px = (h as f32 / 24.0).clamp(14.0, 40.0);
        self.painter.draw(pixels.frame_mut(), w, h, &[&first], px);
    }

    /// Updates the title once a second, or at once (`force`) when what the reader knows
    /// changed.
    fn update_title(&mut self, force: bool) {
        let st = self.shared.status();
        let seen = (st.attached, st.state, st.error.clone());
        let changed = self.title_status.as_ref() != Some(&seen);
        let due = (force && changed) || self.stats.window_due();
        if !due {
            return;
        }
        self.title_status = Some(seen);
        let Some(window) = self.window.as_ref() else { return };
        let shown = self.stats.take_window();
        let state = status_message(&st).map_or(String::new(), |m| format!(" - {m}"));
        let title = match self.current {
            Some((shape, seq)) => format!(
                "{} - {shape} - {:.1} fps - latency {} - dropped {} - #{seq}{}{state}",
                self.opts.name,
                shown.fps,
                shown
                    .latency_p50_ns
                    .map_or("-".to_owned(), |l| format!("{:.2} ms", l as f64 / 1e6)),
                st.dropped,
                if self.paused { " - paused" } else { "" },
            ),
            None => format!("{}{state}", self.opts.name),
        };
        window.set_title(&title);
    }

    fn key(&mut self, el: &ActiveEventLoop, key: &Key) {
        match key {
            Key::Named(NamedKey::Escape) => el.exit(),
            Key::Character(c) if c.eq_ignore_ascii_case("q") => el.exit(),
            Key::Character(c) if c.eq_ignore_ascii_case("f") => {
                if let Some(w) = self.window.as_ref() {
                    let full = w.fullscreen().is_some();
                    w.set_fullscreen(if full { None } else { Some(Fullscreen::Borderless(None)) });
                }
            }
            Key::Named(NamedKey::Space) => {
                self.paused = !self.paused;
                self.last_frame = Instant::now(); // --timeout counts from here again
                self.update_title(true);
            }
            _ => {}
        }
    }
}

impl ApplicationHandler<Wake> for App {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.window.is_none() {
            if let Err(e) = self.create(el) {
                self.fail(el, e);
            }
        }
    }

    fn user_event(&mut self, el: &ActiveEventLoop, wake: Wake) {
        match wake {
            Wake::Frame => {
                if let Some(w) = self.window.as_ref() {
                    w.request_redraw();
                }
            }
            Wake::Status => {
                self.update_title(true);
                if let Some(w) = &self.window {
                    w.request_redraw(); // the status drawn in the window
                }
            }
            Wake::Fatal => {
                let e =
                    self.shared.status().error.unwrap_or_else(|| "the reader stopped".to_owned());
                self.fail(el, anyhow!(e));
            }
        }
        let t = self.opts.timeout;
        {
            let st = self.shared.status();
            // (Paused, no frame is expected; a live producer is waited for however slow.)
            let live = st.attached && st.state == Some(ProducerState::Live) && st.error.is_none();
            if !self.paused && !live && self.last_frame.elapsed() > t {
                // Why, as the reader thread last knew it.
                let why = match (&st.error, st.attached, st.state) {
                    (Some(e), _, _) => e.clone(),
                    (None, false, _) => format!(
                        "no channel named {:?} exists (start its producer, or check the name: frame-stats --list)",
                        self.opts.name
                    ),
                    (None, true, Some(ProducerState::Gone)) => "its producer is gone (killed or crashed), and no new one came".to_owned(),
                    (None, true, Some(ProducerState::Ended)) => "its producer ended the stream, and no new one came".to_owned(),
                    (None, true, _) => "the producer publishes nothing".to_owned(),
                };
                let e = anyhow!(
                    "no frame from channel {:?} for {:.1} s: {why}",
                    self.opts.name,
                    t.as_secs_f64()
                );
                self.fail(el, e);
            }
        }
        self.update_title(false);
    }

    fn window_event(&mut self, el: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        let r = match event {
            WindowEvent::CloseRequested => {
                el.exit();
                Ok(())
            }
            WindowEvent::Resized(size) => self.resize(size),
            WindowEvent::RedrawRequested => self.draw(el),
            WindowEvent::KeyboardInput {
                event: KeyEvent { logical_key, state: ElementState::Pressed, .. },
                ..
            } => {
                self.key(el, &logical_key);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = r {
            self.fail(el, e);
        }
    }
}
