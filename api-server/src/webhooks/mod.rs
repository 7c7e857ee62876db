//! Webhooks of sessions (API.md §8): settings and metrics, the delivery worker, signing and the
//! outbound address guard. The destination and delivery tables are the store's
//! ([`crate::store::outbox`]).
//!
//! Deliveries are enqueued in the transaction that appends their event
//! ([`crate::store::outbox::enqueue_in`]), so an acknowledged event always has its deliveries; the
//! [`worker`] claims due rows with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so replicas
//! deliver each row once and a restart loses nothing. This module must never log or return a
//! destination secret, and never dial an address the [`guard`] did not pass.

pub mod client;
pub mod guard;
pub mod signing;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use sealpod_util::metrics::{Exposition, Histogram, Kind};

use crate::wire::DeliveryStatus;

/// The outcomes of an attempt, in the order of the attempt counters.
const ATTEMPT_OUTCOMES: [DeliveryStatus; 3] = [
    DeliveryStatus::Delivered,
    DeliveryStatus::Failed,
    DeliveryStatus::DeadLetter,
];

/// Delivery settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Admit `http://` and loopback destinations (local mode and tests).
    pub allow_insecure: bool,
    /// The platform's own listeners (this server's public, runtime and admin addresses, and
    /// `--webhooks-deny-addr`): never a destination, in any mode ([`guard::reaches`]).
    pub deny: Vec<SocketAddr>,
    /// Delay after failed attempt k (1-based) before attempt k+1; the last entry repeats.
    pub schedule: Vec<Duration>,
    /// Attempts before `dead_letter`.
    pub max_attempts: u32,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// How often the worker looks for due deliveries.
    pub poll: Duration,
    /// Deliveries claimed (and sent concurrently) per round.
    pub batch: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            allow_insecure: false,
            deny: Vec::new(),
            schedule: [1, 5, 30, 120, 600, 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            max_attempts: 6,
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(500),
            batch: 16,
        }
    }
}

impl Config {
    /// The delay after the `n`th failed attempt of the current budget (1-based).
    pub fn delay_after(&self, n: u32) -> Duration {
        let i = (n.max(1) as usize - 1).min(self.schedule.len().saturating_sub(1));
        self.schedule
            .get(i)
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// Parses a schedule such as `1s,5s,30s,2m,10m,1h` (units `ms`, `s`, `m`, `h`).
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    let out: Result<Vec<_>, String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_duration)
        .collect();
    let out = out?;
    if out.is_empty() {
        return Err("the schedule is empty".into());
    }
    Ok(out)
}

/// Parses `250ms`, `5s`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("`{text}` has an unknown unit")),
    })
}

/// The webhook state of a server: its settings (set once at start) and its metrics.
#[derive(Debug, Default)]
pub struct Webhooks {
    config: OnceLock<Config>,
    /// delivered, failed (retrying), dead_letter.
    outcomes: [AtomicU64; 3],
    /// Claim rounds the worker finished.
    rounds: AtomicU64,
    latency: Histogram,
}

static DEFAULT: LazyLock<Config> = LazyLock::new(Config::default);

impl Webhooks {
    /// The settings (the defaults until [`Webhooks::configure`]).
    pub fn config(&self) -> &Config {
        self.config.get().unwrap_or_else(|| &DEFAULT)
    }

    /// Sets the settings; false when they were already set.
    pub fn configure(&self, config: Config) -> bool {
        self.config.set(config).is_ok()
    }

    /// Records the end of an attempt (`delivered`, `failed` or `dead_letter`).
    pub fn attempt(&self, status: DeliveryStatus, elapsed: Duration) {
        if let Some(i) = ATTEMPT_OUTCOMES.iter().position(|s| *s == status) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency.observe(elapsed);
    }

    /// Records a finished claim round of the worker.
    pub fn round_done(&self) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    /// Claim rounds the worker finished: every delivery due when a round began was claimed by
    /// the time the next one ends.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// The text exposition; `depth` is the number of undelivered rows by status.
    pub fn render(&self, depth: &[(DeliveryStatus, i64)]) -> String {
        let mut out = Exposition::default();
        let name = "sealpod_api_server_webhook_attempts_total";
        out.family(name, "Delivery attempts by outcome.", Kind::Counter);
        for (status, n) in ATTEMPT_OUTCOMES.iter().zip(&self.outcomes) {
            out.sample(
                name,
                &[("status", status.as_str())],
                n.load(Ordering::Relaxed),
            );
        }
        let name = "sealpod_api_server_webhook_rounds_total";
        out.family(
            name,
            "Claim rounds of the delivery worker (it is alive while this grows).",
            Kind::Counter,
        );
        out.sample(name, &[], self.rounds());
        let name = "sealpod_api_server_webhook_attempt_seconds";
        out.family(name, "Duration of a delivery attempt.", Kind::Histogram)
            .histogram(name, &[], &self.latency);
        let name = "sealpod_api_server_webhook_outbox_depth";
        out.family(name, "Undelivered deliveries by status.", Kind::Gauge);
        for status in [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivering,
            DeliveryStatus::Failed,
        ] {
            let n = depth
                .iter()
                .find(|(k, _)| *k == status)
                .map_or(0, |(_, n)| *n);
            out.sample(name, &[("status", status.as_str())], n);
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse() {
        assert_eq!(
            parse_schedule("1s,5s,30s,2m,10m,1h").expect("schedule"),
            Config::default().schedule
        );
        assert_eq!(
            parse_schedule("200ms").expect("schedule"),
            vec![Duration::from_millis(200)]
        );
        assert!(parse_schedule("").is_err());
        assert!(parse_schedule("5x").is_err());
        let c = Config::default();
        assert_eq!(c.delay_after(1), Duration::from_secs(1));
        assert_eq!(c.delay_after(6), Duration::from_secs(3600));
        assert_eq!(c.delay_after(60), Duration::from_secs(3600));
    }
}
