//! systemd's notify protocol for `Type=notify` (through the sd-notify crate; every call is a
//! no-op without `NOTIFY_SOCKET`): `READY=1` once the state is loaded and the node has
//! adopted what runs, `STATUS=` with a one-line summary refreshed periodically,
//! `RELOADING=1` … `READY=1` around a SIGHUP reload, `STOPPING=1` on shutdown, and
//! `WATCHDOG=1` — only when systemd set `WATCHDOG_USEC`, and only while every server loop
//! (each worker, the heartbeat sweep) beat recently, so a stuck loop stops the pings and
//! systemd restarts the daemon.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::{debug, error, warn};

use crate::manifests::ManifestsStatus;
use crate::server::Server;

/// How often `STATUS=` is refreshed without a watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// A loop is stale after half the watchdog interval, but never sooner than this: a loop's
/// idle beat and the heartbeat sweep tick need room.
const MIN_STALE: Duration = Duration::from_secs(2);

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        // Told once per call site would be nicer, but a broken socket is rare and loud is
        // better than a silent watchdog restart.
        warn!(error = %e, "failed to notify systemd");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// `3 jobs (2 running), 5 allocations running, 0 file errors`, or why it could not be read.
pub fn summary(server: &Server, manifests: &Mutex<ManifestsStatus>) -> String {
    let file_errors = manifests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .files_in_error();
    match server.store().counts() {
        Ok(c) => format!(
            "{} jobs ({} running), {} allocations running, {} file errors",
            c.jobs_total(),
            c.jobs.get("running").copied().unwrap_or(0),
            c.allocations.get("running").copied().unwrap_or(0),
            file_errors
        ),
        Err(e) => format!("failed to read the state: {e}"),
    }
}

/// Refreshes `STATUS=` and, under a watchdog, pings it while the server's loops are alive.
/// A client agent (no server) has no server loops to watch: its pings only show that the
/// process still runs its timers. Runs until `shutdown` resolves.
pub async fn supervise(
    server: Option<(Arc<Server>, Arc<Mutex<ManifestsStatus>>)>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    // Not under systemd: nobody to tell.
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    // systemd's advice: ping at half the interval.
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    let stale_after = watchdog.map_or(Duration::MAX, |w| (w / 2).max(MIN_STALE));
    if let Some(w) = watchdog {
        debug!(watchdog = ?w, ping_every = ?every, "systemd watchdog enabled");
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = Instant::now() - STATUS_EVERY;
    let mut withheld = false;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        if watchdog.is_some() {
            let (stale, started) = match &server {
                Some((s, _)) => (
                    s.liveness().stale(Instant::now(), stale_after),
                    !s.liveness().is_empty(),
                ),
                None => (Vec::new(), true),
            };
            if stale.is_empty() && started {
                send(&[NotifyState::Watchdog]);
                withheld = false;
            } else if !withheld {
                for (name, age) in &stale {
                    error!(
                        "the {name} loop has not progressed for {:.1}s; withholding the systemd watchdog ping so the agent is restarted",
                        age.as_secs_f64()
                    );
                }
                withheld = true;
            }
        }
        if let Some((server, manifests)) = &server
            && last_status.elapsed() >= STATUS_EVERY
        {
            last_status = Instant::now();
            let (server, manifests) = (server.clone(), manifests.clone());
            // Counting reads SQLite: off the async workers.
            if let Ok(line) =
                tokio::task::spawn_blocking(move || summary(&server, &manifests)).await
            {
                status(&line);
            }
        }
    }
}
