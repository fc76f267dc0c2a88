//! The `drover agent` process: its configuration, and the wiring of server, client, manifests
//! source and HTTP API into one daemon.

pub mod config;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

pub use config::AgentConfig;

/// Starts logging as configured: human-readable lines, or JSON lines with `-log-json`.
pub fn init_logging(config: &AgentConfig) {
    let level = config.log_level.to_lowercase();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},hyper=info,bollard=info,h2=info"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
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

pub fn run(config: AgentConfig, warnings: Vec<String>) -> anyhow::Result<ExitCode> {
    init_logging(&config);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let data_dir = data_dir(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("drover")
        .build()
        .context("failed to start the async runtime")?;
    rt.block_on(wiring::run(config, data_dir))?;
    Ok(ExitCode::SUCCESS)
}

mod wiring;
