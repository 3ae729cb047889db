//! A safe, bounds-checked parser for the IN_FORMATS plane property blob.
//!
//! The kernel lays the blob out as `struct drm_format_modifier_blob` (include/uapi/drm/
//! drm_mode.h): a 24-byte header (version, flags, count_formats, formats_offset,
//! count_modifiers, modifiers_offset), an array of u32 fourccs at `formats_offset` and an
//! array of 24-byte `struct drm_format_modifier` {u64 formats; u32 offset; u32 pad;
//! u64 modifier} at `modifiers_offset`. Bit `i` of `formats` says the modifier applies to
//! format `offset + i`. The drm crate exposes the raw blob only, so the parsing is ours; every
//! read is checked against the blob's length and nothing here can panic on malformed input.

use std::collections::BTreeMap;

use cenalloc::Modifier;

/// Why an IN_FORMATS blob could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// The blob is shorter than its header.
    #[error("IN_FORMATS blob of {0} bytes is shorter than its 24-byte header")]
    TooShort(usize),
    /// The header's version is not one this parser knows.
    #[error("IN_FORMATS blob version {0} is not 1")]
    Version(u32),
    /// An array the header points at lies outside the blob.
    #[error(
        "IN_FORMATS {what} array ({count} entries at offset {offset}) overruns the {len}-byte blob"
    )]
    OutOfBounds {
        /// Which array.
        what: &'static str,
        /// Entries claimed.
        count: u32,
        /// Byte offset claimed.
        offset: u32,
        /// Blob length.
        len: usize,
    },
}

/// The supported (format, modifier) pairs of one plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormatModifiers {
    /// Formats in blob order.
    pub formats: Vec<u32>,
    /// For each format, its modifiers (sorted, deduplicated).
    pub modifiers: BTreeMap<u32, Vec<Modifier>>,
}

impl FormatModifiers {
    /// Modifiers usable with `fourcc` (empty if the format is not supported).
    pub fn modifiers_for(&self, fourcc: u32) -> &[Modifier] {
        self.modifiers
            .get(&fourcc)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

const HEADER_LEN: usize = 24;
const MODIFIER_LEN: usize = 24;

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_ne_bytes(bytes.try_into().ok()?))
}

fn array<'a>(
    data: &'a [u8],
    what: &'static str,
    count: u32,
    offset: u32,
    entry: usize,
) -> Result<&'a [u8], BlobError> {
    let oob = || BlobError::OutOfBounds {
        what,
        count,
        offset,
        len: data.len(),
    };
    let start = usize::try_from(offset).map_err(|_| oob())?;
    let bytes = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(entry))
        .ok_or_else(oob)?;
    let end = start.checked_add(bytes).ok_or_else(oob)?;
    data.get(start..end).ok_or_else(oob)
}

/// Parses an IN_FORMATS blob. Modifier entries whose bits point past the format array are
/// ignored (the kernel never emits them).
pub fn parse_in_formats(data: &[u8]) -> Result<FormatModifiers, BlobError> {
    if data.len() < HEADER_LEN {
        return Err(BlobError::TooShort(data.len()));
    }
    let field = |i: usize| u32_at(data, i * 4).unwrap_or(0);
    let (version, count_formats, formats_offset, count_modifiers, modifiers_offset) =
        (field(0), field(2), field(3), field(4), field(5));
    if version != 1 {
        return Err(BlobError::Version(version));
    }
    let format_bytes = array(data, "formats", count_formats, formats_offset, 4)?;
    let modifier_bytes = array(
        data,
        "modifiers",
        count_modifiers,
        modifiers_offset,
        MODIFIER_LEN,
    )?;
    let formats: Vec<u32> = format_bytes
        .chunks_exact(4)
        .filter_map(|c| u32_at(c, 0))
        .collect();
    let mut modifiers: BTreeMap<u32, Vec<Modifier>> = BTreeMap::new();
    for entry in modifier_bytes.chunks_exact(MODIFIER_LEN) {
        let (Some(mask), Some(base), Some(modifier)) =
            (u64_at(entry, 0), u32_at(entry, 8), u64_at(entry, 16))
        else {
            continue;
        };
        for bit in 0..64usize {
            if mask & (1u64 << bit) == 0 {
                continue;
            }
            let Some(fourcc) = usize::try_from(base)
                .ok()
                .and_then(|b| b.checked_add(bit))
                .and_then(|i| formats.get(i))
            else {
                continue;
            };
            modifiers
                .entry(*fourcc)
                .or_default()
                .push(Modifier(modifier));
        }
    }
    for list in modifiers.values_mut() {
        list.sort();
        list.dedup();
    }
    Ok(FormatModifiers { formats, modifiers })
}

/// Builds an IN_FORMATS blob the way the kernel does (for tests and fakes): formats right
/// after the header, modifiers after the formats, 8-byte aligned.
pub fn build_in_formats(formats: &[u32], modifiers: &[(u64, u32, u64)]) -> Vec<u8> {
    let formats_offset = HEADER_LEN;
    let modifiers_offset = (formats_offset + formats.len() * 4).next_multiple_of(8);
    let mut out = vec![0u8; modifiers_offset + modifiers.len() * MODIFIER_LEN];
    let header = [
        1u32,
        0,
        formats.len() as u32,
        formats_offset as u32,
        modifiers.len() as u32,
        modifiers_offset as u32,
    ];
    for (i, v) in header.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    for (i, f) in formats.iter().enumerate() {
        let at = formats_offset + i * 4;
        out[at..at + 4].copy_from_slice(&f.to_ne_bytes());
    }
    for (i, (mask, offset, modifier)) in modifiers.iter().enumerate() {
        let at = modifiers_offset + i * MODIFIER_LEN;
        out[at..at + 8].copy_from_slice(&mask.to_ne_bytes());
        out[at + 8..at + 12].copy_from_slice(&offset.to_ne_bytes());
        out[at + 16..at + 24].copy_from_slice(&modifier.to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const XR24: u32 = u32::from_le_bytes(*b"XR24");
    const AR24: u32 = u32::from_le_bytes(*b"AR24");
    const NV12: u32 = u32::from_le_bytes(*b"NV12");
    const X_TILED: u64 = 0x0100_0000_0000_0001;

    #[test]
    fn parses_formats_and_modifiers() {
        let blob = build_in_formats(&[XR24, AR24, NV12], &[(0b111, 0, 0), (0b011, 0, X_TILED)]);
        let parsed = parse_in_formats(&blob).unwrap();
        assert_eq!(parsed.formats, vec![XR24, AR24, NV12]);
        assert_eq!(
            parsed.modifiers_for(XR24),
            &[Modifier::LINEAR, Modifier(X_TILED)]
        );
        assert_eq!(parsed.modifiers_for(NV12), &[Modifier::LINEAR]);
        assert!(parsed
            .modifiers_for(u32::from_le_bytes(*b"RG16"))
            .is_empty());
    }

    #[test]
    fn offset_shifts_the_bitmask() {
        let blob = build_in_formats(&[XR24, AR24, NV12], &[(0b1, 2, X_TILED)]);
        let parsed = parse_in_formats(&blob).unwrap();
        assert_eq!(parsed.modifiers_for(NV12), &[Modifier(X_TILED)]);
        assert!(parsed.modifiers_for(XR24).is_empty());
    }

    #[test]
    fn bits_past_the_formats_are_ignored() {
        let blob = build_in_formats(&[XR24], &[(u64::MAX, 0, 0), (1, u32::MAX, 7)]);
        let parsed = parse_in_formats(&blob).unwrap();
        assert_eq!(parsed.modifiers.len(), 1);
        assert_eq!(parsed.modifiers_for(XR24), &[Modifier::LINEAR]);
    }

    #[test]
    fn rejects_short_bad_version_and_overruns() {
        assert_eq!(parse_in_formats(&[0; 10]), Err(BlobError::TooShort(10)));
        let mut blob = build_in_formats(&[XR24], &[(1, 0, 0)]);
        blob[0] = 2;
        assert_eq!(parse_in_formats(&blob), Err(BlobError::Version(2)));
        let mut blob = build_in_formats(&[XR24], &[(1, 0, 0)]);
        blob[8..12].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(matches!(
            parse_in_formats(&blob),
            Err(BlobError::OutOfBounds {
                what: "formats",
                ..
            })
        ));
        let mut blob = build_in_formats(&[XR24], &[(1, 0, 0)]);
        blob[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(matches!(
            parse_in_formats(&blob),
            Err(BlobError::OutOfBounds {
                what: "modifiers",
                ..
            })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_in_formats(&data);
        }

        #[test]
        fn arbitrary_headers_never_panic(
            counts in proptest::array::uniform4(proptest::num::u32::ANY),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
        ) {
            let mut data = Vec::new();
            for v in [1u32, 0, counts[0], counts[1], counts[2], counts[3]] {
                data.extend_from_slice(&v.to_ne_bytes());
            }
            data.extend_from_slice(&tail);
            let _ = parse_in_formats(&data);
        }

        #[test]
        fn built_blobs_round_trip(
            formats in proptest::collection::vec(proptest::num::u32::ANY, 1..40),
            mask in proptest::num::u64::ANY,
        ) {
            let blob = build_in_formats(&formats, &[(mask, 0, 0)]);
            let parsed = parse_in_formats(&blob).unwrap();
            proptest::prop_assert_eq!(parsed.formats, formats);
        }
    }
}
