//! The command line, declared once: every option, argument and subcommand.
//!
//! Each option is one [`Flag`]: how it is spelled, its value's name, its
//! default, its variable, its help text and what it sets in [`Args`]. The
//! parser (`parse`) reads these to parse, to fill the defaults and the
//! variables, and to word its errors; `command()` (in `cli/mod.rs`) builds
//! a `clap::Command` from them only to render help, usage lines, man pages
//! and completions. So adding an option is one `Flag` here, its place in a
//! subcommand's [`Sub::args`], and its field in [`Args`]: nothing else is
//! kept in step by hand (ripgrep's `crates/core/flags/defs.rs` is the
//! model).
//!
//! A flag's `set` never names the flag: the parser adds the name, or the
//! variable the value came from, to what `set` says was wrong.

use std::ffi::OsStr;
use std::path::PathBuf;

use super::{Args, BackoffArg, ColorArg, OnStateErrorArg, OutcomeArg, ShellArg, Subcommand};
use crate::value::{
    parse_codes, parse_duration, parse_factor, parse_name, parse_percent, parse_signal,
    parse_window,
};

/// What a `set` found wrong with a value.
#[derive(Debug, PartialEq, Eq)]
pub enum Bad {
    /// Not UTF-8 (the parser says where it came from).
    NotUtf8,
    /// Not one of the flag's [`Choice`]s (the parser lists them).
    NotAChoice,
    /// Why the value is wrong, in words.
    Why(String),
}

impl From<String> for Bad {
    fn from(why: String) -> Bad {
        Bad::Why(why)
    }
}

/// Stores a value (given, from the variable, or the default) in its field.
pub type Set = fn(&mut Args, &OsStr) -> Result<(), Bad>;

/// What the shells may complete a value with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    /// Anything.
    Any,
    /// A path.
    Path,
    /// A command and its arguments.
    Command,
}

/// One value an option or argument takes, with what it means.
pub struct Choice {
    pub name: &'static str,
    pub help: Option<&'static str>,
}

/// One option.
pub struct Flag {
    /// Its field's name (clap's id, for rendering).
    pub id: &'static str,
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name in help (`N`, `DURATION`); `None` for a switch,
    /// which takes no value (and whose variable is read as a yes or no).
    pub value: Option<&'static str>,
    pub default: Option<&'static str>,
    pub env: Option<&'static str>,
    pub help: &'static str,
    /// The help section it is listed under (`Policy`, `Hooks`).
    pub heading: Option<&'static str>,
    /// The values it takes, when they are a fixed list.
    pub choices: &'static [Choice],
    pub hint: Hint,
    /// The id of an argument it cannot be given with.
    pub conflicts: Option<&'static str>,
    pub set: Set,
}

impl Flag {
    const fn new(
        id: &'static str,
        long: &'static str,
        value: Option<&'static str>,
        help: &'static str,
        set: Set,
    ) -> Flag {
        Flag {
            id,
            long,
            short: None,
            value,
            default: None,
            env: None,
            help,
            heading: None,
            choices: &[],
            hint: Hint::Any,
            conflicts: None,
            set,
        }
    }
    const fn short(mut self, short: char) -> Flag {
        self.short = Some(short);
        self
    }
    const fn default(mut self, default: &'static str) -> Flag {
        self.default = Some(default);
        self
    }
    const fn env(mut self, env: &'static str) -> Flag {
        self.env = Some(env);
        self
    }
    const fn heading(mut self, heading: &'static str) -> Flag {
        self.heading = Some(heading);
        self
    }
    const fn choices(mut self, choices: &'static [Choice]) -> Flag {
        self.choices = choices;
        self
    }
    const fn hint(mut self, hint: Hint) -> Flag {
        self.hint = hint;
        self
    }
    const fn conflicts(mut self, id: &'static str) -> Flag {
        self.conflicts = Some(id);
        self
    }
}

/// How many words an argument takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Many {
    /// One word.
    One,
    /// The command: this word and every one after it, whatever they look
    /// like (`run`, `name`).
    Trailing,
    /// The command after `--`, and only there (`check`).
    Last,
}

/// One positional argument.
pub struct Positional {
    pub id: &'static str,
    pub value: &'static str,
    pub help: &'static str,
    pub required: bool,
    /// Required unless this other argument (its id) is given.
    pub required_unless: Option<&'static str>,
    /// The id of an argument it cannot be given with.
    pub conflicts: Option<&'static str>,
    pub many: Many,
    pub choices: &'static [Choice],
    pub hint: Hint,
    /// `None` for the command, whose words move into `Args::command` as
    /// they are.
    pub set: Option<Set>,
}

impl Positional {
    const fn new(id: &'static str, value: &'static str, help: &'static str, set: Set) -> Positional {
        Positional {
            id,
            value,
            help,
            required: true,
            required_unless: None,
            conflicts: None,
            many: Many::One,
            choices: &[],
            hint: Hint::Any,
            set: Some(set),
        }
    }
    const fn optional(mut self) -> Positional {
        self.required = false;
        self
    }
    /// The command, with its arguments.
    const fn command(
        id: &'static str,
        value: &'static str,
        help: &'static str,
        many: Many,
    ) -> Positional {
        Positional {
            id,
            value,
            help,
            required: true,
            required_unless: None,
            conflicts: None,
            many,
            choices: &[],
            hint: Hint::Command,
            set: None,
        }
    }
    const fn choices(mut self, choices: &'static [Choice]) -> Positional {
        self.choices = choices;
        self
    }
}

/// One entry of a subcommand's arguments, in the order help lists them.
pub enum Item {
    Flag(&'static Flag),
    /// Options that several subcommands share (the policy, the hooks).
    Group(&'static [&'static Flag]),
    Positional(&'static Positional),
}

/// One subcommand.
pub struct Sub {
    pub name: &'static str,
    pub command: Subcommand,
    /// The first paragraph of its help (`-h`).
    pub about: &'static str,
    /// Its whole help (`--help`, the man page), when longer than `about`.
    pub long_about: Option<&'static str>,
    pub args: &'static [Item],
}

impl Sub {
    /// Its options, in order (not the global ones).
    pub fn flags(&self) -> impl Iterator<Item = &'static Flag> + '_ {
        self.args.iter().flat_map(|item| {
            let flags: &'static [&'static Flag] = match item {
                Item::Flag(f) => std::slice::from_ref(f),
                Item::Group(g) => g,
                Item::Positional(_) => &[],
            };
            flags.iter().copied()
        })
    }

    /// Its positional arguments, in order.
    pub fn positionals(&self) -> impl Iterator<Item = &'static Positional> + '_ {
        self.args.iter().filter_map(|item| match item {
            Item::Positional(p) => Some(*p),
            _ => None,
        })
    }
}

/// The text of a value; `set` takes `&OsStr` for the paths, which need not
/// be UTF-8.
fn text(v: &OsStr) -> Result<&str, Bad> {
    v.to_str().ok_or(Bad::NotUtf8)
}

/// A whole number from 0 to `max`, worded as clap worded its ranged
/// numbers (users' scripts have seen these messages): read as a signed
/// number first, so that `-1` is out of range rather than not a number.
fn number(v: &OsStr, max: i64) -> Result<u64, Bad> {
    use std::num::IntErrorKind;
    let n: i64 = text(v)?.parse().map_err(|e: std::num::ParseIntError| {
        Bad::Why(
            match e.kind() {
                IntErrorKind::PosOverflow => "too large",
                IntErrorKind::Empty => "a number is needed",
                _ => "use a whole number, 0 or more",
            }
            .into(),
        )
    })?;
    match u64::try_from(n) {
        Ok(n) if n as i64 <= max => Ok(n),
        _ => Err(Bad::Why(format!("{n} is not in 0..={max}"))),
    }
}

/// A path, which need not be UTF-8 but must not be empty.
fn path(v: &OsStr) -> Result<PathBuf, Bad> {
    if v.is_empty() {
        return Err(Bad::Why(String::new()));
    }
    Ok(PathBuf::from(v))
}

fn u32_value(v: &OsStr) -> Result<u32, Bad> {
    // In range: `number` checked it.
    Ok(number(v, u32::MAX.into())? as u32)
}

/// A switch's variable, as clap's "boolish" values read it.
pub fn boolish(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "y" | "yes" | "t" | "true" | "on" | "1" => Some(true),
        "n" | "no" | "f" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// What a switch's variable may hold, for its error.
pub const BOOLISH: &str = "use 1 or 0, yes or no, true or false, on or off";

const fn choice(name: &'static str) -> Choice {
    Choice { name, help: None }
}

const ON_STATE_ERROR_CHOICES: &[Choice] = &[
    Choice {
        name: "run",
        help: Some("Warn and run the command anyway (fail open)"),
    },
    Choice {
        name: "skip",
        help: Some("Warn and skip the command, as if the breaker were open"),
    },
    Choice {
        name: "fail",
        help: Some("Exit 125 without running the command"),
    },
];

fn on_state_error(v: &OsStr) -> Result<OnStateErrorArg, Bad> {
    match text(v)? {
        "run" => Ok(OnStateErrorArg::Run),
        "skip" => Ok(OnStateErrorArg::Skip),
        "fail" => Ok(OnStateErrorArg::Fail),
        _ => Err(Bad::NotAChoice),
    }
}

// Options of every subcommand.

pub static STATE_DIR: Flag = Flag::new(
    "state_dir",
    "state-dir",
    Some("DIR"),
    "Directory of the breakers' records [default: $XDG_STATE_HOME/cbreak or ~/.local/state/cbreak]",
    |a, v| {
        a.state_dir = Some(path(v)?);
        Ok(())
    },
)
.env("CBREAK_STATE_DIR")
.hint(Hint::Path);

pub static ALLOW_NETWORK_FS: Flag = Flag::new(
    "allow_network_fs",
    "allow-network-fs",
    None,
    "Use a state directory on a network file system (NFS, SMB, FUSE) anyway",
    |a, _| {
        a.allow_network_fs = true;
        Ok(())
    },
)
.env("CBREAK_ALLOW_NETWORK_FS");

pub static LOCK_TIMEOUT: Flag = Flag::new(
    "lock_timeout",
    "lock-timeout",
    Some("DURATION"),
    "How long to wait for another process's lock on a record (with --store: for other processes' changes to the breaker) before giving up (then --on-state-error applies) [default: 5s]",
    |a, v| {
        a.lock_timeout = Some(parse_duration(text(v)?)?);
        Ok(())
    },
)
.env("CBREAK_LOCK_TIMEOUT");

pub static STORE: Flag = Flag::new(
    "store",
    "store",
    Some("URL"),
    "Keep the breakers on a Redis or Valkey server shared by machines instead of the state directory: redis://USER:PASSWORD@HOST:PORT/DB (all but HOST optional), rediss://... (TLS) or unix:///PATH",
    |a, v| {
        a.store = Some(text(v)?.to_string());
        Ok(())
    },
)
.env("CBREAK_STORE");

pub static STORE_PREFIX: Flag = Flag::new(
    "store_prefix",
    "store-prefix",
    Some("PREFIX"),
    "Prefix of the breakers' keys on the --store server, so that teams can share one [default: cbreak:]",
    |a, v| {
        a.store_prefix = Some(text(v)?.to_string());
        Ok(())
    },
)
.env("CBREAK_STORE_PREFIX");

pub static STORE_TIMEOUT: Flag = Flag::new(
    "store_timeout",
    "store-timeout",
    Some("DURATION"),
    "How long connecting to the --store server, and then each command there, may take before --on-state-error applies [default: 500ms]",
    |a, v| {
        a.store_timeout = Some(parse_duration(text(v)?)?);
        Ok(())
    },
)
.env("CBREAK_STORE_TIMEOUT");

pub static STORE_EXPIRY: Flag = Flag::new(
    "store_expiry",
    "store-expiry",
    Some("DURATION"),
    "Let the --store server delete a breaker nobody has written for this long [default: never]",
    |a, v| {
        a.store_expiry = Some(parse_duration(text(v)?)?);
        Ok(())
    },
)
.env("CBREAK_STORE_EXPIRY");

/// The options every subcommand takes, before or after its name.
pub static GLOBALS: [&Flag; 7] = [
    &STATE_DIR,
    &ALLOW_NETWORK_FS,
    &LOCK_TIMEOUT,
    &STORE,
    &STORE_PREFIX,
    &STORE_TIMEOUT,
    &STORE_EXPIRY,
];

// `run`'s own options (some shared with `check` and `record`).

pub static NAME: Flag = Flag::new(
    "name",
    "name",
    Some("NAME"),
    "Breaker name [default: the program's name and a hash of the whole command]",
    set_name,
)
.short('n');

fn set_name(a: &mut Args, v: &OsStr) -> Result<(), Bad> {
    a.name = Some(parse_name(text(v)?)?);
    Ok(())
}

pub static THRESHOLD: Flag = Flag::new(
    "threshold",
    "threshold",
    Some("N"),
    "Consecutive failures that open the breaker (0: no consecutive rule)",
    |a, v| {
        a.threshold = u32_value(v)?;
        Ok(())
    },
)
.short('t')
.default("5")
.env("CBREAK_THRESHOLD");

pub static RECOVERY: Flag = Flag::new(
    "recovery",
    "recovery",
    Some("DURATION"),
    "Time open before a probe (30s, 5m, 1h; a bare number is seconds)",
    |a, v| {
        a.recovery = parse_duration(text(v)?)?;
        Ok(())
    },
)
.short('r')
.default("30s")
.env("CBREAK_RECOVERY");

pub static OPEN_EXIT_CODE: Flag = Flag::new(
    "open_exit_code",
    "open-exit-code",
    Some("N"),
    "Exit status when the command is skipped",
    |a, v| {
        // In range: `number` checked it.
        a.open_exit_code = number(v, u8::MAX.into())? as u8;
        Ok(())
    },
)
.default("75")
.env("CBREAK_OPEN_EXIT_CODE");

pub static ON_STATE_ERROR: Flag = Flag::new(
    "on_state_error",
    "on-state-error",
    Some("MODE"),
    "What to do when the state cannot be read or written",
    |a, v| {
        a.on_state_error = on_state_error(v)?;
        Ok(())
    },
)
.default("run")
.env("CBREAK_ON_STATE_ERROR")
.choices(ON_STATE_ERROR_CHOICES);

pub static QUIET: Flag = Flag::new(
    "quiet",
    "quiet",
    None,
    "No message when skipping or changing state",
    set_quiet,
)
.short('q')
.env("CBREAK_QUIET");

fn set_quiet(a: &mut Args, _: &OsStr) -> Result<(), Bad> {
    a.quiet = true;
    Ok(())
}

pub static QUIET_SKIPS: Flag = Flag::new(
    "quiet_skips",
    "quiet-skips",
    None,
    "No message when skipping, but still say when the breaker opens or closes (for cron)",
    |a, _| {
        a.quiet_skips = true;
        Ok(())
    },
)
.env("CBREAK_QUIET_SKIPS");

pub static FALLBACK: Flag = Flag::new(
    "fallback",
    "fallback",
    Some("SHELL COMMAND"),
    "Shell command to run instead when the call is skipped; exit with its status",
    |a, v| {
        a.fallback = Some(text(v)?.to_string());
        Ok(())
    },
)
.env("CBREAK_FALLBACK");

// The policy: `run`, `check` and `record`.

pub static FAILURE_RATE: Flag = Flag::new(
    "failure_rate",
    "failure-rate",
    Some("PCT"),
    "Open when the failure rate in the window reaches PCT (50% or 50)",
    |a, v| {
        a.failure_rate = Some(parse_percent(text(v)?)?);
        Ok(())
    },
)
.env("CBREAK_FAILURE_RATE")
.heading("Policy");

pub static WINDOW: Flag = Flag::new(
    "window",
    "window",
    Some("N|DURATION"),
    "The failure-rate window: the last N calls, or the calls of the last DURATION [default: 100]",
    |a, v| {
        a.window = Some(parse_window(text(v)?)?);
        Ok(())
    },
)
.env("CBREAK_WINDOW")
.heading("Policy");

pub static MIN_CALLS: Flag = Flag::new(
    "min_calls",
    "min-calls",
    Some("N"),
    "Calls needed in the window before the failure rate is judged",
    |a, v| {
        a.min_calls = u32_value(v)?;
        Ok(())
    },
)
.default("10")
.env("CBREAK_MIN_CALLS")
.heading("Policy");

pub static TIMEOUT: Flag = Flag::new(
    "timeout",
    "timeout",
    Some("DURATION"),
    "Kill the command (and all it started) when it runs longer; exit 124",
    |a, v| {
        a.timeout = Some(parse_duration(text(v)?)?);
        Ok(())
    },
)
.env("CBREAK_TIMEOUT")
.heading("Policy");

pub static KILL_AFTER: Flag = Flag::new(
    "kill_after",
    "kill-after",
    Some("DURATION"),
    "After the timeout's signal, wait this long before SIGKILL",
    |a, v| {
        a.kill_after = parse_duration(text(v)?)?;
        Ok(())
    },
)
.default("5s")
.env("CBREAK_KILL_AFTER")
.heading("Policy");

pub static SIGNAL: Flag = Flag::new(
    "signal",
    "signal",
    Some("SIG"),
    "The signal sent at the timeout: a name (TERM, INT, KILL) or a number",
    |a, v| {
        a.signal = parse_signal(text(v)?)?;
        Ok(())
    },
)
.short('s')
.default("TERM")
.env("CBREAK_SIGNAL")
.heading("Policy");

pub static FOREGROUND: Flag = Flag::new(
    "foreground",
    "foreground",
    None,
    "With --timeout, move no process group (timeout --foreground): the command can read the terminal even from a script; only it is killed at the timeout",
    |a, _| {
        a.foreground = true;
        Ok(())
    },
)
.env("CBREAK_FOREGROUND")
.heading("Policy");

pub static PRESERVE_STATUS: Flag = Flag::new(
    "preserve_status",
    "preserve-status",
    None,
    "At a timeout, exit with the command's status (128+N for signal N) instead of 124",
    |a, _| {
        a.preserve_status = true;
        Ok(())
    },
)
.env("CBREAK_PRESERVE_STATUS")
.heading("Policy");

pub static SLOW: Flag = Flag::new(
    "slow",
    "slow",
    Some("DURATION"),
    "Count a success that takes longer than this as a failure",
    |a, v| {
        a.slow = Some(parse_duration(text(v)?)?);
        Ok(())
    },
)
.env("CBREAK_SLOW")
.heading("Policy");

pub static SUCCESS_CODES: Flag = Flag::new(
    "success_codes",
    "success-codes",
    Some("LIST"),
    "Exit codes that are successes (e.g. 0,2-5; death by signal N is 128+N)",
    |a, v| {
        a.success_codes = parse_codes(text(v)?)?;
        Ok(())
    },
)
.default("0")
.env("CBREAK_SUCCESS_CODES")
.heading("Policy");

pub static IGNORE_CODES: Flag = Flag::new(
    "ignore_codes",
    "ignore-codes",
    Some("LIST"),
    "Exit codes that count as neither success nor failure (141: SIGPIPE)",
    |a, v| {
        a.ignore_codes = Some(parse_codes(text(v)?)?);
        Ok(())
    },
)
.env("CBREAK_IGNORE_CODES")
.heading("Policy");

pub static BACKOFF: Flag = Flag::new(
    "backoff",
    "backoff",
    Some("KIND"),
    "How the open period grows when probes keep failing",
    |a, v| {
        a.backoff = match text(v)? {
            "constant" => BackoffArg::Constant,
            "exponential" => BackoffArg::Exponential,
            _ => return Err(Bad::NotAChoice),
        };
        Ok(())
    },
)
.default("constant")
.env("CBREAK_BACKOFF")
.heading("Policy")
.choices(&[choice("constant"), choice("exponential")]);

pub static BACKOFF_FACTOR: Flag = Flag::new(
    "backoff_factor",
    "backoff-factor",
    Some("F"),
    "Multiplier of the exponential backoff",
    |a, v| {
        a.backoff_factor = parse_factor(text(v)?)?;
        Ok(())
    },
)
.default("2")
.env("CBREAK_BACKOFF_FACTOR")
.heading("Policy");

pub static MAX_RECOVERY: Flag = Flag::new(
    "max_recovery",
    "max-recovery",
    Some("DURATION"),
    "Longest open period with exponential backoff [default: 1h, or --recovery if longer]",
    |a, v| {
        a.max_recovery = Some(parse_duration(text(v)?)?);
        Ok(())
    },
)
.env("CBREAK_MAX_RECOVERY")
.heading("Policy");

pub static JITTER: Flag = Flag::new(
    "jitter",
    "jitter",
    Some("PCT"),
    "Spread each open period randomly by ±PCT",
    |a, v| {
        a.jitter = parse_percent(text(v)?)?;
        Ok(())
    },
)
.default("0")
.env("CBREAK_JITTER")
.heading("Policy");

pub static PROBES: Flag = Flag::new(
    "probes",
    "probes",
    Some("N"),
    "Successful probes in a row that close the breaker",
    |a, v| {
        a.probes = u32_value(v)?;
        Ok(())
    },
)
.default("1")
.env("CBREAK_PROBES")
.heading("Policy");

/// The policy's options, shared by `run`, `check` and `record`.
pub static POLICY: [&Flag; 16] = [
    &FAILURE_RATE,
    &WINDOW,
    &MIN_CALLS,
    &TIMEOUT,
    &KILL_AFTER,
    &SIGNAL,
    &FOREGROUND,
    &PRESERVE_STATUS,
    &SLOW,
    &SUCCESS_CODES,
    &IGNORE_CODES,
    &BACKOFF,
    &BACKOFF_FACTOR,
    &MAX_RECOVERY,
    &JITTER,
    &PROBES,
];

// The hooks: every subcommand that changes a breaker.

pub static ON_OPEN: Flag = Flag::new(
    "on_open",
    "on-open",
    Some("CMD"),
    "Shell command to run when this process opens the breaker",
    |a, v| {
        a.on_open = Some(text(v)?.to_string());
        Ok(())
    },
)
.env("CBREAK_ON_OPEN")
.heading("Hooks");

pub static ON_CLOSE: Flag = Flag::new(
    "on_close",
    "on-close",
    Some("CMD"),
    "Shell command to run when this process closes the breaker",
    |a, v| {
        a.on_close = Some(text(v)?.to_string());
        Ok(())
    },
)
.env("CBREAK_ON_CLOSE")
.heading("Hooks");

pub static ON_HALF_OPEN: Flag = Flag::new(
    "on_half_open",
    "on-half-open",
    Some("CMD"),
    "Shell command to run when this process moves the breaker to half-open",
    |a, v| {
        a.on_half_open = Some(text(v)?.to_string());
        Ok(())
    },
)
.env("CBREAK_ON_HALF_OPEN")
.heading("Hooks");

pub static ON_CHANGE: Flag = Flag::new(
    "on_change",
    "on-change",
    Some("CMD"),
    "Shell command to run on any transition this process makes",
    |a, v| {
        a.on_change = Some(text(v)?.to_string());
        Ok(())
    },
)
.env("CBREAK_ON_CHANGE")
.heading("Hooks");

pub static HOOK_TIMEOUT: Flag = Flag::new(
    "hook_timeout",
    "hook-timeout",
    Some("DURATION"),
    "Longest a hook may run before it is killed",
    |a, v| {
        a.hook_timeout = parse_duration(text(v)?)?;
        Ok(())
    },
)
.default("10s")
.env("CBREAK_HOOK_TIMEOUT")
.heading("Hooks");

/// The hooks' options.
pub static HOOKS: [&Flag; 5] = [&ON_OPEN, &ON_CLOSE, &ON_HALF_OPEN, &ON_CHANGE, &HOOK_TIMEOUT];

// The other subcommands' options.

pub static CHECK_ON_STATE_ERROR: Flag = Flag::new(
    "on_state_error",
    "on-state-error",
    Some("MODE"),
    "When the state cannot be used: run (exit 0, as `run` would run the command), skip (exit 75) or fail (exit 125)",
    |a, v| {
        a.on_state_error = on_state_error(v)?;
        Ok(())
    },
)
.default("run")
.env("CBREAK_ON_STATE_ERROR")
.choices(ON_STATE_ERROR_CHOICES);

pub static RECORD_QUIET: Flag = Flag::new(
    "quiet",
    "quiet",
    None,
    "No message when changing state",
    set_quiet,
)
.short('q')
.env("CBREAK_QUIET");

pub static JSON: Flag = Flag::new(
    "json",
    "json",
    None,
    "Print JSON: an object for NAME, an array for all",
    |a, _| {
        a.json = true;
        Ok(())
    },
);

pub static ASCII: Flag = Flag::new(
    "ascii",
    "ascii",
    None,
    "Plain ASCII: + and x for the recent outcomes",
    |a, _| {
        a.ascii = true;
        Ok(())
    },
);

pub static COLOR: Flag = Flag::new(
    "color",
    "color",
    Some("WHEN"),
    "When to colour the state",
    |a, v| {
        a.color = match text(v)? {
            "auto" => ColorArg::Auto,
            "always" => ColorArg::Always,
            "never" => ColorArg::Never,
            _ => return Err(Bad::NotAChoice),
        };
        Ok(())
    },
)
.default("auto")
.choices(&[choice("auto"), choice("always"), choice("never")]);

pub static FOR: Flag = Flag::new(
    "duration",
    "for",
    Some("DURATION"),
    "Open for this long, then probe as usual [default: until `reset`]",
    |a, v| {
        a.duration = Some(parse_duration(text(v)?)?);
        Ok(())
    },
);

pub static TRIP_CREATE: Flag = Flag::new(
    "create",
    "create",
    None,
    "Make the breaker if there is none of that name (e.g. before a maintenance window)",
    set_create,
);

pub static DISABLE_CREATE: Flag = Flag::new(
    "create",
    "create",
    None,
    "Make the breaker if there is none of that name",
    set_create,
);

fn set_create(a: &mut Args, _: &OsStr) -> Result<(), Bad> {
    a.create = true;
    Ok(())
}

pub static OUTPUT: Flag = Flag::new(
    "output",
    "output",
    Some("FILE"),
    "Write to FILE atomically (for node_exporter's textfile collector): a new path or a regular file, never through a symlink; `-` is stdout",
    |a, v| {
        a.output = Some(path(v)?);
        Ok(())
    },
)
.short('o')
.hint(Hint::Path);

pub static LIST: Flag = Flag::new(
    "list",
    "list",
    None,
    "Print the pages' names, one per line",
    |a, _| {
        a.list = true;
        Ok(())
    },
)
.conflicts("page");

// Positional arguments.

pub static NAME_ARG: Positional = Positional::new("name", "NAME", "Breaker name", set_name);

pub static STATUS_NAME: Positional =
    Positional::new("name", "NAME", "Breaker name [default: all breakers]", set_name).optional();

pub static CHECK_NAME: Positional = Positional {
    required_unless: Some("command"),
    conflicts: Some("command"),
    ..Positional::new("name", "NAME", "Breaker name", set_name).optional()
};

pub static RUN_COMMAND: Positional = Positional::command(
    "command",
    "COMMAND",
    "The command to run, with its arguments",
    Many::Trailing,
);

pub static CHECK_COMMAND: Positional = Positional::command(
    "command",
    "COMMAND",
    "The command whose breaker to check, after `--`",
    Many::Last,
)
.optional();

pub static NAME_COMMAND: Positional = Positional::command(
    "command",
    "COMMAND",
    "The command, with its arguments, exactly as it would follow `cbreak run`",
    Many::Trailing,
);

pub static OUTCOME: Positional =
    Positional::new("outcome", "OUTCOME", "The outcome to record", |a, v| {
        a.outcome = Some(match text(v)? {
            "success" => OutcomeArg::Success,
            "failure" => OutcomeArg::Failure,
            "ignored" => OutcomeArg::Ignored,
            _ => return Err(Bad::NotAChoice),
        });
        Ok(())
    })
    .choices(&[choice("success"), choice("failure"), choice("ignored")]);

pub static SHELL: Positional = Positional::new("shell", "SHELL", "The shell", |a, v| {
    a.shell = Some(match text(v)? {
        "bash" => ShellArg::Bash,
        "zsh" => ShellArg::Zsh,
        "fish" => ShellArg::Fish,
        "elvish" => ShellArg::Elvish,
        "powershell" => ShellArg::PowerShell,
        _ => return Err(Bad::NotAChoice),
    });
    Ok(())
})
.choices(&[
    choice("bash"),
    choice("zsh"),
    choice("fish"),
    choice("elvish"),
    choice("powershell"),
]);

pub static PAGE: Positional = Positional::new(
    "page",
    "PAGE",
    "The page: cbreak, or a subcommand's (run or cbreak-run) [default: cbreak]",
    |a, v| {
        a.page = Some(text(v)?.to_string());
        Ok(())
    },
)
.optional();

// The program and its subcommands.

/// The first paragraph of cbreak's help.
pub const ABOUT: &str =
    "Run commands through a circuit breaker shared by every process on the machine";

/// cbreak's whole help.
pub const LONG_ABOUT: &str = "Run commands through a circuit breaker shared by every process on the machine.

While a command keeps succeeding cbreak just runs it. After enough failures the breaker opens: cbreak skips the command (exit 75) for the recovery period, then lets one probe through; a good probe closes the breaker, a bad one reopens it. State lives in small locked files in the state directory.";

use Item::{Flag as F, Group as G, Positional as P};

/// Every subcommand, in the order help lists them.
pub static SUBCOMMANDS: [Sub; 14] = [
    Sub {
        name: "run",
        command: Subcommand::Run,
        about: "Run a command through a breaker",
        long_about: Some(
            "Run a command through a breaker

Exit status: the command's own; 75 (--open-exit-code) when skipped; 124 when it timed out; 125 for cbreak's own errors; 126 when it cannot be executed; 127 when it is not found.

Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to cbreak are passed on to the command, unless they were ignored when cbreak started (nohup). When the command died of signal N (not at a timeout), or cbreak was stopped by one of those signals, cbreak dies of the same signal after recording the call, as timeout(1) does: the shell shows 128+N, and Ctrl-C stops a loop around cbreak.",
        ),
        args: &[
            F(&NAME),
            F(&THRESHOLD),
            F(&RECOVERY),
            F(&OPEN_EXIT_CODE),
            F(&ON_STATE_ERROR),
            F(&QUIET),
            F(&QUIET_SKIPS),
            F(&FALLBACK),
            G(&POLICY),
            G(&HOOKS),
            P(&RUN_COMMAND),
        ],
    },
    Sub {
        name: "status",
        command: Subcommand::Status,
        about: "Show one breaker, or all of them",
        long_about: None,
        args: &[P(&STATUS_NAME), F(&JSON), F(&ASCII), F(&COLOR)],
    },
    Sub {
        name: "trip",
        command: Subcommand::Trip,
        about: "Force a breaker open: until `reset`, or for a while with --for",
        long_about: None,
        args: &[P(&NAME_ARG), F(&FOR), F(&TRIP_CREATE), G(&HOOKS)],
    },
    Sub {
        name: "reset",
        command: Subcommand::Reset,
        about: "Close a breaker and forget its failures",
        long_about: None,
        args: &[P(&NAME_ARG), G(&HOOKS)],
    },
    Sub {
        name: "check",
        command: Subcommand::Check,
        about: "Exit 0 if a call would run now, 75 if it would be skipped; change nothing",
        long_about: Some(
            "Exit 0 if a call would run now, 75 if it would be skipped; change nothing

Give the breaker's NAME, or the command after `--` to ask about the breaker `run` would use for it without --name.",
        ),
        args: &[
            P(&CHECK_NAME),
            F(&CHECK_ON_STATE_ERROR),
            F(&THRESHOLD),
            F(&RECOVERY),
            G(&POLICY),
            P(&CHECK_COMMAND),
        ],
    },
    Sub {
        name: "record",
        command: Subcommand::Record,
        about: "Record an outcome from a script, as `run` would",
        long_about: None,
        args: &[
            P(&NAME_ARG),
            P(&OUTCOME),
            F(&RECORD_QUIET),
            F(&THRESHOLD),
            F(&RECOVERY),
            G(&POLICY),
            G(&HOOKS),
        ],
    },
    Sub {
        name: "disable",
        command: Subcommand::Disable,
        about: "Metrics only: every call runs and is counted, the breaker never opens",
        long_about: None,
        args: &[P(&NAME_ARG), F(&DISABLE_CREATE), G(&HOOKS)],
    },
    Sub {
        name: "enable",
        command: Subcommand::Enable,
        about: "Undo `disable`",
        long_about: None,
        args: &[P(&NAME_ARG), G(&HOOKS)],
    },
    Sub {
        name: "list",
        command: Subcommand::List,
        about: "Print the breakers' names, one per line",
        long_about: None,
        args: &[],
    },
    Sub {
        name: "forget",
        command: Subcommand::Forget,
        about: "Delete a breaker's record",
        long_about: None,
        args: &[P(&NAME_ARG)],
    },
    Sub {
        name: "metrics",
        command: Subcommand::Metrics,
        about: "Print every breaker's metrics in the Prometheus text format",
        long_about: None,
        args: &[F(&OUTPUT)],
    },
    Sub {
        name: "name",
        command: Subcommand::Name,
        about: "Print the name of the breaker `run` would use for a command without --name",
        long_about: None,
        args: &[P(&NAME_COMMAND)],
    },
    Sub {
        name: "completions",
        command: Subcommand::Completions,
        about: "Print the completion script for a shell",
        long_about: Some(
            "Print the completion script for a shell

bash: `cbreak completions bash > ~/.local/share/bash-completion/completions/cbreak`; zsh: into a directory on $fpath as `_cbreak`; fish: `cbreak completions fish > ~/.config/fish/completions/cbreak.fish`.",
        ),
        args: &[P(&SHELL)],
    },
    Sub {
        name: "man",
        command: Subcommand::Man,
        about: "Print a man page (roff): `cbreak man run | man -l -`",
        long_about: None,
        args: &[P(&PAGE), F(&LIST)],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn every_flag() -> impl Iterator<Item = &'static Flag> {
        GLOBALS
            .iter()
            .copied()
            .chain(SUBCOMMANDS.iter().flat_map(|s| s.flags()))
    }

    #[test]
    fn no_subcommand_has_a_long_short_or_variable_twice() {
        for sub in &SUBCOMMANDS {
            let flags: Vec<&Flag> = GLOBALS.iter().copied().chain(sub.flags()).collect();
            for (i, a) in flags.iter().enumerate() {
                for b in &flags[i + 1..] {
                    let what = format!("{} --{} and --{}", sub.name, a.long, b.long);
                    assert_ne!(a.long, b.long, "{what}");
                    assert_ne!(a.id, b.id, "{what}");
                    assert!(a.short.is_none() || a.short != b.short, "{what}");
                    assert!(a.env.is_none() || a.env != b.env, "{what}");
                }
                // The parser's own: help and version.
                assert!(a.long != "help" && a.long != "version", "{}", a.long);
                assert!(a.short != Some('h') && a.short != Some('V'), "{}", a.long);
            }
            let positionals: Vec<&Positional> = sub.positionals().collect();
            let commands = positionals.iter().filter(|p| p.many != Many::One).count();
            assert!(commands <= 1, "{}", sub.name);
            if let Some(i) = positionals.iter().position(|p| p.many == Many::Trailing) {
                assert_eq!(i + 1, positionals.len(), "{}: the command comes last", sub.name);
            }
        }
    }

    #[test]
    fn every_variable_is_cbreaks_and_every_default_parses() {
        for flag in every_flag() {
            if let Some(var) = flag.env {
                assert!(var.starts_with("CBREAK_"), "{var}");
            }
            if let Some(default) = flag.default {
                assert!(flag.value.is_some(), "--{}: a switch has no default", flag.long);
                let mut args = Args::default();
                assert_eq!((flag.set)(&mut args, OsStr::new(default)), Ok(()), "--{}", flag.long);
            }
        }
    }

    #[test]
    fn every_choice_is_taken_and_nothing_else() {
        for flag in every_flag().filter(|f| !f.choices.is_empty()) {
            for c in flag.choices {
                assert_eq!((flag.set)(&mut Args::default(), OsStr::new(c.name)), Ok(()));
            }
            let bad = (flag.set)(&mut Args::default(), OsStr::new("bogus"));
            assert_eq!(bad, Err(Bad::NotAChoice), "--{}", flag.long);
        }
    }
}
