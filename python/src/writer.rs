//! `shmframes.Writer`: the producer end of a channel.

use numpy::{PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use shmframes::{Deadline, Error, FrameShape, Role, Writer, WriterOptions};

use crate::errors::to_py;
use std::sync::Mutex;

use crate::handle::{deadline, forked, lock, parse_format, text, whole, Handle, Signals};
use crate::slot::PySlot;

/// Frames a `Writer` keeps for readers that fall behind by default: as `frame-producer` and
/// `shmframessink` (and the core's `WriterOptions::new`).
pub(crate) const BUFFER_FRAMES: u32 = 4;

/// The producer end of a channel: `Writer(name, width, height, format="bgr", buffer_frames=4,
/// raw=False, mode=0o600, max_readers=8)`.
///
/// - `name`: the channel to create (a stale one left by a dead producer is replaced; a live
///   one is `ProducerAlive`).
/// - `width`, `height`, `format`: the frames (`shmframes.pixel_formats()` lists the formats).
/// - `buffer_frames`: how far a reader may fall behind (see below).
/// - `raw`: header-less frames, as cpp_py_shmbuf's consumers expect (one consumer).
/// - `mode`: permission bits (owner read-write always kept; setuid, setgid, sticky refused).
/// - `max_readers`: readers served at once.
///
/// Publish with `write(array)` (one copy) or draw in place with `frame()`.
///
/// A framed channel serves up to `max_readers` readers at once (default 8), each viewing every
/// frame in place. `buffer_frames` (default 4) is how far a reader may fall behind before it
/// loses frames, or, for a lossless reader (`Reader(..., lossless=True)`), before `write` waits
/// for it (with `timeout=0`: drops the frame). While readers keep up, frames cycle through two
/// slots, which stay in the CPU cache.
#[pyclass(module = "shmframes", name = "Writer", frozen)]
pub(crate) struct PyWriter {
    pub(crate) handle: Handle<Writer>,
    pub(crate) shape: FrameShape,
    pub(crate) raw: bool,
    /// Frames published, kept when it closes (a final figure stays readable).
    published_at_close: Mutex<Option<u64>>,
}

#[pymethods]
impl PyWriter {
    #[new]
    #[pyo3(signature = (name, width, height, format = None, buffer_frames = None, raw = false, mode = None, max_readers = None))]
    #[pyo3(
        text_signature = "(name, width, height, format='bgr', buffer_frames=4, raw=False, mode=_MODE_600, max_readers=8)"
    )]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn new(
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        width: &Bound<'_, PyAny>,
        height: &Bound<'_, PyAny>,
        format: Option<&Bound<'_, PyAny>>,
        buffer_frames: Option<&Bound<'_, PyAny>>,
        raw: bool,
        mode: Option<&Bound<'_, PyAny>>,
        max_readers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let name = text(name, "name")?;
        let size = "a number of pixels from 1 to 4294967295";
        let width: u32 = whole(width, "width", size)?;
        let height: u32 = whole(height, "height", size)?;
        let format = match format {
            Some(f) => parse_format(&text(f, "format")?)?,
            None => shmframes::PixelFormat::Bgr24,
        };
        let count = |v: Option<&Bound<'_, PyAny>>, what, default| match v {
            Some(v) => whole::<u32>(v, what, "a count from 1 up"),
            None => Ok(default),
        };
        let buffer_frames = count(buffer_frames, "buffer_frames", BUFFER_FRAMES)?;
        let max_readers = count(max_readers, "max_readers", shmframes::DEFAULT_MAX_READERS)?;
        let mode = match mode {
            Some(m) => whole::<u32>(m, "mode", "permission bits such as 0o600")?,
            None => 0o600,
        };
        let signals = Signals::default();
        let mut opts = WriterOptions::new(width, height, format).map_err(|e| to_py(py, e))?;
        opts.buffer_frames = buffer_frames;
        opts.max_readers = max_readers;
        opts.raw = raw;
        opts.mode = mode;
        opts.cancel = Some(signals.cancel());
        let w = py.detach(|| Writer::create(&name, &opts)).map_err(|e| to_py(py, e))?;
        Ok(PyWriter {
            handle: Handle::new(w, name, Role::Writer, signals),
            shape: opts.shape,
            raw,
            published_at_close: Mutex::new(None),
        })
    }

    /// Publishes one frame: a uint8 array of the channel's shape (`Writer.shape`; for gray,
    /// (height, width, 1) too). Waits up to `timeout` seconds for lossless readers to make room
    /// (None: forever, 0: drop the frame at once if there is none). Returns whether the frame
    /// was published.
    #[pyo3(signature = (array, timeout = None, capture_ns = None))]
    fn write(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        capture_ns: Option<u64>,
    ) -> PyResult<bool> {
        let d = deadline(timeout, "timeout")?;
        let (expect, _) = self.shape.array_layout();
        let arr = array.cast::<numpy::PyUntypedArray>().map_err(|_| {
            PyTypeError::new_err(format!(
                "array must be a numpy array, not {}",
                array.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string())
            ))
        })?;
        if !arr.dtype().is_equiv_to(&numpy::dtype::<u8>(py)) {
            return Err(PyValueError::new_err(format!("frames are uint8, not {}", arr.dtype())));
        }
        let got = arr.shape();
        let gray_3d = expect.len() == 2 && got.len() == 3 && got[..2] == expect[..] && got[2] == 1;
        if got != expect.as_slice() && !gray_3d {
            return Err(PyValueError::new_err(format!(
                "this writer takes arrays of shape {expect:?} ({}), not {got:?}",
                self.shape
            )));
        }
        // Writers are packed, so a C-contiguous array is the frame's bytes in order: one copy,
        // with the GIL released (as numpy's own copies do). A strided view is made contiguous
        // first.
        let array = if arr.is_c_contiguous() {
            array.clone()
        } else {
            py.import("numpy")?.call_method1("ascontiguousarray", (array,))?
        };
        let typed = array
            .cast::<PyArrayDyn<u8>>()
            .map_err(|_| PyTypeError::new_err("frames are uint8 arrays"))?;
        let ro = typed.readonly();
        let pixels = ro.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?;
        self.handle.call(py, |w| w.write(pixels, capture_ns, d))
    }

    /// Room for the next frame, in place: a `FrameSlot` whose `array` you fill, then
    /// `publish()` (or use it as a context manager: published on a normal exit, discarded on an
    /// exception). Waits up to `timeout` seconds for lossless readers to make room (None:
    /// forever); returns None when there is none in time (with `timeout=0`: at once, the frame
    /// is dropped). One slot at a time: taking the next one (or calling `write`) discards an
    /// unpublished slot. On a raw channel the array is the slot's own, written at `publish()`
    /// (one copy: a raw frame may wrap around the ring's end).
    #[pyo3(signature = (timeout = None))]
    fn frame(
        slf: &Bound<'_, Self>,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<Option<PySlot>> {
        PySlot::take(slf, py, deadline(timeout, "timeout")?)
    }

    /// Ends the stream (readers get EndOfStream after the last frame) and removes the name.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(w) = self.handle.take(py) {
            *lock(&self.published_at_close) = Some(w.frames_published());
            py.detach(|| w.close()).map_err(|e| to_py(py, e))?;
        }
        Ok(())
    }

    /// Whether `close()` was called (or the `with` block ended).
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.handle.closed(py)
    }

    #[getter]
    fn name(&self) -> &str {
        &self.handle.name
    }

    /// The numpy shape `write` takes: (height, width, channels), (height, width) for gray,
    /// (height * 3 / 2, width) for NV12 and I420, (height, width, 2) for YUYV.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.shape.array_layout().0
    }

    #[getter]
    fn format(&self) -> &'static str {
        self.shape.format.name()
    }

    /// Frames published so far (the total, once closed).
    #[getter]
    fn frames_published(&self, py: Python<'_>) -> u64 {
        let at_close = (*lock(&self.published_at_close)).unwrap_or(0);
        self.peek(py, |w| w.frames_published(), at_close)
    }

    #[getter]
    fn reader_attached(&self, py: Python<'_>) -> bool {
        self.peek(py, |w| w.reader_attached(), false)
    }

    /// Readers attached now.
    #[getter]
    fn readers(&self, py: Python<'_>) -> u32 {
        self.peek(py, |w| w.readers().attached, 0)
    }

    /// A closed writer cannot be used again: `with` on it raises `Closed`.
    fn __enter__(slf: Py<Self>, py: Python<'_>) -> PyResult<Py<Self>> {
        let me = slf.get();
        if me.handle.closed(py) {
            let e = Error::Closed { role: Role::Writer, name: me.handle.name.clone() };
            return Err(to_py(py, e));
        }
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    /// A writer owns its channel's producer role in this process: it cannot move to another
    /// (`multiprocessing` pickles what it hands a child).
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(format!(
            "a shmframes.Writer cannot be pickled or sent to another process (it holds the \
             producer role of channel {:?} for this process): create the Writer in the process \
             that writes",
            self.handle.name
        )))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<shmframes.Writer {:?} {}{}>",
            self.handle.name,
            self.shape,
            if self.handle.closed(py) { " closed" } else { "" }
        )
    }
}

impl PyWriter {
    /// A figure of the open writer (`closed` once closed, or in a fork child).
    fn peek<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&Writer) -> T + Send, closed: T) -> T {
        if forked(self.handle.pid) {
            return closed;
        }
        let got = py.detach(|| crate::handle::lock(&self.handle.inner).as_ref().map(f));
        got.unwrap_or(closed)
    }

    /// Publishes a raw slot's array (one copy) without waiting: `frame()` waited for room.
    pub(crate) fn write_now(
        &self,
        py: Python<'_>,
        pixels: &[u8],
        capture_ns: Option<u64>,
    ) -> PyResult<u64> {
        self.handle.call(py, |wr| {
            wr.write(pixels, capture_ns, Deadline::NEVER)?;
            Ok(wr.frames_published() - 1)
        })
    }
}
