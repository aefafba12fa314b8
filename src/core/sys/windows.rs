//! Windows: pagefile-backed named sections (what cpp_py_shmbuf's `CreateFileMappingA(NAME)`
//! makes), named kernel objects for every cross-process wake and death, one process-wide thread
//! holding the role mutexes. The design, every kernel object's name and lifetime, and what was
//! measured under Wine: `docs/windows.md`.
//!
//! | service | how |
//! |---|---|
//! | named segment | [`Section`]: `CreateFileMappingW(INVALID_HANDLE_VALUE, NAME)`, current user only (a DACL naming the user's SID), exclusive through `ERROR_ALREADY_EXISTS`; gone with its last handle |
//! | mapping | [`View`]: `MapViewOfFile` of the whole section, its size from `VirtualQuery` |
//! | wait word | the word stays the truth; the wake travels through a named auto-reset event per (segment instance, word, sleeper), found through the [registry](register_segment) of mapped segments; words of this process: parked threads, each on an event of its own |
//! | liveness token | a keeper thread owning a named mutex per liveness word: its death abandons them, and the first waiter to see that marks `OWNER_DIED` in the word |
//! | role locks | named mutexes owned by one process-wide holder thread ([`take_role`]) |
//! | clock | `QueryPerformanceCounter` |
//! | Ctrl+C | `SetConsoleCtrlHandler`: bumps [`SIGNAL_WORD`], then lets the next handler run |

use std::collections::HashMap;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, LocalFree, BOOL, ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND, FALSE,
    HANDLE, INVALID_HANDLE_VALUE, STILL_ACTIVE, TRUE, WAIT_ABANDONED_0, WAIT_OBJECT_0,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, GetSecurityInfo,
    SE_KERNEL_OBJECT,
};
use windows_sys::Win32::Security::{
    EqualSid, GetTokenInformation, TokenOwner, TokenUser, OWNER_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, PSID, SECURITY_ATTRIBUTES, TOKEN_OWNER, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::System::Console::{SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_C_EVENT};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, OpenFileMappingW, UnmapViewOfFile, VirtualQuery,
    FILE_MAP_ALL_ACCESS, MEMORY_BASIC_INFORMATION, MEMORY_MAPPED_VIEW_ADDRESS, PAGE_READWRITE,
};
use windows_sys::Win32::System::Performance::{QueryPerformanceCounter, QueryPerformanceFrequency};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};
use windows_sys::Win32::System::Threading::{
    CreateEventW, CreateMutexW, GetCurrentProcess, GetCurrentThreadId, GetExitCodeProcess,
    OpenMutexW, OpenProcess, OpenProcessToken, QueryFullProcessImageNameW, ReleaseMutex, SetEvent,
    WaitForMultipleObjects, WaitForSingleObject, INFINITE, PROCESS_NAME_WIN32,
    PROCESS_QUERY_LIMITED_INFORMATION, SYNCHRONIZATION_SYNCHRONIZE,
};

use super::liveness::mark_dead;
use super::{LockState, WaitWord, Waker, OWNER_MASK};

/// How long taking a free-looking mutex waits: probes and waiters that find it free hold it
/// for a few instructions (then release it), and must not make a taker fail.
const TAKE_WAIT_MS: u32 = 5;

/// `MAXIMUM_WAIT_OBJECTS`: the most handles one `WaitForMultipleObjects` takes.
pub const MAX_WAIT_WORDS: usize = 64;

// ---------------------------------------------------------------------------------------------
// Handles, names, security

/// An owned kernel handle, closed on drop.
#[derive(Debug)]
pub struct Handle(HANDLE);

// SAFETY: a kernel handle is a process-wide value; any thread may use or close it.
unsafe impl Send for Handle {}
// SAFETY: as above; the calls made through `&Handle` are thread-safe kernel calls.
unsafe impl Sync for Handle {}

impl Handle {
    /// `Some` for a valid handle (neither null nor `INVALID_HANDLE_VALUE`).
    fn new(h: HANDLE) -> Option<Handle> {
        // (Not `then_some`: it would build, and drop, a Handle of an invalid value, whose
        // CloseHandle overwrites the caller's last error.)
        (!h.is_null() && h != INVALID_HANDLE_VALUE).then(|| Handle(h))
    }

    fn raw(&self) -> HANDLE {
        self.0
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle is ours (made by `Handle::new` from a call that returned it) and
        // closed once, here.
        unsafe { CloseHandle(self.0) };
    }
}

/// A NUL-terminated UTF-16 copy of `s`.
fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// The last Win32 error as an `io::Error`.
fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// The current user's SID as a string (`S-1-5-21-...`), read once from the process token.
fn user_sid() -> io::Result<&'static str> {
    static SID: OnceLock<Result<String, i32>> = OnceLock::new();
    let got = SID.get_or_init(|| {
        with_token_user(|sid| {
            let mut text: *mut u16 = std::ptr::null_mut();
            // SAFETY: `sid` is a valid SID for the closure's duration; the call allocates
            // `text` with LocalAlloc, freed below.
            if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
                return Err(last_error());
            }
            // SAFETY: `text` is a NUL-terminated UTF-16 string the call allocated.
            let s = unsafe {
                let len = (0..).take_while(|&i| *text.add(i) != 0).count();
                String::from_utf16_lossy(std::slice::from_raw_parts(text, len))
            };
            // SAFETY: allocated by ConvertSidToStringSidW with LocalAlloc, freed once.
            unsafe { LocalFree(text.cast()) };
            Ok(s)
        })
        .map_err(|e| e.raw_os_error().unwrap_or(0))
    });
    got.as_deref().map_err(|&code| io::Error::from_raw_os_error(code))
}

/// Runs `f` with the current user's SID from the process token.
fn with_token_user<T>(f: impl FnOnce(PSID) -> io::Result<T>) -> io::Result<T> {
    with_token_sid(TokenUser, f)
}

/// Runs `f` with the SID of the token's `class` (`TokenUser` or `TokenOwner`: both a
/// structure whose first field is the SID pointer).
fn with_token_sid<T>(
    class: windows_sys::Win32::Security::TOKEN_INFORMATION_CLASS,
    f: impl FnOnce(PSID) -> io::Result<T>,
) -> io::Result<T> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the pseudo-handle of this process; the call writes `token`.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(last_error());
    }
    let token = Handle(token);
    let mut buf = vec![0u64; 64]; // 512 bytes, 8-aligned: a TOKEN_USER and its SID
    let mut len = 0u32;
    // SAFETY: `buf` is writable for the length given; the call fills a TOKEN_USER there.
    let ok = unsafe {
        GetTokenInformation(
            token.raw(),
            class,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut len,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    // SAFETY: the call wrote a TOKEN_USER or TOKEN_OWNER at the start of `buf` (8-aligned),
    // both starting with the SID pointer, which points into `buf`, alive for the call of `f`.
    let sid = if class == TokenUser {
        // SAFETY: see above (a TOKEN_USER).
        unsafe { (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid }
    } else {
        // SAFETY: see above (a TOKEN_OWNER).
        unsafe { (*buf.as_ptr().cast::<TOKEN_OWNER>()).Owner }
    };
    f(sid)
}

/// A security descriptor for our kernel objects: the current user only (the equivalent of
/// mode 0600), or, with `others`, every authenticated user too.
struct Security {
    sd: PSECURITY_DESCRIPTOR,
    sa: SECURITY_ATTRIBUTES,
}

impl Security {
    fn new(others: bool) -> io::Result<Security> {
        let sid = user_sid()?;
        // D:P: a protected DACL (nothing inherited); GA: generic all.
        let sddl = if others {
            format!("D:P(A;;GA;;;{sid})(A;;GA;;;AU)")
        } else {
            format!("D:P(A;;GA;;;{sid})")
        };
        let text = wide(&sddl);
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `text` is NUL-terminated; the call allocates `sd` (LocalFree in Drop).
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                text.as_ptr(),
                1, // SDDL_REVISION_1
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
        let sa = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: sd,
            bInheritHandle: FALSE,
        };
        Ok(Security { sd, sa })
    }

    fn attributes(&self) -> *const SECURITY_ATTRIBUTES {
        &self.sa
    }
}

impl Drop for Security {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW, freed once.
        unsafe { LocalFree(self.sd) };
    }
}

/// The descriptor of every object but a segment made with other users' access: ours only.
fn private_security() -> Option<&'static SECURITY_ATTRIBUTES> {
    struct Shared(Option<Security>);
    // SAFETY: the descriptor is immutable after creation and only read by kernel calls.
    unsafe impl Sync for Shared {}
    // SAFETY: as above.
    unsafe impl Send for Shared {}
    static SD: OnceLock<Shared> = OnceLock::new();
    // SAFETY: the attributes live in a static, for the whole program.
    SD.get_or_init(|| Shared(Security::new(false).ok()))
        .0
        .as_ref()
        .map(|s| unsafe { &*s.attributes() })
}

fn attributes_ptr() -> *const SECURITY_ATTRIBUTES {
    private_security().map_or(std::ptr::null(), |s| s as *const _)
}

// ---------------------------------------------------------------------------------------------
// Segments

/// A named section (a channel's segment) this process has a handle to.
#[derive(Debug)]
pub struct Section(Handle);

/// A whole-section view, unmapped on drop.
#[derive(Debug)]
pub struct View {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a view is an address range of this process; moving it between threads moves its
// ownership (only raw pointers into it are handed out).
unsafe impl Send for View {}
// SAFETY: as above; `&View` gives only the address and length.
unsafe impl Sync for View {}

impl View {
    /// The first byte (allocation-granularity aligned).
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Bytes mapped (the section's size rounded up to pages).
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for View {
    fn drop(&mut self) {
        unregister_segment(self.base.as_ptr() as usize);
        // SAFETY: the view is ours, mapped by `Section::map`, unmapped once.
        unsafe { UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS { Value: self.base.as_ptr().cast() }) };
    }
}

/// What [`create_section`] found.
pub enum Created {
    /// A new section, ours.
    New(Section),
    /// The name is taken (by a live section: ours or anyone's).
    Exists,
}

/// Creates the pagefile-backed section `name` of `len` bytes, only if the name is free:
/// readable and writable by the current user only, or with `others`, by every authenticated
/// user too. Out of commit space: `ErrorKind::StorageFull`.
pub fn create_section(name: &str, len: u64, others: bool) -> io::Result<Created> {
    let security = Security::new(others)?;
    let wname = wide(name);
    // SAFETY: `wname` is NUL-terminated, the attributes live for the call; the pagefile is
    // the backing (INVALID_HANDLE_VALUE), the size split into its two halves.
    let h = unsafe {
        CreateFileMappingW(
            INVALID_HANDLE_VALUE,
            security.attributes(),
            PAGE_READWRITE,
            (len >> 32) as u32,
            len as u32,
            wname.as_ptr(),
        )
    };
    // SAFETY: reads this thread's last error, set by the call above.
    let err = unsafe { GetLastError() };
    let Some(h) = Handle::new(h) else {
        let e = io::Error::from_raw_os_error(err as i32);
        // ERROR_COMMITMENT_LIMIT (1455), ERROR_NOT_ENOUGH_MEMORY (8), ERROR_OUTOFMEMORY (14).
        return Err(match err {
            1455 | 8 | 14 => io::Error::new(io::ErrorKind::StorageFull, e),
            _ => e,
        });
    };
    if err == ERROR_ALREADY_EXISTS {
        return Ok(Created::Exists); // the handle is someone else's section: closed here
    }
    Ok(Created::New(Section(h)))
}

/// Opens the existing section `name` for reading and writing. `ErrorKind::NotFound` when there
/// is none, `PermissionDenied` when it is another user's.
pub fn open_section(name: &str) -> io::Result<Section> {
    let wname = wide(name);
    // SAFETY: `wname` is NUL-terminated.
    let h = unsafe { OpenFileMappingW(FILE_MAP_ALL_ACCESS, FALSE, wname.as_ptr()) };
    Handle::new(h).map(Section).ok_or_else(last_error)
}

impl Section {
    /// Maps the whole section.
    pub fn map(&self) -> io::Result<View> {
        // SAFETY: a valid section handle; 0 maps the whole section.
        let addr = unsafe { MapViewOfFile(self.0.raw(), FILE_MAP_ALL_ACCESS, 0, 0, 0) };
        let Some(base) = NonNull::new(addr.Value.cast::<u8>()) else { return Err(last_error()) };
        // SAFETY: a zeroed MEMORY_BASIC_INFORMATION is a valid value of this plain struct.
        let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: `base` is the view's start; the call fills `info`.
        let n =
            unsafe { VirtualQuery(base.as_ptr().cast(), &mut info, std::mem::size_of_val(&info)) };
        if n == 0 {
            let e = last_error();
            // SAFETY: the view we just mapped, unmapped once.
            unsafe { UnmapViewOfFile(addr) };
            return Err(e);
        }
        Ok(View { base, len: info.RegionSize })
    }

    /// Whether the section's owner is the current user, or the token's default owner for the
    /// objects it creates (an elevated token's, and Wine's, is the Administrators group).
    ///
    /// A section without an owner counts as the user's: Windows gives every object one (the
    /// creator's default owner when its descriptor names none), so only Wine makes them, which
    /// leaves an object created without security attributes ownerless (cpp_py_shmbuf's
    /// `CreateFileMappingA(..., NULL, ...)`), and under which every process is the same Unix
    /// user anyway.
    pub fn owned_by_me(&self) -> io::Result<bool> {
        let mut owner: PSID = std::ptr::null_mut();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: a valid handle; the call allocates `sd` (freed below), `owner` points into it.
        let rc = unsafe {
            GetSecurityInfo(
                self.0.raw(),
                SE_KERNEL_OBJECT,
                OWNER_SECURITY_INFORMATION,
                &mut owner,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut sd,
            )
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
        // SAFETY: `owner` points into `sd`, alive until freed after the comparison.
        let same = |me: PSID| Ok(unsafe { EqualSid(owner, me) } != 0);
        let mine = if owner.is_null() {
            Ok(true)
        } else {
            with_token_user(same).and_then(|user| Ok(user || with_token_sid(TokenOwner, same)?))
        };
        // SAFETY: allocated by GetSecurityInfo, freed once.
        unsafe { LocalFree(sd) };
        mine
    }
}

/// The mapped segments of this process: where each lies and its instance, so that a wait on
/// a word in one finds the named objects that carry its wakes.
struct Mapped {
    base: usize,
    len: usize,
    instance: u64,
}

/// Named objects opened for waits and wakes, per (instance, offset, sleeper); liveness mutexes
/// under sleeper `u32::MAX`.
type Objects = HashMap<(u64, usize, u32), Handle>;

struct Registry {
    mapped: Vec<Mapped>,
    objects: Objects,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: std::sync::LazyLock<Mutex<Registry>> = std::sync::LazyLock::new(|| {
        Mutex::new(Registry { mapped: Vec::new(), objects: HashMap::new() })
    });
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers a mapped segment of instance `instance` (not 0: a foreign producer's segment has
/// none, and its words are woken by nobody) at `base..base + len`, until its [`View`] drops.
pub fn register_segment(base: NonNull<u8>, len: usize, instance: u64) {
    if instance != 0 {
        registry().mapped.push(Mapped { base: base.as_ptr() as usize, len, instance });
    }
}

/// Forgets a mapped segment; closes its instance's objects once no view of it is left.
fn unregister_segment(base: usize) {
    let mut r = registry();
    let Some(i) = r.mapped.iter().position(|m| m.base == base) else { return };
    let instance = r.mapped.swap_remove(i).instance;
    if !r.mapped.iter().any(|m| m.instance == instance) {
        r.objects.retain(|&(inst, _, _), _| inst != instance);
    }
}

/// The instance and offset of a word in a registered segment.
fn locate(word: &AtomicU32) -> Option<(u64, usize)> {
    let addr = word.as_ptr() as usize;
    registry()
        .mapped
        .iter()
        .find(|m| addr >= m.base && addr < m.base + m.len)
        .map(|m| (m.instance, addr - m.base))
}

/// The name of the kernel object of `what` for (instance, offset).
fn object_name(instance: u64, offset: usize, what: &str) -> Vec<u16> {
    wide(&format!("Local\\shmframes-{instance:016x}-{offset}-{what}"))
}

/// The auto-reset event that carries wakes of `sleeper` on the word at (instance, offset),
/// created by whichever side comes first.
fn event(instance: u64, offset: usize, sleeper: u32) -> Option<HANDLE> {
    let mut r = registry();
    if let Some(h) = r.objects.get(&(instance, offset, sleeper)) {
        return Some(h.raw());
    }
    let name = object_name(instance, offset, &format!("e{sleeper}"));
    // SAFETY: NUL-terminated name; auto-reset, initially not set.
    let h = Handle::new(unsafe { CreateEventW(attributes_ptr(), FALSE, FALSE, name.as_ptr()) })?;
    let raw = h.raw();
    r.objects.insert((instance, offset, sleeper), h);
    Some(raw)
}

// ---------------------------------------------------------------------------------------------
// Waits and wakes

/// Threads of this process parked on a word: (word address, the thread's event as usize).
fn parked() -> MutexGuard<'static, Vec<(usize, usize)>> {
    static PARKED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
    PARKED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The calling thread's own auto-reset event, for parking.
fn thread_event() -> HANDLE {
    thread_local! {
        static EVENT: Option<Handle> =
            // SAFETY: an unnamed auto-reset event, initially not set.
            Handle::new(unsafe { CreateEventW(std::ptr::null(), FALSE, FALSE, std::ptr::null()) });
    }
    EVENT.with(|e| e.as_ref().map_or(std::ptr::null_mut(), Handle::raw))
}

/// Milliseconds for a Win32 wait: rounded up, so that a wait never ends before its timeout.
fn millis(timeout: Option<Duration>) -> u32 {
    match timeout {
        None => INFINITE,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(u128::from(INFINITE - 1)) as u32
        }
    }
}

/// What one word of a wait sleeps on.
enum Slot {
    /// The thread's event (parked on the word).
    Parked,
    /// A named event.
    Event(HANDLE),
    /// A liveness word's owner mutex.
    Owner(HANDLE),
}

/// Sleeps until one of `words` differs from its expected value or is woken, `timeout` passes
/// or (for liveness words) its owner dies; callers re-check. Always `true` (Windows has a
/// multi-object wait).
pub fn wait_any(words: &[WaitWord<'_>], timeout: Option<Duration>) -> bool {
    let me = thread_event();
    let mut handles: Vec<HANDLE> = Vec::with_capacity(words.len().min(MAX_WAIT_WORDS));
    let mut owners: Vec<(usize, &AtomicU32, u32)> = Vec::new(); // (handle index, word, value)
    let mut parked_on: Vec<usize> = Vec::new();
    let mut parked_index = None;
    let mut unknown_owner = false;
    for w in words.iter().take(MAX_WAIT_WORDS - 1) {
        let slot = match w.waker {
            Waker::Local => Slot::Parked,
            Waker::Shared { sleeper } => match locate(w.word) {
                Some((inst, off)) => event(inst, off, sleeper).map_or(Slot::Parked, Slot::Event),
                None => Slot::Parked,
            },
            Waker::Death { .. } => match owner_mutex(w.word) {
                OwnerMutex::Open(h) => Slot::Owner(h),
                // Cannot be watched now: wake in a while to look again.
                OwnerMutex::Unknown => {
                    unknown_owner = true;
                    continue;
                }
                OwnerMutex::Gone => {
                    // No mutex by that name: its owner is gone (closed by a clean end, or its
                    // last handle died with it).
                    mark_dead(w.word, w.expected);
                    unpark_all(&parked_on);
                    return true;
                }
            },
        };
        match slot {
            Slot::Parked => {
                parked().push((w.word.as_ptr() as usize, me as usize));
                parked_on.push(w.word.as_ptr() as usize);
                if parked_index.is_none() {
                    parked_index = Some(handles.len());
                    handles.push(me);
                }
            }
            Slot::Event(h) => handles.push(h),
            Slot::Owner(h) => {
                owners.push((handles.len(), w.word, w.expected));
                handles.push(h);
            }
        }
    }
    let timeout = if unknown_owner {
        Some(
            timeout
                .map_or(crate::timing::LIVENESS_PERIOD, |t| t.min(crate::timing::LIVENESS_PERIOD)),
        )
    } else {
        timeout
    };
    // After parking: a change before this check is seen here, one after it wakes us.
    let changed = words.iter().any(|w| w.word.load(Ordering::SeqCst) != w.expected);
    if !changed && !handles.is_empty() {
        // SAFETY: every handle is a live event or mutex (held by the registry or this thread)
        // for the duration of the call.
        let rc = unsafe {
            WaitForMultipleObjects(handles.len() as u32, handles.as_ptr(), FALSE, millis(timeout))
        };
        let index =
            |base: u32| rc.checked_sub(base).map(|i| i as usize).filter(|&i| i < handles.len());
        if let Some(i) = index(WAIT_ABANDONED_0) {
            // We own the dead keeper's mutex now: mark the death, then let the next one see it.
            if let Some(&(_, word, expected)) = owners.iter().find(|o| o.0 == i) {
                mark_dead(word, expected);
            }
            // SAFETY: we own it (the wait acquired it), on this thread.
            unsafe { ReleaseMutex(handles[i]) };
        } else if let Some(i) = index(WAIT_OBJECT_0) {
            if let Some(&(_, word, expected)) = owners.iter().find(|o| o.0 == i) {
                // Released: a clean end clears the word first; a marked owner is dead.
                if word.load(Ordering::Acquire) == expected {
                    mark_dead(word, expected);
                }
                // SAFETY: as above.
                unsafe { ReleaseMutex(handles[i]) };
            }
        }
    }
    unpark_all(&parked_on);
    true
}

fn unpark_all(addrs: &[usize]) {
    if addrs.is_empty() {
        return;
    }
    let me = thread_event() as usize;
    parked().retain(|&(a, h)| !(h == me && addrs.contains(&a)));
}

/// Sleeps while `*word == expected`, at most `timeout`, woken by [`wake_word`] in any process
/// (or, for a word outside our segments, in this one).
pub fn wait_word(word: &AtomicU32, expected: u32, timeout: Duration) {
    if timeout.is_zero() {
        return;
    }
    wait_any(&[WaitWord { word, expected, waker: Waker::Shared { sleeper: 0 } }], Some(timeout));
}

/// Wakes the sleeper 0 of `word`, in any process.
pub fn wake_word(word: &AtomicU32) {
    wake_sleepers(word, 1);
}

/// Wakes the sleepers of `word` whose bits `mask` has (bit r: sleeper r), in any process.
pub fn wake_sleepers(word: &AtomicU32, mask: u32) {
    match locate(word) {
        Some((inst, off)) => {
            let mut bits = mask;
            while bits != 0 {
                let r = bits.trailing_zeros();
                bits &= bits - 1;
                if let Some(h) = event(inst, off, r) {
                    // SAFETY: a live event handle the registry holds.
                    unsafe { SetEvent(h) };
                }
            }
        }
        None => wake_local(word),
    }
}

/// Sleeps on a word of this process only while it equals `expected`.
pub fn wait_local(word: &AtomicU32, expected: u32) {
    wait_any(&[WaitWord { word, expected, waker: Waker::Local }], None);
}

/// Wakes every thread of this process parked on `word`.
pub fn wake_local(word: &AtomicU32) {
    let addr = word.as_ptr() as usize;
    for &(a, h) in parked().iter() {
        if a == addr {
            // SAFETY: the event of a thread parked now (it unparks under this lock first).
            unsafe { SetEvent(h as HANDLE) };
        }
    }
}

/// Windows reports deaths (abandoned mutexes) to any waiter.
pub fn kernel_watches_liveness() -> bool {
    true
}

// ---------------------------------------------------------------------------------------------
// Liveness words: each owned by a keeper thread through a named mutex

/// What opening a liveness word's owner mutex found.
enum OwnerMutex {
    Open(HANDLE),
    /// No mutex of that name: its keeper is gone (a clean end clears the word first).
    Gone,
    /// Could not tell (not a word of a registered segment, or the open failed otherwise).
    Unknown,
}

/// The owner mutex of a liveness word, opened once.
fn owner_mutex(word: &AtomicU32) -> OwnerMutex {
    let Some((inst, off)) = locate(word) else { return OwnerMutex::Unknown };
    let mut r = registry();
    if let Some(h) = r.objects.get(&(inst, off, u32::MAX)) {
        return OwnerMutex::Open(h.raw());
    }
    let name = object_name(inst, off, "owner");
    // SAFETY: NUL-terminated name; SYNCHRONIZE suffices to wait on and release a mutex.
    let h = unsafe { OpenMutexW(SYNCHRONIZATION_SYNCHRONIZE, FALSE, name.as_ptr()) };
    // SAFETY: reads this thread's last error, set by the call above.
    let err = unsafe { GetLastError() };
    let Some(h) = Handle::new(h) else {
        return if err == ERROR_FILE_NOT_FOUND { OwnerMutex::Gone } else { OwnerMutex::Unknown };
    };
    let raw = h.raw();
    r.objects.insert((inst, off, u32::MAX), h);
    OwnerMutex::Open(raw)
}

/// Probes the owner of a liveness word that says alive (`seen`): `Some(true)` (and the word
/// marked) when its keeper died. One system call.
pub fn owner_found_dead(
    word: &AtomicU32,
    _node: &std::sync::atomic::AtomicU64,
    seen: u32,
) -> Option<bool> {
    let h = match owner_mutex(word) {
        OwnerMutex::Open(h) => h,
        OwnerMutex::Gone if word.load(Ordering::Acquire) == seen => {
            mark_dead(word, seen);
            return Some(true);
        }
        OwnerMutex::Gone | OwnerMutex::Unknown => return Some(false),
    };
    // SAFETY: a live mutex handle the registry holds; a 0 timeout never blocks.
    let rc = unsafe { WaitForSingleObject(h, 0) };
    if rc != WAIT_OBJECT_0 && rc != WAIT_ABANDONED_0 {
        return Some(false); // held (WAIT_TIMEOUT), or the wait failed: not a death we saw
    }
    let dead = rc == WAIT_ABANDONED_0 || word.load(Ordering::Acquire) == seen;
    if dead {
        mark_dead(word, seen);
    }
    // SAFETY: the wait acquired it, on this thread.
    unsafe { ReleaseMutex(h) };
    Some(dead)
}

/// The mutexes a keeper owns for its words, released (on the keeper's thread) when dropped.
pub struct OwnedWords(Vec<Handle>);

impl Drop for OwnedWords {
    fn drop(&mut self) {
        for h in &self.0 {
            // SAFETY: owned by this thread (the keeper's, which drops this) since
            // `own_liveness_words`.
            unsafe { ReleaseMutex(h.raw()) };
        }
    }
}

/// Makes the calling thread (a keeper) the owner of `words`: a named mutex per word, taken,
/// then the thread id written into the word. `None` if a mutex cannot be made or taken.
///
/// # Safety
/// The words must stay mapped, used by no other keeper, until the returned value is dropped,
/// on this thread.
pub unsafe fn own_liveness_words(
    words: &[super::liveness::Watched],
    _node_offset: isize,
) -> Option<OwnedWords> {
    // Released (ReleaseMutex, on this thread) if a later word fails.
    let mut owned = OwnedWords(Vec::with_capacity(words.len()));
    for w in words {
        // SAFETY: the word is a live atomic in the mapping (the caller's contract).
        let word = unsafe { &*w.word };
        let (inst, off) = locate(word)?;
        let name = object_name(inst, off, "owner");
        // SAFETY: NUL-terminated name. Not created owned: an earlier owner's mutex of the same
        // name may still exist (someone holds a handle), and is then taken by the wait below.
        let h = Handle::new(unsafe { CreateMutexW(attributes_ptr(), FALSE, name.as_ptr()) })?;
        // SAFETY: a live mutex handle. A short wait: a waiter or prober holds a free mutex
        // for a few instructions only.
        let rc = unsafe { WaitForSingleObject(h.raw(), TAKE_WAIT_MS) };
        if rc != WAIT_OBJECT_0 && rc != WAIT_ABANDONED_0 {
            return None; // dropping `owned` releases what was taken
        }
        owned.0.push(h);
    }
    // SAFETY: GetCurrentThreadId has no preconditions.
    let tid = (unsafe { GetCurrentThreadId() } & OWNER_MASK).max(1);
    for w in words {
        // SAFETY: as above. Release: the mutex is taken before the word says alive.
        unsafe { &*w.word }.store(tid, Ordering::Release);
    }
    Some(owned)
}

// ---------------------------------------------------------------------------------------------
// Role locks: named mutexes held by one process-wide thread

enum Request {
    Take(Vec<u16>, std::sync::mpsc::SyncSender<io::Result<bool>>),
    Release(Vec<u16>),
}

fn holder() -> MutexGuard<'static, std::sync::mpsc::Sender<Request>> {
    static HOLDER: OnceLock<Mutex<std::sync::mpsc::Sender<Request>>> = OnceLock::new();
    HOLDER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Request>();
            std::thread::Builder::new()
                .name("shmframes-roles".into())
                .stack_size(64 * 1024)
                .spawn(move || hold(rx))
                .expect("cannot start the thread that holds shmframes' role locks");
            Mutex::new(tx)
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The holder thread: owns every role mutex of the process, for as long as the roles last
/// (a mutex belongs to the thread that took it; this one never exits, so only the process's
/// death abandons them).
fn hold(rx: std::sync::mpsc::Receiver<Request>) {
    let mut held: HashMap<Vec<u16>, Handle> = HashMap::new();
    for req in rx {
        match req {
            Request::Take(name, reply) => {
                if held.contains_key(&name) {
                    let _ = reply.send(Ok(false)); // ours already (mutexes are recursive)
                    continue;
                }
                // SAFETY: NUL-terminated name; not owned at creation (it may exist).
                let h =
                    Handle::new(unsafe { CreateMutexW(attributes_ptr(), FALSE, name.as_ptr()) });
                let Some(h) = h else {
                    let _ = reply.send(Err(last_error()));
                    continue;
                };
                // SAFETY: a live mutex handle. A short wait, not 0: a prober (`probe_role`)
                // holds a free mutex for a few instructions, which must not refuse a taker.
                let rc = unsafe { WaitForSingleObject(h.raw(), TAKE_WAIT_MS) };
                let taken = rc == WAIT_OBJECT_0 || rc == WAIT_ABANDONED_0;
                if taken {
                    held.insert(name, h);
                }
                let _ = reply.send(Ok(taken));
            }
            Request::Release(name) => {
                if let Some(h) = held.remove(&name) {
                    // SAFETY: owned by this thread since its Take.
                    unsafe { ReleaseMutex(h.raw()) };
                }
            }
        }
    }
}

/// A role lock this process holds (the holder thread owns its mutex); released on drop.
#[derive(Debug)]
pub struct RoleLock(Vec<u16>);

impl Drop for RoleLock {
    fn drop(&mut self) {
        let _ = holder().send(Request::Release(std::mem::take(&mut self.0)));
    }
}

/// The name of role lock `what` of a segment `key` (its instance in hex, or for a foreign
/// segment, `n-` and the channel name).
fn role_name(key: &str, what: &str) -> Vec<u16> {
    wide(&format!("Local\\shmframes-{key}-{what}"))
}

/// Takes role lock `what` of segment `key` without waiting; `None` if anyone (this process
/// included) holds it.
pub fn take_role(key: &str, what: &str) -> io::Result<Option<RoleLock>> {
    let name = role_name(key, what);
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    holder()
        .send(Request::Take(name.clone(), tx))
        .map_err(|_| io::Error::other("the role-lock thread is gone"))?;
    let taken = rx.recv().map_err(|_| io::Error::other("the role-lock thread is gone"))??;
    Ok(taken.then(|| RoleLock(name))) // (`then_some` would drop, and release, a RoleLock)
}

/// Whether anyone holds role lock `what` of segment `key` (a process that died holds nothing).
pub fn probe_role(key: &str, what: &str) -> io::Result<LockState> {
    let name = role_name(key, what);
    // SAFETY: NUL-terminated name.
    let h = unsafe { OpenMutexW(SYNCHRONIZATION_SYNCHRONIZE, FALSE, name.as_ptr()) };
    let Some(h) = Handle::new(h) else {
        // SAFETY: reads this thread's last error.
        return match unsafe { GetLastError() } {
            ERROR_FILE_NOT_FOUND => Ok(LockState::Free),
            e => Err(io::Error::from_raw_os_error(e as i32)),
        };
    };
    // SAFETY: a live mutex handle; 0 timeout.
    let rc = unsafe { WaitForSingleObject(h.raw(), 0) };
    if rc == WAIT_OBJECT_0 || rc == WAIT_ABANDONED_0 {
        // SAFETY: the wait acquired it, on this thread.
        unsafe { ReleaseMutex(h.raw()) };
        return Ok(LockState::Free);
    }
    Ok(LockState::Held(None))
}

// ---------------------------------------------------------------------------------------------
// Listing: the session's named objects

#[repr(C)]
struct UnicodeString {
    length: u16,
    maximum_length: u16,
    buffer: *mut u16,
}

#[repr(C)]
struct ObjectAttributes {
    length: u32,
    root_directory: HANDLE,
    object_name: *const UnicodeString,
    attributes: u32,
    security_descriptor: *const std::ffi::c_void,
    security_quality_of_service: *const std::ffi::c_void,
}

#[repr(C)]
struct DirectoryEntry {
    name: UnicodeString,
    type_name: UnicodeString,
}

// ntdll's object-directory calls (documented in the WDK; what WinObj uses), and the session of
// a process.
#[link(name = "ntdll")]
extern "system" {
    fn NtOpenDirectoryObject(dir: *mut HANDLE, access: u32, attrs: *const ObjectAttributes) -> i32;
    fn NtQueryDirectoryObject(
        dir: HANDLE,
        buffer: *mut std::ffi::c_void,
        length: u32,
        single: u8,
        restart: u8,
        context: *mut u32,
        returned: *mut u32,
    ) -> i32;
}
#[link(name = "kernel32")]
extern "system" {
    fn ProcessIdToSessionId(pid: u32, session: *mut u32) -> BOOL;
}

/// `UNICODE_STRING` as a Rust string.
///
/// # Safety
/// `u.buffer` must point at `u.length` bytes of UTF-16 (or be null).
unsafe fn unicode(u: &UnicodeString) -> String {
    if u.buffer.is_null() {
        return String::new();
    }
    // SAFETY: the caller's contract.
    String::from_utf16_lossy(unsafe {
        std::slice::from_raw_parts(u.buffer, usize::from(u.length) / 2)
    })
}

/// The names of the sections in this session's named-object directory
/// (`\Sessions\<id>\BaseNamedObjects`, where bare and `Local\` names live): every mapping a
/// process of this session made under a name, ours and cpp_py_shmbuf's alike.
pub fn section_names() -> io::Result<Vec<String>> {
    let mut session = 0u32;
    // SAFETY: writes `session`.
    if unsafe { ProcessIdToSessionId(std::process::id(), &mut session) } == 0 {
        return Err(last_error());
    }
    let mut path: Vec<u16> =
        format!("\\Sessions\\{session}\\BaseNamedObjects").encode_utf16().collect();
    let name = UnicodeString {
        length: (path.len() * 2) as u16,
        maximum_length: (path.len() * 2) as u16,
        buffer: path.as_mut_ptr(),
    };
    let attrs = ObjectAttributes {
        length: std::mem::size_of::<ObjectAttributes>() as u32,
        root_directory: std::ptr::null_mut(),
        object_name: &name,
        attributes: 0x40, // OBJ_CASE_INSENSITIVE
        security_descriptor: std::ptr::null(),
        security_quality_of_service: std::ptr::null(),
    };
    let mut dir: HANDLE = std::ptr::null_mut();
    // SAFETY: the attributes and the name they point at live for the call; DIRECTORY_QUERY.
    let status = unsafe { NtOpenDirectoryObject(&mut dir, 0x0001, &attrs) };
    let Some(dir) = (status == 0).then(|| Handle(dir)) else {
        return Err(io::Error::other(format!("NtOpenDirectoryObject: status {status:#x}")));
    };
    let mut buf = vec![0u64; 8192]; // 64 KiB, 8-aligned
    let (mut context, mut returned) = (0u32, 0u32);
    let mut names = Vec::new();
    for first in std::iter::once(1u8).chain(std::iter::repeat(0)) {
        // One entry per call: Wine 8 answers nothing to a request for a batch.
        // SAFETY: `buf` is writable for its length; the call writes entries and their strings
        // into it.
        let status = unsafe {
            NtQueryDirectoryObject(
                dir.raw(),
                buf.as_mut_ptr().cast(),
                (buf.len() * 8) as u32,
                1,
                first,
                &mut context,
                &mut returned,
            )
        };
        if status != 0 {
            break; // STATUS_NO_MORE_ENTRIES (0x8000001A), or an error: the list so far
        }
        // SAFETY: a successful call wrote one entry at the start of `buf`, whose strings point
        // into `buf`.
        let (entry_name, type_name) = unsafe {
            let e = &*buf.as_ptr().cast::<DirectoryEntry>();
            (unicode(&e.name), unicode(&e.type_name))
        };
        if type_name == "Section" {
            names.push(entry_name);
        }
    }
    Ok(names)
}

// ---------------------------------------------------------------------------------------------
// Clock, pages, processes, Ctrl+C

/// Nanoseconds of the performance counter: one clock for every process of the machine.
pub fn monotonic_ns() -> u64 {
    static FREQ: OnceLock<u64> = OnceLock::new();
    let freq = *FREQ.get_or_init(|| {
        let mut f = 0i64;
        // SAFETY: writes `f`; cannot fail on XP and later.
        unsafe { QueryPerformanceFrequency(&mut f) };
        f.max(1) as u64
    });
    let mut c = 0i64;
    // SAFETY: writes `c`; cannot fail on XP and later.
    unsafe { QueryPerformanceCounter(&mut c) };
    let c = c.max(0) as u128;
    (c * 1_000_000_000 / u128::from(freq)) as u64
}

/// The page size.
pub fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: a zeroed SYSTEM_INFO is valid; the call fills it.
        let mut info: SYSTEM_INFO = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { GetSystemInfo(&mut info) };
        info.dwPageSize.max(4096) as usize
    })
}

/// Whether a process with this id runs.
pub fn pid_exists(pid: u32) -> bool {
    // SAFETY: OpenProcess with a query right; the handle is closed by `Handle`.
    let Some(h) =
        Handle::new(unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid) })
    else {
        return false;
    };
    let mut code = 0u32;
    // SAFETY: a live process handle; writes `code`.
    unsafe { GetExitCodeProcess(h.raw(), &mut code) != 0 && code == STILL_ACTIVE as u32 }
}

/// A process's executable name (without its folder), empty if it cannot be read.
pub fn process_name(pid: u32) -> String {
    // SAFETY: as in `pid_exists`.
    let Some(h) =
        Handle::new(unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid) })
    else {
        return String::new();
    };
    let mut buf = [0u16; 1024];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` holds `len` u16s; the call writes at most that many and updates `len`.
    if unsafe {
        QueryFullProcessImageNameW(h.raw(), PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len)
    } == 0
    {
        return String::new();
    }
    let path = String::from_utf16_lossy(&buf[..len as usize]);
    path.rsplit(['\\', '/']).next().unwrap_or_default().to_owned()
}

/// Bumped, and woken, on each Ctrl+C or Ctrl+Break of the console, before the next handler
/// (Python's, or the default one that ends the process) runs.
pub static SIGNAL_WORD: AtomicU32 = AtomicU32::new(0);

unsafe extern "system" fn on_console(kind: u32) -> BOOL {
    if kind == CTRL_C_EVENT || kind == CTRL_BREAK_EVENT {
        SIGNAL_WORD.fetch_add(1, Ordering::SeqCst);
        wake_local(&SIGNAL_WORD);
    }
    FALSE // the next handler runs too
}

/// Installs the console handler that bumps [`SIGNAL_WORD`] (once; the handler is called on a
/// thread of its own, so it may take locks).
pub fn hook_signals() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a handler function that lives for the whole program.
        unsafe { SetConsoleCtrlHandler(Some(on_console), TRUE) };
    });
}

/// Nothing to block: console events come on a thread of their own.
pub fn block_signals() {}

// ---------------------------------------------------------------------------------------------
// Lending (not on Windows yet)

/// What lent windows would be mapped from: nothing yet (see [`map_window`]).
#[derive(Debug)]
pub struct SegmentFile;

/// Lending slot windows needs placeholders (Windows 10 1803+), which Wine lacks: not yet.
pub fn map_window(_file: &SegmentFile, _offset: u64, _len: usize) -> io::Result<NonNull<u8>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "lending a slot's pixels is not implemented on Windows yet: write frames with write()",
    ))
}

/// Never called on Windows (no window is ever lent).
///
/// # Safety
/// None needed: nothing happens.
pub unsafe fn move_keeping_range(_addr: NonNull<u8>, _len: usize) -> io::Result<NonNull<u8>> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Never called on Windows (no window is ever lent).
///
/// # Safety
/// None needed: nothing happens.
pub unsafe fn map_zero_pages(_addr: NonNull<u8>, _len: usize) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Never called on Windows (no window is ever lent).
///
/// # Safety
/// None needed: nothing happens.
pub unsafe fn unmap(_addr: NonNull<u8>, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(tag: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        format!(
            "shmframes-sys-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    #[test]
    fn a_missing_section_is_not_found_and_a_name_is_exclusive() {
        let name = unique("excl");
        let e = open_section(&name).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e:?}");
        let Created::New(s) = create_section(&name, 4096, false).unwrap() else {
            panic!("a fresh name was taken")
        };
        assert!(matches!(create_section(&name, 4096, false).unwrap(), Created::Exists));
        let opened = open_section(&name).unwrap();
        assert!(opened.owned_by_me().unwrap(), "our own section is not ours");
        let (a, b) = (s.map().unwrap(), opened.map().unwrap());
        assert!(a.len() >= 4096);
        // SAFETY: both views are at least a page; one byte written through one, read through
        // the other.
        unsafe {
            *a.base().as_ptr() = 42;
            assert_eq!(*b.base().as_ptr(), 42);
        }
        drop((s, opened));
        let e = open_section(&name).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "the name outlived its handles: {e:?}");
    }

    #[test]
    fn sections_are_listed() {
        let name = unique("list");
        let Created::New(_s) = create_section(&name, 4096, false).unwrap() else {
            panic!("a fresh name was taken")
        };
        let names = section_names().unwrap();
        assert!(names.contains(&name), "{name} not in {names:?}");
    }

    #[test]
    fn role_locks_exclude_and_are_released() {
        let key = unique("roles");
        assert_eq!(probe_role(&key, "producer").unwrap(), LockState::Free);
        let held = take_role(&key, "producer").unwrap().expect("a free role");
        assert!(take_role(&key, "producer").unwrap().is_none(), "taken twice in one process");
        assert_eq!(probe_role(&key, "producer").unwrap(), LockState::Held(None));
        drop(held);
        // Released by the holder thread, asynchronously.
        let t0 = std::time::Instant::now();
        while probe_role(&key, "producer").unwrap() != LockState::Free {
            assert!(t0.elapsed() < Duration::from_secs(10), "the role was never released");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
