//! The NFS store: exports on the executor, the clients' mounts.

use std::collections::BTreeMap;

use omtd_crds::plan::{Ensure, ExportSpec, MountSpec, PlanSlice};
use omtd_crds::Role;

use super::{slice, EXPORT_OPTIONS};
use crate::desired::Desired;
use crate::removal::RemovalPhase;

/// `host:/path` for an NFS source, with brackets around an IPv6 address.
fn nfs_source(host: &str, path: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{path}")
    } else {
        format!("{host}:{path}")
    }
}

fn nfs_mount(source: String, target: String, ensure: Ensure) -> MountSpec {
    MountSpec {
        source,
        target,
        fstype: "nfs".into(),
        options: "defaults".into(),
        dump: 0,
        pass: 0,
        ensure,
    }
}

/// Exports on the executor and the clients' mounts.
pub(super) fn nfs(desired: &Desired, slices: &mut BTreeMap<String, PlanSlice>) {
    let Some(executor) = desired.executor() else {
        return;
    };
    let ex_name = executor.metadata.name.clone();
    let ex_addr = executor.spec.address.clone();
    let db = desired.database_path();
    let tools = desired.tools_path();
    let mut exports = Vec::new();
    for w in desired.member_workers(RemovalPhase::Cleanup) {
        exports.push(ExportSpec {
            path: db.clone(),
            client: w.spec.address.clone(),
            options: EXPORT_OPTIONS.into(),
        });
    }
    for w in desired.workers() {
        let name = &w.metadata.name;
        if *name == ex_name {
            continue;
        }
        let ensure = match desired.removal_phase(name) {
            Some(p) if p >= RemovalPhase::Stopping => Ensure::Absent,
            _ => Ensure::Present,
        };
        slice(slices, name)
            .mounts
            .push(nfs_mount(nfs_source(&ex_addr, &db), db.clone(), ensure));
    }
    if let Some(editor) = desired.editor() {
        exports.push(ExportSpec {
            path: tools.clone(),
            client: editor.spec.address.clone(),
            options: EXPORT_OPTIONS.into(),
        });
        if editor.metadata.name != ex_name && desired.has_role(&editor.metadata.name, Role::Editor)
        {
            slice(slices, &editor.metadata.name).mounts.push(nfs_mount(
                nfs_source(&ex_addr, &tools),
                format!("{}/tools", desired.spec.paths.editor),
                Ensure::Present,
            ));
        }
    }
    slice(slices, &ex_name).exports.extend(exports);
}
