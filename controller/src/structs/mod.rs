//! The control plane's vocabulary, after Nomad's: `Job` → `TaskGroup` → `Task`, and the records
//! the server keeps about them: `Allocation`, `Evaluation`, `Node`. The task itself is
//! `drover_runtime::spec::Task`, because the node runs it; everything a node never needs to see
//! (update and reschedule policy, scheduling constraints across groups) lives here.

mod alloc;
mod eval;
mod job;
pub mod mock;
mod node;

pub use alloc::*;
pub use drover_runtime::spec::{
    Affinity, Artifact, CheckRestart, CheckResult, CheckStatus, ClientStatus, Constraint,
    DesiredStatus, DnsConfig, DockerConfig, DriverInfo, DriverNetwork, LogConfig, NetworkResource,
    NodeInfo, Port, RawExecConfig, Resources, RestartMode, RestartPolicy, Service, ServiceCheck,
    ServiceRegistration, Task, TaskConfig, TaskEvent, TaskState, TaskStateKind,
};
pub use eval::*;
pub use job::*;
pub use node::*;

/// Unix nanoseconds of `t` (Nomad's time unit on the wire); times before 1970 clamp to 0.
pub fn unix_nanos(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::mock::{self, MockAlloc, MockJob};
    use super::*;

    #[test]
    fn enums_serialize_to_nomads_strings() {
        assert_eq!(json(&EvalTrigger::JobRegister), "\"job-register\"");
        assert_eq!(json(&EvalTrigger::RetryFailedAlloc), "\"alloc-failure\"");
        assert_eq!(json(&EvalTrigger::NodeUpdate), "\"node-update\"");
        assert_eq!(json(&EvalTrigger::Scheduled), "\"scheduled\"");
        assert_eq!(json(&EvalStatus::Canceled), "\"canceled\"");
        assert_eq!(json(&NodeStatus::Initializing), "\"initializing\"");
        assert_eq!(json(&SchedulingEligibility::Ineligible), "\"ineligible\"");
        assert_eq!(json(&ClientStatus::Lost), "\"lost\"");
        assert_eq!(json(&DesiredStatus::Evict), "\"evict\"");
        for t in EvalTrigger::ALL {
            assert_eq!(json(&t), format!("\"{}\"", t.as_str()));
            assert_eq!(EvalTrigger::parse(t.as_str()), Some(t));
        }
        for s in EvalStatus::ALL {
            assert_eq!(json(&s), format!("\"{}\"", s.as_str()));
        }
        for s in NodeStatus::ALL {
            assert_eq!(json(&s), format!("\"{}\"", s.as_str()));
        }
    }

    fn json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).expect("plain enums serialize")
    }

    #[test]
    fn terminal_helpers() {
        let job = mock::job();
        let a = mock::alloc(&job, 0);
        assert!(!a.server_terminal() && !a.client_terminal() && !a.terminal());
        let stopped = a.clone().desired_status(DesiredStatus::Stop);
        assert!(stopped.server_terminal() && !stopped.client_terminal());
        for cs in [
            ClientStatus::Complete,
            ClientStatus::Failed,
            ClientStatus::Lost,
        ] {
            assert!(a.clone().client_status(cs).client_terminal());
        }
        for cs in [
            ClientStatus::Pending,
            ClientStatus::Running,
            ClientStatus::Unknown,
        ] {
            assert!(!a.clone().client_status(cs).client_terminal());
        }
    }

    #[test]
    fn alloc_names() {
        assert_eq!(alloc_name("whoami", "web", 3), "whoami.web[3]");
        assert_eq!(alloc_name_index("whoami.web[3]"), Some(3));
        assert_eq!(alloc_name_index("a.b[c]"), None);
        assert_eq!(alloc_name_index("no-index"), None);
        assert_eq!(alloc_name_index("x.y[12"), None);
        assert_eq!(alloc_name_index("x.y[]"), None);
        assert_eq!(alloc_name_index("x.y[1]2]"), None);
        assert_eq!(alloc_name_index("x[a].y[0]"), Some(0));
        assert_eq!(alloc_name_index("x.y[4294967295]"), Some(u32::MAX));
        assert_eq!(alloc_name_index("x.y[4294967296]"), None, "overflow");
        assert_eq!(alloc_name_index("[7]"), Some(7));
    }

    #[test]
    fn spec_changed_ignores_version_and_stop() {
        let job = mock::job();
        assert!(!job.spec_changed(&job.clone().version(7)));
        assert!(!job.spec_changed(&job.clone().stopped()));
        assert!(job.spec_changed(&job.clone().count(2)));
        assert!(job.spec_changed(&job.clone().with(|j| j.priority = 10)));
    }

    #[test]
    fn node_from_info_is_ready_and_eligible() {
        let n = Node::from_info(mock::node_info(), 42);
        assert_eq!(n.status, NodeStatus::Ready);
        assert_eq!(n.scheduling_eligibility, SchedulingEligibility::Eligible);
        assert_eq!(n.status_updated_at, 42);
        assert!(n.schedulable());
        assert!(n.has_healthy_driver("docker"));
        assert!(!n.has_healthy_driver("java"));
    }
}
