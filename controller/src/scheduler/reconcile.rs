//! The reconciler proper (after Nomad's `reconcile_cluster.go`): per task group, classify the
//! recorded allocations, decide stops, in-place and destructive updates, replacements and new
//! placements, then place everything on nodes in one pass so usage accumulates.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::structs::{
    Allocation, ClientStatus, DesiredStatus, EvalTrigger, Job, JobType, RescheduleEvent,
    ReschedulePolicy, RescheduleTracker, Task, TaskGroup, alloc_name, desc, unix_nanos,
};

use super::feasible::{Usage, node_lost, select_node};
use super::{
    DesiredUpdates, FollowupEval, Placement, PlacementFailure, Plan, ReconcileInput, StopAlloc,
};

/// Failed allocations whose reschedule times fall within this window share one follow-up
/// evaluation (Nomad's `batchedFailedAllocWindowSize`).
const FOLLOWUP_BATCH_WINDOW: i64 = 5_000_000_000;
/// A reschedule due this soon happens now (Nomad's `rescheduleWindowSize`).
const RESCHEDULE_WINDOW: i64 = 1_000_000_000;
/// Nomad keeps at most this many past events for unlimited rescheduling.
const MAX_PAST_RESCHEDULE_EVENTS: usize = 5;

/// A placement the reconciler wants, before a node is chosen.
struct Want {
    group: String,
    name: String,
    previous: Option<String>,
    tracker: Option<RescheduleTracker>,
    /// The stop it pairs with, for a destructive update.
    replaces: Option<StopAlloc>,
}

/// Computes the plan for one job. Pure: see the module docs of [`super`].
pub fn reconcile(input: &ReconcileInput<'_>) -> Plan {
    let job = input.job;
    let now = unix_nanos(input.now);
    let mut plan = Plan {
        job_id: job.id.clone(),
        job_version: job.version,
        ..Plan::default()
    };
    let nodes: BTreeMap<&str, &crate::structs::Node> =
        input.nodes.iter().map(|n| (n.id.as_str(), n)).collect();

    let mut by_group: BTreeMap<&str, Vec<&Allocation>> = BTreeMap::new();
    for a in input.existing {
        if a.job_id == job.id && a.namespace == job.namespace {
            by_group.entry(a.task_group.as_str()).or_default().push(a);
        }
    }
    let mut groups: BTreeSet<&str> = by_group.keys().copied().collect();
    groups.extend(job.task_groups.iter().map(|g| g.name.as_str()));

    let mut wants = Vec::new();
    for group in groups {
        let mut allocs = by_group.remove(group).unwrap_or_default();
        allocs.sort_by(|a, b| (a.index(), &a.id).cmp(&(b.index(), &b.id)));
        let mut du = DesiredUpdates::default();
        compute_group(
            input, now, &nodes, group, &allocs, &mut plan, &mut wants, &mut du,
        );
        plan.desired_tg_updates.insert(group.to_string(), du);
    }

    // Usage after every stop of this plan, so replacements can reuse what the old held.
    let stopped: BTreeSet<&str> = plan
        .stop
        .iter()
        .map(|s| s.alloc_id.as_str())
        .chain(
            wants
                .iter()
                .filter_map(|w| w.replaces.as_ref())
                .map(|s| s.alloc_id.as_str()),
        )
        .collect();
    let mut usage = Usage::from_allocs(
        input
            .existing
            .iter()
            .filter(|a| !stopped.contains(a.id.as_str())),
    );

    for want in wants {
        let Some(tg) = job.group(&want.group) else {
            continue;
        };
        match select_node(job, tg, input.nodes, &usage) {
            Ok(chosen) => {
                usage.apply(
                    &chosen.node_id,
                    &job.id,
                    &tg.name,
                    chosen.resources,
                    &chosen.networks,
                    1,
                );
                let placement = Placement {
                    name: want.name,
                    task_group: want.group,
                    node_id: chosen.node_id,
                    job_version: job.version,
                    networks: chosen.networks,
                    resources: chosen.resources,
                    previous_allocation: want.previous,
                    reschedule_tracker: want.tracker,
                };
                match want.replaces {
                    Some(stop) => plan.destructive.push((stop, placement)),
                    None => plan.place.push(placement),
                }
            }
            Err(metric) => {
                // The old allocation of a destructive update keeps running: stopping it with
                // nowhere to put its replacement would only lose capacity.
                record_failure(&mut plan.failed_tg, &want.group, metric);
            }
        }
    }
    plan
}

fn record_failure(
    failed: &mut BTreeMap<String, PlacementFailure>,
    group: &str,
    metric: PlacementFailure,
) {
    match failed.get_mut(group) {
        Some(existing) => existing.coalesced_failures += 1,
        None => {
            failed.insert(group.to_string(), metric);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn compute_group(
    input: &ReconcileInput<'_>,
    now: i64,
    nodes: &BTreeMap<&str, &crate::structs::Node>,
    group: &str,
    allocs: &[&Allocation],
    plan: &mut Plan,
    wants: &mut Vec<Want>,
    du: &mut DesiredUpdates,
) {
    let job = input.job;
    // What the server already stopped is done, whatever the node still reports.
    let allocs: Vec<&Allocation> = allocs
        .iter()
        .copied()
        .filter(|a| !a.server_terminal())
        .collect();
    let tg = match job.group(group) {
        Some(tg) if !job.stop && tg.count > 0 => tg,
        _ => {
            for a in allocs.iter().filter(|a| !a.client_terminal()) {
                plan.stop.push(stop(a, desc::NOT_NEEDED, None));
                du.stop += 1;
            }
            return;
        }
    };
    let batch = matches!(job.job_type, JobType::Batch | JobType::Sysbatch);

    let mut untainted: Vec<&Allocation> = Vec::new();
    // (alloc, description, client status) of allocations to stop and replace.
    let mut replace: Vec<(
        &Allocation,
        &'static str,
        Option<ClientStatus>,
        Option<RescheduleTracker>,
    )> = Vec::new();
    let mut waiting: Vec<(&Allocation, i64)> = Vec::new();
    for &a in &allocs {
        let node = nodes.get(a.node_id.as_str()).copied();
        match a.client_status {
            ClientStatus::Complete if batch => untainted.push(a),
            // A service whose tasks all exited is gone: its slot is free for a new one.
            ClientStatus::Complete => {}
            ClientStatus::Lost => {
                replace.push((a, desc::LOST, None, None));
                du.place += 1;
            }
            ClientStatus::Failed => match reschedule_time(&tg.reschedule, a, now) {
                None => untainted.push(a),
                Some((at, delay)) if at <= now + RESCHEDULE_WINDOW => {
                    let mut tracker = a.reschedule_tracker.clone().unwrap_or_default();
                    tracker.events.push(RescheduleEvent {
                        reschedule_time: now,
                        prev_alloc_id: a.id.clone(),
                        prev_node_id: a.node_id.clone(),
                        delay,
                    });
                    if tg.reschedule.unlimited && tracker.events.len() > MAX_PAST_RESCHEDULE_EVENTS
                    {
                        let drop = tracker.events.len() - MAX_PAST_RESCHEDULE_EVENTS;
                        tracker.events.drain(..drop);
                    }
                    replace.push((a, desc::RESCHEDULED, None, Some(tracker)));
                    du.place += 1;
                }
                Some((at, _)) => {
                    untainted.push(a);
                    if a.followup_eval_id.is_none() {
                        waiting.push((a, at));
                    }
                }
            },
            _ if node_lost(node) => {
                replace.push((a, desc::LOST, Some(ClientStatus::Lost), None));
                du.place += 1;
            }
            _ if node.is_some_and(|n| n.drain) => {
                replace.push((a, desc::MIGRATING, None, None));
                du.migrate += 1;
            }
            _ => untainted.push(a),
        }
    }

    followups_for_failed(group, &mut waiting, plan);

    // Too many: stop duplicates of a name first, then the highest indices (Nomad's
    // `AllocNameIndex.Highest`).
    let desired = tg.count as usize;
    let mut seen = BTreeSet::new();
    let mut ranked: Vec<(bool, u32, &Allocation)> = untainted
        .iter()
        .map(|a| {
            let idx = a.index().unwrap_or(u32::MAX);
            let dup = !seen.insert(idx) || a.index().is_none();
            (dup, idx, *a)
        })
        .collect();
    ranked.sort_by(|x, y| (y.0, y.1, &y.2.id).cmp(&(x.0, x.1, &x.2.id)));
    let excess = untainted.len().saturating_sub(desired);
    let mut kept: Vec<&Allocation> = Vec::new();
    for (i, (_, _, a)) in ranked.into_iter().enumerate() {
        if i < excess {
            // Even a finished one is stopped: left alone it would count again next time.
            plan.stop.push(stop(a, desc::NOT_NEEDED, None));
            du.stop += 1;
        } else {
            kept.push(a);
        }
    }
    kept.sort_by(|a, b| (a.index(), &a.id).cmp(&(b.index(), &b.id)));

    // Updates to the current version.
    let mut destructive: Vec<&Allocation> = Vec::new();
    for &a in &kept {
        if a.job_version == job.version || a.client_terminal() {
            du.ignore += 1;
            continue;
        }
        let old = input
            .versions
            .get(&a.job_version)
            .and_then(|j| j.group(group));
        match old {
            Some(old) if !tasks_updated(old, tg) => {
                plan.inplace.push(a.id.clone());
                du.in_place_update += 1;
            }
            _ => destructive.push(a),
        }
    }
    rolling_update(job, tg, now, &kept, &destructive, plan, wants, du);

    // Replacements reuse their name when it is still free; new ones take the lowest free index.
    let mut used: BTreeSet<u32> = kept.iter().filter_map(|a| a.index()).collect();
    let mut room = desired.saturating_sub(kept.len());
    for (a, why, client_status, tracker) in replace {
        plan.stop.push(stop(a, why, client_status));
        du.stop += 1;
        if room == 0 {
            continue;
        }
        room -= 1;
        let idx = match a.index() {
            Some(i) if (i as usize) < desired && !used.contains(&i) => i,
            _ => lowest_free(&used),
        };
        used.insert(idx);
        wants.push(Want {
            group: group.to_string(),
            name: alloc_name(&job.id, group, idx),
            previous: Some(a.id.clone()),
            tracker,
            replaces: None,
        });
    }
    for _ in 0..room {
        let idx = lowest_free(&used);
        used.insert(idx);
        du.place += 1;
        wants.push(Want {
            group: group.to_string(),
            name: alloc_name(&job.id, group, idx),
            previous: None,
            tracker: None,
            replaces: None,
        });
    }
}

fn lowest_free(used: &BTreeSet<u32>) -> u32 {
    (0..).find(|i| !used.contains(i)).unwrap_or(u32::MAX)
}

fn stop(a: &Allocation, why: &str, client_status: Option<ClientStatus>) -> StopAlloc {
    StopAlloc {
        alloc_id: a.id.clone(),
        name: a.name.clone(),
        description: why.to_string(),
        client_status,
    }
}

/// Destructive updates, `max_parallel` at a time: a batch starts only once the previous one's
/// allocations have run for `min_healthy_time`; when that will be is a follow-up evaluation.
/// (Nomad tracks this in a deployment; drover keeps no deployment object, see docs/scheduler.md.)
#[allow(clippy::too_many_arguments)]
fn rolling_update(
    job: &Job,
    tg: &TaskGroup,
    now: i64,
    kept: &[&Allocation],
    destructive: &[&Allocation],
    plan: &mut Plan,
    wants: &mut Vec<Want>,
    du: &mut DesiredUpdates,
) {
    if destructive.is_empty() {
        return;
    }
    let min_healthy = i64::try_from(tg.update.min_healthy_time.as_nanos()).unwrap_or(i64::MAX);
    let healthy_at = |a: &Allocation| a.running_since.map(|t| t.saturating_add(min_healthy));
    let unhealthy: Vec<&Allocation> = kept
        .iter()
        .copied()
        .filter(|a| a.job_version == job.version && a.desired_status == DesiredStatus::Run)
        // A failed new allocation holds the rollout until its replacement proves healthy, so a
        // broken version does not roll over every allocation; a finished batch one does not.
        .filter(|a| !matches!(a.client_status, ClientStatus::Complete | ClientStatus::Lost))
        .filter(|a| {
            a.client_status != ClientStatus::Running || healthy_at(a).is_none_or(|t| t > now)
        })
        .collect();
    let limit = if tg.update.max_parallel == 0 {
        destructive.len()
    } else {
        (tg.update.max_parallel as usize).saturating_sub(unhealthy.len())
    };
    let limit = limit.min(destructive.len());
    for a in &destructive[..limit] {
        du.destructive_update += 1;
        wants.push(Want {
            group: tg.name.clone(),
            name: a.name.clone(),
            previous: Some(a.id.clone()),
            tracker: None,
            replaces: Some(stop(a, desc::UPDATING, None)),
        });
    }
    du.ignore += (destructive.len() - limit) as u64;
    if limit == destructive.len() {
        return;
    }
    // Wake up when the first running new allocation becomes healthy, once per allocation.
    let next = unhealthy
        .iter()
        .filter(|a| a.client_status == ClientStatus::Running)
        .filter_map(|a| healthy_at(a).map(|t| (t, *a)))
        .min_by(|x, y| (x.0, &x.1.id).cmp(&(y.0, &y.1.id)));
    if let Some((at, a)) = next
        && a.followup_eval_id.is_none()
    {
        plan.followup_evals.push(FollowupEval {
            task_group: tg.name.clone(),
            triggered_by: EvalTrigger::RollingUpdate,
            wait_until: at,
            description: desc::ROLLING_FOLLOWUP.into(),
            alloc_ids: vec![a.id.clone()],
        });
    }
}

/// One follow-up evaluation per window of failed allocations that may be rescheduled later.
fn followups_for_failed(group: &str, waiting: &mut [(&Allocation, i64)], plan: &mut Plan) {
    waiting.sort_by(|x, y| (x.1, &x.0.id).cmp(&(y.1, &y.0.id)));
    let mut current: Option<FollowupEval> = None;
    for (a, at) in waiting.iter() {
        match &mut current {
            Some(f) if *at - f.wait_until <= FOLLOWUP_BATCH_WINDOW => {
                f.alloc_ids.push(a.id.clone())
            }
            _ => {
                if let Some(f) = current.take() {
                    plan.followup_evals.push(f);
                }
                current = Some(FollowupEval {
                    task_group: group.to_string(),
                    triggered_by: EvalTrigger::RetryFailedAlloc,
                    wait_until: *at,
                    description: desc::RESCHEDULING_FOLLOWUP.into(),
                    alloc_ids: vec![a.id.clone()],
                });
            }
        }
    }
    if let Some(f) = current {
        plan.followup_evals.push(f);
    }
}

/// When a failed allocation may be replaced, and the delay applied; `None` once its
/// reschedule attempts are spent (Nomad's `NextRescheduleTime`).
fn reschedule_time(policy: &ReschedulePolicy, a: &Allocation, now: i64) -> Option<(i64, Duration)> {
    let events = a
        .reschedule_tracker
        .as_ref()
        .map(|t| t.events.as_slice())
        .unwrap_or(&[]);
    if !policy.unlimited {
        if policy.attempts == 0 {
            return None;
        }
        let interval = i64::try_from(policy.interval.as_nanos()).unwrap_or(i64::MAX);
        let recent = events
            .iter()
            .filter(|e| now.saturating_sub(e.reschedule_time) < interval)
            .count();
        if recent >= policy.attempts as usize {
            return None;
        }
    }
    let delay = next_delay(policy, events);
    let at = a
        .last_event_time()
        .saturating_add(i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX));
    Some((at, delay))
}

/// Nomad's `ReschedulePolicy` delay functions: constant, exponential and fibonacci, capped
/// at `max_delay`.
fn next_delay(policy: &ReschedulePolicy, events: &[RescheduleEvent]) -> Duration {
    let cap = |d: Duration| {
        if policy.max_delay.is_zero() {
            d
        } else {
            d.min(policy.max_delay)
        }
    };
    match (policy.delay_function.as_str(), events) {
        (_, []) | ("constant", _) => policy.delay,
        ("exponential", [.., last]) => cap(last.delay.saturating_mul(2)),
        ("fibonacci", [.., prev, last]) => cap(prev.delay.saturating_add(last.delay)),
        ("fibonacci", [last]) => cap(last.delay),
        _ => policy.delay,
    }
}

/// Nomad's `tasksUpdated`: whether moving an allocation from `a` to `b` needs new tasks
/// (destructive) rather than new bookkeeping (in place). Restart, reschedule and update policy,
/// services, job meta and priority change in place; what the driver was started with does not.
pub fn tasks_updated(a: &TaskGroup, b: &TaskGroup) -> bool {
    group_updated(a, b)
        || a.tasks.iter().any(|at| match b.task(&at.name) {
            Some(bt) => task_updated(at, bt),
            None => true,
        })
}

/// The group-level half of [`tasks_updated`]: what every task of the group shares (its set of
/// tasks, network, disk and meta).
pub fn group_updated(a: &TaskGroup, b: &TaskGroup) -> bool {
    a.tasks.len() != b.tasks.len()
        || a.networks != b.networks
        || a.ephemeral_disk != b.ephemeral_disk
        || a.meta != b.meta
}

/// The task-level half of [`tasks_updated`]: whether this task must be started again.
pub fn task_updated(at: &Task, bt: &Task) -> bool {
    at.driver != bt.driver
        || at.user != bt.user
        || at.config != bt.config
        || at.env != bt.env
        || at.meta != bt.meta
        || at.artifacts != bt.artifacts
        || at.resources != bt.resources
        || at.logs != bt.logs
        || at.kill_signal != bt.kill_signal
        || at.leader != bt.leader
}
