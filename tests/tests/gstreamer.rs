//! The GStreamer element `cenalloc` (crate `gst-plugin-cenalloc`, `libgstcenalloc.so`) in real
//! `gst-launch-1.0` pipelines: a camera that needs contiguous memory (vivid-000) shown by
//! kmssink on vkms works through the element and fails without it; vivid-001 gets the system
//! heap; a device property naming nothing fails cleanly; vicodec's decoder feeds the display.
//!
//! The plugin is found through `GST_PLUGIN_PATH` (the directory of `cenalloc_vmtests::program`),
//! and the registry is kept in the guest's /tmp, built once by the first test.
//!
//! **Dma-buf identity** (which memory kmssink showed): while the pipeline runs, the test reads
//! `/sys/kernel/debug/dma_buf/bufinfo` every 20 ms. It lists every dma-buf with its exporter
//! (the heap), its name (cenalloc names its buffers after the plan, `cenalloc XR24 640x480`)
//! and the devices attached to it. The element keeps no import of its own (it drops cenalloc's
//! trial imports once the buffer is handed to GStreamer), so a dma-buf attached to vkms was
//! imported by kmssink, to make the framebuffer it put on the plane. Every dma-buf ever seen
//! attached to vkms must be one of cenalloc's, from the heap the plan chose; and at least one
//! must be seen. A kmssink that copied into its own dumb buffers would attach nothing. (The
//! element's trial import into vkms lasts only while it allocates a buffer; for vivid-000 the
//! test also requires a sample in which one buffer is attached to vivid and vkms at once, which
//! can only be v4l2src's and kmssink's imports.)

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use cenalloc_vmtests::dma_buf::{watch, DmaBuf};

/// The registry every run shares (the host's file system is read-only in the guest).
const REGISTRY: &str = "/tmp/cenalloc-gst-registry.bin";

/// The directory holding `libgstcenalloc.so`.
fn plugin_dir() -> PathBuf {
    let lib = cenalloc_vmtests::program("libgstcenalloc.so");
    lib.parent().expect("a directory").to_path_buf()
}

fn gst_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", REGISTRY)
        .env("GST_DEBUG", "cenalloc:4")
        .env("GST_DEBUG_NO_COLOR", "1");
    cmd
}

/// Builds the registry once (several seconds in the guest) and checks the element is in it.
fn registry() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let out = gst_command("gst-inspect-1.0")
            .arg("cenalloc")
            .output()
            .expect("gst-inspect-1.0 runs");
        assert!(
            out.status.success(),
            "gst-inspect-1.0 cenalloc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// What one `gst-launch-1.0` run gave.
struct Run {
    success: bool,
    output: String,
    /// Every dma-buf seen attached to vkms while the pipeline ran.
    on_vkms: BTreeSet<DmaBuf>,
}

/// Runs `gst-launch-1.0 -m PIPELINE` (element messages printed), sampling bufinfo while it
/// runs; its output goes to a file (a pipe nobody reads would fill up and stop it) and is
/// echoed.
fn launch(pipeline: &str) -> Run {
    registry();
    let mut cmd = gst_command("gst-launch-1.0");
    cmd.arg("-m").args(pipeline.split_whitespace());
    let run = watch(
        cmd,
        "/tmp/cenalloc-gst-launch.log",
        Duration::from_secs(300),
    );
    let on_vkms: BTreeSet<DmaBuf> = run
        .seen
        .into_iter()
        .filter(|b| b.attached_to("vkms"))
        .collect();
    println!("dma-bufs attached to vkms during the run: {on_vkms:#?}");
    Run {
        success: run.status.success(),
        output: run.output,
        on_vkms,
    }
}

/// The `source` field of the element's `cenalloc-plan` message.
fn plan_source(output: &str) -> String {
    let line = output
        .lines()
        .find(|l| l.contains("cenalloc-plan"))
        .unwrap_or_else(|| panic!("no cenalloc-plan element message in:\n{output}"));
    let (_, rest) = line
        .split_once("source=(string)")
        .unwrap_or_else(|| panic!("no source in {line}"));
    rest.split([',', ';']).next().unwrap_or("").to_owned()
}

fn camera_pipeline(camera: &str, with_cenalloc: bool) -> String {
    let node = cenalloc_vmtests::devices::video_node(&format!("{camera}-vid-cap"));
    format!(
        "v4l2src device={} io-mode=dmabuf-import num-buffers=60 \
         ! video/x-raw,format=BGRx,width=640,height=480 {}! kmssink driver-name=vkms",
        node.display(),
        if with_cenalloc { "! cenalloc " } else { "" }
    )
}

/// Asserts the run showed only cenalloc's dma-bufs of `size` (`640x480`) from `heap` on vkms,
/// and at least one. The one-page buffer of the DRM backend's trial import (named so) is not a
/// frame and is left out.
fn assert_vkms_showed_cenalloc_buffers(run: &Run, heap: &str, size: &str) {
    let frames: Vec<&DmaBuf> = run
        .on_vkms
        .iter()
        .filter(|b| b.name != cenalloc_drm::probe::TRIAL_BUFFER_NAME)
        .collect();
    assert!(
        !frames.is_empty(),
        "no dma-buf was attached to vkms during the run: kmssink did not import"
    );
    for b in frames {
        assert!(
            b.name.starts_with("cenalloc ") && b.name.ends_with(size) && b.exporter == heap,
            "vkms showed a dma-buf that is not cenalloc's from {heap}: {b:?}"
        );
    }
}

/// vivid-000 (vb2-dma-contig) → kmssink on vkms through `cenalloc`: 60 buffers, exit 0, the
/// plan chose the CMA heap `reserved`, and every dma-buf kmssink imported is cenalloc's.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn gst_contiguous_camera_to_kmssink_through_cenalloc() {
    let run = launch(&camera_pipeline("vivid-000", true));
    assert!(run.success, "the pipeline failed:\n{}", run.output);
    assert_eq!(plan_source(&run.output), "reserved");
    // A buffer attached to the camera and to vkms at once: the camera attaches only when
    // v4l2src queues the buffer, after the element's own trial import has ended, so this
    // vkms attachment is kmssink's.
    assert!(
        run.on_vkms
            .iter()
            .any(|b| b.attached.iter().any(|d| d == "vivid.0")),
        "no cenalloc buffer was seen attached to vivid-000 and vkms at once"
    );
    assert!(
        run.output
            .contains("contiguous memory: required by vivid-000-vid-cap"),
        "the plan's reasons are not logged"
    );
    assert_vkms_showed_cenalloc_buffers(&run, "reserved", "640x480");
}

/// The same pipeline without `cenalloc` fails: kmssink offers dumb buffers, which vivid-000
/// cannot import, and nothing in GStreamer allocates from the CMA heap. This is what the
/// element fixes.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn gst_contiguous_camera_to_kmssink_without_cenalloc_fails() {
    let run = launch(&camera_pipeline("vivid-000", false));
    assert!(
        !run.success,
        "GStreamer alone ran the pipeline; the test's premise is gone:\n{}",
        run.output
    );
    assert!(
        run.output.contains("Failed to allocate required memory"),
        "failed for another reason than the camera's memory:\n{}",
        run.output
    );
}

/// vivid-001 (vb2-vmalloc) needs no contiguous memory: the plan takes the system heap.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn gst_scatter_camera_gets_the_system_heap() {
    let run = launch(&camera_pipeline("vivid-001", true));
    assert!(run.success, "the pipeline failed:\n{}", run.output);
    assert_eq!(plan_source(&run.output), "system");
    assert_vkms_showed_cenalloc_buffers(&run, "system", "640x480");
}

/// kmssink named by its `bus-id` alone (libdrm's unique name of the card, as `drmOpen(NULL,
/// bus_id)` matches it): the element finds the same display, and the vivid-000 pipeline runs
/// zero-copy from CMA as with `driver-name`.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn gst_kmssink_named_by_bus_id() {
    // The nodes are closed again before kmssink runs: it must become the display's master.
    let bus_id = {
        let vkms = cenalloc_vmtests::drm_device("vkms", cenalloc_drm::NodeKind::Card);
        let bus_id = cenalloc_drm::device::bus_id(&vkms).expect("vkms's bus id");
        assert_eq!(
            bus_id, "vkms",
            "the bus id of a platform device is its name"
        );
        let found = cenalloc_drm::device::find_by_bus_id(&bus_id).expect("found by its bus id");
        assert_eq!(found.driver(), "vkms");
        bus_id
    };
    let pipeline = camera_pipeline("vivid-000", true).replace(
        "kmssink driver-name=vkms",
        &format!("kmssink bus-id={bus_id}"),
    );
    assert!(pipeline.contains("bus-id="), "{pipeline}");
    let run = launch(&pipeline);
    assert!(run.success, "the pipeline failed:\n{}", run.output);
    assert_eq!(plan_source(&run.output), "reserved");
    assert_vkms_showed_cenalloc_buffers(&run, "reserved", "640x480");
}

/// `downstream-device` naming nothing: exit non-zero, an error naming the device, no crash.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn gst_device_property_naming_nothing_fails_cleanly() {
    let node = cenalloc_vmtests::devices::video_node("vivid-001-vid-cap");
    let run = launch(&format!(
        "v4l2src device={} io-mode=dmabuf-import num-buffers=5 \
         ! video/x-raw,format=BGRx,width=640,height=480 \
         ! cenalloc downstream-device=no-such-display ! kmssink driver-name=vkms",
        node.display()
    ));
    assert!(!run.success, "the pipeline ran:\n{}", run.output);
    assert!(
        run.output.contains("ERROR") && run.output.contains("no-such-display"),
        "the error does not name the device:\n{}",
        run.output
    );
    for crash in ["panicked", "Segmentation fault", "CRITICAL"] {
        assert!(!run.output.contains(crash), "{crash} in:\n{}", run.output);
    }
}

/// vicodec's stateful decoder → kmssink through `cenalloc`: the decoder's capture queue
/// imports cenalloc's dma-bufs (`capture-io-mode=dmabuf-import`), which kmssink shows.
///
/// The stream is made first by GStreamer's own encoder, into a file, because the one
/// pipeline `videotestsrc ! v4l2fwhtenc ! v4l2fwhtdec ! ...` cannot run with GStreamer 1.22 and
/// this kernel's vicodec, with or without `cenalloc`: at 640x480 the encoder's capture pool
/// fails ("buffer size 1228844 is smaller then negotiated size 3686444"); RGB input gives the
/// stream `colorimetry=sRGB`, which the decoder's sink caps (bt709, bt601, ...) do not
/// include, so the decoder cannot link; I420 at 1280x720 crashes the guest kernel inside
/// vicodec's encoder. BGRx at 1280x720 encodes, and the decoder takes the file with its caps
/// set by a capsfilter.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn gst_decoder_to_kmssink_through_cenalloc() {
    let stream = "/tmp/cenalloc-gst-test.fwht";
    let encode = launch(&format!(
        "videotestsrc num-buffers=10 ! video/x-raw,format=BGRx,width=1280,height=720 \
         ! v4l2fwhtenc ! filesink location={stream}"
    ));
    assert!(encode.success, "encoding failed:\n{}", encode.output);
    let run = launch(&format!(
        "filesrc location={stream} \
         ! video/x-fwht,width=1280,height=720,framerate=30/1,colorimetry=bt709 \
         ! v4l2fwhtdec capture-io-mode=dmabuf-import ! cenalloc ! kmssink driver-name=vkms"
    ));
    assert!(run.success, "the pipeline failed:\n{}", run.output);
    assert!(
        run.output.contains("devices=(string)\"stateful-decoder"),
        "the decoder is not in the plan:\n{}",
        run.output
    );
    assert_eq!(plan_source(&run.output), "system");
    assert_vkms_showed_cenalloc_buffers(&run, "system", "1280x720");
}

/// A plan that cannot be made (vkms cannot scan out 8-bit grey, `R8`): a GStreamer error that
/// names the device and the constraint, exit non-zero, no crash.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn gst_constraint_conflict_is_a_clear_error() {
    let run = launch(
        "videotestsrc num-buffers=5 ! video/x-raw,format=GRAY8,width=640,height=480 \
         ! cenalloc downstream-device=vkms ! fakesink",
    );
    assert!(!run.success, "the pipeline ran:\n{}", run.output);
    let error = run
        .output
        .lines()
        .find(|l| l.contains("cenalloc: no buffer suits"))
        .unwrap_or_else(|| panic!("no plan error in:\n{}", run.output));
    assert!(
        error.contains("vkms"),
        "the error does not name vkms: {error}"
    );
    for crash in ["panicked", "Segmentation fault", "CRITICAL"] {
        assert!(!run.output.contains(crash), "{crash} in:\n{}", run.output);
    }
}

/// A resolution change mid-stream (vicodec's decoder, 1280x720 then 1920x1080): the element
/// plans anew for the new caps (a second pool of 1920x1080 buffers), the pipeline ends with
/// exit 0, and kmssink shows cenalloc's buffers of the new size. The buffers of the old plan
/// are plain GStreamer buffers holding their dma-buf, freed when downstream drops them.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn gst_decoder_resolution_change_plans_anew() {
    let mut stream = Vec::new();
    for (i, (size, pattern)) in [("1280x720", "smpte"), ("1920x1080", "ball")]
        .into_iter()
        .enumerate()
    {
        let (w, h) = size.split_once('x').expect("WxH");
        let part = format!("/tmp/cenalloc-gst-part{i}.fwht");
        let encode = launch(&format!(
            "videotestsrc num-buffers=4 pattern={pattern} \
             ! video/x-raw,format=BGRx,width={w},height={h} \
             ! v4l2fwhtenc ! filesink location={part}"
        ));
        assert!(encode.success, "encoding {size} failed:\n{}", encode.output);
        stream.extend(std::fs::read(&part).expect("read the encoded part"));
    }
    let path = "/tmp/cenalloc-gst-resize.fwht";
    std::fs::write(path, &stream).expect("write the stream");
    let run = launch(&format!(
        "filesrc location={path} \
         ! video/x-fwht,width=1280,height=720,framerate=30/1,colorimetry=bt709 \
         ! v4l2fwhtdec capture-io-mode=dmabuf-import ! cenalloc ! kmssink driver-name=vkms"
    ));
    assert!(run.success, "the pipeline failed:\n{}", run.output);
    let sizes: Vec<&str> = run
        .output
        .lines()
        .filter(|l| l.contains("cenalloc-plan"))
        .filter_map(|l| l.split_once("size=(guint64)"))
        .filter_map(|(_, rest)| rest.split(',').next())
        .collect();
    assert!(
        sizes.contains(&"3686400") && sizes.last() == Some(&"8294400"),
        "expected a 1280x720 plan, then a 1920x1080 one; plans' sizes: {sizes:?}"
    );
    assert!(
        run.on_vkms.iter().any(|b| b.name.ends_with("1920x1080")),
        "vkms never showed a 1920x1080 buffer"
    );
    for b in &run.on_vkms {
        assert!(
            b.name.starts_with("cenalloc ") && b.exporter == "system",
            "vkms showed a dma-buf that is not cenalloc's: {b:?}"
        );
    }
}
