//! The command-line definition: clap's derive structs and their help text.
//!
//! Owns what the user types and nothing else. The value parsers live in
//! `value`; `config` turns these structs into the plain configuration the
//! rest of cbreak uses; no module outside `cli` sees a clap type.
//! `run`'s options are declared once, in `options`.
//!
//! Its submodules `generate` and `man` make the completion scripts and man
//! pages from the same definition (`cbreak completions`, `cbreak man`).

mod fast;
pub mod generate;
pub mod man;
pub mod options;
pub mod usage;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum, ValueHint};

use self::options as opt;
use crate::breaker::{CodeSet, Millis, Window};
use crate::value::{
    parse_codes, parse_duration, parse_factor, parse_name, parse_percent, parse_signal,
    parse_window,
};

/// Run commands through a circuit breaker shared by every process on the machine.
///
/// While a command keeps succeeding cbreak just runs it. After enough failures
/// the breaker opens: cbreak skips the command (exit 75) for the recovery
/// period, then lets one probe through; a good probe closes the breaker, a bad
/// one reopens it. State lives in small locked files in the state directory.
#[derive(Parser, Debug)]
#[command(name = "cbreak", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options of every subcommand.
#[derive(Args, Debug)]
pub struct GlobalArgs {
    /// Directory of the breakers' records
    /// [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]
    #[arg(long, global = true, env = "CBREAK_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Use a state directory on a network file system (NFS, SMB, FUSE) anyway
    #[arg(long, global = true, env = "CBREAK_ALLOW_NETWORK_FS", value_parser = BoolishValueParser::new())]
    pub allow_network_fs: bool,

    /// How long to wait for another process's lock on a record (with
    /// --store: for other processes' changes to the breaker) before giving
    /// up (then --on-state-error applies) [default: 5s]
    #[arg(long, global = true, env = "CBREAK_LOCK_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub lock_timeout: Option<Millis>,

    /// Keep the breakers on a Redis or Valkey server shared by machines
    /// instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB
    /// (all but HOST optional), rediss://... (TLS) or unix:///PATH
    #[arg(long, global = true, env = "CBREAK_STORE", value_name = "URL")]
    pub store: Option<String>,

    /// Prefix of the breakers' keys on the --store server, so that teams can
    /// share one [default: cbreak:]
    #[arg(
        long,
        global = true,
        env = "CBREAK_STORE_PREFIX",
        value_name = "PREFIX"
    )]
    pub store_prefix: Option<String>,

    /// How long connecting to the --store server, and then each command
    /// there, may take before --on-state-error applies [default: 500ms]
    #[arg(long, global = true, env = "CBREAK_STORE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub store_timeout: Option<Millis>,

    /// Let the --store server delete a breaker nobody has written for this
    /// long [default: never]
    #[arg(long, global = true, env = "CBREAK_STORE_EXPIRY", value_name = "DURATION", value_parser = parse_duration)]
    pub store_expiry: Option<Millis>,
}

/// What adds a subcommand's arguments to it.
type Build = fn(clap::Command) -> clap::Command;

/// Each subcommand and what builds its arguments, in [`Command`]'s order.
const SUBCOMMANDS: [(&str, Build); 14] = [
    ("run", <RunArgs as Args>::augment_args),
    ("status", <StatusArgs as Args>::augment_args),
    ("trip", <TripArgs as Args>::augment_args),
    ("reset", <ChangeArgs as Args>::augment_args),
    ("check", <CheckArgs as Args>::augment_args),
    ("record", <RecordArgs as Args>::augment_args),
    ("disable", <DisableArgs as Args>::augment_args),
    ("enable", <ChangeArgs as Args>::augment_args),
    ("list", std::convert::identity),
    ("forget", <NameArgs as Args>::augment_args),
    ("metrics", <MetricsArgs as Args>::augment_args),
    ("name", <CommandNameArgs as Args>::augment_args),
    ("completions", <CompletionsArgs as Args>::augment_args),
    ("man", <ManArgs as Args>::augment_args),
];

/// Parses the command line (program name first), for `parse_or_explain`.
///
/// The plain shapes of `cbreak run` are read by `fast::parse` without
/// clap at all. Otherwise: clap's derive builds every subcommand's arguments before parsing, and on
/// `cbreak run`'s hot path that is most of what clap costs. So the first
/// try uses the same definitions with each subcommand deferred
/// (`clap::Command::defer`: built only if it is the one invoked; the derive
/// cannot defer yet, clap issue #4959). Anything that try does not accept
/// — help, version, every usage error — is parsed again with the full
/// derived [`Cli`], so all that the user sees comes from the one
/// definition.
fn parse_args(args: &[OsString]) -> Result<Cli, clap::Error> {
    match fast::parse(args) {
        Some(cli) => Ok(cli),
        None => parse_with_clap(args),
    }
}

/// clap, for what the lean parser leaves. Out of line, so that a run the
/// lean parser takes does not pay for its stack frame.
#[cold]
#[inline(never)]
fn parse_with_clap(args: &[OsString]) -> Result<Cli, clap::Error> {
    let mut fast = GlobalArgs::augment_args(clap::Command::new("cbreak")).subcommand_required(true);
    for (name, build) in SUBCOMMANDS {
        fast = fast.subcommand(clap::Command::new(name).defer(build));
    }
    fast.try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
        .or_else(|_| {
            let matches = command().try_get_matches_from(args)?;
            Cli::from_arg_matches(&matches)
        })
}

/// Parses the command line, or says what to print instead: help, the
/// version, or a usage error worded for people (see `usage`).
pub fn parse_or_explain(args: &[OsString]) -> Result<Cli, usage::Usage> {
    parse_args(args).map_err(|e| usage::explain(&e, args))
}

/// The whole definition, as help, errors, man pages and completions show
/// it. Help never shows the values of `CBREAK_*` variables, only their
/// names: a hook command may hold a token, and help is printed on screens
/// and in CI logs.
pub fn command() -> clap::Command {
    fn hide(arg: clap::Arg) -> clap::Arg {
        arg.hide_env_values(true)
    }
    <Cli as clap::CommandFactory>::command()
        .mut_args(hide)
        .mut_subcommands(|sub| sub.mut_args(hide))
}

// Parsed once per process: boxing `Run` would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command through a breaker
    ///
    /// Exit status: the command's own; 75 (--open-exit-code) when skipped;
    /// 124 when it timed out; 125 for cbreak's own errors; 126 when it
    /// cannot be executed; 127 when it is not found.
    ///
    /// Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to cbreak are
    /// passed on to the command, unless they were ignored when cbreak
    /// started (nohup). When the command died of signal N (not at a
    /// timeout), or cbreak was stopped by one of those signals, cbreak dies
    /// of the same signal after recording the call, as timeout(1) does: the
    /// shell shows 128+N, and Ctrl-C stops a loop around cbreak.
    Run(RunArgs),
    /// Show one breaker, or all of them
    Status(StatusArgs),
    /// Force a breaker open: until `reset`, or for a while with --for
    Trip(TripArgs),
    /// Close a breaker and forget its failures
    Reset(ChangeArgs),
    /// Exit 0 if a call would run now, 75 if it would be skipped; change nothing
    ///
    /// Give the breaker's NAME, or the command after `--` to ask about the
    /// breaker `run` would use for it without --name.
    Check(CheckArgs),
    /// Record an outcome from a script, as `run` would
    Record(RecordArgs),
    /// Metrics only: every call runs and is counted, the breaker never opens
    Disable(DisableArgs),
    /// Undo `disable`
    Enable(ChangeArgs),
    /// Print the breakers' names, one per line
    List(ListArgs),
    /// Delete a breaker's record
    Forget(NameArgs),
    /// Print every breaker's metrics in the Prometheus text format
    Metrics(MetricsArgs),
    /// Print the name of the breaker `run` would use for a command without --name
    Name(CommandNameArgs),
    /// Print the completion script for a shell
    ///
    /// bash: `cbreak completions bash > ~/.local/share/bash-completion/completions/cbreak`;
    /// zsh: into a directory on $fpath as `_cbreak`; fish:
    /// `cbreak completions fish > ~/.config/fish/completions/cbreak.fish`.
    Completions(CompletionsArgs),
    /// Print a man page (roff): `cbreak man run | man -l -`
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {}

#[derive(Args, Debug)]
pub struct NameArgs {
    /// Breaker name
    #[arg(value_parser = parse_name)]
    pub name: String,
}

/// A breaker changed by hand: `reset`, `enable`.
#[derive(Args, Debug)]
pub struct ChangeArgs {
    /// Breaker name
    #[arg(value_parser = parse_name)]
    pub name: String,

    #[command(flatten)]
    pub hooks: HookArgs,
}

/// The two rules `run` takes outside [`PolicyArgs`], for `check` and
/// `record`, with the same defaults and variables.
#[derive(Args, Debug)]
pub struct RuleArgs {
    /// Consecutive failures that open the breaker (0: no consecutive rule)
    #[arg(short = opt::THRESHOLD.short, long = opt::THRESHOLD.long, default_value = opt::THRESHOLD.default, env = opt::THRESHOLD.env, value_name = "N")]
    pub threshold: u32,

    /// Time open before a probe (30s, 5m, 1h; a bare number is seconds)
    #[arg(short = opt::RECOVERY.short, long = opt::RECOVERY.long, default_value = opt::RECOVERY.default, env = opt::RECOVERY.env, value_parser = parse_duration, value_name = "DURATION")]
    pub recovery: Millis,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Breaker name
    #[arg(value_parser = parse_name, required_unless_present = "command", conflicts_with = "command")]
    pub name: Option<String>,

    /// When the state cannot be used: run (exit 0, as `run` would run the
    /// command), skip (exit 75) or fail (exit 125)
    #[arg(long = opt::ON_STATE_ERROR.long, value_enum, default_value = opt::ON_STATE_ERROR.default, env = opt::ON_STATE_ERROR.env, value_name = "MODE")]
    pub on_state_error: OnStateErrorArg,

    #[command(flatten)]
    pub rules: RuleArgs,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// The command whose breaker to check, after `--`
    #[arg(last = true, value_name = "COMMAND", value_hint = ValueHint::CommandWithArguments)]
    pub command: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct CommandNameArgs {
    /// The command, with its arguments, exactly as it would follow `cbreak run`
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND", value_hint = ValueHint::CommandWithArguments)]
    pub command: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Breaker name [default: the program's name and a hash of the whole command]
    #[arg(short = opt::NAME.short, long = opt::NAME.long, value_parser = parse_name, value_name = "NAME")]
    pub name: Option<String>,

    /// Consecutive failures that open the breaker (0: no consecutive rule)
    #[arg(short = opt::THRESHOLD.short, long = opt::THRESHOLD.long, default_value = opt::THRESHOLD.default, env = opt::THRESHOLD.env, value_name = "N")]
    pub threshold: u32,

    /// Time open before a probe (30s, 5m, 1h; a bare number is seconds)
    #[arg(short = opt::RECOVERY.short, long = opt::RECOVERY.long, default_value = opt::RECOVERY.default, env = opt::RECOVERY.env, value_parser = parse_duration, value_name = "DURATION")]
    pub recovery: Millis,

    /// Exit status when the command is skipped
    #[arg(long = opt::OPEN_EXIT_CODE.long, default_value = opt::OPEN_EXIT_CODE.default, env = opt::OPEN_EXIT_CODE.env, value_name = "N")]
    pub open_exit_code: u8,

    /// What to do when the state cannot be read or written
    #[arg(long = opt::ON_STATE_ERROR.long, value_enum, default_value = opt::ON_STATE_ERROR.default, env = opt::ON_STATE_ERROR.env, value_name = "MODE")]
    pub on_state_error: OnStateErrorArg,

    /// No message when skipping or changing state
    #[arg(short = opt::QUIET.short, long = opt::QUIET.long, env = opt::QUIET.env, value_parser = BoolishValueParser::new())]
    pub quiet: bool,

    /// No message when skipping, but still say when the breaker opens or closes (for cron)
    #[arg(long = opt::QUIET_SKIPS.long, env = opt::QUIET_SKIPS.env, value_parser = BoolishValueParser::new())]
    pub quiet_skips: bool,

    /// Shell command to run instead when the call is skipped; exit with its status
    #[arg(long = opt::FALLBACK.long, env = opt::FALLBACK.env, value_name = "SHELL COMMAND")]
    pub fallback: Option<String>,

    #[command(flatten)]
    pub policy: PolicyArgs,

    #[command(flatten)]
    pub hooks: HookArgs,

    /// The command to run, with its arguments
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND", value_hint = ValueHint::CommandWithArguments)]
    pub command: Vec<OsString>,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Policy")]
pub struct PolicyArgs {
    /// Open when the failure rate in the window reaches PCT (50% or 50)
    #[arg(long = opt::FAILURE_RATE.long, env = opt::FAILURE_RATE.env, value_parser = parse_percent, value_name = "PCT")]
    pub failure_rate: Option<u32>,

    /// The failure-rate window: the last N calls, or the calls of the last DURATION [default: 100]
    #[arg(long = opt::WINDOW.long, env = opt::WINDOW.env, value_parser = parse_window, value_name = "N|DURATION")]
    pub window: Option<Window>,

    /// Calls needed in the window before the failure rate is judged
    #[arg(long = opt::MIN_CALLS.long, default_value = opt::MIN_CALLS.default, env = opt::MIN_CALLS.env, value_name = "N")]
    pub min_calls: u32,

    /// Kill the command (and all it started) when it runs longer; exit 124
    #[arg(long = opt::TIMEOUT.long, env = opt::TIMEOUT.env, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Millis>,

    /// After the timeout's signal, wait this long before SIGKILL
    #[arg(long = opt::KILL_AFTER.long, default_value = opt::KILL_AFTER.default, env = opt::KILL_AFTER.env, value_parser = parse_duration, value_name = "DURATION")]
    pub kill_after: Millis,

    /// The signal sent at the timeout: a name (TERM, INT, KILL) or a number
    #[arg(short = opt::SIGNAL.short, long = opt::SIGNAL.long, default_value = opt::SIGNAL.default, env = opt::SIGNAL.env, value_parser = parse_signal, value_name = "SIG")]
    pub signal: i32,

    /// With --timeout, move no process group (timeout --foreground): the command can read the terminal even from a script; only it is killed at the timeout
    #[arg(long = opt::FOREGROUND.long, env = opt::FOREGROUND.env, value_parser = BoolishValueParser::new())]
    pub foreground: bool,

    /// At a timeout, exit with the command's status (128+N for signal N) instead of 124
    #[arg(long = opt::PRESERVE_STATUS.long, env = opt::PRESERVE_STATUS.env, value_parser = BoolishValueParser::new())]
    pub preserve_status: bool,

    /// Count a success that takes longer than this as a failure
    #[arg(long = opt::SLOW.long, env = opt::SLOW.env, value_parser = parse_duration, value_name = "DURATION")]
    pub slow: Option<Millis>,

    /// Exit codes that are successes (e.g. 0,2-5; death by signal N is 128+N)
    #[arg(long = opt::SUCCESS_CODES.long, default_value = opt::SUCCESS_CODES.default, env = opt::SUCCESS_CODES.env, value_parser = parse_codes, value_name = "LIST")]
    pub success_codes: CodeSet,

    /// Exit codes that count as neither success nor failure (141: SIGPIPE)
    #[arg(long = opt::IGNORE_CODES.long, env = opt::IGNORE_CODES.env, value_parser = parse_codes, value_name = "LIST")]
    pub ignore_codes: Option<CodeSet>,

    /// How the open period grows when probes keep failing
    #[arg(long = opt::BACKOFF.long, value_enum, default_value = opt::BACKOFF.default, env = opt::BACKOFF.env, value_name = "KIND")]
    pub backoff: BackoffArg,

    /// Multiplier of the exponential backoff
    #[arg(long = opt::BACKOFF_FACTOR.long, default_value = opt::BACKOFF_FACTOR.default, env = opt::BACKOFF_FACTOR.env, value_parser = parse_factor, value_name = "F")]
    pub backoff_factor: u32,

    /// Longest open period with exponential backoff [default: 1h, or --recovery if longer]
    #[arg(long = opt::MAX_RECOVERY.long, env = opt::MAX_RECOVERY.env, value_parser = parse_duration, value_name = "DURATION")]
    pub max_recovery: Option<Millis>,

    /// Spread each open period randomly by ±PCT
    #[arg(long = opt::JITTER.long, default_value = opt::JITTER.default, env = opt::JITTER.env, value_parser = parse_percent, value_name = "PCT")]
    pub jitter: u32,

    /// Successful probes in a row that close the breaker
    #[arg(long = opt::PROBES.long, default_value = opt::PROBES.default, env = opt::PROBES.env, value_name = "N")]
    pub probes: u32,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Hooks")]
pub struct HookArgs {
    /// Shell command to run when this process opens the breaker
    #[arg(long = opt::ON_OPEN.long, env = opt::ON_OPEN.env, value_name = "CMD")]
    pub on_open: Option<String>,

    /// Shell command to run when this process closes the breaker
    #[arg(long = opt::ON_CLOSE.long, env = opt::ON_CLOSE.env, value_name = "CMD")]
    pub on_close: Option<String>,

    /// Shell command to run when this process moves the breaker to half-open
    #[arg(long = opt::ON_HALF_OPEN.long, env = opt::ON_HALF_OPEN.env, value_name = "CMD")]
    pub on_half_open: Option<String>,

    /// Shell command to run on any transition this process makes
    #[arg(long = opt::ON_CHANGE.long, env = opt::ON_CHANGE.env, value_name = "CMD")]
    pub on_change: Option<String>,

    /// Longest a hook may run before it is killed
    #[arg(long = opt::HOOK_TIMEOUT.long, default_value = opt::HOOK_TIMEOUT.default, env = opt::HOOK_TIMEOUT.env, value_parser = parse_duration, value_name = "DURATION")]
    pub hook_timeout: Millis,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Breaker name [default: all breakers]
    #[arg(value_parser = parse_name)]
    pub name: Option<String>,

    /// Print JSON: an object for NAME, an array for all
    #[arg(long)]
    pub json: bool,

    /// Plain ASCII: + and x for the recent outcomes
    #[arg(long)]
    pub ascii: bool,

    /// When to colour the state
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    pub color: ColorArg,
}

#[derive(Args, Debug)]
pub struct TripArgs {
    /// Breaker name
    #[arg(value_parser = parse_name)]
    pub name: String,

    /// Open for this long, then probe as usual [default: until `reset`]
    #[arg(long = "for", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Millis>,

    /// Make the breaker if there is none of that name (e.g. before a maintenance window)
    #[arg(long)]
    pub create: bool,

    #[command(flatten)]
    pub hooks: HookArgs,
}

#[derive(Args, Debug)]
pub struct DisableArgs {
    /// Breaker name
    #[arg(value_parser = parse_name)]
    pub name: String,

    /// Make the breaker if there is none of that name
    #[arg(long)]
    pub create: bool,

    #[command(flatten)]
    pub hooks: HookArgs,
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Breaker name
    #[arg(value_parser = parse_name)]
    pub name: String,

    /// The outcome to record
    #[arg(value_enum)]
    pub outcome: OutcomeArg,

    /// No message when changing state
    #[arg(short = opt::QUIET.short, long = opt::QUIET.long, env = opt::QUIET.env, value_parser = BoolishValueParser::new())]
    pub quiet: bool,

    #[command(flatten)]
    pub rules: RuleArgs,

    #[command(flatten)]
    pub policy: PolicyArgs,

    #[command(flatten)]
    pub hooks: HookArgs,
}

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Write to FILE atomically (for node_exporter's textfile collector):
    /// a new path or a regular file, never through a symlink; `-` is stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: ShellArg,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// The page: cbreak, or a subcommand's (run or cbreak-run) [default: cbreak]
    pub page: Option<String>,

    /// Print the pages' names, one per line
    #[arg(long, conflicts_with = "page")]
    pub list: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
    Elvish,
    #[value(name = "powershell")]
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

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStateErrorArg {
    /// Warn and run the command anyway (fail open)
    Run,
    /// Warn and skip the command, as if the breaker were open
    Skip,
    /// Exit 125 without running the command
    Fail,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackoffArg {
    Constant,
    Exponential,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeArg {
    Success,
    Failure,
    Ignored,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn deferred_parser_knows_every_subcommand_in_order() {
        let derived: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        let deferred: Vec<&str> = SUBCOMMANDS.iter().map(|(n, _)| *n).collect();
        assert_eq!(derived, deferred);
    }

    #[test]
    fn deferred_parser_agrees_with_the_derived_one() {
        for args in [
            &[
                "cbreak",
                "run",
                "-n",
                "x",
                "-t",
                "3",
                "--failure-rate",
                "50%",
                "--",
                "curl",
                "-f",
            ][..],
            &[
                "cbreak",
                "--state-dir",
                "/s",
                "run",
                "--timeout",
                "5s",
                "--on-open",
                "echo",
                "true",
            ],
            &["cbreak", "status", "--json", "api", "--state-dir", "/s"],
            &["cbreak", "trip", "a", "--for", "5m"],
            &["cbreak", "record", "a", "failure", "-q"],
            &["cbreak", "list"],
            &["cbreak", "metrics", "-o", "/x.prom"],
            &["cbreak", "reset", "a"],
            &["cbreak", "check", "a"],
            &["cbreak", "disable", "a"],
            &["cbreak", "enable", "a"],
            &["cbreak", "forget", "a"],
            &["cbreak", "check", "--", "curl", "-f"],
            &["cbreak", "name", "curl", "-f"],
            &["cbreak", "name", "--", "curl", "-f"],
        ] {
            let fast = parse_args(&args.iter().map(OsString::from).collect::<Vec<_>>()).unwrap();
            let full = Cli::try_parse_from(args).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{args:?}");
        }
    }

    #[test]
    fn help_and_errors_come_from_the_full_definition() {
        for args in [
            &["cbreak", "--help"][..],
            &["cbreak", "run", "--help"],
            &["cbreak", "run", "--bogus"],
            &["cbreak"],
        ] {
            let fast = parse_args(&args.iter().map(OsString::from).collect::<Vec<_>>()).unwrap_err();
            let full = command().try_get_matches_from(args).unwrap_err();
            assert_eq!(
                fast.render().to_string(),
                full.render().to_string(),
                "{args:?}"
            );
        }
    }

    #[test]
    fn command_may_follow_a_double_dash_or_not() {
        for args in [
            &["cbreak", "run", "-n", "x", "--", "curl", "-f", "u"][..],
            &["cbreak", "run", "-n", "x", "curl", "-f", "u"][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Run(run) = cli.command else {
                panic!()
            };
            assert_eq!(run.command, ["curl", "-f", "u"]);
        }
    }

    #[test]
    fn state_dir_is_accepted_before_and_after_the_subcommand() {
        for args in [
            &["cbreak", "--state-dir", "/d", "list"][..],
            &["cbreak", "list", "--state-dir", "/d"][..],
        ] {
            let cli = parse_args(&args.iter().map(OsString::from).collect::<Vec<_>>()).unwrap();
            assert_eq!(cli.global.state_dir, Some(PathBuf::from("/d")));
        }
    }
}
