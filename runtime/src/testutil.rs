//! Small builders for tasks and allocations, shared by unit tests, the integration tests in
//! `runtime/tests/` and the controller's tests. Not part of the agent's behaviour.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::spec::{
    AllocSpec, DesiredStatus, DockerConfig, LogConfig, NetworkResource, Port, RawExecConfig,
    Resources, RestartPolicy, Task, TaskConfig,
};

/// A docker task running `image` with Nomad's defaults.
pub fn task_docker(name: &str, image: &str) -> Task {
    task_with(
        name,
        TaskConfig::Docker(DockerConfig {
            image: image.to_string(),
            ..DockerConfig::default()
        }),
    )
}

/// A raw_exec task running `command args…`.
pub fn task_raw_exec(name: &str, command: &str, args: &[&str]) -> Task {
    task_with(
        name,
        TaskConfig::RawExec(RawExecConfig {
            command: command.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            work_dir: None,
        }),
    )
}

fn task_with(name: &str, config: TaskConfig) -> Task {
    Task {
        name: name.to_string(),
        driver: config.driver_name().to_string(),
        config,
        env: BTreeMap::new(),
        meta: BTreeMap::new(),
        resources: Resources::default(),
        restart: None,
        services: vec![],
        artifacts: vec![],
        constraints: vec![],
        affinities: vec![],
        kill_timeout: Duration::from_secs(5),
        kill_signal: None,
        shutdown_delay: Duration::ZERO,
        user: None,
        leader: false,
        logs: LogConfig::default(),
    }
}

/// An allocation `job.group[0]` of a service job holding `tasks`, with a fresh UUID.
pub fn alloc(job: &str, node_id: &str, tasks: Vec<Task>) -> AllocSpec {
    AllocSpec {
        id: uuid::Uuid::new_v4().to_string(),
        name: format!("{job}.{job}[0]"),
        namespace: "default".into(),
        job_id: job.to_string(),
        job_version: 0,
        job_type: "service".into(),
        group: job.to_string(),
        node_id: node_id.to_string(),
        desired_status: DesiredStatus::Run,
        tasks,
        networks: vec![],
        restart: RestartPolicy::service_default(),
        services: vec![],
        modify_index: 1,
    }
}

/// A group network with one static port `label`: host `value` → task `to`.
pub fn network_with_port(label: &str, value: u16, to: u16) -> NetworkResource {
    NetworkResource {
        mode: "host".into(),
        reserved_ports: vec![Port {
            label: label.to_string(),
            value,
            to,
            ..Port::default()
        }],
        ..NetworkResource::default()
    }
}
