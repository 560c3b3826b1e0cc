//! One sample from several: replicas each send the latencies their gateway
//! sampled (all of them, or a uniform sample when there were many), and the
//! judge needs one uniform sample of all their requests together. Simply
//! concatenating would over-weight the replica that kept everything; each
//! part is thinned to the sparsest part's sampling rate instead.

use crate::rng::XorShift;

/// A uniform sample of the union of `parts` (each values, and the size of
/// the population they are a uniform sample of), and the union's size.
pub fn pool(parts: &[(&[u32], u64)]) -> (Vec<u32>, u64) {
    let population: u64 = parts.iter().map(|(_, n)| n).sum();
    let complete = parts.iter().all(|(values, n)| values.len() as u64 == *n);
    if complete {
        return (parts.iter().flat_map(|(values, _)| values.iter().copied()).collect(), population);
    }
    // The sparsest rate: every part keeps that share of its population.
    let rate =
        parts.iter().filter(|(_, n)| *n > 0).map(|(values, n)| values.len() as f64 / *n as f64).fold(1.0_f64, f64::min);
    let mut rng = XorShift::default();
    let mut pooled = Vec::new();
    for (values, n) in parts {
        let keep = ((*n as f64 * rate).round() as usize).min(values.len());
        pooled.extend(choose(values, keep, &mut rng));
    }
    (pooled, population)
}

/// `k` of `values` chosen uniformly (a partial Fisher-Yates shuffle).
fn choose(values: &[u32], k: usize, rng: &mut XorShift) -> Vec<u32> {
    let mut copy = values.to_vec();
    for i in 0..k {
        let j = i + usize::try_from(rng.below((copy.len() - i) as u64)).unwrap_or(0);
        copy.swap(i, j);
    }
    copy.truncate(k);
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_parts_are_joined_whole() {
        let (a, b) = ([1, 2, 3], [4, 5]);
        let (values, population) = pool(&[(&a, 3), (&b, 2)]);
        assert_eq!(values, vec![1, 2, 3, 4, 5]);
        assert_eq!(population, 5);
    }

    #[test]
    fn a_sampled_part_sets_the_rate_for_all() {
        // Replica A saw 10,000 requests and kept 1,000 (10%); replica B kept all of its 1,000.
        let a = vec![7u32; 1000];
        let b: Vec<u32> = (1000..2000).collect();
        let (values, population) = pool(&[(&a, 10_000), (&b, 1000)]);
        assert_eq!(population, 11_000);
        // A keeps its 1,000, B is thinned to 10%: B is a 1/11 share of the pool, as of the requests.
        assert_eq!(values.len(), 1100);
        assert_eq!(values.iter().filter(|&&v| v == 7).count(), 1000);
        let from_b: Vec<u32> = values.iter().copied().filter(|&v| v != 7).collect();
        assert_eq!(from_b.len(), 100);
        // Drawn across B's whole range, not its first values.
        assert!(from_b.iter().any(|&v| v >= 1500), "{from_b:?}");
        let mut distinct = from_b.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 100, "drawn without replacement");
    }

    #[test]
    fn empty_parts_change_nothing() {
        let a = [5u32, 6];
        let (values, population) = pool(&[(&[], 0), (&a, 2)]);
        assert_eq!((values, population), (vec![5, 6], 2));
        assert_eq!(pool(&[]), (Vec::new(), 0));
    }
}
