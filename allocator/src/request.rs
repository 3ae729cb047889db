//! What the caller asks for: an image of a format and size, or a plain blob, and its usage.

use crate::{Fourcc, Modifier, Usage};

/// The shape of the buffer being requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferKind {
    /// A 2D image in a fourcc format, laid out in planes.
    Image {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Pixel format.
        fourcc: Fourcc,
    },
    /// Unstructured memory of `size` bytes (bitstreams, metadata, tensors).
    Blob {
        /// Size in bytes.
        size: u64,
    },
}

/// A request for one buffer shared by a set of devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferRequest {
    /// Image or blob.
    pub kind: BufferKind,
    /// Union of the usages of every device that will touch the buffer.
    pub usage: Usage,
    /// The modifiers the caller can handle; `None` means any the devices agree on.
    /// `Some(empty)` is invalid.
    pub modifiers: Option<Vec<Modifier>>,
    /// Debug name given to the dma-buf (DMA_BUF_SET_NAME); cenalloc makes one up when `None`.
    pub name: Option<String>,
}

impl BufferRequest {
    /// An image request.
    pub fn image(width: u32, height: u32, fourcc: Fourcc, usage: Usage) -> Self {
        BufferRequest {
            kind: BufferKind::Image {
                width,
                height,
                fourcc,
            },
            usage,
            modifiers: None,
            name: None,
        }
    }

    /// A blob request.
    pub fn blob(size: u64, usage: Usage) -> Self {
        BufferRequest {
            kind: BufferKind::Blob { size },
            usage,
            modifiers: None,
            name: None,
        }
    }

    /// Restricts the modifiers the caller accepts.
    pub fn with_modifiers(mut self, modifiers: impl IntoIterator<Item = Modifier>) -> Self {
        self.modifiers = Some(modifiers.into_iter().collect());
        self
    }

    /// Names the buffer (shown in /sys/kernel/debug/dma_buf/bufinfo).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}
