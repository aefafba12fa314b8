//! `shmframes.Frame`: a frame a reader holds, its metadata, and its pixels in place (a numpy
//! array, `__array__`, DLPack, and the buffer protocol for `memoryview(frame)`).

use std::sync::{Arc, Mutex};

use numpy::ndarray::{ArrayViewD, IxDyn, ShapeBuilder};
use numpy::PyArrayDyn;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use shmframes::{Frame, FrameShape};

use crate::errors::CLOSED;
use crate::handle::lock;

/// The numpy base of frame arrays: holds the frame (its bytes are not overwritten while this
/// lives).
#[pyclass(module = "shmframes", name = "HeldFrame", frozen)]
pub(crate) struct HeldFrame {
    _frame: Arc<Frame>,
}

/// One frame: metadata and a zero-copy, read-only numpy view of its pixels.
///
/// The frame is held (its bytes never overwritten) while this object or any array or
/// memoryview derived from it lives. `release()` (or leaving a `with frame:` block) gives up
/// this object's hold early; arrays still alive keep theirs.
#[pyclass(module = "shmframes", name = "Frame", frozen)]
pub(crate) struct PyFrame {
    held: Mutex<Option<Arc<Frame>>>,
    array: Mutex<Option<Py<PyAny>>>,
    shape: FrameShape,
    #[pyo3(get)]
    pub(crate) seq: u64,
    #[pyo3(get)]
    capture_ns: u64,
    #[pyo3(get)]
    pub(crate) publish_ns: u64,
    #[pyo3(get)]
    raw: bool,
    /// Frames this reader lost just before this one (overwritten before it read them).
    #[pyo3(get)]
    pub(crate) lost_before: u64,
}

/// A read-only numpy array of `dims` and `strides` over the bytes at `ptr`, `base` its numpy
/// base object.
///
/// # Safety
/// The bytes the layout reaches from `ptr` must stay valid and unchanged while `base` lives.
unsafe fn read_only_array<'py>(
    base: Bound<'py, PyAny>,
    ptr: *const u8,
    dims: &[usize],
    strides: &[usize],
) -> Bound<'py, PyAny> {
    // SAFETY: the caller's promise: the layout stays inside bytes that live as long as `base`,
    // which numpy stores as the array's base object.
    let array: Bound<'_, PyAny> = unsafe {
        let view = ArrayViewD::from_shape_ptr(IxDyn(dims).strides(IxDyn(strides)), ptr);
        PyArrayDyn::borrow_from_array(&view, base).into_any()
    };
    // Read-only: the bytes are the producer's ring; writing them would corrupt the stream.
    // SAFETY: `array` is the ndarray created just above (so the pointer is a live
    // PyArrayObject) and no other code has seen it yet; clearing the flag bit is what numpy's own
    // PyArray_CLEARFLAGS does, and saves a Python method call on every frame.
    unsafe {
        let raw = array.as_ptr() as *mut numpy::npyffi::PyArrayObject;
        (*raw).fields.flags &= !numpy::npyffi::flags::NPY_ARRAY_WRITEABLE;
    }
    array
}

/// Warms up the way a frame comes to Python: makes and drops a frame object and a numpy array
/// as `read()` and `frame.array` do, over one byte of our own. A reader that slept through a
/// frame interval finds the interpreter's, pyo3's and numpy's code and data cold; run just
/// before a frame is due (see `Reader::watch_begins`), this takes that cost out of the frame's
/// latency.
pub(crate) fn warm_up(py: Python<'_>) -> PyResult<()> {
    static BYTE: u8 = 0;
    let frame = Bound::new(
        py,
        PyFrame {
            held: Mutex::new(None),
            array: Mutex::new(None),
            shape: FrameShape::packed(1, 1, shmframes::PixelFormat::Gray8)
                .expect("a 1x1 gray frame is a valid shape"),
            seq: 0,
            capture_ns: 0,
            publish_ns: 0,
            raw: false,
            lost_before: 0,
        },
    )?;
    // SAFETY: one static byte (never written) behind a 1x1x1 layout; `frame` is the base.
    let array = unsafe { read_only_array(frame.clone().into_any(), &BYTE, &[1, 1, 1], &[1, 1, 1]) };
    // Attribute look-ups and a method call, as the caller's `frame.array`, `array.shape` and
    // `frame.release()` make: warming them takes another 10-15 us off (docs/performance.md).
    frame.getattr("seq")?;
    array.getattr("shape")?;
    frame.call_method0("release")?;
    drop((array, frame));
    Ok(())
}

impl PyFrame {
    pub(crate) fn new(f: Frame) -> PyFrame {
        PyFrame {
            shape: f.shape(),
            seq: f.seq(),
            capture_ns: f.capture_ns(),
            publish_ns: f.publish_ns(),
            raw: f.is_raw(),
            lost_before: f.lost_before(),
            held: Mutex::new(Some(Arc::new(f))),
            array: Mutex::new(None),
        }
    }

    fn held(&self, py: Python<'_>) -> PyResult<Arc<Frame>> {
        lock(&self.held).clone().ok_or_else(|| {
            CLOSED.err(
                py,
                "this frame was released; keep it (or call frame.copy()) before releasing it",
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
        let frame = self.held(py)?;
        let (dims, strides) = self.shape.array_layout();
        let ptr = frame.pixels().as_ptr();
        let base = Bound::new(py, HeldFrame { _frame: frame })?.into_any();
        // SAFETY: `ptr` points at the frame's pixel bytes, held and immutable, kept alive
        // (mapping and hold) by `base`; `array_layout` gives dimensions and strides that stay
        // inside those bytes for a validated shape (checked when the frame was read).
        let array = unsafe { read_only_array(base, ptr, &dims, &strides) };
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
    /// read-only flag a frame needs): the pixels in place, held until the consumer lets go.
    /// Consumers that ask for an older DLPack get a `BufferError` (numpy's: the version cannot
    /// say "read-only"); pass them `frame.array` through their numpy path instead.
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

    /// The buffer protocol: `memoryview(frame)` views the pixels in place, read-only, in the
    /// array's shape and strides (format `B`). The view holds the frame itself, so it stays
    /// valid after `release()`. Built where pyo3 offers `__getbuffer__`: the default abi3
    /// build (the limited API has the buffer protocol from Python 3.11); the unshipped
    /// `abi3-py39` build has none (see docs/python.md).
    #[cfg(not(feature = "abi3-py39"))]
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        // SAFETY: `view` is the buffer Python asks us to fill (valid for writes).
        unsafe { crate::buffer::fill(&slf, view, flags) }
    }

    #[cfg(not(feature = "abi3-py39"))]
    unsafe fn __releasebuffer__(&self, view: *mut pyo3::ffi::Py_buffer) {
        // SAFETY: `view` is a buffer `__getbuffer__` filled (Python calls this once per
        // successful export), so its `internal` is the box `fill` leaked.
        unsafe { crate::buffer::release(view) }
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
        lock(&self.held).take();
    }

    /// Whether `release()` was called.
    #[getter]
    fn released(&self) -> bool {
        lock(&self.held).is_none()
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

    /// A frame is a view into this process's mapping: it cannot move to another process.
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "a shmframes.Frame cannot be pickled or sent to another process (it is a view into \
             this process's shared memory): send frame.array.copy(), or read the channel there",
        ))
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

/// What `buffer.rs` needs of a frame.
#[cfg(not(feature = "abi3-py39"))]
impl PyFrame {
    pub(crate) fn held_for_buffer(&self, py: Python<'_>) -> PyResult<Arc<Frame>> {
        self.held(py)
    }
    pub(crate) fn frame_shape(&self) -> FrameShape {
        self.shape
    }
}
