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
mod gate;
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

/// Crate-private functions for the fuzz targets in `fuzz/` (built with `--cfg fuzzing` only), as
/// one-line wrappers: a normal build has no such module and exposes nothing more. Not an API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use std::sync::Arc;

    use bytes::Bytes;
    use http::{HeaderMap, Request, Uri, Version};
    use http_body::Body;
    use sealpod_resources::proxy_config::HeaderSlot;
    use sealpod_resources::runtime_api::Usage;
    use sealpod_resources::secret::Secret;

    pub use crate::allowlist::Allowlist;
    use crate::redact::Needle;
    pub use crate::swap::Credential;
    use crate::target::Target;

    pub fn request_names(t: &Target, v: Version, uri: &Uri, h: &HeaderMap, port: u16) -> bool {
        crate::target::request_names(t, v, uri, h, port)
    }
    pub fn find_misuse(
        req: &Request<()>,
        t: &Target,
        c: &[Arc<Credential>],
        a: &Allowlist,
    ) -> Option<usize> {
        crate::tripwire::find_misuse(req, t, c, a)
    }
    pub fn carries_token(text: &str, c: &[Arc<Credential>]) -> bool {
        crate::tripwire::carries_token(text, c)
    }
    pub fn scrub(text: &str) -> String {
        crate::tripwire::scrub(text).into_owned()
    }
    pub fn swap_slots(
        h: &mut HeaderMap,
        sealed: &str,
        slots: &[HeaderSlot],
        real: &Secret,
    ) -> usize {
        crate::swap::swap_slots(h, sealed, slots, real)
    }
    /// `(real, sealed)` pairs as the redactor's needles.
    fn needles(pairs: &[(&str, &str)]) -> Vec<Needle> {
        pairs
            .iter()
            .map(|(real, sealed)| Needle::new(real, sealed))
            .collect()
    }
    pub fn replace_all(input: &[u8], pairs: &[(&str, &str)]) -> Vec<u8> {
        crate::redact::replace_all(input, &needles(pairs)).0
    }
    pub fn redact_headers(h: &mut HeaderMap, pairs: &[(&str, &str)]) -> usize {
        crate::redact::redact_headers(h, &needles(pairs))
    }
    pub fn redacting<B: Body<Data = Bytes> + Unpin>(
        inner: B,
        pairs: &[(&str, &str)],
    ) -> impl Body<Data = Bytes, Error = B::Error> + Unpin {
        crate::redact::Redacting::new(inner, needles(pairs), Arc::default())
    }

    /// The usage scanner of one response body.
    #[derive(Debug)]
    pub struct MeterScan(crate::meter::Scan);

    impl MeterScan {
        pub fn new(content_type: Option<&str>) -> Self {
            Self(crate::meter::Scan::new(content_type))
        }
        pub fn feed(&mut self, data: &[u8]) {
            self.0.feed(data);
        }
        /// Bytes held, and the bound the scanner documents for them.
        pub fn held(&self) -> (usize, usize) {
            self.0.held()
        }
        pub fn finish(self) -> Option<Usage> {
            self.0.finish()
        }
    }
}
