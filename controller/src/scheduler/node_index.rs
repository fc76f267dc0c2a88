//! What plans share about the cluster (Nomad's state store indexes allocations by node, and its
//! scheduler reads the nodes a job may use from that index instead of walking every allocation
//! and node again): nodes by id, the nodes in scope per datacenters and pool, and, optionally,
//! per-node usage kept up to date as plans are applied.
//!
//! [`ClusterView`] is that state held owned by the server between evaluations (the store feeds
//! it every node and allocation it writes); a worker takes a [`ClusterSnapshot`] of it, which
//! costs a few reference counts, and plans against [`ClusterSnapshot::node_index`].
//!
//! None of it changes a result: a plan against an index is the plan [`super::reconcile`] would
//! compute from the same nodes and allocations (`tests::shared_index_plans_like_separate_plans`).
//! The planner stays a pure function of its input and the index; the index is a function of the
//! nodes and the allocations handed to it.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::structs::{AllocatedResources, Allocation, Job, Node};

use super::feasible::{FastHash, NodeUsage, held_ports, in_scope};

/// (datacenters, node pool, the nodes in that scope).
type ScopeNodes<'a> = (Vec<String>, String, Rc<[&'a Node]>);

/// Usage by node id of every live allocation. Each node's usage sits behind its own `Arc`, so a
/// snapshot shares them all and a later change copies only the nodes it touches.
pub(super) type UsageByNode = HashMap<Arc<str>, Arc<NodeUsage<'static>>, FastHash>;

/// Node lookups and candidate lists for one or many plans (a periodic pass plans every job
/// against one set of nodes, and need not index them once per job). Built on first use: a plan
/// for a job with no allocations yet never looks a node up by id.
pub struct NodeIndex<'a> {
    nodes: &'a [Node],
    by_id: OnceCell<HashMap<&'a str, &'a Node, FastHash>>,
    /// Nodes new allocations may go to, sorted by id, per (datacenters, node pool): the only
    /// parts of a job that decide it. Few distinct pairs exist, so a list beats a map.
    in_scope: RefCell<Vec<ScopeNodes<'a>>>,
    allocs: Option<Tracked<'a>>,
}

/// Where an index's usage comes from.
enum Tracked<'a> {
    /// Its own, kept up to date with [`NodeIndex::update_allocs`].
    Kept(ClusterUsage),
    /// A [`ClusterSnapshot`]'s, read only.
    Read(&'a UsageByNode),
}

/// Usage by node of every live allocation handed to it, and what each one holds (by id), so an
/// allocation that changes or stops is taken back out exactly.
#[derive(Debug, Clone, Default)]
pub struct ClusterUsage {
    by_node: Arc<UsageByNode>,
    held: HashMap<String, Held, FastHash>,
}

/// What one live allocation holds on its node.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    node: Arc<str>,
    job: String,
    group: String,
    resources: AllocatedResources,
    ports: Vec<u16>,
}

impl ClusterUsage {
    pub fn from_allocs<'x>(allocs: impl IntoIterator<Item = &'x Allocation>) -> Self {
        let mut usage = ClusterUsage::default();
        usage.update_allocs(allocs);
        usage
    }

    /// Records new or changed allocations: a later version of one replaces what was held for
    /// its id; a terminal one holds nothing. Allocations on nodes no plan knows are counted
    /// all the same (no plan looks at them), so the usage depends on the allocations alone.
    pub fn update_allocs<'x>(&mut self, allocs: impl IntoIterator<Item = &'x Allocation>) {
        for a in allocs {
            let old = self.held.remove(a.id.as_str());
            if old.is_none() && a.terminal() {
                // Neither held nor holding: skip copying a map a snapshot may share.
                continue;
            }
            let by_node = Arc::make_mut(&mut self.by_node);
            if let Some(old) = old
                && let Some(n) = by_node.get_mut(&*old.node)
            {
                let n = Arc::make_mut(n);
                n.remove(
                    &old.job,
                    &old.group,
                    old.resources,
                    old.ports.iter().copied(),
                );
                if n.is_empty() {
                    by_node.remove(&*old.node);
                }
            }
            if a.terminal() {
                continue;
            }
            let node: Arc<str> = match by_node.get_key_value(a.node_id.as_str()) {
                Some((k, _)) => Arc::clone(k),
                None => Arc::from(a.node_id.as_str()),
            };
            let ports: Vec<u16> = held_ports(&a.networks).collect();
            Arc::make_mut(by_node.entry(Arc::clone(&node)).or_default()).add(
                Cow::Owned(a.job_id.clone()),
                Cow::Owned(a.task_group.clone()),
                a.resources,
                ports.iter().copied(),
            );
            self.held.insert(
                a.id.clone(),
                Held {
                    node,
                    job: a.job_id.clone(),
                    group: a.task_group.clone(),
                    resources: a.resources,
                    ports,
                },
            );
        }
    }

    /// How many live allocations are counted.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// Equal when every node holds the same: the order in which allocations arrived (which orders
/// a node's group list) does not matter.
impl PartialEq for ClusterUsage {
    fn eq(&self, other: &Self) -> bool {
        let same_nodes = self.by_node.len() == other.by_node.len()
            && self.by_node.iter().all(|(id, u)| {
                other
                    .by_node
                    .get(id)
                    .is_some_and(|o| u.normalized() == o.normalized())
            });
        same_nodes && self.held == other.held
    }
}

/// The cluster as the server's workers plan against it, kept in memory across evaluations
/// (Nomad's scheduler reads its in-memory state store the same way): every node, sorted by id,
/// and the usage of every live allocation, as of one store index. The store hands it each node
/// and allocation it writes, in commit order; it does no I/O itself.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    index: u64,
    nodes: Arc<Vec<Node>>,
    usage: ClusterUsage,
}

impl ClusterView {
    /// The view of `nodes` and `allocs` (any order; terminal allocations count for nothing).
    pub fn new<'x>(
        index: u64,
        mut nodes: Vec<Node>,
        allocs: impl IntoIterator<Item = &'x Allocation>,
    ) -> Self {
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        ClusterView {
            index,
            nodes: Arc::new(nodes),
            usage: ClusterUsage::from_allocs(allocs),
        }
    }

    /// The store index this view is as of.
    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn set_index(&mut self, index: u64) {
        self.index = index;
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn usage(&self) -> &ClusterUsage {
        &self.usage
    }

    /// Records registered or changed nodes (a later version replaces the earlier).
    pub fn upsert_nodes(&mut self, changed: impl IntoIterator<Item = Node>) {
        let mut changed = changed.into_iter().peekable();
        if changed.peek().is_none() {
            return;
        }
        let nodes = Arc::make_mut(&mut self.nodes);
        for n in changed {
            match nodes.binary_search_by(|x| x.id.as_str().cmp(&n.id)) {
                Ok(i) => nodes[i] = n,
                Err(i) => nodes.insert(i, n),
            }
        }
    }

    /// See [`ClusterUsage::update_allocs`].
    pub fn update_allocs<'x>(&mut self, allocs: impl IntoIterator<Item = &'x Allocation>) {
        self.usage.update_allocs(allocs);
    }

    /// What one evaluation plans against: shares everything with the view, so it costs two
    /// reference counts, and stays as it was while the view moves on.
    pub fn snapshot(&self) -> ClusterSnapshot {
        ClusterSnapshot {
            index: self.index,
            nodes: Arc::clone(&self.nodes),
            usage: Arc::clone(&self.usage.by_node),
        }
    }
}

impl PartialEq for ClusterView {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index && self.nodes == other.nodes && self.usage == other.usage
    }
}

/// A [`ClusterView`] as of one store index.
#[derive(Debug, Clone)]
pub struct ClusterSnapshot {
    pub index: u64,
    nodes: Arc<Vec<Node>>,
    usage: Arc<UsageByNode>,
}

impl ClusterSnapshot {
    /// Every node, sorted by id.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// An index over this snapshot's nodes whose usage stands for every live allocation: the
    /// plan's `existing` must hold the planned job's allocations as of the same index.
    pub fn node_index(&self) -> NodeIndex<'_> {
        NodeIndex {
            allocs: Some(Tracked::Read(&self.usage)),
            ..NodeIndex::new(&self.nodes)
        }
    }
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
    /// allocations (as the index last saw them). Hand the index every allocation a plan
    /// writes, or a client changes, with [`NodeIndex::update_allocs`] before the next plan.
    pub fn with_allocs<'x>(
        nodes: &'a [Node],
        allocs: impl IntoIterator<Item = &'x Allocation>,
    ) -> Self {
        NodeIndex {
            allocs: Some(Tracked::Kept(ClusterUsage::from_allocs(allocs))),
            ..NodeIndex::new(nodes)
        }
    }

    /// See [`ClusterUsage::update_allocs`]. No-op for an index made with [`NodeIndex::new`] or
    /// read from a [`ClusterSnapshot`] (the server's view is updated by the store instead).
    pub fn update_allocs<'x>(&mut self, allocs: impl IntoIterator<Item = &'x Allocation>) {
        if let Some(Tracked::Kept(usage)) = &mut self.allocs {
            usage.update_allocs(allocs);
        }
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
        if !nodes.is_sorted_by(|a, b| a.id <= b.id) {
            nodes.sort_by(|a, b| a.id.cmp(&b.id));
        }
        let nodes: Rc<[&'a Node]> = nodes.into();
        cache.push((
            job.datacenters.clone(),
            job.node_pool.clone(),
            Rc::clone(&nodes),
        ));
        nodes
    }

    /// The tracked usage, when the index has one.
    pub(super) fn alloc_usage(&self) -> Option<&UsageByNode> {
        match self.allocs.as_ref()? {
            Tracked::Kept(usage) => Some(&usage.by_node),
            Tracked::Read(by_node) => Some(by_node),
        }
    }
}
