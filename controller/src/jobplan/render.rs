//! Nomad's `job plan` text: the annotated diff (`+/- Job: "x"`, `Task Group: "web" (1 create)`,
//! fields aligned under their markers), the "Scheduler dry-run" section and the job modify
//! index. Works on the plan API's response, so an agent's answer and an offline plan print the
//! same way. No colour: drover's CLI prints none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::diff::{DiffType, FieldDiff, JobDiff, ObjectDiff, TaskDiff, TaskGroupDiff};
use super::{PlanUpdates, exit_code};

/// Nomad's `JobPlanResponse`, plus `PlacementChecked` (false when no node was known, as in an
/// offline plan against an empty cluster: the placement lines would otherwise claim failures).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlanResponse {
    #[serde(default)]
    pub annotations: Option<PlanAnnotations>,
    #[serde(default, rename = "FailedTGAllocs")]
    pub failed_tg_allocs: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub job_modify_index: u64,
    #[serde(default)]
    pub created_evals: Option<Vec<Value>>,
    #[serde(default)]
    pub diff: Option<JobDiff>,
    #[serde(default)]
    pub next_periodic_launch: Option<String>,
    #[serde(default)]
    pub warnings: String,
    #[serde(default = "yes")]
    pub placement_checked: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlanAnnotations {
    #[serde(default, rename = "DesiredTGUpdates")]
    pub desired_tg_updates: Option<BTreeMap<String, PlanUpdates>>,
    #[serde(default)]
    pub preempted_allocs: Option<Vec<Value>>,
}

impl PlanResponse {
    /// Nomad's exit code for this plan: 0 nothing created or destroyed, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        let empty = BTreeMap::new();
        let updates = self
            .annotations
            .as_ref()
            .and_then(|a| a.desired_tg_updates.as_ref())
            .unwrap_or(&empty);
        match &self.diff {
            Some(d) => exit_code(d, updates),
            None => 0,
        }
    }
}

/// Spaces.
fn sp(n: usize) -> String {
    " ".repeat(n)
}

fn marker_len(t: DiffType) -> usize {
    t.marker().len()
}

/// Go's `%q` for the strings a diff holds.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The annotated diff of a job; `verbose` also expands what is wholly added or deleted.
pub fn format_job_diff(job: &JobDiff, verbose: bool) -> String {
    let mut out = format!("{}Job: {}\n", job.r#type.marker(), quote(&job.id));
    let (longest_field, mut longest_marker) = longest_prefixes(&job.fields, &job.objects);
    for g in &job.task_groups {
        longest_marker = longest_marker.max(marker_len(g.r#type));
    }
    if job.r#type == DiffType::Edited || verbose {
        let fo = aligned(&job.fields, &job.objects, 0, longest_field, longest_marker);
        out.push_str(&fo);
        if !fo.is_empty() {
            out.push('\n');
        }
    }
    for g in &job.task_groups {
        let prefix = longest_marker - marker_len(g.r#type);
        out.push_str(&format_group(g, prefix, verbose));
        out.push('\n');
    }
    out
}

fn format_group(g: &TaskGroupDiff, prefix: usize, verbose: bool) -> String {
    let mut out = format!(
        "{}{}Task Group: {}",
        g.r#type.marker(),
        sp(prefix),
        quote(&g.name)
    );
    if g.updates.is_empty() {
        out.push('\n');
    } else {
        let updates: Vec<String> = g.updates.iter().map(|(k, n)| format!("{n} {k}")).collect();
        out.push_str(&format!(" ({})\n", updates.join(", ")));
    }
    let (longest_field, mut longest_marker) = longest_prefixes(&g.fields, &g.objects);
    for t in &g.tasks {
        longest_marker = longest_marker.max(marker_len(t.r#type));
    }
    let start = prefix + 2;
    if g.r#type == DiffType::Edited || verbose {
        let fo = aligned(&g.fields, &g.objects, start, longest_field, longest_marker);
        out.push_str(&fo);
        if !fo.is_empty() {
            out.push('\n');
        }
    }
    for t in &g.tasks {
        let task_prefix = longest_marker - marker_len(t.r#type);
        out.push_str(&format_task(t, start, task_prefix, verbose));
        out.push('\n');
    }
    out
}

fn format_task(t: &TaskDiff, start: usize, prefix: usize, verbose: bool) -> String {
    let mut out = format!(
        "{}{}{}Task: {}",
        sp(start),
        t.r#type.marker(),
        sp(prefix),
        quote(&t.name)
    );
    if !t.annotations.is_empty() {
        out.push_str(&format!(" ({})", t.annotations.join(", ")));
    }
    match t.r#type {
        DiffType::None => return out,
        DiffType::Added | DiffType::Deleted if !verbose => return out,
        _ => out.push('\n'),
    }
    let (longest_field, longest_marker) = longest_prefixes(&t.fields, &t.objects);
    out.push_str(&aligned(
        &t.fields,
        &t.objects,
        start + 2,
        longest_field,
        longest_marker,
    ));
    out
}

fn format_object(o: &ObjectDiff, start: usize, key_prefix: usize) -> String {
    let mut out = format!(
        "{}{}{}{} {{\n",
        sp(start),
        o.r#type.marker(),
        sp(key_prefix),
        o.name
    );
    let (longest_field, longest_marker) = longest_prefixes(&o.fields, &o.objects);
    out.push_str(&aligned(
        &o.fields,
        &o.objects,
        start + key_prefix + 2,
        longest_field,
        longest_marker,
    ));
    format!("{out}\n{}}}", sp(start + marker_len(o.r#type) + key_prefix))
}

fn format_field(f: &FieldDiff, start: usize, key_prefix: usize, value_prefix: usize) -> String {
    let value = match f.r#type {
        DiffType::Added => quote(&f.new),
        DiffType::Deleted => quote(&f.old),
        DiffType::Edited => format!("{} => {}", quote(&f.old), quote(&f.new)),
        DiffType::None => quote(&f.new),
    };
    let mut out = format!(
        "{}{}{}{}: {}{value}",
        sp(start),
        f.r#type.marker(),
        sp(key_prefix),
        f.name,
        sp(value_prefix)
    );
    if !f.annotations.is_empty() {
        out.push_str(&format!(" ({})", f.annotations.join(", ")));
    }
    out
}

/// Fields then objects, markers right-aligned and values aligned, one per line.
fn aligned(
    fields: &[FieldDiff],
    objects: &[ObjectDiff],
    start: usize,
    longest_field: usize,
    longest_marker: usize,
) -> String {
    let mut lines = Vec::new();
    for f in fields {
        lines.push(format_field(
            f,
            start,
            longest_marker - marker_len(f.r#type),
            longest_field - f.name.len(),
        ));
    }
    for o in objects {
        lines.push(format_object(
            o,
            start,
            longest_marker - marker_len(o.r#type),
        ));
    }
    lines.join("\n")
}

fn longest_prefixes(fields: &[FieldDiff], objects: &[ObjectDiff]) -> (usize, usize) {
    let longest_field = fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
    let longest_marker = fields
        .iter()
        .map(|f| marker_len(f.r#type))
        .chain(objects.iter().map(|o| marker_len(o.r#type)))
        .max()
        .unwrap_or(0);
    (longest_field, longest_marker)
}

/// Go's `time.Duration` text for whole seconds and above (`1m30s`), milliseconds below.
fn go_duration(nanos: i64) -> String {
    if nanos <= 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", nanos / 1_000_000);
    }
    let secs = nanos / 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Nomad's "Scheduler dry-run" lines.
pub fn format_dry_run(
    resp: &PlanResponse,
    job_type: &str,
    metric_lines: impl Fn(&Value) -> Vec<String>,
) -> String {
    let mut out = String::new();
    let rolling = resp
        .created_evals
        .iter()
        .flatten()
        .rfind(|e| e["TriggeredBy"] == "rolling-update");
    let failed = resp.failed_tg_allocs.as_ref().filter(|m| !m.is_empty());
    match failed {
        _ if !resp.placement_checked => {
            out.push_str("- Placement not checked: no nodes are known (an empty cluster).\n")
        }
        None => out.push_str("- All tasks successfully allocated.\n"),
        Some(groups) => {
            if job_type == "system" {
                out.push_str("- WARNING: Failed to place allocations on all nodes.\n");
            } else {
                out.push_str("- WARNING: Failed to place all allocations.\n");
            }
            for (group, metric) in groups {
                let n = metric["CoalescedFailures"].as_u64().unwrap_or(0) + 1;
                out.push_str(&format!(
                    "  Task Group {} (failed to place {n} allocation{}):\n",
                    quote(group),
                    if n == 1 { "" } else { "s" }
                ));
                let lines: Vec<String> = metric_lines(metric)
                    .into_iter()
                    .map(|l| format!("    * {l}"))
                    .collect();
                out.push_str(&lines.join("\n"));
                out.push_str("\n\n");
            }
            if rolling.is_none() {
                out.pop();
            }
        }
    }
    if let Some(r) = rolling {
        let wait = r["Wait"].as_i64().unwrap_or(0);
        out.push_str(&format!(
            "- Rolling update, next evaluation will be in {}.\n",
            go_duration(wait)
        ));
    }
    out.trim_end_matches('\n').to_string()
}

/// The whole plan of one job as `nomad job plan` prints it, without the `-check-index` help
/// (drover's `job run` has no such flag yet).
pub fn format_plan(
    resp: &PlanResponse,
    job_type: &str,
    show_diff: bool,
    verbose: bool,
    metric_lines: impl Fn(&Value) -> Vec<String>,
) -> String {
    let mut out = String::new();
    if show_diff && let Some(d) = &resp.diff {
        out.push_str(format_job_diff(d, verbose).trim());
        out.push_str("\n\n");
    }
    out.push_str("Scheduler dry-run:\n");
    out.push_str(&format_dry_run(resp, job_type, metric_lines));
    out.push_str("\n\n");
    if !resp.warnings.is_empty() {
        out.push_str(&format!("Job Warnings:\n{}\n\n", resp.warnings));
    }
    out.push_str(&format!("Job Modify Index: {}\n", resp.job_modify_index));
    out
}
