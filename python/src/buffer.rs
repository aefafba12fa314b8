//! The buffer protocol of `Frame` (`memoryview(frame)`): the pixels in place, read-only, with
//! the array's shape and strides. Only in builds where pyo3 has `__getbuffer__` (see
//! `frame.rs`).

use std::os::raw::{c_int, c_void};
use std::sync::Arc;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

use shmframes::Frame;

use crate::frame::PyFrame;

/// What an exported view owns until Python releases it: the frame (held, so its bytes are
/// not overwritten) and the shape and strides the view points at.
struct Exported {
    _frame: Arc<Frame>,
    shape: Vec<ffi::Py_ssize_t>,
    strides: Vec<ffi::Py_ssize_t>,
}

/// Fills `view` for `__getbuffer__`.
///
/// # Safety
/// `view` is the `Py_buffer` Python passed to `__getbuffer__` (valid for writes).
pub(crate) unsafe fn fill(
    slf: &Bound<'_, PyFrame>,
    view: *mut ffi::Py_buffer,
    flags: c_int,
) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err("a buffer request without a view"));
    }
    if flags & ffi::PyBUF_WRITABLE != 0 {
        return Err(PyBufferError::new_err(
            "a frame is read-only (its bytes are the producer's): take frame.copy() to write",
        ));
    }
    let frame = slf.get().held_for_buffer(slf.py())?;
    let (dims, strides) = slf.get().frame_shape().array_layout();
    // C-contiguous: each stride is the product of the later dimensions (uint8 items).
    let mut expect = 1;
    let mut contiguous = true;
    for (d, s) in dims.iter().zip(&strides).rev() {
        contiguous &= *d == 1 || *s == expect;
        expect *= d;
    }
    let asks = |bits: c_int| flags & bits == bits;
    let any_contiguity = flags & 0xE0 != 0; // C_, F_ or ANY_CONTIGUOUS asked
    if (!asks(ffi::PyBUF_STRIDES) || any_contiguity) && !contiguous {
        return Err(PyBufferError::new_err(
            "this frame's rows are padded (stride > row bytes): ask for strides (memoryview does)",
        ));
    }
    if flags & 0x40 != 0 && dims.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(PyBufferError::new_err("a frame is in C order, not Fortran order"));
    }
    let ptr = frame.pixels().as_ptr();
    let mut exported = Box::new(Exported {
        _frame: frame,
        shape: dims.iter().map(|&d| d as ffi::Py_ssize_t).collect(),
        strides: strides.iter().map(|&s| s as ffi::Py_ssize_t).collect(),
    });
    let nd = asks(ffi::PyBUF_ND);
    // SAFETY: `view` is valid for writes (the caller's contract). `buf` stays valid and
    // unchanged while `internal` (which holds the frame, and so its mapping and hold) lives,
    // that is until `release`; `shape` and `strides` point into that box too. `obj` gets its
    // own reference, which Python drops after `__releasebuffer__`.
    unsafe {
        (*view).buf = ptr as *mut c_void;
        (*view).obj = slf.clone().into_any().into_ptr();
        (*view).len = dims.iter().product::<usize>() as ffi::Py_ssize_t;
        (*view).readonly = 1;
        (*view).itemsize = 1;
        (*view).format =
            if asks(ffi::PyBUF_FORMAT) { c"B".as_ptr() as *mut _ } else { std::ptr::null_mut() };
        (*view).ndim = if nd { dims.len() as c_int } else { 1 };
        (*view).shape = if nd { exported.shape.as_mut_ptr() } else { std::ptr::null_mut() };
        (*view).strides = if asks(ffi::PyBUF_STRIDES) {
            exported.strides.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        (*view).suboffsets = std::ptr::null_mut();
        (*view).internal = Box::into_raw(exported) as *mut c_void;
    }
    Ok(())
}

/// Frees what [`fill`] left in `view` for `__releasebuffer__`.
///
/// # Safety
/// `view` was filled by [`fill`] and is released once.
pub(crate) unsafe fn release(view: *mut ffi::Py_buffer) {
    // SAFETY: `internal` is the `Box<Exported>` `fill` leaked for this view (the caller's
    // contract), taken back once.
    unsafe {
        let internal = (*view).internal as *mut Exported;
        if !internal.is_null() {
            drop(Box::from_raw(internal));
            (*view).internal = std::ptr::null_mut();
        }
    }
}
