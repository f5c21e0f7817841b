//! What each subcommand does, from a [`Config`] to an [`Exit`].
//!
//! Owns the order of work — decide under the lock, unlock, run, record
//! under the lock, then talk and fire hooks — and the user-facing messages
//! around it. The decisions are `breaker`'s, the files `store`'s, the
//! processes `exec`'s.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use crate::breaker::{Admission, BreakerState, End, Rejection, State, Transition};
use crate::cli::OnStateError;
use crate::config::{Action, Config, Hooks, RunConfig, View};
use crate::exec::{self, SpawnError, Status};
use crate::exit::Exit;
use crate::host::{System, now_ms};
use crate::output::{self, Style, relative, say, span, warn};
use crate::store::{Store, StoreError, default_name};

/// Where records live: `--state-dir`/`CBREAK_STATE_DIR` (already in
/// `explicit`), else `$XDG_STATE_HOME/cbreak`, else
/// `$HOME/.local/state/cbreak`.
pub fn state_dir(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    explicit
        .filter(|d| !d.as_os_str().is_empty())
        .or_else(|| {
            var("XDG_STATE_HOME")
                .filter(|d| d.is_absolute())
                .map(|d| d.join("cbreak"))
        })
        .or_else(|| var("HOME").map(|h| h.join(".local/state/cbreak")))
        .ok_or_else(|| {
            "no state directory: HOME is not set; give --state-dir DIR or set CBREAK_STATE_DIR"
                .to_string()
        })
}

/// Carries out `config`.
pub fn execute(config: Config) -> Exit {
    if let Some(exit) = without_state(&config.action) {
        return exit;
    }
    let allow_network_fs = config.allow_network_fs;
    let store = state_dir(config.state_dir).map(|dir| Store::new(dir, allow_network_fs));
    if let Action::Run(run) = config.action {
        return run_command(store, run);
    }
    let store = match store {
        Ok(s) => s,
        Err(msg) => {
            say(&msg);
            return Exit::Error;
        }
    };
    let result = match config.action {
        Action::Run(_) => unreachable!("handled above"),
        Action::Status { name, view } => status(&store, name.as_deref(), view),
        Action::Trip { name, duration } => update(&store, &name, |s| {
            s.trip(duration, now_ms());
        }),
        Action::Reset { name } => update(&store, &name, |s| {
            s.reset(now_ms());
        }),
        Action::Disable { name } => update(&store, &name, |s| {
            s.disable(now_ms());
        }),
        Action::Enable { name } => update(&store, &name, |s| s.enable(now_ms())),
        Action::Check { name } => check(&store, &name),
        Action::Record {
            name,
            outcome,
            quiet,
            hooks,
        } => record(&store, &name, outcome, quiet, &hooks),
        Action::List => list(&store),
        Action::Forget { name } => store.forget(&name).map(|()| Exit::Success).map_err(failed),
        Action::Metrics { output } => metrics(&store, output),
        Action::Name { .. } | Action::Completions(_) | Action::Man { .. } => {
            unreachable!("handled above")
        }
    };
    result.unwrap_or_else(|(exit, msg)| {
        say(&msg);
        exit
    })
}

/// The subcommands that need no state directory: `name`, `completions`,
/// `man`. None for the others.
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

fn fresh_state() -> BreakerState {
    BreakerState::new(
        now_ms(),
        std::process::id(),
        crate::breaker::Policy::default(),
    )
}

fn update(store: &Store, name: &str, f: impl FnOnce(&mut BreakerState)) -> Result<Exit, Failed> {
    store
        .update(&mut None, name, fresh_state, f)
        .map(|()| Exit::Success)
        .map_err(failed)
}

/// A failed subcommand: how to exit and what to say.
type Failed = (Exit, String);

/// A missing or damaged breaker is a finding (exit 1); anything else that
/// stops cbreak is its own error (exit 125).
fn failed(e: StoreError) -> Failed {
    let exit = match e {
        StoreError::NotFound { .. } | StoreError::Corrupt { .. } => Exit::Problem,
        StoreError::Newer { .. } | StoreError::Refused { .. } | StoreError::Io { .. } => {
            Exit::Error
        }
    };
    (exit, e.to_string())
}

fn io_failed(what: &str) -> impl FnOnce(std::io::Error) -> Failed + '_ {
    move |e| (Exit::Error, format!("cannot write {what}: {e}"))
}

/// `cbreak run`.
fn run_command(store: Result<Store, String>, rc: RunConfig) -> Exit {
    let name = rc.name.clone().unwrap_or_else(|| default_name(&rc.command));
    let mut host = System::new();
    let mut slot = None;
    let policy = rc.policy;
    let fresh = || BreakerState::new(now_ms(), std::process::id(), policy);
    let decided = store.and_then(|store| {
        store
            .update(&mut slot, &name, fresh, |s| {
                let (admission, t) = s.admit(&policy, &mut host);
                (admission, t, *s)
            })
            .map(|d| (store, d))
            .map_err(|e| e.to_string())
    });
    let (store, (admission, transition, state)) = match decided {
        Ok(d) => d,
        Err(msg) => return state_error(&rc, &name, &msg),
    };
    announce(&rc.hooks, rc.quiet, &name, transition, &state);
    let ticket = match admission {
        Admission::Run(ticket) => ticket,
        Admission::Reject(rejection) => return skip(&rc, &name, rejection, &state),
    };
    let finished = match spawn(&rc.command, &policy) {
        Ok(f) => f,
        Err(exit) => {
            // Not the guarded call failing: give back the probe slot, if any.
            let _ = store.update(&mut slot, &name, fresh, |s| s.release(ticket));
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
    match store.update(&mut slot, &name, fresh, |s| {
        let t = s.record(ticket, call, &mut host);
        (t, *s)
    }) {
        Ok((t, state)) => announce(&rc.hooks, rc.quiet, &name, t, &state),
        Err(e) => warn(&format!("the outcome was not recorded: {e}")),
    }
    if finished.timed_out {
        Exit::TimedOut
    } else {
        Exit::Child(finished.status.exit_code())
    }
}

fn program(argv: &[OsString]) -> String {
    argv.first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn spawn(argv: &[OsString], policy: &crate::breaker::Policy) -> Result<exec::Finished, Exit> {
    let spec = exec::Spec {
        argv,
        timeout: policy.timeout.map(Duration::from_millis),
        kill_after: Duration::from_millis(policy.kill_after),
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
    warn(&format!("breaker '{name}' unavailable: {msg}; {what}"));
    match rc.on_state_error {
        OnStateError::Run => match spawn(&rc.command, &rc.policy) {
            Ok(f) if f.timed_out => Exit::TimedOut,
            Ok(f) => Exit::Child(f.status.exit_code()),
            Err(exit) => exit,
        },
        OnStateError::Skip => Exit::Skipped(rc.open_exit_code),
        OnStateError::Fail => Exit::Error,
    }
}

/// Tells the user about a transition this process made, and fires hooks.
fn announce(hooks: &Hooks, quiet: bool, name: &str, t: Option<Transition>, s: &BreakerState) {
    let Some(t) = t else { return };
    if !quiet {
        match t.to {
            State::Open => say(&format!(
                "breaker '{name}' opened: {}; skipping runs for {}",
                t.reason.describe(),
                span(s.next_probe_at.saturating_sub(t.at))
            )),
            State::Closed => say(&format!("breaker '{name}' closed: {}", t.reason.describe())),
            State::HalfOpen | State::ForcedOpen => {}
        }
    }
    crate::hooks::fire(hooks, name, &t, s);
}

/// The call is not run: say why, then the fallback or the open exit code.
fn skip(rc: &RunConfig, name: &str, r: Rejection, s: &BreakerState) -> Exit {
    if !rc.quiet {
        let why = s
            .history
            .oldest_first()
            .last()
            .filter(|t| t.to != State::Closed)
            .map(|t| format!(" ({})", t.reason.describe()))
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
                relative(r.next_probe_at.unwrap_or(0), now_ms())
            ),
        };
        say(&format!("skipped '{}': {msg}", program(&rc.command)));
    }
    match &rc.fallback {
        None => Exit::Skipped(rc.open_exit_code),
        Some(cmd) => {
            let argv: [OsString; 3] = [OsStr::new("sh").into(), "-c".into(), cmd.into()];
            let spec = exec::Spec {
                argv: &argv,
                timeout: None,
                kill_after: Duration::ZERO,
                env: &[],
                forward_signals: true,
                quiet_stdio: false,
            };
            match exec::run(&spec) {
                Ok(f) => Exit::Child(f.status.exit_code()),
                Err(SpawnError::NotFound(e) | SpawnError::CannotExecute(e)) => {
                    say(&format!("cannot run the fallback with sh: {e}"));
                    Exit::CannotExecute
                }
            }
        }
    }
}

fn status(store: &Store, name: Option<&str>, view: View) -> Result<Exit, Failed> {
    let now = now_ms();
    let style = Style::detect(view.color, view.ascii);
    if let Some(name) = name {
        let s = store.read(name).map_err(failed)?;
        let text = if view.json {
            json_line(&output::json(name, &s, now))
        } else {
            output::detail(name, &s, now, style)
        };
        output::print(&text).map_err(io_failed("the status"))?;
        return Ok(Exit::Success);
    }
    let (breakers, ok) = read_all(store)?;
    let text = if view.json {
        let all: Vec<_> = breakers
            .iter()
            .map(|(n, s)| output::json(n, s, now))
            .collect();
        json_line(&all)
    } else if breakers.is_empty() {
        format!("no breakers in {}\n", store.dir().display())
    } else {
        output::table(&breakers, now, style)
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
fn read_all(store: &Store) -> Result<(Vec<(String, BreakerState)>, bool), Failed> {
    let names = store.names().map_err(failed)?;
    let mut ok = true;
    let mut breakers = Vec::with_capacity(names.len());
    for name in names {
        match store.read(&name) {
            Ok(s) => breakers.push((name, s)),
            // Forgotten since the listing: not a problem.
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => {
                say(&e.to_string());
                ok = false;
            }
        }
    }
    Ok((breakers, ok))
}

fn check(store: &Store, name: &str) -> Result<Exit, Failed> {
    let s = match store.read(name) {
        Ok(s) => s,
        Err(StoreError::NotFound { .. }) => return Ok(Exit::Success),
        Err(e) => return Err(failed(e)),
    };
    Ok(if s.would_admit(&mut System::new()) {
        Exit::Success
    } else {
        Exit::Skipped(75)
    })
}

fn record(
    store: &Store,
    name: &str,
    outcome: crate::breaker::Outcome,
    quiet: bool,
    hooks: &Hooks,
) -> Result<Exit, Failed> {
    let mut host = System::new();
    let call = crate::breaker::Call {
        outcome,
        slow: false,
        timed_out: false,
    };
    let (transitions, state) = store
        .update(&mut None, name, fresh_state, |s| {
            (s.record_external(call, &mut host), *s)
        })
        .map_err(failed)?;
    for t in transitions {
        announce(hooks, quiet, name, Some(t), &state);
    }
    Ok(Exit::Success)
}

fn list(store: &Store) -> Result<Exit, Failed> {
    let names = store.names().map_err(failed)?;
    let mut text = names.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    output::print(&text).map_err(io_failed("the list"))?;
    Ok(Exit::Success)
}

fn metrics(store: &Store, path: Option<PathBuf>) -> Result<Exit, Failed> {
    let (breakers, ok) = read_all(store)?;
    let text = crate::metrics::render(&breakers);
    match path {
        None => output::print(&text).map_err(io_failed("the metrics"))?,
        Some(path) => crate::metrics::write_atomically(&path, &text)
            .map_err(|e| (Exit::Error, format!("cannot write {}: {e}", path.display())))?,
    }
    Ok(if ok { Exit::Success } else { Exit::Problem })
}
