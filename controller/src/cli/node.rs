//! `drover node status [-verbose] [ID]`: Nomad's node list and node detail, with the drivers each
//! node detected and whether they are healthy.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{ApiArgs, ApiClient, encode};
use super::format::{ago, kv, nanos, or_none, s, short, table, table_or};

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes, or show one node's details.
    Status(NodeStatusArgs),
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
    /// A node ID, unique prefix or name.
    pub id: Option<String>,
}

pub fn run(cmd: NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Status(a) => {
            let api = ApiClient::new(&a.api);
            match &a.id {
                Some(id) => {
                    let id = api.resolve_node(id)?;
                    status_one(&api, &id, a.json, a.verbose)
                }
                None => list(&api, a.json, a.verbose),
            }
        }
    }
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
        header.insert(4, "Address");
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
                r.insert(4, s(&n["Address"]));
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
            ("Drain", s(&n["Drain"])),
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
