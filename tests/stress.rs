//! Cross-thread stress: at least 10 GiB (release builds; 1 GiB in debug builds) of checksummed
//! messages of varying sizes through a 64 KiB ring, with leases and batched commits, across the
//! u32 wrap of head and tail (10 GiB wraps them twice). Not one lost, duplicated or torn message.

mod common;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use shmframes::ring::{Consumer, Producer, PushError, RingMemory, RingPushError};

fn total_bytes() -> u64 {
    let gib = std::env::var("SHMFRAMES_STRESS_GIB").ok().and_then(|v| v.parse().ok());
    gib.unwrap_or(if cfg!(debug_assertions) { 1 } else { 10 }) << 30
}

struct Shared(Vec<u64>);

#[test]
fn ten_gib_across_threads() {
    const CAP: u32 = 64 * 1024;
    let total = total_bytes();
    let mut buf = Shared(vec![0u64; (16 + CAP as usize) / 8]);
    let base = NonNull::new(buf.0.as_mut_ptr().cast::<u8>()).unwrap();
    // Start just below the u32 wrap so it is crossed at once, then every 4 GiB.
    // SAFETY: `buf` outlives both threads (joined below); one producer, one consumer.
    let (mut p, mut c) = unsafe {
        let mem = RingMemory::init(base, 16 + CAP as usize, CAP, u32::MAX - 1000, 0).unwrap();
        (Producer::new(mem).unwrap(), Consumer::new(mem))
    };
    let failed = Arc::new(AtomicBool::new(false));
    let f2 = failed.clone();
    let producer = std::thread::spawn(move || {
        let mut sent = 0u64;
        let mut seq = 0u64;
        let mut data = Vec::new();
        while sent < total && !f2.load(Ordering::Relaxed) {
            // Sizes from 8 bytes to 20 KiB, a different mix each message.
            let len = 8 + (common::mix(seq) % (20 * 1024)) as usize;
            data.resize(len, 0);
            data[..8].copy_from_slice(&seq.to_le_bytes());
            common::fill(&mut data[8..], seq);
            loop {
                match p.append(&data) {
                    Ok(()) => break,
                    Err(RingPushError::Push(PushError::Full)) => {
                        p.commit();
                        std::thread::yield_now();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            if seq % 3 == 0 {
                p.commit(); // batch some, publish others one by one
            }
            sent += len as u64;
            seq += 1;
        }
        p.commit();
        (seq, sent)
    });
    let mut seq = 0u64;
    let mut got = 0u64;
    let mut copy = Vec::new();
    let mut held = std::collections::VecDeque::new();
    while got < total {
        let Some(msg) = c.peek().unwrap() else {
            if let Some(m) = held.pop_front() {
                c.release_to(shmframes::ring::Message::end(&m));
            }
            std::thread::yield_now();
            continue;
        };
        let bytes: &[u8] = match c.payload(&msg) {
            Some(s) => s,
            None => {
                c.copy_payload(&msg, &mut copy);
                &copy
            }
        };
        let ok = bytes.len() >= 8
            && u64::from_le_bytes(bytes[..8].try_into().unwrap()) == seq
            && common::check(&bytes[8..], seq);
        if !ok {
            failed.store(true, Ordering::Relaxed);
            panic!("message {seq} lost, duplicated or torn ({} bytes)", bytes.len());
        }
        got += bytes.len() as u64;
        seq += 1;
        c.advance(&msg);
        // Hold up to two messages as leases, release in order.
        held.push_back(msg);
        if held.len() > 2 {
            let m = held.pop_front().unwrap();
            c.release_to(m.end());
        }
    }
    let (sent_seq, sent) = producer.join().unwrap();
    assert_eq!((seq, got), (sent_seq, sent));
    eprintln!("passed {:.2} GiB in {seq} messages", got as f64 / (1u64 << 30) as f64);
    drop(buf);
}
