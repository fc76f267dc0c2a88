//! Planner tests: table tests asserting counts per category and names (Nomad's
//! `reconcile_cluster_test.go` shape), and properties over random inputs.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;
use crate::structs::mock::{self, MockAlloc, MockJob, MockNode};
use crate::structs::{ClientStatus, DesiredStatus, EvalTrigger, Job, Node, NodeStatus, desc};

const SEC: i64 = 1_000_000_000;
/// An arbitrary "now", far from the epoch so `now - delay` stays positive.
const NOW: i64 = 1_700_000_000 * SEC;

fn at(nanos: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos as u64)
}

fn plan_at(
    job: &Job,
    versions: &[&Job],
    existing: &[Allocation],
    nodes: &[Node],
    now: i64,
) -> Plan {
    let versions: BTreeMap<u64, Job> = versions.iter().map(|j| (j.version, (*j).clone())).collect();
    reconcile(&ReconcileInput {
        job,
        versions: &versions,
        existing,
        nodes,
        now: at(now),
    })
}

fn plan(job: &Job, existing: &[Allocation], nodes: &[Node]) -> Plan {
    plan_at(job, &[job], existing, nodes, NOW)
}

fn names(p: &[Placement]) -> Vec<&str> {
    p.iter().map(|p| p.name.as_str()).collect()
}

fn stop_names(s: &[StopAlloc]) -> Vec<&str> {
    s.iter().map(|s| s.name.as_str()).collect()
}

fn du(plan: &Plan) -> DesiredUpdates {
    plan.desired_tg_updates
        .get("web")
        .copied()
        .unwrap_or_default()
}

#[test]
fn places_count_lowest_indices_first() {
    let job = mock::job().count(3);
    let existing = vec![mock::alloc(&job, 1)];
    let p = plan(&job, &existing, &[mock::node()]);
    assert_eq!(names(&p.place), ["example.web[0]", "example.web[2]"]);
    assert_eq!(du(&p).place, 2);
    assert_eq!(du(&p).ignore, 1);
    assert!(p.stop.is_empty() && p.failed_tg.is_empty());
    assert!(
        p.place
            .iter()
            .all(|p| p.node_id == "node-1" && p.job_version == 0)
    );
}

#[test]
fn nothing_to_do_is_noop() {
    let job = mock::job().count(2);
    let existing = vec![mock::alloc(&job, 0), mock::alloc(&job, 1)];
    let p = plan(&job, &existing, &[mock::node()]);
    assert!(p.is_noop(), "{p:?}");
    assert_eq!(du(&p).ignore, 2);
}

#[test]
fn scaling_down_stops_highest_indices() {
    let job = mock::job().count(1);
    let existing: Vec<_> = (0..3).map(|i| mock::alloc(&job, i)).collect();
    let p = plan(&job, &existing, &[mock::node()]);
    assert_eq!(stop_names(&p.stop), ["example.web[2]", "example.web[1]"]);
    assert!(p.stop.iter().all(|s| s.description == desc::NOT_NEEDED));
    assert_eq!(du(&p).stop, 2);
    assert!(p.place.is_empty());
}

#[test]
fn stopped_job_stops_everything_and_places_nothing() {
    let job = mock::job().count(2).stopped();
    let existing = vec![
        mock::alloc(&job, 0),
        mock::alloc(&job, 1).client_status(ClientStatus::Pending),
        mock::alloc(&job, 2).client_status(ClientStatus::Failed),
        mock::alloc(&job, 3).desired_status(DesiredStatus::Stop),
    ];
    let p = plan(&job, &existing, &[mock::node()]);
    assert_eq!(stop_names(&p.stop), ["example.web[0]", "example.web[1]"]);
    assert!(p.place.is_empty() && p.destructive.is_empty() && p.inplace.is_empty());
}

#[test]
fn removed_group_or_count_zero_stops_all() {
    let job = mock::job().count(2);
    let existing = vec![mock::alloc(&job, 0), mock::alloc(&job, 1)];
    let renamed = job.clone().with(|j| j.task_groups[0].name = "api".into());
    let p = plan(&renamed, &existing, &[mock::node()]);
    assert_eq!(p.desired_tg_updates["web"].stop, 2);
    assert_eq!(p.desired_tg_updates["api"].place, 2);
    assert_eq!(names(&p.place), ["example.api[0]", "example.api[1]"]);

    let zero = job.clone().count(0);
    let p = plan(&zero, &existing, &[mock::node()]);
    assert_eq!(du(&p).stop, 2);
}

#[test]
fn meta_or_priority_change_updates_in_place() {
    let v0 = mock::job().count(2);
    let v1 = v0.clone().version(1).with(|j| {
        j.meta.insert("owner".into(), "ops".into());
        j.priority = 70;
        j.task_groups[0].update.min_healthy_time = Duration::from_secs(1);
    });
    let existing = vec![mock::alloc(&v0, 0), mock::alloc(&v0, 1)];
    let p = plan_at(&v1, &[&v0, &v1], &existing, &[mock::node()], NOW);
    assert_eq!(p.inplace.len(), 2);
    assert_eq!(du(&p).in_place_update, 2);
    assert!(p.destructive.is_empty() && p.place.is_empty() && p.stop.is_empty());
}

#[test]
fn config_env_or_resources_change_is_destructive() {
    let v0 = mock::job();
    let changes: Vec<Job> = vec![
        v0.clone().image("busybox:v2"),
        v0.clone().resources(200, 300),
        v0.clone().with(|j| {
            j.task_groups[0].tasks[0].env.insert("A".into(), "1".into());
        }),
        v0.clone().dynamic_port("http"),
        v0.clone()
            .with(|j| j.task_groups[0].tasks[0].driver = "raw_exec".into()),
    ];
    for changed in changes {
        let v1 = changed.version(1);
        let existing = vec![mock::alloc(&v0, 0)];
        let p = plan_at(&v1, &[&v0, &v1], &existing, &[mock::node()], NOW);
        assert_eq!(p.destructive.len(), 1, "{:?}", v1.task_groups[0].tasks[0]);
        let (stop, place) = &p.destructive[0];
        assert_eq!(stop.description, desc::UPDATING);
        assert_eq!(place.name, "example.web[0]");
        assert_eq!(
            place.previous_allocation.as_deref(),
            Some(stop.alloc_id.as_str())
        );
        assert_eq!(du(&p).destructive_update, 1);
    }
}

#[test]
fn unknown_old_version_is_replaced() {
    let v0 = mock::job();
    let v1 = v0.clone().version(1).with(|j| j.priority = 10);
    let p = plan_at(&v1, &[&v1], &[mock::alloc(&v0, 0)], &[mock::node()], NOW);
    assert_eq!(p.destructive.len(), 1);
}

#[test]
fn rolling_update_respects_max_parallel_and_min_healthy_time() {
    let v0 = mock::job().count(3).max_parallel(1);
    let v1 = v0.clone().image("busybox:v2").version(1);
    let node = [mock::node()];
    let mut allocs: Vec<Allocation> = (0..3).map(|i| mock::alloc(&v0, i)).collect();

    let p = plan_at(&v1, &[&v0, &v1], &allocs, &node, NOW);
    assert_eq!(p.destructive.len(), 1);
    assert_eq!(p.destructive[0].1.name, "example.web[0]");
    assert_eq!(du(&p).destructive_update, 1);
    assert_eq!(du(&p).ignore, 2);

    // The replacement runs from NOW: nothing more until it has been healthy for 10s.
    allocs[0] = allocs[0].clone().desired_status(DesiredStatus::Stop);
    let new = mock::alloc(&v1, 0)
        .id("new-0")
        .with(|a| a.running_since = Some(NOW));
    allocs.push(new);
    let p = plan_at(&v1, &[&v0, &v1], &allocs, &node, NOW + SEC);
    assert!(p.destructive.is_empty());
    assert_eq!(p.followup_evals.len(), 1);
    assert_eq!(p.followup_evals[0].triggered_by, EvalTrigger::RollingUpdate);
    assert_eq!(p.followup_evals[0].wait_until, NOW + 10 * SEC);
    assert_eq!(p.followup_evals[0].alloc_ids, ["new-0"]);

    // With the follow-up recorded, planning again at the same time changes nothing.
    let last = allocs.len() - 1;
    allocs[last].followup_eval_id = Some("eval-1".into());
    assert!(plan_at(&v1, &[&v0, &v1], &allocs, &node, NOW + SEC).is_noop());

    // Once healthy, the next batch rolls.
    let p = plan_at(&v1, &[&v0, &v1], &allocs, &node, NOW + 10 * SEC);
    assert_eq!(p.destructive.len(), 1);
    assert_eq!(p.destructive[0].1.name, "example.web[1]");
}

#[test]
fn a_failed_new_allocation_holds_the_rollout() {
    let v0 = mock::job().count(3).max_parallel(1);
    let v1 = v0.clone().image("busybox:broken").version(1);
    let allocs = vec![
        mock::alloc(&v0, 0).desired_status(DesiredStatus::Stop),
        mock::alloc(&v1, 0)
            .id("new-0")
            .client_status(ClientStatus::Failed)
            .finished_at(NOW - SEC),
        mock::alloc(&v0, 1).id("old-1"),
        mock::alloc(&v0, 2).id("old-2"),
    ];
    let p = plan_at(&v1, &[&v0, &v1], &allocs, &[mock::node()], NOW);
    assert!(p.destructive.is_empty(), "{p:?}");
    assert_eq!(du(&p).ignore, 3);
}

#[test]
fn rolling_update_max_parallel_two() {
    let v0 = mock::job().count(5).max_parallel(2);
    let v1 = v0.clone().image("busybox:v2").version(1);
    let allocs: Vec<Allocation> = (0..5).map(|i| mock::alloc(&v0, i)).collect();
    let p = plan_at(&v1, &[&v0, &v1], &allocs, &[mock::node()], NOW);
    let replaced: Vec<&str> = p.destructive.iter().map(|(_, p)| p.name.as_str()).collect();
    assert_eq!(replaced, ["example.web[0]", "example.web[1]"]);
}

#[test]
fn failed_alloc_is_rescheduled_after_its_delay() {
    let job = mock::job();
    let failed = mock::alloc(&job, 0)
        .client_status(ClientStatus::Failed)
        .finished_at(NOW - 5 * SEC);
    // Service default: 30s delay, so wait until 25s from now.
    let p = plan(&job, std::slice::from_ref(&failed), &[mock::node()]);
    assert!(p.place.is_empty() && p.stop.is_empty());
    assert_eq!(p.followup_evals.len(), 1);
    let f = &p.followup_evals[0];
    assert_eq!(f.triggered_by, EvalTrigger::RetryFailedAlloc);
    assert_eq!(f.wait_until, NOW + 25 * SEC);
    assert_eq!(f.description, "created for delayed rescheduling");
    assert_eq!(f.alloc_ids, std::slice::from_ref(&failed.id));

    let annotated = failed
        .clone()
        .with(|a| a.followup_eval_id = Some("e".into()));
    assert!(plan(&job, std::slice::from_ref(&annotated), &[mock::node()]).is_noop());

    let p = plan_at(&job, &[&job], &[annotated], &[mock::node()], NOW + 25 * SEC);
    assert_eq!(stop_names(&p.stop), ["example.web[0]"]);
    assert_eq!(p.stop[0].description, desc::RESCHEDULED);
    assert_eq!(names(&p.place), ["example.web[0]"]);
    let placed = &p.place[0];
    assert_eq!(
        placed.previous_allocation.as_deref(),
        Some(failed.id.as_str())
    );
    let tracker = placed.reschedule_tracker.as_ref().expect("tracker");
    assert_eq!(tracker.events.len(), 1);
    assert_eq!(tracker.events[0].delay, Duration::from_secs(30));
}

#[test]
fn exponential_reschedule_delay_doubles() {
    let job = mock::job();
    let tracker = crate::structs::RescheduleTracker {
        events: vec![crate::structs::RescheduleEvent {
            reschedule_time: NOW - 100 * SEC,
            prev_alloc_id: "a".into(),
            prev_node_id: "node-1".into(),
            delay: Duration::from_secs(30),
        }],
    };
    let failed = mock::alloc(&job, 0)
        .client_status(ClientStatus::Failed)
        .finished_at(NOW)
        .with(|a| a.reschedule_tracker = Some(tracker));
    let p = plan(&job, &[failed], &[mock::node()]);
    assert_eq!(p.followup_evals[0].wait_until, NOW + 60 * SEC);
}

#[test]
fn batch_reschedule_attempts_are_limited() {
    let job = mock::job().batch();
    let tracker = crate::structs::RescheduleTracker {
        events: vec![crate::structs::RescheduleEvent {
            reschedule_time: NOW - 100 * SEC,
            prev_alloc_id: "a".into(),
            prev_node_id: "node-1".into(),
            delay: Duration::from_secs(5),
        }],
    };
    let failed = mock::alloc(&job, 0)
        .client_status(ClientStatus::Failed)
        .finished_at(NOW - 100 * SEC)
        .with(|a| a.reschedule_tracker = Some(tracker));
    let p = plan(&job, &[failed], &[mock::node()]);
    assert!(p.is_noop(), "one attempt per 24h is spent: {p:?}");
}

#[test]
fn batch_complete_is_done_but_service_complete_is_replaced() {
    let batch = mock::job().batch().count(2);
    let existing = vec![
        mock::alloc(&batch, 0).client_status(ClientStatus::Complete),
        mock::alloc(&batch, 1).client_status(ClientStatus::Complete),
    ];
    assert!(plan(&batch, &existing, &[mock::node()]).is_noop());

    let service = mock::job().count(1);
    let existing = vec![mock::alloc(&service, 0).client_status(ClientStatus::Complete)];
    let p = plan(&service, &existing, &[mock::node()]);
    assert_eq!(names(&p.place), ["example.web[0]"]);
}

#[test]
fn lost_on_a_down_node_is_replaced_elsewhere() {
    let job = mock::job().count(2);
    let nodes = [
        mock::node().id("node-1").status(NodeStatus::Down),
        mock::node().id("node-2"),
    ];
    let existing = vec![
        mock::alloc(&job, 0).node("node-1"),
        mock::alloc(&job, 1).node("node-2").id("b"),
    ];
    let p = plan(&job, &existing, &nodes);
    assert_eq!(stop_names(&p.stop), ["example.web[0]"]);
    assert_eq!(p.stop[0].description, desc::LOST);
    assert_eq!(p.stop[0].client_status, Some(ClientStatus::Lost));
    assert_eq!(names(&p.place), ["example.web[0]"]);
    assert_eq!(p.place[0].node_id, "node-2");
    assert_eq!(
        p.place[0].previous_allocation.as_deref(),
        Some(existing[0].id.as_str())
    );

    // A node that vanished from the record loses its allocations too.
    let p = plan(&job, &existing, &nodes[1..]);
    assert_eq!(p.stop[0].client_status, Some(ClientStatus::Lost));
}

#[test]
fn static_port_collision_is_a_placement_failure_with_nomads_wording() {
    let job = mock::job().count(2).static_port("http", 8080);
    let p = plan(&job, &[], &[mock::node()]);
    assert_eq!(names(&p.place), ["example.web[0]"]);
    let f = &p.failed_tg["web"];
    assert_eq!(f.nodes_evaluated, 1);
    assert_eq!(f.nodes_exhausted, 1);
    assert_eq!(f.coalesced_failures, 0);
    assert_eq!(
        f.dimension_exhausted,
        BTreeMap::from([("network: reserved port collision http=8080".to_string(), 1)])
    );
    assert_eq!(
        f.lines(),
        [
            "Resources exhausted on 1 nodes",
            "Dimension \"network: reserved port collision http=8080\" exhausted on 1 nodes",
        ]
    );

    // And against an existing allocation of another job holding the port.
    let other = mock::job()
        .static_port("http", 8080)
        .with(|j| j.id = "other".into());
    let holder = mock::alloc(&other, 0);
    let p = plan(&job.clone().count(1), &[holder], &[mock::node()]);
    assert!(p.place.is_empty());
    assert_eq!(p.failed_tg["web"].nodes_exhausted, 1);
}

#[test]
fn destructive_update_reuses_the_static_port_it_frees() {
    let v0 = mock::job().static_port("http", 8080);
    let v1 = v0.clone().image("busybox:v2").version(1);
    let p = plan_at(
        &v1,
        &[&v0, &v1],
        &[mock::alloc(&v0, 0)],
        &[mock::node()],
        NOW,
    );
    assert_eq!(p.destructive.len(), 1, "{:?}", p.failed_tg);
}

#[test]
fn dynamic_ports_are_assigned_deterministically() {
    let job = mock::job()
        .count(2)
        .dynamic_port("http")
        .dynamic_port("admin");
    let p = plan(&job, &[], &[mock::node()]);
    let ports: Vec<Vec<u16>> = p
        .place
        .iter()
        .map(|p| {
            p.networks[0]
                .dynamic_ports
                .iter()
                .map(|p| p.value)
                .collect()
        })
        .collect();
    assert_eq!(ports, [vec![20000, 20001], vec![20002, 20003]]);
}

#[test]
fn spreads_a_group_across_nodes_and_breaks_ties_by_node_id() {
    let job = mock::job().count(2);
    let nodes = [mock::node().id("node-b"), mock::node().id("node-a")];
    let p = plan(&job, &[], &nodes);
    let on: Vec<&str> = p.place.iter().map(|p| p.node_id.as_str()).collect();
    assert_eq!(on, ["node-a", "node-b"]);
}

#[test]
fn affinities_steer_placement() {
    let job = mock::job().with(|j| {
        j.affinities.push(crate::structs::Affinity {
            attribute: "${meta.rack}".into(),
            operator: "=".into(),
            value: "r2".into(),
            weight: 100,
        })
    });
    let r1 = mock::node().id("node-a").with(|n| {
        n.meta.insert("rack".into(), "r1".into());
    });
    let r2 = mock::node().id("node-b").with(|n| {
        n.meta.insert("rack".into(), "r2".into());
    });
    let p = plan(&job, &[], &[r1.clone(), r2.clone()]);
    assert_eq!(p.place[0].node_id, "node-b");

    let avoid = job.with(|j| j.affinities[0].weight = -100);
    let p = plan(&avoid, &[], &[r1, r2]);
    assert_eq!(p.place[0].node_id, "node-a");
}

#[test]
fn filters_report_drivers_constraints_and_datacenters() {
    let job = mock::job().with(|j| {
        j.constraints.push(crate::structs::Constraint {
            attribute: "${attr.kernel.name}".into(),
            operator: "=".into(),
            value: "windows".into(),
        })
    });
    let p = plan(&job, &[], &[mock::node()]);
    assert_eq!(
        p.failed_tg["web"].constraint_filtered,
        BTreeMap::from([("${attr.kernel.name} = windows".to_string(), 1)])
    );

    let no_docker = mock::node().with(|n| {
        n.drivers.remove("docker");
    });
    let p = plan(&mock::job(), &[], &[no_docker]);
    assert_eq!(p.failed_tg["web"].constraint_filtered["missing drivers"], 1);

    let elsewhere = mock::job().with(|j| j.datacenters = vec!["dc2".into()]);
    let p = plan(&elsewhere, &[], &[mock::node()]);
    assert_eq!(p.failed_tg["web"].nodes_evaluated, 0);
    assert_eq!(
        p.failed_tg["web"].lines(),
        ["No nodes were eligible for evaluation"]
    );
}

#[test]
fn cpu_and_memory_exhaustion() {
    let job = mock::job().count(3).resources(1500, 100);
    let p = plan(&job, &[], &[mock::node()]);
    assert_eq!(p.place.len(), 2);
    assert_eq!(p.failed_tg["web"].dimension_exhausted["cpu"], 1);
}

#[test]
fn memory_is_placed_by_the_reservation_not_memory_max() {
    // Nomad's oversubscription: `memory` is what the node reserves (and what docker gets as
    // MemoryReservation); `memory_max` is only the container's hard limit.
    let job = mock::job()
        .count(3)
        .resources(100, 3000)
        .with(|j| j.task_groups[0].tasks[0].resources.memory_max = 100_000);
    let p = plan(&job, &[], &[mock::node()]);
    assert_eq!(
        p.place.len(),
        2,
        "2 × 3000 MB of 8192 MB fit, a third does not"
    );
    assert_eq!(p.failed_tg["web"].dimension_exhausted["memory"], 1);
}

#[test]
fn seed_whoami_with_count_two_fails_on_one_node() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/seed/whoami.nomad");
    let parsed = crate::jobspec::parse_file(&path, &Default::default()).expect("seed parses");
    let job = parsed.job.count(2);
    let node = mock::node().datacenter("dc1");
    let p = plan(&job, &[], &[node]);
    assert_eq!(names(&p.place), ["whoami.web[0]"]);
    assert_eq!(p.place[0].networks[0].reserved_ports[0].value, 8080);
    assert_eq!(
        p.failed_tg["web"].dimension_exhausted["network: reserved port collision http=8080"],
        1
    );
}

#[test]
fn large_clusters_rank_a_window_of_nodes_and_spread_deterministically() {
    let nodes: Vec<Node> = (0..100)
        .map(|i| mock::node().id(&format!("node-{i:03}")))
        .collect();
    let job = mock::job().count(50);
    let p = plan(&job, &[], &nodes);
    assert_eq!(p.place.len(), 50);
    let used: std::collections::BTreeSet<&str> =
        p.place.iter().map(|p| p.node_id.as_str()).collect();
    assert_eq!(
        used.len(),
        50,
        "one instance per node while empty nodes remain"
    );
    assert_eq!(p, plan(&job, &[], &nodes), "same input, same plan");

    // A group that fits nowhere is reported on every node, once, the rest coalesced.
    let huge = mock::job().count(3).resources(5000, 100);
    let p = plan(&huge, &[], &nodes);
    let failure = &p.failed_tg["web"];
    assert_eq!(failure.nodes_evaluated, 100);
    assert_eq!(failure.dimension_exhausted["cpu"], 100);
    assert_eq!(failure.coalesced_failures, 2);
}

// ---- properties ----------------------------------------------------------------------------

fn versions() -> Vec<Job> {
    let v0 = mock::job();
    let v1 = v0.clone().version(1).with(|j| {
        j.meta.insert("k".into(), "v".into());
    });
    let v2 = v1.clone().version(2).image("busybox:v2");
    vec![v0, v1, v2]
}

#[derive(Debug, Clone)]
struct Case {
    job: Job,
    versions: BTreeMap<u64, Job>,
    allocs: Vec<Allocation>,
    nodes: Vec<Node>,
}

fn case() -> impl Strategy<Value = Case> {
    let status = prop_oneof![
        Just(ClientStatus::Pending),
        Just(ClientStatus::Running),
        Just(ClientStatus::Running),
        Just(ClientStatus::Complete),
        Just(ClientStatus::Failed),
        Just(ClientStatus::Lost),
    ];
    let desired = prop_oneof![
        4 => Just(DesiredStatus::Run),
        1 => Just(DesiredStatus::Stop),
    ];
    // One allocation in five belongs to a group the job no longer has.
    let alloc = (
        0u32..7,
        status,
        desired,
        0u64..3,
        0usize..3,
        0i64..120,
        prop::bool::weighted(0.2),
    );
    (
        0u32..5,
        0u32..3,
        0u64..3,
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(alloc, 0..10),
        prop::collection::vec(any::<bool>(), 1..4),
    )
        .prop_map(
            |(count, max_parallel, version, stopped, batch, allocs, nodes_up)| {
                let all = versions();
                let shape = |j: &Job| {
                    let mut j = j.clone().count(count).max_parallel(max_parallel);
                    if batch {
                        j = j.batch();
                    }
                    j.stop = stopped;
                    j
                };
                let versions: BTreeMap<u64, Job> =
                    all.iter().map(|j| (j.version, shape(j))).collect();
                let job = versions[&version].clone();
                let nodes: Vec<Node> = nodes_up
                    .iter()
                    .enumerate()
                    .map(|(i, up)| {
                        let n = mock::node().id(&format!("node-{i}"));
                        if *up { n } else { n.status(NodeStatus::Down) }
                    })
                    .collect();
                let allocs = allocs
                    .into_iter()
                    .enumerate()
                    .map(|(k, (idx, cs, ds, v, node, ago, gone))| {
                        let v = v.min(version);
                        let mut a = mock::alloc(&versions[&v], idx);
                        if gone {
                            a.task_group = "gone".into();
                            a.name = crate::structs::alloc_name("example", "gone", idx);
                        }
                        a.id(&format!("alloc-{k}"))
                            .node(&format!("node-{}", node % nodes_up.len()))
                            .client_status(cs)
                            .desired_status(ds)
                            .with(|a| {
                                if cs == ClientStatus::Failed {
                                    *a = a.clone().finished_at(NOW - ago * SEC);
                                }
                            })
                    })
                    .collect();
                Case {
                    job,
                    versions,
                    allocs,
                    nodes,
                }
            },
        )
}

fn live(a: &Allocation) -> bool {
    !a.server_terminal() && !a.client_terminal()
}

/// What the plan does to the record, with the node reporting every new allocation running.
fn apply(plan: &Plan, allocs: &mut Vec<Allocation>, job: &Job, now: i64, step: usize) {
    let stops = plan
        .stop
        .iter()
        .chain(plan.destructive.iter().map(|(s, _)| s));
    for s in stops {
        let a = allocs
            .iter_mut()
            .find(|a| a.id == s.alloc_id)
            .expect("stop of a known alloc");
        a.desired_status = DesiredStatus::Stop;
        a.desired_description = s.description.clone();
        if let Some(cs) = s.client_status {
            a.client_status = cs;
        }
    }
    for id in &plan.inplace {
        let a = allocs
            .iter_mut()
            .find(|a| &a.id == id)
            .expect("in-place of a known alloc");
        a.job_version = job.version;
    }
    for (i, f) in plan.followup_evals.iter().enumerate() {
        for id in &f.alloc_ids {
            let a = allocs
                .iter_mut()
                .find(|a| &a.id == id)
                .expect("follow-up of a known alloc");
            a.followup_eval_id = Some(format!("eval-{step}-{i}"));
        }
    }
    let placed = plan
        .place
        .iter()
        .chain(plan.destructive.iter().map(|(_, p)| p));
    for (i, p) in placed.enumerate() {
        let mut a = mock::alloc(job, 0).id(&format!("new-{step}-{i}"));
        a.name = p.name.clone();
        a.task_group = p.task_group.clone();
        a.node_id = p.node_id.clone();
        a.networks = p.networks.clone();
        a.resources = p.resources;
        a.previous_allocation = p.previous_allocation.clone();
        a.reschedule_tracker = p.reschedule_tracker.clone();
        a.running_since = Some(now);
        allocs.push(a);
    }
}

fn run(c: &Case, allocs: &[Allocation], now: i64) -> Plan {
    reconcile(&ReconcileInput {
        job: &c.job,
        versions: &c.versions,
        existing: allocs,
        nodes: &c.nodes,
        now: at(now),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn never_more_than_count_live(c in case()) {
        let p = run(&c, &c.allocs, NOW);
        let mut after = c.allocs.clone();
        apply(&p, &mut after, &c.job, NOW, 0);
        for group in ["web", "gone"] {
            let n = after.iter().filter(|a| live(a) && a.task_group == group).count() as u32;
            let count = match c.job.group(group) {
                Some(g) if !c.job.stop => g.count,
                _ => 0,
            };
            prop_assert!(n <= count, "{n} live in {group} for count {count}: {p:?}");
        }
    }

    #[test]
    fn stopped_job_only_stops(c in case()) {
        let job = c.job.clone().stopped();
        let p = reconcile(&ReconcileInput { job: &job, versions: &c.versions, existing: &c.allocs, nodes: &c.nodes, now: at(NOW) });
        prop_assert!(p.place.is_empty() && p.destructive.is_empty() && p.inplace.is_empty());
        prop_assert!(p.followup_evals.is_empty());
        let live_ids: Vec<&str> = c.allocs.iter().filter(|a| live(a)).map(|a| a.id.as_str()).collect();
        let stopped: Vec<&str> = p.stop.iter().map(|s| s.alloc_id.as_str()).collect();
        prop_assert_eq!(stopped.len(), live_ids.len());
    }

    #[test]
    fn same_input_same_plan(c in case()) {
        prop_assert_eq!(run(&c, &c.allocs, NOW), run(&c, &c.allocs, NOW));
    }

    /// Apply the plan, plan again at the same time: a no-op, except that a rolling update may
    /// first schedule its follow-up for the batch it just started.
    #[test]
    fn fixed_point(c in case()) {
        let mut allocs = c.allocs.clone();
        let p = run(&c, &allocs, NOW);
        apply(&p, &mut allocs, &c.job, NOW, 0);
        let p2 = run(&c, &allocs, NOW);
        if !p2.is_noop() {
            let summary: Vec<_> = c.allocs.iter().map(|a| (&a.id, &a.name, a.job_version, a.client_status, a.desired_status, &a.node_id, a.last_event_time())).collect();
            prop_assert!(p2.place.is_empty() && p2.stop.is_empty() && p2.destructive.is_empty() && p2.inplace.is_empty(), "{p2:?}\n{p:?}\n{summary:?} count={} v={} nodes={:?}", c.job.task_groups[0].count, c.job.version, c.nodes.iter().map(|n| n.status).collect::<Vec<_>>());
            prop_assert!(p2.followup_evals.iter().all(|f| f.triggered_by == EvalTrigger::RollingUpdate), "{p2:?}");
            apply(&p2, &mut allocs, &c.job, NOW, 1);
            let p3 = run(&c, &allocs, NOW);
            prop_assert!(p3.is_noop(), "{p3:?}");
        }
    }

    /// With time moving on (delays and min_healthy_time pass), the job converges: a no-op plan
    /// with every live allocation at the current version.
    #[test]
    fn converges(c in case()) {
        let mut allocs = c.allocs.clone();
        let mut now = NOW;
        let mut done = false;
        for step in 0..30 {
            // The nodes start whatever was pending.
            for a in allocs.iter_mut().filter(|a| live(a) && a.client_status == ClientStatus::Pending) {
                a.client_status = ClientStatus::Running;
                a.running_since = Some(now);
            }
            let p = run(&c, &allocs, now);
            if p.is_noop() { done = true; break; }
            apply(&p, &mut allocs, &c.job, now, step);
            now += 3600 * SEC;

        }
        prop_assert!(done);
        if c.job.stop {
            prop_assert_eq!(allocs.iter().filter(|a| live(a)).count(), 0);
        } else {
            let p = run(&c, &allocs, now);
            if p.failed_tg.is_empty() {
                let summary: Vec<_> = allocs.iter().map(|a| (&a.id, &a.name, a.job_version, a.client_status, a.desired_status, &a.node_id)).collect();
                prop_assert!(allocs.iter().filter(|a| live(a)).all(|a| a.job_version == c.job.version), "{summary:?} {p:?}");
            }
        }
    }
}

/// What the plan applier writes for a plan: stopped allocations marked stopped, placements
/// as new running allocations. Returns the allocations written, for the index.
fn apply_plan(job: &Job, p: &Plan, all: &mut Vec<Allocation>, seq: &mut u64) -> Vec<Allocation> {
    let mut written = Vec::new();
    let stops = p.stop.iter().chain(p.destructive.iter().map(|(s, _)| s));
    for s in stops {
        let a = all
            .iter_mut()
            .find(|a| a.id == s.alloc_id)
            .expect("a plan stops only allocations it was given");
        a.desired_status = DesiredStatus::Stop;
        if let Some(cs) = s.client_status {
            a.client_status = cs;
        }
        written.push(a.clone());
    }
    for pl in p.place.iter().chain(p.destructive.iter().map(|(_, pl)| pl)) {
        *seq += 1;
        let a = mock::alloc(job, 0)
            .id(&mock::id(0xc, *seq))
            .node(&pl.node_id)
            .job_version(pl.job_version)
            .with(|a| {
                a.name = pl.name.clone();
                a.task_group = pl.task_group.clone();
                a.networks = pl.networks.clone();
                a.resources = pl.resources;
                a.previous_allocation = pl.previous_allocation.clone();
            });
        all.push(a.clone());
        written.push(a);
    }
    written
}

/// One index shared by a sequence of plans, kept up to date with what each plan wrote and
/// with a client's status change, plans exactly as separate plans over every allocation do:
/// same nodes, ports, names and failure metrics. The jobs compete for one static port, fill
/// nodes, replace allocations (so the index must give back what stopped ones held) and use
/// two datacenters (so candidates are cached per scope).
#[test]
fn shared_index_plans_like_separate_plans() {
    let nodes: Vec<Node> = (0..12u64)
        .map(|i| {
            let n = mock::node().id(&mock::id(0xb, i)).capacity(1000, 2048);
            if i >= 9 { n.datacenter("dc2") } else { n }
        })
        .collect();
    let job = |id: &str| {
        mock::job().with(|j| {
            j.id = id.into();
            j.name = id.into();
        })
    };
    let web_a = job("web-a")
        .count(6)
        .static_port("http", 8080)
        .resources(300, 256);
    let web_a2 = web_a.clone().version(1).image("busybox:2").max_parallel(2);
    let web_b = job("web-b")
        .count(8)
        .dynamic_port("http")
        .resources(200, 512);
    let web_c = job("web-c")
        .count(3)
        .resources(400, 256)
        .with(|j| j.datacenters = vec!["dc2".into()]);
    // web-a holds port 8080 on six of the twelve nodes: one of seven must fail.
    let web_e = job("web-e")
        .count(7)
        .static_port("http", 8080)
        .resources(100, 128);
    let steps: Vec<(&Job, Vec<&Job>)> = vec![
        (&web_a, vec![&web_a]),
        (&web_b, vec![&web_b]),
        (&web_c, vec![&web_c]),
        (&web_a2, vec![&web_a, &web_a2]),
        (&web_e, vec![&web_e]),
        (&web_b, vec![&web_b]),
        (&web_a2, vec![&web_a, &web_a2]),
    ];

    let mut all: Vec<Allocation> = Vec::new();
    let mut index = NodeIndex::with_allocs(&nodes, &all);
    // The server's kind of index: kept owned across plans, read through snapshots.
    let mut view = ClusterView::new(0, nodes.clone(), &all);
    let mut seq = 0;
    let (mut placed, mut replaced, mut failed) = (0, 0, 0);
    for (step, (job, versions)) in steps.iter().enumerate() {
        let separate = plan_at(job, versions, &all, &nodes, NOW);
        let own: Vec<Allocation> = all.iter().filter(|a| a.job_id == job.id).cloned().collect();
        let versions: BTreeMap<u64, Job> =
            versions.iter().map(|j| (j.version, (*j).clone())).collect();
        let shared = reconcile_indexed(
            &ReconcileInput {
                job,
                versions: &versions,
                existing: &own,
                nodes: &nodes,
                now: at(NOW),
            },
            &index,
        );
        assert_eq!(shared, separate, "step {step}: {}", job.id);
        let on = |snap: &ClusterSnapshot| {
            reconcile_indexed(
                &ReconcileInput {
                    job,
                    versions: &versions,
                    existing: &own,
                    nodes: snap.nodes(),
                    now: at(NOW),
                },
                &snap.node_index(),
            )
        };
        let snap = view.snapshot();
        let kept = on(&snap);
        assert_eq!(kept, separate, "step {step}: {} (kept view)", job.id);
        placed += separate.place.len();
        replaced += separate.destructive.len();
        failed += separate.failed_tg.len();
        let written = apply_plan(job, &separate, &mut all, &mut seq);
        index.update_allocs(&written);
        view.update_allocs(&written);
        if step == 2 {
            // A client reports one of web-b's allocations failed: it no longer holds its node.
            let a = all
                .iter_mut()
                .find(|a| a.job_id == "web-b")
                .expect("web-b placed");
            a.client_status = ClientStatus::Failed;
            a.running_since = None;
            let changed = a.clone();
            index.update_allocs([&changed]);
            view.update_allocs([&changed]);
        }
        // The snapshot taken before these updates still reads as it was (copy on write).
        assert_eq!(on(&snap), kept, "step {step}: a snapshot does not move");
        assert_eq!(
            view,
            ClusterView::new(0, nodes.clone(), &all),
            "step {step}: the kept view is the one built from every allocation"
        );
    }
    assert!(placed >= 20, "placed {placed}");
    assert!(replaced > 0, "the update replaced allocations");
    assert!(failed > 0, "the port conflict failed a placement");
}
