//! Named shared-memory segments: create, open, validate, lock, unlink.
//!
//! A channel named `cam` is the POSIX shared-memory object `/cam`, on Linux the file
//! `/dev/shm/cam`: exactly what cpp_py_shmbuf's `shm_open("/cam")` and Python's
//! `multiprocessing.shared_memory.SharedMemory("cam")` use. macOS has no such files (objects
//! cannot be linked, renamed, locked or listed): its segments and role locks are in `macos`,
//! with the same roles; this module's protocol below is Linux's (and other Unix systems').
//!
//! # Ownership, liveness and exclusivity: kernel-released locks
//!
//! Nothing a process writes into shared memory can say "I died". So roles are held as
//! open-file-description locks on single bytes of the segment file (advisory: they never touch
//! the data), which the kernel drops when the holder's last descriptor closes, SIGKILL included:
//!
//! | lock byte | held by | meaning |
//! |---|---|---|
//! | 0 | the producer, for its whole life | "a live producer writes this segment" |
//! | 1 | the consumer of a raw channel (or of an older framed one), while attached | "this ring has its one consumer" |
//! | 2 + r | reader r of a framed channel, while attached or holding frames | "entry r of the reader table is taken" |
//!
//! # Creating without races
//!
//! A producer never exposes a half-made segment and never replaces a live one:
//! 1. it creates a hidden temporary object (`O_EXCL`, `O_NOFOLLOW`, mode 0600 by default),
//!    takes its producer lock at once, reserves its pages (a full `/dev/shm` fails here, not
//!    later with SIGBUS) and writes the header;
//! 2. it hard-links the temporary under the channel name, which fails if the name exists;
//! 3. if the name exists: a locked producer byte means a live owner (error); an unlocked one is
//!    a stale leftover, which we lock, check it is still the one under the name and ours, and
//!    atomically replace by renaming our temporary over it. Holding the stale segment's lock
//!    during the check and the rename keeps a second racing producer out.
//!
//! A reader that follows producer restarts sees the name point at a new file.
//!
//! A producer killed during step 1 leaves its temporary behind, unlocked: the next producer
//! removes it ([`clean_leftovers`]), as `frame-stats --clean` does with dead channels too.
//!
//! Every descriptor that holds these locks is a `fork::LockFile`: a child made by `fork()`
//! lets go of its copy, so the locks follow the process that took the role.

#[cfg(unix)]
use std::fs::File;
use std::path::PathBuf;
use std::ptr::NonNull;
#[cfg(all(unix, not(target_os = "macos")))]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

#[cfg(all(unix, not(target_os = "macos")))]
use crate::error::Violation;
use crate::error::{Error, Result, Role};
#[cfg(unix)]
use crate::fork::LockFile;
use crate::fork::Owner;
#[cfg(all(unix, not(target_os = "macos")))]
use crate::ring::RingError;
use crate::ring::RingMemory;
#[cfg(unix)]
use crate::ring::{HEADER_LEN, RESERVED_OFFSET};
use crate::sys;
#[cfg(all(unix, not(target_os = "macos")))]
use crate::sys::LockState;
use crate::table::{Geometry, TableMemory};

#[cfg(all(unix, not(target_os = "macos")))]
const PRODUCER_LOCK_BYTE: u64 = 0;
#[cfg(all(unix, not(target_os = "macos")))]
const CONSUMER_LOCK_BYTE: u64 = 1;
#[cfg(all(unix, not(target_os = "macos")))]
const READER_LOCK_BASE: u64 = 2;
const TEMP_PREFIX: &str = ".shmframes-tmp-";

/// Longest channel name accepted, in bytes (NAME_MAX is 255; we keep room for our temporary
/// names, which add a prefix).
pub const MAX_NAME_LEN: usize = 200;

/// What is wrong with a channel name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameProblem {
    /// Nothing (or only `/`).
    #[error("it is empty; use a name such as \"shm_video\"")]
    Empty,
    /// A `/` after the optional leading one.
    #[error("it contains '/' (only one leading '/' is allowed, as in shm_open)")]
    Slash,
    /// A NUL byte.
    #[error("it contains a NUL byte")]
    Nul,
    /// `.` or `..`.
    #[error("\".\" and \"..\" are not object names")]
    Dot,
    /// Our temporary files' prefix.
    #[error("names starting with {TEMP_PREFIX:?} are reserved for temporary files")]
    Reserved,
    /// Longer than [`MAX_NAME_LEN`].
    #[error("it is {len} bytes long, more than the {MAX_NAME_LEN} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Longer than macOS's `shm_open` takes: 30 bytes (refused on macOS only).
    #[error(
        "it is {len} bytes long; macOS's shm_open takes names of at most {MAX_SHM_OPEN_NAME} \
         bytes after the '/' (PSHMNAMLEN, 31 with it): choose a shorter name"
    )]
    TooLongForShmOpen {
        /// Its length in bytes.
        len: usize,
    },
}

/// Longest channel name macOS's `shm_open` takes, without the leading `/` (`PSHMNAMLEN` is 31
/// with it). Names are refused above this on macOS only.
pub const MAX_SHM_OPEN_NAME: usize = 30;
#[cfg(unix)]
const _: () = assert!(MAX_SHM_OPEN_NAME == sys::posix_shm::MAX_OBJECT_NAME - 1);

/// Checks a channel name and returns it without its optional leading `/`.
///
/// # Errors
/// [`Error::InvalidName`] with the [`NameProblem`].
pub fn validate_name(name: &str) -> Result<&str> {
    let bad = |reason| Err(Error::InvalidName { name: name.to_owned(), reason });
    let n = name.strip_prefix('/').unwrap_or(name);
    if n.is_empty() {
        return bad(NameProblem::Empty);
    }
    if n.contains('/') {
        return bad(NameProblem::Slash);
    }
    if n.contains('\0') {
        return bad(NameProblem::Nul);
    }
    if n == "." || n == ".." {
        return bad(NameProblem::Dot);
    }
    if n.starts_with(TEMP_PREFIX) {
        return bad(NameProblem::Reserved);
    }
    if n.len() > MAX_NAME_LEN {
        return bad(NameProblem::TooLong { len: n.len() });
    }
    if cfg!(target_os = "macos") && n.len() > MAX_SHM_OPEN_NAME {
        return bad(NameProblem::TooLongForShmOpen { len: n.len() });
    }
    Ok(n)
}

/// A mapped, validated segment.
#[derive(Debug)]
pub(crate) struct Segment {
    name: String,
    /// The segment file (on macOS, the object's name, for messages).
    #[cfg(unix)]
    #[cfg_attr(target_os = "macos", allow(dead_code))]
    path: PathBuf,
    /// Holds our role locks; a fork child's copy lets go of them (see `fork`).
    #[cfg(unix)]
    file: LockFile,
    /// The process that opened it: only there do its roles act (see `fork`).
    owner: Owner,
    /// Whether it holds the consumer lock (listed in `CONSUMED_HERE` while it does).
    consuming: std::sync::atomic::AtomicBool,
    // Keeps the mapping alive; `ring` points into it.
    #[cfg(unix)]
    _map: memmap2::MmapRaw,
    ring: RingMemory,
    /// Bytes mapped (of the protocol's layout: on Windows, without the Windows block).
    len: usize,
    /// Identity: the file's (device, inode) on Linux; (0, the instance) on macOS and Windows.
    id: (u64, u64),
    /// The role lock files and the instance (macOS: `shm_open` objects hold no locks).
    #[cfg(target_os = "macos")]
    roles: macos::Roles,
    /// The view, the producer's section handle, the instance and the role mutexes held.
    #[cfg(windows)]
    roles: windows::Roles,
}

#[cfg(target_os = "macos")]
mod macos;
#[cfg(windows)]
mod windows;

#[cfg(unix)]
/// Maps `len` bytes of the segment whose locks `file` holds, through a description of its own
/// (see `sys::description_for_mapping`), closed once mapped.
fn map(file: &File, len: usize, what: &str) -> Result<(memmap2::MmapRaw, NonNull<u8>)> {
    let own = sys::description_for_mapping(file)
        .map_err(|e| Error::io(format!("cannot reopen {what} to map it"), e))?;
    let map = memmap2::MmapOptions::new()
        .len(len)
        .map_raw(own.as_ref().unwrap_or(file))
        .map_err(|e| Error::io(format!("cannot map {what}"), e))?;
    let base = NonNull::new(map.as_mut_ptr()).expect("mmap never returns null");
    Ok((map, base))
}

/// Bytes of a new segment's layout, as [`init_layout`] writes it: the ring header and data
/// area, and the reader table of geometry `table` after them if given.
fn layout_len(capacity: u32, table: Option<Geometry>) -> usize {
    match table {
        Some(g) => Geometry::table_offset(capacity) + g.table_len(),
        None => crate::ring::HEADER_LEN + capacity as usize,
    }
}

/// Writes a new segment's layout into `base..base + len`: the ring header (`capacity`,
/// `reserved`), and the reader table of geometry `table` after the data area if given. The
/// one layout of every platform's `create`.
///
/// # Safety
/// `base..base + len` must be a page-aligned mapping that only this producer uses yet, sized
/// for the ring and (if given) the table, alive as long as the returned views.
unsafe fn init_layout(
    name: &str,
    base: NonNull<u8>,
    len: usize,
    capacity: u32,
    reserved: u32,
    table: Option<Geometry>,
) -> Result<(RingMemory, Option<TableMemory>)> {
    // The table before the ring header: the header's capacity, written last, tells a reader
    // of a segment visible while being made (Windows) that everything is there.
    let table = match table {
        Some(g) => {
            let offset = Geometry::table_offset(capacity);
            // SAFETY: `offset + g.table_len() == len` bytes are mapped (the caller sized the
            // segment for it), the offset is a multiple of 64 in a page-aligned mapping, and
            // the segment is still ours alone.
            let t = unsafe {
                TableMemory::init(
                    NonNull::new_unchecked(base.as_ptr().add(offset)),
                    len - offset,
                    g,
                )
            };
            Some(t.expect("the segment was sized for its table"))
        }
        None => None,
    };
    // SAFETY: the caller's contract: `len` mapped bytes, ours alone.
    let ring = unsafe { RingMemory::init(base, len, capacity, 0, reserved) }
        .map_err(|e| Error::protocol(name, e))?;
    Ok((ring, table))
}

impl Segment {
    #[cfg(all(unix, not(target_os = "macos")))]
    /// Creates the segment as its producer (see the module docs): a data area of `capacity`
    /// bytes, header `reserved` word as given, a reader table of geometry `table` after the
    /// data area if given, permission bits `mode`.
    pub(crate) fn create(
        name: &str,
        capacity: u32,
        reserved: u32,
        table: Option<Geometry>,
        mode: u32,
    ) -> Result<(Segment, Option<TableMemory>)> {
        let name = validate_name(name)?.to_owned();
        let path = sys::shm_path(&name);
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        let table_geometry = table;
        // What dead producers left: temporaries of producers killed while creating, and
        // channels whose producer died without ending its stream (ours, this user's, proven
        // dead by their lock; best effort: never a reason to fail). Without this, producers
        // killed at start fill a 64 MB /dev/shm with three 1080p channels.
        let _ = clean_leftovers(true);
        let len = layout_len(capacity, table) as u64;

        // Unique even across PID namespaces sharing /dev/shm (containers): pid, a counter and
        // the clock.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{}-{}-{:x}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            sys::monotonic_ns() ^ (&COUNTER as *const AtomicU64 as u64).rotate_left(32)
        ));
        let file = LockFile::open(|| sys::create_new(&temp, mode)).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                Error::PermissionDenied { name: name.clone(), path: dir.clone() }
            }
            _ => Error::io(format!("cannot create a segment in {}", dir.display()), e),
        })?;
        // From here on, remove the temporary name on any failure.
        let cleanup = TempGuard(Some(temp.clone()));
        // Locked at once: an unlocked temporary is a dead producer's leftover, which the next
        // producer removes (see `clean_leftovers`).
        if !sys::try_lock_byte(&file, PRODUCER_LOCK_BYTE)
            .map_err(|e| Error::io("cannot lock the new segment", e))?
        {
            let cause =
                std::io::Error::new(std::io::ErrorKind::WouldBlock, "locked by another process");
            return Err(Error::io(
                format!("cannot lock the fresh temporary segment {}", temp.display()),
                cause,
            ));
        }
        sys::allocate(&file, len).map_err(|source| match source {
            _ if sys::is_out_of_space(&source) => {
                Error::NoSpace { name: name.clone(), bytes: len, dir: dir.clone(), cause: source }
            }
            _ => {
                Error::io(format!("cannot size segment {} to {len} bytes", temp.display()), source)
            }
        })?;
        let (map, base) = map(&file, len as usize, "the new segment")?;
        // SAFETY: the mapping is `len` bytes, page-aligned, ours alone (the temporary name is
        // unique and O_EXCL-created), and `map` lives in the returned Segment with the views.
        let (ring, table) =
            unsafe { init_layout(&name, base, len as usize, capacity, reserved, table) }?;
        let meta = file.metadata().map_err(|e| Error::io("cannot stat the new segment", e))?;
        let id = sys::file_id(&meta);

        loop {
            match std::fs::hard_link(&temp, &path) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                // Our temporary is gone: another producer's clean-up took it for a dead one's
                // (its pid unknown in that producer's PID namespace). Start again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !temp.exists() => {
                    drop(cleanup);
                    return Segment::create(&name, capacity, reserved, table_geometry, mode);
                }
                Err(e) => {
                    return Err(Error::io(format!("cannot publish segment {}", path.display()), e))
                }
            }
            // The name exists: live owner, or a leftover we may replace?
            let old = match LockFile::open(|| sys::open_existing(&path)) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // gone meanwhile
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(Error::PermissionDenied { name, path })
                }
                Err(e) if sys::is_symlink_refused(&e) => {
                    return Err(Error::SymbolicLink { name, path })
                }
                Err(e) => {
                    return Err(Error::io(format!("cannot open existing {}", path.display()), e))
                }
            };
            let old_meta =
                old.metadata().map_err(|e| Error::io("cannot stat the existing segment", e))?;
            if sys::file_uid(&old_meta) != sys::euid() {
                return Err(Error::ForeignSegment { name, path, uid: sys::file_uid(&old_meta) });
            }
            // Only a segment our producer made can be proven dead by its lock; anything else
            // (cpp_py_shmbuf's producer takes no lock) might be live: never replace it.
            if !has_our_mark(&old) {
                return Err(Error::NameTaken { name, path });
            }
            if !sys::try_lock_byte(&old, PRODUCER_LOCK_BYTE)
                .map_err(|e| Error::io("cannot lock the existing segment", e))?
            {
                drop(old); // so that we do not list ourselves
                return Err(Error::ProducerAlive { users: sys::processes_using(&path), name });
            }
            // Stale. Is the name still this file? (Another producer may have replaced it.)
            match std::fs::symlink_metadata(&path) {
                Ok(m) if sys::file_id(&m) == sys::file_id(&old_meta) => {}
                _ => continue,
            }
            std::fs::rename(&temp, &path).map_err(|e| {
                Error::io(format!("cannot replace stale segment {}", path.display()), e)
            })?;
            break;
        }
        cleanup.disarm_after_link(&temp);
        Ok((
            Segment {
                name,
                path,
                file,
                owner: Owner::current(),
                consuming: false.into(),
                _map: map,
                ring,
                len: len as usize,
                id,
            },
            table,
        ))
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    /// Opens an existing segment and validates its header. Does not take any role.
    pub(crate) fn open(name: &str) -> Result<Segment> {
        let name = validate_name(name)?.to_owned();
        let path = sys::shm_path(&name);
        let file = LockFile::open(|| sys::open_existing(&path)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::ChannelNotFound { name: name.clone(), path: path.clone(), waited: None }
            }
            std::io::ErrorKind::PermissionDenied => {
                Error::PermissionDenied { name: name.clone(), path: path.clone() }
            }
            _ if sys::is_symlink_refused(&e) => {
                Error::SymbolicLink { name: name.clone(), path: path.clone() }
            }
            _ => Error::io(format!("cannot open {}", path.display()), e),
        })?;
        let meta =
            file.metadata().map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::protocol(&name, Violation::NotAFile { path }));
        }
        let len = meta.len();
        if len < HEADER_LEN as u64 {
            return Err(Error::protocol(&name, RingError::TooSmall { len: len as usize }));
        }
        let len = usize::try_from(len)
            .map_err(|_| Error::protocol(&name, Violation::TooBigToMap { len }))?;
        let (map, base) = map(&file, len, "the segment")?;
        // SAFETY: the mapping is `len` bytes and lives in the returned Segment with `ring`;
        // `attach` validates the capacity against `len` before any data access. The file size
        // cannot shrink under us without the producer breaking the protocol (ftruncate on a
        // live segment); see the crate docs on trust.
        let ring =
            unsafe { RingMemory::attach(base, len) }.map_err(|e| Error::protocol(&name, e))?;
        let id = sys::file_id(&meta);
        Ok(Segment {
            name,
            path,
            file,
            owner: Owner::current(),
            consuming: false.into(),
            _map: map,
            ring,
            len,
            id,
        })
    }

    /// The reader table after the data area (framed channels of extension version 2).
    pub(crate) fn table(&self) -> Result<TableMemory> {
        let offset = Geometry::table_offset(self.ring.capacity());
        let Some(room) = self.len.checked_sub(offset).filter(|&r| r > 0) else {
            return Err(Error::protocol(
                &self.name,
                crate::table::TableError::Missing { len: self.len, offset },
            ));
        };
        let base = self.ring.header() as *const _ as *mut u8;
        // SAFETY: `offset < len`, so the pointer is inside the mapping (which lives as long as
        // the segment, and so as long as the caller's use of the table, see `Attachment`).
        let base = unsafe { NonNull::new_unchecked(base.add(offset)) };
        // SAFETY: `room` bytes from `base` are mapped; `attach` validates what it reads.
        unsafe { TableMemory::attach(base, room, self.ring.capacity()) }
            .map_err(|e| Error::protocol(&self.name, e))
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    /// Takes the lock of reader entry `r`; `false` if another reader holds it.
    pub(crate) fn lock_entry(&self, r: usize) -> Result<bool> {
        sys::try_lock_byte(&self.file, READER_LOCK_BASE + r as u64)
            .map_err(|e| Error::io("cannot lock the segment", e))
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    /// Whether a reader holds the lock of entry `r` (the kernel drops it when the reader dies).
    pub(crate) fn entry_alive(&self, r: usize) -> bool {
        // An error from the probe is treated as "alive": never free a place we did not see die.
        !matches!(
            sys::probe_lock_byte(&self.file, READER_LOCK_BASE + r as u64),
            Ok(LockState::Free)
        )
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    /// The processes that have the segment open, other than this one (for error messages).
    pub(crate) fn other_users(&self) -> Vec<(u32, String)> {
        let me = std::process::id();
        sys::processes_using(&self.path).into_iter().filter(|(pid, _)| *pid != me).collect()
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The segment file (its lock description; map it through `sys::map_window`).
    #[cfg(unix)]
    pub(crate) fn file(&self) -> &sys::SegmentFile {
        &self.file
    }

    /// What lent windows would be mapped from (lending is not implemented on Windows yet).
    #[cfg(windows)]
    pub(crate) fn file(&self) -> &sys::SegmentFile {
        &windows::NO_FILE
    }

    /// Whether this process opened the segment (not a fork child of the one that did): only
    /// then may its roles change shared state (see `fork`).
    pub(crate) fn owned_here(&self) -> bool {
        self.owner.is_here()
    }

    /// `Err(ForkedChild)` unless [`owned_here`](Segment::owned_here).
    pub(crate) fn check_owner(&self, role: Role) -> Result<()> {
        if self.owned_here() {
            return Ok(());
        }
        Err(Error::ForkedChild { name: self.name.clone(), role, owner: self.owner.pid() })
    }

    pub(crate) fn ring(&self) -> &RingMemory {
        &self.ring
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    /// Takes the consumer role's lock; `Err(ChannelBusy)` if another consumer has it.
    pub(crate) fn lock_consumer(&self) -> Result<()> {
        if sys::try_lock_byte(&self.file, CONSUMER_LOCK_BYTE)
            .map_err(|e| Error::io("cannot lock the segment", e))?
        {
            self.consuming.store(true, Ordering::Relaxed);
            consumed_here().push(self.id);
            return Ok(());
        }
        if consumed_here().contains(&self.id) {
            // The kernel does not say who holds an OFD lock, but we know our own.
            return Err(Error::ChannelBusy {
                name: self.name.clone(),
                users: vec![(std::process::id(), String::new())],
                max_readers: None,
            });
        }
        // The kernel does not say who holds an OFD lock: name the processes that have the
        // segment open instead (other than us).
        Err(Error::ChannelBusy {
            name: self.name.clone(),
            users: self.other_users(),
            max_readers: None,
        })
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    /// Whether a producer holds the producer lock (the kernel drops it when it dies).
    pub(crate) fn producer_alive(&self) -> bool {
        // An error from the probe is treated as "alive": never report a death we did not see.
        !matches!(sys::probe_lock_byte(&self.file, PRODUCER_LOCK_BYTE), Ok(LockState::Free))
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    /// Whether a consumer holds the consumer lock.
    pub(crate) fn consumer_attached(&self) -> bool {
        matches!(sys::probe_lock_byte(&self.file, CONSUMER_LOCK_BYTE), Ok(LockState::Held(_)))
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    /// Whether the channel name still refers to this very segment.
    pub(crate) fn name_points_here(&self) -> bool {
        matches!(std::fs::symlink_metadata(&self.path), Ok(m) if sys::file_id(&m) == self.id)
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    /// Removes the name if it still refers to this segment (a producer's clean exit). Readers
    /// never unlink: the name belongs to the producer.
    pub(crate) fn unlink_if_ours(&self) {
        if self.name_points_here() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The directory segments live in (`/dev/shm` on Linux; macOS has none: see `macos`).
#[cfg(all(unix, not(target_os = "macos")))]
pub(crate) fn segment_dir() -> PathBuf {
    sys::shm_path("x").parent().map(PathBuf::from).unwrap_or_default()
}

/// The names of the channels there are (not checked: some may be other files of the segment
/// directory that merely have a valid name, or dead channels).
///
/// # Errors
/// When the directory cannot be listed.
pub(crate) fn channel_names() -> Result<Vec<String>> {
    #[cfg(target_os = "macos")]
    return macos::channel_names();
    #[cfg(windows)]
    return windows::channel_names();
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let dir = segment_dir();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| validate_name(n).is_ok())
            .collect())
    }
}

/// What [`clean_leftovers`] removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    /// The file removed.
    pub path: PathBuf,
    /// `None` for a temporary a producer died creating; the channel name for a dead channel.
    pub channel: Option<String>,
}

#[cfg(all(unix, not(target_os = "macos")))]
use crate::timing::LEFTOVER_MIN_AGE;

/// Removes what dead producers left in the segment directory (`/dev/shm` on Linux) that only
/// this user's own processes could have used: the hidden temporaries (`.shmframes-tmp-*`) of
/// producers killed while creating a channel, and with `channels`, channels whose producer died
/// without ending its stream (made by shmframes, so that their lock proves the death; foreign
/// segments, such as cpp_py_shmbuf's, are never touched). A file is removed only while we hold
/// its producer lock, so no live or starting producer loses it. Readers still attached to a
/// removed channel keep their mapping (and their frames); a new producer gets a fresh name.
///
/// Every producer runs this (with `channels`) when it creates a channel, as iceoryx2 cleans up
/// dead nodes whenever a node is created; `frame-stats --clean` runs it on demand. A temporary
/// is dead once its lock is free and either its creator's pid (in its name) no longer exists
/// or it is older than [`LEFTOVER_MIN_AGE`](crate::timing::LEFTOVER_MIN_AGE).
///
/// # Errors
/// When the directory cannot be listed; files that cannot be examined are skipped.
pub fn clean_leftovers(channels: bool) -> Result<Vec<Leftover>> {
    #[cfg(target_os = "macos")]
    return macos::clean_leftovers(channels);
    #[cfg(windows)]
    return windows::clean_leftovers(channels);
    #[cfg(all(unix, not(target_os = "macos")))]
    clean_dir(channels)
}

/// [`clean_leftovers`] in a directory of segment files (Linux's `/dev/shm`).
#[cfg(all(unix, not(target_os = "macos")))]
fn clean_dir(channels: bool) -> Result<Vec<Leftover>> {
    let dir = segment_dir();
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else { continue };
        let channel = if let Some(rest) = n.strip_prefix(TEMP_PREFIX) {
            // Never our own process's (a thread of ours may be creating it; and where locks
            // belong to the process, closing our look at it would drop that thread's lock).
            if rest.split('-').next() == Some(std::process::id().to_string().as_str()) {
                continue;
            }
            None
        } else if channels && validate_name(n).is_ok() {
            Some(n.to_owned())
        } else {
            continue;
        };
        let path = entry.path();
        if let Some(true) = remove_if_dead(&path, channel.is_none()) {
            removed.push(Leftover { path, channel });
        }
    }
    Ok(removed)
}

#[cfg(all(unix, not(target_os = "macos")))]
/// Removes `path` if it is this user's, unlocked (its producer is dead) and, for a channel,
/// made by shmframes, for a temporary, old enough. `None` when it could not be examined.
fn remove_if_dead(path: &std::path::Path, temporary: bool) -> Option<bool> {
    let file = LockFile::open(|| sys::open_existing(path)).ok()?;
    let meta = file.metadata().ok()?;
    // A temporary may have died before its header was written: its reserved prefix and its
    // lock say enough. A channel must carry our mark: only our producers' locks prove a death.
    if !meta.is_file()
        || sys::file_uid(&meta) != sys::euid()
        || (!temporary && !has_our_mark(&file))
    {
        return Some(false);
    }
    // A temporary whose creator is gone (its pid is in the name) is dead whatever its age.
    let creator_gone = temporary
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !sys::pid_exists(pid));
    if temporary && !creator_gone {
        let changed = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(
                std::os::unix::fs::MetadataExt::ctime(&meta).max(0) as u64
            );
        if changed.elapsed().map_or(true, |age| age < LEFTOVER_MIN_AGE) {
            return Some(false);
        }
    }
    // Held while we check and remove: a producer replacing a stale channel takes this lock
    // too (see the module docs), so the name cannot change to a live segment under us.
    if !sys::try_lock_byte(&file, PRODUCER_LOCK_BYTE).ok()? {
        return Some(false); // alive
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if sys::file_id(&m) == sys::file_id(&meta) => {
            Some(std::fs::remove_file(path).is_ok())
        }
        _ => Some(false),
    }
}

/// The segments (by file identity) whose consumer lock this process holds: the kernel does not
/// say who holds an OFD lock, and "another reader in this process" is the likeliest mistake.
fn consumed_here() -> std::sync::MutexGuard<'static, Vec<(u64, u64)>> {
    static CONSUMED_HERE: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());
    CONSUMED_HERE.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Segment {
    fn drop(&mut self) {
        // (Not in a fork child: its copy of the list is its parent's, and another thread may
        // have held the list's mutex when the child was made.)
        if self.consuming.load(Ordering::Relaxed) && self.owned_here() {
            let mut ids = consumed_here();
            if let Some(i) = ids.iter().position(|&id| id == self.id) {
                ids.swap_remove(i);
            }
        }
        #[cfg(any(target_os = "macos", windows))]
        if self.owned_here() {
            self.release_roles();
        }
    }
}

/// Whether the segment's `reserved` word carries our producer's mark.
#[cfg(unix)]
fn has_our_mark(file: &File) -> bool {
    let mut header = [0u8; HEADER_LEN];
    #[cfg(all(unix, not(target_os = "macos")))]
    let read = std::os::unix::fs::FileExt::read_exact_at(file, &mut header, 0).is_ok();
    // (No read(2) on a macOS shm descriptor: the header is mapped.)
    #[cfg(target_os = "macos")]
    let read = sys::posix_shm::read_head(file, &mut header);
    read && crate::control::is_marked(u32::from_le_bytes(
        header[RESERVED_OFFSET..RESERVED_OFFSET + 4].try_into().expect("4 bytes"),
    ))
}

/// Removes a temporary segment name unless creation succeeded.
#[cfg(all(unix, not(target_os = "macos")))]
struct TempGuard(Option<PathBuf>);

#[cfg(all(unix, not(target_os = "macos")))]
impl TempGuard {
    fn disarm_after_link(mut self, temp: &std::path::Path) {
        // After a hard link the temporary name is a second name: drop it. After a rename it is
        // gone already, and the removal fails harmlessly.
        let _ = std::fs::remove_file(temp);
        self.0 = None;
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate_name("/shm_video").unwrap(), "shm_video");
        assert_eq!(validate_name("cam0").unwrap(), "cam0");
        for bad in ["", "/", "a/b", "//x", ".", "..", "x\0y", ".shmframes-tmp-1"] {
            let e = validate_name(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidName { .. }), "{bad:?}: {e}");
        }
        assert!(matches!(
            validate_name(&"n".repeat(201)),
            Err(Error::InvalidName { reason: NameProblem::TooLong { len: 201 }, .. })
        ));
        assert_eq!(validate_name(&"n".repeat(200)).is_ok(), !cfg!(target_os = "macos"));
        assert!(validate_name(&"n".repeat(MAX_SHM_OPEN_NAME)).is_ok());
        let e = NameProblem::TooLongForShmOpen { len: 31 }.to_string();
        assert!(e.contains("31 bytes long") && e.contains("at most 30"), "{e}");
    }
}
