//! Unix code shared by every Unix platform module.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::LockState;

/// Opens an existing object read-write, never following a symlink.
#[cfg_attr(target_os = "macos", allow(dead_code))]
pub fn open_existing(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Creates a new object that must not exist yet, with permission bits `mode` (applied exactly,
/// regardless of the umask), never following a symlink.
#[cfg_attr(target_os = "macos", allow(dead_code))]
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

/// What lent windows are mapped from: the segment file.
pub type SegmentFile = File;

/// Effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
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
#[cfg_attr(target_os = "macos", allow(dead_code))]
pub fn file_uid(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::MetadataExt;
    meta.uid()
}

/// A `flock` record for a write lock on the one byte at offset `byte`.
fn flock_at(byte: u64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl.l_pid = 0; // required to be 0 for OFD locks
    fl
}

/// Takes the byte's write lock with `cmd` (a non-blocking set: `F_OFD_SETLK` or `F_SETLK`).
/// `Ok(false)` if someone else holds it.
pub(super) fn set_lock(file: &File, byte: u64, cmd: libc::c_int) -> io::Result<bool> {
    let fl = flock_at(byte);
    // SAFETY: fcntl with a valid fd and a pointer to a live, initialised flock struct.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &fl) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// Probes the byte's write lock with `cmd` (`F_OFD_GETLK` or `F_GETLK`).
pub(super) fn get_lock(file: &File, byte: u64, cmd: libc::c_int) -> io::Result<LockState> {
    let mut fl = flock_at(byte);
    // SAFETY: fcntl with a valid fd and a pointer to a live, writable flock struct.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if fl.l_type == libc::F_UNLCK as libc::c_short {
        LockState::Free
    } else {
        LockState::Held(u32::try_from(fl.l_pid).ok().filter(|&p| p > 0))
    })
}

/// Registers fork handlers (`pthread_atfork`): `prepare` runs in the forking thread before the
/// fork, `parent` after it in the parent, `child` in the child (which has only that thread).
pub fn at_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> io::Result<()> {
    // SAFETY: the handlers are plain functions that live for the whole program.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// In a fork child: points descriptor `fd` at `/dev/null`, so that it no longer refers to the
/// open file description it shares with the parent (nor holds that description open). The
/// number stays valid, so whoever owns it closes it as usual. Async-signal-safe (open, dup2,
/// fcntl, close, pipe: all POSIX, so macOS and the BSDs too): callable from a `pthread_atfork`
/// child handler, where only this thread runs (so `dup2` then `FD_CLOEXEC` is not a race).
pub fn disown_fd(fd: std::os::fd::RawFd) {
    /// Makes `fd` a copy of `with`, closed on exec like the descriptor it replaces.
    fn replace(with: libc::c_int, fd: libc::c_int) {
        // SAFETY: both are descriptors of this process; dup2 atomically drops `fd`'s old
        // description reference and makes `fd` a copy of `with`.
        if unsafe { libc::dup2(with, fd) } == fd {
            // SAFETY: plain fcntl on a descriptor of ours.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    // SAFETY: a NUL-terminated path and plain flags.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if null >= 0 {
        replace(null, fd);
        // SAFETY: `null` is ours and used nowhere else.
        unsafe { libc::close(null) };
    } else {
        // No /dev/null (a bare chroot): a pipe's end serves as well.
        let mut ends = [-1; 2];
        // SAFETY: `ends` is a writable array of two descriptors.
        if unsafe { libc::pipe(ends.as_mut_ptr()) } == 0 {
            replace(ends[0], fd);
            // SAFETY: both pipe ends are ours and used nowhere else.
            unsafe {
                libc::close(ends[0]);
                libc::close(ends[1]);
            }
        }
    }
}

/// Whether process `pid` exists in this PID namespace (`kill(pid, 0)`: ESRCH means it does
/// not; EPERM means it does, another user's). A pid from another namespace may be unknown here
/// though its process lives: callers use this only to hurry a decision a lock also backs.
pub fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Whether an I/O error means the system ran out of room for a segment (a full `/dev/shm`, a
/// size the filesystem refuses, no memory, a quota).
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EFBIG) | Some(libc::ENOMEM) | Some(libc::EDQUOT)
    )
}

/// Whether an open failed because the name is a symbolic link (refused: see `open_existing`).
#[cfg_attr(target_os = "macos", allow(dead_code))]
pub fn is_symlink_refused(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// The system's page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Maps `len` bytes of `file` from `offset` (page-aligned), shared and read-write, through a
/// description of its own (see `description_for_mapping`), populated up front where the system
/// can (Linux): a window onto part of a segment (see `lend`).
pub fn map_window(file: &File, offset: u64, len: usize) -> io::Result<std::ptr::NonNull<u8>> {
    let own = super::description_for_mapping(file)?;
    let mapped = own.as_ref().unwrap_or(file);
    #[cfg(target_os = "linux")]
    let populate = libc::MAP_POPULATE;
    #[cfg(not(target_os = "linux"))]
    let populate = 0;
    let offset =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a new mapping at an address the kernel chooses; `mapped` is a valid descriptor
    // (the mapping keeps its own reference after it is closed).
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | populate,
            mapped.as_raw_fd(),
            offset,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(std::ptr::NonNull::new(p.cast()).expect("mmap never returns null"))
}

/// Maps private zero pages over `addr..addr + len`, replacing what was there in one call.
///
/// # Safety
/// The range must be a page-aligned mapping the caller owns: whatever it held is gone.
pub unsafe fn map_zero_pages(addr: std::ptr::NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: MAP_FIXED over the caller's own range (see above).
    let p = unsafe {
        libc::mmap(
            addr.as_ptr().cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmaps `addr..addr + len`.
///
/// # Safety
/// The range must be a mapping the caller owns, which nothing uses afterwards.
pub unsafe fn unmap(addr: std::ptr::NonNull<u8>, len: usize) {
    // SAFETY: the caller's own mapping (see above).
    unsafe { libc::munmap(addr.as_ptr().cast(), len) };
}
