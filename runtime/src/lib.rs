//! drover's node side: what DOES run. Drivers start containers and processes, task runners keep
//! them running by their restart policy, and the client syncs a node with its server.
//! `runtime` never depends on `controller`; the types that cross the wire live in [`spec`].

pub mod allocrunner;
pub mod artifact;
pub mod checks;
pub mod client;
pub mod driver;
pub mod spec;
pub mod taskrunner;
#[doc(hidden)]
pub mod testutil;
