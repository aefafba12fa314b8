//! The consumer end: `shmframes_reader`, the `shmframes_frame`s it hands out, and the list
//! of a channel's readers.

use std::sync::Arc;
use std::time::Duration;

use shmframes::{Frame, ProducerState, Reader, ReaderInfo, ReaderOptions, Start};

use crate::shmframes_result::*;
use crate::{
    cancel_arg, deadline_ns, ffi, non_null, put, shmframes_cancel, shmframes_result,
    shmframes_shape, str_arg, Fail, Outcome,
};

/// How to attach. Fill it with `shmframes_reader_options_init`, then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmframes_reader_options {
    /// How long to wait for the channel to appear, in ns (default 0: fail at once if it does
    /// not exist; negative: for ever).
    pub timeout_ns: i64,
    /// Never lose a frame to a writer that waits (`SHMFRAMES_WHEN_FULL_WAIT`): it waits for
    /// this reader. Default false: a reader that falls behind loses its oldest unread frames
    /// (counted in `shmframes_reader_dropped`) and never slows the writer.
    pub lossless: bool,
    /// Survive the producer: on its end or death, wait for the next producer under the same
    /// name and go on with it (reads time out meanwhile). Default false.
    pub follow: bool,
    /// Start at the oldest frame the channel still keeps (default false: the newest).
    pub start_oldest: bool,
    /// Header-less (raw) frames, e.g. from cpp_py_shmbuf's producer, have `raw_shape`
    /// (framed channels describe themselves and ignore it). Default false.
    pub raw: bool,
    /// The shape of raw frames (`stride` 0: packed).
    pub raw_shape: shmframes_shape,
    /// NULL, or a cancel that ends this reader's waits, opening included (the reader keeps its
    /// own reference).
    pub cancel: *const shmframes_cancel,
}

/// A channel's reading end. Thread safety: use a reader from one thread at a time (it may
/// move between threads); a cancel ends its waits from any thread. Its frames are
/// independent of it: they may be used and freed on other threads, and outlive it.
pub struct shmframes_reader {
    /// `None` once closed.
    reader: Option<Reader>,
    name: Arc<str>,
}

/// One frame, read in place in shared memory: while the handle holds it, the producer does
/// not overwrite it. Release it (or free it) as soon as you are done: held frames pin the
/// channel's slots. Thread safety: one thread at a time per frame; different frames may be
/// used on different threads at once, and a frame may be released or freed on any thread.
pub struct shmframes_frame {
    /// `None` once released.
    frame: Option<Frame>,
    name: Arc<str>,
}

/// One plane of a frame: where its rows lie in the frame's bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct shmframes_plane {
    /// Byte offset of its first row from `data`.
    pub offset: u64,
    /// Bytes from one row to the next.
    pub stride: u32,
    /// Bytes of pixels in each row (the rest of the stride is padding).
    pub row_bytes: u32,
    /// Rows.
    pub rows: u32,
}

/// Everything about a frame, from `shmframes_frame_get_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmframes_frame_info {
    /// The first pixel byte, in shared memory (64-byte aligned): read-only, valid until the
    /// frame is released or freed.
    pub data: *const u8,
    /// Pixel bytes from `data` (every plane, padding included).
    pub len: usize,
    /// Width, height, stride of the first plane, format.
    pub shape: shmframes_shape,
    /// Planes: 1 (packed formats, YUYV), 2 (NV12), 3 (I420).
    pub planes: u32,
    /// The planes; entries past `planes` are zero.
    pub plane: [shmframes_plane; 3],
    /// Sequence number (for raw frames: the reader's own count).
    pub seq: u64,
    /// Capture time, CLOCK_MONOTONIC ns (0 for raw frames).
    pub capture_ns: u64,
    /// Publish time, CLOCK_MONOTONIC ns (0 for raw frames).
    pub publish_ns: u64,
    /// Frames this reader lost just before this one (overwritten before it could read them).
    pub lost_before: u64,
    /// Whether the frame came without a header (raw).
    pub raw: bool,
}

/// What a reader knows of its producer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmframes_producer_state {
    /// A live shmframes producer.
    SHMFRAMES_PRODUCER_LIVE = 0,
    /// A producer that announces no liveness (cpp_py_shmbuf's): cannot tell.
    SHMFRAMES_PRODUCER_UNKNOWN = 1,
    /// The stream ended normally.
    SHMFRAMES_PRODUCER_ENDED = 2,
    /// The producer died without ending the stream.
    SHMFRAMES_PRODUCER_GONE = 3,
}

/// A reader of a framed channel, as its place in the channel's reader table says.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct shmframes_reader_info {
    /// Its place in the table (0-based).
    pub place: u32,
    /// Its process id.
    pub pid: u32,
    /// Whether it is lossless.
    pub lossless: bool,
    /// Frames it read.
    pub frames_read: u64,
    /// Frames it lost.
    pub dropped: u64,
    /// Frames published that it has not read yet.
    pub lag: u64,
    /// Frames it holds now.
    pub held: u32,
}

impl From<&ReaderInfo> for shmframes_reader_info {
    fn from(r: &ReaderInfo) -> shmframes_reader_info {
        shmframes_reader_info {
            place: r.place as u32,
            pid: r.pid,
            lossless: r.lossless,
            frames_read: r.frames_read,
            dropped: r.dropped,
            lag: r.lag,
            held: r.held,
        }
    }
}

/// Copies a reader list out (see `shmframes_readers`).
///
/// # Safety
/// `out` writable for `capacity` entries (or NULL with 0); `out_count` NULL or writable.
pub(crate) unsafe fn put_readers(
    list: &[ReaderInfo],
    out: *mut shmframes_reader_info,
    capacity: usize,
    out_count: *mut usize,
) -> Outcome {
    non_null(out_count, "out_count")?;
    if capacity > 0 {
        non_null(out, "out_readers")?;
    }
    for (i, r) in list.iter().take(capacity).enumerate() {
        // SAFETY: `i < capacity`, writable by the caller's contract.
        unsafe { out.add(i).write(r.into()) };
    }
    // SAFETY: checked non-NULL, writable by the caller's contract.
    unsafe { out_count.write(list.len()) };
    Ok(SHMFRAMES_OK)
}

/// The reader behind a handle argument.
///
/// # Safety
/// `r` is NULL or a live reader handle used by this thread only.
unsafe fn reader_arg<'a>(r: *mut shmframes_reader) -> Result<&'a mut shmframes_reader, Fail> {
    non_null(r, "reader")?;
    // SAFETY: the caller's contract.
    Ok(unsafe { &mut *r })
}

impl shmframes_reader {
    fn get(&mut self) -> Result<&mut Reader, Fail> {
        let name = &self.name;
        self.reader.as_mut().ok_or_else(|| {
            Fail::new(SHMFRAMES_ERR_CLOSED, format!("the reader of channel {name:?} is closed"))
        })
    }
}

/// Fills `*opts` with the defaults: no wait for the channel, lossy, no follow, newest first,
/// framed, no cancel. Any thread.
///
/// # Errors
/// `SHMFRAMES_ERR_NULL_ARGUMENT`.
///
/// # Safety
/// `opts` is writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_reader_options_init(
    opts: *mut shmframes_reader_options,
) -> shmframes_result {
    ffi("shmframes_reader_options_init", || {
        let o = shmframes_reader_options {
            timeout_ns: 0,
            lossless: false,
            follow: false,
            start_oldest: false,
            raw: false,
            raw_shape: shmframes_shape::default(),
            cancel: std::ptr::null(),
        };
        // SAFETY: the caller's contract.
        unsafe { put(opts, o, "opts") }?;
        Ok(SHMFRAMES_OK)
    })
}

/// Attaches to channel `name` as one of its readers (into `*out_reader`), waiting up to
/// `opts->timeout_ns` for it to appear. Free it with `shmframes_reader_free`. Any thread.
///
/// # Errors
/// `SHMFRAMES_ERR_CHANNEL_NOT_FOUND`, `_CHANNEL_BUSY` (every reader place taken),
/// `_PERMISSION_DENIED`, `_PROTOCOL`, `_INTERRUPTED`, `_INVALID_NAME`, `_CONFIG` (a bad raw
/// shape), `_INVALID_ARGUMENT`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `name` is a NUL-terminated string; `opts` NULL (the defaults) or readable (its `cancel`
/// NULL or live); `out_reader` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_reader_open(
    name: *const std::ffi::c_char,
    opts: *const shmframes_reader_options,
    out_reader: *mut *mut shmframes_reader,
) -> shmframes_result {
    ffi("shmframes_reader_open", || {
        // SAFETY: the caller's contract.
        let name = unsafe { str_arg(name, "name") }?;
        non_null(out_reader, "out_reader")?;
        let mut o = std::mem::MaybeUninit::uninit();
        let o = if opts.is_null() {
            // SAFETY: a local.
            unsafe { shmframes_reader_options_init(o.as_mut_ptr()) };
            // SAFETY: just initialised.
            unsafe { o.assume_init() }
        } else {
            // SAFETY: readable by the caller's contract.
            unsafe { *opts }
        };
        let ro = ReaderOptions {
            timeout: u64::try_from(o.timeout_ns).map_or(Duration::MAX, Duration::from_nanos),
            raw: if o.raw { Some(o.raw_shape.to_core()?) } else { None },
            follow: o.follow,
            // SAFETY: NULL or live by the caller's contract.
            cancel: unsafe { cancel_arg(o.cancel) },
            lossless: o.lossless,
            start: if o.start_oldest { Start::Oldest } else { Start::Newest },
        };
        let reader = Reader::open(name, &ro)?;
        let name: Arc<str> = Arc::from(reader.name());
        let h = Box::into_raw(Box::new(shmframes_reader { reader: Some(reader), name }));
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { out_reader.write(h) };
        Ok(SHMFRAMES_OK)
    })
}

/// Reads a frame into `*out_frame` (NULL on `SHMFRAMES_TIMEOUT`).
fn read_with(
    what: &str,
    reader: *mut shmframes_reader,
    timeout_ns: i64,
    out_frame: *mut *mut shmframes_frame,
    newest: bool,
) -> shmframes_result {
    ffi(what, || {
        // SAFETY: the callers' contract.
        let h = unsafe { reader_arg(reader) }?;
        non_null(out_frame, "out_frame")?;
        // SAFETY: checked non-NULL, writable by the callers' contract.
        unsafe { out_frame.write(std::ptr::null_mut()) };
        let name = h.name.clone();
        let r = h.get()?;
        let deadline = deadline_ns(timeout_ns);
        let frame = if newest { r.latest(deadline)? } else { r.read(deadline)? };
        let Some(frame) = frame else { return Ok(SHMFRAMES_TIMEOUT) };
        let f = Box::into_raw(Box::new(shmframes_frame { frame: Some(frame), name }));
        // SAFETY: as above.
        unsafe { out_frame.write(f) };
        Ok(SHMFRAMES_OK)
    })
}

/// The next frame, into `*out_frame`, waiting up to `timeout_ns` (0: do not wait; negative:
/// `SHMFRAMES_FOREVER`); `SHMFRAMES_TIMEOUT` (and NULL) when none came in time. Free the frame
/// with `shmframes_frame_free`.
///
/// Threads: one thread at a time per reader; a cancel may fire from any thread meanwhile, and its frames may be used elsewhere.
///
/// # Errors
/// `SHMFRAMES_ERR_END_OF_STREAM` (the producer ended the stream and every frame was read),
/// `_PRODUCER_GONE` (it died: noticed within a millisecond on Linux 5.16+),
/// `_HOLDS_EVERY_SLOT`, `_INTERRUPTED`, `_PROTOCOL`, `_RAW_SHAPE`, `_CLOSED`,
/// `_FORKED_CHILD`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `reader` is NULL or a live reader handle; `out_frame` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_reader_read(
    reader: *mut shmframes_reader,
    timeout_ns: i64,
    out_frame: *mut *mut shmframes_frame,
) -> shmframes_result {
    read_with("shmframes_reader_read", reader, timeout_ns, out_frame, false)
}

/// The newest frame, skipping (and releasing) every older one already published; waits as
/// `shmframes_reader_read` when none is. Errors as `shmframes_reader_read`.
///
/// Threads: one thread at a time per reader; a cancel may fire from any thread meanwhile, and its frames may be used elsewhere.
///
/// # Safety
/// `reader` is NULL or a live reader handle; `out_frame` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_reader_latest(
    reader: *mut shmframes_reader,
    timeout_ns: i64,
    out_frame: *mut *mut shmframes_frame,
) -> shmframes_result {
    read_with("shmframes_reader_latest", reader, timeout_ns, out_frame, true)
}

/// Frames this reader lost (overwritten before it read them), into `*out_count`.
///
/// Threads: one thread at a time per reader; a cancel may fire from any thread meanwhile, and its frames may be used elsewhere.
///
/// # Errors
/// `SHMFRAMES_ERR_CLOSED`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `reader` is NULL or a live reader handle; `out_count` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_reader_dropped(
    reader: *mut shmframes_reader,
    out_count: *mut u64,
) -> shmframes_result {
    ffi("shmframes_reader_dropped", || {
        // SAFETY: the caller's contract.
        let n = unsafe { reader_arg(reader) }?.get()?.dropped();
        // SAFETY: the caller's contract.
        unsafe { put(out_count, n, "out_count") }?;
        Ok(SHMFRAMES_OK)
    })
}

/// Frames published and not read yet by this reader, into `*out_count` (a raw channel has no
/// count: `UINT64_MAX`).
///
/// Threads: one thread at a time per reader; a cancel may fire from any thread meanwhile, and its frames may be used elsewhere.
///
/// # Errors
/// `SHMFRAMES_ERR_CLOSED`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `reader` is NULL or a live reader handle; `out_count` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_reader_lag(
    reader: *mut shmframes_reader,
    out_count: *mut u64,
) -> shmframes_result {
    ffi("shmframes_reader_lag", || {
        // SAFETY: the caller's contract.
        let n = unsafe { reader_arg(reader) }?.get()?.lag().unwrap_or(u64::MAX);
        // SAFETY: the caller's contract.
        unsafe { put(out_count, n, "out_count") }?;
        Ok(SHMFRAMES_OK)
    })
}

/// What the reader last learned of its producer (a `shmframes_producer_state`), into
/// `*out_state`.
///
/// Threads: one thread at a time per reader; a cancel may fire from any thread meanwhile, and its frames may be used elsewhere.
///
/// # Errors
/// `SHMFRAMES_ERR_CLOSED`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `reader` is NULL or a live reader handle; `out_state` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_reader_producer_state(
    reader: *mut shmframes_reader,
    out_state: *mut u32,
) -> shmframes_result {
    use shmframes_producer_state::*;
    ffi("shmframes_reader_producer_state", || {
        // SAFETY: the caller's contract.
        let s = match unsafe { reader_arg(reader) }?.get()?.producer_state() {
            ProducerState::Live => SHMFRAMES_PRODUCER_LIVE,
            ProducerState::Unknown => SHMFRAMES_PRODUCER_UNKNOWN,
            ProducerState::Ended => SHMFRAMES_PRODUCER_ENDED,
            ProducerState::Gone => SHMFRAMES_PRODUCER_GONE,
        };
        // SAFETY: the caller's contract.
        unsafe { put(out_state, s as u32, "out_state") }?;
        Ok(SHMFRAMES_OK)
    })
}

/// Replaces the cancel that ends this reader's waits (NULL: none), from the next wait on.
///
/// Threads: one thread at a time per reader; a cancel may fire from any thread meanwhile, and its frames may be used elsewhere.
///
/// # Errors
/// `SHMFRAMES_ERR_CLOSED`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `reader` is NULL or a live reader handle; `cancel` NULL or a live cancel handle.
#[no_mangle]
pub unsafe extern "C" fn shmframes_reader_set_cancel(
    reader: *mut shmframes_reader,
    cancel: *const shmframes_cancel,
) -> shmframes_result {
    ffi("shmframes_reader_set_cancel", || {
        // SAFETY: the caller's contract.
        let r = unsafe { reader_arg(reader) }?.get()?;
        // SAFETY: the caller's contract.
        r.set_cancel(unsafe { cancel_arg(cancel) });
        Ok(SHMFRAMES_OK)
    })
}

/// How this reader's blocking reads wait for the next frame of a framed channel, from the next
/// read on: `true` (the default) wakes just before a steady producer's next frame is due and
/// watches for it briefly (at most 1.5 % of the frame interval; irregular producers are waited
/// for in the kernel); `false` always sleeps until the producer's wake-up (no watching, slower).
/// Raw channels always wait for the producer.
///
/// Threads: one thread at a time per reader.
///
/// # Errors
/// `SHMFRAMES_ERR_CLOSED`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `reader` is NULL or a live reader handle.
#[no_mangle]
pub unsafe extern "C" fn shmframes_reader_set_anticipate(
    reader: *mut shmframes_reader,
    anticipate: bool,
) -> shmframes_result {
    ffi("shmframes_reader_set_anticipate", || {
        // SAFETY: the caller's contract.
        let r = unsafe { reader_arg(reader) }?.get()?;
        r.set_wake(if anticipate { shmframes::Wake::Anticipate } else { shmframes::Wake::Publish });
        Ok(SHMFRAMES_OK)
    })
}

/// Stops reading and gives the reader's place back; frames still held stay valid. The
/// handle stays valid (calls return `SHMFRAMES_ERR_CLOSED`) until `shmframes_reader_free`.
///
/// Threads: one thread at a time per reader; a cancel may fire from any thread meanwhile, and its frames may be used elsewhere.
///
/// # Errors
/// `SHMFRAMES_ERR_CLOSED` (already closed), `_NULL_ARGUMENT`.
///
/// # Safety
/// `reader` is NULL or a live reader handle.
#[no_mangle]
pub unsafe extern "C" fn shmframes_reader_close(reader: *mut shmframes_reader) -> shmframes_result {
    ffi("shmframes_reader_close", || {
        // SAFETY: the caller's contract.
        let h = unsafe { reader_arg(reader) }?;
        h.get()?;
        h.reader = None;
        Ok(SHMFRAMES_OK)
    })
}

/// Frees a reader handle (NULL is ignored), closing it first. Its frames stay valid.
///
/// Threads: the reader's thread (no other thread may use it meanwhile); its frames may be in use elsewhere.
///
/// # Safety
/// `reader` is NULL or a live reader handle, not used again.
#[no_mangle]
pub unsafe extern "C" fn shmframes_reader_free(reader: *mut shmframes_reader) {
    if reader.is_null() {
        return;
    }
    ffi("shmframes_reader_free", || {
        // SAFETY: made by `Box::into_raw` in `shmframes_reader_open`, freed once by contract.
        drop(unsafe { Box::from_raw(reader) });
        Ok(SHMFRAMES_OK)
    });
}

/// The frame behind a handle argument, unless released.
///
/// # Safety
/// `f` is NULL or a live frame handle not used by another thread now.
unsafe fn frame_arg<'a>(f: *const shmframes_frame) -> Result<&'a Frame, Fail> {
    non_null(f, "frame")?;
    // SAFETY: the caller's contract.
    let h = unsafe { &*f };
    h.frame.as_ref().ok_or_else(|| {
        Fail::new(
            SHMFRAMES_ERR_FRAME_RELEASED,
            format!(
                "this frame of channel {:?} was released: its pixels may hold another frame \
                 now; read the next one",
                h.name
            ),
        )
    })
}

/// Everything about the frame (pixels, shape, planes, sequence number, times), into
/// `*out_info`. `data` stays valid until the frame is released or freed.
///
/// Threads: any thread, one at a time per frame (independent of its reader).
///
/// # Errors
/// `SHMFRAMES_ERR_FRAME_RELEASED`, `_NULL_ARGUMENT`.
///
/// # Safety
/// `frame` is NULL or a live frame handle; `out_info` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_frame_get_info(
    frame: *const shmframes_frame,
    out_info: *mut shmframes_frame_info,
) -> shmframes_result {
    ffi("shmframes_frame_get_info", || {
        // SAFETY: the caller's contract.
        let f = unsafe { frame_arg(frame) }?;
        let shape = f.shape();
        let planes = shape.planes();
        let mut plane = [shmframes_plane::default(); 3];
        for (out, p) in plane.iter_mut().zip(planes.iter()) {
            *out = shmframes_plane {
                offset: p.offset,
                stride: p.stride,
                row_bytes: p.row_bytes,
                rows: p.rows,
            };
        }
        let pixels = f.pixels();
        let info = shmframes_frame_info {
            data: pixels.as_ptr(),
            len: pixels.len(),
            shape: shape.into(),
            planes: planes.len() as u32,
            plane,
            seq: f.seq(),
            capture_ns: f.capture_ns(),
            publish_ns: f.publish_ns(),
            lost_before: f.lost_before(),
            raw: f.is_raw(),
        };
        // SAFETY: the caller's contract.
        unsafe { put(out_info, info, "out_info") }?;
        Ok(SHMFRAMES_OK)
    })
}

/// Gives the frame back: the producer may reuse its slot, and its pixels are no longer
/// yours. The handle stays valid (calls return `SHMFRAMES_ERR_FRAME_RELEASED`) until
/// `shmframes_frame_free`. Any thread (one at a time per frame).
///
/// # Errors
/// `SHMFRAMES_ERR_FRAME_RELEASED` (released already), `_NULL_ARGUMENT`.
///
/// # Safety
/// `frame` is NULL or a live frame handle.
#[no_mangle]
pub unsafe extern "C" fn shmframes_frame_release(frame: *mut shmframes_frame) -> shmframes_result {
    ffi("shmframes_frame_release", || {
        // SAFETY: the caller's contract.
        unsafe { frame_arg(frame) }?;
        // SAFETY: checked live above; used by this thread only (the caller's contract).
        drop(unsafe { &mut *frame }.frame.take());
        Ok(SHMFRAMES_OK)
    })
}

/// Frees a frame handle (NULL is ignored), releasing the frame first if it was not.
///
/// Threads: any thread, before or after its reader is freed (not while another thread uses
/// the frame).
///
/// # Safety
/// `frame` is NULL or a live frame handle, not used again.
#[no_mangle]
pub unsafe extern "C" fn shmframes_frame_free(frame: *mut shmframes_frame) {
    if frame.is_null() {
        return;
    }
    ffi("shmframes_frame_free", || {
        // SAFETY: made by `Box::into_raw` in `read_with`, freed once by contract.
        drop(unsafe { Box::from_raw(frame) });
        Ok(SHMFRAMES_OK)
    });
}

/// The live readers of channel `name`, without becoming one: up to `capacity` into
/// `out_readers` (may be NULL when `capacity` is 0) and how many there are into `*out_count`
/// (may exceed `capacity`). A raw channel has none listed. Any thread.
///
/// # Errors
/// `SHMFRAMES_ERR_CHANNEL_NOT_FOUND`, `_PERMISSION_DENIED`, `_PROTOCOL`, `_INVALID_NAME`,
/// `_NULL_ARGUMENT`.
///
/// # Safety
/// `name` is a NUL-terminated string; `out_readers` writable for `capacity` entries;
/// `out_count` writable.
#[no_mangle]
pub unsafe extern "C" fn shmframes_readers(
    name: *const std::ffi::c_char,
    out_readers: *mut shmframes_reader_info,
    capacity: usize,
    out_count: *mut usize,
) -> shmframes_result {
    ffi("shmframes_readers", || {
        // SAFETY: the caller's contract.
        let name = unsafe { str_arg(name, "name") }?;
        let list = shmframes::readers_of(name)?;
        // SAFETY: the caller's contract.
        unsafe { put_readers(&list, out_readers, capacity, out_count) }
    })
}
