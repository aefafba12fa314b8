//! `frame-stats`: a headless Rust consumer for scripts, tests and benchmarks. Reads a channel
//! and prints a line per second (frames/s, latency, drops), or one JSON object per frame.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use shmframes::stats::Stats;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use shmframes::{
    Cancel, Error, FrameShape, PixelFormat, ProducerState, Reader, ReaderOptions, Start,
};

/// Reads a shmframes channel and reports what arrives: frames/s, latency p50/p99 and drops once
/// a second, and a summary at the end (end of stream, --frames, or Ctrl+C).
///
/// Also lists the channels in /dev/shm (--list), a channel's readers (--readers), and removes
/// what killed producers left behind (--clean).
#[derive(Parser, Debug)]
#[command(
    name = "frame-stats",
    version,
    after_help = "Examples:\n  \
    frame-stats                        statistics of \"shm_video\" until the stream ends or Ctrl+C\n  \
    frame-stats cam --frames 300 --json  one JSON object per frame (seq, latency, CRC-32)\n  \
    frame-stats --list                 every channel: producer, state, shape, frames, readers\n  \
    frame-stats --clean                remove dead producers' leftovers\n\n\
Waiting: up to --timeout (10 s) for the channel to appear and, with --follow, for the next\n\
producer; a live producer's next frame is awaited for ever (its end or death is reported at\n\
once), and a producer that cannot be watched (cpp_py_shmbuf's) is given up on after --timeout\n\
without a frame."
)]
struct Opts {
    /// Channel name.
    #[arg(default_value = "shm_video")]
    name: String,
    /// Exit 0 after N frames.
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Seconds to wait for a producer: for the channel to appear, for the next producer with
    /// --follow, and between frames of a producer that cannot be watched (cpp_py_shmbuf's).
    #[arg(long, value_name = "S", default_value = "10", value_parser = shmframes_tools::parse_secs, allow_negative_numbers = true)]
    timeout: Duration,
    /// Keep reading across producer restarts: after the producer ends or dies, wait (up to
    /// --timeout) for the next one started under the same name.
    #[arg(long)]
    follow: bool,
    /// Header-less frames of this size (cpp_py_shmbuf's producer), WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", value_parser = shmframes::format::parse_size)]
    raw: Option<(u32, u32)>,
    /// Pixel format of --raw frames.
    #[arg(long, default_value = "bgr", value_parser = |s: &str| s.parse::<PixelFormat>())]
    raw_format: PixelFormat,
    /// One JSON object per frame on stdout: seq, size, format, latency, CRC-32 of the pixels.
    #[arg(long)]
    json: bool,
    /// How a blocked read wakes: anticipate (just before a steady producer's next frame is
    /// due) or publish (always sleep until the producer's wake-up: no watching, slower).
    #[arg(long, value_name = "HOW", default_value = "anticipate", value_parser = shmframes_tools::parse_wake)]
    wake: shmframes::Wake,
    /// Read losslessly: a producer that waits (--when-full wait) waits for this reader, and
    /// reading starts at the oldest frame still kept.
    #[arg(long)]
    lossless: bool,
    /// List the channel's readers (place, pid, mode, frames read, dropped, lag, held) and exit.
    #[arg(long, conflicts_with_all = READING)]
    readers: bool,
    /// List every channel in /dev/shm (shmframes' and cpp_py_shmbuf's) and exit: producer and
    /// state, shape and format, frames published, readers; other files as foreign. Reads
    /// headers only: attaches to none.
    #[arg(long, conflicts_with_all = READING, conflicts_with_all = ["name", "readers", "clean"])]
    list: bool,
    /// Remove what dead producers left in /dev/shm (channels whose producer was killed, and
    /// half-made temporaries) and exit. Live channels and other programs' segments stay.
    #[arg(long, conflicts_with_all = READING, conflicts_with_all = ["name", "readers"])]
    clean: bool,
}

/// The options that read frames: refused with --list, --readers and --clean, which read none.
const READING: [&str; 8] =
    ["frames", "timeout", "follow", "raw", "raw_format", "json", "lossless", "wake"];

fn main() -> ExitCode {
    match run(Opts::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("frame-stats: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(o: Opts) -> anyhow::Result<()> {
    let timeout = o.timeout;
    if o.list {
        return list_channels();
    }
    let raw = match o.raw {
        Some((w, h)) => Some(FrameShape::packed(w, h, o.raw_format)?),
        None => None,
    };
    if o.readers {
        return list_readers(&o.name);
    }
    if o.clean {
        let removed = shmframes::clean_leftovers(true)?;
        for l in &removed {
            match &l.channel {
                Some(name) => println!(
                    "removed channel {name:?} (its producer is dead): {}",
                    l.path.display()
                ),
                None => println!("removed a dead producer's temporary: {}", l.path.display()),
            }
        }
        println!("frame-stats: removed {} leftover(s)", removed.len());
        return Ok(());
    }
    let start = if o.lossless { Start::Oldest } else { Start::Newest };
    // Ctrl+C (or SIGTERM) ends the run with its summary, exit 0.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .context("cannot install the signal handler")?;
    }
    // Woken by the signal itself (no periodic wake-up while idle; 100 ms polls on old kernels).
    let flag = stop.clone();
    let cancel =
        Cancel::on_signals(Duration::from_millis(100), move || flag.load(Ordering::Relaxed));
    let opts = ReaderOptions {
        timeout,
        raw,
        follow: o.follow,
        lossless: o.lossless,
        start,
        cancel: Some(cancel),
    };
    let mut reader = match Reader::open(&o.name, &opts) {
        Err(Error::Interrupted { .. }) => return Ok(()),
        r => r?,
    };
    reader.set_wake(o.wake);
    // The newest frame already published when we attached is read (and shown with --json) but
    // not measured: its age is not latency, its arrival not the rate.
    let mut stats = Stats::since(shmframes::monotonic_ns());
    let mut read = 0u64;
    // The flag too: a read that always finds a frame never waits, and so never sees the cancel.
    while o.frames.is_none_or(|n| read < n) && !stop.load(Ordering::Relaxed) {
        let frame = match reader.read(timeout) {
            Ok(Some(f)) => f,
            // A live producer is waited for (its end or death is reported at once).
            Ok(None) if reader.producer_state() == ProducerState::Live => continue,
            Ok(None) => anyhow::bail!(
                "no frame for {} s on {:?}: {}",
                timeout.as_secs_f64(),
                o.name,
                match reader.producer_state() {
                    ProducerState::Gone => "its producer died, and no new one came",
                    ProducerState::Ended => "its producer ended the stream, and no new one came",
                    _ => "its producer (one that does not say whether it lives) sends nothing",
                }
            ),
            Err(Error::EndOfStream { .. } | Error::Interrupted { .. }) => break,
            Err(e @ Error::ProducerGone { .. }) => {
                eprintln!("[{}] {}", o.name, stats.summary());
                return Err(anyhow::Error::new(e).context(
                    "the producer died (frame-stats --follow keeps reading across producer restarts)",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        read += 1;
        let now = shmframes::monotonic_ns();
        stats.record(frame.seq(), frame.publish_ns(), now, frame.lost_before());
        if o.json {
            let s = frame.shape();
            let measured = stats.measures(frame.publish_ns());
            let latency_ns = (frame.publish_ns() > 0 && measured)
                .then(|| now.saturating_sub(frame.publish_ns()));
            println!(
                "{{\"seq\":{},\"width\":{},\"height\":{},\"stride\":{},\"format\":\"{}\",\"raw\":{},\"capture_ns\":{},\"publish_ns\":{},\"latency_ns\":{},\"before_attach\":{},\"crc32\":{}}}",
                frame.seq(),
                s.width,
                s.height,
                s.stride,
                s.format,
                frame.is_raw(),
                frame.capture_ns(),
                frame.publish_ns(),
                latency_ns.map_or("null".to_owned(), |l| l.to_string()),
                !measured,
                crc32fast::hash(frame.pixels())
            );
        } else if stats.window_due() {
            eprintln!("[{}] {}", o.name, stats.take_window());
        }
    }
    eprintln!("[{}] {}", o.name, stats.summary());
    Ok(())
}

/// `--list`: one line per channel in /dev/shm.
fn list_channels() -> anyhow::Result<()> {
    let found = shmframes::channels()?;
    let foreign = foreign_files(&found);
    if found.is_empty() && foreign.is_empty() {
        println!("no channel in /dev/shm");
        return Ok(());
    }
    println!(
        "{:<28} {:<8} {:<13} {:<16} {:>9} {:>7}  open by",
        "name", "producer", "kind", "shape", "frames", "readers"
    );
    for c in found {
        let kind = match (c.ours, c.framed) {
            (false, _) => "cpp_py_shmbuf",
            (true, true) => "framed",
            (true, false) => "raw",
        };
        let state = match c.producer {
            shmframes::ProducerState::Live => "live",
            shmframes::ProducerState::Ended => "ended",
            shmframes::ProducerState::Gone => "dead",
            shmframes::ProducerState::Unknown => "unknown",
        };
        let shape =
            c.shape.map_or("-".to_owned(), |s| format!("{}x{} {}", s.width, s.height, s.format));
        let num = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        let users: Vec<String> = c.open_by.iter().map(|(pid, n)| format!("{n}[{pid}]")).collect();
        println!(
            "{:<28} {:<8} {:<13} {:<16} {:>9} {:>7}  {}",
            c.name,
            state,
            kind,
            shape,
            num(c.frames_published),
            num(c.readers.map(|r| r as u64)),
            if users.is_empty() { "-".to_owned() } else { users.join(", ") }
        );
    }
    for name in foreign {
        // Not a channel (no ring header we know): a Writer cannot take the name (NameTaken).
        println!("{:<28} {:<8} {:<13} {:<16} {:>9} {:>7}  -", name, "-", "foreign", "-", "-", "-");
    }
    Ok(())
}

/// The files in /dev/shm whose names a channel could take but which are not channels: another
/// program's segments, or ones too short or corrupt to read.
fn foreign_files(channels: &[shmframes::ChannelInfo]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| shmframes::validate_name(n).is_ok())
        .filter(|n| !channels.iter().any(|c| &c.name == n))
        .collect();
    names.sort();
    names
}

/// `--readers`: one line per live reader of the channel.
fn list_readers(name: &str) -> anyhow::Result<()> {
    let readers = shmframes::readers_of(name)?;
    if readers.is_empty() {
        let framed = shmframes::channels()?.iter().any(|c| c.name == name && c.framed);
        if framed {
            println!("{name}: no reader attached");
        } else {
            println!("{name}: a raw channel: its one consumer takes no place in a reader table");
        }
        return Ok(());
    }
    println!(
        "{:>5} {:>8} {:>9} {:>10} {:>9} {:>5} {:>5}",
        "place", "pid", "mode", "read", "dropped", "lag", "held"
    );
    for r in readers {
        println!(
            "{:>5} {:>8} {:>9} {:>10} {:>9} {:>5} {:>5}",
            r.place,
            r.pid,
            if r.lossless { "lossless" } else { "lossy" },
            r.frames_read,
            r.dropped,
            r.lag,
            r.held
        );
    }
    Ok(())
}
