//! The ring in one process, the rows cpp_py_shmbuf publishes, each beside a plain memcpy of the
//! same bytes measured in the same run (the physical limit).
//!
//! `cargo bench --bench ring`
//!
//! - `write_read/<size>`: one thread writes a message (one copy into the ring) and reads it in
//!   place (no copy: the payload slice is touched, then released). Time per message.
//! - `frame_write_read/1080p_bgr_6220800B`: the same through `Writer::write` and
//!   `Reader::try_read` (1 buffered frame, all this loop needs: one cache-hot slot).
//! - `memcpy/<size>`: copying the same bytes once into the same destination (cache-hot).
//! - `memcpy_ring_footprint/<size>`: copying them into successive places of a buffer as large as
//!   the ring (the same memory traffic as the ring's writes: the honest limit for big frames).
//! - `cross_thread/<size>`: a producer thread and a consumer thread, publishing and releasing every message (one `head` and one `tail` store per message).
//!   `benches/cross_thread.rs` runs these against the bare-atomics limit in alternating rounds:
//!   on this VM, criterion's figures for them swing by 2-4x from run to run with where the
//!   hypervisor places the two vCPUs.
//! - `cross_thread_batched/<size>`: the same, but the producer commits when the ring is full
//!   (or every 256 messages) and the consumer releases after draining what is published: the
//!   `append`/`commit` and `peek`/`release_to` APIs used for throughput. `head` and `tail` share
//!   a cache line (the protocol fixes their offsets), so batching is what avoids bouncing that
//!   line between the cores on every message.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "shared/cross.rs"]
mod cross;
use cross::Buf;

const SIZES: [(usize, &str); 4] =
    [(64, "64B"), (1024, "1KiB"), (4096, "4KiB"), (6_220_800, "1080p_bgr_6220800B")];

fn write_read(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_read");
    for (size, label) in SIZES {
        let msg = vec![0x5Au8; size];
        let buf = Buf::for_message(size);
        let (mut p, mut cons) = buf.roles();
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

    frame_write_read(c);

    let mut g = c.benchmark_group("memcpy");
    for (size, label) in SIZES {
        let src = vec![0x5Au8; size];
        let mut dst = vec![0u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        if size > 1 << 20 {
            g.sample_size(30);
        }
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("memcpy_ring_footprint");
    for (size, label) in SIZES {
        let src = vec![0x5Au8; size];
        let cap = cross::capacity_for_message(size);
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

/// The product's path in one process at 1080p: `Writer::write` (one copy into the ring) and
/// `Reader::try_read` (in place: first and last byte touched), the frame released before the
/// next write, as by a reader that keeps up. One buffered frame is all this loop ever has in
/// flight; the writer then reuses one cache-hot slot.
fn frame_write_read(c: &mut Criterion) {
    use shmframes::{PixelFormat, Reader, ReaderOptions, Writer, WriterOptions};
    let name = format!("shmframes-bench-ring-{}", std::process::id());
    let mut opts = WriterOptions::new(1920, 1080, PixelFormat::Bgr24).unwrap();
    opts.buffer_frames = 1; // this loop never has more than one frame in flight
    let mut w = Writer::create(&name, &opts).unwrap(); // removed from /dev/shm when dropped
    let mut r = Reader::open(&name, &ReaderOptions::default()).unwrap();
    let frame = vec![0x5Au8; 6_220_800];
    let mut g = c.benchmark_group("frame_write_read");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.sample_size(30);
    g.bench_function("1080p_bgr_6220800B", |b| {
        b.iter(|| {
            assert!(w.write(black_box(&frame), None, None).unwrap());
            let f = r.try_read().unwrap().expect("the frame just written");
            let p = f.pixels();
            black_box(p[0] ^ p[p.len() - 1]);
        })
    });
    g.finish();
}

fn cross_thread(c: &mut Criterion) {
    for (group, batched) in [("cross_thread", false), ("cross_thread_batched", true)] {
        let mut g = c.benchmark_group(group);
        for (size, label) in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            if size > 1 << 20 {
                g.sample_size(20);
            }
            g.bench_function(BenchmarkId::from_parameter(label), |b| {
                b.iter_custom(|iters| cross::run(cross::Ring::Ours, size, iters, batched))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, write_read, cross_thread);
criterion_main!(benches);
