//! The test pattern: a moving gradient with the frame counter encoded in the first pixels.

use cenalloc::Fourcc;

/// Bytes per pixel of the single-plane formats the client draws.
pub fn bytes_per_pixel(fourcc: Fourcc) -> Option<usize> {
    match fourcc {
        Fourcc::Xrgb8888 | Fourcc::Argb8888 | Fourcc::Xbgr8888 | Fourcc::Abgr8888 => Some(4),
        Fourcc::Rgb565 => Some(2),
        _ => None,
    }
}

/// Draws frame `frame` into `pixels` (rows of `stride` bytes). Every 32-bit pixel is opaque;
/// the first 32 pixels of row 0 carry the frame counter, one bit per pixel (white = 1).
pub fn draw(pixels: &mut [u8], fourcc: Fourcc, width: u32, height: u32, stride: usize, frame: u32) {
    let Some(bpp) = bytes_per_pixel(fourcc) else {
        return;
    };
    for y in 0..height as usize {
        let row = &mut pixels[y * stride..y * stride + width as usize * bpp];
        for (x, px) in row.chunks_exact_mut(bpp).enumerate() {
            let (r, g, b) = if y == 0 && x < 32 {
                let bit = (frame >> (31 - x)) & 1;
                let v = if bit == 1 { 0xff } else { 0 };
                (v, v, v)
            } else {
                let t = frame as usize;
                (
                    ((x + t * 4) & 0xff) as u8,
                    ((y + t * 2) & 0xff) as u8,
                    ((x ^ y) & 0xff) as u8,
                )
            };
            match fourcc {
                Fourcc::Xrgb8888 | Fourcc::Argb8888 => px.copy_from_slice(&[b, g, r, 0xff]),
                Fourcc::Xbgr8888 | Fourcc::Abgr8888 => px.copy_from_slice(&[r, g, b, 0xff]),
                Fourcc::Rgb565 => {
                    let v =
                        (u16::from(r >> 3) << 11) | (u16::from(g >> 2) << 5) | u16::from(b >> 3);
                    px.copy_from_slice(&v.to_le_bytes());
                }
                _ => {}
            }
        }
    }
}
