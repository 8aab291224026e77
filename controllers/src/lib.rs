//! omtd's controllers: pure functions from (desired, observed) to plan slices, statuses,
//! events and a requeue time. No I/O happens here; the runtime in the `omtd` crate does it.
//!
//! The controllers themselves land with the controllers issue; this crate exists now so the
//! dependency direction (crds <- controllers <- omtd) is fixed from the start.

pub use omtd_crds as crds;
