//! cpp_py_shmbuf's own segment images (tests/vectors, written by its C++ ByteRingBuffer):
//! our consumer reads exactly the pending payloads, and our producer, applying the same
//! operations to a zero-filled segment, produces the same bytes.

mod common;

use std::ptr::NonNull;
#[cfg(unix)]
use std::time::Duration;

use serde_json::Value;
use shmframes::ring::{self, Consumer, Producer, RingMemory};
#[cfg(unix)]
use shmframes::{FrameShape, PixelFormat, Reader, ReaderOptions};

fn vectors() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/vectors.json")).unwrap())
            .unwrap();
    json["vectors"].as_array().unwrap().clone()
}

fn image(v: &Value) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
    std::fs::read(format!("{dir}/{}", v["file"].as_str().unwrap())).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A 4-byte aligned heap copy of a segment.
struct Aligned(Vec<u32>, usize);
impl Aligned {
    fn from(bytes: &[u8]) -> Aligned {
        let mut v = vec![0u32; bytes.len().div_ceil(4)];
        // SAFETY: v has at least bytes.len() bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len())
        };
        Aligned(v, bytes.len())
    }
    fn ptr(&mut self) -> NonNull<u8> {
        NonNull::new(self.0.as_mut_ptr().cast()).unwrap()
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: the Vec holds at least self.1 initialised bytes.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), self.1) }
    }
}

fn pending(v: &Value) -> Vec<Vec<u8>> {
    v["pending"].as_array().unwrap().iter().map(|p| hex(p.as_str().unwrap())).collect()
}

#[test]
fn our_consumer_reads_their_images() {
    for v in vectors() {
        let name = v["file"].as_str().unwrap();
        let img = image(&v);
        assert_eq!(img.len() as u64, v["segment_size"].as_u64().unwrap(), "{name}");
        let mut buf = Aligned::from(&img);
        // SAFETY: the buffer outlives the consumer; one consumer.
        let mem = unsafe { RingMemory::attach(buf.ptr(), buf.1) }.unwrap();
        assert_eq!(mem.capacity() as u64, v["capacity"].as_u64().unwrap(), "{name}");
        // SAFETY: as above.
        let mut c = unsafe { Consumer::new(mem) };
        let mut got = Vec::new();
        let mut out = Vec::new();
        while c.pop(&mut out).unwrap() {
            got.push(out.clone());
        }
        assert_eq!(got, pending(&v), "{name}");
        assert_eq!(c.tail() as u64, v["head"].as_u64().unwrap(), "{name}: consumed up to head");
    }
}

#[test]
fn our_producer_writes_their_bytes() {
    for v in vectors() {
        let name = v["file"].as_str().unwrap();
        let size = v["segment_size"].as_u64().unwrap() as usize;
        let capacity = ring::capacity_rounded_down(size).unwrap();
        let mut buf = Aligned::from(&vec![0u8; size]);
        let start = v["start_index"].as_u64().unwrap() as u32;
        // SAFETY: the buffer outlives both roles; one producer, one consumer.
        let (mut p, mut c) = unsafe {
            let mem = RingMemory::init(buf.ptr(), size, capacity, start, 0).unwrap();
            (Producer::new(mem).unwrap(), Consumer::new(mem))
        };
        let mut out = Vec::new();
        for op in v["ops"].as_array().unwrap() {
            let data = hex(op["hex"].as_str().unwrap());
            match op["op"].as_str().unwrap() {
                "write" => assert_eq!(
                    p.push(&data).is_ok(),
                    op["ok"].as_bool().unwrap(),
                    "{name}: write {op}"
                ),
                "read" => {
                    assert!(c.pop(&mut out).unwrap(), "{name}: read {op}");
                    assert_eq!(out, data, "{name}: read {op}");
                }
                other => panic!("unknown op {other}"),
            }
        }
        assert_eq!(buf.bytes(), &image(&v)[..], "{name}: bytes differ from cpp_py_shmbuf's image");
    }
}

/// Their C++ producer's segment, placed under a real name: our Reader reads it in raw mode.
#[test]
#[cfg(unix)] // writes the images as files into /dev/shm
fn reader_reads_their_segments_from_dev_shm() {
    for v in vectors() {
        let pend = pending(&v);
        // Raw frames have one size: use the images whose pending payloads share a length.
        if pend.is_empty() || pend.iter().any(|p| p.len() != pend[0].len()) {
            continue;
        }
        let ch = common::Channel::new("vec");
        std::fs::write(ch.path(), image(&v)).unwrap();
        let shape = FrameShape::packed(pend[0].len() as u32, 1, PixelFormat::Gray8).unwrap();
        let opts = ReaderOptions { raw: Some(shape), ..Default::default() };
        let mut r = Reader::open(&ch, &opts).unwrap();
        for (i, p) in pend.iter().enumerate() {
            let f = r.read(Some(Duration::from_secs(2))).unwrap().expect("pending frame");
            assert_eq!(f.pixels(), &p[..], "{}: frame {i}", v["file"]);
            assert!(f.is_raw());
            assert_eq!(f.seq(), i as u64);
        }
        // Their producer announces nothing: no more frames means a timeout, not an error.
        assert!(r.read(Some(Duration::from_millis(30))).unwrap().is_none());
        drop(r);
        assert!(ch.exists(), "a reader must never remove the producer's segment");
    }
}
