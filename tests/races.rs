//! Races and permissions: who wins when two readers or two producers race for one channel,
//! and what users without the right permissions get.

mod common;

#[cfg(unix)]
use std::os::unix::process::CommandExt;
use std::sync::{Arc, Barrier};
use std::time::Duration;

#[cfg(unix)]
use common::child_role;
use common::Channel;
use shmframes::{Error, PixelFormat, Reader, ReaderOptions, Writer, WriterOptions};

fn opts() -> WriterOptions {
    let mut o = WriterOptions::new(16, 16, PixelFormat::Gray8).unwrap();
    o.buffer_frames = 2;
    o
}

/// Runs `f` on `n` threads released together by a barrier; returns their results.
fn race<T: Send + 'static>(n: usize, f: impl Fn() -> T + Send + Sync + 'static) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (b, f) = (barrier.clone(), f.clone());
            std::thread::spawn(move || {
                b.wait();
                f()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn readers_racing_for_places_get_distinct_places_up_to_the_limit() {
    for (raw, places) in [(false, 3usize), (true, 1)] {
        for round in 0..20 {
            let ch = Channel::new("rr");
            let mut o = opts();
            o.max_readers = 3;
            o.raw = raw;
            let _w = Writer::create(&ch, &o).unwrap();
            let name = ch.0.clone();
            let shape = o.shape;
            let tried = Arc::new(Barrier::new(6));
            let results = race(6, move || {
                let r = Reader::open(
                    &name,
                    &ReaderOptions { raw: raw.then_some(shape), ..Default::default() },
                );
                // Keep the place until every racer has tried (a barrier, not a sleep: a racer
                // started late on a loaded machine must still find the places taken).
                tried.wait();
                r.map(|_| ())
            });
            let winners = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(
                winners, places,
                "raw={raw} round {round}: {winners} readers attached, {places} places"
            );
            for r in &results {
                if let Err(e) = r {
                    assert!(matches!(e, Error::ChannelBusy { .. }), "round {round}: {e}");
                }
            }
        }
    }
    // Distinct places, as the table lists them.
    let ch = Channel::new("rrlist");
    let _w = Writer::create(&ch, &opts()).unwrap();
    let name = ch.0.clone();
    let readers = race(4, move || Reader::open(&name, &ReaderOptions::default()).unwrap());
    let mut places: Vec<usize> =
        shmframes::readers_of(&ch).unwrap().iter().map(|r| r.place).collect();
    places.sort();
    assert_eq!(places, vec![0, 1, 2, 3]);
    drop(readers);
    assert!(shmframes::readers_of(&ch).unwrap().is_empty());
}

#[test]
fn producers_racing_to_create_exactly_one_wins() {
    // (Windows leaves no stale segments: a section goes with its last handle.)
    for stale in [false, cfg!(unix)] {
        for round in 0..10 {
            let ch = Channel::new("pr");
            if stale {
                // A leftover of a dead producer of ours: marked, lock free.
                let w = Writer::create(&ch, &opts()).unwrap();
                let bytes = std::fs::read(ch.path()).unwrap();
                drop(w);
                std::fs::write(ch.path(), bytes).unwrap();
            }
            let name = ch.0.clone();
            let results = race(6, move || Writer::create(&name, &opts()));
            let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(
                winners.len(),
                1,
                "stale={stale} round {round}: {} producers won",
                winners.len()
            );
            for r in &results {
                if let Err(e) = r {
                    assert!(
                        matches!(e, Error::ProducerAlive { .. }),
                        "stale={stale} round {round}: {e}"
                    );
                    assert!(e.to_string().contains("live producer"), "{e}");
                }
            }
            // The winner's segment is the one under the name, and it works.
            let mut r = Reader::open(&ch, &ReaderOptions::default()).unwrap();
            let w = results.into_iter().find_map(Result::ok).unwrap();
            drop(w);
            assert!(matches!(r.read(Some(Duration::from_secs(5))), Err(Error::EndOfStream { .. })));
            // No temporary files were left behind by the losers.
            #[cfg(unix)]
            let leftovers = std::fs::read_dir("/dev/shm")
                .unwrap()
                .flatten()
                .filter(|e| {
                    e.file_name().to_string_lossy().contains(&ch.0)
                        && e.file_name() != ch.0.as_str()
                })
                .count();
            #[cfg(unix)]
            assert_eq!(leftovers, 0, "temporary segments left in /dev/shm");
        }
    }
}

#[cfg(unix)]
const NOBODY: u32 = 65534;

#[cfg(unix)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The child side of the permission tests: runs as user `nobody`.
#[test]
#[cfg(unix)] // users, modes and symlinks of /dev/shm files
fn child_entry() {
    let Some((role, ch)) = child_role() else { return };
    let code = match role.as_str() {
        "open_as_other_user" => match Reader::open(&ch, &ReaderOptions::default()) {
            Err(Error::PermissionDenied { .. }) => 0,
            other => {
                eprintln!("expected PermissionDenied, got {other:?}");
                1
            }
        },
        other => panic!("unknown role {other}"),
    };
    std::process::exit(code);
}

#[test]
#[cfg(unix)] // users, modes and symlinks of /dev/shm files
fn a_reader_without_permission_gets_a_clear_error() {
    assert!(is_root(), "this test switches to user nobody and needs root (CI runs as root)");
    let ch = Channel::new("perm");
    let _w = Writer::create(&ch, &opts()).unwrap(); // mode 0600, owned by root
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env("SHMFRAMES_CHILD", "open_as_other_user")
        .env("SHMFRAMES_CHANNEL", &ch.0)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "a user without permission did not get PermissionDenied");
    // The error text says what to do.
    let e = Error::PermissionDenied { name: ch.0.clone(), path: ch.path() };
    assert!(e.to_string().contains("run as the producer's user"), "{e}");
}

#[test]
#[cfg(unix)] // users, modes and symlinks of /dev/shm files
fn another_users_leftover_is_never_reused() {
    assert!(is_root(), "this test changes a file's owner and needs root (CI runs as root)");
    let ch = Channel::new("owner");
    let w = Writer::create(&ch, &opts()).unwrap();
    let bytes = std::fs::read(ch.path()).unwrap();
    drop(w);
    std::fs::write(ch.path(), &bytes).unwrap();
    std::os::unix::fs::chown(ch.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let e = Writer::create(&ch, &opts()).unwrap_err();
    assert!(matches!(e, Error::ForeignSegment { uid: NOBODY, .. }), "{e}");
    assert_eq!(std::fs::read(ch.path()).unwrap(), bytes, "the other user's file was touched");
}

#[test]
#[cfg(unix)] // users, modes and symlinks of /dev/shm files
fn creation_never_follows_a_symlink() {
    let ch = Channel::new("symlink");
    let target =
        std::env::temp_dir().join(format!("shmframes-symlink-target-{}", std::process::id()));
    std::fs::write(&target, b"not a segment").unwrap();
    std::os::unix::fs::symlink(&target, ch.path()).unwrap();
    let e = Writer::create(&ch, &opts()).unwrap_err();
    let untouched = std::fs::read(&target).unwrap();
    let still_a_link = std::fs::symlink_metadata(ch.path()).unwrap().file_type().is_symlink();
    let _ = std::fs::remove_file(&target);
    assert_eq!(untouched, b"not a segment", "the symlink's target was written: {e}");
    assert!(still_a_link, "the symlink was replaced: {e}");
}

#[test]
#[cfg(unix)] // users, modes and symlinks of /dev/shm files
fn wider_modes_are_applied_exactly() {
    use std::os::unix::fs::PermissionsExt;
    let ch = Channel::new("mode660");
    let mut o = opts();
    o.mode = 0o660;
    let _w = Writer::create(&ch, &o).unwrap();
    assert_eq!(std::fs::metadata(ch.path()).unwrap().permissions().mode() & 0o777, 0o660);
}
