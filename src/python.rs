//! The Python extension module `shmframes._shmframes` (feature `python`, built by maturin).
//!
//! Frames reach Python as read-only numpy arrays viewing shared memory in place. Each array's
//! numpy *base* is a small [`Lease`] object that owns a reference to the Rust [`Frame`], so the
//! frame's bytes stay leased (never overwritten) as long as the `Frame` object or any array
//! derived from it lives, and the mapping stays valid even after the reader is closed.
//!
//! Every wait releases the GIL and wakes at least every 80 ms to let Ctrl+C through.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use numpy::ndarray::{ArrayView2, ArrayView3, ShapeBuilder};
use numpy::{PyArray2, PyArray3, PyArrayDescrMethods, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::{Error, Frame, FrameShape, PixelFormat, ProducerState, Reader, ReaderOptions, Writer, WriterOptions};

/// The Python exception classes (`shmframes.Error` and its subclasses).
mod exc {
    use pyo3::create_exception;
    use pyo3::exceptions::PyException;

    create_exception!(shmframes, Error, PyException, "Base class of every shmframes error.");
    create_exception!(shmframes, ChannelNotFound, Error, "No channel of that name exists (or none appeared in time).");
    create_exception!(shmframes, ProducerGone, Error, "The producer died without ending the stream.");
    create_exception!(shmframes, ChannelBusy, Error, "Another consumer is attached; a channel has one consumer.");
    create_exception!(shmframes, ProtocolError, Error, "Bytes in the segment break the protocol.");
    create_exception!(shmframes, EndOfStream, Error, "The producer ended the stream.");
    create_exception!(shmframes, ProducerAlive, Error, "A live producer already owns the channel name.");
}

use exc::{ChannelBusy, ChannelNotFound, EndOfStream, ProducerAlive, ProducerGone, ProtocolError};
use exc::Error as ShmError;

/// How long a wait may hold off Python's signal handlers (Ctrl+C). Equal to the reader's
/// liveness period, so an idle wait wakes once per slice, not twice.
const SIGNAL_STEP: Duration = Duration::from_millis(80);

fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::ChannelNotFound { .. } => ChannelNotFound::new_err(msg),
        Error::ProducerGone { .. } => ProducerGone::new_err(msg),
        Error::ChannelBusy { .. } => ChannelBusy::new_err(msg),
        Error::Protocol { .. } | Error::RawSizeMismatch { .. } | Error::RawWithoutShape { .. } => ProtocolError::new_err(msg),
        Error::EndOfStream { .. } => EndOfStream::new_err(msg),
        Error::ProducerAlive { .. } => ProducerAlive::new_err(msg),
        _ => ShmError::new_err(msg),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_format(s: &str) -> PyResult<PixelFormat> {
    s.parse::<PixelFormat>().map_err(PyValueError::new_err)
}

fn duration(secs: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| PyValueError::new_err(format!("{what} must be a number of seconds >= 0, not {secs}")))
}

/// Runs `step` (with the GIL released) in slices of at most [`SIGNAL_STEP`] until it returns
/// `Some` or `timeout` (`None`: forever) passes; checks for Ctrl+C between slices.
fn wait_loop<T: Send>(
    py: Python<'_>,
    timeout: Option<f64>,
    mut step: impl FnMut(Duration) -> Result<Option<T>, Error> + Send,
) -> PyResult<Option<T>> {
    let timeout = timeout.map(|t| duration(t, "timeout")).transpose()?;
    let start = Instant::now();
    loop {
        let slice = match timeout {
            Some(t) => t.saturating_sub(start.elapsed()).min(SIGNAL_STEP),
            None => SIGNAL_STEP,
        };
        if let Some(v) = py.detach(|| step(slice)).map_err(to_py)? {
            return Ok(Some(v));
        }
        py.check_signals()?;
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            return Ok(None);
        }
    }
}

/// The numpy base of frame arrays: holds the frame's lease.
#[pyclass(module = "shmframes", frozen)]
struct Lease {
    _frame: Arc<Frame>,
}

/// One frame: metadata and a zero-copy, read-only numpy view of its pixels.
///
/// The frame's bytes are leased while this object or any array derived from `array` lives.
/// `release()` (or leaving a `with frame:` block) gives up this object's hold early; arrays
/// still alive keep theirs.
#[pyclass(module = "shmframes", name = "Frame", frozen)]
struct PyFrame {
    lease: Mutex<Option<Arc<Frame>>>,
    array: Mutex<Option<Py<PyAny>>>,
    shape: FrameShape,
    #[pyo3(get)]
    seq: u64,
    #[pyo3(get)]
    capture_ns: u64,
    #[pyo3(get)]
    publish_ns: u64,
    #[pyo3(get)]
    raw: bool,
}

impl PyFrame {
    fn new(f: Frame) -> PyFrame {
        PyFrame {
            shape: f.shape(),
            seq: f.seq(),
            capture_ns: f.capture_ns(),
            publish_ns: f.publish_ns(),
            raw: f.is_raw(),
            lease: Mutex::new(Some(Arc::new(f))),
            array: Mutex::new(None),
        }
    }

    fn leased(&self) -> PyResult<Arc<Frame>> {
        lock(&self.lease).clone().ok_or_else(|| {
            ShmError::new_err("this frame was released; keep it (or call frame.copy()) before releasing it")
        })
    }
}

#[pymethods]
impl PyFrame {
    /// The pixels as a read-only numpy uint8 array, (H, W, C) or (H, W) for gray; no copy.
    #[getter]
    fn array(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        // No Rust lock is held while Python code runs (allocation can run the garbage collector
        // and switch threads): look, build unlocked, then store unless another thread won.
        if let Some(a) = lock(&self.array).as_ref() {
            return Ok(a.clone_ref(py));
        }
        let frame = self.leased()?;
        let s = self.shape;
        let (h, w, c, stride) = (s.height as usize, s.width as usize, s.format.channels() as usize, s.stride as usize);
        let ptr = frame.pixels().as_ptr();
        let base = Bound::new(py, Lease { _frame: frame })?.into_any();
        // SAFETY: `ptr` points at `stride * h` leased, immutable bytes kept alive (mapping and
        // lease) by `base`, which numpy stores as the array's base object; the shape and strides
        // stay inside those bytes (`stride >= w * c`, validated when the frame was read).
        let array: Bound<'_, PyAny> = unsafe {
            if c == 1 {
                let view = ArrayView2::from_shape_ptr((h, w).strides((stride, 1)), ptr);
                PyArray2::borrow_from_array(&view, base).into_any()
            } else {
                let view = ArrayView3::from_shape_ptr((h, w, c).strides((stride, c, 1)), ptr);
                PyArray3::borrow_from_array(&view, base).into_any()
            }
        };
        // Read-only: the bytes are the producer's ring; writing them would corrupt the stream.
        // SAFETY: `array` is the ndarray created just above (so the pointer is a live
        // PyArrayObject) and no other code has seen it yet; clearing the flag bit is what numpy's
        // own PyArray_CLEARFLAGS does, and saves a Python method call on every frame.
        unsafe {
            let raw = array.as_ptr() as *mut numpy::npyffi::PyArrayObject;
            (*raw).fields.flags &= !numpy::npyffi::flags::NPY_ARRAY_WRITEABLE;
        }
        let mut cached = lock(&self.array);
        Ok(cached.get_or_insert_with(|| array.unbind()).clone_ref(py))
    }

    /// An owned, writable copy of the pixels (safe to keep after releasing the frame).
    fn copy(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let a = self.array(py)?;
        Ok(a.bind(py).call_method0("copy")?.unbind())
    }

    /// Gives up this object's hold on the frame now (arrays still alive keep theirs).
    fn release(&self) {
        lock(&self.array).take();
        lock(&self.lease).take();
    }

    /// Whether `release()` was called.
    #[getter]
    fn released(&self) -> bool {
        lock(&self.lease).is_none()
    }

    #[getter]
    fn width(&self) -> u32 {
        self.shape.width
    }
    #[getter]
    fn height(&self) -> u32 {
        self.shape.height
    }
    #[getter]
    fn stride(&self) -> u32 {
        self.shape.stride
    }
    /// Pixel format: "bgr", "rgb", "gray", "rgba" or "bgra".
    #[getter]
    fn format(&self) -> &'static str {
        self.shape.format.name()
    }
    /// Nanoseconds from publish until now (CLOCK_MONOTONIC), or None for raw frames.
    #[getter]
    fn age_ns(&self) -> Option<u64> {
        (self.publish_ns != 0).then(|| crate::monotonic_ns().saturating_sub(self.publish_ns))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.release();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmframes.Frame #{} {}x{} {}{}{}>",
            self.seq,
            self.shape.width,
            self.shape.height,
            self.shape.format,
            if self.raw { " raw" } else { "" },
            if self.released() { " released" } else { "" }
        )
    }
}

fn raw_shape(raw: Option<(u32, u32, String)>) -> PyResult<Option<FrameShape>> {
    raw.map(|(h, w, f)| FrameShape::packed(w, h, parse_format(&f)?).map_err(PyValueError::new_err)).transpose()
}

/// The consumer end of a channel. See the module docs in `shmframes/__init__.py`.
#[pyclass(module = "shmframes", name = "Reader", frozen)]
struct PyReader {
    inner: Mutex<Option<Reader>>,
    name: String,
}

impl PyReader {
    fn with<T>(&self, f: impl FnOnce(&mut Reader) -> Result<T, Error>) -> Result<T, Error> {
        match lock(&self.inner).as_mut() {
            Some(r) => f(r),
            None => Err(Error::Config(format!("reader of channel {:?} is closed", self.name))),
        }
    }
}

#[pymethods]
impl PyReader {
    #[new]
    #[pyo3(signature = (name = "shm_video", timeout = 0.0, raw = None, follow = false))]
    fn new(py: Python<'_>, name: &str, timeout: f64, raw: Option<(u32, u32, String)>, follow: bool) -> PyResult<Self> {
        let opts = ReaderOptions { timeout: Duration::ZERO, raw: raw_shape(raw)?, follow };
        let total = duration(timeout, "timeout")?;
        // Wait for the channel in slices, so that Ctrl+C works while waiting.
        let start = Instant::now();
        let reader = loop {
            let slice = total.saturating_sub(start.elapsed()).min(SIGNAL_STEP);
            let o = ReaderOptions { timeout: slice, ..opts.clone() };
            match py.detach(|| Reader::open(name, &o)) {
                Ok(r) => break r,
                // Not there yet, or a foreign producer still setting it up: retry while time remains.
                Err(Error::ChannelNotFound { .. } | Error::Protocol { .. }) if start.elapsed() < total => py.check_signals()?,
                Err(Error::ChannelNotFound { name, path, .. }) if !total.is_zero() => {
                    return Err(to_py(Error::ChannelNotFound { name, path, waited: Some(total) }))
                }
                Err(e) => return Err(to_py(e)),
            }
        };
        Ok(PyReader { name: reader.name().to_owned(), inner: Mutex::new(Some(reader)) })
    }

    /// The next frame, waiting up to `timeout` seconds (None: forever); None on timeout.
    /// Raises EndOfStream after the last frame, ProducerGone if the producer died.
    #[pyo3(signature = (timeout = None))]
    fn read(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyFrame>> {
        Ok(wait_loop(py, timeout, |slice| self.with(|r| r.read(Some(slice))))?.map(PyFrame::new))
    }

    /// The newest frame, skipping (and releasing) every older one; waits like `read`.
    #[pyo3(signature = (timeout = None))]
    fn latest(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyFrame>> {
        Ok(wait_loop(py, timeout, |slice| self.with(|r| r.latest(Some(slice))))?.map(PyFrame::new))
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Blocks for the next frame; the iteration ends at end of stream.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyFrame>> {
        match self.read(py, None) {
            Err(e) if e.is_instance_of::<EndOfStream>(py) => Ok(None),
            other => other,
        }
    }

    /// Stops reading. Frames still alive stay valid (they keep the channel's consumer role
    /// until they are released).
    fn close(&self) {
        lock(&self.inner).take();
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.inner).is_none()
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// "live", "unknown" (a producer that does not announce liveness), "ended" or "gone".
    #[getter]
    fn producer_state(&self) -> PyResult<&'static str> {
        let s = self.with(|r| Ok(r.producer_state())).map_err(to_py)?;
        Ok(match s {
            ProducerState::Live => "live",
            ProducerState::Unknown => "unknown",
            ProducerState::Ended => "ended",
            ProducerState::Gone => "gone",
        })
    }

    /// Frames currently held by this reader's frames (and arrays).
    #[getter]
    fn frames_held(&self) -> PyResult<usize> {
        self.with(|r| Ok(r.frames_held())).map_err(to_py)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("<shmframes.Reader {:?}{}>", self.name, if self.closed() { " closed" } else { "" })
    }
}

/// The producer end of a channel.
///
/// `buffer_frames` (default 2) is how far the reader may fall behind before `write` waits (or,
/// with `timeout=0`, drops). While the reader keeps up, frames cycle through that many slots
/// at the start of the ring, which stay in the CPU cache: with 2, `write` of a 1080p frame
/// takes 0.29-0.40 ms here, with 4 0.35-0.54 ms. A `write` that waits loses nothing by a small
/// buffer; raise it for a dropping writer whose reader has hiccups.
#[pyclass(module = "shmframes", name = "Writer", frozen)]
struct PyWriter {
    inner: Mutex<Option<Writer>>,
    name: String,
    shape: FrameShape,
}

#[pymethods]
impl PyWriter {
    #[new]
    #[pyo3(signature = (name, width, height, format = "bgr", buffer_frames = 2, raw = false, mode = 0o600))]
    fn new(name: &str, width: u32, height: u32, format: &str, buffer_frames: u32, raw: bool, mode: u32) -> PyResult<Self> {
        let mut opts = WriterOptions::new(width, height, parse_format(format)?).map_err(to_py)?;
        opts.buffer_frames = buffer_frames;
        opts.raw = raw;
        opts.mode = mode;
        let w = Writer::create(name, &opts).map_err(to_py)?;
        Ok(PyWriter { name: w.name().to_owned(), shape: opts.shape, inner: Mutex::new(Some(w)) })
    }

    /// Publishes one frame: a uint8 array of shape (height, width, channels), or (height,
    /// width) for gray. Waits up to `timeout` seconds for room (None: forever, 0: drop at once
    /// if full). Returns whether the frame was published.
    #[pyo3(signature = (array, timeout = None, capture_ns = None))]
    fn write(&self, py: Python<'_>, array: &Bound<'_, PyAny>, timeout: Option<f64>, capture_ns: Option<u64>) -> PyResult<bool> {
        let s = self.shape;
        let c = s.format.channels() as usize;
        let expect: Vec<usize> =
            if c == 1 { vec![s.height as usize, s.width as usize] } else { vec![s.height as usize, s.width as usize, c] };
        let arr = array
            .cast::<numpy::PyUntypedArray>()
            .map_err(|_| PyValueError::new_err("write() takes a numpy array"))?;
        if !arr.dtype().is_equiv_to(&numpy::dtype::<u8>(py)) {
            return Err(PyValueError::new_err(format!("frames are uint8, not {}", arr.dtype())));
        }
        let got = arr.shape();
        let gray_3d = c == 1 && got == [s.height as usize, s.width as usize, 1];
        if got != expect.as_slice() && !gray_3d {
            return Err(PyValueError::new_err(format!("this writer takes arrays of shape {expect:?} ({}), not {got:?}", s)));
        }
        // Wait for room with the GIL released, then copy while holding it (the array is a
        // Python object that other threads could otherwise change or free mid-copy). Another
        // Python thread writing to the same Writer may take the room first: then wait again.
        let start = Instant::now();
        let mut guard = loop {
            let left = timeout.map(|t| (t - start.elapsed().as_secs_f64()).max(0.0));
            if timeout != Some(0.0) {
                let room = wait_loop(py, left, |slice| match lock(&self.inner).as_mut() {
                    Some(w) => w.wait_for_room(Some(slice)).map(|ok| ok.then_some(())),
                    None => Err(Error::Config("writer is closed".into())),
                })?;
                if room.is_none() {
                    return Ok(false);
                }
            }
            let mut guard = lock(&self.inner);
            let w = guard.as_mut().ok_or_else(|| ShmError::new_err("writer is closed"))?;
            if w.wait_for_room(Some(Duration::ZERO)).map_err(to_py)? {
                break guard;
            }
            if timeout == Some(0.0) || left.is_some_and(|l| l <= 0.0) {
                return Ok(false);
            }
        };
        let w = guard.as_mut().expect("checked above");
        let Some(mut slot) = w.try_frame().map_err(to_py)? else { return Ok(false) };
        let row = s.width as usize * c;
        let dst = slot.pixels();
        let a = array.cast::<numpy::PyArrayDyn<u8>>().map_err(|_| PyValueError::new_err("frames are uint8 arrays"))?;
        let ro = a.readonly();
        let view = ro.as_array();
        if let Some(contiguous) = view.as_slice() {
            // Writers are packed (stride == row bytes): one memcpy of the whole frame.
            dst.copy_from_slice(contiguous);
        } else {
            // Strided input (a slice or a transposed view): copy element by element per row.
            let flat = view.to_shape((s.height as usize, row)).map_err(|e| PyValueError::new_err(e.to_string()))?;
            for (y, src) in flat.rows().into_iter().enumerate() {
                for (d, v) in dst[y * s.stride as usize..][..row].iter_mut().zip(src.iter()) {
                    *d = *v;
                }
            }
        }
        if let Some(t) = capture_ns {
            slot.set_capture_ns(t);
        }
        slot.publish();
        Ok(true)
    }

    /// Ends the stream (readers get EndOfStream after the last frame) and removes the name.
    fn close(&self) -> PyResult<()> {
        if let Some(w) = lock(&self.inner).take() {
            w.close().map_err(to_py)?;
        }
        Ok(())
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// (height, width, channels) or (height, width) for gray.
    #[getter]
    fn shape(&self) -> Vec<u32> {
        let s = self.shape;
        if s.format.channels() == 1 {
            vec![s.height, s.width]
        } else {
            vec![s.height, s.width, s.format.channels()]
        }
    }

    #[getter]
    fn format(&self) -> &'static str {
        self.shape.format.name()
    }

    #[getter]
    fn frames_published(&self) -> u64 {
        lock(&self.inner).as_ref().map_or(0, |w| w.frames_published())
    }

    #[getter]
    fn reader_attached(&self) -> bool {
        lock(&self.inner).as_ref().is_some_and(|w| w.reader_attached())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<shmframes.Writer {:?} {}>", self.name, self.shape)
    }
}

/// Nanoseconds of CLOCK_MONOTONIC, the clock of `Frame.capture_ns` and `Frame.publish_ns`
/// (the same clock as `time.monotonic_ns()` on Linux).
#[pyfunction]
fn monotonic_ns() -> u64 {
    crate::monotonic_ns()
}

#[pymodule]
fn _shmframes(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyReader>()?;
    m.add_class::<PyWriter>()?;
    m.add_class::<PyFrame>()?;
    m.add_function(wrap_pyfunction!(monotonic_ns, m)?)?;
    m.add("Error", py.get_type::<ShmError>())?;
    m.add("ChannelNotFound", py.get_type::<ChannelNotFound>())?;
    m.add("ProducerGone", py.get_type::<ProducerGone>())?;
    m.add("ChannelBusy", py.get_type::<ChannelBusy>())?;
    m.add("ProtocolError", py.get_type::<ProtocolError>())?;
    m.add("EndOfStream", py.get_type::<EndOfStream>())?;
    m.add("ProducerAlive", py.get_type::<ProducerAlive>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
