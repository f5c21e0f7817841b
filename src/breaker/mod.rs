//! The circuit breaker: states, policies and transitions, with no I/O.
//!
//! This module is the machine ([`BreakerState`] and its transitions);
//! `policy` holds how calls are judged, `state` the types the machine
//! works on, `history` the ring of its last transitions.
//!
//! Owns *when* a breaker admits, rejects, opens, probes and closes. Time,
//! process identity and randomness come in through the [`Host`] trait, so
//! every transition is testable without sleeping, without a file system and
//! without spawning anything. It does not own where the state is kept
//! (`record`, `store`) nor how a command is run (`exec`).
//!
//! # The machine
//!
//! - **closed**: every call runs. A failure adds to `consecutive_failures`;
//!   reaching the threshold (or a failure rate at or above `--failure-rate`
//!   over the window) opens the breaker. A success resets the count.
//! - **open**: calls are rejected until `next_probe_at`; the first caller after
//!   it moves the breaker to half-open and becomes the probe.
//! - **half_open**: one probe in flight at a time, in a slot that names its
//!   owner (pid, process start time, boot id) and a lease. Others are
//!   rejected while it runs; a slot whose owner is provably gone, or whose
//!   lease has passed, is taken over. `--probes N` successful probes in a row
//!   close the breaker; a failed probe reopens it (with backoff).
//! - **forced_open**: `trip` without a duration; rejects until `reset`.
//!
//! Every transition, and every grant of the probe slot, bumps `generation`;
//! an outcome changes the state only when the generation it was admitted in
//! is still current, so a slow call admitted before the breaker opened can
//! neither close it nor count against the next closed period (the lifetime
//! counters still count it). This is gobreaker's generation rule.
//!
//! # Clocks
//!
//! Times are wall-clock milliseconds since the Unix epoch, so that they
//! compare across processes and reboots. All differences saturate. A clock
//! stepped backwards while open is detected (`now < opened_at`) and the open
//! period is re-based at the first call that sees it: the breaker stays open
//! for at most one full open period after that call, never for the size of
//! the step. A clock stepped forwards simply ends the open period.

pub mod history;
mod policy;
mod state;

pub use policy::{Backoff, Call, CodeSet, End, Outcome, Policy, Window};
pub use state::{
    Admission, Counters, Host, Mode, Owner, ProbeSlot, Reason, Rejection, State, Ticket, Transition,
};

use crate::window::{CountWindow, Tally, TimeWindow};
use history::{History, Recent};

/// Milliseconds: a point in time since the Unix epoch, or a span.
pub type Millis = u64;

/// How long a probe may hold the slot without `--timeout`: the backstop for
/// an owner whose liveness cannot be judged (another pid namespace).
pub const DEFAULT_PROBE_LEASE: Millis = 60 * 60 * 1000;
/// Added to `--timeout` + `--kill-after` to form the lease of a timed probe.
const LEASE_GRACE: Millis = 10_000;

/// Everything a breaker keeps between calls. Stored whole in the record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BreakerState {
    pub state: State,
    pub mode: Mode,
    pub generation: u64,
    pub consecutive_failures: u64,
    pub opened_at: Millis,
    pub next_probe_at: Millis,
    /// The current open period (grows with backoff).
    pub recovery: Millis,
    /// Reopens since the breaker last closed.
    pub reopens: u64,
    pub probe: Option<ProbeSlot>,
    pub probe_successes: u64,
    pub counters: Counters,
    /// Transitions into each state, by `State::index`.
    pub transitions: [u64; 4],
    pub policy: Policy,
    pub count_window: CountWindow,
    pub time_window: TimeWindow,
    pub recent: Recent,
    pub history: History,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// When a call last ended in a success; 0 for never.
    pub last_success_at: Millis,
    /// When a call last ended in a failure (slow calls and timeouts
    /// included); 0 for never.
    pub last_failure_at: Millis,
}

impl BreakerState {
    /// A closed breaker. The first generation is derived from the creation
    /// time and pid, so that a ticket from a record that was deleted and made
    /// again never matches the new one.
    pub fn new(now: Millis, pid: u32, policy: Policy) -> Self {
        BreakerState {
            generation: now << 16 ^ u64::from(pid),
            recovery: policy.recovery,
            policy,
            created_at: now,
            updated_at: now,
            ..Default::default()
        }
    }

    /// When the next probe may run, if the breaker is open.
    pub fn next_probe(&self) -> Option<Millis> {
        (self.state == State::Open).then_some(self.next_probe_at)
    }

    /// When the breaker last opened, if it is not closed.
    pub fn opened(&self) -> Option<Millis> {
        (self.state != State::Closed).then_some(self.opened_at)
    }

    /// The failure-rate window's current tally.
    pub fn window_tally(&self, now: Millis) -> Tally {
        match self.policy.window {
            Window::None => Tally::default(),
            Window::Count(_) => self.count_window.tally(),
            Window::Time(span) => self.time_window.tally(span, now),
        }
    }

    /// Takes `policy` as the one last used. A change of window throws the
    /// old window away; a new base recovery applies now unless a backoff is
    /// under way.
    fn adopt(&mut self, policy: &Policy) {
        if self.policy.window != policy.window {
            self.count_window = CountWindow::default();
            self.time_window = TimeWindow::default();
        }
        if self.state == State::Closed || self.reopens == 0 {
            self.recovery = policy.recovery;
        }
        self.policy = *policy;
    }

    fn transition(&mut self, to: State, reason: Reason, now: Millis) -> Transition {
        let t = Transition {
            at: now,
            from: self.state,
            to,
            reason,
            consecutive_failures: self.consecutive_failures,
        };
        self.state = to;
        self.generation = self.generation.wrapping_add(1);
        self.transitions[to.index()] = self.transitions[to.index()].saturating_add(1);
        self.history.push(t);
        self.count_window = CountWindow::default();
        self.time_window = TimeWindow::default();
        self.probe = None;
        self.probe_successes = 0;
        match to {
            State::Closed => {
                self.consecutive_failures = 0;
                self.opened_at = 0;
                self.next_probe_at = 0;
                self.recovery = self.policy.recovery;
                self.reopens = 0;
            }
            State::Open | State::ForcedOpen => self.opened_at = now,
            State::HalfOpen => {}
        }
        t
    }

    /// Opens for the current recovery period, spread by the jitter.
    fn open(&mut self, reason: Reason, host: &mut impl Host) -> Transition {
        let now = host.now();
        let period = jittered(self.recovery, self.policy.jitter_percent, host.random());
        let t = self.transition(State::Open, reason, now);
        self.next_probe_at = now.saturating_add(period);
        t
    }

    /// Decides whether a call may run now. A rejection is counted; admission
    /// into half-open takes the probe slot.
    pub fn admit(
        &mut self,
        policy: &Policy,
        host: &mut impl Host,
    ) -> (Admission, Option<Transition>) {
        let now = host.now();
        self.adopt(policy);
        self.updated_at = now;
        let (admission, transition) = self.decide(host, true);
        if let Admission::Reject(_) = admission {
            self.counters.rejected = self.counters.rejected.saturating_add(1);
        }
        (admission, transition)
    }

    /// Would a call under `policy` be admitted now? Changes nothing
    /// (`cbreak check`).
    pub fn would_admit(&self, policy: &Policy, host: &mut impl Host) -> bool {
        let mut copy = *self;
        copy.adopt(policy);
        matches!(copy.decide(host, false).0, Admission::Run(_))
    }

    /// Could a call at `now` take the probe slot? (The store takes the
    /// kernel's probe lock first when it could; see `record`.)
    pub fn may_take_probe(&self, now: Millis) -> bool {
        self.mode == Mode::Normal
            && match self.state {
                State::HalfOpen => true,
                State::Open => now >= self.next_probe_at,
                State::Closed | State::ForcedOpen => false,
            }
    }

    fn decide(&mut self, host: &mut impl Host, take_slot: bool) -> (Admission, Option<Transition>) {
        let now = host.now();
        let run = Admission::Run(Ticket {
            generation: self.generation,
            probe: false,
        });
        if self.mode == Mode::Disabled {
            return (run, None);
        }
        match self.state {
            State::Closed => (run, None),
            State::ForcedOpen => (
                Admission::Reject(Rejection {
                    state: State::ForcedOpen,
                    next_probe_at: None,
                }),
                None,
            ),
            State::Open => {
                if now < self.opened_at {
                    // The clock went back: re-base the open period on now.
                    let period = self.next_probe_at.saturating_sub(self.opened_at);
                    self.opened_at = now;
                    self.next_probe_at = now.saturating_add(period);
                }
                if now < self.next_probe_at {
                    return (
                        Admission::Reject(Rejection {
                            state: State::Open,
                            next_probe_at: Some(self.next_probe_at),
                        }),
                        None,
                    );
                }
                let t = self.transition(State::HalfOpen, Reason::RecoveryElapsed, now);
                (self.take_probe_slot(host, take_slot), Some(t))
            }
            State::HalfOpen => {
                let lease = self.policy.probe_lease();
                let held = match self.probe {
                    Some(slot) => {
                        // A lease that reaches further than one lease from
                        // now was given before a clock step back: shorten it.
                        let lease_until = slot.lease_until.min(now.saturating_add(lease));
                        now < lease_until && host.is_alive(&slot.owner)
                    }
                    None => false,
                };
                if held {
                    (
                        Admission::Reject(Rejection {
                            state: State::HalfOpen,
                            next_probe_at: None,
                        }),
                        None,
                    )
                } else {
                    (self.take_probe_slot(host, take_slot), None)
                }
            }
        }
    }

    fn take_probe_slot(&mut self, host: &mut impl Host, take: bool) -> Admission {
        if take {
            self.generation = self.generation.wrapping_add(1);
            self.probe = Some(ProbeSlot {
                owner: host.me(),
                lease_until: host.now().saturating_add(self.policy.probe_lease()),
            });
        }
        Admission::Run(Ticket {
            generation: self.generation,
            probe: true,
        })
    }

    /// Applies the outcome of an admitted call. Lifetime counters always
    /// count it; the state changes only if the ticket's generation is
    /// current.
    pub fn record(
        &mut self,
        ticket: Ticket,
        call: Call,
        host: &mut impl Host,
    ) -> Option<Transition> {
        let now = host.now();
        self.updated_at = now;
        let c = &mut self.counters;
        // The counters stop together at the top, so that `calls` stays the
        // sum of the outcomes (2^64 calls never happen; the fuzz target
        // `record` got there by starting from a record that was already
        // there).
        if c.calls < u64::MAX {
            c.calls += 1;
            match call.outcome {
                Outcome::Success => c.successes += 1,
                Outcome::Failure => {
                    c.failures += 1;
                    c.slow += u64::from(call.slow);
                    c.timeouts += u64::from(call.timed_out);
                }
                Outcome::Ignored => c.ignored += 1,
                Outcome::Cancelled => c.cancelled += 1,
            }
        }
        let failed = match call.outcome {
            Outcome::Success => {
                self.last_success_at = now;
                false
            }
            Outcome::Failure => {
                self.last_failure_at = now;
                true
            }
            Outcome::Ignored | Outcome::Cancelled => {
                self.release(ticket);
                return None;
            }
        };
        self.recent.push(failed);
        if ticket.generation != self.generation {
            return None;
        }
        if self.mode == Mode::Disabled {
            self.consecutive_failures = if failed {
                self.consecutive_failures.saturating_add(1)
            } else {
                0
            };
            self.push_window(failed, now);
            return None;
        }
        match (self.state, ticket.probe) {
            (State::Closed, false) => {
                // Both rules are judged after every outcome, a success
                // included (as resilience4j does): a success can leave the
                // window at or above the rate once it holds --min-calls.
                self.consecutive_failures = if failed {
                    self.consecutive_failures.saturating_add(1)
                } else {
                    0
                };
                self.push_window(failed, now);
                let threshold = u64::from(self.policy.threshold);
                if threshold > 0 && self.consecutive_failures >= threshold {
                    return Some(
                        self.open(Reason::ConsecutiveFailures(self.consecutive_failures), host),
                    );
                }
                let tally = self.window_tally(now);
                match self.policy.failure_rate {
                    Some(rate)
                        if tally.calls >= u64::from(self.policy.min_calls.max(1))
                            && tally.at_or_above(rate) =>
                    {
                        let reason = Reason::FailureRate {
                            percent: tally.percent(),
                            calls: tally.calls,
                        };
                        Some(self.open(reason, host))
                    }
                    _ => None,
                }
            }
            (State::HalfOpen, true) => {
                self.probe = None;
                if failed {
                    self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                    if self.policy.backoff == Backoff::Exponential {
                        let grown = u128::from(self.recovery)
                            * u128::from(self.policy.backoff_factor_milli)
                            / 1000;
                        self.recovery = u64::try_from(grown)
                            .unwrap_or(u64::MAX)
                            .min(self.policy.max_recovery)
                            .max(self.policy.recovery.min(self.policy.max_recovery));
                    }
                    self.reopens = self.reopens.saturating_add(1);
                    return Some(self.open(Reason::ProbeFailed, host));
                }
                self.consecutive_failures = 0;
                self.probe_successes = self.probe_successes.saturating_add(1);
                if self.probe_successes >= u64::from(self.policy.probes.max(1)) {
                    return Some(self.transition(State::Closed, Reason::ProbeSucceeded, now));
                }
                None
            }
            _ => None,
        }
    }

    /// Records an outcome that a script reports (`cbreak record`), as if the
    /// call had been admitted now under `policy` and had just ended. An
    /// outcome reported while the breaker would reject counts in the
    /// lifetime counters only. Each transition comes with the state it left
    /// (for its hooks).
    pub fn record_external(
        &mut self,
        policy: &Policy,
        call: Call,
        host: &mut impl Host,
    ) -> Vec<(Transition, BreakerState)> {
        self.adopt(policy);
        self.updated_at = host.now();
        let (admission, first) = self.decide(host, true);
        let mut made: Vec<(Transition, BreakerState)> =
            first.into_iter().map(|t| (t, *self)).collect();
        let ticket = match admission {
            Admission::Run(ticket) => ticket,
            Admission::Reject(_) => Ticket {
                generation: self.generation.wrapping_sub(1),
                probe: false,
            },
        };
        if let Some(t) = self.record(ticket, call, host) {
            made.push((t, *self));
        }
        made
    }

    /// Starts the lease of a probe this process holds again from `now`:
    /// called just before the probe's command starts, so that hooks run
    /// between admission and the spawn cannot use up the lease and let a
    /// second probe through.
    pub fn renew_lease(&mut self, ticket: Ticket, now: Millis) {
        if !ticket.probe || ticket.generation != self.generation {
            return;
        }
        let lease = self.policy.probe_lease();
        if let Some(slot) = &mut self.probe {
            slot.lease_until = now.saturating_add(lease);
        }
    }

    /// Gives back a probe slot without an outcome: the call was cancelled,
    /// ignored, or could not be started.
    pub fn release(&mut self, ticket: Ticket) {
        if ticket.probe && ticket.generation == self.generation && self.state == State::HalfOpen {
            self.probe = None;
        }
    }

    fn push_window(&mut self, failed: bool, now: Millis) {
        match self.policy.window {
            Window::None => {}
            Window::Count(n) => self.count_window.push(n, failed),
            Window::Time(span) => self.time_window.push(span, now, failed),
        }
    }

    /// `cbreak trip`: forced open until reset, or open for `period` and then
    /// the normal probe.
    pub fn trip(&mut self, period: Option<Millis>, now: Millis) -> Option<Transition> {
        self.updated_at = now;
        match period {
            None if self.state == State::ForcedOpen => None,
            None => Some(self.transition(State::ForcedOpen, Reason::Tripped, now)),
            Some(period) => {
                let t = self.transition(State::Open, Reason::TrippedFor(period), now);
                self.next_probe_at = now.saturating_add(period);
                Some(t)
            }
        }
    }

    /// `cbreak reset`: closed, failures forgotten.
    pub fn reset(&mut self, now: Millis) -> Option<Transition> {
        self.updated_at = now;
        self.consecutive_failures = 0;
        if self.state == State::Closed {
            // No transition, but the evidence of the failing streak goes.
            self.count_window = CountWindow::default();
            self.time_window = TimeWindow::default();
            None
        } else {
            Some(self.transition(State::Closed, Reason::Reset, now))
        }
    }

    /// `cbreak disable`: metrics only; an open breaker closes.
    pub fn disable(&mut self, now: Millis) -> Option<Transition> {
        self.updated_at = now;
        self.mode = Mode::Disabled;
        (self.state != State::Closed).then(|| self.transition(State::Closed, Reason::Disabled, now))
    }

    /// `cbreak enable`: back to normal, from closed.
    pub fn enable(&mut self, now: Millis) {
        self.updated_at = now;
        self.mode = Mode::Normal;
    }

    /// Whether the state obeys the machine's invariants; a record that does
    /// not is treated as corrupt.
    pub fn is_consistent(&self) -> bool {
        let c = &self.counters;
        let sum = c
            .successes
            .checked_add(c.failures)
            .and_then(|s| s.checked_add(c.ignored))
            .and_then(|s| s.checked_add(c.cancelled));
        let window_ok = match self.policy.window {
            Window::Count(n) => self.count_window.is_consistent(n),
            Window::None | Window::Time(_) => self.count_window == CountWindow::default(),
        };
        sum == Some(c.calls)
            && c.slow <= c.failures
            && c.timeouts <= c.failures
            && (self.probe.is_none() || self.state == State::HalfOpen)
            && self.recent.len <= 64
            && self.history.len <= history::HISTORY_LEN as u32
            && (self.history.head as usize) < history::HISTORY_LEN
            && window_ok
    }
}

/// `period` spread uniformly by ±`percent`.
fn jittered(period: Millis, percent: u32, random: u64) -> Millis {
    let spread =
        u64::try_from(u128::from(period) * u128::from(percent.min(100)) / 100).unwrap_or(u64::MAX);
    if spread == 0 {
        return period;
    }
    let offset = random % (spread.saturating_mul(2).saturating_add(1));
    period.saturating_sub(spread).saturating_add(offset)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A host with a settable clock and a set of dead pids.
    pub struct FakeHost {
        pub now: Millis,
        pub pid: u32,
        pub dead: Vec<u32>,
        pub seed: u64,
    }

    impl FakeHost {
        pub fn at(now: Millis) -> Self {
            FakeHost {
                now,
                pid: 100,
                dead: Vec::new(),
                seed: 42,
            }
        }
    }

    impl Host for FakeHost {
        fn now(&self) -> Millis {
            self.now
        }
        fn me(&mut self) -> Owner {
            Owner {
                pid: self.pid,
                start_time: 7,
                boot_id: 9,
                kernel_lock: false,
            }
        }
        fn is_alive(&mut self, owner: &Owner) -> bool {
            !self.dead.contains(&owner.pid)
        }
        fn random(&mut self) -> u64 {
            self.seed = self
                .seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.seed >> 11
        }
    }

    const T0: Millis = 1_700_000_000_000;

    fn policy(threshold: u32, recovery: Millis) -> Policy {
        Policy {
            threshold,
            recovery,
            ..Policy::default()
        }
    }

    fn call(outcome: Outcome) -> Call {
        Call {
            outcome,
            slow: false,
            timed_out: false,
        }
    }

    /// Admits and records one call; returns whether it ran and any transitions.
    fn run(
        b: &mut BreakerState,
        p: &Policy,
        h: &mut FakeHost,
        outcome: Outcome,
    ) -> (bool, Vec<State>) {
        let mut to = Vec::new();
        let (adm, t) = b.admit(p, h);
        to.extend(t.map(|t| t.to));
        match adm {
            Admission::Run(ticket) => {
                to.extend(b.record(ticket, call(outcome), h).map(|t| t.to));
                (true, to)
            }
            Admission::Reject(_) => (false, to),
        }
    }

    fn tripped(threshold: u32, recovery: Millis, h: &mut FakeHost) -> (BreakerState, Policy) {
        let p = policy(threshold, recovery);
        let mut b = BreakerState::new(h.now, 1, p);
        for _ in 0..threshold {
            run(&mut b, &p, h, Outcome::Failure);
        }
        assert_eq!(b.state, State::Open);
        (b, p)
    }

    #[test]
    fn opens_exactly_at_the_threshold() {
        let mut h = FakeHost::at(T0);
        let p = policy(3, 1000);
        let mut b = BreakerState::new(T0, 1, p);
        run(&mut b, &p, &mut h, Outcome::Failure);
        run(&mut b, &p, &mut h, Outcome::Failure);
        assert_eq!(b.state, State::Closed);
        assert_eq!(b.consecutive_failures, 2);
        let (_, to) = run(&mut b, &p, &mut h, Outcome::Failure);
        assert_eq!(to, vec![State::Open]);
        assert_eq!(b.next_probe_at, T0 + 1000);
        assert_eq!(
            b.history.oldest_first()[0].reason,
            Reason::ConsecutiveFailures(3)
        );
    }

    #[test]
    fn success_resets_the_consecutive_count() {
        let mut h = FakeHost::at(T0);
        let p = policy(3, 1000);
        let mut b = BreakerState::new(T0, 1, p);
        for o in [
            Outcome::Failure,
            Outcome::Failure,
            Outcome::Success,
            Outcome::Failure,
            Outcome::Failure,
        ] {
            run(&mut b, &p, &mut h, o);
        }
        assert_eq!(b.state, State::Closed);
        assert_eq!(b.consecutive_failures, 2);
    }

    #[test]
    fn open_rejects_until_one_ms_before_recovery_and_probes_at_it() {
        let mut h = FakeHost::at(T0);
        let (mut b, p) = tripped(2, 1000, &mut h);
        h.now = T0 + 999;
        assert_eq!(run(&mut b, &p, &mut h, Outcome::Success), (false, vec![]));
        assert_eq!(b.counters.rejected, 1);
        h.now = T0 + 1000;
        let (ran, to) = run(&mut b, &p, &mut h, Outcome::Success);
        assert!(ran);
        assert_eq!(to, vec![State::HalfOpen, State::Closed]);
        assert_eq!(b.consecutive_failures, 0);
    }

    #[test]
    fn half_open_admits_one_probe_and_rejects_the_rest() {
        let mut h = FakeHost::at(T0);
        let (mut b, p) = tripped(1, 1000, &mut h);
        h.now = T0 + 1000;
        let (Admission::Run(probe), Some(t)) = b.admit(&p, &mut h) else {
            panic!("the first caller after recovery must probe");
        };
        assert_eq!(t.to, State::HalfOpen);
        assert!(probe.probe);
        h.pid = 200;
        for _ in 0..5 {
            let (adm, _) = b.admit(&p, &mut h);
            assert!(matches!(
                adm,
                Admission::Reject(Rejection {
                    state: State::HalfOpen,
                    ..
                })
            ));
        }
        let t = b.record(probe, call(Outcome::Failure), &mut h).unwrap();
        assert_eq!(t.to, State::Open);
        assert_eq!(
            b.next_probe_at,
            T0 + 2000,
            "a failed probe starts a fresh period"
        );
    }

    #[test]
    fn probe_slot_of_a_dead_owner_is_reclaimed() {
        let mut h = FakeHost::at(T0);
        let (mut b, p) = tripped(1, 1000, &mut h);
        h.now = T0 + 1000;
        let (Admission::Run(old), _) = b.admit(&p, &mut h) else {
            panic!()
        };
        h.dead.push(100);
        h.pid = 200;
        let (Admission::Run(new), _) = b.admit(&p, &mut h) else {
            panic!("a dead owner's slot must be taken over");
        };
        assert!(new.probe);
        assert_eq!(b.probe.unwrap().owner.pid, 200);
        // The dead owner's outcome, should it ever arrive, changes nothing.
        assert_eq!(b.record(old, call(Outcome::Success), &mut h), None);
        assert_eq!(b.state, State::HalfOpen);
    }

    #[test]
    fn probe_slot_is_reclaimed_when_the_lease_passes() {
        let mut h = FakeHost::at(T0);
        let p = Policy {
            threshold: 1,
            recovery: 1000,
            timeout: Some(1000),
            kill_after: 1000,
            ..Policy::default()
        };
        let mut b = BreakerState::new(T0, 1, p);
        run(&mut b, &p, &mut h, Outcome::Failure);
        h.now = T0 + 1000;
        assert!(matches!(b.admit(&p, &mut h).0, Admission::Run(_)));
        h.pid = 200;
        h.now = T0 + 1000 + 1000 + 1000 + LEASE_GRACE - 1;
        assert!(matches!(b.admit(&p, &mut h).0, Admission::Reject(_)));
        h.now += 1;
        assert!(matches!(
            b.admit(&p, &mut h).0,
            Admission::Run(Ticket { probe: true, .. })
        ));
    }

    #[test]
    fn cancelled_probe_releases_the_slot() {
        let mut h = FakeHost::at(T0);
        let (mut b, p) = tripped(1, 1000, &mut h);
        h.now = T0 + 1000;
        let (Admission::Run(t), _) = b.admit(&p, &mut h) else {
            panic!()
        };
        assert_eq!(b.record(t, call(Outcome::Cancelled), &mut h), None);
        assert_eq!(b.probe, None);
        assert_eq!(b.counters.cancelled, 1);
        h.pid = 200;
        assert!(matches!(
            b.admit(&p, &mut h).0,
            Admission::Run(Ticket { probe: true, .. })
        ));
    }

    #[test]
    fn slow_success_from_before_the_open_does_not_close_it() {
        // gobreaker's TestGeneration.
        let mut h = FakeHost::at(T0);
        let p = policy(2, 1000);
        let mut b = BreakerState::new(T0, 1, p);
        let (Admission::Run(slow), _) = b.admit(&p, &mut h) else {
            panic!()
        };
        run(&mut b, &p, &mut h, Outcome::Failure);
        run(&mut b, &p, &mut h, Outcome::Failure);
        assert_eq!(b.state, State::Open);
        assert_eq!(b.record(slow, call(Outcome::Success), &mut h), None);
        assert_eq!(b.state, State::Open);
        assert_eq!(b.counters.successes, 1, "lifetime counters still count it");
        assert_eq!(b.counters.calls, 3);
    }

    #[test]
    fn stale_failure_from_a_previous_closed_period_does_not_count() {
        let mut h = FakeHost::at(T0);
        let (mut b, p) = tripped(2, 1000, &mut h);
        b.reset(T0);
        let stale = Ticket {
            generation: b.generation - 1,
            probe: false,
        };
        b.record(stale, call(Outcome::Failure), &mut h);
        assert_eq!(b.consecutive_failures, 0);
        let _ = p;
    }

    #[test]
    fn clock_going_back_while_open_rebases_the_period() {
        for step in [1_000, 3_600_000, 86_400_000] {
            let mut h = FakeHost::at(T0);
            let (mut b, p) = tripped(1, 10_000, &mut h);
            h.now = T0 - step;
            assert!(
                !run(&mut b, &p, &mut h, Outcome::Success).0,
                "still open after a step back of {step}"
            );
            // Bounded: one period after the first call that saw the step.
            h.now = T0 - step + 10_000;
            assert!(
                run(&mut b, &p, &mut h, Outcome::Success).0,
                "probes one period after the step of {step}"
            );
        }
    }

    #[test]
    fn clock_going_forward_ends_the_open_period() {
        let mut h = FakeHost::at(T0);
        let (mut b, p) = tripped(1, 10_000, &mut h);
        h.now = T0 + 86_400_000;
        assert!(run(&mut b, &p, &mut h, Outcome::Success).0);
        assert_eq!(b.state, State::Closed);
    }

    #[test]
    fn clock_steps_never_open_or_close_a_breaker_by_themselves() {
        for step in [
            -86_400_000i64,
            -3_600_000,
            -1_000,
            1_000,
            3_600_000,
            86_400_000,
        ] {
            let mut h = FakeHost::at(T0);
            let p = policy(3, 10_000);
            let mut b = BreakerState::new(T0, 1, p);
            run(&mut b, &p, &mut h, Outcome::Failure);
            h.now = T0.checked_add_signed(step).unwrap();
            run(&mut b, &p, &mut h, Outcome::Success);
            assert_eq!(b.state, State::Closed, "step {step}");
            // Forced open stays forced open whatever the clock does.
            b.trip(None, h.now);
            h.now = h.now.checked_add_signed(-step).unwrap();
            assert!(!run(&mut b, &p, &mut h, Outcome::Success).0);
            assert_eq!(b.state, State::ForcedOpen);
        }
    }

    /// Every state, every step (±1 s, ±1 h, ±1 d): what the next caller
    /// gets. The documented behaviour (README, "Guarantees and limits").
    #[test]
    fn clock_steps_in_every_state() {
        const RECOVERY: Millis = 10_000;
        for step in [
            -86_400_000i64,
            -3_600_000,
            -1_000,
            1_000,
            3_600_000,
            86_400_000,
        ] {
            for state in State::ALL {
                let mut h = FakeHost::at(T0);
                let p = policy(1, RECOVERY);
                let mut b = BreakerState::new(T0, 1, p);
                match state {
                    State::Closed => {}
                    State::Open => {
                        run(&mut b, &p, &mut h, Outcome::Failure);
                    }
                    State::HalfOpen => {
                        run(&mut b, &p, &mut h, Outcome::Failure);
                        h.now = T0 + RECOVERY;
                        assert!(matches!(
                            b.admit(&p, &mut h).0,
                            Admission::Run(Ticket { probe: true, .. })
                        ));
                    }
                    State::ForcedOpen => {
                        b.trip(None, T0);
                    }
                }
                assert_eq!(b.state, state);
                let before = h.now;
                h.now = before.checked_add_signed(step).unwrap();
                h.pid = 200; // another caller; the probe's owner stays alive
                let (admission, t) = b.admit(&p, &mut h);
                let ran = matches!(admission, Admission::Run(_));
                let expected = match state {
                    State::Closed => true,
                    State::ForcedOpen => false,
                    // A step forward past the period ends it; a step back
                    // never does.
                    State::Open => step >= RECOVERY as i64,
                    // The probe holds its slot until its lease (an hour
                    // without --timeout) has passed on the clock.
                    State::HalfOpen => step >= DEFAULT_PROBE_LEASE as i64,
                };
                assert_eq!(ran, expected, "{state:?} stepped by {step} ms");
                assert!(
                    t.is_none() || t.unwrap().to == State::HalfOpen,
                    "no step opens or closes by itself"
                );
                assert!(b.is_consistent());
                if state == State::Open && step < 0 {
                    // Bounded: one period after the call that saw the step.
                    h.now += RECOVERY - 1;
                    assert!(matches!(b.admit(&p, &mut h).0, Admission::Reject(_)));
                    h.now += 1;
                    assert!(matches!(b.admit(&p, &mut h).0, Admission::Run(_)));
                }
            }
        }
    }

    #[test]
    fn clock_at_zero_or_max_does_not_panic() {
        for now in [0, u64::MAX] {
            let mut h = FakeHost::at(now);
            let p = policy(1, u64::MAX);
            let mut b = BreakerState::new(now, 1, p);
            run(&mut b, &p, &mut h, Outcome::Failure);
            run(&mut b, &p, &mut h, Outcome::Failure);
            b.trip(Some(u64::MAX), now);
            run(&mut b, &p, &mut h, Outcome::Failure);
        }
    }

    #[test]
    fn forced_open_rejects_until_reset() {
        let mut h = FakeHost::at(T0);
        let p = policy(3, 1000);
        let mut b = BreakerState::new(T0, 1, p);
        assert_eq!(b.trip(None, T0).unwrap().to, State::ForcedOpen);
        h.now = T0 + 1_000_000_000;
        assert!(!run(&mut b, &p, &mut h, Outcome::Success).0);
        b.reset(h.now);
        assert!(run(&mut b, &p, &mut h, Outcome::Success).0);
    }

    #[test]
    fn trip_for_opens_for_that_long_then_probes() {
        let mut h = FakeHost::at(T0);
        let p = policy(3, 1000);
        let mut b = BreakerState::new(T0, 1, p);
        b.trip(Some(5000), T0);
        h.now = T0 + 4999;
        assert!(!run(&mut b, &p, &mut h, Outcome::Success).0);
        h.now = T0 + 5000;
        assert_eq!(
            run(&mut b, &p, &mut h, Outcome::Success),
            (true, vec![State::HalfOpen, State::Closed])
        );
    }

    #[test]
    fn failure_rate_trips_exactly_at_min_calls_and_the_rate() {
        let mut h = FakeHost::at(T0);
        let p = Policy {
            threshold: 0,
            failure_rate: Some(5_000),
            window: Window::Count(10),
            min_calls: 4,
            ..Policy::default()
        };
        let mut b = BreakerState::new(T0, 1, p);
        for o in [Outcome::Failure, Outcome::Success, Outcome::Failure] {
            run(&mut b, &p, &mut h, o);
        }
        assert_eq!(
            b.state,
            State::Closed,
            "3 calls are fewer than --min-calls 4"
        );
        let (_, to) = run(&mut b, &p, &mut h, Outcome::Success);
        assert_eq!(
            to,
            vec![State::Open],
            "2 of 4 = 50% ≥ 50%: judged after a success too"
        );
        assert_eq!(
            b.history.oldest_first()[0].reason,
            Reason::FailureRate {
                percent: 50,
                calls: 4
            }
        );
        assert_eq!(
            b.window_tally(T0),
            Tally::default(),
            "the window is cleared on transition"
        );
    }

    /// Regression (issue 12): 3 failures in 4 calls, the 4th a success,
    /// with --failure-rate 50 --min-calls 4 stayed closed although `status`
    /// showed 75%.
    #[test]
    fn failure_rate_reached_by_a_success_opens_the_breaker() {
        let mut h = FakeHost::at(T0);
        let p = Policy {
            threshold: 0,
            failure_rate: Some(5_000),
            window: Window::Count(100),
            min_calls: 4,
            ..Policy::default()
        };
        let mut b = BreakerState::new(T0, 1, p);
        for o in [Outcome::Failure, Outcome::Failure, Outcome::Failure] {
            assert_eq!(run(&mut b, &p, &mut h, o).1, vec![]);
        }
        assert_eq!(
            run(&mut b, &p, &mut h, Outcome::Success).1,
            vec![State::Open]
        );
        assert_eq!(
            b.history.oldest_first()[0].reason,
            Reason::FailureRate {
                percent: 75,
                calls: 4
            }
        );
    }

    #[test]
    fn failure_rate_just_below_does_not_trip() {
        let mut h = FakeHost::at(T0);
        let p = Policy {
            threshold: 0,
            failure_rate: Some(5_001),
            window: Window::Count(4),
            min_calls: 4,
            ..Policy::default()
        };
        let mut b = BreakerState::new(T0, 1, p);
        for o in [
            Outcome::Success,
            Outcome::Success,
            Outcome::Failure,
            Outcome::Failure,
        ] {
            run(&mut b, &p, &mut h, o);
        }
        assert_eq!(b.state, State::Closed, "50% < 50.01%");
    }

    #[test]
    fn time_window_forgets_old_failures() {
        let mut h = FakeHost::at(T0);
        let p = Policy {
            threshold: 0,
            failure_rate: Some(5_000),
            window: Window::Time(20_000),
            min_calls: 2,
            ..Policy::default()
        };
        let mut b = BreakerState::new(T0, 1, p);
        run(&mut b, &p, &mut h, Outcome::Failure);
        // 20 s later the failure has left the window: 1 failure of 3 is 33%.
        h.now = T0 + 20_000;
        run(&mut b, &p, &mut h, Outcome::Success);
        run(&mut b, &p, &mut h, Outcome::Success);
        run(&mut b, &p, &mut h, Outcome::Failure);
        assert_eq!(b.state, State::Closed);
        assert_eq!(
            b.window_tally(h.now),
            Tally {
                calls: 3,
                failures: 1
            }
        );
        // Had it stayed, 2 of 4 would have been 50%: it takes one more now.
        run(&mut b, &p, &mut h, Outcome::Failure);
        assert_eq!(b.state, State::Open);
    }

    #[test]
    fn ignored_outcomes_stay_out_of_the_window_and_the_count() {
        let mut h = FakeHost::at(T0);
        let p = Policy {
            threshold: 2,
            window: Window::Count(10),
            failure_rate: Some(1),
            min_calls: 1,
            ..Policy::default()
        };
        let mut b = BreakerState::new(T0, 1, p);
        run(&mut b, &p, &mut h, Outcome::Success);
        for _ in 0..5 {
            run(&mut b, &p, &mut h, Outcome::Ignored);
        }
        assert_eq!(b.state, State::Closed);
        assert_eq!(b.window_tally(T0).calls, 1);
        assert_eq!(b.counters.ignored, 5);
        assert_eq!(b.counters.calls, 6);
    }

    #[test]
    fn exponential_backoff_grows_and_is_capped_then_returns_on_close() {
        let mut h = FakeHost::at(T0);
        let p = Policy {
            threshold: 1,
            recovery: 1000,
            backoff: Backoff::Exponential,
            max_recovery: 5000,
            ..Policy::default()
        };
        let mut b = BreakerState::new(T0, 1, p);
        run(&mut b, &p, &mut h, Outcome::Failure);
        let mut periods = vec![b.recovery];
        for _ in 0..4 {
            h.now = b.next_probe_at;
            run(&mut b, &p, &mut h, Outcome::Failure);
            periods.push(b.recovery);
        }
        assert_eq!(periods, vec![1000, 2000, 4000, 5000, 5000]);
        assert_eq!(b.reopens, 4);
        h.now = b.next_probe_at;
        run(&mut b, &p, &mut h, Outcome::Success);
        assert_eq!((b.state, b.recovery, b.reopens), (State::Closed, 1000, 0));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut h = FakeHost::at(T0);
        let p = Policy {
            threshold: 1,
            recovery: 10_000,
            jitter_percent: 20,
            ..Policy::default()
        };
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            h.seed = seed;
            let mut b = BreakerState::new(T0, 1, p);
            run(&mut b, &p, &mut h, Outcome::Failure);
            let period = b.next_probe_at - T0;
            assert!((8_000..=12_000).contains(&period), "{period}");
            seen.insert(period / 1000);
        }
        assert!(seen.len() >= 4, "jitter spreads the periods: {seen:?}");
    }

    #[test]
    fn n_probes_must_succeed_in_a_row() {
        let mut h = FakeHost::at(T0);
        let p = Policy {
            threshold: 1,
            recovery: 1000,
            probes: 3,
            ..Policy::default()
        };
        let mut b = BreakerState::new(T0, 1, p);
        run(&mut b, &p, &mut h, Outcome::Failure);
        h.now = T0 + 1000;
        for _ in 0..2 {
            run(&mut b, &p, &mut h, Outcome::Success);
            assert_eq!(b.state, State::HalfOpen);
        }
        run(&mut b, &p, &mut h, Outcome::Success);
        assert_eq!(b.state, State::Closed);
    }

    #[test]
    fn disabled_breaker_runs_everything_and_never_opens() {
        let mut h = FakeHost::at(T0);
        let (mut b, p) = tripped(1, 1000, &mut h);
        assert_eq!(b.disable(T0).unwrap().to, State::Closed);
        for _ in 0..10 {
            assert!(run(&mut b, &p, &mut h, Outcome::Failure).0);
        }
        assert_eq!(b.state, State::Closed);
        assert_eq!(b.consecutive_failures, 10);
        b.enable(T0);
        let (_, to) = run(&mut b, &p, &mut h, Outcome::Failure);
        assert_eq!(to, vec![State::Open]);
    }

    #[test]
    fn would_admit_changes_nothing() {
        let mut h = FakeHost::at(T0);
        let (b, p) = tripped(1, 1000, &mut h);
        let before = b;
        assert!(!b.would_admit(&p, &mut h));
        h.now = T0 + 1000;
        assert!(b.would_admit(&p, &mut h));
        assert_eq!(b, before);
    }

    #[test]
    fn failure_rate_reason_with_more_calls_than_32_bits_saturates() {
        // Regression: found by the fuzz target `record` (calls 4449959938),
        // now in its corpus as regression-rate-calls-over-u32.
        let r = Reason::FailureRate {
            percent: 3,
            calls: 4_449_959_938,
        };
        let (code, arg) = r.encode();
        assert_eq!(
            Reason::decode(code, arg),
            Some(Reason::FailureRate {
                percent: 3,
                calls: u64::from(u32::MAX)
            })
        );
    }

    #[test]
    fn counters_at_the_top_stop_together() {
        // Regression: found by the fuzz target `record`, now in its corpus
        // as regression-counters-at-the-top.
        let mut h = FakeHost::at(T0);
        let p = policy(3, 1000);
        let mut b = BreakerState::new(T0, 1, p);
        b.counters.calls = u64::MAX;
        b.counters.successes = u64::MAX;
        run(&mut b, &p, &mut h, Outcome::Failure);
        assert!(b.is_consistent());
        assert_eq!(b.consecutive_failures, 1, "the breaker itself still works");
    }

    #[test]
    fn probe_success_count_from_a_hand_made_record_does_not_overflow() {
        // Regression: found by the fuzz target `record` (probe_successes at
        // u64::MAX read from a record), now in its corpus as
        // regression-probe-successes-at-the-top.
        let mut h = FakeHost::at(T0);
        let (mut b, p) = tripped(1, 1000, &mut h);
        h.now = T0 + 1000;
        let (Admission::Run(t), _) = b.admit(&p, &mut h) else {
            panic!()
        };
        b.probe_successes = u64::MAX;
        let t = b.record(t, call(Outcome::Success), &mut h).unwrap();
        assert_eq!(t.to, State::Closed);
    }

    #[derive(Clone, Debug)]
    enum Event {
        Run { pid: u32, outcome: u8 },
        Admit { pid: u32 },
        Finish { index: usize, outcome: u8 },
        Advance(u32),
        Back(u32),
        Kill(u32),
        Trip(Option<u16>),
        Reset,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (1..5u32, 0..4u8).prop_map(|(pid, outcome)| Event::Run { pid, outcome }),
            (1..5u32).prop_map(|pid| Event::Admit { pid }),
            (0..8usize, 0..4u8).prop_map(|(index, outcome)| Event::Finish { index, outcome }),
            (0..3000u32).prop_map(Event::Advance),
            (0..3000u32).prop_map(Event::Back),
            (1..5u32).prop_map(Event::Kill),
            proptest::option::of(0..3000u16).prop_map(Event::Trip),
            Just(Event::Reset),
        ]
    }

    fn outcome(n: u8) -> Outcome {
        [
            Outcome::Success,
            Outcome::Failure,
            Outcome::Ignored,
            Outcome::Cancelled,
        ][usize::from(n % 4)]
    }

    proptest! {
        #[test]
        fn random_events_keep_the_invariants(
            events in proptest::collection::vec(event(), 1..200),
            threshold in 1..5u32,
            probes in 1..3u32,
            rate in proptest::option::of(1..10_000u32),
        ) {
            let p = Policy {
                threshold,
                recovery: 1000,
                probes,
                failure_rate: rate,
                window: if rate.is_some() { Window::Count(8) } else { Window::None },
                min_calls: 3,
                ..Policy::default()
            };
            let mut h = FakeHost::at(T0);
            let mut b = BreakerState::new(T0, 1, p);
            let mut in_flight: Vec<Ticket> = Vec::new();
            for e in events {
                match e {
                    Event::Run { pid, outcome: o } => {
                        h.pid = pid;
                        run(&mut b, &p, &mut h, outcome(o));
                    }
                    Event::Admit { pid } => {
                        h.pid = pid;
                        if let Admission::Run(t) = b.admit(&p, &mut h).0 {
                            in_flight.push(t);
                        }
                    }
                    Event::Finish { index, outcome: o } => {
                        if !in_flight.is_empty() {
                            let t = in_flight.remove(index % in_flight.len());
                            b.record(t, call(outcome(o)), &mut h);
                        }
                    }
                    Event::Advance(ms) => h.now += u64::from(ms),
                    Event::Back(ms) => h.now -= u64::from(ms),
                    Event::Kill(pid) => h.dead.push(pid),
                    Event::Trip(d) => { b.trip(d.map(u64::from), h.now); }
                    Event::Reset => { b.reset(h.now); }
                }
                prop_assert!(b.is_consistent(), "{b:?}");
                if b.state == State::Closed {
                    prop_assert!(b.consecutive_failures < u64::from(threshold));
                }
                if b.state == State::Open {
                    prop_assert!(b.next_probe_at >= b.opened_at);
                }
            }
        }
    }
}
