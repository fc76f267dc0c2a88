//! `Allocation`: one instance of a task group placed on a node, as the server records it,
//! with Nomad's stop descriptions and the `job.group[i]` naming helpers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CheckResult, ClientStatus, DesiredStatus, DriverNetwork, NetworkResource, TaskState};

/// Nomad's `StatusAllocNotNeeded` and friends: why the server stopped an allocation. The exact
/// wording is what `drover alloc status` shows, so it stays Nomad's.
pub mod desc {
    pub const NOT_NEEDED: &str = "alloc not needed due to job update";
    pub const MIGRATING: &str = "alloc is being migrated";
    pub const UPDATING: &str = "alloc is being updated due to job update";
    pub const LOST: &str = "alloc is lost since its node is down";
    pub const IN_PLACE: &str = "alloc updating in-place";
    pub const RESCHEDULED: &str = "alloc was rescheduled because it failed";
    pub const RESCHEDULING_FOLLOWUP: &str = "created for delayed rescheduling";
    pub const ROLLING_FOLLOWUP: &str = "created for the next rolling update batch";
    pub const MIGRATION_FOLLOWUP: &str = "created for the next migration off a draining node";
}

/// The cpu and memory an allocation holds on its node (sum over its tasks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatedResources {
    /// MHz.
    pub cpu: u64,
    /// MB.
    pub memory: u64,
}

/// One past reschedule of an allocation's lineage (Nomad's `RescheduleEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescheduleEvent {
    /// Unix nanoseconds.
    pub reschedule_time: i64,
    pub prev_alloc_id: String,
    pub prev_node_id: String,
    pub delay: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescheduleTracker {
    pub events: Vec<RescheduleEvent>,
}

/// An allocation: one instance of a task group placed on a node (Nomad's `Allocation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    /// A UUID.
    pub id: String,
    pub namespace: String,
    /// The evaluation that created (or last changed) this allocation.
    pub eval_id: String,
    /// `job.group[index]`.
    pub name: String,
    pub node_id: String,
    pub job_id: String,
    pub job_version: u64,
    pub task_group: String,
    pub desired_status: DesiredStatus,
    pub desired_description: String,
    pub client_status: ClientStatus,
    pub client_description: String,
    pub task_states: BTreeMap<String, TaskState>,
    /// The group's networks with every dynamic port's `value` assigned.
    pub networks: Vec<NetworkResource>,
    pub resources: AllocatedResources,
    pub create_index: u64,
    pub modify_index: u64,
    /// Unix nanoseconds.
    pub create_time: i64,
    pub modify_time: i64,
    /// When the node last reported the allocation `running` after something else (unix
    /// nanoseconds); rolling updates count `min_healthy_time` from here.
    pub running_since: Option<i64>,
    /// The allocation this one replaces.
    pub previous_allocation: Option<String>,
    /// The allocation that replaced this one.
    pub next_allocation: Option<String>,
    /// A delayed evaluation already scheduled to act on this allocation, so the reconciler does
    /// not schedule another one.
    pub followup_eval_id: Option<String>,
    pub reschedule_tracker: Option<RescheduleTracker>,
    /// The health checks of its services, as the node last reported them.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// Each running task's address in its driver's network (`address_mode = "driver"`).
    #[serde(default)]
    pub driver_networks: BTreeMap<String, DriverNetwork>,
}

impl Allocation {
    /// Nomad's `ServerTerminalStatus`: the server no longer wants it to run.
    pub fn server_terminal(&self) -> bool {
        matches!(
            self.desired_status,
            DesiredStatus::Stop | DesiredStatus::Evict
        )
    }

    /// Nomad's `ClientTerminalStatus`: the node will not run it again.
    pub fn client_terminal(&self) -> bool {
        self.client_status.client_terminal()
    }

    /// Nomad's `TerminalStatus`: either side is done with it.
    pub fn terminal(&self) -> bool {
        self.server_terminal() || self.client_terminal()
    }

    /// The `i` of `job.group[i]`, if the name has one.
    pub fn index(&self) -> Option<u32> {
        alloc_name_index(&self.name)
    }

    /// When the allocation last stopped doing anything (latest task finish), falling back to
    /// its last modification: the point a reschedule delay counts from.
    pub fn last_event_time(&self) -> i64 {
        self.task_states
            .values()
            .map(|t| t.finished_at)
            .max()
            .filter(|t| *t > 0)
            .unwrap_or(self.modify_time)
    }

    /// Host ports this allocation holds.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.networks
            .iter()
            .flat_map(|n| n.ports())
            .map(|p| p.value)
            .filter(|v| *v != 0)
    }
}

/// `job.group[i]`, Nomad's `AllocName`.
pub fn alloc_name(job_id: &str, group: &str, index: u32) -> String {
    format!("{job_id}.{group}[{index}]")
}

/// Parses the index out of `job.group[i]`. Read from the end, byte by byte: every plan asks
/// it of every allocation several times, and a steady tick over 50,000 allocations spent a
/// third of its time in a `rfind` + `parse` version of this.
pub fn alloc_name_index(name: &str) -> Option<u32> {
    let body = name.as_bytes().strip_suffix(b"]")?;
    let open = body.iter().rposition(|b| !b.is_ascii_digit())?;
    let digits = &body[open + 1..];
    if body[open] != b'[' || digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &d| {
        n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}
