//! Choosing a node for one allocation: feasibility (after Nomad's `feasible.go`: ready and
//! eligible, datacenter, node pool, drivers, constraints, then cpu, memory and ports) and
//! ranking (`rank.go`: bin-packing plus job anti-affinity). Usage is tracked as the plan grows,
//! so two placements in one plan never take the same port.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::structs::{
    AllocatedResources, Allocation, Constraint, Job, JobType, NetworkResource, Node, NodeStatus,
    TaskGroup,
};

use super::PlacementFailure;
use super::node_index::UsageByNode;

/// Nomad's default dynamic port range.
pub const DYNAMIC_PORT_MIN: u16 = 20000;
pub const DYNAMIC_PORT_MAX: u16 = 32000;

/// FNV-1a for maps keyed by node id: ids are short and not attacker-chosen at planning time, and
/// std's SipHash was a fifth of a plan's time at 5,000 nodes.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

pub(super) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    /// SplitMix64's finaliser: FNV leaves the top bits, which hashbrown filters on, nearly
    /// the same for ids that differ only in their last characters.
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Eight bytes a step: `finish` does the mixing.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Usage by node id.
pub(super) type UsageMap<'a> = HashMap<&'a str, NodeUsage<'a>, FastHash>;

/// A node's usage with its groups in a fixed order, for comparisons.
pub(super) type NormalizedUsage = (
    u64,
    u64,
    BTreeMap<u16, u32>,
    BTreeMap<(String, String), u32>,
);

/// What is already taken on each node. Keys borrow from the planner's input, so building it
/// from tens of thousands of allocations allocates no strings. A plan against a
/// [`NodeIndex`](super::NodeIndex) that tracks allocations starts from the index's usage
/// (`base`) and copies a node into `nodes` only when the plan changes it.
#[derive(Debug, Default, Clone)]
pub(super) struct Usage<'a> {
    base: Option<&'a UsageByNode>,
    nodes: UsageMap<'a>,
}

#[derive(Debug, Default, Clone)]
pub(super) struct NodeUsage<'a> {
    cpu: u64,
    memory: u64,
    /// Port -> how many allocations hold it (more than one only with `ignore_collision`), so
    /// stopping one of them does not free the port.
    ports: BTreeMap<u16, u32>,
    /// (job id, group, allocations on this node), for anti-affinity and `distinct_hosts`; a
    /// node holds few groups, so a list beats a map. Owned only in a shared index, whose
    /// allocations outlive no single plan's input.
    groups: Vec<(Cow<'a, str>, Cow<'a, str>, u32)>,
}

impl<'a> NodeUsage<'a> {
    /// Holds no allocation (every allocation counts in its group).
    pub(super) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub(super) fn normalized(&self) -> NormalizedUsage {
        (
            self.cpu,
            self.memory,
            self.ports.clone(),
            self.groups
                .iter()
                .map(|(j, g, n)| ((j.to_string(), g.to_string()), *n))
                .collect(),
        )
    }

    fn count(&self, job: &str, group: &str) -> u32 {
        self.groups
            .iter()
            .find(|(j, g, _)| j == job && g == group)
            .map_or(0, |(_, _, n)| *n)
    }

    pub(super) fn add(
        &mut self,
        job: Cow<'a, str>,
        group: Cow<'a, str>,
        res: AllocatedResources,
        ports: impl IntoIterator<Item = u16>,
    ) {
        self.cpu += res.cpu;
        self.memory += res.memory;
        for p in ports {
            *self.ports.entry(p).or_default() += 1;
        }
        match self
            .groups
            .iter_mut()
            .find(|(j, g, _)| *j == job && *g == group)
        {
            Some((_, _, count)) => *count += 1,
            None => self.groups.push((job, group, 1)),
        }
    }

    /// Undoes one [`NodeUsage::add`] with the same arguments.
    pub(super) fn remove(
        &mut self,
        job: &str,
        group: &str,
        res: AllocatedResources,
        ports: impl IntoIterator<Item = u16>,
    ) {
        self.cpu = self.cpu.saturating_sub(res.cpu);
        self.memory = self.memory.saturating_sub(res.memory);
        for p in ports {
            if let Some(n) = self.ports.get_mut(&p) {
                *n -= 1;
                if *n == 0 {
                    self.ports.remove(&p);
                }
            }
        }
        if let Some(i) = self
            .groups
            .iter()
            .position(|(j, g, _)| j == job && g == group)
        {
            self.groups[i].2 -= 1;
            if self.groups[i].2 == 0 {
                self.groups.remove(i);
            }
        }
    }
}

/// The ports an allocation holds on its node.
pub(super) fn held_ports(networks: &[NetworkResource]) -> impl Iterator<Item = u16> + '_ {
    networks
        .iter()
        .flat_map(|n| n.ports())
        .map(|p| p.value)
        .filter(|p| *p != 0)
}

impl<'a> Usage<'a> {
    /// Every allocation that still holds resources: neither side is done with it.
    pub(super) fn from_allocs(allocs: impl IntoIterator<Item = &'a Allocation>) -> Self {
        let mut u = Usage::default();
        for a in allocs {
            if !a.terminal() {
                u.apply(
                    &a.node_id,
                    &a.job_id,
                    &a.task_group,
                    a.resources,
                    &a.networks,
                );
            }
        }
        u
    }

    /// The usage `base` records, changed only by what this plan does.
    pub(super) fn over(base: &'a UsageByNode) -> Self {
        Usage {
            base: Some(base),
            nodes: UsageMap::default(),
        }
    }

    /// This plan's own copy of a node's usage.
    fn node_mut(&mut self, node_id: &'a str) -> &mut NodeUsage<'a> {
        let base = self.base;
        self.nodes.entry(node_id).or_insert_with(|| {
            base.and_then(|b| b.get(node_id))
                .map(|u| NodeUsage::clone(u))
                .unwrap_or_default()
        })
    }

    /// Counts one more allocation on `node_id`.
    pub(super) fn apply(
        &mut self,
        node_id: &'a str,
        job_id: &'a str,
        group: &'a str,
        res: AllocatedResources,
        networks: &[NetworkResource],
    ) {
        self.node_mut(node_id).add(
            Cow::Borrowed(job_id),
            Cow::Borrowed(group),
            res,
            held_ports(networks),
        );
    }

    /// Forgets one allocation the base counted on `node_id` (one this plan stops).
    pub(super) fn release(
        &mut self,
        node_id: &'a str,
        job_id: &str,
        group: &str,
        res: AllocatedResources,
        ports: &[u16],
    ) {
        self.node_mut(node_id)
            .remove(job_id, group, res, ports.iter().copied());
    }

    fn node(&self, id: &str) -> Option<&NodeUsage<'a>> {
        self.nodes
            .get(id)
            .or_else(|| self.base.and_then(|b| b.get(id)).map(|u| &**u))
    }
}

/// The node chosen for one allocation, with its ports assigned.
pub(super) struct Chosen<'a> {
    pub node: &'a Node,
    pub networks: Vec<NetworkResource>,
    pub resources: AllocatedResources,
}

pub(super) fn group_resources(tg: &TaskGroup) -> AllocatedResources {
    AllocatedResources {
        cpu: tg.tasks.iter().map(|t| t.resources.cpu).sum(),
        memory: tg.tasks.iter().map(|t| t.resources.memory).sum(),
    }
}

/// Nomad's datacenter match: exact, or a `*` glob.
pub(super) fn glob_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, rest)) => {
            let Some(mut tail) = value.strip_prefix(prefix) else {
                return false;
            };
            if rest.is_empty() {
                return true;
            }
            // Each further piece must appear in order; the last must end the value.
            let pieces: Vec<&str> = rest.split('*').collect();
            for (i, piece) in pieces.iter().enumerate() {
                if i == pieces.len() - 1 {
                    return piece.is_empty() || tail.ends_with(piece);
                }
                match tail.find(piece) {
                    Some(at) => tail = &tail[at + piece.len()..],
                    None => return false,
                }
            }
            true
        }
    }
}

fn pool_matches(job_pool: &str, node_pool: &str) -> bool {
    job_pool == "all" || job_pool.is_empty() || job_pool == node_pool
}

/// Whether the job may run on the node at all: in one of its datacenters and its node pool.
pub(super) fn in_job_scope(job: &Job, n: &Node) -> bool {
    job.datacenters
        .iter()
        .any(|dc| dc == "*" || glob_match(dc, &n.datacenter))
        && pool_matches(&job.node_pool, &n.node_pool)
}

/// Ready, eligible, not draining, and in the job's scope: new allocations may land here.
pub(super) fn in_scope(job: &Job, n: &Node) -> bool {
    n.schedulable() && in_job_scope(job, n)
}

/// How many feasible nodes one placement ranks before taking the best (Nomad's `SetNodes`):
/// service jobs look at log2(nodes), at least 2; batch jobs at 2 ("the power of two
/// choices"); affinities and spreads need every node.
pub(super) fn rank_limit(job: &Job, tg: &TaskGroup, nodes: usize) -> usize {
    let steered = !job.affinities.is_empty()
        || !tg.affinities.is_empty()
        || tg.tasks.iter().any(|t| !t.affinities.is_empty())
        || !job.spreads.is_empty()
        || !tg.spreads.is_empty();
    if steered {
        return usize::MAX;
    }
    let batch = matches!(job.job_type, JobType::Batch | JobType::Sysbatch);
    if batch || nodes == 0 {
        return 2;
    }
    (usize::BITS - (nodes - 1).leading_zeros()).max(2) as usize
}

/// A node whose score is below 0 (it already runs this group) does not count toward the
/// limit, up to this many times (Nomad's `maxSkip`), so instances spread.
const MAX_SKIP: usize = 3;

/// Picks a node for one allocation of `tg` among `candidates` (nodes in the job's scope,
/// sorted by id), or says why none fits. The scan starts at `*cursor` and goes on from where
/// it stopped next time (Nomad's `StaticIterator`), so placements of one plan spread over the
/// cluster instead of re-reading its first nodes; it stops after `limit` feasible nodes, and
/// visits every node only when nothing fits, so a failure reports on all of them. Ties go to
/// the lowest node id, so plans are reproducible.
pub(super) fn select_node<'a>(
    job: &'a Job,
    tg: &'a TaskGroup,
    candidates: &[&'a Node],
    cursor: &mut usize,
    limit: usize,
    usage: &Usage<'a>,
) -> Result<Chosen<'a>, PlacementFailure> {
    let mut metric = PlacementFailure::default();
    let resources = group_resources(tg);
    let mut best: Option<(f64, &'a Node)> = None;
    let empty = NodeUsage::default();
    let n = candidates.len();
    let (mut feasible, mut skipped, mut visited) = (0usize, 0usize, 0usize);
    while visited < n {
        let node = candidates[(*cursor + visited) % n];
        visited += 1;
        metric.nodes_evaluated += 1;
        let used = usage.node(&node.id).unwrap_or(&empty);
        if let Some(reason) = filter_reason(job, tg, node, used) {
            metric.nodes_filtered += 1;
            *metric.constraint_filtered.entry(reason).or_default() += 1;
            if !node.node_class.is_empty() {
                *metric
                    .class_filtered
                    .entry(node.node_class.clone())
                    .or_default() += 1;
            }
            continue;
        }
        if let Err(dim) = ports_fit(tg, node, used) {
            exhausted(&mut metric, node, format!("network: {dim}"));
            continue;
        }
        if used.cpu + resources.cpu > node.cpu_mhz {
            exhausted(&mut metric, node, "cpu".into());
            continue;
        }
        if used.memory + resources.memory > node.memory_mb {
            exhausted(&mut metric, node, "memory".into());
            continue;
        }
        let score = score(job, tg, node, used, resources);
        let better = match &best {
            None => true,
            Some((s, b)) => score > *s + 1e-9 || ((score - *s).abs() <= 1e-9 && node.id < b.id),
        };
        if better {
            best = Some((score, node));
        }
        if score < 0.0 && skipped < MAX_SKIP {
            skipped += 1;
        } else {
            feasible += 1;
        }
        if feasible >= limit {
            break;
        }
    }
    if n > 0 {
        *cursor = (*cursor + visited) % n;
    }
    let (_, node) = best.ok_or(metric)?;
    let used = usage.node(&node.id).unwrap_or(&empty);
    let networks = assign_ports(tg, node, used)
        .unwrap_or_else(|_| unreachable!("ports_fit accepted node {}", node.id));
    Ok(Chosen {
        node,
        networks,
        resources,
    })
}

fn exhausted(metric: &mut PlacementFailure, node: &Node, dimension: String) {
    metric.nodes_exhausted += 1;
    *metric.dimension_exhausted.entry(dimension).or_default() += 1;
    if !node.node_class.is_empty() {
        *metric
            .class_exhausted
            .entry(node.node_class.clone())
            .or_default() += 1;
    }
}

/// The first reason `node` cannot run `tg` at all, worded as Nomad's metric keys.
fn filter_reason(job: &Job, tg: &TaskGroup, node: &Node, used: &NodeUsage<'_>) -> Option<String> {
    if tg.tasks.iter().any(|t| !node.has_healthy_driver(&t.driver)) {
        return Some("missing drivers".into());
    }
    let job_level = job.constraints.iter().map(|c| (c, true));
    let group_level = tg.constraints.iter().map(|c| (c, false));
    let task_level = tg
        .tasks
        .iter()
        .flat_map(|t| t.constraints.iter())
        .map(|c| (c, false));
    for (c, is_job) in job_level.chain(group_level).chain(task_level) {
        if c.operator == "distinct_hosts" {
            if c.value == "false" {
                continue;
            }
            let here: u32 = used
                .groups
                .iter()
                .filter(|(j, g, _)| *j == job.id && (is_job || *g == tg.name))
                .map(|(_, _, n)| *n)
                .sum();
            if here > 0 {
                return Some("distinct_hosts".into());
            }
            continue;
        }
        if !constraint_met(c, node) {
            return Some(constraint_key(c));
        }
    }
    None
}

/// Nomad's `Constraint.String()`.
fn constraint_key(c: &Constraint) -> String {
    format!("{} {} {}", c.attribute, c.operator, c.value)
}

/// Resolves `${attr.*}`, `${node.*}`, `${meta.*}` against a node; anything else is a literal.
fn resolve<'a>(target: &'a str, node: &'a Node) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    let Some(inner) = target.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
        return Some(Cow::Borrowed(target));
    };
    if let Some(attr) = inner.strip_prefix("attr.") {
        if let Some(driver) = attr.strip_prefix("driver.")
            && !driver.contains('.')
        {
            return node
                .has_healthy_driver(driver)
                .then_some(Cow::Borrowed("1"));
        }
        return node.attributes.get(attr).map(|v| Cow::Borrowed(v.as_str()));
    }
    if let Some(key) = inner.strip_prefix("meta.") {
        return node.meta.get(key).map(|v| Cow::Borrowed(v.as_str()));
    }
    match inner {
        "node.unique.id" => Some(Cow::Borrowed(&node.id)),
        "node.unique.name" => Some(Cow::Borrowed(&node.name)),
        "node.datacenter" => Some(Cow::Borrowed(&node.datacenter)),
        "node.class" => Some(Cow::Borrowed(&node.node_class)),
        "node.pool" => Some(Cow::Borrowed(&node.node_pool)),
        _ => None,
    }
}

fn constraint_met(c: &Constraint, node: &Node) -> bool {
    let l = resolve(&c.attribute, node);
    let r = resolve(&c.value, node);
    let op = if c.operator.is_empty() {
        "="
    } else {
        c.operator.as_str()
    };
    match op {
        "is_set" => l.is_some(),
        "is_not_set" => l.is_none(),
        _ => {
            let (Some(l), Some(r)) = (l, r) else {
                return false;
            };
            match op {
                "=" | "==" | "is" => l == r,
                "!=" | "not" => l != r,
                "<" | "<=" | ">" | ">=" => {
                    let ord = match (l.parse::<f64>(), r.parse::<f64>()) {
                        (Ok(a), Ok(b)) => a.partial_cmp(&b),
                        _ => Some(l.cmp(&r)),
                    };
                    let Some(ord) = ord else { return false };
                    match op {
                        "<" => ord.is_lt(),
                        "<=" => ord.is_le(),
                        ">" => ord.is_gt(),
                        _ => ord.is_ge(),
                    }
                }
                "set_contains" | "set_contains_all" => {
                    let have: BTreeSet<&str> = l.split(',').map(str::trim).collect();
                    r.split(',').map(str::trim).all(|v| have.contains(v))
                }
                "set_contains_any" => {
                    let have: BTreeSet<&str> = l.split(',').map(str::trim).collect();
                    r.split(',').map(str::trim).any(|v| have.contains(v))
                }
                // `regexp`, `version`, `semver` need matchers drover does not carry yet: a
                // node never satisfies them, and the failure names the constraint.
                _ => false,
            }
        }
    }
}

/// Whether the group's ports fit on the node, without building anything (most nodes a
/// placement looks at are only ranked, not chosen).
fn ports_fit(tg: &TaskGroup, node: &Node, used: &NodeUsage<'_>) -> Result<(), String> {
    if tg.networks.is_empty() {
        return Ok(());
    }
    assign_ports(tg, node, used).map(|_| ())
}

/// Checks static ports and assigns dynamic ones (lowest free port first, so plans are
/// reproducible), as Nomad's `NetworkIndex.AssignPorts`.
fn assign_ports(
    tg: &TaskGroup,
    node: &Node,
    used: &NodeUsage<'_>,
) -> Result<Vec<NetworkResource>, String> {
    if tg.networks.is_empty() {
        return Ok(Vec::new());
    }
    let mut mine: BTreeSet<u16> = BTreeSet::new();
    let taken = |p: u16, mine: &BTreeSet<u16>| {
        used.ports.contains_key(&p) || node.reserved_ports.contains(&p) || mine.contains(&p)
    };
    let mut networks = tg.networks.clone();
    for n in &networks {
        for p in &n.reserved_ports {
            if p.value == 0 {
                continue;
            }
            if taken(p.value, &mine) && !p.ignore_collision {
                return Err(format!("reserved port collision {}={}", p.label, p.value));
            }
            mine.insert(p.value);
        }
    }
    for n in &mut networks {
        for p in &mut n.dynamic_ports {
            let free = (DYNAMIC_PORT_MIN..=DYNAMIC_PORT_MAX).find(|v| !taken(*v, &mine));
            let Some(v) = free else {
                return Err("dynamic port selection failed".into());
            };
            p.value = v;
            mine.insert(v);
        }
    }
    Ok(networks)
}

/// Nomad's bin-packing score (fuller nodes first), averaged with the job anti-affinity
/// penalty when the node already runs allocations of this group.
fn score(
    job: &Job,
    tg: &TaskGroup,
    node: &Node,
    used: &NodeUsage<'_>,
    need: AllocatedResources,
) -> f64 {
    let free = |used: u64, cap: u64| {
        if cap == 0 {
            0.0
        } else {
            1.0 - (used as f64 / cap as f64)
        }
    };
    let free_cpu = free(used.cpu + need.cpu, node.cpu_mhz);
    let free_mem = free(used.memory + need.memory, node.memory_mb);
    let binpack = (20.0 - (10f64.powf(free_cpu) + 10f64.powf(free_mem))) / 18.0;
    let (mut sum, mut count) = (binpack, 1.0);
    let collisions = used.count(&job.id, &tg.name);
    if collisions > 0 {
        sum += -f64::from(collisions + 1) / f64::from(tg.count.max(1));
        count += 1.0;
    }
    if let Some(affinity) = affinity_score(job, tg, node) {
        sum += affinity;
        count += 1.0;
    }
    // Nomad's ScoreNormalizationIterator: the mean of the scores that apply.
    sum / count
}

/// Nomad's node affinity score: the weights of the matching affinities over the sum of all
/// weights' magnitudes, in [-1, 1]; `None` when the job declares none.
fn affinity_score(job: &Job, tg: &TaskGroup, node: &Node) -> Option<f64> {
    if job.affinities.is_empty()
        && tg.affinities.is_empty()
        && tg.tasks.iter().all(|t| t.affinities.is_empty())
    {
        return None;
    }
    let all: Vec<&crate::structs::Affinity> = job
        .affinities
        .iter()
        .chain(tg.affinities.iter())
        .chain(tg.tasks.iter().flat_map(|t| t.affinities.iter()))
        .collect();
    let total: f64 = all.iter().map(|a| f64::from(a.weight.unsigned_abs())).sum();
    if total == 0.0 {
        return None;
    }
    let matched: f64 = all
        .iter()
        .filter(|a| {
            constraint_met(
                &Constraint {
                    attribute: a.attribute.clone(),
                    operator: a.operator.clone(),
                    value: a.value.clone(),
                },
                node,
            )
        })
        .map(|a| f64::from(a.weight))
        .sum();
    Some(matched / total)
}

/// Whether allocations on this node are lost: it is down, disconnected or gone.
pub(super) fn node_lost(node: Option<&Node>) -> bool {
    node.is_none_or(|n| matches!(n.status, NodeStatus::Down | NodeStatus::Disconnected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "dc1"));
        assert!(glob_match("dc*", "dc1"));
        assert!(glob_match("dc1", "dc1"));
        assert!(!glob_match("dc2", "dc1"));
        assert!(glob_match("*-east", "us-east"));
        assert!(!glob_match("*-east", "us-west"));
        assert!(glob_match("us*st", "us-east"));
    }

    #[test]
    fn constraints() {
        let node = crate::structs::mock::node();
        let c = |a: &str, o: &str, v: &str| Constraint {
            attribute: a.into(),
            operator: o.into(),
            value: v.into(),
        };
        assert!(constraint_met(
            &c("${attr.kernel.name}", "=", "linux"),
            &node
        ));
        assert!(!constraint_met(
            &c("${attr.kernel.name}", "!=", "linux"),
            &node
        ));
        assert!(constraint_met(&c("${attr.cpu.numcores}", ">=", "2"), &node));
        assert!(constraint_met(&c("${node.datacenter}", "", "dc1"), &node));
        assert!(!constraint_met(&c("${meta.rack}", "=", "r1"), &node));
        assert!(constraint_met(&c("${meta.rack}", "is_not_set", ""), &node));
        assert!(constraint_met(&c("${attr.driver.docker}", "=", "1"), &node));
    }
}
