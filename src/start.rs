//! How the `cbreak` process starts and ends, in place of Rust's runtime
//! start-up: the binary's entry point is C's `main` (`#![no_main]` in
//! `src/main.rs`), which calls [`main`] here.
//!
//! Rust's own start-up (`std::rt::lang_start`) does four things before a
//! program's `main`, and on a skipped run they are a third of cbreak's
//! work beyond an empty program: it reopens closed descriptors 0–2 on
//! `/dev/null`, ignores `SIGPIPE`, names the main thread, and installs the
//! stack-overflow handlers for SIGSEGV and SIGBUS on an alternate signal
//! stack — for which glibc's `pthread_getattr_np` reads and parses
//! `/proc/self/maps` to find the main thread's stack (45,000 instructions
//! and 19 system calls of a static build's 34; BENCHMARKS.md). cbreak does
//! the first two, which its behaviour depends on, and not the last two: a
//! stack overflow (never expected: nothing here recurses on input) then
//! ends cbreak with SIGSEGV instead of Rust's message and SIGABRT, and the
//! main thread is unnamed in a panic message.
//!
//! What is kept, as Rust does it:
//! - descriptors 0, 1 and 2, if closed, are opened on `/dev/null`, so that
//!   a record or a socket opened later never becomes a closed stdout and
//!   receives what is printed;
//! - `SIGPIPE` is ignored, so that writing to a closed pipe is an error
//!   cbreak handles (`cbreak status | head -1`), not a death that would
//!   lose a command's exit status; `exec` gives the command the default
//!   back, as Rust's `Command` does;
//! - a panic (none is expected: cbreak never panics on any input) prints
//!   its message and exits 101;
//! - standard output is flushed before the process exits.

use std::ffi::c_int;
use std::io::Write;

/// The `cbreak` command: sets up what [the module](self) says, runs
/// [`crate::run`] on the process's arguments, and returns the exit status
/// for C's `main` to return (or dies of a signal, see [`crate::exit::Exit`]).
pub fn main() -> c_int {
    if !sanitize_standard_fds() {
        // stderr itself may be what could not be opened: the status says it.
        return c_int::from(crate::exit::Exit::Error.code());
    }
    ignore_sigpipe();
    let exit = std::panic::catch_unwind(|| crate::run(std::env::args_os()));
    let _ = std::io::stdout().flush();
    match exit {
        Ok(exit) => c_int::from(exit.status()),
        Err(_) => 101,
    }
}

/// Opens `/dev/null` on each of descriptors 0–2 that is closed, as Rust's
/// start-up does; false if one could not be.
fn sanitize_standard_fds() -> bool {
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
    fds.iter()
        .filter(|pfd| pfd.revents & libc::POLLNVAL != 0)
        .all(|_| {
            // SAFETY: open(2) of a NUL-terminated literal path; the
            // descriptor is deliberately never closed (it is stdin, stdout
            // or stderr from now on).
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0) };
            fd != -1
        })
}

/// `SIGPIPE` ignored, as Rust's start-up leaves it.
fn ignore_sigpipe() {
    // SAFETY: signal(2) with SIG_IGN installs no handler of ours; it only
    // changes this process's disposition of SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
