//! The API against a real server (in-memory store, no client), request by request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::server::ServerConfig;
use crate::state::Store;

fn app() -> (Router, Arc<Server>) {
    app_with_token(None)
}

fn app_with_token(api_token: Option<&str>) -> (Router, Arc<Server>) {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let server = Server::with_store(store, ServerConfig::new("/nonexistent")).expect("server");
    let state = Arc::new(AppState {
        server: server.clone(),
        manifests: Arc::new(Mutex::new(ManifestsStatus::default())),
        agent: AgentInfo {
            name: "test".into(),
            region: "global".into(),
            datacenter: "dc1".into(),
            // Bound to every address, advertising one (Nomad's `advertise`): what others are
            // told is the advertised address.
            bind_addr: "0.0.0.0".into(),
            advertise_http: "10.1.2.3:4646".into(),
            advertise_rpc: "10.1.2.3:4647".into(),
            advertise_serf: "10.1.2.3:4648".into(),
            http_port: 4646,
            rpc_port: 4647,
            server: true,
            client: false,
            node_id: None,
        },
        logs: None,
        api_token: api_token.map(str::to_string),
    });
    (router(state), server)
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn whoami_json() -> Value {
    let src = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/seed/whoami.nomad"
    ))
    .expect("seed");
    let parsed =
        jobspec::parse(Path::new("whoami.nomad"), &src, &ParseOptions::default()).expect("parses");
    jobspec::to_api_json(&parsed.job)
}

#[tokio::test]
async fn register_list_read_and_stop_a_job() {
    let (app, _server) = app();
    let (s, body) = call(&app, "POST", "/v1/jobs", Some(whoami_json())).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert!(v["EvalID"].as_str().is_some_and(|e| !e.is_empty()));

    let (s, body) = call(&app, "GET", "/v1/jobs", None).await;
    assert_eq!(s, StatusCode::OK);
    let list: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(list[0]["ID"], "whoami");
    assert_eq!(list[0]["Type"], "service");
    assert!(
        list[0]["JobSummary"]["Summary"]["web"].is_object(),
        "{list}"
    );

    let (s, body) = call(&app, "GET", "/v1/job/whoami", None).await;
    assert_eq!(s, StatusCode::OK);
    let job: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["image"],
        "docker4dotnet/whoami"
    );
    assert_eq!(job["DroverSource"], "api");

    // Same body again: no new version.
    call(&app, "PUT", "/v1/job/whoami", Some(whoami_json())).await;
    let (_, body) = call(&app, "GET", "/v1/job/whoami/versions", None).await;
    let versions: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        versions["Versions"].as_array().map(Vec::len),
        Some(1),
        "{versions}"
    );

    let (s, body) = call(&app, "DELETE", "/v1/job/whoami?purge=False", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, body) = call(&app, "GET", "/v1/job/whoami", None).await;
    let job: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(job["Stop"], true);
    assert_eq!(job["Status"], "dead");
}

#[tokio::test]
async fn parse_output_registers_unchanged() {
    let (app, _server) = app();
    let hcl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/seed/whoami.nomad"
    ))
    .expect("seed");
    let (s, body) = call(
        &app,
        "POST",
        "/v1/jobs/parse",
        Some(json!({"JobHCL": hcl, "Canonicalize": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let job: Value = serde_json::from_str(&body).expect("json");
    let (s, body) = call(&app, "POST", "/v1/job/whoami", Some(json!({"Job": job}))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn bad_requests_get_nomad_status_codes_never_500() {
    let (app, _server) = app();
    for (method, uri, body, want) in [
        ("GET", "/v1/job/nope", None, StatusCode::NOT_FOUND),
        ("GET", "/v1/allocation/nope", None, StatusCode::NOT_FOUND),
        ("GET", "/v1/node/nope", None, StatusCode::NOT_FOUND),
        ("GET", "/v1/evaluation/nope", None, StatusCode::NOT_FOUND),
        ("DELETE", "/v1/job/nope", None, StatusCode::NOT_FOUND),
        (
            "POST",
            "/v1/jobs",
            Some(
                json!({"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "docker"}]}]}}),
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/jobs",
            Some(json!("not a job")),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/jobs/parse",
            Some(json!({"JobHCL": "job \"x\" {"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/job/other",
            Some(whoami_json()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "DELETE",
            "/v1/job/nope?purge=maybe",
            None,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (s, text) = call(&app, method, uri, body).await;
        assert_eq!(s, want, "{method} {uri}: {text}");
        assert!(!text.is_empty(), "{method} {uri}: an error says why");
    }
    let (_, text) = call(&app, "POST", "/v1/jobs", Some(json!({"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "docker"}]}]}}))).await;
    assert!(text.contains("image is required"), "{text}");
}

#[tokio::test]
async fn a_job_from_a_file_cannot_be_changed_or_stopped_through_the_api() {
    let (app, server) = app();
    let src = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/seed/whoami.nomad"
    ))
    .expect("seed");
    let parsed =
        jobspec::parse(Path::new("whoami.nomad"), &src, &ParseOptions::default()).expect("parses");
    server
        .register_job(
            parsed.job,
            JobSource::File("/srv/manifests/whoami.nomad".into()),
        )
        .expect("registered");
    let (s, text) = call(&app, "DELETE", "/v1/job/whoami", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("/srv/manifests/whoami.nomad"), "{text}");
    let (s, text) = call(&app, "POST", "/v1/jobs", Some(whoami_json())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("/srv/manifests/whoami.nomad"), "{text}");
}

#[tokio::test]
async fn leader_is_a_quoted_string_and_unknown_params_are_tolerated() {
    let (app, _server) = app();
    let (s, body) = call(
        &app,
        "GET",
        "/v1/status/leader?region=global&namespace=default&stale=true",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, "\"10.1.2.3:4647\"", "the advertised RPC address");
    let (s, body) = call(&app, "GET", "/v1/agent/self", None).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["config"]["Datacenter"], "dc1");
    assert_eq!(v["config"]["AdvertiseAddrs"]["HTTP"], "10.1.2.3:4646");
    assert_eq!(v["member"]["Addr"], "10.1.2.3");
    let (s, _) = call(&app, "GET", "/v1/jobs?namespace=*&foo=bar", None).await;
    assert_eq!(s, StatusCode::OK);
    let _unused: HashMap<String, String> = HashMap::new();
}

#[tokio::test]
async fn plan_a_job_without_writing_anything() {
    let (app, server) = app();
    let job = whoami_json()["Job"].clone();
    let before = (server.store().index(), server.evals().expect("evals").len());
    let (s, body) = call(
        &app,
        "PUT",
        "/v1/job/whoami/plan",
        Some(json!({"Job": job, "Diff": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["Diff"]["Type"], "Added");
    assert_eq!(v["Diff"]["ID"], "whoami");
    assert_eq!(v["Diff"]["TaskGroups"][0]["Updates"]["create"], 1);
    assert_eq!(v["Annotations"]["DesiredTGUpdates"]["web"]["Place"], 1);
    assert_eq!(v["JobModifyIndex"], 0);
    // No node: placement is not claimed to fail, it is not checked.
    assert!(v["FailedTGAllocs"].is_null());
    assert_eq!(v["PlacementChecked"], false);
    assert_eq!(
        (server.store().index(), server.evals().expect("evals").len()),
        before,
        "a plan writes no job, evaluation or index"
    );
    assert!(server.jobs().expect("jobs").is_empty());

    // Without Diff, Nomad leaves the diff out.
    let (_, body) = call(
        &app,
        "POST",
        "/v1/job/whoami/plan",
        Some(json!({"Job": job})),
    )
    .await;
    let v: Value = serde_json::from_str(&body).expect("json");
    assert!(v["Diff"].is_null(), "{v}");
}

#[tokio::test]
async fn plan_an_edit_and_a_removal_of_a_running_job() {
    let (app, server) = app();
    server
        .store()
        .upsert_node(crate::structs::mock::node())
        .expect("node");
    let (s, body) = call(&app, "POST", "/v1/jobs", Some(whoami_json())).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    for eval in server
        .store()
        .evals_by_status(crate::structs::EvalStatus::Pending)
        .expect("pending")
    {
        crate::worker::process(server.store(), &eval).expect("process");
    }
    let modify = server
        .job("default", "whoami")
        .expect("job")
        .expect("registered")
        .modify_index;
    let index = server.store().index();

    let mut job = whoami_json()["Job"].clone();
    job["TaskGroups"][0]["Tasks"][0]["Env"] = json!({"GREETING": "hi"});
    let (s, body) = call(
        &app,
        "PUT",
        "/v1/job/whoami/plan",
        Some(json!({"Job": job, "Diff": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["JobModifyIndex"], modify);
    assert_eq!(v["Diff"]["Type"], "Edited");
    let task = &v["Diff"]["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["Annotations"][0], "forces create/destroy update");
    assert_eq!(task["Fields"][0]["Name"], "Env[GREETING]");
    assert_eq!(task["Fields"][0]["Type"], "Added");
    assert_eq!(
        v["Annotations"]["DesiredTGUpdates"]["web"]["DestructiveUpdate"],
        1
    );

    // What the CLI sends for a job whose file is gone: the job as the agent holds it, stopped.
    let (_, body) = call(&app, "GET", "/v1/job/whoami", None).await;
    let mut current: Value = serde_json::from_str(&body).expect("json");
    current["Stop"] = json!(true);
    let (s, body) = call(
        &app,
        "PUT",
        "/v1/job/whoami/plan",
        Some(json!({"Job": current, "Diff": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["Diff"]["Type"], "Deleted");
    assert_eq!(v["Annotations"]["DesiredTGUpdates"]["web"]["Stop"], 1);
    assert_eq!(server.store().index(), index, "planning wrote nothing");
    assert!(
        !server
            .job("default", "whoami")
            .expect("job")
            .expect("job")
            .job
            .stop
    );
}

#[tokio::test]
async fn plan_rejects_bad_requests_with_400() {
    let (app, _server) = app();
    let job = whoami_json()["Job"].clone();
    let (s, body) = call(&app, "PUT", "/v1/job/other/plan", Some(json!({"Job": job}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("does not match the URL"), "{body}");
    let (s, body) = call(
        &app,
        "PUT",
        "/v1/job/whoami/plan",
        Some(json!({"Diff": true})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("no Job"), "{body}");
    let mut broken = job.clone();
    broken["TaskGroups"][0]["Count"] = json!("many");
    let (s, body) = call(
        &app,
        "PUT",
        "/v1/job/whoami/plan",
        Some(json!({"Job": broken})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
}

async fn call_with(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn two_nodes(server: &Server) {
    use crate::structs::mock::{self, MockNode};
    let a = mock::node().id("5a1b0000-0000-4000-8000-000000000001");
    let b = mock::node().id("5a1c0000-0000-4000-8000-000000000002");
    server.store().upsert_node(a).expect("node a");
    server.store().upsert_node(b).expect("node b");
}

#[tokio::test]
async fn node_eligibility_by_id_or_prefix() {
    let (app, server) = app();
    two_nodes(&server);
    let id = "5a1b0000-0000-4000-8000-000000000001";
    let (s, body) = call(
        &app,
        "POST",
        "/v1/node/5a1b/eligibility",
        Some(json!({"NodeID": id, "Eligibility": "ineligible"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert!(v["NodeModifyIndex"].as_u64().is_some_and(|i| i > 0), "{v}");
    assert_eq!(v["EvalIDs"], json!([]), "becoming ineligible moves nothing");
    let node = server.node(id).expect("read").expect("node");
    assert!(!node.schedulable());

    let (s, body) = call(&app, "GET", "/v1/nodes", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains("\"SchedulingEligibility\":\"ineligible\""),
        "{body}"
    );

    let (s, body) = call(
        &app,
        "POST",
        &format!("/v1/node/{id}/eligibility"),
        Some(json!({"Eligibility": "eligible"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(server.node(id).expect("read").expect("node").schedulable());

    for (uri, body, want) in [
        (
            "/v1/node/5a1b/eligibility",
            json!({"Eligibility": "maybe"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/node/5a1b/eligibility",
            json!({}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/node/5a1/eligibility",
            json!({"Eligibility": "eligible"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/node/ffff/eligibility",
            json!({"Eligibility": "eligible"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (s, text) = call(&app, "POST", uri, Some(body.clone())).await;
        assert_eq!(s, want, "{uri} {body}: {text}");
    }
}

#[tokio::test]
async fn node_drain_sets_and_cancels_a_strategy() {
    let (app, server) = app();
    two_nodes(&server);
    let id = "5a1c0000-0000-4000-8000-000000000002";
    let (s, body) = call(
        &app,
        "POST",
        &format!("/v1/node/{id}/drain"),
        Some(json!({"NodeID": id, "DrainSpec": {"Deadline": 3_600_000_000_000i64, "IgnoreSystemJobs": true}, "MarkEligible": false})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = call(&app, "GET", &format!("/v1/node/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    let n: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(n["Drain"], true);
    assert_eq!(n["SchedulingEligibility"], "ineligible");
    assert_eq!(n["DrainStrategy"]["Deadline"], 3_600_000_000_000i64);
    assert_eq!(n["DrainStrategy"]["IgnoreSystemJobs"], true);
    assert!(
        n["DrainStrategy"]["ForceDeadline"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && !t.starts_with("0001")),
        "{n}"
    );
    assert_eq!(n["LastDrain"]["Status"], "draining");

    // A draining node cannot be made eligible: the drain must end first.
    let (s, text) = call(
        &app,
        "POST",
        &format!("/v1/node/{id}/eligibility"),
        Some(json!({"Eligibility": "eligible"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(text.contains("while it is draining"), "{text}");

    let (s, body) = call(
        &app,
        "POST",
        &format!("/v1/node/{id}/drain"),
        Some(json!({"DrainSpec": null, "MarkEligible": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, body) = call(&app, "GET", &format!("/v1/node/{id}"), None).await;
    let n: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(n["Drain"], false);
    assert!(n["DrainStrategy"].is_null());
    assert_eq!(n["SchedulingEligibility"], "eligible");
    assert_eq!(n["LastDrain"]["Status"], "canceled");

    let (s, text) = call(
        &app,
        "POST",
        &format!("/v1/node/{id}/drain"),
        Some(json!({"DrainSpec": {"Deadline": "1h"}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(text.contains("Deadline"), "{text}");
}

#[tokio::test]
async fn agent_members_lists_this_server() {
    let (app, _server) = app();
    let (s, body) = call(&app, "GET", "/v1/agent/members", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["ServerName"], "test");
    let m = &v["Members"][0];
    assert_eq!(m["Name"], "test.global");
    assert_eq!(m["Status"], "alive");
    assert_eq!(m["Tags"]["role"], "nomad");
    assert_eq!(m["Tags"]["port"], "4647");
    assert_eq!(m["Addr"], "10.1.2.3", "advertised, not 0.0.0.0");
    let (_, leader) = call(&app, "GET", "/v1/status/leader", None).await;
    assert_eq!(
        leader,
        format!("\"{}:{}\"", m["Addr"].as_str().unwrap_or(""), "4647")
    );
}

#[tokio::test]
async fn writes_need_the_token_when_one_is_configured() {
    let (secured, server) = app_with_token(Some("s3cret"));
    two_nodes(&server);
    let job = whoami_json();
    for headers in [
        &[][..],
        &[("X-Nomad-Token", "wrong")][..],
        &[("X-Nomad-Token", "s3cre")][..],
        &[("Authorization", "Bearer nope")][..],
    ] {
        let (s, text) = call_with(&secured, "POST", "/v1/jobs", headers, Some(job.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(text, "Permission denied");
    }
    let (s, _) = call_with(
        &secured,
        "POST",
        "/v1/node/5a1b/eligibility",
        &[],
        Some(json!({"Eligibility": "ineligible"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "node operations are writes too");
    let (s, _) = call_with(&secured, "DELETE", "/v1/job/whoami", &[], None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        server.jobs().expect("jobs").is_empty(),
        "nothing was written"
    );

    // Reads stay open.
    let (s, _) = call(&secured, "GET", "/v1/jobs", None).await;
    assert_eq!(s, StatusCode::OK);

    let (s, body) = call_with(
        &secured,
        "POST",
        "/v1/jobs",
        &[("X-Nomad-Token", "s3cret")],
        Some(job.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = call_with(
        &secured,
        "DELETE",
        "/v1/job/whoami",
        &[("Authorization", "Bearer s3cret")],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // Without a token configured (a loopback API), writes need none.
    let (open, _) = app();
    let (s, body) = call(&open, "POST", "/v1/jobs", Some(job)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[test]
fn tokens_compare_whole() {
    assert!(same_token(b"abc", b"abc"));
    assert!(!same_token(b"abc", b"abd"));
    assert!(!same_token(b"abc", b"abcd"));
    assert!(!same_token(b"", b"a"));
}

/// The RPC port mounts the API for forwarding client agents behind the join token; the join
/// token lets a request in, and a write still needs the API token there.
#[tokio::test]
async fn writes_through_the_rpc_port_need_the_api_token_too() {
    use drover_runtime::client::remote::JOIN_TOKEN_HEADER;
    let (api, server) = app_with_token(Some("s3cret"));
    two_nodes(&server);
    let rpc_state = Arc::new(rpc::RpcState {
        local: server.local(),
        join_token: Some("j0in".into()),
    });
    let port = rpc::router(rpc_state, api);
    let job = whoami_json();

    let (s, _) = call_with(&port, "POST", "/v1/jobs", &[], Some(job.clone())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "no join token");
    let (s, text) = call_with(
        &port,
        "POST",
        "/v1/jobs",
        &[(JOIN_TOKEN_HEADER, "j0in")],
        Some(job.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "join token without the API token");
    assert_eq!(text, "Permission denied");
    assert!(server.jobs().expect("jobs").is_empty(), "nothing written");

    let (s, _) = call_with(
        &port,
        "GET",
        "/v1/jobs",
        &[(JOIN_TOKEN_HEADER, "j0in")],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "reads need the join token only");
    let (s, body) = call_with(
        &port,
        "POST",
        "/v1/jobs",
        &[(JOIN_TOKEN_HEADER, "j0in"), ("X-Nomad-Token", "s3cret")],
        Some(job),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}
