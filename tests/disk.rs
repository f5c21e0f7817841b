//! Full and read-only file systems, on a small tmpfs mounted for the test.
//! Mounting needs root (or the right capabilities); where it is refused the
//! tests print why and check nothing else, except in CI (`CI` set), where
//! that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::Env;

/// Says why a test cannot check anything here: a failure in CI (`CI` set;
/// `.ci/run` runs as root, which can mount), a printed skip elsewhere.
fn cannot(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("cannot run this test in CI: {why}");
    }
    println!("SKIPPED: {why}");
}

/// A tmpfs mounted at a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(env: &Env, size: &str) -> Option<Tmpfs> {
        let dir = env.path("mnt");
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                cannot(&format!(
                    "cannot mount a tmpfs here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                None
            }
            Err(e) => {
                cannot(&format!("cannot run mount: {e}"));
                None
            }
        }
    }

    fn remount_ro(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn fill(&self) {
        // Write until the file system is full.
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4096"])
            .arg(format!("of={}", self.dir.join("filler").display()))
            .output();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn run_in(env: &Env, state: &Path, args: &[&str]) -> crate::util::Run {
    crate::util::Run::from(
        env.command(args)
            .env("CBREAK_STATE_DIR", state)
            .output()
            .unwrap(),
    )
}

#[test]
fn full_disk_fails_open_for_new_records_and_existing_ones_keep_working() {
    let env = Env::new();
    let Some(fs) = Tmpfs::mount(&env, "256k") else {
        return;
    };
    let state = fs.dir.join("state");
    run_in(&env, &state, &["run", "-n", "old", "-t", "2", "--", "true"]).success();
    fs.fill();
    run_in(
        &env,
        &state,
        &["run", "-n", "new", "--", "sh", "-c", "exit 3"],
    )
    .code(3)
    .stderr_has("breaker 'new' unavailable")
    .stderr_has("running the command anyway");
    // The preallocated record takes updates with the disk full.
    run_in(
        &env,
        &state,
        &["run", "-n", "old", "-t", "2", "--", "false"],
    )
    .code(1)
    .stderr_empty();
    run_in(
        &env,
        &state,
        &["run", "-n", "old", "-t", "2", "--", "false"],
    )
    .code(1)
    .stderr_has("opened");
    let out = run_in(&env, &state, &["status", "old", "--json"]).success();
    let s: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (s["calls"].as_u64(), s["state"].as_str()),
        (Some(3), Some("open"))
    );
    assert!(!state.join("new").exists(), "no empty record left behind");
}

#[test]
fn read_only_file_system_still_runs_the_command_and_reads_work() {
    let env = Env::new();
    let Some(fs) = Tmpfs::mount(&env, "256k") else {
        return;
    };
    let state = fs.dir.join("state");
    run_in(&env, &state, &["run", "-n", "ro", "--", "true"]).success();
    fs.remount_ro();
    run_in(
        &env,
        &state,
        &["run", "-n", "ro", "--", "sh", "-c", "exit 4"],
    )
    .code(4)
    .stderr_has("Read-only file system")
    .stderr_has("running the command anyway");
    run_in(&env, &state, &["status", "ro"]).success();
    run_in(
        &env,
        &state,
        &["run", "-n", "ro", "--on-state-error", "skip", "--", "true"],
    )
    .code(75);
}

/// A breaker that can be read as open must skip even where its state
/// cannot be written (a read-only mount): `check` said 75 while `run`
/// failed to count its rejection and ran the command against the dead
/// service.
#[test]
fn an_open_breaker_on_a_read_only_file_system_still_skips() {
    let env = Env::new();
    let Some(fs) = Tmpfs::mount(&env, "256k") else {
        return;
    };
    let state = fs.dir.join("state");
    run_in(
        &env,
        &state,
        &["run", "-n", "down", "-t", "1", "-r", "1h", "--", "false"],
    )
    .code(1)
    .stderr_has("opened");
    fs.remount_ro();
    let ran = env.path("ran");
    let cmd = format!("touch {}", ran.display());
    run_in(
        &env,
        &state,
        &[
            "run", "-n", "down", "-t", "1", "-r", "1h", "--", "sh", "-c", &cmd,
        ],
    )
    .code(75)
    .stderr_has("skipped 'sh': breaker 'down' rejects calls, but the skip could not be counted")
    .stderr_has("Read-only file system")
    .one_error_line();
    assert!(!ran.exists(), "the command ran against an open breaker");
    // A warning about the state, which --quiet does not hide.
    run_in(&env, &state, &["run", "-n", "down", "-q", "--", "true"])
        .code(75)
        .stderr_has("the skip could not be counted");
    run_in(&env, &state, &["check", "down"]).code(75);
    // A fallback still runs in its place.
    run_in(
        &env,
        &state,
        &["run", "-n", "down", "--fallback", "exit 9", "--", "true"],
    )
    .code(9);
}
