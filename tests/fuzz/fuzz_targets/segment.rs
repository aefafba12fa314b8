//! Arbitrary bytes as a whole segment (header and data area), read two ways: by the ring's
//! consumer on a private copy, and by a `Reader` on a real /dev/shm segment. Neither may
//! panic, read out of bounds or hang.
#![no_main]

use std::ptr::NonNull;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use shmframes::ring::{Consumer, RingMemory};
use shmframes::{FrameShape, PixelFormat, Reader, ReaderOptions};

fuzz_target!(|data: &[u8]| {
    // 1. The ring alone, on an aligned private copy.
    let mut buf = vec![0u64; data.len().div_ceil(8).max(1)];
    // SAFETY: `buf` holds at least `data.len()` bytes.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf.as_mut_ptr().cast::<u8>(), data.len()) };
    let base = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `buf` outlives the consumer; nobody else uses it.
    if let Ok(mem) = unsafe { RingMemory::attach(base, data.len()) } {
        // SAFETY: the only consumer of this private copy.
        let mut c = unsafe { Consumer::new(mem) };
        let mut out = Vec::new();
        for _ in 0..1000 {
            match c.pop(&mut out) {
                Ok(true) => {}
                _ => break,
            }
        }
    }

    // 2. The whole reader, on a real segment (raw frames of a size taken from the data).
    let name = format!("shmframes-fuzz-segment-{}", std::process::id());
    let path = format!("/dev/shm/{name}");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let width = 1 + data.get(16).copied().unwrap_or(0) as u32 % 64;
    let raw = FrameShape::packed(width, 1, PixelFormat::Gray8).ok();
    for raw in [None, raw] {
        if let Ok(mut r) = Reader::open(&name, &ReaderOptions { raw, ..Default::default() }) {
            for _ in 0..64 {
                match r.try_read() {
                    Ok(Some(f)) => {
                        let _ = f.pixels().iter().fold(0u8, |a, &b| a ^ b);
                    }
                    _ => break,
                }
            }
            let _ = r.latest(Some(Duration::ZERO));
        }
    }
    let _ = std::fs::remove_file(&path);
});
