//! The `drover agent` process: its configuration, and (with the state store and runtime) the
//! wiring of server, client and manifests source into one daemon.

pub mod config;

pub use config::AgentConfig;
