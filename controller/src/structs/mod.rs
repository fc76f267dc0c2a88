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
    Affinity, Artifact, CheckRestart, ClientStatus, Constraint, DesiredStatus, DnsConfig,
    DockerConfig, DriverInfo, LogConfig, NetworkResource, NodeInfo, Port, RawExecConfig, Resources,
    RestartMode, RestartPolicy, Service, ServiceCheck, Task, TaskConfig, TaskEvent, TaskState,
    TaskStateKind,
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
