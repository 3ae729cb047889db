//! FWHT frames, the bitstream `decode-to-display --stateless` parses before handing each frame
//! to vicodec's stateless decoder: arbitrary bytes to `cenalloc_v4l2::fwht::Frame::parse`.
//!
//! Checks, beyond "no panic":
//! - a frame is accepted exactly when it holds the 44-byte header, starts with FWHT's two
//!   magic words and holds at least the `size` bytes of coded data its header announces;
//! - an accepted frame's fields are the big-endian words at their offsets, its data is the
//!   `size` bytes right after the header, and writing the header back gives the input's first
//!   44 bytes;
//! - the stateless control built from it (`FrameHeader::params`) carries the reference
//!   timestamp in its first 8 bytes and the eight fields after it, in the CPU's byte order.

#![no_main]

use cenalloc_v4l2::fwht::{Frame, HEADER_SIZE, PARAMS_SIZE};
use libfuzzer_sys::fuzz_target;

fn be(data: &[u8], word: usize) -> u32 {
    u32::from_be_bytes(data[word * 4..word * 4 + 4].try_into().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let expected_ok = data.len() >= HEADER_SIZE
        && be(data, 0) == 0x4f4f_4f4f
        && be(data, 1) == 0xffff_ffff
        && (data.len() - HEADER_SIZE) as u64 >= u64::from(be(data, 10));
    let parsed = Frame::parse(data);
    assert_eq!(parsed.is_ok(), expected_ok, "{parsed:?}");
    let Ok(frame) = parsed else {
        assert!(!parsed.unwrap_err().to_string().is_empty());
        return;
    };
    let h = frame.header;
    let fields = [
        h.version,
        h.width,
        h.height,
        h.flags,
        h.colorspace,
        h.xfer_func,
        h.ycbcr_enc,
        h.quantization,
        h.size,
    ];
    let mut written = vec![0x4f, 0x4f, 0x4f, 0x4f, 0xff, 0xff, 0xff, 0xff];
    for f in fields {
        written.extend_from_slice(&f.to_be_bytes());
    }
    assert_eq!(written, data[..HEADER_SIZE]);
    assert_eq!(
        frame.data,
        &data[HEADER_SIZE..HEADER_SIZE + h.size as usize]
    );
    let reference = u64::from(h.flags) << 20 | u64::from(h.size);
    let params = h.params(reference);
    assert_eq!(params.len(), PARAMS_SIZE);
    assert_eq!(
        u64::from_ne_bytes(params[..8].try_into().unwrap()),
        reference
    );
    for (i, f) in fields[..8].iter().enumerate() {
        let at = 8 + 4 * i;
        assert_eq!(
            u32::from_ne_bytes(params[at..at + 4].try_into().unwrap()),
            *f
        );
    }
});
