//! The exfiltration tripwire: a sealed token anywhere in the head of a request to a host it is not
//! bound to.
//!
//! Pure: scans the whole request head (method, URI with path and query, header names and values)
//! for the configured sealed tokens, in any ASCII case. The caller refuses the request, counts it
//! and emits `egress.token_misuse`; this module must never return or log the token. Scanning less
//! than the whole head (header values only, say) lets a token ride out in a path, a query or a
//! header name.

use std::sync::Arc;

use http::Request;
use sealpod_resources::secret::SEALED_TOKEN_PREFIX;

use crate::allowlist::Allowlist;
use crate::swap::Credential;
use crate::target::Target;

/// The index of a credential whose sealed token appears anywhere in the head of `req` (method,
/// URI, header names and values) although `target` is not one of its hosts, if any.
pub(crate) fn find_misuse<B>(
    req: &Request<B>,
    target: &Target,
    credentials: &[Arc<Credential>],
    allowlist: &Allowlist,
) -> Option<usize> {
    let uri = req.uri();
    let line = [
        req.method().as_str(),
        uri.scheme_str().unwrap_or_default(),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path_and_query().map_or("", |p| p.as_str()),
    ];
    let head = line.into_iter().map(str::as_bytes).chain(
        req.headers()
            .iter()
            .flat_map(|(name, value)| [name.as_str().as_bytes(), value.as_bytes()]),
    );
    for part in head {
        for i in tokens_in(part, credentials) {
            if !allowlist.credential_bound(i, target) {
                return Some(i);
            }
        }
    }
    None
}

/// True when a configured sealed token appears in `text` (a destination name: a token smuggled
/// into a host name is never bound to it).
pub(crate) fn carries_token(text: &str, credentials: &[Arc<Credential>]) -> bool {
    tokens_in(text.as_bytes(), credentials).next().is_some()
}

/// The indices of the credentials whose sealed token appears in `bytes` (ASCII case ignored).
fn tokens_in<'a>(
    bytes: &'a [u8],
    credentials: &'a [Arc<Credential>],
) -> impl Iterator<Item = usize> + 'a {
    // Cheap pre-filter: most parts of a head never contain the prefix.
    let candidate = contains(bytes, SEALED_TOKEN_PREFIX.as_bytes());
    credentials
        .iter()
        .enumerate()
        .filter(move |(_, c)| candidate && contains(bytes, c.sealed().as_bytes()))
        .map(|(i, _)| i)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// `text` with anything shaped like a sealed token replaced by `[redacted]`, for host names that
/// go into logs and events.
pub(crate) fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
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
        let t = |a: &str| Target::parse(a, 443).expect("target");
        let upper = SEALED.to_uppercase();
        let other = "sp_sealed_ffffffffffffffffffffffffffffffff";
        // (method, URI, header name, header value, carries credential 0's token)
        let cases: &[(&str, String, &str, String, bool)] = &[
            (
                "GET",
                "/".into(),
                "cookie",
                format!("a=b; k={SEALED}"),
                true,
            ),
            ("GET", format!("/v1/{SEALED}"), "accept", "*/*".into(), true),
            (
                "GET",
                format!("/v1?k={SEALED}"),
                "accept",
                "*/*".into(),
                true,
            ),
            (
                "GET",
                format!("/v1?k={upper}"),
                "accept",
                "*/*".into(),
                true,
            ),
            (
                "GET",
                format!("https://{SEALED}.evil.com/"),
                "accept",
                "*/*".into(),
                true,
            ),
            ("GET", "/".into(), &format!("x-{SEALED}"), "1".into(), true),
            (SEALED, "/".into(), "accept", "*/*".into(), true),
            ("GET", "/".into(), "x-api-key", other.into(), false),
            ("GET", format!("/v1/{other}"), "accept", "*/*".into(), false),
        ];
        for (method, uri, name, value, carries) in cases {
            let req = Request::builder()
                .method(*method)
                .uri(uri)
                .header(*name, HeaderValue::from_str(value).expect("v"))
                .body(())
                .expect("request");
            let case = format!("{method} {uri} {name}: {value}");
            let want = carries.then_some(0);
            assert_eq!(
                find_misuse(&req, &t("evil.com"), &creds, &allow),
                want,
                "{case}"
            );
            assert_eq!(
                find_misuse(&req, &t("api.anthropic.com"), &creds, &allow),
                None,
                "bound host: {case}"
            );
        }
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
