//! The small pieces every sealpod binary shares, one copy each: [`files`] (owner-only atomic
//! writes), [`shutdown`] (SIGTERM or Ctrl-C), [`backoff`] (capped doubling), [`log`] (where the
//! log filter comes from), [`metrics`] (the Prometheus text and the latency histogram) and
//! [`wait`] (a bounded wait for a condition). A leaf crate: it knows nothing of Kubernetes or of
//! sealpod's resources, so any crate may use it.

pub mod backoff;
pub mod files;
pub mod log;
pub mod metrics;
pub mod shutdown;
pub mod wait;
