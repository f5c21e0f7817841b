//! The state directory: where records live, what they are called, and what
//! happens to a record that cannot be used.
//!
//! Owns breaker names (validation and the default derived from a command),
//! the directory's creation and listing, and the protocol around a record:
//! open, lock, check, read-modify-write, and moving a corrupt record aside so
//! that the evidence is kept and a fresh one takes its place. It does not
//! own the bytes of a record (`record`) nor what the state means (`breaker`),
//! and it never prints: what the user should hear comes back as [`Event`]s.

use std::cell::{OnceCell, RefCell};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::breaker::BreakerState;
use crate::record::{Access, DEFAULT_LOCK_WAIT, Guard, Record, RecordError};

/// The longest breaker name.
pub const MAX_NAME: usize = 64;
/// How often a record that keeps moving under us is opened again.
const ATTEMPTS: usize = 8;

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

/// 64-bit FNV-1a: small, and its output is fixed by its definition (unlike
/// std's `DefaultHasher`), so names derived from it are stable everywhere.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
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
    format!("{base}-{:012x}", fnv1a(&bytes) >> 16)
}

/// Why the store could not serve a breaker.
#[derive(Debug)]
pub enum StoreError {
    /// No record of that name.
    NotFound { name: String, dir: PathBuf },
    /// The record exists but is damaged (only reported by reads; writers
    /// move it aside and start afresh).
    Corrupt { path: PathBuf, why: String },
    /// The state directory is not safe to write to; the text says why.
    Refused { dir: PathBuf, why: String },
    /// The record is owned or writable by someone who should not control
    /// it; the text says why.
    Untrusted { path: PathBuf, why: String },
    /// Another process held the record's lock for longer than the wait.
    Busy { path: PathBuf, waited: Duration },
    /// A file of the breaker's name that is not a cbreak record: never
    /// moved, changed or deleted.
    Foreign { path: PathBuf, why: String },
    /// The record was written by a newer cbreak.
    Newer { path: PathBuf, version: u64 },
    Io {
        path: PathBuf,
        what: &'static str,
        err: io::Error,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound { name, dir } => write!(
                f,
                "no breaker named '{name}' in {} (run 'cbreak list' to see the breakers there)",
                dir.display()
            ),
            StoreError::Corrupt { path, why } => write!(
                f,
                "record {} is corrupt ({why}); the next 'cbreak run' moves it aside and starts afresh",
                path.display()
            ),
            StoreError::Refused { dir, why } => {
                write!(f, "refusing the state directory {}: {why}", dir.display())
            }
            StoreError::Untrusted { path, why } => write!(
                f,
                "refusing the record {}: {why}; delete it if you do not know where it came from",
                path.display()
            ),
            StoreError::Busy { path, waited } => write!(
                f,
                "another process has held the lock on {} for over {}; if no cbreak is working on it, find the holder with 'fuser -v {}' (--lock-timeout waits longer)",
                path.display(),
                crate::output::span(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)),
                path.display()
            ),
            StoreError::Foreign { path, why } => write!(
                f,
                "{} is not a cbreak record ({why}); cbreak leaves it alone: move it away, or use another state directory (--state-dir)",
                path.display()
            ),
            StoreError::Newer { path, version } => write!(
                f,
                "record {} has format version {version}, newer than this cbreak understands; upgrade cbreak",
                path.display()
            ),
            StoreError::Io { path, what, err } => {
                let hint = match err.raw_os_error() {
                    Some(libc::ELOOP) => {
                        " (it is a symlink; cbreak never follows one there)".to_string()
                    }
                    Some(libc::ENOSPC) => " (ENOSPC: free some space on that disk)".to_string(),
                    _ => String::new(),
                };
                write!(f, "cannot {what} {}: {err}{hint}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {}

/// Something the store did that the user should hear about. The store
/// never prints (it may hold a lock, and a full stderr pipe must not stall
/// every caller of a breaker): `app` takes these with
/// [`Store::take_events`] and says them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A corrupt record was kept as `aside` and a fresh breaker started.
    MovedAside {
        path: PathBuf,
        aside: PathBuf,
        why: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::MovedAside { path, aside, why } => write!(
                f,
                "record {} was corrupt ({why}); kept it as {} and started a fresh breaker",
                path.display(),
                aside.display()
            ),
        }
    }
}

/// A state directory.
pub struct Store {
    dir: PathBuf,
    allow_network_fs: bool,
    lock_wait: Duration,
    /// The directory's verdict, once judged: it does not change under a
    /// process in any way cbreak has to follow.
    access: OnceCell<Access>,
    events: RefCell<Vec<Event>>,
}

impl Store {
    pub fn new(dir: PathBuf, allow_network_fs: bool) -> Store {
        Store {
            dir,
            allow_network_fs,
            lock_wait: DEFAULT_LOCK_WAIT,
            access: OnceCell::new(),
            events: RefCell::new(Vec::new()),
        }
    }

    /// How long to wait for another process's lock on a record (default
    /// [`DEFAULT_LOCK_WAIT`]) before failing with [`StoreError::Busy`].
    pub fn with_lock_wait(mut self, wait: Duration) -> Store {
        self.lock_wait = wait;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// What happened since the last call that the user should hear about.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.borrow_mut())
    }

    fn io(&self, path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |err| StoreError::Io { path, what, err }
    }

    /// Creates the state directory (mode 0700) if it is missing.
    pub fn create_dir(&self) -> Result<(), StoreError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(self.io(&self.dir, "create the state directory"))
    }

    /// Checks the directory before anything is written there, creating it
    /// if it is missing, and says who may own its records.
    pub fn prepare(&self) -> Result<Access, StoreError> {
        if let Some(access) = self.access.get() {
            return Ok(*access);
        }
        let meta = match std::fs::metadata(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.may_create()?;
                self.create_dir()?;
                std::fs::metadata(&self.dir)
            }
            other => other,
        }
        .map_err(self.io(&self.dir, "use the state directory"))?;
        self.judge(&meta)
    }

    /// A missing state directory is made only inside a directory of this
    /// user's (or root's): root run with another user's HOME (`sudo -E`)
    /// must not leave root-owned directories in that user's home.
    fn may_create(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        let me = crate::host::euid();
        let mut ancestor = self.dir.as_path();
        while let Some(parent) = ancestor.parent() {
            ancestor = parent;
            let Ok(meta) = std::fs::metadata(ancestor) else {
                continue;
            };
            if meta.uid() != me && meta.uid() != 0 {
                return Err(StoreError::Refused {
                    dir: self.dir.clone(),
                    why: format!(
                        "it does not exist, and cbreak (uid {me}) will not create it inside {}, which belongs to uid {}; give --state-dir (e.g. a directory of your own)",
                        ancestor.display(),
                        meta.uid()
                    ),
                });
            }
            return Ok(());
        }
        Ok(())
    }

    /// Whether the directory may be read from at all, judged once: for the
    /// readers of every breaker (`status`, `metrics`, `list`), so that a
    /// refused directory is one line, not one per file.
    pub fn readable(&self) -> Result<(), StoreError> {
        self.access_for_reading().map(|_| ())
    }

    /// Like [`Store::prepare`] for a reader: `None` when the directory does
    /// not exist (it has no breakers), and nothing is created.
    fn access_for_reading(&self) -> Result<Option<Access>, StoreError> {
        if let Some(access) = self.access.get() {
            return Ok(Some(*access));
        }
        match std::fs::metadata(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&self.dir, "use the state directory")(e)),
            Ok(meta) => self.judge(&meta).map(Some),
        }
    }

    /// The directory's verdict, as ssh's StrictModes judges `~/.ssh`.
    ///
    /// A directory writable by every user is refused, sticky or not (in a
    /// sticky one another user can still create a record before you and
    /// control it). A setgid, group-writable directory is *shared* when you
    /// are a member of its group (root counts as one): its records must
    /// belong to that group and are created 0660. Any other directory must
    /// be yours (or root's) and its records yours, created 0600. Network
    /// file systems are refused unless allowed, because `flock(2)`, the
    /// probe lock and shared mappings are not coherent there.
    fn judge(&self, meta: &std::fs::Metadata) -> Result<Access, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let refuse = |why: String| StoreError::Refused {
            dir: self.dir.clone(),
            why,
        };
        if !meta.is_dir() {
            return Err(refuse("it is not a directory".into()));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o002 != 0 {
            return Err(refuse(format!(
                "it is writable by every user (mode {mode:o}), so another user could create or replace your breakers; use a directory of your own (e.g. --state-dir ~/.local/state/cbreak) or 'chmod o-w' it"
            )));
        }
        let me = crate::host::euid();
        let group_writable = mode & 0o020 != 0;
        let group_dir = mode & 0o2000 != 0 && group_writable;
        // Root too must really be a member: a directory another user made
        // setgid and group-writable is theirs to control.
        let shared = group_dir && crate::host::in_group(meta.gid());
        if group_dir && !shared {
            return Err(refuse(format!(
                "it is shared by group gid {}, and you (uid {me}) are not a member",
                meta.gid()
            )));
        }
        if group_writable && !shared {
            return Err(refuse(format!(
                "it is writable by its group (gid {}) but is not a shared group directory; 'chmod g-w' it, or make it one with 'chmod 2770'",
                meta.gid()
            )));
        }
        if meta.uid() != me && meta.uid() != 0 && !shared {
            return Err(refuse(format!(
                "it belongs to uid {}, not to you (uid {me}); a directory shared by a group must be setgid and group-writable (chmod 2770)",
                meta.uid()
            )));
        }
        // The path itself may be a symlink another user planted (in /tmp,
        // say) to point cbreak at a directory of their choosing.
        if let Ok(link) = std::fs::symlink_metadata(&self.dir)
            && link.file_type().is_symlink()
            && link.uid() != me
            && link.uid() != 0
        {
            return Err(refuse(format!(
                "it is a symlink that belongs to uid {}, not to you (uid {me})",
                link.uid()
            )));
        }
        if !self.allow_network_fs {
            let kind = crate::host::shared_fs(&self.dir)
                .map_err(self.io(&self.dir, "inspect the state directory"))?;
            if let Some(kind) = kind {
                return Err(refuse(format!(
                    "it is on {kind}, where file locks and shared memory maps may not be coherent between machines; use a local directory, or --allow-network-fs if only this machine uses it"
                )));
            }
        }
        let access = Access {
            mode: if shared { 0o660 } else { 0o600 },
            uid: me,
            group: shared.then(|| meta.gid()),
            lock_wait: self.lock_wait,
        };
        let _ = self.access.set(access);
        Ok(access)
    }

    /// Opens (creating if needed) the record of `name` for writing.
    fn open_rw(&self, path: &Path) -> Result<Record, StoreError> {
        let access = self.prepare()?;
        Record::open_rw(path, access).map_err(self.io(path, "open"))
    }

    /// Read-modify-write of `name`'s state under its exclusive lock.
    ///
    /// `slot` keeps the open record between calls (so that `run` opens and
    /// maps it once, and keeps the probe lock while it probes); `fresh`
    /// makes the state of a new record. A corrupt record is moved aside
    /// (an [`Event`]) and replaced by a fresh one.
    pub fn update<T>(
        &self,
        slot: &mut Option<Record>,
        name: &str,
        fresh: impl Fn() -> BreakerState,
        f: impl FnOnce(&mut BreakerState) -> T,
    ) -> Result<T, StoreError> {
        let path = self.path(name);
        for _ in 0..ATTEMPTS {
            if slot.is_none() {
                *slot = Some(self.open_rw(&path)?);
            }
            let Some(record) = slot.as_ref() else {
                continue;
            };
            let guard = record.lock_raw().map_err(|e| record_error(&path, e))?;
            match guard.check(&fresh).and_then(|()| guard.load()) {
                Ok(mut state) => {
                    guard.claim_probe(&mut state, crate::host::now_ms());
                    let before = state.probe;
                    let out = f(&mut state);
                    guard.settle_probe(before, &mut state);
                    guard.store(&state).map_err(|e| record_error(&path, e))?;
                    return Ok(out);
                }
                // Still under the lock: nobody else is looking at it.
                Err(RecordError::Corrupt(why)) => self.move_aside(record, &guard, &path, why)?,
                // Retired but never moved: left by an interrupted move.
                Err(RecordError::Moved) if record.still_at_path() => self.move_aside(
                    record,
                    &guard,
                    &path,
                    "left retired at its path by an interrupted move".into(),
                )?,
                Err(RecordError::Moved) => {}
                Err(e) => return Err(record_error(&path, e)),
            }
            drop(guard);
            *slot = None;
        }
        Err(StoreError::Io {
            path,
            what: "lock",
            err: io::Error::other("the record kept being replaced while cbreak tried to lock it"),
        })
    }

    /// Keeps a corrupt record as `NAME~corrupt-<ms>`. Renaming needs only
    /// the directory's write permission, so any member of a shared
    /// directory can do it; the rename comes first, so a failure leaves
    /// the record where it was, to be moved by the next caller. Retiring
    /// the moved file (only its owner can) tells whoever waits for its
    /// lock at once; others notice that the path names another file.
    fn move_aside(
        &self,
        record: &Record,
        guard: &Guard<'_>,
        path: &Path,
        why: String,
    ) -> Result<(), StoreError> {
        if !record.still_at_path() {
            return Ok(()); // someone else moved it while we waited
        }
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!("~corrupt-{}", crate::host::now_ms()));
        let aside = PathBuf::from(aside);
        std::fs::rename(path, &aside).map_err(self.io(path, "move aside the corrupt record"))?;
        let _ = guard.retire();
        self.events.borrow_mut().push(Event::MovedAside {
            path: path.to_path_buf(),
            aside,
            why,
        });
        Ok(())
    }

    /// Reads `name`'s state under a shared lock, changing nothing.
    pub fn read(&self, name: &str) -> Result<BreakerState, StoreError> {
        let path = self.path(name);
        let not_found = || StoreError::NotFound {
            name: name.to_string(),
            dir: self.dir.clone(),
        };
        let Some(access) = self.access_for_reading()? else {
            return Err(not_found());
        };
        for _ in 0..ATTEMPTS {
            match crate::record::read(&path, access) {
                Ok(state) => return Ok(state),
                Err(RecordError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(not_found());
                }
                // Being created right now: it is a fresh, closed breaker.
                Err(RecordError::Uninitialized) => return Ok(BreakerState::default()),
                Err(RecordError::Moved) => continue,
                Err(RecordError::Io(e)) => return Err(self.io(&path, "read")(e)),
                Err(e) => return Err(record_error(&path, e)),
            }
        }
        Err(not_found())
    }

    /// The breakers' names, sorted. A missing directory has none.
    pub fn names(&self) -> Result<Vec<String>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(&self.dir, "read the state directory")(e)),
        };
        // Record-sized (or new, empty) regular files only: a state
        // directory pointed at the wrong place lists no one's files.
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.metadata().is_ok_and(|m| {
                    m.is_file() && (m.len() == 0 || m.len() == crate::record::RECORD_SIZE as u64)
                })
            })
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| validate_name(n).is_ok())
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    /// Deletes `name`'s record under its lock, so that a run updating it at
    /// the same moment finishes first (and then notices the record is gone).
    pub fn forget(&self, name: &str) -> Result<(), StoreError> {
        let path = self.path(name);
        let not_found = || StoreError::NotFound {
            name: name.to_string(),
            dir: self.dir.clone(),
        };
        let Some(access) = self.access_for_reading()? else {
            return Err(not_found());
        };
        let record = match Record::open_ro(&path, access) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(self.io(&path, "open")(e)),
        };
        let _held = record.lock_raw().map_err(|e| record_error(&path, e))?;
        if !record.looks_like_record().map_err(self.io(&path, "read"))? {
            return Err(StoreError::Foreign {
                path,
                why: "without cbreak's magic".into(),
            });
        }
        if record.still_at_path() {
            // A run holding it open sees its link count drop to 0 when it
            // locks it next, and opens the path again.
            std::fs::remove_file(&path).map_err(self.io(&path, "delete"))?;
        }
        Ok(())
    }
}

fn record_error(path: &Path, e: RecordError) -> StoreError {
    let path = path.to_path_buf();
    match e {
        RecordError::Moved | RecordError::Uninitialized => StoreError::Io {
            path,
            what: "use",
            err: io::Error::other("the record changed while it was being read"),
        },
        RecordError::Corrupt(why) => StoreError::Corrupt { path, why },
        RecordError::NewerVersion(version) => StoreError::Newer { path, version },
        RecordError::Untrusted(why) => StoreError::Untrusted { path, why },
        RecordError::Busy(waited) => StoreError::Busy { path, waited },
        RecordError::Foreign(why) => StoreError::Foreign { path, why },
        RecordError::Io(err) => StoreError::Io {
            path,
            what: "use",
            err,
        },
    }
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
