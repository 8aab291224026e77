//! Containers: created when missing, replaced when image, ports or volumes differ from the
//! plan, started when stopped, removed when absent.

use std::collections::BTreeMap;

use omtd_crds::plan::{ContainerSpec, Ensure, ResourceState};

use super::{Pass, ResourceOutcome};
use crate::agent::drivers::{normalise_port, ContainerStatus};
use crate::agent::memory::spec_hash;
use crate::agent::merge::id;

/// What to do with a container.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Nothing,
    Run,
    Replace,
    Start,
    Remove,
}

fn step(spec: &ContainerSpec, cur: Option<&ContainerStatus>) -> Step {
    match (spec.ensure, cur) {
        (Ensure::Absent, None) => Step::Nothing,
        (Ensure::Absent, Some(_)) => Step::Remove,
        (Ensure::Present, None) => Step::Run,
        (Ensure::Present, Some(c)) => {
            let mut ports: Vec<String> = spec.ports.iter().map(|p| normalise_port(p)).collect();
            ports.sort();
            let mut volumes = spec.volumes.clone();
            volumes.sort();
            let mut cur_ports = c.ports.clone();
            cur_ports.sort();
            let mut cur_volumes = c.volumes.clone();
            cur_volumes.sort();
            if c.image != spec.image || cur_ports != ports || cur_volumes != volumes {
                Step::Replace
            } else if !c.running {
                Step::Start
            } else {
                Step::Nothing
            }
        }
    }
}

impl Pass<'_> {
    pub(super) fn containers(&mut self) {
        let plan = self.plan;
        for spec in &plan.containers {
            self.container(spec);
        }
    }

    fn container(&mut self, spec: &ContainerSpec) {
        let rid = id::container(spec);
        let corrective = self.is_corrective(&rid, spec_hash(spec));
        let cur = match self.host.containers.inspect(&spec.name) {
            Ok(c) => c,
            Err(e) => return self.record_failure(rid, spec, corrective, &e),
        };
        let todo = step(spec, cur.as_ref());
        if todo == Step::Nothing {
            return self.record(
                rid,
                spec,
                corrective,
                ResourceOutcome::InSync(BTreeMap::new()),
            );
        }
        if let Err(pause) = self.may_touch(&rid, corrective) {
            return self.backing_off(rid, pause, ResourceState::Failed);
        }
        let c = &mut self.host.containers;
        let r = match todo {
            Step::Run => c.run(spec),
            Step::Replace => c.remove(&spec.name).and_then(|()| c.run(spec)),
            Step::Start => c.start(&spec.name),
            Step::Remove => c.remove(&spec.name),
            Step::Nothing => Ok(()),
        };
        match r {
            Ok(()) => {
                tracing::info!(container = %spec.name, ?todo, corrective, "container changed");
                self.record_changed(rid, spec, corrective)
            }
            Err(e) => self.record_failure(rid, spec, corrective, &e),
        }
    }
}
