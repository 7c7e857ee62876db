//! Plain tunnels for allowlisted hosts without credentials: bytes copied both ways, untouched and
//! never decrypted.
//!
//! Copy buffers are bounded (two small fixed buffers per tunnel); this module must never parse or
//! log the bytes it carries.

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Copy buffer per direction. Small on purpose: idle tunnels are the common case in a sandbox.
const BUF: usize = 4 * 1024;

/// Copies between the client's upgraded connection and the upstream until both sides close;
/// returns the bytes sent and received (zero both ways when the tunnel ends with an error, which
/// loses the counts).
pub(crate) async fn run(client: Upgraded, mut upstream: TcpStream) -> (u64, u64) {
    let mut client = TokioIo::new(client);
    match tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, BUF, BUF).await {
        Ok(counts) => counts,
        Err(error) => {
            tracing::debug!(%error, "tunnel closed with an error");
            (0, 0)
        }
    }
}
