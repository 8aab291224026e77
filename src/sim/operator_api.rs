//! The v1 operator API's agent calls on the sim master (`POST /api/v1`): `DEACTIVATE_AGENT`
//! and `REACTIVATE_AGENT`, which Mesos has from 1.9 on. A deactivated agent gets no more
//! offers, so no new task starts on it; the tasks it runs go on. A master older than 1.9
//! (the default here, 1.4.1, what the cluster runs) answers them as Mesos 1.4 does: 400.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::maintenance::Refused;

/// The version the sim masters report unless a test sets another.
pub const DEFAULT_VERSION: &str = "1.4.1";

/// The masters' version, and the agents (by id) the operator API deactivated.
#[derive(Debug)]
pub struct AgentControl {
    version: String,
    deactivated: BTreeSet<String>,
}

impl Default for AgentControl {
    fn default() -> Self {
        AgentControl {
            version: DEFAULT_VERSION.to_owned(),
            deactivated: BTreeSet::new(),
        }
    }
}

/// The body of one call: `{"type": "DEACTIVATE_AGENT", "deactivate_agent": {"agent_id":
/// {"value": "..."}}}` (or the `reactivate_agent` twin).
#[derive(Deserialize)]
struct Call {
    #[serde(rename = "type")]
    kind: String,
    deactivate_agent: Option<AgentCall>,
    reactivate_agent: Option<AgentCall>,
}

#[derive(Deserialize)]
struct AgentCall {
    agent_id: Value,
}

#[derive(Deserialize)]
struct Value {
    value: String,
}

impl AgentControl {
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn set_version(&mut self, version: &str) {
        version.clone_into(&mut self.version);
    }

    /// Whether the master has `DEACTIVATE_AGENT` (and so reports `deactivated` per agent).
    pub fn has_deactivate(&self) -> bool {
        omtd_controllers::observed::has_deactivate_agent(&self.version)
    }

    pub fn is_deactivated(&self, agent_id: &str) -> bool {
        self.deactivated.contains(agent_id)
    }

    /// One `POST /api/v1` call; `known` says whether an agent id is registered.
    pub fn call(&mut self, body: &[u8], known: impl Fn(&str) -> bool) -> Result<(), Refused> {
        let call: Call = serde_json::from_slice(body)
            .map_err(|e| Refused(format!("Failed to parse body into Call protobuf: {e}")))?;
        let agent = match call.kind.as_str() {
            "DEACTIVATE_AGENT" | "REACTIVATE_AGENT" if !self.has_deactivate() => {
                return Err(Refused(format!(
                    "Failed to validate master::Call: Unknown call type {} (master {})",
                    call.kind, self.version
                )))
            }
            "DEACTIVATE_AGENT" => call.deactivate_agent,
            "REACTIVATE_AGENT" => call.reactivate_agent,
            other => return Err(Refused(format!("sim: call {other} is not modelled"))),
        };
        let Some(agent) = agent else {
            return Err(Refused(format!(
                "Failed to validate master::Call: Expecting '{}' to be present",
                call.kind.to_lowercase()
            )));
        };
        let id = agent.agent_id.value;
        if !known(&id) {
            return Err(Refused(format!("Agent {id} not found")));
        }
        if call.kind == "DEACTIVATE_AGENT" {
            self.deactivated.insert(id);
        } else {
            self.deactivated.remove(&id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(kind: &str, id: &str) -> Vec<u8> {
        let field = kind.to_lowercase();
        serde_json::json!({"type": kind, field: {"agent_id": {"value": id}}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_1_4_master_refuses_the_call_a_1_9_master_deactivates_and_reactivates() {
        let mut c = AgentControl::default();
        let known = |id: &str| id == "S1";
        assert!(c.call(&call("DEACTIVATE_AGENT", "S1"), known).is_err());
        assert!(!c.is_deactivated("S1"));
        c.set_version("1.9.0");
        c.call(&call("DEACTIVATE_AGENT", "S1"), known)
            .expect("deactivate");
        assert!(c.is_deactivated("S1"));
        assert!(c.call(&call("DEACTIVATE_AGENT", "S9"), known).is_err());
        c.call(&call("REACTIVATE_AGENT", "S1"), known)
            .expect("reactivate");
        assert!(!c.is_deactivated("S1"));
    }
}
