//! The breaker as a Rust library: [`Breaker`], in the vocabulary of the
//! in-process breaker cbreak began from (`should_allow_request`,
//! `record_success`, `record_failure`, `execute`), over the same record the
//! `cbreak` command uses.
//!
//! Owns the public types and what they promise (a [`Permit`] carries its
//! generation and probe slot; a dropped one gives the slot back; clones of
//! a [`Breaker`] share one open record). The decisions are `breaker`'s, the
//! record and its locks `store`'s and `record`'s; this module only orders
//! them as `app` does for `cbreak run`: admit under the lock, unlock, let
//! the caller work, record under the lock.

mod builder;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::breaker::{Admission, BreakerState, Call, End, Millis, Outcome, Policy, Ticket};
use crate::engine::Engine;
use crate::host::now_ms;
use crate::store::{StateDir, Store, StoreError};

pub use builder::{Backoff, Builder};

/// Where warnings go (see [`Builder::on_warning`]).
type WarningSink = Arc<dyn Fn(&str) + Send + Sync>;

/// A circuit breaker shared by every thread that holds a clone of it and
/// every process on the machine that uses the same name and state
/// directory, the `cbreak` command included.
///
/// Cheap to clone: clones share one open record (one file, one map, one
/// probe lock). Every decision and every outcome is a read-modify-write of
/// the record under its exclusive lock, so counts are exact across threads
/// and processes, and exactly one caller at a time holds the probe.
///
/// ```
/// # fn call() -> Result<u32, std::io::Error> { Ok(7) }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// use std::time::Duration;
///
/// let breaker = cbreak::Breaker::builder("payments-api")
///     .threshold(3)
///     .recovery(Duration::from_secs(30))
///     .state_dir(dir.path())
///     .build()?;
/// match breaker.should_allow_request() {
///     Ok(permit) => match call() {
///         Ok(v) => {
///             breaker.record_success(permit);
///             assert_eq!(v, 7);
///         }
///         Err(_) => breaker.record_failure(permit),
///     },
///     Err(rejected) => eprintln!("{rejected}"), // says when the next probe is due
/// }
/// let v = breaker.execute(call)?; // the same in one call
/// assert_eq!(v, 7);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Breaker {
    shared: Arc<Shared>,
}

/// What the clones of a breaker (and its permits) share.
struct Shared {
    name: String,
    policy: Policy,
    fail_open: bool,
    warn: WarningSink,
    /// The store and the breaker's open record are not `Sync` (the record
    /// keeps its lock state and probe lock in `Cell`s): one caller at a
    /// time.
    inner: Mutex<Engine<StateDir>>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn open(
        name: String,
        policy: Policy,
        store: StateDir,
        fail_open: bool,
        warn: WarningSink,
    ) -> Result<Shared, Error> {
        let core = Engine::new(store, &name, policy);
        let shared = Shared {
            name,
            policy,
            fail_open,
            warn,
            inner: Mutex::new(core),
        };
        // Opens (or creates) and checks the record now, so that a state
        // directory that cannot be used is found by `build`.
        shared.with(Engine::prepare).map_err(Error::state)?;
        Ok(shared)
    }

    fn lock(&self) -> MutexGuard<'_, Engine<StateDir>> {
        // A panic while the mutex was held left nothing half-done that the
        // record's own protocol does not cover (a store is all or nothing).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `f` on the breaker's core, alone; then what the store did is told.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Engine<StateDir>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut core = self.lock();
        let result = f(&mut core);
        let events = core.take_events();
        drop(core);
        for event in events {
            (self.warn)(&event.to_string());
        }
        result
    }

    fn read(&self) -> Result<BreakerState, StoreError> {
        self.lock().store().read(&self.name)
    }

    /// Records the outcome of a permit's call.
    fn record(&self, ticket: Ticket, call: Call) {
        if let Err(e) = self.with(|core| core.record(ticket, call)) {
            (self.warn)(&format!(
                "breaker '{}': the outcome may not have been recorded: {e}",
                self.name
            ));
        }
    }
}

impl Breaker {
    /// Starts a breaker named `name`: 1 to 64 characters from `A-Z a-z 0-9
    /// . _ -`, not starting with `.` (the name is its record's file name,
    /// and `cbreak status NAME` shows it).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// assert_eq!(breaker.name(), "api");
    /// ```
    pub fn builder(name: &str) -> Builder {
        Builder::new(name)
    }

    /// The breaker's name.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// assert_eq!(breaker.name(), "api");
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Asks to make a call. `Ok` with a [`Permit`] when the breaker is
    /// closed, or when it is open, its recovery has passed and this caller
    /// gets the one probe; `Err` with what was rejected and when the next
    /// probe is due otherwise (the rejection is counted in
    /// [`Stats::rejected`]).
    ///
    /// Hand the permit back with [`Breaker::record_success`] or
    /// [`Breaker::record_failure`]; a permit dropped without an outcome
    /// counts as cancelled and gives back its probe slot.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// let permit = breaker.should_allow_request().expect("a new breaker is closed");
    /// assert!(!permit.is_probe());
    /// breaker.record_success(permit);
    /// breaker.trip().unwrap();
    /// let rejected = breaker.should_allow_request().unwrap_err();
    /// assert_eq!(rejected.state(), Some(cbreak::State::ForcedOpen));
    /// ```
    pub fn should_allow_request(&self) -> Result<Permit, Rejected> {
        let shared = &self.shared;
        let decided = shared.with(|engine| {
            engine.admit(|admission, _, s| {
                // What a rejection says, read while the state is at hand
                // (not a copy of the whole state on every call).
                let open = match admission {
                    Admission::Reject(_) => Some((
                        s.next_probe_at,
                        s.history
                            .oldest_first()
                            .last()
                            .filter(|t| t.to != crate::breaker::State::Closed)
                            .map(|t| crate::output::reason(t.reason)),
                    )),
                    Admission::Run(_) => None,
                };
                (admission, open)
            })
        });
        let started = Instant::now();
        match decided {
            Ok((Admission::Run(ticket), _)) => Ok(Permit {
                shared: Arc::clone(shared),
                ticket: Some(ticket),
                started,
            }),
            Ok((Admission::Reject(r), open)) => {
                let (next_probe_at, reason) = open.unwrap_or_default();
                Err(Rejected {
                    name: shared.name.clone(),
                    at: now_ms(),
                    why: match r.state {
                        crate::breaker::State::ForcedOpen => Why::ForcedOpen,
                        crate::breaker::State::HalfOpen => Why::ProbeInFlight,
                        _ => Why::Open {
                            next_probe_at: r.next_probe_at.unwrap_or(next_probe_at),
                            reason,
                        },
                    },
                })
            }
            Err(e) if shared.fail_open => {
                (shared.warn)(&format!(
                    "breaker '{}' unavailable: {e}; allowing the call anyway",
                    shared.name
                ));
                Ok(Permit {
                    shared: Arc::clone(shared),
                    ticket: None,
                    started,
                })
            }
            Err(e) => {
                (shared.warn)(&format!(
                    "breaker '{}' unavailable: {e}; rejecting the call",
                    shared.name
                ));
                Err(Rejected {
                    name: shared.name.clone(),
                    at: now_ms(),
                    why: Why::Unavailable(e.to_string()),
                })
            }
        }
    }

    /// The permit's call succeeded. Closes a half-open breaker once
    /// [`Builder::probes`] probes in a row have succeeded; a success slower
    /// than [`Builder::slow`] counts as a failure. An outcome from an
    /// earlier generation (the breaker opened, was reset or tripped since
    /// the permit was given) is counted but changes no state.
    ///
    /// The outcome goes to the breaker that gave the permit. An outcome
    /// that cannot be recorded (a full disk) is a warning
    /// ([`Builder::on_warning`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// breaker.record_success(breaker.should_allow_request().unwrap());
    /// assert_eq!(breaker.stats().unwrap().successes, 1);
    /// ```
    pub fn record_success(&self, permit: Permit) {
        permit.finish(Outcome::Success);
    }

    /// The permit's call failed. Opens a closed breaker at the threshold
    /// (or failure rate); a failed probe opens a half-open one again (for
    /// longer, under exponential backoff).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").threshold(2).state_dir(dir.path()).build().unwrap();
    /// breaker.record_failure(breaker.should_allow_request().unwrap());
    /// assert!(!breaker.is_open());
    /// breaker.record_failure(breaker.should_allow_request().unwrap());
    /// assert!(breaker.is_open());
    /// ```
    pub fn record_failure(&self, permit: Permit) {
        permit.finish(Outcome::Failure);
    }

    /// The permit's call ended in a way that says nothing about the service
    /// (`cbreak run --ignore-codes`): counted in [`Stats::calls`] and
    /// [`Stats::ignored`] only; a probe's slot is given back.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// breaker.record_ignored(breaker.should_allow_request().unwrap());
    /// let stats = breaker.stats().unwrap();
    /// assert_eq!((stats.calls, stats.ignored, stats.failures), (1, 1, 0));
    /// ```
    pub fn record_ignored(&self, permit: Permit) {
        permit.finish(Outcome::Ignored);
    }

    /// Runs `call` if the breaker allows it, and records its outcome: `Ok`
    /// is a success, `Err` a failure, a panic a failure too (then the panic
    /// goes on). While the breaker rejects, `call` is not called and the
    /// [`Rejected`] comes back as [`ExecuteError::Rejected`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").threshold(1).state_dir(dir.path()).build().unwrap();
    /// let failed = breaker.execute(|| Err::<(), _>(std::io::Error::other("503")));
    /// assert!(matches!(failed, Err(cbreak::ExecuteError::Failed(_))));
    /// let skipped = breaker.execute(|| -> Result<(), std::io::Error> { unreachable!("open") });
    /// assert!(matches!(skipped, Err(cbreak::ExecuteError::Rejected(_))));
    /// ```
    pub fn execute<T, E>(&self, call: impl FnOnce() -> Result<T, E>) -> Result<T, ExecuteError<E>> {
        let permit = self
            .should_allow_request()
            .map_err(ExecuteError::Rejected)?;
        // A panic in `call` drops the permit while unwinding: a failure.
        match call() {
            Ok(v) => {
                self.record_success(permit);
                Ok(v)
            }
            Err(e) => {
                self.record_failure(permit);
                Err(ExecuteError::Failed(e))
            }
        }
    }

    /// Whether the breaker is open (or forced open by [`Breaker::trip`]):
    /// calls are rejected, except one probe once the recovery has passed.
    /// A state that cannot be read is not open.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// assert!(!breaker.is_open());
    /// breaker.trip().unwrap();
    /// assert!(breaker.is_open());
    /// ```
    pub fn is_open(&self) -> bool {
        self.state()
            .is_some_and(|s| matches!(s, State::Open | State::ForcedOpen))
    }

    /// Whether the breaker is half-open: a probe is running (or was given
    /// and has not reported yet).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let breaker = cbreak::Breaker::builder("api")
    ///     .threshold(1)
    ///     .recovery(Duration::from_millis(1))
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap();
    /// breaker.record_failure(breaker.should_allow_request().unwrap());
    /// std::thread::sleep(Duration::from_millis(20));
    /// let probe = breaker.should_allow_request().unwrap();
    /// assert!(probe.is_probe() && breaker.is_half_open());
    /// breaker.record_success(probe);
    /// assert!(!breaker.is_half_open() && !breaker.is_open());
    /// ```
    pub fn is_half_open(&self) -> bool {
        self.state() == Some(State::HalfOpen)
    }

    fn state(&self) -> Option<State> {
        self.shared.read().ok().map(|s| State::from(s.state))
    }

    /// Closes the breaker and forgets its failures (`cbreak reset`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// breaker.trip().unwrap();
    /// breaker.reset().unwrap();
    /// assert!(breaker.should_allow_request().is_ok());
    /// ```
    pub fn reset(&self) -> Result<(), Error> {
        self.shared
            .with(|core| core.reset())
            .map(drop)
            .map_err(Error::state)
    }

    /// Forces the breaker open until [`Breaker::reset`] (`cbreak trip`):
    /// every call is rejected, no probe runs.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// breaker.trip().unwrap();
    /// assert_eq!(breaker.stats().unwrap().state, cbreak::State::ForcedOpen);
    /// ```
    pub fn trip(&self) -> Result<(), Error> {
        self.shared
            .with(|core| core.trip(None))
            .map(drop)
            .map_err(Error::state)
    }

    /// Opens the breaker for `period`, then probes as usual (`cbreak trip
    /// --for`). At least 1 ms.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// breaker.trip_for(Duration::from_secs(60)).unwrap();
    /// let rejected = breaker.should_allow_request().unwrap_err();
    /// assert!(rejected.retry_after().unwrap() > Duration::from_secs(50));
    /// ```
    pub fn trip_for(&self, period: Duration) -> Result<(), Error> {
        let ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return Err(Error::config(
                "trip_for needs at least 1ms (0 would mean nothing useful)".into(),
            ));
        }
        self.shared
            .with(|core| core.trip(Some(ms)))
            .map(drop)
            .map_err(Error::state)
    }

    /// The current open period in milliseconds: [`Builder::recovery`], or
    /// longer after failed probes under exponential backoff. When the state
    /// cannot be read, the configured recovery.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let breaker = cbreak::Breaker::builder("api")
    ///     .recovery(Duration::from_secs(90))
    ///     .state_dir(dir.path())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(breaker.recovery_timeout_ms(), 90_000);
    /// ```
    pub fn recovery_timeout_ms(&self) -> u64 {
        match self.shared.read() {
            // A breaker whose last call used another policy: what this
            // breaker's next call would adopt.
            Ok(s) if s.policy.recovery == self.shared.policy.recovery => s.recovery,
            _ => self.shared.policy.recovery,
        }
    }

    /// The breaker's state and the counters `cbreak status` shows, read
    /// under a shared lock (changing nothing).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// breaker.record_success(breaker.should_allow_request().unwrap());
    /// breaker.record_failure(breaker.should_allow_request().unwrap());
    /// let stats = breaker.stats().unwrap();
    /// assert_eq!(stats.state, cbreak::State::Closed);
    /// assert_eq!((stats.calls, stats.successes, stats.failures), (2, 1, 1));
    /// assert_eq!(stats.consecutive_failures, 1);
    /// ```
    pub fn stats(&self) -> Result<Stats, Error> {
        let s = self.shared.read().map_err(Error::state)?;
        Ok(Stats::from_state(&s, now_ms()))
    }
}

/// Permission to make one call, from [`Breaker::should_allow_request`].
///
/// It carries the generation it was given in and whether it holds the probe
/// slot: an outcome from a permit of an earlier generation (the breaker
/// opened, or was tripped or reset, while the call ran) is counted but
/// cannot close or open the breaker. Hand it back with
/// [`Breaker::record_success`], [`Breaker::record_failure`] or
/// [`Breaker::record_ignored`]. Dropped without an outcome, it counts as
/// cancelled and gives back its probe slot at once (dropped while its
/// thread panics, it counts as a failure).
///
/// A permit may be sent to another thread and outlive the [`Breaker`] it
/// came from. A probe's permit that is never handed back nor dropped
/// (`std::mem::forget`) holds the probe until its process exits (the
/// kernel then frees it at once) or for an hour (the probe's lease).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
/// drop(breaker.should_allow_request().unwrap());
/// assert_eq!(breaker.stats().unwrap().cancelled, 1);
/// ```
#[must_use = "a permit dropped without an outcome counts as cancelled"]
pub struct Permit {
    shared: Arc<Shared>,
    /// `None` when the state could not be used and the call was allowed
    /// anyway: nothing to record.
    ticket: Option<Ticket>,
    started: Instant,
}

impl Permit {
    /// Whether this permit holds the breaker's one probe slot: its outcome
    /// decides whether a half-open breaker closes or opens again.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// assert!(!breaker.should_allow_request().unwrap().is_probe());
    /// ```
    pub fn is_probe(&self) -> bool {
        self.ticket.is_some_and(|t| t.probe)
    }

    /// Whether the call is guarded: `false` when the breaker's state could
    /// not be used and the call was allowed anyway ([`Builder::fail_open`]);
    /// such a permit's outcome is not recorded.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// assert!(breaker.should_allow_request().unwrap().is_guarded());
    /// ```
    pub fn is_guarded(&self) -> bool {
        self.ticket.is_some()
    }

    /// The breaker's generation when this permit was given (each transition
    /// and each grant of the probe slot makes a new one).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// let a = breaker.should_allow_request().unwrap();
    /// let b = breaker.should_allow_request().unwrap();
    /// assert_eq!(a.generation(), b.generation(), "closed: one generation");
    /// ```
    pub fn generation(&self) -> u64 {
        self.ticket.map_or(0, |t| t.generation)
    }

    fn finish(mut self, outcome: Outcome) {
        self.settle(outcome);
    }

    fn settle(&mut self, outcome: Outcome) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let shared = &self.shared;
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let call = match outcome {
            // The policy's own rule for slow calls (success codes are {0}).
            Outcome::Success => shared.policy.classify(End::Exited(0), elapsed, false),
            outcome => Call {
                outcome,
                slow: false,
                timed_out: false,
            },
        };
        shared.record(ticket, call);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let outcome = if std::thread::panicking() {
            Outcome::Failure
        } else {
            Outcome::Cancelled
        };
        self.settle(outcome);
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.shared.name)
            .field("generation", &self.generation())
            .field("probe", &self.is_probe())
            .finish()
    }
}

/// The state of a breaker, as `cbreak status` names it.
///
/// ```
/// assert_eq!(cbreak::State::HalfOpen.to_string(), "half_open");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls run; failures are counted.
    Closed,
    /// Calls are rejected until the recovery has passed; then one probe.
    Open,
    /// One probe is running; other calls are rejected.
    HalfOpen,
    /// Tripped by hand: every call is rejected until reset.
    ForcedOpen,
}

impl From<crate::breaker::State> for State {
    fn from(s: crate::breaker::State) -> State {
        match s {
            crate::breaker::State::Closed => State::Closed,
            crate::breaker::State::Open => State::Open,
            crate::breaker::State::HalfOpen => State::HalfOpen,
            crate::breaker::State::ForcedOpen => State::ForcedOpen,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: crate::breaker::State = match self {
            State::Closed => crate::breaker::State::Closed,
            State::Open => crate::breaker::State::Open,
            State::HalfOpen => crate::breaker::State::HalfOpen,
            State::ForcedOpen => crate::breaker::State::ForcedOpen,
        };
        f.write_str(s.as_str())
    }
}

/// A call the breaker did not allow: which state rejected it and when the
/// next probe is due. Its message is the one `cbreak run` prints when it
/// skips a command.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// let breaker = cbreak::Breaker::builder("api").threshold(1).state_dir(dir.path()).build().unwrap();
/// breaker.record_failure(breaker.should_allow_request().unwrap());
/// let rejected = breaker.should_allow_request().unwrap_err();
/// assert_eq!(rejected.state(), Some(cbreak::State::Open));
/// assert!(rejected.retry_after().unwrap() <= Duration::from_secs(30));
/// assert!(rejected.to_string().starts_with("breaker 'api' is open (1 failure); next probe in "));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    name: String,
    /// When it was rejected (ms since the epoch).
    at: Millis,
    why: Why,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Why {
    Open {
        next_probe_at: Millis,
        reason: Option<String>,
    },
    ForcedOpen,
    ProbeInFlight,
    Unavailable(String),
}

impl Rejected {
    /// The state that rejected the call: [`State::Open`] (waiting for the
    /// recovery), [`State::HalfOpen`] (another caller holds the probe) or
    /// [`State::ForcedOpen`]; `None` when the state could not be used and
    /// [`Builder::fail_open`] is off.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// breaker.trip().unwrap();
    /// assert_eq!(breaker.should_allow_request().unwrap_err().state(), Some(cbreak::State::ForcedOpen));
    /// ```
    pub fn state(&self) -> Option<State> {
        match self.why {
            Why::Open { .. } => Some(State::Open),
            Why::ForcedOpen => Some(State::ForcedOpen),
            Why::ProbeInFlight => Some(State::HalfOpen),
            Why::Unavailable(_) => None,
        }
    }

    /// When the next probe may run: only for an open breaker (a forced-open
    /// one waits for a reset; a half-open one for its probe).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::{Duration, SystemTime};
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// breaker.trip_for(Duration::from_secs(60)).unwrap();
    /// let due = breaker.should_allow_request().unwrap_err().next_probe_at().unwrap();
    /// assert!(due > SystemTime::now());
    /// ```
    pub fn next_probe_at(&self) -> Option<SystemTime> {
        match self.why {
            Why::Open { next_probe_at, .. } => {
                Some(UNIX_EPOCH + Duration::from_millis(next_probe_at))
            }
            _ => None,
        }
    }

    /// How long after the rejection the next probe is due (see
    /// [`Rejected::next_probe_at`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// breaker.trip().unwrap();
    /// assert_eq!(breaker.should_allow_request().unwrap_err().retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self.why {
            Why::Open { next_probe_at, .. } => {
                Some(Duration::from_millis(next_probe_at.saturating_sub(self.at)))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        match &self.why {
            Why::Open {
                next_probe_at,
                reason,
            } => {
                let why = reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                write!(
                    f,
                    "breaker '{name}' is open{why}; next probe {}",
                    crate::output::relative(*next_probe_at, self.at)
                )
            }
            Why::ForcedOpen => write!(f, "breaker '{name}' is forced open; reset() closes it"),
            Why::ProbeInFlight => write!(
                f,
                "breaker '{name}' is half-open and its probe is still running"
            ),
            Why::Unavailable(e) => write!(f, "breaker '{name}' unavailable: {e}"),
        }
    }
}

impl std::error::Error for Rejected {}

/// Why [`Breaker::execute`] returned no value: the call was rejected (and
/// not made), or it was made and failed.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
/// let err = breaker.execute(|| Err::<(), _>(std::io::Error::other("503"))).unwrap_err();
/// assert_eq!(err.to_string(), "503");
/// assert_eq!(err.into_failed().unwrap().to_string(), "503");
/// ```
#[derive(Debug)]
pub enum ExecuteError<E> {
    /// The breaker did not allow the call; it was not made.
    Rejected(Rejected),
    /// The call was made and returned this error (recorded as a failure).
    Failed(E),
}

impl<E> ExecuteError<E> {
    /// The call's own error, if it was made.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
    /// breaker.trip().unwrap();
    /// let err = breaker.execute(|| Ok::<(), ()>(())).unwrap_err();
    /// assert!(err.into_failed().is_none());
    /// ```
    pub fn into_failed(self) -> Option<E> {
        match self {
            ExecuteError::Failed(e) => Some(e),
            ExecuteError::Rejected(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ExecuteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecuteError::Rejected(r) => r.fmt(f),
            ExecuteError::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ExecuteError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExecuteError::Rejected(_) => None,
            ExecuteError::Failed(e) => Some(e),
        }
    }
}

/// A breaker that could not be built or changed: an invalid name or policy,
/// or a state directory or record that cannot be used. One line, as the
/// `cbreak` command says it.
///
/// ```
/// let err = cbreak::Breaker::builder("api").threshold(0).build().unwrap_err();
/// assert!(err.to_string().starts_with("threshold 0 turns off the consecutive rule"), "{err}");
/// assert!(err.is_config());
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    Config(String),
    State(StoreError),
}

impl Error {
    fn config(msg: String) -> Error {
        Error {
            kind: ErrorKind::Config(msg),
        }
    }

    fn state(e: StoreError) -> Error {
        Error {
            kind: ErrorKind::State(e),
        }
    }

    /// Whether the builder's settings were at fault (a name or a policy),
    /// rather than the state directory or the record.
    ///
    /// ```
    /// let err = cbreak::Breaker::builder(".hidden").build().unwrap_err();
    /// assert!(err.is_config());
    /// ```
    pub fn is_config(&self) -> bool {
        matches!(self.kind, ErrorKind::Config(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Config(msg) => f.write_str(msg),
            ErrorKind::State(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

/// A breaker's state and counters, as `cbreak status` shows them.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let breaker = cbreak::Breaker::builder("api").state_dir(dir.path()).build().unwrap();
/// breaker.record_failure(breaker.should_allow_request().unwrap());
/// let stats = breaker.stats().unwrap();
/// assert_eq!(stats.calls, stats.successes + stats.failures + stats.ignored + stats.cancelled);
/// assert!(stats.last_failure_at.is_some() && stats.last_success_at.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The state.
    pub state: State,
    /// Disabled (`cbreak disable`): every call runs and is counted, the
    /// breaker never opens.
    pub disabled: bool,
    /// Failures in a row.
    pub consecutive_failures: u64,
    /// Calls with an outcome: `successes + failures + ignored + cancelled`.
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed (slow calls included).
    pub failures: u64,
    /// Calls recorded as neither ([`Breaker::record_ignored`]).
    pub ignored: u64,
    /// Permits dropped without an outcome.
    pub cancelled: u64,
    /// Calls rejected.
    pub rejected: u64,
    /// Failures that were slow successes.
    pub slow: u64,
    /// Failures that were timeouts (of `cbreak run --timeout`).
    pub timeouts: u64,
    /// Failed probes since the breaker last closed.
    pub reopens: u64,
    /// The current open period.
    pub recovery: Duration,
    /// When the breaker last opened, unless it is closed.
    pub opened_at: Option<SystemTime>,
    /// When the next probe may run, if it is open.
    pub next_probe_at: Option<SystemTime>,
    /// Whether a probe holds the slot.
    pub probe_in_flight: bool,
    /// Outcomes the failure-rate window holds now.
    pub calls_in_window: u64,
    /// Failures among them.
    pub failures_in_window: u64,
    /// When a call last succeeded.
    pub last_success_at: Option<SystemTime>,
    /// When a call last failed.
    pub last_failure_at: Option<SystemTime>,
}

impl Stats {
    fn from_state(s: &BreakerState, now: Millis) -> Stats {
        let at = |ms: Millis| UNIX_EPOCH + Duration::from_millis(ms);
        let since = |ms: Millis| (ms != 0).then(|| at(ms));
        let c = &s.counters;
        let tally = s.window_tally(now);
        Stats {
            state: s.state.into(),
            disabled: s.mode == crate::breaker::Mode::Disabled,
            consecutive_failures: s.consecutive_failures,
            calls: c.calls,
            successes: c.successes,
            failures: c.failures,
            ignored: c.ignored,
            cancelled: c.cancelled,
            rejected: c.rejected,
            slow: c.slow,
            timeouts: c.timeouts,
            reopens: s.reopens,
            recovery: Duration::from_millis(s.recovery),
            opened_at: s.opened().map(at),
            next_probe_at: s.next_probe().map(at),
            probe_in_flight: s.probe.is_some(),
            calls_in_window: tally.calls,
            failures_in_window: tally.failures,
            last_success_at: since(s.last_success_at),
            last_failure_at: since(s.last_failure_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn a_breaker_is_shared_by_threads_and_a_permit_may_move() {
        assert_send_sync_clone::<Breaker>();
        assert_send::<Permit>();
    }
}
