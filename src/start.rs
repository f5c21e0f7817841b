//! How the `cbreak` process starts and ends, in place of Rust's runtime
//! start-up: the binary's entry point is C's `main` (`#![no_main]` in
//! `src/main.rs`), which calls this module's `main`.
//!
//! Rust's own start-up (`std::rt::lang_start`) does four things before a
//! program's `main`, and on a skipped run they are a third of cbreak's
//! work beyond an empty program: it reopens closed descriptors 0–2 on
//! `/dev/null`, ignores `SIGPIPE`, names the main thread, and installs the
//! stack-overflow handlers for SIGSEGV and SIGBUS on an alternate signal
//! stack — for which glibc's `pthread_getattr_np` reads and parses
//! `/proc/self/maps` to find the main thread's stack (45,000 instructions
//! and 19 system calls of a static build's 34; BENCHMARKS.md). cbreak does
//! the first two, which its behaviour depends on, and not the last two:
//! the main thread is unnamed in a panic message, and a stack overflow
//! would end cbreak with SIGSEGV instead of Rust's message and SIGABRT —
//! which is why cbreak makes sure of its stack instead (below).
//!
//! What is kept, as Rust does it:
//! - descriptors 0, 1 and 2, if closed, are opened on `/dev/null`, so that
//!   a record or a socket opened later never becomes a closed stdout and
//!   receives what is printed (unlike Rust, cbreak remembers: its own
//!   output into a closed stdout fails, see `output::stdout_was_closed`,
//!   and the command gets the descriptor closed, see below);
//! - `SIGPIPE` is ignored, so that writing to a closed pipe is an error
//!   cbreak handles (`cbreak status | head -1`), not a death that would
//!   lose a command's exit status; `exec` gives the command the default
//!   back, as Rust's `Command` does, or SIG_IGN if that is what cbreak was
//!   started with (as `timeout(1)` would), and closes for it again the
//!   descriptors that were closed (`exec::note_start`);
//! - a panic (none is expected: cbreak never panics on any input) prints
//!   its message and exits 101 in a build that unwinds (tests); the
//!   release build aborts on a panic (`panic = "abort"`);
//! - standard output is flushed before the process exits.
//!
//! And one thing Rust does not: under a `ulimit -s` too small for cbreak's
//! work, it works on a thread with a stack of its own (see
//! `on_a_thread_of_its_own`) instead of dying of SIGSEGV.

use std::ffi::{CStr, OsStr, OsString, c_char, c_int};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

/// The `cbreak` command: sets up what [the module](self) says, runs
/// [`crate::run`] on the process's arguments, and returns the exit status
/// for C's `main` to return (or dies of a signal, see [`crate::exit::Exit`]).
///
/// The arguments are taken from `argc` and `argv` as C's `main` got them,
/// not from `std::env::args_os`, which without Rust's start-up knows them
/// only on glibc.
///
/// # Safety
///
/// `argv` must point to `argc` pointers to NUL-terminated strings that
/// live as long as the process: what C's `main` receives.
pub unsafe fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let Some(closed) = sanitize_standard_fds() else {
        // stderr itself may be what could not be opened: then the status
        // alone says it.
        let msg = b"cbreak: cannot open /dev/null in place of a closed stdin, stdout or stderr\n";
        // SAFETY: write(2) reads `msg`, a static byte string, for its
        // length; on a closed descriptor it fails with EBADF and nothing else.
        let _ = unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        return c_int::from(crate::exit::Exit::Error.code());
    };
    if closed[1] {
        crate::output::stdout_was_closed();
    }
    let sigpipe_ignored = ignore_sigpipe();
    crate::exec::note_start(closed, sigpipe_ignored);
    let args: Vec<OsString> = (0..usize::try_from(argc).unwrap_or(0))
        .map(|i| {
            // SAFETY: by this function's contract, argv[0..argc] are valid
            // pointers to NUL-terminated strings that outlive this copy.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsStr::from_bytes(arg.to_bytes()).to_os_string()
        })
        .collect();
    if stack_limit_below(STACK) {
        on_a_thread_of_its_own(STACK, args)
    } else {
        work(args)
    }
}

/// The stack cbreak's work needs, with room to spare: a run uses about
/// 32 KiB of it (BENCHMARKS.md), help and usage errors somewhat more.
const STACK: usize = 1 << 20;

/// Runs cbreak: what C's `main` returns (or the process dies of a signal).
/// Out of line, so that `main`'s own frame stays small enough for a
/// stack limit of a few KiB.
#[inline(never)]
fn work(args: Vec<OsString>) -> c_int {
    let exit = std::panic::catch_unwind(|| crate::run(args));
    let _ = std::io::stdout().flush();
    match exit {
        Ok(exit) => c_int::from(exit.status()),
        Err(_) => 101,
    }
}

/// Whether the main thread's stack may not grow to `bytes` (`ulimit -s`).
fn stack_limit_below(bytes: usize) -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes one rlimit struct, a local that outlives
    // the call.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } == 0;
    ok && limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < bytes as libc::rlim_t
}

/// Under a small `ulimit -s`, which limits only the main thread's stack,
/// cbreak works on a thread with a stack of `bytes` rather than die of
/// SIGSEGV, perhaps after the command ran and before its outcome was
/// recorded. The limit reaches the command unchanged.
///
/// The main thread blocks every signal while it waits, so that signals
/// reach the working thread, as they would reach a single-threaded
/// cbreak. It blocks them before the thread starts, so that no signal is
/// delivered to it in between; the new thread inherits that mask and
/// first puts back the one cbreak was started with, which is the mask
/// the command inherits (std's `Command` passes the spawning thread's
/// mask on, since Rust 1.66, rust-lang/rust#101077).
#[cold]
fn on_a_thread_of_its_own(bytes: usize, args: Vec<OsString>) -> c_int {
    // Kept for the main thread, should no thread be had.
    let again = args.clone();
    // SAFETY: sigfillset and pthread_sigmask write and read local
    // sigset_t values that outlive the calls; blocking signals in this
    // thread only changes where the kernel delivers them.
    let started_with = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    };
    let worker = std::thread::Builder::new()
        .stack_size(bytes)
        .spawn(move || {
            set_signal_mask(&started_with);
            work(args)
        });
    match worker {
        Ok(worker) => worker.join().unwrap_or(101),
        // No thread to be had: try on the main thread's stack after all,
        // with the signals it started with.
        Err(_) => {
            set_signal_mask(&started_with);
            work(again)
        }
    }
}

/// Sets the calling thread's signal mask to `mask`.
fn set_signal_mask(mask: &libc::sigset_t) {
    // SAFETY: pthread_sigmask reads one sigset_t, which the reference
    // keeps alive across the call.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut());
    }
}

/// Opens `/dev/null` on each of descriptors 0–2 that is closed, as Rust's
/// start-up does; which were closed, or None if one could not be opened.
fn sanitize_standard_fds() -> Option<[bool; 3]> {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: poll(2) reads and writes exactly the three pollfd structs
        // of the local array it is given, with its length; a zero timeout
        // never blocks.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
        if n >= 0 {
            break;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            // poll(2) refused (a low RLIMIT_NOFILE, no memory): ask each
            // descriptor instead.
            _ => {
                for pfd in &mut fds {
                    // SAFETY: fcntl(F_GETFD) only reads a descriptor's flags.
                    let closed = unsafe { libc::fcntl(pfd.fd, libc::F_GETFD) } == -1
                        && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
                    pfd.revents = if closed { libc::POLLNVAL } else { 0 };
                }
                break;
            }
        }
    }
    // Lowest first: open(2) takes the lowest free descriptor, which is the
    // closed one being filled.
    let closed = fds.map(|pfd| pfd.revents & libc::POLLNVAL != 0);
    let reopened = closed.iter().filter(|&&c| c).all(|_| {
        // SAFETY: open(2) of a NUL-terminated literal path; the
        // descriptor is deliberately never closed (it is stdin, stdout
        // or stderr from now on).
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0) };
        fd != -1
    });
    reopened.then_some(closed)
}

/// `SIGPIPE` ignored, as Rust's start-up leaves it; whether it was
/// ignored already.
fn ignore_sigpipe() -> bool {
    // SAFETY: signal(2) with SIG_IGN installs no handler of ours; it only
    // changes this process's disposition of SIGPIPE, and returns the old.
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    old == libc::SIG_IGN
}
