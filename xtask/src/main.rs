//! cenalloc's developer tasks. Run as `cargo xtask <task>`:
//!
//! - `setup`: install missing Debian packages and build (or reuse) the guest kernel.
//! - `vm [--timeout S] [--no-gpu] [--append ARGS] -- CMD...`: run CMD in a QEMU guest with real
//!   DRM, V4L2 and dma-heap devices; exit with CMD's status.
//! - `test`: host tests, then the device tests inside the guest; prints `N passed, N failed`.
//! - `demo`: the main job: boot the guest and show what cenalloc sees and decides.
//! - `bench`: benchmarks in the guest; table and JSON in `target/bench/`.
//! - `fuzz [--seconds N] [TARGET...]`: libFuzzer (cargo-fuzz) on the targets in `fuzz/`, N
//!   seconds each; a crash fails, its input is kept in `fuzz/artifacts/<target>/`.
//! - `capi [--release] [--prefix DIR] [--destdir DIR] [--update-header]`: build libcenalloc
//!   (library, header, pkg-config) into `target/capi/`, and install it into a prefix.

mod against;
mod bench;
mod capi;
mod counts;
mod demo;
mod disk;
mod fuzz;
mod kernel;
mod packages;
mod process;
mod test;
mod vm;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <setup|vm|test|demo|bench>\n\
         \n  setup                      install packages, build/reuse the guest kernel\
         \n  vm [--timeout S] [--no-gpu] [--append ARGS] -- CMD...\
         \n                             run CMD in the guest, exit with its status\
         \n  test                       host tests + guest device tests\
         \n  demo                       boot the guest and show cenalloc at work\
         \n  bench                      benchmarks in the guest (target/bench/)\
         \n  fuzz [--seconds N] [TARGET...]\
         \n                             libFuzzer on fuzz/ targets, N s each (default 60)\
         \n  capi [--release] [--prefix DIR] [--destdir DIR] [--update-header]\
         \n                             build libcenalloc into target/capi/, install it"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        return usage();
    };
    let rest = &args[1..];
    if matches!(task.as_str(), "test" | "demo" | "bench") {
        disk::warn_if_low(
            &workspace_root().join("target"),
            WORKSPACE_BUILD_BYTES,
            "a clean build of the workspace",
        );
    }
    let result = match task.as_str() {
        "setup" => kernel::setup().map(|_| 0),
        "vm" => vm::main(rest),
        "test" => test::main(rest),
        "demo" => demo::main(rest),
        "bench" => bench::main(rest),
        "fuzz" => fuzz::main(rest),
        "capi" => capi::main(rest),
        "-h" | "--help" | "help" => return usage(),
        other => {
            eprintln!("xtask: unknown task {other:?}");
            return usage();
        }
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Errors of xtask are messages for a person.
pub type Result<T> = std::result::Result<T, String>;

/// Disk a clean build of every target `test`, `demo` and `bench` use takes (measured 1.5 GB
/// for the debug build, with room for the release build the benchmark adds).
const WORKSPACE_BUILD_BYTES: u64 = 3 << 30;

/// Optional features every build of the examples enables (one feature set, so nothing is
/// built twice): the compositor's libseat session, which a guest test runs under seatd.
pub const EXAMPLE_FEATURES: &str = "cenalloc-examples/libseat";

/// Builds every program of the workspace (debug), examples with [`EXAMPLE_FEATURES`], and
/// every library, so the GStreamer plugin `libgstcenalloc.so` is there for the guest tests.
pub fn build_programs() -> Result<()> {
    process::run(
        std::process::Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args([
                "build",
                "--workspace",
                "--bins",
                "--lib",
                "--features",
                EXAMPLE_FEATURES,
            ]),
    )
}

/// The workspace root (parent of xtask/).
pub fn workspace_root() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
