//! How a breaker judges calls: the [`Policy`] (thresholds, windows, exit
//! codes, backoff, timeouts) and how it classifies a call's end into an
//! [`Outcome`]. Plain data and pure functions, no I/O.

use super::{DEFAULT_PROBE_LEASE, LEASE_GRACE, Millis};

/// The set of exit codes 0..=255, for `--success-codes` and `--ignore-codes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeSet(pub [u64; 4]);

impl CodeSet {
    pub fn single(code: u8) -> CodeSet {
        let mut s = CodeSet::default();
        s.insert(code);
        s
    }

    pub fn insert(&mut self, code: u8) {
        self.0[usize::from(code / 64)] |= 1 << (code % 64);
    }

    pub fn contains(&self, code: i32) -> bool {
        u8::try_from(code).is_ok_and(|c| self.0[usize::from(c / 64)] >> (c % 64) & 1 == 1)
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    pub fn intersects(&self, other: &CodeSet) -> bool {
        self.0.iter().zip(other.0).any(|(a, b)| a & b != 0)
    }

    /// The canonical text, e.g. `0,2-5`: what `--success-codes` accepts.
    pub fn to_list(self) -> String {
        let mut parts = Vec::new();
        let mut code = 0u16;
        while code < 256 {
            if self.contains(i32::from(code)) {
                let start = code;
                while code + 1 < 256 && self.contains(i32::from(code + 1)) {
                    code += 1;
                }
                parts.push(if start == code {
                    start.to_string()
                } else {
                    format!("{start}-{code}")
                });
            }
            code += 1;
        }
        parts.join(",")
    }
}

/// What counts the failure rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Window {
    /// No rate rule.
    #[default]
    None,
    /// The last N outcomes.
    Count(u32),
    /// The outcomes of the last span of milliseconds.
    Time(Millis),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backoff {
    #[default]
    Constant,
    Exponential,
}

impl Backoff {
    pub fn as_str(self) -> &'static str {
        match self {
            Backoff::Constant => "constant",
            Backoff::Exponential => "exponential",
        }
    }
}

/// Everything that decides when a breaker trips and recovers, and how a
/// call's end is judged. The last `run`'s policy is stored in the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Consecutive failures that open the breaker; 0 disables the rule.
    pub threshold: u32,
    /// Base open period.
    pub recovery: Millis,
    /// Failure rate in basis points (1/100 of a percent) that opens the
    /// breaker; `None` disables the rule.
    pub failure_rate: Option<u32>,
    pub window: Window,
    /// No rate verdict before this many outcomes are in the window.
    pub min_calls: u32,
    /// A successful call longer than this counts as a failure.
    pub slow: Option<Millis>,
    pub timeout: Option<Millis>,
    pub kill_after: Millis,
    pub success_codes: CodeSet,
    pub ignore_codes: CodeSet,
    pub backoff: Backoff,
    /// Backoff multiplier in thousandths (2000 = ×2).
    pub backoff_factor_milli: u32,
    pub max_recovery: Millis,
    /// Each open period is spread by ±this percent.
    pub jitter_percent: u32,
    /// Successful probes in a row that close the breaker.
    pub probes: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            threshold: 5,
            recovery: 30_000,
            failure_rate: None,
            window: Window::None,
            min_calls: 10,
            slow: None,
            timeout: None,
            kill_after: 5_000,
            success_codes: CodeSet::single(0),
            ignore_codes: CodeSet::default(),
            backoff: Backoff::Constant,
            backoff_factor_milli: 2_000,
            max_recovery: 60 * 60 * 1000,
            jitter_percent: 0,
            probes: 1,
        }
    }
}

/// How a command ended, as far as the breaker is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// An `--ignore-codes` status: counted, but neither success nor failure.
    Ignored,
    /// Stopped by a signal cbreak forwarded: the user's doing, not the
    /// service's.
    Cancelled,
}

/// The facts of one finished call that the policy judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signaled(i32),
    TimedOut,
}

/// A judged call: its outcome and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    pub outcome: Outcome,
    /// It succeeded by its status but ran longer than `--slow`.
    pub slow: bool,
    pub timed_out: bool,
}

impl Policy {
    /// Judges a call that ran for `elapsed` ms and ended as `end`;
    /// `cancelled` when cbreak forwarded a signal to it.
    pub fn classify(&self, end: End, elapsed: Millis, cancelled: bool) -> Call {
        let mut call = Call {
            outcome: Outcome::Failure,
            slow: false,
            timed_out: false,
        };
        // A death by signal N is judged by the status the shell shows for
        // it, 128+N (141 for SIGPIPE).
        let code = match end {
            End::TimedOut => {
                call.timed_out = true;
                return call;
            }
            _ if cancelled => {
                call.outcome = Outcome::Cancelled;
                return call;
            }
            End::Exited(code) => code,
            End::Signaled(sig) => 128 + sig,
        };
        if self.ignore_codes.contains(code) {
            call.outcome = Outcome::Ignored;
        } else if self.success_codes.contains(code) {
            if self.slow.is_some_and(|slow| elapsed > slow) {
                call.slow = true;
            } else {
                call.outcome = Outcome::Success;
            }
        }
        call
    }

    pub(super) fn probe_lease(&self) -> Millis {
        match self.timeout {
            Some(t) => t
                .saturating_add(self.kill_after)
                .saturating_add(LEASE_GRACE),
            None => DEFAULT_PROBE_LEASE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_applies_codes_slowness_timeouts_and_cancellation() {
        let mut p = Policy::default();
        p.success_codes.insert(3);
        p.ignore_codes.insert(4);
        p.slow = Some(100);
        assert_eq!(
            p.classify(End::Exited(0), 100, false).outcome,
            Outcome::Success
        );
        assert_eq!(
            p.classify(End::Exited(3), 5, false).outcome,
            Outcome::Success
        );
        let slow = p.classify(End::Exited(0), 101, false);
        assert_eq!((slow.outcome, slow.slow), (Outcome::Failure, true));
        assert_eq!(
            p.classify(End::Exited(4), 500, false).outcome,
            Outcome::Ignored
        );
        assert_eq!(
            p.classify(End::Exited(1), 5, false).outcome,
            Outcome::Failure
        );
        assert_eq!(
            p.classify(End::Signaled(9), 5, false).outcome,
            Outcome::Failure
        );
        assert_eq!(
            p.classify(End::Signaled(15), 5, true).outcome,
            Outcome::Cancelled
        );
        p.ignore_codes.insert(141);
        assert_eq!(
            p.classify(End::Signaled(13), 5, false).outcome,
            Outcome::Ignored,
            "SIGPIPE is 141"
        );
        p.success_codes.insert(143);
        assert_eq!(
            p.classify(End::Signaled(15), 5, false).outcome,
            Outcome::Success
        );
        assert!(p.classify(End::TimedOut, 5, true).timed_out);
    }

    #[test]
    fn code_set_lists_ranges() {
        let mut s = CodeSet::default();
        for c in [0, 2, 3, 4, 5, 255] {
            s.insert(c);
        }
        assert_eq!(s.to_list(), "0,2-5,255");
        assert!(!s.contains(-1) && !s.contains(256) && !s.contains(1));
    }
}
