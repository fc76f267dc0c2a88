//! Applies what the watcher saw to the job registry: a changed file is parsed and its job
//! registered (the store decides whether that is a new version); a removed file stops its job;
//! a file that fails to parse changes nothing that runs — its errors are recorded instead, and
//! the last good version keeps running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tracing::{info, warn};

use super::scan::{ManifestEvent, ScanOutcome};
use crate::jobspec::{self, Diagnostic, ParseOptions, Parsed};

/// Where jobs from files go: the server's store in the agent, a recorder in tests.
pub trait JobRegistry {
    /// Registers the job a file defines, owned by that file. An error names why it was refused
    /// (e.g. another file or the API already owns a job with this ID).
    fn register_from_file(&self, path: &Path, parsed: &Parsed) -> Result<(), String>;
    /// Stops `job_id`, which `path` defined and no longer does.
    fn deregister_from_file(&self, path: &Path, job_id: &str) -> Result<(), String>;
    /// Records that the file's current contents failed to parse (nothing else changes).
    fn parse_failed(&self, _path: &Path, _diagnostics: &[Diagnostic]) {}
}

/// One job file as the agent last read it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileStatus {
    /// The job the file defines, as of its last good parse.
    pub job_id: Option<String>,
    /// Why the file's current contents were not applied; empty when they were.
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// The file parsed but the registry refused it: tried again on every listing until it
    /// goes through (a full disk clears; an ID clash is reported again, harmlessly).
    #[serde(skip)]
    pub refused: bool,
}

/// The manifests source's state, served by the API and counted by the metrics.
#[derive(Debug, Clone, Default)]
pub struct ManifestsStatus {
    pub dir: Option<PathBuf>,
    /// Removals held back by the empty-directory guard, and why.
    pub held: Option<String>,
    /// The directory could not be read (nothing was changed).
    pub error: Option<String>,
    pub files: BTreeMap<PathBuf, FileStatus>,
    /// Unix seconds of the last listing that was applied without a directory error.
    pub last_successful_sync: i64,
    /// Parse failures and refused registrations since the agent started
    /// (`drover_manifest_errors_total`).
    pub errors_total: u64,
}

impl ManifestsStatus {
    pub fn files_in_error(&self) -> usize {
        self.files.values().filter(|f| !f.errors.is_empty()).count()
    }
}

pub fn apply(
    outcome: &ScanOutcome,
    registry: &impl JobRegistry,
    status: &mut ManifestsStatus,
    opts: &ParseOptions,
    now_unix: i64,
) {
    status.held.clone_from(&outcome.held);
    status.error.clone_from(&outcome.error);
    if let Some(e) = &outcome.error {
        warn!(error = %e, "manifests directory unreadable; nothing was changed");
        return;
    }
    if let Some(h) = &outcome.held {
        warn!("{h}");
    }
    for ev in &outcome.events {
        match ev {
            ManifestEvent::Changed(path) => changed(path, registry, status, opts),
            ManifestEvent::Removed(path) => {
                if let Some(old) = status.files.remove(path)
                    && let Some(job_id) = old.job_id
                {
                    info!(path = %path.display(), job_id, "job file removed; stopping its job");
                    if let Err(e) = registry.deregister_from_file(path, &job_id) {
                        warn!(path = %path.display(), job_id, error = %e, "failed to stop the job of a removed file");
                    }
                }
            }
        }
    }
    let retries: Vec<PathBuf> = status
        .files
        .iter()
        .filter(|(p, f)| {
            f.refused
                && !outcome
                    .events
                    .contains(&ManifestEvent::Changed((*p).clone()))
        })
        .map(|(p, _)| p.clone())
        .collect();
    for path in retries {
        changed(&path, registry, status, opts);
    }
    if outcome.held.is_none() {
        status.last_successful_sync = now_unix;
    }
}

fn changed(
    path: &Path,
    registry: &impl JobRegistry,
    status: &mut ManifestsStatus,
    opts: &ParseOptions,
) {
    let job_id = status
        .files
        .entry(path.to_path_buf())
        .or_default()
        .job_id
        .clone();
    match jobspec::parse_file(path, opts) {
        Err(e) => {
            for d in &e.diagnostics {
                warn!(path = %path.display(), "{}", d.display(path));
            }
            warn!(path = %path.display(), job_id = ?job_id, "job file failed to parse; the last good version keeps running");
            status.errors_total += 1;
            let entry = status.files.entry(path.to_path_buf()).or_default();
            entry.refused = false;
            entry.errors = e
                .diagnostics
                .into_iter()
                .filter(Diagnostic::is_error)
                .collect();
        }
        Ok(parsed) => {
            let previous = job_id;
            match registry.register_from_file(path, &parsed) {
                Ok(()) => {
                    info!(path = %path.display(), job_id = %parsed.job.id, "job file applied");
                    let entry = status.files.entry(path.to_path_buf()).or_default();
                    entry.refused = false;
                    entry.errors.clear();
                    entry.warnings.clone_from(&parsed.warnings);
                    entry.job_id = Some(parsed.job.id.clone());
                    // The file now defines another job: the one it defined before is gone.
                    if let Some(old) = previous.filter(|old| *old != parsed.job.id)
                        && let Err(e) = registry.deregister_from_file(path, &old)
                    {
                        warn!(path = %path.display(), job_id = old, error = %e, "failed to stop the job this file no longer defines");
                    }
                }
                Err(reason) => {
                    warn!(path = %path.display(), job_id = %parsed.job.id, error = %reason, "job file refused");
                    status.errors_total += 1;
                    let entry = status.files.entry(path.to_path_buf()).or_default();
                    entry.refused = true;
                    entry.errors = vec![Diagnostic::error(
                        jobspec::Pos::new(1, 1),
                        format!("job {:?}", parsed.job.id),
                        reason,
                    )];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<String>>,
        refuse: Option<String>,
    }

    impl JobRegistry for Recorder {
        fn register_from_file(&self, path: &Path, parsed: &Parsed) -> Result<(), String> {
            if let Some(r) = &self.refuse {
                return Err(r.clone());
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            self.calls
                .borrow_mut()
                .push(format!("register {} from {name}", parsed.job.id));
            Ok(())
        }
        fn deregister_from_file(&self, _path: &Path, job_id: &str) -> Result<(), String> {
            self.calls.borrow_mut().push(format!("deregister {job_id}"));
            Ok(())
        }
    }

    fn job(id: &str) -> String {
        format!(
            "job \"{id}\" {{\n  group \"g\" {{\n    task \"t\" {{\n      driver = \"raw_exec\"\n      config {{ command = \"sleep\" }}\n    }}\n  }}\n}}\n"
        )
    }

    fn outcome(events: Vec<ManifestEvent>) -> ScanOutcome {
        ScanOutcome {
            events,
            ..Default::default()
        }
    }

    #[test]
    fn a_broken_edit_keeps_the_last_good_version_and_records_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.nomad");
        let reg = Recorder::default();
        let mut st = ManifestsStatus::default();
        let opts = ParseOptions::default();
        std::fs::write(&f, job("a")).expect("write");
        apply(
            &outcome(vec![ManifestEvent::Changed(f.clone())]),
            &reg,
            &mut st,
            &opts,
            1,
        );
        std::fs::write(&f, "job \"a\" {\n  group \"g\" {\n").expect("write");
        apply(
            &outcome(vec![ManifestEvent::Changed(f.clone())]),
            &reg,
            &mut st,
            &opts,
            2,
        );
        assert_eq!(
            *reg.calls.borrow(),
            ["register a from a.nomad"],
            "nothing is stopped or changed"
        );
        let fs = &st.files[&f];
        assert_eq!(fs.job_id.as_deref(), Some("a"));
        assert!(
            fs.errors[0].message.contains("invalid HCL syntax") && fs.errors[0].pos.line == 2,
            "{:?}",
            fs.errors
        );
        assert_eq!(st.files_in_error(), 1);
        assert_eq!(st.errors_total, 1);

        // Removing the broken file stops the last good job.
        apply(
            &outcome(vec![ManifestEvent::Removed(f.clone())]),
            &reg,
            &mut st,
            &opts,
            3,
        );
        assert_eq!(
            reg.calls.borrow().last().map(String::as_str),
            Some("deregister a")
        );
        assert!(st.files.is_empty());
    }

    #[test]
    fn a_file_that_changes_its_job_id_stops_the_old_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.nomad");
        let reg = Recorder::default();
        let mut st = ManifestsStatus::default();
        std::fs::write(&f, job("a")).expect("write");
        apply(
            &outcome(vec![ManifestEvent::Changed(f.clone())]),
            &reg,
            &mut st,
            &ParseOptions::default(),
            1,
        );
        std::fs::write(&f, job("b")).expect("write");
        apply(
            &outcome(vec![ManifestEvent::Changed(f.clone())]),
            &reg,
            &mut st,
            &ParseOptions::default(),
            2,
        );
        assert_eq!(
            *reg.calls.borrow(),
            [
                "register a from a.nomad",
                "register b from a.nomad",
                "deregister a"
            ]
        );
    }

    #[test]
    fn a_refused_registration_is_a_file_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("dup.nomad");
        std::fs::write(&f, job("a")).expect("write");
        let reg = Recorder {
            refuse: Some("job \"a\" is already defined by a.nomad".into()),
            ..Default::default()
        };
        let mut st = ManifestsStatus::default();
        apply(
            &outcome(vec![ManifestEvent::Changed(f.clone())]),
            &reg,
            &mut st,
            &ParseOptions::default(),
            1,
        );
        assert!(
            st.files[&f].errors[0]
                .message
                .contains("already defined by a.nomad")
        );
        assert_eq!(st.files[&f].job_id, None);
    }

    #[test]
    fn a_refused_file_is_retried_on_the_next_listing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.nomad");
        std::fs::write(&f, job("a")).expect("write");
        let mut reg = Recorder {
            refuse: Some("the database or its disk is full".into()),
            ..Default::default()
        };
        let mut st = ManifestsStatus::default();
        apply(
            &outcome(vec![ManifestEvent::Changed(f.clone())]),
            &reg,
            &mut st,
            &ParseOptions::default(),
            1,
        );
        assert!(st.files[&f].refused && !st.files[&f].errors.is_empty());
        reg.refuse = None;
        // A resync with nothing changed on disk.
        apply(&outcome(vec![]), &reg, &mut st, &ParseOptions::default(), 2);
        assert_eq!(*reg.calls.borrow(), ["register a from a.nomad"]);
        assert!(!st.files[&f].refused && st.files[&f].errors.is_empty());
    }

    #[test]
    fn a_held_or_failed_listing_is_recorded() {
        let reg = Recorder::default();
        let mut st = ManifestsStatus::default();
        let held = ScanOutcome {
            held: Some("held".into()),
            ..Default::default()
        };
        apply(&held, &reg, &mut st, &ParseOptions::default(), 5);
        assert_eq!(st.held.as_deref(), Some("held"));
        assert_eq!(st.last_successful_sync, 0);
        let failed = ScanOutcome {
            error: Some("denied".into()),
            ..Default::default()
        };
        apply(&failed, &reg, &mut st, &ParseOptions::default(), 6);
        assert_eq!(st.error.as_deref(), Some("denied"));
        assert!(reg.calls.borrow().is_empty());
    }
}
