//! [`Spec`]: what a front end asks of a breaker's policy, in typed values,
//! and the one check that turns it into the machine's [`Policy`].
//!
//! Both front ends fill a `Spec`: the command line from its options
//! (`config`), the library from its builder's calls (`api::Builder`).
//! [`Spec::policy`] checks what spans several fields and says which
//! [`Field`] is wrong and why ([`Invalid`]); each front end words the
//! field (`--recovery` there, `recovery` here) through
//! [`Invalid::message`]. Nothing here is parsed from text or formatted to
//! be parsed again, and no message names an option or a subcommand.
//!
//! The bounds of single values that both front ends take as numbers (a
//! duration, a percentage, a window, a factor) are here too, so the
//! command line's parsers (`value`) and the builder judge them alike.

use crate::breaker::{Backoff, CodeSet, Millis, Policy, Window};
use crate::window::MAX_COUNT_WINDOW;

/// Failure-rate window used when a failure rate is given without a window
/// (resilience4j's default).
pub const DEFAULT_WINDOW: Window = Window::Count(100);

/// The exponential backoff's cap when none is given (or the recovery, if
/// that is longer).
pub const DEFAULT_MAX_RECOVERY: Millis = 60 * 60 * 1000;

/// The longest duration anything takes: 100 years. Longer ones would
/// reach past the year 9999 that the JSON and metrics can show, and the
/// millisecond counts past what JSON numbers hold exactly.
pub const MAX_DURATION: Millis = 36_500 * 86_400_000;

/// The shortest time window: each of its buckets spans at least 1 ms.
pub const MIN_TIME_WINDOW: Millis = 20;

/// A policy as a front end asks for it. Its defaults are `cbreak run`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub threshold: u32,
    pub recovery: Millis,
    /// In basis points (1/100 of a percent).
    pub failure_rate: Option<u32>,
    /// `None`: the default window, if there is a failure rate.
    pub window: Option<Window>,
    pub min_calls: u32,
    pub slow: Option<Millis>,
    pub timeout: Option<Millis>,
    pub kill_after: Millis,
    pub success_codes: CodeSet,
    pub ignore_codes: Option<CodeSet>,
    pub backoff: Backoff,
    /// In thousandths (2000 = ×2).
    pub backoff_factor_milli: u32,
    pub max_recovery: Option<Millis>,
    /// In basis points; whole percentages only.
    pub jitter: u32,
    pub probes: u32,
}

impl Default for Spec {
    fn default() -> Spec {
        let p = Policy::default();
        Spec {
            threshold: p.threshold,
            recovery: p.recovery,
            failure_rate: None,
            window: None,
            min_calls: p.min_calls,
            slow: None,
            timeout: None,
            kill_after: p.kill_after,
            success_codes: p.success_codes,
            ignore_codes: None,
            backoff: p.backoff,
            backoff_factor_milli: p.backoff_factor_milli,
            max_recovery: None,
            jitter: 0,
            probes: p.probes,
        }
    }
}

/// A field of a [`Spec`], for a front end to name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Threshold,
    Recovery,
    FailureRate,
    Window,
    MinCalls,
    Slow,
    Timeout,
    SuccessCodes,
    IgnoreCodes,
    MaxRecovery,
    Jitter,
    Probes,
}

/// What is wrong with a [`Spec`]: the field, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// A window without a failure rate to measure.
    WindowWithoutRate,
    /// A failure rate of 0 %.
    RateZero,
    /// More calls needed than a count window holds.
    MinCallsOverWindow { min_calls: u32, window: u32 },
    /// No consecutive rule and no rate rule.
    NoRule,
    /// A duration of 0 where 0 means nothing sensible.
    Zero(Field),
    /// Probes: 0 would never close.
    ProbesZero,
    /// Jitter in fractions of a percent, or of 100 % (which could leave an
    /// open period nothing).
    JitterNotWhole,
    /// A code both a success and ignored.
    CodesOverlap { ignore: CodeSet, success: CodeSet },
    /// An exponential cap below the recovery it grows from.
    MaxBelowRecovery { max: Millis, recovery: Millis },
}

impl Invalid {
    /// The message, with each field worded by `name` (`--min-calls` on the
    /// command line, `min_calls` in the builder).
    pub fn message(&self, name: impl Fn(Field) -> &'static str) -> String {
        use crate::output::span;
        match self {
            Invalid::WindowWithoutRate => format!(
                "{} needs {}: it is the window the rate is measured over",
                name(Field::Window),
                name(Field::FailureRate)
            ),
            Invalid::RateZero => format!(
                "{} 0% would open on the first call; use a rate above 0",
                name(Field::FailureRate)
            ),
            Invalid::MinCallsOverWindow { min_calls, window } => format!(
                "{} {min_calls} is larger than {} {window}: the rate could never be judged",
                name(Field::MinCalls),
                name(Field::Window)
            ),
            Invalid::NoRule => format!(
                "{} 0 turns off the consecutive rule; give {} too, or the breaker can never open",
                name(Field::Threshold),
                name(Field::FailureRate)
            ),
            Invalid::Zero(field) => {
                let why = match field {
                    Field::Recovery => {
                        "would probe on every call while open; give at least 1ms (e.g. 30s)"
                    }
                    Field::Timeout => "would kill every command at once; give a duration above 0",
                    Field::Slow => "would count every call as slow; give a duration above 0",
                    _ => "means nothing here; give a value above 0",
                };
                format!("{} 0 {why}", name(*field))
            }
            Invalid::ProbesZero => format!(
                "{} 0 would never close the breaker; use 1 or more",
                name(Field::Probes)
            ),
            Invalid::JitterNotWhole => format!(
                "{} must be a whole percentage from 0 to 99 (100 could leave an open period nothing)",
                name(Field::Jitter)
            ),
            Invalid::CodesOverlap { ignore, success } => format!(
                "{} {} and {} {} overlap: a code cannot be both",
                name(Field::IgnoreCodes),
                ignore.to_list(),
                name(Field::SuccessCodes),
                success.to_list()
            ),
            Invalid::MaxBelowRecovery { max, recovery } => {
                let (m, r) = (name(Field::MaxRecovery), name(Field::Recovery));
                let (max, recovery) = (span(*max), span(*recovery));
                format!(
                    "{m} {max} is shorter than {r} {recovery}: exponential backoff \
                     grows the open period from {r} up to {m}; give \
                     {m} {recovery} or more, or a shorter {r}"
                )
            }
        }
    }
}

impl Spec {
    /// The machine's policy, or the first thing wrong with this spec.
    pub fn policy(&self) -> Result<Policy, Invalid> {
        let window = match (self.failure_rate, self.window) {
            (Some(_), Some(w)) => w,
            (Some(_), None) => DEFAULT_WINDOW,
            (None, Some(_)) => return Err(Invalid::WindowWithoutRate),
            (None, None) => Window::None,
        };
        if self.failure_rate == Some(0) {
            return Err(Invalid::RateZero);
        }
        if let Window::Count(n) = window
            && self.min_calls > n
        {
            return Err(Invalid::MinCallsOverWindow {
                min_calls: self.min_calls,
                window: n,
            });
        }
        if self.threshold == 0 && self.failure_rate.is_none() {
            return Err(Invalid::NoRule);
        }
        if self.recovery == 0 {
            return Err(Invalid::Zero(Field::Recovery));
        }
        if self.timeout == Some(0) {
            return Err(Invalid::Zero(Field::Timeout));
        }
        if self.slow == Some(0) {
            return Err(Invalid::Zero(Field::Slow));
        }
        if self.probes == 0 {
            return Err(Invalid::ProbesZero);
        }
        // ±100 % could make an open period nothing: an immediate probe.
        if !self.jitter.is_multiple_of(100) || self.jitter >= 100 * 100 {
            return Err(Invalid::JitterNotWhole);
        }
        let ignore = self.ignore_codes.unwrap_or_default();
        if ignore.intersects(&self.success_codes) {
            return Err(Invalid::CodesOverlap {
                ignore,
                success: self.success_codes,
            });
        }
        // The cap means something only to exponential backoff; without one
        // given, it is never below the recovery (a 6h recovery gets a 6h cap).
        let max_recovery = match (self.backoff, self.max_recovery) {
            (Backoff::Exponential, Some(max)) if max < self.recovery => {
                return Err(Invalid::MaxBelowRecovery {
                    max,
                    recovery: self.recovery,
                });
            }
            (_, Some(max)) => max.max(self.recovery),
            (_, None) => DEFAULT_MAX_RECOVERY.max(self.recovery),
        };
        Ok(Policy {
            threshold: self.threshold,
            recovery: self.recovery,
            failure_rate: self.failure_rate,
            window,
            min_calls: self.min_calls,
            slow: self.slow,
            timeout: self.timeout,
            kill_after: self.kill_after,
            success_codes: self.success_codes,
            ignore_codes: ignore,
            backoff: self.backoff,
            backoff_factor_milli: self.backoff_factor_milli,
            max_recovery,
            jitter_percent: self.jitter / 100,
            probes: self.probes,
        })
    }
}

/// Why a single value is out of its bounds; each front end words the value
/// as its user wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutOfRange {
    /// A duration past [`MAX_DURATION`].
    TooLong,
    /// A percentage outside 0 to 100.
    Percent,
    /// A count window outside 1 to [`MAX_COUNT_WINDOW`].
    WindowCalls,
    /// A time window under [`MIN_TIME_WINDOW`].
    WindowShort,
    /// A backoff factor not above 1 and at most 100 (after rounding to
    /// thousandths).
    Factor,
}

/// A duration, bounded by [`MAX_DURATION`].
pub fn duration(ms: Millis) -> Result<Millis, OutOfRange> {
    if ms > MAX_DURATION {
        Err(OutOfRange::TooLong)
    } else {
        Ok(ms)
    }
}

/// A percentage from 0 to 100, in basis points.
pub fn percent(value: f64) -> Result<u32, OutOfRange> {
    if (0.0..=100.0).contains(&value) {
        Ok((value * 100.0).round() as u32)
    } else {
        Err(OutOfRange::Percent)
    }
}

/// A window of the last `n` calls.
pub fn window_calls(n: u32) -> Result<Window, OutOfRange> {
    if (1..=MAX_COUNT_WINDOW).contains(&n) {
        Ok(Window::Count(n))
    } else {
        Err(OutOfRange::WindowCalls)
    }
}

/// A window of the last `ms` milliseconds.
pub fn window_span(ms: Millis) -> Result<Window, OutOfRange> {
    let ms = duration(ms)?;
    if ms < MIN_TIME_WINDOW {
        Err(OutOfRange::WindowShort)
    } else {
        Ok(Window::Time(ms))
    }
}

/// A backoff factor above 1 and at most 100, in thousandths. Judged after
/// rounding to what is stored: 1.0000001 would be stored as 1 and never
/// grow (found by the fuzz target `options`).
pub fn factor(f: f64) -> Result<u32, OutOfRange> {
    let milli = (f * 1000.0).round();
    if milli > 1000.0 && milli <= 100_000.0 {
        Ok(milli as u32)
    } else {
        Err(OutOfRange::Factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(f: Field) -> &'static str {
        match f {
            Field::MinCalls => "MIN",
            Field::Window => "WIN",
            _ => "X",
        }
    }

    #[test]
    fn the_default_spec_is_the_default_policy() {
        assert_eq!(Spec::default().policy(), Ok(Policy::default()));
    }

    #[test]
    fn a_clash_names_both_fields_through_the_front_ends_words() {
        let spec = Spec {
            failure_rate: Some(5000),
            window: Some(Window::Count(5)),
            min_calls: 10,
            ..Spec::default()
        };
        let err = spec.policy().unwrap_err();
        assert_eq!(
            err.message(words),
            "MIN 10 is larger than WIN 5: the rate could never be judged"
        );
    }

    #[test]
    fn a_failure_rate_alone_gets_the_default_window() {
        let spec = Spec {
            failure_rate: Some(5000),
            ..Spec::default()
        };
        assert_eq!(spec.policy().unwrap().window, DEFAULT_WINDOW);
    }

    #[test]
    fn single_values_keep_their_bounds() {
        assert_eq!(duration(MAX_DURATION + 1), Err(OutOfRange::TooLong));
        assert_eq!(percent(12.5), Ok(1250));
        assert_eq!(percent(100.5), Err(OutOfRange::Percent));
        assert_eq!(percent(f64::NAN), Err(OutOfRange::Percent));
        assert_eq!(window_calls(0), Err(OutOfRange::WindowCalls));
        assert_eq!(window_span(19), Err(OutOfRange::WindowShort));
        assert_eq!(factor(1.0000001), Err(OutOfRange::Factor));
        assert_eq!(factor(f64::NAN), Err(OutOfRange::Factor));
        assert_eq!(factor(1.5), Ok(1500));
    }
}
