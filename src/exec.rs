//! Running a command: spawning it, forwarding signals to it, killing it at a
//! timeout, and reading how it ended.
//!
//! Owns the process side of cbreak and nothing of the breaker. The command
//! is started with `std::process::Command`, which keeps to `posix_spawn`
//! (no `pre_exec`, except to give the command back a descriptor 0–2 that
//! was closed or a SIGPIPE that was ignored when cbreak started, see
//! [`note_start`]), with stdin, stdout and stderr inherited; a file the
//! kernel cannot execute (a script without `#!`) is run with /bin/sh, as
//! `execvp` does.
//!
//! What std's `Command` does with signals (library/std/src/sys/process/
//! unix/unix.rs, both the `posix_spawn` and the fork paths): it resets
//! SIGPIPE to its default (cbreak sets no `-Zon-broken-pipe`), and leaves
//! the signal mask alone, so the command inherits the spawning thread's
//! mask (it emptied the mask before Rust 1.66, rust-lang/rust#101077).
//! exec resets caught signals to their default and keeps ignored ones.
//! So whatever cbreak blocks at a spawn, the command gets blocked.
//!
//! Process groups are those of coreutils `timeout(1)`. Without a timeout
//! nothing moves: the command is in cbreak's group, so Ctrl-C and terminal
//! reads work as if cbreak were not there. With a timeout cbreak moves
//! *itself* into a new group (a no-op when a shell already made it a job's
//! leader) and the command stays in it, so an interactive command can read
//! the terminal, while the whole tree can still be signalled at the
//! timeout; cbreak keeps SIGTTIN and SIGTTOU from stopping itself, and the
//! command gets them as usual. [`Group::Foreground`] (`--foreground`) moves nothing
//! and kills only the command. Hooks get a group of their own, and the
//! terminal cannot stop them (see [`never_stopped_by_the_terminal`]).
//!
//! A SIGINT, SIGTERM, SIGHUP or SIGQUIT sent to cbreak while the command
//! runs is passed on to it, except one the terminal sent to the whole group
//! (which the command got too) and one that was ignored when cbreak
//! started (`nohup`, `&` in a script): that stays ignored. Each signal is
//! passed on once, by the handler or, for one that came before the
//! command's pid was known, by the spawner, and followed by SIGCONT, as
//! `timeout(1)` does, so that a stopped command dies of it. The handlers are
//! removed when the command ends. cbreak waits on a pidfd, polled with the
//! timeout, and never reaps the command before it stops signalling it, so
//! "timed out" and "exited" cannot cross and no signal goes to a reused pid.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The signals cbreak passes on to the command.
pub const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The pid of the running command; 0 while no command runs.
static TARGET: AtomicI32 = AtomicI32::new(0);
/// Where a forwarded signal goes besides the command: one of the `TO_*`.
static SCOPE: AtomicI32 = AtomicI32::new(TO_CHILD);
const TO_CHILD: i32 = 0;
const TO_CHILDS_GROUP: i32 = 1;
const TO_OUR_GROUP: i32 = 2;
/// The last forwarded signal received while handlers were installed; 0 for
/// none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// The signals received that nobody has passed on yet, a bit for each
/// (`1 << sig`). Whoever clears a signal's bit passes it on: the handler,
/// once the pid is known, or the spawner, for what came before; never
/// both.
static UNFORWARDED: AtomicU32 = AtomicU32::new(0);
/// What cbreak's caller gave it that the command gets back (see
/// [`note_start`]): a bit per descriptor 0–2 that was closed, and
/// [`SIGPIPE_WAS_IGNORED`].
static INHERITED: AtomicI32 = AtomicI32::new(0);
const SIGPIPE_WAS_IGNORED: i32 = 1 << 3;

/// Notes, at start, which of descriptors 0–2 were closed (cbreak opened
/// `/dev/null` on them for its own sake) and whether SIGPIPE was ignored
/// (cbreak then ignores it for its own sake too): the command gets them
/// as cbreak got them, as it would from `timeout(1)`, so that, say,
/// `echo hi >&-` fails under cbreak as it fails without it.
pub fn note_start(closed: [bool; 3], sigpipe_ignored: bool) {
    let mut bits = 0;
    for (fd, &was_closed) in closed.iter().enumerate() {
        if was_closed {
            bits |= 1 << fd;
        }
    }
    if sigpipe_ignored {
        bits |= SIGPIPE_WAS_IGNORED;
    }
    // Written only when there is something to note: a write to a page of
    // statics that nothing else writes costs a skip a page fault.
    if bits != 0 {
        INHERITED.store(bits, Ordering::Relaxed);
    }
}

/// How the command and cbreak share process groups when there is a
/// timeout (without one, nothing moves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// `timeout(1)`: cbreak takes a new group and the command stays in it;
    /// at the timeout the whole group but cbreak is signalled.
    Shared,
    /// `timeout --foreground`: nothing moves, the command may read the
    /// terminal and gets its signals; at the timeout only it is signalled.
    Foreground,
    /// The command gets a group of its own, signalled whole (hooks, which
    /// never read the terminal).
    Own,
}

/// What to run and how.
pub struct Spec<'a> {
    pub argv: &'a [OsString],
    pub timeout: Option<Duration>,
    /// The signal sent at the timeout (SIGTERM unless `--signal`).
    pub timeout_signal: libc::c_int,
    pub kill_after: Duration,
    pub group: Group,
    /// Extra environment variables.
    pub env: &'a [(&'a str, String)],
    /// Pass signals sent to cbreak on to the command.
    pub forward_signals: bool,
    /// Run it as a hook: its stdout goes to cbreak's stderr (its chatter
    /// must not mix with the wrapped output), it gets no stdin, and the
    /// terminal cannot stop it (see [`never_stopped_by_the_terminal`]).
    pub quiet_stdio: bool,
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    pub status: Status,
    pub elapsed: Duration,
    /// It ran past its timeout and was signalled.
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
    let mut group = spec.timeout.map(|_| spec.group);
    if group == Some(Group::Shared) && !lead_own_group() {
        group = Some(Group::Own);
    }
    // A signal that ended an earlier command (cbreak dies of it at the
    // end) is kept for after this one, which sees only its own.
    let earlier = RECEIVED.load(Ordering::SeqCst);
    let saved = spec.forward_signals.then(|| {
        RECEIVED.store(0, Ordering::SeqCst);
        UNFORWARDED.store(0, Ordering::SeqCst);
        install_forwarding()
    });
    let started = Instant::now();
    let spawned = spawn(spec, program, args, group == Some(Group::Own));
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            if let Some(saved) = saved {
                restore(&saved);
            }
            if earlier != 0 {
                RECEIVED.store(earlier, Ordering::SeqCst);
            }
            return Err(e);
        }
    };
    if group == Some(Group::Shared) {
        block_tty_signals();
    }
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    if spec.forward_signals {
        let scope = match group {
            Some(Group::Shared) => TO_OUR_GROUP,
            Some(Group::Own) => TO_CHILDS_GROUP,
            Some(Group::Foreground) | None => TO_CHILD,
        };
        SCOPE.store(scope, Ordering::SeqCst);
        TARGET.store(pid, Ordering::SeqCst);
        forward_unclaimed(pid, scope);
    }
    let timed_out = match (spec.timeout, group) {
        (Some(limit), Some(group)) => wait_with_timeout(pid, group, spec, started + limit),
        _ => {
            wait_exited(pid);
            false
        }
    };
    // The command has ended but is not reaped: its pid cannot be reused
    // until the wait below, and nothing signals it after this.
    if spec.forward_signals {
        TARGET.store(0, Ordering::SeqCst);
    }
    let status = match child.wait() {
        Ok(status) => Status::from_std(status),
        // ECHILD cannot happen for our own child; report a failure rather
        // than pretend it succeeded.
        Err(_) => Status::Exited(1),
    };
    let elapsed = started.elapsed();
    if let Some(saved) = saved {
        restore(&saved);
    }
    let cancelled = spec.forward_signals && RECEIVED.load(Ordering::SeqCst) != 0;
    if earlier != 0 && !cancelled {
        RECEIVED.store(earlier, Ordering::SeqCst);
    }
    Ok(Finished {
        status,
        elapsed,
        timed_out,
        cancelled,
    })
}

fn spawn(
    spec: &Spec<'_>,
    program: &OsString,
    args: &[OsString],
    own_group: bool,
) -> Result<Child, SpawnError> {
    let command = |program: &OsStr| {
        let mut cmd = Command::new(program);
        for (k, v) in spec.env {
            cmd.env(k, v);
        }
        if spec.quiet_stdio {
            cmd.stdin(Stdio::null());
            if let Ok(stderr) = io::stderr().as_fd().try_clone_to_owned() {
                cmd.stdout(stderr);
            }
            never_stopped_by_the_terminal(&mut cmd);
        }
        if own_group {
            cmd.process_group(0);
        }
        let inherited = INHERITED.load(Ordering::Relaxed);
        if inherited != 0 && !spec.quiet_stdio {
            give_back(&mut cmd, inherited);
        }
        cmd
    };
    let first = command(program).args(args).spawn();
    let result = match first {
        // What execvp does with a file the kernel cannot execute (a script
        // without "#!"): run it with /bin/sh.
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => match find_program(program) {
            Some(path) => command(OsStr::new("/bin/sh"))
                .arg(path)
                .args(args)
                .spawn()
                .map_err(|_| e),
            None => Err(e),
        },
        other => other,
    };
    result.map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SpawnError::NotFound(e),
        _ => SpawnError::CannotExecute(e),
    })
}

/// Gives the command the closed descriptors and the ignored SIGPIPE that
/// cbreak started with (`inherited`, see [`note_start`]). Rare, so the cost
/// is paid only then: with a `pre_exec` step, `Command` forks instead of
/// using `posix_spawn`.
fn give_back(cmd: &mut Command, inherited: i32) {
    // SAFETY: the closure runs in the child between fork and exec, after
    // Command's own setup (standard descriptors, process group, SIGPIPE's
    // default; it does not touch the signal mask), and only calls close(2)
    // and signal(2), which are async-signal-safe, on plain values.
    unsafe {
        cmd.pre_exec(move || {
            for fd in 0..3 {
                if inherited & (1 << fd) != 0 {
                    libc::close(fd);
                }
            }
            if inherited & SIGPIPE_WAS_IGNORED != 0 {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            }
            Ok(())
        });
    }
}

/// Starts a hook with SIGTTOU and SIGTTIN ignored. A hook runs in a
/// process group of its own, which is never the terminal's foreground: by
/// default its first write to the terminal under `stty tostop`, or any
/// read of it, would stop it until `--hook-timeout` kills it. Ignored, a
/// write goes through (as the output of a command of cbreak's own group
/// would) and a read fails with EIO at once; an ignored signal survives
/// exec, and `sh` keeps what it was started ignoring (POSIX), so this
/// holds for what the hook runs too. Hooks are rare: the `fork` this costs
/// (a `pre_exec` step rules out `posix_spawn`) does not matter.
fn never_stopped_by_the_terminal(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls signal(2), which is async-signal-safe, with plain values.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::signal(libc::SIGTTIN, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// Where `execvp` finds `program`: itself if it has a slash, else the first
/// executable file of that name on PATH.
fn find_program(program: &OsStr) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            std::ffi::CString::new(p.as_os_str().as_bytes()).is_ok_and(|c| {
                // SAFETY: access(2) reads a NUL-terminated path that lives
                // across the call.
                p.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
            })
        })
}

/// Puts cbreak in a process group of its own, as `timeout(1)` does, and
/// keeps SIGTTIN and SIGTTOU from stopping it with a background job: caught
/// by a handler that does nothing until the command is started (a caught
/// signal is reset to its default action by exec, so the command gets the
/// defaults), then blocked (see [`block_tty_signals`]). False if cbreak is
/// not the leader of its group afterwards.
fn lead_own_group() -> bool {
    extern "C" fn ignore(_: libc::c_int) {}
    for sig in [libc::SIGTTIN, libc::SIGTTOU] {
        // SAFETY: a zeroed sigaction is a valid starting value; the handler
        // does nothing, and the pointers are to a local.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
    // SAFETY: setpgid, getpgrp and getpid take and return plain values.
    unsafe {
        libc::setpgid(0, 0);
        libc::getpgrp() == libc::getpid()
    }
}

/// Blocks SIGTTIN and SIGTTOU in cbreak once the command has started:
/// cbreak is not stopped when the command reads the terminal from the
/// background, and its own messages are written even under `stty tostop`.
/// Not before: `Command` passes the mask on (see the module's header),
/// and the command must get SIGTTIN and SIGTTOU as usual. Hooks, started
/// later, inherit the mask, and ignore both anyway
/// ([`never_stopped_by_the_terminal`]).
fn block_tty_signals() {
    // SAFETY: pthread_sigmask reads a local set that lives across the call.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTTIN);
        libc::sigaddset(&mut set, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Waits until the command has ended, without reaping it.
fn wait_exited(pid: i32) {
    loop {
        // SAFETY: waitid writes into a zeroed siginfo_t we own; WNOWAIT
        // leaves the child to be reaped by `Child::wait`.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Whether the command has ended (not reaped); false while it runs.
fn has_exited(pid: i32) -> bool {
    // SAFETY: as in `wait_exited`, with WNOHANG: si_pid stays 0 while the
    // child runs.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        );
        r != 0 || info.si_pid() != 0
    }
}

/// A pidfd for the child `pid`, or None where the kernel has none (before
/// Linux 5.3).
fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; a non-negative result is a
    // new file descriptor that we own from here on.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: see above: the descriptor is fresh and owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until `deadline` for the command to end, polling its pidfd; then
/// sends the timeout signal and SIGCONT, and SIGKILL `kill_after` later.
/// True if it timed out. Returns once the command has ended, not reaped.
fn wait_with_timeout(pid: i32, group: Group, spec: &Spec<'_>, deadline: Instant) -> bool {
    let fd = pidfd(pid);
    let mut deadline = Some(deadline);
    let mut timed_out = false;
    loop {
        let now = Instant::now();
        let left = deadline.map(|d| d.saturating_duration_since(now));
        if left == Some(Duration::ZERO) {
            if has_exited(pid) {
                // It ended by the deadline: not a timeout.
                break;
            }
            if timed_out {
                kill_command(pid, group, libc::SIGKILL);
                deadline = None;
            } else {
                timed_out = true;
                kill_command(pid, group, spec.timeout_signal);
                if spec.timeout_signal != libc::SIGKILL {
                    // A stopped command must run to see the signal.
                    kill_command(pid, group, libc::SIGCONT);
                }
                deadline = Some(now + spec.kill_after);
            }
            continue;
        }
        if wait_a_while(pid, fd.as_ref(), left) {
            break;
        }
    }
    if timed_out && group == Group::Own {
        // What ignored the signal in the command's group would outlive it:
        // no leftovers. The group cannot be reused: its leader is not
        // reaped yet.
        signal(-pid, libc::SIGKILL);
    }
    timed_out
}

/// Waits up to `left` (forever for None) for the command to end; true if
/// it has.
fn wait_a_while(pid: i32, fd: Option<&OwnedFd>, left: Option<Duration>) -> bool {
    let Some(fd) = fd else {
        // No pidfd: look every 10 ms.
        if has_exited(pid) {
            return true;
        }
        let nap = Duration::from_millis(10);
        std::thread::sleep(left.map_or(nap, |l| l.min(nap)));
        return has_exited(pid);
    };
    let ms = left.map_or(-1, |l| {
        // Round up, so that the deadline has passed when poll returns.
        i32::try_from(l.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
    });
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads and writes one pollfd we own, for one fd that
    // stays open across the call. EINTR (a forwarded signal) returns 0 here
    // and the caller polls again.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    r > 0
}

/// Sends the timeout's `sig` to the command: to it alone, to its group, or
/// to cbreak's group but cbreak.
fn kill_command(pid: i32, group: Group, sig: libc::c_int) {
    match group {
        Group::Foreground => signal(pid, sig),
        Group::Own => signal(-pid, sig),
        Group::Shared => {
            // Directly first, in case it made a group of its own.
            signal(pid, sig);
            signal_our_group(sig);
        }
    }
}

/// Sends `sig` to every process in cbreak's group but cbreak.
/// Async-signal-safe for the signals cbreak can block.
fn signal_our_group(sig: libc::c_int) {
    if sig == libc::SIGKILL || sig == libc::SIGSTOP {
        signal_group_members(sig);
        return;
    }
    // Block it, send it to the group, and drop the copy cbreak got: setting
    // a signal to SIG_IGN discards it while pending.
    // SAFETY: pthread_sigmask, kill and sigaction are async-signal-safe
    // (POSIX.1-2008 TC2 added pthread_sigmask to the list); they take plain
    // values and pointers to locals that live across the calls.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old_mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old_mask);
        libc::kill(0, sig);
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, &ignore, &mut old);
        libc::sigaction(sig, &old, std::ptr::null_mut());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
    }
}

/// SIGKILL or SIGSTOP, which cbreak cannot spare itself from, to each
/// other member of its group, found in /proc; twice, for children forked
/// meanwhile.
fn signal_group_members(sig: libc::c_int) {
    // SAFETY: getpgrp and getpid cannot fail.
    let (group, me) = unsafe { (libc::getpgrp(), libc::getpid()) };
    for _ in 0..2 {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid pgrp ...: comm may hold spaces and ')'.
            let pgrp = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(2))
                .and_then(|g| g.parse::<i32>().ok());
            if pid != me && pgrp == Some(group) {
                signal(pid, sig);
            }
        }
    }
}

/// The bit of `sig` in [`UNFORWARDED`].
fn bit(sig: libc::c_int) -> u32 {
    1u32.checked_shl(sig.unsigned_abs()).unwrap_or(0)
}

/// Passes on, once `TARGET` holds the command's pid, the signals that came
/// before the handler could (it passes on what lands after). Each is
/// claimed from [`UNFORWARDED`] in one swap, so that a signal landing
/// between the store of the pid and this is passed on by one of the two.
fn forward_unclaimed(pid: i32, scope: i32) {
    let early = UNFORWARDED.swap(0, Ordering::SeqCst);
    for sig in FORWARDED {
        if early & bit(sig) != 0 {
            forward(pid, scope, sig);
        }
    }
}

/// How many signals `forward` passed on, for the tests.
#[cfg(test)]
static FORWARDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Passes a signal cbreak received on to the command `pid`, then SIGCONT
/// the same way: a stopped command must run to see the signal, or it
/// stays stopped and cbreak waits for ever. All the forwarded signals end
/// a process by default; `timeout(1)` does the same (coreutils
/// `src/timeout.c`, `cleanup`).
fn forward(pid: i32, scope: i32, sig: libc::c_int) {
    #[cfg(test)]
    FORWARDS.fetch_add(1, Ordering::SeqCst);
    for sig in [sig, libc::SIGCONT] {
        match scope {
            TO_CHILDS_GROUP => signal(-pid, sig),
            TO_OUR_GROUP => {
                signal(pid, sig);
                signal_our_group(sig);
            }
            _ => signal(pid, sig),
        }
    }
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
    // SAFETY: prctl, setrlimit, sigaction, pthread_sigmask and raise take plain
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
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
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
    // Only async-signal-safe work here: atomics, kill(2), sigaction(2),
    // pthread_sigmask(3); and errno as the interrupted code left it.
    // SAFETY: __errno_location returns this thread's errno, always valid.
    let errno = unsafe { *libc::__errno_location() };
    RECEIVED.store(sig, Ordering::SeqCst);
    // SAFETY: for a handler installed with SA_SIGINFO the kernel passes a
    // valid siginfo_t for the duration of the call; it is only read.
    let from_kernel = !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL;
    // A signal from the terminal (sent by the kernel to the foreground
    // process group) already reached a command in our group.
    let pid = TARGET.load(Ordering::SeqCst);
    let from_terminal = pid != 0 && from_kernel && SCOPE.load(Ordering::SeqCst) != TO_CHILDS_GROUP;
    if !from_terminal {
        // Left for the spawner while the pid is unknown; claimed back
        // (unless the spawner claimed it first) once it is.
        UNFORWARDED.fetch_or(bit(sig), Ordering::SeqCst);
        let pid = TARGET.load(Ordering::SeqCst);
        if pid != 0 && UNFORWARDED.fetch_and(!bit(sig), Ordering::SeqCst) & bit(sig) != 0 {
            forward(pid, SCOPE.load(Ordering::SeqCst), sig);
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// The actions the forwarded signals had before cbreak's handlers.
type Saved = [(libc::c_int, libc::sigaction); FORWARDED.len()];

/// Installs the forwarding handler for each forwarded signal that is not
/// ignored; returns the actions to restore.
fn install_forwarding() -> Saved {
    FORWARDED.map(|sig| {
        // SAFETY: a zeroed sigaction is a valid starting value (empty mask,
        // no flags); sigaction reads the old action into a local, and we
        // install a handler of the SA_SIGINFO signature, which only uses
        // async-signal-safe operations, passing valid pointers.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old);
            if old.sa_sigaction != libc::SIG_IGN {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
            (sig, old)
        }
    })
}

/// Puts back the actions `install_forwarding` replaced.
fn restore(saved: &Saved) {
    for (sig, old) in saved {
        // SAFETY: `old` is an action sigaction itself returned.
        unsafe {
            libc::sigaction(*sig, old, std::ptr::null_mut());
        }
    }
}

/// The argument vector that runs `cmd` with `sh -c`: hooks and
/// `--fallback` are shell command lines.
pub fn shell(cmd: &str) -> [OsString; 4] {
    // After `--`, a command that starts with `-` or `+` is the command, not
    // options of sh's own (`--fallback '+x'` ran `sh -c +x`: "sh: 0:
    // Illegal option").
    ["sh".into(), "-c".into(), "--".into(), cmd.into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[OsString]) -> Spec<'_> {
        Spec {
            argv,
            timeout: None,
            timeout_signal: libc::SIGTERM,
            kill_after: Duration::from_secs(1),
            group: Group::Own,
            env: &[],
            forward_signals: false,
            quiet_stdio: true,
        }
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// The tests that use the forwarding's globals (`TARGET`, the
    /// handlers), one at a time.
    static SIGNALS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A signal that lands after the spawner published the pid, before it
    /// looked for signals that came early: the handler passes it on, and
    /// the spawner must not pass it on again (a second SIGINT is "force
    /// quit" to some programs).
    #[test]
    fn a_signal_landing_as_the_pid_is_published_is_forwarded_once() {
        let _one = SIGNALS.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        RECEIVED.store(0, Ordering::SeqCst);
        let saved = install_forwarding();
        let before = FORWARDS.load(Ordering::SeqCst);
        SCOPE.store(TO_CHILD, Ordering::SeqCst);
        TARGET.store(pid, Ordering::SeqCst);
        // SAFETY: raise(3) with a plain signal number; its handler (ours)
        // runs on this thread before raise returns.
        unsafe { libc::raise(libc::SIGHUP) };
        forward_unclaimed(pid, TO_CHILD);
        TARGET.store(0, Ordering::SeqCst);
        restore(&saved);
        let forwards = FORWARDS.load(Ordering::SeqCst) - before;
        RECEIVED.store(0, Ordering::SeqCst);
        let _ = child.kill();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGHUP), "it got the SIGHUP");
        assert_eq!(forwards, 1, "the SIGHUP was passed on once");
    }

    /// What the module's header says of std: `Command` neither empties nor
    /// sets the signal mask; the command inherits the spawning thread's.
    #[test]
    fn the_command_inherits_the_spawning_threads_signal_mask() {
        let blocked = std::thread::spawn(|| {
            // SAFETY: sigemptyset, sigaddset and pthread_sigmask write and
            // read a local set; the mask is this new thread's alone.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR2);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            }
            let out = Command::new("grep")
                .args(["SigBlk", "/proc/self/status"])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        })
        .join()
        .unwrap();
        let mask = blocked.trim().strip_prefix("SigBlk:").unwrap().trim();
        assert_eq!(
            u64::from_str_radix(mask, 16).unwrap(),
            1 << (libc::SIGUSR2 - 1),
            "{blocked}"
        );
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
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-executable");
        std::fs::write(&file, "exit 0\n").unwrap();
        let a = vec![file.into_os_string()];
        assert!(matches!(run(&spec(&a)), Err(SpawnError::CannotExecute(_))));
    }

    #[test]
    fn a_script_without_a_shebang_runs_with_sh() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("old-cron-script");
        std::fs::write(&file, "test \"$1\" = arg && exit 7\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        let a = vec![file.into_os_string(), "arg".into()];
        assert_eq!(run(&spec(&a)).unwrap().status, Status::Exited(7));
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
    fn the_wait_sees_the_end_with_and_without_a_pidfd_and_does_not_reap() {
        for with_pidfd in [true, false] {
            let mut child = Command::new("sleep").arg("0.3").spawn().unwrap();
            let pid = i32::try_from(child.id()).unwrap();
            let fd = if with_pidfd { pidfd(pid) } else { None };
            if with_pidfd && fd.is_none() {
                println!("SKIPPED the pidfd half: this kernel has no pidfd_open");
            }
            assert!(!wait_a_while(
                pid,
                fd.as_ref(),
                Some(Duration::from_millis(1))
            ));
            let start = Instant::now();
            while !wait_a_while(pid, fd.as_ref(), Some(Duration::from_millis(50))) {
                assert!(start.elapsed() < Duration::from_secs(20));
            }
            assert!(has_exited(pid), "still there to be reaped");
            assert!(child.wait().unwrap().success());
        }
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
