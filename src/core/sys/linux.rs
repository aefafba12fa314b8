//! Linux: `/dev/shm` files, futexes on shared words, OFD byte-range locks.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::unix::{get_lock, monotonic_ns, set_lock};
use super::{LockState, WaitWord};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Where POSIX shared-memory objects live: `shm_open("/name")` is `/dev/shm/name`.
pub fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

/// Sizes the object to `len` bytes and allocates its pages now, so that a full `/dev/shm`
/// fails here (ENOSPC) and not later as a SIGBUS on first touch (tmpfs allocates lazily).
pub fn allocate(file: &File, len: u64) -> io::Result<()> {
    let len_off =
        libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
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

/// A second open file description of `file`'s object, for its mapping: a mapping keeps its
/// description alive, and with it the description's locks, in every process that inherits the
/// mapping across `fork()` (see `fork`). Mapping through a description that holds no lock
/// keeps the locks' lifetime the lock holder's. `None`: map `file` itself (no `/proc`: a fork
/// child then keeps the locks for as long as it lives).
pub fn description_for_mapping(file: &File) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    // Opening the descriptor's /proc link makes a new description of the same object (unlike
    // dup), without looking the name up again (it may name another object by now).
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Moves the page-table entries of the mapping at `addr..addr + len` to a fresh address, which
/// it returns, leaving the range itself mapped but empty (`mremap` with `MREMAP_DONTUNMAP`,
/// Linux 5.13+ for shared mappings): no page is touched, and the range is never a hole another
/// `mmap` could take.
///
/// # Safety
/// The range must be a page-aligned mapping the caller owns.
pub unsafe fn move_keeping_range(
    addr: std::ptr::NonNull<u8>,
    len: usize,
) -> io::Result<std::ptr::NonNull<u8>> {
    // A fresh address range to move to (MREMAP_DONTUNMAP needs MREMAP_MAYMOVE; FIXED makes
    // the kernel use our reservation).
    // SAFETY: a new anonymous reservation at an address the kernel chooses.
    let target = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if target == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: moves the caller's own mapping onto our reservation (which it replaces).
    let moved = unsafe {
        libc::mremap(
            addr.as_ptr().cast(),
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP,
            target,
        )
    };
    if moved == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        // SAFETY: our reservation, unused.
        unsafe { libc::munmap(target, len) };
        return Err(e);
    }
    Ok(std::ptr::NonNull::new(moved.cast()).expect("mremap never returns null"))
}

/// How many times the kernel switched this thread out while it could have run on (another task
/// took its CPU, or it gave the CPU away with `sched_yield` to one that ran): `ru_nivcsw` of
/// `RUSAGE_THREAD`. Time the hypervisor takes from the whole virtual CPU does not count.
pub fn involuntary_switches() -> Option<u64> {
    // SAFETY: getrusage fills the zeroed struct we pass; RUSAGE_THREAD is this thread's.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } == 0).then_some(ru.ru_nivcsw as u64)
}

/// Makes this thread's timed sleeps end on time: Linux lets a normal thread's timer fire up to
/// its timer slack (50 µs by default) late, to batch wake-ups; 1 ns asks for none. Only this
/// thread, for as long as it lives (inherited by threads it starts). Returns whether it took.
pub fn precise_timers() -> bool {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and changes only the calling thread's
    // timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) == 0 }
}

/// Asks whether anybody other than this open file description holds the byte's lock.
pub fn probe_lock_byte(file: &File, byte: u64) -> io::Result<LockState> {
    get_lock(file, byte, libc::F_OFD_GETLK)
}

/// Sleeps while `*word == expected`, for at most `timeout`. Returns early on a wake-up, a
/// changed value, a signal or the timeout; callers always re-check their condition.
///
/// The word may live in memory shared with other processes: the futex is not private.
pub fn wait_word(word: &AtomicU32, expected: u32, timeout: Duration) {
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
pub fn wake_word(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key; it does not dereference user memory
    // beyond validating the mapping.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        );
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
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        if fds
            .flatten()
            .any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| super::file_id(&m) == target))
        {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            found.push((pid, comm.trim().to_owned()));
        }
    }
    found
}

/// A process's command name (`/proc/<pid>/comm`), empty if it cannot be read.
pub fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// `struct futex_waitv` (linux/futex.h).
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

const FUTEX2_SIZE_U32: u32 = 0x02;
const FUTEX2_PRIVATE: u32 = 128;
/// More words than any wait here needs (a producer: its room word, 32 readers, a cancel).
pub const MAX_WAIT_WORDS: usize = 40;

/// 0 unknown, 1 available, 2 missing (ENOSYS, or forced off by `SHMFRAMES_LIVENESS=poll`).
static WAITV: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether the kernel has `futex_waitv` (Linux 5.16+) and the robust-futex list, and polling
/// was not asked for (`SHMFRAMES_LIVENESS=poll`, for tests and for kernels that misbehave).
pub fn kernel_watches_liveness() -> bool {
    match WAITV.load(std::sync::atomic::Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let forced_off = std::env::var_os("SHMFRAMES_LIVENESS").is_some_and(|v| v == "poll");
            // SAFETY: futex_waitv with no waiters only validates its arguments: EINVAL if the
            // call exists, ENOSYS if not (EPERM where a seccomp filter forbids it).
            // get_robust_list(0) writes two locals.
            let ok = !forced_off
                && unsafe {
                    let r = libc::syscall(
                        libc::SYS_futex_waitv,
                        std::ptr::null::<FutexWaitv>(),
                        0u32,
                        0u32,
                        std::ptr::null::<libc::timespec>(),
                        libc::CLOCK_MONOTONIC,
                    );
                    let waitv =
                        r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL);
                    let mut head: *mut libc::c_void = std::ptr::null_mut();
                    let mut len: libc::size_t = 0;
                    let robust =
                        libc::syscall(libc::SYS_get_robust_list, 0, &mut head, &mut len) == 0;
                    waitv && robust
                };
            WAITV.store(if ok { 1 } else { 2 }, std::sync::atomic::Ordering::Relaxed);
            ok
        }
    }
}

/// Sleeps until one of `words` differs from its expected value, is woken, a signal arrives or
/// `timeout` passes (`None`: no limit); callers always re-check their conditions. Returns
/// `false` without sleeping if the kernel lacks `futex_waitv` (see
/// [`kernel_watches_liveness`]): the caller then falls back to timed single waits.
pub fn wait_any(words: &[WaitWord<'_>], timeout: Option<Duration>) -> bool {
    if !kernel_watches_liveness() {
        return false;
    }
    let mut v: [FutexWaitv; MAX_WAIT_WORDS] =
        std::array::from_fn(|_| FutexWaitv { val: 0, uaddr: 0, flags: 0, reserved: 0 });
    let n = words.len().min(MAX_WAIT_WORDS);
    for (slot, w) in v.iter_mut().zip(words) {
        slot.val = w.expected as u64;
        slot.uaddr = w.word.as_ptr() as u64;
        slot.flags = FUTEX2_SIZE_U32
            | if matches!(w.waker, super::Waker::Local) { FUTEX2_PRIVATE } else { 0 };
    }
    // futex_waitv takes an absolute CLOCK_MONOTONIC deadline.
    let deadline = timeout.map(|t| {
        let now = monotonic_ns();
        let at = now.saturating_add(t.as_nanos().min(u64::MAX as u128) as u64).min(i64::MAX as u64);
        libc::timespec {
            tv_sec: (at / 1_000_000_000) as libc::time_t,
            tv_nsec: (at % 1_000_000_000) as libc::c_long,
        }
    });
    let ts = deadline.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `v[..n]` are valid futex_waitv entries pointing at aligned u32 atomics that the
    // caller keeps alive for the call; `ts` is null or a valid timespec on our stack.
    let r = unsafe {
        libc::syscall(libc::SYS_futex_waitv, v.as_ptr(), n as u32, 0u32, ts, libc::CLOCK_MONOTONIC)
    };
    if r == -1
        && matches!(io::Error::last_os_error().raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
    {
        // Forbidden after all (a seccomp filter installed later): never try again, so that
        // callers fall back instead of spinning.
        WAITV.store(2, std::sync::atomic::Ordering::Relaxed);
        return false;
    }
    true
}

/// Wakes every waiter on a word of this process only (a private futex).
pub fn wake_local(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE uses the address as a key only.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        );
    }
}

/// Sleeps on a word of this process only while it equals `expected` (no timeout).
pub fn wait_local(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word`, valid for the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// The calling thread's id, as its own PID namespace numbers it (what the kernel compares a
/// robust futex word with when the thread dies).
fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// `struct robust_list_head` (linux/futex.h): the list of futex words the kernel marks
/// `OWNER_DIED` (and wakes a waiter of) when the registering thread dies, however it
/// dies. Each entry is a pointer-sized `next` field; its futex word lies `node_offset` bytes
/// from it; the last entry points back at the head.
#[repr(C)]
struct RobustListHead {
    next: *mut libc::c_void,
    node_offset: libc::c_long,
    list_op_pending: *mut libc::c_void,
}

impl RobustListHead {
    /// Links `nodes` (addresses of pointer-sized fields, each `node_offset` bytes from its
    /// word) into a list headed by `self`.
    ///
    /// # Safety
    /// Every node must be valid for pointer-sized writes, and `self` must not move while the
    /// list is registered.
    unsafe fn link(&mut self, nodes: &[*mut *mut libc::c_void], node_offset: isize) {
        let head = self as *mut RobustListHead as *mut libc::c_void;
        self.node_offset = node_offset as libc::c_long;
        self.list_op_pending = std::ptr::null_mut();
        self.next = head;
        for &node in nodes.iter().rev() {
            // SAFETY: the caller promises nodes are writable.
            unsafe { node.write_volatile(self.next) };
            self.next = node as *mut libc::c_void;
        }
    }

    /// An empty head.
    fn empty() -> RobustListHead {
        RobustListHead {
            next: std::ptr::null_mut(),
            node_offset: 0,
            list_op_pending: std::ptr::null_mut(),
        }
    }
}

/// The calling thread's registered robust list (glibc registers its own for every thread).
fn robust_list() -> *mut RobustListHead {
    let mut head: *mut libc::c_void = std::ptr::null_mut();
    let mut len: libc::size_t = 0;
    // SAFETY: pid 0 is the calling thread; the kernel writes the two locals.
    unsafe { libc::syscall(libc::SYS_get_robust_list, 0, &mut head, &mut len) };
    head as *mut RobustListHead
}

/// Registers `head` as the calling thread's robust list (replacing what was registered).
///
/// # Safety
/// `head` (and its entries) must stay valid, or be unregistered, until the thread exits; a null
/// head unregisters.
unsafe fn set_robust_list(head: *mut RobustListHead) -> io::Result<()> {
    // SAFETY: the caller keeps the list valid; the kernel only stores the pointer now.
    let r = unsafe {
        libc::syscall(libc::SYS_set_robust_list, head, std::mem::size_of::<RobustListHead>())
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What [`own_liveness_words`] set up: the keeper's robust list, replaced by glibc's own again
/// when dropped (after the keeper unwatched the words).
pub struct OwnedWords {
    glibc_list: *mut RobustListHead,
    _head: Box<RobustListHead>,
}

/// Makes the calling thread (a keeper) the owner of `words`: registers their nodes as its
/// robust list, then writes its thread id into each. `None` if the kernel refuses the list.
///
/// # Safety
/// The words and nodes must stay mapped, used by no other keeper, until the returned value is
/// dropped, on this thread.
pub unsafe fn own_liveness_words(
    words: &[super::liveness::Watched],
    node_offset: isize,
) -> Option<OwnedWords> {
    let glibc_list = robust_list();
    let mut head = Box::new(RobustListHead::empty());
    let nodes: Vec<_> = words.iter().map(|w| w.node).collect();
    // SAFETY: the nodes are pointer-sized fields in the live mapping (the caller's contract);
    // `head` is boxed, so it does not move while registered, and outlives the registration
    // (OwnedWords::drop unregisters it before it is dropped).
    let registered = unsafe {
        head.link(&nodes, node_offset);
        set_robust_list(&mut *head).is_ok()
    };
    if !registered {
        return None;
    }
    let tid = gettid();
    for w in words {
        // SAFETY: the word is a live atomic in the mapping (see above).
        // Release: a reader of the word sees the list registered before it sees the id.
        unsafe { &*w.word }.store(tid, std::sync::atomic::Ordering::Release);
    }
    Some(OwnedWords { glibc_list, _head: head })
}

impl Drop for OwnedWords {
    fn drop(&mut self) {
        // SAFETY: glibc's list head for this thread, as the kernel returned it; it is valid for
        // the thread's life.
        unsafe {
            let _ = set_robust_list(self.glibc_list);
        }
    }
}

/// The kernel marks dead owners itself (`OWNER_DIED`): a word it has not marked is alive.
pub fn owner_found_dead(
    _word: &AtomicU32,
    _node: &std::sync::atomic::AtomicU64,
    _seen: u32,
) -> Option<bool> {
    Some(false)
}
