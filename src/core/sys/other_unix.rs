//! Other Unix systems (the BSDs): correct, slower to react. macOS has its own backend
//! (`macos.rs`), which takes only the mapping stubs below (no take-back by moving) from here.
//!
//! - Segments are files in `$TMPDIR/shmframes/` mapped shared (macOS has no `/dev/shm`, and
//!   `shm_open` objects cannot be linked or renamed, which race-free creation needs). They are
//!   therefore not visible to cpp_py_shmbuf's `shm_open` on these systems yet.
//! - Locks are classic `fcntl` record locks: the kernel still drops them when a process dies,
//!   but they belong to the process, so two roles inside one process do not exclude each other.
//! - There is no futex: waits are bounded timed sleeps (at most 2 ms), wake-ups are no-ops.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::unix::{get_lock, set_lock};
use super::{LockState, WaitWord};

/// Where segments live on this platform.
pub fn shm_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("shmframes");
    if !dir.exists() {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::create_dir_all(&dir).is_ok() {
            // Shared between users like /dev/shm: sticky, world-writable.
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
        }
    }
    dir.join(name)
}

/// Sizes the file. (No portable way to reserve pages up front here.)
pub fn allocate(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)
}

/// Takes a process-owned record lock on one byte, without blocking.
pub fn try_lock_byte(file: &File, byte: u64) -> io::Result<bool> {
    set_lock(file, byte, libc::F_SETLK)
}

/// The file to map: `file` itself (`None`). Classic record locks belong to the process, not to
/// a description, and a fork child never inherits them; and closing any descriptor of the file,
/// a second one included, would drop them all.
pub fn description_for_mapping(_file: &File) -> io::Result<Option<File>> {
    Ok(None)
}

/// Moving a mapping while keeping its range (`MREMAP_DONTUNMAP`) is Linux's: never here.
///
/// # Safety
/// None needed (nothing happens); the signature matches Linux's.
pub unsafe fn move_keeping_range(
    _addr: std::ptr::NonNull<u8>,
    _len: usize,
) -> io::Result<std::ptr::NonNull<u8>> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Asks whether another process holds the byte's lock.
pub fn probe_lock_byte(file: &File, byte: u64) -> io::Result<LockState> {
    get_lock(file, byte, libc::F_GETLK)
}

/// A process's command name: not portable to find out here (empty).
pub fn process_name(_pid: u32) -> String {
    String::new()
}

/// Who has a file open is not portable to find out here: nobody is named.
pub fn processes_using(_path: &std::path::Path) -> Vec<(u32, String)> {
    Vec::new()
}

/// No futex: sleeps at most 2 ms (or `timeout`) unless the word already changed.
pub fn wait_word(word: &AtomicU32, expected: u32, timeout: Duration) {
    if word.load(Ordering::Acquire) == expected {
        std::thread::sleep(timeout.min(crate::timing::FALLBACK_POLL));
    }
}

/// No futex: sleepers poll, nothing to wake.
pub fn wake_word(_word: &AtomicU32) {}

/// No robust futexes or multi-word waits here: liveness is polled through the lock bytes.
pub fn kernel_watches_liveness() -> bool {
    false
}

/// No multi-word wait: the caller falls back to timed single waits.
pub fn wait_any(_words: &[WaitWord<'_>], _timeout: Option<Duration>) -> bool {
    false
}

/// No futex: nothing to wake.
pub fn wake_local(_word: &AtomicU32) {}

/// No futex: polls.
pub fn wait_local(word: &AtomicU32, expected: u32) {
    wait_word(word, expected, crate::timing::FALLBACK_POLL);
}

/// No robust futexes: nothing can own liveness words here ([`kernel_watches_liveness`] is
/// `false`, so no keeper asks).
///
/// # Safety
/// None needed: it does nothing.
pub unsafe fn own_liveness_words(
    _words: &[super::liveness::Watched],
    _node_offset: isize,
) -> Option<OwnedWords> {
    None
}

/// Never made here (see [`own_liveness_words`]).
pub struct OwnedWords;

/// Liveness words are never owned here, so never found dead by a probe.
pub fn owner_found_dead(
    _word: &AtomicU32,
    _node: &std::sync::atomic::AtomicU64,
    _seen: u32,
) -> Option<bool> {
    Some(false)
}

/// Not used without robust futexes.
pub fn block_signals() {}

/// Never changes here: waits poll their checks (no multi-word wait to wake).
pub static SIGNAL_WORD: AtomicU32 = AtomicU32::new(0);

/// Nothing to hook: waits poll their checks.
pub fn hook_signals() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_locks_and_timed_waits() {
        let path =
            std::env::temp_dir().join(format!("shmframes-other-unix-{}", std::process::id()));
        let f = File::create(&path).unwrap();
        assert!(try_lock_byte(&f, 0).unwrap());
        // Our own process's lock is not reported as a conflict (process-owned locks).
        assert_eq!(probe_lock_byte(&f, 0).unwrap(), LockState::Free);
        let _ = std::fs::remove_file(&path);
        let w = AtomicU32::new(1);
        let t = std::time::Instant::now();
        wait_word(&w, 1, Duration::from_secs(60));
        wait_word(&w, 0, Duration::from_secs(60));
        wake_word(&w);
        assert!(t.elapsed() < Duration::from_secs(30));
    }
}
