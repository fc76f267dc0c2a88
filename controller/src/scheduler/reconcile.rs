//! The reconciler proper (after Nomad's `reconcile_cluster.go`): per task group, classify the
//! recorded allocations, decide stops, in-place and destructive updates, replacements and new
//! placements, then place everything on nodes in one pass so usage accumulates.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::structs::{
    Allocation, ClientStatus, DesiredStatus, EvalTrigger, Job, JobType, Node, RescheduleEvent,
    ReschedulePolicy, RescheduleTracker, Task, TaskGroup, alloc_name, desc, unix_nanos,
};

use super::feasible::{
    Usage, held_ports, in_job_scope, in_scope, node_lost, rank_limit, select_node,
};
use super::node_index::NodeIndex;
use super::{
    DesiredUpdates, FollowupEval, Placement, PlacementFailure, Plan, ReconcileInput, StopAlloc,
};

/// Failed allocations whose reschedule times fall within this window share one follow-up
/// evaluation (Nomad's `batchedFailedAllocWindowSize`).
const FOLLOWUP_BATCH_WINDOW: i64 = 5_000_000_000;
/// A reschedule due this soon happens now (Nomad's `rescheduleWindowSize`).
const RESCHEDULE_WINDOW: i64 = 1_000_000_000;
/// Nomad's `migrate` defaults: allocations leave a draining node one at a time per group, the
/// next once the previous replacement ran this long.
const MIGRATE_MAX_PARALLEL: usize = 1;
const MIGRATE_MIN_HEALTHY: Duration = Duration::from_secs(10);
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
    /// The one node it may go to: a system job's allocation belongs to its node.
    node: Option<String>,
}

/// Computes the plan for one job. Pure: see the module docs of [`super`].
pub fn reconcile(input: &ReconcileInput<'_>) -> Plan {
    reconcile_indexed(input, &NodeIndex::new(input.nodes))
}

/// [`reconcile`] with the nodes already indexed; `index` must index `input.nodes`. When the
/// index tracks allocations ([`NodeIndex::with_allocs`], [`super::ClusterSnapshot`]), its usage
/// stands for every other job's allocations, and `input.existing` needs only this job's, as the
/// index counted them.
pub fn reconcile_indexed<'a, 'n: 'a>(input: &ReconcileInput<'a>, index: &'a NodeIndex<'n>) -> Plan {
    let job = input.job;
    let now = unix_nanos(input.now);
    let mut plan = Plan {
        job_id: job.id.clone(),
        job_version: job.version,
        ..Plan::default()
    };

    let mut by_group: BTreeMap<&str, Vec<&Allocation>> = BTreeMap::new();
    for a in input.existing {
        if a.job_id == job.id && a.namespace == job.namespace {
            by_group.entry(a.task_group.as_str()).or_default().push(a);
        }
    }
    let system = matches!(job.job_type, JobType::System | JobType::Sysbatch);
    // In name order, as Nomad walks them; a sorted vector, not a set: a steady tick builds
    // this for every job.
    let mut groups: Vec<&str> = by_group
        .keys()
        .copied()
        .chain(job.task_groups.iter().map(|g| g.name.as_str()))
        .collect();
    groups.sort_unstable();
    groups.dedup();

    let mut wants = Vec::new();
    for group in groups {
        let mut allocs = by_group.remove(group).unwrap_or_default();
        // The index is parsed from the name: once per allocation, not once per comparison.
        allocs.sort_by_cached_key(|a| (a.index(), a.id.as_str()));
        let mut du = DesiredUpdates::default();
        if system {
            compute_system_group(
                input, now, index, group, &allocs, &mut plan, &mut wants, &mut du,
            );
        } else {
            compute_group(
                input, now, index, group, &allocs, &mut plan, &mut wants, &mut du,
            );
        }
        plan.desired_tg_updates.insert(group.to_string(), du);
    }
    if wants.is_empty() {
        // Nothing to place: no need to know what the nodes hold.
        return plan;
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
    let mut usage = match index.alloc_usage() {
        Some(tracked) => {
            let mut usage = Usage::over(tracked);
            // What the index counted for each stopped allocation: `existing` holds the job's
            // allocations as the index saw them, and the index counts the live ones.
            for a in input
                .existing
                .iter()
                .filter(|a| !a.terminal() && stopped.contains(a.id.as_str()))
            {
                let ports: Vec<u16> = held_ports(&a.networks).collect();
                usage.release(&a.node_id, &a.job_id, &a.task_group, a.resources, &ports);
            }
            usage
        }
        None => Usage::from_allocs(
            input
                .existing
                .iter()
                .filter(|a| !stopped.contains(a.id.as_str())),
        ),
    };
    // Where new allocations may go, sorted by id; the scan starts at a point that depends
    // only on the job, so plans stay reproducible while jobs start in different places.
    let candidates = index.candidates(job);
    let mut cursor = if candidates.is_empty() {
        0
    } else {
        (fnv1a(&job.id) % candidates.len() as u64) as usize
    };

    for want in wants {
        let Some(tg) = job.group(&want.group) else {
            continue;
        };
        let chosen = match &want.node {
            Some(id) => {
                let pinned: Vec<&Node> = index
                    .get(id)
                    .filter(|n| in_scope(job, n))
                    .into_iter()
                    .collect();
                select_node(job, tg, &pinned, &mut 0, 1, &usage)
            }
            None => {
                // Nomad's coalescing: once a group failed to place, its other placements
                // would fail for the same reasons.
                if let Some(failed) = plan.failed_tg.get_mut(&want.group) {
                    failed.coalesced_failures += 1;
                    continue;
                }
                let limit = rank_limit(job, tg, candidates.len());
                select_node(job, tg, &candidates, &mut cursor, limit, &usage)
            }
        };
        match chosen {
            Ok(chosen) => {
                usage.apply(
                    &chosen.node.id,
                    &job.id,
                    &tg.name,
                    chosen.resources,
                    &chosen.networks,
                );
                let placement = Placement {
                    name: want.name,
                    task_group: want.group,
                    node_id: chosen.node.id.clone(),
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
            // A system job runs only where it fits: a node its constraints or drivers rule
            // out is not a failure (Nomad reports only exhausted nodes for system jobs).
            Err(metric) if system && metric.nodes_exhausted == 0 => {}
            Err(metric) => {
                // The old allocation of a destructive update keeps running: stopping it with
                // nowhere to put its replacement would only lose capacity.
                record_failure(&mut plan.failed_tg, &want.group, metric);
            }
        }
    }
    plan
}

/// FNV-1a: a stable hash (std's is seeded per process, and plans must be reproducible).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
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
    nodes: &NodeIndex<'_>,
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

    let mut untainted: Vec<&Allocation> = Vec::with_capacity(allocs.len());
    // (alloc, description, client status) of allocations to stop and replace.
    let mut replace: Replace<'_> = Vec::new();
    let mut waiting: Vec<(&Allocation, i64)> = Vec::new();
    let mut draining: Vec<&Allocation> = Vec::new();
    for &a in &allocs {
        let node = nodes.get(&a.node_id);
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
            _ if node.is_some_and(|n| n.drain) => draining.push(a),
            _ => untainted.push(a),
        }
    }
    migrate_from_draining(
        now,
        nodes,
        group,
        batch,
        &draining,
        &mut untainted,
        &mut replace,
        plan,
        du,
    );

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
    let mut kept: Vec<&Allocation> = Vec::with_capacity(ranked.len());
    for (i, (_, _, a)) in ranked.into_iter().enumerate() {
        if i < excess {
            // Even a finished one is stopped: left alone it would count again next time.
            plan.stop.push(stop(a, desc::NOT_NEEDED, None));
            du.stop += 1;
        } else {
            kept.push(a);
        }
    }
    kept.sort_by_cached_key(|a| (a.index(), a.id.as_str()));

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

    let mut room = desired.saturating_sub(kept.len());
    if replace.is_empty() && room == 0 {
        // The steady state: nothing to stop and replace, nothing to add.
        return;
    }
    // Replacements reuse their name when it is still free; new ones take the lowest free index.
    let mut used: BTreeSet<u32> = kept.iter().filter_map(|a| a.index()).collect();
    let mut free_from = 0;
    for (a, why, client_status, tracker) in replace {
        plan.stop.push(stop(a, why, client_status));
        du.stop += 1;
        if room == 0 {
            continue;
        }
        room -= 1;
        let idx = match a.index() {
            Some(i) if (i as usize) < desired && !used.contains(&i) => i,
            _ => lowest_free(&used, &mut free_from),
        };
        used.insert(idx);
        wants.push(Want {
            group: group.to_string(),
            name: alloc_name(&job.id, group, idx),
            previous: Some(a.id.clone()),
            tracker,
            replaces: None,
            node: None,
        });
    }
    for _ in 0..room {
        let idx = lowest_free(&used, &mut free_from);
        used.insert(idx);
        du.place += 1;
        wants.push(Want {
            group: group.to_string(),
            name: alloc_name(&job.id, group, idx),
            previous: None,
            tracker: None,
            replaces: None,
            node: None,
        });
    }
}

/// Allocations to stop and replace elsewhere, with why, the client status the server sets, and
/// the reschedule tracker the replacement carries.
type Replace<'a> = Vec<(
    &'a Allocation,
    &'static str,
    Option<ClientStatus>,
    Option<RescheduleTracker>,
)>;

/// Allocations on draining nodes move `MIGRATE_MAX_PARALLEL` at a time per group: the next
/// moves once the group's replacements have run for `MIGRATE_MIN_HEALTHY` (a follow-up
/// evaluation for that moment). Batch allocations are left to finish. Past the drain's
/// deadline everything moves at once. (Nomad's drainer, with the `migrate` block's defaults.)
#[allow(clippy::too_many_arguments)]
fn migrate_from_draining<'a>(
    now: i64,
    nodes: &NodeIndex<'_>,
    group: &str,
    batch: bool,
    draining: &[&'a Allocation],
    untainted: &mut Vec<&'a Allocation>,
    replace: &mut Replace<'a>,
    plan: &mut Plan,
    du: &mut DesiredUpdates,
) {
    if draining.is_empty() {
        return;
    }
    let forced = |a: &Allocation| nodes.get(&a.node_id).is_some_and(|n| n.drain_forced(now));
    let min_healthy = i64::try_from(MIGRATE_MIN_HEALTHY.as_nanos()).unwrap_or(i64::MAX);
    let healthy_at = |a: &Allocation| a.running_since.map(|t| t.saturating_add(min_healthy));
    // Replacements still starting, or not yet running long enough to count as healthy.
    let unhealthy: Vec<&Allocation> = untainted
        .iter()
        .copied()
        .filter(|a| a.desired_status == DesiredStatus::Run && !a.client_terminal())
        .filter(|a| {
            a.client_status != ClientStatus::Running || healthy_at(a).is_none_or(|t| t > now)
        })
        .collect();
    let mut room = MIGRATE_MAX_PARALLEL.saturating_sub(unhealthy.len());
    let mut held = false;
    for &a in draining {
        if forced(a) {
            replace.push((a, desc::MIGRATING, None, None));
            du.migrate += 1;
        } else if batch {
            // A batch allocation finishes its work; only the deadline moves it.
            untainted.push(a);
        } else if room > 0 {
            room -= 1;
            replace.push((a, desc::MIGRATING, None, None));
            du.migrate += 1;
        } else {
            untainted.push(a);
            held = true;
        }
    }
    if !held {
        return;
    }
    let next = unhealthy
        .iter()
        .filter(|a| a.client_status == ClientStatus::Running)
        .filter_map(|a| healthy_at(a).map(|t| (t, *a)))
        .min_by(|x, y| (x.0, &x.1.id).cmp(&(y.0, &y.1.id)));
    if let Some((at, a)) = next
        && a.followup_eval_id.is_none()
    {
        plan.followup_evals.push(FollowupEval {
            task_group: group.to_string(),
            triggered_by: EvalTrigger::NodeDrain,
            wait_until: at,
            description: desc::MIGRATION_FOLLOWUP.into(),
            alloc_ids: vec![a.id.clone()],
        });
    }
}

/// A system (or sysbatch) job's group: one allocation on every ready, eligible node in the
/// job's datacenters and pool (after Nomad's `system_sched.go`). Allocations on down nodes are
/// lost and not replaced; on draining nodes they stop (unless the drain ignores system jobs);
/// on an ineligible node they keep running. A failed one is not rescheduled: system jobs have
/// no reschedule policy. Updates follow the group's `update` block like a service's.
#[allow(clippy::too_many_arguments)]
fn compute_system_group(
    input: &ReconcileInput<'_>,
    now: i64,
    nodes: &NodeIndex<'_>,
    group: &str,
    allocs: &[&Allocation],
    plan: &mut Plan,
    wants: &mut Vec<Want>,
    du: &mut DesiredUpdates,
) {
    let job = input.job;
    let allocs: Vec<&Allocation> = allocs
        .iter()
        .copied()
        .filter(|a| !a.server_terminal())
        .collect();
    let tg = match job.group(group) {
        Some(tg) if !job.stop => tg,
        _ => {
            for a in allocs.iter().filter(|a| !a.client_terminal()) {
                plan.stop.push(stop(a, desc::NOT_NEEDED, None));
                du.stop += 1;
            }
            return;
        }
    };
    let mut by_node: BTreeMap<&str, Vec<&Allocation>> = BTreeMap::new();
    for a in &allocs {
        by_node.entry(a.node_id.as_str()).or_default().push(a);
    }
    let mut kept: Vec<&Allocation> = Vec::new();
    let mut covered: BTreeSet<&str> = BTreeSet::new();
    for (node_id, mut here) in by_node {
        // The one to keep: a live one first, then the newest.
        here.sort_by_key(|a| (a.client_terminal(), std::cmp::Reverse(a.create_index)));
        for extra in &here[1..] {
            plan.stop.push(stop(extra, desc::NOT_NEEDED, None));
            du.stop += 1;
        }
        let a = here[0];
        let node = nodes.get(node_id);
        if node_lost(node) {
            if !a.client_terminal() {
                plan.stop
                    .push(stop(a, desc::LOST, Some(ClientStatus::Lost)));
                du.stop += 1;
            }
            continue;
        }
        let Some(node) = node else { continue };
        if node.drain
            && !node
                .drain_strategy
                .as_ref()
                .is_some_and(|d| d.ignore_system_jobs)
        {
            if !a.client_terminal() {
                plan.stop.push(stop(a, desc::MIGRATING, None));
                du.migrate += 1;
            }
            continue;
        }
        if !in_job_scope(job, node) {
            plan.stop.push(stop(a, desc::NOT_NEEDED, None));
            du.stop += 1;
            continue;
        }
        covered.insert(node_id);
        kept.push(a);
    }

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
    let before = wants.len();
    rolling_update(job, tg, now, &kept, &destructive, plan, wants, du);
    for w in &mut wants[before..] {
        w.node = w
            .previous
            .as_ref()
            .and_then(|prev| kept.iter().find(|a| &a.id == prev))
            .map(|a| a.node_id.clone());
    }

    for node in input.nodes.iter().filter(|n| in_scope(job, n)) {
        if covered.contains(node.id.as_str()) {
            continue;
        }
        du.place += 1;
        wants.push(Want {
            group: group.to_string(),
            name: alloc_name(&job.id, group, 0),
            previous: None,
            tracker: None,
            replaces: None,
            node: Some(node.id.clone()),
        });
    }
}

/// The lowest index not in `used`, searching from `*from`: `used` only grows within a group,
/// so the answer never goes down, and a group of 10,000 new allocations is not quadratic.
fn lowest_free(used: &BTreeSet<u32>, from: &mut u32) -> u32 {
    let found = (*from..).find(|i| !used.contains(i)).unwrap_or(u32::MAX);
    *from = found;
    found
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
            node: None,
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
