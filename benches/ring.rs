//! The ring in one process, the rows cpp_py_shmbuf publishes, each beside a plain memcpy of the
//! same bytes measured in the same run (the physical limit).
//!
//! `cargo bench --bench ring`
//!
//! - `write_read/<size>`: one thread writes a message (one copy into the ring) and reads it in
//!   place (no copy: the payload slice is touched, then released). Time per message.
//! - `memcpy/<size>`: copying the same bytes once into the same destination (cache-hot).
//! - `memcpy_ring_footprint/<size>`: copying them into successive places of a buffer as large as
//!   the ring (the same memory traffic as the ring's writes: the honest limit for big frames).
//! - `cross_thread/<size>`: a producer thread and a consumer thread, publishing and releasing
//!   every message (one `head` and one `tail` store per message).
//! - `cross_thread_batched/<size>`: the same, but the producer commits when the ring is full
//!   (or every 256 messages) and the consumer releases after draining what is published: the
//!   `append`/`commit` and `peek`/`release_to` APIs used for throughput. `head` and `tail` share
//!   a cache line (the protocol fixes their offsets), so batching is what avoids bouncing that
//!   line between the cores on every message.

use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmframes::ring::{Consumer, Producer, PushError, RingMemory, RingPushError};

const SIZES: [(usize, &str); 4] = [(64, "64B"), (1024, "1KiB"), (4096, "4KiB"), (6_220_800, "1080p_bgr_6220800B")];

/// A page-aligned, zeroed heap buffer holding a ring big enough for several messages.
struct Buf {
    ptr: NonNull<u8>,
    layout: std::alloc::Layout,
}

impl Buf {
    fn for_message(size: usize) -> (Buf, u32) {
        let cap = shmframes::ring::capacity_for((4 * (size + 4)).max(64 * 1024) as u64).unwrap();
        let layout = std::alloc::Layout::from_size_align(16 + cap as usize, 4096).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).unwrap();
        (Buf { ptr, layout }, cap)
    }

    fn ring(&self, cap: u32) -> (Producer, Consumer) {
        // SAFETY: the buffer outlives the roles (benches drop them first); one of each role.
        unsafe {
            let mem = RingMemory::init(self.ptr, self.layout.size(), cap, 0, 0).unwrap();
            (Producer::new(mem).unwrap(), Consumer::new(mem))
        }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `for_message` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

// SAFETY: the buffer is plain memory; the roles made from it coordinate through atomics.
unsafe impl Send for Buf {}
// SAFETY: as above.
unsafe impl Sync for Buf {}

fn write_read(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_read");
    for (size, label) in SIZES {
        let msg = vec![0x5Au8; size];
        let (buf, cap) = Buf::for_message(size);
        let (mut p, mut cons) = buf.ring(cap);
        g.throughput(Throughput::Bytes(size as u64));
        if size > 1 << 20 {
            g.sample_size(30);
        }
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                p.push(black_box(&msg)).unwrap();
                let m = cons.peek().unwrap().unwrap();
                let first = cons.payload(&m).map_or(0, |s| s[0] ^ s[s.len() - 1]);
                black_box(first);
                cons.advance(&m);
                cons.release_to(m.end());
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("memcpy");
    for (size, label) in SIZES {
        let src = vec![0x5Au8; size];
        let mut dst = vec![0u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        if size > 1 << 20 {
            g.sample_size(30);
        }
        g.bench_function(BenchmarkId::from_parameter(label), |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    }
    g.finish();

    let mut g = c.benchmark_group("memcpy_ring_footprint");
    for (size, label) in SIZES {
        let src = vec![0x5Au8; size];
        let (_, cap) = Buf::for_message(size);
        let mut dst = vec![0u8; cap as usize + size];
        let mut off = 0usize;
        g.throughput(Throughput::Bytes(size as u64));
        if size > 1 << 20 {
            g.sample_size(30);
        }
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                dst[off..off + size].copy_from_slice(black_box(&src));
                off = (off + size + 4) % cap as usize;
            })
        });
    }
    g.finish();
}

/// Moves `iters` messages of `size` bytes from a producer thread to a consumer thread.
/// Unbatched: every message is committed and released on its own. Batched: the producer
/// commits every 256 messages (or when full), the consumer releases after draining.
fn cross_thread_run(size: usize, iters: u64, batched: bool) -> std::time::Duration {
    let (buf, cap) = Buf::for_message(size);
    let (mut p, mut cons) = buf.ring(cap);
    let msg = vec![0x33u8; size];
    let batch = if batched { 256 } else { 1 };
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut got = 0u64;
            while got < iters {
                let mut end = None;
                while let Some(m) = cons.peek().unwrap() {
                    black_box(cons.payload(&m).map_or(0, |s| s[0]));
                    cons.advance(&m);
                    got += 1;
                    end = Some(m.end());
                    if !batched {
                        break; // release this one message at once
                    }
                }
                match end {
                    Some(e) => cons.release_to(e),
                    None => std::hint::spin_loop(),
                }
            }
        });
        let mut pending = 0u32;
        for _ in 0..iters {
            loop {
                match p.append(&msg) {
                    Ok(()) => break,
                    Err(RingPushError::Push(PushError::Full)) => {
                        p.commit();
                        pending = 0;
                        std::hint::spin_loop();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            pending += 1;
            if pending == batch {
                p.commit();
                pending = 0;
            }
        }
        p.commit();
    });
    let t = start.elapsed();
    drop(buf);
    t
}

fn cross_thread(c: &mut Criterion) {
    for (group, batched) in [("cross_thread", false), ("cross_thread_batched", true)] {
        let mut g = c.benchmark_group(group);
        for (size, label) in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            if size > 1 << 20 {
                g.sample_size(20);
            }
            g.bench_function(BenchmarkId::from_parameter(label), |b| b.iter_custom(|iters| cross_thread_run(size, iters, batched)));
        }
        g.finish();
    }
}

criterion_group!(benches, write_read, cross_thread);
criterion_main!(benches);
