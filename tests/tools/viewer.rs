//! `frame-viewer` end to end, in a real X server (Xvfb) rendering through Mesa's lavapipe
//! Vulkan: the producer's test pattern must appear in a screenshot of the window, colour bars
//! where they belong, and `--frames` must exit 0. `.ci/setup` installs Xvfb, the Vulkan driver
//! and ImageMagick's `import`.

#[path = "../common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Channel, ChildGuard};
use shmframes_tools::pattern::BARS;

const PRODUCER: &str = env!("CARGO_BIN_EXE_frame-producer");
const VIEWER: &str = env!("CARGO_BIN_EXE_frame-viewer");

/// An Xvfb server on a display number of its own, stopped on drop.
struct Xvfb {
    _server: ChildGuard,
    display: String,
}

impl Xvfb {
    fn start(width: u32, height: u32) -> Xvfb {
        // One display number per server: tests run in parallel threads of one process.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = 100
            + (std::process::id() * 4 + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                % 3200;
        let display = format!(":{n}");
        let server = Command::new("Xvfb")
            .args([&display, "-screen", "0", &format!("{width}x{height}x24"), "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is missing: run .ci/setup (Debian package xvfb)");
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        assert!(common::wait_until(20.0, || socket.exists()), "Xvfb did not start on {display}");
        Xvfb { _server: ChildGuard(Some(server)), display }
    }

    /// `frame-viewer` with `args`, on this display.
    fn viewer(&self, args: &[&str]) -> Command {
        let mut c = Command::new(VIEWER);
        c.args(args).env("DISPLAY", &self.display).env_remove("WAYLAND_DISPLAY");
        c
    }

    /// The whole screen as RGB8.
    fn screenshot(&self) -> image::RgbImage {
        let path = std::env::temp_dir().join(format!(
            "shmframes-viewer-{}-{}.png",
            std::process::id(),
            &self.display[1..]
        ));
        let ok = Command::new("import")
            .args(["-display", &self.display, "-window", "root", path.to_str().unwrap()])
            .status()
            .expect("ImageMagick's import is missing: run .ci/setup (Debian package imagemagick)")
            .success();
        assert!(ok, "screenshot failed");
        let img = image::open(&path).expect("read the screenshot").to_rgb8();
        let _ = std::fs::remove_file(&path);
        img
    }
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| (*x as i32 - y as i32).abs() <= 8)
}

#[test]
fn test_pattern_shows_in_the_window_and_frames_exits_0() {
    let (w, h) = (1280u32, 720u32);
    let x = Xvfb::start(w, h);
    let ch = Channel::new("viewer");
    let _producer = ChildGuard(Some(
        Command::new(PRODUCER)
            .args(["--name", &ch, "--size", &format!("{w}x{h}"), "--fps", "30", "--quiet"])
            .spawn()
            .unwrap(),
    ));
    let viewer = x
        .viewer(&[&ch, "--frames", "60", "--timeout", "30"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut viewer = ChildGuard(Some(viewer));
    // The window is the size of the screen (no window manager): the frame fills it 1:1.
    let start = Instant::now();
    let mut last = None;
    let found = loop {
        if start.elapsed() > Duration::from_secs(30) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(300));
        let shot = x.screenshot();
        let bars: Vec<[u8; 3]> =
            (0..7).map(|i| shot.get_pixel((2 * i + 1) * w / 14, h / 3).0).collect();
        if bars.iter().zip(BARS.iter()).all(|(got, want)| near(*got, *want)) {
            break true;
        }
        last = Some(bars);
    };
    assert!(found, "colour bars never appeared; last screenshot had {last:?} at the bar centres");
    let out = viewer.0.take().unwrap().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "viewer failed: {stderr}");
    // 60 shown; the newest frame already there when it attached (if one was) is not measured.
    assert!(
        stderr.contains("showed total: 60 frames")
            && (!stderr.contains("published before attaching")
                || stderr.contains("1 of them published before attaching")),
        "{stderr}"
    );
    eprintln!("{}", stderr.trim());
    drop(viewer);
}

#[test]
fn a_broken_segment_is_reported_not_waited_on() {
    let x = Xvfb::start(320, 240);
    let ch = Channel::new("viewerbad");
    // A hand-made segment whose capacity is not a power of two.
    let mut bytes = vec![0u8; 80];
    bytes[8..12].copy_from_slice(&48u32.to_le_bytes());
    std::fs::write(ch.path(), &bytes).unwrap();
    let start = Instant::now();
    let out = x.viewer(&[&ch, "--timeout", "60"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("breaks the shared-memory protocol") && stderr.contains("capacity"),
        "{stderr}"
    );
    assert!(start.elapsed() < Duration::from_secs(30), "reported after {:?}", start.elapsed());
}

#[test]
fn the_window_says_what_it_waits_for() {
    let (w, h) = (640u32, 480u32);
    let x = Xvfb::start(w, h);
    let ch = Channel::new("viewerwait");
    let viewer = x.viewer(&[&ch, "--timeout", "30"]).stderr(Stdio::piped()).spawn().unwrap();
    let _viewer = ChildGuard(Some(viewer));
    // White text in the band at the top of the (otherwise black) window.
    let start = Instant::now();
    let mut white = 0;
    while start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(300));
        let shot = x.screenshot();
        white = (0..h / 8)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| shot.get_pixel(x, y).0.iter().all(|&c| c > 200))
            .count();
        if white > 100 {
            break;
        }
    }
    assert!(white > 100, "no status text in the window ({white} white pixels at the top)");
}

#[test]
fn a_timeout_says_why_no_frame_came() {
    let x = Xvfb::start(320, 240);
    let ch = Channel::new("viewermissing");
    let out = x.viewer(&[&ch, "--timeout", "1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no frame from channel") && stderr.contains("no channel named"),
        "{stderr}"
    );
}

#[test]
fn no_display_is_one_clear_line() {
    let out = Command::new(VIEWER)
        .arg("whatever")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("no display")
            && err.contains("DISPLAY")
            && err.contains("frame-stats whatever"),
        "{err}"
    );
    assert!(!err.contains("panicked") && !err.contains(".cargo") && !err.contains(".rs:"), "{err}");
}

#[test]
fn bad_arguments_are_refused() {
    for (args, needle) in [
        (vec!["--raw", "10"], "WIDTHxHEIGHT"),
        (vec!["--raw", "0x5"], "at least 1"),
        (vec!["--raw-format", "yuv"], "unknown pixel format"),
        (vec!["--timeout", "-1"], "seconds"),
        (vec!["a/b"], "invalid channel name"),
    ] {
        let out = Command::new(VIEWER).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
