//! Merging the constraints of every attached device into one set.
//!
//! Alignments combine by least common multiple (any positive value, not only powers of two;
//! `0` is read as "no requirement"), maxima by minimum, modifiers by intersection in the first
//! device's order of preference, `contiguous` and `protected` if any device needs them. A
//! conflict is an [`Error::Conflict`] naming both parties and the constraint; every
//! computation is checked, so merging never panics.

use crate::{
    BufferKind, BufferRequest, CachePolicy, ConstraintKind, Constraints, Error, Modifier,
    PlaneConstraint, Result,
};

/// Which device imposed each limit, as indices into [`MergedConstraints::devices`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Origins {
    /// Device that set the smallest `max_width`.
    pub max_width: Option<usize>,
    /// Device that set the smallest `max_height`.
    pub max_height: Option<usize>,
    /// Device that set the smallest `max_pitch`.
    pub max_pitch: Option<usize>,
    /// Device that set the smallest `max_size`.
    pub max_size: Option<usize>,
    /// Device that set the smallest `max_segments`.
    pub max_segments: Option<usize>,
    /// Device that set the lowest `dma_addr_limit`.
    pub dma_addr_limit: Option<usize>,
    /// First device that needs contiguous memory.
    pub contiguous: Option<usize>,
    /// First device that needs protected memory.
    pub protected: Option<usize>,
    /// First device that needs one dma-buf per plane.
    pub separate_planes: Option<usize>,
    /// First device with a cache requirement.
    pub cache: Option<usize>,
    /// Per plane: the device that set `exact_stride`.
    pub exact_stride: Vec<Option<usize>>,
}

/// The intersection of every attached device's constraints, with the device that imposed each
/// restriction kept for explanations and error messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MergedConstraints {
    /// The combined constraints: alignments are least common multiples, maxima minima,
    /// modifiers the intersection (ordered by the first device's preference), `contiguous` and
    /// `protected` if any device needs them, `can_import` only if every device can import.
    pub constraints: Constraints,
    /// Names of the devices merged, in attach order.
    pub devices: Vec<String>,
    /// Indices (into `devices`) of devices that cannot import foreign dma-bufs and so must be
    /// the exporter; at most one device may be in this list.
    pub must_export: Vec<usize>,
    /// Indices of devices able to allocate and export the buffer themselves.
    pub can_export: Vec<usize>,
    /// One line per restriction saying which device imposed it, e.g.
    /// `contiguous memory: required by vivid-000 (/dev/video0)`.
    pub reasons: Vec<String>,
    /// Which device imposed each limit.
    pub origins: Origins,
}

impl MergedConstraints {
    /// The name of the device at `index`, or `"request"`.
    pub fn party(&self, index: Option<usize>) -> String {
        index
            .and_then(|i| self.devices.get(i).cloned())
            .unwrap_or_else(|| "request".to_owned())
    }
}

/// Greatest common divisor.
pub(crate) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Least common multiple, `None` on overflow; `0` counts as `1`.
pub(crate) fn lcm(a: u64, b: u64) -> Option<u64> {
    let (a, b) = (a.max(1), b.max(1));
    (a / gcd(a, b)).checked_mul(b)
}

/// Checks the request itself: non-zero size, non-empty modifier list.
pub fn validate_request(request: &BufferRequest) -> Result<()> {
    match request.kind {
        BufferKind::Image { width, height, .. } if width == 0 || height == 0 => {
            return Err(Error::InvalidRequest(format!(
                "image size {width}x{height} has a zero dimension"
            )))
        }
        BufferKind::Blob { size: 0 } => {
            return Err(Error::InvalidRequest("blob size is zero".into()))
        }
        _ => {}
    }
    if let BufferKind::Image { fourcc, .. } = request.kind {
        if crate::format::FormatInfo::of(fourcc).is_none() {
            return Err(Error::InvalidRequest(format!(
                "format {} has no known plane layout",
                crate::format::fourcc_name(fourcc)
            )));
        }
    }
    if request.modifiers.as_ref().is_some_and(|m| m.is_empty()) {
        return Err(Error::InvalidRequest(
            "the modifier list is empty (use None for any modifier)".into(),
        ));
    }
    Ok(())
}

fn list(mods: &[Modifier]) -> String {
    let v: Vec<String> = mods.iter().map(|m| m.to_string()).collect();
    format!("[{}]", v.join(", "))
}

fn conflict(
    kind: ConstraintKind,
    first: &str,
    first_wants: impl Into<String>,
    second: &str,
    second_wants: impl Into<String>,
) -> Error {
    Error::Conflict {
        kind,
        first: first.to_owned(),
        first_wants: first_wants.into(),
        second: second.to_owned(),
        second_wants: second_wants.into(),
    }
}

/// Takes the smaller of two optional limits, remembering who set it.
fn min_limit<T: Ord + Copy>(
    current: &mut Option<T>,
    origin: &mut Option<usize>,
    new: Option<T>,
    index: usize,
) {
    if let Some(n) = new {
        if current.is_none_or(|c| n < c) {
            *current = Some(n);
            *origin = Some(index);
        }
    }
}

/// Merges the constraints of `devices` (name, constraints) for `request`. Conflicts are typed
/// errors naming both parties and the constraint; this never panics, whatever the input.
pub fn merge<'a>(
    request: &BufferRequest,
    devices: impl IntoIterator<Item = (&'a str, &'a Constraints)>,
) -> Result<MergedConstraints> {
    validate_request(request)?;
    let mut m = MergedConstraints::default();
    let c = &mut m.constraints;
    c.modifiers = request.modifiers.clone().unwrap_or_default();
    let mut modifier_parties: Vec<String> = Vec::new();
    let mut base_from = Vec::new();

    for (index, (name, d)) in devices.into_iter().enumerate() {
        m.devices.push(name.to_owned());
        if d.modifiers.is_empty() {
            return Err(Error::Unsupported {
                device: name.to_owned(),
                kind: ConstraintKind::Modifier,
                detail: "the device offers no modifier for this format and usage".into(),
            });
        }
        // Modifiers: the first device's order, intersected with everyone else's.
        if modifier_parties.is_empty() && request.modifiers.is_none() {
            c.modifiers = d.modifiers.clone();
        } else {
            let kept: Vec<Modifier> = c
                .modifiers
                .iter()
                .copied()
                .filter(|x| d.modifiers.contains(x))
                .collect();
            if kept.is_empty() {
                let first = if modifier_parties.is_empty() {
                    "request".to_owned()
                } else {
                    modifier_parties.join(" + ")
                };
                return Err(conflict(
                    ConstraintKind::Modifier,
                    &first,
                    format!("one of {}", list(&c.modifiers)),
                    name,
                    format!("one of {}", list(&d.modifiers)),
                ));
            }
            c.modifiers = kept;
        }
        modifier_parties.push(name.to_owned());

        // Alignments: least common multiples.
        let aligns: [(&str, &mut u64, u64); 4] = [
            ("base", &mut c.base_align, d.base_align),
            ("offset", &mut c.offset_align, d.offset_align),
            ("pitch", &mut c.pitch_align, d.pitch_align),
            ("size", &mut c.size_align, d.size_align),
        ];
        for (what, cur, new) in aligns {
            if new > 1 {
                *cur = lcm(*cur, new).ok_or_else(|| {
                    Error::Overflow(format!(
                        "{what} alignment: lcm({cur}, {new}) from {name} overflows"
                    ))
                })?;
                base_from.push(format!("{what} alignment {new}: required by {name}"));
            }
        }
        if d.height_align > 1 {
            let h = lcm(u64::from(c.height_align), u64::from(d.height_align))
                .and_then(|h| u32::try_from(h).ok())
                .ok_or_else(|| {
                    Error::Overflow(format!(
                        "height alignment: lcm({}, {}) from {name} overflows",
                        c.height_align, d.height_align
                    ))
                })?;
            c.height_align = h;
            base_from.push(format!(
                "height alignment {}: required by {name}",
                d.height_align
            ));
        }

        // Maxima: minima.
        let o = &mut m.origins;
        min_limit(&mut c.max_width, &mut o.max_width, d.max_width, index);
        min_limit(&mut c.max_height, &mut o.max_height, d.max_height, index);
        min_limit(&mut c.max_pitch, &mut o.max_pitch, d.max_pitch, index);
        min_limit(&mut c.max_size, &mut o.max_size, d.max_size, index);
        min_limit(
            &mut c.max_segments,
            &mut o.max_segments,
            d.max_segments,
            index,
        );
        min_limit(
            &mut c.dma_addr_limit,
            &mut o.dma_addr_limit,
            d.dma_addr_limit,
            index,
        );

        if d.contiguous && !c.contiguous {
            c.contiguous = true;
            o.contiguous = Some(index);
            base_from.push(format!("contiguous memory: required by {name}"));
        }
        if d.separate_planes && !c.separate_planes {
            c.separate_planes = true;
            o.separate_planes = Some(index);
            base_from.push(format!("one dma-buf per plane: required by {name}"));
        }
        if d.protected && !c.protected {
            c.protected = true;
            o.protected = Some(index);
            base_from.push(format!("protected memory: required by {name}"));
        }

        // Cache policy: Cached and Uncached exclude each other.
        match (c.cache, d.cache) {
            (_, CachePolicy::Any) => {}
            (CachePolicy::Any, want) => {
                c.cache = want;
                o.cache = Some(index);
                base_from.push(format!("{want:?} memory: required by {name}").to_lowercase());
            }
            (have, want) if have == want => {}
            (have, want) => {
                let first = o
                    .cache
                    .and_then(|i| m.devices.get(i).cloned())
                    .unwrap_or_default();
                return Err(conflict(
                    ConstraintKind::Cache,
                    &first,
                    format!("{have:?} memory").to_lowercase(),
                    name,
                    format!("{want:?} memory").to_lowercase(),
                ));
            }
        }

        // Import/export.
        c.prefers_own_memory = index == 0 && d.prefers_own_memory && d.can_export;
        if d.can_export {
            m.can_export.push(index);
        }
        if !d.can_import {
            if !d.can_export {
                return Err(Error::Unsupported {
                    device: name.to_owned(),
                    kind: ConstraintKind::Import,
                    detail: "the device can neither import a dma-buf nor export one".into(),
                });
            }
            if let Some(&other) = m.must_export.first() {
                return Err(conflict(
                    ConstraintKind::Import,
                    &m.devices[other],
                    "to allocate the buffer itself (cannot import)",
                    name,
                    "to allocate the buffer itself (cannot import)",
                ));
            }
            m.must_export.push(index);
            c.can_import = false;
            base_from.push(format!("exporter: {name} cannot import foreign dma-bufs"));
        }

        // Per-plane requirements.
        for (p, pc) in d.planes.iter().enumerate() {
            if c.planes.len() <= p {
                c.planes.resize(p + 1, PlaneConstraint::default());
                o.exact_stride.resize(p + 1, None);
            }
            let cur = &mut c.planes[p];
            cur.min_stride = cur.min_stride.max(pc.min_stride);
            cur.min_size = cur.min_size.max(pc.min_size);
            if let Some(exact) = pc.exact_stride {
                match cur.exact_stride {
                    Some(e) if e != exact => {
                        let first = o.exact_stride[p]
                            .and_then(|i| m.devices.get(i).cloned())
                            .unwrap_or_default();
                        return Err(conflict(
                            ConstraintKind::Plane,
                            &first,
                            format!("plane {p} stride exactly {e}"),
                            name,
                            format!("plane {p} stride exactly {exact}"),
                        ));
                    }
                    _ => {
                        cur.exact_stride = Some(exact);
                        o.exact_stride[p] = Some(index);
                    }
                }
            }
        }
    }
    if m.devices.is_empty() && c.modifiers.is_empty() {
        c.modifiers = vec![Modifier::LINEAR];
    }
    c.can_export = !m.can_export.is_empty();

    check_request_limits(request, &m)?;
    m.reasons = base_from;
    Ok(m)
}

/// Request vs merged maxima: width, height and (for blobs) size.
fn check_request_limits(request: &BufferRequest, m: &MergedConstraints) -> Result<()> {
    let c = &m.constraints;
    match request.kind {
        BufferKind::Image { width, height, .. } => {
            if let Some(max) = c.max_width.filter(|&max| width > max) {
                return Err(conflict(
                    ConstraintKind::MaxWidth,
                    &m.party(m.origins.max_width),
                    format!("width at most {max}"),
                    "request",
                    format!("width {width}"),
                ));
            }
            if let Some(max) = c.max_height.filter(|&max| height > max) {
                return Err(conflict(
                    ConstraintKind::MaxHeight,
                    &m.party(m.origins.max_height),
                    format!("height at most {max}"),
                    "request",
                    format!("height {height}"),
                ));
            }
        }
        BufferKind::Blob { size } => {
            if let Some(max) = c.max_size.filter(|&max| size > max) {
                return Err(conflict(
                    ConstraintKind::MaxSize,
                    &m.party(m.origins.max_size),
                    format!("at most {max} bytes"),
                    "request",
                    format!("{size} bytes"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fourcc, Usage};
    use proptest::prelude::*;

    fn req() -> BufferRequest {
        BufferRequest::image(1920, 1080, Fourcc::Xrgb8888, Usage::SCANOUT)
    }

    #[test]
    fn alignments_combine_by_lcm() {
        let a = Constraints {
            pitch_align: 64,
            offset_align: 3,
            height_align: 16,
            ..Default::default()
        };
        let b = Constraints {
            pitch_align: 48,
            offset_align: 5,
            height_align: 6,
            ..Default::default()
        };
        let m = merge(&req(), [("a", &a), ("b", &b)]).unwrap();
        assert_eq!(m.constraints.pitch_align, 192);
        assert_eq!(m.constraints.offset_align, 15);
        assert_eq!(m.constraints.height_align, 48);
        assert!(m
            .reasons
            .iter()
            .any(|r| r.contains("pitch alignment 48: required by b")));
    }

    #[test]
    fn alignment_overflow_is_an_error() {
        let a = Constraints {
            pitch_align: u64::MAX,
            ..Default::default()
        };
        let b = Constraints {
            pitch_align: u64::MAX - 1,
            ..Default::default()
        };
        assert!(matches!(
            merge(&req(), [("a", &a), ("b", &b)]),
            Err(Error::Overflow(_))
        ));
        let a = Constraints {
            height_align: u32::MAX,
            ..Default::default()
        };
        let b = Constraints {
            height_align: u32::MAX - 1,
            ..Default::default()
        };
        assert!(matches!(
            merge(&req(), [("a", &a), ("b", &b)]),
            Err(Error::Overflow(_))
        ));
    }

    #[test]
    fn modifiers_intersect_in_first_device_order() {
        let a = Constraints {
            modifiers: vec![Modifier(5), Modifier(3), Modifier::LINEAR],
            ..Default::default()
        };
        let b = Constraints {
            modifiers: vec![Modifier::LINEAR, Modifier(3)],
            ..Default::default()
        };
        let m = merge(&req(), [("a", &a), ("b", &b)]).unwrap();
        assert_eq!(m.constraints.modifiers, [Modifier(3), Modifier::LINEAR]);
        let r = req().with_modifiers([Modifier::LINEAR]);
        let m = merge(&r, [("a", &a), ("b", &b)]).unwrap();
        assert_eq!(m.constraints.modifiers, [Modifier::LINEAR]);
    }

    #[test]
    fn no_common_modifier_names_both() {
        let a = Constraints {
            modifiers: vec![Modifier(5)],
            ..Default::default()
        };
        let b = Constraints::default();
        let e = merge(&req(), [("gpu", &a), ("vkms", &b)]).unwrap_err();
        match e {
            Error::Conflict {
                kind: ConstraintKind::Modifier,
                first,
                second,
                ..
            } => {
                assert_eq!((first.as_str(), second.as_str()), ("gpu", "vkms"));
            }
            e => panic!("{e}"),
        }
        let r = req().with_modifiers([Modifier(9)]);
        let e = merge(&r, [("vkms", &b)]).unwrap_err();
        assert!(e.to_string().contains("request"), "{e}");
    }

    #[test]
    fn cache_conflict_names_both() {
        let a = Constraints {
            cache: CachePolicy::Cached,
            ..Default::default()
        };
        let b = Constraints {
            cache: CachePolicy::Uncached,
            ..Default::default()
        };
        let e = merge(
            &req(),
            [("cam", &a), ("any", &Constraints::default()), ("disp", &b)],
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(matches!(
            e,
            Error::Conflict {
                kind: ConstraintKind::Cache,
                ..
            }
        ));
        assert!(s.contains("cam") && s.contains("disp"), "{s}");
    }

    #[test]
    fn maxima_and_flags() {
        let a = Constraints {
            max_width: Some(4096),
            contiguous: true,
            ..Default::default()
        };
        let b = Constraints {
            max_width: Some(2048),
            max_size: Some(1 << 30),
            ..Default::default()
        };
        let m = merge(&req(), [("a", &a), ("b", &b)]).unwrap();
        assert_eq!(m.constraints.max_width, Some(2048));
        assert_eq!(m.party(m.origins.max_width), "b");
        assert!(m.constraints.contiguous);
        let big = BufferRequest::image(3000, 10, Fourcc::Xrgb8888, Usage::SCANOUT);
        let e = merge(&big, [("a", &a), ("b", &b)]).unwrap_err();
        match e {
            Error::Conflict {
                kind: ConstraintKind::MaxWidth,
                first,
                second,
                ..
            } => {
                assert_eq!((first.as_str(), second.as_str()), ("b", "request"))
            }
            e => panic!("{e}"),
        }
        let blob = BufferRequest::blob(2 << 30, Usage::VIDEO_DECODE);
        assert!(matches!(
            merge(&blob, [("a", &a), ("b", &b)]),
            Err(Error::Conflict {
                kind: ConstraintKind::MaxSize,
                ..
            })
        ));
    }

    #[test]
    fn exporters() {
        let virtio = Constraints {
            can_import: false,
            can_export: true,
            ..Default::default()
        };
        let m = merge(
            &req(),
            [("vkms", &Constraints::default()), ("virtio", &virtio)],
        )
        .unwrap();
        assert_eq!(m.must_export, [1]);
        assert!(!m.constraints.can_import);
        let e = merge(&req(), [("v1", &virtio), ("v2", &virtio)]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Conflict {
                    kind: ConstraintKind::Import,
                    ..
                }
            ),
            "{e}"
        );
        let dead = Constraints {
            can_import: false,
            ..Default::default()
        };
        assert!(matches!(
            merge(&req(), [("dead", &dead)]),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn bad_requests() {
        let zero = BufferRequest::image(0, 10, Fourcc::Xrgb8888, Usage::SCANOUT);
        assert!(matches!(merge(&zero, []), Err(Error::InvalidRequest(_))));
        let empty = req().with_modifiers([]);
        assert!(matches!(merge(&empty, []), Err(Error::InvalidRequest(_))));
        let unknown = BufferRequest::image(8, 8, Fourcc::Big_endian, Usage::SCANOUT);
        assert!(matches!(merge(&unknown, []), Err(Error::InvalidRequest(_))));
        assert!(matches!(
            merge(&BufferRequest::blob(0, Usage::empty()), []),
            Err(Error::InvalidRequest(_))
        ));
    }

    #[test]
    fn exact_strides_must_agree() {
        let a = Constraints {
            planes: vec![PlaneConstraint {
                exact_stride: Some(7680),
                ..Default::default()
            }],
            ..Default::default()
        };
        let b = Constraints {
            planes: vec![PlaneConstraint {
                exact_stride: Some(8192),
                ..Default::default()
            }],
            ..Default::default()
        };
        let e = merge(&req(), [("a", &a), ("b", &b)]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Conflict {
                    kind: ConstraintKind::Plane,
                    ..
                }
            ),
            "{e}"
        );
    }

    pub(crate) fn arb_constraints() -> impl Strategy<Value = Constraints> {
        (
            (
                any::<bool>(),
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u64>()),
            ),
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u32>(),
                any::<u64>(),
            ),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()),
            ),
            proptest::collection::vec(0u64..4, 0..4),
            (0u8..3, any::<bool>(), any::<bool>(), any::<bool>()),
            proptest::collection::vec(
                (
                    any::<u64>(),
                    any::<u64>(),
                    proptest::option::of(any::<u64>()),
                ),
                0..4,
            ),
        )
            .prop_map(|(a, b, c, mods, flags, planes)| Constraints {
                contiguous: a.0,
                max_segments: a.1,
                dma_addr_limit: a.2,
                base_align: b.0,
                offset_align: b.1,
                pitch_align: b.2,
                height_align: b.3,
                size_align: b.4,
                max_width: c.0,
                max_height: c.1,
                max_pitch: c.2,
                max_size: c.3,
                modifiers: mods.into_iter().map(Modifier).collect(),
                cache: [CachePolicy::Any, CachePolicy::Cached, CachePolicy::Uncached]
                    [flags.0 as usize],
                can_import: flags.1,
                can_export: flags.2,
                prefers_own_memory: flags.2 && !flags.3,
                protected: flags.3,
                separate_planes: flags.1 && flags.3,
                planes: planes
                    .into_iter()
                    .map(|(s, z, e)| PlaneConstraint {
                        min_stride: s,
                        min_size: z,
                        exact_stride: e,
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn merge_and_layout_never_panic(
            devs in proptest::collection::vec(arb_constraints(), 0..4),
            w in any::<u32>(), h in any::<u32>(), f in 0usize..13,
        ) {
            let fourcc = crate::format::SUPPORTED[f % crate::format::SUPPORTED.len()];
            let r = BufferRequest::image(w, h, fourcc, Usage::RENDER);
            let named: Vec<(String, Constraints)> =
                devs.into_iter().enumerate().map(|(i, c)| (format!("dev{i}"), c)).collect();
            if let Ok(m) = merge(&r, named.iter().map(|(n, c)| (n.as_str(), c))) {
                let _ = crate::Layout::compute(&r.kind, Modifier::LINEAR, &m);
            }
        }
    }
}
