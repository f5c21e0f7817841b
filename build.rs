//! Lays out the code that a skipped and a wrapped `cbreak run` execute
//! together, at the start of the static x86-64 build's code
//! (`link/hot-text.ld`, written by `scripts/hot-text`): a process that
//! lives half a millisecond pays a page fault for every 64 KiB window of
//! code it touches, and a skip's few hundred functions were spread over
//! twenty of them (BENCHMARKS.md, "Code layout").
//!
//! Only the static x86-64 glibc build (`cargo static`), whose link CI
//! checks: other builds link as they always did.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/hot-text.ld");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let static_x86_64 = var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("CARGO_CFG_TARGET_FEATURE")
            .split(',')
            .any(|f| f == "crt-static");
    if static_x86_64 {
        let script = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/hot-text.ld");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
