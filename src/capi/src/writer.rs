//! The producer end: `shmframes_writer` and the `shmframes_slot`s it lends.
//!
//! The core's `FrameSlot<'w>` borrows `&'w mut Writer`. A C slot handle cannot carry that
//! lifetime, so the writer handle keeps its `Writer` boxed behind a raw pointer (a fixed
//! address) and the slot handle holds a `FrameSlot<'static>` made from it. What makes that
//! sound is kept here, in one place: while a slot is open (`shmframes_writer::open` is set)
//! nothing else touches the `Writer` (every writer call returns `SHMFRAMES_ERR_SLOT_OPEN`),
//! and the `FrameSlot` is dropped (publish, discard, slot free, writer close or free) before
//! the `Writer` is touched again or freed.

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use shmframes::{Cancel, Deadline, FrameSlot, Writer, WriterOptions};

use crate::shmframes_result::*;
use crate::{
    cancel_arg, deadline_ns, ffi, non_null, put, shmframes_cancel, shmframes_reader_info,
    shmframes_result, shmframes_shape, str_arg, Fail,
};

/// What a writer does when it has no room for the next frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmframes_when_full {
    /// Never wait, as a live camera must: `shmframes_writer_take_slot` returns
    /// `SHMFRAMES_TIMEOUT` at once when readers hold every slot (the frame is dropped); a
    /// lossless reader that lags loses frames (and counts them).
    SHMFRAMES_WHEN_FULL_DROP = 0,
    /// Wait (up to the call's timeout) for lossless readers, which then lose nothing; and
    /// before the first frame, for a first reader (`frame-producer --when-full wait`).
    SHMFRAMES_WHEN_FULL_WAIT = 1,
}

/// How to create a channel. Fill it with `shmframes_writer_options_init`, then change what
/// you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmframes_writer_options {
    /// The frames' shape; `stride` 0 means packed rows.
    pub shape: shmframes_shape,
    /// How many published frames the channel keeps (default 4; 1 to 31): how far a reader may
    /// fall behind before it loses frames (or, lossless, before a waiting writer waits).
    pub buffer_frames: u32,
    /// How many readers may attach at once (default 8; 1 to 32).
    pub max_readers: u32,
    /// A `shmframes_when_full` value (default `SHMFRAMES_WHEN_FULL_DROP`).
    pub when_full: u32,
    /// Header-less frames exactly like cpp_py_shmbuf's producer, for its consumers (default
    /// false). Needs packed rows; one consumer.
    pub raw: bool,
    /// Permission bits of the segment (default 0600).
    pub mode: u32,
    /// NULL, or a cancel that ends this writer's waits (the writer keeps its own reference).
    pub cancel: *const shmframes_cancel,
}

/// A channel's producer end. Thread safety: use a writer (and its slot) from one thread at
/// a time; it may move between threads. A cancel ends its waits from any thread.
pub struct shmframes_writer {
    /// The core writer, boxed at a fixed address (an open slot borrows it); `None` once
    /// closed.
    writer: Option<NonNull<Writer>>,
    /// The slot handle whose `FrameSlot` borrows `*writer`, if one is open (else NULL).
    open: *mut shmframes_slot,
    wait: bool,
    cancel: Option<Cancel>,
    name: Arc<str>,
}

/// Room for one frame, taken from a writer: fill its pixels, then publish or discard it.
/// Thread safety: as its writer's.
pub struct shmframes_slot {
    /// The core slot, borrowing the writer's `Writer`; `None` once done.
    slot: Option<FrameSlot<'static>>,
    /// The writer it belongs to while open (else NULL).
    writer: *mut shmframes_writer,
    pixels: *mut u8,
    len: usize,
    /// Its sequence number once published.
    published: Option<u64>,
    name: Arc<str>,
}

impl shmframes_writer {
    /// The core writer, for a call other than taking a slot.
    fn get(&mut self) -> Result<&mut Writer, Fail> {
        if !self.open.is_null() {
            return Err(Fail::new(
                SHMFRAMES_ERR_SLOT_OPEN,
                format!(
                    "a slot of the writer of channel {:?} is open: publish or discard it \
                     (shmframes_slot_publish, shmframes_slot_discard) first",
                    self.name
                ),
            ));
        }
        match self.writer {
            // SAFETY: boxed by `shmframes_writer_create` and owned by this handle; no slot
            // borrows it (checked above), and `&mut self` makes this the only reference.
            Some(mut w) => Ok(unsafe { w.as_mut() }),
            None => Err(Fail::new(
                SHMFRAMES_ERR_CLOSED,
                format!("the writer of channel {:?} is closed", self.name),
            )),
        }
    }

    /// Drops the open slot's frame (discarded), if any: its handle is then done.
    fn end_open_slot(&mut self) {
        if self.open.is_null() {
            return;
        }
        // SAFETY: `open` is set only to a live slot handle, and cleared when that handle is
        // done or freed.
        let slot = unsafe { &mut *self.open };
        drop(slot.slot.take());
        slot.writer = std::ptr::null_mut();
        self.open = std::ptr::null_mut();
    }

    /// Ends the stream and frees the core writer (idempotent).
    fn close(&mut self) {
        self.end_open_slot();
        if let Some(w) = self.writer.take() {
            // SAFETY: made by `Box::into_raw` in `shmframes_writer_create`, taken once; no slot
            // borrows it any more.
            let w = unsafe { Box::from_raw(w.as_ptr()) };
            let _ = w.close();
        }
    }
}

impl shmframes_slot {
    fn open_slot(&mut self) -> Result<&mut FrameSlot<'static>, Fail> {
        let name = &self.name;
        self.slot.as_mut().ok_or_else(|| slot_done(name, self.published))
    }
}

fn slot_done(name: &str, published: Option<u64>) -> Fail {
    let how = match published {
        Some(seq) => format!("was published already (as frame {seq})"),
        None => "was discarded, or its writer closed".to_owned(),
    };
    Fail::new(
        SHMFRAMES_ERR_SLOT_DONE,
        format!(
            "this slot of channel {name:?} {how}: take a new one with shmframes_writer_take_slot"
        ),
    )
}

/// The writer behind a handle argument.
///
/// # Safety
/// `w` is NULL or a live writer handle used by this thread only.
unsafe fn writer_arg<'a>(w: *mut shmframes_writer) -> Result<&'a mut shmframes_writer, Fail> {
    non_null(w, "writer")?;
    // SAFETY: the caller's contract.
    Ok(unsafe { &mut *w })
}

/// The slot behind a handle argument.
///
/// # Safety
/// `s` is NULL or a live slot handle used by this thread only.
unsafe fn slot_arg<'a>(s: *mut shmframes_slot) -> Result<&'a mut shmframes_slot, Fail> {
    non_null(s, "slot")?;
    // SAFETY: the caller's contract.
    Ok(unsafe { &mut *s })
}

/// Fills `*opts` with the defaults for frames of `width` x `height` in `format` (a
/// `shmframes_format` code): packed rows, 4 buffered frames, 8 readers, when full drop,
/// framed, mode 0600, no cancel. Any thread.
///
/// # Errors
/// `SHMFRAMES_ERR_NULL_ARGUMENT`. (The shape is checked by `shmframes_writer_create`.)
///
/// # Safety
/// `opts` is writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_writer_options_init(
    opts: *mut shmframes_writer_options,
    width: u32,
    height: u32,
    format: u32,
) -> shmframes_result {
    ffi("shmframes_writer_options_init", || {
        let o = shmframes_writer_options {
            shape: shmframes_shape { width, height, stride: 0, format },
            buffer_frames: 4,
            max_readers: shmframes::DEFAULT_MAX_READERS,
            when_full: shmframes_when_full::SHMFRAMES_WHEN_FULL_DROP as u32,
            raw: false,
            mode: 0o600,
            cancel: std::ptr::null(),
        };
        // SAFETY: the caller's contract.
        unsafe { put(opts, o, "opts") }?;
        Ok(SHMFRAMES_OK)
    })
}

/// Creates channel `name` (the shared-memory object `/dev/shm/NAME`) and its writer into
/// `*out_writer`; replaces the leftover of a dead producer. Free it with
/// `shmframes_writer_free` (which ends the stream). Any thread.
///
/// # Errors
/// `SHMFRAMES_ERR_PRODUCER_ALIVE` (a live producer owns the name), `_NAME_TAKEN`,
/// `_INVALID_NAME`, `_CONFIG` (shape, buffer frames, readers, mode), `_NO_SPACE`,
/// `_PERMISSION_DENIED`, `_INVALID_ARGUMENT`, `_NULL_ARGUMENT`, `_IO`.
///
/// # Safety
/// `name` is a NUL-terminated string; `opts` is readable (its `cancel` NULL or live);
/// `out_writer` is writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_writer_create(
    name: *const std::ffi::c_char,
    opts: *const shmframes_writer_options,
    out_writer: *mut *mut shmframes_writer,
) -> shmframes_result {
    ffi("shmframes_writer_create", || {
        // SAFETY: the caller's contract.
        let name = unsafe { str_arg(name, "name") }?;
        non_null(opts, "opts")?;
        non_null(out_writer, "out_writer")?;
        // SAFETY: non-NULL and readable by the caller's contract.
        let o = unsafe { *opts };
        let wait = match o.when_full {
            0 => false,
            1 => true,
            other => {
                return Err(Fail::new(
                    SHMFRAMES_ERR_INVALID_ARGUMENT,
                    format!("when_full {other} is neither SHMFRAMES_WHEN_FULL_DROP nor _WAIT"),
                ))
            }
        };
        let shape = o.shape.to_core()?;
        let mut wo = WriterOptions::new(shape.width, shape.height, shape.format)?;
        wo.shape = shape;
        wo.buffer_frames = o.buffer_frames;
        wo.max_readers = o.max_readers;
        wo.raw = o.raw;
        wo.mode = o.mode;
        // SAFETY: NULL or live by the caller's contract.
        wo.cancel = unsafe { cancel_arg(o.cancel) };
        let writer = Writer::create(name, &wo)?;
        let handle = shmframes_writer {
            writer: Some(NonNull::from(Box::leak(Box::new(writer)))),
            open: std::ptr::null_mut(),
            wait,
            cancel: wo.cancel.clone(),
            name: Arc::from(name),
        };
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { out_writer.write(Box::into_raw(Box::new(handle))) };
        Ok(SHMFRAMES_OK)
    })
}

/// Takes room for the next frame into `*out_slot` (NULL on `SHMFRAMES_TIMEOUT`). Nothing is
/// visible to readers until `shmframes_slot_publish`. One slot at a time: while it is open the
/// writer refuses other calls (`SHMFRAMES_ERR_SLOT_OPEN`). Free the slot with
/// `shmframes_slot_free` (which discards it if it was not published).
///
/// `SHMFRAMES_WHEN_FULL_DROP` never waits: `SHMFRAMES_TIMEOUT` means readers hold every slot
/// (drop the frame). `SHMFRAMES_WHEN_FULL_WAIT` waits up to `timeout_ns` (negative:
/// `SHMFRAMES_FOREVER`) for lossless readers to make room, and before the first frame for a
/// first reader to attach.
///
/// Threads: one thread at a time per writer (with its slot); a cancel may fire from any thread meanwhile.
///
/// # Errors
/// `SHMFRAMES_ERR_SLOT_OPEN`, `_CLOSED`, `_INTERRUPTED` (its cancel fired), `_PROTOCOL`,
/// `_FORKED_CHILD`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `writer` is NULL or a live writer handle; `out_slot` is writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_writer_take_slot(
    writer: *mut shmframes_writer,
    timeout_ns: i64,
    out_slot: *mut *mut shmframes_slot,
) -> shmframes_result {
    ffi("shmframes_writer_take_slot", || {
        // SAFETY: the caller's contract.
        let h = unsafe { writer_arg(writer) }?;
        non_null(out_slot, "out_slot")?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { out_slot.write(std::ptr::null_mut()) };
        let deadline = deadline_ns(timeout_ns);
        let (wait, cancel, name) = (h.wait, h.cancel.clone(), h.name.clone());
        let w = h.get()?;
        let Some(mut slot) = take(w, wait, deadline, cancel.as_ref())? else {
            return Ok(SHMFRAMES_TIMEOUT);
        };
        let pixels = slot.pixels();
        let (ptr, len) = (pixels.as_mut_ptr(), pixels.len());
        // SAFETY: `slot` borrows the boxed `Writer`, which stays at its address until the
        // writer handle closes it; `h.open` (set below) makes every other use of the writer
        // wait until this slot is dropped, which `end_open_slot` does before the writer is
        // closed or freed. So the borrow is exclusive for as long as the slot lives.
        let slot: FrameSlot<'static> = unsafe { std::mem::transmute(slot) };
        let s = Box::into_raw(Box::new(shmframes_slot {
            slot: Some(slot),
            writer,
            pixels: ptr,
            len,
            published: None,
            name,
        }));
        h.open = s;
        // SAFETY: as above.
        unsafe { out_slot.write(s) };
        Ok(SHMFRAMES_OK)
    })
}

/// A slot for the next frame as the writer's `when_full` says (`wait`): `None` when there was
/// no room (or, waiting for a first reader, none came) in time.
fn take<'w>(
    w: &'w mut Writer,
    wait: bool,
    deadline: Deadline,
    cancel: Option<&Cancel>,
) -> Result<Option<FrameSlot<'w>>, Fail> {
    if !wait {
        return Ok(w.try_frame()?);
    }
    if w.frames_published() == 0 && !wait_for_reader(w, deadline, cancel)? {
        return Ok(None);
    }
    Ok(w.frame(deadline)?)
}

/// Waits until a reader attaches (or the deadline passes: `Ok(false)`, or the cancel fires).
fn wait_for_reader(w: &Writer, deadline: Deadline, cancel: Option<&Cancel>) -> Result<bool, Fail> {
    const STEP: Duration = Duration::from_millis(2);
    loop {
        if w.reader_attached() {
            return Ok(true);
        }
        if deadline.passed() {
            return Ok(false);
        }
        let step = deadline.remaining().map_or(STEP, |left| left.min(STEP));
        match cancel {
            Some(c) if !c.sleep_until(Deadline::after(step)) => {
                return Err(shmframes::Error::Interrupted { name: w.name().to_owned() }.into())
            }
            Some(_) => {}
            None => std::thread::sleep(step),
        }
    }
}

/// The slot's pixels: `*out_data` (64-byte aligned, writable) and `*out_len` bytes
/// (`stride * height` summed over the planes), valid until the slot is published, discarded
/// or freed. Either out-pointer may be NULL.
///
/// Threads: its writer's thread (a writer and its slot are used by one thread at a time).
///
/// # Errors
/// `SHMFRAMES_ERR_SLOT_DONE`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `slot` is NULL or a live slot handle; the out-pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_slot_pixels(
    slot: *mut shmframes_slot,
    out_data: *mut *mut u8,
    out_len: *mut usize,
) -> shmframes_result {
    ffi("shmframes_slot_pixels", || {
        // SAFETY: the caller's contract.
        let s = unsafe { slot_arg(slot) }?;
        s.open_slot()?;
        if !out_data.is_null() {
            // SAFETY: non-NULL, writable by the caller's contract.
            unsafe { out_data.write(s.pixels) };
        }
        if !out_len.is_null() {
            // SAFETY: as above.
            unsafe { out_len.write(s.len) };
        }
        Ok(SHMFRAMES_OK)
    })
}

/// Copies one frame's pixels (`len` must be exactly the slot's byte count) into the slot.
///
/// Threads: its writer's thread (a writer and its slot are used by one thread at a time).
///
/// # Errors
/// `SHMFRAMES_ERR_WRONG_FRAME_SIZE`, `_SLOT_DONE`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `slot` is NULL or a live slot handle; `pixels` is readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmframes_slot_write(
    slot: *mut shmframes_slot,
    pixels: *const u8,
    len: usize,
) -> shmframes_result {
    ffi("shmframes_slot_write", || {
        // SAFETY: the caller's contract.
        let s = unsafe { slot_arg(slot) }?;
        s.open_slot()?;
        non_null(pixels, "pixels")?;
        if len != s.len {
            return Err(Fail::new(
                SHMFRAMES_ERR_WRONG_FRAME_SIZE,
                format!("{len} bytes given, but a frame of channel {:?} has {}", s.name, s.len),
            ));
        }
        // SAFETY: `pixels` is readable for `len` bytes (the caller's contract); the slot's
        // pixels are writable for `len` (checked) while it is open; `copy` allows overlap.
        unsafe { std::ptr::copy(pixels, s.pixels, len) };
        Ok(SHMFRAMES_OK)
    })
}

/// Sets the frame's sequence number (default: one more than the previous frame's), e.g. the
/// source's frame counter, so that frames the channel dropped show as gaps.
///
/// Threads: its writer's thread (a writer and its slot are used by one thread at a time).
///
/// # Errors
/// `SHMFRAMES_ERR_SLOT_DONE`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `slot` is NULL or a live slot handle.
#[no_mangle]
pub unsafe extern "C" fn shmframes_slot_set_seq(
    slot: *mut shmframes_slot,
    seq: u64,
) -> shmframes_result {
    ffi("shmframes_slot_set_seq", || {
        // SAFETY: the caller's contract.
        unsafe { slot_arg(slot) }?.open_slot()?.set_seq(seq);
        Ok(SHMFRAMES_OK)
    })
}

/// Sets the capture time (CLOCK_MONOTONIC ns, `shmframes_monotonic_ns`); default: the time of
/// publishing.
///
/// Threads: its writer's thread (a writer and its slot are used by one thread at a time).
///
/// # Errors
/// `SHMFRAMES_ERR_SLOT_DONE`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `slot` is NULL or a live slot handle.
#[no_mangle]
pub unsafe extern "C" fn shmframes_slot_set_capture_ns(
    slot: *mut shmframes_slot,
    capture_ns: u64,
) -> shmframes_result {
    ffi("shmframes_slot_set_capture_ns", || {
        // SAFETY: the caller's contract.
        unsafe { slot_arg(slot) }?.open_slot()?.set_capture_ns(capture_ns);
        Ok(SHMFRAMES_OK)
    })
}

/// The sequence number the frame will carry, into `*out_seq`.
///
/// Threads: its writer's thread (a writer and its slot are used by one thread at a time).
///
/// # Errors
/// `SHMFRAMES_ERR_SLOT_DONE`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `slot` is NULL or a live slot handle; `out_seq` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_slot_seq(
    slot: *mut shmframes_slot,
    out_seq: *mut u64,
) -> shmframes_result {
    ffi("shmframes_slot_seq", || {
        // SAFETY: the caller's contract.
        let seq = unsafe { slot_arg(slot) }?.open_slot()?.seq();
        // SAFETY: the caller's contract.
        unsafe { put(out_seq, seq, "out_seq") }?;
        Ok(SHMFRAMES_OK)
    })
}

/// Makes the frame visible to readers (and wakes those asleep); its sequence number into
/// `*out_seq` (may be NULL). The slot is then done (its pixels no longer yours); free it with
/// `shmframes_slot_free`.
///
/// Threads: its writer's thread (a writer and its slot are used by one thread at a time).
///
/// # Errors
/// `SHMFRAMES_ERR_SLOT_DONE` (published or discarded already), `_NULL_ARGUMENT`.
///
/// # Safety
/// `slot` is NULL or a live slot handle; `out_seq` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_slot_publish(
    slot: *mut shmframes_slot,
    out_seq: *mut u64,
) -> shmframes_result {
    ffi("shmframes_slot_publish", || {
        // SAFETY: the caller's contract.
        let s = unsafe { slot_arg(slot) }?;
        s.open_slot()?;
        let seq = s.slot.take().expect("checked open").publish();
        s.published = Some(seq);
        release_from_writer(s);
        if !out_seq.is_null() {
            // SAFETY: non-NULL, writable by the caller's contract.
            unsafe { out_seq.write(seq) };
        }
        Ok(SHMFRAMES_OK)
    })
}

/// The slot is done: its writer may be used again.
fn release_from_writer(s: &mut shmframes_slot) {
    if !s.writer.is_null() {
        // SAFETY: `writer` is set while the slot is open, and the writer handle clears it
        // (`end_open_slot`) before it is freed: it points to a live writer handle.
        unsafe { (*s.writer).open = std::ptr::null_mut() };
        s.writer = std::ptr::null_mut();
    }
}

/// Discards the frame: readers never see it. The slot is then done.
///
/// Threads: its writer's thread (a writer and its slot are used by one thread at a time).
///
/// # Errors
/// `SHMFRAMES_ERR_SLOT_DONE`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `slot` is NULL or a live slot handle.
#[no_mangle]
pub unsafe extern "C" fn shmframes_slot_discard(slot: *mut shmframes_slot) -> shmframes_result {
    ffi("shmframes_slot_discard", || {
        // SAFETY: the caller's contract.
        let s = unsafe { slot_arg(slot) }?;
        s.open_slot()?;
        drop(s.slot.take());
        release_from_writer(s);
        Ok(SHMFRAMES_OK)
    })
}

/// Frees a slot handle (NULL is ignored), discarding its frame if it was neither published
/// nor discarded. Any time before or after its writer is freed.
///
/// Threads: its writer's thread, or any thread once the writer is freed.
///
/// # Safety
/// `slot` is NULL or a live slot handle, not used again.
#[no_mangle]
pub unsafe extern "C" fn shmframes_slot_free(slot: *mut shmframes_slot) {
    if slot.is_null() {
        return;
    }
    ffi("shmframes_slot_free", || {
        // SAFETY: made by `Box::into_raw` in `shmframes_writer_take_slot`, freed once by
        // contract.
        let mut s = unsafe { Box::from_raw(slot) };
        drop(s.slot.take());
        release_from_writer(&mut s);
        Ok(SHMFRAMES_OK)
    });
}

/// Copies one frame (`len` exactly the frame's bytes) into the next slot and publishes it:
/// `SHMFRAMES_OK` if published, `SHMFRAMES_TIMEOUT` if there was no room (dropped), waiting as
/// `shmframes_writer_take_slot` does. `capture_ns` 0 stamps the time of publishing.
///
/// Threads: one thread at a time per writer (with its slot); a cancel may fire from any thread meanwhile.
///
/// # Errors
/// `SHMFRAMES_ERR_WRONG_FRAME_SIZE`, and as `shmframes_writer_take_slot`.
///
/// # Safety
/// `writer` is NULL or a live writer handle; `pixels` readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmframes_writer_write(
    writer: *mut shmframes_writer,
    pixels: *const u8,
    len: usize,
    capture_ns: u64,
    timeout_ns: i64,
) -> shmframes_result {
    ffi("shmframes_writer_write", || {
        // SAFETY: the caller's contract.
        let h = unsafe { writer_arg(writer) }?;
        non_null(pixels, "pixels")?;
        let deadline = deadline_ns(timeout_ns);
        let (wait, cancel) = (h.wait, h.cancel.clone());
        let w = h.get()?;
        let expected = w.shape().pixel_bytes() as usize;
        if len != expected {
            let shape = w.shape();
            return Err(shmframes::Error::WrongFrameSize { got: len, expected, shape }.into());
        }
        // SAFETY: readable for `len` bytes by the caller's contract.
        let src = unsafe { std::slice::from_raw_parts(pixels, len) };
        let Some(mut slot) = take(w, wait, deadline, cancel.as_ref())? else {
            return Ok(SHMFRAMES_TIMEOUT);
        };
        slot.pixels().copy_from_slice(src);
        if capture_ns != 0 {
            slot.set_capture_ns(capture_ns);
        }
        slot.publish();
        Ok(SHMFRAMES_OK)
    })
}

/// The frames' shape into `*out_shape`.
///
/// Threads: one thread at a time per writer (with its slot); a cancel may fire from any thread meanwhile.
///
/// # Errors
/// `SHMFRAMES_ERR_SLOT_OPEN`, `_CLOSED`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `writer` is NULL or a live writer handle; `out_shape` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_writer_shape(
    writer: *mut shmframes_writer,
    out_shape: *mut shmframes_shape,
) -> shmframes_result {
    ffi("shmframes_writer_shape", || {
        // SAFETY: the caller's contract.
        let shape = unsafe { writer_arg(writer) }?.get()?.shape();
        // SAFETY: the caller's contract.
        unsafe { put(out_shape, shape.into(), "out_shape") }?;
        Ok(SHMFRAMES_OK)
    })
}

/// Frames published so far, into `*out_count`.
///
/// Threads: one thread at a time per writer (with its slot); a cancel may fire from any thread meanwhile.
///
/// # Errors
/// `SHMFRAMES_ERR_SLOT_OPEN`, `_CLOSED`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `writer` is NULL or a live writer handle; `out_count` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_writer_frames_published(
    writer: *mut shmframes_writer,
    out_count: *mut u64,
) -> shmframes_result {
    ffi("shmframes_writer_frames_published", || {
        // SAFETY: the caller's contract.
        let n = unsafe { writer_arg(writer) }?.get()?.frames_published();
        // SAFETY: the caller's contract.
        unsafe { put(out_count, n, "out_count") }?;
        Ok(SHMFRAMES_OK)
    })
}

/// The channel's live readers: up to `capacity` of them into `out_readers` (may be NULL when
/// `capacity` is 0), and how many there are into `*out_count` (may exceed `capacity`). A
/// system call per reader place: call it about once a second, not per frame.
///
/// Threads: one thread at a time per writer (with its slot); a cancel may fire from any thread meanwhile.
///
/// # Errors
/// `SHMFRAMES_ERR_SLOT_OPEN`, `_CLOSED`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `writer` is NULL or a live writer handle; `out_readers` writable for `capacity` entries;
/// `out_count` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_writer_readers(
    writer: *mut shmframes_writer,
    out_readers: *mut shmframes_reader_info,
    capacity: usize,
    out_count: *mut usize,
) -> shmframes_result {
    ffi("shmframes_writer_readers", || {
        // SAFETY: the caller's contract.
        let list = unsafe { writer_arg(writer) }?.get()?.reader_list();
        // SAFETY: the caller's contract.
        unsafe { crate::reader::put_readers(&list, out_readers, capacity, out_count) }
    })
}

/// Replaces the cancel that ends this writer's waits (NULL: none), from the next wait on.
///
/// Threads: one thread at a time per writer (with its slot); a cancel may fire from any thread meanwhile.
///
/// # Errors
/// `SHMFRAMES_ERR_SLOT_OPEN`, `_CLOSED`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `writer` is NULL or a live writer handle; `cancel` NULL or a live cancel handle.
#[no_mangle]
pub unsafe extern "C" fn shmframes_writer_set_cancel(
    writer: *mut shmframes_writer,
    cancel: *const shmframes_cancel,
) -> shmframes_result {
    ffi("shmframes_writer_set_cancel", || {
        // SAFETY: the caller's contract.
        let h = unsafe { writer_arg(writer) }?;
        // SAFETY: the caller's contract.
        let c = unsafe { cancel_arg(cancel) };
        h.get()?.set_cancel(c.clone());
        h.cancel = c;
        Ok(SHMFRAMES_OK)
    })
}

/// Ends the stream (readers read what was published, then get
/// `SHMFRAMES_ERR_END_OF_STREAM`) and removes the name; an open slot is discarded. The handle
/// stays valid (calls return `SHMFRAMES_ERR_CLOSED`) until `shmframes_writer_free`.
///
/// Threads: one thread at a time per writer (with its slot); a cancel may fire from any thread meanwhile.
///
/// # Errors
/// `SHMFRAMES_ERR_CLOSED` (already closed), `_NULL_ARGUMENT`.
///
/// # Safety
/// `writer` is NULL or a live writer handle.
#[no_mangle]
pub unsafe extern "C" fn shmframes_writer_close(writer: *mut shmframes_writer) -> shmframes_result {
    ffi("shmframes_writer_close", || {
        // SAFETY: the caller's contract.
        let h = unsafe { writer_arg(writer) }?;
        if h.writer.is_none() {
            return Err(Fail::new(
                SHMFRAMES_ERR_CLOSED,
                format!("the writer of channel {:?} is closed already", h.name),
            ));
        }
        h.close();
        Ok(SHMFRAMES_OK)
    })
}

/// Frees a writer handle (NULL is ignored), ending the stream first if it was not closed. An
/// open slot is discarded; its handle stays valid until `shmframes_slot_free`
/// (`SHMFRAMES_ERR_SLOT_DONE`).
///
/// Threads: the writer's thread (no other thread may use it or its slot meanwhile).
///
/// # Safety
/// `writer` is NULL or a live writer handle, not used again.
#[no_mangle]
pub unsafe extern "C" fn shmframes_writer_free(writer: *mut shmframes_writer) {
    if writer.is_null() {
        return;
    }
    ffi("shmframes_writer_free", || {
        // SAFETY: made by `Box::into_raw` in `shmframes_writer_create`, freed once by contract.
        let mut h = unsafe { Box::from_raw(writer) };
        h.close();
        Ok(SHMFRAMES_OK)
    });
}
