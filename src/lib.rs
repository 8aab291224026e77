//! omtd: keeps a Galaxy-on-Mesos cluster in line with desired state.
//!
//! The binary (`src/main.rs`) is a thin shell over this library so that integration tests
//! can use the store and the resource layer directly.

pub mod agent;
pub mod bench;
pub mod cli;
pub mod demo;
pub mod host;
pub mod operator;
pub mod pki;
pub mod private_file;
pub mod probes;
pub mod resources;
pub mod runtime;
pub mod sim;
pub mod status;
pub mod store;
pub mod table;
