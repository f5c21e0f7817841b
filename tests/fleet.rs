//! The Redis store (`cbreak::fleet`) against a real `redis-server`: the
//! optimistic read-modify-write, keys and values, the server's clock, and
//! every way a server can be wrong. No mocks.

use std::time::{Duration, Instant};

use cbreak::breaker::{Admission, BreakerState, Call, Host, Millis, Outcome, Owner, Policy, State};
use cbreak::store::fleet::server::Problem;
use cbreak::store::fleet::{Fleet, FleetConfig, FleetError, StoreUrl, encode_value};
use cbreak::store::{Event, Location, Store, StoreError};

use crate::redis_server::{Redis, free_port};

/// A process on some host, judged by the store's clock.
struct On<'a> {
    fleet: &'a Fleet,
    owner: Owner,
    alive: bool,
}

impl<'a> On<'a> {
    fn host(fleet: &'a Fleet, host: u64, pid: u32) -> On<'a> {
        On {
            fleet,
            owner: Owner {
                pid,
                start_time: 1,
                boot_id: host,
                kernel_lock: false,
            },
            alive: true,
        }
    }
}

impl Host for On<'_> {
    fn now(&self) -> Millis {
        self.fleet.now()
    }
    fn me(&mut self) -> Owner {
        self.owner
    }
    fn is_alive(&mut self, _: &Owner) -> bool {
        self.alive
    }
    fn random(&mut self) -> u64 {
        7
    }
}

/// One update of breaker `name` through the engine's loop, on a slot
/// opened for it.
fn update_once<T>(
    store: &Fleet,
    name: &str,
    fresh: impl Fn() -> BreakerState,
    f: impl FnMut(&mut BreakerState) -> T,
) -> Result<T, StoreError> {
    let mut slot = store.open(name);
    cbreak::engine::update(store, &mut slot, fresh, f)
}

fn fleet(url: &str) -> Fleet {
    Fleet::new(FleetConfig::new(StoreUrl::parse(url).expect("a valid URL")))
}

fn policy(threshold: u32, recovery: Millis) -> Policy {
    Policy {
        threshold,
        recovery,
        ..Policy::default()
    }
}

fn fresh(f: &Fleet, p: Policy) -> impl Fn() -> BreakerState + '_ {
    move || BreakerState::new(f.now(), std::process::id(), p)
}

/// One admitted-and-finished call through the store; whether it ran.
fn call(f: &Fleet, name: &str, p: Policy, outcome: Outcome) -> bool {
    let mut h = f.open(name);
    let admitted = cbreak::engine::update(&f, &mut h, fresh(f, p), |s| {
        s.admit(&p, &mut On::host(f, 1, std::process::id())).0
    })
    .expect("admission");
    let Admission::Run(ticket) = admitted else {
        return false;
    };
    let c = Call {
        outcome,
        slow: false,
        timed_out: false,
    };
    cbreak::engine::update(&f, &mut h, fresh(f, p), |s| {
        s.record(ticket, c, &mut On::host(f, 1, std::process::id()))
    })
    .expect("outcome");
    true
}

#[test]
fn fleet_store_trips_rejects_probes_and_closes_over_tcp_and_unix() {
    let Some(redis) = Redis::start("fleet_store_trips_rejects_probes_and_closes_over_tcp_and_unix")
    else {
        return;
    };
    for url in [redis.url(), redis.unix_url()] {
        let f = fleet(&url);
        let name = format!("api-{}", url.len());
        let p = policy(2, 300);
        assert!(call(&f, &name, p, Outcome::Success));
        assert!(call(&f, &name, p, Outcome::Failure));
        assert_eq!(f.read(&name).unwrap().state, State::Closed);
        assert!(call(&f, &name, p, Outcome::Failure));
        let s = f.read(&name).unwrap();
        assert_eq!(s.state, State::Open, "{url}: 2 failures open it");
        assert!(!call(&f, &name, p, Outcome::Success), "open: skipped");
        assert_eq!(f.read(&name).unwrap().counters.rejected, 1);
        // Another process of the fleet sees the same breaker.
        let other = fleet(&url);
        assert_eq!(other.read(&name).unwrap().state, State::Open);
        std::thread::sleep(Duration::from_millis(400));
        assert!(call(&other, &name, p, Outcome::Success), "the probe runs");
        let s = f.read(&name).unwrap();
        assert_eq!(s.state, State::Closed, "{url}: the probe closed it");
        assert_eq!(
            (s.counters.calls, s.counters.failures, s.counters.rejected),
            (4, 2, 1)
        );
        let kinds: Vec<_> = s.history.oldest_first().iter().map(|t| t.to).collect();
        assert_eq!(kinds, [State::Open, State::HalfOpen, State::Closed]);
    }
}

#[test]
fn concurrent_updates_lose_nothing_and_only_one_probe_is_granted() {
    let Some(redis) = Redis::start("concurrent_updates_lose_nothing_and_only_one_probe_is_granted")
    else {
        return;
    };
    let url = redis.url();
    let p = policy(0, 60_000);
    // 8 processes' worth of connections × 25 outcomes each, all at once.
    std::thread::scope(|scope| {
        for t in 0..8u32 {
            let url = url.clone();
            scope.spawn(move || {
                let f = fleet(&url);
                for i in 0..25u32 {
                    let outcome = if (t + i) % 2 == 0 {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    };
                    assert!(call(&f, "shared", p, outcome));
                }
            });
        }
    });
    let s = fleet(&url).read("shared").unwrap();
    assert_eq!(s.counters.calls, 200, "no outcome lost to a race");
    assert_eq!(s.counters.successes + s.counters.failures, 200);

    // Open, recovery elapsed: of 16 callers on 4 hosts, exactly one probes.
    let f = fleet(&url);
    update_once(&f, "probe", fresh(&f, p), |s| s.trip(Some(1), f.now())).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let granted: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16u32)
            .map(|i| {
                let url = url.clone();
                scope.spawn(move || {
                    let f = fleet(&url);
                    let admitted = update_once(&f, "probe", fresh(&f, p), |s| {
                        s.admit(&p, &mut On::host(&f, u64::from(i % 4) + 1, 1000 + i))
                            .0
                    })
                    .unwrap();
                    matches!(admitted, Admission::Run(t) if t.probe)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(granted.iter().filter(|g| **g).count(), 1, "{granted:?}");
    let s = f.read("probe").unwrap();
    assert_eq!(s.state, State::HalfOpen);
    assert_eq!(s.counters.rejected, 15);
}

/// Of a probe owner on another host nothing can be known: not what this
/// host's `host::System` (the real one, not a fake told what to answer)
/// says of a pid, only the lease. The slot is held while the lease runs
/// and free once it ends, on the server's clock.
#[test]
fn a_probe_owner_on_another_host_keeps_the_slot_until_its_lease_ends() {
    let Some(redis) =
        Redis::start("a_probe_owner_on_another_host_keeps_the_slot_until_its_lease_ends")
    else {
        return;
    };
    let f = fleet(&redis.url());
    // A lease of timeout + kill-after + 10 s grace.
    let p = Policy {
        timeout: Some(1),
        kill_after: 1,
        ..policy(1, 1)
    };
    update_once(&f, "b", fresh(&f, p), |s| s.trip(Some(1), f.now())).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    let took = update_once(&f, "b", fresh(&f, p), |s| {
        s.admit(&p, &mut On::host(&f, 2, 4242)).0
    })
    .unwrap();
    assert!(matches!(took, Admission::Run(t) if t.probe));
    let lease = f.read("b").unwrap().probe.unwrap().lease_until;
    assert!(
        lease >= f.now() + 9_000,
        "the lease runs on the server's clock"
    );
    // This host judges the holder (pid 4242 on host 2, gone or not) as
    // `cbreak run` would, at `at` on the server's clock.
    let admit_at = |at: Millis| {
        update_once(&f, "b", fresh(&f, p), |s| {
            let mut here = cbreak::host::System::new();
            here.set_clock(at);
            s.admit(&p, &mut here).0
        })
        .unwrap()
    };
    for at in [f.now(), lease - 1] {
        assert!(
            matches!(admit_at(at), Admission::Reject(_)),
            "held while the lease runs ({} ms left)",
            lease - at
        );
    }
    assert!(
        matches!(admit_at(lease), Admission::Run(t) if t.probe),
        "free once the lease has ended"
    );
    let taker = f.read("b").unwrap().probe.unwrap().owner;
    assert_eq!(taker.pid, std::process::id(), "this host took the slot");
}

#[test]
fn a_foreign_or_damaged_value_is_kept_aside_and_a_newer_one_left_alone() {
    let Some(redis) =
        Redis::start("a_foreign_or_damaged_value_is_kept_aside_and_a_newer_one_left_alone")
    else {
        return;
    };
    let f = fleet(&redis.url());
    let p = policy(3, 1000);
    redis.cli(&["SET", "cbreak:{text}", "hello"]);
    redis.cli(&["HSET", "cbreak:{hash}", "a", "1"]);
    let err = f.read("text").unwrap_err();
    assert!(matches!(err, FleetError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("not a cbreak record"), "{err}");
    assert!(err.is_finding());
    for name in ["text", "hash"] {
        assert!(call(&f, name, p, Outcome::Success));
        let events = f.take_events();
        assert_eq!(events.len(), 1, "{events:?}");
        let Event::SetAside {
            at: Location::Key { key, .. },
            aside: Location::Key { key: aside, .. },
            why,
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(key, &format!("cbreak:{{{name}}}"));
        assert!(
            aside.starts_with(&format!("cbreak:{{{name}}}~corrupt-")),
            "{aside}"
        );
        assert!(why.contains(if name == "text" {
            "not a cbreak record"
        } else {
            "a hash"
        }));
        assert_eq!(f.read(name).unwrap().counters.calls, 1, "a fresh breaker");
    }
    assert_eq!(redis.cli(&["GET", "cbreak:{text}~corrupt-*"]), "");
    let kept = redis.cli(&["--scan", "--pattern", "cbreak:{text}~*"]);
    assert_eq!(redis.cli(&["GET", &kept]), "hello", "the old value is kept");
    assert_eq!(
        f.names().unwrap(),
        ["hash", "text"],
        "aside keys are not breakers"
    );

    // A value from a newer cbreak: never touched.
    let mut v = encode_value(&BreakerState::new(1, 1, p), 5);
    v[8..16].copy_from_slice(&2u64.to_le_bytes());
    let path = redis.dir().join("newer.bin");
    std::fs::write(&path, &v).unwrap();
    let out = std::process::Command::new("redis-cli")
        .arg("-s")
        .arg(redis.socket())
        .args(["-x", "SET", "cbreak:{newer}"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = update_once(&f, "newer", fresh(&f, p), |s| s.reset(1)).unwrap_err();
    assert!(err.to_string().contains("format version 2"), "{err}");
    assert_eq!(
        redis.cli(&["STRLEN", "cbreak:{newer}"]),
        v.len().to_string()
    );
}

#[test]
fn list_scans_one_prefix_forget_deletes_and_idle_breakers_expire() {
    let Some(redis) = Redis::start("list_scans_one_prefix_forget_deletes_and_idle_breakers_expire")
    else {
        return;
    };
    let f = fleet(&redis.url());
    let mut team = FleetConfig::new(StoreUrl::parse(&redis.url()).unwrap());
    team.prefix = "team-b:".into();
    team.idle_expiry = Some(Duration::from_secs(3600));
    let b = Fleet::new(team);
    let p = policy(3, 1000);
    for name in ["zeta", "alpha", "mid"] {
        assert!(call(&f, name, p, Outcome::Success));
    }
    assert!(call(&b, "other", p, Outcome::Success));
    redis.cli(&["SET", "unrelated", "x"]);
    assert_eq!(f.names().unwrap(), ["alpha", "mid", "zeta"]);
    assert_eq!(b.names().unwrap(), ["other"]);
    assert_eq!(
        redis.cli(&["PTTL", "cbreak:{alpha}"]),
        "-1",
        "no expiry unless asked"
    );
    let ttl: i64 = redis.cli(&["PTTL", "team-b:{other}"]).parse().unwrap();
    assert!((3_500_000..=3_600_000).contains(&ttl), "{ttl}");
    f.forget("mid").unwrap();
    assert!(matches!(f.forget("mid"), Err(FleetError::NotFound { .. })));
    assert_eq!(f.names().unwrap(), ["alpha", "zeta"]);
    assert!(matches!(f.read("mid"), Err(FleetError::NotFound { .. })));
    assert!(f.exists("alpha").unwrap() && !f.exists("mid").unwrap());
}

/// The error of a first read against `url`, and how long it took.
fn first_error(url: &str, timeout_ms: u64) -> (FleetError, Duration) {
    let mut c = FleetConfig::new(StoreUrl::parse(url).unwrap());
    c.timeout = Duration::from_millis(timeout_ms);
    let f = Fleet::new(c);
    let t = Instant::now();
    let err = f.read("x").expect_err("the read fails");
    (err, t.elapsed())
}

fn problem(e: &FleetError) -> &Problem {
    match e {
        FleetError::Server { problem, .. } => problem,
        other => panic!("not a server problem: {other}"),
    }
}

/// The server's problem in an update's error.
fn store_problem(e: &StoreError) -> &Problem {
    match e {
        StoreError::Server(e) => problem(e),
        other => panic!("not a server problem: {other}"),
    }
}

#[test]
fn unusable_servers_each_get_one_clear_line_without_the_password() {
    let Some(redis) = Redis::start_with(
        "unusable_servers_each_get_one_clear_line_without_the_password",
        &["--requirepass", "s3cret-pw"],
    ) else {
        return;
    };
    let port = redis.port;
    // Nothing listening.
    let (e, took) = first_error(
        &format!("redis://u:s3cret-pw@127.0.0.1:{}", free_port()),
        300,
    );
    assert!(
        matches!(problem(&e), Problem::Unreachable(w) if w.contains("connection refused")),
        "{e}"
    );
    assert!(took < Duration::from_secs(2));
    // No socket there.
    let (e, _) = first_error("unix:///nonexistent/redis.sock", 300);
    assert!(
        e.to_string()
            .contains("no socket at /nonexistent/redis.sock"),
        "{e}"
    );
    // Wrong password, and none at all.
    let (e, _) = first_error(&format!("redis://:wrong-pw@127.0.0.1:{port}"), 500);
    assert!(matches!(problem(&e), Problem::Auth(_)), "{e}");
    let (e, _) = first_error(&format!("redis://127.0.0.1:{port}"), 500);
    assert!(
        matches!(problem(&e), Problem::Auth(w) if w.contains("gives none")),
        "{e}"
    );
    // A database the server does not have.
    let (e, _) = first_error(&format!("redis://:s3cret-pw@127.0.0.1:{port}/99"), 500);
    assert!(matches!(problem(&e), Problem::WrongDb(_)), "{e}");
    assert!(e.to_string().contains("database 99"), "{e}");
    // The right password works.
    let f = fleet(&format!("redis://:s3cret-pw@127.0.0.1:{port}/1"));
    assert!(call(&f, "ok", policy(1, 1), Outcome::Success));
    assert_eq!(f.location(), format!("redis://:***@127.0.0.1:{port}/1"));
    assert_eq!(
        redis.cli(&[
            "-a",
            "s3cret-pw",
            "--no-auth-warning",
            "-n",
            "1",
            "EXISTS",
            "cbreak:{ok}"
        ]),
        "1"
    );

    // A server that speaks HTTP, and one that says nothing.
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http_port = http.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in http.incoming().flatten() {
            let mut s = s;
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            );
        }
    });
    let (e, _) = first_error(&format!("redis://:s3cret-pw@127.0.0.1:{http_port}"), 500);
    assert!(matches!(problem(&e), Problem::NotRedis(_)), "{e}");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let (e, took) = first_error(&format!("redis://127.0.0.1:{silent_port}"), 300);
    assert!(e.to_string().contains("no answer within 300ms"), "{e}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    drop(silent);

    for (url, secret) in [
        (
            format!("redis://u:s3cret-pw@127.0.0.1:{}", free_port()),
            "s3cret-pw",
        ),
        (format!("redis://:wrong-pw@127.0.0.1:{port}"), "wrong-pw"),
        (
            format!("redis://:s3cret-pw@127.0.0.1:{port}/99"),
            "s3cret-pw",
        ),
    ] {
        let (e, _) = first_error(&url, 300);
        let line = e.to_string();
        assert!(!line.contains(secret) && !line.contains('\n'), "{line}");
        assert!(line.contains(":***@127.0.0.1"), "{line}");
    }
}

#[test]
fn an_acl_user_with_a_password_and_a_read_only_replica() {
    let Some(primary) = Redis::start_with(
        "an_acl_user_with_a_password_and_a_read_only_replica",
        &[
            "--user",
            "fleet",
            "on",
            ">fleet-pw",
            "~cbreak:*",
            "+@all",
            "--user",
            "default",
            "off",
        ],
    ) else {
        return;
    };
    let f = fleet(&format!(
        "redis://fleet:fleet-pw@127.0.0.1:{}",
        primary.port
    ));
    assert!(call(&f, "acl", policy(1, 1), Outcome::Success));
    let (e, _) = first_error(
        &format!("redis://fleet:nope@127.0.0.1:{}", primary.port),
        500,
    );
    assert!(matches!(problem(&e), Problem::Auth(_)), "{e}");
    // Outside its key pattern, the user is refused: a clear line too.
    let mut c = FleetConfig::new(
        StoreUrl::parse(&format!(
            "redis://fleet:fleet-pw@127.0.0.1:{}",
            primary.port
        ))
        .unwrap(),
    );
    c.prefix = "other:".into();
    let e = Fleet::new(c).read("x").unwrap_err();
    assert!(matches!(problem(&e), Problem::Denied(_)), "{e}");

    let Some(replica) = Redis::start_with(
        "an_acl_user_with_a_password_and_a_read_only_replica",
        &["--replicaof", "127.0.0.1", &primary.port.to_string()],
    ) else {
        return;
    };
    let r = fleet(&replica.url());
    let e = update_once(&r, "ro", fresh(&r, policy(1, 1)), |s| s.reset(1)).unwrap_err();
    assert!(matches!(store_problem(&e), Problem::ReadOnly), "{e}");
    assert!(e.to_string().contains("read-only replica"), "{e}");
}

/// Commands clients sent since the last call, by name: INFO
/// commandstats, less the INFO and CONFIG that read and reset it, and less
/// what the store's scripts run inside (TIME, TYPE, GET, SET, RENAME),
/// which the client never sends by itself.
pub fn commands_since_reset(redis: &Redis) -> Vec<(String, u64)> {
    let stats = redis.cli(&["INFO", "commandstats"]);
    redis.cli(&["CONFIG", "RESETSTAT"]);
    let mut out: Vec<(String, u64)> = stats
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let count = |field: &str| -> u64 {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(field)?.parse().ok())
                    .unwrap_or(0)
            };
            let n = count("calls=") + count("rejected_calls=") + count("failed_calls=");
            let inner = matches!(name, "time" | "type" | "get" | "set" | "rename");
            (!inner && !name.starts_with("info") && !name.starts_with("config"))
                .then(|| (name.to_string(), n))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    out.sort();
    out
}

#[test]
fn a_closed_call_costs_one_round_trip_before_and_one_after() {
    let Some(redis) = Redis::start("a_closed_call_costs_one_round_trip_before_and_one_after")
    else {
        return;
    };
    let p = policy(3, 60_000);
    // Scripts loaded, breaker made.
    assert!(call(&fleet(&redis.url()), "rt", p, Outcome::Success));
    commands_since_reset(&redis);
    // A new process: connect, admit (read, nothing worth writing), run,
    // record (a compare-and-set against what admission read).
    assert!(call(&fleet(&redis.url()), "rt", p, Outcome::Success));
    assert_eq!(commands_since_reset(&redis), [("evalsha".to_string(), 2)]);
    // A failure: the same two.
    assert!(call(&fleet(&redis.url()), "rt", p, Outcome::Failure));
    assert_eq!(commands_since_reset(&redis), [("evalsha".to_string(), 2)]);
    // Open: a skip reads and counts the rejection.
    let f = fleet(&redis.url());
    update_once(&f, "rt", fresh(&f, p), |s| s.trip(None, f.now())).unwrap();
    commands_since_reset(&redis);
    assert!(!call(&fleet(&redis.url()), "rt", p, Outcome::Success));
    assert_eq!(commands_since_reset(&redis), [("evalsha".to_string(), 2)]);
    // A probe: read, take the slot; then the outcome.
    update_once(&f, "rt", fresh(&f, p), |s| s.trip(Some(1), f.now())).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    commands_since_reset(&redis);
    assert!(call(&fleet(&redis.url()), "rt", p, Outcome::Success));
    assert_eq!(commands_since_reset(&redis), [("evalsha".to_string(), 3)]);
    assert_eq!(f.read("rt").unwrap().state, State::Closed);
}

#[test]
fn a_server_that_goes_away_fails_fast_and_its_state_is_back_with_it() {
    let Some(mut redis) = Redis::start_with(
        "a_server_that_goes_away_fails_fast_and_its_state_is_back_with_it",
        &["--appendonly", "yes", "--appendfsync", "always"],
    ) else {
        return;
    };
    let url = redis.url();
    let p = policy(1, 3_600_000);
    let f = fleet(&url);
    assert!(call(&f, "kept", p, Outcome::Failure));
    assert_eq!(f.read("kept").unwrap().state, State::Open);
    let mut h = f.open("kept");
    redis.stop();
    let t = Instant::now();
    let e = cbreak::engine::update(&f, &mut h, fresh(&f, p), |s| {
        s.admit(&p, &mut On::host(&f, 1, 1)).0
    })
    .unwrap_err();
    assert!(
        matches!(
            store_problem(&e),
            Problem::Unreachable(_) | Problem::NotRedis(_)
        ),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Back, with its append-only file: the breaker is still open, and the
    // same store object reconnects.
    redis.restart();
    assert_eq!(f.read("kept").unwrap().state, State::Open);
    assert!(!call(&f, "kept", p, Outcome::Success), "still open");
    // Restarted empty: a fresh breaker, no error.
    redis.stop();
    for file in ["appendonly.aof", "appendonlydir"] {
        let path = redis.dir().join(file);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(&path);
    }
    redis.restart();
    assert!(matches!(f.read("kept"), Err(FleetError::NotFound { .. })));
    assert!(call(&f, "kept", p, Outcome::Success));
    assert_eq!(f.read("kept").unwrap().counters.calls, 1);
}
