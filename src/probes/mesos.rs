//! The Mesos master (1.4) over HTTP: who leads, which agents and frameworks are active, and
//! which machines are in maintenance.
//!
//! `/master/state` and the maintenance endpoints answer only on the leading master; any
//! other master answers 307 with the leader's address (protocol-relative,
//! `//leader:5050/master/state`). The probe follows that redirect with the same credentials
//! (`authenticate_http_readonly` guards every endpoint with the master's credentials), so
//! it can be pointed at any master, e.g. the manager's, and still reports the leader — which
//! may be a stray master on a worker: exactly what the leader-guard must see.

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use omtd_controllers::observed::{
    MesosAgent, MesosFramework, MesosState, MesosTask, RUNNING_TASK_STATES,
};

use super::http::{redirect_target, Answer};
use super::{HttpProbe, HttpTarget, ProbeError};

pub use super::schedule::{MachineId, MaintenanceWindow, Nanos, ScheduleChange, Unavailability};

/// A Mesos master to probe (any master of the cluster: requests reach the leader).
#[derive(Debug, Clone)]
pub struct MesosMaster {
    pub(crate) http: HttpProbe,
    pub(crate) target: HttpTarget,
}

impl MesosMaster {
    /// `target` is a master's base URL (`http://manager:5050`, no path prefix: requests after
    /// a redirect go to the leader's root) with the principal and secret of the master's
    /// credentials file.
    pub fn new(http: HttpProbe, target: HttpTarget) -> MesosMaster {
        MesosMaster { http, target }
    }

    pub fn target(&self) -> &HttpTarget {
        &self.target
    }

    /// The same master, presenting `auth` (or no credentials).
    pub fn presenting(&self, auth: Option<super::BasicAuth>) -> MesosMaster {
        MesosMaster {
            http: self.http.clone(),
            target: self.target.clone().presenting(auth),
        }
    }

    /// The leader's state (`/master/state`) and maintenance status
    /// (`/master/maintenance/status`), as the controllers observe them.
    pub async fn state(&self) -> Result<MesosState, ProbeError> {
        let url = self.target.url("/master/state");
        self.http
            .run("mesos.state", &url, async {
                let state = self.get_json::<StateJson>(url.clone()).await?;
                // Ask the master that answered (the leader) directly: one redirect less.
                let status_url = same_master(&state.answered_by, "/master/maintenance/status");
                let status = self.get_json::<StatusJson>(status_url).await?;
                Ok(to_state(state.value, status.value))
            })
            .await
    }

    /// The leading master's base URL, as `/master/redirect` names it; `None` while no
    /// master is elected (503). Cheap: no state is rendered.
    pub async fn leader_url(&self) -> Result<Option<Url>, ProbeError> {
        let url = self.target.url("/master/redirect");
        self.http
            .run("mesos.redirect", &url, async {
                let answer = self
                    .http
                    .send(&self.target, Method::GET, url.clone(), None)
                    .await?;
                match answer.status {
                    StatusCode::TEMPORARY_REDIRECT => leader_from_redirect(&answer).map(Some),
                    StatusCode::SERVICE_UNAVAILABLE => Ok(None),
                    _ => Err(answer.bad_status(&self.target)),
                }
            })
            .await
    }

    /// `/master/health`: whether this master's process serves HTTP (200 on any master,
    /// leading or not).
    pub async fn health(&self) -> Result<(), ProbeError> {
        self.http
            .get_ok("mesos.health", &self.target, "/master/health")
            .await
    }

    /// GET `url` on the leader as JSON, and the master that answered.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<Answered<T>, ProbeError> {
        let answer = self
            .http
            .send_following(&self.target, Method::GET, url, None)
            .await?
            .success(&self.target)?;
        Ok(Answered {
            value: answer.json(&self.target)?,
            answered_by: answer.url,
        })
    }
}

pub(crate) struct Answered<T> {
    pub value: T,
    /// The URL that finally answered (on the leader).
    pub answered_by: Url,
}

/// `path` on the master that served `url`.
pub(crate) fn same_master(url: &Url, path: &str) -> Url {
    let mut out = url.clone();
    out.set_path(path);
    out.set_query(None);
    out
}

/// The leader's base URL from `/master/redirect`'s `Location` (`//leader:5050`).
fn leader_from_redirect(answer: &Answer) -> Result<Url, ProbeError> {
    let mut leader = redirect_target(answer)?;
    leader.set_path("/");
    leader.set_query(None);
    Ok(leader)
}

// ---- The documented JSON, only the fields the controllers need ----

#[derive(Debug, Deserialize)]
struct StateJson {
    /// The master's release, `1.4.1`.
    #[serde(default)]
    version: Option<String>,
    /// The leader's PID, `master@10.0.0.1:5050`; absent while no leader is elected.
    #[serde(default)]
    leader: Option<String>,
    #[serde(default)]
    leader_info: Option<MasterInfoJson>,
    #[serde(default)]
    slaves: Vec<SlaveJson>,
    #[serde(default)]
    frameworks: Vec<FrameworkJson>,
    /// Tasks of frameworks that have not re-registered since a master failover: they
    /// still run on their agents.
    #[serde(default)]
    orphan_tasks: Vec<TaskJson>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MasterInfoJson {
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub address: Option<AddressJson>,
    #[serde(default)]
    pub pid: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AddressJson {
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
}

impl MasterInfoJson {
    /// `hostname`, else `address.hostname`, else `address.ip`, else the PID's address: Mesos
    /// fills `hostname` unless name resolution failed at start.
    pub(crate) fn name(&self) -> Option<String> {
        let address = self.address.as_ref();
        self.hostname
            .clone()
            .or_else(|| address.and_then(|a| a.hostname.clone()))
            .or_else(|| address.and_then(|a| a.ip.clone()))
            .or_else(|| self.pid.as_deref().and_then(pid_host))
            .filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Deserialize)]
struct SlaveJson {
    #[serde(default)]
    id: String,
    hostname: String,
    /// False while the agent is disconnected (deactivated) but not yet removed.
    #[serde(default)]
    active: bool,
    /// Mesos >= 1.9: deactivated by the operator API (`DEACTIVATE_AGENT`).
    #[serde(default)]
    deactivated: bool,
}

#[derive(Debug, Deserialize)]
struct FrameworkJson {
    name: String,
    #[serde(default)]
    active: bool,
    /// Mesos ≥ 0.21; a framework is usable only while connected.
    #[serde(default = "yes")]
    connected: bool,
    /// Its current tasks (finished ones are under `completed_tasks`, not read).
    #[serde(default)]
    tasks: Vec<TaskJson>,
}

#[derive(Debug, Deserialize)]
struct TaskJson {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    slave_id: String,
    #[serde(default)]
    state: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
struct StatusJson {
    #[serde(default)]
    draining_machines: Vec<DrainingJson>,
    #[serde(default)]
    down_machines: Vec<MachineId>,
}

#[derive(Debug, Deserialize)]
struct DrainingJson {
    id: MachineId,
}

/// `master@10.0.0.1:5050` → `10.0.0.1`.
fn pid_host(pid: &str) -> Option<String> {
    let addr = pid.rsplit_once('@').map_or(pid, |(_, a)| a);
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    (!host.is_empty()).then(|| host.to_owned())
}

/// The tasks that still run (a terminal or unreachable task does not hold a drain), each
/// with its agent's hostname when the master lists the agent.
fn running_tasks(state: &StateJson) -> Vec<MesosTask> {
    let hostname = |id: &str| {
        state
            .slaves
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.hostname.clone())
    };
    let framework_tasks = state
        .frameworks
        .iter()
        .flat_map(|f| f.tasks.iter().map(move |t| (f.name.as_str(), t)));
    let orphans = state.orphan_tasks.iter().map(|t| ("", t));
    framework_tasks
        .chain(orphans)
        .filter(|(_, t)| RUNNING_TASK_STATES.contains(&t.state.as_str()))
        .map(|(framework, t)| MesosTask {
            id: t.id.clone(),
            name: t.name.clone(),
            framework: framework.to_owned(),
            agent_id: t.slave_id.clone(),
            agent_hostname: hostname(&t.slave_id),
            state: t.state.clone(),
        })
        .collect()
}

fn to_state(state: StateJson, status: StatusJson) -> MesosState {
    let leader = state
        .leader_info
        .as_ref()
        .and_then(MasterInfoJson::name)
        .or_else(|| state.leader.as_deref().and_then(pid_host));
    let tasks = running_tasks(&state);
    MesosState {
        leader,
        version: state.version,
        tasks,
        agent_index: Default::default(),
        agents: state
            .slaves
            .into_iter()
            .map(|s| MesosAgent {
                id: s.id,
                hostname: s.hostname,
                active: s.active,
                deactivated: s.deactivated,
            })
            .collect(),
        frameworks: state
            .frameworks
            .into_iter()
            .map(|f| MesosFramework {
                name: f.name,
                active: f.active && f.connected,
            })
            .collect(),
        down_machines: status
            .down_machines
            .iter()
            .filter_map(MachineId::name)
            .collect(),
        draining_machines: status
            .draining_machines
            .iter()
            .filter_map(|d| d.id.name())
            .collect(),
    }
}

#[cfg(test)]
#[path = "mesos_never_panic.rs"]
mod never_panic;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_host_takes_the_address() {
        assert_eq!(
            pid_host("master@10.0.0.1:5050").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(pid_host("10.0.0.1:5050").as_deref(), Some("10.0.0.1"));
        assert_eq!(pid_host("master@:5050"), None);
    }

    #[test]
    fn leader_falls_back_from_hostname_to_address_to_pid() {
        let info: MasterInfoJson =
            serde_json::from_str(r#"{"address":{"ip":"10.0.0.9","port":5050}}"#).unwrap();
        assert_eq!(info.name().as_deref(), Some("10.0.0.9"));
        let state: StateJson =
            serde_json::from_str(r#"{"leader":"master@10.0.0.2:5050"}"#).unwrap();
        assert_eq!(
            to_state(state, StatusJson::default()).leader.as_deref(),
            Some("10.0.0.2")
        );
    }

    #[test]
    fn only_tasks_that_still_run_count_with_their_agents_hostname() {
        let state: StateJson = serde_json::from_str(
            r#"{"version":"1.9.0",
            "slaves":[{"id":"S1","hostname":"10.0.0.23","active":true,"deactivated":true}],
            "frameworks":[{"name":"chronos","active":true,"tasks":[
                {"id":"a","name":"job-a","slave_id":"S1","state":"TASK_RUNNING"},
                {"id":"b","name":"job-b","slave_id":"S1","state":"TASK_FINISHED"},
                {"id":"c","name":"job-c","slave_id":"S1","state":"TASK_KILLING"},
                {"id":"d","name":"job-d","slave_id":"S9","state":"TASK_STAGING"}],
              "completed_tasks":[{"id":"e","slave_id":"S1","state":"TASK_RUNNING"}]}],
            "orphan_tasks":[{"id":"f","slave_id":"S1","state":"TASK_STARTING"}]}"#,
        )
        .unwrap();
        let m = to_state(state, StatusJson::default());
        let ids: Vec<&str> = m.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["a", "c", "d", "f"]);
        assert_eq!(m.tasks[0].framework, "chronos");
        assert_eq!(m.tasks[0].agent_hostname.as_deref(), Some("10.0.0.23"));
        assert_eq!(m.tasks[2].agent_hostname, None, "agent not listed");
        assert_eq!(m.tasks_on(&["node3.omtd", "10.0.0.23"]).len(), 3);
        assert!(m.has_deactivate_agent());
        assert!(m.agents[0].deactivated);
    }
}
