//! What a breaker did recently: the last 64 outcomes and the last 32
//! transitions.
//!
//! Both are fixed-size rings so that they live in the record without growing
//! it. This module owns the rings and their arithmetic only; what a
//! transition *is* belongs to `breaker`, and how the rings are laid out on
//! disk to `record`.

use super::{Reason, State, Transition};

/// Transitions kept in the ring.
pub const HISTORY_LEN: usize = 32;

/// The last up-to-64 success/failure outcomes as bits, newest in bit 0
/// (1 = failure).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recent {
    pub bits: u64,
    pub len: u32,
}

impl Recent {
    pub fn push(&mut self, failed: bool) {
        self.bits = self.bits << 1 | u64::from(failed);
        self.len = (self.len + 1).min(64);
    }

    /// Oldest first: `true` for a failure.
    pub fn oldest_first(&self) -> Vec<bool> {
        (0..self.len.min(64))
            .rev()
            .map(|i| self.bits >> i & 1 == 1)
            .collect()
    }
}

/// Words of one packed transition.
pub const ENTRY_WORDS: usize = 4;

/// A ring of the last [`HISTORY_LEN`] transitions, kept packed as the
/// record stores them (at, from | to << 8 | reason << 16, reason argument,
/// consecutive failures), so that reading and writing a record copies them
/// instead of decoding them; only showing them decodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub entries: [[u64; ENTRY_WORDS]; HISTORY_LEN],
    /// Index the next transition is written to.
    pub head: u32,
    pub len: u32,
}

/// One transition as the record stores it.
pub fn pack(t: &Transition) -> [u64; ENTRY_WORDS] {
    let (code, arg) = t.reason.encode();
    [
        t.at,
        t.from.index() as u64 | (t.to.index() as u64) << 8 | code << 16,
        arg,
        t.consecutive_failures,
    ]
}

/// The transition in a packed entry; `None` for words that are not one.
pub fn unpack(e: &[u64; ENTRY_WORDS]) -> Option<Transition> {
    let [at, packed, arg, consecutive_failures] = *e;
    Some(Transition {
        at,
        from: State::from_index(packed & 0xff)?,
        to: State::from_index(packed >> 8 & 0xff)?,
        reason: Reason::decode(packed >> 16, arg)?,
        consecutive_failures,
    })
}

impl History {
    pub fn push(&mut self, t: Transition) {
        let head = self.head as usize % HISTORY_LEN;
        self.entries[head] = pack(&t);
        self.head = ((head + 1) % HISTORY_LEN) as u32;
        self.len = (self.len + 1).min(HISTORY_LEN as u32);
    }

    /// Oldest first. An entry that does not decode (a record written by
    /// hand) is left out rather than shown wrong.
    pub fn oldest_first(&self) -> Vec<Transition> {
        let len = self.len.min(HISTORY_LEN as u32) as usize;
        let head = self.head as usize % HISTORY_LEN;
        (0..len)
            .filter_map(|k| unpack(&self.entries[(head + HISTORY_LEN - len + k) % HISTORY_LEN]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keeps_the_last_64_oldest_first() {
        let mut r = Recent::default();
        for i in 0..70 {
            r.push(i % 3 == 0);
        }
        let v = r.oldest_first();
        assert_eq!(v.len(), 64);
        // The newest is i = 69 (69 % 3 == 0 → failure), the oldest kept i = 6.
        assert!(v[63]);
        assert!(v[0]);
        assert!(!v[1]);
    }

    #[test]
    fn history_ring_wraps_after_32_transitions() {
        let mut h = History::default();
        for i in 0..40u64 {
            h.push(Transition {
                at: i,
                from: State::Closed,
                to: State::Open,
                reason: Reason::Tripped,
                consecutive_failures: 0,
            });
        }
        let v = h.oldest_first();
        assert_eq!(v.len(), HISTORY_LEN);
        assert_eq!(v.first().unwrap().at, 8);
        assert_eq!(v.last().unwrap().at, 39);
    }

    #[test]
    fn entries_round_trip_and_garbage_is_left_out() {
        let t = Transition {
            at: 5,
            from: State::HalfOpen,
            to: State::Open,
            reason: Reason::FailureRate {
                percent: 62,
                calls: 20,
            },
            consecutive_failures: 3,
        };
        assert_eq!(unpack(&pack(&t)), Some(t));
        let mut h = History::default();
        h.push(t);
        h.entries[0][1] = 0xff; // no such state
        assert!(h.oldest_first().is_empty());
    }
}
