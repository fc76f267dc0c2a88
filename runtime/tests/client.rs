//! The client loop against a mock `ServerApi` and the real engine: it registers with its
//! drivers, runs what the server lists (docker and raw_exec), reports, stops what the server
//! stops, survives an agent restart without restarting anything, keeps workloads running while
//! the server is away, and removes drover containers no allocation wants.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::server::MockServer;
use common::{Cleanup, docker_inspect, http_get, poll};
use drover_runtime::client::{Client, ClientConfig, ClientHandle};
use drover_runtime::driver::Driver;
use drover_runtime::driver::LogStream;
use drover_runtime::driver::docker::{DockerDriver, DockerDriverConfig};
use drover_runtime::spec::{AllocSpec, ClientStatus, DesiredStatus, TaskConfig};
use drover_runtime::testutil::{network_with_port, task_raw_exec};
use futures_util::StreamExt;
use tokio::sync::oneshot;

struct Agent {
    handle: ClientHandle,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Agent {
    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.done)
            .await
            .expect("client returns on shutdown")
            .expect("join");
    }
}

fn start(t: &Cleanup, server: &Arc<MockServer>) -> Agent {
    start_with(t, server, |_| {})
}

fn start_with(
    t: &Cleanup,
    server: &Arc<MockServer>,
    tweak: impl FnOnce(&mut ClientConfig),
) -> Agent {
    common::init_tracing();
    // The node id the cleanup guard filters on.
    let dir = t.data_path().join("client");
    std::fs::create_dir_all(&dir).expect("client dir");
    std::fs::write(dir.join("node-id"), t.node().node_id).expect("node id");
    let mut cfg = ClientConfig::dev(t.data_path());
    cfg.fingerprint_interval = Duration::from_millis(500);
    tweak(&mut cfg);
    let client = Client::new(cfg).expect("client");
    assert_eq!(client.node_id(), t.node().node_id);
    let handle = client.handle();
    let (tx, rx) = oneshot::channel::<()>();
    let server = server.clone();
    let done = tokio::spawn(async move {
        client
            .run(server, async {
                let _ = rx.await;
            })
            .await
            .expect("client run");
    });
    Agent {
        handle,
        stop: Some(tx),
        done,
    }
}

fn docker_web(t: &Cleanup, port: u16) -> AllocSpec {
    let mut task = t.docker_task("web", "httpd", &["-f", "-p", "80"]);
    if let TaskConfig::Docker(c) = &mut task.config {
        c.ports = vec!["http".into()];
    }
    let mut alloc = t.alloc(vec![task]);
    alloc.networks = vec![network_with_port("http", port, 80)];
    alloc
}

fn raw_web(t: &Cleanup, port: u16) -> AllocSpec {
    let task = task_raw_exec(
        "proc",
        "/bin/busybox",
        &[
            "httpd",
            "-f",
            "-p",
            &format!("127.0.0.1:{port}"),
            "-h",
            "${NOMAD_TASK_DIR}",
        ],
    );
    t.alloc(vec![task])
}

async fn reported(server: &MockServer, alloc: &str, status: ClientStatus) -> bool {
    poll(Duration::from_secs(20), || async {
        (server.status(alloc) == Some(status)).then_some(())
    })
    .await
    .is_some()
}

fn running_container(t: &Cleanup, alloc: &str) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=drover.alloc={alloc}"),
            "--filter",
            &format!("label=drover.node={}", t.node().node_id),
        ])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn raw_pid(t: &Cleanup, alloc: &AllocSpec) -> Option<i64> {
    let path = t
        .data_path()
        .join("client/raw_exec")
        .join(format!("{}.proc.json", alloc.id));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v.get("pid")?.as_i64()
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_reports_restarts_nothing_on_agent_restart_and_stops() {
    let t = Cleanup::new("client_lifecycle");
    let server = Arc::new(MockServer::default());
    let web = docker_web(&t, 18301);
    let proc_ = raw_web(&t, 18302);
    server.set_allocs(vec![web.clone(), proc_.clone()]);
    let agent = start(&t, &server);

    assert!(
        reported(&server, &web.id, ClientStatus::Running).await,
        "docker alloc running"
    );
    assert!(
        reported(&server, &proc_.id, ClientStatus::Running).await,
        "raw_exec alloc running"
    );
    assert!(
        poll(Duration::from_secs(5), || http_get(18301))
            .await
            .is_some()
    );
    assert!(
        poll(Duration::from_secs(5), || http_get(18302))
            .await
            .is_some()
    );
    {
        let nodes = server.nodes.lock().unwrap();
        let node = nodes.last().expect("registered");
        assert!(node.drivers["docker"].healthy, "{:?}", node.drivers);
        assert!(node.drivers["raw_exec"].healthy);
        assert_eq!(node.address, "127.0.0.1");
    }
    assert!(
        poll(Duration::from_secs(5), || async {
            (server.heartbeats.load(Ordering::SeqCst) > 0).then_some(())
        })
        .await
        .is_some(),
        "heartbeats at the TTL"
    );
    let container = running_container(&t, &web.id).expect("container");
    let pid = raw_pid(&t, &proc_).expect("pid file");
    // The agent's API reads status and logs from the node.
    let st = agent.handle.alloc_status(&web.id).expect("status");
    assert_eq!(st.client_status, ClientStatus::Running);
    let mut logs = agent
        .handle
        .logs(&proc_.id, "proc", LogStream::Stdout, false, Some(10))
        .await
        .expect("logs");
    assert!(logs.next().await.is_some());
    assert!(
        agent
            .handle
            .logs("nope", "proc", LogStream::Stdout, false, None)
            .await
            .is_err()
    );

    // The agent stops: workloads stay.
    agent.shutdown().await;
    assert!(http_get(18301).await.is_some(), "container still answers");
    assert!(http_get(18302).await.is_some(), "process still answers");

    // A new agent on the same data dir re-attaches: same container, same process.
    let agent = start(&t, &server);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        running_container(&t, &web.id).as_deref(),
        Some(container.as_str())
    );
    assert_eq!(raw_pid(&t, &proc_), Some(pid));
    let updates = server.updates.lock().unwrap().clone();
    assert_eq!(updates[&web.id].task_states["web"].restarts, 0);
    let events: Vec<_> = updates[&web.id].task_states["web"]
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert!(
        events.contains(&"Started"),
        "history survives the agent restart: {events:?}"
    );

    // The server stops both: the container is removed, the process is gone.
    let mut stop_web = web.clone();
    stop_web.desired_status = DesiredStatus::Stop;
    stop_web.modify_index += 1;
    let mut stop_proc = proc_.clone();
    stop_proc.desired_status = DesiredStatus::Stop;
    stop_proc.modify_index += 1;
    server.set_allocs(vec![stop_web, stop_proc]);
    assert!(
        reported(&server, &web.id, ClientStatus::Complete).await,
        "{:?}",
        server.status(&web.id)
    );
    assert!(reported(&server, &proc_.id, ClientStatus::Complete).await);
    assert_eq!(
        docker_inspect(&container, "{{.Id}}"),
        None,
        "container removed"
    );
    assert!(http_get(18302).await.is_none(), "process stopped");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn workloads_run_on_while_the_server_is_away() {
    let t = Cleanup::new("client_server_away");
    let server = Arc::new(MockServer::default());
    let web = docker_web(&t, 18303);
    server.set_allocs(vec![web.clone()]);
    let agent = start(&t, &server);
    assert!(reported(&server, &web.id, ClientStatus::Running).await);
    let container = running_container(&t, &web.id).expect("container");

    server.down.store(true, Ordering::SeqCst);
    // Something changes while the server is away: it is reported once the server is back.
    common::docker_rm_f(&container);
    assert!(
        poll(Duration::from_secs(5), || http_get(18303))
            .await
            .is_some(),
        "recreated without the server"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.down.store(false, Ordering::SeqCst);
    let back = poll(Duration::from_secs(20), || async {
        let u = server.updates.lock().unwrap().get(&web.id).cloned()?;
        u.task_states["web"]
            .events
            .iter()
            .any(|e| e.message.contains("removed outside"))
            .then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "the change is reported when the server returns"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_no_allocation_wants_are_removed_by_sync() {
    let t = Cleanup::new("client_orphans");
    // A drover container for this node from an allocation the server no longer has.
    let d = DockerDriver::connect(DockerDriverConfig::default()).expect("docker");
    let orphan = t.alloc(vec![t.docker_task("old", "sleep", &["300"])]);
    let h = d
        .start_task(&t.ctx(&orphan, "old"))
        .await
        .expect("start orphan");
    let server = Arc::new(MockServer::default());
    let keep = docker_web(&t, 18304);
    server.set_allocs(vec![keep.clone()]);
    let agent = start(&t, &server);
    assert!(reported(&server, &keep.id, ClientStatus::Running).await);
    let gone = poll(Duration::from_secs(15), || async {
        docker_inspect(&h.id, "{{.Id}}").is_none().then_some(())
    })
    .await;
    assert!(gone.is_some(), "orphan removed");
    assert!(
        running_container(&t, &keep.id).is_some(),
        "the wanted one stays"
    );
    agent.shutdown().await;
}

/// Forwards a unix socket to the real engine: the engine "returns" when this starts.
async fn engine_proxy(path: std::path::PathBuf) {
    let Ok(listener) = tokio::net::UnixListener::bind(&path) else {
        return;
    };
    while let Ok((mut inbound, _)) = listener.accept().await {
        tokio::spawn(async move {
            if let Ok(mut engine) = tokio::net::UnixStream::connect("/var/run/docker.sock").await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut engine).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_allocations_wait_for_the_engine_and_converge_when_it_returns() {
    let t = Cleanup::new("client_engine_outage");
    let sock = t.data_path().join("engine.sock");
    // Left from before: a container of this node that no allocation wants.
    let d = DockerDriver::connect(DockerDriverConfig::default()).expect("docker");
    let orphan = t.alloc(vec![t.docker_task("old", "sleep", &["300"])]);
    let orphan = d
        .start_task(&t.ctx(&orphan, "old"))
        .await
        .expect("start orphan");
    let server = Arc::new(MockServer::default());
    let web = docker_web(&t, 18305);
    server.set_allocs(vec![web.clone()]);
    let endpoint = format!("unix://{}", sock.display());
    let agent = start_with(&t, &server, |cfg| {
        cfg.docker = Some(DockerDriverConfig {
            endpoint: Some(endpoint),
            ..DockerDriverConfig::default()
        });
    });

    let unhealthy = poll(Duration::from_secs(10), || async {
        let nodes = server.nodes.lock().unwrap();
        let d = nodes.last()?.drivers.get("docker")?.clone();
        (!d.healthy).then_some(d.health_description)
    })
    .await
    .expect("registered with an unhealthy docker driver");
    assert!(
        unhealthy.starts_with("Failed to connect to docker daemon"),
        "{unhealthy}"
    );
    let waiting = poll(Duration::from_secs(10), || async {
        let u = server.updates.lock().unwrap().get(&web.id).cloned()?;
        let ev = u.task_states["web"]
            .events
            .iter()
            .find(|e| e.event_type == "Driver")?
            .clone();
        Some((u.client_status, ev.message))
    })
    .await
    .expect("a Driver event says the task waits");
    assert_eq!(waiting.0, ClientStatus::Pending);
    assert!(
        waiting.1.contains("Waiting for the docker driver"),
        "{}",
        waiting.1
    );

    // The engine comes back: the allocation starts and the node reports docker healthy.
    let proxy = tokio::spawn(engine_proxy(sock.clone()));
    let converged = poll(Duration::from_secs(30), || async {
        (server.status(&web.id) == Some(ClientStatus::Running)).then_some(())
    })
    .await;
    assert!(converged.is_some(), "{:?}", server.status(&web.id));
    assert!(
        poll(Duration::from_secs(5), || http_get(18305))
            .await
            .is_some()
    );
    let healthy = poll(Duration::from_secs(10), || async {
        let nodes = server.nodes.lock().unwrap();
        nodes.last()?.drivers.get("docker")?.healthy.then_some(())
    })
    .await;
    assert!(
        healthy.is_some(),
        "the node re-registers with docker healthy"
    );
    let u = server.updates.lock().unwrap()[&web.id].clone();
    assert_eq!(
        u.task_states["web"].restarts, 0,
        "an engine outage is not a restart"
    );
    let gone = poll(Duration::from_secs(10), || async {
        docker_inspect(&orphan.id, "{{.Id}}")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "the orphan is found once the engine is back, and removed"
    );
    agent.shutdown().await;
    proxy.abort();
}
