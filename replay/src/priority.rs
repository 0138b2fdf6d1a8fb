//! Prioritized replay's sum tree (Schaul et al. 2016, proportional variant):
//! each stored transition has a priority `p`; sampling picks transition `i`
//! with probability `p_i / sum(p)` in O(log n), and a priority changes in
//! O(log n).

use rand_core::RngCore;
use rand_pcg::Pcg32;

/// A complete binary tree over `capacity` leaves (rounded up to a power of
/// two); every inner node holds the sum of its children.
#[derive(Clone, Debug)]
pub struct SumTree {
    leaves: usize,
    nodes: Vec<f64>,
    max_priority: f64,
}

impl SumTree {
    /// A tree of `capacity` leaves, all of priority 0 (never sampled).
    pub fn new(capacity: usize) -> SumTree {
        let leaves = capacity.max(1).next_power_of_two();
        SumTree {
            leaves,
            nodes: vec![0.0; 2 * leaves],
            max_priority: 1.0,
        }
    }

    /// Number of leaves the tree was asked for, rounded up to a power of two.
    pub fn leaves(&self) -> usize {
        self.leaves
    }

    /// Sum of all priorities.
    pub fn total(&self) -> f64 {
        self.nodes[1]
    }

    /// The priority of leaf `i`.
    pub fn get(&self, i: usize) -> f64 {
        self.nodes[self.leaves + i]
    }

    /// The largest priority ever set (new transitions get it, so each is
    /// sampled at least about once before its error is known).
    pub fn max_priority(&self) -> f64 {
        self.max_priority
    }

    /// Sets leaf `i` to `p` (negative or non-finite values count as 0).
    pub fn set(&mut self, i: usize, p: f64) {
        let p = if p.is_finite() && p > 0.0 { p } else { 0.0 };
        self.max_priority = self.max_priority.max(p);
        let mut n = self.leaves + i;
        self.nodes[n] = p;
        while n > 1 {
            n /= 2;
            self.nodes[n] = self.nodes[2 * n] + self.nodes[2 * n + 1];
        }
    }

    /// The leaf where the running sum of priorities passes `mass`
    /// (`0 <= mass < total`), skipping zero-priority leaves.
    pub fn find(&self, mut mass: f64) -> usize {
        let mut n = 1;
        while n < self.leaves {
            let left = self.nodes[2 * n];
            if mass < left || self.nodes[2 * n + 1] <= 0.0 {
                n *= 2;
            } else {
                mass -= left;
                n = 2 * n + 1;
            }
        }
        n - self.leaves
    }

    /// One leaf drawn with probability proportional to its priority, from the
    /// `k`-th of `of` equal slices of the total mass (stratified sampling).
    pub fn sample_stratum(&self, rng: &mut Pcg32, k: usize, of: usize) -> usize {
        let slice = self.total() / of.max(1) as f64;
        let u = (rng.next_u32() >> 8) as f64 / (1u32 << 24) as f64;
        let mass = ((k as f64 + u) * slice).min(self.total() * (1.0 - 1e-12));
        self.find(mass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn sums_and_lookups() {
        let mut t = SumTree::new(5);
        assert_eq!(t.leaves(), 8);
        for (i, p) in [1.0, 0.0, 3.0, 2.0, 4.0].into_iter().enumerate() {
            t.set(i, p);
        }
        assert_eq!(t.total(), 10.0);
        assert_eq!(t.find(0.0), 0);
        assert_eq!(t.find(0.99), 0);
        assert_eq!(t.find(1.0), 2, "a zero-priority leaf is never found");
        assert_eq!(t.find(3.99), 2);
        assert_eq!(t.find(4.0), 3);
        assert_eq!(t.find(9.99), 4);
        t.set(2, 0.5);
        assert_eq!(t.total(), 7.5);
        assert_eq!(t.max_priority(), 4.0);
        t.set(1, f64::NAN);
        assert_eq!(t.get(1), 0.0);
    }

    #[test]
    fn sampling_follows_the_priorities() {
        let mut t = SumTree::new(4);
        let p = [1.0, 2.0, 3.0, 4.0];
        for (i, &v) in p.iter().enumerate() {
            t.set(i, v);
        }
        let mut rng = Pcg32::seed_from_u64(1);
        let mut counts = [0usize; 4];
        let draws = 40_000;
        for d in 0..draws {
            counts[t.sample_stratum(&mut rng, d % 8, 8)] += 1;
        }
        for i in 0..4 {
            let want = p[i] / 10.0;
            let got = counts[i] as f64 / draws as f64;
            assert!((got - want).abs() < 0.01, "leaf {i}: {got} vs {want}");
        }
    }
}
