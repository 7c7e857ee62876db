//! The web console's server side: the page and its files under a strict Content-Security-Policy
//! and without the `/v3` CORS headers; sign-in that exchanges the org key for an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/console` (`Secure` off loopback); the `/v3` mirror under
//! `/console/api/v3/` that the cookie alone authenticates, refusing a state-changing call without
//! the sign-in's CSRF token or from another site; and sign-out, expiry and a deleted org key, after
//! which a copied cookie is refused. One cluster for the whole file (each is a control plane on
//! the real one).

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::{Env, TENANT_A};
use http_body_util::BodyExt as _;
use sealpod_api_server::auth::sha256_hex;
use sealpod_api_server::console::session::{COOKIE, CSRF_HEADER};
use sealpod_api_server::console::{CONTENT_SECURITY_POLICY, assets};
use sealpod_api_server::store::ConsoleSessionRow;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// A request header, name and value.
type Header<'a> = (&'a str, &'a str);

/// An answer of the public router.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request as a browser on loopback would (`Host: 127.0.0.1:8080` unless `headers`
/// names another).
async fn send(
    env: &Env,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let mut b = Request::builder().method(method).uri(uri);
    if !headers.iter().any(|(name, _)| *name == "host") {
        b = b.header("host", "127.0.0.1:8080");
    }
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    let req = match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .expect("request");
    let res = env.app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body: body.to_vec(),
    }
}

async fn get(env: &Env, uri: &str, headers: &[(&str, &str)]) -> Answer {
    send(env, "GET", uri, headers, None).await
}

/// `POST /console/api/session` with `key`.
async fn sign_in(env: &Env, key: &str, headers: &[(&str, &str)]) -> Answer {
    let body = json!({ "api_key": key });
    send(env, "POST", "/console/api/session", headers, Some(body)).await
}

/// A sign-in row planted in the store; returns its cookie (`Cookie` header value).
async fn planted(env: &Env, id: &str, key: &str, expires_ms: i64) -> String {
    let row = ConsoleSessionRow {
        namespace: TENANT_A.into(),
        key_hash: sha256_hex(key),
        expires_ms,
    };
    let (id_hash, long_ago) = (sha256_hex(id), expires_ms - 3_600_000);
    let store = env.state.store();
    let created = store.create_console_session(&id_hash, &row, long_ago);
    created.await.expect("row");
    format!("{COOKIE}={id}")
}

#[tokio::test]
async fn console_pages_sign_in_csrf_and_sign_out() {
    let env = Env::start().await;
    let agent = env.agent("console").await;
    let (session, client_token) = env.session(&agent, "hello").await;

    // The page, for the console's root and any path of its own routing, with its headers.
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
    assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    for path in ["/console/", "/console/sessions/ses_x", "/console/s/ses_x"] {
        let a = get(&env, path, &[("origin", "https://elsewhere.example")]).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert!(a.header("content-type").starts_with("text/html"), "{path}");
        assert_eq!(a.header("content-security-policy"), CONTENT_SECURITY_POLICY);
        assert_eq!(a.header("x-frame-options"), "DENY");
        assert_eq!(a.header("x-content-type-options"), "nosniff");
        assert_eq!(a.header("access-control-allow-origin"), "", "no CORS");
        let page = a.text();
        assert!(!page.contains("<script>") && !page.contains(" style="));
    }
    let a = get(&env, "/console", &[]).await;
    assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(a.header("location"), "/console/");

    // Every embedded file is served, revalidated by ETag, gzip when accepted; none holds a key.
    let sizes = assets::sizes();
    assert!(
        sizes.iter().any(|(_, plain, sent)| sent < plain),
        "some file is sent gzip"
    );
    for (path, plain, sent) in sizes {
        let uri = format!("/console/{path}");
        let a = get(&env, &uri, &[]).await;
        assert_eq!((a.status, a.body.len()), (StatusCode::OK, plain), "{uri}");
        for secret in [&env.key_a, &env.key_b, &client_token] {
            assert!(!a.text().contains(secret.as_str()), "{uri} holds a secret");
        }
        let again = get(&env, &uri, &[("if-none-match", a.header("etag"))]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{uri}");
        let zipped = get(&env, &uri, &[("accept-encoding", "gzip")]).await;
        // gzip exactly when the server's copy is smaller, and it inflates back to the file.
        if sent < plain {
            assert_eq!(zipped.header("content-encoding"), "gzip", "{uri}");
            assert_eq!(zipped.body.len(), sent, "{uri}");
            let deflated = &zipped.body[10..zipped.body.len() - 8];
            let inflated = miniz_oxide::inflate::decompress_to_vec(deflated).expect("gzip");
            assert_eq!(inflated, a.body, "{uri}");
        } else {
            assert_eq!(zipped.header("content-encoding"), "", "{uri}");
        }
    }
    let a = get(&env, "/console/assets/nothing.js", &[]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Not signed in: the state says so (200), the mirror refuses, an org key is no way in.
    let a = get(&env, "/console/api/session", &[]).await;
    assert_eq!(
        (a.status, a.json()),
        (StatusCode::OK, json!({"signed_in": false}))
    );
    let a = get(&env, "/console/api/v3/sessions", &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "unauthorized");
    let bearer = format!("Bearer {}", env.key_a);
    let a = get(
        &env,
        "/console/api/v3/sessions",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // Refused sign-ins: a wrong key, no key, another site.
    let a = sign_in(&env, "osb_0000", &[]).await;
    assert_eq!(
        (a.status, a.header("set-cookie")),
        (StatusCode::UNAUTHORIZED, "")
    );
    let a = send(&env, "POST", "/console/api/session", &[], Some(json!({}))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = sign_in(&env, &env.key_a, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // Sign-in: the cookie's flags, and an answer without the key.
    let a = sign_in(&env, &env.key_a, &[("sec-fetch-site", "same-origin")]).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert!(!a.text().contains(&env.key_a));
    assert_eq!(a.json()["namespace"], TENANT_A);
    let set_cookie = a.header("set-cookie").to_owned();
    let attributes: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    assert!(
        attributes[0].starts_with(&format!("{COOKIE}=scs_")),
        "{set_cookie}"
    );
    for want in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(attributes.contains(&want), "{want} in {set_cookie}");
    }
    assert!(!attributes.contains(&"Secure"), "loopback: {set_cookie}");
    let cookie = attributes[0].to_owned();
    let csrf = a.json()["csrf_token"].as_str().expect("csrf").to_owned();
    let remote = sign_in(&env, &env.key_a, &[("host", "console.example.com")]).await;
    let remote_cookie = remote.header("set-cookie");
    assert!(
        remote_cookie.split(';').any(|a| a.trim() == "Secure"),
        "{remote_cookie}"
    );

    let a = get(&env, "/console/api/session", &[("cookie", &cookie)]).await;
    assert_eq!(a.json()["signed_in"], true);
    assert_eq!(a.json()["csrf_token"], csrf.as_str());

    // The mirror is `/v3` for tenant A; tenant B's key beside the cookie changes nothing.
    let a = get(&env, "/console/api/v3/sessions", &[("cookie", &cookie)]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let listed = a.json();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(ids.contains(&session.as_str()), "{ids:?}");
    let b_bearer = format!("Bearer {}", env.key_b);
    let one = format!("/console/api/v3/sessions/{session}");
    let a = get(
        &env,
        &one,
        &[("cookie", &cookie), ("authorization", &b_bearer)],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());

    // CSRF: a state-changing call needs the sign-in's token, from the console's own origin.
    let cases: [(&[Header<'_>], StatusCode, &str); 5] = [
        (&[], StatusCode::FORBIDDEN, "no token"),
        (
            &[(CSRF_HEADER, "0000")],
            StatusCode::FORBIDDEN,
            "a wrong token",
        ),
        (
            &[(CSRF_HEADER, &csrf), ("origin", "http://127.0.0.1:9")],
            StatusCode::FORBIDDEN,
            "another origin",
        ),
        (
            &[(CSRF_HEADER, &csrf), ("sec-fetch-site", "same-site")],
            StatusCode::FORBIDDEN,
            "another site",
        ),
        (
            &[
                (CSRF_HEADER, &csrf),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin"),
            ],
            StatusCode::CREATED,
            "the token, from the console",
        ),
    ];
    for (i, (extra, want, why)) in cases.into_iter().enumerate() {
        let headers = [&[("cookie", cookie.as_str())], extra].concat();
        let body = json!({"name": format!("made-in-console-{i}"), "prompt": "p", "model": "anthropic/claude-x"});
        let a = send(&env, "POST", "/console/api/v3/agents", &headers, Some(body)).await;
        assert_eq!(a.status, want, "{why}: {}", a.text());
        if want == StatusCode::FORBIDDEN {
            assert_eq!(a.json()["error"]["code"], "forbidden", "{why}");
        }
    }
    // Preflights get no CORS grant here.
    let preflight = [
        ("origin", "http://evil.example"),
        ("access-control-request-method", "POST"),
    ];
    let a = send(&env, "OPTIONS", "/console/api/v3/agents", &preflight, None).await;
    assert_eq!(a.header("access-control-allow-origin"), "");

    // Sign-out (which needs the token too): the cookie is cleared, and a copy of it is refused.
    let a = send(
        &env,
        "DELETE",
        "/console/api/session",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "sign-out without the token"
    );
    let out = [("cookie", cookie.as_str()), (CSRF_HEADER, csrf.as_str())];
    let a = send(&env, "DELETE", "/console/api/session", &out, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    assert!(
        a.header("set-cookie").contains("Max-Age=0"),
        "{}",
        a.header("set-cookie")
    );
    let a = get(&env, "/console/api/v3/sessions", &[("cookie", &cookie)]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = get(&env, "/console/api/session", &[("cookie", &cookie)]).await;
    assert_eq!(a.json(), json!({"signed_in": false}));

    // A sign-in past its time, and one whose org key is not (or no longer) the tenant's, are
    // refused; a live one of the same key works.
    let now = chrono::Utc::now().timestamp_millis();
    let live = planted(&env, "scs_live", &env.key_a, now + 60_000).await;
    let expired = planted(&env, "scs_expired", &env.key_a, now - 1).await;
    let orphaned = planted(&env, "scs_orphaned", "osb_deleted", now + 60_000).await;
    for (cookie, want) in [
        (live, StatusCode::OK),
        (expired, StatusCode::UNAUTHORIZED),
        (orphaned, StatusCode::UNAUTHORIZED),
    ] {
        let a = get(&env, "/console/api/v3/agents", &[("cookie", &cookie)]).await;
        assert_eq!(a.status, want, "{cookie}");
    }
}
