//! Metadata and status shared by every kind (Kubernetes' ObjectMeta and conditions, cut down).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Identity and bookkeeping of an object.
///
/// `name`, `labels` and `annotations` come from the user; `generation` and `resourceVersion`
/// are set by omtd (values given at apply are ignored): generation counts spec changes,
/// resourceVersion is the store revision at which the object was last written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// DNS-like name: lower-case letters, digits, '-' and '.', starting and ending with a
    /// letter or digit, at most 253 characters (e.g. `node1.omtd`).
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Bumped by omtd each time the spec changes (1 at creation). Set by omtd.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// The store revision of the last write of this object. Set by omtd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `True`, `False` or `Unknown`, as in Kubernetes conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// One observed aspect of an object (`Accepted`, `Ready`, `Progressing`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// CamelCase machine-readable reason, e.g. `AgentLost`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable explanation. Never holds a secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// RFC 3339 time of the last change of `status`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_transition_time: String,
}

/// What omtd observed of an object. Written only by omtd, under `status/<kind>/<name>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Kind-specific fields a controller adds (e.g. a storage step and its percent).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Status {
    /// The condition of the given type, if any.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
