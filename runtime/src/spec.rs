//! What a node needs to run a task: the task model shared by the control plane (which parses and
//! schedules it) and the node (which runs it). Types that cross the wire between server and client
//! live here so that `runtime` never depends on `controller`.
//!
//! Names and defaults follow Nomad's jobspec (`task`, `resources`, `restart`, `service`, …).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Nomad's default for `kill_timeout`.
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// Nomad's default `resources.cpu`, in MHz.
pub const DEFAULT_CPU_MHZ: u64 = 100;
/// Nomad's default `resources.memory`, in MB.
pub const DEFAULT_MEMORY_MB: u64 = 300;

/// One task of a group: a container or a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub name: String,
    pub driver: String,
    pub config: TaskConfig,
    /// Kept in file order so `NOMAD_*`-style references resolve predictably.
    pub env: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub resources: Resources,
    /// `None` inherits the group's policy (Nomad merges task over group).
    pub restart: Option<RestartPolicy>,
    pub services: Vec<Service>,
    pub artifacts: Vec<Artifact>,
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
    pub kill_timeout: Duration,
    /// `None` means the driver's default (SIGTERM for docker and raw_exec).
    pub kill_signal: Option<String>,
    pub shutdown_delay: Duration,
    pub user: Option<String>,
    pub leader: bool,
    pub logs: LogConfig,
}

/// The driver-specific `config` block, typed for the drivers drover runs.
// Built once per task and kept inside the task: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "snake_case")]
pub enum TaskConfig {
    Docker(DockerConfig),
    RawExec(RawExecConfig),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerConfig {
    pub image: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    /// Labels of the group network ports this task binds.
    pub ports: Vec<String>,
    pub dns_servers: Vec<String>,
    pub dns_search_domains: Vec<String>,
    pub dns_options: Vec<String>,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub network_mode: Option<String>,
    pub hostname: Option<String>,
    pub extra_hosts: Vec<String>,
    pub work_dir: Option<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub init: bool,
    pub interactive: bool,
    pub tty: bool,
    pub force_pull: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawExecConfig {
    pub command: String,
    pub args: Vec<String>,
    pub work_dir: Option<String>,
}

impl TaskConfig {
    pub fn driver_name(&self) -> &'static str {
        match self {
            TaskConfig::Docker(_) => "docker",
            TaskConfig::RawExec(_) => "raw_exec",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// MHz.
    pub cpu: u64,
    /// Reserved cores; 0 when `cpu` is used instead.
    pub cores: u64,
    /// MB.
    pub memory: u64,
    /// MB; 0 means no hard limit above `memory` (Nomad: memory oversubscription off).
    pub memory_max: u64,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: DEFAULT_CPU_MHZ,
            cores: 0,
            memory: DEFAULT_MEMORY_MB,
            memory_max: 0,
        }
    }
}

/// A group's network (`network {}`): the ports its tasks share.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkResource {
    /// `host` (the default), `bridge`, `none`, or `cni/<name>`.
    pub mode: String,
    pub reserved_ports: Vec<Port>,
    pub dynamic_ports: Vec<Port>,
    pub hostname: Option<String>,
    pub dns: Option<DnsConfig>,
}

impl NetworkResource {
    pub fn ports(&self) -> impl Iterator<Item = &Port> {
        self.reserved_ports.iter().chain(self.dynamic_ports.iter())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub label: String,
    /// The host port; 0 for a dynamic port until it is assigned.
    pub value: u16,
    /// The port inside the task; 0 means the same as the host port.
    pub to: u16,
    pub host_network: Option<String>,
    pub ignore_collision: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartMode {
    Fail,
    Delay,
}

impl RestartMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartMode::Fail => "fail",
            RestartMode::Delay => "delay",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub attempts: u32,
    pub interval: Duration,
    pub delay: Duration,
    pub mode: RestartMode,
    pub render_templates: bool,
}

impl RestartPolicy {
    /// Nomad's default for `type = "service"` (and `system`) jobs.
    pub fn service_default() -> Self {
        RestartPolicy {
            attempts: 2,
            interval: Duration::from_secs(30 * 60),
            delay: Duration::from_secs(15),
            mode: RestartMode::Fail,
            render_templates: false,
        }
    }

    /// Nomad's default for `type = "batch"` (and `sysbatch`) jobs.
    pub fn batch_default() -> Self {
        RestartPolicy {
            attempts: 3,
            interval: Duration::from_secs(24 * 3600),
            delay: Duration::from_secs(15),
            mode: RestartMode::Fail,
            render_templates: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    /// A port label, or a number.
    pub port: Option<String>,
    pub tags: Vec<String>,
    pub canary_tags: Vec<String>,
    /// `auto` (the default), `host`, `driver` or `alloc`.
    pub address_mode: String,
    pub address: Option<String>,
    /// `nomad` or `consul`; drover serves both from its own catalog.
    pub provider: String,
    /// The task a group-level service belongs to.
    pub task: Option<String>,
    pub meta: BTreeMap<String, String>,
    pub checks: Vec<ServiceCheck>,
    pub check_restart: Option<CheckRestart>,
    pub on_update: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceCheck {
    pub name: String,
    /// `tcp`, `http`, `script` or `grpc`.
    pub check_type: String,
    pub port: Option<String>,
    pub path: Option<String>,
    pub method: Option<String>,
    pub protocol: Option<String>,
    pub body: Option<String>,
    pub header: BTreeMap<String, Vec<String>>,
    pub interval: Duration,
    pub timeout: Duration,
    pub address_mode: Option<String>,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub task: Option<String>,
    pub tls_skip_verify: bool,
    pub initial_status: Option<String>,
    pub success_before_passing: u32,
    pub failures_before_critical: u32,
    pub check_restart: Option<CheckRestart>,
    pub on_update: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRestart {
    /// 0 disables restarts on failing checks (Nomad's default).
    pub limit: u32,
    pub grace: Duration,
    pub ignore_warnings: bool,
}

impl Default for CheckRestart {
    fn default() -> Self {
        CheckRestart {
            limit: 0,
            grace: Duration::from_secs(1),
            ignore_warnings: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub source: String,
    /// Relative to the task dir; Nomad's default is `local/`.
    pub destination: String,
    /// `any` (the default), `file` or `dir`.
    pub mode: String,
    pub options: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub chown: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    /// e.g. `${attr.kernel.name}`; empty for the operator-only forms (`distinct_hosts`).
    pub attribute: String,
    /// `=` by default.
    pub operator: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affinity {
    pub attribute: String,
    pub operator: String,
    pub value: String,
    pub weight: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogConfig {
    pub max_files: u32,
    /// MB.
    pub max_file_size: u32,
    pub disabled: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_files: 10,
            max_file_size: 10,
            disabled: false,
        }
    }
}

/// Nomad's `Allocation.DesiredStatus`: set by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredStatus {
    Run,
    Stop,
    Evict,
}

impl DesiredStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredStatus::Run => "run",
            DesiredStatus::Stop => "stop",
            DesiredStatus::Evict => "evict",
        }
    }
}

/// Nomad's `Allocation.ClientStatus`: reported by the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    Pending,
    Running,
    Complete,
    Failed,
    Lost,
    Unknown,
}

impl ClientStatus {
    pub const ALL: [ClientStatus; 6] = [
        ClientStatus::Pending,
        ClientStatus::Running,
        ClientStatus::Complete,
        ClientStatus::Failed,
        ClientStatus::Lost,
        ClientStatus::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Pending => "pending",
            ClientStatus::Running => "running",
            ClientStatus::Complete => "complete",
            ClientStatus::Failed => "failed",
            ClientStatus::Lost => "lost",
            ClientStatus::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<ClientStatus> {
        ClientStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Nomad's `ClientTerminalStatus`: the node will not run this allocation again.
    pub fn client_terminal(self) -> bool {
        matches!(
            self,
            ClientStatus::Complete | ClientStatus::Failed | ClientStatus::Lost
        )
    }
}

/// Nomad's task state: `pending`, `running` or `dead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TaskStateKind {
    #[default]
    Pending,
    Running,
    Dead,
}

impl TaskStateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStateKind::Pending => "pending",
            TaskStateKind::Running => "running",
            TaskStateKind::Dead => "dead",
        }
    }
}

/// One thing that happened to a task, in Nomad's words (`Received`, `Task Setup`, `Started`,
/// `Terminated`, `Restarting`, `Killing`, `Killed`, `Not Restarting`, `Driver Failure` …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub event_type: String,
    /// Unix time in nanoseconds, as Nomad's API reports it.
    pub time: i64,
    pub message: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// On a `Terminated` event: the kernel's OOM killer ended the task (a restart reason
    /// metrics tell apart from an ordinary error exit).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

/// The node's view of one task of an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskState {
    pub state: TaskStateKind,
    pub failed: bool,
    pub restarts: u32,
    /// Unix nanoseconds; 0 when it never happened.
    pub last_restart: i64,
    pub started_at: i64,
    pub finished_at: i64,
    /// The most recent events, oldest first (Nomad keeps the last 10).
    pub events: Vec<TaskEvent>,
}

/// How a task's process or container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ExitResult {
    pub exit_code: i32,
    pub signal: i32,
    pub oom_killed: bool,
    /// Set when the driver could not tell how the task ended (the container vanished …).
    pub err: Option<String>,
}

impl ExitResult {
    pub fn successful(&self) -> bool {
        self.exit_code == 0 && self.signal == 0 && !self.oom_killed && self.err.is_none()
    }
}

/// Everything a node needs to run one allocation: sent by the server, never edited by the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocSpec {
    /// A UUID.
    pub id: String,
    /// `job.group[index]`.
    pub name: String,
    pub namespace: String,
    pub job_id: String,
    pub job_version: u64,
    /// `service`, `batch`, `system` or `sysbatch`.
    pub job_type: String,
    pub group: String,
    pub node_id: String,
    pub desired_status: DesiredStatus,
    pub tasks: Vec<Task>,
    /// The group network with every dynamic port's `value` assigned by the scheduler.
    pub networks: Vec<NetworkResource>,
    /// The group's restart policy, for tasks that do not set their own.
    pub restart: RestartPolicy,
    /// Group-level services.
    pub services: Vec<Service>,
    /// Bumped by the server on every change the node must act on.
    pub modify_index: u64,
}

impl AllocSpec {
    /// The restart policy that applies to `task`.
    pub fn restart_policy<'a>(&'a self, task: &'a Task) -> &'a RestartPolicy {
        task.restart.as_ref().unwrap_or(&self.restart)
    }
}

/// What a node reports about one allocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocUpdate {
    pub id: String,
    pub client_status: ClientStatus,
    pub client_description: String,
    pub task_states: BTreeMap<String, TaskState>,
    /// The health checks of the allocation's services, as the node last ran them. Defaulted so
    /// a node that predates checks still speaks to this server.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// The address each running task has inside its driver's network (a container's own IP),
    /// for services with `address_mode = "driver"`.
    #[serde(default)]
    pub driver_networks: BTreeMap<String, DriverNetwork>,
}

/// A check's health, in Consul's words (Nomad's service checks use the same three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passing,
    Warning,
    /// Where every check starts until it first passes.
    #[default]
    Critical,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }

    /// `passing`, `warning`, `critical`; anything else is not a status.
    pub fn parse(s: &str) -> Option<CheckStatus> {
        match s {
            "passing" => Some(CheckStatus::Passing),
            "warning" => Some(CheckStatus::Warning),
            "critical" => Some(CheckStatus::Critical),
            _ => None,
        }
    }
}

/// The latest result of one health check of one service of an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub service: String,
    /// The task whose service (or whose group service) this check belongs to.
    pub task: String,
    /// The check's name (`service: "NAME" check` unless the job names it).
    pub check: String,
    /// `tcp` or `http`.
    pub check_type: String,
    pub status: CheckStatus,
    /// What the check saw, in Consul's wording (`TCP connect 10.0.0.1:8080: Success`).
    pub output: String,
    /// Unix nanoseconds of the result that set `status`.
    pub timestamp: i64,
}

/// Where a task can be reached inside its driver's network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverNetwork {
    /// The container's IP on its network (docker's bridge by default).
    pub ip: String,
}

/// One registered instance of a service (Nomad's `ServiceRegistration`, field for field in its
/// JSON), derived by the server from a running allocation. `checks` is drover's addition: the
/// health the node reports, which decides whether DNS hands the instance out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRegistration {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "ServiceName")]
    pub service_name: String,
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "Datacenter")]
    pub datacenter: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(rename = "AllocID")]
    pub alloc_id: String,
    #[serde(rename = "Tags")]
    pub tags: Vec<String>,
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "Port")]
    pub port: u16,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
    /// drover: the node's name, for DNS answers and `service info -verbose`.
    #[serde(rename = "NodeName", default)]
    pub node_name: String,
    /// drover: the instance's checks; empty when the service has none.
    #[serde(rename = "Checks", default)]
    pub checks: Vec<CheckResult>,
}

impl ServiceRegistration {
    /// Consul's rule: an instance is handed out unless one of its checks is critical (a
    /// warning still serves); an instance without checks is healthy while its task runs.
    pub fn healthy(&self) -> bool {
        self.checks
            .iter()
            .all(|c| c.status != CheckStatus::Critical)
    }

    /// `passing`, `warning` or `critical`, the worst of its checks; `passing` without checks.
    pub fn health(&self) -> CheckStatus {
        let mut worst = CheckStatus::Passing;
        for c in &self.checks {
            match c.status {
                CheckStatus::Critical => return CheckStatus::Critical,
                CheckStatus::Warning => worst = CheckStatus::Warning,
                CheckStatus::Passing => {}
            }
        }
        worst
    }
}

/// Where a service (or its check) is reached, by Nomad's `address_mode` rules: `host` and
/// `auto` (and `alloc`, which drover's host-mode networks make the same) give the node's
/// address and the port label's host port; `driver` gives the task's own IP and the port inside
/// it (`to`, or the host port when `to` is unset). A number instead of a label is used as is.
/// `None` when the mode needs a driver address the task does not have, or the label is unknown.
pub fn resolve_address(
    mode: &str,
    port: Option<&str>,
    networks: &[NetworkResource],
    node_address: &str,
    driver: Option<&DriverNetwork>,
) -> Option<(String, u16)> {
    let driver_mode = mode == "driver";
    let ip = if driver_mode {
        driver.map(|d| d.ip.clone()).filter(|ip| !ip.is_empty())?
    } else {
        node_address.to_string()
    };
    let Some(port) = port.filter(|p| !p.is_empty()) else {
        return Some((ip, 0));
    };
    if let Some(p) = networks
        .iter()
        .flat_map(|n| n.ports())
        .find(|p| p.label == port)
    {
        let n = if driver_mode && p.to > 0 {
            p.to
        } else {
            p.value
        };
        return Some((ip, n));
    }
    port.parse::<u16>().ok().map(|n| (ip, n))
}

/// Nomad's default check name.
pub fn default_check_name(service: &str) -> String {
    format!("service: {service:?} check")
}

/// A driver as a node detects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DriverInfo {
    pub detected: bool,
    pub healthy: bool,
    pub health_description: String,
    /// Unix nanoseconds of the last check.
    pub update_time: i64,
}

/// What a client tells the server about its node when it registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// A UUID kept in the client's data dir.
    pub id: String,
    pub name: String,
    pub datacenter: String,
    pub node_class: String,
    pub node_pool: String,
    /// The address tasks' ports bind on and services advertise.
    pub address: String,
    /// The client's HTTP address, `host:port`.
    pub http_addr: String,
    pub drivers: BTreeMap<String, DriverInfo>,
    /// `kernel.name`, `unique.hostname`, `cpu.numcores` … as Nomad's `attr.*`.
    pub attributes: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    /// Totals the scheduler may hand out.
    pub cpu_mhz: u64,
    pub memory_mb: u64,
    /// Host ports the node keeps for itself.
    pub reserved_ports: Vec<u16>,
}
