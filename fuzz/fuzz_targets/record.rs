//! Arbitrary bytes as a record file, through the real open, lock, validate
//! and read paths (mapped, and `status`'s pread); and, with the checksum fixed up so the decoder's semantic
//! checks are reached, arbitrary words as a body driven through the state
//! machine. Nothing may panic or fault.
#![no_main]

use cbreak::breaker::{Call, Host, Millis, Outcome, Owner};
use cbreak::record::{self, Access, Record, RecordError, USED_WORDS};
use libfuzzer_sys::fuzz_target;

struct Fixed(Millis);

impl Host for Fixed {
    fn now(&self) -> Millis {
        self.0
    }
    fn me(&mut self) -> Owner {
        Owner {
            pid: 1,
            start_time: 1,
            boot_id: 1,
            kernel_lock: false,
        }
    }
    fn is_alive(&mut self, owner: &Owner) -> bool {
        owner.pid % 2 == 0
    }
    fn random(&mut self) -> u64 {
        self.0
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. The file path.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b");
    std::fs::write(&path, data).unwrap();
    // The read-only path of `status` and `metrics` first: it changes
    // nothing, and must agree with the read-write path on valid records.
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let access = Access::private(unsafe { libc::geteuid() });
    let read_only = record::read(&path, access);
    let mut rec = Record::open_rw(&path, access).unwrap();
    match rec.lock(|| cbreak::breaker::BreakerState::default()) {
        Ok(guard) => {
            if let Ok(s) = &read_only {
                assert_eq!(guard.load().as_ref().ok(), Some(s));
            }
            if let Ok(mut s) = guard.load() {
                let policy = s.policy;
                let mut host = Fixed(s.updated_at);
                let (admission, _) = s.admit(&policy, &mut host);
                if let cbreak::breaker::Admission::Run(t) = admission {
                    s.record(
                        t,
                        Call {
                            outcome: Outcome::Failure,
                            slow: false,
                            timed_out: false,
                        },
                        &mut host,
                    );
                }
                if guard.store(&s).is_ok() {
                    assert_eq!(guard.load().ok(), Some(s));
                }
            }
        }
        Err(
            RecordError::Corrupt(_)
            | RecordError::Foreign(_)
            | RecordError::NewerVersion(_)
            | RecordError::Io(_),
        ) => {}
        Err(e) => panic!("unexpected {e:?}"),
    }
    // 2. The words, checksum fixed up.
    let mut words = [0u64; USED_WORDS];
    for (w, chunk) in words.iter_mut().zip(data.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    record::seal(&mut words);
    if let Ok(mut s) = record::decode(&words) {
        assert!(s.is_consistent());
        let policy = s.policy;
        for (i, now) in [0, s.opened_at, s.next_probe_at, u64::MAX]
            .into_iter()
            .enumerate()
        {
            let mut host = Fixed(now);
            if let (cbreak::breaker::Admission::Run(t), _) = s.admit(&policy, &mut host) {
                let outcome = [
                    Outcome::Success,
                    Outcome::Failure,
                    Outcome::Ignored,
                    Outcome::Cancelled,
                ][i];
                s.record(
                    t,
                    Call {
                        outcome,
                        slow: false,
                        timed_out: false,
                    },
                    &mut host,
                );
            }
            assert!(s.is_consistent());
        }
        assert_eq!(record::decode(&record::encode(&s)), Ok(s));
    }
});
