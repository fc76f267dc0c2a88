//! The level-triggered heart of the manifests source: given a full listing of the watched
//! directory, says which job files changed or disappeared since the last listing. Every trigger
//! (a file event, git-sync's symlink swap, the periodic resync) produces a full listing, so a
//! missed or coalesced notification can never leave drover out of date.
//!
//! The guard lives here too: a directory that vanishes or is emptied in one step while it held
//! job files stops nothing until the change is confirmed by a later listing, at least `grace`
//! later (or at once with `allow_empty`). A GitOps sync that fails half-way, or a mount that
//! disappears, must not stop every job.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What one listing of the directory found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Every job file below the directory with a hash of its contents.
    Files(BTreeMap<PathBuf, u64>),
    /// The directory does not exist (or its symlink dangles).
    Missing,
    /// The directory exists but cannot be read.
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ManifestEvent {
    Changed(PathBuf),
    Removed(PathBuf),
}

/// What a listing meant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanOutcome {
    pub events: Vec<ManifestEvent>,
    /// Set while removals are held back by the guard: why, for the log and `drover status`.
    pub held: Option<String>,
    /// Set when the directory could not be read; nothing was changed.
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct Scanner {
    known: BTreeMap<PathBuf, u64>,
    empty_since: Option<Instant>,
    allow_empty: bool,
    grace: Duration,
}

impl Scanner {
    pub fn new(allow_empty: bool, grace: Duration) -> Self {
        Scanner {
            known: BTreeMap::new(),
            empty_since: None,
            allow_empty,
            grace,
        }
    }

    /// Changes the empty-directory guard (a reloaded `manifests { allow_empty }`).
    pub fn set_allow_empty(&mut self, allow_empty: bool) {
        self.allow_empty = allow_empty;
    }

    /// The job files as of the last accepted listing.
    pub fn known(&self) -> impl Iterator<Item = &PathBuf> {
        self.known.keys()
    }

    pub fn step(&mut self, now: Instant, listing: Listing) -> ScanOutcome {
        let files = match listing {
            Listing::Unreadable(e) => {
                return ScanOutcome {
                    error: Some(e),
                    ..Default::default()
                };
            }
            Listing::Missing => BTreeMap::new(),
            Listing::Files(f) => f,
        };
        if files.is_empty() && !self.known.is_empty() && !self.allow_empty {
            let since = *self.empty_since.get_or_insert(now);
            if now.duration_since(since) < self.grace {
                return ScanOutcome {
                    held: Some(format!(
                        "the manifests directory is missing or empty while it held {} job file(s); nothing is stopped unless it is still empty {}s from now, or the agent runs with -manifests-allow-empty",
                        self.known.len(),
                        (self.grace - now.duration_since(since)).as_secs()
                    )),
                    ..Default::default()
                };
            }
        }
        self.empty_since = None;
        let mut events = Vec::new();
        for (path, hash) in &files {
            if self.known.get(path) != Some(hash) {
                events.push(ManifestEvent::Changed(path.clone()));
            }
        }
        for path in self.known.keys() {
            if !files.contains_key(path) {
                events.push(ManifestEvent::Removed(path.clone()));
            }
        }
        self.known = files;
        ScanOutcome {
            events,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, u64)]) -> Listing {
        Listing::Files(list.iter().map(|(p, h)| (PathBuf::from(p), *h)).collect())
    }

    fn changed(p: &str) -> ManifestEvent {
        ManifestEvent::Changed(PathBuf::from(p))
    }

    fn removed(p: &str) -> ManifestEvent {
        ManifestEvent::Removed(PathBuf::from(p))
    }

    #[test]
    fn new_changed_and_removed_files() {
        let t = Instant::now();
        let mut s = Scanner::new(false, Duration::from_secs(30));
        assert_eq!(
            s.step(t, files(&[("a.nomad", 1), ("b.nomad", 2)])).events,
            [changed("a.nomad"), changed("b.nomad")]
        );
        assert_eq!(
            s.step(t, files(&[("a.nomad", 1), ("b.nomad", 2)])).events,
            []
        );
        assert_eq!(
            s.step(t, files(&[("a.nomad", 9), ("c.nomad", 3)])).events,
            [changed("a.nomad"), changed("c.nomad"), removed("b.nomad")]
        );
    }

    #[test]
    fn an_emptied_directory_is_held_until_confirmed_after_the_grace() {
        let t = Instant::now();
        let mut s = Scanner::new(false, Duration::from_secs(30));
        s.step(t, files(&[("a.nomad", 1)]));
        let held = s.step(t + Duration::from_secs(1), Listing::Missing);
        assert!(held.events.is_empty());
        assert!(
            held.held
                .is_some_and(|h| h.contains("-manifests-allow-empty"))
        );
        assert!(
            s.step(t + Duration::from_secs(20), files(&[]))
                .events
                .is_empty()
        );
        assert_eq!(
            s.step(t + Duration::from_secs(31), files(&[])).events,
            [removed("a.nomad")]
        );
    }

    #[test]
    fn the_guard_resets_when_files_come_back() {
        let t = Instant::now();
        let mut s = Scanner::new(false, Duration::from_secs(30));
        s.step(t, files(&[("a.nomad", 1)]));
        s.step(t, Listing::Missing);
        assert_eq!(
            s.step(t + Duration::from_secs(5), files(&[("a.nomad", 1)]))
                .events,
            []
        );
        // A new empty spell starts its own grace period.
        assert!(
            s.step(t + Duration::from_secs(40), Listing::Missing)
                .events
                .is_empty()
        );
    }

    #[test]
    fn allow_empty_removes_at_once() {
        let t = Instant::now();
        let mut s = Scanner::new(true, Duration::from_secs(30));
        s.step(t, files(&[("a.nomad", 1)]));
        assert_eq!(s.step(t, Listing::Missing).events, [removed("a.nomad")]);
    }

    #[test]
    fn an_unreadable_directory_changes_nothing() {
        let t = Instant::now();
        let mut s = Scanner::new(true, Duration::from_secs(30));
        s.step(t, files(&[("a.nomad", 1)]));
        let out = s.step(t, Listing::Unreadable("permission denied".into()));
        assert!(out.events.is_empty() && out.error.is_some());
        assert_eq!(s.step(t, files(&[("a.nomad", 1)])).events, []);
    }

    #[test]
    fn removing_some_files_is_not_guarded() {
        let t = Instant::now();
        let mut s = Scanner::new(false, Duration::from_secs(30));
        s.step(t, files(&[("a.nomad", 1), ("b.nomad", 2)]));
        assert_eq!(
            s.step(t, files(&[("b.nomad", 2)])).events,
            [removed("a.nomad")]
        );
    }
}
