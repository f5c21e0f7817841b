//! [`Engine`]: the protocol of the calls on one breaker of a store, for
//! one caller at a time — admit; record the outcome, give the probe back
//! or renew its lease; trip, reset, disable, enable; judge without
//! changing anything — written once, beneath both front ends.
//!
//! `cbreak`'s subcommands (`app`) and the library's
//! [`Breaker`](crate::Breaker) (behind a mutex, over the state directory)
//! go through it, so the order of a call's updates, the state a new
//! breaker starts in, and the clock each decision is made on are decided
//! here only. Decisions are `breaker`'s, storage is the [`Store`]'s. It
//! prints nothing and fires no hooks: what to say about a transition, and
//! to whom, is the front end's.

use crate::breaker::{Admission, BreakerState, Call, Host, Millis, Policy, Ticket, Transition};
use crate::host::System;
use crate::store::{Event, Store, StoreError};

/// One breaker of a store, opened for the updates of its calls: the
/// store's handle on it (the state directory keeps the record open and
/// mapped there, and the kernel's probe lock while this process probes).
pub(crate) struct Engine<S: Store> {
    store: S,
    name: String,
    handle: S::Handle,
    host: System,
    policy: Policy,
}

impl<S: Store> Engine<S> {
    /// Opens breaker `name` (a valid name) of `store`, for calls under
    /// `policy` (a breaker made by these calls starts under it too). Does
    /// no I/O.
    pub(crate) fn new(store: S, name: &str, policy: Policy) -> Engine<S> {
        let handle = store.open(name);
        Engine {
            store,
            name: name.to_string(),
            handle,
            host: System::new(),
            policy,
        }
    }

    pub(crate) fn store(&self) -> &S {
        &self.store
    }

    /// What the store did that someone should hear about.
    pub(crate) fn take_events(&self) -> Vec<Event> {
        self.store.take_events()
    }

    /// Read-modify-write of the state (see [`Store::update`]: `f` may run
    /// more than once, on a freshly read state each time). A new breaker
    /// starts closed under this engine's policy, made by this process now;
    /// `f` decides on the store's clock, read once the state is at hand (a
    /// shared store's is the server's, just read with it).
    pub(crate) fn update<T>(
        &mut self,
        mut f: impl FnMut(&mut BreakerState, &mut System) -> T,
    ) -> Result<T, StoreError> {
        let (store, policy) = (&self.store, self.policy);
        let fresh = || BreakerState::new(store.now(), std::process::id(), policy);
        let host = &mut self.host;
        self.store.update(&mut self.handle, fresh, |s| {
            host.set_clock(store.now());
            f(s, host)
        })
    }

    /// Opens (or creates) and checks the breaker's state now, changing
    /// nothing, so that a store that cannot be used is found before the
    /// first call.
    pub(crate) fn prepare(&mut self) -> Result<(), StoreError> {
        self.update(|_, _| ())
    }

    /// Decides whether a call may run now, and hands `look` the admission,
    /// the transition it made (into half-open) and the state it left, to
    /// take what the caller needs of them. Out of line, like
    /// [`Engine::record`]: the stack of the update is given back before
    /// the caller goes on (a skip touches fewer pages).
    #[inline(never)]
    pub(crate) fn admit<T>(
        &mut self,
        mut look: impl FnMut(Admission, Option<Transition>, &BreakerState) -> T,
    ) -> Result<T, StoreError> {
        let policy = self.policy;
        self.update(|s, host| {
            let (admission, t) = s.admit(&policy, host);
            look(admission, t, s)
        })
    }

    /// Records the outcome of an admitted call: the transition it made and
    /// the state it left.
    pub(crate) fn record(
        &mut self,
        ticket: Ticket,
        call: Call,
    ) -> Result<(Option<Transition>, BreakerState), StoreError> {
        self.update(|s, host| (s.record(ticket, call, host), *s))
    }

    /// Records the outcome of a call that was not admitted through this
    /// breaker (`cbreak record`): each transition it made, with the state
    /// that transition left.
    pub(crate) fn record_external(
        &mut self,
        call: Call,
    ) -> Result<Vec<(Transition, BreakerState)>, StoreError> {
        let policy = self.policy;
        self.update(|s, host| s.record_external(&policy, call, host))
    }

    /// Gives back a probe slot without an outcome, counting nothing: the
    /// call never started.
    pub(crate) fn release(&mut self, ticket: Ticket) -> Result<(), StoreError> {
        self.update(|s, _| s.release(ticket))
    }

    /// Starts a probe's lease again from now.
    pub(crate) fn renew_lease(&mut self, ticket: Ticket) -> Result<(), StoreError> {
        self.update(|s, host| s.renew_lease(ticket, host.now()))
    }

    /// Forces the breaker open: until a reset, or for `period` and then
    /// the normal probe.
    pub(crate) fn trip(&mut self, period: Option<Millis>) -> Result<Changed, StoreError> {
        self.update(|s, host| (s.trip(period, host.now()), *s))
    }

    /// Closes the breaker and forgets its failures.
    pub(crate) fn reset(&mut self) -> Result<Changed, StoreError> {
        self.update(|s, host| (s.reset(host.now()), *s))
    }

    /// Lets every call through and never opens, still counting.
    pub(crate) fn disable(&mut self) -> Result<Changed, StoreError> {
        self.update(|s, host| (s.disable(host.now()), *s))
    }

    /// Undoes [`Engine::disable`].
    pub(crate) fn enable(&mut self) -> Result<Changed, StoreError> {
        self.update(|s, host| {
            s.enable(host.now());
            (None, *s)
        })
    }

    /// Whether a call would be admitted now, changing nothing: `None` when
    /// the breaker does not exist (a call would make it, closed).
    pub(crate) fn would_admit(&mut self) -> Result<Option<bool>, StoreError> {
        let state = match self.store.read(&self.name) {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        self.host.set_clock(self.store.now());
        Ok(Some(state.would_admit(&self.policy, &mut self.host)))
    }

    /// The clock the store's states are judged by.
    pub(crate) fn now(&self) -> Millis {
        self.store.now()
    }

    /// Closes the breaker (the state directory closes its record, giving
    /// back the probe lock if this process held it) and gives the store
    /// back.
    pub(crate) fn close(self) -> S {
        self.store
    }
}

/// A change made by hand: the transition it made, if any, and the state
/// it left.
pub(crate) type Changed = (Option<Transition>, BreakerState);
