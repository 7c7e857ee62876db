//! Redacting wrappers for every secret sealpod handles: model keys, sealed tokens, org API keys,
//! client tokens, runtime tokens and private sealing keys.
//!
//! `Debug`, `Display` and `Serialize` print `[redacted]`; the value is zeroized on drop and is
//! reachable only through [`Secret::expose`], which the one place that writes it calls. This
//! module must never offer a way to format the inner value.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// What every secret prints as.
pub const REDACTED: &str = "[redacted]";

/// A secret string. Prints as `[redacted]` everywhere; zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The inner value. Call it only where the value is written to its one legitimate sink
    /// (an HTTP header to the bound host, a hash, a sealed ciphertext).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last four characters, for display (`last4`), or fewer for a short value.
    pub fn last4(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    }

    /// Compares with another value in time independent of where they differ.
    pub fn constant_time_eq(&self, other: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), other.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// Secret bytes (private keys). Prints as `[redacted]`; zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps bytes.
    pub fn new(value: Vec<u8>) -> Self {
        Self(value)
    }

    /// The inner bytes, for the one place that uses them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// Prefix of a sealed token, the placeholder the sandbox holds instead of a real key.
pub const SEALED_TOKEN_PREFIX: &str = "sp_sealed_";

/// Length of a sealed token: the prefix plus 32 lowercase hex characters.
pub const SEALED_TOKEN_LEN: usize = SEALED_TOKEN_PREFIX.len() + 32;

/// A sealed token: `sp_sealed_` + 32 lowercase hex, random per session and credential.
///
/// It is not the real key, but it still identifies a credential binding, so it is redacted like
/// any other secret.
#[derive(Clone, PartialEq, Eq, Hash, Zeroize, ZeroizeOnDrop)]
pub struct SealedToken(String);

impl SealedToken {
    /// A new random sealed token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(format!("{SEALED_TOKEN_PREFIX}{}", hex::encode(bytes)))
    }

    /// The sealed token of zeros: a fixed stand-in where a plan's identity is blanked (a pool's
    /// template, whose every pod gets its own token). Never written into a pod.
    pub fn zeroed() -> Self {
        Self(format!("{SEALED_TOKEN_PREFIX}{}", "0".repeat(32)))
    }

    /// Parses a sealed token, checking its exact shape.
    pub fn parse(value: &str) -> Result<Self, InvalidSealedToken> {
        if is_sealed_token(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidSealedToken)
        }
    }

    /// The token, for the one place that writes it (the runtime's environment, the proxy config).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// True when `value` has the exact shape of a sealed token.
pub fn is_sealed_token(value: &str) -> bool {
    value.len() == SEALED_TOKEN_LEN
        && value.starts_with(SEALED_TOKEN_PREFIX)
        && value[SEALED_TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A value that is not a well-formed sealed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a sealed token (expected `{SEALED_TOKEN_PREFIX}` followed by 32 lowercase hex characters)"
)]
pub struct InvalidSealedToken;

impl fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SealedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SealedToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for SealedToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Returns `len` random bytes encoded as lowercase hex, for tokens and keys minted by sealpod.
pub fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAKE_KEY: &str = "sk-ant-test-0123456789abcdefXYZ9";

    #[test]
    fn no_secret_type_can_be_printed() {
        let secret = Secret::new(FAKE_KEY);
        let bytes = SecretBytes::new(FAKE_KEY.as_bytes().to_vec());
        let sealed = SealedToken::generate();
        let raw_sealed = sealed.expose().to_owned();
        let printed = [
            format!("{secret}"),
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{bytes:?}"),
            format!("{sealed}"),
            format!("{sealed:?}"),
            serde_json::to_string(&secret).expect("serialize"),
            serde_json::to_string(&bytes).expect("serialize"),
            serde_json::to_string(&sealed).expect("serialize"),
            serde_json::to_string(&serde_json::json!({ "nested": [secret.clone()] }))
                .expect("serialize"),
        ];
        for line in printed {
            assert!(!line.contains(FAKE_KEY), "leaked: {line}");
            assert!(!line.contains(&raw_sealed), "leaked: {line}");
            assert!(!line.contains("sk-ant"), "leaked part: {line}");
            assert!(line.contains(REDACTED), "{line}");
        }
    }

    #[test]
    fn expose_and_last4() {
        let secret = Secret::new(FAKE_KEY);
        assert_eq!(secret.expose(), FAKE_KEY);
        assert_eq!(secret.last4(), "XYZ9");
        assert_eq!(Secret::new("ab").last4(), "ab");
        assert!(secret.constant_time_eq(FAKE_KEY));
        assert!(!secret.constant_time_eq("sk-ant-test-0123456789abcdefXYZ8"));
        assert!(!secret.constant_time_eq("short"));
    }

    #[test]
    fn secrets_deserialize_from_their_value() {
        let secret: Secret = serde_json::from_str("\"k\"").expect("deserialize");
        assert_eq!(secret.expose(), "k");
    }

    #[test]
    fn sealed_tokens_have_the_contract_shape() {
        let a = SealedToken::generate();
        let b = SealedToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), SEALED_TOKEN_LEN);
        assert!(is_sealed_token(a.expose()));
        assert!(SealedToken::parse(a.expose()).is_ok());
        assert!(SealedToken::parse(SealedToken::zeroed().expose()).is_ok());
        for bad in [
            "",
            "sp_sealed_",
            "sp_sealed_0123456789abcdef0123456789abcdeF",
            "sp_sealed_0123456789abcdef0123456789abcde",
            "sp_sealed_0123456789abcdef0123456789abcdef0",
            "osb_sealed_0123456789abcdef0123456789abcdef",
            "sp_sealed_0123456789abcdef0123456789abcdeg",
        ] {
            assert_eq!(SealedToken::parse(bad), Err(InvalidSealedToken), "{bad}");
        }
        let parsed: Result<SealedToken, _> = serde_json::from_str("\"nope\"");
        assert!(parsed.is_err());
    }
}
