//! The command line: Nomad's verbs and flags (`drover job validate`, `job run -output`, …) parsed
//! with clap. Nomad spells long flags with one dash (`-var-file`), so those are rewritten to
//! clap's double dash before parsing; both spellings work.

mod agent;
mod alloc;
pub mod client;
mod format;
mod job;
mod node;
mod plan;
mod server;
mod service;
mod status;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "drover",
    version,
    about = "A declarative reconciler for containers: a directory of Nomad job files is the truth",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the drover agent: server, client, or both (-dev).
    Agent(agent::AgentArgs),
    /// Work with jobs: validate, run, inspect, init.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Inspect allocations: status, logs.
    #[command(subcommand)]
    Alloc(alloc::AllocCommand),
    /// Inspect and operate nodes: status, eligibility, drain.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Inspect the servers: members.
    #[command(subcommand)]
    Server(server::ServerCommand),
    /// Nomad's native service discovery: list services, show one's registrations.
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// List jobs (and job files that fail to parse), or show a job, allocation or node by ID.
    Status(StatusArgs),
    /// Print drover's version.
    Version,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub api: client::ApiArgs,
    #[arg(long)]
    pub json: bool,
    pub id: Option<String>,
}

/// Runs the CLI on `args` (including the program name) and returns the process exit code.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = nomad_style_flags(args, &Cli::command());
    // `job plan` keeps exit 1 for "changes": its usage errors are 255, as Nomad's are, so a
    // CI step cannot read a typo as a plan.
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .filter(|a| !a.starts_with('-'))
        .take(2)
        .collect();
    let usage_error = if words == ["job", "plan"] { 255 } else { 1 };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Nomad exits 1 on a usage error; help and version are not errors.
            return if e.use_stderr() {
                ExitCode::from(usage_error)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if !matches!(cli.command, Command::Agent(_)) {
        restore_sigpipe();
    }
    let result = match cli.command {
        Command::Agent(a) => agent::run(a),
        Command::Job(cmd) => job::run(cmd),
        Command::Alloc(cmd) => alloc::run(cmd).map(|()| ExitCode::SUCCESS),
        Command::Node(cmd) => node::run(cmd),
        Command::Server(cmd) => server::run(cmd),
        Command::Service(cmd) => service::run(cmd).map(|()| ExitCode::SUCCESS),
        Command::Status(a) => {
            let api = client::ApiClient::new(&a.api);
            match &a.id {
                Some(id) => status::alloc_or_node_or_job(&api, id, a.json),
                None => status::job_list(&api, a.json),
            }
            .map(|()| ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("drover v{}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A CLI command piped into `head` should end quietly when the pipe closes, as Unix tools do,
/// rather than panic on a failed print. (The agent keeps Rust's default: a closed socket must
/// be an error it handles, never a signal that kills the daemon.)
fn restore_sigpipe() {
    // SAFETY: called once at start-up before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Rewrites `-flag` and `-flag=value` to `--flag…` for every long flag the CLI defines, so
/// Nomad's single-dash spelling parses. Values and short flags (`-h`) are left alone.
fn nomad_style_flags(args: Vec<OsString>, cmd: &clap::Command) -> Vec<OsString> {
    let mut longs = Vec::new();
    collect_longs(cmd, &mut longs);
    let mut out = Vec::with_capacity(args.len());
    let mut after_double_dash = false;
    for a in args {
        let Some(s) = a.to_str() else {
            out.push(a);
            continue;
        };
        if s == "--" {
            after_double_dash = true;
        }
        let rewritten = (!after_double_dash)
            .then(|| s.strip_prefix('-'))
            .flatten()
            .filter(|rest| !rest.starts_with('-') && rest.len() > 1)
            .filter(|rest| {
                let name = rest.split_once('=').map_or(*rest, |(n, _)| n);
                longs.iter().any(|l| l == name)
            })
            .map(|rest| OsString::from(format!("--{rest}")));
        out.push(rewritten.unwrap_or(a));
    }
    out
}

fn collect_longs(cmd: &clap::Command, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        if let Some(l) = arg.get_long() {
            out.push(l.to_string());
        }
        if let Some(aliases) = arg.get_all_aliases() {
            out.extend(aliases.into_iter().map(str::to_string));
        }
    }
    for sub in cmd.get_subcommands() {
        collect_longs(sub, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn single_dash_long_flags_are_rewritten() {
        let got = nomad_style_flags(
            os(&[
                "drover",
                "job",
                "validate",
                "-var",
                "a=-b",
                "-var-file=x.hcl",
                "-h",
                "f.nomad",
            ]),
            &Cli::command(),
        );
        assert_eq!(
            got,
            os(&[
                "drover",
                "job",
                "validate",
                "--var",
                "a=-b",
                "--var-file=x.hcl",
                "-h",
                "f.nomad"
            ])
        );
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
