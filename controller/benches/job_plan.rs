//! `drover job plan` over a directory of 1,000 jobs (the target: under 1 s), timed as a user
//! runs it: the release binary, offline against an agent's state holding those 1,000 jobs
//! with their allocations (10 files edited, 10 removed), and against an empty cluster.
//! Prints figures; it is not a pass/fail test.
//!
//! `cargo bench -p drover-controller --bench job_plan`

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::server::{Server, ServerConfig};
use drover::state::{JobSource, Store};
use drover::structs::{EvalStatus, Node, mock};

const JOBS: usize = 1_000;
const EDITED: usize = 10;
const REMOVED: usize = 10;
const RUNS: usize = 5;

fn job(i: usize, image_minor: usize) -> String {
    format!(
        r#"job "web-{i}" {{
  datacenters = ["dc1"]

  group "web" {{
    count = {count}

    network {{
      port "http" {{
        to = 80
      }}
    }}

    task "api" {{
      driver = "docker"
      config {{
        image = "traefik/whoami:v1.{image_minor}"
        ports = ["http"]
      }}
      env {{
        INSTANCE = "{i}"
      }}
      resources {{
        cpu    = 100
        memory = 64
      }}
    }}
  }}
}}
"#,
        count = 1 + i % 2,
    )
}

/// An agent's state dir holding every job of `dir`, registered from its file and placed.
fn agent_state(dir: &Path, state: &Path) {
    let store = Arc::new(Store::open(&state.join("state.db")).expect("store"));
    let server = Server::with_store(store.clone(), ServerConfig::new(state)).expect("server");
    let mut info = mock::node_info();
    // Room for every allocation: the figure is about planning, not about a full node.
    info.cpu_mhz = 1_000_000;
    info.memory_mb = 1_000_000;
    store.upsert_node(Node::from_info(info, 0)).expect("node");
    for i in 0..JOBS {
        let path = dir.join(format!("web-{i}.nomad"));
        let parsed = drover::jobspec::parse_file(&path, &Default::default()).expect("parses");
        server
            .register_job(parsed.job, JobSource::File(path))
            .expect("register");
    }
    for eval in store.evals_by_status(EvalStatus::Pending).expect("evals") {
        drover::worker::process(&store, &eval).expect("plan");
    }
}

fn time_plan(args: &[&str]) -> (Vec<Duration>, Option<i32>) {
    let mut times = Vec::new();
    let mut code = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("drover runs");
        times.push(start.elapsed());
        code = status.code();
    }
    times.sort();
    (times, code)
}

fn report(what: &str, (times, code): (Vec<Duration>, Option<i32>)) {
    println!(
        "{what}: median {:.0} ms, min {:.0} ms, max {:.0} ms over {RUNS} runs (exit {code:?})",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument other than ours means "not this one".
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && a != "job_plan")
    {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("jobs");
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::create_dir_all(&state).expect("mkdir");
    for i in 0..JOBS {
        std::fs::write(dir.join(format!("web-{i}.nomad")), job(i, i % 10)).expect("write");
    }
    let setup = Instant::now();
    agent_state(&dir, &state);
    println!(
        "setup: {JOBS} jobs registered and placed in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    // The pull request: a few images bumped, a few files deleted.
    for i in 0..EDITED {
        std::fs::write(dir.join(format!("web-{i}.nomad")), job(i, 99)).expect("write");
    }
    for i in JOBS - REMOVED..JOBS {
        std::fs::remove_file(dir.join(format!("web-{i}.nomad"))).expect("rm");
    }
    let (d, s) = (dir.to_str().expect("utf-8"), state.to_str().expect("utf-8"));
    report(
        &format!(
            "job plan -data-dir ({} files, {EDITED} edited, {REMOVED} removed, {JOBS} jobs running)",
            JOBS - REMOVED
        ),
        time_plan(&["job", "plan", "-data-dir", s, d]),
    );
    report(
        "job plan -data-dir -json (same)",
        time_plan(&["job", "plan", "-data-dir", s, "-json", d]),
    );
    report(
        &format!(
            "job plan -offline ({} files, empty cluster)",
            JOBS - REMOVED
        ),
        time_plan(&["job", "plan", "-offline", d]),
    );
    agent_side(&dir, &state);
}

/// What an agent does for `drover job plan DIR` against it: one `Server::plan_job` per file
/// (the handler of `PUT /v1/job/:id/plan`, without HTTP), on the same state.
fn agent_side(dir: &Path, state: &Path) {
    let store = Arc::new(Store::open(&state.join("state.db")).expect("store"));
    let server = Server::with_store(store, ServerConfig::new(state)).expect("server");
    let mut jobs = Vec::new();
    for i in 0..JOBS - REMOVED {
        let path = dir.join(format!("web-{i}.nomad"));
        jobs.push(
            drover::jobspec::parse_file(&path, &Default::default())
                .expect("parses")
                .job,
        );
    }
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut changed = 0;
        for job in &jobs {
            changed += usize::from(server.plan_job(job, false).expect("plan").changed);
        }
        times.push(start.elapsed());
        assert_eq!(changed, EDITED);
    }
    times.sort();
    report(
        &format!("agent side: {} x Server::plan_job", JOBS - REMOVED),
        (times, None),
    );
}
