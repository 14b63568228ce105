//! Seeded randomness: the same seed gives the same document on every machine and release.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A reproducible random stream for one seed (ChaCha, value-stable across releases, unlike StdRng).
pub(crate) fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// SplitMix64 finaliser: turns correlated seeds into independent-looking ones.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
