//! The planner: `reconcile(&ReconcileInput) -> Plan`, one pure function from the desired job,
//! the recorded allocations and the nodes to what must change (after Nomad's
//! `scheduler/reconciler` plus `feasible.go`/`rank.go`). No I/O, no clock, no RNG: `now` comes
//! in, output is sorted, and ties are broken by node id, so the same input gives the same plan.
//! A placement that finds no node is data (`PlacementFailure`), never an error.

#[cfg(test)]
mod decision_tests;
mod feasible;
mod node_index;
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
pub use node_index::{ClusterSnapshot, ClusterUsage, ClusterView, NodeIndex};
pub use reconcile::{group_updated, reconcile, reconcile_indexed, task_updated, tasks_updated};

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

/// What a plan does to one allocation (or one group, for a placement failure), and why: the
/// worker logs one line per decision. Derived from the plan, so the planner stays pure and
/// the log cannot say something the plan did not decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `place`, `stop`, `destructive-update`, `in-place-update`, `followup-eval` or
    /// `placement-failed`.
    pub action: &'static str,
    pub task_group: String,
    /// `job.group[i]`; empty for an in-place update (the plan keeps only its ID) and for a
    /// placement failure.
    pub alloc_name: String,
    /// The allocation acted on (for a placement: the one it replaces, if any).
    pub alloc_id: Option<String>,
    /// Where a new allocation goes.
    pub node_id: Option<String>,
    pub reason: String,
}

/// The group of an allocation name `job.group[i]` of `job_id`.
fn group_of_name<'a>(job_id: &str, name: &'a str) -> &'a str {
    let rest = name
        .strip_prefix(job_id)
        .and_then(|r| r.strip_prefix('.'))
        .unwrap_or(name);
    rest.rsplit_once('[').map_or(rest, |(g, _)| g)
}

impl Plan {
    /// Every decision of this plan, in a stable order: stops, destructive updates, placements,
    /// in-place updates, follow-up evaluations, placement failures.
    pub fn decisions(&self) -> Vec<Decision> {
        let mut out = Vec::new();
        for s in &self.stop {
            let mut reason = s.description.clone();
            if let Some(cs) = s.client_status {
                reason.push_str(&format!(" (client status set to {})", cs.as_str()));
            }
            out.push(Decision {
                action: "stop",
                task_group: group_of_name(&self.job_id, &s.name).to_string(),
                alloc_name: s.name.clone(),
                alloc_id: Some(s.alloc_id.clone()),
                node_id: None,
                reason,
            });
        }
        for (s, p) in &self.destructive {
            out.push(Decision {
                action: "destructive-update",
                task_group: p.task_group.clone(),
                alloc_name: p.name.clone(),
                alloc_id: Some(s.alloc_id.clone()),
                node_id: Some(p.node_id.clone()),
                reason: format!(
                    "{}: its tasks changed in version {}",
                    s.description, p.job_version
                ),
            });
        }
        for p in &self.place {
            let replaced = p
                .previous_allocation
                .as_ref()
                .and_then(|prev| self.stop.iter().find(|s| &s.alloc_id == prev));
            let reason = match (&p.previous_allocation, replaced) {
                (Some(prev), Some(s)) => format!("replaces {prev}: {}", s.description),
                (Some(prev), None) => format!("replaces {prev}"),
                (None, _) => "the group runs fewer allocations than its count".to_string(),
            };
            out.push(Decision {
                action: "place",
                task_group: p.task_group.clone(),
                alloc_name: p.name.clone(),
                alloc_id: p.previous_allocation.clone(),
                node_id: Some(p.node_id.clone()),
                reason,
            });
        }
        for id in &self.inplace {
            out.push(Decision {
                action: "in-place-update",
                task_group: String::new(),
                alloc_name: String::new(),
                alloc_id: Some(id.clone()),
                node_id: None,
                reason: format!(
                    "moved to version {} without restarting: no task changed",
                    self.job_version
                ),
            });
        }
        for f in &self.followup_evals {
            out.push(Decision {
                action: "followup-eval",
                task_group: f.task_group.clone(),
                alloc_name: String::new(),
                alloc_id: f.alloc_ids.first().cloned(),
                node_id: None,
                reason: format!(
                    "{} ({}, for {} allocation{}, wait until {}Z)",
                    f.description,
                    f.triggered_by.as_str(),
                    f.alloc_ids.len(),
                    if f.alloc_ids.len() == 1 { "" } else { "s" },
                    crate::timefmt::utc_parts(f.wait_until).0
                ),
            });
        }
        for (group, f) in &self.failed_tg {
            out.push(Decision {
                action: "placement-failed",
                task_group: group.clone(),
                alloc_name: String::new(),
                alloc_id: None,
                node_id: None,
                reason: format!(
                    "failed to place {} allocation{}: {}",
                    f.failed(),
                    if f.failed() == 1 { "" } else { "s" },
                    f.lines().join("; ")
                ),
            });
        }
        out
    }
}
