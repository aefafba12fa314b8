//! Platform code, chosen by `cfg`: everything that talks to the operating system lives here.
//!
//! Each platform module offers the same functions: where a named segment lives, page
//! reservation, byte-range locks the kernel drops when a process dies, and waiting on and waking
//! a 32-bit word shared between processes. `unix.rs` holds what all Unix systems share (opening
//! without following symlinks, CLOCK_MONOTONIC, file identities).
//!
//! - Linux (`linux.rs`): `/dev/shm`, futexes without `FUTEX_PRIVATE_FLAG`, OFD locks.
//! - Other Unix (`other_unix.rs`): segment files in `$TMPDIR/shmframes`, classic `fcntl` locks,
//!   bounded timed waits instead of futex wake-ups (correct, slower to react). It is also
//!   compiled and unit-tested on Linux, so it cannot rot unnoticed.

mod unix;
pub use unix::*;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(all(unix, not(target_os = "linux")))]
mod other_unix;
#[cfg(all(unix, not(target_os = "linux")))]
pub use other_unix::*;

#[cfg(all(test, target_os = "linux"))]
#[allow(dead_code)]
mod other_unix;

#[cfg(not(unix))]
compile_error!(
    "shmframes supports Linux and (with timed waits) other Unix systems; Windows named file \
     mappings are not implemented yet"
);
