//! Latency recording and the printed report.

use std::collections::BTreeMap;
use std::time::Duration;

/// Latencies per operation name, in microseconds, plus error counts.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    ops: BTreeMap<&'static str, Vec<u64>>,
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn record(&mut self, op: &'static str, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.ops.entry(op).or_default().push(us);
    }

    pub fn error(&mut self, what: impl Into<String>) {
        let mut what: String = what.into();
        // Keep the table readable: one line per kind of failure.
        what.truncate(160);
        *self.errors.entry(what).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        for (op, mut v) in other.ops {
            self.ops.entry(op).or_default().append(&mut v);
        }
        for (e, n) in other.errors {
            *self.errors.entry(e).or_default() += n;
        }
    }

    pub fn count(&self, op: &str) -> usize {
        self.ops.get(op).map_or(0, Vec::len)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// (p50, p99, max) of one operation, in milliseconds.
    pub fn percentiles(&self, op: &str) -> Option<(f64, f64, f64)> {
        let mut v = self.ops.get(op)?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: f64| {
            // Nearest-rank percentile.
            let rank = (q * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1] as f64 / 1000.0
        };
        Some((at(0.50), at(0.99), *v.last().unwrap_or(&0) as f64 / 1000.0))
    }

    pub fn print(&self) {
        println!(
            "{:<22} {:>8} {:>10} {:>10} {:>10}",
            "operation", "count", "p50 ms", "p99 ms", "max ms"
        );
        for op in self.ops.keys() {
            if let Some((p50, p99, max)) = self.percentiles(op) {
                println!(
                    "{:<22} {:>8} {:>10.2} {:>10.2} {:>10.2}",
                    op,
                    self.count(op),
                    p50,
                    p99,
                    max
                );
            }
        }
        if !self.errors.is_empty() {
            println!("errors:");
            for (e, n) in &self.errors {
                println!("  {n:>6} x {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut r = Recorder::default();
        for ms in 1..=100 {
            r.record("x", Duration::from_millis(ms));
        }
        let (p50, p99, max) = r.percentiles("x").unwrap();
        assert_eq!((p50, p99, max), (50.0, 99.0, 100.0));
        assert!(r.percentiles("y").is_none());
    }

    #[test]
    fn merge_adds_samples_and_errors() {
        let mut a = Recorder::default();
        a.record("x", Duration::from_millis(1));
        a.error("boom");
        let mut b = Recorder::default();
        b.record("x", Duration::from_millis(2));
        b.error("boom");
        a.merge(b);
        assert_eq!(a.count("x"), 2);
        assert_eq!(a.error_count(), 2);
    }
}
