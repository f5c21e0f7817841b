//! What each subcommand does, from a [`Config`] to an [`Exit`].
//!
//! Owns the order of work — decide under the lock, unlock, run, record
//! under the lock, then talk and fire hooks — and the user-facing messages
//! around it. The protocol of each call on a breaker is `engine`'s, the
//! decisions `breaker`'s, the states `store`'s (through the [`Store`]
//! trait only, once [`execute`] has chosen the store), the processes
//! `exec`'s.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::breaker::{Admission, BreakerState, End, Millis, Policy, Rejection, State, Transition};
use crate::config::{Action, Config, Hooks, OnStateError, RunConfig, View};
use crate::engine::{Changed, Engine};
use crate::exec::{self, SpawnError, Status};
use crate::exit::Exit;
use crate::output::{self, relative, say, span, warn};
use crate::status::{self, Style};
use crate::store::{Fleet, StateDir, Store, StoreError, default_name};

/// Carries out `config`.
pub fn execute(config: Config) -> Exit {
    if let Some(exit) = without_state(&config.action) {
        return exit;
    }
    // The one place that chooses the store: a server named by --store,
    // else the state directory. Nothing below knows which.
    if let Some(fleet) = config.store {
        return with_store(Ok(Fleet::new(fleet)), config.action);
    }
    let allow_network_fs = config.allow_network_fs;
    let lock_wait = config.lock_wait;
    let store = crate::store::state_dir(config.state_dir)
        .map_err(|e| words(&e))
        .map(|dir| StateDir::new(dir, allow_network_fs).with_lock_wait(lock_wait));
    with_store(store, config.action)
}

/// Carries out `action` on `store` (or says why there is none).
fn with_store<S: Store>(store: Result<S, String>, action: Action) -> Exit {
    match action {
        Action::Run(run) => return run_command(store, run),
        // Like `run`, `check` fails open: a script built on
        // `cbreak check NAME || exit 75` must not stop for good because the
        // state cannot be used.
        Action::Check {
            name,
            policy,
            on_state_error,
        } => return check(store, &name, &policy, on_state_error),
        _ => {}
    }
    other(store, action)
}

/// The subcommands other than `run` and `check`. Out of line, with
/// `check`, so that `run` does not pay for their stack frames.
#[inline(never)]
fn other<S: Store>(store: Result<S, String>, action: Action) -> Exit {
    let store = match store {
        Ok(s) => s,
        Err(msg) => {
            say(&msg);
            return Exit::Error;
        }
    };
    let result = match action {
        Action::Run(_) | Action::Check { .. } => unreachable!("handled above"),
        Action::Status { name, view } => status(&store, name.as_deref(), view),
        Action::Trip {
            name,
            duration,
            create,
            hooks,
        } => by_hand(&store, &name, create, &hooks, |e| e.trip(duration)),
        Action::Reset { name, hooks } => by_hand(&store, &name, false, &hooks, Engine::reset),
        Action::Disable {
            name,
            create,
            hooks,
        } => by_hand(&store, &name, create, &hooks, Engine::disable),
        Action::Enable { name, hooks } => by_hand(&store, &name, false, &hooks, Engine::enable),
        Action::Record {
            name,
            outcome,
            quiet,
            policy,
            hooks,
        } => record_outcome(&store, &name, outcome, quiet, &policy, &hooks),
        Action::List => list(&store),
        Action::Forget { name } => store.forget(&name).map(|()| Exit::Success).map_err(failed),
        Action::Metrics { output } => metrics(&store, output),
        Action::Name { .. } | Action::Completions(_) | Action::Man { .. } => {
            unreachable!("handled above")
        }
    };
    tell(&store);
    result.unwrap_or_else(|(exit, msg)| {
        say(&msg);
        exit
    })
}

/// Says what the store did that the user should hear about; never while a
/// record is locked.
fn tell(store: &impl Store) {
    for event in store.take_events() {
        warn(&event.to_string());
    }
}

/// The subcommands that need no state directory: `name`, `completions`,
/// `man`. None for the others.
#[inline(never)]
fn without_state(action: &Action) -> Option<Exit> {
    let text = match action {
        Action::Name { name } => format!("{name}\n"),
        Action::Completions(shell) => crate::cli::generate::completions(*shell),
        Action::Man { list: true, .. } => crate::cli::man::pages()
            .into_iter()
            .map(|(name, _)| name + "\n")
            .collect(),
        Action::Man { page, .. } => {
            let page = page.as_deref().unwrap_or("cbreak");
            match crate::cli::man::page_named(page) {
                Some(text) => text,
                None => {
                    say(&format!(
                        "no man page '{page}'; 'cbreak man --list' lists them"
                    ));
                    return Some(Exit::Error);
                }
            }
        }
        _ => return None,
    };
    Some(match output::print(&text) {
        Ok(()) => Exit::Success,
        Err(e) => {
            say(&format!("cannot write to stdout: {e}"));
            Exit::Error
        }
    })
}

/// Changes an existing breaker (or, with `create`, one made now, under
/// the default policy) by hand, and fires the hooks of the transition
/// that makes, once the record is unlocked. These commands print nothing:
/// the user asked for the change.
fn by_hand<'s, S: Store>(
    store: &'s S,
    name: &str,
    create: bool,
    hooks: &Hooks,
    change: impl FnOnce(&mut Engine<&'s S>) -> Result<Changed, StoreError>,
) -> Result<Exit, Failed> {
    if !create {
        must_exist(store, name)?;
    }
    let mut engine = Engine::new(store, name, Policy::default());
    let (transition, state) = change(&mut engine).map_err(failed)?;
    drop(engine);
    if let Some(t) = transition {
        crate::hooks::fire(hooks, name, &t, &state);
    }
    Ok(after_hooks())
}

/// How a command that changed a breaker by hand ends once its hooks ran:
/// dying of a signal it received meanwhile (forwarded to the hooks), as
/// `run` does, else success.
fn after_hooks() -> Exit {
    match exec::received() {
        Some(sig) => Exit::Killed(sig),
        None => Exit::Success,
    }
}

/// A misspelled name must not make a new breaker and leave the real one as
/// it was: `reset`, `enable`, `trip` and `disable` change only a breaker
/// that exists (a `forget` between this check and the change is the one
/// way one is made again).
fn must_exist(store: &impl Store, name: &str) -> Result<(), Failed> {
    if store.exists(name) {
        return Ok(());
    }
    // A store that cannot be read at all (a dangling state-directory
    // symlink) has no breakers to miss: say why it cannot be read.
    store.readable().map_err(failed)?;
    let names = store.names().unwrap_or_default();
    let hint = match closest(name, &names) {
        Some(other) => format!(" (did you mean '{other}'?)"),
        None if names.is_empty() => " (there are none yet)".to_string(),
        None => " ('cbreak list' shows them)".to_string(),
    };
    Err((
        Exit::Problem,
        format!(
            "no breaker named '{name}' in {}{hint}; nothing was changed",
            store.location()
        ),
    ))
}

/// The name among `names` nearest to `name`, if one is near enough to be
/// a slip of the keyboard: a few edits, an adjacent swap counting as one
/// (optimal string alignment).
fn closest<'a>(name: &str, names: &'a [String]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::osa_distance(name, n), n))
        .filter(|(d, n)| *d <= (n.len().max(name.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n.as_str())
}

/// A failed subcommand: how to exit and what to say.
type Failed = (Exit, String);

/// A missing or damaged breaker is a finding (exit 1); anything else that
/// stops cbreak is its own error (exit 125).
fn failed(e: StoreError) -> Failed {
    let exit = if e.is_finding() {
        Exit::Problem
    } else {
        Exit::Error
    };
    (exit, words(&e))
}

/// A store's error in the command line's words.
fn words(e: &StoreError) -> String {
    output::store_error(e, &output::COMMAND)
}

fn io_failed(what: &str) -> impl FnOnce(std::io::Error) -> Failed + '_ {
    move |e| (Exit::Error, format!("cannot write {what}: {e}"))
}

/// `cbreak run`.
#[inline(never)]
fn run_command<S: Store>(store: Result<S, String>, rc: RunConfig) -> Exit {
    let name = rc.name.clone().unwrap_or_else(|| default_name(&rc.command));
    let policy = rc.policy;
    let decided = store.map_err(Err).and_then(|store| {
        let mut breaker = Engine::new(store, &name, policy);
        let admitted = breaker.admit(|admission, t, s| (admission, t, *s));
        // What the store did on the way (a corrupt record kept aside) is
        // told even when it then failed (a full disk).
        tell(breaker.store());
        match admitted {
            Ok(d) => Ok((breaker, d)),
            Err(e) => Err(unwritable(&mut breaker, &rc, &name, &e).ok_or_else(|| words(&e))),
        }
    });
    let (mut breaker, (admission, transition, state)) = match decided {
        Ok(d) => d,
        Err(Ok(skipped)) => return skipped,
        Err(Err(msg)) => return state_error(&rc, &name, &msg),
    };
    let hooks_ran = announce(&rc.hooks, rc.quiet, &name, transition, &state);
    let ticket = match admission {
        Admission::Run(ticket) => ticket,
        Admission::Reject(rejection) => {
            return skip(&rc, &name, rejection, &state, breaker.now());
        }
    };
    if ticket.probe && hooks_ran {
        // The hooks took time out of the probe's lease: start it again now,
        // so that no hook, however slow, lets a second probe through.
        if let Err(e) = breaker.renew_lease(ticket) {
            warn(&format!("the probe's lease was not renewed: {}", words(&e)));
        }
    }
    let finished = match spawn(&rc) {
        Ok(f) => f,
        Err(exit) => {
            // Not the guarded call failing: give back the probe slot, if any.
            let _ = breaker.release(ticket);
            return exit;
        }
    };
    let end = match (finished.timed_out, finished.status) {
        (true, _) => End::TimedOut,
        (false, Status::Exited(code)) => End::Exited(code),
        (false, Status::Signaled(sig)) => End::Signaled(sig),
    };
    let elapsed = u64::try_from(finished.elapsed.as_millis()).unwrap_or(u64::MAX);
    let call = policy.classify(end, elapsed, finished.cancelled);
    if finished.timed_out && !rc.quiet {
        warn(&format!(
            "'{}' ran longer than {} and was killed",
            program(&rc.command),
            span(policy.timeout.unwrap_or(0))
        ));
    }
    let recorded = breaker.record(ticket, call);
    // Closing the breaker gives back the probe lock, if the store kept it.
    let store = breaker.close();
    tell(&store);
    match recorded {
        Ok((t, state)) => {
            announce(&rc.hooks, rc.quiet, &name, t, &state);
        }
        Err(e) => warn(&format!(
            "the outcome may not have been recorded: {}",
            words(&e)
        )),
    }
    ended(&finished, rc.preserve_status)
}

/// A breaker whose state cannot be written (a read-only disk, a server
/// that reads but does not write) but can be read as rejecting calls is
/// skipped all the same: only counting the skip is lost. `None` when it
/// cannot be read either, or would let the call through: the state error
/// then goes its usual way (`--on-state-error`).
#[cold]
fn unwritable<S: Store>(
    breaker: &mut Engine<S>,
    rc: &RunConfig,
    name: &str,
    e: &StoreError,
) -> Option<Exit> {
    if !matches!(breaker.would_admit(), Ok(Some(false))) {
        return None;
    }
    // A warning about the state, as for a state error: --quiet does not
    // hide it.
    warn(&format!(
        "skipped '{}': breaker '{name}' rejects calls, but the skip could not be counted: {}",
        program(&rc.command),
        words(e)
    ));
    Some(fallback(rc))
}

/// How cbreak ends after running a command: 124 if it timed out (its
/// status with `--preserve-status`); else dying of the signal the command
/// died of, or of the signal that stopped cbreak; else with the command's
/// status.
fn ended(f: &exec::Finished, preserve_status: bool) -> Exit {
    match (f.timed_out, f.status, exec::received()) {
        (true, status, _) if preserve_status => Exit::Child(status.exit_code()),
        (true, _, _) => Exit::TimedOut,
        (false, Status::Signaled(sig), _) | (false, Status::Exited(_), Some(sig)) => {
            Exit::Killed(sig)
        }
        (false, Status::Exited(code), None) => Exit::Child(code),
    }
}

fn program(argv: &[OsString]) -> String {
    argv.first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn spawn(rc: &RunConfig) -> Result<exec::Finished, Exit> {
    let argv = &rc.command;
    let spec = exec::Spec {
        argv,
        timeout: rc.policy.timeout.map(Duration::from_millis),
        timeout_signal: rc.timeout_signal,
        kill_after: Duration::from_millis(rc.policy.kill_after),
        group: if rc.foreground {
            exec::Group::Foreground
        } else {
            exec::Group::Shared
        },
        env: &[],
        forward_signals: true,
        quiet_stdio: false,
    };
    exec::run(&spec).map_err(|e| {
        let (exit, err) = match e {
            SpawnError::NotFound(err) => (Exit::NotFound, err),
            SpawnError::CannotExecute(err) => (Exit::CannotExecute, err),
        };
        say(&format!("cannot run '{}': {err}", program(argv)));
        exit
    })
}

/// The state could not be used: fail open, skip or fail, as asked.
fn state_error(rc: &RunConfig, name: &str, msg: &str) -> Exit {
    let what = match rc.on_state_error {
        OnStateError::Run => "running the command anyway (--on-state-error run)",
        OnStateError::Skip => "skipping the command (--on-state-error skip)",
        OnStateError::Fail => "not running the command (--on-state-error fail)",
    };
    unavailable(name, msg, what, rc.on_state_error);
    match rc.on_state_error {
        OnStateError::Run => match spawn(rc) {
            Ok(f) => ended(&f, rc.preserve_status),
            Err(exit) => exit,
        },
        // As if the breaker were open: the fallback, if there is one.
        OnStateError::Skip => fallback(rc),
        OnStateError::Fail => Exit::Error,
    }
}

/// Says that `name`'s state cannot be used (`msg`) and what is done
/// instead (`what`): a warning, or an error when that ends cbreak with 125.
fn unavailable(name: &str, msg: &str, what: &str, mode: OnStateError) {
    let line = format!("breaker '{name}' unavailable: {msg}; {what}");
    match mode {
        OnStateError::Fail => say(&line),
        OnStateError::Run | OnStateError::Skip => warn(&line),
    }
}

/// Tells the user about a transition this process made, and fires hooks.
/// Whether it made one (and so may have run hooks).
fn announce(
    hooks: &Hooks,
    quiet: bool,
    name: &str,
    t: Option<Transition>,
    s: &BreakerState,
) -> bool {
    let Some(t) = t else { return false };
    if !quiet {
        match t.to {
            State::Open => say(&format!(
                "breaker '{name}' opened: {}; skipping runs for {}",
                crate::output::reason(t.reason),
                span(s.next_probe_at.saturating_sub(t.at))
            )),
            State::Closed => say(&format!(
                "breaker '{name}' closed: {}",
                crate::output::reason(t.reason)
            )),
            State::HalfOpen | State::ForcedOpen => {}
        }
    }
    crate::hooks::fire(hooks, name, &t, s);
    true
}

/// The call is not run: say why, then the fallback or the open exit code.
fn skip(rc: &RunConfig, name: &str, r: Rejection, s: &BreakerState, now: Millis) -> Exit {
    if !rc.quiet && !rc.quiet_skips {
        let why = s
            .history
            .oldest_first()
            .last()
            .filter(|t| t.to != State::Closed)
            .map(|t| format!(" ({})", crate::output::reason(t.reason)))
            .unwrap_or_default();
        let msg = match r.state {
            State::ForcedOpen => {
                format!("breaker '{name}' is forced open{why}; 'cbreak reset {name}' closes it")
            }
            State::HalfOpen => {
                format!("breaker '{name}' is half-open and its probe is still running")
            }
            _ => format!(
                "breaker '{name}' is open{why}; next probe {}",
                relative(r.next_probe_at.unwrap_or(0), now)
            ),
        };
        say(&format!("skipped '{}': {msg}", program(&rc.command)));
    }
    fallback(rc)
}

/// A skipped call ends: `--fallback` runs and gives the status, or cbreak
/// exits with the open exit code.
fn fallback(rc: &RunConfig) -> Exit {
    match &rc.fallback {
        None => Exit::Skipped(rc.open_exit_code),
        Some(cmd) => {
            let argv = exec::shell(cmd);
            let spec = exec::Spec {
                argv: &argv,
                timeout: None,
                timeout_signal: libc::SIGTERM,
                kill_after: Duration::ZERO,
                group: exec::Group::Shared,
                env: &[],
                forward_signals: true,
                quiet_stdio: false,
            };
            match exec::run(&spec) {
                Ok(f) => ended(&f, false),
                Err(SpawnError::NotFound(e) | SpawnError::CannotExecute(e)) => {
                    say(&format!("cannot run the fallback with sh: {e}"));
                    Exit::CannotExecute
                }
            }
        }
    }
}

fn status(store: &impl Store, name: Option<&str>, view: View) -> Result<Exit, Failed> {
    let now = store.now();
    let style = Style::detect(view.color, view.ascii);
    if let Some(name) = name {
        let s = store.read(name).map_err(failed)?;
        let text = if view.json {
            json_line(&status::json(name, &s, now))
        } else {
            status::detail(name, &s, now, style)
        };
        output::print(&text).map_err(io_failed("the status"))?;
        return Ok(Exit::Success);
    }
    let (breakers, ok) = read_all(store)?;
    let text = if view.json {
        let all: Vec<_> = breakers
            .iter()
            .map(|(n, s)| status::json(n, s, now))
            .collect();
        json_line(&all)
    } else if breakers.is_empty() && ok {
        format!("no breakers in {}\n", store.location())
    } else if breakers.is_empty() {
        // Some could not be read (said on stderr): not "no breakers".
        String::new()
    } else {
        status::table(&breakers, now, style)
    };
    output::print(&text).map_err(io_failed("the status"))?;
    Ok(if ok { Exit::Success } else { Exit::Problem })
}

fn json_line(v: &impl serde::Serialize) -> String {
    let mut text = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    text.push('\n');
    text
}

/// Every readable breaker; a record that cannot be read is reported and
/// left out (and makes the second value false).
fn read_all(store: &impl Store) -> Result<(Vec<(String, BreakerState)>, bool), Failed> {
    store.readable().map_err(failed)?;
    let names = store.names().map_err(failed)?;
    let mut ok = true;
    let mut breakers = Vec::with_capacity(names.len());
    for name in names {
        match store.read(&name) {
            Ok(s) => breakers.push((name, s)),
            // Forgotten since the listing: not a problem.
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => {
                say(&words(&e));
                ok = false;
            }
        }
    }
    Ok((breakers, ok))
}

/// `cbreak check`: reads, never moves or changes anything. A state that
/// cannot be used is handled as `run` handles it.
#[inline(never)]
fn check(
    store: Result<impl Store, String>,
    name: &str,
    policy: &crate::breaker::Policy,
    on_state_error: OnStateError,
) -> Exit {
    let verdict = store.and_then(|store| {
        Engine::new(store, name, *policy)
            .would_admit()
            .map_err(|e| words(&e))
    });
    match verdict {
        Ok(Some(false)) => Exit::Skipped(75),
        Ok(Some(true) | None) => Exit::Success,
        Err(msg) => {
            let (what, exit) = match on_state_error {
                OnStateError::Run => ("a call would run (--on-state-error run)", Exit::Success),
                OnStateError::Skip => (
                    "a call would be skipped (--on-state-error skip)",
                    Exit::Skipped(75),
                ),
                OnStateError::Fail => ("--on-state-error fail", Exit::Error),
            };
            unavailable(name, &msg, what, on_state_error);
            exit
        }
    }
}

/// `cbreak record`.
fn record_outcome(
    store: &impl Store,
    name: &str,
    outcome: crate::breaker::Outcome,
    quiet: bool,
    policy: &crate::breaker::Policy,
    hooks: &Hooks,
) -> Result<Exit, Failed> {
    let call = crate::breaker::Call {
        outcome,
        slow: false,
        timed_out: false,
    };
    let made = Engine::new(store, name, *policy)
        .record_external(call)
        .map_err(failed)?;
    tell(store);
    // Each hook sees the state its own transition left.
    for (t, state) in made {
        announce(hooks, quiet, name, Some(t), &state);
    }
    Ok(after_hooks())
}

fn list(store: &impl Store) -> Result<Exit, Failed> {
    store.readable().map_err(failed)?;
    let names = store.names().map_err(failed)?;
    let mut text = names.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    output::print(&text).map_err(io_failed("the list"))?;
    Ok(Exit::Success)
}

fn metrics(store: &impl Store, path: Option<PathBuf>) -> Result<Exit, Failed> {
    let (breakers, ok) = read_all(store)?;
    let text = crate::metrics::render(&breakers);
    match path {
        Some(path) if path.as_os_str() != "-" => crate::metrics::write_atomically(&path, &text)
            .map_err(|e| (Exit::Error, format!("cannot write {}: {e}", path.display())))?,
        _ => output::print(&text).map_err(io_failed("the metrics"))?,
    }
    Ok(if ok { Exit::Success } else { Exit::Problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slip_of_the_keyboard_finds_the_breaker_meant() {
        let names = ["nightly-backup".to_string(), "api".to_string()];
        assert_eq!(closest("nightly-bakcup", &names), Some("nightly-backup"));
        assert_eq!(closest("apj", &names), Some("api"));
        assert_eq!(closest("prices", &names), None);
        assert_eq!(closest("nightyl-backup", &names), Some("nightly-backup"));
    }
}
