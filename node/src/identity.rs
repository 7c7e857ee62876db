//! Per-pod identities (root only), as a kubelet runs pods with `hostUsers: false`: every pod gets
//! a user namespace of its own that maps the pod's IDs `0..65536` onto a block of host IDs no other
//! pod uses. A container that runs as UID 1000 is UID 1000 inside its pod and a host UID of its own
//! outside, so two pods never share an identity: neither can read the other's files, signal its
//! processes or open its `/proc` entries, even though both say `runAsUser: 1000`.
//!
//! The pod's network namespace (when isolation is on) is created by, and owned by, that user
//! namespace, so the pod's own root (the lock init container) administers its network and the
//! egress rules it writes name the pod's IDs (`meta skuid 1337`), as on a node.
//!
//! The pod's volumes are gated per container (see [`super::volumes`]): each volume gets a group of
//! its own ([`volume_gid`]) that only the containers mounting it carry, so a container reaches
//! exactly the volumes mounted into it, as with a kubelet's mounts.
//!
//! Rootless, the runner itself runs in a user namespace where it is root over the subordinate IDs
//! of the user who started it (`/etc/subuid`, see `sealpod up`): the blocks are then carved out
//! of the IDs mapped into that namespace ([`IdRange::of_this_namespace`]), so a pod's IDs are
//! still nobody else's on the host.
//!
//! This module never maps host root into a pod, and never hands out a block that a live pod holds.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::RunnerError;

/// IDs a pod has inside its user namespace: `0..POD_IDS`.
pub const POD_IDS: u32 = 65_536;
/// The first host ID of the first pod's block when the runner has every ID (root on the host).
/// Far above the IDs of ordinary host users and of `/etc/subuid` ranges (which start at 100000),
/// so a pod's IDs name nobody on the host.
pub const FIRST_HOST_ID: u32 = 0x4000_0000;
/// The pod-side group ID of a pod's first volume; volume `i` has `VOLUME_GID_BASE + i`.
pub const VOLUME_GID_BASE: u32 = 65_000;

/// The pod-side group that gates volume number `index` of a pod.
pub fn volume_gid(index: usize) -> Result<u32, RunnerError> {
    u32::try_from(index)
        .ok()
        .and_then(|i| VOLUME_GID_BASE.checked_add(i))
        .filter(|g| *g < POD_IDS)
        .ok_or_else(|| {
            RunnerError::Spec(format!(
                "a pod may have at most {} volumes",
                POD_IDS - VOLUME_GID_BASE
            ))
        })
}

/// The IDs pod blocks are carved from: `slots` blocks of [`POD_IDS`] from `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// The first ID of the first block.
    pub first: u32,
    /// How many pods can hold a block at once.
    pub slots: u32,
    /// Whether the runner's namespace maps every ID onto itself (root on the host), rather than
    /// a part of them (rootless: the subordinate IDs of one user).
    pub every_id: bool,
}

/// The `(inside, count)` ranges of a `/proc/PID/uid_map` or `gid_map`.
fn mapped_ranges(map: &str) -> Vec<(u64, u64)> {
    map.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().map(str::parse::<u64>);
            match (fields.next(), fields.next(), fields.next()) {
                (Some(Ok(inside)), Some(Ok(_outside)), Some(Ok(count))) => Some((inside, count)),
                _ => None,
            }
        })
        .collect()
}

impl IdRange {
    /// The blocks a runner can hand out given its namespace's UID and GID maps: from
    /// [`FIRST_HOST_ID`] when every ID is mapped, else from the largest range of IDs mapped as
    /// both UIDs and GIDs, never ID 0 (the runner's own).
    pub fn from_maps(uid_map: &str, gid_map: &str) -> IdRange {
        let (uids, gids) = (mapped_ranges(uid_map), mapped_ranges(gid_map));
        let full = u64::from(u32::MAX);
        let every_id = [&uids, &gids].iter().all(|ranges| {
            ranges
                .iter()
                .any(|&(inside, count)| inside == 0 && count >= full)
        });
        let mut best = IdRange {
            first: 0,
            slots: 0,
            every_id,
        };
        for &(u_start, u_count) in &uids {
            for &(g_start, g_count) in &gids {
                let floor = if every_id {
                    u64::from(FIRST_HOST_ID)
                } else {
                    1
                };
                let start = u_start.max(g_start).max(floor);
                let end = (u_start + u_count).min(g_start + g_count).min(full);
                let slots = end.saturating_sub(start) / u64::from(POD_IDS);
                if let (Ok(first), Ok(slots)) = (u32::try_from(start), u32::try_from(slots))
                    && slots > best.slots
                {
                    best = IdRange {
                        first,
                        slots,
                        every_id,
                    };
                }
            }
        }
        best
    }

    /// The blocks of the runner's own namespace (`/proc/self/uid_map`, `gid_map`).
    pub fn of_this_namespace() -> IdRange {
        let read = |file| std::fs::read_to_string(file).unwrap_or_default();
        IdRange::from_maps(&read("/proc/self/uid_map"), &read("/proc/self/gid_map"))
    }
}

/// The blocks of host IDs handed out to live pods.
#[derive(Debug)]
pub struct IdentityPool {
    range: IdRange,
    used: Mutex<BTreeSet<u32>>,
}

impl IdentityPool {
    /// A pool of the blocks of `range`.
    pub fn new(range: IdRange) -> IdentityPool {
        IdentityPool {
            range,
            used: Mutex::default(),
        }
    }

    /// Hands out the lowest free block; it returns to the pool when the identity is dropped.
    pub fn allocate(self: &Arc<Self>) -> Result<PodIdentity, RunnerError> {
        let mut used = self
            .used
            .lock()
            .map_err(|_| RunnerError::Spec("identity pool poisoned".into()))?;
        let slot = (0..self.range.slots)
            .find(|s| !used.contains(s))
            .ok_or_else(|| {
                RunnerError::Spec(format!(
                    "no free block of pod IDs: all {} are held by running pods",
                    self.range.slots
                ))
            })?;
        used.insert(slot);
        Ok(PodIdentity {
            base: self.range.first + slot * POD_IDS,
            slot,
            pool: Arc::clone(self),
        })
    }

    fn release(&self, slot: u32) {
        if let Ok(mut used) = self.used.lock() {
            used.remove(&slot);
        }
    }
}

/// One pod's block of host IDs.
#[derive(Debug)]
pub struct PodIdentity {
    base: u32,
    slot: u32,
    pool: Arc<IdentityPool>,
}

impl Drop for PodIdentity {
    fn drop(&mut self) {
        self.pool.release(self.slot);
    }
}

impl PodIdentity {
    /// The host ID of the pod's ID `id` (a UID or a GID).
    pub fn host_id(&self, id: u32) -> Result<u32, RunnerError> {
        if id < POD_IDS {
            Ok(self.base + id)
        } else {
            Err(RunnerError::Spec(format!(
                "ID {id} is outside the pod's user namespace (0..{POD_IDS})"
            )))
        }
    }

    /// The host ID an ID of *any* pod's block has in this pod's block; IDs outside every pod
    /// block (host users, root) come back unchanged. Used to hand a kept claim to a new pod.
    pub fn adopt_id(&self, host_id: u32) -> u32 {
        let first = self.pool.range.first;
        if host_id >= first {
            self.base + (host_id - first) % POD_IDS
        } else {
            host_id
        }
    }

    /// Starts the pod's namespaces: a user namespace mapped to this block and, with `network`,
    /// a network namespace owned by it.
    /// The holder is recorded in `ledger` as soon as it runs.
    pub async fn enter(
        &self,
        network: bool,
        ledger: &super::ledger::Ledger,
    ) -> Result<PodNamespaces, RunnerError> {
        let mut cmd = Command::new("unshare");
        cmd.arg("--user");
        if network {
            cmd.arg("--net");
        }
        let holder = cmd
            .args(["--", "sleep", "infinity"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RunnerError::Spec(format!("cannot start unshare: {e}")))?;
        let Some(pid) = holder.id() else {
            return Err(RunnerError::Spec(
                "the namespace holder exited at once".into(),
            ));
        };
        ledger.record(pid);
        let namespaces = PodNamespaces { holder, pid };
        namespaces.wait_unshared().await?;
        let map = format!("0 {} {POD_IDS}\n", self.base);
        for file in ["uid_map", "gid_map"] {
            let path = Path::new("/proc").join(pid.to_string()).join(file);
            std::fs::write(&path, &map).map_err(RunnerError::io(&path))?;
        }
        Ok(namespaces)
    }
}

/// A pod's user namespace (and network namespace, if any), kept alive by a holder process.
#[derive(Debug)]
pub struct PodNamespaces {
    holder: Child,
    pid: u32,
}

impl PodNamespaces {
    /// The holder's PID: containers join its namespaces (`nsenter --target`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `unshare` creates the namespaces before it runs its command; the maps can be written
    /// only once they exist.
    async fn wait_unshared(&self) -> Result<(), RunnerError> {
        let ours = std::fs::read_link("/proc/self/ns/user").ok();
        let theirs = Path::new("/proc")
            .join(self.pid.to_string())
            .join("ns/user");
        for _ in 0..500 {
            match std::fs::read_link(&theirs) {
                Ok(link) if Some(&link) != ours.as_ref() => return Ok(()),
                Ok(_) => tokio::time::sleep(Duration::from_millis(2)).await,
                Err(source) => {
                    return Err(RunnerError::Io {
                        path: theirs,
                        source,
                    });
                }
            }
        }
        Err(RunnerError::Spec(
            "the pod's user namespace did not appear".into(),
        ))
    }

    /// Ends the holder; the namespaces go with their last process (the network's bridges end
    /// with [`super::isolation::PodNetwork::release`]).
    pub async fn release(&mut self) {
        let _ = self.holder.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_distinct_while_held_and_reused_after() {
        let pool = Arc::new(IdentityPool::new(IdRange::from_maps(HOST_MAP, HOST_MAP)));
        let a = pool.allocate().expect("a");
        let b = pool.allocate().expect("b");
        assert_eq!(a.host_id(1000).expect("uid"), FIRST_HOST_ID + 1000);
        assert_eq!(
            b.host_id(1000).expect("uid"),
            FIRST_HOST_ID + POD_IDS + 1000
        );
        assert!(
            a.host_id(POD_IDS).is_err(),
            "IDs past the block are refused"
        );
        drop(a);
        let c = pool.allocate().expect("c");
        assert_eq!(
            c.host_id(0).expect("root"),
            FIRST_HOST_ID,
            "a freed block is reused"
        );
        assert_eq!(
            c.adopt_id(b.host_id(1337).expect("uid")),
            c.host_id(1337).expect("uid")
        );
        assert_eq!(c.adopt_id(0), 0, "host root stays host root");
        assert_eq!(c.adopt_id(1000), 1000, "host users stay themselves");
    }

    /// The maps of the host's own user namespace.
    const HOST_MAP: &str = "         0          0 4294967295\n";

    #[test]
    fn blocks_come_from_the_ids_the_runner_has() {
        let host = IdRange::from_maps(HOST_MAP, HOST_MAP);
        assert!(host.every_id);
        assert_eq!(host.first, FIRST_HOST_ID);
        assert_eq!(host.slots, (u32::MAX - FIRST_HOST_ID) / POD_IDS);

        // Rootless: the user's own ID as 0, then 16 blocks of subordinate IDs.
        let uid_map = "0 1001 1\n1 1000000 1048576\n";
        let rootless = IdRange::from_maps(uid_map, uid_map);
        assert!(!rootless.every_id);
        assert_eq!((rootless.first, rootless.slots), (1, 16));
        // Only IDs mapped both as UIDs and as GIDs count.
        let fewer_gids = IdRange::from_maps(uid_map, "0 1001 1\n1 1000000 131072\n");
        assert_eq!(fewer_gids.slots, 2);
        // The user's own ID alone makes no block.
        let alone = IdRange::from_maps("0 1001 1\n", "0 1001 1\n");
        assert_eq!(alone.slots, 0);

        let pool = Arc::new(IdentityPool::new(IdRange::from_maps(
            "0 1001 1\n1 1000000 131072\n",
            "0 1001 1\n1 1000000 131072\n",
        )));
        let a = pool.allocate().expect("a");
        let b = pool.allocate().expect("b");
        assert_eq!(
            a.host_id(0).expect("root"),
            1,
            "never the runner's own ID 0"
        );
        assert_eq!(b.host_id(1337).expect("uid"), 1 + POD_IDS + 1337);
        let err = pool.allocate().expect_err("two blocks only");
        assert!(err.to_string().contains("all 2 are held"), "{err}");
        assert_eq!(
            a.adopt_id(b.host_id(1000).expect("uid")),
            a.host_id(1000).expect("uid")
        );
        assert_eq!(a.adopt_id(0), 0, "the runner's own ID stays its own");
    }

    #[test]
    fn volume_groups_stay_inside_the_pod_block() {
        assert_eq!(volume_gid(0).expect("gid"), VOLUME_GID_BASE);
        assert!(volume_gid(usize::try_from(POD_IDS - VOLUME_GID_BASE).expect("n")).is_err());
    }
}
