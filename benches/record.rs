//! In-process cost of the record paths on a real file: what `cbreak run`
//! does around the command (admit, then record the outcome: two lock,
//! check, update, unlock cycles), the open path's rejection, and the read
//! behind `status`; the first both read with `pread(2)` (as `cbreak run`
//! does) and through a map (as the library's `Breaker` does). Run with
//! `cargo bench --bench record`.

use criterion::{Criterion, criterion_group, criterion_main};

use cbreak::breaker::{Admission, BreakerState, Call, Outcome, Policy};
use cbreak::host::{System, now_ms};
use cbreak::store::{StateDir, Store};

fn paths(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = StateDir::new(dir.path().join("state"), false);
    let policy = Policy::default();
    let fresh = || BreakerState::new(now_ms(), 1, policy);
    let mut host = System::new();
    let success = Call {
        outcome: Outcome::Success,
        slow: false,
        timed_out: false,
    };
    // Read with pread, as `cbreak run` reads its record, then through a
    // map, as the library's `Breaker` does.
    let mapping = StateDir::new(dir.path().join("state"), false).mapping();
    for (name, store) in [
        ("closed: admit + record success", &store),
        ("closed, mapped: admit + record success", &mapping),
    ] {
        let mut closed = store.open("closed");
        c.bench_function(name, |b| {
            b.iter(|| {
                let ticket = cbreak::engine::update(&store, &mut closed, fresh, |s| {
                    match s.admit(&policy, &mut host).0 {
                        Admission::Run(t) => t,
                        Admission::Reject(_) => unreachable!("closed"),
                    }
                })
                .unwrap();
                cbreak::engine::update(&store, &mut closed, fresh, |s| {
                    s.record(ticket, success, &mut host)
                })
                .unwrap();
            })
        });
    }
    let mut tripped = store.open("tripped");
    cbreak::engine::update(&store, &mut tripped, fresh, |s| s.trip(None, now_ms())).unwrap();
    c.bench_function("open: rejection", |b| {
        b.iter(|| {
            let rejected = cbreak::engine::update(&store, &mut tripped, fresh, |s| {
                matches!(s.admit(&policy, &mut host).0, Admission::Reject(_))
            })
            .unwrap();
            assert!(rejected);
        })
    });
    c.bench_function("status: read one record", |b| {
        b.iter(|| store.read("closed").unwrap())
    });
    // The floor under the first benchmark: the system calls of its two
    // lock cycles (flock, fstat, unlock, twice) on the same file, no work.
    let file = std::fs::File::open(dir.path().join("state/closed")).unwrap();
    c.bench_function("floor: the 6 system calls of admit + record", |b| {
        b.iter(|| {
            for _ in 0..2 {
                fs2::FileExt::lock_exclusive(&file).unwrap();
                std::hint::black_box(file.metadata().unwrap());
                fs2::FileExt::unlock(&file).unwrap();
            }
        })
    });
}

criterion_group!(benches, paths);
criterion_main!(benches);
