//! Services: running, stopped or masked; enabled or not; restarted when a file they depend
//! on changed in this pass or their restart token changed. Brought up in `after` order.

use std::collections::{BTreeMap, BTreeSet};

use omtd_crds::plan::{ResourceReport, ResourceState, ServiceSpec, ServiceState};

use super::{Pass, ResourceOutcome};
use crate::agent::drivers::ServiceStatus;
use crate::agent::memory::{spec_hash, RESTART_TOKEN};
use crate::agent::merge::id;

/// Plan order, except that a service comes after those it names in `after` (a cycle falls
/// back to plan order for the services in it).
pub fn ordered(services: &[ServiceSpec]) -> Vec<&ServiceSpec> {
    let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut out: Vec<&ServiceSpec> = Vec::with_capacity(services.len());
    while out.len() < services.len() {
        let ready = services.iter().find(|s| {
            !done.contains(s.name.as_str())
                && s.after
                    .iter()
                    .all(|a| done.contains(a.as_str()) || !names.contains(a.as_str()))
        });
        let next = ready.or_else(|| services.iter().find(|s| !done.contains(s.name.as_str())));
        match next {
            Some(s) => {
                done.insert(&s.name);
                out.push(s);
            }
            None => break,
        }
    }
    out
}

/// One step to take on a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Unmask,
    Enable,
    Disable,
    Start,
    Stop,
    Mask,
    Restart,
}

/// The steps that bring `st` to `spec` (restarts are decided separately).
fn steps(spec: &ServiceSpec, st: ServiceStatus, can_mask: bool) -> Vec<Step> {
    let mut v = Vec::new();
    match spec.state {
        ServiceState::Running => {
            if st.masked {
                v.push(Step::Unmask);
            }
            if spec.enabled && !st.enabled {
                v.push(Step::Enable);
            }
            if !spec.enabled && st.enabled {
                v.push(Step::Disable);
            }
            if !st.running {
                v.push(Step::Start);
            }
        }
        ServiceState::Stopped => {
            if st.running {
                v.push(Step::Stop);
            }
            if spec.enabled && !st.enabled && !st.masked {
                v.push(Step::Enable);
            }
            if !spec.enabled && st.enabled {
                v.push(Step::Disable);
            }
        }
        ServiceState::Masked => {
            if st.running {
                v.push(Step::Stop);
            }
            if st.enabled {
                v.push(Step::Disable);
            }
            if can_mask && !st.masked {
                v.push(Step::Mask);
            }
        }
    }
    v
}

/// Where systemd reads the unit files omtd may write (`galaxy.service`).
const UNIT_DIRS: [&str; 2] = ["/etc/systemd/system/", "/lib/systemd/system/"];

impl Pass<'_> {
    pub(super) fn services(&mut self) {
        let plan = self.plan;
        self.reload_units();
        for spec in ordered(&plan.services) {
            self.service(spec);
        }
    }

    /// Before any service is started or restarted: when a unit file was written in this
    /// pass, or once after the agent starts if the plan holds any (a crash between the
    /// write and the reload must not leave systemd on the old definition for good).
    fn reload_units(&mut self) {
        let is_unit = |p: &str| UNIT_DIRS.iter().any(|d| p.starts_with(d));
        let written = self.changed_files.keys().any(|p| is_unit(p));
        let first = !self.mem.units_reloaded && self.plan.files.iter().any(|f| is_unit(&f.path));
        if !(written || first) {
            return;
        }
        match self.host.services.reload_units() {
            Ok(()) => self.mem.units_reloaded = true,
            // The services below then run from what systemd has; the next pass tries again.
            Err(e) => {
                self.mem.units_reloaded = false;
                tracing::warn!(error = %e, "systemctl daemon-reload failed");
            }
        }
    }

    fn service(&mut self, spec: &ServiceSpec) {
        let rid = id::service(spec);
        let corrective = self.is_corrective(&rid, spec_hash(spec));
        let st = match self.host.services.status(&spec.name) {
            Ok(st) => st,
            Err(e) => return self.record_failure(rid, spec, corrective, &e),
        };
        if !st.installed {
            let outcome = if spec.state == ServiceState::Running {
                ResourceOutcome::Failed(format!("{} is not installed on this host", spec.name))
            } else {
                // Not installed is as stopped and masked as a service gets.
                ResourceOutcome::InSync(BTreeMap::new())
            };
            return self.record(rid, spec, corrective, outcome);
        }
        let mut todo = steps(spec, st, self.host.services.can_mask());

        // Restarts: a token not yet applied, or a file it depends on written in this pass.
        let token_due = spec
            .restart_token
            .as_ref()
            .is_some_and(|t| self.mem.restart_tokens.get(&spec.name) != Some(t));
        let file_changes: Vec<bool> = spec
            .restart_on
            .iter()
            .filter_map(|p| self.changed_files.get(p).copied())
            .collect();
        let running_wanted = spec.state == ServiceState::Running;
        if running_wanted && !todo.contains(&Step::Start) && (token_due || !file_changes.is_empty())
        {
            todo.push(Step::Restart);
        }
        // A restart asked by the plan (token, or a file changed by a plan change) is
        // intentional; a start of a dead service whose spec did not change is a repair.
        let restart_intentional = token_due || file_changes.iter().any(|c| !c);
        let corrective = corrective && !(todo == [Step::Restart] && restart_intentional);

        let mut observed = BTreeMap::new();
        if let Some(t) = &spec.restart_token {
            observed.insert(RESTART_TOKEN.to_owned(), t.clone());
        }
        if todo.is_empty() {
            if let Some(pause) = self.mem.limiter.backing_off(&rid) {
                // Up right now, but it has kept dying: say so until it settles.
                self.mem.limiter.settle(&rid, self.now);
                if self.mem.limiter.backing_off(&rid).is_some() {
                    return self.crash_looping(rid, pause, observed);
                }
            }
            if st.starting {
                return self.record(rid, spec, corrective, starting(spec));
            }
            return self.record(rid, spec, corrective, ResourceOutcome::InSync(observed));
        }
        if let Err(pause) = self.may_touch(&rid, corrective) {
            return self.crash_looping(rid, pause, observed);
        }
        for step in &todo {
            let svc = &mut self.host.services;
            let r = match step {
                Step::Unmask => svc.unmask(&spec.name),
                Step::Enable => svc.enable(&spec.name),
                Step::Disable => svc.disable(&spec.name),
                Step::Start if spec.slow_start => svc.start_no_wait(&spec.name, false),
                Step::Start => svc.start(&spec.name),
                Step::Stop => svc.stop(&spec.name),
                Step::Mask => svc.mask(&spec.name),
                Step::Restart if spec.slow_start => svc.start_no_wait(&spec.name, true),
                Step::Restart => svc.restart(&spec.name),
            };
            if let Err(e) = r {
                return self.record_failure(rid, spec, corrective, &e);
            }
            tracing::info!(service = %spec.name, ?step, corrective, "service changed");
        }
        if let Some(t) = &spec.restart_token {
            self.mem.restart_tokens.insert(spec.name.clone(), t.clone());
        }
        if let Some(pause) = self.mem.limiter.backing_off(&rid) {
            self.count_change(corrective);
            return self.crash_looping(rid, pause, observed);
        }
        let started = todo
            .iter()
            .any(|s| matches!(s, Step::Start | Step::Restart));
        if spec.slow_start && started {
            // Counted now: the passes that see it `starting` and then up change nothing.
            self.count_change(corrective);
            return self.record(rid, spec, corrective, starting(spec));
        }
        self.record(rid, spec, corrective, ResourceOutcome::Changed { observed });
    }

    fn crash_looping(
        &mut self,
        id: String,
        pause: std::time::Duration,
        observed: BTreeMap<String, String>,
    ) {
        self.out.resources.push(ResourceReport {
            id,
            state: ResourceState::CrashLooping,
            message: format!(
                "keeps stopping after it is started: restarts backed off (pause {} s)",
                pause.as_secs().max(1)
            ),
            percent: None,
            observed,
        });
    }
}

/// A service on its way up: not converged yet, and the report says why.
fn starting(spec: &ServiceSpec) -> ResourceOutcome {
    let why = if spec.slow_start {
        " (its start may take minutes, e.g. database migrations)"
    } else {
        ""
    };
    ResourceOutcome::Progressing(None, format!("starting: not up yet{why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, after: &[&str]) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            state: ServiceState::Running,
            enabled: true,
            restart_on: vec![],
            restart_token: None,
            after: after.iter().map(|s| (*s).to_owned()).collect(),
            slow_start: false,
        }
    }

    #[test]
    fn after_orders_services() {
        let v = vec![
            svc("mesos-slave", &["chronos"]),
            svc("chronos", &["mesos-master"]),
            svc("mesos-master", &[]),
            svc("zookeeper", &["nope"]),
        ];
        let names: Vec<&str> = ordered(&v).iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["mesos-master", "chronos", "mesos-slave", "zookeeper"]
        );
        let cycle = vec![svc("a", &["b"]), svc("b", &["a"])];
        assert_eq!(ordered(&cycle).len(), 2);
    }

    #[test]
    fn steps_for_a_stray_master() {
        let mut spec = svc("mesos-master", &[]);
        spec.state = ServiceState::Masked;
        let stray = ServiceStatus {
            installed: true,
            running: true,
            enabled: true,
            masked: false,
            starting: false,
        };
        assert_eq!(
            steps(&spec, stray, true),
            vec![Step::Stop, Step::Disable, Step::Mask]
        );
        assert_eq!(steps(&spec, stray, false), vec![Step::Stop, Step::Disable]);
    }
}
