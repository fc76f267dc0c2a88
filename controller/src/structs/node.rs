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

    /// A driver that was detected and is healthy.
    pub fn has_healthy_driver(&self, name: &str) -> bool {
        self.drivers
            .get(name)
            .is_some_and(|d| d.detected && d.healthy)
    }
}
