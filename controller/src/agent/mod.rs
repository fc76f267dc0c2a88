//! The `drover agent` process: its configuration, and the wiring of server, client, manifests
//! source and HTTP API into one daemon.

pub mod config;
pub mod reload;
pub mod systemd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

pub use config::AgentConfig;

/// Changes the log level of the running agent (a reloaded `log_level`).
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Builds the agent's configuration again, from the same files and flags (SIGHUP).
pub type Reloader = Box<dyn Fn() -> anyhow::Result<(AgentConfig, Vec<String>)> + Send + Sync>;

fn level_filter(level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::new(format!(
        "{},hyper=info,bollard=info,h2=info",
        level.to_lowercase()
    ))
}

/// Starts logging as configured: human-readable lines, or JSON lines with `-log-json`.
/// Returns how to change the level later; `RUST_LOG`, when set, wins over `log_level`.
pub fn init_logging(config: &AgentConfig) -> SetLogLevel {
    let from_env = tracing_subscriber::EnvFilter::try_from_default_env().ok();
    let env_set = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| level_filter(&config.log_level));
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    // The JSON and text subscribers are different types, and so are their reload handles.
    let reload: SetLogLevel = if config.log_json {
        let builder = builder
            .json()
            .with_env_filter(filter)
            .with_filter_reloading();
        let handle = builder.reload_handle();
        let _ = builder.try_init();
        Box::new(move |level| {
            handle
                .reload(level_filter(level))
                .map_err(|e| e.to_string())
        })
    } else {
        let builder = builder.with_env_filter(filter).with_filter_reloading();
        let handle = builder.reload_handle();
        let _ = builder.try_init();
        Box::new(move |level| {
            handle
                .reload(level_filter(level))
                .map_err(|e| e.to_string())
        })
    };
    if env_set {
        Box::new(|_| Err("RUST_LOG is set and takes precedence over log_level".into()))
    } else {
        reload
    }
}

/// The data dir: as configured, or in dev mode a fresh one under the system temp dir (kept on
/// exit, so what ran can still be inspected and adopted by the next dev agent given it).
pub fn data_dir(config: &AgentConfig) -> anyhow::Result<PathBuf> {
    let dir = match &config.data_dir {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("drover-dev-")
            .tempdir()
            .context("failed to create a temporary data dir for dev mode")?
            .keep(),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create data dir {}", dir.display()))?;
    Ok(dir)
}

/// How long the exit waits for blocking tasks still running once the agent has shut down.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

pub fn run(
    config: AgentConfig,
    warnings: Vec<String>,
    reload: Reloader,
) -> anyhow::Result<ExitCode> {
    let set_log_level = init_logging(&config);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let data_dir = data_dir(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("drover")
        .build()
        .context("failed to start the async runtime")?;
    let ran = rt.block_on(wiring::run(
        config,
        data_dir,
        wiring::Reload {
            config: reload,
            set_log_level,
        },
    ));
    // A blocking task that never returns (a worker stuck in an evaluation) must not hold the
    // exit: the state is already closed, and systemd would otherwise wait out TimeoutStopSec.
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    ran?;
    Ok(ExitCode::SUCCESS)
}

mod wiring;
