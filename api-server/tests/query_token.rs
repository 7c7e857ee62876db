//! `?token=` (API.md §2.2, §6): it exists for browser `EventSource`, so it is honoured only on
//! the SSE event stream and only for a client token. An org API key in a URL is refused on
//! every route, with or without a header, and a client token in the query of any other route is
//! refused too. Driven with `oneshot` over devcluster.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::Env;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// Sends a request; returns the status, the content type, and the body unless it is a stream.
async fn send(env: &Env, req: Request<Body>) -> (StatusCode, String, Value) {
    let res = env.app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type.starts_with("text/event-stream") {
        return (status, content_type, Value::Null);
    }
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, content_type, body)
}

fn request(method: &str, uri: &str, auth: Option<&str>, accept: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        b = b.header("authorization", format!("Bearer {a}"));
    }
    if let Some(a) = accept {
        b = b.header("accept", a);
    }
    if method == "POST" {
        b = b.header("content-type", "application/json");
        return b
            .body(Body::from(json!({"text": "q"}).to_string()))
            .expect("request");
    }
    b.body(Body::empty()).expect("request")
}

/// Percent-encodes every byte, as a careful client would.
fn encoded(value: &str) -> String {
    value.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn org_keys_are_never_accepted_in_urls() {
    let env = Env::start().await;
    let agent = env.agent("urls").await;
    let (id, _) = env.session(&agent, "hi").await;
    let key = env.key_a.clone();
    let routes = [
        "/v3/agents".to_owned(),
        format!("/v3/agents/{agent}"),
        "/v3/credentials".to_owned(),
        "/v3/sessions".to_owned(),
        format!("/v3/sessions/{id}"),
        format!("/v3/sessions/{id}/events"),
        format!("/v3/sessions/{id}/events?stream=sse"),
        format!("/v3/sessions/{id}/messages"),
        format!("/v3/sessions/{id}/turns"),
        format!("/v3/sessions/{id}/result"),
        format!("/v3/sessions/{id}/destinations"),
        format!("/v3/sessions/{id}/deliveries"),
    ];
    for route in &routes {
        let sep = if route.contains('?') { '&' } else { '?' };
        for token in [key.clone(), encoded(&key), format!("+{key}")] {
            let uri = format!("{route}{sep}token={token}");
            // Alone, with the key in the header as well, and asking for a stream.
            for (auth, accept) in [
                (None, None),
                (Some(key.as_str()), None),
                (None, Some("text/event-stream")),
            ] {
                let (s, _, v) = send(&env, request("GET", &uri, auth, accept)).await;
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{route} {auth:?}: {v}");
                assert_eq!(v["error"]["type"], "unauthorized", "{v}");
                assert!(v["error"]["request_id"].is_string(), "{v}");
                let message = v["error"]["message"].as_str().expect("message");
                assert!(
                    message.contains("org API keys are never accepted in URLs"),
                    "{message}"
                );
                assert!(!v.to_string().contains(&key), "{v}");
            }
        }
    }
}

#[tokio::test]
async fn client_tokens_in_urls_open_only_the_sse_stream() {
    let env = Env::start().await;
    let agent = env.agent("stream").await;
    let (id, token) = env.session(&agent, "hi").await;
    let events = format!("/v3/sessions/{id}/events");
    // The SSE stream: `stream=sse`, or `Accept: text/event-stream` as EventSource sends.
    for (uri, accept) in [
        (format!("{events}?stream=sse&token={token}"), None),
        (
            format!("{events}?stream=sse&after=0&level=progress&token={token}"),
            Some("text/event-stream"),
        ),
        (format!("{events}?token={token}"), Some("text/event-stream")),
    ] {
        let (s, content_type, v) = send(&env, request("GET", &uri, None, accept)).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
    }
    // Every other route, including the JSON page of the same path.
    let (_, event) = env
        .call("GET", &format!("{events}?limit=1"), Some(&env.key_a), None)
        .await;
    let event_id = event["data"][0]["id"].as_str().expect("event id");
    for (method, route) in [
        ("GET", events.clone()),
        ("GET", format!("{events}?stream=json")),
        ("GET", format!("{events}/{event_id}")),
        ("GET", format!("/v3/sessions/{id}/messages")),
        ("POST", format!("/v3/sessions/{id}/messages")),
        ("GET", format!("/v3/sessions/{id}")),
        ("GET", "/v3/agents".to_owned()),
    ] {
        let sep = if route.contains('?') { '&' } else { '?' };
        let uri = format!("{route}{sep}token={token}");
        let (s, _, v) = send(&env, request(method, &uri, None, None)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {route}: {v}");
        assert_eq!(v["error"]["type"], "unauthorized", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .expect("message")
                .contains("SSE"),
            "{v}"
        );
        assert!(!v.to_string().contains(&token), "{v}");
    }
    // The same calls with the token in the header work.
    let (s, v) = env.call("GET", &events, Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Something that is not a client token is refused on the stream too.
    let uri = format!("{events}?stream=sse&token=not-a-token");
    let (s, _, v) = send(&env, request("GET", &uri, None, None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
}
