//! Mesos maintenance (1.4, v0 HTTP API): how omtd drains a worker before removing it.
//!
//! `POST /master/maintenance/schedule` REPLACES the whole schedule, so adding a machine is a
//! read-modify-write: read the schedule, take the machines out of any window they are in
//! (Mesos refuses a machine listed twice), add one window for them, post it back. Mesos has
//! no compare-and-swap here; omtd's operator is the only writer (it is leader-elected).
//!
//! Every action is idempotent, because the runtime retries: scheduling machines already
//! scheduled changes nothing (their start time is kept), marking down machines already down
//! or up machines already up posts nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};

use super::mesos::{same_master, MesosMaster};
use super::schedule::{MachineId, MaintenanceWindow, Nanos, ScheduleChange, Unavailability};
use super::ProbeError;

#[derive(Debug, Default, Serialize, Deserialize)]
struct ScheduleJson {
    #[serde(default)]
    windows: Vec<MaintenanceWindow>,
}

#[derive(Debug, Default, Deserialize)]
struct ClusterStatusJson {
    #[serde(default)]
    down_machines: Vec<MachineId>,
}

impl MesosMaster {
    /// The current schedule (`GET /master/maintenance/schedule`).
    pub async fn maintenance_schedule(&self) -> Result<Vec<MaintenanceWindow>, ProbeError> {
        let url = self.target.url("/master/maintenance/schedule");
        self.http
            .run("mesos.maintenance.schedule", &url, async {
                Ok(self
                    .get_json::<ScheduleJson>(url.clone())
                    .await?
                    .value
                    .windows)
            })
            .await
    }

    /// Schedules `machines` for maintenance from `start` (for `duration`, if given): Mesos
    /// then sends their frameworks inverse offers, i.e. starts draining them.
    pub async fn schedule_maintenance(
        &self,
        machines: &[MachineId],
        start: SystemTime,
        duration: Option<Duration>,
    ) -> Result<ScheduleChange, ProbeError> {
        let url = self.target.url("/master/maintenance/schedule");
        self.http
            .run("mesos.maintenance.schedule.add", &url, async {
                let current = self.get_json::<ScheduleJson>(url.clone()).await?;
                let windows = current.value.windows;
                let scheduled = |m: &MachineId| {
                    windows
                        .iter()
                        .any(|w| w.machine_ids.iter().any(|s| s.same(m)))
                };
                if machines.iter().all(scheduled) {
                    return Ok(ScheduleChange::AlreadyScheduled);
                }
                let mut windows = without(windows, machines);
                windows.push(MaintenanceWindow {
                    machine_ids: machines.to_vec(),
                    unavailability: Unavailability {
                        start: Nanos {
                            nanoseconds: nanos_since_epoch(start),
                        },
                        duration: duration.map(|d| Nanos {
                            nanoseconds: i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
                        }),
                    },
                });
                self.post_schedule(&current.answered_by, windows).await?;
                Ok(ScheduleChange::Scheduled)
            })
            .await
    }

    /// Takes `machines` out of the schedule (cancels a drain). `true` if anything changed.
    pub async fn unschedule_maintenance(&self, machines: &[MachineId]) -> Result<bool, ProbeError> {
        let url = self.target.url("/master/maintenance/schedule");
        self.http
            .run("mesos.maintenance.schedule.remove", &url, async {
                let current = self.get_json::<ScheduleJson>(url.clone()).await?;
                let before = current.value.windows.clone();
                let after = without(current.value.windows, machines);
                if after == before {
                    return Ok(false);
                }
                self.post_schedule(&current.answered_by, after).await?;
                Ok(true)
            })
            .await
    }

    /// Marks scheduled `machines` DOWN (`POST /master/machine/down`): Mesos removes their
    /// agents and keeps them from re-registering. Returns the machines it marked; those
    /// already down are skipped. Mesos refuses machines that are not scheduled (400).
    pub async fn machines_down(
        &self,
        machines: &[MachineId],
    ) -> Result<Vec<MachineId>, ProbeError> {
        self.set_machines("down", machines, false).await
    }

    /// Brings DOWN `machines` back UP (`POST /master/machine/up`), which also takes them out
    /// of the schedule. Returns the machines it brought up; those not down are skipped.
    pub async fn machines_up(&self, machines: &[MachineId]) -> Result<Vec<MachineId>, ProbeError> {
        self.set_machines("up", machines, true).await
    }

    async fn set_machines(
        &self,
        verb: &'static str,
        machines: &[MachineId],
        want_down: bool,
    ) -> Result<Vec<MachineId>, ProbeError> {
        let url = self.target.url("/master/maintenance/status");
        let probe = if want_down {
            "mesos.machine.up"
        } else {
            "mesos.machine.down"
        };
        self.http
            .run(probe, &url, async {
                let status = self.get_json::<ClusterStatusJson>(url.clone()).await?;
                let down = &status.value.down_machines;
                let todo: Vec<MachineId> = machines
                    .iter()
                    .filter(|m| down.iter().any(|d| d.same(m)) == want_down)
                    .cloned()
                    .collect();
                if todo.is_empty() {
                    return Ok(todo);
                }
                let post = same_master(&status.answered_by, &format!("/master/machine/{verb}"));
                let body = serde_json::to_value(&todo).map_err(|e| ProbeError::BadJson {
                    url: super::display_url(&post),
                    reason: e.to_string(),
                })?;
                self.post(post, &body).await?;
                Ok(todo)
            })
            .await
    }

    /// v1 operator API `DEACTIVATE_AGENT` (Mesos >= 1.9): the master sends the agent no
    /// more offers; its running tasks are not touched. Idempotent on the Mesos side.
    /// (Not `DRAIN_AGENT`, which kills the tasks.)
    pub async fn deactivate_agent(&self, agent_id: &str) -> Result<(), ProbeError> {
        self.operator_call("DEACTIVATE_AGENT", "deactivate_agent", agent_id)
            .await
    }

    /// v1 operator API `REACTIVATE_AGENT`: offers resume (a drain cancelled).
    pub async fn reactivate_agent(&self, agent_id: &str) -> Result<(), ProbeError> {
        self.operator_call("REACTIVATE_AGENT", "reactivate_agent", agent_id)
            .await
    }

    async fn operator_call(
        &self,
        kind: &'static str,
        field: &'static str,
        agent_id: &str,
    ) -> Result<(), ProbeError> {
        let url = self.target.url("/api/v1");
        let body = serde_json::json!({
            "type": kind,
            field: {"agent_id": {"value": agent_id}},
        });
        let probe = if kind == "DEACTIVATE_AGENT" {
            "mesos.agent.deactivate"
        } else {
            "mesos.agent.reactivate"
        };
        self.http
            .run(probe, &url, self.post(url.clone(), &body))
            .await
    }

    async fn post_schedule(
        &self,
        leader: &Url,
        windows: Vec<MaintenanceWindow>,
    ) -> Result<(), ProbeError> {
        let post = same_master(leader, "/master/maintenance/schedule");
        let body =
            serde_json::to_value(ScheduleJson { windows }).map_err(|e| ProbeError::BadJson {
                url: super::display_url(&post),
                reason: e.to_string(),
            })?;
        self.post(post, &body).await
    }

    async fn post(&self, url: Url, body: &serde_json::Value) -> Result<(), ProbeError> {
        self.http
            .send_following(&self.target, Method::POST, url, Some(body))
            .await?
            .success(&self.target)
            .map(|_| ())
    }
}

/// `windows` with `machines` taken out, and windows left empty dropped (Mesos refuses a
/// window without machines).
fn without(windows: Vec<MaintenanceWindow>, machines: &[MachineId]) -> Vec<MaintenanceWindow> {
    windows
        .into_iter()
        .filter_map(|mut w| {
            w.machine_ids
                .retain(|m| !machines.iter().any(|x| x.same(m)));
            (!w.machine_ids.is_empty()).then_some(w)
        })
        .collect()
}

fn nanos_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        // Before 1970: Mesos takes negative times, but a clock that far off is a bug; "now
        // at the epoch" still means "already started", which is what a drain wants.
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(ids: &[(&str, &str)]) -> MaintenanceWindow {
        MaintenanceWindow {
            machine_ids: ids.iter().map(|(h, i)| MachineId::new(*h, *i)).collect(),
            unavailability: Unavailability {
                start: Nanos { nanoseconds: 1 },
                duration: None,
            },
        }
    }

    #[test]
    fn without_removes_machines_and_empty_windows() {
        let out = without(
            vec![w(&[("a", "1"), ("b", "2")]), w(&[("C", "3")])],
            &[MachineId::new("b", "2"), MachineId::new("c", "3")],
        );
        assert_eq!(out, vec![w(&[("a", "1")])]);
    }

    #[test]
    fn schedule_json_round_trips_the_documented_shape() {
        let text = r#"{"windows":[{"machine_ids":[{"hostname":"node1","ip":"10.0.0.11"}],
            "unavailability":{"start":{"nanoseconds":1443830400000000000},
            "duration":{"nanoseconds":3600000000000}}}]}"#;
        let s: ScheduleJson = serde_json::from_str(text).unwrap();
        let back: serde_json::Value = serde_json::to_value(&s).unwrap();
        let orig: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, orig);
    }
}
