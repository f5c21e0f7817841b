//! Signals: forwarded to the command, passed on to the caller, and a
//! cancelled call is not a failure.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::time::Duration;

use crate::util::{Env, bin, eventually};

/// `bash -c SCRIPT` in a process group of its own, with `$CBREAK` the
/// binary under test and this state directory.
fn bash(env: &Env, script: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", script])
        .env("CBREAK", bin())
        .env("CBREAK_STATE_DIR", env.state())
        .current_dir(env.path(""))
        .process_group(0);
    cmd
}

#[test]
fn sigterm_to_cbreak_reaches_the_command_and_cancels_the_call() {
    let env = Env::new();
    let ready = env.path("ready");
    let got = env.path("got");
    let script = format!(
        "trap 'echo term > {}; exit 143' TERM; touch {}; while :; do sleep 0.05; done",
        got.display(),
        ready.display()
    );
    let child = env.spawn(&["run", "-n", "sig", "-t", "1", "--", "sh", "-c", &script]);
    assert!(eventually(Duration::from_secs(10), || ready.exists()));
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGTERM),
        "cbreak dies of the SIGTERM that stopped it: {:?}",
        out.status
    );
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "term\n");
    let s = env.status("sig");
    assert_eq!(
        (s["cancelled"].as_u64(), s["failures"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        s["state"], "closed",
        "a cancelled call does not open a threshold-1 breaker"
    );
}

#[test]
fn cancelled_probe_gives_the_slot_back() {
    let env = Env::new();
    env.run(&["trip", "--create", "cp", "--for", "100ms"])
        .success();
    std::thread::sleep(Duration::from_millis(400));
    let ready = env.path("ready");
    let script = format!("touch {}; exec sleep 30", ready.display());
    let child = env.spawn(&["run", "-n", "cp", "--", "sh", "-c", &script]);
    assert!(eventually(Duration::from_secs(10), || ready.exists()));
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGINT));
    let s = env.status("cp");
    assert_eq!(
        (s["state"].as_str(), s["probe_in_flight"].as_bool()),
        (Some("half_open"), Some(false))
    );
    env.run(&["run", "-n", "cp", "--", "true"]).success();
    assert_eq!(env.state_of("cp"), "closed");
}

#[test]
fn sigint_to_the_process_group_stops_a_shell_loop() {
    let env = Env::new();
    let script = r#"for i in 1 2 3; do
        echo $i >> log
        "$CBREAK" run -n loop -- sh -c 'touch ready; exec sleep 5'
    done"#;
    let mut shell = bash(&env, script).spawn().unwrap();
    let ready = env.path("ready");
    assert!(eventually(Duration::from_secs(10), || ready.exists()));
    let group = i32::try_from(shell.id()).unwrap();
    // SAFETY: kill(2) with plain integers; the group is the shell's own.
    assert_eq!(unsafe { libc::kill(-group, libc::SIGINT) }, 0);
    let status = shell.wait().unwrap();
    assert_eq!(
        std::fs::read_to_string(env.path("log")).unwrap(),
        "1\n",
        "the loop stopped after the first iteration"
    );
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    assert_eq!(env.status("loop")["cancelled"], 1);
}

#[test]
fn sigpipe_is_141_for_ignore_codes() {
    let env = Env::new();
    let out = bash(
        &env,
        r#""$CBREAK" run -n p --ignore-codes 141 -- yes | head -1; echo "${PIPESTATUS[0]}""#,
    )
    .output()
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "y\n141\n");
    let s = env.status("p");
    assert_eq!(
        (s["ignored"].as_u64(), s["failures"].as_u64()),
        (Some(1), Some(0))
    );
}

#[test]
fn a_signal_ignored_at_start_stays_ignored() {
    let env = Env::new();
    // As under nohup: SIGHUP ignored when cbreak starts.
    let script =
        r#"trap '' HUP; exec "$CBREAK" run -n h -- sh -c 'touch ready; sleep 1; echo survived'"#;
    let child = bash(&env, script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || env
        .path("ready")
        .exists()));
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with plain integers, to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "survived\n");
    let s = env.status("h");
    assert_eq!(
        (s["successes"].as_u64(), s["cancelled"].as_u64()),
        (Some(1), Some(0))
    );
}

#[test]
fn sigterm_during_a_slow_hook_ends_cbreak() {
    let env = Env::new();
    let hook_ready = env.path("hook-ready");
    let hook = format!(
        "exec >/dev/null 2>&1; touch {}; sleep 5",
        hook_ready.display()
    );
    let child = env.spawn(&[
        "run",
        "-n",
        "hk",
        "-t",
        "1",
        "--on-open",
        &hook,
        "--",
        "false",
    ]);
    assert!(eventually(Duration::from_secs(10), || hook_ready.exists()));
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with plain integers, to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGTERM),
        "the handlers are gone once the command ended: {:?}",
        out.status
    );
    assert_eq!(env.state_of("hk"), "open", "the outcome was recorded first");
}

#[test]
fn a_stopped_command_is_woken_to_die_at_the_timeout() {
    let env = Env::new();
    let started = std::time::Instant::now();
    env.run(&[
        "run",
        "-n",
        "stop",
        "--timeout",
        "1s",
        "--kill-after",
        "10s",
        "--",
        "sh",
        "-c",
        "kill -STOP $$",
    ])
    .code(124);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "SIGCONT follows the SIGTERM, so the command need not wait for the SIGKILL 10s later: {took:?}"
    );
}

#[test]
fn the_timeout_reaches_what_the_command_started() {
    let env = Env::new();
    let pids = env.path("pids");
    let script = format!("sleep 30 & echo $! > {}; sleep 30; wait", pids.display());
    env.run(&[
        "run",
        "-n",
        "tree",
        "--timeout",
        "300ms",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .code(124);
    let pid: i32 = std::fs::read_to_string(&pids)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    assert!(
        eventually(Duration::from_secs(5), || !alive()),
        "the background sleep was killed with the command"
    );
}

/// Whether process `pid` is running (not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn signal_chooses_what_the_timeout_sends() {
    let env = Env::new();
    let got = env.path("got");
    let script = format!(
        "trap 'echo int > {}; exit 3' INT; while :; do sleep 0.05; done",
        got.display()
    );
    env.run(&[
        "run",
        "-n",
        "s",
        "--timeout",
        "300ms",
        "-s",
        "INT",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .code(124)
    .stderr_has("was killed");
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "int\n");
    assert_eq!(env.status("s")["timeouts"], 1);
}

#[test]
fn preserve_status_exits_with_the_commands_status_at_a_timeout() {
    let env = Env::new();
    env.run(&[
        "run",
        "-n",
        "p",
        "--timeout",
        "300ms",
        "--preserve-status",
        "--",
        "sh",
        "-c",
        "trap 'exit 9' TERM; sleep 30 & wait",
    ])
    .code(9);
    // SIGKILL cannot be sent to the group without cbreak: it is sent to
    // every other member, and cbreak lives to record the timeout.
    env.run(&[
        "run",
        "-n",
        "p",
        "--timeout",
        "300ms",
        "-s",
        "KILL",
        "--preserve-status",
        "--",
        "sleep",
        "30",
    ])
    .code(137);
    env.run(&[
        "run",
        "-n",
        "p",
        "--timeout",
        "300ms",
        "-s",
        "KILL",
        "--",
        "sleep",
        "30",
    ])
    .code(124);
    assert_eq!(env.status("p")["timeouts"], 3);
}

#[test]
fn foreground_kills_only_the_command_at_the_timeout() {
    let env = Env::new();
    let pids = env.path("pids");
    let script = format!(
        "exec >/dev/null 2>&1; sleep 30 & echo $! > {}; exec sleep 30",
        pids.display()
    );
    env.run(&[
        "run",
        "-n",
        "fg",
        "--timeout",
        "300ms",
        "--foreground",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .code(124);
    let pid: i32 = std::fs::read_to_string(&pids)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let survived = alive(pid);
    // SAFETY: kill(2) with plain integers: the test's own leftover.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(
        survived,
        "--foreground kills the command, not what it started"
    );
}

#[test]
fn foreground_lets_sigint_to_a_scripts_group_stop_its_loop() {
    let env = Env::new();
    let script = r#"for i in 1 2 3; do
        echo $i >> log
        "$CBREAK" run -n loop --timeout 20s --foreground -- sh -c 'touch ready; exec sleep 5'
    done"#;
    let mut shell = bash(&env, script).spawn().unwrap();
    assert!(eventually(Duration::from_secs(10), || env
        .path("ready")
        .exists()));
    let group = i32::try_from(shell.id()).unwrap();
    // SAFETY: kill(2) with plain integers; the group is the shell's own.
    assert_eq!(unsafe { libc::kill(-group, libc::SIGINT) }, 0);
    let status = shell.wait().unwrap();
    assert_eq!(std::fs::read_to_string(env.path("log")).unwrap(), "1\n");
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
}

#[test]
fn the_command_gets_an_empty_signal_mask_and_default_tty_signals() {
    let env = Env::new();
    let out = env
        .run(&[
            "run",
            "-n",
            "mask",
            "--timeout",
            "5s",
            "--",
            "cat",
            "/proc/self/status",
        ])
        .success();
    let field = |name: &str| {
        let line = out.stdout.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
    };
    let tty = 1 << (libc::SIGTTIN - 1) | 1 << (libc::SIGTTOU - 1);
    assert_eq!(field("SigBlk:"), 0, "no signal is blocked in the command");
    assert_eq!(
        field("SigIgn:") & tty,
        0,
        "SIGTTIN and SIGTTOU are not ignored"
    );
}

/// A hook cannot outlive cbreak: a SIGTERM that ends cbreak while a hook
/// runs goes on to the hook's group.
#[test]
fn sigterm_during_a_hook_ends_the_hook_too() {
    let env = Env::new();
    let marker = env.path("hook-alive");
    let hook = format!("touch {}; exec sleep 37.5", marker.display());
    let child = env
        .command(&[
            "run",
            "-n",
            "hk",
            "-t",
            "1",
            "--hook-timeout",
            "60s",
            "--on-open",
            &hook,
            "--",
            "false",
        ])
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || marker.exists()),
        "the hook never started"
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");
    assert!(
        eventually(Duration::from_secs(5), || !crate::util::process_alive(
            "sleep 37.5"
        )),
        "the hook outlived cbreak"
    );
}

/// The state letter of process `pid` in /proc (`T` when stopped).
fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// `timeout(1)` follows a signal it passes on with SIGCONT (coreutils
/// `src/timeout.c`, `cleanup`): a stopped command must run to die of it.
/// Without, cbreak forwarded the SIGTERM and waited for ever.
#[test]
fn sigterm_to_cbreak_wakes_a_stopped_command_to_die_of_it() {
    for timeout in [None, Some("30s")] {
        let env = Env::new();
        let pid_file = env.path("pid");
        let script = format!("echo $$ > {}; kill -STOP $$", pid_file.display());
        let mut args = vec!["run", "-n", "stopped"];
        if let Some(t) = timeout {
            args.extend(["--timeout", t]);
        }
        args.extend(["--", "sh", "-c", &script]);
        // As `setsid cbreak ... &`: no terminal, a group of its own.
        let mut child = env.command(&args).process_group(0).spawn().unwrap();
        let stopped = || {
            std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .is_some_and(|pid| state_of(pid) == Some('T'))
        };
        assert!(eventually(Duration::from_secs(10), stopped), "{timeout:?}");
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: kill(2) with plain integers, to our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let ended = eventually(Duration::from_secs(5), || {
            child.try_wait().unwrap().is_some()
        });
        if !ended {
            // SAFETY: as above; the group is the child's own.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
            panic!("timeout {timeout:?}: cbreak waited on a stopped command");
        }
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGTERM),
            "{timeout:?}: {status:?}"
        );
        assert_eq!(env.status("stopped")["cancelled"], 1, "{timeout:?}");
    }
}

/// `trip`, `reset`, `disable`, `enable` and `record` run hooks too: a
/// signal that reached cbreak while one ran went on to the hook and was
/// then forgotten, and cbreak exited 0, so a shell loop of them could not
/// be stopped with Ctrl-C.
#[test]
fn a_signal_during_a_hook_of_a_change_by_hand_ends_cbreak_with_it() {
    let env = Env::new();
    let marker = env.path("hook-alive");
    let hook = format!("touch {}; exec sleep 38.5", marker.display());
    let child = env
        .command(&[
            "trip",
            "hand",
            "--create",
            "--on-open",
            &hook,
            "--hook-timeout",
            "60s",
        ])
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || marker.exists()),
        "the hook never started"
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGINT), "{out:?}");
    let status = env.run(&["status", "hand"]).success();
    assert!(status.stdout.contains("forced"), "{}", status.stdout);
}
