//! The NFS store: exports on the executor, the clients' mounts.

use std::collections::BTreeMap;

use omtd_crds::plan::{Ensure, ExportSpec, MountSpec, PlanSlice};
use omtd_crds::Role;

use super::{slice, State, EXPORT_OPTIONS};
use crate::desired::Desired;
use crate::memo::Printer;
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

fn export(path: &str, client: &str) -> ExportSpec {
    ExportSpec {
        path: path.to_owned(),
        client: client.to_owned(),
        options: EXPORT_OPTIONS.into(),
    }
}

/// Exports on the executor and the clients' mounts. The executor's exports are an indexed
/// set kept in `state` (see [`crate::memo`]): one entry per client, so a worker added,
/// readdressed or retired re-derives its own entry, and the list is the kept entries in
/// the order a pass from scratch makes (every member worker's database share by node name,
/// then the editor's tools share).
pub(super) fn nfs(state: &mut State, desired: &Desired, slices: &mut BTreeMap<String, PlanSlice>) {
    let Some(executor) = desired.executor() else {
        // No executor, no exports: the sweep forgets every kept entry, so none is handed
        // back if an executor comes again with other records.
        state.database.sweep();
        state.tools.sweep();
        return;
    };
    let ex_name = executor.metadata.name.clone();
    let ex_addr = executor.spec.address.clone();
    let db = desired.database_path();
    let tools = desired.tools_path();
    let mut exports = Vec::new();
    // Every worker is asked for, not only the members: whether a worker still has its
    // export is read from its removal phase inside the entry, so the phase is in the print
    // (a status write moves no resource version).
    for w in desired.workers() {
        let name = &w.metadata.name;
        let phase = desired.removal_phase(name);
        let print = Printer::new().record(w).feed(phase).feed(&db).finish();
        let entry = state.database.get(name, print, || {
            // A worker keeps its export until its cleanup (`member_workers(Cleanup)`).
            phase
                .is_none_or(|p| p < RemovalPhase::Cleanup)
                .then(|| export(&db, &w.spec.address))
        });
        exports.extend(entry.iter().cloned());
    }
    state.database.sweep();
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
        // Kept apart from the database shares: the editor may be a worker as well, with an
        // entry of each.
        let print = Printer::new().record(editor).feed(&tools).finish();
        let entry = state.tools.get(&editor.metadata.name, print, || {
            export(&tools, &editor.spec.address)
        });
        exports.push(entry.clone());
        if editor.metadata.name != ex_name && desired.has_role(&editor.metadata.name, Role::Editor)
        {
            slice(slices, &editor.metadata.name).mounts.push(nfs_mount(
                nfs_source(&ex_addr, &tools),
                format!("{}/tools", desired.spec.paths.editor),
                Ensure::Present,
            ));
        }
    }
    state.tools.sweep();
    slice(slices, &ex_name).exports.extend(exports);
}
