//! The sealpod runtime: the agent loop inside the sandbox. It claims input from the runtime API,
//! calls the model through the egress proxy with only a sealed token, runs tools in the
//! workspace and appends events.
//!
//! It never sees a real model key.

/// Entry point of the `sealpod-runtime` binary.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("sealpod-runtime is not implemented yet")
}
