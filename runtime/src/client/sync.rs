//! What a node must change to match its server: the allocations to start, stop, update in
//! place, and forget. Pure: no I/O, no clock, sorted output, so it is tested as a table and the
//! client loop only applies what it returns. Containers that no allocation wants (orphans) are
//! stopped here and nowhere else.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::{AllocSpec, DesiredStatus};

/// What the node holds for one allocation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningAlloc {
    /// The `modify_index` of the spec the runner was given.
    pub modify_index: u64,
    /// An alloc runner exists (otherwise only tasks found on the node: orphans).
    pub has_runner: bool,
    /// The node will not run it again (complete, failed, killed).
    pub terminal: bool,
    /// A kill was already sent.
    pub stopping: bool,
    /// Tasks of it run on the node that its finished runner does not hold (found when a
    /// driver came back): orphans, stopped whatever the server wants.
    pub leftover: bool,
}

/// The changes, each list sorted by allocation id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeDiff {
    /// Run these (re-attaching any of their tasks found on the node).
    pub start: Vec<AllocSpec>,
    /// Kill these: their tasks, or the orphaned tasks found on the node.
    pub stop: Vec<String>,
    /// In-place updates of running allocations.
    pub update: Vec<AllocSpec>,
    /// Finished allocations the server no longer lists: drop them and their local state.
    pub gc: Vec<String>,
}

impl NodeDiff {
    pub fn is_empty(&self) -> bool {
        self.start.is_empty()
            && self.stop.is_empty()
            && self.update.is_empty()
            && self.gc.is_empty()
    }
}

/// Compares the server's allocations for this node with what the node holds.
pub fn sync(desired: &[AllocSpec], running: &BTreeMap<String, RunningAlloc>) -> NodeDiff {
    let mut diff = NodeDiff::default();
    let mut sorted: Vec<&AllocSpec> = desired.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let wanted: BTreeSet<&str> = sorted.iter().map(|a| a.id.as_str()).collect();
    for alloc in sorted {
        let held = running.get(&alloc.id);
        match (alloc.desired_status, held) {
            (DesiredStatus::Run, None) => diff.start.push(alloc.clone()),
            // Tasks of a wanted allocation survived without their runner (lost local state):
            // start it, and the runner re-attaches them.
            (DesiredStatus::Run, Some(r)) if !r.has_runner => diff.start.push(alloc.clone()),
            (DesiredStatus::Run, Some(r)) => {
                if r.modify_index != alloc.modify_index {
                    diff.update.push(alloc.clone());
                }
                if r.leftover {
                    diff.stop.push(alloc.id.clone());
                }
            }
            (DesiredStatus::Stop | DesiredStatus::Evict, Some(r)) => {
                if !r.has_runner || r.leftover || (!r.terminal && !r.stopping) {
                    diff.stop.push(alloc.id.clone());
                }
            }
            (DesiredStatus::Stop | DesiredStatus::Evict, None) => {}
        }
    }
    for (id, r) in running {
        if wanted.contains(id.as_str()) {
            continue;
        }
        if !r.has_runner || r.leftover || (!r.terminal && !r.stopping) {
            diff.stop.push(id.clone());
        } else if r.terminal {
            diff.gc.push(id.clone());
        }
    }
    diff.stop.sort();
    diff.stop.dedup();
    diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;

    fn alloc(id: &str, status: DesiredStatus, index: u64) -> AllocSpec {
        let mut a = testutil::alloc("web", "n1", vec![]);
        a.id = id.to_string();
        a.desired_status = status;
        a.modify_index = index;
        a
    }

    fn held(index: u64, has_runner: bool, terminal: bool, stopping: bool) -> RunningAlloc {
        RunningAlloc {
            modify_index: index,
            has_runner,
            terminal,
            stopping,
            leftover: false,
        }
    }

    fn ids(v: &[AllocSpec]) -> Vec<&str> {
        v.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn new_allocations_start_and_known_ones_are_left_alone() {
        let desired = [
            alloc("b", DesiredStatus::Run, 1),
            alloc("a", DesiredStatus::Run, 1),
        ];
        let running = BTreeMap::from([("a".to_string(), held(1, true, false, false))]);
        let d = sync(&desired, &running);
        assert_eq!(ids(&d.start), ["b"]);
        assert!(d.stop.is_empty() && d.update.is_empty() && d.gc.is_empty());
        // Applying it and syncing again changes nothing: the fixed point.
        let running = BTreeMap::from([
            ("a".to_string(), held(1, true, false, false)),
            ("b".to_string(), held(1, true, false, false)),
        ]);
        assert!(sync(&desired, &running).is_empty());
    }

    #[test]
    fn a_changed_index_is_an_in_place_update() {
        let desired = [alloc("a", DesiredStatus::Run, 7)];
        let running = BTreeMap::from([("a".to_string(), held(3, true, false, false))]);
        assert_eq!(ids(&sync(&desired, &running).update), ["a"]);
    }

    #[test]
    fn desired_stop_kills_once() {
        let desired = [
            alloc("a", DesiredStatus::Stop, 2),
            alloc("e", DesiredStatus::Evict, 2),
        ];
        let running = BTreeMap::from([
            ("a".to_string(), held(1, true, false, false)),
            ("e".to_string(), held(1, true, false, true)),
        ]);
        assert_eq!(sync(&desired, &running).stop, ["a"]);
        // Already terminal: nothing to do.
        let running = BTreeMap::from([("a".to_string(), held(1, true, true, false))]);
        assert!(sync(&desired, &running).is_empty());
        // Stopped and unknown to the node: nothing to do either.
        assert!(sync(&desired, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_terminal_allocation_is_not_restarted() {
        let desired = [alloc("a", DesiredStatus::Run, 1)];
        let running = BTreeMap::from([("a".to_string(), held(1, true, true, false))]);
        assert!(sync(&desired, &running).is_empty());
    }

    #[test]
    fn orphans_are_stopped_and_adopted_when_wanted() {
        let desired = [alloc("wanted", DesiredStatus::Run, 1)];
        let running = BTreeMap::from([
            ("wanted".to_string(), held(0, false, false, false)),
            ("orphan".to_string(), held(0, false, false, false)),
        ]);
        let d = sync(&desired, &running);
        assert_eq!(ids(&d.start), ["wanted"]);
        assert_eq!(d.stop, ["orphan"]);
    }

    #[test]
    fn allocations_the_server_forgot_are_stopped_then_collected() {
        let running = BTreeMap::from([
            ("live".to_string(), held(1, true, false, false)),
            ("done".to_string(), held(1, true, true, false)),
            ("going".to_string(), held(1, true, false, true)),
        ]);
        let d = sync(&[], &running);
        assert_eq!(d.stop, ["live"]);
        assert_eq!(d.gc, ["done"]);
        assert!(d.start.is_empty());
    }

    #[test]
    fn leftover_tasks_of_a_finished_runner_are_stopped_whatever_the_server_wants() {
        let leftover = RunningAlloc {
            leftover: true,
            ..held(1, true, true, false)
        };
        let desired = [
            alloc("run", DesiredStatus::Run, 1),
            alloc("stop", DesiredStatus::Stop, 1),
        ];
        let running = BTreeMap::from([
            ("run".to_string(), leftover),
            ("stop".to_string(), leftover),
            ("forgotten".to_string(), leftover),
        ]);
        let d = sync(&desired, &running);
        assert_eq!(d.stop, ["forgotten", "run", "stop"]);
        // Not started again, and not collected before its tasks are stopped.
        assert!(d.start.is_empty() && d.gc.is_empty(), "{d:?}");
    }
}
