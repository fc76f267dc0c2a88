//! `drover server members [-detailed] [-json]`: the servers as Nomad lists them, from
//! `/v1/agent/members`; the leader is the member whose address and RPC port match
//! `/v1/status/leader`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{ApiArgs, ApiClient};
use super::format::{s, table};

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// List the servers in the cluster.
    Members(MembersArgs),
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Every tag of each member.
    #[arg(long, alias = "verbose")]
    pub detailed: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: ServerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ServerCommand::Members(a) => members(a),
    }
}

fn members(a: MembersArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&a.api);
    let v = api.get("/v1/agent/members")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v["Members"])?);
        return Ok(ExitCode::SUCCESS);
    }
    let leader = api
        .get("/v1/status/leader")
        .ok()
        .and_then(|l| l.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut members: Vec<&Value> = v["Members"].as_array().into_iter().flatten().collect();
    members.sort_by_key(|m| s(&m["Name"]));
    if a.detailed {
        let rows: Vec<Vec<String>> = members
            .iter()
            .map(|m| {
                let mut tags: Vec<String> = m["Tags"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", s(v)))
                    .collect();
                tags.sort();
                vec![
                    s(&m["Name"]),
                    s(&m["Addr"]),
                    s(&m["Port"]),
                    s(&m["Status"]),
                    tags.join(","),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["Name", "Address", "Port", "Status", "Tags"], &rows)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            let tags = &m["Tags"];
            let rpc = format!("{}:{}", s(&m["Addr"]), s(&tags["port"]));
            vec![
                s(&m["Name"]),
                s(&m["Addr"]),
                s(&m["Port"]),
                s(&m["Status"]),
                (rpc == leader).to_string(),
                s(&tags["raft_vsn"]),
                s(&tags["build"]),
                s(&tags["dc"]),
                s(&tags["region"]),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "Name",
                "Address",
                "Port",
                "Status",
                "Leader",
                "Raft Version",
                "Build",
                "Datacenter",
                "Region"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
