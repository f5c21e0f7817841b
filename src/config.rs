//! Plain configuration, made once from the parsed command line.
//!
//! Owns the checks that span several options, and turns the parsed
//! command line (`cli::Cli`) into a [`Config`] of plain values: nothing
//! after this module sees the command line's types.
//! Single values are parsed by `value`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::breaker::{Backoff, Millis, Outcome, Policy};
use crate::cli::{self, Args, BackoffArg, ColorArg, OnStateErrorArg, OutcomeArg};
use crate::spec::{Field, Invalid, Spec};

/// Everything cbreak was asked to do.
#[derive(Debug)]
pub struct Config {
    /// The shared store `--store` names; `None` for the state directory.
    pub store: Option<crate::store::FleetConfig>,
    pub state_dir: Option<PathBuf>,
    pub allow_network_fs: bool,
    /// How long to wait for another process's lock on a record.
    pub lock_wait: Duration,
    pub action: Action,
}

// Made once per process and never moved about: boxing the big variant
// would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Action {
    Run(RunConfig),
    Status {
        name: Option<String>,
        view: View,
    },
    Trip {
        name: String,
        duration: Option<Millis>,
        create: bool,
        hooks: Hooks,
    },
    Reset {
        name: String,
        hooks: Hooks,
    },
    Check {
        name: String,
        policy: Policy,
        on_state_error: OnStateError,
    },
    Record {
        name: String,
        outcome: Outcome,
        quiet: bool,
        policy: Policy,
        hooks: Hooks,
    },
    Disable {
        name: String,
        create: bool,
        hooks: Hooks,
    },
    Enable {
        name: String,
        hooks: Hooks,
    },
    List,
    Forget {
        name: String,
    },
    Metrics {
        output: Option<PathBuf>,
    },
    /// Print a breaker's name (`cbreak name`).
    Name {
        name: String,
    },
    /// Print a completion script.
    Completions(cli::generate::Shell),
    /// Print a man page, or the pages' names.
    Man {
        page: Option<String>,
        list: bool,
    },
}

/// What `run` and `check` do when the state cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStateError {
    /// Warn and run the command anyway (fail open).
    Run,
    /// Warn and skip, as if the breaker were open.
    Skip,
    /// Fail with exit 125.
    Fail,
}

impl From<OnStateErrorArg> for OnStateError {
    fn from(arg: OnStateErrorArg) -> OnStateError {
        match arg {
            OnStateErrorArg::Run => OnStateError::Run,
            OnStateErrorArg::Skip => OnStateError::Skip,
            OnStateErrorArg::Fail => OnStateError::Fail,
        }
    }
}

/// How `status` renders.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub json: bool,
    pub ascii: Option<bool>,
    pub color: Option<bool>,
}

#[derive(Debug)]
pub struct RunConfig {
    pub name: Option<String>,
    pub policy: Policy,
    pub open_exit_code: u8,
    pub on_state_error: OnStateError,
    pub quiet: bool,
    /// No message on a skip; transitions are still told.
    pub quiet_skips: bool,
    pub fallback: Option<String>,
    pub hooks: Hooks,
    /// The signal sent at `--timeout`.
    pub timeout_signal: i32,
    /// `--foreground`: with a timeout, move no process group.
    pub foreground: bool,
    /// `--preserve-status`: at a timeout, exit with the command's status.
    pub preserve_status: bool,
    pub command: Vec<OsString>,
}

/// Shell commands to run on transitions.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    pub on_open: Option<String>,
    pub on_close: Option<String>,
    pub on_half_open: Option<String>,
    pub on_change: Option<String>,
    pub timeout: Millis,
}

impl Config {
    /// Converts and cross-checks the parsed command line.
    pub fn from_cli(cli: cli::Cli) -> Result<Config, String> {
        use cli::Subcommand as C;
        let a = cli.args;
        let action = match cli.command {
            C::Run => Action::Run(RunConfig {
                policy: policy(&a)?,
                open_exit_code: a.open_exit_code,
                on_state_error: a.on_state_error.into(),
                quiet: a.quiet,
                quiet_skips: a.quiet_skips,
                fallback: match &a.fallback {
                    // `sh -c ''` succeeds: an emptied CBREAK_FALLBACK would
                    // turn every skip into a success.
                    Some(f) if f.trim().is_empty() => {
                        return Err(
                            "--fallback (or CBREAK_FALLBACK) is empty: give a shell command, or unset it"
                                .into(),
                        );
                    }
                    other => other.clone(),
                },
                hooks: hooks(&a)?,
                timeout_signal: a.signal,
                foreground: a.foreground,
                preserve_status: a.preserve_status,
                name: a.name,
                command: a.command,
            }),
            C::Status => Action::Status {
                name: a.name,
                view: View {
                    json: a.json,
                    ascii: a.ascii.then_some(true),
                    color: match a.color {
                        ColorArg::Auto => None,
                        ColorArg::Always => Some(true),
                        ColorArg::Never => Some(false),
                    },
                },
            },
            C::Trip => {
                if a.duration == Some(0) {
                    return Err(
                        "trip --for 0 would not open the breaker at all; give at least 1ms (e.g. 1h), or leave --for out to stay open until 'cbreak reset'"
                            .into(),
                    );
                }
                Action::Trip {
                    duration: a.duration,
                    create: a.create,
                    hooks: hooks(&a)?,
                    name: required(a.name, "NAME")?,
                }
            }
            C::Reset => Action::Reset {
                hooks: hooks(&a)?,
                name: required(a.name, "NAME")?,
            },
            C::Check => Action::Check {
                policy: policy(&a)?,
                on_state_error: a.on_state_error.into(),
                name: match a.name {
                    Some(name) => name,
                    None => crate::store::default_name(&a.command),
                },
            },
            C::Record => Action::Record {
                outcome: match required(a.outcome, "OUTCOME")? {
                    OutcomeArg::Success => Outcome::Success,
                    OutcomeArg::Failure => Outcome::Failure,
                    OutcomeArg::Ignored => Outcome::Ignored,
                },
                quiet: a.quiet,
                policy: policy(&a)?,
                hooks: hooks(&a)?,
                name: required(a.name, "NAME")?,
            },
            C::Disable => Action::Disable {
                create: a.create,
                hooks: hooks(&a)?,
                name: required(a.name, "NAME")?,
            },
            C::Enable => Action::Enable {
                hooks: hooks(&a)?,
                name: required(a.name, "NAME")?,
            },
            C::List => Action::List,
            C::Forget => Action::Forget {
                name: required(a.name, "NAME")?,
            },
            C::Metrics => Action::Metrics { output: a.output },
            C::Name => Action::Name {
                name: crate::store::default_name(&a.command),
            },
            C::Completions => Action::Completions(required(a.shell, "SHELL")?.into()),
            C::Man => Action::Man {
                page: a.page,
                list: a.list,
            },
        };
        global(
            a.state_dir,
            a.allow_network_fs,
            a.lock_timeout,
            a.store,
            a.store_prefix,
            a.store_timeout,
            a.store_expiry,
            action,
        )
    }
}

/// A positional argument the parser requires (so never missing here).
fn required<T>(value: Option<T>, name: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("missing <{name}>"))
}

/// The options of every subcommand, around the `action`.
#[allow(clippy::too_many_arguments)]
fn global(
    state_dir: Option<PathBuf>,
    allow_network_fs: bool,
    lock_timeout: Option<Millis>,
    store: Option<String>,
    store_prefix: Option<String>,
    store_timeout: Option<Millis>,
    store_expiry: Option<Millis>,
    action: Action,
) -> Result<Config, String> {
    let lock_wait = match lock_timeout {
        Some(ms) => Duration::from_millis(ms),
        None => crate::record::DEFAULT_LOCK_WAIT,
    };
    let store = match store {
        // An empty CBREAK_STORE (a CI secret a fork's job cannot see)
        // means the state directory, not a stopped job.
        Some(url) if url.trim().is_empty() => None,
        None => None,
        Some(url) => {
            let mut c = store_config(url.trim(), store_prefix, store_timeout, store_expiry)?;
            // Waiting for other processes is bounded the same way on
            // a server: compare-and-set retries stop after it.
            c.retry_for = lock_wait;
            Some(c)
        }
    };
    Ok(Config {
        store,
        state_dir,
        allow_network_fs,
        lock_wait,
        action,
    })
}

/// The shared store's settings: the URL checked now (a mistake in it is a
/// usage error, never a reason to fail open), the prefix, the timeouts.
fn store_config(
    url: &str,
    prefix: Option<String>,
    timeout: Option<Millis>,
    expiry: Option<Millis>,
) -> Result<crate::store::FleetConfig, String> {
    let mut c = crate::store::FleetConfig::new(crate::store::fleet::StoreUrl::parse(url)?);
    if let Some(prefix) = prefix {
        if prefix.contains(['{', '}']) {
            return Err(format!(
                "invalid value '{prefix}' for '--store-prefix <PREFIX>': braces are the breakers' hash tags; leave them out"
            ));
        }
        c.prefix = prefix;
    }
    if let Some(ms) = timeout {
        if ms == 0 {
            return Err(
                "invalid value '0' for '--store-timeout <DURATION>': give a time above zero".into(),
            );
        }
        c.timeout = Duration::from_millis(ms);
    }
    c.idle_expiry = match expiry {
        Some(0) => {
            return Err(
                "invalid value '0' for '--store-expiry <DURATION>': give a time above zero".into(),
            );
        }
        Some(ms) => Some(Duration::from_millis(ms)),
        None => None,
    };
    Ok(c)
}

fn hooks(h: &Args) -> Result<Hooks, String> {
    if h.hook_timeout == 0 {
        return Err(
            "--hook-timeout 0 would kill every hook at once; give at least 1ms (e.g. 10s)".into(),
        );
    }
    Ok(Hooks {
        on_open: h.on_open.clone(),
        on_close: h.on_close.clone(),
        on_half_open: h.on_half_open.clone(),
        on_change: h.on_change.clone(),
        timeout: h.hook_timeout,
    })
}

fn policy(p: &Args) -> Result<Policy, String> {
    let spec = Spec {
        threshold: p.threshold,
        recovery: p.recovery,
        failure_rate: p.failure_rate,
        window: p.window,
        min_calls: p.min_calls,
        slow: p.slow,
        timeout: p.timeout,
        kill_after: p.kill_after,
        success_codes: p.success_codes,
        ignore_codes: p.ignore_codes,
        backoff: match p.backoff {
            BackoffArg::Constant => Backoff::Constant,
            BackoffArg::Exponential => Backoff::Exponential,
        },
        backoff_factor_milli: p.backoff_factor,
        max_recovery: p.max_recovery,
        jitter: p.jitter,
        probes: p.probes,
    };
    spec.policy().map_err(|invalid| {
        let mut msg = invalid.message(option);
        if invalid == Invalid::NoRule {
            msg.push_str(" (use 'cbreak disable' for metrics only)");
        }
        msg
    })
}

/// A policy's field as the command line names it.
fn option(field: Field) -> &'static str {
    match field {
        Field::Threshold => "--threshold",
        Field::Recovery => "--recovery",
        Field::FailureRate => "--failure-rate",
        Field::Window => "--window",
        Field::MinCalls => "--min-calls",
        Field::Slow => "--slow",
        Field::Timeout => "--timeout",
        Field::SuccessCodes => "--success-codes",
        Field::IgnoreCodes => "--ignore-codes",
        Field::MaxRecovery => "--max-recovery",
        Field::Jitter => "--jitter",
        Field::Probes => "--probes",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_config(args: &[&str]) -> Result<RunConfig, String> {
        let mut argv = vec!["cbreak", "run"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--", "true"]);
        let argv: Vec<OsString> = argv.into_iter().map(OsString::from).collect();
        let cli = cli::parse::parse(argv).map_err(|e| format!("{e:?}"))?;
        match Config::from_cli(cli)?.action {
            Action::Run(r) => Ok(r),
            _ => unreachable!(),
        }
    }

    #[test]
    fn cross_option_checks_name_the_options() {
        let err = |args: &[&str]| run_config(args).unwrap_err();
        assert!(
            err(&["--failure-rate", "50%", "--window", "5"])
                .contains("--min-calls 10 is larger than --window 5")
        );
        assert!(err(&["--window", "5"]).contains("--window needs --failure-rate"));
        assert!(err(&["--timeout", "0"]).contains("--timeout 0"));
        assert!(err(&["--recovery", "0"]).contains("--recovery 0"));
        assert!(err(&["-r", "0ms"]).contains("at least 1ms"));
        assert!(err(&["--hook-timeout", "0s"]).contains("--hook-timeout 0"));
        assert!(err(&["--slow", "0s"]).contains("--slow 0"));
        assert!(err(&["--probes", "0"]).contains("--probes 0"));
        assert!(err(&["--ignore-codes", "0"]).contains("overlap"));
        assert!(err(&["--threshold", "0"]).contains("--threshold 0"));
        assert!(
            err(&["--backoff", "exponential", "--max-recovery", "1s"])
                .contains("give --max-recovery 30s or more")
        );
        assert!(err(&["--failure-rate", "150%"]).contains("150%"));
    }

    #[test]
    fn max_recovery_caps_exponential_backoff_only_and_defaults_to_at_least_recovery() {
        // The README's cron recipe: -r 6h with the default constant backoff.
        let r = run_config(&["-r", "6h"]).unwrap();
        assert_eq!(r.policy.recovery, 6 * 3_600_000);
        assert_eq!(r.policy.max_recovery, 6 * 3_600_000);
        let r = run_config(&["-r", "2h", "--backoff", "exponential"]).unwrap();
        assert_eq!(r.policy.max_recovery, 2 * 3_600_000);
        let r = run_config(&["-r", "10s", "--backoff", "exponential"]).unwrap();
        assert_eq!(r.policy.max_recovery, crate::spec::DEFAULT_MAX_RECOVERY);
        // A cap given with constant backoff means nothing and is no conflict.
        assert!(run_config(&["-r", "6h", "--max-recovery", "1h"]).is_ok());
        let e = run_config(&[
            "-r",
            "6h",
            "--backoff",
            "exponential",
            "--max-recovery",
            "1h",
        ])
        .unwrap_err();
        assert!(
            e.contains("give --max-recovery 6h or more, or a shorter --recovery"),
            "{e}"
        );
    }

    #[test]
    fn failure_rate_alone_gets_the_default_window() {
        let r = run_config(&["--failure-rate", "50"]).unwrap();
        assert_eq!(r.policy.window, crate::spec::DEFAULT_WINDOW);
        assert_eq!(r.policy.failure_rate, Some(5_000));
    }
}
