//! Golden and round-trip tests over the seed's job files (`tests/fixtures/seed/`, copied verbatim
//! from the tutorial) and the examples in `manifests/` and `examples/`.

use std::path::Path;
use std::time::Duration;

use drover::jobspec::{self, ParseOptions, Parsed};
use drover::structs::*;

mod common;
use common::{all_examples, repo};

fn parse(path: &Path) -> Parsed {
    jobspec::parse_file(path, &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn seed(name: &str) -> Job {
    parse(&repo().join("tests/fixtures/seed").join(name)).job
}

#[test]
fn every_seed_job_and_example_validates() {
    for f in all_examples() {
        parse(&f);
    }
}

#[test]
fn yaml_round_trip_gives_the_identical_model() {
    for f in all_examples() {
        let job = parse(&f).job;
        let yaml = jobspec::to_yaml(&job);
        let back = jobspec::parse(
            Path::new("roundtrip.yaml"),
            yaml.as_bytes(),
            &ParseOptions::default(),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{}: the YAML form does not parse back:\n{e}\n{yaml}",
                f.display()
            )
        });
        assert_eq!(
            job,
            back.job,
            "{}: YAML round trip changed the job:\n{yaml}",
            f.display()
        );
        assert!(
            back.warnings.is_empty(),
            "{}: {:?}",
            f.display(),
            back.warnings
        );
    }
}

#[test]
fn whoami_matches_the_tutorial() {
    let job = seed("whoami.nomad");
    assert_eq!(job.id, "whoami");
    assert_eq!(job.job_type, JobType::Service);
    assert_eq!(job.datacenters, ["dc1"]);
    assert_eq!(job.priority, 50);
    let g = job.group("web").expect("group web");
    assert_eq!(g.count, 1);
    assert_eq!(
        g.networks[0].reserved_ports[0],
        Port {
            label: "http".into(),
            value: 8080,
            to: 80,
            ..Default::default()
        }
    );
    let t = g.task("api").expect("task api");
    assert_eq!(t.driver, "docker");
    let TaskConfig::Docker(cfg) = &t.config else {
        panic!("docker config")
    };
    assert_eq!(cfg.image, "docker4dotnet/whoami");
    assert_eq!(cfg.ports, ["http"]);
    assert_eq!(
        t.resources,
        Resources {
            cpu: 100,
            cores: 0,
            memory: 300,
            memory_max: 0
        }
    );
    assert_eq!(t.kill_timeout, Duration::from_secs(5));
    assert_eq!(g.restart, RestartPolicy::service_default());
    assert_eq!(g.reschedule, ReschedulePolicy::service_default());
    assert_eq!(g.ephemeral_disk.size, 300);
}

#[test]
fn legacy_port_map_becomes_the_group_network() {
    let parsed = parse(&repo().join("tests/fixtures/seed/todo-list-dev.nomad"));
    assert_eq!(
        parsed.warnings.len(),
        2,
        "one deprecation warning per task-level network"
    );
    assert!(
        parsed
            .warnings
            .iter()
            .all(|w| w.message.contains("deprecated"))
    );
    let g = parsed.job.group("todo").expect("group todo");
    let net = &g.networks[0];
    assert_eq!(
        net.dynamic_ports,
        [Port {
            label: "db".into(),
            value: 0,
            to: 5432,
            ..Default::default()
        }]
    );
    assert_eq!(
        net.reserved_ports,
        [Port {
            label: "http".into(),
            value: 8010,
            to: 80,
            ..Default::default()
        }]
    );
    let ports = |task: &str| match &g.task(task).expect("task").config {
        TaskConfig::Docker(c) => c.ports.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ports("db"), ["db"]);
    assert_eq!(ports("web"), ["http"]);
    let db = g.task("db").expect("db");
    assert_eq!(db.services[0].name, "todo-db");
    assert_eq!(db.services[0].address_mode, "driver");
    assert_eq!(db.services[0].port.as_deref(), Some("db"));
    let web = g.task("web").expect("web");
    assert_eq!(web.env["Database__Provider"], "Postgres");
}

#[test]
fn todo_v2_jobs_keep_resources_checks_artifacts_and_volumes() {
    let web = seed("todo-list-v2/todo-web.nomad");
    let g = web.group("todo-web").expect("group");
    assert_eq!(g.count, 2);
    let t = g.task("web").expect("task");
    assert_eq!((t.resources.cpu, t.resources.memory), (250, 256));
    let TaskConfig::Docker(cfg) = &t.config else {
        panic!("docker")
    };
    assert_eq!(cfg.volumes, ["local/config:/app/config"]);
    assert_eq!(cfg.dns_servers, ["SERVER-IP"]);
    assert_eq!(cfg.dns_search_domains, ["service.dc1.consul"]);
    assert_eq!(t.artifacts[0].mode, "file");
    assert_eq!(t.artifacts[0].destination, "local/config/config.json");
    let check = &t.services[0].checks[0];
    assert_eq!(
        (check.check_type.as_str(), check.path.as_deref()),
        ("http", Some("/"))
    );
    assert_eq!(
        (check.interval, check.timeout),
        (Duration::from_secs(10), Duration::from_secs(5))
    );

    let db = seed("todo-list-v2/todo-db.nomad");
    let t = db
        .group("todo-db")
        .and_then(|g| g.task("db"))
        .expect("task");
    assert_eq!(t.services[0].checks[0].check_type, "tcp");
    assert_eq!((t.resources.cpu, t.resources.memory), (500, 256));
}

#[test]
fn consul_job_is_a_raw_exec_task_with_an_artifact() {
    let job = seed("consul.nomad");
    let t = job
        .group("consul")
        .and_then(|g| g.task("consul"))
        .expect("task");
    let TaskConfig::RawExec(cfg) = &t.config else {
        panic!("raw_exec")
    };
    assert_eq!(cfg.command, "consul");
    assert_eq!(cfg.args, ["agent", "-dev"]);
    assert!(t.artifacts[0].source.ends_with("darwin_amd64.zip"));
    assert_eq!(t.artifacts[0].destination, "local/");
}

#[test]
fn hcl2_variables_locals_and_functions_evaluate() {
    let job = parse(&repo().join("manifests/hello.nomad")).job;
    let g = job.group("hello").expect("group");
    assert_eq!(g.networks[0].reserved_ports[0].value, 8090);
    assert_eq!(g.restart.mode, RestartMode::Delay);
    let t = g.task("server").expect("task");
    let TaskConfig::RawExec(cfg) = &t.config else {
        panic!("raw_exec")
    };
    assert!(
        cfg.args[1].starts_with("echo HELLO from hello;"),
        "{:?}",
        cfg.args
    );
    // Runtime interpolations are left for the node.
    assert_eq!(t.env["ADDR"], "${NOMAD_ADDR_http}");
    assert_eq!(t.constraints[0].attribute, "${attr.kernel.name}");

    let mut opts = ParseOptions::default();
    opts.vars.vars.insert("greeting".into(), "hi".into());
    opts.vars.vars.insert("port".into(), "9000".into());
    let job = jobspec::parse_file(&repo().join("manifests/hello.nomad"), &opts)
        .expect("parses")
        .job;
    let g = job.group("hello").expect("group");
    assert_eq!(g.networks[0].reserved_ports[0].value, 9000);
    assert_eq!(g.task("server").expect("task").env["GREETING"], "hi");
}
