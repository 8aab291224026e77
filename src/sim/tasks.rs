//! Tasks running on the sim agents, as the master lists them in `/master/state`: a test
//! starts one on an agent (as Chronos would launch a job) and finishes it. The documented
//! Mesos behaviour kept here: a task runs until it finishes, and marking its machine DOWN
//! kills it (TASK_LOST: it leaves the running tasks for good, even if the machine comes
//! back up). Scheduling a machine for maintenance (DRAINING) does not touch it.

use serde::Serialize;

/// One task the sim master knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimTask {
    pub id: String,
    pub name: String,
    /// The framework that launched it (`chronos`).
    pub framework: String,
    /// The sim node whose agent runs it.
    pub node: String,
    /// `TASK_RUNNING`, `TASK_FINISHED`, `TASK_LOST`.
    pub state: String,
}

impl SimTask {
    pub fn running(&self) -> bool {
        self.state == "TASK_RUNNING"
    }
}

/// The tasks of the world, in launch order.
#[derive(Debug, Default)]
pub struct Tasks {
    tasks: Vec<SimTask>,
    launched: u64,
}

impl Tasks {
    /// Launches `name` on `node`'s agent; returns its id.
    pub fn start(&mut self, framework: &str, node: &str, name: &str) -> String {
        self.launched += 1;
        let id = format!("{name}.{}", self.launched);
        self.tasks.push(SimTask {
            id: id.clone(),
            name: name.to_owned(),
            framework: framework.to_owned(),
            node: node.to_owned(),
            state: "TASK_RUNNING".into(),
        });
        id
    }

    /// The task ends by itself (TASK_FINISHED). `false` if no such task was running.
    pub fn finish(&mut self, id: &str) -> bool {
        self.end(|t| t.id == id, "TASK_FINISHED")
    }

    /// Every running task on a node whose machine went DOWN is lost.
    pub fn lose_on(&mut self, down: impl Fn(&str) -> bool) -> bool {
        self.end(|t| down(&t.node), "TASK_LOST")
    }

    fn end(&mut self, which: impl Fn(&SimTask) -> bool, state: &str) -> bool {
        let mut any = false;
        for t in self.tasks.iter_mut().filter(|t| t.running() && which(t)) {
            t.state = state.to_owned();
            any = true;
        }
        any
    }

    pub fn all(&self) -> &[SimTask] {
        &self.tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_runs_until_it_finishes_or_its_machine_goes_down() {
        let mut t = Tasks::default();
        let a = t.start("chronos", "node3.omtd", "job");
        let b = t.start("chronos", "node1.omtd", "job");
        assert_ne!(a, b);
        assert!(t.lose_on(|n| n == "node3.omtd"));
        assert!(!t.finish(&a), "a lost task does not finish");
        assert!(t.finish(&b));
        let states: Vec<&str> = t.all().iter().map(|x| x.state.as_str()).collect();
        assert_eq!(states, ["TASK_LOST", "TASK_FINISHED"]);
        assert!(!t.lose_on(|_| true), "nothing left running");
    }
}
