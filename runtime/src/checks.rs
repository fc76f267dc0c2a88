//! Service health checks, run by the node that runs the task (Nomad's and Consul's `check`
//! blocks of type `tcp` and `http`), and `check_restart`: a task whose check stays unhealthy
//! past its grace period is restarted through its task runner.
//!
//! Each check is one small tokio task that sleeps on the runtime's timer wheel between runs, so
//! thousands of checks cost only their connects (see `benches/checks.rs`). A check reports a
//! result only when its status changes, so a healthy service sends nothing to the server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::spec::{
    AllocSpec, CheckRestart, CheckResult, CheckStatus, DriverNetwork, Service, ServiceCheck,
    default_check_name, resolve_address,
};

/// Nomad's minimum check interval; a shorter one would turn checks into load.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Read at most this much of an HTTP check's response (Consul keeps 4 KiB of output).
const HTTP_READ_LIMIT: usize = 4096;

/// One check ready to run: where it goes, how often, and what restarts the task.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCheck {
    pub service: String,
    pub task: String,
    pub name: String,
    pub check_type: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub probe: Probe,
    /// The check's `check_restart`, or else its service's.
    pub restart: Option<CheckRestart>,
    pub initial: CheckStatus,
}

/// What a check does on every run.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Tcp(SocketAddr),
    Http {
        addr: SocketAddr,
        /// `http`; `https` is refused when planned.
        protocol: String,
        method: String,
        path: String,
        headers: BTreeMap<String, Vec<String>>,
    },
    /// A check drover cannot run (a `script` or `grpc` check, an address that is not there):
    /// it stays critical with this output, so the service is never handed out by mistake.
    Unrunnable(String),
}

/// The services of `task`: its own, and the group's that name it (or, when a group service
/// names no task, the group's first task, which is the one whose life the service follows).
pub fn task_services<'a>(alloc: &'a AllocSpec, task: &str) -> Vec<&'a Service> {
    let first = alloc.tasks.first().map(|t| t.name.as_str());
    let own = alloc
        .tasks
        .iter()
        .filter(|t| t.name == task)
        .flat_map(|t| t.services.iter());
    let group = alloc.services.iter().filter(move |s| match &s.task {
        Some(t) => t == task,
        None => first == Some(task),
    });
    own.chain(group).collect()
}

/// The checks of `task`'s services, with their addresses resolved (pure: the tests and the
/// bench plan checks without a node).
pub fn plan_task_checks(
    alloc: &AllocSpec,
    task: &str,
    node_address: &str,
    driver: Option<&DriverNetwork>,
) -> Vec<PlannedCheck> {
    let networks = alloc.networks.as_slice();
    let mut out = Vec::new();
    for svc in task_services(alloc, task) {
        for check in &svc.checks {
            let name = if check.name.is_empty() {
                default_check_name(&svc.name)
            } else {
                check.name.clone()
            };
            let probe = probe_for(svc, check, networks, node_address, driver);
            out.push(PlannedCheck {
                service: svc.name.clone(),
                task: task.to_string(),
                name,
                check_type: check.check_type.clone(),
                interval: check.interval.max(MIN_INTERVAL),
                timeout: if check.timeout.is_zero() {
                    Duration::from_secs(2)
                } else {
                    check.timeout
                },
                probe,
                restart: check
                    .check_restart
                    .clone()
                    .or_else(|| svc.check_restart.clone())
                    .filter(|r| r.limit > 0),
                initial: check
                    .initial_status
                    .as_deref()
                    .and_then(CheckStatus::parse)
                    .unwrap_or(CheckStatus::Critical),
            });
        }
    }
    out
}

fn probe_for(
    svc: &Service,
    check: &ServiceCheck,
    networks: &[crate::spec::NetworkResource],
    node_address: &str,
    driver: Option<&DriverNetwork>,
) -> Probe {
    // A check has no `auto` mode. Unset, it follows a `driver` service to the container's own
    // address (what the seed's todo-db expects), and otherwise goes to the host: a check on a
    // docker host port would reach docker's userland proxy, which accepts connections even when
    // nothing listens in the container, so it could never fail.
    let mode = check
        .address_mode
        .as_deref()
        .unwrap_or(if svc.address_mode == "driver" {
            "driver"
        } else {
            "host"
        });
    let port = check.port.as_deref().or(svc.port.as_deref());
    let Some((ip, port)) = resolve_address(mode, port, networks, node_address, driver) else {
        return Probe::Unrunnable(match mode {
            "driver" => format!(
                "check {:?} of service {:?}: address_mode \"driver\" but the task has no driver address",
                check.name, svc.name
            ),
            _ => format!(
                "check {:?} of service {:?}: port {:?} is not a port label of the group's network",
                check.name,
                svc.name,
                port.unwrap_or("")
            ),
        });
    };
    if port == 0 {
        return Probe::Unrunnable(format!(
            "check {:?} of service {:?} has no port",
            check.name, svc.name
        ));
    }
    let addr = match format!("{ip}:{port}").parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => match ip.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => SocketAddr::from((v6, port)),
            Err(_) => {
                return Probe::Unrunnable(format!(
                    "check {:?} of service {:?}: address {ip:?} is not an IP address",
                    check.name, svc.name
                ));
            }
        },
    };
    match check.check_type.as_str() {
        "tcp" => Probe::Tcp(addr),
        "http" => {
            let protocol = check.protocol.clone().unwrap_or_else(|| "http".into());
            if protocol != "http" {
                return Probe::Unrunnable(format!(
                    "check {:?} of service {:?}: protocol {protocol:?} is not supported by drover (only \"http\")",
                    check.name, svc.name
                ));
            }
            let path = check.path.clone().unwrap_or_else(|| "/".into());
            Probe::Http {
                addr,
                protocol,
                method: check.method.clone().unwrap_or_else(|| "GET".into()),
                path: if path.starts_with('/') {
                    path
                } else {
                    format!("/{path}")
                },
                headers: check.header.clone(),
            }
        }
        other => Probe::Unrunnable(format!(
            "check {:?} of service {:?}: type {other:?} is not supported by drover (tcp and http are)",
            check.name, svc.name
        )),
    }
}

/// One run of a probe: its status and Consul-style output.
pub async fn run_probe(probe: &Probe, timeout: Duration) -> (CheckStatus, String) {
    match probe {
        Probe::Unrunnable(why) => (CheckStatus::Critical, why.clone()),
        Probe::Tcp(addr) => match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => (CheckStatus::Passing, format!("TCP connect {addr}: Success")),
            Ok(Err(e)) => (
                CheckStatus::Critical,
                format!("dial tcp {addr}: connect: {e}"),
            ),
            Err(_) => (
                CheckStatus::Critical,
                format!("dial tcp {addr}: i/o timeout after {timeout:?}"),
            ),
        },
        Probe::Http {
            addr,
            protocol,
            method,
            path,
            headers,
        } => {
            let url = format!("{protocol}://{addr}{path}");
            match tokio::time::timeout(timeout, http_status(*addr, method, path, headers)).await {
                Ok(Ok((code, reason))) => {
                    // Consul: 2xx passes, 429 (Too Many Requests) warns, anything else fails.
                    let status = match code {
                        200..=299 => CheckStatus::Passing,
                        429 => CheckStatus::Warning,
                        _ => CheckStatus::Critical,
                    };
                    (status, format!("HTTP {method} {url}: {code} {reason}"))
                }
                Ok(Err(e)) => (CheckStatus::Critical, format!("HTTP {method} {url}: {e}")),
                Err(_) => (
                    CheckStatus::Critical,
                    format!("HTTP {method} {url}: timeout after {timeout:?}"),
                ),
            }
        }
    }
}

/// Sends one HTTP/1.1 request and reads the status line: a check needs nothing more, and a
/// hand-written request keeps an HTTP client library off the node's hot path.
async fn http_status(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &BTreeMap<String, Vec<String>>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.keys().any(|k| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, values) in headers {
        for v in values {
            // A header value with a line break would smuggle a second header or request.
            if k.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("header {k:?} has a line break or colon in it"),
                ));
            }
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("User-Agent: drover health check\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    while !buf.contains(&b'\n') && buf.len() < HTTP_READ_LIMIT {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the server closed the connection without an HTTP status line",
        ));
    };
    if !version.starts_with("HTTP/") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response: {:?}", line.trim_end()),
        ));
    }
    let code: u16 = code.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad HTTP status line {:?}", line.trim_end()),
        )
    })?;
    Ok((code, parts.next().unwrap_or("").to_string()))
}

/// Counts failures for `check_restart` (no clock of its own: the caller passes `now`).
#[derive(Debug, Clone)]
pub struct RestartWatch {
    policy: CheckRestart,
    /// Failures before this instant do not count (the task is still starting).
    grace_until: Instant,
    failures: u32,
}

impl RestartWatch {
    pub fn new(policy: CheckRestart, started: Instant) -> RestartWatch {
        RestartWatch {
            grace_until: started + policy.grace,
            policy,
            failures: 0,
        }
    }

    /// Records one result; `true` when the task must be restarted now.
    pub fn observe(&mut self, now: Instant, status: CheckStatus) -> bool {
        let unhealthy = match status {
            CheckStatus::Passing => false,
            CheckStatus::Warning => !self.policy.ignore_warnings,
            CheckStatus::Critical => true,
        };
        if !unhealthy {
            self.failures = 0;
            return false;
        }
        if now < self.grace_until {
            return false;
        }
        self.failures += 1;
        self.failures >= self.policy.limit
    }
}

/// The message Nomad puts on a task restarted by `check_restart`.
pub fn restart_reason(check: &str) -> String {
    format!("healthcheck: check {check:?} unhealthy")
}

/// Runs one check until the task goes away (the caller aborts it). Sends every status change
/// as `(key, result)`; calls `restart` once when `check_restart` says so, then stops: the task
/// restarting starts a fresh set of checks.
pub async fn run_check(
    key: String,
    check: PlannedCheck,
    results: mpsc::UnboundedSender<(String, CheckResult)>,
    restart: Arc<dyn Fn(String) + Send + Sync>,
) {
    let mut watch = check
        .restart
        .clone()
        .map(|p| RestartWatch::new(p, Instant::now()));
    let mut last = None;
    // Checks of many tasks started together (an agent restart) would all connect at once:
    // each starts within its first second at an offset its key decides.
    let mut next = Instant::now() + stagger(&key, check.interval.min(Duration::from_secs(1)));
    loop {
        tokio::time::sleep_until(next).await;
        let (status, output) = run_probe(&check.probe, check.timeout).await;
        let now = Instant::now();
        next = now + check.interval;
        if last != Some(status) {
            last = Some(status);
            let r = CheckResult {
                service: check.service.clone(),
                task: check.task.clone(),
                check: check.name.clone(),
                check_type: check.check_type.clone(),
                status,
                output,
                timestamp: crate::taskrunner::now_nanos(),
            };
            if results.send((key.clone(), r)).is_err() {
                return;
            }
        }
        if let Some(w) = watch.as_mut()
            && w.observe(now, status)
        {
            restart(restart_reason(&check.name));
            return;
        }
    }
}

/// A fixed offset in `[0, within)` derived from `key` (FNV-1a), so restarts keep the spread.
fn stagger(key: &str, within: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let nanos = within.as_nanos() as u64;
    if nanos == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(h % nanos)
    }
}

/// The key a check's result is kept under within its allocation.
pub fn check_key(c: &PlannedCheck) -> String {
    format!("{}/{}/{}", c.task, c.service, c.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{NetworkResource, Port};

    fn check(t: &str, port: Option<&str>) -> ServiceCheck {
        ServiceCheck {
            name: String::new(),
            check_type: t.into(),
            port: port.map(Into::into),
            path: Some("health".into()),
            method: None,
            protocol: None,
            body: None,
            header: BTreeMap::new(),
            interval: Duration::from_millis(10),
            timeout: Duration::ZERO,
            address_mode: None,
            command: None,
            args: vec![],
            task: None,
            tls_skip_verify: false,
            initial_status: None,
            success_before_passing: 0,
            failures_before_critical: 0,
            check_restart: None,
            on_update: "require_healthy".into(),
        }
    }

    fn service(name: &str, port: &str, mode: &str, checks: Vec<ServiceCheck>) -> Service {
        Service {
            name: name.into(),
            port: Some(port.into()),
            tags: vec![],
            canary_tags: vec![],
            address_mode: mode.into(),
            address: None,
            provider: "nomad".into(),
            task: None,
            meta: BTreeMap::new(),
            checks,
            check_restart: Some(CheckRestart {
                limit: 3,
                grace: Duration::from_secs(5),
                ignore_warnings: false,
            }),
            on_update: "require_healthy".into(),
        }
    }

    fn alloc(services: Vec<Service>) -> AllocSpec {
        let mut a = crate::testutil::alloc(
            "j",
            "n1",
            vec![crate::testutil::task_raw_exec("web", "true", &[])],
        );
        a.tasks[0].services = services;
        a.networks = vec![NetworkResource {
            mode: "host".into(),
            dynamic_ports: vec![Port {
                label: "db".into(),
                value: 23456,
                to: 6379,
                ..Port::default()
            }],
            ..NetworkResource::default()
        }];
        a
    }

    #[test]
    fn checks_resolve_host_and_driver_addresses() {
        let mut http = check("http", None);
        http.address_mode = Some("driver".into());
        let a = alloc(vec![service(
            "redis",
            "db",
            "driver",
            vec![check("tcp", None), http, check("script", None)],
        )]);
        let driver = DriverNetwork {
            ip: "172.17.0.5".into(),
        };
        let planned = plan_task_checks(&a, "web", "10.0.0.7", Some(&driver));
        assert_eq!(planned.len(), 3);
        assert_eq!(planned[0].name, "service: \"redis\" check");
        // An unset check mode follows the driver-mode service into the container.
        assert_eq!(
            planned[0].probe,
            Probe::Tcp("172.17.0.5:6379".parse().unwrap())
        );
        match &planned[1].probe {
            Probe::Http {
                addr, path, method, ..
            } => {
                assert_eq!(*addr, "172.17.0.5:6379".parse().unwrap());
                assert_eq!(path, "/health");
                assert_eq!(method, "GET");
            }
            other => panic!("expected an http probe, got {other:?}"),
        }
        assert!(matches!(&planned[2].probe, Probe::Unrunnable(m) if m.contains("\"script\"")));
        assert_eq!(planned[0].interval, MIN_INTERVAL);
        assert_eq!(planned[0].restart.as_ref().map(|r| r.limit), Some(3));
        assert_eq!(planned[0].initial, CheckStatus::Critical);
        // No driver address yet: the driver-mode check cannot run and says why.
        let planned = plan_task_checks(&a, "web", "10.0.0.7", None);
        assert!(
            matches!(&planned[1].probe, Probe::Unrunnable(m) if m.contains("no driver address"))
        );
    }

    #[test]
    fn a_host_service_is_checked_on_the_host_port_unless_the_check_says_driver() {
        let mut in_container = check("tcp", None);
        in_container.address_mode = Some("driver".into());
        let a = alloc(vec![service(
            "redis",
            "db",
            "host",
            vec![check("tcp", None), in_container],
        )]);
        let driver = DriverNetwork {
            ip: "172.17.0.5".into(),
        };
        let planned = plan_task_checks(&a, "web", "10.0.0.7", Some(&driver));
        assert_eq!(
            planned[0].probe,
            Probe::Tcp("10.0.0.7:23456".parse().unwrap())
        );
        assert_eq!(
            planned[1].probe,
            Probe::Tcp("172.17.0.5:6379".parse().unwrap())
        );
    }

    #[test]
    fn an_unknown_port_label_is_named() {
        let a = alloc(vec![service(
            "redis",
            "nope",
            "host",
            vec![check("tcp", None)],
        )]);
        let planned = plan_task_checks(&a, "web", "10.0.0.7", None);
        assert!(matches!(&planned[0].probe, Probe::Unrunnable(m) if m.contains("\"nope\"")));
    }

    #[test]
    fn group_services_follow_the_task_they_name_or_the_first() {
        let mut a = alloc(vec![]);
        a.tasks
            .push(crate::testutil::task_raw_exec("side", "true", &[]));
        let mut named = service("named", "db", "host", vec![check("tcp", None)]);
        named.task = Some("side".into());
        a.services = vec![service("plain", "db", "host", vec![]), named];
        let names = |t: &str| -> Vec<String> {
            task_services(&a, t)
                .iter()
                .map(|s| s.name.clone())
                .collect()
        };
        assert_eq!(names("web"), vec!["plain"]);
        assert_eq!(names("side"), vec!["named"]);
    }

    #[test]
    fn check_restart_counts_consecutive_failures_after_grace() {
        let t0 = Instant::now();
        let mut w = RestartWatch::new(
            CheckRestart {
                limit: 2,
                grace: Duration::from_secs(10),
                ignore_warnings: true,
            },
            t0,
        );
        let s = Duration::from_secs;
        // In grace: failures do not count.
        assert!(!w.observe(t0 + s(1), CheckStatus::Critical));
        assert!(!w.observe(t0 + s(9), CheckStatus::Critical));
        assert!(!w.observe(t0 + s(11), CheckStatus::Critical));
        // A pass resets the count; a warning is ignored when asked.
        assert!(!w.observe(t0 + s(12), CheckStatus::Passing));
        assert!(!w.observe(t0 + s(13), CheckStatus::Critical));
        assert!(!w.observe(t0 + s(14), CheckStatus::Warning));
        assert!(!w.observe(t0 + s(15), CheckStatus::Critical));
        assert!(w.observe(t0 + s(16), CheckStatus::Critical));
        assert_eq!(restart_reason("db"), "healthcheck: check \"db\" unhealthy");
    }

    #[tokio::test]
    async fn tcp_and_http_probes_report_like_consul() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                n += 1;
                let mut buf = [0u8; 1024];
                let got = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..got]).to_string();
                let reply = if req.starts_with("GET /ok") && req.contains("X-Probe: yes\r\n") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                } else if req.starts_with("GET /busy") {
                    "HTTP/1.1 429 Too Many Requests\r\n\r\n"
                } else if n == 1 {
                    // the tcp probe connects and closes without sending anything
                    ""
                } else {
                    "HTTP/1.1 503 Service Unavailable\r\n\r\n"
                };
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        let t = Duration::from_secs(2);
        let (st, out) = run_probe(&Probe::Tcp(addr), t).await;
        assert_eq!(st, CheckStatus::Passing);
        assert_eq!(out, format!("TCP connect {addr}: Success"));
        let http = |path: &str| Probe::Http {
            addr,
            protocol: "http".into(),
            method: "GET".into(),
            path: path.into(),
            headers: BTreeMap::from([("X-Probe".to_string(), vec!["yes".to_string()])]),
        };
        let (st, out) = run_probe(&http("/ok"), t).await;
        assert_eq!(
            (st, out.as_str()),
            (
                CheckStatus::Passing,
                &*format!("HTTP GET http://{addr}/ok: 200 OK")
            )
        );
        assert_eq!(run_probe(&http("/busy"), t).await.0, CheckStatus::Warning);
        assert_eq!(run_probe(&http("/down"), t).await.0, CheckStatus::Critical);
        // Nothing listens on port 1 of loopback.
        let (st, out) = run_probe(&Probe::Tcp("127.0.0.1:1".parse().unwrap()), t).await;
        assert_eq!(st, CheckStatus::Critical);
        assert!(out.starts_with("dial tcp 127.0.0.1:1: connect:"), "{out}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_reports_changes_only_and_restarts_once() {
        let probe = Probe::Unrunnable("always down".into());
        let planned = PlannedCheck {
            service: "s".into(),
            task: "web".into(),
            name: "c".into(),
            check_type: "tcp".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            probe,
            restart: Some(CheckRestart {
                limit: 3,
                grace: Duration::from_secs(2),
                ignore_warnings: false,
            }),
            initial: CheckStatus::Critical,
        };
        let offset = stagger("k", Duration::from_secs(1));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let restarts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let r2 = restarts.clone();
        let started = Instant::now();
        run_check(
            "k".into(),
            planned,
            tx,
            Arc::new(move |why| r2.lock().unwrap().push((Instant::now(), why))),
        )
        .await;
        let (key, first) = rx.recv().await.unwrap();
        assert_eq!((key.as_str(), first.status), ("k", CheckStatus::Critical));
        assert!(
            rx.try_recv().is_err(),
            "an unchanged status is not reported again"
        );
        let restarts = restarts.lock().unwrap();
        assert_eq!(restarts.len(), 1);
        // Runs at 0 and 1 s (after the key's stagger) fall in the 2 s grace (counted from the
        // check's start); 2, 3 and 4 s count: the third restarts.
        // (The timer wheel rounds deadlines up to the millisecond.)
        let took = restarts[0].0 - started;
        let want = Duration::from_secs(4) + offset;
        assert!(
            took >= want && took - want <= Duration::from_millis(2),
            "restarted after {took:?}, want {want:?}"
        );
        assert_eq!(restarts[0].1, "healthcheck: check \"c\" unhealthy");
    }
}
