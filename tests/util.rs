//! A small harness: a temporary state directory, the binary, and readable
//! assertions on what it did.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test: this build's, or `CBREAK_TEST_BIN` (the static
/// or release build, say).
pub fn bin() -> String {
    std::env::var("CBREAK_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cbreak").to_string())
}

/// A state directory and a scratch directory for one test, and the store
/// its commands use: the state directory, or a Redis server (`--store`).
pub struct Env {
    tmp: tempfile::TempDir,
    store: Option<String>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            tmp: tempfile::tempdir().expect("temp dir"),
            store: None,
        }
    }

    /// An environment whose commands keep their breakers on the Redis
    /// server at `url` (through `CBREAK_STORE`).
    pub fn on_store(url: &str) -> Env {
        Env {
            store: Some(url.to_string()),
            ..Env::new()
        }
    }

    pub fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    /// A path in the scratch directory (outside the state directory).
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `cbreak ARGS` with this state directory and no CBREAK_* settings
    /// from the environment the tests run in.
    ///
    /// `CBREAK_TEST_WRAPPER` runs every cbreak under a wrapper, e.g.
    /// `valgrind -q --error-exitcode=99`.
    pub fn command(&self, args: &[&str]) -> Command {
        let wrapper = std::env::var("CBREAK_TEST_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CBREAK_")
                && k != "CBREAK_TEST_WRAPPER"
                && k != "CBREAK_TEST_BIN"
            {
                cmd.env_remove(&k);
            }
        }
        if let Some(url) = &self.store {
            cmd.env("CBREAK_STORE", url);
        }
        cmd.env("CBREAK_STATE_DIR", self.state())
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR")
            .env_remove("CLICOLOR_FORCE")
            .current_dir(self.tmp.path())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("cbreak runs"))
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cbreak starts")
    }

    /// `status NAME --json`, parsed.
    pub fn status(&self, name: &str) -> Value {
        let out = self.run(&["status", name, "--json"]).success();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status JSON: {e}\n{}", out.stdout))
    }

    pub fn state_of(&self, name: &str) -> String {
        self.status(name)["state"].as_str().unwrap().to_string()
    }
}

/// What one run of cbreak did.
pub struct Run {
    /// The exit status; -1 if cbreak died of a signal.
    pub code: i32,
    /// The signal cbreak died of.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: o.status.code().unwrap_or(-1),
            signal: o.status.signal(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn code(self, expected: i32) -> Run {
        assert_eq!(
            self.code, expected,
            "exit status\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// cbreak died of signal `sig`.
    #[track_caller]
    pub fn killed_by(self, sig: i32) -> Run {
        assert_eq!(
            (self.signal, self.code),
            (Some(sig), -1),
            "death by signal\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn success(self) -> Run {
        self.code(0)
    }

    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_empty(self) -> Run {
        assert_eq!(self.stderr, "", "stderr should be empty");
        self
    }

    /// Every stderr line is one `cbreak: ...` line.
    #[track_caller]
    pub fn one_error_line(self) -> Run {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected:\n{}", self.stderr);
        assert!(lines[0].starts_with("cbreak: "), "{}", lines[0]);
        self
    }
}

/// Waits up to `limit` for `cond`, polling; false if it never held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Whether a process whose command line contains `needle` is alive (not a
/// zombie).
pub fn process_alive(needle: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok()).any(|e| {
        let p = e.path();
        let cmdline = std::fs::read(p.join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        !zombie
            && String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(needle)
    })
}

/// Runs `body` against the local state directory, then against a Redis
/// server (`--store`): the semantics of a breaker are the same whichever
/// store keeps it. Without `redis-server` outside CI, only the local store
/// runs, and the test says so.
pub fn each_store(test: &str, body: impl Fn(&Env)) {
    body(&Env::new());
    let Some(redis) = crate::redis_server::Redis::start(test) else {
        return;
    };
    body(&Env::on_store(&redis.url()));
    assert!(
        redis
            .cli(&["INFO", "commandstats"])
            .contains("cmdstat_evalsha"),
        "{test}: the breakers went to the server"
    );
}
