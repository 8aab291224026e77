//! Helpers shared by omtd's integration tests (cargo's `cargo-test-support` is the model):
//! one place for polling, ports, the real etcd and ZooKeeper servers, the VM machine, and the
//! rigs each family of tests drives.
//!
//! A library crate, so an item one test binary does not use is not a `dead_code` warning, and
//! each helper exists once. Add to it rather than writing a poller, a `free_port` or a fake
//! in a test file.

// The Mesos state fixture is one large `json!` literal.
#![recursion_limit = "256"]

pub mod agent;
pub mod chaos;
pub mod e2e;
pub mod etcd;
pub mod etcd_partition;
pub mod etcd_tls;
pub mod fakes;
pub mod mesos;
pub mod never_panic;
pub mod poll;
pub mod ports;
pub mod runtime;
pub mod vm;
pub mod zookeeper;

use std::path::PathBuf;

/// A file of the omtd repository (`deploy/…`, `scripts/…`), by its path from the root.
pub fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(relative)
}

/// The `omtd` binary cargo built for this test run.
pub fn omtd_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("omtd")
}
