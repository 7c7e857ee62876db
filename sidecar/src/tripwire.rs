//! The exfiltration tripwire: a sealed token in any header of a request to a host it is not bound
//! to.
//!
//! Pure: scans header values for the configured sealed tokens. The caller refuses the request,
//! counts it and emits `egress.token_misuse`; this module must never return or log the token.

use std::sync::Arc;

use http::HeaderMap;
use sealpod_resources::secret::SEALED_TOKEN_PREFIX;

use crate::allowlist::Allowlist;
use crate::swap::Credential;
use crate::target::Target;

/// The index of a credential whose sealed token appears in `headers` although `target` is not
/// one of its hosts, if any.
pub fn find_misuse(
    headers: &HeaderMap,
    target: &Target,
    credentials: &[Arc<Credential>],
    allowlist: &Allowlist,
) -> Option<usize> {
    let prefix = SEALED_TOKEN_PREFIX.as_bytes();
    for value in headers.values() {
        let bytes = value.as_bytes();
        // Cheap pre-filter: most headers never contain the prefix.
        if !bytes.windows(prefix.len()).any(|w| w == prefix) {
            continue;
        }
        for (i, cred) in credentials.iter().enumerate() {
            let token = cred.sealed().as_bytes();
            if bytes.windows(token.len()).any(|w| w == token)
                && !allowlist.credential_bound(i, target)
            {
                return Some(i);
            }
        }
    }
    None
}

/// True when a configured sealed token appears in `text` (a destination name: a token smuggled
/// into a host name is never bound to it).
pub fn carries_token(text: &str, credentials: &[Arc<Credential>]) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains(SEALED_TOKEN_PREFIX) && credentials.iter().any(|c| lower.contains(c.sealed()))
}

/// `text` with anything shaped like a sealed token replaced by `[redacted]`, for host names that
/// go into logs and events.
pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains(SEALED_TOKEN_PREFIX) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = &lower[..];
    let mut original = text;
    while let Some(i) = rest.find(SEALED_TOKEN_PREFIX) {
        out.push_str(&original[..i]);
        out.push_str(sealpod_resources::secret::REDACTED);
        let tail = &rest[i + SEALED_TOKEN_PREFIX.len()..];
        let run = tail.bytes().take_while(u8::is_ascii_alphanumeric).count();
        let skip = i + SEALED_TOKEN_PREFIX.len() + run;
        rest = &rest[skip..];
        original = &original[skip..];
    }
    out.push_str(original);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use sealpod_resources::proxy_config::{HostPattern, ValidatedCredential};
    use sealpod_resources::secret::SealedToken;

    const SEALED: &str = "sp_sealed_0123456789abcdef0123456789abcdef";

    #[test]
    fn flags_tokens_sent_elsewhere() {
        let cred = Arc::new(Credential::new(&ValidatedCredential {
            sealed: SealedToken::parse(SEALED).expect("s"),
            value_file: "/nonexistent".into(),
            hosts: vec![HostPattern::parse("api.anthropic.com").expect("p")],
            headers: vec![],
        }));
        let allow = Allowlist::new(
            vec![HostPattern::parse("evil.com").expect("p")],
            vec![vec![HostPattern::parse("api.anthropic.com").expect("p")]],
        );
        let creds = [cred];
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            HeaderValue::from_str(&format!("a=b; k={SEALED}")).expect("v"),
        );
        let t = |a: &str| Target::parse(a, 443).expect("target");
        assert_eq!(find_misuse(&h, &t("evil.com"), &creds, &allow), Some(0));
        assert_eq!(
            find_misuse(&h, &t("api.anthropic.com"), &creds, &allow),
            None
        );
        let mut clean = HeaderMap::new();
        clean.insert(
            "x-api-key",
            HeaderValue::from_static("sp_sealed_ffffffffffffffffffffffffffffffff"),
        );
        assert_eq!(find_misuse(&clean, &t("evil.com"), &creds, &allow), None);
        assert!(carries_token(
            &format!(
                "{}.evil.com",
                SEALED.to_uppercase().replace("SP_SEALED_", "sp_sealed_")
            ),
            &creds
        ));
        assert!(!carries_token("api.anthropic.com", &creds));
    }

    #[test]
    fn scrub_hides_token_shapes() {
        assert_eq!(scrub("api.anthropic.com"), "api.anthropic.com");
        assert_eq!(scrub(&format!("{SEALED}.evil.com")), "[redacted].evil.com");
        assert_eq!(
            scrub(&format!("a.SP_SEALED_ABC.b.{SEALED}")),
            "a.[redacted].b.[redacted]"
        );
    }
}
