//! The Python extension module `shmframes._shmframes` (crate `shmframes-python`, built by maturin).
//!
//! Frames reach Python as read-only numpy arrays viewing shared memory in place. Each array's
//! numpy *base* is a small `Lease` object that owns a reference to the Rust [`Frame`], so the
//! frame's bytes stay leased (never overwritten) as long as the `Frame` object or any array
//! derived from it lives, and the mapping stays valid even after the reader is closed.
//!
//! Every wait releases the GIL. Ctrl+C ends it at once on a framed channel (the core's wait
//! sleeps on a word its signal hook bumps), and within 80 ms elsewhere.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use numpy::ndarray::{ArrayViewD, IxDyn, ShapeBuilder};
use numpy::{PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use shmframes::stats::Stats;
use shmframes::{
    Cancel, Deadline, Error, Frame, FrameShape, Loan, PixelFormat, ProducerState, Reader,
    ReaderOptions, Start, Writer, WriterOptions,
};

/// How long a wait may hold off Python's signal handlers (Ctrl+C) where the core cannot sleep
/// on its signal word (kernels before 5.16, raw channels): the period of the check those waits
/// run (equal to the reader's liveness period, so such a wait wakes once per period, not
/// twice). Framed channels on Linux 5.16+ wake for a signal at once and never poll.
const SIGNAL_PERIOD: Duration = Duration::from_millis(80);

/// The exception class for an error: one per kind users catch, defined in
/// `shmframes/errors.py` (each also a subclass of the builtin that fits, which only a Python
/// class statement can express), or a builtin for what the caller passed wrongly.
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let msg = e.full_message();
    let class = match e {
        Error::ChannelNotFound { .. } => "ChannelNotFound",
        Error::PermissionDenied { .. } => "PermissionDenied",
        Error::NameTaken { .. } | Error::ForeignSegment { .. } | Error::SymbolicLink { .. } => {
            "NameTaken"
        }
        Error::ProducerAlive { .. } => "ProducerAlive",
        Error::ChannelBusy { .. } => "ChannelBusy",
        Error::ProducerGone { .. } => "ProducerGone",
        Error::EndOfStream { .. } => "EndOfStream",
        Error::Protocol { .. } | Error::RawSizeMismatch { .. } | Error::RawWithoutShape { .. } => {
            "ProtocolError"
        }
        Error::NoSpace { .. } => "NoSpace",
        Error::Closed { .. } => "Closed",
        Error::HoldsEverySlot { .. } => "HoldsEverySlot",
        Error::ForkedChild { .. } => "ForkedChild",
        Error::LoanGone { .. } => "Closed",
        Error::InvalidName { .. }
        | Error::Shape(_)
        | Error::NoBufferFrames
        | Error::RingTooLarge { .. }
        | Error::RawNeedsPackedRows { .. }
        | Error::WrongFrameSize { .. }
        | Error::BadMode { .. } => return PyValueError::new_err(msg),
        _ => "Error",
    };
    exception(py, class, msg)
}

/// An exception of the class named `class` in `shmframes.errors`.
fn exception(py: Python<'_>, class: &str, msg: String) -> PyErr {
    match error_class(py, class) {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(import_failed) => import_failed,
    }
}

fn error_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = ERRORS.get_or_try_init(py, || py.import("shmframes.errors").map(Bound::unbind))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_format(s: &str) -> PyResult<PixelFormat> {
    s.parse::<PixelFormat>().map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A timeout in seconds as Python callers write it: `None` or `inf` wait for ever.
fn deadline(timeout: Option<f64>, what: &str) -> PyResult<Deadline> {
    match timeout {
        None => Ok(Deadline::NEVER),
        Some(t) if t == f64::INFINITY => Ok(Deadline::NEVER),
        Some(t) => Duration::try_from_secs_f64(t).map(Deadline::from).map_err(|_| {
            PyValueError::new_err(format!(
                "{what} must be a number of seconds >= 0 (or None: for ever), not {t}"
            ))
        }),
    }
}

/// Lets Ctrl+C (and any signal handler that raises) end a wait: the core runs the check when
/// a signal arrives (or every [`SIGNAL_PERIOD`] where it must poll); the exception the handler
/// raised is kept here and raised when the core returns [`Error::Interrupted`].
#[derive(Clone, Default)]
struct Signals {
    raised: Arc<Mutex<Option<PyErr>>>,
}

impl Signals {
    fn cancel(&self) -> Cancel {
        let raised = self.raised.clone();
        Cancel::on_signals(SIGNAL_PERIOD, move || {
            Python::attach(|py| match py.check_signals() {
                Ok(()) => false,
                Err(e) => {
                    *lock(&raised) = Some(e);
                    true
                }
            })
        })
    }

    /// The Python exception for a core error: the handler's exception for an interrupt.
    fn to_py(&self, py: Python<'_>, e: Error) -> PyErr {
        if let Error::Interrupted { .. } = e {
            if let Some(raised) = lock(&self.raised).take() {
                return raised;
            }
        }
        to_py(py, e)
    }
}

/// The numpy base of frame arrays: holds the frame's lease.
#[pyclass(module = "shmframes", frozen)]
struct Lease {
    _frame: Arc<Frame>,
}

/// The numpy base of a slot's array: keeps the lent address mapped (zero pages once the slot
/// is published or discarded).
#[pyclass(module = "shmframes", frozen)]
struct LentBase {
    _lent: shmframes::Lent,
}

/// Room for one frame in the channel, lent by `Writer.frame()`: draw into `array` in place, then
/// `publish()` (or leave a `with` block normally); `discard()` (or an exception in the block)
/// drops the frame. After either, `array` and every view of it reach no frame any more: they
/// read zeros, and what is written through them goes nowhere.
#[pyclass(module = "shmframes", name = "FrameSlot")]
struct PySlot {
    writer: Py<PyWriter>,
    /// The loan (framed channels); `None` once published or discarded, or for a raw channel.
    loan: Option<Loan>,
    /// The array handed out: a view of the lent slot, or (raw channels) an array of our own.
    array: Option<Py<PyAny>>,
    /// Raw channels: the frame is drawn here and written at publish.
    raw: bool,
    done: bool,
    seq: Option<u64>,
    capture_ns: u64,
}

impl PySlot {
    fn check_open(&self) -> PyResult<()> {
        if self.done {
            let w = self.writer.get();
            return Err(to_py_closed(&w.name));
        }
        Ok(())
    }
}

fn to_py_closed(name: &str) -> PyErr {
    Python::attach(|py| to_py(py, Error::LoanGone { name: name.to_owned() }))
}

#[pymethods]
impl PySlot {
    /// The frame's pixels as a writable numpy uint8 array, in place in shared memory, in the
    /// channel's shape (`Writer.shape`). Fill it: `cap.read(image=slot.array)`,
    /// `cv2.resize(src, (w, h), dst=slot.array)`, `np.copyto(slot.array, src)`.
    #[getter]
    fn array(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        Ok(self.array.as_ref().expect("an open slot has its array").clone_ref(py))
    }

    /// The sequence number the frame will carry (the writer's next one unless set).
    #[getter]
    fn seq(&self, py: Python<'_>) -> PyResult<u64> {
        match self.seq {
            Some(s) => Ok(s),
            None => self.writer.get().call(py, |w| Ok(w.next_seq())),
        }
    }
    #[setter]
    fn set_seq(&mut self, seq: u64) {
        self.seq = Some(seq);
    }

    /// Capture time, CLOCK_MONOTONIC ns (default: when the slot was taken; see
    /// `shmframes.monotonic_ns()`).
    #[getter]
    fn capture_ns(&self) -> u64 {
        self.capture_ns
    }
    #[setter]
    fn set_capture_ns(&mut self, ns: u64) {
        self.capture_ns = ns;
    }

    /// Whether `publish()` or `discard()` was called. (A slot the writer discarded by taking
    /// room for a newer frame says so only when it is used: its `publish()` raises `Closed`.)
    #[getter]
    fn done(&self) -> bool {
        self.done
    }

    /// Makes the frame visible to readers; returns its sequence number. The array stops
    /// reaching the channel first, so nothing written through it afterwards changes a frame.
    fn publish(&mut self, py: Python<'_>) -> PyResult<u64> {
        self.check_open()?;
        self.done = true;
        let (seq, capture) = (self.seq, Some(self.capture_ns));
        let w = self.writer.get();
        if self.raw {
            let array = self.array.take().expect("an open slot has its array");
            let typed = array
                .bind(py)
                .cast::<PyArrayDyn<u8>>()
                .map_err(|_| PyTypeError::new_err("the slot's array"))?
                .clone();
            let ro = typed.readonly();
            let pixels = ro.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?;
            // A raw channel's frame may wrap around the ring's end: it is drawn in an array of
            // our own and written (one copy). `frame()` waited for the room, which only its
            // one consumer could take back (it never does), so this does not wait. Raw frames
            // carry no sequence number.
            let _ = seq;
            return w.call(py, |wr| {
                wr.write(pixels, capture, Deadline::NEVER)?;
                Ok(wr.frames_published() - 1)
            });
        }
        let loan = self.loan.take().expect("an open framed slot has its loan");
        w.call(py, |wr| wr.publish_loan(loan, seq, capture))
    }

    /// Drops the frame: readers never see it. Nothing happens if it is done already.
    fn discard(&mut self, py: Python<'_>) {
        self.done = true;
        self.array = None;
        if let Some(loan) = self.loan.take() {
            let w = self.writer.get();
            let _ = w.call(py, |wr| {
                wr.discard_loan(loan);
                Ok(())
            });
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Publishes on a normal exit; discards the frame when the block raised (nothing half
    /// drawn is ever published).
    fn __exit__(
        &mut self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        match (exc_type, self.done) {
            (_, true) => {}
            (None, false) => {
                self.publish(py)?;
            }
            (Some(_), false) => self.discard(py),
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let w = self.writer.get();
        format!(
            "<shmframes.FrameSlot {:?} {}{}>",
            w.name,
            w.shape,
            if self.done { " done" } else { "" }
        )
    }
}

impl Drop for PySlot {
    fn drop(&mut self) {
        // Unpublished and forgotten: discard it now unless the writer is busy (in a wait: the
        // room it takes next discards this frame anyway).
        if let Some(loan) = self.loan.take() {
            if forked(self.writer.get().pid) {
                return; // the parent's loan
            }
            if let Ok(mut g) = self.writer.get().inner.try_lock() {
                if let Some(w) = g.as_mut() {
                    w.discard_loan(loan);
                }
            }
        }
    }
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
    /// Frames this reader lost just before this one (overwritten before it read them).
    #[pyo3(get)]
    lost_before: u64,
}

impl PyFrame {
    fn new(f: Frame) -> PyFrame {
        PyFrame {
            shape: f.shape(),
            seq: f.seq(),
            capture_ns: f.capture_ns(),
            publish_ns: f.publish_ns(),
            raw: f.is_raw(),
            lost_before: f.lost_before(),
            lease: Mutex::new(Some(Arc::new(f))),
            array: Mutex::new(None),
        }
    }

    fn leased(&self, py: Python<'_>) -> PyResult<Arc<Frame>> {
        lock(&self.lease).clone().ok_or_else(|| {
            exception(
                py,
                "Closed",
                "this frame was released; keep it (or call frame.copy()) before releasing it"
                    .into(),
            )
        })
    }
}

#[pymethods]
impl PyFrame {
    /// The pixels as a read-only numpy uint8 array, no copy: (H, W, C), (H, W) for gray,
    /// (H + H/2, W) for NV12 and I420, (H, W, 2) for YUYV.
    #[getter]
    fn array(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        // No Rust lock is held while Python code runs (allocation can run the garbage collector
        // and switch threads): look, build unlocked, then store unless another thread won.
        if let Some(a) = lock(&self.array).as_ref() {
            return Ok(a.clone_ref(py));
        }
        let frame = self.leased(py)?;
        let (dims, strides) = self.shape.array_layout();
        let ptr = frame.pixels().as_ptr();
        let base = Bound::new(py, Lease { _frame: frame })?.into_any();
        // SAFETY: `ptr` points at the frame's pixel bytes, leased and immutable, kept alive
        // (mapping and lease) by `base`, which numpy stores as the array's base object;
        // `array_layout` gives dimensions and strides that stay inside those bytes for a
        // validated shape (checked when the frame was read).
        let array: Bound<'_, PyAny> = unsafe {
            let view = ArrayViewD::from_shape_ptr(IxDyn(&dims).strides(IxDyn(&strides)), ptr);
            PyArrayDyn::borrow_from_array(&view, base).into_any()
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

    /// numpy's array protocol: `np.asarray(frame)` is `frame.array` (no copy; read-only);
    /// `copy=True` or another `dtype` gives a new array, `copy=False` refuses to make one.
    #[pyo3(signature = (dtype = None, copy = None))]
    fn __array__(
        &self,
        py: Python<'_>,
        dtype: Option<&Bound<'_, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        let a = self.array(py)?;
        let a = a.bind(py);
        let converts = match dtype {
            Some(d) => !py.import("numpy")?.call_method1("dtype", (d,))?.eq(a.getattr("dtype")?)?,
            None => false,
        };
        match (copy, converts) {
            (Some(false), true) => Err(PyValueError::new_err(
                "a frame is uint8: converting it to another dtype copies (pass copy=None or True)",
            )),
            (_, true) => Ok(a.call_method1("astype", (dtype.expect("converts"),))?.unbind()),
            (Some(true), false) => Ok(a.call_method0("copy")?.unbind()),
            _ => Ok(a.clone().unbind()),
        }
    }

    /// DLPack export (`np.from_dlpack(frame)`, and libraries that ask for DLPack 1.0, whose
    /// read-only flag a frame needs): the pixels in place, kept leased until the consumer lets
    /// go. Consumers that ask for an older DLPack get a `BufferError` (numpy's: the version
    /// cannot say "read-only"); pass them `frame.array` through their numpy path instead.
    #[pyo3(signature = (*, stream = None, max_version = None, dl_device = None, copy = None))]
    fn __dlpack__(
        &self,
        py: Python<'_>,
        stream: Option<&Bound<'_, PyAny>>,
        max_version: Option<&Bound<'_, PyAny>>,
        dl_device: Option<&Bound<'_, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        let a = self.array(py)?;
        // Only what the consumer passed: numpy before 2.1 takes `stream` alone.
        let kwargs = PyDict::new(py);
        for (key, value) in
            [("stream", stream), ("max_version", max_version), ("dl_device", dl_device)]
        {
            if let Some(v) = value {
                kwargs.set_item(key, v)?;
            }
        }
        if let Some(c) = copy {
            kwargs.set_item("copy", c)?;
        }
        Ok(a.bind(py).call_method("__dlpack__", (), Some(&kwargs))?.unbind())
    }

    /// `(1, 0)`: CPU memory (DLPack's kDLCPU, device 0).
    fn __dlpack_device__(&self) -> (i32, i32) {
        (1, 0)
    }

    /// The array's shape, as `frame.array.shape` (a tuple; without making the array).
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.shape.array_layout().0)
    }

    /// The array's strides in bytes, as `frame.array.strides` (a tuple).
    #[getter]
    fn strides<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.shape.array_layout().1)
    }

    /// `numpy.uint8`, as `frame.array.dtype`.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("numpy")?.call_method1("dtype", ("uint8",))
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
    /// Pixel format name (see `shmframes.pixel_formats()`).
    #[getter]
    fn format(&self) -> &'static str {
        self.shape.format.name()
    }
    /// Nanoseconds from publish until now (CLOCK_MONOTONIC), or None for raw frames.
    #[getter]
    fn age_ns(&self) -> Option<u64> {
        (self.publish_ns != 0).then(|| shmframes::monotonic_ns().saturating_sub(self.publish_ns))
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

/// A raw shape as Python callers give it: `"WIDTHxHEIGHT"` (the command line's spelling, with
/// `raw_format`), or `(height, width, format)`, numpy's order.
fn raw_shape(raw: Option<&Bound<'_, PyAny>>, raw_format: &str) -> PyResult<Option<FrameShape>> {
    let Some(raw) = raw else { return Ok(None) };
    let (w, h, f) = if let Ok(text) = raw.extract::<String>() {
        let (w, h) = shmframes::format::parse_size(&text)
            .map_err(|e| PyValueError::new_err(format!("raw={text:?}: {e}")))?;
        (w, h, raw_format.to_owned())
    } else if let Ok((h, w, f)) = raw.extract::<(u32, u32, String)>() {
        (w, h, f)
    } else {
        return Err(PyTypeError::new_err(format!(
            "raw is \"WIDTHxHEIGHT\" (e.g. raw=\"640x480\", raw_format=\"bgr\") or (height, width, format), not {}",
            raw.repr()?
        )));
    };
    FrameShape::packed(w, h, parse_format(&f)?)
        .map(Some)
        .map_err(|e| PyValueError::new_err(format!("raw frame shape: {e}")))
}

/// The consumer end of a channel: `Reader(name="shm_video", timeout=0.0, raw=None,
/// follow=False, lossless=False, start="newest", raw_format="bgr")`.
///
/// - `name`: the channel (what `frame-producer --name` or `Writer(name, ...)` created).
/// - `timeout`: seconds to wait for the channel to appear (0: fail at once with
///   `ChannelNotFound`; None or inf: for ever).
/// - `raw`: header-less frames (cpp_py_shmbuf's producer): `"WIDTHxHEIGHT"` with `raw_format`,
///   as the command line spells it, or `(height, width, format)` (whose format is used).
/// - `follow`: survive producer restarts (a new producer under the name is picked up).
/// - `lossless`: never lose a frame to a producer that waits for room (`--when-full wait`).
/// - `start`: "newest" (the frame being published) or "oldest" (the oldest one kept).
///
/// Iterate it (`for frame in reader`) or call `read(timeout)` / `latest(timeout)`.
#[pyclass(module = "shmframes", name = "Reader", frozen)]
struct PyReader {
    inner: Mutex<Option<Reader>>,
    name: String,
    signals: Signals,
    /// The process that opened it (see `forked`).
    pid: u32,
}

/// Whether this is a fork child of process `pid`: then the handle is its parent's, and its lock
/// may have been held by a thread the child does not have (locking it would hang for ever).
fn forked(pid: u32) -> bool {
    std::process::id() != pid
}

/// Runs `f` on the open handle in `slot` with the GIL released: waiting for the lock too, since
/// a wait in another thread holds it and needs the GIL for its signal checks. A closed handle
/// is [`Error::Closed`].
#[allow(clippy::too_many_arguments)]
fn call_detached<H: Send, T: Send>(
    py: Python<'_>,
    slot: &Mutex<Option<H>>,
    signals: &Signals,
    role: shmframes::Role,
    name: &str,
    pid: u32,
    f: impl FnOnce(&mut H) -> Result<T, Error> + Send,
) -> PyResult<T> {
    if forked(pid) {
        return Err(to_py(py, Error::ForkedChild { name: name.to_owned(), role, owner: pid }));
    }
    let r = py.detach(|| match lock(slot).as_mut() {
        Some(h) => f(h),
        None => Err(Error::Closed { role, name: name.to_owned() }),
    });
    r.map_err(|e| signals.to_py(py, e))
}

impl PyReader {
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Reader) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        call_detached(
            py,
            &self.inner,
            &self.signals,
            shmframes::Role::Reader,
            &self.name,
            self.pid,
            f,
        )
    }
}

#[pymethods]
impl PyReader {
    #[new]
    #[pyo3(signature = (name = "shm_video", timeout = 0.0, raw = None, follow = false, lossless = false, start = "newest", raw_format = "bgr"))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn new(
        py: Python<'_>,
        name: &str,
        timeout: Option<f64>,
        raw: Option<&Bound<'_, PyAny>>,
        follow: bool,
        lossless: bool,
        start: &str,
        raw_format: &str,
    ) -> PyResult<Self> {
        let signals = Signals::default();
        let timeout = match deadline(timeout, "timeout")?.remaining() {
            Some(t) => t,
            None => Duration::MAX,
        };
        let start = match start {
            "newest" => Start::Newest,
            "oldest" => Start::Oldest,
            other => {
                return Err(PyValueError::new_err(format!(
                    "start must be \"newest\" or \"oldest\", not {other:?}"
                )))
            }
        };
        let opts = ReaderOptions {
            timeout,
            raw: raw_shape(raw, raw_format)?,
            follow,
            cancel: Some(signals.cancel()),
            lossless,
            start,
        };
        let reader = py.detach(|| Reader::open(name, &opts)).map_err(|e| signals.to_py(py, e))?;
        Ok(PyReader {
            name: reader.name().to_owned(),
            inner: Mutex::new(Some(reader)),
            signals,
            pid: std::process::id(),
        })
    }

    /// The next frame, waiting up to `timeout` seconds (None: forever); None on timeout.
    /// Raises EndOfStream after the last frame, ProducerGone if the producer died.
    #[pyo3(signature = (timeout = None))]
    fn read(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyFrame>> {
        let d = deadline(timeout, "timeout")?;
        Ok(self.call(py, |r| r.read(d))?.map(PyFrame::new))
    }

    /// The newest frame, skipping (and releasing) every older one; waits like `read`.
    #[pyo3(signature = (timeout = None))]
    fn latest(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyFrame>> {
        let d = deadline(timeout, "timeout")?;
        Ok(self.call(py, |r| r.latest(d))?.map(PyFrame::new))
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Blocks for the next frame; the iteration ends at end of stream.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyFrame>> {
        match self.read(py, None) {
            Err(e) if e.is_instance(py, error_class(py, "EndOfStream")?.as_any()) => Ok(None),
            other => other,
        }
    }

    /// Stops reading. Frames still alive stay valid (they keep the channel's consumer role
    /// until they are released).
    /// Detaches (frames still held keep what they hold). In a fork child: nothing (the reader
    /// is its parent's).
    fn close(&self, py: Python<'_>) {
        if forked(self.pid) {
            return;
        }
        let reader = py.detach(|| lock(&self.inner).take());
        drop(reader);
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| lock(&self.inner).is_none())
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// "live", "unknown" (a producer that does not announce liveness), "ended" or "gone".
    #[getter]
    fn producer_state(&self, py: Python<'_>) -> PyResult<&'static str> {
        let s = self.call(py, |r| Ok(r.producer_state()))?;
        Ok(match s {
            ProducerState::Live => "live",
            ProducerState::Unknown => "unknown",
            ProducerState::Ended => "ended",
            ProducerState::Gone => "gone",
        })
    }

    /// Frames currently held by this reader's frames (and arrays).
    #[getter]
    fn frames_held(&self, py: Python<'_>) -> PyResult<usize> {
        self.call(py, |r| Ok(r.frames_held()))
    }

    /// Frames this reader lost: overwritten before it read them (it fell behind by more than
    /// the channel holds). Frames `latest()` skipped are not counted.
    #[getter]
    fn dropped(&self, py: Python<'_>) -> PyResult<u64> {
        self.call(py, |r| Ok(r.dropped()))
    }

    /// Frames published that this reader has not read yet (None on a raw channel).
    #[getter]
    fn lag(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.call(py, |r| Ok(r.lag()))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<shmframes.Reader {:?}{}>",
            self.name,
            if self.closed(py) { " closed" } else { "" }
        )
    }
}

/// The producer end of a channel: `Writer(name, width, height, format="bgr", buffer_frames=2,
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
/// frame in place. `buffer_frames` (default 2) is how far a reader may fall behind before it
/// loses frames, or, for a lossless reader (`Reader(..., lossless=True)`), before `write` waits
/// for it (with `timeout=0`: drops the frame). While readers keep up, frames cycle through two
/// slots, which stay in the CPU cache.
#[pyclass(module = "shmframes", name = "Writer", frozen)]
struct PyWriter {
    inner: Mutex<Option<Writer>>,
    name: String,
    shape: FrameShape,
    raw: bool,
    signals: Signals,
    /// The process that created it (see `forked`).
    pid: u32,
}

impl PyWriter {
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Writer) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        call_detached(
            py,
            &self.inner,
            &self.signals,
            shmframes::Role::Writer,
            &self.name,
            self.pid,
            f,
        )
    }
}

#[pymethods]
impl PyWriter {
    #[new]
    #[pyo3(signature = (name, width, height, format = "bgr", buffer_frames = 2, raw = false, mode = 0o600, max_readers = 8))]
    #[pyo3(
        text_signature = "(name, width, height, format='bgr', buffer_frames=2, raw=False, mode=0o600, max_readers=8)"
    )]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn new(
        py: Python<'_>,
        name: &str,
        width: u32,
        height: u32,
        format: &str,
        buffer_frames: u32,
        raw: bool,
        mode: u32,
        max_readers: u32,
    ) -> PyResult<Self> {
        let signals = Signals::default();
        let mut opts =
            WriterOptions::new(width, height, parse_format(format)?).map_err(|e| to_py(py, e))?;
        opts.buffer_frames = buffer_frames;
        opts.max_readers = max_readers;
        opts.raw = raw;
        opts.mode = mode;
        opts.cancel = Some(signals.cancel());
        let w = py.detach(|| Writer::create(name, &opts)).map_err(|e| to_py(py, e))?;
        Ok(PyWriter {
            name: w.name().to_owned(),
            shape: opts.shape,
            raw,
            inner: Mutex::new(Some(w)),
            signals,
            pid: std::process::id(),
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
        let arr = array
            .cast::<numpy::PyUntypedArray>()
            .map_err(|_| PyTypeError::new_err("write() takes a numpy array"))?;
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
        self.call(py, |w| w.write(pixels, capture_ns, d))
    }

    /// Room for the next frame, lent in place: a `FrameSlot` whose `array` you fill, then
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
        let d = deadline(timeout, "timeout")?;
        let w = slf.get();
        let (dims, strides) = w.shape.array_layout();
        // Stamped when the slot is in hand (after any wait for room).
        let slot = |loan, array, raw| PySlot {
            writer: slf.clone().unbind(),
            loan,
            array: Some(array),
            raw,
            done: false,
            seq: None,
            capture_ns: shmframes::monotonic_ns(),
        };
        if w.raw {
            if !w.call(py, |wr| wr.wait_for_room(d))? {
                return Ok(None);
            }
            let array = py.import("numpy")?.call_method1("zeros", (dims, "uint8"))?.unbind();
            return Ok(Some(slot(None, array, true)));
        }
        let lent = w.call(py, |wr| {
            let Some(loan) = wr.loan(d)? else { return Ok(None) };
            let px = wr.lend_pixels(&loan)?.expect("a framed channel lends its slots");
            Ok(Some((loan, px.ptr.as_ptr() as usize, px.owner)))
        })?;
        let Some((loan, ptr, owner)) = lent else { return Ok(None) };
        let base = Bound::new(py, LentBase { _lent: owner })?.into_any();
        // SAFETY: `ptr` is the first of the frame's pixel bytes in the lent window, mapped for
        // as long as `base` (numpy's base object for the array) lives; `array_layout` gives
        // dimensions and strides inside those `pixel_bytes` for the writer's validated shape.
        // Writes through the array go to the slot while it is lent, to private zero pages after.
        let array: Bound<'_, PyAny> = unsafe {
            let view = numpy::ndarray::ArrayViewMutD::from_shape_ptr(
                IxDyn(&dims).strides(IxDyn(&strides)),
                ptr as *mut u8,
            );
            PyArrayDyn::borrow_from_array(&view, base).into_any()
        };
        Ok(Some(slot(Some(loan), array.unbind(), false)))
    }

    /// Ends the stream (readers get EndOfStream after the last frame) and removes the name.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if forked(self.pid) {
            return Ok(()); // a fork child's copy: the stream is its parent's
        }
        let writer = py.detach(|| lock(&self.inner).take());
        if let Some(w) = writer {
            w.close().map_err(|e| to_py(py, e))?;
        }
        Ok(())
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
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

    #[getter]
    fn frames_published(&self, py: Python<'_>) -> u64 {
        py.detach(|| lock(&self.inner).as_ref().map_or(0, |w| w.frames_published()))
    }

    #[getter]
    fn reader_attached(&self, py: Python<'_>) -> bool {
        py.detach(|| lock(&self.inner).as_ref().is_some_and(|w| w.reader_attached()))
    }

    /// Readers attached now.
    #[getter]
    fn readers(&self, py: Python<'_>) -> u32 {
        py.detach(|| lock(&self.inner).as_ref().map_or(0, |w| w.readers().attached))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<shmframes.Writer {:?} {}>", self.name, self.shape)
    }
}

/// Frame rate, delivery latency percentiles and dropped frames: the statistics
/// `python -m shmframes.view`, `frame-stats` and `frame-viewer` print (one implementation).
#[pyclass(module = "shmframes", name = "Stats")]
struct PyStats {
    inner: Stats,
}

fn window_dict<'py>(py: Python<'py>, w: &shmframes::stats::Window) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let ms = |v: Option<u64>| v.map(|ns| ns as f64 / 1e6);
    d.set_item("frames", w.frames)?;
    d.set_item("fps", w.fps)?;
    d.set_item("latency_p50_ms", ms(w.latency_p50_ns))?;
    d.set_item("latency_p99_ms", ms(w.latency_p99_ns))?;
    d.set_item("latency_max_ms", ms(w.latency_max_ns))?;
    d.set_item("dropped", w.dropped)?;
    d.set_item("total", w.total)?;
    d.set_item("text", w.to_string())?;
    Ok(d)
}

#[pymethods]
impl PyStats {
    #[new]
    fn new() -> Self {
        PyStats { inner: Stats::new() }
    }

    /// Counts a frame read now (or at `now_ns`, CLOCK_MONOTONIC).
    #[pyo3(signature = (frame, now_ns = None))]
    fn record(&mut self, frame: &PyFrame, now_ns: Option<u64>) {
        self.inner.record(
            frame.seq,
            frame.publish_ns,
            now_ns.unwrap_or_else(shmframes::monotonic_ns),
            frame.lost_before,
        );
    }

    /// Forgets the last sequence number (a new producer starts counting at 0).
    fn restart(&mut self) {
        self.inner.restart();
    }

    /// Whether a second has passed since the last `take_window()`.
    #[getter]
    fn window_due(&self) -> bool {
        self.inner.window_due()
    }

    #[getter]
    fn frames(&self) -> u64 {
        self.inner.frames()
    }

    #[getter]
    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }

    /// The window's figures (frames, fps, latency_p50_ms, latency_p99_ms, latency_max_ms,
    /// dropped, total, text) and starts a new window.
    fn take_window<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let w = self.inner.take_window();
        window_dict(py, &w)
    }

    /// The whole run in one line: frames, seconds, fps, dropped, latency percentiles.
    fn summary(&self) -> String {
        self.inner.summary().to_string()
    }
}

/// Every pixel format: name -> {code, aliases, gstreamer, opencv_to_bgr, rgb_family}.
#[pyfunction]
fn pixel_formats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let all = PyDict::new(py);
    for info in shmframes::format::FORMATS {
        let d = PyDict::new(py);
        d.set_item("code", info.code)?;
        d.set_item("aliases", info.aliases.to_vec())?;
        d.set_item("gstreamer", info.gstreamer)?;
        d.set_item("opencv_to_bgr", info.opencv_to_bgr)?;
        d.set_item("rgb_family", info.rgb_family)?;
        all.set_item(info.name, d)?;
    }
    Ok(all)
}

/// Nanoseconds of CLOCK_MONOTONIC, the clock of `Frame.capture_ns` and `Frame.publish_ns`
/// (the same clock as `time.monotonic_ns()` on Linux).
#[pyfunction]
fn monotonic_ns() -> u64 {
    shmframes::monotonic_ns()
}

/// The readers of a framed channel now, one dict each: place, pid, lossless, frames_read,
/// dropped, lag, held (what `frame-stats --readers` lists). Empty for a raw channel.
#[pyfunction]
fn readers<'py>(py: Python<'py>, name: &str) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let list = py.detach(|| shmframes::readers_of(name)).map_err(|e| to_py(py, e))?;
    list.iter()
        .map(|r| {
            let d = PyDict::new(py);
            d.set_item("place", r.place)?;
            d.set_item("pid", r.pid)?;
            d.set_item("lossless", r.lossless)?;
            d.set_item("frames_read", r.frames_read)?;
            d.set_item("dropped", r.dropped)?;
            d.set_item("lag", r.lag)?;
            d.set_item("held", r.held)?;
            Ok(d)
        })
        .collect()
}

#[pymodule]
fn _shmframes(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyReader>()?;
    m.add_class::<PyWriter>()?;
    m.add_class::<PyFrame>()?;
    m.add_class::<PySlot>()?;
    m.add_class::<PyStats>()?;
    m.add_function(wrap_pyfunction!(monotonic_ns, m)?)?;
    m.add_function(wrap_pyfunction!(pixel_formats, m)?)?;
    m.add_function(wrap_pyfunction!(readers, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
