//! The driver surface (Nomad's `plugins/drivers`): what the task runner asks of anything that can
//! run a task — start, wait, stop, destroy, recover after an agent restart, inspect, logs — plus
//! the one error type every driver returns. Drivers own no restart policy: they report facts and
//! the task runner decides.

pub mod docker;
pub mod env;
pub mod mock;
pub mod raw_exec;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::spec::{AllocSpec, DriverInfo, ExitResult, Task};

/// Labels drover puts on every container it creates; `recover_tasks` and `sync` find them again.
pub const LABEL_ALLOC: &str = "drover.alloc";
pub const LABEL_JOB: &str = "drover.job";
pub const LABEL_GROUP: &str = "drover.group";
pub const LABEL_TASK: &str = "drover.task";
pub const LABEL_NODE: &str = "drover.node";

/// What a task sees of the node it runs on: the source of `${node.*}`, `${attr.*}`, `${meta.*}`,
/// `NOMAD_DC`, `NOMAD_REGION` and the address ports bind on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeEnv {
    pub node_id: String,
    pub name: String,
    pub datacenter: String,
    pub region: String,
    pub node_class: String,
    pub node_pool: String,
    /// Host ports bind on this address.
    pub address: String,
    pub attributes: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    /// The node's caps on artifact downloads (`client { artifact { … } }`).
    pub artifact_limits: crate::artifact::ArtifactLimits,
}

/// Nomad's directory layout for one task, as host paths.
///
/// `<data_dir>/alloc/<alloc_id>/alloc/{logs,data,tmp}` is shared by the tasks of an allocation;
/// `<data_dir>/alloc/<alloc_id>/<task>/{local,secrets,tmp}` is the task's own.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDirs {
    /// `<data_dir>/alloc/<alloc_id>`.
    pub alloc_root: PathBuf,
    /// `<alloc_root>/alloc`, mounted at `/alloc`.
    pub shared_alloc_dir: PathBuf,
    /// `<alloc_root>/<task>`.
    pub task_dir: PathBuf,
    pub local_dir: PathBuf,
    pub secrets_dir: PathBuf,
    pub logs_dir: PathBuf,
}

impl TaskDirs {
    pub fn new(data_dir: &std::path::Path, alloc_id: &str, task: &str) -> TaskDirs {
        let alloc_root = data_dir.join("alloc").join(alloc_id);
        let shared_alloc_dir = alloc_root.join("alloc");
        let task_dir = alloc_root.join(task);
        TaskDirs {
            logs_dir: shared_alloc_dir.join("logs"),
            local_dir: task_dir.join("local"),
            secrets_dir: task_dir.join("secrets"),
            shared_alloc_dir,
            task_dir,
            alloc_root,
        }
    }

    /// Creates the whole layout; safe to call again on a restart.
    pub fn create(&self) -> std::io::Result<()> {
        for dir in [
            self.shared_alloc_dir.join("logs"),
            self.shared_alloc_dir.join("data"),
            self.shared_alloc_dir.join("tmp"),
            self.local_dir.clone(),
            self.secrets_dir.clone(),
            self.task_dir.join("tmp"),
        ] {
            std::fs::create_dir_all(&dir)?;
        }
        Ok(())
    }
}

/// Everything a driver needs to start one task of one allocation.
#[derive(Debug, Clone)]
pub struct TaskCtx {
    pub alloc: Arc<AllocSpec>,
    pub task: Task,
    pub node: Arc<NodeEnv>,
    pub dirs: TaskDirs,
    /// The instance this start replaces, known to be going away (removed or killed from
    /// outside): never adopted, and its name need not be waited for.
    pub replaces: Option<String>,
}

/// Something the engine said about one of drover's tasks. Events only wake the task's runner,
/// which looks for itself; they are hints, never orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    pub alloc_id: String,
    pub task: String,
    /// The container id (or pid).
    pub id: String,
    /// `die`, `destroy`, `oom`, `kill`.
    pub action: String,
    /// For `kill`: the signal sent, as the engine reports it (`9`, `15` …).
    pub signal: Option<String>,
}

impl TaskCtx {
    pub fn alloc_id(&self) -> &str {
        &self.alloc.id
    }
}

/// A running (or finished) task as its driver knows it. Serialisable so a client could persist
/// it, although drivers can rebuild it from what they left on the node (labels, pid files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskHandle {
    pub driver: String,
    pub alloc_id: String,
    pub task: String,
    pub job_id: String,
    /// The container id, or the pid for raw_exec.
    pub id: String,
    /// Unix nanoseconds; 0 when unknown.
    pub started_at: i64,
}

/// What `inspect_task` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    Running,
    Exited(ExitResult),
    /// Created but never started: an agent killed between the engine's create and start.
    Created,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

pub type LogChunks = Pin<Box<dyn Stream<Item = Result<Vec<u8>, DriverError>> + Send>>;

/// A task driver. Implementations are cheap to share (`Arc<dyn Driver>`).
#[async_trait::async_trait]
pub trait Driver: Send + Sync + 'static {
    /// `docker`, `raw_exec`, `mock`.
    fn name(&self) -> &'static str;

    /// Whether the driver can run tasks now, as the node reports it.
    async fn fingerprint(&self) -> DriverInfo;

    /// Node attributes the driver adds while it is detected (Nomad's fingerprinted
    /// `driver.docker.privileged.enabled` …), so jobs can constrain on what the node allows.
    fn node_attributes(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Starts the task, adopting one that is already running for the same allocation.
    async fn start_task(&self, ctx: &TaskCtx) -> Result<TaskHandle, DriverError>;

    /// Resolves when the task ends. [`DriverError::TaskNotFound`] means it was removed from
    /// outside the agent and no exit status exists.
    async fn wait_task(&self, handle: &TaskHandle) -> Result<ExitResult, DriverError>;

    /// Sends `signal`, then kills after `timeout`. A task that is already gone is stopped.
    async fn stop_task(
        &self,
        handle: &TaskHandle,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError>;

    /// Frees what the task held (the container, the pid file). `force` kills it first.
    async fn destroy_task(&self, handle: &TaskHandle, force: bool) -> Result<(), DriverError>;

    /// Every task this driver runs for `node_id`, found on the node itself.
    async fn recover_tasks(&self, node_id: &str) -> Result<Vec<TaskHandle>, DriverError>;

    async fn inspect_task(&self, handle: &TaskHandle) -> Result<TaskStatus, DriverError>;

    /// The task's own address inside the driver's network, for `address_mode = "driver"`
    /// services and checks. Drivers whose tasks share the host's network have none.
    async fn task_network(
        &self,
        _handle: &TaskHandle,
    ) -> Result<Option<crate::spec::DriverNetwork>, DriverError> {
        Ok(None)
    }

    /// The task's output. `tail` limits a non-follow read to the last lines.
    async fn logs(
        &self,
        handle: &TaskHandle,
        stream: LogStream,
        follow: bool,
        tail: Option<usize>,
    ) -> Result<LogChunks, DriverError>;
}

/// The drivers a client has, by name.
pub type Drivers = BTreeMap<String, Arc<dyn Driver>>;

/// Why a driver could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("failed to reach the {driver} driver's engine: {message}")]
    EngineUnavailable {
        driver: &'static str,
        message: String,
    },
    #[error("failed to {op} container {container} for task {task} of alloc {alloc_id}: {source}")]
    Engine {
        op: &'static str,
        alloc_id: String,
        task: String,
        container: String,
        // Boxed: the engine's error is large and every driver result carries this type.
        #[source]
        source: Box<bollard::errors::Error>,
    },
    #[error("failed to list drover's containers on node {node_id}: {source}")]
    List {
        node_id: String,
        #[source]
        source: Box<bollard::errors::Error>,
    },
    #[error(
        "failed to create container for task {task} of alloc {alloc_id}: image {image} is not on this node ({message}); build or load it, drover does not pull it"
    )]
    ImageNotFound {
        alloc_id: String,
        task: String,
        image: String,
        message: String,
    },
    #[error("failed to configure task {task} of alloc {alloc_id}: {field}: {message}")]
    InvalidConfig {
        alloc_id: String,
        task: String,
        field: String,
        message: String,
    },
    #[error(
        "failed to find task {task} of alloc {alloc_id} ({id}): it was removed from outside the agent"
    )]
    TaskNotFound {
        alloc_id: String,
        task: String,
        id: String,
    },
    #[error("failed to spawn {command} for task {task} of alloc {alloc_id}: {source}")]
    Spawn {
        alloc_id: String,
        task: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to signal task {task} of alloc {alloc_id} (pid {pid}): {source}")]
    Signal {
        alloc_id: String,
        task: String,
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to run task {task} of alloc {alloc_id}: driver {driver} is not enabled on this node"
    )]
    NotEnabled {
        alloc_id: String,
        task: String,
        driver: String,
    },
}

impl DriverError {
    /// Whether trying again may succeed; an unrecoverable start error fails the task at once
    /// (Nomad's `structs.NewRecoverableError`).
    pub fn is_recoverable(&self) -> bool {
        match self {
            DriverError::EngineUnavailable { .. }
            | DriverError::List { .. }
            | DriverError::TaskNotFound { .. }
            | DriverError::Io { .. }
            | DriverError::Signal { .. } => true,
            DriverError::Engine { source, .. } => engine_error_is_transient(source),
            DriverError::ImageNotFound { .. }
            | DriverError::InvalidConfig { .. }
            | DriverError::Spawn { .. }
            | DriverError::NotEnabled { .. } => false,
        }
    }

    /// The error's name in metrics (`drover_driver_errors_total{reason=…}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            DriverError::EngineUnavailable { .. } => "engine_unavailable",
            DriverError::Engine { .. } => "engine",
            DriverError::List { .. } => "list",
            DriverError::ImageNotFound { .. } => "image_not_found",
            DriverError::InvalidConfig { .. } => "invalid_config",
            DriverError::TaskNotFound { .. } => "task_not_found",
            DriverError::Spawn { .. } => "spawn",
            DriverError::Io { .. } => "io",
            DriverError::Signal { .. } => "signal",
            DriverError::NotEnabled { .. } => "not_enabled",
        }
    }

    /// The engine is down: the task should wait for it rather than count a failed attempt.
    pub fn is_engine_unavailable(&self) -> bool {
        match self {
            DriverError::EngineUnavailable { .. } => true,
            DriverError::Engine { source, .. } | DriverError::List { source, .. } => {
                engine_is_unreachable(source)
            }
            _ => false,
        }
    }
}

/// Connection-level failures: the engine did not answer at all.
pub(crate) fn engine_is_unreachable(err: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        err,
        E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::IOError { .. }
            | E::SocketNotFoundError(_)
            | E::RequestTimeoutError
    )
}

fn engine_error_is_transient(err: &bollard::errors::Error) -> bool {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => {
            *status_code >= 500 || *status_code == 409
        }
        other => engine_is_unreachable(other),
    }
}
