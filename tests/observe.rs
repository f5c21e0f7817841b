//! Hooks, history and metrics.

use std::time::Duration;

use crate::util::{Env, each_store};

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn hooks_fire_once_per_transition_with_the_documented_environment() {
    each_store(
        "hooks_fire_once_per_transition_with_the_documented_environment",
        |env| {
            let log = env.path("hooks.log");
            let hook = format!(
                "echo \"$CBREAK_NAME $CBREAK_PREVIOUS_STATE>$CBREAK_STATE $CBREAK_CONSECUTIVE_FAILURES [$CBREAK_REASON] $CBREAK_NEXT_PROBE_AT\" >> {}",
                log.display()
            );
            let close_log = env.path("close.log");
            let on_close = format!("echo closed >> {}", close_log.display());
            let args = |cmd: &'static str| {
                vec![
                    "run".to_string(),
                    "-n".into(),
                    "hk".into(),
                    "-t".into(),
                    "2".into(),
                    "-r".into(),
                    "200ms".into(),
                    "--on-change".into(),
                    hook.clone(),
                    "--on-close".into(),
                    on_close.clone(),
                    "--".into(),
                    cmd.into(),
                ]
            };
            let run = |cmd: &'static str| {
                let a = args(cmd);
                env.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
            };
            run("false").code(1);
            assert!(lines(&log).is_empty());
            run("false").code(1);
            let l = lines(&log);
            assert_eq!(l.len(), 1, "{l:?}");
            assert!(
                l[0].starts_with("hk closed>open 2 [2 consecutive failures] 20"),
                "{}",
                l[0]
            );
            assert!(l[0].ends_with('Z'), "next probe in RFC 3339: {}", l[0]);
            std::thread::sleep(Duration::from_millis(600));
            run("true").success();
            let l = lines(&log);
            assert_eq!(l.len(), 3, "{l:?}");
            assert!(
                l[1].starts_with("hk open>half_open 2 [recovery period elapsed]"),
                "{}",
                l[1]
            );
            assert!(
                l[2].starts_with("hk half_open>closed 0 [probe succeeded]"),
                "{}",
                l[2]
            );
            assert_eq!(lines(&close_log), ["closed"]);
        },
    );
}

#[test]
fn hooks_fire_exactly_once_with_sixteen_concurrent_processes() {
    each_store(
        "hooks_fire_exactly_once_with_sixteen_concurrent_processes",
        |env| {
            let log = env.path("open.log");
            let hook = format!("echo $$ >> {}", log.display());
            std::thread::scope(|scope| {
                for _ in 0..16 {
                    let (env, hook) = (&env, &hook);
                    scope.spawn(move || {
                        for _ in 0..4 {
                            env.run(&[
                                "run",
                                "-n",
                                "many",
                                "-t",
                                "5",
                                "-r",
                                "1h",
                                "-q",
                                "--on-open",
                                hook,
                                "--",
                                "false",
                            ]);
                        }
                    });
                }
            });
            assert_eq!(lines(&log).len(), 1, "one transition to open, one hook");
            let s = env.status("many");
            // Calls admitted while it was still closed all ran (and failed).
            let (failures, rejected) = (
                s["failures"].as_u64().unwrap(),
                s["rejected"].as_u64().unwrap(),
            );
            assert_eq!(failures + rejected, 64);
            assert!(failures >= 5, "{failures}");
            assert_eq!(s["transitions_total"]["open"], 1);
        },
    );
}

#[test]
fn failing_and_hanging_hooks_change_nothing_but_are_reported() {
    let env = Env::new();
    env.run(&[
        "run",
        "-n",
        "bad",
        "-t",
        "1",
        "--on-open",
        "exit 9",
        "--",
        "sh",
        "-c",
        "exit 3",
    ])
    .code(3)
    .stderr_has("hook --on-open failed with exit status 9");
    env.run(&["reset", "bad"]).success();
    let start = std::time::Instant::now();
    env.run(&[
        "run",
        "-n",
        "bad",
        "-t",
        "1",
        "--on-open",
        "sleep 30",
        "--hook-timeout",
        "300ms",
        "--",
        "sh",
        "-c",
        "exit 4",
    ])
    .code(4)
    .stderr_has("hook --on-open ran longer than 300ms and was killed");
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_eq!(env.state_of("bad"), "open");
}

#[test]
fn history_ring_wraps_and_recent_outcomes_match() {
    each_store("history_ring_wraps_and_recent_outcomes_match", |env| {
        for _ in 0..20 {
            env.run(&["trip", "--create", "ring"]).success();
            env.run(&["reset", "ring"]).success();
        }
        let s = env.status("ring");
        let t = s["transitions"].as_array().unwrap();
        assert_eq!(t.len(), 32);
        assert_eq!(s["transitions_total"]["closed"], 20);
        assert_eq!(t.last().unwrap()["to"], "closed");
        assert_eq!(t.last().unwrap()["reason"], "reset");
        for outcome in ["true", "false", "false", "true"] {
            env.run(&["run", "-n", "ring", "-t", "9", "--", outcome]);
        }
        let s = env.status("ring");
        assert_eq!(
            s["recent_outcomes"],
            serde_json::json!(["success", "failure", "failure", "success"])
        );
        let human = env.run(&["status", "ring", "--ascii"]).success().stdout;
        assert!(human.contains("recent:       +xx+"), "{human}");
    });
}

#[test]
fn metrics_parse_back_value_by_value() {
    each_store("metrics_parse_back_value_by_value", |env| {
        env.run(&["run", "-n", "m1", "-t", "2", "--", "true"])
            .success();
        env.run(&["run", "-n", "m1", "-t", "2", "--", "false"])
            .code(1);
        env.run(&["run", "-n", "m1", "-t", "2", "--", "false"])
            .code(1);
        env.run(&["run", "-n", "m1", "-t", "2", "--", "false"])
            .code(75);
        env.run(&["trip", "--create", "m2"]).success();
        let text = env.run(&["metrics"]).success().stdout;
        let value = |series: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
        };
        assert_eq!(value("cbreak_state{name=\"m1\",state=\"open\"}"), 1.0);
        assert_eq!(value("cbreak_state{name=\"m1\",state=\"closed\"}"), 0.0);
        assert_eq!(
            value("cbreak_state{name=\"m2\",state=\"forced_open\"}"),
            1.0
        );
        assert_eq!(
            value("cbreak_calls_total{name=\"m1\",outcome=\"success\"}"),
            1.0
        );
        assert_eq!(
            value("cbreak_calls_total{name=\"m1\",outcome=\"failure\"}"),
            2.0
        );
        assert_eq!(value("cbreak_rejected_total{name=\"m1\"}"), 1.0);
        assert_eq!(value("cbreak_consecutive_failures{name=\"m1\"}"), 2.0);
        assert_eq!(
            value("cbreak_transitions_total{name=\"m1\",to=\"open\"}"),
            1.0
        );
        let next = value("cbreak_next_probe_timestamp_seconds{name=\"m1\"}");
        let opened = value("cbreak_opened_timestamp_seconds{name=\"m1\"}");
        assert!((next - opened - 30.0).abs() < 0.01, "{opened} {next}");
        assert_eq!(value("cbreak_recovery_period_seconds{name=\"m1\"}"), 30.0);
        let succeeded = value("cbreak_last_success_timestamp_seconds{name=\"m1\"}");
        let failed = value("cbreak_last_failure_timestamp_seconds{name=\"m1\"}");
        assert!(
            succeeded > 1.7e9 && succeeded <= failed && failed <= opened,
            "{succeeded} {failed} {opened}"
        );
        assert_eq!(
            value("cbreak_last_success_timestamp_seconds{name=\"m2\"}"),
            0.0
        );
        assert_eq!(value("cbreak_disabled{name=\"m1\"}"), 0.0);
        env.run(&["disable", "m2"]).success();
        let text = env.run(&["metrics"]).success().stdout;
        assert!(text.contains("cbreak_disabled{name=\"m2\"} 1\n"), "{text}");
    });
}

#[test]
fn metrics_pass_promtool_when_it_is_installed() {
    let Ok(out) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        println!(
            "SKIPPED metrics_pass_promtool_when_it_is_installed: promtool is not installed (.ci/run installs it)"
        );
        return;
    };
    assert!(out.status.success());
    let env = Env::new();
    env.run(&["run", "-n", "p", "--", "true"]).success();
    env.run(&["trip", "--create", "q", "--for", "1m"]).success();
    env.run(&["run", "-n", "d", "--", "false"]).code(1);
    env.run(&["disable", "d"]).success();
    let file = env.path("cbreak.prom");
    env.run(&["metrics", "--output", file.to_str().unwrap()])
        .success();
    let check = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", file.display()))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let dir: Vec<_> = std::fs::read_dir(env.path(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert!(
        dir.iter()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
    );
}

/// Hooks fire once per transition whichever command makes it: `trip`,
/// `reset`, `disable` and `enable` take the hook options and variables.
#[test]
fn hand_made_transitions_fire_hooks_once_each() {
    let env = Env::new();
    let log = env.path("hooks.log");
    let hook = format!(
        "echo \"$CBREAK_PREVIOUS_STATE>$CBREAK_STATE $CBREAK_REASON\" >> {}",
        log.display()
    );
    let with = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--on-change", &hook]);
        env.run(&a).success();
    };
    with(&["trip", "--create", "h"]);
    with(&["trip", "h"]); // already forced open: no transition, no hook
    with(&["reset", "h"]);
    with(&["reset", "h"]); // already closed
    with(&["trip", "h", "--for", "1h"]);
    with(&["disable", "h"]);
    with(&["enable", "h"]); // a mode, not a transition
    // The variables work as on `run` (a crontab sets them once).
    env.command(&["trip", "h"])
        .env("CBREAK_ON_OPEN", &hook)
        .status()
        .unwrap();
    assert_eq!(
        lines(&log),
        [
            "closed>forced_open tripped by hand",
            "forced_open>closed reset",
            "closed>open tripped by hand for 1h",
            "open>closed disabled",
            "closed>forced_open tripped by hand",
        ]
    );
}

/// `record` fires each transition's hooks with that transition's state:
/// open -> half-open (opened_at still set) then half-open -> closed.
#[test]
fn record_gives_each_hook_its_own_transitions_environment() {
    each_store(
        "record_gives_each_hook_its_own_transitions_environment",
        |env| {
            env.run(&["record", "r", "failure", "-t", "1", "-r", "100ms"])
                .success()
                .stderr_has("breaker 'r' opened");
            let log = env.path("hooks.log");
            let hook = format!(
                "echo \"$CBREAK_STATE opened_at=$CBREAK_OPENED_AT\" >> {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(400));
            env.run(&[
                "record",
                "r",
                "success",
                "-t",
                "1",
                "-r",
                "100ms",
                "--on-change",
                &hook,
            ])
            .success()
            .stderr_has("breaker 'r' closed: probe succeeded");
            let got = lines(&log);
            assert_eq!(got.len(), 2, "{got:?}");
            let opened = got[0].strip_prefix("half_open opened_at=").unwrap();
            assert!(opened.ends_with('Z') && opened.len() > 20, "{got:?}");
            assert_eq!(got[1], "closed opened_at=");
        },
    );
}

/// Regression: `record` took no policy, so a breaker driven by
/// `check`/`record` was stuck at 5 failures and 30 s.
#[test]
fn record_and_check_take_the_policy_like_run() {
    let env = Env::new();
    for _ in 0..2 {
        env.command(&["record", "p", "failure", "-q"])
            .env("CBREAK_THRESHOLD", "2")
            .env("CBREAK_RECOVERY", "10m")
            .status()
            .unwrap();
    }
    let s = env.status("p");
    assert_eq!(
        (s["state"].as_str(), s["threshold"].as_u64()),
        (Some("open"), Some(2))
    );
    assert_eq!(s["base_recovery_ms"], 600_000);
    env.run(&["check", "p", "-t", "2", "-r", "10m"]).code(75);
    env.run(&[
        "record",
        "q",
        "failure",
        "--failure-rate",
        "50",
        "--min-calls",
        "2",
        "-t",
        "0",
        "-q",
    ])
    .success();
    env.run(&[
        "record",
        "q",
        "success",
        "--failure-rate",
        "50",
        "--min-calls",
        "2",
        "-t",
        "0",
    ])
    .success()
    .stderr_has("opened: failure rate 50% over 2 calls");
    // Checked as on `run`.
    env.run(&["check", "q", "--window", "5"])
        .code(125)
        .stderr_has("--window needs --failure-rate");
    env.run(&["record", "q", "success", "-r", "0"])
        .code(125)
        .stderr_has("--recovery 0");
}
