//! `cbreak run`: exit statuses, skipping, recovery, names, passthrough.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::util::{Env, Run, each_store, eventually};

#[test]
fn successful_run_is_silent_and_exits_zero() {
    let env = Env::new();
    let out = env
        .run(&["run", "-n", "ok", "--", "sh", "-c", "echo out"])
        .success()
        .stderr_empty();
    assert_eq!(out.stdout, "out\n");
}

#[test]
fn exit_status_passes_through_and_counts_as_a_failure() {
    let env = Env::new();
    env.run(&["run", "-n", "f", "--", "sh", "-c", "exit 3"])
        .code(3);
    let s = env.status("f");
    assert_eq!(
        (s["calls"].as_u64(), s["failures"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["consecutive_failures"], 1);
}

#[test]
fn death_by_signal_is_passed_on_as_the_same_death() {
    let env = Env::new();
    env.run(&["run", "-n", "k", "--", "sh", "-c", "kill -USR1 $$"])
        .killed_by(libc::SIGUSR1);
    assert_eq!(env.status("k")["failures"], 1);
    // A shell shows it as 128+N, as if cbreak were not there.
    let cbreak = crate::util::bin();
    let script = format!("'{cbreak}' run -n k -- sh -c 'kill -USR1 $$'; echo $?");
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("CBREAK_STATE_DIR", env.state())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "138\n");
}

#[test]
fn threshold_opens_and_skips_without_running_the_command() {
    each_store(
        "threshold_opens_and_skips_without_running_the_command",
        |env| {
            let args = [
                "run", "-n", "api", "-t", "3", "-r", "60s", "--", "sh", "-c", "exit 1",
            ];
            env.run(&args).code(1);
            env.run(&args).code(1);
            env.run(&args)
                .code(1)
                .stderr_has("breaker 'api' opened: 3 consecutive failures; skipping runs for 1m");
            let marker = env.path("ran");
            let touch = format!("touch {}", marker.display());
            env.run(&["run", "-n", "api", "--", "sh", "-c", &touch])
                .code(75)
                .stderr_has(
                    "skipped 'sh': breaker 'api' is open (3 consecutive failures); next probe in ",
                );
            assert!(!marker.exists(), "a skipped command must not run");
            let s = env.status("api");
            assert_eq!(s["state"], "open");
            assert_eq!(s["rejected"], 1);
            assert!(s["next_probe_at"].as_str().unwrap().ends_with('Z'));
        },
    );
}

#[test]
fn open_exit_code_and_quiet() {
    each_store("open_exit_code_and_quiet", |env| {
        env.run(&["trip", "--create", "q"]).success();
        env.run(&[
            "run",
            "-n",
            "q",
            "--open-exit-code",
            "0",
            "-q",
            "--",
            "false",
        ])
        .code(0)
        .stderr_empty();
    });
}

#[test]
fn probe_after_recovery_closes_on_success_and_reopens_on_failure() {
    each_store(
        "probe_after_recovery_closes_on_success_and_reopens_on_failure",
        |env| {
            let fail = ["run", "-n", "r", "-t", "1", "-r", "200ms", "--", "false"];
            env.run(&fail).code(1);
            assert_eq!(env.state_of("r"), "open");
            std::thread::sleep(Duration::from_millis(700));
            // The probe fails: open again, for a fresh period.
            env.run(&fail).code(1);
            assert_eq!(env.state_of("r"), "open");
            std::thread::sleep(Duration::from_millis(700));
            env.run(&["run", "-n", "r", "-t", "1", "-r", "200ms", "--", "true"])
                .success()
                .stderr_has("breaker 'r' closed: probe succeeded");
            let s = env.status("r");
            assert_eq!(
                (s["state"].as_str(), s["consecutive_failures"].as_u64()),
                (Some("closed"), Some(0))
            );
            let to: Vec<&str> = s["transitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["to"].as_str().unwrap())
                .collect();
            assert_eq!(to, ["open", "half_open", "open", "half_open", "closed"]);
        },
    );
}

#[test]
fn stdin_and_stdout_pass_through() {
    let env = Env::new();
    let mut child = env
        .command(&["run", "-n", "cat", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"line one\nline two\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line one\nline two\n");
    assert!(out.status.success());
}

#[test]
fn missing_and_unexecutable_commands_are_127_and_126_and_not_recorded() {
    let env = Env::new();
    env.run(&["run", "-n", "m", "--", "/nonexistent/program"])
        .code(127)
        .one_error_line()
        .stderr_has("cannot run '/nonexistent/program'");
    let script = env.path("noexec.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    env.run(&["run", "-n", "m", "--", script.to_str().unwrap()])
        .code(126);
    assert_eq!(env.status("m")["calls"], 0);
}

#[test]
fn usage_errors_exit_125_with_one_line() {
    let env = Env::new();
    env.run(&["run", "--treshold", "3", "--", "true"])
        .code(125)
        .one_error_line()
        .stderr_has("--threshold");
    env.run(&["run", "-t", "x", "--", "true"])
        .code(125)
        .one_error_line();
    env.run(&["run"]).code(125).one_error_line();
    env.run(&["frobnicate"]).code(125).one_error_line();
}

#[test]
fn invalid_names_are_refused_with_the_rule() {
    let env = Env::new();
    for bad in ["../escape", ".hidden", "a/b", "", &"x".repeat(65)] {
        env.run(&["run", "-n", bad, "--", "true"])
            .code(125)
            .one_error_line()
            .stderr_has("1 to 64 characters");
        env.run(&["trip", "--create", bad]).code(125);
    }
    assert!(!env.path("escape").exists());
}

#[test]
fn default_name_is_stable_and_depends_on_every_argument() {
    let env = Env::new();
    env.run(&["run", "--", "sh", "-c", "exit 0"]).success();
    env.run(&["run", "--", "sh", "-c", "exit 0"]).success();
    env.run(&["run", "--", "sh", "-c", "exit  0"]).success();
    let names = env.run(&["list"]).success().stdout;
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("sh-") && n.len() == 15),
        "{names:?}"
    );
    let counts: Vec<u64> = names
        .iter()
        .map(|n| env.status(n)["calls"].as_u64().unwrap())
        .collect();
    assert!(counts.contains(&2) && counts.contains(&1), "{counts:?}");
}

#[test]
fn trip_for_opens_then_probes() {
    each_store("trip_for_opens_then_probes", |env| {
        env.run(&["trip", "--create", "t", "--for", "1s"]).success();
        env.run(&["run", "-n", "t", "--", "true"]).code(75);
        assert!(eventually(Duration::from_secs(5), || env
            .run(&["run", "-n", "t", "--", "true"])
            .code
            == 0));
        assert_eq!(env.state_of("t"), "closed");
    });
}

#[test]
fn trip_without_duration_is_forced_open_until_reset() {
    each_store("trip_without_duration_is_forced_open_until_reset", |env| {
        env.run(&["trip", "--create", "fo"]).success();
        assert_eq!(env.state_of("fo"), "forced_open");
        env.run(&["run", "-n", "fo", "-r", "1ms", "--", "true"])
            .code(75)
            .stderr_has("forced open (tripped by hand); 'cbreak reset fo' closes it");
        env.run(&["reset", "fo"]).success();
        env.run(&["run", "-n", "fo", "--", "true"]).success();
        let s = env.status("fo");
        assert_eq!(
            (
                s["state"].as_str(),
                s["calls"].as_u64(),
                s["rejected"].as_u64()
            ),
            (Some("closed"), Some(1), Some(1))
        );
    });
}

#[test]
fn a_script_without_a_shebang_runs_with_sh() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let bin = env.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("old-cron-job");
    std::fs::write(&script, "echo \"ran with $1\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env
        .command(&["run", "-n", "old", "--", "old-cron-job", "x"])
        .env("PATH", path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran with x\n");
}

/// For cron, which mails any output: skips are silent, opening and
/// closing are still told.
#[test]
fn quiet_skips_is_silent_on_skips_but_tells_transitions() {
    let env = Env::new();
    let args = |cmd: &'static str| -> Vec<&'static str> {
        vec![
            "run",
            "-n",
            "c",
            "-t",
            "2",
            "-r",
            "300ms",
            "--quiet-skips",
            "--",
            "sh",
            "-c",
            cmd,
        ]
    };
    env.run(&args("exit 1")).code(1).stderr_empty();
    env.run(&args("exit 1"))
        .code(1)
        .one_error_line()
        .stderr_has("breaker 'c' opened");
    env.run(&args("exit 0")).code(75).stderr_empty();
    let out = env
        .command(&["run", "-n", "c", "--", "true"])
        .env("CBREAK_QUIET_SKIPS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(crate::util::eventually(Duration::from_secs(5), || {
        env.run(&["check", "c"]).code == 0
    }));
    env.run(&args("exit 0"))
        .success()
        .one_error_line()
        .stderr_has("breaker 'c' closed");
}

/// Issue 12's first-use errors, each as one line naming what is wrong,
/// what is allowed, and the subcommand's own help.
#[test]
fn usage_errors_name_the_argument_what_is_allowed_and_the_help() {
    let env = Env::new();
    let err = |args: &[&str]| env.run(args).code(125).one_error_line().stderr;
    let e = err(&["run", "-n", "api"]);
    assert!(
        e.contains("missing <COMMAND>") && e.contains("see 'cbreak run --help'"),
        "{e}"
    );
    let e = err(&["run", "--on-state-error", "maybe", "--", "true"]);
    assert!(
        e.contains("'maybe'") && e.contains("use one of run, skip, fail"),
        "{e}"
    );
    let e = err(&["run", "-t", "-1", "--", "true"]);
    assert!(
        !e.contains("use '-- -1'") && e.contains("-t needs a value"),
        "{e}"
    );
    let e = err(&["run", "-r", "1month", "--", "true"]);
    assert!(
        e.contains("ms, s, m, h or d") && !e.contains("years") && e.len() < 160,
        "{e}"
    );
    let e = err(&["reset"]);
    assert!(
        e.contains("missing <NAME>") && e.contains("'cbreak reset --help'"),
        "{e}"
    );
    // A bad value from a variable is blamed on the variable.
    let out = env
        .command(&["run", "-n", "x", "--", "true"])
        .env("CBREAK_THRESHOLD", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("invalid value 'many' in CBREAK_THRESHOLD"),
        "{e}"
    );
    let out = env
        .command(&["run", "-n", "x", "--", "true"])
        .env("CBREAK_QUIET", "maybe")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("in CBREAK_QUIET") && e.contains("yes or no"),
        "{e}"
    );
    // So is a check across options.
    let out = env
        .command(&["run", "-n", "x", "--", "true"])
        .env("CBREAK_RECOVERY", "0")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("--recovery 0") && e.ends_with("(from CBREAK_RECOVERY)\n"),
        "{e}"
    );
    // Plain `cbreak` prints usage, not an error.
    let out = env.run(&[]).success();
    assert!(out.stdout.contains("Usage: cbreak"), "{}", out.stdout);
    assert_eq!(out.stderr, "");
    // Options without a subcommand (a crontab line missing its `run`) are
    // a mistake a script must see.
    for args in [
        &["--state-dir", "/tmp"][..],
        &["--lock-timeout", "1s"][..],
        &["--store", "redis://u:s3cr3t@h"][..],
    ] {
        let out = env.run(args).code(125).one_error_line();
        assert!(
            out.stderr.contains("no subcommand") && out.stderr.contains("run, "),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{args:?}");
        assert!(!out.stderr.contains("s3cr3t"), "{}", out.stderr);
    }
}

/// Regression: `cbreak reset nightly-bakcup` exited 0 and made a new
/// breaker while the real one stayed open.
#[test]
fn changing_a_breaker_that_does_not_exist_creates_nothing_and_suggests_the_name() {
    let env = Env::new();
    env.run(&["run", "-n", "nightly-backup", "-t", "1", "--", "false"])
        .code(1);
    for verb in ["reset", "enable", "trip", "disable"] {
        env.run(&[verb, "nightly-bakcup"])
            .code(1)
            .one_error_line()
            .stderr_has("no breaker named 'nightly-bakcup'")
            .stderr_has("(did you mean 'nightly-backup'?)");
    }
    env.run(&["reset", "elsewhere"])
        .code(1)
        .stderr_has("no breaker named 'elsewhere'");
    assert!(!env.state().join("nightly-bakcup").exists());
    assert!(!env.state().join("elsewhere").exists());
    assert_eq!(env.state_of("nightly-backup"), "open");
    let list = env.run(&["list"]).success().stdout;
    assert_eq!(list, "nightly-backup\n");
    // On purpose: before a maintenance window, or metrics from the start.
    env.run(&["trip", "--create", "maint"]).success();
    assert_eq!(env.state_of("maint"), "forced_open");
    env.run(&["disable", "--create", "metrics-only"]).success();
    assert_eq!(env.status("metrics-only")["mode"], "disabled");
}

/// What cbreak was started with reaches the command as it would from
/// `timeout(1)`: a closed stdout stays closed (so `echo` fails, and the
/// failure counts), and an ignored SIGPIPE stays ignored. cbreak itself
/// works on `/dev/null` in their place and ignores SIGPIPE either way,
/// but its own output into a closed stdout fails.
#[test]
fn a_closed_stdout_and_an_ignored_sigpipe_reach_the_command() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let started_so = |args: &[&str], close_stdout: bool| {
        let mut cmd = env.command(args);
        // SAFETY: the closure runs in the child between fork and exec and
        // calls only close(2) and signal(2), which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if close_stdout {
                    libc::close(1);
                }
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                Ok(())
            });
        }
        Run::from(cmd.output().unwrap())
    };
    let out = started_so(
        &["run", "-n", "c", "-t", "1", "--", "/bin/echo", "hi"],
        true,
    )
    .code(1);
    assert!(out.stderr.contains("write error"), "{}", out.stderr);
    assert_eq!(env.state_of("c"), "open", "echo's failure counted");
    let out = started_so(
        &[
            "run",
            "-n",
            "p",
            "--",
            "sh",
            "-c",
            "grep SigIgn /proc/self/status",
        ],
        false,
    )
    .success();
    let mask = u64::from_str_radix(out.stdout.trim().trim_start_matches("SigIgn:").trim(), 16)
        .unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_ne!(
        mask & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE ignored: {mask:x}"
    );
    // cbreak's own output into a closed stdout fails as any program's
    // does (`ls >&-`), instead of vanishing into the /dev/null it keeps
    // there for itself.
    started_so(&["status"], true)
        .code(125)
        .one_error_line()
        .stderr_has("Bad file descriptor");
}

/// A variable whose value is not UTF-8 is named, as a bad value from a
/// variable is (clap names neither).
#[test]
fn a_variable_that_is_not_utf8_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let out = env
        .command(&["run", "-n", "x", "--", "true"])
        .env("CBREAK_THRESHOLD", std::ffi::OsStr::from_bytes(b"\xff"))
        .output()
        .unwrap();
    let run = Run::from(out).code(125).one_error_line();
    assert!(
        run.stderr.contains("CBREAK_THRESHOLD is not valid UTF-8"),
        "{}",
        run.stderr
    );
}

/// `sh -c '+x'` takes `+x` for an option of its own ("Illegal option",
/// exit 2): a fallback or a hook starting with `+` or `-` is a command.
#[test]
fn a_fallback_that_starts_like_an_option_runs_as_a_command() {
    let env = Env::new();
    env.run(&["trip", "fb", "--create"]).success();
    let out = env.run(&["run", "-n", "fb", "--fallback", "+x", "--", "true"]);
    out.code(127).stderr_has("+x");
    env.run(&["run", "-n", "fb", "--fallback", "-", "--", "true"])
        .code(127);
}
