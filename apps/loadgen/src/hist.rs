//! Latency histograms (HDR, microseconds), their exchange between processes as JSON, and
//! their summaries.

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Highest value recorded: 120 s in microseconds (larger values are clamped).
const HIGHEST_US: u64 = 120_000_000;

/// A latency histogram in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        // Constant, valid bounds: this cannot fail (and an auto-resizing one is the fallback).
        match Histogram::new_with_bounds(1, HIGHEST_US, 3).or_else(|_| Histogram::new(3)) {
            Ok(histogram) => Self(histogram),
            Err(_) => std::process::abort(),
        }
    }

    /// Records one value in microseconds.
    pub fn record_us(&mut self, micros: u64) {
        let _ = self.0.record(micros.clamp(1, HIGHEST_US));
    }

    /// Records one duration.
    pub fn record(&mut self, elapsed: std::time::Duration) {
        self.record_us(u64::try_from(elapsed.as_micros()).unwrap_or(HIGHEST_US));
    }

    /// How many values.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// Adds another histogram's values.
    pub fn merge(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }

    /// A value at quantile `q` in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// The largest value in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.0.max() as f64 / 1000.0
    }

    /// As JSON for another process: `[[value, count], ...]`.
    pub fn to_json(&self) -> Value {
        let pairs: Vec<Value> = self
            .0
            .iter_recorded()
            .map(|step| json!([step.value_iterated_to(), step.count_at_value()]))
            .collect();
        Value::Array(pairs)
    }

    /// From [`Latency::to_json`].
    pub fn from_json(value: &Value) -> anyhow::Result<Self> {
        let mut latency = Self::new();
        for pair in value.as_array().context("histogram is not an array")? {
            let value = pair[0].as_u64().context("histogram value")?;
            let count = pair[1].as_u64().context("histogram count")?;
            let _ = latency.0.record_n(value.clamp(1, HIGHEST_US), count);
        }
        Ok(latency)
    }

    /// Summary: count and quantiles in milliseconds.
    pub fn summary(&self, name: &str) -> Value {
        json!({
            "name": name,
            "count": self.count(),
            "p50_ms": self.quantile_ms(0.5),
            "p90_ms": self.quantile_ms(0.9),
            "p99_ms": self.quantile_ms(0.99),
            "p999_ms": self.quantile_ms(0.999),
            "max_ms": self.max_ms(),
            "mean_ms": if self.count() == 0 { 0.0 } else { self.0.mean() / 1000.0 },
        })
    }
}

/// Merges the histograms under `key` of several worker results.
pub fn merge_from(results: &[Value], key: &str) -> anyhow::Result<Latency> {
    let mut merged = Latency::new();
    for result in results {
        if let Some(value) = result.get(key) {
            merged.merge(&Latency::from_json(value)?);
        }
    }
    Ok(merged)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let mut latency = Latency::new();
        for value in [100, 200, 300, 10_000] {
            latency.record_us(value);
        }
        let back = Latency::from_json(&latency.to_json()).unwrap();
        assert_eq!(back.count(), 4);
        assert!((back.max_ms() - 10.0).abs() < 0.1);
        assert!((back.quantile_ms(0.5) - 0.2).abs() < 0.01);
    }
}
