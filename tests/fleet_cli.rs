//! `--store` through the real binary: a fleet of simulated machines on one
//! Redis server, probes held by other machines, a server that goes away,
//! skewed clocks, and every kind of bad store. The machines are played by
//! `CBREAK_TEST_HOST_ID` (the host identity a probe owner carries).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fleet::commands_since_reset;
use crate::redis_server::{Redis, free_port, make_ca, need};
use crate::util::{Env, eventually};

fn host(env: &Env, id: &str, args: &[&str]) -> std::process::Command {
    let mut c = env.command(args);
    c.env("CBREAK_TEST_HOST_ID", id);
    c
}

#[test]
fn a_fleet_of_four_hosts_counts_exactly_and_probes_once() {
    let Some(redis) = Redis::start("a_fleet_of_four_hosts_counts_exactly_and_probes_once") else {
        return;
    };
    let env = Env::on_store(&redis.url());
    // 4 hosts × 16 processes, all at once, on one closed breaker.
    let children: Vec<_> = (0..64)
        .map(|i| {
            host(
                &env,
                &format!("host-{}", i % 4),
                &["run", "-n", "fleet", "-t", "1000", "--", "true"],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let s = env.status("fleet");
    assert_eq!(
        (s["calls"].as_u64(), s["successes"].as_u64()),
        (Some(64), Some(64))
    );

    // Open with the recovery over: of 64 callers on 4 hosts, one probes
    // (and fails: open again for an hour); the hook fires once per
    // transition, whichever host made it.
    env.run(&["trip", "--create", "probe", "--for", "1ms"])
        .success();
    std::thread::sleep(Duration::from_millis(20));
    let ran = env.path("ran");
    let hooks = env.path("hooks");
    let probe = format!("echo x >> {}; sleep 1; exit 1", ran.display());
    let hook = format!(
        "echo \"$CBREAK_PREVIOUS_STATE>$CBREAK_STATE\" >> {}",
        hooks.display()
    );
    let children: Vec<_> = (0..64)
        .map(|i| {
            host(
                &env,
                &format!("host-{}", i % 4),
                &[
                    "run",
                    "-n",
                    "probe",
                    "-r",
                    "1h",
                    "-q",
                    "--on-change",
                    &hook,
                    "--",
                    "sh",
                    "-c",
                    &probe,
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap_or(-1))
        .collect();
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        "x\n",
        "exactly one probe ran"
    );
    assert_eq!(codes.iter().filter(|&&c| c == 1).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 75).count(), 63, "{codes:?}");
    assert_eq!(
        std::fs::read_to_string(&hooks).unwrap(),
        "open>half_open\nhalf_open>open\n",
        "each transition's hook fired once"
    );
    let s = env.status("probe");
    assert_eq!(
        (s["state"].as_str(), s["rejected"].as_u64()),
        (Some("open"), Some(63))
    );
}

/// Starts a probe on host `id` that runs until killed; returns it once the
/// probe slot is taken.
fn start_probe(env: &Env, id: &str, name: &str) -> std::process::Child {
    env.run(&["trip", "--create", name, "--for", "1ms"])
        .success();
    std::thread::sleep(Duration::from_millis(20));
    let child = host(
        env,
        id,
        &[
            "run",
            "-n",
            name,
            "--timeout",
            "1s",
            "--kill-after",
            "1s",
            "-q",
            "--",
            "sleep",
            "30",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    assert!(eventually(
        Duration::from_secs(5),
        || env.status(name)["state"] == "half_open"
    ));
    child
}

#[test]
fn a_killed_probe_on_another_host_holds_until_its_lease_ends_on_this_one_not() {
    let Some(redis) =
        Redis::start("a_killed_probe_on_another_host_holds_until_its_lease_ends_on_this_one_not")
    else {
        return;
    };
    let env = Env::on_store(&redis.url());
    // Same host: the dead owner is seen dead at once.
    let mut same = start_probe(&env, "host-a", "here");
    same.kill().unwrap();
    same.wait().unwrap();
    let out = host(&env, "host-a", &["run", "-n", "here", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("breaker 'here' closed: probe succeeded")
    );
    assert_eq!(env.state_of("here"), "closed");

    // Another host: its lease (1s timeout + 1s kill-after + 10s) decides.
    let mut other = start_probe(&env, "host-b", "there");
    let lease_until = env.status("there")["probe"]["lease_until"].clone();
    other.kill().unwrap();
    other.wait().unwrap();
    let killed = Instant::now();
    let skipped = host(&env, "host-a", &["run", "-n", "there", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(skipped.status.code(), Some(75), "{lease_until}");
    assert!(String::from_utf8_lossy(&skipped.stderr).contains("probe is still running"));
    assert!(
        eventually(Duration::from_secs(20), || host(
            &env,
            "host-a",
            &["run", "-n", "there", "-q", "--", "true"]
        )
        .status()
        .unwrap()
        .success()),
        "the lease ends"
    );
    assert!(
        killed.elapsed() > Duration::from_secs(8),
        "nobody probed before the lease ended ({:?})",
        killed.elapsed()
    );
    assert_eq!(env.state_of("there"), "closed");
}

#[test]
fn a_store_that_goes_away_fails_open_within_the_timeout_and_comes_back() {
    let Some(mut redis) = Redis::start_with(
        "a_store_that_goes_away_fails_open_within_the_timeout_and_comes_back",
        &["--appendonly", "yes", "--appendfsync", "always"],
    ) else {
        return;
    };
    let env = Env::on_store(&redis.url());
    env.run(&["run", "-n", "m", "-t", "1", "-r", "1h", "--", "false"])
        .code(1);
    assert_eq!(env.state_of("m"), "open");
    // Stopped while a command runs: the command's status passes, the
    // outcome is not recorded, one warning says so.
    let marker = env.path("started");
    let slow = format!("touch {}; sleep 1; exit 3", marker.display());
    redis.cli(&["SET", "unrelated", "1"]);
    let child = env
        .command(&["run", "-n", "mid", "--", "sh", "-c", &slow])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || marker.exists()));
    redis.stop();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the outcome may not have been recorded"),
        "{err}"
    );
    // Down: runs fail open, fast, with one line naming the store.
    let t = Instant::now();
    env.run(&["run", "-n", "m", "--", "sh", "-c", "exit 4"])
        .code(4)
        .one_error_line()
        .stderr_has(&format!("breaker 'm' unavailable: store {}", redis.url()))
        .stderr_has("running the command anyway (--on-state-error run)");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    env.run(&["run", "-n", "m", "--on-state-error", "skip", "--", "true"])
        .code(75);
    env.run(&["status", "m"]).code(125).one_error_line();
    env.run(&["list"]).code(125).one_error_line();
    env.run(&["metrics"]).code(125).one_error_line();
    // Back with its data: still open.
    redis.restart();
    env.run(&["run", "-n", "m", "--", "true"]).code(75);
    // Restarted empty: a fresh breaker.
    redis.cli(&["FLUSHALL"]);
    env.run(&["run", "-n", "m", "--", "true"]).success();
    assert_eq!(env.status("m")["calls"], 1);
}

#[test]
fn bad_stores_are_named_in_one_line() {
    let env = Env::new();
    for (url, says) in [
        ("memcached://h", "unknown scheme memcached://"),
        ("redis//h", "expected redis://"),
        ("redis://h:99999", "port is not a number"),
        ("redis://u:hunter2@h:x", "port is not a number"),
        // A URL missing its host and '@': the password is where the port
        // goes, and is not shown there either.
        ("redis://default:hunter2", "port is not a number"),
        (
            "unix:///run/r.sock?password=hunter2&x=hunter2",
            "unknown parameter 'x'",
        ),
        (
            "unix:///run/r.sock?secret=hunter2",
            "unknown parameter 'secret'",
        ),
    ] {
        let out = env
            .run(&["--store", url, "run", "-n", "a", "--", "true"])
            .code(125)
            .one_error_line()
            .stderr_has(says);
        assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    }
    let Some(redis) = Redis::start("bad_stores_are_named_in_one_line") else {
        return;
    };
    // Nothing listening: fail open (or as --on-state-error says).
    let nobody = format!("redis://ci:hunter2@127.0.0.1:{}", free_port());
    let out = env
        .run(&["--store", &nobody, "run", "-n", "a", "--", "true"])
        .success()
        .one_error_line()
        .stderr_has("connection refused");
    assert!(out.stderr.contains("redis://ci:***@127.0.0.1") && !out.stderr.contains("hunter2"));
    env.run(&[
        "--store",
        &nobody,
        "run",
        "-n",
        "a",
        "--on-state-error",
        "fail",
        "--",
        "true",
    ])
    .code(125)
    .one_error_line();
    env.run(&["--store", &nobody, "check", "a"]).success();
    // A server that is not Redis.
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http_url = format!("redis://127.0.0.1:{}", http.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for mut s in http.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut s, b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    env.run(&["--store", &http_url, "run", "-n", "a", "--", "true"])
        .success()
        .one_error_line()
        .stderr_has("does not answer as Redis or Valkey do");
    // A value at the key that is not a cbreak record: kept aside, replaced.
    redis.cli(&["SET", "cbreak:{a}", "not a record"]);
    env.run(&["--store", &redis.url(), "status", "a"])
        .code(1)
        .stderr_has("record cbreak:{a} in redis://127.0.0.1:")
        .stderr_has("is corrupt (not a cbreak record); the next 'cbreak run' moves it aside");
    env.run(&["--store", &redis.url(), "run", "-n", "a", "--", "true"])
        .success()
        .one_error_line()
        .stderr_has("kept it as cbreak:{a}~corrupt-");
    env.run(&["--store", &redis.url(), "status", "a"]).success();
    assert_eq!(
        env.run(&["--store", &redis.url(), "list"]).success().stdout,
        "a\n"
    );
}

#[test]
fn hosts_whose_clocks_differ_by_an_hour_see_the_same_recovery() {
    let test = "hosts_whose_clocks_differ_by_an_hour_see_the_same_recovery";
    if need(test, &["faketime"]).is_none() || std::env::var_os("CBREAK_TEST_BIN").is_some() {
        // A static binary does not see faketime's clock: nothing to test.
        return;
    }
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let env = Env::on_store(&redis.url());
    let skewed = |args: &[&str]| {
        let mut c = std::process::Command::new("faketime");
        c.args(["-f", "-3600s"]).arg(crate::util::bin()).args(args);
        c.env("CBREAK_STORE", redis.url())
            .env("CBREAK_STATE_DIR", env.state());
        c.stdin(Stdio::null()).output().unwrap()
    };
    let out = skewed(&["run", "-n", "sk", "-t", "1", "-r", "2s", "--", "false"]);
    assert_eq!(out.status.code(), Some(1));
    // This machine is an hour ahead of the one that opened it, yet the
    // breaker is open for it too: time is the server's.
    env.run(&["run", "-n", "sk", "--", "true"]).code(75);
    let out = skewed(&["run", "-n", "sk", "--", "true"]);
    assert_eq!(out.status.code(), Some(75));
    assert!(eventually(Duration::from_secs(6), || env
        .run(&["run", "-n", "sk", "-q", "--", "true"])
        .code
        == 0));
    assert_eq!(env.state_of("sk"), "closed");
}

#[test]
fn a_closed_run_costs_one_round_trip_before_the_command_and_one_after() {
    let Some(redis) =
        Redis::start("a_closed_run_costs_one_round_trip_before_the_command_and_one_after")
    else {
        return;
    };
    // Over the unix socket: the same commands as over TCP.
    let env = Env::on_store(&redis.unix_url());
    env.run(&["run", "-n", "rt", "--", "true"]).success();
    commands_since_reset(&redis);
    env.run(&["run", "-n", "rt", "--", "true"]).success();
    assert_eq!(commands_since_reset(&redis), [("evalsha".to_string(), 2)]);
    env.run(&["run", "-n", "rt", "--", "false"]).code(1);
    assert_eq!(commands_since_reset(&redis), [("evalsha".to_string(), 2)]);
    env.run(&["trip", "rt"]).success();
    commands_since_reset(&redis);
    env.run(&["run", "-n", "rt", "--", "true"]).code(75);
    assert_eq!(commands_since_reset(&redis), [("evalsha".to_string(), 2)]);
}

#[test]
fn an_untrusted_certificate_is_one_line_then_on_state_error() {
    let test = "an_untrusted_certificate_is_one_line_then_on_state_error";
    if need(test, &["openssl"]).is_none() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let (ca, crt, key) = make_ca(scratch.path(), "good");
    let (wrong, _, _) = make_ca(scratch.path(), "wrong");
    let tls_port = free_port();
    let Some(redis) = Redis::start_with(
        test,
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            crt.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--tls-ca-cert-file",
            ca.to_str().unwrap(),
            "--tls-auth-clients",
            "no",
        ],
    ) else {
        return;
    };
    let env = Env::on_store(&format!("rediss://localhost:{tls_port}"));
    let run = |cert: &std::path::Path, args: &[&str]| {
        crate::util::Run::from(
            env.command(args)
                .env("SSL_CERT_FILE", cert)
                .env_remove("SSL_CERT_DIR")
                .output()
                .unwrap(),
        )
    };
    run(&ca, &["run", "-n", "tls", "--", "true"])
        .success()
        .stderr_empty();
    run(&ca, &["status", "tls"]).success();
    run(&wrong, &["run", "-n", "tls", "--", "sh", "-c", "exit 6"])
        .code(6)
        .one_error_line()
        .stderr_has("TLS failed: the server's certificate is not trusted")
        .stderr_has("running the command anyway (--on-state-error run)");
    run(
        &wrong,
        &["run", "-n", "tls", "--on-state-error", "skip", "--", "true"],
    )
    .code(75);
    run(&wrong, &["status", "tls"]).code(125).one_error_line();
    // TLS spoken to a plain port: the server waits for a line that never
    // comes, and the timeout says what to check.
    let plain = Env::on_store(&redis.url().replace("redis://", "rediss://"));
    plain
        .run(&["--store-timeout", "300ms", "run", "-n", "tls", "--", "true"])
        .success()
        .one_error_line()
        .stderr_has("no answer within 300ms (--store-timeout); is that a TLS port?");
}

/// A unix socket URL carries credentials as redis-rs takes them
/// (`?user=NAME&pass=PASSWORD`): a server with a password is usable over
/// its socket, and messages never show the password.
#[test]
fn a_unix_socket_takes_a_password() {
    let Some(redis) = Redis::start_with(
        "a_unix_socket_takes_a_password",
        &["--requirepass", "s3cret-pw"],
    ) else {
        return;
    };
    let env = Env::new();
    let socket = redis.socket();
    let with = format!("unix://{}?pass=s3cret-pw", socket.display());
    env.run(&["--store", &with, "run", "-n", "u", "--", "true"])
        .success()
        .stderr_empty();
    let out = env
        .run(&["--store", &with, "status", "u", "--json"])
        .success();
    assert!(out.stdout.contains("\"calls\": 1"), "{}", out.stdout);
    let without = format!("unix://{}", socket.display());
    let out = env
        .run(&["--store", &without, "run", "-n", "u", "--", "true"])
        .success()
        .one_error_line()
        .stderr_has("password");
    let wrong = format!("unix://{}?pass=wrong-pw", socket.display());
    let out2 = env
        .run(&["--store", &wrong, "run", "-n", "u", "--", "true"])
        .success()
        .one_error_line();
    assert!(
        !out.stderr.contains("s3cret") && !out2.stderr.contains("wrong-pw"),
        "{}{}",
        out.stderr,
        out2.stderr
    );
}
