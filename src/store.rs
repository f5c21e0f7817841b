//! The state directory: where records live, what they are called, and what
//! happens to a record that cannot be used.
//!
//! Owns breaker names (validation and the default derived from a command),
//! the directory's creation and listing, and the protocol around a record:
//! open, lock, check, read-modify-write, and moving a corrupt record aside so
//! that the evidence is kept and a fresh one takes its place. It does not
//! own the bytes of a record (`record`) nor what the state means (`breaker`).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::breaker::BreakerState;
use crate::record::{Record, RecordError};

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
                    _ => String::new(),
                };
                write!(f, "cannot {what} {}: {err}{hint}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {}

/// A state directory.
pub struct Store {
    dir: PathBuf,
    allow_network_fs: bool,
}

impl Store {
    pub fn new(dir: PathBuf, allow_network_fs: bool) -> Store {
        Store {
            dir,
            allow_network_fs,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
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
    /// if it is missing, and says what mode new records get.
    ///
    /// Like ssh with `~/.ssh`, cbreak refuses a directory that other users
    /// could tamper with: one writable by everyone without the sticky bit,
    /// or one owned by another user (root aside) that is not a shared group
    /// directory. A shared group directory (setgid and group-writable) gets
    /// records its group can read and write (0660); any other, private ones
    /// (0600). Network file systems are refused unless allowed, because
    /// `flock(2)` and shared mappings are not coherent there.
    pub fn prepare(&self) -> Result<u32, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let meta = match std::fs::metadata(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.create_dir()?;
                std::fs::metadata(&self.dir)
            }
            other => other,
        }
        .map_err(self.io(&self.dir, "use the state directory"))?;
        let refuse = |why: String| StoreError::Refused {
            dir: self.dir.clone(),
            why,
        };
        if !meta.is_dir() {
            return Err(refuse("it is not a directory".into()));
        }
        let mode = meta.mode();
        let shared = mode & 0o2000 != 0 && mode & 0o020 != 0;
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(refuse(format!(
                "it is writable by every user (mode {:o}) without the sticky bit; chmod o-w it",
                mode & 0o7777
            )));
        }
        let me = crate::host::euid();
        if meta.uid() != me && meta.uid() != 0 && !shared {
            return Err(refuse(format!(
                "it belongs to uid {}, not to you (uid {me}); a directory shared by a group must be setgid and group-writable (chmod 2770)",
                meta.uid()
            )));
        }
        if !self.allow_network_fs {
            let kind = crate::host::network_fs(&self.dir)
                .map_err(self.io(&self.dir, "inspect the state directory"))?;
            if let Some(kind) = kind {
                return Err(refuse(format!(
                    "it is on {kind}, where file locks and shared memory maps are not coherent between machines; use a local directory, or --allow-network-fs if only this machine uses it"
                )));
            }
        }
        Ok(if shared { 0o660 } else { 0o600 })
    }

    /// Opens (creating if needed) the record of `name` for writing.
    fn open_rw(&self, path: &Path) -> Result<Record, StoreError> {
        let mode = self.prepare()?;
        Record::open_rw(path, mode).map_err(self.io(path, "open"))
    }

    /// Read-modify-write of `name`'s state under its exclusive lock.
    ///
    /// `slot` keeps the open record between calls (so that `run` opens and
    /// maps it once); `fresh` makes the state of a new record. A corrupt
    /// record is moved aside with a warning and replaced by a fresh one.
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
            let guard = record.lock_raw().map_err(self.io(&path, "lock"))?;
            match guard.check(&fresh).and_then(|()| guard.load()) {
                Ok(mut state) => {
                    let out = f(&mut state);
                    guard.store(&state);
                    return Ok(out);
                }
                // Still under the lock: nobody else is looking at it.
                Err(RecordError::Corrupt(why)) => {
                    guard
                        .retire()
                        .map_err(self.io(&path, "retire the corrupt record"))?;
                    self.move_aside(&path, &why)?
                }
                Err(RecordError::Moved) => {}
                Err(e) => return Err(self.record_error(&path, e)),
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

    fn record_error(&self, path: &Path, e: RecordError) -> StoreError {
        match e {
            RecordError::Moved | RecordError::Uninitialized => StoreError::Io {
                path: path.to_path_buf(),
                what: "use",
                err: io::Error::other("the record changed while it was being read"),
            },
            RecordError::Corrupt(why) => StoreError::Corrupt {
                path: path.to_path_buf(),
                why,
            },
            RecordError::NewerVersion(version) => StoreError::Newer {
                path: path.to_path_buf(),
                version,
            },
            RecordError::Io(err) => StoreError::Io {
                path: path.to_path_buf(),
                what: "use",
                err,
            },
        }
    }

    fn move_aside(&self, path: &Path, why: &str) -> Result<(), StoreError> {
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!("~corrupt-{}", crate::host::now_ms()));
        let aside = PathBuf::from(aside);
        std::fs::rename(path, &aside).map_err(self.io(path, "move aside the corrupt record"))?;
        crate::output::warn(&format!(
            "record {} was corrupt ({why}); kept it as {} and started a fresh breaker",
            path.display(),
            aside.display()
        ));
        Ok(())
    }

    /// Reads `name`'s state under a shared lock, changing nothing.
    pub fn read(&self, name: &str) -> Result<BreakerState, StoreError> {
        let path = self.path(name);
        for _ in 0..ATTEMPTS {
            match crate::record::read(&path) {
                Ok(state) => return Ok(state),
                Err(RecordError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(StoreError::NotFound {
                        name: name.to_string(),
                        dir: self.dir.clone(),
                    });
                }
                // Being created right now: it is a fresh, closed breaker.
                Err(RecordError::Uninitialized) => return Ok(BreakerState::default()),
                Err(RecordError::Moved) => continue,
                Err(RecordError::Io(e)) => return Err(self.io(&path, "read")(e)),
                Err(e) => return Err(self.record_error(&path, e)),
            }
        }
        Err(StoreError::NotFound {
            name: name.to_string(),
            dir: self.dir.clone(),
        })
    }

    /// The breakers' names, sorted. A missing directory has none.
    pub fn names(&self) -> Result<Vec<String>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(&self.dir, "read the state directory")(e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
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
        let record = match Record::open_ro(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    name: name.to_string(),
                    dir: self.dir.clone(),
                });
            }
            Err(e) => return Err(self.io(&path, "open")(e)),
        };
        let _held = record.lock_raw().map_err(self.io(&path, "lock"))?;
        if record.still_at_path() {
            // A run holding it open sees its link count drop to 0 when it
            // locks it next, and opens the path again.
            std::fs::remove_file(&path).map_err(self.io(&path, "delete"))?;
        }
        Ok(())
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
