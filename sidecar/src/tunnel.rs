//! Plain tunnels for allowlisted hosts without credentials: bytes copied both ways, untouched and
//! never decrypted.
//!
//! An idle tunnel holds no buffer: each direction waits for its socket to be readable, reads into
//! its thread's buffer, and writes at once what the other socket takes; only bytes the other side
//! cannot take yet are kept, on the heap, until they are written. This module must never
//! parse or log the bytes it carries.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

/// Largest read per step.
const CHUNK: usize = 32 * 1024;

/// Copies between the client's upgraded connection and the upstream until both sides close;
/// returns the bytes delivered to the upstream and to the client (counted as they are written, so
/// a tunnel that ends with an error keeps what it carried).
pub(crate) async fn run(client: Upgraded, upstream: TcpStream) -> (u64, u64) {
    // The listener serves every connection as `TokioIo<TcpStream>`; taking the socket back
    // bypasses hyper's boxed I/O for the life of the tunnel.
    let Ok(parts) = client.downcast::<TokioIo<TcpStream>>() else {
        tracing::error!("a tunnel's client connection is not a TCP stream; closed");
        return (0, 0);
    };
    let mut counts = (0, 0);
    if let Err(error) = relay(parts.io.into_inner(), parts.read_buf, upstream, &mut counts).await {
        tracing::debug!(%error, "tunnel closed with an error");
    }
    counts
}

/// Sends `early` (bytes the client sent right after its `CONNECT`, in what may be hyper's whole
/// read buffer: dropped once sent) and then relays both ways. Each direction that ends shuts
/// down the other side's writing half, as the peer would see a direct connection close; the
/// tunnel ends when both have ended or either fails.
async fn relay(
    mut client: TcpStream,
    early: Bytes,
    mut upstream: TcpStream,
    (sent, received): &mut (u64, u64),
) -> io::Result<()> {
    if !early.is_empty() {
        upstream.write_all(&early).await?;
        *sent += early.len() as u64;
    }
    drop(early);
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    tokio::try_join!(
        pump(client_read, upstream_write, sent),
        pump(upstream_read, client_write, received),
    )?;
    Ok(())
}

/// Copies `from` into `to` until `from` ends, then shuts down `to` for writing.
async fn pump(mut from: ReadHalf<'_>, mut to: WriteHalf<'_>, count: &mut u64) -> io::Result<()> {
    loop {
        match poll_fn(|cx| step(cx, &mut from, to.as_ref())).await? {
            Step::End => {
                // The peer may be gone already (`ENOTCONN`); there is nothing left to tell it.
                let _ = to.shutdown().await;
                return Ok(());
            }
            Step::Written(n) => *count += n as u64,
            Step::Partly { written, rest } => {
                *count += written as u64;
                to.write_all(&rest).await?;
                *count += rest.len() as u64;
            }
        }
    }
}

/// What one read from a tunnel's side led to.
enum Step {
    /// The side ended (end of stream).
    End,
    /// Everything read was written to the other side.
    Written(usize),
    /// The other side took `written` bytes; `rest` waits until it is writable.
    Partly { written: usize, rest: Vec<u8> },
}

thread_local! {
    /// The read buffer of every tunnel step on this thread. A step reads into it and writes out of
    /// it before it returns, so one buffer per runtime thread serves every tunnel.
    static STEP_BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; CHUNK].into_boxed_slice());
}

/// Reads what `from` has (pending until it is readable) and writes it to `to` without waiting.
/// It reads into its thread's buffer, so a direction waiting to read holds none.
fn step(cx: &mut Context<'_>, from: &mut ReadHalf<'_>, to: &TcpStream) -> Poll<io::Result<Step>> {
    STEP_BUFFER.with_borrow_mut(|buf| {
        let mut read = ReadBuf::new(buf);
        ready!(Pin::new(from).poll_read(cx, &mut read))?;
        let data = read.filled();
        if data.is_empty() {
            return Poll::Ready(Ok(Step::End));
        }
        let mut written = 0;
        while written < data.len() {
            match to.try_write(&data[written..]) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        Poll::Ready(Ok(if written == data.len() {
            Step::Written(written)
        } else {
            Step::Partly {
                written,
                rest: data[written..].to_vec(),
            }
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let near = TcpStream::connect(listener.local_addr().expect("addr"));
        let (near, far) = tokio::join!(near, listener.accept());
        (near.expect("connect"), far.expect("accept").0)
    }

    /// `len` bytes that differ from any shifted copy of themselves, so a lost, repeated or
    /// reordered chunk changes the comparison.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
            .collect()
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_in_order_with_half_closes_and_early_bytes() {
        let (mut client, client_side) = pair().await;
        let (upstream_side, mut upstream) = pair().await;
        let mut counts = (0, 0);
        let relay = relay(
            client_side,
            Bytes::from_static(b"early"),
            upstream_side,
            &mut counts,
        );
        let request = pattern(1 << 20, 1);
        let reply = pattern(3 << 20, 2);
        let ends = async {
            // The client sends everything and closes its writing half; the upstream answers only
            // after it saw that end, so the half-close must cross the tunnel.
            let client_end = async {
                client.write_all(&request).await.expect("send");
                client.shutdown().await.expect("shutdown");
                let mut got = Vec::new();
                client.read_to_end(&mut got).await.expect("read reply");
                got
            };
            let upstream_end = async {
                let mut got = Vec::new();
                upstream.read_to_end(&mut got).await.expect("read request");
                upstream.write_all(&reply).await.expect("reply");
                upstream.shutdown().await.expect("shutdown");
                got
            };
            tokio::join!(client_end, upstream_end)
        };
        let (result, (at_client, at_upstream)) = tokio::join!(relay, ends);
        result.expect("relay");
        assert_eq!(at_upstream[..5], *b"early");
        assert!(at_upstream[5..] == request[..], "request bytes changed");
        assert!(at_client == reply, "reply bytes changed");
        assert_eq!(counts, (5 + (1 << 20), 3 << 20));
    }

    #[tokio::test]
    async fn a_slow_reader_gets_every_byte() {
        let (mut client, client_side) = pair().await;
        let (upstream_side, mut upstream) = pair().await;
        let mut counts = (0, 0);
        let relay = relay(client_side, Bytes::new(), upstream_side, &mut counts);
        // More than the socket buffers hold: the relay must keep what the client cannot take yet.
        let reply = pattern(16 << 20, 3);
        let ends = async {
            let upstream_end = async {
                upstream.write_all(&reply).await.expect("reply");
                upstream.shutdown().await.expect("shutdown");
            };
            let client_end = async {
                // The client reads nothing until the upstream has filled every buffer on the way.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                let mut got = Vec::new();
                client.read_to_end(&mut got).await.expect("read");
                client.shutdown().await.expect("shutdown");
                got
            };
            tokio::join!(upstream_end, client_end).1
        };
        let (result, at_client) = tokio::join!(relay, ends);
        result.expect("relay");
        assert!(at_client == reply, "reply bytes changed");
        assert_eq!(counts, (0, 16 << 20));
    }
}
