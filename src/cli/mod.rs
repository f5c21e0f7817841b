//! The command line: cbreak's own parser over one table of options.
//!
//! Owns what the user types and nothing else. `defs` declares every
//! option, argument and subcommand once; `parse` reads the command line
//! (and the `CBREAK_*` variables) with that table into [`Args`], plain
//! typed values, and words its usage errors; [`command`] builds a
//! `clap::Command` from the same table only to render help, usage lines,
//! man pages (`man`) and completions (`generate`): clap parses nothing.
//! The value parsers live in `value`; `config` turns [`Cli`] into the
//! plain configuration the rest of cbreak uses; no module outside `cli`
//! sees a clap type.

pub mod defs;
pub mod generate;
pub mod man;
pub mod parse;

use std::ffi::OsString;
use std::path::PathBuf;

use crate::breaker::{CodeSet, Millis, Window};
use defs::{Flag, Hint, Item, Many, Positional};

/// The parsed command line: which subcommand, and its arguments.
#[derive(Debug)]
pub struct Cli {
    pub command: Subcommand,
    pub args: Args,
}

/// The subcommands, as [`defs::SUBCOMMANDS`] declares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subcommand {
    Run,
    Status,
    Trip,
    Reset,
    Check,
    Record,
    Disable,
    Enable,
    List,
    Forget,
    Metrics,
    Name,
    Completions,
    Man,
}

/// Every option's and argument's value, given, from its variable, or its
/// default: one field per option of any subcommand (an option that
/// several subcommands share, like `--threshold`, is one field). Each
/// flag of `defs` sets its field; `config` reads those of the subcommand.
#[derive(Debug, Default)]
pub struct Args {
    // Every subcommand's.
    pub state_dir: Option<PathBuf>,
    pub allow_network_fs: bool,
    pub lock_timeout: Option<Millis>,
    pub store: Option<String>,
    pub store_prefix: Option<String>,
    pub store_timeout: Option<Millis>,
    pub store_expiry: Option<Millis>,
    // Positional.
    pub name: Option<String>,
    pub outcome: Option<OutcomeArg>,
    pub shell: Option<ShellArg>,
    pub page: Option<String>,
    pub command: Vec<OsString>,
    // run, check, record.
    pub threshold: u32,
    pub recovery: Millis,
    pub open_exit_code: u8,
    pub on_state_error: OnStateErrorArg,
    pub quiet: bool,
    pub quiet_skips: bool,
    pub fallback: Option<String>,
    // The policy.
    pub failure_rate: Option<u32>,
    pub window: Option<Window>,
    pub min_calls: u32,
    pub timeout: Option<Millis>,
    pub kill_after: Millis,
    pub signal: i32,
    pub foreground: bool,
    pub preserve_status: bool,
    pub slow: Option<Millis>,
    pub success_codes: CodeSet,
    pub ignore_codes: Option<CodeSet>,
    pub backoff: BackoffArg,
    pub backoff_factor: u32,
    pub max_recovery: Option<Millis>,
    pub jitter: u32,
    pub probes: u32,
    // The hooks.
    pub on_open: Option<String>,
    pub on_close: Option<String>,
    pub on_half_open: Option<String>,
    pub on_change: Option<String>,
    pub hook_timeout: Millis,
    // The other subcommands'.
    pub json: bool,
    pub ascii: bool,
    pub color: ColorArg,
    pub duration: Option<Millis>,
    pub create: bool,
    pub output: Option<PathBuf>,
    pub list: bool,
    /// The options whose value came from their variable, as (`--long`,
    /// variable), for checks that span options to name the variable.
    pub from_env: Vec<(&'static str, &'static str)>,
}

/// The whole definition as a `clap::Command`, for rendering help, usage
/// lines, man pages and completions. Help never shows the values of
/// `CBREAK_*` variables, only their names: a hook command may hold a
/// token, and help is printed on screens and in CI logs.
pub fn command() -> clap::Command {
    let mut cmd = clap::Command::new("cbreak")
        .version(env!("CARGO_PKG_VERSION"))
        .about(defs::ABOUT)
        .long_about(defs::LONG_ABOUT)
        .max_term_width(100)
        .subcommand_required(true)
        .arg_required_else_help(true);
    for flag in defs::GLOBALS {
        cmd = cmd.arg(flag_arg(flag).global(true));
    }
    for sub in &defs::SUBCOMMANDS {
        let mut c = clap::Command::new(sub.name).about(sub.about);
        if let Some(long) = sub.long_about {
            c = c.long_about(long);
        }
        for item in sub.args {
            let flags: &[&Flag] = match item {
                Item::Flag(f) => std::slice::from_ref(f),
                Item::Group(g) => g,
                // A positional is listed under the heading before it.
                Item::Positional(p) => {
                    c = c.arg(positional_arg(p));
                    continue;
                }
            };
            for flag in flags {
                c = c.next_help_heading(flag.heading).arg(flag_arg(flag));
            }
        }
        cmd = cmd.subcommand(c);
    }
    cmd
}

fn flag_arg(flag: &'static Flag) -> clap::Arg {
    let mut arg = clap::Arg::new(flag.id)
        .long(flag.long)
        .help(flag.help)
        .hide_env_values(true)
        .value_hint(hint(flag.hint));
    if let Some(short) = flag.short {
        arg = arg.short(short);
    }
    if let Some(env) = flag.env {
        arg = arg.env(env);
    }
    if let Some(default) = flag.default {
        arg = arg.default_value(default);
    }
    if let Some(other) = flag.conflicts {
        arg = arg.conflicts_with(other);
    }
    match flag.value {
        None => arg.action(clap::ArgAction::SetTrue),
        Some(name) => arg
            .action(clap::ArgAction::Set)
            .value_name(name)
            .value_parser(choices(flag.choices)),
    }
}

fn positional_arg(p: &'static Positional) -> clap::Arg {
    let mut arg = clap::Arg::new(p.id)
        .value_name(p.value)
        .help(p.help)
        .required(p.required)
        .value_hint(hint(p.hint))
        .value_parser(choices(p.choices));
    if let Some(other) = p.required_unless {
        arg = arg.required_unless_present(other);
    }
    if let Some(other) = p.conflicts {
        arg = arg.conflicts_with(other);
    }
    match p.many {
        Many::One => arg.action(clap::ArgAction::Set),
        Many::Trailing => arg
            .action(clap::ArgAction::Append)
            .num_args(1..)
            .trailing_var_arg(true),
        Many::Last => arg
            .action(clap::ArgAction::Append)
            .num_args(1..)
            .last(true),
    }
}

fn hint(hint: Hint) -> clap::ValueHint {
    match hint {
        Hint::Any => clap::ValueHint::Unknown,
        Hint::Path => clap::ValueHint::AnyPath,
        Hint::Command => clap::ValueHint::CommandWithArguments,
    }
}

fn choices(choices: &'static [defs::Choice]) -> clap::builder::ValueParser {
    if choices.is_empty() {
        return clap::builder::ValueParser::os_string();
    }
    clap::builder::PossibleValuesParser::new(choices.iter().map(|c| {
        let value = clap::builder::PossibleValue::new(c.name);
        match c.help {
            Some(help) => value.help(help),
            None => value,
        }
    }))
    .into()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShellArg {
    #[default]
    Bash,
    Zsh,
    Fish,
    Elvish,
    PowerShell,
}

impl From<ShellArg> for generate::Shell {
    fn from(shell: ShellArg) -> generate::Shell {
        match shell {
            ShellArg::Bash => generate::Shell::Bash,
            ShellArg::Zsh => generate::Shell::Zsh,
            ShellArg::Fish => generate::Shell::Fish,
            ShellArg::Elvish => generate::Shell::Elvish,
            ShellArg::PowerShell => generate::Shell::PowerShell,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnStateErrorArg {
    #[default]
    /// Warn and run the command anyway (fail open)
    Run,
    /// Warn and skip the command, as if the breaker were open
    Skip,
    /// Exit 125 without running the command
    Fail,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackoffArg {
    #[default]
    Constant,
    Exponential,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorArg {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutcomeArg {
    #[default]
    Success,
    Failure,
    Ignored,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        command().debug_assert();
    }
}
