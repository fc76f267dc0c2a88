//! A full disk under the state database, against a real `drover agent -dev` whose data dir is a
//! small tmpfs mounted by the test (the tests run as root). A write that does not fit — a job
//! registered through the API, or a job file — fails saying the database or its disk is full
//! (a 500 for the API, the file's error in `/v1/drover/manifests`) and is logged; the agent
//! keeps answering; nothing of the refused jobs is recorded; once space is freed the same
//! request succeeds, and the file is applied when it is written again. The agent binds
//! 127.0.0.51.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use drover_tests::TestAgent;
use serde_json::{Value, json};

/// A tmpfs of `size` mounted on a fresh directory; unmounted (lazily, so an open file cannot
/// keep it) and the directory removed when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mounting a tmpfs failed (the tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` until the filesystem has no room left.
    fn fill(&self, name: &str) {
        let mut f = std::fs::File::create(self.path().join(name)).expect("create the filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            if let Err(e) = f.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
                break;
            }
        }
        // The last partial chunk may have left a few bytes: take them too.
        while f.write_all(&[0u8]).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).output();
    }
}

/// POSTs `body` to the agent and returns the status and the body text, whatever the status.
fn post(a: &TestAgent, path: &str, body: &Value) -> (u16, String) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let mut resp = agent
        .post(&format!("{}{path}", a.addr()))
        .send_json(body)
        .expect("the agent answers");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

fn job_ids(a: &TestAgent) -> Vec<String> {
    a.get("/v1/jobs")
        .expect("the job list answers")
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|j| j["ID"].as_str().map(str::to_string))
        .collect()
}

/// A raw_exec batch job file whose meta is far too big for a full disk.
fn big_file() -> String {
    format!(
        r#"job "from-file" {{
  datacenters = ["dc1"]
  type        = "batch"
  meta {{
    blob = "{}"
  }}
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/true"
      }}
    }}
  }}
}}
"#,
        "y".repeat(1024 * 1024)
    )
}

/// The manifests status's errors for `file.nomad`, joined.
fn file_errors(a: &TestAgent) -> String {
    let m = a.get("/v1/drover/manifests").unwrap_or_default();
    m["Files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| {
            f["Path"]
                .as_str()
                .is_some_and(|p| p.ends_with("file.nomad"))
        })
        .flat_map(|f| f["Errors"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["Message"].as_str().map(str::to_string))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn a_full_disk_fails_the_write_clearly_and_a_retry_succeeds_once_there_is_room() {
    // Declared before the agent, so it is unmounted after the agent is killed.
    let disk = Tmpfs::mount("8m");
    let a = TestAgent::start_prepared("127.0.0.51", &[], &[], |data| {
        std::os::unix::fs::symlink(disk.path(), data).expect("data dir on the tmpfs");
    });

    let hcl = r#"job "big" {
  datacenters = ["dc1"]
  type        = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
      resources {
        cpu    = 10
        memory = 16
      }
    }
  }
}
"#;
    let (status, body) = post(&a, "/v1/jobs/parse", &json!({"JobHCL": hcl}));
    assert_eq!(status, 200, "{body}");
    let mut job: Value = serde_json::from_str(&body).expect("the parsed job");
    // Far more than the database's WAL has room for once the disk is full.
    job["Meta"] = json!({"blob": "x".repeat(1024 * 1024)});
    let register = json!({"Job": job});

    let before = job_ids(&a);

    disk.fill("filler");
    let (status, body) = post(&a, "/v1/jobs", &register);
    assert_eq!(status, 500, "a write to a full disk fails: {body}");
    assert!(
        body.contains("the database or its disk is full"),
        "the error names the cause: {body}"
    );
    assert!(
        a.log().contains("the database or its disk is full"),
        "the error is logged\n--- agent log ---\n{}",
        a.log()
    );

    // The agent keeps answering, and nothing of the refused job was recorded.
    assert!(a.get("/v1/agent/self").is_ok(), "the agent still answers");
    assert_eq!(job_ids(&a), before, "the job list is unchanged");
    assert!(
        a.get("/v1/job/big").is_err(),
        "the refused job is not there"
    );
    let evals = a.get("/v1/evaluations").expect("evaluations answer");
    assert!(
        evals
            .as_array()
            .expect("a list")
            .iter()
            .all(|e| e["JobID"] != "big"),
        "no evaluation for the refused job: {evals}"
    );

    // A job file that does not fit is refused the same way, and the manifests status says why.
    let file = big_file();
    a.drop_job("file.nomad", &file);
    a.wait_until(
        Duration::from_secs(30),
        "the manifests status shows the file refused",
        |a| file_errors(a).contains("the database or its disk is full"),
    );
    assert!(a.get("/v1/agent/self").is_ok(), "the agent still answers");
    assert_eq!(job_ids(&a), before, "the job list is still unchanged");

    // Room again: the same request succeeds, and the job runs.
    std::fs::remove_file(disk.path().join("filler")).expect("free the disk");
    let (status, body) = post(&a, "/v1/jobs", &register);
    assert_eq!(status, 200, "the retry succeeds: {body}");
    assert!(job_ids(&a).contains(&"big".to_string()));
    // A refused file is applied again when it changes (or the agent restarts), not on resync.
    a.drop_job("file.nomad", &format!("{file}# retried\n"));
    a.wait_until(Duration::from_secs(30), "the file is applied", |a| {
        file_errors(a).is_empty() && job_ids(a).contains(&"from-file".to_string())
    });
    a.wait_until(Duration::from_secs(30), "the batch job completes", |a| {
        a.allocs("big")
            .iter()
            .any(|x| x["ClientStatus"] == "complete")
    });
}
