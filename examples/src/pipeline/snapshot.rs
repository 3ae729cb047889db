//! Writing XRGB8888 frames as PNG images.

use std::io::BufWriter;
use std::path::Path;

use crate::pipeline::PipelineError;

/// Writes `width`×`height` XRGB8888 pixels (rows `stride` bytes apart) to `path` as RGB PNG.
pub fn write_xrgb_png(
    path: &Path,
    data: &[u8],
    (width, height): (u32, u32),
    stride: usize,
) -> Result<(), PipelineError> {
    let io = |source: std::io::Error| PipelineError::Io {
        what: path.display().to_string(),
        source,
    };
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height as usize {
        let row = &data[y * stride..y * stride + width as usize * 4];
        for px in row.chunks_exact(4) {
            rgb.extend_from_slice(&[px[2], px[1], px[0]]);
        }
    }
    let file = std::fs::File::create(path).map_err(io)?;
    let mut enc = png::Encoder::new(BufWriter::new(file), width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let png_error = |e: png::EncodingError| io(std::io::Error::other(e));
    enc.write_header()
        .map_err(png_error)?
        .write_image_data(&rgb)
        .map_err(png_error)
}
