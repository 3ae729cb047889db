//! The DRM IN_FORMATS blob parser (`cenalloc_drm::blob::parse_in_formats`) on arbitrary bytes,
//! as a plane property could hold them.
//!
//! Checks, beyond "no panic":
//! - the result equals the one of a reference decoder written here in the plainest way (wide
//!   integers, no early exits), so the parser neither reads outside the arrays the header
//!   points at nor drops or invents an entry;
//! - each error is the right one: too short only under 24 bytes, a version error only for a
//!   version other than 1, out of bounds only when an array does not fit in the blob;
//! - every modifier list is sorted, without duplicates, and names only listed formats;
//! - re-encoding the result with `build_in_formats` and parsing it again gives it back.

#![no_main]

use std::collections::BTreeMap;

use cenalloc::Modifier;
use cenalloc_drm::blob::{build_in_formats, parse_in_formats, BlobError, FormatModifiers};
use libfuzzer_sys::fuzz_target;

fn u32_at(data: &[u8], at: u128) -> u32 {
    let at = at as usize;
    u32::from_ne_bytes(data[at..at + 4].try_into().unwrap())
}

fn u64_at(data: &[u8], at: u128) -> u64 {
    let at = at as usize;
    u64::from_ne_bytes(data[at..at + 8].try_into().unwrap())
}

/// What the blob holds, decoded with 128-bit arithmetic; `Err` names the failing check.
fn reference(data: &[u8]) -> Result<FormatModifiers, &'static str> {
    let len = data.len() as u128;
    if len < 24 {
        return Err("short");
    }
    let header: Vec<u128> = (0..6).map(|i| u128::from(u32_at(data, i * 4))).collect();
    if header[0] != 1 {
        return Err("version");
    }
    let (count_formats, formats_offset) = (header[2], header[3]);
    let (count_modifiers, modifiers_offset) = (header[4], header[5]);
    if formats_offset + count_formats * 4 > len {
        return Err("formats");
    }
    if modifiers_offset + count_modifiers * 24 > len {
        return Err("modifiers");
    }
    let formats: Vec<u32> = (0..count_formats)
        .map(|i| u32_at(data, formats_offset + i * 4))
        .collect();
    let mut modifiers: BTreeMap<u32, Vec<Modifier>> = BTreeMap::new();
    for m in 0..count_modifiers {
        let at = modifiers_offset + m * 24;
        let mask = u64_at(data, at);
        let base = u128::from(u32_at(data, at + 8));
        let modifier = u64_at(data, at + 16);
        for bit in 0..64u128 {
            let index = base + bit;
            if mask >> bit & 1 == 1 && index < count_formats {
                let list = modifiers.entry(formats[index as usize]).or_default();
                if !list.contains(&Modifier(modifier)) {
                    list.push(Modifier(modifier));
                }
            }
        }
    }
    for list in modifiers.values_mut() {
        list.sort();
    }
    Ok(FormatModifiers { formats, modifiers })
}

/// `parsed` as a kernel would encode it: one modifier entry per (format, modifier) pair.
fn rebuild(parsed: &FormatModifiers) -> Vec<u8> {
    let mut entries = Vec::new();
    for (i, fourcc) in parsed.formats.iter().enumerate() {
        // Only the first index of a format repeated in the list carries its modifiers.
        if parsed.formats[..i].contains(fourcc) {
            continue;
        }
        let base = (i / 64 * 64) as u32;
        for m in parsed.modifiers_for(*fourcc) {
            entries.push((1u64 << (i % 64), base, m.0));
        }
    }
    build_in_formats(&parsed.formats, &entries)
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_in_formats(data);
    let expected = reference(data);
    match (&parsed, &expected) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "parser and reference disagree"),
        (Err(BlobError::TooShort(n)), Err("short")) => assert_eq!(*n, data.len()),
        (Err(BlobError::Version(v)), Err("version")) => assert_ne!(*v, 1),
        (Err(BlobError::OutOfBounds { what, len, .. }), Err(which)) => {
            assert_eq!(what, which);
            assert_eq!(*len, data.len());
        }
        _ => panic!("parser gave {parsed:?}, reference {expected:?}"),
    }
    let Ok(parsed) = parsed else { return };
    for (fourcc, list) in &parsed.modifiers {
        assert!(parsed.formats.contains(fourcc), "{fourcc:#x} is not listed");
        assert!(!list.is_empty());
        assert!(list.windows(2).all(|w| w[0] < w[1]), "unsorted or repeated");
    }
    let again = parse_in_formats(&rebuild(&parsed)).expect("a rebuilt blob parses");
    assert_eq!(again, parsed, "re-encoding changed the result");
});
