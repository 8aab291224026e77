//! The demo's desired state: the runbook's cluster (`deploy/examples/cluster.yaml`, built
//! in so the demo runs from any directory) and the records the "how to" scenarios add.

use omtd_crds::{manifest, CredentialUse, Object};

use super::DemoError;
use crate::resources::apply::{execute, plan_apply, sort_changes, ApplyOptions, ExecuteError};
use crate::resources::Repo;

pub const CLUSTER: &str = include_str!("../../deploy/examples/cluster.yaml");

/// "How to add a node": a fourth worker and its credential.
pub const NODE4: &str = "\
apiVersion: omtd/v1
kind: Node
metadata:
  name: node4.omtd
  labels: {tier: mesos}
spec:
  address: 10.0.0.24
  roles: [worker]
  credential: node4.omtd
---
apiVersion: omtd/v1
kind: Credential
metadata:
  name: node4.omtd
spec:
  principal: node4.omtd
  secret: {value: \"n4-Demo7kQ2wE9r\"}
  use: mesos-agent
";

/// "How to add disk space": a third disk in the NFS store's volume group.
pub const DISK: &str = "\
apiVersion: omtd/v1
kind: Volume
metadata:
  name: nfsstore-vdd
spec:
  node: executor.omtd
  device: /dev/vdd
  volumeGroup: nfsstore
  logicalVolume: nfs_logical
  filesystem: ext4
  mountPoint: /srv/executor/database
  state: present
";

/// What the demo applies is recorded as coming from here (`--prune` compares sources).
const SOURCE: &str = "omtd demo";

pub fn parse(text: &str) -> Result<Vec<Object>, DemoError> {
    manifest::parse(text).map_err(|errs| {
        DemoError::Records(
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Applies `objects` all or nothing, as `omtd apply` does (planning again on a conflict).
pub async fn apply(repo: &Repo, objects: &[Object]) -> Result<(), DemoError> {
    let opts = ApplyOptions {
        source: SOURCE.to_owned(),
        prune: false,
    };
    for _ in 0..5 {
        let snapshot = repo
            .snapshot()
            .await
            .map_err(|e| DemoError::Store(e.to_string()))?;
        let mut plan = plan_apply(&snapshot, objects.to_vec(), &opts);
        sort_changes(&mut plan.changes);
        if plan.has_errors() {
            let errors: Vec<String> = plan.errors().map(ToString::to_string).collect();
            return Err(DemoError::Records(errors.join("; ")));
        }
        match execute(repo, &plan).await {
            Ok(_) => return Ok(()),
            Err(ExecuteError::Conflict) => continue,
            Err(e) => return Err(DemoError::Store(e.to_string())),
        }
    }
    Err(DemoError::Store(
        "the records kept changing under the demo's apply".into(),
    ))
}

/// `principal:secret` of the Chronos framework credential: the operator presents it to
/// the Mesos master, whose HTTP endpoints accept any principal of its credentials file.
pub fn probe_credential(objects: &[Object]) -> Option<(String, String)> {
    objects.iter().find_map(|o| match o {
        Object::Credential(c) if c.spec.usage == CredentialUse::ChronosFramework => {
            let secret = c.spec.secret.value.as_ref()?.expose().to_owned();
            Some((c.spec.principal.clone(), secret))
        }
        _ => None,
    })
}
