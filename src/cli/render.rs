//! Output: YAML/JSON views of objects with secrets redacted unless asked for, and table rows.

use omtd_crds::{ConditionStatus, Object, Secret, REDACTED};

// The table renderer lives below the CLI (the demo and `status` print tables too).
pub use crate::table::table;

/// An object as shown to a user: secrets replaced by `<redacted>` unless `show_secrets`.
pub fn redacted(obj: &Object, show_secrets: bool) -> Object {
    let mut obj = obj.clone();
    if !show_secrets {
        if let Object::Credential(c) = &mut obj {
            if c.spec.secret.value.is_some() {
                c.spec.secret.value = Some(Secret::new(REDACTED));
            }
        }
    }
    obj
}

/// YAML documents separated by `---`, as `kubectl get -o yaml` of several objects would be
/// if it printed documents rather than a List (so the output can be applied again).
pub fn to_yaml(objs: &[Object]) -> String {
    let mut out = String::new();
    for (i, o) in objs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(o).unwrap_or_default());
    }
    out
}

/// One object as a JSON object, several as an array.
pub fn to_json(objs: &[Object], single: bool) -> String {
    let value = if single && objs.len() == 1 {
        objs[0].to_value()
    } else {
        serde_json::Value::Array(objs.iter().map(Object::to_value).collect())
    };
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// The `Ready` column: the Ready condition's status, or `-` before any controller set it.
pub fn ready(obj: &Object) -> String {
    match obj.status().and_then(|s| s.condition("Ready")) {
        Some(c) => match c.status {
            ConditionStatus::True => "True".into(),
            ConditionStatus::False => format!("False ({})", c.reason),
            ConditionStatus::Unknown => "Unknown".into(),
        },
        None => "-".into(),
    }
}

/// Table columns of one kind: (header, wide-only extra header).
pub fn columns(kind: omtd_crds::Kind, wide: bool) -> Vec<&'static str> {
    use omtd_crds::Kind::*;
    let mut cols = match kind {
        Cluster => vec!["NAME", "ZOOKEEPER", "EXECUTOR", "EDITOR"],
        Credential => vec!["NAME", "PRINCIPAL", "USE", "SECRET"],
        Node => vec!["NAME", "ADDRESS", "ROLES", "READY"],
        Volume => vec!["NAME", "NODE", "DEVICE", "VG", "LV", "MOUNT", "STATE"],
    };
    if wide {
        if kind == Node {
            cols.push("CREDENTIAL");
        }
        cols.extend(["GENERATION", "LABELS"]);
    }
    cols
}

/// One table row for an object, matching [`columns`].
pub fn row(obj: &Object, wide: bool, show_secrets: bool) -> Vec<String> {
    let dash = || "-".to_owned();
    let mut row = match obj {
        Object::Cluster(c) => vec![
            c.metadata.name.clone(),
            c.spec
                .zookeeper
                .clone()
                .unwrap_or_else(|| "(from manager)".into()),
            c.spec.paths.executor.clone(),
            c.spec.paths.editor.clone(),
        ],
        Object::Credential(c) => vec![
            c.metadata.name.clone(),
            c.spec.principal.clone(),
            c.spec.usage.to_string(),
            match (&c.spec.secret.value, show_secrets) {
                (Some(v), true) => v.expose().to_owned(),
                _ => REDACTED.to_owned(),
            },
        ],
        Object::Node(n) => vec![
            n.metadata.name.clone(),
            n.spec.address.clone(),
            n.spec
                .roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(","),
            ready(obj),
        ],
        Object::Volume(v) => vec![
            v.metadata.name.clone(),
            v.spec.node.clone(),
            v.spec.device.clone(),
            v.spec.volume_group.clone().unwrap_or_else(dash),
            v.spec.logical_volume.clone().unwrap_or_else(dash),
            v.spec.mount_point.clone().unwrap_or_else(dash),
            v.spec.state.to_string(),
        ],
    };
    if wide {
        if let Object::Node(n) = obj {
            row.push(n.spec.credential.clone().unwrap_or_else(dash));
        }
        row.push(obj.meta().generation.to_string());
        let labels: Vec<String> = obj
            .meta()
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        row.push(if labels.is_empty() {
            "<none>".into()
        } else {
            labels.join(",")
        });
    }
    row
}
