//! The HTTP API of a client agent (one that joins a server and has no store of its own), as
//! Nomad's clients serve theirs: what only the node knows is answered here (`/v1/agent/self`,
//! `/v1/agent/health`, a task's logs at `/v1/client/fs/logs/:alloc`); everything else is
//! forwarded to a server's RPC port with the join token, so the CLI works against any agent.
//! Also [`relay_logs`], with which a server hands a log request to the node that runs the task.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use drover_runtime::client::remote::{HttpClient, JOIN_TOKEN_HEADER};
use serde_json::json;

use super::{AgentInfo, ApiError, LogQuery, TaskLogs, agent_self_json, log_response};

/// Marks a log request a server relayed to a node.
const RELAYED_HEADER: &str = "x-drover-relayed";
/// The largest request body forwarded to a server (a job in JSON is far smaller).
const FORWARD_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub struct ClientAgentState {
    pub agent: AgentInfo,
    pub logs: Arc<dyn TaskLogs>,
    /// The servers' RPC addresses (`host:port`), tried in turn.
    pub servers: Vec<String>,
    pub join_token: Option<String>,
}

type St = State<Arc<ClientAgentState>>;

pub fn router(state: Arc<ClientAgentState>) -> Router {
    Router::new()
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/agent/health", get(agent_health))
        .route("/v1/client/fs/logs/{alloc}", get(logs))
        .fallback(forward)
        .with_state(state)
}

fn http() -> &'static HttpClient {
    static CLIENT: OnceLock<HttpClient> = OnceLock::new();
    CLIENT.get_or_init(HttpClient::new)
}

async fn agent_self(State(st): St) -> Response {
    Json(agent_self_json(&st.agent)).into_response()
}

async fn agent_health() -> Response {
    Json(json!({"client": {"ok": true, "message": "ok"}})).into_response()
}

/// The task's logs from this node's drivers. The task's driver is whatever its runner holds,
/// so this needs no job from a store. An allocation of another node is asked of a server,
/// which relays to that node.
async fn logs(
    State(st): St,
    UrlPath(alloc): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, ApiError> {
    // A request a server relayed here is answered here, held or not: sent back, it would
    // come straight back.
    if !st.logs.holds(&alloc) && !req.headers().contains_key(RELAYED_HEADER) {
        return Ok(forward(State(st), req).await);
    }
    let task = q
        .get("task")
        .cloned()
        .ok_or_else(|| ApiError::BadRequest("missing task name (?task=)".into()))?;
    let lq = LogQuery::read(&q)?;
    let stream = st
        .logs
        .logs(&alloc, &task, "", lq.stderr, lq.follow, lq.tail_bytes)
        .await
        .map_err(ApiError::NotFound)?;
    Ok(log_response(stream))
}

/// A server relays `/v1/client/fs/logs/:alloc?…` to the agent of the node that runs it.
pub async fn relay_logs(
    http_addr: &str,
    node_id: &str,
    alloc_id: &str,
    raw_query: Option<&str>,
) -> Result<Response, ApiError> {
    if http_addr.is_empty() {
        return Err(ApiError::NotFound(format!(
            "node {node_id} did not report its HTTP address; its agent cannot be asked for the logs of allocation {alloc_id}"
        )));
    }
    let url = match raw_query {
        Some(q) => format!("http://{http_addr}/v1/client/fs/logs/{alloc_id}?{q}"),
        None => format!("http://{http_addr}/v1/client/fs/logs/{alloc_id}"),
    };
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(RELAYED_HEADER, HeaderValue::from_static("1"));
    let resp = http()
        .request(axum::http::Method::GET, &url, &headers, Bytes::new())
        .await
        .map_err(|e| {
        ApiError::Internal(format!(
            "failed to reach node {node_id} at {http_addr} for the logs of allocation {alloc_id}: {e}"
        ))
    })?;
    let (parts, body) = resp.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Everything a client agent does not answer itself goes to a server, as it came.
async fn forward(State(st): St, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, FORWARD_BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("failed to read the request body: {e}"),
            )
                .into_response();
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let mut headers = parts.headers.clone();
    // The connection's own headers stay with this hop.
    headers.remove(axum::http::header::HOST);
    headers.remove(axum::http::header::CONNECTION);
    if let Some(t) = st
        .join_token
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        headers.insert(JOIN_TOKEN_HEADER, t);
    }
    let mut failures = Vec::new();
    for server in &st.servers {
        let url = format!("http://{server}{path}");
        match http()
            .request(parts.method.clone(), &url, &headers, body.clone())
            .await
        {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                return Response::from_parts(parts, Body::new(body));
            }
            Err(e) => failures.push(format!("{server}: {e}")),
        }
    }
    (
        StatusCode::BAD_GATEWAY,
        format!(
            "this client agent could not reach a server to answer {}: {}",
            parts.uri.path(),
            failures.join("; ")
        ),
    )
        .into_response()
}
