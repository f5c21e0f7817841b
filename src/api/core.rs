//! [`Core`]: the protocol of one guarded call on one breaker of a store —
//! admit, then record the outcome, give the probe back, or renew its lease
//! — for one caller at a time.
//!
//! Both the public [`Breaker`](super::Breaker) (behind a mutex, over the
//! state directory) and `cbreak run` (over any [`Store`]) go through it, so
//! the order of a call's updates and what each one hands the state machine
//! are written once. It prints nothing and fires no hooks: what to say
//! about a transition is the caller's.

use crate::breaker::{Admission, BreakerState, Call, Millis, Policy, Ticket, Transition};
use crate::host::System;
use crate::store::{Event, Store, StoreError};

/// One breaker of a store, opened for the updates of its calls: the
/// store's handle on it (the state directory keeps the record open and
/// mapped there, and the kernel's probe lock while this process probes).
pub(crate) struct Core<S: Store> {
    store: S,
    handle: S::Handle,
    host: System,
    policy: Policy,
}

impl<S: Store> Core<S> {
    /// Opens breaker `name` (a valid name) of `store`, for calls under
    /// `policy`. Does no I/O.
    pub(crate) fn new(store: S, name: &str, policy: Policy) -> Core<S> {
        let handle = store.open(name);
        Core {
            store,
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
    /// starts closed under this core's policy.
    pub(crate) fn update<T>(
        &mut self,
        mut f: impl FnMut(&mut BreakerState, &mut System) -> T,
    ) -> Result<T, StoreError> {
        let (store, policy) = (&self.store, self.policy);
        let fresh = || BreakerState::new(store.now(), std::process::id(), policy);
        let host = &mut self.host;
        self.store.update(&mut self.handle, fresh, |s| {
            // Judged by the store's clock, read once the state is at hand
            // (a shared store's is the server's, just read with it).
            host.set_clock(store.now());
            f(s, host)
        })
    }

    /// Decides whether a call may run now: the admission, the transition
    /// it made (into half-open), and the state it left. Out of line, like
    /// [`Core::record`]: the stack of the update is given back before the
    /// caller goes on (a skip touches fewer pages).
    #[inline(never)]
    pub(crate) fn admit(
        &mut self,
    ) -> Result<(Admission, Option<Transition>, BreakerState), StoreError> {
        let policy = self.policy;
        self.update(|s, host| {
            let (admission, t) = s.admit(&policy, host);
            (admission, t, *s)
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

    /// Gives back a probe slot without an outcome, counting nothing: the
    /// call never started.
    pub(crate) fn release(&mut self, ticket: Ticket) -> Result<(), StoreError> {
        self.update(|s, _| s.release(ticket))
    }

    /// Starts a probe's lease again from now.
    pub(crate) fn renew_lease(&mut self, ticket: Ticket) -> Result<(), StoreError> {
        let now = self.store.now();
        self.update(|s, _| s.renew_lease(ticket, now))
    }

    /// Forces the breaker open (`cbreak trip`): until a reset, or for
    /// `period` and then the normal probe.
    pub(crate) fn trip(&mut self, period: Option<Millis>) -> Result<(), StoreError> {
        let now = self.store.now();
        self.update(|s, _| s.trip(period, now)).map(drop)
    }

    /// Closes the breaker and forgets its failures (`cbreak reset`).
    pub(crate) fn reset(&mut self) -> Result<(), StoreError> {
        let now = self.store.now();
        self.update(|s, _| s.reset(now)).map(drop)
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
