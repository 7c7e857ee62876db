//! The sealpod sidecar: the in-pod egress proxy that swaps sealed tokens for real keys on the
//! credential's bound hosts and refuses every other destination, plus the `lock` subcommand that
//! programs nftables so that only the proxy can leave the pod.
//!
//! It must never let a real key reach the sandbox, and never dial before deciding.

/// Entry point of the `sealpod-sidecar` binary.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("sealpod-sidecar is not implemented yet")
}
