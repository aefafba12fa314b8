//! Proves a Rust program cross-built for x86_64-pc-windows-gnu runs under Wine, with what the
//! port will use: std's HashMap (seeded through ProcessPrng, the stand-in DLL), threads, the
//! clock, and a named file mapping created and opened through the Win32 API (declared here by
//! hand: no dependency to fetch). Prints one line per check and exits 0 when all pass.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[cfg(windows)]
mod win {
    use std::ffi::c_void;
    pub type Handle = *mut c_void;
    pub const INVALID_HANDLE_VALUE: Handle = -1isize as Handle;
    pub const PAGE_READWRITE: u32 = 0x04;
    pub const FILE_MAP_ALL_ACCESS: u32 = 0x000F_001F;
    pub const ERROR_ALREADY_EXISTS: u32 = 183;
    #[link(name = "kernel32")]
    extern "system" {
        pub fn CreateFileMappingA(
            file: Handle,
            attrs: *mut c_void,
            protect: u32,
            size_hi: u32,
            size_lo: u32,
            name: *const u8,
        ) -> Handle;
        pub fn OpenFileMappingA(access: u32, inherit: i32, name: *const u8) -> Handle;
        pub fn MapViewOfFile(m: Handle, access: u32, hi: u32, lo: u32, len: usize) -> *mut c_void;
        pub fn UnmapViewOfFile(addr: *const c_void) -> i32;
        pub fn CloseHandle(h: Handle) -> i32;
        pub fn GetLastError() -> u32;
    }
}

#[cfg(windows)]
fn mapping() -> Result<(), String> {
    use win::*;
    let name = format!("shmframes-smoke-{}\0", std::process::id());
    // SAFETY: plain Win32 calls with a NUL-terminated name; the views are unmapped before the
    // handles are closed, and each view is 4096 bytes, of which we touch the first 4.
    unsafe {
        let a = CreateFileMappingA(
            INVALID_HANDLE_VALUE,
            std::ptr::null_mut(),
            PAGE_READWRITE,
            0,
            4096,
            name.as_ptr(),
        );
        if a.is_null() {
            return Err(format!("CreateFileMappingA: error {}", GetLastError()));
        }
        let again = CreateFileMappingA(
            INVALID_HANDLE_VALUE,
            std::ptr::null_mut(),
            PAGE_READWRITE,
            0,
            4096,
            name.as_ptr(),
        );
        if GetLastError() != ERROR_ALREADY_EXISTS {
            return Err("a second CreateFileMappingA did not say ERROR_ALREADY_EXISTS".into());
        }
        CloseHandle(again);
        let b = OpenFileMappingA(FILE_MAP_ALL_ACCESS, 0, name.as_ptr());
        if b.is_null() {
            return Err(format!("OpenFileMappingA: error {}", GetLastError()));
        }
        let va = MapViewOfFile(a, FILE_MAP_ALL_ACCESS, 0, 0, 4096) as *mut u32;
        let vb = MapViewOfFile(b, FILE_MAP_ALL_ACCESS, 0, 0, 4096) as *mut u32;
        if va.is_null() || vb.is_null() {
            return Err(format!("MapViewOfFile: error {}", GetLastError()));
        }
        va.write_volatile(0x5346_0201);
        let seen = vb.read_volatile();
        UnmapViewOfFile(va.cast());
        UnmapViewOfFile(vb.cast());
        CloseHandle(a);
        CloseHandle(b);
        if seen != 0x5346_0201 {
            return Err(format!("the second view read {seen:#x}"));
        }
    }
    Ok(())
}

#[cfg(not(windows))]
fn mapping() -> Result<(), String> {
    Ok(())
}

fn main() {
    let mut failed = false;
    let mut m = HashMap::new();
    m.insert("key", 1);
    println!("hashmap (ProcessPrng): ok ({} entry)", m.len());
    let t = Instant::now();
    let h = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(20));
        42
    });
    let v = h.join().unwrap();
    let slept = t.elapsed();
    let ok = v == 42 && slept >= Duration::from_millis(20);
    failed |= !ok;
    println!(
        "thread + sleep 20 ms: {} ({:.1} ms)",
        if ok { "ok" } else { "FAILED" },
        slept.as_secs_f64() * 1e3
    );
    match mapping() {
        Ok(()) => println!("named file mapping, two views: ok"),
        Err(e) => {
            failed = true;
            println!("named file mapping: FAILED: {e}");
        }
    }
    println!("target: {}", std::env::consts::OS);
    std::process::exit(failed as i32);
}

#[cfg(test)]
mod tests {
    /// Run by `cargo test --target x86_64-pc-windows-gnu` through the Wine runner
    /// (CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER): the way the core's suite will run.
    #[test]
    fn a_named_mapping_under_the_test_harness() {
        assert_eq!(super::mapping(), Ok(()));
        assert_eq!(std::env::consts::OS, "windows");
    }
}
