//! `frame-stats`: a headless Rust consumer for scripts, tests and benchmarks. Reads a channel
//! and prints a line per second (frames/s, latency, drops), or one JSON object per frame.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use shmframes::stats::Stats;
use shmframes::{Error, FrameShape, PixelFormat, Reader, ReaderOptions, Start};

/// Reads a shmframes channel and reports what arrives.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Opts {
    /// Channel name.
    #[arg(default_value = "shm_video")]
    name: String,
    /// Exit 0 after N frames.
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Seconds to wait for the channel and between frames.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    timeout: f64,
    /// Header-less frames of this size (cpp_py_shmbuf's producer), WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", value_parser = shmframes::format::parse_size)]
    raw: Option<(u32, u32)>,
    /// Pixel format of --raw frames.
    #[arg(long, default_value = "bgr", value_parser = |s: &str| s.parse::<PixelFormat>())]
    raw_format: PixelFormat,
    /// One JSON object per frame on stdout: seq, size, format, latency, CRC-32 of the pixels.
    #[arg(long)]
    json: bool,
    /// Read losslessly: a producer that waits (--when-full wait) waits for this reader, and
    /// reading starts at the oldest frame still kept.
    #[arg(long)]
    lossless: bool,
    /// List the channel's readers (place, pid, mode, frames read, dropped, lag, held) and exit.
    #[arg(long)]
    readers: bool,
    /// Remove what dead producers left in /dev/shm (channels whose producer was killed, and
    /// half-made temporaries) and exit. Live channels and other programs' segments stay.
    #[arg(long)]
    clean: bool,
}

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
    let timeout = Duration::try_from_secs_f64(o.timeout).context("--timeout must be a number of seconds >= 0")?;
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
                Some(name) => println!("removed channel {name:?} (its producer is dead): {}", l.path.display()),
                None => println!("removed a dead producer's temporary: {}", l.path.display()),
            }
        }
        println!("frame-stats: removed {} leftover(s)", removed.len());
        return Ok(());
    }
    let start = if o.lossless { Start::Oldest } else { Start::Newest };
    let opts = ReaderOptions { timeout, raw, lossless: o.lossless, start, ..Default::default() };
    let mut reader = Reader::open(&o.name, &opts)?;
    let mut stats = Stats::new();
    while o.frames.is_none_or(|n| stats.frames() < n) {
        let frame = match reader.read(timeout) {
            Ok(Some(f)) => f,
            Ok(None) => anyhow::bail!("no frame for {} s on {:?}", o.timeout, o.name),
            Err(Error::EndOfStream { .. }) => break,
            Err(e) => return Err(e.into()),
        };
        let now = shmframes::monotonic_ns();
        stats.record(frame.seq(), frame.publish_ns(), now, frame.lost_before());
        if o.json {
            let s = frame.shape();
            let latency_ns = (frame.publish_ns() > 0).then(|| now.saturating_sub(frame.publish_ns()));
            println!(
                "{{\"seq\":{},\"width\":{},\"height\":{},\"stride\":{},\"format\":\"{}\",\"raw\":{},\"capture_ns\":{},\"publish_ns\":{},\"latency_ns\":{},\"crc32\":{}}}",
                frame.seq(),
                s.width,
                s.height,
                s.stride,
                s.format,
                frame.is_raw(),
                frame.capture_ns(),
                frame.publish_ns(),
                latency_ns.map_or("null".to_owned(), |l| l.to_string()),
                crc32fast::hash(frame.pixels())
            );
        } else if stats.window_due() {
            eprintln!("[{}] {}", o.name, stats.take_window());
        }
    }
    eprintln!("[{}] {}", o.name, stats.summary());
    Ok(())
}

/// `--readers`: one line per live reader of the channel.
fn list_readers(name: &str) -> anyhow::Result<()> {
    let readers = shmframes::readers_of(name)?;
    if readers.is_empty() {
        println!("{name}: no reader (a raw channel's one consumer is not listed)");
        return Ok(());
    }
    println!("{:>5} {:>8} {:>9} {:>10} {:>9} {:>5} {:>5}", "place", "pid", "mode", "read", "dropped", "lag", "held");
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
