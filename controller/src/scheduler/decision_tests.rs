//! `Plan::decisions`: one decision per allocation the plan touches, each with its reason, as
//! the worker logs them.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::structs::mock::{self, MockJob, MockNode};
use crate::structs::{NodeStatus, desc};

fn plan(job: &Job, existing: &[Allocation], nodes: &[Node]) -> Plan {
    let versions = BTreeMap::from([(job.version, job.clone())]);
    reconcile(&ReconcileInput {
        job,
        versions: &versions,
        existing,
        nodes,
        now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    })
}

#[test]
fn placements_and_stops_say_why() {
    let job = mock::job().count(2);
    let p = plan(&job, &[], &[mock::node()]);
    let d = p.decisions();
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d.iter().all(|d| d.action == "place"
        && d.task_group == "web"
        && d.node_id.as_deref() == Some("node-1")
        && d.reason == "the group runs fewer allocations than its count"));
    assert_eq!(
        d.iter().map(|d| d.alloc_name.as_str()).collect::<Vec<_>>(),
        [
            crate::structs::alloc_name(&job.id, "web", 0),
            crate::structs::alloc_name(&job.id, "web", 1)
        ]
    );

    let fewer = job.clone().count(1);
    let existing = vec![mock::alloc(&job, 0), mock::alloc(&job, 1)];
    let d = plan(&fewer, &existing, &[mock::node()]).decisions();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].action, "stop");
    assert_eq!(d[0].task_group, "web");
    assert_eq!(d[0].alloc_id.as_deref(), Some(existing[1].id.as_str()));
    assert_eq!(d[0].reason, desc::NOT_NEEDED);
}

#[test]
fn a_lost_allocation_is_stopped_and_replaced_with_the_reason() {
    let job = mock::job().count(1);
    let down = mock::node().status(NodeStatus::Down);
    let other = MockNode::id(mock::node(), "node-2");
    let lost = mock::alloc(&job, 0);
    let d = plan(&job, std::slice::from_ref(&lost), &[down, other]).decisions();
    let stop = d.iter().find(|d| d.action == "stop").expect("stop");
    assert!(stop.reason.starts_with(desc::LOST), "{}", stop.reason);
    assert!(
        stop.reason.contains("client status set to lost"),
        "{}",
        stop.reason
    );
    let place = d.iter().find(|d| d.action == "place").expect("place");
    assert_eq!(place.node_id.as_deref(), Some("node-2"));
    assert_eq!(
        place.reason,
        format!("replaces {}: {}", lost.id, desc::LOST)
    );
}

#[test]
fn updates_and_failures_are_decisions_too() {
    let v0 = mock::job().count(1);
    let v1 = v0.clone().image("busybox:v2").version(1);
    let versions = BTreeMap::from([(0, v0.clone()), (1, v1.clone())]);
    let p = reconcile(&ReconcileInput {
        job: &v1,
        versions: &versions,
        existing: &[mock::alloc(&v0, 0)],
        nodes: &[mock::node()],
        now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    });
    let d = p.decisions();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].action, "destructive-update");
    assert!(
        d[0].reason.contains("its tasks changed in version 1"),
        "{}",
        d[0].reason
    );

    let policy = v0
        .clone()
        .with(|j| j.task_groups[0].restart.attempts = 7)
        .version(1);
    let versions = BTreeMap::from([(0, v0.clone()), (1, policy.clone())]);
    let p = reconcile(&ReconcileInput {
        job: &policy,
        versions: &versions,
        existing: &[mock::alloc(&v0, 0)],
        nodes: &[mock::node()],
        now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    });
    let d = p.decisions();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].action, "in-place-update");

    let huge = mock::job().count(1).resources(100_000, 64);
    let d = plan(&huge, &[], &[mock::node()]).decisions();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].action, "placement-failed");
    assert!(
        d[0].reason.starts_with("failed to place 1 allocation: "),
        "{}",
        d[0].reason
    );
    assert!(d[0].reason.contains("exhausted"), "{}", d[0].reason);
}

#[test]
fn a_noop_plan_has_no_decisions() {
    let job = mock::job().count(1);
    let p = plan(&job, &[mock::alloc(&job, 0)], &[mock::node()]);
    assert!(p.is_noop());
    assert!(p.decisions().is_empty());
}
