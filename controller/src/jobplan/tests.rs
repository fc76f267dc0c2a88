//! The plan diff over every seed job against edited variants (count, image, env, a group
//! added or removed, an in-place policy change), the scheduler's annotations on it, and the
//! exact text Nomad's CLI would print.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::render::{PlanResponse, format_job_diff, format_plan};
use super::*;
use crate::server::{Server, ServerConfig};
use crate::state::{JobSource, Store};
use crate::structs::mock::{self, MockJob};
use crate::structs::{EvalStatus, TaskConfig, TaskGroup};

const SEEDS: &[&str] = &[
    "whoami.nomad",
    "todo-list.nomad",
    "todo-list-dev.nomad",
    "consul.nomad",
    "todo-list-v2/todo-db.nomad",
    "todo-list-v2/todo-web.nomad",
];

fn seed(name: &str) -> Job {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/seed")
        .join(name);
    crate::jobspec::parse_file(&path, &Default::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .job
}

fn seeds() -> Vec<Job> {
    SEEDS.iter().map(|s| seed(s)).collect()
}

fn edited_group<'a>(d: &'a JobDiff, name: &str) -> &'a TaskGroupDiff {
    d.group(name)
        .unwrap_or_else(|| panic!("no group {name:?} in {d:#?}"))
}

fn field<'a>(fields: &'a [FieldDiff], name: &str) -> &'a FieldDiff {
    fields
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no field {name:?} in {fields:#?}"))
}

/// Plans `job` on an empty plan (nothing running), so every task annotation comes from the
/// diff alone.
fn annotated(old: Option<&Job>, new: &Job) -> JobDiff {
    let mut d = job_diff(old, Some(new));
    annotate(&mut d, &Plan::default(), old, new);
    d
}

#[test]
fn the_same_job_is_no_diff() {
    for job in seeds() {
        let d = job_diff(Some(&job), Some(&job.clone().version(3)));
        assert_eq!(d.r#type, DiffType::None, "{}: {d:#?}", job.id);
        assert!(d.fields.is_empty() && d.objects.is_empty(), "{}", job.id);
        for g in &d.task_groups {
            assert_eq!(g.r#type, DiffType::None, "{}/{}", job.id, g.name);
            assert!(g.tasks.iter().all(|t| t.r#type == DiffType::None));
            assert_eq!(
                g.tasks.len(),
                job.group(&g.name).expect("group").tasks.len()
            );
        }
    }
}

#[test]
fn a_new_job_is_added_whole_and_a_removed_one_deleted() {
    for job in seeds() {
        let added = job_diff(None, Some(&job));
        assert_eq!(
            (added.r#type, added.id.as_str()),
            (DiffType::Added, job.id.as_str())
        );
        assert!(added.fields.iter().all(|f| f.r#type == DiffType::Added));
        assert_eq!(added.task_groups.len(), job.task_groups.len());
        assert!(
            added.task_groups.iter().all(|g| g.r#type == DiffType::Added
                && g.tasks.iter().all(|t| t.r#type == DiffType::Added))
        );
        assert_eq!(field(&added.fields, "Type").new, job.job_type.as_str());

        let deleted = job_diff(Some(&job), None);
        assert_eq!(deleted.r#type, DiffType::Deleted);
        assert!(
            deleted
                .task_groups
                .iter()
                .all(|g| g.r#type == DiffType::Deleted)
        );
        assert_eq!(field(&deleted.fields, "Name").old, job.name);
    }
}

#[test]
fn a_count_change_edits_the_group_only() {
    for job in seeds() {
        let g = &job.task_groups[0];
        let more = job.clone().with(|j| j.task_groups[0].count = g.count + 1);
        let d = annotated(Some(&job), &more);
        assert_eq!(d.r#type, DiffType::Edited, "{}", job.id);
        assert!(d.fields.is_empty(), "{}: {:#?}", job.id, d.fields);
        let gd = edited_group(&d, &g.name);
        assert_eq!(gd.r#type, DiffType::Edited);
        let count = field(&gd.fields, "Count");
        assert_eq!(count.r#type, DiffType::Edited);
        assert_eq!(
            (count.old.clone(), count.new.clone()),
            (g.count.to_string(), (g.count + 1).to_string())
        );
        assert_eq!(count.annotations, vec![FORCES_CREATE.to_string()]);
        assert!(
            gd.tasks
                .iter()
                .all(|t| t.r#type == DiffType::None && t.annotations.is_empty())
        );

        let fewer = job.clone().with(|j| j.task_groups[0].count = 0);
        let d = annotated(Some(&job), &fewer);
        let count = field(&edited_group(&d, &g.name).fields, "Count");
        assert_eq!(count.annotations, vec![FORCES_DESTROY.to_string()]);
    }
}

/// The first task's image (docker) or command (raw_exec) changed.
fn new_image(job: &Job) -> (Job, &'static str) {
    let mut out = job.clone();
    let key = match &mut out.task_groups[0].tasks[0].config {
        TaskConfig::Docker(d) => {
            d.image = format!("{}-v2", d.image);
            "image"
        }
        TaskConfig::RawExec(r) => {
            r.command = format!("{}-v2", r.command);
            "command"
        }
    };
    (out, key)
}

#[test]
fn an_image_change_edits_the_config_and_forces_a_destructive_update() {
    for job in seeds() {
        let (v2, key) = new_image(&job);
        let d = annotated(Some(&job), &v2);
        let g = edited_group(&d, &job.task_groups[0].name);
        let task = &job.task_groups[0].tasks[0].name;
        let t = g.tasks.iter().find(|t| &t.name == task).expect("task");
        assert_eq!(t.r#type, DiffType::Edited, "{}", job.id);
        assert!(t.fields.is_empty(), "{:#?}", t.fields);
        let config = t
            .objects
            .iter()
            .find(|o| o.name == "Config")
            .expect("Config");
        assert_eq!(config.r#type, DiffType::Edited);
        let f = field(&config.fields, key);
        assert_eq!(f.r#type, DiffType::Edited);
        assert!(f.new.ends_with("-v2") && !f.old.ends_with("-v2"));
        // Contextual: the unchanged config fields are listed, typed None.
        assert!(
            config
                .fields
                .iter()
                .all(|f| f.name == key || f.r#type == DiffType::None)
        );
        assert_eq!(t.annotations, vec![FORCES_DESTRUCTIVE.to_string()]);
        // The other tasks of the group are unchanged and say so.
        assert!(
            g.tasks
                .iter()
                .filter(|t| &t.name != task)
                .all(|t| t.r#type == DiffType::None)
        );
    }
}

#[test]
fn an_env_variable_added_is_a_field_of_the_task() {
    for job in seeds() {
        let v2 = job.clone().with(|j| {
            j.task_groups[0].tasks[0]
                .env
                .insert("PLAN_TEST".into(), "1".into());
        });
        let d = annotated(Some(&job), &v2);
        let t = &edited_group(&d, &job.task_groups[0].name).tasks;
        let t = t
            .iter()
            .find(|t| t.name == job.task_groups[0].tasks[0].name)
            .expect("task");
        let f = field(&t.fields, "Env[PLAN_TEST]");
        assert_eq!(
            (f.r#type, f.old.as_str(), f.new.as_str()),
            (DiffType::Added, "", "1")
        );
        // The task is started again with its new environment.
        assert_eq!(t.annotations, vec![FORCES_DESTRUCTIVE.to_string()]);
    }
}

#[test]
fn a_restart_policy_change_is_in_place() {
    for job in seeds() {
        let v2 = job.clone().with(|j| j.task_groups[0].restart.attempts += 5);
        let d = annotated(Some(&job), &v2);
        let g = edited_group(&d, &job.task_groups[0].name);
        let rp = g
            .objects
            .iter()
            .find(|o| o.name == "RestartPolicy")
            .expect("RestartPolicy");
        assert_eq!(rp.r#type, DiffType::Edited);
        assert_eq!(field(&rp.fields, "Attempts").r#type, DiffType::Edited);
        // Tasks themselves did not change.
        assert!(g.tasks.iter().all(|t| t.r#type == DiffType::None));
    }
}

fn extra_group(job: &Job) -> TaskGroup {
    let mut g = job.task_groups[0].clone();
    g.name = "extra".into();
    // A copy of the group must not take the same static ports.
    g.networks.clear();
    g
}

#[test]
fn a_group_added_or_removed() {
    for job in seeds() {
        let v2 = job.clone().with(|j| j.task_groups.push(extra_group(&job)));
        let d = annotated(Some(&job), &v2);
        assert_eq!(d.r#type, DiffType::Edited);
        let g = edited_group(&d, "extra");
        assert_eq!(g.r#type, DiffType::Added);
        assert!(g.tasks.iter().all(
            |t| t.r#type == DiffType::Added && t.annotations == vec![FORCES_CREATE.to_string()]
        ));
        let first = edited_group(&d, &job.task_groups[0].name);
        assert_eq!(first.r#type, DiffType::None);

        let d = annotated(Some(&v2), &job);
        let g = edited_group(&d, "extra");
        assert_eq!(g.r#type, DiffType::Deleted);
        assert!(
            g.tasks.iter().all(|t| t.r#type == DiffType::Deleted
                && t.annotations == vec![FORCES_DESTROY.to_string()])
        );
    }
}

#[test]
fn datacenters_are_a_set() {
    let job = seed("whoami.nomad");
    let v2 = job.clone().with(|j| j.datacenters.push("dc2".into()));
    let d = job_diff(Some(&job), Some(&v2));
    let dc = d
        .objects
        .iter()
        .find(|o| o.name == "Datacenters")
        .expect("set");
    assert_eq!(dc.r#type, DiffType::Edited);
    let added: Vec<&str> = dc
        .fields
        .iter()
        .filter(|f| f.r#type == DiffType::Added)
        .map(|f| f.new.as_str())
        .collect();
    assert_eq!(added, ["dc2"]);
}

#[test]
fn the_json_shape_is_nomads() {
    let job = seed("whoami.nomad");
    let d = annotated(Some(&job), &job.clone().count(3));
    let v = serde_json::to_value(&d).expect("serialize");
    assert_eq!(v["Type"], "Edited");
    assert_eq!(v["ID"], "whoami");
    assert_eq!(v["TaskGroups"][0]["Name"], "web");
    assert_eq!(v["TaskGroups"][0]["Fields"][0]["Name"], "Count");
    assert_eq!(v["TaskGroups"][0]["Fields"][0]["Old"], "1");
    assert_eq!(
        v["TaskGroups"][0]["Fields"][0]["Annotations"][0],
        "forces create"
    );
    assert_eq!(v["TaskGroups"][0]["Tasks"][0]["Type"], "None");
    // Nomad's Go client sends `null` for empty lists; both read back.
    let mut nomad = v.clone();
    nomad["Objects"] = serde_json::Value::Null;
    nomad["TaskGroups"][0]["Tasks"][0]["Annotations"] = serde_json::Value::Null;
    let back: JobDiff = serde_json::from_value(nomad).expect("deserialize");
    assert_eq!(back, d);
}

// ---- with the scheduler: a server holding the job, one node, allocations running ---------

fn server_running(job: &Job) -> Arc<Server> {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let server = Server::with_store(store, ServerConfig::new("/nonexistent")).expect("server");
    server.store().upsert_node(mock::node()).expect("node");
    server
        .register_job(job.clone(), JobSource::Api)
        .expect("register");
    for eval in server
        .store()
        .evals_by_status(EvalStatus::Pending)
        .expect("pending")
    {
        crate::worker::process(server.store(), &eval).expect("process");
    }
    server
}

fn response(server: &Server, job: &Job, remove: bool) -> PlanResponse {
    let modify = server
        .job(&job.namespace, &job.id)
        .expect("job")
        .map_or(0, |r| r.modify_index);
    let plan = server.plan_job(job, remove).expect("plan");
    crate::api::plan_response(&plan, modify, true, 0)
}

/// The exhausted dimensions of an `AllocMetric`, as the CLI's `metric_lines` prints them.
fn metric_lines(m: &serde_json::Value) -> Vec<String> {
    m["DimensionExhausted"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(dim, n)| format!("Dimension {dim:?} exhausted on {n} nodes"))
        .collect()
}

#[test]
fn golden_count_change_on_a_running_job() {
    let job = seed("whoami.nomad");
    let server = server_running(&job);
    let index = server.store().index();
    let resp = response(&server, &job.clone().count(2), false);
    assert_eq!(server.store().index(), index, "planning writes nothing");
    assert_eq!(resp.exit_code(), 1);
    let text = format_plan(&resp, "service", true, false, metric_lines);
    let modify = resp.job_modify_index;
    assert!(modify > 0);
    assert_eq!(
        text,
        format!(
            r#"+/- Job: "whoami"
+/- Task Group: "web" (1 create, 1 in-place update)
  +/- Count: "1" => "2" (forces create)
      Task: "api"

Scheduler dry-run:
- WARNING: Failed to place all allocations.
  Task Group "web" (failed to place 1 allocation):
    * Dimension "network: reserved port collision http=8080" exhausted on 1 nodes

Job Modify Index: {modify}
"#
        )
    );
}

#[test]
fn golden_image_change_on_a_running_job() {
    let job = seed("whoami.nomad");
    let server = server_running(&job);
    let (v2, _) = new_image(&job);
    let resp = response(&server, &v2, false);
    assert_eq!(resp.exit_code(), 1);
    let diff = format_job_diff(resp.diff.as_ref().expect("diff"), false);
    assert_eq!(
        diff,
        r#"+/- Job: "whoami"
+/- Task Group: "web" (1 create/destroy update)
  +/- Task: "api" (forces create/destroy update)
    +/- Config {
      +/- image:    "docker4dotnet/whoami" => "docker4dotnet/whoami-v2"
          ports[0]: "http"
        }

"#
    );
}

#[test]
fn unchanged_and_in_place_plans_exit_0() {
    let job = seed("whoami.nomad");
    let server = server_running(&job);
    let same = response(&server, &job, false);
    assert_eq!(same.diff.as_ref().map(|d| d.r#type), Some(DiffType::None));
    assert_eq!(same.exit_code(), 0);
    let text = format_plan(&same, "service", true, false, metric_lines);
    assert!(
        text.starts_with("Job: \"whoami\"\nTask Group: \"web\" (1 ignore)\n  Task: \"api\"\n\nScheduler dry-run:\n- All tasks successfully allocated.\n"),
        "{text}"
    );

    let policy = job.clone().with(|j| j.task_groups[0].restart.attempts = 9);
    let resp = response(&server, &policy, false);
    assert_eq!(resp.diff.as_ref().map(|d| d.r#type), Some(DiffType::Edited));
    let g = resp
        .diff
        .as_ref()
        .and_then(|d| d.group("web"))
        .expect("web");
    assert_eq!(g.updates.get("in-place update"), Some(&1));
    // An in-place update creates and destroys nothing: Nomad's exit code 0.
    assert_eq!(resp.exit_code(), 0);
}

#[test]
fn removing_a_running_job_destroys_its_allocations() {
    let job = seed("whoami.nomad");
    let server = server_running(&job);
    let resp = response(&server, &job, true);
    let d = resp.diff.as_ref().expect("diff");
    assert_eq!(d.r#type, DiffType::Deleted);
    assert_eq!(edited_group(d, "web").updates.get("destroy"), Some(&1));
    assert_eq!(resp.exit_code(), 1);
    let text = format_job_diff(d, false);
    assert_eq!(
        text,
        "- Job: \"whoami\"\n- Task Group: \"web\" (1 destroy)\n  - Task: \"api\" (forces destroy)\n\n"
    );
}

#[test]
fn an_empty_cluster_does_not_claim_placement_failures() {
    let store = Store::open_in_memory().expect("store");
    let job = seed("whoami.nomad");
    let snap = store.snapshot(&job.namespace, &job.id).expect("snapshot");
    let plan = compute(&snap, &job, false, SystemTime::now());
    assert!(!plan.nodes_known);
    let resp = crate::api::plan_response(&plan, 0, true, 0);
    assert!(resp.failed_tg_allocs.is_none());
    assert_eq!(resp.exit_code(), 1);
    let text = format_plan(&resp, "service", true, false, metric_lines);
    assert!(
        text.contains("- Placement not checked: no nodes are known"),
        "{text}"
    );
    assert!(text.starts_with(
        "+ Job: \"whoami\"\n+ Task Group: \"web\" (1 create)\n  + Task: \"api\" (forces create)\n"
    ));
}

#[test]
fn the_response_round_trips_through_json() {
    let job = seed("whoami.nomad");
    let server = server_running(&job);
    let resp = response(&server, &job.clone().count(2), false);
    let v = serde_json::to_value(&resp).expect("serialize");
    assert_eq!(v["Annotations"]["DesiredTGUpdates"]["web"]["Place"], 1);
    assert_eq!(
        v["Annotations"]["DesiredTGUpdates"]["web"]["InPlaceUpdate"],
        1
    );
    assert!(v["FailedTGAllocs"]["web"]["NodesEvaluated"].is_u64());
    assert_eq!(v["Diff"]["Type"], "Edited");
    let back: PlanResponse = serde_json::from_value(v).expect("deserialize");
    assert_eq!(back, resp);
}

#[test]
fn offline_plans_read_an_agent_store_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("state.db");
    let job = seed("whoami.nomad");
    let files = || {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    {
        // The agent, running: the reader goes through its WAL.
        let writer = Store::open(&db).expect("open");
        writer.upsert_node(mock::node()).expect("node");
        writer
            .register_job(
                job.clone(),
                &JobSource::File("/srv/jobs/whoami.nomad".into()),
                1,
            )
            .expect("register");
        let reader = Store::open_read_only(&db).expect("read-only beside the writer");
        assert_eq!(reader.index(), writer.index());
        let snap = reader.snapshot(&job.namespace, &job.id).expect("snapshot");
        assert!(snap.job.is_some() && !snap.nodes.is_empty());
    }
    // The agent, stopped: its files are left exactly as they are.
    let before = files();
    assert_eq!(before, ["state.db"], "a clean close leaves one file");
    let bytes = std::fs::read(&db).expect("read");
    let store = Store::open_read_only(&db).expect("read-only");
    let index = store.index();
    let snap = store.snapshot(&job.namespace, &job.id).expect("snapshot");
    let plan = compute(&snap, &job.clone().count(2), false, SystemTime::now());
    assert_eq!(plan.diff.r#type, DiffType::Edited);
    let err = store
        .register_job(job.clone(), &JobSource::Api, 2)
        .expect_err("a read-only store refuses writes");
    assert!(err.to_string().contains("read"), "{err}");
    assert_eq!(store.index(), index);
    drop(store);
    assert_eq!(files(), before, "no -wal or -shm was created");
    assert_eq!(
        std::fs::read(&db).expect("read"),
        bytes,
        "the database is unchanged"
    );

    assert!(Store::open_read_only(&dir.path().join("missing.db")).is_err());
}

#[test]
fn planning_on_the_shared_base_matches_a_full_snapshot() {
    let whoami = seed("whoami.nomad");
    let server = server_running(&whoami);
    // Another job holding capacity and a port on the same node.
    let other = seed("todo-list-v2/todo-db.nomad");
    server
        .register_job(other.clone(), JobSource::Api)
        .expect("register");
    for eval in server
        .store()
        .evals_by_status(EvalStatus::Pending)
        .expect("pending")
    {
        crate::worker::process(server.store(), &eval).expect("process");
    }
    let base = PlanBase::read(server.store()).expect("base");
    let now = SystemTime::now();
    let (image, _) = new_image(&whoami);
    let huge = whoami.clone().resources(3_990, 64).count(2);
    for (job, remove) in [
        (whoami.clone(), false),
        (whoami.clone().count(2), false),
        (image, false),
        (huge, false),
        (whoami.clone(), true),
        (seed("todo-list.nomad"), false),
    ] {
        let full = server
            .store()
            .snapshot(&job.namespace, &job.id)
            .expect("snapshot");
        let expected = compute(&full, &job, remove, now);
        let (got, _) = base.plan(server.store(), &job, remove, now).expect("plan");
        assert_eq!(got.plan, expected.plan, "{} (remove: {remove})", job.id);
        assert_eq!(got.diff, expected.diff);
    }
}
