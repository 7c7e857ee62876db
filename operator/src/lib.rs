//! The sealpod operator: reconciles `Agent`, `Credential` and `Session` custom resources into
//! locked-down sandbox pods, per-session proxy and runtime Secrets and backstop NetworkPolicies.
//!
//! Module map (filled in by the operator work):
//! - `controller::{credential, agent, session}`: one reconcile pipeline each
//!   (fetch → validate → build → apply → status);
//! - `build`: pure, client-free builders of the desired child objects;
//! - `apply`: server-side apply under [`sealpod_resources::labels::OPERATOR_FIELD_MANAGER`].
//!
//! It must never log or put into status any opened credential value.

/// Entry point of the `sealpod-operator` binary.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("sealpod-operator is not implemented yet")
}
