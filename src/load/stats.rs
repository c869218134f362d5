//! What a load run records: HDR histograms of the whole logon and of each step, a per-second
//! timeline, and errors counted by kind. Latency is measured from when a logon was *meant* to
//! start, so a slow server shows as latency, not as less load (no coordinated omission).
use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The steps of one logon, in order.
pub const STEPS: [&str; 5] = ["chains", "start", "gather", "sign", "answer"];

/// Highest latency the histograms hold exactly (longer ones are clamped): 10 minutes in µs.
const MAX_MICROS: u64 = 600_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant, valid bounds")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MICROS)
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Second {
    /// Logons started (offered) in this second.
    pub started: u64,
    /// Logons completed in this second.
    pub completed: u64,
    /// Logons failed in this second.
    pub failed: u64,
    /// Median latency of the logons completed in this second, µs.
    pub p50_us: u64,
    /// 99th percentile of the same, µs.
    pub p99_us: u64,
}

/// Percentiles of a histogram, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// How many samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Everything recorded during a run.
pub struct Recorder {
    logon: Histogram<u64>,
    steps: Vec<Histogram<u64>>,
    endpoint_session: Histogram<u64>,
    timeline: Vec<(u64, u64, u64, Histogram<u64>)>,
    errors: BTreeMap<String, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            logon: histogram(),
            steps: STEPS.iter().map(|_| histogram()).collect(),
            endpoint_session: histogram(),
            timeline: Vec::new(),
            errors: BTreeMap::new(),
        }
    }

    fn second(&mut self, at: Duration) -> &mut (u64, u64, u64, Histogram<u64>) {
        let index = usize::try_from(at.as_secs())
            .unwrap_or(usize::MAX)
            .min(86_400);
        while self.timeline.len() <= index {
            self.timeline.push((0, 0, 0, histogram()));
        }
        &mut self.timeline[index]
    }

    /// A logon was meant to start `at` after the run began.
    pub fn started(&mut self, at: Duration) {
        self.second(at).0 += 1;
    }

    /// A logon completed `at` after the run began, `latency` after it was meant to start, with
    /// these step durations (in [`STEPS`] order).
    pub fn completed(&mut self, at: Duration, latency: Duration, steps: &[Duration]) {
        let latency = micros(latency);
        let _ = self.logon.record(latency);
        for (histogram, step) in self.steps.iter_mut().zip(steps) {
            let _ = histogram.record(micros(*step));
        }
        let second = self.second(at);
        second.1 += 1;
        let _ = second.3.record(latency);
    }

    /// A logon failed `at` after the run began, for a reason of this `kind`.
    pub fn failed(&mut self, at: Duration, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
        self.second(at).2 += 1;
    }

    /// An endpoint session took `duration` to open.
    pub fn endpoint_session(&mut self, duration: Duration) {
        let _ = self.endpoint_session.record(micros(duration));
    }

    /// Logons completed and failed so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.logon.len(), self.errors.values().sum())
    }

    /// The whole-logon latencies in `count` equal buckets up to the 99.9th percentile (the
    /// rest in the last), as (upper bound in ms, logons).
    pub fn latency_buckets(&self, count: usize) -> Vec<(f64, u64)> {
        if self.logon.is_empty() || count == 0 {
            return Vec::new();
        }
        let top = self.logon.value_at_quantile(0.999).max(1);
        let step = (top / count as u64).max(1);
        let mut buckets: Vec<(f64, u64)> = (1..=count as u64)
            .map(|i| ((i * step) as f64 / 1000.0, 0))
            .collect();
        for value in self.logon.iter_recorded() {
            let index = usize::try_from(value.value_iterated_to() / step)
                .unwrap_or(usize::MAX)
                .min(count - 1);
            buckets[index].1 += value.count_at_value();
        }
        buckets
    }

    /// The summary.
    pub fn summary(&self) -> Summary {
        let mut steps = BTreeMap::new();
        steps.insert(
            "endpoint session".to_owned(),
            Percentiles::of(&self.endpoint_session),
        );
        for (name, histogram) in STEPS.iter().zip(&self.steps) {
            steps.insert((*name).to_owned(), Percentiles::of(histogram));
        }
        Summary {
            logon: Percentiles::of(&self.logon),
            steps,
            errors: self.errors.clone(),
            timeline: self
                .timeline
                .iter()
                .map(|(started, completed, failed, h)| Second {
                    started: *started,
                    completed: *completed,
                    failed: *failed,
                    p50_us: h.value_at_quantile(0.5),
                    p99_us: h.value_at_quantile(0.99),
                })
                .collect(),
        }
    }
}

/// What the recorder saw.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The whole logon, from its intended start to `OK`.
    pub logon: Percentiles,
    /// Each step.
    pub steps: BTreeMap<String, Percentiles>,
    /// Failed logons by kind.
    pub errors: BTreeMap<String, u64>,
    /// Second by second.
    pub timeline: Vec<Second>,
}
