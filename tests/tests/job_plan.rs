//! `drover job plan` as a CI step runs it: the seed jobs against an empty cluster (golden
//! output, `tests/fixtures/plan/`), and a directory against a running dev agent after edits,
//! with Nomad's exit codes (0 nothing created or destroyed, 1 changes, 255 an error), `-json`,
//! offline against the agent's data dir, and no writes anywhere.
//! Agents here use 127.0.3.1–127.0.3.9.

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_tests::{TestAgent, drover, repo, stderr, stdout};

const SEEDS: &[&str] = &[
    "whoami.nomad",
    "todo-list.nomad",
    "todo-list-dev.nomad",
    "consul.nomad",
    "todo-list-v2/todo-db.nomad",
    "todo-list-v2/todo-web.nomad",
];

fn golden_path(seed: &str, suffix: &str) -> PathBuf {
    repo()
        .join("tests/fixtures/plan")
        .join(format!("{}{suffix}.txt", seed.replace('/', "__")))
}

/// Compares with the golden file; `UPDATE_GOLDEN=1` rewrites it (review the diff!).
fn assert_golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(actual, expected, "{} differs", path.display());
}

#[test]
fn seed_jobs_against_an_empty_cluster_match_their_golden_plans() {
    let seed_dir = repo().join("tests/fixtures/seed");
    for seed in SEEDS {
        let out = drover(&seed_dir, &["job", "plan", "-offline", seed]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{seed}: a new job creates allocations\n{}",
            stderr(&out)
        );
        assert_golden(&golden_path(seed, ""), &stdout(&out));
        // -verbose expands every field of what is added, as Nomad's does.
        let out = drover(&seed_dir, &["job", "plan", "-offline", "-verbose", seed]);
        assert_eq!(out.status.code(), Some(1), "{seed}: {}", stderr(&out));
        assert_golden(&golden_path(seed, ".verbose"), &stdout(&out));
    }
}

#[test]
fn seed_jobs_as_json_for_ci() {
    let seed_dir = repo().join("tests/fixtures/seed");
    let mut args = vec!["job", "plan", "-offline", "-json"];
    args.extend(SEEDS.iter().filter(|s| **s != "todo-list-dev.nomad"));
    let out = drover(&seed_dir, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["ExitCode"], 1);
    assert_eq!(v["Errors"].as_array().map(Vec::len), Some(0));
    let jobs = v["Jobs"].as_array().expect("Jobs");
    assert_eq!(jobs.len(), SEEDS.len() - 1);
    for j in jobs {
        assert_eq!(j["Plan"]["Diff"]["Type"], "Added", "{j}");
        assert_eq!(j["ExitCode"], 1);
        assert_eq!(j["Removed"], false);
        assert!(j["File"].as_str().is_some_and(|f| f.ends_with(".nomad")));
        assert!(j["Plan"]["Annotations"]["DesiredTGUpdates"].is_object());
    }
}

#[test]
fn a_broken_file_or_no_agent_is_exit_255() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.nomad"),
        "job \"bad\" {\n  group \"g\" {\n    count = \"many\"\n",
    )
    .expect("write");
    let out = drover(dir.path(), &["job", "plan", "-offline", "bad.nomad"]);
    assert_eq!(out.status.code(), Some(255), "{}", stdout(&out));
    assert!(stderr(&out).contains("bad.nomad"), "{}", stderr(&out));

    // A usage error is not "changes" (1) either.
    let out = drover(
        dir.path(),
        &["job", "plan", "-offline", "-bogus", "bad.nomad"],
    );
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    let out = drover(dir.path(), &["job", "plan"]);
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    // Other commands keep Nomad's 1.
    let out = drover(dir.path(), &["job", "validate", "-bogus"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let seed = repo().join("tests/fixtures/seed/whoami.nomad");
    let seed = seed.to_str().expect("utf-8 path");
    // Nothing listens on port 1: Nomad's "Error during plan", exit 255, no silent fallback.
    let out = drover(
        dir.path(),
        &["job", "plan", "-address", "http://127.0.3.9:1", seed],
    );
    assert_eq!(out.status.code(), Some(255), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Error during plan") && stderr(&out).contains("127.0.3.9:1"),
        "{}",
        stderr(&out)
    );
}

/// A raw_exec job with no ports, so nothing on the machine collides with it.
const SLEEPER: &str = r#"job "sleeper" {
  datacenters = ["dc1"]
  group "sleep" {
    task "sleep" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

fn whoami() -> String {
    std::fs::read_to_string(repo().join("manifests/whoami.nomad")).expect("whoami")
}

fn running(a: &TestAgent, job: &str) -> bool {
    a.allocs(job).iter().any(|x| x["ClientStatus"] == "running")
}

/// What the agent holds, to check a plan changed none of it: each job's version and modify
/// index, and the number of evaluations.
fn state_of(a: &TestAgent) -> (Vec<(String, u64, u64)>, usize) {
    let jobs = a.get("/v1/jobs").expect("jobs");
    let mut out: Vec<(String, u64, u64)> = jobs
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| {
            (
                j["ID"].as_str().unwrap_or_default().to_string(),
                j["Version"].as_u64().unwrap_or(0),
                j["JobModifyIndex"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    out.sort();
    let evals = a.get("/v1/evaluations").expect("evals");
    (out, evals.as_array().map_or(0, Vec::len))
}

/// The plan text with the job modify index, which depends on the agent's history, blanked.
fn normalized(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("Job Modify Index: ") {
                "Job Modify Index: N"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn plan_a_directory_against_a_running_dev_agent_after_edits() {
    let mut a = TestAgent::start("127.0.3.1", &[]);
    a.drop_job("whoami.nomad", &whoami());
    a.drop_job("sleeper.nomad", SLEEPER);
    a.wait_until(Duration::from_secs(60), "both jobs run", |a| {
        running(a, "whoami") && running(a, "sleeper")
    });

    // The pull request's checkout of the jobs directory.
    let pr = tempfile::tempdir().expect("tempdir");
    let pr_dir = pr.path().to_str().expect("utf-8").to_string();
    std::fs::write(pr.path().join("whoami.nomad"), whoami()).expect("write");
    std::fs::write(pr.path().join("sleeper.nomad"), SLEEPER).expect("write");
    let before = state_of(&a);

    // Unchanged: exit 0.
    let out = a.cli(&["job", "plan", &pr_dir]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = normalized(&stdout(&out));
    assert!(
        text.contains("Job: \"whoami\"\nTask Group: \"web\" (1 ignore)\n  Task: \"api\"\n\nScheduler dry-run:\n- All tasks successfully allocated."),
        "{text}"
    );

    // An environment variable added to whoami, the sleeper's file deleted: exit 1.
    let edited = whoami().replacen(
        "driver = \"docker\"",
        "driver = \"docker\"\n\n      env {\n        GREETING = \"hi\"\n      }",
        1,
    );
    assert_ne!(edited, whoami(), "the edit applies");
    std::fs::write(pr.path().join("whoami.nomad"), &edited).expect("write");
    std::fs::remove_file(pr.path().join("sleeper.nomad")).expect("rm");
    let out = a.cli(&["job", "plan", &pr_dir]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        normalized(&stdout(&out)),
        r#"+/- Job: "whoami"
+/- Task Group: "web" (1 create/destroy update)
  +/- Task: "api" (forces create/destroy update)
    + Env[GREETING]: "hi"

Scheduler dry-run:
- All tasks successfully allocated.

Job Modify Index: N

- Job: "sleeper"
- Task Group: "sleep" (1 destroy)
  - Task: "sleep" (forces destroy)

Scheduler dry-run:
- All tasks successfully allocated.

Job Modify Index: N"#
    );

    // The same as JSON, for CI.
    let out = a.cli(&["job", "plan", "-json", &pr_dir]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let jobs = v["Jobs"].as_array().expect("Jobs");
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["JobID"], "whoami");
    assert_eq!(
        jobs[0]["Plan"]["Annotations"]["DesiredTGUpdates"]["web"]["DestructiveUpdate"],
        1
    );
    assert_eq!(jobs[1]["JobID"], "sleeper");
    assert_eq!(jobs[1]["Removed"], true);
    assert_eq!(jobs[1]["Plan"]["Diff"]["Type"], "Deleted");

    // -var reaches the job: a count the node cannot hold (static port 8080) fails placement.
    let var_job = edited.replacen("#count = 2", "count = var.n", 1);
    assert_ne!(var_job, edited, "the edit applies");
    std::fs::write(
        pr.path().join("whoami.nomad"),
        format!("variable \"n\" {{\n  type = number\n  default = 1\n}}\n\n{var_job}"),
    )
    .expect("write");
    let out = a.cli(&[
        "job",
        "plan",
        "-var",
        "n=2",
        &format!("{pr_dir}/whoami.nomad"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("+/- Count: \"1\" => \"2\" (forces create)"),
        "{text}"
    );
    assert!(
        text.contains("- WARNING: Failed to place all allocations.\n  Task Group \"web\" (failed to place 1 allocation):\n    * "),
        "{text}"
    );
    assert!(
        text.contains(
            "    * Dimension \"network: reserved port collision http=8080\" exhausted on 1 nodes\n"
        ),
        "{text}"
    );

    // A file that does not parse: 255, and no removal is guessed.
    std::fs::write(pr.path().join("broken.nomad"), "job \"x\" {").expect("write");
    let out = a.cli(&["job", "plan", &pr_dir]);
    assert_eq!(out.status.code(), Some(255), "{}", stdout(&out));
    assert!(stderr(&out).contains("broken.nomad"), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("- Job: \"sleeper\""),
        "{}",
        stdout(&out)
    );
    std::fs::remove_file(pr.path().join("broken.nomad")).expect("rm");

    assert_eq!(
        state_of(&a),
        before,
        "planning changed nothing on the agent"
    );

    // Offline against the agent's own state (read-only): the same diff.
    std::fs::write(pr.path().join("whoami.nomad"), &edited).expect("write");
    let online = normalized(&stdout(&a.cli(&["job", "plan", &pr_dir])));
    a.stop(false);
    // The dev agent keeps the server's state in <data-dir>/server/state.db.
    let state_dir = a.data_dir.path().join("data/server");
    let db_files = || -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&state_dir)
            .expect("state dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("state.db"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("read"),
                )
            })
            .collect();
        v.sort();
        v
    };
    let files_before = db_files();
    assert!(
        files_before.iter().any(|(n, _)| n == "state.db"),
        "the agent's state.db is in {}",
        state_dir.display()
    );
    // The agent's -data-dir, or its server directory: both find the state.
    for dir in [a.data_dir.path().join("data"), state_dir.clone()] {
        let out = drover(
            pr.path(),
            &[
                "job",
                "plan",
                "-data-dir",
                dir.to_str().expect("utf-8"),
                &pr_dir,
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert_eq!(normalized(&stdout(&out)), online);
    }
    let summary = |files: &[(String, Vec<u8>)]| -> Vec<(String, usize)> {
        files.iter().map(|(n, b)| (n.clone(), b.len())).collect()
    };
    let files_after = db_files();
    assert_eq!(
        summary(&files_after),
        summary(&files_before),
        "no state file is created or resized"
    );
    assert!(
        files_after == files_before,
        "the state files are byte for byte the same"
    );
}
