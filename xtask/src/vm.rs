//! `cargo xtask vm`: run a command inside a QEMU guest that has real DRM, V4L2 and dma-buf
//! heap devices (vkms with writeback, vgem, virtio-gpu, two vivid instances, vicodec, visl,
//! vim2m, system and CMA heaps, udmabuf).
//!
//! The guest's root is the host's, read-only over 9p, so binaries built on the host run as they
//! are. `target/vm-out/` is shared writable and appears at the same path in the guest. The
//! command, its environment and working directory travel through a control directory in that
//! share; `vm/guest-init.sh` (PID 1) runs it and writes its exit status back.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::kernel::{self, Kernel};
use crate::{workspace_root, Result};

/// How to boot the guest.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Kill the guest after this long.
    pub timeout: Duration,
    /// Leave out the virtio-gpu device.
    pub no_gpu: bool,
    /// Extra kernel command line arguments.
    pub append: Vec<String>,
    /// Print the command's output as it comes.
    pub stream: bool,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            timeout: Duration::from_secs(900),
            no_gpu: false,
            append: Vec::new(),
            stream: true,
        }
    }
}

/// What a guest run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The command's exit status; `None` if the guest never reported one.
    pub status: Option<i32>,
    /// True if the guest was killed at the timeout.
    pub timed_out: bool,
    /// The guest console (kernel messages).
    pub console: String,
}

/// The writable share: `target/vm-out/` of the workspace.
pub fn share_dir() -> PathBuf {
    workspace_root().join("target/vm-out")
}

pub fn main(args: &[String]) -> Result<i32> {
    let mut opts = VmOptions::default();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--timeout" => {
                let v = args.get(i + 1).ok_or("--timeout needs seconds")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout {v}: not a number"))?;
                opts.timeout = Duration::from_secs(secs);
                i += 2;
            }
            "--no-gpu" => {
                opts.no_gpu = true;
                i += 1;
            }
            "--append" => {
                let v = args.get(i + 1).ok_or("--append needs kernel arguments")?;
                opts.append.extend(v.split_whitespace().map(str::to_owned));
                i += 2;
            }
            "--" => {
                i += 1;
                break;
            }
            other if other.starts_with('-') => return Err(format!("vm: unknown option {other}")),
            _ => break,
        }
    }
    let cmd = &args[i..];
    if cmd.is_empty() {
        return Err(
            "usage: cargo xtask vm [--timeout S] [--no-gpu] [--append ARGS] -- CMD...".into(),
        );
    }
    let kernel = kernel::setup()?;
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let outcome = run(&kernel, &opts, &cwd, cmd)?;
    match outcome.status {
        Some(code) => Ok(code),
        None => {
            eprintln!(
                "---- guest console ----\n{}\n---- end of console ----",
                outcome.console
            );
            if outcome.timed_out {
                eprintln!(
                    "xtask vm: guest killed after {} s timeout",
                    opts.timeout.as_secs()
                );
                Ok(124)
            } else {
                eprintln!("xtask vm: the guest never reported an exit status");
                Ok(125)
            }
        }
    }
}

/// `s` quoted for sh.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

static RUNS: AtomicU32 = AtomicU32::new(0);

/// Environment variables passed from the host to the guest command.
fn passed_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CENALLOC_") || k.starts_with("RUST_"))
        .collect();
    env.push(("CENALLOC_IN_GUEST".into(), "1".into()));
    env.push(("HOME".into(), "/tmp".into()));
    env.push(("XDG_RUNTIME_DIR".into(), "/run/user/0".into()));
    if !env.iter().any(|(k, _)| k == "RUST_BACKTRACE") {
        env.push(("RUST_BACKTRACE".into(), "1".into()));
    }
    env
}

/// Boots the guest, runs `cmd` in `cwd`, and returns what happened.
pub fn run(kernel: &Kernel, opts: &VmOptions, cwd: &Path, cmd: &[String]) -> Result<Outcome> {
    let share = share_dir();
    let init = workspace_root().join("vm/guest-init.sh");
    let init_s = init.to_string_lossy().into_owned();
    if init_s.contains(char::is_whitespace) {
        return Err(format!(
            "the workspace path {} contains white space, which cannot go on the kernel command line",
            workspace_root().display()
        ));
    }
    let ctl_name = format!(
        ".ctl-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let ctl = share.join(&ctl_name);
    let _ = std::fs::remove_dir_all(&ctl);
    std::fs::create_dir_all(&ctl).map_err(|e| format!("cannot create {}: {e}", ctl.display()))?;
    let write = |name: &str, text: String| {
        std::fs::write(ctl.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))
    };
    write(
        "env.sh",
        format!(
            "CENALLOC_VM_ROOT={}\nCENALLOC_VM_SHARE={}\nCENALLOC_VM_CWD={}\n",
            shell_quote(&workspace_root().to_string_lossy()),
            shell_quote(&share.to_string_lossy()),
            shell_quote(&cwd.to_string_lossy())
        ),
    )?;
    let mut script = String::new();
    for (k, v) in passed_env() {
        script.push_str(&format!("export {k}={}\n", shell_quote(&v)));
    }
    script.push_str("exec");
    for a in cmd {
        script.push(' ');
        script.push_str(&shell_quote(a));
    }
    script.push('\n');
    write("run.sh", script)?;

    let verdict_file = kernel::cache_dir().join(format!("accel-{}", kernel.key));
    let verdict = std::fs::read_to_string(&verdict_file).ok();
    let try_kvm = match verdict.as_deref().map(str::trim) {
        Some("kvm") => true,
        Some(_) => false,
        None => std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok(),
    };
    if try_kvm {
        match boot(kernel, opts, &init_s, &ctl_name, &ctl, Accel::Kvm)? {
            Boot::Ran(outcome) => {
                let _ = std::fs::write(&verdict_file, "kvm\n");
                return finish(outcome, &ctl);
            }
            Boot::NoBoot(why) => {
                eprintln!("xtask vm: KVM cannot boot this kernel here ({why}); using TCG");
                let _ = std::fs::write(&verdict_file, "tcg\n");
            }
        }
    }
    match boot(kernel, opts, &init_s, &ctl_name, &ctl, Accel::Tcg)? {
        Boot::Ran(outcome) => finish(outcome, &ctl),
        Boot::NoBoot(why) => {
            let mut console = std::fs::read_to_string(ctl.join("console.log")).unwrap_or_default();
            console.push_str(&format!("\n{why}"));
            Ok(Outcome {
                status: None,
                timed_out: false,
                console,
            })
        }
    }
}

fn finish(outcome: Outcome, ctl: &Path) -> Result<Outcome> {
    if outcome.status.is_some() {
        let _ = std::fs::remove_dir_all(ctl);
    }
    Ok(outcome)
}

#[derive(Clone, Copy, PartialEq)]
enum Accel {
    Kvm,
    Tcg,
}

enum Boot {
    Ran(Outcome),
    NoBoot(String),
}

fn qemu_command(
    kernel: &Kernel,
    opts: &VmOptions,
    init: &str,
    ctl_name: &str,
    ctl: &Path,
    accel: Accel,
) -> Command {
    let mut append = vec![
        "console=ttyS0".to_owned(),
        "quiet".into(),
        "panic=-1".into(),
        "root=hostroot".into(),
        "rootfstype=9p".into(),
        "rootflags=trans=virtio,version=9p2000.L,msize=262144".into(),
        "ro".into(),
        format!("init={init}"),
        format!("cenalloc.ctl={ctl_name}"),
        // vivid-000: dma-contig; vivid-001: vmalloc; vivid-002: dma-contig, multi-planar
        // API (formats with a buffer per plane such as NM12).
        "vivid.n_devs=3".into(),
        "vivid.allocators=1,0,1".into(),
        "vivid.multiplanar=1,1,2".into(),
        "vkms.enable_writeback=1".into(),
        "hugepagesz=2M".into(),
        "hugepages=16".into(),
    ];
    append.extend(opts.append.iter().cloned());
    let share = share_dir();
    let mut cmd = Command::new("qemu-system-x86_64");
    match accel {
        Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => cmd.args(["-accel", "tcg", "-cpu", "max"]),
    };
    cmd.args([
        "-M",
        "q35",
        "-m",
        "2G",
        "-smp",
        "2",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-vga",
        "none",
        "-no-reboot",
    ])
    .arg("-serial")
    .arg(format!("file:{}", ctl.join("console.log").display()))
    .arg("-kernel")
    .arg(&kernel.image)
    .arg("-append")
    .arg(append.join(" "))
    .arg("-virtfs")
    .arg("local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
    .arg("-virtfs")
    .arg(format!(
        "local,path={},mount_tag=out,security_model=none",
        share.display()
    ))
    .arg("-monitor")
    .arg(format!(
        "unix:{},server=on,wait=off",
        ctl.join("monitor.sock").display()
    ));
    if !opts.no_gpu {
        cmd.args(["-device", "virtio-gpu-pci"]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn boot(
    kernel: &Kernel,
    opts: &VmOptions,
    init: &str,
    ctl_name: &str,
    ctl: &Path,
    accel: Accel,
) -> Result<Boot> {
    for f in ["booted", "status", "output", "console.log"] {
        let _ = std::fs::remove_file(ctl.join(f));
    }
    let mut child = qemu_command(kernel, opts, init, ctl_name, ctl, accel)
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
    let started = Instant::now();
    let boot_deadline = Duration::from_secs(40);
    let mut printed = 0u64;
    let mut timed_out = false;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let booted = ctl.join("booted").exists();
        printed = drain(&ctl.join("output"), printed, opts.stream);
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            if !booted && accel == Accel::Kvm {
                return Ok(Boot::NoBoot(format!(
                    "qemu exited with {status} before the guest booted{}",
                    stderr_of(&mut child)
                )));
            }
            break;
        }
        if !booted && accel == Accel::Kvm && started.elapsed() > boot_deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Boot::NoBoot("no boot within 40 s".into()));
        }
        if started.elapsed() > opts.timeout {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break;
        }
    }
    drain(&ctl.join("output"), printed, opts.stream);
    let status = std::fs::read_to_string(ctl.join("status"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let console = std::fs::read_to_string(ctl.join("console.log")).unwrap_or_default();
    let mut console = console;
    if status.is_none() {
        console.push_str(&stderr_of(&mut child));
    }
    Ok(Boot::Ran(Outcome {
        status: if timed_out { None } else { status },
        timed_out,
        console,
    }))
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    if s.is_empty() {
        s
    } else {
        format!("\nqemu: {}", s.trim())
    }
}

/// Prints what `path` gained since `from` (if `stream`); returns the new offset.
fn drain(path: &Path, from: u64, stream: bool) -> u64 {
    let Ok(mut f) = std::fs::File::open(path) else {
        return from;
    };
    if f.seek(SeekFrom::Start(from)).is_err() {
        return from;
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return from;
    }
    if stream && !buf.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&buf);
        let _ = out.flush();
    }
    from + buf.len() as u64
}
