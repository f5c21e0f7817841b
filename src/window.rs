//! Sliding windows of recent outcomes for the failure-rate policy.
//!
//! Owns the two fixed-size windows a breaker can judge its failure rate
//! over: [`CountWindow`] (the last N outcomes, N ≤ [`MAX_COUNT_WINDOW`]) and
//! [`TimeWindow`] (outcomes of the last DURATION, kept in
//! [`TIME_BUCKETS`] buckets). Both are plain values of fixed size so that they
//! fit in the on-disk record without growing it; this module does no I/O and
//! knows nothing of the record's layout (see `record`).

/// The largest `--window N` a count-based window accepts.
pub const MAX_COUNT_WINDOW: u32 = 1024;
/// Words of the bit ring behind a count window.
pub const COUNT_WORDS: usize = (MAX_COUNT_WINDOW as usize) / 64;
/// Buckets of a time window: the resolution is 1/20 of the window.
pub const TIME_BUCKETS: usize = 20;

/// Calls and failures seen by a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub calls: u64,
    pub failures: u64,
}

impl Tally {
    /// True when failures/calls ≥ `rate_bp`/10 000 (the rate "at or above" the
    /// threshold trips, as in resilience4j).
    pub fn at_or_above(self, rate_bp: u32) -> bool {
        self.calls > 0
            && u128::from(self.failures) * 10_000 >= u128::from(rate_bp) * u128::from(self.calls)
    }

    /// The failure rate in whole percent, rounded down.
    pub fn percent(self) -> u64 {
        self.failures
            .saturating_mul(100)
            .checked_div(self.calls)
            .unwrap_or(0)
    }
}

/// The last `size` outcomes as a ring of bits (1 = failure).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountWindow {
    pub bits: [u64; COUNT_WORDS],
    /// Index the next outcome is written to.
    pub head: u32,
    /// Outcomes in the window (≤ size).
    pub len: u32,
    /// Failures among them.
    pub failures: u32,
}

impl CountWindow {
    fn bit(&self, i: u32) -> bool {
        let i = i as usize % (MAX_COUNT_WINDOW as usize);
        self.bits[i / 64] >> (i % 64) & 1 == 1
    }

    fn set_bit(&mut self, i: u32, failed: bool) {
        let i = i as usize % (MAX_COUNT_WINDOW as usize);
        let mask = 1u64 << (i % 64);
        if failed {
            self.bits[i / 64] |= mask;
        } else {
            self.bits[i / 64] &= !mask;
        }
    }

    /// Adds one outcome to a window of `size` slots, evicting the oldest when
    /// it is full.
    pub fn push(&mut self, size: u32, failed: bool) {
        let size = size.clamp(1, MAX_COUNT_WINDOW);
        if self.head >= size || self.len > size {
            // The size changed under us: start over rather than mix two windows.
            *self = Self::default();
        }
        if self.len == size {
            if self.bit(self.head) {
                self.failures = self.failures.saturating_sub(1);
            }
        } else {
            self.len += 1;
        }
        self.set_bit(self.head, failed);
        if failed {
            self.failures += 1;
        }
        self.head = (self.head + 1) % size;
    }

    pub fn tally(&self) -> Tally {
        Tally {
            calls: u64::from(self.len),
            failures: u64::from(self.failures),
        }
    }

    /// Whether the fields describe a window of `size` slots whose counts
    /// agree with its bits; used to validate a record read from disk.
    pub fn is_consistent(&self, size: u32) -> bool {
        if size == 0 || size > MAX_COUNT_WINDOW {
            return self.len == 0 && self.failures == 0 && self.head == 0;
        }
        if self.head >= size || self.len > size || self.failures > self.len {
            return false;
        }
        let start = (self.head + size - self.len) % size;
        let counted = (0..self.len)
            .filter(|k| self.bit((start + k) % size))
            .count();
        counted == self.failures as usize
    }
}

/// One bucket of a time window: the outcomes whose time falls in
/// `[epoch * width, (epoch + 1) * width)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub epoch: u64,
    pub successes: u32,
    pub failures: u32,
}

/// Outcomes of the last `span` milliseconds in [`TIME_BUCKETS`] buckets of
/// `span / 20` each. An outcome leaves the window between `span - span/20`
/// and `span` after it happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub buckets: [Bucket; TIME_BUCKETS],
}

impl TimeWindow {
    fn width(span: u64) -> u64 {
        (span / TIME_BUCKETS as u64).max(1)
    }

    fn live(bucket: &Bucket, now_epoch: u64) -> bool {
        // A bucket from the future (the clock went back) does not count: the
        // window can only lose outcomes to a clock step, never invent them.
        bucket.epoch <= now_epoch
            && bucket.epoch.saturating_add(TIME_BUCKETS as u64) > now_epoch
            && (bucket.successes > 0 || bucket.failures > 0)
    }

    pub fn push(&mut self, span: u64, now: u64, failed: bool) {
        let epoch = now / Self::width(span);
        let bucket = &mut self.buckets[(epoch % TIME_BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            *bucket = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        if failed {
            bucket.failures = bucket.failures.saturating_add(1);
        } else {
            bucket.successes = bucket.successes.saturating_add(1);
        }
    }

    pub fn tally(&self, span: u64, now: u64) -> Tally {
        let now_epoch = now / Self::width(span);
        self.buckets
            .iter()
            .filter(|b| Self::live(b, now_epoch))
            .fold(Tally::default(), |t, b| Tally {
                calls: t.calls + u64::from(b.successes) + u64::from(b.failures),
                failures: t.failures + u64::from(b.failures),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_evicts_the_oldest_outcome() {
        let mut w = CountWindow::default();
        for failed in [true, true, false] {
            w.push(3, failed);
        }
        assert_eq!(
            w.tally(),
            Tally {
                calls: 3,
                failures: 2
            }
        );
        w.push(3, false); // evicts the first failure
        assert_eq!(
            w.tally(),
            Tally {
                calls: 3,
                failures: 1
            }
        );
        w.push(3, false);
        w.push(3, false);
        assert_eq!(
            w.tally(),
            Tally {
                calls: 3,
                failures: 0
            }
        );
        assert!(w.is_consistent(3));
    }

    #[test]
    fn count_window_of_the_largest_size_wraps() {
        let mut w = CountWindow::default();
        for i in 0..3000 {
            w.push(MAX_COUNT_WINDOW, i % 4 == 0);
        }
        assert_eq!(w.tally().calls, 1024);
        assert_eq!(w.tally().failures, 256);
        assert!(w.is_consistent(MAX_COUNT_WINDOW));
    }

    #[test]
    fn count_window_restarts_when_its_size_shrinks() {
        let mut w = CountWindow::default();
        for _ in 0..10 {
            w.push(10, true);
        }
        w.push(4, false);
        assert_eq!(
            w.tally(),
            Tally {
                calls: 1,
                failures: 0
            }
        );
    }

    #[test]
    fn inconsistent_count_window_is_detected() {
        let mut w = CountWindow::default();
        w.push(8, true);
        w.failures = 5;
        assert!(!w.is_consistent(8));
    }

    #[test]
    fn time_bucket_expires_between_span_minus_width_and_span() {
        let span = 20_000; // width 1000 ms
        let mut w = TimeWindow::default();
        w.push(span, 5_000, true); // bucket [5000, 6000)
        assert_eq!(w.tally(span, 24_999).failures, 1, "one ms before expiry");
        assert_eq!(w.tally(span, 25_000).failures, 0, "at expiry");
    }

    #[test]
    fn time_window_ignores_buckets_from_the_future() {
        let span = 20_000;
        let mut w = TimeWindow::default();
        w.push(span, 100_000, true);
        assert_eq!(w.tally(span, 50_000), Tally::default());
    }

    #[test]
    fn bucket_epoch_at_the_top_does_not_overflow() {
        // A record written by hand can hold any epoch.
        let mut w = TimeWindow::default();
        w.buckets[3] = Bucket {
            epoch: u64::MAX,
            successes: 1,
            failures: 1,
        };
        // From the future at any real time; at the end of time, it saturates
        // out of the window rather than wrapping into it.
        assert_eq!(w.tally(20_000, 1_764_000_000_000).calls, 0);
        assert_eq!(w.tally(20, u64::MAX).calls, 0);
    }

    #[test]
    fn rate_at_the_threshold_trips() {
        let t = Tally {
            calls: 10,
            failures: 5,
        };
        assert!(t.at_or_above(5_000));
        assert!(!t.at_or_above(5_001));
        assert!(!Tally::default().at_or_above(0));
    }
}
