//! Cross-thread runs shared by `benches/ring.rs` (criterion) and `benches/cross_thread.rs`
//! (alternating rounds against the limit): a producer thread and a consumer thread move `iters`
//! messages of `size` bytes through a ring in heap memory. (Pinning the two threads to CPUs 0
//! and 1 was tried: on this VM it made every variant 2-3x slower, so the scheduler places them.)

#![allow(dead_code)] // each bench uses part of it

use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmframes::ring::{Consumer, Producer, PushError, RingMemory, RingPushError};

/// Messages per commit and per release in batched runs (or fewer, when the ring fills).
pub const BATCH: u32 = 256;

/// What moves the messages.
#[derive(Clone, Copy, Debug)]
pub enum Ring {
    /// shmframes' `Producer` and `Consumer`: `append`/`commit`, `peek`/`payload`/`advance`/
    /// `release_to`, with every check they make.
    Ours,
    /// The limit for a header layout: the same wire format (u32 length prefix, wrapping u32
    /// indices, messages split at the ring's end) with nothing but the two atomics, the
    /// cached indices and the copies. `tail_at` is the byte offset of `tail` from `head`: 4 in
    /// the protocol's header (head, tail and the first data bytes share a cache line), 128 in
    /// a padded layout the protocol does not allow (data at 256), to show what sharing costs.
    Bare { tail_at: usize },
}

/// A page-aligned, zeroed heap buffer: the ring's 16-byte header, then its data area (at 16,
/// as in the protocol, or at 256 for the padded layout).
pub struct Buf {
    ptr: NonNull<u8>,
    layout: std::alloc::Layout,
    pub cap: u32,
    data_at: usize,
}

// SAFETY: plain memory; the threads that share it coordinate through atomics in it.
unsafe impl Send for Buf {}
// SAFETY: as above.
unsafe impl Sync for Buf {}

/// The data capacity used for messages of `size` bytes: room for four (and at least 64 KiB).
pub fn capacity_for_message(size: usize) -> u32 {
    shmframes::ring::capacity_for((4 * (size + 4)).max(64 * 1024) as u64).unwrap()
}

impl Buf {
    /// A ring for messages of `size` bytes in the protocol's layout (data at offset 16).
    pub fn for_message(size: usize) -> Buf {
        Buf::with_data_at(size, 16)
    }

    fn with_data_at(size: usize, data_at: usize) -> Buf {
        let cap = capacity_for_message(size);
        let layout = std::alloc::Layout::from_size_align(data_at + cap as usize, 4096).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).unwrap();
        Buf { ptr, layout, cap, data_at }
    }

    /// shmframes' roles on the buffer (its 16-byte header at the start, data right after).
    pub fn roles(&self) -> (Producer, Consumer) {
        // SAFETY: the buffer outlives the roles (callers drop them first); one of each role.
        unsafe {
            let mem = RingMemory::init(self.ptr, 16 + self.cap as usize, self.cap, 0, 0).unwrap();
            (Producer::new(mem).unwrap(), Consumer::new(mem))
        }
    }

    fn word(&self, at: usize) -> &AtomicU32 {
        assert!(at + 4 <= self.data_at && at % 4 == 0);
        // SAFETY: in the zeroed header area, aligned, used only as an atomic while `self` lives.
        unsafe { &*(self.ptr.as_ptr().add(at) as *const AtomicU32) }
    }

    /// (address, first piece, second piece) of `len` bytes at ring index `at`.
    fn piece(&self, at: u32, len: usize) -> (*mut u8, usize, usize) {
        let off = (at & (self.cap - 1)) as usize;
        let first = len.min(self.cap as usize - off);
        // SAFETY: `off < cap`: inside the data area.
        (unsafe { self.data().add(off) }, first, len - first)
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: `data_at` is inside the allocation.
        unsafe { self.ptr.as_ptr().add(self.data_at) }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `for_message` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// Moves `iters` messages of `size` bytes from a producer thread to a consumer thread. Unbatched: every message is published and released on its own. Batched: the
/// producer publishes every [`BATCH`] messages (or when full), the consumer releases after
/// draining what it sees. Returns the time from start until the consumer has every message.
pub fn run(ring: Ring, size: usize, iters: u64, batched: bool) -> Duration {
    let buf = match ring {
        Ring::Bare { tail_at } if tail_at >= 16 => Buf::with_data_at(size, 256),
        _ => Buf::for_message(size),
    };
    let msg = vec![0x33u8; size];
    let (buf, msg) = (&buf, &msg[..]);
    let start = Instant::now();
    std::thread::scope(|s| match ring {
        Ring::Ours => {
            let (p, c) = buf.roles();
            s.spawn(move || ours_consumer(c, iters, batched));
            s.spawn(move || ours_producer(p, msg, iters, batched));
        }
        Ring::Bare { tail_at } => {
            s.spawn(move || bare_consumer(buf, tail_at, iters, batched));
            s.spawn(move || bare_producer(buf, tail_at, msg, iters, batched));
        }
    });
    start.elapsed()
}

fn ours_consumer(mut cons: Consumer, iters: u64, batched: bool) {
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
}

fn ours_producer(mut p: Producer, msg: &[u8], iters: u64, batched: bool) {
    let batch = if batched { BATCH } else { 1 };
    let mut pending = 0u32;
    for _ in 0..iters {
        loop {
            match p.append(msg) {
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
}

fn bare_consumer(buf: &Buf, tail_at: usize, iters: u64, batched: bool) {
    let (head, tail) = (buf.word(0), buf.word(tail_at));
    let (mut read, mut cached_head, mut got) = (0u32, 0u32, 0u64);
    while got < iters {
        if cached_head == read {
            cached_head = head.load(Ordering::Acquire);
            if cached_head == read {
                std::hint::spin_loop();
                continue;
            }
        }
        let mut drained = 0;
        while read != cached_head && (batched || drained == 0) {
            let mut prefix = [0u8; 4];
            let (p, a, b) = buf.piece(read, 4);
            // SAFETY: published bytes (before `cached_head`) of the data area.
            unsafe {
                std::ptr::copy_nonoverlapping(p, prefix.as_mut_ptr(), a);
                std::ptr::copy_nonoverlapping(buf.data(), prefix.as_mut_ptr().add(a), b);
            }
            let len = u32::from_le_bytes(prefix);
            let (p, _, _) = buf.piece(read.wrapping_add(4), len as usize);
            // SAFETY: as above: the first payload byte.
            black_box(unsafe { *p });
            read = read.wrapping_add(4 + len);
            got += 1;
            drained += 1;
        }
        tail.store(read, Ordering::Release);
    }
}

fn bare_producer(buf: &Buf, tail_at: usize, msg: &[u8], iters: u64, batched: bool) {
    let (head, tail) = (buf.word(0), buf.word(tail_at));
    let batch = if batched { BATCH } else { 1 };
    let needed = 4 + msg.len() as u32;
    let (mut write, mut cached_tail, mut pending) = (0u32, 0u32, 0u32);
    for _ in 0..iters {
        if buf.cap - write.wrapping_sub(cached_tail) < needed {
            cached_tail = tail.load(Ordering::Acquire);
            if buf.cap - write.wrapping_sub(cached_tail) < needed && pending > 0 {
                head.store(write, Ordering::Release); // full: publish what is pending
                pending = 0;
            }
            while buf.cap - write.wrapping_sub(cached_tail) < needed {
                std::hint::spin_loop();
                cached_tail = tail.load(Ordering::Acquire);
            }
        }
        let prefix = (msg.len() as u32).to_le_bytes();
        for (at, src) in [(write, &prefix[..]), (write.wrapping_add(4), msg)] {
            let (p, a, b) = buf.piece(at, src.len());
            // SAFETY: free bytes of the data area (checked against the tail above).
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr(), p, a);
                std::ptr::copy_nonoverlapping(src.as_ptr().add(a), buf.data(), b);
            }
        }
        write = write.wrapping_add(needed);
        pending += 1;
        if pending == batch {
            head.store(write, Ordering::Release);
            pending = 0;
        }
    }
    head.store(write, Ordering::Release);
}
