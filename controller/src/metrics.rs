//! Prometheus metrics, named in controller-runtime's style (`drover_reconcile_total`,
//! `drover_workqueue_depth` …) under Prometheus' naming rules: a `drover_` prefix, base units
//! (`_seconds`), `_total` on counters, low-cardinality labels.
//!
//! Counters and the reconcile histogram are updated where things happen (the workers, the
//! server receiving client updates, the manifests source). Gauges — jobs, allocations and
//! nodes by status, manifest files, the work queue — are set at scrape time from one grouped
//! SQL count and in-memory state, so they can never drift from what the store holds.
//! Per job and task group, `drover_job_group_desired` and `drover_job_group_allocations`
//! (Nomad's `nomad.nomad.job_summary.*`) are built fresh at each scrape from the store's job
//! summary, so a purged job's series disappear with it.
//! The process collector adds `process_cpu_seconds_total`, `process_resident_memory_bytes` …

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::proto::{self as pb, MetricFamily, MetricType};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use serde_json::{Value, json};

use crate::broker::BrokerStats;
use crate::state::{JobSummary, StateCounts};
use crate::structs::{ClientStatus, JobType};

/// The content type of Prometheus' text exposition format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Reconcile durations are milliseconds when healthy; the upper buckets catch a stuck store.
const RECONCILE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `drover_reconcile_errors_total{error}`: the workers' `WorkerError::metric_label()`s, and
/// a panicking evaluation.
const RECONCILE_ERRORS: [&str; 5] = [
    "snapshot",
    "plan_apply",
    "update_eval",
    "too_many_attempts",
    "panic",
];

/// `drover_reconcile_total{result}`: what one evaluation's reconcile ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileResult {
    /// Planned and applied (or nothing to do).
    Success,
    /// Applied, and asked to be run again later (a follow-up evaluation: reschedule delay,
    /// rolling update), as controller-runtime's `requeue_after`.
    RequeueAfter,
    /// Failed; `drover_reconcile_errors_total{error}` says why.
    Error,
}

impl ReconcileResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::RequeueAfter => "requeue_after",
            ReconcileResult::Error => "error",
        }
    }
}

/// The manifests source's part of a scrape.
#[derive(Debug, Clone, Default)]
pub struct ManifestsSample {
    /// Whether a directory is watched at all; without one there is no resync to report.
    pub watched: bool,
    pub files_ok: u64,
    pub files_error: u64,
    /// Parse failures and refusals since the agent started.
    pub errors_total: u64,
    /// Unix seconds of the last listing applied without a directory error; 0 before any.
    pub last_successful_sync: i64,
}

/// What a scrape reads besides the counters.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub counts: StateCounts,
    pub queue: BrokerStats,
    pub manifests: ManifestsSample,
    /// Every job's summary: the per-group series.
    pub jobs: Vec<JobSummary>,
}

pub struct Metrics {
    registry: Registry,
    reconcile_total: IntCounterVec,
    reconcile_errors_total: IntCounterVec,
    reconcile_duration: Histogram,
    task_restarts_total: IntCounterVec,
    placement_failures_total: IntCounter,
    manifest_errors_total: IntCounter,
    manifest_files: IntGaugeVec,
    jobs: IntGaugeVec,
    allocations: IntGaugeVec,
    nodes: IntGaugeVec,
    workqueue_depth: IntGauge,
    workqueue_delayed: IntGauge,
    workqueue_inflight: IntGauge,
    last_resync: Gauge,
    /// Gauges are set, then gathered: one scrape at a time sees its own values.
    scrape: Mutex<bool>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::new(),
            reconcile_total: IntCounterVec::new(
                opts(
                    "drover_reconcile_total",
                    "Evaluations reconciled, by result (success, requeue_after, error).",
                ),
                &["result"],
            )
            .expect("static metric options are valid"),
            reconcile_errors_total: IntCounterVec::new(
                opts(
                    "drover_reconcile_errors_total",
                    "Failed reconciles, by error (snapshot, plan_apply, update_eval, too_many_attempts, panic).",
                ),
                &["error"],
            )
            .expect("static metric options are valid"),
            reconcile_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "drover_reconcile_duration_seconds",
                    "Time to reconcile one evaluation: snapshot, plan and apply.",
                )
                .buckets(RECONCILE_BUCKETS.to_vec()),
            )
            .expect("static metric options are valid"),
            task_restarts_total: IntCounterVec::new(
                opts(
                    "drover_task_restarts_total",
                    "Task restarts nodes reported, by job_id, task and reason (error, signal, oom_killed, completed, start_failed, removed, unknown).",
                ),
                // `job_id`, not `job`: Prometheus puts its own `job` label (the scrape job) on
                // every series and would rename ours to `exported_job`.
                &["job_id", "task", "reason"],
            )
            .expect("static metric options are valid"),
            placement_failures_total: IntCounter::new(
                "drover_placement_failures_total",
                "Allocations an evaluation could not place (no node fits), counted per evaluation.",
            )
            .expect("static metric options are valid"),
            manifest_errors_total: IntCounter::new(
                "drover_manifest_errors_total",
                "Job files that failed to parse or were refused, counted per attempt.",
            )
            .expect("static metric options are valid"),
            manifest_files: IntGaugeVec::new(
                opts(
                    "drover_manifest_files",
                    "Job files in the watched directory, by state (ok, error).",
                ),
                &["state"],
            )
            .expect("static metric options are valid"),
            jobs: IntGaugeVec::new(
                opts(
                    "drover_jobs",
                    "Jobs by status (pending, running, dead), as `drover status` shows them.",
                ),
                &["status"],
            )
            .expect("static metric options are valid"),
            allocations: IntGaugeVec::new(
                opts(
                    "drover_allocations",
                    "Allocations by client status (pending, running, complete, failed, lost, unknown).",
                ),
                &["client_status"],
            )
            .expect("static metric options are valid"),
            nodes: IntGaugeVec::new(
                opts(
                    "drover_nodes",
                    "Nodes by status (initializing, ready, down, disconnected).",
                ),
                &["status"],
            )
            .expect("static metric options are valid"),
            workqueue_depth: IntGauge::new(
                "drover_workqueue_depth",
                "Evaluations due and waiting for a worker (one per job at most).",
            )
            .expect("static metric options are valid"),
            workqueue_delayed: IntGauge::new(
                "drover_workqueue_delayed",
                "Evaluations waiting for their wait_until time (reschedule delays).",
            )
            .expect("static metric options are valid"),
            workqueue_inflight: IntGauge::new(
                "drover_workqueue_inflight",
                "Evaluations a worker is processing now.",
            )
            .expect("static metric options are valid"),
            last_resync: Gauge::new(
                "drover_last_successful_resync_timestamp_seconds",
                "Unix time of the last listing of the manifests directory applied without an error.",
            )
            .expect("static metric options are valid"),
            scrape: Mutex::new(false),
        };
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(m.reconcile_total.clone()),
            Box::new(m.reconcile_errors_total.clone()),
            Box::new(m.reconcile_duration.clone()),
            Box::new(m.task_restarts_total.clone()),
            Box::new(m.placement_failures_total.clone()),
            Box::new(m.manifest_errors_total.clone()),
            Box::new(m.manifest_files.clone()),
            Box::new(m.jobs.clone()),
            Box::new(m.allocations.clone()),
            Box::new(m.nodes.clone()),
            Box::new(m.workqueue_depth.clone()),
            Box::new(m.workqueue_delayed.clone()),
            Box::new(m.workqueue_inflight.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for c in collectors {
            m.registry
                .register(c)
                .expect("each metric name is registered once");
        }
        // Present from the start, so a rate() over them has a zero to start from.
        for r in [
            ReconcileResult::Success,
            ReconcileResult::RequeueAfter,
            ReconcileResult::Error,
        ] {
            m.reconcile_total.with_label_values(&[r.as_str()]);
        }
        for e in RECONCILE_ERRORS {
            m.reconcile_errors_total.with_label_values(&[e]);
        }
        m
    }

    /// One evaluation reconciled in `took`.
    pub fn reconciled(&self, result: ReconcileResult, took: Duration) {
        self.reconcile_total
            .with_label_values(&[result.as_str()])
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// A reconcile failed with the error's `metric_label()`.
    pub fn reconcile_error(&self, label: &str, took: Duration) {
        self.reconciled(ReconcileResult::Error, took);
        self.reconcile_errors_total
            .with_label_values(&[label])
            .inc();
    }

    pub fn task_restarted(&self, job: &str, task: &str, reason: &str) {
        self.task_restarts_total
            .with_label_values(&[job, task, reason])
            .inc();
    }

    pub fn placement_failed(&self, allocations: u64) {
        self.placement_failures_total.inc_by(allocations);
    }

    /// The text exposition of every metric, gauges set from `sample`.
    pub fn render_text(&self, sample: &Sample) -> String {
        let families = self.gather(sample);
        let mut buf = Vec::with_capacity(8 * 1024);
        TextEncoder::new()
            .encode(&families, &mut buf)
            .expect("the text encoder writes to memory");
        String::from_utf8(buf).expect("the text encoder writes UTF-8")
    }

    /// The same metrics in the shape of Nomad's `/v1/metrics` JSON (go-metrics' `Gauges`,
    /// `Counters`, `Samples`), under drover's Prometheus names. Counters and samples are
    /// totals since the agent started, not go-metrics' per-interval aggregates.
    pub fn render_json(&self, sample: &Sample, timestamp: &str) -> Value {
        let mut gauges = Vec::new();
        let mut counters = Vec::new();
        let mut samples = Vec::new();
        for fam in self.gather(sample) {
            let name = fam.name();
            for m in fam.get_metric() {
                let labels: serde_json::Map<String, Value> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), json!(l.value())))
                    .collect();
                match fam.get_field_type() {
                    MetricType::GAUGE => gauges.push(json!({
                        "Name": name, "Value": m.get_gauge().get_value(), "Labels": labels,
                    })),
                    MetricType::COUNTER => {
                        let v = m.get_counter().get_value();
                        counters.push(json!({
                            "Name": name, "Count": v as u64, "Sum": v, "Labels": labels,
                        }));
                    }
                    MetricType::HISTOGRAM => {
                        let h = m.get_histogram();
                        let (count, sum) = (h.get_sample_count(), h.get_sample_sum());
                        let mean = if count == 0 { 0.0 } else { sum / count as f64 };
                        samples.push(json!({
                            "Name": name, "Count": count, "Sum": sum, "Mean": mean, "Labels": labels,
                        }));
                    }
                    _ => {}
                }
            }
        }
        json!({
            "Timestamp": timestamp,
            "Gauges": gauges,
            "Counters": counters,
            "Samples": samples,
            "Points": [],
        })
    }

    fn gather(&self, sample: &Sample) -> Vec<MetricFamily> {
        let mut registered_resync = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        for (status, n) in &sample.counts.jobs {
            self.jobs.with_label_values(&[status]).set(*n as i64);
        }
        for (status, n) in &sample.counts.allocations {
            self.allocations.with_label_values(&[status]).set(*n as i64);
        }
        for (status, n) in &sample.counts.nodes {
            self.nodes.with_label_values(&[status]).set(*n as i64);
        }
        self.workqueue_depth.set(sample.queue.ready as i64);
        self.workqueue_delayed.set(sample.queue.delayed as i64);
        self.workqueue_inflight.set(sample.queue.inflight as i64);
        let mf = &sample.manifests;
        self.manifest_files
            .with_label_values(&["ok"])
            .set(mf.files_ok as i64);
        self.manifest_files
            .with_label_values(&["error"])
            .set(mf.files_error as i64);
        // The source counts; the counter follows it (it only ever grows).
        let seen = self.manifest_errors_total.get();
        if mf.errors_total > seen {
            self.manifest_errors_total.inc_by(mf.errors_total - seen);
        }
        // Only an agent that watches a directory has a resync to be late with; without one
        // the series is absent rather than a 0 that an alert would read as "never".
        if mf.watched {
            self.last_resync.set(mf.last_successful_sync as f64);
            if !*registered_resync {
                *registered_resync = self
                    .registry
                    .register(Box::new(self.last_resync.clone()))
                    .is_ok();
            }
        }
        let mut families = self.registry.gather();
        families.extend(job_group_families(&sample.jobs));
        families.sort_by(|a, b| a.name().cmp(b.name()));
        families
    }
}

const JOB_GROUP_DESIRED: &str = "drover_job_group_desired";
const JOB_GROUP_ALLOCATIONS: &str = "drover_job_group_allocations";

/// How many allocations a group should have running, or `None` when the question has no
/// single answer: a stopped job wants none, and a system job wants one on each node that fits
/// its constraints, which only its scheduler knows.
fn desired_running(job: &JobSummary, count: u32, complete: u64) -> Option<u64> {
    if job.stop {
        return None;
    }
    match job.job_type? {
        JobType::Service => Some(u64::from(count)),
        // A batch allocation that completed is done, not missing: the scheduler does not
        // replace it, so the group only wants the rest running.
        JobType::Batch => Some(u64::from(count).saturating_sub(complete)),
        JobType::System | JobType::Sysbatch => None,
    }
}

/// `drover_job_group_desired{job_id,task_group}` and
/// `drover_job_group_allocations{client_status,job_id,task_group}` (non-zero series only).
/// Labels say `job_id`, as `drover_task_restarts_total` does: Prometheus owns `job`. drover
/// has one namespace, so none is labelled; should two namespaces hold the same job id, their
/// series add up rather than collide.
fn job_group_families(jobs: &[JobSummary]) -> [MetricFamily; 2] {
    let mut desired: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut allocs: BTreeMap<(&str, &str, ClientStatus), u64> = BTreeMap::new();
    for j in jobs {
        for (name, g) in &j.groups {
            let complete = g.allocs.get(&ClientStatus::Complete).copied().unwrap_or(0);
            if let Some(n) = g.count.and_then(|c| desired_running(j, c, complete)) {
                *desired.entry((&j.id, name)).or_default() += n;
            }
            for (status, n) in g.allocs.iter().filter(|(_, n)| **n > 0) {
                *allocs.entry((&j.id, name, *status)).or_default() += n;
            }
        }
    }
    let desired = desired
        .into_iter()
        .map(|((job, group), n)| {
            gauge(
                vec![label("job_id", job), label("task_group", group)],
                n as f64,
            )
        })
        .collect();
    let allocs = allocs
        .into_iter()
        .map(|((job, group, status), n)| {
            gauge(
                vec![
                    label("client_status", status.as_str()),
                    label("job_id", job),
                    label("task_group", group),
                ],
                n as f64,
            )
        })
        .collect();
    [
        family(
            JOB_GROUP_DESIRED,
            "Allocations a task group should have running: its count (service jobs), its count less the allocations that completed (batch jobs). Stopped and system jobs have none.",
            desired,
        ),
        family(
            JOB_GROUP_ALLOCATIONS,
            "A task group's allocations by client status (pending, running, complete, failed, lost, unknown), as Nomad's job summary counts them; zero counts are left out.",
            allocs,
        ),
    ]
}

fn label(name: &str, value: &str) -> pb::LabelPair {
    let mut l = pb::LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

fn gauge(labels: Vec<pb::LabelPair>, value: f64) -> pb::Metric {
    let mut g = pb::Gauge::default();
    g.set_value(value);
    let mut m = pb::Metric::from_gauge(g);
    m.set_label(labels);
    m
}

fn family(name: &str, help: &str, metrics: Vec<pb::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(MetricType::GAUGE);
    f.set_metric(metrics);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sample {
        let mut counts = StateCounts::default();
        for s in crate::state::JOB_STATUSES {
            counts.jobs.insert(s, 0);
        }
        counts.jobs.insert("running", 3);
        counts.allocations.insert("running", 5);
        counts.nodes.insert("ready", 1);
        Sample {
            counts,
            queue: BrokerStats {
                ready: 2,
                delayed: 1,
                inflight: 1,
            },
            manifests: ManifestsSample {
                watched: true,
                files_ok: 3,
                files_error: 1,
                errors_total: 4,
                last_successful_sync: 1_700_000_000,
            },
            jobs: vec![
                summary(
                    "web",
                    JobType::Service,
                    false,
                    3,
                    &[(ClientStatus::Running, 2), (ClientStatus::Failed, 1)],
                ),
                summary(
                    "report",
                    JobType::Batch,
                    false,
                    2,
                    &[(ClientStatus::Complete, 1)],
                ),
                summary(
                    "agent",
                    JobType::System,
                    false,
                    1,
                    &[(ClientStatus::Running, 1)],
                ),
                summary(
                    "old",
                    JobType::Service,
                    true,
                    1,
                    &[(ClientStatus::Complete, 1)],
                ),
            ],
        }
    }

    fn summary(
        id: &str,
        job_type: JobType,
        stop: bool,
        count: u32,
        allocs: &[(ClientStatus, u64)],
    ) -> JobSummary {
        let group = crate::state::GroupSummary {
            count: Some(count),
            allocs: allocs.iter().copied().collect(),
            ..Default::default()
        };
        JobSummary {
            namespace: "default".into(),
            id: id.into(),
            name: id.into(),
            job_type: Some(job_type),
            version: 0,
            stop,
            source: crate::state::JobSource::Api,
            submit_time: 0,
            groups: [("g".to_string(), group)].into(),
        }
    }

    #[test]
    fn job_groups_have_desired_and_nonzero_allocation_series() {
        let text = Metrics::new().render_text(&sample());
        for line in [
            "drover_job_group_desired{job_id=\"web\",task_group=\"g\"} 3",
            "drover_job_group_allocations{client_status=\"running\",job_id=\"web\",task_group=\"g\"} 2",
            "drover_job_group_allocations{client_status=\"failed\",job_id=\"web\",task_group=\"g\"} 1",
            // A completed batch allocation is done, not missing.
            "drover_job_group_desired{job_id=\"report\",task_group=\"g\"} 1",
            "drover_job_group_allocations{client_status=\"running\",job_id=\"agent\",task_group=\"g\"} 1",
            "drover_job_group_allocations{client_status=\"complete\",job_id=\"old\",task_group=\"g\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        for absent in [
            // System jobs and stopped jobs have no desired count to compare with.
            "drover_job_group_desired{job_id=\"agent\"",
            "drover_job_group_desired{job_id=\"old\"",
            // Zero counts are left out.
            "drover_job_group_allocations{client_status=\"pending\"",
        ] {
            assert!(!text.contains(absent), "{absent:?} in\n{text}");
        }
    }

    #[test]
    fn the_text_has_every_documented_name() {
        let m = Metrics::new();
        m.reconciled(ReconcileResult::Success, Duration::from_millis(3));
        m.reconcile_error("plan_apply", Duration::from_millis(1));
        m.task_restarted("whoami", "web", "removed");
        m.placement_failed(2);
        let text = m.render_text(&sample());
        for line in [
            "drover_reconcile_total{result=\"success\"} 1",
            "drover_reconcile_total{result=\"error\"} 1",
            "drover_reconcile_total{result=\"requeue_after\"} 0",
            "drover_reconcile_errors_total{error=\"plan_apply\"} 1",
            "drover_reconcile_duration_seconds_count 2",
            "drover_manifest_files{state=\"ok\"} 3",
            "drover_manifest_files{state=\"error\"} 1",
            "drover_manifest_errors_total 4",
            "drover_jobs{status=\"running\"} 3",
            "drover_jobs{status=\"dead\"} 0",
            "drover_allocations{client_status=\"running\"} 5",
            "drover_task_restarts_total{job_id=\"whoami\",reason=\"removed\",task=\"web\"} 1",
            "drover_nodes{status=\"ready\"} 1",
            "drover_placement_failures_total 2",
            "drover_workqueue_depth 2",
            "drover_last_successful_resync_timestamp_seconds 1700000000",
            "# TYPE process_cpu_seconds_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // A second scrape does not count the same manifest errors again.
        assert!(
            m.render_text(&sample())
                .contains("drover_manifest_errors_total 4\n")
        );
    }

    #[test]
    fn no_watched_directory_means_no_resync_series() {
        let m = Metrics::new();
        let mut s = sample();
        s.manifests.watched = false;
        assert!(
            !m.render_text(&s)
                .contains("drover_last_successful_resync_timestamp_seconds")
        );
    }

    #[test]
    fn the_json_has_nomads_sections() {
        let m = Metrics::new();
        m.reconciled(ReconcileResult::Success, Duration::from_millis(4));
        let v = m.render_json(&sample(), "2026-01-01 00:00:00 +0000 UTC");
        let gauge = v["Gauges"]
            .as_array()
            .expect("gauges")
            .iter()
            .find(|g| g["Name"] == "drover_jobs" && g["Labels"]["status"] == "running")
            .expect("drover_jobs{status=running}");
        assert_eq!(gauge["Value"], 3.0);
        let hist = v["Samples"]
            .as_array()
            .expect("samples")
            .iter()
            .find(|s| s["Name"] == "drover_reconcile_duration_seconds")
            .expect("the reconcile histogram");
        assert_eq!(hist["Count"], 1);
        assert!(
            v["Counters"]
                .as_array()
                .expect("counters")
                .iter()
                .any(|c| c["Name"] == "drover_reconcile_total" && c["Count"] == 1)
        );
    }

    /// `promtool check metrics` (Debian's `prometheus` package, which `scripts/test` installs)
    /// finds nothing to say about the exposition.
    #[test]
    fn promtool_finds_the_exposition_clean() {
        let Ok(promtool) = which("promtool") else {
            panic!(
                "promtool is missing: run scripts/test (it installs Debian's prometheus package)"
            );
        };
        let m = Metrics::new();
        m.reconciled(ReconcileResult::Success, Duration::from_millis(3));
        m.task_restarted("whoami", "web", "error");
        let text = m.render_text(&sample());
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool runs");
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin is piped")
                .write_all(text.as_bytes())
                .expect("write to promtool");
        }
        let out = child.wait_with_output().expect("promtool ends");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool check metrics: {said}\n{text}"
        );
    }

    fn which(bin: &str) -> Result<std::path::PathBuf, ()> {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
            .ok_or(())
    }
}
