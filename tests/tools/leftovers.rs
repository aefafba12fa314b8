//! Nothing left behind (issue 16, point 4): what killed producers leave in /dev/shm is removed
//! by the next producer (half-made temporaries) and by `frame-stats --clean` (dead channels
//! too), never anything alive or foreign.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Channel, ChildGuard};

const PRODUCER: &str = env!("CARGO_BIN_EXE_frame-producer");

/// One test at a time: a producer that starts removes every dead producer's channel, so one
/// test's new producer would take the dead channel another test expects `--clean` to remove.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}
const STATS: &str = env!("CARGO_BIN_EXE_frame-stats");

/// Removed on drop, pass or fail.
struct Fake(PathBuf);

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a producer killed while creating `name` leaves: an unlocked hidden temporary.
fn fake_temporary(name: &str, tag: &str) -> Fake {
    let p = Path::new("/dev/shm").join(format!(".shmframes-tmp-999999-{tag}-0-{name}"));
    std::fs::write(&p, [0u8; 64]).unwrap();
    Fake(p)
}

fn temporaries_of(name: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".shmframes-tmp-") && n.ends_with(name))
        })
        .collect()
}

fn producer(name: &str, extra: &[&str]) -> ChildGuard {
    let child = Command::new(PRODUCER)
        .args(["--name", name, "--quiet", "--size", "64x64", "--fps", "30"])
        .args(extra)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    ChildGuard(Some(child))
}

fn wait_for(path: &Path) {
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(std::time::Instant::now() < end, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn leftovers_of_killed_producers_are_removed_and_nothing_alive_is() {
    let _serial = serial();
    let dead = Channel::new("dead");
    let live = Channel::new("live");
    let foreign = Channel::new("foreign");
    let temp = fake_temporary(&dead, "a");
    std::fs::write(foreign.path(), [0u8; 64]).unwrap(); // cpp_py_shmbuf's, or anyone's: no mark

    // A producer killed with SIGKILL leaves its channel (until the next producer starts, or
    // `--clean`: the live one is started first).
    let _alive = producer(&live, &[]);
    wait_for(&live.path());
    let mut p = producer(&dead, &[]);
    wait_for(&dead.path());
    p.kill9();

    // A temporary may be a producer's between its create and its lock: only old ones go.
    std::thread::sleep(Duration::from_millis(2100));
    let out = Command::new(STATS).arg("--clean").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(!temp.0.exists(), "the dead producer's temporary stayed: {stdout}");
    assert!(!dead.exists(), "the dead channel stayed: {stdout}");
    assert!(stdout.contains(&format!("removed channel {:?}", dead.0)), "{stdout}");
    assert!(live.exists(), "a live channel was removed");
    assert!(foreign.exists(), "a segment shmframes did not make was removed");
}

#[test]
fn a_new_producer_removes_dead_temporaries() {
    let _serial = serial();
    let ch = Channel::new("tmp");
    let _t1 = fake_temporary(&ch, "b");
    let _t2 = fake_temporary(&ch, "c");
    std::thread::sleep(Duration::from_millis(2100));
    let _p = producer(&ch, &[]);
    wait_for(&ch.path());
    assert_eq!(temporaries_of(&ch), Vec::<PathBuf>::new());
}

#[test]
fn producers_killed_at_start_leave_nothing_once_a_new_producer_started() {
    let _serial = serial();
    // Eight producers SIGKILLed in their first 90 ms: some before, some while, some after
    // creating their channel (a temporary, a channel, or nothing).
    let names: Vec<Channel> = (0..8).map(|i| Channel::new(&format!("killed{i}"))).collect();
    for (i, name) in names.iter().enumerate() {
        let mut p = producer(name, &[]);
        std::thread::sleep(Duration::from_millis(5 + 12 * i as u64));
        p.kill9();
    }
    let next = Channel::new("next");
    let _next = producer(&next, &[]);
    wait_for(&next.path());
    for name in &names {
        assert!(!name.exists(), "{} stayed after a new producer started", name.0);
        assert!(temporaries_of(name).is_empty(), "a temporary of {} stayed", name.0);
    }
}
