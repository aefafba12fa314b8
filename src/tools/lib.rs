//! What only the command-line tools need, on top of the `shmframes` core: pixel conversions from
//! camera formats ([`convert`]), display scaling ([`display`]), the test pattern
//! ([`pattern`]) and status text drawn over a picture ([`text`]). The binaries are `frame-producer/`, `frame-viewer/` and `frame-stats/` beside
//! this file.
//!
//! This crate has no unsafe code; the core's unsafe code is fenced in the `shmframes` crate.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod convert;
pub mod display;
pub mod pattern;
pub mod text;
