//! The addresses an agent bound to `0.0.0.0` tells others (issue 4): a client-only agent with
//! `bind_addr = "0.0.0.0"`, `advertise { http }` and `client { network_interface = "lo" }`
//! joins a server and registers the interface's address as its node's address (not 0.0.0.0),
//! with the advertised HTTP address; its service registers that address, its task port binds
//! there, and `alloc logs` asked of the server is relayed to the advertised HTTP address.
//! Addresses: 127.0.9.1–127.0.9.9 (the task port binds on lo's own 127.0.0.1, dynamic).

use std::time::Duration;

use drover_tests::{TestAgent, http_get, stderr, stdout};

const JOB: &str = r#"
job "adv-web" {
  datacenters = ["dc1"]
  group "web" {
    network {
      port "http" { to = 8080 }
    }
    task "web" {
      driver = "docker"
      config {
        image   = "drover-test/busybox:latest"
        command = "/bin/sh"
        args    = ["-c", "mkdir -p /www && echo advertised > /www/index.html && echo hello from the web task && exec httpd -f -p 8080 -h /www"]
        ports   = ["http"]
      }
      service {
        name     = "adv-web"
        provider = "nomad"
        port     = "http"
      }
      resources {
        cpu    = 10
        memory = 16
      }
    }
  }
}
"#;

#[test]
fn a_client_bound_to_every_address_registers_its_interface_and_advertised_addresses() {
    let server = TestAgent::server("127.0.9.1", "", &[]);
    let client = TestAgent::client_bound(
        "0.0.0.0",
        "127.0.9.2",
        &[server.rpc_addr()],
        // The node's DNS would listen on 0.0.0.0 too; this test has no use for it.
        "advertise {\n  http = \"127.0.9.2\"\n}\nclient {\n  network_interface = \"lo\"\n}\ndns {\n  enabled = false\n}\n",
        &[],
    );

    let node_path = format!("/v1/node/{}", client.node_id);
    server.wait_until(Duration::from_secs(20), "the client registers", |s| {
        s.get(&node_path).is_ok_and(|n| n["Status"] == "ready")
    });
    let node = server.get(&node_path).expect("the node");
    assert_eq!(node["Address"], "127.0.0.1", "lo's address, not 0.0.0.0");
    assert_eq!(node["HTTPAddr"], "127.0.9.2:4646", "advertise {{ http }}");
    assert_eq!(node["Attributes"]["unique.network.ip-address"], "127.0.0.1");
    let out = server.cli(&["node", "status", "-verbose", &client.node_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("127.0.9.2:4646") && !stdout(&out).contains("0.0.0.0"),
        "{}",
        stdout(&out)
    );

    let file = server.data_dir.path().join("adv-web.nomad");
    std::fs::write(&file, JOB).expect("write job file");
    let out = server.cli(&["job", "run", "-detach", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    // The service carries the node's address, and the task's port answers there.
    let mut reg = serde_json::Value::Null;
    server.wait_until(Duration::from_secs(60), "adv-web is registered", |s| {
        reg = s
            .get("/v1/service/adv-web")
            .ok()
            .and_then(|v| v.as_array()?.first().cloned())
            .unwrap_or_default();
        !reg.is_null()
    });
    assert_eq!(reg["Address"], "127.0.0.1", "{reg}");
    let port = reg["Port"].as_u64().expect("a port");
    let url = format!("http://127.0.0.1:{port}/");
    let mut body = None;
    server.wait_until(Duration::from_secs(20), "the task's port answers", |_| {
        body = http_get(&url);
        body.is_some()
    });
    assert_eq!(body.as_deref().map(str::trim), Some("advertised"));

    // The server reaches the node's logs at the advertised HTTP address.
    let alloc = server.allocs("adv-web")[0]["ID"]
        .as_str()
        .expect("an allocation")
        .to_string();
    let mut logs = String::new();
    server.wait_until(Duration::from_secs(20), "alloc logs are relayed", |s| {
        let out = s.cli(&["alloc", "logs", &alloc, "web"]);
        logs = format!("{}{}", stdout(&out), stderr(&out));
        out.status.success() && logs.contains("hello from the web task")
    });
}
