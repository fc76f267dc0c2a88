use std::collections::BTreeMap;
use std::time::Duration;

use drover_runtime::spec::{AllocSpec, DesiredStatus};

use super::*;
use crate::structs::mock;
use crate::structs::{
    CheckResult, CheckStatus, DriverNetwork, Job, Port, Service, ServiceCheck, TaskState,
};

fn service(name: &str, port: &str, mode: &str) -> Service {
    Service {
        name: name.into(),
        port: Some(port.into()),
        tags: vec!["v1".into()],
        canary_tags: vec![],
        address_mode: mode.into(),
        address: None,
        provider: "nomad".into(),
        task: None,
        meta: BTreeMap::new(),
        checks: vec![ServiceCheck {
            name: "alive".into(),
            check_type: "tcp".into(),
            port: None,
            path: None,
            method: None,
            protocol: None,
            body: None,
            header: BTreeMap::new(),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
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
        }],
        check_restart: None,
        on_update: "require_healthy".into(),
    }
}

fn job_with(task_services: Vec<Service>, group_services: Vec<Service>) -> Job {
    let mut job = mock::job();
    let g = &mut job.task_groups[0];
    g.networks = vec![crate::structs::NetworkResource {
        mode: "host".into(),
        dynamic_ports: vec![Port {
            label: "db".into(),
            to: 6379,
            ..Port::default()
        }],
        ..Default::default()
    }];
    g.tasks[0].services = task_services;
    g.services = group_services;
    job
}

fn spec(job: &Job, a: &Allocation) -> AllocSpec {
    let g = &job.task_groups[0];
    AllocSpec {
        id: a.id.clone(),
        name: a.name.clone(),
        namespace: a.namespace.clone(),
        job_id: a.job_id.clone(),
        job_version: a.job_version,
        job_type: "service".into(),
        group: g.name.clone(),
        node_id: a.node_id.clone(),
        desired_status: DesiredStatus::Run,
        tasks: g.tasks.clone(),
        networks: a.networks.clone(),
        restart: g.restart.clone(),
        services: g.services.clone(),
        modify_index: a.modify_index,
    }
}

fn running(mut a: Allocation) -> Allocation {
    a.task_states.insert(
        "web".into(),
        TaskState {
            state: TaskStateKind::Running,
            ..Default::default()
        },
    );
    a
}

fn node() -> Node {
    let mut n = mock::node();
    n.address = "10.0.0.7".into();
    n.datacenter = "dc1".into();
    n
}

#[test]
fn host_mode_uses_the_node_address_and_the_host_port() {
    let job = job_with(vec![service("todo-db", "db", "auto")], vec![]);
    let mut a = running(mock::alloc(&job, 0));
    a.checks = vec![CheckResult {
        service: "todo-db".into(),
        task: "web".into(),
        check: "alive".into(),
        check_type: "tcp".into(),
        status: CheckStatus::Passing,
        output: "TCP connect 10.0.0.7:20000: Success".into(),
        timestamp: 1,
    }];
    let regs = alloc_registrations(&a, &spec(&job, &a), &node());
    assert_eq!(regs.len(), 1);
    let r = &regs[0];
    assert_eq!(r.service_name, "todo-db");
    assert_eq!((r.address.as_str(), r.port), ("10.0.0.7", 20000));
    assert_eq!(r.id, format!("_nomad-task-{}-web-todo-db-db", a.id));
    assert_eq!(
        (r.datacenter.as_str(), r.job_id.as_str()),
        ("dc1", "example")
    );
    assert_eq!(r.tags, vec!["v1"]);
    assert!(r.healthy());
    // Nomad's JSON field names.
    let v = serde_json::to_value(r).unwrap();
    for k in [
        "ID",
        "ServiceName",
        "Namespace",
        "NodeID",
        "Datacenter",
        "JobID",
        "AllocID",
        "Tags",
        "Address",
        "Port",
        "CreateIndex",
        "ModifyIndex",
    ] {
        assert!(v.get(k).is_some(), "missing {k} in {v}");
    }
}

#[test]
fn driver_mode_waits_for_the_container_address_then_uses_the_mapped_port() {
    let job = job_with(vec![], vec![service("cache", "db", "driver")]);
    let a = running(mock::alloc(&job, 0));
    assert!(
        alloc_registrations(&a, &spec(&job, &a), &node()).is_empty(),
        "no driver address reported yet"
    );
    let mut a = a;
    a.driver_networks.insert(
        "web".into(),
        DriverNetwork {
            ip: "172.17.0.9".into(),
        },
    );
    let regs = alloc_registrations(&a, &spec(&job, &a), &node());
    assert_eq!(
        (regs[0].address.as_str(), regs[0].port),
        ("172.17.0.9", 6379)
    );
    assert_eq!(regs[0].id, format!("_nomad-group-{}-web-cache-db", a.id));
    // No check result yet: a group service is registered, and is not healthy until one passes
    // only when the node reports it; without results it has no checks.
    assert!(regs[0].checks.is_empty());
}

#[test]
fn a_task_that_is_not_running_has_no_registrations() {
    let job = job_with(vec![service("todo-db", "db", "host")], vec![]);
    let a = mock::alloc(&job, 0);
    assert!(alloc_registrations(&a, &spec(&job, &a), &node()).is_empty());
}

#[test]
fn a_critical_check_makes_the_instance_unhealthy() {
    let job = job_with(vec![service("todo-db", "db", "host")], vec![]);
    let mut a = running(mock::alloc(&job, 0));
    a.checks = vec![CheckResult {
        service: "todo-db".into(),
        task: "web".into(),
        check: "alive".into(),
        check_type: "tcp".into(),
        status: CheckStatus::Critical,
        output: "dial tcp 10.0.0.7:20000: connect: connection refused".into(),
        timestamp: 1,
    }];
    let regs = alloc_registrations(&a, &spec(&job, &a), &node());
    assert!(!regs[0].healthy());
    assert_eq!(regs[0].health(), CheckStatus::Critical);
}

#[test]
fn the_catalog_indexes_names_case_insensitively_and_lists_stubs() {
    let job = job_with(
        vec![
            service("todo-db", "db", "host"),
            service("Todo-Web", "db", "host"),
        ],
        vec![],
    );
    let a0 = running(mock::alloc(&job, 0));
    let a1 = running(mock::alloc(&job, 1));
    let mut regs = alloc_registrations(&a0, &spec(&job, &a0), &node());
    regs.extend(alloc_registrations(&a1, &spec(&job, &a1), &node()));
    let c = Catalog::new(7, regs);
    assert_eq!(c.instances("TODO-DB").count(), 2);
    assert_eq!(c.instances("todo-web").count(), 2);
    assert_eq!(c.service("default", "todo-db").len(), 2);
    assert!(c.service("other", "todo-db").is_empty());
    assert_eq!(
        c.stubs("default"),
        vec![(
            "default".to_string(),
            vec![
                ("Todo-Web".to_string(), vec!["v1".to_string()]),
                ("todo-db".to_string(), vec!["v1".to_string()]),
            ]
        )]
    );
}
