//! What an unlucky or hostile environment does to a record: copy-on-write
//! disks that fill up, other processes truncating it, probes in other pid
//! namespaces, other users, locks held elsewhere, pipes nobody reads.
//!
//! Mounting, namespaces and other users need root; where the machine
//! refuses, a test prints why it skipped (and fails in CI, where `.ci/run`
//! makes sure it can).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::util::{Env, Run, eventually};

/// Says why a test cannot check anything here: a failure in CI, a printed
/// skip elsewhere.
fn cannot(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("cannot run this test in CI: {why}");
    }
    println!("SKIPPED: {why}");
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Damages both copies of the state in the record at `path` (a record
/// with no whole copy: corrupt, not foreign), returning its bytes.
fn damage(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    for range in [100..300, 4200..4400] {
        for b in &mut bytes[range] {
            *b ^= 0x5a;
        }
    }
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn sh(script: &str) -> std::process::Output {
    Command::new("sh").args(["-c", script]).output().unwrap()
}

/// Opens a breaker with a record, then trips it open for `period`.
fn open_for(env: &Env, name: &str, period: &str) {
    env.run(&["run", "-n", name, "--", "true"]).success();
    env.run(&["trip", name, "--for", period]).success();
}

/// A small btrfs loop image mounted for the test, unmounted on drop.
struct Btrfs {
    dir: PathBuf,
}

impl Btrfs {
    fn mount(env: &Env) -> Option<Btrfs> {
        let image = env.path("btrfs.img");
        let dir = env.path("btrfs");
        std::fs::create_dir_all(&dir).unwrap();
        let script = format!(
            "truncate -s 128M {img} && mkfs.btrfs -q {img} && mount -o loop {img} {dir}",
            img = image.display(),
            dir = dir.display()
        );
        let out = sh(&script);
        if !out.status.success() {
            cannot(&format!(
                "cannot make and mount a btrfs image (needs root, loop devices and btrfs-progs): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        Some(Btrfs { dir })
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn run_in(env: &Env, state: &Path, args: &[&str]) -> Run {
    Run::from(
        env.command(args)
            .env("CBREAK_STATE_DIR", state)
            .output()
            .unwrap(),
    )
}

#[test]
fn full_copy_on_write_disk_never_kills_cbreak() {
    let env = Env::new();
    let Some(fs) = Btrfs::mount(&env) else {
        return;
    };
    let state = fs.dir.join("state");
    for name in ["a", "b", "c"] {
        run_in(&env, &state, &["run", "-n", name, "--", "true"]).success();
    }
    // Fill it: data first, then the last scraps of metadata space.
    let _ = sh(&format!(
        "dd if=/dev/zero of={f} bs=1M 2>/dev/null; for i in $(seq 1 2000); do echo x > {d}/f$i 2>/dev/null || break; done; sync",
        f = fs.dir.join("filler").display(),
        d = fs.dir.display()
    ));
    for round in 0..20 {
        let name = ["a", "b", "c", "new"][round % 4];
        let out = env
            .command(&["run", "-n", name, "--", "sh", "-c", "exit 3"])
            .env("CBREAK_STATE_DIR", &state)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            None,
            "cbreak died of a signal on a full btrfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = Run::from(out);
        // The command ran every time: its own status, or 75 once a breaker
        // that could still be written opened.
        assert!(run.code == 3 || run.code == 75, "{}", run.stderr);
    }
}

/// The command reads its record with `pread(2)`, where a truncated file
/// is a short read. (The library reads through a map, where it is a
/// `SIGBUS`: `api::a_record_truncated_under_the_librarys_map_is_a_warning_not_a_sigbus`.)
#[test]
fn another_process_truncating_the_record_never_kills_a_run() {
    let env = Env::new();
    env.run(&["run", "-n", "t", "--", "true"]).success();
    let path = env.state().join("t");
    let stop = Arc::new(AtomicBool::new(false));
    let truncator = {
        let stop = Arc::clone(&stop);
        let path = path.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // As `cp` over it would: truncate, then write a little.
                if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                    let _ = f.set_len(0);
                    let _ = f.set_len(8192);
                }
            }
        })
    };
    let marker = env.path("ran");
    let script = format!("echo x >> {}", marker.display());
    for _ in 0..150 {
        let out = env
            .command(&["run", "-n", "t", "-q", "--", "sh", "-c", &script])
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            None,
            "died of a signal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stop.store(true, Ordering::Relaxed);
    truncator.join().unwrap();
    let runs = std::fs::read_to_string(&marker).unwrap().lines().count();
    assert_eq!(runs, 150, "every run ran the command");
}

/// Starts a probe (`sleep 30` under the breaker `name`, which must be due
/// for a probe), waits until it runs, and returns it.
fn start_probe(env: &Env, name: &str, wrapper: &[&str]) -> std::process::Child {
    let started = env.path(&format!("{name}.started"));
    let script = format!("touch {}; exec sleep 30", started.display());
    let mut cmd = if wrapper.is_empty() {
        env.command(&["run", "-n", name, "--", "sh", "-c", &script])
    } else {
        let mut c = Command::new(wrapper[0]);
        c.args(&wrapper[1..])
            .arg(crate::util::bin())
            .args(["run", "-n", name, "--", "sh", "-c", &script])
            .env("CBREAK_STATE_DIR", env.state());
        c
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || started.exists()),
        "the probe never started"
    );
    child
}

fn stop(mut child: std::process::Child) {
    // SIGTERM: cbreak forwards it and exits; the sleep goes with it.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

#[test]
fn probe_in_another_pid_namespace_is_not_probed_twice() {
    let env = Env::new();
    if !sh("unshare --pid --fork --mount-proc true")
        .status
        .success()
    {
        cannot("unshare --pid --mount-proc is not permitted here");
        return;
    }
    open_for(&env, "ns", "100ms");
    std::thread::sleep(Duration::from_millis(300));
    // --kill-child: when the test SIGKILLs `unshare`, cbreak (pid 1 in its
    // namespace) dies with it, and the probe's command with the namespace.
    let ns = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];
    let probe = start_probe(&env, "ns", &ns);
    // Another namespace, where the probe's pid means nothing (or another
    // process): the slot is still held.
    let out = Command::new("unshare")
        .args(&ns[1..])
        .arg(crate::util::bin())
        .args(["run", "-n", "ns", "--", "true"])
        .env("CBREAK_STATE_DIR", env.state())
        .output()
        .unwrap();
    let second = Run::from(out);
    assert_eq!(second.code, 75, "a second probe ran: {}", second.stderr);
    assert!(second.stderr.contains("probe is still running"));
    // And from the root namespace too.
    env.run(&["run", "-n", "ns", "--", "true"])
        .code(75)
        .stderr_has("probe is still running");
    let mut probe = probe;
    probe.kill().unwrap();
    probe.wait().unwrap();
    // Killed in its namespace (the kernel delivers the parent-death
    // SIGKILL a moment after `unshare` is reaped): the kernel drops its
    // probe lock, `status` shows it gone, and the very next caller, here,
    // probes and closes it.
    assert!(
        eventually(
            Duration::from_secs(10),
            || env.status("ns")["probe_in_flight"] == false
        ),
        "the killed probe still shows"
    );
    env.run(&["run", "-n", "ns", "--", "true"])
        .success()
        .stderr_has("closed: probe succeeded");
}

#[test]
fn probe_is_held_for_a_caller_whose_proc_is_empty() {
    let env = Env::new();
    if !sh("unshare --mount sh -c 'mount -t tmpfs none /proc'")
        .status
        .success()
    {
        cannot("cannot mount a tmpfs over /proc in a mount namespace");
        return;
    }
    open_for(&env, "np", "100ms");
    std::thread::sleep(Duration::from_millis(300));
    let probe = start_probe(&env, "np", &[]);
    let script = format!(
        "mount -t tmpfs none /proc && exec {} run -n np -- true",
        crate::util::bin()
    );
    let out = Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .env("CBREAK_STATE_DIR", env.state())
        .output()
        .unwrap();
    let second = Run::from(out);
    assert_eq!(second.code, 75, "a second probe ran: {}", second.stderr);
    stop(probe);
}

#[test]
fn status_shows_a_killed_probe_as_gone() {
    let env = Env::new();
    open_for(&env, "gone", "100ms");
    std::thread::sleep(Duration::from_millis(300));
    let mut probe = start_probe(&env, "gone", &[]);
    assert_eq!(env.status("gone")["probe_in_flight"], true);
    probe.kill().unwrap();
    probe.wait().unwrap();
    let _ = sh(&format!(
        "pkill -f '{}'",
        env.path("gone.started").display()
    ));
    assert_eq!(env.status("gone")["probe_in_flight"], false);
    env.run(&["check", "gone"]).success();
}

#[test]
fn slow_hook_before_a_probe_cannot_let_a_second_probe_through() {
    let env = Env::new();
    open_for(&env, "hook", "100ms");
    std::thread::sleep(Duration::from_millis(300));
    let started = env.path("probe.started");
    let script = format!("touch {}; exec sleep 30", started.display());
    // The lease of a probe with --timeout 3s --kill-after 1s is 14 s; the
    // hook takes 15 s before the probe's command starts. The command runs
    // (for up to 3 s) while the next caller tries.
    let probe = env
        .command(&[
            "run",
            "-n",
            "hook",
            "--timeout",
            "3s",
            "--kill-after",
            "1s",
            "--on-half-open",
            "sleep 15",
            "--hook-timeout",
            "30s",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || started.exists()),
        "the probe never started"
    );
    // Every other caller finds the slot held, before and after the hook.
    env.run(&["run", "-n", "hook", "--", "true"])
        .code(75)
        .stderr_has("probe is still running");
    stop(probe);
}

#[test]
fn record_owned_by_another_user_is_refused_not_trusted() {
    let env = Env::new();
    if !is_root() {
        cannot("needs root to make a file of another user");
        return;
    }
    env.run(&["run", "-n", "theirs", "--", "true"]).success();
    let path = env.state().join("theirs");
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    env.run(&["run", "-n", "theirs", "--", "sh", "-c", "exit 4"])
        .code(4)
        .stderr_has("refusing the record")
        .stderr_has("belongs to uid 65534")
        .stderr_has("running the command anyway");
    env.run(&["status", "theirs"])
        .code(125)
        .stderr_has("refusing the record");
    // Writable by everyone: refused too, whoever owns it.
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    env.run(&["trip", "theirs"])
        .code(125)
        .stderr_has("writable by every user");
}

/// Runs cbreak as uid 65534 with the supplementary groups `groups`.
fn as_nobody(_env: &Env, state: &Path, groups: &str, args: &[&str]) -> Run {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534"])
        .arg(format!("--groups={groups}"))
        .arg(crate::util::bin())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CBREAK_STATE_DIR", state)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run::from(out)
}

#[test]
fn group_directory_is_shared_only_with_its_members_and_any_member_moves_a_corrupt_record() {
    let env = Env::new();
    if !is_root() {
        cannot("needs root to run as other users");
        return;
    }
    // Let other users reach the state directory through the temp dir.
    std::fs::set_permissions(env.path(""), std::fs::Permissions::from_mode(0o755)).unwrap();
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::os::unix::fs::chown(&shared, Some(0), Some(4242)).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2770)).unwrap();
    // Not a member: refused with a reason.
    let out = as_nobody(&env, &shared, "65534", &["trip", "--create", "x"]);
    assert_eq!(out.code, 125, "{}", out.stderr);
    // (The kernel refuses before cbreak can judge: no search permission.)
    // A member: works, and records are the group's, 0660.
    as_nobody(&env, &shared, "4242", &["run", "-n", "g", "--", "true"]).success();
    let meta = std::fs::metadata(shared.join("g")).unwrap();
    assert_eq!((meta.gid(), meta.mode() & 0o777), (4242, 0o660));
    // Another member's corrupt record is moved aside by this one.
    let record = shared.join("c");
    as_nobody(&env, &shared, "4242", &["run", "-n", "c", "--", "true"]).success();
    damage(&record);
    std::os::unix::fs::chown(&record, Some(65533), Some(4242)).unwrap();
    std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o660)).unwrap();
    as_nobody(&env, &shared, "4242", &["run", "-n", "c", "--", "true"])
        .success()
        .stderr_has("kept it as");
    as_nobody(&env, &shared, "4242", &["run", "-n", "c", "--", "true"])
        .success()
        .stderr_empty();
    // A record in the shared directory that belongs to another group is
    // not trusted.
    std::os::unix::fs::chown(shared.join("g"), Some(65534), Some(65534)).unwrap();
    as_nobody(&env, &shared, "4242", &["run", "-n", "g", "--", "true"])
        .success()
        .stderr_has("not the shared directory's group");
}

#[test]
fn group_directory_of_a_group_you_are_not_in_is_refused_with_the_reason() {
    let env = Env::new();
    if !is_root() {
        cannot("needs root to run as other users");
        return;
    }
    std::fs::set_permissions(env.path(""), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = env.path("theirs");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(4343), Some(4343)).unwrap();
    // Searchable, so that cbreak (not the kernel) judges it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2775)).unwrap();
    as_nobody(&env, &dir, "65534", &["trip", "--create", "x"])
        .code(125)
        .stderr_has("you (uid 65534) are not a member");
}

#[test]
fn metrics_output_never_replaces_what_is_not_a_regular_file() {
    let env = Env::new();
    env.run(&["run", "-n", "m", "--", "true"]).success();
    let target = env.path("precious");
    std::fs::write(&target, b"keep").unwrap();
    let link = env.path("link.prom");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = env.path("fifo.prom");
    assert!(sh(&format!("mkfifo {}", fifo.display())).status.success());
    let check = |path: &Path, what: &str| {
        env.run(&["metrics", "--output", path.to_str().unwrap()])
            .code(125)
            .stderr_has(what)
            .one_error_line();
    };
    check(&link, "a symlink");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    // A FIFO with a reader waiting: nothing is written to it either.
    let reader = Command::new("cat")
        .arg(&fifo)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    check(&fifo, "a FIFO");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo_like()
    );
    // Release the reader.
    let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
    let _ = reader.wait_with_output();
    if is_root() {
        let dev = env.path("null.prom");
        assert!(
            sh(&format!("mknod {} c 1 3", dev.display()))
                .status
                .success()
        );
        check(&dev, "a device");
        assert!(
            std::fs::symlink_metadata(&dev)
                .unwrap()
                .file_type()
                .is_char_device_like()
        );
    }
    check(&env.path(""), "a directory");
    // `-` is stdout; a regular file is replaced atomically.
    let out = env.run(&["metrics", "--output", "-"]).success();
    assert!(out.stdout.contains("cbreak_calls_total"));
    let file = env.path("ok.prom");
    std::fs::write(&file, b"old").unwrap();
    env.run(&["metrics", "--output", file.to_str().unwrap()])
        .success();
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("cbreak_calls_total")
    );
}

/// Root writing `metrics --output` into a shared directory over a file
/// another user made setuid and world-writable kept that mode on its own
/// new file (`-rwsrwsrwx root`): only a file of the caller's own gives its
/// permissions, and never the setuid, setgid or sticky bits.
#[test]
fn metrics_output_over_another_users_file_does_not_take_its_mode() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !is_root() {
        return cannot("needs root to make a file of another user's");
    }
    let env = Env::new();
    env.run(&["run", "-n", "m", "--", "true"]).success();
    let theirs = env.path("theirs.prom");
    std::fs::write(&theirs, b"old").unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o6777)).unwrap();
    env.run(&["metrics", "--output", theirs.to_str().unwrap()])
        .success();
    let meta = std::fs::metadata(&theirs).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o644));
    // A file of one's own keeps its permission bits, not its setuid bit.
    let mine = env.path("mine.prom");
    std::fs::write(&mine, b"old").unwrap();
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o4640)).unwrap();
    env.run(&["metrics", "--output", mine.to_str().unwrap()])
        .success();
    assert_eq!(std::fs::metadata(&mine).unwrap().mode() & 0o7777, 0o640);
}

trait FileTypeLike {
    fn is_fifo_like(&self) -> bool;
    fn is_char_device_like(&self) -> bool;
}

impl FileTypeLike for std::fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
    fn is_char_device_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_char_device(self)
    }
}

#[test]
fn check_fails_open_like_run() {
    let env = Env::new();
    env.run(&["run", "-n", "c", "--", "true"]).success();
    let damaged = damage(&env.state().join("c"));
    env.run(&["check", "c"])
        .success()
        .stderr_has("corrupt")
        .stderr_has("a call would run");
    env.run(&["check", "c", "--on-state-error", "skip"])
        .code(75);
    env.run(&["check", "c", "--on-state-error", "fail"])
        .code(125)
        .one_error_line();
    // check never moves anything.
    assert_eq!(std::fs::read(env.state().join("c")).unwrap(), damaged);
    // No HOME and no state directory: fails open as well.
    let out = env
        .command(&["check", "c"])
        .env_remove("CBREAK_STATE_DIR")
        .env_remove("HOME")
        .env_remove("XDG_STATE_HOME")
        .output()
        .unwrap();
    Run::from(out).success().stderr_has("HOME is not set");
}

#[test]
fn a_lock_held_elsewhere_delays_a_run_only_for_the_lock_timeout() {
    let env = Env::new();
    env.run(&["run", "-n", "l", "--", "true"]).success();
    let path = env.state().join("l");
    // flock(1) holds the record's lock for a minute.
    let mut holder = Command::new("flock")
        .arg(&path)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    env.run(&[
        "--lock-timeout",
        "500ms",
        "run",
        "-n",
        "l",
        "--",
        "sh",
        "-c",
        "exit 6",
    ])
    .code(6)
    .stderr_has("held the lock")
    .stderr_has("running the command anyway");
    let out = env
        .command(&["run", "-n", "l", "--", "true"])
        .env("CBREAK_LOCK_TIMEOUT", "300ms")
        .output()
        .unwrap();
    Run::from(out).success().stderr_has("held the lock");
    env.run(&["--lock-timeout", "300ms", "status", "l"])
        .code(125)
        .stderr_has("held the lock");
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the holder still holds it"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn nothing_is_written_to_stderr_while_the_record_is_locked() {
    let env = Env::new();
    env.run(&["run", "-n", "p", "--", "true"]).success();
    damage(&env.state().join("p"));
    // A stderr pipe that is full and that nobody reads: the run that moves
    // the corrupt record aside blocks on its warning...
    let mut fds = [0; 2];
    // SAFETY: pipe(2) writes two descriptors into `fds`.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read_end, write_end) = (fds[0], fds[1]);
    // SAFETY: fcntl on the pipe we just made; then non-blocking writes
    // until it is full.
    unsafe {
        libc::fcntl(write_end, libc::F_SETFL, libc::O_NONBLOCK);
        let chunk = [b'x'; 4096];
        while libc::write(write_end, chunk.as_ptr().cast(), chunk.len()) > 0 {}
        libc::fcntl(write_end, libc::F_SETFL, 0);
    }
    // SAFETY: `write_end` is a descriptor we own; the Stdio takes it over.
    let stderr = unsafe { <Stdio as std::os::fd::FromRawFd>::from_raw_fd(write_end) };
    let mut blocked = env
        .command(&["run", "-n", "p", "--", "true"])
        .stderr(stderr)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // ... but only itself: the lock is free, so the next run goes on.
    let mut next = env
        .command(&["run", "-n", "p", "--", "sh", "-c", "exit 5"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let finished = eventually(Duration::from_secs(20), || {
        next.try_wait().unwrap().is_some()
    });
    // Drain the pipe and let the blocked run finish, whatever happened.
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        // SAFETY: reading into our own buffer from our own pipe.
        while unsafe { libc::read(read_end, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    });
    if !finished {
        let _ = next.kill();
    }
    let next = Run::from(next.wait_with_output().unwrap());
    assert!(blocked.wait().unwrap().success());
    drain.join().unwrap();
    assert!(
        finished,
        "the second run waited for the first one's warning"
    );
    next.code(5).stderr_empty();
}

#[test]
fn a_torn_copy_falls_back_to_the_other_one() {
    let env = Env::new();
    for _ in 0..3 {
        env.run(&["run", "-n", "torn", "--", "true"]).success();
    }
    let path = env.state().join("torn");
    let mut bytes = std::fs::read(&path).unwrap();
    let active = u64::from_le_bytes(bytes[24..32].try_into().unwrap());
    let start = if active == 0 { 64 } else { 4128 };
    // A power loss tore the last store: half its copy is old garbage.
    for b in &mut bytes[start + 100..start + 1000] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();
    // The store before the last one: 2 of the 3 calls, nothing reset.
    assert_eq!(env.status("torn")["calls"], 2);
    env.run(&["run", "-n", "torn", "--", "true"])
        .success()
        .stderr_empty();
    assert_eq!(env.status("torn")["calls"], 3);
}

#[test]
fn records_get_their_mode_whatever_the_umask() {
    let env = Env::new();
    let script = format!("umask 0277 && exec {} run -n u -- true", crate::util::bin());
    let run = Command::new("sh")
        .args(["-c", &script])
        .env("CBREAK_STATE_DIR", env.state())
        .output()
        .unwrap();
    Run::from(run).success().stderr_empty();
    let mode = std::fs::metadata(env.state().join("u")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);
    env.run(&["run", "-n", "u", "--", "true"])
        .success()
        .stderr_empty();
    assert_eq!(env.status("u")["calls"], 2);
}

#[test]
fn a_relative_home_is_not_used() {
    let env = Env::new();
    let out = env
        .command(&["run", "-n", "h", "--", "sh", "-c", "exit 7"])
        .env_remove("CBREAK_STATE_DIR")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", "relative/home")
        .output()
        .unwrap();
    Run::from(out)
        .code(7)
        .stderr_has("not an absolute path")
        .stderr_has("running the command anyway");
    assert!(
        !env.path("relative").exists(),
        "no state under the current directory"
    );
}

#[test]
fn help_never_shows_the_values_of_variables() {
    let env = Env::new();
    // Plain `cbreak` (a crontab line missing its subcommand) prints the
    // help too, and a cron mail or CI log would keep it.
    for (args, name) in [
        (&["run", "--help"][..], "CBREAK_ON_OPEN"),
        (&["--help"][..], "CBREAK_STORE"),
        (&["help"][..], "CBREAK_STORE"),
        (&[][..], "CBREAK_STORE"),
    ] {
        let out = env
            .command(args)
            .env("CBREAK_ON_OPEN", "curl -H 'token: s3cr3t' x")
            .env("CBREAK_STORE", "redis://u:s3cr3t@h:1/0")
            .output()
            .unwrap();
        let run = Run::from(out).success();
        assert!(run.stdout.contains(name), "{args:?}: names are shown");
        assert!(!run.stdout.contains("s3cr3t"), "{args:?}: {}", run.stdout);
    }
}

#[test]
fn full_disk_message_names_enospc() {
    let env = Env::new();
    let Some(fs) = Btrfs::mount(&env) else {
        return;
    };
    let _ = sh(&format!(
        "dd if=/dev/zero of={f} bs=1M 2>/dev/null; for i in $(seq 1 4000); do echo x > {d}/f$i 2>/dev/null || break; done; sync",
        f = fs.dir.join("filler").display(),
        d = fs.dir.display()
    ));
    let out = run_in(
        &env,
        &fs.dir.join("state2"),
        &["run", "-n", "n", "--", "true"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("No space left on device") && !out.stderr.contains("os error 0"),
        "{}",
        out.stderr
    );
}

#[test]
fn directories_others_control_are_refused_even_for_root() {
    let env = Env::new();
    if !is_root() {
        cannot("needs root to make directories of other users");
        return;
    }
    std::fs::set_permissions(env.path(""), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Made setgid and group-writable by another user, for a group root is
    // not in: root must not share it.
    let theirs = env.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o2770)).unwrap();
    run_in(
        &env,
        &theirs,
        &["run", "-n", "d", "--", "sh", "-c", "exit 4"],
    )
    .code(4)
    .stderr_has("not a member")
    .stderr_has("running the command anyway");
    assert!(!theirs.join("d").exists());
    // Group-writable without being a shared (setgid) directory.
    let loose = env.path("loose");
    std::fs::create_dir(&loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o775)).unwrap();
    run_in(&env, &loose, &["trip", "--create", "d"])
        .code(125)
        .stderr_has("writable by its group");
    // A symlink planted by another user, pointing at a directory of ours.
    let ours = env.path("ours");
    std::fs::create_dir(&ours).unwrap();
    std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = env.path("planted");
    std::os::unix::fs::symlink(&ours, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    run_in(&env, &link, &["trip", "--create", "d"])
        .code(125)
        .stderr_has("symlink that belongs to uid 65534");
    assert!(!ours.join("d").exists());
    // In a refused directory, reading every breaker says so once.
    let out = run_in(&env, &loose, &["status"]).code(125);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn root_with_another_users_home_does_not_create_state_there() {
    let env = Env::new();
    if !is_root() {
        cannot("needs root");
        return;
    }
    let home = env.path("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    // As `sudo -E` would leave it: root, with the user's HOME.
    let out = env
        .command(&["run", "-n", "n", "--", "sh", "-c", "exit 5"])
        .env_remove("CBREAK_STATE_DIR")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", &home)
        .output()
        .unwrap();
    Run::from(out)
        .code(5)
        .stderr_has("will not create it inside")
        .stderr_has("belongs to uid 65534")
        .stderr_has("running the command anyway");
    assert!(!home.join(".local").exists(), "nothing made in their home");
}

#[test]
fn an_empty_fallback_is_refused_not_a_silent_success() {
    let env = Env::new();
    env.run(&["run", "-n", "f", "--fallback", "", "--", "true"])
        .code(125)
        .stderr_has("--fallback");
    let out = env
        .command(&["run", "-n", "f", "--", "true"])
        .env("CBREAK_FALLBACK", "")
        .output()
        .unwrap();
    Run::from(out).code(125).stderr_has("CBREAK_FALLBACK");
}

#[test]
fn names_and_commands_cannot_forge_lines_or_drive_the_terminal() {
    let env = Env::new();
    let out = env.run(&["run", "-n", "a\nb", "--", "true"]).code(125);
    out.one_error_line();
    let out = env.run(&["status", "x\u{1b}]0;pwned\u{7}"]).code(125);
    assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
    let out = env.run(&["run", "-n", "c", "--", "no\nsuch"]).code(127);
    assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
}

#[test]
fn metrics_output_is_readable_by_the_collector_whatever_the_umask() {
    let env = Env::new();
    env.run(&["run", "-n", "m", "--", "true"]).success();
    let file = env.path("new.prom");
    let script = format!(
        "umask 077 && exec {} metrics --output {}",
        crate::util::bin(),
        file.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env("CBREAK_STATE_DIR", env.state())
        .output()
        .unwrap();
    Run::from(out).success();
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o644);
    // A file that exists keeps its mode.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    env.run(&["metrics", "--output", file.to_str().unwrap()])
        .success();
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o640);
}

#[test]
fn state_directories_are_made_usable_whatever_the_umask() {
    let env = Env::new();
    let dir = env.path("deep/er/state");
    let script = format!("umask 0377 && exec {} run -n u -- true", crate::util::bin());
    let out = Command::new("sh")
        .args(["-c", &script])
        .env("CBREAK_STATE_DIR", &dir)
        .output()
        .unwrap();
    Run::from(out).success().stderr_empty();
    for d in [env.path("deep"), env.path("deep/er"), dir.clone()] {
        assert_eq!(
            std::fs::metadata(&d).unwrap().mode() & 0o777,
            0o700,
            "{d:?}"
        );
    }
    env.run(&["run", "-n", "u", "--", "true"])
        .success()
        .stderr_empty();
}

#[test]
fn durations_stop_at_a_hundred_years() {
    let env = Env::new();
    env.run(&["run", "-n", "d", "-r", "36500d", "--", "true"])
        .success();
    env.run(&["run", "-n", "d", "-r", "36501d", "--", "true"])
        .code(125)
        .stderr_has("at most 36500 days");
    env.run(&["run", "-n", "d", "-r", "213503982334d", "--", "true"])
        .code(125)
        .one_error_line();
}

#[test]
fn bidirectional_controls_are_escaped_in_messages() {
    let env = Env::new();
    let out = env
        .run(&["run", "-n", "b", "--", "x\u{202e}y\u{2066}z"])
        .code(127);
    assert!(
        !out.stderr.contains('\u{202e}') && !out.stderr.contains('\u{2066}'),
        "{:?}",
        out.stderr
    );
}

/// A CI secret a fork's job cannot see arrives as an empty variable: the
/// job must run on the local state directory, not stop.
#[test]
fn an_empty_store_variable_means_the_state_directory() {
    let env = Env::new();
    for empty in ["", "  "] {
        let out = env
            .command(&["run", "-n", "s", "--", "sh", "-c", "exit 3"])
            .env("CBREAK_STORE", empty)
            .output()
            .unwrap();
        Run::from(out).code(3).stderr_empty();
    }
    assert_eq!(env.status("s")["calls"], 2);
}

/// `cbreak ARGS` under `ulimit -s KIB` (the main thread's stack only).
fn with_stack_limit(env: &Env, kib: u64, args: &[&str]) -> Run {
    use std::os::unix::process::CommandExt;
    let mut cmd = env.command(args);
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls getrlimit(2) and setrlimit(2), which are async-signal-safe,
    // on a local struct.
    unsafe {
        cmd.pre_exec(move || {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_STACK, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit.rlim_cur = kib << 10;
            if libc::setrlimit(libc::RLIMIT_STACK, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Run::from(cmd.output().expect("cbreak runs"))
}

/// A stack limit smaller than a run needs (`ulimit -s 32`; about 48 KiB
/// killed cbreak with SIGSEGV, sometimes after the command ran and before
/// its outcome was recorded): the command runs, its outcome counts, an
/// open breaker skips, help prints, and the command sees the limit it
/// was given.
#[test]
fn a_small_stack_limit_does_not_kill_cbreak() {
    let env = Env::new();
    let run = with_stack_limit(
        &env,
        32,
        &[
            "run",
            "-n",
            "s",
            "--threshold",
            "1",
            "--",
            "sh",
            "-c",
            "echo ran; exit 3",
        ],
    )
    .code(3);
    assert_eq!(run.stdout, "ran\n");
    assert_eq!(env.state_of("s"), "open", "the failure was recorded");
    with_stack_limit(&env, 32, &["run", "-n", "s", "--", "true"]).code(75);
    with_stack_limit(&env, 32, &["--help"]).success();
    let run =
        with_stack_limit(&env, 40, &["run", "-n", "t", "--", "sh", "-c", "ulimit -s"]).success();
    assert_eq!(
        run.stdout.trim(),
        "40",
        "the command's own limit is untouched"
    );
}

/// Over records it cannot use (another user's), the table does not claim
/// there are no breakers: it says why on stderr and exits 1.
#[test]
fn status_table_over_records_it_refuses_does_not_say_there_are_none() {
    let env = Env::new();
    if !is_root() {
        cannot("needs root to give a record to another user");
        return;
    }
    env.run(&["run", "-n", "theirs", "--", "true"]).success();
    std::os::unix::fs::chown(env.state().join("theirs"), Some(65534), None).unwrap();
    let out = env
        .run(&["status"])
        .code(1)
        .one_error_line()
        .stderr_has("belongs to uid 65534");
    assert_eq!(out.stdout, "", "not 'no breakers'");
}

/// Under a small stack limit cbreak works on a second thread, the main
/// thread blocking every signal from before that thread starts: the
/// working thread, and so the command, still has the mask cbreak was
/// started with, and a SIGTERM still reaches the command.
#[test]
fn on_a_thread_of_its_own_cbreak_keeps_the_callers_signal_mask_and_its_signals() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    // `cbreak ARGS` under `ulimit -s 32`, started with SIGUSR1 blocked.
    let cbreak = |args: &[&str]| {
        let mut cmd = env.command(args);
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls getrlimit(2), setrlimit(2), sigemptyset, sigaddset
        // and pthread_sigmask, which are async-signal-safe, on locals.
        unsafe {
            cmd.pre_exec(|| {
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(libc::RLIMIT_STACK, &mut limit);
                limit.rlim_cur = 32 << 10;
                if libc::setrlimit(libc::RLIMIT_STACK, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR1);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        cmd
    };
    // Not through sh: dash empties the mask it starts with.
    let out = cbreak(&[
        "run",
        "-n",
        "m",
        "--",
        "grep",
        "SigBlk",
        "/proc/self/status",
    ])
    .output()
    .unwrap();
    let out = Run::from(out).success();
    let blocked = out
        .stdout
        .trim()
        .strip_prefix("SigBlk:")
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap());
    assert_eq!(
        blocked,
        Some(1 << (libc::SIGUSR1 - 1)),
        "the command has the caller's mask: {}",
        out.stdout
    );
    let ready = env.path("ready");
    let script = format!(
        "trap 'echo term; exit 143' TERM; touch {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let child = cbreak(&["run", "-n", "m", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || ready.exists()));
    // SAFETY: kill(2) with plain integers, to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "term\n");
}
