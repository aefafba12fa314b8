//! Arbitrary bytes as a stream of messages in a well-formed segment marked as ours (framed):
//! every payload goes through the frame-header validation and the lease logic.
#![no_main]

use std::ptr::NonNull;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use shmframes::ring::{Producer, RingMemory};
use shmframes::{Reader, ReaderOptions};

const CAPACITY: u32 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    // Build the segment in memory with our producer: [len byte][payload]...
    let len = 16 + CAPACITY as usize;
    let mut buf = vec![0u64; len / 8];
    let base = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `buf` holds `len` bytes and outlives the producer; one producer.
    let mem = unsafe { RingMemory::init(base, len, CAPACITY, 0, shmframes::control::initial(true)) }.unwrap();
    // SAFETY: as above.
    let mut p = unsafe { Producer::new(mem) }.unwrap();
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        // Lengths up to 4 KiB from two bytes when the first has its top bit set.
        let (n, tail) = if n & 0x80 != 0 && !tail.is_empty() {
            (((n as usize & 0x7F) << 5 | tail[0] as usize) & 0xFFF, &tail[1..])
        } else {
            (n as usize, tail)
        };
        let take = n.min(tail.len());
        if p.push(&tail[..take]).is_err() {
            break;
        }
        rest = &tail[take..];
    }
    // SAFETY: `buf` holds `len` initialised bytes.
    let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len) };
    let name = format!("shmframes-fuzz-messages-{}", std::process::id());
    let path = format!("/dev/shm/{name}");
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    if let Ok(mut r) = Reader::open(&name, &ReaderOptions::default()) {
        let mut held = Vec::new();
        for i in 0..256 {
            match r.read(Some(Duration::ZERO)) {
                Ok(Some(f)) => {
                    let _ = f.pixels().iter().fold(0u8, |a, &b| a ^ b);
                    if i % 3 == 0 {
                        held.push(f); // keep some, release the others out of order
                    }
                }
                _ => break,
            }
        }
        while let Some(f) = held.pop() {
            drop(f);
        }
    }
    let _ = std::fs::remove_file(&path);
});
