//! What a load run records: HDR histograms of the whole logon and of each step, a per-second
//! timeline, and errors counted by kind. Latency is measured from when a logon was *meant* to
//! start, so a slow server shows as latency, not as less load (no coordinated omission).
use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The steps of one `U2F:1` logon, in order.
pub const STEPS: [&str; 5] = ["chains", "start", "gather", "sign", "answer"];

/// The steps of one `FIDO2:1` logon, in order: the login exchange's options request and its
/// result come around the token's getAssertion (PROTOCOLS.md 1.9).
pub const FIDO2_STEPS: [&str; 7] = [
    "chains", "start", "gather", "options", "sign", "result", "answer",
];

/// Every step, in the order reports show them.
pub const ALL_STEPS: [&str; 7] = FIDO2_STEPS;

/// The steps of a logon that completed `method` (`FIDO2:1`, else those of `U2F:1`).
pub fn steps_of(method: &str) -> &'static [&'static str] {
    if method == crate::aa::FIDO2 {
        &FIDO2_STEPS
    } else {
        &STEPS
    }
}

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

/// Seconds behind the newest one whose latencies can still come in; older ones are reduced to
/// their percentiles, so that a long run keeps a few histograms, not one per second (a histogram
/// holds about 160 KB of counters: an hour of them was 560 MB).
const OPEN_SECONDS: usize = 5;

/// One second of the timeline while the run goes on.
#[derive(Default)]
struct SecondRecord {
    started: u64,
    completed: u64,
    failed: u64,
    /// The latencies of the logons completed in it, while it is open.
    latencies: Option<Histogram<u64>>,
    /// Its median and 99th percentile, µs, once closed.
    closed: Option<(u64, u64)>,
}

impl SecondRecord {
    fn percentiles(&self) -> (u64, u64) {
        match (&self.closed, &self.latencies) {
            (Some(closed), _) => *closed,
            (None, Some(h)) => (h.value_at_quantile(0.5), h.value_at_quantile(0.99)),
            (None, None) => (0, 0),
        }
    }

    fn close(&mut self) {
        if self.closed.is_none() {
            self.closed = Some(self.percentiles());
            self.latencies = None;
        }
    }
}

/// The logons of one method.
struct MethodRecord {
    logon: Histogram<u64>,
    failed: u64,
}

/// Everything recorded during a run.
pub struct Recorder {
    logon: Histogram<u64>,
    /// In [`ALL_STEPS`] order.
    steps: Vec<Histogram<u64>>,
    /// By the method each logon was run for (`U2F:1`, `FIDO2:1`).
    methods: BTreeMap<String, MethodRecord>,
    endpoint_session: Histogram<u64>,
    timeline: Vec<SecondRecord>,
    /// Every second before this one is closed.
    closed_until: usize,
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
            steps: ALL_STEPS.iter().map(|_| histogram()).collect(),
            methods: BTreeMap::new(),
            endpoint_session: histogram(),
            timeline: Vec::new(),
            closed_until: 0,
            errors: BTreeMap::new(),
        }
    }

    fn second(&mut self, at: Duration) -> &mut SecondRecord {
        let index = usize::try_from(at.as_secs())
            .unwrap_or(usize::MAX)
            .min(86_400);
        if self.timeline.len() <= index {
            self.timeline.resize_with(index + 1, SecondRecord::default);
            let open_from = index.saturating_sub(OPEN_SECONDS);
            if open_from > self.closed_until {
                for second in &mut self.timeline[self.closed_until..open_from] {
                    second.close();
                }
                self.closed_until = open_from;
            }
        }
        &mut self.timeline[index]
    }

    /// A logon was meant to start `at` after the run began.
    pub fn started(&mut self, at: Duration) {
        self.second(at).started += 1;
    }

    fn method(&mut self, method: &str) -> &mut MethodRecord {
        self.methods
            .entry(method.to_owned())
            .or_insert_with(|| MethodRecord {
                logon: histogram(),
                failed: 0,
            })
    }

    /// A logon of `method` completed `at` after the run began, `latency` after it was meant to
    /// start, with these step durations (in the order of [`steps_of`] `method`).
    pub fn completed(&mut self, method: &str, at: Duration, latency: Duration, steps: &[Duration]) {
        let latency = micros(latency);
        let _ = self.logon.record(latency);
        let _ = self.method(method).logon.record(latency);
        for (name, step) in steps_of(method).iter().zip(steps) {
            if let Some(index) = ALL_STEPS.iter().position(|n| n == name) {
                let _ = self.steps[index].record(micros(*step));
            }
        }
        let second = self.second(at);
        second.completed += 1;
        if second.closed.is_none() {
            let _ = second
                .latencies
                .get_or_insert_with(histogram)
                .record(latency);
        }
    }

    /// A logon failed `at` after the run began, for a reason of this `kind`; of `method` when it
    /// had a user (a run out of idle users has none to give the logon).
    pub fn failed(&mut self, method: Option<&str>, at: Duration, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
        if let Some(method) = method {
            self.method(method).failed += 1;
        }
        self.second(at).failed += 1;
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
        // The steps of U2F:1 always, FIDO2:1's own only when a FIDO2:1 logon completed.
        for (name, histogram) in ALL_STEPS.iter().zip(&self.steps) {
            if STEPS.contains(name) || !histogram.is_empty() {
                steps.insert((*name).to_owned(), Percentiles::of(histogram));
            }
        }
        Summary {
            logon: Percentiles::of(&self.logon),
            methods: self
                .methods
                .iter()
                .map(|(method, record)| {
                    let summary = MethodSummary {
                        completed: record.logon.len(),
                        failed: record.failed,
                        logon: Percentiles::of(&record.logon),
                    };
                    (method.clone(), summary)
                })
                .collect(),
            steps,
            errors: self.errors.clone(),
            timeline: self
                .timeline
                .iter()
                .map(|second| {
                    let (p50_us, p99_us) = second.percentiles();
                    Second {
                        started: second.started,
                        completed: second.completed,
                        failed: second.failed,
                        p50_us,
                        p99_us,
                    }
                })
                .collect(),
        }
    }
}

/// The logons of one method.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSummary {
    /// Logons that ended in `OK`.
    pub completed: u64,
    /// Logons that failed.
    pub failed: u64,
    /// Their whole-logon latencies.
    pub logon: Percentiles,
}

/// What the recorder saw.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The whole logon, from its intended start to `OK`.
    pub logon: Percentiles,
    /// By method (`U2F:1`, `FIDO2:1`): the logons of the users of each.
    pub methods: BTreeMap<String, MethodSummary>,
    /// Each step.
    pub steps: BTreeMap<String, Percentiles>,
    /// Failed logons by kind.
    pub errors: BTreeMap<String, u64>,
    /// Second by second.
    pub timeline: Vec<Second>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long run keeps only the last few seconds' histograms, and every second's percentiles.
    #[test]
    fn closed_seconds_keep_their_percentiles_and_drop_their_histograms() {
        let mut recorder = Recorder::new();
        for second in 0..100u64 {
            let at = Duration::from_secs(second) + Duration::from_millis(500);
            for _ in 0..10 {
                recorder.completed(crate::aa::U2F, at, Duration::from_millis(second + 1), &[]);
            }
        }
        let live = recorder
            .timeline
            .iter()
            .filter(|s| s.latencies.is_some())
            .count();
        assert!(live <= OPEN_SECONDS + 1, "{live} histograms still held");
        let timeline = recorder.summary().timeline;
        assert_eq!(timeline.len(), 100);
        for (second, record) in timeline.iter().enumerate() {
            assert_eq!(record.completed, 10);
            let expected = (second as u64 + 1) * 1000;
            assert!(
                record.p50_us.abs_diff(expected) <= expected / 500,
                "second {second}: p50 {} µs",
                record.p50_us
            );
        }
    }
}
