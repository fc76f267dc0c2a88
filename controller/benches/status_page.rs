//! The status page's cost: `GET /ui` through the agent's router (SQLite in memory) with 1,000
//! and 10,000 jobs, each with one running allocation whose task has a few events (reported by
//! the node, as a client update records them), 20 broken job files and one node; and one
//! job's page, `GET /ui/job/:id`, at 10,000 jobs. Prints the pages' sizes; criterion times the
//! requests (every open tab makes one every 5 s).
//!
//! `cargo bench -p drover-controller --bench status_page`

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use drover::api::{AgentInfo, AppState, router};
use drover::jobspec::{Diagnostic, Pos};
use drover::manifests::{FileStatus, ManifestsStatus};
use drover::server::{Server, ServerConfig};
use drover::state::{JobSource, PlanWrite, Store};
use drover::structs::mock;
use drover_runtime::spec::{AllocUpdate, ClientStatus, TaskEvent, TaskState, TaskStateKind};
use tower::ServiceExt;

fn agent(jobs: usize) -> Router {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let node = store.upsert_node(mock::node()).expect("node");
    let server =
        Server::with_store(store.clone(), ServerConfig::new("/nonexistent")).expect("server");
    let mut manifests = ManifestsStatus {
        dir: Some(PathBuf::from("/srv/jobs")),
        ..Default::default()
    };
    for i in 0..jobs {
        let mut job = mock::job();
        job.id = format!("job-{i:05}");
        job.name = job.id.clone();
        let path = PathBuf::from(format!("/srv/jobs/{}.nomad", job.id));
        server
            .register_job(job.clone(), JobSource::File(path.clone()))
            .expect("registered");
        let mut a = mock::alloc(&job, 0);
        a.id = mock::id(0xa, i as u64);
        a.node_id = node.id.clone();
        let event = |t: &str, n: i64| TaskEvent {
            event_type: t.into(),
            time: 1_700_000_000_000_000_000 + n,
            message: format!("{t} by client"),
            exit_code: None,
            signal: None,
            oom_killed: false,
        };
        a.task_states.insert(
            "web".into(),
            TaskState {
                state: TaskStateKind::Running,
                events: vec![
                    event("Received", i as i64),
                    event("Task Setup", i as i64 + 1),
                    event("Started", i as i64 + 2),
                ],
                ..Default::default()
            },
        );
        let update = AllocUpdate {
            id: a.id.clone(),
            client_status: ClientStatus::Running,
            client_description: String::new(),
            task_states: a.task_states.clone(),
            checks: vec![],
            driver_networks: Default::default(),
        };
        store
            .commit_plan(
                &job.id,
                PlanWrite {
                    allocs: vec![a],
                    evals: vec![],
                    guard: None,
                },
            )
            .expect("alloc written");
        store
            .update_allocs_from_client(&node.id, &[update], 1_700_000_000_000_000_000)
            .expect("client update");
        manifests.files.insert(
            path,
            FileStatus {
                job_id: Some(job.id.clone()),
                ..Default::default()
            },
        );
    }
    for i in 0..20 {
        manifests.files.insert(
            PathBuf::from(format!("/srv/jobs/broken-{i}.nomad")),
            FileStatus {
                errors: vec![Diagnostic::error(
                    Pos::new(3, 13),
                    "job \"broken\" > group \"g\" > count",
                    "expected a number, found string \"two\"",
                )],
                ..Default::default()
            },
        );
    }
    router(Arc::new(AppState {
        server,
        manifests: Arc::new(Mutex::new(manifests)),
        agent: AgentInfo {
            name: "bench".into(),
            region: "global".into(),
            datacenter: "dc1".into(),
            bind_addr: "127.0.0.1".into(),
            advertise_http: "127.0.0.1:4646".into(),
            advertise_rpc: "127.0.0.1:4647".into(),
            advertise_serf: "127.0.0.1:4648".into(),
            http_port: 4646,
            rpc_port: 4647,
            server: true,
            client: false,
            node_id: None,
        },
        logs: None,
        api_token: None,
    }))
}

async fn get_ui(app: &Router) -> usize {
    get(app, "/ui").await
}

async fn get(app: &Router, uri: &str) -> usize {
    let req = Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    assert!(resp.status().is_success(), "{}", resp.status());
    axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .expect("body")
        .len()
}

fn status_page(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("status page");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for jobs in [1_000, 10_000] {
        let app = agent(jobs);
        let bytes = rt.block_on(get_ui(&app));
        println!(
            "GET /ui with {jobs} jobs: {bytes} bytes ({} KiB)",
            bytes / 1024
        );
        group.bench_function(format!("GET /ui, {jobs} jobs"), |b| {
            b.iter(|| rt.block_on(get_ui(&app)))
        });
        if jobs == 10_000 {
            let one = "/ui/job/job-04321";
            let bytes = rt.block_on(get(&app, one));
            println!("GET {one} with {jobs} jobs: {bytes} bytes");
            group.bench_function(format!("GET /ui/job/:id, {jobs} jobs"), |b| {
                b.iter(|| rt.block_on(get(&app, one)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, status_page);
criterion_main!(benches);
