//! The image source: a still image or a folder of images, scaled to the frame size (aspect
//! ratio kept, black borders), converted once, played in a loop.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use fast_image_resize as fr;
use shmframes::FrameShape;

/// Converted frames are kept in memory up to this many bytes; beyond, images are decoded as
/// they are played.
const CACHE_BUDGET: u64 = 512 << 20;

pub struct Images {
    shape: FrameShape,
    files: Vec<PathBuf>,
    /// Converted frames, when they fit the budget.
    cache: Vec<Vec<u8>>,
    resizer: fr::Resizer,
}

impl Images {
    pub fn open(path: &Path, shape: FrameShape) -> anyhow::Result<Images> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot read --image {}", path.display()))?;
        let files = if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && image::ImageFormat::from_path(p).is_ok())
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{} has no images (PNG, JPEG, BMP or WebP files)", path.display());
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mut images = Images { shape, files, cache: Vec::new(), resizer: fr::Resizer::new() };
        // Decode everything once up front when it fits: errors show at start, not mid-stream.
        if images.files.len() as u64 * shape.pixel_bytes() as u64 <= CACHE_BUDGET {
            let mut cache = Vec::with_capacity(images.files.len());
            for i in 0..images.files.len() {
                let mut frame = vec![0u8; shape.pixel_bytes() as usize];
                images.load(i, &mut frame)?;
                cache.push(frame);
            }
            images.cache = cache;
        } else {
            // Check the first one at least.
            let mut frame = vec![0u8; shape.pixel_bytes() as usize];
            images.load(0, &mut frame)?;
        }
        Ok(images)
    }

    pub fn shape(&self) -> FrameShape {
        self.shape
    }

    pub fn describe(&self) -> String {
        match self.files.as_slice() {
            [one] => format!("image {}", one.display()),
            many => format!(
                "{} images from {}",
                many.len(),
                many[0].parent().unwrap_or(Path::new(".")).display()
            ),
        }
    }

    pub fn render(&mut self, seq: u64, out: &mut [u8]) -> anyhow::Result<()> {
        let i = (seq % self.files.len() as u64) as usize;
        if let Some(frame) = self.cache.get(i) {
            out.copy_from_slice(frame);
            return Ok(());
        }
        self.load(i, out)
    }

    /// Decodes image `i`, scales it into the frame (letterboxed), converts to the format.
    fn load(&mut self, i: usize, out: &mut [u8]) -> anyhow::Result<()> {
        let path = &self.files[i];
        let img = image::ImageReader::open(path)
            .with_context(|| format!("cannot open {}", path.display()))?
            .with_guessed_format()?
            .decode()
            // The image crate's error repeats its source in its own message: show it once.
            .map_err(|e| anyhow::anyhow!("cannot decode {}: {e}", path.display()))?
            .into_rgb8();
        let (sw, sh) = img.dimensions();
        let (w, h) = (self.shape.width, self.shape.height);
        // Fit inside w x h, keeping the aspect ratio.
        let scale = (w as f64 / sw as f64).min(h as f64 / sh as f64);
        let (dw, dh) = (
            ((sw as f64 * scale).round() as u32).clamp(1, w),
            ((sh as f64 * scale).round() as u32).clamp(1, h),
        );
        let src = fr::images::Image::from_vec_u8(sw, sh, img.into_raw(), fr::PixelType::U8x3)?;
        let mut dst = fr::images::Image::new(dw, dh, fr::PixelType::U8x3);
        self.resizer.resize(
            &src,
            &mut dst,
            &fr::ResizeOptions::new()
                .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3)),
        )?;
        let mut canvas = vec![0u8; (w * h * 3) as usize];
        let (ox, oy) = ((w - dw) / 2, (h - dh) / 2);
        for (y, row) in dst.buffer().chunks_exact((dw * 3) as usize).enumerate() {
            let start = (((oy + y as u32) * w + ox) * 3) as usize;
            canvas[start..start + row.len()].copy_from_slice(row);
        }
        shmframes_tools::convert::rgb_to(&self.shape, &canvas, out)?;
        Ok(())
    }
}
