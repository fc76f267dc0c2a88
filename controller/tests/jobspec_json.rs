//! Nomad's API JSON form: every seed job (and example in `manifests/`, where there is one)
//! survives HCL → model → API JSON → model unchanged, Nomad's nulls mean defaults, and JSON
//! mistakes are reported with API field paths and the line and column they are on.

use std::path::Path;
use std::time::Duration;

use drover::jobspec::{self, Diagnostic, JobspecError, ParseOptions, Parsed};
use drover::structs::*;
use serde_json::json;

mod common;
use common::{all_examples as seed_and_examples, repo};

fn parse_file(path: &Path) -> Parsed {
    jobspec::parse_file(path, &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_json(src: &str) -> Result<Parsed, JobspecError> {
    jobspec::parse(
        Path::new("job.json"),
        src.as_bytes(),
        &ParseOptions::default(),
    )
}

fn first_error(e: &JobspecError) -> &Diagnostic {
    e.errors().next().expect("at least one error")
}

#[test]
fn every_seed_job_round_trips_through_api_json() {
    for f in seed_and_examples() {
        let job = parse_file(&f).job;
        for (form, doc) in [
            ("wrapped", jobspec::to_api_json(&job)),
            ("bare", jobspec::to_api_job(&job)),
        ] {
            let text = serde_json::to_string_pretty(&doc).expect("JSON serialises");
            let back = parse_json(&text).unwrap_or_else(|e| {
                panic!(
                    "{}: the {form} API JSON does not parse back:\n{e}\n{text}",
                    f.display()
                )
            });
            assert_eq!(
                job,
                back.job,
                "{}: the {form} API JSON changed the job:\n{text}",
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
}

#[test]
fn round_trip_keeps_every_field_the_model_has() {
    let src = r#"
job "full" {
  type        = "batch"
  priority    = 70
  all_at_once = true
  region      = "eu"
  namespace   = "apps"
  node_pool   = "big"
  meta { team = "a" }
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  constraint { distinct_hosts = true }
  affinity {
    attribute = "${node.datacenter}"
    value     = "dc2"
    weight    = -30
  }
  spread {
    attribute = "${node.datacenter}"
    weight    = 40
    target "dc1" { percent = 60 }
    target "dc2" { percent = 40 }
  }
  update {
    max_parallel = 2
    canary       = 1
    auto_revert  = true
    stagger      = "45s"
  }
  reschedule {
    attempts = 4
    interval = "2h"
  }
  group "g" {
    count = 0
    shutdown_delay = "1500ms"
    stop_after_client_disconnect = "2m"
    max_client_disconnect = "0s"
    ephemeral_disk {
      size   = 500
      sticky = true
    }
    restart {
      attempts = 1
      delay    = "5s"
      mode     = "delay"
    }
    network {
      mode     = "bridge"
      hostname = "box"
      dns {
        servers  = ["1.1.1.1"]
        searches = ["local"]
      }
      port "http" {
        static = 8080
        to     = 80
        host_network = "public"
      }
      port "admin" {
        to = 9000
        ignore_collision = true
      }
    }
    service {
      name         = "web"
      port         = "http"
      tags         = ["a", "b"]
      canary_tags  = ["c"]
      provider     = "nomad"
      address_mode = "host"
      task         = "api"
      meta { version = "1" }
      check_restart {
        limit = 3
        grace = "10s"
      }
      check {
        type     = "http"
        path     = "/health"
        method   = "POST"
        body     = "{}"
        interval = "10s"
        timeout  = "2s"
        header { X-A = ["1", "2"] }
        success_before_passing   = 2
        failures_before_critical = 3
        check_restart { ignore_warnings = true }
      }
      check {
        name     = "tcp"
        type     = "tcp"
        port     = "admin"
        interval = "5s"
        timeout  = "1s"
        tls_skip_verify = true
        initial_status  = "passing"
      }
    }
    task "api" {
      driver       = "docker"
      user         = "nobody"
      leader       = true
      kill_timeout = "20s"
      kill_signal  = "SIGINT"
      shutdown_delay = "3s"
      config {
        image      = "busybox:1"
        command    = "sh"
        args       = ["-c", "sleep 1"]
        entrypoint = ["/bin/env"]
        ports      = ["http", "admin"]
        labels     = { a = "b" }
        privileged = true
        volumes    = ["/a:/b:ro"]
      }
      env { A = "1" }
      meta { m = "n" }
      resources {
        cores      = 2
        memory     = 512
        memory_max = 1024
      }
      restart { attempts = 5 }
      logs {
        max_files     = 3
        max_file_size = 7
      }
      artifact {
        source      = "https://example.com/a.tgz"
        destination = "local/a"
        mode        = "dir"
        options { checksum = "md5:900150983cd24fb0d6963f7d28e17f72" }
        headers { X = "y" }
      }
      constraint {
        attribute = "${attr.cpu.arch}"
        operator  = "regexp"
        value     = "amd64|arm64"
      }
      affinity {
        attribute = "${meta.rack}"
        value     = "r1"
      }
      service {
        name = "api-svc"
        port = "admin"
      }
    }
    task "side" {
      driver = "raw_exec"
      config {
        command  = "/bin/true"
        args     = ["x"]
        work_dir = "/tmp"
      }
      logs { disabled = true }
    }
  }
}
"#;
    let job = jobspec::parse(
        Path::new("full.nomad"),
        src.as_bytes(),
        &ParseOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .job;
    let text = serde_json::to_string(&jobspec::to_api_json(&job)).expect("JSON serialises");
    let back = parse_json(&text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .job;
    assert_eq!(job, back, "{text}");

    // A stopped job stays stopped; the version is the state store's to set.
    let mut stopped = job.clone();
    stopped.stop = true;
    stopped.version = 7;
    let text = serde_json::to_string(&jobspec::to_api_json(&stopped)).expect("JSON serialises");
    let back = parse_json(&text).unwrap_or_else(|e| panic!("{e}")).job;
    assert!(back.stop);
    assert_eq!(back.version, 0);
}

#[test]
fn whoami_api_json_has_nomads_shape() {
    let job = parse_file(&repo().join("tests/fixtures/seed/whoami.nomad")).job;
    let doc = jobspec::to_api_json(&job);
    let group = &doc["Job"]["TaskGroups"][0];
    assert_eq!(group["Tasks"][0]["Config"]["image"], "docker4dotnet/whoami");
    assert_eq!(group["Tasks"][0]["Config"]["ports"], json!(["http"]));
    assert_eq!(
        group["Networks"][0]["ReservedPorts"][0],
        json!({"Label": "http", "Value": 8080, "To": 80, "HostNetwork": "", "IgnoreCollision": false})
    );
    assert_eq!(doc["Job"]["ID"], "whoami");
    assert_eq!(doc["Job"]["Datacenters"], json!(["dc1"]));
    assert_eq!(doc["Job"]["Type"], "service");
    assert_eq!(doc["Job"]["Priority"], 50);
    // Durations are integer nanoseconds, as Go marshals time.Duration.
    assert_eq!(
        group["RestartPolicy"]["Interval"],
        json!(30 * 60 * 1_000_000_000u64)
    );
    assert_eq!(group["Tasks"][0]["KillTimeout"], json!(5_000_000_000u64));
    assert_eq!(group["Update"]["MinHealthyTime"], json!(10_000_000_000u64));
    assert_eq!(group["Tasks"][0]["Resources"]["CPU"], 100);
    assert_eq!(group["Tasks"][0]["Resources"]["MemoryMB"], 300);
    // The fields Nomad always prints are there, unset.
    for key in [
        "Status",
        "CreateIndex",
        "ModifyIndex",
        "JobModifyIndex",
        "Periodic",
        "ParameterizedJob",
    ] {
        assert_eq!(doc["Job"][key], json!(null), "{key}");
    }
    assert_eq!(doc["Job"]["Stop"], false);
    assert_eq!(doc["Job"]["Version"], 0);
}

/// The shape `nomad job run -output whoami.nomad` prints: every pointer Nomad's parser left unset
/// is `null`, and Go's zero values stand for the rest.
const WHOAMI_AS_NOMAD_PRINTS_IT: &str = r#"{
    "Job": {
        "Region": null,
        "Namespace": null,
        "ID": "whoami",
        "Name": "whoami",
        "Type": null,
        "Priority": null,
        "AllAtOnce": null,
        "Datacenters": ["dc1"],
        "NodePool": null,
        "Constraints": null,
        "Affinities": null,
        "TaskGroups": [
            {
                "Name": "web",
                "Count": null,
                "Constraints": null,
                "Affinities": null,
                "Tasks": [
                    {
                        "Name": "api",
                        "Driver": "docker",
                        "User": "",
                        "Lifecycle": null,
                        "Config": {"image": "docker4dotnet/whoami", "ports": ["http"]},
                        "Constraints": null,
                        "Affinities": null,
                        "Env": null,
                        "Services": null,
                        "Resources": null,
                        "RestartPolicy": null,
                        "Meta": null,
                        "KillTimeout": null,
                        "LogConfig": null,
                        "Artifacts": null,
                        "Vault": null,
                        "Consul": null,
                        "Templates": null,
                        "DispatchPayload": null,
                        "VolumeMounts": null,
                        "Leader": false,
                        "ShutdownDelay": 0,
                        "KillSignal": "",
                        "Kind": "",
                        "ScalingPolicies": null,
                        "Secrets": null,
                        "Identity": null,
                        "Identities": null,
                        "Actions": null,
                        "Schedule": null
                    }
                ],
                "Spreads": null,
                "Volumes": null,
                "RestartPolicy": null,
                "Disconnect": null,
                "ReschedulePolicy": null,
                "EphemeralDisk": null,
                "Update": null,
                "Migrate": null,
                "Networks": [
                    {
                        "Mode": "",
                        "Device": "",
                        "CIDR": "",
                        "IP": "",
                        "DNS": null,
                        "ReservedPorts": [
                            {"Label": "http", "Value": 8080, "To": 80, "HostNetwork": "", "IgnoreCollision": false}
                        ],
                        "DynamicPorts": null,
                        "Hostname": "",
                        "MBits": null,
                        "CNI": null
                    }
                ],
                "Meta": null,
                "Services": null,
                "ShutdownDelay": null,
                "MaxRunDuration": null,
                "StopAfterClientDisconnect": null,
                "MaxClientDisconnect": null,
                "Scaling": null,
                "Consul": null,
                "PreventRescheduleOnLost": null
            }
        ],
        "Update": null,
        "Multiregion": null,
        "Spreads": null,
        "Periodic": null,
        "ParameterizedJob": null,
        "Reschedule": null,
        "Migrate": null,
        "Meta": null,
        "UI": null,
        "Stop": null,
        "ParentID": null,
        "Dispatched": false,
        "DispatchIdempotencyToken": null,
        "Payload": null,
        "ConsulNamespace": null,
        "VaultNamespace": null,
        "NomadTokenID": null,
        "Status": null,
        "StatusDescription": null,
        "Stable": null,
        "Version": null,
        "SubmitTime": null,
        "CreateIndex": null,
        "ModifyIndex": null,
        "JobModifyIndex": null,
        "VersionTag": null
    }
}"#;

#[test]
fn nulls_for_unset_fields_mean_nomads_defaults() {
    let parsed = parse_json(WHOAMI_AS_NOMAD_PRINTS_IT).unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let job = parsed.job;
    assert_eq!(
        job,
        parse_file(&repo().join("tests/fixtures/seed/whoami.nomad")).job
    );

    let g = &job.task_groups[0];
    let t = &g.tasks[0];
    assert_eq!(
        (job.namespace.as_str(), job.region.as_str(), job.priority),
        ("default", "global", 50)
    );
    assert_eq!(job.job_type, JobType::Service);
    assert_eq!(g.count, 1);
    assert_eq!(g.restart, RestartPolicy::service_default());
    assert_eq!(g.reschedule, ReschedulePolicy::service_default());
    assert_eq!(g.update, UpdateStrategy::default());
    assert_eq!(g.networks[0].mode, "host");
    assert_eq!((t.resources.cpu, t.resources.memory), (100, 300));
    assert_eq!(t.kill_timeout, Duration::from_secs(5));
    assert_eq!(t.restart, None);
}

#[test]
fn a_bare_job_with_almost_nothing_gets_every_default() {
    let job = parse_json(
        r#"{"ID": "tiny", "Type": "batch",
            "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "true"}}]}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .job;
    assert_eq!(job.name, "tiny");
    assert_eq!(job.datacenters, vec!["*".to_string()]);
    assert_eq!(job.task_groups[0].restart, RestartPolicy::batch_default());
    assert_eq!(
        job.task_groups[0].reschedule,
        ReschedulePolicy::batch_default()
    );
    assert_eq!(job.task_groups[0].tasks[0].resources, Resources::default());
    assert_eq!(job.task_groups[0].count, 1);
}

#[test]
fn unknown_fields_are_ignored_and_keys_match_in_any_case() {
    let job = parse_json(
        r#"{"Job": {"id": "x", "SomethingNew": {"a": 1}, "datacenters": ["dc9"],
            "TaskGroups": [{"name": "g", "count": 3, "Future": true,
              "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"image": "redis"}}]}]}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .job;
    assert_eq!(job.id, "x");
    assert_eq!(job.datacenters, vec!["dc9".to_string()]);
    assert_eq!(job.task_groups[0].count, 3);
}

#[test]
fn malformed_json_names_the_line_and_column() {
    let src = "{\n  \"Job\": {\n    \"ID\": \"x\",\n    \"TaskGroups\": [}\n}\n";
    let err = parse_json(src).expect_err("malformed JSON must not parse");
    let d = first_error(&err);
    assert_eq!(d.pos.line, 4, "{err}");
    assert!(d.pos.col > 1, "{err}");
    assert!(d.message.starts_with("invalid JSON: "), "{err}");
    assert!(err.to_string().contains("job.json:4:"), "{err}");

    let err = parse_json("{\"Job\": {\"ID\": \"x\"}} trailing").expect_err("trailing text");
    assert_eq!(first_error(&err).pos.line, 1, "{err}");

    let err =
        parse_json("{\"Job\": {\"ID\": \"x\",\n \"ID\": \"y\"}}").expect_err("duplicate keys");
    assert_eq!(first_error(&err).pos, jobspec::Pos::new(2, 2), "{err}");
}

/// One task group, `task` spliced into its single task.
fn one_task(group: &str, task: &str) -> String {
    format!(
        r#"{{"Job": {{
  "ID": "j",
  "TaskGroups": [{{
    "Name": "web",{group}
    "Tasks": [{{
      "Name": "api",
      "Driver": "docker",{task}
    }}]
  }}]
}}}}"#
    )
}

#[test]
fn a_missing_image_names_the_field_and_where() {
    let err =
        parse_json(&one_task("", "\n      \"Config\": {\"ports\": []}")).expect_err("no image");
    let d = first_error(&err);
    assert_eq!(
        d.field, r#"Job > TaskGroups[0] "web" > Tasks[0] "api" > Config"#,
        "{err}"
    );
    assert!(d.message.contains("image is required"), "{err}");
    assert_eq!(d.pos, jobspec::Pos::new(8, 17), "{err}");
}

#[test]
fn validation_errors_carry_api_paths() {
    let cases = [
        (
            one_task(
                "\n    \"Count\": \"many\",",
                "\n      \"Config\": {\"image\": \"x\"}",
            ),
            r#"Job > TaskGroups[0] "web" > Count"#,
            "expected a number",
        ),
        (
            one_task(
                "",
                "\n      \"Config\": {\"image\": \"x\", \"ports\": [\"http\"]}",
            ),
            r#"Job > TaskGroups[0] "web" > Tasks[0] "api" > Config > ports"#,
            "not a port declared in the group network",
        ),
        (
            one_task(
                "",
                "\n      \"Config\": {\"image\": \"x\", \"imag\": \"y\"}",
            ),
            r#"Job > TaskGroups[0] "web" > Tasks[0] "api" > Config"#,
            "did you mean \"image\"",
        ),
        (
            one_task(
                "",
                "\n      \"Config\": {\"image\": \"x\"}, \"KillTimeout\": \"soon\"",
            ),
            r#"Job > TaskGroups[0] "web" > Tasks[0] "api" > KillTimeout"#,
            "invalid duration",
        ),
        (
            one_task(
                "",
                "\n      \"Config\": {\"image\": \"x\"}, \"KillTimeout\": -5",
            ),
            r#"Job > TaskGroups[0] "web" > Tasks[0] "api" > KillTimeout"#,
            "a duration in nanoseconds",
        ),
        (
            one_task(
                "",
                "\n      \"Config\": {\"image\": \"x\"}, \"Resources\": {\"MemoryMB\": 0}",
            ),
            r#"Job > TaskGroups[0] "web" > Tasks[0] "api" > Resources > MemoryMB"#,
            "at least 1 MB",
        ),
        (
            one_task(
                "\n    \"Services\": [{\"Name\": \"ok\"}, {\"Name\": \"web\", \"Checks\": [{\"Type\": \"http\", \"Path\": \"/\", \"Interval\": 1000000000}]}],",
                "\n      \"Config\": {\"image\": \"x\"}",
            ),
            r#"Job > TaskGroups[0] "web" > Services[1] > Checks[0] > Timeout"#,
            "timeout is required",
        ),
        (
            one_task(
                "\n    \"Networks\": [{\"DynamicPorts\": [{\"Label\": \"a b\"}]}],",
                "\n      \"Config\": {\"image\": \"x\"}",
            ),
            r#"Job > TaskGroups[0] "web" > Networks[0] > DynamicPorts[0] "a b""#,
            "invalid port label",
        ),
        (
            one_task(
                "",
                "\n      \"Config\": {\"image\": \"x\"}, \"Templates\": [{\"EmbeddedTmpl\": \"x\"}]",
            ),
            r#"Job > TaskGroups[0] "web" > Tasks[0] "api" > Templates"#,
            "unsupported in drover",
        ),
    ];
    for (src, field, message) in cases {
        let err = parse_json(&src).expect_err(&src);
        assert!(
            err.errors()
                .any(|d| d.field == field && d.message.contains(message)),
            "expected {field}: …{message}… in\n{err}\nfrom\n{src}"
        );
    }

    let src =
        one_task("", "\n      \"Config\": {\"image\": \"x\"}").replace("\"docker\"", "\"dockr\"");
    let err = parse_json(&src).expect_err("unknown driver");
    let d = first_error(&err);
    assert_eq!(
        d.field, r#"Job > TaskGroups[0] "web" > Tasks[0] "api" > Driver"#,
        "{err}"
    );
    assert!(d.message.contains("did you mean \"docker\""), "{err}");
}

#[test]
fn structural_mistakes_are_named_by_the_reader() {
    let err = parse_json(r#"{"Job": {"ID": "j", "TaskGroups": {"Name": "web"}}}"#)
        .expect_err("an object");
    assert!(
        err.errors()
            .any(|d| d.field == "Job > TaskGroups"
                && d.message.contains("expected a list of objects")),
        "{err}"
    );

    let err =
        parse_json(r#"{"Job": {"ID": "j", "TaskGroups": [{"Count": 1}]}}"#).expect_err("no name");
    assert!(
        err.errors()
            .any(|d| d.field == "Job > TaskGroups[0]" && d.message == "Name is required"),
        "{err}"
    );

    let err = parse_json(r#"[1, 2]"#).expect_err("not an object");
    assert!(
        first_error(&err)
            .message
            .contains("expected a JSON object holding a job"),
        "{err}"
    );

    let err = parse_json(r#"{"Job": {"TaskGroups": []}}"#).expect_err("no ID");
    assert!(
        err.errors()
            .any(|d| d.message.contains("job ID must not be empty")),
        "{err}"
    );
}
