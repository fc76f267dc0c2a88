//! Services, health checks and the DNS interface end to end, against a real `drover agent -dev`
//! and the real Docker engine: a busybox httpd registered as `todo-db` with a tcp check, an
//! http check and a driver-address service; SRV and A answers over UDP from the agent's DNS;
//! the server killed inside the container → the check fails → the instance leaves DNS →
//! `check_restart` restarts the task (Nomad's "Restart Signaled") → it is back in DNS.
//! This file's agents use 127.0.5.10–127.0.5.19.

use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use drover_tests::{TestAgent, stderr, stdout};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

const JOB: &str = r#"
job "svcdb" {
  datacenters = ["dc1"]
  group "db" {
    network {
      port "db" { to = 6379 }
    }
    restart {
      attempts = 3
      delay    = "1s"
      interval = "5m"
      mode     = "fail"
    }
    task "db" {
      driver = "docker"
      config {
        image   = "drover-test/busybox:latest"
        command = "/bin/sh"
        # httpd daemonizes; sleep keeps the container up once httpd is killed.
        args    = ["-c", "mkdir -p /www && echo ok > /www/index.html && httpd -p 6379 -h /www; exec sleep 100000"]
        ports   = ["db"]
      }
      service {
        name     = "todo-db"
        provider = "nomad"
        port     = "db"
        tags     = ["primary"]
        check {
          name     = "alive"
          type     = "tcp"
          # Into the container: docker's proxy on the host port accepts even when httpd is gone.
          address_mode = "driver"
          interval = "1s"
          timeout  = "1s"
          check_restart {
            limit = 3
            grace = "2s"
          }
        }
      }
      service {
        name     = "todo-http"
        provider = "nomad"
        port     = "db"
        check {
          type     = "http"
          path     = "/index.html"
          interval = "1s"
          timeout  = "1s"
          header {
            X-Probe = ["drover"]
          }
        }
      }
      service {
        name         = "todo-driver"
        provider     = "nomad"
        port         = "db"
        address_mode = "driver"
      }
    }
  }
}
"#;

fn ask(server: SocketAddr, qname: &str, qtype: RecordType) -> Message {
    let sock = UdpSocket::bind("127.0.5.10:0").expect("udp socket");
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut m = Message::new(0x5e7, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_str(qname).expect("name"), qtype));
    sock.send_to(&m.to_vec().expect("encode"), server)
        .expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("the agent's DNS answers");
    Message::from_vec(&buf[..n]).expect("a DNS message")
}

fn srv_ports(m: &Message) -> Vec<u16> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some(s.port),
            _ => None,
        })
        .collect()
}

fn registrations(a: &TestAgent, name: &str) -> Vec<serde_json::Value> {
    a.get(&format!("/v1/service/{name}"))
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

fn health(reg: &serde_json::Value) -> Vec<String> {
    reg["Checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["status"].as_str().unwrap_or("").to_string())
        .collect()
}

fn passing(a: &TestAgent, name: &str) -> Option<serde_json::Value> {
    registrations(a, name).into_iter().find(|r| {
        let h = health(r);
        !h.is_empty() && h.iter().all(|s| s == "passing")
    })
}

#[test]
fn a_checked_service_is_in_dns_leaves_it_when_its_check_fails_and_check_restart_restarts_it() {
    let a = TestAgent::start("127.0.5.10", &[]);
    let dns: SocketAddr = "127.0.5.10:8600".parse().expect("addr");
    a.drop_job("svcdb.nomad", JOB);

    a.wait_until(
        Duration::from_secs(60),
        "todo-db is registered and its tcp check passes",
        |a| passing(a, "todo-db").is_some(),
    );
    let reg = passing(&a, "todo-db").expect("registered");
    let port = reg["Port"].as_u64().expect("port") as u16;
    assert_eq!(reg["Address"], "127.0.5.10", "{reg}");
    assert_eq!(reg["Namespace"], "default");
    assert_eq!(reg["Datacenter"], "dc1");
    assert_eq!(reg["JobID"], "svcdb");
    assert!(reg["ID"].as_str().unwrap_or("").starts_with("_nomad-task-"));
    assert_ne!(port, 0);

    // SRV and A answers from the agent's DNS, with and without the datacenter.
    a.wait_until(Duration::from_secs(5), "DNS has caught up", |_| {
        srv_ports(&ask(dns, "todo-db.service.consul.", RecordType::SRV)) == vec![port]
    });
    for qname in ["todo-db.service.consul.", "todo-db.service.dc1.consul."] {
        let m = ask(dns, qname, RecordType::SRV);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{qname}");
        assert_eq!(srv_ports(&m), vec![port], "{qname}: {m:?}");
        assert!(
            m.additionals
                .iter()
                .any(|r| r.data == RData::A("127.0.5.10".parse().unwrap())),
            "the SRV target's address comes along: {m:?}"
        );
    }
    let m = ask(dns, "primary.todo-db.service.consul.", RecordType::A);
    assert_eq!(m.answers.len(), 1, "{m:?}");
    assert_eq!(m.answers[0].data, RData::A("127.0.5.10".parse().unwrap()));
    let m = ask(dns, "nothing-here.service.consul.", RecordType::SRV);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(dns, "example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    // The http check (path and header) passes too; the driver-mode service advertises the
    // container's own address and the port inside it.
    a.wait_until(Duration::from_secs(20), "the http check passes", |a| {
        passing(a, "todo-http").is_some()
    });
    a.wait_until(
        Duration::from_secs(20),
        "the driver-mode service is registered",
        |a| !registrations(a, "todo-driver").is_empty(),
    );
    assert!(
        health(&registrations(&a, "todo-driver")[0]).is_empty(),
        "a service without checks has none"
    );
    let drv = &registrations(&a, "todo-driver")[0];
    assert_eq!(drv["Port"], 6379, "{drv}");
    assert_ne!(drv["Address"], "127.0.5.10", "{drv}");
    assert!(
        drv["Address"]
            .as_str()
            .unwrap_or("")
            .parse::<std::net::Ipv4Addr>()
            .is_ok(),
        "{drv}"
    );

    // The CLI: Nomad's columns, plus the health.
    let out = a.cli(&["service", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    assert!(list.starts_with("Service Name"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("todo-db") && l.ends_with("[primary]")),
        "{list}"
    );
    let out = a.cli(&["service", "info", "todo-db"]);
    let info = stdout(&out);
    assert!(
        info.starts_with("Job ID  Address"),
        "{info}\n{}",
        stderr(&out)
    );
    assert!(
        info.contains(&format!("svcdb   127.0.5.10:{port}  [primary]")),
        "{info}"
    );
    assert!(info.contains("passing"), "{info}");
    let out = a.cli(&["service", "info", "-verbose", "todo-db"]);
    let verbose = stdout(&out);
    assert!(
        verbose.contains("alive  tcp   passing  TCP connect ")
            && verbose.contains(":6379: Success"),
        "{verbose}"
    );
    let out = a.cli(&["service", "info", "-json", "todo-db"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json[0]["ServiceName"], "todo-db");
    let out = a.cli(&["service", "info", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("No service registrations found"));

    let alloc = reg["AllocID"].as_str().expect("alloc id").to_string();
    let out = a.cli(&["alloc", "status", &alloc[..8]]);
    let status = stdout(&out);
    assert!(status.contains("Nomad Service Checks"), "{status}");
    assert!(status.contains("alive"), "{status}");

    // Kill the server inside the container: the check fails, the instance leaves DNS, and
    // check_restart restarts the task.
    let container = a.containers().into_iter().next().expect("the db container");
    let out = std::process::Command::new("docker")
        .args(["exec", &container, "killall", "httpd"])
        .output()
        .expect("docker exec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.wait_until(
        Duration::from_secs(15),
        "the failing instance leaves DNS",
        |_| {
            ask(dns, "todo-db.service.consul.", RecordType::SRV)
                .metadata
                .response_code
                == ResponseCode::NXDomain
        },
    );
    a.wait_until(
        Duration::from_secs(30),
        "check_restart restarts the task",
        |a| {
            a.allocs("svcdb")
                .iter()
                .any(|x| x["TaskStates"]["db"]["Restarts"].as_u64().unwrap_or(0) >= 1)
        },
    );
    let alloc = a.get(&format!("/v1/allocation/{alloc}")).expect("alloc");
    let events: Vec<(String, String)> = alloc["TaskStates"]["db"]["Events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["Type"].as_str().unwrap_or("").to_string(),
                e["DisplayMessage"]
                    .as_str()
                    .or(e["Message"].as_str())
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    assert!(
        events
            .iter()
            .any(|(t, m)| t == "Restart Signaled" && m == "healthcheck: check \"alive\" unhealthy"),
        "{events:?}"
    );
    // The new instance passes its check and is handed out again.
    a.wait_until(
        Duration::from_secs(30),
        "the restarted instance is back in DNS",
        |_| srv_ports(&ask(dns, "todo-db.service.consul.", RecordType::SRV)) == vec![port],
    );
}
