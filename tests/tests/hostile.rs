//! The sample compositor against a hostile client (examples/src/bin/hostile-client, issue
//! 26): for a bounded time it sends random well-formed requests on wl_surface, wl_buffer,
//! wl_shm, linux-dmabuf and xdg-shell objects (bad sizes, formats, modifiers, offsets,
//! strides, plane indices, fds that are not dma-bufs, dma-bufs of its other connection,
//! destroyed objects used again, bad configure serials, destroy order violations) and
//! reconnects whenever the compositor ends a connection with a protocol error. The
//! compositor must survive it, keep presenting a well-behaved client beside it zero-copy and
//! be left with none of the hostile client's framebuffers, GEM handles or fds.
//!
//! Each run is seeded; a failure names its seed, and `hostile-client --seed N --trace`
//! replays the requests.

/// A binary of cenalloc-examples; panics if it was not built.
fn bin(name: &str) -> String {
    cenalloc_vmtests::program(name)
        .to_string_lossy()
        .into_owned()
}

/// Runs the compositor with `args` (RUST_LOG=warn); returns (success, stdout + stderr).
fn compositor(args: &[&str]) -> (bool, String) {
    cenalloc_vmtests::compositor::run(args, &[("RUST_LOG", "warn")])
}

/// A number that follows `after` in the hostile client's last summary line.
fn summary_number(out: &str, after: &str) -> u64 {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("hostile-client: summary:") || l.contains("hostile-client: so far:"))
        .unwrap_or_else(|| panic!("the hostile client printed no summary:\n{out}"));
    line.find(after)
        .and_then(|end| line[..end].split_whitespace().last()?.parse().ok())
        .unwrap_or_else(|| panic!("no \"N{after}\" in {line:?}"))
}

/// The checks every run shares: the compositor succeeded, nothing was left behind, and the
/// hostile client really did something (many requests, connections, protocol errors).
fn assert_survived(seed: u64, out: &str) {
    println!("{out}");
    assert!(
        out.contains(&format!("hostile-client: seed {seed}")),
        "seed {seed}: the hostile client did not start:\n{out}"
    );
    assert!(
        !out.contains("panicked"),
        "seed {seed}: something panicked:\n{out}"
    );
    assert!(
        out.contains("left behind by clients: 0 framebuffers, 0 GEM handles"),
        "seed {seed}: {out}"
    );
    assert!(
        !out.contains("were not all released"),
        "seed {seed}: fds grew:\n{out}"
    );
    let requests = summary_number(out, " requests (");
    let connections = summary_number(out, " connections");
    let errors = summary_number(out, " protocol errors [");
    assert!(
        requests >= 500 && connections >= 5 && errors >= 5,
        "seed {seed}: the hostile client did too little ({requests} requests, {connections} \
         connections, {errors} protocol errors):\n{out}"
    );
    assert!(
        out.contains(", 0 stalls"),
        "seed {seed}: the compositor stalled:\n{out}"
    );
}

/// The hostile client (which never shows a window) beside a well-behaved one whose 30
/// frames must all be scanned out zero-copy, proven frame by frame (`--verify`).
fn beside_a_verified_client(seed: u64) {
    let hostile = format!("{} --seed {seed} --seconds 12", bin("hostile-client"));
    let client = bin("client");
    let (ok, out) = compositor(&[
        "--verify", "30", "--also", &hostile, "--", &client, "--frames", "30",
    ]);
    assert!(ok, "seed {seed}: compositor failed:\n{out}");
    assert!(out.contains("30/30 frames zero-copy"), "seed {seed}: {out}");
    assert_survived(seed, &out);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn hostile_client_seed_1_beside_a_zero_copy_client() {
    beside_a_verified_client(1);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn hostile_client_seed_2_beside_a_zero_copy_client() {
    beside_a_verified_client(2);
}

/// `--map`: the hostile client also shows windows (acked configures, then any buffer,
/// dma-bufs of every odd layout included), so its buffers reach the renderer, the plane
/// assignment and the framebuffer exporter; the well-behaved client below them must still
/// finish, and nothing may be left behind. No `--verify`: the hostile windows cover it.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn hostile_client_seed_3_showing_windows() {
    let seed = 3;
    let hostile = format!("{} --seed {seed} --seconds 12 --map", bin("hostile-client"));
    let client = bin("client");
    let (ok, out) = compositor(&["--also", &hostile, "--", &client, "--frames", "30"]);
    assert!(ok, "seed {seed}: compositor failed:\n{out}");
    assert!(
        out.contains(&format!(
            "client `{client} --frames 30` exited: exit status: 0"
        )),
        "seed {seed}: {out}"
    );
    assert_survived(seed, &out);
}
