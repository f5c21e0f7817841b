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
use std::time::{Duration, Instant};

use crate::host::System;
use crate::store::{Attempt, Event, Slot, Store, StoreError};
use crate::util::Rng;

/// One breaker of a store, opened for the updates of its calls: the
/// store's handle on it (the state directory keeps the record open and
/// mapped there, and the kernel's probe lock while this process probes).
pub(crate) struct Engine<S: Store> {
    store: S,
    name: String,
    slot: Slot,
    host: System,
    policy: Policy,
}

impl<S: Store> Engine<S> {
    /// Opens breaker `name` (a valid name) of `store`, for calls under
    /// `policy` (a breaker made by these calls starts under it too). Does
    /// no I/O.
    pub(crate) fn new(store: S, name: &str, policy: Policy) -> Engine<S> {
        let slot = store.open(name);
        Engine {
            store,
            name: name.to_string(),
            slot,
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

    /// Read-modify-write of the state (see [`update`]: `f` may run more
    /// than once, on a freshly read state each time). A new breaker starts
    /// closed under this engine's policy, made by this process now; `f`
    /// decides on the store's clock, read once the state is at hand (a
    /// shared store's is the server's, just read with it).
    pub(crate) fn update<T>(
        &mut self,
        mut f: impl FnMut(&mut BreakerState, &mut System) -> T,
    ) -> Result<T, StoreError> {
        let (store, policy) = (&self.store, self.policy);
        let fresh = || BreakerState::new(store.now(), std::process::id(), policy);
        let host = &mut self.host;
        update(store, &mut self.slot, fresh, |s| {
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

/// The read–decide–write loop over any store, written once: `f` runs on
/// the breaker's current state (`fresh()` for a new one) and what it
/// leaves is written, if it changed more than the "updated at" stamp,
/// unless another writer came first — then `f` runs again on what that
/// writer left. Returns `f`'s result from the run that counted.
///
/// An unusable value is set aside (an event) and the breaker starts
/// afresh. Conflicts are tried again at once the first time (what was
/// seen was merely stale), then after a random pause that doubles up to
/// 32 ms, so that contending writers spread out; after the store's
/// [`Store::patience`] the update gives up, [`StoreError::Contended`].
pub fn update<T>(
    store: &dyn Store,
    slot: &mut Slot,
    fresh: impl Fn() -> BreakerState,
    mut f: impl FnMut(&mut BreakerState) -> T,
) -> Result<T, StoreError> {
    // Taken at the first attempt that did not land: an uncontended update
    // reads no clock of its own.
    let mut started: Option<Instant> = None;
    let mut conflicts = 0u32;
    let mut rng: Option<Rng> = None;
    loop {
        let mut out = None;
        let attempt = store.attempt(slot, &fresh, &mut |state| {
            let before = *state;
            out = Some(f(state));
            // The "updated at" stamp alone is not worth a write.
            BreakerState {
                updated_at: before.updated_at,
                ..*state
            } != before
        })?;
        match (attempt, out) {
            (Attempt::Done, Some(out)) => return Ok(out),
            // A writer that keeps putting unusable values there is
            // contention like any other: the same patience bounds it.
            (Attempt::Unusable(why), _) => store.set_aside(slot, &fresh, why)?,
            // A store that said done without deciding is taken at its
            // word that nothing was written: one more attempt.
            (Attempt::Done, None) | (Attempt::Conflict, _) => conflicts += 1,
        }
        let waited = started.get_or_insert_with(Instant::now).elapsed();
        if waited > store.patience() {
            return Err(StoreError::Contended {
                at: store.locate(slot),
                waited,
            });
        }
        if conflicts > 1 {
            let cap_us = 1000u64 << conflicts.min(5);
            let pause = rng.get_or_insert_with(Rng::seeded).next() % cap_us;
            std::thread::sleep(Duration::from_micros(pause));
        }
    }
}

#[cfg(test)]
mod tests {
    //! The loop against a third backend, one small module: a map in
    //! memory with versions, a compare-and-set, and knobs for a rival
    //! writer and a damaged value.

    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use super::*;
    use crate::store::Location;

    #[derive(Default)]
    struct Memory {
        values: RefCell<HashMap<String, Value>>,
        /// Writes of a rival that land between an attempt's read and its
        /// write, one per attempt, while this counts down.
        rivals: Cell<u32>,
        writes: Cell<u32>,
        patience: Duration,
        events: RefCell<Vec<Event>>,
    }

    // A test's few values: no need to box the state.
    #[allow(clippy::large_enum_variant)]
    #[derive(Clone)]
    enum Value {
        State(BreakerState, u64),
        Junk,
    }

    impl Store for Memory {
        fn now(&self) -> Millis {
            1_000
        }
        fn open(&self, name: &str) -> Slot {
            Slot::new(name)
        }
        fn attempt(
            &self,
            slot: &mut Slot,
            fresh: &dyn Fn() -> BreakerState,
            decide: &mut dyn FnMut(&mut BreakerState) -> bool,
        ) -> Result<Attempt, StoreError> {
            let found = self.values.borrow().get(slot.name()).cloned();
            let (mut state, version) = match found {
                None => (fresh(), None),
                Some(Value::State(s, v)) => (s, Some(v)),
                Some(Value::Junk) => return Ok(Attempt::Unusable("junk".into())),
            };
            let read = state;
            let changed = decide(&mut state);
            if self.rivals.get() > 0 {
                self.rivals.set(self.rivals.get() - 1);
                let mut rival = read;
                rival.counters.calls += 100;
                let v = version.unwrap_or(0) + 1;
                self.values
                    .borrow_mut()
                    .insert(slot.name().into(), Value::State(rival, v));
                return Ok(Attempt::Conflict);
            }
            if changed || version.is_none() {
                self.writes.set(self.writes.get() + 1);
                let v = version.unwrap_or(0) + 1;
                self.values
                    .borrow_mut()
                    .insert(slot.name().into(), Value::State(state, v));
            }
            Ok(Attempt::Done)
        }
        fn set_aside(
            &self,
            slot: &mut Slot,
            _fresh: &dyn Fn() -> BreakerState,
            why: String,
        ) -> Result<(), StoreError> {
            self.values.borrow_mut().remove(slot.name());
            self.events.borrow_mut().push(Event::SetAside {
                at: self.locate(slot),
                aside: self.locate(slot),
                why,
            });
            Ok(())
        }
        fn patience(&self) -> Duration {
            self.patience
        }
        fn locate(&self, slot: &Slot) -> Location {
            Location::Key {
                key: slot.name().into(),
                store: "memory".into(),
            }
        }
        fn read(&self, name: &str) -> Result<BreakerState, StoreError> {
            match self.values.borrow().get(name) {
                Some(Value::State(s, _)) => Ok(*s),
                _ => Err(StoreError::NotFound {
                    name: name.into(),
                    store: Location::Server("memory".into()),
                }),
            }
        }
        fn exists(&self, name: &str) -> bool {
            self.values.borrow().contains_key(name)
        }
        fn readable(&self) -> Result<(), StoreError> {
            Ok(())
        }
        fn names(&self) -> Result<Vec<String>, StoreError> {
            Ok(self.values.borrow().keys().cloned().collect())
        }
        fn forget(&self, name: &str) -> Result<(), StoreError> {
            self.values.borrow_mut().remove(name);
            Ok(())
        }
        fn take_events(&self) -> Vec<Event> {
            std::mem::take(&mut self.events.borrow_mut())
        }
        fn location(&self) -> String {
            "memory".into()
        }
    }

    fn memory() -> Memory {
        Memory {
            patience: Duration::from_secs(5),
            ..Memory::default()
        }
    }

    #[test]
    fn a_conflict_decides_again_on_what_the_rival_left() {
        let store = memory();
        store.rivals.set(2);
        let mut engine = Engine::new(&store, "b", Policy::default());
        let mut runs = 0;
        let calls = engine
            .update(|s, _| {
                runs += 1;
                s.counters.calls += 1;
                s.counters.calls
            })
            .unwrap();
        assert_eq!(runs, 3, "two conflicts, then the run that counted");
        assert_eq!(calls, 201, "the last run saw both rivals' writes");
        assert_eq!(store.read("b").unwrap().counters.calls, 201);
    }

    #[test]
    fn an_unchanged_state_is_not_written_but_a_new_one_is() {
        let store = memory();
        let mut engine = Engine::new(&store, "b", Policy::default());
        engine.prepare().unwrap();
        assert_eq!(store.writes.get(), 1, "a new breaker is written");
        engine.prepare().unwrap();
        engine
            .update(|s, _| s.updated_at += 5)
            .unwrap();
        assert_eq!(store.writes.get(), 1, "nothing but the stamp changed");
        engine.trip(None).unwrap();
        assert_eq!(store.writes.get(), 2);
    }

    #[test]
    fn an_unusable_value_is_set_aside_and_the_breaker_starts_afresh() {
        let store = memory();
        store.values.borrow_mut().insert("b".into(), Value::Junk);
        let (t, state) = Engine::new(&store, "b", Policy::default())
            .trip(None)
            .unwrap();
        assert!(t.is_some() && state.state == crate::breaker::State::ForcedOpen);
        assert!(matches!(
            store.take_events().as_slice(),
            [Event::SetAside { why, .. }] if why == "junk"
        ));
    }

    #[test]
    fn endless_conflicts_give_up_after_the_stores_patience() {
        let mut store = memory();
        store.patience = Duration::from_millis(50);
        store.rivals.set(u32::MAX);
        let err = Engine::new(&store, "b", Policy::default())
            .reset()
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Contended { waited, .. } if *waited > Duration::from_millis(50)),
            "{err:?}"
        );
    }

    #[test]
    fn the_store_interface_is_object_safe() {
        let store = memory();
        let dynamic: &dyn Store = &store;
        let mut slot = dynamic.open("b");
        let made = update(dynamic, &mut slot, BreakerState::default, |s| s.counters.calls).unwrap();
        assert_eq!(made, 0);
        assert!(dynamic.exists("b"));
    }
}
