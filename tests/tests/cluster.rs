//! A cluster on one machine: a server-only agent and client-only agents started from the
//! seed's `server.hcl` / `client.hcl` (plus `client { servers }`, a join token and a short
//! heartbeat TTL), each on its own loopback address with its own data dir, all on the one
//! Docker engine, each client owning only its node's containers (`drover.node`). Covered:
//! placement across clients and the port-collision failure (count = 4: one fails on three
//! clients, two on the seed's two), `alloc logs` relayed by the
//! server, a client killed with `kill -9` (its allocation replaced within the TTL + 2 s; back,
//! its stale container removed), a client cut off from its server without being killed (its
//! workloads keep running; back, the duplicate is stopped), server restarts (SIGTERM and
//! `kill -9`) that restart no workload, join tokens, and a client started before its server.
//! Addresses: 127.0.1.1–127.0.1.40.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_tests::{TestAgent, http_get, repo, stderr, stdout};

/// Nomad's `min_heartbeat_ttl` and `heartbeat_grace`, made small so node loss shows quickly.
const TTL: Duration = Duration::from_secs(1);
const GRACE: Duration = Duration::from_secs(1);
const IMAGE: &str = "drover-test/busybox:latest";

fn server_hcl(extra: &str) -> String {
    format!(
        "server {{\n  min_heartbeat_ttl = \"{}s\"\n  heartbeat_grace = \"{}s\"\n{extra}}}\n",
        TTL.as_secs(),
        GRACE.as_secs()
    )
}

/// The seed's whoami with the local stand-in image and `count`.
fn whoami(count: u32) -> String {
    std::fs::read_to_string(repo().join("manifests/whoami.nomad"))
        .expect("manifests/whoami.nomad")
        .replace("#count = 2", &format!("count = {count}"))
}

/// A busybox service job that says where it runs, then sleeps.
fn talker(job: &str, count: u32) -> String {
    format!(
        r#"job "{job}" {{
  datacenters = ["dc1"]
  group "g" {{
    count = {count}
    task "t" {{
      driver = "docker"
      config {{
        image   = "{IMAGE}"
        command = "/bin/sh"
        args    = ["-c", "echo hello from ${{node.unique.name}}; exec sleep 3600"]
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

/// Submits a job file through the server's CLI, without waiting.
fn run_job(server: &TestAgent, name: &str, contents: &str) {
    let file = server.data_dir.path().join(name);
    std::fs::write(&file, contents).expect("write job file");
    let out = server.cli(&["job", "run", "-detach", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
}

/// Running allocations of `job`: id → node id.
fn running(server: &TestAgent, job: &str) -> BTreeMap<String, String> {
    server
        .allocs(job)
        .iter()
        .filter(|a| a["ClientStatus"] == "running")
        .filter_map(|a| {
            Some((
                a["ID"].as_str()?.to_string(),
                a["NodeID"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// `drover node status` rows: (name, status).
fn node_rows(server: &TestAgent) -> Vec<(String, String)> {
    let out = server.cli(&["node", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(3)?.to_string(), f.last()?.to_string()))
        })
        .collect()
}

fn ready_names(server: &TestAgent) -> BTreeSet<String> {
    node_rows(server)
        .into_iter()
        .filter(|(_, s)| s == "ready")
        .map(|(n, _)| n)
        .collect()
}

/// The logs with colours removed, so fields read as `key=value`.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// When a container started and how often the engine restarted it.
fn started_at(container: &str) -> String {
    let out = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.State.StartedAt}} {{.RestartCount}} {{.State.Status}}",
            container,
        ])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_for(what: &str, timeout: Duration, logs: &[&TestAgent], mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs: Vec<String> = logs
        .iter()
        .map(|a| format!("--- {} ---\n{}", a.name(), plain(&a.log())))
        .collect();
    panic!(
        "timed out after {timeout:?} waiting until {what}\n{}",
        logs.join("\n")
    );
}

#[test]
fn one_server_three_clients_place_fail_over_and_take_back_a_returning_node() {
    let server = TestAgent::server("127.0.1.1", &server_hcl(""), &[]);
    let rpc = vec![server.rpc_addr()];
    let mut clients: Vec<TestAgent> = ["127.0.1.2", "127.0.1.3", "127.0.1.4"]
        .iter()
        .map(|ip| TestAgent::client(ip, &rpc, "", &[]))
        .collect();
    let names: BTreeSet<String> = clients.iter().map(TestAgent::name).collect();
    wait_for(
        "three clients are ready",
        Duration::from_secs(20),
        &[&server],
        || ready_names(&server) == names,
    );
    let rows = node_rows(&server);
    assert_eq!(rows.len(), 3, "only the clients are nodes: {rows:?}");
    assert!(!rows.iter().any(|(n, _)| *n == server.name()), "{rows:?}");
    // A client agent answers the CLI too: what it does not know, its server does.
    let out = clients[0].cli(&["node", "status"]);
    assert_eq!(stdout(&out).matches("ready").count(), 3, "{}", stdout(&out));

    // count = 2: one allocation on each of two clients, each answering on its own :8080.
    run_job(&server, "whoami.nomad", &whoami(2));
    wait_for(
        "two allocations run",
        Duration::from_secs(30),
        &[&server],
        || running(&server, "whoami").len() == 2,
    );
    let placed = running(&server, "whoami");
    let nodes: BTreeSet<&String> = placed.values().collect();
    assert_eq!(nodes.len(), 2, "two distinct clients: {placed:?}");
    let by_node = |id: &str| {
        clients
            .iter()
            .position(|c| c.node_id == id)
            .expect("a node of this test")
    };
    let holders: Vec<usize> = nodes.iter().map(|n| by_node(n)).collect();
    let spare = (0..3).find(|i| !holders.contains(i)).expect("a spare");
    let mut answers = BTreeSet::new();
    for &i in &holders {
        let url = format!("http://{}:8080/", clients[i].ip);
        wait_for(
            &format!("{url} answers"),
            Duration::from_secs(10),
            &[],
            || http_get(&url).is_some(),
        );
        answers.insert(http_get(&url).expect("answers"));
    }
    assert_eq!(answers.len(), 2, "two different containers: {answers:?}");
    assert!(http_get(&format!("http://{}:8080/", clients[spare].ip)).is_none());

    // kill -9 one holder: its allocation is replaced on the spare within the TTL + 2 s.
    let victim = holders[0];
    let stale = clients[victim].containers();
    assert_eq!(stale.len(), 1, "{stale:?}");
    let killed = Instant::now();
    clients[victim].stop(true);
    let spare_id = clients[spare].node_id.clone();
    let spare_url = format!("http://{}:8080/", clients[spare].ip);
    wait_for(
        "the lost allocation runs on the spare client",
        Duration::from_secs(30),
        &[&server],
        || {
            running(&server, "whoami").values().any(|n| *n == spare_id)
                && http_get(&spare_url).is_some()
        },
    );
    let took = killed.elapsed();
    let allowance = TTL + GRACE;
    println!(
        "replaced on the spare client {:.2} s after kill -9 (heartbeat TTL {:?} + grace {:?})",
        took.as_secs_f64(),
        TTL,
        GRACE
    );
    assert!(
        took <= allowance + Duration::from_secs(2),
        "replacement took {took:?}, more than TTL + grace + 2 s"
    );
    let out = server.cli(&["node", "status"]);
    assert!(stdout(&out).contains("down"), "{}", stdout(&out));
    assert_eq!(running(&server, "whoami").len(), 2);

    // The dead client comes back: its stale container is removed, and it is ready again.
    clients[victim].start_again();
    wait_for(
        "the returning client removes its stale container and is ready",
        Duration::from_secs(30),
        &[&server, &clients[victim]],
        || clients[victim].containers().is_empty() && ready_names(&server) == names,
    );
    assert!(http_get(&format!("http://{}:8080/", clients[victim].ip)).is_none());
    let now = running(&server, "whoami");
    assert_eq!(now.len(), 2, "{now:?}");
    let total: usize = clients.iter().map(|c| c.containers().len()).sum();
    assert_eq!(total, 2, "no duplicate containers");

    // count = 4 on three clients: one per client, the fourth fails on the port.
    run_job(&server, "whoami.nomad", &whoami(4));
    wait_for(
        "three run and one fails placement on the port",
        Duration::from_secs(30),
        &[&server],
        || {
            let out = server.cli(&["job", "status", "whoami"]);
            running(&server, "whoami").len() == 3
                && stdout(&out).contains(
                    "Dimension \"network: reserved port collision http=8080\" exhausted on 3 nodes",
                )
        },
    );
    let nodes: BTreeSet<String> = running(&server, "whoami").into_values().collect();
    assert_eq!(nodes.len(), 3, "one per client: {nodes:?}");
    let out = server.cli(&["job", "status", "whoami"]);
    assert!(
        stdout(&out).contains("Placement Failure"),
        "{}",
        stdout(&out)
    );

    // The seed's two clients: with one of the three gone, count = 4 leaves two allocations
    // without a client whose :8080 is free.
    clients[spare].stop(true);
    wait_for(
        "two run and two fail placement on the port",
        Duration::from_secs(30),
        &[&server],
        || {
            let out = server.cli(&["job", "status", "whoami"]);
            running(&server, "whoami").len() == 2
                && stdout(&out).contains(
                    "Dimension \"network: reserved port collision http=8080\" exhausted on 2 nodes",
                )
        },
    );
    let file = server.data_dir.path().join("whoami.nomad");
    let out = server.cli(&["job", "run", file.to_str().expect("utf-8 path")]);
    assert!(
        stdout(&out).contains("Task Group \"web\" (failed to place 2 allocations):"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn server_restarts_restart_no_client_workload() {
    let server = TestAgent::server("127.0.1.10", &server_hcl(""), &[]);
    // The first server listed does not exist: every call goes on to the next one.
    let rpc = vec!["127.0.1.13:4647".to_string(), server.rpc_addr()];
    let clients: Vec<TestAgent> = ["127.0.1.11", "127.0.1.12"]
        .iter()
        .map(|ip| TestAgent::client(ip, &rpc, "", &[]))
        .collect();
    let mut server = server;
    wait_for(
        "two clients are ready",
        Duration::from_secs(20),
        &[&server],
        || ready_names(&server).len() == 2,
    );
    run_job(&server, "talk.nomad", &talker("talk", 2));
    wait_for(
        "two allocations run",
        Duration::from_secs(30),
        &[&server],
        || running(&server, "talk").len() == 2,
    );
    let allocs = running(&server, "talk");
    let nodes: BTreeSet<&String> = allocs.values().collect();
    assert_eq!(nodes.len(), 2, "{allocs:?}");

    // `alloc logs` through the server reaches the client that runs the task.
    let (alloc, node) = allocs.iter().next().expect("an allocation");
    let holder = clients
        .iter()
        .find(|c| c.node_id == *node)
        .expect("a client of this test");
    let want = format!("hello from {}", holder.name());
    wait_for("the task's log line", Duration::from_secs(10), &[], || {
        stdout(&server.cli(&["alloc", "logs", &alloc[..8], "t"])).contains(&want)
    });
    // So does every client agent: its own tasks from its node, the others through a server.
    for c in &clients {
        let out = c.cli(&["alloc", "logs", &alloc[..8], "t"]);
        assert!(
            stdout(&out).contains(&want),
            "via {}: {}{}",
            c.name(),
            stdout(&out),
            stderr(&out)
        );
    }

    let containers: BTreeMap<String, String> = clients
        .iter()
        .flat_map(TestAgent::containers)
        .map(|c| {
            let s = started_at(&c);
            (c, s)
        })
        .collect();
    assert_eq!(containers.len(), 2, "{containers:?}");
    let version = server.get("/v1/job/talk").expect("job")["Version"].clone();

    for kill9 in [false, true] {
        server.stop(kill9);
        // Longer than the TTL: the clients notice, keep their workloads, and retry.
        std::thread::sleep(TTL + GRACE + Duration::from_millis(500));
        server.start_again();
        wait_for(
            "both clients are ready again",
            Duration::from_secs(20),
            &[&server],
            || ready_names(&server).len() == 2,
        );
        // Long enough for a wrongly expired node to show up as down.
        std::thread::sleep(TTL + GRACE + Duration::from_millis(500));
        let how = if kill9 { "kill -9" } else { "SIGTERM" };
        assert_eq!(ready_names(&server).len(), 2, "after {how}");
        assert_eq!(
            running(&server, "talk"),
            allocs,
            "same allocations after {how}"
        );
        let now: BTreeMap<String, String> = clients
            .iter()
            .flat_map(TestAgent::containers)
            .map(|c| {
                let s = started_at(&c);
                (c, s)
            })
            .collect();
        assert_eq!(now, containers, "no container restarted after {how}");
        assert_eq!(
            server.get("/v1/job/talk").expect("job")["Version"],
            version,
            "after {how}"
        );
    }
    println!("two server restarts (SIGTERM, kill -9): 0 workload restarts");
}

#[test]
fn clients_without_the_right_join_token_are_refused() {
    let server = TestAgent::server(
        "127.0.1.20",
        &server_hcl("  join_token = \"right-token\"\n"),
        &[],
    );
    let rpc = vec![server.rpc_addr()];
    let wrong = TestAgent::client(
        "127.0.1.21",
        &rpc,
        "client {\n  join_token = \"wrong-token\"\n}\n",
        &[],
    );
    let missing = TestAgent::client("127.0.1.22", &rpc, "", &[]);
    // The environment variable works as the config key does.
    let right = TestAgent::client(
        "127.0.1.23",
        &rpc,
        "",
        &[("DROVER_JOIN_TOKEN", "right-token")],
    );
    wait_for(
        "the client with the token is ready",
        Duration::from_secs(20),
        &[&server],
        || ready_names(&server) == BTreeSet::from([right.name()]),
    );
    wait_for(
        "both refusals are logged by the server with address and node",
        Duration::from_secs(10),
        &[&server],
        || {
            let log = plain(&server.log());
            log.lines().any(|l| {
                l.contains("refused a client: wrong join token")
                    && l.contains("remote=127.0.1.21:")
                    && l.contains(&format!("node_name={}", wrong.name()))
            }) && log.lines().any(|l| {
                l.contains("refused a client: no join token")
                    && l.contains("remote=127.0.1.22:")
                    && l.contains(&format!("node_name={}", missing.name()))
            })
        },
    );
    let log = plain(&wrong.log());
    assert!(
        log.contains("refused this client's join token"),
        "the client says why: {log}"
    );
    // Refused clients keep retrying (with back-off) and never appear as nodes.
    std::thread::sleep(Duration::from_secs(1));
    let rows = node_rows(&server);
    assert_eq!(rows.len(), 1, "{rows:?}");
    // Anyone reaching the RPC port without the token gets nothing from the API either.
    let resp = ureq::get(&format!("http://{}/v1/jobs", server.rpc_addr())).call();
    assert!(
        matches!(resp, Err(ureq::Error::StatusCode(401))),
        "{resp:?}"
    );
}

/// A TCP relay the test can cut (closing every connection and refusing new ones) and
/// restore: a client behind it loses its server without being killed.
struct Relay {
    listen: String,
    upstream: String,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn new(listen: &str, upstream: &str) -> Relay {
        Relay {
            listen: listen.to_string(),
            upstream: upstream.to_string(),
            cut: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(vec![])),
            accept: None,
        }
    }

    fn start(&mut self) {
        let listener = TcpListener::bind(&self.listen).expect("bind the relay");
        listener.set_nonblocking(true).expect("nonblocking");
        self.cut.store(false, Ordering::SeqCst);
        let (cut, conns, upstream) = (self.cut.clone(), self.conns.clone(), self.upstream.clone());
        self.accept = Some(std::thread::spawn(move || {
            while !cut.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((down, _)) => {
                        let _ = down.set_nonblocking(false);
                        let Ok(up) = TcpStream::connect(&upstream) else {
                            continue;
                        };
                        let mut c = conns.lock().expect("conns");
                        for s in [&down, &up] {
                            if let Ok(s) = s.try_clone() {
                                c.push(s);
                            }
                        }
                        pipe(
                            down.try_clone().expect("clone"),
                            up.try_clone().expect("clone"),
                        );
                        pipe(up, down);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }

    fn cut(&mut self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for s in self.conns.lock().expect("conns").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn a_client_cut_off_keeps_its_workloads_and_its_duplicate_is_stopped_on_return() {
    let server = TestAgent::server("127.0.1.30", &server_hcl(""), &[]);
    let mut relay = Relay::new("127.0.1.33:4647", &server.rpc_addr());
    relay.start();
    let cut_off = TestAgent::client("127.0.1.31", &["127.0.1.33:4647".to_string()], "", &[]);
    wait_for(
        "the first client is ready",
        Duration::from_secs(20),
        &[&server],
        || ready_names(&server).len() == 1,
    );
    // Placed while it is the only client, so the allocation is on the one to be cut off.
    run_job(&server, "whoami.nomad", &whoami(1));
    wait_for("whoami runs", Duration::from_secs(30), &[&server], || {
        running(&server, "whoami").len() == 1
    });
    let first_alloc = running(&server, "whoami");
    assert_eq!(first_alloc.values().next(), Some(&cut_off.node_id));
    let other = TestAgent::client("127.0.1.32", &[server.rpc_addr()], "", &[]);
    wait_for(
        "both clients are ready",
        Duration::from_secs(20),
        &[&server],
        || ready_names(&server).len() == 2,
    );
    let container = cut_off.containers();
    assert_eq!(container.len(), 1, "{container:?}");
    let started = started_at(&container[0]);
    let cut_url = format!("http://{}:8080/", cut_off.ip);
    assert!(http_get(&cut_url).is_some());

    relay.cut();
    let cut_at = Instant::now();
    let other_url = format!("http://{}:8080/", other.ip);
    wait_for(
        "the allocation is replaced on the other client",
        Duration::from_secs(30),
        &[&server, &cut_off],
        || {
            running(&server, "whoami")
                .values()
                .any(|n| *n == other.node_id)
                && http_get(&other_url).is_some()
        },
    );
    println!(
        "cut off: replaced on the other client after {:.2} s",
        cut_at.elapsed().as_secs_f64()
    );
    // Cut off, not dead: what it runs keeps running, untouched.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        http_get(&cut_url).is_some(),
        "the cut-off client's task still answers"
    );
    assert_eq!(cut_off.containers(), container);
    assert_eq!(started_at(&container[0]), started);

    relay.start();
    wait_for(
        "back, the cut-off client stops its duplicate and is ready",
        Duration::from_secs(30),
        &[&server, &cut_off],
        || cut_off.containers().is_empty() && ready_names(&server).len() == 2,
    );
    let now = running(&server, "whoami");
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now.values().next(), Some(&other.node_id));
    assert_eq!(other.containers().len(), 1);
    assert!(http_get(&cut_url).is_none());
    assert!(http_get(&other_url).is_some());
}

#[test]
fn a_client_started_before_its_server_joins_once_the_server_is_up() {
    let server_ip = "127.0.1.35";
    let client = TestAgent::client("127.0.1.36", &[format!("{server_ip}:4647")], "", &[]);
    // Nothing answers yet: the client is up (its API answers) and keeps trying.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        plain(&client.log()).contains("failed to register node"),
        "{}",
        plain(&client.log())
    );
    let server = TestAgent::server(server_ip, &server_hcl(""), &[]);
    let started = Instant::now();
    wait_for(
        "the waiting client registers",
        Duration::from_secs(40),
        &[&server, &client],
        || ready_names(&server) == BTreeSet::from([client.name()]),
    );
    println!(
        "a client waiting for its server registered {:.2} s after the server started",
        started.elapsed().as_secs_f64()
    );
}
