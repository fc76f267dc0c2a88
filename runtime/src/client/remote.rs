//! [`RemoteServer`]: [`ServerApi`] over the network, for a client agent that joins a server
//! (`client { servers = ["HOST:4647"] }`). The calls are HTTP/JSON on the server's RPC port
//! (Nomad's 4647) under [`RPC_PREFIX`]; the allocation query is a long poll on the server's
//! index (Nomad's `?index=&wait=`), so a client learns of a new allocation as soon as it is
//! written. The wire types here are shared with the server's endpoints (the controller's
//! `api::rpc`), so the two sides cannot drift apart.
//!
//! With several servers, a call that cannot reach one tries the next, and the one that
//! answered is asked first next time. A refused join token is not retried on another server:
//! every server of a cluster shares one token.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ApiError, Registered, ServerApi};
use crate::spec::{AllocSpec, AllocUpdate, NodeInfo, ServiceRegistration};

/// Where the client endpoints live on the server's RPC port.
pub const RPC_PREFIX: &str = "/v1/drover/rpc";
/// The header a client sends its join token in.
pub const JOIN_TOKEN_HEADER: &str = "x-drover-join-token";
/// Who is calling, so a server can name the node when it refuses it.
pub const NODE_ID_HEADER: &str = "x-drover-node-id";
pub const NODE_NAME_HEADER: &str = "x-drover-node-name";
/// Read when the agent config sets no `join_token` (server and client alike).
pub const JOIN_TOKEN_ENV: &str = "DROVER_JOIN_TOKEN";
/// Nomad's RPC port, used when a `servers` entry names no port.
pub const DEFAULT_RPC_PORT: u16 = 4647;
/// The longest a blocking query may wait on the server (Nomad's cap).
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// A TCP connect that takes longer than this counts as "server unreachable".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Calls other than the long poll must answer within this.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer than `wait` a long poll may take before it counts as lost.
const POLL_SLACK: Duration = Duration::from_secs(10);

/// The answer to a registration or a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HeartbeatAnswer {
    /// Heartbeat at least this often (milliseconds), or the node is marked down.
    pub heartbeat_ttl_ms: u64,
}

/// The answer to the blocking service catalog query (a client-only agent's DNS reads it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogAnswer {
    pub index: u64,
    pub registrations: Vec<ServiceRegistration>,
}

/// The answer to the blocking allocation query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocsAnswer {
    pub index: u64,
    pub allocs: Vec<AllocSpec>,
}

/// The body of every refusal: the reason, and the node id when the server does not know the
/// node (the client registers again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RpcErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_node: Option<String>,
}

/// A blocking query's `wait` as the query string carries it (`wait=30000ms`).
pub fn format_wait(wait: Duration) -> String {
    format!("{}ms", wait.as_millis())
}

/// Reads Nomad's `wait` parameter: an integer with a unit (`ms`, `s`, `m`, `h`); `None` when
/// it is not one.
pub fn parse_wait(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    Some(d.min(MAX_WAIT))
}

/// `host:port` of a `servers` entry: the scheme is dropped and Nomad's RPC port added when
/// the entry names none.
pub fn server_address(entry: &str) -> String {
    let e = entry.trim();
    let e = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
        .unwrap_or(e)
        .trim_end_matches('/');
    let has_port = match e.rfind(']') {
        // `[v6]` or `[v6]:port`
        Some(i) => e[i..].contains(':'),
        None => e.contains(':'),
    };
    if has_port {
        e.to_string()
    } else {
        format!("{e}:{DEFAULT_RPC_PORT}")
    }
}

/// A small async HTTP/1 client (hyper, pooled connections), for the calls to the server and
/// for the server's proxying of a node's task logs.
#[derive(Clone)]
pub struct HttpClient {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

impl HttpClient {
    pub fn new() -> HttpClient {
        HttpClient::from_address(None)
    }

    /// Connections leave from `local` (the agent's bind address), so the server sees (and
    /// logs) the client's own address.
    pub fn from_address(local: Option<std::net::IpAddr>) -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_local_address(local);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        HttpClient {
            inner: HyperClient::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .build(connector),
        }
    }

    /// Sends `req`; the error says why no answer came (connection refused, reset …).
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, String> {
        self.inner.request(req).await.map_err(|e| error_chain(&e))
    }

    /// `method url` with `headers` and `body`, answered with a streaming body (a relayed log
    /// stream, a forwarded API call).
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &http::HeaderMap,
        body: Bytes,
    ) -> Result<Response<Incoming>, String> {
        let mut req = Request::builder().method(method).uri(url);
        if let Some(h) = req.headers_mut() {
            h.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("failed to build the request for {url}: {e}"))?;
        self.send(req).await
    }
}

/// hyper's errors say little at the top ("client error (Connect)"); the cause is below.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The servers of `client { servers = [...] }`, reached over HTTP/JSON.
pub struct RemoteServer {
    servers: Vec<String>,
    token: Option<String>,
    /// (node id, node name), sent along so a refusal names the node in the server's log.
    node: Option<(String, String)>,
    /// The server that answered last: asked first next time.
    preferred: AtomicUsize,
    http: HttpClient,
}

impl RemoteServer {
    /// `servers` as the agent config lists them (`"10.0.0.1:4647"`, `"10.0.0.1"`); `token` is
    /// sent on every call.
    pub fn new(servers: &[String], token: Option<String>) -> Result<RemoteServer, ApiError> {
        let servers: Vec<String> = servers
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| server_address(s))
            .collect();
        if servers.is_empty() {
            return Err(ApiError::Unreachable(
                "no server to join: set client { servers = [\"HOST:4647\"] }".into(),
            ));
        }
        Ok(RemoteServer {
            servers,
            token: token.filter(|t| !t.is_empty()),
            node: None,
            preferred: AtomicUsize::new(0),
            http: HttpClient::new(),
        })
    }

    /// Names the calling node on every call (the server logs it when it refuses the call).
    pub fn identify(mut self, node_id: &str, node_name: &str) -> RemoteServer {
        // A name a header cannot carry would fail every call; the id alone still names it.
        let name = if http::HeaderValue::from_str(node_name).is_ok() {
            node_name
        } else {
            ""
        };
        self.node = Some((node_id.to_string(), name.to_string()));
        self
    }

    /// Calls leave from `ip` (the agent's bind address) rather than wherever the route says.
    pub fn bind_local(mut self, ip: std::net::IpAddr) -> RemoteServer {
        if !ip.is_unspecified() {
            self.http = HttpClient::from_address(Some(ip));
        }
        self
    }

    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// The whole cluster's service catalog, blocking on the server until its index passes
    /// `min_index` or `wait` runs out (Nomad's `?index=&wait=`); answers `(index, registrations)`.
    pub async fn service_catalog(
        &self,
        min_index: u64,
        wait: Duration,
    ) -> Result<(u64, Vec<ServiceRegistration>), ApiError> {
        let wait = wait.min(MAX_WAIT);
        let a: CatalogAnswer = self
            .call(
                Method::GET,
                &format!("/catalog?index={min_index}&wait={}", format_wait(wait)),
                None,
                wait + POLL_SLACK,
            )
            .await?;
        Ok((a.index, a.registrations))
    }

    /// One call, tried on each server in turn while they cannot be reached.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let n = self.servers.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut unreachable = Vec::new();
        for i in 0..n {
            let idx = (first + i) % n;
            let server = &self.servers[idx];
            match self
                .call_one(server, method.clone(), path, body.clone(), timeout)
                .await
            {
                Ok(v) => {
                    if idx != first {
                        tracing::info!(server = %server, "talking to server");
                    }
                    self.preferred.store(idx, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(ApiError::Unreachable(why)) => unreachable.push(why),
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::Unreachable(unreachable.join("; ")))
    }

    async fn call_one<T: DeserializeOwned>(
        &self,
        server: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let url = format!("http://{server}{RPC_PREFIX}{path}");
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = &self.token {
            req = req.header(JOIN_TOKEN_HEADER, t);
        }
        if let Some((id, name)) = &self.node {
            req = req
                .header(NODE_ID_HEADER, id)
                .header(NODE_NAME_HEADER, name);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ApiError::Refused(format!("failed to build the request {url}: {e}")))?;
        let exchange = async {
            let resp = self
                .http
                .send(req)
                .await
                .map_err(|e| ApiError::Unreachable(format!("{server}: {e}")))?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ApiError::Unreachable(format!("{server}: {}", error_chain(&e))))?
                .to_bytes();
            Ok::<_, ApiError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| {
                ApiError::Unreachable(format!("{server}: no answer within {timeout:?}"))
            })??;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::Refused(format!(
                    "{server} answered {path} with unexpected JSON: {e}"
                ))
            });
        }
        let parsed: Option<RpcErrorBody> = serde_json::from_slice(&bytes).ok();
        let message = parsed.as_ref().map_or_else(
            || String::from_utf8_lossy(&bytes).trim().to_string(),
            |b| b.error.clone(),
        );
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ApiError::Unauthorized {
                server: server.to_string(),
                message,
            },
            StatusCode::NOT_FOUND if parsed.as_ref().is_some_and(|b| b.unknown_node.is_some()) => {
                ApiError::UnknownNode {
                    node_id: parsed.and_then(|b| b.unknown_node).unwrap_or_default(),
                }
            }
            // A proxy in front of a server that is down, or a server going away.
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => {
                ApiError::Unreachable(format!("{server}: HTTP {status}: {message}"))
            }
            _ => ApiError::Refused(format!("{server}: HTTP {status}: {message}")),
        })
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v)
        .map_err(|e| ApiError::Refused(format!("failed to encode the request: {e}")))
}

impl ServerApi for RemoteServer {
    async fn register_node(&self, node: NodeInfo) -> Result<Registered, ApiError> {
        let a: HeartbeatAnswer = self
            .call(
                Method::PUT,
                "/node/register",
                Some(to_json(&node)?),
                CALL_TIMEOUT,
            )
            .await?;
        Ok(Registered {
            heartbeat_ttl: Duration::from_millis(a.heartbeat_ttl_ms),
        })
    }

    async fn heartbeat(&self, node_id: &str) -> Result<Duration, ApiError> {
        let a: HeartbeatAnswer = self
            .call(
                Method::PUT,
                &format!("/node/{node_id}/heartbeat"),
                None,
                CALL_TIMEOUT,
            )
            .await?;
        Ok(Duration::from_millis(a.heartbeat_ttl_ms))
    }

    async fn node_allocations(
        &self,
        node_id: &str,
        min_index: u64,
        wait: Duration,
    ) -> Result<(u64, Vec<AllocSpec>), ApiError> {
        let wait = wait.min(MAX_WAIT);
        let a: AllocsAnswer = self
            .call(
                Method::GET,
                &format!(
                    "/node/{node_id}/allocations?index={min_index}&wait={}",
                    format_wait(wait)
                ),
                None,
                wait + POLL_SLACK,
            )
            .await?;
        Ok((a.index, a.allocs))
    }

    async fn update_allocations(
        &self,
        node_id: &str,
        updates: Vec<AllocUpdate>,
    ) -> Result<(), ApiError> {
        let _: serde::de::IgnoredAny = self
            .call(
                Method::PUT,
                &format!("/node/{node_id}/allocations"),
                Some(to_json(&updates)?),
                CALL_TIMEOUT,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_entries_get_nomads_rpc_port() {
        assert_eq!(server_address("10.0.0.1"), "10.0.0.1:4647");
        assert_eq!(server_address("10.0.0.1:5000"), "10.0.0.1:5000");
        assert_eq!(server_address("http://srv:4647/"), "srv:4647");
        assert_eq!(server_address("[::1]"), "[::1]:4647");
        assert_eq!(server_address("[::1]:9"), "[::1]:9");
    }

    #[test]
    fn waits_read_like_nomads() {
        assert_eq!(parse_wait("30000ms"), Some(Duration::from_secs(30)));
        assert_eq!(parse_wait("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_wait("2h"), Some(MAX_WAIT));
        assert_eq!(parse_wait("10"), None);
        assert_eq!(parse_wait("s"), None);
        assert_eq!(
            parse_wait(&format_wait(Duration::from_millis(1500))),
            Some(Duration::from_millis(1500))
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_list_says_why_for_each() {
        // Port 9 on this test's loopback address: nothing listens there, the connect is refused.
        let r = RemoteServer::new(&["127.0.1.241:9".into(), "127.0.1.241:9".into()], None)
            .expect("servers");
        match r.heartbeat("n1").await {
            Err(ApiError::Unreachable(why)) => {
                assert_eq!(why.matches("127.0.1.241:9").count(), 2, "{why}");
            }
            other => panic!("expected unreachable, got {other:?}"),
        }
        assert!(RemoteServer::new(&[], None).is_err());
    }
}
