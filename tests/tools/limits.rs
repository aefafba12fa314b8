//! Resource limits: a segment larger than /dev/shm can hold fails at creation with a clear
//! error naming the size and the fix (tmpfs allocates lazily: without reserving the pages up
//! front, the failure would be a SIGBUS much later). Docker's default /dev/shm is 64 MB: the
//! test gives the producer exactly that, in a private mount namespace.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_frame-producer");

fn in_small_shm(size_mb: u32, producer_args: &str) -> std::process::Output {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert!(euid == 0, "mounting a private /dev/shm needs root (CI runs as root)");
    let script = format!(
        "mount -t tmpfs -o size={size_mb}m tmpfs /dev/shm && exec {BIN} --quiet --name limits {producer_args}"
    );
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux)")
}

#[test]
fn a_segment_larger_than_dev_shm_fails_at_creation_with_the_fix() {
    // 16 buffered 1080p frames need a 128 MiB ring: more than a 64 MB /dev/shm.
    let out = in_small_shm(64, "--size 1920x1080 --buffer-frames 16 --frames 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "created a 128 MiB segment in 64 MB: {err}");
    // The 128 MiB data area, its 16-byte header and the reader table after it.
    let bytes: u64 = err
        .split("cannot reserve ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size named: {err}"));
    assert!((134_217_744..134_217_744 + 4096).contains(&bytes), "{err}");
    assert!(err.contains("--shm-size"), "the fix is not named: {err}");
    assert!(!err.contains("panicked") && !err.contains("SIGBUS"), "{err}");
}

#[test]
fn a_segment_that_fits_works_there() {
    // 4 frames: a 32 MiB ring fits in 64 MB.
    let out = in_small_shm(64, "--size 1920x1080 --buffer-frames 4 --frames 3 --fps 0");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
