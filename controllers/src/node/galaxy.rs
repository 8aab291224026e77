//! Galaxy on the executor and the editor: its systemd unit, and on the editor the one key
//! of `galaxy.ini` omtd owns (`use_remote_user`), with the runbook's debugging override.

use std::collections::BTreeMap;
use std::time::SystemTime;

use omtd_crds::plan::{FileRender, FileSpec};
use omtd_crds::Node;

use crate::desired::Desired;
use crate::paths::{galaxy_ini_path, GALAXY_UNIT};
use crate::render::file;

/// On the editor Node: an RFC 3339 time until which Galaxy's UI is open without Apache's
/// remote user (`use_remote_user = False`, the runbook's debugging step), after which omtd
/// turns it back to `True` by itself, so nobody has to remember to.
pub const DEBUG_UI_ACCESS_ANNOTATION: &str = "omtd/debug-ui-access-until";

/// The section of `galaxy.ini` Galaxy's own settings live in.
pub const GALAXY_INI_SECTION: &str = "app:main";

/// The override on one node, at `now`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DebugOverride {
    /// No annotation.
    None,
    /// UI access until this time (later than now).
    Until(SystemTime),
    /// The time has passed: back to `use_remote_user = True`.
    Expired,
    /// Not an RFC 3339 time: ignored (never UI access by accident).
    Unparsable(String),
}

impl DebugOverride {
    pub fn of(node: &Node, now: SystemTime) -> DebugOverride {
        let Some(value) = node.metadata.annotations.get(DEBUG_UI_ACCESS_ANNOTATION) else {
            return DebugOverride::None;
        };
        match crate::time::parse(value) {
            Some(until) if until > now => DebugOverride::Until(until),
            Some(_) => DebugOverride::Expired,
            None => DebugOverride::Unparsable(value.clone()),
        }
    }

    /// Whether Galaxy's UI is open without the remote user.
    pub fn ui_access(&self) -> bool {
        matches!(self, DebugOverride::Until(_))
    }
}

/// Galaxy's unit, from the records. `run.sh` may apply database migrations for minutes
/// before Galaxy answers: the unit stays `activating` until Galaxy accepts connections on
/// its port (the `ExecStartPost` wait; bash's `/dev/tcp`, as Debian's `sh` has none), which
/// is what `omtd status` shows as "starting", within a start timeout that allows it. The
/// agent starts it without waiting (`slowStart`).
pub fn unit_file(path: &str, port: u16) -> FileSpec {
    file(
        GALAXY_UNIT,
        format!(
            "# Managed by omtd (node controller). Changes here are overwritten.\n\
             [Unit]\n\
             Description=Galaxy\n\
             After=network-online.target\n\
             Wants=network-online.target\n\
             \n\
             [Service]\n\
             Type=simple\n\
             User=galaxy\n\
             WorkingDirectory={path}\n\
             ExecStart={path}/run.sh\n\
             ExecStartPost=/bin/bash -c 'until (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 2; done'\n\
             TimeoutStartSec=15min\n\
             Restart=on-failure\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n"
        ),
    )
}

/// The editor's `galaxy.ini` key: `use_remote_user = True` (Apache's user is Galaxy's),
/// `False` while a debug override holds.
pub fn ini_keys(desired: &Desired, ui_access: bool) -> FileSpec {
    let value = if ui_access { "False" } else { "True" };
    let mut f = file(galaxy_ini_path(desired), "");
    f.render = Some(FileRender::IniKeys {
        section: GALAXY_INI_SECTION.to_owned(),
        keys: BTreeMap::from([("use_remote_user".to_owned(), value.to_owned())]),
    });
    f
}
