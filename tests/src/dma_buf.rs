//! Which dma-bufs exist and which devices they are attached to, as the kernel lists them in
//! debugfs (`/sys/kernel/debug/dma_buf/bufinfo`): the evidence of dma-buf identity, i.e. that
//! one buffer was imported by two devices rather than copied between two.

use std::collections::BTreeSet;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// A dma-buf as bufinfo lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DmaBuf {
    /// The inode of the dma-buf's file: its identity.
    pub inode: u64,
    /// The exporter (a heap's name, or a DRM driver's).
    pub exporter: String,
    /// The name userspace gave it (DMA_BUF_SET_NAME), empty if none.
    pub name: String,
    /// The devices attached to it, by kernel device name (`vivid.0`, `vim2m`, `vkms`).
    pub attached: Vec<String>,
}

impl DmaBuf {
    /// True when a device whose name contains `device` is attached.
    pub fn attached_to(&self, device: &str) -> bool {
        self.attached.iter().any(|d| d.contains(device))
    }
}

/// Parses `/sys/kernel/debug/dma_buf/bufinfo` (kernel 6.12's layout: a tab-separated line per
/// buffer, then `\tAttached Devices:` and one `\tDEVICE` line per attachment).
pub fn bufinfo() -> Vec<DmaBuf> {
    let text = std::fs::read_to_string("/sys/kernel/debug/dma_buf/bufinfo")
        .expect("debugfs dma_buf/bufinfo (is debugfs mounted?)");
    let mut bufs: Vec<DmaBuf> = Vec::new();
    let mut in_attached = false;
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() >= 7 && !line.starts_with('\t') {
            if let Ok(inode) = fields[5].trim().parse() {
                bufs.push(DmaBuf {
                    inode,
                    exporter: fields[4].trim().to_owned(),
                    name: fields[6..].join("\t").trim().to_owned(),
                    attached: Vec::new(),
                });
                in_attached = false;
                continue;
            }
        }
        if line.trim() == "Attached Devices:" {
            in_attached = true;
        } else if in_attached && line.starts_with('\t') {
            if let Some(b) = bufs.last_mut() {
                b.attached.push(line.trim().to_owned());
            }
        } else {
            in_attached = false;
        }
    }
    bufs
}

/// What one watched run of a program gave.
pub struct Watched {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout and stderr, interleaved.
    pub output: String,
    /// Every dma-buf (with the attachments of that moment) seen attached to a device while it
    /// ran.
    pub seen: BTreeSet<DmaBuf>,
}

/// Runs `cmd`, reading bufinfo every 20 ms until it exits; its output goes to `log` (a pipe
/// nobody reads would fill up and stop it) and is echoed. Panics if it runs longer than
/// `timeout`.
pub fn watch(mut cmd: Command, log: &str, timeout: Duration) -> Watched {
    let file = std::fs::File::create(log).expect("create the log in /tmp");
    cmd.stdout(file.try_clone().expect("dup the log fd"))
        .stderr(file);
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + timeout;
    let status = loop {
        seen.extend(bufinfo().into_iter().filter(|b| !b.attached.is_empty()));
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let output = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{shown} did not end within {timeout:?}:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(log).expect("read the log");
    println!("$ {shown}\n{output}\nexit: {status}");
    Watched {
        status,
        output,
        seen,
    }
}
