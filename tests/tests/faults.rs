//! Faults against a real `drover agent -dev` and the real Docker engine: `kill -9` at random
//! points of a convergence (and between a container's create and start), an engine that is
//! down at start or goes away and comes back, an image that does not exist, a batch job that
//! finishes, a crash loop, raw_exec processes and task histories across agent restarts,
//! two files claiming one job id, and containers stopped while the agent could not reach the
//! engine being removed once it is back. Each test's agent binds its own loopback address
//! (127.0.0.40–59), so the tests run in parallel with each other and with `dev_agent.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_tests::{TestAgent, stderr, stdout};

const IMAGE: &str = "drover-test/busybox:latest";

fn running(a: &TestAgent, job: &str) -> usize {
    a.allocs(job)
        .iter()
        .filter(|x| x["ClientStatus"] == "running")
        .count()
}

fn alloc_ids(a: &TestAgent, job: &str, status: &str) -> BTreeSet<String> {
    a.allocs(job)
        .iter()
        .filter(|x| x["ClientStatus"] == status)
        .filter_map(|x| x["ID"].as_str().map(str::to_string))
        .collect()
}

/// A docker service job of `count` busybox containers that sleep.
fn sleeper(job: &str, count: u32) -> String {
    format!(
        r#"job "{job}" {{
  datacenters = ["dc1"]
  group "g" {{
    count = {count}
    task "t" {{
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
    )
}

/// A raw_exec service job running `/bin/sh -c SCRIPT`.
fn raw_exec(job: &str, script: &str) -> String {
    format!(
        r#"job "{job}" {{
  datacenters = ["dc1"]
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "{script}"]
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

/// SplitMix64: a seeded, reproducible sequence for the kill delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The node's containers are exactly one running container per running allocation of `job`,
/// `count` of each, and nothing else labelled with this node.
fn converged(a: &TestAgent, job: &str, count: usize) -> Result<(), String> {
    let allocs = alloc_ids(a, job, "running");
    let infos = a.container_infos();
    let mut by_alloc: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &infos {
        *by_alloc.entry(c.alloc.as_str()).or_default() += 1;
    }
    let not_running: Vec<_> = infos.iter().filter(|c| c.state != "running").collect();
    let dups: Vec<_> = by_alloc.iter().filter(|(_, n)| **n > 1).collect();
    let container_allocs: BTreeSet<String> = by_alloc.keys().map(|s| s.to_string()).collect();
    if allocs.len() == count
        && infos.len() == count
        && not_running.is_empty()
        && dups.is_empty()
        && container_allocs == allocs
    {
        Ok(())
    } else {
        Err(format!(
            "{} running allocations, {} containers; duplicates {dups:?}; not running {not_running:?}; \
             containers without a running allocation {:?}",
            allocs.len(),
            infos.len(),
            container_allocs.difference(&allocs).collect::<Vec<_>>()
        ))
    }
}

/// Polls `check` until it returns `Ok`, or panics with its last error and the agent's log.
fn wait_ok(
    a: &TestAgent,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<(), String>,
) {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match check() {
            Ok(()) => return,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out after {timeout:?} waiting until {what}: {last}\n--- agent log ---\n{}",
        a.log()
    );
}

#[test]
fn kill_9_during_convergence_20_times_leaves_no_duplicates_or_orphans() {
    // The seed makes the kill points reproducible; DROVER_FAULTS_SEED explores others.
    let seed: u64 = std::env::var("DROVER_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_D0E5_2026_1125);
    eprintln!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut a = TestAgent::start("127.0.0.40", &[]);
    a.drop_job("crash.nomad", &sleeper("crash", 10));
    for i in 0..20 {
        // Ten containers converge in well under a second, so after the first rounds each round
        // makes new work first: containers removed from outside and, every other round, a
        // count change (stops, then new allocations), so every kill lands mid-convergence.
        let mut work = String::new();
        if i > 0 {
            let mut ids = a.containers();
            let n = 1 + (rng.next() % 4) as usize;
            for _ in 0..n.min(ids.len()) {
                let c = ids.swap_remove((rng.next() % ids.len() as u64) as usize);
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f", &c])
                    .output();
            }
            work = format!("rm -f {n}");
            if i % 2 == 1 {
                let count = if i % 4 == 1 { 3 + rng.next() % 7 } else { 10 };
                a.drop_job("crash.nomad", &sleeper("crash", count as u32));
                work.push_str(&format!(", count = {count}"));
            }
        }
        let delay = Duration::from_millis(rng.next() % 1500);
        std::thread::sleep(delay);
        eprintln!(
            "kill -9 #{i} ({work}) after {delay:?}: {} containers, {} running allocations",
            a.containers().len(),
            running(&a, "crash")
        );
        a.restart_after_kill9();
    }
    a.drop_job("crash.nomad", &sleeper("crash", 10));
    wait_ok(
        &a,
        Duration::from_secs(60),
        &format!("10 running containers, one per running allocation, no orphans (seed {seed:#x})"),
        || converged(&a, "crash", 10),
    );
    // And it stays so: nothing left over is started or removed late.
    std::thread::sleep(Duration::from_secs(2));
    if let Err(e) = converged(&a, "crash", 10) {
        panic!("seed {seed:#x}: {e}\n--- agent log ---\n{}", a.log());
    }
}

#[test]
fn a_container_created_but_never_started_is_started_at_once_after_a_crash() {
    // kill -9 between the engine's create and start leaves a `created` container under the
    // allocation's name. It never ran, so it did not crash: no restart counted, no delay.
    let mut a = TestAgent::start("127.0.0.47", &[]);
    a.drop_job("created.nomad", &sleeper("created", 1));
    a.wait_until(Duration::from_secs(30), "the job runs", |a| {
        running(a, "created") == 1
    });
    let before = a.container_infos();
    assert_eq!(before.len(), 1, "{before:?}");
    a.stop(true);
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .output()
            .expect("the docker CLI runs");
        assert!(out.status.success(), "docker {args:?}: {}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let name = docker(&["inspect", "--format", "{{.Name}}", &before[0].id]);
    let labels: BTreeMap<String, String> = serde_json::from_str(&docker(&[
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &before[0].id,
    ]))
    .expect("labels");
    docker(&["rm", "-f", &before[0].id]);
    let mut create = vec![
        "create".to_string(),
        "--name".into(),
        name.trim_start_matches('/').to_string(),
    ];
    for (k, v) in &labels {
        create.push("--label".into());
        create.push(format!("{k}={v}"));
    }
    create.extend([IMAGE.to_string(), "sleep".into(), "3600".into()]);
    let created = docker(&create.iter().map(String::as_str).collect::<Vec<_>>());

    a.start_again();
    // The default service restart delay is 15 s: within 8 s only an immediate start passes.
    a.wait_until(Duration::from_secs(8), "the task runs again", |a| {
        let infos = a.container_infos();
        infos.len() == 1 && infos[0].state == "running" && infos[0].id != created
    });
    a.wait_until(Duration::from_secs(5), "the allocation is running", |a| {
        running(a, "created") == 1
    });
    let allocs = a.allocs("created");
    assert_eq!(allocs.len(), 1, "{allocs:?}");
    let t = &allocs[0]["TaskStates"]["t"];
    assert_eq!(t["Restarts"], 0, "{allocs:?}");
    assert!(
        t["Events"]
            .as_array()
            .is_some_and(|e| e.iter().all(|e| e["Type"] != "Terminated")),
        "not reported as an exit: {allocs:?}"
    );
}

#[test]
fn an_unknown_image_fails_its_allocation_with_the_engines_message() {
    let a = TestAgent::start("127.0.0.42", &[]);
    a.drop_job(
        "missing.nomad",
        &sleeper("missing", 1).replace(IMAGE, "drover-test/does-not-exist:1"),
    );
    a.drop_job("fine.nomad", &sleeper("fine", 1));
    a.wait_until(Duration::from_secs(30), "the other job runs", |a| {
        running(a, "fine") == 1
    });
    let mut shown = String::new();
    a.wait_until(
        Duration::from_secs(30),
        "alloc status shows the engine's message",
        |a| {
            let Some(id) = a
                .allocs("missing")
                .iter()
                .find_map(|x| x["ID"].as_str().map(str::to_string))
            else {
                return false;
            };
            shown = stdout(&a.cli(&["alloc", "status", &id]));
            shown.contains("No such image") && shown.contains("drover-test/does-not-exist:1")
        },
    );
    assert!(shown.contains("Driver Failure"), "{shown}");
    let missing = a.allocs("missing");
    assert!(
        missing.iter().any(|x| x["ClientStatus"] == "failed"),
        "the allocation fails: {missing:?}"
    );
    assert_eq!(running(&a, "fine"), 1, "the agent keeps going");
}

#[test]
fn a_batch_job_completes_and_is_not_restarted() {
    let a = TestAgent::start("127.0.0.43", &[]);
    let job = sleeper("once", 1)
        .replace(
            "datacenters = [\"dc1\"]",
            "datacenters = [\"dc1\"]\n  type = \"batch\"",
        )
        .replace("command = \"sleep\"", "command = \"sh\"")
        .replace("[\"3600\"]", "[\"-c\", \"echo done\"]");
    a.drop_job("once.nomad", &job);
    a.wait_until(Duration::from_secs(30), "the allocation is complete", |a| {
        a.allocs("once")
            .iter()
            .any(|x| x["ClientStatus"] == "complete")
    });
    let id = a.allocs("once")[0]["ID"]
        .as_str()
        .expect("alloc id")
        .to_string();
    let out = a.cli(&["alloc", "logs", &id, "t"]);
    assert!(stdout(&out).contains("done"), "{}", stdout(&out));
    let containers = a.container_infos();
    assert!(
        containers.iter().all(|c| c.state != "running"),
        "{containers:?}"
    );
    // A few seconds in which nothing may happen: checked all along, not only at the end.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let allocs = a.allocs("once");
        assert_eq!(allocs.len(), 1, "no replacement allocation: {allocs:?}");
        assert_eq!(allocs[0]["ClientStatus"], "complete", "{allocs:?}");
        assert_eq!(allocs[0]["TaskStates"]["t"]["Restarts"], 0, "{allocs:?}");
        let now = a.container_infos();
        assert!(
            now.iter().all(|c| c.state != "running")
                && now.iter().map(|c| &c.id).collect::<BTreeSet<_>>()
                    == containers.iter().map(|c| &c.id).collect::<BTreeSet<_>>(),
            "the container is not recreated: before {containers:?}, now {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = stdout(&a.cli(&["job", "status", "once"]));
    assert!(out.contains("complete"), "{out}");
}

#[test]
fn a_crash_loop_backs_off_and_shows_its_restarts() {
    let a = TestAgent::start("127.0.0.44", &[]);
    let job = sleeper("crashloop", 1)
        .replace("command = \"sleep\"", "command = \"sh\"")
        .replace("[\"3600\"]", "[\"-c\", \"exit 1\"]")
        .replace(
            "    task \"t\" {",
            "    restart {\n      attempts = 3\n      interval = \"1m\"\n      delay = \"1s\"\n      mode = \"delay\"\n    }\n    task \"t\" {",
        );
    a.drop_job("crashloop.nomad", &job);
    a.wait_until(Duration::from_secs(30), "the task has started once", |a| {
        a.allocs("crashloop").first().is_some_and(|x| {
            x["TaskStates"]["t"]["Events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["Type"] == "Started"))
        })
    });
    let window = Instant::now();
    let restarts = |a: &TestAgent| -> u64 {
        a.allocs("crashloop")
            .first()
            .and_then(|x| x["TaskStates"]["t"]["Restarts"].as_u64())
            .unwrap_or(0)
    };
    a.wait_until(Duration::from_secs(15), "Total Restarts reaches 2", |a| {
        restarts(a) >= 2
    });
    // Back-off: three restarts ~1 s apart, then (mode "delay") nothing until the 1 m interval
    // is over. A hot loop would restart hundreds of times in these 10 s. (The counter, not
    // the events: a task keeps only its last 10 events.)
    std::thread::sleep(Duration::from_secs(10).saturating_sub(window.elapsed()));
    let n = restarts(&a);
    assert!((2..=4).contains(&n), "{n} restarts in ~10 s\n{}", a.log());
    let allocs = a.allocs("crashloop");
    assert!(
        allocs.len() <= 2,
        "no flood of replacements: {}",
        allocs.len()
    );
    let id = allocs[0]["ID"].as_str().expect("alloc id").to_string();
    let out = stdout(&a.cli(&["alloc", "status", &id]));
    assert!(out.contains("Restarting"), "{out}");
    assert!(out.contains("Terminated"), "{out}");
    assert!(
        out.contains("Exceeded allowed attempts 3 in interval 1m0s and mode is \"delay\""),
        "{out}"
    );
    let total = out
        .lines()
        .find_map(|l| l.strip_prefix("Total Restarts"))
        .and_then(|l| l.trim_start_matches([' ', '=']).trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(total >= 2, "Total Restarts grows: {out}");
}

/// The pid a raw_exec task runs as, from the driver's pid file.
fn raw_exec_pid(a: &TestAgent) -> Option<i32> {
    a.raw_exec_pids().first().copied()
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn raw_exec_logs_readoption_and_stop() {
    let mut a = TestAgent::start("127.0.0.45", &[]);
    // Through the API rather than the watched dir: `job stop` is refused for a file's job.
    let file = a.data_dir.path().join("sleepy.nomad");
    std::fs::write(&file, raw_exec("sleepy", "echo hello; exec sleep 3600")).expect("write");
    let out = a.cli(&["job", "run", "-detach", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    a.wait_until(Duration::from_secs(20), "the raw_exec task runs", |a| {
        running(a, "sleepy") == 1 && raw_exec_pid(a).is_some_and(alive)
    });
    let id = a.allocs("sleepy")[0]["ID"]
        .as_str()
        .expect("alloc id")
        .to_string();
    a.wait_until(Duration::from_secs(10), "alloc logs shows hello", |a| {
        stdout(&a.cli(&["alloc", "logs", &id, "t"])).contains("hello")
    });
    let pid = raw_exec_pid(&a).expect("pid file");

    a.restart();
    a.restart_after_kill9();
    a.wait_until(Duration::from_secs(10), "the allocation is running", |a| {
        running(a, "sleepy") == 1
    });
    // Give a wrongly restarted task the time to show up before checking it did not.
    std::thread::sleep(Duration::from_secs(1));
    assert!(alive(pid), "the process survived the agent's restarts");
    assert_eq!(raw_exec_pid(&a), Some(pid), "re-adopted, not restarted");
    assert_eq!(running(&a, "sleepy"), 1);
    assert_eq!(
        a.allocs("sleepy")[0]["TaskStates"]["t"]["Restarts"],
        0,
        "{:?}",
        a.allocs("sleepy")
    );

    let out = a.cli(&["job", "stop", "-detach", "sleepy"]);
    assert!(out.status.success(), "{}", stderr(&out));
    a.wait_until(Duration::from_secs(15), "the process is gone", |_| {
        !alive(pid)
    });
    a.wait_until(Duration::from_secs(10), "the allocation is complete", |a| {
        a.allocs("sleepy")
            .iter()
            .all(|x| x["ClientStatus"] == "complete")
    });
}

#[test]
fn a_restarted_agent_keeps_its_tasks_restart_count_and_events() {
    let mut a = TestAgent::start("127.0.0.48", &[]);
    // Fails once, then runs: one restart to remember.
    let job = raw_exec(
        "once-failed",
        "if [ -e $NOMAD_ALLOC_DIR/failed ]; then exec sleep 3600; fi; touch $NOMAD_ALLOC_DIR/failed; exit 1",
    )
    .replace(
        "    task \"t\" {",
        "    restart {\n      attempts = 2\n      interval = \"1m\"\n      delay = \"1s\"\n      mode = \"fail\"\n    }\n    task \"t\" {",
    );
    a.drop_job("once-failed.nomad", &job);
    let state = |a: &TestAgent| {
        a.allocs("once-failed")
            .first()
            .map(|x| x["TaskStates"]["t"].clone())
    };
    a.wait_until(
        Duration::from_secs(20),
        "the task runs after one restart",
        |a| {
            running(a, "once-failed") == 1
                && state(a).is_some_and(|t| t["Restarts"] == 1 && t["State"] == "running")
        },
    );
    let before = state(&a).expect("task state");
    let kept = |t: &serde_json::Value| {
        t["Restarts"] == 1
            && t["Events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["Type"] == "Terminated"))
    };
    for (restores, kill9) in [false, true].into_iter().enumerate() {
        if kill9 {
            a.restart_after_kill9();
        } else {
            a.restart();
        }
        // The old report stays on the server until the restored runner reports: wait for the
        // restore, then the state must hold all through a window its report falls in.
        a.wait_until(Duration::from_secs(10), "the allocation is restored", |a| {
            a.log().matches("restoring allocation").count() == restores + 1
        });
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            let after = state(&a).unwrap_or_default();
            assert!(
                after["State"] == "running" && kept(&after),
                "kill -9: {kill9}; the restart count and events survive:\nbefore {before}\nafter {after}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_second_file_with_the_same_job_id_is_refused_naming_the_first() {
    let a = TestAgent::start("127.0.0.46", &[]);
    a.drop_job("first.nomad", &sleeper("twin", 1));
    a.wait_until(Duration::from_secs(30), "the job runs", |a| {
        running(a, "twin") == 1
    });
    let before = a.containers();
    a.drop_job("second.nomad", &sleeper("twin", 2));
    let mut out = String::new();
    a.wait_until(
        Duration::from_secs(10),
        "drover status shows second.nomad's error",
        |a| {
            out = stdout(&a.cli(&["status"]));
            out.contains("second.nomad")
        },
    );
    let error = out
        .lines()
        .find(|l| l.contains("second.nomad:"))
        .unwrap_or_default();
    assert!(
        error.contains("first.nomad"),
        "second.nomad's error names the first file: {out}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(a.containers(), before, "the running job is undisturbed");
    let allocs = a.allocs("twin");
    assert_eq!(allocs.len(), 1, "{allocs:?}");
}

/// A unix-socket proxy to the real engine: the engine, as the agent sees it, can be stopped and
/// started again. Each connection is two copying threads.
struct EngineProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<UnixStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl EngineProxy {
    fn new(path: PathBuf) -> EngineProxy {
        EngineProxy {
            path,
            stop: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(vec![])),
            accept: None,
        }
    }

    fn start(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("bind the proxy socket");
        listener.set_nonblocking(true).expect("nonblocking");
        self.stop.store(false, Ordering::SeqCst);
        let (stop, conns) = (self.stop.clone(), self.conns.clone());
        self.accept = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                            continue;
                        };
                        let mut held = conns.lock().expect("conns");
                        for s in [&client, &engine] {
                            if let Ok(c) = s.try_clone() {
                                held.push(c);
                            }
                        }
                        drop(held);
                        pipe(&client, &engine);
                        pipe(&engine, &client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }

    /// The engine "dies": no new connections, and open ones (the event stream) are cut.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
        for c in self.conns.lock().expect("conns").drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pipe(from: &UnixStream, to: &UnixStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
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
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

#[test]
fn a_dead_engine_keeps_raw_exec_running_and_docker_jobs_converge_when_it_is_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("docker.sock");
    let host = format!("unix://{}", sock.display());
    let mut proxy = EngineProxy::new(sock.clone());
    // Nothing listens on the socket yet: the engine is down when the agent starts.
    let a = TestAgent::start_with_env("127.0.0.41", &[], &[("DOCKER_HOST", &host)]);
    let node = a.get(&format!("/v1/node/{}", a.node_id)).expect("node");
    let docker = &node["Drivers"]["docker"];
    assert_eq!(docker["Healthy"], false, "{node}");
    assert!(
        docker["HealthDescription"]
            .as_str()
            .is_some_and(|d| d.contains("docker")),
        "{node}"
    );
    let out = stdout(&a.cli(&["node", "status", "-verbose", &a.node_id]));
    assert!(out.contains("Failed to connect to docker daemon"), "{out}");

    a.drop_job("box.nomad", &sleeper("box", 1));
    a.drop_job("proc.nomad", &raw_exec("proc", "exec sleep 3600"));
    a.wait_until(Duration::from_secs(20), "the raw_exec job runs", |a| {
        running(a, "proc") == 1
    });
    let mut status = String::new();
    a.wait_until(
        Duration::from_secs(10),
        "job status says the docker job cannot be placed for want of its driver",
        |a| {
            status = stdout(&a.cli(&["job", "status", "box"]));
            // Nomad's words for a node without a healthy driver the group needs.
            status.contains("Placement Failure") && status.contains("missing drivers")
        },
    );
    assert_eq!(running(&a, "box"), 0, "{status}");

    // The engine comes back: the next fingerprint sees it and the job converges.
    proxy.start();
    a.wait_until(
        Duration::from_secs(40),
        "the docker job runs once the engine is back",
        |a| running(a, "box") == 1 && a.containers().len() == 1,
    );
    assert_eq!(running(&a, "proc"), 1);

    // The engine goes away under a running container: nothing is restarted on a guess, the
    // driver turns unhealthy, and a container removed meanwhile is replaced once it is back.
    let before = a.containers();
    proxy.stop();
    a.wait_until(
        Duration::from_secs(30),
        "the node shows docker unhealthy",
        |a| {
            a.get(&format!("/v1/node/{}", a.node_id))
                .is_ok_and(|n| n["Drivers"]["docker"]["Healthy"] == false)
        },
    );
    assert_eq!(a.containers(), before, "the container keeps running");
    assert_eq!(running(&a, "box"), 1);
    let out = std::process::Command::new("docker")
        .args(["rm", "-f", &before[0]])
        .output()
        .expect("docker rm");
    assert!(out.status.success());
    proxy.start();
    a.wait_until(
        Duration::from_secs(40),
        "a new container runs once the engine is back",
        |a| {
            let infos = a.container_infos();
            running(a, "box") == 1
                && infos.len() == 1
                && infos[0].state == "running"
                && infos[0].id != before[0]
        },
    );
    assert_eq!(a.allocs("box").len(), 1, "replaced in its allocation");
    drop(proxy);
}

/// An agent whose engine is reached through a proxy the test can stop (1 s fingerprints, so
/// the engine's comings and goings are seen within a second), running one sleeper `job`
/// submitted through the API (`job stop` is refused for a file's job). Returns the proxy's
/// directory (keep it alive), the proxy, the agent and the job's container.
fn agent_behind_proxy(ip: &str, job: &str) -> (tempfile::TempDir, EngineProxy, TestAgent, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("docker.sock");
    let host = format!("unix://{}", sock.display());
    let mut proxy = EngineProxy::new(sock.clone());
    proxy.start();
    let a = TestAgent::start_with_env(
        ip,
        &[],
        &[
            ("DOCKER_HOST", &host),
            ("DROVER_FINGERPRINT_INTERVAL_MS", "1000"),
        ],
    );
    let file = a.data_dir.path().join(format!("{job}.nomad"));
    std::fs::write(&file, sleeper(job, 1)).expect("write");
    let out = a.cli(&["job", "run", "-detach", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    a.wait_until(Duration::from_secs(40), "the docker job runs", |a| {
        running(a, job) == 1 && a.containers().len() == 1
    });
    let container = a.containers()[0].clone();
    (dir, proxy, a, container)
}

#[test]
fn a_container_stopped_while_the_engine_was_down_at_start_is_removed_when_it_is_back() {
    let (_dir, mut proxy, mut a, container) = agent_behind_proxy("127.0.0.49", "leak");

    // The agent dies, and comes back while the engine does not answer: it cannot list the
    // container, so its restored runner has no handle to it.
    a.stop(true);
    proxy.stop();
    a.start_again();
    a.wait_until(
        Duration::from_secs(10),
        "the node shows docker unhealthy",
        |a| {
            a.get(&format!("/v1/node/{}", a.node_id))
                .is_ok_and(|n| n["Drivers"]["docker"]["Healthy"] == false)
        },
    );
    let out = a.cli(&["job", "stop", "-detach", "leak"]);
    assert!(out.status.success(), "{}", stderr(&out));
    a.wait_until(
        Duration::from_secs(20),
        "the stopped allocation is no longer running",
        |a| {
            let allocs = a.allocs("leak");
            !allocs.is_empty() && allocs.iter().all(|x| x["ClientStatus"] != "running")
        },
    );
    assert_eq!(a.containers(), [container], "the engine was not asked");

    // The engine is back: the next fingerprint lists the node's tasks again, and the
    // container no allocation wants is stopped (kill timeout 5 s) and removed.
    proxy.start();
    wait_ok(
        &a,
        Duration::from_secs(30),
        "the stopped allocation's container is removed",
        || {
            let left = a.container_infos();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("containers left: {left:?}"))
            }
        },
    );
    assert!(
        a.allocs("leak")
            .iter()
            .all(|x| x["ClientStatus"] != "running"),
        "{:?}",
        a.allocs("leak")
    );
    drop(proxy);
}

/// The engine's return is seen before the restored runner (sleeping up to 8 s between looks at
/// an engine that did not answer) adopts its container, and the allocation is stopped in that
/// window: the runner has no handle, so the container must be removed as left over.
#[test]
fn a_container_stopped_before_its_runner_readopts_it_is_removed() {
    let (_dir, mut proxy, mut a, _container) = agent_behind_proxy("127.0.0.50", "window");

    a.stop(true);
    proxy.stop();
    a.start_again();
    // The runner looks again after 0.25, 0.5, 1, 2 and 4 s, then sleeps 8 s (from ~7.75 s to
    // ~15.75 s after the start): the engine comes back inside that sleep.
    std::thread::sleep(Duration::from_secs(9));
    proxy.start();
    a.wait_until(
        Duration::from_secs(10),
        "the node shows docker healthy",
        |a| {
            a.get(&format!("/v1/node/{}", a.node_id))
                .is_ok_and(|n| n["Drivers"]["docker"]["Healthy"] == true)
        },
    );
    let out = a.cli(&["job", "stop", "-detach", "window"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_ok(
        &a,
        Duration::from_secs(30),
        "the stopped allocation's container is removed",
        || {
            let left = a.container_infos();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("containers left: {left:?}"))
            }
        },
    );
    a.wait_until(
        Duration::from_secs(10),
        "the allocation is not running",
        |a| {
            a.allocs("window")
                .iter()
                .all(|x| x["ClientStatus"] != "running")
        },
    );
    drop(proxy);
}
