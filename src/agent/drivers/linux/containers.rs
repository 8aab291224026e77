//! Docker containers through the docker CLI: `docker inspect` to observe, `docker run -d
//! --restart unless-stopped` to create, `docker start` to revive, `docker rm -f` to replace
//! or remove. A container whose image, ports or volumes differ from the plan is replaced.

use serde::Deserialize;
use std::collections::BTreeMap;

use omtd_crds::plan::ContainerSpec;

use super::exec::{self, argv, run_ok};
use std::sync::Arc;

use crate::agent::drivers::{normalise_port, ContainerStatus, Containers, DriverError, Result};
use crate::host::command::{CommandRunner, Output};

pub struct LinuxContainers {
    runner: Arc<dyn CommandRunner>,
}

impl LinuxContainers {
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        LinuxContainers { runner }
    }
}

/// The command line that creates a container.
pub fn run_line(spec: &ContainerSpec) -> Vec<String> {
    let mut v = argv(&[
        "docker",
        "run",
        "-d",
        "--name",
        &spec.name,
        "--restart",
        "unless-stopped",
    ]);
    for p in &spec.ports {
        v.push("-p".into());
        v.push(p.clone());
    }
    for vol in &spec.volumes {
        v.push("-v".into());
        v.push(vol.clone());
    }
    v.push(spec.image.clone());
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    config: InspectConfig,
    state: InspectState,
    host_config: InspectHostConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    image: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    running: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectHostConfig {
    #[serde(default)]
    binds: Option<Vec<String>>,
    #[serde(default)]
    port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PortBinding {
    #[serde(default)]
    host_ip: String,
    #[serde(default)]
    host_port: String,
}

/// `docker inspect` JSON → status.
pub fn parse_inspect(json: &str) -> Result<Option<ContainerStatus>> {
    let list: Vec<Inspect> = serde_json::from_str(json)
        .map_err(|e| DriverError::Other(format!("cannot parse docker inspect output: {e}")))?;
    let Some(c) = list.into_iter().next() else {
        return Ok(None);
    };
    let mut ports = Vec::new();
    for (container_port, bindings) in c.host_config.port_bindings.unwrap_or_default() {
        let cp = container_port
            .strip_suffix("/tcp")
            .unwrap_or(&container_port);
        for b in bindings.unwrap_or_default() {
            ports.push(normalise_port(&format!(
                "{}:{}:{cp}",
                b.host_ip, b.host_port
            )));
        }
    }
    ports.sort();
    let mut volumes = c.host_config.binds.unwrap_or_default();
    volumes.sort();
    Ok(Some(ContainerStatus {
        image: c.config.image,
        running: c.state.running,
        ports,
        volumes,
    }))
}

fn is_missing(out: &Output) -> bool {
    out.stderr.contains("No such")
}

impl Containers for LinuxContainers {
    fn inspect(&mut self, name: &str) -> Result<Option<ContainerStatus>> {
        let line = argv(&["docker", "inspect", "--type", "container", name]);
        let out = exec::run(&*self.runner, &line)?;
        if out.success() {
            parse_inspect(&out.stdout)
        } else if is_missing(&out) {
            Ok(None)
        } else {
            Err(exec::failed(&line, &out))
        }
    }

    fn run(&mut self, spec: &ContainerSpec) -> Result<()> {
        run_ok(&*self.runner, &run_line(spec))?;
        Ok(())
    }

    fn start(&mut self, name: &str) -> Result<()> {
        run_ok(&*self.runner, &argv(&["docker", "start", name]))?;
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        let line = argv(&["docker", "rm", "-f", name]);
        let out = exec::run(&*self.runner, &line)?;
        if out.success() || is_missing(&out) {
            Ok(())
        } else {
            Err(exec::failed(&line, &out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::command::{Output, RecordingRunner};
    use omtd_crds::plan::Ensure;

    fn registry() -> ContainerSpec {
        ContainerSpec {
            name: "registry".into(),
            image: "registry:2".into(),
            ports: vec!["127.0.0.1:5000:5000".into()],
            volumes: vec!["/mnt/registry:/var/lib/registry".into()],
            ensure: Ensure::Present,
        }
    }

    #[test]
    fn command_lines() {
        let fake = Arc::new(RecordingRunner::answering(|a| {
            if a.args[0] == "inspect" {
                Output::exit(1).with_stderr("Error: No such container: registry")
            } else {
                Output::ok("abc123\n")
            }
        }));
        let mut c = LinuxContainers::new(fake.clone());
        assert_eq!(c.inspect("registry").unwrap(), None);
        c.run(&registry()).unwrap();
        c.start("registry").unwrap();
        c.remove("registry").unwrap();
        assert_eq!(
            fake.lines(),
            vec![
                "docker inspect --type container registry",
                "docker run -d --name registry --restart unless-stopped -p 127.0.0.1:5000:5000 -v /mnt/registry:/var/lib/registry registry:2",
                "docker start registry",
                "docker rm -f registry",
            ]
        );
    }

    #[test]
    fn inspect_parses_and_compares_with_the_plan() {
        let json = r#"[{"Id":"x","Config":{"Image":"registry:2"},"State":{"Running":false},
            "HostConfig":{"Binds":["/mnt/registry:/var/lib/registry"],
            "PortBindings":{"5000/tcp":[{"HostIp":"127.0.0.1","HostPort":"5000"}]}}}]"#;
        let st = parse_inspect(json).unwrap().unwrap();
        assert_eq!(st.image, "registry:2");
        assert!(!st.running);
        assert_eq!(st.ports, vec![normalise_port(&registry().ports[0])]);
        assert_eq!(st.volumes, registry().volumes);
        let cadvisor = r#"[{"Config":{"Image":"google/cadvisor"},"State":{"Running":true},
            "HostConfig":{"Binds":null,"PortBindings":{"8080/tcp":[{"HostIp":"","HostPort":"8080"}]}}}]"#;
        let st = parse_inspect(cadvisor).unwrap().unwrap();
        assert_eq!(st.ports, vec![normalise_port("8080:8080")]);
        assert!(st.volumes.is_empty());
    }

    #[test]
    fn docker_down_is_an_error_not_absence() {
        let fake = Arc::new(RecordingRunner::answering(|_| {
            Output::exit(1)
                .with_stderr("Cannot connect to the Docker daemon at unix:///var/run/docker.sock")
        }));
        let mut c = LinuxContainers::new(fake);
        assert!(c.inspect("registry").is_err());
    }
}
