//! Server tests: the dev-agent path through `LocalServer` (register, blocking query, updates,
//! alloc-failure), missed heartbeats with paused time, and a restart resuming pending work.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use drover_runtime::client::{ApiError, ServerApi};
use drover_runtime::spec::AllocUpdate;

use super::*;
use crate::state::JobSource;
use crate::structs::mock::{self, MockJob};
use crate::structs::{ClientStatus, DesiredStatus, EvalStatus, NodeStatus};

fn server() -> Arc<Server> {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    Server::with_store(store, ServerConfig::new("/nonexistent")).expect("server")
}

fn whoami(count: u32) -> Job {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/seed/whoami.nomad");
    crate::jobspec::parse_file(&path, &Default::default())
        .expect("seed parses")
        .job
        .count(count)
}

/// Runs every due evaluation through the worker, as the worker pool would.
fn drain(server: &Server) {
    for eval in server
        .store()
        .evals_by_status(EvalStatus::Pending)
        .expect("pending")
    {
        if eval.wait_until.is_none() {
            crate::worker::process(server.store(), &eval).expect("process");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_agent_path_places_serves_and_reports() {
    let server = server();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.clone().run(async move {
        let _ = stop_rx.await;
    }));
    let local = server.local();
    let reg = local
        .register_node(mock::node_info())
        .await
        .expect("register node");
    assert_eq!(reg.heartbeat_ttl, MIN_HEARTBEAT_TTL);
    assert_eq!(
        local.heartbeat("node-1").await.expect("heartbeat"),
        MIN_HEARTBEAT_TTL
    );

    let source = JobSource::File(PathBuf::from("/manifests/whoami.nomad"));
    server
        .register_job(whoami(1), source)
        .expect("register job");

    // The blocking query returns once the workers placed the allocation.
    let mut index = 0;
    let mut specs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while specs.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "nothing placed");
        let (i, s) = local
            .node_allocations("node-1", index, Duration::from_secs(1))
            .await
            .expect("query");
        index = i;
        specs = s;
    }
    let spec = &specs[0];
    assert_eq!(spec.name, "whoami.web[0]");
    assert_eq!(spec.desired_status, DesiredStatus::Run);
    assert_eq!(spec.tasks[0].name, "api");
    assert_eq!(spec.networks[0].reserved_ports[0].value, 8080);
    assert_eq!(spec.job_type, "service");

    local
        .update_allocations(
            "node-1",
            vec![AllocUpdate {
                id: spec.id.clone(),
                client_status: ClientStatus::Running,
                client_description: "Tasks are running".into(),
                task_states: Default::default(),
                checks: vec![],
                driver_networks: Default::default(),
            }],
        )
        .await
        .expect("update");
    let alloc = server.alloc(&spec.id).expect("read").expect("exists");
    assert_eq!(alloc.client_status, ClientStatus::Running);

    local
        .update_allocations(
            "node-1",
            vec![AllocUpdate {
                id: spec.id.clone(),
                client_status: ClientStatus::Failed,
                client_description: "Failed tasks".into(),
                task_states: Default::default(),
                checks: vec![],
                driver_networks: Default::default(),
            }],
        )
        .await
        .expect("update");
    let evals = server.evals_by_job("default", "whoami").expect("evals");
    assert!(
        evals
            .iter()
            .any(|e| e.triggered_by == EvalTrigger::RetryFailedAlloc)
    );

    assert!(matches!(
        local.heartbeat("nope").await,
        Err(ApiError::UnknownNode { .. })
    ));
    stop_tx.send(()).expect("stop");
    running.await.expect("server stops");
}

#[tokio::test(start_paused = true)]
async fn a_node_that_misses_its_heartbeat_goes_down_and_its_allocs_are_lost() {
    let server = server();
    let local = server.local();
    local
        .register_node(mock::node_info())
        .await
        .expect("register");
    server
        .register_job(mock::job(), JobSource::Api)
        .expect("register job");
    drain(&server);
    assert_eq!(server.allocs_by_node("node-1").expect("allocs").len(), 1);

    tokio::time::advance(Duration::from_secs(19)).await;
    assert!(server.sweep_heartbeats().is_empty(), "within TTL + grace");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(server.sweep_heartbeats(), ["node-1"]);
    let node = server.node("node-1").expect("read").expect("exists");
    assert_eq!(node.status, NodeStatus::Down);
    let alloc = &server.allocs_by_node("node-1").expect("allocs")[0];
    assert_eq!(alloc.client_status, ClientStatus::Lost);
    let evals = server.evals_by_job("default", "example").expect("evals");
    assert!(evals.iter().any(
        |e| e.triggered_by == EvalTrigger::NodeUpdate && e.node_id.as_deref() == Some("node-1")
    ));

    // Nowhere to go: the eval records the failure. The node coming back makes it ready again.
    drain(&server);
    local.heartbeat("node-1").await.expect("heartbeat");
    assert_eq!(
        server.node("node-1").expect("read").expect("exists").status,
        NodeStatus::Ready
    );
    drain(&server);
    let live: Vec<_> = server
        .allocs_by_job("default", "example")
        .expect("allocs")
        .into_iter()
        .filter(|a| !a.terminal())
        .collect();
    assert_eq!(live.len(), 1, "replaced once the node is back");
}

#[tokio::test(start_paused = true)]
async fn the_blocking_query_waits_for_a_change_then_times_out_with_the_current_state() {
    let server = server();
    let local = server.local();
    local
        .register_node(mock::node_info())
        .await
        .expect("register");
    let (index, specs) = local
        .node_allocations("node-1", 0, Duration::from_secs(5))
        .await
        .expect("first query returns at once");
    assert!(specs.is_empty());
    let waited = tokio::time::timeout(
        Duration::from_secs(6),
        local.node_allocations("node-1", index.max(1), Duration::from_secs(5)),
    )
    .await
    .expect("returns after wait")
    .expect("query");
    assert!(waited.1.is_empty());

    let query = {
        let local = local.clone();
        tokio::spawn(async move {
            local
                .node_allocations("node-1", index.max(1), Duration::from_secs(300))
                .await
        })
    };
    tokio::task::yield_now().await;
    server
        .register_job(mock::job(), JobSource::Api)
        .expect("register");
    drain(&server);
    let (_, specs) = query.await.expect("joined").expect("query");
    assert_eq!(specs.len(), 1);
}

#[test]
fn a_restart_resumes_pending_evaluations() {
    let dir = tempfile::tempdir().expect("temp");
    let server = Server::open(ServerConfig::new(dir.path())).expect("open");
    server
        .register_job(mock::job(), JobSource::Api)
        .expect("register");
    drop(server);
    let server = Server::open(ServerConfig::new(dir.path())).expect("reopen");
    assert_eq!(server.broker().stats().ready, 1);
}

#[test]
fn count_two_on_one_node_fails_with_nomads_wording() {
    let server = server();
    server.store().upsert_node(mock::node()).expect("node");
    let reg = server
        .register_job(whoami(2), JobSource::Api)
        .expect("register");
    drain(&server);
    let eval = server.eval(&reg.eval.id).expect("read").expect("exists");
    assert_eq!(
        eval.failed_tg_allocs["web"].lines(),
        [
            "Resources exhausted on 1 nodes",
            "Dimension \"network: reserved port collision http=8080\" exhausted on 1 nodes"
        ]
    );
}

#[test]
fn parse_errors_are_recorded_and_cleared() {
    let server = server();
    let path = PathBuf::from("/manifests/bad.nomad");
    let err = crate::jobspec::parse(
        &path,
        b"job \"x\" { group \"g\" { count = \"many\" } }",
        &Default::default(),
    )
    .expect_err("bad count");
    server
        .record_source_error(&path, &err.diagnostics)
        .expect("record");
    let recorded = server.source_errors().expect("list");
    assert!(!recorded.is_empty());
    assert_eq!(recorded[0].path, path);
    assert!(recorded[0].line >= 1);
    server.clear_source_error(&path).expect("clear");
    assert!(server.source_errors().expect("list").is_empty());
}

#[test]
fn the_api_cannot_take_over_a_file_owned_job() {
    let server = server();
    let file = JobSource::File(PathBuf::from("/manifests/example.nomad"));
    server.register_job(mock::job(), file).expect("file");
    let err = server
        .register_job(mock::job().count(3), JobSource::Api)
        .expect_err("owned");
    assert!(
        err.to_string()
            .contains("managed by file /manifests/example.nomad"),
        "{err}"
    );
}

/// A stand-in node: reports every allocation it is told to run as running, and every one it is
/// told to stop as complete, until `done` says the job converged.
async fn fake_client(local: LocalServer, done: impl Fn(&Server) -> bool) {
    let mut index = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done(local.server()) {
        assert!(tokio::time::Instant::now() < deadline, "did not converge");
        let (i, specs) = local
            .node_allocations("node-1", index, Duration::from_millis(100))
            .await
            .expect("query");
        index = i;
        let mut updates = Vec::new();
        for spec in specs {
            let alloc = local
                .server()
                .alloc(&spec.id)
                .expect("read")
                .expect("exists");
            let want = match spec.desired_status {
                DesiredStatus::Run => ClientStatus::Running,
                _ => ClientStatus::Complete,
            };
            if alloc.client_status != want {
                updates.push(AllocUpdate {
                    id: spec.id.clone(),
                    client_status: want,
                    client_description: String::new(),
                    task_states: Default::default(),
                    checks: vec![],
                    driver_networks: Default::default(),
                });
            }
        }
        if !updates.is_empty() {
            local
                .update_allocations("node-1", updates)
                .await
                .expect("update");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destructive_update_rolls_one_at_a_time_through_the_whole_server() {
    let server = server();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.clone().run(async move {
        let _ = stop_rx.await;
    }));
    let local = server.local();
    local
        .register_node(mock::node_info())
        .await
        .expect("register node");
    let job = mock::job().count(3).with(|j| {
        j.task_groups[0].update.min_healthy_time = Duration::from_millis(200);
    });
    server
        .register_job(job.clone(), JobSource::Api)
        .expect("v0");
    let live = |s: &Server, version: u64| {
        s.allocs_by_job("default", "example")
            .expect("allocs")
            .into_iter()
            .filter(|a| {
                !a.terminal()
                    && a.job_version == version
                    && a.client_status == ClientStatus::Running
            })
            .count()
    };
    fake_client(local.clone(), move |s| live(s, 0) == 3).await;

    let v1 = server
        .register_job(job.image("busybox:v2"), JobSource::Api)
        .expect("v1");
    assert_eq!(v1.version, 1);
    fake_client(local.clone(), move |s| live(s, 1) == 3).await;

    let allocs = server.allocs_by_job("default", "example").expect("allocs");
    // Never more than max_parallel (1) new allocation unhealthy at once: the replacements were
    // created one by one, each by its own evaluation.
    let mut new_evals: Vec<&str> = allocs
        .iter()
        .filter(|a| a.job_version == 1)
        .map(|a| a.eval_id.as_str())
        .collect();
    new_evals.sort();
    new_evals.dedup();
    assert_eq!(new_evals.len(), 3, "{allocs:#?}");
    let triggers: Vec<EvalTrigger> = server
        .evals_by_job("default", "example")
        .expect("evals")
        .iter()
        .map(|e| e.triggered_by)
        .collect();
    assert!(
        triggers.contains(&EvalTrigger::RollingUpdate)
            || triggers.contains(&EvalTrigger::DeploymentWatcher)
    );
    stop_tx.send(()).expect("stop");
    running.await.expect("server stops");
}

#[test]
fn plan_job_previews_without_writing() {
    let server = server();
    server.store().upsert_node(mock::node()).expect("node");
    let index = server.store().index();
    let preview = server.plan_job(&mock::job().count(2), false).expect("plan");
    assert!(preview.changed && preview.current.is_none());
    assert_eq!(preview.plan.place.len(), 2);
    assert_eq!(server.store().index(), index, "nothing written");
    assert!(server.jobs().expect("jobs").is_empty());

    server
        .register_job(mock::job().count(2), JobSource::Api)
        .expect("register");
    drain(&server);
    let same = server.plan_job(&mock::job().count(2), false).expect("plan");
    assert!(!same.changed && same.plan.is_noop());
    let update = server
        .plan_job(&mock::job().count(2).image("busybox:v2"), false)
        .expect("plan");
    assert_eq!((update.changed, update.version), (true, 1));
    assert_eq!(update.plan.desired_tg_updates["web"].destructive_update, 1);
}

#[test]
fn draining_a_node_migrates_its_allocations() {
    let server = server();
    server.store().upsert_node(mock::node()).expect("node-1");
    server
        .store()
        .upsert_node(crate::structs::mock::MockNode::id(mock::node(), "node-2"))
        .expect("node-2");
    server
        .register_job(mock::job().count(2), JobSource::Api)
        .expect("register");
    drain(&server);
    let on_1 = |s: &Server| {
        s.allocs_by_node("node-1")
            .expect("allocs")
            .into_iter()
            .filter(|a| !a.terminal())
            .count()
    };
    assert_eq!(on_1(&server), 1, "spread across the two nodes");

    let (node, evals) = server
        .set_node_drain("node-1", Some(DrainStrategy::new(-1, false, now())), false)
        .expect("drain");
    assert!(node.drain && !node.schedulable());
    assert_eq!(evals.len(), 1, "one node-drain evaluation for the one job");
    drain(&server);
    assert_eq!(on_1(&server), 0);
    let on_2 = server
        .allocs_by_node("node-2")
        .expect("allocs")
        .into_iter()
        .filter(|a| !a.terminal())
        .count();
    assert_eq!(on_2, 2);
    let migrated = server
        .allocs_by_node("node-1")
        .expect("allocs")
        .into_iter()
        .find(|a| a.server_terminal())
        .expect("stopped");
    assert_eq!(migrated.desired_description, "alloc is being migrated");

    let (node, _) = server
        .set_node_eligibility("node-1", false)
        .expect("ineligible");
    assert!(node.drain, "eligibility leaves the drain as it is");
    let err = server
        .set_node_eligibility("node-1", true)
        .expect_err("a draining node cannot be made eligible");
    assert!(err.to_string().contains("while it is draining"), "{err}");
    let (node, _) = server
        .set_node_drain("node-1", None, true)
        .expect("undrain");
    assert!(!node.drain && node.schedulable());
    assert_eq!(
        node.last_drain.as_ref().map(|d| d.status.as_str()),
        Some("canceled")
    );
}

#[test]
fn a_drain_completes_when_nothing_is_left_and_its_deadline_forces_the_rest() {
    let server = server();
    server.store().upsert_node(mock::node()).expect("node-1");
    server
        .store()
        .upsert_node(crate::structs::mock::MockNode::id(mock::node(), "node-2"))
        .expect("node-2");
    // Two allocations on node-1 only.
    server
        .store()
        .set_node_eligibility("node-2", crate::structs::SchedulingEligibility::Ineligible)
        .expect("ineligible");
    server
        .register_job(mock::job().count(2), JobSource::Api)
        .expect("register");
    drain(&server);
    server
        .set_node_eligibility("node-2", true)
        .expect("eligible");
    drain(&server);
    let live = |s: &Server, node: &str| {
        s.allocs_by_node(node)
            .expect("allocs")
            .into_iter()
            .filter(|a| !a.server_terminal())
            .count()
    };
    assert_eq!(live(&server, "node-1"), 2);

    // A one-hour deadline: one allocation moves, the other waits for its replacement.
    server
        .set_node_drain(
            "node-1",
            Some(DrainStrategy::new(3_600 * 1_000_000_000, false, now())),
            false,
        )
        .expect("drain");
    drain(&server);
    assert_eq!(live(&server, "node-1"), 1);
    assert!(server.drain_tick().expect("tick").is_empty(), "one is left");

    // The deadline passes: the drainer forces the rest, then the drain completes.
    server
        .store()
        .set_node_drain(
            "node-1",
            Some(DrainStrategy::new(1, false, now() - 10)),
            false,
            now(),
        )
        .expect("past deadline");
    assert!(server.drain_tick().expect("tick").is_empty());
    drain(&server);
    assert_eq!(live(&server, "node-1"), 0);
    assert_eq!(live(&server, "node-2"), 2);
    assert_eq!(server.drain_tick().expect("tick"), ["node-1"]);
    let node = server.node("node-1").expect("read").expect("node");
    assert!(!node.drain && node.drain_strategy.is_none());
    assert!(
        !node.schedulable(),
        "a drained node stays ineligible, as in Nomad"
    );
    assert_eq!(
        node.last_drain.as_ref().map(|d| d.status.as_str()),
        Some("complete")
    );
}

#[test]
fn a_drain_ignoring_system_jobs_completes_with_their_allocations_still_running() {
    let server = server();
    server.store().upsert_node(mock::node()).expect("node");
    let mut system = mock::job();
    system.job_type = JobType::System;
    server
        .register_job(system, JobSource::Api)
        .expect("register system");
    drain(&server);
    let live = || {
        server
            .allocs_by_node("node-1")
            .expect("allocs")
            .into_iter()
            .filter(|a| !a.server_terminal())
            .count()
    };
    assert_eq!(live(), 1);

    // Straight in the store, so no evaluation moves anything: only the drainer's count.
    let hour = 3_600 * 1_000_000_000;
    let set = |ignore: bool| {
        server
            .store()
            .set_node_drain(
                "node-1",
                Some(DrainStrategy::new(hour, ignore, now())),
                false,
                now(),
            )
            .expect("drain");
    };
    set(false);
    assert!(
        server.drain_tick().expect("tick").is_empty(),
        "the system allocation counts unless ignored"
    );
    set(true);
    assert_eq!(server.drain_tick().expect("tick"), ["node-1"]);
    assert_eq!(live(), 1, "the system allocation keeps running");
}

#[test]
fn the_heartbeat_ttl_grows_with_the_cluster_past_fifty_heartbeats_a_second() {
    let server = server();
    server.touch_heartbeat("node-0");
    assert_eq!(server.ttl(), MIN_HEARTBEAT_TTL);
    for i in 1..1000 {
        server.touch_heartbeat(&format!("node-{i}"));
    }
    assert_eq!(server.ttl(), Duration::from_secs(20));
}
