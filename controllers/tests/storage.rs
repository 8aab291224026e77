//! Storage controller: exports and mounts per node set, add disk space with progress,
//! reduce disk space (refused at VFree 0, allowed once there is room), mount a volume.

mod common;

use common::*;
use omtd_controllers::crds::plan::{Ensure, ResourceState};
use omtd_controllers::crds::Object;
use omtd_controllers::{storage, Intent, Observed};

const GIB: u64 = 1024 * 1024 * 1024;
const EXECUTOR: &str = "executor.omtd";

fn run(objs: &[Object], o: &Observed) -> Intent {
    storage::reconcile(&desired(objs), o, &settings()).expect("storage reconcile")
}

fn volume(name: &str, device: &str, state: &str) -> Vec<Object> {
    parse(&format!(
        "apiVersion: omtd/v1\nkind: Volume\nmetadata: {{name: {name}}}\nspec: {{node: executor.omtd, device: {device}, volumeGroup: nfsstore, logicalVolume: nfs_logical, filesystem: ext4, mountPoint: /srv/executor/database, state: {state}}}\n"
    ))
}

fn export_lines(out: &Intent) -> Vec<String> {
    slice(out, EXECUTOR)
        .exports
        .iter()
        .map(|e| e.line())
        .collect()
}

#[test]
fn exports_and_mounts_follow_the_nodes() {
    let out = run(&objects(), &Observed::at(t(0)));
    assert_eq!(
        export_lines(&out),
        [
            "/srv/executor/database 10.0.0.21(rw,sync,no_subtree_check,no_root_squash)",
            "/srv/executor/database 10.0.0.22(rw,sync,no_subtree_check,no_root_squash)",
            "/srv/executor/database 10.0.0.23(rw,sync,no_subtree_check,no_root_squash)",
            "/srv/executor/tools 10.0.0.11(rw,sync,no_subtree_check,no_root_squash)",
        ]
    );
    // (node, source, target) — fstab `<source> <target> nfs defaults 0 0`.
    let table = [
        (
            "node1.omtd",
            "10.0.0.10:/srv/executor/database",
            "/srv/executor/database",
        ),
        (
            "node2.omtd",
            "10.0.0.10:/srv/executor/database",
            "/srv/executor/database",
        ),
        (
            "node3.omtd",
            "10.0.0.10:/srv/executor/database",
            "/srv/executor/database",
        ),
        (
            "editor.omtd",
            "10.0.0.10:/srv/executor/tools",
            "/srv/editor/tools",
        ),
    ];
    for (n, source, target) in table {
        let m = &slice(&out, n).mounts;
        assert_eq!(m.len(), 1, "{n}");
        assert_eq!(
            (
                m[0].source.as_str(),
                m[0].target.as_str(),
                m[0].fstype.as_str(),
                m[0].options.as_str(),
                m[0].dump,
                m[0].pass
            ),
            (source, target, "nfs", "defaults", 0, 0),
            "{n}"
        );
    }
    // Nodes with nothing to mount or export get no storage slice at all.
    for n in ["manager.omtd", "registry.omtd", "monitor.omtd"] {
        assert!(!out.slices.contains_key(n), "{n}");
    }
}

#[test]
fn a_cluster_without_editor_exports_only_the_database() {
    let objs: Vec<Object> = objects()
        .into_iter()
        .filter(|o| o.name() != "editor.omtd" && o.name() != "node2.omtd")
        .collect();
    let out = run(&objs, &Observed::at(t(0)));
    assert_eq!(
        export_lines(&out),
        [
            "/srv/executor/database 10.0.0.21(rw,sync,no_subtree_check,no_root_squash)",
            "/srv/executor/database 10.0.0.23(rw,sync,no_subtree_check,no_root_squash)",
        ]
    );
}

#[test]
fn add_disk_space_plans_pv_lv_filesystem_and_mount() {
    let mut objs = objects();
    objs.extend(volume("nfsstore-vdd", "/dev/vdd", "present"));
    let out = run(&objs, &Observed::at(t(0)));
    let s = slice(&out, EXECUTOR);
    let pvs: Vec<(&str, &str, Ensure)> = s
        .physical_volumes
        .iter()
        .map(|p| (p.device.as_str(), p.volume_group.as_str(), p.ensure))
        .collect();
    assert_eq!(
        pvs,
        [
            ("/dev/vdb", "nfsstore", Ensure::Present),
            ("/dev/vdc", "nfsstore", Ensure::Present),
            ("/dev/vdd", "nfsstore", Ensure::Present),
        ]
    );
    assert_eq!(s.logical_volumes.len(), 1);
    assert_eq!(s.logical_volumes[0].name, "nfs_logical");
    assert!(
        s.logical_volumes[0].grow_to_fill,
        "lvextend over the new PV"
    );
    assert_eq!(s.filesystems[0].device, "/dev/nfsstore/nfs_logical");
    assert_eq!(s.filesystems[0].fstype, "ext4");
    let m = s
        .mounts
        .iter()
        .find(|m| m.source == "/dev/nfsstore/nfs_logical")
        .expect("the LV is mounted");
    assert_eq!(
        (m.target.as_str(), m.fstype.as_str(), m.options.as_str()),
        ("/srv/executor/database", "ext4", "defaults")
    );
}

#[test]
fn add_disk_space_progress_is_read_back_into_the_volume_status() {
    let mut objs = objects();
    objs.extend(volume("nfsstore-vdd", "/dev/vdd", "present"));
    let d = desired(&objs);
    let key = volume_key("nfsstore-vdd");
    let ok = ResourceState::Converged;
    // (resources reported, step, percent, Ready, Progressing reason)
    let rows: Vec<(
        Vec<omtd_controllers::crds::plan::ResourceReport>,
        &str,
        u64,
        &str,
        &str,
    )> = vec![
        (vec![], "pv", 0, "False", "StepInProgress"),
        (
            vec![res("pv:/dev/vdd", ok)],
            "lv",
            25,
            "False",
            "StepInProgress",
        ),
        (
            vec![res("pv:/dev/vdd", ok), {
                let mut r = res("lv:nfsstore/nfs_logical", ResourceState::Progressing);
                r.percent = Some(40);
                r
            }],
            "lv",
            35,
            "False",
            "StepInProgress",
        ),
        (
            vec![
                res("pv:/dev/vdd", ok),
                res("lv:nfsstore/nfs_logical", ok),
                res("fs:/dev/nfsstore/nfs_logical", ResourceState::Failed),
            ],
            "filesystem",
            50,
            "False",
            "StepFailed",
        ),
        (
            vec![
                res("pv:/dev/vdd", ok),
                res("lv:nfsstore/nfs_logical", ok),
                res("fs:/dev/nfsstore/nfs_logical", ok),
                res("mount:/srv/executor/database", ok),
            ],
            "done",
            100,
            "True",
            "Done",
        ),
    ];
    for (i, (resources, step, percent, ready, progressing)) in rows.into_iter().enumerate() {
        let mut o = healthy(&d, t(0));
        o.reports
            .insert(EXECUTOR.into(), report(EXECUTOR, resources));
        let out = run(&objs, &o);
        let st = status_of(&out, &key);
        assert_eq!(
            st.extra.get("step").and_then(|v| v.as_str()),
            Some(step),
            "row {i}"
        );
        assert_eq!(
            st.extra.get("percent").and_then(|v| v.as_u64()),
            Some(percent),
            "row {i}"
        );
        assert_eq!(cond(&out, &key, "Ready").0, ready, "row {i}");
        assert_eq!(cond(&out, &key, "Progressing").1, progressing, "row {i}");
    }
}

/// The runbook's "reduce disk space" host: vdb 380G, vdc 320G, vdd 200G, all full.
fn runbook_pvs(extra: &[(&str, u64, u64)]) -> Vec<omtd_controllers::crds::plan::ResourceReport> {
    let mut pvs = vec![
        ("/dev/vdb", 380, 0),
        ("/dev/vdc", 320, 0),
        ("/dev/vdd", 200, 0),
    ];
    pvs.extend_from_slice(extra);
    pvs.into_iter()
        .map(|(dev, size, free)| {
            with(
                res(&format!("pv:{dev}"), ResourceState::Converged),
                &[
                    ("pv_size", &(size * GIB).to_string()),
                    ("pv_free", &(free * GIB).to_string()),
                ],
            )
        })
        .collect()
}

#[test]
fn reduce_disk_space_is_refused_at_vfree_0_and_says_what_would_help() {
    let mut objs = objects();
    objs.extend(volume("nfsstore-vdd", "/dev/vdd", "absent"));
    let mut o = healthy(&desired(&objs), t(0));
    o.reports
        .insert(EXECUTOR.into(), report(EXECUTOR, runbook_pvs(&[])));
    let out = run(&objs, &o);
    let key = volume_key("nfsstore-vdd");
    assert_eq!(
        cond(&out, &key, "Ready"),
        ("False".into(), "RemovalRefused".into())
    );
    assert_eq!(cond(&out, &key, "Progressing").1, "Refused");
    let msg = message(&out, &key, "Ready");
    assert_eq!(
        msg,
        "cannot remove /dev/vdd from nfsstore: its 200.00 GiB of data must move to the other \
         physical volumes of nfsstore, which have 0 B free (VFree 0). To make it possible, \
         add a Volume with at least 200.00 GiB to nfsstore on executor.omtd (omtd stops \
         growing nfs_logical while a removal is pending, so the new space stays free for \
         the move), or shrink the filesystem and nfs_logical first (ext4 shrinks only \
         unmounted)"
    );
    let s = slice(&out, EXECUTOR);
    assert!(
        s.physical_volumes
            .iter()
            .all(|p| p.ensure == Ensure::Present),
        "nothing removed"
    );
    assert!(
        !s.logical_volumes[0].grow_to_fill,
        "the LV holds still while a removal is pending"
    );
    assert!(out
        .events
        .iter()
        .any(|e| e.reason == "RemovalRefused" && e.object == key));
    // vdd stays planned as it is, so its agent keeps reporting its facts: the refusal
    // holds on the next look, and a disk added later is seen to make room.
    assert!(s
        .physical_volumes
        .iter()
        .any(|p| p.device == "/dev/vdd" && p.ensure == Ensure::Present));
    store_statuses(&mut objs, &out);
    let again = run(&objs, &o);
    assert_eq!(cond(&again, &key, "Ready").1, "RemovalRefused");
    assert!(slice(&again, EXECUTOR)
        .physical_volumes
        .iter()
        .all(|p| p.ensure == Ensure::Present));
}

#[test]
fn reduce_disk_space_goes_ahead_once_a_new_disk_makes_room() {
    let mut objs = objects();
    objs.extend(volume("nfsstore-vdd", "/dev/vdd", "absent"));
    objs.extend(volume("nfsstore-vde", "/dev/vde", "present"));
    let key = volume_key("nfsstore-vdd");
    let mut o = healthy(&desired(&objs), t(0));
    // vde joined and stays free: the LV did not grow over it.
    o.reports.insert(
        EXECUTOR.into(),
        report(EXECUTOR, runbook_pvs(&[("/dev/vde", 250, 250)])),
    );
    let out = run(&objs, &o);
    assert_eq!(
        cond(&out, &key, "Progressing"),
        ("True".into(), "Moving".into())
    );
    let s = slice(&out, EXECUTOR);
    let vdd = s
        .physical_volumes
        .iter()
        .find(|p| p.device == "/dev/vdd")
        .unwrap();
    assert_eq!(vdd.ensure, Ensure::Absent);
    assert!(!s.logical_volumes[0].grow_to_fill);
    store_statuses(&mut objs, &out);

    // pvmove in progress: the percent comes from the agent.
    let mut moving = res("pv:/dev/vdd", ResourceState::Progressing);
    moving.percent = Some(40);
    o.reports
        .insert(EXECUTOR.into(), report(EXECUTOR, vec![moving]));
    let out = run(&objs, &o);
    let st = status_of(&out, &key);
    assert_eq!(st.extra.get("percent").and_then(|v| v.as_u64()), Some(40));
    assert_eq!(
        st.extra.get("step").and_then(|v| v.as_str()),
        Some("pvmove")
    );
    store_statuses(&mut objs, &out);

    // Done: the agent reports it out of the group (no PV facts any more).
    o.reports.insert(
        EXECUTOR.into(),
        report(EXECUTOR, vec![res("pv:/dev/vdd", ResourceState::Converged)]),
    );
    let out = run(&objs, &o);
    assert_eq!(cond(&out, &key, "Ready"), ("True".into(), "Removed".into()));
    let s = slice(&out, EXECUTOR);
    assert!(
        s.logical_volumes[0].grow_to_fill,
        "growth resumes after the removal"
    );
    store_statuses(&mut objs, &out);
    // And it stays removed.
    let again = run(&objs, &o);
    assert_eq!(cond(&again, &key, "Ready").1, "Removed");
}

#[test]
fn a_refused_move_by_the_agent_is_reported() {
    let mut objs = objects();
    objs.extend(volume("nfsstore-vdd", "/dev/vdd", "absent"));
    // No facts yet: handed to the agent, which checks room itself.
    let mut o = healthy(&desired(&objs), t(0));
    let out = run(&objs, &o);
    store_statuses(&mut objs, &out);
    let mut refused = res("pv:/dev/vdd", ResourceState::Refused);
    refused.message = "no extents available for allocation".into();
    o.reports
        .insert(EXECUTOR.into(), report(EXECUTOR, vec![refused]));
    let out = run(&objs, &o);
    let key = volume_key("nfsstore-vdd");
    assert_eq!(cond(&out, &key, "Ready").1, "AgentRefused");
    assert!(message(&out, &key, "Ready").contains("no extents available"));
}

#[test]
fn no_removal_starts_on_a_lost_node() {
    let mut objs = objects();
    objs.extend(volume("nfsstore-vdd", "/dev/vdd", "absent"));
    objs.extend(volume("nfsstore-vde", "/dev/vde", "present"));
    let mut o = healthy(&desired(&objs), t(0));
    o.reports.insert(
        EXECUTOR.into(),
        report(EXECUTOR, runbook_pvs(&[("/dev/vde", 250, 250)])),
    );
    o.agents.insert(EXECUTOR.into(), gone(600));
    let out = run(&objs, &o);
    let key = volume_key("nfsstore-vdd");
    assert_eq!(cond(&out, &key, "Ready").1, "RemovalRefused");
    assert!(message(&out, &key, "Ready").contains("lost"));
    assert!(slice(&out, EXECUTOR)
        .physical_volumes
        .iter()
        .all(|p| p.ensure == Ensure::Present));
}

#[test]
fn mount_a_plain_device_by_uuid_with_errors_remount_ro() {
    let mut objs = objects();
    objs.extend(parse(
        "apiVersion: omtd/v1\nkind: Volume\nmetadata: {name: nfs1}\nspec: {node: node1.omtd, device: /dev/vdb1, filesystem: ext4, mountPoint: /volumes/nfs1}\n",
    ));
    let out = run(&objs, &Observed::at(t(0)));
    let s = slice(&out, "node1.omtd");
    assert_eq!(s.filesystems.len(), 1);
    assert_eq!(
        (
            s.filesystems[0].device.as_str(),
            s.filesystems[0].fstype.as_str()
        ),
        ("/dev/vdb1", "ext4")
    );
    let m = s
        .mounts
        .iter()
        .find(|m| m.target == "/volumes/nfs1")
        .unwrap();
    // The agent writes a device source to fstab as UUID=...: the runbook's line.
    assert_eq!(
        (
            m.source.as_str(),
            m.fstype.as_str(),
            m.options.as_str(),
            m.dump,
            m.pass
        ),
        ("/dev/vdb1", "ext4", "errors=remount-ro", 0, 1)
    );
    assert!(s.physical_volumes.is_empty());
}

#[test]
fn a_report_on_an_older_plan_does_not_make_the_volume_ready() {
    let mut objs = objects();
    objs.extend(volume("nfsstore-vdd", "/dev/vdd", "present"));
    let d = desired(&objs);
    let key = volume_key("nfsstore-vdd");
    let ok = ResourceState::Converged;
    let every_step = vec![
        res("pv:/dev/vdd", ok),
        res("lv:nfsstore/nfs_logical", ok),
        res("fs:/dev/nfsstore/nfs_logical", ok),
        res("mount:/srv/executor/database", ok),
    ];
    let mut o = healthy(&d, t(0));
    let mut r = report(EXECUTOR, every_step);
    // The agent last applied another storage slice than the one stored now.
    r.slices
        .insert("storage".into(), "digest-of-the-old-plan".into());
    o.reports.insert(EXECUTOR.into(), r);
    o.plan_digests.insert(
        EXECUTOR.into(),
        [("storage".to_owned(), "digest-of-the-new-plan".to_owned())].into(),
    );
    let out = run(&objs, &o);
    assert_eq!(cond(&out, &key, "Ready").0, "False");
    assert_eq!(cond(&out, &key, "Progressing").1, "StepInProgress");
    // The same report on the current plan: Ready.
    if let Some(r) = o.reports.get_mut(EXECUTOR) {
        r.slices = o.plan_digests[EXECUTOR].clone();
    }
    let out = run(&objs, &o);
    assert_eq!(cond(&out, &key, "Ready").0, "True");
}
