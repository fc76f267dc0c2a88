//! `Node`: a client node as the server records it (from the `NodeInfo` it registers with),
//! with Nomad's status and scheduling-eligibility strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use drover_runtime::spec::{DriverInfo, NodeInfo};

/// Nomad's `NodeStatus*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Initializing,
    Ready,
    Down,
    Disconnected,
}

impl NodeStatus {
    pub const ALL: [NodeStatus; 4] = [
        NodeStatus::Initializing,
        NodeStatus::Ready,
        NodeStatus::Down,
        NodeStatus::Disconnected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Initializing => "initializing",
            NodeStatus::Ready => "ready",
            NodeStatus::Down => "down",
            NodeStatus::Disconnected => "disconnected",
        }
    }

    pub fn parse(s: &str) -> Option<NodeStatus> {
        NodeStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Nomad's `NodeSchedulingEligible` / `NodeSchedulingIneligible`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulingEligibility {
    Eligible,
    Ineligible,
}

impl SchedulingEligibility {
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulingEligibility::Eligible => "eligible",
            SchedulingEligibility::Ineligible => "ineligible",
        }
    }
}

/// A client node as the server records it (Nomad's `Node`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub datacenter: String,
    pub node_class: String,
    pub node_pool: String,
    pub address: String,
    pub http_addr: String,
    pub drivers: BTreeMap<String, DriverInfo>,
    pub attributes: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub cpu_mhz: u64,
    pub memory_mb: u64,
    pub reserved_ports: Vec<u16>,
    pub status: NodeStatus,
    pub status_description: String,
    pub scheduling_eligibility: SchedulingEligibility,
    pub drain: bool,
    /// How the current drain proceeds; `None` when the node is not draining.
    #[serde(default)]
    pub drain_strategy: Option<DrainStrategy>,
    /// The last drain's outcome, as Nomad's `LastDrain`.
    #[serde(default)]
    pub last_drain: Option<DrainMetadata>,
    /// Unix seconds, as Nomad's `StatusUpdatedAt`.
    pub status_updated_at: i64,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Node {
    /// A node as its client registered it: ready and eligible.
    pub fn from_info(info: NodeInfo, now_secs: i64) -> Self {
        Node {
            id: info.id,
            name: info.name,
            datacenter: info.datacenter,
            node_class: info.node_class,
            node_pool: info.node_pool,
            address: info.address,
            http_addr: info.http_addr,
            drivers: info.drivers,
            attributes: info.attributes,
            meta: info.meta,
            cpu_mhz: info.cpu_mhz,
            memory_mb: info.memory_mb,
            reserved_ports: info.reserved_ports,
            status: NodeStatus::Ready,
            status_description: String::new(),
            scheduling_eligibility: SchedulingEligibility::Eligible,
            drain: false,
            drain_strategy: None,
            last_drain: None,
            status_updated_at: now_secs,
            create_index: 0,
            modify_index: 0,
        }
    }

    /// Ready, eligible and not draining: new allocations may land here.
    pub fn schedulable(&self) -> bool {
        self.status == NodeStatus::Ready
            && self.scheduling_eligibility == SchedulingEligibility::Eligible
            && !self.drain
    }

    /// Down or gone: allocations on it are lost (Nomad's `TerminalStatus` for nodes).
    pub fn terminal(&self) -> bool {
        matches!(self.status, NodeStatus::Down)
    }

    /// Whether the drain must now move everything left, without waiting for `max_parallel`
    /// batches or for batch allocations to finish.
    pub fn drain_forced(&self, now: i64) -> bool {
        self.drain_strategy.as_ref().is_some_and(|d| d.forced(now))
    }

    /// A driver that was detected and is healthy.
    pub fn has_healthy_driver(&self, name: &str) -> bool {
        self.drivers
            .get(name)
            .is_some_and(|d| d.detected && d.healthy)
    }
}

/// Nomad's `DrainStrategy`: what `drover node drain -enable` asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStrategy {
    /// Nomad's `DrainSpec.Deadline` in nanoseconds: negative forces at once, 0 means no
    /// deadline.
    pub deadline: i64,
    /// Leave system allocations running (Nomad's `IgnoreSystemJobs`).
    pub ignore_system_jobs: bool,
    /// Unix nanoseconds after which the rest is forced; 0 without a deadline.
    pub force_deadline: i64,
    /// Unix nanoseconds.
    pub started_at: i64,
}

impl DrainStrategy {
    pub fn new(deadline: i64, ignore_system_jobs: bool, now: i64) -> Self {
        DrainStrategy {
            deadline,
            ignore_system_jobs,
            force_deadline: if deadline > 0 {
                now.saturating_add(deadline)
            } else {
                0
            },
            started_at: now,
        }
    }

    pub fn forced(&self, now: i64) -> bool {
        self.deadline < 0 || (self.force_deadline > 0 && now >= self.force_deadline)
    }
}

/// Nomad's `DrainMetadata` (`LastDrain`): how the last drain ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainMetadata {
    /// Unix nanoseconds.
    pub started_at: i64,
    /// Unix nanoseconds.
    pub updated_at: i64,
    /// `draining`, `complete` or `canceled`.
    pub status: String,
}
