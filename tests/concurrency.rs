//! Many processes on one breaker at once: counts stay exact, half-open
//! lets exactly one probe through, and a call admitted in an older
//! generation cannot change the state of a newer one. Each of these runs
//! against the state directory and a Redis server (`--store`). And many
//! processes on one stderr: each message stays one whole line.

use std::time::Duration;

use crate::util::{Env, each_store, eventually};

/// cron, CI and `parallel` give many jobs one stderr: a message written
/// in pieces (`cbreak: `, the text, the newline: three `write(2)`s) is
/// torn by another job's message landing between them.
#[test]
fn many_processes_on_one_stderr_write_only_whole_lines() {
    use std::io::Read;
    let env = Env::new();
    env.run(&["run", "-n", "seed", "--", "true"]).success();
    // Both copies of the state damaged: `status` says so for each such
    // record, and changes nothing.
    let mut bytes = std::fs::read(env.state().join("seed")).unwrap();
    for range in [100..300, 4200..4400] {
        for b in &mut bytes[range] {
            *b ^= 0x5a;
        }
    }
    let records = 100;
    for i in 0..records {
        std::fs::write(env.state().join(format!("corrupt-{i:03}")), &bytes).unwrap();
    }
    std::fs::remove_file(env.state().join("seed")).unwrap();
    let (mut reader, writer) = std::io::pipe().unwrap();
    let processes = 16;
    let children: Vec<_> = (0..processes)
        .map(|_| {
            env.command(&["status"])
                .stdout(std::process::Stdio::null())
                .stderr(writer.try_clone().unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    drop(writer);
    let mut stderr = String::new();
    reader.read_to_string(&mut stderr).unwrap();
    for mut child in children {
        child.wait().unwrap();
    }
    let lines: Vec<&str> = stderr.lines().collect();
    let whole = |l: &&str| {
        l.starts_with("cbreak: record ")
            && l.matches("cbreak: ").count() == 1
            && l.ends_with("moves it aside and starts afresh")
    };
    let torn: Vec<&&str> = lines.iter().filter(|l| !whole(l)).take(10).collect();
    assert!(torn.is_empty(), "torn lines: {torn:#?}");
    assert_eq!(lines.len(), processes * records, "one line per record each");
}

#[test]
fn sixteen_processes_count_exactly() {
    each_store("sixteen_processes_count_exactly", |env| {
        let workers = 16;
        let runs = 20;
        std::thread::scope(|scope| {
            for w in 0..workers {
                let env = &env;
                scope.spawn(move || {
                    for i in 0..runs {
                        let cmd = if (w + i) % 2 == 0 { "true" } else { "false" };
                        let out = env.run(&["run", "-n", "shared", "-t", "100000", "--", cmd]);
                        assert_eq!(out.code, i32::from(cmd == "false"), "{}", out.stderr);
                    }
                });
            }
        });
        let s = env.status("shared");
        let total = workers * runs;
        assert_eq!(s["calls"], total);
        assert_eq!(s["successes"], total / 2);
        assert_eq!(s["failures"], total / 2);
        assert_eq!(s["rejected"], 0);
    });
}

#[test]
fn sixteen_processes_with_a_rate_window_keep_window_and_counts_consistent() {
    each_store(
        "sixteen_processes_with_a_rate_window_keep_window_and_counts_consistent",
        |env| {
            std::thread::scope(|scope| {
                for w in 0..16 {
                    let env = &env;
                    scope.spawn(move || {
                        for i in 0..12 {
                            let cmd = if (w * 12 + i) % 4 == 0 {
                                "false"
                            } else {
                                "true"
                            };
                            env.run(&[
                                "run",
                                "-n",
                                "rate",
                                "-t",
                                "0",
                                "--failure-rate",
                                "90%",
                                "--window",
                                "50",
                                "--min-calls",
                                "50",
                                "--",
                                cmd,
                            ]);
                        }
                    });
                }
            });
            let s = env.status("rate");
            assert_eq!(s["calls"], 192);
            assert_eq!(s["failures"], 48);
            assert_eq!(s["state"], "closed", "25% never reaches 90%");
            assert_eq!(s["calls_in_window"], 50);
            // The window and the recent-outcomes strip are updated in the same
            // locked step: the window's failures are exactly those among the last
            // 50 outcomes of the strip, whatever order the 16 processes ran in.
            let recent = s["recent_outcomes"].as_array().unwrap();
            let last_50 = &recent[recent.len() - 50..];
            let failures_in_strip = last_50.iter().filter(|o| *o == "failure").count() as u64;
            assert_eq!(
                s["failures_in_window"].as_u64(),
                Some(failures_in_strip),
                "{s}"
            );
        },
    );
}

#[test]
fn half_open_lets_one_slow_probe_through_and_rejects_the_rest() {
    each_store(
        "half_open_lets_one_slow_probe_through_and_rejects_the_rest",
        |env| {
            env.run(&["trip", "--create", "h", "--for", "100ms"])
                .success();
            std::thread::sleep(Duration::from_millis(400));
            let started = env.path("probe-started");
            let release = env.path("release");
            // The probe runs until the test lets it go: no race with the callers.
            let probe_cmd = format!(
                "touch {}; while [ ! -e {} ]; do sleep 0.02; done",
                started.display(),
                release.display()
            );
            let mut probe = env.spawn(&["run", "-n", "h", "--", "sh", "-c", &probe_cmd]);
            assert!(
                eventually(Duration::from_secs(30), || started.exists()),
                "the probe never started"
            );
            std::thread::scope(|scope| {
                for i in 0..8 {
                    let env = &env;
                    scope.spawn(move || {
                        let marker = env.path(&format!("ran-{i}"));
                        let touch = format!("touch {}", marker.display());
                        env.run(&["run", "-n", "h", "--", "sh", "-c", &touch])
                            .code(75)
                            .stderr_has("half-open and its probe is still running");
                        assert!(!marker.exists());
                    });
                }
            });
            std::fs::write(&release, b"").unwrap();
            assert!(probe.wait().unwrap().success());
            let s = env.status("h");
            assert_eq!(
                (s["state"].as_str(), s["rejected"].as_u64()),
                (Some("closed"), Some(8))
            );
        },
    );
}

#[test]
fn a_failure_admitted_before_a_trip_and_reset_does_not_count_after_them() {
    each_store(
        "a_failure_admitted_before_a_trip_and_reset_does_not_count_after_them",
        |env| {
            let started = env.path("started");
            let release = env.path("release");
            let slow = format!(
                "touch {}; while [ ! -e {} ]; do sleep 0.02; done; exit 1",
                started.display(),
                release.display()
            );
            let mut call = env.spawn(&["run", "-n", "g", "-t", "1", "--", "sh", "-c", &slow]);
            assert!(eventually(Duration::from_secs(30), || started.exists()));
            // Two generations later, the breaker is closed again.
            env.run(&["trip", "g"]).success();
            env.run(&["reset", "g"]).success();
            std::fs::write(&release, b"").unwrap();
            assert_eq!(call.wait().unwrap().code(), Some(1));
            let s = env.status("g");
            assert_eq!(
                (s["state"].as_str(), s["consecutive_failures"].as_u64()),
                (Some("closed"), Some(0)),
                "one failure with -t 1 would open it, but it was admitted in an older generation: {s}"
            );
            assert_eq!(
                (s["calls"].as_u64(), s["failures"].as_u64()),
                (Some(1), Some(1))
            );
        },
    );
}
