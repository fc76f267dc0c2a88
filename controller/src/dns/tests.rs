use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::answer::{Outcome, Zone, addr_name, answer};
use super::*;
use crate::services::Catalog;
use crate::structs::{CheckResult, CheckStatus, ServiceRegistration};

fn reg(
    name: &str,
    alloc: &str,
    address: &str,
    port: u16,
    dc: &str,
    tags: &[&str],
) -> ServiceRegistration {
    ServiceRegistration {
        id: format!("_nomad-task-{alloc}-web-{name}-http"),
        service_name: name.into(),
        namespace: "default".into(),
        node_id: "n1".into(),
        datacenter: dc.into(),
        job_id: "todo".into(),
        alloc_id: alloc.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        address: address.into(),
        port,
        create_index: 1,
        modify_index: 2,
        node_name: "node-1".into(),
        checks: vec![],
    }
}

fn critical(mut r: ServiceRegistration) -> ServiceRegistration {
    r.checks.push(CheckResult {
        service: r.service_name.clone(),
        task: "web".into(),
        check: "alive".into(),
        check_type: "tcp".into(),
        status: CheckStatus::Critical,
        output: String::new(),
        timestamp: 0,
    });
    r
}

fn catalog() -> Catalog {
    Catalog::new(
        42,
        vec![
            reg("todo-db", "a1", "10.0.0.7", 20001, "dc1", &["primary"]),
            reg("todo-db", "a2", "10.0.0.8", 20002, "dc1", &[]),
            critical(reg("todo-db", "a3", "10.0.0.9", 20003, "dc1", &[])),
            reg("todo-db", "a4", "10.1.0.1", 20004, "dc2", &[]),
            critical(reg("sick", "a5", "10.0.0.7", 20005, "dc1", &[])),
            reg("v6", "a6", "fd00::1", 20006, "dc1", &[]),
        ],
    )
}

fn zone() -> Zone {
    Zone::new("consul", "dc1", 0).unwrap()
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn records(o: Outcome) -> (Vec<RData>, Vec<(String, RData)>) {
    match o {
        Outcome::Records {
            answers,
            additionals,
        } => (
            answers.into_iter().map(|r| r.data.clone()).collect(),
            additionals
                .into_iter()
                .map(|r| (r.name.to_string(), r.data.clone()))
                .collect(),
        ),
        other => panic!("expected records, got {other:?}"),
    }
}

fn srv_ports(data: &[RData]) -> Vec<u16> {
    let mut p: Vec<u16> = data
        .iter()
        .map(|d| match d {
            RData::SRV(s) => s.port,
            other => panic!("expected SRV, got {other:?}"),
        })
        .collect();
    p.sort();
    p
}

#[test]
fn srv_answers_list_the_healthy_instances_of_the_local_datacenter() {
    let c = catalog();
    let (answers, additionals) = records(answer(
        &c,
        &zone(),
        &name("todo-db.service.consul."),
        RecordType::SRV,
        0,
        usize::MAX,
    ));
    assert_eq!(srv_ports(&answers), vec![20001, 20002]);
    // The target is Consul's `<hex ip>.addr.<dc>.consul`, resolved in the additional section.
    match &answers[0] {
        RData::SRV(s) => assert_eq!(s.target.to_string(), "0a000007.addr.dc1.consul."),
        _ => unreachable!(),
    }
    assert_eq!(additionals[0].0, "0a000007.addr.dc1.consul.");
    assert_eq!(additionals[0].1, RData::A("10.0.0.7".parse().unwrap()));
    // The same with the datacenter named, and another datacenter's own instances.
    let dc1 = answer(
        &c,
        &zone(),
        &name("todo-db.service.dc1.consul."),
        RecordType::SRV,
        0,
        9,
    );
    assert_eq!(srv_ports(&records(dc1).0), vec![20001, 20002]);
    let dc2 = answer(
        &c,
        &zone(),
        &name("TODO-DB.service.DC2.consul."),
        RecordType::SRV,
        0,
        9,
    );
    assert_eq!(srv_ports(&records(dc2).0), vec![20004]);
}

#[test]
fn a_records_tags_and_rfc2782_names() {
    let c = catalog();
    let (a, _) = records(answer(
        &c,
        &zone(),
        &name("todo-db.service.consul."),
        RecordType::A,
        0,
        9,
    ));
    assert_eq!(
        a,
        vec![
            RData::A("10.0.0.7".parse().unwrap()),
            RData::A("10.0.0.8".parse().unwrap())
        ]
    );
    let (tagged, _) = records(answer(
        &c,
        &zone(),
        &name("primary.todo-db.service.consul."),
        RecordType::SRV,
        0,
        9,
    ));
    assert_eq!(srv_ports(&tagged), vec![20001]);
    let (rfc, _) = records(answer(
        &c,
        &zone(),
        &name("_todo-db._tcp.service.consul."),
        RecordType::SRV,
        0,
        9,
    ));
    assert_eq!(srv_ports(&rfc), vec![20001, 20002]);
    assert_eq!(
        answer(
            &c,
            &zone(),
            &name("nope.todo-db.service.consul."),
            RecordType::SRV,
            0,
            9
        ),
        Outcome::NxDomain
    );
    // An IPv6 instance has AAAA and no A.
    assert_eq!(
        answer(
            &c,
            &zone(),
            &name("v6.service.consul."),
            RecordType::A,
            0,
            9
        ),
        Outcome::NoData
    );
    let (aaaa, _) = records(answer(
        &c,
        &zone(),
        &name("v6.service.consul."),
        RecordType::AAAA,
        0,
        9,
    ));
    assert_eq!(aaaa, vec![RData::AAAA("fd00::1".parse().unwrap())]);
}

#[test]
fn unknown_and_unhealthy_services_are_nxdomain_and_other_names_not_ours() {
    let c = catalog();
    let z = zone();
    assert_eq!(
        answer(
            &c,
            &z,
            &name("ghost.service.consul."),
            RecordType::SRV,
            0,
            9
        ),
        Outcome::NxDomain
    );
    assert_eq!(
        answer(&c, &z, &name("sick.service.consul."), RecordType::A, 0, 9),
        Outcome::NxDomain
    );
    assert_eq!(
        answer(&c, &z, &name("whatever.consul."), RecordType::A, 0, 9),
        Outcome::NxDomain
    );
    assert_eq!(
        answer(
            &c,
            &z,
            &name("a.b.c.d.service.consul."),
            RecordType::A,
            0,
            9
        ),
        Outcome::NxDomain
    );
    assert_eq!(
        answer(&c, &z, &name("example.com."), RecordType::A, 0, 9),
        Outcome::NotInZone
    );
    assert_eq!(
        answer(&c, &z, &name("consul.example.com."), RecordType::A, 0, 9),
        Outcome::NotInZone
    );
    assert_eq!(
        answer(
            &c,
            &z,
            &name("todo-db.service.consul."),
            RecordType::MX,
            0,
            9
        ),
        Outcome::NoData
    );
}

#[test]
fn addr_names_resolve_and_round_trip() {
    let c = catalog();
    let ip = "10.0.0.7".parse().unwrap();
    let n = addr_name(&zone(), ip, "dc1").unwrap();
    let (a, _) = records(answer(&c, &zone(), &n, RecordType::A, 0, 9));
    assert_eq!(a, vec![RData::A("10.0.0.7".parse().unwrap())]);
    assert_eq!(
        answer(
            &c,
            &zone(),
            &name("zz.addr.dc1.consul."),
            RecordType::A,
            0,
            9
        ),
        Outcome::NxDomain
    );
}

#[test]
fn answers_rotate_and_respect_the_limit() {
    let regs: Vec<_> = (0..5)
        .map(|i| {
            reg(
                "many",
                &format!("a{i}"),
                &format!("10.0.0.{}", i + 1),
                30000 + i,
                "dc1",
                &[],
            )
        })
        .collect();
    let c = Catalog::new(1, regs);
    let ports = |start| {
        srv_ports(
            &records(answer(
                &c,
                &zone(),
                &name("many.service.consul."),
                RecordType::SRV,
                start,
                3,
            ))
            .0,
        )
    };
    assert_eq!(ports(0), vec![30000, 30001, 30002]);
    assert_eq!(ports(3), vec![30000, 30003, 30004]);
    assert_eq!(ports(5), ports(0));
}

fn query(id: u16, qname: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(qname), qtype));
    m.to_vec().unwrap()
}

async fn ask(server: SocketAddr, qname: &str, qtype: RecordType) -> Message {
    let sock = tokio::net::UdpSocket::bind("127.0.5.1:0").await.unwrap();
    sock.send_to(&query(7, qname, qtype), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(std::time::Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("the DNS server answered")
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

#[tokio::test]
async fn the_server_answers_over_udp_refuses_or_forwards_other_names() {
    // A recursor that answers every question with one A record.
    let recursor = tokio::net::UdpSocket::bind("127.0.5.1:0").await.unwrap();
    let recursor_addr = recursor.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = recursor.recv_from(&mut buf).await {
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.add_queries(q.queries.clone());
            r.add_answer(hickory_proto::rr::Record::from_rdata(
                q.queries[0].name().clone(),
                60,
                RData::A("192.0.2.1".parse().unwrap()),
            ));
            let _ = recursor.send_to(&r.to_vec().unwrap(), from).await;
        }
    });
    let source = Arc::new(catalog());
    let plain = handler(&DnsConfig::default(), "dc1", source.clone()).unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let server = DnsServer::start(&["127.0.5.1:0".parse().unwrap()], plain, shutdown)
        .await
        .unwrap();
    let addr = server.addrs[0];

    let m = ask(addr, "todo-db.service.consul.", RecordType::SRV).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.id, 7);
    let mut ports: Vec<u16> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(s) => s.port,
            other => panic!("{other:?}"),
        })
        .collect();
    ports.sort();
    assert_eq!(ports, vec![20001, 20002]);
    assert_eq!(m.answers[0].ttl, 0, "TTL 0 like Consul");
    assert_eq!(m.additionals.len(), 2);

    let m = ask(addr, "ghost.service.consul.", RecordType::SRV).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        m.authorities.len(),
        1,
        "the zone's SOA for negative caching"
    );

    let m = ask(addr, "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    // With recursors, other names are forwarded and the answer relayed.
    let cfg = DnsConfig {
        recursors: vec![recursor_addr.to_string()],
        ..DnsConfig::default()
    };
    let fwd = handler(&cfg, "dc1", source).unwrap();
    let (_stop2, stopped2) = tokio::sync::oneshot::channel::<()>();
    let server2 = DnsServer::start(&["127.0.5.1:0".parse().unwrap()], fwd, async move {
        let _ = stopped2.await;
    })
    .await
    .unwrap();
    let m = ask(server2.addrs[0], "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(&m.answers[0].data, &RData::A("192.0.2.1".parse().unwrap()));
    assert!(m.metadata.recursion_available);
}

#[test]
fn listen_addresses_default_to_the_bind_and_node_addresses() {
    let c = DnsConfig::default();
    let addrs = listen_addrs(&c, "127.0.0.1", Some("10.0.0.7")).unwrap();
    assert_eq!(
        addrs,
        vec![
            "127.0.0.1:8600".parse::<SocketAddr>().unwrap(),
            "10.0.0.7:8600".parse().unwrap()
        ]
    );
    assert_eq!(
        listen_addrs(&c, "0.0.0.0", Some("10.0.0.7")).unwrap(),
        vec!["0.0.0.0:8600".parse::<SocketAddr>().unwrap()],
        "the wildcard covers the node's address"
    );
    let mut c = DnsConfig {
        bind: vec!["172.17.0.1".into()],
        port: 53,
        ..DnsConfig::default()
    };
    assert_eq!(
        listen_addrs(&c, "127.0.0.1", None).unwrap(),
        vec!["172.17.0.1:53".parse::<SocketAddr>().unwrap()]
    );
    c.bind = vec!["127.0.0.1".into(), "172.17.0.1:53".into()];
    c.port = 8600;
    assert_eq!(
        listen_addrs(&c, "127.0.0.1", None).unwrap(),
        vec![
            "127.0.0.1:8600".parse::<SocketAddr>().unwrap(),
            "172.17.0.1:53".parse().unwrap()
        ]
    );
    c.bind = vec!["localhost".into()];
    assert!(listen_addrs(&c, "127.0.0.1", None).is_err());
    assert!(parse_recursor("8.8.8.8").is_ok());
    assert_eq!(parse_recursor("1.1.1.1:5353").unwrap().port(), 5353);
    assert!(parse_recursor("dns.example").is_err());
}
