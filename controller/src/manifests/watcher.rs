//! Watches the manifests directory: inotify events (debounced with notify-debouncer-full) and a
//! periodic resync both lead to one full listing, which the [`Scanner`] turns into
//! [`ManifestEvent`]s. The parent directory is watched too, so git-sync's swap of a symlinked
//! directory, or the directory being removed and recreated, is seen at once.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::scan::{Listing, ScanOutcome, Scanner};
use crate::jobspec::Format;

#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub dir: PathBuf,
    /// How often the whole directory is listed even without events.
    pub resync_interval: Duration,
    /// How long events are gathered before one listing (editors write in bursts).
    pub debounce: Duration,
    /// Remove every job at once when the directory is emptied (no grace period).
    pub allow_empty: bool,
    /// How long an emptied directory must stay empty before its jobs are stopped.
    pub empty_grace: Duration,
}

impl WatchConfig {
    pub fn new(dir: PathBuf) -> Self {
        WatchConfig {
            dir,
            resync_interval: Duration::from_secs(30),
            debounce: Duration::from_millis(100),
            allow_empty: false,
            empty_grace: Duration::from_secs(30),
        }
    }
}

/// Deepest directory nesting listed below the manifests directory.
const MAX_DEPTH: usize = 8;

/// Lists every job file below `dir` with a hash of its contents. Hidden entries (`.git`,
/// git-sync's `.worktrees`) are skipped; a file that vanishes mid-listing is simply absent.
pub fn list(dir: &Path) -> Listing {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Listing::Missing,
        Err(e) => {
            return Listing::Unreadable(format!(
                "failed to read manifests directory {}: {e}",
                dir.display()
            ));
        }
        Ok(m) if !m.is_dir() => {
            return Listing::Unreadable(format!(
                "manifests path {} is not a directory",
                dir.display()
            ));
        }
        Ok(_) => {}
    }
    let mut files = BTreeMap::new();
    if let Err(e) = list_into(dir, 0, &mut files) {
        return Listing::Unreadable(e);
    }
    Listing::Files(files)
}

fn list_into(dir: &Path, depth: usize, out: &mut BTreeMap<PathBuf, u64>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("failed to read manifests directory {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follow symlinks: git-sync and ConfigMap-style layouts link files and directories.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                // A subdirectory that cannot be read is reported, not treated as empty.
                list_into(&path, depth + 1, out)?;
            }
        } else if meta.is_file() && Format::is_job_file(&path) {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    bytes.hash(&mut h);
                    out.insert(path, h.finish());
                }
                // Deleted between listing and reading: the next listing settles it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("failed to read job file {}: {e}", path.display())),
            }
        }
    }
    Ok(())
}

/// What the agent can change in a running watcher (on SIGHUP): each new value asks for a
/// full resync at once, with the guard set as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchControl {
    /// Bumped to ask for a rescan.
    pub rescans: u64,
    pub allow_empty: bool,
}

/// Runs until `shutdown` resolves, sending one [`ScanOutcome`] per listing that changed
/// something, was held by the guard or failed.
pub async fn run(
    cfg: WatchConfig,
    tx: mpsc::Sender<ScanOutcome>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (_keep, control) = tokio::sync::watch::channel(WatchControl {
        rescans: 0,
        allow_empty: cfg.allow_empty,
    });
    run_controlled(cfg, control, tx, shutdown).await;
}

/// [`run`], also rescanning (as a resync) whenever `control` changes.
pub async fn run_controlled(
    cfg: WatchConfig,
    mut control: tokio::sync::watch::Receiver<WatchControl>,
    tx: mpsc::Sender<ScanOutcome>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let mut watch = DirWatch::new(&cfg, wake_tx);
    let mut scanner = Scanner::new(cfg.allow_empty, cfg.empty_grace);
    let mut tick = tokio::time::interval(cfg.resync_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut control_open = true;
    loop {
        let resync = tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {
                debug!(dir = %cfg.dir.display(), "manifests resync");
                true
            }
            Some(()) = wake_rx.recv() => false,
            changed = control.changed(), if control_open => {
                if changed.is_err() {
                    control_open = false;
                    continue;
                }
                let c = *control.borrow_and_update();
                scanner.set_allow_empty(c.allow_empty);
                debug!(dir = %cfg.dir.display(), allow_empty = c.allow_empty, "manifests rescan asked for");
                true
            }
        };
        watch.refresh(&cfg);
        let dir = cfg.dir.clone();
        let listing = match tokio::task::spawn_blocking(move || list(&dir)).await {
            Ok(l) => l,
            Err(e) => Listing::Unreadable(format!("failed to list the manifests directory: {e}")),
        };
        let outcome = scanner.step(tokio::time::Instant::now().into_std(), listing);
        // A resync is always passed on, even with nothing changed: files whose registration
        // was refused for a reason that may have cleared (a full disk) are retried then.
        if !resync && outcome.events.is_empty() && outcome.held.is_none() && outcome.error.is_none()
        {
            continue;
        }
        if tx.send(outcome).await.is_err() {
            return;
        }
    }
}

/// The notify watches: the directory (recursively, through its symlink) and its parent.
struct DirWatch {
    debouncer: Option<Debouncer<RecommendedWatcher, RecommendedCache>>,
    watched_target: Option<PathBuf>,
    watched_parent: bool,
}

impl DirWatch {
    fn new(cfg: &WatchConfig, wake: mpsc::Sender<()>) -> Self {
        let debouncer = new_debouncer(cfg.debounce, None, move |res: DebounceEventResult| {
            if let Err(errors) = &res {
                for e in errors {
                    warn!(error = %e, "manifests watch error; the periodic resync still runs");
                }
            }
            // A full channel already holds a wake-up: one listing will cover every event.
            let _ = wake.try_send(());
        });
        let debouncer = match debouncer {
            Ok(d) => Some(d),
            Err(e) => {
                warn!(error = %e, "failed to start watching the manifests directory; relying on the periodic resync");
                None
            }
        };
        let mut w = DirWatch {
            debouncer,
            watched_target: None,
            watched_parent: false,
        };
        w.refresh(cfg);
        w
    }

    /// (Re)establishes the watches when the directory appeared or its symlink now points elsewhere.
    fn refresh(&mut self, cfg: &WatchConfig) {
        let Some(debouncer) = self.debouncer.as_mut() else {
            return;
        };
        if !self.watched_parent
            && let Some(parent) = cfg.dir.parent().filter(|p| p.is_dir())
        {
            self.watched_parent = debouncer.watch(parent, RecursiveMode::NonRecursive).is_ok();
        }
        let target = std::fs::canonicalize(&cfg.dir).ok();
        if target == self.watched_target {
            return;
        }
        if let Some(old) = self.watched_target.take() {
            let _ = debouncer.unwatch(&old);
        }
        if let Some(t) = &target {
            match debouncer.watch(t, RecursiveMode::Recursive) {
                Ok(()) => self.watched_target = target,
                Err(e) => {
                    warn!(dir = %t.display(), error = %e, "failed to watch the manifests directory; relying on the periodic resync")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::scan::ManifestEvent;
    use super::*;

    async fn next(rx: &mut mpsc::Receiver<ScanOutcome>) -> ScanOutcome {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an outcome within 10 s")
            .expect("the watcher runs")
    }

    fn start(
        dir: PathBuf,
    ) -> (
        mpsc::Receiver<ScanOutcome>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (tx, rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut cfg = WatchConfig::new(dir);
        cfg.resync_interval = Duration::from_secs(3600);
        cfg.empty_grace = Duration::from_secs(3600);
        tokio::spawn(run(cfg, tx, async {
            let _ = stop_rx.await;
        }));
        (rx, stop_tx)
    }

    #[tokio::test]
    async fn sees_new_edited_renamed_and_deleted_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("manifests");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("a.nomad"), "job \"a\" {}").expect("write");
        let (mut rx, _stop) = start(dir.clone());
        assert_eq!(
            next(&mut rx).await.events,
            [ManifestEvent::Changed(dir.join("a.nomad"))]
        );

        // An editor's atomic save: write a temp file, rename it over the original.
        std::fs::write(dir.join(".a.nomad.swp"), "job \"a\" { }").expect("write");
        std::fs::rename(dir.join(".a.nomad.swp"), dir.join("a.nomad")).expect("rename");
        assert_eq!(
            next(&mut rx).await.events,
            [ManifestEvent::Changed(dir.join("a.nomad"))]
        );

        std::fs::write(dir.join("b.yaml"), "job: {}").expect("write");
        std::fs::write(dir.join("notes.txt"), "not a job").expect("write");
        assert_eq!(
            next(&mut rx).await.events,
            [ManifestEvent::Changed(dir.join("b.yaml"))]
        );

        std::fs::remove_file(dir.join("b.yaml")).expect("rm");
        assert_eq!(
            next(&mut rx).await.events,
            [ManifestEvent::Removed(dir.join("b.yaml"))]
        );
    }

    #[tokio::test]
    async fn follows_a_git_sync_symlink_swap() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rev1 = tmp.path().join("rev1");
        let rev2 = tmp.path().join("rev2");
        std::fs::create_dir(&rev1).expect("mkdir");
        std::fs::create_dir(&rev2).expect("mkdir");
        std::fs::write(rev1.join("a.nomad"), "v1").expect("write");
        std::fs::write(rev2.join("a.nomad"), "v2").expect("write");
        std::fs::write(rev2.join("b.nomad"), "v2").expect("write");
        let link = tmp.path().join("manifests");
        std::os::unix::fs::symlink(&rev1, &link).expect("symlink");
        let (mut rx, _stop) = start(link.clone());
        assert_eq!(
            next(&mut rx).await.events,
            [ManifestEvent::Changed(link.join("a.nomad"))]
        );

        // git-sync: a new link, renamed over the old one in one step.
        std::os::unix::fs::symlink(&rev2, tmp.path().join("manifests.tmp")).expect("symlink");
        std::fs::rename(tmp.path().join("manifests.tmp"), &link).expect("swap");
        assert_eq!(
            next(&mut rx).await.events,
            [
                ManifestEvent::Changed(link.join("a.nomad")),
                ManifestEvent::Changed(link.join("b.nomad"))
            ]
        );
        // The new target is watched.
        std::fs::remove_file(rev2.join("b.nomad")).expect("rm");
        assert_eq!(
            next(&mut rx).await.events,
            [ManifestEvent::Removed(link.join("b.nomad"))]
        );
    }

    #[tokio::test]
    async fn a_vanished_directory_is_held_not_pruned() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("manifests");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("a.nomad"), "x").expect("write");
        let (mut rx, _stop) = start(dir.clone());
        next(&mut rx).await;
        std::fs::remove_dir_all(&dir).expect("rm -r");
        let out = next(&mut rx).await;
        assert!(out.events.is_empty(), "{out:?}");
        assert!(out.held.is_some(), "{out:?}");
    }
}
