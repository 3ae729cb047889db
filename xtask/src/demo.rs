//! `cargo xtask demo`: the main job. Builds the examples, boots the guest and shows, in one
//! command, what cenalloc sees (heaps and devices), what it decides for typical pipelines and
//! why, a camera → display run verified through the vkms writeback connector (PNG snapshots
//! of read-back frames in `target/demo/`), and GStreamer's own camera → display pipeline
//! failing alone and running through the `cenalloc` element, with its plan's reasons.

use crate::vm::{self, VmOptions};
use crate::{kernel, workspace_root, Result};

pub fn main(_args: &[String]) -> Result<i32> {
    let kernel = kernel::setup()?;
    crate::build_programs()?;
    let bin = workspace_root().join("target/debug");
    let demo_dir = workspace_root().join("target/demo");
    let _ = std::fs::remove_dir_all(&demo_dir);
    std::fs::create_dir_all(&demo_dir).map_err(|e| e.to_string())?;
    // target/demo must be writable in the guest: it lives in the share and is linked back.
    let share_demo = vm::share_dir().join("demo");
    let _ = std::fs::remove_dir_all(&share_demo);
    std::fs::create_dir_all(&share_demo).map_err(|e| e.to_string())?;

    let info = vm::shell_quote(&bin.join("cenalloc-info").to_string_lossy());
    let mut script = String::from("set -e\n");
    script.push_str(&format!(
        "echo '== What cenalloc sees in the guest'\n{info}\n\
         echo\necho '== Plan: vkms scanout alone'\n{info} --plan --device vkms:scanout --format XR24 --size 1920x1080\n\
         echo\necho '== Plan: vkms scanout + vivid-000 camera (needs contiguous memory)'\n{info} --plan --device vkms:scanout --device vivid-000:camera --format XR24 --size 640x480\n\
         echo\necho '== Plan: vkms scanout + vivid-001 camera'\n{info} --plan --device vkms:scanout --device vivid-001:camera --format XR24 --size 640x480\n\
         echo\necho '== Plan: vkms scanout + virtio-gpu render (virtio-gpu cannot import: it exports)'\n{info} --plan --device vkms:scanout --device virtio_gpu:render --format XR24 --size 1024x768\n"
    ));
    let c2d = bin.join("camera-to-display");
    if c2d.is_file() {
        script.push_str(&format!(
            "echo\necho '== camera-to-display: vivid-000 → vkms, verified through writeback'\n{} --camera vivid-000 --frames 60 --verify --snapshots {}\n",
            vm::shell_quote(&c2d.to_string_lossy()),
            vm::shell_quote(&share_demo.to_string_lossy()),
        ));
    } else {
        script.push_str("echo\necho '(camera-to-display is not built yet: no pipeline run)'\n");
    }
    if bin.join("libgstcenalloc.so").is_file() {
        script.push_str(&gstreamer_script(&bin.to_string_lossy()));
    }
    let script_path = vm::share_dir().join("demo.sh");
    std::fs::write(&script_path, script).map_err(|e| e.to_string())?;
    let outcome = vm::run(
        &kernel,
        &VmOptions::default(),
        &workspace_root(),
        &["sh".into(), script_path.to_string_lossy().into_owned()],
    )?;
    // Snapshots were written to the share; move them to target/demo.
    if let Ok(dir) = std::fs::read_dir(&share_demo) {
        for e in dir.flatten() {
            let _ = std::fs::rename(e.path(), demo_dir.join(e.file_name()));
        }
    }
    let pngs = std::fs::read_dir(&demo_dir).map(|d| d.count()).unwrap_or(0);
    if pngs > 0 {
        println!(
            "\n{pngs} snapshot(s) of read-back frames in {}",
            demo_dir.display()
        );
    }
    match outcome.status {
        Some(code) => Ok(code),
        None => {
            eprintln!(
                "---- guest console ----\n{}\n---- end ----",
                outcome.console
            );
            Ok(1)
        }
    }
}

/// Guest shell commands: vivid-000 → kmssink with GStreamer alone (it fails: kmssink's dumb
/// buffers are not contiguous) and through the `cenalloc` element from `plugin_dir`.
fn gstreamer_script(plugin_dir: &str) -> String {
    let plugins = vm::shell_quote(plugin_dir);
    let caps = "video/x-raw,format=BGRx,width=640,height=480";
    format!(
        "node=/dev/$(basename $(dirname $(grep -lx vivid-000-vid-cap /sys/class/video4linux/*/name)))\n\
         gst-inspect-1.0 >/dev/null 2>&1 || true\n\
         echo\necho \"== GStreamer alone: v4l2src ($node, vivid-000) ! kmssink: kmssink offers dumb buffers the camera cannot use\"\n\
         gst-launch-1.0 v4l2src device=$node io-mode=dmabuf-import num-buffers=60 ! {caps} ! kmssink driver-name=vkms 2>&1 | grep -E 'ERROR|Failed' || true\n\
         echo\necho '== The same pipeline with the cenalloc element before kmssink (GST_DEBUG=cenalloc:4)'\n\
         GST_PLUGIN_PATH={plugins} GST_DEBUG=cenalloc:4 GST_DEBUG_NO_COLOR=1 gst-launch-1.0 v4l2src device=$node io-mode=dmabuf-import num-buffers=60 ! {caps} ! cenalloc ! kmssink driver-name=vkms 2>&1 | grep -E 'cenalloc|Execution ended|ERROR' | cut -c1-220 | head -24\n"
    )
}
