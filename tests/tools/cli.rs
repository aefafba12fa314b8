//! What each binary says about itself, and `frame-stats` as a user runs it (issue 15): its own
//! name and description in `--help` and `--version`, examples, negative numbers refused with the
//! right words, `--list` of every channel (ours and cpp_py_shmbuf's), a summary on Ctrl+C.

#[path = "../common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Channel, ChildGuard};

const PRODUCER: &str = env!("CARGO_BIN_EXE_frame-producer");
const VIEWER: &str = env!("CARGO_BIN_EXE_frame-viewer");
const STATS: &str = env!("CARGO_BIN_EXE_frame-stats");

fn out(bin: &str, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(bin).args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn each_binary_speaks_for_itself() {
    for (bin, name, about, example) in [
        (PRODUCER, "frame-producer", "Publishes live video frames", "frame-producer --camera 0"),
        (VIEWER, "frame-viewer", "Shows a shmframes channel in a window", "Keys: q or Esc quit"),
        (STATS, "frame-stats", "Reads a shmframes channel", "frame-stats --list"),
    ] {
        let (ok, help, _) = out(bin, &["--help"]);
        assert!(
            ok && help.starts_with(about),
            "{name} --help begins: {:?}",
            &help[..help.len().min(80)]
        );
        assert!(help.contains(example), "{name} --help lacks {example:?}");
        let (ok, version, _) = out(bin, &["--version"]);
        assert!(ok && version.starts_with(&format!("{name} ")), "{name} --version: {version:?}");
    }
    // A negative number is a value, refused for what it is (not taken for a flag).
    let (ok, _, err) = out(STATS, &["--timeout", "-1"]);
    assert!(!ok && err.contains("not a number of seconds >= 0"), "{err}");
    let (ok, _, err) = out(VIEWER, &["--timeout", "-1"]);
    assert!(!ok && err.contains("not a number of seconds >= 0"), "{err}");
}

#[test]
fn the_list_shows_every_channel_without_attaching() {
    let ours = Channel::new("listours");
    let theirs = Channel::new("listcpp");
    // A cpp_py_shmbuf segment: header (head, tail, capacity 64, reserved 0) and its data.
    let mut seg = vec![0u8; 16 + 64];
    seg[8..12].copy_from_slice(&64u32.to_le_bytes());
    std::fs::write(theirs.path(), &seg).unwrap();
    let _p = ChildGuard(Some(
        Command::new(PRODUCER)
            .args(["--name", &ours, "--size", "320x240", "--fps", "50", "--quiet"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    assert!(common::wait_until(20.0, || ours.exists()));
    let mut listing = String::new();
    // Until it has published a frame (its shape comes from one).
    for _ in 0..100 {
        listing = out(STATS, &["--list"]).1;
        if listing.lines().any(|l| l.starts_with(&ours.0) && l.contains("320x240 bgr")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = |n: &str| {
        listing
            .lines()
            .find(|l| l.split_whitespace().next() == Some(n))
            .unwrap_or_else(|| panic!("{n} not listed:\n{listing}"))
            .to_owned()
    };
    let mine = line(&ours);
    assert!(
        mine.contains("live")
            && mine.contains("framed")
            && mine.contains("320x240 bgr")
            && mine.contains("frame-producer["),
        "{mine}"
    );
    let cpp = line(&theirs);
    assert!(cpp.contains("unknown") && cpp.contains("cpp_py_shmbuf"), "{cpp}");
    assert_eq!(shmframes::readers_of(&ours).unwrap().len(), 0, "listing attached as a reader");
}

#[test]
fn ctrl_c_prints_the_summary() {
    let ch = Channel::new("statsint");
    let _p = ChildGuard(Some(
        Command::new(PRODUCER)
            .args(["--name", &ch, "--size", "64x48", "--fps", "100", "--quiet"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    assert!(common::wait_until(20.0, || ch.exists()));
    let mut child = Command::new(STATS).arg(&ch.0).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut stats = ChildGuard(Some(child));
    // Every line it prints, from a thread: signal it once it reads (its first line a second).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first =
        rx.recv_timeout(Duration::from_secs(30)).expect("frame-stats printed nothing in 30 s");
    assert!(first.starts_with(&format!("[{}]", ch.0)), "{first}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(stats.pid() as i32, libc::SIGINT) };
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        rest.push(line); // ends when frame-stats exits (its stderr closes)
    }
    let status = stats.0.take().unwrap().wait().unwrap();
    assert!(status.success(), "{rest:?}");
    let last = rest.last().cloned().unwrap_or_default();
    assert!(last.contains("total: ") && last.contains("latency p50"), "{rest:?}");
}
