//! Artifacts, volumes, resource limits and the docker plugin's security gates against a real
//! `drover agent -dev` and the real Docker engine (issue 5, items 4–7): the seed's todo-web
//! shape with its config fetched from an HTTP server the test runs, checksums verified, the
//! container's limits as `docker inspect` shows them, refusals in `drover alloc status`, and an
//! OOM kill reported as one; and the seed's todo-web with `count = 2` on a server and two
//! clients. Agents and HTTP servers bind 127.0.6.x only.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_tests::{TestAgent, stdout};

const IMAGE: &str = "drover-test/busybox:latest";

/// A tiny HTTP server on `ip`: serves `files` by path and counts the requests for each.
struct FileServer {
    base: String,
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
    total: Arc<AtomicUsize>,
}

impl FileServer {
    fn start(ip: &str, files: BTreeMap<String, Vec<u8>>) -> FileServer {
        let listener = TcpListener::bind((ip, 0)).expect("bind the test's HTTP server");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let hits = Arc::new(Mutex::new(BTreeMap::new()));
        let total = Arc::new(AtomicUsize::new(0));
        let (h, t) = (hits.clone(), total.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { return };
                let Ok(clone) = s.try_clone() else { continue };
                let mut r = BufReader::new(clone);
                let mut request = String::new();
                if r.read_line(&mut request).is_err() {
                    continue;
                }
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                *h.lock().expect("hits").entry(path.clone()).or_default() += 1;
                t.fetch_add(1, Ordering::SeqCst);
                let (status, body) = match files.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
            }
        });
        FileServer { base, hits, total }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The todo-web shape: one docker task with `task_extra` (artifacts, constraints), `config`
/// lines and `resources` spliced in.
fn web_job(job: &str, task_extra: &str, config_extra: &str, resources: &str) -> String {
    format!(
        r#"job "{job}" {{
  datacenters = ["dc1"]
  type = "service"
  group "todo-web" {{
    restart {{
      attempts = 1
      delay    = "1s"
      interval = "1m"
      mode     = "fail"
    }}
    task "web" {{
      driver = "docker"
      config {{
        image   = "{IMAGE}"
        command = "sleep"
        args    = ["3600"]
        {config_extra}
      }}
      {task_extra}
      resources {{
        {resources}
      }}
    }}
  }}
}}
"#
    )
}

fn alloc_status(a: &TestAgent, job: &str) -> String {
    let id = a
        .allocs(job)
        .first()
        .and_then(|x| x["ID"].as_str().map(str::to_string));
    match id {
        Some(id) => stdout(&a.cli(&["alloc", "status", &id])),
        None => String::new(),
    }
}

fn client_status(a: &TestAgent, job: &str) -> String {
    a.allocs(job)
        .first()
        .and_then(|x| x["ClientStatus"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn todo_web_gets_its_config_artifact_and_its_limits() {
    let ip = "127.0.6.10";
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("config")).expect("mkdir");
    let config = r#"{"ConnectionStrings":{"ToDoDb":"Server=todo-db;Database=todo"}}"#;
    std::fs::write(src.join("config/config.json"), config).expect("write");
    let bundle = work.path().join("config.tar.gz");
    sh(&format!(
        "tar -C {} -czf {} config",
        src.display(),
        bundle.display()
    ));
    let motd = b"welcome to the to-do list\n".to_vec();
    std::fs::write(work.path().join("motd.txt"), &motd).expect("write");
    let motd_sum = sh(&format!(
        "sha256sum {} | cut -d' ' -f1",
        work.path().join("motd.txt").display()
    ));
    let server = FileServer::start(
        ip,
        BTreeMap::from([
            (
                "/config.tar.gz".to_string(),
                std::fs::read(&bundle).expect("bundle"),
            ),
            ("/motd.txt".to_string(), motd.clone()),
        ]),
    );

    let a = TestAgent::start(ip, &[]);
    let artifacts = format!(
        r#"artifact {{
        source = "{base}/config.tar.gz"
      }}
      artifact {{
        source      = "{base}/motd.txt"
        destination = "local/config/motd.txt"
        mode        = "file"
        options {{
          checksum = "sha256:{motd_sum}"
        }}
      }}"#,
        base = server.base
    );
    a.drop_job(
        "todo-web.nomad",
        &web_job(
            "todo-web",
            &artifacts,
            r#"volumes = ["local/config:/app/config"]"#,
            "cpu = 250\n        memory = 64\n        memory_max = 128",
        ),
    );
    a.wait_until(Duration::from_secs(30), "todo-web runs", |a| {
        client_status(a, "todo-web") == "running" && a.containers().len() == 1
    });
    let id = a.containers()[0].clone();

    assert_eq!(
        docker(&["exec", &id, "cat", "/app/config/config.json"]),
        config
    );
    assert_eq!(
        docker(&["exec", &id, "cat", "/app/config/motd.txt"]),
        String::from_utf8_lossy(&motd).trim()
    );
    // The same files through Nomad's own mount of the task's local/.
    assert_eq!(
        docker(&["exec", &id, "cat", "/local/config/config.json"]),
        config
    );
    let limits = docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.CpuShares}} {{.HostConfig.Memory}} {{.HostConfig.MemoryReservation}}",
        &id,
    ]);
    assert_eq!(
        limits,
        format!("250 {} {}", 128 * 1024 * 1024, 64 * 1024 * 1024),
        "cpu shares = MHz, memory_max the hard limit, memory the reservation"
    );
    let mounts = docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Destination}} {{end}}",
        &id,
    ]);
    for m in ["/alloc", "/local", "/secrets", "/app/config"] {
        assert!(mounts.split(' ').any(|x| x == m), "{m} in {mounts}");
    }
    let status = alloc_status(&a, "todo-web");
    assert!(status.contains("Downloading Artifacts"), "{status}");
    assert_eq!(server.hits("/config.tar.gz"), 1);
    assert_eq!(server.hits("/motd.txt"), 1);

    // A restart does not fetch again: the artifacts are already in place (as Nomad).
    docker(&["kill", &id]);
    a.wait_until(Duration::from_secs(20), "the task is restarted", |a| {
        a.container_infos()
            .iter()
            .any(|c| c.state == "running" && c.id != id)
    });
    assert_eq!(server.total.load(Ordering::SeqCst), 2);
}

#[test]
fn a_wrong_checksum_fails_the_task_with_the_reason_after_retrying() {
    let ip = "127.0.6.11";
    let server = FileServer::start(
        ip,
        BTreeMap::from([("/config.json".to_string(), b"{}".to_vec())]),
    );
    let a = TestAgent::start(ip, &[]);
    let wrong = "0".repeat(64);
    let artifacts = format!(
        r#"artifact {{
        source      = "{}/config.json"
        destination = "local/config/config.json"
        mode        = "file"
        options {{
          checksum = "sha256:{wrong}"
        }}
      }}"#,
        server.base
    );
    a.drop_job(
        "bad-sum.nomad",
        &web_job("bad-sum", &artifacts, "", "cpu = 50\n        memory = 32"),
    );
    a.wait_until(Duration::from_secs(40), "the allocation fails", |a| {
        client_status(a, "bad-sum") == "failed"
    });
    let status = alloc_status(&a, "bad-sum");
    assert!(status.contains("Failed Artifact Download"), "{status}");
    assert!(
        status.contains(&format!(
            "checksum mismatch: expected sha256 {wrong}, got 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        )),
        "{status}"
    );
    assert!(status.contains("Not Restarting"), "{status}");
    // restart { attempts = 1 }: fetched once, retried once.
    assert_eq!(server.hits("/config.json"), 2);
    assert!(a.containers().is_empty(), "the task never started");
}

#[test]
fn escaping_volumes_host_paths_and_privileged_are_refused_by_default() {
    let a = TestAgent::start("127.0.6.12", &[]);
    let cases = [
        (
            "escape",
            r#"volumes = ["local/../../../../../etc:/host-etc"]"#,
            r#"failed to mount volume "local/../../../../../etc:/host-etc""#,
            "outside the task directory",
        ),
        (
            "hostpath",
            r#"volumes = ["/etc:/host-etc"]"#,
            r#"failed to mount volume "/etc:/host-etc": host paths are disabled"#,
            "volumes { enabled = true }",
        ),
        (
            "priv",
            "privileged = true",
            "privileged containers are disabled on this node",
            "allow_privileged = true",
        ),
        (
            "caps",
            r#"cap_add = ["sys_admin"]"#,
            "the node does not allow the capabilities sys_admin",
            "allow_caps",
        ),
        (
            "hostnet",
            r#"network_mode = "host""#,
            "the host network is disabled on this node",
            "allow_host_network = true",
        ),
    ];
    // A job that says what it needs is not placed here at all.
    a.drop_job(
        "needs-priv.nomad",
        &web_job(
            "needs-priv",
            r#"constraint {
        attribute = "${attr.driver.docker.privileged.enabled}"
        value     = "true"
      }"#,
            "privileged = true",
            "cpu = 50\n        memory = 32",
        ),
    );
    for (job, extra, _, _) in &cases {
        a.drop_job(
            &format!("{job}.nomad"),
            &web_job(job, "", extra, "cpu = 50\n        memory = 32"),
        );
    }
    for (job, _, what, option) in &cases {
        a.wait_until(Duration::from_secs(30), &format!("{job} fails"), |a| {
            client_status(a, job) == "failed"
        });
        let status = alloc_status(&a, job);
        assert!(status.contains("Driver Failure"), "{job}: {status}");
        assert!(status.contains(what), "{job}: {status}");
        assert!(status.contains(option), "{job}: {status}");
        // Refusals are not worth retrying: the node's config will not change by itself.
        assert!(
            status.contains("Error was unrecoverable"),
            "{job}: {status}"
        );
    }
    a.wait_until(Duration::from_secs(15), "needs-priv fails placement", |a| {
        let out = stdout(&a.cli(&["job", "status", "needs-priv"]));
        out.contains("Placement Failure") && out.contains("driver.docker.privileged.enabled")
    });
    assert!(a.containers().is_empty(), "nothing was created");
}

#[test]
fn a_node_that_enables_the_options_runs_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("docker.hcl");
    std::fs::write(
        &cfg,
        "client {\n  artifact {\n    http_max_size = \"1KB\"\n  }\n}\nplugin \"docker\" {\n  config {\n    allow_host_network = true\n    allow_caps = [\"sys_admin\", \"chown\"]\n    volumes {\n      enabled = true\n    }\n  }\n}\n",
    )
    .expect("write");
    let host = dir.path().join("shared");
    std::fs::create_dir_all(&host).expect("mkdir");
    std::fs::write(host.join("hello"), "from the host").expect("write");
    let a = TestAgent::start("127.0.6.13", &["-config", &cfg.display().to_string()]);
    // Nomad's fingerprinted attributes say what the node allows, for constraints.
    let needs_volumes = r#"constraint {
        attribute = "${attr.driver.docker.volumes.enabled}"
        value     = "true"
      }"#;
    a.drop_job(
        "open.nomad",
        &web_job(
            "open",
            needs_volumes,
            &format!(
                "network_mode = \"host\"\n        cap_add = [\"SYS_ADMIN\"]\n        volumes = [\"{}:/host:ro\"]",
                host.display()
            ),
            "cpu = 50\n        memory = 32",
        ),
    );
    a.wait_until(Duration::from_secs(30), "the open job runs", |a| {
        client_status(a, "open") == "running" && a.containers().len() == 1
    });
    let id = a.containers()[0].clone();
    assert_eq!(
        docker(&["exec", &id, "cat", "/host/hello"]),
        "from the host"
    );
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.NetworkMode}} {{.HostConfig.CapAdd}}",
            &id
        ]),
        "host [SYS_ADMIN]"
    );

    // The node's client { artifact { http_max_size } } applies.
    let server = FileServer::start(
        "127.0.6.13",
        BTreeMap::from([("/big.bin".to_string(), vec![b'x'; 2000])]),
    );
    a.drop_job(
        "big.nomad",
        &web_job(
            "big",
            &format!(
                r#"artifact {{
        source = "{}/big.bin"
      }}"#,
                server.base
            ),
            "",
            "cpu = 50\n        memory = 32",
        ),
    );
    a.wait_until(Duration::from_secs(30), "big fails", |a| {
        client_status(a, "big") == "failed"
    });
    let status = alloc_status(&a, "big");
    assert!(
        status.contains("larger than the node's http_max_size of 1000 bytes"),
        "{status}"
    );
    // (allow_privileged is passed through the same way; this test engine, itself in a
    // container, cannot run privileged containers at all, so the unit tests cover it.)
}

#[test]
fn an_oom_kill_shows_in_alloc_status() {
    let a = TestAgent::start("127.0.6.14", &[]);
    let job = r#"job "hog" {
  datacenters = ["dc1"]
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "hog" {
      driver = "docker"
      config {
        image   = "drover-test/busybox:latest"
        command = "sh"
        # tail holds a line with no newline in memory: 64 MiB of zeros, with a 16 MB limit.
        args    = ["-c", "head -c 67108864 /dev/zero | tail"]
      }
      resources {
        cpu    = 50
        memory = 16
      }
    }
  }
}
"#;
    a.drop_job("hog.nomad", job);
    a.wait_until(Duration::from_secs(40), "the hog fails", |a| {
        client_status(a, "hog") == "failed"
    });
    let status = alloc_status(&a, "hog");
    assert!(status.contains("Terminated"), "{status}");
    assert!(status.contains("OOM Killed: true"), "{status}");
    assert!(status.contains("Exit Code: 137"), "{status}");
}

#[test]
fn the_seeds_todo_web_job_runs_with_its_config_artifact() {
    // The seed's own file, with what this machine lacks swapped out: the image (no registry),
    // the config's GitHub URL (no internet; the same bytes from a local server), SERVER-IP
    // (the DNS server the seed's text asks the reader to fill in) and count (one node, one
    // static port). The task serves its /app/config with busybox httpd on the seed's port.
    let ip = "127.0.6.15";
    let seed = drover_tests::repo().join("tests/fixtures/seed/todo-list-v2");
    let config = std::fs::read(seed.join("configs/todo-web-config.json")).expect("seed config");
    let server = FileServer::start(
        ip,
        BTreeMap::from([("/todo-web-config.json".to_string(), config.clone())]),
    );
    let original = std::fs::read_to_string(seed.join("todo-web.nomad")).expect("seed job");
    let github = "https://raw.githubusercontent.com/sixeyed/ecs/master/episodes/ecs-o4/todo-list-v2/configs/todo-web-config.json";
    assert!(
        original.contains(github),
        "the seed fetches its config from GitHub"
    );
    let job = original
        .replace(github, &format!("{}/todo-web-config.json", server.base))
        .replace("SERVER-IP", ip)
        .replace("count = 2", "count = 1")
        .replace(
            r#"image = "diamol/ch06-todo-list""#,
            &format!(
                r#"image = "{IMAGE}"
        command = "httpd"
        args = ["-f", "-p", "80", "-h", "/app/config"]"#
            ),
        );
    let a = TestAgent::start(ip, &[]);
    a.drop_job("todo-web.nomad", &job);
    let url = format!("http://{ip}:8010/config.json");
    a.wait_until(
        Duration::from_secs(30),
        "todo-web serves the fetched config on :8010",
        |_| drover_tests::http_get(&url).is_some(),
    );
    assert_eq!(
        drover_tests::http_get(&url).expect("body").as_bytes(),
        &config[..]
    );
    let id = a.containers()[0].clone();
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.CpuShares}} {{.HostConfig.Memory}}",
            &id
        ]),
        format!("250 {}", 256 * 1024 * 1024),
        "the seed's cpu = 250 and memory = 256"
    );
    assert_eq!(server.hits("/todo-web-config.json"), 1);
}

#[test]
fn the_seeds_todo_web_job_with_count_2_runs_on_two_clients_each_with_its_artifact() {
    // The seed's second half: one server, two clients, todo-web as written (count = 2, one
    // static port 8010 each), so each client runs one instance and fetches the config itself.
    // Swapped as above: the image, the config's GitHub URL, SERVER-IP.
    let (server_ip, client_ips) = ("127.0.6.20", ["127.0.6.21", "127.0.6.22"]);
    let seed = drover_tests::repo().join("tests/fixtures/seed/todo-list-v2");
    let config = std::fs::read(seed.join("configs/todo-web-config.json")).expect("seed config");
    let files = FileServer::start(
        server_ip,
        BTreeMap::from([("/todo-web-config.json".to_string(), config.clone())]),
    );
    let github = "https://raw.githubusercontent.com/sixeyed/ecs/master/episodes/ecs-o4/todo-list-v2/configs/todo-web-config.json";
    let job = std::fs::read_to_string(seed.join("todo-web.nomad"))
        .expect("seed job")
        .replace(github, &format!("{}/todo-web-config.json", files.base))
        .replace("SERVER-IP", server_ip)
        .replace(
            r#"image = "diamol/ch06-todo-list""#,
            &format!(
                r#"image = "{IMAGE}"
        command = "httpd"
        args = ["-f", "-p", "80", "-h", "/app/config"]"#
            ),
        );
    assert!(job.contains("count = 2"), "the seed runs two instances");
    let server = TestAgent::server(server_ip, "", &[]);
    let clients: Vec<TestAgent> = client_ips
        .iter()
        .map(|ip| TestAgent::client(ip, &[server.rpc_addr()], "", &[]))
        .collect();
    server.drop_job("todo-web.nomad", &job);
    for ip in client_ips {
        let url = format!("http://{ip}:8010/config.json");
        server.wait_until(
            Duration::from_secs(60),
            &format!("todo-web answers on {ip}:8010"),
            |_| drover_tests::http_get(&url).is_some(),
        );
        assert_eq!(
            drover_tests::http_get(&url).expect("body").as_bytes(),
            &config[..]
        );
    }
    for c in &clients {
        let ids = c.containers();
        assert_eq!(ids.len(), 1, "one instance on {}: {ids:?}", c.ip);
        assert_eq!(
            docker(&[
                "inspect",
                "-f",
                "{{.HostConfig.CpuShares}} {{.HostConfig.Memory}}",
                &ids[0]
            ]),
            format!("250 {}", 256 * 1024 * 1024),
        );
    }
    assert_eq!(
        files.hits("/todo-web-config.json"),
        2,
        "each client fetched the artifact for its own instance"
    );
}
