//! linux-dmabuf feedback as the client sees it: the format table, the main device and the
//! tranches (target device, flags, format/modifier pairs). A version 4 compositor sends it, and
//! sends it again whenever it changes; from a version 3 compositor the client has only the
//! format/modifier pairs, which make one tranche with no device and no scanout flag.

use std::os::fd::OwnedFd;

use rustix::fs::{stat, Dev};

/// One tranche of the feedback.
#[derive(Debug, Default, Clone)]
pub struct Tranche {
    /// Device the tranche's buffers should be allocated for.
    pub target_device: Option<Dev>,
    /// True when the compositor can scan these formats out directly.
    pub scanout: bool,
    /// (fourcc, modifier) pairs, in preference order.
    pub formats: Vec<(u32, u64)>,
}

/// The whole feedback, once `done` has arrived.
#[derive(Debug, Default)]
pub struct Feedback {
    /// (fourcc, modifier) entries of the shared format table.
    pub table: Vec<(u32, u64)>,
    /// The compositor's main device.
    pub main_device: Option<Dev>,
    /// Finished tranches, most preferred first.
    pub tranches: Vec<Tranche>,
    /// The tranche being received.
    pub pending: Tranche,
    /// How many complete feedbacks arrived (`done` events): a change shows as a new number.
    pub generation: u32,
    /// A `done` ended the last batch; the next event starts a new feedback.
    complete: bool,
}

impl Feedback {
    /// The feedback of a version 3 compositor: its format/modifier pairs as one tranche.
    pub fn from_formats(formats: Vec<(u32, u64)>) -> Feedback {
        Feedback {
            tranches: vec![Tranche {
                target_device: None,
                scanout: false,
                formats,
            }],
            generation: 1,
            complete: true,
            ..Feedback::default()
        }
    }

    /// Called for every event but `done`: the first event after a `done` starts a new
    /// feedback, which replaces the tranches of the last one.
    pub fn receiving(&mut self) {
        if std::mem::take(&mut self.complete) {
            self.tranches.clear();
            self.pending = Tranche::default();
        }
    }

    /// A `done` event: the feedback is complete.
    pub fn finish(&mut self) {
        self.complete = true;
        self.generation += 1;
    }

    /// Reads the format table (16 bytes per entry: u32 format, 4 bytes padding, u64 modifier).
    pub fn read_table(&mut self, fd: OwnedFd, size: u32) -> std::io::Result<()> {
        let mut bytes = vec![0u8; size as usize];
        let mut done = 0;
        while done < bytes.len() {
            let n = rustix::io::pread(&fd, &mut bytes[done..], done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        self.table = bytes
            .chunks_exact(16)
            .map(|e| {
                let format = u32::from_ne_bytes(e[0..4].try_into().expect("4 bytes"));
                let modifier = u64::from_ne_bytes(e[8..16].try_into().expect("8 bytes"));
                (format, modifier)
            })
            .collect();
        Ok(())
    }

    /// Adds the table entries named by `indices` (little array of native u16) to the pending
    /// tranche.
    pub fn add_indices(&mut self, indices: &[u8]) {
        for pair in indices.chunks_exact(2) {
            let index = u16::from_ne_bytes([pair[0], pair[1]]) as usize;
            if let Some(entry) = self.table.get(index) {
                self.pending.formats.push(*entry);
            } else {
                log::warn!("feedback names format table index {index}, past its end");
            }
        }
    }

    /// Whether `(fourcc, modifier)` is in a scanout tranche.
    pub fn scanout_supports(&self, fourcc: u32, modifier: u64) -> bool {
        self.tranches
            .iter()
            .any(|t| t.scanout && t.formats.contains(&(fourcc, modifier)))
    }

    /// Whether `(fourcc, modifier)` is in any tranche.
    pub fn supports(&self, fourcc: u32, modifier: u64) -> bool {
        self.tranches
            .iter()
            .any(|t| t.formats.contains(&(fourcc, modifier)))
    }
}

/// A `dev_t` from a feedback byte array.
pub fn dev_from_bytes(bytes: &[u8]) -> Option<Dev> {
    let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_ne_bytes(raw) as Dev)
}

/// The `/dev/dri` node whose device number is `dev`.
pub fn node_of(dev: Dev) -> Option<std::path::PathBuf> {
    let dir = std::fs::read_dir("/dev/dri").ok()?;
    dir.flatten()
        .map(|e| e.path())
        .find(|p| stat(p).map(|s| s.st_rdev == dev).unwrap_or(false))
}
