//! DNS on a cluster: every client-only agent answers Consul's DNS interface for the whole
//! cluster's catalog, which it follows from the server over the RPC port (a blocking query).
//! One server and two clients: a service placed on client A is answered by client B's DNS
//! (A and SRV, with A's address and the host port), and leaves B's answers when its job stops.
//! Addresses: 127.0.8.10–127.0.8.19.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use drover_tests::TestAgent;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

const SERVER: &str = "127.0.8.10";
const CLIENT_A: &str = "127.0.8.11";
const CLIENT_B: &str = "127.0.8.12";

fn job() -> String {
    format!(
        r#"job "greeter" {{
  datacenters = ["dc1"]
  group "g" {{
    constraint {{
      attribute = "${{node.unique.name}}"
      value     = "drover-{CLIENT_A}"
    }}
    network {{
      port "http" {{ to = 8080 }}
    }}
    task "t" {{
      driver = "docker"
      config {{
        image   = "drover-test/busybox:latest"
        command = "/bin/sh"
        args    = ["-c", "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports   = ["http"]
      }}
      resources {{
        cpu    = 10
        memory = 16
      }}
      service {{
        name     = "greeter"
        provider = "nomad"
        port     = "http"
      }}
    }}
  }}
}}
"#
    )
}

fn ask(server: SocketAddr, qname: &str, qtype: RecordType) -> Option<Message> {
    let sock = UdpSocket::bind((server.ip(), 0)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut m = Message::new(0x5e8, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_str(qname).ok()?, qtype));
    sock.send_to(&m.to_vec().ok()?, server).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
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

fn a_records(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_service_on_one_client_is_answered_by_another_clients_dns() {
    // The test stops its only job by removing its file, which empties the watched directory.
    let server = TestAgent::server(SERVER, "manifests {\n  allow_empty = true\n}\n", &[]);
    let rpc = vec![server.rpc_addr()];
    let a = TestAgent::client(CLIENT_A, &rpc, "", &[]);
    let b = TestAgent::client(CLIENT_B, &rpc, "", &[]);
    let dns_b: SocketAddr = format!("{CLIENT_B}:8600").parse().expect("addr");
    let dns_a: SocketAddr = format!("{CLIENT_A}:8600").parse().expect("addr");

    // Before anything runs, B's DNS is up and knows nothing.
    let m = ask(dns_b, "greeter.service.consul.", RecordType::SRV).expect("B's DNS answers");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    server.drop_job("greeter.nomad", &job());
    let mut port = 0u16;
    server.wait_until(Duration::from_secs(60), "greeter is registered", |s| {
        let regs = s.get("/v1/service/greeter").unwrap_or_default();
        match regs.as_array().and_then(|r| r.first()) {
            Some(r) => {
                port = r["Port"].as_u64().unwrap_or(0) as u16;
                r["NodeID"] == a.node_id.as_str() && port != 0
            }
            None => false,
        }
    });
    assert!(
        b.containers().is_empty(),
        "the constraint places it on A only"
    );

    // B answers for A's service, with A's address and the host port.
    b.wait_until(
        Duration::from_secs(10),
        "B's DNS answers for greeter",
        |_| {
            ask(dns_b, "greeter.service.consul.", RecordType::SRV)
                .is_some_and(|m| srv_ports(&m) == vec![port])
        },
    );
    let m = ask(dns_b, "greeter.service.dc1.consul.", RecordType::A).expect("A query");
    assert_eq!(
        a_records(&m),
        vec![CLIENT_A.parse::<IpAddr>().expect("ip")],
        "{m:?}"
    );
    // And so does A's own DNS.
    let m = ask(dns_a, "greeter.service.consul.", RecordType::SRV).expect("A's DNS answers");
    assert_eq!(srv_ports(&m), vec![port], "{m:?}");

    // The job stops: the instance leaves B's answers.
    std::fs::remove_file(server.manifests.join("greeter.nomad")).expect("remove job file");
    b.wait_until(Duration::from_secs(30), "greeter leaves B's DNS", |_| {
        ask(dns_b, "greeter.service.consul.", RecordType::SRV)
            .is_some_and(|m| m.metadata.response_code == ResponseCode::NXDomain)
    });
}
