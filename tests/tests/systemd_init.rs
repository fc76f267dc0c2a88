//! deploy/drover.service run by a real systemd: a container of the locally built
//! `drover-test/systemd` image (scripts/test-systemd-image) with systemd as PID 1, this build's
//! `drover` and the host's Docker socket mounted in, installed as docs/operations.md says.
//! Shows what the notify-socket test in operations.rs can only stand in for: `systemctl start`
//! returning on READY=1, the STATUS= line, the hardened service still reaching Docker and its
//! data dir, `systemctl reload` keeping the process, and a worker stuck in an evaluation getting
//! the agent restarted by the watchdog.
//!
//! The container has no network (`--network none`); the agent in it serves on its own loopback.
//! Its client sees the host's engine but places nothing: the one job it is given fits no node.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover_tests::{drover_bin, remove_containers, repo};

const IMAGE: &str = "drover-test/systemd:latest";
/// Short, so the stuck-loop case takes seconds (the shipped unit says 30 s).
const WATCHDOG: Duration = Duration::from_secs(4);

/// A container running systemd as its init, removed when dropped.
struct SystemdHost {
    name: String,
    node_id: Option<String>,
}

impl SystemdHost {
    fn boot() -> SystemdHost {
        let name = format!("drover-test-systemd-{}", std::process::id());
        let bin = drover_bin()
            .canonicalize()
            .expect("the drover binary exists");
        let deploy = repo().join("deploy").canonicalize().expect("deploy/");
        let gid = docker_socket_gid();
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "drover.test=true",
            "--network",
            "none",
            // systemd mounts the service's sandbox (ProtectSystem=, PrivateTmp= …).
            "--cap-add",
            "SYS_ADMIN",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "--tmpfs",
            "/tmp",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-v",
        ]
        .map(str::to_string)
        .to_vec();
        args.push(format!("{}:/usr/local/bin/drover:ro", bin.display()));
        args.push("-v".into());
        args.push(format!("{}:/deploy:ro", deploy.display()));
        // cgroup v1: systemd needs its own named hierarchy writable; it keeps to the
        // container's subtree (/docker/<id>). On cgroup v2 a private cgroup namespace does.
        if std::path::Path::new("/sys/fs/cgroup/systemd").is_dir() {
            args.extend(
                ["-v", "/sys/fs/cgroup/systemd:/sys/fs/cgroup/systemd:rw"].map(String::from),
            );
        } else {
            args.extend(["--cgroupns", "private"].map(String::from));
        }
        args.push(IMAGE.into());
        let out = Command::new("docker")
            .args(&args)
            .output()
            .expect("docker runs");
        assert!(
            out.status.success(),
            "starting {IMAGE} (built by scripts/test-systemd-image) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let host = SystemdHost {
            name,
            node_id: None,
        };
        host.wait_for("systemd to finish booting", Duration::from_secs(60), || {
            let (_, state) = host.sh("systemctl is-system-running");
            matches!(state.trim(), "running" | "degraded").then_some(())
        });
        // This build links against the host's glibc; the image's may be older.
        let (runs, out) = host.sh("/usr/local/bin/drover version");
        assert!(
            runs,
            "this build's drover does not run in {IMAGE} (a host glibc newer than the image's?); \
             rebuild the image from a suite as new as the host's, e.g. \
             DROVER_TEST_SYSTEMD_SUITE=trixie scripts/test-systemd-image:\n{out}"
        );
        // The engine's group, as the host names the socket's group id. `-o`: that id may
        // already be a group of the image's (hosts often give docker 999 or 998, Debian's
        // systemd-journal and systemd-network; a root-owned socket has 0).
        host.must(&format!("groupadd -o -g {gid} docker"));
        host
    }

    /// Runs `script` with `sh -c` in the container: (success, stdout and stderr).
    fn sh(&self, script: &str) -> (bool, String) {
        let out = Command::new("docker")
            .args(["exec", &self.name, "sh", "-c", script])
            .output()
            .expect("docker exec runs");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn must(&self, script: &str) -> String {
        let (ok, out) = self.sh(script);
        assert!(
            ok,
            "`{script}` failed in {}:\n{out}\n{}",
            self.name,
            self.journal()
        );
        out
    }

    fn write(&self, path: &str, contents: &str) {
        let mut child = Command::new("docker")
            .args([
                "exec",
                "-i",
                &self.name,
                "sh",
                "-c",
                &format!("cat > {path}"),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("docker exec runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(contents.as_bytes())
            .expect("write");
        assert!(child.wait().expect("wait").success(), "writing {path}");
    }

    /// One property of drover.service as `systemctl show` has it.
    fn prop(&self, name: &str) -> String {
        self.must(&format!("systemctl show drover -p {name} --value"))
            .trim()
            .to_string()
    }

    fn journal(&self) -> String {
        self.sh("journalctl -u drover --no-pager -o cat | tail -n 60")
            .1
    }

    fn wait_for<T>(&self, what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(t) = f() {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {within:?}; drover's journal:\n{}",
                self.journal()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for SystemdHost {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
        if let Some(id) = &self.node_id {
            remove_containers(&format!("drover.node={id}"));
        }
    }
}

fn docker_socket_gid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/var/run/docker.sock")
        .expect("the Docker socket")
        .gid()
}

const UNFIT_JOB: &str = r#"
job "stuck" {
  datacenters = ["nowhere"]
  group "g" {
    task "t" {
      driver = "docker"
      config {
        image   = "drover-test/busybox:latest"
        command = "sleep"
        args    = ["3600"]
      }
    }
  }
}
"#;

#[test]
fn the_unit_under_systemd_notifies_keeps_its_sandbox_and_the_watchdog_restarts_a_stuck_agent() {
    let mut host = SystemdHost::boot();

    // The install section of docs/operations.md, as written (the binary is mounted in).
    host.must(
        "useradd --system --user-group --no-create-home --shell /usr/sbin/nologin drover \
         && usermod -aG docker drover \
         && install -d -m 0755 /etc/drover \
         && install -d -m 0755 /etc/drover/jobs \
         && install -m 0644 /deploy/server.hcl /deploy/client.hcl /etc/drover/ \
         && install -m 0644 /deploy/drover.service /etc/systemd/system/drover.service \
         && systemctl daemon-reload",
    );
    host.must("mkdir -p /etc/systemd/system/drover.service.d");
    host.write(
        "/etc/systemd/system/drover.service.d/test.conf",
        &format!("[Service]\nWatchdogSec={}s\n", WATCHDOG.as_secs()),
    );
    host.must("systemctl daemon-reload");

    // Type=notify: `start` returns once READY=1 arrived, and fails if it does not.
    let started = Instant::now();
    host.must("systemctl start drover");
    eprintln!(
        "systemctl start drover returned after {:?}",
        started.elapsed()
    );
    assert_eq!(host.prop("ActiveState"), "active");
    assert_eq!(host.prop("SubState"), "running");
    let status = host.prop("StatusText");
    assert!(
        status.contains("jobs") && status.contains("allocations running"),
        "STATUS= line: {status:?}"
    );

    // The sandbox still reaches the engine (docker driver healthy) and writes its data dir.
    let node: serde_json::Value = host.wait_for(
        "a node with docker healthy",
        Duration::from_secs(30),
        || {
            let (ok, out) = host.sh("drover node status -self -json");
            let node: serde_json::Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
            (node["Drivers"]["docker"]["Healthy"] == true).then_some(node)
        },
    );
    host.node_id = node["ID"].as_str().map(str::to_string);
    let owner = host.must("stat -c '%U %a' /var/lib/drover /var/lib/drover/server/state.db");
    assert!(
        owner.lines().all(|l| l.starts_with("drover ")),
        "the data dir and state belong to drover: {owner}"
    );

    // Pings arrive while the loops turn: several watchdog periods, no restart.
    let pid = host.prop("MainPID");
    std::thread::sleep(WATCHDOG * 3);
    assert_eq!(host.prop("NRestarts"), "0", "{}", host.journal());
    assert_eq!(host.prop("MainPID"), pid);

    // Reload: SIGHUP, the same process, still running.
    host.must("systemctl reload drover");
    host.wait_for("the reload in the journal", Duration::from_secs(10), || {
        host.journal().contains("SIGHUP: reloading").then_some(())
    });
    assert_eq!(host.prop("MainPID"), pid);
    assert_eq!(host.prop("ActiveState"), "active");

    // A stuck loop: every worker stops in its next evaluation (a debug-build failpoint), the
    // job file gives it one, the pings stop, and systemd restarts the agent.
    host.write(
        "/etc/systemd/system/drover.service.d/stall.conf",
        "[Service]\nEnvironment=DROVER_FAILPOINTS=worker-stall\n",
    );
    host.must("systemctl daemon-reload && systemctl restart drover");
    let pid = host.prop("MainPID");
    host.write("/etc/drover/jobs/stuck.nomad", UNFIT_JOB);
    let stuck_at = Instant::now();
    host.wait_for("a watchdog restart", Duration::from_secs(60), || {
        (host.prop("NRestarts") != "0").then_some(())
    });
    eprintln!(
        "restarted by the watchdog {:?} after the job file was written (WatchdogSec={}s)",
        stuck_at.elapsed(),
        WATCHDOG.as_secs()
    );
    let journal = host.sh("journalctl --no-pager -o cat").1;
    assert!(
        journal.contains("has not progressed"),
        "drover names the stuck loop:\n{journal}"
    );
    assert!(
        journal.contains("Watchdog timeout"),
        "systemd's watchdog fired:\n{journal}"
    );
    host.wait_for("the agent back", Duration::from_secs(30), || {
        (host.prop("MainPID") != pid && host.prop("ActiveState") == "active").then_some(())
    });

    // Without the fault the same job is evaluated and the agent stays up.
    let restart = Instant::now();
    host.must("rm /etc/systemd/system/drover.service.d/stall.conf && systemctl daemon-reload && systemctl restart drover");
    // The stuck worker's thread must not hold the exit (systemd would wait TimeoutStopSec).
    assert!(
        restart.elapsed() < Duration::from_secs(30),
        "stopping an agent with a stuck worker took {:?}",
        restart.elapsed()
    );
    let restarts = host.prop("NRestarts");
    std::thread::sleep(WATCHDOG * 2);
    assert_eq!(host.prop("NRestarts"), restarts, "{}", host.journal());
    host.wait_for("the job's evaluation", Duration::from_secs(30), || {
        let (ok, out) = host.sh("drover job status stuck");
        (ok && out.contains("stuck")).then_some(())
    });
}
