//! A cbreak killed while it holds the probe slot does not wedge the breaker.

use std::time::Duration;

use crate::util::{Env, eventually};

#[test]
fn sigkilled_probe_is_taken_over_by_the_next_caller() {
    let env = Env::new();
    env.run(&["trip", "--create", "k", "--for", "100ms"])
        .success();
    std::thread::sleep(Duration::from_millis(400));
    let pidfile = env.path("child.pid");
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let mut probe = env.spawn(&["run", "-n", "k", "--", "sh", "-c", &script]);
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(
            &pidfile
        )
        .is_ok_and(|s| s.ends_with('\n'))),
        "the probe never started"
    );
    assert_eq!(env.status("k")["probe_in_flight"], true);
    probe.kill().unwrap(); // SIGKILL to cbreak itself
    probe.wait().unwrap();
    // The orphaned command is not the breaker's business; tidy up.
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(child.to_string())
        .status();
    // The very next caller probes, and its success closes the breaker.
    env.run(&["run", "-n", "k", "--", "true"])
        .success()
        .stderr_has("closed: probe succeeded");
    assert_eq!(env.state_of("k"), "closed");
}
