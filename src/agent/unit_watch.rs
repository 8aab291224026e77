//! systemd's D-Bus signals, so a managed service that dies (or that someone starts, stops or
//! masks) is looked at at once instead of at the next `--service-check` tick.
//!
//! systemd sends `org.freedesktop.DBus.Properties.PropertiesChanged` from each unit's object
//! (`/org/freedesktop/systemd1/unit/<escaped name>`) when its state changes — but only
//! once some client has called `Manager.Subscribe()`. The watcher adds one match rule for
//! the whole unit path namespace (one rule, whatever the number of units, and units not
//! loaded yet are covered too), subscribes, and wakes the agent's service check when the
//! unit is one the plan manages. Bursts (a restart changes several properties) coalesce in
//! the `Notify`, which holds at most one wake-up.
//!
//! The periodic service check stays: signals can be lost (the bus restarts, the watcher
//! falls behind), and SysV hosts have none. Where no bus is reachable the agent polls only.
//!
//! The bus address is injectable (`OMTD_SYSTEMD_BUS`) so tests run a private `dbus-daemon`
//! with a fake systemd instead of needing the system bus.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// Environment variable naming the D-Bus address to listen on instead of the system bus.
pub const BUS_ENV: &str = "OMTD_SYSTEMD_BUS";

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_IFACE: &str = "org.freedesktop.systemd1.Manager";
const UNIT_PATHS: &str = "/org/freedesktop/systemd1/unit";

/// Signals queued before the watcher reads them; beyond that zbus drops the oldest, which
/// only costs a wake-up the periodic check makes up for.
const QUEUE: usize = 256;

/// Which bus systemd is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    System,
    /// A D-Bus address (`unix:path=/run/...`), e.g. a test's private bus.
    Address(String),
}

impl Bus {
    /// `OMTD_SYSTEMD_BUS` when set; else the system bus where systemd runs (the agent not
    /// confined to a test root); else none.
    pub fn detect(confined: bool) -> Option<Bus> {
        if let Ok(a) = std::env::var(BUS_ENV) {
            if !a.is_empty() {
                return Some(Bus::Address(a));
            }
        }
        (!confined && Path::new("/run/systemd/system").exists()).then_some(Bus::System)
    }
}

impl std::fmt::Display for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bus::System => f.write_str("system bus"),
            Bus::Address(a) => write!(f, "bus at {a}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot connect to the {bus}: {source}")]
    Connect {
        bus: String,
        #[source]
        source: zbus::Error,
    },
    #[error("cannot listen to systemd's unit signals: {0}")]
    Match(#[source] zbus::Error),
    #[error("systemd refused Subscribe(): {0}")]
    Subscribe(#[source] zbus::Error),
}

/// A running watcher; stops when dropped.
pub struct UnitWatch {
    units: watch::Sender<BTreeSet<String>>,
    task: JoinHandle<()>,
}

impl UnitWatch {
    /// Connect, listen, subscribe; `wake` is notified for each change of a managed unit.
    pub async fn start(bus: &Bus, wake: Arc<Notify>) -> Result<UnitWatch, WatchError> {
        let connect = |source| WatchError::Connect {
            bus: bus.to_string(),
            source,
        };
        let conn = match bus {
            Bus::System => zbus::Connection::system().await.map_err(connect)?,
            Bus::Address(a) => zbus::connection::Builder::address(a.as_str())
                .map_err(connect)?
                .build()
                .await
                .map_err(connect)?,
        };
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(SYSTEMD)
            .and_then(|b| b.interface("org.freedesktop.DBus.Properties"))
            .and_then(|b| b.member("PropertiesChanged"))
            .and_then(|b| b.path_namespace(UNIT_PATHS))
            .map_err(WatchError::Match)?
            .build();
        // The match goes in before Subscribe, so no signal falls between the two.
        let mut stream = zbus::MessageStream::for_match_rule(rule, &conn, Some(QUEUE))
            .await
            .map_err(WatchError::Match)?;
        conn.call_method(
            Some(SYSTEMD),
            MANAGER_PATH,
            Some(MANAGER_IFACE),
            "Subscribe",
            &(),
        )
        .await
        .map_err(WatchError::Subscribe)?;
        tracing::info!(%bus, "listening to systemd unit signals");
        let (units, rx) = watch::channel(BTreeSet::new());
        let task = tokio::spawn(async move {
            // The connection lives as long as the task reads from it.
            let _conn = conn;
            while let Some(msg) = stream.next().await {
                let Ok(msg) = msg else { continue };
                let header = msg.header();
                let Some(unit) = header.path().and_then(|p| unit_of_path(p.as_str())) else {
                    continue;
                };
                if rx.borrow().contains(&unit) {
                    tracing::debug!(%unit, "systemd: unit changed");
                    wake.notify_one();
                }
            }
            tracing::warn!("systemd signals stopped: services are polled only");
        });
        Ok(UnitWatch { units, task })
    }

    /// The services the plan manages (names without `.service`).
    pub fn set_units(&self, services: impl IntoIterator<Item = String>) {
        let set: BTreeSet<String> = services
            .into_iter()
            // As the systemd driver names them (`systemctl start NAME.service`).
            .map(|s| format!("{s}.service"))
            .collect();
        self.units.send_if_modified(|cur| {
            let changed = *cur != set;
            if changed {
                *cur = set;
            }
            changed
        });
    }
}

impl Drop for UnitWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The unit name of a unit object path: systemd escapes every byte that is not
/// `[A-Za-z0-9]` as `_xx` (hex), e.g. `mesos_2dmaster_2eservice`.
pub fn unit_of_path(path: &str) -> Option<String> {
    let escaped = path.strip_prefix(UNIT_PATHS)?.strip_prefix('/')?;
    if escaped.is_empty() || escaped.contains('/') {
        return None;
    }
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = escaped.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The object path systemd gives a unit (the inverse of [`unit_of_path`]).
pub fn path_of_unit(unit: &str) -> String {
    let mut p = String::from(UNIT_PATHS);
    p.push('/');
    for b in unit.bytes() {
        if b.is_ascii_alphanumeric() {
            p.push(char::from(b));
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_paths_round_trip() {
        let p = path_of_unit("mesos-master.service");
        assert_eq!(p, "/org/freedesktop/systemd1/unit/mesos_2dmaster_2eservice");
        assert_eq!(unit_of_path(&p).as_deref(), Some("mesos-master.service"));
        assert_eq!(
            unit_of_path("/org/freedesktop/systemd1/unit/getty_40tty1_2eservice").as_deref(),
            Some("getty@tty1.service")
        );
        assert_eq!(unit_of_path("/org/freedesktop/systemd1"), None);
        assert_eq!(unit_of_path("/org/freedesktop/systemd1/unit/bad_zz"), None);
    }
}
