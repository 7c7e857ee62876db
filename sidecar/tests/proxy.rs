//! Integration tests of the proxy with real TLS on loopback: a fake upstream that returns 401
//! unless it receives the real key and records every header, a counting resolver/dialler, and an
//! event sink.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use http_body_util::BodyExt;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sealpod_sidecar::resolve::SystemNet;
use sealpod_sidecar::running::{self, Running};
use support::upstream::{self, Pki, Upstream};
use support::{CountingNet, Sink};

const SEALED_A: &str = "sp_sealed_0123456789abcdef0123456789abcdef";
const SEALED_B: &str = "sp_sealed_fedcba9876543210fedcba9876543210";
const KEY_A: &str = "sk-ant-real-key-AAAA-0123456789";
const KEY_B: &str = "sk-other-real-key-BBBB-9876543210";
const H2_AND_H1: &[&[u8]] = &[b"h2", b"http/1.1"];
const H1_ONLY: &[&[u8]] = &[b"http/1.1"];
const NAMES: [&str; 5] = [
    "api.fake.test",
    "other-api.fake.test",
    "tunnel.fake.test",
    "other.fake.test",
    "sni.fake.test",
];

/// The non-public matrix of the issue, one address per form.
const NON_PUBLIC: [&str; 30] = [
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "127.0.0.2",
    "169.254.1.1",
    "169.254.169.254",
    "169.254.170.2",
    "0.0.0.0",
    "100.64.0.1",
    "192.0.0.1",
    "198.18.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "::1",
    "::",
    "fd00::1",
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:8.8.8.8",
    "::127.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:1",
    "2002:7f00:1::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "fd00:ec2::254",
    "fec0::1",
    "192.0.2.1",
    "100.100.100.200",
];

struct Harness {
    running: Running,
    upstream: Upstream,
    plain: Upstream,
    pki: Pki,
    dir: tempfile::TempDir,
    net: Arc<CountingNet>,
    sink: Arc<Sink>,
    pod_ca: CertificateDer<'static>,
}

impl Harness {
    async fn start(mode: &str, alpn: &[&[u8]]) -> Self {
        Self::start_with_sink(mode, alpn, None).await
    }

    /// `sink_url` replaces the recording sink's URL (for a sink that never answers).
    async fn start_with_sink(mode: &str, alpn: &[&[u8]], sink_url: Option<String>) -> Self {
        let pki = Pki::new(&NAMES);
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let upstream = upstream::start(&pki, KEY_A, alpn, any).await;
        let plain = upstream::start_plain(KEY_A, any).await;
        let (sink_addr, sink) = Sink::start().await;
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path().display().to_string();
        std::fs::write(dir.path().join("up.pem"), &pki.root_pem).expect("root");
        std::fs::write(dir.path().join("key_a"), format!("{KEY_A}\n")).expect("key");
        std::fs::write(dir.path().join("key_b"), KEY_B).expect("key");
        std::fs::write(dir.path().join("sink_token"), "sink-token-1\n").expect("token");
        let sink_url = sink_url.unwrap_or_else(|| format!("http://{sink_addr}/runtime/v1/egress"));
        let port = upstream.addr.port();
        let plain_port = plain.addr.port();
        let mut resolve = String::new();
        for (i, ip) in NON_PUBLIC.iter().enumerate() {
            let addr = SocketAddr::new(ip.parse().expect("ip"), 443);
            resolve.push_str(&format!("  h{i}.np.test: [\"{addr}\"]\n"));
        }
        let yaml = format!(
            r#"listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
ca_cert_out: {d}/ca.pem
mode: {mode}
allow: ["tunnel.fake.test:{port}", "plain.fake.test:{plain_port}", "*.np.test:443", "169.254.169.254:80"]
allow_cidrs: [127.0.0.1/32]
credentials:
  - sealed: {SEALED_A}
    value_file: {d}/key_a
    hosts: ["api.fake.test:{port}", "plain-api.fake.test:{plain_port}"]
    headers:
      - name: x-api-key
      - name: authorization
        scheme: Bearer
  - sealed: {SEALED_B}
    value_file: {d}/key_b
    hosts: ["other-api.fake.test:{port}"]
    headers: [{{name: x-api-key}}]
events:
  url: {sink_url}
  token_file: {d}/sink_token
resolve:
  api.fake.test: [127.0.0.1]
  other-api.fake.test: [127.0.0.1]
  tunnel.fake.test: [127.0.0.1]
  unlisted.fake.test: [127.0.0.1]
  plain.fake.test: [127.0.0.1]
  plain-api.fake.test: [127.0.0.1]
{resolve}extra_roots: [{d}/up.pem]
"#
        );
        let config = sealpod_sidecar::config::parse(&yaml).expect("config");
        let net = Arc::new(CountingNet::new(SystemNet::new(config.resolve.clone())));
        let running = running::start(&config, net.clone()).await.expect("start");
        let pod_ca = CertificateDer::from_pem_file(dir.path().join("ca.pem")).expect("ca_cert_out");
        Self {
            running,
            upstream,
            plain,
            pki,
            dir,
            net,
            sink,
            pod_ca,
        }
    }

    fn port(&self) -> u16 {
        self.upstream.addr.port()
    }

    fn target(&self, host: &str) -> String {
        format!("{host}:{}", self.port())
    }

    /// CONNECT then TLS (trusting the pod CA) with `sni`: an HTTP/1.1 client.
    async fn intercepted(
        &self,
        host: &str,
        sni: &str,
    ) -> hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>> {
        let c = support::connect(self.running.listen, &self.target(host), &[]).await;
        assert_eq!(c.status, 200, "{}", c.head);
        support::https_client(
            c.stream.expect("stream"),
            sni,
            std::slice::from_ref(&self.pod_ca),
        )
        .await
        .expect("tls")
    }

    /// A plain HTTP/1.1 client connection to the proxy listener (for absolute-URI requests).
    async fn plain_client(
        &self,
    ) -> hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>> {
        let stream = tokio::net::TcpStream::connect(self.running.listen)
            .await
            .expect("proxy");
        let (s, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("h");
        tokio::spawn(conn);
        s
    }

    async fn metrics(&self) -> String {
        let stream = tokio::net::TcpStream::connect(self.running.admin)
            .await
            .expect("admin");
        let (mut s, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("h");
        tokio::spawn(conn);
        let r = support::send(
            &mut s,
            support::request("GET", "/metrics", "admin", &[], ""),
        )
        .await;
        assert_eq!(r.0, 200);
        r.2
    }

    async fn wait_for_events(&self, n: usize) -> Vec<(String, serde_json::Value)> {
        self.sink.wait_for_events(n).await
    }
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {line_start} missing"))
}

fn assert_no_secret(text: &str) {
    for secret in [KEY_A, KEY_B] {
        assert!(!text.contains(secret), "real key leaked: {text}");
    }
}

#[tokio::test]
async fn swaps_x_api_key_and_bearer_only_in_their_slots() {
    for alpn in [H2_AND_H1, H1_ONLY] {
        let h = Harness::start("enforce", alpn).await;
        let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
        let host = h.target("api.fake.test");
        let r = support::send(
            &mut c,
            support::request("GET", "/v1/models", &host, &[("x-api-key", SEALED_A)], ""),
        )
        .await;
        assert_eq!(r.0, 200, "x-api-key swapped: {}", r.2);
        let bearer = format!("Bearer {SEALED_A}");
        let r = support::send(
            &mut c,
            support::request(
                "GET",
                "/v1/models",
                &host,
                &[("authorization", &bearer)],
                "",
            ),
        )
        .await;
        assert_eq!(r.0, 200, "bearer swapped: {}", r.2);
        let r = support::send(
            &mut c,
            support::request(
                "GET",
                "/v1/models",
                &host,
                &[("x-not-a-slot", SEALED_A)],
                "",
            ),
        )
        .await;
        assert_eq!(r.0, 401, "an undeclared header is not a slot");
        let records = h.upstream.state.records();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].header("x-api-key"), Some(KEY_A));
        assert_eq!(
            records[1].header("authorization"),
            Some(format!("Bearer {KEY_A}").as_str())
        );
        assert_eq!(records[2].header("x-not-a-slot"), Some(SEALED_A));
        let expected = if alpn.len() == 2 {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        assert_eq!(
            records[0].version, expected,
            "upstream protocol follows ALPN"
        );
        let m = h.metrics().await;
        assert_eq!(metric(&m, "sealpod_sidecar_swaps_total"), 2);
        assert_eq!(metric(&m, "sealpod_sidecar_intercepts_total"), 1);
        assert_no_secret(&m);
    }
}

#[tokio::test]
async fn sealed_tokens_in_body_path_and_query_pass_unchanged() {
    let h = Harness::start("enforce", &[b"h2", b"http/1.1"]).await;
    let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
    let host = h.target("api.fake.test");
    let path = format!("/v1/echo/{SEALED_A}?token={SEALED_A}");
    let body = format!("{{\"prompt\":\"{SEALED_A}\"}}");
    let r = support::send(
        &mut c,
        support::request("POST", &path, &host, &[("x-api-key", SEALED_A)], &body),
    )
    .await;
    assert_eq!(r.0, 200);
    let only_body =
        support::send(&mut c, support::request("POST", "/v1/x", &host, &[], &body)).await;
    assert_eq!(only_body.0, 401, "a token in the body is never swapped");
    let records = h.upstream.state.records();
    assert_eq!(records[0].path_and_query, path);
    assert_eq!(String::from_utf8_lossy(&records[0].body), body);
    assert_eq!(String::from_utf8_lossy(&records[1].body), body);
    for rec in &records {
        assert!(!rec.path_and_query.contains(KEY_A));
        assert!(!String::from_utf8_lossy(&rec.body).contains(KEY_A));
    }
}

#[tokio::test]
async fn real_keys_in_responses_are_redacted() {
    let h = Harness::start("enforce", &[b"http/1.1"]).await;
    let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
    let r = support::send(
        &mut c,
        support::request(
            "GET",
            "/reflect",
            &h.target("api.fake.test"),
            &[("x-api-key", SEALED_A)],
            "",
        ),
    )
    .await;
    assert_eq!(r.0, 200);
    assert_eq!(r.2, format!("your key is {SEALED_A}.\n"));
    assert_eq!(r.1["x-echo-key"], SEALED_A);
    assert_no_secret(&format!("{:?}{}", r.1, r.2));
}

#[tokio::test]
async fn tripwire_refuses_tokens_sent_to_other_hosts() {
    let h = Harness::start("enforce", &[b"http/1.1"]).await;
    // On a CONNECT to an allowlisted tunnel host.
    let c = support::connect(
        h.running.listen,
        &h.target("tunnel.fake.test"),
        &[("proxy-authorization", &format!("Basic {SEALED_A}"))],
    )
    .await;
    assert_eq!(c.status, 403);
    assert!(
        c.head.contains("x-sealpod-deny-reason: token_misuse"),
        "{}",
        c.head
    );
    // Over plain HTTP.
    let plain = format!("http://plain.fake.test:{}/", h.plain.addr.port());
    let stream = tokio::net::TcpStream::connect(h.running.listen)
        .await
        .expect("proxy");
    let (mut s, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("h");
    tokio::spawn(conn);
    let mut req = support::request(
        "GET",
        &plain,
        &format!("plain.fake.test:{}", h.plain.addr.port()),
        &[("x-api-key", SEALED_A)],
        "",
    );
    *req.uri_mut() = plain.parse().expect("uri");
    let r = support::send(&mut s, req).await;
    assert_eq!(r.0, 403);
    assert_eq!(r.1["x-sealpod-deny-reason"], "token_misuse");
    // Smuggled into the destination name (never resolved, never logged or reported as is).
    let c = support::connect(h.running.listen, &format!("{SEALED_A}.evil.test:443"), &[]).await;
    assert_eq!(c.status, 403);
    assert!(
        c.head.contains("x-sealpod-deny-reason: token_misuse"),
        "{}",
        c.head
    );
    assert!(h.net.lookups().is_empty());
    // Inside an intercepted connection: credential A's token sent to credential B's host.
    let mut c = h
        .intercepted("other-api.fake.test", "other-api.fake.test")
        .await;
    let r = support::send(
        &mut c,
        support::request(
            "GET",
            "/",
            &h.target("other-api.fake.test"),
            &[("x-api-key", SEALED_A)],
            "",
        ),
    )
    .await;
    assert_eq!(r.0, 403);
    assert_eq!(r.1["x-sealpod-deny-reason"], "token_misuse");
    // B's own token is swapped there.
    h.upstream.state.set_key(KEY_B);
    let r = support::send(
        &mut c,
        support::request(
            "GET",
            "/",
            &h.target("other-api.fake.test"),
            &[("x-api-key", SEALED_B)],
            "",
        ),
    )
    .await;
    assert_eq!(r.0, 200);
    assert_eq!(
        h.upstream.state.records().len(),
        1,
        "refused requests never reach the upstream"
    );
    assert_eq!(h.plain.state.records().len(), 0);
    let m = h.metrics().await;
    assert_eq!(
        metric(&m, "sealpod_sidecar_denials_total{reason=\"token_misuse\"}"),
        4
    );
    let events = h.wait_for_events(4).await;
    let misuse: Vec<_> = events
        .iter()
        .filter(|(_, e)| e["type"] == "egress.token_misuse")
        .collect();
    assert_eq!(misuse.len(), 4, "{events:?}");
    for (auth, e) in &events {
        assert_eq!(auth, "Bearer sink-token-1");
        let text = e.to_string();
        assert!(
            !text.contains(SEALED_A) && !text.contains(SEALED_B),
            "token in event: {text}"
        );
        assert_no_secret(&text);
    }
    assert_eq!(misuse[0].1["body"]["reason"], "token_misuse");
    assert_eq!(misuse[0].1["body"]["mode"], "enforce");
}

#[tokio::test]
async fn off_allowlist_hosts_are_refused_without_lookup_or_dial() {
    let h = Harness::start("enforce", &[b"http/1.1"]).await;
    let c = support::connect(h.running.listen, "unlisted.fake.test:443", &[]).await;
    assert_eq!(c.status, 403);
    assert!(
        c.head.contains("x-sealpod-deny-reason: not_allowlisted"),
        "{}",
        c.head
    );
    let c = support::connect(
        h.running.listen,
        &h.target("api.fake.test").replace("api.", "evil."),
        &[],
    )
    .await;
    assert_eq!(c.status, 403);
    let stream = tokio::net::TcpStream::connect(h.running.listen)
        .await
        .expect("proxy");
    let (mut s, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("h");
    tokio::spawn(conn);
    let mut req = support::request("GET", "/", "unlisted.fake.test", &[], "");
    *req.uri_mut() = "http://unlisted.fake.test/".parse().expect("uri");
    let r = support::send(&mut s, req).await;
    assert_eq!(r.0, 403);
    assert!(
        h.net.lookups().is_empty(),
        "looked up: {:?}",
        h.net.lookups()
    );
    assert!(h.net.dials().is_empty(), "dialled: {:?}", h.net.dials());
    assert_eq!(
        h.upstream
            .state
            .accepts
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let events = h.wait_for_events(3).await;
    assert_eq!(
        events
            .iter()
            .filter(|(_, e)| e["type"] == "egress.denied")
            .count(),
        3,
        "{events:?}"
    );
}

#[tokio::test]
async fn hosts_without_credentials_are_tunnelled_untouched() {
    let h = Harness::start("enforce", &[b"http/1.1"]).await;
    let c = support::connect(h.running.listen, &h.target("tunnel.fake.test"), &[]).await;
    assert_eq!(c.status, 200);
    // The client sees the upstream's own certificate: the pod CA would not verify here.
    let mut client = support::https_client(
        c.stream.expect("s"),
        "tunnel.fake.test",
        std::slice::from_ref(&h.pki.root_der),
    )
    .await
    .expect("end-to-end TLS with the upstream");
    let r = support::send(
        &mut client,
        support::request(
            "GET",
            "/x",
            "tunnel.fake.test",
            &[("x-api-key", SEALED_A)],
            "",
        ),
    )
    .await;
    assert_eq!(r.0, 401, "nothing is swapped in a tunnel");
    assert_eq!(
        h.upstream.state.records()[0].header("x-api-key"),
        Some(SEALED_A)
    );
    // And the pod CA is not what the tunnel presents.
    let c = support::connect(h.running.listen, &h.target("tunnel.fake.test"), &[]).await;
    let pod_only = support::https_client(
        c.stream.expect("s"),
        "tunnel.fake.test",
        std::slice::from_ref(&h.pod_ca),
    )
    .await;
    assert!(pod_only.is_err(), "a tunnel must not be intercepted");
    let m = h.metrics().await;
    assert_eq!(metric(&m, "sealpod_sidecar_tunnels_total"), 2);
    assert_eq!(metric(&m, "sealpod_sidecar_intercepts_total"), 0);
}

#[tokio::test]
async fn host_sni_and_connect_must_agree() {
    let h = Harness::start("enforce", &[b"http/1.1"]).await;
    // SNI differs from the CONNECT target.
    let mut c = h.intercepted("api.fake.test", "sni.fake.test").await;
    let r = support::send(
        &mut c,
        support::request(
            "GET",
            "/",
            &h.target("api.fake.test"),
            &[("x-api-key", SEALED_A)],
            "",
        ),
    )
    .await;
    assert_eq!(r.0, 421);
    // Host differs from the CONNECT target (SNI agrees).
    let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
    let r = support::send(
        &mut c,
        support::request(
            "GET",
            "/",
            &h.target("other.fake.test"),
            &[("x-api-key", SEALED_A)],
            "",
        ),
    )
    .await;
    assert_eq!(r.0, 421);
    assert_eq!(r.1["x-sealpod-deny-reason"], "host_mismatch");
    let r = support::send(
        &mut c,
        support::request(
            "GET",
            "/",
            "api.fake.test:1",
            &[("x-api-key", SEALED_A)],
            "",
        ),
    )
    .await;
    assert_eq!(r.0, 421, "the port counts too");
    assert!(
        h.upstream.state.records().is_empty(),
        "nothing forwarded on a mismatch"
    );
    let m = h.metrics().await;
    assert_eq!(
        metric(
            &m,
            "sealpod_sidecar_denials_total{reason=\"host_mismatch\"}"
        ),
        3
    );
}

#[tokio::test]
async fn every_non_public_form_is_refused_and_none_is_dialled() {
    let h = Harness::start("enforce", &[b"http/1.1"]).await;
    for (i, ip) in NON_PUBLIC.iter().enumerate() {
        let c = support::connect(h.running.listen, &format!("h{i}.np.test:443"), &[]).await;
        assert_eq!(c.status, 403, "{ip}: {}", c.head);
        assert!(
            c.head.contains("x-sealpod-deny-reason: non_public_address"),
            "{ip}: {}",
            c.head
        );
    }
    // A literal metadata address over plain HTTP, even when allowlisted.
    let stream = tokio::net::TcpStream::connect(h.running.listen)
        .await
        .expect("proxy");
    let (mut s, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("h");
    tokio::spawn(conn);
    let mut req = support::request("GET", "/", "169.254.169.254", &[], "");
    *req.uri_mut() = "http://169.254.169.254/latest/meta-data/"
        .parse()
        .expect("uri");
    assert_eq!(support::send(&mut s, req).await.0, 403);
    assert_eq!(
        h.net.lookups().len(),
        NON_PUBLIC.len(),
        "each name was resolved once"
    );
    assert!(h.net.dials().is_empty(), "dialled: {:?}", h.net.dials());
    let m = h.metrics().await;
    assert_eq!(
        metric(
            &m,
            "sealpod_sidecar_denials_total{reason=\"non_public_address\"}"
        ),
        NON_PUBLIC.len() as u64 + 1
    );
}

#[tokio::test]
async fn rotation_applies_to_open_connections() {
    let h = Harness::start("enforce", &[b"h2", b"http/1.1"]).await;
    let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
    let host = h.target("api.fake.test");
    let r = support::send(
        &mut c,
        support::request("GET", "/", &host, &[("x-api-key", SEALED_A)], ""),
    )
    .await;
    assert_eq!(r.0, 200);
    let rotated = "sk-ant-rotated-key-CCCC-5555";
    let tmp = h.dir.path().join("key_a.new");
    std::fs::write(&tmp, rotated).expect("write");
    std::fs::rename(&tmp, h.dir.path().join("key_a")).expect("rename");
    h.upstream.state.set_key(rotated);
    let r = support::send(
        &mut c,
        support::request("GET", "/", &host, &[("x-api-key", SEALED_A)], ""),
    )
    .await;
    assert_eq!(r.0, 200, "the same open connection uses the new value");
    let records = h.upstream.state.records();
    assert_eq!(records[1].header("x-api-key"), Some(rotated));
    assert_eq!(
        h.upstream
            .state
            .accepts
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one upstream connection"
    );
}

#[tokio::test]
async fn sse_events_arrive_one_by_one() {
    for alpn in [H2_AND_H1, H1_ONLY] {
        let h = Harness::start("enforce", alpn).await;
        let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
        let req = support::request(
            "GET",
            "/sse?n=12&gap_ms=40",
            &h.target("api.fake.test"),
            &[("x-api-key", SEALED_A)],
            "",
        );
        c.ready().await.expect("ready");
        let resp = c.send_request(req).await.expect("response");
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("content-length").is_none());
        let mut body = resp.into_body();
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("frame").into_data() {
                frames.push(String::from_utf8_lossy(&data).into_owned());
            }
        }
        let events: usize = frames.iter().map(|f| f.matches("data: ").count()).sum();
        assert_eq!(events, 12);
        for f in &frames {
            assert_eq!(f.matches("data: ").count(), 1, "coalesced: {frames:?}");
            assert!(f.ends_with("\n\n"), "split: {frames:?}");
        }
    }
}

#[tokio::test]
async fn report_mode_allows_but_counts_and_still_guards_addresses() {
    let h = Harness::start("report", &[b"http/1.1"]).await;
    let c = support::connect(h.running.listen, &h.target("unlisted.fake.test"), &[]).await;
    assert_eq!(c.status, 200, "report mode lets it through");
    let c = support::connect(h.running.listen, "h0.np.test:443", &[]).await;
    assert_eq!(c.status, 403, "the address guard still applies");
    let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
    let r = support::send(
        &mut c,
        support::request(
            "GET",
            "/",
            &h.target("api.fake.test"),
            &[("x-api-key", SEALED_A)],
            "",
        ),
    )
    .await;
    assert_eq!(r.0, 200, "credential hosts still swap");
    let m = h.metrics().await;
    assert_eq!(
        metric(
            &m,
            "sealpod_sidecar_report_would_deny_total{reason=\"not_allowlisted\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &m,
            "sealpod_sidecar_denials_total{reason=\"not_allowlisted\"}"
        ),
        0
    );
    let events = h.wait_for_events(2).await;
    assert!(
        events
            .iter()
            .any(|(_, e)| e["type"] == "egress.denied" && e["body"]["mode"] == "report"),
        "{events:?}"
    );
}

#[tokio::test]
async fn plain_http_is_forwarded_for_allowlisted_hosts() {
    let h = Harness::start("enforce", &[b"http/1.1"]).await;
    let authority = format!("plain.fake.test:{}", h.plain.addr.port());
    let stream = tokio::net::TcpStream::connect(h.running.listen)
        .await
        .expect("proxy");
    let (mut s, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("h");
    tokio::spawn(conn);
    let mut req = support::request("GET", "/", &authority, &[], "");
    *req.uri_mut() = format!("http://{authority}/public?q=1")
        .parse()
        .expect("uri");
    let r = support::send(&mut s, req).await;
    assert_eq!((r.0, r.2.as_str()), (200, "public\n"));
    assert_eq!(h.plain.state.records()[0].path_and_query, "/public?q=1");
    let mut req = support::request("GET", "/", "other.fake.test", &[], "");
    *req.uri_mut() = format!("http://{authority}/public").parse().expect("uri");
    assert_eq!(
        support::send(&mut s, req).await.0,
        421,
        "Host must agree with the URI"
    );
}

#[tokio::test]
async fn ready_and_events_for_first_use() {
    let h = Harness::start("enforce", &[b"http/1.1"]).await;
    let stream = tokio::net::TcpStream::connect(h.running.admin)
        .await
        .expect("admin");
    let (mut s, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("h");
    tokio::spawn(conn);
    assert_eq!(
        support::send(&mut s, support::request("GET", "/ready", "admin", &[], ""))
            .await
            .0,
        200
    );
    for _ in 0..2 {
        let c = support::connect(h.running.listen, &h.target("tunnel.fake.test"), &[]).await;
        assert_eq!(c.status, 200);
    }
    // A denied CONNECT after both uses: events are queued and posted in order, so once its
    // `egress.denied` has arrived, a second (wrong) first-use event would have arrived before it.
    let marker = support::connect(h.running.listen, "unlisted.fake.test:443", &[]).await;
    assert_eq!(marker.status, 403);
    // (The tunnels' audit records arrive whenever each tunnel ends: they are not counted.)
    let events = sealpod_util::wait::until(
        "the denied marker",
        std::time::Duration::from_secs(60),
        || async {
            let events = h.sink.events();
            events
                .iter()
                .any(|(_, e)| e["type"] == "egress.denied")
                .then_some(events)
        },
    )
    .await
    .expect("the marker arrives");
    let allowed: Vec<_> = events
        .iter()
        .take_while(|(_, e)| e["type"] != "egress.denied")
        .filter(|(_, e)| e["type"] == "egress.allowed")
        .collect();
    assert_eq!(allowed.len(), 1, "first use only: {events:?}");
    assert_eq!(allowed[0].1["body"]["host"], "tunnel.fake.test");
    assert_eq!(allowed[0].1["body"]["method"], "CONNECT");
}

#[test]
fn the_binary_names_the_bad_key_and_binds_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("probe port");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let path: PathBuf = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        format!("listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:0\nca_cert_out: {}/ca.pem\nallow: [\"*\"]\n", dir.path().display()),
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealpod-sidecar"))
        .args(["proxy", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("allow[0]"), "{stderr}");
    assert!(
        !dir.path().join("ca.pem").exists(),
        "nothing written before validation"
    );
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nca_cert_out: /x\nlisten_addr: 1\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealpod-sidecar"))
        .args(["proxy", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_addr"));
}

#[test]
fn the_binary_runs_the_worker_threads_it_is_given() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("proxy.yaml");
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nca_cert_out: {}\nallow: []\n",
            ca.display()
        ),
    )
    .expect("write");
    let mut proxy = std::process::Command::new(env!("CARGO_BIN_EXE_sealpod-sidecar"))
        .args(["proxy", "--worker-threads", "7", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run");
    // The CA is written once the runtime runs the start-up.
    for _ in 0..200 {
        if ca.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let workers = std::fs::read_dir(format!("/proc/{}/task", proxy.id()))
        .expect("tasks")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("tokio-rt-worker"))
        .count();
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(ca.exists(), "the proxy never started");
    // Seven workers (the default would be one per CPU); blocking-pool threads, if any, only add.
    assert!(workers >= 7, "{workers} runtime threads");
}

#[tokio::test]
async fn a_sink_that_never_answers_does_not_slow_traffic() {
    // Accepts connections and never replies: every batch post hangs until its timeout.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hang_addr = hang.local_addr().expect("addr");
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((s, _)) = hang.accept().await {
            keep.lock().expect("lock").push(s);
        }
    });
    let h = Harness::start_with_sink(
        "enforce",
        H1_ONLY,
        Some(format!("http://{hang_addr}/events")),
    )
    .await;
    // Far more events than the queue holds, while the sink hangs: every request still answers.
    let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
    for i in 0..300 {
        let r = support::send(
            &mut c,
            support::request(
                "GET",
                "/",
                &h.target("api.fake.test"),
                &[("x-api-key", SEALED_A)],
                "",
            ),
        )
        .await;
        assert_eq!(r.0, 200, "request {i}");
    }
    for _ in 0..5000 {
        h.running
            .proxy
            .events
            .emit(sealpod_sidecar::events::Event::new(
                sealpod_sidecar::events::Kind::Denied,
                "flood.test",
                443,
                "not_allowlisted",
                "CONNECT",
                sealpod_resources::proxy_config::Mode::Enforce,
            ));
    }
    let c = support::connect(h.running.listen, "unlisted.fake.test:443", &[]).await;
    assert_eq!(
        c.status, 403,
        "refusals are answered while the queue is full"
    );
    let m = h.metrics().await;
    assert!(
        metric(&m, "sealpod_sidecar_events_dropped_total") > 0,
        "{m}"
    );
    assert_eq!(metric(&m, "sealpod_sidecar_events_sent_total"), 0);
}

#[tokio::test]
async fn http2_upstream_connections_are_shared_across_client_connections() {
    for (alpn, expected_accepts) in [(H2_AND_H1, 1), (H1_ONLY, 3)] {
        let h = Harness::start("enforce", alpn).await;
        for _ in 0..3 {
            let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
            let r = support::send(
                &mut c,
                support::request(
                    "GET",
                    "/",
                    &h.target("api.fake.test"),
                    &[("x-api-key", SEALED_A)],
                    "",
                ),
            )
            .await;
            assert_eq!(r.0, 200);
        }
        assert_eq!(
            h.upstream
                .state
                .accepts
                .load(std::sync::atomic::Ordering::SeqCst),
            expected_accepts,
            "upstream connections for 3 client connections"
        );
    }
}

#[tokio::test]
async fn a_host_with_two_trailing_dots_is_refused_before_any_lookup() {
    let h = Harness::start("enforce", H1_ONLY).await;
    let port = h.port();
    // `api.fake.test..` once matched the credential's host but missed its `resolve` override.
    for target in [
        format!("api.fake.test..:{port}"),
        format!("tunnel.fake.test..:{port}"),
        format!("api..fake.test:{port}"),
        format!(".api.fake.test:{port}"),
    ] {
        let c = support::connect(h.running.listen, &target, &[("x-api-key", SEALED_A)]).await;
        assert_eq!(c.status, 400, "{target}: {}", c.head);
        assert!(
            c.head.contains("x-sealpod-deny-reason: bad_request"),
            "{target}: {}",
            c.head
        );
    }
    let plain = format!("plain.fake.test..:{}", h.plain.addr.port());
    let mut s = h.plain_client().await;
    let mut req = support::request("GET", "/", &plain, &[], "");
    *req.uri_mut() = format!("http://{plain}/public").parse().expect("uri");
    assert_eq!(support::send(&mut s, req).await.0, 400);
    assert!(h.net.lookups().is_empty(), "{:?}", h.net.lookups());
    // The name inside an intercepted connection follows the same rule.
    let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
    let r = support::send(
        &mut c,
        support::request(
            "GET",
            "/",
            &format!("api.fake.test..:{port}"),
            &[("x-api-key", SEALED_A)],
            "",
        ),
    )
    .await;
    assert_eq!(r.0, 421);
    assert!(h.upstream.state.records().is_empty());
    assert!(h.plain.state.records().is_empty());
    // One trailing dot is the same name: matched, resolved (through its override) and dialled as
    // the name without it.
    let mut c = h.intercepted("API.fake.test.", "api.fake.test").await;
    let r = support::send(
        &mut c,
        support::request(
            "GET",
            "/",
            &format!("api.fake.test.:{port}"),
            &[("x-api-key", SEALED_A)],
            "",
        ),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.2);
    let name = format!("api.fake.test:{port}");
    assert_eq!(h.net.lookups(), vec![name.clone(), name]);
}

#[tokio::test]
async fn host_fronting_is_refused_and_the_upstream_gets_the_proxys_host() {
    for alpn in [H2_AND_H1, H1_ONLY] {
        let h = Harness::start("enforce", alpn).await;
        let host = h.target("api.fake.test");
        let absolute = format!("https://{host}/x");
        let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
        // Absolute form names the CONNECT target, Host names another host.
        let mut req = support::request("GET", "/x", "evil.test", &[("x-api-key", SEALED_A)], "");
        *req.uri_mut() = absolute.parse().expect("uri");
        let r = support::send(&mut c, req).await;
        assert_eq!(r.0, 421, "absolute form with a foreign Host");
        assert_eq!(r.1["x-sealpod-deny-reason"], "host_mismatch");
        // Two Host headers, the first one right.
        let req = support::request(
            "GET",
            "/x",
            &host,
            &[("host", "evil.test"), ("x-api-key", SEALED_A)],
            "",
        );
        assert_eq!(support::send(&mut c, req).await.0, 421, "two Host headers");
        // Two Host headers, both right: still not exactly one.
        let req = support::request(
            "GET",
            "/x",
            &host,
            &[("host", &host), ("x-api-key", SEALED_A)],
            "",
        );
        assert_eq!(support::send(&mut c, req).await.0, 421, "a repeated Host");
        // No Host at all (HTTP/1.1 requires one), even with an absolute URI naming the target.
        let req = http::Request::builder()
            .uri(&absolute)
            .header("x-api-key", SEALED_A)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        assert_eq!(support::send(&mut c, req).await.0, 421, "no Host");
        assert!(
            h.upstream.state.records().is_empty(),
            "nothing forwarded on a mismatch"
        );
        // Host and absolute form agree (case and one trailing dot aside): forwarded, with a Host
        // (or HTTP/2 `:authority`) the proxy wrote from the CONNECT target.
        let mut req = support::request(
            "GET",
            "/x",
            &format!("API.Fake.Test.:{}", h.port()),
            &[("x-api-key", SEALED_A)],
            "",
        );
        *req.uri_mut() = absolute.parse().expect("uri");
        let r = support::send(&mut c, req).await;
        assert_eq!(r.0, 200, "{}", r.2);
        let records = h.upstream.state.records();
        assert_eq!(records.len(), 1);
        let hosts: Vec<&str> = records[0]
            .headers
            .iter()
            .filter(|(n, _)| n == "host")
            .map(|(_, v)| v.as_str())
            .collect();
        if records[0].version == "HTTP/2.0" {
            assert_eq!(records[0].authority.as_deref(), Some(host.as_str()));
            assert!(hosts.is_empty(), "{hosts:?}");
        } else {
            assert_eq!(hosts, vec![host.as_str()]);
            assert_eq!(records[0].path_and_query, "/x");
        }
        let m = h.metrics().await;
        assert_eq!(
            metric(
                &m,
                "sealpod_sidecar_denials_total{reason=\"host_mismatch\"}"
            ),
            4
        );
    }
}

#[tokio::test]
async fn plain_http_refuses_a_repeated_host_and_writes_its_own() {
    let h = Harness::start("enforce", H1_ONLY).await;
    let authority = format!("plain.fake.test:{}", h.plain.addr.port());
    let uri = format!("http://{authority}/public");
    let mut s = h.plain_client().await;
    for extra in [authority.as_str(), "evil.test"] {
        let mut req = support::request("GET", "/", &authority, &[("host", extra)], "");
        *req.uri_mut() = uri.parse().expect("uri");
        let r = support::send(&mut s, req).await;
        assert_eq!(r.0, 421, "Host {authority} and Host {extra}");
        assert_eq!(r.1["x-sealpod-deny-reason"], "host_mismatch");
    }
    assert!(h.plain.state.records().is_empty());
    let mut req = support::request(
        "GET",
        "/",
        &format!("PLAIN.fake.test.:{}", h.plain.addr.port()),
        &[],
        "",
    );
    *req.uri_mut() = uri.parse().expect("uri");
    assert_eq!(support::send(&mut s, req).await.0, 200);
    let records = h.plain.state.records();
    let hosts: Vec<&str> = records[0]
        .headers
        .iter()
        .filter(|(n, _)| n == "host")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(hosts, vec![authority.as_str()]);
}

#[tokio::test]
async fn the_upstream_reason_phrase_is_never_relayed() {
    let h = Harness::start("enforce", H1_ONLY).await;
    let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
    // The upstream answers `200 Fine <key>` and `599 Fine <key>`; the client gets the standard
    // phrase for the code (`OK`, which hyper reports as no custom phrase) or none (`<none>`).
    for (query, status, phrase) in [("", 200, None), ("?status=599", 599, Some("<none>"))] {
        let req = support::request(
            "GET",
            &format!("/reason{query}"),
            &h.target("api.fake.test"),
            &[("x-api-key", SEALED_A)],
            "",
        );
        c.ready().await.expect("ready");
        let resp = c.send_request(req).await.expect("response");
        assert_eq!(resp.status().as_u16(), status);
        let got = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        assert_eq!(got.as_deref(), phrase, "status {status}");
        resp.into_body().collect().await.expect("body");
    }
}

#[tokio::test]
async fn tripwire_scans_the_whole_request_head() {
    let h = Harness::start("enforce", H1_ONLY).await;
    let authority = format!("plain.fake.test:{}", h.plain.addr.port());
    let header_name = format!("x-{SEALED_A}");
    let upper = SEALED_A.to_uppercase();
    // Credential A's token to a non-bound allowlisted host, outside every header value.
    let cases: [(&str, String, &str); 5] = [
        ("GET", format!("/v1/{SEALED_A}/x"), "accept"),
        ("GET", format!("/x?k={SEALED_A}"), "accept"),
        ("GET", format!("/x?k={upper}"), "accept"),
        ("GET", "/x".into(), &header_name),
        (SEALED_A, "/x".into(), "accept"),
    ];
    let mut s = h.plain_client().await;
    for (method, path, header) in &cases {
        let mut req = support::request(method, "/", &authority, &[(header, "1")], "");
        *req.uri_mut() = format!("http://{authority}{path}").parse().expect("uri");
        let r = support::send(&mut s, req).await;
        assert_eq!(r.0, 403, "{method} {path} {header}");
        assert_eq!(r.1["x-sealpod-deny-reason"], "token_misuse");
    }
    assert!(
        h.plain.state.records().is_empty(),
        "nothing reached the host"
    );
    // In a header name of a CONNECT to a tunnel host.
    let c = support::connect(
        h.running.listen,
        &h.target("tunnel.fake.test"),
        &[(header_name.as_str(), "1")],
    )
    .await;
    assert_eq!(c.status, 403, "{}", c.head);
    // In the path of an intercepted request to another credential's host.
    let mut c = h
        .intercepted("other-api.fake.test", "other-api.fake.test")
        .await;
    let r = support::send(
        &mut c,
        support::request(
            "GET",
            &format!("/v1/{SEALED_A}"),
            &h.target("other-api.fake.test"),
            &[("x-api-key", SEALED_B)],
            "",
        ),
    )
    .await;
    assert_eq!(r.0, 403);
    assert_eq!(r.1["x-sealpod-deny-reason"], "token_misuse");
    assert!(h.upstream.state.records().is_empty());
    let m = h.metrics().await;
    assert_eq!(
        metric(&m, "sealpod_sidecar_denials_total{reason=\"token_misuse\"}"),
        cases.len() as u64 + 2
    );
}

#[tokio::test]
async fn response_header_names_carrying_the_key_are_dropped() {
    for alpn in [H2_AND_H1, H1_ONLY] {
        let h = Harness::start("enforce", alpn).await;
        let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
        let r = support::send(
            &mut c,
            support::request(
                "GET",
                "/name-echo",
                &h.target("api.fake.test"),
                &[("x-api-key", SEALED_A)],
                "",
            ),
        )
        .await;
        assert_eq!(r.0, 200);
        let folded = KEY_A.to_ascii_lowercase();
        for name in r.1.keys() {
            assert!(!name.as_str().contains(&folded), "key in a name: {name}");
        }
        assert!(r.1.contains_key("content-type"), "other headers stay");
        let m = h.metrics().await;
        assert_eq!(metric(&m, "sealpod_sidecar_redactions_total"), 2);
    }
}

#[tokio::test]
async fn bound_hosts_are_asked_for_identity_and_a_compressed_answer_is_refused() {
    for alpn in [H2_AND_H1, H1_ONLY] {
        let h = Harness::start("enforce", alpn).await;
        let host = h.target("api.fake.test");
        let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
        let r = support::send(
            &mut c,
            support::request(
                "GET",
                "/v1/models",
                &host,
                &[
                    ("x-api-key", SEALED_A),
                    ("accept-encoding", "gzip, br"),
                    ("accept-encoding", "zstd"),
                ],
                "",
            ),
        )
        .await;
        assert_eq!(r.0, 200);
        let records = h.upstream.state.records();
        let sent: Vec<&str> = records[0]
            .headers
            .iter()
            .filter(|(n, _)| n == "accept-encoding")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            sent,
            vec!["identity"],
            "the client's Accept-Encoding replaced"
        );
        // The host answers with a content coding anyway: the body is not relayed.
        let r = support::send(
            &mut c,
            support::request("GET", "/gzip", &host, &[("x-api-key", SEALED_A)], ""),
        )
        .await;
        assert_eq!(r.0, 502);
        assert_eq!(r.1["x-sealpod-deny-reason"], "encoded_response");
        assert!(r.1.get("content-encoding").is_none());
        assert_no_secret(&format!("{:?}{}", r.1, r.2));
        let r = support::send(
            &mut c,
            support::request("GET", "/v1/models", &host, &[("x-api-key", SEALED_A)], ""),
        )
        .await;
        assert_eq!(r.0, 200, "the client connection carries on");
        let m = h.metrics().await;
        assert_eq!(
            metric(
                &m,
                "sealpod_sidecar_denials_total{reason=\"encoded_response\"}"
            ),
            1
        );
        let events = h.wait_for_events(2).await;
        let refused: Vec<_> = events
            .iter()
            .filter(|(_, e)| e["type"] == "egress.denied")
            .collect();
        assert_eq!(refused.len(), 1, "{events:?}");
        assert_eq!(refused[0].1["body"]["reason"], "encoded_response");
        assert_eq!(refused[0].1["body"]["host"], "api.fake.test");
        let text = serde_json::to_string(&events).expect("json");
        assert_no_secret(&text);
        assert!(!text.contains(SEALED_A), "{text}");
    }
    // A host without credentials keeps the client's Accept-Encoding (nothing is redacted there).
    let h = Harness::start("enforce", H1_ONLY).await;
    let authority = format!("plain.fake.test:{}", h.plain.addr.port());
    let mut s = h.plain_client().await;
    let mut req = support::request("GET", "/", &authority, &[("accept-encoding", "gzip")], "");
    *req.uri_mut() = format!("http://{authority}/public").parse().expect("uri");
    assert_eq!(support::send(&mut s, req).await.0, 200);
    assert_eq!(
        h.plain.state.records()[0].header("accept-encoding"),
        Some("gzip")
    );
}

#[tokio::test]
async fn every_relayed_request_and_tunnel_leaves_an_audit_record() {
    let h = Harness::start("enforce", &[b"http/1.1"]).await;
    // Intercepted: a sealed token swapped, a body sent, a sized answer, a query never recorded.
    let mut c = h.intercepted("api.fake.test", "api.fake.test").await;
    let host = h.target("api.fake.test");
    let r = support::send(
        &mut c,
        support::request(
            "POST",
            "/public?size=300&note=QUERY-MARKER",
            &host,
            &[("x-api-key", SEALED_A)],
            "hello",
        ),
    )
    .await;
    assert_eq!((r.0, r.2.len()), (200, 300));
    // Plain HTTP, forwarded.
    let authority = format!("plain.fake.test:{}", h.plain.addr.port());
    let mut s = h.plain_client().await;
    let mut req = support::request("GET", "/", &authority, &[], "");
    *req.uri_mut() = format!("http://{authority}/public?q=QUERY-MARKER")
        .parse()
        .expect("uri");
    assert_eq!(support::send(&mut s, req).await.0, 200);
    // A tunnel, closed by the client after one exchange.
    let t = support::connect(h.running.listen, &h.target("tunnel.fake.test"), &[]).await;
    assert_eq!(t.status, 200);
    let mut tunnel = support::https_client(
        t.stream.expect("s"),
        "tunnel.fake.test",
        std::slice::from_ref(&h.pki.root_der),
    )
    .await
    .expect("end-to-end TLS");
    let r = support::send(
        &mut tunnel,
        support::request("GET", "/public", "tunnel.fake.test", &[], ""),
    )
    .await;
    assert_eq!(r.0, 200);
    drop(tunnel);

    // Three first uses and three records.
    let events = h.wait_for_events(6).await;
    let records: Vec<&serde_json::Value> = events
        .iter()
        .filter(|(_, e)| e["type"] == "egress.request")
        .map(|(_, e)| &e["body"])
        .collect();
    assert_eq!(records.len(), 3, "{events:?}");
    let of = |host: &str| {
        *records
            .iter()
            .find(|r| r["host"] == host)
            .unwrap_or_else(|| panic!("no record for {host}: {records:?}"))
    };
    let intercepted = of("api.fake.test");
    assert_eq!(intercepted["method"], "POST");
    assert_eq!(intercepted["path"], "/public");
    assert_eq!(intercepted["status"], 200);
    assert_eq!(intercepted["bytes_sent"], 5);
    assert_eq!(intercepted["bytes_received"], 300);
    assert_eq!(intercepted["swapped"], true);
    assert_eq!(intercepted["unrecorded"], 0);
    let forwarded = of("plain.fake.test");
    assert_eq!(
        (
            &forwarded["method"],
            &forwarded["path"],
            &forwarded["status"]
        ),
        (&"GET".into(), &"/public".into(), &200.into())
    );
    assert_eq!(forwarded["bytes_received"], "public\n".len());
    assert_eq!(forwarded["swapped"], false);
    let tunnelled = of("tunnel.fake.test");
    assert_eq!(tunnelled["method"], "CONNECT");
    assert!(tunnelled.get("path").is_none() && tunnelled.get("status").is_none());
    assert!(
        tunnelled["bytes_sent"].as_u64() > Some(0)
            && tunnelled["bytes_received"].as_u64() > Some(0),
        "{tunnelled}"
    );
    let text = serde_json::to_string(&events).expect("json");
    assert!(
        !text.contains("QUERY-MARKER"),
        "a query reached the audit: {text}"
    );
    assert!(!text.contains(SEALED_A), "a sealed token reached the audit");
    assert_no_secret(&text);
}
