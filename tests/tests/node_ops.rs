//! Node operations against a real `drover agent -dev`: `node eligibility -disable` makes a new
//! job fail placement with Nomad's words and `-enable` places it; `node drain -enable` stops the
//! node's allocations, finishes and leaves the node ineligible; a system job runs on the node;
//! `server members` lists the agent; a token-protected API refuses anonymous writes, and an
//! API beyond loopback without a token, or an RPC port without a join token, refuses to start. raw_exec sleepers keep it quick.
//! Addresses 127.0.2.1–127.0.2.4.

use std::time::Duration;

use drover_tests::{TestAgent, stderr, stdout};

fn sleeper(name: &str, job_type: &str, count: u32) -> String {
    format!(
        r#"job "{name}" {{
  datacenters = ["dc1"]
  type        = "{job_type}"
  group "s" {{
    count = {count}
    task "sleep" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["300"]
      }}
      resources {{
        cpu    = 10
        memory = 16
      }}
    }}
  }}
}}
"#
    )
}

fn write_job(a: &TestAgent, name: &str, contents: &str) -> String {
    let path = a.data_dir.path().join(format!("{name}.nomad"));
    std::fs::write(&path, contents).expect("write job");
    path.display().to_string()
}

/// The client registers its node just after the API starts answering.
fn started(ip: &str, args: &[&str], envs: &[(&str, &str)]) -> TestAgent {
    let a = TestAgent::start_with_env(ip, args, envs);
    a.wait_until(Duration::from_secs(10), "the node is ready", |a| {
        a.get(&format!("/v1/node/{}", a.node_id))
            .is_ok_and(|n| n["Status"] == "ready")
    });
    a
}

fn running(a: &TestAgent, job: &str) -> usize {
    a.allocs(job)
        .iter()
        .filter(|x| x["ClientStatus"] == "running")
        .count()
}

#[test]
fn an_ineligible_node_takes_no_work_until_it_is_eligible_again() {
    let a = started("127.0.2.1", &[], &[]);
    let prefix = &a.node_id[..8];

    let out = a.cli(&["node", "eligibility", "-disable", prefix]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!(
            "Node {:?} scheduling eligibility set: ineligible for scheduling",
            a.node_id
        )
    );
    let out = a.cli(&["node", "status"]);
    let row = stdout(&out);
    assert!(
        row.lines().next().is_some_and(|h| {
            h.split_whitespace().collect::<Vec<_>>()
                == [
                    "ID",
                    "Node",
                    "Pool",
                    "DC",
                    "Name",
                    "Class",
                    "Drain",
                    "Eligibility",
                    "Status",
                ]
        }),
        "{row}"
    );
    assert!(row.contains("ineligible"), "{row}");

    let file = write_job(&a, "sleeper", &sleeper("sleeper", "service", 1));
    let out = a.cli(&["job", "run", &file]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("failed to place 1 allocation")
            && text.contains("* No nodes were eligible for evaluation"),
        "{text}"
    );

    let out = a.cli(&["node", "eligibility", "-enable", &a.node_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("scheduling eligibility set: eligible for scheduling"),
        "{}",
        stdout(&out)
    );
    a.wait_until(
        Duration::from_secs(15),
        "the queued allocation is placed once the node is eligible",
        |a| running(a, "sleeper") == 1,
    );

    // Usage errors exit 1 with Nomad's words.
    let out = a.cli(&["node", "eligibility", &a.node_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Either the '-enable' or '-disable' flag must be set"),
        "{}",
        stderr(&out)
    );
    let out = a.cli(&["node", "eligibility", "-enable", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Identifier must contain at least two characters."),
        "{}",
        stderr(&out)
    );
}

#[test]
fn draining_the_node_stops_its_allocations_and_leaves_it_ineligible() {
    let a = started("127.0.2.2", &[], &[]);
    let svc = write_job(&a, "sleeper", &sleeper("sleeper", "service", 2));
    let out = a.cli(&["job", "run", &svc]);
    assert!(out.status.success(), "{}", stdout(&out));
    let sys = write_job(&a, "everywhere", &sleeper("everywhere", "system", 1));
    let out = a.cli(&["job", "run", &sys]);
    assert!(out.status.success(), "{}", stdout(&out));
    a.wait_until(
        Duration::from_secs(20),
        "two service allocations and the system one run",
        |a| running(a, "sleeper") == 2 && running(a, "everywhere") == 1,
    );
    let system = a.allocs("everywhere");
    assert_eq!(system[0]["NodeID"], a.node_id.as_str());
    assert_eq!(system[0]["Name"], "everywhere.s[0]");

    // One node: nothing can move, so the drain stops what runs here and completes; the
    // monitor prints Nomad's lines and returns once everything stopped.
    let out = a.cli(&[
        "node",
        "drain",
        "-enable",
        "-yes",
        "-deadline",
        "30s",
        &a.node_id,
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for want in [
        "Ctrl-C to stop monitoring: will not cancel the node drain".to_string(),
        format!("Node {:?} drain strategy set", a.node_id),
        "marked for migration".to_string(),
        format!(
            "Node {:?} has marked all allocations for migration",
            a.node_id
        ),
        format!("All allocations on node {:?} have stopped", a.node_id),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    assert_eq!(running(&a, "sleeper"), 0);
    assert_eq!(running(&a, "everywhere"), 0);
    assert!(a.raw_exec_pids().iter().all(|p| {
        // A stopped task's process is gone (or a zombie being reaped).
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
    }));
    let node = a.get(&format!("/v1/node/{}", a.node_id)).expect("node");
    assert_eq!(node["Drain"], false, "the drain completed: {node}");
    assert_eq!(node["SchedulingEligibility"], "ineligible");
    assert_eq!(node["LastDrain"]["Status"], "complete");
    let out = a.cli(&["job", "status", "sleeper"]);
    assert!(
        stdout(&out).contains("No nodes were eligible for evaluation"),
        "{}",
        stdout(&out)
    );

    // Disabling marks the node eligible again; the queued work comes back.
    let out = a.cli(&["node", "drain", "-disable", "-yes", &a.node_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("Node {:?} drain strategy unset", a.node_id)
    );
    a.wait_until(
        Duration::from_secs(20),
        "the service and the system job run again on the eligible node",
        |a| running(a, "sleeper") == 2 && running(a, "everywhere") == 1,
    );

    let out = a.cli(&["node", "drain", "-disable", "-deadline", "1m", &a.node_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("-disable can't be combined with flags configuring drain strategy"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn server_members_lists_the_agent() {
    let a = TestAgent::start("127.0.2.3", &["-node", "members-test"]);
    let out = a.cli(&["server", "members"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "Name",
            "Address",
            "Port",
            "Status",
            "Leader",
            "Raft",
            "Version",
            "Build",
            "Datacenter",
            "Region"
        ]
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            "members-test.global",
            "127.0.2.3",
            "4647",
            "alive",
            "true",
            "3",
            env!("CARGO_PKG_VERSION"),
            "dc1",
            "global"
        ]
    );
}

#[test]
fn writes_need_the_api_token_and_an_open_api_needs_one_to_start() {
    let a = started("127.0.2.4", &[], &[("DROVER_TOKEN", "e2e-s3cret")]);
    let file = write_job(&a, "sleeper", &sleeper("sleeper", "service", 1));
    let out = a.cli(&["job", "run", "-detach", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Permission denied (HTTP 403)"),
        "{}",
        stderr(&out)
    );
    let out = a.cli(&["node", "eligibility", "-disable", &a.node_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(a.log().contains("write refused"), "the refusal is logged");
    // Reads need no token.
    assert!(a.cli(&["node", "status"]).status.success());

    let out = a.cli(&["job", "run", "-detach", "-token", "e2e-s3cret", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    a.wait_until(Duration::from_secs(15), "the job runs", |a| {
        running(a, "sleeper") == 1
    });

    // An API on every interface with no token is refused before anything starts.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let open_agent = |envs: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(drover_tests::drover_bin());
        cmd.args([
            "agent",
            "-dev",
            "-bind",
            "0.0.0.0",
            "-http-port",
            "4699",
            "-data-dir",
        ])
        .arg(&data)
        .env_remove("DROVER_TOKEN")
        .env_remove("DROVER_JOIN_TOKEN")
        .envs(envs.iter().copied());
        cmd.output().expect("drover runs")
    };
    let out = open_agent(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("beyond loopback") && err.contains("http_api_token"),
        "{err}"
    );

    // With an API token but no join token, the open RPC port is refused the same way.
    let out = open_agent(&[("DROVER_TOKEN", "s3cret")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("RPC port") && err.contains("beyond loopback") && err.contains("join_token"),
        "{err}"
    );
}
