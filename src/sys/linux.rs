//! Linux: `/dev/shm` files, futexes on shared words, OFD byte-range locks, CLOCK_MONOTONIC.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Where POSIX shared-memory objects live: `shm_open("/name")` is `/dev/shm/name`.
pub fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

/// Longest name accepted (NAME_MAX is 255; we keep room for our temporary names).
pub const MAX_NAME_LEN: usize = 200;

/// Opens an existing object read-write, never following a symlink.
pub fn open_existing(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Creates a new object that must not exist yet, with permission bits `mode` (applied exactly,
/// regardless of the umask), never following a symlink.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::PermissionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(f)
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

/// Effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

/// What a lock probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// Nobody holds the lock.
    Free,
    /// Somebody holds it; the pid when the kernel reports one.
    Held(Option<u32>),
}

fn flock_at(byte: u64, kind: libc::c_short) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl.l_pid = 0; // required to be 0 for OFD locks
    fl
}

/// Takes an exclusive open-file-description lock on one byte, without blocking. The kernel
/// releases it when the last descriptor of this open file is closed, including when the
/// process dies by SIGKILL. Returns `false` if someone else holds it.
pub fn try_lock_byte(file: &File, byte: u64) -> io::Result<bool> {
    let fl = flock_at(byte, libc::F_WRLCK as libc::c_short);
    // SAFETY: fcntl with a valid fd and a pointer to a live, initialised flock struct.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// Asks whether anybody other than this open file description holds the byte's lock.
pub fn probe_lock_byte(file: &File, byte: u64) -> io::Result<LockState> {
    let mut fl = flock_at(byte, libc::F_WRLCK as libc::c_short);
    // SAFETY: fcntl with a valid fd and a pointer to a live, writable flock struct.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if fl.l_type == libc::F_UNLCK as libc::c_short {
        LockState::Free
    } else {
        LockState::Held(u32::try_from(fl.l_pid).ok().filter(|&p| p > 0))
    })
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

/// Nanoseconds of CLOCK_MONOTONIC: comparable between processes on one machine.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we own; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Identity of a file, to tell whether a name still refers to the object we hold.
pub fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// Owner uid of a file.
pub fn file_uid(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::MetadataExt;
    meta.uid()
}
