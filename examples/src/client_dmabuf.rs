//! The sample compositor's check of a client's linux-dmabuf buffer parameters (format, size,
//! modifier, and per plane offset, stride and the size of its dma-buf) before it imports the
//! buffer. It runs after smithay's own checks (formats it does not advertise, dimensions
//! below 1, plane 0's rows past the end of its dma-buf) and adds what those leave out.

use cenalloc::format::FormatInfo;
use cenalloc::{Fourcc, Modifier};

/// One plane as a client sent it (`zwp_linux_buffer_params_v1.add`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientPlane {
    /// Byte offset of the plane in its dma-buf.
    pub offset: u32,
    /// Bytes per row.
    pub stride: u32,
    /// Size of the plane's dma-buf in bytes; `None` when it could not be read.
    pub fd_size: Option<u64>,
}

/// A client's dma-buf buffer as the compositor received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientBuffer {
    /// Pixel format.
    pub fourcc: Fourcc,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Modifier the client declared.
    pub modifier: Modifier,
    /// Planes in format order.
    pub planes: Vec<ClientPlane>,
}

/// Why a client's buffer is refused, as the linux-dmabuf protocol error it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Too few or too many planes for the format (`incomplete`).
    Incomplete(String),
    /// Anything else (`failed`: `invalid_wl_buffer` for `create_immed`).
    Failed(String),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Incomplete(why) | Rejection::Failed(why) => f.write_str(why),
        }
    }
}

/// Checks a client's buffer parameters: as many planes as the format has, every stride at
/// least as long as a row of its plane, and for a LINEAR buffer every plane's rows inside its
/// dma-buf (where its size is known). Formats cenalloc has no plane layout for pass
/// unchecked.
pub fn validate(buffer: &ClientBuffer) -> Result<(), Rejection> {
    let code = buffer.fourcc;
    let Some(info) = FormatInfo::of(code) else {
        return Ok(());
    };
    if buffer.planes.len() != info.planes.len() {
        return Err(Rejection::Incomplete(format!(
            "{code:?} needs {} planes, the client sent {}",
            info.planes.len(),
            buffer.planes.len()
        )));
    }
    for (i, (plane, geometry)) in buffer.planes.iter().zip(info.planes).enumerate() {
        let stride = plane.stride;
        let min = geometry.min_row_bytes(buffer.width).unwrap_or(u64::MAX);
        if u64::from(stride) < min {
            return Err(Rejection::Failed(format!(
                "plane {i}: stride {stride} is below the {min} bytes a row needs"
            )));
        }
        // smithay checks only plane 0's rows against its dma-buf; a subsampled plane's rows
        // must lie inside theirs too. Tiled layouts are the driver's to check.
        let (Some(fd_size), true) = (plane.fd_size, buffer.modifier == Modifier::LINEAR) else {
            continue;
        };
        let rows = u64::from(buffer.height.div_ceil(geometry.vsub.max(1)));
        let end = rows
            .checked_sub(1)
            .and_then(|full| full.checked_mul(u64::from(stride)))
            .and_then(|e| e.checked_add(u64::from(plane.offset)))
            .and_then(|e| e.checked_add(min));
        if end.is_none_or(|end| end > fd_size) {
            return Err(Rejection::Failed(format!(
                "plane {i}: {rows} rows of stride {stride} from offset {} do not fit in its \
                 {fd_size}-byte dma-buf",
                plane.offset
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(offset: u32, stride: u32, fd_size: u64) -> ClientPlane {
        ClientPlane {
            offset,
            stride,
            fd_size: Some(fd_size),
        }
    }

    fn xr24(stride: u32) -> ClientBuffer {
        ClientBuffer {
            fourcc: Fourcc::Xrgb8888,
            width: 64,
            height: 32,
            modifier: Modifier::LINEAR,
            planes: vec![plane(0, stride, 64 * 4 * 32)],
        }
    }

    #[test]
    fn a_well_formed_buffer_passes() {
        assert_eq!(validate(&xr24(256)), Ok(()));
    }

    #[test]
    fn a_short_stride_fails() {
        assert!(matches!(validate(&xr24(255)), Err(Rejection::Failed(_))));
    }

    #[test]
    fn a_chroma_plane_past_its_dma_buf_fails() {
        // Found by the fuzz target client_dmabuf: smithay checks plane 0's rows only.
        let nv12 = |chroma_fd_size| ClientBuffer {
            fourcc: Fourcc::Nv12,
            width: 64,
            height: 32,
            modifier: Modifier::LINEAR,
            planes: vec![plane(0, 64, 64 * 48), plane(64 * 32, 64, chroma_fd_size)],
        };
        assert_eq!(validate(&nv12(64 * 48)), Ok(()));
        assert!(matches!(
            validate(&nv12(64 * 48 - 1)),
            Err(Rejection::Failed(_))
        ));
        // With an unknown size, nothing to check against.
        let mut unknown = nv12(0);
        unknown.planes[1].fd_size = None;
        assert_eq!(validate(&unknown), Ok(()));
    }

    #[test]
    fn missing_planes_are_incomplete() {
        let mut nv12 = xr24(64);
        nv12.fourcc = Fourcc::Nv12;
        assert!(matches!(validate(&nv12), Err(Rejection::Incomplete(_))));
    }
}
