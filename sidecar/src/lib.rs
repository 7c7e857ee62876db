//! The sealpod sidecar: the in-pod egress proxy that swaps sealed tokens for real keys on the
//! credential's bound hosts and refuses every other destination, plus the `lock` subcommand that
//! programs nftables so that only the proxy can leave the pod.
//!
//! It must never let a real key reach the sandbox, and never dial before deciding.
//!
//! Modules, in request order: [`config`] (load, validate) → [`running`] (start, bind, serve) →
//! [`server`] (accept, `CONNECT`, plain HTTP) → [`target`] → [`tripwire`] → [`allowlist`] →
//! [`resolve`] + [`ssrf`] → [`tunnel`] or [`intercept`] ([`tls`], [`ca`], [`gate`], [`swap`]) →
//! [`relay`] (responses, [`redact`], [`meter`]) → [`respond`], with [`audit`] recording each
//! relayed request and tunnel (its request bodies [`counted`]); beside them [`proxy`] (the shared
//! state every connection reads), [`events`] and [`gate`] (both through [`sink`]), [`metrics`],
//! [`admin`], and [`lock`]. Imports point one way: down this list, never back up.

mod admin;
mod allowlist;
mod audit;
mod ca;
pub mod cli;
pub mod config;
mod counted;
pub mod events;
pub mod gate;
mod intercept;
mod lock;
mod meter;
mod metrics;
mod proxy;
mod redact;
mod relay;
pub mod resolve;
mod respond;
pub mod running;
mod server;
mod sink;
pub mod ssrf;
mod swap;
pub mod target;
pub mod tls;
mod tripwire;
mod tunnel;
