//! `frame-producer`: camera, synthetic or image frames into one or more shmframes channels.

mod camera;
mod images;
mod source;
mod status;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use shmframes::{Cancel, Deadline, FrameShape, FrameSlot, PixelFormat, Writer, WriterOptions};

use crate::source::Source;
use crate::status::Status;

/// Publishes live video frames (camera, test pattern or images) into shared memory.
///
/// Readers pick them up in place: `python -m shmframes.view`, `frame-viewer`, `frame-stats`,
/// your own Python (`import shmframes`) or Rust code, and, with --raw, consumers written for
/// cpp_py_shmbuf (an earlier C++/Python shared-memory ring whose protocol shmframes speaks byte
/// for byte). Ctrl+C or SIGTERM ends the stream cleanly.
#[derive(Parser, Debug)]
#[command(
    name = "frame-producer",
    version,
    after_help = "Examples:\n  \
    frame-producer --camera 0                          the first camera, 1080p BGR, into \"shm_video\"\n  \
    frame-producer --synthetic --fps 60 --size 1280x720  a moving test pattern (the default source)\n  \
    frame-producer --image photos/ --fps 1             a folder of images, one a second, looping\n  \
    frame-producer --name cam --when-full wait         never drop a frame a lossless reader needs\n  \
    frame-producer --list-cameras"
)]
#[command(group = clap::ArgGroup::new("source").args(["camera", "synthetic", "image"]))]
struct Opts {
    /// Capture from the camera with this index (V4L2 /dev/videoN on Linux).
    #[arg(long, value_name = "INDEX")]
    camera: Option<u32>,

    /// A moving test pattern (the default when no source is given).
    #[arg(long)]
    synthetic: bool,

    /// A still image or a folder of images (PNG, JPEG, BMP, WebP), scaled to --size, looping.
    #[arg(long, value_name = "PATH")]
    image: Option<std::path::PathBuf>,

    /// Channel name; repeat it to publish every frame to several channels.
    #[arg(long = "name", value_name = "NAME", default_value = "shm_video")]
    names: Vec<String>,

    /// Frame size, WIDTHxHEIGHT (a camera uses its closest supported size).
    #[arg(long, value_name = "WxH", default_value = "1920x1080", value_parser = shmframes::format::parse_size)]
    size: (u32, u32),

    /// Frames per second; fractional allowed (0.1 = one frame every 10 s); 0 = as fast as possible.
    #[arg(long, value_name = "F", default_value_t = 30.0, value_parser = parse_fps, allow_negative_numbers = true)]
    fps: f64,

    #[arg(long, default_value = "bgr", value_parser = parse_rgb_format,
          help = format!("Pixel format of the published frames: {}", PixelFormat::rgb_family_names()))]
    format: PixelFormat,

    /// Stop after N frames from the source and exit 0 (with --when-full wait and one channel,
    /// all N are delivered to lossless readers).
    #[arg(long, value_name = "N")]
    frames: Option<u64>,

    /// Frames the channel keeps for readers that fall behind: 1 to 31 (framed; a channel has
    /// at most 32 slots), 1 to 4096 with --raw.
    #[arg(long, value_name = "K", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=RAW_MAX_BUFFER_FRAMES as i64))]
    buffer_frames: u32,

    /// Readers a channel serves at once (framed channels; each costs 64 bytes).
    #[arg(long, value_name = "N", default_value_t = shmframes::DEFAULT_MAX_READERS,
          value_parser = clap::value_parser!(u32).range(1..=shmframes::MAX_READERS as i64))]
    max_readers: u32,

    /// When there is no room: drop (live: never wait; a lossless reader that lags loses frames,
    /// and counts them), or wait for lossless readers (and, raw, for the consumer); with one
    /// channel, wait also publishes nothing until a reader attaches.
    #[arg(long, value_enum, default_value_t = WhenFull::Drop)]
    when_full: WhenFull,

    /// Header-less payloads exactly as cpp_py_shmbuf's producer writes them (their consumers
    /// expect BGR: keep --format bgr for them).
    #[arg(long)]
    raw: bool,

    /// Permission bits of the channel, octal (default 600: only your user can attach).
    #[arg(long, value_name = "OCTAL", default_value = "600", value_parser = parse_mode)]
    mode: u32,

    /// No status line on stderr.
    #[arg(long, short)]
    quiet: bool,

    /// List the cameras and exit.
    #[arg(long)]
    list_cameras: bool,
}

/// The most `--buffer-frames` of a raw channel (a ring of messages, no slot table).
const RAW_MAX_BUFFER_FRAMES: u32 = 4096;

/// The most `--buffer-frames` of a framed channel: one slot stays free for the producer.
const FRAMED_MAX_BUFFER_FRAMES: u32 = shmframes::MAX_SLOTS - 1;

impl Opts {
    /// The options, with the checks that span several of them made as usage errors (exit 2),
    /// as clap's own.
    fn parse_checked() -> Opts {
        let opts = Opts::parse();
        if !opts.raw && opts.buffer_frames > FRAMED_MAX_BUFFER_FRAMES {
            use clap::CommandFactory;
            Opts::command()
                .error(
                    clap::error::ErrorKind::ValueValidation,
                    format!(
                        "--buffer-frames {} is more than a framed channel keeps: at most {} (it \
                         has at most {} slots, one of them the producer's); --raw channels take \
                         up to {RAW_MAX_BUFFER_FRAMES}",
                        opts.buffer_frames,
                        FRAMED_MAX_BUFFER_FRAMES,
                        shmframes::MAX_SLOTS
                    ),
                )
                .exit();
        }
        opts
    }
}

/// A size in bytes as people read it: `512 KiB`, `24 MiB`.
fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        let mib = n as f64 / (1u64 << 20) as f64;
        if mib >= 10.0 {
            format!("{mib:.0} MiB")
        } else {
            format!("{mib:.1} MiB")
        }
    } else {
        format!("{} KiB", n.div_ceil(1024))
    }
}

/// A format from the table that the producer's sources draw: the RGB family (the YUV formats
/// can be published by other producers, e.g. from Python or GStreamer).
fn parse_rgb_format(s: &str) -> Result<PixelFormat, String> {
    let f: PixelFormat = s.parse().map_err(|e: shmframes::format::UnknownFormat| e.to_string())?;
    if !f.is_rgb_family() {
        return Err(format!(
            "frame-producer draws RGB-family frames ({}), not {f}",
            PixelFormat::rgb_family_names()
        ));
    }
    Ok(f)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WhenFull {
    /// Never wait, as a live camera must: skip the frame only if readers hold every slot.
    Drop,
    /// Wait for lossless readers (and a raw channel's consumer): they lose nothing.
    Wait,
}

fn parse_fps(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !f.is_finite() || f < 0.0 {
        return Err(format!(
            "{s} is not a frame rate: use a number >= 0 (0 = as fast as possible)"
        ));
    }
    if f > 0.0 && f < 0.001 {
        return Err(format!("{s} fps is one frame every {:.0} s; use at least 0.001", 1.0 / f));
    }
    Ok(f)
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode such as 600 or 660"))?;
    shmframes::WriterOptions::check_mode(m).map_err(|_| {
        format!("mode {s} must be within 777 and keep 600 (the owner reads and writes)")
    })
}

fn main() -> ExitCode {
    quiet_decoder_panics();
    match run(Opts::parse_checked()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("frame-producer: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Opts) -> anyhow::Result<()> {
    if opts.list_cameras {
        return camera::list();
    }
    let mut names = opts.names.clone();
    names.dedup();
    if names.iter().enumerate().any(|(i, n)| names[..i].contains(n)) {
        bail!("--name was given twice with the same name; each channel needs its own name");
    }
    for n in &names {
        shmframes::validate_name(n)?;
    }
    let format = opts.format;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .context("cannot install the signal handler")?;
    }
    // Every wait (pacing, room in a ring) ends within 100 ms of Ctrl+C or SIGTERM.
    let flag = stop.clone();
    let cancel =
        Cancel::with_check(Duration::from_millis(100), move || flag.load(Ordering::Relaxed));

    let mut source = Source::open(&opts, format)?;
    let shape = source.shape();
    let mut wopts = WriterOptions::new(shape.width, shape.height, format)?;
    wopts.buffer_frames = opts.buffer_frames;
    wopts.max_readers = opts.max_readers;
    wopts.raw = opts.raw;
    wopts.mode = opts.mode;
    wopts.cancel = Some(cancel.clone());
    let mut writers = Vec::new();
    for n in &names {
        writers.push(Writer::create(n, &wopts)?);
    }
    let mut status = Status::new(&writers, shape, opts.quiet);
    if !opts.quiet {
        eprintln!(
            "frame-producer: {} {} at {} into {} ({} ring{}{}); Ctrl+C to stop",
            source.describe(),
            shape,
            if opts.fps > 0.0 { format!("{} fps", opts.fps) } else { "full speed".into() },
            names.join(", "),
            human_bytes(writers[0].capacity() as u64),
            if writers.len() > 1 { " each" } else { "" },
            if opts.raw { ", raw" } else { "" },
        );
    }

    if opts.when_full == WhenFull::Wait && writers.len() == 1 && !opts.raw {
        // Lossless from the first frame: publish nothing before someone reads. (With several
        // channels, an absent reader on one never holds up the others. A raw ring keeps its
        // frames for its consumer anyway, and cpp_py_shmbuf's consumers take no lock we
        // could see.)
        if !opts.quiet {
            eprintln!("frame-producer: --when-full wait: waiting for a reader of {}", names[0]);
        }
        if !cancel.sleep_while(|| !writers[0].reader_attached(), Duration::from_millis(5)) {
            status.finish(0);
            return Ok(());
        }
    }

    let start = Instant::now();
    let mut pace = source::Pacer::new(opts.fps, source.paces_itself(), cancel);
    // Frames are rendered ahead and published on their tick: readers that wake just before a
    // frame is due (the default) find it there, whatever rendering took. So the tick itself
    // must not come up to 50 us late (Linux's default timer slack).
    shmframes::precise_timers();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) && opts.frames.is_none_or(|n| seq < n) {
        let Some(captured) = source.capture(&stop)? else { break };
        let attached = status.attached_snapshot();
        let mut slots: Vec<(usize, FrameSlot<'_>)> = Vec::with_capacity(writers.len());
        let only_one = writers.len() == 1;
        for (i, w) in writers.iter_mut().enumerate() {
            // Lossless waiting applies to channels with a reader (or to the only channel): an
            // absent reader on one channel never stalls the others.
            let wait = opts.when_full == WhenFull::Wait && (only_one || attached[i]);
            match acquire(w, wait)? {
                Some(slot) => slots.push((i, slot)),
                None => status.dropped(i),
            }
        }
        if stop.load(Ordering::Relaxed) && slots.is_empty() {
            break;
        }
        let rendered = match slots.split_first_mut() {
            Some(((_, first), rest)) => {
                source.render(seq, pace.due(start), first.pixels()).map(|()| {
                    for (_, other) in rest.iter_mut() {
                        other.pixels().copy_from_slice(first.pixels());
                    }
                })
            }
            None => Ok(()),
        };
        if let Err(e) = rendered {
            // A corrupt camera frame (a USB glitch) is skipped; anything else is fatal.
            if !source.paces_itself() {
                return Err(e);
            }
            status.bad_frame(&e);
            slots.clear(); // unpublished slots are discarded
            seq += 1;
            continue;
        }
        // Rendered: publish on the frame's tick (a camera's frames are published as they come).
        if !pace.wait() {
            break; // Ctrl+C before the frame was due: it is discarded with its slots
        }
        let capture_ns = captured.capture_ns.unwrap_or_else(shmframes::monotonic_ns);
        for (i, mut slot) in slots {
            slot.set_seq(seq);
            slot.set_capture_ns(capture_ns);
            slot.publish();
            status.published(i);
        }
        seq += 1;
        status.tick(&mut writers);
    }
    status.finish(seq);
    for w in writers {
        w.close()?;
    }
    Ok(())
}

/// libjpeg reports a corrupt MJPEG frame as a panic, which `convert::jpeg_to` catches and turns
/// into an error (the frame is skipped and reported once). Keep the default panic message for
/// every other panic.
fn quiet_decoder_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let from_jpeg = info.location().is_some_and(|l| l.file().contains("mozjpeg"));
        if !from_jpeg {
            default(info);
        }
    }));
}

/// A slot in `w`: waiting for lossless readers if `wait` (until stopped: `None`), else the
/// live source's slot (`None` when readers hold every slot).
fn acquire(w: &mut Writer, wait: bool) -> anyhow::Result<Option<FrameSlot<'_>>> {
    let slot = if wait { w.frame(Deadline::NEVER) } else { w.try_frame() };
    match slot {
        Err(shmframes::Error::Interrupted { .. }) => Ok(None),
        other => Ok(other?),
    }
}

/// The frame shape a source and the options give.
fn shape_of(width: u32, height: u32, format: PixelFormat) -> anyhow::Result<FrameShape> {
    Ok(FrameShape::packed(width, height, format)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        Opts::command().debug_assert();
    }

    #[test]
    fn rates_and_modes() {
        assert_eq!(parse_fps("0"), Ok(0.0));
        assert_eq!(parse_fps("0.1"), Ok(0.1));
        for bad in ["-1", "nan", "inf", "0.0001", "fast"] {
            assert!(parse_fps(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o660"), Ok(0o660));
        for bad in ["99", "400", "1777", "rw"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(256 << 10), "256 KiB");
        assert_eq!(human_bytes(1000), "1 KiB");
        assert_eq!(human_bytes(3 << 19), "1.5 MiB");
        assert_eq!(human_bytes(32 << 20), "32 MiB");
    }
}
