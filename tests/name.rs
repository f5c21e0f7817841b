//! `cbreak name COMMAND...` and `cbreak check -- COMMAND...`: finding a
//! command's breaker, and asking whether it would run, without running it.

use crate::util::Env;

#[test]
fn name_prints_the_breaker_run_would_use() {
    let env = Env::new();
    let marker = env.path("ran");
    let script = format!("touch {}; exit 3", marker.display());
    env.run(&["run", "--", "sh", "-c", &script]).code(3);
    let listed = env.run(&["list"]).success().stdout;
    std::fs::remove_file(&marker).unwrap();
    for args in [
        &["name", "sh", "-c", &script][..],
        &["name", "--", "sh", "-c", &script],
    ] {
        let out = env.run(args).success().stderr_empty();
        assert_eq!(out.stdout, listed, "{args:?}");
    }
    assert!(!marker.exists(), "name ran the command");
    let other = env.run(&["name", "sh", "-c", "exit 4"]).success().stdout;
    assert_ne!(other, listed);
    assert!(
        other.starts_with("sh-") && other.ends_with('\n'),
        "{other:?}"
    );
}

#[test]
fn name_needs_no_state_directory() {
    let env = Env::new();
    let out = env
        .command(&["name", "true"])
        .env_remove("CBREAK_STATE_DIR")
        .env_remove("HOME")
        .env_remove("XDG_STATE_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("true-"));
}

#[test]
fn check_takes_a_command_in_place_of_a_name() {
    let env = Env::new();
    let cmd = ["sh", "-c", "exit 3"];
    let check = |args: &[&str]| {
        let mut a = vec!["check", "--"];
        a.extend_from_slice(args);
        env.run(&a).code
    };
    assert_eq!(check(&cmd), 0, "no breaker yet: it would run");
    let mut run = vec!["run", "-t", "1", "--"];
    run.extend_from_slice(&cmd);
    env.run(&run).code(3);
    assert_eq!(check(&cmd), 75, "open: it would be skipped");
    assert_eq!(check(&["sh", "-c", "exit 4"]), 0, "another command");
    let name = env
        .run(&["name", "--", "sh", "-c", "exit 3"])
        .success()
        .stdout;
    env.run(&["check", name.trim()]).code(75);
    assert_eq!(env.status(name.trim())["calls"], 1, "check changed nothing");
}

#[test]
fn check_wants_a_name_or_a_command_not_both() {
    let env = Env::new();
    env.run(&["check"]).code(125).one_error_line();
    env.run(&["check", "api", "--", "true"])
        .code(125)
        .one_error_line();
    env.run(&["name"]).code(125).one_error_line();
}
