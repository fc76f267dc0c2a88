//! Small builders for tests (controller-rs' `fixtures.rs`): `mock::job().count(3)`,
//! `mock::alloc(&job, 0).client_status(ClientStatus::Failed)`, `mock::node()`. Everything they
//! build is deterministic, so planner tests can compare names and ids.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

/// A service job `example` with one group `web` (count 1) and one docker task `web`.
pub fn job() -> Job {
    let task = Task {
        name: "web".into(),
        driver: "docker".into(),
        config: TaskConfig::Docker(DockerConfig {
            image: "busybox:local".into(),
            ..Default::default()
        }),
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
    };
    Job {
        id: "example".into(),
        name: "example".into(),
        namespace: "default".into(),
        region: "global".into(),
        job_type: JobType::Service,
        priority: 50,
        all_at_once: false,
        datacenters: vec!["*".into()],
        node_pool: "default".into(),
        constraints: vec![],
        affinities: vec![],
        spreads: vec![],
        update: UpdateStrategy::default(),
        meta: BTreeMap::new(),
        task_groups: vec![TaskGroup {
            name: "web".into(),
            count: 1,
            constraints: vec![],
            affinities: vec![],
            spreads: vec![],
            networks: vec![],
            services: vec![],
            restart: RestartPolicy::service_default(),
            reschedule: ReschedulePolicy::service_default(),
            update: UpdateStrategy::default(),
            ephemeral_disk: EphemeralDisk::default(),
            meta: BTreeMap::new(),
            shutdown_delay: Duration::ZERO,
            stop_after_client_disconnect: None,
            max_client_disconnect: None,
            tasks: vec![task],
        }],
        stop: false,
        version: 0,
    }
}

/// Builder methods on a mock job; each touches the first group unless it says otherwise.
pub trait MockJob: Sized {
    fn count(self, n: u32) -> Self;
    fn batch(self) -> Self;
    fn stopped(self) -> Self;
    fn version(self, v: u64) -> Self;
    fn static_port(self, label: &str, port: u16) -> Self;
    fn dynamic_port(self, label: &str) -> Self;
    fn max_parallel(self, n: u32) -> Self;
    fn image(self, image: &str) -> Self;
    fn resources(self, cpu: u64, memory: u64) -> Self;
    fn with(self, f: impl FnOnce(&mut Job)) -> Self;
}

impl MockJob for Job {
    fn count(self, n: u32) -> Self {
        self.with(|j| j.task_groups[0].count = n)
    }
    fn batch(self) -> Self {
        self.with(|j| {
            j.job_type = JobType::Batch;
            j.task_groups[0].restart = RestartPolicy::batch_default();
            j.task_groups[0].reschedule = ReschedulePolicy::batch_default();
        })
    }
    fn stopped(self) -> Self {
        self.with(|j| j.stop = true)
    }
    fn version(self, v: u64) -> Self {
        self.with(|j| j.version = v)
    }
    fn static_port(self, label: &str, port: u16) -> Self {
        self.with(|j| {
            network_of(&mut j.task_groups[0]).reserved_ports.push(Port {
                label: label.into(),
                value: port,
                ..Default::default()
            })
        })
    }
    fn dynamic_port(self, label: &str) -> Self {
        self.with(|j| {
            network_of(&mut j.task_groups[0]).dynamic_ports.push(Port {
                label: label.into(),
                ..Default::default()
            })
        })
    }
    fn max_parallel(self, n: u32) -> Self {
        self.with(|j| j.task_groups[0].update.max_parallel = n)
    }
    fn image(self, image: &str) -> Self {
        self.with(|j| {
            if let TaskConfig::Docker(d) = &mut j.task_groups[0].tasks[0].config {
                d.image = image.into();
            }
        })
    }
    fn resources(self, cpu: u64, memory: u64) -> Self {
        self.with(|j| {
            let r = &mut j.task_groups[0].tasks[0].resources;
            r.cpu = cpu;
            r.memory = memory;
        })
    }
    fn with(mut self, f: impl FnOnce(&mut Job)) -> Self {
        f(&mut self);
        self
    }
}

fn network_of(g: &mut TaskGroup) -> &mut NetworkResource {
    if g.networks.is_empty() {
        g.networks.push(NetworkResource {
            mode: "host".into(),
            ..Default::default()
        });
    }
    &mut g.networks[0]
}

/// A deterministic UUID-shaped id, so tests can name things.
pub fn id(kind: u16, n: u64) -> String {
    format!("00000000-0000-4000-{kind:04x}-{n:012x}")
}

/// Allocation `i` of the job's first group: running (healthy long ago) on `mock::node()`.
pub fn alloc(job: &Job, i: u32) -> Allocation {
    let g = &job.task_groups[0];
    let resources = AllocatedResources {
        cpu: g.tasks.iter().map(|t| t.resources.cpu).sum(),
        memory: g.tasks.iter().map(|t| t.resources.memory).sum(),
    };
    let mut networks = g.networks.clone();
    let mut next = 20000u16 + (i as u16) * 10;
    for n in &mut networks {
        for p in &mut n.dynamic_ports {
            p.value = next;
            next += 1;
        }
    }
    Allocation {
        id: id(0xa, u64::from(i)),
        namespace: job.namespace.clone(),
        eval_id: id(0xe, 0),
        name: alloc_name(&job.id, &g.name, i),
        node_id: node().id,
        job_id: job.id.clone(),
        job_version: job.version,
        task_group: g.name.clone(),
        desired_status: DesiredStatus::Run,
        desired_description: String::new(),
        client_status: ClientStatus::Running,
        client_description: String::new(),
        task_states: BTreeMap::new(),
        networks,
        resources,
        create_index: 1,
        modify_index: 1,
        create_time: 0,
        modify_time: 0,
        running_since: Some(0),
        previous_allocation: None,
        next_allocation: None,
        followup_eval_id: None,
        reschedule_tracker: None,
        checks: Vec::new(),
        driver_networks: BTreeMap::new(),
    }
}

pub trait MockAlloc: Sized {
    fn client_status(self, s: ClientStatus) -> Self;
    fn desired_status(self, s: DesiredStatus) -> Self;
    fn node(self, node_id: &str) -> Self;
    fn job_version(self, v: u64) -> Self;
    fn id(self, id: &str) -> Self;
    /// The last task finished at this time (unix nanoseconds).
    fn finished_at(self, t: i64) -> Self;
    fn with(self, f: impl FnOnce(&mut Allocation)) -> Self;
}

impl MockAlloc for Allocation {
    fn client_status(self, s: ClientStatus) -> Self {
        self.with(|a| {
            a.client_status = s;
            if s != ClientStatus::Running {
                a.running_since = None;
            }
        })
    }
    fn desired_status(self, s: DesiredStatus) -> Self {
        self.with(|a| a.desired_status = s)
    }
    fn node(self, node_id: &str) -> Self {
        self.with(|a| a.node_id = node_id.into())
    }
    fn job_version(self, v: u64) -> Self {
        self.with(|a| a.job_version = v)
    }
    fn id(self, id: &str) -> Self {
        self.with(|a| a.id = id.into())
    }
    fn finished_at(self, t: i64) -> Self {
        self.with(|a| {
            a.modify_time = t;
            a.task_states.insert(
                "web".into(),
                TaskState {
                    state: TaskStateKind::Dead,
                    failed: true,
                    finished_at: t,
                    ..Default::default()
                },
            );
        })
    }
    fn with(mut self, f: impl FnOnce(&mut Allocation)) -> Self {
        f(&mut self);
        self
    }
}

/// A ready dev node `node-1` in `dc1` with healthy docker and raw_exec, 4000 MHz and 8 GB.
pub fn node() -> Node {
    Node::from_info(node_info(), 0)
}

/// What the client of [`node`] registers with.
pub fn node_info() -> NodeInfo {
    let healthy = DriverInfo {
        detected: true,
        healthy: true,
        health_description: "Healthy".into(),
        update_time: 0,
    };
    NodeInfo {
        id: "node-1".into(),
        name: "dev".into(),
        datacenter: "dc1".into(),
        node_class: String::new(),
        node_pool: "default".into(),
        address: "127.0.0.1".into(),
        http_addr: "127.0.0.1:4646".into(),
        drivers: BTreeMap::from([
            ("docker".into(), healthy.clone()),
            ("raw_exec".into(), healthy),
        ]),
        attributes: BTreeMap::from([
            ("kernel.name".into(), "linux".into()),
            ("cpu.numcores".into(), "4".into()),
            ("unique.hostname".into(), "dev".into()),
        ]),
        meta: BTreeMap::new(),
        cpu_mhz: 4000,
        memory_mb: 8192,
        reserved_ports: vec![],
    }
}

pub trait MockNode: Sized {
    fn id(self, id: &str) -> Self;
    fn status(self, s: NodeStatus) -> Self;
    fn datacenter(self, dc: &str) -> Self;
    fn capacity(self, cpu: u64, memory: u64) -> Self;
    fn with(self, f: impl FnOnce(&mut Node)) -> Self;
}

impl MockNode for Node {
    fn id(self, id: &str) -> Self {
        self.with(|n| {
            n.id = id.into();
            n.name = id.into();
        })
    }
    fn status(self, s: NodeStatus) -> Self {
        self.with(|n| n.status = s)
    }
    fn datacenter(self, dc: &str) -> Self {
        self.with(|n| n.datacenter = dc.into())
    }
    fn capacity(self, cpu: u64, memory: u64) -> Self {
        self.with(|n| {
            n.cpu_mhz = cpu;
            n.memory_mb = memory;
        })
    }
    fn with(mut self, f: impl FnOnce(&mut Node)) -> Self {
        f(&mut self);
        self
    }
}
