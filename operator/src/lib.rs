//! The sealpod operator: reconciles `Agent`, `Credential` and `Session` custom resources into
//! locked-down sandbox pods, per-session proxy and runtime Secrets, workspace claims and backstop
//! NetworkPolicies.
//!
//! - [`config`]: every flag, parsed and checked once;
//! - [`build`]: pure, client-free builders of the desired child objects;
//! - [`validate`]: pure checks of specs;
//! - [`controller`]: the credential, agent and session controllers (fetch → validate → build →
//!   apply → status), with `controller::lifecycle` reading pod state;
//! - [`keys`]: the sealing key set and runtime-token key, created on first start;
//! - [`leader`]: Lease-based leader election;
//! - [`runner`]: start and stop; [`http`]: `/healthz`, `/readyz`, `/metrics`; [`metrics`].
//!
//! It must never log or put into status, an event or a metric any opened credential value.

pub mod build;
pub mod config;
pub mod controller;
pub mod error;
pub mod http;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod moves;
pub mod runner;
pub mod validate;

pub use config::Config;
pub use error::Error;
pub use runner::{Running, start};
