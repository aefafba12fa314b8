//! The atomics the reader table's protocol runs on: the standard ones, or loom's when the crate
//! is built with `--cfg loom` to model-check that protocol (`make loom`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
