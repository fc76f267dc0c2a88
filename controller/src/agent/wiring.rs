//! One agent process. A server agent: the server (store, broker, workers), the manifests source
//! feeding it, the HTTP API, and the RPC port its clients join on; with the client role too
//! (dev mode), its node's client talks to it in-process through the same `ServerApi` a remote
//! client uses. A client agent: its node's client talking to the servers of
//! `client { servers }` (`RemoteServer`), and a small HTTP API of its own
//! (`api::client_agent`). SIGINT and SIGTERM stop the agent and leave every workload running;
//! SIGHUP reloads the configuration and rescans the manifests directory (`agent::reload`).
//! systemd is told READY/STATUS/WATCHDOG through `agent::systemd`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use drover_runtime::client::RemoteServer;
use drover_runtime::client::network::HostNetwork;
use drover_runtime::client::remote::JOIN_TOKEN_ENV;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::config::ResolvedAddrs;
use super::{AgentConfig, systemd};
use crate::api::{self, AgentInfo, AppState};
use crate::jobspec::{Diagnostic, ParseOptions, Parsed};
use crate::manifests::{self, JobRegistry, ManifestsStatus, WatchConfig, WatchControl};
use crate::server::{Server, ServerConfig};
use crate::state::JobSource;

/// How long the DNS catalog waits after a store change before rebuilding, so a burst of
/// allocation updates costs one rebuild.
const CATALOG_DEBOUNCE: Duration = Duration::from_millis(100);

/// A future that resolves once shutdown was asked for.
fn stopped(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// What SIGHUP needs: how to build the configuration again, and how to change the log level.
pub struct Reload {
    pub config: super::Reloader,
    pub set_log_level: super::SetLogLevel,
}

pub async fn run(config: AgentConfig, data_dir: PathBuf, reload: Reload) -> anyhow::Result<()> {
    if !config.server.enabled && !config.client.enabled {
        bail!(
            "the agent has no role: set server {{ enabled = true }} and/or client {{ enabled = true }} in its config, or run `drover agent -dev`"
        );
    }
    if !config.server.enabled && config.client.servers.is_empty() {
        bail!(
            "a client agent needs a server to join: set client {{ servers = [\"HOST:4647\"] }} in its config"
        );
    }
    // 0.0.0.0 is where the agent listens, never what it tells others: the node's address and
    // the advertised ones are settled here, once, from the config and the host's network.
    let host = HostNetwork::read().context("failed to list the host's network interfaces")?;
    let addrs = config.resolve_addrs(&host).map_err(anyhow::Error::msg)?;
    info!(node = addrs.node.as_deref().unwrap_or("-"), http = %addrs.http, rpc = %addrs.rpc, "advertised addresses");
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down; workloads keep running");
        systemd::stopping();
        let _ = stop_tx.send(true);
    });
    if config.server.enabled {
        run_server(config, addrs, data_dir, reload, stop_rx).await
    } else {
        run_client(config, addrs, data_dir, reload, stop_rx).await
    }
}

/// The join token: the config's, else `DROVER_JOIN_TOKEN`; `None` when neither sets one.
fn join_token(configured: &Option<String>) -> Option<String> {
    super::config::effective_join_token(
        configured.as_deref(),
        std::env::var(JOIN_TOKEN_ENV).ok().as_deref(),
    )
}

/// A server agent (with, in dev mode or when both roles are enabled, its own node's client
/// in-process): store, broker, workers, manifests, the HTTP API, and the RPC port for clients.
async fn run_server(
    config: AgentConfig,
    addrs: ResolvedAddrs,
    data_dir: PathBuf,
    reload: Reload,
    stop_rx: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut server_config = ServerConfig::new(data_dir.join("server"));
    server_config.min_heartbeat_ttl = config.server.min_heartbeat_ttl;
    server_config.heartbeat_grace = config.server.heartbeat_grace;
    // A node is declared down within an eighth of its allowance after it expires (at most 1 s
    // late), so small test TTLs are honoured too.
    server_config.heartbeat_sweep_interval =
        ((config.server.min_heartbeat_ttl + config.server.heartbeat_grace) / 8)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
    server_config.scheduled_interval = config.manifests.resync_interval;
    let server = Server::open(server_config).context("failed to open the server's state")?;
    let server_task = tokio::spawn(server.clone().run(stopped(&stop_rx)));

    // Bind before anything runs, so a port in use fails the start cleanly.
    let addr = config.http_listen_socket();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| {
            format!("failed to listen on {addr} for the HTTP API (is another agent running?)")
        })?;
    let rpc_addr = format!("{}:{}", config.bind_addr, config.rpc_port);
    let rpc_listener = match tokio::net::TcpListener::bind(&rpc_addr).await {
        Ok(l) => Some(l),
        // The dev agent's clients are in-process; others joining it are a bonus.
        Err(e) if config.dev => {
            warn!(addr = %rpc_addr, error = %e, "failed to listen on the RPC port; no remote client can join this dev agent");
            None
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "failed to listen on {rpc_addr} for clients (the RPC port, ports {{ rpc }})"
                )
            });
        }
    };

    // Every client answers DNS for the whole catalog; here the catalog is the in-process
    // server's (a client-only agent follows its server's, in `run_client`).
    let _dns = if config.client.enabled && config.dns.enabled {
        let source = crate::services::LocalCatalog::spawn(
            server.clone(),
            CATALOG_DEBOUNCE,
            stopped(&stop_rx),
        );
        Some(start_dns(&config, addrs.node.as_deref(), source, &stop_rx).await?)
    } else {
        None
    };

    let manifests_status = Arc::new(Mutex::new(ManifestsStatus::default()));
    let (watch_control, watch_control_rx) = watch::channel(WatchControl {
        rescans: 0,
        allow_empty: config.manifests.allow_empty,
    });
    if let Some(dir) = &config.manifests.dir {
        start_manifests(
            dir,
            &config,
            server.clone(),
            manifests_status.clone(),
            watch_control_rx,
            &stop_rx,
        );
    }

    let mut node_id = None;
    let mut logs: Option<Arc<dyn api::TaskLogs>> = None;
    let mut client_task = None;
    let mut adopted = None;
    if config.client.enabled {
        if !config.client.servers.is_empty() {
            warn!(
                "client {{ servers }} is ignored: this agent runs the server, and its client talks to it in-process"
            );
        }
        let client = build_client(&config, &addrs, &data_dir)?;
        node_id = Some(client.node_id().to_string());
        adopted = Some(client.adopted());
        logs = Some(Arc::new(ClientLogs(client.handle())) as Arc<dyn api::TaskLogs>);
        let local = Arc::new(server.local());
        let shutdown = stopped(&stop_rx);
        client_task = Some(tokio::spawn(async move {
            if let Err(e) = client.run(local, shutdown).await {
                error!(error = %e, "the node client stopped");
            }
        }));
    }

    let state = Arc::new(AppState {
        server: server.clone(),
        manifests: manifests_status,
        agent: agent_info(&config, &addrs, node_id),
        logs,
        api_token: config.http_api_token.clone(),
    });
    let mut rpc_task = None;
    if let Some(rpc_listener) = rpc_listener {
        let token = join_token(&config.server.join_token);
        let rpc_state = Arc::new(api::rpc::RpcState {
            local: server.local(),
            join_token: token,
        });
        let router = api::rpc::router(rpc_state, api::router(state.clone()));
        let shutdown = stopped(&stop_rx);
        info!(addr = %rpc_addr, "listening for clients");
        rpc_task = Some(tokio::spawn(async move {
            let served = axum::serve(
                rpc_listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await;
            if let Err(e) = served {
                error!(error = %e, "the RPC port failed");
            }
        }));
    }
    info!(addr = %addr, data_dir = %data_dir.display(), manifests = ?config.manifests.dir, "drover agent started");
    let status = Some((server.clone(), state.manifests.clone()));
    tokio::spawn(ready_when_adopted(
        adopted,
        status.clone(),
        stopped(&stop_rx),
    ));
    tokio::spawn(systemd::supervise(status.clone(), stopped(&stop_rx)));
    tokio::spawn(reload_on_sighup(
        config.clone(),
        reload,
        Some(watch_control),
        status,
        stopped(&stop_rx),
    ));
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(stopped(&stop_rx))
        .await
        .context("the HTTP API failed")?;

    if let Some(t) = client_task {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    // Blocking queries of remote clients end with the server; the clients ask again.
    if let Some(t) = rpc_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), server_task).await;
    Ok(())
}

/// Starts the agent's DNS interface on `source`'s catalog, or fails naming the address.
async fn start_dns<C: crate::services::CatalogSource + Unpin>(
    config: &AgentConfig,
    node_addr: Option<&str>,
    source: C,
    stop_rx: &watch::Receiver<bool>,
) -> anyhow::Result<crate::dns::DnsServer> {
    let addrs = crate::dns::listen_addrs(&config.dns, &config.bind_addr, node_addr)?;
    let handler = crate::dns::handler(&config.dns, &config.datacenter, source)?;
    let dns = crate::dns::DnsServer::start(&addrs, handler, stopped(stop_rx))
        .await
        .context(
            "failed to start the DNS interface (set dns { port = … } or dns { enabled = false })",
        )?;
    info!(addrs = ?dns.addrs, domain = %config.dns.domain, "DNS interface listening");
    Ok(dns)
}

/// A client agent: runs its node's workloads and talks to the servers of
/// `client { servers }` over their RPC port; keeps no cluster state of its own.
async fn run_client(
    config: AgentConfig,
    addrs: ResolvedAddrs,
    data_dir: PathBuf,
    reload: Reload,
    stop_rx: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if let Some(dir) = &config.manifests.dir {
        warn!(dir = %dir.display(), "manifests {{ dir }} is ignored: only a server agent watches job files");
    }
    // addresses { http } as on a server: the exposure check and the node's reported HTTP
    // address (where servers relay log requests) both assume it.
    let addr = config.http_listen_socket();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| {
            format!("failed to listen on {addr} for the HTTP API (is another agent running?)")
        })?;
    let client = build_client(&config, &addrs, &data_dir)?;
    let node_id = client.node_id().to_string();
    let adopted = client.adopted();
    let token = join_token(&config.client.join_token);
    let remote = RemoteServer::new(&config.client.servers, token.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .identify(&node_id, &config.name);
    let remote = match config.bind_addr.parse::<std::net::IpAddr>() {
        Ok(ip) => remote.bind_local(ip),
        Err(_) => remote,
    };
    let servers = remote.servers().to_vec();
    let logs = Arc::new(ClientLogs(client.handle())) as Arc<dyn api::TaskLogs>;
    let shutdown = stopped(&stop_rx);
    let remote = Arc::new(remote);
    // Every client answers DNS for the whole cluster: the catalog is the server's, followed
    // over the RPC port.
    let _dns = if config.dns.enabled {
        let source = crate::services::RemoteCatalog::spawn(
            remote.clone(),
            CATALOG_DEBOUNCE,
            stopped(&stop_rx),
        );
        Some(start_dns(&config, addrs.node.as_deref(), source, &stop_rx).await?)
    } else {
        None
    };
    let client_task = tokio::spawn(async move {
        if let Err(e) = client.run(remote, shutdown).await {
            error!(error = %e, "the node client stopped");
        }
    });
    let state = Arc::new(api::client_agent::ClientAgentState {
        agent: agent_info(&config, &addrs, Some(node_id)),
        logs,
        servers: servers.clone(),
        join_token: token,
    });
    info!(addr = %addr, data_dir = %data_dir.display(), servers = ?servers, "drover client agent started");
    tokio::spawn(ready_when_adopted(Some(adopted), None, stopped(&stop_rx)));
    tokio::spawn(systemd::supervise(None, stopped(&stop_rx)));
    tokio::spawn(reload_on_sighup(
        config.clone(),
        reload,
        None,
        None,
        stopped(&stop_rx),
    ));
    axum::serve(listener, api::client_agent::router(state))
        .with_graceful_shutdown(stopped(&stop_rx))
        .await
        .context("the HTTP API failed")?;
    let _ = tokio::time::timeout(Duration::from_secs(10), client_task).await;
    Ok(())
}

fn agent_info(config: &AgentConfig, addrs: &ResolvedAddrs, node_id: Option<String>) -> AgentInfo {
    AgentInfo {
        advertise_http: addrs.http.clone(),
        advertise_rpc: addrs.rpc.clone(),
        advertise_serf: addrs.serf.clone(),
        name: config.name.clone(),
        region: config.region.clone(),
        datacenter: config.datacenter.clone(),
        bind_addr: config.bind_addr.clone(),
        http_port: config.http_port,
        rpc_port: config.rpc_port,
        server: config.server.enabled,
        client: config.client.enabled,
        node_id,
    }
}

/// The store and the manifests status a server agent summarises for systemd's `STATUS=`.
type StatusSource = Option<(Arc<Server>, Arc<Mutex<ManifestsStatus>>)>;

async fn summary(status: &StatusSource) -> String {
    match status.clone() {
        Some((server, manifests)) => {
            tokio::task::spawn_blocking(move || systemd::summary(&server, &manifests))
                .await
                .unwrap_or_default()
        }
        None => "client agent running".into(),
    }
}

/// READY=1 once the state is open (it is by now) and the node, if this agent runs one,
/// adopted what already ran and applied the server's list of its allocations.
async fn ready_when_adopted(
    adopted: Option<watch::Receiver<bool>>,
    status: StatusSource,
    shutdown: impl std::future::Future<Output = ()>,
) {
    if let Some(mut adopted) = adopted {
        tokio::select! {
            _ = adopted.wait_for(|a| *a) => {}
            _ = shutdown => return,
        }
    }
    let line = summary(&status).await;
    info!(status = %line, "agent ready");
    systemd::ready(&line);
}

/// SIGHUP: read the configuration again, apply what can change live, name what needs a
/// restart, and rescan the manifests directory. Workloads are not touched.
async fn reload_on_sighup(
    mut current: AgentConfig,
    reload: Reload,
    control: Option<watch::Sender<WatchControl>>,
    status: StatusSource,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "failed to install the SIGHUP handler; reload by restarting");
            return;
        }
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            got = hup.recv() => if got.is_none() { return },
        }
        systemd::reloading();
        info!("SIGHUP: reloading the configuration and rescanning the manifests directory");
        match (reload.config)() {
            Err(e) => {
                error!(error = %format!("{e:#}"), "reload: the configuration is invalid; keeping the running one");
            }
            Ok((new, warnings)) => {
                for w in &warnings {
                    warn!("{w}");
                }
                let changes = super::reload::changes(&current, &new);
                if changes.is_empty() {
                    info!("reload: the configuration is unchanged");
                }
                for c in &changes {
                    if c.live {
                        info!(key = c.key, from = %c.from, to = %c.to, "reload: applied");
                    } else {
                        warn!(key = c.key, from = %c.from, to = %c.to, "reload: changed, but needs a restart to take effect");
                    }
                }
                if new.log_level != current.log_level {
                    match (reload.set_log_level)(&new.log_level) {
                        Ok(()) => current.log_level = new.log_level.clone(),
                        Err(e) => warn!(error = %e, "reload: log_level not changed"),
                    }
                }
                current.manifests.allow_empty = new.manifests.allow_empty;
            }
        }
        if let Some(control) = &control {
            control.send_modify(|c| {
                c.rescans += 1;
                c.allow_empty = current.manifests.allow_empty;
            });
        }
        systemd::ready(&summary(&status).await);
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("failed to install signal handlers; stop the agent with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn build_client(
    config: &AgentConfig,
    addrs: &ResolvedAddrs,
    data_dir: &Path,
) -> anyhow::Result<drover_runtime::client::Client> {
    let mut c = drover_runtime::client::ClientConfig::dev(data_dir.join("client"));
    c.node_name = config.name.clone();
    c.datacenter = config.datacenter.clone();
    c.region = config.region.clone();
    c.node_class = config.client.node_class.clone();
    c.node_pool = config.client.node_pool.clone();
    c.meta = config.client.meta.clone();
    c.address = addrs
        .node
        .clone()
        .context("the node's address was not resolved for a client agent")?;
    // Where the servers relay `alloc logs` to: the advertised HTTP address, never 0.0.0.0.
    c.http_addr = addrs.http.clone();
    c.raw_exec = config.raw_exec_enabled;
    if let Some(docker) = c.docker.as_mut() {
        docker.allow_host_volumes = config.docker.volumes_enabled;
        docker.allow_privileged = config.docker.allow_privileged;
        docker.allow_host_network = config.docker.allow_host_network;
        if let Some(caps) = &config.docker.allow_caps {
            docker.allow_caps = caps.clone();
        }
    }
    c.artifact_limits = config.client.artifact;
    drover_runtime::client::Client::new(c).context("failed to start the node client")
}

/// Jobs from files go to the server, owned by their file.
struct ServerRegistry(Arc<Server>);

impl JobRegistry for ServerRegistry {
    fn register_from_file(&self, path: &Path, parsed: &Parsed) -> Result<(), String> {
        self.0
            .register_job(parsed.job.clone(), JobSource::File(path.to_path_buf()))
            .map_err(|e| format!("{e:#}"))?;
        if let Err(e) = self.0.clear_source_error(path) {
            warn!(path = %path.display(), error = %e, "failed to clear the file's recorded errors");
        }
        Ok(())
    }

    fn deregister_from_file(&self, path: &Path, job_id: &str) -> Result<(), String> {
        let source = JobSource::File(path.to_path_buf());
        let namespace = self
            .0
            .jobs()
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|r| r.job.id == job_id && r.source == source)
            .map(|r| r.job.namespace)
            .unwrap_or_else(|| "default".into());
        self.0
            .deregister_job(&namespace, job_id, false, Some(&source))
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    }

    fn parse_failed(&self, path: &Path, diagnostics: &[Diagnostic]) {
        if let Err(e) = self.0.record_source_error(path, diagnostics) {
            warn!(path = %path.display(), error = %e, "failed to record the file's errors");
        }
    }
}

fn start_manifests(
    dir: &Path,
    config: &AgentConfig,
    server: Arc<Server>,
    status: Arc<Mutex<ManifestsStatus>>,
    control: watch::Receiver<WatchControl>,
    stop_rx: &watch::Receiver<bool>,
) {
    let mut wc = WatchConfig::new(dir.to_path_buf());
    wc.resync_interval = config.manifests.resync_interval;
    wc.allow_empty = config.manifests.allow_empty;
    wc.empty_grace = config.manifests.resync_interval.max(Duration::from_secs(5));
    status.lock().unwrap_or_else(|e| e.into_inner()).dir = Some(dir.to_path_buf());
    if !dir.is_dir() {
        warn!(dir = %dir.display(), "the manifests directory does not exist (yet); it is watched and read once it appears");
    }
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(manifests::run_controlled(wc, control, tx, stopped(stop_rx)));
    // Parsing reads files: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let registry = ServerRegistry(server);
        let opts = ParseOptions::default();
        while let Some(outcome) = rx.blocking_recv() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
            manifests::apply(&outcome, &registry, &mut st, &opts, now);
        }
    });
}

/// Task logs through the node's client (the docker engine, raw_exec's log files).
struct ClientLogs(drover_runtime::client::ClientHandle);

impl api::TaskLogs for ClientLogs {
    fn holds(&self, alloc_id: &str) -> bool {
        self.0.alloc_status(alloc_id).is_some()
    }

    fn logs(
        &self,
        alloc_id: &str,
        task: &str,
        _driver: &str,
        stderr: bool,
        follow: bool,
        tail_bytes: Option<u64>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<api::LogBytes, String>> + Send + '_>,
    > {
        use futures_util::StreamExt;
        let (alloc_id, task) = (alloc_id.to_string(), task.to_string());
        Box::pin(async move {
            let stream = if stderr {
                drover_runtime::driver::LogStream::Stderr
            } else {
                drover_runtime::driver::LogStream::Stdout
            };
            // Nomad's `origin=end&offset=N` is in bytes; the driver tails in lines, so ask for
            // enough lines and cut the bytes here.
            let tail_lines = tail_bytes.map(|b| (b / 16).clamp(10, 100_000) as usize);
            let chunks = self
                .0
                .logs(&alloc_id, &task, stream, follow, tail_lines)
                .await
                .map_err(|e| e.to_string())?;
            let chunks = chunks.map(|r| r.map_err(|e| e.to_string()));
            match (tail_bytes, follow) {
                (Some(n), false) => {
                    let all: Vec<Result<Vec<u8>, String>> = chunks.collect().await;
                    let mut bytes = Vec::new();
                    for c in all {
                        bytes.extend(c?);
                    }
                    let tail = bytes.split_off(bytes.len().saturating_sub(n as usize));
                    Ok(Box::pin(futures_util::stream::iter(vec![Ok(tail)])) as api::LogBytes)
                }
                _ => Ok(Box::pin(chunks) as api::LogBytes),
            }
        })
    }
}
