//! The planner: `reconcile(&ReconcileInput) -> Plan`, one pure function from the desired job,
//! the recorded allocations and the nodes to what must change (after Nomad's
//! `scheduler/reconciler` plus `feasible.go`/`rank.go`). No I/O, no clock, no RNG: `now` comes
//! in, output is sorted, and ties are broken by node id, so the same input gives the same plan.
//! A placement that finds no node is data (`PlacementFailure`), never an error.

mod feasible;
#[cfg(test)]
mod node_ops_tests;
mod reconcile;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::structs::{
    AllocatedResources, Allocation, ClientStatus, EvalTrigger, Job, NetworkResource, Node,
    RescheduleTracker,
};

pub use feasible::{DYNAMIC_PORT_MAX, DYNAMIC_PORT_MIN};
pub use reconcile::{NodeIndex, reconcile, reconcile_indexed, tasks_updated};

/// Everything the planner looks at for one job.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileInput<'a> {
    pub job: &'a Job,
    /// Earlier versions of the job, by version: an allocation's own version decides whether an
    /// update can happen in place. A version missing here means "replace it".
    pub versions: &'a BTreeMap<u64, Job>,
    /// Allocations of every job: those of other jobs count for capacity and port collisions.
    pub existing: &'a [Allocation],
    pub nodes: &'a [Node],
    pub now: SystemTime,
}

/// A new allocation to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// `job.group[i]`.
    pub name: String,
    pub task_group: String,
    pub node_id: String,
    pub job_version: u64,
    /// The group's networks with every dynamic port assigned.
    pub networks: Vec<NetworkResource>,
    pub resources: AllocatedResources,
    /// The allocation this one replaces (lost, rescheduled, migrated or destructively updated).
    pub previous_allocation: Option<String>,
    pub reschedule_tracker: Option<RescheduleTracker>,
}

/// An allocation the server stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopAlloc {
    pub alloc_id: String,
    pub name: String,
    /// Nomad's wording, e.g. "alloc not needed due to job update".
    pub description: String,
    /// Set when the server also decides the client status (`lost` on a down node).
    pub client_status: Option<ClientStatus>,
}

/// A delayed evaluation the plan asks for, and the allocations it is for (they get its id as
/// `followup_eval_id`, so the next plan does not ask again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowupEval {
    pub task_group: String,
    pub triggered_by: EvalTrigger,
    /// Unix nanoseconds.
    pub wait_until: i64,
    pub description: String,
    pub alloc_ids: Vec<String>,
}

/// Per-group counts of what the plan does (Nomad's `DesiredUpdates`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredUpdates {
    pub place: u64,
    pub stop: u64,
    pub ignore: u64,
    pub in_place_update: u64,
    pub destructive_update: u64,
    pub migrate: u64,
}

/// Why allocations of a group could not be placed (Nomad's `AllocMetric`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementFailure {
    pub nodes_evaluated: u32,
    pub nodes_filtered: u32,
    pub nodes_exhausted: u32,
    pub class_filtered: BTreeMap<String, u32>,
    pub constraint_filtered: BTreeMap<String, u32>,
    pub class_exhausted: BTreeMap<String, u32>,
    pub dimension_exhausted: BTreeMap<String, u32>,
    /// Further allocations of the group that failed for the same reasons.
    pub coalesced_failures: u32,
}

impl PlacementFailure {
    /// The bullet lines Nomad's CLI prints under "Placement Failures".
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.nodes_evaluated == 0 {
            out.push("No nodes were eligible for evaluation".to_string());
        }
        for (class, n) in &self.class_filtered {
            out.push(format!("Class {class:?}: {n} nodes excluded by filter"));
        }
        for (c, n) in &self.constraint_filtered {
            out.push(format!("Constraint {c:?}: {n} nodes excluded by filter"));
        }
        if self.nodes_exhausted > 0 {
            out.push(format!(
                "Resources exhausted on {} nodes",
                self.nodes_exhausted
            ));
        }
        for (class, n) in &self.class_exhausted {
            out.push(format!("Class {class:?} exhausted on {n} nodes"));
        }
        for (dim, n) in &self.dimension_exhausted {
            out.push(format!("Dimension {dim:?} exhausted on {n} nodes"));
        }
        out
    }

    /// How many allocations failed to place.
    pub fn failed(&self) -> u32 {
        self.coalesced_failures + 1
    }
}

impl fmt::Display for PlacementFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines().iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "* {line}")?;
        }
        Ok(())
    }
}

/// What one evaluation decided for one job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub job_id: String,
    pub job_version: u64,
    pub place: Vec<Placement>,
    pub stop: Vec<StopAlloc>,
    /// Stop the old allocation and place its replacement under the same name.
    pub destructive: Vec<(StopAlloc, Placement)>,
    /// Allocations moved to the job's current version without a restart.
    pub inplace: Vec<String>,
    pub desired_tg_updates: BTreeMap<String, DesiredUpdates>,
    pub followup_evals: Vec<FollowupEval>,
    pub failed_tg: BTreeMap<String, PlacementFailure>,
}

impl Plan {
    /// Nothing to write: placement failures alone change no allocation (they are reported on
    /// the evaluation, and retried when nodes change or on the next tick).
    pub fn is_noop(&self) -> bool {
        self.place.is_empty()
            && self.stop.is_empty()
            && self.destructive.is_empty()
            && self.inplace.is_empty()
            && self.followup_evals.is_empty()
    }
}
