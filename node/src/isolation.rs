//! Network isolation of pods (root only, rootless included): each pod gets its own network
//! namespace with nothing but loopback, as a pod has its own network on a node. The namespace
//! belongs to the pod's user namespace (see [`super::identity`]) and is held by its holder
//! process; the runner enters it by that process (`nsenter --target PID --net`), never by a name
//! under `/run/netns` (which a rootless runner cannot write), to configure it and start bridges in
//! it. The only ways out are *bridges*: for
//! each [`Bridge`] the runner is configured with (for example the API server's runtime port or a
//! model API), a listener on a loopback address inside the pod whose connections are carried
//! over a Unix socket to the runner, which connects them to the bridge's target from the host.
//! Inside the namespace the pod's lock container decides which UIDs may use them (only the
//! proxy's), so a sandbox process has no direct path to any host service.
//!
//! Besides the bridges every pod gets, a pod may ask for its own in its
//! [`BRIDGES_ANNOTATION`] (the operator's `--bridge-egress` writes it: one per allowlisted
//! destination of the session, used by its proxy only).
//!
//! The in-namespace end of a bridge is `socat` (Debian package `socat`); the host end is a task of
//! the runner. This module must never touch a namespace it did not create.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::net::{TcpStream, UnixListener};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::RunnerError;

/// Pod annotation naming the pod's own bridges: `INSIDE_ADDR:PORT=HOST:PORT`, comma-separated
/// (the operator's `sealpod.dev/egress-bridges`).
pub const BRIDGES_ANNOTATION: &str = "sealpod.dev/egress-bridges";

/// How long a bridge's in-namespace end may take to listen.
const BRIDGE_READY: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a `/proc/net/tcp` table has a socket in state LISTEN (`0A`) on `port`.
fn listens(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1).unwrap_or_default();
        let state = fields.nth(1).unwrap_or_default();
        state == "0A"
            && local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port)
    })
}

/// One way out of every pod's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// The loopback address the bridge listens on inside the pod (`127.x.y.z:port`).
    pub inside: SocketAddrV4,
    /// Where the runner connects each of its connections, from the host (`host:port`, resolved
    /// on the host).
    pub target: String,
}

impl Bridge {
    /// A host loopback port reachable from inside the pod at the same address.
    pub fn loopback(port: u16) -> Bridge {
        Bridge {
            inside: SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port),
            target: format!("127.0.0.1:{port}"),
        }
    }

    /// Parses `INSIDE_ADDR:PORT=TARGET_HOST:PORT`, or a bare `PORT` for [`Bridge::loopback`].
    pub fn parse(raw: &str) -> Result<Bridge, String> {
        if let Ok(port) = raw.parse::<u16>() {
            return Ok(Bridge::loopback(port));
        }
        let (inside, target) = raw
            .split_once('=')
            .ok_or_else(|| format!("bridge `{raw}` is not PORT or ADDR:PORT=HOST:PORT"))?;
        let inside: SocketAddrV4 = inside
            .parse()
            .map_err(|_| format!("bridge `{raw}`: `{inside}` is not an IPv4 address:port"))?;
        if !inside.ip().is_loopback() {
            return Err(format!(
                "bridge `{raw}`: {inside} is not a loopback address"
            ));
        }
        match target.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(Bridge {
                inside,
                target: target.to_owned(),
            }),
            _ => Err(format!(
                "bridge `{raw}`: target `{target}` is not HOST:PORT"
            )),
        }
    }
}

/// The bridges of one pod: every pod's, then those its [`BRIDGES_ANNOTATION`] asks for. An
/// entry that does not parse, or whose inside address another bridge holds, is refused.
pub fn pod_bridges(
    config: &IsolationConfig,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<Vec<Bridge>, RunnerError> {
    let mut bridges = config.bridges.clone();
    let asked = annotations
        .and_then(|a| a.get(BRIDGES_ANNOTATION))
        .map(String::as_str)
        .unwrap_or_default();
    for raw in asked.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let refuse = |why: &str| {
            RunnerError::Spec(format!(
                "annotation {BRIDGES_ANNOTATION}: entry `{raw}` {why}"
            ))
        };
        if !raw.contains('=') {
            return Err(refuse("is not ADDR:PORT=HOST:PORT"));
        }
        let bridge = Bridge::parse(raw).map_err(|e| refuse(&e))?;
        if bridges.iter().any(|b| b.inside == bridge.inside) {
            return Err(refuse("listens where another bridge does"));
        }
        bridges.push(bridge);
    }
    Ok(bridges)
}

/// Where pods may reach out to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsolationConfig {
    /// The bridges every pod gets.
    pub bridges: Vec<Bridge>,
}

/// A pod's namespace and bridges.
#[derive(Debug)]
pub struct PodNetwork {
    /// The process holding the namespace.
    holder: u32,
    /// The directory of the bridges' sockets, once made.
    sockets: Option<PathBuf>,
    inner: Vec<Child>,
    outer: Vec<JoinHandle<()>>,
}

/// A command that runs `program` in the network namespace of process `holder`, as the runner
/// (the pod's user namespace is not joined: the runner's rights there are its owner's).
fn in_network(holder: u32, program: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.args(["--target", &holder.to_string(), "--net", "--", program])
        .stdin(Stdio::null());
    cmd
}

/// Where the bridge sockets of the pod network directory `net` live. A Unix socket path must fit
/// in `sun_path` (108 bytes): pod directories may be deeper, so the sockets then live in a short
/// directory of their own, named by a hash of `net` (runners of several users, rootless or not,
/// share the temporary directory).
fn sockets_dir(net: &Path) -> PathBuf {
    if net.as_os_str().len() + 16 < 100 {
        net.to_path_buf()
    } else {
        use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(net);
        std::env::temp_dir().join(format!("sealpod-bridges-{hash:016x}"))
    }
}

/// Removes the bridge sockets of the pod network directories `nets` (of pods whose processes a
/// killed runner left, all gone now): a pod started again makes its own, and a pod deleted
/// meanwhile would otherwise leave its socket directory in the temporary directory for good.
pub fn remove_leftover_sockets(nets: impl IntoIterator<Item = PathBuf>) {
    for net in nets {
        let _ = std::fs::remove_dir_all(sockets_dir(&net));
    }
}

fn host_end(socket: &Path, target: String) -> Result<JoinHandle<()>, RunnerError> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(RunnerError::io(socket))?;
    Ok(tokio::spawn(async move {
        while let Ok((mut inside, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut host) = TcpStream::connect(target.as_str()).await {
                    let _ = tokio::io::copy_bidirectional(&mut inside, &mut host).await;
                }
            });
        }
    }))
}

impl PodNetwork {
    /// The PIDs of the bridge processes inside the namespace.
    pub fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.inner.iter().filter_map(Child::id)
    }

    /// Brings up the loopback of the network namespace of the process `holder` (the pod's
    /// namespace holder) and starts `bridges` ([`pod_bridges`]) in it.
    pub async fn create(
        bridges: &[Bridge],
        holder: u32,
        dir: &Path,
    ) -> Result<PodNetwork, RunnerError> {
        let mut net = PodNetwork {
            holder,
            sockets: None,
            inner: Vec::new(),
            outer: Vec::new(),
        };
        if let Err(e) = net.wire(bridges, dir).await {
            net.release().await;
            return Err(e);
        }
        Ok(net)
    }

    async fn wire(&mut self, bridges: &[Bridge], dir: &Path) -> Result<(), RunnerError> {
        let out = in_network(self.holder, "ip")
            .args(["link", "set", "lo", "up"])
            .output()
            .await
            .map_err(|e| RunnerError::Spec(format!("cannot run nsenter: {e}")))?;
        if !out.status.success() {
            return Err(RunnerError::Spec(format!(
                "bringing up the pod's loopback: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let dir = sockets_dir(dir);
        std::fs::create_dir_all(&dir).map_err(RunnerError::io(&dir))?;
        self.sockets = Some(dir.clone());
        // The bridge sockets are the runner's: no pod's container may connect to them directly.
        super::volumes::set_mode(&dir, 0o700)?;
        for (i, bridge) in bridges.iter().enumerate() {
            let socket = dir.join(format!("bridge-{i}.sock"));
            self.outer.push(host_end(&socket, bridge.target.clone())?);
            let child = in_network(self.holder, "socat")
                .arg(format!(
                    "TCP-LISTEN:{},bind={},fork,reuseaddr",
                    bridge.inside.port(),
                    bridge.inside.ip()
                ))
                .arg(format!("UNIX-CONNECT:{}", socket.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| RunnerError::Spec(format!("cannot start socat: {e}")))?;
            let pid = child.id();
            self.inner.push(child);
            if let Some(pid) = pid {
                self.wait_listening(pid, bridge.inside.port()).await?;
            }
        }
        Ok(())
    }

    /// Waits until the bridge process `pid` listens on `port` inside the namespace, so that no
    /// container starts before its way out is open: its namespace (`/proc/PID/ns/net`) is the
    /// holder's, and its TCP table (`/proc/PID/net/tcp`, the table of that namespace) has `port` in
    /// state LISTEN. Up to [`BRIDGE_READY`].
    async fn wait_listening(&self, pid: u32, port: u16) -> Result<(), RunnerError> {
        use std::os::unix::fs::MetadataExt;
        let netns = std::fs::metadata(format!("/proc/{}/ns/net", self.holder)).map(|m| m.ino());
        let listening = || {
            let inside = std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| m.ino());
            matches!((&netns, inside), (Ok(a), Ok(b)) if *a == b)
                && std::fs::read_to_string(format!("/proc/{pid}/net/tcp"))
                    .is_ok_and(|table| listens(&table, port))
        };
        let deadline = tokio::time::Instant::now() + BRIDGE_READY;
        while !listening() {
            if tokio::time::Instant::now() >= deadline {
                return Err(RunnerError::Spec(format!(
                    "the bridge to port {port} did not listen within {BRIDGE_READY:?}"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Stops the bridges and removes their sockets; the namespace ends with its holder and them.
    pub async fn release(&mut self) {
        for mut child in self.inner.drain(..) {
            let _ = child.kill().await;
        }
        for task in self.outer.drain(..) {
            task.abort();
        }
        if let Some(dir) = self.sockets.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deep_pod_network_keeps_its_sockets_in_a_short_directory_removed_as_a_leftover() {
        let data = tempfile::tempdir().expect("tempdir");
        let shallow = data.path().join("net");
        let deep = data.path().join("d".repeat(100)).join("net");
        assert_eq!(sockets_dir(&shallow), shallow);
        let short = sockets_dir(&deep);
        assert!(
            short.starts_with(std::env::temp_dir()),
            "{}",
            short.display()
        );
        assert!(short.as_os_str().len() + 16 < 100);
        assert_ne!(
            short,
            sockets_dir(&data.path().join("e".repeat(100)).join("net"))
        );
        for dir in [&shallow, &short] {
            std::fs::create_dir_all(dir).expect("mkdir");
            std::fs::write(dir.join("bridge-0.sock"), "").expect("socket stand-in");
        }
        remove_leftover_sockets([shallow.clone(), deep]);
        assert!(!short.exists(), "left {}", short.display());
        assert!(!shallow.exists());
        assert!(data.path().exists());
    }

    #[test]
    fn a_listening_socket_is_read_from_a_tcp_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n\
             0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n\
             1: 0100007F:0050 0100007F:9C40 01 00000000:00000000 00:00000000 00000000\n";
        assert!(listens(table, 8080));
        assert!(!listens(table, 80), "established, not listening");
        assert!(!listens(table, 9090));
    }

    #[test]
    fn bridges_parse_from_a_port_or_an_address_pair() {
        assert_eq!(Bridge::parse("8081"), Ok(Bridge::loopback(8081)));
        let b = Bridge::parse("127.0.0.3:443=api.example.com:443").expect("parse");
        assert_eq!(b.inside.to_string(), "127.0.0.3:443");
        assert_eq!(b.target, "api.example.com:443");
        assert!(Bridge::parse("10.0.0.1:443=a:443").is_err());
        assert!(Bridge::parse("127.0.0.3:443=a").is_err());
        assert!(Bridge::parse("nonsense").is_err());
    }

    #[test]
    fn a_pod_adds_its_own_bridges_to_every_pods() {
        let config = IsolationConfig {
            bridges: vec![Bridge::loopback(8081)],
        };
        let annotated = |value: &str| {
            std::collections::BTreeMap::from([(BRIDGES_ANNOTATION.to_owned(), value.to_owned())])
        };
        assert_eq!(pod_bridges(&config, None).expect("none"), config.bridges);
        let both = pod_bridges(
            &config,
            Some(&annotated(
                "127.0.2.1:443=pypi.org:443, 127.0.2.1:80=pypi.org:80",
            )),
        )
        .expect("parsed");
        assert_eq!(both.len(), 3);
        assert_eq!(both[2].inside.to_string(), "127.0.2.1:80");
        assert_eq!(both[2].target, "pypi.org:80");
        for bad in ["8082", "10.0.0.1:443=a:443", "127.0.0.1:8081=elsewhere:1"] {
            let err = pod_bridges(&config, Some(&annotated(bad))).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
