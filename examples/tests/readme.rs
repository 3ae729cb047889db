//! The README's examples are the programs the guest runs, letter for letter: the Rust one is
//! `readme-example`, the C one `examples/c/readme-example.c` (built by `cargo xtask capi`'s
//! C programs step).

#[test]
fn the_readme_example_is_the_readme_example_program() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let start = readme
        .find("```rust,no_run\n")
        .expect("a rust block in the README")
        + 15;
    let end = start + readme[start..].find("```\n").expect("the block ends");
    let program = std::fs::read_to_string(root.join("src/bin/readme-example.rs")).unwrap();
    let body = program
        .split_once("\n\n")
        .map(|(_, body)| body)
        .expect("the program starts with its doc comment");
    assert_eq!(&readme[start..end], body);
}

#[test]
fn the_readme_c_example_is_examples_c_readme_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let start = readme.find("```c\n").expect("a C block in the README") + 5;
    let end = start + readme[start..].find("```\n").expect("the block ends");
    let program = std::fs::read_to_string(root.join("c/readme-example.c")).unwrap();
    assert_eq!(readme[start..end], program);
}
