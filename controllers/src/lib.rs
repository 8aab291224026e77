//! omtd's controllers: pure functions from (desired, observed) to plan slices, statuses,
//! events and a requeue time. No I/O happens here; the runtime in the `omtd` crate does it.
//!
//! Every controller has the same shape:
//!
//! ```text
//! reconcile(&Desired, &Observed, &Settings) -> Result<Intent, Error>
//! ```
//!
//! - [`Desired`]: the records (with their stored statuses), with cluster defaults applied.
//! - [`Observed`]: what the shell measured: agent reports and liveness, probe results, the
//!   plan slices as stored, and `now` (time is an input, never read from a clock here).
//! - [`Intent`]: one plan slice per node (a node missing from the map has no slice of this
//!   controller), statuses, events, objects whose removal is finished, Mesos maintenance
//!   wanted, and when to look again.
//!
//! The four controllers, one a folder or file: [`node`], [`storage`], [`credentials`],
//! [`leader_guard`]. Beside its `reconcile` each declares what it owns and what wakes it
//! (`DECLARATION`, see [`declaration`]). They read each other's recorded progress only
//! through the stored statuses in [`Desired`] (a node's removal phase, the cluster's
//! recovery), so each one stays a function of the store; the host paths and restart tables
//! they share are in [`paths`].

pub use omtd_crds as crds;

pub mod accepted;
pub mod agent_restart;
pub mod credentials;
pub mod declaration;
pub mod desired;
pub mod error;
pub mod health;
pub mod leader_guard;
pub mod memo;
pub mod node;
pub mod observed;
pub mod output;
pub mod paths;
pub mod removal;
pub mod render;
pub mod settings;
pub mod storage;
pub mod time;

pub use declaration::Declaration;
pub use desired::Desired;
pub use error::Error;
pub use observed::{
    AgentLiveness, MasterEntry, MesosAgent, MesosFramework, MesosState, MesosTask, Observed,
    RegistryAnswer, RegistryCheck,
};
pub use output::{EventType, Intent, MachineMode, MachineWish, Notice};
pub use settings::{RecoveryPolicy, Settings};

/// The controllers by name, as they own plan slices (`plans/<node>/<name>`).
pub const CONTROLLERS: [&str; 4] = [
    node::NAME,
    storage::NAME,
    credentials::NAME,
    leader_guard::NAME,
];

/// What each controller owns and what wakes it, in the order of [`CONTROLLERS`].
pub const DECLARATIONS: [&declaration::Declaration; 4] = [
    &node::DECLARATION,
    &storage::DECLARATION,
    &credentials::DECLARATION,
    &leader_guard::DECLARATION,
];

/// The declaration of the controller called `name`; `None` for an unknown name.
pub fn declaration(name: &str) -> Option<&'static declaration::Declaration> {
    DECLARATIONS.into_iter().find(|d| d.name == name)
}

/// What the controllers keep from one pass to the next (see [`memo`]): a pass with a kept
/// state gives the outcome a pass from scratch ([`reconcile`]) gives, deriving only what
/// changed.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub node: node::State,
    pub storage: storage::State,
    pub credentials: credentials::State,
}

/// Runs the controller called `name` with what it kept from its last pass; `None` for an
/// unknown name.
pub fn reconcile_kept(
    name: &str,
    kept: &mut Kept,
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
) -> Option<output::Reconciled> {
    Some(match name {
        node::NAME => node::reconcile_with(&mut kept.node, desired, observed, settings),
        storage::NAME => storage::reconcile_with(&mut kept.storage, desired, observed, settings),
        credentials::NAME => {
            credentials::reconcile_with(&mut kept.credentials, desired, observed, settings)
        }
        _ => return reconcile(name, desired, observed, settings),
    })
}

/// Runs the controller called `name` from scratch; `None` for an unknown name.
pub fn reconcile(
    name: &str,
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
) -> Option<output::Reconciled> {
    Some(match name {
        node::NAME => node::reconcile(desired, observed, settings),
        storage::NAME => storage::reconcile(desired, observed, settings),
        credentials::NAME => credentials::reconcile(desired, observed, settings),
        leader_guard::NAME => leader_guard::reconcile(desired, observed, settings),
        _ => return None,
    })
}
