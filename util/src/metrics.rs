//! The Prometheus text exposition every component's `/metrics` writes, and the one latency
//! histogram. Labels are fixed words (route classes, reasons, controller names, phases): never an
//! id, a key or a token.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of every latency histogram.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram over [`BUCKETS`], updated without a lock.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// A text exposition being written: a family's `# HELP` and `# TYPE` lines, then its samples.
#[derive(Debug, Default)]
pub struct Exposition(String);

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A [`Histogram`].
    Histogram,
}

impl Exposition {
    /// Starts a family.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample, with `labels` as `name="value"` pairs.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) -> &mut Self {
        let _ = writeln!(self.0, "{name}{} {value}", render_labels(labels));
        self
    }

    /// A family of one unlabelled sample.
    pub fn single(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        value: impl std::fmt::Display,
    ) -> &mut Self {
        self.family(name, help, kind).sample(name, &[], value)
    }

    /// The `_bucket`, `_sum` and `_count` samples of `histogram`, with `labels`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        histogram: &Histogram,
    ) -> &mut Self {
        let bucket = format!("{name}_bucket");
        for (count, bound) in histogram.buckets.iter().zip(BUCKETS) {
            let le = bound.to_string();
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, count.load(Ordering::Relaxed));
        }
        let mut inf = labels.to_vec();
        inf.push(("le", "+Inf"));
        let count = histogram.count();
        self.sample(&bucket, &inf, count);
        let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count)
    }

    /// The text.
    pub fn finish(self) -> String {
        self.0
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let mut out = Exposition::default();
        out.family("x_seconds", "X.", Kind::Histogram)
            .histogram("x_seconds", &[("c", "s")], &h);
        let text = out.finish();
        assert!(text.starts_with("# HELP x_seconds X.\n# TYPE x_seconds histogram\n"));
        assert!(text.contains("x_seconds_bucket{c=\"s\",le=\"0.001\"} 0\n"));
        assert!(text.contains("x_seconds_bucket{c=\"s\",le=\"0.005\"} 1\n"));
        assert!(text.contains("x_seconds_bucket{c=\"s\",le=\"0.05\"} 2\n"));
        assert!(text.contains("x_seconds_bucket{c=\"s\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("x_seconds_sum{c=\"s\"} 60.033\n"));
        assert!(text.contains("x_seconds_count{c=\"s\"} 3\n"));
    }

    #[test]
    fn samples_without_labels_have_no_braces() {
        let mut out = Exposition::default();
        out.single("up", "Up.", Kind::Gauge, 1);
        assert_eq!(out.finish(), "# HELP up Up.\n# TYPE up gauge\nup 1\n");
    }
}
