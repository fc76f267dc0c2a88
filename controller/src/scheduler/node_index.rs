//! What plans of one pass share about the cluster (Nomad's state store indexes allocations by
//! node, and its scheduler reads the nodes a job may use from that index instead of walking
//! every allocation and node again): nodes by id, the nodes in scope per datacenters and pool,
//! and, optionally, per-node usage kept up to date as plans are applied.
//!
//! It changes no result: a plan against an index is the plan [`super::reconcile`] would
//! compute from the same nodes and allocations (`tests::shared_index_plans_like_separate_plans`).
//! The planner stays a pure function of its input and the index; the index is a function of the
//! nodes and the allocations handed to it.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::structs::{AllocatedResources, Allocation, Job, Node};

use super::feasible::{FastHash, UsageMap, held_ports, in_scope};

/// (datacenters, node pool, the nodes in that scope).
type ScopeNodes<'a> = (Vec<String>, String, Rc<[&'a Node]>);

/// Node lookups and candidate lists for one or many plans (a periodic pass plans every job
/// against one set of nodes, and need not index them once per job). Built on first use: a plan
/// for a job with no allocations yet never looks a node up by id.
pub struct NodeIndex<'a> {
    nodes: &'a [Node],
    by_id: OnceCell<HashMap<&'a str, &'a Node, FastHash>>,
    /// Nodes new allocations may go to, sorted by id, per (datacenters, node pool): the only
    /// parts of a job that decide it. Few distinct pairs exist, so a list beats a map.
    in_scope: RefCell<Vec<ScopeNodes<'a>>>,
    allocs: Option<AllocUsage<'a>>,
}

/// Usage by node of the allocations handed to the index, and what each one holds (by id), so
/// an allocation that changes or stops is taken back out exactly.
pub(super) struct AllocUsage<'a> {
    pub(super) by_node: UsageMap<'a>,
    pub(super) held: HashMap<String, Held<'a>, FastHash>,
}

/// What one live allocation holds on its node.
pub(super) struct Held<'a> {
    pub(super) node: &'a str,
    pub(super) job: String,
    pub(super) group: String,
    pub(super) resources: AllocatedResources,
    pub(super) ports: Vec<u16>,
}

impl<'a> NodeIndex<'a> {
    /// Nodes only: every plan builds usage from its own `existing` allocations.
    pub fn new(nodes: &'a [Node]) -> Self {
        NodeIndex {
            nodes,
            by_id: OnceCell::new(),
            in_scope: RefCell::new(Vec::new()),
            allocs: None,
        }
    }

    /// Nodes and the cluster's allocations: plans take usage from the index instead of
    /// rebuilding it from `existing`, which then needs to hold only the planned job's
    /// allocations. Hand the index every allocation a plan writes, or a client changes, with
    /// [`NodeIndex::update_allocs`] before the next plan.
    pub fn with_allocs<'x>(
        nodes: &'a [Node],
        allocs: impl IntoIterator<Item = &'x Allocation>,
    ) -> Self {
        let mut index = NodeIndex::new(nodes);
        index.allocs = Some(AllocUsage {
            by_node: UsageMap::default(),
            held: HashMap::default(),
        });
        index.update_allocs(allocs);
        index
    }

    /// Records new or changed allocations (a later version of one replaces what the index
    /// held for its id; a terminal one holds nothing). Allocations on nodes the index does not
    /// know hold nothing a plan could use. No-op for an index made with [`NodeIndex::new`].
    pub fn update_allocs<'x>(&mut self, allocs: impl IntoIterator<Item = &'x Allocation>) {
        let Some(mut usage) = self.allocs.take() else {
            return;
        };
        for a in allocs {
            if let Some(old) = usage.held.remove(a.id.as_str())
                && let Some(n) = usage.by_node.get_mut(old.node)
            {
                n.remove(
                    &old.job,
                    &old.group,
                    old.resources,
                    old.ports.iter().copied(),
                );
            }
            if a.terminal() {
                continue;
            }
            let Some(node) = self.get(&a.node_id) else {
                continue;
            };
            let ports: Vec<u16> = held_ports(&a.networks).collect();
            usage.by_node.entry(node.id.as_str()).or_default().add(
                Cow::Owned(a.job_id.clone()),
                Cow::Owned(a.task_group.clone()),
                a.resources,
                ports.iter().copied(),
            );
            usage.held.insert(
                a.id.clone(),
                Held {
                    node: node.id.as_str(),
                    job: a.job_id.clone(),
                    group: a.task_group.clone(),
                    resources: a.resources,
                    ports,
                },
            );
        }
        self.allocs = Some(usage);
    }

    pub(super) fn get(&self, id: &str) -> Option<&'a Node> {
        self.by_id
            .get_or_init(|| self.nodes.iter().map(|n| (n.id.as_str(), n)).collect())
            .get(id)
            .copied()
    }

    /// The nodes `job`'s new allocations may go to, sorted by id.
    pub(super) fn candidates(&self, job: &Job) -> Rc<[&'a Node]> {
        let mut cache = self.in_scope.borrow_mut();
        if let Some((_, _, nodes)) = cache
            .iter()
            .find(|(dcs, pool, _)| *dcs == job.datacenters && *pool == job.node_pool)
        {
            return Rc::clone(nodes);
        }
        let mut nodes: Vec<&'a Node> = self.nodes.iter().filter(|n| in_scope(job, n)).collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let nodes: Rc<[&'a Node]> = nodes.into();
        cache.push((
            job.datacenters.clone(),
            job.node_pool.clone(),
            Rc::clone(&nodes),
        ));
        nodes
    }

    /// The tracked usage, when the index was made with [`NodeIndex::with_allocs`].
    pub(super) fn alloc_usage(&self) -> Option<&AllocUsage<'a>> {
        self.allocs.as_ref()
    }
}
