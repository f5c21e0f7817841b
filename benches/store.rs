//! What a breaker on a Redis server (`--store`) costs a command, against
//! the local store and a bare `redis-cli PING`, and how many round trips
//! each path takes. Run with `cargo bench --bench store` after
//! `cargo build --release` (or `-- --build static` after `cargo static`);
//! it starts its own `redis-server` on a free loopback port and a unix
//! socket, and builds nothing itself.
//!
//! Comparisons alternate their two commands (A B A B ...) after a warm-up
//! and report the medians and the median of the pairwise ratios, as
//! `benches/overhead.rs` does. Round trips are the commands the server
//! counted (INFO commandstats) over a number of runs, divided by it.
//! Throughput is 64 concurrent processes each running the same breaker.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn time(argv: &[String], env: &[(&str, String)]) -> f64 {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let status = cmd.status().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let t = start.elapsed().as_secs_f64() * 1e3;
    assert!(
        status.success() || status.code() == Some(75),
        "{argv:?}: {status}"
    );
    t
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

fn compare(name: &str, a: &[String], b: &[String], env: &[(&str, String)], rounds: usize) {
    let warm = (rounds / 10).max(5);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for i in 0..warm + rounds {
        let x = time(a, env);
        let y = time(b, env);
        if i >= warm {
            ta.push(x);
            tb.push(y);
        }
    }
    let ratios: Vec<f64> = ta.iter().zip(&tb).map(|(x, y)| x / y).collect();
    println!(
        "{name:<44} {:>7.3} ms (p90 {:>6.3})  vs {:>7.3} ms (p90 {:>6.3})  ratio {:>5.3}",
        percentile(&ta, 0.5),
        percentile(&ta, 0.9),
        percentile(&tb, 0.5),
        percentile(&tb, 0.9),
        percentile(&ratios, 0.5)
    );
}

fn words(s: &[&str]) -> Vec<String> {
    s.iter().map(|w| w.to_string()).collect()
}

struct Server {
    child: Child,
    socket: PathBuf,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis(dir: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let socket = dir.join("redis.sock");
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--unixsocket")
        .arg(&socket)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server {
        child,
        socket,
        port,
    }
}

fn cli(s: &Server, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-s")
        .arg(&s.socket)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Commands clients sent since the last reset (what the store's scripts
/// run inside them is not counted).
fn commands(s: &Server) -> u64 {
    let stats = cli(s, &["INFO", "commandstats"]);
    cli(s, &["CONFIG", "RESETSTAT"]);
    stats
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            if matches!(name, "time" | "type" | "get" | "set" | "rename")
                || name.starts_with("info")
                || name.starts_with("config")
            {
                return None;
            }
            rest.split(',')
                .filter(|kv| {
                    kv.starts_with("calls=")
                        || kv.starts_with("rejected_calls=")
                        || kv.starts_with("failed_calls=")
                })
                .map(|kv| kv.split_once('=')?.1.parse::<u64>().ok())
                .sum::<Option<u64>>()
        })
        .sum()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut bin_dir = PathBuf::from("target/release");
    let mut rounds = 300;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--build" => {
                if args.next().as_deref() == Some("static") {
                    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
                    bin_dir = PathBuf::from(format!("target/{triple}/release"));
                }
            }
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()).expect("N"),
            "--quick" => rounds = 40,
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    let cbreak = bin_dir.join("cbreak").to_string_lossy().into_owned();
    assert!(Path::new(&cbreak).exists(), "missing {cbreak}: build first");
    let tmp = tempfile::tempdir().unwrap();
    let server = start_redis(tmp.path());
    let tcp = format!("redis://127.0.0.1:{}", server.port);
    let unix = format!("unix://{}", server.socket.display());
    let env = [(
        "CBREAK_STATE_DIR",
        tmp.path().join("state").to_string_lossy().into_owned(),
    )];
    println!(
        "cbreak store benchmark: {rounds} rounds, {}",
        bin_dir.display()
    );
    let run = |store: Option<&str>, name: &str| {
        let mut w = vec![cbreak.clone()];
        if let Some(url) = store {
            w.extend(words(&["--store", url]));
        }
        w.extend(words(&[
            "run",
            "--name",
            name,
            "--quiet",
            "--",
            "/bin/true",
        ]));
        w
    };
    for store in [None, Some(tcp.as_str()), Some(unix.as_str())] {
        let mut w = vec![cbreak.clone()];
        if let Some(url) = store {
            w.extend(words(&["--store", url]));
        }
        w.extend(words(&["trip", "--create", "tripped"]));
        time(&w, &env);
    }
    let ping = words(&["redis-cli", "-p", &server.port.to_string(), "PING"]);
    compare(
        "closed: tcp store / local store",
        &run(Some(&tcp), "b"),
        &run(None, "b"),
        &env,
        rounds,
    );
    compare(
        "closed: unix store / local store",
        &run(Some(&unix), "b"),
        &run(None, "b"),
        &env,
        rounds,
    );
    compare(
        "closed: tcp store / redis-cli PING",
        &run(Some(&tcp), "b"),
        &ping,
        &env,
        rounds,
    );
    compare(
        "open: tcp store / local store",
        &run(Some(&tcp), "tripped"),
        &run(None, "tripped"),
        &env,
        rounds,
    );
    compare(
        "open: unix store / local store",
        &run(Some(&unix), "tripped"),
        &run(None, "tripped"),
        &env,
        rounds,
    );

    // Round trips per run, counted by the server.
    let n = 50u64;
    for (what, name) in [("closed run", "rt"), ("skip (open)", "tripped")] {
        time(&run(Some(&tcp), name), &env);
        commands(&server);
        for _ in 0..n {
            time(&run(Some(&tcp), name), &env);
        }
        println!(
            "{:<44} {:.2} round trips",
            format!("round trips per {what}"),
            commands(&server) as f64 / n as f64
        );
    }
    let mut probes = 0;
    for _ in 0..n {
        let mut w = vec![cbreak.clone()];
        w.extend(words(&[
            "--store", &tcp, "trip", "--create", "probe", "--for", "1ms",
        ]));
        time(&w, &env);
        commands(&server);
        std::thread::sleep(Duration::from_millis(3));
        time(&run(Some(&tcp), "probe"), &env);
        probes += commands(&server);
    }
    println!(
        "{:<44} {:.2} round trips",
        "round trips per probe",
        probes as f64 / n as f64
    );

    // 64 processes on one breaker at once.
    let per = if rounds < 100 { 5 } else { 20 };
    for (what, store) in [
        ("local", None),
        ("tcp", Some(tcp.as_str())),
        ("unix", Some(unix.as_str())),
    ] {
        let argv = run(store, "crowd");
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..64 {
                s.spawn(|| {
                    for _ in 0..per {
                        time(&argv, &env);
                    }
                });
            }
        });
        let rate = (64 * per) as f64 / start.elapsed().as_secs_f64();
        println!(
            "{:<44} {:>7.0} runs/s",
            format!("64 concurrent processes, {what} store"),
            rate
        );
    }
    let mut w = vec![cbreak.clone(), "--store".into(), tcp.clone()];
    w.extend(words(&["status", "--json", "crowd"]));
    let out = Command::new(&w[0]).args(&w[1..]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let calls = text
        .lines()
        .find(|l| l.trim_start().starts_with("\"calls\""))
        .unwrap_or("");
    println!(
        "{:<44} {}",
        "calls recorded on the tcp breaker",
        calls.trim()
    );
}
