//! `Evaluation`: one request to reconcile one job, with Nomad's trigger and status strings.

use serde::{Deserialize, Serialize};

/// Why an evaluation exists (Nomad's `EvalTrigger*`, with Nomad's strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EvalTrigger {
    #[serde(rename = "job-register")]
    JobRegister,
    #[serde(rename = "job-deregister")]
    JobDeregister,
    #[serde(rename = "periodic-job")]
    PeriodicJob,
    #[serde(rename = "node-drain")]
    NodeDrain,
    #[serde(rename = "node-update")]
    NodeUpdate,
    #[serde(rename = "alloc-stop")]
    AllocStop,
    #[serde(rename = "scheduled")]
    Scheduled,
    #[serde(rename = "rolling-update")]
    RollingUpdate,
    #[serde(rename = "deployment-watcher")]
    DeploymentWatcher,
    #[serde(rename = "failed-eval-follow-up")]
    FailedFollowUp,
    #[serde(rename = "max-plan-attempts")]
    MaxPlans,
    #[serde(rename = "alloc-failure")]
    RetryFailedAlloc,
    #[serde(rename = "queued-allocs")]
    QueuedAllocs,
    #[serde(rename = "job-scaling")]
    Scaling,
}

impl EvalTrigger {
    pub const ALL: [EvalTrigger; 14] = [
        EvalTrigger::JobRegister,
        EvalTrigger::JobDeregister,
        EvalTrigger::PeriodicJob,
        EvalTrigger::NodeDrain,
        EvalTrigger::NodeUpdate,
        EvalTrigger::AllocStop,
        EvalTrigger::Scheduled,
        EvalTrigger::RollingUpdate,
        EvalTrigger::DeploymentWatcher,
        EvalTrigger::FailedFollowUp,
        EvalTrigger::MaxPlans,
        EvalTrigger::RetryFailedAlloc,
        EvalTrigger::QueuedAllocs,
        EvalTrigger::Scaling,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvalTrigger::JobRegister => "job-register",
            EvalTrigger::JobDeregister => "job-deregister",
            EvalTrigger::PeriodicJob => "periodic-job",
            EvalTrigger::NodeDrain => "node-drain",
            EvalTrigger::NodeUpdate => "node-update",
            EvalTrigger::AllocStop => "alloc-stop",
            EvalTrigger::Scheduled => "scheduled",
            EvalTrigger::RollingUpdate => "rolling-update",
            EvalTrigger::DeploymentWatcher => "deployment-watcher",
            EvalTrigger::FailedFollowUp => "failed-eval-follow-up",
            EvalTrigger::MaxPlans => "max-plan-attempts",
            EvalTrigger::RetryFailedAlloc => "alloc-failure",
            EvalTrigger::QueuedAllocs => "queued-allocs",
            EvalTrigger::Scaling => "job-scaling",
        }
    }

    pub fn parse(s: &str) -> Option<EvalTrigger> {
        EvalTrigger::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Nomad's `EvalStatus*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalStatus {
    Pending,
    Complete,
    Failed,
    Blocked,
    Canceled,
}

impl EvalStatus {
    pub const ALL: [EvalStatus; 5] = [
        EvalStatus::Pending,
        EvalStatus::Complete,
        EvalStatus::Failed,
        EvalStatus::Blocked,
        EvalStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvalStatus::Pending => "pending",
            EvalStatus::Complete => "complete",
            EvalStatus::Failed => "failed",
            EvalStatus::Blocked => "blocked",
            EvalStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<EvalStatus> {
        EvalStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Nomad's `Evaluation.TerminalStatus`.
    pub fn terminal(self) -> bool {
        matches!(
            self,
            EvalStatus::Complete | EvalStatus::Failed | EvalStatus::Canceled
        )
    }
}

/// An evaluation: one request to reconcile one job (Nomad's `Evaluation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// A UUID.
    pub id: String,
    pub namespace: String,
    pub priority: u8,
    pub job_id: String,
    pub triggered_by: EvalTrigger,
    pub status: EvalStatus,
    pub status_description: String,
    /// Do not run before this time (unix nanoseconds): delayed reschedules and rolling batches.
    pub wait_until: Option<i64>,
    /// The node whose change caused a `node-update` evaluation.
    pub node_id: Option<String>,
    pub previous_eval: Option<String>,
    /// Placement failures per group, as `drover status` prints them.
    pub failed_tg_allocs: std::collections::BTreeMap<String, crate::scheduler::PlacementFailure>,
    pub create_index: u64,
    pub modify_index: u64,
    /// Unix nanoseconds.
    pub create_time: i64,
    pub modify_time: i64,
}

impl Evaluation {
    /// A new pending evaluation; the store assigns the indices.
    pub fn new(job_id: &str, namespace: &str, triggered_by: EvalTrigger, now: i64) -> Self {
        Evaluation {
            id: uuid::Uuid::new_v4().to_string(),
            namespace: namespace.to_string(),
            priority: 50,
            job_id: job_id.to_string(),
            triggered_by,
            status: EvalStatus::Pending,
            status_description: String::new(),
            wait_until: None,
            node_id: None,
            previous_eval: None,
            failed_tg_allocs: Default::default(),
            create_index: 0,
            modify_index: 0,
            create_time: now,
            modify_time: now,
        }
    }
}
