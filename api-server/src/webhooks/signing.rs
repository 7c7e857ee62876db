//! Delivery signing (API.md §8): `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`
//! with the SDK's secret-to-key rule. Pure functions; never logs or returns the secret.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// A decoder as lenient as the browser's `atob` on padding and trailing bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The HMAC key of a secret, exactly as the SDK verifier derives it: strip `whsec_`; when the
/// remainder base64-decodes to non-empty bytes that re-encode to the same text (ignoring `=`),
/// those bytes; otherwise the UTF-8 bytes of the original secret (prefix included).
pub fn key_bytes(secret: &str) -> Vec<u8> {
    let rest = secret.strip_prefix("whsec_").unwrap_or(secret);
    if let Ok(decoded) = LENIENT.decode(rest)
        && !decoded.is_empty()
        && STANDARD.encode(&decoded).trim_end_matches('=') == rest.trim_end_matches('=')
    {
        return decoded;
    }
    secret.as_bytes().to_vec()
}

/// The `webhook-signature` value for one delivery.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key_bytes(secret)).expect("hmac key");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rule_matches_the_sdk() {
        // Not base64 (or not round-tripping): the UTF-8 bytes of the original secret.
        assert_eq!(key_bytes("testsecret"), b"testsecret".to_vec());
        assert_eq!(
            key_bytes("whsec_not base64!"),
            b"whsec_not base64!".to_vec()
        );
        // Base64 after the prefix: the decoded bytes.
        assert_eq!(key_bytes("whsec_aGVsbG8="), b"hello".to_vec());
        assert_eq!(key_bytes("whsec_aGVsbG8"), b"hello".to_vec());
        assert_eq!(key_bytes("aGVsbG8="), b"hello".to_vec());
        // Empty remainder: raw bytes.
        assert_eq!(key_bytes("whsec_"), b"whsec_".to_vec());
    }

    #[test]
    fn signature_is_the_standard_webhooks_hmac() {
        // Reference value computed independently (openssl dgst -sha256 -hmac testsecret -binary
        // over "evt_1.1700000000.{}" | base64).
        let sig = signature("testsecret", "evt_1", 1_700_000_000, b"{}");
        assert_eq!(sig, "v1,XYG6wbu1VSwLSi6cQeDhdnszbNGJfdJKIbFc9lzWQ04=");
        assert_ne!(sig, signature("testsecret", "evt_2", 1_700_000_000, b"{}"));
        assert_ne!(sig, signature("other", "evt_1", 1_700_000_000, b"{}"));
    }
}
