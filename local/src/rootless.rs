//! Rootless local mode. Run by a normal user, `up` starts itself again in a user namespace where
//! it is root over the user's own ID (as ID 0) and the user's subordinate IDs (`/etc/subuid`,
//! `/etc/subgid`, mapped from ID 1), as rootless container engines do: `unshare --map-root-user
//! --map-users --map-groups` (util-linux), which has the setuid helpers `newuidmap` and
//! `newgidmap` (Debian package `uidmap`) write the ranges. Everything `up` runs then runs in that
//! namespace, and the pod runner gives each pod a user and network namespace of its own nested in
//! it, with a block of the subordinate IDs (see `sealpod_node::identity`): the same isolation and
//! egress lock as on the root path, without any privilege on the host. The network is the host's
//! (nothing here unshares it), so the platform listens on the host's loopback as it does as root.
//!
//! The first process stays outside, passes SIGINT and SIGTERM on, and exits as its copy does. If
//! the namespace cannot be made, it says why and `up` runs unisolated (sessions do not start).

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use sealpod_node::identity::POD_IDS;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

/// Set for `up`'s copy inside the namespace: the name of the user whose IDs it has (and the mark
/// that it must not start itself again).
pub const USER_ENV: &str = "SEALPOD_UP_ROOTLESS_USER";

/// A range of subordinate IDs: `count` host IDs from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subordinate {
    pub start: u32,
    pub count: u32,
}

/// The largest range of `/etc/subuid` or `/etc/subgid` text that belongs to the user (by name
/// or by numeric ID), if it holds at least one pod's block of IDs (a namespace maps one range).
pub fn subordinate(table: &str, name: &str, id: u32) -> Option<Subordinate> {
    let id = id.to_string();
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let (owner, start, count) = (fields.next()?, fields.next()?, fields.next()?);
            (owner == name || owner == id).then_some(())?;
            Some(Subordinate {
                start: start.parse().ok()?,
                count: count.parse().ok()?,
            })
        })
        .filter(|range| range.count >= POD_IDS)
        .max_by_key(|range| range.count)
}

/// The `unshare` arguments of the namespace, or why it cannot be made.
fn unshare_args() -> Result<(String, Vec<String>), String> {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    let disabled = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .is_ok_and(|n| n.trim() == "0");
    if disabled {
        return Err("the kernel allows no user namespaces (user.max_user_namespaces = 0)".into());
    }
    if !crate::programs::missing(&["newuidmap", "newgidmap"]).is_empty() {
        let why = "newuidmap and newgidmap are missing (Debian package uidmap, which \
                   `scripts/setup-local` installs)";
        return Err(why.into());
    }
    let range = |file: &str, id: u32| {
        let table = std::fs::read_to_string(file).unwrap_or_default();
        subordinate(&table, &user, id).ok_or_else(|| {
            format!(
                "user {user} has no range of at least {POD_IDS} IDs in {file} (one block per pod; \
                 as root, `usermod --add-subuids 1000000-2048575 --add-subgids 1000000-2048575 \
                 {user}` gives room for 16 pods)"
            )
        })
    };
    let (uids, gids) = (
        range("/etc/subuid", uid.as_raw())?,
        range("/etc/subgid", gid.as_raw())?,
    );
    let args = vec![
        "--map-root-user".to_owned(),
        format!("--map-users={},1,{}", uids.start, uids.count),
        format!("--map-groups={},1,{}", gids.start, gids.count),
        "--".to_owned(),
    ];
    Ok((user, args))
}

/// Starts `up` again (same arguments and environment, and [`USER_ENV`]) in a user namespace of
/// its own, waits for it, and returns its exit code; or why the namespace cannot be made (tried
/// first with `true`, so that a refusal is told apart from `up` failing). Once the copy runs,
/// the answer is its exit code, whatever happens.
pub async fn run_inside_user_namespace() -> Result<i32, String> {
    let (user, unshare) = unshare_args()?;
    let tried = Command::new("unshare")
        .args(&unshare)
        .arg("true")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if !tried.status.success() {
        return Err(format!(
            "the user namespace was refused ({}; on Ubuntu, AppArmor's \
             kernel.apparmor_restrict_unprivileged_userns refuses it)",
            String::from_utf8_lossy(&tried.stderr).trim()
        ));
    }
    let listen = |kind| signal(kind).map_err(|e| format!("signal handler: {e}"));
    let (mut int, mut term) = (
        listen(SignalKind::interrupt())?,
        listen(SignalKind::terminate())?,
    );
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut child = Command::new("unshare")
        .args(&unshare)
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(USER_ENV, &user)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    // Passes SIGINT and SIGTERM on (a terminal's Ctrl-C reaches the copy directly too; `up`
    // acts on the first and ignores the rest) until the copy exits.
    let target = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(Pid::from_raw);
    loop {
        let forward = tokio::select! {
            status = child.wait() => {
                return Ok(status.map_or(1, sealpod_node::process::exit_code));
            }
            _ = int.recv() => Signal::SIGINT,
            _ = term.recv() => Signal::SIGTERM,
        };
        if let Some(target) = target {
            let _ = nix::sys::signal::kill(target, forward);
        }
    }
}

/// The user whose subordinate IDs this process has, when it is `up`'s copy inside the namespace.
pub fn inside_as() -> Option<String> {
    std::env::var(USER_ENV).ok().filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_largest_range_is_taken_if_it_holds_a_pod() {
        let table = "alice:100000:65536\nbob:165536:1000\nbob:300000:131072\n1005:500000:65536\n\
                     bob:700000:65536\n";
        assert_eq!(
            subordinate(table, "alice", 1001),
            Some(Subordinate {
                start: 100_000,
                count: 65_536
            })
        );
        assert_eq!(
            subordinate(table, "bob", 1002).map(|r| r.start),
            Some(300_000),
            "the largest"
        );
        assert_eq!(
            subordinate(table, "carol", 1005).map(|r| r.start),
            Some(500_000),
            "by numeric ID"
        );
        assert_eq!(subordinate(table, "dave", 1006), None);
        assert_eq!(
            subordinate("erin:100000:1000\n", "erin", 1007),
            None,
            "smaller than a pod's block"
        );
        assert_eq!(subordinate("garbage\nalice:x:y\n", "alice", 1), None);
    }
}
