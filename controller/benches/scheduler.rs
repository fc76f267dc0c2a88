//! Scheduler and server figures at cluster scale, printed rather than asserted (timings on a
//! shared machine make poor pass/fail tests). One thread, release build:
//!
//! ```sh
//! cargo bench -p drover-controller --bench scheduler            # place, small, tick
//! cargo bench -p drover-controller --bench scheduler -- memory  # its own process, for RSS
//! ```
//!
//! - place: one job of 10,000 allocations on 5,000 simulated nodes (target ≥ 20,000/s).
//! - small: 1,000 jobs of 10 allocations, planned one after another, each seeing every
//!   allocation placed before it (target ≥ 20,000/s): first as separate plans over a snapshot
//!   of every allocation, then against one `NodeIndex` kept up to date across the plans
//!   (asserted to place exactly the same).
//! - tick: 10,000 jobs with 50,000 allocations and nothing to change, every job planned once
//!   against one node index (target < 20 ms).
//! - memory: a server (SQLite store, heartbeat table, broker, workers) holding 5,000 nodes
//!   heartbeating every 10 s and 50,000 allocations of 10,000 jobs: the process's VmRSS (the
//!   workers' kept cluster view included), then how long a full `Store::snapshot` of that
//!   cluster takes to read (what a worker read per evaluation before the view).
//! - evals: a store on disk holding 5,000 nodes and 50,000 allocations of 10,000 jobs, then
//!   new 10-allocation jobs each registered and processed by `worker::process` (read, plan,
//!   apply) against the store's kept cluster view: evaluations per second, and what one
//!   evaluation's read of the store costs (`BENCH_EVALS=N` evaluations, default 50).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use drover::scheduler::{NodeIndex, Plan, ReconcileInput, reconcile, reconcile_indexed};
use drover::structs::mock::{self, MockAlloc, MockJob, MockNode};
use drover::structs::{Allocation, ClientStatus, Job, Node, unix_nanos};

const NODES: usize = 5_000;

/// Sorted by id, as the store's snapshot gives them.
fn nodes() -> Vec<Node> {
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| {
            mock::node()
                .id(&format!("{:08x}-0000-4000-8000-{i:012}", i * 7919))
                .with(|n| n.name = format!("node-{i}"))
        })
        .collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    nodes
}

fn job(id: &str, count: u32) -> Job {
    mock::job().count(count).resources(100, 128).with(|j| {
        j.id = id.into();
        j.name = id.into();
    })
}

/// What the plan applier would write for the plan's placements: running allocations.
fn applied(job: &Job, plan: &Plan, seq: &mut u64) -> Vec<Allocation> {
    plan.place
        .iter()
        .map(|p| {
            *seq += 1;
            mock::alloc(job, 0)
                .id(&format!("{:016x}-alloc", *seq))
                .node(&p.node_id)
                .with(|a| {
                    a.name = p.name.clone();
                    a.networks = p.networks.clone();
                    a.resources = p.resources;
                })
        })
        .collect()
}

fn plan(job: &Job, existing: &[Allocation], nodes: &[Node]) -> Plan {
    let versions = BTreeMap::from([(job.version, job.clone())]);
    reconcile(&ReconcileInput {
        job,
        versions: &versions,
        existing,
        nodes,
        now: SystemTime::now(),
    })
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64())
}

fn place(nodes: &[Node]) {
    let big = job("big", 10_000);
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let p = plan(&big, &[], nodes);
        let d = t.elapsed();
        assert_eq!(
            p.place.len(),
            10_000,
            "every allocation placed: {:?}",
            p.failed_tg
        );
        let used: std::collections::BTreeSet<&str> =
            p.place.iter().map(|p| p.node_id.as_str()).collect();
        if d < best {
            best = d;
            println!(
                "place: 1 job x 10,000 allocations on {NODES} nodes: {:.1} ms, {} placements/s ({} distinct nodes used)",
                d.as_secs_f64() * 1e3,
                rate(10_000, d),
                used.len()
            );
        }
    }
}

fn small(nodes: &[Node]) {
    let jobs: Vec<Job> = (0..1_000)
        .map(|i| job(&format!("small-{i:04}"), 10))
        .collect();

    // Separate plans: each rebuilds usage from every allocation and filters every node.
    let mut existing: Vec<Allocation> = Vec::with_capacity(10_000);
    let mut seq = 0;
    let mut planning = Duration::ZERO;
    let mut separate = Vec::with_capacity(jobs.len());
    for j in &jobs {
        let t = Instant::now();
        let p = plan(j, &existing, nodes);
        planning += t.elapsed();
        assert_eq!(p.place.len(), 10, "{:?}", p.failed_tg);
        existing.extend(applied(j, &p, &mut seq));
        separate.push(p);
    }
    println!(
        "small: 1,000 jobs x 10 allocations on {NODES} nodes, separate plans: {:.1} ms planning, {} placements/s",
        planning.as_secs_f64() * 1e3,
        rate(10_000, planning)
    );

    // One index across the plans, told what each plan wrote (as the plan applier would);
    // a plan gets only its own job's allocations (none: every job is new). Timed: planning
    // and keeping the index up to date.
    let mut index = NodeIndex::with_allocs(nodes, &[]);
    let mut seq = 0;
    let mut planning = Duration::ZERO;
    for (j, expected) in jobs.iter().zip(&separate) {
        let versions = BTreeMap::from([(j.version, j.clone())]);
        let t = Instant::now();
        let p = reconcile_indexed(
            &ReconcileInput {
                job: j,
                versions: &versions,
                existing: &[],
                nodes,
                now: SystemTime::now(),
            },
            &index,
        );
        let written = applied(j, &p, &mut seq);
        index.update_allocs(&written);
        planning += t.elapsed();
        assert_eq!(
            p.place, expected.place,
            "{}: the shared index changes no placement",
            j.id
        );
    }
    println!(
        "small: 1,000 jobs x 10 allocations on {NODES} nodes, one shared index: {:.1} ms planning, {} placements/s",
        planning.as_secs_f64() * 1e3,
        rate(10_000, planning)
    );
}

fn tick(nodes: &[Node]) {
    const JOBS: usize = 10_000;
    let jobs: Vec<Job> = (0..JOBS)
        .map(|i| job(&format!("steady-{i:05}"), 5))
        .collect();
    let versions: Vec<BTreeMap<u64, Job>> = jobs
        .iter()
        .map(|j| BTreeMap::from([(j.version, j.clone())]))
        .collect();
    let mut by_job: Vec<Vec<Allocation>> = Vec::with_capacity(JOBS);
    for (k, j) in jobs.iter().enumerate() {
        by_job.push(
            (0..5u32)
                .map(|i| {
                    let n = (k * 5 + i as usize) % NODES;
                    mock::alloc(j, i)
                        .id(&format!("{k:08}-{i}"))
                        .node(&nodes[n].id)
                        .client_status(ClientStatus::Running)
                })
                .collect(),
        );
    }
    let total: usize = by_job.iter().map(Vec::len).sum();
    let index = NodeIndex::new(nodes);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let now = SystemTime::now();
        let t = Instant::now();
        let mut changes = 0;
        for (k, j) in jobs.iter().enumerate() {
            let p = reconcile_indexed(
                &ReconcileInput {
                    job: j,
                    versions: &versions[k],
                    existing: &by_job[k],
                    nodes,
                    now,
                },
                &index,
            );
            changes += usize::from(!p.is_noop());
        }
        let d = t.elapsed();
        assert_eq!(changes, 0, "a steady state plans nothing");
        best = best.min(d);
    }
    println!(
        "tick: {JOBS} jobs / {total} allocations, nothing to change: {:.1} ms (best of 5)",
        best.as_secs_f64() * 1e3
    );
}

fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn memory() {
    use drover::server::{Server, ServerConfig};
    use drover_runtime::client::ServerApi;

    let (base, _) = rss_kb();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::open(ServerConfig::new(dir.path())).expect("server");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let local = server.local();
    let t = Instant::now();
    let mut infos = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let mut info = mock::node_info();
        info.id = format!("{:08x}-0000-4000-8000-{i:012}", i * 7919);
        info.name = format!("node-{i}");
        infos.push(info);
    }
    let ids: Vec<String> = infos.iter().map(|i| i.id.clone()).collect();
    rt.block_on(async {
        for info in infos {
            local.register_node(info).await.expect("register");
        }
    });
    load_jobs(server.store(), &ids, "mem", None);
    println!(
        "memory: loaded 5,000 nodes and 50,000 allocations in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Heartbeats as 5,000 clients with a 10 s TTL send them, for 20 s, with the server's
    // workers, heartbeat sweep and drainer running.
    // Loading took longer than a heartbeat TTL: every node beats once before the sweep runs,
    // or the first sweep would declare the early ones down.
    rt.block_on(async {
        for id in &ids {
            local.heartbeat(id).await.expect("heartbeat");
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(server.clone().run(async move {
        let _ = stop_rx.await;
    }));
    let beats = rt.block_on(async {
        let mut beats = 0u64;
        let start = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while start.elapsed() < Duration::from_secs(20) {
            tick.tick().await;
            // 1/100 of the nodes every 100 ms: each node once every 10 s.
            let slot = (start.elapsed().as_millis() / 100 % 100) as usize;
            for id in ids.iter().skip(slot).step_by(100) {
                local.heartbeat(id).await.expect("heartbeat");
                beats += 1;
            }
        }
        beats
    });
    let (rss, hwm) = rss_kb();
    let down = server
        .nodes()
        .expect("nodes")
        .iter()
        .filter(|n| n.status != drover::structs::NodeStatus::Ready)
        .count();
    assert_eq!(down, 0, "every node kept its heartbeat");
    let _ = stop_tx.send(());
    let _ = rt.block_on(running);
    let db = std::fs::metadata(dir.path().join("state.db")).map_or(0, |m| m.len());
    println!(
        "memory: {beats} heartbeats in 20 s; VmRSS {:.1} MiB (peak {:.1} MiB, {:.1} MiB before the server); state.db {:.1} MiB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        base as f64 / 1024.0,
        db as f64 / (1024.0 * 1024.0)
    );
    // What a worker read before every plan until the store kept a cluster view: the whole
    // cluster from SQLite, decoded. Last, so the RSS above is the idle server's, not a
    // snapshot's.
    let mut best = Duration::MAX;
    for k in 0..5 {
        let t = Instant::now();
        let snap = server
            .store()
            .snapshot("default", &format!("mem-{k:05}"))
            .expect("snapshot");
        best = best.min(t.elapsed());
        assert_eq!(
            snap.allocs.len(),
            50_000,
            "the snapshot holds every allocation"
        );
    }
    println!(
        "memory: a full Store::snapshot of {NODES} nodes and 50,000 allocations: {:.1} ms (best of 5)",
        best.as_secs_f64() * 1e3
    );
}

/// The store `memory` and `evals` load: 5,000 nodes, 10,000 jobs of 5 allocations each.
fn load_store(path: &std::path::Path) -> drover::state::Store {
    use drover::state::Store;

    let store = Store::open(path).expect("store");
    let nodes = nodes();
    for n in &nodes {
        store.upsert_node(n.clone()).expect("node");
    }
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    load_jobs(&store, &ids, "load", Some(ClientStatus::Running));
    store
}

/// 10,000 jobs `{tag}-NNNNN` of 5 allocations each, spread over `node_ids`, written as a
/// completed plan; the allocations get `client_status` when given (else they stay pending).
fn load_jobs(
    store: &drover::state::Store,
    node_ids: &[String],
    tag: &str,
    client_status: Option<ClientStatus>,
) {
    use drover::state::{JobSource, PlanWrite};

    let now = unix_nanos(SystemTime::now());
    for k in 0..10_000usize {
        let j = job(&format!("{tag}-{k:05}"), 5);
        let reg = store
            .register_job(j.clone(), &JobSource::Api, now)
            .expect("job");
        let allocs = (0..5u32)
            .map(|i| {
                let a = mock::alloc(&j, i)
                    .id(&format!("{k:08}-{i}-{tag}"))
                    .node(&node_ids[(k * 5 + i as usize) % node_ids.len()]);
                match client_status {
                    Some(cs) => a.client_status(cs),
                    None => a,
                }
            })
            .collect();
        let mut done = reg.eval.clone();
        done.status = drover::structs::EvalStatus::Complete;
        store
            .commit_plan(
                &j.id,
                PlanWrite {
                    allocs,
                    evals: vec![done],
                    guard: None,
                },
            )
            .expect("allocs");
    }
}

fn evals() {
    use drover::state::JobSource;

    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let store = load_store(&dir.path().join("state.db"));
    println!(
        "evals: loaded {NODES} nodes and 50,000 allocations in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    store.rebuild_cluster_view().expect("view");
    println!(
        "evals: building the workers' cluster view (once, at server start): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let rounds: usize = std::env::var("BENCH_EVALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let now = unix_nanos(SystemTime::now());
    let mut working = Duration::ZERO;
    let mut placed = 0;
    for k in 0..rounds {
        let reg = store
            .register_job(job(&format!("new-{k:05}"), 10), &JobSource::Api, now)
            .expect("job");
        let t = Instant::now();
        let done = drover::worker::process(&store, &reg.eval).expect("process");
        working += t.elapsed();
        placed += done.placed;
    }
    assert_eq!(placed, rounds * 10, "every allocation placed");
    println!(
        "evals: {rounds} evaluations of a new 10-allocation job through worker::process (read, plan, apply): {:.1} ms each, {:.1} evaluations/s",
        working.as_secs_f64() * 1e3 / rounds as f64,
        rounds as f64 / working.as_secs_f64()
    );
    // Two workers at once, as the server runs them: each plan may be refused as stale when the
    // other's write lands on its nodes first, and a write copies the view's node map while the
    // other holds a snapshot.
    let regs: Vec<_> = (0..rounds)
        .map(|k| {
            store
                .register_job(job(&format!("two-{k:05}"), 10), &JobSource::Api, now)
                .expect("job")
        })
        .collect();
    let t = Instant::now();
    let placed: usize = std::thread::scope(|s| {
        let workers: Vec<_> = regs
            .chunks(rounds.div_ceil(2))
            .map(|chunk| {
                let store = &store;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|r| {
                            drover::worker::process(store, &r.eval)
                                .expect("process")
                                .placed
                        })
                        .sum::<usize>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    let took = t.elapsed();
    assert_eq!(placed, rounds * 10, "every allocation placed");
    println!(
        "evals: the same with two workers on two threads: {:.1} evaluations/s",
        rounds as f64 / took.as_secs_f64()
    );
    let mut best = Duration::MAX;
    let mut total = Duration::ZERO;
    for k in 0..5 {
        let t = Instant::now();
        let snap = store
            .job_snapshot("default", &format!("new-{k:05}"))
            .expect("snapshot");
        let d = t.elapsed();
        best = best.min(d);
        total += d;
        assert_eq!((snap.allocs.len(), snap.cluster.nodes().len()), (10, NODES));
    }
    println!(
        "evals: one evaluation's read of the store (Store::job_snapshot: the job's rows, the kept view shared): {:.3} ms best, {:.3} ms mean of 5",
        best.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3 / 5.0
    );
    let t = Instant::now();
    let full = store.snapshot("default", "new-00000").expect("snapshot");
    assert!(full.allocs.len() >= 50_000);
    println!(
        "evals: for comparison, a full Store::snapshot (what each evaluation read before): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |name: &str| {
        if name == "memory" {
            which.iter().any(|w| w == name)
        } else {
            which.is_empty() || which.iter().any(|w| w == name)
        }
    };
    if want("memory") {
        memory();
        return;
    }
    if which.iter().any(|w| w == "evals") {
        evals();
        return;
    }
    let nodes = nodes();
    if want("place") {
        place(&nodes);
    }
    if want("small") {
        small(&nodes);
    }
    if want("tick") {
        tick(&nodes);
    }
}
