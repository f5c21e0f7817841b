//! A terminal: an interactive bash on a pseudo-terminal (driven by Python's
//! `pty` module) runs cbreak as a job, as a person at a prompt would.

use std::process::Command;

use crate::util::{Env, bin};

/// Starts `bash -i` on a pseudo-terminal, types `line`, waits for the file
/// `ready` in the scratch directory, types `typed-line`, and returns all
/// the terminal showed once `rc=` follows it.
const DRIVER: &str = r#"
import os, pty, sys, time, select

line, ready = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.environ["PS1"] = "$ "
    os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
out = b""

def pump(until, limit):
    global out
    end = time.time() + limit
    while time.time() < end and not until():
        if select.select([fd], [], [], 0.05)[0]:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
    return until()

def answered():
    return b"rc=" in out.split(b"typed-line", 1)[-1] if b"typed-line" in out else False

os.write(fd, line.encode() + b"\n")
pump(lambda: os.path.exists(ready), 20)
time.sleep(0.2)
os.write(fd, b"typed-line\n")
pump(answered, 20)
os.write(fd, b"exit\n")
pump(lambda: False, 0.5)
sys.stdout.write(out.decode("utf-8", "replace"))
"#;

/// What the terminal showed, or None (with the reason printed) where
/// python3 is missing outside CI.
fn at_a_prompt(env: &Env, line: &str) -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", DRIVER, line, "ready"])
        .env("CBREAK", bin())
        .env("CBREAK_STATE_DIR", env.state())
        .current_dir(env.path(""))
        .output();
    match out {
        Ok(out) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(e) if std::env::var_os("CI").is_none() => {
            println!("SKIPPED: python3 cannot be run ({e}); .ci/run installs it");
            None
        }
        Err(e) => panic!("python3 is needed in CI: {e}"),
    }
}

#[test]
fn a_command_under_timeout_reads_the_terminal() {
    let env = Env::new();
    let line = r#""$CBREAK" run -n tty --timeout 5s -- sh -c 'touch ready; read x; echo "got $x"'; echo rc=$?"#;
    let Some(screen) = at_a_prompt(&env, line) else {
        return;
    };
    assert!(
        screen.contains("got typed-line") && screen.contains("rc=0"),
        "the command read the line typed at the terminal:\n{screen}"
    );
    assert_eq!(env.status("tty")["successes"], 1);
}

#[test]
fn a_command_under_timeout_foreground_reads_the_terminal() {
    let env = Env::new();
    let line = r#""$CBREAK" run -n tty --foreground --timeout 5s -- sh -c 'touch ready; read x; echo "got $x"'; echo rc=$?"#;
    let Some(screen) = at_a_prompt(&env, line) else {
        return;
    };
    assert!(
        screen.contains("got typed-line") && screen.contains("rc=0"),
        "the command read the line typed at the terminal:\n{screen}"
    );
}

/// A hook runs in a process group of its own, in the background of the
/// terminal: under `stty tostop` its first write to the terminal stopped
/// it (SIGTTOU) until `--hook-timeout` killed it.
#[test]
fn a_hook_writing_to_the_terminal_under_tostop_is_not_stopped() {
    let env = Env::new();
    let line = r#"stty tostop; "$CBREAK" run -n hk -t 1 --hook-timeout 3s --on-open 'echo said-the-hook' -- false; r=$?; touch ready; read x; echo "rc=$r""#;
    let Some(screen) = at_a_prompt(&env, line) else {
        return;
    };
    assert!(
        screen.contains("\nsaid-the-hook") && screen.contains("rc=1"),
        "the hook's line reached the terminal:\n{screen}"
    );
    assert!(
        !screen.contains("was killed"),
        "the hook was not stopped until its timeout:\n{screen}"
    );
}
