//! Hostile request input over the router (`oneshot`, devcluster): malformed escapes and bytes in
//! query strings, headers, path segments and bodies never panic and are answered in the error
//! envelope; names, keys and other labels with control or bidirectional formatting characters
//! are refused naming the field; and a JSON error never repeats the value that was sent.

mod common;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, Uri, header};
use common::Env;
use http_body_util::BodyExt as _;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// Looks like a provider key; it must never come back in a response.
const KEY: &str = "sk-ant-api03-redteam-0123456789abcdef";

/// Sends a request; an SSE answer is not read (it does not end), any other body is.
async fn answer(env: &Env, req: Request<Body>) -> (StatusCode, Option<Value>, String) {
    let res = env.app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let sse = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if sse {
        return (status, None, String::new());
    }
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (status, serde_json::from_str(&text).ok(), text)
}

/// A 4xx in the error envelope with a request id (or a success).
fn envelope_or_success(status: StatusCode, body: Option<&Value>, text: &str) -> Result<(), String> {
    if status.is_server_error() {
        return Err(format!("{status}: {text}"));
    }
    if status.is_client_error() {
        let ok = body.is_some_and(|v| {
            v["error"]["type"].is_string()
                && v["error"]["message"].is_string()
                && v["error"]["request_id"].is_string()
        });
        if !ok {
            return Err(format!("{status} is not the envelope: {text}"));
        }
    }
    Ok(())
}

fn get(uri: &str, auth: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri(Uri::try_from(uri).expect("uri"));
    if let Some(a) = auth {
        b = b.header("authorization", format!("Bearer {a}"));
    }
    b.body(Body::empty()).expect("request")
}

#[tokio::test]
async fn a_malformed_escape_in_the_query_is_answered_not_a_panic() {
    let env = Env::start().await;
    let agent = env.agent("escapes").await;
    let (id, _) = env.session(&agent, "hi").await;
    // `%a` then a two-byte character: a decoder slicing two bytes after `%` cuts the character.
    for query in [
        "token=%a\u{e9}",
        "stream=sse&token=%a\u{e9}",
        "token=%\u{e9}",
        "token=%",
        "token=%%a\u{e9}",
        "after=%a\u{e9}",
    ] {
        for auth in [None, Some(env.key_a.as_str())] {
            let uri = format!("/v3/sessions/{id}/events?{query}");
            let (s, v, text) = answer(&env, get(&uri, auth)).await;
            // With the key in the header, the stream may open: the header is the credential.
            if auth.is_none() {
                assert!(
                    s == StatusCode::BAD_REQUEST || s == StatusCode::UNAUTHORIZED,
                    "{query}: {s} {text}"
                );
            }
            envelope_or_success(s, v.as_ref(), &text).expect(query);
        }
    }
    // A parameter given twice, and a path segment that is not UTF-8, get the envelope too.
    for uri in [
        format!("/v3/sessions/{id}/events?after=1&after=2"),
        "/v3/sessions?limit=1&limit=2".to_owned(),
        "/v3/sessions/%FF%FE".to_owned(),
        "/v3/agents/%C3".to_owned(),
    ] {
        let (s, v, text) = answer(&env, get(&uri, Some(&env.key_a))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {text}");
        envelope_or_success(s, v.as_ref(), &text).expect(&uri);
    }
}

/// Text that reaches the percent-decoding and UTF-8 edge cases often.
fn tricky() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('%'),
            Just('&'),
            Just('='),
            Just('+'),
            prop::sample::select(b"0123456789abcdefABCDEF".as_slice()).prop_map(char::from),
            any::<char>(),
        ],
        0..40,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Percent-encodes the ASCII a request target cannot carry raw (controls, space, `"`, `#`,
/// `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`); everything else, multi-byte characters and
/// stray `%` included, stays as it is.
fn escape_refused(query: &str) -> String {
    let mut out = String::new();
    for c in query.chars() {
        if c.is_ascii() && (c.is_ascii_control() || " \"#<>\\^`{|}".contains(c)) {
            out.push_str(&format!("%{:02X}", c as u8));
        } else {
            out.push(c);
        }
    }
    out
}

fn query() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "",
            "token=",
            "after=",
            "cursor=",
            "limit=",
            "level=",
            "type=",
            "status=",
            "before=",
            "wait_seconds=",
            "stream=sse&token=",
            "after=1&after=",
        ]),
        tricky(),
    )
        .prop_map(|(name, value)| format!("{name}{value}"))
}

/// Every decoder of request input, through the router, over arbitrary input: query strings on
/// every GET route that reads one, header values, path segments and bodies. Nothing panics,
/// nothing is a 5xx, and every refusal is the error envelope.
#[test]
fn arbitrary_request_input_never_panics() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (env, id, agent) = rt.block_on(async {
        let env = Env::start().await;
        let agent = env.agent("fuzz").await;
        let (id, _) = env.session(&agent, "hi").await;
        (env, id, agent)
    });
    let routes = [
        format!("/v3/sessions/{id}/events"),
        format!("/v3/sessions/{id}/messages"),
        format!("/v3/sessions/{id}/turns"),
        format!("/v3/sessions/{id}/deliveries"),
        "/v3/sessions".to_owned(),
        "/v3/agents".to_owned(),
    ];
    let posts = [
        "/v3/agents".to_owned(),
        "/v3/sessions".to_owned(),
        "/v3/credentials".to_owned(),
        format!("/v3/sessions/{id}/messages"),
        format!("/v3/sessions/{id}/client-tokens"),
        format!("/v3/sessions/{id}/destinations"),
    ];
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let input = (
        query(),
        prop::collection::vec(any::<u8>(), 0..48),
        prop::collection::vec(any::<u8>(), 0..128),
        any::<prop::sample::Index>(),
    );
    runner
        .run(&input, |(query, header_bytes, body, pick)| {
            rt.block_on(async {
                let key = Some(env.key_a.as_str());
                // Query strings (the http crate refuses some bytes outright: nothing to answer).
                for route in &routes {
                    for auth in [None, key] {
                        // As sent, or with what the http crate refuses escaped, so every case
                        // reaches the server.
                        let Ok(uri) = Uri::try_from(format!("{route}?{query}")).or_else(|_| {
                            Uri::try_from(format!("{route}?{}", escape_refused(&query)))
                        }) else {
                            continue;
                        };
                        let mut b = Request::builder().uri(uri);
                        if let Some(a) = auth {
                            b = b.header("authorization", format!("Bearer {a}"));
                        }
                        let (s, v, text) = answer(&env, b.body(Body::empty()).expect("req")).await;
                        envelope_or_success(s, v.as_ref(), &text)
                            .map_err(|e| TestCaseError::fail(format!("{route}?{query}: {e}")))?;
                    }
                }
                // Header values on the headers the server reads.
                if let Ok(value) = HeaderValue::from_bytes(&header_bytes) {
                    let route = &routes[pick.index(routes.len())];
                    for name in ["authorization", "x-api-key", "last-event-id"] {
                        let mut req = get(route, None);
                        req.headers_mut().insert(name, value.clone());
                        if name == "last-event-id" {
                            req.headers_mut().insert(
                                "authorization",
                                HeaderValue::from_str(&format!("Bearer {}", env.key_a))
                                    .expect("header"),
                            );
                        }
                        let (s, v, text) = answer(&env, req).await;
                        envelope_or_success(s, v.as_ref(), &text)
                            .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                    }
                    // A replayable create: the key is checked before anything is created.
                    let mut req = Env::request(
                        "POST",
                        "/v3/sessions",
                        key,
                        Some(&json!({"agent": agent, "input": "fuzz"})),
                    );
                    req.headers_mut().insert("idempotency-key", value);
                    let (s, v, text) = answer(&env, req).await;
                    envelope_or_success(s, v.as_ref(), &text)
                        .map_err(|e| TestCaseError::fail(format!("idempotency-key: {e}")))?;
                }
                // A path segment of arbitrary bytes, percent-encoded.
                let segment: String = header_bytes.iter().map(|b| format!("%{b:02X}")).collect();
                for path in [
                    format!("/v3/sessions/{segment}/events"),
                    format!("/v3/agents/{segment}"),
                    format!("/v3/sessions/{id}/events/{segment}"),
                ] {
                    let (s, v, text) = answer(&env, get(&path, key)).await;
                    envelope_or_success(s, v.as_ref(), &text)
                        .map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
                }
                // A body of arbitrary bytes.
                let route = &posts[pick.index(posts.len())];
                let req = Request::builder()
                    .method("POST")
                    .uri(route.as_str())
                    .header("authorization", format!("Bearer {}", env.key_a))
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .expect("request");
                let (s, v, text) = answer(&env, req).await;
                envelope_or_success(s, v.as_ref(), &text)
                    .map_err(|e| TestCaseError::fail(format!("POST {route}: {e}")))?;
                Ok(())
            })
        })
        .expect("no input makes the server panic or leave the envelope");
}

/// Asserts a `400 invalid` naming `param`, whose body does not repeat `value`.
fn refused(status: StatusCode, body: &Value, param: &str, value: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{param}: {body}");
    assert_eq!(body["error"]["type"], "invalid", "{body}");
    assert_eq!(body["error"]["param"], param, "{body}");
    let text = body.to_string();
    let plain: String = value.chars().filter(|c| c.is_alphanumeric()).collect();
    assert!(!text.contains(value) && !text.contains(&plain), "{text}");
}

#[tokio::test]
async fn names_and_keys_with_control_or_bidi_characters_are_refused() {
    let env = Env::start().await;
    let a = Some(env.key_a.as_str());
    let agent = env.agent("labels").await;
    let (id, _) = env.session(&agent, "hi").await;
    let hidden = [
        "\u{0}", "\t", "\n", "\u{1b}", "\u{7f}", "\u{9b}", "\u{202a}", "\u{202b}", "\u{202c}",
        "\u{202d}", "\u{202e}", "\u{2066}", "\u{2067}", "\u{2068}", "\u{2069}", "\u{200e}",
        "\u{200f}",
    ];
    for h in hidden {
        // Agent names: in the middle, at the start, at the end.
        for name in [
            format!("rev{h}iewer"),
            format!("{h}reviewer"),
            format!("reviewer{h}"),
        ] {
            let (s, v) = env
                .call(
                    "POST",
                    "/v3/agents",
                    a,
                    Some(json!({"name": name, "prompt": "p", "model": "anthropic/claude-x"})),
                )
                .await;
            refused(s, &v, "name", &name);
        }
        // Credential keys (a key ending in NUL), credential names, inline agent keys.
        let key = format!("sk-ant-labels-0000{h}");
        let (s, v) = env
            .call("POST", "/v3/credentials", a, Some(json!({"key": key})))
            .await;
        refused(s, &v, "key", &key);
        let (s, v) = env
            .call(
                "POST",
                "/v3/credentials",
                a,
                Some(json!({"key": "sk-ant-fine-0000", "name": format!("prod{h}")})),
            )
            .await;
        refused(s, &v, "name", &format!("prod{h}"));
        let (s, v) = env
            .call(
                "POST",
                "/v3/agents",
                a,
                Some(json!({"name": "inline", "model": "anthropic/claude-x", "key": key})),
            )
            .await;
        refused(s, &v, "key", &key);
        let (s, v) = env
            .call(
                "PATCH",
                &format!("/v3/agents/{agent}"),
                a,
                Some(json!({"key": key})),
            )
            .await;
        refused(s, &v, "key", &key);
        // Session keys, steer idempotency keys and envelope ids.
        let label = format!("pr-42{h}");
        let (s, v) = env
            .call(
                "POST",
                "/v3/sessions",
                a,
                Some(json!({"agent": agent, "input": "x", "key": label})),
            )
            .await;
        refused(s, &v, "key", &label);
        let (s, v) = env
            .call(
                "POST",
                &format!("/v3/sessions/{id}/messages"),
                a,
                Some(json!({"text": "x", "idempotency_key": label})),
            )
            .await;
        refused(s, &v, "idempotency_key", &label);
        let (s, v) = env
            .call(
                "POST",
                &format!("/v3/sessions/{id}/messages"),
                a,
                Some(json!({"envelope": {"id": label, "text": "x"}})),
            )
            .await;
        refused(s, &v, "idempotency_key", &label);
        // Destination type patterns, secrets and URLs.
        let dest = format!("/v3/sessions/{id}/destinations");
        let (s, v) = env
            .call(
                "POST",
                &dest,
                a,
                Some(json!({"url": "https://8.8.8.8/h", "types": [format!("turn.{h}*")]})),
            )
            .await;
        refused(s, &v, "types", &format!("turn.{h}*"));
        let secret = format!("whsec_labels{h}");
        let (s, v) = env
            .call(
                "POST",
                &dest,
                a,
                Some(json!({"url": "https://8.8.8.8/h", "secret": secret})),
            )
            .await;
        refused(s, &v, "secret", &secret);
        let url = format!("https://8.8.8.8/h{h}");
        let (s, v) = env.call("POST", &dest, a, Some(json!({"url": url}))).await;
        refused(s, &v, "url", &url);
    }
    // The Idempotency-Key header: a tab (the only control character a header value can carry).
    let mut req = Env::request(
        "POST",
        "/v3/sessions",
        a,
        Some(&json!({"agent": agent, "input": "x"})),
    );
    req.headers_mut().insert(
        "idempotency-key",
        HeaderValue::from_bytes(b"create\t42").expect("header"),
    );
    let (s, v, _) = Env::send(&env.app, req).await;
    refused(s, &v, "Idempotency-Key", "create\t42");
    // Unicode that is neither stays accepted.
    let (s, v) = env
        .call(
            "POST",
            "/v3/agents",
            a,
            Some(json!({"name": "Prüfer ✓ 日本", "prompt": "p", "model": "anthropic/claude-x"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn invalid_json_errors_name_the_field_not_the_value() {
    let env = Env::start().await;
    let a = Some(env.key_a.as_str());
    let agent = env.agent("typed").await;
    let (id, _) = env.session(&agent, "hi").await;
    // A key pasted into a field of another type, on each body the API reads.
    let cases = [
        (
            "POST",
            format!("/v3/sessions/{id}/client-tokens"),
            json!({"ttl": KEY}),
            "ttl",
        ),
        (
            "POST",
            "/v3/credentials".to_owned(),
            json!({"key": "sk-ant-ok-0000", "is_default": KEY}),
            "is_default",
        ),
        (
            "POST",
            "/v3/agents".to_owned(),
            json!({"name": "n", "model": "anthropic/claude-x", "limits": {"turns": KEY}}),
            "limits.turns",
        ),
        (
            "POST",
            "/v3/sessions".to_owned(),
            json!({"agent": agent, "input": "x", "limits": {"tokens": KEY}}),
            "limits.tokens",
        ),
        (
            "POST",
            "/v3/sessions".to_owned(),
            json!({"agent": agent, "input": "x", "model": [KEY]}),
            "model",
        ),
        (
            "POST",
            format!("/v3/sessions/{id}/messages"),
            json!({"text": "x", "idempotency_key": {"k": KEY}}),
            "idempotency_key",
        ),
        (
            "PATCH",
            format!("/v3/agents/{agent}"),
            json!({"prompt": [KEY]}),
            "prompt",
        ),
        (
            "POST",
            format!("/v3/sessions/{id}/client-tokens"),
            json!({"scopes": ["read", {"x": KEY}]}),
            "scopes[1]",
        ),
    ];
    for (method, path, body, field) in cases {
        let (s, v) = env.call(method, &path, a, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_eq!(v["error"]["type"], "invalid_json", "{v}");
        assert_eq!(v["error"]["param"], field, "{v}");
        let message = v["error"]["message"].as_str().expect("message");
        assert!(message.starts_with(field), "{message}");
        assert!(!v.to_string().contains(KEY), "{path}: {v}");
    }
    // A body cut inside the value is not JSON; the error gives the position, not the text.
    let req = Request::builder()
        .method("POST")
        .uri("/v3/credentials")
        .header("authorization", format!("Bearer {}", env.key_a))
        .header("content-type", "application/json")
        .body(Body::from(format!(r#"{{"key": "{KEY}"#)))
        .expect("request");
    let (s, v, text) = answer(&env, req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(v.expect("json")["error"]["type"], "invalid_json");
    assert!(!text.contains(KEY), "{text}");
}
