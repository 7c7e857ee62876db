//! Per-session runtime tokens: what the in-sandbox runtime (scope `runtime`) and the sidecar's
//! egress-event sink (scope `proxy`) present to the API server's runtime API.
//!
//! A token is `sprt_<payload>.<mac>` where the payload is base64url of
//! `<scope>:<namespace>:<session object name>:<nonce>:<session object uid>` and the MAC is
//! HMAC-SHA256 under the cluster's runtime-token key (a Secret the operator creates on first
//! start and the API server reads). The operator mints tokens into each session's runtime Secret;
//! the API server verifies them without a lookup and checks its revocation list (the operator
//! revokes a session's tokens when the Session is deleted). A token reaches only its own session
//! and scope, and only the Session object it was minted for: a Session deleted and applied again
//! under the same name is another object, which the old tokens do not reach. Tokens minted
//! before the uid was part of them (four parts) still verify, without a uid.
//!
//! Tokens are [`Secret`]s: never logged or returned.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::{Secret, SecretBytes, random_hex};

/// Prefix of every runtime token.
pub const RUNTIME_TOKEN_PREFIX: &str = "sprt_";
/// Name of the Secret (operator's namespace) holding the token key under [`TOKEN_KEY_ENTRY`].
pub const TOKEN_KEY_SECRET: &str = "sealpod-runtime-token-key";
/// Entry of [`TOKEN_KEY_SECRET`].
pub const TOKEN_KEY_ENTRY: &str = "key";
/// Name of the Secret (operator's namespace) holding the HMAC key of the API server's client
/// tokens under [`TOKEN_KEY_ENTRY`]: 64 hex characters, used as bytes. The operator creates it
/// with the other keys, so an API server without the right to create Secrets finds it.
pub const CLIENT_TOKEN_KEY_SECRET: &str = "sealpod-client-token-key";

/// A new client-token key, in the form [`CLIENT_TOKEN_KEY_SECRET`] holds.
pub fn generate_client_token_key() -> Vec<u8> {
    random_hex(32).into_bytes()
}
/// Key, in a session's runtime Secret, of the runtime container's token.
pub const RUNTIME_SECRET_TOKEN_ENTRY: &str = "token";
/// Key, in a session's runtime Secret, of the session's id (`ses_…`): what the runtime serves.
pub const RUNTIME_SECRET_SESSION_ENTRY: &str = "session-id";
/// Key, in a session's proxy Secret, of the sidecar's egress-event token.
pub const PROXY_SECRET_EVENTS_TOKEN_ENTRY: &str = "events-token";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The runtime: claim input, append events, complete turns, read signals.
    Runtime,
    /// The sidecar: post egress events only.
    Proxy,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Runtime => "runtime",
            Scope::Proxy => "proxy",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        match s {
            "runtime" => Some(Scope::Runtime),
            "proxy" => Some(Scope::Proxy),
            _ => None,
        }
    }
}

/// The verified claims of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The scope.
    pub scope: Scope,
    /// Namespace of the session.
    pub namespace: String,
    /// Object name of the session.
    pub session: String,
    /// Random per mint.
    pub nonce: String,
    /// The Session object's `metadata.uid` (`None` in tokens minted before it was recorded).
    pub object_uid: Option<String>,
}

/// Why a token was refused. Deliberately coarse: the caller answers 401 for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a runtime token, or its parts do not decode.
    #[error("malformed runtime token")]
    Malformed,
    /// The MAC does not verify.
    #[error("runtime token signature does not verify")]
    BadSignature,
}

/// The HMAC key shared by the operator (mints) and the API server (verifies).
#[derive(Debug, Clone)]
pub struct TokenKey(SecretBytes);

impl TokenKey {
    /// A new random key.
    pub fn generate() -> TokenKey {
        TokenKey(SecretBytes::new(random_hex(32).into_bytes()))
    }

    /// A key from stored bytes (at least 32).
    pub fn from_bytes(bytes: &[u8]) -> Option<TokenKey> {
        (bytes.len() >= 32).then(|| TokenKey(SecretBytes::new(bytes.to_vec())))
    }

    /// The key bytes, for storing in its Secret.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose())
            .expect("HMAC takes keys of any length");
        mac.update(payload.as_bytes());
        mac
    }

    /// Mints a token for one scope of the Session object `session` (its name) whose uid is
    /// `object_uid`.
    pub fn mint(&self, scope: Scope, namespace: &str, session: &str, object_uid: &str) -> Secret {
        let nonce = random_hex(12);
        let payload = URL_SAFE_NO_PAD.encode(format!(
            "{}:{namespace}:{session}:{nonce}:{object_uid}",
            scope.as_str()
        ));
        let tag = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        Secret::new(format!("{RUNTIME_TOKEN_PREFIX}{payload}.{tag}"))
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        let rest = token
            .strip_prefix(RUNTIME_TOKEN_PREFIX)
            .ok_or(TokenError::Malformed)?;
        let (payload, tag) = rest.split_once('.').ok_or(TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(payload)
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let decoded = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let decoded = String::from_utf8(decoded).map_err(|_| TokenError::Malformed)?;
        let mut parts = decoded.split(':');
        let (Some(scope), Some(namespace), Some(session), Some(nonce), object_uid, None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        Ok(TokenClaims {
            scope: Scope::parse(scope).ok_or(TokenError::Malformed)?,
            namespace: namespace.to_owned(),
            session: session.to_owned(),
            nonce: nonce.to_owned(),
            object_uid: object_uid.filter(|u| !u.is_empty()).map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_to_their_claims_only() {
        let key = TokenKey::generate();
        let token = key.mint(Scope::Runtime, "tenant-a", "ses-abc", "uid-1");
        assert_eq!(format!("{token:?}"), "[redacted]");
        let claims = key.verify(token.expose()).expect("verifies");
        assert_eq!(claims.scope, Scope::Runtime);
        assert_eq!(claims.namespace, "tenant-a");
        assert_eq!(claims.session, "ses-abc");
        assert_eq!(claims.object_uid.as_deref(), Some("uid-1"));
        let again = key.mint(Scope::Runtime, "tenant-a", "ses-abc", "uid-1");
        assert_ne!(key.verify(again.expose()).expect("ok").nonce, claims.nonce);

        let proxy = key.mint(Scope::Proxy, "tenant-a", "ses-abc", "uid-1");
        assert_eq!(key.verify(proxy.expose()).expect("ok").scope, Scope::Proxy);
    }

    #[test]
    fn forged_or_foreign_tokens_are_refused() {
        let key = TokenKey::generate();
        let other = TokenKey::generate();
        let token = key.mint(Scope::Runtime, "tenant-a", "ses-abc", "uid-1");
        assert_eq!(other.verify(token.expose()), Err(TokenError::BadSignature));

        // Re-pointing the payload at another session breaks the MAC.
        let (payload, tag) = token.expose()[RUNTIME_TOKEN_PREFIX.len()..]
            .split_once('.')
            .expect("two parts");
        let decoded =
            String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("utf8");
        let forged_payload = URL_SAFE_NO_PAD.encode(decoded.replace("ses-abc", "ses-xyz"));
        let forged = format!("{RUNTIME_TOKEN_PREFIX}{forged_payload}.{tag}");
        assert_eq!(key.verify(&forged), Err(TokenError::BadSignature));

        for bad in ["", "sprt_", "sprt_abc", "osb_x.y", "sprt_!!.!!"] {
            assert!(key.verify(bad).is_err(), "{bad}");
        }
        assert!(TokenKey::from_bytes(b"short").is_none());
    }

    #[test]
    fn tokens_minted_before_the_uid_verify_without_one() {
        let key = TokenKey::generate();
        let sign = |text: &str| {
            let payload = URL_SAFE_NO_PAD.encode(text);
            let tag = URL_SAFE_NO_PAD.encode(key.mac(&payload).finalize().into_bytes());
            format!("{RUNTIME_TOKEN_PREFIX}{payload}.{tag}")
        };
        let legacy = key
            .verify(&sign("runtime:tenant-a:ses-abc:0123"))
            .expect("four parts verify");
        assert_eq!(legacy.object_uid, None);
        assert_eq!(legacy.session, "ses-abc");
        for bad in [
            "runtime:tenant-a:ses-abc",
            "runtime:a:ses-abc:0123:uid:more",
        ] {
            assert_eq!(key.verify(&sign(bad)), Err(TokenError::Malformed), "{bad}");
        }
    }
}
