//! The raw_exec driver with real processes: its own session, Nomad's log files, exit codes,
//! kill_signal then SIGKILL after kill_timeout, and re-adoption by a new agent from the pid file.

mod common;

use std::time::{Duration, Instant};

use common::Cleanup;
use drover_runtime::driver::raw_exec::RawExecDriver;
use drover_runtime::driver::{Driver, LogStream, TaskStatus};
use drover_runtime::testutil::task_raw_exec;
use futures_util::StreamExt;

/// `(session id, process group)` from `/proc/<pid>/stat`.
fn session_and_group(pid: &str) -> (String, String) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[3].to_string(), f[2].to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn exits_and_logs_in_nomads_layout() {
    let t = Cleanup::new("raw_exec_exit_logs");
    let d = RawExecDriver::new(t.data_path().to_path_buf());
    let task = task_raw_exec(
        "job",
        "/bin/sh",
        &["-c", "echo out $NOMAD_TASK_NAME; echo err >&2; exit 3"],
    );
    let alloc = t.alloc(vec![task]);
    let ctx = t.ctx(&alloc, "job");
    let h = d.start_task(&ctx).await.expect("start");
    let exit = d.wait_task(&h).await.expect("exit");
    assert_eq!(exit.exit_code, 3);
    let stdout = ctx.dirs.shared_alloc_dir.join("logs/job.stdout.0");
    assert_eq!(
        std::fs::read_to_string(&stdout).expect("stdout file"),
        "out job\n"
    );
    let mut logs = d
        .logs(&h, LogStream::Stderr, false, Some(10))
        .await
        .expect("logs");
    let chunk = logs.next().await.expect("chunk").expect("read");
    assert_eq!(String::from_utf8_lossy(&chunk), "err\n");
    assert!(matches!(d.inspect_task(&h).await, Ok(TaskStatus::Exited(e)) if e.exit_code == 3));
    d.destroy_task(&h, false).await.expect("destroy");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_sends_the_signal_then_kills_after_the_timeout() {
    let t = Cleanup::new("raw_exec_stop");
    let d = RawExecDriver::new(t.data_path().to_path_buf());
    // Ignores SIGTERM: only the SIGKILL after kill_timeout ends it (and its child sleep).
    let task = task_raw_exec(
        "stubborn",
        "/bin/sh",
        &["-c", "trap '' TERM; sleep 300 & wait"],
    );
    let alloc = t.alloc(vec![task]);
    let h = d
        .start_task(&t.ctx(&alloc, "stubborn"))
        .await
        .expect("start");
    let (sid, pgid) = session_and_group(&h.id);
    assert_eq!(
        (sid.as_str(), pgid.as_str()),
        (h.id.as_str(), h.id.as_str()),
        "own session and group"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let began = Instant::now();
    d.stop_task(&h, Duration::from_secs(1), "SIGTERM")
        .await
        .expect("stop");
    let exit = tokio::time::timeout(Duration::from_secs(5), d.wait_task(&h))
        .await
        .expect("ends")
        .expect("exit");
    let took = began.elapsed();
    assert_eq!(exit.signal, 9, "{exit:?}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // A process that honours SIGTERM stops at once.
    let task = task_raw_exec("polite", "/bin/sleep", &["300"]);
    let alloc = t.alloc(vec![task]);
    let h = d.start_task(&t.ctx(&alloc, "polite")).await.expect("start");
    let began = Instant::now();
    d.stop_task(&h, Duration::from_secs(5), "SIGTERM")
        .await
        .expect("stop");
    let exit = d.wait_task(&h).await.expect("exit");
    assert_eq!(exit.signal, 15);
    assert!(began.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_agent_adopts_the_running_process() {
    let t = Cleanup::new("raw_exec_adopt");
    let first = RawExecDriver::new(t.data_path().to_path_buf());
    let task = task_raw_exec("svc", "/bin/sleep", &["300"]);
    let alloc = t.alloc(vec![task]);
    let ctx = t.ctx(&alloc, "svc");
    let h = first.start_task(&ctx).await.expect("start");
    drop(first);

    // The agent restarts: a new driver finds it by its pid file and adopts it.
    let second = RawExecDriver::new(t.data_path().to_path_buf());
    let found = second
        .recover_tasks(&t.node().node_id)
        .await
        .expect("recover");
    assert_eq!(found, vec![h.clone()]);
    assert!(
        second
            .recover_tasks("another-node")
            .await
            .expect("recover")
            .is_empty()
    );
    assert_eq!(
        second.inspect_task(&h).await.expect("inspect"),
        TaskStatus::Running
    );
    let again = second.start_task(&ctx).await.expect("start adopts");
    assert_eq!(again.id, h.id, "same process");

    // Its end is still noticed, with the status unknown.
    let waiter = tokio::spawn(async move { second.wait_task(&h).await });
    std::process::Command::new("kill")
        .args(["-9", &again.id])
        .status()
        .expect("kill");
    let exit = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("noticed")
        .expect("join")
        .expect("exit");
    assert!(exit.err.is_some() && !exit.successful(), "{exit:?}");
}

/// Run as a separate process by `the_task_outlives_the_agent`: starts a task and exits.
#[tokio::test(flavor = "multi_thread")]
async fn child_agent_starts_a_task_and_exits() {
    let Ok(dir) = std::env::var("DROVER_TEST_CHILD_AGENT_DIR") else {
        return; // only meaningful as the child
    };
    let d = RawExecDriver::new(std::path::PathBuf::from(&dir));
    let task = task_raw_exec("survivor", "/bin/sleep", &["300"]);
    let mut alloc =
        drover_runtime::testutil::alloc("survive", "node-raw_exec_outlives", vec![task]);
    alloc.id = "survivor-alloc".into();
    let node = drover_runtime::driver::NodeEnv {
        node_id: "node-raw_exec_outlives".into(),
        ..Default::default()
    };
    let dirs =
        drover_runtime::driver::TaskDirs::new(std::path::Path::new(&dir), &alloc.id, "survivor");
    dirs.create().expect("dirs");
    let ctx = drover_runtime::driver::TaskCtx {
        alloc: std::sync::Arc::new(alloc.clone()),
        task: alloc.tasks[0].clone(),
        node: std::sync::Arc::new(node),
        dirs,
        replaces: None,
    };
    let h = d.start_task(&ctx).await.expect("start");
    println!("TASK_PID={}", h.id);
    // The "agent" exits now, with its task still running.
    std::process::exit(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_task_outlives_the_agent() {
    let t = Cleanup::new("raw_exec_outlives");
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_agent_starts_a_task_and_exits",
            "--nocapture",
        ])
        .env("DROVER_TEST_CHILD_AGENT_DIR", t.data_path())
        .output()
        .expect("child agent");
    let text = String::from_utf8_lossy(&out.stdout);
    let pid = text
        .lines()
        .find_map(|l| l.strip_prefix("TASK_PID="))
        .unwrap_or_else(|| panic!("child printed no pid: {text}"))
        .trim()
        .to_string();
    // The agent is gone; its task is not, and a new agent adopts it.
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "task died with the agent"
    );
    let d = RawExecDriver::new(t.data_path().to_path_buf());
    let found = d
        .recover_tasks("node-raw_exec_outlives")
        .await
        .expect("recover");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, pid);
    assert_eq!(
        d.inspect_task(&found[0]).await.expect("inspect"),
        TaskStatus::Running
    );
    d.stop_task(&found[0], Duration::from_secs(2), "SIGTERM")
        .await
        .expect("stop");
    let gone = common::poll(Duration::from_secs(5), || async {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")))
        .then_some(())
    })
    .await;
    assert!(gone.is_some(), "stopped");
    d.destroy_task(&found[0], true).await.expect("destroy");
}
