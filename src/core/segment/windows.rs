//! Windows segments: pagefile-backed named sections under the bare channel name (what
//! cpp_py_shmbuf's `CreateFileMappingA(INVALID_HANDLE_VALUE, ..., "NAME")` makes and its
//! `OpenFileMappingA` opens), roles as named mutexes (`sys::take_role`). Every kernel object and
//! its lifetime: `docs/windows.md`.
//!
//! - **Instance.** A producer draws a random 64-bit instance for each segment it creates and
//!   writes it into the *Windows block*, the last 64 bytes of the section (after everything the
//!   protocol defines, where cpp_py_shmbuf never looks). Every other kernel object of the
//!   segment is named from the instance, never from the channel name: an object of a dead
//!   instance is never mistaken for the new one's.
//! - **Creating.** `CreateFileMappingW` is exclusive through `ERROR_ALREADY_EXISTS`. A name
//!   taken by a segment without our mark (a foreign producer: it takes no role, it may be live)
//!   is `NameTaken`; by a live producer of ours, `ProducerAlive`; by a dead one whose section a
//!   process still holds a handle to, the create is retried for [`NAME_FREE_WAIT`] (readers hold
//!   a handle only for the microseconds of opening).
//! - **Leftovers: none.** A section goes with its last handle; our readers close theirs once
//!   mapped, so a producer's name goes with the producer, however it ends.
//! - **Half-made segments are visible** (no temporary name): the producer writes the header,
//!   the table and the block into the fresh section; a reader that opens it meanwhile sees a
//!   capacity of 0 or an incomplete table, which the open-retry policy tolerates as it does a
//!   foreign producer's setup on Linux.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{init_layout, layout_len, validate_name, Leftover, Segment};
use crate::error::{Error, Result};
use crate::fork::Owner;
use crate::ring::{RingMemory, HEADER_LEN};
use crate::sys::{self, Created, LockState, RoleLock, Section, View};
use crate::table::{Geometry, TableMemory};

/// How long a producer retries a name whose dead segment someone still holds a handle to.
const NAME_FREE_WAIT: Duration = Duration::from_secs(2);

/// The Windows block: `b"SFWN"`, u16 version, u16 0, u64 instance, u32 producer pid, zeros.
const BLOCK_LEN: usize = 64;
const BLOCK_MAGIC: &[u8; 4] = b"SFWN";
const BLOCK_VERSION: u16 = 1;

/// A segment's roles on Windows: its view, the producer's section handle (which keeps the
/// name), its instance, and the role locks held.
#[derive(Debug)]
pub(super) struct Roles {
    /// Keeps the mapping alive (`ring` points into it); unmapped last.
    _view: View,
    /// The producer's handle: the name lives as long as it. Readers hold none.
    section: Mutex<Option<Section>>,
    /// 0 for a foreign producer's segment (no block).
    instance: u64,
    /// The producer's pid from the block (0 if unknown).
    producer_pid: u32,
    /// Role locks taken through this segment, released when it drops.
    held: Mutex<Vec<RoleLock>>,
}

/// What lent windows would be mapped from (lending is not implemented on Windows yet).
pub(super) static NO_FILE: sys::SegmentFile = sys::SegmentFile;

/// The object's name as error messages show it.
fn shown(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("Local\\{name}"))
}

/// A random instance id, never 0 (std's hasher keys come from the system's generator).
fn new_instance() -> u64 {
    use std::hash::BuildHasher;
    loop {
        let x = std::collections::hash_map::RandomState::new().hash_one(sys::monotonic_ns());
        if x != 0 {
            return x;
        }
    }
}

/// Reads the Windows block at the end of `view`: `(instance, producer pid)`.
fn read_block(view: &View) -> Option<(u64, u32)> {
    if view.len() < HEADER_LEN + BLOCK_LEN {
        return None;
    }
    let mut b = [0u8; BLOCK_LEN];
    // SAFETY: the last BLOCK_LEN bytes of the view are mapped; read as bytes, racing only
    // with a producer writing its block once at creation (a torn read fails the checks).
    unsafe {
        std::ptr::copy_nonoverlapping(
            view.base().as_ptr().add(view.len() - BLOCK_LEN),
            b.as_mut_ptr(),
            BLOCK_LEN,
        )
    };
    let version = u16::from_le_bytes([b[4], b[5]]);
    let instance = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
    let pid = u32::from_le_bytes(b[16..20].try_into().expect("4 bytes"));
    (&b[..4] == BLOCK_MAGIC && version == BLOCK_VERSION && instance != 0).then_some((instance, pid))
}

/// The header's `capacity` word (0 while its producer is still creating the segment).
fn capacity(view: &View) -> u32 {
    // SAFETY: a view is at least a page; `capacity` is the u32 at offset 8, 4-aligned.
    let word = unsafe { &*view.base().as_ptr().add(8).cast::<std::sync::atomic::AtomicU32>() };
    word.load(Ordering::Acquire)
}

/// The key role locks are named with: the instance, or for a foreign segment the name.
fn role_key(instance: u64, name: &str) -> String {
    if instance != 0 {
        format!("{instance:016x}")
    } else {
        format!("n-{name}")
    }
}

/// `(pid, name)` of a running process, for messages.
fn named(pid: u32) -> Option<(u32, String)> {
    (pid != 0 && sys::pid_exists(pid)).then(|| (pid, sys::process_name(pid)))
}

/// What is under a name a producer could not create.
enum Existing {
    /// Not ours (no mark, or no block): maybe live, never replaced.
    Foreign,
    /// Another user's.
    OtherUser,
    /// Ours, its producer alive.
    Alive(u32),
    /// Ours, its producer dead or done (a handle keeps it), or gone meanwhile.
    Free,
}

fn inspect(name: &str) -> Result<Existing> {
    let section = match sys::open_section(name) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Free),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Ok(Existing::OtherUser)
        }
        Err(e) => {
            return Err(Error::io(format!("cannot open the existing {}", shown(name).display()), e))
        }
    };
    if !section.owned_by_me().unwrap_or(false) {
        return Ok(Existing::OtherUser);
    }
    let view = section.map().map_err(|e| Error::io("cannot map the existing segment", e))?;
    let made = capacity(&view) != 0; // first (Acquire): then the block is there if ours
    let Some((instance, pid)) = read_block(&view) else {
        // Our producers write the block first: without it, a capacity of 0 is a producer
        // (ours or not) that has just created the section; anything else is not ours.
        return Ok(if made { Existing::Foreign } else { Existing::Free });
    };
    Ok(match sys::probe_role(&role_key(instance, name), "producer") {
        Ok(LockState::Free) => Existing::Free,
        _ => Existing::Alive(pid),
    })
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
        let layout = layout_len(capacity, table);
        let page = sys::page_size();
        let len = (layout + BLOCK_LEN).div_ceil(page) * page;
        let instance = new_instance();
        let key = role_key(instance, &name);
        let producer = sys::take_role(&key, "producer")
            .map_err(|e| Error::io("cannot take the producer role", e))?
            .ok_or_else(|| {
                Error::io(
                    "cannot take the producer role of a fresh instance",
                    std::io::Error::from(std::io::ErrorKind::WouldBlock),
                )
            })?;
        let started = Instant::now();
        let section = loop {
            match sys::create_section(&name, len as u64, mode & 0o077 != 0) {
                Ok(Created::New(s)) => break s,
                Ok(Created::Exists) => match inspect(&name)? {
                    Existing::Foreign => return Err(Error::NameTaken { name, path }),
                    Existing::OtherUser => {
                        return Err(Error::ForeignSegment { name, path, uid: u32::MAX })
                    }
                    Existing::Alive(pid) => {
                        return Err(Error::ProducerAlive {
                            name,
                            users: named(pid).into_iter().collect(),
                        })
                    }
                    Existing::Free if started.elapsed() < NAME_FREE_WAIT => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Existing::Free => return Err(Error::NameTaken { name, path }),
                },
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                    return Err(Error::NoSpace { name, bytes: len as u64, dir: path, cause: e })
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(Error::PermissionDenied { name, path })
                }
                Err(e) => return Err(Error::io(format!("cannot create {}", path.display()), e)),
            }
        };
        let view = section.map().map_err(|e| Error::io("cannot map the new segment", e))?;
        // The block first: whoever sees a capacity (written by `init_layout`) sees the block,
        // and a producer racing us for the name tells our half-made segment from a foreign one.
        let mut block = [0u8; BLOCK_LEN];
        block[..4].copy_from_slice(BLOCK_MAGIC);
        block[4..6].copy_from_slice(&BLOCK_VERSION.to_le_bytes());
        block[8..16].copy_from_slice(&instance.to_le_bytes());
        block[16..20].copy_from_slice(&std::process::id().to_le_bytes());
        // SAFETY: the last BLOCK_LEN bytes of our fresh view, beyond the layout (`len` was
        // sized for both).
        unsafe {
            std::ptr::copy_nonoverlapping(
                block.as_ptr(),
                view.base().as_ptr().add(view.len() - BLOCK_LEN),
                BLOCK_LEN,
            )
        };
        // Release: pairs with the Acquire load of `capacity` in `open` and `inspect`.
        std::sync::atomic::fence(Ordering::Release);
        // SAFETY: the view is `view.len() >= layout` bytes, granularity-aligned, ours alone
        // (fresh: nobody else uses its layout before the capacity is there), and lives in the
        // returned Segment.
        let (ring, table) =
            unsafe { init_layout(&name, view.base(), layout, capacity, reserved, table) }?;
        sys::register_segment(view.base(), view.len(), instance);
        let seg_len = view.len() - BLOCK_LEN;
        Ok((
            Segment {
                name,
                owner: Owner::current(),
                consuming: false.into(),
                ring,
                len: seg_len,
                id: (0, instance),
                roles: Roles {
                    _view: view,
                    section: Mutex::new(Some(section)),
                    instance,
                    producer_pid: std::process::id(),
                    held: Mutex::new(vec![producer]),
                },
            },
            table,
        ))
    }

    /// Opens an existing segment and validates its header. Does not take any role.
    pub(crate) fn open(name: &str) -> Result<Segment> {
        let name = validate_name(name)?.to_owned();
        let path = shown(&name);
        let section = sys::open_section(&name).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::ChannelNotFound { name: name.clone(), path: path.clone(), waited: None }
            }
            std::io::ErrorKind::PermissionDenied => {
                Error::PermissionDenied { name: name.clone(), path: path.clone() }
            }
            _ => Error::io(format!("cannot open {}", path.display()), e),
        })?;
        match section.owned_by_me() {
            Ok(true) => {}
            Ok(false) => return Err(Error::ForeignSegment { name, path, uid: u32::MAX }),
            Err(e) => {
                return Err(Error::io(format!("cannot read the owner of {}", path.display()), e))
            }
        }
        let view = section.map().map_err(|e| Error::io("cannot map the segment", e))?;
        // The name goes with the producer's handle, not ours (see the module docs).
        drop(section);
        // The capacity first (Acquire, pairs with the producer's Release fence): once it is
        // there, so is the block of a producer of ours.
        if capacity(&view) == 0 {
            // Being made (by a producer of ours or not): retried within the open policy's grace.
            return Err(Error::protocol(
                &name,
                crate::ring::RingError::BadCapacity { capacity: 0 },
            ));
        }
        let (instance, producer_pid) = read_block(&view).unwrap_or((0, 0));
        let len = if instance != 0 { view.len() - BLOCK_LEN } else { view.len() };
        // SAFETY: the view is `len` bytes or more and lives in the returned Segment with
        // `ring`; `attach` validates the capacity against `len` before any data access.
        let ring = unsafe { RingMemory::attach(view.base(), len) }
            .map_err(|e| Error::protocol(&name, e))?;
        sys::register_segment(view.base(), view.len(), instance);
        Ok(Segment {
            name,
            owner: Owner::current(),
            consuming: false.into(),
            ring,
            len,
            id: (0, instance),
            roles: Roles {
                _view: view,
                section: Mutex::new(None),
                instance,
                producer_pid,
                held: Mutex::new(Vec::new()),
            },
        })
    }

    fn key(&self) -> String {
        role_key(self.roles.instance, &self.name)
    }

    /// Takes role lock `what`; `false` if anyone holds it.
    fn take(&self, what: &str) -> Result<bool> {
        match sys::take_role(&self.key(), what) {
            Ok(Some(lock)) => {
                self.roles.held.lock().unwrap_or_else(|p| p.into_inner()).push(lock);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(Error::io("cannot take a role lock of the segment", e)),
        }
    }

    fn held(&self, what: &str) -> bool {
        // An error from the probe is treated as "held": never report a death we did not see.
        !matches!(sys::probe_role(&self.key(), what), Ok(LockState::Free))
    }

    /// Takes the lock of reader entry `r`; `false` if another reader holds it.
    pub(crate) fn lock_entry(&self, r: usize) -> Result<bool> {
        self.take(&format!("reader{r}"))
    }

    /// Whether a reader holds the lock of entry `r`.
    pub(crate) fn entry_alive(&self, r: usize) -> bool {
        self.held(&format!("reader{r}"))
    }

    /// The processes known to use the segment, other than this one (for error messages): the
    /// producer, from the block.
    pub(crate) fn other_users(&self) -> Vec<(u32, String)> {
        let me = std::process::id();
        named(self.roles.producer_pid).into_iter().filter(|(pid, _)| *pid != me).collect()
    }

    /// Takes the consumer role's lock; `Err(ChannelBusy)` if another consumer has it.
    pub(crate) fn lock_consumer(&self) -> Result<()> {
        if self.take("consumer")? {
            self.consuming.store(true, Ordering::Relaxed);
            super::consumed_here().push(self.id);
            return Ok(());
        }
        let users = if super::consumed_here().contains(&self.id) {
            vec![(std::process::id(), String::new())]
        } else {
            Vec::new()
        };
        Err(Error::ChannelBusy { name: self.name.clone(), users, max_readers: None })
    }

    /// Whether a producer holds the producer lock (released by the kernel at its death).
    pub(crate) fn producer_alive(&self) -> bool {
        self.held("producer")
    }

    /// Whether a consumer holds the consumer lock.
    pub(crate) fn consumer_attached(&self) -> bool {
        self.held("consumer")
    }

    /// Whether the channel name still refers to this very segment (its block names our
    /// instance; a foreign segment: the name exists).
    pub(crate) fn name_points_here(&self) -> bool {
        let Ok(section) = sys::open_section(&self.name) else { return false };
        if self.roles.instance == 0 {
            return true;
        }
        section
            .map()
            .ok()
            .and_then(|v| read_block(&v))
            .is_some_and(|(i, _)| i == self.roles.instance)
    }

    /// A producer's clean exit: closes its section handle, so the name goes once no reader
    /// is opening it (readers keep their views, and their frames).
    pub(crate) fn unlink_if_ours(&self) {
        self.roles.section.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Gives the role locks back.
    pub(super) fn release_roles(&mut self) {
        self.roles.held.get_mut().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The channels there may be: the named sections of this session whose names a channel could
/// have (not checked: some are other programs' mappings, which opening them tells).
pub(super) fn channel_names() -> Result<Vec<String>> {
    let names = sys::section_names()
        .map_err(|e| Error::io("cannot list the session's named objects", e))?;
    Ok(names.into_iter().filter(|n| validate_name(n).is_ok()).collect())
}

/// Nothing is ever left behind on Windows: a section goes with its last handle.
pub(super) fn clean_leftovers(_channels: bool) -> Result<Vec<Leftover>> {
    Ok(Vec::new())
}
