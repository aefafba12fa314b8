//! Frame metadata layered on the ring's messages (our extension; the ring itself is unchanged).
//!
//! # Framed messages
//!
//! In framed mode (bit `FRAMED` of the reserved word, see [`crate::control`]) every message
//! payload starts with this 108-byte little-endian header (a filler message may stop after the
//! first 8 bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"SHMF"` |
//! | 4 | 2 | version: 1 |
//! | 6 | 2 | kind: 1 frame, 2 filler, 3 end of stream |
//! | 8 | 4 | width in pixels |
//! | 12 | 4 | height in pixels |
//! | 16 | 4 | stride: bytes per row, `>= width * bytes_per_pixel` |
//! | 20 | 4 | pixel format: 1 BGR24, 2 RGB24, 3 GRAY8, 4 RGBA32, 5 BGRA32 |
//! | 24 | 8 | sequence number of the frame (0, 1, 2, ... per producer; end of stream: frames sent) |
//! | 32 | 8 | capture time, ns of CLOCK_MONOTONIC |
//! | 40 | 8 | publish time, ns of CLOCK_MONOTONIC (stamped just before the head is published) |
//! | 48 | 4 | pixel bytes: `stride * height` |
//! | 52 | 56 | reserved, 0 (room for later fields) |
//! | 108 | pixel bytes | pixels, rows top to bottom |
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

use std::fmt;
use std::str::FromStr;

/// Size of the frame header.
pub const FRAME_HEADER_LEN: usize = 108;
/// The part of the header every framed payload has, filler included: magic, version, kind.
pub const FRAME_TAG_LEN: usize = 8;
/// Alignment of framed messages in the ring (and of pixel data).
pub const FRAME_ALIGN: u32 = 64;
/// The magic at the start of every framed payload.
pub const MAGIC: [u8; 4] = *b"SHMF";
/// Frame header version written and understood.
pub const FRAME_VERSION: u16 = 1;

/// Pixel layouts, 8 bits per channel, interleaved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PixelFormat {
    /// Blue, green, red: OpenCV's default, and cpp_py_shmbuf's raw frames.
    Bgr24 = 1,
    /// Red, green, blue.
    Rgb24 = 2,
    /// One luminance byte.
    Gray8 = 3,
    /// Red, green, blue, alpha.
    Rgba32 = 4,
    /// Blue, green, red, alpha.
    Bgra32 = 5,
}

impl PixelFormat {
    /// All formats.
    pub const ALL: [PixelFormat; 5] =
        [PixelFormat::Bgr24, PixelFormat::Rgb24, PixelFormat::Gray8, PixelFormat::Rgba32, PixelFormat::Bgra32];

    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> u32 {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Bgr24 | PixelFormat::Rgb24 => 3,
            PixelFormat::Rgba32 | PixelFormat::Bgra32 => 4,
        }
    }

    /// Channels per pixel (the last numpy dimension; 1 means a 2-D array).
    pub fn channels(self) -> u32 {
        self.bytes_per_pixel()
    }

    /// The wire code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// From a wire code.
    pub fn from_code(code: u32) -> Option<PixelFormat> {
        PixelFormat::ALL.into_iter().find(|f| f.code() == code)
    }

    /// Short lower-case name, as used on command lines: `bgr`, `rgb`, `gray`, `rgba`, `bgra`.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Bgr24 => "bgr",
            PixelFormat::Rgb24 => "rgb",
            PixelFormat::Gray8 => "gray",
            PixelFormat::Rgba32 => "rgba",
            PixelFormat::Bgra32 => "bgra",
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PixelFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let l = s.to_ascii_lowercase();
        let f = match l.as_str() {
            "bgr" | "bgr24" => PixelFormat::Bgr24,
            "rgb" | "rgb24" => PixelFormat::Rgb24,
            "gray" | "grey" | "gray8" | "mono" => PixelFormat::Gray8,
            "rgba" | "rgba32" => PixelFormat::Rgba32,
            "bgra" | "bgra32" => PixelFormat::Bgra32,
            _ => return Err(format!("unknown pixel format {s:?}: use one of bgr, rgb, gray, rgba, bgra")),
        };
        Ok(f)
    }
}

/// Parses a frame size written `WIDTHxHEIGHT` (e.g. `1920x1080`), as the command-line tools
/// take it: whole numbers from 1 to 16384.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT (e.g. 1920x1080)"))?;
    let w: u32 = w.trim().parse().map_err(|_| format!("width {w:?} is not a whole number"))?;
    let h: u32 = h.trim().parse().map_err(|_| format!("height {h:?} is not a whole number"))?;
    if w == 0 || h == 0 {
        return Err(format!("{w}x{h} is empty: width and height must be at least 1"));
    }
    if w > 16384 || h > 16384 {
        return Err(format!("{w}x{h} is larger than 16384x16384"));
    }
    Ok((w, h))
}

/// Width, height, stride and format of a frame: everything needed to interpret its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameShape {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row (at least `width * bytes_per_pixel`).
    pub stride: u32,
    /// Pixel format.
    pub format: PixelFormat,
}

impl FrameShape {
    /// A tightly packed shape (stride = width * bytes per pixel), validated.
    pub fn packed(width: u32, height: u32, format: PixelFormat) -> Result<FrameShape, String> {
        let stride = width
            .checked_mul(format.bytes_per_pixel())
            .ok_or_else(|| format!("width {width} is too large"))?;
        let s = FrameShape { width, height, stride, format };
        s.validate()?;
        Ok(s)
    }

    /// Checks dimensions and that the pixel byte count fits the ring's 32-bit lengths.
    pub fn validate(&self) -> Result<(), String> {
        if self.width == 0 || self.height == 0 {
            return Err(format!("frame size {}x{} is empty: width and height must be at least 1", self.width, self.height));
        }
        let min_stride = self.width as u64 * self.format.bytes_per_pixel() as u64;
        if (self.stride as u64) < min_stride {
            return Err(format!("stride {} is less than width * bytes per pixel ({min_stride})", self.stride));
        }
        let bytes = self.stride as u64 * self.height as u64;
        if bytes + FRAME_HEADER_LEN as u64 + FRAME_ALIGN as u64 > crate::ring::MAX_CAPACITY as u64 / 2 {
            return Err(format!(
                "a {}x{} {} frame is {bytes} bytes, more than the 1 GiB a ring can carry per frame",
                self.width, self.height, self.format
            ));
        }
        Ok(())
    }

    /// Bytes of pixel data: `stride * height`.
    pub fn pixel_bytes(&self) -> u32 {
        self.stride * self.height
    }

    /// Size of a framed message carrying this shape, prefix and padding included.
    pub fn framed_message_len(&self) -> u32 {
        framed_message_len(self.pixel_bytes())
    }
}

impl fmt::Display for FrameShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{} {}", self.width, self.height, self.format)
    }
}

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

/// Whether a payload starts with the frame magic.
pub fn has_magic(payload: &[u8]) -> bool {
    payload.len() >= 4 && payload[..4] == MAGIC
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

impl FrameHeader {
    /// Encodes into the first [`FRAME_HEADER_LEN`] bytes of `out` (a filler into as many of
    /// them as `out` has, at least [`FRAME_TAG_LEN`]).
    pub fn encode(&self, out: &mut [u8]) {
        let n = out.len().min(FRAME_HEADER_LEN);
        let out = &mut out[..n];
        if self.kind == MessageKind::Filler {
            out.fill(0);
            out[0..4].copy_from_slice(&MAGIC);
            out[4..6].copy_from_slice(&FRAME_VERSION.to_le_bytes());
            out[6..8].copy_from_slice(&(self.kind as u16).to_le_bytes());
            return;
        }
        out.fill(0);
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&FRAME_VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&(self.kind as u16).to_le_bytes());
        if let Some(s) = self.shape {
            out[8..12].copy_from_slice(&s.width.to_le_bytes());
            out[12..16].copy_from_slice(&s.height.to_le_bytes());
            out[16..20].copy_from_slice(&s.stride.to_le_bytes());
            out[20..24].copy_from_slice(&s.format.code().to_le_bytes());
            out[48..52].copy_from_slice(&s.pixel_bytes().to_le_bytes());
        }
        out[24..32].copy_from_slice(&self.seq.to_le_bytes());
        out[32..40].copy_from_slice(&self.capture_ns.to_le_bytes());
        out[40..48].copy_from_slice(&self.publish_ns.to_le_bytes());
    }

    /// Stamps the publish time into an encoded header.
    pub fn stamp_publish(out: &mut [u8], publish_ns: u64) {
        out[40..48].copy_from_slice(&publish_ns.to_le_bytes());
    }

    /// Decodes and validates a framed payload's header against the payload's length.
    ///
    /// `header` holds the payload's first `min(payload_len, FRAME_HEADER_LEN)` bytes. The
    /// payload lives in shared memory another process could change, so callers pass a private
    /// copy: every field is read once, validated, and only then trusted.
    pub fn decode(header: &[u8], payload_len: u32) -> Result<FrameHeader, String> {
        let b = header;
        if b.len() < FRAME_TAG_LEN || b[0..4] != MAGIC {
            return Err("payload does not start with the frame magic".into());
        }
        let version = u16_at(b, 4);
        if version != FRAME_VERSION {
            return Err(format!(
                "frame header version {version}, but this reader understands version {FRAME_VERSION}: use matching shmframes versions"
            ));
        }
        let kind = match u16_at(b, 6) {
            1 => MessageKind::Frame,
            2 => MessageKind::Filler,
            3 => MessageKind::EndOfStream,
            k => return Err(format!("unknown message kind {k}")),
        };
        if kind == MessageKind::Filler {
            return Ok(FrameHeader { kind, shape: None, seq: 0, capture_ns: 0, publish_ns: 0 });
        }
        if b.len() < FRAME_HEADER_LEN || (payload_len as usize) < FRAME_HEADER_LEN {
            return Err(format!("payload of {payload_len} bytes is shorter than the {FRAME_HEADER_LEN}-byte frame header"));
        }
        let seq = u64_at(b, 24);
        let capture_ns = u64_at(b, 32);
        let publish_ns = u64_at(b, 40);
        let shape = if kind == MessageKind::Frame {
            let code = u32_at(b, 20);
            let format = PixelFormat::from_code(code).ok_or_else(|| format!("unknown pixel format code {code}"))?;
            let shape = FrameShape { width: u32_at(b, 8), height: u32_at(b, 12), stride: u32_at(b, 16), format };
            shape.validate()?;
            let pixel_bytes = u32_at(b, 48);
            if pixel_bytes != shape.pixel_bytes() {
                return Err(format!("pixel byte count {pixel_bytes} is not stride * height for {shape}"));
            }
            let needed = FRAME_HEADER_LEN as u64 + pixel_bytes as u64;
            if needed > payload_len as u64 {
                return Err(format!("a {shape} frame needs {needed} payload bytes but the message has {payload_len}"));
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
        FrameHeader { kind: MessageKind::Frame, shape: Some(shape), seq: 7, capture_ns: 11, publish_ns: 13 }
    }

    #[test]
    fn round_trip_every_format() {
        for f in PixelFormat::ALL {
            let s = FrameShape::packed(33, 17, f).unwrap();
            let h = frame(s);
            let mut b = [0u8; FRAME_HEADER_LEN];
            h.encode(&mut b);
            assert_eq!(FrameHeader::decode(&b, 108 + s.pixel_bytes()).unwrap(), h);
            assert_eq!(f.name().parse::<PixelFormat>().unwrap(), f);
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
        assert!(FrameHeader::decode(&good[..50], 50).is_err(), "truncated frame header accepted");
        let mut filler = [0u8; 8];
        FrameHeader { kind: MessageKind::Filler, shape: None, seq: 0, capture_ns: 0, publish_ns: 0 }.encode(&mut filler);
        assert_eq!(FrameHeader::decode(&filler, 60).unwrap().kind, MessageKind::Filler);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1920x1080"), Ok((1920, 1080)));
        assert_eq!(parse_size("33X17"), Ok((33, 17)));
        for bad in ["0x0", "10x0", "1920", "x", "axb", "-1x5", "20000x10"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shape_errors() {
        assert!(FrameShape::packed(0, 10, PixelFormat::Gray8).is_err());
        assert!(FrameShape::packed(100_000, 100_000, PixelFormat::Rgba32).is_err());
        assert!(FrameShape::packed(u32::MAX, 1, PixelFormat::Rgba32).is_err());
        assert!("yuv".parse::<PixelFormat>().is_err());
    }
}
