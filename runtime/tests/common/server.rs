//! A `ServerApi` in memory for client tests: a list of allocations with an index, and what
//! the node registered and reported. `down` makes every call fail as if unreachable.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use drover_runtime::client::{ApiError, Registered, ServerApi};
use drover_runtime::spec::{AllocSpec, AllocUpdate, ClientStatus, NodeInfo};
use tokio::sync::watch;

/// A server in memory: a list of allocations with an index, and what the node reported.
#[derive(Default)]
pub struct MockServer {
    pub allocs: Mutex<(u64, Vec<AllocSpec>)>,
    pub changed: watch::Sender<u64>,
    pub nodes: Mutex<Vec<NodeInfo>>,
    pub updates: Mutex<BTreeMap<String, AllocUpdate>>,
    pub heartbeats: AtomicU32,
    pub down: AtomicBool,
}

impl MockServer {
    pub fn set_allocs(&self, allocs: Vec<AllocSpec>) {
        let mut a = self.allocs.lock().unwrap();
        a.0 += 1;
        a.1 = allocs;
        self.changed.send_replace(a.0);
    }

    pub fn status(&self, alloc_id: &str) -> Option<ClientStatus> {
        self.updates
            .lock()
            .unwrap()
            .get(alloc_id)
            .map(|u| u.client_status)
    }

    fn check(&self) -> Result<(), ApiError> {
        if self.down.load(Ordering::SeqCst) {
            Err(ApiError::Unreachable("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

impl ServerApi for MockServer {
    async fn register_node(&self, node: NodeInfo) -> Result<Registered, ApiError> {
        self.check()?;
        self.nodes.lock().unwrap().push(node);
        Ok(Registered {
            heartbeat_ttl: Duration::from_secs(2),
        })
    }

    async fn heartbeat(&self, _node_id: &str) -> Result<Duration, ApiError> {
        self.check()?;
        self.heartbeats.fetch_add(1, Ordering::SeqCst);
        Ok(Duration::from_secs(2))
    }

    async fn node_allocations(
        &self,
        _node_id: &str,
        min_index: u64,
        wait: Duration,
    ) -> Result<(u64, Vec<AllocSpec>), ApiError> {
        self.check()?;
        let mut rx = self.changed.subscribe();
        let _ = tokio::time::timeout(
            wait.min(Duration::from_millis(500)),
            rx.wait_for(|i| *i > min_index),
        )
        .await;
        self.check()?;
        let a = self.allocs.lock().unwrap();
        Ok((a.0, a.1.clone()))
    }

    async fn update_allocations(
        &self,
        _node_id: &str,
        updates: Vec<AllocUpdate>,
    ) -> Result<(), ApiError> {
        self.check()?;
        let mut m = self.updates.lock().unwrap();
        for u in updates {
            m.insert(u.id.clone(), u);
        }
        Ok(())
    }
}
