//! Fork safety (issue 16, point 1): a child made by `fork()` never releases, frees, ends or
//! unlinks what its parent owns, and its inherited descriptors do not keep its parent's roles
//! alive. Each test forks the test process itself (as `multiprocessing` and PyTorch's
//! `DataLoader` workers do); the child only drops or tries things, then `_exit`s.

#![cfg(unix)] // fork() is Unix's

mod common;

use std::time::Duration;

use common::Channel;
use shmframes::{readers_of, Error, PixelFormat, Reader, ReaderOptions, Writer, WriterOptions};

const T: Option<Duration> = Some(Duration::from_secs(5));

/// A forked child, killed (if still running) and reaped on drop.
struct Forked(libc::pid_t);

impl Forked {
    /// Runs `f` in a child; its return value is the child's exit status (a panic: 101). The
    /// child never returns into the test harness. Returns once the child runs (its fork
    /// handlers have run: until then it still shares every description of its parent).
    fn run(f: impl FnOnce() -> i32) -> Forked {
        let mut started = [0; 2];
        // SAFETY: a writable array of two descriptors.
        assert_eq!(unsafe { libc::pipe(started.as_mut_ptr()) }, 0);
        // SAFETY: the child only runs `f` (allocation works after fork: glibc resets malloc's
        // locks) and leaves with `_exit`, never unwinding into the parent's harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        let mut byte = [1u8];
        if pid == 0 {
            // SAFETY: one byte from a local to our pipe end, then both ends closed.
            unsafe {
                libc::write(started[1], byte.as_ptr().cast(), 1);
                libc::close(started[0]);
                libc::close(started[1]);
            }
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: ends the child at once, without running the parent's atexit handlers.
            unsafe { libc::_exit(code) };
        }
        // SAFETY: one byte into a local from our pipe end, then both ends closed.
        unsafe {
            libc::close(started[1]);
            assert_eq!(
                libc::read(started[0], byte.as_mut_ptr().cast(), 1),
                1,
                "the child did not start"
            );
            libc::close(started[0]);
        }
        Forked(pid)
    }

    /// Waits for the child's exit status.
    fn wait(mut self) -> i32 {
        let mut status = 0;
        // SAFETY: our own child; `status` is a writable int.
        assert_eq!(unsafe { libc::waitpid(self.0, &mut status, 0) }, self.0);
        self.0 = 0;
        assert!(libc::WIFEXITED(status), "child ended by a signal: {status:#x}");
        libc::WEXITSTATUS(status)
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        if self.0 > 0 {
            // SAFETY: our own child, killed and reaped so that nothing outlives the test.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
                libc::waitpid(self.0, std::ptr::null_mut(), 0);
            }
        }
    }
}

fn writer(name: &str, buffer_frames: u32) -> Writer {
    let mut o = WriterOptions::new(16, 16, PixelFormat::Gray8).unwrap();
    o.buffer_frames = buffer_frames;
    Writer::create(name, &o).unwrap()
}

fn publish(w: &mut Writer, value: u8) {
    let mut slot = w.try_frame().unwrap().expect("room for a frame");
    slot.pixels().fill(value);
    slot.publish();
}

#[test]
fn a_child_that_drops_its_copies_releases_nothing_of_its_parent() {
    let ch = Channel::new("forkdrop");
    let mut w = writer(&ch, 4);
    let mut r = Reader::open(&ch, &ReaderOptions::default()).unwrap();
    let mut held = Vec::new();
    for v in 0..3 {
        publish(&mut w, v);
        held.push(r.read(T).unwrap().unwrap());
    }
    // The child drops the frames and the reader (what a Python child's finalizers do), and may
    // not read with its parent's reader.
    let (held_in_child, r_in_child) = (&held as *const Vec<shmframes::Frame>, &r as *const Reader);
    let child = Forked::run(move || {
        // SAFETY: the child's own copies of the parent's values (fork copied the memory); the
        // child never touches the originals again, so each is dropped once in each process.
        let (held, r) = unsafe { (std::ptr::read(held_in_child), std::ptr::read(r_in_child)) };
        if !held.iter().enumerate().all(|(i, f)| f.pixels().iter().all(|&b| b == i as u8)) {
            return 2; // the child may view what its parent held
        }
        drop(held);
        let mut r = r;
        let e = r.read(Some(Duration::ZERO)).unwrap_err();
        if !matches!(e, Error::ForkedChild { .. }) || !e.to_string().contains("open a new reader") {
            return 3;
        }
        drop(r);
        0
    });
    assert_eq!(child.wait(), 0);
    // Had the child released the parent's frames, these writes would overwrite them.
    for v in 10..40 {
        publish(&mut w, v);
    }
    for (i, f) in held.iter().enumerate() {
        assert!(
            f.pixels().iter().all(|&b| b == i as u8),
            "held frame {i} changed under the parent"
        );
    }
    assert_eq!(readers_of(&ch).unwrap().len(), 1, "the child freed the parent's reader place");
    drop(held);
    assert!(r.read(T).unwrap().is_some(), "the parent reads on");
}

#[test]
fn a_child_leaving_a_writer_does_not_end_the_parents_stream() {
    let ch = Channel::new("forkwriter");
    let mut w = writer(&ch, 2);
    let mut r = Reader::open(&ch, &ReaderOptions::default()).unwrap();
    let w_in_child = &w as *const Writer;
    let child = Forked::run(move || {
        // SAFETY: as above, the child's own copy.
        let mut w = unsafe { std::ptr::read(w_in_child) };
        let refused = matches!(w.try_frame(), Err(Error::ForkedChild { .. }));
        drop(w); // ends nothing, unlinks nothing
        if refused {
            0
        } else {
            4
        }
    });
    assert_eq!(child.wait(), 0);
    assert!(ch.exists(), "the child unlinked the parent's channel");
    publish(&mut w, 7);
    let f = r.read(T).unwrap().expect("the stream goes on");
    assert!(f.pixels().iter().all(|&b| b == 7));
    Reader::open(&ch, &ReaderOptions::default()).expect("new readers still find the channel");
}

#[test]
fn a_living_child_does_not_keep_a_dead_producer_alive() {
    let ch = Channel::new("forklock");
    let name = ch.0.clone();
    // The producer is itself a child (so that the test can kill it), with a child of its own
    // that outlives it holding copies of every descriptor.
    let (read_end, write_end) = {
        let mut fds = [0; 2];
        // SAFETY: a writable array of two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        (fds[0], fds[1])
    };
    let producer = Forked::run(move || {
        let w = writer(&name, 2);
        let grandchild = Forked::run(|| {
            std::thread::sleep(Duration::from_secs(30));
            0
        });
        let pid = grandchild.0.to_ne_bytes();
        // SAFETY: writing 4 bytes from a local to our pipe end.
        unsafe { libc::write(write_end, pid.as_ptr().cast(), 4) };
        std::mem::forget(grandchild); // outlives us (reaped by init or the test's kill)
        std::thread::sleep(Duration::from_secs(30));
        drop(w);
        0
    });
    let mut pid = [0u8; 4];
    assert_eq!(
        // SAFETY: reading 4 bytes into a local buffer from our pipe end.
        unsafe { libc::read(read_end, pid.as_mut_ptr().cast(), 4) },
        4,
        "the producer did not start"
    );
    // The grandchild is reparented when its parent dies (we cannot reap it): killed on drop.
    let _grandchild = Orphan(i32::from_ne_bytes(pid));
    let mut r = Reader::open(&ch, &ReaderOptions::default()).unwrap();
    // Kill the producer; its child lives on.
    drop(producer);
    let started = std::time::Instant::now();
    let e = loop {
        match r.read(Some(Duration::from_secs(5))) {
            Err(e) => break e,
            Ok(None) => panic!("no word from a dead producer in 5 s"),
            Ok(Some(_)) => {}
        }
    };
    assert!(matches!(e, Error::ProducerGone { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2), "noticed after {:?}", started.elapsed());
    // Its lock is gone too: a new producer may replace the stale channel (within moments, as
    // in the test below: another test's brand-new child may share descriptions for an instant).
    let mut o = WriterOptions::new(16, 16, PixelFormat::Gray8).unwrap();
    o.buffer_frames = 2;
    drop(
        retry_for(Duration::from_secs(2), || Writer::create(&ch, &o))
            .expect("a dead producer's channel can be replaced"),
    );
    // SAFETY: closing our pipe ends.
    unsafe {
        libc::close(read_end);
        libc::close(write_end);
    }
}

/// A process we made but cannot reap (its parent died): killed on drop, reaped by init.
struct Orphan(libc::pid_t);

impl Drop for Orphan {
    fn drop(&mut self) {
        // SAFETY: signalling a process this test made (it lives 30 s at most, so its pid
        // cannot have been reused meanwhile).
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

#[test]
fn a_living_child_does_not_keep_a_closed_reader_busy() {
    // A raw channel has one consumer: its lock says "taken" while it lives.
    let ch = Channel::new("forkbusy");
    let mut o = WriterOptions::new(8, 8, PixelFormat::Bgr24).unwrap();
    o.raw = true;
    let _w = Writer::create(&ch, &o).unwrap();
    let opts = ReaderOptions { raw: Some(o.shape), ..Default::default() };
    let r = Reader::open(&ch, &opts).unwrap();
    let child = Forked::run(|| {
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    drop(r);
    // Within moments: a child another test thread forks just now shares every description
    // until it runs its fork handler (microseconds, or a scheduling delay on a busy machine);
    // our own child, which lives on, never does.
    let again = retry_for(Duration::from_secs(2), || Reader::open(&ch, &opts));
    drop(child);
    again.expect("the reader closed; its fork child holds no role");
}

/// `f` again while it fails, for up to `limit`: see the comment at its uses.
fn retry_for<T, E>(limit: Duration, mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let end = std::time::Instant::now() + limit;
    loop {
        match f() {
            Err(_) if std::time::Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(5))
            }
            r => return r,
        }
    }
}
