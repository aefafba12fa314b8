//! Pixel formats and frame shapes: the one table every part of shmframes (core, tools, Python)
//! takes its knowledge of formats from.
//!
//! | format | wire code | names accepted | layout | numpy array | GStreamer | OpenCV to BGR |
//! |---|---|---|---|---|---|---|
//! | [`Bgr24`](PixelFormat::Bgr24) | 1 | `bgr`, `bgr24` | packed, 3 bytes | (H, W, 3) | `BGR` | (as is) |
//! | [`Rgb24`](PixelFormat::Rgb24) | 2 | `rgb`, `rgb24` | packed, 3 bytes | (H, W, 3) | `RGB` | `COLOR_RGB2BGR` |
//! | [`Gray8`](PixelFormat::Gray8) | 3 | `gray`, `grey`, `gray8`, `mono` | packed, 1 byte | (H, W) | `GRAY8` | `COLOR_GRAY2BGR` |
//! | [`Rgba32`](PixelFormat::Rgba32) | 4 | `rgba`, `rgba32` | packed, 4 bytes | (H, W, 4) | `RGBA` | `COLOR_RGBA2BGR` |
//! | [`Bgra32`](PixelFormat::Bgra32) | 5 | `bgra`, `bgra32` | packed, 4 bytes | (H, W, 4) | `BGRA` | `COLOR_BGRA2BGR` |
//! | [`Nv12`](PixelFormat::Nv12) | 6 | `nv12` | Y plane, then interleaved UV at half height | (H + H/2, W) | `NV12` | `COLOR_YUV2BGR_NV12` |
//! | [`I420`](PixelFormat::I420) | 7 | `i420`, `yuv420p` | Y, then U and V planes at half width and height | (H + H/2, W) | `I420` | `COLOR_YUV2BGR_I420` |
//! | [`Yuyv`](PixelFormat::Yuyv) | 8 | `yuyv`, `yuy2`, `yuv422` | packed 4:2:2, 2 bytes per pixel | (H, W, 2) | `YUY2` | `COLOR_YUV2BGR_YUYV` |
//!
//! A [`FrameShape`] is width, height, `stride` (bytes per row of the first plane) and format;
//! [`FrameShape::planes`] says where each plane lies. The YUV 4:2:0 formats take whole rows of
//! chroma under the luma (NV12: one plane of `stride` bytes per row, I420: two planes of
//! `stride / 2`), so all of a frame is one array of `H + H/2` rows of `stride` bytes, as OpenCV
//! and GStreamer's default layouts have it; they need even width and height (and stride).

use std::fmt;
use std::str::FromStr;

/// Largest width or height a frame may have.
pub const MAX_DIMENSION: u32 = 16384;

/// Pixel layouts, 8 bits per sample. See the [module table](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
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
    /// YUV 4:2:0: a Y plane, then one plane of interleaved U, V at half width and height.
    Nv12 = 6,
    /// YUV 4:2:0: a Y plane, then a U plane and a V plane at half width and height.
    I420 = 7,
    /// YUV 4:2:2 packed as Y0 U Y1 V (what USB cameras send uncompressed).
    Yuyv = 8,
}

/// How a format's bytes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Interleaved samples, `bytes_per_pixel` per pixel, `channels` samples per pixel.
    Packed {
        /// Bytes (and samples) per pixel.
        bytes_per_pixel: u32,
    },
    /// 4:2:2 packed in pairs of pixels (4 bytes per 2 pixels); width must be even.
    Packed422,
    /// 4:2:0 with one interleaved chroma plane of `stride` bytes per row (NV12).
    SemiPlanar420,
    /// 4:2:0 with two chroma planes of `stride / 2` bytes per row (I420).
    Planar420,
}

/// Everything shmframes knows about one pixel format: one row of the module table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatInfo {
    /// The format.
    pub format: PixelFormat,
    /// Its code in frame headers.
    pub code: u32,
    /// Its name on command lines and in Python (lower case).
    pub name: &'static str,
    /// Other spellings accepted (case-insensitive).
    pub aliases: &'static [&'static str],
    /// The byte layout.
    pub layout: Layout,
    /// GStreamer's `video/x-raw` format name.
    pub gstreamer: &'static str,
    /// The OpenCV `cv2.COLOR_*` conversion that turns it into BGR, if it is not BGR already.
    pub opencv_to_bgr: Option<&'static str>,
    /// Whether its samples are red, green and blue (or gray): what the test pattern, image
    /// conversions and cpp_py_shmbuf consumers deal in.
    pub rgb_family: bool,
}

const fn packed(bytes_per_pixel: u32) -> Layout {
    Layout::Packed { bytes_per_pixel }
}

/// The table: one entry per format, in wire-code order.
pub const FORMATS: [FormatInfo; 8] = [
    FormatInfo {
        format: PixelFormat::Bgr24,
        code: 1,
        name: "bgr",
        aliases: &["bgr24"],
        layout: packed(3),
        gstreamer: "BGR",
        opencv_to_bgr: None,
        rgb_family: true,
    },
    FormatInfo {
        format: PixelFormat::Rgb24,
        code: 2,
        name: "rgb",
        aliases: &["rgb24"],
        layout: packed(3),
        gstreamer: "RGB",
        opencv_to_bgr: Some("COLOR_RGB2BGR"),
        rgb_family: true,
    },
    FormatInfo {
        format: PixelFormat::Gray8,
        code: 3,
        name: "gray",
        aliases: &["grey", "gray8", "mono"],
        layout: packed(1),
        gstreamer: "GRAY8",
        opencv_to_bgr: Some("COLOR_GRAY2BGR"),
        rgb_family: true,
    },
    FormatInfo {
        format: PixelFormat::Rgba32,
        code: 4,
        name: "rgba",
        aliases: &["rgba32"],
        layout: packed(4),
        gstreamer: "RGBA",
        opencv_to_bgr: Some("COLOR_RGBA2BGR"),
        rgb_family: true,
    },
    FormatInfo {
        format: PixelFormat::Bgra32,
        code: 5,
        name: "bgra",
        aliases: &["bgra32"],
        layout: packed(4),
        gstreamer: "BGRA",
        opencv_to_bgr: Some("COLOR_BGRA2BGR"),
        rgb_family: true,
    },
    FormatInfo {
        format: PixelFormat::Nv12,
        code: 6,
        name: "nv12",
        aliases: &[],
        layout: Layout::SemiPlanar420,
        gstreamer: "NV12",
        opencv_to_bgr: Some("COLOR_YUV2BGR_NV12"),
        rgb_family: false,
    },
    FormatInfo {
        format: PixelFormat::I420,
        code: 7,
        name: "i420",
        aliases: &["yuv420p"],
        layout: Layout::Planar420,
        gstreamer: "I420",
        opencv_to_bgr: Some("COLOR_YUV2BGR_I420"),
        rgb_family: false,
    },
    FormatInfo {
        format: PixelFormat::Yuyv,
        code: 8,
        name: "yuyv",
        aliases: &["yuy2", "yuv422"],
        layout: Layout::Packed422,
        gstreamer: "YUY2",
        opencv_to_bgr: Some("COLOR_YUV2BGR_YUYV"),
        rgb_family: false,
    },
];

const _: () = {
    let mut i = 0;
    while i < FORMATS.len() {
        assert!(FORMATS[i].format as u32 == FORMATS[i].code, "wire code and enum value agree");
        assert!(FORMATS[i].code as usize == i + 1, "table in code order");
        i += 1;
    }
};

/// A format name that is not in the table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown pixel format {name:?}: use one of {}", PixelFormat::names().join(", "))]
pub struct UnknownFormat {
    /// The name as given.
    pub name: String,
}

impl PixelFormat {
    /// Every format, in wire-code order.
    pub const ALL: [PixelFormat; 8] = {
        let mut all = [PixelFormat::Bgr24; 8];
        let mut i = 0;
        while i < FORMATS.len() {
            all[i] = FORMATS[i].format;
            i += 1;
        }
        all
    };

    /// Its row of the table.
    pub fn info(self) -> &'static FormatInfo {
        &FORMATS[self as usize - 1]
    }

    /// The RGB-family formats (packed red, green, blue or gray), in table order: what the
    /// test pattern, the image and camera conversions and cpp_py_shmbuf consumers deal in.
    pub fn rgb_family() -> impl Iterator<Item = PixelFormat> {
        PixelFormat::ALL.into_iter().filter(|f| f.is_rgb_family())
    }

    /// The names of the RGB-family formats, comma-separated (for help texts and errors).
    pub fn rgb_family_names() -> String {
        Self::rgb_family().map(PixelFormat::name).collect::<Vec<_>>().join(", ")
    }

    /// The canonical names, in table order (for help texts and error messages).
    pub fn names() -> Vec<&'static str> {
        FORMATS.iter().map(|f| f.name).collect()
    }

    /// The wire code.
    pub fn code(self) -> u32 {
        self.info().code
    }

    /// From a wire code.
    pub fn from_code(code: u32) -> Option<PixelFormat> {
        FORMATS.iter().find(|f| f.code == code).map(|f| f.format)
    }

    /// Short lower-case name, as used on command lines and in Python.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Bytes per pixel of a packed format (YUYV: 2); `None` for planar formats.
    pub fn bytes_per_pixel(self) -> Option<u32> {
        match self.info().layout {
            Layout::Packed { bytes_per_pixel } => Some(bytes_per_pixel),
            Layout::Packed422 => Some(2),
            Layout::SemiPlanar420 | Layout::Planar420 => None,
        }
    }

    /// Bytes of the first plane's row per pixel of width: what `stride` must at least hold per
    /// pixel (1 for the luma plane of the 4:2:0 formats).
    pub fn row_bytes_per_pixel(self) -> u32 {
        self.bytes_per_pixel().unwrap_or(1)
    }

    /// Whether this is a packed red/green/blue (or gray) format.
    pub fn is_rgb_family(self) -> bool {
        self.info().rgb_family
    }

    /// Whether width must be even (chroma shared by pixel pairs).
    fn needs_even_width(self) -> bool {
        !matches!(self.info().layout, Layout::Packed { .. })
    }

    /// Whether height (and stride) must be even (chroma shared by row pairs).
    fn needs_even_height(self) -> bool {
        matches!(self.info().layout, Layout::SemiPlanar420 | Layout::Planar420)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PixelFormat {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        let l = s.trim().to_ascii_lowercase();
        FORMATS
            .iter()
            .find(|f| f.name == l || f.aliases.contains(&l.as_str()))
            .map(|f| f.format)
            .ok_or_else(|| UnknownFormat { name: s.to_owned() })
    }
}

/// Why a frame shape cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// Width or height is 0.
    #[error("frame size {width}x{height} is empty: width and height must be at least 1")]
    Empty {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
    },
    /// A size given as text ([`parse_size`]) beyond [`MAX_DIMENSION`], or a width whose rows
    /// cannot be counted in 32 bits.
    #[error("frame size {width}x{height} is larger than {MAX_DIMENSION}x{MAX_DIMENSION}")]
    TooLarge {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
    },
    /// The format shares chroma between pixel pairs or row pairs, and a dimension is odd.
    #[error("{format} frames need an even {what}, not {value}")]
    Odd {
        /// The format.
        format: PixelFormat,
        /// "width", "height" or "stride".
        what: &'static str,
        /// The odd value.
        value: u32,
    },
    /// Rows shorter than the pixels they must hold.
    #[error("stride {stride} is less than the {min} bytes a row of {width} {format} pixels needs")]
    StrideTooSmall {
        /// Stride given.
        stride: u32,
        /// Smallest stride possible.
        min: u64,
        /// Width.
        width: u32,
        /// Format.
        format: PixelFormat,
    },
    /// More bytes than a ring can carry in one frame.
    #[error("a {width}x{height} {format} frame is {bytes} bytes, more than the {limit} bytes a ring can carry per frame")]
    FrameTooBig {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Format.
        format: PixelFormat,
        /// Bytes it would take.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
}

/// A frame size that is not `WIDTHxHEIGHT` with whole numbers in `1..=16384`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizeError {
    /// No `x` between two numbers.
    #[error("{text:?} is not WIDTHxHEIGHT (e.g. 1920x1080)")]
    NotWxH {
        /// The text given.
        text: String,
    },
    /// A part that is not a whole number.
    #[error("{what} {text:?} is not a whole number")]
    NotANumber {
        /// "width" or "height".
        what: &'static str,
        /// The part given.
        text: String,
    },
    /// Zero or too large.
    #[error(transparent)]
    Shape(#[from] ShapeError),
}

/// Parses a frame size written `WIDTHxHEIGHT` (e.g. `1920x1080`): whole numbers from 1 to
/// [`MAX_DIMENSION`]. The one spelling of a size that the tools and Python accept.
pub fn parse_size(s: &str) -> Result<(u32, u32), SizeError> {
    let (w, h) =
        s.split_once(['x', 'X']).ok_or_else(|| SizeError::NotWxH { text: s.to_owned() })?;
    let num = |what, t: &str| {
        t.trim().parse::<u32>().map_err(|_| SizeError::NotANumber { what, text: t.to_owned() })
    };
    let (width, height) = (num("width", w)?, num("height", h)?);
    check_not_empty(width, height)?;
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(ShapeError::TooLarge { width, height }.into());
    }
    Ok((width, height))
}

fn check_not_empty(width: u32, height: u32) -> Result<(), ShapeError> {
    if width == 0 || height == 0 {
        return Err(ShapeError::Empty { width, height });
    }
    Ok(())
}

/// One plane of a frame: where its rows are inside the frame's pixel bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plane {
    /// Byte offset of its first row from the start of the pixels.
    pub offset: u64,
    /// Bytes from one row to the next.
    pub stride: u32,
    /// Bytes of pixel data in each row (the rest of the stride is padding).
    pub row_bytes: u32,
    /// Rows.
    pub rows: u32,
}

/// A frame's planes (one to three), as a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    planes: [Plane; 3],
    len: usize,
}

impl std::ops::Deref for Planes {
    type Target = [Plane];
    fn deref(&self) -> &[Plane] {
        &self.planes[..self.len]
    }
}

/// Width, height, stride and format of a frame: everything needed to interpret its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameShape {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row of the first plane (at least `width * row_bytes_per_pixel`).
    pub stride: u32,
    /// Pixel format.
    pub format: PixelFormat,
}

/// The largest pixel byte count of one frame: what a ring of [`crate::ring::MAX_CAPACITY`]
/// bytes can carry twice over, header and alignment included.
pub const MAX_PIXEL_BYTES: u64 = crate::ring::MAX_CAPACITY as u64 / 2
    - crate::frame::FRAME_HEADER_LEN as u64
    - crate::frame::FRAME_ALIGN as u64;

impl FrameShape {
    /// A tightly packed shape (stride = the row's bytes), validated.
    pub fn packed(width: u32, height: u32, format: PixelFormat) -> Result<FrameShape, ShapeError> {
        check_not_empty(width, height)?;
        let stride = width
            .checked_mul(format.row_bytes_per_pixel())
            .ok_or(ShapeError::TooLarge { width, height })?;
        let s = FrameShape { width, height, stride, format };
        s.validate()?;
        Ok(s)
    }

    /// Checks dimensions, the stride, the format's evenness rules, and that the pixel byte
    /// count fits the ring's 32-bit lengths.
    pub fn validate(&self) -> Result<(), ShapeError> {
        let (width, height, format) = (self.width, self.height, self.format);
        check_not_empty(width, height)?;
        if format.needs_even_width() && width % 2 != 0 {
            return Err(ShapeError::Odd { format, what: "width", value: width });
        }
        if format.needs_even_height() {
            if height % 2 != 0 {
                return Err(ShapeError::Odd { format, what: "height", value: height });
            }
            if self.stride % 2 != 0 {
                return Err(ShapeError::Odd { format, what: "stride", value: self.stride });
            }
        }
        let min = width as u64 * format.row_bytes_per_pixel() as u64;
        if (self.stride as u64) < min {
            return Err(ShapeError::StrideTooSmall { stride: self.stride, min, width, format });
        }
        let bytes = self.pixel_bytes_u64();
        if bytes > MAX_PIXEL_BYTES {
            return Err(ShapeError::FrameTooBig {
                width,
                height,
                format,
                bytes,
                limit: MAX_PIXEL_BYTES,
            });
        }
        Ok(())
    }

    fn pixel_bytes_u64(&self) -> u64 {
        self.planes().iter().map(|p| p.stride as u64 * p.rows as u64).sum()
    }

    /// Bytes of pixel data: the sum over the planes of `stride * rows`. Valid for a validated
    /// shape (which always fits a `u32`).
    pub fn pixel_bytes(&self) -> u32 {
        u32::try_from(self.pixel_bytes_u64()).expect("validated shapes fit in u32")
    }

    /// The bytes of a row of pixels in the first plane, without padding.
    pub fn row_bytes(&self) -> u32 {
        self.width * self.format.row_bytes_per_pixel()
    }

    /// The planes, in memory order (1 for packed formats, 2 for NV12, 3 for I420). No
    /// allocation: [`pixel_bytes`](FrameShape::pixel_bytes) sums them on every frame.
    pub fn planes(&self) -> Planes {
        let (w, h, s) = (self.width, self.height, self.stride);
        let luma = Plane { offset: 0, stride: s, row_bytes: self.row_bytes(), rows: h };
        let after_luma = s as u64 * h as u64;
        match self.format.info().layout {
            Layout::Packed { .. } | Layout::Packed422 => Planes { planes: [luma; 3], len: 1 },
            Layout::SemiPlanar420 => {
                let uv = Plane {
                    offset: after_luma,
                    stride: s,
                    row_bytes: w.div_ceil(2) * 2,
                    rows: h.div_ceil(2),
                };
                Planes { planes: [luma, uv, uv], len: 2 }
            }
            Layout::Planar420 => {
                let u = Plane {
                    offset: after_luma,
                    stride: s / 2,
                    row_bytes: w.div_ceil(2),
                    rows: h.div_ceil(2),
                };
                let v = Plane { offset: after_luma + (s / 2) as u64 * h.div_ceil(2) as u64, ..u };
                Planes { planes: [luma, u, v], len: 3 }
            }
        }
    }

    /// The numpy view of the pixels: dimensions and byte strides. Packed formats are
    /// `(H, W, C)` (`(H, W)` for gray), YUYV `(H, W, 2)`, the 4:2:0 formats one 2-D array of
    /// `H + H/2` rows, as OpenCV's `cvtColor` takes them.
    pub fn array_layout(&self) -> (Vec<usize>, Vec<usize>) {
        let (w, h, s) = (self.width as usize, self.height as usize, self.stride as usize);
        match self.format.info().layout {
            Layout::Packed { bytes_per_pixel: 1 } => (vec![h, w], vec![s, 1]),
            Layout::Packed { bytes_per_pixel: c } => {
                (vec![h, w, c as usize], vec![s, c as usize, 1])
            }
            Layout::Packed422 => (vec![h, w, 2], vec![s, 2, 1]),
            Layout::SemiPlanar420 | Layout::Planar420 => (vec![h + h / 2, w], vec![s, 1]),
        }
    }

    /// Size of a framed message carrying this shape, prefix and padding included.
    pub fn framed_message_len(&self) -> u32 {
        crate::frame::framed_message_len(self.pixel_bytes())
    }
}

impl fmt::Display for FrameShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{} {}", self.width, self.height, self.format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_and_alias_parses_to_its_format() {
        for info in FORMATS {
            assert_eq!(info.name.parse::<PixelFormat>(), Ok(info.format));
            assert_eq!(info.name.to_uppercase().parse::<PixelFormat>(), Ok(info.format));
            for a in info.aliases {
                assert_eq!(a.parse::<PixelFormat>(), Ok(info.format), "{a}");
            }
            assert_eq!(PixelFormat::from_code(info.code), Some(info.format));
            assert_eq!(info.format.info(), &info);
        }
        let e = "yuv".parse::<PixelFormat>().unwrap_err();
        assert_eq!(e.name, "yuv");
        assert!(e.to_string().contains("bgr, rgb, gray, rgba, bgra, nv12, i420, yuyv"), "{e}");
        assert_eq!(PixelFormat::from_code(0), None);
        assert_eq!(PixelFormat::from_code(9), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1920x1080"), Ok((1920, 1080)));
        assert_eq!(parse_size("33X17"), Ok((33, 17)));
        assert!(matches!(parse_size("1920"), Err(SizeError::NotWxH { .. })));
        assert!(matches!(parse_size("axb"), Err(SizeError::NotANumber { what: "width", .. })));
        assert!(matches!(parse_size("-1x5"), Err(SizeError::NotANumber { .. })));
        assert!(matches!(parse_size("10x0"), Err(SizeError::Shape(ShapeError::Empty { .. }))));
        assert!(matches!(
            parse_size("20000x10"),
            Err(SizeError::Shape(ShapeError::TooLarge { .. }))
        ));
    }

    #[test]
    fn shapes_and_planes() {
        let bgr = FrameShape::packed(1920, 1080, PixelFormat::Bgr24).unwrap();
        assert_eq!((bgr.stride, bgr.pixel_bytes()), (5760, 6_220_800));
        assert_eq!(bgr.array_layout(), (vec![1080, 1920, 3], vec![5760, 3, 1]));
        let gray = FrameShape::packed(640, 480, PixelFormat::Gray8).unwrap();
        assert_eq!(gray.array_layout(), (vec![480, 640], vec![640, 1]));

        let nv12 = FrameShape::packed(1920, 1080, PixelFormat::Nv12).unwrap();
        assert_eq!(nv12.pixel_bytes(), 1920 * 1080 * 3 / 2);
        let p = nv12.planes();
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].offset, p[1].stride, p[1].rows), (1920 * 1080, 1920, 540));
        assert_eq!(nv12.array_layout(), (vec![1620, 1920], vec![1920, 1]));

        let i420 = FrameShape { width: 640, height: 480, stride: 704, format: PixelFormat::I420 };
        i420.validate().unwrap();
        let p = i420.planes();
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[1].offset, p[1].stride, p[1].row_bytes, p[1].rows),
            (704 * 480, 352, 320, 240)
        );
        assert_eq!(p[2].offset, 704 * 480 + 352 * 240);
        assert_eq!(i420.pixel_bytes(), 704 * 480 * 3 / 2);

        let yuyv = FrameShape::packed(640, 480, PixelFormat::Yuyv).unwrap();
        assert_eq!((yuyv.stride, yuyv.pixel_bytes()), (1280, 1280 * 480));
        assert_eq!(yuyv.array_layout(), (vec![480, 640, 2], vec![1280, 2, 1]));
    }

    #[test]
    fn shape_errors() {
        assert!(matches!(
            FrameShape::packed(0, 10, PixelFormat::Gray8),
            Err(ShapeError::Empty { .. })
        ));
        assert!(matches!(
            FrameShape::packed(100_000, 100_000, PixelFormat::Gray8),
            Err(ShapeError::FrameTooBig { .. })
        ));
        assert!(matches!(
            FrameShape::packed(u32::MAX, 1, PixelFormat::Rgba32),
            Err(ShapeError::TooLarge { .. })
        ));
        assert!(matches!(
            FrameShape::packed(641, 480, PixelFormat::Yuyv),
            Err(ShapeError::Odd { what: "width", .. })
        ));
        assert!(matches!(
            FrameShape::packed(640, 481, PixelFormat::Nv12),
            Err(ShapeError::Odd { what: "height", .. })
        ));
        let s = FrameShape { width: 4, height: 4, stride: 11, format: PixelFormat::Rgb24 };
        assert!(matches!(s.validate(), Err(ShapeError::StrideTooSmall { min: 12, .. })));
        let huge = FrameShape {
            width: 16384,
            height: 16384,
            stride: u32::MAX,
            format: PixelFormat::Rgba32,
        };
        assert!(matches!(huge.validate(), Err(ShapeError::FrameTooBig { .. })));
    }
}
