//! Planner tests for what node operations change: drains (migration `max_parallel` at a time,
//! batch allocations left to finish, the deadline forcing the rest) and system jobs (one
//! allocation per eligible node, in the table-test shape of `tests.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::structs::mock::{self, MockAlloc, MockJob, MockNode};
use crate::structs::{
    ClientStatus, DesiredStatus, DrainStrategy, EvalTrigger, Job, JobType, Node, NodeStatus,
    SchedulingEligibility, desc,
};

const SEC: i64 = 1_000_000_000;
const NOW: i64 = 1_700_000_000 * SEC;

fn plan(job: &Job, existing: &[Allocation], nodes: &[Node]) -> Plan {
    let versions = BTreeMap::from([(job.version, job.clone())]);
    reconcile(&ReconcileInput {
        job,
        versions: &versions,
        existing,
        nodes,
        now: UNIX_EPOCH + Duration::from_nanos(NOW as u64),
    })
}

/// A node draining since `NOW - 60s` whose deadline is `deadline` nanoseconds after that
/// (negative: forced; 0: none).
fn draining(id: &str, deadline: i64) -> Node {
    mock::node().id(id).with(|n| {
        n.drain = true;
        n.drain_strategy = Some(DrainStrategy::new(deadline, false, NOW - 60 * SEC));
        n.scheduling_eligibility = SchedulingEligibility::Ineligible;
    })
}

fn on(p: &Plan) -> Vec<(&str, &str)> {
    p.place
        .iter()
        .map(|p| (p.name.as_str(), p.node_id.as_str()))
        .collect()
}

fn three_on_node_1(job: &Job) -> Vec<Allocation> {
    (0..3).map(|i| mock::alloc(job, i)).collect()
}

#[test]
fn a_drain_migrates_one_allocation_at_a_time() {
    let job = mock::job().count(3);
    let nodes = [draining("node-1", 3600 * SEC), mock::node().id("node-2")];
    let existing = three_on_node_1(&job);

    let p = plan(&job, &existing, &nodes);
    assert_eq!(p.desired_tg_updates["web"].migrate, 1);
    assert_eq!(p.stop.len(), 1);
    assert_eq!(p.stop[0].description, desc::MIGRATING);
    assert_eq!(on(&p), [(p.stop[0].name.as_str(), "node-2")]);
    assert_eq!(
        p.place[0].previous_allocation.as_deref(),
        Some(p.stop[0].alloc_id.as_str())
    );

    // The replacement runs but is not healthy yet: nothing more moves; the planner asks to be
    // woken when it will be.
    let mut after = existing.clone();
    after[0] = after[0].clone().desired_status(DesiredStatus::Stop);
    let replacement = mock::alloc(&job, 0)
        .id("replacement")
        .node("node-2")
        .with(|a| a.running_since = Some(NOW - 4 * SEC));
    after.push(replacement.clone());
    let p = plan(&job, &after, &nodes);
    assert!(p.stop.is_empty() && p.place.is_empty(), "{p:?}");
    assert_eq!(p.followup_evals.len(), 1);
    assert_eq!(p.followup_evals[0].triggered_by, EvalTrigger::NodeDrain);
    assert_eq!(p.followup_evals[0].wait_until, NOW + 6 * SEC);
    assert_eq!(p.followup_evals[0].alloc_ids, ["replacement"]);

    // A replacement still starting holds the next one too, without a timed wake-up (its
    // running update evaluates the job).
    after.pop();
    after.push(
        replacement
            .clone()
            .client_status(ClientStatus::Pending)
            .with(|a| a.running_since = None),
    );
    let p = plan(&job, &after, &nodes);
    assert!(p.stop.is_empty() && p.followup_evals.is_empty(), "{p:?}");

    // Once it has been healthy for min_healthy_time, the next allocation moves.
    after.pop();
    after.push(replacement.with(|a| a.running_since = Some(NOW - 11 * SEC)));
    let p = plan(&job, &after, &nodes);
    assert_eq!(p.desired_tg_updates["web"].migrate, 1);
    assert_eq!(on(&p), [("example.web[1]", "node-2")]);
}

#[test]
fn the_deadline_forces_every_remaining_allocation_off() {
    let job = mock::job().count(3);
    let existing = three_on_node_1(&job);
    // Started 60 s ago with a 30 s deadline: past it.
    let nodes = [draining("node-1", 30 * SEC), mock::node().id("node-2")];
    let p = plan(&job, &existing, &nodes);
    assert_eq!(p.desired_tg_updates["web"].migrate, 3);
    assert!(p.place.iter().all(|p| p.node_id == "node-2"));

    // `-force` is a negative deadline.
    let nodes = [draining("node-1", -SEC), mock::node().id("node-2")];
    assert_eq!(
        plan(&job, &existing, &nodes).desired_tg_updates["web"].migrate,
        3
    );
}

#[test]
fn batch_allocations_finish_unless_the_deadline_passes() {
    let job = mock::job().count(2).batch();
    let existing: Vec<Allocation> = (0..2).map(|i| mock::alloc(&job, i)).collect();
    let nodes = [draining("node-1", 3600 * SEC), mock::node().id("node-2")];
    let p = plan(&job, &existing, &nodes);
    assert!(p.is_noop(), "batch work is left to finish: {p:?}");

    let no_deadline = [draining("node-1", 0), mock::node().id("node-2")];
    assert!(plan(&job, &existing, &no_deadline).is_noop());

    let past = [draining("node-1", 10 * SEC), mock::node().id("node-2")];
    let p = plan(&job, &existing, &past);
    assert_eq!(p.desired_tg_updates["web"].migrate, 2);
}

#[test]
fn a_draining_node_takes_nothing_new() {
    let job = mock::job().count(1);
    let p = plan(&job, &[], &[draining("node-1", 3600 * SEC)]);
    assert!(p.place.is_empty());
    assert_eq!(
        p.failed_tg["web"].lines(),
        ["No nodes were eligible for evaluation"]
    );
}

// ---- system jobs ---------------------------------------------------------------------------

fn system() -> Job {
    mock::job().with(|j| {
        j.job_type = JobType::System;
        j.datacenters = vec!["dc1".into()];
    })
}

#[test]
fn system_job_table() {
    struct Case {
        name: &'static str,
        nodes: Vec<Node>,
        existing: Vec<(&'static str, ClientStatus)>,
        place_on: Vec<&'static str>,
        stop: Vec<(&'static str, &'static str)>,
    }
    let ready = |id: &str| mock::node().id(id);
    let ineligible = |id: &str| {
        mock::node()
            .id(id)
            .with(|n| n.scheduling_eligibility = SchedulingEligibility::Ineligible)
    };
    let cases = vec![
        Case {
            name: "one per ready eligible node, none elsewhere",
            nodes: vec![
                ready("a"),
                ready("b"),
                ineligible("c"),
                draining("d", 3600 * SEC),
                ready("e").status(NodeStatus::Down),
                ready("f").datacenter("dc9"),
                ready("g").status(NodeStatus::Initializing),
            ],
            existing: vec![],
            place_on: vec!["a", "b"],
            stop: vec![],
        },
        Case {
            name: "a node that joins later gets its allocation; the others are left alone",
            nodes: vec![ready("a"), ready("b"), ready("new")],
            existing: vec![("a", ClientStatus::Running), ("b", ClientStatus::Running)],
            place_on: vec!["new"],
            stop: vec![],
        },
        Case {
            name: "every node covered is a no-op",
            nodes: vec![ready("a"), ready("b")],
            existing: vec![("a", ClientStatus::Running), ("b", ClientStatus::Pending)],
            place_on: vec![],
            stop: vec![],
        },
        Case {
            name: "ineligible keeps its allocation; draining stops it; down loses it",
            nodes: vec![
                ineligible("c"),
                draining("d", 3600 * SEC),
                ready("e").status(NodeStatus::Down),
            ],
            existing: vec![
                ("c", ClientStatus::Running),
                ("d", ClientStatus::Running),
                ("e", ClientStatus::Running),
            ],
            place_on: vec![],
            stop: vec![("d", desc::MIGRATING), ("e", desc::LOST)],
        },
        Case {
            name: "a node that left the job's datacenters loses its allocation",
            nodes: vec![ready("a").datacenter("dc9")],
            existing: vec![("a", ClientStatus::Running)],
            place_on: vec![],
            stop: vec![("a", desc::NOT_NEEDED)],
        },
        Case {
            name: "a failed system allocation is not rescheduled",
            nodes: vec![ready("a")],
            existing: vec![("a", ClientStatus::Failed)],
            place_on: vec![],
            stop: vec![],
        },
    ];
    let job = system();
    for c in cases {
        let existing: Vec<Allocation> = c
            .existing
            .iter()
            .enumerate()
            .map(|(i, (node, status))| {
                mock::alloc(&job, 0)
                    .id(&format!("alloc-{i}-{node}"))
                    .node(node)
                    .client_status(*status)
            })
            .collect();
        let p = plan(&job, &existing, &c.nodes);
        let placed: Vec<&str> = p.place.iter().map(|p| p.node_id.as_str()).collect();
        assert_eq!(placed, c.place_on, "{}: placements", c.name);
        assert!(
            p.place.iter().all(|p| p.name == "example.web[0]"),
            "{}: system allocations are all index 0",
            c.name
        );
        let stopped: Vec<(&str, &str)> = p
            .stop
            .iter()
            .map(|s| {
                let node = existing
                    .iter()
                    .find(|a| a.id == s.alloc_id)
                    .map_or("?", |a| a.node_id.as_str());
                (node, s.description.as_str())
            })
            .collect();
        assert_eq!(stopped, c.stop, "{}: stops", c.name);
        assert!(p.failed_tg.is_empty(), "{}: {:?}", c.name, p.failed_tg);
        if c.stop.iter().any(|(_, d)| *d == desc::LOST) {
            assert!(
                p.stop
                    .iter()
                    .any(|s| s.client_status == Some(ClientStatus::Lost))
            );
        }
    }
}

#[test]
fn system_job_duplicates_on_one_node_are_stopped() {
    let job = system();
    let existing = vec![
        mock::alloc(&job, 0).id("old").with(|a| a.create_index = 1),
        mock::alloc(&job, 0).id("new").with(|a| a.create_index = 2),
    ];
    let p = plan(&job, &existing, &[mock::node()]);
    assert_eq!(p.stop.len(), 1);
    assert_eq!(p.stop[0].alloc_id, "old");
    assert!(p.place.is_empty());
}

#[test]
fn system_job_feasibility_filters_quietly_but_exhaustion_is_a_failure() {
    let job = system().with(|j| {
        j.constraints.push(crate::structs::Constraint {
            attribute: "${meta.role}".into(),
            operator: "=".into(),
            value: "edge".into(),
        })
    });
    let edge = |id: &str| {
        mock::node().id(id).with(|n| {
            n.meta.insert("role".into(), "edge".into());
        })
    };
    let nodes = [
        edge("a"),
        mock::node().id("b"),
        edge("small").capacity(10, 10),
    ];
    let p = plan(&job, &[], &nodes);
    let placed: Vec<&str> = p.place.iter().map(|p| p.node_id.as_str()).collect();
    assert_eq!(placed, ["a"]);
    let failure = &p.failed_tg["web"];
    assert_eq!(failure.failed(), 1, "only the exhausted node: {failure:?}");
    assert_eq!(failure.nodes_exhausted, 1);
}

#[test]
fn system_job_update_replaces_in_place_on_each_node_max_parallel_at_a_time() {
    let v0 = system().max_parallel(1);
    let existing = vec![
        mock::alloc(&v0, 0).id("on-a").node("a"),
        mock::alloc(&v0, 0).id("on-b").node("b"),
    ];
    let v1 = v0.clone().image("busybox:v2").version(1);
    let versions = BTreeMap::from([(0, v0.clone()), (1, v1.clone())]);
    let nodes = [mock::node().id("a"), mock::node().id("b")];
    let p = reconcile(&ReconcileInput {
        job: &v1,
        versions: &versions,
        existing: &existing,
        nodes: &nodes,
        now: UNIX_EPOCH + Duration::from_nanos(NOW as u64),
    });
    assert_eq!(p.destructive.len(), 1, "{p:?}");
    let (stop, place) = &p.destructive[0];
    let old = existing
        .iter()
        .find(|a| a.id == stop.alloc_id)
        .expect("stops one of the two");
    assert_eq!(
        place.node_id, old.node_id,
        "the replacement stays on its node"
    );
    assert_eq!(p.desired_tg_updates["web"].ignore, 1);
}

#[test]
fn stopping_a_system_job_stops_every_allocation() {
    let job = system().stopped();
    let existing = vec![
        mock::alloc(&job, 0).id("x").node("a"),
        mock::alloc(&job, 0).id("y").node("b"),
    ];
    let p = plan(
        &job,
        &existing,
        &[mock::node().id("a"), mock::node().id("b")],
    );
    assert_eq!(p.stop.len(), 2);
    assert!(p.place.is_empty());
}
