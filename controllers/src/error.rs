//! What can make a reconcile fail. Most problems are not errors but conditions on the
//! objects (a refused removal, a lost agent); an error means the controller could not
//! compute a plan at all, and the runtime retries with backoff.
//!
//! No variant carries a secret: names and principals only.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A value that would break a one-line file's format (e.g. `:` in a Chronos HTTP user,
    /// which Chronos splits on).
    #[error("credential/{credential}: {problem}")]
    Unrenderable { credential: String, problem: String },
    /// A controller name none of the four has (a wiring mistake, not a cluster problem).
    #[error("no controller is called {0:?} (the controllers are node, storage, credentials, leader-guard)")]
    UnknownController(String),
}
