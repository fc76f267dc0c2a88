//! drover's control plane: what SHOULD run. A job file becomes a typed [`structs::Job`] in
//! [`jobspec`]; later stages (state store, scheduler, reconciler, API) build on that model.

pub mod agent;
pub mod api;
pub mod broker;
pub mod cli;
pub mod dns;
pub mod failpoint;
pub mod jobplan;
pub mod jobspec;
pub mod liveness;
pub mod manifests;
pub mod metrics;
pub mod plan_apply;
pub mod scheduler;
pub mod server;
pub mod services;
pub mod state;
pub mod structs;
pub mod timefmt;
pub mod worker;
