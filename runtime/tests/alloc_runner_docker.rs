//! Alloc runners on the real engine: a container removed with `docker rm -f` is replaced and
//! answers again (the time it takes is printed; the benchmark holds the target), an agent
//! restart re-attaches without restarting, a crash loop backs off, a batch task that exits 0
//! completes.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Cleanup, docker_inspect, docker_rm_f, http_get, poll};
use drover_runtime::allocrunner::{AllocRunner, AllocRunnerArgs};
use drover_runtime::driver::docker::{DockerDriver, DockerDriverConfig};
use drover_runtime::driver::{Driver, Drivers, TaskHandle};
use drover_runtime::spec::{
    AllocSpec, AllocUpdate, ClientStatus, RestartMode, RestartPolicy, TaskConfig,
};
use drover_runtime::testutil::network_with_port;
use tokio::sync::{mpsc, watch};

fn drivers() -> (Arc<DockerDriver>, Drivers) {
    let d = Arc::new(DockerDriver::connect(DockerDriverConfig::default()).expect("docker client"));
    let mut m = Drivers::new();
    m.insert("docker".into(), d.clone() as Arc<dyn Driver>);
    (d, m)
}

struct Agent {
    runner: Arc<AllocRunner>,
    pump: tokio::task::JoinHandle<()>,
    shutdown: watch::Sender<bool>,
    _updates: mpsc::UnboundedReceiver<AllocUpdate>,
}

fn spawn(t: &Cleanup, alloc: &AllocSpec, restored: HashMap<String, TaskHandle>) -> Agent {
    common::init_tracing();
    let (_, driver_map) = self::drivers();
    let (tx, rx) = mpsc::unbounded_channel();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let runner = AllocRunner::spawn(AllocRunnerArgs {
        alloc: alloc.clone(),
        drivers: driver_map,
        node: Arc::new(t.node()),
        data_dir: t.data_path().to_path_buf(),
        restored,
        prior: Default::default(),
        updates: tx,
        shutdown: shutdown_rx,
        jitter_seed: Some(7),
    });
    let runner = Arc::new(runner);
    // What the client does: engine events only wake the runner that owns the container.
    let pump = {
        let runner = runner.clone();
        let node_id = t.node().node_id;
        tokio::spawn(async move {
            let (d, _) = self::drivers();
            let Ok(events) = d.events(&node_id).await else {
                return;
            };
            let mut events = std::pin::pin!(events);
            while let Some(ev) = futures_util::StreamExt::next(&mut events).await {
                tracing::debug!(action = %ev.action, "engine event");
                if ev.alloc_id == runner.alloc_id() {
                    runner.wake(ev);
                }
            }
        })
    };
    Agent {
        runner,
        pump,
        shutdown,
        _updates: rx,
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// Waits up to 30 s for the runner's status to satisfy `f`; a runner that never gets there
/// (an engine that stopped answering, say) fails the test with its last status instead of
/// hanging it.
async fn within(agent: &Agent, f: impl Fn(&AllocUpdate) -> bool) -> AllocUpdate {
    match tokio::time::timeout(Duration::from_secs(30), agent.runner.wait_for(f)).await {
        Ok(u) => u,
        Err(_) => panic!(
            "no such status within 30 s; the last was {:#?}",
            agent.runner.status()
        ),
    }
}

fn web_alloc(t: &Cleanup, port: u16) -> AllocSpec {
    let mut task = t.docker_task("web", "httpd", &["-f", "-p", "80"]);
    if let TaskConfig::Docker(c) = &mut task.config {
        c.ports = vec!["http".into()];
    }
    let mut alloc = t.alloc(vec![task]);
    alloc.networks = vec![network_with_port("http", port, 80)];
    alloc
}

async fn container_id(t: &Cleanup, alloc: &AllocSpec) -> Option<String> {
    let (d, _) = drivers();
    d.recover_tasks(&t.node().node_id)
        .await
        .ok()?
        .into_iter()
        .find(|h| {
            h.alloc_id == alloc.id
                && docker_inspect(&h.id, "{{.State.Running}}").as_deref() == Some("true")
        })
        .map(|h| h.id)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_rm_f_is_recreated_and_answers_again_every_time() {
    let t = Cleanup::new("ar_rm_f_recreated");
    let port = 18201;
    let alloc = web_alloc(&t, port);
    let agent = spawn(&t, &alloc, HashMap::new());
    within(&agent, |u| u.client_status == ClientStatus::Running).await;
    assert!(
        poll(Duration::from_secs(5), || http_get(port))
            .await
            .is_some(),
        "first answer"
    );

    let mut times = Vec::new();
    for _ in 0..20 {
        let old = poll(Duration::from_secs(5), || container_id(&t, &alloc))
            .await
            .expect("running container");
        let removed = Instant::now();
        docker_rm_f(&old);
        // 30 s: under a full CI run one heal in twenty once took over 10 s (the runner's
        // back-off re-check rather than the engine's event); healing is what is asserted here.
        let answered = poll(Duration::from_secs(30), || async {
            let id = container_id(&t, &alloc).await?;
            if id == old {
                return None;
            }
            http_get(port).await
        })
        .await;
        assert!(
            answered.is_some(),
            "no new container answers 30 s after removing {old}; runner status: {:#?}; times so far: {times:?}",
            agent.runner.status()
        );
        times.push(removed.elapsed());
    }
    times.sort();
    let (p50, p95) = (percentile(&times, 0.5), percentile(&times, 0.95));
    println!(
        "rm -f → new container answering: p50 {p50:?} p95 {p95:?} max {:?}",
        times.last()
    );
    // The < 1 s target is the benchmark's to check (tests/benches/agent.rs, docs/benchmarks.md):
    // on a loaded CI machine a timed assertion only measures the neighbours. What must hold
    // here is that every removal is healed, each well inside the 10 s poll above.
    // The replacement was created under a temporary name; it takes the real one.
    let canonical = format!(
        "/{}",
        drover_runtime::driver::docker::container_name("web", &alloc.id)
    );
    let named = poll(Duration::from_secs(10), || async {
        let id = container_id(&t, &alloc).await?;
        (docker_inspect(&id, "{{.Name}}")? == canonical).then_some(())
    })
    .await;
    assert!(named.is_some(), "the container gets its name {canonical}");
    let st = agent.runner.status();
    assert_eq!(st.task_states["web"].restarts, 0, "removal is not a crash");
    assert_eq!(st.client_status, ClientStatus::Running);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_restart_reattaches_without_restarting() {
    let t = Cleanup::new("ar_agent_restart");
    let port = 18202;
    let alloc = web_alloc(&t, port);
    let agent = spawn(&t, &alloc, HashMap::new());
    within(&agent, |u| u.client_status == ClientStatus::Running).await;
    let before = poll(Duration::from_secs(5), || container_id(&t, &alloc))
        .await
        .expect("container");
    let started = docker_inspect(&before, "{{.State.StartedAt}}");

    // The agent goes away: its runners return and leave the container running.
    agent.shutdown.send_replace(true);
    assert!(
        poll(Duration::from_secs(5), || async {
            agent.runner.is_finished().then_some(())
        })
        .await
        .is_some()
    );
    drop(agent);
    assert!(
        http_get(port).await.is_some()
            || poll(Duration::from_secs(2), || http_get(port))
                .await
                .is_some()
    );

    // A new agent: recover, restore, run.
    let (d, _) = drivers();
    let recovered: HashMap<String, TaskHandle> = d
        .recover_tasks(&t.node().node_id)
        .await
        .expect("recover")
        .into_iter()
        .filter(|h| h.alloc_id == alloc.id)
        .map(|h| (h.task.clone(), h))
        .collect();
    assert_eq!(recovered.len(), 1);
    let agent = spawn(&t, &alloc, recovered);
    let u = within(&agent, |u| u.client_status == ClientStatus::Running).await;
    assert_eq!(u.task_states["web"].restarts, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = container_id(&t, &alloc).await.expect("container");
    assert_eq!(before, after, "same container");
    assert_eq!(
        docker_inspect(&after, "{{.State.StartedAt}}"),
        started,
        "not restarted"
    );

    // Still supervised: killing the allocation stops and removes it.
    agent.runner.kill();
    within(&agent, |u| u.client_status.client_terminal()).await;
    assert_eq!(docker_inspect(&after, "{{.Id}}"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loop_backs_off_and_fails() {
    let t = Cleanup::new("ar_crash_loop");
    let mut alloc = t.alloc(vec![t.docker_task("crash", "sh", &["-c", "exit 7"])]);
    alloc.restart = RestartPolicy {
        attempts: 2,
        interval: Duration::from_secs(600),
        delay: Duration::from_millis(800),
        mode: RestartMode::Fail,
        render_templates: false,
    };
    let started = Instant::now();
    let agent = spawn(&t, &alloc, HashMap::new());
    let u = within(&agent, |u| u.client_status == ClientStatus::Failed).await;
    let took = started.elapsed();
    let st = &u.task_states["crash"];
    assert_eq!(st.restarts, 2);
    // 0.8 s then 0.8 s (the quick first restart is capped by delay), each +≤25%.
    assert!(took >= Duration::from_millis(1600), "{took:?}");
    let terminated: Vec<_> = st
        .events
        .iter()
        .filter(|e| e.event_type == "Terminated")
        .collect();
    assert!(terminated.iter().all(|e| e.exit_code == Some(7)));
    assert_eq!(
        st.events.last().map(|e| e.event_type.as_str()),
        Some("Not Restarting")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_task_that_exits_zero_completes() {
    let t = Cleanup::new("ar_batch_complete");
    let mut alloc = t.alloc(vec![t.docker_task("once", "sh", &["-c", "echo done"])]);
    alloc.job_type = "batch".into();
    alloc.restart = RestartPolicy::batch_default();
    let agent = spawn(&t, &alloc, HashMap::new());
    let u = within(&agent, |u| u.client_status == ClientStatus::Complete).await;
    let st = &u.task_states["once"];
    assert_eq!(st.restarts, 0);
    assert!(!st.failed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        agent.runner.status().client_status,
        ClientStatus::Complete,
        "nothing restarts it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_kill_from_outside_is_replaced_at_once_and_the_old_container_removed() {
    let t = Cleanup::new("ar_docker_kill");
    let port = 18203;
    let alloc = web_alloc(&t, port);
    let agent = spawn(&t, &alloc, HashMap::new());
    within(&agent, |u| u.client_status == ClientStatus::Running).await;
    let old = poll(Duration::from_secs(5), || container_id(&t, &alloc))
        .await
        .expect("container");
    let out = std::process::Command::new("docker")
        .args(["kill", &old])
        .output()
        .expect("docker kill");
    assert!(out.status.success());
    let new = poll(Duration::from_secs(5), || async {
        let id = container_id(&t, &alloc).await?;
        (id != old).then_some(id)
    })
    .await
    .expect("replaced");
    assert!(
        poll(Duration::from_secs(5), || http_get(port))
            .await
            .is_some()
    );
    let old_gone = poll(Duration::from_secs(10), || async {
        docker_inspect(&old, "{{.Id}}").is_none().then_some(())
    })
    .await;
    assert!(old_gone.is_some(), "the killed container is removed");
    let canonical = format!(
        "/{}",
        drover_runtime::driver::docker::container_name("web", &alloc.id)
    );
    let named = poll(Duration::from_secs(10), || async {
        (docker_inspect(&new, "{{.Name}}")? == canonical).then_some(())
    })
    .await;
    assert!(named.is_some());
    assert_eq!(agent.runner.status().task_states["web"].restarts, 0);
}
