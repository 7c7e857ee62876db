//! A loopback TCP load balancer: what a Service is to a Deployment's replicas. `up` puts one in
//! front of the API-server replicas' `/v3` listeners and one in front of their runtime API
//! listeners, so apps and sandboxes keep one address while replicas die and come back. Each
//! connection goes to the next replica in turn; a replica that refuses it is skipped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a replica may take to accept before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A running balancer; dropping it stops accepting (open connections run on).
#[derive(Debug)]
pub struct Balancer {
    task: JoinHandle<()>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Balancer {
    /// Listens on `listen` and spreads its connections over `backends`.
    pub async fn start(listen: SocketAddr, backends: Vec<SocketAddr>) -> std::io::Result<Balancer> {
        let listener = TcpListener::bind(listen).await?;
        let backends: Arc<[SocketAddr]> = backends.into();
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Out of file descriptors, say: let some close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let first = next.fetch_add(1, Ordering::Relaxed);
                let backends = Arc::clone(&backends);
                tokio::spawn(async move {
                    if let Some(mut upstream) = connect(&backends, first).await {
                        let mut client = client;
                        let _ = client.set_nodelay(true);
                        let _ = upstream.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Ok(Balancer { task })
    }
}

/// A connection to the first replica, from the `first`-th in turn, that accepts one.
async fn connect(backends: &[SocketAddr], first: usize) -> Option<TcpStream> {
    for k in 0..backends.len() {
        let addr = backends[(first + k) % backends.len()];
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        {
            return Some(stream);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A replica that answers each connection with its name.
    async fn replica(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(name.as_bytes()).await;
            }
        });
        (addr, task)
    }

    async fn ask(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn connections_take_turns_and_skip_a_dead_replica() {
        let (a, a_task) = replica("a").await;
        let (b, _b_task) = replica("b").await;
        let front = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let listen = front.local_addr().expect("addr");
        drop(front);
        let _balancer = Balancer::start(listen, vec![a, b]).await.expect("start");
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(ask(listen).await);
        }
        seen.sort();
        assert_eq!(seen, ["a", "a", "b", "b"]);

        a_task.abort();
        let _ = a_task.await; // its listener is closed: connections to it are refused
        for _ in 0..3 {
            assert_eq!(ask(listen).await, "b");
        }
    }
}
