//! The status page (`/ui`) in a real headless Chromium (Debian's `chromium`, installed by
//! `scripts/test-browser`) against a dev agent running the whoami container next to broken
//! and hostile job files: the page shows the running job and the broken file's error, escapes
//! what the files say, and refreshes itself. Screenshots (phone and desktop sizes) are saved
//! under `target/status-page/` and their paths printed.
//!
//! Chromium runs as root here, which its sandbox refuses: `--no-sandbox` is needed (the page
//! is the agent's own, so nothing untrusted is browsed). `--headless` with `--disable-gpu` needs
//! no display; `--virtual-time-budget` lets the page's timers run (its refresh every 5 s)
//! before `--dump-dom` prints the DOM, without waiting for real time to pass.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use drover_tests::{TestAgent, repo};

const IP: &str = "127.0.7.1";

/// A file that fails to parse, with its error on line 3, column 13.
const BROKEN: &str = "job \"broken\" {\n  group \"g\" {\n    count = \"two\"\n    task \"t\" {\n      driver = \"raw_exec\"\n      config { command = \"/bin/true\" }\n    }\n  }\n}\n";

/// A file name that is markup: shown by the page, it must stay text.
const HOSTILE_FILE: &str = "<img src=x onerror=document.body.dataset.pwned=1>.nomad";

/// A job whose name is a script; a batch job that finishes at once.
const HOSTILE_JOB: &str = "job \"hostile\" {\n  type = \"batch\"\n  name = \"<script>document.body.dataset.pwned=2</script>\"\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      config { command = \"/bin/true\" }\n    }\n  }\n}\n";

fn target_dir() -> PathBuf {
    let dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    dir.canonicalize().unwrap_or(dir)
}

/// Runs headless Chromium with `args` and the URL; its stdout. Panics with Chromium's stderr
/// when it fails, and with the way to install it when it is missing.
fn chromium(profile: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new("timeout")
        .args(["120", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("timeout(1) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chromium failed ({}); is it installed? `bash scripts/test-browser` installs Debian's \
         chromium\n{stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `<tr>…</tr>` of the DOM that contains `needle`.
fn row_with<'a>(dom: &'a str, needle: &str) -> &'a str {
    let at = dom
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} is not on the page:\n{dom}"));
    let start = dom[..at].rfind("<tr").expect("in a table row");
    let end = at + dom[at..].find("</tr>").expect("the row ends");
    &dom[start..end]
}

#[test]
fn chromium_shows_the_running_job_and_the_broken_files_error_escaped_and_refreshing() {
    let a = TestAgent::start(IP, &[]);
    let whoami = std::fs::read_to_string(repo().join("manifests/whoami.nomad")).expect("example");
    a.drop_job("whoami.nomad", &whoami);
    a.drop_job("broken.nomad", BROKEN);
    a.drop_job(HOSTILE_FILE, BROKEN);
    a.drop_job("hostile.nomad", HOSTILE_JOB);
    a.wait_until(
        Duration::from_secs(30),
        "whoami runs and both broken files are reported",
        |a| {
            let running = a
                .allocs("whoami")
                .iter()
                .any(|x| x["ClientStatus"] == "running");
            let broken = a.get("/v1/drover/manifests").is_ok_and(|m| {
                m["Files"]
                    .as_array()
                    .is_some_and(|f| f.iter().filter(|f| f["Status"] == "error").count() == 2)
            });
            running && broken
        },
    );

    let profile = tempfile::tempdir().expect("tempdir");
    let url = format!("http://{IP}:4646/ui");
    let shots = target_dir().join("status-page");
    std::fs::create_dir_all(&shots).expect("mkdir target/status-page");
    let shot = shots.join("ui-phone-412x915.png");
    let _ = std::fs::remove_file(&shot);
    let started = std::time::Instant::now();
    chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=412,915",
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    println!(
        "status page screenshot (412x915, a phone): {} ({} bytes, {:?})",
        shot.display(),
        png.len(),
        started.elapsed()
    );

    let wide = shots.join("ui-desktop-1280x900.png");
    chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", wide.display()),
            "--window-size=1280,900",
        ],
        &url,
    );
    assert!(wide.exists(), "chromium wrote {}", wide.display());
    println!("status page screenshot (1280x900): {}", wide.display());

    // 12 s of virtual time: the page's script refreshes it (every 5 s, or ten times as long as
    // the page took to answer) at least once.
    let dom = chromium(
        profile.path(),
        &[
            "--virtual-time-budget=12000",
            "--window-size=412,915",
            "--dump-dom",
        ],
        &url,
    );

    // The running whoami job (linked to its own page), its allocation and its task.
    let job = row_with(&dom, "<a href=\"/ui/job/whoami\">whoami</a>");
    assert!(job.contains(">running<"), "{job}");
    assert!(job.contains(">whoami.nomad<"), "{job}");
    let alloc = row_with(&dom, ">whoami.web[0]<");
    assert!(alloc.contains(">running<"), "{alloc}");
    assert!(alloc.contains("api"), "{alloc}");

    // The broken file's error, file:line:column first, then what is wrong.
    assert!(dom.contains("broken.nomad:3:13"), "{dom}");
    assert!(
        dom.contains("expected a number, found string \"two\""),
        "{dom}"
    );
    assert!(dom.contains("Job files with errors"), "{dom}");

    // What the files say stays text: no element was made of it and no script of it ran.
    assert!(
        dom.contains("&lt;img src=x onerror=document.body.dataset.pwned=1&gt;.nomad:3:13"),
        "{dom}"
    );
    assert!(
        dom.contains("&lt;script&gt;document.body.dataset.pwned=2&lt;/script&gt;"),
        "{dom}"
    );
    assert!(!dom.contains("<img"), "{dom}");
    assert!(
        !dom.contains("data-pwned"),
        "an injected script ran:\n{dom}"
    );

    // The page refreshed itself in place.
    let live = &dom[dom.find("id=\"live\"").expect("the live indicator")..];
    let live = &live[..live.find("</p>").expect("ends")];
    assert!(live.contains("live · updated"), "{live}");
    let refreshes: u32 = live
        .split("data-refreshes=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(refreshes >= 1, "the script refreshed the page: {live}");

    // The job's own page: its group's desired against running, its allocation with its task,
    // its source file, and its events; phone-sized, refreshing itself like the main page.
    let job_url = format!("http://{IP}:4646/ui/job/whoami");
    let shot = shots.join("ui-job-phone-412x915.png");
    chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=412,915",
        ],
        &job_url,
    );
    assert!(shot.exists(), "chromium wrote {}", shot.display());
    println!("job page screenshot (412x915): {}", shot.display());
    let dom = chromium(
        profile.path(),
        &[
            "--virtual-time-budget=12000",
            "--window-size=412,915",
            "--dump-dom",
        ],
        &job_url,
    );
    assert!(dom.contains("<h2>Job <strong>whoami</strong>"), "{dom}");
    assert!(dom.contains(">whoami.nomad<"), "{dom}");
    let group = row_with(&dom, "<strong>web</strong>");
    assert!(group.contains("1/1 running"), "{group}");
    let alloc = row_with(&dom, ">whoami.web[0]<");
    assert!(alloc.contains(">running<"), "{alloc}");
    assert!(
        alloc.contains(">healthy") || alloc.contains(">not yet<"),
        "{alloc}"
    );
    assert!(dom.contains("Recent events"), "{dom}");
    assert!(dom.contains(">Started<"), "the task's events: {dom}");
    assert!(
        dom.contains("data-refreshes=\""),
        "the job page refreshed itself: {dom}"
    );

    // The hostile batch job's page: its name stays text there too.
    let dom = chromium(
        profile.path(),
        &["--dump-dom", "--window-size=412,915"],
        &format!("http://{IP}:4646/ui/job/hostile"),
    );
    assert!(
        dom.contains("&lt;script&gt;document.body.dataset.pwned=2&lt;/script&gt;"),
        "{dom}"
    );
    assert!(
        !dom.contains("data-pwned"),
        "an injected script ran:\n{dom}"
    );
}
