//! A guard that turns a `SIGBUS` on a record's mapped pages into an error.
//!
//! Owns one process-wide `SIGBUS` handler and a small table of guarded
//! address ranges. Nothing else: what to do after a fault is `record`'s.
//!
//! A shared mapping faults where a system call would return an error: a
//! page past the end of a file that another process truncated (or replaced
//! with `cp`, which truncates first) raises `SIGBUS` when touched, and the
//! default action kills cbreak before it runs the command it guards. The
//! record is only ever *read* through its map (writes go through `pwrite`,
//! see `record`), so the handler can make the faulting read harmless: it
//! maps a zero page over the faulting one (`MAP_FIXED`), marks the range
//! faulted and returns; the read finishes on zeros, and the reader checks
//! [`Guarded::faulted`] afterwards and treats what it read as unusable.
//!
//! A fault outside every guarded range is not ours: the handler puts back
//! the action that was installed before it (std's stack-overflow handler,
//! or the default) and returns, so the faulting instruction runs again and
//! meets that action, exactly as if this module did not exist.

use std::sync::Once;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many mappings can be guarded at once. cbreak maps one record per
/// breaker it holds open; a library user holding more gets unguarded maps
/// refused (see [`Guarded::new`]) rather than a silent hole.
const SLOTS: usize = 64;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
    used: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
    used: AtomicBool::new(false),
};

static SLOT_TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(0);
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A guarded address range; unguarded again on drop. Drop it before the
/// range is unmapped.
pub struct Guarded {
    index: usize,
}

impl Guarded {
    /// Guards `len` bytes at `start`, installing the handler on first use.
    /// `None` when the handler cannot be installed or every slot is taken:
    /// the caller must then not read through the map.
    pub fn new(start: *const u8, len: usize) -> Option<Guarded> {
        install();
        if !INSTALLED.load(Ordering::Acquire) {
            return None;
        }
        for (index, slot) in SLOT_TABLE.iter().enumerate() {
            if slot
                .used
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.faulted.store(false, Ordering::Relaxed);
                slot.start.store(start as usize, Ordering::Relaxed);
                slot.len.store(len, Ordering::Release);
                return Some(Guarded { index });
            }
        }
        None
    }

    /// Whether a read in the range has faulted since the guard was made.
    /// Once it has, the range holds zero pages where the file's were: the
    /// mapping must be dropped and made again.
    pub fn faulted(&self) -> bool {
        SLOT_TABLE[self.index].faulted.load(Ordering::Acquire)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let slot = &SLOT_TABLE[self.index];
        slot.len.store(0, Ordering::Release);
        slot.start.store(0, Ordering::Relaxed);
        slot.used.store(false, Ordering::Release);
    }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf(3) only reads a constant of the system.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        PAGE.store(usize::try_from(page).unwrap_or(4096), Ordering::Relaxed);
        // SAFETY: a zeroed sigaction is a valid value of the C struct (no
        // handler, empty mask, no flags); it is filled in below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        // SAFETY: a zeroed sigaction is a valid out-parameter.
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: `action` is a fully initialised sigaction whose handler
        // has the three-argument signature SA_SIGINFO requires, and
        // `previous` is a valid place for the old one.
        let installed = unsafe { libc::sigaction(libc::SIGBUS, &action, &mut previous) } == 0;
        if installed {
            let _ = PREVIOUS.set(previous);
            INSTALLED.store(true, Ordering::Release);
        }
    });
}

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // Only async-signal-safe work here: atomic loads and stores, mmap(2)
    // and sigaction(2) (system calls; no locks, no allocation).
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler;
    // for SIGBUS, si_addr is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed).max(1);
    for slot in &SLOT_TABLE {
        let len = slot.len.load(Ordering::Acquire);
        let start = slot.start.load(Ordering::Relaxed);
        if len != 0 && addr >= start && addr - start < len {
            let at = addr & !(page - 1);
            // SAFETY: `at` is the start of a page inside a range that a live
            // `Guarded` says is mapped by a record (the record keeps the map
            // until after it drops the guard), so MAP_FIXED replaces only
            // that page of that mapping with a private zero page, which the
            // reader's retried load can read. No other code holds a
            // reference into the range: record reads it only through
            // atomics, copying values out.
            unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                );
            }
            slot.faulted.store(true, Ordering::Release);
            return;
        }
    }
    // Not a record's page: give the fault back to whoever had it before.
    if let Some(previous) = PREVIOUS.get() {
        // SAFETY: `previous` is the action sigaction(2) reported when the
        // handler was installed; putting it back is what a process without
        // this module would have. Returning re-runs the faulting
        // instruction, which then meets that action.
        unsafe {
            libc::sigaction(libc::SIGBUS, previous, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::io::AsRawFd;

    #[test]
    fn a_read_past_a_truncated_file_sets_the_flag_instead_of_killing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let map = memmap2::MmapOptions::new()
            .len(8192)
            .map_raw_read_only(&file)
            .unwrap();
        let guard = Guarded::new(map.as_ptr(), 8192).unwrap();
        let word = |i: usize| {
            // SAFETY: i < 1024, so the u64 at byte 8*i lies inside the
            // 8192-byte, page-aligned mapping; the load is volatile so the
            // compiler cannot drop it.
            unsafe { std::ptr::read_volatile(map.as_ptr().cast::<u64>().add(i)) }
        };
        assert_eq!(word(1000), u64::from_le_bytes([7; 8]));
        assert!(!guard.faulted());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        // Past the end of the file now: without the guard, SIGBUS.
        assert_eq!(word(1000), 0);
        assert!(guard.faulted());
        drop(guard);
        drop(map);
        let _ = file.as_raw_fd();
    }
}
