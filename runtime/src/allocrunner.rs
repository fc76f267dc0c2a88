//! An alloc runner (Nomad's `allocrunner`): the task runners of one allocation, started
//! together, killed together, and the allocation's client status derived from their states
//! the way Nomad does (pending → running → complete | failed). Every change is reported as an
//! [`AllocUpdate`] on the channel the client batches to its server.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::checks::{check_key, plan_task_checks, run_check, task_services};
use crate::driver::{Driver, Drivers, EngineEvent, NodeEnv, TaskCtx, TaskDirs, TaskHandle};
use crate::spec::{
    AllocSpec, AllocUpdate, CheckResult, ClientStatus, DriverNetwork, TaskState, TaskStateKind,
};
use crate::taskrunner::restarts::{RestartTracker, SplitMix64};
use crate::taskrunner::{Inbox, KillReason, TaskRunner, TaskRunnerArgs, event, task_event};

/// What an alloc runner is given.
pub struct AllocRunnerArgs {
    pub alloc: AllocSpec,
    pub drivers: Drivers,
    pub node: Arc<NodeEnv>,
    pub data_dir: PathBuf,
    /// Handles found by `recover_tasks`, by task name: re-attached, not restarted.
    pub restored: HashMap<String, TaskHandle>,
    /// The tasks' last reported states, when restoring after an agent restart: their events
    /// and restart counts carry on instead of starting over (Nomad restores them too).
    pub prior: BTreeMap<String, TaskState>,
    pub updates: mpsc::UnboundedSender<AllocUpdate>,
    pub shutdown: watch::Receiver<bool>,
    /// Seeds the restart jitter; `None` seeds from the OS.
    pub jitter_seed: Option<u64>,
}

/// A running allocation, as the client holds it.
pub struct AllocRunner {
    alloc_id: String,
    spec: Mutex<AllocSpec>,
    kill: watch::Sender<Option<KillReason>>,
    inboxes: HashMap<String, Arc<Inbox>>,
    status: watch::Receiver<AllocUpdate>,
    supervisor: JoinHandle<()>,
}

impl AllocRunner {
    /// Starts (or re-attaches) every task of the allocation.
    pub fn spawn(args: AllocRunnerArgs) -> AllocRunner {
        let alloc = Arc::new(args.alloc.clone());
        let alloc_id = alloc.id.clone();
        let (kill_tx, kill_rx) = watch::channel(None);
        let (state_tx, state_rx) = mpsc::unbounded_channel();
        let mut states: BTreeMap<String, TaskState> = BTreeMap::new();
        let mut inboxes = HashMap::new();
        let mut hooks = HashMap::new();
        let mut restored = args.restored;
        for (i, task) in alloc.tasks.iter().enumerate() {
            let inbox = Arc::new(Inbox::default());
            inboxes.insert(task.name.clone(), inbox.clone());
            let Some(driver) = args.drivers.get(&task.driver).cloned() else {
                let mut st = TaskState::default();
                st.events.push(task_event(
                    event::DRIVER_FAILURE,
                    format!(
                        "failed to start task: driver {:?} is not available on this node",
                        task.driver
                    ),
                ));
                st.state = TaskStateKind::Dead;
                st.failed = true;
                states.insert(task.name.clone(), st);
                continue;
            };
            hooks.insert(task.name.clone(), (driver.clone(), inbox.clone()));
            let jitter = match args.jitter_seed {
                Some(seed) => SplitMix64::new(seed.wrapping_add(i as u64)),
                None => SplitMix64::from_entropy(),
            };
            let tracker = RestartTracker::new(
                alloc.restart_policy(task).clone(),
                &alloc.job_type,
                Box::new(jitter),
            );
            let restored_handle = restored.remove(&task.name);
            let prior = args.prior.get(&task.name).cloned();
            let restored_state = match (&restored_handle, prior) {
                (Some(_), prior) => Some(TaskState {
                    state: TaskStateKind::Running,
                    ..prior.unwrap_or_default()
                }),
                // Nothing left to re-attach: the runner starts it again.
                (None, Some(prior)) => Some(TaskState {
                    state: TaskStateKind::Pending,
                    ..prior
                }),
                (None, None) => None,
            };
            states.insert(
                task.name.clone(),
                restored_state.clone().unwrap_or_default(),
            );
            let runner = TaskRunner::new(TaskRunnerArgs {
                ctx: TaskCtx {
                    alloc: alloc.clone(),
                    task: task.clone(),
                    node: args.node.clone(),
                    dirs: TaskDirs::new(&args.data_dir, &alloc.id, &task.name),
                    replaces: None,
                },
                driver,
                tracker,
                restored: restored_handle,
                state: restored_state,
                kill: kill_rx.clone(),
                shutdown: args.shutdown.clone(),
                inbox,
                states: state_tx.clone(),
            });
            tokio::spawn(runner.run());
        }
        drop(state_tx);
        let (svc_tx, svc_rx) = mpsc::unbounded_channel();
        let services = AllocServices {
            alloc: alloc.clone(),
            node_address: args.node.address.clone(),
            hooks,
            tx: svc_tx,
            running: HashMap::new(),
            checks: BTreeMap::new(),
            networks: BTreeMap::new(),
        };
        let first = derive_update(&alloc_id, &states, &services);
        let _ = args.updates.send(first.clone());
        let (status_tx, status_rx) = watch::channel(first);
        let leaders = alloc
            .tasks
            .iter()
            .filter(|t| t.leader)
            .map(|t| t.name.clone())
            .collect();
        let supervisor = tokio::spawn(supervise(
            alloc_id.clone(),
            leaders,
            states,
            state_rx,
            kill_tx.clone(),
            status_tx,
            args.updates,
            (services, svc_rx),
        ));
        AllocRunner {
            alloc_id,
            spec: Mutex::new(args.alloc),
            kill: kill_tx,
            inboxes,
            status: status_rx,
            supervisor,
        }
    }

    pub fn alloc_id(&self) -> &str {
        &self.alloc_id
    }

    pub fn spec(&self) -> AllocSpec {
        self.spec.lock().expect("alloc spec lock poisoned").clone()
    }

    pub fn modify_index(&self) -> u64 {
        self.spec
            .lock()
            .expect("alloc spec lock poisoned")
            .modify_index
    }

    /// An in-place update: the server changed something the running tasks need not restart
    /// for (a destructive change arrives as a new allocation).
    pub fn update(&self, spec: AllocSpec) {
        *self.spec.lock().expect("alloc spec lock poisoned") = spec;
    }

    /// Stops every task with its kill signal and timeout.
    pub fn kill(&self) {
        self.kill.send_if_modified(|k| {
            if k.is_none() {
                *k = Some(KillReason::Stop);
                true
            } else {
                false
            }
        });
    }

    /// The newest instance of `task`, for reading its logs.
    pub fn task_handle(&self, task: &str) -> Option<TaskHandle> {
        self.inboxes.get(task).and_then(|i| i.current())
    }

    /// An engine event concerns one of this allocation's tasks: its runner looks at the task
    /// and decides.
    pub fn wake(&self, ev: EngineEvent) {
        if let Some(inbox) = self.inboxes.get(&ev.task) {
            inbox.push(ev);
        }
    }

    pub fn status(&self) -> AllocUpdate {
        self.status.borrow().clone()
    }

    /// The node will not run this allocation again.
    pub fn is_terminal(&self) -> bool {
        self.status.borrow().client_status.client_terminal()
    }

    /// A kill was sent.
    pub fn is_stopping(&self) -> bool {
        self.kill.borrow().is_some()
    }

    /// Every task runner has returned.
    pub fn is_finished(&self) -> bool {
        self.supervisor.is_finished()
    }

    /// Waits until the client status satisfies `f`.
    pub async fn wait_for(&self, f: impl Fn(&AllocUpdate) -> bool) -> AllocUpdate {
        let mut rx = self.status.clone();
        let found = rx.wait_for(|u| f(u)).await.map(|u| u.clone());
        found.unwrap_or_else(|_| self.status.borrow().clone())
    }
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    alloc_id: String,
    leaders: Vec<String>,
    mut states: BTreeMap<String, TaskState>,
    mut rx: mpsc::UnboundedReceiver<(String, TaskState)>,
    kill: watch::Sender<Option<KillReason>>,
    status: watch::Sender<AllocUpdate>,
    updates: mpsc::UnboundedSender<AllocUpdate>,
    (mut services, mut svc_rx): (AllocServices, mpsc::UnboundedReceiver<ServiceMsg>),
) {
    // A task that failed before its runner existed (missing driver) fails its siblings too.
    if let Some((name, _)) = states.iter().find(|(_, s)| s.failed) {
        let _ = kill.send(Some(KillReason::SiblingFailed(name.clone())));
    }
    loop {
        tokio::select! {
            next = rx.recv() => {
                let Some((task, st)) = next else { break };
                if st.state == TaskStateKind::Dead && kill.borrow().is_none() {
                    if st.failed {
                        tracing::info!(alloc_id = %alloc_id, task = %task, "task failed; killing its siblings");
                        let _ = kill.send(Some(KillReason::SiblingFailed(task.clone())));
                    } else if leaders.contains(&task) {
                        tracing::info!(alloc_id = %alloc_id, task = %task, "leader task is dead; killing the others");
                        let _ = kill.send(Some(KillReason::LeaderDead(task.clone())));
                    }
                }
                services.on_task_state(&task, &st);
                states.insert(task, st);
            }
            Some(msg) = svc_rx.recv() => services.on_msg(msg),
        }
        let update = derive_update(&alloc_id, &states, &services);
        if *status.borrow() != update {
            status.send_replace(update.clone());
            let _ = updates.send(update);
        }
    }
    services.stop_all();
}

/// What the services of a running task tell the alloc runner. `generation` is the task's
/// `started_at`: news about an instance that was since replaced is dropped.
enum ServiceMsg {
    Network {
        task: String,
        generation: i64,
        network: Option<DriverNetwork>,
    },
    Check {
        task: String,
        generation: i64,
        key: String,
        result: CheckResult,
    },
}

/// The services of one allocation's tasks on this node: their driver addresses and checks,
/// started when a task starts and dropped when it stops.
struct AllocServices {
    alloc: Arc<AllocSpec>,
    node_address: String,
    hooks: HashMap<String, (Arc<dyn Driver>, Arc<Inbox>)>,
    tx: mpsc::UnboundedSender<ServiceMsg>,
    /// Task → (generation, the job running its checks).
    running: HashMap<String, (i64, JoinHandle<()>)>,
    checks: BTreeMap<String, CheckResult>,
    networks: BTreeMap<String, DriverNetwork>,
}

impl AllocServices {
    fn on_task_state(&mut self, task: &str, st: &TaskState) {
        if st.state != TaskStateKind::Running {
            self.stop_task(task);
            return;
        }
        let generation = st.started_at;
        if self.running.get(task).map(|r| r.0) == Some(generation) {
            return;
        }
        self.stop_task(task);
        let services = task_services(&self.alloc, task);
        let Some((driver, inbox)) = self.hooks.get(task).cloned() else {
            return;
        };
        if services.is_empty() {
            return;
        }
        let needs_driver = services.iter().any(|s| {
            s.address_mode == "driver"
                || s.checks
                    .iter()
                    .any(|c| c.address_mode.as_deref() == Some("driver"))
        });
        // Every check starts at its initial status (critical unless the job says otherwise),
        // so an instance is not handed out before its first check passes.
        for c in plan_task_checks(&self.alloc, task, &self.node_address, None) {
            self.checks.insert(
                check_key(&c),
                CheckResult {
                    service: c.service.clone(),
                    task: c.task.clone(),
                    check: c.name.clone(),
                    check_type: c.check_type.clone(),
                    status: c.initial,
                    output: String::new(),
                    timestamp: crate::taskrunner::now_nanos(),
                },
            );
        }
        let alloc = self.alloc.clone();
        let node_address = self.node_address.clone();
        let tx = self.tx.clone();
        let task_name = task.to_string();
        let job = tokio::spawn(async move {
            let network = if needs_driver {
                let network = driver_network(&*driver, &inbox).await;
                let _ = tx.send(ServiceMsg::Network {
                    task: task_name.clone(),
                    generation,
                    network: network.clone(),
                });
                network
            } else {
                None
            };
            let (results_tx, mut results_rx) = mpsc::unbounded_channel();
            let mut checks = JoinSet::new();
            for c in plan_task_checks(&alloc, &task_name, &node_address, network.as_ref()) {
                let inbox = inbox.clone();
                checks.spawn(run_check(
                    check_key(&c),
                    c,
                    results_tx.clone(),
                    Arc::new(move |reason| inbox.request_restart(reason)),
                ));
            }
            drop(results_tx);
            // Dropping this future (the task stopped) drops the set, which aborts the checks.
            while let Some((key, result)) = results_rx.recv().await {
                let msg = ServiceMsg::Check {
                    task: task_name.clone(),
                    generation,
                    key,
                    result,
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
            while checks.join_next().await.is_some() {}
        });
        self.running.insert(task.to_string(), (generation, job));
    }

    fn on_msg(&mut self, msg: ServiceMsg) {
        let current =
            |task: &str, generation: i64| self.running.get(task).map(|r| r.0) == Some(generation);
        match msg {
            ServiceMsg::Network {
                task,
                generation,
                network,
            } => {
                if current(&task, generation) {
                    match network {
                        Some(n) => self.networks.insert(task, n),
                        None => self.networks.remove(&task),
                    };
                }
            }
            ServiceMsg::Check {
                task,
                generation,
                key,
                result,
            } => {
                if current(&task, generation) {
                    self.checks.insert(key, result);
                }
            }
        }
    }

    fn stop_task(&mut self, task: &str) {
        if let Some((_, job)) = self.running.remove(task) {
            job.abort();
        }
        self.checks.retain(|_, c| c.task != task);
        self.networks.remove(task);
    }

    fn stop_all(&mut self) {
        for (_, (_, job)) in self.running.drain() {
            job.abort();
        }
    }
}

/// The running instance's address in its driver's network. The instance is published just
/// before its `Running` state, and an engine under load may answer late, so it asks a few times.
async fn driver_network(driver: &dyn Driver, inbox: &Inbox) -> Option<DriverNetwork> {
    for attempt in 0..5u32 {
        if let Some(h) = inbox.current() {
            match driver.task_network(&h).await {
                Ok(n) => return n,
                Err(e) => {
                    tracing::debug!(alloc_id = %h.alloc_id, task = %h.task, error = %e, attempt, "failed to read the task's driver address")
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
    }
    None
}

/// Nomad's `getClientStatus`: any failed task fails the allocation; otherwise any running
/// task makes it running, any pending one pending, and all dead complete.
pub fn client_status(states: &BTreeMap<String, TaskState>) -> (ClientStatus, &'static str) {
    let (mut failed, mut running, mut pending, mut dead) = (false, false, false, false);
    for s in states.values() {
        match s.state {
            TaskStateKind::Running => running = true,
            TaskStateKind::Pending => pending = true,
            TaskStateKind::Dead if s.failed => failed = true,
            TaskStateKind::Dead => dead = true,
        }
    }
    if failed {
        (ClientStatus::Failed, "Failed tasks")
    } else if running {
        (ClientStatus::Running, "Tasks are running")
    } else if pending {
        (ClientStatus::Pending, "No tasks have started")
    } else if dead {
        (ClientStatus::Complete, "All tasks have completed")
    } else {
        (ClientStatus::Pending, "No tasks have started")
    }
}

fn derive_update(
    alloc_id: &str,
    states: &BTreeMap<String, TaskState>,
    services: &AllocServices,
) -> AllocUpdate {
    let (client_status, desc) = client_status(states);
    AllocUpdate {
        id: alloc_id.to_string(),
        client_status,
        client_description: desc.to_string(),
        task_states: states.clone(),
        checks: services.checks.values().cloned().collect(),
        driver_networks: services.networks.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(state: TaskStateKind, failed: bool) -> TaskState {
        TaskState {
            state,
            failed,
            ..TaskState::default()
        }
    }

    #[test]
    fn client_status_follows_nomad() {
        use TaskStateKind::*;
        let m = |v: Vec<TaskState>| -> BTreeMap<String, TaskState> {
            v.into_iter()
                .enumerate()
                .map(|(i, s)| (i.to_string(), s))
                .collect()
        };
        assert_eq!(
            client_status(&m(vec![st(Pending, false)])).0,
            ClientStatus::Pending
        );
        assert_eq!(
            client_status(&m(vec![st(Pending, false), st(Running, false)])).0,
            ClientStatus::Running
        );
        assert_eq!(
            client_status(&m(vec![st(Dead, false), st(Running, false)])).0,
            ClientStatus::Running
        );
        assert_eq!(
            client_status(&m(vec![st(Dead, false), st(Dead, false)])).0,
            ClientStatus::Complete
        );
        assert_eq!(
            client_status(&m(vec![st(Dead, true), st(Running, false)])).0,
            ClientStatus::Failed
        );
    }
}
