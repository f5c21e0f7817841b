//! Signals: forwarded to the command, and a cancelled call is not a failure.

use std::time::Duration;

use crate::util::{Env, eventually};

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
    assert_eq!(out.status.code(), Some(143));
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
    assert_eq!(out.status.code(), Some(130));
    let s = env.status("cp");
    assert_eq!(
        (s["state"].as_str(), s["probe_in_flight"].as_bool()),
        (Some("half_open"), Some(false))
    );
    env.run(&["run", "-n", "cp", "--", "true"]).success();
    assert_eq!(env.state_of("cp"), "closed");
}
