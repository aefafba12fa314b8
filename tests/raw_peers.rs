//! Raw channels against independent peers: the cpp_py_shmbuf-compatible C++ producer and
//! consumer of the Windows harness (`tests/windows/cpp`, written from the protocol's layout,
//! no shmframes code), built here for Linux (`shm_open("/NAME")`) with the system's C++
//! compiler. Their producer's frames read by our `Reader`, and our raw `Writer`'s frames
//! checked by their consumer, both with frames that split at the ring's end.
//!
//! On Windows the same tests run against their Win32 build (`CreateFileMappingA`), compiled
//! beforehand: `SHMFRAMES_RAW_PEERS` names the folder of `raw_producer.exe` and
//! `raw_consumer.exe` (tests/windows/run.sh builds them with mingw-w64 and sets it; under
//! Wine a test program cannot run a compiler). Without it, they are compiled with `c++` as
//! on Linux (a mingw-w64 toolchain on Windows).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shmframes::{FrameShape, PixelFormat, Reader, ReaderOptions, Writer, WriterOptions};

/// The test pattern of `tests/windows/cpp/shmring.h` (`ring::pattern`): frame `i`, BGR.
fn pattern(w: u32, h: u32, i: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            px.extend_from_slice(&[(x + i) as u8, (y + 2 * i) as u8, (x ^ y ^ i) as u8]);
        }
    }
    px
}

/// The two programs, compiled once per run (or found in `SHMFRAMES_RAW_PEERS`); `None` (the
/// tests then say so and pass) when there is no C++ compiler.
fn peers() -> Option<&'static (PathBuf, PathBuf)> {
    static BUILT: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(dir) = std::env::var_os("SHMFRAMES_RAW_PEERS") {
                let dir = PathBuf::from(dir);
                let exe = |p: &str| dir.join(format!("{p}{}", std::env::consts::EXE_SUFFIX));
                let (producer, consumer) = (exe("raw_producer"), exe("raw_consumer"));
                assert!(
                    producer.is_file() && consumer.is_file(),
                    "SHMFRAMES_RAW_PEERS={}: no raw_producer and raw_consumer there",
                    dir.display()
                );
                return Some((producer, consumer));
            }
            let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/windows/cpp");
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("raw_peers");
            std::fs::create_dir_all(&out).unwrap();
            let mut built = Vec::new();
            for p in ["raw_producer", "raw_consumer"] {
                let exe = out.join(format!("{p}{}", std::env::consts::EXE_SUFFIX));
                // (-static on Windows: no libstdc++ DLL to find beside the test program)
                let status = match Command::new("c++")
                    .args(["-std=c++14", "-O2", "-Wall"])
                    .args(cfg!(windows).then_some("-static"))
                    .arg("-o")
                    .arg(&exe)
                    .arg(src.join(format!("{p}.cpp")))
                    .status()
                {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("raw_peers: no C++ compiler ({e}): skipped");
                        return None;
                    }
                };
                assert!(status.success(), "cannot compile {p}.cpp");
                built.push(exe);
            }
            let consumer = built.pop().unwrap();
            Some((built.pop().unwrap(), consumer))
        })
        .as_ref()
}

fn their_producer_to_our_reader(w: u32, h: u32, frames: u32, in_ring: u32) {
    let Some((producer, _)) = peers() else { return };
    let ch = common::Channel::new("cpp-raw");
    let child = common::ChildGuard(Some(
        Command::new(producer)
            .args([&*ch, &w.to_string(), &h.to_string(), &frames.to_string()])
            .args([&in_ring.to_string(), "20"])
            .spawn()
            .unwrap(),
    ));
    let shape = FrameShape::packed(w, h, PixelFormat::Bgr24).unwrap();
    let opts = ReaderOptions { raw: Some(shape), ..Default::default() };
    // Their producer creates, sizes, then writes the header: retry until it is readable.
    let start = Instant::now();
    let mut reader = loop {
        match Reader::open(&ch, &opts) {
            Ok(r) => break r,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("cannot open their channel: {e}"),
        }
    };
    for i in 0..frames {
        let f = reader.read(Duration::from_secs(5)).unwrap().expect("a frame within 5 s");
        assert!(f.is_raw());
        assert!(f.pixels() == &pattern(w, h, i)[..], "frame {i} differs from their pattern");
    }
    drop(reader);
    // Their producer exits 0 once every byte was consumed.
    assert!(child.wait().success(), "their producer did not see every frame consumed");
}

#[test]
fn their_raw_producer_read_by_our_reader() {
    their_producer_to_our_reader(64, 48, 60, 3);
}

#[test]
fn their_raw_producer_split_frames_read_by_our_reader() {
    // 33x7 BGR in a 1024-byte ring: most frames split at its end (copied out by the reader).
    their_producer_to_our_reader(33, 7, 200, 2);
}

fn our_writer_to_their_consumer(w: u32, h: u32, frames: u32, buffer_frames: u32) {
    let Some((_, consumer)) = peers() else { return };
    let ch = common::Channel::new("cpp-raw");
    let mut opts = WriterOptions::new(w, h, PixelFormat::Bgr24).unwrap();
    opts.raw = true;
    opts.buffer_frames = buffer_frames;
    let mut writer = Writer::create(&ch, &opts).unwrap();
    let child = common::ChildGuard(Some(
        Command::new(consumer)
            .args([&*ch, &w.to_string(), &h.to_string(), &frames.to_string(), "20"])
            .spawn()
            .unwrap(),
    ));
    for i in 0..frames {
        assert!(
            writer.write(&pattern(w, h, i), None, Duration::from_secs(10)).unwrap(),
            "frame {i}"
        );
    }
    assert!(child.wait().success(), "their consumer did not read every frame correctly");
    writer.close().unwrap();
}

#[test]
fn our_raw_writer_read_by_their_consumer() {
    our_writer_to_their_consumer(64, 48, 60, 3);
}

#[test]
fn our_raw_writer_split_frames_read_by_their_consumer() {
    our_writer_to_their_consumer(33, 7, 200, 1);
}
