//! A worker takes an evaluation from the broker and runs the one reconcile path every trigger
//! shares: read the job's snapshot (its rows from SQLite, the nodes and every other
//! allocation's usage from the store's kept `ClusterView`), `scheduler::reconcile_indexed`, ack
//! a no-op, otherwise `plan_apply` in one transaction, hand follow-up evaluations back to the
//! broker, then ack. The trigger goes into the tracing span and the evaluation row only; the
//! planner never sees it (kube-rs).

use std::sync::Arc;
use std::time::SystemTime;

use tracing::{Instrument, debug, info, info_span, warn};

use crate::broker::{Broker, NackOutcome};
use crate::liveness::{IDLE_BEAT, Liveness};
use crate::metrics::{Metrics, ReconcileResult};
use crate::plan_apply::{self, PlanApplyError, PlannedFrom};
use crate::scheduler::{ReconcileInput, reconcile_indexed};
use crate::state::{JobSnapshot, Store, StoreError};
use crate::structs::{EvalStatus, Evaluation, Job, unix_nanos};

/// Plans computed again after a stale write before the evaluation is nacked (Nomad's
/// `maxServiceScheduleAttempts`).
pub const MAX_PLAN_ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("failed to read a snapshot of job {job_id:?} for evaluation {eval_id}")]
    Snapshot {
        eval_id: String,
        job_id: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error(transparent)]
    Apply(#[from] PlanApplyError),
    #[error("failed to record evaluation {eval_id} as {status}")]
    UpdateEval {
        eval_id: String,
        status: &'static str,
        #[source]
        source: Box<StoreError>,
    },
    #[error(
        "failed to plan job {job_id:?} for evaluation {eval_id}: the state kept changing for {attempts} attempts"
    )]
    TooManyAttempts {
        eval_id: String,
        job_id: String,
        attempts: u32,
    },
}

impl WorkerError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            WorkerError::Snapshot { .. } => "snapshot",
            WorkerError::Apply(_) => "plan_apply",
            WorkerError::UpdateEval { .. } => "update_eval",
            WorkerError::TooManyAttempts { .. } => "too_many_attempts",
        }
    }
}

/// What processing one evaluation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Processed {
    pub noop: bool,
    pub placed: usize,
    pub stopped: usize,
    /// Allocations the plan could not place (summed over its failed groups).
    pub placement_failures: u64,
    /// Delayed evaluations the plan asked for; the caller enqueues them.
    pub followups: Vec<Evaluation>,
}

/// Plans and applies one evaluation. `now` is read once, here, for the whole plan.
pub fn process(store: &Store, eval: &Evaluation) -> Result<Processed, WorkerError> {
    for _ in 0..MAX_PLAN_ATTEMPTS {
        let wall = SystemTime::now();
        let now = unix_nanos(wall);
        let snap = store
            .job_snapshot(&eval.namespace, &eval.job_id)
            .map_err(|source| WorkerError::Snapshot {
                eval_id: eval.id.clone(),
                job_id: eval.job_id.clone(),
                source: Box::new(source),
            })?;
        let job = snap
            .job
            .clone()
            .unwrap_or_else(|| Job::tombstone(&eval.namespace, &eval.job_id));
        let plan = plan(&snap, &job, wall);
        // Let go of the view before writing: a write that finds it shared copies its node map.
        let JobSnapshot {
            index,
            allocs,
            cluster,
            ..
        } = snap;
        drop(cluster);
        let placement_failures: u64 = plan.failed_tg.values().map(|f| u64::from(f.failed())).sum();
        if plan.is_noop() {
            // Placement failures alone write nothing, but they are decisions all the same.
            log_decisions(&job, eval, &plan);
            let done = plan_apply::completed_eval(eval, &plan, now);
            store
                .upsert_eval(&done)
                .map_err(|source| WorkerError::UpdateEval {
                    eval_id: eval.id.clone(),
                    status: "complete",
                    source: Box::new(source),
                })?;
            debug!(job_id = %job.id, eval_id = %eval.id, "plan is a no-op");
            return Ok(Processed {
                noop: true,
                placement_failures,
                ..Processed::default()
            });
        }
        let from = PlannedFrom {
            index,
            allocs: &allocs,
        };
        match plan_apply::apply(store, eval, &job, &plan, from, now) {
            Ok(applied) => {
                log_decisions(&job, eval, &plan);
                let stopped = plan.stop.len() + plan.destructive.len();
                info!(
                    job_id = %job.id,
                    eval_id = %eval.id,
                    index = applied.index,
                    place = plan.place.len(),
                    stop = plan.stop.len(),
                    destructive = plan.destructive.len(),
                    inplace = plan.inplace.len(),
                    followups = applied.followups.len(),
                    "plan applied"
                );
                return Ok(Processed {
                    noop: false,
                    placed: applied.placed.len(),
                    stopped,
                    placement_failures,
                    followups: applied.followups,
                });
            }
            Err(e) if e.is_stale() => {
                debug!(job_id = %job.id, eval_id = %eval.id, "plan is stale; planning again");
                continue;
            }
            Err(e) => {
                // Nothing was written, but an unexpected failure may mean the kept view and
                // the store disagree: the next evaluation rebuilds it.
                store.drop_cluster_view();
                return Err(e.into());
            }
        }
    }
    Err(WorkerError::TooManyAttempts {
        eval_id: eval.id.clone(),
        job_id: eval.job_id.clone(),
        attempts: MAX_PLAN_ATTEMPTS,
    })
}

/// The plan for `job` from what a worker read: its own allocations, and the kept view's usage
/// standing for every other job's.
pub fn plan(snap: &JobSnapshot, job: &Job, now: SystemTime) -> crate::scheduler::Plan {
    reconcile_indexed(
        &ReconcileInput {
            job,
            versions: &snap.versions,
            existing: &snap.allocs,
            nodes: snap.cluster.nodes(),
            now,
        },
        &snap.cluster.node_index(),
    )
}

/// One info line per decision of an applied plan (`docs/scheduler.md`): the job, its version,
/// the action, the allocation and node, and why. Logged only once the plan is written, so a
/// stale plan that is computed again is not reported twice.
fn log_decisions(job: &Job, eval: &Evaluation, plan: &crate::scheduler::Plan) {
    for d in plan.decisions() {
        info!(
            job_id = %job.id,
            version = plan.job_version,
            eval_id = %eval.id,
            action = d.action,
            group = %d.task_group,
            alloc_name = %d.alloc_name,
            alloc_id = d.alloc_id.as_deref().unwrap_or(""),
            node_id = d.node_id.as_deref().unwrap_or(""),
            reason = %d.reason,
            "reconcile decision: {} {}",
            d.action,
            if d.alloc_name.is_empty() { d.alloc_id.as_deref().unwrap_or(&d.task_group) } else { &d.alloc_name }
        );
    }
}

/// Marks superseded evaluations canceled (Nomad's wording for evals a newer one replaced).
fn cancel_superseded(store: &Store, broker: &Broker) {
    for old in broker.take_superseded() {
        let now = unix_nanos(SystemTime::now());
        if let Err(e) = store.set_eval_status(
            &old.id,
            EvalStatus::Canceled,
            "canceled after more recent eval was processed",
            now,
        ) {
            warn!(eval_id = %old.id, job_id = %old.job_id, error = %e, "failed to cancel a superseded evaluation");
        }
    }
}

/// What a worker reports to besides the store and the broker.
#[derive(Clone, Default)]
pub struct WorkerHooks {
    pub metrics: Arc<Metrics>,
    /// The worker beats here while idle and after every evaluation (systemd's watchdog).
    pub liveness: Arc<Liveness>,
}

/// One worker: dequeue, process, settle, until `shutdown` resolves.
pub async fn run(
    id: usize,
    store: Arc<Store>,
    broker: Arc<Broker>,
    hooks: WorkerHooks,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let name = format!("worker {id}");
    let mut beat = tokio::time::interval(IDLE_BEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        hooks.liveness.beat(&name);
        // `dequeue` takes an evaluation in one synchronous step, so dropping it for a beat
        // loses nothing.
        let (eval, token) = tokio::select! {
            _ = &mut shutdown => {
                hooks.liveness.remove(&name);
                return;
            }
            _ = beat.tick() => continue,
            next = broker.dequeue() => next,
        };
        cancel_superseded(&store, &broker);
        let span = info_span!(
            "eval",
            worker = id,
            eval_id = %eval.id,
            job_id = %eval.job_id,
            triggered_by = eval.triggered_by.as_str()
        );
        let started = std::time::Instant::now();
        let result = {
            let store = store.clone();
            let eval = eval.clone();
            // SQLite calls block: keep them off the async workers.
            tokio::task::spawn_blocking(move || {
                crate::failpoint::stall("worker-stall");
                process(&store, &eval)
            })
            .instrument(span.clone())
            .await
        };
        let took = started.elapsed();
        let _enter = span.enter();
        match &result {
            Ok(Ok(done)) => {
                let failed: u64 = done.placement_failures;
                if failed > 0 {
                    hooks.metrics.placement_failed(failed);
                }
                let outcome = if done.followups.is_empty() {
                    ReconcileResult::Success
                } else {
                    ReconcileResult::RequeueAfter
                };
                hooks.metrics.reconciled(outcome, took);
            }
            Ok(Err(e)) => hooks.metrics.reconcile_error(e.metric_label(), took),
            Err(_) => hooks.metrics.reconcile_error("panic", took),
        }
        match result {
            Ok(Ok(done)) => {
                for f in done.followups {
                    broker.enqueue(f);
                }
                if let Err(e) = broker.ack(&eval, &token) {
                    warn!(error = %e, "failed to ack");
                }
            }
            Ok(Err(e)) => {
                warn!(error = %e, label = e.metric_label(), "evaluation failed");
                nack(&store, &broker, &eval, &token, &e.to_string());
            }
            Err(join) => {
                warn!(error = %join, "evaluation panicked");
                nack(&store, &broker, &eval, &token, "the worker panicked");
            }
        }
    }
}

fn nack(store: &Store, broker: &Broker, eval: &Evaluation, token: &str, why: &str) {
    match broker.nack(eval, token) {
        Ok(NackOutcome::Requeued) => {}
        Ok(NackOutcome::Failed) => {
            let now = unix_nanos(SystemTime::now());
            if let Err(e) = store.set_eval_status(&eval.id, EvalStatus::Failed, why, now) {
                warn!(error = %e, "failed to record the evaluation as failed");
            }
        }
        Err(e) => warn!(error = %e, "failed to nack"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::JobSource;
    use crate::structs::mock::MockNode;
    use crate::structs::mock::{self, MockJob};
    use crate::structs::{ClientStatus, DesiredStatus, EvalTrigger};

    fn store_with_node() -> Store {
        let store = Store::open_in_memory().expect("open");
        store.upsert_node(mock::node()).expect("node");
        store
    }

    #[test]
    fn register_then_process_places_and_a_second_pass_is_a_noop() {
        let store = store_with_node();
        let reg = store
            .register_job(mock::job().count(2), &JobSource::Api, 0)
            .expect("register");
        let done = process(&store, &reg.eval).expect("process");
        assert_eq!((done.noop, done.placed), (false, 2));
        let allocs = store.allocs_by_job("default", "example").expect("allocs");
        let mut names: Vec<&str> = allocs.iter().map(|a| a.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["example.web[0]", "example.web[1]"]);
        assert!(allocs.iter().all(|a| a.desired_status == DesiredStatus::Run
            && a.client_status == ClientStatus::Pending
            && a.eval_id == reg.eval.id
            && a.create_index > 0));
        let eval = store.eval(&reg.eval.id).expect("read").expect("exists");
        assert_eq!(eval.status, EvalStatus::Complete);

        let again = store
            .register_job(mock::job().count(2), &JobSource::Api, 0)
            .expect("same spec");
        assert!(process(&store, &again.eval).expect("process").noop);
        assert_eq!(
            store
                .eval(&again.eval.id)
                .expect("read")
                .expect("exists")
                .status,
            EvalStatus::Complete
        );
    }

    #[test]
    fn a_destructive_update_links_old_and_new() {
        let store = store_with_node();
        let reg = store
            .register_job(mock::job(), &JobSource::Api, 0)
            .expect("v0");
        process(&store, &reg.eval).expect("place");
        let reg = store
            .register_job(mock::job().image("busybox:v2"), &JobSource::Api, 0)
            .expect("v1");
        assert_eq!(reg.version, 1);
        process(&store, &reg.eval).expect("update");
        let allocs = store.allocs_by_job("default", "example").expect("allocs");
        let old = allocs.iter().find(|a| a.job_version == 0).expect("old");
        let new = allocs.iter().find(|a| a.job_version == 1).expect("new");
        assert_eq!(old.desired_status, DesiredStatus::Stop);
        assert_eq!(
            old.desired_description,
            "alloc is being updated due to job update"
        );
        assert_eq!(old.next_allocation.as_deref(), Some(new.id.as_str()));
        assert_eq!(new.previous_allocation.as_deref(), Some(old.id.as_str()));
    }

    #[test]
    fn a_stopped_or_purged_job_stops_its_allocations() {
        for purge in [false, true] {
            let store = store_with_node();
            let reg = store
                .register_job(mock::job().count(2), &JobSource::Api, 0)
                .expect("register");
            process(&store, &reg.eval).expect("place");
            let eval = store
                .deregister_job("default", "example", purge, None, 0)
                .expect("deregister");
            assert_eq!(eval.triggered_by, EvalTrigger::JobDeregister);
            let done = process(&store, &eval).expect("stop");
            assert_eq!(done.stopped, 2);
            assert!(
                store
                    .allocs_by_job("default", "example")
                    .expect("allocs")
                    .iter()
                    .all(|a| a.desired_status == DesiredStatus::Stop)
            );
        }
    }

    #[test]
    fn a_placement_failure_is_recorded_on_the_eval() {
        let store = store_with_node();
        let reg = store
            .register_job(
                mock::job().count(2).static_port("http", 8080),
                &JobSource::Api,
                0,
            )
            .expect("register");
        process(&store, &reg.eval).expect("process");
        let eval = store.eval(&reg.eval.id).expect("read").expect("exists");
        assert_eq!(
            eval.failed_tg_allocs["web"].dimension_exhausted["network: reserved port collision http=8080"],
            1
        );
        assert_eq!(
            store
                .allocs_by_job("default", "example")
                .expect("allocs")
                .len(),
            1
        );
    }

    #[test]
    fn a_failed_alloc_gets_a_delayed_followup_linked_to_it() {
        let store = store_with_node();
        let reg = store
            .register_job(mock::job(), &JobSource::Api, 0)
            .expect("register");
        process(&store, &reg.eval).expect("place");
        let alloc = store
            .allocs_by_job("default", "example")
            .expect("allocs")
            .remove(0);
        let now = unix_nanos(SystemTime::now());
        store
            .update_allocs_from_client(
                "node-1",
                &[drover_runtime::spec::AllocUpdate {
                    id: alloc.id.clone(),
                    client_status: ClientStatus::Failed,
                    client_description: "Failed tasks".into(),
                    task_states: Default::default(),
                    checks: vec![],
                    driver_networks: Default::default(),
                }],
                now,
            )
            .expect("report failed");
        let e = Evaluation::new("example", "default", EvalTrigger::RetryFailedAlloc, now);
        let e = store.upsert_eval(&e).expect("eval");
        let done = process(&store, &e).expect("process");
        assert_eq!(done.followups.len(), 1);
        let f = &done.followups[0];
        assert!(f.wait_until.expect("delayed") >= now + 29_000_000_000);
        let alloc = store.alloc(&alloc.id).expect("read").expect("exists");
        assert_eq!(alloc.followup_eval_id.as_deref(), Some(f.id.as_str()));
        assert_eq!(
            store.eval(&f.id).expect("read").expect("persisted").status,
            EvalStatus::Pending
        );
        // Planning again before the delay is a no-op.
        assert!(process(&store, &e).expect("again").noop);
    }

    /// The plan the worker makes (its job snapshot against the kept view) and the plan from a
    /// fresh full snapshot of the store, at one instant.
    fn both_plans(
        store: &Store,
        eval: &Evaluation,
    ) -> (crate::scheduler::Plan, crate::scheduler::Plan) {
        let now = SystemTime::now();
        let full = store
            .snapshot(&eval.namespace, &eval.job_id)
            .expect("snapshot");
        let job = full
            .job
            .clone()
            .unwrap_or_else(|| Job::tombstone(&eval.namespace, &eval.job_id));
        let fresh = crate::scheduler::reconcile(&ReconcileInput {
            job: &job,
            versions: &full.versions,
            existing: &full.allocs,
            nodes: &full.nodes,
            now,
        });
        let snap = store
            .job_snapshot(&eval.namespace, &eval.job_id)
            .expect("job snapshot");
        assert_eq!(snap.index, full.index);
        (plan(&snap, &job, now), fresh)
    }

    /// Plans `eval` both ways, checks they agree, processes it, and checks the kept view is
    /// the one the store would build now.
    fn process_checked(store: &Store, eval: &Evaluation) -> Processed {
        let (kept, fresh) = both_plans(store, eval);
        assert_eq!(kept, fresh, "evaluation {} of {}", eval.id, eval.job_id);
        let done = process(store, eval).expect("process");
        assert_view_is_fresh(store, &format!("after processing {}", eval.job_id));
        done
    }

    fn assert_view_is_fresh(store: &Store, when: &str) {
        let kept = store.cluster_view().expect("a kept view");
        let fresh = store.read_cluster_view().expect("rebuild");
        assert_eq!(kept.index(), store.index(), "{when}");
        assert!(
            kept == fresh,
            "{when}: the kept view differs from one rebuilt from the store"
        );
    }

    #[test]
    fn the_kept_view_equals_a_rebuilt_one_after_applies_client_updates_and_node_changes() {
        let store = Store::open_in_memory().expect("open");
        for i in 1..=3u64 {
            store
                .upsert_node(mock::node().id(&mock::id(0xb, i)).capacity(1000, 2048))
                .expect("node");
        }
        store.rebuild_cluster_view().expect("build the view");
        let job = |id: &str| {
            mock::job().with(|j| {
                j.id = id.into();
                j.name = id.into();
            })
        };
        let now = || unix_nanos(SystemTime::now());

        // Plans write: two jobs compete for a static port and capacity.
        let web = store
            .register_job(
                job("web")
                    .count(3)
                    .static_port("http", 8080)
                    .resources(300, 256),
                &JobSource::Api,
                0,
            )
            .expect("web");
        assert_eq!(process_checked(&store, &web.eval).placed, 3);
        let api = store
            .register_job(
                job("api").count(4).dynamic_port("http").resources(200, 512),
                &JobSource::Api,
                0,
            )
            .expect("api");
        assert_eq!(process_checked(&store, &api.eval).placed, 4);
        let more = store
            .register_job(
                job("more").count(2).static_port("http", 8080),
                &JobSource::Api,
                0,
            )
            .expect("more");
        let done = process_checked(&store, &more.eval);
        assert_eq!(
            (done.placed, done.placement_failures),
            (0, 2),
            "every 8080 is taken"
        );

        // Client updates: one running, one failed (it stops holding its node), then retried.
        let allocs = store.allocs_by_job("default", "web").expect("allocs");
        let update = |a: &crate::structs::Allocation, status| drover_runtime::spec::AllocUpdate {
            id: a.id.clone(),
            client_status: status,
            client_description: String::new(),
            task_states: Default::default(),
            checks: vec![],
            driver_networks: Default::default(),
        };
        store
            .update_allocs_from_client(
                &allocs[0].node_id,
                &[update(&allocs[0], ClientStatus::Running)],
                now(),
            )
            .expect("running");
        assert_view_is_fresh(&store, "after a running update");
        store
            .update_allocs_from_client(
                &allocs[1].node_id,
                &[update(&allocs[1], ClientStatus::Failed)],
                now(),
            )
            .expect("failed");
        assert_view_is_fresh(&store, "after a failed update");
        let retry = Evaluation::new("web", "default", EvalTrigger::RetryFailedAlloc, now());
        let retry = store.upsert_eval(&retry).expect("eval");
        process_checked(&store, &retry);
        let done = process_checked(&store, &more.eval);
        assert_eq!(done.placed, 1, "the failed allocation gave its port back");

        // Node changes: a new node, one ineligible, one draining, one down and back.
        store
            .upsert_node(mock::node().id(&mock::id(0xb, 4)).capacity(1000, 2048))
            .expect("new node");
        assert_view_is_fresh(&store, "after a registration");
        let done = process_checked(&store, &more.eval);
        assert_eq!(done.placed, 1, "the new node's 8080 is free");
        store
            .set_node_eligibility(
                &mock::id(0xb, 2),
                crate::structs::SchedulingEligibility::Ineligible,
            )
            .expect("ineligible");
        assert_view_is_fresh(&store, "after an eligibility change");
        let drain = crate::structs::DrainStrategy {
            deadline: -1,
            ignore_system_jobs: false,
            force_deadline: now(),
            started_at: now(),
        };
        store
            .set_node_drain(&mock::id(0xb, 1), Some(drain), false, now())
            .expect("drain");
        assert_view_is_fresh(&store, "after a drain");
        for id in ["web", "api", "more"] {
            let e = Evaluation::new(id, "default", EvalTrigger::NodeUpdate, now());
            process_checked(&store, &store.upsert_eval(&e).expect("eval"));
        }
        let lost = store
            .mark_node_down(&mock::id(0xb, 3), "missed heartbeats", now())
            .expect("down");
        assert_view_is_fresh(&store, "after a node went down");
        for e in &lost {
            process_checked(&store, e);
        }
        store
            .set_node_status(
                &mock::id(0xb, 3),
                crate::structs::NodeStatus::Ready,
                "back",
                now(),
            )
            .expect("ready");
        assert_view_is_fresh(&store, "after a node came back");

        // A stopped job's allocations stop holding their nodes, then are collected.
        let stop = store
            .deregister_job("default", "api", false, None, now())
            .expect("stop");
        process_checked(&store, &stop);
        store.gc_jobs(i64::MAX).expect("gc");
        assert_view_is_fresh(&store, "after a job GC");
    }

    #[test]
    fn workers_planning_at_once_on_their_own_snapshots_never_double_book_a_port() {
        let store = Store::open_in_memory().expect("open");
        for i in 1..=2u64 {
            store
                .upsert_node(mock::node().id(&mock::id(0xb, i)))
                .expect("node");
        }
        store.rebuild_cluster_view().expect("build the view");
        let evals: Vec<Evaluation> = (0..6)
            .map(|k| {
                let job = mock::job().static_port("http", 8080).with(|j| {
                    j.id = format!("web-{k}");
                    j.name = j.id.clone();
                });
                store
                    .register_job(job, &JobSource::Api, 0)
                    .expect("register")
                    .eval
            })
            .collect();
        // Each thread plans on the view as it last saw it; the plan applier's guard refuses
        // a plan whose node another plan wrote to since, and the worker plans again.
        std::thread::scope(|s| {
            for e in &evals {
                let store = &store;
                s.spawn(move || process(store, e).expect("process"));
            }
        });
        let mut taken: Vec<String> = Vec::new();
        for k in 0..6 {
            for a in store
                .allocs_by_job("default", &format!("web-{k}"))
                .expect("allocs")
            {
                taken.push(a.node_id);
            }
        }
        taken.sort();
        assert_eq!(
            taken,
            [mock::id(0xb, 1), mock::id(0xb, 2)],
            "one holder of 8080 per node"
        );
        assert_view_is_fresh(&store, "after concurrent plans");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_drain_the_broker() {
        let store = Arc::new(store_with_node());
        let broker = Arc::new(Broker::default());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut handles = Vec::new();
        for id in 0..2 {
            let mut rx = rx.clone();
            handles.push(tokio::spawn(run(
                id,
                store.clone(),
                broker.clone(),
                WorkerHooks::default(),
                async move {
                    let _ = rx.wait_for(|v| *v).await;
                },
            )));
        }
        for name in ["a", "b", "c"] {
            let reg = store
                .register_job(mock::job().with(|j| j.id = name.into()), &JobSource::Api, 0)
                .expect("register");
            broker.enqueue(reg.eval);
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let pending = store.evals_by_status(EvalStatus::Pending).expect("evals");
            if pending.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "evals still pending: {pending:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        for name in ["a", "b", "c"] {
            assert_eq!(
                store.allocs_by_job("default", name).expect("allocs").len(),
                1
            );
        }
        tx.send(true).expect("shutdown");
        for h in handles {
            h.await.expect("worker exits");
        }
    }
}
