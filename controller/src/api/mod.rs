//! The agent's HTTP API, on Nomad's paths and in Nomad's JSON shapes, so `drover`'s CLI and
//! Nomad's own API clients work against it: jobs (list, register, parse, read, stop, versions,
//! allocations, evaluations, summary), allocations, evaluations, nodes, task logs, agent and
//! leader status, plus `/v1/drover/manifests` for the watched directory's state, and the
//! read-only status page at `/ui` (`status_page`), and the Prometheus metrics (`/metrics`,
//! Nomad's `/v1/metrics`).

pub mod client_agent;
mod convert;
mod error;
mod metrics;
pub mod rpc;
mod status_page;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde_json::{Value, json};

pub use error::{ApiError, query_bool};

use crate::jobspec::{self, ParseOptions, VarInputs};
use crate::manifests::ManifestsStatus;
use crate::server::{Server, ServerError};
use crate::state::{JobSource, StoreError};
use crate::structs::{Allocation, Node};

/// A task's log output as a stream of byte chunks.
pub type LogBytes = Pin<Box<dyn Stream<Item = Result<Vec<u8>, String>> + Send>>;

/// Reads a task's logs on this agent's node (the in-process client in dev mode).
pub trait TaskLogs: Send + Sync + 'static {
    fn logs(
        &self,
        alloc_id: &str,
        task: &str,
        driver: &str,
        stderr: bool,
        follow: bool,
        tail_bytes: Option<u64>,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<LogBytes, String>> + Send + '_>>;

    /// Whether this node runs (or ran) `alloc_id`; a client agent forwards the others.
    fn holds(&self, alloc_id: &str) -> bool {
        let _ = alloc_id;
        true
    }
}

/// Who this agent is, for `/v1/agent/self` and `/v1/status/leader`.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    pub name: String,
    pub region: String,
    pub datacenter: String,
    pub bind_addr: String,
    /// `host:port` as other agents should dial them (Nomad's `advertise`).
    pub advertise_http: String,
    pub advertise_rpc: String,
    pub advertise_serf: String,
    pub http_port: u16,
    pub rpc_port: u16,
    pub server: bool,
    pub client: bool,
    pub node_id: Option<String>,
}

impl AgentInfo {
    /// The member's address and port as Nomad lists them: the advertised RPC address (drover
    /// has no gossip, so its members are reached on RPC).
    pub(crate) fn member_addr(&self) -> (String, u16) {
        self.advertise_rpc
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)))
            .unwrap_or_else(|| (self.bind_addr.clone(), self.rpc_port))
    }
}

pub struct AppState {
    pub server: Arc<Server>,
    pub manifests: Arc<Mutex<ManifestsStatus>>,
    pub agent: AgentInfo,
    pub logs: Option<Arc<dyn TaskLogs>>,
    /// When set, every write (anything but GET/HEAD/OPTIONS) must carry it in `X-Nomad-Token`
    /// (or `Authorization: Bearer`); see `docs/cluster-operations.md`.
    pub api_token: Option<String>,
}

type St = State<Arc<AppState>>;
type Q = Query<HashMap<String, String>>;
type ApiResult = Result<Response, ApiError>;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/v1/jobs",
            get(jobs_list).post(jobs_register).put(jobs_register),
        )
        .route("/v1/jobs/parse", post(jobs_parse).put(jobs_parse))
        .route(
            "/v1/job/{id}",
            get(job_read)
                .post(job_register)
                .put(job_register)
                .delete(job_deregister),
        )
        .route("/v1/job/{id}/plan", post(job_plan).put(job_plan))
        .route("/v1/job/{id}/allocations", get(job_allocations))
        .route("/v1/job/{id}/versions", get(job_versions))
        .route("/v1/job/{id}/summary", get(job_summary))
        .route("/v1/job/{id}/evaluations", get(job_evaluations))
        .route("/v1/allocations", get(allocs_list))
        .route("/v1/allocation/{id}", get(alloc_read))
        .route("/v1/allocation/{id}/checks", get(alloc_checks))
        .route("/v1/services", get(services_list))
        .route("/v1/service/{name}", get(service_read))
        .route("/v1/evaluations", get(evals_list))
        .route("/v1/evaluation/{id}", get(eval_read))
        .route("/v1/evaluation/{id}/allocations", get(eval_allocations))
        .route("/v1/nodes", get(nodes_list))
        .route("/v1/node/{id}", get(node_read))
        .route("/v1/node/{id}/allocations", get(node_allocations))
        .route(
            "/v1/node/{id}/eligibility",
            post(node_eligibility).put(node_eligibility),
        )
        .route("/v1/node/{id}/drain", post(node_drain).put(node_drain))
        .route("/v1/agent/members", get(agent_members))
        .route("/v1/client/fs/logs/{alloc}", get(alloc_logs))
        .route("/v1/status/leader", get(status_leader))
        .route("/v1/status/peers", get(status_peers))
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/agent/health", get(agent_health))
        .route("/v1/drover/manifests", get(manifests_status))
        .route("/v1/metrics", get(metrics::nomad))
        .route("/metrics", get(metrics::prometheus))
        .merge(status_page::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .with_state(state)
}

/// Refuses a write without the agent's API token, as Nomad refuses a request its ACL token
/// does not allow: 403 "Permission denied". Reads stay open.
async fn require_token(
    State(st): St,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(want) = st.api_token.as_deref() else {
        return next.run(req).await;
    };
    let m = req.method();
    if m == axum::http::Method::GET
        || m == axum::http::Method::HEAD
        || m == axum::http::Method::OPTIONS
    {
        return next.run(req).await;
    }
    let headers = req.headers();
    let given = headers
        .get("X-Nomad-Token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    if given.is_some_and(|g| same_token(g.as_bytes(), want.as_bytes())) {
        return next.run(req).await;
    }
    tracing::warn!(method = %m, path = %req.uri().path(), token_given = given.is_some(), "write refused: missing or wrong API token");
    (StatusCode::FORBIDDEN, "Permission denied").into_response()
}

/// Compares in time independent of where the first difference is, so a token (the API's or
/// the cluster's join token) cannot be guessed byte by byte from response times.
pub(crate) fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::Store(StoreError::JobOwned { .. }) => ApiError::Forbidden(e.to_string()),
            ServerError::Store(StoreError::JobNotFound { .. })
            | ServerError::Store(StoreError::EvalNotFound { .. })
            | ServerError::Store(StoreError::NodeNotFound { .. }) => {
                ApiError::NotFound(e.to_string())
            }
            ServerError::Store(StoreError::NodeDraining { .. }) => {
                ApiError::BadRequest(e.to_string())
            }
            other => internal(format!("{other:#}")),
        }
    }
}

/// Runs `f` on tokio's blocking pool: `Server`'s methods run SQLite synchronously, which must
/// not stall the async workers that serve every other request (`docs/scheduler.md`).
async fn blocking<T: Send + 'static>(
    st: Arc<AppState>,
    f: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || f(&st))
        .await
        .map_err(|e| internal(format!("the request's handler failed: {e}")))?
}

/// JSON with Nomad's `X-Nomad-Index` header, which blocking-query clients read.
fn ok(state: &AppState, v: Value) -> ApiResult {
    let mut resp = Json(v).into_response();
    if let Ok(h) = HeaderValue::from_str(&state.server.store().index().to_string()) {
        resp.headers_mut().insert("X-Nomad-Index", h);
    }
    resp.headers_mut()
        .insert("X-Nomad-KnownLeader", HeaderValue::from_static("true"));
    Ok(resp)
}

fn prefix_filter(q: &HashMap<String, String>) -> &str {
    q.get("prefix").map_or("", String::as_str)
}

fn nodes_by_id(server: &Server) -> Result<BTreeMap<String, Node>, ApiError> {
    Ok(server
        .nodes()?
        .into_iter()
        .map(|n| (n.id.clone(), n))
        .collect())
}

fn node_name(nodes: &BTreeMap<String, Node>, id: &str) -> String {
    nodes.get(id).map(|n| n.name.clone()).unwrap_or_default()
}

fn stubs(server: &Server, allocs: &[Allocation]) -> Result<Value, ApiError> {
    let nodes = nodes_by_id(server)?;
    Ok(Value::Array(
        allocs
            .iter()
            .map(|a| convert::alloc_stub(a, &node_name(&nodes, &a.node_id)))
            .collect(),
    ))
}

/// Allocations still waiting for a place, per group: what failed placement last time.
fn queued(
    server: &Server,
    namespace: &str,
    job_id: &str,
) -> Result<BTreeMap<String, u32>, ApiError> {
    let evals = server.evals_by_job(namespace, job_id)?;
    let newest = evals
        .iter()
        .filter(|e| e.status.terminal())
        .max_by_key(|e| e.create_index);
    Ok(newest
        .map(|e| {
            e.failed_tg_allocs
                .iter()
                .map(|(g, f)| (g.clone(), f.coalesced_failures + 1))
                .collect()
        })
        .unwrap_or_default())
}

fn namespace(q: &HashMap<String, String>) -> &str {
    // Nomad's `*` lists every namespace; drover has only `default`.
    match q.get("namespace").map(String::as_str) {
        None | Some("") | Some("*") => "default",
        Some(ns) => ns,
    }
}

async fn jobs_list(State(st): St, Query(q): Q) -> ApiResult {
    blocking(st, move |st| {
        let prefix = prefix_filter(&q);
        let mut out = Vec::new();
        for rec in st.server.jobs()? {
            if !rec.job.id.starts_with(prefix) {
                continue;
            }
            let allocs = st.server.allocs_by_job(&rec.job.namespace, &rec.job.id)?;
            let queued = queued(&st.server, &rec.job.namespace, &rec.job.id)?;
            out.push(convert::job_stub(
                &rec.job,
                &allocs,
                &queued,
                rec.submit_time,
                rec.modify_index,
            ));
        }
        ok(st, Value::Array(out))
    })
    .await
}

/// Reads `{"Job": …}` (or a bare job) in Nomad's API JSON.
fn job_from_body(body: &Bytes) -> Result<crate::structs::Job, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the request body is not UTF-8".into()))?;
    if text.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "the request body is empty: expected {\"Job\": {…}}".into(),
        ));
    }
    jobspec::from_api_json(Path::new("request"), text)
        .map(|p| p.job)
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn register(st: &AppState, job: crate::structs::Job) -> ApiResult {
    let reg = st.server.register_job(job, JobSource::Api)?;
    ok(
        st,
        json!({
            "EvalID": reg.eval.id,
            "EvalCreateIndex": reg.eval.create_index,
            "JobModifyIndex": reg.eval.create_index,
            "Warnings": "",
            "Index": reg.eval.create_index,
            "LastContact": 0,
            "KnownLeader": true,
        }),
    )
}

async fn jobs_register(State(st): St, body: Bytes) -> ApiResult {
    let job = job_from_body(&body)?;
    blocking(st, move |st| register(st, job)).await
}

async fn job_register(State(st): St, UrlPath(id): UrlPath<String>, body: Bytes) -> ApiResult {
    let job = job_from_body(&body)?;
    if job.id != id {
        return Err(ApiError::BadRequest(format!(
            "the job ID in the body ({:?}) does not match the URL ({id:?})",
            job.id
        )));
    }
    blocking(st, move |st| register(st, job)).await
}

/// Nomad's `JobPlanResponse` for a computed plan. `job_modify_index` is the registered job's
/// modify index (0 for a new job). Shared with `drover job plan -offline`, so both print alike.
pub fn plan_response(
    plan: &crate::jobplan::JobPlan,
    job_modify_index: u64,
    with_diff: bool,
    now: i64,
) -> crate::jobplan::render::PlanResponse {
    use crate::jobplan::render::{PlanAnnotations, PlanResponse};
    let p = &plan.plan;
    let failed: BTreeMap<String, Value> = p
        .failed_tg
        .iter()
        .map(|(g, f)| (g.clone(), convert::placement_failure(f, &BTreeMap::new())))
        .collect();
    let evals: Vec<Value> = p
        .followup_evals
        .iter()
        .map(|f| {
            json!({
                "JobID": p.job_id,
                "TriggeredBy": f.triggered_by.as_str(),
                "Status": "pending",
                "StatusDescription": f.description,
                "WaitUntil": convert::time(f.wait_until),
                "Wait": (f.wait_until - now).max(0),
            })
        })
        .collect();
    PlanResponse {
        annotations: Some(PlanAnnotations {
            desired_tg_updates: Some(
                p.desired_tg_updates
                    .iter()
                    .map(|(g, du)| (g.clone(), du.into()))
                    .collect(),
            ),
            preempted_allocs: None,
        }),
        failed_tg_allocs: (plan.nodes_known && !failed.is_empty()).then_some(failed),
        job_modify_index,
        created_evals: (!evals.is_empty()).then_some(evals),
        diff: with_diff.then(|| plan.diff.clone()),
        next_periodic_launch: Some("0001-01-01T00:00:00Z".into()),
        warnings: String::new(),
        placement_checked: plan.nodes_known,
    }
}

/// `PUT /v1/job/:id/plan`: `{"Job": {…}, "Diff": true}` → what registering it would do, in
/// Nomad's `JobPlanResponse`. Reads only: no job, evaluation or index is written.
async fn job_plan(State(st): St, UrlPath(id): UrlPath<String>, body: Bytes) -> ApiResult {
    let req: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not JSON: {e}")))?;
    let with_diff = req.get("Diff").and_then(Value::as_bool).unwrap_or(false);
    let job_json = match req.get("Job") {
        Some(j) if j.is_object() => j,
        _ => {
            return Err(ApiError::BadRequest(
                "the request body has no Job: expected {\"Job\": {…}, \"Diff\": true}".into(),
            ));
        }
    };
    let job = job_from_body(&Bytes::from(job_json.to_string()))?;
    if job.id != id {
        return Err(ApiError::BadRequest(format!(
            "the job ID in the body ({:?}) does not match the URL ({id:?})",
            job.id
        )));
    }
    blocking(st, move |st| {
        // A stopped job in the body plans its stop, as Nomad's `job plan` of `Stop = true` does.
        let remove = job.stop;
        let modify_index = st
            .server
            .job(&job.namespace, &job.id)?
            .map_or(0, |r| r.modify_index);
        let plan = st.server.plan_job(&job, remove)?;
        let now = crate::structs::unix_nanos(std::time::SystemTime::now());
        let resp = plan_response(&plan, modify_index, with_diff, now);
        let mut v = serde_json::to_value(&resp).map_err(internal)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("Index".into(), json!(st.server.store().index()));
        }
        ok(st, v)
    })
    .await
}

/// `POST /v1/jobs/parse`: `{"JobHCL": "…", "Variables": "…"}` → the job in API JSON.
async fn jobs_parse(State(st): St, body: Bytes) -> ApiResult {
    // Nomad's clients do not always send a Content-Type, so the body is read as JSON regardless.
    let req: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not JSON: {e}")))?;
    let Some(hcl) = req.get("JobHCL").and_then(Value::as_str) else {
        return Err(ApiError::BadRequest("JobHCL is required".into()));
    };
    let mut vars = VarInputs::default();
    if let Some(v) = req
        .get("Variables")
        .and_then(Value::as_str)
        .filter(|v| !v.trim().is_empty())
    {
        vars.var_files.push(("Variables".into(), v.to_string()));
    }
    let parsed = jobspec::parse(
        Path::new("job.nomad"),
        hcl.as_bytes(),
        &ParseOptions { vars },
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    ok(&st, jobspec::to_api_job(&parsed.job))
}

fn find_job(
    st: &AppState,
    q: &HashMap<String, String>,
    id: &str,
) -> Result<crate::state::JobRecord, ApiError> {
    st.server
        .job(namespace(q), id)?
        .ok_or_else(|| ApiError::NotFound(format!("job {id:?} not found")))
}

async fn job_read(State(st): St, UrlPath(id): UrlPath<String>, Query(q): Q) -> ApiResult {
    blocking(st, move |st| {
        let rec = find_job(st, &q, &id)?;
        let allocs = st.server.allocs_by_job(&rec.job.namespace, &rec.job.id)?;
        let mut v = jobspec::to_api_job(&rec.job);
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "Status".into(),
                json!(convert::job_status(&rec.job, &allocs)),
            );
            o.insert("SubmitTime".into(), json!(rec.submit_time));
            o.insert("Stop".into(), json!(rec.job.stop));
            o.insert("Version".into(), json!(rec.job.version));
            o.insert("CreateIndex".into(), json!(rec.create_index));
            o.insert("ModifyIndex".into(), json!(rec.modify_index));
            o.insert("JobModifyIndex".into(), json!(rec.modify_index));
            let source = match &rec.source {
                JobSource::File(p) => p.display().to_string(),
                JobSource::Api => "api".into(),
            };
            o.insert("DroverSource".into(), json!(source));
        }
        ok(st, v)
    })
    .await
}

async fn job_deregister(State(st): St, UrlPath(id): UrlPath<String>, Query(q): Q) -> ApiResult {
    let purge = query_bool(q.get("purge"))?;
    blocking(st, move |st| {
        let rec = find_job(st, &q, &id)?;
        let eval =
            st.server
                .deregister_job(&rec.job.namespace, &id, purge, Some(&JobSource::Api))?;
        ok(
            st,
            json!({"EvalID": eval.id, "EvalCreateIndex": eval.create_index, "JobModifyIndex": eval.create_index, "Index": eval.create_index}),
        )
    })
    .await
}

async fn job_allocations(State(st): St, UrlPath(id): UrlPath<String>, Query(q): Q) -> ApiResult {
    blocking(st, move |st| {
        let rec = find_job(st, &q, &id)?;
        let allocs = st.server.allocs_by_job(&rec.job.namespace, &id)?;
        ok(st, stubs(&st.server, &allocs)?)
    })
    .await
}

async fn job_versions(State(st): St, UrlPath(id): UrlPath<String>, Query(q): Q) -> ApiResult {
    blocking(st, move |st| {
        let rec = find_job(st, &q, &id)?;
        let mut versions = st.server.job_versions(&rec.job.namespace, &id)?;
        versions.sort_by_key(|j| std::cmp::Reverse(j.version));
        let list: Vec<Value> = versions
            .iter()
            .map(|j| {
                let mut v = jobspec::to_api_job(j);
                if let Some(o) = v.as_object_mut() {
                    o.insert("Version".into(), json!(j.version));
                    o.insert("Stop".into(), json!(j.stop));
                }
                v
            })
            .collect();
        ok(st, json!({"Versions": list, "Diffs": null}))
    })
    .await
}

async fn job_summary(State(st): St, UrlPath(id): UrlPath<String>, Query(q): Q) -> ApiResult {
    blocking(st, move |st| {
        let rec = find_job(st, &q, &id)?;
        let allocs = st.server.allocs_by_job(&rec.job.namespace, &id)?;
        let queued = queued(&st.server, &rec.job.namespace, &id)?;
        ok(st, convert::summary(&rec.job, &allocs, &queued))
    })
    .await
}

async fn job_evaluations(State(st): St, UrlPath(id): UrlPath<String>, Query(q): Q) -> ApiResult {
    blocking(st, move |st| {
        let rec = find_job(st, &q, &id)?;
        let evals = st.server.evals_by_job(&rec.job.namespace, &id)?;
        ok(st, Value::Array(evals.iter().map(convert::eval).collect()))
    })
    .await
}

async fn allocs_list(State(st): St, Query(q): Q) -> ApiResult {
    blocking(st, move |st| {
        let prefix = prefix_filter(&q);
        let allocs = if prefix.is_empty() {
            let mut all = Vec::new();
            for rec in st.server.jobs()? {
                all.extend(st.server.allocs_by_job(&rec.job.namespace, &rec.job.id)?);
            }
            all
        } else {
            st.server.allocs_by_id_prefix(prefix)?
        };
        ok(st, stubs(&st.server, &allocs)?)
    })
    .await
}

async fn alloc_read(State(st): St, UrlPath(id): UrlPath<String>) -> ApiResult {
    blocking(st, move |st| {
        let a = st
            .server
            .alloc(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("allocation {id:?} not found")))?;
        let job = st
            .server
            .job_versions(&a.namespace, &a.job_id)?
            .into_iter()
            .find(|j| j.version == a.job_version);
        let node = st.server.node(&a.node_id)?;
        ok(st, convert::alloc_full(&a, job.as_ref(), node.as_ref()))
    })
    .await
}

/// Nomad's `/v1/allocation/:id/checks`: the allocation's checks by ID, in Nomad's words
/// (`success`, `failure`, `pending` before the first result).
async fn alloc_checks(State(st): St, UrlPath(id): UrlPath<String>) -> ApiResult {
    blocking(st, move |st| {
        let a = st
            .server
            .alloc(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("allocation {id:?} not found")))?;
        let mut out = serde_json::Map::new();
        for c in &a.checks {
            let check_id = format!("{}-{}-{}-{}", a.id, c.task, c.service, c.check);
            let status = match (c.status, c.output.is_empty()) {
                (crate::structs::CheckStatus::Critical, true) => "pending",
                (crate::structs::CheckStatus::Passing, _) => "success",
                _ => "failure",
            };
            out.insert(
                check_id.clone(),
                json!({
                    "Check": c.check,
                    "Group": format!("{}.{}", a.job_id, a.task_group),
                    "ID": check_id,
                    "Mode": "healthiness",
                    "Output": c.output,
                    "Service": c.service,
                    "Status": status,
                    "Task": c.task,
                    "Timestamp": c.timestamp / 1_000_000_000,
                    "Type": c.check_type,
                }),
            );
        }
        ok(st, Value::Object(out))
    })
    .await
}

fn namespace_param(q: &HashMap<String, String>) -> String {
    q.get("namespace")
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| "default".into())
}

/// Nomad's `/v1/services`: per namespace, the services with their tags.
async fn services_list(State(st): St, Query(q): Q) -> ApiResult {
    blocking(st, move |st| {
        let ns = namespace_param(&q);
        let catalog = st.server.service_catalog()?;
        let out: Vec<Value> = catalog
            .stubs(&ns)
            .into_iter()
            .map(|(ns, services)| {
                json!({
                    "Namespace": ns,
                    "Services": services
                        .into_iter()
                        .map(|(name, tags)| json!({"ServiceName": name, "Tags": tags}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        ok(st, Value::Array(out))
    })
    .await
}

/// Nomad's `/v1/service/:name`: its registrations (an empty list when there are none, as Nomad).
async fn service_read(State(st): St, UrlPath(name): UrlPath<String>, Query(q): Q) -> ApiResult {
    blocking(st, move |st| {
        let ns = namespace_param(&q);
        let regs = st.server.service_catalog()?.service(&ns, &name);
        let v = serde_json::to_value(regs)
            .map_err(|e| ApiError::Internal(format!("failed to encode service {name:?}: {e}")))?;
        ok(st, v)
    })
    .await
}

async fn evals_list(State(st): St, Query(q): Q) -> ApiResult {
    blocking(st, move |st| {
        let prefix = prefix_filter(&q);
        let evals: Vec<Value> = st
            .server
            .evals()?
            .iter()
            .filter(|e| e.id.starts_with(prefix))
            .map(convert::eval)
            .collect();
        ok(st, Value::Array(evals))
    })
    .await
}

async fn eval_read(State(st): St, UrlPath(id): UrlPath<String>) -> ApiResult {
    blocking(st, move |st| {
        let e = st
            .server
            .eval(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("evaluation {id:?} not found")))?;
        ok(st, convert::eval(&e))
    })
    .await
}

async fn eval_allocations(State(st): St, UrlPath(id): UrlPath<String>) -> ApiResult {
    blocking(st, move |st| {
        let e = st
            .server
            .eval(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("evaluation {id:?} not found")))?;
        let allocs: Vec<Allocation> = st
            .server
            .allocs_by_job(&e.namespace, &e.job_id)?
            .into_iter()
            .filter(|a| a.eval_id == e.id)
            .collect();
        ok(st, stubs(&st.server, &allocs)?)
    })
    .await
}

async fn nodes_list(State(st): St, Query(q): Q) -> ApiResult {
    blocking(st, move |st| {
        let prefix = prefix_filter(&q);
        let nodes: Vec<Value> = st
            .server
            .nodes()?
            .iter()
            .filter(|n| n.id.starts_with(prefix))
            .map(convert::node_stub)
            .collect();
        ok(st, Value::Array(nodes))
    })
    .await
}

async fn node_read(State(st): St, UrlPath(id): UrlPath<String>) -> ApiResult {
    blocking(st, move |st| {
        let n = find_node(st, &id)?;
        ok(st, convert::node_full(&n))
    })
    .await
}

async fn node_allocations(State(st): St, UrlPath(id): UrlPath<String>) -> ApiResult {
    blocking(st, move |st| {
        let node = find_node(st, &id)?;
        let allocs = st.server.allocs_by_node(&node.id)?;
        ok(st, stubs(&st.server, &allocs)?)
    })
    .await
}

/// What `/v1/client/fs/logs` asks for: `type=stdout|stderr`, `follow`, `origin=end&offset=N`.
pub(crate) struct LogQuery {
    pub stderr: bool,
    pub follow: bool,
    pub tail_bytes: Option<u64>,
}

impl LogQuery {
    pub(crate) fn read(q: &HashMap<String, String>) -> Result<LogQuery, ApiError> {
        let stderr = match q.get("type").map(String::as_str) {
            None | Some("stdout") => false,
            Some("stderr") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "invalid log type {other:?}: expected stdout or stderr"
                )));
            }
        };
        let follow = query_bool(q.get("follow"))?;
        let tail_bytes = match (q.get("origin").map(String::as_str), q.get("offset")) {
            (Some("end"), Some(off)) => Some(
                off.parse::<u64>()
                    .map_err(|_| ApiError::BadRequest(format!("invalid offset {off:?}")))?,
            ),
            _ => None,
        };
        Ok(LogQuery {
            stderr,
            follow,
            tail_bytes,
        })
    }
}

/// A log stream as Nomad's `plain=true` answer: the bytes as they come.
pub(crate) fn log_response(stream: LogBytes) -> Response {
    let body = Body::from_stream(futures_util::StreamExt::map(stream, |r| {
        r.map(Bytes::from).map_err(std::io::Error::other)
    }));
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A request body as JSON, or 400 naming what is wrong.
fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not JSON: {e}")))
}

/// The node a path names: its full ID, or a unique ID prefix as Nomad's API accepts.
fn find_node(st: &AppState, id: &str) -> Result<Node, ApiError> {
    if let Some(n) = st.server.node(id)? {
        return Ok(n);
    }
    let mut matches: Vec<Node> = if id.len() >= 2 {
        st.server
            .nodes()?
            .into_iter()
            .filter(|n| n.id.starts_with(id))
            .collect()
    } else {
        Vec::new()
    };
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(ApiError::NotFound(format!("node {id:?} not found"))),
        _ => Err(ApiError::BadRequest(format!(
            "node ID prefix {id:?} matches {} nodes",
            matches.len()
        ))),
    }
}

/// `POST /v1/node/:id/eligibility` with `{"Eligibility": "eligible"|"ineligible"}`.
async fn node_eligibility(State(st): St, UrlPath(id): UrlPath<String>, body: Bytes) -> ApiResult {
    let req = json_body(&body)?;
    let eligible = match req.get("Eligibility").and_then(Value::as_str) {
        Some("eligible") => true,
        Some("ineligible") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid scheduling eligibility {other:?}: expected \"eligible\" or \"ineligible\""
            )));
        }
        None => {
            return Err(ApiError::BadRequest(
                "missing Eligibility: expected \"eligible\" or \"ineligible\"".into(),
            ));
        }
    };
    blocking(st, move |st| {
        let node = find_node(st, &id)?;
        let (node, evals) = st.server.set_node_eligibility(&node.id, eligible)?;
        node_update_answer(st, &node, &evals)
    })
    .await
}

/// `POST /v1/node/:id/drain` with Nomad's `DrainRequest`: `{"DrainSpec": {"Deadline": ns,
/// "IgnoreSystemJobs": bool} | null, "MarkEligible": bool}`.
async fn node_drain(State(st): St, UrlPath(id): UrlPath<String>, body: Bytes) -> ApiResult {
    let req = json_body(&body)?;
    let spec = match req.get("DrainSpec") {
        None | Some(Value::Null) => None,
        Some(Value::Object(spec)) => {
            let deadline = match spec.get("Deadline") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_i64().ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "invalid DrainSpec.Deadline {v}: expected nanoseconds as an integer"
                    ))
                })?,
            };
            let ignore_system = match spec.get("IgnoreSystemJobs") {
                None | Some(Value::Null) => false,
                Some(v) => v.as_bool().ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "invalid DrainSpec.IgnoreSystemJobs {v}: expected true or false"
                    ))
                })?,
            };
            Some((deadline, ignore_system))
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid DrainSpec {other}: expected an object or null"
            )));
        }
    };
    let mark_eligible = match req.get("MarkEligible") {
        None | Some(Value::Null) => false,
        Some(v) => v.as_bool().ok_or_else(|| {
            ApiError::BadRequest(format!("invalid MarkEligible {v}: expected true or false"))
        })?,
    };
    blocking(st, move |st| {
        let node = find_node(st, &id)?;
        let now = crate::structs::unix_nanos(std::time::SystemTime::now());
        let strategy = spec
            .map(|(deadline, ignore)| crate::structs::DrainStrategy::new(deadline, ignore, now));
        let (node, evals) = st
            .server
            .set_node_drain(&node.id, strategy, mark_eligible)?;
        node_update_answer(st, &node, &evals)
    })
    .await
}

/// Nomad's `NodeDrainUpdateResponse` / `NodeEligibilityUpdateResponse`.
fn node_update_answer(st: &AppState, node: &Node, evals: &[String]) -> ApiResult {
    let index = st.server.store().index();
    ok(
        st,
        json!({
            "NodeModifyIndex": node.modify_index,
            "EvalIDs": evals,
            "EvalCreateIndex": if evals.is_empty() { 0 } else { index },
            "Index": index,
            "LastContact": 0,
            "KnownLeader": true,
        }),
    )
}

/// `GET /v1/client/fs/logs/:alloc?task=&type=stdout|stderr&follow=&origin=end&offset=&plain=`.
async fn alloc_logs(
    State(st): St,
    UrlPath(alloc): UrlPath<String>,
    Query(q): Q,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let task = q.get("task").cloned();
    let (a, task, driver, node) = blocking(st.clone(), move |st| {
        let a = st
            .server
            .alloc(&alloc)?
            .ok_or_else(|| ApiError::NotFound(format!("allocation {alloc:?} not found")))?;
        let task = task.ok_or_else(|| ApiError::BadRequest("missing task name (?task=)".into()))?;
        let Some(driver) = task_driver(st, &a, &task)? else {
            return Err(ApiError::NotFound(format!(
                "task {task:?} not found in allocation {alloc:?}"
            )));
        };
        let node = st.server.node(&a.node_id)?;
        Ok((a, task, driver, node))
    })
    .await?;
    let lq = LogQuery::read(&q)?;
    let local = st.agent.node_id.as_deref() == Some(a.node_id.as_str());
    let logs = match st.logs.clone() {
        Some(logs) if local => logs,
        // The task runs on another node: its agent serves the logs, and this one relays them
        // (Nomad's servers forward `/v1/client/fs/logs` to the node the same way).
        _ => {
            let Some(node) = node else {
                return Err(ApiError::NotFound(format!(
                    "node {:?} of allocation {:?} not found",
                    a.node_id, a.id
                )));
            };
            return client_agent::relay_logs(&node.http_addr, &node.id, &a.id, raw.as_deref())
                .await;
        }
    };
    let stream = logs
        .logs(&a.id, &task, &driver, lq.stderr, lq.follow, lq.tail_bytes)
        .await
        .map_err(ApiError::NotFound)?;
    Ok(log_response(stream))
}

/// The driver of `task` in the allocation's job version, if the task exists.
fn task_driver(st: &AppState, a: &Allocation, task: &str) -> Result<Option<String>, ApiError> {
    Ok(st
        .server
        .job_versions(&a.namespace, &a.job_id)?
        .iter()
        .find(|j| j.version == a.job_version)
        .and_then(|j| j.group(&a.task_group))
        .and_then(|g| g.task(task))
        .map(|t| t.driver.clone()))
}

async fn status_leader(State(st): St) -> ApiResult {
    ok(&st, json!(st.agent.advertise_rpc))
}

async fn status_peers(State(st): St) -> ApiResult {
    ok(&st, json!([st.agent.advertise_rpc]))
}

async fn agent_self(State(st): St) -> ApiResult {
    ok(&st, agent_self_json(&st.agent))
}

/// `/v1/agent/self` in Nomad's shape (the CLI reads `stats.client.node_id`, `config.Server`).
pub(crate) fn agent_self_json(a: &AgentInfo) -> Value {
    let (addr, port) = a.member_addr();
    json!({
        "config": {
            "Region": a.region,
            "Datacenter": a.datacenter,
            "NodeName": a.name,
            "BindAddr": a.bind_addr,
            "AdvertiseAddrs": {"HTTP": a.advertise_http, "RPC": a.advertise_rpc, "Serf": a.advertise_serf},
            "Ports": {"HTTP": a.http_port, "RPC": a.rpc_port},
            "Server": {"Enabled": a.server},
            "Client": {"Enabled": a.client},
            "Version": {"Version": env!("CARGO_PKG_VERSION"), "VersionMetadata": "drover"},
        },
        "member": {
            "Name": format!("{}.{}", a.name, a.region),
            "Addr": addr,
            "Port": port,
            "Status": "alive",
            "Tags": {"role": if a.server { "nomad" } else { "client" }, "region": a.region, "dc": a.datacenter, "build": env!("CARGO_PKG_VERSION")},
        },
        "stats": {
            "client": {"node_id": a.node_id.clone().unwrap_or_default()},
            "nomad": {"server": a.server.to_string(), "leader": a.server.to_string()},
        },
    })
}

/// `GET /v1/agent/members`: the servers, as Nomad's gossip pool lists them. drover runs one
/// server and no gossip, so the one member is this agent; `Port` is its RPC port.
async fn agent_members(State(st): St) -> ApiResult {
    let a = &st.agent;
    if !a.server {
        return Err(ApiError::BadRequest(
            "this agent runs no server; ask a server agent for its members".into(),
        ));
    }
    let (addr, port) = a.member_addr();
    ok(
        &st,
        json!({
            "ServerName": a.name,
            "ServerRegion": a.region,
            "ServerDC": a.datacenter,
            "Members": [{
                "Name": format!("{}.{}", a.name, a.region),
                "Addr": addr,
                "Port": port,
                "Status": "alive",
                "Tags": {
                    "role": "nomad",
                    "region": a.region,
                    "dc": a.datacenter,
                    "build": env!("CARGO_PKG_VERSION"),
                    "port": a.rpc_port.to_string(),
                    "bootstrap": "1",
                    "expect": "1",
                    "raft_vsn": "3",
                    "vsn": "1",
                },
                "ProtocolMin": 1,
                "ProtocolMax": 5,
                "ProtocolCur": 2,
                "DelegateMin": 2,
                "DelegateMax": 5,
                "DelegateCur": 4,
            }],
        }),
    )
}

async fn agent_health(State(st): St) -> ApiResult {
    ok(
        &st,
        json!({"server": {"ok": st.agent.server, "message": "ok"}, "client": {"ok": st.agent.client, "message": "ok"}}),
    )
}

async fn manifests_status(State(st): St) -> ApiResult {
    let m = st
        .manifests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let files: Vec<Value> = m
        .files
        .iter()
        .map(|(p, f)| {
            json!({
                "Path": p.display().to_string(),
                "JobID": f.job_id,
                "Status": if f.errors.is_empty() { "ok" } else { "error" },
                "Errors": f.errors.iter().map(|d| json!({"Line": d.pos.line, "Column": d.pos.col, "Field": d.field, "Message": d.message})).collect::<Vec<_>>(),
                "Warnings": f.warnings.iter().map(|d| json!({"Line": d.pos.line, "Column": d.pos.col, "Field": d.field, "Message": d.message})).collect::<Vec<_>>(),
            })
        })
        .collect();
    ok(
        &st,
        json!({
            "Dir": m.dir.map(|d| d.display().to_string()),
            "Held": m.held,
            "Error": m.error,
            "LastSuccessfulSync": m.last_successful_sync,
            "Files": files,
        }),
    )
}
