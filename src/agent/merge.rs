//! Merging a node's plan slices into one plan.
//!
//! - **A plan is complete only when the operator says so.** The operator writes, with every
//!   change to one of the node's slices and in the same transaction, a manifest
//!   ([`PlanManifest`]) naming each slice's digest and its own fencing token. The agent
//!   takes its plan as complete only when that manifest is readable, comes from the current
//!   leader, and names exactly the readable slices it found.
//! - **Holding.** Anything else — no key at all (a mistyped `--cluster` or `--node`, an
//!   emptied store), slices without a manifest, an unreadable manifest or slice, a manifest
//!   from a deposed leader, slices that differ from it — is a hold ([`HOLD_ID`]): the last
//!   complete plan stays in force (drift is still repaired back to it; with none, nothing
//!   is applied), marked incomplete so nothing it does not list is removed, and the report
//!   says why. Removal needs a complete plan that no longer lists the resource.
//! - **Fencing.** The agent remembers the highest manifest token it has seen; a manifest
//!   with a lower one was written by a deposed leader. The manifest vouches for each slice
//!   by digest, so a slice unchanged since an earlier term is still in force.
//! - **Conflicts.** Two owners of one resource (file path, service, PV device, LV, filesystem
//!   device, mount target, export path+client, container name) is a conflict: the resource is
//!   left out of the plan and reported `Conflict`, never resolved by picking one, and the
//!   plan is incomplete.

use std::collections::{BTreeMap, BTreeSet};

use omtd_crds::plan::{
    ContainerSpec, ExportSpec, FileSpec, FilesystemSpec, LogicalVolumeSpec, MountSpec,
    PhysicalVolumeSpec, PlanSlice, ResourceReport, ResourceState, ServiceSpec,
};
use omtd_crds::plan_manifest::{newer_epoch, PlanManifest, MANIFEST_KEY};

use crate::store::sealed::sealed_value_problem;

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
    /// The cluster epoch the agent follows (its manifest's, once one was accepted).
    pub epoch: String,
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

/// Report id of the hold taken when the node has no complete plan (see the module comment).
pub use omtd_crds::plan_manifest::HOLD_ID;

/// Remembers the last complete plan and the highest fencing token seen.
#[derive(Debug, Default)]
pub struct Merger {
    /// The last complete plan: what stays in force while the agent holds.
    last_good: Option<MergedPlan>,
    /// The highest fencing token seen in the current epoch.
    highest: i64,
    /// The cluster epoch followed: a manifest of a newer one (a store restored, then
    /// `omtd epoch renew`) starts the token count again; an older one is refused.
    epoch: String,
    /// Where the plan was looked for, named in the hold messages.
    node: String,
    cluster: String,
}

impl Merger {
    /// `highest_seen`: the highest token known from before (the agent's last report), so a
    /// restarted agent still refuses a deposed leader's plan.
    pub fn new(highest_seen: i64) -> Self {
        Merger {
            highest: highest_seen,
            ..Default::default()
        }
    }

    /// The epoch of that token (the agent's last report).
    pub fn in_epoch(mut self, epoch: &str) -> Self {
        self.epoch = epoch.to_owned();
        self
    }

    /// Name the node and cluster whose plan this is, for the hold messages.
    pub fn for_node(mut self, node: &str, cluster: &str) -> Self {
        self.node = node.to_owned();
        self.cluster = cluster.to_owned();
        self
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub fn highest(&self) -> i64 {
        self.highest
    }

    /// Merge what is now in the store under `plans/<node>/`, keyed by the last segment of
    /// the key (a controller's slice, or the [`MANIFEST_KEY`]), as raw JSON.
    pub fn merge(&mut self, raw: &BTreeMap<String, Vec<u8>>) -> MergedPlan {
        match self.vouched(raw) {
            Ok(slices) => {
                let mut plan = combine(slices);
                plan.epoch.clone_from(&self.epoch);
                self.last_good = Some(plan.clone());
                plan
            }
            Err((state, why)) => self.hold(state, why),
        }
    }

    /// The slices of a complete plan: a readable manifest from the current leader that
    /// names exactly the readable slices found. Anything else is a reason to hold.
    fn vouched(
        &mut self,
        raw: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Vec<(String, PlanSlice)>, (ResourceState, String)> {
        let (node, cluster) = self.place();
        let (node, cluster) = (node.to_owned(), cluster.to_owned());
        let Some(bytes) = raw.get(MANIFEST_KEY) else {
            return Err(if raw.is_empty() {
                (
                    ResourceState::Refused,
                    format!("no plan for {node} in cluster {cluster}: holding the host as it is"),
                )
            } else {
                (
                    ResourceState::Refused,
                    format!(
                        "the plan for {node} in cluster {cluster} has slices but no manifest \
                         (an operator older than this agent, or keys deleted by hand): \
                         holding the host as it is"
                    ),
                )
            });
        };
        if let Some(problem) = sealed_value_problem(bytes) {
            return Err((
                ResourceState::Failed,
                format!("the plan manifest for {node} is {problem}: holding the host as it is"),
            ));
        }
        let manifest: PlanManifest = serde_json::from_slice(bytes).map_err(|e| {
            (
                ResourceState::Failed,
                format!("unreadable plan manifest for {node}, holding the host as it is: {e}"),
            )
        })?;
        if newer_epoch(&self.epoch, &manifest.epoch) {
            return Err((
                ResourceState::Refused,
                format!(
                    "plan manifest of an older cluster epoch ({:?}, this agent follows {:?}): \
                     holding the host as it is",
                    manifest.epoch, self.epoch
                ),
            ));
        }
        if manifest.epoch == self.epoch && manifest.fencing_token < self.highest {
            return Err((
                ResourceState::Refused,
                format!(
                    "plan manifest written by a deposed leader (fencing token {} < {}): \
                     holding the host as it is (after a store restore: `omtd epoch renew`)",
                    manifest.fencing_token, self.highest
                ),
            ));
        }
        // Same epoch and a token at least as high, or a newer epoch: its leader counts
        // tokens afresh.
        self.epoch.clone_from(&manifest.epoch);
        self.highest = manifest.fencing_token;
        let mut slices = BTreeMap::new();
        for (controller, bytes) in raw.iter().filter(|(k, _)| *k != MANIFEST_KEY) {
            if let Some(problem) = sealed_value_problem(bytes) {
                return Err((
                    ResourceState::Failed,
                    format!(
                        "the plan slice of {controller} is {problem}: holding the host as it is"
                    ),
                ));
            }
            let slice: PlanSlice = serde_json::from_slice(bytes).map_err(|e| {
                (
                    ResourceState::Failed,
                    format!(
                        "unreadable plan slice of {controller}, holding the host as it is: {e}"
                    ),
                )
            })?;
            slices.insert(controller.clone(), slice);
        }
        manifest.check(&slices).map_err(|m| {
            (
                ResourceState::Refused,
                format!(
                    "the plan for {node} does not match its manifest ({m}): holding the \
                     host as it is"
                ),
            )
        })?;
        Ok(slices.into_iter().collect())
    }

    /// The node and cluster, as named in hold messages.
    fn place(&self) -> (&str, &str) {
        fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
            if s.is_empty() {
                default
            } else {
                s
            }
        }
        (
            or(&self.node, "this node"),
            or(&self.cluster, "this cluster"),
        )
    }

    /// Holding: the last complete plan accepted stays in force (so drift is still repaired
    /// back to it), marked incomplete so nothing it does not list is removed; with none,
    /// nothing is applied at all.
    fn hold(&self, state: ResourceState, why: String) -> MergedPlan {
        let mut plan = self.last_good.clone().unwrap_or_default();
        plan.epoch.clone_from(&self.epoch);
        plan.complete = false;
        plan.problems.push(problem(HOLD_ID.to_owned(), state, why));
        plan
    }
}

/// One plan from the vouched slices. Two owners of one resource is a conflict: it is left
/// out, and the plan is incomplete.
fn combine(effective: Vec<(String, PlanSlice)>) -> MergedPlan {
    let mut plan = MergedPlan {
        complete: true,
        ..Default::default()
    };
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

    fn slice(controller: &str, token: i64, files: Vec<FileSpec>) -> PlanSlice {
        PlanSlice {
            controller: controller.into(),
            fencing_token: token,
            files,
            ..Default::default()
        }
    }

    /// The keys under `plans/<node>/` as the operator writes them: the slices and a
    /// manifest (token `token`) naming exactly them.
    fn plan(token: i64, slices: &[PlanSlice]) -> BTreeMap<String, Vec<u8>> {
        let mut manifest = PlanManifest {
            fencing_token: token,
            ..Default::default()
        };
        let mut raw = BTreeMap::new();
        for s in slices {
            manifest.controllers.insert(s.controller.clone());
            manifest.decide(&s.controller, Some(s));
            raw.insert(s.controller.clone(), serde_json::to_vec(s).unwrap());
        }
        raw.insert(
            MANIFEST_KEY.to_owned(),
            serde_json::to_vec(&manifest).unwrap(),
        );
        raw
    }

    fn hold(p: &MergedPlan) -> &ResourceReport {
        assert!(!p.complete, "a hold is never a complete plan");
        let h: Vec<_> = p.problems.iter().filter(|r| r.id == HOLD_ID).collect();
        assert_eq!(h.len(), 1, "one hold problem: {:?}", p.problems);
        h[0]
    }

    #[test]
    fn slices_merge() {
        let mut m = Merger::new(0);
        let raw = plan(
            3,
            &[
                slice("node", 3, vec![file("/etc/mesos/zk", "zk://m:2181/mesos")]),
                slice(
                    "credentials",
                    3,
                    vec![file("/etc/chronos/conf/http_credentials", "u:p")],
                ),
            ],
        );
        let p = m.merge(&raw);
        assert_eq!(p.files.len(), 2);
        assert!(p.complete && p.problems.is_empty());
        assert_eq!(p.applied.get("node"), Some(&3));
    }

    #[test]
    fn a_deposed_leaders_plan_is_ignored_and_the_accepted_one_stays() {
        let mut m = Merger::new(0);
        m.merge(&plan(
            3,
            &[
                slice("node", 3, vec![file("/a", "v1")]),
                slice("storage", 3, vec![]),
            ],
        ));
        // A new leader (token 5) wrote storage; its manifest vouches for node's slice of
        // the term before, unchanged.
        let p = m.merge(&plan(
            5,
            &[
                slice("node", 3, vec![file("/a", "v1")]),
                slice("storage", 5, vec![file("/b", "x")]),
            ],
        ));
        assert!(p.complete, "{:?}", p.problems);
        assert_eq!(m.highest(), 5);
        // Then a deposed one (token 3) rewrites node and its manifest.
        let p = m.merge(&plan(
            3,
            &[
                slice("node", 3, vec![file("/a", "evil")]),
                slice("storage", 5, vec![file("/b", "x")]),
            ],
        ));
        let a = p.files.iter().find(|f| f.path == "/a").unwrap();
        assert_eq!(a.content, "v1", "the accepted plan stays in force");
        assert_eq!(hold(&p).state, ResourceState::Refused);
        assert!(hold(&p).message.contains("deposed leader"));
        // A restarted agent that saw token 5 before ignores a token-3 plan it never accepted.
        let mut fresh = Merger::new(5);
        let p = fresh.merge(&plan(3, &[slice("node", 3, vec![file("/a", "evil")])]));
        assert!(p.files.is_empty());
        hold(&p);
    }

    #[test]
    fn two_owners_are_a_conflict_never_a_pick() {
        let mut m = Merger::new(0);
        let mut a = slice("node", 1, vec![file("/etc/mesos/zk", "a")]);
        a.services.push(ServiceSpec {
            name: "mesos-master".into(),
            state: ServiceState::Running,
            enabled: true,
            restart_on: vec![],
            restart_token: None,
            after: vec![],
            slow_start: false,
        });
        let mut b = a.clone();
        b.controller = "leader-guard".into();
        b.files = vec![file("/etc/mesos/zk", "b"), file("/other", "c")];
        b.services[0].state = ServiceState::Masked;
        let p = m.merge(&plan(1, &[a, b]));
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
    fn unreadable_and_deleted_slices_hold_the_last_good_plan() {
        let mut m = Merger::new(0);
        m.merge(&plan(1, &[slice("node", 1, vec![file("/a", "1")])]));
        let mut raw = plan(1, &[slice("node", 1, vec![file("/a", "1")])]);
        raw.insert("node".to_owned(), b"{not json".to_vec());
        let p = m.merge(&raw);
        assert_eq!(p.files.len(), 1, "last good plan kept");
        assert_eq!(hold(&p).state, ResourceState::Failed);
        // The slice deleted while the manifest still names it: a hold, never "remove".
        raw.remove("node");
        let p = m.merge(&raw);
        assert_eq!(p.files.len(), 1);
        assert!(hold(&p).message.contains("does not match its manifest"));
        // Everything deleted: still a hold.
        let p = m.merge(&BTreeMap::new());
        assert_eq!(p.files.len(), 1);
        hold(&p);
    }

    #[test]
    fn no_plan_at_all_holds_the_host_and_says_where_it_looked() {
        let mut m = Merger::new(0).for_node("exe.lab", "typo");
        let p = m.merge(&BTreeMap::new());
        assert!(p.files.is_empty());
        assert_eq!(p.problems.len(), 1);
        assert_eq!(hold(&p).state, ResourceState::Refused);
        assert_eq!(
            hold(&p).message,
            "no plan for exe.lab in cluster typo: holding the host as it is"
        );
        // Slices without a manifest are not a plan either.
        let mut raw = plan(1, &[slice("node", 1, vec![file("/a", "1")])]);
        raw.remove(MANIFEST_KEY);
        let p = m.merge(&raw);
        assert!(p.files.is_empty());
        assert!(hold(&p).message.contains("no manifest"));
        // A manifest that names slices listing nothing is a real, complete (empty) plan.
        let p = m.merge(&plan(1, &[slice("node", 1, vec![])]));
        assert!(p.complete && p.problems.is_empty());
    }

    fn in_epoch(mut raw: BTreeMap<String, Vec<u8>>, epoch: &str) -> BTreeMap<String, Vec<u8>> {
        let mut m: PlanManifest = serde_json::from_slice(&raw[MANIFEST_KEY]).unwrap();
        m.epoch = epoch.into();
        raw.insert(MANIFEST_KEY.into(), serde_json::to_vec(&m).unwrap());
        raw
    }

    #[test]
    fn a_new_epoch_starts_the_token_count_again_and_an_old_one_is_refused() {
        let a = "0000018f00000000-aa";
        let b = "0000019000000000-bb";
        let mut m = Merger::new(0);
        let p = m.merge(&in_epoch(
            plan(10, &[slice("node", 10, vec![file("/a", "1")])]),
            a,
        ));
        assert!(p.complete);
        assert_eq!(p.epoch, a);
        // The store restored from an older snapshot: lower tokens, same epoch: refused.
        let old = in_epoch(plan(3, &[slice("node", 3, vec![file("/a", "old")])]), a);
        let p = m.merge(&old);
        assert!(hold(&p).message.contains("omtd epoch renew"), "{p:?}");
        assert_eq!(p.files[0].content, "1");
        // `omtd epoch renew`: the restored leader writes in a new epoch, accepted.
        let renewed = in_epoch(plan(3, &[slice("node", 3, vec![file("/a", "2")])]), b);
        let p = m.merge(&renewed);
        assert!(p.complete, "{:?}", p.problems);
        assert_eq!((m.epoch(), m.highest()), (b, 3));
        // A deposed leader of the new epoch is still refused, and so is the old epoch.
        let p = m.merge(&in_epoch(plan(2, &[slice("node", 2, vec![])]), b));
        assert!(hold(&p).message.contains("deposed leader"));
        let p = m.merge(&in_epoch(plan(20, &[slice("node", 20, vec![])]), a));
        assert!(hold(&p).message.contains("older cluster epoch"));
        // A restarted agent seeded from its report keeps both.
        let mut again = Merger::new(3).in_epoch(b);
        let p = again.merge(&in_epoch(plan(20, &[slice("node", 20, vec![])]), a));
        hold(&p);
    }

    #[test]
    fn a_plan_sealed_with_a_key_this_agent_lacks_holds_and_names_the_key() {
        let mut m = Merger::new(0).for_node("n1", "c");
        m.merge(&plan(1, &[slice("node", 1, vec![file("/a", "1")])]));
        let sealed = b"omtd:enc:v1:k-2025:AAAA".to_vec();
        // A slice, then the manifest, sealed: the last good plan stays, the hold names it.
        let mut raw = plan(1, &[slice("node", 1, vec![file("/a", "1")])]);
        raw.insert("node".into(), sealed.clone());
        let p = m.merge(&raw);
        assert_eq!(p.files.len(), 1, "last good plan kept");
        let h = hold(&p);
        assert_eq!(h.state, ResourceState::Failed);
        assert!(
            h.message
                .contains("slice of node is sealed with key k-2025"),
            "{}",
            h.message
        );
        assert!(h.message.contains("--secrets-key"), "{}", h.message);
        raw.insert(MANIFEST_KEY.into(), sealed);
        let p = m.merge(&raw);
        assert!(hold(&p)
            .message
            .contains("manifest for n1 is sealed with key k-2025"));
    }

    #[test]
    fn an_undecided_controller_holds_the_plan() {
        let mut m = Merger::new(0);
        let mut raw = plan(2, &[slice("node", 2, vec![file("/a", "1")])]);
        let mut manifest: PlanManifest = serde_json::from_slice(&raw[MANIFEST_KEY]).unwrap();
        manifest.controllers.insert("storage".into());
        raw.insert(MANIFEST_KEY.into(), serde_json::to_vec(&manifest).unwrap());
        let p = m.merge(&raw);
        assert!(hold(&p).message.contains("waiting for storage"));
        assert!(p.files.is_empty());
    }
}
