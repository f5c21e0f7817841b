//! The on-disk breaker record: layout, reading, locking and validation.
//!
//! Owns the bytes of one breaker's file and nothing above them: it reads
//! the file (with `pread(2)`, or through a read-only map for a handle kept
//! open for many updates, see [`Record::map_reads`]), writes it with
//! `pwrite(2)`, guards every access with `flock(2)` (a [`Guard`] reaches the
//! state only once [`Guard::check`] made it a [`Checked`]), and keeps the
//! probe lock. Turning a [`BreakerState`] into a body's words and back is
//! its submodule `codec`, which does no I/O. Where the file lives and what to do with a
//! corrupt one is `store`'s business; what the state means is `breaker`'s.
//!
//! # Layout (version 1)
//!
//! A record is exactly [`RECORD_SIZE`] = 8192 bytes, preallocated with
//! `posix_fallocate` so that a full disk is found when it is created. It
//! is an array of little-endian `u64` words; through a map, every word is
//! read by `fault::Guarded::read`, one Relaxed atomic load each.
//!
//! | word | field |
//! |---|---|
//! | 0 | magic, the bytes `cbreak\0\x01` |
//! | 1 | format version (1) |
//! | 2 | file size in bytes (8192) |
//! | 3 | active body: 0 or 1 |
//! | 4 | store sequence number |
//! | 5–7 | reserved, zero |
//! | 8–515 | body 0 ([`BODY_WORDS`] words) |
//! | 516–1023 | body 1 |
//!
//! The state is double-buffered: a store writes the whole inactive body and
//! then flips word 3, so a process killed in the middle of a store leaves the
//! previous state intact. Each body is:
//!
//! | body word | field |
//! |---|---|
//! | 0 | checksum of body words 1–254, first sum (see `checksum`) |
//! | 1–4 | state (0 closed, 1 open, 2 half_open, 3 forced_open), mode (0 normal, 1 disabled), generation, consecutive failures |
//! | 5–8 | opened at (ms since the epoch), next probe at, current open period (ms), reopens since the last close |
//! | 9–14 | probe slot held (0/1), owner pid, owner start time (ticks), owner boot id hash, lease until, probe successes |
//! | 15–22 | calls, successes, failures, ignored, cancelled, rejected, slow, timeouts |
//! | 23–26 | transitions into closed, open, half_open, forced_open |
//! | 27–28 | created at, updated at |
//! | 29–50 | policy last used: threshold, recovery, failure rate (basis points, 0 none), window kind (0 none, 1 count, 2 time), window size (calls or ms), min calls, slow (ms, 0 none), timeout (ms, 0 none), kill after, success codes (4 words of bits), ignore codes (4), backoff (0 constant, 1 exponential), backoff factor (thousandths), max recovery, jitter percent, probes |
//! | 51–69 | count window: 16 words of outcome bits (1 = failure), head, length, failures |
//! | 70–109 | time window: 20 buckets of (epoch, successes << 32 \| failures) |
//! | 110–111 | recent outcomes: bits (newest in bit 0, 1 = failure), length |
//! | 112–241 | transition history: head, length, then 32 entries of (at, from \| to << 8 \| reason << 16, reason argument, consecutive failures) |
//! | 242–243 | last success at, last failure at (ms since the epoch, 0 for never) |
//! | 244–254 | reserved, zero, covered by the checksum |
//! | 255 | checksum, second sum |
//! | 256–507 | reserved for later versions: not read, written or checksummed |
//!
//! A file of another size, without the magic, with a bad checksum or with a
//! state that breaks the machine's invariants is *corrupt*; a zero-length
//! file, or a full-size one whose magic is still zero (it is written last),
//! is a record whose creation was interrupted and is initialised again.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use crate::breaker::{BreakerState, Millis, Owner, ProbeSlot};
use crate::fault::{Guarded, Unread};

mod codec;

use codec::newest;
pub use codec::{B_SEQUENCE, USED_WORDS, decode, encode, seal};

pub const MAGIC: u64 = u64::from_le_bytes(*b"cbreak\0\x01");
pub const VERSION: u64 = 1;
/// The newest format version a later cbreak could plausibly have written:
/// a version above this is not "newer", it is a damaged word, and the
/// record is kept aside like any damaged one instead of failing open for
/// ever with "upgrade cbreak".
pub const PLAUSIBLE_VERSIONS: u64 = VERSION + 1000;
pub const RECORD_SIZE: usize = 8192;
const WORDS: usize = RECORD_SIZE / 8;
const HEADER_WORDS: usize = 8;
/// Words set aside for each copy of the state.
pub const BODY_WORDS: usize = (WORDS - HEADER_WORDS) / 2;

const W_MAGIC: usize = 0;
const W_VERSION: usize = 1;
const W_SIZE: usize = 2;
const W_ACTIVE: usize = 3;
const W_SEQUENCE: usize = 4;
// `Checked::store` writes the header words in this order as one array.
const _: () =
    assert!(W_MAGIC == 0 && W_VERSION == 1 && W_SIZE == 2 && W_ACTIVE == 3 && W_SEQUENCE == 4);

/// The byte whose open-file-description lock the probe holder keeps: one
/// past the end of the record, so that it never covers data (a lock may
/// lie beyond the end of a file).
const PROBE_BYTE: libc::off_t = RECORD_SIZE as libc::off_t;

/// How long to wait for another process's lock on a record by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Why a record cannot be used.
#[derive(Debug)]
pub enum RecordError {
    /// The path no longer names the file that was locked (moved aside,
    /// deleted or replaced meanwhile): open it again.
    Moved,
    /// A zero-length or half-created file, seen by a reader.
    Uninitialized,
    /// Not a record, or a damaged one; the text says what is wrong.
    Corrupt(String),
    /// Written by a newer cbreak: leave it alone.
    NewerVersion(u64),
    /// Not a cbreak record at all (a file of the same name in a state
    /// directory that is not one): never moved, changed or deleted.
    Foreign(String),
    /// Owned or writable by someone who should not control it; the text
    /// says what is wrong. Never read, never changed.
    Untrusted(String),
    /// Another process held the lock for longer than the wait.
    Busy(Duration),
    Io(io::Error),
}

impl From<io::Error> for RecordError {
    fn from(e: io::Error) -> Self {
        RecordError::Io(e)
    }
}

/// Who may own a record, how a new one is made, and how long to wait for
/// its lock. The store derives it from the state directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Permissions of a new record, whatever the umask.
    pub mode: u32,
    /// In a private directory, the user who must own every record.
    pub uid: u32,
    /// In a directory shared by a group, the group that must own every
    /// record (any member may own it); `None` for a private directory.
    pub group: Option<u32>,
    /// How long to wait for another process's lock before giving up.
    pub lock_wait: Duration,
}

impl Access {
    /// A private directory of user `uid` (the fuzz target's).
    #[cfg(feature = "testing")]
    pub fn private(uid: u32) -> Access {
        Access {
            mode: 0o600,
            uid,
            group: None,
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }

    /// Whether the file `meta` describes may be trusted as a record.
    fn check(&self, meta: &std::fs::Metadata) -> Result<(), RecordError> {
        let mode = meta.mode() & 0o7777;
        if mode & 0o002 != 0 {
            return Err(RecordError::Untrusted(format!(
                "it is writable by every user (mode {mode:o})"
            )));
        }
        match self.group {
            None if meta.uid() != self.uid => Err(RecordError::Untrusted(format!(
                "it belongs to uid {}, not to you (uid {})",
                meta.uid(),
                self.uid
            ))),
            Some(gid) if meta.gid() != gid => Err(RecordError::Untrusted(format!(
                "its group is gid {}, not the shared directory's group (gid {gid})",
                meta.gid()
            ))),
            _ => Ok(()),
        }
    }
}

/// The read-only map of a record and the fault guard over it. The guard is
/// declared first so that it is dropped before the map is unmapped; the
/// map is read only through the guard, and kept here to be unmapped.
struct Mapped {
    guard: Option<Guarded>,
    _raw: MmapRaw,
}

/// One breaker's file, open and (once locked) mapped.
pub struct Record {
    file: File,
    path: PathBuf,
    access: Access,
    map: RefCell<Option<Mapped>>,
    /// Whether reads go through a map (see [`Record::map_reads`]).
    map_reads: bool,
    /// This open file holds the probe lock.
    probe_locked: Cell<bool>,
    /// The probe slot's owner as this process stamped it when it took the
    /// slot, while it holds it.
    probe_owner: Cell<Option<Owner>>,
}

/// Proof that this process holds the record's lock; unlocks on drop.
///
/// It borrows the record mutably, so there is at most one per record:
/// two would share one `flock` (one per open file), and dropping either
/// would unlock both. It reaches the state only through [`Guard::check`],
/// whose success is a [`Checked`]. Neither of these compiles:
///
/// ```compile_fail,E0499
/// # fn two_guards(record: &mut cbreak::record::Record) {
/// let first = record.lock_raw().unwrap();
/// let second = record.lock_raw().unwrap(); // a second guard on one record
/// drop(first);
/// # }
/// ```
///
/// ```compile_fail,E0599
/// # fn unchecked(record: &mut cbreak::record::Record) {
/// let guard = record.lock_raw().unwrap();
/// let state = guard.load(); // the state before the check
/// # }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct Guard<'a> {
    record: &'a Record,
}

/// A locked record that passed [`Guard::check`]: the only way to
/// [`load`](Checked::load) and [`store`](Checked::store) a state.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct Checked<'a>(
    Guard<'a>,
    /// The active copy and the sequence number that the last
    /// [`Checked::load`] read, for [`Checked::store`] to write after.
    Cell<Option<[u64; 2]>>,
);

impl<'a> std::ops::Deref for Checked<'a> {
    type Target = Guard<'a>;

    fn deref(&self) -> &Guard<'a> {
        &self.0
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // Closing the file would release the lock too; an unlock error
        // leaves nothing to do.
        let _ = fs2::FileExt::unlock(&self.record.file);
    }
}

fn open_flags() -> i32 {
    libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC
}

impl Record {
    /// Opens the record at `path` for reading and writing, creating an empty
    /// file if there is none. Never follows a symlink.
    pub fn open_rw(path: &Path, access: Access) -> io::Result<Record> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(access.mode)
            .custom_flags(open_flags())
            .open(path)?;
        // Whether it is a regular file, and whose, is checked with the rest,
        // under the lock (`Guard::check`): one fstat fewer on the hot path.
        Ok(Record::new(file, path, access))
    }

    /// Opens an existing record read-only, to lock and delete it
    /// (`cbreak forget`); such a record is never mapped.
    pub fn open_ro(path: &Path, access: Access) -> io::Result<Record> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(open_flags())
            .open(path)?;
        if !file.metadata()?.file_type().is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(Record::new(file, path, access))
    }

    fn new(file: File, path: &Path, access: Access) -> Record {
        Record {
            file,
            path: path.to_path_buf(),
            access,
            map: RefCell::new(None),
            map_reads: false,
            probe_locked: Cell::new(false),
            probe_owner: Cell::new(None),
        }
    }

    /// Reads this record through a read-only shared map from its next
    /// lock on, instead of with `pread(2)`: for a handle kept open for many
    /// updates (the library's [`crate::Breaker`]), where the map, made
    /// once, saves the two reads of every update (about 1.6 µs of an
    /// update's 6 µs here). A process that updates a record once or twice
    /// (`cbreak run`) reads it: there, mapping it, installing the fault
    /// guard and unmapping it cost what they save (BENCHMARKS.md).
    pub fn map_reads(&mut self) {
        self.map_reads = true;
    }

    /// Takes the exclusive lock, then checks that the path still names this
    /// file and that it is a valid record, initialising a new one with
    /// `fresh` when the file is empty (the fuzz target's way in).
    #[cfg(feature = "testing")]
    pub fn lock(
        &mut self,
        fresh: impl FnOnce() -> BreakerState,
    ) -> Result<Checked<'_>, RecordError> {
        self.lock_raw()?.check(fresh).map_err(|(_, e)| e)
    }

    /// Takes the exclusive lock, waiting at most the access's lock wait,
    /// and checks nothing: for moving or deleting the file, or for checking
    /// it with [`Guard::check`] while keeping the lock whatever the check
    /// finds.
    pub fn lock_raw(&mut self) -> Result<Guard<'_>, RecordError> {
        lock_within(&self.file, true, self.access.lock_wait)?;
        Ok(Guard { record: self })
    }

    /// Whether this file is, or is becoming, a cbreak record (see
    /// [`looks_like_record`]).
    pub fn looks_like_record(&self) -> io::Result<bool> {
        looks_like_record(&self.file)
    }

    /// Whether the path still names the file this record has open.
    pub fn still_at_path(&self) -> bool {
        match (self.file.metadata(), std::fs::symlink_metadata(&self.path)) {
            (Ok(ours), Ok(there)) => ours.dev() == there.dev() && ours.ino() == there.ino(),
            _ => false,
        }
    }

    /// Copies words `first..first + out.len()` of the file into `out`,
    /// through the map when there is one. A fault on the map (the file was
    /// truncated by someone who ignores the lock) is an error, never a
    /// signal, and drops the map; without the fault guard (the handler gave
    /// `SIGBUS` back, see `fault`) the map is dropped and the file read.
    fn read_words(&self, first: usize, out: &mut [u64]) -> Result<(), RecordError> {
        let map = self.map.borrow();
        let Some(guard) = map.as_ref().and_then(|m| m.guard.as_ref()) else {
            drop(map);
            return self.pread_words(first, out);
        };
        assert!(first + out.len() <= WORDS, "read within the record");
        let read = guard.read(first, out);
        drop(map);
        match read {
            Ok(()) => {
                for w in out.iter_mut() {
                    *w = u64::from_le(*w);
                }
                Ok(())
            }
            Err(Unread::Faulted) => {
                *self.map.borrow_mut() = None;
                Err(RecordError::Io(io::Error::other(
                    "the record file was truncated by another process while cbreak read it",
                )))
            }
            Err(Unread::Unguarded) => {
                *self.map.borrow_mut() = None;
                self.pread_words(first, out)
            }
        }
    }

    fn pread_words(&self, first: usize, out: &mut [u64]) -> Result<(), RecordError> {
        self.file
            .read_exact_at(bytemuck::cast_slice_mut(out), (first * 8) as u64)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => RecordError::Io(io::Error::other(
                    "the record file was truncated by another process while cbreak read it",
                )),
                _ => RecordError::Io(e),
            })?;
        for w in out.iter_mut() {
            *w = u64::from_le(*w);
        }
        Ok(())
    }

    /// Writes `words` at word `first`. A full disk (copy-on-write file
    /// systems need space to overwrite) is `ENOSPC` here, never a fault.
    fn write_words(&self, first: usize, words: &[u64]) -> io::Result<()> {
        let offset = (first * 8) as u64;
        if cfg!(target_endian = "little") {
            self.file.write_all_at(bytemuck::cast_slice(words), offset)
        } else {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            self.file.write_all_at(&bytes, offset)
        }
    }
}

/// `flock(2)`, waiting at most `wait` for a lock another process holds.
fn lock_within(file: &File, exclusive: bool, wait: Duration) -> Result<(), RecordError> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(1);
    loop {
        let tried = if exclusive {
            fs2::FileExt::try_lock_exclusive(file)
        } else {
            fs2::FileExt::try_lock_shared(file)
        };
        match tried {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
            Err(e) => return Err(RecordError::Io(e)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(RecordError::Busy(wait));
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// An open-file-description lock request on the probe byte (`fcntl(2)`,
/// `F_OFD_*`): owned by the open file, not the process, so it is released
/// exactly when the last descriptor of that open file closes — when its
/// owner exits or dies, in whatever pid namespace — and it is visible to
/// every process that opens the same file.
fn probe_lock(file: &File, cmd: libc::c_int, kind: libc::c_int) -> io::Result<libc::c_int> {
    // SAFETY: a zeroed flock is a valid value of the C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = PROBE_BYTE;
    fl.l_len = 1;
    // SAFETY: `file` is an open descriptor and `fl` a valid, writable flock
    // (OFD commands require l_pid == 0, which zeroing gave); fcntl(2) reads
    // and, for F_OFD_GETLK, writes only `fl`.
    if unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(libc::c_int::from(fl.l_type))
}

/// Whether another open file holds the probe lock of `file`; `None` when
/// the kernel cannot tell.
fn probe_lock_held(file: &File) -> Option<bool> {
    probe_lock(file, libc::F_OFD_GETLK, libc::F_WRLCK)
        .ok()
        .map(|kind| kind != libc::F_UNLCK)
}

/// Empties the slot of a probe owner that held the probe lock and no
/// longer does: the kernel dropped its lock because it is gone.
fn forget_gone_owner(file: &File, state: &mut BreakerState) {
    if state.probe.is_some_and(|slot| slot.owner.kernel_lock)
        && probe_lock_held(file) == Some(false)
    {
        state.probe = None;
    }
}

impl<'a> Guard<'a> {
    /// Whether the locked file is, or is becoming, a cbreak record (see
    /// [`looks_like_record`]).
    pub fn looks_like_record(&self) -> io::Result<bool> {
        self.record.looks_like_record()
    }

    /// Whether the path still names the locked file.
    pub fn still_at_path(&self) -> bool {
        self.record.still_at_path()
    }

    /// Marks the file as no longer the record at its path (mode 000), after
    /// it was moved aside and before it is deleted: whoever holds it open
    /// and locks it next opens the path again. Only the owner can; others
    /// notice the move by the path.
    pub fn retire(&self) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        self.record
            .file
            .set_permissions(std::fs::Permissions::from_mode(0o000))
    }

    /// Checks the locked file: still the record at its path, one link,
    /// owned as the access says, the right size, magic and version; a file
    /// whose creation never finished is initialised with `fresh`. On
    /// failure the lock is handed back with the reason, so that the caller
    /// may act on the file (move it aside) before unlocking.
    pub fn check(
        self,
        fresh: impl FnOnce() -> BreakerState,
    ) -> Result<Checked<'a>, (Guard<'a>, RecordError)> {
        match self.verify(fresh) {
            Ok(()) => Ok(Checked(self, Cell::new(None))),
            Err(e) => Err((self, e)),
        }
    }

    fn verify(&self, fresh: impl FnOnce() -> BreakerState) -> Result<(), RecordError> {
        let rec = self.record;
        let meta = rec.file.metadata()?;
        let len = check_meta(&meta)?;
        rec.access.check(&meta)?;
        if len == 0 {
            return self.create(fresh);
        }
        if len != RECORD_SIZE as u64 {
            let mut magic = [0u64];
            if len >= 8 {
                rec.pread_words(0, &mut magic)?;
            }
            return Err(damaged(len, magic[0]));
        }
        self.map()?;
        let mut header = [0u64; HEADER_WORDS];
        rec.read_words(0, &mut header)?;
        // The magic is written last: without it, creation never finished —
        // if the rest is what an unfinished creation leaves, and only then.
        if header[W_MAGIC] == 0 {
            let mut all = vec![0u64; WORDS];
            rec.read_words(0, &mut all)?;
            if !unfinished_creation(&all) {
                return Err(RecordError::Foreign(format!(
                    "{RECORD_SIZE} bytes, without cbreak's magic"
                )));
            }
            return self.initialize(&fresh());
        }
        check_header(header[W_MAGIC], header[W_VERSION], header[W_SIZE])
    }

    /// Makes an empty file a record: space first, so that a full disk is
    /// found now and leaves no empty record behind.
    fn create(&self, fresh: impl FnOnce() -> BreakerState) -> Result<(), RecordError> {
        let rec = self.record;
        // SAFETY: posix_fallocate(3) on an open descriptor touches no memory
        // of ours. It returns the error number instead of setting errno.
        let err = unsafe { libc::posix_fallocate(rec.file.as_raw_fd(), 0, RECORD_SIZE as _) };
        if err != 0 {
            // Whoever waits on this file's lock sees it gone and opens the
            // path again.
            if rec.still_at_path() {
                let _ = std::fs::remove_file(&rec.path);
            }
            return Err(RecordError::Io(io::Error::from_raw_os_error(err)));
        }
        // The umask took bits away at creation (a group's write bit, or all
        // of them under umask 0277): put the intended mode back. Only the
        // owner can; a record a group member created is theirs to set.
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = rec
                .file
                .set_permissions(std::fs::Permissions::from_mode(rec.access.mode));
        }
        self.map()?;
        self.initialize(&fresh())
    }

    /// Maps the record if it is read through a map (see
    /// [`Record::map_reads`]) and not mapped yet.
    fn map(&self) -> io::Result<()> {
        let rec = self.record;
        if rec.map_reads && rec.map.borrow().is_none() {
            let raw = MmapOptions::new()
                .len(RECORD_SIZE)
                .map_raw_read_only(&rec.file)?;
            // Without a guard (none left, or no handler), reads use pread.
            // SAFETY: `raw` is a read-only shared map of the record file,
            // page-aligned and RECORD_SIZE (a multiple of 8) bytes long; a
            // page of it faults only when another process cut the file
            // short (SIGBUS). `Mapped` declares the guard before the map, so
            // the guard is dropped before the map is unmapped.
            let guard = unsafe { Guarded::new(raw.as_ptr(), RECORD_SIZE) };
            *rec.map.borrow_mut() = Some(Mapped { guard, _raw: raw });
        }
        Ok(())
    }

    fn initialize(&self, state: &BreakerState) -> Result<(), RecordError> {
        let rec = self.record;
        let mut body = encode(state);
        body[B_SEQUENCE] = 0;
        seal(&mut body);
        rec.write_words(HEADER_WORDS, &body)?;
        rec.write_words(W_VERSION, &[VERSION, RECORD_SIZE as u64, 0, 0])?;
        // The magic last: a record with a magic is a whole record.
        rec.write_words(W_MAGIC, &[MAGIC])?;
        Ok(())
    }
}

impl<'a> Checked<'a> {
    /// Gives up the check, keeping the lock: for acting on a record whose
    /// state turned out unusable.
    pub fn into_guard(self) -> Guard<'a> {
        self.0
    }

    /// Reads the current state: the newest copy that is whole.
    pub fn load(&self) -> Result<BreakerState, RecordError> {
        let rec = self.0.record;
        // One read of the header and both copies' used words (with the
        // unused rest of copy 0 between them, cheaper than a second read).
        let mut image = [0u64; IMAGE_WORDS];
        rec.read_words(0, &mut image)?;
        let active = image[W_ACTIVE];
        if active > 1 {
            return Err(RecordError::Corrupt(format!("active body index {active}")));
        }
        // For `store`, which writes after the copy and sequence just read.
        self.1.set(Some([active, image[W_SEQUENCE]]));
        let body = |index: u64| image[body_start(index)..].first_chunk::<USED_WORDS>();
        match (body(active), body(active ^ 1)) {
            (Some(active), Some(other)) => newest(active, other).map_err(RecordError::Corrupt),
            _ => unreachable!("IMAGE_WORDS covers both bodies' used words"),
        }
    }

    /// Replaces the state: writes the inactive copy, then makes it active.
    /// A process killed in between leaves the previous state whole; a
    /// write torn by a power loss is caught by the copy's checksum, and
    /// [`Checked::load`] falls back to the other copy.
    pub fn store(&self, state: &BreakerState) -> Result<(), RecordError> {
        let rec = self.0.record;
        let [active, sequence] = match self.1.get() {
            Some(read) => read,
            None => {
                let mut header = [0u64; W_SEQUENCE + 1];
                rec.read_words(W_MAGIC, &mut header)?;
                [header[W_ACTIVE], header[W_SEQUENCE]]
            }
        };
        let next = (active ^ 1) & 1;
        let sequence = sequence.wrapping_add(1);
        let mut body = encode(state);
        body[B_SEQUENCE] = sequence;
        seal(&mut body);
        rec.write_words(body_start(next), &body)?;
        // The whole header, not just the switch: a record cut short behind
        // the lock's back and written again this way still says what it
        // is, and is moved aside as damaged rather than refused as foreign.
        rec.write_words(
            W_MAGIC,
            &[MAGIC, VERSION, RECORD_SIZE as u64, next, sequence],
        )?;
        self.1.set(Some([next, sequence]));
        Ok(())
    }

    /// Before the machine decides on `state`: when this call could take
    /// the probe slot, take the kernel's probe lock first. Getting it
    /// proves that a slot owner who held it is gone (its slot is emptied
    /// for the machine to take); not getting it proves that a process
    /// holding the slot is alive, whatever `/proc` shows.
    pub fn claim_probe(&self, state: &mut BreakerState, now: Millis) {
        let rec = self.0.record;
        if rec.probe_locked.get() || !state.may_take_probe(now) {
            return;
        }
        if probe_lock(&rec.file, libc::F_OFD_SETLK, libc::F_WRLCK).is_ok() {
            rec.probe_locked.set(true);
            if state.probe.is_some_and(|slot| slot.owner.kernel_lock) {
                state.probe = None;
            }
        }
    }

    /// After the machine decided: a slot this call took is stamped with
    /// whether its owner holds the probe lock, and the lock is kept for as
    /// long as this process holds the slot; otherwise it is given back.
    /// `before` is the slot as the machine saw it.
    pub fn settle_probe(&self, before: Option<ProbeSlot>, state: &mut BreakerState) {
        let rec = self.0.record;
        if let Some(slot) = &mut state.probe {
            let ours = rec.probe_owner.get() == Some(slot.owner);
            if Some(*slot) != before || ours {
                if !ours {
                    slot.owner.kernel_lock = rec.probe_locked.get();
                    rec.probe_owner.set(Some(slot.owner));
                }
                return;
            }
        }
        rec.probe_owner.set(None);
        if rec.probe_locked.replace(false) {
            let _ = probe_lock(&rec.file, libc::F_OFD_SETLK, libc::F_UNLCK);
        }
    }
}

/// The words [`Checked::load`] reads: the header and both bodies' used
/// words.
const IMAGE_WORDS: usize = HEADER_WORDS + BODY_WORDS + USED_WORDS;

fn body_start(index: u64) -> usize {
    HEADER_WORDS + BODY_WORDS * (index as usize & 1)
}

/// The checks of a locked record's metadata that need no content: a
/// regular file, the lock-file check and the hard-link check. Returns the
/// file's length.
fn check_meta(meta: &std::fs::Metadata) -> Result<u64, RecordError> {
    if !meta.file_type().is_file() {
        return Err(RecordError::Io(io::Error::other("not a regular file")));
    }
    if meta.nlink() == 0 {
        return Err(RecordError::Moved);
    }
    // Whoever moves a record aside retires it after the rename, under the
    // lock (mode 000, see `Guard::retire`): a retired file is no longer the
    // record at the path. One fstat instead of a path lookup on every lock.
    // An empty file is a record being created (under umask 0777 it has
    // mode 000 until `create` sets it).
    if meta.mode() & 0o777 == 0 && meta.len() != 0 {
        return Err(RecordError::Moved);
    }
    if meta.nlink() > 1 {
        return Err(RecordError::Io(io::Error::other(
            "the record has more than one hard link; refusing to use it",
        )));
    }
    Ok(meta.len())
}

/// What is wrong with a file of `len` bytes (not a record's size) that
/// starts with `magic`: a damaged record if it carries the magic, else not
/// a record at all.
fn damaged(len: u64, magic: u64) -> RecordError {
    if magic == MAGIC {
        RecordError::Corrupt(format!("size is {len} bytes, a record is {RECORD_SIZE}"))
    } else {
        RecordError::Foreign(format!("{len} bytes, without cbreak's magic"))
    }
}

/// Whether the file at `path` is, or is becoming, a cbreak record: empty,
/// or starting with the magic, or what an unfinished creation leaves.
/// Anything else is someone else's file.
pub fn looks_like_record(file: &File) -> io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut magic = [0u8; 8];
    if len < 8 {
        return Ok(false);
    }
    file.read_exact_at(&mut magic, 0)?;
    let magic = u64::from_le_bytes(magic);
    if magic == MAGIC {
        return Ok(true);
    }
    if magic != 0 || len != RECORD_SIZE as u64 {
        return Ok(false);
    }
    let mut bytes = vec![0u8; RECORD_SIZE];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(unfinished_creation(&words_of(&bytes)))
}

fn words_of(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}

/// Whether a record-sized file without the magic is exactly what a
/// creation interrupted before its last write leaves: zeros (after
/// `posix_fallocate`), with perhaps the header's other words and a whole
/// first copy of the state written. A file of the right size that holds
/// anything else is not cbreak's, and is never rewritten.
fn unfinished_creation(all: &[u64]) -> bool {
    if all.len() != WORDS || all[W_MAGIC] != 0 {
        return false;
    }
    let header = &all[1..HEADER_WORDS];
    let header_ok = header.iter().all(|&w| w == 0)
        || header[..4] == [VERSION, RECORD_SIZE as u64, 0, 0]
            && header[4..].iter().all(|&w| w == 0);
    let mut first = [0u64; USED_WORDS];
    first.copy_from_slice(&all[HEADER_WORDS..HEADER_WORDS + USED_WORDS]);
    let first_ok = first.iter().all(|&w| w == 0) || codec::is_sealed(&first);
    header_ok && first_ok && all[HEADER_WORDS + USED_WORDS..].iter().all(|&w| w == 0)
}

/// The header of a full-size record whose magic is set.
fn check_header(magic: u64, version: u64, size: u64) -> Result<(), RecordError> {
    if magic != MAGIC {
        return Err(RecordError::Foreign(format!(
            "{RECORD_SIZE} bytes, without cbreak's magic"
        )));
    }
    if version > VERSION && version <= PLAUSIBLE_VERSIONS {
        return Err(RecordError::NewerVersion(version));
    }
    if version != VERSION || size != RECORD_SIZE as u64 {
        return Err(RecordError::Corrupt(format!(
            "unknown format version {version}"
        )));
    }
    Ok(())
}

/// Reads the record at `path` without mapping it — open, shared lock, one
/// read, close — for `status`, `check` and `metrics`, which read many
/// records once each: a map and unmap per record would cost more than the
/// read. A probe owner that held the probe lock and is gone is shown gone.
pub fn read(path: &Path, access: Access) -> Result<BreakerState, RecordError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(open_flags())
        .open(path)?;
    lock_within(&file, false, access.lock_wait)?;
    let meta = file.metadata()?;
    let len = check_meta(&meta)?;
    access.check(&meta)?;
    if len == 0 {
        return Err(RecordError::Uninitialized);
    }
    if len != RECORD_SIZE as u64 {
        let mut magic = [0u8; 8];
        if len >= 8 {
            file.read_exact_at(&mut magic, 0)?;
        }
        return Err(damaged(len, u64::from_le_bytes(magic)));
    }
    let mut bytes = vec![0u8; RECORD_SIZE];
    file.read_exact_at(&mut bytes, 0)?;
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    };
    if word(W_MAGIC) == 0 {
        return Err(if unfinished_creation(&words_of(&bytes)) {
            RecordError::Uninitialized
        } else {
            RecordError::Foreign(format!("{RECORD_SIZE} bytes, without cbreak's magic"))
        });
    }
    check_header(word(W_MAGIC), word(W_VERSION), word(W_SIZE))?;
    let active = word(W_ACTIVE);
    if active > 1 {
        return Err(RecordError::Corrupt(format!("active body index {active}")));
    }
    let body = |index: u64| {
        let mut body = [0u64; USED_WORDS];
        for (i, w) in body.iter_mut().enumerate() {
            *w = word(body_start(index) + i);
        }
        body
    };
    let mut state = newest(&body(active), &body(active ^ 1)).map_err(RecordError::Corrupt)?;
    forget_gone_owner(&file, &mut state);
    drop(file); // unlocks
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::codec::tests::busy_state;
    use super::*;
    use crate::breaker::Policy;

    fn mine() -> Access {
        Access::private(crate::host::euid())
    }

    use proptest::prelude::*;

    proptest! {
        // The fuzz target `record` in small: arbitrary files, and valid
        // records with random bytes overwritten, through the file path.
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn no_file_content_panics_or_slips_through(
            junk in proptest::collection::vec(any::<u8>(), 0..9000),
            patch in proptest::collection::vec((0..RECORD_SIZE, any::<u8>()), 0..8),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut valid = Vec::new();
            {
                let path = dir.path().join("valid");
                let mut rec = Record::open_rw(&path, mine()).unwrap();
                rec.lock(busy_state).unwrap().store(&busy_state()).unwrap();
                valid = std::fs::read(&path).unwrap_or(valid);
            }
            let mut patched = valid.clone();
            for (at, byte) in &patch {
                patched[*at] = *byte;
            }
            for (name, bytes) in [("junk", &junk), ("patched", &patched)] {
                let path = dir.path().join(name);
                std::fs::write(&path, bytes).unwrap();
                let read_only = read(&path, mine());
                let mut rec = Record::open_rw(&path, mine()).unwrap();
                match rec.lock(BreakerState::default).and_then(|g| g.load()) {
                    Ok(s) => {
                        prop_assert!(s.is_consistent());
                        if let Ok(r) = &read_only {
                            prop_assert_eq!(r, &s, "status reads what run reads");
                        }
                        // Either the patch missed what is read, or it zeroed
                        // the magic: an unfinished creation, started afresh.
                        if name == "patched" {
                            let fresh = patched[..8] == [0; 8] && s == BreakerState::default();
                            prop_assert!(s == busy_state() || fresh, "{:?}", patch);
                        }
                    }
                    Err(
                        RecordError::Corrupt(_)
                        | RecordError::NewerVersion(_)
                        | RecordError::Foreign(_),
                    ) => {}
                    Err(e) => prop_assert!(false, "{name}: {e:?}"),
                }
            }
        }
    }

    #[test]
    fn layout_fits_the_body_with_room_to_grow() {
        let words = encode(&busy_state());
        let used = words[..USED_WORDS - 1]
            .iter()
            .rposition(|&w| w != 0)
            .unwrap();
        assert!(
            used < 244,
            "fields reach word {used}; the module docs say 243"
        );
        assert_eq!(HEADER_WORDS + 2 * BODY_WORDS, WORDS);
    }

    #[test]
    fn record_file_stores_and_loads_read_or_mapped() {
        for mapped in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("b");
            let mut rec = Record::open_rw(&path, mine()).unwrap();
            if mapped {
                rec.map_reads();
            }
            let fresh = BreakerState::new(5, 1, Policy::default());
            let g = rec.lock(|| fresh).unwrap();
            assert_eq!(g.load().unwrap(), fresh);
            let busy = busy_state();
            g.store(&busy).unwrap();
            // A second store under the same lock writes after the first.
            let mut busier = busy;
            busier.generation += 1;
            g.store(&busier).unwrap();
            assert_eq!(g.load().unwrap(), busier, "mapped: {mapped}");
            drop(g);
            assert_eq!(rec.map.borrow().is_some(), mapped);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), RECORD_SIZE as u64);
            assert_eq!(read(&path, mine()).unwrap(), busier);
            let g = rec.lock(|| fresh).unwrap();
            assert_eq!(g.load().unwrap(), busier, "mapped: {mapped}");
        }
    }

    #[test]
    fn reader_of_an_empty_file_sees_it_uninitialized() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        File::create(&path).unwrap();
        assert!(matches!(
            read(&path, mine()),
            Err(RecordError::Uninitialized)
        ));
    }

    #[test]
    fn foreign_files_are_left_alone_and_damaged_records_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        for foreign in [
            b"hello".to_vec(),
            vec![7u8; RECORD_SIZE],
            vec![7u8; 100_000],
        ] {
            std::fs::write(&path, &foreign).unwrap();
            let mut rec = Record::open_rw(&path, mine()).unwrap();
            assert!(matches!(
                rec.lock(BreakerState::default),
                Err(RecordError::Foreign(_))
            ));
            assert!(matches!(read(&path, mine()), Err(RecordError::Foreign(_))));
            assert!(!looks_like_record(&File::open(&path).unwrap()).unwrap());
            assert_eq!(std::fs::read(&path).unwrap(), foreign, "untouched");
        }
        // A record cut short keeps its magic: damaged, not foreign.
        std::fs::remove_file(&path).unwrap();
        Record::open_rw(&path, mine())
            .unwrap()
            .lock(busy_state)
            .unwrap()
            .store(&busy_state())
            .unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(5000)
            .unwrap();
        assert!(looks_like_record(&File::open(&path).unwrap()).unwrap());
        let mut rec = Record::open_rw(&path, mine()).unwrap();
        assert!(matches!(
            rec.lock(BreakerState::default),
            Err(RecordError::Corrupt(_))
        ));
    }

    #[test]
    fn newer_version_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        let mut bytes = vec![0u8; RECORD_SIZE];
        bytes[..8].copy_from_slice(&MAGIC.to_le_bytes());
        bytes[8..16].copy_from_slice(&2u64.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let mut rec = Record::open_rw(&path, mine()).unwrap();
        assert!(matches!(
            rec.lock(BreakerState::default),
            Err(RecordError::NewerVersion(2))
        ));
    }

    #[test]
    fn retired_or_deleted_file_is_noticed_after_locking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        let mut rec = Record::open_rw(&path, mine()).unwrap();
        let mut other = Record::open_rw(&path, mine()).unwrap();
        {
            let g = other.lock(BreakerState::default).unwrap();
            g.retire().unwrap();
            std::fs::rename(&path, dir.path().join("elsewhere")).unwrap();
        }
        assert!(matches!(
            rec.lock(BreakerState::default),
            Err(RecordError::Moved)
        ));
        let path2 = dir.path().join("c");
        let mut rec = Record::open_rw(&path2, mine()).unwrap();
        std::fs::remove_file(&path2).unwrap();
        assert!(matches!(
            rec.lock(BreakerState::default),
            Err(RecordError::Moved)
        ));
    }

    #[test]
    fn hard_linked_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        let mut rec = Record::open_rw(&path, mine()).unwrap();
        drop(rec.lock(BreakerState::default).unwrap());
        std::fs::hard_link(&path, dir.path().join("other")).unwrap();
        assert!(matches!(
            rec.lock(BreakerState::default),
            Err(RecordError::Io(_))
        ));
    }

    #[test]
    fn symlink_at_the_path_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let path = dir.path().join("b");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(Record::open_rw(&path, mine()).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    }
}
