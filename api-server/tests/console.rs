//! The web console's server side: the page and its files under a strict Content-Security-Policy
//! and without the `/v3` CORS headers; sign-in that exchanges the org key for an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/console` (`Secure` off loopback); the `/v3` mirror under
//! `/console/api/v3/` that the cookie alone authenticates, refusing a state-changing call without
//! the sign-in's CSRF token or from another site; and sign-out and expiry, after which a copied
//! cookie is refused. One cluster for the whole file (each is a control plane on the real one).

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::{Env, TENANT_A};
use http_body_util::BodyExt as _;
use sealpod_api_server::console::session::{COOKIE, CSRF_HEADER};
use sealpod_api_server::console::{CONTENT_SECURITY_POLICY, assets};
use sealpod_api_server::store::ConsoleSessionRow;
use serde_json::{Value, json};
use tower::ServiceExt as _;

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

async fn send(
    env: &Env,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let mut b = Request::builder().method(method).uri(uri);
    // As a browser on loopback sends it, unless the test says otherwise.
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
    let body = res
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// Signs in with `key`; returns the `Cookie` header value and the CSRF token.
async fn sign_in(env: &Env, key: &str) -> (String, String) {
    let a = send(
        env,
        "POST",
        "/console/api/session",
        &[],
        Some(json!({"api_key": key})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let set_cookie = a.header("set-cookie").to_owned();
    let pair = set_cookie.split(';').next().expect("name=value").to_owned();
    (
        pair,
        a.json()["csrf_token"]
            .as_str()
            .expect("csrf_token")
            .to_owned(),
    )
}

#[tokio::test]
async fn console_pages_sign_in_csrf_and_sign_out() {
    let env = Env::start().await;
    let agent = env.agent("console").await;
    let (session, client_token) = env.session(&agent, "hello").await;

    // The page, for the console's root and any path of its own routing, with its headers.
    for path in ["/console/", "/console/sessions/ses_x", "/console/s/ses_x"] {
        let a = send(
            &env,
            "GET",
            path,
            &[("origin", "https://elsewhere.example")],
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert!(a.header("content-type").starts_with("text/html"), "{path}");
        assert_eq!(a.header("content-security-policy"), CONTENT_SECURITY_POLICY);
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert_eq!(a.header("x-frame-options"), "DENY");
        assert_eq!(a.header("x-content-type-options"), "nosniff");
        assert_eq!(
            a.header("access-control-allow-origin"),
            "",
            "no CORS on the console"
        );
        let page = a.text();
        assert!(
            !page.contains("<script>") && !page.contains(" style="),
            "no inline script or style"
        );
    }
    let a = send(&env, "GET", "/console", &[], None).await;
    assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(a.header("location"), "/console/");

    // Every embedded file is served, revalidated by ETag, gzip when accepted; none holds a key.
    for (path, plain, _) in assets::sizes() {
        let uri = format!("/console/{path}");
        let a = send(&env, "GET", &uri, &[], None).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert_eq!(a.body.len(), plain, "{uri}");
        for secret in [&env.key_a, &env.key_b, &client_token] {
            assert!(
                !a.text().contains(secret.as_str()),
                "{uri} holds a key or token"
            );
        }
        let etag = a.header("etag").to_owned();
        let again = send(&env, "GET", &uri, &[("if-none-match", &etag)], None).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{uri}");
        let zipped = send(&env, "GET", &uri, &[("accept-encoding", "gzip")], None).await;
        if zipped.header("content-encoding") == "gzip" {
            let inflated =
                miniz_oxide::inflate::decompress_to_vec(&zipped.body[10..zipped.body.len() - 8])
                    .expect("gzip body");
            assert_eq!(inflated, a.body, "{uri}");
        }
    }
    assert_eq!(
        send(&env, "GET", "/console/assets/nothing.js", &[], None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Not signed in: the state says so (200), the mirror refuses.
    let a = send(&env, "GET", "/console/api/session", &[], None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), json!({"signed_in": false}));
    let a = send(&env, "GET", "/console/api/v3/sessions", &[], None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "unauthorized");
    // An org key is no way in to the mirror: only the cookie is.
    let bearer = format!("Bearer {}", env.key_a);
    let a = send(
        &env,
        "GET",
        "/console/api/v3/sessions",
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // A wrong key is refused; sign-in from another site is refused.
    let a = send(
        &env,
        "POST",
        "/console/api/session",
        &[],
        Some(json!({"api_key": "osb_0000"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.header("set-cookie"), "");
    let a = send(&env, "POST", "/console/api/session", &[], Some(json!({}))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = send(
        &env,
        "POST",
        "/console/api/session",
        &[("sec-fetch-site", "cross-site")],
        Some(json!({"api_key": env.key_a})),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // Sign-in: the cookie's flags, and an answer without the key.
    let a = send(
        &env,
        "POST",
        "/console/api/session",
        &[("sec-fetch-site", "same-origin")],
        Some(json!({"api_key": env.key_a})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert!(!a.text().contains(&env.key_a));
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
    assert!(
        !attributes.contains(&"Secure"),
        "plain HTTP on loopback: {set_cookie}"
    );
    assert_eq!(a.json()["namespace"], TENANT_A);
    let csrf = a.json()["csrf_token"].as_str().expect("csrf").to_owned();
    let cookie = attributes[0].to_owned();
    // Off loopback the cookie is Secure.
    let remote = send(
        &env,
        "POST",
        "/console/api/session",
        &[("host", "console.example.com")],
        Some(json!({"api_key": env.key_a})),
    )
    .await;
    assert!(
        remote
            .header("set-cookie")
            .split(';')
            .any(|a| a.trim() == "Secure"),
        "{}",
        remote.header("set-cookie")
    );

    let a = send(
        &env,
        "GET",
        "/console/api/session",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(a.json()["signed_in"], true);
    assert_eq!(a.json()["csrf_token"], csrf.as_str());

    // The mirror is `/v3` for tenant A.
    let a = send(
        &env,
        "GET",
        "/console/api/v3/sessions",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let listed = a.json();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(ids.contains(&session.as_str()), "{ids:?}");
    // Tenant B's key beside the cookie changes nothing: the cookie's tenant answers.
    let b_bearer = format!("Bearer {}", env.key_b);
    let a = send(
        &env,
        "GET",
        &format!("/console/api/v3/sessions/{session}"),
        &[("cookie", &cookie), ("authorization", &b_bearer)],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());

    // CSRF: a state-changing call needs the token, from the console's own origin.
    let body = json!({"name": "made-in-console", "prompt": "p", "model": "anthropic/claude-x"});
    let a = send(
        &env,
        "POST",
        "/console/api/v3/agents",
        &[("cookie", &cookie)],
        Some(body.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("CSRF")
    );
    let a = send(
        &env,
        "POST",
        "/console/api/v3/agents",
        &[("cookie", &cookie), (CSRF_HEADER, "0000")],
        Some(body.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = send(
        &env,
        "POST",
        "/console/api/v3/agents",
        &[
            ("cookie", &cookie),
            (CSRF_HEADER, &csrf),
            ("origin", "http://127.0.0.1:9"),
        ],
        Some(body.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "another origin");
    let a = send(
        &env,
        "POST",
        "/console/api/v3/agents",
        &[
            ("cookie", &cookie),
            (CSRF_HEADER, &csrf),
            ("sec-fetch-site", "same-site"),
        ],
        Some(body.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "another site");
    let a = send(
        &env,
        "POST",
        "/console/api/v3/agents",
        &[
            ("cookie", &cookie),
            (CSRF_HEADER, &csrf),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ],
        Some(body),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    // Preflights get no CORS grant here.
    let a = send(
        &env,
        "OPTIONS",
        "/console/api/v3/agents",
        &[
            ("origin", "http://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        None,
    )
    .await;
    assert_eq!(a.header("access-control-allow-origin"), "");

    // Sign-out: the cookie is cleared, and a copy of it is refused from now on.
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
        "sign-out needs the CSRF token too"
    );
    let a = send(
        &env,
        "DELETE",
        "/console/api/session",
        &[("cookie", &cookie), (CSRF_HEADER, &csrf)],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    assert!(
        a.header("set-cookie").contains("Max-Age=0"),
        "{}",
        a.header("set-cookie")
    );
    let a = send(
        &env,
        "GET",
        "/console/api/v3/sessions",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = send(
        &env,
        "GET",
        "/console/api/session",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(a.json(), json!({"signed_in": false}));

    // Expiry: a sign-in past its time is refused.
    let (live, _) = sign_in(&env, &env.key_a).await;
    assert_eq!(
        send(
            &env,
            "GET",
            "/console/api/v3/agents",
            &[("cookie", &live)],
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    let id = "scs_expired000000000000000000000000000000000000000000";
    let now = chrono::Utc::now().timestamp_millis();
    let row = ConsoleSessionRow {
        namespace: TENANT_A.into(),
        key_hash: sealpod_api_server::auth::sha256_hex(&env.key_a),
        expires_ms: now - 1,
    };
    env.state
        .store()
        .create_console_session(
            &sealpod_api_server::auth::sha256_hex(id),
            &row,
            now - 60_000,
        )
        .await
        .expect("row");
    let expired = format!("{COOKIE}={id}");
    assert_eq!(
        send(
            &env,
            "GET",
            "/console/api/v3/agents",
            &[("cookie", &expired)],
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    // A sign-in whose org key is not (or no longer) one of the tenant's is refused.
    let orphan = "scs_orphan0000000000000000000000000000000000000000000";
    let row = ConsoleSessionRow {
        namespace: TENANT_A.into(),
        key_hash: sealpod_api_server::auth::sha256_hex("osb_deleted"),
        expires_ms: now + 60_000,
    };
    env.state
        .store()
        .create_console_session(&sealpod_api_server::auth::sha256_hex(orphan), &row, now)
        .await
        .expect("row");
    let orphaned = format!("{COOKIE}={orphan}");
    assert_eq!(
        send(
            &env,
            "GET",
            "/console/api/v3/agents",
            &[("cookie", &orphaned)],
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
}
