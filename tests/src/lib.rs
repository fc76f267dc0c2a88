//! Helpers for drover's end-to-end tests: find the `drover` binary built for this test run and
//! run it like a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `drover` binary of this build (`DROVER_BIN` overrides), built first if it is missing.
pub fn drover_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DROVER_BIN") {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps; the binary one level up.
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let bin = profile_dir.join("drover");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "drover-controller", "--bin", "drover"])
            .current_dir(repo())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the drover binary failed");
    }
    bin
}

/// Runs `drover ARGS…` in `dir` and returns its output.
pub fn drover(dir: &Path, args: &[&str]) -> Output {
    Command::new(drover_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the drover binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A `drover agent` started for one test, on its own loopback address so several tests'
/// agents (and their tasks' static ports) never collide: a dev agent ([`TestAgent::start`]),
/// or a server-only or client-only agent from the seed's agent files
/// ([`TestAgent::server`], [`TestAgent::client`]). Killed, and its node's containers removed,
/// when dropped.
pub struct TestAgent {
    child: Option<std::process::Child>,
    /// Where its HTTP API answers (and, unless [`TestAgent::client_bound`] said otherwise,
    /// its `-bind` address).
    pub ip: String,
    /// Its `-bind` address.
    bind: String,
    pub data_dir: tempfile::TempDir,
    pub manifests: PathBuf,
    /// The node's id, known once the agent answers; its containers carry it as `drover.node`.
    pub node_id: String,
    extra_args: Vec<String>,
    /// Set in the agent's environment on every (re)start, e.g. `DOCKER_HOST`.
    envs: Vec<(String, String)>,
    kind: Kind,
}

/// How a [`TestAgent`] is started.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// `drover agent -dev`.
    Dev,
    /// `drover agent -config …` with these files, in order; `server`: the agent runs the
    /// server only (no node of its own).
    Config { files: Vec<PathBuf>, server: bool },
}

impl TestAgent {
    /// Starts a dev agent bound to `ip` (e.g. "127.0.0.12") and waits until its API answers.
    pub fn start(ip: &str, extra_args: &[&str]) -> TestAgent {
        TestAgent::start_with_env(ip, extra_args, &[])
    }

    /// Like [`TestAgent::start`], with `envs` added to the agent's environment (kept for
    /// restarts).
    pub fn start_with_env(ip: &str, extra_args: &[&str], envs: &[(&str, &str)]) -> TestAgent {
        TestAgent::start_prepared(ip, extra_args, envs, |_| {})
    }

    /// Like [`TestAgent::start_with_env`], once `prepare` has been given the path of the
    /// agent's `-data-dir` (not created yet), e.g. to put it on a filesystem of its own.
    pub fn start_prepared(
        ip: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> TestAgent {
        let data_dir = tempfile::tempdir().expect("tempdir");
        let manifests = data_dir.path().join("manifests");
        std::fs::create_dir(&manifests).expect("mkdir manifests");
        prepare(&data_dir.path().join("data"));
        let mut a = TestAgent {
            child: None,
            ip: ip.to_string(),
            bind: ip.to_string(),
            data_dir,
            manifests,
            node_id: String::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            kind: Kind::Dev,
        };
        a.spawn();
        a
    }

    /// A server-only agent from the seed's `server.hcl`, plus `extra` agent HCL (e.g. a short
    /// heartbeat TTL, a join token), bound to `ip` with its own data dir. Its RPC port is
    /// [`TestAgent::rpc_addr`]; job files dropped with [`TestAgent::drop_job`] are watched.
    pub fn server(ip: &str, extra: &str, envs: &[(&str, &str)]) -> TestAgent {
        TestAgent::from_config(ip, "server.hcl", &[extra], envs, true)
    }

    /// A client-only agent from the seed's `client.hcl` joining `servers` (`host:port`), plus
    /// `extra` agent HCL, bound to `ip` (its tasks' ports bind there) with its own data dir.
    pub fn client(ip: &str, servers: &[String], extra: &str, envs: &[(&str, &str)]) -> TestAgent {
        let list: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
        let join = format!("client {{\n  servers = [{}]\n}}\n", list.join(", "));
        TestAgent::from_config(ip, "client.hcl", &[&join, extra], envs, false)
    }

    /// Like [`TestAgent::client`], bound to `bind` (e.g. `0.0.0.0`) with its HTTP API on `ip`
    /// (`addresses { http }`), so the API stays on loopback whatever the bind address.
    pub fn client_bound(
        bind: &str,
        ip: &str,
        servers: &[String],
        extra: &str,
        envs: &[(&str, &str)],
    ) -> TestAgent {
        let list: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
        let join = format!(
            "addresses {{\n  http = {ip:?}\n}}\nclient {{\n  servers = [{}]\n}}\n",
            list.join(", ")
        );
        TestAgent::from_config_bound(bind, ip, "client.hcl", &[&join, extra], envs, false)
    }

    fn from_config(
        ip: &str,
        seed_file: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
        server: bool,
    ) -> TestAgent {
        TestAgent::from_config_bound(ip, ip, seed_file, extra, envs, server)
    }

    fn from_config_bound(
        bind: &str,
        ip: &str,
        seed_file: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
        server: bool,
    ) -> TestAgent {
        let data_dir = tempfile::tempdir().expect("tempdir");
        let manifests = data_dir.path().join("manifests");
        std::fs::create_dir(&manifests).expect("mkdir manifests");
        let mut files = vec![repo().join("tests/fixtures/seed").join(seed_file)];
        for (i, hcl) in extra
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.trim().is_empty())
        {
            let f = data_dir.path().join(format!("extra-{i}.hcl"));
            std::fs::write(&f, hcl).expect("write agent config");
            files.push(f);
        }
        let mut a = TestAgent {
            child: None,
            ip: ip.to_string(),
            bind: bind.to_string(),
            data_dir,
            manifests,
            node_id: String::new(),
            extra_args: vec![],
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            kind: Kind::Config { files, server },
        };
        a.spawn();
        a
    }

    /// The agent's node name: `drover-<ip>` for agents started from config files.
    pub fn name(&self) -> String {
        format!("drover-{}", self.ip)
    }

    /// The RPC port clients join on (`host:4647`).
    pub fn rpc_addr(&self) -> String {
        format!("{}:4647", self.ip)
    }

    /// The agent process's id while it runs (benchmarks read its /proc status).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    pub fn addr(&self) -> String {
        format!("http://{}:4646", self.ip)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.path().join("agent.log"))
            .expect("agent log");
        let err = log.try_clone().expect("agent log");
        let data = self.data_dir.path().join("data");
        let mut cmd = Command::new(drover_bin());
        cmd.arg("agent");
        let server_only = match &self.kind {
            Kind::Dev => {
                cmd.arg("-dev");
                false
            }
            Kind::Config { files, server } => {
                for f in files {
                    cmd.arg("-config").arg(f);
                }
                cmd.args(["-node", &self.name()]);
                *server
            }
        };
        cmd.args(["-bind", &self.bind, "-data-dir"]).arg(&data);
        if self.kind == Kind::Dev || server_only {
            cmd.arg("-manifests").arg(&self.manifests);
        }
        cmd.args(&self.extra_args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdout(log)
            .stderr(err);
        self.child = Some(cmd.spawn().expect("the drover agent starts"));
        if server_only {
            self.wait_for_server();
            return;
        }
        // The API that answers must be this agent's (its node id is in this data dir): another
        // agent on the same address would answer for it, and this one would then drive (and
        // on drop clean up) the wrong node.
        let node_id_file = data.join("client").join("client").join("node-id");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mine = std::fs::read_to_string(&node_id_file).unwrap_or_default();
            let answers = self.get("/v1/agent/self").ok().and_then(|me| {
                me["stats"]["client"]["node_id"]
                    .as_str()
                    .map(str::to_string)
            });
            if answers.is_some_and(|id| !mine.trim().is_empty() && id == mine.trim()) {
                break;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "the agent on {} did not come up ({exited:?}); is another one using the address?\n--- agent log ---\n{}",
                    self.ip,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let me = self.get("/v1/agent/self").unwrap_or_default();
        self.node_id = me["stats"]["client"]["node_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!self.node_id.is_empty(), "the agent runs a client");
    }

    /// A server-only agent is up once the API that answers names this agent.
    fn wait_for_server(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let me = self.get("/v1/agent/self").ok();
            if me.is_some_and(|me| me["config"]["NodeName"] == self.name().as_str()) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "the server agent on {} did not come up ({exited:?}); is another one using the address?\n--- agent log ---\n{}",
                    self.ip,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes a job file into the watched directory (atomically, as git and editors do).
    pub fn drop_job(&self, name: &str, contents: &str) {
        let tmp = self.manifests.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).expect("write job file");
        std::fs::rename(&tmp, self.manifests.join(name)).expect("rename job file");
    }

    /// The containers this agent's node runs (by the `drover.node` label).
    pub fn containers(&self) -> Vec<String> {
        containers(&format!("drover.node={}", self.node_id))
    }

    /// The containers of this agent's node with their state and allocation.
    pub fn container_infos(&self) -> Vec<ContainerInfo> {
        container_infos(&format!("drover.node={}", self.node_id))
    }

    /// The pids of this agent's raw_exec tasks, from the driver's pid files in the data dir.
    pub fn raw_exec_pids(&self) -> Vec<i32> {
        fn find(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    find(&p, out);
                } else if p.parent().is_some_and(|d| d.ends_with("raw_exec"))
                    && p.extension().is_some_and(|x| x == "json")
                {
                    out.push(p);
                }
            }
        }
        let mut files = vec![];
        find(&self.data_dir.path().join("data"), &mut files);
        files.sort();
        files
            .iter()
            .filter_map(|f| {
                let v: serde_json::Value = serde_json::from_slice(&std::fs::read(f).ok()?).ok()?;
                v["pid"].as_i64().and_then(|p| i32::try_from(p).ok())
            })
            .filter(|p| *p > 1)
            .collect()
    }

    /// The allocations of a job, as the API lists them.
    pub fn allocs(&self, job: &str) -> Vec<serde_json::Value> {
        self.get(&format!("/v1/job/{job}/allocations"))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// The agent's log so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("agent.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Result<serde_json::Value, String> {
        let resp = ureq::get(&format!("{}{path}", self.addr()))
            .call()
            .map_err(|e| e.to_string())?;
        resp.into_body().read_json().map_err(|e| e.to_string())
    }

    /// Runs the `drover` CLI against this agent.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(drover_bin())
            .args(args)
            .env("DROVER_ADDR", self.addr())
            .env_remove("NOMAD_ADDR")
            .output()
            .expect("the drover binary runs")
    }

    /// Polls `check` every 50 ms until it holds, or panics with `what` and the agent's log.
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&TestAgent) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out after {timeout:?} waiting until {what}\n--- agent log ---\n{}",
            self.log()
        );
    }

    /// SIGTERM (or SIGKILL with `kill9`) and wait for the process to exit.
    pub fn stop(&mut self, kill9: bool) {
        if let Some(mut child) = self.child.take() {
            let sig = if kill9 { "-KILL" } else { "-TERM" };
            let _ = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the agent again after [`TestAgent::stop`], on the same data dir.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    pub fn restart(&mut self) {
        self.stop(false);
        self.spawn();
    }

    pub fn restart_after_kill9(&mut self) {
        self.stop(true);
        self.spawn();
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.stop(true);
        if !self.node_id.is_empty() {
            remove_containers(&format!("drover.node={}", self.node_id));
        }
        // raw_exec tasks run in their own process groups and outlive the agent by design.
        for pid in self.raw_exec_pids() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .output();
        }
    }
}

/// Removes every container carrying `label` (e.g. `drover.job=whoami-e2e`).
pub fn remove_containers(label: &str) {
    let ids = containers(label);
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .arg("rm")
            .arg("-f")
            .args(&ids)
            .output();
    }
}

/// IDs of the containers (running or not) carrying `label`.
pub fn containers(label: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label={label}"),
        ])
        .output()
        .expect("the docker CLI runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// One container as `docker ps -a` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// `running`, `exited`, `created` …
    pub state: String,
    /// Its `drover.alloc` label (empty when it has none).
    pub alloc: String,
}

/// The containers (running or not) carrying `label`, with their state and allocation.
pub fn container_infos(label: &str) -> Vec<ContainerInfo> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label={label}"),
            "--format",
            "{{.ID}} {{.State}} {{.Label \"drover.alloc\"}}",
        ])
        .output()
        .expect("the docker CLI runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(ContainerInfo {
                id: f.next()?.to_string(),
                state: f.next()?.to_string(),
                alloc: f.next().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// An HTTP GET to a task's port; the body when it answers 2xx.
pub fn http_get(url: &str) -> Option<String> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .new_agent();
    let resp = agent.get(url).call().ok()?;
    resp.into_body().read_to_string().ok()
}
