//! Child processes of the platform's launchers (`sealpod up`, the control plane): started with
//! exactly the flags given (the parent's `SEALPOD_*` variables are removed), logging to a file,
//! awaited until ready, and stopped with SIGTERM, then SIGKILL after a grace period.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::{Child as ProcessChild, Command};

/// Why a child could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The program is not there.
    #[error("{program} not found ({hint})")]
    Missing {
        /// Where it was looked for.
        program: PathBuf,
        /// How to get it.
        hint: &'static str,
    },
    /// Starting it failed.
    #[error("starting {name}: {source}")]
    Spawn {
        /// The child's name.
        name: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// It exited before it was ready.
    #[error("{name} exited ({status}) before it was ready; see {log}, which ends:\n{last_lines}")]
    Exited {
        /// The child's name.
        name: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: String,
        /// The end of its log (the file may be gone by the time anyone looks).
        last_lines: String,
    },
    /// It did not become ready in time.
    #[error("{name} was not ready after {secs} s; see {log}, which ends:\n{last_lines}")]
    NotReady {
        /// The child's name.
        name: String,
        /// The bound.
        secs: u64,
        /// Its log file.
        log: String,
        /// The end of its log.
        last_lines: String,
    },
}

/// A running child process.
#[derive(Debug)]
pub struct Child {
    /// Its name in messages (`operator`, `api-server`, …).
    pub name: String,
    /// Its log file.
    pub log: PathBuf,
    process: ProcessChild,
}

/// What to start.
#[derive(Debug, Clone, Copy)]
pub struct Spawn<'a> {
    /// Its name in messages.
    pub name: &'a str,
    /// The program.
    pub program: &'a Path,
    /// How to get the program when it is missing (said in the error).
    pub hint: &'static str,
    /// Its arguments.
    pub args: &'a [String],
    /// Extra environment.
    pub env: &'a [(&'a str, String)],
    /// The file its output is appended to.
    pub log: &'a Path,
}

/// Starts `program args…` with its output appended to `log` and extra `env`.
pub fn spawn(what: Spawn<'_>) -> Result<Child, ChildError> {
    let Spawn {
        name,
        program,
        hint,
        args,
        env,
        log,
    } = what;
    if !program.is_file() {
        return Err(ChildError::Missing {
            program: program.to_path_buf(),
            hint,
        });
    }
    let spawn_error = |source| ChildError::Spawn {
        name: name.to_owned(),
        source,
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(spawn_error)?;
    let err = out.try_clone().map_err(spawn_error)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // A group of its own: Ctrl-C in a terminal signals the launcher's group only, and the
        // launcher stops its children in order (an API server outlives its clients, etcd its
        // API server).
        .process_group(0);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SEALPOD_") {
            cmd.env_remove(key);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    let process = cmd.spawn().map_err(spawn_error)?;
    Ok(Child {
        name: name.to_owned(),
        log: log.to_path_buf(),
        process,
    })
}

/// `GET path` on `127.0.0.1:port` answers 200.
pub async fn http_ok(addr: &str, path: &str) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The last lines of a log, each cut to a readable length, for an error message.
fn last_lines(log: &Path) -> String {
    const LINES: usize = 12;
    const WIDTH: usize = 400;
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..]
        .iter()
        .map(|line| format!("  {}", line.chars().take(WIDTH).collect::<String>()))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Child {
    /// Waits until `ready()` holds, failing early when the child exits.
    pub async fn wait_ready<F, Fut>(&mut self, secs: u64, mut ready: F) -> Result<(), ChildError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.exited() {
                return Err(ChildError::Exited {
                    name: self.name.clone(),
                    status,
                    log: self.log.display().to_string(),
                    last_lines: last_lines(&self.log),
                });
            }
            if ready().await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ChildError::NotReady {
                    name: self.name.clone(),
                    secs,
                    log: self.log.display().to_string(),
                    last_lines: last_lines(&self.log),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<String> {
        self.process
            .try_wait()
            .ok()
            .flatten()
            .map(|s| s.to_string())
    }

    /// Waits for the child to exit by itself.
    pub async fn wait(&mut self) -> String {
        self.process
            .wait()
            .await
            .map_or_else(|e| e.to_string(), |s| s.to_string())
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    pub async fn stop(mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = self.process.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        if tokio::time::timeout(grace, self.process.wait())
            .await
            .is_err()
        {
            tracing::warn!(child = %self.name, "did not stop in time; killing it");
            let _ = self.process.kill().await;
        }
    }
}

impl Drop for Child {
    /// A child still running when its owner is dropped (a panicking test, an early return) is
    /// killed and reaped before the drop returns, so its state directory can be removed next.
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let _ = self.process.start_kill();
        for _ in 0..200 {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_quotes_the_end_of_the_log() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("etcd.log");
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, text).expect("write");
        let quoted = last_lines(&log);
        assert!(quoted.starts_with("  line 9\n"), "{quoted}");
        assert!(quoted.ends_with("  line 20"), "{quoted}");
        assert_eq!(last_lines(&dir.path().join("absent.log")), "");
    }
}
