//! Bounded waiting for a condition: [`until`] polls a check until it yields a value or a bound
//! passes. Every test that waits for something to happen uses it (through
//! `sealpod_testkit::eventually` where that crate is at hand); the bound is a hang guard, not a
//! timing claim, so it is generous.

use std::future::Future;
use std::time::Duration;

/// How often [`until`] polls.
pub const POLL_EVERY: Duration = Duration::from_millis(50);

/// A wait that ran past its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// What was waited for.
    pub what: String,
    /// The bound.
    pub within: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for: {}",
            self.within, self.what
        )
    }
}

impl std::error::Error for TimedOut {}

/// Polls `check` every [`POLL_EVERY`] until it returns `Some`, or fails once `within` has passed
/// (the check runs at least once, and once more at the bound).
pub async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let past = tokio::time::Instant::now() >= deadline;
        if let Some(value) = check().await {
            return Ok(value);
        }
        if past {
            return Err(TimedOut {
                what: what.to_owned(),
                within,
            });
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn yields_the_first_value_and_times_out_at_the_bound() {
        let mut calls = 0;
        let got = until("the third call", Duration::from_secs(1), || {
            calls += 1;
            let n = calls;
            async move { (n == 3).then_some(n) }
        })
        .await;
        assert_eq!(got, Ok(3));
        let err = until("nothing", Duration::from_millis(120), || async {
            None::<()>
        })
        .await
        .expect_err("never holds");
        assert_eq!(err.within, Duration::from_millis(120));
        assert!(err.to_string().contains("nothing"), "{err}");
    }
}
