//! Frame metadata layered on the ring's messages (our extension; the ring itself is unchanged).
//!
//! # Framed messages
//!
//! In framed mode (bit `FRAMED` of the reserved word, see [`crate::control`]) every message
//! payload starts with a 108-byte little-endian header, laid out by [`WireHeader`] (whose field
//! offsets are checked at compile time, and whose byte ranges [`fields`] gives every reader and
//! writer of header bytes); the prose is in `docs/protocol.md`. A filler message may stop after
//! the first [`FRAME_TAG_LEN`] bytes.
//!
//! Why 108: the data area starts 16 bytes into the (page-aligned) segment, and a message has a
//! 4-byte prefix, so 16 + 4 + 108 = 128. Framed messages start at ring indices that are multiples
//! of 64 and are padded to a multiple of 64, so **pixels always start 64-byte aligned in memory**
//! and every frame sits **contiguously** in the data area: when a frame would cross the end, the
//! producer first writes a *filler* message (kind 2, at least the first 8 header bytes, no
//! pixels) over the rest of the area. Readers skip filler. A reader can therefore hand out frames
//! in place, with no copy.
//!
//! # Raw messages
//!
//! A payload without the magic is a *raw* frame: exactly `width * height * bytes_per_pixel`
//! bytes of pixels, as cpp_py_shmbuf's producer sends (BGR). A reader handles it when told the
//! shape and format. Raw payloads may split at the ring's end; the reader then copies them.

use crate::format::{FrameShape, PixelFormat, ShapeError};

/// The frame header as it lies in memory: every field a little-endian byte array, so the
/// struct has no padding and `offset_of!` gives each field's wire offset. Nothing ever
/// references a header in shared memory through this type: encoding and decoding copy bytes at
/// these offsets ([`fields`]), which is all the layout is for.
#[repr(C)]
pub struct WireHeader {
    /// `b"SHMF"`.
    pub magic: [u8; 4],
    /// [`FRAME_VERSION`].
    pub version: [u8; 2],
    /// [`MessageKind`].
    pub kind: [u8; 2],
    /// Width in pixels.
    pub width: [u8; 4],
    /// Height in pixels.
    pub height: [u8; 4],
    /// Bytes per row of the first plane.
    pub stride: [u8; 4],
    /// [`PixelFormat`] wire code.
    pub format: [u8; 4],
    /// Frame sequence number.
    pub seq: [u8; 8],
    /// Capture time, CLOCK_MONOTONIC ns.
    pub capture_ns: [u8; 8],
    /// Publish time, CLOCK_MONOTONIC ns.
    pub publish_ns: [u8; 8],
    /// Pixel bytes (sum over the planes of stride * rows).
    pub pixel_bytes: [u8; 4],
    /// Zero; room for later fields.
    pub reserved: [u8; 56],
}

/// Size of the frame header.
pub const FRAME_HEADER_LEN: usize = std::mem::size_of::<WireHeader>();
/// The part of the header every framed payload has, filler included: magic, version, kind.
pub const FRAME_TAG_LEN: usize = std::mem::offset_of!(WireHeader, width);
/// Alignment of framed messages in the ring (and of pixel data).
pub const FRAME_ALIGN: u32 = 64;
/// The magic at the start of every framed payload.
pub const MAGIC: [u8; 4] = *b"SHMF";
/// Frame header version written and understood.
pub const FRAME_VERSION: u16 = 1;

/// Byte ranges of the header fields, from [`WireHeader`]'s layout: each field runs from its
/// offset to the next field's. Every reader and writer of header bytes uses these.
pub mod fields {
    use super::{WireHeader, FRAME_HEADER_LEN};
    use std::mem::offset_of;
    use std::ops::Range;

    /// `magic`.
    pub const MAGIC: Range<usize> = offset_of!(WireHeader, magic)..offset_of!(WireHeader, version);
    /// `version`.
    pub const VERSION: Range<usize> = offset_of!(WireHeader, version)..offset_of!(WireHeader, kind);
    /// `kind`.
    pub const KIND: Range<usize> = offset_of!(WireHeader, kind)..offset_of!(WireHeader, width);
    /// `width`.
    pub const WIDTH: Range<usize> = offset_of!(WireHeader, width)..offset_of!(WireHeader, height);
    /// `height`.
    pub const HEIGHT: Range<usize> = offset_of!(WireHeader, height)..offset_of!(WireHeader, stride);
    /// `stride`.
    pub const STRIDE: Range<usize> = offset_of!(WireHeader, stride)..offset_of!(WireHeader, format);
    /// `format`.
    pub const FORMAT: Range<usize> = offset_of!(WireHeader, format)..offset_of!(WireHeader, seq);
    /// `seq`.
    pub const SEQ: Range<usize> = offset_of!(WireHeader, seq)..offset_of!(WireHeader, capture_ns);
    /// `capture_ns`.
    pub const CAPTURE_NS: Range<usize> =
        offset_of!(WireHeader, capture_ns)..offset_of!(WireHeader, publish_ns);
    /// `publish_ns`.
    pub const PUBLISH_NS: Range<usize> =
        offset_of!(WireHeader, publish_ns)..offset_of!(WireHeader, pixel_bytes);
    /// `pixel_bytes`.
    pub const PIXEL_BYTES: Range<usize> =
        offset_of!(WireHeader, pixel_bytes)..offset_of!(WireHeader, reserved);
    /// `reserved`.
    pub const RESERVED: Range<usize> = offset_of!(WireHeader, reserved)..FRAME_HEADER_LEN;
}

const _: () = {
    use std::mem::offset_of;
    // The wire layout, fixed (docs/protocol.md): changing any of these breaks every peer.
    assert!(FRAME_HEADER_LEN == 108);
    assert!(offset_of!(WireHeader, version) == 4);
    assert!(offset_of!(WireHeader, kind) == 6);
    assert!(offset_of!(WireHeader, width) == 8);
    assert!(offset_of!(WireHeader, height) == 12);
    assert!(offset_of!(WireHeader, stride) == 16);
    assert!(offset_of!(WireHeader, format) == 20);
    assert!(offset_of!(WireHeader, seq) == 24);
    assert!(offset_of!(WireHeader, capture_ns) == 32);
    assert!(offset_of!(WireHeader, publish_ns) == 40);
    assert!(offset_of!(WireHeader, pixel_bytes) == 48);
    assert!(offset_of!(WireHeader, reserved) == 52);
    assert!(std::mem::align_of::<WireHeader>() == 1);
    // Pixels 64-byte aligned in memory: ring header + length prefix + frame header.
    assert!(
        (crate::ring::HEADER_LEN + crate::ring::PREFIX_LEN as usize + FRAME_HEADER_LEN)
            % FRAME_ALIGN as usize
            == 0
    );
};

/// Size of a framed message with `pixel_bytes` of pixels, prefix and padding included.
pub fn framed_message_len(pixel_bytes: u32) -> u32 {
    (4 + FRAME_HEADER_LEN as u32 + pixel_bytes).div_ceil(FRAME_ALIGN) * FRAME_ALIGN
}

/// Kind of a framed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum MessageKind {
    /// A frame: header plus pixels.
    Frame = 1,
    /// Padding to the end of the data area; skipped by readers.
    Filler = 2,
    /// The producer ended the stream.
    EndOfStream = 3,
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Message kind.
    pub kind: MessageKind,
    /// Shape (meaningful for frames; zeroed otherwise).
    pub shape: Option<FrameShape>,
    /// Sequence number.
    pub seq: u64,
    /// Capture time, CLOCK_MONOTONIC ns.
    pub capture_ns: u64,
    /// Publish time, CLOCK_MONOTONIC ns.
    pub publish_ns: u64,
}

/// Why a framed payload's header cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The payload does not start with [`MAGIC`].
    #[error("payload does not start with the frame magic")]
    NoMagic,
    /// A header version this code does not understand.
    #[error("frame header version {found}, but this reader understands version {FRAME_VERSION}: use matching shmframes versions")]
    Version {
        /// The version found.
        found: u16,
    },
    /// An unknown message kind.
    #[error("unknown message kind {found}")]
    Kind {
        /// The kind found.
        found: u16,
    },
    /// An unknown pixel format code.
    #[error("unknown pixel format code {found}")]
    Format {
        /// The code found.
        found: u32,
    },
    /// Width, height, stride and format that do not make a frame. (Part of the message, not
    /// a `source()`, so that error chains say it once.)
    #[error("frame header: {0}")]
    Shape(ShapeError),
    /// `pixel_bytes` disagrees with the shape.
    #[error("pixel byte count {found} is not the {expected} bytes of a {shape} frame with stride {stride}", stride = shape.stride)]
    PixelBytes {
        /// The count found.
        found: u32,
        /// What the shape implies.
        expected: u32,
        /// The shape.
        shape: FrameShape,
    },
    /// The message is shorter than its header says.
    #[error("a {what} needs {needed} payload bytes but the message has {payload_len}")]
    Short {
        /// "frame header" or the frame's shape.
        what: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes the message has.
        payload_len: u32,
    },
}

impl From<ShapeError> for HeaderError {
    fn from(e: ShapeError) -> HeaderError {
        HeaderError::Shape(e)
    }
}

/// Whether a payload starts with the frame magic.
pub fn has_magic(payload: &[u8]) -> bool {
    payload.get(fields::MAGIC) == Some(&MAGIC[..])
}

fn put(out: &mut [u8], range: std::ops::Range<usize>, bytes: &[u8]) {
    out[range].copy_from_slice(bytes);
}
fn get<const N: usize>(b: &[u8], range: std::ops::Range<usize>) -> [u8; N] {
    b[range].try_into().expect("field ranges match their types")
}

impl FrameHeader {
    /// Encodes into the first [`FRAME_HEADER_LEN`] bytes of `out` (a filler into as many of
    /// them as `out` has, at least [`FRAME_TAG_LEN`]).
    pub fn encode(&self, out: &mut [u8]) {
        let n = out.len().min(FRAME_HEADER_LEN);
        let out = &mut out[..n];
        out.fill(0);
        put(out, fields::MAGIC, &MAGIC);
        put(out, fields::VERSION, &FRAME_VERSION.to_le_bytes());
        put(out, fields::KIND, &(self.kind as u16).to_le_bytes());
        if self.kind == MessageKind::Filler {
            return;
        }
        if let Some(s) = self.shape {
            put(out, fields::WIDTH, &s.width.to_le_bytes());
            put(out, fields::HEIGHT, &s.height.to_le_bytes());
            put(out, fields::STRIDE, &s.stride.to_le_bytes());
            put(out, fields::FORMAT, &s.format.code().to_le_bytes());
            put(out, fields::PIXEL_BYTES, &s.pixel_bytes().to_le_bytes());
        }
        put(out, fields::SEQ, &self.seq.to_le_bytes());
        put(out, fields::CAPTURE_NS, &self.capture_ns.to_le_bytes());
        put(out, fields::PUBLISH_NS, &self.publish_ns.to_le_bytes());
    }

    /// Stamps the sequence number, capture and publish times into an encoded header (what a
    /// producer fills in last, just before publishing).
    pub fn stamp(out: &mut [u8], seq: u64, capture_ns: u64, publish_ns: u64) {
        put(out, fields::SEQ, &seq.to_le_bytes());
        put(out, fields::CAPTURE_NS, &capture_ns.to_le_bytes());
        put(out, fields::PUBLISH_NS, &publish_ns.to_le_bytes());
    }

    /// Decodes and validates a framed payload's header against the payload's length.
    ///
    /// `header` holds the payload's first `min(payload_len, FRAME_HEADER_LEN)` bytes. The
    /// payload lives in shared memory another process could change, so callers pass a private
    /// copy: every field is read once, validated, and only then trusted.
    ///
    /// # Errors
    /// [`HeaderError`] naming the first field that is wrong.
    pub fn decode(header: &[u8], payload_len: u32) -> Result<FrameHeader, HeaderError> {
        let b = header;
        if b.len() < FRAME_TAG_LEN || !has_magic(b) {
            return Err(HeaderError::NoMagic);
        }
        let version = u16::from_le_bytes(get(b, fields::VERSION));
        if version != FRAME_VERSION {
            return Err(HeaderError::Version { found: version });
        }
        let kind = match u16::from_le_bytes(get(b, fields::KIND)) {
            1 => MessageKind::Frame,
            2 => MessageKind::Filler,
            3 => MessageKind::EndOfStream,
            k => return Err(HeaderError::Kind { found: k }),
        };
        if kind == MessageKind::Filler {
            return Ok(FrameHeader { kind, shape: None, seq: 0, capture_ns: 0, publish_ns: 0 });
        }
        if b.len() < FRAME_HEADER_LEN || (payload_len as usize) < FRAME_HEADER_LEN {
            return Err(HeaderError::Short {
                what: "frame header".into(),
                needed: FRAME_HEADER_LEN as u64,
                payload_len,
            });
        }
        let seq = u64::from_le_bytes(get(b, fields::SEQ));
        let capture_ns = u64::from_le_bytes(get(b, fields::CAPTURE_NS));
        let publish_ns = u64::from_le_bytes(get(b, fields::PUBLISH_NS));
        let shape = if kind == MessageKind::Frame {
            let u32_of = |r| u32::from_le_bytes(get(b, r));
            let code = u32_of(fields::FORMAT);
            let format = PixelFormat::from_code(code).ok_or(HeaderError::Format { found: code })?;
            let shape = FrameShape {
                width: u32_of(fields::WIDTH),
                height: u32_of(fields::HEIGHT),
                stride: u32_of(fields::STRIDE),
                format,
            };
            shape.validate()?;
            let pixel_bytes = u32_of(fields::PIXEL_BYTES);
            if pixel_bytes != shape.pixel_bytes() {
                return Err(HeaderError::PixelBytes {
                    found: pixel_bytes,
                    expected: shape.pixel_bytes(),
                    shape,
                });
            }
            let needed = FRAME_HEADER_LEN as u64 + pixel_bytes as u64;
            if needed > payload_len as u64 {
                return Err(HeaderError::Short {
                    what: format!("{shape} frame"),
                    needed,
                    payload_len,
                });
            }
            Some(shape)
        } else {
            None
        };
        Ok(FrameHeader { kind, shape, seq, capture_ns, publish_ns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(shape: FrameShape) -> FrameHeader {
        FrameHeader {
            kind: MessageKind::Frame,
            shape: Some(shape),
            seq: 7,
            capture_ns: 11,
            publish_ns: 13,
        }
    }

    #[test]
    fn round_trip_every_format() {
        for f in PixelFormat::ALL {
            let s = FrameShape::packed(34, 18, f).unwrap();
            let h = frame(s);
            let mut b = [0u8; FRAME_HEADER_LEN];
            h.encode(&mut b);
            assert_eq!(FrameHeader::decode(&b, 108 + s.pixel_bytes()).unwrap(), h);
        }
    }

    #[test]
    fn message_len_is_aligned_and_big_enough() {
        let s = FrameShape::packed(1920, 1080, PixelFormat::Bgr24).unwrap();
        let m = s.framed_message_len();
        assert_eq!(m % FRAME_ALIGN, 0);
        assert!((112 + 6_220_800..112 + 6_220_800 + 64).contains(&m));
    }

    #[test]
    fn rejects_inconsistent_headers() {
        let s = FrameShape::packed(4, 4, PixelFormat::Rgb24).unwrap();
        let mut good = [0u8; FRAME_HEADER_LEN];
        frame(s).encode(&mut good);
        type Poke = Box<dyn Fn(&mut [u8; FRAME_HEADER_LEN])>;
        let cases: Vec<(&str, Poke, u32)> = vec![
            ("magic", Box::new(|b| b[0] = b'X'), 156),
            ("version", Box::new(|b| b[4] = 9), 156),
            ("kind", Box::new(|b| b[6] = 77), 156),
            ("format", Box::new(|b| b[20] = 99), 156),
            ("width 0", Box::new(|b| b[8..12].fill(0)), 156),
            ("stride < width", Box::new(|b| b[16..20].copy_from_slice(&3u32.to_le_bytes())), 156),
            ("pixel bytes", Box::new(|b| b[48..52].copy_from_slice(&1u32.to_le_bytes())), 156),
            ("huge", Box::new(|b| b[8..20].fill(0xFF)), 156),
            ("payload short", Box::new(|_| {}), 150),
        ];
        for (what, poke, len) in cases {
            let mut b = good;
            poke(&mut b);
            assert!(FrameHeader::decode(&b, len).is_err(), "{what} accepted");
        }
        assert!(FrameHeader::decode(&good, 156).is_ok());
        let mut b = good;
        b[20] = 99;
        assert_eq!(FrameHeader::decode(&b, 156), Err(HeaderError::Format { found: 99 }));
        assert!(FrameHeader::decode(&good[..50], 50).is_err(), "truncated frame header accepted");
        let mut filler = [0u8; 8];
        FrameHeader {
            kind: MessageKind::Filler,
            shape: None,
            seq: 0,
            capture_ns: 0,
            publish_ns: 0,
        }
        .encode(&mut filler);
        assert_eq!(FrameHeader::decode(&filler, 60).unwrap().kind, MessageKind::Filler);
    }
}
