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
//! its help and its errors. The options are declared once, in `options`;
//! tests check that table against clap's definition, and that on random command lines this parser, whenever it
//! answers, answers exactly as clap does.

use std::ffi::OsString;
use std::path::PathBuf;

use super::options::OPTIONS;
use super::{BackoffArg, Cli, Command, GlobalArgs, HookArgs, OnStateErrorArg, PolicyArgs, RunArgs};
use crate::breaker::CodeSet;
use crate::value::parse_duration;

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
        if values[i].is_some() {
            continue;
        }
        let Some(var) = o.env else { continue };
        if let Some(v) = std::env::var_os(var) {
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
    let mut run = blank(command);
    for (o, given) in OPTIONS.iter().zip(values) {
        // Given (on the command line or by its variable), else the default.
        if let Some(v) = given.or(o.default) {
            (o.set)(&mut run, v)?;
        }
    }
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

/// `run`'s arguments before any option is set: what an absent option
/// without a default leaves (every option with a default sets its field).
fn blank(command: Vec<OsString>) -> RunArgs {
    RunArgs {
        name: None,
        threshold: 0,
        recovery: 0,
        open_exit_code: 0,
        on_state_error: OnStateErrorArg::Run,
        quiet: false,
        quiet_skips: false,
        fallback: None,
        policy: PolicyArgs {
            failure_rate: None,
            window: None,
            min_calls: 0,
            timeout: None,
            kill_after: 0,
            signal: 0,
            foreground: false,
            preserve_status: false,
            slow: None,
            success_codes: CodeSet::default(),
            ignore_codes: None,
            backoff: BackoffArg::Constant,
            backoff_factor: 0,
            max_recovery: None,
            jitter: 0,
            probes: 0,
        },
        hooks: HookArgs {
            on_open: None,
            on_close: None,
            on_half_open: None,
            on_change: None,
            hook_timeout: 0,
        },
        command,
    }
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
                a.get_env().map(|e| e.to_string_lossy().into_owned()),
                o.env.map(String::from),
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

    /// `run`'s argument in clap's definition that `long` names.
    fn clap_arg(long: &str) -> clap::Arg {
        Cli::command()
            .find_subcommand("run")
            .and_then(|run| {
                run.get_arguments()
                    .find(|a| a.get_long() == Some(long))
                    .cloned()
            })
            .unwrap_or_else(|| panic!("--{long} is not in clap's definition"))
    }

    /// Values to try for an option, drawn from its declaration: its
    /// default, its possible values, and good and bad values of the kind
    /// its value name says.
    fn samples(long: &str) -> Vec<String> {
        let a = clap_arg(long);
        let mut v: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        v.extend(
            a.get_possible_values()
                .iter()
                .map(|p| p.get_name().to_string()),
        );
        let kind = a
            .get_value_names()
            .and_then(|n| n.first())
            .map(|n| n.as_str().to_string())
            .unwrap_or_default();
        let more: &[&str] = match kind.as_str() {
            "N" => &["0", "3", "+3", "x", "99999999999"],
            "DURATION" => &["250ms", "2m", "7", "soon"],
            "PCT" => &["50%", "10", "150%"],
            "N|DURATION" => &["20", "1m", "0"],
            "LIST" => &["0,2-5", "141", "3-1"],
            "SIG" => &["INT", "9", "NOPE"],
            "F" => &["1.5", "3", "1"],
            "NAME" => &["api", "a/b"],
            "MODE" | "KIND" => &["bogus"],
            _ => &["echo hi", "x"],
        };
        v.extend(more.iter().map(|s| s.to_string()));
        v
    }

    /// Whether the lean parser agrees with clap on `args`: `Some(true)`
    /// when it answered (and clap took the same), `Some(false)` when it
    /// declined, `None` (with a message) when they disagree.
    fn agree(args: &[OsString]) -> Result<bool, String> {
        let Some(fast) = parse(args) else {
            return Ok(false);
        };
        match Cli::try_parse_from(args) {
            Ok(clap) if format!("{fast:?}") == format!("{clap:?}") => Ok(true),
            Ok(clap) => Err(format!("{args:?}:\n fast: {fast:?}\n clap: {clap:?}")),
            Err(e) => Err(format!(
                "{args:?}: clap refused what the fast path took: {e}"
            )),
        }
    }

    #[test]
    fn every_option_in_every_form_agrees_with_clap() {
        for o in OPTIONS {
            let mut forms: Vec<Vec<String>> = Vec::new();
            if o.flag {
                forms.push(vec![format!("--{}", o.long)]);
                forms.push(vec![format!("--{}=1", o.long)]);
                forms.extend(o.short.map(|c| vec![format!("-{c}")]));
            } else {
                for v in samples(o.long) {
                    forms.push(vec![format!("--{}", o.long), v.clone()]);
                    forms.push(vec![format!("--{}={v}", o.long)]);
                    forms.extend(o.short.map(|c| vec![format!("-{c}"), v.clone()]));
                }
            }
            let mut answered = 0;
            for form in forms {
                let mut args = argv(&["cbreak", "run"]);
                args.extend(form.iter().map(OsString::from));
                args.extend(argv(&["--", "true"]));
                answered += usize::from(agree(&args).unwrap_or_else(|e| panic!("{e}")));
            }
            // Each option is read by the fast path, not only declined.
            assert!(answered > 0, "the fast path never took --{}", o.long);
        }
    }

    /// The variables the lean parser reads besides the options' own.
    const GLOBAL_VARS: [(&str, &[&str]); 3] = [
        ("CBREAK_STATE_DIR", &["/s", ""]),
        ("CBREAK_ALLOW_NETWORK_FS", &["1", "no", "bogus"]),
        ("CBREAK_LOCK_TIMEOUT", &["2s", "soon"]),
    ];

    /// Runs the environment's test in a process of its own, the one
    /// place where it may change the environment: the lean parser and clap
    /// both read the process's variables.
    #[test]
    fn the_environment_is_read_as_clap_reads_it() {
        if std::env::var_os("CBREAK_FAST_ENV_CHILD").is_some() {
            return environment_child();
        }
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args([
            "--exact",
            "cli::fast::tests::the_environment_is_read_as_clap_reads_it",
            "--test-threads=1",
            "--nocapture",
        ]);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CBREAK_") {
                child.env_remove(k);
            }
        }
        let out = child.env("CBREAK_FAST_ENV_CHILD", "1").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("environments checked"),
            "the child ran no test: {text}"
        );
    }

    fn set_env(k: &str, v: Option<&str>) {
        // SAFETY: only `environment_child` calls this, in a process that
        // runs that one test on one thread (`--exact`, `--test-threads=1`,
        // see `the_environment_is_read_as_clap_reads_it`): no other thread
        // reads or writes the environment meanwhile.
        unsafe {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }

    fn environment_child() {
        let lines: Vec<Vec<OsString>> = {
            let mut lines = vec![argv(&["cbreak", "run", "--", "true"])];
            for o in OPTIONS {
                // The command line wins over the variable.
                let given = match (o.flag, samples(o.long).first()) {
                    (true, _) => vec![format!("--{}", o.long)],
                    (false, Some(v)) => vec![format!("--{}", o.long), v.clone()],
                    (false, None) => continue,
                };
                let mut args = argv(&["cbreak", "run"]);
                args.extend(given.iter().map(OsString::from));
                args.extend(argv(&["--", "true"]));
                lines.push(args);
            }
            lines
        };
        let mut vars: Vec<(String, Vec<String>)> = GLOBAL_VARS
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect();
        for o in OPTIONS {
            let Some(var) = o.env else { continue };
            let values = if o.flag {
                [
                    "1", "true", "yes", "on", "0", "no", "off", "TRUE", "bogus", "",
                ]
                .map(String::from)
                .to_vec()
            } else {
                let mut v = samples(o.long);
                v.push(String::new());
                v
            };
            vars.push((var.to_string(), values));
        }
        let mut checked = 0;
        let mut check = |why: &str| {
            for args in &lines {
                if let Err(e) = agree(args) {
                    panic!("with {why}: {e}");
                }
            }
            checked += 1;
        };
        // Each variable alone, with each of its values.
        for (k, values) in &vars {
            for v in values {
                set_env(k, Some(v));
                check(&format!("{k}={v:?}"));
            }
            set_env(k, None);
        }
        // Many at once, chosen by a fixed-seed generator.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let mut set = Vec::new();
            for (k, values) in &vars {
                if next() % 4 == 0 {
                    let v = &values[(next() % values.len() as u64) as usize];
                    set_env(k, Some(v));
                    set.push(format!("{k}={v:?}"));
                }
            }
            check(&set.join(" "));
            for (k, _) in &vars {
                set_env(k, None);
            }
        }
        println!("{checked} environments checked");
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
        // The fixed words, and every option as the declaration spells it.
        let mut pool: Vec<String> = POOL.iter().map(|w| w.to_string()).collect();
        for o in OPTIONS {
            pool.push(format!("--{}", o.long));
            pool.extend(o.short.map(|c| format!("-{c}")));
        }
        let word = proptest::sample::select(pool.clone());
        let shaped = (
            proptest::collection::vec(
                proptest::sample::select(&["--state-dir", "/s", "--allow-network-fs"][..]),
                0..2,
            ),
            proptest::collection::vec(
                (
                    proptest::sample::select(pool.clone()),
                    proptest::sample::select(pool.clone()),
                ),
                0..5,
            ),
            proptest::bool::ANY,
            proptest::collection::vec(proptest::sample::select(pool), 0..3),
        )
            .prop_map(|(globals, pairs, dashes, command)| {
                let mut v: Vec<String> = globals.iter().map(|s| s.to_string()).collect();
                v.push("run".into());
                for (a, b) in pairs {
                    v.push(a);
                    v.push(b);
                }
                if dashes {
                    v.push("--".into());
                }
                v.extend(command);
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
