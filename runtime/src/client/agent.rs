//! The client loop: fingerprint the node, re-attach what already runs, register, heartbeat,
//! long-poll the node's allocations, apply [`sync`](super::sync::sync), and report task state
//! changes in batches. The server being unreachable stops none of it: workloads keep running
//! and calls are retried with back-off. Shutdown leaves every workload running.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::sync::{RunningAlloc, sync};
use super::{ApiError, ServerApi};
use crate::allocrunner::{AllocRunner, AllocRunnerArgs};
use crate::artifact::ArtifactLimits;
use crate::driver::docker::{DockerDriver, DockerDriverConfig};
use crate::driver::raw_exec::RawExecDriver;
use crate::driver::{Driver, Drivers, LogChunks, LogStream, NodeEnv, TaskHandle, TaskStatus};
use crate::spec::{AllocSpec, AllocUpdate, DesiredStatus, DriverInfo, NodeInfo};
use crate::taskrunner::now_nanos;

/// How long one blocking query for allocations may wait on the server.
const ALLOCS_WAIT: Duration = Duration::from_secs(30);
/// Updates are gathered this long before one call reports them all.
const UPDATE_BATCH: Duration = Duration::from_millis(50);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Why the client could not run.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("failed to {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to find allocation {alloc_id} on this node")]
    UnknownAlloc { alloc_id: String },
    #[error("failed to find task {task} of allocation {alloc_id} on this node (not started yet?)")]
    UnknownTask { alloc_id: String, task: String },
    #[error("failed to read the logs of task {task} of allocation {alloc_id}: {source}")]
    Logs {
        alloc_id: String,
        task: String,
        #[source]
        source: Box<crate::driver::DriverError>,
    },
    #[error("failed to set up the {driver} driver: {source}")]
    Driver {
        driver: &'static str,
        #[source]
        source: Box<crate::driver::DriverError>,
    },
}

/// How the client agent is set up (Nomad's `client {}` block and plugin configs).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Holds the node id, the allocations' local state and their directories.
    pub data_dir: PathBuf,
    pub node_name: String,
    pub datacenter: String,
    pub region: String,
    pub node_class: String,
    pub node_pool: String,
    /// The address task ports bind on and services advertise.
    pub address: String,
    /// This agent's HTTP address, `host:port`, as the server should show it.
    pub http_addr: String,
    pub meta: BTreeMap<String, String>,
    /// `None`: no docker driver.
    pub docker: Option<DockerDriverConfig>,
    /// Nomad's `plugin "raw_exec" { config { enabled = true } }`.
    pub raw_exec: bool,
    pub reserved_ports: Vec<u16>,
    /// How often drivers are fingerprinted again (a dead engine shows up as unhealthy).
    pub fingerprint_interval: Duration,
    /// Nomad's `client { artifact { … } }` limits.
    pub artifact_limits: ArtifactLimits,
}

/// Overrides the 15 s fingerprint interval of [`ClientConfig::dev`], in milliseconds (tests).
pub const FINGERPRINT_INTERVAL_ENV: &str = "DROVER_FINGERPRINT_INTERVAL_MS";

impl ClientConfig {
    /// What `drover agent -dev` uses: docker if an engine answers, raw_exec on, ports on
    /// 127.0.0.1, datacenter `dc1`, drivers fingerprinted every 15 s (or every
    /// `DROVER_FINGERPRINT_INTERVAL_MS` milliseconds when it is set to a positive number).
    pub fn dev(data_dir: impl Into<PathBuf>) -> ClientConfig {
        let host = hostname();
        ClientConfig {
            data_dir: data_dir.into(),
            node_name: host,
            datacenter: "dc1".into(),
            region: "global".into(),
            node_class: String::new(),
            node_pool: "default".into(),
            address: "127.0.0.1".into(),
            http_addr: "127.0.0.1:4646".into(),
            meta: BTreeMap::new(),
            docker: Some(DockerDriverConfig::default()),
            raw_exec: true,
            reserved_ports: vec![],
            fingerprint_interval: std::env::var(FINGERPRINT_INTERVAL_ENV)
                .ok()
                .and_then(|ms| ms.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map_or(Duration::from_secs(15), Duration::from_millis),
            artifact_limits: ArtifactLimits::default(),
        }
    }
}

/// What the server-facing loops and the event pump share.
type Slots = Arc<Mutex<BTreeMap<String, Slot>>>;

/// What the node holds for one allocation.
enum Slot {
    Live(Arc<AllocRunner>),
    /// Finished before this agent started (known from the data dir): kept so it is not run
    /// again, until the server forgets it.
    Done {
        modify_index: u64,
    },
}

/// A node agent. Build it with [`Client::new`], then [`Client::run`] it.
pub struct Client {
    config: ClientConfig,
    node_id: String,
    drivers: Drivers,
    docker: Option<Arc<DockerDriver>>,
    slots: Slots,
}

/// A cheap, cloneable view of a running client for the agent's HTTP API: allocation status
/// and task logs, straight from the node.
#[derive(Clone)]
pub struct ClientHandle {
    node_id: String,
    slots: Slots,
    drivers: Drivers,
}

impl ClientHandle {
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// What the node last derived for `alloc_id` (client status, task states and events).
    pub fn alloc_status(&self, alloc_id: &str) -> Option<AllocUpdate> {
        match self
            .slots
            .lock()
            .expect("slots lock poisoned")
            .get(alloc_id)
        {
            Some(Slot::Live(r)) => Some(r.status()),
            _ => None,
        }
    }

    /// The output of `task` of `alloc_id` (`drover alloc logs`).
    pub async fn logs(
        &self,
        alloc_id: &str,
        task: &str,
        stream: LogStream,
        follow: bool,
        tail: Option<usize>,
    ) -> Result<LogChunks, ClientError> {
        let runner = match self
            .slots
            .lock()
            .expect("slots lock poisoned")
            .get(alloc_id)
        {
            Some(Slot::Live(r)) => r.clone(),
            _ => {
                return Err(ClientError::UnknownAlloc {
                    alloc_id: alloc_id.to_string(),
                });
            }
        };
        let handle = runner
            .task_handle(task)
            .ok_or_else(|| ClientError::UnknownTask {
                alloc_id: alloc_id.to_string(),
                task: task.to_string(),
            })?;
        let driver = self
            .drivers
            .get(&handle.driver)
            .ok_or_else(|| ClientError::UnknownTask {
                alloc_id: alloc_id.to_string(),
                task: task.to_string(),
            })?;
        driver
            .logs(&handle, stream, follow, tail)
            .await
            .map_err(|source| ClientError::Logs {
                alloc_id: alloc_id.to_string(),
                task: task.to_string(),
                source: Box::new(source),
            })
    }
}

impl Client {
    /// Reads (or creates) the node id in the data dir and sets up the drivers.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let node_id = load_node_id(&config.data_dir)?;
        let mut drivers = Drivers::new();
        let mut docker = None;
        if let Some(cfg) = &config.docker {
            let d = Arc::new(DockerDriver::connect(cfg.clone()).map_err(|source| {
                ClientError::Driver {
                    driver: "docker",
                    source: Box::new(source),
                }
            })?);
            drivers.insert("docker".into(), d.clone() as Arc<dyn Driver>);
            docker = Some(d);
        }
        if config.raw_exec {
            drivers.insert(
                "raw_exec".into(),
                Arc::new(RawExecDriver::new(config.data_dir.clone())) as Arc<dyn Driver>,
            );
        }
        Ok(Client {
            config,
            node_id,
            drivers,
            docker,
            slots: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    /// Adds (or replaces) a driver, e.g. a `MockDriver` in tests.
    pub fn with_driver(mut self, name: &str, driver: Arc<dyn Driver>) -> Client {
        if name == "docker" {
            self.docker = None;
        }
        self.drivers.insert(name.to_string(), driver);
        self
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// A view for the agent's API; valid before, during and after [`Client::run`]. Take it
    /// after every `with_driver`.
    pub fn handle(&self) -> ClientHandle {
        ClientHandle {
            node_id: self.node_id.clone(),
            slots: self.slots.clone(),
            drivers: self.drivers.clone(),
        }
    }

    fn node_env(&self) -> NodeEnv {
        NodeEnv {
            node_id: self.node_id.clone(),
            name: self.config.node_name.clone(),
            datacenter: self.config.datacenter.clone(),
            region: self.config.region.clone(),
            node_class: self.config.node_class.clone(),
            node_pool: self.config.node_pool.clone(),
            address: self.config.address.clone(),
            attributes: node_attributes(&self.config.address),
            meta: self.config.meta.clone(),
            artifact_limits: self.config.artifact_limits,
        }
    }

    async fn fingerprint(&self) -> NodeInfo {
        let mut drivers = BTreeMap::new();
        for (name, d) in &self.drivers {
            drivers.insert(name.clone(), d.fingerprint().await);
        }
        let mut attributes = node_attributes(&self.config.address);
        for (name, info) in &drivers {
            if info.detected {
                attributes.insert(format!("driver.{name}"), "1".into());
                if let Some(d) = self.drivers.get(name) {
                    attributes.extend(d.node_attributes());
                }
            }
        }
        let cores = attributes
            .get("cpu.numcores")
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(1);
        NodeInfo {
            id: self.node_id.clone(),
            name: self.config.node_name.clone(),
            datacenter: self.config.datacenter.clone(),
            node_class: self.config.node_class.clone(),
            node_pool: self.config.node_pool.clone(),
            address: self.config.address.clone(),
            http_addr: self.config.http_addr.clone(),
            drivers,
            cpu_mhz: cores * cpu_mhz_per_core(),
            memory_mb: memory_mb(),
            attributes,
            meta: self.config.meta.clone(),
            reserved_ports: self.config.reserved_ports.clone(),
        }
    }

    /// Runs the agent until `shutdown` resolves. Workloads are left running on return.
    pub async fn run<S: ServerApi>(
        self,
        server: Arc<S>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ClientError> {
        // Every log line of the client and its loops carries the node id.
        let span = tracing::info_span!("client", node_id = %self.node_id);
        self.run_in(server, shutdown, span.clone())
            .instrument(span)
            .await
    }

    async fn run_in<S: ServerApi>(
        self,
        server: Arc<S>,
        shutdown: impl Future<Output = ()> + Send,
        span: tracing::Span,
    ) -> Result<(), ClientError> {
        let node_id = self.node_id.clone();
        tracing::info!("client starting");
        let (stop_tx, stop_rx) = watch::channel(false);
        let (updates_tx, updates_rx) = mpsc::unbounded_channel();
        let slots: Slots = self.slots.clone();
        let node = Arc::new(self.node_env());
        let state_dir = self.config.data_dir.join("client").join("allocs");
        std::fs::create_dir_all(&state_dir).map_err(|source| ClientError::Io {
            op: "create",
            path: state_dir.clone(),
            source,
        })?;

        // 1. What already runs, before anything else: re-attach it to its allocations.
        let info = self.fingerprint().await;
        let mut orphans = self.recover(&info).await;
        for (spec, last) in load_allocs(&state_dir) {
            let terminal = last
                .as_ref()
                .is_some_and(|u| u.client_status.client_terminal());
            if spec.desired_status != DesiredStatus::Run || terminal {
                let handles = orphans.remove(&spec.id).unwrap_or_default();
                if terminal && handles.is_empty() {
                    slots.lock().expect("slots lock poisoned").insert(
                        spec.id.clone(),
                        Slot::Done {
                            modify_index: spec.modify_index,
                        },
                    );
                    continue;
                }
                // Wanted stopped, or finished with tasks left over: sync will stop them.
                orphans.insert(spec.id.clone(), handles);
                continue;
            }
            let restored = orphans.remove(&spec.id).unwrap_or_default();
            tracing::info!(alloc_id = %spec.id, tasks = restored.len(), "restoring allocation");
            let prior = last.map(|u| u.task_states).unwrap_or_default();
            let runner = self.spawn_runner(spec, restored, prior, &node, &updates_tx, &stop_rx);
            slots
                .lock()
                .expect("slots lock poisoned")
                .insert(runner.alloc_id().to_string(), Slot::Live(runner));
        }

        let node_info = Arc::new(Mutex::new(info));
        let (registered_tx, registered_rx) = watch::channel(None::<Duration>);
        let mut background = tokio::task::JoinSet::new();
        background.spawn(
            report_updates(
                server.clone(),
                node_id.clone(),
                updates_rx,
                state_dir.clone(),
                stop_rx.clone(),
            )
            .instrument(span.clone()),
        );
        background.spawn(
            heartbeat(
                server.clone(),
                node_info.clone(),
                registered_tx,
                stop_rx.clone(),
            )
            .instrument(span.clone()),
        );
        if let Some(docker) = self.docker.clone() {
            background.spawn(
                pump_events(docker, node_id.clone(), slots.clone(), stop_rx.clone())
                    .instrument(span.clone()),
            );
        }
        let (healed_tx, mut healed_rx) = watch::channel(0u64);
        background.spawn(
            refingerprint(
                self.drivers.clone(),
                node_info.clone(),
                self.config.fingerprint_interval,
                healed_tx,
                stop_rx.clone(),
            )
            .instrument(span.clone()),
        );

        let mut shutdown = std::pin::pin!(shutdown);
        let mut index = 0u64;
        let mut backoff = Backoff::default();
        let mut registered = registered_rx;
        // The first query waits for registration, so the server knows this node.
        tokio::select! {
            _ = async { registered.wait_for(|r| r.is_some()).await.is_ok() } => {}
            _ = &mut shutdown => {
                return self.finish(stop_tx, background).await;
            }
        }
        let mut last_allocs: Option<Vec<AllocSpec>> = None;
        loop {
            let query = server.node_allocations(&node_id, index, ALLOCS_WAIT);
            let answer = tokio::select! {
                r = query => r,
                _ = &mut shutdown => break,
                Ok(()) = healed_rx.changed() => {
                    // A driver came back: what it runs that no runner holds is an orphan (or a
                    // task to re-attach); sync decides, against the last answer from the server.
                    // That includes tasks of allocations the node still holds: a runner restored
                    // while the driver was down has no handle, so its kill cannot stop them
                    // (`apply` finds out which are left over).
                    let info = node_info.lock().expect("node info lock poisoned").clone();
                    let found = self.recover(&info).await;
                    for (alloc_id, tasks) in found {
                        orphans.entry(alloc_id).or_default().extend(tasks);
                    }
                    if let Some(allocs) = &last_allocs {
                        self.apply(allocs, &mut orphans, &slots, &node, &updates_tx, &stop_rx, &state_dir);
                    }
                    continue;
                }
            };
            match answer {
                Ok((new_index, allocs)) => {
                    backoff.reset();
                    index = new_index;
                    self.apply(
                        &allocs,
                        &mut orphans,
                        &slots,
                        &node,
                        &updates_tx,
                        &stop_rx,
                        &state_dir,
                    );
                    last_allocs = Some(allocs);
                }
                Err(e) => {
                    let wait = backoff.next();
                    tracing::warn!(error = %e, retry_in = ?wait, "failed to fetch allocations");
                    if matches!(e, ApiError::UnknownNode { .. }) {
                        index = 0;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = &mut shutdown => break,
                    }
                }
            }
        }
        self.finish(stop_tx, background).await
    }

    async fn finish(
        &self,
        stop_tx: watch::Sender<bool>,
        mut background: tokio::task::JoinSet<()>,
    ) -> Result<(), ClientError> {
        tracing::info!("client shutting down; workloads keep running");
        stop_tx.send_replace(true);
        // The reporter flushes what it has; the others return at once.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while background.join_next().await.is_some() {}
        })
        .await;
        Ok(())
    }

    /// Every task the drivers find for this node, by allocation and task. Duplicates of one
    /// task (an instance and its replacement) keep the running one and remove the others.
    async fn recover(&self, info: &NodeInfo) -> HashMap<String, HashMap<String, TaskHandle>> {
        let mut out: HashMap<String, HashMap<String, TaskHandle>> = HashMap::new();
        for (name, driver) in &self.drivers {
            if !info.drivers.get(name).is_some_and(|d| d.healthy) {
                continue;
            }
            let handles = match driver.recover_tasks(&self.node_id).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(driver = %name, error = %e, "failed to recover tasks");
                    continue;
                }
            };
            for h in handles {
                let tasks = out.entry(h.alloc_id.clone()).or_default();
                match tasks.get(&h.task) {
                    None => {
                        tasks.insert(h.task.clone(), h);
                    }
                    Some(existing) => {
                        let keep_new =
                            matches!(driver.inspect_task(&h).await, Ok(TaskStatus::Running))
                                && !matches!(
                                    driver.inspect_task(existing).await,
                                    Ok(TaskStatus::Running)
                                );
                        let drop = if keep_new {
                            tasks.insert(h.task.clone(), h).expect("present")
                        } else {
                            h
                        };
                        let _ = driver.destroy_task(&drop, true).await;
                    }
                }
            }
        }
        out
    }

    fn spawn_runner(
        &self,
        spec: AllocSpec,
        restored: HashMap<String, TaskHandle>,
        prior: BTreeMap<String, crate::spec::TaskState>,
        node: &Arc<NodeEnv>,
        updates: &mpsc::UnboundedSender<AllocUpdate>,
        stop: &watch::Receiver<bool>,
    ) -> Arc<AllocRunner> {
        Arc::new(AllocRunner::spawn(AllocRunnerArgs {
            alloc: spec,
            drivers: self.drivers.clone(),
            node: node.clone(),
            data_dir: self.config.data_dir.clone(),
            restored,
            prior,
            updates: updates.clone(),
            shutdown: stop.clone(),
            jitter_seed: None,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        allocs: &[AllocSpec],
        orphans: &mut HashMap<String, HashMap<String, TaskHandle>>,
        slots: &Slots,
        node: &Arc<NodeEnv>,
        updates: &mpsc::UnboundedSender<AllocUpdate>,
        stop: &watch::Receiver<bool>,
        state_dir: &Path,
    ) {
        let mut held: BTreeMap<String, RunningAlloc> = BTreeMap::new();
        {
            let slots = slots.lock().expect("slots lock poisoned");
            // Tasks found for an allocation the node holds (a driver came back): those its
            // runner holds (or adopted since) are its own; the others are left over once the
            // runner is finished, or when only a finished allocation's record is left.
            let mut leftover = std::collections::BTreeSet::new();
            orphans.retain(|id, tasks| match slots.get(id) {
                None => true,
                Some(Slot::Done { .. }) => {
                    leftover.insert(id.clone());
                    true
                }
                Some(Slot::Live(r)) => {
                    tasks.retain(|task, h| r.task_handle(task).is_none_or(|own| own.id != h.id));
                    if r.is_terminal() && !tasks.is_empty() {
                        leftover.insert(id.clone());
                    }
                    !tasks.is_empty()
                }
            });
            for (id, slot) in slots.iter() {
                held.insert(
                    id.clone(),
                    match slot {
                        Slot::Live(r) => RunningAlloc {
                            modify_index: r.modify_index(),
                            has_runner: true,
                            terminal: r.is_terminal(),
                            stopping: r.is_stopping(),
                            leftover: leftover.contains(id),
                        },
                        Slot::Done { modify_index } => RunningAlloc {
                            modify_index: *modify_index,
                            has_runner: true,
                            terminal: true,
                            stopping: false,
                            leftover: leftover.contains(id),
                        },
                    },
                );
            }
        }
        for id in orphans.keys() {
            held.entry(id.clone()).or_insert(RunningAlloc {
                modify_index: 0,
                has_runner: false,
                terminal: false,
                stopping: false,
                leftover: false,
            });
        }
        let diff = sync(allocs, &held);
        if diff.is_empty() {
            return;
        }
        tracing::info!(
            start = diff.start.len(),
            stop = diff.stop.len(),
            update = diff.update.len(),
            gc = diff.gc.len(),
            "syncing allocations"
        );
        for spec in diff.start {
            save_alloc(state_dir, &spec);
            let restored = orphans.remove(&spec.id).unwrap_or_default();
            let runner = self.spawn_runner(spec, restored, BTreeMap::new(), node, updates, stop);
            slots
                .lock()
                .expect("slots lock poisoned")
                .insert(runner.alloc_id().to_string(), Slot::Live(runner));
        }
        for spec in diff.update {
            save_alloc(state_dir, &spec);
            let mut slots = slots.lock().expect("slots lock poisoned");
            match slots.get(&spec.id) {
                Some(Slot::Live(r)) => r.update(spec),
                Some(Slot::Done { .. }) => {
                    slots.insert(
                        spec.id.clone(),
                        Slot::Done {
                            modify_index: spec.modify_index,
                        },
                    );
                }
                None => {}
            }
        }
        for id in diff.stop {
            if let Some(handles) = orphans.remove(&id) {
                tracing::info!(alloc_id = %id, tasks = handles.len(), "removing tasks no allocation wants");
                let drivers = self.drivers.clone();
                tokio::spawn(async move {
                    for h in handles.into_values() {
                        if let Some(d) = drivers.get(&h.driver) {
                            let _ = d
                                .stop_task(&h, crate::spec::DEFAULT_KILL_TIMEOUT, "SIGTERM")
                                .await;
                            if let Err(e) = d.destroy_task(&h, true).await {
                                tracing::warn!(alloc_id = %h.alloc_id, task = %h.task, error = %e, "failed to remove orphaned task");
                            }
                        }
                    }
                });
            }
            if let Some(Slot::Live(r)) = slots.lock().expect("slots lock poisoned").get(&id) {
                tracing::info!(alloc_id = %id, "stopping allocation");
                r.kill();
            }
        }
        for id in diff.gc {
            slots.lock().expect("slots lock poisoned").remove(&id);
            for suffix in ["spec.json", "status.json"] {
                let _ = std::fs::remove_file(state_dir.join(format!("{id}.{suffix}")));
            }
            let _ = std::fs::remove_dir_all(self.config.data_dir.join("alloc").join(&id));
        }
    }
}

/// Gathers task state changes and reports them in batches, retrying while the server is away;
/// each allocation's latest status is also kept in the data dir.
async fn report_updates<S: ServerApi>(
    server: Arc<S>,
    node_id: String,
    mut rx: mpsc::UnboundedReceiver<AllocUpdate>,
    state_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let mut pending: BTreeMap<String, AllocUpdate> = BTreeMap::new();
    let mut backoff = Backoff::default();
    loop {
        if pending.is_empty() {
            tokio::select! {
                u = rx.recv() => match u {
                    Some(u) => { pending.insert(u.id.clone(), u); }
                    None => return,
                },
                _ = stop.changed() => return,
            }
            tokio::time::sleep(UPDATE_BATCH).await;
        }
        while let Ok(u) = rx.try_recv() {
            pending.insert(u.id.clone(), u);
        }
        for u in pending.values() {
            save_status(&state_dir, u);
        }
        let batch: Vec<AllocUpdate> = pending.values().cloned().collect();
        match server.update_allocations(&node_id, batch).await {
            Ok(()) => {
                pending.clear();
                backoff.reset();
            }
            Err(e) => {
                let wait = backoff.next();
                tracing::warn!(error = %e, retry_in = ?wait, "failed to report allocation updates");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Registers, then heartbeats at the TTL the server gives; registers again when the server has
/// forgotten the node or the node's drivers changed.
async fn heartbeat<S: ServerApi>(
    server: Arc<S>,
    node: Arc<Mutex<NodeInfo>>,
    registered: watch::Sender<Option<Duration>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    let mut ttl: Option<Duration> = None;
    let mut sent: Option<NodeInfo> = None;
    loop {
        let current = node.lock().expect("node info lock poisoned").clone();
        let changed = sent.as_ref().is_some_and(|s| drivers_differ(s, &current));
        let wait = if ttl.is_none() || changed {
            match server.register_node(current.clone()).await {
                Ok(r) => {
                    tracing::info!(heartbeat_ttl = ?r.heartbeat_ttl, "node registered");
                    backoff.reset();
                    ttl = Some(r.heartbeat_ttl);
                    sent = Some(current);
                    registered.send_replace(ttl);
                    r.heartbeat_ttl / 2
                }
                Err(e) => {
                    let wait = backoff.next();
                    if matches!(e, ApiError::Unauthorized { .. }) {
                        tracing::error!(error = %e, retry_in = ?wait, "failed to register node");
                    } else {
                        tracing::warn!(error = %e, retry_in = ?wait, "failed to register node");
                    }
                    wait
                }
            }
        } else {
            match server.heartbeat(&current.id).await {
                Ok(next) => {
                    backoff.reset();
                    ttl = Some(next);
                    next / 2
                }
                Err(ApiError::UnknownNode { .. }) => {
                    ttl = None;
                    Duration::ZERO
                }
                Err(e) => {
                    let wait = backoff.next();
                    tracing::warn!(error = %e, retry_in = ?wait, "failed to heartbeat");
                    // Keep trying more often than the TTL so the node is not marked down.
                    wait.min(ttl.map_or(wait, |t| t / 4))
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            _ = stop.changed() => return,
        }
    }
}

fn drivers_differ(a: &NodeInfo, b: &NodeInfo) -> bool {
    let key = |n: &NodeInfo| -> Vec<(String, bool, bool)> {
        n.drivers
            .iter()
            .map(|(k, d)| (k.clone(), d.detected, d.healthy))
            .collect()
    };
    key(a) != key(b)
}

/// Fingerprints the drivers every `every`; bumps `recovered` when a driver turns healthy, so
/// the client looks for that driver's tasks (it could not while the driver was down).
async fn refingerprint(
    drivers: Drivers,
    node: Arc<Mutex<NodeInfo>>,
    every: Duration,
    recovered: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let mut infos: BTreeMap<String, DriverInfo> = BTreeMap::new();
        for (name, d) in &drivers {
            infos.insert(name.clone(), d.fingerprint().await);
        }
        let mut n = node.lock().expect("node info lock poisoned");
        let mut healed = false;
        for (name, info) in &infos {
            let before = n.drivers.get(name).map(|d| d.healthy);
            if before != Some(info.healthy) {
                tracing::info!(driver = %name, healthy = info.healthy, description = %info.health_description, "driver health changed");
                healed |= info.healthy;
            }
        }
        n.drivers = infos;
        if healed {
            recovered.send_modify(|g| *g += 1);
        }
    }
}

/// Engine events wake the runner that owns the container; nothing else happens here.
async fn pump_events(
    docker: Arc<DockerDriver>,
    node_id: String,
    slots: Slots,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    loop {
        match docker.events(&node_id).await {
            Ok(events) => {
                backoff.reset();
                let mut events = std::pin::pin!(events);
                loop {
                    let ev = tokio::select! {
                        ev = events.next() => ev,
                        _ = stop.changed() => return,
                    };
                    let Some(ev) = ev else { break };
                    let runner = match slots.lock().expect("slots lock poisoned").get(&ev.alloc_id)
                    {
                        Some(Slot::Live(r)) => Some(r.clone()),
                        _ => None,
                    };
                    if let Some(r) = runner {
                        r.wake(ev);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "failed to watch engine events"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next()) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Exponential back-off, 0.5 s doubling to 30 s, with up to 25% jitter.
#[derive(Default)]
struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        use crate::taskrunner::restarts::{Jitter, SplitMix64};
        let d = self.next.unwrap_or(BACKOFF_MIN);
        self.next = Some((d * 2).min(BACKOFF_MAX));
        let unit = SplitMix64::new(now_nanos() as u64).next_unit();
        d + d.mul_f64(0.25 * unit)
    }

    fn reset(&mut self) {
        self.next = None;
    }
}

fn load_node_id(data_dir: &Path) -> Result<String, ClientError> {
    let dir = data_dir.join("client");
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ClientError::Io {
                op: "read",
                path,
                source,
            });
        }
    }
    std::fs::create_dir_all(&dir).map_err(|source| ClientError::Io {
        op: "create",
        path: dir.clone(),
        source,
    })?;
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, format!("{id}\n")).map_err(|source| ClientError::Io {
        op: "write",
        path,
        source,
    })?;
    Ok(id)
}

fn save_alloc(dir: &Path, spec: &AllocSpec) {
    write_json(&dir.join(format!("{}.spec.json", spec.id)), spec);
}

fn save_status(dir: &Path, u: &AllocUpdate) {
    write_json(&dir.join(format!("{}.status.json", u.id)), u);
}

/// Written to a temporary file and renamed, so a crash never leaves half a file.
fn write_json<T: serde::Serialize>(path: &Path, v: &T) {
    let tmp = path.with_extension("json.tmp");
    let res = serde_json::to_vec_pretty(v)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        tracing::warn!(path = %path.display(), error = %e, "failed to save allocation state");
    }
}

/// The allocations this node ran before, with their last reported status.
fn load_allocs(dir: &Path) -> Vec<(AllocSpec, Option<AllocUpdate>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(id) = name.strip_suffix(".spec.json") else {
            continue;
        };
        let spec: AllocSpec = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "failed to read saved allocation; ignoring it");
                continue;
            }
        };
        let status = std::fs::read(dir.join(format!("{id}.status.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        out.push((spec, status));
    }
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    out
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Nomad's `attr.*` that drover knows how to read.
fn node_attributes(address: &str) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    // What jobs use to point at the node itself (`dns_servers = ["${attr.unique.network.ip-address}"]`).
    a.insert("unique.network.ip-address".into(), address.to_string());
    a.insert("kernel.name".into(), std::env::consts::OS.into());
    a.insert("cpu.arch".into(), std::env::consts::ARCH.into());
    a.insert("unique.hostname".into(), hostname());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    a.insert("cpu.numcores".into(), cores.to_string());
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        a.insert("kernel.version".into(), v.trim().to_string());
    }
    a
}

fn cpu_mhz_per_core() -> u64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map_or(1000, |mhz| mhz as u64)
}

fn memory_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
