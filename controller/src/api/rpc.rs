//! What a server serves on its RPC port (Nomad's 4647) to the clients that join it: the
//! `ServerApi` calls as HTTP/JSON under `/v1/drover/rpc` (register, heartbeat, the blocking
//! allocation query, allocation updates), answered by the same [`LocalServer`] the dev agent's
//! in-process client uses; and Nomad's HTTP API, which a client agent forwards to its server.
//! Everything here needs the cluster's join token when one is configured; a refusal is logged
//! with the caller's address and node, and answered 401 (no token) or 403 (a wrong one).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use drover_runtime::client::remote::{
    AllocsAnswer, CatalogAnswer, HeartbeatAnswer, JOIN_TOKEN_HEADER, NODE_ID_HEADER,
    NODE_NAME_HEADER, RPC_PREFIX, RpcErrorBody, parse_wait,
};
use drover_runtime::client::{ApiError as RpcError, ServerApi};
use drover_runtime::spec::{AllocUpdate, NodeInfo};
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::server::LocalServer;

/// The largest request a client may send (a registration, a batch of allocation updates).
const RPC_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// A blocking query without `wait` waits this long (Nomad's default).
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

pub struct RpcState {
    pub local: LocalServer,
    /// `None`: any client may join (the server warns at start when it listens beyond loopback).
    pub join_token: Option<String>,
}

type St = State<Arc<RpcState>>;

/// The RPC port's routes: the client calls, plus `api` (Nomad's HTTP API, for forwarding
/// client agents), all behind the join token.
pub fn router(state: Arc<RpcState>, api: Router) -> Router {
    let rpc = Router::new()
        .route(&format!("{RPC_PREFIX}/node/register"), put(register))
        .route(
            &format!("{RPC_PREFIX}/node/{{id}}/heartbeat"),
            put(heartbeat),
        )
        .route(
            &format!("{RPC_PREFIX}/node/{{id}}/allocations"),
            get(allocations).put(update_allocations),
        )
        .route(&format!("{RPC_PREFIX}/catalog"), get(catalog))
        // A busy node's batch of task states and events can pass axum's 2 MB default.
        .layer(DefaultBodyLimit::max(RPC_BODY_LIMIT))
        .with_state(state.clone());
    rpc.merge(api)
        .layer(middleware::from_fn_with_state(state, check_join_token))
}

async fn check_join_token(State(st): St, req: Request, next: Next) -> Response {
    let Some(want) = &st.join_token else {
        return next.run(req).await;
    };
    let headers = req.headers();
    let given = headers
        .get(JOIN_TOKEN_HEADER)
        .map(|v| v.as_bytes().to_vec());
    let reason = match &given {
        Some(t) if super::same_token(t, want.as_bytes()) => return next.run(req).await,
        Some(_) => "wrong join token",
        None => "no join token",
    };
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.to_string());
    let header = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    warn!(
        remote = %remote,
        node_name = %header(NODE_NAME_HEADER),
        node_id = %header(NODE_ID_HEADER),
        path = %req.uri().path(),
        "refused a client: {reason}"
    );
    let status = if given.is_some() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNAUTHORIZED
    };
    refusal(status, format!("Permission denied: {reason}"), None)
}

fn refusal(status: StatusCode, error: String, unknown_node: Option<String>) -> Response {
    (
        status,
        Json(RpcErrorBody {
            error,
            unknown_node,
        }),
    )
        .into_response()
}

fn answer<T: serde::Serialize>(r: Result<T, RpcError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(RpcError::UnknownNode { node_id }) => refusal(
            StatusCode::NOT_FOUND,
            format!("node {node_id} is not registered"),
            Some(node_id),
        ),
        Err(e) => refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

/// The request body as `T`, or the 400 that says why not.
fn body<T: DeserializeOwned>(bytes: &Bytes, what: &str) -> Result<T, Box<Response>> {
    serde_json::from_slice(bytes).map_err(|e| {
        Box::new(refusal(
            StatusCode::BAD_REQUEST,
            format!("failed to read {what} from the request body: {e}"),
            None,
        ))
    })
}

fn ttl_answer(ttl: Duration) -> HeartbeatAnswer {
    HeartbeatAnswer {
        heartbeat_ttl_ms: ttl.as_millis() as u64,
    }
}

async fn register(State(st): St, bytes: Bytes) -> Response {
    let info: NodeInfo = match body(&bytes, "the node") {
        Ok(i) => i,
        Err(r) => return *r,
    };
    answer(
        st.local
            .register_node(info)
            .await
            .map(|r| ttl_answer(r.heartbeat_ttl)),
    )
}

async fn heartbeat(State(st): St, UrlPath(id): UrlPath<String>) -> Response {
    answer(st.local.heartbeat(&id).await.map(ttl_answer))
}

/// Reads `?index=&wait=` of a blocking query.
fn blocking_params(
    q: &std::collections::HashMap<String, String>,
) -> Result<(u64, Duration), Box<Response>> {
    let index = match q.get("index").map(|i| i.parse::<u64>()) {
        None => 0,
        Some(Ok(i)) => i,
        Some(Err(_)) => {
            return Err(Box::new(refusal(
                StatusCode::BAD_REQUEST,
                format!("invalid index {:?}: expected a number", q["index"]),
                None,
            )));
        }
    };
    let wait = match q.get("wait").map(|w| parse_wait(w)) {
        None => DEFAULT_WAIT,
        Some(Some(w)) => w,
        Some(None) => {
            return Err(Box::new(refusal(
                StatusCode::BAD_REQUEST,
                format!("invalid wait {:?}: expected e.g. 30s or 5m", q["wait"]),
                None,
            )));
        }
    };
    Ok((index, wait))
}

/// The whole catalog, for a client-only agent's DNS.
async fn catalog(
    State(st): St,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let (index, wait) = match blocking_params(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    answer(
        st.local
            .service_catalog(index, wait)
            .await
            .map(|(index, registrations)| CatalogAnswer {
                index,
                registrations,
            }),
    )
}

async fn allocations(
    State(st): St,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let (index, wait) = match blocking_params(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    answer(
        st.local
            .node_allocations(&id, index, wait)
            .await
            .map(|(index, allocs)| AllocsAnswer { index, allocs }),
    )
}

async fn update_allocations(State(st): St, UrlPath(id): UrlPath<String>, bytes: Bytes) -> Response {
    let updates: Vec<AllocUpdate> = match body(&bytes, "the allocation updates") {
        Ok(u) => u,
        Err(r) => return *r,
    };
    answer(
        st.local
            .update_allocations(&id, updates)
            .await
            .map(|()| serde_json::json!({})),
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use drover_runtime::client::RemoteServer;
    use drover_runtime::spec::ClientStatus;

    use super::*;
    use crate::server::{MIN_HEARTBEAT_TTL, Server, ServerConfig};
    use crate::state::{JobSource, Store};
    use crate::structs::mock::{self, MockJob};

    /// A server with its RPC port on 127.0.1.240 (this file's address), requiring `token`.
    async fn rpc_server(token: &str) -> (Arc<Server>, String) {
        let store = Arc::new(Store::open_in_memory().expect("store"));
        let server = Server::with_store(store, ServerConfig::new("/nonexistent")).expect("server");
        tokio::spawn(server.clone().run(std::future::pending()));
        let listener = tokio::net::TcpListener::bind("127.0.1.240:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(RpcState {
            local: server.local(),
            join_token: Some(token.to_string()),
        });
        let app = router(state, Router::new());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        (server, addr)
    }

    fn whoami() -> crate::structs::Job {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/seed/whoami.nomad");
        crate::jobspec::parse_file(&path, &Default::default())
            .expect("seed parses")
            .job
            .count(1)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_remote_client_registers_learns_of_a_new_allocation_at_once_and_reports() {
        let (server, addr) = rpc_server("s3cret").await;
        let remote = RemoteServer::new(std::slice::from_ref(&addr), Some("s3cret".into()))
            .expect("remote")
            .identify("node-1", "n1");
        let reg = remote
            .register_node(mock::node_info())
            .await
            .expect("register");
        assert_eq!(reg.heartbeat_ttl, MIN_HEARTBEAT_TTL);
        assert_eq!(
            remote.heartbeat("node-1").await.expect("heartbeat"),
            MIN_HEARTBEAT_TTL
        );
        let (index, allocs) = remote
            .node_allocations("node-1", 0, Duration::from_secs(1))
            .await
            .expect("first query");
        assert!(allocs.is_empty());
        // With nothing to run, the next query blocks for its `wait` (no tight polling loop).
        let started = tokio::time::Instant::now();
        let (again, _) = remote
            .node_allocations("node-1", index, Duration::from_millis(300))
            .await
            .expect("blocking query");
        assert_eq!(again, index);
        assert!(started.elapsed() >= Duration::from_millis(300));

        // A long poll that is answered when the allocation is written, not when it times out.
        let remote = Arc::new(remote);
        let poll = {
            let remote = remote.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let r = remote
                    .node_allocations("node-1", index, Duration::from_secs(60))
                    .await;
                (r, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        server
            .register_job(whoami(), JobSource::Api)
            .expect("register job");
        let (answer, waited) = tokio::time::timeout(Duration::from_secs(20), poll)
            .await
            .expect("the poll answers")
            .expect("the poll task");
        let (_, allocs) = answer.expect("query");
        assert_eq!(allocs.len(), 1, "{allocs:?}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");

        let mut update = drover_runtime::spec::AllocUpdate {
            id: allocs[0].id.clone(),
            client_status: ClientStatus::Running,
            client_description: "Tasks are running".into(),
            task_states: Default::default(),
            checks: vec![],
            driver_networks: Default::default(),
        };
        remote
            .update_allocations("node-1", vec![update.clone()])
            .await
            .expect("update");
        let stored = server.alloc(&update.id).expect("read").expect("alloc");
        assert_eq!(stored.client_status, ClientStatus::Running);

        // A node the server does not know is told so, and registers again.
        assert!(matches!(
            remote.heartbeat("node-unknown").await,
            Err(RpcError::UnknownNode { node_id }) if node_id == "node-unknown"
        ));
        update.client_status = ClientStatus::Complete;
        let unknown = remote
            .update_allocations("node-unknown", vec![update])
            .await;
        assert!(
            unknown.is_ok(),
            "updates for other nodes are ignored: {unknown:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_or_missing_join_token_is_refused() {
        let (server, addr) = rpc_server("s3cret").await;
        for token in [Some("guess".to_string()), None] {
            let remote =
                RemoteServer::new(std::slice::from_ref(&addr), token.clone()).expect("remote");
            match remote.register_node(mock::node_info()).await {
                Err(RpcError::Unauthorized { server, message }) => {
                    assert_eq!(server, addr);
                    let want = if token.is_some() {
                        "wrong join token"
                    } else {
                        "no join token"
                    };
                    assert!(message.contains(want), "{message}");
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert!(server.nodes().expect("nodes").is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_catalog_query_blocks_until_the_servers_state_changes() {
        let (server, addr) = rpc_server("s3cret").await;
        let remote =
            RemoteServer::new(std::slice::from_ref(&addr), Some("s3cret".into())).expect("remote");
        let (index, regs) = remote
            .service_catalog(0, Duration::from_secs(1))
            .await
            .expect("first query");
        assert!(regs.is_empty());
        // Nothing changes: the query waits its `wait` out and answers the same index.
        let started = tokio::time::Instant::now();
        let (again, _) = remote
            .service_catalog(index, Duration::from_millis(300))
            .await
            .expect("blocking query");
        assert_eq!(again, index);
        assert!(started.elapsed() >= Duration::from_millis(300));
        // A write answers a long poll at once.
        let remote = Arc::new(remote);
        let poll = {
            let remote = remote.clone();
            tokio::spawn(
                async move { remote.service_catalog(index, Duration::from_secs(60)).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        server
            .register_job(whoami(), JobSource::Api)
            .expect("register job");
        let (moved, _) = tokio::time::timeout(Duration::from_secs(10), poll)
            .await
            .expect("the poll answers on the write")
            .expect("the poll task")
            .expect("query");
        assert!(moved > index, "{moved} > {index}");
    }
}
