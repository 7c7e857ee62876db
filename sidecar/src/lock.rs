//! The egress lock: nftables rules, in the current network namespace, that let every UID except
//! the proxy's reach only the proxy's port on loopback (TCP, UDP, IPv4, IPv6 and DNS alike are
//! rejected otherwise), and the verification that proves it from inside the namespace.
//!
//! Programming uses the `nft` binary (atomic `nft -f -`). Verification reads the table back and
//! runs probes under a sandbox UID: the proxy port must answer, direct TCP and UDP must fail.
//! This module must never widen the rules beyond the proxy port and the proxy's UID.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The nftables table the lock owns.
pub(crate) const TABLE: &str = "sealpod_lock";

/// Why locking or verifying failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    /// `nft` could not be run.
    #[error("cannot run nft: {0}")]
    Spawn(#[source] std::io::Error),
    /// `nft` refused.
    #[error("nft failed: {0}")]
    Nft(String),
    /// The probe could not be started.
    #[error("cannot run the probe: {0}")]
    Probe(#[source] std::io::Error),
    /// The lock is not in place or not effective.
    #[error("egress is not locked: {0}")]
    NotLocked(String),
}

/// The ruleset for `proxy_uid` and `proxy_port`. Established and related traffic is let through
/// so that replies of connections *accepted* by sandbox processes still flow; new outgoing
/// connections are what the lock refuses.
pub(crate) fn ruleset(proxy_uid: u32, proxy_port: u16) -> String {
    format!(
        "table inet {TABLE} {{
\tchain output {{
\t\ttype filter hook output priority filter; policy accept;
\t\tmeta skuid {proxy_uid} accept
\t\tct state established,related accept
\t\toifname \"lo\" ip daddr 127.0.0.1 tcp dport {proxy_port} accept
\t\toifname \"lo\" ip6 daddr ::1 tcp dport {proxy_port} accept
\t\tmeta l4proto tcp reject with tcp reset
\t\treject with icmpx admin-prohibited
\t}}
}}
"
    )
}

fn nft(args: &[&str], stdin: Option<&str>) -> Result<String, LockError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(LockError::Spawn)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(LockError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(LockError::Spawn)?;
    if !out.status.success() {
        return Err(LockError::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Programs the lock atomically, replacing an earlier one.
pub(crate) fn apply(proxy_uid: u32, proxy_port: u16) -> Result<(), LockError> {
    // Declaring then deleting the table first makes the whole file idempotent and atomic.
    let script = format!(
        "table inet {TABLE}\ndelete table inet {TABLE}\n{}",
        ruleset(proxy_uid, proxy_port)
    );
    nft(&["-f", "-"], Some(&script)).map(|_| ())
}

/// What `lock --verify` probes.
#[derive(Debug, Clone)]
pub(crate) struct VerifyPlan {
    /// The proxy's UID.
    pub proxy_uid: u32,
    /// The proxy's port.
    pub proxy_port: u16,
    /// The UID (and GID) the probes run as.
    pub sandbox_uid: u32,
    /// Extra TCP destinations that must be unreachable.
    pub tcp: Vec<SocketAddr>,
    /// Extra UDP destinations that must not answer.
    pub udp: Vec<SocketAddr>,
}

/// Proves the lock: the table matches, and a probe under the sandbox UID reaches the proxy port
/// but not a TCP or UDP listener on loopback (set up here) nor any of the extra destinations.
pub(crate) fn verify(plan: &VerifyPlan) -> Result<(), LockError> {
    let listed = nft(&["list", "table", "inet", TABLE], None)
        .map_err(|e| LockError::NotLocked(format!("table {TABLE} missing ({e})")))?;
    if squash(&listed) != squash(&ruleset(plan.proxy_uid, plan.proxy_port)) {
        return Err(LockError::NotLocked(format!(
            "table {TABLE} differs from the expected rules"
        )));
    }
    // If the proxy is not up yet (the lock runs first), stand in for it on its port.
    let _stand_in = TcpListener::bind(("127.0.0.1", plan.proxy_port)).ok();
    // Decoys on loopback, IPv4 and (when the namespace has it) IPv6: the probe must reach none.
    let mut tcp_decoys = vec![TcpListener::bind("127.0.0.1:0").map_err(LockError::Probe)?];
    let mut udp_decoys = vec![UdpSocket::bind("127.0.0.1:0").map_err(LockError::Probe)?];
    if let (Ok(t), Ok(u)) = (TcpListener::bind("[::1]:0"), UdpSocket::bind("[::1]:0")) {
        tcp_decoys.push(t);
        udp_decoys.push(u);
    }
    let mut tcp = Vec::new();
    for d in &tcp_decoys {
        tcp.push(d.local_addr().map_err(LockError::Probe)?);
    }
    let mut udp = Vec::new();
    for d in &udp_decoys {
        udp.push(d.local_addr().map_err(LockError::Probe)?);
    }
    tcp.extend(&plan.tcp);
    udp.extend(&plan.udp);
    // Each UDP decoy echoes the first datagram it gets, until the probe has finished.
    let probed = Arc::new(AtomicBool::new(false));
    let echoes: Vec<_> = udp_decoys
        .into_iter()
        .map(|decoy| {
            let probed = Arc::clone(&probed);
            std::thread::spawn(move || echo_until(&decoy, &probed))
        })
        .collect();
    let exe = std::env::current_exe().map_err(LockError::Probe)?;
    let mut cmd = Command::new(exe);
    cmd.arg("lock-probe")
        .arg("--open")
        .arg(format!("127.0.0.1:{}", plan.proxy_port));
    for a in &tcp {
        cmd.arg("--closed-tcp").arg(a.to_string());
    }
    for a in &udp {
        cmd.arg("--closed-udp").arg(a.to_string());
    }
    let out = cmd
        .uid(plan.sandbox_uid)
        .gid(plan.sandbox_uid)
        .stdin(Stdio::null())
        .output()
        .map_err(LockError::Probe)?;
    probed.store(true, Ordering::Relaxed);
    for echo in echoes {
        let _ = echo.join();
    }
    drop(tcp_decoys);
    if out.status.success() {
        Ok(())
    } else {
        Err(LockError::NotLocked(
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        ))
    }
}

/// How often a UDP decoy looks whether the probe has finished.
const DECOY_POLL: Duration = Duration::from_millis(20);

/// Echoes the first datagram `decoy` receives, or returns once `probed` is set: the verifier
/// waits for the probe, never for a decoy's timeout.
fn echo_until(decoy: &UdpSocket, probed: &AtomicBool) {
    if decoy.set_read_timeout(Some(DECOY_POLL)).is_err() {
        return;
    }
    let mut buf = [0u8; 64];
    while !probed.load(Ordering::Relaxed) {
        if let Ok((n, from)) = decoy.recv_from(&mut buf) {
            let _ = decoy.send_to(&buf[..n], from);
            return;
        }
    }
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The probe itself (run under the sandbox UID): every `open` address must accept a TCP
/// connection, every `closed_tcp` must refuse, every `closed_udp` must not answer. Returns the
/// failures, one line each.
pub(crate) fn probe(
    open: &[SocketAddr],
    closed_tcp: &[SocketAddr],
    closed_udp: &[SocketAddr],
) -> Vec<String> {
    let timeout = Duration::from_secs(2);
    let mut failures = Vec::new();
    for a in open {
        if let Err(e) = TcpStream::connect_timeout(a, timeout) {
            failures.push(format!("proxy port {a} unreachable: {e}"));
        }
    }
    for a in closed_tcp {
        if TcpStream::connect_timeout(a, timeout).is_ok() {
            failures.push(format!("direct TCP to {a} connected"));
        }
    }
    for a in closed_udp {
        if udp_answers(*a, timeout) {
            failures.push(format!("direct UDP to {a} answered"));
        }
    }
    failures
}

fn udp_answers(addr: SocketAddr, timeout: Duration) -> bool {
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let Ok(sock) = UdpSocket::bind(bind) else {
        return false;
    };
    if sock.connect(addr).is_err() || sock.set_read_timeout(Some(timeout)).is_err() {
        return false;
    }
    if sock.send(b"sealpod-lock-probe").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(sock.recv(&mut buf), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_locks_everything_but_the_proxy() {
        let r = ruleset(1337, 3128);
        assert!(r.contains("meta skuid 1337 accept"));
        assert!(r.contains("ip daddr 127.0.0.1 tcp dport 3128 accept"));
        assert!(r.contains("ip6 daddr ::1 tcp dport 3128 accept"));
        assert!(
            r.trim_end()
                .ends_with("reject with icmpx admin-prohibited\n\t}\n}")
        );
        assert_eq!(r.matches("accept").count(), 5, "no other exemption: {r}");
    }
}
