//! Counters and histograms the engine keeps about itself, for the service's metrics endpoint.
//! Lock-free: atomics only, updated on the append path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A histogram with fixed upper bounds (Prometheus style: each bucket counts values `<= bound`).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths, to stay in integers.
    sum_micro: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        if let Some(at) = self.bounds.iter().position(|bound| value <= *bound) {
            self.buckets[at].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro.fetch_add((value.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    /// `(bound, cumulative count)` per bucket, then the total count and sum.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        (buckets, self.count.load(Ordering::Relaxed), self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6)
    }
}

/// What the engine measures.
#[derive(Debug)]
pub struct EngineStats {
    /// Events newly stored.
    pub events_stored: AtomicU64,
    /// Group commits that succeeded / failed.
    pub commits: AtomicU64,
    pub commit_failures: AtomicU64,
    /// Events per group commit.
    pub batch_size: Histogram,
    /// Seconds from submission to acknowledgement.
    pub ack_latency: Histogram,
    /// When the last group commit succeeded (microseconds since the epoch; 0 = never).
    pub last_commit_micros: AtomicI64,
    /// Events this node put in a shared store's inbox for another node to sequence.
    pub forwarded: AtomicU64,
    /// Inbox requests of other nodes this node sequenced.
    pub inbox_requests: AtomicU64,
    /// Times this node took a tenant's lease (became its leader).
    pub lease_takeovers: AtomicU64,
}

const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];
const LATENCY_BOUNDS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

impl Default for EngineStats {
    fn default() -> EngineStats {
        EngineStats {
            events_stored: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            batch_size: Histogram::new(BATCH_BOUNDS),
            ack_latency: Histogram::new(LATENCY_BOUNDS),
            last_commit_micros: AtomicI64::new(0),
            forwarded: AtomicU64::new(0),
            inbox_requests: AtomicU64::new(0),
            lease_takeovers: AtomicU64::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::new(&[1.0, 10.0]);
        for value in [0.5, 1.0, 3.0, 20.0] {
            histogram.observe(value);
        }
        let (buckets, count, sum) = histogram.snapshot();
        assert_eq!(buckets, vec![(1.0, 2), (10.0, 3)]);
        assert_eq!(count, 4);
        assert!((sum - 24.5).abs() < 1e-9);
    }
}
