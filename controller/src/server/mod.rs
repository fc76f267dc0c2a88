//! The server: owns the store, the broker and the workers, and is what the HTTP API, the
//! manifests source and the dev agent call. Every change becomes an evaluation written to the
//! store first (intent before action) and then handed to the broker; workers plan and apply.
//! Background loops: the heartbeat sweep (a node that misses its TTL goes `down`, its
//! allocations `lost`), and the `scheduled` tick that enqueues every job (dedup absorbs it).
//! [`LocalServer`] is the `ServerApi` a client in the same process talks to.

mod local;
#[cfg(test)]
mod tests;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::{info, warn};

use crate::broker::{Broker, BrokerConfig};
use crate::jobspec::Diagnostic;
use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::state::{JobRecord, JobRegistration, JobSource, SourceError, Store, StoreError};
use crate::structs::{
    Allocation, DrainStrategy, EvalTrigger, Evaluation, Job, JobType, Node, SchedulingEligibility,
    TaskEvent, unix_nanos,
};

pub use local::LocalServer;
pub(crate) use local::alloc_spec_of;

/// Nomad's `min_heartbeat_ttl`.
pub const MIN_HEARTBEAT_TTL: Duration = Duration::from_secs(10);
/// Nomad's `max_heartbeats_per_second`: past `min_heartbeat_ttl × this` nodes, the TTL grows
/// with the node count (nodes / this, in seconds), so heartbeats do not grow with the cluster.
pub const MAX_HEARTBEATS_PER_SECOND: f64 = 50.0;
/// Nomad's `heartbeat_grace`.
pub const HEARTBEAT_GRACE: Duration = Duration::from_secs(10);
/// Nomad's evaluation GC threshold.
pub const EVAL_GC_THRESHOLD: Duration = Duration::from_secs(3600);
/// Nomad's job GC threshold for stopped jobs.
pub const JOB_GC_THRESHOLD: Duration = Duration::from_secs(4 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("failed to create the data dir {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `state.db` lives here.
    pub data_dir: PathBuf,
    /// Workers planning in parallel (each on a different job).
    pub workers: usize,
    pub min_heartbeat_ttl: Duration,
    pub heartbeat_grace: Duration,
    /// How often every job is evaluated (`scheduled`), replacing what vanished unseen.
    pub scheduled_interval: Duration,
    /// How often missed heartbeats are looked for.
    pub heartbeat_sweep_interval: Duration,
    pub broker: BrokerConfig,
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            workers: 2,
            min_heartbeat_ttl: MIN_HEARTBEAT_TTL,
            heartbeat_grace: HEARTBEAT_GRACE,
            scheduled_interval: Duration::from_secs(30),
            heartbeat_sweep_interval: Duration::from_secs(1),
            broker: BrokerConfig::default(),
        }
    }
}

pub use crate::jobplan::JobPlan;

/// The control plane in one process.
pub struct Server {
    store: Arc<Store>,
    broker: Arc<Broker>,
    config: ServerConfig,
    metrics: Arc<Metrics>,
    liveness: Arc<Liveness>,
    /// Node id → when it is declared down without another heartbeat.
    heartbeats: Mutex<HashMap<String, Instant>>,
    /// What plans of many jobs share, at the index it was read (`plan_job`).
    plan_base: Mutex<Option<Arc<crate::jobplan::PlanBase>>>,
    /// Draining nodes whose deadline already forced a round of evaluations.
    forced_drains: Mutex<HashSet<String>>,
}

fn now() -> i64 {
    unix_nanos(SystemTime::now())
}

impl Server {
    /// Opens the store in `config.data_dir`, re-enqueues the evaluations a previous run left
    /// pending, and gives every ready node a fresh heartbeat deadline (Nomad does the same on
    /// leader election), so a restart neither loses work nor declares nodes down at once.
    pub fn open(config: ServerConfig) -> Result<Arc<Server>, ServerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = Store::open(&config.data_dir.join("state.db"))?;
        Server::with_store(Arc::new(store), config)
    }

    /// A server over an existing store (tests use an in-memory one).
    pub fn with_store(store: Arc<Store>, config: ServerConfig) -> Result<Arc<Server>, ServerError> {
        let broker = Arc::new(Broker::new(config.broker.clone()));
        let server = Arc::new(Server {
            store,
            broker,
            config,
            metrics: Arc::new(Metrics::new()),
            liveness: Arc::new(Liveness::default()),
            heartbeats: Mutex::new(HashMap::new()),
            plan_base: Mutex::new(None),
            forced_drains: Mutex::new(HashSet::new()),
        });
        // The workers' in-memory view of the cluster, built once here rather than by the
        // first evaluation (at 5,000 nodes and 50,000 allocations a full read takes ~0.1 s).
        server.store.rebuild_cluster_view()?;
        let pending = server
            .store
            .evals_by_status(crate::structs::EvalStatus::Pending)?;
        if !pending.is_empty() {
            info!(count = pending.len(), "resuming pending evaluations");
        }
        for eval in pending {
            server.broker.enqueue(eval);
        }
        let deadline = Instant::now() + server.ttl() + server.config.heartbeat_grace;
        for node in server.store.nodes()? {
            if node.status == crate::structs::NodeStatus::Ready {
                server.heartbeats_lock().insert(node.id, deadline);
            }
        }
        Ok(server)
    }

    fn heartbeats_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // Deadlines are plain data; a panic elsewhere cannot leave them inconsistent.
        self.heartbeats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The server's loops beat here; the agent's systemd watchdog reads it.
    pub fn liveness(&self) -> &Arc<Liveness> {
        &self.liveness
    }

    /// The `ServerApi` for a client in this process (the dev agent).
    pub fn local(self: &Arc<Self>) -> LocalServer {
        LocalServer::new(self.clone())
    }

    /// The heartbeat TTL handed to nodes: `min_heartbeat_ttl`, or nodes / 50 seconds when that
    /// is longer (Nomad's rate scaling: 5,000 nodes get 100 s).
    pub fn ttl(&self) -> Duration {
        let nodes = self.heartbeats_lock().len();
        let scaled = Duration::from_secs_f64(nodes as f64 / MAX_HEARTBEATS_PER_SECOND);
        self.config.min_heartbeat_ttl.max(scaled)
    }

    /// Writes `eval` (pending) and hands it to the broker.
    pub fn submit_eval(&self, eval: Evaluation) -> Result<Evaluation, ServerError> {
        let eval = self.store.upsert_eval(&eval)?;
        self.broker.enqueue(eval.clone());
        Ok(eval)
    }

    // ---- what the HTTP API and the manifests source call ---------------------------------

    /// `PUT /v1/jobs`, `drover job run` and a changed manifest all come here.
    pub fn register_job(
        &self,
        job: Job,
        source: JobSource,
    ) -> Result<JobRegistration, ServerError> {
        let reg = self.store.register_job(job, &source, now())?;
        info!(
            job_id = %reg.eval.job_id,
            eval_id = %reg.eval.id,
            version = reg.version,
            changed = reg.changed,
            "job registered"
        );
        self.broker.enqueue(reg.eval.clone());
        Ok(reg)
    }

    /// `DELETE /v1/job/:id`, `drover job stop`, a removed manifest. With `source`, only the
    /// job's owner may do it.
    pub fn deregister_job(
        &self,
        namespace: &str,
        job_id: &str,
        purge: bool,
        source: Option<&JobSource>,
    ) -> Result<Evaluation, ServerError> {
        let eval = self
            .store
            .deregister_job(namespace, job_id, purge, source, now())?;
        info!(job_id, eval_id = %eval.id, purge, "job deregistered");
        self.broker.enqueue(eval.clone());
        Ok(eval)
    }

    /// Records that a manifest failed to parse; the job it held keeps running as it was.
    pub fn record_source_error(
        &self,
        path: &Path,
        diagnostics: &[Diagnostic],
    ) -> Result<(), ServerError> {
        let rows: Vec<(u32, u32, String, String)> = diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| (d.pos.line, d.pos.col, d.field.clone(), d.message.clone()))
            .collect();
        self.store.record_source_error(path, &rows, now())?;
        Ok(())
    }

    pub fn clear_source_error(&self, path: &Path) -> Result<(), ServerError> {
        Ok(self.store.clear_source_error(path)?)
    }

    /// Enqueues an evaluation for every job that is not stopped-and-settled; returns their ids.
    pub fn enqueue_all(
        &self,
        trigger: EvalTrigger,
        node_id: Option<&str>,
    ) -> Result<Vec<String>, ServerError> {
        let mut ids = Vec::new();
        for rec in self.store.jobs()? {
            let mut eval = Evaluation::new(&rec.job.id, &rec.job.namespace, trigger, now());
            eval.priority = rec.job.priority;
            eval.node_id = node_id.map(str::to_string);
            ids.push(self.submit_eval(eval)?.id);
        }
        Ok(ids)
    }

    /// What registering `job` would do, without writing anything (`drover job plan` against a
    /// running agent, `PUT /v1/job/:id/plan`): the same `reconcile` a worker runs, on the
    /// current state. With `remove`, what stopping it would do (its file deleted).
    pub fn plan_job(&self, job: &Job, remove: bool) -> Result<JobPlan, ServerError> {
        let (plan, _) = self
            .plan_base()?
            .plan(&self.store, job, remove, SystemTime::now())?;
        Ok(plan)
    }

    /// The nodes and busy allocations plans share, read again only when the index moved:
    /// `drover job plan DIR` asks for one plan per file in a row.
    fn plan_base(&self) -> Result<Arc<crate::jobplan::PlanBase>, ServerError> {
        let index = self.store.index();
        let mut cached = self.plan_base.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(base) = cached.as_ref().filter(|b| b.index == index) {
            return Ok(base.clone());
        }
        let base = Arc::new(crate::jobplan::PlanBase::read(&self.store)?);
        *cached = Some(base.clone());
        Ok(base)
    }

    /// `drover node eligibility -enable|-disable`; returns the node and the evaluations it
    /// created (becoming eligible re-evaluates every job: capacity appeared).
    pub fn set_node_eligibility(
        &self,
        node_id: &str,
        eligible: bool,
    ) -> Result<(Node, Vec<String>), ServerError> {
        let eligibility = if eligible {
            SchedulingEligibility::Eligible
        } else {
            SchedulingEligibility::Ineligible
        };
        let node = self.store.set_node_eligibility(node_id, eligibility)?;
        info!(
            node_id,
            eligibility = eligibility.as_str(),
            "node eligibility set"
        );
        let evals = if eligible {
            self.enqueue_all(EvalTrigger::NodeUpdate, Some(node_id))?
        } else {
            Vec::new()
        };
        Ok((node, evals))
    }

    /// `drover node drain -enable|-disable`: a draining node is ineligible and every job with
    /// an allocation on it gets a `node-drain` evaluation; the planner migrates them
    /// (`docs/cluster-operations.md`). `None` cancels a drain; the node becomes eligible again
    /// only with `mark_eligible`. Returns the node and the evaluations created.
    pub fn set_node_drain(
        &self,
        node_id: &str,
        strategy: Option<DrainStrategy>,
        mark_eligible: bool,
    ) -> Result<(Node, Vec<String>), ServerError> {
        let enable = strategy.is_some();
        let node = self
            .store
            .set_node_drain(node_id, strategy, mark_eligible, now())?;
        self.forced_drains_lock().remove(node_id);
        info!(node_id, drain = enable, "node drain set");
        let evals = if enable {
            self.drain_evals(node_id)?
        } else if mark_eligible {
            self.enqueue_all(EvalTrigger::NodeUpdate, Some(node_id))?
        } else {
            Vec::new()
        };
        Ok((node, evals))
    }

    /// One `node-drain` evaluation per job with a live allocation on the node.
    fn drain_evals(&self, node_id: &str) -> Result<Vec<String>, ServerError> {
        let mut jobs = std::collections::BTreeSet::new();
        for a in self.store.allocs_by_node(node_id)? {
            if !a.terminal() {
                jobs.insert((a.namespace, a.job_id));
            }
        }
        let mut ids = Vec::new();
        for (ns, job_id) in jobs {
            let mut eval = Evaluation::new(&job_id, &ns, EvalTrigger::NodeDrain, now());
            eval.node_id = Some(node_id.to_string());
            ids.push(self.submit_eval(eval)?.id);
        }
        Ok(ids)
    }

    /// The drainer's pass (every heartbeat sweep): a drain whose deadline passed gets one more
    /// round of evaluations, which move everything left; a drain with nothing left to move is
    /// complete, and the node stays ineligible. Returns the nodes whose drain completed.
    pub fn drain_tick(&self) -> Result<Vec<String>, ServerError> {
        let now = now();
        let mut completed = Vec::new();
        // Whether a job is a system job, read once per pass: this runs every sweep, and a
        // node's allocations mostly share a few jobs.
        let mut system_jobs: HashMap<(String, String), bool> = HashMap::new();
        for node in self.store.draining_nodes()? {
            let Some(strategy) = &node.drain_strategy else {
                continue;
            };
            let mut left = 0;
            for a in self.store.allocs_by_node(&node.id)? {
                if a.server_terminal() || a.client_terminal() {
                    continue;
                }
                if strategy.ignore_system_jobs {
                    let system = match system_jobs.entry((a.namespace, a.job_id)) {
                        Entry::Occupied(e) => *e.get(),
                        Entry::Vacant(e) => {
                            let (ns, id) = e.key();
                            let system = self.store.job(ns, id)?.is_some_and(|r| {
                                matches!(r.job.job_type, JobType::System | JobType::Sysbatch)
                            });
                            *e.insert(system)
                        }
                    };
                    if system {
                        continue;
                    }
                }
                left += 1;
            }
            if left == 0 {
                self.store.complete_node_drain(&node.id, now)?;
                self.forced_drains_lock().remove(&node.id);
                info!(node_id = %node.id, "node drain complete");
                completed.push(node.id);
                continue;
            }
            if strategy.forced(now) && self.forced_drains_lock().insert(node.id.clone()) {
                warn!(node_id = %node.id, allocs = left, "drain deadline reached; forcing the remaining allocations off the node");
                self.drain_evals(&node.id)?;
            }
        }
        Ok(completed)
    }

    fn forced_drains_lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A set of node ids; a panic elsewhere cannot leave it inconsistent.
        self.forced_drains.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- reads ---------------------------------------------------------------------------

    pub fn jobs(&self) -> Result<Vec<JobRecord>, ServerError> {
        Ok(self.store.jobs()?)
    }
    pub fn job(&self, namespace: &str, job_id: &str) -> Result<Option<JobRecord>, ServerError> {
        Ok(self.store.job(namespace, job_id)?)
    }
    pub fn job_versions(&self, namespace: &str, job_id: &str) -> Result<Vec<Job>, ServerError> {
        Ok(self.store.job_versions(namespace, job_id)?)
    }
    pub fn allocs_by_job(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Result<Vec<Allocation>, ServerError> {
        Ok(self.store.allocs_by_job(namespace, job_id)?)
    }
    pub fn allocs_by_node(&self, node_id: &str) -> Result<Vec<Allocation>, ServerError> {
        Ok(self.store.allocs_by_node(node_id)?)
    }
    pub fn alloc(&self, alloc_id: &str) -> Result<Option<Allocation>, ServerError> {
        Ok(self.store.alloc(alloc_id)?)
    }
    pub fn allocs_by_id_prefix(&self, prefix: &str) -> Result<Vec<Allocation>, ServerError> {
        Ok(self.store.allocs_by_id_prefix(prefix)?)
    }
    pub fn evals(&self) -> Result<Vec<Evaluation>, ServerError> {
        Ok(self.store.evals()?)
    }
    pub fn evals_by_job(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Result<Vec<Evaluation>, ServerError> {
        Ok(self.store.evals_by_job(namespace, job_id)?)
    }
    pub fn eval(&self, eval_id: &str) -> Result<Option<Evaluation>, ServerError> {
        Ok(self.store.eval(eval_id)?)
    }
    pub fn nodes(&self) -> Result<Vec<Node>, ServerError> {
        Ok(self.store.nodes()?)
    }
    pub fn node(&self, node_id: &str) -> Result<Option<Node>, ServerError> {
        Ok(self.store.node(node_id)?)
    }
    pub fn task_events(&self, alloc_id: &str) -> Result<Vec<(String, TaskEvent)>, ServerError> {
        Ok(self.store.task_events(alloc_id)?)
    }
    pub fn source_errors(&self) -> Result<Vec<SourceError>, ServerError> {
        Ok(self.store.source_errors()?)
    }

    // ---- heartbeats ----------------------------------------------------------------------

    /// Resets a node's deadline; returns the TTL until the next heartbeat is due.
    pub(crate) fn touch_heartbeat(&self, node_id: &str) -> Duration {
        let ttl = self.ttl();
        self.heartbeats_lock().insert(
            node_id.to_string(),
            Instant::now() + ttl + self.config.heartbeat_grace,
        );
        ttl
    }

    /// Declares down every node whose deadline passed; returns their ids.
    pub fn sweep_heartbeats(&self) -> Vec<String> {
        let now_i = Instant::now();
        let expired: Vec<String> = {
            let mut hb = self.heartbeats_lock();
            let expired: Vec<String> = hb
                .iter()
                .filter(|(_, at)| **at <= now_i)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &expired {
                hb.remove(id);
            }
            expired
        };
        for node_id in &expired {
            match self
                .store
                .mark_node_down(node_id, "node heartbeat missed", now())
            {
                Ok(evals) => {
                    warn!(node_id = %node_id, jobs = evals.len(), "node missed its heartbeat; marked down");
                    for e in evals {
                        self.broker.enqueue(e);
                    }
                }
                Err(e) => warn!(node_id = %node_id, error = %e, "failed to mark a node down"),
            }
        }
        expired
    }

    /// Spawns the workers, the heartbeat sweep and the scheduled tick, and runs until
    /// `shutdown` resolves; then stops them and waits for them (mini-redis' shape).
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let mut tasks = tokio::task::JoinSet::new();
        for id in 0..self.config.workers.max(1) {
            tasks.spawn(crate::worker::run(
                id,
                self.store.clone(),
                self.broker.clone(),
                crate::worker::WorkerHooks {
                    metrics: self.metrics.clone(),
                    liveness: self.liveness.clone(),
                },
                stopped(stop_rx.clone()),
            ));
        }
        {
            let server = self.clone();
            let stop = stopped(stop_rx.clone());
            tasks.spawn(async move {
                tokio::pin!(stop);
                let mut tick = tokio::time::interval(server.config.heartbeat_sweep_interval);
                loop {
                    tokio::select! {
                        _ = &mut stop => {
                            server.liveness.remove("heartbeat sweep");
                            return;
                        }
                        _ = tick.tick() => {
                            server.sweep_heartbeats();
                            if let Err(e) = server.drain_tick() {
                                warn!(error = %e, "failed to advance node drains");
                            }
                            server.liveness.beat("heartbeat sweep");
                        }
                    }
                }
            });
        }
        {
            let server = self.clone();
            let stop = stopped(stop_rx.clone());
            tasks.spawn(async move {
                tokio::pin!(stop);
                let start = Instant::now() + server.config.scheduled_interval;
                let mut tick = tokio::time::interval_at(start, server.config.scheduled_interval);
                loop {
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tick.tick() => server.scheduled_tick(),
                    }
                }
            });
        }
        shutdown.await;
        info!("server shutting down");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
    }

    /// The periodic pass: every job gets a `scheduled` evaluation; finished evaluations older
    /// than 1 h and jobs stopped for 4 h with nothing left running are collected.
    pub fn scheduled_tick(&self) {
        if let Err(e) = self.enqueue_all(EvalTrigger::Scheduled, None) {
            warn!(error = %e, "failed to enqueue scheduled evaluations");
        }
        let cutoff = now() - EVAL_GC_THRESHOLD.as_nanos() as i64;
        if let Err(e) = self.store.gc_evals(cutoff) {
            warn!(error = %e, "failed to collect old evaluations");
        }
        let cutoff = now() - JOB_GC_THRESHOLD.as_nanos() as i64;
        match self.store.gc_jobs(cutoff) {
            Ok(jobs) if !jobs.is_empty() => info!(jobs = ?jobs, "collected stopped jobs"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "failed to collect stopped jobs"),
        }
    }
}
