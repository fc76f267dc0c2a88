//! A recording driver for task runner and client tests (youki's recording test syscall): every
//! call is recorded, starts and exits are scripted, and a test can make a task exit or vanish
//! at the moment it chooses.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{Driver, DriverError, LogChunks, LogStream, TaskCtx, TaskHandle, TaskStatus};
use crate::spec::{DriverInfo, ExitResult};

/// One call the driver received.
#[derive(Debug, Clone, PartialEq)]
pub enum MockCall {
    Start {
        alloc_id: String,
        task: String,
    },
    Wait {
        id: String,
    },
    Stop {
        id: String,
        timeout: Duration,
        signal: String,
    },
    Destroy {
        id: String,
        force: bool,
    },
    Recover {
        node_id: String,
    },
    Inspect {
        id: String,
    },
    Logs {
        id: String,
    },
}

/// How a task ends.
#[derive(Debug, Clone, PartialEq)]
pub enum MockExit {
    Exit(ExitResult),
    /// Removed from outside the agent: wait reports `TaskNotFound`.
    Vanish,
}

impl MockExit {
    pub fn code(code: i32) -> MockExit {
        MockExit::Exit(ExitResult {
            exit_code: code,
            ..ExitResult::default()
        })
    }
}

#[derive(Default)]
struct State {
    calls: Vec<MockCall>,
    start_errors: VecDeque<DriverError>,
    /// Exits that happen as soon as the next started task is waited on.
    scripted_exits: VecDeque<MockExit>,
    handles: HashMap<String, TaskHandle>,
    ended: HashMap<String, MockExit>,
    recoverable: Vec<TaskHandle>,
    next_id: u64,
    unhealthy: Option<String>,
}

pub struct MockDriver {
    state: Mutex<State>,
    /// Bumped on every change, so waiters re-check.
    version: watch::Sender<u64>,
}

impl MockDriver {
    pub fn new() -> Arc<MockDriver> {
        Arc::new(MockDriver {
            state: Mutex::new(State::default()),
            version: watch::Sender::new(0),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.state.lock().expect("mock driver lock poisoned"));
        self.version.send_modify(|v| *v += 1);
        r
    }

    /// The next start fails with `err`.
    pub fn script_start_error(&self, err: DriverError) {
        self.with(|s| s.start_errors.push_back(err));
    }

    /// The next task waited on ends like this at once.
    pub fn script_exit(&self, exit: MockExit) {
        self.with(|s| s.scripted_exits.push_back(exit));
    }

    /// Ends the newest running instance of `task`.
    pub fn finish(&self, task: &str, exit: MockExit) -> bool {
        self.with(|s| {
            let newest = s
                .handles
                .values()
                .filter(|h| h.task == task && !s.ended.contains_key(&h.id))
                .max_by_key(|h| h.id.parse::<u64>().unwrap_or(0))
                .map(|h| h.id.clone());
            match newest {
                Some(id) => {
                    s.ended.insert(id, exit);
                    true
                }
                None => false,
            }
        })
    }

    /// Tasks `recover_tasks` will report, as if left running by an earlier agent.
    pub fn leave_running(&self, handle: TaskHandle) {
        self.with(|s| {
            s.handles.insert(handle.id.clone(), handle.clone());
            s.recoverable.push(handle);
        });
    }

    pub fn set_unhealthy(&self, why: Option<&str>) {
        self.with(|s| s.unhealthy = why.map(String::from));
    }

    pub fn calls(&self) -> Vec<MockCall> {
        self.state
            .lock()
            .expect("mock driver lock poisoned")
            .calls
            .clone()
    }

    /// How many times `task` was started.
    pub fn starts(&self, task: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, MockCall::Start { task: t, .. } if t == task))
            .count()
    }

    /// Ids of instances that have not ended.
    pub fn running(&self) -> Vec<TaskHandle> {
        let s = self.state.lock().expect("mock driver lock poisoned");
        let mut v: Vec<TaskHandle> = s
            .handles
            .values()
            .filter(|h| !s.ended.contains_key(&h.id))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

fn not_found(h: &TaskHandle) -> DriverError {
    DriverError::TaskNotFound {
        alloc_id: h.alloc_id.clone(),
        task: h.task.clone(),
        id: h.id.clone(),
    }
}

#[async_trait::async_trait]
impl Driver for MockDriver {
    fn name(&self) -> &'static str {
        "mock"
    }

    async fn fingerprint(&self) -> DriverInfo {
        let unhealthy = self
            .state
            .lock()
            .expect("mock driver lock poisoned")
            .unhealthy
            .clone();
        DriverInfo {
            detected: true,
            healthy: unhealthy.is_none(),
            health_description: unhealthy.unwrap_or_else(|| "Healthy".into()),
            update_time: 0,
        }
    }

    async fn start_task(&self, ctx: &TaskCtx) -> Result<TaskHandle, DriverError> {
        self.with(|s| {
            s.calls.push(MockCall::Start {
                alloc_id: ctx.alloc.id.clone(),
                task: ctx.task.name.clone(),
            });
            if let Some(err) = s.start_errors.pop_front() {
                return Err(err);
            }
            s.next_id += 1;
            let h = TaskHandle {
                driver: "mock".into(),
                alloc_id: ctx.alloc.id.clone(),
                task: ctx.task.name.clone(),
                job_id: ctx.alloc.job_id.clone(),
                id: s.next_id.to_string(),
                started_at: 0,
            };
            s.handles.insert(h.id.clone(), h.clone());
            if let Some(exit) = s.scripted_exits.pop_front() {
                s.ended.insert(h.id.clone(), exit);
            }
            Ok(h)
        })
    }

    async fn wait_task(&self, handle: &TaskHandle) -> Result<ExitResult, DriverError> {
        let mut rx = self.version.subscribe();
        self.with(|s| {
            s.calls.push(MockCall::Wait {
                id: handle.id.clone(),
            })
        });
        loop {
            let ended = {
                let s = self.state.lock().expect("mock driver lock poisoned");
                if !s.handles.contains_key(&handle.id) {
                    return Err(not_found(handle));
                }
                s.ended.get(&handle.id).cloned()
            };
            match ended {
                Some(MockExit::Exit(e)) => return Ok(e),
                Some(MockExit::Vanish) => return Err(not_found(handle)),
                None => {}
            }
            if rx.changed().await.is_err() {
                return Err(not_found(handle));
            }
        }
    }

    async fn stop_task(
        &self,
        handle: &TaskHandle,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        self.with(|s| {
            s.calls.push(MockCall::Stop {
                id: handle.id.clone(),
                timeout,
                signal: signal.to_string(),
            });
            if s.handles.contains_key(&handle.id) {
                s.ended
                    .entry(handle.id.clone())
                    .or_insert(MockExit::Exit(ExitResult {
                        exit_code: 143,
                        ..ExitResult::default()
                    }));
            }
        });
        Ok(())
    }

    async fn destroy_task(&self, handle: &TaskHandle, force: bool) -> Result<(), DriverError> {
        self.with(|s| {
            s.calls.push(MockCall::Destroy {
                id: handle.id.clone(),
                force,
            });
            s.handles.remove(&handle.id);
            s.ended.remove(&handle.id);
            s.recoverable.retain(|h| h.id != handle.id);
        });
        Ok(())
    }

    async fn recover_tasks(&self, node_id: &str) -> Result<Vec<TaskHandle>, DriverError> {
        Ok(self.with(|s| {
            s.calls.push(MockCall::Recover {
                node_id: node_id.to_string(),
            });
            s.recoverable.clone()
        }))
    }

    async fn inspect_task(&self, handle: &TaskHandle) -> Result<TaskStatus, DriverError> {
        self.with(|s| {
            s.calls.push(MockCall::Inspect {
                id: handle.id.clone(),
            });
            if !s.handles.contains_key(&handle.id) {
                return Err(not_found(handle));
            }
            match s.ended.get(&handle.id) {
                None => Ok(TaskStatus::Running),
                Some(MockExit::Exit(e)) => Ok(TaskStatus::Exited(e.clone())),
                Some(MockExit::Vanish) => Err(not_found(handle)),
            }
        })
    }

    async fn logs(
        &self,
        handle: &TaskHandle,
        _stream: LogStream,
        _follow: bool,
        _tail: Option<usize>,
    ) -> Result<LogChunks, DriverError> {
        self.with(|s| {
            s.calls.push(MockCall::Logs {
                id: handle.id.clone(),
            })
        });
        Ok(Box::pin(futures_util::stream::empty()))
    }
}
