//! # shmframes' C ABI
//!
//! The functions behind `shmframes.h` (generated from this crate by cbindgen and committed in
//! `include/`; `tests/header.rs` fails when it drifts) and, on top of it, the C++17 wrapper
//! `include/shmframes.hpp`. Shaped like rustls-ffi:
//!
//! - **Opaque handles** (`shmframes_writer`, `shmframes_slot`, `shmframes_reader`,
//!   `shmframes_frame`, `shmframes_cancel`), made by `*_new`/`*_create`/`*_open` functions
//!   through an out-parameter and freed by their `*_free` function. A handle that is closed,
//!   released or published stays valid memory until it is freed, so using it again is an
//!   error code, never a crash.
//! - **Every fallible function returns a [`shmframes_result`]**: `SHMFRAMES_OK`,
//!   `SHMFRAMES_TIMEOUT` (nothing in time: not an error) or an error code, one per kind of
//!   failure a caller handles differently (the core's `Error` variants). The message, which
//!   says what happened and what to do, is kept per thread:
//!   [`shmframes_last_error_message`].
//! - **No panic crosses the boundary**: every entry point runs inside `catch_unwind`; a panic
//!   (a bug) becomes `SHMFRAMES_ERR_PANIC` with its message.
//! - **Thread safety and ownership** are stated on every function (and so in the header).
//!
//! The core's `FrameSlot` borrows its writer; C has no lifetimes, so a slot handle keeps the
//! borrow (see `writer.rs`): while a slot is open its writer refuses every other call.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// The C names are the API: `shmframes_writer`, not `ShmframesWriter`.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use shmframes::{Cancel, Deadline, Error, PixelFormat};

mod reader;
mod writer;

pub use reader::*;
pub use writer::*;

/// What a call did. `SHMFRAMES_OK` (0) and `SHMFRAMES_TIMEOUT` (nothing in time, or no room
/// for a frame now) are not errors; every other value is, and
/// `shmframes_last_error_message()` then says what went wrong and what to do.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmframes_result {
    /// Done.
    SHMFRAMES_OK = 0,
    /// Nothing happened within the timeout: no frame (read), no room (take a slot, write),
    /// no reader yet (a waiting writer's first frame). Not an error; the out-handle is NULL.
    SHMFRAMES_TIMEOUT = 1,
    /// A NULL handle or pointer where one is needed.
    SHMFRAMES_ERR_NULL_ARGUMENT = 100,
    /// An argument out of range: a size that is not one frame, an unknown format or option,
    /// a name that is not UTF-8.
    SHMFRAMES_ERR_INVALID_ARGUMENT = 101,
    /// The slot was published or discarded already (or its writer was closed or freed).
    SHMFRAMES_ERR_SLOT_DONE = 102,
    /// The frame was released already: its pixels and metadata are gone.
    SHMFRAMES_ERR_FRAME_RELEASED = 103,
    /// The writer has an open slot: publish or discard it before anything else.
    SHMFRAMES_ERR_SLOT_OPEN = 104,
    /// A bug in shmframes (a Rust panic, caught at the boundary). Please report it.
    SHMFRAMES_ERR_PANIC = 105,
    /// A channel name that cannot name a shared-memory object.
    SHMFRAMES_ERR_INVALID_NAME = 200,
    /// No channel of that name (or none appeared in time).
    SHMFRAMES_ERR_CHANNEL_NOT_FOUND = 201,
    /// A live producer already owns the name.
    SHMFRAMES_ERR_PRODUCER_ALIVE = 202,
    /// The name holds a segment that is not shmframes' (or another user's leftover).
    SHMFRAMES_ERR_NAME_TAKEN = 203,
    /// Every reader place is taken (or another consumer reads a raw channel).
    SHMFRAMES_ERR_CHANNEL_BUSY = 204,
    /// The producer died (or was killed) without ending the stream.
    SHMFRAMES_ERR_PRODUCER_GONE = 205,
    /// The producer ended the stream, and every frame it published was read.
    SHMFRAMES_ERR_END_OF_STREAM = 206,
    /// Bytes in the segment break the protocol (corrupt segment, incompatible peer).
    SHMFRAMES_ERR_PROTOCOL = 207,
    /// A raw (header-less) frame whose size is not the one the reader was told, or raw
    /// frames read without a shape.
    SHMFRAMES_ERR_RAW_SHAPE = 208,
    /// A channel configuration that cannot be: shape, buffered frames, reader limit, mode.
    SHMFRAMES_ERR_CONFIG = 209,
    /// Pixels that are not one frame's bytes.
    SHMFRAMES_ERR_WRONG_FRAME_SIZE = 210,
    /// This reader holds every slot: release a frame before reading the next.
    SHMFRAMES_ERR_HOLDS_EVERY_SLOT = 211,
    /// The reader or writer was closed.
    SHMFRAMES_ERR_CLOSED = 212,
    /// A reader or writer used in a child made by fork(): it belongs to the parent.
    SHMFRAMES_ERR_FORKED_CHILD = 213,
    /// The wait was ended by a cancel (`shmframes_cancel_fire`).
    SHMFRAMES_ERR_INTERRUPTED = 214,
    /// /dev/shm cannot hold the channel.
    SHMFRAMES_ERR_NO_SPACE = 215,
    /// Permission denied (another user's channel, or its mode).
    SHMFRAMES_ERR_PERMISSION_DENIED = 216,
    /// Any other operating-system error.
    SHMFRAMES_ERR_IO = 217,
}

use shmframes_result::*;

impl shmframes_result {
    /// The code of a core error.
    fn of(e: &Error) -> shmframes_result {
        match e {
            Error::InvalidName { .. } => SHMFRAMES_ERR_INVALID_NAME,
            Error::ChannelNotFound { .. } => SHMFRAMES_ERR_CHANNEL_NOT_FOUND,
            Error::ProducerAlive { .. } => SHMFRAMES_ERR_PRODUCER_ALIVE,
            Error::NameTaken { .. } | Error::ForeignSegment { .. } | Error::SymbolicLink { .. } => {
                SHMFRAMES_ERR_NAME_TAKEN
            }
            Error::ChannelBusy { .. } => SHMFRAMES_ERR_CHANNEL_BUSY,
            Error::ProducerGone { .. } => SHMFRAMES_ERR_PRODUCER_GONE,
            Error::EndOfStream { .. } => SHMFRAMES_ERR_END_OF_STREAM,
            Error::Protocol { .. } => SHMFRAMES_ERR_PROTOCOL,
            Error::RawSizeMismatch { .. } | Error::RawWithoutShape { .. } => {
                SHMFRAMES_ERR_RAW_SHAPE
            }
            Error::Shape(_)
            | Error::NoBufferFrames
            | Error::TooManyBufferFrames { .. }
            | Error::MaxReaders { .. }
            | Error::RingTooLarge { .. }
            | Error::RawNeedsPackedRows { .. }
            | Error::BadMode { .. } => SHMFRAMES_ERR_CONFIG,
            Error::WrongFrameSize { .. } => SHMFRAMES_ERR_WRONG_FRAME_SIZE,
            Error::HoldsEverySlot { .. } => SHMFRAMES_ERR_HOLDS_EVERY_SLOT,
            Error::Closed { .. } | Error::SlotGone { .. } => SHMFRAMES_ERR_CLOSED,
            Error::ForkedChild { .. } => SHMFRAMES_ERR_FORKED_CHILD,
            Error::Interrupted { .. } => SHMFRAMES_ERR_INTERRUPTED,
            Error::NoSpace { .. } => SHMFRAMES_ERR_NO_SPACE,
            Error::PermissionDenied { .. } => SHMFRAMES_ERR_PERMISSION_DENIED,
            _ => SHMFRAMES_ERR_IO,
        }
    }

    /// The code's name, e.g. `"SHMFRAMES_ERR_PRODUCER_GONE"`.
    fn name(self) -> &'static CStr {
        match self {
            SHMFRAMES_OK => c"SHMFRAMES_OK",
            SHMFRAMES_TIMEOUT => c"SHMFRAMES_TIMEOUT",
            SHMFRAMES_ERR_NULL_ARGUMENT => c"SHMFRAMES_ERR_NULL_ARGUMENT",
            SHMFRAMES_ERR_INVALID_ARGUMENT => c"SHMFRAMES_ERR_INVALID_ARGUMENT",
            SHMFRAMES_ERR_SLOT_DONE => c"SHMFRAMES_ERR_SLOT_DONE",
            SHMFRAMES_ERR_FRAME_RELEASED => c"SHMFRAMES_ERR_FRAME_RELEASED",
            SHMFRAMES_ERR_SLOT_OPEN => c"SHMFRAMES_ERR_SLOT_OPEN",
            SHMFRAMES_ERR_PANIC => c"SHMFRAMES_ERR_PANIC",
            SHMFRAMES_ERR_INVALID_NAME => c"SHMFRAMES_ERR_INVALID_NAME",
            SHMFRAMES_ERR_CHANNEL_NOT_FOUND => c"SHMFRAMES_ERR_CHANNEL_NOT_FOUND",
            SHMFRAMES_ERR_PRODUCER_ALIVE => c"SHMFRAMES_ERR_PRODUCER_ALIVE",
            SHMFRAMES_ERR_NAME_TAKEN => c"SHMFRAMES_ERR_NAME_TAKEN",
            SHMFRAMES_ERR_CHANNEL_BUSY => c"SHMFRAMES_ERR_CHANNEL_BUSY",
            SHMFRAMES_ERR_PRODUCER_GONE => c"SHMFRAMES_ERR_PRODUCER_GONE",
            SHMFRAMES_ERR_END_OF_STREAM => c"SHMFRAMES_ERR_END_OF_STREAM",
            SHMFRAMES_ERR_PROTOCOL => c"SHMFRAMES_ERR_PROTOCOL",
            SHMFRAMES_ERR_RAW_SHAPE => c"SHMFRAMES_ERR_RAW_SHAPE",
            SHMFRAMES_ERR_CONFIG => c"SHMFRAMES_ERR_CONFIG",
            SHMFRAMES_ERR_WRONG_FRAME_SIZE => c"SHMFRAMES_ERR_WRONG_FRAME_SIZE",
            SHMFRAMES_ERR_HOLDS_EVERY_SLOT => c"SHMFRAMES_ERR_HOLDS_EVERY_SLOT",
            SHMFRAMES_ERR_CLOSED => c"SHMFRAMES_ERR_CLOSED",
            SHMFRAMES_ERR_FORKED_CHILD => c"SHMFRAMES_ERR_FORKED_CHILD",
            SHMFRAMES_ERR_INTERRUPTED => c"SHMFRAMES_ERR_INTERRUPTED",
            SHMFRAMES_ERR_NO_SPACE => c"SHMFRAMES_ERR_NO_SPACE",
            SHMFRAMES_ERR_PERMISSION_DENIED => c"SHMFRAMES_ERR_PERMISSION_DENIED",
            SHMFRAMES_ERR_IO => c"SHMFRAMES_ERR_IO",
        }
    }
}

/// A failed call: its code and its message.
#[derive(Debug)]
pub(crate) struct Fail {
    code: shmframes_result,
    message: String,
}

impl Fail {
    pub(crate) fn new(code: shmframes_result, message: impl Into<String>) -> Fail {
        Fail { code, message: message.into() }
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail { code: shmframes_result::of(&e), message: e.full_message() }
    }
}

/// What an entry point's body returns: `Ok(OK)` or `Ok(TIMEOUT)`, or a failure.
pub(crate) type Outcome = Result<shmframes_result, Fail>;

thread_local! {
    /// The message of this thread's last failed call.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message with a NUL byte (a channel name given with one) is cut there.
    let text = message.split('\0').next().unwrap_or_default();
    let c = CString::new(text).unwrap_or_default();
    // `try_with`: during thread teardown the slot may be gone; the code still tells.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = c);
}

/// Runs an entry point's body: catches panics, records the message of a failure, returns
/// the code. `what` names the function, for messages about its arguments.
pub(crate) fn ffi(what: &str, body: impl FnOnce() -> Outcome) -> shmframes_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(code)) => {
            if code == SHMFRAMES_TIMEOUT {
                set_last_error(&format!("{what}: timed out"));
            }
            code
        }
        Ok(Err(fail)) => {
            set_last_error(&format!("{what}: {}", fail.message));
            fail.code
        }
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!(
                "{what}: internal error (a bug in shmframes; please report it): {why}"
            ));
            SHMFRAMES_ERR_PANIC
        }
    }
}

/// `Err(NULL_ARGUMENT)` naming `what` when `p` is NULL.
pub(crate) fn non_null<T>(p: *const T, what: &str) -> Result<(), Fail> {
    if p.is_null() {
        return Err(Fail::new(SHMFRAMES_ERR_NULL_ARGUMENT, format!("{what} is NULL")));
    }
    Ok(())
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Fail> {
    non_null(p, what)?;
    // SAFETY: non-NULL, and NUL-terminated and alive by the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|_| Fail::new(SHMFRAMES_ERR_INVALID_ARGUMENT, format!("{what} is not UTF-8")))
}

/// A timeout in nanoseconds as a deadline: negative waits for ever
/// ([`SHMFRAMES_FOREVER`]), 0 does not wait.
pub(crate) fn deadline_ns(timeout_ns: i64) -> Deadline {
    match u64::try_from(timeout_ns) {
        Ok(ns) => Deadline::after(Duration::from_nanos(ns)),
        Err(_) => Deadline::NEVER,
    }
}

/// A pixel format from its code.
pub(crate) fn format_arg(code: u32) -> Result<PixelFormat, Fail> {
    PixelFormat::from_code(code).ok_or_else(|| {
        Fail::new(
            SHMFRAMES_ERR_INVALID_ARGUMENT,
            format!("unknown pixel format code {code} (see shmframes_format)"),
        )
    })
}

/// Writes `value` through `out` (checked non-NULL).
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T, what: &str) -> Result<(), Fail> {
    non_null(out, what)?;
    // SAFETY: non-NULL and writable by the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// Wait for ever (any negative timeout does).
pub const SHMFRAMES_FOREVER: i64 = -1;

/// Pixel formats, with their wire codes (`docs/protocol.md`). 8 bits per sample.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmframes_format {
    /// Blue, green, red, 3 bytes per pixel (OpenCV's `CV_8UC3` default).
    SHMFRAMES_FORMAT_BGR = 1,
    /// Red, green, blue, 3 bytes per pixel.
    SHMFRAMES_FORMAT_RGB = 2,
    /// One luminance byte per pixel.
    SHMFRAMES_FORMAT_GRAY = 3,
    /// Red, green, blue, alpha.
    SHMFRAMES_FORMAT_RGBA = 4,
    /// Blue, green, red, alpha.
    SHMFRAMES_FORMAT_BGRA = 5,
    /// YUV 4:2:0: a Y plane, then interleaved U, V rows at half height.
    SHMFRAMES_FORMAT_NV12 = 6,
    /// YUV 4:2:0: a Y plane, then U and V planes at half width and height.
    SHMFRAMES_FORMAT_I420 = 7,
    /// YUV 4:2:2 packed Y0 U Y1 V, 2 bytes per pixel.
    SHMFRAMES_FORMAT_YUYV = 8,
}

// The codes are the core's wire codes.
const _: () = {
    assert!(shmframes_format::SHMFRAMES_FORMAT_BGR as u32 == PixelFormat::Bgr24 as u32);
    assert!(shmframes_format::SHMFRAMES_FORMAT_RGB as u32 == PixelFormat::Rgb24 as u32);
    assert!(shmframes_format::SHMFRAMES_FORMAT_GRAY as u32 == PixelFormat::Gray8 as u32);
    assert!(shmframes_format::SHMFRAMES_FORMAT_RGBA as u32 == PixelFormat::Rgba32 as u32);
    assert!(shmframes_format::SHMFRAMES_FORMAT_BGRA as u32 == PixelFormat::Bgra32 as u32);
    assert!(shmframes_format::SHMFRAMES_FORMAT_NV12 as u32 == PixelFormat::Nv12 as u32);
    assert!(shmframes_format::SHMFRAMES_FORMAT_I420 as u32 == PixelFormat::I420 as u32);
    assert!(shmframes_format::SHMFRAMES_FORMAT_YUYV as u32 == PixelFormat::Yuyv as u32);
};

/// Width, height, row stride of the first plane (bytes) and format (a `shmframes_format`
/// code) of a frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct shmframes_shape {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from one row of the first plane to the next (at least a row's bytes).
    pub stride: u32,
    /// A `shmframes_format` code.
    pub format: u32,
}

impl From<shmframes::FrameShape> for shmframes_shape {
    fn from(s: shmframes::FrameShape) -> shmframes_shape {
        shmframes_shape {
            width: s.width,
            height: s.height,
            stride: s.stride,
            format: s.format.code(),
        }
    }
}

impl shmframes_shape {
    /// The core's shape; a stride of 0 means packed rows.
    fn to_core(self) -> Result<shmframes::FrameShape, Fail> {
        let format = format_arg(self.format)?;
        let mut shape = shmframes::FrameShape::packed(self.width, self.height, format)
            .map_err(|e| Fail::from(Error::Shape(e)))?;
        if self.stride != 0 {
            shape.stride = self.stride;
            shape.validate().map_err(|e| Fail::from(Error::Shape(e)))?;
        }
        Ok(shape)
    }
}

/// The message of this thread's last call that failed (or timed out): what went wrong and
/// what to do, prefixed with the function's name. Never NULL ("" before any failure).
///
/// Ownership: the string belongs to the library and stays valid until the next failing call
/// on this thread. Thread safety: each thread has its own.
#[no_mangle]
pub extern "C" fn shmframes_last_error_message() -> *const c_char {
    LAST_ERROR.try_with(|slot| slot.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// The name of a result code (`"SHMFRAMES_ERR_PRODUCER_GONE"`), or `"unknown"`. Static
/// string; any thread.
#[no_mangle]
pub extern "C" fn shmframes_result_name(result: u32) -> *const c_char {
    let all = [
        SHMFRAMES_OK,
        SHMFRAMES_TIMEOUT,
        SHMFRAMES_ERR_NULL_ARGUMENT,
        SHMFRAMES_ERR_INVALID_ARGUMENT,
        SHMFRAMES_ERR_SLOT_DONE,
        SHMFRAMES_ERR_FRAME_RELEASED,
        SHMFRAMES_ERR_SLOT_OPEN,
        SHMFRAMES_ERR_PANIC,
        SHMFRAMES_ERR_INVALID_NAME,
        SHMFRAMES_ERR_CHANNEL_NOT_FOUND,
        SHMFRAMES_ERR_PRODUCER_ALIVE,
        SHMFRAMES_ERR_NAME_TAKEN,
        SHMFRAMES_ERR_CHANNEL_BUSY,
        SHMFRAMES_ERR_PRODUCER_GONE,
        SHMFRAMES_ERR_END_OF_STREAM,
        SHMFRAMES_ERR_PROTOCOL,
        SHMFRAMES_ERR_RAW_SHAPE,
        SHMFRAMES_ERR_CONFIG,
        SHMFRAMES_ERR_WRONG_FRAME_SIZE,
        SHMFRAMES_ERR_HOLDS_EVERY_SLOT,
        SHMFRAMES_ERR_CLOSED,
        SHMFRAMES_ERR_FORKED_CHILD,
        SHMFRAMES_ERR_INTERRUPTED,
        SHMFRAMES_ERR_NO_SPACE,
        SHMFRAMES_ERR_PERMISSION_DENIED,
        SHMFRAMES_ERR_IO,
    ];
    all.iter().find(|r| **r as u32 == result).map_or(c"unknown".as_ptr(), |r| r.name().as_ptr())
}

/// The library's version, e.g. `"0.1.0"`. Static string; any thread.
#[no_mangle]
pub extern "C" fn shmframes_version() -> *const c_char {
    const V: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"?",
        };
    V.as_ptr()
}

/// Nanoseconds of CLOCK_MONOTONIC, the clock of every timestamp in frames (comparable between
/// processes on one machine: a frame's age is `shmframes_monotonic_ns() - publish_ns`). Any
/// thread.
#[no_mangle]
pub extern "C" fn shmframes_monotonic_ns() -> u64 {
    shmframes::monotonic_ns()
}

/// The name of a format code (`"bgr"`, `"nv12"`, ...), or NULL for an unknown code. Static
/// string; any thread.
#[no_mangle]
pub extern "C" fn shmframes_format_name(format: u32) -> *const c_char {
    const NAMES: [&CStr; 8] =
        [c"bgr", c"rgb", c"gray", c"rgba", c"bgra", c"nv12", c"i420", c"yuyv"];
    match PixelFormat::from_code(format) {
        Some(f) => {
            debug_assert_eq!(NAMES[f.code() as usize - 1].to_str().ok(), Some(f.name()));
            NAMES[f.code() as usize - 1].as_ptr()
        }
        None => std::ptr::null(),
    }
}

/// Parses a format name as the tools spell it (`"bgr"`, `"gray"`, `"yuy2"`, ...,
/// case-insensitive) into `*out_format`. Any thread.
///
/// # Errors
/// `SHMFRAMES_ERR_NULL_ARGUMENT`, `SHMFRAMES_ERR_INVALID_ARGUMENT` (unknown name).
///
/// # Safety
/// `name` is a NUL-terminated string; `out_format` is writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_format_parse(
    name: *const c_char,
    out_format: *mut u32,
) -> shmframes_result {
    ffi("shmframes_format_parse", || {
        // SAFETY: the caller's contract.
        let name = unsafe { str_arg(name, "name") }?;
        let f: PixelFormat = name.parse().map_err(|e: shmframes::format::UnknownFormat| {
            Fail::new(SHMFRAMES_ERR_INVALID_ARGUMENT, e.to_string())
        })?;
        // SAFETY: the caller's contract.
        unsafe { put(out_format, f.code(), "out_format") }?;
        Ok(SHMFRAMES_OK)
    })
}

/// Ends blocking calls early, from another thread: give it to a reader or writer (their
/// options' `cancel`, or `shmframes_*_set_cancel`), then `shmframes_cancel_fire` makes their
/// waits return `SHMFRAMES_ERR_INTERRUPTED` (at once on Linux 5.16+, else within 50 ms). A
/// fired cancel stays fired: make a new one to wait again.
pub struct shmframes_cancel {
    cancel: Cancel,
}

/// Makes a cancel into `*out_cancel`. Free it with `shmframes_cancel_free` (readers and
/// writers given it keep their own reference: free it whenever you like). Any thread.
///
/// # Errors
/// `SHMFRAMES_ERR_NULL_ARGUMENT`.
///
/// # Safety
/// `out_cancel` is writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_cancel_new(
    out_cancel: *mut *mut shmframes_cancel,
) -> shmframes_result {
    ffi("shmframes_cancel_new", || {
        non_null(out_cancel, "out_cancel")?;
        let c = Box::into_raw(Box::new(shmframes_cancel { cancel: Cancel::new() }));
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { out_cancel.write(c) };
        Ok(SHMFRAMES_OK)
    })
}

/// Fires the cancel: every wait of every reader and writer given it ends with
/// `SHMFRAMES_ERR_INTERRUPTED`, now and later. Thread safety: any thread, at any time, also
/// while another thread is blocked in a call that uses it (that is what it is for).
///
/// # Errors
/// `SHMFRAMES_ERR_NULL_ARGUMENT`.
///
/// # Safety
/// `cancel` is NULL or a live cancel handle.
#[no_mangle]
pub unsafe extern "C" fn shmframes_cancel_fire(
    cancel: *const shmframes_cancel,
) -> shmframes_result {
    ffi("shmframes_cancel_fire", || {
        non_null(cancel, "cancel")?;
        // SAFETY: a live handle by the caller's contract; `Cancel` is Sync.
        unsafe { &*cancel }.cancel.cancel();
        Ok(SHMFRAMES_OK)
    })
}

/// Whether the cancel was fired. Any thread. NULL gives false.
///
/// # Safety
/// `cancel` is NULL or a live cancel handle.
#[no_mangle]
pub unsafe extern "C" fn shmframes_cancel_is_fired(cancel: *const shmframes_cancel) -> bool {
    if cancel.is_null() {
        return false;
    }
    // SAFETY: a live handle by the caller's contract.
    catch_unwind(AssertUnwindSafe(|| unsafe { &*cancel }.cancel.is_cancelled())).unwrap_or(false)
}

/// Frees a cancel handle (NULL is ignored). Readers and writers it was given keep working
/// with their own reference. Not while another thread uses this handle.
///
/// # Safety
/// `cancel` is NULL or a live cancel handle, not used again.
#[no_mangle]
pub unsafe extern "C" fn shmframes_cancel_free(cancel: *mut shmframes_cancel) {
    if !cancel.is_null() {
        // SAFETY: made by `Box::into_raw` in `shmframes_cancel_new`; freed once by contract.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(cancel) })));
    }
}

/// The core's cancel of an optional handle.
///
/// # Safety
/// `cancel` is NULL or a live cancel handle.
pub(crate) unsafe fn cancel_arg(cancel: *const shmframes_cancel) -> Option<Cancel> {
    // SAFETY: the caller's contract.
    (!cancel.is_null()).then(|| unsafe { &*cancel }.cancel.clone())
}
