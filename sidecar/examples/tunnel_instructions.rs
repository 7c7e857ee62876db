//! The proxy's operation for the instruction-count gate (`scripts/instructions`, run under
//! `valgrind --tool=callgrind --toggle-collect='*sealpod_sidecar::*'`, so that only the proxy's
//! own code counts): one HTTP/1.1 request through a kept CONNECT tunnel, TLS end to end between
//! the client and the fake upstream of the proxy's tests, which the proxy relays without reading.
//! The real proxy (`running::start`) runs in this process, on one thread. Not a test: every run
//! opens the same tunnel and sends `--count` requests through it, so that the difference of two
//! runs' counts divided by the difference of their `--count`s is one tunnelled request.
//!
//! ```text
//! cargo build --workspace --example tunnel_instructions
//! target/debug/examples/tunnel_instructions --count 100
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use sealpod_sidecar::resolve::SystemNet;
use sealpod_sidecar::running;
use support::upstream::{self, Pki};

const HOST: &str = "tunnel.fake.test";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: u64 = args
        .iter()
        .position(|a| a == "--count")
        .and_then(|i| args.get(i + 1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let pki = Pki::new(&[HOST]);
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let upstream = upstream::start(&pki, "sk-not-used", &[b"http/1.1"], any).await;
        let dir = tempfile::tempdir().expect("dir");
        let yaml = format!(
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nca_cert_out: {}/ca.pem\n\
             mode: enforce\nallow: [\"{HOST}:{port}\"]\nallow_cidrs: [127.0.0.1/32]\n\
             resolve:\n  {HOST}: [127.0.0.1]\n",
            dir.path().display(),
            port = upstream.addr.port(),
        );
        let config = sealpod_sidecar::config::parse(&yaml).expect("config");
        let net = Arc::new(SystemNet::new(config.resolve.clone()));
        let proxy = running::start(&config, net).await.expect("proxy");
        let target = format!("{HOST}:{}", upstream.addr.port());
        let tunnel = support::connect(proxy.listen, &target, &[]).await;
        assert_eq!(tunnel.status, 200, "{}", tunnel.head);
        let stream = tunnel.stream.expect("tunnel");
        let mut client = support::https_client(stream, HOST, std::slice::from_ref(&pki.root_der))
            .await
            .expect("TLS through the tunnel");
        for _ in 0..count {
            let request = support::request("GET", "/v1/models", HOST, &[], "");
            // The upstream refuses a request without its key: a tunnel swaps nothing.
            let (status, _, _) = support::send(&mut client, request).await;
            assert_eq!(status, 401);
        }
    });
}
