//! `drover service list` and `drover service info [-verbose] [-json] NAME`: Nomad's native
//! service discovery commands over `/v1/services` and `/v1/service/:name`, with one addition:
//! each instance's health (the worst of its checks; `passing` without checks), which decides
//! whether drover's DNS hands it out.

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{ApiArgs, ApiClient, encode};
use super::format::{kv, s, short, table};

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// List the registered services and their tags.
    List(ServiceListArgs),
    /// Show the registrations of one service.
    Info(ServiceInfoArgs),
}

#[derive(Debug, Args)]
pub struct ServiceListArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The namespace to list (`*` for all).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServiceInfoArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[arg(long)]
    pub json: bool,
    /// Full IDs, one block per registration, with its checks.
    #[arg(long)]
    pub verbose: bool,
    /// The service's name.
    pub name: String,
}

pub fn run(cmd: ServiceCommand) -> anyhow::Result<()> {
    match cmd {
        ServiceCommand::List(a) => {
            let api = ApiClient::new(&a.api);
            let v = api.get(&format!("/v1/services?namespace={}", encode(&a.namespace)))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            print!("{}", list_output(&v, a.namespace == "*"));
            Ok(())
        }
        ServiceCommand::Info(a) => {
            let api = ApiClient::new(&a.api);
            let v = api.get(&format!(
                "/v1/service/{}?namespace={}",
                encode(&a.name),
                encode(&a.namespace)
            ))?;
            let regs = v.as_array().cloned().unwrap_or_default();
            if regs.is_empty() {
                bail!("No service registrations found");
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            print!("{}", info_output(&regs, a.verbose));
            Ok(())
        }
    }
}

fn tags(v: &Value) -> String {
    let t: Vec<String> = v.as_array().into_iter().flatten().map(s).collect();
    format!("[{}]", t.join(","))
}

/// Nomad's `service list` table (with a Namespace column when listing every namespace).
pub fn list_output(v: &Value, all_namespaces: bool) -> String {
    let mut rows = Vec::new();
    for ns in v.as_array().into_iter().flatten() {
        for svc in ns["Services"].as_array().into_iter().flatten() {
            let mut row = vec![s(&svc["ServiceName"])];
            if all_namespaces {
                row.push(s(&ns["Namespace"]));
            }
            row.push(tags(&svc["Tags"]));
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return "No service registrations found\n".into();
    }
    if all_namespaces {
        table(&["Service Name", "Namespace", "Tags"], &rows)
    } else {
        table(&["Service Name", "Tags"], &rows)
    }
}

fn health(reg: &Value) -> &'static str {
    let mut worst = "passing";
    for c in reg["Checks"].as_array().into_iter().flatten() {
        match c["status"].as_str() {
            Some("critical") => return "critical",
            Some("warning") => worst = "warning",
            _ => {}
        }
    }
    worst
}

fn address(reg: &Value) -> String {
    let a = s(&reg["Address"]);
    let p = reg["Port"].as_u64().unwrap_or(0);
    if a.contains(':') {
        format!("[{a}]:{p}")
    } else {
        format!("{a}:{p}")
    }
}

/// Nomad's `service info` table, or with `-verbose` one `Key = Value` block per registration.
pub fn info_output(regs: &[Value], verbose: bool) -> String {
    if !verbose {
        let rows: Vec<Vec<String>> = regs
            .iter()
            .map(|r| {
                vec![
                    s(&r["JobID"]),
                    address(r),
                    tags(&r["Tags"]),
                    short(&s(&r["NodeID"])),
                    short(&s(&r["AllocID"])),
                    health(r).to_string(),
                ]
            })
            .collect();
        return table(
            &["Job ID", "Address", "Tags", "Node ID", "Alloc ID", "Health"],
            &rows,
        );
    }
    let mut out = String::new();
    for (i, r) in regs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&kv(&[
            ("ID", s(&r["ID"])),
            ("Service Name", s(&r["ServiceName"])),
            ("Namespace", s(&r["Namespace"])),
            ("Job ID", s(&r["JobID"])),
            ("Alloc ID", s(&r["AllocID"])),
            ("Node ID", s(&r["NodeID"])),
            ("Datacenter", s(&r["Datacenter"])),
            ("Address", address(r)),
            ("Tags", tags(&r["Tags"])),
            ("Health", health(r).to_string()),
        ]));
        let checks: Vec<Vec<String>> = r["Checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                vec![
                    s(&c["check"]),
                    s(&c["check_type"]),
                    s(&c["status"]),
                    s(&c["output"]),
                ]
            })
            .collect();
        if !checks.is_empty() {
            out.push_str("\nChecks\n");
            out.push_str(&table(&["Name", "Type", "Status", "Output"], &checks));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg(alloc: &str, status: Option<&str>) -> Value {
        json!({
            "ID": format!("_nomad-task-{alloc}-db-todo-db-db"),
            "ServiceName": "todo-db",
            "Namespace": "default",
            "NodeID": "7406e90b-de16-d118-80fe-60d0f2730cb3",
            "Datacenter": "dc1",
            "JobID": "todo",
            "AllocID": alloc,
            "Tags": ["db", "v1"],
            "Address": "127.0.0.1",
            "Port": 22686,
            "CreateIndex": 10,
            "ModifyIndex": 12,
            "Checks": status.map(|st| vec![json!({
                "service": "todo-db", "task": "db", "check": "alive", "check_type": "tcp",
                "status": st, "output": "TCP connect 127.0.0.1:22686: Success", "timestamp": 1
            })]).unwrap_or_default(),
        })
    }

    #[test]
    fn info_has_nomads_columns_and_the_health() {
        let out = info_output(
            &[
                reg("5f0730ca-b055-52ac-f56e-358f3f7412f6", Some("passing")),
                reg("a831f7f2-4c01-39dc-c742-f2b8ca178a49", Some("critical")),
                reg("b831f7f2-4c01-39dc-c742-f2b8ca178a49", None),
            ],
            false,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "Job ID  Address          Tags     Node ID   Alloc ID  Health"
        );
        assert_eq!(
            lines[1],
            "todo    127.0.0.1:22686  [db,v1]  7406e90b  5f0730ca  passing"
        );
        assert!(lines[2].ends_with("a831f7f2  critical"));
        assert!(lines[3].ends_with("passing"), "no checks counts as passing");
    }

    #[test]
    fn verbose_info_is_one_block_per_registration_with_checks() {
        let out = info_output(
            &[reg("5f0730ca-b055-52ac-f56e-358f3f7412f6", Some("passing"))],
            true,
        );
        assert!(
            out.contains(
                "ID           = _nomad-task-5f0730ca-b055-52ac-f56e-358f3f7412f6-db-todo-db-db\n"
            ),
            "{out}"
        );
        assert!(out.contains("Address      = 127.0.0.1:22686\n"));
        assert!(out.contains("Datacenter   = dc1\n"));
        assert!(
            out.contains("alive  tcp   passing  TCP connect 127.0.0.1:22686: Success"),
            "{out}"
        );
    }

    #[test]
    fn list_shows_names_and_tags() {
        let v = json!([{"Namespace": "default", "Services": [
            {"ServiceName": "todo-db", "Tags": ["db"]},
            {"ServiceName": "todo-web", "Tags": []}
        ]}]);
        assert_eq!(
            list_output(&v, false),
            "Service Name  Tags\ntodo-db       [db]\ntodo-web      []\n"
        );
        assert!(list_output(&v, true).starts_with("Service Name  Namespace  Tags\n"));
        assert_eq!(
            list_output(&json!([]), false),
            "No service registrations found\n"
        );
    }
}
