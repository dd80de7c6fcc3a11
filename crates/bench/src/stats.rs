//! Median and p95 of repeated measurements (nearest rank, no interpolation: every figure
//! reported is one that was measured).

use serde_json::{Value, json};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Samples {
    values: Vec<f64>,
}

impl Samples {
    pub fn push(&mut self, value: f64) {
        self.values.push(value);
    }

    pub fn push_ms(&mut self, duration: Duration) {
        self.values.push(duration.as_secs_f64() * 1000.0);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        sorted
    }

    /// The value at `percentile` (0-100) by nearest rank.
    pub fn percentile(&self, percentile: f64) -> f64 {
        let sorted = self.sorted();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((percentile / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
        sorted[rank.min(sorted.len()) - 1]
    }

    pub fn median(&self) -> f64 {
        self.percentile(50.0)
    }

    pub fn p95(&self) -> f64 {
        self.percentile(95.0)
    }

    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }

    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    pub fn to_json(&self) -> Value {
        json!({"n": self.len(), "median": round(self.median()), "p95": round(self.p95()), "min": round(self.min()), "max": round(self.max())})
    }

    /// `12.3 / 15.0` (median / p95), one decimal.
    pub fn median_p95(&self) -> String {
        if self.is_empty() {
            return "-".into();
        }
        format!("{:.1} / {:.1}", self.median(), self.p95())
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples = Samples::default();
        for v in (1..=20).rev() {
            samples.push(v as f64);
        }
        assert_eq!(samples.median(), 10.0);
        assert_eq!(samples.p95(), 19.0);
        assert_eq!(samples.max(), 20.0);
        let mut one = Samples::default();
        one.push(7.0);
        assert_eq!((one.median(), one.p95()), (7.0, 7.0));
        assert!(Samples::default().median().is_nan());
    }
}
