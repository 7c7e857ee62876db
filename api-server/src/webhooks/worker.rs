//! The delivery worker: claims due deliveries with a lease, sends each (body and headers exactly
//! as API.md §8), and settles it `delivered`, `failed` (retry on the schedule) or `dead_letter`.
//! Runs until shutdown; every replica runs one. It must never dial an address the guard did not
//! pass at send time, and never log a secret or a body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::{client, guard, signing};
use crate::AppState;
use crate::store::outbox::{Delivery, Settle, now_ms};
use crate::wire::{DeliveryStatus, WebhookPayload};

/// Deliveries in flight at once per replica; a slow receiver holds one slot, not a round.
const IN_FLIGHT: usize = 64;

/// Claims and delivers until the shutdown flag is set.
pub async fn run(state: AppState) {
    let mut shutdown = state.shutdown();
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        if *shutdown.borrow() {
            return;
        }
        let n = match round(&state, &slots).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery round failed");
                0
            }
        };
        state.webhooks().round_done();
        if n == 0 {
            let poll = state.webhooks().config().poll;
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// One round: claims as many due deliveries as there are free slots (at most a batch) and
/// starts each on its own task. Returns how many were claimed.
async fn round(
    state: &AppState,
    slots: &Arc<Semaphore>,
) -> Result<usize, crate::store::StoreError> {
    let config = state.webhooks().config().clone();
    // Wait for one free slot, so a full pipeline does not spin.
    drop(slots.acquire().await);
    let free = slots.available_permits().min(config.batch.max(1) as usize);
    // The lease outlives an attempt's timeout, so a live worker never loses it to another.
    let lease = now_ms() + (config.timeout.as_millis() as i64) * 2 + 5_000;
    let claimed = state.store().claim_deliveries(lease, free as i64).await?;
    let n = claimed.len();
    for d in claimed {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let state = state.clone();
        tokio::spawn(async move {
            deliver(&state, d).await;
            drop(permit);
        });
    }
    Ok(n)
}

/// The POST body of a delivery (API.md §8).
pub fn body<'a>(
    session: &'a str,
    event_id: &'a str,
    metadata: &'a Value,
    mut event: Value,
    include_raw: bool,
) -> WebhookPayload<'a> {
    if !include_raw && let Some(body) = event.get_mut("body").and_then(Value::as_object_mut) {
        body.remove("raw");
    }
    WebhookPayload {
        type_: event.get("type").cloned().unwrap_or(Value::Null),
        session_id: session,
        event_id,
        metadata,
        event,
    }
}

async fn deliver(state: &AppState, d: Delivery) {
    let config = state.webhooks().config().clone();
    let store = state.store();
    let settle = |s: Settle| {
        let d = &d;
        async move {
            if let Err(e) = store.settle_delivery(d, &s).await {
                tracing::warn!(error = %e, delivery = %d.id, "cannot settle delivery");
            }
        }
    };
    // What is gone cannot be delivered: dead-lettered without an attempt.
    let gone = |why: &str| Settle {
        status: DeliveryStatus::DeadLetter,
        attempted: false,
        next_attempt: 0,
        response_code: None,
        error: Some(why.to_owned()),
    };
    let dest = match store.get_destination(&d.session, &d.destination).await {
        Ok(Some(dest)) => dest,
        Ok(None) => {
            return settle(gone("the destination was deleted")).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read destination");
            return;
        }
    };
    let payload = match store.delivery_payload(&d.session, d.event_seq).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return settle(gone("the event no longer exists")).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read delivery payload");
            return;
        }
    };
    let (metadata, data) = payload;
    let event: Value = match serde_json::from_str(&data) {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(error = %e, event = %d.event_id, "cannot read the stored event");
            return;
        }
    };
    let body = body(&d.session, &d.event_id, &metadata, event, dest.include_raw);
    let body = match serde_json::to_vec(&body) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            tracing::warn!(error = %e, event = %d.event_id, "cannot encode the delivery");
            return;
        }
    };
    let timestamp = chrono::Utc::now().timestamp();
    let mut headers = vec![
        ("webhook-id", d.event_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        ("x-oc-delivery-id", d.id.clone()),
        ("x-oc-session-id", d.session.clone()),
    ];
    if let Some(secret) = &dest.secret {
        headers.push((
            "webhook-signature",
            signing::signature(secret, &d.event_id, timestamp, &body),
        ));
    }
    let started = Instant::now();
    // The guard runs at every send: DNS may have changed since the destination was created.
    let result = match guard::check(&dest.url, &config).await {
        Ok((url, addr)) => client::post(&url, addr, &headers, body, config.timeout).await,
        Err(refused) => Err(refused.to_string()),
    };
    let elapsed = started.elapsed();
    let attempts_in_budget = (d.attempts + 1 - d.budget_from).max(1) as u32;
    let (status, code, error) = match result {
        Ok(code) if (200..300).contains(&code) => {
            (DeliveryStatus::Delivered, Some(i64::from(code)), None)
        }
        Ok(code) => (
            DeliveryStatus::Failed,
            Some(i64::from(code)),
            Some(format!("HTTP {code}")),
        ),
        Err(e) => (DeliveryStatus::Failed, None, Some(e)),
    };
    let (status, next) = match status {
        DeliveryStatus::Failed if attempts_in_budget >= config.max_attempts => {
            (DeliveryStatus::DeadLetter, 0)
        }
        DeliveryStatus::Failed => {
            let delay: Duration = config.delay_after(attempts_in_budget);
            (DeliveryStatus::Failed, now_ms() + delay.as_millis() as i64)
        }
        other => (other, 0),
    };
    state.webhooks().attempt(status, elapsed);
    tracing::info!(
        delivery = %d.id, session = %d.session, destination = %d.destination,
        status = status.as_str(),
        response_code = code, attempt = d.attempts + 1, "webhook attempt"
    );
    settle(Settle {
        status,
        attempted: true,
        next_attempt: next,
        response_code: code,
        error,
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_is_the_documented_envelope() {
        let event =
            json!({"id": "evt_1", "type": "user.message", "body": {"text": "hi", "raw": {"x": 1}}});
        let metadata = json!({"k": 1});
        let b = body("ses_1", "evt_1", &metadata, event.clone(), false);
        assert_eq!(
            serde_json::to_value(b).expect("body"),
            json!({"type": "user.message", "sessionId": "ses_1", "eventId": "evt_1",
                   "metadata": {"k": 1},
                   "event": {"id": "evt_1", "type": "user.message", "body": {"text": "hi"}}})
        );
        let raw = body("ses_1", "evt_1", &Value::Null, event.clone(), true);
        let raw = serde_json::to_value(raw).expect("body");
        assert_eq!(raw["event"], event);
        assert_eq!(raw["metadata"], Value::Null);
    }
}
