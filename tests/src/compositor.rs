//! Running the sample compositor (examples/src/bin/compositor) with a client.

use std::process::Command;

/// Runs the compositor with `args` and the environment variables `env` (the Wayland socket in
/// [`runtime_dir`]); returns (success, stdout + stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(crate::program("compositor"))
        .args(args)
        .envs(env.iter().copied())
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .output()
        .expect("cannot start the compositor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// XDG_RUNTIME_DIR for the Wayland socket (the guest has /run/user/0).
pub fn runtime_dir() -> String {
    let dir = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/run/user/0".into());
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
    dir
}
