//! Where breakers' states are kept, behind one interface: [`Store`].
//!
//! Owns the contract every backend keeps (read, read-modify-write under
//! exclusion, list, forget, and the [`Event`]s they produce), what can go
//! wrong ([`StoreError`]) and breaker names (validation, and the default
//! derived from a command). Two backends: the state directory on this
//! machine, [`StateDir`], and a Redis or Valkey server shared by machines,
//! [`Fleet`] (`--store`). `app` is written against the
//! trait only; what the state means is `breaker`'s, the bytes of a record
//! `record`'s. No backend prints: what the user should hear comes back as
//! [`Event`]s, and `app` says them.

mod dir;
// Only the command line uses the shared store so far; the library's
// `Breaker` is on the state directory.
#[cfg(feature = "redis")]
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub mod fleet;

use std::any::Any;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::breaker::{BreakerState, Millis};

pub use dir::{StateDir, state_dir};
#[cfg(feature = "redis")]
pub use fleet::{Fleet, FleetConfig};

/// Where breakers' states are kept, shared by every process that uses it:
/// storage, and nothing else. Object-safe: the engine drives any store as
/// `&dyn Store`.
///
/// The contract, which every backend keeps:
///
/// - **One state machine, one codec.** A backend stores
///   [`BreakerState`]s and runs no policy of its own: every decision is
///   made by the engine's `decide`, which a backend runs inside
///   [`Store::attempt`]. A backend that keeps bytes keeps `record`'s
///   encoding of the state (the record body), so that every backend reads
///   every other's states the same way.
/// - **Conditional writes.** [`Store::attempt`] reads the breaker's state,
///   runs `decide` on it, and writes what `decide` left only if no other
///   process wrote in between: under a lock held across the attempt (the
///   state directory: `flock(2)`), or by comparing the version it read (a
///   server: compare-and-set). When another writer came first, nothing is
///   written and the attempt is an [`Attempt::Conflict`]; the engine tries
///   again on what is there now. So `decide` may run more than once, and
///   only the run of the attempt that is [`Attempt::Done`] counts. The
///   loop around attempts — trying again, pausing, giving up, setting
///   unusable values aside — is the engine's, written once for every
///   backend.
/// - **A slot per breaker.** [`Store::open`] makes a [`Slot`], which a
///   caller keeps between the attempts of one call (admission, then
///   outcome). A backend keeps in it what it likes: the state directory
///   the open, mapped record (and the kernel's probe lock while this
///   process holds the probe slot), a server the state it last saw.
///   Dropping the slot gives them back. Opening does no I/O; errors come
///   from the first attempt.
/// - **One clock.** [`Store::now`] is the time the store's states are
///   judged by: the wall clock of this machine for the state directory,
///   the server's for a store shared by machines. Time stamps written
///   into states come from it.
/// - **Liveness.** A probe slot whose owner is provably gone is freed
///   before `decide` runs (the state directory: the probe lock and
///   `/proc`). A backend that cannot prove it (another machine's process)
///   relies on the probe's lease alone.
/// - **Nothing printed, no words.** What the user should hear (a corrupt
///   record set aside, say) is queued as an [`Event`] and handed out by
///   [`Store::take_events`], never while a breaker is locked; errors are
///   [`StoreError`]s, data with a [`Location`], that the front ends word.
pub trait Store {
    /// The time, in milliseconds since the Unix epoch, by this store's
    /// clock.
    fn now(&self) -> Millis;

    /// A slot for the breaker `name` (a valid name, see
    /// [`validate_name`]), for [`Store::attempt`]. Does no I/O.
    fn open(&self, name: &str) -> Slot;

    /// One read–decide–write of the breaker in `slot`: reads its state
    /// (`fresh()` when the breaker is new), runs `decide` on it, and
    /// writes what it leaves if no one else wrote since the read.
    /// `decide` says whether it changed the state in a way worth writing
    /// (a new breaker is written whatever it says). See the contract.
    fn attempt(
        &self,
        slot: &mut Slot,
        fresh: &dyn Fn() -> BreakerState,
        decide: &mut dyn FnMut(&mut BreakerState) -> bool,
    ) -> Result<Attempt, StoreError>;

    /// Sets aside the unusable value an attempt found (see
    /// [`Attempt::Unusable`]) if it is still there, queuing an
    /// [`Event::SetAside`]; the next attempt starts a fresh breaker. A
    /// value that is not a breaker's at all is never touched (it is
    /// [`StoreError::Foreign`]).
    fn set_aside(
        &self,
        slot: &mut Slot,
        fresh: &dyn Fn() -> BreakerState,
        why: String,
    ) -> Result<(), StoreError>;

    /// How long conflicting writers may keep an update from landing before
    /// it gives up ([`StoreError::Contended`]).
    fn patience(&self) -> Duration;

    /// Where the breaker in `slot` is, for messages.
    fn locate(&self, slot: &Slot) -> Location;

    /// The breaker's state, changing nothing (a damaged one is
    /// [`StoreError::Corrupt`], a missing one [`StoreError::NotFound`]).
    fn read(&self, name: &str) -> Result<BreakerState, StoreError>;

    /// Whether something is stored under `name`, usable or not.
    fn exists(&self, name: &str) -> bool;

    /// Whether the store may be read at all, judged once: for the readers
    /// of every breaker (`status`, `metrics`, `list`), so that a refused
    /// store is one line, not one per breaker.
    fn readable(&self) -> Result<(), StoreError>;

    /// The breakers' names, sorted.
    fn names(&self) -> Result<Vec<String>, StoreError>;

    /// Deletes the breaker, after any update in progress on it.
    fn forget(&self, name: &str) -> Result<(), StoreError>;

    /// What happened since the last call that the user should hear about.
    fn take_events(&self) -> Vec<Event>;

    /// Where the breakers are, for messages: "no breakers in LOCATION".
    fn location(&self) -> String;
}

/// How one [`Store::attempt`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// `decide` ran on the current state and what it left is stored (or
    /// needed no write).
    Done,
    /// Another writer came first: nothing was written; try again.
    Conflict,
    /// What is stored is not a usable record (`why`): damaged, or a value
    /// of another type where a breaker's should be. `decide` did not run.
    Unusable(String),
}

/// One breaker of a store, opened for the attempts of a call: its name,
/// and whatever its store keeps between them.
pub struct Slot {
    name: String,
    kept: Option<Box<dyn Any + Send>>,
}

impl Slot {
    /// A slot for breaker `name`, keeping nothing yet.
    pub fn new(name: &str) -> Slot {
        Slot {
            name: name.to_string(),
            kept: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the store keeps here, if it is a `T`.
    pub fn kept<T: Any + Send>(&mut self) -> Option<&mut T> {
        self.kept.as_mut()?.downcast_mut()
    }

    /// What the store keeps here, made with `make` if it keeps no `T`.
    pub fn kept_or<T: Any + Send>(&mut self, make: impl FnOnce() -> T) -> &mut T {
        if !self.kept.as_ref().is_some_and(|k| k.is::<T>()) {
            self.kept = Some(Box::new(make()));
        }
        match self.kept.as_mut().and_then(|k| k.downcast_mut()) {
            Some(value) => value,
            // A `T` is there: it was just checked, or just put there.
            None => unreachable!("a Box<T> downcasts to T"),
        }
    }

    /// Drops what is kept here.
    pub fn clear(&mut self) {
        self.kept = None;
    }
}

/// A store lent out: what `app` hands an [`Engine`](crate::engine::Engine)
/// for one breaker while it keeps the store for the next.
impl<S: Store + ?Sized> Store for &S {
    fn now(&self) -> Millis {
        (**self).now()
    }

    fn open(&self, name: &str) -> Slot {
        (**self).open(name)
    }

    fn attempt(
        &self,
        slot: &mut Slot,
        fresh: &dyn Fn() -> BreakerState,
        decide: &mut dyn FnMut(&mut BreakerState) -> bool,
    ) -> Result<Attempt, StoreError> {
        (**self).attempt(slot, fresh, decide)
    }

    fn set_aside(
        &self,
        slot: &mut Slot,
        fresh: &dyn Fn() -> BreakerState,
        why: String,
    ) -> Result<(), StoreError> {
        (**self).set_aside(slot, fresh, why)
    }

    fn patience(&self) -> Duration {
        (**self).patience()
    }

    fn locate(&self, slot: &Slot) -> Location {
        (**self).locate(slot)
    }

    fn read(&self, name: &str) -> Result<BreakerState, StoreError> {
        (**self).read(name)
    }

    fn exists(&self, name: &str) -> bool {
        (**self).exists(name)
    }

    fn readable(&self) -> Result<(), StoreError> {
        (**self).readable()
    }

    fn names(&self) -> Result<Vec<String>, StoreError> {
        (**self).names()
    }

    fn forget(&self, name: &str) -> Result<(), StoreError> {
        (**self).forget(name)
    }

    fn take_events(&self) -> Vec<Event> {
        (**self).take_events()
    }

    fn location(&self) -> String {
        (**self).location()
    }
}

/// The longest breaker name.
pub const MAX_NAME: usize = 64;
/// Checks a breaker name: 1 to 64 of `[A-Za-z0-9._-]`, not starting with a
/// dot. Names are file names in the state directory, so this is also what
/// keeps them from escaping it.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid breaker name '{name}': use 1 to {MAX_NAME} characters from A-Z a-z 0-9 . _ -, not starting with '.'"
        ))
    }
}

/// The name of the breaker for a command run without `--name`: the
/// program's base name, a dash and 12 hex digits of a hash of the whole
/// argument vector, e.g. `curl-5f1c0e9a3b2d`.
pub fn default_name(argv: &[OsString]) -> String {
    let mut bytes = Vec::new();
    for arg in argv {
        // Length-prefixed, so that ["a b"] and ["a", "b"] differ.
        bytes.extend_from_slice(&(arg.len() as u64).to_le_bytes());
        bytes.extend_from_slice(arg.as_bytes());
    }
    let program = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut base: String = program
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .skip_while(|&c| c == '.')
        .take(MAX_NAME - 13)
        .collect();
    if base.is_empty() {
        base.push_str("cmd");
    }
    format!("{base}-{:012x}", crate::util::fnv1a(&bytes) >> 16)
}

/// Where something is in a store, for errors and events: a file or
/// directory of this machine, a key on a server, or a whole server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Path(PathBuf),
    /// `store` is the server's URL with its password replaced by `***`.
    Key {
        key: String,
        store: String,
    },
    Server(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path(path) => write!(f, "{}", path.display()),
            Location::Key { key, store } => write!(f, "{key} in {store}"),
            Location::Server(store) => write!(f, "{store}"),
        }
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::Path(path.to_path_buf())
    }
}

/// Why the store could not serve a breaker. Data only: how each front end
/// words it is `output`'s (it names the settings that would help, in that
/// front end's words).
#[derive(Debug)]
pub enum StoreError {
    /// No breaker of that name in the store at `store`.
    NotFound { name: String, store: Location },
    /// The breaker's value exists but is damaged (only reported by reads;
    /// writers set it aside and start afresh).
    Corrupt { at: Location, why: String },
    /// No state directory was given and none can be found.
    NoStateDir,
    /// The state directory is not safe to use.
    Refused { dir: PathBuf, why: Refusal },
    /// The record is owned or writable by someone who should not control
    /// it; the text says why.
    Untrusted { at: Location, why: String },
    /// Another process held the record's lock for longer than the wait.
    Busy { at: Location, waited: Duration },
    /// A file of the breaker's name that is not a cbreak record: never
    /// moved, changed or deleted.
    Foreign { at: Location, why: String },
    /// The value was written by a newer cbreak.
    Newer { at: Location, version: u64 },
    /// Other writers kept an update from landing for longer than the
    /// store's patience.
    Contended { at: Location, waited: Duration },
    /// The server of a shared store cannot be used, or its breaker kept
    /// changing under this process; the error says which (never with the
    /// password).
    #[cfg(feature = "redis")]
    Server(fleet::FleetError),
    Io {
        at: Location,
        what: &'static str,
        err: io::Error,
    },
}

/// Why a state directory is refused, as ssh's StrictModes would refuse
/// `~/.ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotADirectory,
    /// Writable by every user.
    WorldWritable { mode: u32 },
    /// A shared group directory of a group you are not in.
    NotInGroup { gid: u32, uid: u32 },
    /// Group-writable, but not a shared (setgid) directory.
    GroupWritable { gid: u32 },
    /// Another user's.
    Owner { owner: u32, uid: u32 },
    /// The path is a symlink of another user's.
    SymlinkOwner { owner: u32, uid: u32 },
    /// On a network file system, `kind`.
    NetworkFs { kind: String },
    /// Missing, and inside another user's directory.
    WontCreate { uid: u32, inside: PathBuf, owner: u32 },
    /// A symlink to nothing.
    DanglingSymlink { target: PathBuf },
}

impl StoreError {
    /// Whether this is a finding about the breaker (missing, damaged, or
    /// not a record: exit 1) rather than cbreak failing to do its work (exit 125).
    pub fn is_finding(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound { .. } | StoreError::Corrupt { .. } | StoreError::Foreign { .. }
        )
    }
}

impl std::error::Error for StoreError {}

/// Something the store did that the user should hear about. The store
/// never prints (it may hold a lock, and a full stderr pipe must not stall
/// every caller of a breaker): the front ends take these with
/// [`Store::take_events`] and say them (`output` words them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A value that was not a usable record (`why`) was kept as `aside`
    /// and a fresh breaker started in its place.
    SetAside {
        at: Location,
        aside: Location,
        why: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["a", "api-1", "A.b_c-d", &"x".repeat(64)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "../etc",
            "a/b",
            "sp ace",
            "é",
            &"x".repeat(65),
            "a~corrupt-1",
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(err.contains("A-Z a-z 0-9"), "{err}");
        }
    }

    #[test]
    fn default_name_is_stable_readable_and_sensitive_to_every_argument() {
        let argv = |args: &[&str]| args.iter().map(OsString::from).collect::<Vec<_>>();
        let a = default_name(&argv(&["/usr/bin/curl", "-fsS", "https://x"]));
        // Fixed by FNV-1a's definition: the same on every machine and run.
        assert_eq!(a, "curl-ba24b96721ea");
        assert_ne!(
            a,
            default_name(&argv(&["/usr/bin/curl", "-fsS", "https://y"]))
        );
        assert_ne!(
            default_name(&argv(&["sh", "-c", "a b"])),
            default_name(&argv(&["sh", "-c a", "b"]))
        );
        let odd = default_name(&argv(&["./.my tool!"]));
        assert!(odd.starts_with("my_tool_-"), "{odd}");
        assert!(validate_name(&odd).is_ok());
        assert!(validate_name(&default_name(&argv(&[&"x".repeat(300)]))).is_ok());
    }
}
