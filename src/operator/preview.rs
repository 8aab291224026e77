//! What the controllers would plan for one node now, computed in-process from the store
//! (no operator needed): the heart of `omtd plan NODE`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use omtd_controllers::Settings;
use omtd_crds::plan::PlanSlice;
use omtd_crds::Kind;
use tokio::time::Instant;

use super::adapter::Wiring;
use crate::resources::staged::View;
use crate::resources::Keys;
use crate::runtime::Snapshot;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("node/{0} not found (omtd get nodes lists them)")]
    NotFound(String),
    /// A controller could not compute its plan; its message names no secret.
    #[error("the {controller} controller cannot plan: {message}")]
    Controller {
        controller: &'static str,
        message: String,
    },
}

/// One node's slices, by controller, as they would be written now.
#[derive(Debug, Clone, Default)]
pub struct NodePlan {
    pub node: String,
    /// The store revision the plan was computed from.
    pub revision: i64,
    pub slices: BTreeMap<String, PlanSlice>,
}

/// Reads the whole cluster at one revision, as the operator's reflector would.
pub async fn read_snapshot(store: &dyn Store, keys: &Keys) -> Result<Snapshot, StoreError> {
    let view = View::read(store, keys).await?;
    let list = view.list(store, keys, keys.prefix()).await?;
    Ok(Snapshot::from_list(
        keys,
        list.kvs,
        list.revision,
        &Snapshot::default(),
    ))
}

/// Runs the four controllers on `snapshot` (no probe answers: what depends on Mesos,
/// ZooKeeper or Prometheus is planned as when they are unknown) and keeps `node`'s slices.
pub fn node_plan(
    snapshot: &Snapshot,
    node: &str,
    settings: Settings,
) -> Result<NodePlan, PreviewError> {
    if snapshot.get(Kind::Node, node).is_none() {
        return Err(PreviewError::NotFound(node.to_owned()));
    }
    let wiring = Wiring::new(settings);
    let now = SystemTime::now();
    let mono = Instant::now();
    let mut slices = BTreeMap::new();
    for c in wiring.controllers() {
        let mut out = c
            .output(snapshot, now, mono)
            .map_err(|e| PreviewError::Controller {
                controller: c.name(),
                message: e.to_string(),
            })?;
        if let Some(mut slice) = out.slices.remove(node) {
            slice.controller = c.name().to_owned();
            slices.insert(c.name().to_owned(), slice);
        }
    }
    Ok(NodePlan {
        node: node.to_owned(),
        revision: snapshot.revision,
        slices,
    })
}
