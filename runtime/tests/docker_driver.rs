//! The docker driver against the real engine and the local busybox image: start, wait, stop,
//! destroy, adoption on a name conflict, recovery by label, removal from outside, logs, the
//! task environment and volumes.

mod common;

use std::time::Duration;

use common::{Cleanup, docker_inspect, docker_rm_f, http_get, poll};
use drover_runtime::driver::docker::{DockerDriver, DockerDriverConfig, container_name};
use drover_runtime::driver::{Driver, DriverError, LogStream, TaskStatus};
use drover_runtime::testutil::network_with_port;
use futures_util::StreamExt;

fn driver() -> DockerDriver {
    DockerDriver::connect(DockerDriverConfig::default()).expect("docker client")
}

async fn read_logs(
    d: &DockerDriver,
    h: &drover_runtime::driver::TaskHandle,
    s: LogStream,
) -> String {
    let mut out = Vec::new();
    let mut stream = d.logs(h, s, false, None).await.expect("logs");
    while let Some(chunk) = stream.next().await {
        out.extend(chunk.expect("log chunk"));
    }
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn start_answer_stop_destroy() {
    let t = Cleanup::new("docker_start_answer_stop_destroy");
    let d = driver();
    assert!(d.fingerprint().await.healthy);
    let mut alloc = t.alloc(vec![t.docker_task("web", "httpd", &["-f", "-p", "80"])]);
    alloc.networks = vec![network_with_port("http", 18101, 80)];
    if let drover_runtime::spec::TaskConfig::Docker(c) = &mut alloc.tasks[0].config {
        c.ports = vec!["http".into()];
    }
    let ctx = t.ctx(&alloc, "web");
    let h = d.start_task(&ctx).await.expect("start");
    assert_eq!(
        docker_inspect(&h.id, "{{.Name}}").as_deref(),
        Some(format!("/{}", container_name("web", &alloc.id)).as_str())
    );
    assert_eq!(
        docker_inspect(&h.id, "{{index .Config.Labels \"drover.alloc\"}}").as_deref(),
        Some(alloc.id.as_str())
    );
    assert_eq!(
        docker_inspect(
            &h.id,
            "{{.HostConfig.Memory}} {{.HostConfig.CpuShares}} {{.HostConfig.LogConfig.Type}}"
        )
        .as_deref(),
        Some("33554432 100 json-file")
    );
    let answer = poll(Duration::from_secs(5), || http_get(18101)).await;
    assert!(answer.is_some(), "httpd did not answer on 127.0.0.1:18101");
    assert_eq!(
        d.inspect_task(&h).await.expect("inspect"),
        TaskStatus::Running
    );

    let waiter = {
        let h = h.clone();
        let d = driver();
        tokio::spawn(async move { d.wait_task(&h).await })
    };
    d.stop_task(&h, Duration::from_secs(2), "SIGTERM")
        .await
        .expect("stop");
    let exit = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("wait returns after stop")
        .expect("join")
        .expect("exit result");
    assert!(!exit.successful() || exit.exit_code == 0, "{exit:?}");
    // Stopping what is stopped, destroying twice: both fine.
    d.stop_task(&h, Duration::from_secs(1), "SIGTERM")
        .await
        .expect("stop again");
    d.destroy_task(&h, true).await.expect("destroy");
    d.destroy_task(&h, true)
        .await
        .expect("destroy again (404 is success)");
    assert!(matches!(
        d.inspect_task(&h).await,
        Err(DriverError::TaskNotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_container_of_the_same_alloc_is_adopted() {
    let t = Cleanup::new("docker_adopt_on_conflict");
    let d = driver();
    let alloc = t.alloc(vec![t.docker_task("app", "sleep", &["300"])]);
    let ctx = t.ctx(&alloc, "app");
    let first = d.start_task(&ctx).await.expect("start");
    let second = d.start_task(&ctx).await.expect("start again");
    assert_eq!(
        first.id, second.id,
        "the running container is adopted, not replaced"
    );

    // A dead container holding the name is removed and replaced.
    d.stop_task(&first, Duration::from_secs(1), "SIGKILL")
        .await
        .expect("stop");
    let third = d.start_task(&ctx).await.expect("start after exit");
    assert_ne!(first.id, third.id);
    assert_eq!(
        docker_inspect(&first.id, "{{.Id}}"),
        None,
        "the dead container is gone"
    );
    d.destroy_task(&third, true).await.expect("destroy");
}

#[tokio::test(flavor = "multi_thread")]
async fn recover_tasks_finds_the_node_containers_by_label() {
    let t = Cleanup::new("docker_recover_by_label");
    let d = driver();
    let alloc = t.alloc(vec![t.docker_task("app", "sleep", &["300"])]);
    let h = d.start_task(&t.ctx(&alloc, "app")).await.expect("start");
    let found = d.recover_tasks(&t.node().node_id).await.expect("recover");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, h.id);
    assert_eq!(found[0].alloc_id, alloc.id);
    assert_eq!(found[0].task, "app");
    assert!(
        d.recover_tasks("some-other-node")
            .await
            .expect("recover")
            .iter()
            .all(|x| x.id != h.id)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn removal_from_outside_is_reported_as_not_found() {
    let t = Cleanup::new("docker_rm_f_is_not_found");
    let d = driver();
    let alloc = t.alloc(vec![t.docker_task("app", "sleep", &["300"])]);
    let h = d.start_task(&t.ctx(&alloc, "app")).await.expect("start");
    let waiter = {
        let h = h.clone();
        let d = driver();
        tokio::spawn(async move { d.wait_task(&h).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    docker_rm_f(&h.id);
    let res = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("wait returns")
        .expect("join");
    assert!(
        matches!(res, Err(DriverError::TaskNotFound { .. })),
        "{res:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exits_logs_and_environment() {
    let t = Cleanup::new("docker_exit_logs_env");
    let d = driver();
    let mut task = t.docker_task(
        "job",
        "sh",
        &["-c", "echo alloc=$NOMAD_ALLOC_ID port=$NOMAD_PORT_http task=${NOMAD_TASK_NAME}; cat /app/config/greeting; echo oops >&2; exit 3"],
    );
    if let drover_runtime::spec::TaskConfig::Docker(c) = &mut task.config {
        c.volumes = vec!["local/config:/app/config:ro".into()];
    }
    let mut alloc = t.alloc(vec![task]);
    alloc.networks = vec![network_with_port("http", 18102, 8080)];
    let ctx = t.ctx(&alloc, "job");
    std::fs::create_dir_all(ctx.dirs.local_dir.join("config")).expect("config dir");
    std::fs::write(
        ctx.dirs.local_dir.join("config/greeting"),
        "hello from local\n",
    )
    .expect("file");
    let h = d.start_task(&ctx).await.expect("start");
    let exit = d.wait_task(&h).await.expect("exit");
    assert_eq!(exit.exit_code, 3);
    assert!(!exit.successful());
    let out = read_logs(&d, &h, LogStream::Stdout).await;
    assert!(
        out.contains(&format!("alloc={} port=8080 task=job", alloc.id)),
        "{out}"
    );
    assert!(out.contains("hello from local"), "{out}");
    assert_eq!(read_logs(&d, &h, LogStream::Stderr).await.trim(), "oops");
    assert!(matches!(d.inspect_task(&h).await, Ok(TaskStatus::Exited(e)) if e.exit_code == 3));
    d.destroy_task(&h, false).await.expect("destroy exited");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_clear() {
    let t = Cleanup::new("docker_refusals");
    let d = driver();
    let mut task = t.docker_task("app", "true", &[]);
    if let drover_runtime::spec::TaskConfig::Docker(c) = &mut task.config {
        c.image = "drover-test/does-not-exist:1".into();
    }
    let alloc = t.alloc(vec![task]);
    let err = d
        .start_task(&t.ctx(&alloc, "app"))
        .await
        .expect_err("unknown image");
    assert!(matches!(err, DriverError::ImageNotFound { .. }), "{err}");
    assert!(!err.is_recoverable());
    assert!(
        err.to_string().contains("drover-test/does-not-exist:1"),
        "{err}"
    );

    let mut task = t.docker_task("esc", "true", &[]);
    if let drover_runtime::spec::TaskConfig::Docker(c) = &mut task.config {
        c.volumes = vec!["../../../../etc:/host-etc".into()];
    }
    let alloc = t.alloc(vec![task]);
    let err = d
        .start_task(&t.ctx(&alloc, "esc"))
        .await
        .expect_err("escape");
    assert!(matches!(err, DriverError::InvalidConfig { .. }), "{err}");
    assert_eq!(err.metric_label(), "invalid_config");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_follow_and_tail() {
    let t = Cleanup::new("docker_logs_follow");
    let d = driver();
    let alloc = t.alloc(vec![t.docker_task(
        "talk",
        "sh",
        &["-c", "echo one; echo two; sleep 0.5; echo three; sleep 300"],
    )]);
    let h = d.start_task(&t.ctx(&alloc, "talk")).await.expect("start");
    let mut follow = d
        .logs(&h, LogStream::Stdout, true, None)
        .await
        .expect("follow");
    let mut seen = String::new();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = follow.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
            if seen.contains("three") {
                return;
            }
        }
    })
    .await;
    assert!(got.is_ok(), "followed output: {seen:?}");
    assert_eq!(seen, "one\ntwo\nthree\n");
    let mut tail = d
        .logs(&h, LogStream::Stdout, false, Some(1))
        .await
        .expect("tail");
    let mut last = Vec::new();
    while let Some(c) = tail.next().await {
        last.extend(c.expect("chunk"));
    }
    assert_eq!(String::from_utf8_lossy(&last), "three\n");
    d.destroy_task(&h, true).await.expect("destroy");
}
