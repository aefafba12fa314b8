//! A classic test pattern, rendered straight into a frame buffer at any size and format.
//!
//! | rows (fraction of height) | content |
//! |---|---|
//! | 0 .. 2/3 | seven 75 % colour bars, left to right: white, yellow, cyan, green, magenta, red, blue |
//! | 2/3 .. 3/4 | reverse castellation: blue, black, magenta, black, cyan, black, white; a 100 % white square moves left to right across it |
//! | 3/4 .. 1 | a black strip with the frame number and time (`#000123 00:04.100`) at the left, a grey ramp (0 to 255) on the right half |
//!
//! Bar `i` covers columns `i * width / 7 .. (i + 1) * width / 7`. The square is `h/12` pixels
//! tall and wide, at column `(seq * 8) % (width - size)`. Every value is deterministic, so tests
//! (and [`TestPattern::expected_rgb`]) can check pixels exactly.
//!
//! Rendering copies a pre-rendered background (one `memcpy` of the frame) and then draws the
//! square and the text, so a 1080p frame costs about as much as one copy.

use shmframes::{FrameShape, PixelFormat};

/// 75 % colour bars, RGB.
pub const BARS: [[u8; 3]; 7] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
];
/// The reverse castellation band, RGB.
pub const CASTELLATION: [[u8; 3]; 7] =
    [[0, 0, 191], [0, 0, 0], [191, 0, 191], [0, 0, 0], [0, 191, 191], [0, 0, 0], [191, 191, 191]];
/// The moving square, RGB.
pub const SQUARE: [u8; 3] = [255, 255, 255];

pub use crate::convert::put_pixel;

/// The RGB colour of pixel `(x, y)` of an RGB-family frame (gray as three equal values): the
/// inverse of [`put_pixel`], for checking what arrived.
pub fn rgb_at(shape: FrameShape, pixels: &[u8], x: u32, y: u32) -> [u8; 3] {
    let bpp = shape.format.row_bytes_per_pixel() as usize;
    let p = &pixels[(y * shape.stride) as usize + x as usize * bpp..];
    match shape.format {
        PixelFormat::Bgr24 | PixelFormat::Bgra32 => [p[2], p[1], p[0]],
        PixelFormat::Rgb24 | PixelFormat::Rgba32 => [p[0], p[1], p[2]],
        PixelFormat::Gray8 => [p[0]; 3],
        other => panic!("rgb_at: {other} is not an RGB-family format"),
    }
}

/// The pattern for one frame shape; keeps the pre-rendered background.
#[derive(Debug, Clone)]
pub struct TestPattern {
    shape: FrameShape,
    background: Vec<u8>,
}

/// 5x7 glyphs for the characters the overlay uses, one row per byte (bit 4 = leftmost).
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        _ => [0; 7],
    }
}

impl TestPattern {
    /// Pre-renders the background for `shape`, which must be of an RGB-family format (bgr,
    /// rgb, gray, rgba, bgra): panics otherwise (the producer refuses other formats first).
    pub fn new(shape: FrameShape) -> TestPattern {
        assert!(
            shape.format.is_rgb_family(),
            "the test pattern draws RGB-family formats, not {}",
            shape.format
        );
        let mut background = vec![0u8; shape.pixel_bytes() as usize];
        let bpp = shape.format.row_bytes_per_pixel() as usize;
        for y in 0..shape.height {
            let row = &mut background[(y * shape.stride) as usize..][..shape.width as usize * bpp];
            for x in 0..shape.width {
                let rgb = Self::background_rgb(shape.width, shape.height, x, y);
                put_pixel(shape.format, rgb, &mut row[x as usize * bpp..]);
            }
        }
        TestPattern { shape, background }
    }

    /// The shape this pattern renders.
    pub fn shape(&self) -> FrameShape {
        self.shape
    }

    fn background_rgb(w: u32, h: u32, x: u32, y: u32) -> [u8; 3] {
        let bar = (x as u64 * 7 / w as u64) as usize;
        if y < h * 2 / 3 {
            BARS[bar]
        } else if y < h * 3 / 4 {
            CASTELLATION[bar]
        } else if x >= w / 2 {
            let v = ((x - w / 2) as u64 * 255 / (w - w / 2).max(2).saturating_sub(1) as u64)
                .min(255) as u8;
            [v, v, v]
        } else {
            [0, 0, 0]
        }
    }

    /// Size and column of the moving square for frame `seq`: `(size, x, y)`.
    pub fn square(&self, seq: u64) -> (u32, u32, u32) {
        let (w, h) = (self.shape.width, self.shape.height);
        let size = (h / 12).max(1).min(w);
        let span = (w - size).max(1) as u64;
        let x = ((seq * 8) % span) as u32;
        let y = h * 2 / 3 + (h * 3 / 4 - h * 2 / 3).saturating_sub(size) / 2;
        (size.min(h - y), x, y)
    }

    /// What the pattern has at `(x, y)` for frame `seq`, in RGB, outside the text area
    /// (the bottom-left quarter strip). For tests and for checking screenshots.
    pub fn expected_rgb(&self, seq: u64, x: u32, y: u32) -> [u8; 3] {
        let (size, sx, sy) = self.square(seq);
        if (sx..sx + size).contains(&x) && (sy..sy + size).contains(&y) {
            return SQUARE;
        }
        Self::background_rgb(self.shape.width, self.shape.height, x, y)
    }

    /// Renders frame `seq` into `out` (`stride * height` bytes), with `millis` (time since the
    /// stream started) in the overlay.
    pub fn render(&self, seq: u64, millis: u64, out: &mut [u8]) {
        out.copy_from_slice(&self.background);
        let (size, sx, sy) = self.square(seq);
        self.fill_rect(out, sx, sy, size, size, SQUARE);
        let text = format!(
            "#{:06} {:02}:{:02}.{:03}",
            seq % 1_000_000,
            millis / 60_000 % 100,
            millis / 1000 % 60,
            millis % 1000
        );
        let h = self.shape.height;
        let scale = (h / 135).max(1);
        let y0 = h * 3 / 4 + (h / 4).saturating_sub(7 * scale) / 2;
        self.draw_text(out, &text, scale.max(1), scale * 2, y0);
    }

    fn fill_rect(&self, out: &mut [u8], x0: u32, y0: u32, w: u32, h: u32, rgb: [u8; 3]) {
        let s = self.shape;
        let bpp = s.format.row_bytes_per_pixel() as usize;
        let mut px = [0u8; 4];
        put_pixel(s.format, rgb, &mut px);
        let x1 = (x0 + w).min(s.width);
        for y in y0..(y0 + h).min(s.height) {
            let row = &mut out[(y * s.stride) as usize..];
            for x in x0..x1 {
                row[x as usize * bpp..][..bpp].copy_from_slice(&px[..bpp]);
            }
        }
    }

    fn draw_text(&self, out: &mut [u8], text: &str, scale: u32, x0: u32, y0: u32) {
        let advance = 6 * scale;
        let limit = self.shape.width / 2; // keep to the black half of the strip
        for (i, c) in text.chars().enumerate() {
            let cx = x0 + i as u32 * advance;
            if cx + 5 * scale > limit {
                break;
            }
            for (gy, bits) in glyph(c).iter().enumerate() {
                for gx in 0..5 {
                    if bits & (0x10 >> gx) != 0 {
                        self.fill_rect(
                            out,
                            cx + gx * scale,
                            y0 + gy as u32 * scale,
                            scale,
                            scale,
                            [255, 255, 255],
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_square_and_text_where_documented() {
        let shape = FrameShape::packed(1920, 1080, PixelFormat::Bgr24).unwrap();
        let p = TestPattern::new(shape);
        let mut buf = vec![0u8; shape.pixel_bytes() as usize];
        for seq in [0u64, 1, 117, 5000] {
            p.render(seq, 4100, &mut buf);
            for (i, bar) in BARS.iter().enumerate() {
                let x = (2 * i as u32 + 1) * 1920 / 14;
                assert_eq!(rgb_at(shape, &buf, x, 300), *bar, "bar {i}");
            }
            let (size, sx, sy) = p.square(seq);
            assert_eq!(rgb_at(shape, &buf, sx + size / 2, sy + size / 2), SQUARE);
            for (x, y) in [(sx + size / 2, sy + size / 2), (100, 100), (1900, 1070), (1000, 780)] {
                assert_eq!(
                    rgb_at(shape, &buf, x, y),
                    p.expected_rgb(seq, x, y),
                    "({x},{y}) seq {seq}"
                );
            }
        }
        // The overlay text changes with the frame number.
        let mut a = vec![0u8; buf.len()];
        p.render(1, 0, &mut a);
        p.render(2, 0, &mut buf);
        let strip = (1080 * 3 / 4 * 1920 * 3) as usize;
        assert_ne!(a[strip..], buf[strip..]);
    }

    #[test]
    fn every_format_and_odd_sizes() {
        for f in PixelFormat::rgb_family() {
            for (w, h) in [(1, 1), (7, 3), (33, 17), (641, 479)] {
                let shape = FrameShape::packed(w, h, f).unwrap();
                let p = TestPattern::new(shape);
                let mut buf = vec![0u8; shape.pixel_bytes() as usize];
                p.render(3, 1234, &mut buf);
                let x = w / 14;
                if h >= 3 {
                    let expect = p.expected_rgb(3, x, 0);
                    let mut px = [0u8; 4];
                    put_pixel(f, expect, &mut px);
                    let bpp = f.row_bytes_per_pixel() as usize;
                    assert_eq!(&buf[x as usize * bpp..][..bpp], &px[..bpp], "{f} {w}x{h}");
                }
            }
        }
    }
}
