//! Which version a request goes to. A sticky key is hashed with
//! MurmurHash2 exactly as nginx's `split_clients` does, so an nginx in front
//! of (or instead of) the gateway puts every user in the same bucket; a
//! request without a key gets a uniform random draw.
//!
//! A split gives each version a range of the 32-bit hash space, in order:
//! version i gets `[b(i-1), b(i))` with `b(i) = cumulative basis points ×
//! 0xFFFFFFFF / 10000`, the last version everything left. Growing a share
//! at either end only widens its range, so users already on the canary stay
//! there when it goes from 5% to 25%.

use rollgate_core::weight::Weight;

/// nginx's `ngx_murmur_hash2`: MurmurHash2, 32-bit, seeded with the length.
pub fn murmur_hash2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    // nginx seeds with `0 ^ len` in a 32-bit variable.
    let mut h: u32 = data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// Ranges of the hash space, one per arm (an index the caller chose).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// (arm, exclusive upper bound of its range); the last bound is `None`: the rest.
    arms: Vec<(usize, Option<u32>)>,
}

impl Split {
    /// Arms in order with their weights; arms with no weight get no range.
    pub fn new(weights: &[(usize, Weight)]) -> Split {
        let mut total: u64 = 0;
        let given: Vec<(usize, Weight)> = weights.iter().copied().filter(|(_, w)| *w > Weight::ZERO).collect();
        let last = given.len().saturating_sub(1);
        let arms = given
            .iter()
            .enumerate()
            .map(|(i, (arm, weight))| {
                total += u64::from(weight.basis_points());
                let bound = (i < last).then(|| (total.min(10_000) * 0xFFFF_FFFF / 10_000) as u32);
                (*arm, bound)
            })
            .collect();
        Split { arms }
    }

    /// The arm for a hash value.
    pub fn pick(&self, hash: u32) -> Option<usize> {
        self.arms.iter().find(|(_, bound)| bound.is_none_or(|b| hash < b)).map(|(arm, _)| *arm)
    }

    /// The arm for a sticky key, as nginx would pick it.
    pub fn pick_key(&self, key: &[u8]) -> Option<usize> {
        self.pick(murmur_hash2(key))
    }

    /// The arm for a request without a key.
    pub fn pick_random(&self) -> Option<usize> {
        self.pick(fastrand::u32(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(percent: f64) -> Weight {
        Weight::from_percent(percent).unwrap()
    }

    // Agreement with nginx itself is tested against a real nginx in tests/gateway.rs.
    #[test]
    fn murmur2_is_deterministic_and_mixes_every_tail_length() {
        assert_eq!(murmur_hash2(b""), 0);
        let a = murmur_hash2(b"user-1");
        assert_ne!(a, murmur_hash2(b"user-2"));
        assert_eq!(a, murmur_hash2(b"user-1"), "deterministic");
        // Every tail length (0..=3 bytes past a block) is mixed in.
        let hashes: std::collections::HashSet<u32> = (0..8).map(|n| murmur_hash2(&b"abcdefgh"[..n])).collect();
        assert_eq!(hashes.len(), 8);
    }

    #[test]
    fn growing_the_canary_keeps_its_users() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
        let canary_at = |percent: f64| {
            let split = Split::new(&[(1, w(percent)), (0, w(100.0 - percent))]);
            keys.iter()
                .filter(|k| split.pick_key(k.as_bytes()) == Some(1))
                .cloned()
                .collect::<std::collections::HashSet<_>>()
        };
        let (five, quarter) = (canary_at(5.0), canary_at(25.0));
        assert!(five.is_subset(&quarter));
        // Shares land within statistical bounds (5σ of a binomial).
        let within = |n: usize, p: f64| (n as f64 - p * 20_000.0).abs() < 5.0 * (20_000.0 * p * (1.0 - p)).sqrt();
        assert!(within(five.len(), 0.05), "{}", five.len());
        assert!(within(quarter.len(), 0.25), "{}", quarter.len());
    }

    #[test]
    fn zero_weights_get_nothing_and_full_weight_gets_everything() {
        let split = Split::new(&[(1, Weight::ZERO), (0, Weight::FULL)]);
        assert!((0..1000).all(|_| split.pick_random() == Some(0)));
        assert_eq!(Split::new(&[]).pick(7), None);
    }
}
