//! Figures for the dev agent on the real engine, printed rather than asserted (timings on a
//! shared machine make poor pass/fail tests). Not part of `cargo test`: run with
//!
//! ```sh
//! cargo build --release -p drover-controller --bin drover
//! DROVER_BIN=target/release/drover cargo bench -p drover-tests --bench agent [converge|replace|rss]
//! ```
//!
//! 1. converge: a group of `count = 20` httpd containers (dynamic port each) dropped into the
//!    watched directory until 20 containers run, against the same 20 containers created and
//!    started straight through the Engine API (bollard, 4 at a time).
//! 2. replace: `docker rm -f` of whoami's container (static port) until HTTP answers again.
//! 3. rss: the agent's VmRSS with 100 one-container jobs running, after 10 s idle.
//!
//! Agents bind 127.0.0.60–62; every container is removed by label when a figure is done.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use drover_tests::{TestAgent, http_get, remove_containers, repo};
use futures_util::StreamExt;

const IMAGE: &str = "drover-test/busybox:latest";
const N: usize = 20;
const CONVERGE_IP: &str = "127.0.0.60";
const REPLACE_IP: &str = "127.0.0.61";
const RSS_IP: &str = "127.0.0.62";

fn main() {
    // cargo runs benches in the package's directory; `DROVER_BIN=target/release/drover` is
    // meant from the workspace root, as the build command is.
    let bin = std::env::var_os("DROVER_BIN")
        .map_or_else(|| "target/release/drover".into(), std::path::PathBuf::from);
    let bin = if bin.is_relative() {
        repo().join(bin)
    } else {
        bin
    };
    // SAFETY: nothing else runs yet; no thread can be reading the environment.
    unsafe { std::env::set_var("DROVER_BIN", &bin) };
    let bin = drover_tests::drover_bin();
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release -p drover-controller --bin drover",
        bin.display()
    );
    // `cargo bench` passes `--bench`; any other word picks figures by name.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5usize);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let docker = Docker::connect_with_defaults().expect("the docker socket");
    rt.block_on(docker.ping())
        .expect("the docker engine answers");

    println!(
        "drover agent benchmarks ({}; {} cores; load average {})",
        bin.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average()
    );
    if wanted("converge") {
        converge(&rt, &docker, rounds);
    }
    if wanted("replace") {
        replace(&rt, &docker);
    }
    if wanted("rss") {
        rss(&rt, &docker);
    }
}

/// Running containers carrying `label`.
async fn running(docker: &Docker, label: &str) -> usize {
    let filters = HashMap::from([
        ("label".to_string(), vec![label.to_string()]),
        ("status".to_string(), vec!["running".to_string()]),
    ]);
    let opts = ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(opts))
        .await
        .map_or(0, |l| l.len())
}

/// Polls the engine every 20 ms until `n` containers with `label` run; the time it took.
fn wait_running(
    rt: &tokio::runtime::Runtime,
    docker: &Docker,
    label: &str,
    n: usize,
    timeout: Duration,
    t0: Instant,
) -> Duration {
    rt.block_on(async {
        let deadline = t0 + timeout;
        loop {
            let count = running(docker, label).await;
            if count >= n {
                return t0.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?}: {count}/{n} containers with {label} run"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// Waits until the agent's node reports a healthy docker driver, so a job dropped next is
/// placed at once rather than after the first fingerprint.
fn wait_docker_healthy(a: &TestAgent) {
    let path = format!("/v1/node/{}", a.node_id);
    a.wait_until(
        Duration::from_secs(20),
        "the node's docker driver is healthy",
        |a| {
            a.get(&path)
                .is_ok_and(|n| n["Drivers"]["docker"]["Healthy"] == true)
        },
    );
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let i = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn converge_job() -> String {
    format!(
        r#"job "converge" {{
  datacenters = ["dc1"]
  group "web" {{
    count = {N}
    network {{
      port "http" {{
        to = 80
      }}
    }}
    task "httpd" {{
      driver = "docker"
      config {{
        image   = "{IMAGE}"
        command = "httpd"
        args    = ["-f", "-p", "80", "-h", "/tmp"]
        ports   = ["http"]
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
"#
    )
}

fn converge(rt: &tokio::runtime::Runtime, docker: &Docker, rounds: usize) {
    println!("\n## converge: count = {N} httpd containers, dynamic ports ({rounds} rounds)");
    let mut agent_times = Vec::new();
    let mut direct_times = Vec::new();
    for round in 1..=rounds {
        // A fresh agent each round: nothing from the previous round is running or cached.
        let a = TestAgent::start(CONVERGE_IP, &[]);
        wait_docker_healthy(&a);
        let label = format!("drover.node={}", a.node_id);
        let t0 = Instant::now();
        a.drop_job("converge.nomad", &converge_job());
        let t = wait_running(rt, docker, &label, N, Duration::from_secs(120), t0);
        drop(a);

        let d = rt.block_on(direct(docker, round));
        println!(
            "round {round}: drover {:>7}   engine API directly {:>7}   ratio {:.2}",
            ms(t),
            ms(d),
            t.as_secs_f64() / d.as_secs_f64()
        );
        agent_times.push(t);
        direct_times.push(d);
    }
    let (t, d) = (median(&mut agent_times), median(&mut direct_times));
    println!(
        "median: drover {}   engine API directly {}   ratio {:.2} (target <= 1.15)",
        ms(t),
        ms(d),
        t.as_secs_f64() / d.as_secs_f64()
    );
    println!("load average: {}", load_average());
}

/// Removes every container with the run's label when dropped, however the figure ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_containers(&self.0);
    }
}

/// Creates and starts the same 20 containers drover would (image, command, labels, port
/// bindings, bind mounts, limits, log config), 4 at a time, and returns how long it took.
async fn direct(docker: &Docker, round: usize) -> Duration {
    let run = format!("bench-{}-{round}", std::process::id());
    let bench_label = format!("drover.bench={run}");
    let _cleanup = Cleanup(bench_label.clone());
    let dirs = tempfile::tempdir().expect("tempdir");
    let bodies: Vec<(String, ContainerCreateBody)> = (0..N)
        .map(|i| {
            let alloc_dir = dirs.path().join(format!("alloc-{i}"));
            let mut binds = Vec::new();
            for (host, inside) in [
                ("alloc", "/alloc"),
                ("httpd/local", "/local"),
                ("httpd/secrets", "/secrets"),
            ] {
                let p = alloc_dir.join(host);
                std::fs::create_dir_all(&p).expect("mkdir");
                binds.push(format!("{}:{inside}", p.display()));
            }
            let labels = HashMap::from([
                ("drover.bench".to_string(), run.clone()),
                ("drover.alloc".to_string(), format!("{run}-{i}")),
                ("drover.job".to_string(), "converge".to_string()),
                ("drover.group".to_string(), "web".to_string()),
                ("drover.task".to_string(), "httpd".to_string()),
                ("drover.node".to_string(), run.clone()),
            ]);
            // The agent is gone by now, so its port range on this address is free.
            let host_port = (29000 + i).to_string();
            let mut bindings = HashMap::new();
            let mut exposed = Vec::new();
            for proto in ["tcp", "udp"] {
                exposed.push(format!("80/{proto}"));
                bindings.insert(
                    format!("80/{proto}"),
                    Some(vec![PortBinding {
                        host_ip: Some(CONVERGE_IP.to_string()),
                        host_port: Some(host_port.clone()),
                    }]),
                );
            }
            let body = ContainerCreateBody {
                image: Some(IMAGE.to_string()),
                cmd: Some(
                    ["httpd", "-f", "-p", "80", "-h", "/tmp"]
                        .map(String::from)
                        .to_vec(),
                ),
                env: Some(vec![format!("NOMAD_ALLOC_INDEX={i}")]),
                labels: Some(labels),
                exposed_ports: Some(exposed),
                stop_signal: Some("SIGTERM".into()),
                host_config: Some(HostConfig {
                    cpu_shares: Some(20),
                    memory: Some(16 << 20),
                    memory_swap: Some(16 << 20),
                    binds: Some(binds),
                    port_bindings: Some(bindings),
                    privileged: Some(false),
                    log_config: Some(HostConfigLogConfig {
                        typ: Some("json-file".into()),
                        config: Some(HashMap::from([
                            ("max-size".to_string(), "10m".to_string()),
                            ("max-file".to_string(), "10".to_string()),
                        ])),
                    }),
                    ..HostConfig::default()
                }),
                ..ContainerCreateBody::default()
            };
            (format!("httpd-{run}-{i}"), body)
        })
        .collect();
    let t0 = Instant::now();
    let results: Vec<Result<(), bollard::errors::Error>> =
        futures_util::stream::iter(bodies.into_iter().map(|(name, body)| async move {
            let opts = CreateContainerOptionsBuilder::default().name(&name).build();
            let id = docker.create_container(Some(opts), body).await?.id;
            docker.start_container(&id, None).await
        }))
        .buffer_unordered(4)
        .collect()
        .await;
    let took = t0.elapsed();
    for r in results {
        r.expect("the engine creates and starts a container");
    }
    assert_eq!(running(docker, &bench_label).await, N);
    took
}

fn replace(rt: &tokio::runtime::Runtime, docker: &Docker) {
    const TRIALS: usize = 20;
    println!(
        "\n## replace: docker rm -f of whoami's container (static port) until HTTP answers again ({TRIALS} trials)"
    );
    let whoami = std::fs::read_to_string(repo().join("manifests/whoami.nomad"))
        .expect("manifests/whoami.nomad");
    let a = TestAgent::start(REPLACE_IP, &[]);
    wait_docker_healthy(&a);
    a.drop_job("whoami.nomad", &whoami);
    let url = format!("http://{}:8080/", a.ip);
    let mut times = Vec::new();
    for trial in 1..=TRIALS {
        // Steady state first: one container (the previous one fully gone) that answers.
        let mut body = String::new();
        a.wait_until(
            Duration::from_secs(30),
            "whoami answers from exactly one container",
            |a| {
                body = http_get(&url).unwrap_or_default();
                body.starts_with("I'm ") && a.containers().len() == 1
            },
        );
        std::thread::sleep(Duration::from_millis(300));
        let id = a.containers().pop().expect("one container");
        let t0 = Instant::now();
        // What `docker rm -f` sends; run alongside the polling because the engine only
        // answers once its cleanup is done, and the replacement may answer before that.
        let rm = {
            let docker = docker.clone();
            rt.spawn(async move {
                let opts = RemoveContainerOptionsBuilder::default().force(true).build();
                docker.remove_container(&id, Some(opts)).await
            })
        };
        let deadline = t0 + Duration::from_secs(10);
        let took = loop {
            if probe(&a.ip, 8080).is_some_and(|b| b.contains("I'm ") && !b.contains(&body)) {
                break t0.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "trial {trial}: no new container answered within 10 s\n--- agent log ---\n{}",
                a.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        rt.block_on(rm)
            .expect("the removal task ran")
            .expect("docker rm -f");
        times.push(took);
    }
    drop(a);
    print_trials("drover: rm -f to a new container answering", &times);
    println!("  (target p50 < 1 s)");

    // The engine's own share: the same container created, started and answering, with no
    // drover and nothing to remove first. What drover adds is the difference.
    let floor: Vec<Duration> = (1..=TRIALS)
        .map(|trial| rt.block_on(direct_answer(docker, trial, false)))
        .collect();
    print_trials("engine alone: create + start to answering", &floor);
    let serial: Vec<Duration> = (1..=TRIALS)
        .map(|trial| rt.block_on(direct_answer(docker, trial, true)))
        .collect();
    print_trials(
        "engine alone: rm -f, then create + start, to answering",
        &serial,
    );
    println!("load average: {}", load_average());
}

fn print_trials(what: &str, times: &[Duration]) {
    let mut sorted = times.to_vec();
    sorted.sort();
    println!(
        "{what}: p50 {}   p95 {}   max {}\n  trials (ms): {}",
        ms(percentile(&sorted, 50)),
        ms(percentile(&sorted, 95)),
        ms(sorted[sorted.len() - 1]),
        times
            .iter()
            .map(|t| format!("{:.0}", t.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// Creates and starts whoami's container straight through the Engine API and returns the time
/// until it answers HTTP; removed again before the next trial.
async fn direct_answer(docker: &Docker, trial: usize, replace_first: bool) -> Duration {
    let run = format!("bench-{}-floor-{trial}", std::process::id());
    let _cleanup = Cleanup(format!("drover.bench={run}"));
    let mut bindings = HashMap::new();
    for proto in ["tcp", "udp"] {
        bindings.insert(
            format!("80/{proto}"),
            Some(vec![PortBinding {
                host_ip: Some(REPLACE_IP.to_string()),
                host_port: Some("8080".to_string()),
            }]),
        );
    }
    let body = ContainerCreateBody {
        image: Some(IMAGE.to_string()),
        cmd: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo \"I'm $(hostname)\" > /tmp/index.html && exec httpd -f -p 80 -h /tmp".into(),
        ]),
        labels: Some(HashMap::from([("drover.bench".to_string(), run.clone())])),
        exposed_ports: Some(vec!["80/tcp".into(), "80/udp".into()]),
        host_config: Some(HostConfig {
            port_bindings: Some(bindings),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let create_start_answer = |name: String, t0: Instant| {
        let body = body.clone();
        async move {
            let opts = CreateContainerOptionsBuilder::default().name(&name).build();
            let id = docker
                .create_container(Some(opts), body)
                .await
                .expect("the engine creates the container")
                .id;
            docker
                .start_container(&id, None)
                .await
                .expect("the engine starts the container");
            let deadline = t0 + Duration::from_secs(10);
            loop {
                let answered = tokio::task::spawn_blocking(|| probe(REPLACE_IP, 8080).is_some())
                    .await
                    .unwrap_or(false);
                if answered {
                    break (id, t0.elapsed());
                }
                assert!(
                    Instant::now() < deadline,
                    "trial {trial}: no answer in 10 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    if !replace_first {
        return create_start_answer(run.clone(), Instant::now()).await.1;
    }
    // What a supervisor without drover's overlap does: remove the old container (the engine
    // answers once it is gone and its port is free), then create and start the new one.
    let (old, _) = create_start_answer(format!("{run}-old"), Instant::now()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let opts = RemoveContainerOptionsBuilder::default().force(true).build();
    docker
        .remove_container(&old, Some(opts))
        .await
        .expect("the engine removes the container");
    create_start_answer(run.clone(), t0).await.1
}

/// One HTTP GET as a health checker does it: 100 ms to connect, 500 ms to answer, never
/// waiting out TCP's 1 s SYN retransmission on a connection that went nowhere.
fn probe(ip: &str, port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::new(ip.parse().ok()?, port);
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    (buf.starts_with("HTTP/1.") && buf.lines().next()?.contains(" 200 ")).then_some(buf)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `VmRSS` and `VmHWM` of a process, in kB.
fn rss_kb(pid: u32) -> (u64, u64) {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the agent's /proc status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn rss(rt: &tokio::runtime::Runtime, docker: &Docker) {
    const JOBS: usize = 100;
    println!("\n## rss: {JOBS} jobs, one busybox `sleep 3600` container each (docker driver)");
    let a = TestAgent::start(RSS_IP, &[]);
    wait_docker_healthy(&a);
    let pid = a.pid().expect("the agent runs");
    std::thread::sleep(Duration::from_secs(2));
    let (empty, _) = rss_kb(pid);
    println!("agent with no jobs: VmRSS {:.1} MB", empty as f64 / 1024.0);

    let label = format!("drover.node={}", a.node_id);
    let t0 = Instant::now();
    for i in 0..JOBS {
        a.drop_job(
            &format!("sleep-{i:03}.nomad"),
            &format!(
                r#"job "sleep-{i:03}" {{
  datacenters = ["dc1"]
  group "g" {{
    task "sleep" {{
      driver = "docker"
      config {{
        image   = "{IMAGE}"
        command = "sleep"
        args    = ["3600"]
      }}
      resources {{
        cpu    = 10
        memory = 16
      }}
    }}
  }}
}}
"#
            ),
        );
    }
    let t = wait_running(rt, docker, &label, JOBS, Duration::from_secs(300), t0);
    println!("{JOBS} containers running after {}", ms(t));
    a.wait_until(
        Duration::from_secs(60),
        "the API shows every allocation running",
        |a| {
            a.get("/v1/allocations").is_ok_and(|v| {
                v.as_array().is_some_and(|l| {
                    l.iter().filter(|x| x["ClientStatus"] == "running").count() == JOBS
                })
            })
        },
    );
    std::thread::sleep(Duration::from_secs(10));
    let (rss, hwm) = rss_kb(pid);
    println!(
        "agent with {JOBS} jobs, 10 s idle: VmRSS {:.1} MB (peak VmHWM {:.1} MB) (target <= 30 MB)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!("load average: {}", load_average());
}
