//! `drover job plan FILE|DIR…`: what merging these job files would do, in Nomad's plan format,
//! with Nomad's exit codes (0 nothing created or destroyed, 1 changes, 255 an error). Against
//! a running agent (`PUT /v1/job/:id/plan`) or offline (`-offline`: the agent's state in
//! `-data-dir`, opened read-only, or an empty cluster). A directory stands for the agent's
//! watched directory: jobs that came from a file there and that no file here defines any more
//! are planned as removed. Nothing is written anywhere. See docs/job-plan.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::{ArgAction, Args};
use serde::Serialize;
use serde_json::json;

use super::client::{ApiArgs, ApiClient, ApiStatusError, encode};
use super::job::{VarArgs, expand_paths};
use crate::jobplan::render::{PlanResponse, format_plan};
use crate::jobspec::{self, JobspecError};
use crate::state::{JobSource, Store};
use crate::structs::{Job, unix_nanos};

/// Nomad's exit code for "error determining plan results".
const EXIT_ERROR: u8 = 255;

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub vars: VarArgs,
    /// Plan without an agent: against -data-dir's state, or an empty cluster without it.
    #[arg(long)]
    pub offline: bool,
    /// The agent's -data-dir to plan against offline (its server/state.db is opened read-only).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print the plans as JSON (Nomad's JobPlanResponse per job), for CI.
    #[arg(long)]
    pub json: bool,
    /// Also expand jobs, groups and tasks that are wholly added or removed.
    #[arg(long)]
    pub verbose: bool,
    /// Show the diff (-diff=false prints only the scheduler dry-run).
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pub diff: bool,
    /// Job files, or directories of job files (a directory is compared with the agent's
    /// watched directory, so its missing jobs show as removed).
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
}

/// Where plans are computed.
enum Backend {
    Agent(ApiClient),
    /// The store is read-only (an agent's state) or private and in memory (an empty cluster).
    Offline(Offline),
}

/// An agent's state for many plans: what they share is read once.
struct Offline {
    store: Store,
    base: crate::jobplan::PlanBase,
}

impl Backend {
    fn plan(&self, job: &Job, remove: bool) -> anyhow::Result<PlanResponse> {
        match self {
            Backend::Agent(api) => {
                let mut body = jobspec::to_api_job(job);
                if remove && let Some(o) = body.as_object_mut() {
                    o.insert("Stop".into(), json!(true));
                }
                let path = format!("/v1/job/{}/plan", encode(&job.id));
                let resp = api
                    .put(&path, &json!({"Job": body, "Diff": true}))
                    .with_context(|| format!("failed to plan job {:?}", job.id))?;
                serde_json::from_value(resp).with_context(|| {
                    format!(
                        "the agent's plan of job {:?} is not a JobPlanResponse",
                        job.id
                    )
                })
            }
            Backend::Offline(offline) => {
                let now = SystemTime::now();
                let (plan, modify_index) = offline
                    .base
                    .plan(&offline.store, job, remove, now)
                    .with_context(|| format!("failed to read the state of job {:?}", job.id))?;
                Ok(crate::api::plan_response(
                    &plan,
                    modify_index,
                    true,
                    unix_nanos(now),
                ))
            }
        }
    }

    /// A job as the agent holds it (for the agent: `GET /v1/job/:id`, read back into the model).
    fn fetch(api: &ApiClient, id: &str) -> anyhow::Result<Option<Job>> {
        match api.get(&format!("/v1/job/{}", encode(id))) {
            Ok(v) => {
                let text = json!({ "Job": v }).to_string();
                jobspec::from_api_json(Path::new("agent"), &text)
                    .map(|p| Some(p.job))
                    .map_err(|e| anyhow::anyhow!("failed to read job {id:?} from the agent: {e}"))
            }
            Err(e)
                if e.downcast_ref::<ApiStatusError>()
                    .is_some_and(|s| s.status == 404) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The running (not stopped) jobs that came from a file of the agent's watched directory.
    fn directory_jobs(&self) -> anyhow::Result<Vec<Job>> {
        match self {
            Backend::Agent(api) => {
                let m = api.get("/v1/drover/manifests")?;
                let mut ids: Vec<&str> = m["Files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["JobID"].as_str().filter(|s| !s.is_empty()))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let mut out = Vec::new();
                for id in ids {
                    out.extend(Backend::fetch(api, id)?.filter(|j| !j.stop));
                }
                Ok(out)
            }
            Backend::Offline(o) => Ok(o
                .store
                .jobs()
                .context("failed to list the jobs in the state")?
                .into_iter()
                .filter(|r| matches!(r.source, JobSource::File(_)) && !r.job.stop)
                .map(|r| r.job)
                .collect()),
        }
    }
}

/// One job's plan, as `-json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct JobEntry {
    #[serde(rename = "JobID")]
    job_id: String,
    /// The file that defines it; `None` for a removed job.
    file: Option<String>,
    removed: bool,
    exit_code: u8,
    plan: PlanResponse,
    #[serde(skip)]
    job_type: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorEntry {
    file: Option<String>,
    error: String,
}

pub fn run(a: &PlanArgs) -> ExitCode {
    match plan(a) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("Error during plan: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn backend(a: &PlanArgs) -> anyhow::Result<Backend> {
    if !a.offline && a.data_dir.is_none() {
        return Ok(Backend::Agent(ApiClient::new(&a.api)));
    }
    if a.api.address.is_some() {
        bail!(
            "-address and -offline/-data-dir exclude each other: plan against an agent or offline"
        );
    }
    let store = match &a.data_dir {
        Some(dir) => {
            // The agent's own -data-dir keeps the server's state in server/; its server
            // directory itself is accepted too.
            let candidates = [dir.join("server").join("state.db"), dir.join("state.db")];
            let Some(db) = candidates.iter().find(|p| p.is_file()) else {
                bail!(
                    "no agent state in {}: neither {} nor {} exists",
                    dir.display(),
                    candidates[0].display(),
                    candidates[1].display()
                );
            };
            Store::open_read_only(db)?
        }
        None => Store::open_in_memory()?,
    };
    let base = crate::jobplan::PlanBase::read(&store).context("failed to read the state")?;
    Ok(Backend::Offline(Offline { store, base }))
}

fn plan(a: &PlanArgs) -> anyhow::Result<u8> {
    let opts = a.vars.inputs()?;
    let files = expand_paths(&a.paths)?;
    let dir_given = a.paths.iter().any(|p| p.is_dir());
    if files.is_empty() {
        bail!(
            "no job files found in {}",
            a.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let backend = backend(a)?;

    let mut errors: Vec<ErrorEntry> = Vec::new();
    let mut jobs: Vec<(PathBuf, Job)> = Vec::new();
    for f in &files {
        match jobspec::parse_file(f, &opts) {
            Ok(parsed) => {
                for w in &parsed.warnings {
                    eprintln!("{}", w.display(f));
                }
                if let Some((other, _)) = jobs.iter().find(|(_, j)| j.id == parsed.job.id) {
                    errors.push(ErrorEntry {
                        file: Some(f.display().to_string()),
                        error: format!(
                            "job {:?} is also defined in {}",
                            parsed.job.id,
                            other.display()
                        ),
                    });
                    continue;
                }
                jobs.push((f.clone(), parsed.job));
            }
            Err(e) => errors.push(parse_error(&e)),
        }
    }

    let mut entries: Vec<JobEntry> = Vec::new();
    for (file, job) in &jobs {
        let plan = backend.plan(job, false)?;
        entries.push(JobEntry {
            job_id: job.id.clone(),
            file: Some(file.display().to_string()),
            removed: false,
            exit_code: plan.exit_code(),
            plan,
            job_type: job.job_type.as_str().to_string(),
        });
    }
    if dir_given {
        // A file that failed to parse might define any job: calling that job removed would
        // be a guess, so removals wait for a directory that parses.
        if errors.is_empty() {
            let defined: BTreeSet<&str> = jobs.iter().map(|(_, j)| j.id.as_str()).collect();
            for current in backend.directory_jobs()? {
                if defined.contains(current.id.as_str()) {
                    continue;
                }
                let plan = backend.plan(&current, true)?;
                entries.push(JobEntry {
                    job_id: current.id.clone(),
                    file: None,
                    removed: true,
                    exit_code: plan.exit_code(),
                    plan,
                    job_type: current.job_type.as_str().to_string(),
                });
            }
        } else {
            eprintln!(
                "Removed jobs are not planned: {} file{} failed to parse",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
        }
    }

    let code = if errors.is_empty() {
        entries.iter().map(|e| e.exit_code).max().unwrap_or(0)
    } else {
        EXIT_ERROR
    };
    if a.json {
        let out = json!({
            "Jobs": entries,
            "Errors": errors,
            "ExitCode": code,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("failed to format JSON")?
        );
    } else {
        let blocks: Vec<String> = entries
            .iter()
            .map(|e| {
                format_plan(
                    &e.plan,
                    &e.job_type,
                    a.diff,
                    a.verbose,
                    super::status::metric_lines,
                )
            })
            .collect();
        print!("{}", blocks.join("\n"));
        for e in &errors {
            eprintln!("{}", e.error);
        }
    }
    Ok(code)
}

fn parse_error(e: &JobspecError) -> ErrorEntry {
    let lines: Vec<String> = e
        .diagnostics
        .iter()
        .map(|d| d.display(&e.path).to_string())
        .collect();
    ErrorEntry {
        file: Some(e.path.display().to_string()),
        error: lines.join("\n"),
    }
}
