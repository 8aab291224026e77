//! JSON Schemas of the kinds, generated from the Rust types. The files under
//! `crds/schemas/` are checked in for editors and pipelines; a test fails when they are
//! stale (regenerate with `OMTD_UPDATE_SCHEMAS=1 cargo test -p omtd-crds schemas`).

use crate::kinds::{ClusterSpec, CredentialSpec, NodeSpec, VolumeSpec};
use crate::object::{Kind, Resource};

/// The JSON Schema of one kind, pretty-printed with a trailing newline.
pub fn schema_json(kind: Kind) -> String {
    let schema = match kind {
        Kind::Cluster => schemars::schema_for!(Resource<ClusterSpec>),
        Kind::Credential => schemars::schema_for!(Resource<CredentialSpec>),
        Kind::Node => schemars::schema_for!(Resource<NodeSpec>),
        Kind::Volume => schemars::schema_for!(Resource<VolumeSpec>),
    };
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// File name of a kind's schema under `crds/schemas/`.
pub fn schema_file(kind: Kind) -> String {
    format!("{}.schema.json", kind.lower())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn schemas_are_up_to_date() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let update = std::env::var_os("OMTD_UPDATE_SCHEMAS").is_some();
        let mut stale = Vec::new();
        for kind in Kind::ALL {
            let path = dir.join(schema_file(kind));
            let want = schema_json(kind);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "stale JSON Schemas: {stale:?}; regenerate with OMTD_UPDATE_SCHEMAS=1 cargo test -p omtd-crds schemas"
        );
    }

    #[test]
    fn schema_rejects_unknown_fields() {
        let v: serde_json::Value = serde_json::from_str(&schema_json(Kind::Node)).unwrap();
        assert_eq!(v["additionalProperties"], serde_json::Value::Bool(false));
    }
}
