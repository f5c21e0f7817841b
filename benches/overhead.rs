//! What cbreak costs a command, against the floors it cannot beat and the
//! wrappers people already use. Run with `cargo bench --bench overhead`
//! after building the release binaries (see BENCHMARKS.md); it builds
//! nothing itself.
//!
//! Every comparison alternates its two commands for a fixed number of rounds
//! after a warm-up, swapping which goes first each round (A B, B A, A B,
//! ...), so that a noisy neighbour and any first-or-second bias hurt both
//! sides alike, and reports the median and p90 wall time of each side and
//! the median of the pairwise ratios A/B with their interquartile range.
//!
//! Every measured command runs in a small fixed environment, the one a
//! user's shell or cron gives it: `PATH`, `HOME` and `CBREAK_STATE_DIR`, and
//! nothing else. `cargo bench` itself sets `LD_LIBRARY_PATH` to four extra
//! directories, which slows every dynamically linked program (`/bin/true`,
//! `flock`, the dynamic cbreak) and not a static one; before measuring, the
//! harness runs `env` the way it runs every command and stops if anything
//! but those three variables reaches it. For `--build static` it checks
//! that cbreak and both floors really are static (no ELF interpreter).
//!
//! Options: `--build dynamic|static` (which binaries: `target/release` or
//! `target/<triple>/release` from `cargo static`), `--rounds N`,
//! `--quick` (fewer rounds and breakers, for a smoke run), `--json FILE`,
//! `--drop-caches` (root only: empty the page cache first, so that every
//! binary starts as it does from disk; how a binary came into the page
//! cache moves its start-up by up to 20 %, see BENCHMARKS.md),
//! `--against OTHER` (compare this build's cbreak with another cbreak
//! binary, a variant being judged: the skip and the wrap, then stop).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Options {
    bin_dir: PathBuf,
    build: String,
    rounds: usize,
    quick: bool,
    drop_caches: bool,
    json: Option<PathBuf>,
    against: Option<String>,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        bin_dir: PathBuf::from("target/release"),
        build: "dynamic".into(),
        rounds: 400,
        quick: false,
        drop_caches: false,
        json: None,
        against: None,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--build" => {
                o.build = args.next().expect("--build dynamic|static");
                if o.build == "static" {
                    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
                    o.bin_dir = PathBuf::from(format!("target/{triple}/release"));
                }
            }
            "--rounds" => {
                o.rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--rounds N")
            }
            "--drop-caches" => o.drop_caches = true,
            "--quick" => {
                o.quick = true;
                o.rounds = 60;
            }
            "--json" => o.json = args.next().map(PathBuf::from),
            "--against" => o.against = Some(args.next().expect("--against OTHER")),
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// The environment of every measured command: what a login shell or cron
/// gives a program, and the state directory. Nothing from cargo.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// A command for `argv` in the fixed environment, with the state directory
/// (and any other variables) of `env`.
fn plain_command(argv: &[String], env: &[(&str, &Path)]) -> Command {
    let mut cmd = Command::new(resolve(&argv[0]));
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", HOME.get().expect("HOME set in main"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// `program` as the fixed `PATH` finds it (not the harness's own `PATH`).
fn resolve(program: &str) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    PATH.split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is not on {PATH}"))
}

/// Stops the benchmark if a measured command would see anything but the
/// fixed environment: `LD_LIBRARY_PATH` (which `cargo bench` sets) slows
/// every dynamically linked program and would make a static cbreak look
/// faster than it is to a user.
fn check_environment(env: &[(&str, &Path)]) {
    let out = plain_command(&words(&["env"]), env)
        .output()
        .expect("run env(1)");
    assert!(out.status.success(), "env(1) failed");
    let seen = String::from_utf8_lossy(&out.stdout);
    let mut names: Vec<&str> = seen.lines().filter_map(|l| l.split('=').next()).collect();
    names.sort_unstable();
    let leaked: Vec<&&str> = names
        .iter()
        .filter(|n| n.starts_with("LD_") || n.starts_with("CARGO") || n.starts_with("RUST"))
        .collect();
    assert!(
        leaked.is_empty(),
        "measured commands would see {leaked:?}: the benchmark must run them in a plain environment"
    );
    let mut expected: Vec<&str> = vec!["HOME", "PATH"];
    expected.extend(env.iter().map(|(k, _)| *k));
    expected.sort_unstable();
    assert_eq!(names, expected, "environment of measured commands");
}

/// Writes dirty pages out and empties the page cache, so that every binary
/// measured is read from disk by its first run (the warm-up), as after a
/// reboot, instead of being in whatever state building or copying it left.
fn drop_caches() {
    let synced = Command::new("sync").status().is_ok_and(|s| s.success());
    assert!(synced, "sync(1) failed");
    if let Err(e) = std::fs::write("/proc/sys/vm/drop_caches", "3\n") {
        eprintln!(
            "--drop-caches: cannot write /proc/sys/vm/drop_caches ({e}); run as root, or leave it out"
        );
        std::process::exit(2);
    }
}

/// Whether the ELF file at `path` asks for a program interpreter (the
/// dynamic loader), that is, whether it is dynamically linked.
fn has_interpreter(path: &str) -> bool {
    let elf = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        elf.starts_with(b"\x7fELF") && elf[4] == 2,
        "{path}: not a 64-bit ELF file"
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

/// One run: wall time and peak RSS (KiB), from wait4(2).
// The child is reaped by wait4 itself (for its rusage), not by std.
#[allow(clippy::zombie_processes)]
fn measure(argv: &[String], env: &[(&str, &Path)]) -> (Duration, i64) {
    let mut cmd = plain_command(argv, env);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own unreaped child, with valid pointers; the
    // Child is never waited on by std afterwards (dropping it does not wait).
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert_eq!(pid, child.id() as i32);
    (elapsed, usage.ru_maxrss)
}

#[derive(Default)]
struct Side {
    times: Vec<f64>,
    rss: Vec<i64>,
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

struct Comparison {
    name: String,
    a: String,
    b: String,
    a_median_ms: f64,
    a_p90_ms: f64,
    b_median_ms: f64,
    b_p90_ms: f64,
    ratio: f64,
    ratio_p25: f64,
    ratio_p75: f64,
    a_rss_kib: i64,
    b_rss_kib: i64,
}

fn compare(
    name: &str,
    a: &[String],
    b: &[String],
    env: &[(&str, &Path)],
    rounds: usize,
) -> Comparison {
    let warm = (rounds / 10).max(5);
    let (mut sa, mut sb) = (Side::default(), Side::default());
    for i in 0..warm + rounds {
        let ((ta, ra), (tb, rb)) = if i % 2 == 0 {
            let first = measure(a, env);
            (first, measure(b, env))
        } else {
            let first = measure(b, env);
            (measure(a, env), first)
        };
        if i >= warm {
            sa.times.push(ta.as_secs_f64() * 1e3);
            sb.times.push(tb.as_secs_f64() * 1e3);
            sa.rss.push(ra);
            sb.rss.push(rb);
        }
    }
    let ratios: Vec<f64> = sa.times.iter().zip(&sb.times).map(|(x, y)| x / y).collect();
    let median_rss = |v: &mut Vec<i64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let c = Comparison {
        name: name.to_string(),
        a: a.join(" "),
        b: b.join(" "),
        a_median_ms: percentile(&sa.times, 0.5),
        a_p90_ms: percentile(&sa.times, 0.9),
        b_median_ms: percentile(&sb.times, 0.5),
        b_p90_ms: percentile(&sb.times, 0.9),
        ratio: percentile(&ratios, 0.5),
        ratio_p25: percentile(&ratios, 0.25),
        ratio_p75: percentile(&ratios, 0.75),
        a_rss_kib: median_rss(&mut sa.rss),
        b_rss_kib: median_rss(&mut sb.rss),
    };
    println!(
        "{:<34} {:>7.3} ms (p90 {:>6.3})  vs {:>7.3} ms (p90 {:>6.3})  ratio {:>5.3} (p25-p75 {:.3}-{:.3})",
        c.name,
        c.a_median_ms,
        c.a_p90_ms,
        c.b_median_ms,
        c.b_p90_ms,
        c.ratio,
        c.ratio_p25,
        c.ratio_p75
    );
    c
}

fn words(s: &[&str]) -> Vec<String> {
    s.iter().map(|w| w.to_string()).collect()
}

/// A state directory holding `n` breakers (copies of one record).
fn populate(dir: &Path, n: usize, cbreak: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let seed = dir.join("seed-0");
    let ok = plain_command(
        &words(&[cbreak, "run", "-n", "seed-0", "--", "true"]),
        &[("CBREAK_STATE_DIR", dir)],
    )
    .status()
    .unwrap();
    assert!(ok.success());
    for i in 1..n {
        std::fs::copy(&seed, dir.join(format!("seed-{i}"))).unwrap();
    }
}

fn time_once(argv: &[&str], dir: &Path) -> f64 {
    let start = Instant::now();
    let out = plain_command(&words(argv), &[("CBREAK_STATE_DIR", dir)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{argv:?}");
    start.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let o = options();
    let bin = |name: &str| o.bin_dir.join(name).to_string_lossy().into_owned();
    let cbreak = bin("cbreak");
    let floor = bin("examples/spawn_floor");
    let noop = bin("examples/noop");
    for p in [&cbreak, &floor, &noop] {
        if !Path::new(p).exists() {
            eprintln!(
                "missing {p}: build first (`cargo build --release --examples`, or `cargo static` for --build static)"
            );
            std::process::exit(2);
        }
        let dynamic = has_interpreter(p);
        if dynamic == (o.build == "static") {
            eprintln!(
                "{p} is {} linked, but this is the {} build: rebuild it (`cargo static --examples`)",
                if dynamic { "dynamically" } else { "statically" },
                o.build
            );
            std::process::exit(2);
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let lock = tmp.path().join("lock");
    std::fs::write(&lock, b"").unwrap();
    let lock_s = lock.to_string_lossy().into_owned();
    let env: &[(&str, &Path)] = &[("CBREAK_STATE_DIR", &state)];
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    HOME.set(home).unwrap();
    check_environment(env);
    if o.drop_caches {
        drop_caches();
    }
    let trip = plain_command(&words(&[&cbreak, "trip", "--create", "tripped"]), env)
        .status()
        .unwrap();
    assert!(trip.success());
    println!(
        "cbreak overhead benchmark: {} build, {} rounds, {}",
        o.build,
        o.rounds,
        tmp.path().display()
    );
    if let Some(other) = &o.against {
        against(&cbreak, other, env, o.rounds);
        return;
    }
    let mut results = Vec::new();
    let run_b = words(&[&cbreak, "run", "--name", "b", "--", "/bin/true"]);
    results.push(compare(
        "closed: cbreak / spawn_floor",
        &run_b,
        &words(&[&floor, "/bin/true"]),
        env,
        o.rounds,
    ));
    results.push(compare(
        "closed: cbreak / flock",
        &run_b,
        &words(&["flock", &lock_s, "/bin/true"]),
        env,
        o.rounds,
    ));
    results.push(compare(
        "closed: cbreak / timeout",
        &run_b,
        &words(&["timeout", "10", "/bin/true"]),
        env,
        o.rounds,
    ));
    results.push(compare(
        "closed: cbreak / /bin/true",
        &run_b,
        &words(&["/bin/true"]),
        env,
        o.rounds,
    ));
    let run_open = words(&[
        &cbreak,
        "run",
        "--name",
        "tripped",
        "--quiet",
        "--",
        "/bin/true",
    ]);
    results.push(compare(
        "open: cbreak / noop",
        &run_open,
        &words(&[&noop]),
        env,
        o.rounds,
    ));
    results.push(compare(
        "open: cbreak / /bin/true",
        &run_open,
        &words(&["/bin/true"]),
        env,
        o.rounds,
    ));
    results.push(compare(
        "floor: noop / /bin/true",
        &words(&[&noop]),
        &words(&["/bin/true"]),
        env,
        o.rounds,
    ));
    results.push(compare(
        "floor: spawn_floor / flock",
        &words(&[&floor, "/bin/true"]),
        &words(&["flock", &lock_s, "/bin/true"]),
        env,
        o.rounds,
    ));

    // Scale: run's cost must not depend on how many other breakers exist.
    let crowd = tmp.path().join("crowd");
    let many = if o.quick { 1_000 } else { 10_000 };
    populate(&crowd, many, &cbreak);
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let crowd_env: &[(&str, &Path)] = &[("CBREAK_STATE_DIR", &crowd)];
    let empty_env: &[(&str, &Path)] = &[("CBREAK_STATE_DIR", &empty)];
    let (mut in_crowd, mut alone) = (Vec::new(), Vec::new());
    for i in 0..o.rounds + o.rounds / 10 {
        let (a, b) = if i % 2 == 0 {
            let a = measure(&run_b, crowd_env).0;
            (a, measure(&run_b, empty_env).0)
        } else {
            let b = measure(&run_b, empty_env).0;
            (measure(&run_b, crowd_env).0, b)
        };
        let (a, b) = (a.as_secs_f64() * 1e3, b.as_secs_f64() * 1e3);
        if i >= o.rounds / 10 {
            in_crowd.push(a);
            alone.push(b);
        }
    }
    let ratios: Vec<f64> = in_crowd.iter().zip(&alone).map(|(a, b)| a / b).collect();
    let scale_ratio = percentile(&ratios, 0.5);
    println!(
        "{:<34} {:>7.3} ms  vs {:>7.3} ms  ratio {:>5.3}",
        format!("scale: run, {many} breakers / none"),
        percentile(&in_crowd, 0.5),
        percentile(&alone, 0.5),
        scale_ratio
    );
    let mut listing = Vec::new();
    for n in [1usize, 100, 1_000, 10_000]
        .into_iter()
        .filter(|&n| n <= many)
    {
        let dir = tmp.path().join(format!("list-{n}"));
        populate(&dir, n, &cbreak);
        let reps = if n >= 1_000 { 5 } else { 20 };
        for (what, argv) in [
            ("status --json", vec![cbreak.as_str(), "status", "--json"]),
            ("metrics", vec![cbreak.as_str(), "metrics"]),
        ] {
            let times: Vec<f64> = (0..reps).map(|_| time_once(&argv, &dir)).collect();
            let median = percentile(&times, 0.5);
            println!(
                "{:<34} {:>9.3} ms total, {:>7.1} µs per breaker",
                format!("{what}, {n} breakers"),
                median,
                median * 1e3 / n as f64
            );
            listing.push((what, n, median));
        }
    }

    // Contention: 8 loops on one breaker against 8 loops of the floor.
    let per_loop = if o.quick { 20 } else { 100 };
    let loops = |argv: &[String]| {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..per_loop {
                        measure(argv, env);
                    }
                });
            }
        });
        (8 * per_loop) as f64 / start.elapsed().as_secs_f64()
    };
    let contention_runs = words(&[&cbreak, "run", "--name", "contended", "--", "/bin/true"]);
    let floor_runs = words(&[&floor, "/bin/true"]);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        ours.push(loops(&contention_runs));
        theirs.push(loops(&floor_runs));
    }
    let (ours, theirs) = (percentile(&ours, 0.5), percentile(&theirs, 0.5));
    println!(
        "{:<34} {:>7.0} runs/s  vs {:>7.0} runs/s  ratio {:>5.3}",
        "contention: 8 loops cbreak / floor",
        ours,
        theirs,
        ours / theirs
    );
    let rss = &results[0];
    println!(
        "{:<34} {:>7} KiB  vs {:>7} KiB  diff {:>5} KiB",
        "peak RSS: cbreak run / spawn_floor",
        rss.a_rss_kib,
        rss.b_rss_kib,
        rss.a_rss_kib - rss.b_rss_kib
    );

    if let Some(path) = o.json {
        let doc = serde_json::json!({
            "build": o.build,
            "rounds": o.rounds,
            "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            "comparisons": results.iter().map(|c| serde_json::json!({
                "name": c.name, "a": c.a, "b": c.b,
                "a_median_ms": c.a_median_ms, "a_p90_ms": c.a_p90_ms,
                "b_median_ms": c.b_median_ms, "b_p90_ms": c.b_p90_ms,
                "median_ratio": c.ratio, "ratio_p25": c.ratio_p25, "ratio_p75": c.ratio_p75, "a_peak_rss_kib": c.a_rss_kib, "b_peak_rss_kib": c.b_rss_kib,
            })).collect::<Vec<_>>(),
            "scale": {"breakers": many, "median_ratio": scale_ratio},
            "listing": listing.iter().map(|(what, n, ms)| serde_json::json!({"command": what, "breakers": n, "median_ms": ms})).collect::<Vec<_>>(),
            "contention": {"cbreak_runs_per_s": ours, "floor_runs_per_s": theirs, "ratio": ours / theirs},
            "peak_rss_kib": {"cbreak": rss.a_rss_kib, "spawn_floor": rss.b_rss_kib},
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        println!("wrote {}", path.display());
    }
}

/// `--against OTHER`: this build's cbreak against another cbreak binary, on
/// a skip (the breaker open) and a wrap (closed), in the same state
/// directory; a ratio above 1 means this build is slower.
fn against(cbreak: &str, other: &str, env: &[(&str, &Path)], rounds: usize) {
    for (what, name) in [("open", "tripped"), ("closed", "b")] {
        let argv = |bin: &str| words(&[bin, "run", "--name", name, "--quiet", "--", "/bin/true"]);
        compare(
            &format!("{what}: cbreak / {other}"),
            &argv(cbreak),
            &argv(other),
            env,
            rounds,
        );
    }
}
