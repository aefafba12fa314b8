//! macOS segments: POSIX shared-memory objects (`shm_open("/NAME")`, what cpp_py_shmbuf's macOS
//! producer and consumer open), with every role a `flock` on a lock file of the per-user lock
//! directory (see `sys::posix_shm` for the files and why).
//!
//! # Creating without races (objects cannot be linked or renamed here)
//!
//! 1. The producer takes the channel's producer lock (`p.NAME`): from here no other shmframes
//!    producer creates or removes `/NAME`. It records `Creating` and a fresh *instance*.
//! 2. It creates `/NAME` with `O_CREAT | O_EXCL`. If the name exists: an object of this user
//!    with our mark in its header is a dead producer's (a live one would hold the lock), as is
//!    an unsized one the previous record says a producer died creating: its name is removed
//!    and the create retried. Anything else is left alone (`NameTaken`, `ForeignSegment`).
//! 3. It sizes the object (the one `ftruncate` macOS allows), maps it, writes the header and
//!    the table, and only then records `Live` with the instance.
//!
//! A reader reads the record, opens the object, and reads the record again: the same `Live`
//! record both times proves the object is that instance's (a new producer records `Creating`
//! before it removes the old object, and `Live` only after it made the new one). While a live
//! producer records `Creating`, opening retries (as if the channel were not there yet); the
//! half-written header of a foreign producer is tolerated for `SETUP_GRACE` as on Linux.
//!
//! The instance keys the consumer's and readers' lock files, so a new producer under the name
//! never sees the entries of readers still attached to a dead one's segment as taken, and a
//! reader tells "my producer is alive" by the record's instance *and* its lock.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{
    consumed_here, has_our_mark, init_layout, layout_len, map, validate_name, Leftover, Segment,
};
use crate::error::{Error, Result};
use crate::fork::{LockFile, Owner};
use crate::ring::{RingMemory, HEADER_LEN};
use crate::sys::posix_shm::{self as shm, Existing, LockDir, ProducerRecord, ProducerStage};
use crate::sys::{self, LockState};
use crate::table::{Geometry, TableMemory};

/// A segment's roles on macOS: its lock directory, its instance, and the lock files it holds.
#[derive(Debug)]
pub(super) struct Roles {
    dir: LockDir,
    /// The segment's instance (0: a foreign producer's, or a dead one that left no record).
    instance: u64,
    /// The producer lock file: held by a producer, open for probes in a reader.
    producer: Option<LockFile>,
    /// Whether this segment holds the producer role.
    producing: bool,
    /// The consumer's and readers' lock files held, removed when the segment is dropped.
    held: Mutex<Vec<(PathBuf, LockFile)>>,
}

/// The object's name as error messages show it.
fn shown(name: &str) -> PathBuf {
    PathBuf::from(format!("/{name}"))
}

fn open_lock(path: &Path, create: bool) -> std::io::Result<LockFile> {
    LockFile::open(|| shm::open_lock_file(path, create))
}

/// `(pid, command name)` of a live pid, for error messages.
fn named(pid: u32) -> Option<(u32, String)> {
    (pid != 0 && sys::pid_exists(pid)).then(|| (pid, sys::process_name(pid)))
}

/// Removes our producer lock file unless creation succeeded (a `Creating` record left behind
/// would tell the next producer that an unsized object under the name is a dead one's).
struct ProducerGuard<'a>(&'a Path, Option<&'a File>);

impl Drop for ProducerGuard<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.1 {
            shm::remove_held(self.0, f);
        }
    }
}

impl Segment {
    /// Creates a new segment and becomes its producer (see the module docs).
    pub(crate) fn create(
        name: &str,
        capacity: u32,
        reserved: u32,
        table: Option<Geometry>,
        mode: u32,
    ) -> Result<(Segment, Option<TableMemory>)> {
        let name = validate_name(name)?.to_owned();
        let path = shown(&name);
        // What dead producers left (best effort, as on Linux).
        let _ = clean_leftovers(true);
        let len = layout_len(capacity, table) as u64;
        let dir = LockDir::of_user(sys::euid());
        dir.ensure().map_err(|e| {
            Error::io(format!("cannot use the lock directory {}", dir.path().display()), e)
        })?;
        let ppath = dir.producer(&name);
        let Some(plock) = shm::take_lock(&ppath, shm::PATIENT, || open_lock(&ppath, true))
            .map_err(|e| Error::io(format!("cannot lock {}", ppath.display()), e))?
        else {
            let users = open_lock(&ppath, false)
                .ok()
                .and_then(|f| ProducerRecord::read(&f))
                .and_then(|r| named(r.pid))
                .into_iter()
                .collect();
            return Err(Error::ProducerAlive { name, users });
        };
        let guard = ProducerGuard(&ppath, Some(&plock));
        let previous = ProducerRecord::read(&plock);
        let instance = shm::new_instance();
        let pid = std::process::id();
        let record = |stage| ProducerRecord { stage, instance, pid }.write(&plock);
        record(ProducerStage::Creating)
            .map_err(|e| Error::io(format!("cannot write {}", ppath.display()), e))?;
        let died_creating = previous.is_some_and(|r| r.stage == ProducerStage::Creating);
        let created = shm::create_object(&name, mode, |old| {
            has_our_mark(old)
                || (died_creating && shm::object_size_and_owner(old).is_ok_and(|(n, _)| n == 0))
        });
        let file = match created {
            Ok(Ok(f)) => {
                LockFile::open(|| Ok(f)).map_err(|e| Error::io("cannot register the segment", e))?
            }
            Ok(Err(Existing::Foreign(uid))) => {
                return Err(Error::ForeignSegment { name, path, uid })
            }
            Ok(Err(Existing::Taken)) => return Err(Error::NameTaken { name, path }),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(Error::PermissionDenied { name, path })
            }
            Err(e) => return Err(Error::io(format!("cannot create {}", path.display()), e)),
        };
        // From here on a failure removes the half-made object.
        struct ObjectGuard(Option<String>);
        impl Drop for ObjectGuard {
            fn drop(&mut self) {
                if let Some(n) = &self.0 {
                    let _ = shm::remove_object(n);
                }
            }
        }
        let mut object_guard = ObjectGuard(Some(name.clone()));
        shm::size_object(&file, len).map_err(|source| {
            if sys::is_out_of_space(&source) {
                Error::NoSpace { name: name.clone(), bytes: len, dir: path.clone(), cause: source }
            } else {
                Error::io(format!("cannot size {} to {len} bytes", path.display()), source)
            }
        })?;
        let (mapping, base) = map(&file, len as usize, "the new segment")?;
        // SAFETY: the mapping is `len` bytes, page-aligned, ours alone (created with O_EXCL
        // under the producer lock; readers wait for the `Live` record), and `mapping` lives in
        // the returned Segment with the views.
        let (ring, table) =
            unsafe { init_layout(&name, base, len as usize, capacity, reserved, table) }?;
        record(ProducerStage::Live)
            .map_err(|e| Error::io(format!("cannot write {}", ppath.display()), e))?;
        object_guard.0 = None;
        std::mem::forget(guard);
        let roles = Roles {
            dir,
            instance,
            producer: Some(plock),
            producing: true,
            held: Mutex::new(Vec::new()),
        };
        Ok((
            Segment {
                name,
                path,
                file,
                owner: Owner::current(),
                consuming: false.into(),
                _map: mapping,
                ring,
                len: len as usize,
                id: (0, instance),
                roles,
            },
            table,
        ))
    }

    /// Opens an existing segment and validates its header. Does not take any role.
    pub(crate) fn open(name: &str) -> Result<Segment> {
        let name = validate_name(name)?.to_owned();
        let path = shown(&name);
        let open_object = || {
            LockFile::open(|| shm::open_object(&name)).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    Error::ChannelNotFound { name: name.clone(), path: path.clone(), waited: None }
                }
                std::io::ErrorKind::PermissionDenied => {
                    Error::PermissionDenied { name: name.clone(), path: path.clone() }
                }
                _ => Error::io(format!("cannot open {}", path.display()), e),
            })
        };
        // The owner's lock directory (another user's producer keeps its own).
        let first = open_object()?;
        let (_, uid) = shm::object_size_and_owner(&first)
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        drop(first);
        let dir = LockDir::of_user(uid);
        let ppath = dir.producer(&name);
        // The record is read through the producer file the name has now; one removed (by a
        // cleaner) and made anew (by a new producer) meanwhile would keep an old record: then
        // everything is read again.
        let mut tries = 0;
        let (file, instance, producer) = loop {
            let producer = open_lock(&ppath, false).ok();
            let opened = shm::open_instance(producer.as_deref(), open_object)?;
            let same = match producer.as_deref() {
                Some(f) => shm::names(&ppath, f),
                None => !ppath.exists(),
            };
            tries += 1;
            match opened {
                shm::Opened::Object(file, instance) if same => break (file, instance, producer),
                shm::Opened::Object(..) if tries < 8 => continue,
                // A live producer still making it, or a name changing hands: not there yet.
                _ => return Err(Error::ChannelNotFound { name, path, waited: None }),
            }
        };
        let (len, _) = shm::object_size_and_owner(&file)
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        if len < HEADER_LEN as u64 {
            return Err(Error::protocol(
                &name,
                crate::ring::RingError::TooSmall { len: len as usize },
            ));
        }
        let len = usize::try_from(len)
            .map_err(|_| Error::protocol(&name, crate::error::Violation::TooBigToMap { len }))?;
        let (mapping, base) = map(&file, len, "the segment")?;
        // SAFETY: the mapping is `len` bytes and lives in the returned Segment with `ring`;
        // `attach` validates the capacity against `len` before any data access (the size of
        // an object cannot change on macOS once set).
        let ring =
            unsafe { RingMemory::attach(base, len) }.map_err(|e| Error::protocol(&name, e))?;
        Ok(Segment {
            name,
            path,
            file,
            owner: Owner::current(),
            consuming: false.into(),
            _map: mapping,
            ring,
            len,
            id: (0, instance),
            roles: Roles {
                dir,
                instance,
                producer,
                producing: false,
                held: Mutex::new(Vec::new()),
            },
        })
    }

    /// Takes a role's lock file, trying `tries` times (see `posix_shm::PATIENT`); `false` if
    /// another process holds it.
    fn take_role(&self, path: PathBuf, tries: u32) -> Result<bool> {
        let taken = shm::take_lock(&path, tries, || open_lock(&path, true))
            .map_err(|e| Error::io(format!("cannot lock {}", path.display()), e))?;
        Ok(match taken {
            Some(f) => {
                shm::write_pid(&f, std::process::id());
                self.roles.held.lock().unwrap_or_else(|p| p.into_inner()).push((path, f));
                true
            }
            None => false,
        })
    }

    fn role_held(&self, path: &Path) -> bool {
        // An error from the probe is treated as "held": never free what we did not see die.
        !matches!(shm::probe_path(|| open_lock(path, false)), Ok(LockState::Free))
    }

    /// Takes the lock of reader entry `r`; `false` if another reader holds it.
    pub(crate) fn lock_entry(&self, r: usize) -> Result<bool> {
        self.take_role(self.roles.dir.reader(&self.name, self.roles.instance, r), 2)
    }

    /// Whether a reader holds the lock of entry `r` (the kernel drops it when the reader dies).
    pub(crate) fn entry_alive(&self, r: usize) -> bool {
        self.role_held(&self.roles.dir.reader(&self.name, self.roles.instance, r))
    }

    /// The processes that hold a role of this segment, other than this one (for error
    /// messages), from the pids their lock files record.
    pub(crate) fn other_users(&self) -> Vec<(u32, String)> {
        let me = std::process::id();
        let mut pids: Vec<u32> = self
            .roles
            .producer
            .as_ref()
            .and_then(|f| ProducerRecord::read(f))
            .filter(|r| r.instance == self.roles.instance)
            .map(|r| r.pid)
            .into_iter()
            .collect();
        for (path, name, instance) in self.roles.dir.role_files().unwrap_or_default() {
            if name == self.name && instance == self.roles.instance {
                if let Some(pid) = open_lock(&path, false).ok().and_then(|f| shm::read_pid(&f)) {
                    pids.push(pid);
                }
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids.into_iter().filter(|&p| p != me).filter_map(named).collect()
    }

    /// Takes the consumer role's lock; `Err(ChannelBusy)` if another consumer has it.
    pub(crate) fn lock_consumer(&self) -> Result<()> {
        let path = self.roles.dir.consumer(&self.name, self.roles.instance);
        if self.take_role(path.clone(), shm::PATIENT)? {
            self.consuming.store(true, std::sync::atomic::Ordering::Relaxed);
            consumed_here().push(self.id);
            return Ok(());
        }
        let users = open_lock(&path, false)
            .ok()
            .and_then(|f| shm::read_pid(&f))
            .and_then(named)
            .into_iter()
            .collect();
        Err(Error::ChannelBusy { name: self.name.clone(), users, max_readers: None })
    }

    /// Whether this segment's producer holds its lock: the record names our instance and its
    /// lock is held (a new producer under the name records another instance).
    pub(crate) fn producer_alive(&self) -> bool {
        shm::producer_alive(self.roles.producer.as_deref(), self.roles.instance)
    }

    /// Whether a consumer holds the consumer lock.
    pub(crate) fn consumer_attached(&self) -> bool {
        self.role_held(&self.roles.dir.consumer(&self.name, self.roles.instance))
    }

    /// Whether the channel name still refers to this very segment: the producer lock file
    /// under the name records our instance (none for a foreign or record-less segment).
    pub(crate) fn name_points_here(&self) -> bool {
        let now = open_lock(&self.roles.dir.producer(&self.name), false)
            .ok()
            .and_then(|f| ProducerRecord::read(&f));
        match now {
            Some(r) => r.instance == self.roles.instance,
            None => self.roles.instance == 0 && shm::open_object(&self.name).is_ok(),
        }
    }

    /// Removes the name if it still refers to this segment (a producer's clean exit), and the
    /// producer lock file with it. Readers never unlink: the name belongs to the producer.
    pub(crate) fn unlink_if_ours(&self) {
        if !self.roles.producing || !self.owned_here() {
            return;
        }
        if self.name_points_here() {
            let _ = shm::remove_object(&self.name);
        }
        if let Some(f) = self.roles.producer.as_ref() {
            shm::remove_held(&self.roles.dir.producer(&self.name), f);
        }
    }

    /// Gives the roles' lock files back (removed while still held: see `posix_shm`).
    pub(super) fn release_roles(&mut self) {
        let held = std::mem::take(self.roles.held.get_mut().unwrap_or_else(|p| p.into_inner()));
        for (path, f) in held {
            shm::remove_held(&path, &f);
        }
    }
}

/// The channels that have a producer lock file (live, ended or dead).
pub(super) fn channel_names() -> Result<Vec<String>> {
    let dir = LockDir::of_user(sys::euid());
    match dir.channel_names() {
        Ok(names) => Ok(names.into_iter().filter(|n| validate_name(n).is_ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("cannot list {}", dir.path().display()), e)),
    }
}

/// macOS's `clean_leftovers`: with `channels`, the objects of this user's dead producers
/// (our mark in the header, or unsized by a producer that died creating it) and their producer
/// lock files; always, the consumer and reader lock files nobody holds.
pub(super) fn clean_leftovers(channels: bool) -> Result<Vec<Leftover>> {
    let dir = LockDir::of_user(sys::euid());
    let names = match dir.channel_names() {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("cannot list {}", dir.path().display()), e)),
    };
    let mut removed = Vec::new();
    if channels {
        for name in names.into_iter().filter(|n| validate_name(n).is_ok()) {
            let ppath = dir.producer(&name);
            // Held while we check and remove: no producer makes the name meanwhile.
            let Ok(Some(lock)) = shm::take_lock(&ppath, 1, || open_lock(&ppath, false)) else {
                continue; // alive, or gone meanwhile
            };
            let died_creating =
                ProducerRecord::read(&lock).is_some_and(|r| r.stage == ProducerStage::Creating);
            if let Ok(obj) = shm::open_object(&name) {
                let ours = shm::object_size_and_owner(&obj).is_ok_and(|(len, uid)| {
                    uid == sys::euid() && (has_our_mark(&obj) || (died_creating && len == 0))
                });
                if ours && shm::remove_object(&name).is_ok() {
                    removed.push(Leftover { path: shown(&name), channel: Some(name.clone()) });
                }
            }
            shm::remove_held(&ppath, &lock);
        }
    }
    for (path, _, _) in dir.role_files().unwrap_or_default() {
        if let Ok(Some(lock)) = shm::take_lock(&path, 1, || open_lock(&path, false)) {
            shm::remove_held(&path, &lock);
        }
    }
    Ok(removed)
}
