//! The agent's report under `reports/<node>`: written only when its bytes differ from the
//! last bytes written (including those found in the store at start), so a converged host
//! costs the store nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use omtd_crds::plan::{Report, ResourceReport, ResourceState};

use crate::store::{Store, StoreError};

/// Assemble the report from a pass.
pub fn build(
    node: &str,
    applied: &BTreeMap<String, i64>,
    slices: &BTreeMap<String, String>,
    resources: Vec<ResourceReport>,
    corrective: u64,
    intentional: u64,
) -> Report {
    Report {
        node: node.to_owned(),
        epoch: String::new(),
        applied: applied.clone(),
        slices: slices.clone(),
        converged: resources
            .iter()
            .all(|r| r.state == ResourceState::Converged),
        resources,
        corrective_changes: corrective,
        intentional_changes: intentional,
        unmanaged: Vec::new(),
    }
}

pub struct ReportWriter {
    key: String,
    last: Option<Vec<u8>>,
    writes: u64,
}

impl ReportWriter {
    /// `last`: the report's bytes as found in the store.
    pub fn new(key: String, last: Option<Vec<u8>>) -> Self {
        ReportWriter {
            key,
            last,
            writes: 0,
        }
    }

    /// Writes made by this writer.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Write when different; returns whether it wrote.
    pub async fn write(
        &mut self,
        store: &Arc<dyn Store>,
        report: &Report,
    ) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(report)
            .map_err(|e| StoreError::Backend(format!("cannot encode the report: {e}")))?;
        if self.last.as_deref() == Some(bytes.as_slice()) {
            return Ok(false);
        }
        store.put(&self.key, bytes.clone()).await?;
        self.last = Some(bytes);
        self.writes += 1;
        Ok(true)
    }
}
