//! `shmframes.Reader`: the consumer end of a channel.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use shmframes::{
    Deadline, Error, FrameShape, ProducerState, Reader, ReaderOptions, Role, Start, Wake,
};

use crate::errors::{CLOSED, END_OF_STREAM};
use crate::frame::PyFrame;
use crate::handle::{deadline, lock, parse_format, text, Handle, Signals};

/// How long a reader waits for its channel to appear by default (the one policy, stated in the
/// README: the tools and the GStreamer source wait as long).
pub(crate) const OPEN_TIMEOUT_SECS: f64 = 10.0;

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

/// What a closed reader still says: its figures when it was closed.
#[derive(Clone, Copy)]
struct Final {
    dropped: u64,
    lag: Option<u64>,
    state: ProducerState,
}

/// The consumer end of a channel: `Reader(name="shm_video", timeout=10.0, raw=None,
/// follow=False, lossless=False, start="newest", raw_format="bgr")`.
///
/// - `name`: the channel (what `frame-producer --name` or `Writer(name, ...)` created).
/// - `timeout`: seconds to wait for the channel to appear (default 10; 0: fail at once with
///   `ChannelNotFound`; None or inf: for ever).
/// - `raw`: header-less frames (cpp_py_shmbuf's producer): `"WIDTHxHEIGHT"` with `raw_format`,
///   as the command line spells it, or `(height, width, format)` (whose format is used). A
///   framed channel describes its frames: `raw` on one is a `ValueError` (the core refuses it).
/// - `follow`: survive producer restarts (a new producer under the name is picked up).
/// - `lossless`: never lose a frame to a producer that waits for room (`--when-full wait`).
/// - `start`: "newest" (the frame being published) or "oldest" (the oldest one kept).
///
/// Iterate it (`for frame in reader`) or call `read(timeout)` / `latest(timeout)`.
#[pyclass(module = "shmframes", name = "Reader", frozen)]
pub(crate) struct PyReader {
    handle: Handle<Reader>,
    /// When it attached (CLOCK_MONOTONIC ns): frames published before are not its to measure.
    attached_ns: u64,
    last: Mutex<Option<Final>>,
}

impl PyReader {
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Reader) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        self.handle.call(py, f)
    }

    /// A figure: the open reader's, or the one it had when it was closed.
    fn figure<T: Send>(
        &self,
        py: Python<'_>,
        open: impl FnOnce(&mut Reader) -> T + Send,
        closed: impl FnOnce(Final) -> T,
    ) -> PyResult<T> {
        if let Some(f) = *lock(&self.last) {
            return Ok(closed(f));
        }
        self.call(py, |r| Ok(open(r)))
    }
}

/// What the first part of a warmed read ended with.
enum Part {
    /// A frame, or the deadline passed: the read's answer.
    Done(Option<shmframes::Frame>),
    /// The watch for the next frame is about to begin: warm up, then read on until this
    /// deadline (the caller's, fixed in time).
    Warm(Deadline),
}

impl PyReader {
    /// `read` (or `latest`) until `d`, woken before the frame where the reader anticipates it:
    /// it reads only until the watch for the next frame begins, then warms the way back to
    /// Python up (`warm_up`) with the interpreter's lock held, then reads on. After a frame
    /// interval asleep, that way costs 40-60 us cold against 10-20 warm (docs/performance.md).
    fn read_warmed(
        &self,
        py: Python<'_>,
        d: Deadline,
        read: fn(&mut Reader, Deadline) -> shmframes::Result<Option<shmframes::Frame>>,
    ) -> PyResult<Option<PyFrame>> {
        let part = self.call(py, |r| {
            let Some(at) = r.watch_begins() else { return read(r, d).map(Part::Done) };
            // Two reads share one deadline: a timeout counts from now, not from each read.
            let d = d.instant().map_or(Deadline::NEVER, Deadline::at);
            let now = shmframes::monotonic_ns();
            let early = Instant::now() + Duration::from_nanos(at.saturating_sub(now));
            if d.instant().is_some_and(|end| end <= early) {
                return read(r, d).map(Part::Done); // the caller's deadline comes first
            }
            Ok(match read(r, Deadline::at(early))? {
                Some(f) => Part::Done(Some(f)),
                None => Part::Warm(d),
            })
        })?;
        match part {
            Part::Done(f) => Ok(f.map(PyFrame::new)),
            Part::Warm(d) => {
                crate::frame::warm_up(py)?;
                Ok(self.call(py, |r| read(r, d))?.map(PyFrame::new))
            }
        }
    }
}

#[pymethods]
impl PyReader {
    #[new]
    #[pyo3(signature = (name = None, timeout = Some(OPEN_TIMEOUT_SECS), raw = None, follow = false, lossless = false, start = None, raw_format = None, wake = None))]
    #[pyo3(
        text_signature = "(name='shm_video', timeout=10.0, raw=None, follow=False, lossless=False, start='newest', raw_format='bgr', wake='anticipate')"
    )]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn new(
        py: Python<'_>,
        name: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        raw: Option<&Bound<'_, PyAny>>,
        follow: bool,
        lossless: bool,
        start: Option<&Bound<'_, PyAny>>,
        raw_format: Option<&Bound<'_, PyAny>>,
        wake: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let name = match name {
            Some(n) => text(n, "name")?,
            None => "shm_video".to_owned(),
        };
        let raw_format = match raw_format {
            Some(f) => text(f, "raw_format")?,
            None => "bgr".to_owned(),
        };
        let signals = Signals::default();
        let timeout = match deadline(timeout, "timeout")?.remaining() {
            Some(t) => t,
            None => Duration::MAX,
        };
        let start = match start.map(|s| text(s, "start")).transpose()?.as_deref() {
            None | Some("newest") => Start::Newest,
            Some("oldest") => Start::Oldest,
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "start must be \"newest\" or \"oldest\", not {other:?}"
                )))
            }
        };
        let wake = match wake.map(|w| text(w, "wake")).transpose()?.as_deref() {
            None | Some("anticipate") => Wake::Anticipate,
            Some("publish") => Wake::Publish,
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "wake must be \"anticipate\" or \"publish\", not {other:?}"
                )))
            }
        };
        let raw = raw_shape(raw, &raw_format)?;
        let opts =
            ReaderOptions { timeout, raw, follow, cancel: Some(signals.cancel()), lossless, start };
        let mut reader =
            py.detach(|| Reader::open(&name, &opts)).map_err(|e| signals.to_py(py, e))?;
        reader.set_wake(wake);
        let attached_ns = shmframes::monotonic_ns();
        Ok(PyReader {
            handle: Handle::new(reader, name, Role::Reader, signals),
            attached_ns,
            last: Mutex::new(None),
        })
    }

    /// The next frame, waiting up to `timeout` seconds (None: forever); None on timeout.
    /// Raises EndOfStream after the last frame, ProducerGone if the producer died (and again
    /// on every later call: both are final, unless the reader follows).
    #[pyo3(signature = (timeout = None))]
    fn read(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyFrame>> {
        let d = deadline(timeout, "timeout")?;
        self.read_warmed(py, d, Reader::read)
    }

    /// The newest frame, skipping (and releasing) every older one; waits like `read`.
    #[pyo3(signature = (timeout = None))]
    fn latest(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyFrame>> {
        let d = deadline(timeout, "timeout")?;
        self.read_warmed(py, d, Reader::latest)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Blocks for the next frame; the iteration ends at end of stream.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyFrame>> {
        match self.read(py, None) {
            Err(e) if e.is_instance(py, END_OF_STREAM.get(py)?.as_any()) => Ok(None),
            other => other,
        }
    }

    /// Stops reading. Frames still alive stay valid (they keep what they hold); `dropped`,
    /// `lag` and `producer_state` keep their last figures. In a fork child: nothing (the
    /// reader is its parent's).
    fn close(&self, py: Python<'_>) {
        if let Some(r) = self.handle.take(py) {
            let last = Final { dropped: r.dropped(), lag: r.lag(), state: r.producer_state() };
            *lock(&self.last) = Some(last);
            py.detach(|| drop(r));
        }
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.handle.closed(py)
    }

    #[getter]
    fn name(&self) -> &str {
        &self.handle.name
    }

    /// When the reader attached, CLOCK_MONOTONIC ns: frames published before it (the newest
    /// one it starts with) are shown but not measured (`shmframes.Stats(since_ns=...)`).
    #[getter]
    fn attached_ns(&self) -> u64 {
        self.attached_ns
    }

    /// "live", "unknown" (a producer that does not announce liveness), "ended" or "gone"
    /// (reported as soon as the kernel tells, without a read).
    #[getter]
    fn producer_state(&self, py: Python<'_>) -> PyResult<&'static str> {
        let s = self.figure(py, |r| r.producer_state(), |f| f.state)?;
        Ok(match s {
            ProducerState::Live => "live",
            ProducerState::Unknown => "unknown",
            ProducerState::Ended => "ended",
            ProducerState::Gone => "gone",
        })
    }

    /// Frames currently held by this reader's frames (and arrays): 0 once closed.
    #[getter]
    fn frames_held(&self, py: Python<'_>) -> PyResult<usize> {
        self.figure(py, |r| r.frames_held(), |_| 0)
    }

    /// Frames this reader lost: overwritten before it read them (it fell behind by more than
    /// the channel holds). Frames `latest()` skipped are not counted. Readable after `close()`.
    #[getter]
    fn dropped(&self, py: Python<'_>) -> PyResult<u64> {
        self.figure(py, |r| r.dropped(), |f| f.dropped)
    }

    /// Frames published that this reader has not read yet (None on a raw channel); the last
    /// figure after `close()`.
    #[getter]
    fn lag(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.figure(py, |r| r.lag(), |f| f.lag)
    }

    /// A closed reader cannot be used again: `with` on it raises `Closed`.
    fn __enter__(slf: Py<Self>, py: Python<'_>) -> PyResult<Py<Self>> {
        let me = slf.get();
        if me.handle.closed(py) {
            return Err(CLOSED.err(
                py,
                format!("reader of {:?} is closed: open a new shmframes.Reader", me.handle.name),
            ));
        }
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    /// A reader is this process's attachment (its mapping, its reader entry): it cannot move
    /// to another process. `multiprocessing` pickles what it hands a child (spawn, the only
    /// start method on Windows and the default on macOS): say what to do instead.
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(format!(
            "a shmframes.Reader cannot be pickled or sent to another process (it is this \
             process's attachment to channel {:?}): pass the name and open \
             shmframes.Reader({:?}) in the child",
            self.handle.name, self.handle.name
        )))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<shmframes.Reader {:?}{}>",
            self.handle.name,
            if self.closed(py) { " closed" } else { "" }
        )
    }
}
