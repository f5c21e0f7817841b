//! A record's body: [`BreakerState`] to words and back, checksums, the
//! choice of the newest whole copy. No I/O: the file, its header, mapping
//! and locking are `record`'s (the body's words are tabled there). A store
//! that keeps states elsewhere keeps these same words.

use crate::breaker::history::{History, Recent};
use crate::breaker::{
    Backoff, BreakerState, CodeSet, Counters, Mode, Owner, Policy, ProbeSlot, State, Window,
};
use crate::window::{Bucket, COUNT_WORDS, CountWindow, TIME_BUCKETS, TimeWindow};

/// Words of a body that this version reads, writes and checksums; the rest
/// of each body is reserved for later versions.
pub const USED_WORDS: usize = 256;
/// The body word that holds the sequence number of the store that wrote
/// the body (covered by the checksum).
pub const B_SEQUENCE: usize = USED_WORDS - 2;

/// The state in the newest whole copy: the active one, unless the other
/// is whole and newer (a store whose switch of copies was lost).
pub(super) fn newest(
    active: &[u64; USED_WORDS],
    other: &[u64; USED_WORDS],
) -> Result<BreakerState, String> {
    let order =
        if is_sealed(other) && (!is_sealed(active) || other[B_SEQUENCE] > active[B_SEQUENCE]) {
            [other, active]
        } else {
            [active, other]
        };
    let mut first_error = None;
    for body in order {
        match decode(body) {
            Ok(state) => return Ok(state),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_default())
}

/// Fletcher's two running sums over a body's words 1..255 (catches damage,
/// not malice), in four interleaved lanes so that the additions do not wait
/// on each other, folded at the end. Stored apart, in words 0 and 255: any
/// one changed word changes the first sum (every step is a bijection of its
/// lane), a swap of two words the second. Additions only: a multiply per
/// word would cost more than the rest of a store.
pub fn checksum(words: &[u64]) -> (u64, u64) {
    let mut a = [
        0x243f_6a88_85a3_08d3u64,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ];
    let mut b = [
        0x4528_21e6_38d0_1377u64,
        0xbe54_66cf_34e9_0c6c,
        0xc0ac_29b7_c97c_50dd,
        0x3f84_d5b5_b547_0917,
    ];
    let chunks = words.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        for i in 0..4 {
            a[i] = a[i].wrapping_add(chunk[i]);
            b[i] = b[i].wrapping_add(a[i]);
        }
    }
    for (i, &w) in tail.iter().enumerate() {
        a[i] = a[i].wrapping_add(w);
        b[i] = b[i].wrapping_add(a[i]);
    }
    let fold = |lanes: [u64; 4]| {
        lanes.iter().enumerate().fold(0u64, |h, (i, &l)| {
            h.wrapping_add(l.rotate_left(16 * i as u32))
        })
    };
    (fold(a), fold(b))
}

/// Writes the checksum into a body (words 0 and 255).
pub fn seal(words: &mut [u64; USED_WORDS]) {
    (words[0], words[USED_WORDS - 1]) = checksum(&words[1..USED_WORDS - 1]);
}

pub(super) fn is_sealed(words: &[u64; USED_WORDS]) -> bool {
    checksum(&words[1..USED_WORDS - 1]) == (words[0], words[USED_WORDS - 1])
}

struct Writer<'a> {
    slots: std::slice::IterMut<'a, u64>,
}

impl Writer<'_> {
    fn put(&mut self, w: u64) {
        if let Some(slot) = self.slots.next() {
            *slot = w;
        }
    }
}

struct Reader<'a> {
    words: std::slice::Iter<'a, u64>,
}

impl Reader<'_> {
    fn get(&mut self) -> u64 {
        self.words.next().copied().unwrap_or(0)
    }

    fn get_u32(&mut self, what: &str) -> Result<u32, String> {
        let w = self.get();
        u32::try_from(w).map_err(|_| format!("{what} out of range: {w}"))
    }

    fn get_state(&mut self) -> Result<State, String> {
        let w = self.get();
        State::from_index(w).ok_or_else(|| format!("unknown state {w}"))
    }
}

/// The body's words for `s`, checksum included.
pub fn encode(s: &BreakerState) -> [u64; USED_WORDS] {
    let mut words = [0; USED_WORDS];
    let mut w = Writer {
        slots: words[1..USED_WORDS - 1].iter_mut(),
    };
    w.put(s.state.index() as u64);
    w.put(match s.mode {
        Mode::Normal => 0,
        Mode::Disabled => 1,
    });
    w.put(s.generation);
    w.put(s.consecutive_failures);
    w.put(s.opened_at);
    w.put(s.next_probe_at);
    w.put(s.recovery);
    w.put(s.reopens);
    let slot = s.probe.unwrap_or_default();
    // 0 free, 1 held, 2 held by an owner that holds the probe lock.
    w.put(match s.probe {
        None => 0,
        Some(slot) => 1 + u64::from(slot.owner.kernel_lock),
    });
    w.put(u64::from(slot.owner.pid));
    w.put(slot.owner.start_time);
    w.put(slot.owner.boot_id);
    w.put(slot.lease_until);
    w.put(s.probe_successes);
    let c = &s.counters;
    for v in [
        c.calls,
        c.successes,
        c.failures,
        c.ignored,
        c.cancelled,
        c.rejected,
        c.slow,
        c.timeouts,
    ] {
        w.put(v);
    }
    for v in s.transitions {
        w.put(v);
    }
    w.put(s.created_at);
    w.put(s.updated_at);
    let p = &s.policy;
    w.put(u64::from(p.threshold));
    w.put(p.recovery);
    w.put(u64::from(p.failure_rate.unwrap_or(0)));
    let (kind, size) = match p.window {
        Window::None => (0, 0),
        Window::Count(n) => (1, u64::from(n)),
        Window::Time(ms) => (2, ms),
    };
    w.put(kind);
    w.put(size);
    w.put(u64::from(p.min_calls));
    w.put(p.slow.unwrap_or(0));
    w.put(p.timeout.unwrap_or(0));
    w.put(p.kill_after);
    for v in p.success_codes.0.into_iter().chain(p.ignore_codes.0) {
        w.put(v);
    }
    w.put(match p.backoff {
        Backoff::Constant => 0,
        Backoff::Exponential => 1,
    });
    w.put(u64::from(p.backoff_factor_milli));
    w.put(p.max_recovery);
    w.put(u64::from(p.jitter_percent));
    w.put(u64::from(p.probes));
    for v in s.count_window.bits {
        w.put(v);
    }
    w.put(u64::from(s.count_window.head));
    w.put(u64::from(s.count_window.len));
    w.put(u64::from(s.count_window.failures));
    for b in s.time_window.buckets {
        w.put(b.epoch);
        w.put(u64::from(b.successes) << 32 | u64::from(b.failures));
    }
    w.put(s.recent.bits);
    w.put(u64::from(s.recent.len));
    w.put(u64::from(s.history.head));
    w.put(u64::from(s.history.len));
    for e in &s.history.entries {
        for &word in e {
            w.put(word);
        }
    }
    // Words 242–243, added within version 1: they were reserved and zero,
    // so an older record reads as "never", and an older cbreak, which
    // reads no further than word 241, ignores them.
    w.put(s.last_success_at);
    w.put(s.last_failure_at);
    seal(&mut words);
    words
}

/// The state in a body's words, or what is wrong with them.
pub fn decode(words: &[u64; USED_WORDS]) -> Result<BreakerState, String> {
    if !is_sealed(words) {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader {
        words: words[1..USED_WORDS - 1].iter(),
    };
    let mut s = BreakerState {
        state: r.get_state()?,
        mode: match r.get() {
            0 => Mode::Normal,
            1 => Mode::Disabled,
            m => return Err(format!("unknown mode {m}")),
        },
        generation: r.get(),
        consecutive_failures: r.get(),
        opened_at: r.get(),
        next_probe_at: r.get(),
        recovery: r.get(),
        reopens: r.get(),
        ..BreakerState::default()
    };
    let held = r.get();
    let slot = ProbeSlot {
        owner: Owner {
            pid: r.get_u32("probe pid")?,
            start_time: r.get(),
            boot_id: r.get(),
            kernel_lock: held == 2,
        },
        lease_until: r.get(),
    };
    s.probe = match held {
        0 => None,
        1 | 2 => Some(slot),
        h => return Err(format!("probe flag {h}")),
    };
    s.probe_successes = r.get();
    s.counters = Counters {
        calls: r.get(),
        successes: r.get(),
        failures: r.get(),
        ignored: r.get(),
        cancelled: r.get(),
        rejected: r.get(),
        slow: r.get(),
        timeouts: r.get(),
    };
    for t in &mut s.transitions {
        *t = r.get();
    }
    s.created_at = r.get();
    s.updated_at = r.get();
    let mut p = Policy {
        threshold: r.get_u32("threshold")?,
        recovery: r.get(),
        failure_rate: match r.get_u32("failure rate")? {
            0 => None,
            bp @ 1..=10_000 => Some(bp),
            bp => return Err(format!("failure rate {bp} basis points")),
        },
        ..Policy::default()
    };
    let (kind, size) = (r.get(), r.get());
    p.window = match kind {
        0 => Window::None,
        1 => match u32::try_from(size) {
            Ok(n @ 1..=crate::window::MAX_COUNT_WINDOW) => Window::Count(n),
            _ => return Err(format!("count window of {size}")),
        },
        2 if size > 0 => Window::Time(size),
        _ => return Err(format!("window kind {kind} of {size}")),
    };
    p.min_calls = r.get_u32("min calls")?;
    p.slow = Some(r.get()).filter(|&ms| ms > 0);
    p.timeout = Some(r.get()).filter(|&ms| ms > 0);
    p.kill_after = r.get();
    let mut codes = [[0u64; 4]; 2];
    for set in &mut codes {
        for w in set.iter_mut() {
            *w = r.get();
        }
    }
    p.success_codes = CodeSet(codes[0]);
    p.ignore_codes = CodeSet(codes[1]);
    p.backoff = match r.get() {
        0 => Backoff::Constant,
        1 => Backoff::Exponential,
        b => return Err(format!("unknown backoff {b}")),
    };
    p.backoff_factor_milli = r.get_u32("backoff factor")?;
    p.max_recovery = r.get();
    p.jitter_percent = r.get_u32("jitter")?;
    p.probes = r.get_u32("probes")?;
    s.policy = p;
    let mut cw = CountWindow::default();
    for w in cw.bits.iter_mut().take(COUNT_WORDS) {
        *w = r.get();
    }
    cw.head = r.get_u32("window head")?;
    cw.len = r.get_u32("window length")?;
    cw.failures = r.get_u32("window failures")?;
    s.count_window = cw;
    let mut tw = TimeWindow::default();
    for b in tw.buckets.iter_mut().take(TIME_BUCKETS) {
        let epoch = r.get();
        let counts = r.get();
        *b = Bucket {
            epoch,
            successes: (counts >> 32) as u32,
            failures: counts as u32,
        };
    }
    s.time_window = tw;
    s.recent = Recent {
        bits: r.get(),
        len: r.get_u32("recent length")?,
    };
    let mut h = History {
        head: r.get_u32("history head")?,
        len: r.get_u32("history length")?,
        ..History::default()
    };
    for e in h.entries.iter_mut() {
        for word in e.iter_mut() {
            *word = r.get();
        }
    }
    s.history = h;
    s.last_success_at = r.get();
    s.last_failure_at = r.get();
    if !s.is_consistent() {
        return Err("state breaks the breaker's invariants".into());
    }
    Ok(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::breaker::tests::FakeHost;
    use crate::breaker::{Admission, Call, Outcome};

    /// A state with every part in use, for the codec's and the file's tests.
    pub(crate) fn busy_state() -> BreakerState {
        let p = Policy {
            threshold: 3,
            recovery: 2_000,
            failure_rate: Some(4_000),
            window: Window::Count(16),
            min_calls: 2,
            slow: Some(250),
            timeout: Some(900),
            backoff: Backoff::Exponential,
            jitter_percent: 10,
            probes: 2,
            ..Policy::default()
        };
        let mut h = FakeHost::at(1_700_000_000_000);
        let mut s = BreakerState::new(h.now, 7, p);
        for i in 0..40u64 {
            h.now += 700;
            if let (Admission::Run(t), _) = s.admit(&p, &mut h) {
                let outcome = if i % 3 == 0 {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
                s.record(
                    t,
                    Call {
                        outcome,
                        slow: i % 5 == 0,
                        timed_out: false,
                    },
                    &mut h,
                );
            }
        }
        s
    }

    #[test]
    fn encode_decode_round_trips() {
        let s = busy_state();
        assert!(s.history.len > 2, "the sample exercises the history");
        assert_eq!(decode(&encode(&s)), Ok(s));
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let words = encode(&busy_state());
        for i in [0, 1, 5, 17, 60, 115, 241, 250, USED_WORDS - 1] {
            let mut bad = words;
            bad[i] ^= 1 << (i % 64);
            assert!(decode(&bad).is_err(), "word {i}");
        }
    }

    #[test]
    fn valid_checksum_over_impossible_state_is_rejected() {
        let mut words = encode(&busy_state());
        words[1] = 9; // no such state
        seal(&mut words);
        assert_eq!(decode(&words), Err("unknown state 9".to_string()));
        let mut words = encode(&busy_state());
        words[15] += 1; // calls no longer the sum of the outcomes
        seal(&mut words);
        assert!(decode(&words).is_err());
    }
}
