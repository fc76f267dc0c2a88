//! Shared setup for the integration tests against the real Docker engine: task contexts on a
//! temporary data dir, a drop guard that removes every container a test created (by its
//! `drover.test` label, even when the test panics), and deadline polling.

#![allow(dead_code)]

pub mod server;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_runtime::driver::{NodeEnv, TaskCtx, TaskDirs};
use drover_runtime::spec::{AllocSpec, DockerConfig, Task, TaskConfig};

pub const IMAGE: &str = "drover-test/busybox:latest";

/// Removes the test's containers and processes when dropped.
pub struct Cleanup {
    pub test: String,
    pub data_dir: tempfile::TempDir,
}

impl Cleanup {
    pub fn new(test: &str) -> Cleanup {
        remove_labelled(test);
        Cleanup {
            test: test.to_string(),
            data_dir: tempfile::tempdir().expect("a temporary data dir"),
        }
    }

    pub fn node(&self) -> NodeEnv {
        NodeEnv {
            node_id: format!("node-{}", self.test),
            name: "test".into(),
            datacenter: "dc1".into(),
            region: "global".into(),
            node_class: String::new(),
            node_pool: "default".into(),
            address: "127.0.0.1".into(),
            ..NodeEnv::default()
        }
    }

    /// A docker task of the busybox image, labelled for this test.
    pub fn docker_task(&self, name: &str, command: &str, args: &[&str]) -> Task {
        let mut task = drover_runtime::testutil::task_docker(name, IMAGE);
        if let TaskConfig::Docker(c) = &mut task.config {
            *c = DockerConfig {
                image: IMAGE.into(),
                command: Some(command.into()),
                args: args.iter().map(|s| s.to_string()).collect(),
                labels: [("drover.test".to_string(), self.test.clone())].into(),
                ..DockerConfig::default()
            };
        }
        task.resources.memory = 32;
        task.kill_timeout = Duration::from_secs(2);
        task
    }

    pub fn alloc(&self, tasks: Vec<Task>) -> AllocSpec {
        drover_runtime::testutil::alloc(&self.test.replace('_', "-"), &self.node().node_id, tasks)
    }

    pub fn ctx(&self, alloc: &AllocSpec, task: &str) -> TaskCtx {
        let t = alloc
            .tasks
            .iter()
            .find(|t| t.name == task)
            .expect("task in alloc")
            .clone();
        let dirs = TaskDirs::new(self.data_dir.path(), &alloc.id, task);
        dirs.create().expect("task dirs");
        TaskCtx {
            alloc: Arc::new(alloc.clone()),
            task: t,
            node: Arc::new(self.node()),
            dirs,
            replaces: None,
        }
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_labelled(&self.test);
        kill_raw_exec(self.data_dir.path());
    }
}

/// Kills the process group of every raw_exec task with a pid file under `data_dir` that is
/// still the same process (same start time): a pid file outlives its process, and its pid may
/// since belong to anything else on the machine.
pub fn kill_raw_exec(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("client").join("raw_exec")) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let (Some(pid), Some(ticks)) = (
            v.get("pid").and_then(|p| p.as_i64()),
            v.get("start_ticks").and_then(|p| p.as_u64()),
        ) else {
            continue;
        };
        if pid <= 1 || ticks == 0 || proc_start_ticks(pid) != Some(ticks) {
            continue;
        }
        let _ = std::process::Command::new("kill")
            .args(["-9", &format!("-{pid}")])
            .output();
    }
}

/// Field 22 of `/proc/<pid>/stat`.
fn proc_start_ticks(pid: i64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `docker rm -f` every container labelled `drover.test=<test>` or owned by the test's node.
pub fn remove_labelled(test: &str) {
    for filter in [
        format!("label=drover.test={test}"),
        format!("label=drover.node=node-{test}"),
    ] {
        let out = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output();
        if let Ok(out) = out {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
    }
}

/// `docker rm -f <id>`, as an operator would.
pub fn docker_rm_f(id: &str) {
    let out = std::process::Command::new("docker")
        .args(["rm", "-f", id])
        .output()
        .expect("docker CLI");
    assert!(out.status.success(), "docker rm -f failed: {out:?}");
}

/// Polls `f` until it returns `Some` or `deadline` passes.
pub async fn poll<T, F, Fut>(deadline: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One HTTP/1.0 GET to 127.0.0.1:port; the status line when something answered.
pub async fn http_get(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    let mut s = tokio::time::timeout(Duration::from_millis(500), connect)
        .await
        .ok()?
        .ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_millis(500), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    text.starts_with("HTTP/1.")
        .then(|| text.lines().next().unwrap_or_default().to_string())
}

/// `docker inspect -f <format> <id>`.
pub fn docker_inspect(id: &str, format: &str) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(["inspect", "-f", format, id])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Logs to the test's output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
