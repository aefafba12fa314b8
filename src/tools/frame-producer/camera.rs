//! The camera source (nokhwa; V4L2 on Linux, AVFoundation on macOS): negotiate the closest format, capture, decode
//! straight into the ring slot.

use anyhow::{anyhow, bail, Context};
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};
use nokhwa::{Buffer, Camera};
use shmframes::{FrameShape, PixelFormat};

/// Prints the cameras nokhwa finds.
pub fn list() -> anyhow::Result<()> {
    let cams = nokhwa::query(ApiBackend::Auto).map_err(|e| anyhow!("cannot list cameras: {e}"))?;
    if cams.is_empty() {
        println!("no cameras found{}", no_device_hint());
        return Ok(());
    }
    for c in cams {
        println!("{}: {} ({})", c.index(), c.human_name(), c.description());
    }
    Ok(())
}

fn no_device_hint() -> &'static str {
    if cfg!(target_os = "linux")
        && !std::fs::read_dir("/dev").is_ok_and(|d| {
            d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("video"))
        })
    {
        " (no /dev/video* devices on this machine)"
    } else {
        ""
    }
}

/// macOS lets a program use the camera only once the user allowed the app it runs in (the
/// terminal): AVFoundation asks on first use, and nokhwa must be told to ask.
#[cfg(target_os = "macos")]
fn ask_camera_access() -> anyhow::Result<()> {
    if !nokhwa::nokhwa_check() {
        let (tx, rx) = std::sync::mpsc::channel();
        nokhwa::nokhwa_initialize(move |granted| {
            let _ = tx.send(granted);
        });
        if rx.recv_timeout(std::time::Duration::from_secs(120)) != Ok(true) {
            bail!(
                "macOS did not let this terminal use the camera: allow it in System Settings > \
                 Privacy & Security > Camera, then start frame-producer again"
            );
        }
    }
    Ok(())
}

/// Only macOS asks for camera access.
#[cfg(not(target_os = "macos"))]
fn ask_camera_access() -> anyhow::Result<()> {
    Ok(())
}

pub struct CameraSource {
    camera: Camera,
    index: u32,
    shape: FrameShape,
    source_format: FrameFormat,
    frame: Option<Buffer>,
    scratch: Vec<u8>,
}

impl CameraSource {
    /// Opens camera `index` with the format closest to `width x height` at `fps`.
    pub fn open(
        index: u32,
        width: u32,
        height: u32,
        fps: f64,
        format: PixelFormat,
    ) -> anyhow::Result<CameraSource> {
        let rate = if fps > 0.0 { fps.round().max(1.0) as u32 } else { 60 };
        let wanted = CameraFormat::new(Resolution::new(width, height), FrameFormat::MJPEG, rate);
        let request = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(wanted));
        ask_camera_access()?;
        let mut camera = Camera::new(CameraIndex::Index(index), request).map_err(|e| {
            anyhow!(
                "camera {index} could not be opened: {e}; no such camera was found{}. \
                 Use --synthetic for a test pattern, or --list-cameras to see what exists",
                no_device_hint()
            )
        })?;
        camera
            .open_stream()
            .map_err(|e| anyhow!("camera {index} opened but cannot stream: {e}"))?;
        let f = camera.camera_format();
        let source_format = f.format();
        if !matches!(
            source_format,
            FrameFormat::MJPEG | FrameFormat::YUYV | FrameFormat::GRAY | FrameFormat::RAWRGB
        ) {
            bail!("camera {index} only offers {source_format}, which frame-producer cannot convert yet (MJPEG, YUYV, GRAY, RGB)");
        }
        let shape = crate::shape_of(f.width(), f.height(), format)?;
        if (f.width(), f.height()) != (width, height) {
            eprintln!(
                "frame-producer: camera {index} has no {width}x{height}; using its closest format, {}x{} {} at {} fps",
                f.width(),
                f.height(),
                source_format,
                f.frame_rate()
            );
        }
        Ok(CameraSource { camera, index, shape, source_format, frame: None, scratch: Vec::new() })
    }

    pub fn shape(&self) -> FrameShape {
        self.shape
    }

    pub fn describe(&self) -> String {
        format!("camera {} ({})", self.index, self.source_format)
    }

    /// Blocks until the camera delivers the next frame.
    pub fn grab(&mut self) -> anyhow::Result<()> {
        self.frame = Some(
            self.camera
                .frame()
                .with_context(|| format!("camera {} stopped delivering frames", self.index))?,
        );
        Ok(())
    }

    /// Decodes the grabbed frame into `out` in the output format.
    pub fn decode_into(&mut self, out: &mut [u8]) -> anyhow::Result<()> {
        let frame = self.frame.as_ref().ok_or_else(|| anyhow!("no frame grabbed"))?;
        decode(&self.shape, frame.source_frame_format(), frame.buffer(), out, &mut self.scratch)
    }
}

/// Converts one camera buffer of `shape`'s size into `out`.
pub fn decode(
    shape: &FrameShape,
    from: FrameFormat,
    data: &[u8],
    out: &mut [u8],
    scratch: &mut Vec<u8>,
) -> anyhow::Result<()> {
    use shmframes_tools::convert;
    match from {
        FrameFormat::MJPEG => convert::jpeg_to(shape, data, out)?,
        FrameFormat::YUYV => convert::yuyv_to(shape, data, out)?,
        FrameFormat::RAWRGB => convert::rgb_to(shape, data, out)?,
        FrameFormat::GRAY => {
            scratch.clear();
            scratch.extend(
                data.iter().take((shape.width * shape.height) as usize).flat_map(|&g| [g, g, g]),
            );
            convert::rgb_to(shape, scratch, out)?
        }
        other => bail!("camera frames in {other} cannot be converted"),
    }
    Ok(())
}
