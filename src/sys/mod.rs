//! Platform code, chosen by `cfg`: everything that talks to the operating system lives here.
//!
//! Each platform module offers the same functions: where a named segment lives, exclusive
//! creation and opening, page reservation, byte-range locks the kernel drops when a process dies,
//! waiting on and waking a 32-bit word shared between processes, and a clock comparable between
//! processes.
//!
//! - Linux (`linux.rs`): `/dev/shm`, futexes without `FUTEX_PRIVATE_FLAG`, OFD locks.
//! - Other Unix (`other_unix.rs`): files in a shared-memory directory, classic `fcntl` locks,
//!   and bounded timed waits instead of futex wake-ups (correct, slower to react).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(all(unix, not(target_os = "linux")))]
mod other_unix;
#[cfg(all(unix, not(target_os = "linux")))]
pub use other_unix::*;

#[cfg(not(unix))]
compile_error!(
    "shmframes supports Linux and (with timed waits) other Unix systems; Windows named file \
     mappings are not implemented yet"
);
