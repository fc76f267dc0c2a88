//! `drover job …`: validate, run, inspect and init job files. Everything here works offline;
//! commands that talk to an agent arrive with the agent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::client::{ApiArgs, ApiClient, encode};
use crate::jobspec::{self, Format, JobspecError, ParseOptions, Parsed, VarInputs};

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Check job files for errors without running them (exit 0 valid, 1 invalid).
    Validate(ValidateArgs),
    /// Submit a job file; with -output, print its API JSON instead (no agent needed).
    Run(RunArgs),
    /// Print a job file as drover reads it, with every default applied.
    Inspect(InspectArgs),
    /// Write an example job file to start from.
    Init(InitArgs),
    /// Show what submitting job files (or a directory of them) would change, without changing
    /// anything (exit 0 no allocations created or destroyed, 1 changes, 255 an error).
    Plan(super::plan::PlanArgs),
    /// Stop a job (its allocations are stopped); -purge also forgets it.
    Stop(StopArgs),
    /// Show a job's summary, placement failures and allocations, or list jobs.
    Status(JobStatusArgs),
    /// Print the table of Nomad's jobspec blocks and drover's support for each (Markdown).
    #[command(hide = true)]
    SchemaTable,
}

#[derive(Debug, Args)]
pub struct VarArgs {
    /// Set an HCL2 variable: -var name=value (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub var: Vec<String>,
    /// Read HCL2 variable values from a file (repeatable; HCL or .json).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_file: Vec<PathBuf>,
}

impl VarArgs {
    /// The variable inputs, `NOMAD_VAR_*` from the environment first, then files, then -var.
    pub fn inputs(&self) -> anyhow::Result<ParseOptions> {
        let mut vars = BTreeMap::new();
        for (k, v) in std::env::vars() {
            if let Some(name) = k.strip_prefix("NOMAD_VAR_") {
                vars.insert(name.to_string(), v);
            }
        }
        for kv in &self.var {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("invalid -var {kv:?}: expected name=value"))?;
            vars.insert(k.trim().to_string(), v.to_string());
        }
        let mut var_files = Vec::new();
        for f in &self.var_file {
            let content = std::fs::read_to_string(f)
                .with_context(|| format!("failed to read -var-file {}", f.display()))?;
            var_files.push((f.display().to_string(), content));
        }
        Ok(ParseOptions {
            vars: VarInputs { var_files, vars },
        })
    }
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub vars: VarArgs,
    /// Job files, or directories whose job files (*.nomad, *.hcl, *.yaml, *.yml, *.json) are all checked.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Forget the job entirely instead of keeping it as stopped.
    #[arg(long)]
    pub purge: bool,
    /// Return right after the request, without waiting for the evaluation.
    #[arg(long)]
    pub detach: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct JobStatusArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[arg(long)]
    pub json: bool,
    /// Full IDs.
    #[arg(long)]
    pub verbose: bool,
    pub id: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub vars: VarArgs,
    /// Print the job in Nomad's API JSON form and exit; nothing is submitted.
    #[arg(long)]
    pub output: bool,
    /// Return right after submitting, without waiting for the evaluation.
    #[arg(long)]
    pub detach: bool,
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub vars: VarArgs,
    /// Print Nomad's API JSON (the default).
    #[arg(long, conflicts_with = "yaml")]
    pub json: bool,
    /// Print drover's YAML form instead.
    #[arg(long)]
    pub yaml: bool,
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Write a job without the explanatory comments.
    #[arg(long)]
    pub short: bool,
    /// Where to write it.
    #[arg(value_name = "FILE", default_value = "example.nomad.hcl")]
    pub file: PathBuf,
}

pub fn run(cmd: JobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::Validate(a) => validate(&a),
        JobCommand::Plan(a) => Ok(super::plan::run(&a)),
        JobCommand::Run(a) => {
            let parsed = parse_or_report(&a.file, &a.vars.inputs()?)?;
            let Some(parsed) = parsed else {
                return Ok(ExitCode::from(1));
            };
            if a.output {
                println!("{}", pretty(&jobspec::to_api_json(&parsed.job))?);
                return Ok(ExitCode::SUCCESS);
            }
            let api = ApiClient::new(&a.api);
            let resp = api
                .post("/v1/jobs", &jobspec::to_api_json(&parsed.job))
                .with_context(|| {
                    format!(
                        "failed to submit job {:?} from {}",
                        parsed.job.id,
                        a.file.display()
                    )
                })?;
            let eval_id = resp["EvalID"].as_str().unwrap_or_default().to_string();
            if a.detach {
                println!("Job registration successful\nEvaluation ID: {eval_id}");
                return Ok(ExitCode::SUCCESS);
            }
            monitor(&api, &eval_id)
        }
        JobCommand::Stop(a) => {
            let api = ApiClient::new(&a.api);
            let resp = api
                .delete(&format!("/v1/job/{}?purge={}", encode(&a.id), a.purge))
                .with_context(|| format!("failed to stop job {:?}", a.id))?;
            let eval_id = resp["EvalID"].as_str().unwrap_or_default().to_string();
            if a.detach || eval_id.is_empty() {
                println!(
                    "Job {:?} stopped{}",
                    a.id,
                    if eval_id.is_empty() {
                        String::new()
                    } else {
                        format!("\nEvaluation ID: {eval_id}")
                    }
                );
                return Ok(ExitCode::SUCCESS);
            }
            monitor(&api, &eval_id)
        }
        JobCommand::Status(a) => {
            let api = ApiClient::new(&a.api);
            match &a.id {
                Some(id) => super::status::job_status(&api, id, a.json, a.verbose)?,
                None => super::status::job_list(&api, a.json)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Inspect(a) => {
            let Some(parsed) = parse_or_report(&a.file, &a.vars.inputs()?)? else {
                return Ok(ExitCode::from(1));
            };
            if a.yaml {
                print!("{}", jobspec::to_yaml(&parsed.job));
            } else {
                println!("{}", pretty(&jobspec::to_api_json(&parsed.job))?);
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Init(a) => {
            if a.file.exists() {
                bail!(
                    "job file {} already exists; remove it or name another file",
                    a.file.display()
                );
            }
            let text = if a.short {
                short_example()
            } else {
                EXAMPLE.to_string()
            };
            std::fs::write(&a.file, text)
                .with_context(|| format!("failed to write {}", a.file.display()))?;
            println!("Example job file written to {}", a.file.display());
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::SchemaTable => {
            print!("{}", jobspec::schema::markdown_table());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Waits for an evaluation like `nomad job run` does, printing what it placed. Exit code 2 when
/// some allocations could not be placed, as Nomad's.
fn monitor(api: &ApiClient, eval_id: &str) -> anyhow::Result<ExitCode> {
    let now = || {
        super::format::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64),
        )
    };
    println!(
        "==> {}: Monitoring evaluation {:?}",
        now(),
        super::format::short(eval_id)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last_status = String::from("pending");
    let eval = loop {
        let eval = api.get(&format!("/v1/evaluation/{}", encode(eval_id)))?;
        let status = eval["Status"].as_str().unwrap_or_default().to_string();
        if status != last_status {
            println!(
                "    {}: Evaluation status changed: {last_status:?} -> {status:?}",
                now()
            );
            last_status = status.clone();
        }
        if status != "pending" || std::time::Instant::now() > deadline {
            break eval;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    println!(
        "    {}: Evaluation triggered by job {:?}",
        now(),
        eval["JobID"].as_str().unwrap_or_default()
    );
    let allocs = api
        .get(&format!("/v1/evaluation/{}/allocations", encode(eval_id)))
        .unwrap_or_default();
    for a in allocs.as_array().into_iter().flatten() {
        println!(
            "    {}: Allocation {:?} created: node {:?}, group {:?}",
            now(),
            super::format::short(a["ID"].as_str().unwrap_or_default()),
            super::format::short(a["NodeID"].as_str().unwrap_or_default()),
            a["TaskGroup"].as_str().unwrap_or_default()
        );
    }
    let failed = eval["FailedTGAllocs"].as_object().filter(|m| !m.is_empty());
    match failed {
        None => {
            println!(
                "==> {}: Evaluation {:?} finished with status {last_status:?}",
                now(),
                super::format::short(eval_id)
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(groups) => {
            println!(
                "==> {}: Evaluation {:?} finished with status {last_status:?} but failed to place all allocations:",
                now(),
                super::format::short(eval_id)
            );
            for (group, metric) in groups {
                let n = metric["CoalescedFailures"].as_u64().unwrap_or(0) + 1;
                println!(
                    "    Task Group {group:?} (failed to place {n} allocation{}):",
                    if n == 1 { "" } else { "s" }
                );
                for line in super::status::metric_lines(metric) {
                    println!("      * {line}");
                }
            }
            Ok(ExitCode::from(2))
        }
    }
}

fn pretty(v: &serde_json::Value) -> anyhow::Result<String> {
    serde_json::to_string_pretty(v).context("failed to format JSON")
}

/// Parses one file, printing its warnings, or its errors and `None`.
fn parse_or_report(path: &Path, opts: &ParseOptions) -> anyhow::Result<Option<Parsed>> {
    match jobspec::parse_file(path, opts) {
        Ok(parsed) => {
            print_warnings(path, &parsed);
            Ok(Some(parsed))
        }
        Err(e) => {
            print_errors(&e);
            Ok(None)
        }
    }
}

fn print_warnings(path: &Path, parsed: &Parsed) {
    for w in &parsed.warnings {
        eprintln!("{}", w.display(path));
    }
}

fn print_errors(e: &JobspecError) {
    for d in &e.diagnostics {
        eprintln!("{}", d.display(&e.path));
    }
}

fn validate(a: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let opts = a.vars.inputs()?;
    let files = expand_paths(&a.paths)?;
    if files.is_empty() {
        bail!("no job files found in {}", display_paths(&a.paths));
    }
    let mut failed = 0usize;
    for f in &files {
        match jobspec::parse_file(f, &opts) {
            Ok(parsed) => print_warnings(f, &parsed),
            Err(e) => {
                failed += 1;
                print_errors(&e);
            }
        }
    }
    if failed == 0 {
        println!(
            "Job validation successful ({} file{})",
            files.len(),
            plural(files.len())
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "Job validation failed: {failed} of {} file{} invalid",
            files.len(),
            plural(files.len())
        );
        Ok(ExitCode::from(1))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Files as given, and the job files directly inside given directories, sorted.
pub(super) fn expand_paths(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(p)
                .with_context(|| format!("failed to read directory {}", p.display()))?
            {
                let path = entry
                    .with_context(|| format!("failed to read directory {}", p.display()))?
                    .path();
                if path.is_file() && Format::is_job_file(&path) {
                    found.push(path);
                }
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

const EXAMPLE: &str = r#"# An example job. Run it with `drover job run example.nomad.hcl`, or drop this file into the
# directory the agent watches (./manifests in dev mode).
job "example" {
  # Where the job may run: ["*"] (the default) means every datacenter.
  datacenters = ["*"]

  # service (the default) keeps tasks running; batch runs them to completion.
  type = "service"

  # A group's tasks run together on one node. `count` is how many copies run.
  group "web" {
    count = 1

    # Ports the group's tasks share. A static port is fixed on the node; `to` is the port
    # inside the container. Leave out `static` for a port picked from 20000-32000.
    network {
      port "http" {
        static = 8080
        to     = 80
      }
    }

    # What happens when a task fails on its node: 2 restarts within 30 minutes, 15 s apart,
    # then the allocation fails and is rescheduled.
    restart {
      attempts = 2
      interval = "30m"
      delay    = "15s"
      mode     = "fail"
    }

    task "server" {
      driver = "docker"

      config {
        image = "nginx:stable"
        ports = ["http"]
      }

      env {
        # Runtime values are resolved on the node when the task starts.
        PUBLIC_PORT = "${NOMAD_PORT_http}"
      }

      # cpu in MHz, memory in MB: the scheduler reserves these and Docker enforces them.
      resources {
        cpu    = 100
        memory = 128
      }

      # Registered in drover's catalog; answered by its DNS as web.service.consul.
      service {
        name = "web"
        port = "http"

        check {
          type     = "http"
          path     = "/"
          interval = "10s"
          timeout  = "2s"
        }
      }
    }
  }
}
"#;

/// The example without its comment lines.
fn short_example() -> String {
    EXAMPLE
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_examples_are_valid_jobs() {
        for text in [EXAMPLE.to_string(), short_example()] {
            let parsed = jobspec::parse(
                Path::new("example.nomad.hcl"),
                text.as_bytes(),
                &ParseOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parsed.job.id, "example");
            assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        }
    }
}
