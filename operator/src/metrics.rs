//! Prometheus metrics of the operator, in the text exposition format: reconciles by controller
//! and result, reconcile duration histograms, sessions by phase, warm pools and leadership.
//!
//! Labels are controller names, error variant labels and phases only: never an object's value,
//! and never a secret.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sealpod_util::metrics::{Exposition, Histogram, Kind};

/// The operator's metrics registry.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    durations: Mutex<BTreeMap<&'static str, Histogram>>,
    sessions: Mutex<BTreeMap<String, u64>>,
    /// (size, ready) of each agent's warm pool, by (namespace, agent); rendered summed.
    pools: Mutex<BTreeMap<(String, String), (u32, u32)>>,
    /// Sessions that claimed a pool pod (`true`) or found none ready (`false`).
    claims: Mutex<BTreeMap<bool, u64>>,
    leader: AtomicBool,
}

impl Metrics {
    /// Records one reconcile of `controller` ending in `result` (`ok` or an error label).
    pub fn reconciled(&self, controller: &'static str, result: &'static str, took: Duration) {
        if let Ok(mut m) = self.reconciles.lock() {
            *m.entry((controller, result)).or_default() += 1;
        }
        if let Ok(mut h) = self.durations.lock() {
            h.entry(controller).or_default().observe(took);
        }
    }

    /// Reconciles of `controller` so far, every result summed.
    pub fn reconcile_count(&self, controller: &str) -> u64 {
        self.reconciles
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((c, _), _)| *c == controller)
                    .map(|(_, n)| n)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Replaces the sessions-by-phase gauge.
    pub fn set_sessions(&self, by_phase: BTreeMap<String, u64>) {
        if let Ok(mut s) = self.sessions.lock() {
            *s = by_phase;
        }
    }

    /// Records what the warm pool of `namespace/agent` holds (0, 0 when it has none).
    pub fn set_pool(&self, namespace: &str, agent: &str, size: u32, ready: u32) {
        if let Ok(mut p) = self.pools.lock() {
            let key = (namespace.to_owned(), agent.to_owned());
            if size == 0 && ready == 0 {
                p.remove(&key);
            } else {
                p.insert(key, (size, ready));
            }
        }
    }

    /// Records one session of a pooled agent: it claimed a pool pod (`hit`) or started cold.
    pub fn pool_claim(&self, hit: bool) {
        if let Ok(mut c) = self.claims.lock() {
            *c.entry(hit).or_default() += 1;
        }
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        let name = "sealpod_operator_reconciles_total";
        out.family(name, "Reconciles by controller and result.", Kind::Counter);
        if let Ok(m) = self.reconciles.lock() {
            for ((controller, result), n) in m.iter() {
                out.sample(name, &[("controller", controller), ("result", result)], n);
            }
        }
        let name = "sealpod_operator_reconcile_duration_seconds";
        out.family(name, "Reconcile duration.", Kind::Histogram);
        if let Ok(h) = self.durations.lock() {
            for (controller, h) in h.iter() {
                out.histogram(name, &[("controller", controller)], h);
            }
        }
        let name = "sealpod_operator_sessions";
        out.family(name, "Sessions by phase.", Kind::Gauge);
        if let Ok(s) = self.sessions.lock() {
            for (phase, n) in s.iter() {
                out.sample(name, &[("phase", phase)], n);
            }
        }
        let (size, ready) = self.pools.lock().map_or((0, 0), |p| {
            p.values().fold((0u64, 0u64), |(s, r), (ps, pr)| {
                (s + u64::from(*ps), r + u64::from(*pr))
            })
        });
        let name = "sealpod_operator_warm_pool_pods";
        out.family(
            name,
            "Unclaimed warm pool pods of every agent: all of them, and the ready ones.",
            Kind::Gauge,
        );
        out.sample(name, &[("state", "all")], size);
        out.sample(name, &[("state", "ready")], ready);
        let name = "sealpod_operator_warm_pool_claims_total";
        out.family(
            name,
            "Sessions of agents with a warm pool, by whether they claimed a ready pod (hit) or started cold (miss).",
            Kind::Counter,
        );
        if let Ok(c) = self.claims.lock() {
            for (hit, n) in [(true, "hit"), (false, "miss")] {
                out.sample(name, &[("result", n)], c.get(&hit).copied().unwrap_or(0));
            }
        }
        out.single(
            "sealpod_operator_leader",
            "1 when this replica holds the Lease.",
            Kind::Gauge,
            u8::from(self.is_leader()),
        );
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.reconciled("session", "ok", Duration::from_millis(3));
        m.reconciled("session", "ok", Duration::from_millis(30));
        m.reconciled("session", "KubeError", Duration::from_secs(20));
        m.set_sessions(BTreeMap::from([("running".to_owned(), 2)]));
        m.set_leader(true);
        m.set_pool("ns", "a", 3, 2);
        m.set_pool("ns", "b", 1, 1);
        m.set_pool("ns", "c", 2, 0);
        m.set_pool("ns", "c", 0, 0);
        m.pool_claim(true);
        m.pool_claim(true);
        m.pool_claim(false);
        let text = m.render();
        assert!(text.contains("sealpod_operator_warm_pool_pods{state=\"all\"} 4\n"));
        assert!(text.contains("sealpod_operator_warm_pool_pods{state=\"ready\"} 3\n"));
        assert!(text.contains("sealpod_operator_warm_pool_claims_total{result=\"hit\"} 2\n"));
        assert!(text.contains("sealpod_operator_warm_pool_claims_total{result=\"miss\"} 1\n"));
        assert!(text.contains(
            "sealpod_operator_reconciles_total{controller=\"session\",result=\"ok\"} 2\n"
        ));
        assert!(text.contains("result=\"KubeError\"} 1\n"));
        assert!(text.contains("_bucket{controller=\"session\",le=\"0.005\"} 1\n"));
        assert!(text.contains("_bucket{controller=\"session\",le=\"0.05\"} 2\n"));
        assert!(text.contains("_bucket{controller=\"session\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("_count{controller=\"session\"} 3\n"));
        assert!(text.contains("sealpod_operator_sessions{phase=\"running\"} 2\n"));
        assert!(text.contains("sealpod_operator_leader 1\n"));
        assert_eq!(m.reconcile_count("session"), 3);
        assert_eq!(m.reconcile_count("agent"), 0);
    }
}
