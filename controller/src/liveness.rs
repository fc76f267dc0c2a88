//! Liveness of the server's loops, for systemd's watchdog. Each loop that must keep turning
//! (every worker, the heartbeat sweep) beats here from inside the loop itself; the agent
//! sends `WATCHDOG=1` only while every registered loop beat recently. A worker stuck in an
//! evaluation, or a loop that deadlocked on the store, stops beating, the pings stop, and
//! systemd restarts the daemon (workloads keep running across the restart).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often an idle loop beats. Far below any sensible `WatchdogSec=` (seconds), and a beat
/// is one short lock.
pub const IDLE_BEAT: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub struct Liveness {
    loops: Mutex<BTreeMap<String, Instant>>,
}

impl Liveness {
    /// The loop `name` is alive now.
    pub fn beat(&self, name: &str) {
        self.beat_at(name, Instant::now());
    }

    pub fn beat_at(&self, name: &str, now: Instant) {
        let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        match loops.get_mut(name) {
            Some(t) => *t = now,
            None => {
                loops.insert(name.to_string(), now);
            }
        }
    }

    /// The loop `name` ended on purpose (shutdown): it is no longer waited for.
    pub fn remove(&self, name: &str) {
        self.loops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Loops that have not beaten within `max_age` of `now`, with how long ago they did.
    pub fn stale(&self, now: Instant, max_age: Duration) -> Vec<(String, Duration)> {
        self.loops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, at)| (name.clone(), now.saturating_duration_since(*at)))
            .filter(|(_, age)| *age > max_age)
            .collect()
    }

    /// How many loops are registered (none before the server runs).
    pub fn len(&self) -> usize {
        self.loops.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_beating_is_stale() {
        let l = Liveness::default();
        let t0 = Instant::now();
        l.beat_at("worker 0", t0);
        l.beat_at("worker 1", t0);
        let max = Duration::from_secs(5);
        assert!(l.stale(t0 + Duration::from_secs(4), max).is_empty());
        l.beat_at("worker 1", t0 + Duration::from_secs(4));
        let stale = l.stale(t0 + Duration::from_secs(6), max);
        assert_eq!(stale, [("worker 0".to_string(), Duration::from_secs(6))]);
        l.remove("worker 0");
        assert!(l.stale(t0 + Duration::from_secs(6), max).is_empty());
        assert_eq!(l.len(), 1);
    }
}
