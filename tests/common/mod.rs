//! Helpers shared by the integration tests: unique channel names that clean up after
//! themselves, and child processes that never outlive a test.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};

/// A channel name unique to this process and call, removed from /dev/shm on drop (pass or fail).
pub struct Channel(pub String);

impl Channel {
    pub fn new(tag: &str) -> Channel {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "shmframes-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let c = Channel(name);
        let _ = std::fs::remove_file(c.path());
        c
    }
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/dev/shm").join(&self.0)
    }
    #[cfg(unix)]
    pub fn exists(&self) -> bool {
        self.path().exists()
    }
    /// Whether a segment is under the name (Windows has no file to look at).
    #[cfg(windows)]
    pub fn exists(&self) -> bool {
        !matches!(shmframes::readers_of(&self.0), Err(shmframes::Error::ChannelNotFound { .. }))
    }
}

impl std::ops::Deref for Channel {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

/// A child process killed and reaped on drop.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.0.take().unwrap().wait().unwrap()
    }
    pub fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }
    pub fn kill9(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
        self.0 = None;
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs the named test of this same test binary in a child process, with `SHMFRAMES_CHILD`
/// set to `role` and `SHMFRAMES_CHANNEL` to `channel`. The test function checks the variable
/// and plays the child's part.
pub fn spawn_child(
    test_name: &str,
    role: &str,
    channel: &str,
    extra_env: &[(&str, String)],
) -> ChildGuard {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("SHMFRAMES_CHILD", role)
        .env("SHMFRAMES_CHANNEL", channel)
        .stdout(std::process::Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    ChildGuard(Some(cmd.spawn().expect("spawn child test process")))
}

/// The role this process plays, if it was started by `spawn_child`.
pub fn child_role() -> Option<(String, String)> {
    let role = std::env::var("SHMFRAMES_CHILD").ok()?;
    let channel = std::env::var("SHMFRAMES_CHANNEL").ok()?;
    Some((role, channel))
}

/// Waits until `cond` holds, polling every few ms, for at most `secs` seconds.
pub fn wait_until(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cond()
}

/// A 64-bit mixing function (splitmix64) for reproducible test data and checksums.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Fills `buf` with data derived from `seed` (8 bytes at a time).
pub fn fill(buf: &mut [u8], seed: u64) {
    let mut chunks = buf.chunks_exact_mut(8);
    let mut s = mix(seed);
    for c in &mut chunks {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        c.copy_from_slice(&s.to_le_bytes());
    }
    for b in chunks.into_remainder() {
        *b = s as u8;
    }
}

/// Checks that `buf` is exactly what `fill(buf, seed)` writes.
pub fn check(buf: &[u8], seed: u64) -> bool {
    let mut chunks = buf.chunks_exact(8);
    let mut s = mix(seed);
    for c in &mut chunks {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        if c != s.to_le_bytes() {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == s as u8)
}

/// A segment image under a channel's name, put there as a foreign (or hostile) producer would:
/// a file in /dev/shm, or on Windows a pagefile-backed section of exactly `bytes.len()` bytes
/// (views round it up to whole pages), which lives as long as this value holds its handle.
/// Windows cannot make an empty section: `None` there for no bytes.
pub struct Planted {
    #[cfg(windows)]
    handle: windows_sys::Win32::Foundation::HANDLE,
}

#[cfg(unix)]
pub fn plant(ch: &Channel, bytes: &[u8]) -> Option<Planted> {
    std::fs::write(ch.path(), bytes).unwrap();
    Some(Planted {})
}

#[cfg(windows)]
pub fn plant(ch: &Channel, bytes: &[u8]) -> Option<Planted> {
    use windows_sys::Win32::Foundation::{
        GetLastError, ERROR_ALREADY_EXISTS, INVALID_HANDLE_VALUE,
    };
    use windows_sys::Win32::System::Memory::{CreateFileMappingW, PAGE_READWRITE};
    if bytes.is_empty() {
        return None;
    }
    let name = wide(ch);
    // SAFETY: `name` is NUL-terminated; default security (what cpp_py_shmbuf passes).
    let handle = unsafe {
        CreateFileMappingW(
            INVALID_HANDLE_VALUE,
            std::ptr::null(),
            PAGE_READWRITE,
            0,
            u32::try_from(bytes.len()).expect("a test segment under 4 GiB"),
            name.as_ptr(),
        )
    };
    // SAFETY: this thread's last error, set by the call above.
    let err = unsafe { GetLastError() };
    assert!(!handle.is_null() && err != ERROR_ALREADY_EXISTS, "cannot plant {}: error {err}", ch.0);
    let planted = Planted { handle };
    Scribbler::open(ch).poke(0, bytes);
    Some(planted)
}

/// The channel's name as Win32's `W` functions take it (UTF-16, NUL-terminated).
#[cfg(windows)]
fn wide(ch: &Channel) -> Vec<u16> {
    ch.0.encode_utf16().chain([0]).collect()
}

#[cfg(windows)]
impl Drop for Planted {
    fn drop(&mut self) {
        // SAFETY: our handle, closed once.
        unsafe { windows_sys::Win32::Foundation::CloseHandle(self.handle) };
    }
}

/// Read and write access to the bytes of a live segment by offset: a peer scribbling on it.
pub struct Scribbler {
    #[cfg(unix)]
    file: std::fs::File,
    #[cfg(windows)]
    handle: windows_sys::Win32::Foundation::HANDLE,
    #[cfg(windows)]
    view: *mut u8,
    /// Bytes mapped (whole pages).
    #[cfg(windows)]
    len: usize,
}

impl Scribbler {
    #[cfg(unix)]
    pub fn open(ch: &Channel) -> Scribbler {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(ch.path()).unwrap();
        Scribbler { file }
    }

    #[cfg(windows)]
    pub fn open(ch: &Channel) -> Scribbler {
        use windows_sys::Win32::System::Memory::{
            MapViewOfFile, OpenFileMappingW, FILE_MAP_ALL_ACCESS,
        };
        let name = wide(ch);
        // SAFETY: `name` is NUL-terminated.
        let handle = unsafe { OpenFileMappingW(FILE_MAP_ALL_ACCESS, 0, name.as_ptr()) };
        assert!(!handle.is_null(), "no section {}", ch.0);
        // SAFETY: a valid section handle; 0 maps all of it.
        let view = unsafe { MapViewOfFile(handle, FILE_MAP_ALL_ACCESS, 0, 0, 0) };
        assert!(!view.Value.is_null(), "cannot map {}", ch.0);
        // SAFETY: a zeroed MEMORY_BASIC_INFORMATION is a valid value of this plain struct.
        let mut info: windows_sys::Win32::System::Memory::MEMORY_BASIC_INFORMATION =
            unsafe { std::mem::zeroed() };
        // SAFETY: `view` is the start of the view just mapped; the call fills `info`.
        let n = unsafe {
            windows_sys::Win32::System::Memory::VirtualQuery(
                view.Value,
                &mut info,
                std::mem::size_of_val(&info),
            )
        };
        assert!(n != 0, "cannot measure the view of {}", ch.0);
        Scribbler { handle, view: view.Value.cast(), len: info.RegionSize }
    }

    /// The u32 at `off`.
    pub fn word(&self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    #[cfg(unix)]
    fn read(&self, off: u64, out: &mut [u8]) {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, out, off).unwrap();
    }

    #[cfg(windows)]
    fn read(&self, off: u64, out: &mut [u8]) {
        let off = usize::try_from(off).unwrap();
        assert!(off.checked_add(out.len()).is_some_and(|end| end <= self.len), "outside the view");
        // SAFETY: `off..off + out.len()` is inside the view (checked above); bytes only.
        unsafe { std::ptr::copy_nonoverlapping(self.view.add(off), out.as_mut_ptr(), out.len()) };
    }

    /// Writes `bytes` at `off`.
    #[cfg(unix)]
    pub fn poke(&self, off: u64, bytes: &[u8]) {
        std::os::unix::fs::FileExt::write_all_at(&self.file, bytes, off).unwrap();
    }

    /// Writes `bytes` at `off`.
    #[cfg(windows)]
    pub fn poke(&self, off: u64, bytes: &[u8]) {
        let off = usize::try_from(off).unwrap();
        assert!(
            off.checked_add(bytes.len()).is_some_and(|end| end <= self.len),
            "outside the view"
        );
        // SAFETY: `off..off + bytes.len()` is inside the view (checked above); bytes only.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.view.add(off), bytes.len()) };
    }
}

#[cfg(windows)]
impl Drop for Scribbler {
    fn drop(&mut self) {
        use windows_sys::Win32::System::Memory::{UnmapViewOfFile, MEMORY_MAPPED_VIEW_ADDRESS};
        // SAFETY: our view and handle, each released once.
        unsafe {
            UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS { Value: self.view.cast() });
            windows_sys::Win32::Foundation::CloseHandle(self.handle);
        }
    }
}
