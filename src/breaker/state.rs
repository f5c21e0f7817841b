//! What a breaker is in, and what passes between the machine and its
//! callers: [`State`], [`Mode`], [`Reason`], [`Transition`], the probe
//! slot's [`Owner`], the lifetime [`Counters`], the [`Host`] the machine
//! asks for time and identity, and the [`Ticket`] or [`Rejection`] an
//! admission gives. Plain data, no I/O.

use super::Millis;

/// The state of a breaker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum State {
    #[default]
    Closed,
    Open,
    HalfOpen,
    ForcedOpen,
}

impl State {
    pub const ALL: [State; 4] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: u64) -> Option<State> {
        State::ALL.get(usize::try_from(i).ok()?).copied()
    }
}

/// Normal, or metrics-only (`cbreak disable`): every call runs and is
/// counted, the breaker never opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Normal,
    Disabled,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Disabled => "disabled",
        }
    }
}

/// Why a transition happened. Stored in the history ring and given to hooks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reason {
    ConsecutiveFailures(u64),
    FailureRate {
        percent: u64,
        calls: u64,
    },
    RecoveryElapsed,
    ProbeSucceeded,
    ProbeFailed,
    Tripped,
    TrippedFor(Millis),
    #[default]
    Reset,
    Disabled,
}

impl Reason {
    /// Stable code and argument, for the record.
    pub fn encode(self) -> (u64, u64) {
        match self {
            Reason::ConsecutiveFailures(n) => (1, n),
            // Both halves saturate at 32 bits: a window never holds more
            // than u32::MAX calls in practice, but the fuzz target `record`
            // made one that did, and the truncated count did not survive a
            // store.
            Reason::FailureRate { percent, calls } => {
                let half = |v: u64| v.min(0xffff_ffff);
                (2, half(percent) << 32 | half(calls))
            }
            Reason::RecoveryElapsed => (3, 0),
            Reason::ProbeSucceeded => (4, 0),
            Reason::ProbeFailed => (5, 0),
            Reason::Tripped => (6, 0),
            Reason::TrippedFor(ms) => (7, ms),
            Reason::Reset => (8, 0),
            Reason::Disabled => (9, 0),
        }
    }

    pub fn decode(code: u64, arg: u64) -> Option<Reason> {
        Some(match code {
            1 => Reason::ConsecutiveFailures(arg),
            2 => Reason::FailureRate {
                percent: arg >> 32,
                calls: arg & 0xffff_ffff,
            },
            3 => Reason::RecoveryElapsed,
            4 => Reason::ProbeSucceeded,
            5 => Reason::ProbeFailed,
            6 => Reason::Tripped,
            7 => Reason::TrippedFor(arg),
            8 => Reason::Reset,
            9 => Reason::Disabled,
            _ => return None,
        })
    }
}

/// One change of state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transition {
    pub at: Millis,
    pub from: State,
    pub to: State,
    pub reason: Reason,
    /// `consecutive_failures` at the moment of the transition.
    pub consecutive_failures: u64,
}

/// Who holds the probe slot: enough to tell, from another process, whether
/// the holder still exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Start time of the process, in clock ticks since boot (from /proc).
    pub start_time: u64,
    /// A hash of the kernel's boot id and the owner's pid namespace: two
    /// owners with the same identity see the same pids.
    pub boot_id: u64,
    /// The owner holds the record's kernel probe lock for as long as it
    /// lives (`record`), so the kernel, not `/proc`, says whether it is
    /// alive: the store clears the slot of a locked owner that is gone
    /// before the machine sees it, and [`Host::is_alive`] takes a locked
    /// owner that is still in its slot as alive.
    pub kernel_lock: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeSlot {
    pub owner: Owner,
    pub lease_until: Millis,
}

/// Lifetime counters. `calls == successes + failures + ignored + cancelled`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub calls: u64,
    pub successes: u64,
    pub failures: u64,
    pub ignored: u64,
    pub cancelled: u64,
    pub rejected: u64,
    /// Failures that were slow successes (a subset of `failures`).
    pub slow: u64,
    /// Failures that were timeouts (a subset of `failures`).
    pub timeouts: u64,
}

/// What the machine needs from the world.
pub trait Host {
    fn now(&self) -> Millis;
    /// This process, as the owner of a probe slot.
    fn me(&mut self) -> Owner;
    /// Whether `owner` may still be running; `false` only when it provably
    /// is not.
    fn is_alive(&mut self, owner: &Owner) -> bool;
    fn random(&mut self) -> u64;
}

/// Proof of admission, carried from `admit` to `record`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub generation: u64,
    pub probe: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub state: State,
    /// When the next probe may run; `None` when forced open or a probe is in
    /// flight.
    pub next_probe_at: Option<Millis>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Run(Ticket),
    Reject(Rejection),
}
