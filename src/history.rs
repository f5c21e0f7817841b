//! What a breaker did recently: the last 64 outcomes and the last 32
//! transitions.
//!
//! Both are fixed-size rings so that they live in the record without growing
//! it. This module owns the rings and their arithmetic only; what a
//! transition *is* belongs to `breaker`, and how the rings are laid out on
//! disk to `record`.

use crate::breaker::Transition;

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

/// A ring of the last [`HISTORY_LEN`] transitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub entries: [Transition; HISTORY_LEN],
    /// Index the next transition is written to.
    pub head: u32,
    pub len: u32,
}

impl History {
    pub fn push(&mut self, t: Transition) {
        let head = self.head as usize % HISTORY_LEN;
        self.entries[head] = t;
        self.head = ((head + 1) % HISTORY_LEN) as u32;
        self.len = (self.len + 1).min(HISTORY_LEN as u32);
    }

    /// Oldest first.
    pub fn oldest_first(&self) -> Vec<Transition> {
        let len = self.len.min(HISTORY_LEN as u32) as usize;
        let head = self.head as usize % HISTORY_LEN;
        (0..len)
            .map(|k| self.entries[(head + HISTORY_LEN - len + k) % HISTORY_LEN])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::{Reason, State};

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
}
