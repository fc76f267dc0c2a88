//! Turns a [`Plan`] into rows and writes them in ONE transaction: new allocations (desired
//! `run`, client `pending`), stops (desired `stop`, and `lost` where the plan says so),
//! in-place updates, follow-up evaluations (linked from the allocations they are for) and the
//! planning evaluation marked complete. Fresh ids are made here, not in the planner, which
//! stays pure. The write is refused when the plan's nodes changed since its snapshot; the
//! worker then plans again (Nomad's plan applier + `generic_sched` retry).

use std::collections::{BTreeMap, BTreeSet};

use crate::scheduler::{Placement, Plan, StopAlloc};
use crate::state::{PlanGuard, PlanWrite, Store, StoreError};
use crate::structs::{Allocation, ClientStatus, DesiredStatus, EvalStatus, Evaluation, Job};

#[derive(Debug, thiserror::Error)]
pub enum PlanApplyError {
    #[error(
        "failed to apply the plan of evaluation {eval_id}: allocation {alloc_id} is not in its snapshot"
    )]
    UnknownAlloc { eval_id: String, alloc_id: String },
    #[error("failed to apply the plan of evaluation {eval_id} for job {job_id:?}")]
    Store {
        eval_id: String,
        job_id: String,
        #[source]
        source: Box<StoreError>,
    },
}

impl PlanApplyError {
    /// Another plan got there first: plan again from a fresh snapshot.
    pub fn is_stale(&self) -> bool {
        matches!(
            self,
            PlanApplyError::Store { source, .. } if matches!(**source, StoreError::StalePlan { .. })
        )
    }
}

/// What a committed plan produced that the caller must act on.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub index: u64,
    /// Follow-up evaluations to hand to the broker.
    pub followups: Vec<Evaluation>,
    pub placed: Vec<Allocation>,
}

/// The planning evaluation as it is recorded once planned.
pub fn completed_eval(eval: &Evaluation, plan: &Plan, now: i64) -> Evaluation {
    let mut done = eval.clone();
    done.status = EvalStatus::Complete;
    done.failed_tg_allocs = plan.failed_tg.clone();
    done.modify_time = now;
    done
}

/// What a plan was computed from: the store index it read, and the job's allocations as of
/// that index (the ones the plan stops or changes).
#[derive(Debug, Clone, Copy)]
pub struct PlannedFrom<'a> {
    pub index: u64,
    pub allocs: &'a [Allocation],
}

/// Builds the rows for `plan` and commits them in one transaction.
pub fn apply(
    store: &Store,
    eval: &Evaluation,
    job: &Job,
    plan: &Plan,
    from: PlannedFrom<'_>,
    now: i64,
) -> Result<Applied, PlanApplyError> {
    let (write, applied) = build(eval, job, plan, from, now)?;
    let index = store
        .commit_plan(&job.id, write)
        .map_err(|source| PlanApplyError::Store {
            eval_id: eval.id.clone(),
            job_id: job.id.clone(),
            source: Box::new(source),
        })?;
    Ok(Applied { index, ..applied })
}

fn build(
    eval: &Evaluation,
    job: &Job,
    plan: &Plan,
    from: PlannedFrom<'_>,
    now: i64,
) -> Result<(PlanWrite, Applied), PlanApplyError> {
    let known: BTreeMap<&str, &Allocation> =
        from.allocs.iter().map(|a| (a.id.as_str(), a)).collect();
    let existing = |id: &str| -> Result<Allocation, PlanApplyError> {
        known
            .get(id)
            .map(|a| (*a).clone())
            .ok_or_else(|| PlanApplyError::UnknownAlloc {
                eval_id: eval.id.clone(),
                alloc_id: id.to_string(),
            })
    };
    let stop = |s: &StopAlloc| -> Result<Allocation, PlanApplyError> {
        let mut a = existing(&s.alloc_id)?;
        a.desired_status = DesiredStatus::Stop;
        a.desired_description = s.description.clone();
        if let Some(cs) = s.client_status {
            a.client_status = cs;
            a.client_description = s.description.clone();
            a.running_since = None;
        }
        a.eval_id = eval.id.clone();
        a.modify_time = now;
        Ok(a)
    };

    let mut updated: Vec<Allocation> = Vec::new();
    for s in &plan.stop {
        updated.push(stop(s)?);
    }
    let mut placed = Vec::new();
    let mut targets = BTreeSet::new();
    let mut new_alloc = |p: &Placement| {
        targets.insert(p.node_id.clone());
        Allocation {
            id: uuid::Uuid::new_v4().to_string(),
            namespace: job.namespace.clone(),
            eval_id: eval.id.clone(),
            name: p.name.clone(),
            node_id: p.node_id.clone(),
            job_id: job.id.clone(),
            job_version: p.job_version,
            task_group: p.task_group.clone(),
            desired_status: DesiredStatus::Run,
            desired_description: String::new(),
            client_status: ClientStatus::Pending,
            client_description: String::new(),
            task_states: BTreeMap::new(),
            networks: p.networks.clone(),
            resources: p.resources,
            create_index: 0,
            modify_index: 0,
            create_time: now,
            modify_time: now,
            running_since: None,
            previous_allocation: p.previous_allocation.clone(),
            next_allocation: None,
            followup_eval_id: None,
            reschedule_tracker: p.reschedule_tracker.clone(),
            checks: Vec::new(),
            driver_networks: BTreeMap::new(),
        }
    };
    for (s, p) in &plan.destructive {
        let mut old = stop(s)?;
        let new = new_alloc(p);
        old.next_allocation = Some(new.id.clone());
        updated.push(old);
        placed.push(new);
    }
    for p in &plan.place {
        placed.push(new_alloc(p));
    }
    // Link replaced allocations (lost, rescheduled, migrated) to their replacements.
    let mut by_id: BTreeMap<String, Allocation> =
        updated.into_iter().map(|a| (a.id.clone(), a)).collect();
    for a in &placed {
        if let Some(prev) = &a.previous_allocation
            && let Some(old) = by_id.get_mut(prev)
        {
            old.next_allocation = Some(a.id.clone());
        }
    }
    for id in &plan.inplace {
        let mut a = match by_id.remove(id) {
            Some(a) => a,
            None => existing(id)?,
        };
        a.job_version = plan.job_version;
        a.eval_id = eval.id.clone();
        a.modify_time = now;
        by_id.insert(a.id.clone(), a);
    }
    let mut followups = Vec::new();
    for f in &plan.followup_evals {
        let mut e = Evaluation::new(&job.id, &job.namespace, f.triggered_by, now);
        e.priority = job.priority;
        e.wait_until = Some(f.wait_until);
        e.previous_eval = Some(eval.id.clone());
        e.status_description = f.description.clone();
        for id in &f.alloc_ids {
            let mut a = match by_id.remove(id) {
                Some(a) => a,
                None => existing(id)?,
            };
            a.followup_eval_id = Some(e.id.clone());
            by_id.insert(a.id.clone(), a);
        }
        followups.push(e);
    }

    let mut allocs: Vec<Allocation> = by_id.into_values().collect();
    allocs.extend(placed.iter().cloned());
    let mut evals = followups.clone();
    evals.push(completed_eval(eval, plan, now));
    let write = PlanWrite {
        allocs,
        evals,
        guard: (!targets.is_empty()).then(|| PlanGuard {
            snapshot_index: from.index,
            nodes: targets.into_iter().collect(),
        }),
    };
    Ok((
        write,
        Applied {
            index: 0,
            followups,
            placed,
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::state::JobSource;
    use crate::structs::mock::{self, MockJob};

    #[test]
    fn a_client_update_after_the_snapshot_is_not_written_back_over() {
        let store = Store::open_in_memory().expect("open");
        store.upsert_node(mock::node()).expect("node");
        let reg = store
            .register_job(mock::job().count(1), &JobSource::Api, 0)
            .expect("register");
        crate::worker::process(&store, &reg.eval).expect("place");
        let alloc = store.allocs_by_job("default", "example").expect("allocs")[0].clone();
        let stopped = store
            .deregister_job("default", "example", false, None, 0)
            .expect("deregister");
        // The worker reads the job and plans its stop …
        let snap = store.job_snapshot("default", "example").expect("snapshot");
        let job = snap.job.clone().expect("job");
        let plan = crate::worker::plan(&snap, &job, SystemTime::now());
        assert_eq!(plan.stop.len(), 1);
        // … while the node reports the task running.
        store
            .update_allocs_from_client(
                &alloc.node_id,
                &[drover_runtime::spec::AllocUpdate {
                    id: alloc.id.clone(),
                    client_status: ClientStatus::Running,
                    client_description: "Tasks are running".into(),
                    task_states: Default::default(),
                    checks: vec![],
                    driver_networks: Default::default(),
                }],
                0,
            )
            .expect("client update");
        let from = PlannedFrom {
            index: snap.index,
            allocs: &snap.allocs,
        };
        apply(&store, &stopped, &job, &plan, from, 0).expect("apply");
        let now = store.alloc(&alloc.id).expect("read").expect("exists");
        assert_eq!(now.desired_status, DesiredStatus::Stop, "the plan's part");
        assert_eq!(
            (now.client_status, now.client_description.as_str()),
            (ClientStatus::Running, "Tasks are running"),
            "the client's part, as it reported after the snapshot"
        );
    }

    #[test]
    fn a_plan_over_a_node_that_changed_since_its_snapshot_is_refused_whole() {
        let store = Store::open_in_memory().expect("open");
        store.upsert_node(mock::node()).expect("node");
        let job = mock::job().static_port("http", 8080);
        let reg = store
            .register_job(job, &JobSource::Api, 0)
            .expect("register");
        // As a worker reads it: the job's rows and the kept view of every other allocation.
        let snap = store.job_snapshot("default", "example").expect("snapshot");
        let job = snap.job.clone().expect("job");
        let plan = crate::worker::plan(&snap, &job, SystemTime::now());
        assert_eq!(plan.place.len(), 1);

        // Meanwhile another job's plan takes the port on the same node.
        let other = mock::job()
            .static_port("http", 8080)
            .with(|j| j.id = "other".into());
        store
            .commit_plan(
                "other",
                PlanWrite {
                    allocs: vec![mock::alloc(&other, 0)],
                    evals: vec![],
                    guard: None,
                },
            )
            .expect("other plan");

        let from = PlannedFrom {
            index: snap.index,
            allocs: &snap.allocs,
        };
        let err = apply(&store, &reg.eval, &job, &plan, from, 0).expect_err("stale");
        assert!(err.is_stale(), "{err}");
        assert!(
            store
                .allocs_by_job("default", "example")
                .expect("allocs")
                .is_empty()
        );
        assert_eq!(
            store
                .eval(&reg.eval.id)
                .expect("read")
                .expect("exists")
                .status,
            EvalStatus::Pending,
            "the eval stays pending with its plan"
        );

        // Planning again from a fresh snapshot sees the port taken.
        let done = crate::worker::process(&store, &reg.eval).expect("process");
        assert!(done.noop);
        let eval = store.eval(&reg.eval.id).expect("read").expect("exists");
        assert_eq!(eval.status, EvalStatus::Complete);
        assert_eq!(eval.failed_tg_allocs["web"].nodes_exhausted, 1);
    }
}
