//! The example of the README, as a program (`readme-example [DISPLAY_NODE [CAMERA_NODE]]`);
//! a test keeps the two identical.

use cenalloc::{Allocator, BufferRequest, Fourcc, Importer, Usage};
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A display (DRM node) and a camera (V4L2 node): in the test guest, vkms and vivid-000.
    let mut nodes = std::env::args().skip(1);
    let display_node = nodes.next().unwrap_or_else(|| "/dev/dri/card1".into());
    let camera_node = nodes.next().unwrap_or_else(|| "/dev/video4".into());
    let display: Arc<dyn Importer> = Arc::new(cenalloc_drm::DrmDevice::open(&display_node)?);
    let camera: Arc<dyn Importer> = Arc::new(cenalloc_v4l2::V4l2Importer::new(
        Arc::new(cenalloc_v4l2::Device::open(&camera_node)?),
        cenalloc_v4l2::Direction::Capture,
    ));
    let devices = [display, camera];
    let usage = Usage::SCANOUT | Usage::CAMERA_WRITE;
    let request = BufferRequest::image(640, 480, Fourcc::Xrgb8888, usage);

    let allocator = Allocator::new();
    // Decide and explain; nothing is allocated yet.
    let plan = allocator.plan(&request, &devices)?;
    println!("source {}: {} bytes", plan.source().name, plan.size());
    for reason in plan.reasons() {
        println!("  - {reason}");
    }
    // Allocate once and import into both devices.
    let shared = allocator.allocate(&plan)?;
    if let Some(import) = shared.import_of::<cenalloc_drm::DrmImport>() {
        println!("display framebuffer: {:?}", import.framebuffer());
    }
    Ok(())
}
