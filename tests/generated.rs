//! Completions and man pages are generated from the clap definition and
//! committed; this test fails when they are stale. Run it with
//! `CBREAK_REGENERATE=1` to rewrite them instead.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

fn expected() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let mut cmd = cbreak::cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "cbreak", &mut buf);
        let name = match shell {
            Shell::Bash => "cbreak.bash",
            Shell::Zsh => "_cbreak",
            Shell::Fish => "cbreak.fish",
            Shell::Elvish => "cbreak.elv",
            _ => "_cbreak.ps1",
        };
        files.push((Path::new("completions").join(name), buf));
    }
    let cmd = cbreak::cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf).unwrap();
    files.push((PathBuf::from("man/cbreak.1"), buf));
    for sub in cmd.get_subcommands() {
        let name = format!("cbreak-{}", sub.get_name());
        // clap takes a 'static name unless its "string" feature is on.
        let page = sub.clone().name(&*Box::leak(name.clone().into_boxed_str()));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf).unwrap();
        files.push((Path::new("man").join(format!("{name}.1")), buf));
    }
    files
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let regenerate = std::env::var_os("CBREAK_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (rel, content) in expected() {
        let path = root.join(&rel);
        if regenerate {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&content[..]) {
            stale.push(rel.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `CBREAK_REGENERATE=1 cargo test --test tests generated` and commit them"
    );
}
