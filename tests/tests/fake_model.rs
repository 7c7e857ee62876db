//! The fake model over plain HTTP with raw requests: key checking, recording with redaction,
//! the admin endpoint and request validation.

use sealpod_tests::fake_model::{AuthSeen, FakeModel, FakeModelConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "sk-ant-fake-model-test-key-77";
const SEALED: &str = "sp_sealed_0123456789abcdef0123456789abcdef";

/// One HTTP/1.1 exchange with `Connection: close`; returns (status, body).
async fn exchange(
    model: &FakeModel,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(model.addr())
        .await
        .expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn message(text: &str) -> String {
    json!({"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": text}]})
        .to_string()
}

#[tokio::test]
async fn only_the_real_key_is_accepted_and_every_request_is_recorded_redacted() {
    let model = FakeModel::start(FakeModelConfig::plain(KEY))
        .await
        .expect("start");
    let (status, body) = exchange(
        &model,
        "POST",
        "/v1/messages",
        &[("x-api-key", SEALED)],
        &message("hi"),
    )
    .await;
    assert_eq!(status, 401);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["error"]["type"], "authentication_error");

    let (status, body) = exchange(
        &model,
        "POST",
        "/v1/messages",
        &[("authorization", &format!("Bearer {KEY}")), ("x-leak", KEY)],
        &message("[[scenario:answer]] hello"),
    )
    .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        body["content"][0]["text"],
        "Answer to: hello (1 user messages so far)"
    );
    assert_eq!(body["model"], "claude-x");

    let (status, body) = exchange(
        &model,
        "POST",
        "/v1/messages",
        &[("x-api-key", KEY)],
        r#"{"model":"m","messages":[]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid_request_error") && body.contains("max_tokens"));

    let requests = model.requests();
    assert_eq!(
        requests.iter().map(|r| r.auth).collect::<Vec<_>>(),
        [AuthSeen::SealedToken, AuthSeen::RealKey, AuthSeen::RealKey]
    );
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 200, 400]
    );
    assert!(!requests[0].real_key_elsewhere);
    assert!(
        requests[1].real_key_elsewhere,
        "the key in another header is reported"
    );
    assert_eq!(requests[1].scenario, "answer");
    let printed = serde_json::to_string(&requests).expect("json");
    assert!(
        !printed.contains(KEY) && !printed.contains(SEALED),
        "recorded values are redacted"
    );

    // The admin endpoint serves the same log, then clears it.
    let (status, listed) = exchange(&model, "GET", "/_fake/requests", &[], "").await;
    assert_eq!(status, 200);
    let listed: Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    assert_eq!(listed[1]["auth"], "real_key");
    assert_eq!(
        exchange(&model, "DELETE", "/_fake/requests", &[], "")
            .await
            .0,
        204
    );
    assert!(model.requests().is_empty());
}
