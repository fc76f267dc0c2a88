//! [`LocalServer`]: the `ServerApi` a client in the same process uses (the dev agent). It goes
//! through the same calls a remote client's RPC would, so the dev agent exercises the real
//! path: register → ready node, heartbeat → TTL, blocking allocation query on the store index,
//! allocation updates → client status, task states, and `alloc-failure` evaluations.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use drover_runtime::client::{ApiError, Registered, ServerApi};
use drover_runtime::spec::{AllocSpec, AllocUpdate, NodeInfo};
use tracing::{debug, info};

use super::{Server, ServerError};
use crate::state::StoreError;
use crate::structs::{
    Allocation, ClientStatus, DesiredStatus, EvalTrigger, Evaluation, JobType, Node, NodeStatus,
    RestartPolicy, unix_nanos,
};

#[derive(Clone)]
pub struct LocalServer {
    server: Arc<Server>,
}

fn refused(e: impl Into<ServerError>) -> ApiError {
    match e.into() {
        ServerError::Store(StoreError::NodeNotFound { node_id }) => {
            ApiError::UnknownNode { node_id }
        }
        other => ApiError::Refused(other.to_string()),
    }
}

fn now() -> i64 {
    unix_nanos(SystemTime::now())
}

impl LocalServer {
    pub fn new(server: Arc<Server>) -> Self {
        LocalServer { server }
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// What the node is told to run for one allocation.
    pub fn alloc_spec(&self, a: &Allocation) -> Result<AllocSpec, ServerError> {
        alloc_spec(&self.server, a)
    }

    /// Runs store work off the async threads: SQLite calls block, and a worker's transaction
    /// may hold the connection for a moment.
    /// The service catalog once the store's index passes `min_index` (or `wait` ran out: then
    /// the catalog as it is), for client-only agents' DNS. The index moves on any write, so a
    /// client may get an unchanged catalog back; it only costs one rebuild.
    pub async fn service_catalog(
        &self,
        min_index: u64,
        wait: Duration,
    ) -> Result<(u64, Vec<drover_runtime::spec::ServiceRegistration>), ApiError> {
        let mut rx = self.server.store().subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        while *rx.borrow_and_update() <= min_index {
            if !matches!(
                tokio::time::timeout_at(deadline, rx.changed()).await,
                Ok(Ok(()))
            ) {
                break;
            }
        }
        let c = self.blocking(|s| s.service_catalog()).await?;
        Ok((c.index, c.registrations))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Server) -> Result<T, ServerError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || f(&server))
            .await
            .map_err(|e| ApiError::Refused(format!("the server task failed: {e}")))?
            .map_err(refused)
    }
}

/// The allocation plus the task group of the job version it was placed for.
pub(crate) fn alloc_spec(server: &Server, a: &Allocation) -> Result<AllocSpec, ServerError> {
    let job = server
        .store()
        .job_version(&a.namespace, &a.job_id, a.job_version)?;
    Ok(alloc_spec_of(a, job.as_ref()))
}

/// [`alloc_spec`] with the job version already at hand (the service catalog reads each job
/// version once for all of its allocations).
pub(crate) fn alloc_spec_of(a: &Allocation, job: Option<&crate::structs::Job>) -> AllocSpec {
    let group = job.and_then(|j| j.group(&a.task_group));
    // A purged job's allocations can only be stopped.
    let desired_status = if group.is_some() {
        a.desired_status
    } else {
        DesiredStatus::Stop
    };
    AllocSpec {
        id: a.id.clone(),
        name: a.name.clone(),
        namespace: a.namespace.clone(),
        job_id: a.job_id.clone(),
        job_version: a.job_version,
        job_type: job
            .map(|j| j.job_type)
            .unwrap_or(JobType::Service)
            .as_str()
            .to_string(),
        group: a.task_group.clone(),
        node_id: a.node_id.clone(),
        desired_status,
        tasks: group.map(|g| g.tasks.clone()).unwrap_or_default(),
        networks: a.networks.clone(),
        restart: group
            .map(|g| g.restart.clone())
            .unwrap_or_else(RestartPolicy::service_default),
        services: group.map(|g| g.services.clone()).unwrap_or_default(),
        modify_index: a.modify_index,
    }
}

/// The node's index and its allocations, unless `min_index` has not been passed yet.
fn node_specs(
    server: &Server,
    node_id: &str,
    min_index: u64,
    force: bool,
) -> Result<Option<(u64, Vec<AllocSpec>)>, ServerError> {
    let store = server.store();
    if store.node(node_id)?.is_none() {
        return Err(StoreError::NodeNotFound {
            node_id: node_id.to_string(),
        }
        .into());
    }
    // Never 0: a client asks again with the index it was given, and `min_index = 0` means
    // "answer at once", so a node without allocations would poll in a tight loop.
    let index = store.node_alloc_index(node_id)?.max(1);
    if !(force || min_index == 0 || index > min_index) {
        return Ok(None);
    }
    let specs = store
        .allocs_by_node(node_id)?
        .iter()
        // Both sides done with it: the node has nothing left to do for it.
        .filter(|a| !(a.server_terminal() && a.client_terminal()))
        .map(|a| alloc_spec(server, a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((index, specs)))
}

fn register_node(server: &Server, info: NodeInfo) -> Result<Registered, ServerError> {
    let node_id = info.id.clone();
    let node = Node::from_info(info, now() / 1_000_000_000);
    let node = server.store().upsert_node(node)?;
    let ttl = server.touch_heartbeat(&node.id);
    info!(node_id = %node_id, datacenter = %node.datacenter, "node registered");
    // Capacity appeared: placements that failed may fit now.
    server.enqueue_all(EvalTrigger::NodeUpdate, Some(&node_id))?;
    Ok(Registered { heartbeat_ttl: ttl })
}

fn heartbeat(server: &Server, node_id: &str) -> Result<Duration, ServerError> {
    let store = server.store();
    let node = store
        .node(node_id)?
        .ok_or_else(|| StoreError::NodeNotFound {
            node_id: node_id.to_string(),
        })?;
    if node.status != NodeStatus::Ready {
        store.set_node_status(node_id, NodeStatus::Ready, "node heartbeat resumed", now())?;
        info!(node_id, "node is ready again");
        server.enqueue_all(EvalTrigger::NodeUpdate, Some(node_id))?;
    }
    Ok(server.touch_heartbeat(node_id))
}

fn update_allocations(
    server: &Server,
    node_id: &str,
    updates: &[AllocUpdate],
) -> Result<(), ServerError> {
    let store = server.store();
    let recorded = store.update_allocs_from_client_counted(node_id, updates, now())?;
    for r in &recorded.restarts {
        info!(alloc_id = %r.alloc_id, job_id = %r.job_id, task = %r.task, reason = r.reason, node_id, "task restarted");
        server
            .metrics()
            .task_restarted(&r.job_id, &r.task, r.reason);
    }
    let transitions = recorded.transitions;
    let mut failed_jobs = BTreeSet::new();
    let mut running_jobs = BTreeSet::new();
    for t in &transitions {
        debug!(
            alloc_id = %t.alloc_id,
            job_id = %t.job_id,
            node_id,
            from = t.from.as_str(),
            to = t.to.as_str(),
            "client status changed"
        );
        match t.to {
            ClientStatus::Failed | ClientStatus::Complete | ClientStatus::Lost => {
                failed_jobs.insert((t.namespace.clone(), t.job_id.clone()));
            }
            ClientStatus::Running => {
                running_jobs.insert((t.namespace.clone(), t.job_id.clone()));
            }
            _ => {}
        }
    }
    for (ns, job_id) in &failed_jobs {
        let eval = Evaluation::new(job_id, ns, EvalTrigger::RetryFailedAlloc, now());
        server.submit_eval(eval)?;
    }
    // A new allocation became running: a rolling update or a drain's next migration may be
    // waiting on it.
    let draining: BTreeSet<String> = if running_jobs.is_empty() {
        BTreeSet::new()
    } else {
        store.draining_nodes()?.into_iter().map(|n| n.id).collect()
    };
    for (ns, job_id) in running_jobs.difference(&failed_jobs) {
        let live: Vec<Allocation> = store
            .allocs_by_job(ns, job_id)?
            .into_iter()
            .filter(|a| !a.terminal())
            .collect();
        let versions: BTreeSet<u64> = live.iter().map(|a| a.job_version).collect();
        let migrating = live.iter().any(|a| draining.contains(&a.node_id));
        if versions.len() > 1 || migrating {
            let eval = Evaluation::new(job_id, ns, EvalTrigger::DeploymentWatcher, now());
            server.submit_eval(eval)?;
        }
    }
    Ok(())
}

impl ServerApi for LocalServer {
    async fn register_node(&self, info: NodeInfo) -> Result<Registered, ApiError> {
        self.blocking(move |s| register_node(s, info)).await
    }

    async fn heartbeat(&self, node_id: &str) -> Result<Duration, ApiError> {
        let node_id = node_id.to_string();
        self.blocking(move |s| heartbeat(s, &node_id)).await
    }

    async fn node_allocations(
        &self,
        node_id: &str,
        min_index: u64,
        wait: Duration,
    ) -> Result<(u64, Vec<AllocSpec>), ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribed before the first read, so a write in between still wakes us.
        let mut rx = self.server.store().subscribe();
        let mut force = false;
        loop {
            rx.borrow_and_update();
            let id = node_id.to_string();
            if let Some(answer) = self
                .blocking(move |s| node_specs(s, &id, min_index, force))
                .await?
            {
                return Ok(answer);
            }
            // Timed out (or the store is gone): answer with what there is, as Nomad does.
            if !matches!(
                tokio::time::timeout_at(deadline, rx.changed()).await,
                Ok(Ok(()))
            ) {
                force = true;
            }
        }
    }

    async fn update_allocations(
        &self,
        node_id: &str,
        updates: Vec<AllocUpdate>,
    ) -> Result<(), ApiError> {
        let node_id = node_id.to_string();
        self.blocking(move |s| update_allocations(s, &node_id, &updates))
            .await
    }
}
