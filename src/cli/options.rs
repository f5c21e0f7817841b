//! `run`'s options, declared once.
//!
//! Each option is one named constant: how it is written, its default, its
//! variable, and which field of [`RunArgs`] it fills and how. clap's
//! definition (`cli/mod.rs`) takes the long name, short name, default and
//! variable of each option from here (`long = opt::THRESHOLD.long`, ...),
//! and adds only the help text and the value parser; the lean parser
//! (`fast`) reads the table [`OPTIONS`] and fills the fields through each
//! option's `set`. Nothing is found by position, so adding an option is:
//! a constant here, its entry in [`OPTIONS`], its field in clap's struct.
//! The tests in `fast` check that the table and clap's definition hold the
//! same options, and that both parsers agree on every one of them, from
//! the command line and from the environment.

use super::{BackoffArg, OnStateErrorArg, RunArgs};
use crate::value::{
    parse_codes, parse_duration, parse_factor, parse_name, parse_percent, parse_signal,
    parse_window,
};

/// One option of `run`.
pub struct Opt {
    pub long: &'static str,
    pub short: Option<char>,
    pub default: Option<&'static str>,
    pub env: Option<&'static str>,
    /// A flag takes no value (its `set` is given "true").
    pub flag: bool,
    /// Stores a value (given, from the variable, or the default) in its
    /// field; `None` when the value is not one the lean parser is sure of,
    /// which leaves the whole command line to clap.
    pub set: fn(&mut RunArgs, &str) -> Option<()>,
}

const fn value(
    long: &'static str,
    short: Option<char>,
    default: Option<&'static str>,
    env: Option<&'static str>,
    set: fn(&mut RunArgs, &str) -> Option<()>,
) -> Opt {
    Opt {
        long,
        short,
        default,
        env,
        flag: false,
        set,
    }
}

const fn flag(
    long: &'static str,
    short: Option<char>,
    env: &'static str,
    set: fn(&mut RunArgs, &str) -> Option<()>,
) -> Opt {
    Opt {
        long,
        short,
        default: None,
        env: Some(env),
        flag: true,
        set,
    }
}

pub const NAME: Opt = value("name", Some('n'), None, None, |r, v| {
    r.name = Some(parse_name(v).ok()?);
    Some(())
});
pub const THRESHOLD: Opt = value(
    "threshold",
    Some('t'),
    Some("5"),
    Some("CBREAK_THRESHOLD"),
    |r, v| {
        r.threshold = digits(v)?;
        Some(())
    },
);
pub const RECOVERY: Opt = value(
    "recovery",
    Some('r'),
    Some("30s"),
    Some("CBREAK_RECOVERY"),
    |r, v| {
        r.recovery = parse_duration(v).ok()?;
        Some(())
    },
);
pub const OPEN_EXIT_CODE: Opt = value(
    "open-exit-code",
    None,
    Some("75"),
    Some("CBREAK_OPEN_EXIT_CODE"),
    |r, v| {
        r.open_exit_code = digits(v)?;
        Some(())
    },
);
pub const ON_STATE_ERROR: Opt = value(
    "on-state-error",
    None,
    Some("run"),
    Some("CBREAK_ON_STATE_ERROR"),
    |r, v| {
        r.on_state_error = match v {
            "run" => OnStateErrorArg::Run,
            "skip" => OnStateErrorArg::Skip,
            "fail" => OnStateErrorArg::Fail,
            _ => return None,
        };
        Some(())
    },
);
pub const QUIET: Opt = flag("quiet", Some('q'), "CBREAK_QUIET", |r, _| {
    r.quiet = true;
    Some(())
});
pub const QUIET_SKIPS: Opt = flag("quiet-skips", None, "CBREAK_QUIET_SKIPS", |r, _| {
    r.quiet_skips = true;
    Some(())
});
pub const FALLBACK: Opt = value("fallback", None, None, Some("CBREAK_FALLBACK"), |r, v| {
    r.fallback = Some(v.to_string());
    Some(())
});
pub const FAILURE_RATE: Opt = value(
    "failure-rate",
    None,
    None,
    Some("CBREAK_FAILURE_RATE"),
    |r, v| {
        r.policy.failure_rate = Some(parse_percent(v).ok()?);
        Some(())
    },
);
pub const WINDOW: Opt = value("window", None, None, Some("CBREAK_WINDOW"), |r, v| {
    r.policy.window = Some(parse_window(v).ok()?);
    Some(())
});
pub const MIN_CALLS: Opt = value(
    "min-calls",
    None,
    Some("10"),
    Some("CBREAK_MIN_CALLS"),
    |r, v| {
        r.policy.min_calls = digits(v)?;
        Some(())
    },
);
pub const TIMEOUT: Opt = value("timeout", None, None, Some("CBREAK_TIMEOUT"), |r, v| {
    r.policy.timeout = Some(parse_duration(v).ok()?);
    Some(())
});
pub const KILL_AFTER: Opt = value(
    "kill-after",
    None,
    Some("5s"),
    Some("CBREAK_KILL_AFTER"),
    |r, v| {
        r.policy.kill_after = parse_duration(v).ok()?;
        Some(())
    },
);
pub const SIGNAL: Opt = value(
    "signal",
    Some('s'),
    Some("TERM"),
    Some("CBREAK_SIGNAL"),
    |r, v| {
        r.policy.signal = parse_signal(v).ok()?;
        Some(())
    },
);
pub const FOREGROUND: Opt = flag("foreground", None, "CBREAK_FOREGROUND", |r, _| {
    r.policy.foreground = true;
    Some(())
});
pub const PRESERVE_STATUS: Opt = flag("preserve-status", None, "CBREAK_PRESERVE_STATUS", |r, _| {
    r.policy.preserve_status = true;
    Some(())
});
pub const SLOW: Opt = value("slow", None, None, Some("CBREAK_SLOW"), |r, v| {
    r.policy.slow = Some(parse_duration(v).ok()?);
    Some(())
});
pub const SUCCESS_CODES: Opt = value(
    "success-codes",
    None,
    Some("0"),
    Some("CBREAK_SUCCESS_CODES"),
    |r, v| {
        r.policy.success_codes = parse_codes(v).ok()?;
        Some(())
    },
);
pub const IGNORE_CODES: Opt = value(
    "ignore-codes",
    None,
    None,
    Some("CBREAK_IGNORE_CODES"),
    |r, v| {
        r.policy.ignore_codes = Some(parse_codes(v).ok()?);
        Some(())
    },
);
pub const BACKOFF: Opt = value(
    "backoff",
    None,
    Some("constant"),
    Some("CBREAK_BACKOFF"),
    |r, v| {
        r.policy.backoff = match v {
            "constant" => BackoffArg::Constant,
            "exponential" => BackoffArg::Exponential,
            _ => return None,
        };
        Some(())
    },
);
pub const BACKOFF_FACTOR: Opt = value(
    "backoff-factor",
    None,
    Some("2"),
    Some("CBREAK_BACKOFF_FACTOR"),
    |r, v| {
        r.policy.backoff_factor = parse_factor(v).ok()?;
        Some(())
    },
);
pub const MAX_RECOVERY: Opt = value(
    "max-recovery",
    None,
    None,
    Some("CBREAK_MAX_RECOVERY"),
    |r, v| {
        r.policy.max_recovery = Some(parse_duration(v).ok()?);
        Some(())
    },
);
pub const JITTER: Opt = value("jitter", None, Some("0"), Some("CBREAK_JITTER"), |r, v| {
    r.policy.jitter = parse_percent(v).ok()?;
    Some(())
});
pub const PROBES: Opt = value("probes", None, Some("1"), Some("CBREAK_PROBES"), |r, v| {
    r.policy.probes = digits(v)?;
    Some(())
});
pub const ON_OPEN: Opt = value("on-open", None, None, Some("CBREAK_ON_OPEN"), |r, v| {
    r.hooks.on_open = Some(v.to_string());
    Some(())
});
pub const ON_CLOSE: Opt = value("on-close", None, None, Some("CBREAK_ON_CLOSE"), |r, v| {
    r.hooks.on_close = Some(v.to_string());
    Some(())
});
pub const ON_HALF_OPEN: Opt = value(
    "on-half-open",
    None,
    None,
    Some("CBREAK_ON_HALF_OPEN"),
    |r, v| {
        r.hooks.on_half_open = Some(v.to_string());
        Some(())
    },
);
pub const ON_CHANGE: Opt = value("on-change", None, None, Some("CBREAK_ON_CHANGE"), |r, v| {
    r.hooks.on_change = Some(v.to_string());
    Some(())
});
pub const HOOK_TIMEOUT: Opt = value(
    "hook-timeout",
    None,
    Some("10s"),
    Some("CBREAK_HOOK_TIMEOUT"),
    |r, v| {
        r.hooks.hook_timeout = parse_duration(v).ok()?;
        Some(())
    },
);

/// Every option of `run` (checked against clap's definition by
/// `fast`'s tests).
pub const OPTIONS: [&Opt; 29] = [
    &NAME,
    &THRESHOLD,
    &RECOVERY,
    &OPEN_EXIT_CODE,
    &ON_STATE_ERROR,
    &QUIET,
    &QUIET_SKIPS,
    &FALLBACK,
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
    &ON_OPEN,
    &ON_CLOSE,
    &ON_HALF_OPEN,
    &ON_CHANGE,
    &HOOK_TIMEOUT,
];

/// A number written in plain digits; anything else (`+3`, `0x3`) is
/// clap's to judge.
fn digits<T: std::str::FromStr>(v: &str) -> Option<T> {
    v.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| v.parse().ok())?
}
