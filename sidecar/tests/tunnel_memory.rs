//! What an idle tunnel keeps on the proxy's heap, counted by dhat (bytes, not RSS: exact and
//! repeatable). Alone in its test binary because the count is of the whole process.

mod support;

use std::net::SocketAddr;

use sealpod_sidecar::resolve::SystemNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Tunnels held open at once; the figure is their average.
const TUNNELS: usize = 64;

/// One exchange per tunnel, big enough that a copy buffer would be filled.
const EXCHANGE: usize = 16 * 1024;

#[tokio::test(flavor = "current_thread")]
async fn an_idle_tunnel_keeps_no_copy_buffer() {
    let _profiler = dhat::Profiler::builder().testing().build();
    // An upstream that answers each connection's first EXCHANGE bytes with as many and keeps it.
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = upstream.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("dir");
    let yaml = format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nca_cert_out: {}/ca.pem\n\
         allow: [\"tunnel.test:{port}\"]\nallow_cidrs: [127.0.0.1/32]\n\
         resolve:\n  tunnel.test: [127.0.0.1]\n",
        dir.path().display()
    );
    let config = sealpod_sidecar::config::parse(&yaml).expect("config");
    let net = std::sync::Arc::new(SystemNet::new(config.resolve.clone()));
    let running = sealpod_sidecar::running::start(&config, net)
        .await
        .expect("start");

    // Warm up once (first-use allocations of the runtime and the proxy are not per tunnel).
    let warm = open(running.listen, &upstream, port).await;
    drop(warm);
    let mut clients = Vec::with_capacity(TUNNELS);
    let mut servers = Vec::with_capacity(TUNNELS);
    let before = dhat::HeapStats::get().curr_bytes;
    for _ in 0..TUNNELS {
        let (client, server) = open(running.listen, &upstream, port).await;
        clients.push(client);
        servers.push(server);
    }
    // Let every tunnel finish its last step and wait for its next read.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    let per_tunnel = (dhat::HeapStats::get().curr_bytes - before) / TUNNELS;
    // Besides the proxy's share, this holds the test's own two sockets per tunnel. Two copy
    // buffers of 4 KiB each (tokio's copy_bidirectional, the tunnel before this test) would be
    // 8 KiB alone.
    assert!(
        per_tunnel < 4096,
        "an idle tunnel keeps {per_tunnel} bytes on the heap"
    );
    drop(running);
}

/// Opens a tunnel through the proxy at `proxy`, accepts its upstream connection, and carries one
/// exchange both ways; returns the client's and the upstream's ends, now idle.
async fn open(proxy: SocketAddr, upstream: &TcpListener, port: u16) -> (TcpStream, TcpStream) {
    let target = format!("tunnel.test:{port}");
    let (tunnel, accepted) = tokio::join!(support::connect(proxy, &target, &[]), upstream.accept());
    assert_eq!(tunnel.status, 200, "{}", tunnel.head);
    let mut client = tunnel.stream.expect("tunnel");
    let (mut server, _) = accepted.expect("accept");
    let sent = vec![7u8; EXCHANGE];
    let mut got = vec![0u8; EXCHANGE];
    client.write_all(&sent).await.expect("send");
    server.read_exact(&mut got).await.expect("receive");
    server.write_all(&got).await.expect("answer");
    client.read_exact(&mut got).await.expect("receive answer");
    assert_eq!(got, sent);
    (client, server)
}
