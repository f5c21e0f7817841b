//! The tripping and recovery policies, against the real binary.

use std::time::Duration;

use crate::util::{Env, each_store, process_alive};

#[test]
fn hanging_command_is_killed_with_its_children_at_the_timeout() {
    each_store(
        "hanging_command_is_killed_with_its_children_at_the_timeout",
        |env| {
            let out = env
                .run(&[
                    "run",
                    "-n",
                    "to",
                    "--timeout",
                    "300ms",
                    "--kill-after",
                    "1s",
                    "--",
                    "sh",
                    "-c",
                    "sleep 97.25 & sleep 97.25; wait",
                ])
                .code(124)
                .stderr_has("ran longer than 300ms and was killed");
            let _ = out;
            assert!(
                crate::util::eventually(Duration::from_secs(3), || !process_alive("sleep 97.25")),
                "a child of the timed-out command survived"
            );
            let s = env.status("to");
            assert_eq!(
                (s["failures"].as_u64(), s["timeouts"].as_u64()),
                (Some(1), Some(1))
            );
        },
    );
}

#[test]
fn command_ignoring_sigterm_is_killed_after_kill_after() {
    let env = Env::new();
    env.run(&[
        "run",
        "-n",
        "stub",
        "--timeout",
        "200ms",
        "--kill-after",
        "300ms",
        "--",
        "sh",
        "-c",
        "trap '' TERM; sleep 96.5",
    ])
    .code(124);
    assert!(crate::util::eventually(Duration::from_secs(3), || {
        !process_alive("sleep 96.5")
    }));
}

#[test]
fn slow_success_passes_its_status_through_but_counts_as_a_failure() {
    each_store(
        "slow_success_passes_its_status_through_but_counts_as_a_failure",
        |env| {
            env.run(&[
                "run",
                "-n",
                "slow",
                "--slow",
                "100ms",
                "-t",
                "1",
                "--",
                "sh",
                "-c",
                "sleep 0.4",
            ])
            .success()
            .stderr_has("opened: 1 failure");
            let s = env.status("slow");
            assert_eq!(
                (
                    s["slow"].as_u64(),
                    s["failures"].as_u64(),
                    s["successes"].as_u64()
                ),
                (Some(1), Some(1), Some(0))
            );
        },
    );
}

#[test]
fn success_and_ignore_codes_decide_the_outcome() {
    each_store("success_and_ignore_codes_decide_the_outcome", |env| {
        let run = |code: &str| {
            env.run(&[
                "run",
                "-n",
                "codes",
                "-t",
                "2",
                "--success-codes",
                "0,3-4",
                "--ignore-codes",
                "7",
                "--",
                "sh",
                "-c",
                &format!("exit {code}"),
            ])
            .code(code.parse().unwrap())
        };
        run("3");
        run("7");
        run("7");
        run("7");
        assert_eq!(
            env.state_of("codes"),
            "closed",
            "ignored codes do not move the breaker"
        );
        run("1");
        run("7");
        run("1");
        let s = env.status("codes");
        assert_eq!(s["state"], "open");
        assert_eq!(
            (
                s["ignored"].as_u64(),
                s["successes"].as_u64(),
                s["calls"].as_u64()
            ),
            (Some(4), Some(1), Some(7))
        );
        assert_eq!(s["policy"]["success_codes"], "0,3-4");
        assert_eq!(s["policy"]["ignore_codes"], "7");
    });
}

#[test]
fn exponential_backoff_grows_to_its_cap_and_resets_on_close() {
    each_store(
        "exponential_backoff_grows_to_its_cap_and_resets_on_close",
        |env| {
            let args = |cmd: &'static str| {
                vec![
                    "run",
                    "-n",
                    "bo",
                    "-t",
                    "1",
                    "-r",
                    "100ms",
                    "--backoff",
                    "exponential",
                    "--max-recovery",
                    "350ms",
                    "--",
                    cmd,
                ]
            };
            env.run(&args("false")).code(1);
            let mut seen = vec![env.status("bo")["recovery_ms"].as_u64().unwrap()];
            for _ in 0..3 {
                // Wait out the period (with a margin), then fail the probe.
                let wait = seen.last().unwrap() + 400;
                std::thread::sleep(Duration::from_millis(wait));
                env.run(&args("false")).code(1);
                seen.push(env.status("bo")["recovery_ms"].as_u64().unwrap());
            }
            assert_eq!(seen, [100, 200, 350, 350]);
            assert_eq!(env.status("bo")["reopens"], 3);
            std::thread::sleep(Duration::from_millis(800));
            env.run(&args("true")).success();
            let s = env.status("bo");
            assert_eq!(
                (
                    s["state"].as_str(),
                    s["recovery_ms"].as_u64(),
                    s["base_recovery_ms"].as_u64()
                ),
                (Some("closed"), Some(100), Some(100))
            );
        },
    );
}

#[test]
fn fallback_runs_instead_when_skipped() {
    let env = Env::new();
    env.run(&["trip", "--create", "fb"]).success();
    let out = env
        .run(&[
            "run",
            "-n",
            "fb",
            "--fallback",
            "echo cached; exit 9",
            "--",
            "echo live",
        ])
        .code(9)
        .stderr_has("skipped");
    assert_eq!(out.stdout, "cached\n");
    assert_eq!(env.status("fb")["calls"], 0, "the fallback is not recorded");
}

#[test]
fn every_validation_error_names_the_option_and_exits_125() {
    let env = Env::new();
    for (args, needle) in [
        (&["--failure-rate", "150%"][..], "150%"),
        (&["--failure-rate", "50%", "--window", "0"], "--window"),
        (
            &["--failure-rate", "50%", "--window", "5", "--min-calls", "6"],
            "--min-calls 6 is larger than --window 5",
        ),
        (&["--timeout", "0"], "--timeout 0"),
        (&["--success-codes", "0,x"], "'x'"),
        (&["--ignore-codes", "3-1"], "backwards"),
        (&["--backoff", "linear"], "linear"),
        (&["--backoff-factor", "1"], "above 1"),
        (&["--jitter", "101"], "0 to 100"),
        // Values that mean nothing: ±100 % could leave no open period,
        // and what Rust's float parser takes besides plain decimals.
        (
            &["--jitter", "100"],
            "--jitter must be a whole percentage from 0 to 99",
        ),
        (&["--failure-rate", "50%%"], "'50%%' is not a percentage"),
        (&["--failure-rate", "1e2"], "'1e2' is not a percentage"),
        (&["--backoff-factor", "1e1"], "'1e1' is not a number"),
        (&["--probes", "0"], "--probes 0"),
        (&["--recovery", "soon"], "soon"),
        // Zero where it means nothing, and anything below a millisecond.
        (&["--recovery", "0"], "--recovery 0"),
        (&["--recovery", "1ns"], "finer than a millisecond"),
        (&["--recovery", "1us"], "finer than a millisecond"),
        (&["--hook-timeout", "0"], "--hook-timeout 0"),
        (&["--timeout", "500us"], "finer than a millisecond"),
        (&["--recovery", "1month"], "'month' is not a unit"),
    ] {
        let mut argv = vec!["run", "-n", "v"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--", "true"]);
        env.run(&argv).code(125).one_error_line().stderr_has(needle);
    }
    assert!(
        !env.state().join("v").exists(),
        "nothing ran, nothing was written"
    );
    env.run(&["trip", "v", "--for", "0"])
        .code(125)
        .one_error_line()
        .stderr_has("--for 0");
    env.run(&["record", "v", "failure", "--hook-timeout", "0"])
        .code(125)
        .stderr_has("--hook-timeout 0");
    assert!(!env.state().join("v").exists());
}

#[test]
fn options_come_from_the_environment_too() {
    let env = Env::new();
    env.command(&["run", "-n", "e", "--", "true"])
        .env("CBREAK_THRESHOLD", "7")
        .env("CBREAK_FAILURE_RATE", "40%")
        .env("CBREAK_WINDOW", "1m")
        .env("CBREAK_PROBES", "2")
        .status()
        .unwrap();
    let s = env.status("e");
    assert_eq!(s["threshold"], 7);
    assert_eq!(s["policy"]["failure_rate_percent"], 40.0);
    assert_eq!(s["policy"]["window_size_ms"], 60_000);
    assert_eq!(s["policy"]["probes"], 2);
}

/// gobreaker's TestCustomCircuitBreaker: MaxRequests 3, and ReadyToTrip
/// when at least 3 requests failed at a ratio of 0.6 or more. Its 30 s
/// Interval (counts cleared in closed state) becomes a 5 s time window, its
/// 90 s Timeout a 300 ms recovery. cbreak lets its 3 probes through one at a
/// time, so the "over MaxRequests" rejection is a caller arriving while the
/// third probe runs.
#[test]
fn gobreaker_custom_breaker_translated() {
    let env = Env::new();
    let args = |cmd: &str| -> Vec<String> {
        let policy =
            "run -n cb -t 0 --failure-rate 60% --window 5s --min-calls 3 --probes 3 -r 300ms -q";
        let mut v: Vec<String> = policy.split(' ').map(String::from).collect();
        v.extend(["--", "sh", "-c", cmd].map(String::from));
        v
    };
    let run = |cmd: &str| {
        let a = args(cmd);
        env.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    for _ in 0..5 {
        run("exit 0").success();
        run("exit 1").code(1);
    }
    assert_eq!(env.state_of("cb"), "closed", "5 of 10 is 50%");
    run("exit 0").success();
    assert_eq!(env.state_of("cb"), "closed");
    // Past the interval: the old counts are gone.
    std::thread::sleep(Duration::from_millis(5500));
    run("exit 1").code(1);
    assert_eq!(env.state_of("cb"), "closed", "1 request is fewer than 3");
    run("exit 0").success();
    run("exit 1").code(1);
    assert_eq!(env.state_of("cb"), "open", "2 of 3 is at least 60%");
    std::thread::sleep(Duration::from_millis(800));
    run("exit 0").success();
    run("exit 0").success();
    assert_eq!(env.state_of("cb"), "half_open");
    let started = env.path("third");
    let release = env.path("release");
    let hold = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.02; done",
        started.display(),
        release.display()
    );
    let third_args = args(&hold);
    let mut third = env.spawn(&third_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(crate::util::eventually(Duration::from_secs(10), || started.exists()));
    run("exit 0").code(75);
    std::fs::write(&release, b"").unwrap();
    assert!(third.wait().unwrap().success());
    assert_eq!(env.state_of("cb"), "closed");
}

/// Every option read from its `CBREAK_*` variable means what it means on
/// the command line.
#[test]
fn every_option_means_the_same_from_its_variable() {
    let env = Env::new();
    let cases: &[(&str, &str, &str)] = &[
        ("--threshold", "CBREAK_THRESHOLD", "7"),
        ("--recovery", "CBREAK_RECOVERY", "90s"),
        ("--failure-rate", "CBREAK_FAILURE_RATE", "40%"),
        ("--window", "CBREAK_WINDOW", "2m"),
        ("--min-calls", "CBREAK_MIN_CALLS", "4"),
        ("--timeout", "CBREAK_TIMEOUT", "1h"),
        ("--kill-after", "CBREAK_KILL_AFTER", "2s"),
        ("--slow", "CBREAK_SLOW", "3s"),
        ("--success-codes", "CBREAK_SUCCESS_CODES", "0,3-4"),
        ("--ignore-codes", "CBREAK_IGNORE_CODES", "9"),
        ("--backoff", "CBREAK_BACKOFF", "exponential"),
        ("--backoff-factor", "CBREAK_BACKOFF_FACTOR", "1.5"),
        ("--max-recovery", "CBREAK_MAX_RECOVERY", "2h"),
        ("--jitter", "CBREAK_JITTER", "10"),
        ("--probes", "CBREAK_PROBES", "3"),
    ];
    for (i, (flag, var, value)) in cases.iter().enumerate() {
        // --window needs a rate; give it the same way in both runs.
        let rate: &[&str] = if *flag == "--window" {
            &["--failure-rate", "50%"]
        } else {
            &[]
        };
        let (a, b) = (format!("argv{i}"), format!("env{i}"));
        let mut argv = vec!["run", "-n", &a, flag, value];
        argv.extend_from_slice(rate);
        argv.extend_from_slice(&["--", "true"]);
        env.run(&argv).success();
        let mut argv = vec!["run", "-n", &b];
        argv.extend_from_slice(rate);
        argv.extend_from_slice(&["--", "true"]);
        let out = env.command(&argv).env(var, value).output().unwrap();
        assert!(
            out.status.success(),
            "{var}={value}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (sa, sb) = (env.status(&a), env.status(&b));
        for key in ["policy", "threshold", "base_recovery_ms"] {
            assert_eq!(sa[key], sb[key], "{var}={value}: {key}");
        }
    }
    // The options that show in behaviour rather than in status.
    env.run(&["trip", "--create", "t"]).success();
    let out = env
        .command(&["run", "-n", "t", "--", "true"])
        .env("CBREAK_OPEN_EXIT_CODE", "9")
        .env("CBREAK_FALLBACK", "echo from-fallback")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-fallback\n");
    let out = env
        .command(&["run", "-n", "t", "--", "true"])
        .env("CBREAK_OPEN_EXIT_CODE", "9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9));
    let log = env.path("hook.log");
    let out = env
        .command(&["run", "-n", "h", "-t", "1", "--", "false"])
        .env(
            "CBREAK_ON_OPEN",
            format!("echo opened >> {}", log.display()),
        )
        .env("CBREAK_QUIET", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "CBREAK_QUIET silences"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "opened\n");
    // A flag's variable takes the usual words for yes and no.
    env.run(&["run", "-n", "q", "--", "true"]).success();
    for (value, quiet) in [
        ("1", true),
        ("yes", true),
        ("true", true),
        ("0", false),
        ("no", false),
    ] {
        env.run(&["reset", "q"]).success();
        let out = env
            .command(&["run", "-n", "q", "-t", "1", "--", "false"])
            .env("CBREAK_QUIET", value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "CBREAK_QUIET={value}");
        assert_eq!(
            out.stderr.is_empty(),
            quiet,
            "CBREAK_QUIET={value}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A bad value from a variable is refused like one on the command line.
    let out = env
        .command(&["run", "-n", "x", "--", "true"])
        .env("CBREAK_THRESHOLD", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("many"));
}

/// Regression: `-r 6h` (the README's cron recipe) and `CBREAK_RECOVERY=2h`
/// were refused because the default `--max-recovery` was 1h, although the
/// cap means nothing to the default constant backoff.
#[test]
fn a_recovery_above_an_hour_runs_with_or_without_backoff() {
    let env = Env::new();
    env.run(&[
        "run",
        "-n",
        "offsite",
        "-t",
        "3",
        "-r",
        "6h",
        "--timeout",
        "2h",
        "--",
        "true",
    ])
    .success()
    .stderr_empty();
    env.command(&["run", "-n", "cron", "--", "true"])
        .env("CBREAK_RECOVERY", "2h")
        .status()
        .map(|s| assert!(s.success()))
        .unwrap();
    env.run(&[
        "run",
        "-n",
        "exp",
        "-r",
        "2h",
        "--backoff",
        "exponential",
        "--",
        "true",
    ])
    .success();
    assert_eq!(env.status("exp")["policy"]["max_recovery_ms"], 7_200_000);
    env.run(&[
        "run",
        "-n",
        "x",
        "-r",
        "2h",
        "--backoff",
        "exponential",
        "--max-recovery",
        "1h",
        "--",
        "true",
    ])
    .code(125)
    .one_error_line()
    .stderr_has("give --max-recovery 2h or more, or a shorter --recovery");
}

/// Regression: the rate was judged only when a failure arrived, so 3
/// failures and then a success in 4 calls stayed closed while `status`
/// printed 75%.
#[test]
fn failure_rate_is_judged_after_a_success_too() {
    each_store("failure_rate_is_judged_after_a_success_too", |env| {
        let run = |cmd: &str| {
            env.run(&[
                "run",
                "-n",
                "rate",
                "-t",
                "0",
                "--failure-rate",
                "50",
                "--min-calls",
                "4",
                "--",
                "sh",
                "-c",
                cmd,
            ])
        };
        for _ in 0..3 {
            run("exit 1").code(1);
        }
        assert_eq!(env.state_of("rate"), "closed");
        run("exit 0")
            .success()
            .stderr_has("breaker 'rate' opened: failure rate 75% over 4 calls");
        assert_eq!(env.state_of("rate"), "open");
        run("exit 0").code(75);
    });
}
