//! Linux: `/dev/shm` files, futexes on shared words, OFD byte-range locks.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::unix::{get_lock, set_lock, LockState};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Where POSIX shared-memory objects live: `shm_open("/name")` is `/dev/shm/name`.
pub fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

/// Sizes the object to `len` bytes and allocates its pages now, so that a full `/dev/shm`
/// fails here (ENOSPC) and not later as a SIGBUS on first touch (tmpfs allocates lazily).
pub fn allocate(file: &File, len: u64) -> io::Result<()> {
    let len_off = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: plain syscall on a valid fd owned by `file`.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len_off) };
    match rc {
        0 => Ok(()),
        // Filesystems without fallocate: size it and accept lazy allocation.
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Takes an exclusive open-file-description lock on one byte, without blocking. The kernel
/// releases it when the last descriptor of this open file is closed, including when the
/// process dies by SIGKILL. Returns `false` if someone else holds it.
pub fn try_lock_byte(file: &File, byte: u64) -> io::Result<bool> {
    set_lock(file, byte, libc::F_OFD_SETLK)
}

/// Asks whether anybody other than this open file description holds the byte's lock.
pub fn probe_lock_byte(file: &File, byte: u64) -> io::Result<LockState> {
    get_lock(file, byte, libc::F_OFD_GETLK)
}

/// Sleeps while `*word == expected`, for at most `timeout`. Returns early on a wake-up, a
/// changed value, a signal or the timeout; callers always re-check their condition.
///
/// The word may live in memory shared with other processes: the futex is not private.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word` (valid for the call) and the
    // timespec; without FUTEX_PRIVATE_FLAG the kernel keys the wait on the shared page, so a
    // wake from another process mapping the same object reaches us.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every waiter sleeping on `word`, in any process.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key; it does not dereference user memory
    // beyond validating the mapping.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX, 0usize, 0usize, 0u32);
    }
}


/// Processes that have the file at `path` open, as `(pid, command name)`, from `/proc/*/fd`
/// (only those this user may inspect), matched by inode: a producer opened its segment under a
/// temporary name. For error messages: the kernel does not tell who holds an OFD lock.
pub fn processes_using(path: &Path) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(target) = std::fs::metadata(path).map(|m| super::file_id(&m)) else { return found };
    let Ok(procs) = std::fs::read_dir("/proc") else { return found };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        if fds.flatten().any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| super::file_id(&m) == target)) {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            found.push((pid, comm.trim().to_owned()));
        }
    }
    found
}
