//! The control plane's vocabulary, after Nomad's: `Job` → `TaskGroup` → `Task`. The task itself
//! is `drover_runtime::spec::Task`, because the node runs it; everything a node never needs to see
//! (update and reschedule policy, scheduling constraints across groups) lives here.

mod job;

pub use drover_runtime::spec::{
    Affinity, Artifact, CheckRestart, Constraint, DnsConfig, DockerConfig, LogConfig,
    NetworkResource, Port, RawExecConfig, Resources, RestartMode, RestartPolicy, Service,
    ServiceCheck, Task, TaskConfig,
};
pub use job::*;
