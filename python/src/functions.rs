//! The module's functions: `pixel_formats`, `monotonic_ns`, `readers`.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::to_py;
use crate::handle::text;

/// Every pixel format: name -> {code, aliases, gstreamer, opencv_to_bgr, rgb_family}.
#[pyfunction]
pub(crate) fn pixel_formats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
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
pub(crate) fn monotonic_ns() -> u64 {
    shmframes::monotonic_ns()
}

/// Makes the calling thread's timed sleeps (`time.sleep`, a timeout) end on time, for a
/// producer that keeps a schedule: fill a frame, sleep until it is due, publish it. Readers
/// (which wake just before a steady producer's frame is due) then find it where they expect
/// it. Linux lets a normal thread's timer fire up to 50 us late; this asks for none. Returns
/// whether it took effect (False where the system has no such setting).
#[pyfunction]
pub(crate) fn precise_timers() -> bool {
    shmframes::precise_timers()
}

/// The readers of a framed channel now, one dict each: place, pid, lossless, frames_read,
/// dropped, lag, held (what `frame-stats --readers` lists). Empty for a raw channel.
#[pyfunction]
pub(crate) fn readers<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyAny>,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let name = text(name, "name")?;
    let list = py.detach(|| shmframes::readers_of(&name)).map_err(|e| to_py(py, e))?;
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
