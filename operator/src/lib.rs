//! The sealpod operator: reconciles `Agent`, `Credential` and `Session` custom resources into
//! locked-down sandbox pods, per-session proxy and runtime Secrets, workspace claims and backstop
//! NetworkPolicies.
//!
//! - [`config`]: every flag, parsed and checked once;
//! - [`build`]: pure, client-free builders of the desired child objects;
//!
//! It must never log or put into status, an event or a metric any opened credential value.

pub mod build;
pub mod config;

/// Entry point of the `sealpod-operator` binary.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("sealpod-operator is not implemented yet")
}
