//! Choosing a node for one allocation: feasibility (after Nomad's `feasible.go`: ready and
//! eligible, datacenter, node pool, drivers, constraints, then cpu, memory and ports) and
//! ranking (`rank.go`: bin-packing plus job anti-affinity). Usage is tracked as the plan grows,
//! so two placements in one plan never take the same port.

use std::collections::{BTreeMap, BTreeSet};

use crate::structs::{
    AllocatedResources, Allocation, Constraint, Job, NetworkResource, Node, NodeStatus, TaskGroup,
};

use super::PlacementFailure;

/// Nomad's default dynamic port range.
pub const DYNAMIC_PORT_MIN: u16 = 20000;
pub const DYNAMIC_PORT_MAX: u16 = 32000;

/// What is already taken on each node.
#[derive(Debug, Default, Clone)]
pub(super) struct Usage {
    nodes: BTreeMap<String, NodeUsage>,
}

#[derive(Debug, Default, Clone)]
struct NodeUsage {
    cpu: u64,
    memory: u64,
    ports: BTreeSet<u16>,
    /// (job id, group) → allocations on this node, for anti-affinity and `distinct_hosts`.
    groups: BTreeMap<(String, String), u32>,
}

impl Usage {
    /// Every allocation that still holds resources: neither side is done with it.
    pub(super) fn from_allocs<'a>(allocs: impl IntoIterator<Item = &'a Allocation>) -> Self {
        let mut u = Usage::default();
        for a in allocs {
            if !a.terminal() {
                u.add(a);
            }
        }
        u
    }

    pub(super) fn add(&mut self, a: &Allocation) {
        self.apply(
            &a.node_id,
            &a.job_id,
            &a.task_group,
            a.resources,
            &a.networks,
            1,
        );
    }

    pub(super) fn apply(
        &mut self,
        node_id: &str,
        job_id: &str,
        group: &str,
        res: AllocatedResources,
        networks: &[NetworkResource],
        sign: i32,
    ) {
        let n = self.nodes.entry(node_id.to_string()).or_default();
        let key = (job_id.to_string(), group.to_string());
        let ports = networks.iter().flat_map(|n| n.ports()).map(|p| p.value);
        if sign > 0 {
            n.cpu += res.cpu;
            n.memory += res.memory;
            n.ports.extend(ports.filter(|p| *p != 0));
            *n.groups.entry(key).or_default() += 1;
        } else {
            n.cpu = n.cpu.saturating_sub(res.cpu);
            n.memory = n.memory.saturating_sub(res.memory);
            for p in ports {
                n.ports.remove(&p);
            }
            if let Some(c) = n.groups.get_mut(&key) {
                *c = c.saturating_sub(1);
            }
        }
    }

    fn node(&self, id: &str) -> Option<&NodeUsage> {
        self.nodes.get(id)
    }
}

/// The node chosen for one allocation, with its ports assigned.
pub(super) struct Chosen {
    pub node_id: String,
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
        .any(|dc| glob_match(dc, &n.datacenter))
        && pool_matches(&job.node_pool, &n.node_pool)
}

/// Ready, eligible, not draining, and in the job's scope: new allocations may land here.
pub(super) fn in_scope(job: &Job, n: &Node) -> bool {
    n.schedulable() && in_job_scope(job, n)
}

/// Picks the best node for one allocation of `tg`, or says why none fits.
pub(super) fn select_node<'a>(
    job: &Job,
    tg: &TaskGroup,
    nodes: impl IntoIterator<Item = &'a Node>,
    usage: &Usage,
) -> Result<Chosen, PlacementFailure> {
    let mut metric = PlacementFailure::default();
    let mut candidates: Vec<&Node> = nodes.into_iter().filter(|n| in_scope(job, n)).collect();
    candidates.sort_by(|a, b| a.id.cmp(&b.id));

    let resources = group_resources(tg);
    let mut best: Option<(f64, Chosen)> = None;
    let empty = NodeUsage::default();
    for node in candidates {
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
        let networks = match assign_ports(tg, node, used) {
            Ok(n) => n,
            Err(dim) => {
                exhausted(&mut metric, node, format!("network: {dim}"));
                continue;
            }
        };
        if used.cpu + resources.cpu > node.cpu_mhz {
            exhausted(&mut metric, node, "cpu".into());
            continue;
        }
        if used.memory + resources.memory > node.memory_mb {
            exhausted(&mut metric, node, "memory".into());
            continue;
        }
        let score = score(job, tg, node, used, resources);
        // Strictly better only: candidates come sorted by id, so ties keep the lowest id.
        if best.as_ref().is_none_or(|(s, _)| score > *s + 1e-9) {
            best = Some((
                score,
                Chosen {
                    node_id: node.id.clone(),
                    networks,
                    resources,
                },
            ));
        }
    }
    best.map(|(_, c)| c).ok_or(metric)
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
fn filter_reason(job: &Job, tg: &TaskGroup, node: &Node, used: &NodeUsage) -> Option<String> {
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
                .filter(|((j, g), _)| *j == job.id && (is_job || *g == tg.name))
                .map(|(_, n)| *n)
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

/// Checks static ports and assigns dynamic ones (lowest free port first, so plans are
/// reproducible), as Nomad's `NetworkIndex.AssignPorts`.
fn assign_ports(
    tg: &TaskGroup,
    node: &Node,
    used: &NodeUsage,
) -> Result<Vec<NetworkResource>, String> {
    let mut taken: BTreeSet<u16> = used.ports.clone();
    taken.extend(node.reserved_ports.iter().copied());
    let mut networks = tg.networks.clone();
    for n in &networks {
        for p in &n.reserved_ports {
            if p.value == 0 {
                continue;
            }
            if taken.contains(&p.value) && !p.ignore_collision {
                return Err(format!("reserved port collision {}={}", p.label, p.value));
            }
            taken.insert(p.value);
        }
    }
    for n in &mut networks {
        for p in &mut n.dynamic_ports {
            let free = (DYNAMIC_PORT_MIN..=DYNAMIC_PORT_MAX).find(|v| !taken.contains(v));
            let Some(v) = free else {
                return Err("dynamic port selection failed".into());
            };
            p.value = v;
            taken.insert(v);
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
    used: &NodeUsage,
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
    let mut scores = vec![binpack];
    let collisions = used
        .groups
        .get(&(job.id.clone(), tg.name.clone()))
        .copied()
        .unwrap_or(0);
    if collisions > 0 {
        scores.push(-f64::from(collisions + 1) / f64::from(tg.count.max(1)));
    }
    if let Some(affinity) = affinity_score(job, tg, node) {
        scores.push(affinity);
    }
    // Nomad's ScoreNormalizationIterator: the mean of the scores that apply.
    scores.iter().sum::<f64>() / scores.len() as f64
}

/// Nomad's node affinity score: the weights of the matching affinities over the sum of all
/// weights' magnitudes, in [-1, 1]; `None` when the job declares none.
fn affinity_score(job: &Job, tg: &TaskGroup, node: &Node) -> Option<f64> {
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
