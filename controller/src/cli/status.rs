//! `drover status [ID]` and `drover job status [ID]`: the job list (with the manifests files that
//! fail to parse) or one job's summary, placement failures and allocations, in Nomad's layout.

use anyhow::Context;
use serde_json::Value;

use super::client::{ApiClient, encode};
use super::format::{ago, kv, nanos, rfc3339, s, short, table, table_or};

/// Nomad's summary columns, in order.
const SUMMARY: [&str; 7] = [
    "Queued", "Starting", "Running", "Failed", "Complete", "Lost", "Unknown",
];

pub fn job_list(api: &ApiClient, json: bool) -> anyhow::Result<()> {
    let jobs = api.get("/v1/jobs")?;
    let manifests = api.get("/v1/drover/manifests").unwrap_or(Value::Null);
    if json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = jobs
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| {
            vec![
                s(&j["ID"]),
                s(&j["Type"]),
                s(&j["Priority"]),
                s(&j["Status"]),
                rfc3339(nanos(&j["SubmitTime"])),
            ]
        })
        .collect();
    print!(
        "{}",
        table_or(
            &["ID", "Type", "Priority", "Status", "Submit Date"],
            &rows,
            "No running jobs"
        )
    );
    print_manifest_problems(&manifests);
    Ok(())
}

/// drover's own section: job files that fail to parse, and a held (emptied) directory.
fn print_manifest_problems(m: &Value) {
    let mut lines = Vec::new();
    if let Some(e) = m["Error"].as_str().filter(|e| !e.is_empty()) {
        lines.push(format!("  * {e}"));
    }
    if let Some(h) = m["Held"].as_str().filter(|h| !h.is_empty()) {
        lines.push(format!("  * {h}"));
    }
    for f in m["Files"].as_array().into_iter().flatten() {
        for e in f["Errors"].as_array().into_iter().flatten() {
            lines.push(format!(
                "  * {}:{}:{}: {}{}",
                s(&f["Path"]),
                s(&e["Line"]),
                s(&e["Column"]),
                s(&e["Field"]).to_string() + if s(&e["Field"]).is_empty() { "" } else { ": " },
                s(&e["Message"])
            ));
        }
    }
    if !lines.is_empty() {
        println!("\nManifest Errors (the last good version of each job keeps running)");
        for l in lines {
            println!("{l}");
        }
    }
}

pub fn job_status(api: &ApiClient, id: &str, json: bool, verbose: bool) -> anyhow::Result<()> {
    let path = format!("/v1/job/{}", encode(id));
    let job = api
        .get(&path)
        .with_context(|| format!("failed to read job {id:?}"))?;
    let allocs = api.get(&format!("{path}/allocations"))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"Job": job, "Allocations": allocs}))?
        );
        return Ok(());
    }
    let summary = api.get(&format!("{path}/summary")).unwrap_or(Value::Null);
    let evals = api
        .get(&format!("{path}/evaluations"))
        .unwrap_or(Value::Null);
    let dcs: Vec<String> = job["Datacenters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    print!(
        "{}",
        kv(&[
            ("ID", s(&job["ID"])),
            ("Name", s(&job["Name"])),
            ("Submit Date", rfc3339(nanos(&job["SubmitTime"]))),
            ("Type", s(&job["Type"])),
            ("Priority", s(&job["Priority"])),
            ("Datacenters", dcs.join(",")),
            ("Namespace", s(&job["Namespace"])),
            ("Node Pool", s(&job["NodePool"])),
            ("Status", s(&job["Status"])),
            ("Periodic", "false".into()),
            ("Parameterized", "false".into()),
        ])
    );
    if let Some(src) = job["DroverSource"].as_str() {
        println!("Source        = {src}");
    }

    println!("\nSummary");
    let mut header = vec!["Task Group"];
    header.extend(SUMMARY);
    let rows: Vec<Vec<String>> = summary["Summary"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(g, c)| {
            let mut r = vec![g.clone()];
            r.extend(
                SUMMARY
                    .iter()
                    .map(|k| c[*k].as_u64().unwrap_or(0).to_string()),
            );
            r
        })
        .collect();
    print!("{}", table(&header, &rows));

    print_placement_failures(&evals);

    println!("\nAllocations");
    let rows: Vec<Vec<String>> = allocs
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let id = s(&a["ID"]);
            let node = s(&a["NodeID"]);
            vec![
                if verbose { id } else { short(&id) },
                if verbose { node } else { short(&node) },
                s(&a["TaskGroup"]),
                s(&a["JobVersion"]),
                s(&a["DesiredStatus"]),
                s(&a["ClientStatus"]),
                ago(nanos(&a["CreateTime"])),
                ago(nanos(&a["ModifyTime"])),
            ]
        })
        .collect();
    print!(
        "{}",
        table_or(
            &[
                "ID",
                "Node ID",
                "Task Group",
                "Version",
                "Desired",
                "Status",
                "Created",
                "Modified"
            ],
            &rows,
            "No allocations placed"
        )
    );
    Ok(())
}

/// Nomad's "Placement Failure" section from the newest evaluation that failed to place.
pub fn print_placement_failures(evals: &Value) {
    let newest = evals
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["FailedTGAllocs"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
        })
        .max_by_key(|e| e["CreateIndex"].as_u64().unwrap_or(0));
    let Some(eval) = newest else { return };
    println!("\nPlacement Failure");
    for (group, metric) in eval["FailedTGAllocs"].as_object().into_iter().flatten() {
        println!("Task Group {group:?}:");
        for line in metric_lines(metric) {
            println!("  * {line}");
        }
    }
}

/// The lines Nomad prints for an `AllocMetric` (`Dimension "…" exhausted on N nodes` …).
pub fn metric_lines(m: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if m["NodesEvaluated"].as_u64() == Some(0) {
        out.push("No nodes were eligible for evaluation".into());
    }
    for (dc, n) in m["NodesAvailable"].as_object().into_iter().flatten() {
        if n.as_u64() == Some(0) {
            out.push(format!("No nodes are available in datacenter {dc:?}"));
        }
    }
    for (class, n) in m["ClassFiltered"].as_object().into_iter().flatten() {
        out.push(format!(
            "Class {class:?}: {} nodes excluded by filter",
            s(n)
        ));
    }
    for (c, n) in m["ConstraintFiltered"].as_object().into_iter().flatten() {
        out.push(format!(
            "Constraint {c:?}: {} nodes excluded by filter",
            s(n)
        ));
    }
    let exhausted = m["NodesExhausted"].as_u64().unwrap_or(0);
    if exhausted > 0 {
        out.push(format!("Resources exhausted on {exhausted} nodes"));
    }
    for (dim, n) in m["DimensionExhausted"].as_object().into_iter().flatten() {
        out.push(format!("Dimension {dim:?} exhausted on {} nodes", s(n)));
    }
    out
}

pub fn alloc_or_node_or_job(api: &ApiClient, id: &str, json: bool) -> anyhow::Result<()> {
    match api.get(&format!("/v1/job/{}", encode(id))) {
        Ok(_) => return job_status(api, id, json, false),
        Err(e)
            if e.downcast_ref::<super::client::ApiStatusError>()
                .is_some_and(|s| s.status == 404) => {}
        Err(e) => return Err(e),
    }
    if id.len() >= 2
        && let Ok(alloc) = api.resolve_alloc(id)
    {
        return super::alloc::status(api, &alloc, json, false);
    }
    if let Ok(node) = api.resolve_node(id) {
        return super::node::status_one(api, &node, json, false);
    }
    anyhow::bail!("no job, allocation or node with ID or prefix {id:?} found")
}
