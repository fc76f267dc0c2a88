//! `/metrics` with 10,000 jobs: the response time and size of one scrape, through the real
//! router, against a store holding 10,000 jobs with one running allocation each on one node
//! (and 10,000 evaluations waiting in the broker). Printed as figures, not pass/fail.
//!
//! `cargo bench -p drover-controller --bench metrics`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use drover::api::{self, AgentInfo, AppState};
use drover::manifests::ManifestsStatus;
use drover::server::{Server, ServerConfig};
use drover::state::{JobSource, PlanWrite, Store};
use drover::structs::ClientStatus;
use drover::structs::mock::{self, MockAlloc, MockJob};
use tower::ServiceExt;

const JOBS: usize = 10_000;
const SCRAPES: usize = 50;

fn setup(dir: &std::path::Path) -> Arc<AppState> {
    let store = Arc::new(Store::open(&dir.join("state.db")).expect("open the store"));
    let node = store.upsert_node(mock::node()).expect("node");
    let t = Instant::now();
    for i in 0..JOBS {
        let job = mock::job().with(|j| {
            j.id = format!("job-{i}");
            j.name = j.id.clone();
        });
        store
            .register_job(job.clone(), &JobSource::Api, 0)
            .expect("register");
        let alloc = mock::alloc(&job, 0)
            .id(&format!("alloc-{i:08}"))
            .node(&node.id)
            .client_status(ClientStatus::Running);
        store
            .commit_plan(
                &job.id,
                PlanWrite {
                    allocs: vec![alloc],
                    evals: vec![],
                    guard: None,
                },
            )
            .expect("place");
    }
    eprintln!("setup: {JOBS} jobs and allocations in {:?}", t.elapsed());
    let server = Server::with_store(store, ServerConfig::new(dir)).expect("server");
    let mut manifests = ManifestsStatus {
        dir: Some(dir.to_path_buf()),
        ..Default::default()
    };
    for i in 0..JOBS {
        manifests
            .files
            .insert(dir.join(format!("job-{i}.nomad")), Default::default());
    }
    Arc::new(AppState {
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
    })
}

async fn scrape(state: &Arc<AppState>, path: &str) -> (Duration, usize) {
    let t = Instant::now();
    let resp = api::router(state.clone())
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("the router answers");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (t.elapsed(), body.len())
}

async fn figures(state: &Arc<AppState>, what: &str, path: &str) {
    scrape(state, path).await; // warm the statement cache
    let mut times = Vec::with_capacity(SCRAPES);
    let mut size = 0;
    for _ in 0..SCRAPES {
        let (t, n) = scrape(state, path).await;
        times.push(t);
        size = n;
    }
    times.sort();
    println!(
        "{what}: {path} with {JOBS} jobs: median {:.2} ms, p90 {:.2} ms, max {:.2} ms over {SCRAPES} scrapes; {size} bytes",
        times[SCRAPES / 2].as_secs_f64() * 1e3,
        times[SCRAPES * 9 / 10].as_secs_f64() * 1e3,
        times[SCRAPES - 1].as_secs_f64() * 1e3,
    );
}

fn main() {
    // `cargo bench` passes --bench; any other argument is a filter this bench has no use for.
    let dir = tempfile::tempdir().expect("tempdir");
    let state = setup(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // What a scrape spends reading the store's job summary (the per-group series).
        let mut reads: Vec<Duration> = (0..SCRAPES)
            .map(|_| {
                let t = Instant::now();
                let jobs = state.server.store().job_summaries().expect("summaries");
                assert_eq!(jobs.len(), JOBS);
                t.elapsed()
            })
            .collect();
        reads.sort();
        println!(
            "of which the job summary read: median {:.2} ms",
            reads[SCRAPES / 2].as_secs_f64() * 1e3
        );
        figures(&state, "no restarts", "/metrics").await;
        figures(&state, "no restarts", "/v1/metrics").await;
        // The worst case for size: every job's task restarted once, one series each.
        for i in 0..JOBS {
            state
                .server
                .metrics()
                .task_restarted(&format!("job-{i}"), "web", "error");
        }
        figures(&state, "a restart series per job", "/metrics").await;
    });
}
