//! The raw_exec driver: a task as a plain process on the node, in its own session and process
//! group so it outlives the agent, with stdout/stderr in Nomad's log files
//! (`<alloc_dir>/alloc/logs/<task>.stdout.0`) and a pid file per task so a restarted agent
//! re-adopts it. Stopping signals the whole group: `kill_signal`, then SIGKILL after
//! `kill_timeout`.
//!
//! A process started by this agent is reaped by it and reports its real exit status. One
//! adopted after an agent restart is no longer its child: its end is noticed by polling, and
//! its exit status is unknown (reported as an error, so the restart policy applies).

use std::collections::HashMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::env::{PathView, interpolate, task_env};
use super::{Driver, DriverError, LogChunks, LogStream, TaskCtx, TaskDirs, TaskHandle, TaskStatus};
use crate::spec::{DriverInfo, ExitResult, TaskConfig};

/// How often a process this agent did not start is checked for having ended.
const ADOPTED_POLL: Duration = Duration::from_millis(200);

/// What a pid file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PidFile {
    handle: TaskHandle,
    node_id: String,
    pid: i32,
    /// `/proc/<pid>/stat` start time: tells our process from a later one given the same pid.
    start_ticks: u64,
}

pub struct RawExecDriver {
    data_dir: PathBuf,
    /// Exit statuses of the processes this agent started (and reaps), by pid.
    children: Mutex<HashMap<i32, watch::Receiver<Option<ExitResult>>>>,
}

impl RawExecDriver {
    pub fn new(data_dir: PathBuf) -> RawExecDriver {
        RawExecDriver {
            data_dir,
            children: Mutex::new(HashMap::new()),
        }
    }

    fn pid_dir(&self) -> PathBuf {
        self.data_dir.join("client").join("raw_exec")
    }

    fn pid_path(&self, alloc_id: &str, task: &str) -> PathBuf {
        self.pid_dir().join(format!("{alloc_id}.{task}.json"))
    }

    fn read_pid_file(&self, path: &Path) -> Option<PidFile> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn pid_of(&self, h: &TaskHandle) -> Option<PidFile> {
        self.read_pid_file(&self.pid_path(&h.alloc_id, &h.task))
            .filter(|p| p.handle.id == h.id)
    }

    fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DriverError + 'a {
        move |source| DriverError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Field 22 of `/proc/<pid>/stat`; `None` when the process is gone or a zombie.
fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the recorded process still runs. Pids 0 and 1 are never ours: signalling "group 1"
/// would be kill(-1), every process on the machine, so a damaged pid file must not get there.
fn alive(p: &PidFile) -> bool {
    p.pid > 1 && p.start_ticks != 0 && start_ticks(p.pid) == Some(p.start_ticks)
}

/// `SIGTERM`, `TERM`, `15` → the signal.
pub fn parse_signal(s: &str) -> Option<Signal> {
    let name = s.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    Some(match name {
        "TERM" | "15" => Signal::TERM,
        "KILL" | "9" => Signal::KILL,
        "INT" | "2" => Signal::INT,
        "HUP" | "1" => Signal::HUP,
        "QUIT" | "3" => Signal::QUIT,
        "USR1" | "10" => Signal::USR1,
        "USR2" | "12" => Signal::USR2,
        _ => return None,
    })
}

fn exit_of(status: std::process::ExitStatus) -> ExitResult {
    ExitResult {
        exit_code: status.code().unwrap_or(0),
        signal: status.signal().unwrap_or(0),
        oom_killed: false,
        err: None,
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl Driver for RawExecDriver {
    fn name(&self) -> &'static str {
        "raw_exec"
    }

    async fn fingerprint(&self) -> DriverInfo {
        DriverInfo {
            detected: true,
            healthy: true,
            health_description: "Healthy".into(),
            update_time: now_nanos(),
        }
    }

    #[tracing::instrument(skip_all, fields(alloc_id = %ctx.alloc.id, task = %ctx.task.name))]
    async fn start_task(&self, ctx: &TaskCtx) -> Result<TaskHandle, DriverError> {
        let TaskConfig::RawExec(cfg) = &ctx.task.config else {
            return Err(DriverError::InvalidConfig {
                alloc_id: ctx.alloc.id.clone(),
                task: ctx.task.name.clone(),
                field: "driver".into(),
                message: "the raw_exec driver runs only raw_exec tasks".into(),
            });
        };
        let pid_path = self.pid_path(&ctx.alloc.id, &ctx.task.name);
        // Already running for this allocation (the agent restarted): adopt it.
        if let Some(p) = self.read_pid_file(&pid_path)
            && alive(&p)
            && ctx.replaces.as_deref() != Some(p.handle.id.as_str())
        {
            return Ok(p.handle);
        }
        let env = task_env(ctx, PathView::Host);
        let interp = |s: &str| interpolate(s, &env, &ctx.node);
        let command = interp(&cfg.command);
        if command.is_empty() {
            return Err(DriverError::InvalidConfig {
                alloc_id: ctx.alloc.id.clone(),
                task: ctx.task.name.clone(),
                field: "config.command".into(),
                message: "must not be empty".into(),
            });
        }
        let dirs: &TaskDirs = &ctx.dirs;
        std::fs::create_dir_all(&dirs.logs_dir).map_err(Self::io("create", &dirs.logs_dir))?;
        let open = |stream: &str| {
            let path = dirs.logs_dir.join(format!("{}.{stream}.0", ctx.task.name));
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|source| DriverError::Io {
                    op: "open",
                    path,
                    source,
                })
        };
        let (stdout, stderr) = (open("stdout")?, open("stderr")?);
        let work_dir = cfg
            .work_dir
            .as_deref()
            .map(|w| PathBuf::from(interp(w)))
            .unwrap_or_else(|| dirs.task_dir.clone());
        let mut cmd = std::process::Command::new(&command);
        cmd.args(cfg.args.iter().map(|a| interp(a)))
            .envs(&env)
            .current_dir(&work_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent. A session
        // of its own detaches the task from the agent's terminal and process group, so it
        // survives the agent and can be signalled as a group.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd.spawn().map_err(|source| DriverError::Spawn {
            alloc_id: ctx.alloc.id.clone(),
            task: ctx.task.name.clone(),
            command: command.clone(),
            source,
        })?;
        let pid = child.id() as i32;
        let (tx, rx) = watch::channel(None);
        self.children
            .lock()
            .expect("children lock poisoned")
            .insert(pid, rx);
        // Reaping blocks: a thread per child, which also keeps zombies from piling up.
        std::thread::spawn(move || {
            let exit = match child.wait() {
                Ok(status) => exit_of(status),
                Err(e) => ExitResult {
                    err: Some(format!("failed to wait for the process: {e}")),
                    ..ExitResult::default()
                },
            };
            let _ = tx.send(Some(exit));
        });
        let handle = TaskHandle {
            driver: "raw_exec".into(),
            alloc_id: ctx.alloc.id.clone(),
            task: ctx.task.name.clone(),
            job_id: ctx.alloc.job_id.clone(),
            id: pid.to_string(),
            started_at: now_nanos(),
        };
        let record = PidFile {
            handle: handle.clone(),
            node_id: ctx.node.node_id.clone(),
            pid,
            start_ticks: start_ticks(pid).unwrap_or(0),
        };
        std::fs::create_dir_all(self.pid_dir()).map_err(Self::io("create", &pid_path))?;
        let bytes = serde_json::to_vec(&record).map_err(|e| DriverError::Io {
            op: "encode",
            path: pid_path.clone(),
            source: std::io::Error::other(e),
        })?;
        let tmp = pid_path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).map_err(Self::io("write", &tmp))?;
        std::fs::rename(&tmp, &pid_path).map_err(Self::io("write", &pid_path))?;
        tracing::debug!(pid, "process started");
        Ok(handle)
    }

    async fn wait_task(&self, handle: &TaskHandle) -> Result<ExitResult, DriverError> {
        let pid: i32 = handle.id.parse().unwrap_or(0);
        let own = self
            .children
            .lock()
            .expect("children lock poisoned")
            .get(&pid)
            .cloned();
        if let Some(mut rx) = own {
            let exit = rx
                .wait_for(|e| e.is_some())
                .await
                .map(|e| e.clone())
                .ok()
                .flatten();
            return Ok(exit.unwrap_or_else(|| ExitResult {
                err: Some("the process's reaper went away".into()),
                ..ExitResult::default()
            }));
        }
        let Some(record) = self.pid_of(handle) else {
            return Err(DriverError::TaskNotFound {
                alloc_id: handle.alloc_id.clone(),
                task: handle.task.clone(),
                id: handle.id.clone(),
            });
        };
        while alive(&record) {
            tokio::time::sleep(ADOPTED_POLL).await;
        }
        Ok(ExitResult {
            err: Some("exit status unknown: the process was adopted after an agent restart".into()),
            ..ExitResult::default()
        })
    }

    async fn stop_task(
        &self,
        handle: &TaskHandle,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        let Some(record) = self.pid_of(handle) else {
            return Ok(());
        };
        if !alive(&record) {
            return Ok(());
        }
        let sig = parse_signal(signal).ok_or_else(|| DriverError::InvalidConfig {
            alloc_id: handle.alloc_id.clone(),
            task: handle.task.clone(),
            field: "kill_signal".into(),
            message: format!("unknown signal {signal:?}"),
        })?;
        let Some(pgid) = Pid::from_raw(record.pid) else {
            return Ok(());
        };
        let send = |s: Signal| match rustix::process::kill_process_group(pgid, s) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(DriverError::Signal {
                alloc_id: handle.alloc_id.clone(),
                task: handle.task.clone(),
                pid: record.pid,
                source: e.into(),
            }),
        };
        send(sig)?;
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if !alive(&record) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        send(Signal::KILL)
    }

    async fn destroy_task(&self, handle: &TaskHandle, force: bool) -> Result<(), DriverError> {
        let path = self.pid_path(&handle.alloc_id, &handle.task);
        if let Some(record) = self.pid_of(handle) {
            if alive(&record) {
                if !force {
                    return Err(DriverError::InvalidConfig {
                        alloc_id: handle.alloc_id.clone(),
                        task: handle.task.clone(),
                        field: "destroy".into(),
                        message: format!("process {} is still running", record.pid),
                    });
                }
                if let Some(pgid) = Pid::from_raw(record.pid) {
                    let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
                }
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(DriverError::Io {
                        op: "remove",
                        path,
                        source,
                    });
                }
            }
        }
        if let Ok(pid) = handle.id.parse::<i32>() {
            // Keep the entry until the reaper is done so a late wait still gets the status.
            let mut children = self.children.lock().expect("children lock poisoned");
            if children.get(&pid).is_some_and(|rx| rx.borrow().is_some()) {
                children.remove(&pid);
            }
        }
        Ok(())
    }

    async fn recover_tasks(&self, node_id: &str) -> Result<Vec<TaskHandle>, DriverError> {
        let dir = self.pid_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => {
                return Err(DriverError::Io {
                    op: "read",
                    path: dir,
                    source,
                });
            }
        };
        let mut out: Vec<TaskHandle> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| self.read_pid_file(&e.path()))
            .filter(|p| p.node_id == node_id)
            .map(|p| p.handle)
            .collect();
        out.sort_by(|a, b| (&a.alloc_id, &a.task).cmp(&(&b.alloc_id, &b.task)));
        Ok(out)
    }

    async fn inspect_task(&self, handle: &TaskHandle) -> Result<TaskStatus, DriverError> {
        let pid: i32 = handle.id.parse().unwrap_or(0);
        if let Some(rx) = self
            .children
            .lock()
            .expect("children lock poisoned")
            .get(&pid)
        {
            return Ok(match rx.borrow().clone() {
                Some(exit) => TaskStatus::Exited(exit),
                None => TaskStatus::Running,
            });
        }
        match self.pid_of(handle) {
            Some(p) if alive(&p) => Ok(TaskStatus::Running),
            Some(_) => Ok(TaskStatus::Exited(ExitResult {
                err: Some("exit status unknown: the process ended while the agent was away".into()),
                ..ExitResult::default()
            })),
            None => Err(DriverError::TaskNotFound {
                alloc_id: handle.alloc_id.clone(),
                task: handle.task.clone(),
                id: handle.id.clone(),
            }),
        }
    }

    async fn logs(
        &self,
        handle: &TaskHandle,
        stream: LogStream,
        follow: bool,
        tail: Option<usize>,
    ) -> Result<LogChunks, DriverError> {
        let dirs = TaskDirs::new(&self.data_dir, &handle.alloc_id, &handle.task);
        let path = dirs
            .logs_dir
            .join(format!("{}.{}.0", handle.task, stream.as_str()));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(source) => {
                return Err(DriverError::Io {
                    op: "read",
                    path,
                    source,
                });
            }
        };
        let first = match tail {
            Some(n) => last_lines(&bytes, n).to_vec(),
            None => bytes.clone(),
        };
        let offset = bytes.len() as u64;
        if !follow {
            return Ok(Box::pin(futures_util::stream::iter([Ok(first)])));
        }
        // Following polls the file; Nomad's log API does the same on its rotated files.
        let s = futures_util::stream::unfold(
            (Some(first), offset, path),
            |(first, offset, path)| async move {
                if let Some(f) = first {
                    return Some((Ok(f), (None, offset, path)));
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    match std::fs::read(&path) {
                        Ok(b) if b.len() as u64 > offset => {
                            let chunk = b[offset as usize..].to_vec();
                            let next = b.len() as u64;
                            return Some((Ok(chunk), (None, next, path)));
                        }
                        Ok(_) => continue,
                        Err(source) => {
                            return Some((
                                Err(DriverError::Io {
                                    op: "read",
                                    path: path.clone(),
                                    source,
                                }),
                                (None, offset, path),
                            ));
                        }
                    }
                }
            },
        );
        Ok(Box::pin(s))
    }
}

/// The last `n` lines of `b`.
fn last_lines(b: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = b.strip_suffix(b"\n").unwrap_or(b);
    let mut seen = 0;
    for (i, c) in body.iter().enumerate().rev() {
        if *c == b'\n' {
            seen += 1;
            if seen == n {
                return &b[i + 1..];
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("SIGTERM"), Some(Signal::TERM));
        assert_eq!(parse_signal("int"), Some(Signal::INT));
        assert_eq!(parse_signal("9"), Some(Signal::KILL));
        assert_eq!(parse_signal("SIGWHAT"), None);
    }

    #[test]
    fn tail_takes_the_last_lines() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 5), b"a\nb\nc");
        assert_eq!(last_lines(b"a\n", 0), b"");
    }

    #[test]
    fn init_and_unknown_start_times_are_never_alive() {
        let h = TaskHandle {
            driver: "raw_exec".into(),
            alloc_id: "a".into(),
            task: "t".into(),
            job_id: "j".into(),
            id: "1".into(),
            started_at: 0,
        };
        let init = PidFile {
            handle: h.clone(),
            node_id: "n".into(),
            pid: 1,
            start_ticks: start_ticks(1).unwrap_or(1),
        };
        assert!(!alive(&init));
        let me = std::process::id() as i32;
        let unknown = PidFile {
            pid: me,
            start_ticks: 0,
            ..init
        };
        assert!(!alive(&unknown));
    }

    #[test]
    fn our_own_process_has_a_start_time() {
        let me = std::process::id() as i32;
        assert!(start_ticks(me).is_some());
        assert_eq!(start_ticks(i32::MAX), None);
    }
}
