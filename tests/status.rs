//! `cbreak status`, `list`, `check`, `record`, `forget`.

use crate::util::{Env, each_store};

#[test]
fn status_json_has_the_documented_keys() {
    each_store("status_json_has_the_documented_keys", |env| {
        env.run(&["run", "-n", "j", "-t", "4", "-r", "45s", "--", "true"])
            .success();
        let s = env.status("j");
        for key in [
            "schema_version",
            "name",
            "state",
            "mode",
            "consecutive_failures",
            "threshold",
            "recovery_ms",
            "base_recovery_ms",
            "reopens",
            "calls",
            "successes",
            "failures",
            "ignored",
            "cancelled",
            "rejected",
            "slow",
            "timeouts",
            "opened_at",
            "next_probe_at",
            "recent_outcomes",
            "transitions",
            "policy",
        ] {
            assert!(s.get(key).is_some(), "missing key {key}: {s}");
        }
        assert_eq!(s["threshold"], 4);
        assert_eq!(s["recovery_ms"], 45_000);
        assert!(s["opened_at"].is_null() && s["next_probe_at"].is_null());
    });
}

#[test]
fn status_of_all_is_sorted_and_calls_add_up() {
    each_store("status_of_all_is_sorted_and_calls_add_up", |env| {
        for name in ["zeta", "alpha", "mid"] {
            env.run(&["run", "-n", name, "--", "true"]).success();
            env.run(&["run", "-n", name, "--", "false"]).code(1);
        }
        let out = env.run(&["status", "--json"]).success();
        let all: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let names: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
        for b in all.as_array().unwrap() {
            let n = |k: &str| b[k].as_u64().unwrap();
            assert_eq!(
                n("calls"),
                n("successes") + n("failures") + n("ignored") + n("cancelled")
            );
        }
        let table = env.run(&["status"]).success().stdout;
        assert!(table.starts_with("NAME "), "{table}");
        assert_eq!(table.lines().count(), 4);
    });
}

#[test]
fn status_of_a_missing_breaker_names_the_state_directory() {
    let env = Env::new();
    env.run(&["status", "nope"])
        .code(1)
        .one_error_line()
        .stderr_has(&format!(
            "no breaker named 'nope' in {}",
            env.state().display()
        ));
}

#[test]
fn empty_state_directory_says_so() {
    let env = Env::new();
    let out = env.run(&["status"]).success();
    assert!(out.stdout.starts_with("no breakers in "));
    assert_eq!(env.run(&["status", "--json"]).success().stdout.trim(), "[]");
    assert_eq!(env.run(&["list"]).success().stdout, "");
}

#[test]
fn check_reports_without_changing_anything() {
    each_store("check_reports_without_changing_anything", |env| {
        env.run(&["check", "new"]).success();
        env.run(&["trip", "--create", "c", "--for", "1h"]).success();
        let before = env.status("c");
        env.run(&["check", "c"]).code(75);
        assert_eq!(env.status("c"), before);
    });
}

#[test]
fn record_drives_the_breaker_like_run() {
    each_store("record_drives_the_breaker_like_run", |env| {
        env.run(&["run", "-n", "s", "-t", "2", "-r", "1h", "--", "true"])
            .success();
        // The policy is given as to `run` (or by its variables): the latest wins.
        let record = |outcome: &str| env.run(&["record", "s", outcome, "-t", "2", "-r", "1h"]);
        record("failure").success();
        record("ignored").success();
        record("failure").success().stderr_has("breaker 's' opened");
        env.run(&["check", "s"]).code(75);
        let s = env.status("s");
        assert_eq!(
            (
                s["calls"].as_u64(),
                s["failures"].as_u64(),
                s["ignored"].as_u64()
            ),
            (Some(4), Some(2), Some(1))
        );
        env.run(&["record", "s", "maybe"]).code(125);
    });
}

#[test]
fn forget_deletes_the_record() {
    each_store("forget_deletes_the_record", |env| {
        env.run(&["run", "-n", "gone", "--", "true"]).success();
        env.run(&["forget", "gone"]).success();
        env.run(&["status", "gone"]).code(1);
        env.run(&["forget", "gone"])
            .code(1)
            .stderr_has("no breaker named 'gone'");
    });
}

#[test]
fn disable_runs_everything_and_enable_restores() {
    each_store("disable_runs_everything_and_enable_restores", |env| {
        env.run(&["trip", "--create", "d"]).success();
        env.run(&["disable", "d"]).success();
        for _ in 0..3 {
            env.run(&["run", "-n", "d", "-t", "1", "--", "false"])
                .code(1);
        }
        let s = env.status("d");
        assert_eq!(
            (s["state"].as_str(), s["mode"].as_str()),
            (Some("closed"), Some("disabled"))
        );
        env.run(&["enable", "d"]).success();
        env.run(&["run", "-n", "d", "-t", "1", "--", "false"])
            .code(1);
        assert_eq!(env.state_of("d"), "open");
    });
}

#[test]
fn list_output_survives_a_closed_pipe() {
    let env = Env::new();
    for i in 0..50 {
        env.run(&["trip", "--create", &format!("b{i}")]).success();
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' list | head -1", crate::util::bin()))
        .env("CBREAK_STATE_DIR", env.state())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b0\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn colour_follows_the_color_option_and_no_color() {
    let env = Env::new();
    env.run(&["trip", "--create", "c"]).success();
    // Not a terminal here: auto means no colour.
    let auto = env.run(&["status"]).success().stdout;
    assert!(!auto.contains('\x1b'), "{auto:?}");
    let always = env.run(&["status", "--color", "always"]).success().stdout;
    assert!(always.contains("\x1b[35mforced_open\x1b[0m"), "{always:?}");
    let never = env
        .command(&["status", "c", "--color", "never"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&never.stdout).contains('\x1b'));
    env.run(&["status", "--color", "sometimes"])
        .code(125)
        .one_error_line();
}
