//! FWHT, the codec of the kernel's test driver vicodec: the frame header its encoder writes,
//! and the control (`V4L2_CID_STATELESS_FWHT_PARAMS`) its stateless decoder takes in place of
//! that header.
//!
//! Each frame the encoder writes is a 44-byte header — two magic words, then nine big-endian
//! 32-bit fields (`struct fwht_cframe_hdr`, `drivers/media/test-drivers/vicodec/codec-fwht.h`)
//! — followed by `size` bytes of coded data. The stateful decoder takes frames as they are;
//! the stateless decoder takes only the coded data in its OUTPUT buffer, and the header's
//! fields as `struct v4l2_ctrl_fwht_params` (`include/uapi/linux/v4l2-controls.h`) in the
//! same request. Written by hand: no maintained crate parses FWHT (v4l2r has the control's
//! structure only, and does not build against Debian bookworm's kernel headers).

use cenalloc::{Error, Result};

/// Bytes of `struct fwht_cframe_hdr`.
pub const HEADER_SIZE: usize = 44;
/// `FWHT_MAGIC1`, the first word of every frame.
const MAGIC1: u32 = 0x4f4f_4f4f;
/// `FWHT_MAGIC2`, the second word.
const MAGIC2: u32 = 0xffff_ffff;
/// `V4L2_CID_STATELESS_FWHT_PARAMS`
pub const CID_STATELESS_FWHT_PARAMS: u32 = 0x00a4_0964;
/// Bytes of `struct v4l2_ctrl_fwht_params`.
pub const PARAMS_SIZE: usize = 40;
/// `V4L2_FWHT_FL_I_FRAME`: the frame references no other.
pub const FLAG_I_FRAME: u32 = 0x400;

/// The header of one FWHT frame (`struct fwht_cframe_hdr` without its magic words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bitstream version (3 in kernels since 5.4).
    pub version: u32,
    /// Visible width in pixels.
    pub width: u32,
    /// Visible height in pixels.
    pub height: u32,
    /// `V4L2_FWHT_FL_*`: intra frame, planes stored uncompressed, chroma subsampling, number
    /// of components and pixel encoding.
    pub flags: u32,
    /// `V4L2_COLORSPACE_*`
    pub colorspace: u32,
    /// `V4L2_XFER_FUNC_*`
    pub xfer_func: u32,
    /// `V4L2_YCBCR_ENC_*`
    pub ycbcr_enc: u32,
    /// `V4L2_QUANTIZATION_*`
    pub quantization: u32,
    /// Bytes of coded data after the header.
    pub size: u32,
}

/// One FWHT frame split into its header and its coded data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header.
    pub header: FrameHeader,
    /// The coded data (`header.size` bytes).
    pub data: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Splits `chunk` (one frame as vicodec's encoder writes it) into header and data. A chunk
    /// that is shorter than its header says, or does not start with FWHT's magic words, is
    /// [`Error::InvalidRequest`] saying which.
    pub fn parse(chunk: &'a [u8]) -> Result<Frame<'a>> {
        if chunk.len() < HEADER_SIZE {
            return Err(Error::InvalidRequest(format!(
                "FWHT frame of {} bytes: shorter than its {HEADER_SIZE}-byte header",
                chunk.len()
            )));
        }
        let word = |i: usize| {
            u32::from_be_bytes([
                chunk[i * 4],
                chunk[i * 4 + 1],
                chunk[i * 4 + 2],
                chunk[i * 4 + 3],
            ])
        };
        let (magic1, magic2) = (word(0), word(1));
        if (magic1, magic2) != (MAGIC1, MAGIC2) {
            return Err(Error::InvalidRequest(format!(
                "not an FWHT frame: magic words {magic1:#010x} {magic2:#010x}, expected \
                 {MAGIC1:#010x} {MAGIC2:#010x}"
            )));
        }
        let header = FrameHeader {
            version: word(2),
            width: word(3),
            height: word(4),
            flags: word(5),
            colorspace: word(6),
            xfer_func: word(7),
            ycbcr_enc: word(8),
            quantization: word(9),
            size: word(10),
        };
        let data = usize::try_from(header.size)
            .ok()
            .and_then(|n| chunk.get(HEADER_SIZE..HEADER_SIZE.checked_add(n)?))
            .ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "FWHT frame of {} bytes: its header announces {} bytes of coded data \
                     after {HEADER_SIZE} bytes of header",
                    chunk.len(),
                    header.size
                ))
            })?;
        Ok(Frame { header, data })
    }
}

impl FrameHeader {
    /// True for an intra frame, which needs no reference frame.
    pub fn is_intra(&self) -> bool {
        self.flags & FLAG_I_FRAME != 0
    }

    /// `struct v4l2_ctrl_fwht_params` for this frame in the CPU's byte order.
    /// `backward_ref_ts` is the timestamp (ns) of the OUTPUT buffer of the frame it references
    /// (the decoder finds the CAPTURE buffer that carries the same timestamp); intra frames
    /// ignore it.
    pub fn params(&self, backward_ref_ts: u64) -> [u8; PARAMS_SIZE] {
        let mut p = [0u8; PARAMS_SIZE];
        p[..8].copy_from_slice(&backward_ref_ts.to_ne_bytes());
        let fields = [
            self.version,
            self.width,
            self.height,
            self.flags,
            self.colorspace,
            self.xfer_func,
            self.ycbcr_enc,
            self.quantization,
        ];
        for (i, v) in fields.iter().enumerate() {
            p[8 + 4 * i..12 + 4 * i].copy_from_slice(&v.to_ne_bytes());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(flags: u32, data: &[u8]) -> Vec<u8> {
        let mut c = Vec::new();
        for w in [
            MAGIC1,
            MAGIC2,
            3,
            640,
            480,
            flags,
            8,
            2,
            0,
            1,
            data.len() as u32,
        ] {
            c.extend_from_slice(&w.to_be_bytes());
        }
        c.extend_from_slice(data);
        c
    }

    #[test]
    fn a_frame_splits_into_header_and_data() {
        let c = chunk(0x13_0580, &[1, 2, 3]);
        let f = Frame::parse(&c).unwrap();
        assert_eq!(f.data, &[1, 2, 3]);
        assert_eq!(
            (f.header.version, f.header.width, f.header.height),
            (3, 640, 480)
        );
        assert!(f.header.is_intra());
        let p = f.header.params(7_000);
        assert_eq!(u64::from_ne_bytes(p[..8].try_into().unwrap()), 7_000);
        assert_eq!(u32::from_ne_bytes(p[8..12].try_into().unwrap()), 3);
        assert_eq!(u32::from_ne_bytes(p[20..24].try_into().unwrap()), 0x13_0580);
        assert_eq!(u32::from_ne_bytes(p[36..40].try_into().unwrap()), 1);
        assert!(!Frame::parse(&chunk(0x13_0180, &[]))
            .unwrap()
            .header
            .is_intra());
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        let e = Frame::parse(&[0x4f; 10]).unwrap_err().to_string();
        assert!(e.contains("shorter than its 44-byte header"), "{e}");
        let mut c = chunk(0, &[1, 2, 3]);
        c[0] = 0;
        let e = Frame::parse(&c).unwrap_err().to_string();
        assert!(e.contains("magic words"), "{e}");
        let c = chunk(0, &[1, 2, 3]);
        let e = Frame::parse(&c[..c.len() - 1]).unwrap_err().to_string();
        assert!(e.contains("announces 3 bytes"), "{e}");
        let mut c = chunk(0, &[]);
        c[40..44].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Frame::parse(&c).is_err());
    }
}
