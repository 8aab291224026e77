//! The demo's machines: one sim host per Node, provisioned as the Ansible playbooks left
//! them before omtd came — packages installed (services present, stopped), disks attached —
//! and nothing configured. omtd has to do the rest.

use omtd_crds::Node;

use crate::agent::drivers::sim::SimHost;
use crate::sim::packages::packages;
use crate::sim::SimWorld;

/// Bytes in a GiB.
pub const GIB: u64 = 1 << 30;

/// A host for `node`, with its packages, registered in `world`.
pub fn provision(world: &SimWorld, node: &Node) -> SimHost {
    let host = SimHost::new();
    for role in &node.spec.roles {
        for svc in packages(*role) {
            host.install_service(svc);
        }
    }
    world.add_node(&node.metadata.name, &node.spec.address, host.clone());
    host
}

/// The disks the cluster's Volumes name on `node`, attached blank (the runbook's sizes
/// for the first two; anything else 200 GiB).
pub fn attach_disks<'a>(host: &SimHost, devices: impl Iterator<Item = &'a str>) {
    for device in devices {
        let size = match device {
            "/dev/vdb" => 380 * GIB,
            "/dev/vdc" => 320 * GIB,
            _ => 200 * GIB,
        };
        host.add_device(device, size);
    }
}
