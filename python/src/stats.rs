//! `shmframes.Stats`: frame rate, latency percentiles and drops, as the tools report them.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use shmframes::stats::{Stats, Window};

use crate::frame::PyFrame;

/// Frame rate, delivery latency percentiles and dropped frames: the statistics
/// `python -m shmframes.view`, `frame-stats` and `frame-viewer` print (one implementation).
///
/// `since_ns` (CLOCK_MONOTONIC ns; default: when the Stats is made): frames published before it
/// (the newest frame a reader starts with, already waiting when it attached) are counted in
/// `before_attach`, not in frames, rate or latency. Pass `reader.attached_ns`.
#[pyclass(module = "shmframes", name = "Stats")]
pub(crate) struct PyStats {
    inner: Stats,
}

fn window_dict<'py>(py: Python<'py>, w: &Window) -> PyResult<Bound<'py, PyDict>> {
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
    #[pyo3(signature = (since_ns = None))]
    fn new(since_ns: Option<u64>) -> Self {
        PyStats { inner: Stats::since(since_ns.unwrap_or_else(shmframes::monotonic_ns)) }
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

    /// Frames measured (published after `since_ns`).
    #[getter]
    fn frames(&self) -> u64 {
        self.inner.frames()
    }

    /// Frames recorded that were published before `since_ns`: shown, not measured.
    #[getter]
    fn before_attach(&self) -> u64 {
        self.inner.before_attach()
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
