//! The resource kinds of `omtd/v1`, one file a kind.

mod cluster;
mod credential;
mod node;
mod volume;

pub use cluster::{
    ClusterPaths, ClusterPorts, ClusterSpec, FrontDoorNames, FrontDoors, Monitoring,
    RoleAssignments,
};
pub use credential::{CredentialSpec, CredentialUse};
pub use node::{NodeSpec, Role};
pub use volume::{Filesystem, VolumeSpec, VolumeState};
