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

/// Where breakers' states are kept, shared by every process that uses it.
///
/// The contract, which every backend keeps:
///
/// - **One state machine, one codec.** A backend stores
///   [`BreakerState`]s and runs no policy of its own: every decision is
///   made by `breaker` inside [`Store::update`]'s closure. A backend that
///   keeps bytes keeps `record`'s encoding of the state (the record body),
///   so that every backend reads every other's states the same way.
/// - **Exclusion.** [`Store::update`] runs its closure on the current
///   state and stores what the closure leaves, as if no other process
///   touched that breaker in between. A backend may get there with a lock
///   (the state directory: `flock(2)`) or optimistically (read a version,
///   run the closure, store only if the version is unchanged, else read
///   and run it again); so the closure may run more than once, each time
///   on a freshly read state, and only its last run counts. It must
///   therefore have no effect outside the state it is given and its
///   result.
/// - **A handle per breaker.** [`Store::open`] makes a [`Store::Handle`],
///   which a caller keeps between the updates of one call (admission,
///   then outcome). A backend may keep resources in it: the state
///   directory keeps the record open and mapped, and holds the kernel's
///   probe lock in it while this process holds the probe slot. Dropping
///   the handle gives them back. Opening does no I/O; errors come from
///   the first update.
/// - **One clock.** [`Store::now`] is the time the store's states are
///   judged by: the wall clock of this machine for the state directory,
///   the server's for a store shared by machines. Time stamps written
///   into states come from it.
/// - **Liveness.** A probe slot whose owner is provably gone is freed
///   inside `update` (the state directory: the probe lock and `/proc`).
///   A backend that cannot prove it (another machine's process) relies
///   on the probe's lease alone.
/// - **Nothing printed.** What the user should hear (a corrupt record
///   moved aside, say) is queued as an [`Event`] and handed out by
///   [`Store::take_events`], never while a breaker is locked.
pub trait Store {
    /// One breaker, opened for updating; see [`Store::open`].
    type Handle;

    /// The time, in milliseconds since the Unix epoch, by this store's
    /// clock.
    fn now(&self) -> Millis;

    /// A handle on the breaker `name` (a valid name, see
    /// [`validate_name`]), for [`Store::update`]. Does no I/O.
    fn open(&self, name: &str) -> Self::Handle;

    /// Read-modify-write of the breaker's state under exclusion: `f` runs
    /// on the current state (made with `fresh` when the breaker is new, or
    /// its stored state is unusable: see [`Event::MovedAside`]), and what
    /// it leaves is stored. Returns `f`'s result from the run that counted.
    fn update<T>(
        &self,
        breaker: &mut Self::Handle,
        fresh: impl Fn() -> BreakerState,
        f: impl FnMut(&mut BreakerState) -> T,
    ) -> Result<T, StoreError>;

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

/// A store lent out: what `app` hands an [`Engine`](crate::engine::Engine)
/// for one breaker while it keeps the store for the next.
impl<S: Store> Store for &S {
    type Handle = S::Handle;

    fn now(&self) -> Millis {
        (**self).now()
    }

    fn open(&self, name: &str) -> Self::Handle {
        (**self).open(name)
    }

    fn update<T>(
        &self,
        breaker: &mut Self::Handle,
        fresh: impl Fn() -> BreakerState,
        f: impl FnMut(&mut BreakerState) -> T,
    ) -> Result<T, StoreError> {
        (**self).update(breaker, fresh, f)
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
