//! Pixel conversions from what cameras and image files give into frame formats, written
//! straight into a frame slot.
//!
//! Chosen by measurement (`cargo bench -p shmframes-tools --bench convert`, figures in the README):
//! - YUYV 4:2:2 (the uncompressed format of USB cameras) to RGB/BGR/RGBA/BGRA: the `yuv` crate's
//!   SIMD kernels, BT.601 limited range (what UVC cameras send).
//! - MJPEG (a JPEG per frame): libjpeg-turbo through the `mozjpeg` crate (the decoder nokhwa
//!   uses too), asked for our output colour space directly, so it decodes straight into the
//!   slot; 5x faster here than zune-jpeg on the same frames.
//! - YUYV to GRAY8 and packed RGB to our formats are byte shuffles written here as plain loops
//!   over fixed-size chunks, which the compiler vectorises; no crate does them better.

use shmframes::{FrameShape, PixelFormat};

/// A conversion that could not be done: bad input size or undecodable data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The destination cannot hold a frame of the shape.
    #[error("output buffer of {len} bytes is too small for {shape}")]
    OutputTooSmall {
        /// Bytes given.
        len: usize,
        /// The frame shape.
        shape: FrameShape,
    },
    /// The source holds less than a frame.
    #[error("{what} buffer of {len} bytes is too small for {width}x{height} ({needed} needed)")]
    InputTooSmall {
        /// "YUYV", "RGB", ...
        what: &'static str,
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        needed: usize,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// An MJPEG frame cut short (common over USB).
    #[error("truncated MJPEG frame ({len} bytes, no end-of-image marker)")]
    TruncatedJpeg {
        /// Its length.
        len: usize,
    },
    /// An MJPEG frame libjpeg cannot decode.
    #[error("bad MJPEG frame: {why}")]
    BadJpeg {
        /// libjpeg's words.
        why: String,
    },
    /// A JPEG of another size than the stream's.
    #[error("JPEG frame is {got_width}x{got_height}, expected {width}x{height}")]
    JpegSize {
        /// Its width.
        got_width: u32,
        /// Its height.
        got_height: u32,
        /// The stream's width.
        width: u32,
        /// The stream's height.
        height: u32,
    },
    /// The `yuv` crate refused the conversion.
    #[error("{what} conversion failed: {why}")]
    Yuv {
        /// Which conversion.
        what: &'static str,
        /// The crate's words.
        why: String,
    },
    /// A destination format this conversion does not produce.
    #[error(
        "cannot convert into {format}: use one of the RGB formats ({})",
        PixelFormat::rgb_family_names()
    )]
    UnsupportedTarget {
        /// The format asked for.
        format: PixelFormat,
    },
}

/// The YUV flavour of USB cameras (UVC) and of what we display: BT.601, limited range.
const YUV_RANGE: yuv::YuvRange = yuv::YuvRange::Limited;
const YUV_MATRIX: yuv::YuvStandardMatrix = yuv::YuvStandardMatrix::Bt601;

/// ITU-R BT.601 luma of an RGB colour, in integers: (77 R + 150 G + 29 B) / 256. The one
/// RGB-to-gray formula of the tools.
#[inline]
pub fn luma([r, g, b]: [u8; 3]) -> u8 {
    ((77 * r as u32 + 150 * g as u32 + 29 * b as u32) >> 8) as u8
}

/// Writes one RGB colour as a pixel of an RGB-family `format` into `out`
/// (`bytes_per_pixel` bytes). Panics for the YUV formats, which have no single-pixel form.
#[inline]
pub fn put_pixel(format: PixelFormat, rgb: [u8; 3], out: &mut [u8]) {
    let [r, g, b] = rgb;
    match format {
        PixelFormat::Bgr24 => out[..3].copy_from_slice(&[b, g, r]),
        PixelFormat::Rgb24 => out[..3].copy_from_slice(&[r, g, b]),
        PixelFormat::Gray8 => out[0] = luma(rgb),
        PixelFormat::Rgba32 => out[..4].copy_from_slice(&[r, g, b, 255]),
        PixelFormat::Bgra32 => out[..4].copy_from_slice(&[b, g, r, 255]),
        other => panic!("put_pixel: {other} has no single-pixel form"),
    }
}

fn check_out(shape: &FrameShape, out: &[u8]) -> Result<(), ConvertError> {
    if out.len() < shape.pixel_bytes() as usize {
        return Err(ConvertError::OutputTooSmall { len: out.len(), shape: *shape });
    }
    Ok(())
}

fn check_in(
    what: &'static str,
    input: &[u8],
    needed: usize,
    shape: &FrameShape,
) -> Result<(), ConvertError> {
    if input.len() < needed {
        return Err(ConvertError::InputTooSmall {
            what,
            len: input.len(),
            needed,
            width: shape.width,
            height: shape.height,
        });
    }
    Ok(())
}

fn rgb_bytes_per_pixel(format: PixelFormat) -> Result<usize, ConvertError> {
    match format.bytes_per_pixel() {
        Some(bpp) if format.is_rgb_family() => Ok(bpp as usize),
        _ => Err(ConvertError::UnsupportedTarget { format }),
    }
}

/// Converts a YUV frame (NV12, I420 or YUYV) of `shape` into RGBA8 in `out`, rows of
/// `out_stride` bytes: what a display surface takes.
pub fn yuv_to_rgba(
    shape: &FrameShape,
    src: &[u8],
    out: &mut [u8],
    out_stride: u32,
) -> Result<(), ConvertError> {
    check_in(shape.format.name(), src, shape.pixel_bytes() as usize, shape)?;
    let (w, h) = (shape.width, shape.height);
    let planes = shape.planes();
    let plane = |i: usize| {
        let p = planes[i];
        &src[p.offset as usize..p.offset as usize + p.stride as usize * p.rows as usize]
    };
    let yuv_err =
        |e: yuv::YuvError| ConvertError::Yuv { what: shape.format.name(), why: e.to_string() };
    match shape.format {
        PixelFormat::Nv12 => {
            let img = yuv::YuvBiPlanarImage {
                y_plane: plane(0),
                y_stride: planes[0].stride,
                uv_plane: plane(1),
                uv_stride: planes[1].stride,
                width: w,
                height: h,
            };
            yuv::yuv_nv12_to_rgba(
                &img,
                out,
                out_stride,
                YUV_RANGE,
                YUV_MATRIX,
                yuv::YuvConversionMode::Balanced,
            )
        }
        PixelFormat::I420 => {
            let img = yuv::YuvPlanarImage {
                y_plane: plane(0),
                y_stride: planes[0].stride,
                u_plane: plane(1),
                u_stride: planes[1].stride,
                v_plane: plane(2),
                v_stride: planes[2].stride,
                width: w,
                height: h,
            };
            yuv::yuv420_to_rgba(&img, out, out_stride, YUV_RANGE, YUV_MATRIX)
        }
        PixelFormat::Yuyv => {
            let img = yuv::YuvPackedImage {
                yuy: plane(0),
                yuy_stride: shape.stride,
                width: w,
                height: h,
            };
            yuv::yuyv422_to_rgba(&img, out, out_stride, YUV_RANGE, YUV_MATRIX)
        }
        format => return Err(ConvertError::UnsupportedTarget { format }),
    }
    .map_err(yuv_err)
}

/// Converts a packed YUYV 4:2:2 image of `shape.width x shape.height` into `out`.
pub fn yuyv_to(shape: &FrameShape, yuyv: &[u8], out: &mut [u8]) -> Result<(), ConvertError> {
    check_out(shape, out)?;
    rgb_bytes_per_pixel(shape.format)?;
    let (w, h) = (shape.width, shape.height);
    let src_stride = w.div_ceil(2) * 4;
    check_in("YUYV", yuyv, (src_stride * h) as usize, shape)?;
    if shape.format == PixelFormat::Gray8 {
        // Luma is the Y samples, expanded from limited (16..=235) to full range.
        let lut: [u8; 256] =
            std::array::from_fn(|y| (((y as i32 - 16) * 255 + 109) / 219).clamp(0, 255) as u8);
        for y in 0..h as usize {
            let src = &yuyv[y * src_stride as usize..][..w as usize * 2];
            let dst = &mut out[y * shape.stride as usize..][..w as usize];
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = lut[s[0] as usize];
            }
        }
        return Ok(());
    }
    let img = yuv::YuvPackedImage { yuy: yuyv, yuy_stride: src_stride, width: w, height: h };
    let (range, matrix) = (YUV_RANGE, YUV_MATRIX);
    let out = &mut out[..shape.pixel_bytes() as usize];
    let r = match shape.format {
        PixelFormat::Bgr24 => yuv::yuyv422_to_bgr(&img, out, shape.stride, range, matrix),
        PixelFormat::Rgb24 => yuv::yuyv422_to_rgb(&img, out, shape.stride, range, matrix),
        PixelFormat::Rgba32 => yuv::yuyv422_to_rgba(&img, out, shape.stride, range, matrix),
        PixelFormat::Bgra32 => yuv::yuyv422_to_bgra(&img, out, shape.stride, range, matrix),
        _ => unreachable!("gray handled above, YUV targets refused above"),
    };
    r.map_err(|e| ConvertError::Yuv { what: "YUYV", why: e.to_string() })
}

/// Decodes a JPEG (an MJPEG frame) of exactly `shape.width x shape.height` straight into
/// `out`, whatever its stride.
pub fn jpeg_to(shape: &FrameShape, jpeg: &[u8], out: &mut [u8]) -> Result<(), ConvertError> {
    use mozjpeg::ColorSpace;
    check_out(shape, out)?;
    // A frame cut short (common over USB) is an error, not a grey smear: it must end with the
    // end-of-image marker (cameras may pad after it with zeros).
    let end = jpeg.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end < 2 || jpeg[end - 2..end] != [0xFF, 0xD9] {
        return Err(ConvertError::TruncatedJpeg { len: jpeg.len() });
    }
    let cs = match shape.format {
        PixelFormat::Bgr24 => ColorSpace::JCS_EXT_BGR,
        PixelFormat::Rgb24 => ColorSpace::JCS_EXT_RGB,
        PixelFormat::Gray8 => ColorSpace::JCS_GRAYSCALE,
        PixelFormat::Rgba32 => ColorSpace::JCS_EXT_RGBA,
        PixelFormat::Bgra32 => ColorSpace::JCS_EXT_BGRA,
        format => return Err(ConvertError::UnsupportedTarget { format }),
    };
    // libjpeg reports corrupt data through the mozjpeg crate as a panic (by design): catch it
    // and turn it into an error. Nothing is shared across the boundary but `out`, whose bytes
    // are merely incomplete after a failure.
    let decode = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_jpeg(shape, &jpeg[..end], cs, out)
    }));
    match decode {
        Ok(r) => r,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("libjpeg error");
            Err(ConvertError::BadJpeg { why: why.to_owned() })
        }
    }
}

fn decode_jpeg(
    shape: &FrameShape,
    jpeg: &[u8],
    cs: mozjpeg::ColorSpace,
    out: &mut [u8],
) -> Result<(), ConvertError> {
    use mozjpeg::Decompress;
    let bad = |e: std::io::Error| ConvertError::BadJpeg { why: e.to_string() };
    let dec = Decompress::new_mem(jpeg).map_err(bad)?;
    let (w, h) = (dec.width() as u32, dec.height() as u32);
    if (w, h) != (shape.width, shape.height) {
        return Err(ConvertError::JpegSize {
            got_width: w,
            got_height: h,
            width: shape.width,
            height: shape.height,
        });
    }
    let mut started = dec.to_colorspace(cs).map_err(bad)?;
    let row = shape.row_bytes() as usize;
    if row == shape.stride as usize {
        started.read_scanlines_into::<u8>(&mut out[..shape.pixel_bytes() as usize]).map_err(bad)?;
    } else {
        for y in 0..shape.height as usize {
            started
                .read_scanlines_into::<u8>(&mut out[y * shape.stride as usize..][..row])
                .map_err(bad)?;
        }
    }
    started.finish().map_err(bad)
}

/// Converts packed RGB24 (`width * 3` bytes per row) into `out` in `shape.format`.
pub fn rgb_to(shape: &FrameShape, rgb: &[u8], out: &mut [u8]) -> Result<(), ConvertError> {
    check_out(shape, out)?;
    let w = shape.width as usize;
    check_in("RGB", rgb, w * 3 * shape.height as usize, shape)?;
    let bpp = rgb_bytes_per_pixel(shape.format)?;
    for (y, src) in rgb.chunks_exact(w * 3).take(shape.height as usize).enumerate() {
        let dst = &mut out[y * shape.stride as usize..][..w * bpp];
        match shape.format {
            PixelFormat::Rgb24 => dst.copy_from_slice(src),
            PixelFormat::Bgr24 => {
                for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
                    d.copy_from_slice(&[s[2], s[1], s[0]]);
                }
            }
            PixelFormat::Rgba32 => {
                for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(3)) {
                    d.copy_from_slice(&[s[0], s[1], s[2], 255]);
                }
            }
            PixelFormat::Bgra32 => {
                for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(3)) {
                    d.copy_from_slice(&[s[2], s[1], s[0], 255]);
                }
            }
            PixelFormat::Gray8 => {
                for (d, s) in dst.iter_mut().zip(src.chunks_exact(3)) {
                    *d = luma([s[0], s[1], s[2]]);
                }
            }
            _ => unreachable!("YUV targets refused above"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_to_every_format() {
        let rgb = [10u8, 20, 30, 200, 100, 0];
        let cases: [(PixelFormat, &[u8]); 5] = [
            (PixelFormat::Rgb24, &[10, 20, 30, 200, 100, 0]),
            (PixelFormat::Bgr24, &[30, 20, 10, 0, 100, 200]),
            (PixelFormat::Rgba32, &[10, 20, 30, 255, 200, 100, 0, 255]),
            (PixelFormat::Bgra32, &[30, 20, 10, 255, 0, 100, 200, 255]),
            (PixelFormat::Gray8, &[18, 118]),
        ];
        for (f, want) in cases {
            let shape = FrameShape::packed(2, 1, f).unwrap();
            let mut out = vec![0u8; shape.pixel_bytes() as usize];
            rgb_to(&shape, &rgb, &mut out).unwrap();
            assert_eq!(out, want, "{f}");
        }
    }

    #[test]
    fn yuyv_reference_values() {
        // Limited-range BT.601: Y=16 is black, Y=235 white, U=V=128 grey axis.
        let yuyv = [16u8, 128, 235, 128, 81, 90, 81, 240];
        let shape = FrameShape::packed(2, 2, PixelFormat::Rgb24).unwrap();
        let mut out = vec![0u8; shape.pixel_bytes() as usize];
        yuyv_to(&shape, &yuyv, &mut out).unwrap();
        let near = |a: u8, b: u8| (a as i32 - b as i32).abs() <= 3;
        assert!(out[0..3].iter().all(|&v| near(v, 0)), "black {:?}", &out[0..3]);
        assert!(out[3..6].iter().all(|&v| near(v, 255)), "white {:?}", &out[3..6]);
        // (81, 90, 240) is BT.601 studio-swing pure red.
        assert!(near(out[6], 255) && near(out[7], 0) && near(out[8], 0), "red {:?}", &out[6..9]);
        let gray = FrameShape::packed(2, 2, PixelFormat::Gray8).unwrap();
        let mut g = vec![0u8; 4];
        yuyv_to(&gray, &yuyv, &mut g).unwrap();
        assert_eq!(g, [0, 255, 76, 76]);
        assert!(yuyv_to(&shape, &yuyv[..7], &mut out).is_err());
    }
}
