//! The library API (`cbreak::Breaker`): its promises across threads and
//! processes, and that it is the same breaker the `cbreak` command sees.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use cbreak::{Breaker, ExecuteError, State};

use crate::util::Env;

/// Long enough for any test step on a loaded machine; short enough to wait.
const RECOVERY: Duration = Duration::from_millis(300);
/// A wait past `RECOVERY` with a margin of hundreds of milliseconds.
const PAST_RECOVERY: Duration = Duration::from_millis(700);

fn breaker(env: &Env, name: &str, threshold: u32) -> Breaker {
    Breaker::builder(name)
        .threshold(threshold)
        .recovery(RECOVERY)
        .state_dir(env.state())
        .build()
        .expect("breaker builds")
}

fn fail_once(b: &Breaker) {
    b.record_failure(b.should_allow_request().expect("allowed"));
}

#[test]
fn the_threshold_opens_and_then_rejects() {
    let env = Env::new();
    let b = breaker(&env, "api", 3);
    fail_once(&b);
    fail_once(&b);
    assert!(!b.is_open(), "2 failures of 3");
    fail_once(&b);
    assert!(b.is_open());
    let rejected = b.should_allow_request().unwrap_err();
    assert_eq!(rejected.state(), Some(State::Open));
    assert!(rejected.retry_after().unwrap() <= RECOVERY);
    let stats = b.stats().unwrap();
    assert_eq!((stats.failures, stats.rejected), (3, 1));
    assert_eq!(stats.consecutive_failures, 3);
}

#[test]
fn after_the_recovery_exactly_one_of_16_threads_gets_a_permit() {
    let env = Env::new();
    let shared = breaker(&env, "api", 1);
    fail_once(&shared);
    thread::sleep(PAST_RECOVERY);
    // Half the threads share one breaker (one open record); the others each
    // build their own (one open record each), as separate components of a
    // program would.
    let barrier = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let b = if i % 2 == 0 {
                shared.clone()
            } else {
                breaker(&env, "api", 1)
            };
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                b.should_allow_request()
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let (permits, rejections): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    assert_eq!(permits.len(), 1, "one probe");
    for r in rejections {
        assert_eq!(r.unwrap_err().state(), Some(State::HalfOpen));
    }
    let probe = permits.into_iter().next().unwrap().unwrap();
    assert!(probe.is_probe());
    assert!(shared.is_half_open());
    shared.record_success(probe);
    assert_eq!(shared.stats().unwrap().state, State::Closed);
}

#[test]
fn a_good_probe_closes_and_a_bad_one_reopens() {
    let env = Env::new();
    let b = breaker(&env, "api", 1);
    fail_once(&b);
    thread::sleep(PAST_RECOVERY);
    let probe = b.should_allow_request().unwrap();
    assert!(probe.is_probe());
    b.record_success(probe);
    assert_eq!(b.stats().unwrap().state, State::Closed);
    assert!(b.should_allow_request().is_ok_and(|p| !p.is_probe()));

    fail_once(&b);
    thread::sleep(PAST_RECOVERY);
    let probe = b.should_allow_request().unwrap();
    let opened_before = b.stats().unwrap().opened_at;
    b.record_failure(probe);
    let stats = b.stats().unwrap();
    assert_eq!(stats.state, State::Open);
    assert_eq!(stats.reopens, 1);
    assert!(stats.opened_at > opened_before, "opened again");
    assert_eq!(
        b.should_allow_request().unwrap_err().state(),
        Some(State::Open)
    );
}

#[test]
fn execute_never_calls_the_closure_while_open_or_while_another_probes() {
    let env = Env::new();
    let b = breaker(&env, "api", 1);
    let called = Arc::new(AtomicUsize::new(0));
    let call = |called: &Arc<AtomicUsize>| {
        let called = Arc::clone(called);
        move || -> Result<(), std::io::Error> {
            called.fetch_add(1, Ordering::SeqCst);
            Err(std::io::Error::other("down"))
        }
    };
    assert!(matches!(
        b.execute(call(&called)),
        Err(ExecuteError::Failed(_))
    ));
    assert_eq!(called.load(Ordering::SeqCst), 1);
    // Open: 4 threads × 25 tries, not one call.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (b, f) = (b.clone(), call(&called));
            thread::spawn(move || {
                for _ in 0..25 {
                    let f = f.clone();
                    assert!(matches!(b.execute(f), Err(ExecuteError::Rejected(_))));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(called.load(Ordering::SeqCst), 1, "not called while open");
    assert_eq!(b.stats().unwrap().rejected, 100);
    // Half-open with the probe held elsewhere: still not called.
    thread::sleep(PAST_RECOVERY);
    let probe = b.should_allow_request().unwrap();
    let rejected = b.execute(call(&called)).unwrap_err();
    assert!(
        matches!(rejected, ExecuteError::Rejected(ref r) if r.state() == Some(State::HalfOpen))
    );
    assert_eq!(called.load(Ordering::SeqCst), 1);
    b.record_success(probe);
    // Closed again: called.
    assert!(
        b.execute(|| Ok::<_, std::io::Error>(5))
            .is_ok_and(|v| v == 5)
    );
}

#[test]
fn a_dropped_permit_frees_the_probe_and_counts_as_cancelled() {
    let env = Env::new();
    let b = breaker(&env, "api", 1);
    fail_once(&b);
    thread::sleep(PAST_RECOVERY);
    let probe = b.should_allow_request().unwrap();
    assert!(b.should_allow_request().is_err(), "the probe is taken");
    // Dropped on another thread, as a request handler that gave up would.
    thread::spawn(move || drop(probe)).join().unwrap();
    let stats = b.stats().unwrap();
    assert_eq!(stats.cancelled, 1);
    assert_eq!(stats.state, State::HalfOpen);
    assert!(!stats.probe_in_flight);
    let again = b.should_allow_request().expect("the slot is free at once");
    assert!(again.is_probe());
    b.record_success(again);
    assert!(!b.is_open());
}

#[test]
fn a_late_outcome_cannot_close_a_fresh_trip() {
    let env = Env::new();
    let b = breaker(&env, "api", 1);
    let slow_call = b.should_allow_request().unwrap();
    b.trip().unwrap();
    b.record_success(slow_call);
    let stats = b.stats().unwrap();
    assert_eq!(
        stats.state,
        State::ForcedOpen,
        "the old permit changed nothing"
    );
    assert_eq!(stats.successes, 1, "but it is counted");

    b.reset().unwrap();
    let before_the_trip = b.should_allow_request().unwrap();
    b.trip_for(RECOVERY).unwrap();
    thread::sleep(PAST_RECOVERY);
    let probe = b.should_allow_request().unwrap();
    assert_ne!(probe.generation(), before_the_trip.generation());
    b.record_failure(before_the_trip);
    assert!(b.is_half_open(), "an old failure does not reopen it");
    b.record_success(probe);
    assert!(!b.is_open());
}

#[test]
fn a_panicking_call_is_a_failure() {
    let env = Env::new();
    let b = breaker(&env, "api", 1);
    let b2 = b.clone();
    let panicked = thread::spawn(move || {
        b2.execute(|| -> Result<(), std::io::Error> { panic!("the call panicked (expected)") })
    })
    .join();
    assert!(panicked.is_err());
    let stats = b.stats().unwrap();
    assert_eq!((stats.failures, stats.cancelled), (1, 0));
    assert!(b.is_open());
}

/// Calls per thread in `processes_and_threads_give_exact_counts`: a success,
/// a failure and a dropped permit in turn.
const CALLS_PER_THREAD: usize = 60;

#[test]
fn four_processes_of_eight_threads_give_exact_counts() {
    let env = Env::new();
    // Made first, so that no worker's policy differs from the record's.
    let b = Breaker::builder("shared")
        .threshold(1_000_000)
        .state_dir(env.state())
        .build()
        .unwrap();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            worker(&env, "counts")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("worker starts")
        })
        .collect();
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "worker failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let each = (4 * 8 * CALLS_PER_THREAD / 3) as u64;
    let stats = b.stats().unwrap();
    assert_eq!(
        (
            stats.calls,
            stats.successes,
            stats.failures,
            stats.cancelled,
            stats.rejected
        ),
        (3 * each, each, each, each, 0)
    );
    // The command sees the same counts.
    let status = env.status("shared");
    assert_eq!(status["calls"], 3 * each);
    assert_eq!(status["cancelled"], each);
}

#[test]
fn a_probe_whose_process_died_is_taken_over_at_once() {
    let env = Env::new();
    let b = breaker(&env, "api", 1);
    fail_once(&b);
    thread::sleep(PAST_RECOVERY);
    let out = worker(&env, "probe-and-die").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "the worker took the probe and exited"
    );
    let probe = b
        .should_allow_request()
        .expect("the dead worker's probe is free");
    assert!(probe.is_probe());
    b.record_success(probe);
    assert!(!b.is_open());
}

/// The library reads its record through a map, where a page another
/// process truncated away faults (SIGBUS) instead of reading short; the
/// guard in `src/fault.rs` makes that fault an error. (The command reads
/// with `pread(2)`: `tests/hardening.rs` truncates under it.)
#[test]
fn a_record_truncated_under_the_librarys_map_is_a_warning_not_a_sigbus() {
    let env = Env::new();
    let out = worker(&env, "truncated-under-the-map").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.signal(),
        None,
        "the worker died of a signal:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the worker failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let faults: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("truncation warnings: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the worker says how many reads faulted:\n{stdout}"));
    // Without a fault the test would prove nothing about the guard.
    assert!(faults > 0, "no read hit a truncated page:\n{stdout}");
}

/// A SIGBUS that no fault of the record's map raised is not the guard's:
/// sent with kill(2) (as `kill -BUS` does) or raise(3), it kills a process
/// that holds a guarded map, as it kills any other.
#[test]
fn a_sigbus_sent_to_a_library_process_kills_it() {
    for mode in ["kill-sigbus", "raise-sigbus"] {
        let env = Env::new();
        let out = worker(&env, mode).output().unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGBUS),
            "{mode}: the worker survived a SIGBUS ({:?}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// This test binary again, running only [`worker_process`] with `mode`.
fn worker(env: &Env, mode: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "api::worker_process",
        "--exact",
        "--ignored",
        "--nocapture",
        "--quiet",
    ])
    .env("CBREAK_API_WORKER", mode)
    .env("CBREAK_API_WORKER_DIR", env.state());
    cmd
}

#[test]
#[ignore = "a helper process of the tests above, run by them with CBREAK_API_WORKER set"]
fn worker_process() {
    let mode = std::env::var("CBREAK_API_WORKER").expect("run by a test");
    let dir = std::env::var_os("CBREAK_API_WORKER_DIR").expect("run by a test");
    match mode.as_str() {
        "counts" => {
            let b = Breaker::builder("shared")
                .threshold(1_000_000)
                .state_dir(&dir)
                .build()
                .unwrap();
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || {
                        for i in 0..CALLS_PER_THREAD {
                            let permit = b.should_allow_request().expect("closed");
                            match i % 3 {
                                0 => b.record_success(permit),
                                1 => b.record_failure(permit),
                                _ => drop(permit),
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
        "probe-and-die" => {
            let b = Breaker::builder("api")
                .threshold(1)
                .recovery(RECOVERY)
                .state_dir(&dir)
                .build()
                .unwrap();
            let probe = b.should_allow_request().expect("the probe");
            assert!(probe.is_probe());
            // Gone without an outcome, as a process killed mid-call.
            std::mem::forget(probe);
            std::process::exit(7);
        }
        "truncated-under-the-map" => {
            let warned = Arc::new(AtomicUsize::new(0));
            let seen = Arc::clone(&warned);
            let b = Breaker::builder("t")
                .threshold(1_000_000)
                .state_dir(&dir)
                .on_warning(move |line| {
                    if line.contains("truncated") {
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .build()
                .unwrap();
            let path = std::path::Path::new(&dir).join("t");
            let stop = Arc::new(AtomicBool::new(false));
            let truncator = {
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // As `cp` over it would: cut it short, then write
                        // it again (zeros, which the breaker initialises).
                        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                            let _ = f.set_len(0);
                            let _ = f.set_len(8192);
                        }
                    }
                })
            };
            // Until a few reads have faulted, or long enough to say none did.
            let deadline = Instant::now() + Duration::from_secs(20);
            while warned.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
                // Fail open: a state that cannot be read allows the call.
                if let Ok(permit) = b.should_allow_request() {
                    b.record_success(permit);
                }
            }
            stop.store(true, Ordering::Relaxed);
            truncator.join().unwrap();
            // And the breaker still works once the file is left alone.
            let permit = b.should_allow_request().expect("allowed");
            b.record_success(permit);
            assert!(b.stats().is_ok());
            println!("truncation warnings: {}", warned.load(Ordering::Relaxed));
        }
        "kill-sigbus" | "raise-sigbus" => {
            let b = Breaker::builder("k").state_dir(&dir).build().unwrap();
            // The record is mapped and guarded now.
            b.record_success(b.should_allow_request().unwrap());
            // SAFETY: kill(2) and raise(3) touch no memory of ours.
            unsafe {
                if mode == "kill-sigbus" {
                    libc::kill(libc::getpid(), libc::SIGBUS);
                } else {
                    libc::raise(libc::SIGBUS);
                }
            }
            // A process-directed signal may reach another thread.
            thread::sleep(Duration::from_millis(500));
            b.record_success(b.should_allow_request().unwrap());
            println!("survived a SIGBUS");
        }
        other => panic!("unknown worker mode {other}"),
    }
}

#[test]
fn a_breaker_opened_through_the_api_is_open_for_cbreak_status() {
    let env = Env::new();
    let b = breaker(&env, "api", 2);
    fail_once(&b);
    fail_once(&b);
    let status = env.status("api");
    assert_eq!(status["state"], "open");
    assert_eq!(status["consecutive_failures"], 2);
    assert_eq!(status["threshold"], 2);
    assert_eq!(status["policy"]["probes"], 1);
    // And a command run through the same breaker is skipped.
    env.run(&["run", "-n", "api", "--", "true"]).code(75);
    assert_eq!(b.stats().unwrap().rejected, 1);
}

#[test]
fn a_breaker_tripped_by_cbreak_trip_rejects_the_apis_next_call() {
    let env = Env::new();
    let b = breaker(&env, "api", 5);
    b.record_success(b.should_allow_request().unwrap());
    env.run(&["trip", "api"]).success();
    let rejected = b.should_allow_request().unwrap_err();
    assert_eq!(rejected.state(), Some(State::ForcedOpen));
    assert!(
        rejected.to_string().contains("reset() closes it"),
        "{rejected}"
    );
    env.run(&["reset", "api"]).success();
    assert!(b.should_allow_request().is_ok());
}

#[test]
fn the_apis_probe_keeps_cbreak_run_out() {
    let env = Env::new();
    let b = breaker(&env, "api", 1);
    fail_once(&b);
    thread::sleep(PAST_RECOVERY);
    let probe = b.should_allow_request().unwrap();
    env.run(&["run", "-n", "api", "--", "true"])
        .code(75)
        .stderr_has("half-open and its probe is still running");
    b.record_success(probe);
    env.run(&["run", "-n", "api", "--", "true"]).success();
}

#[test]
fn a_bad_policy_is_refused_with_the_builders_words() {
    let env = Env::new();
    let err = Breaker::builder("api")
        .threshold(0)
        .state_dir(env.state())
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "threshold 0 turns off the consecutive rule; give failure_rate too, or the breaker can never open"
    );
    let err = Breaker::builder("api")
        .failure_rate(150.0)
        .state_dir(env.state())
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failure_rate: 150 is out of range: a percentage is from 0 to 100"
    );
    assert!(!env.state().exists(), "nothing made for a bad policy");
}

#[test]
fn a_state_directory_that_cannot_be_used_fails_the_build_in_one_line() {
    let env = Env::new();
    std::fs::write(env.path("file"), "").unwrap();
    let err = Breaker::builder("api")
        .state_dir(env.path("file"))
        .build()
        .unwrap_err();
    assert!(!err.is_config());
    let msg = err.to_string();
    assert!(msg.contains("not a directory"), "{msg}");
    assert!(!msg.contains('\n'));
}

/// A library's caller has no `cbreak reset` to run: a forced-open
/// breaker's rejection said "'cbreak reset NAME' closes it".
#[test]
fn a_forced_open_rejection_names_no_subcommand() {
    let env = Env::new();
    let b = Breaker::builder("forced")
        .state_dir(env.state())
        .build()
        .unwrap();
    b.trip().unwrap();
    let text = b.should_allow_request().unwrap_err().to_string();
    assert_eq!(text, "breaker 'forced' is forced open; reset() closes it");
}
