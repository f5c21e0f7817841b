//! A lean parser for the plain shapes of `cbreak run`, the hot path.
//!
//! clap builds its whole definition before it reads a word, and on this
//! machine that is most of what `cbreak run` costs beyond starting a
//! process (BENCHMARKS.md: about 0.17 ms of a 0.26 ms overhead on the skip
//! path). ripgrep left clap for the same reason. This parser knows `run`'s
//! options and nothing else, and declines — returns `None`, and clap parses
//! the command line instead — on anything it is not sure of: another
//! subcommand, help, an unknown, repeated, bundled or hyphen-valued option,
//! a value its parser rejects, a non-UTF-8 option or variable, an empty
//! variable. So clap stays the one definition of the command line,
//! its help and its errors. Tests check the option table against clap's
//! definition, and that on random command lines this parser, whenever it
//! answers, answers exactly as clap does.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{BackoffArg, Cli, Command, GlobalArgs, HookArgs, OnStateError, PolicyArgs, RunArgs};
use crate::config::{
    parse_codes, parse_duration, parse_factor, parse_name, parse_percent, parse_signal,
    parse_window,
};

/// One option of `run`: how it is written, its default, its variable.
pub(super) struct Opt {
    pub long: &'static str,
    pub short: Option<char>,
    pub default: Option<&'static str>,
    pub env: &'static str,
    /// A flag takes no value.
    pub flag: bool,
}

const fn opt(
    long: &'static str,
    short: Option<char>,
    default: Option<&'static str>,
    env: &'static str,
) -> Opt {
    Opt {
        long,
        short,
        default,
        env,
        flag: false,
    }
}

/// `run`'s options, as `RunArgs`, `PolicyArgs` and `HookArgs` define them
/// (checked against clap by `option_table_matches_clap`).
pub(super) const OPTIONS: [Opt; 29] = [
    opt("name", Some('n'), None, ""),
    opt("threshold", Some('t'), Some("5"), "CBREAK_THRESHOLD"),
    opt("recovery", Some('r'), Some("30s"), "CBREAK_RECOVERY"),
    opt("open-exit-code", None, Some("75"), "CBREAK_OPEN_EXIT_CODE"),
    opt("on-state-error", None, Some("run"), "CBREAK_ON_STATE_ERROR"),
    Opt {
        long: "quiet",
        short: Some('q'),
        default: None,
        env: "CBREAK_QUIET",
        flag: true,
    },
    opt("fallback", None, None, "CBREAK_FALLBACK"),
    opt("failure-rate", None, None, "CBREAK_FAILURE_RATE"),
    opt("window", None, None, "CBREAK_WINDOW"),
    opt("min-calls", None, Some("10"), "CBREAK_MIN_CALLS"),
    opt("timeout", None, None, "CBREAK_TIMEOUT"),
    opt("kill-after", None, Some("5s"), "CBREAK_KILL_AFTER"),
    opt("slow", None, None, "CBREAK_SLOW"),
    opt("success-codes", None, Some("0"), "CBREAK_SUCCESS_CODES"),
    opt("ignore-codes", None, None, "CBREAK_IGNORE_CODES"),
    opt("backoff", None, Some("constant"), "CBREAK_BACKOFF"),
    opt("backoff-factor", None, Some("2"), "CBREAK_BACKOFF_FACTOR"),
    opt("max-recovery", None, None, "CBREAK_MAX_RECOVERY"),
    opt("jitter", None, Some("0"), "CBREAK_JITTER"),
    opt("probes", None, Some("1"), "CBREAK_PROBES"),
    opt("on-open", None, None, "CBREAK_ON_OPEN"),
    opt("on-close", None, None, "CBREAK_ON_CLOSE"),
    opt("on-half-open", None, None, "CBREAK_ON_HALF_OPEN"),
    opt("on-change", None, None, "CBREAK_ON_CHANGE"),
    opt("hook-timeout", None, Some("10s"), "CBREAK_HOOK_TIMEOUT"),
    opt("signal", Some('s'), Some("TERM"), "CBREAK_SIGNAL"),
    Opt {
        long: "foreground",
        short: None,
        default: None,
        env: "CBREAK_FOREGROUND",
        flag: true,
    },
    Opt {
        long: "preserve-status",
        short: None,
        default: None,
        env: "CBREAK_PRESERVE_STATUS",
        flag: true,
    },
    Opt {
        long: "quiet-skips",
        short: None,
        default: None,
        env: "CBREAK_QUIET_SKIPS",
        flag: true,
    },
];

/// `Some` when `args` (program name first) is a `cbreak run` this parser
/// is sure of; `None` means "ask clap".
pub fn parse(args: &[OsString]) -> Option<Cli> {
    let mut allow_network_fs = match std::env::var_os("CBREAK_ALLOW_NETWORK_FS") {
        Some(v) => boolish(&v)?,
        None => false,
    };
    let mut values: [Option<&str>; OPTIONS.len()] = [None; OPTIONS.len()];
    let mut state_dir: Option<&str> = None;
    let mut seen_run = false;
    let mut rest = args.get(1..)?.iter();
    let command: Vec<OsString> = loop {
        let arg = rest.next()?;
        let word = arg.to_str()?;
        if !seen_run {
            match word {
                "run" => seen_run = true,
                _ if word.starts_with("--state-dir") || word == "--allow-network-fs" => {
                    global(word, &mut rest, &mut state_dir, &mut allow_network_fs)?;
                }
                _ => return None,
            }
            continue;
        }
        if word == "--" {
            break rest.cloned().collect();
        }
        if !word.starts_with('-') {
            // The command and all its arguments, whatever they look like.
            break std::iter::once(arg).chain(rest).cloned().collect();
        }
        if word.starts_with("--state-dir") || word == "--allow-network-fs" {
            global(word, &mut rest, &mut state_dir, &mut allow_network_fs)?;
            continue;
        }
        let (index, inline) = find(word)?;
        if values[index].is_some() {
            return None; // repeated: clap's to judge
        }
        values[index] = Some(if OPTIONS[index].flag {
            if inline.is_some() {
                return None;
            }
            "true"
        } else {
            match inline {
                Some(v) => v,
                None => rest.next()?.to_str()?,
            }
        });
        if values[index].is_some_and(|v| v.is_empty() || v.starts_with('-') && !OPTIONS[index].flag)
        {
            return None;
        }
    };
    if !seen_run || command.is_empty() || command[0].is_empty() {
        return None;
    }
    let env_state_dir = std::env::var_os("CBREAK_STATE_DIR");
    if env_state_dir.as_ref().is_some_and(|d| d.is_empty()) {
        return None;
    }
    // An option not on the command line comes from its variable, as with
    // clap (a crontab sets CBREAK_ON_OPEN once for every line). An empty or
    // non-UTF-8 value is clap's to judge.
    let mut from_env: [Option<String>; OPTIONS.len()] = Default::default();
    for (i, o) in OPTIONS.iter().enumerate() {
        if o.env.is_empty() || values[i].is_some() {
            continue;
        }
        if let Some(v) = std::env::var_os(o.env) {
            if o.flag {
                if boolish(&v)? {
                    from_env[i] = Some("true".into());
                }
                continue;
            }
            from_env[i] = Some(v.into_string().ok().filter(|v| !v.is_empty())?);
        }
    }
    let values: [Option<&str>; OPTIONS.len()] =
        std::array::from_fn(|i| values[i].or(from_env[i].as_deref()));
    build(&values, state_dir, env_state_dir, allow_network_fs, command)
}

/// A flag's variable, as clap's `BoolishValueParser` reads it; anything but
/// these lower-case words is clap's to judge.
fn boolish(v: &std::ffi::OsStr) -> Option<bool> {
    match v.to_str()? {
        "y" | "yes" | "t" | "true" | "on" | "1" => Some(true),
        "n" | "no" | "f" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `--state-dir DIR`, `--state-dir=DIR` or `--allow-network-fs`.
fn global<'a>(
    word: &'a str,
    rest: &mut std::slice::Iter<'a, OsString>,
    state_dir: &mut Option<&'a str>,
    allow_network_fs: &mut bool,
) -> Option<()> {
    if word == "--allow-network-fs" {
        if *allow_network_fs {
            return None;
        }
        *allow_network_fs = true;
        return Some(());
    }
    let value = match word.strip_prefix("--state-dir") {
        Some("") => rest.next()?.to_str()?,
        Some(v) => v.strip_prefix('=')?,
        None => return None,
    };
    if state_dir.is_some() || value.is_empty() || value.starts_with('-') {
        return None;
    }
    *state_dir = Some(value);
    Some(())
}

/// The option `word` names, and its `=value` if attached.
fn find(word: &str) -> Option<(usize, Option<&str>)> {
    if let Some(long) = word.strip_prefix("--") {
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        let index = OPTIONS.iter().position(|o| o.long == name)?;
        return Some((index, inline));
    }
    let mut chars = word.strip_prefix('-')?.chars();
    let (short, None) = (chars.next()?, chars.next()) else {
        return None; // bundled or attached: clap's to judge
    };
    Some((OPTIONS.iter().position(|o| o.short == Some(short))?, None))
}

fn build(
    values: &[Option<&str>; OPTIONS.len()],
    state_dir: Option<&str>,
    env_state_dir: Option<OsString>,
    allow_network_fs: bool,
    command: Vec<OsString>,
) -> Option<Cli> {
    // Given on the command line, else the default.
    let value = |i: usize| values[i].or(OPTIONS[i].default);
    let dur = |i: usize| parse_duration(value(i)?).ok();
    let text = |i: usize| values[i].map(str::to_string);
    let run = RunArgs {
        name: optional(values[0], parse_name)?,
        threshold: digits(value(1)?)?,
        recovery: dur(2)?,
        open_exit_code: digits(value(3)?)?,
        on_state_error: match value(4)? {
            "run" => OnStateError::Run,
            "skip" => OnStateError::Skip,
            "fail" => OnStateError::Fail,
            _ => return None,
        },
        quiet: values[5].is_some(),
        quiet_skips: values[28].is_some(),
        fallback: text(6),
        policy: PolicyArgs {
            failure_rate: optional(values[7], parse_percent)?,
            window: optional(values[8], parse_window)?,
            min_calls: digits(value(9)?)?,
            timeout: optional(values[10], parse_duration)?,
            kill_after: dur(11)?,
            signal: parse_signal(value(25)?).ok()?,
            foreground: values[26].is_some(),
            preserve_status: values[27].is_some(),
            slow: optional(values[12], parse_duration)?,
            success_codes: parse_codes(value(13)?).ok()?,
            ignore_codes: optional(values[14], parse_codes)?,
            backoff: match value(15)? {
                "constant" => BackoffArg::Constant,
                "exponential" => BackoffArg::Exponential,
                _ => return None,
            },
            backoff_factor: parse_factor(value(16)?).ok()?,
            max_recovery: optional(values[17], parse_duration)?,
            jitter: parse_percent(value(18)?).ok()?,
            probes: digits(value(19)?)?,
        },
        hooks: HookArgs {
            on_open: text(20),
            on_close: text(21),
            on_half_open: text(22),
            on_change: text(23),
            hook_timeout: dur(24)?,
        },
        command,
    };
    Some(Cli {
        global: GlobalArgs {
            state_dir: state_dir
                .map(PathBuf::from)
                .or(env_state_dir.map(PathBuf::from)),
            allow_network_fs,
            lock_timeout: match std::env::var_os("CBREAK_LOCK_TIMEOUT") {
                Some(v) => Some(parse_duration(v.to_str()?).ok()?),
                None => None,
            },
        },
        command: Command::Run(run),
    })
}

/// An option without a default: `Some(None)` when absent, `None` (decline)
/// when its parser refuses the value.
fn optional<T>(
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Option<T>> {
    match value {
        Some(v) => parse(v).ok().map(Some),
        None => Some(None),
    }
}

/// A number written in plain digits; anything else (`+3`, `0x3`) is
/// clap's to judge.
fn digits<T: std::str::FromStr>(v: &str) -> Option<T> {
    v.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| v.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use proptest::prelude::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn option_table_matches_clap() {
        let cmd = Cli::command();
        let run = cmd.find_subcommand("run").unwrap();
        let ours: Vec<&str> = OPTIONS.iter().map(|o| o.long).collect();
        let theirs: Vec<&clap::Arg> = run
            .get_arguments()
            .filter(|a| {
                a.get_long().is_some() && !a.is_global_set() && a.get_long() != Some("help")
            })
            .collect();
        assert_eq!(ours.len(), theirs.len(), "{ours:?}");
        for a in theirs {
            let o = OPTIONS
                .iter()
                .find(|o| Some(o.long) == a.get_long())
                .unwrap_or_else(|| panic!("{:?} missing", a.get_long()));
            assert_eq!(o.short, a.get_short(), "{}", o.long);
            let default: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            assert_eq!(
                o.default.map(|d| vec![d.to_string()]).unwrap_or_default(),
                default,
                "{}",
                o.long
            );
            assert_eq!(
                a.get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                o.env,
                "{}",
                o.long
            );
            assert_eq!(o.flag, !a.get_action().takes_values(), "{}", o.long);
        }
    }

    #[test]
    fn plain_runs_take_the_fast_path_and_agree_with_clap() {
        for words in [
            &["cbreak", "run", "--", "true"][..],
            &["cbreak", "run", "--name", "b", "--", "/bin/true"],
            &[
                "cbreak",
                "run",
                "-n",
                "api",
                "-t",
                "3",
                "-r",
                "30s",
                "--",
                "curl",
                "-fsS",
                "https://x",
            ],
            &["cbreak", "run", "-n", "api", "-q", "curl", "--", "-x"],
            &[
                "cbreak",
                "--state-dir",
                "/s",
                "run",
                "--failure-rate=50%",
                "--window",
                "1m",
                "--min-calls",
                "4",
                "--",
                "true",
            ],
            &[
                "cbreak",
                "run",
                "--timeout",
                "5s",
                "--kill-after=1s",
                "-s",
                "KILL",
                "--foreground",
                "--preserve-status",
                "--slow",
                "2s",
                "--success-codes",
                "0,3-4",
                "--ignore-codes",
                "7",
                "true",
            ],
            &[
                "cbreak",
                "run",
                "--backoff",
                "exponential",
                "--backoff-factor",
                "1.5",
                "--max-recovery",
                "2h",
                "--jitter",
                "10%",
                "--probes",
                "2",
                "true",
            ],
            &[
                "cbreak",
                "run",
                "--on-open",
                "echo open",
                "--on-close=x",
                "--hook-timeout",
                "3s",
                "--open-exit-code",
                "0",
                "--on-state-error",
                "skip",
                "true",
            ],
        ] {
            let args = argv(words);
            let fast = parse(&args).unwrap_or_else(|| panic!("declined {words:?}"));
            let clap = Cli::try_parse_from(&args).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{words:?}");
        }
    }

    #[test]
    fn declines_what_it_is_not_sure_of() {
        for words in [
            &["cbreak", "status"][..],
            &["cbreak", "run", "--help"],
            &["cbreak", "run", "-qn", "x", "true"],
            &["cbreak", "run", "-nx", "true"],
            &["cbreak", "run", "-t", "3", "-t", "4", "true"],
            &["cbreak", "run", "--bogus", "true"],
            &["cbreak", "run", "-t", "x", "true"],
            &["cbreak", "run", "-t", "+3", "true"],
            &["cbreak", "run", "--name", "-x", "true"],
            &["cbreak", "run", "--"],
            &["cbreak", "run"],
            &["cbreak", "run", "--recovery", "soon", "true"],
        ] {
            assert!(parse(&argv(words)).is_none(), "{words:?}");
        }
    }

    const POOL: &[&str] = &[
        "run",
        "run",
        "--",
        "--",
        "true",
        "curl",
        "-f",
        "-",
        "x",
        "",
        "--name",
        "-n",
        "api",
        "a/b",
        "-t",
        "--threshold",
        "3",
        "0",
        "+3",
        "-1",
        "99999999999",
        "-r",
        "--recovery",
        "30s",
        "250ms",
        "soon",
        "-q",
        "--quiet",
        "--quiet=1",
        "--quiet-skips",
        "--failure-rate",
        "50%",
        "150%",
        "--window",
        "20",
        "1m",
        "0",
        "--window=5",
        "--min-calls",
        "5",
        "--timeout",
        "5s",
        "--slow",
        "--kill-after=1s",
        "-s",
        "--signal",
        "INT",
        "9",
        "--foreground",
        "--preserve-status",
        "--success-codes",
        "0,2-5",
        "--ignore-codes",
        "7",
        "3-1",
        "--backoff",
        "exponential",
        "linear",
        "--backoff-factor",
        "1.5",
        "1",
        "--max-recovery",
        "2h",
        "--jitter",
        "10",
        "--probes",
        "2",
        "--on-open",
        "echo hi",
        "--on-state-error",
        "skip",
        "--open-exit-code",
        "300",
        "--state-dir",
        "/s",
        "--state-dir=/t",
        "--allow-network-fs",
        "--hook-timeout",
        "--fallback",
        "--bogus",
        "-x",
        "-qn",
        "--help",
        "status",
        "-h",
        "--version",
    ];

    /// Command lines shaped like `run`'s (often valid, often not quite),
    /// and wholly random ones.
    fn command_line() -> impl Strategy<Value = Vec<String>> {
        let word = proptest::sample::select(POOL).prop_map(String::from);
        let shaped = (
            proptest::collection::vec(
                proptest::sample::select(&["--state-dir", "/s", "--allow-network-fs"][..]),
                0..2,
            ),
            proptest::collection::vec(
                (
                    proptest::sample::select(POOL),
                    proptest::sample::select(POOL),
                ),
                0..5,
            ),
            proptest::bool::ANY,
            proptest::collection::vec(proptest::sample::select(POOL), 0..3),
        )
            .prop_map(|(globals, pairs, dashes, command)| {
                let mut v: Vec<String> = globals.iter().map(|s| s.to_string()).collect();
                v.push("run".into());
                for (a, b) in pairs {
                    v.push(a.into());
                    v.push(b.into());
                }
                if dashes {
                    v.push("--".into());
                }
                v.extend(command.iter().map(|s| s.to_string()));
                v
            });
        prop_oneof![shaped, proptest::collection::vec(word, 0..10)]
    }

    #[test]
    fn whenever_it_answers_it_answers_as_clap_does() {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(4000));
        let answered = std::cell::Cell::new(0);
        runner
            .run(&command_line(), |words| {
                let mut args = vec![OsString::from("cbreak")];
                args.extend(words.iter().map(OsString::from));
                if let Some(fast) = parse(&args) {
                    answered.set(answered.get() + 1);
                    match Cli::try_parse_from(&args) {
                        Ok(clap) => {
                            prop_assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{:?}", words)
                        }
                        Err(e) => prop_assert!(
                            false,
                            "clap refused {:?} that the fast path took: {}",
                            words,
                            e
                        ),
                    }
                }
                Ok(())
            })
            .unwrap();
        assert!(
            answered.get() > 200,
            "the fast path answered only {} times",
            answered.get()
        );
    }
}
