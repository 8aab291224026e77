//! Parsers never panic (issue #21 item 9): everything a host or the store hands omtd goes
//! through a parser that returns, never panics, on any input, and says `Err` (not a
//! silent default) for a document that is cut short.
//!
//! Public entry points are exercised here; the private ones (exports adoption, Mesos state
//! JSON) have in-crate `never_panic` modules next to them. Case count: proptest's default
//! (256 per property), or `PROPTEST_CASES` from the environment for the long run that
//! `docs/reliability.md` records.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use omtd::agent::drivers::linux::{block, containers, fstab, services};
use omtd::agent::merge::Merger;
use omtd::host::fs::parse_blkid_tags;
use omtd::host::lvm::report::{self, ReportFormat, ReportKind};
use omtd::host::lvm::{parse_progress, report::lvm_version};
use omtd::probes::zookeeper::{entry_sequence, master_name, ZkTarget};
use omtd::probes::HttpTarget;
use omtd::resources::keys::Keys;
use omtd::resources::repo::decode;
use omtd::runtime::snapshot::Changed;
use omtd_crds::manifest;
use omtd_crds::plan::{
    ContainerSpec, Ensure, ExportSpec, FileSpec, FilesystemSpec, LogicalVolumeSpec, MountSpec,
    PhysicalVolumeSpec, PlanSlice, Report, ResourceReport, ResourceState, ServiceSpec,
    ServiceState,
};
use omtd_crds::plan_manifest::{PlanManifest, HOLD_ID, MANIFEST_KEY};
use omtd_test_support::never_panic::{any_bytes, any_text, near_bytes, near_text, truncated};
use proptest::prelude::*;

const CLUSTER_YAML: &str = include_str!("../deploy/examples/cluster.yaml");

/// Leaks generated samples so strategies can hold them as `&'static str`.
fn leak(samples: Vec<String>) -> &'static [&'static str] {
    let v: Vec<&'static str> = samples
        .into_iter()
        .map(|s| &*Box::leak(s.into_boxed_str()))
        .collect();
    Box::leak(v.into_boxed_slice())
}

/// Stored spec values, as the operator writes them (one per object of the example cluster).
fn stored_specs() -> &'static [&'static str] {
    static S: OnceLock<&'static [&'static str]> = OnceLock::new();
    S.get_or_init(|| {
        let objects = manifest::parse(CLUSTER_YAML).expect("the example cluster parses");
        leak(objects.iter().map(|o| o.to_value().to_string()).collect())
    })
}

/// Manifests: the example as YAML, and as a JSON array (what `omtd get -o json` prints).
fn manifests_json() -> &'static [&'static str] {
    static S: OnceLock<&'static [&'static str]> = OnceLock::new();
    S.get_or_init(|| {
        let objects = manifest::parse(CLUSTER_YAML).expect("the example cluster parses");
        let all: Vec<serde_json::Value> = objects.iter().map(|o| o.to_value()).collect();
        let one = all[1].to_string();
        leak(vec![serde_json::Value::Array(all).to_string(), one])
    })
}

fn manifests() -> &'static [&'static str] {
    static S: OnceLock<&'static [&'static str]> = OnceLock::new();
    S.get_or_init(|| {
        let mut v = vec![CLUSTER_YAML.to_owned()];
        v.extend(manifests_json().iter().map(|s| (*s).to_owned()));
        leak(v)
    })
}

/// A plan slice with one resource of every kind.
fn slices() -> &'static [&'static str] {
    static S: OnceLock<&'static [&'static str]> = OnceLock::new();
    S.get_or_init(|| {
        let full = PlanSlice {
            controller: "storage".into(),
            fencing_token: 42,
            files: vec![FileSpec::plain(
                "/etc/mesos/zk",
                "zk://10.0.0.12:2181/mesos",
            )],
            services: vec![ServiceSpec {
                name: "nfs-server".into(),
                state: ServiceState::Running,
                enabled: true,
                restart_on: vec!["/etc/exports".into()],
                restart_token: Some("t1".into()),
                after: vec!["network.target".into()],
                slow_start: false,
            }],
            physical_volumes: vec![PhysicalVolumeSpec {
                device: "/dev/vdd".into(),
                volume_group: "galaxy".into(),
                ensure: Ensure::Present,
            }],
            logical_volumes: vec![LogicalVolumeSpec {
                volume_group: "galaxy".into(),
                name: "database".into(),
                grow_to_fill: true,
            }],
            filesystems: vec![FilesystemSpec {
                device: "/dev/galaxy/database".into(),
                fstype: "ext4".into(),
            }],
            mounts: vec![MountSpec {
                source: "10.0.0.10:/srv/executor/database".into(),
                target: "/srv/executor/database".into(),
                fstype: "nfs".into(),
                options: "defaults,_netdev".into(),
                dump: 0,
                pass: 0,
                ensure: Ensure::Present,
            }],
            exports: vec![ExportSpec {
                path: "/srv/executor/database".into(),
                client: "10.0.0.11".into(),
                options: "rw,sync,no_root_squash".into(),
            }],
            containers: vec![ContainerSpec {
                name: "registry".into(),
                image: "registry:2".into(),
                ports: vec!["127.0.0.1:5000:5000".into()],
                volumes: vec!["/mnt/registry:/var/lib/registry".into()],
                ensure: Ensure::Present,
            }],
        };
        let small = PlanSlice {
            controller: "node".into(),
            fencing_token: 7,
            ..Default::default()
        };
        leak(vec![
            serde_json::to_string(&full).expect("serialises"),
            serde_json::to_string(&small).expect("serialises"),
        ])
    })
}

fn reports() -> &'static [&'static str] {
    static S: OnceLock<&'static [&'static str]> = OnceLock::new();
    S.get_or_init(|| {
        let r = Report {
            node: "executor.omtd".into(),
            applied: BTreeMap::from([("storage".into(), 42)]),
            slices: BTreeMap::from([("storage".into(), "0123abcd".into())]),
            converged: false,
            resources: vec![ResourceReport {
                id: "pv:/dev/vdd".into(),
                state: ResourceState::Progressing,
                message: "pvmove".into(),
                percent: Some(42),
                observed: BTreeMap::from([("pv_free".into(), "0".into())]),
            }],
            corrective_changes: 3,
            intentional_changes: 9,
            unmanaged: vec!["/etc/apache2/sites-enabled/old.conf".into()],
            epoch: "0000019ad1e3c000-5f2a9c01d4e6b7a8".into(),
        };
        leak(vec![serde_json::to_string(&r).expect("serialises")])
    })
}

/// Plan manifests as the operator writes them: one vouching for a slice, one naming an
/// undecided controller and one that plans nothing.
fn plan_manifests() -> &'static [&'static str] {
    static S: OnceLock<&'static [&'static str]> = OnceLock::new();
    S.get_or_init(|| {
        let slice: PlanSlice = serde_json::from_str(slices()[0]).expect("sample slice");
        let mut full = PlanManifest::naming([&slice]);
        full.epoch = "0000019ad1e3c000-5f2a9c01d4e6b7a8".into();
        let mut undecided = full.clone();
        undecided.controllers.insert("node".into());
        let mut nothing = full.clone();
        nothing.decide("storage", None);
        leak(
            [full, undecided, nothing]
                .iter()
                .map(|m| serde_json::to_string(m).expect("serialises"))
                .collect(),
        )
    })
}

const LVM_JSON: &[&str] = &[
    include_str!("../src/host/lvm/fixtures/pvs.json"),
    include_str!("../src/host/lvm/fixtures/vgs.json"),
    include_str!("../src/host/lvm/fixtures/lvs.json"),
    include_str!("../src/host/lvm/fixtures/lvs_empty.json"),
    include_str!("../src/host/lvm/fixtures/segments.json"),
];
const LVM_COLUMNS: &[&str] = &[
    include_str!("../src/host/lvm/fixtures/pvs.txt"),
    include_str!("../src/host/lvm/fixtures/vgs.txt"),
    include_str!("../src/host/lvm/fixtures/lvs.txt"),
    include_str!("../src/host/lvm/fixtures/segments.txt"),
];
const LVM_OTHER: &[&str] = &[
    include_str!("../src/host/lvm/fixtures/lvm_version.txt"),
    "  /dev/vdd: Moved: 42.00%\n",
];

const INSPECT: &[&str] = &[
    r#"[{"Id":"x","Config":{"Image":"registry:2"},"State":{"Running":false},
        "HostConfig":{"Binds":["/mnt/registry:/var/lib/registry"],
        "PortBindings":{"5000/tcp":[{"HostIp":"127.0.0.1","HostPort":"5000"}]}}}]"#,
    r#"[{"Config":{"Image":"google/cadvisor"},"State":{"Running":true},
        "HostConfig":{"Binds":null,"PortBindings":{"8080/tcp":[{"HostIp":"","HostPort":"8080"}]}}}]"#,
    "[]",
];

const MANAGED: &[&str] = &[
    "# static\nUUID=1 / ext4 defaults 0 1\n# BEGIN omtd managed lines: change the desired state, not these lines\n10.0.0.10:/srv/executor/database /srv/executor/database nfs defaults 0 0\n# END omtd managed lines\ntmpfs /tmp tmpfs defaults 0 0\n",
    "/srv/executor/database 10.0.0.11(rw,sync) 10.0.0.12(ro)\n# BEGIN omtd managed lines: change the desired state, not these lines\n/srv/x 10.0.0.11(rw)\n",
    "/srv/a\\040b 10.0.0.1(rw)\n#comment\n\n",
];

const HOST_TEXT: &[&str] = &[
    "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n",
    "LoadState=masked\nActiveState=inactive\nUnitFileState=masked\n",
    "/dev/galaxy/database: UUID=\"1b2c\" BLOCK_SIZE=\"4096\" TYPE=\"ext4\" LABEL=\"a \\\"q\\\" \\\\\"\n",
];

const MASTER_INFO: &[&str] = &[
    r#"{"hostname":"manager.omtd","address":{"hostname":"manager.omtd","ip":"10.0.0.12","port":5050},"pid":"master@10.0.0.12:5050","id":"x","port":5050}"#,
    r#"{"pid":"master@10.0.0.12:5050"}"#,
];

const URLS: &[&str] = &[
    "zk://10.0.0.12:2181,10.0.0.13:2181/mesos",
    "http://user:p%40ss@10.0.0.12:5050/",
    "https://10.0.0.13:4400",
];

fn lvm_kind() -> impl Strategy<Value = ReportKind> {
    prop_oneof![
        Just(ReportKind::Pv),
        Just(ReportKind::Vg),
        Just(ReportKind::Lv),
        Just(ReportKind::Segment)
    ]
}

/// Parses a report and converts its rows, as `host::lvm` does with lvm2's output.
fn lvm_all(kind: ReportKind, format: ReportFormat, text: &str) -> Result<(), report::ReportError> {
    let rows = report::parse(kind, format, text)?;
    match kind {
        ReportKind::Pv => report::pvs(&rows).map(drop),
        ReportKind::Vg => report::vgs(&rows).map(drop),
        ReportKind::Lv => report::lvs(&rows).map(drop),
        ReportKind::Segment => report::segments(&rows).map(drop),
    }
}

/// `bytes` as the storage slice, with a manifest naming the slice it would be if readable
/// (so the merge reaches the slice's parse), as the agent finds them under `plans/<node>/`.
fn merge_one(bytes: &[u8]) -> omtd::agent::merge::MergedPlan {
    Merger::new(0)
        .for_node("executor.omtd", "omtd")
        .merge(&with_manifest(bytes))
}

fn with_manifest(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let named: Vec<PlanSlice> = serde_json::from_slice(bytes).into_iter().collect();
    let mut manifest = PlanManifest::naming(&named);
    manifest.controllers.insert("storage".into());
    manifest
        .slices
        .entry("storage".into())
        .or_insert(Some("?".into()));
    BTreeMap::from([
        ("storage".to_owned(), bytes.to_vec()),
        (
            MANIFEST_KEY.to_owned(),
            serde_json::to_vec(&manifest).unwrap_or_default(),
        ),
    ])
}

/// A manifest that parses gives a verdict on any set of slices, never a panic.
fn manifest_check(bytes: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<PlanManifest>(bytes) {
        let _ = m.check(&BTreeMap::new());
    }
    let raw = BTreeMap::from([(MANIFEST_KEY.to_owned(), bytes.to_vec())]);
    let p = Merger::new(0).merge(&raw);
    let _ = p.complete;
}

/// Managed-block parsing and rendering with fstab adoption, and the round trip the agent
/// relies on: the owned lines it writes are the owned lines it reads back.
fn managed_block(text: &str, lines: &[String]) -> Result<(), TestCaseError> {
    let _ = block::owned(text);
    let targets: Vec<String> = lines.iter().filter_map(|l| fstab::target(l)).collect();
    let out = block::render(text, lines, fstab::adopt(&targets));
    if !lines.is_empty() {
        prop_assert_eq!(&block::owned(&out), lines, "rendered:\n{}", out);
    }
    for l in text.lines() {
        let _ = fstab::target(l);
        let _ = fstab::unescape(l);
    }
    Ok(())
}

/// Owned lines as the agent renders them: one line each, never a marker.
fn owned_lines() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        any_text().prop_map(|s| {
            s.replace(['\n', '\r'], " ")
                .replace(block::BEGIN, "")
                .replace(block::END, "")
        }),
        0..4,
    )
}

proptest! {
    #[test]
    fn manifests_any(s in any_text()) {
        let _ = manifest::parse(&s);
    }

    #[test]
    fn manifests_near(s in near_text(manifests())) {
        let _ = manifest::parse(&s);
    }

    #[test]
    fn manifests_truncated_are_errors(s in truncated(manifests_json())) {
        prop_assert!(manifest::parse(&s).is_err(), "accepted: {}", s);
    }

    #[test]
    fn stored_specs_any(b in any_bytes()) {
        let _ = decode("/omtd/spec/node/x", &b);
    }

    #[test]
    fn stored_specs_near(b in near_bytes(stored_specs())) {
        let _ = decode("/omtd/spec/node/x", &b);
    }

    #[test]
    fn stored_specs_truncated_are_errors(s in truncated(stored_specs())) {
        prop_assert!(decode("/omtd/spec/node/x", s.as_bytes()).is_err(), "accepted: {}", s);
    }

    #[test]
    fn store_keys_any(s in any_text(), tail in any_text()) {
        let keys = Keys::for_cluster("omtd");
        for key in [s.clone(), format!("{}{tail}", keys.prefix()), format!("{}{tail}", keys.specs())] {
            let _ = Changed::parse(&keys, &key);
            let _ = keys.parse_object_key(&key);
        }
    }

    #[test]
    fn plan_slices_any(b in any_bytes()) {
        let _ = merge_one(&b);
    }

    #[test]
    fn plan_slices_near(b in near_bytes(slices())) {
        let _ = merge_one(&b);
    }

    /// An unreadable slice holds the host (the plan is incomplete, so nothing is removed on
    /// its account), and the plan accepted before it stays in force.
    #[test]
    fn plan_slices_truncated_hold_the_last_good_one(s in truncated(slices())) {
        let good = slices()[0];
        let mut merger = Merger::new(0);
        let before = merger.merge(&with_manifest(good.as_bytes()));
        prop_assert!(before.complete, "{:?}", before.problems);
        let mut raw = with_manifest(good.as_bytes());
        raw.insert("storage".to_owned(), s.clone().into_bytes());
        let after = merger.merge(&raw);
        prop_assert!(!after.complete, "accepted: {}", s);
        prop_assert!(after.problems.iter().any(|p| p.id == HOLD_ID && p.state == ResourceState::Failed));
        prop_assert_eq!(after.exports, before.exports);
        prop_assert_eq!(after.mounts, before.mounts);
    }

    #[test]
    fn plan_manifests_any(b in any_bytes()) {
        manifest_check(&b);
    }

    #[test]
    fn plan_manifests_near(b in near_bytes(plan_manifests())) {
        manifest_check(&b);
    }

    #[test]
    fn plan_manifests_truncated_are_errors(s in truncated(plan_manifests())) {
        prop_assert!(serde_json::from_slice::<PlanManifest>(s.as_bytes()).is_err(), "accepted: {}", s);
    }

    #[test]
    fn reports_any(b in any_bytes()) {
        let _ = serde_json::from_slice::<Report>(&b);
    }

    #[test]
    fn reports_near(b in near_bytes(reports())) {
        let _ = serde_json::from_slice::<Report>(&b);
    }

    #[test]
    fn reports_truncated_are_errors(s in truncated(reports())) {
        prop_assert!(serde_json::from_slice::<Report>(s.as_bytes()).is_err(), "accepted: {}", s);
    }

    #[test]
    fn lvm_any(kind in lvm_kind(), s in any_text()) {
        let _ = lvm_all(kind, ReportFormat::Json, &s);
        let _ = lvm_all(kind, ReportFormat::Columns, &s);
        let _ = lvm_version(&s);
        for l in s.lines() {
            let _ = parse_progress(l);
        }
    }

    #[test]
    fn lvm_json_near(kind in lvm_kind(), s in near_text(LVM_JSON)) {
        let _ = lvm_all(kind, ReportFormat::Json, &s);
    }

    #[test]
    fn lvm_json_truncated_are_errors(kind in lvm_kind(), s in truncated(LVM_JSON)) {
        prop_assert!(report::parse(kind, ReportFormat::Json, &s).is_err(), "accepted: {}", s);
    }

    #[test]
    fn lvm_columns_near(kind in lvm_kind(), s in near_text(LVM_COLUMNS), o in near_text(LVM_OTHER)) {
        let _ = lvm_all(kind, ReportFormat::Columns, &s);
        let _ = lvm_version(&o);
        for l in o.lines() {
            let _ = parse_progress(l);
        }
    }

    /// A line with the wrong number of fields is an error, wherever it stands.
    #[test]
    fn lvm_columns_short_or_long_lines_are_errors(
        kind in lvm_kind(),
        extra in prop_oneof![1usize..6, Just(0)],
        cut in any::<bool>(),
        good in proptest::sample::select(LVM_COLUMNS),
    ) {
        let n = kind.fields().len();
        let count = if cut { n.saturating_sub(1 + extra % n) } else { n + 1 + extra };
        let bad: Vec<String> = (0..count.max(1)).map(|i| format!("f{i}")).collect();
        let bad = bad.join("|");
        prop_assume!(bad.split('|').count() != n);
        let text = format!("{good}\n{bad}\n");
        prop_assert!(report::parse(kind, ReportFormat::Columns, &text).is_err(), "accepted: {}", text);
    }

    #[test]
    fn managed_blocks_any(s in any_text(), lines in owned_lines()) {
        managed_block(&s, &lines)?;
    }

    #[test]
    fn managed_blocks_near(s in near_text(MANAGED), lines in owned_lines()) {
        managed_block(&s, &lines)?;
    }

    #[test]
    fn docker_inspect_any(s in any_text()) {
        let _ = containers::parse_inspect(&s);
    }

    #[test]
    fn docker_inspect_near(s in near_text(INSPECT)) {
        let _ = containers::parse_inspect(&s);
    }

    #[test]
    fn docker_inspect_truncated_are_errors(s in truncated(INSPECT)) {
        prop_assert!(containers::parse_inspect(&s).is_err(), "accepted: {}", s);
    }

    #[test]
    fn host_text_any(s in any_text()) {
        let _ = services::parse_systemctl_show(&s);
        let _ = parse_blkid_tags(&s);
    }

    #[test]
    fn host_text_near(s in near_text(HOST_TEXT)) {
        let _ = services::parse_systemctl_show(&s);
        let _ = parse_blkid_tags(&s);
    }

    #[test]
    fn zookeeper_master_info_any(b in any_bytes(), name in any_text()) {
        let _ = master_name(&b);
        let _ = entry_sequence(&name);
    }

    #[test]
    fn zookeeper_master_info_near(b in near_bytes(MASTER_INFO)) {
        let _ = master_name(&b);
    }

    #[test]
    fn zookeeper_master_info_truncated_are_errors(s in truncated(MASTER_INFO)) {
        prop_assert!(master_name(s.as_bytes()).is_err(), "accepted: {}", s);
    }

    #[test]
    fn probe_urls(s in any_text(), n in near_text(URLS)) {
        for u in [&s, &n] {
            let _ = ZkTarget::parse(u);
            let _ = HttpTarget::parse(u);
        }
    }
}
