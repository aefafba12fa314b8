//! POSIX shared-memory objects by name (`shm_open("/NAME")`) and role lock files: the segment
//! service of systems where the shared-memory objects are no files one can link, rename, lock
//! or list (macOS). Plain POSIX, so it is compiled on every Unix and its tests run on Linux
//! against the real `shm_open` (which Linux's own backend does not use: there `/dev/shm` files
//! give race-free creation by hard link, see `segment`).
//!
//! # What macOS does not allow, and what replaces it
//!
//! | macOS fact | consequence here |
//! |---|---|
//! | names are at most 31 bytes with the leading `/` (`PSHMNAMLEN`) | [`MAX_OBJECT_NAME`]: a longer channel name is refused with a message that says so |
//! | `shm_open` rejects `O_CLOEXEC` (macOS 26.4) | opened without it; `FD_CLOEXEC` set at once with `fcntl` |
//! | `ftruncate` succeeds once per object | sized once, by its creator, right after the exclusive create |
//! | no link or rename of an object | creation is `O_CREAT | O_EXCL` under the producer's role lock (see [`create_object`]) |
//! | `flock` fails on a shm descriptor; no directory lists objects | every role is a `flock` on a *lock file* in a per-user [`LockDir`], whose producer files also list the channels |
//!
//! # Lock files (see [`LockDir`])
//!
//! | file | held (`flock`, exclusive) by | content |
//! |---|---|---|
//! | `p.NAME` | the producer of channel `NAME`, for its whole life | a [`ProducerRecord`]: state, the segment's *instance* (a random nonce), pid |
//! | `c.INSTANCE.NAME` | the consumer of a raw channel | its pid |
//! | `r.INSTANCE.R.NAME` | reader `R` of a framed channel | its pid |
//!
//! The kernel drops a `flock` when the last descriptor of its open file description closes,
//! SIGKILL included, as it drops Linux's OFD locks. The consumer's and readers' files are keyed
//! by the instance, so a new producer under the same name never sees the entries of readers
//! still attached to a dead one's segment as taken. A lock is *probed* by taking a shared
//! `flock` for an instant ([`probe_lock`]); a taker that finds the lock held retries briefly,
//! so a prober is never mistaken for a holder.
//!
//! A lock file is removed only by a holder of its lock, and a taker checks, once it holds the
//! lock, that the path still names the file it locked ([`take_lock`]): the usual protocol that
//! makes removing lock files safe.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::LockState;

/// Longest object name `shm_open` takes on macOS, with its leading `/` (`PSHMNAMLEN`).
pub const MAX_OBJECT_NAME: usize = 31;

/// `"/" + name` as `shm_open` takes it.
fn object_name(name: &str) -> io::Result<CString> {
    CString::new(format!("/{name}")).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Turns a descriptor `shm_open` returned into a `File` closed on exec (set with `fcntl`:
/// macOS 26.4 refuses `O_CLOEXEC` in `shm_open`'s flags).
fn adopt(fd: libc::c_int) -> io::Result<File> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor shm_open just gave us, owned by nothing else.
    let file = unsafe { File::from_raw_fd(fd) };
    // SAFETY: plain fcntl on our own descriptor.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Creates the object `/name`, which must not exist yet (`O_CREAT | O_EXCL`), readable and
/// writable as `mode` says (made exact with `fchmod` where the system allows it; the umask
/// applies where it does not). Not sized yet: see [`size_object`].
pub fn create_exclusive(name: &str, mode: u32) -> io::Result<File> {
    let c = object_name(name)?;
    // SAFETY: a NUL-terminated name; the mode is passed as the promoted `unsigned int` that
    // shm_open's variadic (macOS) or `mode_t` (Linux) parameter expects.
    let fd = unsafe {
        libc::shm_open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            mode as libc::c_uint,
        )
    };
    let file = adopt(fd)?;
    // Best effort: the umask may have taken bits the caller asked for.
    // SAFETY: plain fchmod on our own descriptor.
    unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) };
    Ok(file)
}

/// Opens the existing object `/name` read-write.
pub fn open_object(name: &str) -> io::Result<File> {
    let c = object_name(name)?;
    // SAFETY: a NUL-terminated name and plain flags (no O_CREAT: the mode is not read).
    let fd = unsafe { libc::shm_open(c.as_ptr(), libc::O_RDWR, 0 as libc::c_uint) };
    adopt(fd)
}

/// Removes the name `/name` (mappings and descriptors of the object stay valid).
pub fn remove_object(name: &str) -> io::Result<()> {
    let c = object_name(name)?;
    // SAFETY: a NUL-terminated name.
    if unsafe { libc::shm_unlink(c.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sizes a fresh object: once, by its creator (macOS allows one `ftruncate` per object).
pub fn size_object(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)
}

/// The size and owner of an object (`fstat` reports both for shm descriptors on macOS).
pub fn object_size_and_owner(file: &File) -> io::Result<(u64, u32)> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok((m.len(), m.uid()))
}

/// What [`create_object`] found under a name that exists.
#[derive(Debug)]
pub enum Existing {
    /// Another user's object.
    Foreign(u32),
    /// An object that is not a dead shmframes producer's: never replaced.
    Taken,
}

/// The exclusive-create protocol. The caller holds the channel's producer lock (so no live
/// shmframes producer owns the name, and no other one is creating it); it then creates `/name`
/// with `O_CREAT | O_EXCL`. If the name exists, the object is this user's and
/// `dead_producers(&object)` says it is a shmframes producer's (our mark in its header, or an
/// object a producer died creating), it is a dead producer's: its name is removed and the
/// create retried. Anything else (cpp_py_shmbuf's producer takes no lock, and may be live) is
/// left alone: `Ok(Err(Existing))`.
pub fn create_object(
    name: &str,
    mode: u32,
    dead_producers: impl Fn(&File) -> bool,
) -> io::Result<Result<File, Existing>> {
    let me = super::euid();
    for _ in 0..8 {
        match create_exclusive(name, mode) {
            Ok(f) => return Ok(Ok(f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let old = match open_object(name) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Ok(Err(Existing::Taken))
            }
            Err(e) => return Err(e),
        };
        let (_, uid) = object_size_and_owner(&old)?;
        if uid != me {
            return Ok(Err(Existing::Foreign(uid)));
        }
        if !dead_producers(&old) {
            return Ok(Err(Existing::Taken));
        }
        match remove_object(name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::WouldBlock, "the name kept being taken while creating it"))
}

/// Reads `buf.len()` bytes of an object from offset 0 (a header), without mapping it.
pub fn read_head(file: &File, buf: &mut [u8]) -> bool {
    // shm descriptors cannot be read on macOS: map a page instead.
    let Ok((len, _)) = object_size_and_owner(file) else { return false };
    if (len as usize) < buf.len() {
        return false;
    }
    // SAFETY: a new read-only shared mapping of `buf.len()` bytes (within the object's size)
    // at an address the kernel chooses, unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            buf.len(),
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: `p` maps `buf.len()` readable bytes; copied out, then unmapped.
    unsafe {
        std::ptr::copy_nonoverlapping(p.cast::<u8>(), buf.as_mut_ptr(), buf.len());
        libc::munmap(p, buf.len());
    }
    true
}

/// The directory of a user's role lock files: `/tmp/shmframes-UID` (`/tmp` is shared by all
/// users on macOS, unlike `$TMPDIR`, so a process finds its peers' directory whatever its
/// environment). Made by its user, mode 0755 (others may probe, not create).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockDir(PathBuf);

/// Prefix of producer lock files.
const PRODUCER: &str = "p.";
/// Prefix of consumer lock files.
const CONSUMER: &str = "c.";
/// Prefix of reader lock files.
const READER: &str = "r.";

impl LockDir {
    /// The lock directory of user `uid`.
    pub fn of_user(uid: u32) -> LockDir {
        LockDir(PathBuf::from(format!("/tmp/shmframes-{uid}")))
    }

    /// A lock directory at `path` (tests).
    #[cfg(test)]
    pub fn at(path: PathBuf) -> LockDir {
        LockDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Makes the directory if it is missing, and checks it is a directory of this user's that
    /// nobody else may write (another user could otherwise plant lock files or links in it).
    pub fn ensure(&self) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        match std::fs::DirBuilder::new().mode(0o755).create(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let m = std::fs::symlink_metadata(&self.0)?;
        if !m.is_dir() || m.uid() != super::euid() || m.mode() & 0o022 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not a directory of this user's that only it may write: remove it",
                    self.0.display()
                ),
            ));
        }
        Ok(())
    }

    /// The producer lock file of channel `name`.
    pub fn producer(&self, name: &str) -> PathBuf {
        self.0.join(format!("{PRODUCER}{name}"))
    }

    /// The consumer lock file of instance `instance` of channel `name`.
    pub fn consumer(&self, name: &str, instance: u64) -> PathBuf {
        self.0.join(format!("{CONSUMER}{instance:016x}.{name}"))
    }

    /// The lock file of reader entry `r` of instance `instance` of channel `name`.
    pub fn reader(&self, name: &str, instance: u64, r: usize) -> PathBuf {
        self.0.join(format!("{READER}{instance:016x}.{r}.{name}"))
    }

    /// The channels that have a producer lock file here (live or not), unsorted.
    pub fn channel_names(&self) -> io::Result<Vec<String>> {
        Ok(std::fs::read_dir(&self.0)?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix(PRODUCER).map(str::to_owned))
            .filter(|n| !n.is_empty())
            .collect())
    }

    /// The consumer and reader lock files here, with their channel's name and instance.
    pub fn role_files(&self) -> io::Result<Vec<(PathBuf, String, u64)>> {
        Ok(std::fs::read_dir(&self.0)?
            .flatten()
            .filter_map(|e| {
                let file_name = e.file_name();
                let n = file_name.to_str()?;
                let (instance, rest) = if let Some(rest) = n.strip_prefix(CONSUMER) {
                    rest.split_once('.')?
                } else {
                    let (instance, rest) = n.strip_prefix(READER)?.split_once('.')?;
                    let (r, name) = rest.split_once('.')?;
                    r.parse::<usize>().ok()?;
                    (instance, name)
                };
                let instance = u64::from_str_radix(instance, 16).ok()?;
                Some((e.path(), rest.to_owned(), instance))
            })
            .collect())
    }
}

/// Opens a lock file (creating it, mode 0644, unless `create` is false), never following a
/// symlink, closed on exec.
pub fn open_lock_file(path: &Path, create: bool) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if create {
        o.write(true).create(true).mode(0o644);
    }
    o.open(path)
}

/// `flock` without blocking: `Ok(false)` if another description holds a conflicting lock.
fn flock_nb(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: plain flock on our own descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Whether `file` is still the file named `path` (it was not removed, nor replaced).
pub fn names(path: &Path, file: &File) -> bool {
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => super::file_id(&a) == super::file_id(&b),
        _ => false,
    }
}

/// How often a taker that must not mistake a prober for a holder (a producer, a consumer)
/// tries a lock that is held, [`TAKE_PAUSE`] apart: a prober holds it for microseconds, a role
/// for its life. A reader looking for a free entry tries each once (another entry will do).
pub const PATIENT: u32 = 4;
const TAKE_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// Takes the exclusive lock of the lock file at `path`, opened (and created) by `open` (which
/// registers the descriptor for fork safety, see `fork::LockFile`), trying `tries` times (see
/// [`PATIENT`]): `Ok(None)` if another process holds it. Once held, the path is checked to
/// still name the locked file (a holder may have removed it meanwhile): if not, the take
/// starts again.
pub fn take_lock<F: std::ops::Deref<Target = File>>(
    path: &Path,
    tries: u32,
    mut open: impl FnMut() -> io::Result<F>,
) -> io::Result<Option<F>> {
    loop {
        let f = open()?;
        let mut tried = 1;
        while !flock_nb(&f, libc::LOCK_EX)? {
            if tried >= tries {
                return Ok(None);
            }
            tried += 1;
            std::thread::sleep(TAKE_PAUSE);
        }
        if names(path, &f) {
            return Ok(Some(f));
        }
    }
}

/// Whether someone holds the lock of `file` (a shared `flock` taken and given back at once).
pub fn probe_lock(file: &File) -> io::Result<LockState> {
    if flock_nb(file, libc::LOCK_SH)? {
        // SAFETY: plain flock on our own descriptor: gives back what we just took.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        Ok(LockState::Free)
    } else {
        Ok(LockState::Held(None))
    }
}

/// Whether someone holds the lock of the lock file at `path` (`Free` when there is none),
/// opened with `open` (see [`take_lock`]).
pub fn probe_path<F: std::ops::Deref<Target = File>>(
    open: impl FnOnce() -> io::Result<F>,
) -> io::Result<LockState> {
    match open() {
        Ok(f) => probe_lock(&f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(LockState::Free),
        Err(e) => Err(e),
    }
}

/// Removes the lock file at `path` if `file` (whose lock the caller holds) is still it; the
/// caller closes `file` afterwards, which releases the lock.
pub fn remove_held(path: &Path, file: &File) {
    if names(path, file) {
        let _ = std::fs::remove_file(path);
    }
}

/// Writes `pid` into a role lock file the caller holds (for listings and error messages).
pub fn write_pid(file: &File, pid: u32) {
    let _ = file.set_len(0);
    let _ = file.write_all_at(format!("{pid}\n").as_bytes(), 0);
}

/// The pid a role lock file names, if any.
pub fn read_pid(file: &File) -> Option<u32> {
    let mut buf = [0u8; 16];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// The state a producer lock file records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerStage {
    /// Between taking the lock and a segment ready to read: an object under the name may be
    /// half made (not sized yet, no header).
    Creating,
    /// The segment of `instance` is ready under the name.
    Live,
}

/// What a producer lock file says: a fixed-size record, rewritten in place (never truncated),
/// so a reader never sees it empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerRecord {
    /// How far the producer got.
    pub stage: ProducerStage,
    /// The segment's instance: a random nonce, new for every segment made.
    pub instance: u64,
    /// The producer's pid.
    pub pid: u32,
}

/// Bytes of a [`ProducerRecord`] in its file.
const RECORD_LEN: usize = 40;

impl ProducerRecord {
    fn encode(&self) -> [u8; RECORD_LEN] {
        let stage = match self.stage {
            ProducerStage::Creating => 'C',
            ProducerStage::Live => 'L',
        };
        let text = format!("shmframes {stage} {:016x} {:>10}\n", self.instance, self.pid);
        let mut out = [b' '; RECORD_LEN];
        out[..text.len()].copy_from_slice(text.as_bytes());
        out
    }

    fn decode(buf: &[u8]) -> Option<ProducerRecord> {
        let text = std::str::from_utf8(buf).ok()?;
        let mut parts = text.split_whitespace();
        if parts.next()? != "shmframes" {
            return None;
        }
        let stage = match parts.next()? {
            "C" => ProducerStage::Creating,
            "L" => ProducerStage::Live,
            _ => return None,
        };
        let instance = u64::from_str_radix(parts.next()?, 16).ok()?;
        let pid = parts.next()?.parse().ok()?;
        Some(ProducerRecord { stage, instance, pid })
    }

    /// Writes it into the producer lock file (whose lock the caller holds).
    pub fn write(&self, file: &File) -> io::Result<()> {
        file.write_all_at(&self.encode(), 0)
    }

    /// Reads it from a producer lock file; `None` if there is none (yet) or it is torn.
    pub fn read(file: &File) -> Option<ProducerRecord> {
        let mut buf = [0u8; RECORD_LEN];
        file.read_exact_at(&mut buf, 0).ok()?;
        ProducerRecord::decode(&buf)
    }
}

/// What [`open_instance`] found under a channel's name.
#[derive(Debug)]
pub enum Opened<F> {
    /// The object, and the instance its producer recorded (0: no record, a foreign producer's
    /// object or one a dead producer left without a record).
    Object(F, u64),
    /// A live producer is still making the object (or replacing a dead one's): not there yet.
    SettingUp,
}

/// Opens a channel's object with `open` and finds its instance from the producer lock file
/// `producer` (see `segment/macos.rs`): the record, the object, the record again. The same
/// record twice names the object's instance, because a producer records `Creating` before it
/// removes an old object and `Live` only after it made the new one.
pub fn open_instance<F, E>(
    producer: Option<&File>,
    mut open: impl FnMut() -> Result<F, E>,
) -> Result<Opened<F>, E> {
    let record = || producer.and_then(ProducerRecord::read);
    let (object, before) = loop {
        let before = record();
        let object = open()?;
        if record() == before {
            break (object, before);
        }
    };
    Ok(match before {
        Some(r) if r.stage == ProducerStage::Live => Opened::Object(object, r.instance),
        Some(r)
            if r.stage == ProducerStage::Creating
                && producer.is_some_and(|f| probe_lock(f).ok() == Some(LockState::Held(None))) =>
        {
            Opened::SettingUp
        }
        _ => Opened::Object(object, 0),
    })
}

/// Whether the producer of instance `instance` lives: its lock file `producer` records that
/// instance (a new producer under the name records another) and its lock is held.
pub fn producer_alive(producer: Option<&File>, instance: u64) -> bool {
    let Some(f) = producer else { return false };
    instance != 0
        && ProducerRecord::read(f).is_some_and(|r| r.instance == instance)
        && !matches!(probe_lock(f), Ok(LockState::Free))
}

/// A fresh instance nonce: never 0, and unlike any other made on this machine in practice
/// (the clock, the pid, a counter and an address, mixed).
pub fn new_instance() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut x = super::monotonic_ns()
        ^ (u64::from(std::process::id()) << 40)
        ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        ^ (&COUNTER as *const AtomicU64 as u64).rotate_left(17);
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        x ^= d.as_nanos() as u64;
    }
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    x.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fork::LockFile;

    /// A name no other test (or run) uses, short enough for macOS.
    fn unique(tag: &str) -> String {
        format!("sft{tag}{:x}", new_instance() & 0xFFFF_FFFF_FFFF)
    }

    fn test_dir() -> LockDir {
        let d = LockDir::at(std::env::temp_dir().join(unique("dir")));
        d.ensure().unwrap();
        d
    }

    #[test]
    fn objects_are_created_once_sized_and_removed() {
        let name = unique("o");
        assert!(name.len() < MAX_OBJECT_NAME);
        let f = create_exclusive(&name, 0o600).unwrap();
        // SAFETY: plain fcntl on our own descriptor.
        let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "closed on exec");
        assert_eq!(
            create_exclusive(&name, 0o600).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        size_object(&f, 8192).unwrap();
        let (len, uid) = object_size_and_owner(&open_object(&name).unwrap()).unwrap();
        assert_eq!((len, uid), (8192, super::super::euid()));
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"HEAD", 0).unwrap();
        let mut head = [0u8; 4];
        assert!(read_head(&open_object(&name).unwrap(), &mut head));
        assert_eq!(&head, b"HEAD");
        remove_object(&name).unwrap();
        assert_eq!(open_object(&name).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(remove_object(&name).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_create_protocol_replaces_dead_producers_objects_only() {
        let name = unique("c");
        let first = match create_object(&name, 0o600, |_| unreachable!()).unwrap() {
            Ok(f) => f,
            Err(e) => panic!("{e:?}"),
        };
        size_object(&first, 4096).unwrap();
        // A foreign (or live) object is never replaced.
        assert!(matches!(create_object(&name, 0o600, |_| false).unwrap(), Err(Existing::Taken)));
        // A dead producer's is: the new object is another one.
        use std::os::unix::fs::FileExt;
        first.write_all_at(b"old", 0).unwrap();
        let second = create_object(&name, 0o600, |_| true).unwrap().unwrap();
        size_object(&second, 4096).unwrap();
        let mut head = [0u8; 3];
        assert!(read_head(&open_object(&name).unwrap(), &mut head));
        assert_eq!(head, [0, 0, 0], "the name leads to the new object");
        remove_object(&name).unwrap();
    }

    /// Opens a lock file registered for fork safety: another test's fork child must not keep
    /// our locks (see `fork`).
    fn open_registered(path: &Path, create: bool) -> io::Result<LockFile> {
        LockFile::open(|| open_lock_file(path, create))
    }

    #[test]
    fn role_locks_exclude_probe_and_are_released() {
        let dir = test_dir();
        let path = dir.producer("cam");
        let held = take_lock(&path, PATIENT, || open_registered(&path, true)).unwrap().unwrap();
        // Another description cannot take it, and sees it held.
        assert!(take_lock(&path, PATIENT, || open_registered(&path, true)).unwrap().is_none());
        assert_eq!(probe_path(|| open_registered(&path, false)).unwrap(), LockState::Held(None));
        // A probe does not keep the holder from anything, nor takes the lock.
        assert_eq!(probe_lock(&held).unwrap(), LockState::Free, "our own lock: no conflict");
        let rec = ProducerRecord { stage: ProducerStage::Live, instance: 0xABCD, pid: 42 };
        rec.write(&held).unwrap();
        let reader = open_registered(&path, false).unwrap();
        assert_eq!(ProducerRecord::read(&reader), Some(rec));
        remove_held(&path, &held);
        drop(held);
        assert_eq!(probe_lock(&reader).unwrap(), LockState::Free, "released by the close");
        assert_eq!(probe_path(|| open_registered(&path, false)).unwrap(), LockState::Free);
        // A taker whose file was removed under it takes a new one, under the name.
        let again = take_lock(&path, PATIENT, || open_registered(&path, true)).unwrap().unwrap();
        assert!(names(&path, &again));
        assert!(!names(&path, &reader), "the removed file is not the name's any more");
        remove_held(&path, &again);
        drop(again);
        std::fs::remove_dir(dir.path()).unwrap();
    }

    #[test]
    fn a_killed_holder_releases_its_role() {
        let dir = test_dir();
        let path = dir.reader("cam", 7, 3);
        // SAFETY: the child only takes the lock, reports it and sleeps until killed (no
        // allocation after fork: the path is made before).
        let c_path = CString::new(path.to_str().unwrap()).unwrap();
        let mut ends = [0; 2];
        // SAFETY: a writable array of two descriptors.
        assert_eq!(unsafe { libc::pipe(ends.as_mut_ptr()) }, 0);
        // SAFETY: the child runs async-signal-safe calls only, then _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: async-signal-safe calls on our own descriptors and the path made above.
            unsafe {
                let fd = libc::open(c_path.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o644);
                libc::flock(fd, libc::LOCK_EX);
                libc::write(ends[1], b"x".as_ptr().cast(), 1);
                libc::pause();
                libc::_exit(0);
            }
        }
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into our buffer from our pipe end.
        assert_eq!(unsafe { libc::read(ends[0], b.as_mut_ptr().cast(), 1) }, 1);
        assert_eq!(probe_path(|| open_registered(&path, false)).unwrap(), LockState::Held(None));
        assert!(take_lock(&path, PATIENT, || open_registered(&path, true)).unwrap().is_none());
        // SAFETY: our own child; waited for below.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            libc::close(ends[0]);
            libc::close(ends[1]);
        }
        let taken = take_lock(&path, PATIENT, || open_registered(&path, true)).unwrap().unwrap();
        assert_eq!(dir.role_files().unwrap(), vec![(path.clone(), "cam".to_owned(), 7)]);
        remove_held(&path, &taken);
        drop(taken);
        std::fs::remove_dir(dir.path()).unwrap();
    }

    #[test]
    fn names_are_listed_from_producer_files() {
        let dir = test_dir();
        for n in ["cam", "a.b"] {
            std::fs::write(dir.producer(n), b"").unwrap();
        }
        std::fs::write(dir.consumer("cam", 0x1234), b"").unwrap();
        std::fs::write(dir.reader("a.b", 0x99, 12), b"").unwrap();
        let mut names = dir.channel_names().unwrap();
        names.sort();
        assert_eq!(names, ["a.b", "cam"]);
        let mut roles = dir.role_files().unwrap();
        roles.sort();
        assert_eq!(
            roles,
            vec![
                (dir.consumer("cam", 0x1234), "cam".to_owned(), 0x1234),
                (dir.reader("a.b", 0x99, 12), "a.b".to_owned(), 0x99),
            ]
        );
        std::fs::remove_dir_all(dir.path()).unwrap();
    }

    #[test]
    fn readers_find_their_instance_and_its_death() {
        let dir = test_dir();
        let name = unique("i");
        let ppath = dir.producer(&name);
        let reader_view = || open_registered(&ppath, false).ok();
        // No producer file: a foreign object, instance 0.
        let obj = create_exclusive(&name, 0o600).unwrap();
        size_object(&obj, 4096).unwrap();
        let opened = open_instance(None, || open_object(&name)).unwrap();
        assert!(matches!(opened, Opened::Object(_, 0)));
        // A live producer still creating: not there yet.
        let p1 = take_lock(&ppath, PATIENT, || open_registered(&ppath, true)).unwrap().unwrap();
        let rec = |stage, instance| ProducerRecord { stage, instance, pid: 1 };
        rec(ProducerStage::Creating, 11).write(&p1).unwrap();
        let view = reader_view();
        assert!(matches!(
            open_instance(view.as_deref(), || open_object(&name)).unwrap(),
            Opened::SettingUp
        ));
        rec(ProducerStage::Live, 11).write(&p1).unwrap();
        let Opened::Object(_, instance) =
            open_instance(view.as_deref(), || open_object(&name)).unwrap()
        else {
            panic!("a live record names the object")
        };
        assert_eq!(instance, 11);
        assert!(producer_alive(view.as_deref(), 11));
        // The producer dies (its lock goes): its readers see it dead.
        drop(p1);
        assert!(!producer_alive(view.as_deref(), 11));
        // A new producer takes the name: the old instance's readers still see theirs dead,
        // and the new instance's reader entries are not the old ones'.
        let p2 = take_lock(&ppath, PATIENT, || open_registered(&ppath, true)).unwrap().unwrap();
        rec(ProducerStage::Live, 22).write(&p2).unwrap();
        assert!(!producer_alive(view.as_deref(), 11));
        assert!(producer_alive(view.as_deref(), 22));
        assert_ne!(dir.reader(&name, 11, 0), dir.reader(&name, 22, 0));
        // A record changed between the two reads: opened again.
        let mut opens = 0;
        let opened = open_instance(view.as_deref(), || {
            opens += 1;
            if opens == 1 {
                rec(ProducerStage::Live, 33).write(&p2).unwrap();
            }
            open_object(&name)
        })
        .unwrap();
        assert!(matches!(opened, Opened::Object(_, 33)) && opens == 2, "{opens}");
        remove_held(&ppath, &p2);
        remove_object(&name).unwrap();
        drop((p2, view));
        std::fs::remove_dir(dir.path()).unwrap();
    }

    #[test]
    fn records_round_trip_and_instances_differ() {
        let r =
            ProducerRecord { stage: ProducerStage::Creating, instance: u64::MAX, pid: u32::MAX };
        assert_eq!(ProducerRecord::decode(&r.encode()), Some(r));
        assert_eq!(ProducerRecord::decode(b"garbage"), None);
        let a = new_instance();
        let b = new_instance();
        assert!(a != b && a != 0 && b != 0);
    }

    #[test]
    fn a_lock_dir_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = test_dir();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(dir.ensure().unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        std::fs::remove_dir(dir.path()).unwrap();
    }
}
