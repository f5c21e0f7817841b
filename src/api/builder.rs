//! [`Builder`]: a breaker's name, policy and state directory, checked once
//! as `cbreak run` checks its options.
//!
//! Owns the translation from builder calls to a typed [`Spec`]; the checks
//! are `spec`'s, the same the command line's options go through, worded
//! with the builder's methods instead of the options.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::breaker::Millis;
use crate::record::DEFAULT_LOCK_WAIT;
use crate::spec::{self, Field, OutOfRange, Spec};
use crate::window::MAX_COUNT_WINDOW;

use super::{Breaker, Error, Shared, WarningSink};

/// How the open period grows while probes keep failing: the builder's
/// [`Builder::backoff`], `cbreak run --backoff`.
///
/// ```
/// use cbreak::Backoff;
/// assert_ne!(Backoff::Constant, Backoff::Exponential);
/// assert_eq!(Backoff::default(), Backoff::Constant);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backoff {
    /// Every open period is [`Builder::recovery`] long (the default).
    #[default]
    Constant,
    /// Each failed probe multiplies the open period by
    /// [`Builder::backoff_factor`], up to [`Builder::max_recovery`]; it
    /// returns to [`Builder::recovery`] when the breaker closes.
    Exponential,
}

/// Makes a [`Breaker`]: [`Breaker::builder`], then the policy, then
/// [`Builder::build`].
///
/// Every policy of `cbreak run` is here, with its defaults: 5 consecutive
/// failures open the breaker for 30 s, then one probe. Nothing is checked
/// until [`Builder::build`], which checks everything at once, as `cbreak
/// run` checks its options, and says what is wrong in one line.
///
/// Options of `cbreak run` that are about a child process (`--timeout`,
/// `--kill-after`, `--signal`, `--success-codes`, `--ignore-codes`) have no
/// counterpart: a closure cannot be killed, and its outcome is what the
/// program says it is ([`Breaker::record_success`],
/// [`Breaker::record_failure`], [`Breaker::record_ignored`]).
///
/// ```
/// # fn main() -> Result<(), cbreak::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
///
/// let breaker = cbreak::Breaker::builder("prices")
///     .threshold(0)                        // no consecutive rule...
///     .failure_rate(50.0)                  // ...but 50% of the last 20 calls
///     .window_calls(20)
///     .min_calls(10)
///     .recovery(Duration::from_secs(10))
///     .backoff(cbreak::Backoff::Exponential)
///     .max_recovery(Duration::from_secs(600))
///     .jitter(10.0)
///     .state_dir(dir.path())
///     .build()?;
/// assert!(!breaker.is_open());
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until .build()"]
pub struct Builder {
    name: String,
    threshold: u32,
    recovery: Duration,
    failure_rate: Option<f64>,
    window: Option<WindowSize>,
    min_calls: u32,
    slow: Option<Duration>,
    backoff: Backoff,
    backoff_factor: f64,
    max_recovery: Option<Duration>,
    jitter: f64,
    probes: u32,
    state_dir: Option<PathBuf>,
    lock_timeout: Duration,
    allow_network_fs: bool,
    fail_open: bool,
    on_warning: Option<WarningSink>,
}

#[derive(Clone, Copy)]
enum WindowSize {
    Calls(u32),
    Span(Duration),
}

impl Builder {
    pub(super) fn new(name: &str) -> Builder {
        Builder {
            name: name.to_string(),
            threshold: 5,
            recovery: Duration::from_secs(30),
            failure_rate: None,
            window: None,
            min_calls: 10,
            slow: None,
            backoff: Backoff::Constant,
            backoff_factor: 2.0,
            max_recovery: None,
            jitter: 0.0,
            probes: 1,
            state_dir: None,
            lock_timeout: DEFAULT_LOCK_WAIT,
            allow_network_fs: false,
            fail_open: true,
            on_warning: None,
        }
    }

    /// Consecutive failures that open the breaker (default 5; `--threshold`).
    /// 0 turns the rule off, and then a [`Builder::failure_rate`] is needed.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let b = cbreak::Breaker::builder("api").threshold(1).state_dir(dir.path()).build().unwrap();
    /// let permit = b.should_allow_request().unwrap();
    /// b.record_failure(permit);
    /// assert!(b.is_open());
    /// ```
    pub fn threshold(mut self, failures: u32) -> Builder {
        self.threshold = failures;
        self
    }

    /// How long the breaker stays open before a probe (default 30 s;
    /// `--recovery`). At least 1 ms; cbreak keeps whole milliseconds.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let b = cbreak::Breaker::builder("api")
    ///     .recovery(Duration::from_secs(5))
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(b.recovery_timeout_ms(), 5_000);
    /// ```
    pub fn recovery(mut self, period: Duration) -> Builder {
        self.recovery = period;
        self
    }

    /// Opens the breaker when the failure rate over the window is at or
    /// above `percent` (above 0, at most 100), once the window holds
    /// [`Builder::min_calls`] outcomes (`--failure-rate`). Without a window,
    /// the last 100 calls.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let b = cbreak::Breaker::builder("api")
    ///     .threshold(0)
    ///     .failure_rate(50.0)
    ///     .min_calls(2)
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap();
    /// b.record_success(b.should_allow_request().unwrap());
    /// b.record_failure(b.should_allow_request().unwrap());
    /// assert!(b.is_open(), "1 failure in 2 calls is 50%");
    /// ```
    pub fn failure_rate(mut self, percent: f64) -> Builder {
        self.failure_rate = Some(percent);
        self
    }

    /// The failure-rate window: the last `calls` outcomes, 1 to 1024
    /// (`--window N`; default 100).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let err = cbreak::Breaker::builder("api")
    ///     .failure_rate(50.0)
    ///     .window_calls(5000)
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("out of range"), "{err}");
    /// ```
    pub fn window_calls(mut self, calls: u32) -> Builder {
        self.window = Some(WindowSize::Calls(calls));
        self
    }

    /// The failure-rate window: the outcomes of the last `span`, at least
    /// 20 ms (`--window DURATION`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let b = cbreak::Breaker::builder("api")
    ///     .failure_rate(25.0)
    ///     .window_duration(Duration::from_secs(60))
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(b.stats().unwrap().calls_in_window, 0);
    /// ```
    pub fn window_duration(mut self, span: Duration) -> Builder {
        self.window = Some(WindowSize::Span(span));
        self
    }

    /// Outcomes the window must hold before the rate is judged (default
    /// 10; `--min-calls`); at most a count window's size.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let err = cbreak::Breaker::builder("api")
    ///     .failure_rate(50.0)
    ///     .window_calls(5)
    ///     .min_calls(10)
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("min_calls 10 is larger than window_calls 5"), "{err}");
    /// ```
    pub fn min_calls(mut self, calls: u32) -> Builder {
        self.min_calls = calls;
        self
    }

    /// A success that took longer than `limit` counts as a failure (`--slow`),
    /// timed from [`Breaker::should_allow_request`] to the outcome.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let b = cbreak::Breaker::builder("api")
    ///     .slow(Duration::from_millis(1))
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap();
    /// let permit = b.should_allow_request().unwrap();
    /// std::thread::sleep(Duration::from_millis(20));
    /// b.record_success(permit);
    /// let stats = b.stats().unwrap();
    /// assert_eq!((stats.failures, stats.slow), (1, 1));
    /// ```
    pub fn slow(mut self, limit: Duration) -> Builder {
        self.slow = Some(limit);
        self
    }

    /// How the open period grows while probes fail (default constant;
    /// `--backoff`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let b = cbreak::Breaker::builder("api")
    ///     .backoff(cbreak::Backoff::Exponential)
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(b.recovery_timeout_ms(), 30_000);
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Builder {
        self.backoff = backoff;
        self
    }

    /// The exponential backoff's multiplier: above 1, at most 100, in steps
    /// of 0.001 (default 2; `--backoff-factor`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let err = cbreak::Breaker::builder("api")
    ///     .backoff(cbreak::Backoff::Exponential)
    ///     .backoff_factor(1.0)
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("backoff_factor: "), "{err}");
    /// ```
    pub fn backoff_factor(mut self, factor: f64) -> Builder {
        self.backoff_factor = factor;
        self
    }

    /// The longest open period under exponential backoff (default 1 h, or
    /// the recovery if that is longer; `--max-recovery`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let err = cbreak::Breaker::builder("api")
    ///     .recovery(Duration::from_secs(60))
    ///     .backoff(cbreak::Backoff::Exponential)
    ///     .max_recovery(Duration::from_secs(10))
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("max_recovery 10s is shorter than recovery 1m"), "{err}");
    /// ```
    pub fn max_recovery(mut self, period: Duration) -> Builder {
        self.max_recovery = Some(period);
        self
    }

    /// Spreads each open period randomly by ±`percent`, 0 to 99 in whole
    /// percent (default 0; `--jitter`), so that many callers do not probe in
    /// lockstep.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// assert!(cbreak::Breaker::builder("api").jitter(12.5).state_dir(dir.path()).build().is_err());
    /// assert!(cbreak::Breaker::builder("api").jitter(20.0).state_dir(dir.path()).build().is_ok());
    /// ```
    pub fn jitter(mut self, percent: f64) -> Builder {
        self.jitter = percent;
        self
    }

    /// Successful probes in a row that close the breaker (default 1;
    /// `--probes`); one probe at a time.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// assert!(cbreak::Breaker::builder("api").probes(0).state_dir(dir.path()).build().is_err());
    /// ```
    pub fn probes(mut self, probes: u32) -> Builder {
        self.probes = probes;
        self
    }

    /// Where the breaker's record lives (`--state-dir`). Without it,
    /// `$CBREAK_STATE_DIR`, else `$XDG_STATE_HOME/cbreak`, else
    /// `$HOME/.local/state/cbreak`: the directory the `cbreak` command
    /// uses, so that a program and its cron jobs share the breaker.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let b = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// assert!(dir.path().join("api").exists());
    /// ```
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.state_dir = Some(dir.into());
        self
    }

    /// How long to wait for another process's lock on the record (default
    /// 5 s; `--lock-timeout`) before the state counts as unavailable.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let b = cbreak::Breaker::builder("api")
    ///     .lock_timeout(Duration::from_millis(200))
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap();
    /// # drop(b);
    /// ```
    pub fn lock_timeout(mut self, wait: Duration) -> Builder {
        self.lock_timeout = wait;
        self
    }

    /// Allows a state directory on a network file system (`--allow-network-fs`):
    /// only safe when one machine uses it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let b = cbreak::Breaker::builder("api")
    ///     .allow_network_fs(true)
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap();
    /// # drop(b);
    /// ```
    pub fn allow_network_fs(mut self, allow: bool) -> Builder {
        self.allow_network_fs = allow;
        self
    }

    /// What [`Breaker::should_allow_request`] does when the state cannot be
    /// used after [`Builder::build`] (a full disk, a lock held too long): by
    /// default it allows the call, unguarded, as `cbreak run` does
    /// (`--on-state-error run`); with `false` it rejects it (`--on-state-error
    /// skip`), and the [`Rejected`](crate::Rejected) says why.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let b = cbreak::Breaker::builder("api")
    ///     .fail_open(false)
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap();
    /// # drop(b);
    /// ```
    pub fn fail_open(mut self, allow: bool) -> Builder {
        self.fail_open = allow;
        self
    }

    /// Where the breaker's warnings go: a state that could not be used (the
    /// call was allowed or rejected anyway), an outcome that could not be
    /// recorded, a corrupt record kept aside. Each is one line. By default
    /// they are written to stderr as `cbreak: warning: ...`, as the `cbreak`
    /// command writes them.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let b = cbreak::Breaker::builder("api")
    ///     .on_warning(|line| eprintln!("myapp: {line}"))
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap();
    /// # drop(b);
    /// ```
    pub fn on_warning(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Builder {
        self.on_warning = Some(Arc::new(sink));
        self
    }

    /// Checks the name and the policy, prepares the state directory
    /// (creating it, mode 0700, if missing) and opens the breaker's record
    /// (creating a closed breaker if there is none). An existing breaker
    /// keeps its state; this policy applies from its next call, as a new
    /// `cbreak run` policy does.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let err = cbreak::Breaker::builder("no/slashes").state_dir(dir.path()).build().unwrap_err();
    /// assert!(err.to_string().starts_with("invalid breaker name 'no/slashes'"), "{err}");
    /// ```
    pub fn build(self) -> Result<Breaker, Error> {
        crate::store::validate_name(&self.name).map_err(Error::config)?;
        let policy = self.policy().map_err(Error::config)?;
        if self
            .state_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(Error::config(
                "state_dir is empty: give a directory, or leave it out for the default".into(),
            ));
        }
        let explicit = self.state_dir.clone().or_else(|| {
            std::env::var_os("CBREAK_STATE_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        });
        let dir = crate::store::state_dir(explicit).map_err(|e| Error::config(e.to_string()))?;
        let store = crate::store::StateDir::new(dir, self.allow_network_fs)
            .with_lock_wait(self.lock_timeout)
            .mapping();
        let sink = self
            .on_warning
            .unwrap_or_else(|| Arc::new(|line: &str| crate::output::warn(line)) as WarningSink);
        let shared = Shared::open(self.name, policy, store, self.fail_open, sink)?;
        Ok(Breaker {
            shared: Arc::new(shared),
        })
    }

    /// The machine's policy: this builder's values, as a [`Spec`], checked
    /// as the command line's are; messages name the builder's methods.
    fn policy(&self) -> Result<crate::breaker::Policy, String> {
        let ms = |d: Duration| -> Millis { u64::try_from(d.as_millis()).unwrap_or(u64::MAX) };
        let bounded = |method: &str, d: Duration| {
            spec::duration(ms(d)).map_err(|_| {
                format!(
                    "{method}: too long: at most {} days (100 years)",
                    spec::MAX_DURATION / 86_400_000
                )
            })
        };
        let recovery = bounded("recovery", self.recovery)?;
        if recovery == 0 {
            return Err("recovery: must be at least 1ms".into());
        }
        let max_recovery = self
            .max_recovery
            .map(|d| bounded("max_recovery", d))
            .transpose()?;
        let slow = self.slow.map(|d| bounded("slow", d)).transpose()?;
        let out_of_percent = |method: &str, p: f64| {
            format!("{method}: {p} is out of range: a percentage is from 0 to 100")
        };
        let failure_rate = self
            .failure_rate
            .map(|p| spec::percent(p).map_err(|_| out_of_percent("failure_rate", p)))
            .transpose()?;
        let window = match self.window {
            None => None,
            Some(WindowSize::Calls(n)) => Some(spec::window_calls(n).map_err(|_| {
                format!(
                    "window_calls: a window of {n} calls is out of range: use 1 to {MAX_COUNT_WINDOW}, or window_duration"
                )
            })?),
            Some(WindowSize::Span(d)) => Some(spec::window_span(ms(d)).map_err(|e| match e {
                OutOfRange::TooLong => format!(
                    "window_duration: too long: at most {} days (100 years)",
                    spec::MAX_DURATION / 86_400_000
                ),
                _ => format!(
                    "window_duration: a window of {d:?} is too short: use at least {}ms",
                    spec::MIN_TIME_WINDOW
                ),
            })?),
        };
        let jitter =
            spec::percent(self.jitter).map_err(|_| out_of_percent("jitter", self.jitter))?;
        let backoff_factor_milli = spec::factor(self.backoff_factor).map_err(|_| {
            format!(
                "backoff_factor: {} is out of range: the factor must be above 1 and at most 100, in steps of 0.001",
                self.backoff_factor
            )
        })?;
        let spec = Spec {
            threshold: self.threshold,
            recovery,
            failure_rate,
            window,
            min_calls: self.min_calls,
            slow,
            backoff: match self.backoff {
                Backoff::Constant => crate::breaker::Backoff::Constant,
                Backoff::Exponential => crate::breaker::Backoff::Exponential,
            },
            backoff_factor_milli,
            max_recovery,
            jitter,
            probes: self.probes,
            // A closure's outcome is what the program says it is: no
            // timeout, no exit codes.
            ..Spec::default()
        };
        // The window is named by the method that set it.
        let window = match self.window {
            Some(WindowSize::Span(_)) => "window_duration",
            _ => "window_calls",
        };
        spec.policy().map_err(|invalid| {
            invalid.message(|field| match field {
                Field::Window => window,
                field => method(field),
            })
        })
    }
}

/// A policy's field as the builder names it: its method.
fn method(field: Field) -> &'static str {
    match field {
        Field::Threshold => "threshold",
        Field::Recovery => "recovery",
        Field::FailureRate => "failure_rate",
        Field::Window => "window_calls",
        Field::MinCalls => "min_calls",
        Field::Slow => "slow",
        Field::Timeout => "timeout",
        Field::SuccessCodes => "success_codes",
        Field::IgnoreCodes => "ignore_codes",
        Field::MaxRecovery => "max_recovery",
        Field::Jitter => "jitter",
        Field::Probes => "probes",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_builders_methods_not_the_command_lines_options() {
        let clash = Builder::new("x")
            .failure_rate(50.0)
            .window_calls(10)
            .min_calls(20)
            .policy()
            .unwrap_err();
        assert_eq!(
            clash,
            "min_calls 20 is larger than window_calls 10: the rate could never be judged"
        );
        let no_rule = Builder::new("x").threshold(0).policy().unwrap_err();
        assert!(
            !no_rule.contains("--") && !no_rule.contains("cbreak "),
            "{no_rule}"
        );
        let jitter = Builder::new("x").jitter(12.5).policy().unwrap_err();
        assert_eq!(
            jitter,
            "jitter must be a whole percentage from 0 to 99 (100 could leave an open period nothing)"
        );
    }

    #[test]
    fn durations_keep_the_commands_bounds() {
        let too_long = Builder::new("x").recovery(Duration::MAX).policy();
        assert!(too_long.unwrap_err().starts_with("recovery: too long"));
        let zero = Builder::new("x").recovery(Duration::ZERO).policy();
        assert!(zero.is_err());
        assert!(Builder::new("x").state_dir("").build().is_err());
    }

    #[test]
    fn defaults_are_the_commands() {
        let p = Builder::new("x").policy().unwrap();
        assert_eq!(p, crate::breaker::Policy::default());
    }
}
