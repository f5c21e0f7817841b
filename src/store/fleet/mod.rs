//! The store of breakers shared by many machines: a Redis or Valkey server
//! (`--store redis://…`), behind the [`Store`] trait.
//!
//! Owns the keys on the server and one optimistic attempt of the engine's
//! read–decide–write loop ([`Store::attempt`]), which gives the same
//! exclusion as the state directory's lock without locking anything while
//! a command runs:
//!
//! 1. read the breaker and the server's clock in one round trip
//!    ([`server::Server::read`]);
//! 2. the engine decides, with the one state machine (`breaker`), on the
//!    server's time;
//! 3. write back only if the breaker still holds the version that was read
//!    (a compare-and-set script on the body's sequence word); on a conflict
//!    the script answers with the current value, which the slot keeps for
//!    the engine's next attempt (its pauses and patience are the engine's).
//!
//! A write that changes nothing but the "updated at" stamp is not sent, and
//! a slot remembers the state it last saw, so that the outcome of a call
//! is one compare-and-set against what admission saw when nobody wrote in
//! between. An uncontended closed run costs one round trip before the
//! command and one after it.
//!
//! # Keys and values
//!
//! One key per breaker, `{prefix}{{name}}` (default prefix `cbreak:`): the
//! braces are Redis Cluster's hash tag, so a breaker and the key its
//! damaged value is kept aside under sit in one slot. The value is the
//! record's own encoding ([`crate::record::encode`], checksum and all)
//! behind two words, the record magic and format version: one codec for
//! both stores. A value that is not a cbreak record, or a damaged one, is
//! renamed to `{prefix}{{name}}~corrupt-MS` and replaced by a fresh
//! breaker, with an [`Event`]; one from a newer cbreak is left alone.
//!
//! # Time and identity
//!
//! Decisions use the server's clock (`TIME`), so machines with skewed
//! clocks agree; [`Fleet::now`] is the server's time as last read plus the
//! time elapsed here since. A probe slot carries its owner's host identity
//! (`host`): on the same machine and pid namespace, an owner that is gone
//! is recognised at once; on another, it cannot be, and the lease alone
//! decides.
//!
//! What the state means is `breaker`'s; what the bytes mean is `record`'s;
//! the conversation with the server is [`server`]'s; URLs are [`url`]'s.
//! `app` reaches all of it through [`Store`] only.

pub mod server;
pub mod url;

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use super::{Attempt, Event, Location, Slot, Store, StoreError};
use crate::breaker::{BreakerState, Millis};
use crate::record::{self, B_SEQUENCE, MAGIC, PLAUSIBLE_VERSIONS, USED_WORDS, VERSION};
use server::{Cas, Problem, Read, Server, Stored};
pub use url::StoreUrl;

/// The key prefix unless `--store-prefix` says otherwise.
pub const DEFAULT_PREFIX: &str = "cbreak:";
/// How long to wait for the server to connect or answer, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long an update keeps retrying on conflicts before giving up.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(5);

/// The words before the body in a stored value: magic and format version.
const HEADER_WORDS: usize = 2;
/// A stored value's length: the header, then the body's used words.
pub const VALUE_LEN: usize = (HEADER_WORDS + USED_WORDS) * 8;
/// The body word that holds the store's sequence number (the record's own,
/// covered by the checksum): the version that the compare-and-set
/// compares.
const SEQUENCE_WORD: usize = B_SEQUENCE;
/// Where the sequence number's 8 bytes sit in a stored value.
const SEQUENCE_AT: usize = (HEADER_WORDS + SEQUENCE_WORD) * 8;

/// How to reach the server and lay out its keys.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub url: StoreUrl,
    pub prefix: String,
    /// Connect and command timeout.
    pub timeout: Duration,
    /// Breakers not written for this long are deleted by the server.
    pub idle_expiry: Option<Duration>,
    /// How long an update retries on conflicts.
    pub retry_for: Duration,
}

impl FleetConfig {
    pub fn new(url: StoreUrl) -> FleetConfig {
        FleetConfig {
            url,
            prefix: DEFAULT_PREFIX.to_string(),
            timeout: DEFAULT_TIMEOUT,
            idle_expiry: None,
            retry_for: DEFAULT_RETRY_FOR,
        }
    }
}

/// Why the fleet store could not serve a breaker. `store` is the URL with
/// its password replaced by `***`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FleetError {
    /// The server cannot be used at all; `problem` says why.
    Server {
        store: String,
        problem: Problem,
    },
    NotFound {
        name: String,
        store: String,
    },
    /// Only reads report this; updates set the value aside.
    Corrupt {
        key: String,
        store: String,
        why: String,
    },
    Newer {
        key: String,
        store: String,
        version: u64,
    },
}

impl std::error::Error for FleetError {}

impl FleetError {
    /// Whether this is a finding about the breaker (missing or damaged)
    /// rather than the store failing (for the tests: `app` judges the
    /// [`StoreError`] it becomes).
    #[cfg(feature = "testing")]
    pub fn is_finding(&self) -> bool {
        matches!(
            self,
            FleetError::NotFound { .. } | FleetError::Corrupt { .. }
        )
    }
}


/// What a slot of this store keeps between attempts: the breaker's key,
/// and what this process last found there — the state it read or wrote
/// (the next attempt's first guess, right whenever no one wrote since),
/// or the current value a conflicting compare-and-set answered with.
struct Kept {
    key: String,
    found: Option<Found>,
}

/// The breakers on one server.
pub struct Fleet {
    config: FleetConfig,
    server: RefCell<Option<Server>>,
    events: RefCell<Vec<Event>>,
    /// The server's time at the last answer, and when that came here.
    clock: Cell<Option<(Millis, Instant)>>,
    rng: Cell<Option<crate::util::Rng>>,
}

/// What a read found at a key, judged. Short-lived and moved rarely: the
/// state is kept inline.
#[allow(clippy::large_enum_variant)]
enum Found {
    Absent,
    Valid(BreakerState, u64),
    /// Not usable: why, and what was there (for the conditional rename).
    Unusable(String, Stored),
    Newer(u64),
}

impl Fleet {
    /// A store on the server `config` names. Connects at the first use.
    pub fn new(config: FleetConfig) -> Fleet {
        Fleet {
            config,
            server: RefCell::new(None),
            events: RefCell::new(Vec::new()),
            clock: Cell::new(None),
            rng: Cell::new(None),
        }
    }

    /// The store, for messages: its URL, password hidden, and the prefix
    /// when it is not the default.
    pub fn location(&self) -> String {
        if self.config.prefix == DEFAULT_PREFIX {
            self.config.url.to_string()
        } else {
            format!("{} (prefix '{}')", self.config.url, self.config.prefix)
        }
    }

    /// The key of breaker `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{{{name}}}", self.config.prefix)
    }

    /// The server's time: as last read, plus the time elapsed here since.
    /// Before the first answer, this machine's clock.
    pub fn now(&self) -> Millis {
        match self.clock.get() {
            Some((server, at)) => {
                server.saturating_add(u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX))
            }
            None => crate::host::now_ms(),
        }
    }


    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.events.borrow_mut())
    }

    fn error(&self, problem: Problem) -> FleetError {
        // A connection that failed is not used again.
        *self.server.borrow_mut() = None;
        FleetError::Server {
            store: self.location(),
            problem,
        }
    }

    /// Runs `op` on the connection, connecting first if there is none. A
    /// connection kept from an earlier command that turns out broken (the
    /// server restarted, or closed it while the command ran) is replaced
    /// and `op` tried once more on the new one.
    fn with<T>(
        &self,
        mut op: impl FnMut(&mut Server) -> Result<T, redis::RedisError>,
    ) -> Result<T, FleetError> {
        let started = Instant::now();
        let mut slot = self.server.borrow_mut();
        let mut reused = slot.is_some();
        let mut replaced = false;
        let last = loop {
            let server = match slot.as_mut() {
                Some(s) => s,
                None => match Server::connect(&self.config.url, self.config.timeout) {
                    Ok(s) => slot.insert(s),
                    // A signal cut a wait short (reads with a timeout are
                    // not restarted): try again while the timeout lasts.
                    Err(e)
                        if server::interrupted(&e) && started.elapsed() < self.config.timeout =>
                    {
                        continue;
                    }
                    Err(e) => break e,
                },
            };
            match op(server) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    *slot = None;
                    let broken = reused && !replaced && e.is_io_error() && !e.is_timeout();
                    if server::interrupted(&e) && started.elapsed() < self.config.timeout {
                        continue;
                    }
                    if !broken {
                        break e;
                    }
                    replaced = true;
                    reused = false;
                }
            }
        };
        drop(slot);
        Err(self.error(server::classify(
            &last,
            &self.config.url,
            self.config.timeout,
        )))
    }

    fn sync_clock(&self, server_now: Millis) {
        self.clock.set(Some((server_now, Instant::now())));
    }

    /// A random number: each write's new version, and the retry pauses.
    /// Seeded as `util::Rng` is, so that two writers (even threads of one
    /// process) never draw the same versions.
    fn random(&self) -> u64 {
        let mut rng = self.rng.get().unwrap_or_else(crate::util::Rng::seeded);
        let x = rng.next();
        self.rng.set(Some(rng));
        x
    }

    fn judge(&self, stored: Stored) -> Found {
        match stored {
            Stored::Absent => Found::Absent,
            Stored::OtherType(kind) => {
                let why = format!("a {kind}, not a string");
                Found::Unusable(why, Stored::OtherType(kind))
            }
            Stored::Bytes(bytes) => match decode_value(&bytes) {
                Ok((state, sequence)) => Found::Valid(state, sequence),
                Err(Undecodable::Newer(v)) => Found::Newer(v),
                Err(Undecodable::Corrupt(why)) => Found::Unusable(why, Stored::Bytes(bytes)),
            },
        }
    }

    /// What the slot keeps, made on first use.
    fn kept<'s>(&self, slot: &'s mut Slot) -> &'s mut Kept {
        let key = self.key(slot.name());
        slot.kept_or(|| Kept { key, found: None })
    }

    /// What is at `key` now, read with the server's clock.
    fn fetch(&self, key: &str) -> Result<Found, FleetError> {
        let read = self.with(|s| s.read(key))?;
        self.sync_clock(read.now);
        Ok(self.judge(read.stored))
    }

    /// One optimistic read–decide–write (see [`Store::attempt`]): `decide`
    /// runs on the current state (`fresh()` when there is none), and what
    /// it leaves is written by a compare-and-set on the version read. The
    /// first guess is what the slot saw last, so that an uncontended update
    /// costs one round trip; a conflict keeps what the server answered with
    /// for the next attempt.
    fn try_once(
        &self,
        slot: &mut Slot,
        fresh: &dyn Fn() -> BreakerState,
        decide: &mut dyn FnMut(&mut BreakerState) -> bool,
    ) -> Result<Attempt, FleetError> {
        let kept = self.kept(slot);
        let found = match kept.found.take() {
            Some(found) => found,
            None => self.fetch(&kept.key)?,
        };
        let (mut state, expected) = match found {
            Found::Absent => (fresh(), None),
            Found::Valid(state, sequence) => (state, Some(sequence)),
            Found::Newer(version) => {
                return Err(FleetError::Newer {
                    key: kept.key.clone(),
                    store: self.location(),
                    version,
                });
            }
            // Kept for `set_aside`, which renames it only if it is still
            // the value found.
            Found::Unusable(why, stored) => {
                kept.found = Some(Found::Unusable(why.clone(), stored));
                return Ok(Attempt::Unusable(why));
            }
        };
        let before = state;
        let changed = decide(&mut state);
        if let Some(sequence) = expected
            && !changed
        {
            kept.found = Some(Found::Valid(before, sequence));
            return Ok(Attempt::Done);
        }
        // Every write draws a new random version, never the last one plus
        // one: two writers that decide the same state from the same version
        // still write different values, so that a value equal to ours is
        // proof that ours was written; and a slot that remembers a breaker
        // since forgotten and made again never matches the new one.
        let sequence = loop {
            let s = self.random();
            if Some(s) != expected {
                break s;
            }
        };
        let value = encode_value(&state, sequence);
        let idle = self.config.idle_expiry.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        let cas = self.with(|s| {
            s.cas(
                &kept.key,
                expected.map(u64::to_le_bytes),
                SEQUENCE_AT,
                &value,
                idle,
            )
        })?;
        match cas {
            Cas::Done(now) => {
                self.sync_clock(now);
                kept.found = Some(Found::Valid(state, sequence));
                Ok(Attempt::Done)
            }
            // The write went through but its answer was lost (the
            // connection broke and `with` sent it again): done.
            Cas::Conflict(Read {
                now,
                stored: Stored::Bytes(there),
            }) if there == value => {
                self.sync_clock(now);
                kept.found = Some(Found::Valid(state, sequence));
                Ok(Attempt::Done)
            }
            Cas::Conflict(Read { now, stored }) => {
                self.sync_clock(now);
                kept.found = Some(self.judge(stored));
                Ok(Attempt::Conflict)
            }
        }
    }

    /// Renames the unusable value the last attempt found to
    /// `KEY~corrupt-MS`, if it is still the same value, and forgets what
    /// the slot saw, so that the next attempt reads afresh.
    fn set_aside_found(&self, slot: &mut Slot, why: String) -> Result<(), FleetError> {
        let kept = self.kept(slot);
        if let Some(Found::Unusable(_, stored)) = kept.found.take() {
            let aside = format!("{}~corrupt-{}", kept.key, self.now());
            if self.with(|s| s.set_aside(&kept.key, &aside, &stored))? {
                let store = self.location();
                self.events.borrow_mut().push(Event::SetAside {
                    at: Location::Key {
                        key: kept.key.clone(),
                        store: store.clone(),
                    },
                    aside: Location::Key { key: aside, store },
                    why,
                });
            }
        }
        Ok(())
    }

    /// The breaker's state, changing nothing.
    pub fn read(&self, name: &str) -> Result<BreakerState, FleetError> {
        let key = self.key(name);
        let read = self.with(|s| s.read(&key))?;
        self.sync_clock(read.now);
        match self.judge(read.stored) {
            Found::Valid(state, _) => Ok(state),
            Found::Absent => Err(FleetError::NotFound {
                name: name.to_string(),
                store: self.location(),
            }),
            Found::Unusable(why, _) => Err(FleetError::Corrupt {
                key,
                store: self.location(),
                why,
            }),
            Found::Newer(version) => Err(FleetError::Newer {
                key,
                store: self.location(),
                version,
            }),
        }
    }

    /// Whether something is stored under breaker `name`, usable or not.
    pub fn exists(&self, name: &str) -> Result<bool, FleetError> {
        let key = self.key(name);
        self.with(|s| s.exists(&key))
    }

    /// Whether the server answers (and lets this user in).
    pub fn ping(&self) -> Result<(), FleetError> {
        self.with(Server::ping)
    }

    /// The names of the breakers under the prefix, sorted, by SCAN.
    pub fn names(&self) -> Result<Vec<String>, FleetError> {
        let pattern = format!("{}{{*}}", glob_escape(&self.config.prefix));
        let keys = self.with(|s| s.scan(&pattern))?;
        let mut names: Vec<String> = keys
            .iter()
            .filter_map(|k| {
                let name = k
                    .strip_prefix(&self.config.prefix)?
                    .strip_prefix('{')?
                    .strip_suffix('}')?;
                super::validate_name(name).ok().map(|()| name.to_string())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Deletes breaker `name`.
    pub fn forget(&self, name: &str) -> Result<(), FleetError> {
        let key = self.key(name);
        if self.with(|s| s.delete(&key))? {
            Ok(())
        } else {
            Err(FleetError::NotFound {
                name: name.to_string(),
                store: self.location(),
            })
        }
    }
}

/// `text` with SCAN's glob characters escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store for Fleet {
    fn now(&self) -> Millis {
        Fleet::now(self)
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
        self.try_once(slot, fresh, decide)
            .map_err(StoreError::from)
    }

    fn set_aside(
        &self,
        slot: &mut Slot,
        _fresh: &dyn Fn() -> BreakerState,
        why: String,
    ) -> Result<(), StoreError> {
        self.set_aside_found(slot, why).map_err(StoreError::from)
    }

    fn patience(&self) -> Duration {
        self.config.retry_for
    }

    fn locate(&self, slot: &Slot) -> Location {
        Location::Key {
            key: self.key(slot.name()),
            store: self.location(),
        }
    }

    fn read(&self, name: &str) -> Result<BreakerState, StoreError> {
        Fleet::read(self, name).map_err(StoreError::from)
    }

    /// A server that cannot say is taken to have it: the change that asks
    /// then fails with the server's own error, not "no such breaker".
    fn exists(&self, name: &str) -> bool {
        Fleet::exists(self, name).unwrap_or(true)
    }

    fn readable(&self) -> Result<(), StoreError> {
        self.ping().map_err(StoreError::from)
    }

    fn names(&self) -> Result<Vec<String>, StoreError> {
        Fleet::names(self).map_err(StoreError::from)
    }

    fn forget(&self, name: &str) -> Result<(), StoreError> {
        Fleet::forget(self, name).map_err(StoreError::from)
    }

    fn take_events(&self) -> Vec<Event> {
        Fleet::take_events(self)
    }

    fn location(&self) -> String {
        Fleet::location(self)
    }
}

impl From<FleetError> for StoreError {
    /// A missing, damaged or newer breaker is what it is in the state
    /// directory too (named by its key and store instead of a path); the
    /// server failing is the server's own error.
    fn from(e: FleetError) -> StoreError {
        match e {
            FleetError::NotFound { name, store } => StoreError::NotFound {
                name,
                store: Location::Server(store),
            },
            FleetError::Corrupt { key, store, why } => StoreError::Corrupt {
                at: Location::Key { key, store },
                why,
            },
            FleetError::Newer {
                key,
                store,
                version,
            } => StoreError::Newer {
                at: Location::Key { key, store },
                version,
            },
            e @ FleetError::Server { .. } => StoreError::Server(e),
        }
    }
}

/// Why a stored value cannot be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Undecodable {
    Corrupt(String),
    Newer(u64),
}

/// The stored value for `state` with sequence number `sequence`: the
/// record magic and version, then the record body.
pub fn encode_value(state: &BreakerState, sequence: u64) -> Vec<u8> {
    let mut body = record::encode(state);
    body[SEQUENCE_WORD] = sequence;
    record::seal(&mut body);
    let mut out = Vec::with_capacity(VALUE_LEN);
    for w in [MAGIC, VERSION].iter().chain(body.iter()) {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

/// The state and sequence number in a stored value.
pub fn decode_value(bytes: &[u8]) -> Result<(BreakerState, u64), Undecodable> {
    let word = |i: usize| {
        bytes
            .get(i * 8..i * 8 + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    if word(0) != Some(MAGIC) {
        return Err(Undecodable::Corrupt("not a cbreak record".into()));
    }
    match word(1) {
        Some(v) if v > VERSION && v <= PLAUSIBLE_VERSIONS => return Err(Undecodable::Newer(v)),
        Some(VERSION) => {}
        Some(v) => return Err(Undecodable::Corrupt(format!("format version {v}"))),
        None => return Err(Undecodable::Corrupt("truncated".into())),
    }
    if bytes.len() != VALUE_LEN {
        return Err(Undecodable::Corrupt(format!(
            "{} bytes, a record is {VALUE_LEN}",
            bytes.len()
        )));
    }
    let mut body = [0u64; USED_WORDS];
    for (i, w) in body.iter_mut().enumerate() {
        *w = word(HEADER_WORDS + i).unwrap_or(0);
    }
    let state = record::decode(&body).map_err(Undecodable::Corrupt)?;
    Ok((state, body[SEQUENCE_WORD]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::Policy;

    #[test]
    fn a_value_round_trips_and_its_version_sits_where_the_script_looks() {
        let mut s = BreakerState::new(1_700_000_000_000, 42, Policy::default());
        s.counters.calls = 3;
        s.counters.successes = 3;
        let v = encode_value(&s, 0x0102_0304_0506_0708);
        assert_eq!(v.len(), VALUE_LEN);
        assert_eq!(
            v[SEQUENCE_AT..SEQUENCE_AT + 8],
            0x0102_0304_0506_0708u64.to_le_bytes()
        );
        assert_eq!(decode_value(&v), Ok((s, 0x0102_0304_0506_0708)));
    }

    #[test]
    fn foreign_damaged_and_newer_values_are_told_apart() {
        let s = BreakerState::new(1, 1, Policy::default());
        assert!(matches!(
            decode_value(b"hello"),
            Err(Undecodable::Corrupt(w)) if w == "not a cbreak record"
        ));
        let mut v = encode_value(&s, 1);
        v[SEQUENCE_AT - 40] ^= 1;
        assert!(matches!(decode_value(&v), Err(Undecodable::Corrupt(w)) if w.contains("checksum")));
        let mut v = encode_value(&s, 1);
        v[8..16].copy_from_slice(&9u64.to_le_bytes());
        assert_eq!(decode_value(&v), Err(Undecodable::Newer(9)));
        let mut v = encode_value(&s, 1);
        v.push(0);
        assert!(matches!(decode_value(&v), Err(Undecodable::Corrupt(_))));
    }

    #[test]
    fn keys_carry_a_hash_tag_and_globs_in_the_prefix_are_escaped() {
        let mut c = FleetConfig::new(StoreUrl::parse("redis://h").unwrap());
        c.prefix = "team[a]*:".into();
        let fleet = Fleet::new(c);
        assert_eq!(fleet.key("api"), "team[a]*:{api}");
        assert_eq!(glob_escape("team[a]*:"), "team\\[a\\]\\*:");
    }
}
