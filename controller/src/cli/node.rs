//! `drover node status [-verbose] [-self|ID]`: Nomad's node list and node detail, with the drivers each
//! node detected and whether they are healthy; `node eligibility` and `node drain` with Nomad's
//! flags, messages and exit codes, through `POST /v1/node/:id/eligibility` and `/drain`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{ApiArgs, ApiClient, encode};
use super::format::{ago, kv, nanos, or_none, s, short, table, table_or};

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes, or show one node's details.
    Status(NodeStatusArgs),
    /// Toggle whether new allocations may be placed on a node.
    Eligibility(NodeEligibilityArgs),
    /// Toggle drain mode: move a node's allocations elsewhere and place none there.
    Drain(NodeDrainArgs),
}

#[derive(Debug, Args)]
pub struct NodeEligibilityArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Mark the node eligible for scheduling.
    #[arg(long)]
    pub enable: bool,
    /// Mark the node ineligible for scheduling.
    #[arg(long)]
    pub disable: bool,
    /// Act on the local agent's node.
    #[arg(long = "self")]
    pub self_: bool,
    /// A node ID or unique prefix.
    pub id: Option<String>,
}

#[derive(Debug, Args)]
pub struct NodeDrainArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Enable draining.
    #[arg(long)]
    pub enable: bool,
    /// Disable draining.
    #[arg(long)]
    pub disable: bool,
    /// After this long, allocations still on the node are forced off (default 1h).
    #[arg(long, value_name = "DURATION")]
    pub deadline: Option<String>,
    /// Force everything off at once.
    #[arg(long)]
    pub force: bool,
    /// Wait for allocations to move however long it takes.
    #[arg(long = "no-deadline")]
    pub no_deadline: bool,
    /// Leave system jobs' allocations running.
    #[arg(long = "ignore-system")]
    pub ignore_system: bool,
    /// Keep the node ineligible when disabling the drain.
    #[arg(long = "keep-ineligible")]
    pub keep_ineligible: bool,
    /// Return at once instead of monitoring the drain.
    #[arg(long)]
    pub detach: bool,
    /// Do not ask for confirmation when the ID is a prefix.
    #[arg(long)]
    pub yes: bool,
    /// Act on the local agent's node.
    #[arg(long = "self")]
    pub self_: bool,
    /// A node ID or unique prefix.
    pub id: Option<String>,
}

#[derive(Debug, Args)]
pub struct NodeStatusArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[arg(long)]
    pub json: bool,
    /// Full IDs, node attributes and driver details.
    #[arg(long)]
    pub verbose: bool,
    /// Show the local agent's node.
    #[arg(long = "self", conflicts_with = "id")]
    pub self_: bool,
    /// A node ID, unique prefix or name.
    pub id: Option<String>,
}

pub fn run(cmd: NodeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NodeCommand::Status(a) => {
            let api = ApiClient::new(&a.api);
            match &a.id {
                _ if a.self_ => {
                    let (_, id) = target_node(&api, true, None)?;
                    status_one(&api, &id, a.json, a.verbose)
                }
                Some(id) => {
                    let id = api.resolve_node(id)?;
                    status_one(&api, &id, a.json, a.verbose)
                }
                None => list(&api, a.json, a.verbose),
            }
            .map(|()| ExitCode::SUCCESS)
        }
        NodeCommand::Eligibility(a) => eligibility(a),
        NodeCommand::Drain(a) => drain(a),
    }
}

/// Nomad's usage errors: the message, then a pointer to `-h`; exit 1.
fn usage_error(msg: &str, cmd: &str) -> ExitCode {
    eprintln!("{msg}");
    eprintln!("For additional help try 'drover node {cmd} -h'");
    ExitCode::from(1)
}

/// The node the command acts on: the local agent's with `-self`, else the one the ID (or
/// unique prefix, at least two characters) names. Returns (what was typed, full ID).
fn target_node(api: &ApiClient, self_: bool, id: Option<&str>) -> anyhow::Result<(String, String)> {
    if self_ {
        let me = api.get("/v1/agent/self")?;
        let id = me["stats"]["client"]["node_id"].as_str().unwrap_or("");
        if id.is_empty() {
            bail!(
                "Failed to determine node ID: the agent at {} runs no client",
                api.base()
            );
        }
        return Ok((id.to_string(), id.to_string()));
    }
    let typed = id.unwrap_or("");
    if typed.len() < 2 {
        bail!("Identifier must contain at least two characters.");
    }
    let full = api.resolve_node(typed)?;
    Ok((typed.to_string(), full))
}

fn eligibility(a: NodeEligibilityArgs) -> anyhow::Result<ExitCode> {
    if a.enable == a.disable {
        return Ok(usage_error(
            "Either the '-enable' or '-disable' flag must be set",
            "eligibility",
        ));
    }
    if a.self_ == a.id.is_some() {
        return Ok(usage_error(
            "Node ID must be specified if -self isn't being used",
            "eligibility",
        ));
    }
    let api = ApiClient::new(&a.api);
    let (_, id) = target_node(&api, a.self_, a.id.as_deref())?;
    let want = if a.enable { "eligible" } else { "ineligible" };
    api.post(
        &format!("/v1/node/{}/eligibility", encode(&id)),
        &json!({"NodeID": id, "Eligibility": want}),
    )
    .context("Error updating scheduling eligibility")?;
    println!("Node {id:?} scheduling eligibility set: {want} for scheduling");
    Ok(ExitCode::SUCCESS)
}

/// Nomad's default drain deadline.
const DEFAULT_DRAIN_DEADLINE: Duration = Duration::from_secs(3600);

fn drain(a: NodeDrainArgs) -> anyhow::Result<ExitCode> {
    if a.enable == a.disable {
        return Ok(usage_error(
            "Either the '-enable' or '-disable' flag must be set, unless using '-monitor'",
            "drain",
        ));
    }
    if a.self_ == a.id.is_some() {
        return Ok(usage_error(
            "Node ID must be specified if -self isn't being used",
            "drain",
        ));
    }
    if a.disable && (a.deadline.is_some() || a.force || a.no_deadline || a.ignore_system) {
        return Ok(usage_error(
            "-disable can't be combined with flags configuring drain strategy",
            "drain",
        ));
    }
    if a.deadline.is_some() && (a.force || a.no_deadline) {
        return Ok(usage_error(
            "-deadline can't be combined with -force or -no-deadline",
            "drain",
        ));
    }
    if a.force && a.no_deadline {
        return Ok(usage_error(
            "-force and -no-deadline are mutually exclusive",
            "drain",
        ));
    }
    // Nomad's DrainSpec.Deadline: negative forces, zero waits forever.
    let deadline: i64 = if a.force {
        -1_000_000_000
    } else if a.no_deadline {
        0
    } else if let Some(d) = &a.deadline {
        let d = match crate::jobspec::fields::parse_duration(d) {
            Ok(parsed) => parsed,
            Err(e) => {
                eprintln!("Failed to parse deadline {d:?}: {e}");
                return Ok(ExitCode::from(1));
            }
        };
        if d.is_zero() {
            eprintln!("A positive drain duration must be given");
            return Ok(ExitCode::from(1));
        }
        i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
    } else {
        DEFAULT_DRAIN_DEADLINE.as_nanos() as i64
    };

    let api = ApiClient::new(&a.api);
    let (typed, id) = target_node(&api, a.self_, a.id.as_deref())?;
    if typed != id && !a.yes {
        let verb = if a.enable { "enable" } else { "disable" };
        print!("Are you sure you want to {verb} drain mode for node {id:?}? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("Failed to parse answer")?;
        let answer = answer.trim();
        if answer.is_empty() || answer.to_lowercase().starts_with('n') {
            println!("Canceling drain toggle");
            return Ok(ExitCode::SUCCESS);
        }
        if answer != "y" {
            println!("No confirmation detected. For confirmation, an exact 'y' is required.");
            return Ok(ExitCode::from(1));
        }
    }
    let spec = if a.enable {
        json!({"Deadline": deadline, "IgnoreSystemJobs": a.ignore_system})
    } else {
        Value::Null
    };
    api.post(
        &format!("/v1/node/{}/drain", encode(&id)),
        &json!({"NodeID": id, "DrainSpec": spec, "MarkEligible": !a.keep_ineligible}),
    )
    .context("Error updating drain specification")?;
    if !a.enable {
        println!("Node {id:?} drain strategy unset");
        return Ok(ExitCode::SUCCESS);
    }
    if a.detach {
        println!("Node {id:?} drain strategy set");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: Ctrl-C to stop monitoring: will not cancel the node drain",
        stamp()
    );
    println!("{}: Node {id:?} drain strategy set", stamp());
    monitor_drain(&api, &id, a.ignore_system)?;
    Ok(ExitCode::SUCCESS)
}

fn stamp() -> String {
    super::format::rfc3339(super::format::now_nanos())
}

/// Follows a drain as Nomad's `MonitorDrain` does: each allocation marked for migration, its
/// status changes, the node's drain finishing, and every allocation stopped.
fn monitor_drain(api: &ApiClient, id: &str, ignore_system: bool) -> anyhow::Result<()> {
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut system_jobs: BTreeMap<String, bool> = BTreeMap::new();
    let mut node_done = false;
    loop {
        let node = api.get(&format!("/v1/node/{}", encode(id)))?;
        let allocs = api.get(&format!("/v1/node/{}/allocations", encode(id)))?;
        let mut running = 0;
        for a in allocs.as_array().into_iter().flatten() {
            let alloc_id = s(&a["ID"]);
            let desired = s(&a["DesiredStatus"]);
            let client = s(&a["ClientStatus"]);
            let (old_desired, old_client) = seen
                .get(&alloc_id)
                .cloned()
                .unwrap_or_else(|| ("run".into(), client.clone()));
            if desired == "stop" && old_desired != "stop" {
                if s(&a["DesiredDescription"]).contains("migrated") {
                    println!("{}: Alloc {alloc_id:?} marked for migration", stamp());
                }
                println!("{}: Alloc {alloc_id:?} draining", stamp());
            }
            if client != old_client {
                println!(
                    "{}: Alloc {alloc_id:?} status {old_client} -> {client}",
                    stamp()
                );
            }
            seen.insert(alloc_id, (desired.clone(), client.clone()));
            if matches!(client.as_str(), "complete" | "failed" | "lost") {
                continue;
            }
            if ignore_system {
                let job = s(&a["JobID"]);
                let system = match system_jobs.get(&job) {
                    Some(v) => *v,
                    None => {
                        let t = api
                            .get(&format!("/v1/job/{}", encode(&job)))
                            .map(|j| s(&j["Type"]))
                            .unwrap_or_default();
                        let v = t == "system" || t == "sysbatch";
                        system_jobs.insert(job, v);
                        v
                    }
                };
                if system {
                    continue;
                }
            }
            running += 1;
        }
        if !node_done && node["DrainStrategy"].is_null() {
            node_done = true;
            println!(
                "{}: Node {id:?} has marked all allocations for migration",
                stamp()
            );
        }
        if node["Status"] == "down" {
            println!("{}: Node {id:?} down", stamp());
        }
        if node_done && running == 0 {
            println!("{}: All allocations on node {id:?} have stopped", stamp());
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Nomad's `Drain` column: `false`, or `true` with the deadline.
fn drain_text(n: &Value) -> String {
    let d = &n["DrainStrategy"];
    if d.is_null() {
        return s(&n["Drain"]);
    }
    let mut out = String::from("true");
    let force = super::format::time_field(&d["ForceDeadline"]);
    if d["Deadline"].as_i64().unwrap_or(0) < 0 {
        out.push_str("; force drain");
    } else if d["ForceDeadline"]
        .as_str()
        .is_none_or(|t| t.starts_with("0001-"))
    {
        out.push_str("; no deadline");
    } else {
        out.push_str(&format!("; {force} deadline"));
    }
    if d["IgnoreSystemJobs"].as_bool().unwrap_or(false) {
        out.push_str("; ignoring system jobs");
    }
    out
}

/// `docker,raw_exec` — the detected drivers, unhealthy ones marked.
fn drivers(n: &Value) -> String {
    let mut out: Vec<String> = n["Drivers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, d)| d["Detected"].as_bool().unwrap_or(false))
        .map(|(name, d)| {
            if d["Healthy"].as_bool().unwrap_or(false) {
                name.clone()
            } else {
                format!("{name} (unhealthy)")
            }
        })
        .collect();
    out.sort();
    if out.is_empty() {
        "<none>".into()
    } else {
        out.join(",")
    }
}

fn list(api: &ApiClient, json: bool, verbose: bool) -> anyhow::Result<()> {
    let nodes = api.get("/v1/nodes")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(());
    }
    let mut header = vec![
        "ID",
        "Node Pool",
        "DC",
        "Name",
        "Class",
        "Drain",
        "Eligibility",
        "Status",
    ];
    if verbose {
        header.splice(5..5, ["Address", "Version"]);
        header.push("Drivers");
    }
    let rows: Vec<Vec<String>> = nodes
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let id = s(&n["ID"]);
            let mut r = vec![
                if verbose { id } else { short(&id) },
                s(&n["NodePool"]),
                s(&n["Datacenter"]),
                s(&n["Name"]),
                or_none(&n["NodeClass"]),
                s(&n["Drain"]),
                s(&n["SchedulingEligibility"]),
                s(&n["Status"]),
            ];
            if verbose {
                r.splice(5..5, [s(&n["Address"]), s(&n["Version"])]);
                r.push(drivers(n));
            }
            r
        })
        .collect();
    print!("{}", table_or(&header, &rows, "No nodes registered"));
    Ok(())
}

pub fn status_one(api: &ApiClient, id: &str, json: bool, verbose: bool) -> anyhow::Result<()> {
    let n = api.get(&format!("/v1/node/{}", encode(id)))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&n)?);
        return Ok(());
    }
    print!(
        "{}",
        kv(&[
            (
                "ID",
                if verbose {
                    s(&n["ID"])
                } else {
                    short(&s(&n["ID"]))
                }
            ),
            ("Name", s(&n["Name"])),
            ("Node Pool", s(&n["NodePool"])),
            ("Class", or_none(&n["NodeClass"])),
            ("DC", s(&n["Datacenter"])),
            ("Drain", drain_text(&n)),
            ("Eligibility", s(&n["SchedulingEligibility"])),
            ("Status", s(&n["Status"])),
            ("Address", s(&n["HTTPAddr"])),
            ("Drivers", drivers(&n)),
        ])
    );
    println!("\nDrivers");
    let mut rows: Vec<Vec<String>> = n["Drivers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, d)| {
            vec![
                name.clone(),
                s(&d["Detected"]),
                s(&d["Healthy"]),
                or_none(&d["HealthDescription"]),
            ]
        })
        .collect();
    rows.sort();
    print!(
        "{}",
        table(&["Driver", "Detected", "Healthy", "Message"], &rows)
    );

    let allocs = api
        .get(&format!("/v1/node/{}/allocations", encode(id)))
        .unwrap_or(Value::Null);
    println!("\nAllocations");
    let rows: Vec<Vec<String>> = allocs
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            vec![
                short(&s(&a["ID"])),
                s(&a["JobID"]),
                s(&a["TaskGroup"]),
                s(&a["JobVersion"]),
                s(&a["DesiredStatus"]),
                s(&a["ClientStatus"]),
                ago(nanos(&a["CreateTime"])),
            ]
        })
        .collect();
    print!(
        "{}",
        table_or(
            &[
                "ID",
                "Job ID",
                "Task Group",
                "Version",
                "Desired",
                "Status",
                "Created"
            ],
            &rows,
            "No allocations placed"
        )
    );
    if verbose {
        println!("\nAttributes");
        let mut attrs: Vec<(&String, &Value)> =
            n["Attributes"].as_object().into_iter().flatten().collect();
        attrs.sort_by(|a, b| a.0.cmp(b.0));
        let rows: Vec<(&str, String)> = attrs.iter().map(|(k, v)| (k.as_str(), s(v))).collect();
        print!("{}", kv(&rows));
    }
    Ok(())
}
