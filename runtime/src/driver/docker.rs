//! The docker driver, on the Docker Engine API (bollard). [`DockerDriver::start_task`] is the only
//! place in drover that creates a container: name `<task>-<alloc_id>`, drover's labels, the
//! allocation's ports, limits, mounts and environment. A name conflict is resolved by adopting
//! the same allocation's running container or removing whatever holds the name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum,
    HostConfig, HostConfigLogConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RenameContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt};

use super::env::{PathView, interpolate, resolve_volume, task_env};
use super::{
    Driver, DriverError, EngineEvent, LABEL_ALLOC, LABEL_GROUP, LABEL_JOB, LABEL_NODE, LABEL_TASK,
    LogChunks, LogStream, TaskCtx, TaskHandle, TaskStatus,
};
use crate::spec::{DockerConfig, DriverInfo, ExitResult, TaskConfig};

/// How long a name conflict may take to clear (the old container is still being removed).
const CONFLICT_DEADLINE: Duration = Duration::from_secs(30);

/// Operator settings for the docker driver (Nomad's `plugin "docker" { config {} }`).
#[derive(Debug, Clone, PartialEq)]
pub struct DockerDriverConfig {
    /// Nomad's `endpoint`: `unix:///path` or `tcp://host:port`. `None` is what the docker CLI
    /// uses (`DOCKER_HOST`, else the local socket).
    pub endpoint: Option<String>,
    /// Nomad's `volumes { enabled }`: allow absolute host paths in `volumes`.
    pub allow_host_volumes: bool,
    /// Nomad's `allow_privileged`.
    pub allow_privileged: bool,
    /// Nomad's `allow_caps`: what `cap_add` may ask for (lower case, without `CAP_`; `all`
    /// allows any).
    pub allow_caps: Vec<String>,
    /// drover's `allow_host_network` (Nomad has no such gate): `network_mode = "host"` shares
    /// the node's network namespace, so it is refused unless the node allows it.
    pub allow_host_network: bool,
}

/// Nomad's default `allow_caps`: Docker's default capability set minus `net_raw`.
pub const DEFAULT_ALLOW_CAPS: &[&str] = &[
    "audit_write",
    "chown",
    "dac_override",
    "fowner",
    "fsetid",
    "kill",
    "mknod",
    "net_bind_service",
    "setfcap",
    "setgid",
    "setpcap",
    "setuid",
    "sys_chroot",
];

impl Default for DockerDriverConfig {
    fn default() -> Self {
        DockerDriverConfig {
            endpoint: None,
            allow_host_volumes: false,
            allow_privileged: false,
            allow_caps: DEFAULT_ALLOW_CAPS.iter().map(|c| c.to_string()).collect(),
            allow_host_network: false,
        }
    }
}

/// `CAP_SYS_ADMIN`, `sys_admin` and `SYS_ADMIN` are the same capability.
fn cap_key(cap: &str) -> String {
    let c = cap.trim().to_ascii_lowercase();
    c.strip_prefix("cap_").map(str::to_string).unwrap_or(c)
}

/// The `cap_add` entries the node does not allow, in the task's order.
pub fn disallowed_caps(cap_add: &[String], allow: &[String]) -> Vec<String> {
    let allow: Vec<String> = allow.iter().map(|c| cap_key(c)).collect();
    if allow.iter().any(|c| c == "all") {
        return Vec::new();
    }
    cap_add
        .iter()
        .map(|c| cap_key(c))
        .filter(|c| !allow.contains(c))
        .collect()
}

pub struct DockerDriver {
    negotiated: Mutex<Option<Docker>>,
    warned: AtomicBool,
    config: DockerDriverConfig,
}

impl DockerDriver {
    /// Connects as the docker CLI does (`DOCKER_HOST`, else the local socket) or to the
    /// configured endpoint. Nothing is sent yet, and a socket that is missing now is looked
    /// for again on every call: an engine that starts after the agent is picked up.
    pub fn connect(config: DockerDriverConfig) -> Result<DockerDriver, DriverError> {
        Ok(DockerDriver {
            negotiated: Mutex::new(None),
            warned: AtomicBool::new(false),
            config,
        })
    }

    fn base(&self) -> Result<Docker, DriverError> {
        const TIMEOUT_SECS: u64 = 120;
        match self.config.endpoint.as_deref() {
            None => Docker::connect_with_defaults(),
            Some(e) if e.starts_with("unix://") || e.starts_with('/') => {
                Docker::connect_with_local(e, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            }
            Some(e) => Docker::connect_with_http(e, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION),
        }
        .map_err(|e| DriverError::EngineUnavailable {
            driver: "docker",
            message: e.to_string(),
        })
    }

    /// The client, with the API version negotiated once the engine has answered.
    async fn client(&self) -> Result<Docker, DriverError> {
        if let Some(d) = self
            .negotiated
            .lock()
            .expect("docker client lock poisoned")
            .clone()
        {
            return Ok(d);
        }
        let negotiated = match self.base() {
            Ok(base) => base.negotiate_version().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match negotiated {
            Ok(d) => {
                *self.negotiated.lock().expect("docker client lock poisoned") = Some(d.clone());
                self.warned.store(false, Ordering::Relaxed);
                Ok(d)
            }
            Err(message) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %message, "docker engine does not answer");
                }
                Err(DriverError::EngineUnavailable {
                    driver: "docker",
                    message,
                })
            }
        }
    }

    /// Engine events for drover's containers on `node_id`: die, destroy, oom, kill. The
    /// stream ends when the engine connection drops; the caller reconnects.
    pub async fn events(
        &self,
        node_id: &str,
    ) -> Result<impl Stream<Item = EngineEvent> + Send + use<>, DriverError> {
        let docker = self.client().await?;
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "label".to_string(),
                vec![LABEL_ALLOC.to_string(), format!("{LABEL_NODE}={node_id}")],
            ),
            (
                "event".to_string(),
                ["die", "destroy", "oom", "kill"].map(String::from).to_vec(),
            ),
        ]);
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        let stream = docker.events(Some(opts));
        Ok(stream
            .take_while(|r| std::future::ready(r.is_ok()))
            .filter_map(|r| {
                std::future::ready(r.ok().and_then(|msg| {
                    let actor = msg.actor?;
                    let attrs = actor.attributes.unwrap_or_default();
                    Some(EngineEvent {
                        alloc_id: attrs.get(LABEL_ALLOC)?.clone(),
                        task: attrs.get(LABEL_TASK)?.clone(),
                        id: actor.id.unwrap_or_default(),
                        action: msg.action.unwrap_or_default(),
                        signal: attrs.get("signal").cloned(),
                    })
                }))
            }))
    }

    fn engine_err(
        op: &'static str,
        alloc_id: &str,
        task: &str,
        container: &str,
        source: BollardError,
    ) -> DriverError {
        if super::engine_is_unreachable(&source) {
            return DriverError::EngineUnavailable {
                driver: "docker",
                message: source.to_string(),
            };
        }
        DriverError::Engine {
            op,
            alloc_id: alloc_id.to_string(),
            task: task.to_string(),
            container: container.to_string(),
            source: Box::new(source),
        }
    }

    async fn remove(
        &self,
        docker: &Docker,
        handle: &TaskHandle,
        id: &str,
    ) -> Result<(), DriverError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            // Gone already, or someone else is removing it: either way it is going.
            Err(e) if matches!(status(&e), Some(404) | Some(409)) => Ok(()),
            Err(e) => Err(Self::engine_err(
                "remove",
                &handle.alloc_id,
                &handle.task,
                id,
                e,
            )),
        }
    }

    fn docker_config(ctx: &TaskCtx) -> Result<&DockerConfig, DriverError> {
        match &ctx.task.config {
            TaskConfig::Docker(c) => Ok(c),
            other => Err(DriverError::InvalidConfig {
                alloc_id: ctx.alloc.id.clone(),
                task: ctx.task.name.clone(),
                field: "driver".into(),
                message: format!(
                    "the docker driver cannot run a {} task",
                    other.driver_name()
                ),
            }),
        }
    }
}

/// `<task>-<alloc_id>`, with anything Docker refuses in a name replaced by `_`.
pub fn container_name(task: &str, alloc_id: &str) -> String {
    format!("{task}-{alloc_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The one container matching `key=value` in the engine's list (which includes stopped ones).
async fn summary(
    docker: &Docker,
    key: &str,
    value: &str,
) -> Result<Option<ContainerSummary>, BollardError> {
    let filters = HashMap::from([(key.to_string(), vec![value.to_string()])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    Ok(docker.list_containers(Some(opts)).await?.into_iter().next())
}

/// Resolves once container `id` no longer exists (or after a while, if the engine is slow).
async fn wait_removed(docker: &Docker, id: &str) {
    let opts = WaitContainerOptionsBuilder::default()
        .condition("removed")
        .build();
    let mut waiter = docker.wait_container(id, Some(opts));
    let _ = tokio::time::timeout(CONFLICT_DEADLINE, waiter.next()).await;
}

fn status(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The container a task asks for, built without touching the engine.
pub fn container_body(
    ctx: &TaskCtx,
    settings: &DockerDriverConfig,
) -> Result<ContainerCreateBody, DriverError> {
    let cfg = DockerDriver::docker_config(ctx)?;
    let invalid = |field: &str, message: String| DriverError::InvalidConfig {
        alloc_id: ctx.alloc.id.clone(),
        task: ctx.task.name.clone(),
        field: field.to_string(),
        message,
    };
    let env = task_env(ctx, PathView::Container);
    let node = &ctx.node;
    let interp = |s: &str| interpolate(s, &env, node);
    let image = interp(&cfg.image);
    if image.is_empty() {
        return Err(invalid("config.image", "must not be empty".into()));
    }
    // Nomad's docker plugin gates: the node's operator decides, so they are checked where the
    // task starts and the refusal lands in the task's events.
    if cfg.privileged && !settings.allow_privileged {
        return Err(invalid(
            "config.privileged",
            "privileged containers are disabled on this node (plugin \"docker\" config allow_privileged = true enables them)".into(),
        ));
    }
    let refused = disallowed_caps(&cfg.cap_add, &settings.allow_caps);
    if !refused.is_empty() {
        return Err(invalid(
            "config.cap_add",
            format!(
                "the node does not allow the capabilities {} (plugin \"docker\" config allow_caps)",
                refused.join(", ")
            ),
        ));
    }
    let network_mode = cfg.network_mode.as_deref().map(interp);
    if network_mode.as_deref() == Some("host") && !settings.allow_host_network {
        return Err(invalid(
            "config.network_mode",
            "the host network is disabled on this node (plugin \"docker\" config allow_host_network = true enables it)".into(),
        ));
    }
    let args: Vec<String> = cfg.args.iter().map(|a| interp(a)).collect();
    let cmd = match &cfg.command {
        Some(c) => Some(std::iter::once(interp(c)).chain(args).collect()),
        None if !args.is_empty() => Some(args),
        None => None,
    };

    let mut labels: HashMap<String, String> = cfg
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), interp(v)))
        .collect();
    // drover's own labels win: recovery and orphan removal depend on them.
    labels.insert(LABEL_ALLOC.into(), ctx.alloc.id.clone());
    labels.insert(LABEL_JOB.into(), ctx.alloc.job_id.clone());
    labels.insert(LABEL_GROUP.into(), ctx.alloc.group.clone());
    labels.insert(LABEL_TASK.into(), ctx.task.name.clone());
    labels.insert(LABEL_NODE.into(), ctx.node.node_id.clone());

    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for label in &cfg.ports {
        let Some(port) = ctx
            .alloc
            .networks
            .iter()
            .flat_map(|n| n.ports())
            .find(|p| &p.label == label)
        else {
            return Err(invalid(
                "config.ports",
                format!("port {label:?} is not in the group's network"),
            ));
        };
        if port.value == 0 {
            return Err(invalid(
                "config.ports",
                format!("port {label:?} has no host port assigned"),
            ));
        }
        let inside = if port.to == 0 { port.value } else { port.to };
        for proto in ["tcp", "udp"] {
            let key = format!("{inside}/{proto}");
            exposed.push(key.clone());
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some(node.address.clone()),
                    host_port: Some(port.value.to_string()),
                }]),
            );
        }
    }

    let mut binds = vec![
        format!("{}:/alloc", ctx.dirs.shared_alloc_dir.display()),
        format!("{}:/local", ctx.dirs.local_dir.display()),
        format!("{}:/secrets", ctx.dirs.secrets_dir.display()),
    ];
    for v in &cfg.volumes {
        let bind = resolve_volume(&interp(v), &ctx.dirs, settings.allow_host_volumes)
            .map_err(|e| invalid("config.volumes", e.to_string()))?;
        binds.push(bind);
    }

    let res = &ctx.task.resources;
    const MB: i64 = 1024 * 1024;
    let (memory, reservation) = if res.memory_max > res.memory {
        (res.memory_max as i64 * MB, Some(res.memory as i64 * MB))
    } else {
        (res.memory as i64 * MB, None)
    };
    let memory = (memory > 0).then_some(memory);
    let log_config = HostConfigLogConfig {
        typ: Some("json-file".into()),
        config: Some(HashMap::from([
            (
                "max-size".to_string(),
                format!("{}m", ctx.task.logs.max_file_size.max(1)),
            ),
            (
                "max-file".to_string(),
                ctx.task.logs.max_files.max(1).to_string(),
            ),
        ])),
    };
    let non_empty =
        |v: &Vec<String>| (!v.is_empty()).then(|| v.iter().map(|s| interp(s)).collect());
    let host_config = HostConfig {
        // Docker's minimum is 2 shares; Nomad passes MHz straight through as shares.
        cpu_shares: Some(res.cpu.max(2) as i64),
        memory,
        memory_reservation: reservation,
        // No swap beyond the limit, as Nomad does.
        memory_swap: memory,
        binds: Some(binds),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        dns: non_empty(&cfg.dns_servers),
        dns_search: non_empty(&cfg.dns_search_domains),
        dns_options: non_empty(&cfg.dns_options),
        extra_hosts: non_empty(&cfg.extra_hosts),
        cap_add: non_empty(&cfg.cap_add),
        cap_drop: non_empty(&cfg.cap_drop),
        privileged: Some(cfg.privileged),
        init: cfg.init.then_some(true),
        network_mode,
        log_config: Some(log_config),
        ..HostConfig::default()
    };
    Ok(ContainerCreateBody {
        image: Some(image),
        cmd,
        entrypoint: cfg
            .entrypoint
            .as_ref()
            .map(|e| e.iter().map(|s| interp(s)).collect()),
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        hostname: cfg.hostname.as_deref().map(interp),
        working_dir: cfg.work_dir.as_deref().map(interp),
        tty: cfg.tty.then_some(true),
        open_stdin: cfg.interactive.then_some(true),
        user: ctx.task.user.clone(),
        stop_signal: Some(
            ctx.task
                .kill_signal
                .clone()
                .unwrap_or_else(|| "SIGTERM".to_string()),
        ),
        host_config: Some(host_config),
        ..ContainerCreateBody::default()
    })
}

#[async_trait::async_trait]
impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn fingerprint(&self) -> DriverInfo {
        let now = now_nanos();
        let ping = async {
            let docker = self.client().await?;
            docker
                .version()
                .await
                .map_err(|e| DriverError::EngineUnavailable {
                    driver: "docker",
                    message: e.to_string(),
                })
        };
        match tokio::time::timeout(Duration::from_secs(5), ping).await {
            Ok(Ok(v)) => DriverInfo {
                detected: true,
                healthy: true,
                health_description: format!(
                    "Healthy (Docker {}, API {})",
                    v.version.unwrap_or_default(),
                    v.api_version.unwrap_or_default()
                ),
                update_time: now,
            },
            Ok(Err(e)) => DriverInfo {
                detected: false,
                healthy: false,
                health_description: format!("Failed to connect to docker daemon: {e}"),
                update_time: now,
            },
            Err(_) => DriverInfo {
                detected: false,
                healthy: false,
                health_description: "Failed to connect to docker daemon: no answer within 5s"
                    .into(),
                update_time: now,
            },
        }
    }

    fn node_attributes(&self) -> std::collections::BTreeMap<String, String> {
        let mut attrs = std::collections::BTreeMap::new();
        let on = [
            (
                "driver.docker.privileged.enabled",
                self.config.allow_privileged,
            ),
            (
                "driver.docker.volumes.enabled",
                self.config.allow_host_volumes,
            ),
            (
                "driver.docker.host_network.enabled",
                self.config.allow_host_network,
            ),
        ];
        for (key, enabled) in on {
            if enabled {
                attrs.insert(key.to_string(), "true".to_string());
            }
        }
        attrs
    }

    #[tracing::instrument(skip_all, fields(alloc_id = %ctx.alloc.id, task = %ctx.task.name))]
    async fn start_task(&self, ctx: &TaskCtx) -> Result<TaskHandle, DriverError> {
        let body = container_body(ctx, &self.config)?;
        let docker = self.client().await?;
        let alloc_id = ctx.alloc.id.as_str();
        let task = ctx.task.name.as_str();
        let name = container_name(task, alloc_id);
        let mut handle = TaskHandle {
            driver: "docker".into(),
            alloc_id: alloc_id.to_string(),
            task: task.to_string(),
            job_id: ctx.alloc.job_id.clone(),
            id: String::new(),
            started_at: 0,
        };
        let deadline = tokio::time::Instant::now() + CONFLICT_DEADLINE;
        let mut create_as = name.clone();
        // Set when the name is held by a container on its way out: the new one is created
        // under a temporary name and takes the real one once the old is gone.
        let mut rename_after: Option<String> = None;
        let id = loop {
            let opts = CreateContainerOptionsBuilder::default()
                .name(&create_as)
                .build();
            match docker.create_container(Some(opts), body.clone()).await {
                Ok(resp) => break resp.id,
                Err(e) if status(&e) == Some(404) => {
                    return Err(DriverError::ImageNotFound {
                        alloc_id: alloc_id.into(),
                        task: task.into(),
                        image: body.image.clone().unwrap_or_default(),
                        message: e.to_string(),
                    });
                }
                Err(e) if status(&e) == Some(409) && tokio::time::Instant::now() < deadline => {
                    // The list, unlike inspect, does not wait on a container's lock, which
                    // a removal holds for hundreds of milliseconds.
                    let name_filter = format!("^/{name}$");
                    let existing = match summary(&docker, "name", &name_filter).await {
                        Ok(Some(existing)) => existing,
                        Ok(None) => continue,
                        Err(e) => {
                            return Err(Self::engine_err("inspect", alloc_id, task, &name, e));
                        }
                    };
                    let same_alloc = existing
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(LABEL_ALLOC))
                        .is_some_and(|a| a == alloc_id);
                    let removing = matches!(
                        existing.state,
                        Some(ContainerSummaryStateEnum::REMOVING)
                            | Some(ContainerSummaryStateEnum::DEAD)
                    );
                    let running = existing.state == Some(ContainerSummaryStateEnum::RUNNING);
                    let existing_id = existing.id.unwrap_or_default();
                    let replaced = ctx.replaces.as_deref() == Some(existing_id.as_str());
                    if same_alloc && running && !replaced {
                        tracing::info!(container_id = %existing_id, "adopting running container");
                        handle.id = existing_id;
                        handle.started_at = now_nanos();
                        return Ok(handle);
                    }
                    if removing || replaced {
                        // `docker rm -f` in progress: removal takes a few hundred ms that the
                        // replacement need not wait for. (A container only killed from outside
                        // is removed after the start, off the critical path.)
                        create_as =
                            format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
                        rename_after = Some(existing_id);
                        continue;
                    }
                    tracing::info!(container_id = %existing_id, "removing container that holds the name");
                    self.remove(&docker, &handle, &existing_id).await?;
                    wait_removed(&docker, &existing_id).await;
                }
                Err(e) => return Err(Self::engine_err("create", alloc_id, task, &create_as, e)),
            }
        };
        handle.id = id.clone();
        if let Err(e) = docker.start_container(&id, None).await {
            // A created but unstartable container (port taken …) would only block the name.
            let _ = self.remove(&docker, &handle, &id).await;
            return Err(Self::engine_err("start", alloc_id, task, &id, e));
        }
        handle.started_at = now_nanos();
        tracing::debug!(container_id = %id, "container started");
        if let Some(old) = rename_after {
            // Off the start path: the task is already running under the temporary name.
            let docker = docker.clone();
            let (id, alloc_id, task) = (id.clone(), alloc_id.to_string(), task.to_string());
            tokio::spawn(async move {
                let opts = RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .v(true)
                    .build();
                // 409 (already being removed) and 404 (gone) are what we want anyway.
                let _ = docker.remove_container(&old, Some(opts)).await;
                wait_removed(&docker, &old).await;
                let opts = RenameContainerOptionsBuilder::default().name(&name).build();
                if let Err(e) = docker.rename_container(&id, opts).await {
                    tracing::warn!(alloc_id = %alloc_id, task = %task, container_id = %id, error = %e, "failed to give the container its name");
                }
            });
        }
        Ok(handle)
    }

    async fn wait_task(&self, handle: &TaskHandle) -> Result<ExitResult, DriverError> {
        let docker = self.client().await?;
        let not_found = || DriverError::TaskNotFound {
            alloc_id: handle.alloc_id.clone(),
            task: handle.task.clone(),
            id: handle.id.clone(),
        };
        let mut stream = docker.wait_container(&handle.id, None);
        let code = match stream.next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) if status(&e) == Some(404) => return Err(not_found()),
            Some(Err(e)) => {
                return Err(Self::engine_err(
                    "wait for",
                    &handle.alloc_id,
                    &handle.task,
                    &handle.id,
                    e,
                ));
            }
            None => {
                return Err(DriverError::EngineUnavailable {
                    driver: "docker",
                    message: "the engine closed the wait without a status".into(),
                });
            }
        };
        // `docker rm -f` marks the container as being removed before it kills it, so a
        // container that is removing (or gone) was removed from outside, not crashed. Asked
        // through the list: inspect would block until the removal is done.
        match summary(&docker, "id", &handle.id).await {
            Ok(None) => return Err(not_found()),
            Ok(Some(c))
                if matches!(
                    c.state,
                    Some(ContainerSummaryStateEnum::REMOVING)
                        | Some(ContainerSummaryStateEnum::DEAD)
                ) =>
            {
                return Err(not_found());
            }
            _ => {}
        }
        let oom_killed = match docker.inspect_container(&handle.id, None).await {
            Err(e) if status(&e) == Some(404) => return Err(not_found()),
            Ok(info) => info.state.and_then(|s| s.oom_killed).unwrap_or(false),
            Err(_) => false,
        };
        Ok(ExitResult {
            exit_code: code as i32,
            signal: 0,
            oom_killed,
            err: None,
        })
    }

    async fn stop_task(
        &self,
        handle: &TaskHandle,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        let docker = self.client().await?;
        // kill + wait + kill instead of `stop`: the stop endpoint only takes a signal from API
        // 1.42, and Nomad's semantics are "kill_signal, then SIGKILL after kill_timeout".
        let kill = |sig: &str| {
            let opts = KillContainerOptionsBuilder::default().signal(sig).build();
            let docker = docker.clone();
            let id = handle.id.clone();
            async move { docker.kill_container(&id, Some(opts)).await }
        };
        match kill(signal).await {
            Ok(()) => {}
            // 404: gone; 409: not running. Both mean stopped.
            Err(e) if matches!(status(&e), Some(404) | Some(409)) => return Ok(()),
            Err(e) => {
                return Err(Self::engine_err(
                    "signal",
                    &handle.alloc_id,
                    &handle.task,
                    &handle.id,
                    e,
                ));
            }
        }
        let mut waiter = docker.wait_container(&handle.id, None);
        if tokio::time::timeout(timeout, waiter.next()).await.is_ok() {
            return Ok(());
        }
        match kill("SIGKILL").await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status(&e), Some(404) | Some(409)) => Ok(()),
            Err(e) => Err(Self::engine_err(
                "kill",
                &handle.alloc_id,
                &handle.task,
                &handle.id,
                e,
            )),
        }
    }

    async fn destroy_task(&self, handle: &TaskHandle, force: bool) -> Result<(), DriverError> {
        let docker = self.client().await?;
        if !force {
            let info = docker.inspect_container(&handle.id, None).await;
            if let Ok(info) = info
                && info.state.and_then(|s| s.running).unwrap_or(false)
            {
                return Err(DriverError::InvalidConfig {
                    alloc_id: handle.alloc_id.clone(),
                    task: handle.task.clone(),
                    field: "destroy".into(),
                    message: format!("container {} is still running", handle.id),
                });
            }
        }
        self.remove(&docker, handle, &handle.id).await
    }

    async fn recover_tasks(&self, node_id: &str) -> Result<Vec<TaskHandle>, DriverError> {
        let docker = self.client().await?;
        let filters = HashMap::from([(
            "label".to_string(),
            vec![LABEL_ALLOC.to_string(), format!("{LABEL_NODE}={node_id}")],
        )]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list =
            docker
                .list_containers(Some(opts))
                .await
                .map_err(|source| DriverError::List {
                    node_id: node_id.to_string(),
                    source: Box::new(source),
                })?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                Some(TaskHandle {
                    driver: "docker".into(),
                    alloc_id: labels.get(LABEL_ALLOC)?.clone(),
                    task: labels.get(LABEL_TASK)?.clone(),
                    job_id: labels.get(LABEL_JOB).cloned().unwrap_or_default(),
                    id: c.id?,
                    started_at: c.created.unwrap_or(0).saturating_mul(1_000_000_000),
                })
            })
            .collect())
    }

    async fn inspect_task(&self, handle: &TaskHandle) -> Result<TaskStatus, DriverError> {
        let docker = self.client().await?;
        let not_found = || DriverError::TaskNotFound {
            alloc_id: handle.alloc_id.clone(),
            task: handle.task.clone(),
            id: handle.id.clone(),
        };
        let engine = |e| Self::engine_err("inspect", &handle.alloc_id, &handle.task, &handle.id, e);
        // The list first: it answers at once while a removal holds the container's lock, and
        // this is what a runner asks right after a `die` event.
        match summary(&docker, "id", &handle.id).await.map_err(engine)? {
            None => return Err(not_found()),
            Some(c) => match c.state {
                Some(ContainerSummaryStateEnum::REMOVING)
                | Some(ContainerSummaryStateEnum::DEAD) => {
                    return Err(not_found());
                }
                Some(ContainerSummaryStateEnum::RUNNING) => return Ok(TaskStatus::Running),
                Some(ContainerSummaryStateEnum::CREATED) => return Ok(TaskStatus::Created),
                _ => {}
            },
        }
        match docker.inspect_container(&handle.id, None).await {
            Ok(info) => {
                let state = info.state.unwrap_or_default();
                match state.status {
                    Some(ContainerStateStatusEnum::REMOVING)
                    | Some(ContainerStateStatusEnum::DEAD) => Err(not_found()),
                    _ if state.running.unwrap_or(false) => Ok(TaskStatus::Running),
                    _ => Ok(TaskStatus::Exited(ExitResult {
                        exit_code: state.exit_code.unwrap_or(0) as i32,
                        signal: 0,
                        oom_killed: state.oom_killed.unwrap_or(false),
                        err: state.error.filter(|e| !e.is_empty()),
                    })),
                }
            }
            Err(e) if status(&e) == Some(404) => Err(not_found()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn task_network(
        &self,
        handle: &TaskHandle,
    ) -> Result<Option<crate::spec::DriverNetwork>, DriverError> {
        let docker = self.client().await?;
        let info = match docker.inspect_container(&handle.id, None).await {
            Ok(info) => info,
            Err(e) if status(&e) == Some(404) => {
                return Err(DriverError::TaskNotFound {
                    alloc_id: handle.alloc_id.clone(),
                    task: handle.task.clone(),
                    id: handle.id.clone(),
                });
            }
            Err(e) => {
                return Err(Self::engine_err(
                    "inspect",
                    &handle.alloc_id,
                    &handle.task,
                    &handle.id,
                    e,
                ));
            }
        };
        // The first network with an address: a container on one user network or the default
        // bridge has exactly one; host-network containers have none.
        let ip = info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|nets| {
                let mut nets: Vec<_> = nets.into_iter().collect();
                nets.sort_by(|a, b| a.0.cmp(&b.0));
                nets.into_iter()
                    .filter_map(|(_, ep)| ep.ip_address)
                    .find(|ip| !ip.is_empty())
            });
        Ok(ip.map(|ip| crate::spec::DriverNetwork { ip }))
    }

    async fn logs(
        &self,
        handle: &TaskHandle,
        stream: LogStream,
        follow: bool,
        tail: Option<usize>,
    ) -> Result<LogChunks, DriverError> {
        let docker = self.client().await?;
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let opts = LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(stream == LogStream::Stdout)
            .stderr(stream == LogStream::Stderr)
            .tail(&tail)
            .build();
        let alloc_id = handle.alloc_id.clone();
        let task = handle.task.clone();
        let id = handle.id.clone();
        let s = docker.logs(&handle.id, Some(opts)).map(move |r| {
            r.map(|out| out.into_bytes().to_vec())
                .map_err(|e| Self::engine_err("read logs of", &alloc_id, &task, &id, e))
        });
        Ok(Box::pin(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{NodeEnv, TaskDirs};
    use crate::spec::Resources;
    use crate::testutil;
    use std::path::Path;
    use std::sync::Arc;

    fn ctx(cfg: DockerConfig, resources: Resources) -> TaskCtx {
        let mut task = testutil::task_docker("web", "img");
        task.config = TaskConfig::Docker(cfg);
        task.resources = resources;
        task.kill_signal = Some("SIGINT".into());
        task.env
            .insert("GREETING".into(), "hi ${NOMAD_ALLOC_INDEX}".into());
        let mut alloc = testutil::alloc("whoami", "node-1", vec![task.clone()]);
        alloc.id = "a1b2".into();
        alloc.networks = vec![testutil::network_with_port("http", 8080, 80)];
        TaskCtx {
            dirs: TaskDirs::new(Path::new("/data"), &alloc.id, "web"),
            alloc: Arc::new(alloc),
            task,
            node: Arc::new(NodeEnv {
                node_id: "node-1".into(),
                address: "10.0.0.5".into(),
                datacenter: "dc1".into(),
                ..NodeEnv::default()
            }),
            replaces: None,
        }
    }

    fn base() -> DockerConfig {
        DockerConfig {
            image: "traefik/whoami:${NOMAD_DC}".into(),
            ports: vec!["http".into()],
            args: vec!["--port".into(), "${NOMAD_PORT_http}".into()],
            dns_servers: vec!["${attr.unique.network.ip-address}".into(), "1.1.1.1".into()],
            dns_search_domains: vec!["service.consul".into()],
            volumes: vec!["local/config:/app/config".into()],
            labels: [
                ("drover.alloc".to_string(), "spoofed".to_string()),
                ("team".to_string(), "web".to_string()),
            ]
            .into(),
            ..DockerConfig::default()
        }
    }

    #[test]
    fn the_container_carries_everything_the_task_asks_for() {
        let body = container_body(
            &ctx(base(), Resources::default()),
            &DockerDriverConfig::default(),
        )
        .expect("body");
        assert_eq!(body.image.as_deref(), Some("traefik/whoami:dc1"));
        assert_eq!(body.cmd, Some(vec!["--port".to_string(), "80".to_string()]));
        assert_eq!(body.stop_signal.as_deref(), Some("SIGINT"));
        let labels = body.labels.expect("labels");
        assert_eq!(
            labels["drover.alloc"], "a1b2",
            "drover's labels cannot be overridden"
        );
        assert_eq!(labels["drover.job"], "whoami");
        assert_eq!(labels["drover.task"], "web");
        assert_eq!(labels["drover.node"], "node-1");
        assert_eq!(labels["team"], "web");
        let env = body.env.expect("env");
        assert!(env.contains(&"GREETING=hi 0".to_string()), "{env:?}");
        assert!(env.contains(&"NOMAD_ADDR_http=10.0.0.5:8080".to_string()));
        let hc = body.host_config.expect("host config");
        let bindings = hc.port_bindings.expect("bindings");
        let tcp = bindings["80/tcp"].as_ref().expect("tcp");
        assert_eq!(tcp[0].host_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(tcp[0].host_port.as_deref(), Some("8080"));
        assert!(bindings.contains_key("80/udp"));
        assert_eq!(hc.cpu_shares, Some(100));
        assert_eq!(hc.memory, Some(300 * 1024 * 1024));
        assert_eq!(hc.memory_reservation, None);
        // An unknown ${attr.*} is left as written, as Nomad does.
        assert_eq!(
            hc.dns,
            Some(vec![
                "${attr.unique.network.ip-address}".to_string(),
                "1.1.1.1".to_string()
            ])
        );
        assert_eq!(hc.dns_search, Some(vec!["service.consul".to_string()]));
        let binds = hc.binds.expect("binds");
        assert_eq!(
            binds,
            [
                "/data/alloc/a1b2/alloc:/alloc",
                "/data/alloc/a1b2/web/local:/local",
                "/data/alloc/a1b2/web/secrets:/secrets",
                "/data/alloc/a1b2/web/local/config:/app/config",
            ]
        );
        assert_eq!(
            hc.log_config.and_then(|l| l.typ).as_deref(),
            Some("json-file")
        );
    }

    #[test]
    fn memory_max_is_the_hard_limit_and_memory_the_reservation() {
        let res = Resources {
            cpu: 500,
            cores: 0,
            memory: 128,
            memory_max: 512,
        };
        let hc = container_body(&ctx(base(), res), &DockerDriverConfig::default())
            .expect("body")
            .host_config
            .expect("host config");
        assert_eq!(hc.memory, Some(512 * 1024 * 1024));
        assert_eq!(hc.memory_reservation, Some(128 * 1024 * 1024));
        assert_eq!(hc.cpu_shares, Some(500));
    }

    #[test]
    fn command_entrypoint_and_refusals() {
        let cfg = DockerConfig {
            command: Some("/bin/app".into()),
            entrypoint: Some(vec!["/init".into(), "${NOMAD_TASK_NAME}".into()]),
            ..base()
        };
        let body = container_body(
            &ctx(cfg, Resources::default()),
            &DockerDriverConfig::default(),
        )
        .expect("body");
        assert_eq!(
            body.cmd,
            Some(vec![
                "/bin/app".to_string(),
                "--port".to_string(),
                "80".to_string()
            ])
        );
        assert_eq!(
            body.entrypoint,
            Some(vec!["/init".to_string(), "web".to_string()])
        );

        let refuse = |cfg: DockerConfig| {
            container_body(
                &ctx(cfg, Resources::default()),
                &DockerDriverConfig::default(),
            )
            .expect_err("refused")
        };
        let e = refuse(DockerConfig {
            ports: vec!["nope".into()],
            ..base()
        });
        assert!(e.to_string().contains("config.ports"), "{e}");
        let e = refuse(DockerConfig {
            volumes: vec!["../../../etc:/etc".into()],
            ..base()
        });
        assert!(e.to_string().contains("outside the task directory"), "{e}");
        let e = refuse(DockerConfig {
            volumes: vec!["/etc:/etc".into()],
            ..base()
        });
        assert!(e.to_string().contains("volumes { enabled = true }"), "{e}");
        let e = refuse(DockerConfig {
            cap_add: vec![
                "NET_BIND_SERVICE".into(),
                "CAP_SYS_ADMIN".into(),
                "net_raw".into(),
            ],
            ..base()
        });
        assert!(
            e.to_string()
                .contains("does not allow the capabilities sys_admin, net_raw (plugin \"docker\" config allow_caps)"),
            "{e}"
        );
        let e = refuse(DockerConfig {
            network_mode: Some("host".into()),
            ..base()
        });
        assert!(e.to_string().contains("allow_host_network"), "{e}");
        let e = refuse(DockerConfig {
            privileged: true,
            ..base()
        });
        assert!(e.to_string().contains("allow_privileged"), "{e}");
        assert!(!e.is_recoverable());

        // What the node allows goes through.
        let open = DockerDriverConfig {
            allow_privileged: true,
            allow_host_network: true,
            allow_caps: vec!["ALL".into()],
            ..DockerDriverConfig::default()
        };
        let cfg = DockerConfig {
            privileged: true,
            network_mode: Some("host".into()),
            cap_add: vec!["sys_admin".into()],
            ..base()
        };
        let hc = container_body(&ctx(cfg, Resources::default()), &open)
            .expect("allowed")
            .host_config
            .expect("host config");
        assert_eq!(hc.privileged, Some(true));
        assert_eq!(hc.network_mode.as_deref(), Some("host"));
        assert_eq!(hc.cap_add, Some(vec!["sys_admin".to_string()]));
    }

    #[test]
    fn what_the_node_allows_is_a_node_attribute() {
        let closed = DockerDriver::connect(DockerDriverConfig::default()).expect("driver");
        assert!(closed.node_attributes().is_empty());
        let open = DockerDriver::connect(DockerDriverConfig {
            allow_privileged: true,
            allow_host_volumes: true,
            ..DockerDriverConfig::default()
        })
        .expect("driver");
        let attrs = open.node_attributes();
        assert_eq!(attrs["driver.docker.privileged.enabled"], "true");
        assert_eq!(attrs["driver.docker.volumes.enabled"], "true");
        assert!(!attrs.contains_key("driver.docker.host_network.enabled"));
    }

    #[test]
    fn names_are_what_docker_accepts() {
        assert_eq!(container_name("web", "a1-b2"), "web-a1-b2");
        assert_eq!(container_name("we b/x", "id"), "we_b_x-id");
    }
}
