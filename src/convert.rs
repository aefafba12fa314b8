//! Pixel conversions from what cameras and image files give into frame formats, written
//! straight into a frame slot (feature `convert`).
//!
//! Chosen by measurement (`cargo bench --bench convert`, figures in the README):
//! - YUYV 4:2:2 (the uncompressed format of USB cameras) to RGB/BGR/RGBA/BGRA: the `yuv` crate's
//!   SIMD kernels, BT.601 limited range (what UVC cameras send).
//! - MJPEG (a JPEG per frame): libjpeg-turbo through the `mozjpeg` crate (the decoder nokhwa
//!   uses too), asked for our output colour space directly, so it decodes straight into the
//!   slot; 5x faster here than zune-jpeg on the same frames.
//! - YUYV to GRAY8 and packed RGB to our formats are byte shuffles written here as plain loops
//!   over fixed-size chunks, which the compiler vectorises; no crate does them better.

use crate::frame::{FrameShape, PixelFormat};

/// A conversion that could not be done: bad input size or undecodable data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError(pub String);

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConvertError {}

fn err<T>(msg: String) -> Result<T, ConvertError> {
    Err(ConvertError(msg))
}

fn check_out(shape: &FrameShape, out: &[u8]) -> Result<(), ConvertError> {
    if out.len() < shape.pixel_bytes() as usize {
        return err(format!("output buffer of {} bytes is too small for {shape}", out.len()));
    }
    Ok(())
}

/// Converts a packed YUYV 4:2:2 image of `shape.width x shape.height` into `out`.
pub fn yuyv_to(shape: &FrameShape, yuyv: &[u8], out: &mut [u8]) -> Result<(), ConvertError> {
    check_out(shape, out)?;
    let (w, h) = (shape.width, shape.height);
    let src_stride = w.div_ceil(2) * 4;
    if yuyv.len() < (src_stride * h) as usize {
        return err(format!("YUYV buffer of {} bytes is too small for {w}x{h} ({} needed)", yuyv.len(), src_stride * h));
    }
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
    let (range, matrix) = (yuv::YuvRange::Limited, yuv::YuvStandardMatrix::Bt601);
    let out = &mut out[..shape.pixel_bytes() as usize];
    let r = match shape.format {
        PixelFormat::Bgr24 => yuv::yuyv422_to_bgr(&img, out, shape.stride, range, matrix),
        PixelFormat::Rgb24 => yuv::yuyv422_to_rgb(&img, out, shape.stride, range, matrix),
        PixelFormat::Rgba32 => yuv::yuyv422_to_rgba(&img, out, shape.stride, range, matrix),
        PixelFormat::Bgra32 => yuv::yuyv422_to_bgra(&img, out, shape.stride, range, matrix),
        PixelFormat::Gray8 => unreachable!("handled above"),
    };
    r.map_err(|e| ConvertError(format!("YUYV conversion failed: {e}")))
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
        return err(format!("truncated MJPEG frame ({} bytes, no end-of-image marker)", jpeg.len()));
    }
    let cs = match shape.format {
        PixelFormat::Bgr24 => ColorSpace::JCS_EXT_BGR,
        PixelFormat::Rgb24 => ColorSpace::JCS_EXT_RGB,
        PixelFormat::Gray8 => ColorSpace::JCS_GRAYSCALE,
        PixelFormat::Rgba32 => ColorSpace::JCS_EXT_RGBA,
        PixelFormat::Bgra32 => ColorSpace::JCS_EXT_BGRA,
    };
    // libjpeg reports corrupt data through the mozjpeg crate as a panic (by design): catch it
    // and turn it into an error. Nothing is shared across the boundary but `out`, whose bytes
    // are merely incomplete after a failure.
    let decode = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_jpeg(shape, &jpeg[..end], cs, out)));
    match decode {
        Ok(r) => r,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("libjpeg error");
            err(format!("bad MJPEG frame: {why}"))
        }
    }
}

fn decode_jpeg(shape: &FrameShape, jpeg: &[u8], cs: mozjpeg::ColorSpace, out: &mut [u8]) -> Result<(), ConvertError> {
    use mozjpeg::Decompress;
    let bad = |e: std::io::Error| ConvertError(format!("bad MJPEG frame: {e}"));
    let dec = Decompress::new_mem(jpeg).map_err(bad)?;
    let (w, h) = (dec.width() as u32, dec.height() as u32);
    if (w, h) != (shape.width, shape.height) {
        return err(format!("JPEG frame is {w}x{h}, expected {}x{}", shape.width, shape.height));
    }
    let mut started = dec.to_colorspace(cs).map_err(bad)?;
    let row = (shape.width * shape.format.bytes_per_pixel()) as usize;
    if row == shape.stride as usize {
        started.read_scanlines_into::<u8>(&mut out[..shape.pixel_bytes() as usize]).map_err(bad)?;
    } else {
        for y in 0..shape.height as usize {
            started.read_scanlines_into::<u8>(&mut out[y * shape.stride as usize..][..row]).map_err(bad)?;
        }
    }
    started.finish().map_err(bad)
}

/// Converts packed RGB24 (`width * 3` bytes per row) into `out` in `shape.format`.
pub fn rgb_to(shape: &FrameShape, rgb: &[u8], out: &mut [u8]) -> Result<(), ConvertError> {
    check_out(shape, out)?;
    let w = shape.width as usize;
    if rgb.len() < w * 3 * shape.height as usize {
        return err(format!("RGB buffer of {} bytes is too small for {shape}", rgb.len()));
    }
    let bpp = shape.format.bytes_per_pixel() as usize;
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
                    *d = ((77 * s[0] as u32 + 150 * s[1] as u32 + 29 * s[2] as u32) >> 8) as u8;
                }
            }
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
