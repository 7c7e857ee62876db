//! The `devcluster serve` binary: prints its address once ready, serves HTTPS unless
//! `--tls=false`, writes a kubeconfig kube-rs accepts (with the CA over HTTPS), and persists state
//! across restarts with `--state`.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(args: &[&str]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devcluster"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn devcluster");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("ready line")
        .to_string();
    (Server(child), url)
}

async fn client(kubeconfig: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

#[tokio::test]
async fn serve_prints_its_address_and_keeps_state_across_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let kc = dir.path().join("kubeconfig");
    let state = dir.path().join("state.json");
    // No `--tls`: HTTPS is the default.
    let args = [
        "--kubeconfig-out",
        kc.to_str().expect("utf8"),
        "--state",
        state.to_str().expect("utf8"),
    ];
    {
        let (mut server, url) = serve(&args);
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        let cms: Api<ConfigMap> = Api::default_namespaced(client(&kc).await);
        let cm: ConfigMap = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "kept"}, "data": {"a": "1"}}),
        )
        .expect("cm");
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create");
        // SIGTERM: the server writes its state file before exiting.
        let pid = server.0.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = server.0.wait().expect("exits");
        assert!(exit.success(), "{exit:?}");
    }
    let (_server, _) = serve(&args);
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&kc).await);
    let cm = cms.get("kept").await.expect("state survived the restart");
    assert_eq!(
        cm.data.and_then(|d| d.get("a").cloned()).as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn plain_http_is_an_explicit_choice() {
    let dir = tempfile::tempdir().expect("tmp");
    let kc = dir.path().join("kubeconfig");
    let (_server, url) = serve(&[
        "--tls=false",
        "--kubeconfig-out",
        kc.to_str().expect("utf8"),
    ]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&kc).await);
    cms.list(&Default::default())
        .await
        .expect("kube-rs sends its token over HTTP");
}
