//! Container probes: `httpGet` (plain HTTP to the pod IP), `tcpSocket` and `exec`, with the
//! Kubernetes timing fields (initial delay, period, timeout, success and failure thresholds).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process::{Launch, run_to_completion};

/// Tracks one probe of one container.
#[derive(Debug, Clone)]
pub struct ProbeState {
    probe: Probe,
    started: Instant,
    next: Instant,
    successes: i32,
    failures: i32,
    /// The current verdict.
    pub passing: bool,
}

impl ProbeState {
    /// Starts tracking when the container starts.
    pub fn new(probe: Probe) -> ProbeState {
        let now = Instant::now();
        let delay = secs(probe.initial_delay_seconds, 0);
        ProbeState {
            probe,
            started: now,
            next: now + delay,
            successes: 0,
            failures: 0,
            passing: false,
        }
    }

    /// True when the probe is due.
    pub fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    /// Runs the probe if due and updates the verdict; returns whether the verdict changed.
    pub async fn tick(&mut self, container: &Container, host: &str, exec: &Launch) -> bool {
        if !self.due() {
            return false;
        }
        let timeout = secs(self.probe.timeout_seconds, 1);
        let ok = run(&self.probe, container, host, exec, timeout).await;
        self.next = Instant::now() + secs(self.probe.period_seconds, 10);
        let before = self.passing;
        if ok {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                self.passing = true;
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                self.passing = false;
            }
        }
        before != self.passing
    }

    /// True when a startup probe has failed for good (`failureThreshold` exhausted).
    pub fn exhausted(&self) -> bool {
        !self.passing && self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1)
    }

    /// Time since tracking started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }
}

fn secs(value: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(value.unwrap_or(default)).unwrap_or(0))
}

fn port_of(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

async fn run(
    probe: &Probe,
    container: &Container,
    host: &str,
    exec: &Launch,
    timeout: Duration,
) -> bool {
    if exec.join.is_some_and(|j| j.network) {
        return run_in_namespace(probe, container, exec, timeout).await;
    }
    if let Some(get) = &probe.http_get {
        let Some(port) = port_of(&get.port, container) else {
            return false;
        };
        let path = get.path.clone().unwrap_or_else(|| "/".into());
        return tokio::time::timeout(timeout, http_get(host, port, &path))
            .await
            .unwrap_or(false);
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = port_of(&tcp.port, container) else {
            return false;
        };
        return matches!(
            tokio::time::timeout(timeout, TcpStream::connect((host, port))).await,
            Ok(Ok(_))
        );
    }
    if let Some(cmd) = probe.exec.as_ref().and_then(|e| e.command.clone()) {
        let mut launch = exec.clone();
        launch.argv = cmd;
        return run_to_completion(&launch, timeout).await;
    }
    false
}

/// Probes of a pod in its own network namespace run inside it: `curl` for `httpGet`, bash's
/// `/dev/tcp` for `tcpSocket`, the command for `exec`, each as the probed container's user. A
/// kubelet's probe arrives from outside the pod, where no egress rule of the pod applies to it;
/// from inside, the container's own user is the one whose traffic the pod's rules already admit
/// to its own ports (root is not: a pod's egress lock may restrict it).
async fn run_in_namespace(
    probe: &Probe,
    container: &Container,
    exec: &Launch,
    timeout: Duration,
) -> bool {
    let mut launch = exec.clone();
    let argv = if let Some(get) = &probe.http_get {
        let Some(port) = port_of(&get.port, container) else {
            return false;
        };
        let path = get.path.clone().unwrap_or_else(|| "/".into());
        vec![
            "curl".to_owned(),
            "-fsS".to_owned(),
            "-o".to_owned(),
            "/dev/null".to_owned(),
            "--max-time".to_owned(),
            timeout.as_secs().max(1).to_string(),
            format!("http://127.0.0.1:{port}{path}"),
        ]
    } else if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = port_of(&tcp.port, container) else {
            return false;
        };
        vec![
            "bash".to_owned(),
            "-c".to_owned(),
            format!("exec 3<>/dev/tcp/127.0.0.1/{port}"),
        ]
    } else if let Some(cmd) = probe.exec.as_ref().and_then(|e| e.command.clone()) {
        cmd
    } else {
        return false;
    };
    launch.argv = argv;
    run_to_completion(&launch, timeout + Duration::from_secs(1)).await
}

/// A minimal HTTP/1.1 GET; success is a 2xx or 3xx status, as a kubelet judges it.
async fn http_get(host: &str, port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect((host, port)).await else {
        return false;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: devcluster-probe\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 32];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..read]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .is_some_and(|code| (200..400).contains(&code))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::HTTPGetAction;

    use super::*;

    #[tokio::test]
    async fn http_probe_judges_status_codes() {
        let ok = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = ok.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = ok.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let status = if req.starts_with("GET /ready ") {
                    "200 OK"
                } else {
                    "503 Unavailable"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        assert!(http_get("127.0.0.1", port, "/ready").await);
        assert!(!http_get("127.0.0.1", port, "/other").await);

        let probe = Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/ready".into()),
                port: IntOrString::String("admin".into()),
                ..Default::default()
            }),
            period_seconds: Some(1),
            ..Default::default()
        };
        let container = Container {
            name: "c".into(),
            ports: Some(vec![k8s_openapi::api::core::v1::ContainerPort {
                name: Some("admin".into()),
                container_port: i32::from(port),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let dir = tempfile::tempdir().expect("tmp");
        let exec = Launch {
            argv: vec![],
            env: Default::default(),
            cwd: dir.path().to_path_buf(),
            uid: None,
            gid: None,
            groups: vec![],
            join: None,
            log: dir.path().join("log"),
        };
        let mut state = ProbeState::new(probe);
        assert!(state.tick(&container, "127.0.0.1", &exec).await);
        assert!(state.passing);
        assert!(!state.due(), "the next run waits a period");
    }
}
