//! Usage errors: clap's error turned into cbreak's one line.
//!
//! Owns what a user sees when the command line is wrong: the missing
//! argument or the bad value named, what is allowed (clap's possible
//! values, or the value parser's reason), the variable when the value came
//! from one, and the subcommand's own help to read. clap's tips are kept
//! only where they are true: "did you mean" suggestions stay, "use '-- -1'"
//! goes (after `run`'s `--` comes the command, not a value).

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// What to do with a parse error.
#[derive(Debug, PartialEq, Eq)]
pub enum Usage {
    /// Print this on stdout and exit 0 (help, version, plain `cbreak`
    /// without any argument).
    Print(String),
    /// Print `cbreak: ` and this one line on stderr and exit 125.
    Error(String),
}

/// Explains `e`, which parsing `args` (program name first) gave.
pub fn explain(e: &clap::Error, args: &[OsString]) -> Usage {
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let sub = subcommand(&words);
    let help = match &sub {
        Some(s) => format!("see 'cbreak {s} --help'"),
        None => "see 'cbreak --help'".to_string(),
    };
    let one = |k| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::StyledStr(s)) => Some(s.to_string()),
        Some(ContextValue::Strings(v)) => Some(v.join(" ")),
        _ => None,
    };
    let many = |k| match e.get(k) {
        Some(ContextValue::Strings(v)) => v.clone(),
        Some(ContextValue::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let msg = match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            return Usage::Print(e.render().to_string());
        }
        // Plain `cbreak`, typed to see what it does: the help. Options
        // without a subcommand (`cbreak --state-dir /x`, a crontab line
        // missing its `run`) are a mistake, and must not exit 0.
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            if sub.is_none() && args.len() <= 1 =>
        {
            return Usage::Print(super::command().render_help().to_string());
        }
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            if sub.is_none() =>
        {
            let names: Vec<String> = super::command()
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(|c| c.get_name().to_string())
                .collect();
            return Usage::Error(format!(
                "no subcommand after the options; give one of {}; see 'cbreak --help'",
                names.join(", ")
            ));
        }
        ErrorKind::MissingRequiredArgument => {
            let missing = many(ContextKind::InvalidArg).join(", ");
            // The subcommand's own usage, not clap's, which repeats what
            // was given (variables included).
            let mut cmd = super::command();
            cmd.build();
            let usage = sub
                .as_deref()
                .and_then(|s| cmd.find_subcommand_mut(s))
                .map(|c| {
                    let u = c.render_usage().to_string();
                    let u = u.trim().trim_start_matches("Usage:").trim().to_string();
                    format!(" (usage: {u})")
                })
                .unwrap_or_default();
            format!("missing {missing}{usage}; {help}")
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let arg = one(ContextKind::InvalidArg).unwrap_or_default();
            let value = one(ContextKind::InvalidValue).unwrap_or_default();
            let flag = arg.split_whitespace().next().unwrap_or(&arg).to_string();
            let valid = many(ContextKind::ValidValue);
            let why = if !valid.is_empty() {
                format!("use one of {}", valid.join(", "))
            } else if let Some(source) = std::error::Error::source(e) {
                reason(source)
            } else {
                String::new()
            };
            let what = match from_variable(sub.as_deref(), &flag, &words) {
                Some(var) => format!("invalid value '{value}' in {var} (for {flag})"),
                None if value.is_empty() => format!("{flag} needs a value"),
                None => format!("invalid value '{value}' for {flag}"),
            };
            let why = if why.is_empty() {
                why
            } else {
                format!(": {why}")
            };
            format!("{what}{why}; {help}")
        }
        ErrorKind::InvalidUtf8 => {
            // clap says neither which argument nor whether it came from a
            // variable: name the variables whose values are not UTF-8.
            let vars: Vec<String> = arguments(sub.as_deref())
                .iter()
                .filter_map(|a| a.get_env())
                .filter(|var| std::env::var_os(var).is_some_and(|v| v.to_str().is_none()))
                .map(|var| var.to_string_lossy().into_owned())
                .collect();
            match vars.as_slice() {
                [] => format!("an argument is not valid UTF-8; {help}"),
                [var] => format!("the value of {var} is not valid UTF-8; {help}"),
                vars => format!(
                    "the values of {} are not valid UTF-8; {help}",
                    vars.join(", ")
                ),
            }
        }
        ErrorKind::UnknownArgument => {
            let arg = one(ContextKind::InvalidArg).unwrap_or_default();
            let before = words
                .iter()
                .position(|w| *w == arg)
                .and_then(|i| i.checked_sub(1))
                .map(|i| words[i].as_str());
            match before.and_then(|b| takes_value(sub.as_deref(), b).map(|v| (b, v))) {
                Some((option, value)) => {
                    format!("{option} needs a value ({value}), and '{arg}' is not one; {help}")
                }
                None => {
                    let mean = one(ContextKind::SuggestedArg)
                        .map(|s| format!(" (did you mean '{s}'?)"))
                        .unwrap_or_default();
                    format!("unknown option '{arg}'{mean}; {help}")
                }
            }
        }
        ErrorKind::InvalidSubcommand => {
            let arg = one(ContextKind::InvalidSubcommand).unwrap_or_default();
            let mean = one(ContextKind::SuggestedSubcommand)
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            let all: Vec<String> = super::command()
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            format!(
                "unknown subcommand '{arg}'{mean}; the subcommands are {}; {help}",
                all.join(", ")
            )
        }
        _ => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_string();
            format!("{first}; {help}")
        }
    };
    Usage::Error(msg)
}

/// `msg`, a check that spans options (from `config`), with the variables
/// named that set any of the options it names without the command line.
pub fn name_variables(msg: &str, args: &[OsString]) -> String {
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let sub = subcommand(&words);
    let mut vars: Vec<String> = Vec::new();
    for flag in msg.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if flag.starts_with("--")
            && let Some(var) = from_variable(sub.as_deref(), flag, &words)
            && !vars.contains(&var)
        {
            vars.push(var);
        }
    }
    match vars.as_slice() {
        [] => msg.to_string(),
        vars => format!("{msg} (from {})", vars.join(", ")),
    }
}

/// The subcommand the user meant: the first word that names one, after
/// the global options.
fn subcommand(words: &[String]) -> Option<String> {
    let cmd = super::command();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "--state-dir" {
            it.next();
        } else if w.starts_with("--state-dir=") || w == "--allow-network-fs" {
        } else {
            return cmd
                .get_subcommands()
                .find(|c| c.get_name() == w)
                .map(|c| c.get_name().to_string());
        }
    }
    None
}

/// The arguments of `sub` and the global ones.
fn arguments(sub: Option<&str>) -> Vec<clap::Arg> {
    let cmd = super::command();
    let mut args: Vec<clap::Arg> = cmd.get_arguments().cloned().collect();
    if let Some(c) = sub.and_then(|s| cmd.find_subcommand(s)) {
        args.extend(c.get_arguments().cloned());
    }
    args
}

/// The variable `flag`'s bad value came from: it has one, it is set, and
/// the flag is not on the command line.
fn from_variable(sub: Option<&str>, flag: &str, words: &[String]) -> Option<String> {
    let long = flag.strip_prefix("--")?;
    let arg = arguments(sub)
        .into_iter()
        .find(|a| a.get_long() == Some(long))?;
    let var = arg.get_env()?.to_string_lossy().into_owned();
    std::env::var_os(&var)?;
    let short = arg.get_short().map(|c| format!("-{c}"));
    let given = words
        .iter()
        .take_while(|w| *w != "--")
        .any(|w| w == flag || w.starts_with(&format!("{flag}=")) || Some(w) == short.as_ref());
    (!given).then_some(var)
}

/// `Some(VALUE_NAME)` when `word` is an option of `sub` that takes a value.
fn takes_value(sub: Option<&str>, word: &str) -> Option<String> {
    let arg = arguments(sub).into_iter().find(|a| {
        word.strip_prefix("--")
            .is_some_and(|l| a.get_long() == Some(l))
            || word.strip_prefix('-').is_some_and(|s| {
                s.len() == 1 && a.get_short().map(String::from).as_deref() == Some(s)
            })
    })?;
    if !arg.get_action().takes_values() {
        return None;
    }
    Some(
        arg.get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .unwrap_or_else(|| "a value".into()),
    )
}

/// Why a value parser refused a value, in words.
fn reason(source: &(dyn std::error::Error + 'static)) -> String {
    use std::num::IntErrorKind;
    match source.downcast_ref::<std::num::ParseIntError>() {
        Some(e) => match e.kind() {
            IntErrorKind::PosOverflow => "too large".into(),
            IntErrorKind::Empty => "a number is needed".into(),
            _ => "use a whole number, 0 or more".into(),
        },
        // BoolishValueParser's words, for a flag's variable.
        None if source.to_string() == "value was not a boolean" => {
            "use 1 or 0, yes or no, true or false, on or off".into()
        }
        None => source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn error(words: &[&str]) -> Usage {
        let args: Vec<OsString> = std::iter::once("cbreak")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect();
        let e = Cli::try_parse_from(&args).unwrap_err();
        explain(&e, &args)
    }

    fn line(words: &[&str]) -> String {
        match error(words) {
            Usage::Error(m) => m,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    #[test]
    fn missing_arguments_are_named_with_the_usage_and_the_subcommands_help() {
        assert_eq!(
            line(&["run", "-n", "api"]),
            "missing <COMMAND>... (usage: cbreak run [OPTIONS] <COMMAND>...); \
             see 'cbreak run --help'"
        );
        assert!(line(&["trip"]).starts_with("missing <NAME>"));
        assert!(line(&["trip"]).ends_with("see 'cbreak trip --help'"));
    }

    #[test]
    fn invalid_choices_list_what_is_allowed() {
        assert_eq!(
            line(&["run", "--on-state-error", "maybe", "--", "true"]),
            "invalid value 'maybe' for --on-state-error: use one of run, skip, fail; \
             see 'cbreak run --help'"
        );
        assert!(line(&["record", "a", "maybe"]).contains("use one of success, failure, ignored"));
        assert!(line(&["status", "--color", "blue"]).contains("use one of auto, always, never"));
    }

    #[test]
    fn misleading_tips_are_dropped_and_true_ones_kept() {
        let m = line(&["run", "-t", "-1", "--", "true"]);
        assert_eq!(
            m,
            "-t needs a value (N), and '-1' is not one; see 'cbreak run --help'"
        );
        let m = line(&["run", "--bogus", "--", "true"]);
        assert!(!m.contains("'-- --bogus'"), "{m}");
        assert!(line(&["run", "--quite", "--", "true"]).contains("did you mean '--quiet'?"));
        assert!(line(&["stauts"]).contains("did you mean 'status'?"));
    }

    #[test]
    fn numbers_and_durations_say_what_is_allowed() {
        assert!(line(&["run", "-t", "x", "--", "true"]).contains("use a whole number"));
        let m = line(&["run", "-r", "1month", "--", "true"]);
        assert!(
            m.contains("ms, s, m, h or d") && !m.contains("years"),
            "{m}"
        );
        assert!(m.len() < 200, "{m}");
    }

    #[test]
    fn plain_cbreak_prints_usage() {
        match error(&[]) {
            Usage::Print(text) => assert!(text.contains("Usage: cbreak")),
            other => panic!("{other:?}"),
        }
    }
}
