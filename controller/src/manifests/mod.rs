//! The manifests source: the watched directory of job files, the desired state. The
//! [`watcher`] turns file events and periodic resyncs into [`ManifestEvent`]s; [`source`]
//! parses each changed file and registers its job, so a file event becomes a job version.

pub mod scan;
pub mod source;
pub mod watcher;

pub use scan::{Listing, ManifestEvent, ScanOutcome, Scanner};
pub use source::{FileStatus, JobRegistry, ManifestsStatus, apply};
pub use watcher::{WatchConfig, WatchControl, list, run, run_controlled};
