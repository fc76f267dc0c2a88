//! `drover agent`: assembles the agent's configuration (dev defaults, then `-config` files in
//! order, then flags, as Nomad does) and runs the agent until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::agent::AgentConfig;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Server and client in one process with zero configuration, for trying drover.
    #[arg(long)]
    pub dev: bool,
    /// An agent HCL file (repeatable; later files override earlier ones).
    #[arg(long = "config", value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Where the state database and allocation directories live (dev: a fresh temp dir).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The watched directory of job files (dev: ./manifests).
    #[arg(long = "manifests", value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// Stop every job at once when the manifests directory is emptied, with no grace period.
    #[arg(long = "manifests-allow-empty")]
    pub manifests_allow_empty: bool,
    /// The address the HTTP API binds (default 127.0.0.1).
    #[arg(long = "bind", value_name = "ADDR")]
    pub bind: Option<String>,
    /// The HTTP API port (default 4646).
    #[arg(long = "http-port", value_name = "PORT")]
    pub http_port: Option<u16>,
    /// The DNS interface's port (default 8600; drover's `dns { port }`).
    #[arg(long = "dns-port", value_name = "PORT")]
    pub dns_port: Option<u16>,
    /// The agent's node name (default: the host name).
    #[arg(long = "node", value_name = "NAME")]
    pub node: Option<String>,
    #[arg(long = "dc", value_name = "DATACENTER")]
    pub dc: Option<String>,
    /// Enable the server role.
    #[arg(long)]
    pub server: bool,
    /// Enable the client role.
    #[arg(long)]
    pub client: bool,
    /// Servers a client joins, host:port (repeatable).
    #[arg(long = "servers", value_name = "ADDR", value_delimiter = ',')]
    pub servers: Vec<String>,
    /// TRACE, DEBUG, INFO, WARN or ERROR.
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Logs as JSON lines.
    #[arg(long = "log-json")]
    pub log_json: bool,
}

impl AgentArgs {
    /// The effective configuration, with the warnings the config files raised.
    pub fn config(&self) -> anyhow::Result<(AgentConfig, Vec<String>)> {
        let mut c = if self.dev {
            AgentConfig::dev()
        } else {
            AgentConfig::base()
        };
        let mut warnings = Vec::new();
        for f in &self.config {
            let w = c.merge_file(f).map_err(|e| anyhow::anyhow!("{e}"))?;
            warnings.extend(w.iter().map(|d| d.display(f).to_string()));
        }
        if let Some(d) = &self.data_dir {
            c.data_dir = Some(d.clone());
        }
        if let Some(d) = &self.manifests {
            c.manifests.dir = Some(d.clone());
        }
        c.manifests.allow_empty |= self.manifests_allow_empty;
        if let Some(b) = &self.bind {
            c.bind_addr = b.clone();
        }
        if let Some(p) = self.http_port {
            c.http_port = p;
        }
        if let Some(p) = self.dns_port {
            c.dns.port = p;
        }
        if let Some(n) = &self.node {
            c.name = n.clone();
        }
        if let Some(dc) = &self.dc {
            c.datacenter = dc.clone();
        }
        c.server.enabled |= self.server;
        c.client.enabled |= self.client;
        if !self.servers.is_empty() {
            c.client.servers = self.servers.clone();
        }
        if let Some(l) = &self.log_level {
            c.log_level = l.to_uppercase();
        }
        c.log_json |= self.log_json;
        if !matches!(
            c.log_level.as_str(),
            "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR"
        ) {
            bail!(
                "invalid log level {:?}: expected TRACE, DEBUG, INFO, WARN or ERROR",
                c.log_level
            );
        }
        if !c.server.enabled && !c.client.enabled {
            bail!(
                "the agent has no role: use -dev, or enable server and/or client in a -config file (or -server / -client)"
            );
        }
        if c.client.enabled && !c.server.enabled && c.client.servers.is_empty() {
            bail!(
                "a client-only agent needs servers to join: set client {{ servers = [\"HOST:4647\"] }} or -servers"
            );
        }
        if c.data_dir.is_none() && !c.dev {
            bail!(
                "data_dir is required outside dev mode: set data_dir in a -config file or -data-dir"
            );
        }
        c.bind_addr.parse::<std::net::IpAddr>().with_context(|| {
            format!(
                "invalid bind address {:?}: expected an IP address",
                c.bind_addr
            )
        })?;
        c.token_from_env(std::env::var("DROVER_TOKEN").ok());
        c.check_api_exposure().map_err(anyhow::Error::msg)?;
        c.check_rpc_exposure(
            std::env::var(drover_runtime::client::remote::JOIN_TOKEN_ENV)
                .ok()
                .as_deref(),
        )
        .map_err(anyhow::Error::msg)?;
        Ok((c, warnings))
    }
}

pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let (config, warnings) = args.config()?;
    // SIGHUP reads the same files with the same flags on top.
    crate::agent::run(config, warnings, Box::new(move || args.config()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: AgentArgs,
    }

    fn parse(args: &[&str]) -> anyhow::Result<AgentConfig> {
        let mut v = vec!["agent"];
        v.extend_from_slice(args);
        T::try_parse_from(v)?.a.config().map(|(c, _)| c)
    }

    #[test]
    fn dev_mode_defaults() {
        let c = parse(&["--dev"]).expect("dev parses");
        assert!(c.server.enabled && c.client.enabled && c.raw_exec_enabled);
        assert_eq!(c.bind_addr, "127.0.0.1");
        assert_eq!(c.http_port, 4646);
        assert_eq!(
            c.manifests.dir.as_deref(),
            Some(std::path::Path::new("manifests"))
        );
        assert!(c.data_dir.is_none());
    }

    #[test]
    fn flags_override_config() {
        let c = parse(&[
            "--dev",
            "--http-port",
            "5000",
            "--bind",
            "127.0.0.3",
            "--manifests",
            "/srv/j",
            "--manifests-allow-empty",
        ])
        .expect("parses");
        assert_eq!((c.http_port, c.bind_addr.as_str()), (5000, "127.0.0.3"));
        assert!(c.manifests.allow_empty);
    }

    #[test]
    fn roleless_or_incomplete_agents_are_refused() {
        assert!(parse(&[]).unwrap_err().to_string().contains("no role"));
        assert!(
            parse(&["--client", "--data-dir", "/x"])
                .unwrap_err()
                .to_string()
                .contains("servers")
        );
        assert!(
            parse(&["--server"])
                .unwrap_err()
                .to_string()
                .contains("data_dir")
        );
        assert!(
            parse(&["--dev", "--bind", "nope"])
                .unwrap_err()
                .to_string()
                .contains("bind address")
        );
    }
}
