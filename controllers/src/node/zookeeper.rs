//! The manager's ZooKeeper: `myid` and `zoo.cfg`, so the service runs from omtd's config
//! rather than whatever the package shipped (Debian's example has `dataDir=/tmp/zookeeper`
//! and, in 3.5 and later, an admin web server on 8080, the port Chronos listens on).

use omtd_crds::plan::FileSpec;

use crate::desired::Desired;
use crate::paths::{ZK_CONFIG, ZK_MYID};
use crate::render::file;

/// One manager, so one standalone server (no `server.N` lines, no quorum to form).
pub(super) fn files(desired: &Desired) -> Vec<FileSpec> {
    let port = desired.spec.ports.zookeeper;
    let config = format!(
        "# Managed by omtd (node controller). Changes here are overwritten.\n\
         tickTime=2000\n\
         initLimit=10\n\
         syncLimit=5\n\
         # Debian keeps myid here as a link to {ZK_MYID}.\n\
         dataDir=/var/lib/zookeeper\n\
         clientPort={port}\n\
         # The admin server would take 8080, Chronos's port on the manager.\n\
         admin.enableServer=false\n\
         # srvr is 3.8's default; ruok and mntr let monitoring ask how it stands.\n\
         4lw.commands.whitelist=srvr,ruok,mntr\n"
    );
    vec![file(ZK_MYID, "1"), file(ZK_CONFIG, config)]
}
