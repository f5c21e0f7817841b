//! The in-process path through the library API: `should_allow_request` +
//! `record_success` on a closed breaker, on one thread and on 8 threads
//! sharing one `Breaker`, against a minimal in-process breaker over atomics
//! (the kind failsafe-rs and recloser are): what sharing the breaker with
//! every process on the machine costs. Run with `cargo bench --bench api`.
//!
//! The 8-thread benchmarks time 8 threads doing `iters` calls each at once
//! and report that time per iteration: one "iteration" is 8 calls, one on
//! each thread.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

/// The reference: consecutive failures and an open-until time in atomics,
/// as an in-process breaker keeps them. Only the closed path is timed.
struct AtomicBreaker {
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    threshold: u32,
}

impl AtomicBreaker {
    fn should_allow_request(&self, now_ms: u64) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        until == 0 || now_ms >= until
    }

    fn record_success(&self) {
        self.failures.store(0, Ordering::Release);
    }

    fn record_failure(&self, now_ms: u64) {
        if self.failures.fetch_add(1, Ordering::AcqRel) + 1 >= self.threshold {
            self.open_until_ms.store(now_ms + 30_000, Ordering::Release);
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `threads` threads doing `iters` calls each at once.
fn on_threads(threads: usize, iters: u64, call: impl Fn() + Send + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..iters {
                    call();
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // The scope joins every thread before it returns.
        start
    })
    .elapsed()
}

fn api(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let breaker = cbreak::Breaker::builder("bench")
        .state_dir(dir.path())
        .build()
        .unwrap();
    let reference = Arc::new(AtomicBreaker {
        failures: AtomicU32::new(0),
        open_until_ms: AtomicU64::new(0),
        threshold: 5,
    });
    // The reference must be able to open, or the compiler could see
    // through it; one failure and one success leave it closed.
    reference.record_failure(now_ms());
    reference.record_success();

    let cbreak_call = || {
        let permit = breaker.should_allow_request().expect("closed");
        breaker.record_success(black_box(permit));
    };
    let atomic_call = || {
        if reference.should_allow_request(black_box(now_ms())) {
            reference.record_success();
        }
    };
    c.bench_function("cbreak::Breaker, 1 thread: allow + success", |b| {
        b.iter(cbreak_call)
    });
    c.bench_function("atomic reference, 1 thread: allow + success", |b| {
        b.iter(atomic_call)
    });
    c.bench_function("cbreak::Breaker, 8 threads: allow + success", |b| {
        b.iter_custom(|iters| on_threads(8, iters, cbreak_call))
    });
    c.bench_function("atomic reference, 8 threads: allow + success", |b| {
        b.iter_custom(|iters| on_threads(8, iters, atomic_call))
    });
    let stats = breaker.stats().unwrap();
    assert_eq!(stats.calls, stats.successes, "every call was a success");
}

criterion_group!(benches, api);
criterion_main!(benches);
