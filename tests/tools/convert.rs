//! Camera capture-to-frame conversion without a camera: MJPEG and YUYV buffers of a real
//! 1080p picture (assets/sample.jpg), decoded by our conversions and by nokhwa's own decoders,
//! must agree with each other and with the picture.

use shmframes::{FrameShape, PixelFormat};
use shmframes_tools::convert;

const W: u32 = 1920;
const H: u32 = 1080;

fn sample_jpeg() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/sample.jpg")).unwrap()
}

/// The picture as RGB, decoded by nokhwa (mozjpeg).
fn nokhwa_rgb(jpeg: &[u8]) -> Vec<u8> {
    let mut rgb = vec![0u8; (W * H * 3) as usize];
    nokhwa::utils::buf_mjpeg_to_rgb(jpeg, &mut rgb, false).unwrap();
    rgb
}

/// A reference YUYV encoder (BT.601, limited range, chroma averaged over pixel pairs), written
/// independently of the decoders under test.
fn rgb_to_yuyv(rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity((W * H * 2) as usize);
    for px in rgb.chunks_exact(6) {
        let f = |i: usize| px[i] as f64;
        let y = |r: f64, g: f64, b: f64| {
            (16.0 + (65.738 * r + 129.057 * g + 25.064 * b) / 256.0).round().clamp(0.0, 255.0) as u8
        };
        let (r, g, b) = ((f(0) + f(3)) / 2.0, (f(1) + f(4)) / 2.0, (f(2) + f(5)) / 2.0);
        let u = (128.0 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256.0).round().clamp(0.0, 255.0)
            as u8;
        let v = (128.0 + (112.439 * r - 94.154 * g - 18.285 * b) / 256.0).round().clamp(0.0, 255.0)
            as u8;
        out.extend_from_slice(&[y(f(0), f(1), f(2)), u, y(f(3), f(4), f(5)), v]);
    }
    out
}

/// Mean absolute difference and peak signal-to-noise ratio of two equal-sized buffers.
fn compare(a: &[u8], b: &[u8]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let (mut abs, mut sq) = (0u64, 0u64);
    for (&x, &y) in a.iter().zip(b) {
        let d = (x as i64 - y as i64).unsigned_abs();
        abs += d;
        sq += d * d;
    }
    let n = a.len() as f64;
    let mse = sq as f64 / n;
    (
        abs as f64 / n,
        if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() },
    )
}

fn reorder(rgb: &[u8], f: PixelFormat) -> Vec<u8> {
    let shape = FrameShape::packed(W, H, f).unwrap();
    let mut out = vec![0u8; shape.pixel_bytes() as usize];
    convert::rgb_to(&shape, rgb, &mut out).unwrap();
    out
}

#[test]
fn mjpeg_frame_decodes_like_nokhwa_in_every_format() {
    let jpeg = sample_jpeg();
    let reference = nokhwa_rgb(&jpeg);
    for f in PixelFormat::rgb_family() {
        let shape = FrameShape::packed(W, H, f).unwrap();
        let mut ours = vec![0u8; shape.pixel_bytes() as usize];
        convert::jpeg_to(&shape, &jpeg, &mut ours).unwrap();
        let (mad, psnr) = compare(&ours, &reorder(&reference, f));
        eprintln!("MJPEG -> {f}: mean |diff| {mad:.3}, PSNR {psnr:.1} dB vs nokhwa");
        // Two JPEG decoders differ only in IDCT and upsampling rounding.
        assert!(mad < 1.5 && psnr > 38.0, "{f}: mean diff {mad}, PSNR {psnr}");
    }
}

#[test]
fn mjpeg_with_row_padding_and_wrong_size() {
    let jpeg = sample_jpeg();
    let shape = FrameShape { width: W, height: H, stride: W * 3 + 64, format: PixelFormat::Bgr24 };
    let mut out = vec![0u8; shape.pixel_bytes() as usize];
    convert::jpeg_to(&shape, &jpeg, &mut out).unwrap();
    let packed = FrameShape::packed(W, H, PixelFormat::Bgr24).unwrap();
    let mut tight = vec![0u8; packed.pixel_bytes() as usize];
    convert::jpeg_to(&packed, &jpeg, &mut tight).unwrap();
    for y in [0usize, 500, 1079] {
        assert_eq!(
            &out[y * shape.stride as usize..][..(W * 3) as usize],
            &tight[y * (W * 3) as usize..][..(W * 3) as usize]
        );
    }
    let small = FrameShape::packed(640, 480, PixelFormat::Bgr24).unwrap();
    let e = convert::jpeg_to(&small, &jpeg, &mut out).unwrap_err();
    assert!(e.to_string().contains("1920x1080"), "{e}");
    assert!(convert::jpeg_to(&packed, &jpeg[..1000], &mut tight).is_err());
    // Corrupt data that still ends with an end-of-image marker: an error or pixels, never a
    // panic or a crash.
    for cut in [2usize, 20, 300, 5000] {
        let mut broken = jpeg[..cut].to_vec();
        broken.extend_from_slice(&[0xFF, 0xD9]);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            convert::jpeg_to(&packed, &broken, &mut tight)
        }));
        assert!(r.is_ok(), "decoder panicked on a {cut}-byte corrupt frame");
    }
    let mut garbage = vec![0x5Au8; 4000];
    garbage.extend_from_slice(&[0xFF, 0xD9]);
    assert!(convert::jpeg_to(&packed, &garbage, &mut tight).is_err());
}

#[test]
fn yuyv_frame_decodes_to_the_picture_and_agrees_with_nokhwa() {
    let picture = nokhwa_rgb(&sample_jpeg());
    let yuyv = rgb_to_yuyv(&picture);
    let mut theirs = vec![0u8; (W * H * 3) as usize];
    nokhwa::utils::buf_yuyv422_to_rgb(&yuyv, &mut theirs, false).unwrap();
    for f in PixelFormat::rgb_family() {
        let shape = FrameShape::packed(W, H, f).unwrap();
        let mut ours = vec![0u8; shape.pixel_bytes() as usize];
        convert::yuyv_to(&shape, &yuyv, &mut ours).unwrap();
        let (mad, psnr) = compare(&ours, &reorder(&picture, f));
        let (mad_n, psnr_n) = compare(&ours, &reorder(&theirs, f));
        eprintln!("YUYV -> {f}: vs picture mean |diff| {mad:.2} PSNR {psnr:.1} dB; vs nokhwa {mad_n:.2} / {psnr_n:.1} dB");
        // 4:2:2 chroma subsampling loses colour detail: a faithful decode stays above 30 dB.
        assert!(psnr > 30.0, "{f}: PSNR {psnr} against the original picture");
        assert!(psnr_n > 28.0, "{f}: PSNR {psnr_n} against nokhwa's decoder");
    }
}
