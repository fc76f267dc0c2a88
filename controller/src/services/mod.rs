//! The service catalog (Nomad's native service discovery): every `service {}` of a running
//! allocation, registered with its address and port and the health its node reports. It is
//! derived from the store — allocations the server wants running and the node reports running,
//! on nodes that are not down — so an allocation that stops, fails or is lost leaves the catalog
//! in the same write that changes it; nothing needs deregistering by hand.
//!
//! [`CatalogSource`] is how the DNS server reads it: in one process that is [`LocalCatalog`]
//! over the store; in a client-only agent it is [`RemoteCatalog`], the server's catalog followed
//! over the RPC port.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use drover_runtime::checks::task_services;
use drover_runtime::spec::{AllocSpec, resolve_address};
use tokio::sync::watch;

use crate::server::{Server, ServerError, alloc_spec_of};
use crate::structs::{Allocation, Node, NodeStatus, Service, ServiceRegistration, TaskStateKind};

/// Nomad's service registration ID: `_nomad-task-<alloc>-<task>-<service>-<port>` for a task's
/// service, `_nomad-group-…` with the group's name for a group's.
fn registration_id(alloc: &str, owner: &str, group: bool, svc: &Service) -> String {
    format!(
        "_nomad-{}-{alloc}-{owner}-{}-{}",
        if group { "group" } else { "task" },
        svc.name,
        svc.port.as_deref().unwrap_or("")
    )
}

/// The registrations of one running allocation on `node` (pure: the unit tests and the DNS
/// bench build catalogs without a store). A task's services are registered while that task
/// runs; a group's while the task it follows runs.
pub fn alloc_registrations(
    alloc: &Allocation,
    spec: &AllocSpec,
    node: &Node,
) -> Vec<ServiceRegistration> {
    let mut out = Vec::new();
    for task in &spec.tasks {
        let running = alloc
            .task_states
            .get(&task.name)
            .is_some_and(|s| s.state == TaskStateKind::Running);
        if !running {
            continue;
        }
        for svc in task_services(spec, &task.name) {
            let group = !task.services.iter().any(|s| std::ptr::eq(s, svc));
            let driver = alloc.driver_networks.get(&task.name);
            let (address, port) = match &svc.address {
                // Nomad: a custom address is advertised as is, with the port label's host port.
                Some(custom) if !custom.is_empty() => {
                    let port = resolve_address(
                        "host",
                        svc.port.as_deref(),
                        &alloc.networks,
                        &node.address,
                        None,
                    )
                    .map(|(_, p)| p)
                    .unwrap_or(0);
                    (custom.clone(), port)
                }
                _ => match resolve_address(
                    &svc.address_mode,
                    svc.port.as_deref(),
                    &alloc.networks,
                    &node.address,
                    driver,
                ) {
                    Some(a) => a,
                    // `driver` mode before the node reported the container's address.
                    None => continue,
                },
            };
            let checks = alloc
                .checks
                .iter()
                .filter(|c| c.task == task.name && c.service == svc.name)
                .cloned()
                .collect();
            let owner = if group { &alloc.task_group } else { &task.name };
            out.push(ServiceRegistration {
                id: registration_id(&alloc.id, owner, group, svc),
                service_name: svc.name.clone(),
                namespace: alloc.namespace.clone(),
                node_id: alloc.node_id.clone(),
                datacenter: node.datacenter.clone(),
                job_id: alloc.job_id.clone(),
                alloc_id: alloc.id.clone(),
                tags: svc.tags.clone(),
                address,
                port,
                create_index: alloc.create_index,
                modify_index: alloc.modify_index,
                node_name: node.name.clone(),
                checks,
            });
        }
    }
    out
}

/// `/v1/services` in short: per namespace, each service's name and tags.
pub type ServiceStubs = Vec<(String, Vec<(String, Vec<String>)>)>;

/// Every registration, sorted by service name, then job and allocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// The store index it was built at.
    pub index: u64,
    pub registrations: Vec<ServiceRegistration>,
    /// Lower-cased service name → indexes into `registrations`: DNS names are case-insensitive.
    by_name: HashMap<String, Vec<usize>>,
    /// (lower-cased name, lower-cased datacenter) → the healthy ones: what most DNS questions
    /// ask, answered without looking at every instance.
    healthy: HashMap<(String, String), Vec<usize>>,
}

impl Catalog {
    pub fn new(index: u64, mut registrations: Vec<ServiceRegistration>) -> Catalog {
        registrations.sort_by(|a, b| {
            (&a.service_name, &a.namespace, &a.job_id, &a.alloc_id, &a.id).cmp(&(
                &b.service_name,
                &b.namespace,
                &b.job_id,
                &b.alloc_id,
                &b.id,
            ))
        });
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut healthy: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (i, r) in registrations.iter().enumerate() {
            let name = r.service_name.to_ascii_lowercase();
            if r.healthy() {
                healthy
                    .entry((name.clone(), r.datacenter.to_ascii_lowercase()))
                    .or_default()
                    .push(i);
            }
            by_name.entry(name).or_default().push(i);
        }
        Catalog {
            index,
            registrations,
            by_name,
            healthy,
        }
    }

    /// The healthy instances of `name` in `datacenter` (both lower-case), as indexes into
    /// [`Catalog::registrations`], in catalog order.
    pub fn healthy_indexes(&self, name: &str, datacenter: &str) -> &[usize] {
        // A tuple key cannot be borrowed from two `&str`s; the miss path allocates, the hit
        // path is what DNS load is made of and allocates the same two short strings.
        self.healthy
            .get(&(name.to_string(), datacenter.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The instances of `name` (any case), in catalog order.
    pub fn instances<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a ServiceRegistration> {
        let key = name.to_ascii_lowercase();
        self.by_name
            .get(&key)
            .into_iter()
            .flatten()
            .map(|i| &self.registrations[*i])
    }

    /// The registrations of one service in one namespace (`/v1/service/:name`).
    pub fn service(&self, namespace: &str, name: &str) -> Vec<ServiceRegistration> {
        self.registrations
            .iter()
            .filter(|r| r.service_name == name && (namespace == "*" || r.namespace == namespace))
            .cloned()
            .collect()
    }

    /// Nomad's `/v1/services`: per namespace, each service name with the union of its tags.
    pub fn stubs(&self, namespace: &str) -> ServiceStubs {
        let mut by_ns: BTreeMap<&str, BTreeMap<&str, Vec<String>>> = BTreeMap::new();
        for r in &self.registrations {
            if namespace != "*" && r.namespace != namespace {
                continue;
            }
            let tags = by_ns
                .entry(&r.namespace)
                .or_default()
                .entry(&r.service_name)
                .or_default();
            for t in &r.tags {
                if !tags.contains(t) {
                    tags.push(t.clone());
                }
            }
        }
        by_ns
            .into_iter()
            .map(|(ns, svcs)| {
                (
                    ns.to_string(),
                    svcs.into_iter()
                        .map(|(n, mut tags)| {
                            tags.sort();
                            (n.to_string(), tags)
                        })
                        .collect(),
                )
            })
            .collect()
    }
}

impl Server {
    /// The catalog as the store holds it now.
    pub fn service_catalog(&self) -> Result<Catalog, ServerError> {
        let store = self.store();
        let index = store.index();
        let nodes: HashMap<String, Node> = store
            .nodes()?
            .into_iter()
            .filter(|n| n.status != NodeStatus::Down)
            .map(|n| (n.id.clone(), n))
            .collect();
        // Each job version is read once, however many of its allocations run.
        let mut jobs: HashMap<(String, String, u64), Option<crate::structs::Job>> = HashMap::new();
        let mut regs = Vec::new();
        for a in store.running_allocs()? {
            let Some(node) = nodes.get(&a.node_id) else {
                continue;
            };
            let key = (a.namespace.clone(), a.job_id.clone(), a.job_version);
            let job = match jobs.get(&key) {
                Some(j) => j,
                None => {
                    let j = store.job_version(&a.namespace, &a.job_id, a.job_version)?;
                    jobs.entry(key).or_insert(j)
                }
            };
            let spec = alloc_spec_of(&a, job.as_ref());
            regs.extend(alloc_registrations(&a, &spec, node));
        }
        Ok(Catalog::new(index, regs))
    }
}

/// Where the DNS server (and anything else on a node) reads the catalog from.
pub trait CatalogSource: Send + Sync + 'static {
    /// The newest catalog known; cheap (an `Arc`), never blocks on the server.
    fn catalog(&self) -> Arc<Catalog>;
}

/// A fixed catalog, for tests and benches.
impl CatalogSource for Arc<Catalog> {
    fn catalog(&self) -> Arc<Catalog> {
        self.clone()
    }
}

/// The catalog of the server in this process, rebuilt in the background whenever the store's
/// index moves (at most every `debounce`), so reading it is one `Arc` clone.
#[derive(Clone)]
pub struct LocalCatalog {
    rx: watch::Receiver<Arc<Catalog>>,
}

impl CatalogSource for LocalCatalog {
    fn catalog(&self) -> Arc<Catalog> {
        self.rx.borrow().clone()
    }
}

impl LocalCatalog {
    /// Starts following `server`'s store; stops when `shutdown` resolves.
    pub fn spawn(
        server: Arc<Server>,
        debounce: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> LocalCatalog {
        let (tx, rx) = watch::channel(Arc::new(Catalog::default()));
        let mut index = server.store().subscribe();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            loop {
                let s = server.clone();
                match tokio::task::spawn_blocking(move || s.service_catalog()).await {
                    Ok(Ok(c)) => {
                        tx.send_replace(Arc::new(c));
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "failed to rebuild the service catalog")
                    }
                    Err(e) => tracing::warn!(error = %e, "the service catalog rebuild panicked"),
                }
                tokio::select! {
                    _ = &mut shutdown => return,
                    r = index.changed() => if r.is_err() { return },
                }
                tokio::time::sleep(debounce).await;
                index.borrow_and_update();
            }
        });
        LocalCatalog { rx }
    }
}

/// How long one catalog query waits on the server when nothing changes.
const REMOTE_CATALOG_WAIT: Duration = Duration::from_secs(300);
/// The pause before asking again after a failed query.
const REMOTE_CATALOG_RETRY: Duration = Duration::from_secs(1);

/// The cluster's catalog as a client-only agent sees it: a blocking query on the server's
/// catalog (its RPC port), answered as soon as the server's state changes, kept here so a DNS
/// question never waits on the network. While the server cannot be reached, the last catalog
/// received keeps answering (a DNS that went empty whenever the server blinked would take every
/// service down with it); it starts empty until the first answer.
#[derive(Clone)]
pub struct RemoteCatalog {
    rx: watch::Receiver<Arc<Catalog>>,
}

impl CatalogSource for RemoteCatalog {
    fn catalog(&self) -> Arc<Catalog> {
        self.rx.borrow().clone()
    }
}

impl RemoteCatalog {
    /// Starts following the catalog of `remote`'s servers; stops when `shutdown` resolves.
    pub fn spawn(
        remote: Arc<drover_runtime::client::RemoteServer>,
        debounce: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> RemoteCatalog {
        let (tx, rx) = watch::channel(Arc::new(Catalog::default()));
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            let mut index = 0;
            let mut failing = false;
            loop {
                let query = remote.service_catalog(index, REMOTE_CATALOG_WAIT);
                let pause = tokio::select! {
                    _ = &mut shutdown => return,
                    r = query => match r {
                        Ok((i, regs)) => {
                            if failing {
                                tracing::info!("service catalog: the server answers again");
                                failing = false;
                            }
                            // An index that went back means the server's state was replaced
                            // (a restored or new server): start over from it.
                            index = i;
                            if tx.borrow().index != i || i == 0 {
                                tx.send_replace(Arc::new(Catalog::new(i, regs)));
                            }
                            debounce
                        }
                        Err(e) => {
                            if !failing {
                                tracing::warn!(error = %e, "service catalog: failed to read it from the server; DNS answers from the last one received");
                                failing = true;
                            }
                            REMOTE_CATALOG_RETRY
                        }
                    },
                };
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        });
        RemoteCatalog { rx }
    }
}

#[cfg(test)]
mod tests;
