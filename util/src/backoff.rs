//! Exponential backoff: the delay before attempt `n` doubles from `base` and stops at `max`.

use std::time::Duration;

/// `base * 2^(n-1)` for attempt `n` (1 for the first retry), capped at `max`; `n = 0` is `base`.
pub fn exponential(base: Duration, max: Duration, n: u32) -> Duration {
    let factor = 1u32
        .checked_shl(n.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let b = Duration::from_secs(1);
        let m = Duration::from_secs(10);
        assert_eq!(exponential(b, m, 0), b);
        assert_eq!(exponential(b, m, 1), b);
        assert_eq!(exponential(b, m, 2), Duration::from_secs(2));
        assert_eq!(exponential(b, m, 4), Duration::from_secs(8));
        assert_eq!(exponential(b, m, 5), m);
        assert_eq!(exponential(b, m, u32::MAX), m);
    }
}
