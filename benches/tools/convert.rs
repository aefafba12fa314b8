//! The producer's hot path at 1080p: rendering the test pattern and converting camera frames,
//! each candidate side by side with a plain memcpy of the same frame (the floor).
//!
//! `cargo bench -p shmframes-tools --bench convert`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shmframes::{FrameShape, PixelFormat};
use shmframes_tools::convert;
use shmframes_tools::pattern::TestPattern;

const W: u32 = 1920;
const H: u32 = 1080;

fn sample_jpeg() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/sample.jpg")).unwrap()
}

/// A YUYV frame of the sample picture (luma from the picture, neutral-ish chroma from it too).
fn sample_yuyv() -> Vec<u8> {
    let mut rgb = vec![0u8; (W * H * 3) as usize];
    nokhwa::utils::buf_mjpeg_to_rgb(&sample_jpeg(), &mut rgb, false).unwrap();
    rgb.chunks_exact(6)
        .flat_map(|p| {
            let y = |r: u8, g: u8, b: u8| {
                (16 + ((66 * r as u32 + 129 * g as u32 + 25 * b as u32) >> 8)) as u8
            };
            let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
            let u = (128 + ((-38 * r - 74 * g + 112 * b) >> 8)).clamp(0, 255) as u8;
            let v = (128 + ((112 * r - 94 * g - 18 * b) >> 8)).clamp(0, 255) as u8;
            [y(p[0], p[1], p[2]), u, y(p[3], p[4], p[5]), v]
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let bgr = FrameShape::packed(W, H, PixelFormat::Bgr24).unwrap();
    let n = bgr.pixel_bytes() as usize;
    let mut out = vec![0u8; n];
    let src = vec![7u8; n];

    let mut g = c.benchmark_group("1080p_bgr_frame");
    g.throughput(Throughput::Bytes(n as u64));
    g.sample_size(30);
    g.bench_function("memcpy (the floor)", |b| b.iter(|| out.copy_from_slice(black_box(&src))));

    let pattern = TestPattern::new(bgr);
    let mut seq = 0u64;
    g.bench_function("test pattern render", |b| {
        b.iter(|| {
            seq += 1;
            pattern.render(seq, seq * 33, black_box(&mut out));
        })
    });

    let yuyv = sample_yuyv();
    g.bench_function("YUYV -> BGR, yuv crate (used)", |b| {
        b.iter(|| convert::yuyv_to(&bgr, black_box(&yuyv), &mut out).unwrap())
    });
    let mut rgb = vec![0u8; n];
    g.bench_function("YUYV -> RGB, nokhwa buf_yuyv422_to_rgb", |b| {
        b.iter(|| nokhwa::utils::buf_yuyv422_to_rgb(black_box(&yuyv), &mut rgb, false).unwrap())
    });

    let jpeg = sample_jpeg();
    g.bench_function("MJPEG -> BGR, libjpeg-turbo via mozjpeg into the slot (used)", |b| {
        b.iter(|| convert::jpeg_to(&bgr, black_box(&jpeg), &mut out).unwrap())
    });
    g.bench_function("MJPEG -> BGR, zune-jpeg", |b| {
        use zune_jpeg::zune_core::{colorspace::ColorSpace, options::DecoderOptions};
        b.iter(|| {
            let o = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::BGR);
            let mut d = zune_jpeg::JpegDecoder::new_with_options(black_box(&jpeg[..]), o);
            d.decode_into(&mut out).unwrap()
        })
    });
    g.bench_function("MJPEG -> RGB, nokhwa buf_mjpeg_to_rgb (mozjpeg)", |b| {
        b.iter(|| nokhwa::utils::buf_mjpeg_to_rgb(black_box(&jpeg), &mut rgb, false).unwrap())
    });
    g.finish();

    // frame-viewer's conversion: a 1080p frame into an RGBA surface, 1:1 and scaled to 1280x720.
    let mut g = c.benchmark_group("display_1080p_to_rgba");
    g.sample_size(30);
    let frame = {
        let mut f = vec![0u8; n];
        pattern.render(1, 0, &mut f);
        f
    };
    let mut scaler = shmframes_tools::display::Scaler::new();
    let mut surface = vec![0u8; (W * H * 4) as usize];
    g.throughput(Throughput::Bytes(n as u64));
    g.bench_function("bgr 1920x1080 -> rgba 1920x1080", |b| {
        b.iter(|| scaler.render(black_box(&frame), &bgr, &mut surface, W, H))
    });
    g.bench_function("bgr 1920x1080 -> rgba 1280x720 (scaled)", |b| {
        b.iter(|| scaler.render(black_box(&frame), &bgr, &mut surface, 1280, 720))
    });
    let gray = FrameShape::packed(W, H, PixelFormat::Gray8).unwrap();
    g.bench_function("gray 1920x1080 -> rgba 1920x1080", |b| {
        b.iter(|| {
            scaler.render(
                black_box(&frame[..gray.pixel_bytes() as usize]),
                &gray,
                &mut surface,
                W,
                H,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
