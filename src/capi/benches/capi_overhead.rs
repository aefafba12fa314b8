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
fn rust_round(name: &str, n: u32, src: &[u8], pixels: bool) -> Duration {
    let opts = WriterOptions::new(W, H, PixelFormat::Bgr24).unwrap();
    let mut w = Writer::create(name, &opts).unwrap();
    let ro = ReaderOptions { lossless: true, start: Start::Oldest, ..Default::default() };
    let mut r = Reader::open(name, &ro).unwrap();
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
    let d = t.elapsed() / n;
    w.close().unwrap();
    d
}

fn ok(r: shmframes_result) {
    assert_eq!(r, shmframes_result::SHMFRAMES_OK);
}

/// One round of `n` frames through the C ABI; the mean time per frame.
fn c_round(name: &str, n: u32, src: &[u8], pixels: bool) -> Duration {
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
        let t = Instant::now();
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
        let d = t.elapsed() / n;
        shmframes_reader_free(r);
        shmframes_writer_free(w);
        d
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, frames) = if bench { (15, 200) } else { (1, 3) };
    let name = format!("shmframes-capi-bench-{}", std::process::id());
    let src: Vec<u8> = (0..W as usize * H as usize * 3).map(|i| (i * 7) as u8).collect();
    for (label, pixels, n) in
        [("1080p frame (copy in, touch out)", true, frames), ("metadata only", false, frames * 50)]
    {
        let (mut rust, mut c) = (Vec::new(), Vec::new());
        for i in 0..rounds {
            // Alternate which goes first, so neither always runs on a warmer machine.
            if i % 2 == 0 {
                rust.push(rust_round(&name, n, &src, pixels));
                c.push(c_round(&name, n, &src, pixels));
            } else {
                c.push(c_round(&name, n, &src, pixels));
                rust.push(rust_round(&name, n, &src, pixels));
            }
        }
        let (r, cc) = (median(&mut rust), median(&mut c));
        println!(
            "capi_overhead {label}: Rust API {:.2} us/frame, C ABI {:.2} us/frame, C/Rust {:.3} \
             ({rounds} alternating rounds of {n} frames, medians)",
            r.as_nanos() as f64 / 1e3,
            cc.as_nanos() as f64 / 1e3,
            cc.as_nanos() as f64 / r.as_nanos().max(1) as f64
        );
    }
}
