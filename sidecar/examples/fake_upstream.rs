//! The fake model API of the tests as a process, for the real-client suite and the benchmark:
//! TLS on loopback with its own root, 401 unless the real key arrives, SSE endpoints.
//!
//! `cargo run -p sealpod-sidecar --example fake_upstream -- --names api.fake.test --key-file K
//!  --root-out ROOT.pem --port-out PORT [--listen 127.0.0.1:0] [--http1-only]`

#[path = "../tests/support/upstream.rs"]
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Fake model API for tests and benchmarks.
#[derive(Debug, Parser)]
struct Args {
    /// Names in the upstream certificate (comma-separated).
    #[arg(long, value_delimiter = ',')]
    names: Vec<String>,
    /// File holding the key the upstream accepts.
    #[arg(long)]
    key_file: PathBuf,
    /// Where to write the upstream root certificate (PEM).
    #[arg(long)]
    root_out: PathBuf,
    /// Where to write the bound port.
    #[arg(long)]
    port_out: PathBuf,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Offer only HTTP/1.1 (no h2) in ALPN.
    #[arg(long)]
    http1_only: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let names: Vec<&str> = args.names.iter().map(String::as_str).collect();
    let pki = upstream::Pki::new(&names);
    std::fs::write(&args.root_out, &pki.root_pem).expect("write root");
    let key = std::fs::read_to_string(&args.key_file).expect("read key");
    let alpn: &[&[u8]] = if args.http1_only {
        &[b"http/1.1"]
    } else {
        &[b"h2", b"http/1.1"]
    };
    let up = upstream::start(&pki, key.trim(), alpn, args.listen).await;
    std::fs::write(&args.port_out, up.addr.port().to_string()).expect("write port");
    // Bounded: tests and benchmarks kill it by PID; it also stops by itself after an hour.
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
}
