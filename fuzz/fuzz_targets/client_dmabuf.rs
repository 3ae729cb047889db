//! The sample compositor's check of a client's linux-dmabuf parameters
//! (`cenalloc_examples::client_dmabuf::validate`) on arbitrary buffers: format, size,
//! modifier, 1 to 4 planes with any offset, stride and dma-buf size.
//!
//! The compositor sees a buffer only after smithay's own checks (dimensions of at least 1 and
//! at most `i32::MAX`; per plane, `stride * height + offset` fits in 32 bits, the offset and
//! one stride lie inside the dma-buf, and plane 0's `offset + stride * height` too). Inputs
//! smithay refuses are dropped here, so what `validate` gets is what a client can send it.
//!
//! Checks, beyond "no panic": a buffer `validate` accepts in a format cenalloc knows has as
//! many planes as the format, every stride holds a row of its plane, and, for LINEAR, every
//! plane's rows (the last one only as long as a row needs) lie inside its dma-buf: the
//! renderer or the display never reads past the end of a client's memory.

#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use cenalloc::format::{FormatInfo, SUPPORTED};
use cenalloc::{Fourcc, Modifier};
use cenalloc_examples::client_dmabuf::{validate, ClientBuffer, ClientPlane};
use libfuzzer_sys::fuzz_target;

fn small_or_any(u: &mut Unstructured, small: u32) -> Result<u32> {
    if u.ratio(3, 4)? {
        u.int_in_range(0..=small)
    } else {
        u32::arbitrary(u)
    }
}

fn buffer(u: &mut Unstructured) -> Result<ClientBuffer> {
    let fourcc = if u.ratio(9, 10)? {
        *u.choose(SUPPORTED)?
    } else {
        Fourcc::try_from(u32::arbitrary(u)?).unwrap_or(Fourcc::Xrgb8888)
    };
    let width = small_or_any(u, 4096)?;
    let height = small_or_any(u, 4096)?;
    let modifier = match u.int_in_range(0..=4)? {
        0..=2 => Modifier::LINEAR,
        3 => Modifier::INVALID,
        _ => Modifier(u64::arbitrary(u)?),
    };
    let mut planes = Vec::new();
    for _ in 0..u.int_in_range(1..=4)? {
        planes.push(ClientPlane {
            offset: small_or_any(u, 1 << 24)?,
            stride: small_or_any(u, 20_000)?,
            fd_size: if u.ratio(1, 10)? {
                None
            } else if u.ratio(3, 4)? {
                Some(u64::from(u.int_in_range(0..=1u32 << 26)?))
            } else {
                Some(u64::arbitrary(u)?)
            },
        });
    }
    Ok(ClientBuffer {
        fourcc,
        width,
        height,
        modifier,
        planes,
    })
}

/// smithay's checks before the compositor's handler runs (wayland/dmabuf/mod.rs,
/// `create_dmabuf`).
fn smithay_accepts(b: &ClientBuffer) -> bool {
    let positive = |v: u32| (1..=i32::MAX as u32).contains(&v);
    if !positive(b.width) || !positive(b.height) || b.planes.is_empty() {
        return false;
    }
    b.planes.iter().enumerate().all(|(i, p)| {
        let Some(end) = p
            .stride
            .checked_mul(b.height)
            .and_then(|e| e.checked_add(p.offset))
        else {
            return false;
        };
        let Some(size) = p.fd_size else {
            return true;
        };
        u64::from(p.offset) <= size
            && u64::from(p.offset) + u64::from(p.stride) <= size
            && (i != 0 || u64::from(end) <= size)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(buffer) = buffer(&mut Unstructured::new(data)) else {
        return;
    };
    if !smithay_accepts(&buffer) {
        return;
    }
    let verdict = validate(&buffer);
    let _ = verdict.as_ref().map_err(|e| e.to_string());
    let Some(info) = FormatInfo::of(buffer.fourcc) else {
        return;
    };
    if verdict.is_err() {
        return;
    }
    assert_eq!(buffer.planes.len(), info.planes.len(), "plane count");
    for (i, (p, g)) in buffer.planes.iter().zip(info.planes).enumerate() {
        let row = g.min_row_bytes(buffer.width).expect("a u32 width fits");
        assert!(u64::from(p.stride) >= row, "plane {i}: stride below a row");
        let (Some(size), true) = (p.fd_size, buffer.modifier == Modifier::LINEAR) else {
            continue;
        };
        let rows = u64::from(buffer.height.div_ceil(g.vsub));
        let end = u64::from(p.offset) + u64::from(p.stride) * (rows - 1) + row;
        assert!(
            end <= size,
            "plane {i} of an accepted buffer ends at {end}, past its {size}-byte dma-buf: \
             {buffer:?}"
        );
    }
});
