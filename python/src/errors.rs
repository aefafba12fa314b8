//! The exceptions, made here once: `Error` by `create_exception!`, and each kind users catch as
//! a subclass of both `Error` and the builtin that fits (`ChannelNotFound` is a
//! `FileNotFoundError` too), which needs two bases: pyo3's macro takes one, so those classes are
//! made by calling `type(name, (Error, builtin), namespace)`, as a class statement does.
//! `shmframes/errors.py` re-exports them under their public home, `shmframes.errors`.

use pyo3::exceptions::{
    PyBlockingIOError, PyConnectionResetError, PyEOFError, PyException, PyFileExistsError,
    PyFileNotFoundError, PyOSError, PyPermissionError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use shmframes::Error as CoreError;

pyo3::create_exception!(
    shmframes.errors,
    Error,
    PyException,
    "Base class of every shmframes error."
);

/// One exception class with two bases, made once per interpreter.
pub(crate) struct Class {
    name: &'static str,
    doc: &'static str,
    bases: fn(Python<'_>) -> PyResult<Bound<'_, PyTuple>>,
    cell: PyOnceLock<Py<PyType>>,
}

impl Class {
    /// The class object.
    pub(crate) fn get<'py>(&'static self, py: Python<'py>) -> PyResult<Bound<'py, PyType>> {
        let class = self.cell.get_or_try_init(py, || {
            let namespace = PyDict::new(py);
            namespace.set_item("__module__", "shmframes.errors")?;
            namespace.set_item("__doc__", self.doc)?;
            namespace.set_item("__qualname__", self.name)?;
            let made = py.get_type::<PyType>().call1((self.name, (self.bases)(py)?, namespace))?;
            Ok::<_, PyErr>(made.cast_into::<PyType>()?.unbind())
        })?;
        Ok(class.bind(py).clone())
    }

    /// An exception of this class carrying `msg`.
    pub(crate) fn err(&'static self, py: Python<'_>, msg: impl Into<String>) -> PyErr {
        match self.get(py) {
            Ok(class) => PyErr::from_type(class, msg.into()),
            Err(e) => e,
        }
    }
}

macro_rules! exception {
    ($static:ident, $name:literal, [$($base:expr),+], $doc:literal) => {
        pub(crate) static $static: Class = Class {
            name: $name,
            doc: $doc,
            bases: |py| PyTuple::new(py, [$($base(py)?.into_any()),+]),
            cell: PyOnceLock::new(),
        };
    };
}

fn base(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    Ok(py.get_type::<Error>())
}

fn builtin<T: pyo3::PyTypeInfo>(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    Ok(py.get_type::<T>())
}

exception!(
    CHANNEL_NOT_FOUND,
    "ChannelNotFound",
    [base, builtin::<PyFileNotFoundError>],
    "No channel of that name exists (or none appeared in time)."
);
exception!(
    PERMISSION_DENIED,
    "PermissionDenied",
    [base, builtin::<PyPermissionError>],
    "The channel belongs to another user, or its mode does not let you in."
);
exception!(
    NAME_TAKEN,
    "NameTaken",
    [base, builtin::<PyFileExistsError>],
    "The name is taken by a segment a new producer may not replace."
);
exception!(
    PRODUCER_ALIVE,
    "ProducerAlive",
    [|py| NAME_TAKEN.get(py)],
    "A live producer already owns the channel name."
);
exception!(
    CHANNEL_BUSY,
    "ChannelBusy",
    [base, builtin::<PyBlockingIOError>],
    "Every reader place of the channel is taken (or another consumer reads a raw channel)."
);
exception!(
    PRODUCER_GONE,
    "ProducerGone",
    [base, builtin::<PyConnectionResetError>],
    "The producer died (or was killed) without ending the stream. Every later read raises it \
     again (a reader opened with follow=True goes on to the next producer instead)."
);
exception!(
    END_OF_STREAM,
    "EndOfStream",
    [base, builtin::<PyEOFError>],
    "The producer ended the stream; every frame it published was read."
);
exception!(
    PROTOCOL_ERROR,
    "ProtocolError",
    [base, builtin::<PyValueError>],
    "Bytes in the segment break the protocol (a corrupt segment or an incompatible peer)."
);
exception!(
    NO_SPACE,
    "NoSpace",
    [base, builtin::<PyOSError>],
    "/dev/shm (or its quota) cannot hold the channel."
);
exception!(
    HOLDS_EVERY_SLOT,
    "HoldsEverySlot",
    [base, builtin::<PyRuntimeError>],
    "The reader holds every frame slot of the channel, so no new frame can come: release a \
     frame (``del frame``, or keep ``frame.copy()``) before reading the next."
);
exception!(
    CLOSED,
    "Closed",
    [base, builtin::<PyValueError>],
    "The reader, writer, slot or frame was closed (released, published) already."
);
exception!(
    FORKED_CHILD,
    "ForkedChild",
    [base, builtin::<PyRuntimeError>],
    "A Reader or Writer used in a child made by ``fork()`` (a ``multiprocessing`` or PyTorch \
     ``DataLoader`` worker): it belongs to the parent. The child may look at the frames the \
     parent held when it forked, and drop them (that never releases them for the parent); to \
     read frames itself, it opens its own ``shmframes.Reader``."
);

/// Every class with two bases, in the order `errors.__all__` lists them.
pub(crate) static CLASSES: [&Class; 12] = [
    &CHANNEL_BUSY,
    &CHANNEL_NOT_FOUND,
    &CLOSED,
    &END_OF_STREAM,
    &FORKED_CHILD,
    &HOLDS_EVERY_SLOT,
    &NAME_TAKEN,
    &NO_SPACE,
    &PERMISSION_DENIED,
    &PRODUCER_ALIVE,
    &PRODUCER_GONE,
    &PROTOCOL_ERROR,
];

/// Adds the exceptions to the module.
pub(crate) fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<Error>())?;
    for class in CLASSES {
        m.add(class.name, class.get(m.py())?)?;
    }
    Ok(())
}

/// The exception for a core error: one class per kind users catch, or `ValueError` for what
/// the caller passed wrongly.
pub(crate) fn to_py(py: Python<'_>, e: CoreError) -> PyErr {
    let msg = e.full_message();
    let class: &'static Class = match e {
        CoreError::ChannelNotFound { .. } => &CHANNEL_NOT_FOUND,
        CoreError::PermissionDenied { .. } => &PERMISSION_DENIED,
        CoreError::NameTaken { .. }
        | CoreError::ForeignSegment { .. }
        | CoreError::SymbolicLink { .. } => &NAME_TAKEN,
        CoreError::ProducerAlive { .. } => &PRODUCER_ALIVE,
        CoreError::ChannelBusy { .. } => &CHANNEL_BUSY,
        CoreError::ProducerGone { .. } => &PRODUCER_GONE,
        CoreError::EndOfStream { .. } => &END_OF_STREAM,
        CoreError::Protocol { .. }
        | CoreError::RawSizeMismatch { .. }
        | CoreError::RawWithoutShape { .. } => &PROTOCOL_ERROR,
        CoreError::NoSpace { .. } => &NO_SPACE,
        CoreError::Closed { .. } | CoreError::SlotGone { .. } => &CLOSED,
        CoreError::HoldsEverySlot { .. } => &HOLDS_EVERY_SLOT,
        CoreError::ForkedChild { .. } => &FORKED_CHILD,
        CoreError::InvalidName { .. }
        | CoreError::Shape(_)
        | CoreError::NoBufferFrames
        | CoreError::TooManyBufferFrames { .. }
        | CoreError::MaxReaders { .. }
        | CoreError::RingTooLarge { .. }
        | CoreError::RawNeedsPackedRows { .. }
        | CoreError::WrongFrameSize { .. }
        | CoreError::BadMode { .. }
        | CoreError::RawOnFramed { .. } => return PyValueError::new_err(msg),
        _ => return PyErr::new::<Error, _>(msg),
    };
    class.err(py, msg)
}
