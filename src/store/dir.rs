//! The state directory: the [`Store`] on this machine, one record file per
//! breaker, and what happens to a record that cannot be used.
//!
//! Owns the directory's creation, judgement and listing, and the protocol
//! around a record:
//! open, lock, check, read-modify-write, and moving a corrupt record aside so
//! that the evidence is kept and a fresh one takes its place. It does not
//! own the bytes of a record (`record`) nor what the state means (`breaker`),
//! and it never prints: what the user should hear comes back as [`Event`]s.

use std::cell::{OnceCell, RefCell};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Attempt, Event, Location, Refusal, Slot, Store, StoreError, validate_name};
use crate::breaker::{BreakerState, Millis, Policy};
use crate::record::{Access, DEFAULT_LOCK_WAIT, Guard, Record, RecordError};

/// A state directory's metadata, and its symlink's when the path is one.
type DirMeta = (std::fs::Metadata, Option<std::fs::Metadata>);

/// How often a record that keeps moving under us is opened again.
const ATTEMPTS: usize = 8;

/// Where records live: `--state-dir`/`CBREAK_STATE_DIR` (already in
/// `explicit`), else `$XDG_STATE_HOME/cbreak`, else
/// `$HOME/.local/state/cbreak`.
pub fn state_dir(explicit: Option<PathBuf>) -> Result<PathBuf, StoreError> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    explicit
        .filter(|d| !d.as_os_str().is_empty())
        .or_else(|| {
            var("XDG_STATE_HOME")
                .filter(|d| d.is_absolute())
                .map(|d| d.join("cbreak"))
        })
        // A relative HOME (or XDG_STATE_HOME) would put state wherever the
        // command happens to start: ignored, as the XDG spec says.
        .or_else(|| {
            var("HOME")
                .filter(|h| h.is_absolute())
                .map(|h| h.join(".local/state/cbreak"))
        })
        .ok_or(StoreError::NoStateDir)
}

/// A state directory.
pub struct StateDir {
    dir: PathBuf,
    allow_network_fs: bool,
    lock_wait: Duration,
    /// Whether records are read through a map (see [`StateDir::mapping`]).
    map_records: bool,
    /// The directory's verdict, once judged: it does not change under a
    /// process in any way cbreak has to follow.
    access: OnceCell<Access>,
    events: RefCell<Vec<Event>>,
}

impl StateDir {
    pub fn new(dir: PathBuf, allow_network_fs: bool) -> StateDir {
        StateDir {
            dir,
            allow_network_fs,
            lock_wait: DEFAULT_LOCK_WAIT,
            map_records: false,
            access: OnceCell::new(),
            events: RefCell::new(Vec::new()),
        }
    }

    /// How long to wait for another process's lock on a record (default
    /// [`DEFAULT_LOCK_WAIT`]) before failing with [`StoreError::Busy`].
    pub fn with_lock_wait(mut self, wait: Duration) -> StateDir {
        self.lock_wait = wait;
        self
    }

    /// Reads the records it opens through a map (see
    /// [`Record::map_reads`]): for a store whose handles stay open for many
    /// updates.
    pub fn mapping(mut self) -> StateDir {
        self.map_records = true;
        self
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn io(&self, path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |err| StoreError::Io {
            at: Location::Path(path),
            what,
            err,
        }
    }

    /// Creates the state directory (mode 0700) if it is missing.
    /// Missing parents too, each 0700 whatever the umask: under `umask
    /// 0377` the directories would otherwise be made unusable (0400), the
    /// user's `~/.local` among them.
    pub fn create_dir(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let missing: Vec<&Path> = self
            .dir
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
            .collect();
        for dir in missing.into_iter().rev() {
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(self.io(dir, "set the mode of"))?,
                // Made by someone else meanwhile: judged like any other.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(self.io(&self.dir, "create the state directory")(e)),
            }
        }
        Ok(())
    }

    /// Checks the directory before anything is written there, creating it
    /// if it is missing, and says who may own its records.
    pub fn prepare(&self) -> Result<Access, StoreError> {
        if let Some(access) = self.access.get() {
            return Ok(*access);
        }
        let (meta, link) = match self.stat_dir()? {
            None => {
                self.may_create()?;
                self.create_dir()?;
                self.stat_dir()?.ok_or_else(|| {
                    self.io(&self.dir, "use the state directory")(io::ErrorKind::NotFound.into())
                })?
            }
            Some(found) => found,
        };
        self.judge(&meta, link.as_ref())
    }

    /// The directory's metadata, and the symlink's own when the path is
    /// one: one `lstat` on the common path, where it is not. `None` when
    /// nothing is there. A symlink to nothing is refused: read as "no
    /// breakers" it would hide every breaker of the directory it once
    /// pointed to.
    fn stat_dir(&self) -> Result<Option<DirMeta>, StoreError> {
        let failed = |e| self.io(&self.dir, "use the state directory")(e);
        let meta = match std::fs::symlink_metadata(&self.dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        if !meta.file_type().is_symlink() {
            return Ok(Some((meta, None)));
        }
        match std::fs::metadata(&self.dir) {
            Ok(target) => Ok(Some((target, Some(meta)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::Refused {
                dir: self.dir.clone(),
                why: Refusal::DanglingSymlink {
                    target: std::fs::read_link(&self.dir).unwrap_or_default(),
                },
            }),
            Err(e) => Err(failed(e)),
        }
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
                    why: Refusal::WontCreate {
                        uid: me,
                        inside: ancestor.to_path_buf(),
                        owner: meta.uid(),
                    },
                });
            }
            return Ok(());
        }
        Ok(())
    }

    /// Like [`StateDir::prepare`] for a reader: `None` when the directory does
    /// not exist (it has no breakers), and nothing is created.
    fn access_for_reading(&self) -> Result<Option<Access>, StoreError> {
        if let Some(access) = self.access.get() {
            return Ok(Some(*access));
        }
        match self.stat_dir()? {
            None => Ok(None),
            Some((meta, link)) => self.judge(&meta, link.as_ref()).map(Some),
        }
    }

    /// The directory's verdict, as ssh's StrictModes judges `~/.ssh`.
    ///
    /// A directory writable by every user is refused, sticky or not (in a
    /// sticky one another user can still create a record before you and
    /// control it). A setgid, group-writable directory is *shared* when you
    /// are a member of its group (root too must be one): its records must
    /// belong to that group and are created 0660; a group-writable one that
    /// is not shared is refused. Any other directory must be yours (or
    /// root's) and its records yours, created 0600; a path that is a
    /// symlink (`link`) must be yours or root's as well. Network
    /// file systems are refused unless allowed, because `flock(2)`, the
    /// probe lock and shared mappings are not coherent there.
    fn judge(
        &self,
        meta: &std::fs::Metadata,
        link: Option<&std::fs::Metadata>,
    ) -> Result<Access, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let refuse = |why: Refusal| StoreError::Refused {
            dir: self.dir.clone(),
            why,
        };
        if !meta.is_dir() {
            return Err(refuse(Refusal::NotADirectory));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o002 != 0 {
            return Err(refuse(Refusal::WorldWritable { mode }));
        }
        let me = crate::host::euid();
        let group_writable = mode & 0o020 != 0;
        let group_dir = mode & 0o2000 != 0 && group_writable;
        // Root too must really be a member: a directory another user made
        // setgid and group-writable is theirs to control.
        let shared = group_dir && crate::host::in_group(meta.gid());
        if group_dir && !shared {
            return Err(refuse(Refusal::NotInGroup {
                gid: meta.gid(),
                uid: me,
            }));
        }
        if group_writable && !shared {
            return Err(refuse(Refusal::GroupWritable { gid: meta.gid() }));
        }
        if meta.uid() != me && meta.uid() != 0 && !shared {
            return Err(refuse(Refusal::Owner {
                owner: meta.uid(),
                uid: me,
            }));
        }
        // The path itself may be a symlink another user planted (in /tmp,
        // say) to point cbreak at a directory of their choosing.
        if let Some(link) = link
            && link.uid() != me
            && link.uid() != 0
        {
            return Err(refuse(Refusal::SymlinkOwner {
                owner: link.uid(),
                uid: me,
            }));
        }
        if !self.allow_network_fs {
            let kind = crate::host::shared_fs(&self.dir)
                .map_err(self.io(&self.dir, "inspect the state directory"))?;
            if let Some(kind) = kind {
                return Err(refuse(Refusal::NetworkFs { kind }));
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
        let mut record = Record::open_rw(path, access).map_err(self.io(path, "open"))?;
        if self.map_records {
            record.map_reads();
        }
        Ok(record)
    }

    /// Keeps a corrupt record as `NAME~corrupt-<ms>`. Renaming needs only
    /// the directory's write permission, so any member of a shared
    /// directory can do it; the rename comes first, so a failure leaves
    /// the record where it was, to be moved by the next caller. Retiring
    /// the moved file (only its owner can) tells whoever waits for its
    /// lock at once; others notice that the path names another file.
    fn move_aside(&self, guard: &Guard<'_>, path: &Path, why: String) -> Result<(), StoreError> {
        if !guard.still_at_path() {
            return Ok(()); // someone else moved it while we waited
        }
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!("~corrupt-{}", crate::host::now_ms()));
        let aside = PathBuf::from(aside);
        std::fs::rename(path, &aside).map_err(self.io(path, "move aside the corrupt record"))?;
        let _ = guard.retire();
        self.events.borrow_mut().push(Event::SetAside {
            at: Location::Path(path.to_path_buf()),
            aside: Location::Path(aside),
            why,
        });
        Ok(())
    }
}

impl Store for StateDir {
    fn now(&self) -> Millis {
        crate::host::now_ms()
    }

    /// The slot keeps the breaker's open record once an attempt opened it
    /// (mapped, for the library); dropping it closes the record, which
    /// gives back the probe lock if this process held it.
    fn open(&self, name: &str) -> Slot {
        Slot::new(name)
    }

    /// Under the record's exclusive lock, so an attempt never conflicts
    /// with another writer; it only tries again when the record was
    /// replaced while it waited for the lock. A new (empty) record is made
    /// with `fresh`.
    fn attempt(
        &self,
        slot: &mut Slot,
        fresh: &dyn Fn() -> BreakerState,
        decide: &mut dyn FnMut(&mut BreakerState) -> bool,
    ) -> Result<Attempt, StoreError> {
        let path = self.path(slot.name());
        if slot.kept::<Record>().is_none() {
            let record = self.open_rw(&path)?;
            slot.kept_or(|| record);
        }
        let Some(record) = slot.kept::<Record>() else {
            return Ok(Attempt::Conflict);
        };
        let guard = record.lock_raw().map_err(|e| record_error(&path, e))?;
        let (guard, error) = match guard.check(fresh) {
            Ok(checked) => match checked.load() {
                Ok(mut state) => {
                    checked.claim_probe(&mut state, self.now());
                    let before = state;
                    let changed = decide(&mut state);
                    let decided = state;
                    checked.settle_probe(before.probe, &mut state);
                    if changed || state != decided {
                        checked.store(&state).map_err(|e| record_error(&path, e))?;
                    }
                    return Ok(Attempt::Done);
                }
                Err(e) => (checked.into_guard(), e),
            },
            Err(refused) => refused,
        };
        let attempt = match (unusable(&guard, &error), error) {
            (Some(why), _) => Attempt::Unusable(why),
            // Replaced while we waited: open the path again.
            (None, RecordError::Moved) => Attempt::Conflict,
            (None, e) => return Err(record_error(&path, e)),
        };
        drop(guard);
        if attempt == Attempt::Conflict {
            slot.clear();
        }
        Ok(attempt)
    }

    /// Moves the record aside if, under its lock, it is still unusable.
    fn set_aside(
        &self,
        slot: &mut Slot,
        fresh: &dyn Fn() -> BreakerState,
        why: String,
    ) -> Result<(), StoreError> {
        let path = self.path(slot.name());
        if let Some(record) = slot.kept::<Record>() {
            let guard = record.lock_raw().map_err(|e| record_error(&path, e))?;
            let failed = match guard.check(fresh) {
                Ok(checked) => match checked.load() {
                    Ok(_) => None,
                    Err(e) => Some((checked.into_guard(), e)),
                },
                Err(refused) => Some(refused),
            };
            // Usable again, or gone: nothing to set aside.
            if let Some((guard, error)) = failed
                && unusable(&guard, &error).is_some()
            {
                self.move_aside(&guard, &path, why)?;
            }
        }
        slot.clear();
        Ok(())
    }

    /// As long as the lock wait: the record being replaced under us is the
    /// only conflict, and a busy lock is already bounded by that wait.
    fn patience(&self) -> Duration {
        self.lock_wait
    }

    fn locate(&self, slot: &Slot) -> Location {
        Location::Path(self.path(slot.name()))
    }

    /// Reads `name`'s state under a shared lock, changing nothing.
    fn read(&self, name: &str) -> Result<BreakerState, StoreError> {
        let path = self.path(name);
        let not_found = || StoreError::NotFound {
            name: name.to_string(),
            store: Location::Path(self.dir.clone()),
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
                // Being created right now (or emptied): a fresh, closed
                // breaker, under the default policy until a run writes its
                // own.
                Err(RecordError::Uninitialized) => {
                    return Ok(BreakerState::new(self.now(), 0, Policy::default()));
                }
                Err(RecordError::Moved) => continue,
                Err(RecordError::Io(e)) => return Err(self.io(&path, "read")(e)),
                Err(e) => return Err(record_error(&path, e)),
            }
        }
        Err(not_found())
    }

    /// The breakers' names, sorted. A missing directory has none.
    fn names(&self) -> Result<Vec<String>, StoreError> {
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
    fn forget(&self, name: &str) -> Result<(), StoreError> {
        let path = self.path(name);
        let not_found = || StoreError::NotFound {
            name: name.to_string(),
            store: Location::Path(self.dir.clone()),
        };
        let Some(access) = self.access_for_reading()? else {
            return Err(not_found());
        };
        let mut record = match Record::open_ro(&path, access) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(self.io(&path, "open")(e)),
        };
        let held = record.lock_raw().map_err(|e| record_error(&path, e))?;
        if !held.looks_like_record().map_err(self.io(&path, "read"))? {
            return Err(StoreError::Foreign {
                at: Location::Path(path),
                why: "without cbreak's magic".into(),
            });
        }
        if held.still_at_path() {
            // A run holding it open sees its link count drop to 0 when it
            // locks it next, and opens the path again.
            std::fs::remove_file(&path).map_err(self.io(&path, "delete"))?;
        }
        Ok(())
    }

    fn exists(&self, name: &str) -> bool {
        std::fs::symlink_metadata(self.path(name)).is_ok()
    }

    fn readable(&self) -> Result<(), StoreError> {
        self.access_for_reading().map(|_| ())
    }

    fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.borrow_mut())
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}

/// Why a locked record that could not be used is to be set aside, if it
/// is: damaged, or retired but left at its path by an interrupted move.
fn unusable(guard: &Guard<'_>, error: &RecordError) -> Option<String> {
    match error {
        RecordError::Corrupt(why) => Some(why.clone()),
        RecordError::Moved if guard.still_at_path() => {
            Some("left retired at its path by an interrupted move".into())
        }
        _ => None,
    }
}

fn record_error(path: &Path, e: RecordError) -> StoreError {
    let at = Location::Path(path.to_path_buf());
    match e {
        RecordError::Moved | RecordError::Uninitialized => StoreError::Io {
            at,
            what: "use",
            err: io::Error::other("the record changed while it was being read"),
        },
        RecordError::Corrupt(why) => StoreError::Corrupt { at, why },
        RecordError::NewerVersion(version) => StoreError::Newer { at, version },
        RecordError::Untrusted(why) => StoreError::Untrusted { at, why },
        RecordError::Busy(waited) => StoreError::Busy { at, waited },
        RecordError::Foreign(why) => StoreError::Foreign { at, why },
        RecordError::Io(err) => StoreError::Io {
            at,
            what: "use",
            err,
        },
    }
}
