//! Running a command: spawning it, forwarding signals to it, killing it at a
//! timeout, and reading how it ended.
//!
//! Owns the process side of cbreak and nothing of the breaker. The command
//! is started with `std::process::Command`, which keeps to `posix_spawn`
//! (no `pre_exec`), with stdin, stdout and stderr inherited.
//!
//! Without a timeout the command stays in cbreak's process group, so Ctrl-C
//! and terminal reads work as if cbreak were not there; a SIGINT, SIGTERM,
//! SIGHUP or SIGQUIT sent to cbreak alone is passed on to it, while one the
//! terminal sent to the whole group (which the command got too) is not sent
//! twice. With a timeout the command gets a process group of its own, so
//! that it can be killed with everything it started; the price is the one
//! `timeout(1)` pays: it is not in the terminal's foreground group, so it
//! cannot read from the terminal, and Ctrl-C reaches it through cbreak.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The signals cbreak passes on to the command.
pub const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Where a forwarded signal goes: the child's pid, or minus its process
/// group; 0 while no child runs.
static TARGET: AtomicI32 = AtomicI32::new(0);
/// The last forwarded signal received while the child ran; 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// What to run and how.
pub struct Spec<'a> {
    pub argv: &'a [OsString],
    pub timeout: Option<Duration>,
    pub kill_after: Duration,
    /// Extra environment variables.
    pub env: &'a [(&'a str, String)],
    /// Pass signals sent to cbreak on to the command.
    pub forward_signals: bool,
    /// Send the command's stdout to cbreak's stderr and give it no stdin
    /// (for hooks, whose chatter must not mix with the wrapped output).
    pub quiet_stdio: bool,
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    pub status: Status,
    pub elapsed: Duration,
    /// It ran past its timeout and was killed.
    pub timed_out: bool,
    /// cbreak received a signal meant to stop it while it ran.
    pub cancelled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
}

impl Status {
    /// The shell's convention: the exit code, or 128 + the signal.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Exited(code) => code,
            Status::Signaled(sig) => 128 + sig,
        }
    }

    fn from_std(status: ExitStatus) -> Status {
        match (status.code(), status.signal()) {
            (Some(code), _) => Status::Exited(code),
            (None, Some(sig)) => Status::Signaled(sig),
            (None, None) => Status::Exited(1),
        }
    }
}

/// Why a command could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// No such program (exit 127).
    NotFound(io::Error),
    /// Found but not executable (exit 126).
    CannotExecute(io::Error),
}

/// Runs the command to its end.
pub fn run(spec: &Spec<'_>) -> Result<Finished, SpawnError> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(SpawnError::NotFound(io::Error::other("no command given")));
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in spec.env {
        cmd.env(k, v);
    }
    if spec.quiet_stdio {
        cmd.stdin(Stdio::null());
        if let Ok(stderr) = io::stderr().as_fd().try_clone_to_owned() {
            cmd.stdout(stderr);
        }
    }
    let grouped = spec.timeout.is_some();
    if grouped {
        cmd.process_group(0);
    }
    if spec.forward_signals {
        RECEIVED.store(0, Ordering::SeqCst);
        install_forwarding();
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SpawnError::NotFound(e),
        _ => SpawnError::CannotExecute(e),
    })?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let target = if grouped { -pid } else { pid };
    if spec.forward_signals {
        TARGET.store(target, Ordering::SeqCst);
        // A signal that came between spawn and now was not passed on yet.
        let early = RECEIVED.load(Ordering::SeqCst);
        if early != 0 {
            signal(target, early);
        }
    }
    let (status, timed_out) = match spec.timeout {
        None => (wait(&mut child), false),
        Some(limit) => wait_with_timeout(&mut child, -pid, limit, spec.kill_after),
    };
    let elapsed = started.elapsed();
    if spec.forward_signals {
        TARGET.store(0, Ordering::SeqCst);
    }
    Ok(Finished {
        status,
        elapsed,
        timed_out,
        cancelled: spec.forward_signals && RECEIVED.load(Ordering::SeqCst) != 0,
    })
}

fn wait(child: &mut Child) -> Status {
    match child.wait() {
        Ok(status) => Status::from_std(status),
        // ECHILD cannot happen for our own child; report a failure rather
        // than pretend it succeeded.
        Err(_) => Status::Exited(1),
    }
}

/// Waits for `child`; at `limit` sends SIGTERM to its process group `group`
/// (negative), and SIGKILL `kill_after` later if it is still running. After
/// a timeout whatever is left of the group is killed too.
fn wait_with_timeout(
    child: &mut Child,
    group: i32,
    limit: Duration,
    kill_after: Duration,
) -> (Status, bool) {
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let fired = Arc::new(AtomicI32::new(0));
    let watcher = {
        let done = Arc::clone(&done);
        let fired = Arc::clone(&fired);
        std::thread::spawn(move || {
            let (lock, cvar) = &*done;
            let Ok(guard) = lock.lock() else { return };
            let Ok((guard, _)) = cvar.wait_timeout_while(guard, limit, |d| !*d) else {
                return;
            };
            if *guard {
                return;
            }
            fired.store(1, Ordering::SeqCst);
            signal(group, libc::SIGTERM);
            let Ok((guard, _)) = cvar.wait_timeout_while(guard, kill_after, |d| !*d) else {
                return;
            };
            if !*guard {
                signal(group, libc::SIGKILL);
            }
        })
    };
    let status = wait(child);
    {
        let (lock, cvar) = &*done;
        if let Ok(mut d) = lock.lock() {
            *d = true;
        }
        cvar.notify_all();
    }
    let _ = watcher.join();
    let timed_out = fired.load(Ordering::SeqCst) == 1;
    if timed_out {
        // Children that ignored SIGTERM outlive their parent: no leftovers.
        signal(group, libc::SIGKILL);
    }
    (status, timed_out)
}

/// The forwarded signal (SIGINT, SIGTERM, SIGHUP or SIGQUIT) cbreak last
/// received since the last command it ran with `forward_signals` started.
pub fn received() -> Option<i32> {
    Some(RECEIVED.load(Ordering::SeqCst)).filter(|&sig| sig != 0)
}

/// Dies of `sig` as `timeout(1)` does: without a core dump of cbreak's own,
/// with the default action restored and the signal unblocked. Returns only
/// if the process survived it (the caller then exits 128+N).
pub fn die_of(sig: libc::c_int) {
    use std::io::Write;
    let _ = io::stdout().flush();
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prctl, setrlimit, sigaction, sigprocmask and raise take plain
    // values and pointers to locals that live across the calls; failures
    // leave the process as it was, and the caller falls back to an exit.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig, &action, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
}

fn signal(target: i32, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // an error (ESRCH when the target is already gone) is harmless.
    unsafe {
        libc::kill(target, sig);
    }
}

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // Only async-signal-safe work here: atomics and kill(2).
    RECEIVED.store(sig, Ordering::SeqCst);
    let target = TARGET.load(Ordering::SeqCst);
    if target == 0 {
        return;
    }
    // SAFETY: for a handler installed with SA_SIGINFO the kernel passes a
    // valid siginfo_t for the duration of the call; it is only read.
    let from_kernel = !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL;
    // A signal from the terminal (sent by the kernel to the foreground
    // process group) already reached a child in our group.
    if from_kernel && target > 0 {
        return;
    }
    signal(target, sig);
}

fn install_forwarding() {
    for sig in FORWARDED {
        // SAFETY: a zeroed sigaction is a valid starting value (empty mask,
        // no flags); we set a handler of the SA_SIGINFO signature, which
        // only uses async-signal-safe operations, and pass valid pointers.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[OsString]) -> Spec<'_> {
        Spec {
            argv,
            timeout: None,
            kill_after: Duration::from_secs(1),
            env: &[],
            forward_signals: false,
            quiet_stdio: true,
        }
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn exit_codes_and_signals_are_reported() {
        let a = argv(&["sh", "-c", "exit 3"]);
        assert_eq!(run(&spec(&a)).unwrap().status, Status::Exited(3));
        let a = argv(&["sh", "-c", "kill -9 $$"]);
        let end = run(&spec(&a)).unwrap();
        assert_eq!(end.status, Status::Signaled(9));
        assert_eq!(end.status.exit_code(), 137);
    }

    #[test]
    fn missing_and_unexecutable_programs_are_told_apart() {
        let a = argv(&["/nonexistent/cbreak-test"]);
        assert!(matches!(run(&spec(&a)), Err(SpawnError::NotFound(_))));
        let a = argv(&["/etc/hostname"]);
        assert!(matches!(run(&spec(&a)), Err(SpawnError::CannotExecute(_))));
    }

    #[test]
    fn timeout_kills_the_group_and_says_so() {
        let a = argv(&["sh", "-c", "sleep 30 & sleep 30; wait"]);
        let mut s = spec(&a);
        s.timeout = Some(Duration::from_millis(200));
        let end = run(&s).unwrap();
        assert!(end.timed_out);
        assert!(end.elapsed < Duration::from_secs(20), "{:?}", end.elapsed);
    }

    #[test]
    fn environment_reaches_the_command() {
        let a = argv(&["sh", "-c", "test \"$CBREAK_X\" = yes"]);
        let env = [("CBREAK_X", "yes".to_string())];
        let mut s = spec(&a);
        s.env = &env;
        assert_eq!(run(&s).unwrap().status, Status::Exited(0));
    }
}
