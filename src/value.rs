//! The values of options, parsed from what people type: durations,
//! percentages, exit-code lists, window sizes, signals, factors, names.
//!
//! Used by `cli` (each option's `set` in `cli/defs.rs`) and by
//! `config`; knows nothing of either, nor of clap. The bounds of a value
//! are `spec`'s, which the library's builder judges by too. Every parser returns a
//! message that says what was wrong and what to write instead.

use crate::breaker::{CodeSet, Millis, Window};
use crate::spec::{self, MAX_DURATION, MIN_TIME_WINDOW};
use crate::window::MAX_COUNT_WINDOW;

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
    spec::duration(parse_duration_unbounded(s)?).map_err(|_| {
        format!(
            "too long: at most {} days (100 years)",
            MAX_DURATION / 86_400_000
        )
    })
}

fn parse_duration_unbounded(s: &str) -> Result<Millis, String> {
    let s = s.trim();
    let too_long = || format!("too long: at most {} days", MAX_DURATION / 86_400_000);
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
    let number = s.trim();
    let number = number.strip_suffix('%').unwrap_or(number);
    // Digits and one point only: `50%%`, `1e2` or `inf` mean nothing here.
    let value: f64 = Some(number)
        .filter(|n| plain_decimal(n))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("'{s}' is not a percentage; use e.g. 50% or 50"))?;
    spec::percent(value)
        .map_err(|_| format!("'{s}' is out of range: a percentage is from 0 to 100"))
}

/// A window: a count of calls (1 to 1024) or a duration (at least 20 ms, so
/// that each of its 20 buckets spans at least 1 ms).
pub fn parse_window(s: &str) -> Result<Window, String> {
    if let Ok(n) = s.trim().parse::<u32>() {
        return spec::window_calls(n).map_err(|_| {
            format!(
                "a window of {n} calls is out of range: use 1 to {MAX_COUNT_WINDOW}, or a duration"
            )
        });
    }
    spec::window_span(parse_duration(s)?)
        .map_err(|_| format!("a window of '{s}' is too short: use at least {MIN_TIME_WINDOW}ms"))
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
    let f: f64 = Some(s.trim())
        .filter(|n| plain_decimal(n))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("'{s}' is not a number; use e.g. 2 or 1.5"))?;
    spec::factor(f).map_err(|_| {
        format!(
            "'{s}' is out of range: the factor must be above 1 and at most 100, in steps of 0.001"
        )
    })
}

/// Digits with at most one decimal point among them (`12`, `12.5`, `.5`):
/// what people write for a percentage or a factor, and not what Rust's
/// float parser also takes (`1e2`, `inf`, `NaN`, `+5`).
fn plain_decimal(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    digits > 0
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
