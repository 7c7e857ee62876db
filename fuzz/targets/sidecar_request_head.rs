//! The proxy's request head: arbitrary bytes parsed as an HTTP/1.1 request head (httparse, as
//! hyper does), then the destination rule (`Target`, `request_names`, `write_host`) and the
//! tripwire (`find_misuse`, `carries_token`, `scrub`) exactly as `server.rs` and `intercept.rs`
//! call them.
//!
//! Invariants: a parsed target is normalized and survives its own `Host`/authority round trip; the
//! `Host` the proxy writes names the target; the tripwire fires exactly when a token appears in
//! the head of a request to a host it is not bound to; `scrub` leaves no token shape behind.

#![no_main]

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};
use libfuzzer_sys::fuzz_target;
use sealpod_resources::proxy_config::{HostPattern, ValidatedCredential, normalize_host};
use sealpod_resources::secret::{SEALED_TOKEN_PREFIX, SealedToken};
use sealpod_sidecar::fuzzing::{
    Allowlist, Credential, carries_token, find_misuse, request_names, scrub,
};
use sealpod_sidecar::target::Target;

const SEALED: [&str; 2] = [
    "sp_sealed_0123456789abcdef0123456789abcdef",
    "sp_sealed_ffffffffffffffffffffffffffffffff",
];
const HOSTS: [&str; 2] = ["api.anthropic.com", "*.openai.com:443"];

struct Proxy {
    credentials: Vec<Arc<Credential>>,
    allowlist: Allowlist,
}

fn proxy() -> &'static Proxy {
    static PROXY: std::sync::OnceLock<Proxy> = std::sync::OnceLock::new();
    PROXY.get_or_init(|| {
        let pattern = |p: &str| HostPattern::parse(p).expect("pattern");
        let credentials = SEALED
            .iter()
            .zip(HOSTS)
            .map(|(sealed, host)| {
                Arc::new(Credential::new(&ValidatedCredential {
                    sealed: SealedToken::parse(sealed).expect("sealed"),
                    value_file: "/nonexistent".into(),
                    hosts: vec![pattern(host)],
                    headers: vec![],
                }))
            })
            .collect();
        let allowlist = Allowlist::new(
            vec![pattern("github.com")],
            HOSTS.iter().map(|h| vec![pattern(h)]).collect(),
        );
        Proxy {
            credentials,
            allowlist,
        }
    })
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// What `scrub` promises: no token shape survives, text without one is untouched, and a second
/// pass changes nothing.
fn check_scrub(text: &str) {
    let out = scrub(text);
    assert!(
        !contains_ignore_case(out.as_bytes(), SEALED_TOKEN_PREFIX.as_bytes()),
        "scrub left a token shape: {out:?}"
    );
    if !contains_ignore_case(text.as_bytes(), SEALED_TOKEN_PREFIX.as_bytes()) {
        assert_eq!(out, text);
    }
    assert_eq!(scrub(&out), out, "scrub is idempotent");
}

/// A target is normalized, named by its own host, and parses back from what the proxy writes.
fn check_target(t: &Target) {
    assert_eq!(normalize_host(t.host()).as_deref(), Some(t.host()), "{t:?}");
    assert!(t.is_named_by(t.host()), "{t:?}");
    for default_port in [80, 443] {
        let written = t.authority(default_port);
        assert_eq!(
            Target::parse(&written, default_port).as_ref(),
            Some(t),
            "{t:?} written as {written:?}"
        );
        // The one Host the proxy writes upstream names the target, whatever the client sent.
        let mut headers = HeaderMap::new();
        headers.append(http::header::HOST, HeaderValue::from_static("evil.test"));
        t.write_host(&mut headers, default_port);
        let origin = Uri::from_static("/");
        assert!(
            request_names(t, Version::HTTP_11, &origin, &headers, default_port),
            "{t:?}: the written Host does not name the target"
        );
    }
    check_scrub(t.host());
}

/// `request_names` true means: at most one Host, and each of Host and the URI authority that is
/// present parses to the target.
fn check_names(t: &Target, req: &Request<()>, default_port: u16) {
    let named = request_names(t, req.version(), req.uri(), req.headers(), default_port);
    if !named {
        return;
    }
    let hosts: Vec<&HeaderValue> = req.headers().get_all(http::header::HOST).iter().collect();
    assert!(hosts.len() <= 1, "two Hosts accepted");
    for h in hosts {
        let parsed = h.to_str().ok().and_then(|h| Target::parse(h, default_port));
        assert_eq!(parsed.as_ref(), Some(t), "Host {h:?} accepted for {t:?}");
    }
    if let Some(a) = req.uri().authority() {
        assert_eq!(Target::parse(a.as_str(), default_port).as_ref(), Some(t));
    }
}

/// The tripwire against a plain reading of its contract: the head's parts, each searched for
/// every configured token in any ASCII case.
fn check_tripwire(req: &Request<()>, t: &Target) {
    let p = proxy();
    let mut parts: Vec<&[u8]> = vec![req.method().as_str().as_bytes()];
    let uri = req.uri().to_string();
    parts.push(uri.as_bytes());
    for (name, value) in req.headers() {
        parts.push(name.as_str().as_bytes());
        parts.push(value.as_bytes());
    }
    let misused: Vec<usize> = (0..SEALED.len())
        .filter(|&i| {
            parts
                .iter()
                .any(|part| contains_ignore_case(part, SEALED[i].as_bytes()))
                && !p.allowlist.credential_bound(i, t)
        })
        .collect();
    match find_misuse(req, t, &p.credentials, &p.allowlist) {
        Some(i) => assert!(misused.contains(&i), "credential {i} flagged wrongly"),
        None => assert!(misused.is_empty(), "tokens {misused:?} not flagged"),
    }
    let in_host = SEALED
        .iter()
        .any(|s| contains_ignore_case(t.host().as_bytes(), s.as_bytes()));
    assert_eq!(carries_token(t.host(), &p.credentials), in_host);
}

/// The request hyper would hand the proxy, or `None` where hyper answers 400 itself.
fn request(data: &[u8]) -> Option<Request<()>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(_) = parsed.parse(data).ok()? else {
        return None;
    };
    let mut req = Request::builder()
        .method(Method::from_bytes(parsed.method?.as_bytes()).ok()?)
        .uri(Uri::try_from(parsed.path?).ok()?)
        .version(match parsed.version? {
            0 => Version::HTTP_10,
            _ => Version::HTTP_11,
        })
        .body(())
        .ok()?;
    for h in parsed.headers.iter() {
        req.headers_mut().append(
            HeaderName::from_bytes(h.name.as_bytes()).ok()?,
            HeaderValue::from_bytes(h.value).ok()?,
        );
    }
    Some(req)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_scrub(text);
        for port in [80, 443] {
            if let Some(t) = Target::parse(text, port) {
                check_target(&t);
            }
        }
    }
    let Some(req) = request(data) else {
        return;
    };
    if req.method() == Method::CONNECT {
        // server.rs `connect`: the authority-form target, then the tripwire.
        if let Some(t) = req
            .uri()
            .authority()
            .and_then(|a| Target::parse(a.as_str(), 443))
        {
            check_target(&t);
            check_tripwire(&req, &t);
        }
    } else if req.uri().scheme_str() == Some("http") {
        // server.rs `forward`: the absolute URI names the target; Host must agree.
        if let Some(t) = req
            .uri()
            .authority()
            .and_then(|a| Target::parse(a.as_str(), 80))
        {
            check_target(&t);
            check_names(&t, &req, 80);
            check_tripwire(&req, &t);
        }
    }
    // intercept.rs: any request inside a CONNECT tunnel to a credential host, and to another one.
    for authority in ["api.anthropic.com", "api.openai.com:443", "github.com"] {
        let t = Target::parse(authority, 443).expect("target");
        check_names(&t, &req, 443);
        check_tripwire(&req, &t);
    }
});
