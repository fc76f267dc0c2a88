//! An alloc runner (Nomad's `allocrunner`): the task runners of one allocation, started
//! together, killed together, and the allocation's client status derived from their states
//! the way Nomad does (pending → running → complete | failed). Every change is reported as an
//! [`AllocUpdate`] on the channel the client batches to its server.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::driver::{Drivers, EngineEvent, NodeEnv, TaskCtx, TaskDirs, TaskHandle};
use crate::spec::{AllocSpec, AllocUpdate, ClientStatus, TaskState, TaskStateKind};
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
        let first = derive_update(&alloc_id, &states);
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

async fn supervise(
    alloc_id: String,
    leaders: Vec<String>,
    mut states: BTreeMap<String, TaskState>,
    mut rx: mpsc::UnboundedReceiver<(String, TaskState)>,
    kill: watch::Sender<Option<KillReason>>,
    status: watch::Sender<AllocUpdate>,
    updates: mpsc::UnboundedSender<AllocUpdate>,
) {
    // A task that failed before its runner existed (missing driver) fails its siblings too.
    if let Some((name, _)) = states.iter().find(|(_, s)| s.failed) {
        let _ = kill.send(Some(KillReason::SiblingFailed(name.clone())));
    }
    while let Some((task, st)) = rx.recv().await {
        if st.state == TaskStateKind::Dead && kill.borrow().is_none() {
            if st.failed {
                tracing::info!(alloc_id = %alloc_id, task = %task, "task failed; killing its siblings");
                let _ = kill.send(Some(KillReason::SiblingFailed(task.clone())));
            } else if leaders.contains(&task) {
                tracing::info!(alloc_id = %alloc_id, task = %task, "leader task is dead; killing the others");
                let _ = kill.send(Some(KillReason::LeaderDead(task.clone())));
            }
        }
        states.insert(task, st);
        let update = derive_update(&alloc_id, &states);
        if *status.borrow() != update {
            status.send_replace(update.clone());
            let _ = updates.send(update);
        }
    }
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

fn derive_update(alloc_id: &str, states: &BTreeMap<String, TaskState>) -> AllocUpdate {
    let (client_status, desc) = client_status(states);
    AllocUpdate {
        id: alloc_id.to_string(),
        client_status,
        client_description: desc.to_string(),
        task_states: states.clone(),
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
