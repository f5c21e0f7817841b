//! Completions and man pages are generated from the clap definition (plus
//! the sections written in `src/cli/man.rs` and `src/cli/generate.rs`) and
//! committed; this test fails when they are stale. Run it with
//! `CBREAK_REGENERATE=1` to rewrite them instead. The other tests here
//! check what the pages say.

use std::path::{Path, PathBuf};

use cbreak::cli::generate::{SHELLS, completion_file, completions};
use cbreak::cli::man;

use crate::util::Env;

fn expected() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for shell in SHELLS {
        files.push((
            Path::new("completions").join(completion_file(shell)),
            completions(shell).into_bytes(),
        ));
    }
    for (name, page) in man::pages() {
        files.push((
            Path::new("man").join(format!("{name}.1")),
            page.into_bytes(),
        ));
    }
    files
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let regenerate = std::env::var_os("CBREAK_REGENERATE").is_some();
    let mut stale = Vec::new();
    let expected = expected();
    for (rel, content) in &expected {
        let path = root.join(rel);
        if regenerate {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&content[..]) {
            stale.push(rel.display().to_string());
        }
    }
    // A page or script left behind by a removed subcommand is stale too.
    for dir in ["man", "completions"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let rel = Path::new(dir).join(entry.unwrap().file_name());
            if !expected.iter().any(|(p, _)| *p == rel) {
                if regenerate {
                    std::fs::remove_file(root.join(&rel)).unwrap();
                } else {
                    stale.push(format!("{} (no longer generated)", rel.display()));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `CBREAK_REGENERATE=1 cargo test --test tests generated` and commit them"
    );
}

#[test]
fn the_binary_prints_the_committed_files() {
    let env = Env::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (args, file) in [
        (&["completions", "bash"][..], "completions/cbreak.bash"),
        (&["completions", "powershell"], "completions/_cbreak.ps1"),
        (&["man"], "man/cbreak.1"),
        (&["man", "run"], "man/cbreak-run.1"),
        (&["man", "cbreak-check"], "man/cbreak-check.1"),
    ] {
        let out = env.run(args).success().stderr_empty();
        let committed = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            out.stdout == committed,
            "cbreak {args:?} differs from {file}"
        );
    }
    let list = env.run(&["man", "--list"]).success().stdout;
    assert!(list.starts_with("cbreak\ncbreak-run\n"), "{list}");
    env.run(&["man", "nosuch"])
        .code(125)
        .one_error_line()
        .stderr_has("--list");
    env.run(&["completions", "tcsh"]).code(125).one_error_line();
}

#[test]
fn man_pages_have_the_sections_of_a_unix_tool() {
    let pages = man::pages();
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    for (name, page) in &pages {
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "ENVIRONMENT",
            "EXIT STATUS",
            "FILES",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            assert!(
                page.contains(&format!("\n.SH {section}\n")),
                "{name} lacks {section}"
            );
        }
        // Every page a page refers to exists; no cbreak-help(1).
        for (i, _) in page.match_indices("(1)") {
            let before = &page[..i];
            let word = before
                .rsplit(|c: char| c.is_whitespace() || c == '%' || c == 'B')
                .next()
                .unwrap()
                .trim_end_matches("\\fR")
                .replace("\\-", "-");
            if word.starts_with("cbreak") {
                assert!(names.contains(&word.as_str()), "{name} refers to {word}(1)");
            }
        }
        assert!(
            !page.contains("cbreak\\-help"),
            "{name} mentions cbreak-help"
        );
        assert!(page.contains("\\fBtimeout\\fR(1)") && page.contains("\\fBflock\\fR(1)"));
    }
}

#[test]
fn man_pages_name_every_variable_and_exit_status() {
    let run = man::page_named("run").unwrap();
    assert!(
        run.contains(
            ".SH SYNOPSIS\n\\fBcbreak run\\fR [\\fIOPTIONS\\fR] [\\fB\\-\\-\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...\n"
        ),
        "{run}"
    );
    let env_section = |page: &str| {
        let start = page.find(".SH ENVIRONMENT").unwrap();
        let end = page.find(".SH EXIT STATUS").unwrap();
        page[start..end].to_string()
    };
    // Every variable the clap definition reads, on the page of each
    // subcommand that reads it, in its ENVIRONMENT section.
    let mut cmd = cbreak::cli::command();
    cmd.build();
    let mut count = 0;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let page = man::page_named(sub.get_name()).unwrap();
        let environment = env_section(&page);
        for arg in sub.get_arguments() {
            if let Some(var) = arg.get_env() {
                let var = var.to_str().unwrap();
                assert!(
                    environment.contains(&format!("\\fB{var}\\fR")),
                    "cbreak-{} lacks {var}",
                    sub.get_name()
                );
                count += 1;
            }
        }
    }
    assert!(count > 30, "{count}");
    let run_env = env_section(&run);
    for var in [
        "CBREAK_STATE_DIR",
        "CBREAK_NAME",
        "CBREAK_REASON",
        "XDG_STATE_HOME",
    ] {
        assert!(run_env.contains(var), "{var}");
    }
    let status_env = env_section(&man::page_named("status").unwrap());
    for var in ["NO_COLOR", "CLICOLOR_FORCE", "CLICOLOR", "TERM"] {
        assert!(status_env.contains(&format!("\\fB{var}\\fR")), "{var}");
    }
    for code in ["75", "124", "125", "126", "127", "128+N"] {
        assert!(run.contains(&format!(".TP\n\\fB{code}\\fR\n")), "{code}");
    }
}

#[test]
fn man_renders_every_page_without_warnings_when_installed() {
    let Ok(probe) = std::process::Command::new("man").arg("--version").output() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "man is not installed; .ci/run installs it"
        );
        println!(
            "SKIPPED man_renders_every_page_without_warnings_when_installed: man is not installed (.ci/run installs it)"
        );
        return;
    };
    assert!(probe.status.success());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, _) in man::pages() {
        let out = std::process::Command::new("man")
            .args(["--warnings=w", "-l"])
            .arg(root.join("man").join(format!("{name}.1")))
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{name}: {stderr}");
        // Bold on a pipe is overstruck: "E\x08E".
        let mut text = String::new();
        for c in String::from_utf8_lossy(&out.stdout).chars() {
            if c == '\x08' {
                text.pop();
            } else {
                text.push(c);
            }
        }
        assert!(text.contains("EXIT STATUS"), "{name}: {text}");
    }
}
