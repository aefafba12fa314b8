//! Liveness the kernel reports: a peer's death wakes whoever waits on it, within microseconds
//! and with no polling.
//!
//! Each role (the producer, each reader) runs a *keeper*: a small thread that exists only to
//! own *liveness words* in the segment. It registers them in its own robust-futex list
//! (`set_robust_list`), writes its thread id into each, blocks every signal and sleeps until
//! the role ends. When the keeper dies (its process is killed, crashes, exits or execs without
//! ending the role: every way a process can go), the kernel walks that list and, for each word
//! still holding the keeper's thread id, sets `OWNER_DIED` and wakes one waiter that
//! announced itself with `OWNER_WAITERS`. A waiter therefore sleeps in `futex_waitv` on its
//! data word *and* the peer's liveness word at once: new data and the peer's death both wake
//! it, and nothing else does.
//!
//! Why it cannot miss a death:
//! - The kernel marks the word whatever the cause of death; no code of the dying process runs.
//! - The keeper is a thread of its own, alive as long as the role (the `Writer`, or the reader's
//!   place with its frames): a user thread that exits while the role lives on (a `Writer` moved
//!   to another thread, a Python reader used from a worker) owns nothing, so its exit marks
//!   nothing.
//! - The keeper registers its list *before* it writes its thread id into the words, and clears
//!   the words *before* it unregisters: a word never names a keeper the kernel would not
//!   mark. A word that is 0 is not watched (no keeper: an old kernel, or polling asked for):
//!   the waiter then checks the role's lock byte on a timer, as before.
//! - A waiter sets `OWNER_WAITERS` with a compare-and-swap and passes the value it wrote to
//!   `futex_waitv`, which compares it in the kernel before sleeping: a death between the
//!   check and the sleep changes the word, and the sleep does not begin.
//! - Thread ids are per PID namespace, but the kernel compares the word with the dying
//!   thread's id *in that thread's own namespace*, which is what the keeper wrote: readers in
//!   another PID namespace (another container sharing `/dev/shm`) only look at the flag bits.
//!
//! A fork child has no keeper (threads are not copied): it owns no role, and its exit marks
//! nothing.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::sys;

/// What a liveness word says about its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Life {
    /// Nobody's keeper watches it (0): fall back to the lock byte.
    Unwatched,
    /// A live keeper owns it: its death will be marked.
    Alive,
    /// The kernel found its owner dead.
    Dead,
}

/// A liveness word in a segment and the 8-byte field beside it: its keeper's robust-list node
/// on Linux, its keeper's thread id on macOS (what tells that keeper from any other), unused on
/// Windows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LiveWord<'a> {
    pub(crate) word: &'a AtomicU32,
    pub(crate) node: &'a AtomicU64,
}

/// Reads a liveness word.
pub(crate) fn life(live: LiveWord<'_>) -> Life {
    // Acquire: pairs with the kernel's (fully ordered) compare-and-swap at the owner's death,
    // and with the keeper's Release stores.
    let v = live.word.load(Ordering::Acquire);
    if v & sys::OWNER_DIED != 0 {
        Life::Dead
    } else if v & sys::OWNER_MASK == 0 {
        Life::Unwatched
    } else {
        match sys::owner_found_dead(live.word, live.node, v) {
            Some(true) => Life::Dead,
            Some(false) => Life::Alive,
            // The kernel cannot tell (macOS without the right to ask): probe the lock.
            None => Life::Unwatched,
        }
    }
}

/// Writes `OWNER_DIED` into a liveness word that still holds `seen`: its owner was found dead
/// by someone other than the kernel (Windows' abandoned mutexes, macOS's watcher and probes).
#[cfg_attr(not(any(windows, target_os = "macos")), allow(dead_code))]
pub(crate) fn mark_dead(word: &AtomicU32, seen: u32) {
    if seen & sys::OWNER_MASK != 0 && seen & sys::OWNER_DIED == 0 {
        // AcqRel: a waiter that sees the flag sees what the finder saw.
        let _ = word.compare_exchange(
            seen,
            seen | sys::OWNER_DIED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// Makes `word` wake us when its owner dies (sets `OWNER_WAITERS`), and returns the value to
/// sleep on; `None` when the owner is dead already or nobody watches the word.
pub(crate) fn arm(word: &AtomicU32) -> Option<u32> {
    let mut v = word.load(Ordering::Acquire);
    loop {
        if v & sys::OWNER_DIED != 0 || v & sys::OWNER_MASK == 0 {
            return None;
        }
        if v & sys::OWNER_WAITERS != 0 {
            return Some(v);
        }
        // SYNC POINT: death (the kernel's compare-and-swap at the owner's death and this one
        // are ordered on the word: either we see OWNER_DIED here, or the kernel sees WAITERS
        // and wakes us; `futex_waitv` re-compares the value before sleeping).
        match word.compare_exchange_weak(
            v,
            v | sys::OWNER_WAITERS,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return Some(v | sys::OWNER_WAITERS),
            Err(now) => v = now,
        }
    }
}

/// A liveness word as a sleep can use it (see [`watch`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Watch<'a> {
    /// Armed: sleep on this, and the owner's death wakes the sleep.
    Armed(sys::WaitWord<'a>),
    /// The owner is dead already.
    Dead,
    /// Nobody watches the word: the caller polls the owner's lock byte instead.
    Unwatched,
}

/// [`arm`]s a shared liveness word for a sleep, saying why when it cannot be slept on.
pub(crate) fn watch(live: LiveWord<'_>) -> Watch<'_> {
    match arm(live.word) {
        Some(expected) => Watch::Armed(sys::WaitWord {
            word: live.word,
            expected,
            waker: sys::Waker::Death { node: live.node },
        }),
        None if life(live) == Life::Dead => Watch::Dead,
        None => Watch::Unwatched,
    }
}

/// A liveness word and its robust-list node in a segment: the node is a pointer-sized field
/// `node - word` bytes after the word, the same distance for every word of one keeper.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Watched {
    pub(crate) word: *const AtomicU32,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // Linux's robust list only
    pub(crate) node: *mut *mut std::ffi::c_void,
}

/// The thread that owns a role's liveness words until it is dropped (see the module docs).
/// Drop it before the segment is unmapped.
#[derive(Debug)]
pub(crate) struct Keeper {
    stop: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The process that started it: a fork child has a copy of this value but not the thread.
    pid: u32,
}

/// The words, handed to the keeper's thread.
struct Words(Vec<Watched>, isize);

// SAFETY: the pointers lead into a mapping the Keeper's owner keeps alive until the keeper's
// thread has been joined (Keeper::drop); only atomics and the robust-list nodes are accessed.
unsafe impl Send for Words {}

impl Keeper {
    /// Starts a keeper owning `words`, each `node_offset` bytes from its node. Returns `None`,
    /// leaving the words 0 (unwatched), when the kernel cannot watch them.
    ///
    /// # Safety
    /// The words and nodes must stay mapped, and used by nobody else's keeper, until the
    /// returned keeper is dropped.
    pub(crate) unsafe fn start(words: Vec<Watched>, node_offset: isize) -> Option<Keeper> {
        if !sys::kernel_watches_liveness() || words.is_empty() {
            return None;
        }
        let stop = Arc::new(AtomicU32::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<bool>(1);
        let words = Words(words, node_offset);
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("shmframes-keeper".into())
            .stack_size(64 * 1024)
            .spawn(move || keep(words, &flag, ready_tx))
            .ok()?;
        match ready_rx.recv() {
            Ok(true) => Some(Keeper { stop, thread: Some(thread), pid: std::process::id() }),
            _ => {
                let _ = thread.join();
                None
            }
        }
    }
}

fn keep(words: Words, stop: &AtomicU32, ready: std::sync::mpsc::SyncSender<bool>) {
    let Words(words, offset) = words;
    sys::block_signals();
    // SAFETY: the words and nodes are live in the mapping until this thread is joined
    // (Keeper::start's contract), and no other keeper uses them.
    // `_owned` (not `_`: it must live) lets go of what watched the words when this returns.
    let Some(_owned) = (unsafe { sys::own_liveness_words(&words, offset) }) else {
        let _ = ready.send(false);
        return;
    };
    let _ = ready.send(true);
    while stop.load(Ordering::Acquire) == 0 {
        sys::wait_local(stop, 0);
    }
    // The role ended: unwatch the words first (a sleeper on one is woken and sees 0), then
    // let go of what watched them (`_owned`, dropped on return).
    for w in &words {
        // SAFETY: as above; the mapping outlives this thread (Keeper::drop joins it).
        let word = unsafe { &*w.word };
        word.store(0, Ordering::Release);
        sys::wake_word(word);
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            // A fork child: the thread is its parent's, and so are the words.
            std::mem::forget(self.thread.take());
            return;
        }
        self.stop.store(1, Ordering::Release);
        sys::wake_local(&self.stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
