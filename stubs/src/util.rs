//! Small helpers every module leans on: poison-free locks, stable hashing, seeded randomness.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
///
/// Every critical section in this crate only updates counters and maps, so
/// the data stays consistent even after a panic elsewhere; a stub must keep
/// answering rather than cascade one test's panic into every later request.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// FNV-1a over the given parts, with a separator so ("ab","c") ≠ ("a","bc").
///
/// Used instead of `std::hash` because its output may change between Rust
/// releases, and a patient's document count must be stable across runs.
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0x1f)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // A final avalanche so nearby inputs spread over the whole range.
    mix(h)
}

/// SplitMix64 finaliser: turns correlated seeds into independent-looking ones.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A reproducible random stream for one seed.
pub(crate) fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Whole milliseconds from `start` to `t` (0 if `t` is earlier).
pub(crate) fn ms_since(start: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX)
}

/// Seconds to wait, rounded up, never below one (the Retry-After contract).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(59)), 59);
    }

    #[test]
    fn stable_hash_separates_its_parts() {
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
        assert_eq!(stable_hash(&["Ann", "Lee"]), stable_hash(&["Ann", "Lee"]));
    }
}
