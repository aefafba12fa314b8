//! What every class shares: the lock around a Rust handle, calls with the GIL released, fork
//! children, timeouts as Python writes them, and Ctrl+C during waits.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use shmframes::timing::SIGNAL_CHECK_PERIOD as SIGNAL_PERIOD;
use shmframes::{Cancel, Deadline, Error, PixelFormat, Role};

use crate::errors::to_py;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn parse_format(s: &str) -> PyResult<PixelFormat> {
    s.parse::<PixelFormat>().map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A timeout in seconds as Python callers write it: `None` or `inf` wait for ever.
pub(crate) fn deadline(timeout: Option<f64>, what: &str) -> PyResult<Deadline> {
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

/// A whole number argument: a `TypeError` naming the argument for what is not an integer, a
/// `ValueError` naming it for an integer out of range (a negative size, say), never pyo3's
/// anonymous `OverflowError`.
pub(crate) fn whole<T: TryFrom<i128>>(
    value: &Bound<'_, PyAny>,
    what: &str,
    range: &str,
) -> PyResult<T> {
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!("{what} must be an integer, not a bool")));
    }
    let Ok(n) = value.extract::<i128>() else {
        let kind = value.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string());
        return Err(PyTypeError::new_err(format!("{what} must be an integer, not {kind}")));
    };
    T::try_from(n).map_err(|_| PyValueError::new_err(format!("{what} must be {range}, not {n}")))
}

/// A string argument: a `TypeError` naming the argument otherwise.
pub(crate) fn text(value: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    value.extract::<String>().map_err(|_| {
        let kind = value.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string());
        PyTypeError::new_err(format!("{what} must be a str, not {kind}"))
    })
}

/// Lets Ctrl+C (and any signal handler that raises) end a wait: the core runs the check when
/// a signal arrives (or every `SIGNAL_PERIOD` where it must poll); the exception the handler
/// raised is kept here and raised when the core returns [`Error::Interrupted`].
#[derive(Clone, Default)]
pub(crate) struct Signals {
    raised: Arc<Mutex<Option<PyErr>>>,
}

impl Signals {
    pub(crate) fn cancel(&self) -> Cancel {
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
    pub(crate) fn to_py(&self, py: Python<'_>, e: Error) -> PyErr {
        if let Error::Interrupted { .. } = e {
            if let Some(raised) = lock(&self.raised).take() {
                return raised;
            }
        }
        to_py(py, e)
    }
}

/// Whether this is a fork child of process `pid`: then the handle is its parent's, and its lock
/// may have been held by a thread the child does not have (locking it would hang for ever).
pub(crate) fn forked(pid: u32) -> bool {
    std::process::id() != pid
}

/// A Rust handle (reader or writer) behind a lock, with what its Python object needs to call it.
pub(crate) struct Handle<H> {
    pub(crate) inner: Mutex<Option<H>>,
    pub(crate) signals: Signals,
    pub(crate) role: Role,
    pub(crate) name: String,
    /// The process that made it (see [`forked`]).
    pub(crate) pid: u32,
}

impl<H: Send> Handle<H> {
    pub(crate) fn new(h: H, name: String, role: Role, signals: Signals) -> Handle<H> {
        Handle { inner: Mutex::new(Some(h)), signals, role, name, pid: std::process::id() }
    }

    /// Runs `f` on the open handle with the GIL released: waiting for the lock too, since a
    /// wait in another thread holds it and needs the GIL for its signal checks. A closed
    /// handle is [`Error::Closed`]; in a fork child, [`Error::ForkedChild`].
    pub(crate) fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut H) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        if forked(self.pid) {
            let (name, role, owner) = (self.name.clone(), self.role, self.pid);
            return Err(to_py(py, Error::ForkedChild { name, role, owner }));
        }
        let r = py.detach(|| match lock(&self.inner).as_mut() {
            Some(h) => f(h),
            None => Err(Error::Closed { role: self.role, name: self.name.clone() }),
        });
        r.map_err(|e| self.signals.to_py(py, e))
    }

    /// Takes the handle out (closing); `None` if closed already or in a fork child.
    pub(crate) fn take(&self, py: Python<'_>) -> Option<H> {
        if forked(self.pid) {
            return None;
        }
        py.detach(|| lock(&self.inner).take())
    }

    pub(crate) fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| lock(&self.inner).is_none())
    }
}
