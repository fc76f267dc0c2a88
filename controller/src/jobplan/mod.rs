//! `job plan`: what registering (or removing) a job would do, without writing anything. The
//! scheduler's own `reconcile` runs on a snapshot of the state, and its per-group counts
//! annotate a structured diff of the job ([`diff`]) the way Nomad's `scheduler.Annotate` does.
//! `PUT /v1/job/:id/plan`, `drover job plan` against an agent and `drover job plan -offline`
//! all come through [`compute`]; [`render`] prints Nomad's text.

pub mod diff;
pub mod render;

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::scheduler::{DesiredUpdates, Plan, ReconcileInput, group_updated, task_updated};
use crate::state::{Snapshot, Store, StoreError};
use crate::structs::{Allocation, DesiredStatus, Job, Node};

pub use diff::{DiffType, FieldDiff, JobDiff, ObjectDiff, TaskDiff, TaskGroupDiff, job_diff};

/// Nomad's scheduler annotations on a task.
pub const FORCES_CREATE: &str = "forces create";
pub const FORCES_DESTROY: &str = "forces destroy";
pub const FORCES_INPLACE: &str = "forces in-place update";
pub const FORCES_DESTRUCTIVE: &str = "forces create/destroy update";

/// What registering a job would do.
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// The job as it is now, if registered.
    pub current: Option<Job>,
    /// Whether the spec differs from the current version.
    pub changed: bool,
    /// The version the job would have.
    pub version: u64,
    pub plan: Plan,
    /// The annotated diff from `current` to the planned job (or to nothing, for a removal).
    pub diff: JobDiff,
    /// Whether any node was known to place on; without one, placement was not checked.
    pub nodes_known: bool,
}

/// The part of the state every plan reads alike: the nodes and every allocation that holds
/// node resources. Read once for many plans — a directory of 1,000 jobs would otherwise read
/// every allocation 1,000 times — while each job reads only its own rows.
#[derive(Debug, Clone)]
pub struct PlanBase {
    /// The store's index when this was read.
    pub index: u64,
    nodes: Vec<Node>,
    busy: Vec<Allocation>,
}

impl PlanBase {
    pub fn read(store: &Store) -> Result<PlanBase, StoreError> {
        let index = store.index();
        let nodes = store.nodes()?;
        let mut busy = Vec::new();
        for n in &nodes {
            busy.extend(
                store
                    .allocs_by_node(&n.id)?
                    .into_iter()
                    .filter(|a| a.desired_status == DesiredStatus::Run && !a.client_terminal()),
            );
        }
        Ok(PlanBase { index, nodes, busy })
    }

    /// Plans `job` (see [`compute`]) on the job's own rows read now and the shared ones read
    /// before; also returns the job's modify index (0 when it is not registered).
    ///
    /// Other jobs' allocations only matter when the plan places something (they take node
    /// capacity and ports), and which allocations a plan wants to place depends on the job's
    /// own allocations alone. So the plan is computed on the job's own allocations first, and
    /// again with every busy allocation only when it places: the same plan, without copying
    /// and counting every allocation for each of a directory's unchanged jobs.
    pub fn plan(
        &self,
        store: &Store,
        job: &Job,
        remove: bool,
        now: SystemTime,
    ) -> Result<(JobPlan, u64), StoreError> {
        let (namespace, job_id) = (job.namespace.as_str(), job.id.as_str());
        let record = store.job(namespace, job_id)?;
        let versions = store
            .job_versions(namespace, job_id)?
            .into_iter()
            .map(|j| (j.version, j))
            .collect();
        let allocs = store.allocs_by_job(namespace, job_id)?;
        let modify_index = record.as_ref().map_or(0, |r| r.modify_index);
        let mut snap = Snapshot {
            index: self.index,
            job: record.map(|r| r.job),
            versions,
            allocs,
            nodes: self.nodes.clone(),
        };
        let own_only = compute(&snap, job, remove, now);
        let p = &own_only.plan;
        if p.place.is_empty() && p.destructive.is_empty() && p.failed_tg.is_empty() {
            return Ok((own_only, modify_index));
        }
        let own: BTreeSet<&str> = snap.allocs.iter().map(|a| a.id.as_str()).collect();
        let others: Vec<Allocation> = self
            .busy
            .iter()
            .filter(|a| !own.contains(a.id.as_str()))
            .cloned()
            .collect();
        snap.allocs.extend(others);
        Ok((compute(&snap, job, remove, now), modify_index))
    }
}

/// Plans `job` against `snap` (read for this job's namespace and ID). `remove` plans the job
/// stopped and diffs it against nothing: what deleting its file would do. Pure.
pub fn compute(snap: &Snapshot, job: &Job, remove: bool, now: SystemTime) -> JobPlan {
    let mut candidate = job.clone();
    let (changed, version) = match &snap.job {
        Some(current) if current.spec_changed(job) => (true, current.version + 1),
        Some(current) => (false, current.version),
        None => (true, 0),
    };
    candidate.version = version;
    if remove {
        candidate.stop = true;
    }
    let plan = crate::scheduler::reconcile(&ReconcileInput {
        job: &candidate,
        versions: &snap.versions,
        existing: &snap.allocs,
        nodes: &snap.nodes,
        now,
    });
    let mut diff = job_diff(snap.job.as_ref(), (!remove).then_some(job));
    annotate(&mut diff, &plan, snap.job.as_ref(), job);
    JobPlan {
        current: snap.job.clone(),
        changed: changed || remove,
        version,
        plan,
        diff,
        nodes_known: !snap.nodes.is_empty(),
    }
}

/// Nomad's update type names, in the order its CLI sorts them.
pub fn updates_of(du: &DesiredUpdates) -> Vec<(&'static str, u64)> {
    [
        ("create", du.place),
        ("create/destroy update", du.destructive_update),
        ("destroy", du.stop),
        ("ignore", du.ignore),
        ("in-place update", du.in_place_update),
        ("migrate", du.migrate),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect()
}

/// Adds the scheduler's view to the diff: per-group update counts, whether a count change
/// creates or destroys, and whether each changed task is replaced or updated in place (by the
/// same rules the scheduler applies, so the annotation cannot disagree with what happens).
pub fn annotate(diff: &mut JobDiff, plan: &Plan, old: Option<&Job>, new: &Job) {
    for g in &mut diff.task_groups {
        if let Some(du) = plan.desired_tg_updates.get(&g.name) {
            g.updates = updates_of(du)
                .into_iter()
                .map(|(k, n)| (k.to_string(), n))
                .collect();
        }
        if let Some(count) = g.fields.iter_mut().find(|f| f.name == "Count") {
            let n = |s: &str| s.parse::<u64>().unwrap_or(0);
            match n(&count.old).cmp(&n(&count.new)) {
                std::cmp::Ordering::Less => count.annotations.push(FORCES_CREATE.into()),
                std::cmp::Ordering::Greater => count.annotations.push(FORCES_DESTROY.into()),
                std::cmp::Ordering::Equal => {}
            }
        }
        let og = old.and_then(|j| j.group(&g.name));
        let ng = new.group(&g.name);
        let group_type = g.r#type;
        for t in &mut g.tasks {
            let note = match (group_type, t.r#type) {
                (_, DiffType::None) => continue,
                (DiffType::Added, _) => FORCES_CREATE,
                (DiffType::Deleted, _) => FORCES_DESTROY,
                (_, DiffType::Added | DiffType::Deleted) => FORCES_DESTRUCTIVE,
                _ => {
                    let destructive = match (og, ng) {
                        (Some(og), Some(ng)) => {
                            group_updated(og, ng)
                                || match (og.task(&t.name), ng.task(&t.name)) {
                                    (Some(a), Some(b)) => task_updated(a, b),
                                    _ => true,
                                }
                        }
                        _ => true,
                    };
                    if destructive {
                        FORCES_DESTRUCTIVE
                    } else {
                        FORCES_INPLACE
                    }
                }
            };
            t.annotations.push(note.into());
        }
    }
}

/// Nomad's plan exit code: 0 when no allocation is created or destroyed, 1 when some are.
pub fn exit_code(diff: &JobDiff, updates: &std::collections::BTreeMap<String, PlanUpdates>) -> u8 {
    if diff.r#type == DiffType::None {
        return 0;
    }
    let changes = updates
        .values()
        .any(|u| u.stop + u.place + u.migrate + u.destructive_update + u.canary > 0);
    u8::from(changes)
}

/// Nomad's `DesiredUpdates` as the plan API returns it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PlanUpdates {
    pub ignore: u64,
    pub place: u64,
    pub migrate: u64,
    pub stop: u64,
    pub in_place_update: u64,
    pub destructive_update: u64,
    pub canary: u64,
    pub preemptions: u64,
}

impl From<&DesiredUpdates> for PlanUpdates {
    fn from(d: &DesiredUpdates) -> Self {
        PlanUpdates {
            ignore: d.ignore,
            place: d.place,
            migrate: d.migrate,
            stop: d.stop,
            in_place_update: d.in_place_update,
            destructive_update: d.destructive_update,
            canary: 0,
            preemptions: 0,
        }
    }
}

#[cfg(test)]
mod tests;
