use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Affinity, Constraint, NetworkResource, RestartPolicy, Service, Task};

/// Nomad's `job.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    Service,
    Batch,
    System,
    Sysbatch,
}

impl JobType {
    pub const ALL: [JobType; 4] = [
        JobType::Service,
        JobType::Batch,
        JobType::System,
        JobType::Sysbatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Service => "service",
            JobType::Batch => "batch",
            JobType::System => "system",
            JobType::Sysbatch => "sysbatch",
        }
    }

    pub fn parse(s: &str) -> Option<JobType> {
        JobType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Batch-like jobs run to completion; their restart and reschedule defaults differ.
    pub fn is_batch_like(self) -> bool {
        matches!(self, JobType::Batch | JobType::Sysbatch)
    }
}

/// A job as the user declared it, after defaults and normalisation (`canonicalize`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub region: String,
    pub job_type: JobType,
    pub priority: u8,
    pub all_at_once: bool,
    pub datacenters: Vec<String>,
    pub node_pool: String,
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
    pub spreads: Vec<Spread>,
    pub update: UpdateStrategy,
    pub meta: BTreeMap<String, String>,
    pub task_groups: Vec<TaskGroup>,
    /// Set when the job is stopped (its file removed, or `job stop`).
    pub stop: bool,
    /// Bumped by the state store when the spec really changes.
    pub version: u64,
}

impl Job {
    pub fn group(&self, name: &str) -> Option<&TaskGroup> {
        self.task_groups.iter().find(|g| g.name == name)
    }

    /// What is left of a purged job: stopped, with no groups, so planning it stops whatever
    /// allocations remain.
    pub fn tombstone(namespace: &str, id: &str) -> Job {
        Job {
            id: id.to_string(),
            name: id.to_string(),
            namespace: namespace.to_string(),
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
            task_groups: vec![],
            stop: true,
            version: 0,
        }
    }

    /// Nomad's `Job.SpecChanged`: whether `other` declares something different. The version and
    /// the stop flag are bookkeeping, not spec, so registering the same file twice is no change.
    pub fn spec_changed(&self, other: &Job) -> bool {
        let strip = |j: &Job| Job {
            version: 0,
            stop: false,
            ..j.clone()
        };
        strip(self) != strip(other)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskGroup {
    pub name: String,
    pub count: u32,
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
    pub spreads: Vec<Spread>,
    pub networks: Vec<NetworkResource>,
    pub services: Vec<Service>,
    pub restart: RestartPolicy,
    pub reschedule: ReschedulePolicy,
    pub update: UpdateStrategy,
    pub ephemeral_disk: EphemeralDisk,
    pub meta: BTreeMap<String, String>,
    pub shutdown_delay: Duration,
    pub stop_after_client_disconnect: Option<Duration>,
    pub max_client_disconnect: Option<Duration>,
    pub tasks: Vec<Task>,
}

impl TaskGroup {
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReschedulePolicy {
    /// Ignored when `unlimited`.
    pub attempts: u32,
    pub interval: Duration,
    pub delay: Duration,
    /// `constant`, `exponential` or `fibonacci`.
    pub delay_function: String,
    pub max_delay: Duration,
    pub unlimited: bool,
}

impl ReschedulePolicy {
    pub fn service_default() -> Self {
        ReschedulePolicy {
            attempts: 0,
            interval: Duration::ZERO,
            delay: Duration::from_secs(30),
            delay_function: "exponential".into(),
            max_delay: Duration::from_secs(3600),
            unlimited: true,
        }
    }

    pub fn batch_default() -> Self {
        ReschedulePolicy {
            attempts: 1,
            interval: Duration::from_secs(24 * 3600),
            delay: Duration::from_secs(5),
            delay_function: "constant".into(),
            max_delay: Duration::ZERO,
            unlimited: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateStrategy {
    pub max_parallel: u32,
    /// `checks`, `task_states` or `manual`.
    pub health_check: String,
    pub min_healthy_time: Duration,
    pub healthy_deadline: Duration,
    pub progress_deadline: Duration,
    pub auto_revert: bool,
    pub auto_promote: bool,
    pub canary: u32,
    pub stagger: Duration,
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        UpdateStrategy {
            max_parallel: 1,
            health_check: "checks".into(),
            min_healthy_time: Duration::from_secs(10),
            healthy_deadline: Duration::from_secs(5 * 60),
            progress_deadline: Duration::from_secs(10 * 60),
            auto_revert: false,
            auto_promote: false,
            canary: 0,
            stagger: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EphemeralDisk {
    /// MB.
    pub size: u64,
    pub sticky: bool,
    pub migrate: bool,
}

impl Default for EphemeralDisk {
    fn default() -> Self {
        EphemeralDisk {
            size: 300,
            sticky: false,
            migrate: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub attribute: String,
    pub weight: i32,
    pub targets: Vec<SpreadTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpreadTarget {
    pub value: String,
    pub percent: u32,
}
