//! `shmframes.FrameSlot`: the producer's writable frame, `published` or `discarded`.

use numpy::ndarray::{IxDyn, ShapeBuilder};
use numpy::{PyArrayDyn, PyArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use shmframes::{Deadline, OpenSlot};

use crate::errors::CLOSED;
use crate::handle::forked;
use crate::writer::PyWriter;

/// The numpy base of a slot's array: keeps the slot's address mapped (zero pages once the slot
/// is published or discarded).
#[pyclass(module = "shmframes", name = "SlotMemory", frozen)]
struct SlotMemory {
    _mapped: shmframes::SlotWindow,
}

/// Room for one frame in the channel, from `Writer.frame()`: draw into `array` in place, then
/// `publish()` (or leave a `with` block normally); `discard()` (or an exception in the block)
/// drops the frame. After either, `array` and every view of it reach no frame any more: they
/// read zeros, and what is written through them goes nowhere; a second `publish()` or
/// `discard()` raises `Closed`.
#[pyclass(module = "shmframes", name = "FrameSlot")]
pub(crate) struct PySlot {
    writer: Py<PyWriter>,
    /// The slot (framed channels); `None` once published or discarded, or for a raw channel.
    slot: Option<OpenSlot>,
    /// The array handed out: a view of the slot, or (raw channels, Windows) an array of our
    /// own.
    array: Option<Py<PyAny>>,
    /// Drawn in an array of our own and written at publish (raw channels; every channel on
    /// Windows, until slot windows can be lent there).
    raw: bool,
    /// "published" or "discarded" once done.
    done: Option<&'static str>,
    seq: Option<u64>,
    capture_ns: u64,
}

impl PySlot {
    /// The next slot of `writer` (see `Writer.frame`).
    pub(crate) fn take(
        writer: &Bound<'_, PyWriter>,
        py: Python<'_>,
        d: Deadline,
    ) -> PyResult<Option<PySlot>> {
        let w = writer.get();
        let (dims, strides) = w.shape.array_layout();
        // Stamped when the slot is in hand (after any wait for room).
        let slot = |opened, array, raw| PySlot {
            writer: writer.clone().unbind(),
            slot: opened,
            array: Some(array),
            raw,
            done: None,
            seq: None,
            capture_ns: shmframes::monotonic_ns(),
        };
        // Raw channels, and Windows (no lending of slot windows there yet, see
        // docs/windows.md): the frame is drawn in an array of our own and written at publish.
        if w.raw || cfg!(windows) {
            if !w.handle.call(py, |wr| wr.wait_for_room(d))? {
                return Ok(None);
            }
            let array = py.import("numpy")?.call_method1("zeros", (dims, "uint8"))?.unbind();
            return Ok(Some(slot(None, array, true)));
        }
        let taken = w.handle.call(py, |wr| {
            let Some(opened) = wr.open_slot(d)? else { return Ok(None) };
            let px = wr.slot_pixels(&opened)?.expect("a framed channel maps its slots");
            Ok(Some((opened, px.ptr.as_ptr() as usize, px.owner)))
        })?;
        let Some((opened, ptr, mapped)) = taken else { return Ok(None) };
        let base = Bound::new(py, SlotMemory { _mapped: mapped })?.into_any();
        // SAFETY: `ptr` is the first of the frame's pixel bytes in the slot's window, mapped for
        // as long as `base` (numpy's base object for the array) lives; `array_layout` gives
        // dimensions and strides inside those `pixel_bytes` for the writer's validated shape.
        // Writes through the array go to the slot until it is done, to private zero pages after.
        let array: Bound<'_, PyAny> = unsafe {
            let view = numpy::ndarray::ArrayViewMutD::from_shape_ptr(
                IxDyn(&dims).strides(IxDyn(&strides)),
                ptr as *mut u8,
            );
            PyArrayDyn::borrow_from_array(&view, base).into_any()
        };
        Ok(Some(slot(Some(opened), array.unbind(), false)))
    }

    /// `Closed` once the slot was published or discarded.
    fn check_open(&self, py: Python<'_>) -> PyResult<()> {
        match self.done {
            None => Ok(()),
            Some(how) => Err(CLOSED.err(
                py,
                format!(
                    "this slot of {:?} was {how} already: take the next one with writer.frame()",
                    self.writer.get().handle.name
                ),
            )),
        }
    }
}

#[pymethods]
impl PySlot {
    /// The frame's pixels as a writable numpy uint8 array, in place in shared memory, in the
    /// channel's shape (`Writer.shape`). Fill it: `cap.read(image=slot.array)`,
    /// `cv2.resize(src, (w, h), dst=slot.array)`, `np.copyto(slot.array, src)`.
    #[getter]
    fn array(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.check_open(py)?;
        Ok(self.array.as_ref().expect("an open slot has its array").clone_ref(py))
    }

    /// The sequence number the frame will carry (the writer's next one unless set).
    #[getter]
    fn seq(&self, py: Python<'_>) -> PyResult<u64> {
        match self.seq {
            Some(s) => Ok(s),
            None => self.writer.get().handle.call(py, |w| Ok(w.next_seq())),
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
        self.done.is_some()
    }

    /// Makes the frame visible to readers; returns its sequence number. The array stops
    /// reaching the channel first, so nothing written through it afterwards changes a frame.
    /// Raises `Closed` if the slot was published or discarded already.
    fn publish(&mut self, py: Python<'_>) -> PyResult<u64> {
        self.check_open(py)?;
        self.done = Some("published");
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
            // carry no sequence number. (On Windows a framed channel takes this path too: its
            // frame gets the writer's next number.)
            let _ = seq;
            return w.write_now(py, pixels, capture);
        }
        self.array = None;
        let opened = self.slot.take().expect("an open framed slot has its slot");
        w.handle.call(py, |wr| wr.publish_slot(opened, seq, capture))
    }

    /// Drops the frame: readers never see it. Raises `Closed` if the slot was published or
    /// discarded already (as a second `publish()` does).
    fn discard(&mut self, py: Python<'_>) -> PyResult<()> {
        self.check_open(py)?;
        self.drop_frame(py);
        Ok(())
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
            (_, Some(_)) => {}
            (None, None) => {
                self.publish(py)?;
            }
            (Some(_), None) => self.drop_frame(py),
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let w = self.writer.get();
        format!(
            "<shmframes.FrameSlot {:?} {}{}>",
            w.handle.name,
            w.shape,
            self.done.map(|how| format!(" {how}")).unwrap_or_default()
        )
    }
}

impl PySlot {
    fn drop_frame(&mut self, py: Python<'_>) {
        self.done = Some("discarded");
        self.array = None;
        if let Some(opened) = self.slot.take() {
            let _ = self.writer.get().handle.call(py, |wr| {
                wr.discard_slot(opened);
                Ok(())
            });
        }
    }
}

impl Drop for PySlot {
    fn drop(&mut self) {
        // Unpublished and forgotten: discard it now unless the writer is busy (in a wait: the
        // room it takes next discards this frame anyway).
        if let Some(opened) = self.slot.take() {
            let w = self.writer.get();
            if forked(w.handle.pid) {
                return; // the parent's slot
            }
            if let Ok(mut g) = w.handle.inner.try_lock() {
                if let Some(wr) = g.as_mut() {
                    wr.discard_slot(opened);
                }
            }
        }
    }
}
