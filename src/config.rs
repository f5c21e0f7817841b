//! Plain configuration, made once from the parsed command line.
//!
//! Owns the value parsers (durations, percentages, exit-code lists, window
//! sizes, names) and the checks that span several options, and turns
//! `cli::Cli` into a [`Config`]. Nothing after this module sees clap.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::breaker::{Backoff, CodeSet, Millis, Outcome, Policy, Window};
use crate::cli::{self, BackoffArg, ColorArg, OnStateError, OutcomeArg};
use crate::window::MAX_COUNT_WINDOW;

/// Failure-rate window used when `--failure-rate` is given without `--window`
/// (resilience4j's default).
pub const DEFAULT_WINDOW: Window = Window::Count(100);

/// A breaker name, checked.
pub fn parse_name(s: &str) -> Result<String, String> {
    crate::store::validate_name(s).map(|()| s.to_string())
}

/// A duration: `30s`, `5m`, `1h 30m`, `250ms`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Millis, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return secs
            .checked_mul(1000)
            .ok_or_else(|| format!("'{s}' seconds is too long"));
    }
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 30s, 5m, 1h, 250ms"))?;
    u64::try_from(d.as_millis()).map_err(|_| format!("'{s}' is too long"))
}

/// A percentage above 0 and at most 100 (`50%`, `50`, `12.5`), in basis
/// points. 0 is allowed only where it means "off" (`--jitter`).
pub fn parse_percent(s: &str) -> Result<u32, String> {
    let number = s.trim().trim_end_matches('%');
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a percentage; use e.g. 50% or 50"))?;
    if !(0.0..=100.0).contains(&value) {
        return Err(format!(
            "'{s}' is out of range: a percentage is from 0 to 100"
        ));
    }
    Ok((value * 100.0).round() as u32)
}

/// A window: a count of calls (1 to 1024) or a duration (at least 20 ms, so
/// that each of its 20 buckets spans at least 1 ms).
pub fn parse_window(s: &str) -> Result<Window, String> {
    if let Ok(n) = s.trim().parse::<u32>() {
        return if (1..=MAX_COUNT_WINDOW).contains(&n) {
            Ok(Window::Count(n))
        } else {
            Err(format!(
                "a window of {n} calls is out of range: use 1 to {MAX_COUNT_WINDOW}, or a duration"
            ))
        };
    }
    let ms = parse_duration(s)?;
    if ms < 20 {
        return Err(format!("a window of '{s}' is too short: use at least 20ms"));
    }
    Ok(Window::Time(ms))
}

/// Exit codes and ranges: `0`, `0,2-5`, `1-255`.
pub fn parse_codes(s: &str) -> Result<CodeSet, String> {
    let bad = |part: &str| {
        format!("'{part}' in '{s}' is not an exit code (0-255) or a range of them (2-5)")
    };
    let code = |t: &str, part: &str| t.trim().parse::<u8>().map_err(|_| bad(part));
    let mut set = CodeSet::default();
    for part in s.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (code(a, part)?, code(b, part)?),
            None => {
                let c = code(part, part)?;
                (c, c)
            }
        };
        if lo > hi {
            return Err(format!("range '{part}' in '{s}' runs backwards"));
        }
        for c in lo..=hi {
            set.insert(c);
        }
    }
    Ok(set)
}

/// A backoff factor above 1 and at most 100, in thousandths.
pub fn parse_factor(s: &str) -> Result<u32, String> {
    let f: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number; use e.g. 2 or 1.5"))?;
    // Judged after rounding to what is stored (thousandths): 1.0000001
    // would be stored as 1 and never grow (found by the fuzz target
    // `options`).
    let milli = (f * 1000.0).round();
    if !(milli > 1000.0 && milli <= 100_000.0) {
        return Err(format!(
            "'{s}' is out of range: the factor must be above 1 and at most 100, in steps of 0.001"
        ));
    }
    Ok(milli as u32)
}

/// Everything cbreak was asked to do.
#[derive(Debug)]
pub struct Config {
    pub state_dir: Option<PathBuf>,
    pub allow_network_fs: bool,
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
    },
    Reset {
        name: String,
    },
    Check {
        name: String,
    },
    Record {
        name: String,
        outcome: Outcome,
        quiet: bool,
        hooks: Hooks,
    },
    Disable {
        name: String,
    },
    Enable {
        name: String,
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
    Completions(cli::ShellArg),
    /// Print a man page, or the pages' names.
    Man {
        page: Option<String>,
        list: bool,
    },
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
    pub fallback: Option<String>,
    pub hooks: Hooks,
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
        use cli::Command as C;
        let action = match cli.command {
            C::Run(run) => Action::Run(RunConfig {
                name: run.name,
                policy: policy(&run.threshold, run.recovery, &run.policy)?,
                open_exit_code: run.open_exit_code,
                on_state_error: run.on_state_error,
                quiet: run.quiet,
                fallback: run.fallback,
                hooks: hooks(run.hooks),
                command: run.command,
            }),
            C::Status(s) => Action::Status {
                name: s.name,
                view: View {
                    json: s.json,
                    ascii: s.ascii.then_some(true),
                    color: match s.color {
                        ColorArg::Auto => None,
                        ColorArg::Always => Some(true),
                        ColorArg::Never => Some(false),
                    },
                },
            },
            C::Trip(t) => Action::Trip {
                name: t.name,
                duration: t.duration,
            },
            C::Reset(n) => Action::Reset { name: n.name },
            C::Check(c) => Action::Check {
                name: match c.name {
                    Some(name) => name,
                    None => crate::store::default_name(&c.command),
                },
            },
            C::Record(r) => Action::Record {
                name: r.name,
                outcome: match r.outcome {
                    OutcomeArg::Success => Outcome::Success,
                    OutcomeArg::Failure => Outcome::Failure,
                    OutcomeArg::Ignored => Outcome::Ignored,
                },
                quiet: r.quiet,
                hooks: hooks(r.hooks),
            },
            C::Disable(n) => Action::Disable { name: n.name },
            C::Enable(n) => Action::Enable { name: n.name },
            C::List(_) => Action::List,
            C::Forget(n) => Action::Forget { name: n.name },
            C::Metrics(m) => Action::Metrics { output: m.output },
            C::Name(n) => Action::Name {
                name: crate::store::default_name(&n.command),
            },
            C::Completions(c) => Action::Completions(c.shell),
            C::Man(m) => Action::Man {
                page: m.page,
                list: m.list,
            },
        };
        Ok(Config {
            state_dir: cli.global.state_dir,
            allow_network_fs: cli.global.allow_network_fs,
            action,
        })
    }
}

fn hooks(h: cli::HookArgs) -> Hooks {
    Hooks {
        on_open: h.on_open,
        on_close: h.on_close,
        on_half_open: h.on_half_open,
        on_change: h.on_change,
        timeout: h.hook_timeout,
    }
}

fn policy(threshold: &u32, recovery: Millis, p: &cli::PolicyArgs) -> Result<Policy, String> {
    let window = match (p.failure_rate, p.window) {
        (Some(_), Some(w)) => w,
        (Some(_), None) => DEFAULT_WINDOW,
        (None, Some(_)) => {
            return Err(
                "--window needs --failure-rate: it is the window the rate is measured over".into(),
            );
        }
        (None, None) => Window::None,
    };
    if p.failure_rate == Some(0) {
        return Err("--failure-rate 0% would open on the first call; use a rate above 0".into());
    }
    if let Window::Count(n) = window
        && p.min_calls > n
    {
        return Err(format!(
            "--min-calls {} is larger than --window {n}: the rate could never be judged",
            p.min_calls
        ));
    }
    if *threshold == 0 && p.failure_rate.is_none() {
        return Err("--threshold 0 turns off the consecutive rule; give --failure-rate too, or the breaker can never open (use 'cbreak disable' for metrics only)".into());
    }
    if p.timeout == Some(0) {
        return Err("--timeout 0 would kill every command at once; give a duration above 0".into());
    }
    if p.slow == Some(0) {
        return Err("--slow 0 would count every call as slow; give a duration above 0".into());
    }
    if p.probes == 0 {
        return Err("--probes 0 would never close the breaker; use 1 or more".into());
    }
    if !p.jitter.is_multiple_of(100) {
        return Err("--jitter must be a whole percentage from 0 to 100".into());
    }
    let ignore = p.ignore_codes.unwrap_or_default();
    if ignore.intersects(&p.success_codes) {
        return Err(format!(
            "--ignore-codes {} and --success-codes {} overlap: a code cannot be both",
            ignore.to_list(),
            p.success_codes.to_list()
        ));
    }
    if p.max_recovery < recovery {
        return Err(format!(
            "--max-recovery {} is shorter than --recovery {}",
            crate::output::span(p.max_recovery),
            crate::output::span(recovery)
        ));
    }
    Ok(Policy {
        threshold: *threshold,
        recovery,
        failure_rate: p.failure_rate,
        window,
        min_calls: p.min_calls,
        slow: p.slow,
        timeout: p.timeout,
        kill_after: p.kill_after,
        success_codes: p.success_codes,
        ignore_codes: ignore,
        backoff: match p.backoff {
            BackoffArg::Constant => Backoff::Constant,
            BackoffArg::Exponential => Backoff::Exponential,
        },
        backoff_factor_milli: p.backoff_factor,
        max_recovery: p.max_recovery,
        jitter_percent: p.jitter / 100,
        probes: p.probes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn run_config(args: &[&str]) -> Result<RunConfig, String> {
        let mut argv = vec!["cbreak", "run"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--", "true"]);
        let cli = cli::Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        match Config::from_cli(cli)?.action {
            Action::Run(r) => Ok(r),
            _ => unreachable!(),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("30"), Ok(30_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("1h 30m"), Ok(5_400_000));
        assert!(parse_duration("soon").unwrap_err().contains("30s"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration(&u64::MAX.to_string()).is_err());
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("50%"), Ok(5_000));
        assert_eq!(parse_percent("50"), Ok(5_000));
        assert_eq!(parse_percent("12.5%"), Ok(1_250));
        assert!(parse_percent("150%").unwrap_err().contains("0 to 100"));
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("NaN").is_err());
        assert!(parse_percent("half").is_err());
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window("20"), Ok(Window::Count(20)));
        assert_eq!(parse_window("1m"), Ok(Window::Time(60_000)));
        assert!(parse_window("0").is_err());
        assert!(parse_window("1025").is_err());
        assert!(parse_window("10ms").is_err());
    }

    #[test]
    fn backoff_factor_that_rounds_to_one_is_refused() {
        // Regression: found by the fuzz target `options`, now in its corpus
        // as regression-factor-rounds-to-one.
        assert!(parse_factor("1.0000000000021000000000000000001").is_err());
        assert!(parse_factor("1.0004").is_err());
        assert_eq!(parse_factor("1.001"), Ok(1001));
        assert_eq!(parse_factor("100"), Ok(100_000));
        assert!(parse_factor("100.0004").is_ok());
        assert!(parse_factor("100.001").is_err());
        assert!(parse_factor("inf").is_err() && parse_factor("NaN").is_err());
    }

    #[test]
    fn code_lists() {
        assert_eq!(parse_codes("0,2-5").unwrap().to_list(), "0,2-5");
        assert_eq!(parse_codes("255").unwrap().to_list(), "255");
        for bad in ["", "a", "256", "5-2", "1,,2", "-1", "1-"] {
            assert!(parse_codes(bad).is_err(), "{bad}");
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
        assert!(err(&["--slow", "0s"]).contains("--slow 0"));
        assert!(err(&["--probes", "0"]).contains("--probes 0"));
        assert!(err(&["--ignore-codes", "0"]).contains("overlap"));
        assert!(err(&["--threshold", "0"]).contains("--threshold 0"));
        assert!(err(&["--max-recovery", "1s"]).contains("--max-recovery"));
        assert!(err(&["--failure-rate", "150%"]).contains("150%"));
    }

    #[test]
    fn failure_rate_alone_gets_the_default_window() {
        let r = run_config(&["--failure-rate", "50"]).unwrap();
        assert_eq!(r.policy.window, DEFAULT_WINDOW);
        assert_eq!(r.policy.failure_rate, Some(5_000));
    }
}
