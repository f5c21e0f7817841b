//! Small helpers with no home of their own and no dependencies inside the
//! crate: anything may use them, they use nothing of cbreak's.

/// 64-bit FNV-1a: small, and its output is fixed by its definition (unlike
/// std's `DefaultHasher`), so names derived from it are stable everywhere.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// xorshift64*, the crate's one random generator: spread (jitter, retry
/// pauses, the versions of a shared store's writes), not secrecy.
#[derive(Clone, Copy, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the time in nanoseconds, the pid and a
    /// per-process counter, so that two generators (even of one process's
    /// threads, made in the same nanosecond) never start alike.
    pub fn seeded() -> Rng {
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed = fnv1a(
            &[
                nanos.to_le_bytes(),
                u64::from(std::process::id()).to_le_bytes(),
                n.to_le_bytes(),
            ]
            .concat(),
        );
        // xorshift never leaves 0.
        Rng(seed | 1)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_made_together_differ_and_move_on() {
        let (mut a, mut b) = (Rng::seeded(), Rng::seeded());
        let (x, y) = (a.next(), b.next());
        assert_ne!(x, y);
        assert_ne!(a.next(), x);
    }

    #[test]
    fn fnv1a_matches_its_definition() {
        // The published test vectors of 64-bit FNV-1a.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
