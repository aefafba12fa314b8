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

/// A `--wake` argument: `anticipate` (the default: wake just before a steady producer's next
/// frame is due) or `publish` (always sleep until the producer's wake-up).
pub fn parse_wake(s: &str) -> Result<shmframes::Wake, String> {
    match s {
        "anticipate" => Ok(shmframes::Wake::Anticipate),
        "publish" => Ok(shmframes::Wake::Publish),
        _ => Err(format!("{s:?} is neither anticipate (the default) nor publish")),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_and_seconds_arguments() {
        assert_eq!(parse_wake("anticipate"), Ok(shmframes::Wake::Anticipate));
        assert_eq!(parse_wake("publish"), Ok(shmframes::Wake::Publish));
        let e = parse_wake("Publish").unwrap_err();
        assert!(e.contains("neither anticipate (the default) nor publish"), "{e}");
        assert_eq!(parse_secs("inf"), Ok(std::time::Duration::MAX));
        assert!(parse_secs("-1").is_err());
    }
}
