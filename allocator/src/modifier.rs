//! Format modifiers (tiling/compression layouts) as plain, ordered values.

use std::fmt;

/// A DRM format modifier. Kept as a plain `u64` newtype so it can be ordered and put in sets;
/// converts to and from [`drm_fourcc::DrmModifier`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Modifier(pub u64);

impl Modifier {
    /// The linear (untiled) layout.
    pub const LINEAR: Modifier = Modifier(0);
    /// "No explicit modifier": the layout is implied by the driver. Never treated as linear.
    pub const INVALID: Modifier = Modifier(0x00ff_ffff_ffff_ffff);
}

impl From<drm_fourcc::DrmModifier> for Modifier {
    fn from(m: drm_fourcc::DrmModifier) -> Self {
        Modifier(m.into())
    }
}

impl From<Modifier> for drm_fourcc::DrmModifier {
    fn from(m: Modifier) -> Self {
        drm_fourcc::DrmModifier::from(m.0)
    }
}

impl fmt::Debug for Modifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Modifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Modifier::LINEAR => f.write_str("LINEAR"),
            Modifier::INVALID => f.write_str("INVALID"),
            Modifier(v) => write!(f, "{:#018x}", v),
        }
    }
}
