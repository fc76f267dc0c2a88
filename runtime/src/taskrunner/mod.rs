//! One task runner per task (Nomad's `task_runner.go`): prestart (the alloc dir layout, then the
//! task's artifacts before its first start), start through the driver, wait, record what
//! happened as Nomad's task events, ask the [`restarts::RestartTracker`], and sleep on a timer
//! that also watches kill and shutdown.
//!
//! A handle recovered after an agent restart is re-attached before the loop runs, so the agent
//! restarting restarts nothing. A task removed from outside (`docker rm -f`) is started again
//! at once: it did not crash, so it is neither delayed nor counted. Shutdown of the agent
//! leaves the task running; only a kill stops it.

pub mod restarts;

use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, mpsc, watch};

use crate::artifact::{ArtifactError, Plan, fetch};
use crate::driver::env::{PathView, interpolate, task_env};
use crate::driver::{Driver, DriverError, EngineEvent, TaskCtx, TaskHandle, TaskStatus};
use crate::spec::{ExitResult, TaskEvent, TaskState, TaskStateKind};
use restarts::{RestartDecision, RestartTracker};

/// Nomad keeps the last 10 events of a task.
const MAX_EVENTS: usize = 10;
/// While the engine is down, check again this often at most.
const ENGINE_RETRY_MAX: Duration = Duration::from_secs(10);

/// How often, and how far apart, a runner woken by an engine event looks at its task.
const EVENT_LOOKS: u32 = 8;
const EVENT_LOOK_INTERVAL: Duration = Duration::from_millis(15);

/// Nomad's task event types.
pub mod event {
    pub const RECEIVED: &str = "Received";
    pub const TASK_SETUP: &str = "Task Setup";
    pub const SETUP_FAILURE: &str = "Setup Failure";
    pub const STARTED: &str = "Started";
    pub const TERMINATED: &str = "Terminated";
    pub const RESTARTING: &str = "Restarting";
    pub const NOT_RESTARTING: &str = "Not Restarting";
    pub const KILLING: &str = "Killing";
    pub const KILLED: &str = "Killed";
    pub const DRIVER_FAILURE: &str = "Driver Failure";
    pub const DRIVER: &str = "Driver";
    pub const SIBLING_FAILED: &str = "Sibling Task Failed";
    pub const LEADER_DEAD: &str = "Leader Task Dead";
    pub const RESTART_SIGNALED: &str = "Restart Signaled";
    pub const DOWNLOADING_ARTIFACTS: &str = "Downloading Artifacts";
    pub const ARTIFACT_DOWNLOAD_FAILED: &str = "Failed Artifact Download";
}

/// Why a task is being killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillReason {
    /// The server wants the allocation stopped.
    Stop,
    /// Another task of the allocation failed (Nomad kills the siblings).
    SiblingFailed(String),
    /// The allocation's leader task ended (Nomad's `leader = true`).
    LeaderDead(String),
}

/// Where engine events for one task land (the runner reads them when it is woken), and where
/// the runner shows its current instance to readers such as `logs`.
#[derive(Default)]
pub struct Inbox {
    events: Mutex<Vec<EngineEvent>>,
    notify: Notify,
    current: Mutex<Option<TaskHandle>>,
    /// Why the task must be restarted (a failing check with `check_restart`), if it must.
    restart: Mutex<Option<String>>,
}

impl Inbox {
    /// The task's newest instance, if it was ever started.
    pub fn current(&self) -> Option<TaskHandle> {
        self.current.lock().expect("inbox lock poisoned").clone()
    }

    fn set_current(&self, h: &TaskHandle) {
        *self.current.lock().expect("inbox lock poisoned") = Some(h.clone());
    }

    pub fn push(&self, ev: EngineEvent) {
        self.events.lock().expect("inbox lock poisoned").push(ev);
        self.notify.notify_one();
    }

    /// Asks the runner to restart the running instance (counted by the restart policy).
    pub fn request_restart(&self, reason: String) {
        *self.restart.lock().expect("inbox lock poisoned") = Some(reason);
        self.notify.notify_one();
    }

    fn take_restart(&self) -> Option<String> {
        self.restart.lock().expect("inbox lock poisoned").take()
    }

    fn drain(&self) -> Vec<EngineEvent> {
        std::mem::take(&mut *self.events.lock().expect("inbox lock poisoned"))
    }
}

/// What a task runner is given.
pub struct TaskRunnerArgs {
    pub ctx: TaskCtx,
    pub driver: Arc<dyn Driver>,
    pub tracker: RestartTracker,
    /// A handle found by `recover_tasks`: re-attached instead of starting the task.
    pub restored: Option<TaskHandle>,
    /// The task's last known state, when restoring.
    pub state: Option<TaskState>,
    pub kill: watch::Receiver<Option<KillReason>>,
    pub shutdown: watch::Receiver<bool>,
    /// Engine events for this task's container land here; the runner then looks for itself.
    pub inbox: Arc<Inbox>,
    /// Every state change is sent as `(task name, state)`.
    pub states: mpsc::UnboundedSender<(String, TaskState)>,
}

pub struct TaskRunner {
    ctx: TaskCtx,
    driver: Arc<dyn Driver>,
    tracker: RestartTracker,
    restored: Option<TaskHandle>,
    state: TaskState,
    kill: watch::Receiver<Option<KillReason>>,
    shutdown: watch::Receiver<bool>,
    inbox: Arc<Inbox>,
    states: mpsc::UnboundedSender<(String, TaskState)>,
    /// The newest instance, kept so a kill can remove an exited container too.
    last: Option<TaskHandle>,
    /// The task's artifacts are in place; a restart does not fetch them again (as Nomad).
    artifacts_fetched: bool,
}

/// How waiting on an instance ended.
enum Waited {
    Exited(ExitResult),
    Vanished,
    Killed(KillReason),
    Shutdown,
    /// A restart was asked for (`check_restart`); the instance is still running.
    RestartSignaled(String),
}

/// How fetching the artifacts ended.
enum Fetch {
    Done,
    Failed { message: String, recoverable: bool },
    Interrupted(Interrupted),
}

/// Why a sleep was cut short.
enum Interrupted {
    Killed(KillReason),
    Shutdown,
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub fn task_event(event_type: &str, message: impl Into<String>) -> TaskEvent {
    TaskEvent {
        event_type: event_type.to_string(),
        time: now_nanos(),
        message: message.into(),
        exit_code: None,
        signal: None,
        oom_killed: false,
    }
}

/// Why the task restarted, for `drover_task_restarts_total{reason}`, read from the event a
/// runner pushes just before its `Restarting` event (`events[i]`): `oom_killed`, `signal`,
/// `error` (a non-zero exit), `completed` (a service task that exited 0), `start_failed` (the
/// driver could not start it), `removed` (the container vanished from outside and was
/// recreated), or `unknown` when the preceding event fell out of the kept window.
pub fn restart_reason(events: &[TaskEvent], i: usize) -> &'static str {
    let Some(prev) = i.checked_sub(1).and_then(|p| events.get(p)) else {
        return "unknown";
    };
    match prev.event_type.as_str() {
        event::TERMINATED if prev.oom_killed => "oom_killed",
        event::TERMINATED if prev.signal.is_some_and(|s| s != 0) => "signal",
        event::TERMINATED if prev.exit_code.is_some_and(|c| c != 0) => "error",
        event::TERMINATED => "completed",
        event::DRIVER_FAILURE => "start_failed",
        // A `Restarting` right after `Started` (or after a restored task) is the runner
        // recreating a container that vanished: no exit was seen.
        event::STARTED | event::RECEIVED | event::TASK_SETUP | event::DRIVER => "removed",
        _ => "unknown",
    }
}

impl TaskRunner {
    pub fn new(args: TaskRunnerArgs) -> TaskRunner {
        TaskRunner {
            ctx: args.ctx,
            driver: args.driver,
            tracker: args.tracker,
            restored: args.restored,
            state: args.state.unwrap_or_default(),
            kill: args.kill,
            shutdown: args.shutdown,
            inbox: args.inbox,
            states: args.states,
            last: None,
            artifacts_fetched: false,
        }
    }

    fn push(&mut self, ev: TaskEvent) {
        tracing::info!(
            alloc_id = %self.ctx.alloc.id,
            task = %self.ctx.task.name,
            node_id = %self.ctx.node.node_id,
            event = %ev.event_type,
            message = %ev.message,
            "task event"
        );
        self.state.events.push(ev);
        let excess = self.state.events.len().saturating_sub(MAX_EVENTS);
        self.state.events.drain(..excess);
    }

    fn publish(&self) {
        let _ = self
            .states
            .send((self.ctx.task.name.clone(), self.state.clone()));
    }

    fn event(&mut self, event_type: &str, message: impl Into<String>) {
        self.push(task_event(event_type, message));
        self.publish();
    }

    fn kill_requested(&self) -> Option<KillReason> {
        self.kill.borrow().clone()
    }

    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Runs the task until it is dead, killed, or the agent shuts down; returns its last state.
    pub async fn run(mut self) -> TaskState {
        let restored = self.restored.take();
        if restored.is_none() {
            self.event(event::RECEIVED, "Task received by client");
        }
        if let Err(e) = self.ctx.dirs.create() {
            let msg = format!(
                "failed to build task directory {}: {e}",
                self.ctx.dirs.task_dir.display()
            );
            self.push(task_event(event::SETUP_FAILURE, msg));
            self.dead(true);
            return self.state;
        }
        if restored.is_none() {
            self.event(event::TASK_SETUP, "Building Task Directory");
        }
        let mut next = restored;
        // It never ran, so it did not exit: starting it is finishing the interrupted start,
        // not a restart. (The engine's wait on it returns at once with exit code 0.)
        if let Some(h) = &next
            && matches!(self.driver.inspect_task(h).await, Ok(TaskStatus::Created))
        {
            tracing::info!(alloc_id = %h.alloc_id, task = %h.task, id = %h.id, "found the task created but never started; starting it");
            self.last = next.take();
        }
        if let Some(h) = &next {
            tracing::info!(alloc_id = %h.alloc_id, task = %h.task, id = %h.id, "re-attached to running task");
            self.tracker
                .on_started(tokio::time::Instant::now().into_std());
            self.state.state = TaskStateKind::Running;
            if self.state.started_at == 0 {
                self.state.started_at = h.started_at;
            }
            self.last = Some(h.clone());
            self.inbox.set_current(h);
            self.publish();
        }
        loop {
            if let Some(reason) = self.kill_requested() {
                return self.killed(None, reason).await;
            }
            if self.shutting_down() {
                return self.state;
            }
            let handle = match next.take() {
                Some(h) => h,
                None => match self.start().await {
                    Ok(Some(h)) => h,
                    Ok(None) => continue,
                    Err(done) => return done,
                },
            };
            match self.wait(&handle).await {
                Waited::Shutdown => return self.state,
                Waited::Killed(reason) => return self.killed(Some(handle), reason).await,
                Waited::Vanished => {
                    self.last = None;
                    self.ctx.replaces = Some(handle.id.clone());
                    // Not a crash: recreate now, without counting or delaying.
                    self.event(
                        event::RESTARTING,
                        "Task was removed outside of drover; recreating it now",
                    );
                    self.state.state = TaskStateKind::Pending;
                }
                Waited::RestartSignaled(reason) => {
                    self.event(event::RESTART_SIGNALED, reason);
                    let exit = self.stop_for_restart(&handle).await;
                    let mut ev = task_event(event::TERMINATED, exit_message(&exit));
                    ev.exit_code = Some(exit.exit_code);
                    ev.signal = Some(exit.signal);
                    self.push(ev);
                    self.state.finished_at = now_nanos();
                    let decision = self
                        .tracker
                        .on_restart_signaled(tokio::time::Instant::now().into_std());
                    if let Some(done) = self.follow(decision).await {
                        return done;
                    }
                }
                Waited::Exited(exit) => {
                    let mut ev = task_event(event::TERMINATED, exit_message(&exit));
                    ev.exit_code = Some(exit.exit_code);
                    ev.signal = Some(exit.signal);
                    ev.oom_killed = exit.oom_killed;
                    self.push(ev);
                    self.state.finished_at = now_nanos();
                    let decision = self
                        .tracker
                        .on_exit(tokio::time::Instant::now().into_std(), &exit);
                    if let Some(done) = self.follow(decision).await {
                        return done;
                    }
                }
            }
        }
    }

    /// Acts on a restart decision; `Some(final state)` when the runner is done.
    async fn follow(&mut self, decision: RestartDecision) -> Option<TaskState> {
        match decision {
            RestartDecision::Terminated => {
                self.dead(false);
                Some(self.state.clone())
            }
            RestartDecision::NotRestarting { reason } => {
                self.push(task_event(event::NOT_RESTARTING, reason));
                self.dead(true);
                Some(self.state.clone())
            }
            RestartDecision::Restart { delay, reason } => {
                let mut msg = reason;
                if !delay.is_zero() {
                    msg = format!("{msg}; restarting in {}", fmt_delay(delay));
                }
                self.push(task_event(event::RESTARTING, msg));
                self.state.state = TaskStateKind::Pending;
                self.state.restarts += 1;
                self.state.last_restart = now_nanos();
                self.publish();
                match self.sleep(delay).await {
                    None => None,
                    Some(Interrupted::Shutdown) => Some(self.state.clone()),
                    Some(Interrupted::Killed(reason)) => Some(self.killed(None, reason).await),
                }
            }
        }
    }

    /// `Ok(Some)` started, `Ok(None)` try again, `Err(final state)` done.
    async fn start(&mut self) -> Result<Option<TaskHandle>, TaskState> {
        let mut engine_wait = Duration::from_millis(250);
        let mut told = false;
        if let Some(old) = self.last.take()
            && let Err(e) = self.driver.destroy_task(&old, true).await
        {
            // Not fatal: a container left behind is removed when the name is reused.
            tracing::warn!(alloc_id = %old.alloc_id, task = %old.task, error = %e, "failed to remove the previous instance");
        }
        if !self.artifacts_fetched && !self.ctx.task.artifacts.is_empty() {
            match self.fetch_artifacts().await {
                Fetch::Done => self.artifacts_fetched = true,
                Fetch::Failed {
                    message,
                    recoverable,
                } => {
                    self.push(task_event(event::ARTIFACT_DOWNLOAD_FAILED, message));
                    let decision = self
                        .tracker
                        .on_prestart_error(tokio::time::Instant::now().into_std(), recoverable);
                    return match self.follow(decision).await {
                        Some(done) => Err(done),
                        None => Ok(None),
                    };
                }
                Fetch::Interrupted(Interrupted::Shutdown) => return Err(self.state.clone()),
                Fetch::Interrupted(Interrupted::Killed(reason)) => {
                    return Err(self.killed(None, reason).await);
                }
            }
        }
        loop {
            match self.driver.start_task(&self.ctx).await {
                Ok(h) => {
                    self.tracker
                        .on_started(tokio::time::Instant::now().into_std());
                    self.state.state = TaskStateKind::Running;
                    self.state.started_at = now_nanos();
                    self.state.failed = false;
                    self.last = Some(h.clone());
                    self.inbox.set_current(&h);
                    self.event(event::STARTED, "Task started by client");
                    return Ok(Some(h));
                }
                Err(e) if e.is_engine_unavailable() => {
                    // The engine being down is not the task's fault: wait, do not count.
                    if !told {
                        self.event(
                            event::DRIVER,
                            format!(
                                "Waiting for the {} driver to become healthy: {e}",
                                self.driver.name()
                            ),
                        );
                        told = true;
                    }
                    match self.sleep(engine_wait).await {
                        None => engine_wait = (engine_wait * 2).min(ENGINE_RETRY_MAX),
                        Some(Interrupted::Shutdown) => return Err(self.state.clone()),
                        Some(Interrupted::Killed(reason)) => {
                            return Err(self.killed(None, reason).await);
                        }
                    }
                }
                Err(e) => {
                    self.push(task_event(event::DRIVER_FAILURE, e.to_string()));
                    let decision = self
                        .tracker
                        .on_start_error(tokio::time::Instant::now().into_std(), &e);
                    return match self.follow(decision).await {
                        Some(done) => Err(done),
                        None => Ok(None),
                    };
                }
            }
        }
    }

    /// Fetches every artifact of the task in order, off the async runtime; a kill or shutdown
    /// cancels the download in flight.
    async fn fetch_artifacts(&mut self) -> Fetch {
        self.event(
            event::DOWNLOADING_ARTIFACTS,
            "Client is downloading artifacts",
        );
        let env = task_env(&self.ctx, PathView::Container);
        let node = self.ctx.node.clone();
        for a in &self.ctx.task.artifacts {
            let mut a = a.clone();
            a.source = interpolate(&a.source, &env, &node);
            a.destination = interpolate(&a.destination, &env, &node);
            for v in a.options.values_mut().chain(a.headers.values_mut()) {
                *v = interpolate(v, &env, &node);
            }
            let failed = |e: &ArtifactError, recoverable| Fetch::Failed {
                message: format!("failed to download artifact {:?}: {e}", a.source),
                recoverable,
            };
            let plan = match Plan::new(&a) {
                Ok(p) => p,
                // The same job file will not get any better.
                Err(e) => return failed(&e, false),
            };
            let cancel = Arc::new(AtomicBool::new(false));
            let job = {
                let cancel = cancel.clone();
                let task_dir = self.ctx.dirs.task_dir.clone();
                let limits = node.artifact_limits;
                tokio::task::spawn_blocking(move || fetch(&plan, &task_dir, &limits, &cancel))
            };
            let mut kill = self.kill.clone();
            let mut shutdown = self.shutdown.clone();
            tokio::pin!(job);
            let outcome = loop {
                if let Some(reason) = self.kill_requested() {
                    cancel.store(true, Ordering::Relaxed);
                    return Fetch::Interrupted(Interrupted::Killed(reason));
                }
                if self.shutting_down() {
                    cancel.store(true, Ordering::Relaxed);
                    return Fetch::Interrupted(Interrupted::Shutdown);
                }
                tokio::select! {
                    r = &mut job => break r,
                    r = kill.changed() => if r.is_err() { cancel.store(true, Ordering::Relaxed); return Fetch::Interrupted(Interrupted::Shutdown) },
                    r = shutdown.changed() => if r.is_err() { cancel.store(true, Ordering::Relaxed); return Fetch::Interrupted(Interrupted::Shutdown) },
                }
            };
            match outcome {
                Ok(Ok(got)) => {
                    tracing::info!(alloc_id = %self.ctx.alloc.id, task = %self.ctx.task.name, source = %a.source, path = %got.path.display(), bytes = got.bytes, files = got.files, "artifact fetched");
                }
                Ok(Err(e)) => {
                    let recoverable = !matches!(
                        e,
                        ArtifactError::Invalid { .. }
                            | ArtifactError::UnsupportedSource { .. }
                            | ArtifactError::Destination { .. }
                    );
                    return failed(&e, recoverable);
                }
                Err(join) => {
                    return Fetch::Failed {
                        message: format!("failed to download artifact {:?}: {join}", a.source),
                        recoverable: true,
                    };
                }
            }
        }
        Fetch::Done
    }

    async fn wait(&mut self, h: &TaskHandle) -> Waited {
        let mut kill = self.kill.clone();
        let mut shutdown = self.shutdown.clone();
        let inbox = self.inbox.clone();
        let mut trouble = Duration::from_millis(100);
        // A SIGKILL from outside (`docker rm -f`, `docker kill`) seen for this instance.
        let mut killed_outside = false;
        loop {
            if let Some(reason) = self.kill_requested() {
                return Waited::Killed(reason);
            }
            if self.shutting_down() {
                return Waited::Shutdown;
            }
            // A closed channel means the alloc runner is gone: stop watching, leave the task be.
            let outcome = tokio::select! {
                r = kill.changed() => if r.is_err() { return Waited::Shutdown } else { continue },
                r = shutdown.changed() => if r.is_err() { return Waited::Shutdown } else { continue },
                _ = inbox.notify.notified() => None,
                r = self.driver.wait_task(h) => Some(r),
            };
            let r = match outcome {
                Some(r) => r,
                None => {
                    if let Some(reason) = inbox.take_restart() {
                        return Waited::RestartSignaled(reason);
                    }
                    // Woken by the engine: only this instance's events count (others are
                    // about a container already replaced).
                    let mut died = false;
                    for ev in inbox.drain().into_iter().filter(|e| e.id == h.id) {
                        match ev.action.as_str() {
                            "destroy" => return Waited::Vanished,
                            "kill" if is_sigkill(ev.signal.as_deref()) => killed_outside = true,
                            "die" | "oom" => died = true,
                            _ => {}
                        }
                    }
                    if !died {
                        continue;
                    }
                    if killed_outside {
                        // Removed or killed by an operator, not crashed: replace it now. The
                        // engine confirms a removal only after it has finished (~200 ms later).
                        return Waited::Vanished;
                    }
                    match self.look_after_event(h).await {
                        Some(r) => r,
                        None => continue,
                    }
                }
            };
            match r {
                Ok(exit) => {
                    // The wait and the event stream race: an operator's SIGKILL may already
                    // be in the inbox when the wait returns first.
                    let from_outside = |events: Vec<EngineEvent>| {
                        events.iter().filter(|e| e.id == h.id).any(|e| {
                            e.action == "destroy"
                                || (e.action == "kill" && is_sigkill(e.signal.as_deref()))
                        })
                    };
                    if killed_outside || from_outside(inbox.drain()) {
                        return Waited::Vanished;
                    }
                    // Killed by SIGKILL and no event yet: under load the engine's event can
                    // trail the wait. Give it a moment before counting a crash.
                    let sigkilled = (exit.exit_code == 137 || exit.signal == 9) && !exit.oom_killed;
                    if sigkilled {
                        let deadline = tokio::time::Instant::now() + OUTSIDE_KILL_GRACE;
                        while tokio::time::timeout_at(deadline, inbox.notify.notified())
                            .await
                            .is_ok()
                        {
                            if from_outside(inbox.drain()) {
                                return Waited::Vanished;
                            }
                        }
                        // Still no event, but a `docker rm -f` has finished (or is finishing)
                        // its removal by now: a container that is gone was not a crash. (Seen
                        // in a full CI run: one removal in twenty counted as a restart.)
                        if let Err(DriverError::TaskNotFound { .. }) =
                            self.driver.inspect_task(h).await
                        {
                            return Waited::Vanished;
                        }
                    }
                    return Waited::Exited(exit);
                }
                Err(DriverError::TaskNotFound { .. }) => return Waited::Vanished,
                Err(e) => {
                    // Lost contact with the engine: the task may well be fine. Look again
                    // later rather than guess; never restart on a guess.
                    tracing::warn!(alloc_id = %h.alloc_id, task = %h.task, error = %e, "failed to wait for task; checking again");
                    tokio::select! {
                        _ = tokio::time::sleep(trouble) => {}
                        _ = kill.changed() => {}
                        _ = shutdown.changed() => {}
                    }
                    trouble = (trouble * 2).min(ENGINE_RETRY_MAX);
                    match self.driver.inspect_task(h).await {
                        Ok(TaskStatus::Exited(exit)) => return Waited::Exited(exit),
                        Err(DriverError::TaskNotFound { .. }) => return Waited::Vanished,
                        _ => continue,
                    }
                }
            }
        }
    }

    /// After an engine event, the engine's container list can lag its event stream by a few
    /// milliseconds (a `die` is published before the state is recorded), so a task that still
    /// looks running is looked at a few more times before going back to waiting. `None`: it
    /// is running.
    async fn look_after_event(&self, h: &TaskHandle) -> Option<Result<ExitResult, DriverError>> {
        for _ in 0..EVENT_LOOKS {
            match self.driver.inspect_task(h).await {
                Ok(TaskStatus::Running | TaskStatus::Created) => {
                    tokio::time::sleep(EVENT_LOOK_INTERVAL).await;
                }
                Ok(TaskStatus::Exited(exit)) => return Some(Ok(exit)),
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    /// Stops the instance a restart was asked for, with the task's kill signal and timeout,
    /// and says how it ended. The instance is kept as `last`, so the next start removes it.
    async fn stop_for_restart(&mut self, h: &TaskHandle) -> ExitResult {
        let signal = self
            .ctx
            .task
            .kill_signal
            .clone()
            .unwrap_or_else(|| "SIGTERM".into());
        if let Err(e) = self
            .driver
            .stop_task(h, self.ctx.task.kill_timeout, &signal)
            .await
        {
            tracing::warn!(alloc_id = %h.alloc_id, task = %h.task, error = %e, "failed to stop task for a restart");
        }
        let exit = match self.driver.inspect_task(h).await {
            Ok(TaskStatus::Exited(exit)) => exit,
            // Stopped but not yet reported, or already gone: it was stopped on purpose.
            _ => ExitResult::default(),
        };
        // The engine's events about stopping it are ours, not an operator's.
        self.inbox.drain();
        self.last = Some(h.clone());
        exit
    }

    /// Sleeps `d` unless the agent shuts down first (a kill is what is being waited out).
    async fn sleep_ignoring_kill(&mut self, d: Duration) -> Option<Interrupted> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if self.shutting_down() {
                return Some(Interrupted::Shutdown);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return None,
                r = self.shutdown.changed() => if r.is_err() { return Some(Interrupted::Shutdown) },
            }
        }
    }

    /// Sleeps `d` unless killed or shut down first.
    async fn sleep(&mut self, d: Duration) -> Option<Interrupted> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(reason) = self.kill_requested() {
                return Some(Interrupted::Killed(reason));
            }
            if self.shutting_down() {
                return Some(Interrupted::Shutdown);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return None,
                r = self.kill.changed() => if r.is_err() { return Some(Interrupted::Shutdown) },
                r = self.shutdown.changed() => if r.is_err() { return Some(Interrupted::Shutdown) },
            }
        }
    }

    /// Stops the running instance (if any) with the task's kill signal and timeout, removes
    /// what is left, and marks the task dead.
    async fn killed(&mut self, running: Option<TaskHandle>, reason: KillReason) -> TaskState {
        match &reason {
            KillReason::SiblingFailed(t) => self.push(task_event(
                event::SIBLING_FAILED,
                format!("Task's sibling {t:?} failed"),
            )),
            KillReason::LeaderDead(t) => self.push(task_event(
                event::LEADER_DEAD,
                format!("Leader task {t:?} is dead"),
            )),
            KillReason::Stop => {}
        }
        let signal = self
            .ctx
            .task
            .kill_signal
            .clone()
            .unwrap_or_else(|| "SIGTERM".into());
        let timeout = self.ctx.task.kill_timeout;
        if let Some(h) = running.as_ref() {
            let delay = self.ctx.task.shutdown_delay;
            if !delay.is_zero() {
                // Nomad's shutdown_delay: services are already gone, in-flight work drains.
                self.event(
                    event::KILLING,
                    format!(
                        "Waiting for shutdown_delay of {} before killing the task.",
                        fmt_delay(delay)
                    ),
                );
                if let Some(Interrupted::Shutdown) = self.sleep_ignoring_kill(delay).await {
                    return self.state.clone();
                }
            }
            self.event(
                event::KILLING,
                format!(
                    "Sent interrupt ({signal}). Waiting {} before force killing",
                    fmt_delay(timeout)
                ),
            );
            if let Err(e) = self.driver.stop_task(h, timeout, &signal).await {
                tracing::warn!(alloc_id = %h.alloc_id, task = %h.task, error = %e, "failed to stop task");
            }
        }
        if let Some(h) = running.or_else(|| self.last.take())
            && let Err(e) = self.driver.destroy_task(&h, true).await
        {
            tracing::warn!(alloc_id = %h.alloc_id, task = %h.task, error = %e, "failed to destroy task");
        }
        self.push(task_event(event::KILLED, "Task successfully killed"));
        let failed = self.state.failed;
        self.dead(failed);
        self.state.clone()
    }

    fn dead(&mut self, failed: bool) {
        self.state.state = TaskStateKind::Dead;
        self.state.failed = failed;
        if self.state.finished_at == 0 {
            self.state.finished_at = now_nanos();
        }
        self.publish();
    }
}

/// Engines report the signal as a number or a name.
/// How long a task that died of SIGKILL waits for the engine's `kill` event that tells an
/// operator's `docker kill`/`rm -f` from a crash.
const OUTSIDE_KILL_GRACE: Duration = Duration::from_millis(500);

fn is_sigkill(signal: Option<&str>) -> bool {
    matches!(signal, Some("9" | "SIGKILL" | "KILL"))
}

fn exit_message(exit: &ExitResult) -> String {
    let mut m = format!("Exit Code: {}, Signal: {}", exit.exit_code, exit.signal);
    if exit.oom_killed {
        m.push_str(", OOM Killed: true");
    }
    if let Some(e) = &exit.err {
        m.push_str(&format!(", Exit Message: {e:?}"));
    }
    m
}

fn fmt_delay(d: Duration) -> String {
    if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests;
