//! The seed's `todo-list.nomad` end to end (issue 5's acceptance test), edited only as the
//! tutorial says (`docs/services.md`): `SERVER-IP` replaced by the docker bridge's gateway, where
//! the agent's DNS also listens on port 53, and the two images swapped for local stand-ins:
//!
//! - `drover-test/todo-db`: a tiny TCP "database" (busybox httpd on 5432 answering `db-ok`);
//! - `drover-test/todo-web`: resolves `todo-db` through the container's resolver (the job's
//!   `dns_servers` / `dns_search_domains`, i.e. drover's DNS), fetches from it, and only then
//!   serves a page on port 80 (static host port 8010) saying what it reached.
//!
//! The images carry their commands, so the job file keeps its `config` blocks as written.
//! This file's agents use 127.0.8.1–127.0.8.9.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use drover_tests::{TestAgent, http_get, repo};

/// The default bridge's gateway: containers on it reach the host there.
fn bridge_gateway() -> String {
    let out = Command::new("docker")
        .args([
            "network",
            "inspect",
            "bridge",
            "-f",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        ])
        .output()
        .expect("docker network inspect");
    let gw = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // Docker leaves the gateway out of IPAM when it was chosen automatically.
    if gw.is_empty() {
        "172.17.0.1".to_string()
    } else {
        gw
    }
}

/// Builds a stand-in image on top of the local busybox image (no registry needed).
fn build_image(tag: &str, dockerfile: &str) {
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker build");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(dockerfile.as_bytes())
        .expect("write Dockerfile");
    let out = child.wait_with_output().expect("docker build runs");
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const DB_IMAGE: &str = r#"FROM drover-test/busybox:latest
CMD ["/bin/sh", "-c", "mkdir -p /db && echo db-ok > /db/index.html && exec httpd -f -p 5432 -h /db"]
"#;

/// Resolves the bare name `todo-db` (so the search domain is used), as the real app's
/// connection string does, and serves its page only once the database answered.
/// (busybox's `wget` crashes in this static build, so the web task speaks HTTP to the db
/// with `nc`.)
const WEB_IMAGE: &str = r#"FROM drover-test/busybox:latest
CMD ["/bin/sh", "-c", "mkdir -p /www; until db=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 todo-db 5432 | tail -n 1) && [ \"$db\" = db-ok ]; do sleep 1; done; echo \"todo-list: reached todo-db ($db)\" > /www/index.html; cat /etc/resolv.conf >> /www/index.html; exec httpd -f -p 80 -h /www"]
"#;

#[test]
fn the_seeds_todo_list_web_task_finds_its_db_through_drovers_dns() {
    build_image("drover-test/todo-db:latest", DB_IMAGE);
    build_image("drover-test/todo-web:latest", WEB_IMAGE);
    let gw = bridge_gateway();

    let seed = std::fs::read_to_string(repo().join("tests/fixtures/seed/todo-list.nomad"))
        .expect("the seed's todo-list.nomad");
    // The tutorial's edits, and nothing else.
    let job = seed
        .replace("SERVER-IP", &gw)
        .replace("diamol/postgres:11.5", "drover-test/todo-db:latest")
        .replace("diamol/ch06-todo-list", "drover-test/todo-web:latest");
    assert!(job.contains(&format!("dns_servers = [\"{gw}\"]")));

    let ip = "127.0.8.1";
    let cfg = tempfile::NamedTempFile::new().expect("tempfile");
    // The agent's DNS also on the bridge's gateway, port 53, where the containers' resolver
    // (resolv.conf names no port) finds it.
    std::fs::write(
        cfg.path(),
        format!("dns {{\n  bind = [\"{ip}\", \"{gw}:53\"]\n}}\n"),
    )
    .expect("write agent config");
    let cfg_path = cfg.path().to_string_lossy().to_string();
    let a = TestAgent::start(ip, &["-config", &cfg_path]);
    a.drop_job("todo-list.nomad", &job);

    let url = format!("http://{ip}:8010/");
    let mut page = String::new();
    a.wait_until(
        Duration::from_secs(90),
        "the web task answers on :8010",
        |_| {
            page = http_get(&url).unwrap_or_default();
            page.contains("reached todo-db")
        },
    );
    assert!(page.contains("(db-ok)"), "{page}");
    assert!(page.contains(&format!("nameserver {gw}")), "{page}");
    assert!(page.contains("search service.dc1.consul"), "{page}");

    // The db is registered with its container address (address_mode = "driver") and port.
    let regs = a.get("/v1/service/todo-db").expect("service todo-db");
    let reg = &regs.as_array().expect("a list")[0];
    assert_eq!(reg["Port"], 5432, "{regs}");
    assert!(
        reg["Address"]
            .as_str()
            .is_some_and(|s| s.starts_with("172.")),
        "{regs}"
    );
}
