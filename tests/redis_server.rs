//! A real Redis server for one test: `redis-server` on a free loopback
//! port and on a unix socket in a temporary directory, stopped when the
//! test ends. Outside CI, a machine without `redis-server` skips the test
//! with a printed reason; in CI (`CI` set) that is a failure.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
}

/// Whether `program` runs here.
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// `None` (after saying why) when the test cannot run here; a panic in
/// CI, where .ci/run installs what is missing.
pub fn need(test: &str, programs: &[&str]) -> Option<()> {
    for p in programs {
        if !installed(p) {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: {p} is not installed; .ci/run installs it"
            );
            println!("SKIPPED {test}: {p} is not installed (.ci/run installs it)");
            return None;
        }
    }
    Some(())
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("its address").port()
}

impl Redis {
    /// A plain server; `None` (after saying why) when there is none here.
    pub fn start(test: &str) -> Option<Redis> {
        Redis::start_with(test, &[])
    }

    /// A server with extra `redis-server` arguments (`--requirepass x`…).
    pub fn start_with(test: &str, extra: &[&str]) -> Option<Redis> {
        Redis::build(test, extra)
    }

    fn build(test: &str, extra: &[&str]) -> Option<Redis> {
        need(test, &["redis-server", "redis-cli"])?;
        let mut r = Redis {
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            port: free_port(),
            args: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.launch();
        Some(r)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn unix_url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn launch(&mut self) {
        let mut cmd = Command::new("redis-server");
        let dir = self.dir.path();
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .arg("--unixsocket")
            .arg(self.socket())
            .args(["--unixsocketperm", "700"])
            .arg("--dir")
            .arg(dir)
            .args(["--save", "", "--daemonize", "no"])
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = std::fs::remove_file(self.socket());
        let child = cmd.spawn().expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
        panic!("redis-server did not start: {log}");
    }

    /// PING over the unix socket (no password: a NOAUTH error is an
    /// answer too; a LOADING error, while a restarted server replays its
    /// append-only file, is not).
    fn ping(&self) -> bool {
        let Ok(mut s) = UnixStream::connect(self.socket()) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        matches!(s.read(&mut buf), Ok(n) if n > 0 && (buf[0] == b'+' || buf[0] == b'-' && !buf[..n].starts_with(b"-LOADING")))
    }

    /// `redis-cli` on the unix socket with `args`; its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server (SIGKILL: nothing saved unless persistence was on).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, socket and directory.
    #[allow(dead_code)] // used by the CLI tests of the store
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A test CA and a server certificate it signed for 127.0.0.1 and
/// localhost, made with openssl in `dir`: (ca.crt, server.crt, server.key).
pub fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join(format!("{name}-ca.key"));
    let ca = dir.join(format!("{name}-ca.crt"));
    let key = dir.join(format!("{name}-server.key"));
    let csr = dir.join(format!("{name}-server.csr"));
    let crt = dir.join(format!("{name}-server.crt"));
    let ext = dir.join(format!("{name}-ext.cnf"));
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the extensions");
    let openssl = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |v: &str| std::ffi::OsString::from(v);
    let p = |v: &Path| v.as_os_str().to_os_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args: Vec<std::ffi::OsString> = vec![s("req"), s("-x509")];
    args.extend(ec.iter().map(|a| s(a)));
    args.extend([
        s("-keyout"),
        p(&ca_key),
        s("-out"),
        p(&ca),
        s("-days"),
        s("2"),
    ]);
    args.extend([s("-subj"), s(&format!("/CN=cbreak test CA {name}"))]);
    openssl(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    let mut args: Vec<std::ffi::OsString> = vec![s("req")];
    args.extend(ec.iter().map(|a| s(a)));
    args.extend([
        s("-keyout"),
        p(&key),
        s("-out"),
        p(&csr),
        s("-subj"),
        s("/CN=localhost"),
    ]);
    openssl(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    let args = [
        s("x509"),
        s("-req"),
        s("-in"),
        p(&csr),
        s("-CA"),
        p(&ca),
        s("-CAkey"),
        p(&ca_key),
        s("-CAcreateserial"),
        s("-out"),
        p(&crt),
        s("-days"),
        s("2"),
        s("-extfile"),
        p(&ext),
    ];
    openssl(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    (ca, crt, key)
}
