//! Router tests (`oneshot`) over devcluster: every `/v3` route, the error codes of API.md §7 and
//! §14, the credential sealing round trip, the objects written to the cluster, and the auth
//! matrix of each route × {org key of the tenant, of another tenant, client token read / steer /
//! expired / of another session, garbage, none}.

mod common;

use axum::http::StatusCode;
use common::{Env, Options, TENANT_A, TENANT_B};
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use sealpod_api_server::auth::{ClientClaims, Scopes};
use sealpod_resources::credential::CredentialSpec;
use sealpod_resources::runtime_token::Scope;
use sealpod_resources::sealing::SealedValue;
use sealpod_resources::{Agent, Credential, Session};
use serde_json::{Value, json};

#[tokio::test]
async fn agents_are_idempotent_by_name_and_versioned() {
    let env = Env::start().await;
    let a = Some(env.key_a.as_str());
    let body = json!({"name": "reviewer", "prompt": "review", "model": "anthropic/claude-x", "limits": {"turns": 4}});
    let (s, created) = env.call("POST", "/v3/agents", a, Some(body.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "reviewer");
    assert_eq!(created["revision"], 1);
    assert_eq!(created["runtime"], "claude");
    assert_eq!(created["credential_id"], Value::Null);
    assert_eq!(
        created["limits"],
        json!({"tokens": null, "turn_seconds": null, "turns": 4})
    );
    let id = created["id"].as_str().expect("id").to_owned();
    let (s, again) = env.call("POST", "/v3/agents", a, Some(body.clone())).await;
    assert_eq!((s, &again["id"]), (StatusCode::OK, &created["id"]));
    let (s, e) = env
        .call(
            "POST",
            "/v3/agents",
            a,
            Some(json!({"name": "reviewer", "prompt": "other", "model": "anthropic/claude-x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    // The same name in another tenant is another agent object in another namespace.
    let (s, _) = env
        .call("POST", "/v3/agents", Some(&env.key_b), Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let (s, got) = env.call("GET", &format!("/v3/agents/{id}"), a, None).await;
    assert_eq!((s, &got["id"]), (StatusCode::OK, &created["id"]));
    let (s, page) = env.call("GET", "/v3/agents", a, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["next_cursor"], Value::Null);

    let (s, updated) = env
        .call(
            "PATCH",
            &format!("/v3/agents/{id}"),
            a,
            Some(json!({"prompt": "review harder"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["revision"], 2);
    assert_eq!(updated["prompt"], "review harder");
    let (s, same) = env
        .call(
            "PATCH",
            &format!("/v3/agents/{id}"),
            a,
            Some(json!({"limits": {"turns": 9}})),
        )
        .await;
    assert_eq!(
        (s, &same["revision"], &same["limits"]["turns"]),
        (StatusCode::OK, &json!(2), &json!(9))
    );
    let (s, e) = env
        .call(
            "PATCH",
            &format!("/v3/agents/{id}"),
            a,
            Some(json!({"runtime": "codex"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("runtime"))
    );

    // The Agent object carries the revision annotation and the display name.
    let obj = Api::<Agent>::namespaced(env.cluster.client(), TENANT_A)
        .get(&id.replace('_', "-"))
        .await
        .expect("agent object");
    assert_eq!(
        obj.annotations()
            .get("sealpod.dev/revision")
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(obj.spec.display_name.as_deref(), Some("reviewer"));

    // Validation: 400 invalid with the parameter, 400 invalid_json for a broken body.
    for (body, param) in [
        (json!({"prompt": "p", "model": "anthropic/x"}), "name"),
        (json!({"name": "n", "prompt": "p"}), "model"),
        (
            json!({"name": "n", "prompt": "p", "model": "openai/gpt", "runtime": "claude"}),
            "model",
        ),
        (
            json!({"name": "n", "prompt": "p", "model": "anthropic/x", "key": "k", "credential": "managed"}),
            "credential",
        ),
        (
            json!({"name": "n", "prompt": "p", "model": "anthropic/x", "limits": {"turns": 0}}),
            "limits.turns",
        ),
    ] {
        let (s, e) = env.call("POST", "/v3/agents", a, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        assert_eq!(e["error"]["type"], "invalid");
        assert_eq!(e["error"]["param"], param);
        assert!(
            e["error"]["request_id"]
                .as_str()
                .is_some_and(|r| r.starts_with("req_"))
        );
    }
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v3/agents")
        .header("authorization", format!("Bearer {}", env.key_a))
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{not json"))
        .expect("req");
    let (s, e, _) = Env::send(&env.app, req).await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (s, e) = env.call("DELETE", "/v3/agents", a, None).await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let (s, e) = env.call("GET", "/v3/nothing-here", a, None).await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn credentials_are_sealed_on_arrival_and_never_returned() {
    let env = Env::start().await;
    let a = Some(env.key_a.as_str());
    let key = "sk-ant-api03-RECOGNISABLE-SECRET-1234";
    let (s, c) = env
        .call(
            "POST",
            "/v3/credentials",
            a,
            Some(json!({"key": key, "name": "prod", "is_default": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(c["provider"], "anthropic");
    assert_eq!(c["last4"], "1234");
    assert_eq!(c["is_default"], true);
    assert!(!c.to_string().contains("RECOGNISABLE"));
    let id = c["id"].as_str().expect("id").to_owned();
    let name = id.replace('_', "-");

    // The object, its status written by the API server, and the sealed Secret it owns.
    let cred = Api::<Credential>::namespaced(env.cluster.client(), TENANT_A)
        .get(&name)
        .await
        .expect("credential");
    assert_eq!(
        cred.status.as_ref().and_then(|s| s.last4.as_deref()),
        Some("1234")
    );
    assert_eq!(cred.status.as_ref().and_then(|s| s.version), Some(1));
    assert_eq!(cred.spec.allowed_hosts, ["api.anthropic.com"]);
    // The sealed value lives in the Credential itself: the API server writes no Secret.
    assert_eq!(cred.spec.sealed_secret_ref, None);
    let written = Api::<Secret>::namespaced(env.cluster.client(), TENANT_A)
        .list(&ListParams::default().labels(&format!("sealpod.dev/credential={name}")))
        .await
        .expect("secrets");
    assert!(written.items.is_empty(), "no Secret for the credential");
    let sealed = cred.spec.sealed_value.clone().expect("sealed value");
    assert!(!sealed.contains("RECOGNISABLE"));
    let opened = env
        .keys
        .open_text(
            &SealedValue::from_text(sealed.clone()),
            &CredentialSpec::sealing_context(TENANT_A, &name),
        )
        .expect("opens with the private set");
    assert_eq!(opened.expose(), key);
    assert!(
        env.keys
            .open_text(
                &SealedValue::from_text(sealed),
                &CredentialSpec::sealing_context(TENANT_B, &name)
            )
            .is_err()
    );

    // Rotate: new last4, version 2, and the new value opens.
    let (s, r) = env
        .call(
            "PATCH",
            &format!("/v3/credentials/{id}"),
            a,
            Some(json!({"key": "sk-ant-rotated-WXYZ"})),
        )
        .await;
    assert_eq!(
        (s, &r["last4"], &r["version"]),
        (StatusCode::OK, &json!("WXYZ"), &json!(2))
    );
    let rotated = Api::<Credential>::namespaced(env.cluster.client(), TENANT_A)
        .get(&name)
        .await
        .expect("credential");
    let opened = env
        .keys
        .open_text(
            &SealedValue::from_text(rotated.spec.sealed_value.expect("sealed value")),
            &CredentialSpec::sealing_context(TENANT_A, &name),
        )
        .expect("the rotated value opens");
    assert_eq!(opened.expose(), "sk-ant-rotated-WXYZ");
    // Default moves to a second credential.
    let (_, c2) = env
        .call(
            "POST",
            "/v3/credentials",
            a,
            Some(json!({"key": "sk-ant-second-0002"})),
        )
        .await;
    let (s, d) = env
        .call(
            "PUT",
            "/v3/credentials/default",
            a,
            Some(json!({"credential": c2["id"]})),
        )
        .await;
    assert_eq!((s, &d["is_default"]), (StatusCode::OK, &json!(true)));
    let (_, list) = env.call("GET", "/v3/credentials", a, None).await;
    let defaults: Vec<&Value> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|c| c["is_default"] == true)
        .collect();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0]["id"], c2["id"]);
    let (s, e) = env
        .call(
            "PUT",
            "/v3/credentials/default",
            a,
            Some(json!({"credential": c2["id"], "provider": "openai"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("provider"))
    );
    // Delete: 204 with no body, then 404.
    let (s, body) = env
        .call("DELETE", &format!("/v3/credentials/{id}"), a, None)
        .await;
    assert_eq!((s, body), (StatusCode::NO_CONTENT, Value::Null));
    let (s, _) = env
        .call("DELETE", &format!("/v3/credentials/{id}"), a, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Inline key on agent create makes and attaches a credential.
    let (s, agent) = env
        .call("POST", "/v3/agents", a, Some(json!({"name": "inline", "prompt": "p", "model": "anthropic/claude-x", "key": "sk-ant-inline-9999"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{agent}");
    let cred_id = agent["credential_id"].as_str().expect("attached");
    let (_, list) = env.call("GET", "/v3/credentials", a, None).await;
    assert!(
        list["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|c| c["id"] == cred_id && c["last4"] == "9999")
    );
    // PATCH agent {key} rotates the attached credential.
    let (s, _) = env
        .call(
            "PATCH",
            &format!("/v3/agents/{}", agent["id"].as_str().expect("id")),
            a,
            Some(json!({"key": "sk-ant-inline-8888"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = env.call("GET", "/v3/credentials", a, None).await;
    assert!(
        list["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|c| c["id"] == cred_id && c["last4"] == "8888")
    );
}

#[tokio::test]
async fn credentials_wait_for_the_sealing_key() {
    let env = Env::start_with(Options {
        sealing: false,
        ..Options::default()
    })
    .await;
    let (s, e) = env
        .call(
            "POST",
            "/v3/credentials",
            Some(&env.key_a),
            Some(json!({"key": "sk-ant-x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("sealing_unavailable"))
    );
    common::publish_sealing_key(&env.cluster.client(), &env.keys).await;
    let (s, _) = env
        .call(
            "POST",
            "/v3/credentials",
            Some(&env.key_a),
            Some(json!({"key": "sk-ant-x"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn sessions_pin_the_agent_and_honour_keys() {
    let env = Env::start().await;
    let a = Some(env.key_a.as_str());
    let agent = env.agent("pinned").await;
    let body = json!({"agent": agent, "input": "hello", "key": "pr-42", "metadata": {"pullNumber": 42, "a_b": {"c": 1}}, "limits": {"turn_seconds": 30}});
    let (s, created) = env
        .call("POST", "/v3/sessions", a, Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let session = &created["session"];
    assert_eq!(session["status"], "queued");
    assert_eq!(session["head"], 1);
    assert_eq!(
        session["metadata"],
        json!({"pullNumber": 42, "a_b": {"c": 1}})
    );
    assert_eq!(session["limits"]["turn_seconds"], 30);
    assert_eq!(session["agent_snapshot"]["revision"], 1);
    assert!(
        created["client_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("sct_"))
    );
    assert_eq!(created["sources"], json!([]));
    let id = session["id"].as_str().expect("id").to_owned();
    let (s, replay) = env
        .call("POST", "/v3/sessions", a, Some(body.clone()))
        .await;
    assert_eq!(
        (s, &replay["session"]["id"]),
        (StatusCode::OK, &session["id"])
    );
    let (s, e) = env
        .call(
            "POST",
            "/v3/sessions",
            a,
            Some(json!({"agent": agent, "input": "other", "key": "pr-42"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_conflict"))
    );
    // Idempotency-Key header.
    let mut req = Env::request(
        "POST",
        "/v3/sessions",
        a,
        Some(&json!({"agent": agent, "input": "x"})),
    );
    req.headers_mut()
        .insert("idempotency-key", "idem-1".parse().expect("header"));
    let (s1, v1, _) = Env::send(&env.app, req).await;
    let mut req = Env::request(
        "POST",
        "/v3/sessions",
        a,
        Some(&json!({"agent": agent, "input": "x"})),
    );
    req.headers_mut()
        .insert("idempotency-key", "idem-1".parse().expect("header"));
    let (s2, v2, _) = Env::send(&env.app, req).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(v1["session"]["id"], v2["session"]["id"]);

    // The Session object pins the agent; its status is mirrored by the API server.
    let name = id.replace('_', "-");
    let api = Api::<Session>::namespaced(env.cluster.client(), TENANT_A);
    let obj = api.get(&name).await.expect("session object");
    let snap = obj.spec.agent_snapshot.expect("snapshot");
    assert_eq!((snap.prompt.as_str(), snap.revision), ("p", Some(1)));
    assert!(snap.credential.starts_with("cred-"));
    sealpod_testkit::eventually("status.head mirrored", || async {
        let o = api.get(&name).await.expect("session");
        (o.status.as_ref().and_then(|s| s.head) == Some(1)).then_some(())
    })
    .await;

    let (s, got) = env
        .call("GET", &format!("/v3/sessions/{id}"), a, None)
        .await;
    assert_eq!((s, &got["id"]), (StatusCode::OK, &session["id"]));
    let (s, _) = env
        .call("GET", &format!("/v3/sessions/{id}"), Some(&env.key_b), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = env.call("GET", "/v3/sessions?key=pr-42", a, None).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    let (_, page1) = env.call("GET", "/v3/sessions?limit=1", a, None).await;
    let cursor = page1["next_cursor"].as_str().expect("more");
    let (_, page2) = env
        .call(
            "GET",
            &format!("/v3/sessions?limit=1&cursor={cursor}"),
            a,
            None,
        )
        .await;
    assert_ne!(page1["data"][0]["id"], page2["data"][0]["id"]);
    let (s, e) = env
        .call("GET", "/v3/sessions?after=yesterday", a, None)
        .await;
    assert_eq!(
        (s, e["error"]["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("after"))
    );
    let (_, none) = env
        .call("GET", "/v3/sessions?after=2999-01-01T00:00:00Z", a, None)
        .await;
    assert_eq!(none["data"], json!([]));

    for (body, status, kind) in [
        (json!({"input": "x"}), StatusCode::BAD_REQUEST, "invalid"),
        (json!({"agent": agent}), StatusCode::BAD_REQUEST, "invalid"),
        (
            json!({"agent": agent, "input": "x", "metadata": [1]}),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            json!({"agent": agent, "input": "x", "model": "openai/gpt"}),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            json!({"agent": agent, "input": "x", "sources": [{"repo": "a/b"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sources_not_supported",
        ),
        (
            json!({"agent": "agt_doesnotexist", "input": "x"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let (s, e) = env.call("POST", "/v3/sessions", a, Some(body)).await;
        assert_eq!(
            (s, e["error"]["type"].as_str()),
            (status, Some(kind)),
            "{e}"
        );
    }
}

#[tokio::test]
async fn credential_resolution_order() {
    let env = Env::start().await;
    let b = Some(env.key_b.as_str());
    let (_, agent) = env
        .call(
            "POST",
            "/v3/agents",
            b,
            Some(json!({"name": "n", "prompt": "p", "model": "anthropic/claude-x"})),
        )
        .await;
    let agent = agent["id"].as_str().expect("id").to_owned();
    let (s, e) = env
        .call(
            "POST",
            "/v3/sessions",
            b,
            Some(json!({"agent": agent, "input": "x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("no_credential"))
    );
    let (_, managed) = env.call("POST", "/v3/agents", b, Some(json!({"name": "m", "prompt": "p", "model": "anthropic/claude-x", "credential": "managed"}))).await;
    let (s, e) = env
        .call(
            "POST",
            "/v3/sessions",
            b,
            Some(json!({"agent": managed["id"], "input": "x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("managed_unavailable")
        )
    );
    // An org default of the provider is used when the agent has none.
    let (_, c) = env
        .call(
            "POST",
            "/v3/credentials",
            b,
            Some(json!({"key": "sk-ant-default", "is_default": true})),
        )
        .await;
    let (s, v) = env
        .call(
            "POST",
            "/v3/sessions",
            b,
            Some(json!({"agent": agent, "input": "x"})),
        )
        .await;
    assert_eq!(
        (s, &v["session"]["credential_id"]),
        (StatusCode::CREATED, &c["id"])
    );
    // An agent pinned to a deleted credential cannot start sessions.
    let (_, own) = env
        .call(
            "POST",
            "/v3/credentials",
            b,
            Some(json!({"key": "sk-ant-own"})),
        )
        .await;
    let (_, pinned) = env.call("POST", "/v3/agents", b, Some(json!({"name": "p", "prompt": "p", "model": "anthropic/claude-x", "credential": own["id"]}))).await;
    let (s, v) = env
        .call(
            "POST",
            "/v3/sessions",
            b,
            Some(json!({"agent": pinned["id"], "input": "x"})),
        )
        .await;
    assert_eq!(
        (s, &v["session"]["credential_id"]),
        (StatusCode::CREATED, &own["id"])
    );
    env.call(
        "DELETE",
        &format!("/v3/credentials/{}", own["id"].as_str().expect("id")),
        b,
        None,
    )
    .await;
    let (s, e) = env
        .call(
            "POST",
            "/v3/sessions",
            b,
            Some(json!({"agent": pinned["id"], "input": "x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("no_credential"))
    );
    // With a managed credential configured, `managed` resolves.
    let env2 = Env::start_with(Options {
        managed: Some("platform".into()),
        ..Options::default()
    })
    .await;
    let (_, m) = env2.call("POST", "/v3/agents", Some(&env2.key_a), Some(json!({"name": "m", "prompt": "p", "model": "anthropic/claude-x", "credential": "managed"}))).await;
    let (s, v) = env2
        .call(
            "POST",
            "/v3/sessions",
            Some(&env2.key_a),
            Some(json!({"agent": m["id"], "input": "x"})),
        )
        .await;
    assert_eq!(
        (s, &v["session"]["credential_id"]),
        (StatusCode::CREATED, &json!("managed"))
    );
    // Once the managed Credential exists, `managed` resolves only for its provider.
    let platform = Credential::new(
        "platform",
        CredentialSpec {
            display_name: None,
            provider: "anthropic".into(),
            allowed_hosts: vec!["api.anthropic.com".into()],
            headers: None,
            sealed_value: Some("spseal1.k.v".into()),
            sealed_secret_ref: None,
            default: false,
        },
    );
    Api::<Credential>::namespaced(env2.cluster.client(), common::SYSTEM)
        .create(&Default::default(), &platform)
        .await
        .expect("managed credential");
    let (_, codex) = env2
        .call(
            "POST",
            "/v3/agents",
            Some(&env2.key_a),
            Some(json!({"name": "cx", "prompt": "p", "model": "openai/gpt-5", "runtime": "codex"})),
        )
        .await;
    let (s, e) = env2
        .call(
            "POST",
            "/v3/sessions",
            Some(&env2.key_a),
            Some(json!({"agent": codex["id"], "input": "x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("no_credential")),
        "{e}"
    );
    let (s, v) = env2
        .call(
            "POST",
            "/v3/sessions",
            Some(&env2.key_a),
            Some(json!({"agent": m["id"], "input": "y"})),
        )
        .await;
    assert_eq!(
        (s, &v["session"]["credential_id"]),
        (StatusCode::CREATED, &json!("managed"))
    );
}

/// A session through two turns, steered in between: once with an idempotency key (then
/// replayed) and once with an envelope. What the focused tests below read.
struct TwoTurns {
    id: String,
    turn1: String,
    result1: String,
    turn2: String,
    result2: String,
    /// The steer's answer, its replay's and the envelope steer's (status and body).
    steered: (StatusCode, Value),
    replay: (StatusCode, Value),
    envelope: (StatusCode, Value),
}

async fn two_turns(env: &Env) -> TwoTurns {
    let a = Some(env.key_a.as_str());
    let agent = env.agent("flow").await;
    let (id, _) = env.session(&agent, "start").await;
    let (turn1, result1) = env.run_turn(&id, "first").await;
    let steered = env
        .call(
            "POST",
            &format!("/v3/sessions/{id}/messages"),
            a,
            Some(json!({"text": "more", "idempotency_key": "k"})),
        )
        .await;
    let (s, replay) = env
        .call(
            "POST",
            &format!("/v3/sessions/{id}/messages"),
            a,
            Some(json!({"text": "more", "idempotency_key": "k"})),
        )
        .await;
    let replay = (s, replay);
    let envelope = env
        .call("POST", &format!("/v3/sessions/{id}/messages"), a, Some(json!({"envelope": {"id": "client:1", "text": "via envelope", "source": "client", "refs": {"thread": "t"}, "raw": {"x": 1}}})))
        .await;
    let (_, ev) = env
        .call(
            "GET",
            &format!(
                "/v3/sessions/{id}/events/{}",
                envelope.1["event"]["id"].as_str().expect("id")
            ),
            a,
            None,
        )
        .await;
    assert_eq!(ev["body"], json!({"text": "via envelope", "raw": {"x": 1}}));
    assert_eq!(ev["refs"], json!({"thread": "t", "source": "client"}));
    let (turn2, result2) = env.run_turn(&id, "second").await;
    TwoTurns {
        id,
        turn1,
        result1,
        turn2,
        result2,
        steered,
        replay,
        envelope,
    }
}

#[tokio::test]
async fn steers_are_idempotent_and_envelopes_keep_refs_and_raw() {
    let env = Env::start().await;
    let flow = two_turns(&env).await;
    let (s, steered) = &flow.steered;
    assert_eq!(*s, StatusCode::ACCEPTED, "{steered}");
    assert_eq!(steered["session"]["status"], "queued");
    assert_eq!(
        (flow.replay.0, &flow.replay.1["event"]),
        (StatusCode::OK, &steered["event"])
    );
    assert_eq!(flow.envelope.0, StatusCode::ACCEPTED, "{}", flow.envelope.1);
}

#[tokio::test]
async fn event_pages_filter_paginate_and_refuse_bad_queries() {
    let env = Env::start().await;
    let TwoTurns { id, turn1, .. } = two_turns(&env).await;
    let a = Some(env.key_a.as_str());
    let (_, page) = env
        .call("GET", &format!("/v3/sessions/{id}/events"), a, None)
        .await;
    let events = page["data"].as_array().expect("data");
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(
        events
            .iter()
            .all(|e| e["session"] == json!(id) && e["refs"].is_object())
    );
    let started = events
        .iter()
        .find(|e| e["type"] == "turn.started")
        .expect("turn.started");
    assert_eq!(started["body"]["input_from_seq"], 1);
    assert_eq!(started["level"], "progress");
    let types = |q: &str| {
        let env = &env;
        let id = id.clone();
        let q = q.to_owned();
        async move {
            let (s, page) = env
                .call(
                    "GET",
                    &format!("/v3/sessions/{id}/events?{q}"),
                    Some(&env.key_a),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{page}");
            page["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|e| e["type"].as_str().expect("type").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(!types("level=user").await.contains(&"tool.call".to_owned()));
    assert!(
        !types("level=progress")
            .await
            .contains(&"tool.call".to_owned())
    );
    assert!(
        types("level=progress")
            .await
            .contains(&"turn.started".to_owned())
    );
    assert_eq!(
        types("type=turn.*").await,
        [
            "turn.started",
            "turn.completed",
            "turn.started",
            "turn.completed"
        ]
    );
    assert_eq!(
        types("type=agent.message").await,
        ["agent.message", "agent.message"]
    );
    assert_eq!(
        types(&format!("turn_id={turn1}")).await,
        [
            "turn.started",
            "tool.call",
            "agent.message",
            "turn.completed"
        ]
    );
    let (_, p1) = env
        .call("GET", &format!("/v3/sessions/{id}/events?limit=2"), a, None)
        .await;
    assert_eq!(p1["next_cursor"], "2");
    let (_, p2) = env
        .call(
            "GET",
            &format!("/v3/sessions/{id}/events?cursor=2&limit=2"),
            a,
            None,
        )
        .await;
    assert_eq!(p2["data"][0]["seq"], 3);
    let (_, last) = env
        .call(
            "GET",
            &format!("/v3/sessions/{id}/events?after={}", seqs.len() - 1),
            a,
            None,
        )
        .await;
    assert_eq!(last["next_cursor"], Value::Null);
    for q in ["level=debug", "type=a*b", "after=-1", "limit=0"] {
        let (s, e) = env
            .call("GET", &format!("/v3/sessions/{id}/events?{q}"), a, None)
            .await;
        assert_eq!(
            (s, e["error"]["type"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid")),
            "{q}"
        );
    }
    let (s, _) = env
        .call(
            "GET",
            &format!("/v3/sessions/{id}/events/evt_nope"),
            a,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, msgs) = env
        .call("GET", &format!("/v3/sessions/{id}/messages"), a, None)
        .await;
    let mtypes: Vec<&str> = msgs["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["type"].as_str().expect("t"))
        .collect();
    assert_eq!(
        mtypes,
        [
            "user.message",
            "agent.message",
            "user.message",
            "user.message",
            "agent.message"
        ]
    );
}

#[tokio::test]
async fn result_and_turns_name_the_last_turn() {
    let env = Env::start().await;
    let TwoTurns {
        id,
        turn1,
        result1,
        turn2,
        result2,
        ..
    } = two_turns(&env).await;
    let a = Some(env.key_a.as_str());
    let (_, result) = env
        .call("GET", &format!("/v3/sessions/{id}/result"), a, None)
        .await;
    assert_eq!(result["result"]["id"], json!(result2));
    assert_eq!(result["last_turn"]["id"], json!(turn2));
    assert_eq!(result["last_turn"]["yield_reason"], "completed");
    let (_, turns) = env
        .call("GET", &format!("/v3/sessions/{id}/turns"), a, None)
        .await;
    let ids: Vec<&str> = turns["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [turn2.as_str(), turn1.as_str()]);
    let (_, t1) = env
        .call("GET", &format!("/v3/sessions/{id}/turns/{turn1}"), a, None)
        .await;
    assert_eq!(
        (&t1["result_event_id"], &t1["state"]),
        (&json!(result1), &json!("ok"))
    );
    let (s, _) = env
        .call("GET", &format!("/v3/sessions/{id}/turns/trn_nope"), a, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, session) = env
        .call("GET", &format!("/v3/sessions/{id}"), a, None)
        .await;
    assert_eq!(
        (&session["status"], &session["last_turn"]["id"]),
        (&json!("idle"), &json!(turn2))
    );
}

#[tokio::test]
async fn cancel_when_idle_answers_the_session_and_archive_is_read_only() {
    let env = Env::start().await;
    let TwoTurns { id, .. } = two_turns(&env).await;
    let a = Some(env.key_a.as_str());
    // Cancel with no running turn is a no-op answering the session; archive is read-only.
    let (s, c) = env
        .call("POST", &format!("/v3/sessions/{id}/cancel"), a, None)
        .await;
    assert_eq!((s, &c["status"]), (StatusCode::OK, &json!("idle")));
    let (s, arch) = env
        .call("POST", &format!("/v3/sessions/{id}/archive"), a, None)
        .await;
    assert_eq!((s, &arch["status"]), (StatusCode::OK, &json!("archived")));
    let (s, e) = env
        .call(
            "POST",
            &format!("/v3/sessions/{id}/messages"),
            a,
            Some(json!({"text": "late"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::CONFLICT, Some("session_archived"))
    );
    let (s, e) = env
        .call(
            "POST",
            &format!("/v3/sessions/{id}/client-tokens"),
            a,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::CONFLICT, Some("session_archived"))
    );
    let obj = Api::<Session>::namespaced(env.cluster.client(), TENANT_A)
        .get(&id.replace('_', "-"))
        .await
        .expect("obj");
    assert_eq!(
        obj.spec.desired_state,
        sealpod_resources::session::DesiredState::Archived
    );
}

#[tokio::test]
async fn client_tokens_mint_with_defaults_and_ranges() {
    let env = Env::start().await;
    let a = Some(env.key_a.as_str());
    let agent = env.agent("tok").await;
    let (id, _) = env.session(&agent, "x").await;
    let path = format!("/v3/sessions/{id}/client-tokens");
    let (s, t) = env.call("POST", &path, a, None).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(t["scopes"], json!(["read", "steer"]));
    let expires = chrono::DateTime::parse_from_rfc3339(t["expires_at"].as_str().expect("exp"))
        .expect("rfc3339");
    let ttl = expires.timestamp() - chrono::Utc::now().timestamp();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    let (s, t) = env
        .call(
            "POST",
            &path,
            a,
            Some(json!({"scopes": ["read"], "ttl": 60})),
        )
        .await;
    assert_eq!((s, &t["scopes"]), (StatusCode::CREATED, &json!(["read"])));
    for body in [
        json!({"ttl": 59}),
        json!({"ttl": 86401}),
        json!({"scopes": ["admin"]}),
        json!({"scopes": []}),
    ] {
        let (s, e) = env.call("POST", &path, a, Some(body)).await;
        assert_eq!(
            (s, e["error"]["type"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid"))
        );
    }
}

#[tokio::test]
async fn runtime_api_tokens_claims_and_signals() {
    let env = Env::start().await;
    let agent = env.agent("rt").await;
    let (id, _) = env.session(&agent, "work").await;
    let (other, _) = env.session(&agent, "other").await;
    let token = env.runtime_token(TENANT_A, &id, Scope::Runtime);
    let proxy = env.runtime_token(TENANT_A, &id, Scope::Proxy);
    let (s, info) = env.rt(&token, "GET", "/session", None).await;
    assert_eq!(s, StatusCode::OK, "{info}");
    assert_eq!(
        (&info["id"], &info["prompt"], &info["model"]),
        (&json!(id), &json!("p"), &json!("anthropic/claude-x"))
    );
    // Wrong scope, forged, none, other namespace.
    assert_eq!(
        env.rt(&proxy, "GET", "/session", None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        env.rt(&format!("{token}x"), "GET", "/session", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        env.rt("garbage", "GET", "/session", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let foreign = env.runtime_token(TENANT_B, &id, Scope::Runtime);
    assert_eq!(
        env.rt(&foreign, "GET", "/session", None).await.0,
        StatusCode::NOT_FOUND
    );
    // Claim, a restart re-claims the same turn, cancel reaches the signal.
    let (s, c) = env
        .rt(&token, "POST", "/claim", Some(json!({"wait_seconds": 0})))
        .await;
    assert_eq!(
        (s, &c["attempt"], &c["number"]),
        (StatusCode::OK, &json!(1), &json!(1))
    );
    assert_eq!(c["inputs"][0]["body"]["text"], "work");
    let turn = c["turn_id"].as_str().expect("turn").to_owned();
    let (_, c2) = env
        .rt(&token, "POST", "/claim", Some(json!({"wait_seconds": 0})))
        .await;
    assert_eq!((&c2["turn_id"], &c2["attempt"]), (&json!(turn), &json!(2)));
    let (s, sig) = env
        .rt(
            &token,
            "GET",
            &format!("/turns/{turn}/signal?wait_seconds=0"),
            None,
        )
        .await;
    assert_eq!((s, sig), (StatusCode::OK, json!({"cancel": false})));
    let (s, _) = env
        .call(
            "POST",
            &format!("/v3/sessions/{id}/cancel"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, sig) = env
        .rt(
            &token,
            "GET",
            &format!("/turns/{turn}/signal?wait_seconds=5"),
            None,
        )
        .await;
    assert_eq!(sig, json!({"cancel": true}));
    let (s, e) = env
        .rt(&token, "POST", "/events", Some(json!({"events": [{"client_id": "a", "type": "agent.message", "level": "user", "body": {}, "turn_id": turn}]})))
        .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::CONFLICT, Some("turn_canceled"))
    );
    let (s, done) = env
        .rt(
            &token,
            "POST",
            &format!("/turns/{turn}/complete"),
            Some(json!({"yield_reason": "canceled"})),
        )
        .await;
    assert_eq!(
        (s, &done["yield_reason"]),
        (StatusCode::OK, &json!("canceled"))
    );
    let (_, again) = env
        .rt(
            &token,
            "POST",
            &format!("/turns/{turn}/complete"),
            Some(json!({"yield_reason": "completed"})),
        )
        .await;
    assert_eq!(
        again["yield_reason"], "canceled",
        "completing twice returns the turn unchanged"
    );
    // Nothing pending: 204 after the wait; a steer wakes a waiting claim.
    let (s, _) = env
        .rt(&token, "POST", "/claim", Some(json!({"wait_seconds": 0})))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let waiting = {
        let runtime = env.runtime.clone();
        let token = token.clone();
        tokio::spawn(async move {
            Env::send(
                &runtime,
                Env::request(
                    "POST",
                    "/runtime/v1/claim",
                    Some(&token),
                    Some(&json!({"wait_seconds": 20})),
                ),
            )
            .await
        })
    };
    // Steered only once the claim waits (the long-poll gauge says so), so the steer is what
    // wakes it.
    sealpod_testkit::eventually("the claim waiting", || async {
        (env.state.metrics().long_polls() == 1).then_some(())
    })
    .await;
    env.call(
        "POST",
        &format!("/v3/sessions/{id}/messages"),
        Some(&env.key_a),
        Some(json!({"text": "wake"})),
    )
    .await;
    let (s, woke, _) = waiting.await.expect("task");
    assert_eq!((s, &woke["number"]), (StatusCode::OK, &json!(2)));
    // Validation of appends.
    for (body, param) in [
        (
            json!({"events": [{"client_id": "", "type": "x", "level": "user", "body": {}}]}),
            "client_id",
        ),
        (
            json!({"events": [{"client_id": "a", "type": "turn.fake", "level": "user", "body": {}}]}),
            "type",
        ),
    ] {
        let (s, e) = env.rt(&token, "POST", "/events", Some(body)).await;
        assert_eq!(
            (s, e["error"]["param"].as_str()),
            (StatusCode::BAD_REQUEST, Some(param))
        );
    }
    // Egress events and audit records: proxy scope only, appended at level internal.
    let batch = json!({"events": [
        {"type": "egress.denied", "ts": "2026-11-27T00:00:00Z", "body": {"host": "evil.example", "port": 443, "reason": "not_allowlisted"}},
        {"type": "egress.request", "ts": "2026-11-27T00:00:01Z", "body": {"host": "api.anthropic.com", "port": 443,
            "reason": "allowed", "method": "POST", "path": "/v1/messages", "status": 200, "bytes_sent": 10,
            "bytes_received": 20, "duration_ms": 3, "swapped": true, "unrecorded": 0}},
    ]});
    let bogus =
        json!({"events": [{"type": "egress.bogus", "ts": "2026-11-27T00:00:00Z", "body": {}}]});
    assert_eq!(
        env.rt(&proxy, "POST", "/egress-events", Some(bogus))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        env.rt(&token, "POST", "/egress-events", Some(batch.clone()))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (s, acc) = env.rt(&proxy, "POST", "/egress-events", Some(batch)).await;
    assert_eq!((s, acc), (StatusCode::ACCEPTED, json!({"accepted": 2})));
    let (_, page) = env
        .call(
            "GET",
            &format!("/v3/sessions/{id}/events?type=egress.*"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(page["data"][0]["level"], "internal");
    assert_eq!(page["data"][0]["actor"]["type"], "system");
    let record = &page["data"][1];
    assert_eq!(
        (&record["type"], &record["level"]),
        (&json!("egress.request"), &json!("internal"))
    );
    assert_eq!(record["body"]["path"], "/v1/messages");
    assert_eq!(record["body"]["decided_at"], "2026-11-27T00:00:01Z");
    // The egress gate: proxy scope only, and a report never lowers the metered total.
    let report = |n: i64| Some(json!({"metered_tokens": n}));
    let (s, _) = env.rt(&token, "POST", "/egress-gate", report(1)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = env.rt(&proxy, "POST", "/egress-gate", report(-1)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, answer) = env.rt(&proxy, "POST", "/egress-gate", report(40)).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(answer["metered_tokens"], 40);
    let (_, answer) = env.rt(&proxy, "POST", "/egress-gate", report(7)).await;
    assert_eq!(answer["metered_tokens"], 40);
    // The token of one session does not reach another; revoke ends the session's tokens.
    let other_token = env.runtime_token(TENANT_A, &other, Scope::Runtime);
    let (_, info) = env.rt(&other_token, "GET", "/session", None).await;
    assert_eq!(info["id"], json!(other));
    let (s, r) = env.rt(&token, "POST", "/revoke", None).await;
    assert_eq!((s, r), (StatusCode::OK, json!({"revoked": true})));
    assert_eq!(
        env.rt(&token, "GET", "/session", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        env.rt(
            &proxy,
            "POST",
            "/egress-events",
            Some(json!({"events": []}))
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        env.rt(&other_token, "GET", "/session", None).await.0,
        StatusCode::OK
    );
}

#[derive(Clone, Copy, Debug)]
enum Who {
    OrgA,
    OrgB,
    Read,
    Steer,
    Expired,
    OtherSession,
    Garbage,
    Nobody,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Org key only, not an object of a tenant (creates and lists).
    OrgCollection,
    /// Org key only, an object of tenant A.
    OrgObject,
    /// Org key or a client token with `read`.
    Read,
    /// Org key or a client token with `steer`.
    Steer,
}

fn expected(kind: Kind, who: Who, ok: StatusCode) -> StatusCode {
    use StatusCode as S;
    match (who, kind) {
        (Who::OrgA, _) => ok,
        (Who::OrgB, Kind::OrgCollection) => ok,
        (Who::OrgB, _) => S::NOT_FOUND,
        (Who::Expired | Who::Garbage | Who::Nobody, _) => S::UNAUTHORIZED,
        (Who::Read | Who::Steer | Who::OtherSession, Kind::OrgCollection | Kind::OrgObject) => {
            S::FORBIDDEN
        }
        (Who::OtherSession, _) => S::NOT_FOUND,
        (Who::Read, Kind::Read) | (Who::Steer, Kind::Steer) => ok,
        (Who::Read, Kind::Steer) | (Who::Steer, Kind::Read) => S::FORBIDDEN,
    }
}

#[tokio::test]
async fn auth_matrix_covers_every_route() {
    let env = Env::start().await;
    let a = Some(env.key_a.as_str());
    let agent = env.agent("matrix").await;
    let (sid, _) = env.session(&agent, "x").await;
    let (other, _) = env.session(&agent, "y").await;
    let (turn, result) = env.run_turn(&sid, "done").await;
    let (_, cred) = env
        .call(
            "POST",
            "/v3/credentials",
            a,
            Some(json!({"key": "sk-ant-matrix"})),
        )
        .await;
    let cred = cred["id"].as_str().expect("id").to_owned();
    let mint = |session: &str, scopes: Scopes, expires_in: i64| {
        let now = chrono::Utc::now().timestamp();
        env.state
            .client_key()
            .mint(&ClientClaims {
                namespace: TENANT_A.into(),
                session: session.into(),
                scopes,
                issued_at: now - 100,
                expires_at: now + expires_in,
            })
            .expose()
            .to_owned()
    };
    let read = mint(
        &sid,
        Scopes {
            read: true,
            steer: false,
        },
        600,
    );
    let steer = mint(
        &sid,
        Scopes {
            read: false,
            steer: true,
        },
        600,
    );
    let expired = mint(
        &sid,
        Scopes {
            read: true,
            steer: true,
        },
        -1,
    );
    let other_tok = mint(
        &other,
        Scopes {
            read: true,
            steer: true,
        },
        600,
    );

    let routes: Vec<(&str, String, Option<Value>, Kind, StatusCode)> = vec![
        (
            "POST",
            "/v3/agents".into(),
            Some(json!({"name": "matrix-2", "prompt": "p", "model": "anthropic/claude-x"})),
            Kind::OrgCollection,
            StatusCode::CREATED,
        ),
        (
            "GET",
            "/v3/agents".into(),
            None,
            Kind::OrgCollection,
            StatusCode::OK,
        ),
        (
            "GET",
            format!("/v3/agents/{agent}"),
            None,
            Kind::OrgObject,
            StatusCode::OK,
        ),
        (
            "PATCH",
            format!("/v3/agents/{agent}"),
            Some(json!({"limits": {"turns": 5}})),
            Kind::OrgObject,
            StatusCode::OK,
        ),
        (
            "POST",
            "/v3/credentials".into(),
            Some(json!({"key": "sk-ant-m2"})),
            Kind::OrgCollection,
            StatusCode::CREATED,
        ),
        (
            "GET",
            "/v3/credentials".into(),
            None,
            Kind::OrgCollection,
            StatusCode::OK,
        ),
        (
            "PATCH",
            format!("/v3/credentials/{cred}"),
            Some(json!({"key": "sk-ant-m3"})),
            Kind::OrgObject,
            StatusCode::OK,
        ),
        (
            "PUT",
            "/v3/credentials/default".into(),
            Some(json!({"credential": cred})),
            Kind::OrgObject,
            StatusCode::OK,
        ),
        (
            "POST",
            "/v3/sessions".into(),
            Some(json!({"agent": agent, "input": "z"})),
            Kind::OrgObject,
            StatusCode::CREATED,
        ),
        (
            "GET",
            "/v3/sessions".into(),
            None,
            Kind::OrgCollection,
            StatusCode::OK,
        ),
        (
            "GET",
            format!("/v3/sessions/{sid}"),
            None,
            Kind::OrgObject,
            StatusCode::OK,
        ),
        (
            "POST",
            format!("/v3/sessions/{sid}/client-tokens"),
            Some(json!({})),
            Kind::OrgObject,
            StatusCode::CREATED,
        ),
        (
            "GET",
            format!("/v3/sessions/{sid}/events"),
            None,
            Kind::Read,
            StatusCode::OK,
        ),
        (
            "GET",
            format!("/v3/sessions/{sid}/events/{result}"),
            None,
            Kind::Read,
            StatusCode::OK,
        ),
        (
            "GET",
            format!("/v3/sessions/{sid}/messages"),
            None,
            Kind::Read,
            StatusCode::OK,
        ),
        (
            "POST",
            format!("/v3/sessions/{sid}/messages"),
            Some(json!({"text": "m"})),
            Kind::Steer,
            StatusCode::ACCEPTED,
        ),
        (
            "GET",
            format!("/v3/sessions/{sid}/result"),
            None,
            Kind::OrgObject,
            StatusCode::OK,
        ),
        (
            "GET",
            format!("/v3/sessions/{sid}/turns"),
            None,
            Kind::OrgObject,
            StatusCode::OK,
        ),
        (
            "GET",
            format!("/v3/sessions/{sid}/turns/{turn}"),
            None,
            Kind::OrgObject,
            StatusCode::OK,
        ),
        (
            "POST",
            format!("/v3/sessions/{sid}/cancel"),
            None,
            Kind::OrgObject,
            StatusCode::OK,
        ),
        (
            "DELETE",
            format!("/v3/credentials/{cred}"),
            None,
            Kind::OrgObject,
            StatusCode::NO_CONTENT,
        ),
        (
            "POST",
            format!("/v3/sessions/{sid}/archive"),
            None,
            Kind::OrgObject,
            StatusCode::OK,
        ),
    ];
    let mut checked = 0;
    for (method, path, body, kind, ok) in &routes {
        // Everyone but the tenant's own key first, so the tenant's call comes last.
        for who in [
            Who::OrgB,
            Who::Read,
            Who::Steer,
            Who::Expired,
            Who::OtherSession,
            Who::Garbage,
            Who::Nobody,
            Who::OrgA,
        ] {
            let token = match who {
                Who::OrgA => Some(env.key_a.clone()),
                Who::OrgB => Some(env.key_b.clone()),
                Who::Read => Some(read.clone()),
                Who::Steer => Some(steer.clone()),
                Who::Expired => Some(expired.clone()),
                Who::OtherSession => Some(other_tok.clone()),
                Who::Garbage => Some("not-a-token".to_owned()),
                Who::Nobody => None,
            };
            // POST /sessions names an agent of tenant A: tenant B gets 404 for it.
            let (s, v) = env.call(method, path, token.as_deref(), body.clone()).await;
            let want = expected(*kind, who, *ok);
            assert_eq!(s, want, "{method} {path} as {who:?}: {v}");
            if s.is_client_error() || s.is_server_error() {
                assert!(
                    v["error"]["type"].is_string() && v["error"]["request_id"].is_string(),
                    "{v}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, routes.len() * 8);
    // `?token=` opens only the SSE stream (`tests/query_token.rs`), not the JSON page or a POST.
    let (s, _) = env
        .call(
            "GET",
            &format!("/v3/sessions/{other}/events?token={other_tok}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = env
        .call(
            "POST",
            &format!("/v3/sessions/{other}/messages?token={other_tok}"),
            None,
            Some(json!({"text": "q"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // X-API-Key works like a bearer org key.
    let req = axum::http::Request::builder()
        .uri("/v3/agents")
        .header("x-api-key", &env.key_a)
        .body(axum::body::Body::empty())
        .expect("req");
    assert_eq!(Env::send(&env.app, req).await.0, StatusCode::OK);
    // After archive, the session's client tokens stop working (401).
    let (s, _) = env
        .call(
            "GET",
            &format!("/v3/sessions/{sid}/events"),
            Some(&read),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let _ = TENANT_B;
}

#[tokio::test]
async fn cors_preflight_and_admin_endpoints() {
    let env = Env::start().await;
    let req = axum::http::Request::builder()
        .method("OPTIONS")
        .uri("/v3/sessions/ses_x/events")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "authorization,last-event-id,idempotency-key,content-type",
        )
        .body(axum::body::Body::empty())
        .expect("req");
    let res = tower::ServiceExt::oneshot(env.app.clone(), req)
        .await
        .expect("res");
    assert!(res.status().is_success());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .expect("str")
        .to_ascii_lowercase();
    for want in [
        "authorization",
        "content-type",
        "idempotency-key",
        "last-event-id",
    ] {
        assert!(allowed.contains(want), "{allowed}");
    }
    let methods = h["access-control-allow-methods"].to_str().expect("str");
    for want in ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"] {
        assert!(methods.contains(want), "{methods}");
    }
    assert_eq!(h["access-control-max-age"], "600");
    assert!(h["vary"].to_str().expect("str").contains("origin"));
    // An ordinary request from a page: its origin reflected, the request id readable, and the
    // answer marked as depending on the origin; without an origin, nothing is allowed.
    let mut from_page = Env::request("GET", "/v3/agents", Some(&env.key_a), None);
    from_page
        .headers_mut()
        .insert("origin", "https://app.example".parse().expect("value"));
    let (s, _, h) = Env::send(&env.app, from_page).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-expose-headers"], "x-request-id");
    assert!(h["x-request-id"].to_str().expect("str").starts_with("req_"));
    assert!(h["vary"].to_str().expect("str").contains("origin"));
    let (s, _, h) = Env::send(
        &env.app,
        Env::request("GET", "/v3/agents", Some(&env.key_a), None),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!h.contains_key("access-control-allow-origin"), "{h:?}");
    let (s, body, _) = Env::send(&env.admin, Env::request("GET", "/healthz", None, None)).await;
    assert_eq!((s, body), (StatusCode::OK, json!("ok")));
    let (s, _, _) = Env::send(&env.admin, Env::request("GET", "/readyz", None, None)).await;
    assert_eq!(s, StatusCode::OK);
    env.call("GET", "/v3/agents", Some(&env.key_a), None).await;
    let (s, metrics, _) = Env::send(&env.admin, Env::request("GET", "/metrics", None, None)).await;
    assert_eq!(s, StatusCode::OK);
    let text = metrics.as_str().expect("text");
    assert!(
        text.contains("sealpod_api_server_http_responses_total{class=\"2xx\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn idle_sessions_hibernate_and_input_wakes_them() {
    let env = Env::start().await;
    let a = Some(env.key_a.as_str());
    let agent = env.agent("sleepy").await;
    // The idle timeout is part of the agent's sandbox shape (set with kubectl, not /v3).
    Api::<Agent>::namespaced(env.cluster.client(), TENANT_A)
        .patch(
            &agent.replace('_', "-"),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"sandbox": {"idleTimeoutSeconds": 1}}})),
        )
        .await
        .expect("patch agent");
    let (id, _) = env.session(&agent, "x").await;
    env.run_turn(&id, "done").await;
    tokio::spawn(sealpod_api_server::lifecycle::run_idle_sweep(
        env.state.clone(),
        std::time::Duration::from_millis(200),
    ));
    let sessions = Api::<Session>::namespaced(env.cluster.client(), TENANT_A);
    let name = id.replace('_', "-");
    let desired = |what: &'static str, want: sealpod_resources::session::DesiredState| {
        let sessions = sessions.clone();
        let name = name.clone();
        async move {
            sealpod_testkit::eventually(what, || async {
                let session = sessions.get(&name).await.expect("session");
                (session.spec.desired_state == want).then_some(())
            })
            .await;
        }
    };
    desired(
        "hibernated after the idle timeout",
        sealpod_resources::session::DesiredState::Hibernated,
    )
    .await;
    let (s, _) = env
        .call(
            "POST",
            &format!("/v3/sessions/{id}/messages"),
            a,
            Some(json!({"text": "wake up"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    desired(
        "new input wakes it",
        sealpod_resources::session::DesiredState::Running,
    )
    .await;
}

/// With watch namespaces, org keys are watched in those namespaces only (RBAC granted per
/// namespace allows no cluster-wide list): their keys work, the others' do not.
#[tokio::test]
async fn with_watch_namespaces_only_their_org_keys_authenticate() {
    let env = Env::start_with(Options {
        watch_namespaces: vec![TENANT_A.to_owned()],
        ..Options::default()
    })
    .await;
    let (s, v) = env.call("GET", "/v3/agents", Some(&env.key_a), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = env.call("GET", "/v3/agents", Some(&env.key_b), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
}
