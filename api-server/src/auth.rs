//! Who is calling: an org API key (a tenant namespace) or a session client token (one session,
//! scopes `read`/`steer`). Org keys are found by their SHA-256 in Secrets labelled
//! `sealpod.dev/component=api-key`, cached by a watch so a new key works without a restart.
//! Client tokens are `sct_<payload>.<mac>`, HMAC-SHA256 under a key kept in a system Secret.
//!
//! Keys and tokens are never logged or returned except the one time a token is minted.
//! `?token=` is honoured on GET routes only.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt as _;
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use sealpod_resources::labels::{COMPONENT_API_KEY, COMPONENT_LABEL};
use sealpod_resources::secret::{Secret, random_hex};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::kube::{API_KEY_HASH_ENTRY, Cluster};

/// Prefix of org API keys.
pub const ORG_KEY_PREFIX: &str = "osb_";
/// Prefix of client tokens.
pub const CLIENT_TOKEN_PREFIX: &str = "sct_";
/// Shortest client-token lifetime.
pub const MIN_TTL: i64 = 60;
/// Longest client-token lifetime.
pub const MAX_TTL: i64 = 86_400;
/// Default client-token lifetime.
pub const DEFAULT_TTL: i64 = 3_600;

/// A new org API key: `osb_` + 48 hex characters, and its SHA-256 (hex).
pub fn new_org_key() -> (Secret, String) {
    let key = Secret::new(format!("{ORG_KEY_PREFIX}{}", random_hex(24)));
    let hash = sha256_hex(key.expose());
    (key, hash)
}

/// SHA-256 of a string, hex.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// The cache of org key hashes → namespace.
#[derive(Debug, Default)]
pub struct OrgKeys {
    by_hash: RwLock<HashMap<String, (String, String)>>,
    ready: AtomicBool,
}

impl OrgKeys {
    /// The namespace an org key belongs to.
    pub fn namespace_of(&self, key: &str) -> Option<String> {
        let hash = sha256_hex(key);
        let map = self.by_hash.read().unwrap_or_else(|p| p.into_inner());
        map.get(&hash).map(|(ns, _)| ns.clone())
    }

    /// True once the first list has been loaded.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn entry(secret: &K8sSecret) -> Option<(String, (String, String))> {
        let hash = secret.data.as_ref()?.get(API_KEY_HASH_ENTRY)?;
        let hash = String::from_utf8(hash.0.clone())
            .ok()?
            .trim()
            .to_ascii_lowercase();
        Some((hash, (secret.namespace()?, secret.name_any())))
    }

    fn remove(&self, secret: &K8sSecret) {
        let key = (secret.namespace().unwrap_or_default(), secret.name_any());
        let mut map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, v| *v != key);
    }

    fn apply(&self, secret: &K8sSecret) {
        self.remove(secret);
        if let Some((hash, owner)) = Self::entry(secret) {
            let mut map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
            map.insert(hash, owner);
        }
    }

    /// Watches org key Secrets in every namespace and keeps the cache current. Runs forever.
    pub async fn run(&self, cluster: Cluster) {
        let api: Api<K8sSecret> = Api::all(cluster.client().clone());
        let config =
            watcher::Config::default().labels(&format!("{COMPONENT_LABEL}={COMPONENT_API_KEY}"));
        let mut stream = watcher(api, config).boxed();
        let mut pending: HashMap<String, (String, String)> = HashMap::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => pending.clear(),
                Ok(watcher::Event::InitApply(s)) => {
                    if let Some((hash, owner)) = Self::entry(&s) {
                        pending.insert(hash, owner);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let mut map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
                    *map = std::mem::take(&mut pending);
                    self.ready.store(true, Ordering::Release);
                }
                Ok(watcher::Event::Apply(s)) => self.apply(&s),
                Ok(watcher::Event::Delete(s)) => self.remove(&s),
                Err(e) => {
                    tracing::warn!(error = %e, "org key watch failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Scopes of a client token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes {
    /// May read events and messages.
    pub read: bool,
    /// May steer.
    pub steer: bool,
}

impl Scopes {
    /// The wire list.
    pub fn to_list(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.read {
            v.push("read");
        }
        if self.steer {
            v.push("steer");
        }
        v
    }

    fn code(self) -> &'static str {
        match (self.read, self.steer) {
            (true, true) => "rs",
            (true, false) => "r",
            (false, true) => "s",
            (false, false) => "-",
        }
    }

    fn parse(code: &str) -> Option<Scopes> {
        match code {
            "rs" => Some(Scopes {
                read: true,
                steer: true,
            }),
            "r" => Some(Scopes {
                read: true,
                steer: false,
            }),
            "s" => Some(Scopes {
                read: false,
                steer: true,
            }),
            _ => None,
        }
    }
}

/// The verified claims of a client token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientClaims {
    /// Tenant.
    pub namespace: String,
    /// `ses_…`
    pub session: String,
    /// Scopes.
    pub scopes: Scopes,
    /// Issued at (Unix seconds).
    pub issued_at: i64,
    /// Expires at (Unix seconds).
    pub expires_at: i64,
}

/// The HMAC key of client tokens.
#[derive(Clone)]
pub struct ClientTokenKey(Vec<u8>);

impl std::fmt::Debug for ClientTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTokenKey([redacted])")
    }
}

impl ClientTokenKey {
    /// A key from bytes.
    pub fn new(bytes: Vec<u8>) -> ClientTokenKey {
        ClientTokenKey(bytes)
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(payload.as_bytes());
        mac
    }

    /// Mints a token.
    pub fn mint(&self, claims: &ClientClaims) -> Secret {
        let payload = URL_SAFE_NO_PAD.encode(format!(
            "{}:{}:{}:{}:{}:{}",
            claims.namespace,
            claims.session,
            claims.scopes.code(),
            claims.issued_at,
            claims.expires_at,
            random_hex(8)
        ));
        let tag = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        Secret::new(format!("{CLIENT_TOKEN_PREFIX}{payload}.{tag}"))
    }

    /// Verifies a token's signature and shape (not its expiry).
    pub fn verify(&self, token: &str) -> Option<ClientClaims> {
        let rest = token.strip_prefix(CLIENT_TOKEN_PREFIX)?;
        let (payload, tag) = rest.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(payload).verify_slice(&tag).ok()?;
        let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let parts: Vec<&str> = decoded.split(':').collect();
        let [ns, session, scopes, iat, exp, _nonce] = parts.as_slice() else {
            return None;
        };
        Some(ClientClaims {
            namespace: (*ns).to_owned(),
            session: (*session).to_owned(),
            scopes: Scopes::parse(scopes)?,
            issued_at: iat.parse().ok()?,
            expires_at: exp.parse().ok()?,
        })
    }
}

/// The authenticated caller of a `/v3` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An org API key of this namespace.
    Org {
        /// The tenant.
        namespace: String,
    },
    /// A client token.
    Client(ClientClaims),
}

/// What a session route needs from a client token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read events/messages.
    Read,
    /// Steer.
    Steer,
}

impl Caller {
    /// The namespace of an org-key caller; a client token gets 403.
    pub fn org(&self) -> ApiResult<&str> {
        match self {
            Caller::Org { namespace } => Ok(namespace),
            Caller::Client(_) => Err(ApiError::Forbidden(
                "this route needs the org API key; a client token cannot call it",
            )),
        }
    }

    /// Checks access to one session's read or steer routes and returns its namespace.
    pub async fn session(&self, state: &AppState, session: &str, need: Need) -> ApiResult<String> {
        match self {
            Caller::Org { namespace } => Ok(namespace.clone()),
            Caller::Client(claims) => {
                if claims.session != session {
                    return Err(ApiError::NotFound("session"));
                }
                let allowed = match need {
                    Need::Read => claims.scopes.read,
                    Need::Steer => claims.scopes.steer,
                };
                if !allowed {
                    return Err(ApiError::Forbidden(match need {
                        Need::Read => "this client token has no `read` scope",
                        Need::Steer => "this client token has no `steer` scope",
                    }));
                }
                if let Some(before) = state.store().client_tokens_revoked_before(session).await?
                    && claims.issued_at <= before
                {
                    return Err(ApiError::Unauthorized("this client token was revoked"));
                }
                Ok(claims.namespace.clone())
            }
        }
    }
}

fn presented_token(parts: &Parts) -> Option<String> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(auth) = header("authorization") {
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .unwrap_or(auth);
        return Some(token.trim().to_owned());
    }
    if let Some(key) = header("x-api-key") {
        return Some(key.to_owned());
    }
    if parts.method == Method::GET {
        let query = parts.uri.query()?;
        for pair in query.split('&') {
            if let Some(v) = pair.strip_prefix("token=") {
                return Some(percent_decode(v));
            }
        }
    }
    None
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&value[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Caller> {
        let token = presented_token(parts).ok_or(ApiError::Unauthorized(
            "missing credentials: send `Authorization: Bearer <key>`",
        ))?;
        if token.starts_with(ORG_KEY_PREFIX) {
            return match state.org_keys().namespace_of(&token) {
                Some(namespace) => Ok(Caller::Org { namespace }),
                None => Err(ApiError::Unauthorized("unknown API key")),
            };
        }
        if token.starts_with(CLIENT_TOKEN_PREFIX) {
            let claims = state
                .client_key()
                .verify(&token)
                .ok_or(ApiError::Unauthorized("invalid client token"))?;
            if claims.expires_at <= chrono::Utc::now().timestamp() {
                return Err(ApiError::Unauthorized("client token expired"));
            }
            return Ok(Caller::Client(claims));
        }
        Err(ApiError::Unauthorized("invalid credentials"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ClientClaims {
        ClientClaims {
            namespace: "tenant-a".into(),
            session: "ses_abc".into(),
            scopes: Scopes {
                read: true,
                steer: false,
            },
            issued_at: 100,
            expires_at: 200,
        }
    }

    #[test]
    fn client_tokens_verify_only_under_their_key() {
        let key = ClientTokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let token = key.mint(&claims());
        assert!(token.expose().starts_with(CLIENT_TOKEN_PREFIX));
        assert_eq!(key.verify(token.expose()), Some(claims()));
        let other = ClientTokenKey::new(b"another key, also long enough!!!".to_vec());
        assert_eq!(other.verify(token.expose()), None);
        let mut forged = token.expose().to_owned();
        forged.insert(6, 'x');
        assert_eq!(key.verify(&forged), None);
        assert_eq!(key.verify("sct_"), None);
    }

    #[test]
    fn org_keys_hash_and_percent_decoding() {
        let (key, hash) = new_org_key();
        assert!(key.expose().starts_with("osb_"));
        assert_eq!(sha256_hex(key.expose()), hash);
        assert_eq!(percent_decode("a%2Eb+c"), "a.b c");
        assert_eq!(percent_decode("abc%"), "abc%");
    }
}
