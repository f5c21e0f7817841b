//! Colour under a real pseudo-terminal, one test per variable: `status`
//! colours its state column on a terminal unless told otherwise, in the
//! order README's "Seeing what the breakers do" gives.

use std::process::Command;

use crate::util::{Env, bin};

const PAINTED: &str = "\x1b[35mforced_open\x1b[0m";

/// `cbreak status` run with stdout on a pseudo-terminal (util-linux
/// `script`, part of every Debian system), with `vars` set and every other
/// colour variable removed. `TERM` is `xterm` unless `vars` sets it.
fn status_on_a_terminal(env: &Env, vars: &[(&str, &str)], args: &str) -> String {
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c"])
        .arg(format!("{} status {args}", bin()))
        .arg("/dev/null")
        .env("CBREAK_STATE_DIR", env.state())
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null());
    for k in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE"] {
        cmd.env_remove(k);
    }
    cmd.envs(vars.iter().copied());
    let out = cmd.output().expect("script(1) runs (util-linux)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tripped() -> Env {
    let env = Env::new();
    env.run(&["trip", "--create", "c"]).success();
    env
}

#[test]
fn a_terminal_gets_colour() {
    let env = tripped();
    let out = status_on_a_terminal(&env, &[], "");
    assert!(out.contains(PAINTED), "{out:?}");
}

#[test]
fn no_color_turns_it_off_even_with_clicolor_force() {
    let env = tripped();
    let out = status_on_a_terminal(&env, &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")], "");
    assert!(
        out.contains("forced_open") && !out.contains('\x1b'),
        "{out:?}"
    );
}

#[test]
fn clicolor_0_turns_it_off() {
    let env = tripped();
    let out = status_on_a_terminal(&env, &[("CLICOLOR", "0")], "");
    assert!(
        out.contains("forced_open") && !out.contains('\x1b'),
        "{out:?}"
    );
    let out = status_on_a_terminal(&env, &[("CLICOLOR", "1")], "");
    assert!(out.contains(PAINTED), "{out:?}");
}

#[test]
fn term_dumb_turns_it_off() {
    let env = tripped();
    let out = status_on_a_terminal(&env, &[("TERM", "dumb")], "");
    assert!(
        out.contains("forced_open") && !out.contains('\x1b'),
        "{out:?}"
    );
}

#[test]
fn clicolor_force_colours_a_pipe_and_a_dumb_terminal() {
    let env = tripped();
    let piped = env
        .command(&["status"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    let piped = String::from_utf8_lossy(&piped.stdout);
    assert!(piped.contains(PAINTED), "{piped:?}");
    let out = status_on_a_terminal(&env, &[("CLICOLOR_FORCE", "1"), ("TERM", "dumb")], "");
    assert!(out.contains(PAINTED), "{out:?}");
}

#[test]
fn the_color_option_beats_every_variable() {
    let env = tripped();
    let out = status_on_a_terminal(&env, &[("NO_COLOR", "1")], "--color always");
    assert!(out.contains(PAINTED), "{out:?}");
    let out = status_on_a_terminal(&env, &[("CLICOLOR_FORCE", "1")], "--color never");
    assert!(
        out.contains("forced_open") && !out.contains('\x1b'),
        "{out:?}"
    );
}
