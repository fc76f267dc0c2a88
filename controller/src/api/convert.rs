//! drover's records in Nomad's API JSON shapes (`AllocListStub`, `Allocation`, `Evaluation`,
//! `NodeListStub`, `Node`, `JobListStub`, `JobSummary`), so Nomad's clients read them unchanged.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::jobspec;
use crate::scheduler::PlacementFailure;
use crate::structs::{Allocation, Evaluation, Job, Node};
use drover_runtime::spec::{ClientStatus, TaskState};

/// Nomad's time.Time for a Unix-nanosecond instant; its zero time when unset.
pub fn time(nanos: i64) -> Value {
    if nanos <= 0 {
        return json!("0001-01-01T00:00:00Z");
    }
    let (date, sub) = crate::timefmt::utc_parts(nanos);
    json!(format!("{date}.{sub:09}Z"))
}

pub fn task_state(t: &TaskState) -> Value {
    let events: Vec<Value> = t
        .events
        .iter()
        .map(|e| {
            json!({
                "Type": e.event_type,
                "Time": e.time,
                "Message": e.message,
                "DisplayMessage": e.message,
                "ExitCode": e.exit_code.unwrap_or(0),
                "Signal": e.signal.unwrap_or(0),
                "Details": {},
            })
        })
        .collect();
    json!({
        "State": t.state.as_str(),
        "Failed": t.failed,
        "Restarts": t.restarts,
        "LastRestart": time(t.last_restart),
        "StartedAt": time(t.started_at),
        "FinishedAt": time(t.finished_at),
        "Events": events,
    })
}

fn task_states(a: &Allocation) -> Value {
    Value::Object(
        a.task_states
            .iter()
            .map(|(k, v)| (k.clone(), task_state(v)))
            .collect(),
    )
}

pub fn alloc_stub(a: &Allocation, node_name: &str) -> Value {
    json!({
        "ID": a.id,
        "EvalID": a.eval_id,
        "Name": a.name,
        "Namespace": a.namespace,
        "NodeID": a.node_id,
        "NodeName": node_name,
        "JobID": a.job_id,
        "JobVersion": a.job_version,
        "TaskGroup": a.task_group,
        "DesiredStatus": a.desired_status.as_str(),
        "DesiredDescription": a.desired_description,
        "ClientStatus": a.client_status.as_str(),
        "ClientDescription": a.client_description,
        "TaskStates": task_states(a),
        "FollowupEvalID": a.followup_eval_id.clone().unwrap_or_default(),
        "PreviousAllocation": a.previous_allocation.clone().unwrap_or_default(),
        "NextAllocation": a.next_allocation.clone().unwrap_or_default(),
        "CreateIndex": a.create_index,
        "ModifyIndex": a.modify_index,
        "CreateTime": a.create_time,
        "ModifyTime": a.modify_time,
    })
}

/// The full allocation, with its job version and the resources and ports it holds.
pub fn alloc_full(a: &Allocation, job: Option<&Job>, node: Option<&Node>) -> Value {
    let mut v = alloc_stub(a, node.map_or("", |n| n.name.as_str()));
    let host_ip = node.map_or(String::new(), |n| n.address.clone());
    let mut tasks = serde_json::Map::new();
    let group = job.and_then(|j| j.group(&a.task_group));
    if let Some(g) = group {
        for t in &g.tasks {
            tasks.insert(
                t.name.clone(),
                json!({
                    "Cpu": {"CpuShares": t.resources.cpu, "ReservedCores": null},
                    "Memory": {"MemoryMB": t.resources.memory, "MemoryMaxMB": t.resources.memory_max},
                    "Networks": null,
                    "Devices": null,
                }),
            );
        }
    }
    let ports: Vec<Value> = a
        .networks
        .iter()
        .flat_map(|n| n.reserved_ports.iter().chain(n.dynamic_ports.iter()))
        .map(|p| json!({"Label": p.label, "Value": p.value, "To": p.to, "HostIP": host_ip}))
        .collect();
    let port_json = |ps: &[drover_runtime::spec::Port]| -> Value {
        if ps.is_empty() {
            return Value::Null;
        }
        Value::Array(ps.iter().map(|p| json!({"Label": p.label, "Value": p.value, "To": p.to, "HostNetwork": p.host_network.clone().unwrap_or_else(|| "default".into())})).collect())
    };
    let networks: Vec<Value> = a
        .networks
        .iter()
        .map(|n| {
            json!({
                "Mode": n.mode,
                "IP": host_ip,
                "ReservedPorts": port_json(&n.reserved_ports),
                "DynamicPorts": port_json(&n.dynamic_ports),
            })
        })
        .collect();
    let obj = v.as_object_mut().expect("alloc_stub builds an object");
    obj.insert(
        "AllocatedResources".into(),
        json!({
            "Tasks": tasks,
            "Shared": {
                "DiskMB": group.map_or(300, |g| g.ephemeral_disk.size),
                "Networks": networks,
                "Ports": ports,
            },
        }),
    );
    obj.insert("Job".into(), job.map_or(Value::Null, jobspec::to_api_job));
    v
}

pub fn placement_failure(f: &PlacementFailure, datacenters: &BTreeMap<String, u32>) -> Value {
    json!({
        "NodesEvaluated": f.nodes_evaluated,
        "NodesFiltered": f.nodes_filtered,
        "NodesInPool": f.nodes_evaluated,
        "NodesAvailable": datacenters,
        "ClassFiltered": f.class_filtered,
        "ConstraintFiltered": f.constraint_filtered,
        "NodesExhausted": f.nodes_exhausted,
        "ClassExhausted": f.class_exhausted,
        "DimensionExhausted": f.dimension_exhausted,
        "QuotaExhausted": null,
        "Scores": null,
        "AllocationTime": 0,
        "CoalescedFailures": f.coalesced_failures,
    })
}

pub fn eval(e: &Evaluation) -> Value {
    let failed: serde_json::Map<String, Value> = e
        .failed_tg_allocs
        .iter()
        .map(|(g, f)| (g.clone(), placement_failure(f, &BTreeMap::new())))
        .collect();
    json!({
        "ID": e.id,
        "Namespace": e.namespace,
        "Priority": e.priority,
        "Type": "service",
        "TriggeredBy": e.triggered_by.as_str(),
        "JobID": e.job_id,
        "NodeID": e.node_id.clone().unwrap_or_default(),
        "Status": e.status.as_str(),
        "StatusDescription": e.status_description,
        "WaitUntil": time(e.wait_until.unwrap_or(0)),
        "PreviousEval": e.previous_eval.clone().unwrap_or_default(),
        "FailedTGAllocs": if failed.is_empty() { Value::Null } else { Value::Object(failed) },
        "CreateIndex": e.create_index,
        "ModifyIndex": e.modify_index,
        "CreateTime": e.create_time,
        "ModifyTime": e.modify_time,
    })
}

fn drivers(n: &Node) -> Value {
    Value::Object(
        n.drivers
            .iter()
            .map(|(k, d)| {
                (
                    k.clone(),
                    json!({
                        "Detected": d.detected,
                        "Healthy": d.healthy,
                        "HealthDescription": d.health_description,
                        "UpdateTime": time(d.update_time),
                        "Attributes": null,
                    }),
                )
            })
            .collect(),
    )
}

pub fn node_stub(n: &Node) -> Value {
    json!({
        "ID": n.id,
        "Name": n.name,
        "Datacenter": n.datacenter,
        "NodeClass": n.node_class,
        "NodePool": n.node_pool,
        "Address": n.address,
        "HTTPAddr": n.http_addr,
        "Version": env!("CARGO_PKG_VERSION"),
        "Drain": n.drain,
        "LastDrain": n.last_drain.as_ref().map(|d| json!({
            "StartedAt": go_time(d.started_at),
            "UpdatedAt": go_time(d.updated_at),
            "Status": d.status,
            "AccessorID": "",
            "Meta": {},
        })),
        "SchedulingEligibility": n.scheduling_eligibility.as_str(),
        "Status": n.status.as_str(),
        "StatusDescription": n.status_description,
        "Drivers": drivers(n),
        "CreateIndex": n.create_index,
        "ModifyIndex": n.modify_index,
    })
}

pub fn node_full(n: &Node) -> Value {
    let mut v = node_stub(n);
    let obj = v.as_object_mut().expect("node_stub builds an object");
    obj.insert("Attributes".into(), json!(n.attributes));
    obj.insert("Meta".into(), json!(n.meta));
    obj.insert("StatusUpdatedAt".into(), json!(n.status_updated_at));
    // Go embeds `DrainSpec` in `DrainStrategy`, so its fields sit at the top level.
    obj.insert(
        "DrainStrategy".into(),
        match &n.drain_strategy {
            Some(d) => json!({
                "Deadline": d.deadline,
                "IgnoreSystemJobs": d.ignore_system_jobs,
                "ForceDeadline": go_time(d.force_deadline),
                "StartedAt": go_time(d.started_at),
            }),
            None => Value::Null,
        },
    );
    obj.insert(
        "NodeResources".into(),
        json!({"Cpu": {"CpuShares": n.cpu_mhz}, "Memory": {"MemoryMB": n.memory_mb}, "Disk": {"DiskMB": 0}}),
    );
    obj.insert(
        "ReservedResources".into(),
        json!({"Networks": {"ReservedHostPorts": n.reserved_ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",")}}),
    );
    v
}

/// Nomad's per-group counts of a job's allocations.
pub fn summary(job: &Job, allocs: &[Allocation], queued: &BTreeMap<String, u32>) -> Value {
    let mut groups = serde_json::Map::new();
    for g in &job.task_groups {
        let count = |s: ClientStatus| {
            allocs
                .iter()
                .filter(|a| a.task_group == g.name && a.client_status == s)
                .count()
        };
        groups.insert(
            g.name.clone(),
            json!({
                "Queued": queued.get(&g.name).copied().unwrap_or(0),
                "Starting": count(ClientStatus::Pending),
                "Running": count(ClientStatus::Running),
                "Failed": count(ClientStatus::Failed),
                "Complete": count(ClientStatus::Complete),
                "Lost": count(ClientStatus::Lost),
                "Unknown": count(ClientStatus::Unknown),
            }),
        );
    }
    json!({"JobID": job.id, "Namespace": job.namespace, "Summary": groups, "Children": {"Pending": 0, "Running": 0, "Dead": 0}})
}

/// Nomad's job status: `dead` when stopped or everything finished, `running` while any
/// allocation may run, `pending` before any has been placed.
pub fn job_status(job: &Job, allocs: &[Allocation]) -> &'static str {
    if job.stop {
        return "dead";
    }
    if allocs.iter().any(|a| !a.terminal()) {
        return "running";
    }
    if !allocs.is_empty() && job.job_type.is_batch_like() {
        return "dead";
    }
    "pending"
}

pub fn job_stub(
    job: &Job,
    allocs: &[Allocation],
    queued: &BTreeMap<String, u32>,
    submit_time: i64,
    modify_index: u64,
) -> Value {
    json!({
        "ID": job.id,
        "ParentID": "",
        "Name": job.name,
        "Namespace": job.namespace,
        "Datacenters": job.datacenters,
        "NodePool": job.node_pool,
        "Type": job.job_type.as_str(),
        "Priority": job.priority,
        "Periodic": false,
        "ParameterizedJob": false,
        "Stop": job.stop,
        "Status": job_status(job, allocs),
        "StatusDescription": "",
        "JobSummary": summary(job, allocs, queued),
        "CreateIndex": modify_index,
        "ModifyIndex": modify_index,
        "JobModifyIndex": modify_index,
        "SubmitTime": submit_time,
        "Version": job.version,
    })
}

/// Go's `time.Time` in JSON: RFC 3339 with nanoseconds; the zero time for 0.
pub fn go_time(nanos: i64) -> String {
    if nanos <= 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    let (date, sub) = crate::timefmt::utc_parts(nanos);
    if sub == 0 {
        format!("{date}Z")
    } else {
        format!("{date}.{sub:09}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_look_like_go() {
        assert_eq!(time(0), json!("0001-01-01T00:00:00Z"));
        assert_eq!(
            time(1_700_000_000_123_456_789),
            json!("2023-11-14T22:13:20.123456789Z")
        );
    }
}
