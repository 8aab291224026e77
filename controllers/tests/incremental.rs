//! A controller with what it kept from its last passes plans exactly what it plans from
//! scratch (issue #11): random sequences of changes to the records (relabels, new
//! addresses, workers added and removed, removals started, Cluster ports, paths, role
//! assignments, ZooKeeper URL and front doors, registry users added, broken and removed,
//! the TLS credential written, changed and deleted, the editor's debug override), to the statuses (removal phases) and to what is observed (agents
//! gone, time passing), each followed by one pass with the kept state and one from
//! scratch, whose outcomes must be equal.
//!
//! Records change as the store changes them: a spec change moves the record's
//! `resourceVersion`, a status change does not. A second run keeps no resource versions at
//! all (records made by hand), where the kept state must print records whole.

mod common;

use common::*;
use omtd_controllers::crds::secret::SecretSource;
use omtd_controllers::crds::Object;
use omtd_controllers::removal::{RemovalPhase, DELETING_ANNOTATION, STATUS_KEY};
use omtd_controllers::{Kept, Observed, CONTROLLERS};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Change {
    Relabel {
        node: usize,
        value: u8,
    },
    Readdress {
        node: usize,
        octet: u8,
    },
    AddWorker {
        id: u8,
    },
    Remove {
        node: usize,
    },
    Deleting {
        node: usize,
    },
    /// A removal phase written into the status (0..4), or taken out (4).
    Phase {
        node: usize,
        phase: u8,
    },
    NodeExporterPort {
        port: u16,
    },
    MonitorOn {
        node: usize,
    },
    Zookeeper {
        set: bool,
    },
    AgentGone {
        node: usize,
    },
    /// A credential's secret rotated (`value` 0 renames its principal instead).
    Rotate {
        credential: usize,
        value: u8,
    },
    /// A registry user `registry-<id>` written (`kind` 0: a good one; 1: its principal
    /// shares `omtd` with the example's; 2: a principal htpasswd cannot hold; 3: a secret
    /// bcrypt would cut) or deleted (4).
    RegistryUser {
        id: u8,
        kind: u8,
    },
    /// The executor's path (where the database and tools shares live).
    ExecutorPath {
        alt: bool,
    },
    /// The Cluster assigns the editor role (the editor may then be a worker too).
    EditorOn {
        node: usize,
    },
    /// The front doors' TLS: 0 the Cluster names `front-tls` and it is written (with a CA),
    /// 1 its certificate and CA change, 2 the credential is deleted, 3 the Cluster names
    /// none; 4 the registry's front-door name changes.
    FrontDoorTls {
        kind: u8,
    },
    /// The editor's `omtd/debug-ui-access-until`: 0 until `secs` from now, 1 unparsable,
    /// 2 removed.
    DebugOverride {
        kind: u8,
        secs: u8,
    },
    Tick {
        secs: u8,
    },
    /// The last pass's statuses stored back, as the runtime would.
    StoreStatuses,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..4).prop_map(|(node, value)| Change::Relabel { node, value }),
        2 => (any::<usize>(), 20u8..40).prop_map(|(node, octet)| Change::Readdress { node, octet }),
        2 => (0u8..6).prop_map(|id| Change::AddWorker { id }),
        1 => any::<usize>().prop_map(|node| Change::Remove { node }),
        1 => any::<usize>().prop_map(|node| Change::Deleting { node }),
        2 => (any::<usize>(), 0u8..5).prop_map(|(node, phase)| Change::Phase { node, phase }),
        1 => (9100u16..9103).prop_map(|port| Change::NodeExporterPort { port }),
        1 => any::<usize>().prop_map(|node| Change::MonitorOn { node }),
        1 => any::<bool>().prop_map(|set| Change::Zookeeper { set }),
        1 => any::<usize>().prop_map(|node| Change::AgentGone { node }),
        2 => (any::<usize>(), 0u8..4).prop_map(|(credential, value)| Change::Rotate { credential, value }),
        2 => (0u8..4, 0u8..5).prop_map(|(id, kind)| Change::RegistryUser { id, kind }),
        1 => any::<bool>().prop_map(|alt| Change::ExecutorPath { alt }),
        1 => any::<usize>().prop_map(|node| Change::EditorOn { node }),
        2 => (0u8..5).prop_map(|kind| Change::FrontDoorTls { kind }),
        2 => (0u8..3, 1u8..90).prop_map(|(kind, secs)| Change::DebugOverride { kind, secs }),
        2 => (1u8..60).prop_map(|secs| Change::Tick { secs }),
        3 => Just(Change::StoreStatuses),
    ]
}

/// The cluster under change: its records, what is observed, the store's revision counter.
struct World {
    objects: Vec<Object>,
    observed: Observed,
    now: u64,
    revision: u64,
    versions: bool,
}

impl World {
    fn new(versions: bool) -> World {
        let objects = objects();
        let d = desired(&objects);
        let mut w = World {
            observed: healthy(&d, t(100)),
            objects,
            now: 100,
            revision: 0,
            versions,
        };
        for i in 0..w.objects.len() {
            w.bump(i);
        }
        w
    }

    /// What a spec write does to the record's resource version.
    fn bump(&mut self, i: usize) {
        self.revision += 1;
        let version = self.versions.then(|| self.revision.to_string());
        self.objects[i].meta_mut().resource_version = version;
    }

    /// The index of the `n`th Node record (wrapping), if any.
    fn node(&self, n: usize) -> Option<usize> {
        let nodes: Vec<usize> = (0..self.objects.len())
            .filter(|&i| matches!(self.objects[i], Object::Node(_)))
            .collect();
        (!nodes.is_empty()).then(|| nodes[n % nodes.len()])
    }

    fn cluster(&self) -> Option<usize> {
        (0..self.objects.len()).find(|&i| matches!(self.objects[i], Object::Cluster(_)))
    }

    fn apply(&mut self, change: &Change, last: Option<&omtd_controllers::Intent>) {
        match *change {
            Change::Relabel { node, value } => {
                if let Some(i) = self.node(node) {
                    let labels = &mut self.objects[i].meta_mut().labels;
                    match value {
                        0 => labels.clear(),
                        v => {
                            labels.insert("rack".into(), format!("r{v}"));
                        }
                    }
                    self.bump(i);
                }
            }
            Change::Readdress { node, octet } => {
                if let Some(i) = self.node(node) {
                    if let Object::Node(n) = &mut self.objects[i] {
                        n.spec.address = format!("10.0.1.{octet}");
                    }
                    self.bump(i);
                }
            }
            Change::AddWorker { id } => {
                let name = format!("extra{id}.omtd");
                if !self.objects.iter().any(|o| o.name() == name) {
                    let yaml = format!(
                        "apiVersion: omtd/v1\nkind: Node\nmetadata: {{name: {name}}}\n\
                         spec: {{address: 10.0.2.{id}, roles: [worker]}}\n"
                    );
                    self.objects.extend(parse(&yaml));
                    let i = self.objects.len() - 1;
                    self.bump(i);
                    self.observed.agents.insert(name.clone(), alive());
                    self.observed
                        .reports
                        .insert(name.clone(), report(&name, vec![]));
                }
            }
            Change::Remove { node } => {
                if let Some(i) = self.node(node) {
                    self.objects.remove(i);
                }
            }
            Change::Deleting { node } => {
                if let Some(i) = self.node(node) {
                    self.objects[i]
                        .meta_mut()
                        .annotations
                        .insert(DELETING_ANNOTATION.into(), "true".into());
                    self.bump(i);
                }
            }
            Change::Phase { node, phase } => {
                if let Some(i) = self.node(node) {
                    let phases = [
                        RemovalPhase::Draining,
                        RemovalPhase::Stopping,
                        RemovalPhase::Cleanup,
                        RemovalPhase::Released,
                    ];
                    let mut status = self.objects[i].status().cloned().unwrap_or_default();
                    match phases.get(usize::from(phase)) {
                        Some(p) => {
                            status.extra.insert(
                                STATUS_KEY.into(),
                                serde_json::json!({"phase": p, "since": "2023-11-14T22:13:20Z"}),
                            );
                        }
                        None => {
                            status.extra.remove(STATUS_KEY);
                        }
                    }
                    // A status write: the record's resource version stays.
                    self.objects[i].set_status(Some(status));
                }
            }
            Change::NodeExporterPort { port } => {
                if let Some(i) = self.cluster() {
                    if let Object::Cluster(c) = &mut self.objects[i] {
                        c.spec.ports.node_exporter = port;
                    }
                    self.bump(i);
                }
            }
            Change::MonitorOn { node } => {
                let name = self.node(node).map(|i| self.objects[i].name().to_owned());
                if let (Some(i), Some(name)) = (self.cluster(), name) {
                    if let Object::Cluster(c) = &mut self.objects[i] {
                        c.spec.roles.monitor = Some(name);
                    }
                    self.bump(i);
                }
            }
            Change::Zookeeper { set } => {
                if let Some(i) = self.cluster() {
                    if let Object::Cluster(c) = &mut self.objects[i] {
                        c.spec.zookeeper = set.then(|| "zk://10.9.9.9:2181/mesos".to_owned());
                    }
                    self.bump(i);
                }
            }
            Change::AgentGone { node } => {
                if let Some(i) = self.node(node) {
                    let name = self.objects[i].name().to_owned();
                    self.observed.agents.insert(name, gone(120));
                }
            }
            Change::Rotate { credential, value } => {
                let credentials: Vec<usize> = (0..self.objects.len())
                    .filter(|&i| matches!(self.objects[i], Object::Credential(_)))
                    .collect();
                if let Some(&i) = credentials.get(credential % credentials.len().max(1)) {
                    if let Object::Credential(c) = &mut self.objects[i] {
                        if value == 0 {
                            c.spec.principal.push('x');
                        } else {
                            c.spec.secret = SecretSource::from_value(format!("rotated-{value}"));
                        }
                        c.metadata.generation += 1;
                    }
                    self.bump(i);
                }
            }
            Change::RegistryUser { id, kind } => {
                let name = format!("registry-{id}");
                let at = self
                    .objects
                    .iter()
                    .position(|o| matches!(o, Object::Credential(_)) && o.name() == name);
                let (principal, secret) = match kind {
                    0 => (format!("user{id}"), format!("s3cret-{id}")),
                    1 => ("omtd".to_owned(), format!("s3cret-{id}")),
                    2 => (format!("bad:{id}"), format!("s3cret-{id}")),
                    3 => (format!("user{id}"), "x".repeat(80)),
                    _ => {
                        if let Some(i) = at {
                            self.objects.remove(i);
                        }
                        return;
                    }
                };
                let yaml = format!(
                    "apiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: {name}}}\n\
                     spec: {{principal: \"{principal}\", secret: {{value: \"{secret}\"}}, \
                     use: registry}}\n"
                );
                let record = parse(&yaml);
                let i = match at {
                    Some(i) => {
                        // A rewrite: the store keeps the record's status.
                        let status = self.objects[i].status().cloned();
                        self.objects.splice(i..=i, record);
                        self.objects[i].set_status(status);
                        i
                    }
                    None => {
                        self.objects.extend(record);
                        self.objects.len() - 1
                    }
                };
                self.bump(i);
            }
            Change::ExecutorPath { alt } => {
                if let Some(i) = self.cluster() {
                    if let Object::Cluster(c) = &mut self.objects[i] {
                        c.spec.paths.executor =
                            if alt { "/srv/exec2" } else { "/srv/executor" }.to_owned();
                    }
                    self.bump(i);
                }
            }
            Change::EditorOn { node } => {
                let name = self.node(node).map(|i| self.objects[i].name().to_owned());
                if let (Some(i), Some(name)) = (self.cluster(), name) {
                    if let Object::Cluster(c) = &mut self.objects[i] {
                        c.spec.roles.editor = Some(name);
                    }
                    self.bump(i);
                }
            }
            Change::FrontDoorTls { kind } => self.front_door_tls(kind),
            Change::DebugOverride { kind, secs } => {
                let editor =
                    (0..self.objects.len()).find(|&i| self.objects[i].name() == "editor.omtd");
                if let Some(i) = editor {
                    let until = omtd_controllers::time::format(t(self.now + u64::from(secs)));
                    let a = &mut self.objects[i].meta_mut().annotations;
                    match kind {
                        0 => {
                            a.insert(
                                omtd_controllers::node::DEBUG_UI_ACCESS_ANNOTATION.into(),
                                until,
                            );
                        }
                        1 => {
                            a.insert(
                                omtd_controllers::node::DEBUG_UI_ACCESS_ANNOTATION.into(),
                                "soon".into(),
                            );
                        }
                        _ => {
                            a.remove(omtd_controllers::node::DEBUG_UI_ACCESS_ANNOTATION);
                        }
                    }
                    self.bump(i);
                }
            }
            Change::Tick { secs } => {
                self.now += u64::from(secs);
                self.observed.now = t(self.now);
            }
            Change::StoreStatuses => {
                if let Some(out) = last {
                    store_statuses(&mut self.objects, out);
                }
            }
        }
    }
}

impl World {
    fn front_door_tls(&mut self, kind: u8) {
        const PEM: &str = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n";
        let at = self
            .objects
            .iter()
            .position(|o| matches!(o, Object::Credential(_)) && o.name() == "front-tls");
        let write = |world: &mut World, cert: &str| {
            let yaml = format!(
                "apiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: front-tls}}\n\
                 spec: {{principal: doors, secret: {{value: \"-----BEGIN PRIVATE KEY-----\\nk\\n-----END PRIVATE KEY-----\\n\"}}, \
                 use: tls, certificate: \"{cert}\", ca: \"{cert}{cert}\"}}\n"
            );
            let record = parse(&yaml);
            let i = match at {
                Some(i) => {
                    world.objects.splice(i..=i, record);
                    i
                }
                None => {
                    world.objects.extend(record);
                    world.objects.len() - 1
                }
            };
            world.bump(i);
        };
        let doors = |world: &mut World, f: &dyn Fn(&mut omtd_controllers::crds::FrontDoors)| {
            if let Some(i) = world.cluster() {
                if let Object::Cluster(c) = &mut world.objects[i] {
                    f(c.spec.front_doors.get_or_insert_with(Default::default));
                }
                world.bump(i);
            }
        };
        match kind {
            0 => {
                write(self, PEM);
                doors(self, &|d| d.tls = Some("front-tls".into()));
            }
            1 => write(self, &format!("{PEM}{PEM}")),
            2 => {
                if let Some(i) = at {
                    self.objects.remove(i);
                }
            }
            3 => doors(self, &|d| d.tls = None),
            _ => doors(self, &|d| {
                let next = match d.names.registry.as_deref() {
                    Some("registry.omtd.example.org") => "hub.example.org",
                    _ => "registry.omtd.example.org",
                };
                d.names.registry = Some(next.into());
            }),
        }
    }
}

/// Runs `changes` on a world, comparing every controller's kept pass with its pass from
/// scratch after each; returns the kept states (one per controller, in the order of
/// `CONTROLLERS`) and how many node slices a pass from scratch renders over the same
/// sequence.
fn check(versions: bool, changes: &[Change]) -> Result<(Vec<Kept>, u64), TestCaseError> {
    let mut world = World::new(versions);
    let mut kept: Vec<Kept> = CONTROLLERS.iter().map(|_| Kept::default()).collect();
    let mut last = None;
    let mut from_scratch_renders = 0;
    for (step, change) in std::iter::once(&Change::Tick { secs: 1 })
        .chain(changes)
        .enumerate()
    {
        world.apply(change, last.as_ref());
        let d = desired(&world.objects);
        for (name, kept) in CONTROLLERS.iter().zip(kept.iter_mut()) {
            let scratch = omtd_controllers::reconcile(name, &d, &world.observed, &settings())
                .expect("a controller of that name");
            let incremental =
                omtd_controllers::reconcile_kept(name, kept, &d, &world.observed, &settings())
                    .expect("a controller of that name");
            prop_assert_eq!(
                &incremental,
                &scratch,
                "{} after step {} ({:?})",
                name,
                step,
                change
            );
            if *name == omtd_controllers::node::NAME {
                from_scratch_renders += d.nodes.len() as u64;
                last = scratch.ok();
            }
        }
    }
    Ok((kept, from_scratch_renders))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn kept_state_plans_what_a_pass_from_scratch_plans(
        changes in prop::collection::vec(change(), 1..40),
    ) {
        check(true, &changes)?;
    }

    #[test]
    fn records_without_resource_versions_are_printed_whole(
        changes in prop::collection::vec(change(), 1..25),
    ) {
        check(false, &changes)?;
    }
}

/// The kept state is not a cache that never hits: a run of relabels re-renders only the
/// relabelled worker and the monitor (whose scrape targets list it).
#[test]
fn a_relabel_renders_the_relabelled_node_and_the_monitor() {
    let relabels: Vec<Change> = (0..10)
        .map(|i| Change::Relabel {
            node: i,
            value: 1 + (i % 3) as u8,
        })
        .collect();
    let (kept, from_scratch) = check(true, &relabels).expect("equal outcomes");
    let rendered = kept[0].node.slices_rendered();
    let nodes = objects()
        .iter()
        .filter(|o| matches!(o, Object::Node(_)))
        .count() as u64;
    // The first pass renders every node; then each relabel of a worker renders it and the
    // monitor, of any other node that node alone (and the monitor only when it is the
    // node relabelled).
    assert!(
        rendered <= nodes + 2 * 10,
        "rendered {rendered} slices, from scratch {from_scratch}"
    );
    assert!(from_scratch >= nodes * 11);
}

/// The executor's exports are kept per client: a run of relabels re-derives the relabelled
/// client's entry alone (a node that is no client derives none).
#[test]
fn a_relabel_derives_the_relabelled_clients_export_alone() {
    let relabels: Vec<Change> = (0..10)
        .map(|i| Change::Relabel {
            node: i,
            value: 1 + (i % 3) as u8,
        })
        .collect();
    let (kept, _) = check(true, &relabels).expect("equal outcomes");
    let storage = CONTROLLERS
        .iter()
        .position(|n| *n == omtd_controllers::storage::NAME)
        .expect("a storage controller");
    // The first pass derives the three workers' entries and the editor's; then each
    // relabel at most one.
    let derived = kept[storage].storage.exports_derived();
    assert!(derived >= 4, "derived {derived}");
    assert!(derived <= 4 + 10, "derived {derived}");
}
