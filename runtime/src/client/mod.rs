//! The node agent: registers the node with its server, heartbeats, learns its allocations and
//! reports what they do. It speaks to the server only through [`ServerApi`], implemented
//! in-process by the dev agent and over the network by a client agent ([`RemoteServer`]), so
//! both are the same code.

pub mod agent;
pub mod network;
pub mod remote;
pub mod sync;

pub use agent::{Client, ClientConfig, ClientError, ClientHandle};
pub use remote::RemoteServer;
pub use sync::{NodeDiff, RunningAlloc, sync};

use std::future::Future;
use std::time::Duration;

use crate::spec::{AllocSpec, AllocUpdate, NodeInfo};

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("failed to reach the server: {0}")]
    Unreachable(String),
    #[error("the server refused the request: {0}")]
    Refused(String),
    #[error("node {node_id} is not registered with the server")]
    UnknownNode { node_id: String },
    #[error(
        "the server {server} refused this client's join token ({message}); set the server's token in client {{ join_token = ... }} or DROVER_JOIN_TOKEN"
    )]
    Unauthorized { server: String, message: String },
}

/// What the server says to a node that registers.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// Heartbeat at least this often, or the node is marked down.
    pub heartbeat_ttl: Duration,
}

/// The server as a client sees it.
pub trait ServerApi: Send + Sync + 'static {
    fn register_node(
        &self,
        node: NodeInfo,
    ) -> impl Future<Output = Result<Registered, ApiError>> + Send;

    /// Keeps the node alive; returns the TTL until the next heartbeat is due.
    fn heartbeat(&self, node_id: &str) -> impl Future<Output = Result<Duration, ApiError>> + Send;

    /// A blocking query, like Nomad's `?index=`: returns the node's allocations once the
    /// server's index for them passes `min_index`, or after `wait` with the current ones.
    fn node_allocations(
        &self,
        node_id: &str,
        min_index: u64,
        wait: Duration,
    ) -> impl Future<Output = Result<(u64, Vec<AllocSpec>), ApiError>> + Send;

    /// Reports client status and task states of allocations on the node.
    fn update_allocations(
        &self,
        node_id: &str,
        updates: Vec<AllocUpdate>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}
