//! Forms real Nomad jobs use that the parser once refused (found by `real_jobs.rs`): each is
//! either read as Nomad reads it or refused as "unsupported", never as a syntax or type error.

use std::path::Path;
use std::time::Duration;

use drover::jobspec::{self, JobspecError, ParseOptions, Parsed};
use drover::structs::TaskConfig;

fn parse(name: &str, src: &str) -> Result<Parsed, JobspecError> {
    jobspec::parse(Path::new(name), src.as_bytes(), &ParseOptions::default())
}

fn ok(src: &str) -> Parsed {
    parse("job.nomad", src).unwrap_or_else(|e| panic!("{e}"))
}

/// The messages of the errors, after checking each says "unsupported".
fn only_unsupported(src: &str) -> Vec<String> {
    let err = parse("job.nomad", src).expect_err("the job is refused");
    let messages: Vec<String> = err.errors().map(|d| d.message.clone()).collect();
    assert!(!messages.is_empty());
    for m in &messages {
        assert!(
            m.contains("unsupported"),
            "not an unsupported error: {m}\n{err}"
        );
    }
    messages
}

#[test]
fn a_bare_runtime_reference_is_kept_as_text() {
    let p = ok(r#"
job "j" {
  group "g" {
    network {
      port "db" {}
    }
    task "t" {
      driver = "docker"
      config { image = "x" }
      service {
        port     = "db"
        provider = "nomad"
        address  = attr.unique.network.ip-address
      }
      env { NODE = node.unique.name }
    }
  }
}"#);
    let task = &p.job.task_groups[0].tasks[0];
    assert_eq!(
        task.services[0].address.as_deref(),
        Some("${attr.unique.network.ip-address}")
    );
    assert_eq!(task.env["NODE"], "${node.unique.name}");
}

#[test]
fn a_string_that_is_one_interpolation_keeps_the_value_type() {
    let p = ok(r#"
variable "os" { default = "linux" }
locals {
  linux_args = ["-c", "cat local/*"]
  win_args   = ["-Command", "Get-Content local/*"]
  args       = "${var.os != "windows" ? local.linux_args : local.win_args}"
}
job "j" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "sh"
        args    = local.args
      }
    }
  }
}"#);
    let TaskConfig::RawExec(cfg) = &p.job.task_groups[0].tasks[0].config else {
        panic!("raw_exec")
    };
    assert_eq!(cfg.args, ["-c", "cat local/*"]);
}

#[test]
fn only_the_group_restart_policy_must_fit_its_interval() {
    // Nomad validates the group's policy; a task's override is taken as written.
    let p = ok(r#"
job "j" {
  type = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config { command = "true" }
      restart {
        attempts = 2
        delay    = "15s"
        interval = "10s"
        mode     = "fail"
      }
    }
  }
}"#);
    let restart = p.job.task_groups[0].tasks[0]
        .restart
        .as_ref()
        .expect("task restart");
    assert_eq!(
        (restart.attempts, restart.interval),
        (2, Duration::from_secs(10))
    );

    let err = parse(
        "job.nomad",
        r#"
job "j" {
  group "g" {
    restart {
      attempts = 2
      delay    = "15s"
      interval = "10s"
    }
    task "t" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}"#,
    )
    .expect_err("the group policy cannot fit");
    assert!(
        err.to_string()
            .contains("interval (10s) must be at least attempts × delay"),
        "{err}"
    );
}

#[test]
fn a_task_directly_in_the_job_is_a_group_of_its_own() {
    let p = ok(r#"
job "sleep" {
  task "sleep" {
    driver = "raw_exec"
    config { command = "sleep" }
  }
  group "other" {
    task "t" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}"#);
    let groups: Vec<(&str, &str)> = p
        .job
        .task_groups
        .iter()
        .map(|g| (g.name.as_str(), g.tasks[0].name.as_str()))
        .collect();
    assert_eq!(groups, [("sleep", "sleep"), ("other", "t")]);
    assert_eq!(p.job.task_groups[0].count, 1);
}

#[test]
fn port_map_to_the_ports_own_runtime_value_binds_the_host_port() {
    let p = ok(r#"
job "j" {
  group "g" {
    task "web" {
      driver = "docker"
      config {
        image    = "x"
        port_map { http = "${NOMAD_PORT_http}" }
      }
      resources {
        network {
          port "http" {}
        }
      }
    }
  }
}"#);
    let g = &p.job.task_groups[0];
    let port = g.networks[0]
        .dynamic_ports
        .iter()
        .find(|p| p.label == "http")
        .expect("http port");
    assert_eq!(port.to, 0, "the container listens on the host port");
    let TaskConfig::Docker(cfg) = &g.tasks[0].config else {
        panic!("docker")
    };
    assert_eq!(cfg.ports, ["http"]);

    let messages = only_unsupported(
        r#"
job "j" {
  group "g" {
    task "web" {
      driver = "docker"
      config {
        image    = "x"
        port_map { http = "${NOMAD_PORT_other}" }
      }
      resources {
        network {
          port "http" {}
        }
      }
    }
  }
}"#,
    );
    assert!(
        messages[0].contains("port_map value known only at run time"),
        "{messages:?}"
    );
}

#[test]
fn the_same_legacy_port_label_in_two_tasks_is_unsupported() {
    let src = |second: &str| {
        format!(
            r#"
job "j" {{
  group "g" {{
    task "app" {{
      driver = "docker"
      config {{ image = "app" }}
      resources {{
        network {{
          port "http" {{}}
        }}
      }}
    }}
    task "db" {{
      driver = "docker"
      config {{ image = "db" }}
      resources {{
        network {{
          port "{second}" {{}}
        }}
      }}
    }}
  }}
}}"#
        )
    };
    let messages = only_unsupported(&src("http"));
    assert!(
        messages[0].contains("another task's task-level network"),
        "{messages:?}"
    );
    ok(&src("db"));
}

#[test]
fn a_connect_gateway_group_without_tasks_is_refused_only_for_connect() {
    let messages = only_unsupported(
        r#"
job "ig" {
  group "ingress" {
    network {
      mode = "bridge"
      port "inbound" { static = 8080 }
    }
    service {
      name = "ingress"
      port = "8080"
      connect {
        gateway {
          ingress {
            listener {
              port     = 8080
              protocol = "tcp"
              service { name = "api" }
            }
          }
        }
      }
    }
  }
}"#,
    );
    assert_eq!(messages.len(), 1, "{messages:?}");
}

#[test]
fn a_nomad_function_drover_lacks_is_unsupported() {
    let messages = only_unsupported(
        r#"
job "j" {
  meta { run = uuidv4() }
  group "g" {
    task "t" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}"#,
    );
    assert!(
        messages[0].contains("function \"uuidv4\" is unsupported"),
        "{messages:?}"
    );
}

#[test]
fn hostname_and_dns_in_a_task_level_network_only_warn() {
    let p = ok(r#"
job "j" {
  group "g" {
    task "t" {
      driver = "docker"
      config { image = "x" }
      resources {
        network {
          hostname = "box"
          port "http" {}
        }
      }
    }
  }
}"#);
    assert!(p.warnings.iter().any(|w| {
        w.message
            .starts_with("hostname in a task-level network has no effect")
    }));
}

#[test]
fn variables_in_yaml_are_refused_as_unsupported() {
    let err = parse(
        "job.yaml",
        "variable:\n  x:\n    default: 1\njob:\n  j:\n    group:\n      g:\n        task:\n          t:\n            driver: raw_exec\n            config:\n              command: \"true\"\n",
    )
    .expect_err("variables are HCL only");
    let messages: Vec<String> = err.errors().map(|d| d.message.clone()).collect();
    assert_eq!(messages.len(), 1, "{err}");
    assert!(
        messages[0].contains("unsupported in YAML job files"),
        "{err}"
    );
}
