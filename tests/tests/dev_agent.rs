//! The seed tutorial's first half against a real `drover agent -dev` and the real Docker engine:
//! a dropped file runs, `docker rm -f` heals, `count = 2` fails placement with Nomad's words,
//! two tasks share an allocation, logs, stop, file removal, broken files, restarts.
//! Each test's agent binds its own loopback address, so tests run in parallel without clashes.

use std::time::Duration;

use drover_tests::{TestAgent, http_get, repo, stderr, stdout};

fn manifest(name: &str) -> String {
    std::fs::read_to_string(repo().join("manifests").join(name)).expect("example job")
}

fn running(a: &TestAgent, job: &str) -> usize {
    a.allocs(job)
        .iter()
        .filter(|x| x["ClientStatus"] == "running")
        .count()
}

#[test]
fn whoami_answers_heals_after_docker_rm_and_count_2_fails_placement() {
    let a = TestAgent::start("127.0.0.21", &[]);
    a.drop_job("whoami.nomad", &manifest("whoami.nomad"));
    let url = format!("http://{}:8080/", a.ip);
    a.wait_until(Duration::from_secs(30), "whoami answers on :8080", |_| {
        http_get(&url).is_some_and(|b| b.starts_with("I'm "))
    });

    let first = a.containers();
    assert_eq!(first.len(), 1, "{first:?}");
    let out = std::process::Command::new("docker")
        .args(["rm", "-f", &first[0]])
        .output()
        .expect("docker rm");
    assert!(out.status.success());
    a.wait_until(
        Duration::from_secs(10),
        "a new container answers after docker rm -f",
        |a| http_get(&url).is_some() && a.containers().first().is_some_and(|c| *c != first[0]),
    );
    let healed = a.containers();
    assert_eq!(healed.len(), 1, "exactly one replacement: {healed:?}");

    a.drop_job(
        "whoami.nomad",
        &manifest("whoami.nomad").replace("#count = 2", "count = 2"),
    );
    a.wait_until(
        Duration::from_secs(15),
        "the second allocation fails placement",
        |a| {
            let out = a.cli(&["job", "status", "whoami"]);
            stdout(&out).contains(
                "Dimension \"network: reserved port collision http=8080\" exhausted on 1 nodes",
            )
        },
    );
    let out = a.cli(&["status", "whoami"]);
    assert!(
        stdout(&out).contains("Placement Failure"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        a.containers(),
        healed,
        "the running allocation is untouched"
    );
    assert!(http_get(&url).is_some());
}

#[test]
fn todo_dev_runs_two_tasks_in_one_alloc_with_logs_and_stops() {
    // Allow-empty: removing the only file is meant to stop its job at once here.
    let a = TestAgent::start("127.0.0.22", &["-manifests-allow-empty"]);
    a.drop_job("todo-list-dev.nomad", &manifest("todo-list-dev.nomad"));
    let url = format!("http://{}:8010/", a.ip);
    a.wait_until(
        Duration::from_secs(30),
        "the web task answers on :8010",
        |_| http_get(&url).is_some_and(|b| b.contains("to-do list: Postgres")),
    );
    let allocs = a.allocs("todo");
    assert_eq!(allocs.len(), 1);
    let states = allocs[0]["TaskStates"].as_object().expect("task states");
    assert!(
        states.contains_key("db") && states.contains_key("web"),
        "{states:?}"
    );
    assert_eq!(
        a.containers().len(),
        2,
        "both tasks run in the one allocation"
    );

    let id = allocs[0]["ID"].as_str().expect("id").to_string();
    let out = a.cli(&["alloc", "logs", &id[..8], "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("web started"), "{}", stdout(&out));
    let out = a.cli(&["alloc", "status", &id[..8]]);
    assert!(
        stdout(&out).contains("Task \"web\" is \"running\""),
        "{}",
        stdout(&out)
    );

    // A job from a file cannot be stopped through the API; the file owns it.
    let out = a.cli(&["job", "stop", "todo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("todo-list-dev.nomad"),
        "{}",
        stderr(&out)
    );

    // Deleting the file stops the job and removes its containers.
    std::fs::remove_file(a.manifests.join("todo-list-dev.nomad")).expect("rm");
    a.wait_until(
        Duration::from_secs(20),
        "the job's containers are gone",
        |a| a.containers().is_empty(),
    );
}

#[test]
fn job_run_and_stop_through_the_cli() {
    let a = TestAgent::start("127.0.0.23", &[]);
    // The client registers its node just after the API starts answering.
    a.wait_until(Duration::from_secs(10), "the node is ready", |a| {
        stdout(&a.cli(&["node", "status"])).contains("ready")
    });
    let out = a.cli(&["node", "status", "-verbose"]);
    let text = stdout(&out);
    assert!(
        text.contains("ready") && text.contains("docker") && text.contains("raw_exec"),
        "{text}"
    );
    assert!(
        text.lines().next().is_some_and(|h| h.starts_with("ID")
            && h.contains("Eligibility")
            && h.contains("Status")),
        "{text}"
    );
    let file = a.data_dir.path().join("whoami.nomad");
    std::fs::write(&file, manifest("whoami.nomad")).expect("write");
    let out = a.cli(&["job", "run", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("Evaluation status changed"),
        "{}",
        stdout(&out)
    );
    a.wait_until(Duration::from_secs(30), "whoami runs", |a| {
        running(a, "whoami") == 1
    });
    let out = a.cli(&["job", "stop", "whoami"]);
    assert!(out.status.success(), "{}", stderr(&out));
    a.wait_until(Duration::from_secs(20), "its container is removed", |a| {
        a.containers().is_empty()
    });
    let out = a.cli(&["job", "status", "whoami"]);
    assert!(
        stdout(&out).contains("Status        = dead"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_broken_edit_keeps_the_job_running_and_shows_the_error() {
    let a = TestAgent::start("127.0.0.24", &[]);
    a.drop_job("whoami.nomad", &manifest("whoami.nomad"));
    a.wait_until(Duration::from_secs(30), "whoami runs", |a| {
        running(a, "whoami") == 1
    });
    let before = a.containers();
    a.drop_job(
        "whoami.nomad",
        &manifest("whoami.nomad").replace("static = 8080", "static = \"eighty\""),
    );
    a.wait_until(
        Duration::from_secs(10),
        "drover status shows the file's error",
        |a| stdout(&a.cli(&["status"])).contains("whoami.nomad:"),
    );
    let out = stdout(&a.cli(&["status"]));
    assert!(
        out.contains("whoami.nomad:14:18"),
        "the error names file:line:col: {out}"
    );
    assert!(out.contains("static"), "{out}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(a.containers(), before, "nothing that runs changed");
}

#[test]
fn restarting_the_agent_restarts_no_workload() {
    let mut a = TestAgent::start("127.0.0.25", &[]);
    a.drop_job("todo-list-dev.nomad", &manifest("todo-list-dev.nomad"));
    a.wait_until(Duration::from_secs(30), "todo runs", |a| {
        running(a, "todo") == 1 && a.containers().len() == 2
    });
    let mut before = a.containers();
    before.sort();
    a.restart();
    std::thread::sleep(Duration::from_secs(3));
    let mut after = a.containers();
    after.sort();
    assert_eq!(
        before, after,
        "SIGTERM and start again: the same containers"
    );
    a.restart_after_kill9();
    std::thread::sleep(Duration::from_secs(3));
    let mut after = a.containers();
    after.sort();
    assert_eq!(
        before, after,
        "kill -9 and start again: the same containers"
    );
    assert_eq!(running(&a, "todo"), 1);
}

#[test]
fn emptying_the_directory_stops_nothing_until_confirmed() {
    let a = TestAgent::start("127.0.0.26", &[]);
    a.drop_job("whoami.nomad", &manifest("whoami.nomad"));
    a.wait_until(Duration::from_secs(30), "whoami runs", |a| {
        running(a, "whoami") == 1
    });
    let before = a.containers();
    std::fs::remove_file(a.manifests.join("whoami.nomad")).expect("rm");
    a.wait_until(
        Duration::from_secs(10),
        "drover status says the removal is held",
        |a| stdout(&a.cli(&["status"])).contains("-manifests-allow-empty"),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        a.containers(),
        before,
        "the emptied directory stopped nothing"
    );
    // The file comes back: nothing was lost, nothing restarts.
    a.drop_job("whoami.nomad", &manifest("whoami.nomad"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.containers(), before);
}
