//! `drover alloc status ID` and `drover alloc logs ID [TASK]`, after Nomad's commands.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{ApiArgs, ApiClient, encode};
use super::format::{ago, kv, nanos, or_none, rfc3339, s, short, table, time_field};

#[derive(Debug, Subcommand)]
pub enum AllocCommand {
    /// Show an allocation's status, addresses, tasks and their recent events.
    Status(AllocStatusArgs),
    /// Print (or follow) a task's stdout or stderr.
    Logs(AllocLogsArgs),
}

#[derive(Debug, Args)]
pub struct AllocStatusArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print the allocation as JSON.
    #[arg(long)]
    pub json: bool,
    /// Full IDs and every event.
    #[arg(long)]
    pub verbose: bool,
    /// An allocation ID or unique prefix (at least 2 characters).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct AllocLogsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Show stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Keep printing as the task writes.
    #[arg(short = 'f')]
    pub follow: bool,
    /// Start from the end of the log (the last -n lines, 10 by default).
    #[arg(long)]
    pub tail: bool,
    /// With -tail: how many lines.
    #[arg(short = 'n', value_name = "LINES")]
    pub lines: Option<usize>,
    /// With -tail: how many bytes.
    #[arg(short = 'c', value_name = "BYTES")]
    pub bytes: Option<u64>,
    /// An allocation ID or unique prefix.
    pub id: String,
    /// The task; needed when the allocation has more than one.
    pub task: Option<String>,
}

pub fn run(cmd: AllocCommand) -> anyhow::Result<()> {
    match cmd {
        AllocCommand::Status(a) => {
            let api = ApiClient::new(&a.api);
            let id = api.resolve_alloc(&a.id)?;
            status(&api, &id, a.json, a.verbose)
        }
        AllocCommand::Logs(a) => logs(&a),
    }
}

pub fn status(api: &ApiClient, id: &str, json: bool, verbose: bool) -> anyhow::Result<()> {
    let a = api.get(&format!("/v1/allocation/{}", encode(id)))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&a)?);
        return Ok(());
    }
    let show = |v: &Value| if verbose { s(v) } else { short(&s(v)) };
    print!(
        "{}",
        kv(&[
            ("ID", show(&a["ID"])),
            ("Eval ID", show(&a["EvalID"])),
            ("Name", s(&a["Name"])),
            ("Node ID", show(&a["NodeID"])),
            ("Node Name", s(&a["NodeName"])),
            ("Job ID", s(&a["JobID"])),
            ("Job Version", s(&a["JobVersion"])),
            ("Client Status", s(&a["ClientStatus"])),
            ("Client Description", or_none(&a["ClientDescription"])),
            ("Desired Status", s(&a["DesiredStatus"])),
            ("Desired Description", or_none(&a["DesiredDescription"])),
            ("Created", ago(nanos(&a["CreateTime"]))),
            ("Modified", ago(nanos(&a["ModifyTime"]))),
        ])
    );

    let ports: Vec<&Value> = a["AllocatedResources"]["Shared"]["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if !ports.is_empty() {
        let dynamic: Vec<String> = a["AllocatedResources"]["Shared"]["Networks"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|n| n["DynamicPorts"].as_array().into_iter().flatten())
            .map(|p| s(&p["Label"]))
            .collect();
        println!("\nAllocation Addresses:");
        let rows: Vec<Vec<String>> = ports
            .iter()
            .map(|p| {
                let label = s(&p["Label"]);
                let is_dyn = dynamic.contains(&label);
                let to = p["To"].as_u64().filter(|t| *t > 0);
                let addr = format!("{}:{}", s(&p["HostIP"]), s(&p["Value"]));
                vec![
                    format!("*{label}"),
                    if is_dyn { "yes" } else { "no" }.into(),
                    match to {
                        Some(t) => format!("{addr} -> {t}"),
                        None => addr,
                    },
                ]
            })
            .collect();
        print!("{}", table(&["Label", "Dynamic", "Address"], &rows));
    }

    // Nomad's "Nomad Service Checks" section; an agent without the endpoint shows none.
    if let Ok(checks) = api.get(&format!("/v1/allocation/{}/checks", encode(&s(&a["ID"])))) {
        let mut rows: Vec<Vec<String>> = checks
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, c)| {
                let task = s(&c["Task"]);
                vec![
                    s(&c["Service"]),
                    if task.is_empty() {
                        "(group)".into()
                    } else {
                        task
                    },
                    s(&c["Check"]),
                    s(&c["Mode"]),
                    s(&c["Status"]),
                ]
            })
            .collect();
        rows.sort();
        if !rows.is_empty() {
            println!("\nNomad Service Checks:");
            print!(
                "{}",
                table(&["Service", "Task", "Name", "Mode", "Status"], &rows)
            );
        }
    }

    let mut tasks: Vec<(&String, &Value)> =
        a["TaskStates"].as_object().into_iter().flatten().collect();
    tasks.sort_by(|x, y| x.0.cmp(y.0));
    for (name, st) in tasks {
        println!("\nTask {name:?} is {:?}", s(&st["State"]));
        if let Some(res) = a["AllocatedResources"]["Tasks"].get(name) {
            println!("Task Resources:");
            print!(
                "{}",
                table(
                    &["CPU", "Memory", "Disk"],
                    &[vec![
                        format!("{} MHz", s(&res["Cpu"]["CpuShares"])),
                        format!("{} MiB", s(&res["Memory"]["MemoryMB"])),
                        format!("{} MiB", s(&a["AllocatedResources"]["Shared"]["DiskMB"])),
                    ]]
                )
            );
        }
        println!("\nTask Events:");
        print!(
            "{}",
            kv(&[
                ("Started At", time_field(&st["StartedAt"])),
                ("Finished At", time_field(&st["FinishedAt"])),
                ("Total Restarts", s(&st["Restarts"])),
                ("Last Restart", time_field(&st["LastRestart"])),
            ])
        );
        println!("\nRecent Events:");
        let mut events: Vec<&Value> = st["Events"].as_array().into_iter().flatten().collect();
        events.reverse();
        if !verbose {
            events.truncate(10);
        }
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                let msg = [&e["DisplayMessage"], &e["Message"]]
                    .into_iter()
                    .map(s)
                    .find(|m| !m.is_empty())
                    .unwrap_or_default();
                vec![rfc3339(nanos(&e["Time"])), s(&e["Type"]), msg]
            })
            .collect();
        print!("{}", table(&["Time", "Type", "Description"], &rows));
    }
    Ok(())
}

fn logs(a: &AllocLogsArgs) -> anyhow::Result<()> {
    let api = ApiClient::new(&a.api);
    let id = api.resolve_alloc(&a.id)?;
    let alloc = api.get(&format!("/v1/allocation/{}", encode(&id)))?;
    let task = match &a.task {
        Some(t) => t.clone(),
        None => {
            let names: Vec<String> = alloc["TaskStates"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect();
            match names.as_slice() {
                [one] => one.clone(),
                [] => bail!("allocation {} has no tasks yet", short(&id)),
                many => bail!(
                    "allocation {} has more than one task; name one: {}",
                    short(&id),
                    many.join(", ")
                ),
            }
        }
    };
    let kind = if a.stderr { "stderr" } else { "stdout" };
    let mut query = format!(
        "task={}&type={kind}&plain=true&follow={}",
        encode(&task),
        a.follow
    );
    let tail_lines = if a.tail && a.bytes.is_none() {
        Some(a.lines.unwrap_or(10))
    } else {
        None
    };
    if a.tail {
        // For a line count, fetch a generous byte window and cut it client-side.
        let window = a.bytes.unwrap_or(64 * 1024);
        query.push_str(&format!("&origin=end&offset={window}"));
    }
    let timeout = if a.follow {
        None
    } else {
        Some(Duration::from_secs(30))
    };
    let mut body = api
        .get_text(
            &format!("/v1/client/fs/logs/{}?{query}", encode(&id)),
            timeout,
        )
        .with_context(|| format!("failed to read the {kind} of task {task:?}"))?;
    let mut out = std::io::stdout().lock();
    if let Some(n) = tail_lines {
        // Read what is there now, print its last n lines, then keep following if asked.
        let mut first = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let got = body.read(&mut buf)?;
            if got == 0 {
                break;
            }
            first.extend_from_slice(&buf[..got]);
            if a.follow && got < buf.len() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&first);
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        for l in &lines[lines.len().saturating_sub(n)..] {
            out.write_all(l.as_bytes())?;
        }
        out.flush()?;
        if !a.follow {
            return Ok(());
        }
    }
    let mut buf = [0u8; 8192];
    loop {
        let got = body.read(&mut buf)?;
        if got == 0 {
            return Ok(());
        }
        out.write_all(&buf[..got])?;
        out.flush()?;
    }
}
