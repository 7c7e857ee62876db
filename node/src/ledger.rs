//! The runner's ledger of the long-lived processes it starts for pods: namespace holders, network
//! bridges and containers. A node's container runtime keeps containers running while its kubelet
//! restarts; this runner has no such runtime, so a runner that was killed (SIGKILL, a crash)
//! leaves its pods' processes behind with nobody to stop them, holding ID blocks and bridges a
//! new runner would hand out again. So a runner, when it starts, first kills every process its
//! ledger names, and every process in the namespaces of those (a container started by a runner
//! killed before it could record it), as a rebooted node starts empty, and then runs its pods
//! anew.
//!
//! Each entry is a file `DATA_DIR/processes/PID` holding the process's start time (field 22 of
//! `/proc/PID/stat`), so a PID reused since by another process is never touched. Entries of
//! processes that ended are dropped now and then as new ones are written (about one write in 64
//! looks), so the ledger stays about as large as what runs.

use std::collections::HashSet;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgid};

/// The namespaces that tell a pod's processes: its user namespace (containers join it) and its
/// network namespace (bridges join it).
const NAMESPACES: [&str; 2] = ["user", "net"];

/// The namespace `kind` of process `pid` (`user:[4026531837]`), while it runs.
fn namespace(pid: impl std::fmt::Display, kind: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()
}

/// SIGKILL to `pid`, and to its process group when it leads one (a container's descendants).
fn kill_with_group(pid: Pid) {
    if getpgid(Some(pid)) == Ok(pid) {
        let _ = killpg(pid, Signal::SIGKILL);
    }
    let _ = kill(pid, Signal::SIGKILL);
}

/// The ledger of one runner's data directory.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

/// The start time of process `pid`, in clock ticks since boot; `None` when it is gone.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after its last `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields 3, 4, … follow; the start time is field 22.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

impl Ledger {
    /// The ledger under `data_dir` (created on the first record).
    pub fn of(data_dir: &Path) -> Ledger {
        Ledger {
            dir: data_dir.join("processes"),
        }
    }

    /// Records process `pid`, just started. A record that cannot be written is logged: the
    /// process then outlives a killed runner, as it did before ledgers.
    pub fn record(&self, pid: u32) {
        let Some(started) = start_time(pid) else {
            return; // already gone
        };
        // Owner-only: which processes run is the runner's business alone.
        let written = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(self.dir.join(pid.to_string()))
            })
            .and_then(|mut file| file.write_all(started.to_string().as_bytes()));
        if let Err(e) = written {
            tracing::warn!(pid, dir = %self.dir.display(), error = %e, "could not record a pod process");
        }
        // PIDs are handed out in turn: one in 64 is a fair sample of the writes.
        if pid.is_multiple_of(64) {
            self.prune();
        }
    }

    /// Drops the entries of processes that ended (or whose PID another process holds now).
    fn prune(&self) {
        for (path, _) in self.entries().filter(|(_, alive)| alive.is_none()) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Every entry, and the process when it is still the one recorded.
    fn entries(&self) -> impl Iterator<Item = (PathBuf, Option<Pid>)> {
        let entries = std::fs::read_dir(&self.dir).into_iter().flatten().flatten();
        entries.map(|entry| {
            let path = entry.path();
            let recorded = std::fs::read_to_string(&path).ok();
            let pid = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok());
            let alive = match (pid, recorded) {
                (Some(pid), Some(recorded))
                    if start_time(pid).is_some_and(|t| t.to_string() == recorded.trim()) =>
                {
                    i32::try_from(pid).ok().map(Pid::from_raw)
                }
                _ => None,
            };
            (path, alive)
        })
    }

    /// Kills (SIGKILL) every recorded process that is still the one recorded, with its process
    /// group when it leads one (a container's descendants), and empties the ledger. Returns how
    /// many were killed. Called once, before the runner runs any pod.
    pub fn kill_leftovers(&self) -> usize {
        let own: Vec<PathBuf> = NAMESPACES
            .iter()
            .filter_map(|kind| namespace("self", kind))
            .collect();
        // The pods' namespaces, read before their holders die.
        let mut pods: HashSet<PathBuf> = HashSet::new();
        let mut killed: HashSet<Pid> = HashSet::new();
        for (path, alive) in self.entries() {
            if let Some(pid) = alive {
                let theirs = NAMESPACES.iter().filter_map(|kind| namespace(pid, kind));
                pods.extend(theirs.filter(|ns| !own.contains(ns)));
                kill_with_group(pid);
                killed.insert(pid);
            }
            let _ = std::fs::remove_file(path);
        }
        // A runner killed between starting a process and recording it leaves it unrecorded, but
        // in its pod's namespaces.
        if !pods.is_empty() {
            let processes = std::fs::read_dir("/proc").into_iter().flatten().flatten();
            for pid in processes.filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()) {
                let pid = Pid::from_raw(pid);
                if !killed.contains(&pid)
                    && NAMESPACES
                        .iter()
                        .any(|kind| namespace(pid, kind).is_some_and(|ns| pods.contains(&ns)))
                {
                    kill_with_group(pid);
                    killed.insert(pid);
                }
            }
        }
        killed.len()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
    use std::process::Command;

    use super::*;

    #[test]
    fn a_new_runner_kills_what_the_last_one_left_and_nothing_else() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ledger = Ledger::of(dir.path());
        // A container (a group leader, with a child of its own) and a namespace holder.
        let mut container = Command::new("bash")
            .args(["-c", "sleep 60 & wait"])
            .process_group(0)
            .spawn()
            .expect("bash");
        let mut holder = Command::new("sleep").arg("60").spawn().expect("sleep");
        // A process whose PID was recorded for another process (another start time).
        let mut stranger = Command::new("sleep").arg("60").spawn().expect("sleep");
        ledger.record(container.id());
        ledger.record(holder.id());
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        let records = dir.path().join("processes");
        assert_eq!(mode(&records), 0o700);
        assert_eq!(mode(&records.join(holder.id().to_string())), 0o600);
        std::fs::write(
            dir.path().join("processes").join(stranger.id().to_string()),
            "1",
        )
        .expect("record");
        std::fs::write(dir.path().join("processes/4194303"), "1").expect("record");

        assert_eq!(ledger.kill_leftovers(), 2);
        assert_eq!(container.wait().expect("wait").signal(), Some(9));
        assert_eq!(holder.wait().expect("wait").signal(), Some(9));
        assert!(
            stranger.try_wait().expect("try_wait").is_none(),
            "a reused PID must be left alone"
        );
        let left = std::fs::read_dir(dir.path().join("processes")).expect("dir");
        assert_eq!(left.count(), 0, "the ledger is emptied");
        assert_eq!(ledger.kill_leftovers(), 0);
        stranger.kill().expect("kill");
        stranger.wait().expect("wait");
    }

    #[test]
    fn a_process_that_joined_a_recorded_pod_unrecorded_is_killed_too() {
        if !crate::process::is_root() {
            return; // creating a pod's namespaces needs root
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let ledger = Ledger::of(dir.path());
        let mut holder = Command::new("unshare")
            .args(["--user", "--net", "--", "sleep", "60"])
            .spawn()
            .expect("unshare");
        ledger.record(holder.id());
        let theirs = format!("/proc/{}/ns/net", holder.id());
        let ours = std::fs::read_link("/proc/self/ns/net").expect("own namespace");
        while std::fs::read_link(&theirs).is_ok_and(|ns| ns == ours) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // A process its runner started in the pod's network (a bridge) but was killed before
        // recording.
        let mut unrecorded = Command::new("nsenter")
            .args([
                "--target",
                &holder.id().to_string(),
                "--net",
                "--",
                "sleep",
                "60",
            ])
            .process_group(0)
            .spawn()
            .expect("nsenter");
        let joined = format!("/proc/{}/ns/net", unrecorded.id());
        while std::fs::read_link(&joined).is_ok_and(|ns| ns == ours) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Someone else's process, outside every pod: left alone.
        let mut bystander = Command::new("sleep").arg("60").spawn().expect("sleep");

        assert_eq!(ledger.kill_leftovers(), 2);
        assert_eq!(holder.wait().expect("wait").signal(), Some(9));
        assert_eq!(unrecorded.wait().expect("wait").signal(), Some(9));
        assert!(bystander.try_wait().expect("try_wait").is_none());
        bystander.kill().expect("kill");
        bystander.wait().expect("wait");
    }

    #[test]
    fn entries_of_ended_processes_are_dropped() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ledger = Ledger::of(dir.path());
        let mut running = Command::new("sleep").arg("60").spawn().expect("sleep");
        let mut ended = Command::new("sleep").arg("60").spawn().expect("sleep");
        ledger.record(running.id());
        ledger.record(ended.id());
        ended.kill().expect("kill");
        ended.wait().expect("wait");

        ledger.prune();
        let left: Vec<String> = std::fs::read_dir(dir.path().join("processes"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, [running.id().to_string()]);
        running.kill().expect("kill");
        running.wait().expect("wait");
    }
}
