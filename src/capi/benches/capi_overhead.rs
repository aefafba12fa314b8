//! The C path's per-frame cost against the Rust API's (`make capi-bench`), side by side in one
//! run: rounds alternate between the two, each round publishing and reading 1080p BGR frames
//! on its own channel (a writer and a lossless reader in this thread). A frame is: take a
//! slot, copy a 1080p picture into it, publish; read it, touch every page of it, release.
//! The C path calls the very `extern "C"` functions a C program links to (catch_unwind, handle
//! checks, the info struct), so the difference between the two is the C layer's cost. A
//! second pair of rounds does the same without copying or touching pixels: the layer's
//! absolute cost per frame, in nanoseconds, where nothing hides it.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it makes one short round of each,
//! as a smoke test.

use std::hint::black_box;
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use shmframes::{PixelFormat, Reader, ReaderOptions, Start, Writer, WriterOptions};
use shmframes_capi::*;

const W: u32 = 1920;
const H: u32 = 1080;

fn sum_pages(p: &[u8]) -> u64 {
    p.iter().step_by(4096).map(|&b| b as u64).sum()
}

/// One round of `n` frames through the Rust API; the mean time per frame.
fn rust_round(w: &mut Writer, r: &mut Reader, n: u32, src: &[u8], pixels: bool) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let mut slot = w.try_frame().unwrap().expect("room");
        if pixels {
            slot.pixels().copy_from_slice(src);
        }
        slot.publish();
        let f = r.read(Duration::ZERO).unwrap().expect("a frame");
        black_box(f.seq());
        if pixels {
            black_box(sum_pages(f.pixels()));
        }
    }
    t.elapsed() / n
}

fn ok(r: shmframes_result) {
    assert_eq!(r, shmframes_result::SHMFRAMES_OK);
}

/// A writer and a lossless reader of channel `name` through the C ABI.
fn c_open(name: &str) -> (*mut shmframes_writer, *mut shmframes_reader) {
    let cname = std::ffi::CString::new(name).unwrap();
    // SAFETY: every pointer is a local or a handle these calls made, used as the header says.
    unsafe {
        let mut o = std::mem::zeroed();
        ok(shmframes_writer_options_init(
            &mut o,
            W,
            H,
            shmframes_format::SHMFRAMES_FORMAT_BGR as u32,
        ));
        let mut w = null_mut();
        ok(shmframes_writer_create(cname.as_ptr(), &o, &mut w));
        let mut ro = std::mem::zeroed();
        ok(shmframes_reader_options_init(&mut ro));
        ro.lossless = true;
        ro.start_oldest = true;
        let mut r = null_mut();
        ok(shmframes_reader_open(cname.as_ptr(), &ro, &mut r));
        (w, r)
    }
}

/// One round of `n` frames through the C ABI; the mean time per frame.
fn c_round(
    w: *mut shmframes_writer,
    r: *mut shmframes_reader,
    n: u32,
    src: &[u8],
    pixels: bool,
) -> Duration {
    let t = Instant::now();
    // SAFETY: `w` and `r` are live handles of `c_open`; the rest are locals, used as the header
    // says.
    unsafe {
        for _ in 0..n {
            let mut slot = null_mut();
            ok(shmframes_writer_take_slot(w, 0, &mut slot));
            if pixels {
                let (mut p, mut len) = (null_mut(), 0);
                ok(shmframes_slot_pixels(slot, &mut p, &mut len));
                std::ptr::copy_nonoverlapping(src.as_ptr(), p, len);
            }
            ok(shmframes_slot_publish(slot, null_mut()));
            shmframes_slot_free(slot);
            let mut f = null_mut();
            ok(shmframes_reader_read(r, 0, &mut f));
            let mut info = std::mem::zeroed::<shmframes_frame_info>();
            ok(shmframes_frame_get_info(f, &mut info));
            black_box(info.seq);
            if pixels {
                black_box(sum_pages(std::slice::from_raw_parts(info.data, info.len)));
            }
            shmframes_frame_free(f);
        }
    }
    t.elapsed() / n
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, frames) = if bench { (101, 20) } else { (1, 3) };
    let pid = std::process::id();
    let (rust_name, c_name) =
        (format!("shmframes-capi-bench-rust-{pid}"), format!("shmframes-capi-bench-c-{pid}"));
    let src: Vec<u8> = (0..W as usize * H as usize * 3).map(|i| (i * 7) as u8).collect();
    // One channel per path, opened once: rounds measure frames, not set-up.
    let opts = WriterOptions::new(W, H, PixelFormat::Bgr24).unwrap();
    let mut rw = Writer::create(&rust_name, &opts).unwrap();
    let ro = ReaderOptions { lossless: true, start: Start::Oldest, ..Default::default() };
    let mut rr = Reader::open(&rust_name, &ro).unwrap();
    let (cw, cr) = c_open(&c_name);
    // Warm both (the slots' first page faults).
    rust_round(&mut rw, &mut rr, 8, &src, true);
    c_round(cw, cr, 8, &src, true);
    for (label, pixels, n) in
        [("1080p frame (copy in, touch out)", true, frames), ("metadata only", false, frames * 50)]
    {
        let (mut rust, mut c) = (Vec::new(), Vec::new());
        for i in 0..rounds {
            // Alternate which goes first, so neither always runs on a warmer machine.
            if i % 2 == 0 {
                rust.push(rust_round(&mut rw, &mut rr, n, &src, pixels));
                c.push(c_round(cw, cr, n, &src, pixels));
            } else {
                c.push(c_round(cw, cr, n, &src, pixels));
                rust.push(rust_round(&mut rw, &mut rr, n, &src, pixels));
            }
        }
        // Each round's C time over the Rust round run beside it: pairs share the machine's
        // mood, so their ratio is steadier than the ratio of two medians.
        let mut ratios: Vec<f64> =
            rust.iter().zip(&c).map(|(r, c)| c.as_secs_f64() / r.as_secs_f64()).collect();
        ratios.sort_by(f64::total_cmp);
        let ratio = ratios[ratios.len() / 2];
        let (r, cc) = (median(&mut rust), median(&mut c));
        println!(
            "capi_overhead {label}: Rust API {:.2} us/frame, C ABI {:.2} us/frame (medians); \
             C/Rust per pair of rounds: median {ratio:.3}, range {:.3}-{:.3} ({rounds} \
             alternating pairs of rounds of {n} frames)",
            r.as_nanos() as f64 / 1e3,
            cc.as_nanos() as f64 / 1e3,
            ratios[0],
            ratios[ratios.len() - 1],
        );
    }
    rw.close().unwrap();
    // SAFETY: handles of `c_open`, freed once.
    unsafe {
        shmframes_reader_free(cr);
        shmframes_writer_free(cw);
    }
}
