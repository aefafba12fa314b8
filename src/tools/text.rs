//! Status text drawn into an RGBA picture: what `frame-viewer` shows in its window when it has
//! no live frame to show (waiting for the channel, another reader holds it, the producer is
//! gone). White text on a dark band, in DejaVu Sans Mono Bold (`assets/fonts`, Bitstream Vera
//! licence: `assets/fonts/DejaVu-LICENSE.txt`), built into the binary.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono-Bold.ttf");

/// Draws text lines into RGBA pictures.
pub struct TextPainter {
    font: FontRef<'static>,
}

impl Default for TextPainter {
    fn default() -> Self {
        Self::new()
    }
}

impl TextPainter {
    /// The painter, with the built-in font.
    pub fn new() -> TextPainter {
        TextPainter { font: FontRef::try_from_slice(FONT_BYTES).expect("the built-in font parses") }
    }

    /// Draws `lines` at the top left of the `width` x `height` RGBA picture `dst`, `px` pixels
    /// high, on a band darkened behind them; text that does not fit is cut at the edge.
    pub fn draw(&self, dst: &mut [u8], width: u32, height: u32, lines: &[&str], px: f32) {
        let (w, h) = (width as usize, height as usize);
        if dst.len() < w * h * 4 || lines.is_empty() {
            return;
        }
        let font = self.font.as_scaled(PxScale::from(px));
        let margin = (px * 0.5) as usize;
        let line_h = font.height() + font.line_gap();
        let band_h = ((margin as f32 * 2.0 + line_h * lines.len() as f32) as usize).min(h);
        for px_ in dst[..band_h * w * 4].chunks_exact_mut(4) {
            for c in &mut px_[..3] {
                *c /= 4; // darkened: the text stays readable over any picture
            }
        }
        for (i, line) in lines.iter().enumerate() {
            let baseline = margin as f32 + font.ascent() + line_h * i as f32;
            let mut x = margin as f32;
            for ch in line.chars() {
                let id = font.glyph_id(ch);
                let glyph =
                    id.with_scale_and_position(PxScale::from(px), ab_glyph::point(x, baseline));
                x += font.h_advance(id);
                let Some(outlined) = self.font.outline_glyph(glyph) else { continue };
                let b = outlined.px_bounds();
                outlined.draw(|gx, gy, coverage| {
                    let (px_x, px_y) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                    if px_x < 0 || px_y < 0 || px_x as usize >= w || px_y as usize >= h {
                        return;
                    }
                    let o = (px_y as usize * w + px_x as usize) * 4;
                    for c in &mut dst[o..o + 3] {
                        *c = (*c as f32 + (255.0 - *c as f32) * coverage).round() as u8;
                    }
                    dst[o + 3] = 255;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lights_pixels_in_its_band_only() {
        let (w, h) = (200u32, 100u32);
        let mut img = vec![100u8; (w * h * 4) as usize];
        TextPainter::new().draw(&mut img, w, h, &["waiting"], 16.0);
        let white = img.chunks_exact(4).filter(|p| p[0] > 200).count();
        assert!(white > 20, "{white} white pixels");
        let below = &img[(60 * w * 4) as usize..];
        assert!(below.iter().all(|&c| c == 100), "the picture below the band changed");
    }
}
