//! Hooks: shell commands run when this process changes a breaker's state.
//!
//! Owns choosing which hooks a transition fires, their environment, and
//! keeping their failures contained: a hook that fails or hangs (it is
//! killed at `--hook-timeout`) is reported on stderr and changes neither the
//! breaker nor the wrapped command's exit status. Hooks run after the
//! record's lock is released, exactly once per transition, in the process
//! that made it; their stdout goes to cbreak's stderr.

use std::time::Duration;

use crate::breaker::{BreakerState, State, Transition};
use crate::config::Hooks;
use crate::exec::{self, SpawnError, Status};
use crate::output::{span, warn};
use crate::status::rfc3339;

/// The hooks that fire for a transition to `to`, with the option that set
/// each (for messages).
fn chosen(hooks: &Hooks, to: State) -> Vec<(&'static str, &str)> {
    let specific = match to {
        State::Open | State::ForcedOpen => ("--on-open", hooks.on_open.as_deref()),
        State::Closed => ("--on-close", hooks.on_close.as_deref()),
        State::HalfOpen => ("--on-half-open", hooks.on_half_open.as_deref()),
    };
    [specific, ("--on-change", hooks.on_change.as_deref())]
        .into_iter()
        .filter_map(|(flag, cmd)| cmd.map(|c| (flag, c)))
        .collect()
}

/// The environment a hook sees.
pub fn environment(name: &str, t: &Transition, s: &BreakerState) -> Vec<(&'static str, String)> {
    vec![
        ("CBREAK_NAME", name.to_string()),
        ("CBREAK_STATE", t.to.as_str().to_string()),
        ("CBREAK_PREVIOUS_STATE", t.from.as_str().to_string()),
        (
            "CBREAK_CONSECUTIVE_FAILURES",
            t.consecutive_failures.to_string(),
        ),
        (
            "CBREAK_OPENED_AT",
            s.opened().map(rfc3339).unwrap_or_default(),
        ),
        (
            "CBREAK_NEXT_PROBE_AT",
            s.next_probe().map(rfc3339).unwrap_or_default(),
        ),
        ("CBREAK_REASON", crate::output::reason(t.reason)),
    ]
}

/// Runs the hooks for `t`, which left the breaker in state `s`.
pub fn fire(hooks: &Hooks, name: &str, t: &Transition, s: &BreakerState) {
    let chosen = chosen(hooks, t.to);
    if chosen.is_empty() {
        return;
    }
    let env = environment(name, t, s);
    for (flag, cmd) in chosen {
        let argv = crate::exec::shell(cmd);
        let spec = exec::Spec {
            argv: &argv,
            timeout: Some(Duration::from_millis(hooks.timeout.max(1))),
            timeout_signal: libc::SIGTERM,
            kill_after: Duration::from_secs(1),
            group: exec::Group::Own,
            env: &env,
            // A SIGTERM or Ctrl-C that reaches cbreak while a hook runs
            // goes on to the hook's group, so that the hook ends with
            // cbreak instead of running on, unbounded, after it.
            forward_signals: true,
            quiet_stdio: true,
        };
        match exec::run(&spec) {
            Ok(end) if end.timed_out => warn(&format!(
                "hook {flag} ran longer than {} and was killed",
                span(hooks.timeout)
            )),
            Ok(end) if end.status == Status::Exited(0) => {}
            Ok(end) => warn(&format!(
                "hook {flag} failed with exit status {}",
                end.status.exit_code()
            )),
            Err(SpawnError::NotFound(e) | SpawnError::CannotExecute(e)) => {
                warn(&format!("hook {flag} could not start sh: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::Reason;

    #[test]
    fn open_fires_on_open_and_on_change_only() {
        let hooks = Hooks {
            on_open: Some("o".into()),
            on_close: Some("c".into()),
            on_change: Some("x".into()),
            ..Hooks::default()
        };
        assert_eq!(
            chosen(&hooks, State::Open),
            vec![("--on-open", "o"), ("--on-change", "x")]
        );
        assert_eq!(chosen(&hooks, State::HalfOpen), vec![("--on-change", "x")]);
    }

    #[test]
    fn environment_describes_the_transition() {
        let mut s = BreakerState::default();
        let t = s.trip(Some(30_000), 1_000).unwrap();
        let env = environment("api", &t, &s);
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(get("CBREAK_STATE"), "open");
        assert_eq!(get("CBREAK_PREVIOUS_STATE"), "closed");
        assert_eq!(get("CBREAK_NEXT_PROBE_AT"), "1970-01-01T00:00:31.000Z");
        assert_eq!(
            get("CBREAK_REASON"),
            crate::output::reason(Reason::TrippedFor(30_000))
        );
    }
}
