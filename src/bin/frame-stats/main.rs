//! `frame-stats`: a headless Rust consumer for scripts, tests and benchmarks. Reads a channel
//! and prints a line per second (frames/s, latency, drops), or one JSON object per frame.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use shmframes::{Error, FrameShape, PixelFormat, Reader, ReaderOptions};

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
    #[arg(long, value_name = "WxH", value_parser = shmframes::frame::parse_size)]
    raw: Option<(u32, u32)>,
    /// Pixel format of --raw frames.
    #[arg(long, default_value = "bgr", value_parser = |s: &str| s.parse::<PixelFormat>())]
    raw_format: PixelFormat,
    /// One JSON object per frame on stdout: seq, size, format, latency, CRC-32 of the pixels.
    #[arg(long)]
    json: bool,
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
        Some((w, h)) => Some(FrameShape::packed(w, h, o.raw_format).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let mut reader = Reader::open(&o.name, &ReaderOptions { timeout, raw, follow: false })?;
    let (start, mut window) = (Instant::now(), Instant::now());
    let (mut total, mut in_window, mut dropped) = (0u64, 0u64, 0u64);
    let mut last_seq: Option<u64> = None;
    let mut lat = Vec::new();
    while o.frames.is_none_or(|n| total < n) {
        let frame = match reader.read(Some(timeout)) {
            Ok(Some(f)) => f,
            Ok(None) => anyhow::bail!("no frame for {} s on {:?}", o.timeout, o.name),
            Err(Error::EndOfStream { .. }) => break,
            Err(e) => return Err(e.into()),
        };
        let latency_ns = (frame.publish_ns() > 0).then(|| shmframes::monotonic_ns().saturating_sub(frame.publish_ns()));
        if let Some(l) = last_seq {
            dropped += frame.seq().saturating_sub(l + 1);
        }
        last_seq = Some(frame.seq());
        total += 1;
        in_window += 1;
        lat.extend(latency_ns);
        if o.json {
            let s = frame.shape();
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
        }
        if window.elapsed() >= Duration::from_secs(1) && !o.json {
            eprintln!("[{}] {:.1} fps, dropped {dropped}, frames {total}", o.name, in_window as f64 / window.elapsed().as_secs_f64());
            window = Instant::now();
            in_window = 0;
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).map_or(0.0, |&v| v as f64 / 1e3);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "[{}] total: {total} frames in {secs:.1} s ({:.1} fps), dropped {dropped}, latency p50 {:.1} us p99 {:.1} us p99.9 {:.1} us",
        o.name,
        total as f64 / secs,
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
    Ok(())
}
