//! The egress gate: a sealed token is swapped for the real key only while the API server says the
//! session may spend (`POST events.gate_url`, see `docs/runtime-api.md`): a turn is running,
//! within its `limits.turn_seconds`, and the model tokens metered here ([`crate::meter`]) stay
//! below `limits.tokens`. Code in the sandbox cannot change any of it: the limits live in the API
//! server, the metering in this process.
//!
//! An open answer is trusted for [`FRESH`] (and never past the turn's deadline); a closed one is
//! asked again on the next swap, so a turn that has just started is never refused. Concurrent
//! swaps share one question. The budget is checked here on every swap against the tokens metered
//! so far, so a loop of calls stops at the limit (overshooting by at most the calls already in
//! flight), not a second later. Metered tokens are reported with every question and, when they
//! changed, every [`REPORT_EVERY`]; the server keeps the largest total, so a new sidecar (a
//! restart, a woken session) starts from what the session already spent. Without an answer (the
//! API server unreachable) nothing is swapped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sealpod_resources::proxy_config::EventsConfig;
use sealpod_resources::runtime_api::{EgressGate, EgressGateRequest, GateClosed, Usage};

use crate::metrics::DenyReason;
use crate::sink::{self, Target};

/// How long an open answer is trusted.
pub(crate) const FRESH: Duration = Duration::from_secs(1);
/// How often changed metered totals are reported without a question.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(1);
/// How long a question may take before the swap is refused as unavailable.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a swap is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The gate is closed.
    Closed(GateClosed),
    /// No answer from the API server.
    Unavailable,
}

impl From<Refusal> for DenyReason {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Closed(GateClosed::NoTurn) => DenyReason::NoTurn,
            Refusal::Closed(GateClosed::DeadlineExceeded) => DenyReason::DeadlineExceeded,
            Refusal::Closed(GateClosed::BudgetExceeded) => DenyReason::BudgetExceeded,
            Refusal::Unavailable => DenyReason::GateUnavailable,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Answer {
    at: Instant,
    closed: Option<GateClosed>,
    tokens_limit: Option<u64>,
    deadline: Option<Instant>,
}

/// The gate of one sidecar.
#[derive(Debug)]
pub(crate) struct Gate {
    /// `None` when the URL could not be parsed: then the gate never opens.
    target: Option<Target>,
    token_file: PathBuf,
    tls: Arc<rustls::ClientConfig>,
    metered: AtomicU64,
    reported: AtomicU64,
    answer: Mutex<Option<Answer>>,
    asking: tokio::sync::Mutex<()>,
}

impl Gate {
    /// The gate of `events.gate_url`, if configured (and a parseable URL). Spawns its reporter
    /// on the current runtime.
    pub(crate) fn spawn(
        config: &EventsConfig,
        tls: Arc<rustls::ClientConfig>,
    ) -> Option<Arc<Self>> {
        let url = config.gate_url.as_deref()?;
        let target = Target::parse(url);
        if target.is_none() {
            // Validation makes this unreachable; a gate that was asked for must never fail open.
            tracing::error!("events.gate_url cannot be parsed; no sealed token will be swapped");
        }
        let gate = Arc::new(Self {
            target,
            token_file: config.token_file.clone(),
            tls,
            metered: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            answer: Mutex::new(None),
            asking: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(report_loop(Arc::downgrade(&gate)));
        Some(gate)
    }

    /// Adds the usage of one response to the metered total.
    pub(crate) fn meter(&self, usage: &Usage) {
        self.metered.fetch_add(usage.total(), Ordering::Relaxed);
    }

    /// Model tokens metered so far (including what the session spent before this sidecar).
    pub(crate) fn metered(&self) -> u64 {
        self.metered.load(Ordering::Relaxed)
    }

    /// Whether a sealed token may be swapped now.
    pub(crate) async fn admit(&self) -> Result<(), Refusal> {
        let arrived = Instant::now();
        if let Some(answer) = self.last()
            && answer.closed.is_none()
            && arrived.saturating_duration_since(answer.at) < FRESH
        {
            return self.decide(&answer, arrived);
        }
        let _asking = self.asking.lock().await;
        // Someone else asked while this swap waited: their answer is newer than its arrival.
        if let Some(answer) = self.last()
            && answer.at >= arrived
        {
            return self.decide(&answer, Instant::now());
        }
        let answer = self.ask().await.ok_or(Refusal::Unavailable)?;
        self.decide(&answer, Instant::now())
    }

    fn last(&self) -> Option<Answer> {
        *self.answer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn decide(&self, answer: &Answer, now: Instant) -> Result<(), Refusal> {
        if answer
            .tokens_limit
            .is_some_and(|limit| self.metered() >= limit)
        {
            return Err(Refusal::Closed(GateClosed::BudgetExceeded));
        }
        if let Some(closed) = answer.closed {
            return Err(Refusal::Closed(closed));
        }
        if answer.deadline.is_some_and(|deadline| now >= deadline) {
            return Err(Refusal::Closed(GateClosed::DeadlineExceeded));
        }
        Ok(())
    }

    /// Reports the metered total and records the answer (`None` when there is none).
    async fn ask(&self) -> Option<Answer> {
        let target = self.target.as_ref()?;
        let metered = self.metered();
        let body = serde_json::to_vec(&EgressGateRequest {
            metered_tokens: metered,
        })
        .ok()?;
        let asked = Instant::now();
        let reply = tokio::time::timeout(
            ASK_TIMEOUT,
            sink::post(target, &self.token_file, body, &self.tls),
        )
        .await;
        let gate: EgressGate = match reply {
            Ok(Ok((status, body))) if status.is_success() => match serde_json::from_slice(&body) {
                Ok(gate) => gate,
                Err(error) => {
                    tracing::warn!(%error, "the egress gate answered something unreadable");
                    return None;
                }
            },
            Ok(Ok((status, _))) => {
                tracing::warn!(%status, "the egress gate refused the question");
                return None;
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "the egress gate is unreachable");
                return None;
            }
            Err(_) => {
                tracing::warn!("the egress gate timed out");
                return None;
            }
        };
        self.reported.fetch_max(metered, Ordering::Relaxed);
        // The server's total covers what earlier sidecars of the session metered.
        self.metered
            .fetch_max(gate.metered_tokens, Ordering::Relaxed);
        let answer = Answer {
            at: asked,
            closed: gate.closed,
            tokens_limit: gate.tokens_limit,
            deadline: gate
                .turn_ms_left
                .map(|ms| asked + Duration::from_millis(ms)),
        };
        *self.answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
        Some(answer)
    }
}

/// Reports a changed metered total every [`REPORT_EVERY`], until the gate is dropped.
async fn report_loop(gate: Weak<Gate>) {
    loop {
        tokio::time::sleep(REPORT_EVERY).await;
        let Some(gate) = gate.upgrade() else {
            return;
        };
        if gate.metered() > gate.reported.load(Ordering::Relaxed) {
            let _asking = gate.asking.lock().await;
            gate.ask().await;
        }
    }
}
