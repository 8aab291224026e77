//! The resource kinds of omtd (`apiVersion: omtd/v1`): Rust types, parsing with field
//! paths, validation, and the JSON Schemas generated from the types (`crds/schemas/`).

pub mod front_door;
pub mod ini;
pub mod kinds;
pub mod manifest;
pub mod meta;
pub mod object;
pub mod plan;
pub mod plan_manifest;
pub mod schema;
pub mod secret;
pub mod tls_material;
pub mod validate;
pub mod yaml_blocks;

pub use kinds::*;
pub use meta::{Condition, ConditionStatus, ObjectMeta, Status};
pub use object::{
    Cluster, Credential, Kind, Node, Object, ObjectKey, ParseError, Resource, Volume, API_VERSION,
};
pub use secret::{Secret, SecretSource, REDACTED};
pub use validate::{Diagnostic, Severity};
