//! The small pieces every sealpod binary shares, one copy each: [`files`] (owner-only atomic
//! writes), [`shutdown`] (SIGTERM or Ctrl-C), [`backoff`] (capped doubling) and [`log`] (where
//! the log filter comes from). A leaf crate: it
//! knows nothing of Kubernetes or of sealpod's resources, so any crate may use it.

pub mod backoff;
pub mod files;
pub mod log;
pub mod shutdown;
