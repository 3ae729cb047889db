//! Gives the shared library the soname cargo-c would: `libcenalloc.so.MAJOR.MINOR` for a 0.x
//! version (where a minor release may break the ABI), `libcenalloc.so.MAJOR` from 1.0 on.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
    let soversion = if major == "0" {
        format!("{major}.{minor}")
    } else {
        major
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcenalloc.so.{soversion}");
}
