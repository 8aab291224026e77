//! Merging a node's plan slices into one plan.
//!
//! - **Fencing.** Every slice carries the fencing token of the leader that wrote it. The
//!   agent remembers the highest token it has seen; a slice with a lower token was written
//!   by a deposed leader and is ignored (reported as `slice:<controller>` refused). What the
//!   agent last accepted from that controller stays in force, so a host is never torn down
//!   because an old leader wrote late. (The contract for the runtime: a new leader rewrites
//!   its slices with its own token.)
//! - **Conflicts.** Two owners of one resource (file path, service, PV device, LV, filesystem
//!   device, mount target, export path+client, container name) is a conflict: the resource is
//!   left out of the plan and reported `Conflict`, never resolved by picking one.
//! - **Completeness.** When a slice was ignored, unreadable or had conflicts, the plan is
//!   marked incomplete: the agent then does not remove owned fstab/exports lines that the
//!   plan does not mention, since the missing part may well be what mentions them.
//! - **No plan is not an empty plan.** Finding no slice at all for the node (a mistyped
//!   `--cluster` or `--node`, an emptied store, plan keys deleted by mistake) says nothing
//!   about what the host should lose: the plan is incomplete and reported as a hold
//!   ([`HOLD_ID`]), so the agent removes nothing. Removal needs slices that no longer list
//!   the resource.

use std::collections::{BTreeMap, BTreeSet};

use omtd_crds::plan::{
    ContainerSpec, ExportSpec, FileSpec, FilesystemSpec, LogicalVolumeSpec, MountSpec,
    PhysicalVolumeSpec, PlanSlice, ResourceReport, ResourceState, ServiceSpec,
};

/// The node's plan after merging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedPlan {
    pub files: Vec<FileSpec>,
    pub services: Vec<ServiceSpec>,
    pub physical_volumes: Vec<PhysicalVolumeSpec>,
    pub logical_volumes: Vec<LogicalVolumeSpec>,
    pub filesystems: Vec<FilesystemSpec>,
    pub mounts: Vec<MountSpec>,
    pub exports: Vec<ExportSpec>,
    pub containers: Vec<ContainerSpec>,
    /// Stale or unreadable slices and conflicts, as report entries.
    pub problems: Vec<ResourceReport>,
    /// Per controller, the fencing token of the slice in force.
    pub applied: BTreeMap<String, i64>,
    /// Per controller, the digest of the slice in force (`PlanSlice::digest`).
    pub digests: BTreeMap<String, String>,
    /// False when part of the plan is missing (see the module comment).
    pub complete: bool,
}

/// Report ids of each kind of resource.
pub mod id {
    use omtd_crds::plan::*;
    pub fn file(s: &FileSpec) -> String {
        format!("file:{}", s.path)
    }
    pub fn service(s: &ServiceSpec) -> String {
        format!("service:{}", s.name)
    }
    pub fn pv(s: &PhysicalVolumeSpec) -> String {
        format!("pv:{}", s.device)
    }
    pub fn lv(s: &LogicalVolumeSpec) -> String {
        format!("lv:{}/{}", s.volume_group, s.name)
    }
    pub fn fs(s: &FilesystemSpec) -> String {
        format!("fs:{}", s.device)
    }
    pub fn mount(s: &MountSpec) -> String {
        format!("mount:{}", s.target)
    }
    pub fn export(s: &ExportSpec) -> String {
        format!("export:{} {}", s.path, s.client)
    }
    pub fn container(s: &ContainerSpec) -> String {
        format!("container:{}", s.name)
    }
}

/// Report id of the hold taken when the node has no plan slices at all.
pub const HOLD_ID: &str = "plan";

/// Remembers what was accepted and the highest fencing token seen.
#[derive(Debug, Default)]
pub struct Merger {
    accepted: BTreeMap<String, PlanSlice>,
    highest: i64,
    /// Where the plan was looked for, named in the hold message.
    node: String,
    cluster: String,
}

impl Merger {
    /// `highest_seen`: the highest token known from before (the agent's last report), so a
    /// restarted agent still refuses a deposed leader's slices.
    pub fn new(highest_seen: i64) -> Self {
        Merger {
            accepted: BTreeMap::new(),
            highest: highest_seen,
            node: String::new(),
            cluster: String::new(),
        }
    }

    /// Name the node and cluster whose plan this is, for the hold message.
    pub fn for_node(mut self, node: &str, cluster: &str) -> Self {
        self.node = node.to_owned();
        self.cluster = cluster.to_owned();
        self
    }

    /// Why nothing is applied when no slice exists.
    fn hold_message(&self) -> String {
        let node = if self.node.is_empty() {
            "this node"
        } else {
            &self.node
        };
        let cluster = if self.cluster.is_empty() {
            "this cluster"
        } else {
            &self.cluster
        };
        format!("no plan for {node} in cluster {cluster}: holding the host as it is")
    }

    pub fn highest(&self) -> i64 {
        self.highest
    }

    /// Merge the slices now in the store, keyed by controller (the last segment of
    /// `plans/<node>/<controller>`), as raw JSON.
    pub fn merge(&mut self, raw: &BTreeMap<String, Vec<u8>>) -> MergedPlan {
        let mut plan = MergedPlan {
            complete: true,
            ..Default::default()
        };
        let parsed: BTreeMap<&String, Result<PlanSlice, String>> = raw
            .iter()
            .map(|(c, bytes)| {
                (
                    c,
                    serde_json::from_slice::<PlanSlice>(bytes).map_err(|e| e.to_string()),
                )
            })
            .collect();
        if let Some(max) = parsed
            .values()
            .filter_map(|r| r.as_ref().ok().map(|s| s.fencing_token))
            .max()
        {
            self.highest = self.highest.max(max);
        }
        self.accepted.retain(|c, _| raw.contains_key(c));
        if raw.is_empty() {
            plan.complete = false;
            plan.problems.push(problem(
                HOLD_ID.to_owned(),
                ResourceState::Refused,
                self.hold_message(),
            ));
            return plan;
        }

        let mut effective: Vec<(String, PlanSlice)> = Vec::new();
        for (controller, result) in parsed {
            match result {
                Ok(slice) if slice.fencing_token >= self.highest => {
                    self.accepted.insert(controller.clone(), slice.clone());
                    effective.push((controller.clone(), slice));
                }
                Ok(slice) => {
                    plan.problems.push(problem(
                        format!("slice:{controller}"),
                        ResourceState::Refused,
                        format!(
                            "ignored: written by a deposed leader (fencing token {} < {})",
                            slice.fencing_token, self.highest
                        ),
                    ));
                    fall_back(&self.accepted, controller, &mut plan, &mut effective);
                }
                Err(e) => {
                    plan.problems.push(problem(
                        format!("slice:{controller}"),
                        ResourceState::Failed,
                        format!("unreadable plan slice, ignored: {e}"),
                    ));
                    fall_back(&self.accepted, controller, &mut plan, &mut effective);
                }
            }
        }
        for (controller, slice) in &effective {
            plan.applied.insert(controller.clone(), slice.fencing_token);
            plan.digests.insert(controller.clone(), slice.digest());
        }

        let mut owners: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (c, s) in &effective {
            let ids = s
                .files
                .iter()
                .map(id::file)
                .chain(s.services.iter().map(id::service))
                .chain(s.physical_volumes.iter().map(id::pv))
                .chain(s.logical_volumes.iter().map(id::lv))
                .chain(s.filesystems.iter().map(id::fs))
                .chain(s.mounts.iter().map(id::mount))
                .chain(s.exports.iter().map(id::export))
                .chain(s.containers.iter().map(id::container));
            for i in ids {
                owners.entry(i).or_default().push(c);
            }
        }
        let conflicted: BTreeSet<String> = owners
            .iter()
            .filter(|(_, o)| o.len() > 1)
            .map(|(i, _)| i.clone())
            .collect();
        for i in &conflicted {
            let list = owners[i].join(" and ");
            plan.problems.push(problem(
                i.clone(),
                ResourceState::Conflict,
                format!("claimed by {list}: left as it is until one of them lets go"),
            ));
            plan.complete = false;
        }
        let ok = |i: &String| !conflicted.contains(i);
        for (_, s) in effective {
            plan.files
                .extend(s.files.into_iter().filter(|x| ok(&id::file(x))));
            plan.services
                .extend(s.services.into_iter().filter(|x| ok(&id::service(x))));
            plan.physical_volumes
                .extend(s.physical_volumes.into_iter().filter(|x| ok(&id::pv(x))));
            plan.logical_volumes
                .extend(s.logical_volumes.into_iter().filter(|x| ok(&id::lv(x))));
            plan.filesystems
                .extend(s.filesystems.into_iter().filter(|x| ok(&id::fs(x))));
            plan.mounts
                .extend(s.mounts.into_iter().filter(|x| ok(&id::mount(x))));
            plan.exports
                .extend(s.exports.into_iter().filter(|x| ok(&id::export(x))));
            plan.containers
                .extend(s.containers.into_iter().filter(|x| ok(&id::container(x))));
        }
        plan
    }
}

/// A slice that cannot be used: the controller's last accepted slice stays in force.
fn fall_back(
    accepted: &BTreeMap<String, PlanSlice>,
    controller: &str,
    plan: &mut MergedPlan,
    effective: &mut Vec<(String, PlanSlice)>,
) {
    plan.complete = false;
    if let Some(old) = accepted.get(controller) {
        effective.push((controller.to_owned(), old.clone()));
    }
}

fn problem(id: String, state: ResourceState, message: String) -> ResourceReport {
    ResourceReport {
        id,
        state,
        message,
        percent: None,
        observed: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omtd_crds::plan::ServiceState;

    fn file(path: &str, content: &str) -> FileSpec {
        FileSpec::plain(path, content)
    }

    fn slice(controller: &str, token: i64, files: Vec<FileSpec>) -> (String, Vec<u8>) {
        let s = PlanSlice {
            controller: controller.into(),
            fencing_token: token,
            files,
            ..Default::default()
        };
        (controller.to_owned(), serde_json::to_vec(&s).unwrap())
    }

    #[test]
    fn slices_merge() {
        let mut m = Merger::new(0);
        let raw = BTreeMap::from([
            slice("node", 3, vec![file("/etc/mesos/zk", "zk://m:2181/mesos")]),
            slice(
                "credentials",
                3,
                vec![file("/etc/chronos/conf/http_credentials", "u:p")],
            ),
        ]);
        let p = m.merge(&raw);
        assert_eq!(p.files.len(), 2);
        assert!(p.complete && p.problems.is_empty());
        assert_eq!(p.applied.get("node"), Some(&3));
    }

    #[test]
    fn a_stale_slice_is_ignored_and_the_accepted_one_stays() {
        let mut m = Merger::new(0);
        m.merge(&BTreeMap::from([
            slice("node", 3, vec![file("/a", "v1")]),
            slice("storage", 3, vec![]),
        ]));
        // A new leader (token 5) writes storage; a deposed one (token 3) rewrites node.
        let p = m.merge(&BTreeMap::from([
            slice("node", 3, vec![file("/a", "evil")]),
            slice("storage", 5, vec![file("/b", "x")]),
        ]));
        assert_eq!(m.highest(), 5);
        let a = p.files.iter().find(|f| f.path == "/a").unwrap();
        assert_eq!(a.content, "v1", "the accepted slice stays in force");
        assert!(!p.complete);
        assert_eq!(p.problems.len(), 1);
        assert_eq!(p.problems[0].id, "slice:node");
        assert_eq!(p.problems[0].state, ResourceState::Refused);
        // A restarted agent that saw token 5 before ignores a token-3 slice it never accepted.
        let mut fresh = Merger::new(5);
        let p = fresh.merge(&BTreeMap::from([slice(
            "node",
            3,
            vec![file("/a", "evil")],
        )]));
        assert!(p.files.is_empty());
    }

    #[test]
    fn two_owners_are_a_conflict_never_a_pick() {
        let mut m = Merger::new(0);
        let mut a = PlanSlice {
            controller: "node".into(),
            fencing_token: 1,
            files: vec![file("/etc/mesos/zk", "a")],
            ..Default::default()
        };
        a.services.push(ServiceSpec {
            name: "mesos-master".into(),
            state: ServiceState::Running,
            enabled: true,
            restart_on: vec![],
            restart_token: None,
            after: vec![],
        });
        let mut b = a.clone();
        b.controller = "leader-guard".into();
        b.files = vec![file("/etc/mesos/zk", "b"), file("/other", "c")];
        b.services[0].state = ServiceState::Masked;
        let raw = BTreeMap::from([
            ("node".to_owned(), serde_json::to_vec(&a).unwrap()),
            ("leader-guard".to_owned(), serde_json::to_vec(&b).unwrap()),
        ]);
        let p = m.merge(&raw);
        let ids: Vec<&str> = p.problems.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, vec!["file:/etc/mesos/zk", "service:mesos-master"]);
        assert!(p
            .problems
            .iter()
            .all(|r| r.state == ResourceState::Conflict));
        assert!(p.problems[0].message.contains("leader-guard and node"));
        assert_eq!(p.files.len(), 1);
        assert_eq!(p.files[0].path, "/other");
        assert!(p.services.is_empty());
        assert!(!p.complete);
    }

    #[test]
    fn unreadable_and_deleted_slices() {
        let mut m = Merger::new(0);
        m.merge(&BTreeMap::from([slice("node", 1, vec![file("/a", "1")])]));
        let p = m.merge(&BTreeMap::from([(
            "node".to_owned(),
            b"{not json".to_vec(),
        )]));
        assert_eq!(p.files.len(), 1, "last accepted slice kept");
        assert_eq!(p.problems[0].state, ResourceState::Failed);
        // The last slice deleted: no plan at all is a hold, never "remove everything".
        let p = m.merge(&BTreeMap::new());
        assert!(p.files.is_empty() && !p.complete);
    }

    #[test]
    fn no_slice_at_all_holds_the_host_and_says_where_it_looked() {
        let mut m = Merger::new(0).for_node("exe.lab", "typo");
        let p = m.merge(&BTreeMap::new());
        assert!(
            !p.complete,
            "no plan must not read as an empty complete plan"
        );
        assert_eq!(p.problems.len(), 1);
        assert_eq!(p.problems[0].id, HOLD_ID);
        assert_eq!(p.problems[0].state, ResourceState::Refused);
        assert_eq!(
            p.problems[0].message,
            "no plan for exe.lab in cluster typo: holding the host as it is"
        );
        // A node whose slices exist but list nothing is a real, complete (empty) plan.
        let p = m.merge(&BTreeMap::from([slice("node", 1, vec![])]));
        assert!(p.complete && p.problems.is_empty());
    }
}
