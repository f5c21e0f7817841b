//! Plain configuration, made once from the parsed command line.
//!
//! Owns the value parsers (durations, percentages, exit-code lists, window
//! sizes, names) and the checks that span several options, and turns
//! `cli::Cli` into a [`Config`]. Nothing after this module sees clap.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::breaker::{Backoff, CodeSet, Millis, Outcome, Policy, Window};
use crate::cli::{self, BackoffArg, ColorArg, OnStateError, OutcomeArg};
use crate::window::MAX_COUNT_WINDOW;

/// Failure-rate window used when `--failure-rate` is given without `--window`
/// (resilience4j's default).
pub const DEFAULT_WINDOW: Window = Window::Count(100);

/// The exponential backoff's cap when `--max-recovery` is not given (or
/// `--recovery`, if that is longer).
pub const DEFAULT_MAX_RECOVERY: Millis = 60 * 60 * 1000;

/// A breaker name, checked.
pub fn parse_name(s: &str) -> Result<String, String> {
    crate::store::validate_name(s).map(|()| s.to_string())
}

/// What a duration is written with, for messages.
const DURATION_UNITS: &str = "use ms, s, m, h or d, e.g. 250ms, 30s, 1h 30m";

/// A duration: `30s`, `5m`, `1h 30m`, `250ms`, `2d`; a bare number is
/// seconds. The units are ms, s, m, h and d (with their long forms: sec,
/// min, hour, day...): nothing finer than a millisecond, which is all a
/// breaker keeps, and no months or years, whose length varies.
pub fn parse_duration(s: &str) -> Result<Millis, String> {
    let s = s.trim();
    let too_long = || format!("too long: at most {} days", u64::MAX / 86_400_000);
    if let Ok(secs) = s.parse::<u64>() {
        return secs.checked_mul(1000).ok_or_else(too_long);
    }
    let bad = || format!("not a duration; {DURATION_UNITS}");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| too_long())?;
        rest = rest[digits..].trim_start();
        let letters = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit: u64 = match &rest[..letters] {
            "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            "us" | "usec" | "usecs" | "microsecond" | "microseconds" | "ns" | "nsec" | "nsecs"
            | "nanosecond" | "nanoseconds" => {
                return Err(format!(
                    "finer than a millisecond: cbreak counts whole milliseconds; {DURATION_UNITS}"
                ));
            }
            unit @ ("w" | "week" | "weeks" | "M" | "month" | "months" | "y" | "year" | "years") => {
                return Err(format!("'{unit}' is not a unit here; {DURATION_UNITS}"));
            }
            _ => return Err(bad()),
        };
        rest = rest[letters..].trim_start();
        total = n
            .checked_mul(unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(too_long)?;
    }
    Ok(total)
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

/// A signal: a name with or without `SIG`, in any case (`TERM`, `sigkill`),
/// or a number from 1 to 64.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    const NAMES: [(&str, i32); 29] = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("ILL", libc::SIGILL),
        ("TRAP", libc::SIGTRAP),
        ("ABRT", libc::SIGABRT),
        ("BUS", libc::SIGBUS),
        ("FPE", libc::SIGFPE),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("SEGV", libc::SIGSEGV),
        ("USR2", libc::SIGUSR2),
        ("PIPE", libc::SIGPIPE),
        ("ALRM", libc::SIGALRM),
        ("TERM", libc::SIGTERM),
        ("CHLD", libc::SIGCHLD),
        ("CONT", libc::SIGCONT),
        ("STOP", libc::SIGSTOP),
        ("TSTP", libc::SIGTSTP),
        ("TTIN", libc::SIGTTIN),
        ("TTOU", libc::SIGTTOU),
        ("URG", libc::SIGURG),
        ("XCPU", libc::SIGXCPU),
        ("XFSZ", libc::SIGXFSZ),
        ("VTALRM", libc::SIGVTALRM),
        ("PROF", libc::SIGPROF),
        ("WINCH", libc::SIGWINCH),
        ("IO", libc::SIGIO),
        ("SYS", libc::SIGSYS),
    ];
    let word = s.trim();
    if let Ok(n) = word.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(format!(
                "signal {n} is out of range: use 1 to 64, or a name such as TERM"
            ))
        };
    }
    let upper = word.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, sig)| sig)
        .ok_or_else(|| {
            format!("'{s}' is not a signal; use a name such as TERM, INT, KILL, or a number")
        })
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
        use cli::Command as C;
        let action = match cli.command {
            C::Run(run) => Action::Run(RunConfig {
                name: run.name,
                policy: policy(&run.threshold, run.recovery, &run.policy)?,
                open_exit_code: run.open_exit_code,
                on_state_error: run.on_state_error,
                quiet: run.quiet,
                quiet_skips: run.quiet_skips,
                fallback: match run.fallback {
                    // `sh -c ''` succeeds: an emptied CBREAK_FALLBACK would
                    // turn every skip into a success.
                    Some(f) if f.trim().is_empty() => {
                        return Err(
                            "--fallback (or CBREAK_FALLBACK) is empty: give a shell command, or unset it"
                                .into(),
                        );
                    }
                    other => other,
                },
                hooks: hooks(run.hooks)?,
                timeout_signal: run.policy.signal,
                foreground: run.policy.foreground,
                preserve_status: run.policy.preserve_status,
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
            C::Trip(t) => {
                if t.duration == Some(0) {
                    return Err(
                        "trip --for 0 would not open the breaker at all; give at least 1ms (e.g. 1h), or leave --for out to stay open until 'cbreak reset'"
                            .into(),
                    );
                }
                Action::Trip {
                    name: t.name,
                    duration: t.duration,
                    create: t.create,
                    hooks: hooks(t.hooks)?,
                }
            }
            C::Reset(c) => Action::Reset {
                name: c.name,
                hooks: hooks(c.hooks)?,
            },
            C::Check(c) => Action::Check {
                name: match c.name {
                    Some(name) => name,
                    None => crate::store::default_name(&c.command),
                },
                policy: policy(&c.rules.threshold, c.rules.recovery, &c.policy)?,
                on_state_error: c.on_state_error,
            },
            C::Record(r) => Action::Record {
                name: r.name,
                outcome: match r.outcome {
                    OutcomeArg::Success => Outcome::Success,
                    OutcomeArg::Failure => Outcome::Failure,
                    OutcomeArg::Ignored => Outcome::Ignored,
                },
                quiet: r.quiet,
                policy: policy(&r.rules.threshold, r.rules.recovery, &r.policy)?,
                hooks: hooks(r.hooks)?,
            },
            C::Disable(d) => Action::Disable {
                name: d.name,
                create: d.create,
                hooks: hooks(d.hooks)?,
            },
            C::Enable(c) => Action::Enable {
                name: c.name,
                hooks: hooks(c.hooks)?,
            },
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
            lock_wait: match cli.global.lock_timeout {
                Some(ms) => Duration::from_millis(ms),
                None => crate::record::DEFAULT_LOCK_WAIT,
            },
            action,
        })
    }
}

fn hooks(h: cli::HookArgs) -> Result<Hooks, String> {
    if h.hook_timeout == 0 {
        return Err(
            "--hook-timeout 0 would kill every hook at once; give at least 1ms (e.g. 10s)".into(),
        );
    }
    Ok(Hooks {
        on_open: h.on_open,
        on_close: h.on_close,
        on_half_open: h.on_half_open,
        on_change: h.on_change,
        timeout: h.hook_timeout,
    })
}

pub(crate) fn policy(
    threshold: &u32,
    recovery: Millis,
    p: &cli::PolicyArgs,
) -> Result<Policy, String> {
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
    if recovery == 0 {
        return Err(
            "--recovery 0 would probe on every call while open; give at least 1ms (e.g. 30s)"
                .into(),
        );
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
    // The cap means something only to exponential backoff; without one
    // given, it is never below --recovery (a 6h recovery gets a 6h cap).
    let max_recovery = match (p.backoff, p.max_recovery) {
        (BackoffArg::Exponential, Some(max)) if max < recovery => {
            let (max, recovery) = (crate::output::span(max), crate::output::span(recovery));
            return Err(format!(
                "--max-recovery {max} is shorter than --recovery {recovery}: exponential backoff \
                 grows the open period from --recovery up to --max-recovery; give \
                 --max-recovery {recovery} or more, or a shorter --recovery"
            ));
        }
        (_, Some(max)) => max.max(recovery),
        (_, None) => DEFAULT_MAX_RECOVERY.max(recovery),
    };
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
        max_recovery,
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
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("10 minutes"), Ok(600_000));
        assert_eq!(parse_duration("0"), Ok(0));
        let soon = parse_duration("soon").unwrap_err();
        assert!(
            soon.contains("ms, s, m, h or d") && soon.len() < 120,
            "{soon}"
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_ok() && parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err() && parse_duration("1h x").is_err());
        assert!(parse_duration(&u64::MAX.to_string()).is_err());
        assert!(parse_duration("99999999999999999999ms").is_err());
        for refused in ["1month", "1M", "2y", "1w", "1years"] {
            assert!(
                parse_duration(refused)
                    .unwrap_err()
                    .contains("is not a unit"),
                "{refused}"
            );
        }
        for fine in ["1us", "1ns", "500us"] {
            assert!(
                parse_duration(fine).unwrap_err().contains("millisecond"),
                "{fine}"
            );
        }
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
    fn signals() {
        assert_eq!(parse_signal("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("sigkill"), Ok(libc::SIGKILL));
        assert_eq!(parse_signal("SIGINT"), Ok(libc::SIGINT));
        assert_eq!(parse_signal("9"), Ok(9));
        for bad in ["", "0", "65", "-1", "BOGUS", "SIG"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
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
        assert_eq!(r.policy.max_recovery, DEFAULT_MAX_RECOVERY);
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
        assert_eq!(r.policy.window, DEFAULT_WINDOW);
        assert_eq!(r.policy.failure_rate, Some(5_000));
    }
}
