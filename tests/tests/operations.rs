//! Operating drover like a Linux daemon, end to end: the files in `deploy/` (systemd unit,
//! Prometheus scrape config and alerting rules, Grafana dashboard) checked by the tools that
//! read them, a real Prometheus scraping a dev agent, systemd's notify protocol on a socket
//! the test binds, and SIGHUP reloading an agent without touching its containers.
//!
//! Needs Debian's `prometheus` (promtool, prometheus) and `systemd` (systemd-analyze)
//! packages; `scripts/test` installs them when missing. Agents bind 127.0.4.x.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_tests::{TestAgent, drover_bin, http_get, repo};

fn deploy(name: &str) -> PathBuf {
    repo().join("deploy").join(name)
}

fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is missing: run scripts/test, which installs what the tests need")
        })
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("the tool runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn manifest(name: &str) -> String {
    std::fs::read_to_string(repo().join("manifests").join(name)).expect("example job")
}

/// The metric names an exposition defines (`# TYPE name kind`).
fn exposed_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Metric names a PromQL expression refers to (`drover_…`, `process_…`), with a histogram's
/// `_bucket`/`_sum`/`_count` mapped to its family.
fn referenced_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = (expr[i..].starts_with("drover_") || expr[i..].starts_with("process_"))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(expr.len(), |e| i + e);
            let mut name = expr[i..end].to_string();
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix)
                    && base.ends_with("_seconds")
                {
                    name = base.to_string();
                }
            }
            out.push(name);
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn the_systemd_unit_verifies_and_its_exposure_is_at_most_2() {
    let analyze = tool("systemd-analyze");
    // `verify` insists that ExecStart's binary exists: point it at this build's drover.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(deploy("drover.service")).expect("read the unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/drover agent "));
    let unit = unit.replace("/usr/local/bin/drover", &drover_bin().display().to_string());
    let copy = dir.path().join("drover.service");
    std::fs::write(&copy, unit).expect("write the unit");
    let (ok, said) = run(Command::new(&analyze).args(["verify"]).arg(&copy));
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    let (ok, said) = run(Command::new(&analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(deploy("drover.service")));
    assert!(ok, "systemd-analyze security: {said}");
    let exposure: f64 = said
        .lines()
        .find_map(|l| l.split("Overall exposure level for drover.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{said}"));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{said}");
    // What drover needs must survive the hardening.
    for needed in [
        "SupplementaryGroups=docker",
        "StateDirectory=drover",
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/sh -c \"kill -HUP ${MAINPID}\"",
        "KillMode=process",
    ] {
        assert!(
            std::fs::read_to_string(deploy("drover.service"))
                .expect("read")
                .contains(needed),
            "the unit lost {needed}"
        );
    }
}

#[test]
fn the_prometheus_files_pass_promtool() {
    let promtool = tool("promtool");
    let (ok, said) = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(deploy("alerts.yml")));
    assert!(ok, "promtool check rules: {said}");
    assert!(said.contains("SUCCESS"), "{said}");
    // The scrape config loads alerts.yml from its own directory.
    let (ok, said) = run(Command::new(&promtool)
        .args(["check", "config"])
        .arg(deploy("prometheus.yml")));
    assert!(ok, "promtool check config: {said}");
    // The alerts fire when they should, with the labels and text they promise.
    let (ok, said) = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(deploy("alerts_test.yml")));
    assert!(ok, "promtool test rules: {said}");
}

/// A dev agent's `/metrics` and `/v1/metrics?format=prometheus` are promtool-clean, define
/// every documented name, and every name the dashboard and the alerts use exists.
#[test]
fn metrics_endpoints_are_clean_and_the_dashboard_uses_only_real_names() {
    let a = TestAgent::start("127.0.4.20", &[]);
    a.drop_job("broken.nomad", "job \"broken\" {\n  group \"g\" {\n");
    // A raw_exec task that exits 3 at once, restarted 100 ms later: a restart with a reason.
    a.drop_job(
        "crasher.nomad",
        r#"job "crasher" {
  group "g" {
    restart {
      attempts = 10
      interval = "1m"
      delay    = "100ms"
      mode     = "delay"
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "exit 3"]
      }
    }
  }
}
"#,
    );
    // Two allocations that keep running: the job summary's series.
    a.drop_job(
        "sleeper.nomad",
        r#"job "sleeper" {
  group "g" {
    count = 2
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["300"]
      }
    }
  }
}
"#,
    );
    a.wait_until(
        Duration::from_secs(15),
        "the broken file, the crashing task and the running sleepers show in /metrics",
        |a| {
            http_get(&format!("{}/metrics", a.addr())).is_some_and(|t| {
                t.contains("drover_manifest_files{state=\"error\"} 1")
                    && t.contains(
                        "drover_task_restarts_total{job_id=\"crasher\",reason=\"error\",task=\"t\"}",
                    )
                    && t.contains(
                        "drover_job_group_allocations{client_status=\"running\",job_id=\"sleeper\",task_group=\"g\"} 2",
                    )
            })
        },
    );
    let text = http_get(&format!("{}/metrics", a.addr())).expect("/metrics answers");
    let nomad = http_get(&format!("{}/v1/metrics?format=prometheus", a.addr()))
        .expect("/v1/metrics?format=prometheus answers");
    for (what, body) in [
        ("/metrics", &text),
        ("/v1/metrics?format=prometheus", &nomad),
    ] {
        let mut child = Command::new(tool("promtool"))
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("promtool ends");
        let said = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool check metrics on {what}: {said}"
        );
    }
    let names = exposed_names(&text);
    for documented in [
        "drover_reconcile_total",
        "drover_reconcile_duration_seconds",
        "drover_manifest_files",
        "drover_manifest_errors_total",
        "drover_jobs",
        "drover_allocations",
        "drover_task_restarts_total",
        "drover_nodes",
        "drover_placement_failures_total",
        "drover_job_group_desired",
        "drover_job_group_allocations",
        "drover_workqueue_depth",
        "drover_last_successful_resync_timestamp_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(
            names.iter().any(|n| n == documented),
            "{documented} missing from /metrics:\n{text}"
        );
    }
    let errors: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("drover_manifest_errors_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(errors >= 1.0, "{text}");
    assert!(text.contains("drover_nodes{status=\"ready\"} 1"), "{text}");
    // Desired against running, per job and group; zero counts are left out.
    for line in [
        "drover_job_group_desired{job_id=\"sleeper\",task_group=\"g\"} 2",
        "drover_job_group_desired{job_id=\"crasher\",task_group=\"g\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}:\n{text}");
    }
    assert!(
        !text.contains("client_status=\"lost\",job_id=\"sleeper\""),
        "{text}"
    );

    // Nomad's JSON without format=.
    let json = a.get("/v1/metrics").expect("/v1/metrics answers JSON");
    assert!(
        json["Gauges"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["Name"] == "drover_nodes"
                && g["Labels"]["status"] == "ready"
                && g["Value"] == 1.0)),
        "{json}"
    );

    // The dashboard: valid JSON, every panel query on an existing name.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana-dashboard.json")).expect("read the dashboard"),
    )
    .expect("the dashboard is valid JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut used = 0;
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let refs = referenced_names(expr);
            assert!(
                !refs.is_empty(),
                "panel {:?} queries no drover metric",
                p["title"]
            );
            for r in refs {
                assert!(
                    names.contains(&r),
                    "panel {:?} uses {r}, which /metrics does not serve",
                    p["title"]
                );
                used += 1;
            }
        }
    }
    assert!(used >= 10);
    // The alerts, likewise.
    let alerts = std::fs::read_to_string(deploy("alerts.yml")).expect("read alerts");
    for line in alerts
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
    {
        for r in referenced_names(line) {
            assert!(names.contains(&r), "alerts.yml uses {r}, not served");
        }
    }
}

/// A process killed (and waited for) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn prom_query(base: &str, q: &str) -> Option<f64> {
    let url = format!(
        "{base}/api/v1/query?query={}",
        q.replace(' ', "%20")
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace('(', "%28")
            .replace(')', "%29")
    );
    let body = http_get(&url)?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"].as_array()?.iter().find_map(|r| {
        r["value"]
            .as_array()
            .and_then(|p| p.get(1))
            .and_then(|s| s.as_str())
            .and_then(|s| s.parse().ok())
    })
}

/// deploy/prometheus.yml (and its alerts) in a real Prometheus, scraping a dev agent each
/// second: after whoami's container is removed with `docker rm -f`, the restart is counted.
#[test]
fn a_real_prometheus_sees_the_restart_of_a_removed_container() {
    let started = Instant::now();
    let a = TestAgent::start("127.0.4.30", &[]);
    a.drop_job("whoami.nomad", &manifest("whoami.nomad"));
    let url = format!("http://{}:8080/", a.ip);
    a.wait_until(Duration::from_secs(30), "whoami answers", |_| {
        http_get(&url).is_some_and(|b| b.starts_with("I'm "))
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let target = format!("{}:4646", a.ip);
    let config = std::fs::read_to_string(deploy("prometheus.yml")).expect("read");
    let generated = config
        .replace("127.0.0.1:4646", &target)
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    assert!(generated.contains(&target) && generated.contains("scrape_interval: 1s"));
    std::fs::write(dir.path().join("prometheus.yml"), generated).expect("write");
    std::fs::copy(deploy("alerts.yml"), dir.path().join("alerts.yml")).expect("copy");
    let listen = "127.0.4.31:9090";
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let _prom = Killed(
        Command::new(tool("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("prometheus starts"),
    );
    let base = format!("http://{listen}");
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    let first = a.containers();
    assert_eq!(first.len(), 1, "{first:?}");
    let out = Command::new("docker")
        .args(["rm", "-f", &first[0]])
        .output()
        .expect("docker rm");
    assert!(out.status.success());

    let deadline = Instant::now() + Duration::from_secs(25);
    let (mut restarts, mut up) = (None, None);
    while Instant::now() < deadline {
        restarts = prom_query(&base, "sum(drover_task_restarts_total{job_id=\"whoami\"})");
        up = prom_query(&base, "up{job=\"drover\"}");
        if restarts.is_some_and(|r| r >= 1.0) && up == Some(1.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        restarts.is_some_and(|r| r >= 1.0) && up == Some(1.0),
        "drover_task_restarts_total = {restarts:?}, up = {up:?}\n--- prometheus ---\n{}\n--- agent ---\n{}",
        prom_log(),
        a.log()
    );
    // The restart carries why it happened.
    assert_eq!(
        prom_query(
            &base,
            "drover_task_restarts_total{job_id=\"whoami\",task=\"api\",reason=\"removed\"}"
        ),
        Some(1.0)
    );
    eprintln!("real Prometheus test took {:?}", started.elapsed());
}

/// Reads datagrams from `sock` until `want` holds for what arrived, or `timeout`.
fn notifications(sock: &UnixDatagram, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !want(&got) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
            got.push('\n');
        }
    }
    got
}

/// systemd's notify protocol, with the test in systemd's place: READY=1 with a STATUS= line
/// once the agent runs, then WATCHDOG=1 pings (WATCHDOG_USEC is set).
#[test]
fn the_agent_tells_a_notify_socket_ready_status_and_watchdog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let path_s = path.display().to_string();
    let mut a = TestAgent::start_with_env(
        "127.0.4.40",
        &[],
        &[("NOTIFY_SOCKET", &path_s), ("WATCHDOG_USEC", "4000000")],
    );
    let got = notifications(&sock, Duration::from_secs(15), |g| {
        g.contains("READY=1") && g.contains("WATCHDOG=1")
    });
    assert!(
        got.contains("READY=1"),
        "no READY=1 in {got:?}\n{}",
        a.log()
    );
    assert!(
        got.contains("WATCHDOG=1"),
        "no WATCHDOG=1 in {got:?}\n{}",
        a.log()
    );
    let status = got
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= in {got:?}"));
    assert!(
        status.contains("jobs")
            && status.contains("allocations running")
            && status.contains("file errors"),
        "{status}"
    );
    // Pings keep coming while the loops turn.
    let more = notifications(&sock, Duration::from_secs(5), |g| g.contains("WATCHDOG=1"));
    assert!(more.contains("WATCHDOG=1"), "{more:?}");

    a.stop(false);
    let bye = notifications(&sock, Duration::from_secs(2), |g| g.contains("STOPPING=1"));
    assert!(bye.contains("STOPPING=1"), "{bye:?}");
}

fn wait_for_log(a: &TestAgent, what: &str) {
    a.wait_until(Duration::from_secs(10), what, |a| a.log().contains(what));
}

/// SIGHUP: the config file is read again (the live setting applied, the others named as
/// needing a restart), the directory is rescanned, and the containers are the same ones.
#[test]
fn sighup_reloads_the_config_and_rescans_without_touching_containers() {
    let conf_dir = tempfile::tempdir().expect("tempdir");
    let conf = conf_dir.path().join("agent.hcl");
    std::fs::write(&conf, "log_level = \"DEBUG\"\n").expect("write");
    let conf_s = conf.display().to_string();
    let a = TestAgent::start("127.0.4.50", &["-config", &conf_s]);
    a.drop_job("whoami.nomad", &manifest("whoami.nomad"));
    let url = format!("http://{}:8080/", a.ip);
    a.wait_until(Duration::from_secs(30), "whoami answers", |_| {
        http_get(&url).is_some_and(|b| b.starts_with("I'm "))
    });
    let before = a.containers();
    assert_eq!(before.len(), 1);
    let synced = |a: &TestAgent| {
        a.get("/v1/drover/manifests").expect("manifests")["LastSuccessfulSync"]
            .as_i64()
            .unwrap_or(0)
    };
    let first_sync = synced(&a);
    // The sync time has a resolution of one second.
    std::thread::sleep(Duration::from_millis(1100));

    std::fs::write(
        &conf,
        "log_level = \"INFO\"\nports {\n  http = 5999\n}\nmanifests {\n  allow_empty = true\n}\n",
    )
    .expect("write");
    let pid = a.pid().expect("the agent runs").to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    wait_for_log(&a, "SIGHUP: reloading");
    wait_for_log(&a, "needs a restart");
    let log = a.log();
    let applied: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reload: applied"))
        .collect();
    assert!(
        applied.iter().any(|l| l.contains("log_level"))
            && applied.iter().any(|l| l.contains("allow_empty")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("needs a restart") && l.contains("ports > http")),
        "{log}"
    );
    a.wait_until(Duration::from_secs(10), "the directory is rescanned", |a| {
        synced(a) > first_sync
    });
    // Still on its port, still running the same container.
    assert!(a.get("/v1/agent/self").is_ok());
    assert_eq!(a.containers(), before, "the containers are untouched");
    assert!(http_get(&url).is_some());

    // A broken config file is refused, and the agent keeps running as it was.
    std::fs::write(&conf, "log_levle = \"INFO\"\n").expect("write");
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    wait_for_log(&a, "the configuration is invalid; keeping the running one");
    assert_eq!(a.containers(), before);
}
