//! The sealpod API server: the `/v3` REST and SSE API over the custom resources, the durable
//! event log, client tokens, credentials (sealed on arrival) and the runtime API.
//!
//! It holds only the sealing public key; it must never return or log a key or token.

/// Entry point of the `sealpod-api-server` binary.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("sealpod-api-server is not implemented yet")
}
