//! The runtime binary holding only a sealed token, reaching the fake model (which accepts only
//! the real key) through the real sidecar proxy (run in-process from its library, TLS
//! interception with its per-pod CA, sealed-token swap), against the in-process fake runtime API.
//!
//! Proves: the model received the real key on every call; the runtime's process environment,
//! workspace, logs and events hold the sealed token at most, never the real key.

mod support;

use std::sync::Arc;

use sealpod_resources::common::Limits;
use sealpod_resources::secret::SealedToken;
use sealpod_sidecar::resolve::SystemNet;
use sealpod_tests::fake_model::scenario::ScenarioDefaults;
use sealpod_tests::fake_model::{AuthSeen, FakeModelConfig, TlsSettings};
use support::{Harness, WAIT};

const REAL_KEY: &str = "sk-ant-api03-REAL-model-key-never-in-the-sandbox-0042";
const MODEL_HOST: &str = "api.model.test";

struct Pod {
    harness: Harness,
    sealed: SealedToken,
    _proxy: sealpod_sidecar::running::Running,
}

async fn pod() -> Pod {
    let config = FakeModelConfig {
        tls: Some(TlsSettings {
            host_names: vec![MODEL_HOST.into()],
            cert_out: None,
        }),
        scenarios: ScenarioDefaults {
            chunk_chars: 5,
            ..ScenarioDefaults::default()
        },
        ..FakeModelConfig::plain(REAL_KEY)
    };
    let mut harness = Harness::with_model(Limits::default(), config).await;
    let dir = harness.dir.path().to_path_buf();
    // The proxy's own files live outside the workspace, as in a pod (a separate container).
    std::fs::write(dir.join("real-key"), REAL_KEY).expect("key file");
    let sealed = SealedToken::generate();
    let yaml = format!(
        "listen: 127.0.0.1:0\n\
         admin_listen: 127.0.0.1:0\n\
         ca_cert_out: {ca}\n\
         allow_cidrs: [127.0.0.1/32]\n\
         credentials:\n  - sealed: {sealed}\n    value_file: {key}\n    hosts: [{MODEL_HOST}]\n    headers:\n      - name: x-api-key\n\
         resolve:\n  \"{MODEL_HOST}:443\": [\"{upstream}\"]\n\
         extra_roots: [{root}]\n",
        ca = dir.join("pod-ca.pem").display(),
        sealed = sealed.expose(),
        key = dir.join("real-key").display(),
        upstream = harness.model.addr(),
        root = dir.join("ca.pem").display(),
    );
    std::fs::write(dir.join("proxy.yaml"), yaml).expect("proxy config");
    let validated = sealpod_sidecar::config::load(&dir.join("proxy.yaml")).expect("valid config");
    let net = Arc::new(SystemNet::new(validated.resolve.clone()));
    let proxy = sealpod_sidecar::running::start(&validated, net)
        .await
        .expect("proxy starts");
    harness.extra_env = vec![
        ("ANTHROPIC_API_KEY".into(), sealed.expose().into()),
        ("ANTHROPIC_BASE_URL".into(), format!("https://{MODEL_HOST}")),
        ("HTTPS_PROXY".into(), format!("http://{}", proxy.listen)),
        ("NO_PROXY".into(), "127.0.0.1".into()),
        (
            "SSL_CERT_FILE".into(),
            dir.join("pod-ca.pem").display().to_string(),
        ),
        ("SEALPOD_ALLOW_DIRECT_EGRESS".into(), String::new()),
    ];
    Pod {
        harness,
        sealed,
        _proxy: proxy,
    }
}

impl Pod {
    fn assert_only_sealed_token_in_the_sandbox(&self) {
        let h = &self.harness;
        let environ = h.process_environ();
        assert!(
            environ.iter().all(|v| !v.contains(REAL_KEY)),
            "real key in the runtime's environment"
        );
        assert!(
            environ.contains(&format!("ANTHROPIC_API_KEY={}", self.sealed.expose())),
            "the runtime holds the sealed token"
        );
        for (path, bytes) in h.workspace_files() {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(REAL_KEY),
                "real key in {}",
                path.display()
            );
        }
        let logs = h.logs();
        let events = serde_json::to_string(&h.api.state().events).expect("json");
        for text in [&logs, &events] {
            assert!(!text.contains(REAL_KEY));
            assert!(!text.contains(self.sealed.expose()));
        }
        for r in h.model_requests() {
            assert_eq!(
                r.auth,
                AuthSeen::RealKey,
                "every model call carried the real key"
            );
            assert!(!r.real_key_elsewhere);
        }
    }
}

#[tokio::test]
async fn a_tool_chain_through_the_sidecar_reaches_the_model_with_the_real_key_only() {
    let mut pod = pod().await;
    pod.harness.start();
    // The model's first tool writes a file; a later bash call dumps the environment into the
    // workspace, so the scan below also covers what tools see.
    pod.harness
        .api
        .steer("[[scenario:tool_chain]] chain through the proxy");
    let done = pod.harness.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "completed");
    assert_eq!(pod.harness.model_requests().len(), 5);
    let answer = pod
        .harness
        .api
        .state()
        .of_type("agent.message")
        .last()
        .expect("answer")
        .body["text"]
        .clone();
    assert_eq!(answer, "Chain done: beta\nchain-ok");
    std::process::Command::new("bash")
        .args([
            "-c",
            &format!(
                "tr '\\0' '\\n' < /proc/{}/environ > env-dump.txt",
                pod.harness.pid()
            ),
        ])
        .current_dir(pod.harness.workspace())
        .status()
        .expect("dump");
    pod.assert_only_sealed_token_in_the_sandbox();
}

#[tokio::test]
async fn a_401_and_a_529_storm_through_the_sidecar() {
    let mut pod = pod().await;
    pod.harness.start();
    pod.harness.api.steer("[[scenario:storm:1:529]] first");
    assert_eq!(
        pod.harness.api.completed(1, WAIT).await["yield_reason"],
        "completed"
    );
    pod.harness.api.steer("[[scenario:auth_error]] second");
    assert_eq!(
        pod.harness.api.completed(2, WAIT).await["yield_reason"],
        "error"
    );
    let statuses: Vec<u16> = pod
        .harness
        .model_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [529, 200, 401]);
    assert_eq!(
        pod.harness.api.state().of_type("error.model")[0].body["code"],
        "model_auth"
    );
    pod.assert_only_sealed_token_in_the_sandbox();
}
