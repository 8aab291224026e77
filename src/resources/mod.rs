//! Objects in the store: the key layout, consistent reads, and apply/delete plans.

pub mod apply;
pub mod epoch;
pub mod keys;
pub mod repo;
pub mod roles;
pub mod selector;
pub mod staged;
pub mod targets;

pub use keys::Keys;
pub use repo::{ObjectsAt, Repo, RepoError, SealedSpec, Stored};
