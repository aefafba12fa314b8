//! The Python extension module `shmframes._shmframes` (crate `shmframes-python`, built by
//! maturin): one file per Python class, as iceoryx2's Python binding keeps them.
//!
//! | file | Python |
//! |---|---|
//! | `reader.rs` | `Reader` |
//! | `frame.rs` (+ `buffer.rs`) | `Frame`, a frame a reader holds (numpy, DLPack, `memoryview`) |
//! | `writer.rs` | `Writer` |
//! | `slot.rs` | `FrameSlot`, the producer's writable frame, published or discarded |
//! | `stats.rs` | `Stats` |
//! | `functions.rs` | `pixel_formats`, `monotonic_ns`, `precise_timers`, `readers` |
//! | `errors.rs` | the exception classes (`shmframes.errors` re-exports them) |
//! | `handle.rs` | what they share: the lock, calls without the GIL, fork children, Ctrl+C |
//!
//! Frames reach Python as read-only numpy arrays viewing shared memory in place. Each array's
//! numpy *base* owns a reference to the Rust [`shmframes::Frame`], so the frame stays held
//! (its bytes never overwritten) as long as the `Frame` object or any array derived from it
//! lives, and the mapping stays valid even after the reader is closed.
//!
//! Every wait releases the GIL. Ctrl+C ends it at once on a framed channel (the core's wait
//! sleeps on a word its signal hook bumps), and within 80 ms elsewhere.

use pyo3::prelude::*;

#[cfg(not(feature = "abi3-py39"))]
mod buffer;
mod errors;
mod frame;
mod functions;
mod handle;
mod reader;
mod slot;
mod stats;
mod writer;

#[pymodule]
fn _shmframes(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<reader::PyReader>()?;
    m.add_class::<writer::PyWriter>()?;
    m.add_class::<frame::PyFrame>()?;
    m.add_class::<slot::PySlot>()?;
    m.add_class::<stats::PyStats>()?;
    m.add_function(wrap_pyfunction!(functions::monotonic_ns, m)?)?;
    m.add_function(wrap_pyfunction!(functions::precise_timers, m)?)?;
    m.add_function(wrap_pyfunction!(functions::pixel_formats, m)?)?;
    m.add_function(wrap_pyfunction!(functions::readers, m)?)?;
    errors::add(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
