//! The on-disk breaker record: layout, mapping, locking and validation.
//!
//! Owns the bytes of one breaker's file and nothing above them: it turns a
//! [`BreakerState`] into words and back, maps the file shared, and guards
//! every access with `flock(2)`. Where the file lives and what to do with a
//! corrupt one is `store`'s business; what the state means is `breaker`'s.
//!
//! # Layout (version 1)
//!
//! A record is exactly [`RECORD_SIZE`] = 8192 bytes, preallocated with
//! `posix_fallocate` so that stores through the map cannot fault on a full
//! disk. It is an array of little-endian `u64` words, every one read and
//! written as an `AtomicU64` through a `MAP_SHARED` mapping.
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use crate::breaker::{
    Backoff, BreakerState, CodeSet, Counters, Millis, Mode, Owner, Policy, ProbeSlot, State, Window,
};
use crate::fault::Guarded;
use crate::history::{History, Recent};
use crate::window::{Bucket, COUNT_WORDS, CountWindow, TIME_BUCKETS, TimeWindow};

pub const MAGIC: u64 = u64::from_le_bytes(*b"cbreak\0\x01");
pub const VERSION: u64 = 1;
pub const RECORD_SIZE: usize = 8192;
const WORDS: usize = RECORD_SIZE / 8;
const HEADER_WORDS: usize = 8;
/// Words set aside for each copy of the state.
pub const BODY_WORDS: usize = (WORDS - HEADER_WORDS) / 2;
/// Words of a body that this version reads, writes and checksums; the rest
/// of each body is reserved for later versions.
pub const USED_WORDS: usize = 256;
/// The body word that holds the sequence number of the store that wrote
/// the body (covered by the checksum).
const B_SEQUENCE: usize = USED_WORDS - 2;

const W_MAGIC: usize = 0;
const W_VERSION: usize = 1;
const W_SIZE: usize = 2;
const W_ACTIVE: usize = 3;
const W_SEQUENCE: usize = 4;
// `Guard::store` reads and writes the two as one pair.
const _: () = assert!(W_SEQUENCE == W_ACTIVE + 1);

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
    /// A private directory of user `uid`.
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
/// declared first so that it is dropped before the map is unmapped.
struct Mapped {
    guard: Option<Guarded>,
    raw: MmapRaw,
}

/// One breaker's file, open and (once locked) mapped.
pub struct Record {
    file: File,
    path: PathBuf,
    access: Access,
    map: RefCell<Option<Mapped>>,
    /// A guard exists: there is at most one per record, because dropping
    /// either of two would unlock both (one `flock` per open file).
    locked: Cell<bool>,
    /// This open file holds the probe lock.
    probe_locked: Cell<bool>,
    /// The probe slot's owner as this process stamped it when it took the
    /// slot, while it holds it.
    probe_owner: Cell<Option<Owner>>,
}

/// Proof that this process holds the record's lock; unlocks on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct Guard<'a> {
    record: &'a Record,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // Closing the file would release the lock too; an unlock error
        // leaves nothing to do.
        let _ = fs2::FileExt::unlock(&self.record.file);
        self.record.locked.set(false);
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
            locked: Cell::new(false),
            probe_locked: Cell::new(false),
            probe_owner: Cell::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the exclusive lock, then checks that the path still names this
    /// file and that it is a valid record, initialising a new one with
    /// `fresh` when the file is empty.
    pub fn lock(&self, fresh: impl FnOnce() -> BreakerState) -> Result<Guard<'_>, RecordError> {
        let guard = self.lock_raw()?;
        guard.check(fresh)?;
        Ok(guard)
    }

    /// Takes the exclusive lock, waiting at most the access's lock wait,
    /// and checks nothing: for moving or deleting the file, or for checking
    /// it with [`Guard::check`] while keeping the lock whatever the check
    /// finds.
    pub fn lock_raw(&self) -> Result<Guard<'_>, RecordError> {
        if self.locked.replace(true) {
            return Err(RecordError::Io(io::Error::other(
                "the record is already locked by this process",
            )));
        }
        match lock_within(&self.file, true, self.access.lock_wait) {
            Ok(()) => Ok(Guard { record: self }),
            Err(e) => {
                self.locked.set(false);
                Err(e)
            }
        }
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
    /// signal, and drops the map.
    fn read_words(&self, first: usize, out: &mut [u64]) -> Result<(), RecordError> {
        let map = self.map.borrow();
        let Some(mapped) = map.as_ref().filter(|m| m.guard.is_some()) else {
            drop(map);
            return self.pread_words(first, out);
        };
        assert!(first + out.len() <= WORDS, "read within the record");
        // SAFETY: the mapping is page-aligned (so aligned for AtomicU64) and
        // RECORD_SIZE = WORDS * 8 bytes long, and lives while `map` is
        // borrowed. AtomicU64 has the size and alignment of u64. The bytes
        // are only read, and only through these atomics, so writes by other
        // processes (pwrite, under the lock) race with nothing that Rust
        // assumes. A page that vanished because the file was truncated would
        // fault: `fault::Guarded` covers the whole mapping and turns that
        // into a zero page and a flag, checked below.
        let words =
            unsafe { std::slice::from_raw_parts(mapped.raw.as_ptr().cast::<AtomicU64>(), WORDS) };
        for (dst, src) in out.iter_mut().zip(&words[first..]) {
            *dst = src.load(Ordering::Acquire);
        }
        if mapped.guard.as_ref().is_some_and(Guarded::faulted) {
            drop(map);
            *self.map.borrow_mut() = None;
            return Err(RecordError::Io(io::Error::other(
                "the record file was truncated by another process while cbreak read it",
            )));
        }
        Ok(())
    }

    fn pread_words(&self, first: usize, out: &mut [u64]) -> Result<(), RecordError> {
        let mut bytes = vec![0u8; out.len() * 8];
        self.file
            .read_exact_at(&mut bytes, (first * 8) as u64)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => RecordError::Io(io::Error::other(
                    "the record file was truncated by another process while cbreak read it",
                )),
                _ => RecordError::Io(e),
            })?;
        for (dst, src) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            *dst = u64::from_le_bytes(src.try_into().unwrap_or([0; 8]));
        }
        Ok(())
    }

    /// Writes `words` at word `first`. A full disk (copy-on-write file
    /// systems need space to overwrite) is `ENOSPC` here, never a fault.
    fn write_words(&self, first: usize, words: &[u64]) -> io::Result<()> {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        self.file.write_all_at(&bytes, (first * 8) as u64)
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

impl Guard<'_> {
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

    /// Checks the locked file as [`Record::lock`] does: still the record at
    /// its path, one link, owned as the access says, the right size, magic
    /// and version; a file whose creation never finished is initialised
    /// with `fresh`.
    pub fn check(&self, fresh: impl FnOnce() -> BreakerState) -> Result<(), RecordError> {
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
        // The magic is written last: without it, creation never finished.
        if header[W_MAGIC] == 0 {
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

    fn map(&self) -> io::Result<()> {
        let rec = self.record;
        if rec.map.borrow().is_none() {
            let raw = MmapOptions::new()
                .len(RECORD_SIZE)
                .map_raw_read_only(&rec.file)?;
            // Without a guard (none left, or no handler), reads use pread.
            let guard = Guarded::new(raw.as_ptr(), RECORD_SIZE);
            *rec.map.borrow_mut() = Some(Mapped { guard, raw });
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

    /// Reads the current state: the newest copy that is whole.
    pub fn load(&self) -> Result<BreakerState, RecordError> {
        let rec = self.record;
        let mut header = [0u64; HEADER_WORDS];
        rec.read_words(0, &mut header)?;
        let active = header[W_ACTIVE];
        if active > 1 {
            return Err(RecordError::Corrupt(format!("active body index {active}")));
        }
        let mut bodies = [[0u64; USED_WORDS]; 2];
        rec.read_words(body_start(active), &mut bodies[0])?;
        rec.read_words(body_start(active ^ 1), &mut bodies[1])?;
        newest(&bodies[0], &bodies[1]).map_err(RecordError::Corrupt)
    }

    /// Replaces the state: writes the inactive copy, then makes it active.
    /// A process killed in between leaves the previous state whole; a
    /// write torn by a power loss is caught by the copy's checksum, and
    /// [`Guard::load`] falls back to the other copy.
    pub fn store(&self, state: &BreakerState) -> Result<(), RecordError> {
        let rec = self.record;
        let mut header = [0u64; 2];
        rec.read_words(W_ACTIVE, &mut header)?;
        let next = (header[0] ^ 1) & 1;
        let sequence = header[1].wrapping_add(1);
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
        Ok(())
    }

    /// Before the machine decides on `state`: when this call could take
    /// the probe slot, take the kernel's probe lock first. Getting it
    /// proves that a slot owner who held it is gone (its slot is emptied
    /// for the machine to take); not getting it proves that a process
    /// holding the slot is alive, whatever `/proc` shows.
    pub fn claim_probe(&self, state: &mut BreakerState, now: Millis) {
        let rec = self.record;
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
        let rec = self.record;
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

fn body_start(index: u64) -> usize {
    HEADER_WORDS + BODY_WORDS * (index as usize & 1)
}

/// The state in the newest whole copy: the active one, unless the other
/// is whole and newer (a store whose switch of copies was lost).
fn newest(active: &[u64; USED_WORDS], other: &[u64; USED_WORDS]) -> Result<BreakerState, String> {
    let order =
        if is_sealed(other) && (!is_sealed(active) || other[B_SEQUENCE] > active[B_SEQUENCE]) {
            [other, active]
        } else {
            [active, other]
        };
    let mut first_error = None;
    for body in order {
        match decode(body) {
            Ok(state) => return Ok(state),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_default())
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
/// or starting with the magic, or record-sized with the magic not yet
/// written. Anything else is someone else's file.
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
    Ok(magic == MAGIC || magic == 0 && len == RECORD_SIZE as u64)
}

/// The header of a full-size record whose magic is set.
fn check_header(magic: u64, version: u64, size: u64) -> Result<(), RecordError> {
    if magic != MAGIC {
        return Err(RecordError::Foreign(format!(
            "{RECORD_SIZE} bytes, without cbreak's magic"
        )));
    }
    if version > VERSION {
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
        return Err(RecordError::Uninitialized);
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

/// Fletcher's two running sums over a body's words 1..255 (catches damage,
/// not malice), in four interleaved lanes so that the additions do not wait
/// on each other, folded at the end. Stored apart, in words 0 and 255: any
/// one changed word changes the first sum (every step is a bijection of its
/// lane), a swap of two words the second. Additions only: a multiply per
/// word would cost more than the rest of a store.
pub fn checksum(words: &[u64]) -> (u64, u64) {
    let mut a = [
        0x243f_6a88_85a3_08d3u64,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ];
    let mut b = [
        0x4528_21e6_38d0_1377u64,
        0xbe54_66cf_34e9_0c6c,
        0xc0ac_29b7_c97c_50dd,
        0x3f84_d5b5_b547_0917,
    ];
    let chunks = words.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        for i in 0..4 {
            a[i] = a[i].wrapping_add(chunk[i]);
            b[i] = b[i].wrapping_add(a[i]);
        }
    }
    for (i, &w) in tail.iter().enumerate() {
        a[i] = a[i].wrapping_add(w);
        b[i] = b[i].wrapping_add(a[i]);
    }
    let fold = |lanes: [u64; 4]| {
        lanes.iter().enumerate().fold(0u64, |h, (i, &l)| {
            h.wrapping_add(l.rotate_left(16 * i as u32))
        })
    };
    (fold(a), fold(b))
}

/// Writes the checksum into a body (words 0 and 255).
pub fn seal(words: &mut [u64; USED_WORDS]) {
    (words[0], words[USED_WORDS - 1]) = checksum(&words[1..USED_WORDS - 1]);
}

fn is_sealed(words: &[u64; USED_WORDS]) -> bool {
    checksum(&words[1..USED_WORDS - 1]) == (words[0], words[USED_WORDS - 1])
}

struct Writer<'a> {
    slots: std::slice::IterMut<'a, u64>,
}

impl Writer<'_> {
    fn put(&mut self, w: u64) {
        if let Some(slot) = self.slots.next() {
            *slot = w;
        }
    }
}

struct Reader<'a> {
    words: std::slice::Iter<'a, u64>,
}

impl Reader<'_> {
    fn get(&mut self) -> u64 {
        self.words.next().copied().unwrap_or(0)
    }

    fn get_u32(&mut self, what: &str) -> Result<u32, String> {
        let w = self.get();
        u32::try_from(w).map_err(|_| format!("{what} out of range: {w}"))
    }

    fn get_state(&mut self) -> Result<State, String> {
        let w = self.get();
        State::from_index(w).ok_or_else(|| format!("unknown state {w}"))
    }
}

/// The body's words for `s`, checksum included.
pub fn encode(s: &BreakerState) -> [u64; USED_WORDS] {
    let mut words = [0; USED_WORDS];
    let mut w = Writer {
        slots: words[1..USED_WORDS - 1].iter_mut(),
    };
    w.put(s.state.index() as u64);
    w.put(match s.mode {
        Mode::Normal => 0,
        Mode::Disabled => 1,
    });
    w.put(s.generation);
    w.put(s.consecutive_failures);
    w.put(s.opened_at);
    w.put(s.next_probe_at);
    w.put(s.recovery);
    w.put(s.reopens);
    let slot = s.probe.unwrap_or_default();
    // 0 free, 1 held, 2 held by an owner that holds the probe lock.
    w.put(match s.probe {
        None => 0,
        Some(slot) => 1 + u64::from(slot.owner.kernel_lock),
    });
    w.put(u64::from(slot.owner.pid));
    w.put(slot.owner.start_time);
    w.put(slot.owner.boot_id);
    w.put(slot.lease_until);
    w.put(s.probe_successes);
    let c = &s.counters;
    for v in [
        c.calls,
        c.successes,
        c.failures,
        c.ignored,
        c.cancelled,
        c.rejected,
        c.slow,
        c.timeouts,
    ] {
        w.put(v);
    }
    for v in s.transitions {
        w.put(v);
    }
    w.put(s.created_at);
    w.put(s.updated_at);
    let p = &s.policy;
    w.put(u64::from(p.threshold));
    w.put(p.recovery);
    w.put(u64::from(p.failure_rate.unwrap_or(0)));
    let (kind, size) = match p.window {
        Window::None => (0, 0),
        Window::Count(n) => (1, u64::from(n)),
        Window::Time(ms) => (2, ms),
    };
    w.put(kind);
    w.put(size);
    w.put(u64::from(p.min_calls));
    w.put(p.slow.unwrap_or(0));
    w.put(p.timeout.unwrap_or(0));
    w.put(p.kill_after);
    for v in p.success_codes.0.into_iter().chain(p.ignore_codes.0) {
        w.put(v);
    }
    w.put(match p.backoff {
        Backoff::Constant => 0,
        Backoff::Exponential => 1,
    });
    w.put(u64::from(p.backoff_factor_milli));
    w.put(p.max_recovery);
    w.put(u64::from(p.jitter_percent));
    w.put(u64::from(p.probes));
    for v in s.count_window.bits {
        w.put(v);
    }
    w.put(u64::from(s.count_window.head));
    w.put(u64::from(s.count_window.len));
    w.put(u64::from(s.count_window.failures));
    for b in s.time_window.buckets {
        w.put(b.epoch);
        w.put(u64::from(b.successes) << 32 | u64::from(b.failures));
    }
    w.put(s.recent.bits);
    w.put(u64::from(s.recent.len));
    w.put(u64::from(s.history.head));
    w.put(u64::from(s.history.len));
    for e in &s.history.entries {
        for &word in e {
            w.put(word);
        }
    }
    // Words 242–243, added within version 1: they were reserved and zero,
    // so an older record reads as "never", and an older cbreak, which
    // reads no further than word 241, ignores them.
    w.put(s.last_success_at);
    w.put(s.last_failure_at);
    seal(&mut words);
    words
}

/// The state in a body's words, or what is wrong with them.
pub fn decode(words: &[u64; USED_WORDS]) -> Result<BreakerState, String> {
    if !is_sealed(words) {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader {
        words: words[1..USED_WORDS - 1].iter(),
    };
    let mut s = BreakerState {
        state: r.get_state()?,
        mode: match r.get() {
            0 => Mode::Normal,
            1 => Mode::Disabled,
            m => return Err(format!("unknown mode {m}")),
        },
        generation: r.get(),
        consecutive_failures: r.get(),
        opened_at: r.get(),
        next_probe_at: r.get(),
        recovery: r.get(),
        reopens: r.get(),
        ..BreakerState::default()
    };
    let held = r.get();
    let slot = ProbeSlot {
        owner: Owner {
            pid: r.get_u32("probe pid")?,
            start_time: r.get(),
            boot_id: r.get(),
            kernel_lock: held == 2,
        },
        lease_until: r.get(),
    };
    s.probe = match held {
        0 => None,
        1 | 2 => Some(slot),
        h => return Err(format!("probe flag {h}")),
    };
    s.probe_successes = r.get();
    s.counters = Counters {
        calls: r.get(),
        successes: r.get(),
        failures: r.get(),
        ignored: r.get(),
        cancelled: r.get(),
        rejected: r.get(),
        slow: r.get(),
        timeouts: r.get(),
    };
    for t in &mut s.transitions {
        *t = r.get();
    }
    s.created_at = r.get();
    s.updated_at = r.get();
    let mut p = Policy {
        threshold: r.get_u32("threshold")?,
        recovery: r.get(),
        failure_rate: match r.get_u32("failure rate")? {
            0 => None,
            bp @ 1..=10_000 => Some(bp),
            bp => return Err(format!("failure rate {bp} basis points")),
        },
        ..Policy::default()
    };
    let (kind, size) = (r.get(), r.get());
    p.window = match kind {
        0 => Window::None,
        1 => match u32::try_from(size) {
            Ok(n @ 1..=crate::window::MAX_COUNT_WINDOW) => Window::Count(n),
            _ => return Err(format!("count window of {size}")),
        },
        2 if size > 0 => Window::Time(size),
        _ => return Err(format!("window kind {kind} of {size}")),
    };
    p.min_calls = r.get_u32("min calls")?;
    p.slow = Some(r.get()).filter(|&ms| ms > 0);
    p.timeout = Some(r.get()).filter(|&ms| ms > 0);
    p.kill_after = r.get();
    let mut codes = [[0u64; 4]; 2];
    for set in &mut codes {
        for w in set.iter_mut() {
            *w = r.get();
        }
    }
    p.success_codes = CodeSet(codes[0]);
    p.ignore_codes = CodeSet(codes[1]);
    p.backoff = match r.get() {
        0 => Backoff::Constant,
        1 => Backoff::Exponential,
        b => return Err(format!("unknown backoff {b}")),
    };
    p.backoff_factor_milli = r.get_u32("backoff factor")?;
    p.max_recovery = r.get();
    p.jitter_percent = r.get_u32("jitter")?;
    p.probes = r.get_u32("probes")?;
    s.policy = p;
    let mut cw = CountWindow::default();
    for w in cw.bits.iter_mut().take(COUNT_WORDS) {
        *w = r.get();
    }
    cw.head = r.get_u32("window head")?;
    cw.len = r.get_u32("window length")?;
    cw.failures = r.get_u32("window failures")?;
    s.count_window = cw;
    let mut tw = TimeWindow::default();
    for b in tw.buckets.iter_mut().take(TIME_BUCKETS) {
        let epoch = r.get();
        let counts = r.get();
        *b = Bucket {
            epoch,
            successes: (counts >> 32) as u32,
            failures: counts as u32,
        };
    }
    s.time_window = tw;
    s.recent = Recent {
        bits: r.get(),
        len: r.get_u32("recent length")?,
    };
    let mut h = History {
        head: r.get_u32("history head")?,
        len: r.get_u32("history length")?,
        ..History::default()
    };
    for e in h.entries.iter_mut() {
        for word in e.iter_mut() {
            *word = r.get();
        }
    }
    s.history = h;
    s.last_success_at = r.get();
    s.last_failure_at = r.get();
    if !s.is_consistent() {
        return Err("state breaks the breaker's invariants".into());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::tests::FakeHost;
    use crate::breaker::{Admission, Call, Outcome};

    fn mine() -> Access {
        Access::private(crate::host::euid())
    }

    fn busy_state() -> BreakerState {
        let p = Policy {
            threshold: 3,
            recovery: 2_000,
            failure_rate: Some(4_000),
            window: Window::Count(16),
            min_calls: 2,
            slow: Some(250),
            timeout: Some(900),
            backoff: Backoff::Exponential,
            jitter_percent: 10,
            probes: 2,
            ..Policy::default()
        };
        let mut h = FakeHost::at(1_700_000_000_000);
        let mut s = BreakerState::new(h.now, 7, p);
        for i in 0..40u64 {
            h.now += 700;
            if let (Admission::Run(t), _) = s.admit(&p, &mut h) {
                let outcome = if i % 3 == 0 {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
                s.record(
                    t,
                    Call {
                        outcome,
                        slow: i % 5 == 0,
                        timed_out: false,
                    },
                    &mut h,
                );
            }
        }
        s
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
                let rec = Record::open_rw(&path, mine()).unwrap();
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
                let rec = Record::open_rw(&path, mine()).unwrap();
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
    fn encode_decode_round_trips() {
        let s = busy_state();
        assert!(s.history.len > 2, "the sample exercises the history");
        assert_eq!(decode(&encode(&s)), Ok(s));
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
    fn any_flipped_bit_is_caught() {
        let words = encode(&busy_state());
        for i in [0, 1, 5, 17, 60, 115, 241, 250, USED_WORDS - 1] {
            let mut bad = words;
            bad[i] ^= 1 << (i % 64);
            assert!(decode(&bad).is_err(), "word {i}");
        }
    }

    #[test]
    fn valid_checksum_over_impossible_state_is_rejected() {
        let mut words = encode(&busy_state());
        words[1] = 9; // no such state
        seal(&mut words);
        assert_eq!(decode(&words), Err("unknown state 9".to_string()));
        let mut words = encode(&busy_state());
        words[15] += 1; // calls no longer the sum of the outcomes
        seal(&mut words);
        assert!(decode(&words).is_err());
    }

    #[test]
    fn record_file_stores_and_loads_through_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        let rec = Record::open_rw(&path, mine()).unwrap();
        let fresh = BreakerState::new(5, 1, Policy::default());
        let g = rec.lock(|| fresh).unwrap();
        assert_eq!(g.load().unwrap(), fresh);
        let busy = busy_state();
        g.store(&busy).unwrap();
        drop(g);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), RECORD_SIZE as u64);
        assert_eq!(read(&path, mine()).unwrap(), busy);
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
            let rec = Record::open_rw(&path, mine()).unwrap();
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
        let rec = Record::open_rw(&path, mine()).unwrap();
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
        let rec = Record::open_rw(&path, mine()).unwrap();
        assert!(matches!(
            rec.lock(BreakerState::default),
            Err(RecordError::NewerVersion(2))
        ));
    }

    #[test]
    fn retired_or_deleted_file_is_noticed_after_locking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        let rec = Record::open_rw(&path, mine()).unwrap();
        let other = Record::open_rw(&path, mine()).unwrap();
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
        let rec = Record::open_rw(&path2, mine()).unwrap();
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
        let rec = Record::open_rw(&path, mine()).unwrap();
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
