//! A guard that turns a `SIGBUS` on a record's mapped pages into an error.
//!
//! Owns one process-wide `SIGBUS` handler, a small table of guarded address
//! ranges, and the one routine that reads them ([`Guarded::read`]). Nothing
//! else: what to do after a fault is `record`'s.
//!
//! A shared mapping faults where a system call would return an error: a
//! page past the end of a file that another process truncated (or replaced
//! with `cp`, which truncates first) raises `SIGBUS` when touched, and the
//! default action kills the process. The record is only ever *read* through
//! its map (writes go through `pwrite`, see `record`).
//!
//! # How a fault becomes an error
//!
//! Every read of a guarded range goes through `arch::copy`, a few
//! instructions of assembly whose first instruction is its only load from
//! the map. When that load faults, the handler does not return to it: the
//! page is still past the end of the file, so the load would fault again,
//! forever, while the reader holds the record's `flock` and the `Breaker`'s
//! mutex. It moves the thread's saved program counter to `arch::faulted`
//! instead, which returns from `copy` as a copy that stopped early would.
//! The reader gets [`Unread::Faulted`]; `record` drops the map and reports
//! the truncation, and maps the file again, after checking its size under
//! the lock, on its next lock. This is the exception table of the Linux
//! kernel's `copy_from_user`, for one instruction.
//!
//! The handler repairs nothing. (It used to map a zero page over the
//! faulting one with `mmap(MAP_FIXED)`, which can fail, at
//! `vm.max_map_count` for one, and then the load repeated forever.) With
//! nothing to fail there is no failure path to loop on: a page that stays
//! unreadable faults once per read, and every read returns.
//!
//! A `SIGBUS` is ours only when all three hold: `si_code` says the kernel
//! raised it for a memory access (`BUS_ADRERR`, or another of the codes of
//! a fault; `kill(2)`, `sigqueue(3)` and `tgkill(2)` give `SI_USER`,
//! `SI_QUEUE` and `SI_TKILL`, with the sender's pid where `si_addr` would
//! be), `si_addr` lies in a guarded range, and the thread was running
//! `copy`'s load.
//!
//! # Every other `SIGBUS`
//!
//! goes to the action installed before ours (in a Rust program, std's
//! stack-overflow handler; else usually the default), as if this module
//! were not there, and the handler stays installed for the guarded ranges:
//!
//! - **A function** is called with the signal's arguments (three with
//!   `SA_SIGINFO`, else one). With `SA_RESETHAND` the action chained to is
//!   the default from then on, as the kernel would have reset it. Its
//!   `sa_mask` and `SA_NODEFER` are not reproduced: it runs with `SIGBUS`
//!   blocked, as ours does. What it leaves installed then decides:
//!   - our handler: nothing more to do.
//!   - the default: it meant the signal to come back and kill. A fault
//!     does, when the handler returns and the load runs again; a sent
//!     signal would not, so it is raised again, pending until the handler
//!     returns. This is what std's handler does with every `SIGBUS` that is
//!     not a stack overflow, and why a Rust program alone survives one
//!     `kill -BUS` (rust-lang/rust#140662); under this handler it does not.
//!   - anything else: it took `SIGBUS` for itself; we leave it that way
//!     and stop guarding (below).
//! - **The default** (terminate with a core dump) is put back. A fault
//!   repeats when the handler returns and kills with its own `siginfo`; a
//!   sent signal is raised again and kills when the handler returns.
//! - **Ignored**: a sent signal is ignored. A fault cannot be (the kernel
//!   puts the default back for a fault whose signal is ignored or blocked,
//!   see `force_sig_info_to_task`), so it is treated as under the default.
//!
//! Whenever the handler is no longer the installed action, it says so
//! (`ARMED`): [`Guarded::new`] refuses, and [`Guarded::read`] answers
//! [`Unread::Unguarded`], on which `record` reads with `pread(2)`. A read
//! that checked just before, in another thread, is not protected; the
//! process is dying then in every case but the last, rare one.
//!
//! # Async-signal-safety
//!
//! The handler calls only `sigaction(2)` and `raise(3)`, both
//! async-signal-safe (POSIX, signal-safety(7)); does lock-free atomic loads
//! and stores on statics and `OnceLock::get` (one atomic load); reads the
//! `siginfo_t` and writes the saved program counter in the `ucontext_t` the
//! kernel gave it; and calls the previous action's function, as the kernel
//! would have. It takes no lock and allocates nothing. (`our_action`, with
//! its `sigemptyset(3)`, runs only at installation.)
//!
//! # Memory model
//!
//! `copy` loads each word with one aligned 8-byte `mov`, which is exactly
//! what `AtomicU64::load(Relaxed)` is on x86_64: a Relaxed load of the
//! native size, the one kind of access std's atomics promise to be fine on
//! read-only memory (`std::sync::atomic`, "Atomic accesses to read-only
//! memory"); an `Acquire` one is not promised. No ordering among the loads
//! or after them is needed, so there is no fence: the record is read under
//! its `flock`, which every writer takes too, and the lock's system calls
//! order a writer's `pwrite` before the reader's loads. A process that
//! writes behind the lock's back is caught by the record's checksums, and
//! one that truncates behind it by this guard.
//!
//! # Platforms
//!
//! x86_64 Linux. Elsewhere (aarch64 too, until someone ports `arch`:
//! `copy`, `faulted` and the register that holds the program counter)
//! [`Guarded::new`] refuses, and the library reads its records with
//! `pread(2)`, as the command does.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// How many mappings can be guarded at once. cbreak maps one record per
/// breaker it holds open; a library user holding more gets unguarded maps
/// refused (see [`Guarded::new`]) rather than a silent hole.
const SLOTS: usize = 64;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    used: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    used: AtomicBool::new(false),
};

static SLOT_TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
/// The action that was installed before ours: what a `SIGBUS` that is not
/// ours goes to.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
/// The previous action had `SA_RESETHAND` and has been called once: the
/// default stands in for it now.
static PREVIOUS_RESET: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();
/// Whether `SIGBUS` comes to `on_sigbus`: set once it is installed, cleared
/// for good when it hands `SIGBUS` to another action.
static ARMED: AtomicBool = AtomicBool::new(false);

/// Why [`Guarded::read`] read nothing usable.
#[derive(Debug, PartialEq, Eq)]
pub enum Unread {
    /// A load faulted: the file no longer covers the range (truncated).
    /// What `out` holds is not to be used; the map is to be dropped.
    Faulted,
    /// The handler is no longer installed (see the module's header): read
    /// with a system call instead.
    Unguarded,
}

/// A guarded address range, and the only way to read it; unguarded again
/// on drop.
pub struct Guarded {
    index: usize,
    start: usize,
    words: usize,
}

impl Guarded {
    /// Guards `len` bytes at `start`, installing the handler on first use.
    /// `None` when the platform has no guard, the handler cannot be (or is
    /// no longer) installed, or every slot is taken: the caller must then
    /// not read through the map.
    ///
    /// # Safety
    ///
    /// `start` must be 8-byte aligned and `start..start + len` a readable
    /// mapping of a file that stays mapped until the guard is dropped, whose
    /// pages can fault only as pages past the end of the file do (with
    /// `SIGBUS`); `len` a multiple of 8.
    pub unsafe fn new(start: *const u8, len: usize) -> Option<Guarded> {
        if !arch::SUPPORTED {
            return None;
        }
        install();
        if !ARMED.load(Ordering::Acquire) {
            return None;
        }
        for (index, slot) in SLOT_TABLE.iter().enumerate() {
            if slot
                .used
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.start.store(start as usize, Ordering::Relaxed);
                slot.len.store(len, Ordering::Release);
                return Some(Guarded {
                    index,
                    start: start as usize,
                    words: len / 8,
                });
            }
        }
        None
    }

    /// Copies words `first..first + out.len()` of the range into `out`, in
    /// memory order (the caller converts from the file's byte order).
    ///
    /// # Panics
    ///
    /// When the words are not all inside the range.
    pub fn read(&self, first: usize, out: &mut [u64]) -> Result<(), Unread> {
        assert!(
            first <= self.words && out.len() <= self.words - first,
            "a read within the guarded range"
        );
        if out.is_empty() {
            return Ok(());
        }
        if !ARMED.load(Ordering::Acquire) {
            return Err(Unread::Unguarded);
        }
        let src = (self.start + first * 8) as *const u64;
        // SAFETY: `src..src + out.len()` lies inside the range (asserted
        // above), which `new`'s contract keeps mapped and readable while
        // `self` lives, and is 8-aligned; `out` is ours to write, and the
        // count is at least 1, as `copy` needs. `copy` only loads from the
        // range (one aligned 8-byte load per word, a Relaxed atomic load,
        // see the module's header) and stores into `out`; a load that
        // faults is resumed at `faulted` by `on_sigbus` (this is a guarded
        // range and the handler is armed), which returns 1 with the C ABI's
        // callee-saved registers and stack as `copy` had them.
        let faulted = unsafe { arch::copy(out.as_mut_ptr(), src, out.len()) };
        if faulted == 0 {
            Ok(())
        } else {
            Err(Unread::Faulted)
        }
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

/// Our action: `on_sigbus` with its `siginfo_t` and context, on the
/// alternate signal stack when the thread has one (std gives each thread
/// one, for its stack-overflow handler).
fn our_action() -> libc::sigaction {
    // SAFETY: a zeroed sigaction is a valid value of the C struct (no
    // handler, empty mask, no flags); it is filled in below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigbus as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: sigemptyset(3) writes only the mask it is given.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    action
}

/// The action installed for `SIGBUS` now.
fn current_action() -> Option<libc::sigaction> {
    // SAFETY: a zeroed sigaction is a valid out-parameter.
    let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `now` is a valid place for
    // the current one.
    let ok = unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut now) } == 0;
    ok.then_some(now)
}

fn install() {
    INSTALL.call_once(|| {
        // What we are about to replace, recorded before the handler can
        // run, so that it always has somewhere to send a signal not ours.
        let Some(before) = current_action() else {
            return;
        };
        let _ = PREVIOUS.set(before);
        // SAFETY: a zeroed sigaction is a valid out-parameter.
        let mut replaced: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: `our_action` is a fully initialised sigaction whose
        // handler has the three-argument signature SA_SIGINFO requires, and
        // `replaced` is a valid place for the old one.
        if unsafe { libc::sigaction(libc::SIGBUS, &our_action(), &mut replaced) } != 0 {
            return;
        }
        if replaced.sa_sigaction != before.sa_sigaction || replaced.sa_flags != before.sa_flags {
            // Another thread changed the action in between: put its action
            // back rather than chain to one that is not the one replaced.
            // SAFETY: `replaced` is what sigaction(2) just reported.
            unsafe { libc::sigaction(libc::SIGBUS, &replaced, std::ptr::null_mut()) };
            return;
        }
        ARMED.store(true, Ordering::Release);
    });
}

/// Whether `code` is the `si_code` of a `SIGBUS` the kernel raised for the
/// instruction that was running: one that runs again, and faults again,
/// when the handler returns.
fn is_fault(code: libc::c_int) -> bool {
    matches!(
        code,
        libc::BUS_ADRALN | libc::BUS_ADRERR | libc::BUS_OBJERR | libc::BUS_MCEERR_AR
    )
}

fn in_guarded_range(addr: usize) -> bool {
    SLOT_TABLE.iter().any(|slot| {
        let len = slot.len.load(Ordering::Acquire);
        let start = slot.start.load(Ordering::Relaxed);
        len != 0 && addr >= start && addr - start < len
    })
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // Async-signal-safe only: see the module's header.
    // SAFETY: the kernel passes an SA_SIGINFO handler a valid siginfo_t.
    // si_code is always set; si_addr() reads bytes of the union that are
    // an address only for a fault, hence the check of si_code first.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    let fault = is_fault(code);
    // SAFETY: `ctx` is the ucontext_t the kernel saved for this thread,
    // which it restores when the handler returns; only for a fault at an
    // address of a live guard is its program counter moved, and then only
    // from `copy`'s load to `faulted`.
    if fault && in_guarded_range(addr) && unsafe { arch::skip_faulted_load(ctx) } {
        return;
    }
    chain(sig, info, ctx, fault);
}

/// Gives a `SIGBUS` that is not ours to the previous action (see the
/// module's header for each kind).
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void, fault: bool) {
    let Some(previous) = PREVIOUS.get() else {
        // Unreachable: set before the handler was installed.
        return take_default(sig, fault);
    };
    let handler = if PREVIOUS_RESET.load(Ordering::Relaxed) {
        libc::SIG_DFL
    } else {
        previous.sa_sigaction
    };
    if handler == libc::SIG_IGN && !fault {
        return;
    }
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        return take_default(sig, fault);
    }
    if previous.sa_flags & libc::SA_RESETHAND != 0 {
        PREVIOUS_RESET.store(true, Ordering::Relaxed);
    }
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: sigaction(2) reported `handler` as the function of an
        // SA_SIGINFO action, so it takes these three arguments, which are
        // the ones the kernel gave us and would have given it.
        let f = unsafe {
            std::mem::transmute::<
                usize,
                extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void),
            >(handler)
        };
        f(sig, info, ctx);
    } else {
        // SAFETY: sigaction(2) reported `handler` as the function of an
        // action without SA_SIGINFO, so it takes the signal number alone.
        let f = unsafe { std::mem::transmute::<usize, extern "C" fn(libc::c_int)>(handler) };
        f(sig);
    }
    match current_action() {
        Some(now) if now.sa_sigaction == on_sigbus as *const () as usize => {}
        Some(now) if now.sa_sigaction == libc::SIG_DFL => {
            // It put the default back to meet the signal again.
            ARMED.store(false, Ordering::Release);
            if !fault {
                raise(sig);
            }
        }
        // It took SIGBUS for itself: ours no more.
        _ => ARMED.store(false, Ordering::Release),
    }
}

/// What the default action does: a fault repeats when the handler returns
/// and meets it; a sent signal is raised again, pending until then (the
/// handler runs with `SIGBUS` blocked).
fn take_default(sig: libc::c_int, fault: bool) {
    ARMED.store(false, Ordering::Release);
    // SAFETY: a zeroed sigaction is a valid value: SIG_DFL (0), no flags,
    // an empty mask.
    let default: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `default` is a valid, initialised sigaction.
    unsafe { libc::sigaction(sig, &default, std::ptr::null_mut()) };
    if !fault {
        raise(sig);
    }
}

fn raise(sig: libc::c_int) {
    // SAFETY: raise(3) sends a signal to this thread and touches no memory
    // of ours.
    unsafe { libc::raise(sig) };
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod arch {
    pub const SUPPORTED: bool = true;

    /// Copies `n` words, `n` at least 1, from `src` to `dst`, and returns 0
    /// (`rdi` = `dst`, `rsi` = `src`, `rdx` = `n`, the C ABI's first three).
    /// Its first instruction is its only load from `src`, and it pushes
    /// nothing: when that load faults, `on_sigbus` resumes the thread at
    /// [`faulted`] instead, which returns 1 to `copy`'s caller.
    ///
    /// # Safety
    ///
    /// `src..src + n` must be 8-aligned words of readable mapped memory,
    /// or of a guarded range; `dst..dst + n` writable words of ours.
    #[unsafe(naked)]
    pub unsafe extern "C" fn copy(dst: *mut u64, src: *const u64, n: usize) -> usize {
        core::arch::naked_asm!(
            "2:",
            "mov rax, qword ptr [rsi]",
            "mov qword ptr [rdi], rax",
            "add rsi, 8",
            "add rdi, 8",
            "dec rdx",
            "jnz 2b",
            "xor eax, eax",
            "ret",
        )
    }

    /// Where a faulting `copy` goes on: `copy`'s return, with 1. The stack
    /// is as `copy` found it (it pushes nothing), so `ret` returns to
    /// `copy`'s caller, and no callee-saved register was touched.
    #[unsafe(naked)]
    unsafe extern "C" fn faulted() -> usize {
        core::arch::naked_asm!("mov eax, 1", "ret")
    }

    /// When the thread of the signal context `ctx` was running `copy`'s
    /// load, moves it on to [`faulted`] and says so.
    ///
    /// # Safety
    ///
    /// `ctx` must be the `ucontext_t` the kernel gave a signal handler.
    pub unsafe fn skip_faulted_load(ctx: *mut libc::c_void) -> bool {
        let uc = ctx.cast::<libc::ucontext_t>();
        if uc.is_null() {
            return false;
        }
        // SAFETY: the kernel's signal frame holds the interrupted thread's
        // registers at uc_mcontext.gregs, as glibc's and musl's ucontext_t
        // lay them out; REG_RIP (16) is within its 23.
        let pc = unsafe { &raw mut (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] };
        // SAFETY: `pc` points at the saved program counter, which is ours
        // to read and, for the kernel to restore, to change.
        unsafe {
            if *pc as usize != copy as *const () as usize {
                return false;
            }
            *pc = faulted as *const () as usize as libc::greg_t;
        }
        true
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
#[allow(dead_code)]
mod arch {
    pub const SUPPORTED: bool = false;

    /// Never called: [`super::Guarded::new`] refuses on this platform.
    pub unsafe extern "C" fn copy(_dst: *mut u64, _src: *const u64, _n: usize) -> usize {
        1
    }

    pub unsafe fn skip_faulted_load(_ctx: *mut libc::c_void) -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::time::Duration;

    /// A file of 8192 bytes of 7s, mapped read-only and guarded.
    struct Mapped {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        guard: Guarded,
        map: memmap2::MmapRaw,
    }

    fn mapped() -> Mapped {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let map = memmap2::MmapOptions::new()
            .len(8192)
            .map_raw_read_only(&file)
            .unwrap();
        // SAFETY: the map is page-aligned, 8192 bytes, a read-only map of a
        // file, and `Mapped` declares the guard before the map, so it is
        // dropped first.
        let guard = unsafe { Guarded::new(map.as_ptr(), 8192) }.expect("a guard");
        Mapped {
            _dir: dir,
            path,
            guard,
            map,
        }
    }

    impl Mapped {
        fn truncate(&self) {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&self.path)
                .unwrap()
                .set_len(0)
                .unwrap();
        }

        fn word(&self, i: usize) -> Result<u64, Unread> {
            let mut out = [0u64];
            self.guard.read(i, &mut out).map(|()| out[0])
        }
    }

    #[test]
    fn a_read_past_a_truncated_file_is_an_error_instead_of_a_sigbus() {
        let m = mapped();
        assert_eq!(m.word(1000), Ok(u64::from_le_bytes([7; 8])));
        let mut all = [0u64; 1024];
        assert_eq!(m.guard.read(0, &mut all), Ok(()));
        assert!(all.iter().all(|&w| w == u64::from_le_bytes([7; 8])));
        m.truncate();
        // Past the end of the file now: without the guard, SIGBUS.
        assert_eq!(m.word(1000), Err(Unread::Faulted));
        assert_eq!(m.guard.read(0, &mut all), Err(Unread::Faulted));
        drop(m.guard);
        drop(m.map);
    }

    /// What a failed repair of the page used to leave: a page that faults
    /// again whenever it is read. Each read must return, not repeat its
    /// load forever.
    #[test]
    fn a_page_that_stays_unreadable_fails_every_read_and_never_hangs() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let m = mapped();
            m.truncate();
            let mut out = [0u64; 16];
            let faults = (0..1000)
                .filter(|i| m.guard.read(i % 1000, &mut out) == Err(Unread::Faulted))
                .count();
            done.send(faults).unwrap();
        });
        let faults = finished
            .recv_timeout(Duration::from_secs(60))
            .expect("every faulting read returned within a minute");
        assert_eq!(faults, 1000);
    }

    #[test]
    #[should_panic(expected = "a read within the guarded range")]
    fn a_read_beyond_the_range_is_refused() {
        let m = mapped();
        let _ = m.guard.read(1020, &mut [0u64; 5]);
    }

    /// This test binary again, running only [`child_process`] in `mode`.
    fn child(mode: &str) -> std::process::Output {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "fault::tests::child_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CBREAK_FAULT_CHILD", mode)
            .output()
            .unwrap()
    }

    fn assert_exited(mode: &str) {
        let out = child(mode);
        assert!(
            out.status.success(),
            "{mode}: {:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn a_sent_sigbus_goes_to_the_previous_handler_and_the_guard_stays() {
        assert_exited("previous-handler");
    }

    #[test]
    fn an_ignored_sigbus_stays_ignored_when_sent_and_the_guard_stays() {
        assert_exited("ignored");
    }

    #[test]
    fn a_fault_in_a_guarded_range_outside_the_guarded_read_still_kills() {
        let out = child("unguarded-load");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGBUS),
            "{:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn counting(_sig: libc::c_int) {
        CALLS.fetch_add(1, Ordering::Relaxed);
    }

    fn set_action(handler: usize) {
        // SAFETY: a zeroed sigaction is valid; the handler is SIG_IGN or a
        // one-argument function, as the flags (none) say.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler;
            assert_eq!(
                libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()),
                0
            );
        }
    }

    fn raise_sigbus() {
        // SAFETY: raise(3) touches no memory of ours.
        unsafe { libc::raise(libc::SIGBUS) };
    }

    #[test]
    #[ignore = "a helper process of the tests above, run by them with CBREAK_FAULT_CHILD set"]
    fn child_process() {
        let mode = std::env::var("CBREAK_FAULT_CHILD").expect("run by a test");
        match mode.as_str() {
            "previous-handler" => {
                set_action(counting as *const () as usize);
                let m = mapped();
                raise_sigbus();
                assert_eq!(CALLS.load(Ordering::Relaxed), 1, "the handler ran");
                m.truncate();
                assert_eq!(m.word(3), Err(Unread::Faulted), "still guarded");
                assert_eq!(CALLS.load(Ordering::Relaxed), 1, "a fault of ours");
                raise_sigbus();
                assert_eq!(CALLS.load(Ordering::Relaxed), 2);
            }
            "ignored" => {
                set_action(libc::SIG_IGN);
                let m = mapped();
                raise_sigbus();
                m.truncate();
                assert_eq!(m.word(3), Err(Unread::Faulted), "still guarded");
            }
            "unguarded-load" => {
                let m = mapped();
                m.truncate();
                // SAFETY: word 3 is inside the live mapping; its page is
                // past the end of the file now, so the load faults, outside
                // `copy`: the test is that this kills.
                let w = unsafe { std::ptr::read_volatile(m.map.as_ptr().cast::<u64>().add(3)) };
                println!("survived a fault, read {w}");
            }
            other => panic!("unknown child mode {other}"),
        }
    }
}
