//! The parser: the command line and the `CBREAK_*` variables, read with
//! the table in `defs` into [`Cli`].
//!
//! Owns what a user sees when the command line is wrong: one line naming
//! the option, the argument or the variable, what is allowed (the
//! choices, or the value parser's reason), a "did you mean" where one is
//! close, and the subcommand's own help to read. lexopt splits the words
//! (bundled short options, `--opt=value`, `-ovalue`); everything else —
//! which words are options here, which take values, the command after the
//! first positional of `run`, defaults, variables — is this module's, from
//! the table. Help, the version and usage lines are rendered by clap from
//! the same table (`command()`).

use std::ffi::{OsStr, OsString};

use lexopt::Arg;

use super::defs::{self, BOOLISH, Bad, Flag, Many, Positional, Sub};
use super::{Args, Cli};

/// What to do instead of running: print something, or fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Usage {
    /// Print this on stdout and exit 0 (help, version, plain `cbreak`
    /// without any argument).
    Print(String),
    /// Print `cbreak: ` and this one line on stderr and exit 125.
    Error(String),
}

/// An option as typed: `--long` or `-s`.
enum Typed {
    Long(String),
    Short(char),
}

impl std::fmt::Display for Typed {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Typed::Long(l) => write!(f, "--{l}"),
            Typed::Short(c) => write!(f, "-{c}"),
        }
    }
}

/// Parses `args` (program name first) and the variables.
///
/// A skipped `cbreak run` is half a millisecond, and this is on its path:
/// nothing is allocated for a word that is right (the words themselves
/// move into [`Args`]), the environment is scanned once, and clap is only
/// reached for help, the version and usage lines.
pub fn parse(mut args: Vec<OsString>) -> Result<Cli, Usage> {
    let bin = if args.is_empty() {
        OsString::from("cbreak")
    } else {
        args.remove(0)
    };
    let plain = args.is_empty();
    let mut parser = lexopt::Parser::from_args(args);
    let mut state = State {
        sub: None,
        args: Args::default(),
        given: Vec::new(),
        positionals: Vec::new(),
        bin,
    };
    loop {
        // After `--` every word is an argument, never an option.
        if let Some(mut raw) = parser.try_raw_args()
            && raw.peek() == Some(OsStr::new("--"))
        {
            raw.next();
            let rest: Vec<OsString> = raw.collect();
            state.after_dashdash(rest)?;
            break;
        }
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            // `-q=1`: the switch's value.
            Err(lexopt::Error::UnexpectedValue { option, value }) => {
                return Err(state.error(format!(
                    "unexpected value '{}' for '{option}' found; no more were expected",
                    value.to_string_lossy()
                )));
            }
            Err(e) => return Err(state.error(e.to_string())),
        };
        let long = matches!(arg, Arg::Long(_));
        let found = match arg {
            Arg::Long("help") => return Err(state.help(true)),
            Arg::Short('h') => return Err(state.help(false)),
            Arg::Long("version") | Arg::Short('V') if state.sub.is_none() => {
                return Err(Usage::Print(super::command().render_version()));
            }
            Arg::Long(name) => state
                .flags()
                .find(|f| f.long == name)
                .ok_or_else(|| Typed::Long(name.to_string())),
            Arg::Short(short) => state
                .flags()
                .find(|f| f.short == Some(short))
                .ok_or(Typed::Short(short)),
            Arg::Value(word) => {
                if state.positional(word, &mut parser)? {
                    break;
                }
                continue;
            }
        };
        let flag = match found {
            Ok(flag) => flag,
            Err(typed) => {
                let mean = match &typed {
                    Typed::Long(name) => {
                        let version = state.sub.is_none().then_some("version");
                        let longs = state.flags().map(|f| f.long).chain(["help"]).chain(version);
                        suggest(name, longs.map(String::from))
                            .map(|s| format!(" (did you mean '--{s}'?)"))
                    }
                    Typed::Short(_) => None,
                };
                let mean = mean.unwrap_or_default();
                return Err(state.error(format!("unknown option '{typed}'{mean}")));
            }
        };
        if state.given.iter().any(|g| std::ptr::eq(*g, flag)) {
            return Err(state.error(format!(
                "the argument '{}' cannot be used multiple times",
                display(flag)
            )));
        }
        state.given.push(flag);
        if flag.value.is_none() {
            // `--quiet=yes` (a short switch's next letters are more
            // switches: `-qn x`).
            if long && let Some(v) = parser.optional_value() {
                return Err(state.error(format!(
                    "unexpected value '{}' for '--{}' found; no more were expected",
                    v.to_string_lossy(),
                    flag.long
                )));
            }
            if let Err(bad) = (flag.set)(&mut state.args, OsStr::new("")) {
                return Err(state.bad_value(flag, OsStr::new(""), bad, None));
            }
            continue;
        }
        let value = state.value(&mut parser, flag, long)?;
        if let Err(bad) = (flag.set)(&mut state.args, &value) {
            return Err(state.bad_value(flag, &value, bad, None));
        }
    }
    let Some(sub) = state.sub else {
        if plain {
            // Plain `cbreak`, typed to see what it does: the help.
            return Err(state.help(false));
        }
        // Options without a subcommand (a crontab line missing its `run`)
        // are a mistake, and must not exit 0.
        return Err(state.error(format!(
            "no subcommand after the options; give one of {}",
            names()
        )));
    };
    state.variables_and_defaults()?;
    state.conflicts(sub)?;
    state.required(sub)?;
    Ok(Cli {
        command: sub.command,
        args: state.args,
    })
}

/// `msg`, a check that spans options (from `config`), with the variables
/// named that set any of the options it names without the command line.
pub fn name_variables(msg: &str, from_env: &[(&str, &str)]) -> String {
    let mut vars: Vec<&str> = Vec::new();
    for word in msg.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if let Some(long) = word.strip_prefix("--")
            && let Some((_, var)) = from_env.iter().find(|(l, _)| *l == long)
            && !vars.contains(var)
        {
            vars.push(var);
        }
    }
    match vars.as_slice() {
        [] => msg.to_string(),
        vars => format!("{msg} (from {})", vars.join(", ")),
    }
}

struct State {
    sub: Option<&'static Sub>,
    args: Args,
    /// The options given on the command line.
    given: Vec<&'static Flag>,
    /// The ids of the positional arguments given.
    positionals: Vec<&'static str>,
    /// The program's name as it was called, for help.
    bin: OsString,
}

impl State {
    /// The options that may be given here: the global ones and the
    /// subcommand's.
    fn flags(&self) -> impl Iterator<Item = &'static Flag> + use<> {
        let sub = self.sub;
        defs::GLOBALS
            .iter()
            .copied()
            .chain(sub.into_iter().flat_map(|s| s.flags()))
    }

    /// The option `typed` (`--long`, `--long=value` or `-s`) names here.
    fn find(&self, typed: &str) -> Option<&'static Flag> {
        if let Some(long) = typed.strip_prefix("--") {
            let long = long.split_once('=').map_or(long, |(l, _)| l);
            return self.flags().find(|f| f.long == long);
        }
        let short = typed.strip_prefix('-')?.chars().next()?;
        self.flags().find(|f| f.short == Some(short))
    }

    /// Whether `word` is an option here (so not a value).
    fn is_option(&self, word: &str) -> bool {
        matches!(word, "--" | "--help" | "-h") || self.find(word).is_some()
    }

    /// The help of the subcommand being parsed, or cbreak's.
    fn help(&self, long: bool) -> Usage {
        self.help_of(self.sub.map(|s| s.name), long)
    }

    /// The help of subcommand `sub`, or cbreak's.
    fn help_of(&self, sub: Option<&str>, long: bool) -> Usage {
        let bin = std::path::Path::new(&self.bin)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cbreak".into());
        Usage::Print(help(sub, long, &bin))
    }

    fn error(&self, what: String) -> Usage {
        let help = match self.sub {
            Some(s) => format!("see 'cbreak {} --help'", s.name),
            None => "see 'cbreak --help'".to_string(),
        };
        Usage::Error(format!("{what}; {help}"))
    }

    /// The value of `flag` (spelled `--long` if `long`, else `-s`):
    /// attached (`--x=v`, `-xv`) or the next word, unless that word is an
    /// option (clap's rule, kept: `-t -1` is a mistake, not a threshold).
    fn value(
        &self,
        parser: &mut lexopt::Parser,
        flag: &Flag,
        long: bool,
    ) -> Result<OsString, Usage> {
        if let Some(v) = parser.optional_value() {
            return Ok(v);
        }
        let Some(mut raw) = parser.try_raw_args() else {
            return Err(self.needs_value(flag, None));
        };
        match raw.peek().map(|w| w.to_string_lossy().into_owned()) {
            Some(next) if next.starts_with('-') && next.len() > 1 => {
                if self.is_option(&next) {
                    return Err(self.needs_value(flag, None));
                }
                let name = flag.value.unwrap_or("a value");
                let typed = match flag.short {
                    Some(short) if !long => format!("-{short}"),
                    _ => format!("--{}", flag.long),
                };
                Err(self.error(format!(
                    "{typed} needs a value ({name}), and '{next}' is not one"
                )))
            }
            Some(_) => Ok(raw.next().unwrap_or_default()),
            None => Err(self.needs_value(flag, None)),
        }
    }

    fn needs_value(&self, flag: &Flag, why: Option<String>) -> Usage {
        let why = why.or_else(|| choices(flag.choices));
        self.error(format!("--{} needs a value{}", flag.long, colon(why)))
    }

    /// The error for a value `set` refused; `var` when it came from a
    /// variable.
    fn bad_value(&self, flag: &Flag, value: &OsStr, bad: Bad, var: Option<&str>) -> Usage {
        let why = match bad {
            Bad::NotUtf8 => {
                return self.error(match var {
                    Some(var) => format!("the value of {var} is not valid UTF-8"),
                    None => "an argument is not valid UTF-8".to_string(),
                });
            }
            Bad::NotAChoice => choices(flag.choices),
            Bad::Why(why) => Some(why).filter(|w| !w.is_empty()),
        };
        let value = value.to_string_lossy();
        match var {
            Some(var) => self.error(format!(
                "invalid value '{value}' in {var} (for --{}){}",
                flag.long,
                colon(why)
            )),
            None if value.is_empty() => self.needs_value(flag, why),
            None => self.error(format!(
                "invalid value '{value}' for --{}{}",
                flag.long,
                colon(why)
            )),
        }
    }

    /// A word that is not an option: the subcommand, or its next
    /// argument. `Ok(true)` when it started the command, which takes every
    /// word after it.
    fn positional(&mut self, word: OsString, parser: &mut lexopt::Parser) -> Result<bool, Usage> {
        let Some(sub) = self.sub else {
            let name = word.to_string_lossy();
            if name == "help" {
                // `cbreak help [SUBCOMMAND]`
                let page = match parser.next() {
                    Ok(Some(Arg::Value(v))) => Some(v.to_string_lossy().into_owned()),
                    _ => None,
                };
                return match page {
                    None => Err(self.help(true)),
                    Some(page) => match defs::SUBCOMMANDS.iter().find(|s| s.name == page) {
                        Some(s) => Err(self.help_of(Some(s.name), true)),
                        None if page == "help" => Err(Usage::Print(help_of_help())),
                        None => Err(unknown_subcommand(&page)),
                    },
                };
            }
            match defs::SUBCOMMANDS.iter().find(|s| s.name == name) {
                Some(s) => self.sub = Some(s),
                None => return Err(unknown_subcommand(&name)),
            }
            return Ok(false);
        };
        let next = sub
            .positionals()
            .filter(|p| p.many != Many::Last)
            .find(|p| !self.positionals.contains(&p.id));
        let Some(p) = next else {
            return Err(self.error(format!("unknown option '{}'", word.to_string_lossy())));
        };
        if p.many == Many::Trailing {
            let rest: Vec<OsString> = match parser.raw_args() {
                Ok(raw) => raw.collect(),
                Err(e) => return Err(self.error(e.to_string())),
            };
            self.take(p, std::iter::once(word).chain(rest))?;
            return Ok(true);
        }
        self.take(p, std::iter::once(word))?;
        Ok(false)
    }

    /// The words after `--`: the command where one is taken there,
    /// otherwise the next arguments.
    fn after_dashdash(&mut self, rest: Vec<OsString>) -> Result<(), Usage> {
        let Some(sub) = self.sub else {
            return match rest.first() {
                Some(w) => Err(self.error(format!("unknown option '{}'", w.to_string_lossy()))),
                None => Ok(()),
            };
        };
        if let Some(last) = sub.positionals().find(|p| p.many == Many::Last) {
            return self.take(last, rest);
        }
        let mut words = rest.into_iter();
        while let Some(word) = words.next() {
            let next = sub
                .positionals()
                .find(|p| !self.positionals.contains(&p.id));
            let Some(p) = next else {
                return Err(self.error(format!("unknown option '{}'", word.to_string_lossy())));
            };
            if p.many == Many::One {
                self.take(p, std::iter::once(word))?;
            } else {
                return self.take(p, std::iter::once(word).chain(words));
            }
        }
        Ok(())
    }

    fn take(
        &mut self,
        p: &'static Positional,
        words: impl IntoIterator<Item = OsString>,
    ) -> Result<(), Usage> {
        let Some(set) = p.set else {
            // The command: its words, as they are.
            let before = self.args.command.len();
            self.args.command.extend(words);
            if self.args.command.len() > before {
                self.positionals.push(p.id);
            }
            return Ok(());
        };
        let mut any = false;
        for word in words {
            any = true;
            if let Err(bad) = set(&mut self.args, &word) {
                let why = match bad {
                    Bad::NotUtf8 => return Err(self.error("an argument is not valid UTF-8".into())),
                    Bad::NotAChoice => choices(p.choices),
                    Bad::Why(why) => Some(why).filter(|w| !w.is_empty()),
                };
                let value = word.to_string_lossy();
                let arg = format!("<{}>", p.value);
                return Err(self.error(if value.is_empty() {
                    format!("{arg} needs a value{}", colon(why))
                } else {
                    format!("invalid value '{value}' for {arg}{}", colon(why))
                }));
            }
        }
        if any {
            self.positionals.push(p.id);
        }
        Ok(())
    }

    /// Every option not given takes its variable's value if that is set
    /// (a crontab sets CBREAK_ON_OPEN once for every line), else its
    /// default.
    fn variables_and_defaults(&mut self) -> Result<(), Usage> {
        let vars = cbreak_variables();
        for flag in self.flags() {
            if self.given.iter().any(|g| std::ptr::eq(*g, flag)) {
                continue;
            }
            if let Some(var) = flag.env
                && let Some((_, value)) = vars.iter().find(|(k, _)| *k == var.as_bytes())
            {
                let value = value.as_os_str();
                if flag.value.is_none() {
                    let Some(text) = value.to_str() else {
                        return Err(self.bad_value(flag, value, Bad::NotUtf8, Some(var)));
                    };
                    match defs::boolish(text) {
                        Some(true) => {}
                        Some(false) => continue,
                        None => {
                            let bad = Bad::Why(BOOLISH.into());
                            return Err(self.bad_value(flag, value, bad, Some(var)));
                        }
                    }
                }
                if let Err(bad) = (flag.set)(&mut self.args, value) {
                    return Err(self.bad_value(flag, value, bad, Some(var)));
                }
                self.args.from_env.push((flag.long, var));
                continue;
            }
            if let Some(default) = flag.default {
                let value = OsStr::new(default);
                if let Err(bad) = (flag.set)(&mut self.args, value) {
                    return Err(self.bad_value(flag, value, bad, None));
                }
            }
        }
        Ok(())
    }

    fn is_given(&self, id: &str) -> bool {
        self.positionals.contains(&id) || self.given.iter().any(|f| f.id == id)
    }

    fn conflicts(&self, sub: &Sub) -> Result<(), Usage> {
        let positionals = sub
            .positionals()
            .filter_map(|p| Some((p.id, p.conflicts?, positional_display(p))));
        let flags = sub
            .flags()
            .filter_map(|f| Some((f.id, f.conflicts?, display(f))));
        for (id, other, shown) in positionals.chain(flags) {
            if self.is_given(id) && self.is_given(other) {
                let other_shown = sub
                    .positionals()
                    .find(|p| p.id == other)
                    .map(positional_display)
                    .or_else(|| sub.flags().find(|f| f.id == other).map(display))
                    .unwrap_or_default();
                return Err(self.error(format!(
                    "the argument '{shown}' cannot be used with '{other_shown}'"
                )));
            }
        }
        Ok(())
    }

    fn required(&self, sub: &Sub) -> Result<(), Usage> {
        let missing: Vec<String> = sub
            .positionals()
            .filter(|p| !self.is_given(p.id))
            .filter(|p| {
                p.required || p.required_unless.is_some_and(|other| !self.is_given(other))
            })
            .map(|p| {
                let dots = if p.many == Many::One { "" } else { "..." };
                format!("<{}>{dots}", p.value)
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut cmd = super::command();
        cmd.build();
        let usage = cmd
            .find_subcommand_mut(sub.name)
            .map(|c| {
                let u = c.render_usage().to_string();
                let u = u.trim().trim_start_matches("Usage:").trim().to_string();
                format!(" (usage: {u})")
            })
            .unwrap_or_default();
        Err(self.error(format!("missing {}{usage}", missing.join(", "))))
    }
}

/// The `CBREAK_*` variables and their values, in one pass over the
/// environment and copying only those: not one getenv(3) per option, each
/// scanning all of the environment, nor `std::env::vars_os`, which copies
/// every variable (a skip is half a millisecond; BENCHMARKS.md, "What a
/// skip does that it does not need", 5).
fn cbreak_variables() -> Vec<(Vec<u8>, OsString)> {
    use std::os::unix::ffi::OsStrExt;
    unsafe extern "C" {
        static environ: *const *const std::ffi::c_char;
    }
    let mut vars = Vec::new();
    // SAFETY: `environ` is the C library's null-terminated array of
    // NUL-terminated `NAME=value` strings, read here as getenv(3) reads
    // it. Only a concurrent change of the environment could invalidate
    // it, and cbreak never changes its own (no `set_var` or `remove_var`
    // in the crate); std's `set_var` makes its caller promise that no
    // other thread reads the environment meanwhile, by any means.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let bytes = std::ffi::CStr::from_ptr(*entry).to_bytes();
            entry = entry.add(1);
            if !bytes.starts_with(b"CBREAK_") {
                continue;
            }
            if let Some(eq) = bytes.iter().position(|&b| b == b'=') {
                let value = OsStr::from_bytes(&bytes[eq + 1..]).to_owned();
                vars.push((bytes[..eq].to_vec(), value));
            }
        }
    }
    vars
}

/// How an option is shown in errors: `--threshold <N>`, `--quiet`.
fn display(flag: &Flag) -> String {
    match flag.value {
        Some(name) => format!("--{} <{name}>", flag.long),
        None => format!("--{}", flag.long),
    }
}

/// How an argument is shown in errors: `<NAME>`, `[NAME]`, `[COMMAND]...`.
fn positional_display(p: &Positional) -> String {
    let dots = if p.many == Many::One { "" } else { "..." };
    if p.required {
        format!("<{}>{dots}", p.value)
    } else {
        format!("[{}]{dots}", p.value)
    }
}

fn choices(choices: &[defs::Choice]) -> Option<String> {
    if choices.is_empty() {
        return None;
    }
    let names: Vec<&str> = choices.iter().map(|c| c.name).collect();
    Some(format!("use one of {}", names.join(", ")))
}

fn colon(why: Option<String>) -> String {
    why.map(|w| format!(": {w}")).unwrap_or_default()
}

/// The subcommands' names, for errors.
fn names() -> String {
    let names: Vec<&str> = defs::SUBCOMMANDS.iter().map(|s| s.name).collect();
    names.join(", ")
}

fn unknown_subcommand(name: &str) -> Usage {
    let mean = suggest(name, defs::SUBCOMMANDS.iter().map(|s| s.name.to_string()))
        .map(|s| format!(" (did you mean '{s}'?)"))
        .unwrap_or_default();
    Usage::Error(format!(
        "unknown subcommand '{name}'{mean}; the subcommands are {}; see 'cbreak --help'",
        names()
    ))
}

/// The candidate most like `typed`, if it is like enough: Jaro similarity
/// above 0.7, as clap suggested.
fn suggest(typed: &str, candidates: impl Iterator<Item = String>) -> Option<String> {
    candidates
        .map(|c| (strsim::jaro(typed, &c), c))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `cbreak help help`: the help subcommand's own help, as clap words it
/// when it parses (its rendered form lists the subcommands instead).
fn help_of_help() -> String {
    let arg = clap::Arg::new("command")
        .value_name("COMMAND")
        .num_args(1..)
        .action(clap::ArgAction::Append)
        .help("Print help for the subcommand(s)");
    clap::Command::new("help")
        .bin_name("cbreak help")
        .about("Print this message or the help of the given subcommand(s)")
        .disable_help_flag(true)
        .arg(arg)
        .render_help()
        .to_string()
}

/// The help of subcommand `sub` (or cbreak's), rendered from the table
/// with the program's name as it was called: `--help`'s long form where
/// there is more to say than `-h`'s short one, as clap decides.
fn help(sub: Option<&str>, long: bool, bin: &str) -> String {
    let mut cmd = super::command().bin_name(bin);
    cmd.build();
    let cmd = match sub.and_then(|s| cmd.find_subcommand_mut(s)) {
        Some(c) => c,
        None => &mut cmd,
    };
    let more = |a: &clap::Arg| {
        !a.is_hide_set()
            && (a.get_long_help().is_some()
                || a.get_possible_values()
                    .iter()
                    .any(|v| !v.is_hide_set() && v.get_help().is_some()))
    };
    let text = if long && (cmd.get_long_about().is_some() || cmd.get_arguments().any(more)) {
        cmd.render_long_help()
    } else {
        cmd.render_help()
    };
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Cli, Usage> {
        let args: Vec<OsString> = std::iter::once("cbreak")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect();
        parse(args)
    }

    fn line(words: &[&str]) -> String {
        match parse_words(words) {
            Err(Usage::Error(m)) => m,
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
    fn a_value_that_looks_like_an_option_is_refused_and_suggestions_are_made() {
        let m = line(&["run", "-t", "-1", "--", "true"]);
        assert_eq!(
            m,
            "-t needs a value (N), and '-1' is not one; see 'cbreak run --help'"
        );
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
        match parse_words(&[]) {
            Err(Usage::Print(text)) => assert!(text.contains("Usage: cbreak")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_may_follow_a_double_dash_or_not() {
        for words in [
            &["run", "-n", "x", "--", "curl", "-f", "u"][..],
            &["run", "-n", "x", "curl", "-f", "u"][..],
        ] {
            let cli = parse_words(words).unwrap();
            assert_eq!(cli.args.command, ["curl", "-f", "u"]);
            assert_eq!(cli.args.name.as_deref(), Some("x"));
        }
    }

    #[test]
    fn state_dir_is_accepted_before_and_after_the_subcommand() {
        for words in [
            &["--state-dir", "/d", "list"][..],
            &["list", "--state-dir", "/d"][..],
            &["list", "--state-dir=/d"][..],
        ] {
            let cli = parse_words(words).unwrap();
            assert_eq!(cli.args.state_dir, Some("/d".into()));
        }
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let cli = parse_words(&["run", "-qn", "x", "true"]).unwrap();
        assert_eq!(cli.command, super::super::Subcommand::Run);
        assert!(cli.args.quiet);
        assert_eq!(cli.args.name.as_deref(), Some("x"));
        assert_eq!(cli.args.threshold, 5);
        assert_eq!(cli.args.recovery, 30_000);
        assert_eq!(cli.args.open_exit_code, 75);
        assert_eq!(cli.args.hook_timeout, 10_000);
    }

    /// The messages of the clap-based parser this one replaced, kept
    /// word for word (scripts and people have seen them).
    #[test]
    fn messages_are_the_ones_users_know() {
        let help = "see 'cbreak run --help'";
        for (words, message) in [
            (&["run", "-n"][..], format!("--name needs a value; {help}")),
            (&["run", "-n", "-q", "--", "true"], format!("--name needs a value; {help}")),
            (&["run", "-t", "1", "-t", "2", "--", "true"], format!(
                "the argument '--threshold <N>' cannot be used multiple times; {help}"
            )),
            (&["run", "--quiet=1", "--", "true"], format!(
                "unexpected value '1' for '--quiet' found; no more were expected; {help}"
            )),
            (&["run", "--threshold=-1", "--", "true"], format!(
                "invalid value '-1' for --threshold: -1 is not in 0..=4294967295; {help}"
            )),
            (&["run", "--open-exit-code", "300", "--", "true"], format!(
                "invalid value '300' for --open-exit-code: 300 is not in 0..=255; {help}"
            )),
            (&["run", "-t", "", "--", "true"], format!(
                "--threshold needs a value: a number is needed; {help}"
            )),
            (&["run", "--h"], format!("unknown option '--h' (did you mean '--help'?); {help}")),
            (&["check", "a", "--", "x"], "the argument '[NAME]' cannot be used with \
                '[COMMAND]...'; see 'cbreak check --help'".into()),
            (&["man", "--list", "run"], "the argument '--list' cannot be used with '[PAGE]'; \
                see 'cbreak man --help'".into()),
            (&["record", "a"], "missing <OUTCOME> (usage: cbreak record [OPTIONS] <NAME> \
                <OUTCOME>); see 'cbreak record --help'".into()),
            (&["status", "a", "b"], "unknown option 'b'; see 'cbreak status --help'".into()),
            (&["completions", "tcsh"], "invalid value 'tcsh' for <SHELL>: use one of bash, \
                zsh, fish, elvish, powershell; see 'cbreak completions --help'".into()),
            (&["list", "--state-dir", ""], "--state-dir needs a value; \
                see 'cbreak list --help'".into()),
        ] {
            assert_eq!(line(words), message, "{words:?}");
        }
    }

    #[test]
    fn help_help_is_the_help_subcommands_own() {
        match parse_words(&["help", "help"]) {
            Err(Usage::Print(text)) => {
                assert!(text.contains("Usage: cbreak help [COMMAND]..."), "{text}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_short_switch_bundles_with_an_option_that_takes_a_value() {
        let cli = parse_words(&["run", "-nq", "x"]).unwrap();
        assert_eq!(cli.args.name.as_deref(), Some("q"));
        assert_eq!(cli.args.command, ["x"]);
        assert!(!cli.args.quiet);
    }

    #[test]
    fn variables_are_named_in_checks_that_span_options() {
        let from_env = [("recovery", "CBREAK_RECOVERY")];
        assert_eq!(
            name_variables("--recovery 0 is not allowed", &from_env),
            "--recovery 0 is not allowed (from CBREAK_RECOVERY)"
        );
        assert_eq!(name_variables("--threshold 0", &from_env), "--threshold 0");
    }
}
