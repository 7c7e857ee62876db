//! Who is calling: an org API key (a tenant namespace) or a session client token (one session,
//! scopes `read`/`steer`). Org keys are found by their SHA-256 in ConfigMaps labelled
//! `sealpod.dev/component=api-key` (a hash of a 192-bit random key opens nothing, so it needs no
//! Secret, and this server needs no access to a tenant's Secrets), cached by a watch so a new key
//! works without a restart.
//! Client tokens are `sct_<payload>.<mac>`, HMAC-SHA256 under a key kept in a system Secret.
//!
//! Keys and tokens are never logged or returned except the one time a token is minted.
//! `?token=` is honoured only on the SSE event stream ([`StreamCaller`]) and only for a client
//! token; an org key in a URL is refused everywhere, since URLs end up in logs and histories.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt as _;
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use sealpod_resources::labels::{API_KEY_HASH_ENTRY, COMPONENT_API_KEY, COMPONENT_LABEL};
use sealpod_resources::secret::{Secret, random_hex};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::kube::Cluster;

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

/// An org key's SHA-256, the cache's key (the bytes rather than the hex the records hold: a
/// request hashes its key and looks it up without encoding it).
type KeyHash = [u8; 32];

/// The cache of org key hashes → namespace.
#[derive(Debug, Default)]
pub struct OrgKeys {
    by_hash: RwLock<HashMap<KeyHash, (String, String)>>,
    ready: AtomicBool,
}

impl OrgKeys {
    /// The namespace an org key belongs to.
    pub fn namespace_of(&self, key: &str) -> Option<String> {
        let hash: KeyHash = Sha256::digest(key.as_bytes()).into();
        let map = self.by_hash.read().unwrap_or_else(|p| p.into_inner());
        map.get(&hash).map(|(ns, _)| ns.clone())
    }

    /// The namespace of the org key whose SHA-256 is `hash` (hex), while that key exists.
    pub fn namespace_of_hash(&self, hash: &str) -> Option<String> {
        let mut bytes = KeyHash::default();
        hex::decode_to_slice(hash, &mut bytes).ok()?;
        let map = self.by_hash.read().unwrap_or_else(|p| p.into_inner());
        map.get(&bytes).map(|(ns, _)| ns.clone())
    }

    /// True once the first list has been loaded.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The hash and owner of a record (`None` when it holds no 64-hex-digit hash).
    fn entry(record: &ConfigMap) -> Option<(KeyHash, (String, String))> {
        let text = record.data.as_ref()?.get(API_KEY_HASH_ENTRY)?.trim();
        let mut hash = KeyHash::default();
        hex::decode_to_slice(text, &mut hash).ok()?;
        Some((hash, (record.namespace()?, record.name_any())))
    }

    fn remove(&self, record: &ConfigMap) {
        let key = (record.namespace().unwrap_or_default(), record.name_any());
        let mut map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, v| *v != key);
    }

    fn apply(&self, record: &ConfigMap) {
        self.remove(record);
        if let Some((hash, owner)) = Self::entry(record) {
            let mut map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
            map.insert(hash, owner);
        }
    }

    /// Watches org key records (labelled ConfigMaps) in `namespaces` (empty: every namespace) and keeps the cache
    /// current; ready once each namespace has been listed. Runs forever.
    pub async fn run(&self, cluster: Cluster, namespaces: Vec<String>) {
        let client = cluster.client().clone();
        let config =
            watcher::Config::default().labels(&format!("{COMPONENT_LABEL}={COMPONENT_API_KEY}"));
        // One watch per served namespace (RBAC granted per namespace), or one for the cluster.
        let scopes: Vec<Option<String>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.into_iter().map(Some).collect()
        };
        let streams = scopes.iter().enumerate().map(|(i, scope)| {
            let api: Api<ConfigMap> = match scope {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            watcher(api, config.clone()).map(move |e| (i, e)).boxed()
        });
        let mut stream = futures::stream::select_all(streams);
        let mut pending: Vec<HashMap<KeyHash, (String, String)>> =
            vec![HashMap::new(); scopes.len()];
        let mut listed = vec![false; scopes.len()];
        while let Some((i, event)) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => pending[i].clear(),
                Ok(watcher::Event::InitApply(s)) => {
                    if let Some((hash, owner)) = Self::entry(&s) {
                        pending[i].insert(hash, owner);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let mut map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
                    // The fresh list replaces what this scope held before.
                    map.retain(|_, (ns, _)| scopes[i].as_ref().is_some_and(|scope| scope != ns));
                    map.extend(pending[i].drain());
                    listed[i] = true;
                    if listed.iter().all(|l| *l) {
                        self.ready.store(true, Ordering::Release);
                    }
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

/// The tenant of a console sign-in, attached by the console to each `/v3` request it forwards
/// for the signed-in operator: the request counts as made with that tenant's org key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleGrant {
    /// The tenant.
    pub namespace: String,
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

/// The `token` query parameters of a URL, decoded as forms are (`+` is a space, invalid UTF-8
/// becomes U+FFFD): the same decoding as the route's query, so both read the same token.
pub fn query_tokens(query: Option<&str>) -> Vec<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .collect()
}

/// The token of the `Authorization` (`Bearer …`) or `X-API-Key` header. A header that is not
/// visible ASCII cannot hold a key or token and counts as absent.
pub fn header_token(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| {
        headers
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
    header("x-api-key").map(str::to_owned)
}

/// True for what an org key looks like once a URL is decoded (spaces and a `Bearer ` around it
/// included): such a value is refused however it arrived.
fn looks_like_org_key(token: &str) -> bool {
    let token = token.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim_start();
    token.starts_with(ORG_KEY_PREFIX)
}

const ORG_KEY_IN_URL: &str = "org API keys are never accepted in URLs (they end up in logs and \
     browser history): send `Authorization: Bearer <key>`, and rotate a key that was sent in a URL";
const QUERY_TOKEN_ELSEWHERE: &str = "`?token=` is accepted only on the SSE event stream \
     (`GET /v3/sessions/{id}/events?stream=sse`) and only for a client token: send \
     `Authorization: Bearer <token>`";

/// Authenticates a request. `query_token` says whether this is the SSE event stream, the one
/// place a browser `EventSource` (which cannot set headers) passes a client token as `?token=`.
async fn authenticate(parts: &Parts, state: &AppState, query_token: bool) -> ApiResult<Caller> {
    let in_url = query_tokens(parts.uri.query());
    // An org key in a URL is refused even beside a good header: it has already leaked.
    if in_url.iter().any(|t| looks_like_org_key(t)) {
        tracing::warn!("an org API key was sent in a URL and refused; it should be rotated");
        return Err(ApiError::Unauthorized(ORG_KEY_IN_URL));
    }
    if !in_url.is_empty() && !query_token {
        return Err(ApiError::Unauthorized(QUERY_TOKEN_ELSEWHERE));
    }
    if in_url.len() > 1 {
        return Err(ApiError::Unauthorized("send one `token` query parameter"));
    }
    // A console request, already authenticated by its sign-in cookie (`console::session`); only
    // the server itself sets this extension, on the requests it forwards.
    if let Some(ConsoleGrant { namespace }) = parts.extensions.get::<ConsoleGrant>() {
        return Ok(Caller::Org {
            namespace: namespace.clone(),
        });
    }
    let token = match (header_token(&parts.headers), in_url.into_iter().next()) {
        (Some(token), _) => token,
        (None, Some(token)) if token.starts_with(CLIENT_TOKEN_PREFIX) => token,
        (None, Some(_)) => return Err(ApiError::Unauthorized(QUERY_TOKEN_ELSEWHERE)),
        (None, None) => {
            return Err(ApiError::Unauthorized(
                "missing credentials: send `Authorization: Bearer <key>`",
            ));
        }
    };
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

/// Every `/v3` route but the event stream: credentials in a header only.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Caller> {
        authenticate(parts, state, false).await
    }
}

/// The caller of `GET /v3/sessions/{id}/events`: as [`Caller`], and when the request asks for
/// the SSE stream, a client token may come as `?token=` instead (API.md §2.2, §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCaller(pub Caller);

impl FromRequestParts<AppState> for StreamCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<StreamCaller> {
        let stream = crate::input::query::<crate::sse::StreamParam>(parts.uri.query())
            .map(|q| q.stream)
            .unwrap_or_default();
        let sse = crate::sse::wants_sse(stream.as_deref(), &parts.headers);
        authenticate(parts, state, sse).await.map(StreamCaller)
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
    fn org_keys_hash_and_query_tokens_decode() {
        let (key, hash) = new_org_key();
        assert!(key.expose().starts_with("osb_"));
        assert_eq!(sha256_hex(key.expose()), hash);
        assert_eq!(query_tokens(Some("token=a%2Eb+c")), vec!["a.b c"]);
        assert_eq!(query_tokens(Some("token=abc%")), vec!["abc%"]);
        assert_eq!(query_tokens(Some("token=%a\u{e9}")), vec!["%a\u{e9}"]);
        assert_eq!(
            query_tokens(Some("%74oken=x&token=y&tokens=z")),
            vec!["x", "y"]
        );
        assert!(query_tokens(None).is_empty());
        for org in ["osb_1", " osb_1", "Bearer osb_1", "\tosb_1"] {
            assert!(looks_like_org_key(org), "{org}");
        }
        assert!(!looks_like_org_key("sct_osb_1"));
    }

    proptest::proptest! {
        #[test]
        fn credential_decoders_never_panic(raw in "[%+=&a-f0-9\\PC]{0,48}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            let key = ClientTokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
            let lossy = String::from_utf8_lossy(&bytes).into_owned();
            for text in [&raw, &lossy] {
                for token in query_tokens(Some(text)) {
                    let _ = looks_like_org_key(&token);
                    proptest::prop_assert_eq!(key.verify(&token), None);
                }
                proptest::prop_assert_eq!(key.verify(text), None);
            }
            if let Ok(value) = axum::http::HeaderValue::from_bytes(&bytes) {
                let mut headers = HeaderMap::new();
                headers.insert("authorization", value.clone());
                let _ = header_token(&headers);
                headers.clear();
                headers.insert("x-api-key", value);
                let _ = header_token(&headers);
            }
        }
    }
}
