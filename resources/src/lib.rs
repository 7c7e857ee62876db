//! Types shared by every sealpod part: the `Agent`, `Session` and `Credential` custom resources,
//! API ids and their object names, condition/label/annotation/field-manager constants, sealing
//! crypto and redacting secret types.
//!
//! This crate does no I/O: it must stay usable from the operator, the API server, the sidecar, the
//! runtime and tests alike.

pub mod ids;
pub mod proxy_config;
pub mod secret;
