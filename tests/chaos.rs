//! Chaos: 16 workers hammer a few breakers with random runs, trips, resets,
//! status reads and recorded outcomes while a killer SIGKILLs random cbreak
//! processes — probes and processes in the middle of a record update
//! included — and a truncator keeps cutting one record to nothing behind
//! the lock's back, as `cp` over it would. Afterwards every record must be
//! whole and consistent, no probe slot may stay stuck, nothing may be left
//! lying around, and no cbreak may have died of anything but our SIGKILL.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::util::Env;

const NAMES: [&str; 5] = ["alpha", "beta", "gamma", "delta", "epsilon"];
/// The breaker whose record the truncator keeps cutting.
const TRUNCATED: &str = "epsilon";
const WORKERS: u64 = 16;
const DURATION: Duration = Duration::from_secs(20);

/// xorshift64*: reproducible from the seed printed at the start.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn operation(rng: &mut Rng) -> Vec<String> {
    let name = NAMES[rng.below(NAMES.len() as u64) as usize].to_string();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    match rng.below(20) {
        0 => s(&["trip", "--create", &name, "--for", "300ms"]),
        1 => s(&["trip", "--create", &name]),
        2 => s(&["reset", &name]),
        3 => s(&["status", &name, "--json"]),
        4 => s(&[
            "record",
            &name,
            ["success", "failure", "ignored"][rng.below(3) as usize],
            "-q",
        ]),
        5 => s(&["status"]),
        _ => {
            let code = [0, 0, 0, 1, 2, 7][rng.below(6) as usize];
            let sleep = if rng.below(4) == 0 { "sleep 0.2; " } else { "" };
            let mut v = s(&[
                "run",
                "-n",
                &name,
                "-q",
                "-t",
                "3",
                "-r",
                "200ms",
                "--ignore-codes",
                "7",
            ]);
            if rng.below(2) == 0 {
                v.extend(s(&[
                    "--failure-rate",
                    "50%",
                    "--window",
                    "10",
                    "--min-calls",
                    "4",
                ]));
            }
            v.extend(s(&["--", "sh", "-c", &format!("{sleep}exit {code}")]));
            v
        }
    }
}

#[test]
fn sigkill_storm_leaves_every_record_whole() {
    let env = Env::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("chaos seed {seed:#x}");
    // The children, by pid. Workers reap them and the killer kills them
    // under this one lock, so the killer never signals a reaped pid (which
    // the system may already have given to another process).
    let live: Mutex<HashMap<u32, std::process::Child>> = Mutex::new(HashMap::new());
    let stop = AtomicBool::new(false);
    let (ops, kills) = (AtomicU64::new(0), AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..WORKERS {
            let (env, live, stop, ops) = (&env, &live, &stop, &ops);
            scope.spawn(move || {
                let mut rng = Rng(seed ^ (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                while !stop.load(Ordering::Relaxed) {
                    let args = operation(&mut rng);
                    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                    let child = env
                        .command(&argv)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap();
                    let pid = child.id();
                    live.lock().unwrap().insert(pid, child);
                    let status = loop {
                        {
                            let mut live = live.lock().unwrap();
                            let child = live.get_mut(&pid).unwrap();
                            if let Some(status) = child.try_wait().unwrap() {
                                live.remove(&pid);
                                break status;
                            }
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    };
                    // Whatever happened, cbreak itself never crashes: it
                    // exits with a status or dies by our SIGKILL.
                    assert!(
                        status.code().is_some() || status.signal_is_kill(),
                        "{argv:?}: {status:?}"
                    );
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let (env_ref, stop_ref) = (&env, &stop);
        scope.spawn(move || {
            let path = env_ref.state().join(TRUNCATED);
            while !stop_ref.load(Ordering::Relaxed) {
                if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                    let _ = f.set_len(0);
                    let _ = f.set_len(8192);
                }
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        let (live, stop, kills) = (&live, &stop, &kills);
        scope.spawn(move || {
            let mut rng = Rng(seed.rotate_left(17) | 1);
            while start.elapsed() < DURATION {
                std::thread::sleep(Duration::from_millis(5 + rng.below(25)));
                let mut live = live.lock().unwrap();
                let pids: Vec<u32> = live.keys().copied().collect();
                if !pids.is_empty() {
                    let pid = pids[rng.below(pids.len() as u64) as usize];
                    // Not reaped yet (that needs this lock): SIGKILL lands on
                    // our cbreak, or on its zombie.
                    live.get_mut(&pid).unwrap().kill().unwrap();
                    kills.fetch_add(1, Ordering::Relaxed);
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    println!(
        "chaos: {} operations, {} SIGKILLs in {:?}",
        ops.load(Ordering::Relaxed),
        kills.load(Ordering::Relaxed),
        start.elapsed()
    );
    assert!(
        kills.load(Ordering::Relaxed) > 50,
        "the storm must actually kill"
    );

    // Nothing but records in the directory: no temporary files, and no
    // corrupt-aside files (no record was ever really corrupt) but of the
    // one that was cut behind the lock's back.
    let entries: Vec<String> = std::fs::read_dir(env.state())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for e in &entries {
        assert!(
            NAMES.contains(&e.as_str()) || e.starts_with(&format!("{TRUNCATED}~corrupt-")),
            "unexpected file {e} in {entries:?}"
        );
    }
    for name in NAMES {
        let s = env.status(name);
        let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
        assert_eq!(
            n("calls"),
            n("successes") + n("failures") + n("ignored") + n("cancelled"),
            "{s}"
        );
        for k in ["calls", "rejected", "consecutive_failures"] {
            assert!(n(k) < 1 << 40, "{k} wrapped: {s}");
        }
        // The final run behaves as the state says. Every cbreak is dead now,
        // so a held probe slot belongs to a dead owner and is taken over.
        let state = s["state"].as_str().unwrap().to_string();
        let expected = match state.as_str() {
            "closed" | "half_open" => 0,
            "forced_open" => 75,
            _ => -1, // open: 75 before the probe is due, 0 after
        };
        let out = env.run(&["run", "-n", name, "-q", "--", "true"]);
        match expected {
            -1 => assert!(out.code == 75 || out.code == 0, "{name} open: {}", out.code),
            code => assert_eq!(out.code, code, "{name} was {state}: {}", out.stderr),
        }
        if state == "half_open" {
            let after = env.status(name);
            assert!(
                after["state"] == "closed" || after["probe_successes"].as_u64() > Some(0),
                "{after}"
            );
        }
    }
}

trait KillStatus {
    fn signal_is_kill(&self) -> bool;
}

impl KillStatus for std::process::ExitStatus {
    fn signal_is_kill(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.signal() == Some(9)
    }
}
