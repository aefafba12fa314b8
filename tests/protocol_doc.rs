//! docs/protocol.md against the code: every row of its layout tables (offsets, sizes, names)
//! is checked, against the code's constants where the crate exports them (the frame header's
//! `frame::fields`, the reserved word's bits, the ring header's length, the format table) and
//! otherwise against the bytes a real producer and reader leave in a segment (the ring header,
//! the reader table, reader entries, lock bytes). A row the test does not know fails it: a new
//! word in the docs needs a check here.
#![cfg(unix)] // checks the docs against the code once; its lock probe is Unix's

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Duration;

use shmframes::{
    control, format::FORMATS, frame, ring, PixelFormat, Reader, ReaderOptions, Writer,
    WriterOptions,
};

const DOC: &str = include_str!("../docs/protocol.md");

/// The rows of the first Markdown table after `marker`, as cells (header and separator
/// dropped).
fn table_after(marker: &str) -> Vec<Vec<String>> {
    let start = DOC.find(marker).unwrap_or_else(|| panic!("docs/protocol.md has no {marker:?}"));
    let rows: Vec<Vec<String>> = DOC[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim().trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect())
        .collect();
    assert!(rows.len() > 2, "no table after {marker:?}");
    rows.into_iter().skip(2).collect()
}

/// The first `backticked` word of a cell, else the cell.
fn name(cell: &str) -> &str {
    match cell.split('`').nth(1) {
        Some(n) if cell.contains('`') => n,
        _ => cell,
    }
}

fn num(cell: &str) -> usize {
    cell.parse().unwrap_or_else(|_| panic!("{cell:?} is not a number"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A channel name unique to this test; its segment is removed when the test ends.
struct Channel(String);

impl Channel {
    fn new(tag: &str) -> Channel {
        Channel(format!("protocol-doc-{}-{tag}", std::process::id()))
    }
    fn bytes(&self) -> Vec<u8> {
        std::fs::read(format!("/dev/shm/{}", self.0)).expect("the segment")
    }
    /// Whether someone holds a lock on byte `b` of the segment file (an open-file-description
    /// lock query from a description of our own, so our own producer's locks show too).
    fn byte_locked(&self, b: i64) -> bool {
        let f = File::open(format!("/dev/shm/{}", self.0)).expect("the segment");
        // SAFETY: an all-zero flock is a valid value of this plain C struct.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = b;
        fl.l_len = 1;
        // SAFETY: a valid descriptor and a pointer to a flock that lives across the call.
        let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
        assert_eq!(rc, 0, "F_OFD_GETLK: {}", std::io::Error::last_os_error());
        fl.l_type != libc::F_UNLCK as libc::c_short
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
    }
}

fn opts(w: u32, h: u32) -> WriterOptions {
    WriterOptions::new(w, h, PixelFormat::Gray8).expect("a shape")
}

fn publish(w: &mut Writer) {
    let mut slot = w.try_frame().expect("no error").expect("room");
    slot.pixels().fill(7);
    slot.publish();
}

#[test]
fn the_ring_header_table_is_what_a_raw_producer_writes() {
    let ch = Channel::new("ring");
    let mut o = opts(8, 8);
    o.raw = true;
    let mut w = Writer::create(&ch.0, &o).expect("a raw channel");
    publish(&mut w);
    let b = ch.bytes();
    let rows = table_after("## Fixed: the cpp_py_shmbuf ring");
    for r in &rows {
        let (offset, field) = (num(&r[0]), name(&r[2]));
        match field {
            "head" => {
                assert_eq!(r[1], "4");
                assert_eq!(
                    u32_at(&b, offset),
                    4 + 64,
                    "head: a 4-byte prefix and 64 pixels written"
                )
            }
            "tail" => {
                assert_eq!(r[1], "4");
                assert_eq!(u32_at(&b, offset), 0, "tail: nothing consumed")
            }
            "capacity" => {
                assert_eq!(r[1], "4");
                assert_eq!(u32_at(&b, offset), w.capacity())
            }
            "reserved" => {
                assert_eq!((offset, r[1].as_str()), (ring::RESERVED_OFFSET, "4"));
                assert_eq!(u32_at(&b, offset), control::initial(false))
            }
            f if f.starts_with("data area") => {
                assert_eq!((offset, r[1].as_str()), (ring::HEADER_LEN, "capacity"));
                assert_eq!(u32_at(&b, offset), 64, "the first message's length prefix");
                assert!(b[offset + 4..offset + 4 + 64].iter().all(|&x| x == 7), "its payload");
                assert_eq!(b.len(), offset + w.capacity() as usize, "the segment's size");
            }
            other => panic!("no check for the ring header's row {other:?}: add one"),
        }
    }
    assert_eq!(rows.len(), 5);
}

#[test]
fn the_reserved_word_table_is_the_control_constants() {
    let rows = table_after("**The reserved word**");
    for r in &rows {
        let bits = r[0].as_str();
        match (bits, name(&r[1])) {
            ("31..16", _) => {
                assert!(r[1].contains("`0x5346`"), "{r:?}");
                assert_eq!(control::MARK, 0x5346 << 16);
                assert_eq!(control::initial(true) >> 16, 0x5346);
            }
            ("15..8", _) => {
                assert!(r[1].contains("2 framed") && r[1].contains("1 raw"), "{r:?}");
                assert_eq!((control::initial(true) >> 8) & 0xFF, control::VERSION_TABLE);
                assert_eq!((control::initial(false) >> 8) & 0xFF, control::VERSION);
                assert_eq!((control::VERSION_TABLE, control::VERSION), (2, 1));
            }
            ("0", "FRAMED") => assert_eq!(control::FRAMED, 1 << 0),
            ("1", "CLOSED") => assert_eq!(control::CLOSED, 1 << 1),
            ("2", "CONSUMER_SLEEPING") => assert_eq!(control::CONSUMER_SLEEPING, 1 << 2),
            ("3", "PRODUCER_SLEEPING") => assert_eq!(control::PRODUCER_SLEEPING, 1 << 3),
            other => panic!("no check for the reserved word's row {other:?}: add one"),
        }
    }
    assert_eq!(rows.len(), 6);
}

#[test]
fn the_frame_header_table_is_frame_fields() {
    use frame::fields;
    let len = frame::FRAME_HEADER_LEN;
    assert!(DOC.contains(&format!("starts with a {len}-byte little-endian header")));
    let rows = table_after("**Frame messages.**");
    let mut end = 0;
    for r in &rows {
        let (offset, size, field) = (num(&r[0]), r[1].as_str(), r[2].as_str());
        let range = match field {
            f if f.starts_with("magic") => {
                assert!(f.contains("b\"SHMF\"") && frame::MAGIC == *b"SHMF");
                fields::MAGIC
            }
            f if f.starts_with("version") => {
                assert!(f.ends_with(&format!(", {}", frame::FRAME_VERSION)), "{f}");
                fields::VERSION
            }
            f if f.starts_with("kind") => fields::KIND,
            f if f.starts_with("width") => fields::WIDTH,
            f if f.starts_with("height") => fields::HEIGHT,
            f if f.starts_with("stride") => fields::STRIDE,
            f if f.starts_with("pixel format code") => fields::FORMAT,
            f if f.starts_with("sequence number") => fields::SEQ,
            f if f.starts_with("capture time") => fields::CAPTURE_NS,
            f if f.starts_with("publish time") => fields::PUBLISH_NS,
            f if f.starts_with("pixel bytes") => fields::PIXEL_BYTES,
            f if f.starts_with("reserved") => fields::RESERVED,
            f if f.starts_with("pixels") => {
                assert_eq!((offset, size), (len, "pixel bytes"));
                continue;
            }
            other => panic!("no check for the frame header's row {other:?}: add one"),
        };
        assert_eq!((offset, num(size)), (range.start, range.len()), "{field}");
        assert_eq!(offset, end, "{field}: the fields tile the header");
        end = range.end;
    }
    assert_eq!(end, len, "the rows cover the whole header");
}

#[test]
fn the_reader_table_and_entry_tables_are_what_a_producer_and_a_reader_write() {
    let ch = Channel::new("table");
    let mut o = opts(64, 48);
    o.buffer_frames = 3;
    let mut w = Writer::create(&ch.0, &o).expect("a framed channel");
    let ro = ReaderOptions { timeout: Duration::from_secs(5), ..Default::default() };
    let mut r = Reader::open(&ch.0, &ro).expect("a reader");
    for _ in 0..3 {
        publish(&mut w);
    }
    let first = r.read(Duration::from_secs(5)).expect("no error").expect("frame 0");
    drop(first); // gives its slot back: `room` is bumped
    let held = r.read(Duration::from_secs(5)).expect("no error").expect("frame 1");
    let b = ch.bytes();
    let slots = w.slots().expect("a framed channel") as usize;
    let base = (16 + w.capacity() as usize).next_multiple_of(64);
    assert!(DOC.contains("**The table** starts at `16 + capacity` rounded up to 64"));
    let t = &b[base..];

    let rows = table_after("**The table** starts");
    for row in &rows {
        let (size, word) = (row[1].as_str(), row[2].as_str());
        let at = || num(&row[0]);
        let key = match word {
            w if w.starts_with("magic") => "magic",
            w if w.starts_with("table version") => "version",
            w if w.starts_with("reader entry") => "entry",
            w => name(w),
        };
        match key {
            "magic" => {
                assert!(word.contains("b\"SFRT\"") && size == "4");
                assert_eq!(&t[at()..at() + 4], b"SFRT")
            }
            "version" => {
                assert!(word.ends_with(", 1") && size == "4");
                assert_eq!(u32_at(t, at()), 1)
            }
            "slots" => assert_eq!(u32_at(t, at()) as usize, slots),
            "slot_len" => {
                let len = u32_at(t, at());
                assert!(len % 64 == 0 && len as usize >= 4 + frame::FRAME_HEADER_LEN + 64 * 48);
                assert!(len as usize * slots <= w.capacity() as usize, "slots lie in the data area")
            }
            "max_readers" => assert_eq!(u32_at(t, at()), o.max_readers),
            "table_len" => {
                assert_eq!(base + u32_at(t, at()) as usize, b.len(), "the table ends it")
            }
            "count" => assert_eq!((size, u64_at(t, at())), ("8", 3), "three frames published"),
            "published" => assert_eq!((size, u32_at(t, at())), ("4", 3)),
            "sleepers" => assert_eq!((size, u32_at(t, at())), ("4", 0), "nobody sleeps"),
            "room" => assert!(size == "4" && u32_at(t, at()) >= 1, "bumped by the release"),
            "seq[k]" => {
                assert_eq!(size, "8 per slot");
                let mut seq: Vec<u64> = (0..slots).map(|k| u64_at(t, at() + 8 * k)).collect();
                seq.sort_unstable();
                let mut want = vec![0, 1, 2];
                want.resize(slots, u64::MAX); // the others: empty
                assert_eq!(seq, want);
            }
            "entry" => {
                assert_eq!(
                    (row[0].as_str(), size),
                    ("128 + 8·slots, rounded up to 64", "64 per reader")
                );
                let entry = &t[(128 + 8 * slots).next_multiple_of(64)..][..64];
                check_entry(entry, t, slots);
            }
            other => panic!("no check for the reader table's row {other:?}: add one"),
        }
    }
    assert_eq!(rows.len(), 12);

    // Lock bytes: the producer's, reader 0's; no consumer byte on a framed channel.
    for row in &table_after("| lock byte |") {
        match row[0].as_str() {
            "0" => assert!(ch.byte_locked(0), "the producer holds byte 0"),
            "1" => assert!(!ch.byte_locked(1), "a framed channel has no ring consumer"),
            "2 + r" => {
                assert!(ch.byte_locked(2), "reader 0 holds byte 2");
                assert!(!ch.byte_locked(3), "no reader 1");
            }
            other => panic!("no check for the lock byte row {other:?}: add one"),
        }
    }
    drop(held);
}

/// Reader entry 0 (`entry`), which holds frame 1 and read two frames.
fn check_entry(entry: &[u8], table: &[u8], slots: usize) {
    let rows = table_after("A reader entry (one cache line)");
    for row in &rows {
        let (at, size) = (num(&row[0]), row[1].as_str());
        let word = row[2].as_str();
        match name(word) {
            "claim" => {
                assert_eq!(size, "8");
                assert!(word.contains("bit 32 `ACTIVE`") && word.contains("bit 33 `LOSSLESS`"));
                let claim = u64_at(entry, at);
                assert_ne!(claim & (1 << 32), 0, "ACTIVE");
                assert_eq!(claim & (1 << 33), 0, "not LOSSLESS");
                let held = claim & 0xFFFF_FFFF;
                assert_eq!(held.count_ones(), 1, "one slot held: {claim:#x}");
                let k = held.trailing_zeros() as usize;
                assert!(k < slots);
                assert_eq!(u64_at(table, 128 + 8 * k), 1, "the held slot holds frame 1");
            }
            "next" => assert_eq!((size, u64_at(entry, at)), ("8", 2)),
            "read" => assert_eq!((size, u64_at(entry, at)), ("8", 2)),
            "dropped" => assert_eq!((size, u64_at(entry, at)), ("8", 0)),
            "pid" => assert_eq!((size, u32_at(entry, at)), ("4", std::process::id())),
            "reader_live" | "producer_live" => {
                // A keeper's thread id, where the kernel watches liveness (0 where it cannot).
                assert_eq!(size, "4");
                let word = u32_at(entry, at);
                if word != 0 {
                    assert_ne!(word, std::process::id(), "a keeper thread's id, not the pid");
                }
            }
            _ if word.contains("robust-list node") => {
                assert_eq!(size, "8");
                // The node sits right after its word: a keeper that wrote a word registered it.
                let word = u32_at(entry, at - 4);
                if word != 0 {
                    assert_ne!(u64_at(entry, at), 0, "a registered node at {at}");
                }
            }
            other => panic!("no check for the reader entry's row {other:?}: add one"),
        }
    }
    assert_eq!(rows.len(), 9);
}

#[test]
fn a_raw_consumer_holds_lock_byte_1() {
    let ch = Channel::new("raw-lock");
    let mut o = opts(8, 8);
    o.raw = true;
    let _w = Writer::create(&ch.0, &o).expect("a raw channel");
    assert!(ch.byte_locked(0) && !ch.byte_locked(1));
    let shape = shmframes::FrameShape::packed(8, 8, PixelFormat::Gray8).expect("a shape");
    let ro = ReaderOptions { raw: Some(shape), ..Default::default() };
    let _r = Reader::open(&ch.0, &ro).expect("the consumer");
    assert!(ch.byte_locked(1), "the ring's one consumer holds byte 1");
}

#[test]
fn the_format_table_is_format_formats() {
    let rows = table_after("## Pixel formats and planes");
    assert_eq!(rows.len(), FORMATS.len());
    for (row, info) in rows.iter().zip(FORMATS.iter()) {
        assert_eq!((num(&row[0]) as u32, row[1].as_str()), (info.code, info.name));
    }
}
