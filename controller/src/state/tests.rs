//! Store tests against SQLite in a temp dir: migrations, versions and ownership, transaction
//! boundaries (a full disk leaves nothing half-written; a crash between plan and apply leaves
//! the evaluation pending), blocking-query wakeups.

use std::path::PathBuf;

use drover_runtime::spec::{AllocUpdate, TaskState};

use super::*;
use crate::structs::mock::{self, MockAlloc, MockJob};

const NOW: i64 = 1_700_000_000_000_000_000;

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    (dir, path)
}

fn file(p: &str) -> JobSource {
    JobSource::File(PathBuf::from(p))
}

#[test]
fn migrations_run_once_and_record_the_schema_version() {
    let (_dir, path) = temp();
    let store = Store::open(&path).expect("open");
    store
        .register_job(mock::job(), &JobSource::Api, NOW)
        .expect("register");
    drop(store);
    assert_eq!(
        schema_version(&path).expect("version"),
        schema::MIGRATIONS.len()
    );
    // Reopening runs nothing again and keeps the data and the index.
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.index(), 1);
    assert_eq!(store.jobs().expect("jobs").len(), 1);
    let mode: String = store
        .lock()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "wal");
}

#[test]
fn a_newer_schema_is_refused() {
    let (_dir, path) = temp();
    drop(Store::open(&path).expect("open"));
    let conn = Connection::open(&path).expect("raw open");
    conn.execute("INSERT INTO schema_version (version) VALUES (99)", [])
        .expect("fake a newer schema");
    drop(conn);
    let err = Store::open(&path).expect_err("must refuse");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn register_bumps_the_version_only_on_a_real_change_and_always_writes_an_eval() {
    let store = Store::open_in_memory().expect("open");
    let src = file("/m/example.nomad");
    let r0 = store.register_job(mock::job(), &src, NOW).expect("v0");
    assert_eq!((r0.version, r0.changed), (0, true));
    assert_eq!(r0.eval.triggered_by, EvalTrigger::JobRegister);
    assert_eq!(r0.eval.status, EvalStatus::Pending);

    let same = store
        .register_job(mock::job(), &src, NOW + 1)
        .expect("same");
    assert_eq!((same.version, same.changed), (0, false));
    assert_ne!(same.eval.id, r0.eval.id);

    let r1 = store
        .register_job(mock::job().count(3), &src, NOW + 2)
        .expect("v1");
    assert_eq!((r1.version, r1.changed), (1, true));

    let versions = store.job_versions("default", "example").expect("versions");
    assert_eq!(
        versions.iter().map(|j| j.version).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(versions[1].task_groups[0].count, 3);
    let rec = store
        .job("default", "example")
        .expect("read")
        .expect("exists");
    assert_eq!(rec.job.version, 1);
    assert_eq!(rec.source, src);
    assert_eq!(
        store
            .evals_by_job("default", "example")
            .expect("evals")
            .len(),
        3
    );
    assert_eq!(
        store
            .evals_by_status(EvalStatus::Pending)
            .expect("pending")
            .len(),
        3
    );
}

#[test]
fn a_job_owned_by_a_file_is_refused_from_the_api_until_stopped() {
    let store = Store::open_in_memory().expect("open");
    let src = file("/m/example.nomad");
    store.register_job(mock::job(), &src, NOW).expect("file");
    let index = store.index();
    let err = store
        .register_job(mock::job().count(2), &JobSource::Api, NOW)
        .expect_err("owned");
    assert!(
        err.to_string().contains("managed by file /m/example.nomad"),
        "{err}"
    );
    assert_eq!(store.index(), index, "a refused write writes nothing");
    let err = store
        .deregister_job("default", "example", false, Some(&JobSource::Api), NOW)
        .expect_err("owned");
    assert!(matches!(err, StoreError::JobOwned { .. }));

    store
        .deregister_job("default", "example", false, Some(&src), NOW)
        .expect("the file may stop it");
    let r = store
        .register_job(mock::job(), &JobSource::Api, NOW)
        .expect("a stopped job can be taken over");
    assert_eq!(r.version, 0, "same spec: no new version");
    let rec = store
        .job("default", "example")
        .expect("read")
        .expect("exists");
    assert!(!rec.job.stop);
    assert_eq!(rec.source, JobSource::Api);
}

#[test]
fn deregister_stops_or_purges_and_writes_an_eval() {
    let store = Store::open_in_memory().expect("open");
    store
        .register_job(mock::job(), &JobSource::Api, NOW)
        .expect("register");
    let e = store
        .deregister_job("default", "example", false, None, NOW)
        .expect("stop");
    assert_eq!(e.triggered_by, EvalTrigger::JobDeregister);
    assert!(
        store
            .job("default", "example")
            .expect("read")
            .expect("kept")
            .job
            .stop
    );
    store
        .deregister_job("default", "example", true, None, NOW)
        .expect("purge");
    assert!(store.job("default", "example").expect("read").is_none());
    assert!(
        store
            .job_versions("default", "example")
            .expect("versions")
            .is_empty()
    );
    let err = store
        .deregister_job("default", "nope", false, None, NOW)
        .expect_err("missing");
    assert_eq!(err.to_string(), "job \"nope\" not found");
}

#[test]
fn source_errors_keep_when_they_were_first_seen() {
    let store = Store::open_in_memory().expect("open");
    let path = PathBuf::from("/m/bad.nomad");
    let errs = vec![(
        3,
        7,
        "job.group.count".to_string(),
        "expected a number".to_string(),
    )];
    store
        .record_source_error(&path, &errs, NOW)
        .expect("record");
    store
        .record_source_error(&path, &errs, NOW + 5)
        .expect("again");
    let got = store.source_errors().expect("list");
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].line, got[0].col), (3, 7));
    assert_eq!(got[0].first_seen, NOW);
    assert_eq!(got[0].last_seen, NOW + 5);
    store.clear_source_error(&path).expect("clear");
    assert!(store.source_errors().expect("list").is_empty());
}

#[test]
fn a_full_database_fails_clearly_and_writes_nothing() {
    let store = Store::open_in_memory().expect("open");
    store
        .register_job(mock::job(), &JobSource::Api, NOW)
        .expect("small");
    let index = store.index();
    {
        let conn = store.lock();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .expect("page count");
        conn.pragma_update(None, "max_page_count", pages)
            .expect("cap the database");
    }
    let big = mock::job().with(|j| j.id = "big".into()).with(|j| {
        j.meta.insert("blob".into(), "x".repeat(256 * 1024));
    });
    let err = store
        .register_job(big, &JobSource::Api, NOW)
        .expect_err("no room");
    assert!(matches!(err, StoreError::Full { .. }), "{err:?}");
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(store.index(), index);
    assert!(store.job("default", "big").expect("read").is_none());
    assert_eq!(
        store.evals().expect("evals").len(),
        1,
        "no eval for the failed register"
    );
}

#[test]
fn a_read_only_database_fails_clearly() {
    let (_dir, path) = temp();
    drop(Store::open(&path).expect("create"));
    let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open read-only");
    let store = Store {
        conn: Mutex::new(conn),
        index_tx: watch::channel(0).0,
        cluster: Mutex::new(None),
    };
    let err = store
        .register_job(mock::job(), &JobSource::Api, NOW)
        .expect_err("read-only");
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
}

#[test]
fn a_crash_between_plan_and_apply_leaves_the_eval_pending_and_no_allocs() {
    let (_dir, path) = temp();
    let store = Store::open(&path).expect("open");
    let reg = store
        .register_job(mock::job(), &JobSource::Api, NOW)
        .expect("register");
    // The worker read a snapshot and planned, then the process died before commit_plan.
    let _snap = store.snapshot("default", "example").expect("snapshot");
    drop(store);

    let store = Store::open(&path).expect("restart");
    let pending = store.evals_by_status(EvalStatus::Pending).expect("pending");
    assert_eq!(
        pending.iter().map(|e| &e.id).collect::<Vec<_>>(),
        [&reg.eval.id]
    );
    assert!(
        store
            .allocs_by_job("default", "example")
            .expect("allocs")
            .is_empty()
    );
}

#[test]
fn commit_plan_is_all_or_nothing() {
    let store = Store::open_in_memory().expect("open");
    let job = mock::job();
    let good = mock::alloc(&job, 0).with_id("a-1");
    let mut bad_eval = Evaluation::new("example", "default", EvalTrigger::RetryFailedAlloc, NOW);
    // Sabotage: an eval whose row cannot be written (trigger the failure by dropping the table).
    bad_eval.id = "e-1".into();
    store
        .lock()
        .execute_batch("DROP TABLE evaluations")
        .expect("sabotage");
    let err = store
        .commit_plan(
            "example",
            PlanWrite {
                allocs: vec![good],
                evals: vec![bad_eval],
                guard: None,
            },
        )
        .expect_err("the eval write fails");
    assert!(
        err.to_string().contains("apply the plan") || err.to_string().contains("write evaluation"),
        "{err}"
    );
    assert!(
        store.alloc("a-1").expect("read").is_none(),
        "the alloc rolled back with it"
    );
    assert_eq!(store.index(), 0);
}

trait WithId {
    fn with_id(self, id: &str) -> Self;
}
impl WithId for Allocation {
    fn with_id(mut self, id: &str) -> Self {
        self.id = id.into();
        self
    }
}

#[tokio::test]
async fn writes_wake_subscribers_with_the_new_index() {
    let store = Store::open_in_memory().expect("open");
    let mut rx = store.subscribe();
    assert_eq!(*rx.borrow_and_update(), 0);
    store
        .register_job(mock::job(), &JobSource::Api, NOW)
        .expect("register");
    rx.changed().await.expect("woken");
    assert_eq!(*rx.borrow_and_update(), 1);
}

#[test]
fn client_updates_record_status_task_events_and_transitions() {
    let store = Store::open_in_memory().expect("open");
    let job = mock::job();
    let a = mock::alloc(&job, 0).with_id("a-1");
    let mut pending = a.clone();
    pending.client_status = ClientStatus::Pending;
    pending.running_since = None;
    store
        .commit_plan(
            "example",
            PlanWrite {
                allocs: vec![pending],
                evals: vec![],
                guard: None,
            },
        )
        .expect("place");
    let event = TaskEvent {
        event_type: "Started".into(),
        time: NOW,
        message: "Task started by client".into(),
        exit_code: None,
        signal: None,
        oom_killed: false,
    };
    let update = |status| AllocUpdate {
        id: "a-1".into(),
        client_status: status,
        client_description: String::new(),
        task_states: BTreeMap::from([(
            "web".to_string(),
            TaskState {
                events: vec![event.clone()],
                ..Default::default()
            },
        )]),
        checks: vec![],
        driver_networks: BTreeMap::new(),
    };
    let t = store
        .update_allocs_from_client("node-1", &[update(ClientStatus::Running)], NOW)
        .expect("running");
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].from, t[0].to),
        (ClientStatus::Pending, ClientStatus::Running)
    );
    let got = store.alloc("a-1").expect("read").expect("exists");
    assert_eq!(got.running_since, Some(NOW));
    // The same report again changes nothing; another node's report is ignored.
    let t = store
        .update_allocs_from_client("node-1", &[update(ClientStatus::Running)], NOW + 1)
        .expect("again");
    assert!(t.is_empty());
    let t = store
        .update_allocs_from_client("node-2", &[update(ClientStatus::Failed)], NOW + 1)
        .expect("other node");
    assert!(t.is_empty());
    let t = store
        .update_allocs_from_client("node-1", &[update(ClientStatus::Failed)], NOW + 2)
        .expect("failed");
    assert_eq!(t[0].to, ClientStatus::Failed);
    assert_eq!(store.task_events("a-1").expect("events").len(), 1);
}

#[test]
fn a_node_marked_down_loses_its_allocations_and_gets_node_update_evals() {
    let store = Store::open_in_memory().expect("open");
    store.upsert_node(mock::node()).expect("node");
    let job = mock::job().count(2);
    let other = mock::job().with(|j| j.id = "other".into());
    store
        .commit_plan(
            "example",
            PlanWrite {
                allocs: vec![
                    mock::alloc(&job, 0).with_id("a-1"),
                    mock::alloc(&job, 1).with_id("a-2"),
                    mock::alloc(&other, 0).with_id("b-1"),
                ],
                evals: vec![],
                guard: None,
            },
        )
        .expect("place");
    let evals = store
        .mark_node_down("node-1", "node heartbeat missed", NOW)
        .expect("down");
    let jobs: Vec<&str> = evals.iter().map(|e| e.job_id.as_str()).collect();
    assert_eq!(jobs, ["example", "other"]);
    assert!(
        evals
            .iter()
            .all(|e| e.triggered_by == EvalTrigger::NodeUpdate)
    );
    let node = store.node("node-1").expect("read").expect("exists");
    assert_eq!(node.status, NodeStatus::Down);
    assert!(
        store
            .allocs_by_node("node-1")
            .expect("allocs")
            .iter()
            .all(|a| a.client_status == ClientStatus::Lost)
    );
}

#[test]
fn alloc_id_prefix_lookup_escapes_like_patterns() {
    let store = Store::open_in_memory().expect("open");
    let job = mock::job();
    store
        .commit_plan(
            "example",
            PlanWrite {
                allocs: vec![
                    mock::alloc(&job, 0).with_id("8f3a-1"),
                    mock::alloc(&job, 1).with_id("8f3b-2"),
                ],
                evals: vec![],
                guard: None,
            },
        )
        .expect("place");
    assert_eq!(store.allocs_by_id_prefix("8f3a").expect("prefix").len(), 1);
    assert_eq!(store.allocs_by_id_prefix("8f3").expect("prefix").len(), 2);
    assert!(store.allocs_by_id_prefix("8%").expect("prefix").is_empty());
}

#[test]
fn a_version_one_database_with_data_migrates_to_the_latest_schema() {
    let (_dir, path) = temp();
    {
        // Build a database as the first release left it: migration 1 only, with a stopped job.
        let conn = Connection::open(&path).expect("raw open");
        conn.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            .expect("schema_version");
        conn.execute_batch(schema::MIGRATIONS[0])
            .expect("migration 1");
        conn.execute("INSERT INTO schema_version (version) VALUES (1)", [])
            .expect("record v1");
        let spec = serde_json::to_string(&mock::job()).expect("spec");
        conn.execute(
            "INSERT INTO job_versions (namespace, id, version, spec, create_index, submit_time)
             VALUES ('default', 'example', 0, ?1, 1, 5)",
            params![spec],
        )
        .expect("version row");
        conn.execute(
            "INSERT INTO job_heads (namespace, id, version, source, stop, create_index, modify_index, submit_time)
             VALUES ('default', 'example', 0, 'api', 0, 1, 1, 5)",
            [],
        )
        .expect("head row");
        let alloc = mock::alloc(&mock::job(), 0)
            .with_id("a-0")
            .client_status(ClientStatus::Complete);
        conn.execute(
            "INSERT INTO allocations (id, namespace, job_id, node_id, desired_status, client_status, modify_index, body)
             VALUES ('a-0', 'default', 'example', ?1, 'run', 'complete', 1, ?2)",
            params![alloc.node_id, serde_json::to_string(&alloc).expect("body")],
        )
        .expect("allocation row");
    }
    let store = Store::open(&path).expect("migrates");
    assert_eq!(
        schema_version(&path).expect("version"),
        schema::MIGRATIONS.len()
    );
    let rec = store
        .job("default", "example")
        .expect("read")
        .expect("kept");
    assert_eq!(rec.job.id, "example");
    // The job summary's columns were filled from the stored spec.
    let summary = store
        .job_summary("default", "example")
        .expect("summary")
        .expect("kept");
    let job = mock::job();
    assert_eq!(
        (summary.name.as_str(), summary.job_type),
        (job.name.as_str(), Some(job.job_type))
    );
    assert_eq!(
        summary.groups[&job.task_groups[0].name].count,
        Some(job.task_groups[0].count)
    );
    assert_eq!(
        summary.groups[&job.task_groups[0].name].allocs[&ClientStatus::Complete],
        1,
        "the allocation's group was filled in"
    );
    // The new column works on migrated rows.
    store
        .deregister_job("default", "example", false, None, NOW)
        .expect("stop");
    assert_eq!(store.gc_jobs(NOW + 1).expect("gc"), ["example"]);
}

#[test]
fn gc_collects_only_jobs_stopped_long_enough_with_nothing_running() {
    let store = Store::open_in_memory().expect("open");
    let job = mock::job();
    store
        .register_job(job.clone(), &JobSource::Api, NOW)
        .expect("register");
    store
        .commit_plan(
            "example",
            PlanWrite {
                allocs: vec![mock::alloc(&job, 0).with_id("a-1")],
                evals: vec![],
                guard: None,
            },
        )
        .expect("place");
    store
        .deregister_job("default", "example", false, None, NOW + 10)
        .expect("stop");
    assert!(
        store.gc_jobs(NOW + 5).expect("gc").is_empty(),
        "stopped after the cutoff"
    );
    assert!(
        store.gc_jobs(NOW + 20).expect("gc").is_empty(),
        "its allocation still runs"
    );
    let mut a = store.alloc("a-1").expect("read").expect("exists");
    a.desired_status = crate::structs::DesiredStatus::Stop;
    a.client_status = ClientStatus::Complete;
    store
        .commit_plan(
            "example",
            PlanWrite {
                allocs: vec![a],
                evals: vec![],
                guard: None,
            },
        )
        .expect("finish");
    assert_eq!(store.gc_jobs(NOW + 20).expect("gc"), ["example"]);
    assert!(store.job("default", "example").expect("read").is_none());
    assert!(store.alloc("a-1").expect("read").is_none());
    assert!(
        store
            .evals_by_job("default", "example")
            .expect("evals")
            .is_empty()
    );

    // Registering again starts over; stopping is what sets the clock.
    store
        .register_job(job, &JobSource::Api, NOW)
        .expect("again");
    assert!(
        store.gc_jobs(NOW + 100).expect("gc").is_empty(),
        "running jobs are kept"
    );
}

#[test]
fn a_restart_is_reported_once_with_its_reason_even_when_the_update_is_sent_again() {
    use drover_runtime::taskrunner::{event, task_event};
    let store = Store::open_in_memory().expect("open");
    let job = mock::job();
    let a = mock::alloc(&job, 0).with_id("a-1");
    store
        .commit_plan(
            "example",
            PlanWrite {
                allocs: vec![a],
                evals: vec![],
                guard: None,
            },
        )
        .expect("place");
    let at = |mut e: TaskEvent, t: i64| {
        e.time = t;
        e
    };
    let mut oom = at(task_event(event::TERMINATED, "Exit Code: 137"), NOW + 1);
    oom.exit_code = Some(137);
    oom.oom_killed = true;
    let events = vec![
        at(task_event(event::STARTED, "Task started by client"), NOW),
        oom,
        at(
            task_event(event::RESTARTING, "Restart within policy"),
            NOW + 2,
        ),
    ];
    let update = |events: Vec<TaskEvent>, restarts: u32| AllocUpdate {
        id: "a-1".into(),
        client_status: ClientStatus::Running,
        client_description: String::new(),
        task_states: BTreeMap::from([(
            "web".to_string(),
            TaskState {
                events,
                restarts,
                ..Default::default()
            },
        )]),
        checks: vec![],
        driver_networks: Default::default(),
    };
    let node = mock::alloc(&job, 0).node_id;
    let got = store
        .update_allocs_from_client_counted(&node, &[update(events.clone(), 1)], NOW + 3)
        .expect("update");
    assert_eq!(
        got.restarts,
        [TaskRestart {
            alloc_id: "a-1".into(),
            job_id: job.id.clone(),
            task: "web".into(),
            reason: "oom_killed",
        }]
    );
    // The client sends its whole recent history again (a retry, or after an agent restart)
    // with one more event: nothing is counted twice.
    let mut more = events;
    more.push(at(
        task_event(event::STARTED, "Task started by client"),
        NOW + 4,
    ));
    let again = store
        .update_allocs_from_client_counted(&node, &[update(more, 1)], NOW + 5)
        .expect("update");
    assert!(again.restarts.is_empty(), "{again:?}");
}
