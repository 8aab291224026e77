//! Sim docker: containers as statuses; `docker_down` makes every call fail.

use omtd_crds::plan::ContainerSpec;

use super::SimHost;
use crate::agent::drivers::{normalise_port, ContainerStatus, Containers, DriverError, Result};

impl SimHost {
    fn docker(&self) -> Result<std::sync::MutexGuard<'_, super::SimState>> {
        let st = self.state();
        if st.docker_down {
            return Err(DriverError::Other(
                "Cannot connect to the Docker daemon".into(),
            ));
        }
        Ok(st)
    }
}

impl Containers for SimHost {
    fn inspect(&mut self, name: &str) -> Result<Option<ContainerStatus>> {
        Ok(self.docker()?.containers.get(name).cloned())
    }

    fn run(&mut self, spec: &ContainerSpec) -> Result<()> {
        let mut st = self.docker()?;
        if st.containers.contains_key(&spec.name) {
            return Err(DriverError::Other(format!(
                "Conflict. The container name \"/{}\" is already in use",
                spec.name
            )));
        }
        let mut ports: Vec<String> = spec.ports.iter().map(|p| normalise_port(p)).collect();
        ports.sort();
        let mut volumes = spec.volumes.clone();
        volumes.sort();
        st.containers.insert(
            spec.name.clone(),
            ContainerStatus {
                image: spec.image.clone(),
                running: true,
                ports,
                volumes,
            },
        );
        st.log.push(format!("docker run {}", spec.name));
        Ok(())
    }

    fn start(&mut self, name: &str) -> Result<()> {
        let mut st = self.docker()?;
        let c = st
            .containers
            .get_mut(name)
            .ok_or_else(|| DriverError::Other(format!("No such container: {name}")))?;
        c.running = true;
        st.log.push(format!("docker start {name}"));
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        let mut st = self.docker()?;
        if st.containers.remove(name).is_some() {
            st.log.push(format!("docker rm {name}"));
        }
        Ok(())
    }
}
