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

/// A `--timeout`-style argument: seconds (fractions allowed), `>= 0`; the error says so (for
/// clap's `value_parser`, with `allow_negative_numbers` so that `-1` reaches it).
pub fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    if s == "inf" {
        return Ok(std::time::Duration::MAX); // for ever
    }
    s.parse::<f64>()
        .ok()
        .and_then(|v| std::time::Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds >= 0 (or inf: for ever)"))
}
