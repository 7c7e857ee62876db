//! Load generator for the sidecar benchmark (`sidecar/bench/run.sh`): HTTPS requests directly or
//! through an HTTP `CONNECT` proxy, closed-loop with N connections, keep-alive or a new
//! connection per request; an SSE delay/coalescing probe; and an idle-connection holder for
//! memory measurements. Prints one JSON line per run. Loopback only; every mode is bounded.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, clap::Args, Clone)]
struct Target {
    /// https:// URL to request.
    #[arg(long)]
    url: String,
    /// HTTP proxy (`ip:port`) to CONNECT through; direct when absent.
    #[arg(long)]
    proxy: Option<SocketAddr>,
    /// Address to dial for the URL's host when direct (no DNS).
    #[arg(long)]
    connect_to: Option<SocketAddr>,
    /// Trusted roots (PEM files).
    #[arg(long)]
    cacert: Vec<PathBuf>,
    /// Extra request header `name: value` (repeatable).
    #[arg(long)]
    header: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Closed-loop load.
    Rps {
        #[command(flatten)]
        target: Target,
        /// Concurrent connections.
        #[arg(short, long, default_value_t = 16)]
        concurrency: usize,
        /// Duration in seconds (bounded run).
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// A new connection (CONNECT + TLS) for every request.
        #[arg(long)]
        new_conn: bool,
    },
    /// One SSE request; reports delay per event and coalesced events.
    Sse {
        #[command(flatten)]
        target: Target,
    },
    /// Opens `count` connections, one request each, prints `ready`, holds them `hold` seconds.
    Idle {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[arg(long, default_value_t = 5.0)]
        hold: f64,
    },
}

struct Conn {
    sender: SendRequest<Empty<Bytes>>,
}

struct Ctx {
    target: Target,
    host: String,
    port: u16,
    path: String,
    tls: tokio_rustls::TlsConnector,
    headers: Vec<(String, String)>,
}

impl Ctx {
    fn new(target: Target) -> Arc<Self> {
        let uri: http::Uri = target.url.parse().expect("url");
        let host = uri
            .host()
            .expect("host")
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let path = uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.to_string());
        let mut roots = rustls::RootCertStore::empty();
        for f in &target.cacert {
            for c in CertificateDer::pem_file_iter(f).expect("pem") {
                roots.add(c.expect("cert")).expect("root");
            }
        }
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let headers = target
            .header
            .iter()
            .filter_map(|h| h.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Arc::new(Self {
            target,
            host,
            port,
            path,
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
            headers,
        })
    }

    async fn open(&self) -> Result<Conn, String> {
        let authority = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let tcp = match self.target.proxy {
            Some(proxy) => {
                let mut tcp = TcpStream::connect(proxy).await.map_err(|e| e.to_string())?;
                tcp.set_nodelay(true).ok();
                tcp.write_all(
                    format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes(),
                )
                .await
                .map_err(|e| e.to_string())?;
                let mut head = Vec::with_capacity(128);
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tcp.read(&mut b).await.map_err(|e| e.to_string())? == 0 {
                        return Err("proxy closed".into());
                    }
                    head.push(b[0]);
                }
                if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
                    return Err(String::from_utf8_lossy(&head).into_owned());
                }
                tcp
            }
            None => {
                let addr = match self.target.connect_to {
                    Some(a) => a,
                    None => tokio::net::lookup_host((self.host.as_str(), self.port))
                        .await
                        .map_err(|e| e.to_string())?
                        .next()
                        .ok_or("no address")?,
                };
                TcpStream::connect(addr).await.map_err(|e| e.to_string())?
            }
        };
        tcp.set_nodelay(true).ok();
        let name = ServerName::try_from(self.host.clone()).map_err(|e| e.to_string())?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Conn { sender })
    }

    fn request(&self) -> http::Request<Empty<Bytes>> {
        let mut b = http::Request::get(self.path.as_str()).header(
            "host",
            if self.port == 443 {
                self.host.clone()
            } else {
                format!("{}:{}", self.host, self.port)
            },
        );
        for (n, v) in &self.headers {
            b = b.header(n.as_str(), v.as_str());
        }
        b.body(Empty::new()).expect("request")
    }

    async fn once(&self, conn: &mut Conn) -> Result<(), String> {
        conn.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = conn
            .sender
            .send_request(self.request())
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let mut body = resp.into_body();
        while let Some(f) = body.frame().await {
            f.map_err(|e| e.to_string())?;
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    match Cli::parse().mode {
        Mode::Rps {
            target,
            concurrency,
            secs,
            new_conn,
        } => {
            let ctx = Ctx::new(target);
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let ctx = Arc::clone(&ctx);
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut errors = 0u64;
                    let mut last_error = String::new();
                    let mut conn: Option<Conn> = None;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        if conn.is_none() || new_conn {
                            match ctx.open().await {
                                Ok(c) => conn = Some(c),
                                Err(e) => {
                                    errors += 1;
                                    last_error = e;
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                    continue;
                                }
                            }
                        }
                        let Some(c) = conn.as_mut() else { continue };
                        match ctx.once(c).await {
                            Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                            Err(e) => {
                                errors += 1;
                                last_error = e;
                                conn = None;
                            }
                        }
                    }
                    (lat, errors, last_error)
                }));
            }
            let mut all = Vec::new();
            let mut errors = 0;
            let mut last_error = String::new();
            for t in tasks {
                let (l, e, le) = t.await.expect("task");
                all.extend(l);
                errors += e;
                if !le.is_empty() {
                    last_error = le;
                }
            }
            let elapsed = start.elapsed().as_secs_f64();
            all.sort_unstable();
            println!(
                "{}",
                serde_json::json!({"requests": all.len(), "errors": errors, "last_error": last_error,
                    "rps": all.len() as f64 / elapsed, "p50_us": pct(&all, 0.5), "p99_us": pct(&all, 0.99)})
            );
        }
        Mode::Sse { target } => {
            let ctx = Ctx::new(target);
            let mut conn = ctx.open().await.expect("open");
            conn.sender.ready().await.expect("ready");
            let resp = conn
                .sender
                .send_request(ctx.request())
                .await
                .expect("response");
            assert!(resp.status().is_success(), "status {}", resp.status());
            let mut body = resp.into_body();
            let (mut delays, mut events, mut coalesced, mut frames) =
                (Vec::new(), 0u64, 0u64, 0u64);
            while let Some(f) = body.frame().await {
                let Ok(data) = f.expect("frame").into_data() else {
                    continue;
                };
                let got = now_ns();
                frames += 1;
                let text = String::from_utf8_lossy(&data);
                let n = text.matches("data: ").count() as u64;
                events += n;
                coalesced += n.saturating_sub(1);
                for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
                    if let Some(sent) = line.split(' ').nth(1).and_then(|s| s.parse::<u128>().ok())
                    {
                        delays.push(((got.saturating_sub(sent)) / 1000) as u64);
                    }
                }
            }
            delays.sort_unstable();
            println!(
                "{}",
                serde_json::json!({"events": events, "frames": frames, "coalesced": coalesced,
                    "delay_p50_us": pct(&delays, 0.5), "delay_p99_us": pct(&delays, 0.99),
                    "delay_max_us": delays.last().copied().unwrap_or(0)})
            );
        }
        Mode::Idle {
            target,
            count,
            hold,
        } => {
            let ctx = Ctx::new(target);
            let mut conns = Vec::with_capacity(count);
            for _ in 0..count {
                let mut c = ctx.open().await.expect("open");
                ctx.once(&mut c).await.expect("request");
                conns.push(c);
            }
            println!("ready {}", conns.len());
            tokio::time::sleep(Duration::from_secs_f64(hold)).await;
        }
    }
}
