//! Container processes: spawn with a clean environment, optionally inside the pod's user (and
//! network) namespace as the container's UID/GID, logs to a file; stop with SIGTERM to the process
//! group, a grace period, then SIGKILL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::RunnerError;

/// What to run for one container.
#[derive(Debug, Clone)]
pub struct Launch {
    /// argv, program first.
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Run as this UID (only when the runner is root): the pod's ID with `join`, else a host ID.
    pub uid: Option<u32>,
    /// Run as this GID (only when the runner is root), like `uid`.
    pub gid: Option<u32>,
    /// Supplementary groups (the pod's `fsGroup`, the groups of the mounted volumes), with `uid`
    /// only.
    pub groups: Vec<u32>,
    /// Join the pod's namespaces (`nsenter`), only when the runner is root.
    pub join: Option<Join>,
    /// File that receives stdout and stderr.
    pub log: PathBuf,
}

/// The namespaces of a pod that its containers join (see [`super::identity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Join {
    /// PID of the process holding the pod's namespaces.
    pub holder: u32,
    /// Join its network namespace too (isolation on).
    pub network: bool,
}

/// True when the runner runs as root (UID switches and network namespaces are possible).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Starts a process in its own process group.
pub fn spawn(launch: &Launch) -> Result<Child, RunnerError> {
    let (program, args) = launch
        .argv
        .split_first()
        .ok_or_else(|| RunnerError::Spec("container has an empty command".into()))?;
    let mut argv: Vec<String> = Vec::new();
    if let Some(join) = launch.join.filter(|_| is_root()) {
        // nsenter becomes the pod's root inside its user namespace; setpriv then switches to
        // the container's IDs there (host IDs of the pod's block outside).
        argv.extend(["nsenter", "--target", &join.holder.to_string(), "--user"].map(str::to_owned));
        if join.network {
            argv.push("--net".to_owned());
        }
        argv.push("--".to_owned());
    }
    // The UID switch happens last, with setpriv, which also sets the supplementary groups.
    if let Some(uid) = launch.uid.filter(|_| is_root()) {
        let gid = launch.gid.unwrap_or(uid);
        let groups = if launch.groups.is_empty() {
            "--clear-groups".to_owned()
        } else {
            let list: Vec<String> = launch.groups.iter().map(ToString::to_string).collect();
            format!("--groups={}", list.join(","))
        };
        argv.extend([
            "setpriv".to_owned(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            groups,
            "--".to_owned(),
        ]);
    }
    argv.push(program.clone());
    argv.extend(args.iter().cloned());

    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .map_err(RunnerError::io(&launch.log))?;
    let log_err = log.try_clone().map_err(RunnerError::io(&launch.log))?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(&launch.env)
        .current_dir(&launch.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(true);
    cmd.spawn()
        .map_err(|e| RunnerError::Spec(format!("cannot start `{}`: {e}", argv[0])))
}

/// Exit code as Kubernetes reports it: the code, or 128 + the signal number.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

fn signal_group(child: &Child, signal: Signal) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // The group may already be gone; that is the outcome we want.
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// Sends SIGTERM to the process group, waits up to `grace`, then SIGKILLs. Returns the exit code.
pub async fn stop(child: &mut Child, grace: Duration) -> i32 {
    if let Ok(Some(status)) = child.try_wait() {
        return exit_code(status);
    }
    signal_group(child, Signal::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => exit_code(status),
        _ => {
            signal_group(child, Signal::SIGKILL);
            child.wait().await.map(exit_code).unwrap_or(137)
        }
    }
}

/// Runs a command to completion (exec probes), with a timeout; true on exit code 0.
pub async fn run_to_completion(launch: &Launch, timeout: Duration) -> bool {
    let Ok(mut child) = spawn(launch) else {
        return false;
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        _ => {
            signal_group(&child, Signal::SIGKILL);
            let _ = child.wait().await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(dir: &std::path::Path, argv: &[&str]) -> Launch {
        Launch {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            env: BTreeMap::from([
                ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
                ("ONLY".to_owned(), "this".to_owned()),
            ]),
            cwd: dir.to_path_buf(),
            uid: None,
            gid: None,
            groups: vec![],
            join: None,
            log: dir.join("log"),
        }
    }

    #[tokio::test]
    async fn environment_is_only_what_the_spec_gives() {
        let dir = tempfile::tempdir().expect("tmp");
        // SAFETY-free: a variable in the runner's own environment must not reach the child.
        let l = launch(dir.path(), &["sh", "-c", "env > env.out"]);
        let mut child = spawn(&l).expect("spawn");
        assert_eq!(child.wait().await.map(exit_code).expect("wait"), 0);
        let env = std::fs::read_to_string(dir.path().join("env.out")).expect("env");
        assert!(env.contains("ONLY=this"), "{env}");
        assert!(!env.contains("CARGO"), "runner environment leaked: {env}");
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill_after_the_grace_period() {
        let dir = tempfile::tempdir().expect("tmp");
        let l = launch(
            dir.path(),
            &["sh", "-c", "trap '' TERM; while true; do sleep 0.05; done"],
        );
        let mut child = spawn(&l).expect("spawn");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(stop(&mut child, Duration::from_millis(200)).await, 137);

        let l = launch(dir.path(), &["sleep", "30"]);
        let mut child = spawn(&l).expect("spawn");
        assert_eq!(stop(&mut child, Duration::from_secs(5)).await, 128 + 15);
        assert!(run_to_completion(&launch(dir.path(), &["true"]), Duration::from_secs(5)).await);
        assert!(!run_to_completion(&launch(dir.path(), &["false"]), Duration::from_secs(5)).await);
        assert!(
            !run_to_completion(
                &launch(dir.path(), &["sleep", "5"]),
                Duration::from_millis(100)
            )
            .await
        );
    }
}
