//! Task and alloc runner behaviour against the recording [`MockDriver`], on paused time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::allocrunner::{AllocRunner, AllocRunnerArgs};
use crate::driver::mock::{MockCall, MockDriver, MockExit};
use crate::driver::{Driver, DriverError, Drivers, NodeEnv, TaskHandle};
use crate::spec::{
    AllocSpec, AllocUpdate, ClientStatus, RestartMode, RestartPolicy, Task, TaskStateKind,
};
use crate::testutil;

struct Rig {
    mock: Arc<MockDriver>,
    _dir: tempfile::TempDir,
    updates: mpsc::UnboundedReceiver<AllocUpdate>,
    _shutdown: watch::Sender<bool>,
    runner: AllocRunner,
}

fn mock_task(name: &str) -> Task {
    let mut t = testutil::task_docker(name, "img");
    t.driver = "mock".into();
    t.kill_timeout = Duration::from_secs(3);
    t.kill_signal = Some("SIGINT".into());
    t
}

fn rig_with(alloc: AllocSpec, mock: Arc<MockDriver>, restored: HashMap<String, TaskHandle>) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tx, updates) = mpsc::unbounded_channel();
    let (shutdown_tx, shutdown) = watch::channel(false);
    let mut drivers: Drivers = Drivers::new();
    drivers.insert("mock".into(), mock.clone() as Arc<dyn Driver>);
    let runner = AllocRunner::spawn(AllocRunnerArgs {
        alloc,
        drivers,
        node: Arc::new(NodeEnv {
            node_id: "n1".into(),
            ..NodeEnv::default()
        }),
        data_dir: dir.path().to_path_buf(),
        restored,
        prior: Default::default(),
        updates: tx,
        shutdown,
        jitter_seed: Some(1),
    });
    Rig {
        mock,
        _dir: dir,
        updates,
        _shutdown: shutdown_tx,
        runner,
    }
}

fn rig(alloc: AllocSpec) -> Rig {
    rig_with(alloc, MockDriver::new(), HashMap::new())
}

async fn until(r: &Rig, status: ClientStatus) -> AllocUpdate {
    tokio::time::timeout(
        Duration::from_secs(3600),
        r.runner.wait_for(|u| u.client_status == status),
    )
    .await
    .expect("status reached")
}

fn events(u: &AllocUpdate, task: &str) -> Vec<String> {
    u.task_states[task]
        .events
        .iter()
        .map(|e| e.event_type.clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn starts_and_runs() {
    let r = rig(testutil::alloc("web", "n1", vec![mock_task("web")]));
    let u = until(&r, ClientStatus::Running).await;
    assert_eq!(events(&u, "web"), ["Received", "Task Setup", "Started"]);
    assert_eq!(r.mock.starts("web"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_restored_handle_is_reattached_not_restarted() {
    let alloc = testutil::alloc("web", "n1", vec![mock_task("web")]);
    let mock = MockDriver::new();
    let h = TaskHandle {
        driver: "mock".into(),
        alloc_id: alloc.id.clone(),
        task: "web".into(),
        job_id: "web".into(),
        id: "77".into(),
        started_at: 5,
    };
    mock.leave_running(h.clone());
    let r = rig_with(alloc, mock, HashMap::from([("web".to_string(), h)]));
    let u = until(&r, ClientStatus::Running).await;
    assert_eq!(r.mock.starts("web"), 0, "{:?}", r.mock.calls());
    assert_eq!(u.task_states["web"].restarts, 0);
    // And it is still watched: when it exits, the policy applies.
    assert!(r.mock.finish("web", MockExit::code(1)));
    tokio::time::timeout(Duration::from_secs(60), async {
        while r.mock.starts("web") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("restarted after exit");
}

#[tokio::test(start_paused = true)]
async fn a_vanished_task_is_recreated_at_once_and_not_counted() {
    let r = rig(testutil::alloc("web", "n1", vec![mock_task("web")]));
    until(&r, ClientStatus::Running).await;
    let before = tokio::time::Instant::now();
    assert!(r.mock.finish("web", MockExit::Vanish));
    tokio::time::timeout(Duration::from_secs(60), async {
        while r.mock.starts("web") < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("recreated");
    assert_eq!(
        tokio::time::Instant::now() - before,
        Duration::ZERO,
        "no delay at all"
    );
    let u = r.runner.status();
    assert_eq!(u.task_states["web"].restarts, 0);
    assert_eq!(u.task_states["web"].state, TaskStateKind::Running);
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_backs_off_then_fails() {
    let mut alloc = testutil::alloc("web", "n1", vec![mock_task("web")]);
    alloc.restart = RestartPolicy {
        attempts: 3,
        interval: Duration::from_secs(3600),
        delay: Duration::from_secs(10),
        mode: RestartMode::Fail,
        render_templates: false,
    };
    let mock = MockDriver::new();
    for _ in 0..4 {
        mock.script_exit(MockExit::code(2));
    }
    let r = rig_with(alloc, mock, HashMap::new());
    let t0 = tokio::time::Instant::now();
    let u = until(&r, ClientStatus::Failed).await;
    let waited = tokio::time::Instant::now() - t0;
    assert_eq!(r.mock.starts("web"), 4);
    let st = &u.task_states["web"];
    assert_eq!(st.restarts, 3);
    assert!(st.failed);
    // 1s, 10s, 20s (each plus at most 25% jitter).
    assert!(
        waited >= Duration::from_secs(31) && waited < Duration::from_secs(39),
        "{waited:?}"
    );
    let last: Vec<_> = st
        .events
        .iter()
        .rev()
        .take(2)
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(last, ["Not Restarting", "Terminated"]);
    assert!(
        st.events
            .last()
            .expect("event")
            .message
            .contains("Exceeded allowed attempts 3")
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_task_that_exits_zero_completes() {
    let mut alloc = testutil::alloc("once", "n1", vec![mock_task("once")]);
    alloc.job_type = "batch".into();
    alloc.restart = RestartPolicy::batch_default();
    let mock = MockDriver::new();
    mock.script_exit(MockExit::code(0));
    let r = rig_with(alloc, mock, HashMap::new());
    let u = until(&r, ClientStatus::Complete).await;
    assert_eq!(r.mock.starts("once"), 1);
    assert!(!u.task_states["once"].failed);
    assert_eq!(u.client_description, "All tasks have completed");
}

#[tokio::test(start_paused = true)]
async fn kill_uses_the_kill_signal_and_timeout() {
    let r = rig(testutil::alloc(
        "web",
        "n1",
        vec![mock_task("web"), mock_task("side")],
    ));
    until(&r, ClientStatus::Running).await;
    r.runner.kill();
    let mut r = r;
    let u = until(&r, ClientStatus::Complete).await;
    let stops: Vec<_> = r
        .mock
        .calls()
        .into_iter()
        .filter(|c| matches!(c, MockCall::Stop { .. }))
        .collect();
    assert_eq!(stops.len(), 2);
    assert!(stops.iter().all(|c| matches!(c, MockCall::Stop { timeout, signal, .. } if *timeout == Duration::from_secs(3) && signal == "SIGINT")));
    assert!(r.mock.running().is_empty());
    assert_eq!(events(&u, "web").last().map(String::as_str), Some("Killed"));
    // Every change went out on the update channel.
    let mut last = None;
    while let Ok(x) = r.updates.try_recv() {
        last = Some(x);
    }
    assert_eq!(last.map(|u| u.client_status), Some(ClientStatus::Complete));
}

#[tokio::test(start_paused = true)]
async fn a_failed_task_kills_its_siblings() {
    let mut alloc = testutil::alloc("web", "n1", vec![mock_task("web"), mock_task("side")]);
    alloc.restart.attempts = 0;
    let r = rig(alloc);
    until(&r, ClientStatus::Running).await;
    r.mock.finish("web", MockExit::code(1));
    let u = until(&r, ClientStatus::Failed).await;
    let u = if u.task_states["side"].state == TaskStateKind::Dead {
        u
    } else {
        r.runner
            .wait_for(|u| u.task_states["side"].state == TaskStateKind::Dead)
            .await
    };
    assert!(events(&u, "side").contains(&"Sibling Task Failed".to_string()));
    assert!(r.mock.running().is_empty());
}

#[tokio::test(start_paused = true)]
async fn unrecoverable_start_errors_fail_and_engine_outages_wait() {
    let mock = MockDriver::new();
    mock.script_start_error(DriverError::InvalidConfig {
        alloc_id: "a".into(),
        task: "web".into(),
        field: "config.image".into(),
        message: "must not be empty".into(),
    });
    let r = rig_with(
        testutil::alloc("web", "n1", vec![mock_task("web")]),
        mock,
        HashMap::new(),
    );
    let u = until(&r, ClientStatus::Failed).await;
    assert_eq!(events(&u, "web")[2..], ["Driver Failure", "Not Restarting"]);

    let mock = MockDriver::new();
    for _ in 0..5 {
        mock.script_start_error(DriverError::EngineUnavailable {
            driver: "docker",
            message: "connection refused".into(),
        });
    }
    let r = rig_with(
        testutil::alloc("web", "n1", vec![mock_task("web")]),
        mock,
        HashMap::new(),
    );
    let u = until(&r, ClientStatus::Running).await;
    assert_eq!(r.mock.starts("web"), 6);
    assert_eq!(
        u.task_states["web"].restarts, 0,
        "an engine outage is not the task's failure"
    );
    assert_eq!(
        events(&u, "web"),
        ["Received", "Task Setup", "Driver", "Started"]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_leaves_tasks_running() {
    let r = rig(testutil::alloc("web", "n1", vec![mock_task("web")]));
    until(&r, ClientStatus::Running).await;
    r._shutdown.send_replace(true);
    tokio::time::timeout(Duration::from_secs(60), async {
        while !r.runner.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("runners return on shutdown");
    assert_eq!(r.mock.running().len(), 1);
    assert!(
        !r.mock
            .calls()
            .iter()
            .any(|c| matches!(c, MockCall::Stop { .. } | MockCall::Destroy { .. }))
    );
}

#[tokio::test(start_paused = true)]
async fn when_the_leader_ends_the_others_are_killed() {
    let mut leader = mock_task("main");
    leader.leader = true;
    let mut alloc = testutil::alloc("job", "n1", vec![leader, mock_task("sidecar")]);
    alloc.job_type = "batch".into();
    alloc.restart = RestartPolicy::batch_default();
    let r = rig(alloc);
    until(&r, ClientStatus::Running).await;
    r.mock.finish("main", MockExit::code(0));
    let u = until(&r, ClientStatus::Complete).await;
    assert!(events(&u, "sidecar").contains(&"Leader Task Dead".to_string()));
    assert!(r.mock.running().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_delay_is_waited_before_the_kill_signal() {
    let mut t = mock_task("web");
    t.shutdown_delay = Duration::from_secs(7);
    let r = rig(testutil::alloc("web", "n1", vec![t]));
    until(&r, ClientStatus::Running).await;
    let t0 = tokio::time::Instant::now();
    r.runner.kill();
    until(&r, ClientStatus::Complete).await;
    assert!(tokio::time::Instant::now() - t0 >= Duration::from_secs(7));
    let u = r.runner.status();
    let msgs: Vec<_> = u.task_states["web"]
        .events
        .iter()
        .map(|e| e.message.clone())
        .collect();
    assert!(
        msgs.iter().any(|m| m.contains("shutdown_delay of 7s")),
        "{msgs:?}"
    );
}

fn with_artifact(mut t: Task, source: &str, destination: &str) -> Task {
    t.artifacts.push(crate::spec::Artifact {
        source: source.into(),
        destination: destination.into(),
        mode: "file".into(),
        options: Default::default(),
        headers: Default::default(),
        chown: false,
    });
    t
}

#[tokio::test(start_paused = true)]
async fn artifacts_are_fetched_before_the_first_start_only() {
    let src = tempfile::tempdir().expect("src");
    std::fs::write(src.path().join("c.json"), "{}").expect("write");
    let task = with_artifact(
        mock_task("web"),
        &format!("file://{}/c.json", src.path().display()),
        "${NOMAD_TASK_DIR}/config/c.json",
    );
    let alloc = testutil::alloc("web", "n1", vec![task]);
    let alloc_id = alloc.id.clone();
    let mock = MockDriver::new();
    mock.script_exit(MockExit::code(1));
    let r = rig_with(alloc, mock, HashMap::new());
    let u = until(&r, ClientStatus::Running).await;
    let fetched = r
        ._dir
        .path()
        .join("alloc")
        .join(&alloc_id)
        .join("web/local/config/c.json");
    assert_eq!(std::fs::read_to_string(&fetched).expect("fetched"), "{}");
    let ev = events(&u, "web");
    assert_eq!(
        &ev[..4],
        ["Received", "Task Setup", "Downloading Artifacts", "Started"]
    );
    // The scripted exit restarts it; the artifact is not fetched again.
    tokio::time::timeout(Duration::from_secs(60), async {
        while r.mock.starts("web") < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("restarted");
    let ev = events(&r.runner.status(), "web");
    assert_eq!(
        ev.iter().filter(|e| *e == "Downloading Artifacts").count(),
        1,
        "{ev:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_download_counts_against_the_restart_policy() {
    let task = with_artifact(
        mock_task("web"),
        "file:///nonexistent/drover-artifact.json",
        "local/c.json",
    );
    let mut alloc = testutil::alloc("web", "n1", vec![task]);
    alloc.restart = RestartPolicy {
        attempts: 1,
        interval: Duration::from_secs(3600),
        delay: Duration::from_secs(5),
        mode: RestartMode::Fail,
        render_templates: false,
    };
    let r = rig(alloc);
    let u = until(&r, ClientStatus::Failed).await;
    assert_eq!(r.mock.starts("web"), 0, "never started");
    let st = &u.task_states["web"];
    assert_eq!(st.restarts, 1);
    let ev = events(&u, "web");
    assert_eq!(
        ev,
        [
            "Received",
            "Task Setup",
            "Downloading Artifacts",
            "Failed Artifact Download",
            "Restarting",
            "Downloading Artifacts",
            "Failed Artifact Download",
            "Not Restarting",
        ]
    );
    let failed = st
        .events
        .iter()
        .find(|e| e.event_type == "Failed Artifact Download")
        .expect("event");
    assert!(
        failed.message.starts_with(
            "failed to download artifact \"file:///nonexistent/drover-artifact.json\": failed to open /nonexistent/drover-artifact.json"
        ),
        "{}",
        failed.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_kill_does_not_wait_for_a_download_in_flight() {
    // A server that accepts and never answers: the download would hang for the node's
    // http_read_timeout (30 minutes).
    let listener = std::net::TcpListener::bind("127.0.6.2:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let task = with_artifact(
        mock_task("web"),
        &format!("http://{addr}/slow.json"),
        "local/c.json",
    );
    let r = rig(testutil::alloc("web", "n1", vec![task]));
    // The request is in flight once the server has accepted it.
    let _conn = tokio::task::spawn_blocking(move || held.join())
        .await
        .expect("join");
    r.runner.kill();
    let u = until(&r, ClientStatus::Complete).await;
    assert_eq!(r.mock.starts("web"), 0);
    assert_eq!(events(&u, "web").last().map(String::as_str), Some("Killed"));
}
