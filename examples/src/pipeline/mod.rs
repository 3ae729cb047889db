//! Zero-copy pipelines from a V4L2 producer (camera, decoder) to a KMS display, shared by the
//! `camera-to-display`, `decode-to-display` and `pipeline-bench` programs.
//!
//! [`devices`] finds the camera and display by name or driver; [`screen`] shows framebuffers
//! with atomic KMS at a chosen mode; [`verify`] reads displayed frames back through the vkms
//! writeback connector and compares them; [`frames`] plans and allocates the frames a producer
//! and the display share; [`camera`] runs the DQBUF → flip → QBUF loop;
//! [`stateless`] decodes through the request API instead; [`chain`] puts a memory-to-memory converter between camera and display;
//! [`snapshot`] writes read-back frames as PNG; [`args`] parses the common options.

pub mod args;
pub mod camera;
pub mod chain;
pub mod copy;
pub mod decode;
pub mod devices;
pub mod error;
pub mod frames;
pub mod resources;
pub mod screen;
pub mod snapshot;
pub mod stateless;
pub mod verify;

pub use error::PipelineError;

/// The decision cenalloc made for a pool, for printing: source, then every reason, one per
/// line.
pub fn plan_text(plan: &cenalloc::Plan) -> String {
    let mut text = format!(
        "plan: source {:?} {} ({} bytes per buffer, modifier {})",
        plan.source().kind,
        plan.source().name,
        plan.size(),
        plan.modifier()
    );
    for reason in plan.reasons() {
        text.push_str("\n  - ");
        text.push_str(reason);
    }
    text
}
