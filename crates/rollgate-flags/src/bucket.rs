//! Sticky buckets as Unleash computes them: MurmurHash3 (x86, 32 bits) of
//! `groupId:stickinessValue`, modulo the number of buckets, plus one. The
//! same user lands in the same bucket for a group whatever the percentage,
//! so raising a rollout only adds users.

/// The seed of rollout buckets.
pub const ROLLOUT_SEED: u32 = 0;
/// The seed of variant buckets (a different hash: who is in and which variant they get are independent).
pub const VARIANT_SEED: u32 = 86_028_157;

/// The bucket, 1 to `buckets`, of `id` in `group`.
pub fn normalized(group: &str, id: &str, buckets: u32, seed: u32) -> u32 {
    let key = format!("{group}:{id}");
    let hash = murmur3::murmur3_32(&mut std::io::Cursor::new(key.as_bytes()), seed)
        .unwrap_or_else(|_| unreachable!("reading from memory does not fail"));
    hash % buckets.max(1) + 1
}

/// Whether `id` is among the first `percent` percent of `group`.
pub fn in_rollout(group: &str, id: &str, percent: u32) -> bool {
    percent > 0 && normalized(group, id, 100, ROLLOUT_SEED) <= percent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_murmur3_x86_32() {
        // The published vector: MurmurHash3_x86_32("hello", seed 0) = 0x248bfa47.
        let hash = murmur3::murmur3_32(&mut std::io::Cursor::new(b"hello"), 0).unwrap();
        assert_eq!(hash, 0x248b_fa47);
    }

    #[test]
    fn buckets_match_unleash() {
        // From the Unleash client specification: userId 174 is in a 10% rollout of
        // Feature.flexibleRollout.10, userId 499 is not.
        assert!(in_rollout("Feature.flexibleRollout.10", "174", 10));
        assert!(!in_rollout("Feature.flexibleRollout.10", "499", 10));
        assert!(!in_rollout("g", "anyone", 0));
        assert!((1..=1000).all(|i| normalized("g", &i.to_string(), 100, ROLLOUT_SEED) <= 100));
    }
}
