//! What a packager relies on: the licence files Cargo.toml names, and a
//! changelog that starts at the version being built.

use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn licence_files_match_the_manifest() {
    let manifest = read("Cargo.toml");
    assert!(
        manifest.contains("license = \"MIT OR Apache-2.0\""),
        "Cargo.toml's licence changed: update LICENSE-* and this test"
    );
    let mit = read("LICENSE-MIT");
    assert!(mit.starts_with("MIT License"), "LICENSE-MIT: {mit:.40}");
    assert!(mit.contains("Permission is hereby granted, free of charge"));
    let apache = read("LICENSE-APACHE");
    assert!(apache.contains("Apache License"));
    assert!(apache.contains("Version 2.0, January 2004"));
    assert!(apache.contains("END OF TERMS AND CONDITIONS"));
}

#[test]
fn changelog_starts_at_the_current_version() {
    let log = read("CHANGELOG.md");
    assert!(log.contains("keepachangelog.com"), "say the format");
    let versions: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter(|h| !h.starts_with("Unreleased"))
        .collect();
    let newest = versions.first().expect("a version heading");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        newest.split_whitespace().next() == Some(version),
        "CHANGELOG.md's newest version is {newest:?}, Cargo.toml's {version}"
    );
}
