//! The restart decision for one task: Nomad's `restart` block (attempts per interval, delay,
//! mode fail|delay; a batch task that exits 0 is done) plus drover's crash-loop back-off curve.
//! A plain struct: it is told facts with the time they happened and never reads a clock, so
//! every branch is unit-tested without sleeping. See `docs/runtime.md` for the numbers.

use std::time::{Duration, Instant};

use crate::driver::DriverError;
use crate::spec::{ExitResult, RestartMode, RestartPolicy};

/// The first restart of a crash streak waits at most this long, whatever `delay` says: most
/// crashes are one-offs and the service is back before anyone notices.
pub const QUICK_RESTART: Duration = Duration::from_secs(1);
/// The streak's delays never grow past this (or `delay`, if that is larger).
pub const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// Up to this fraction of the delay is added at random, as Nomad does (25%).
pub const JITTER_FRACTION: f64 = 0.25;

/// What the tracker says after an exit or a failed start.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartDecision {
    Restart {
        delay: Duration,
        reason: String,
    },
    NotRestarting {
        reason: String,
    },
    /// The task finished its work (a batch task that exited 0): nothing to restart.
    Terminated,
}

/// Nomad's reason strings, which end up in task events.
pub const REASON_WITHIN_POLICY: &str = "Restart within policy";
pub const REASON_UNRECOVERABLE: &str = "Error was unrecoverable";
pub const REASON_NO_RESTARTS: &str = "Policy allows no restarts";
pub const REASON_TERMINATED: &str = "Restart unnecessary as task terminated successfully";

/// A source of jitter in `[0, 1)`; injected so tests are deterministic.
pub trait Jitter: Send + Sync {
    fn next_unit(&mut self) -> f64;
}

/// SplitMix64: tiny, seedable, and good enough to spread restarts; no crate needed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// Seeded from the OS's randomness (through a v4 UUID), for the agent.
    pub fn from_entropy() -> SplitMix64 {
        let (hi, _) = uuid::Uuid::new_v4().as_u64_pair();
        SplitMix64(hi)
    }
}

impl Jitter for SplitMix64 {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Restart bookkeeping for one task.
pub struct RestartTracker {
    policy: RestartPolicy,
    batch: bool,
    /// Restarts counted in the current interval.
    count: u32,
    interval_start: Option<Instant>,
    /// Failures since the task last ran longer than the interval: drives the back-off.
    streak: u32,
    last_start: Option<Instant>,
    jitter: Box<dyn Jitter>,
}

impl RestartTracker {
    /// `job_type` is the job's `type`; `batch` and `sysbatch` tasks complete on exit 0.
    pub fn new(policy: RestartPolicy, job_type: &str, jitter: Box<dyn Jitter>) -> RestartTracker {
        RestartTracker {
            policy,
            batch: matches!(job_type, "batch" | "sysbatch"),
            count: 0,
            interval_start: None,
            streak: 0,
            last_start: None,
            jitter,
        }
    }

    pub fn policy(&self) -> &RestartPolicy {
        &self.policy
    }

    /// The task started (or was re-attached) at `now`.
    pub fn on_started(&mut self, now: Instant) {
        self.last_start = Some(now);
    }

    /// The task ended with `exit` at `now`.
    pub fn on_exit(&mut self, now: Instant, exit: &ExitResult) -> RestartDecision {
        if self.batch && exit.successful() {
            return RestartDecision::Terminated;
        }
        if let Some(start) = self.last_start.take()
            && now.saturating_duration_since(start) >= self.policy.interval
        {
            // It ran well for a whole interval: this is a new problem, not the same loop.
            self.streak = 0;
        }
        self.decide(now)
    }

    /// Something asked for a restart because the task is unhealthy (`check_restart`): counted
    /// as a failure whatever the exit code, as Nomad's `SetRestartTriggered(failure)` does.
    pub fn on_restart_signaled(&mut self, now: Instant) -> RestartDecision {
        if let Some(start) = self.last_start.take()
            && now.saturating_duration_since(start) >= self.policy.interval
        {
            self.streak = 0;
        }
        self.decide(now)
    }

    /// The driver could not start the task.
    pub fn on_start_error(&mut self, now: Instant, err: &DriverError) -> RestartDecision {
        if !err.is_recoverable() {
            return RestartDecision::NotRestarting {
                reason: REASON_UNRECOVERABLE.to_string(),
            };
        }
        self.last_start = None;
        self.decide(now)
    }

    /// Something the task needs before it can start failed (an artifact download); retrying
    /// may succeed, so it counts like a failed start (Nomad's recoverable prestart errors).
    pub fn on_prestart_error(&mut self, now: Instant, recoverable: bool) -> RestartDecision {
        if !recoverable {
            return RestartDecision::NotRestarting {
                reason: REASON_UNRECOVERABLE.to_string(),
            };
        }
        self.last_start = None;
        self.decide(now)
    }

    fn decide(&mut self, now: Instant) -> RestartDecision {
        if self.policy.attempts == 0 && self.policy.mode == RestartMode::Fail {
            return RestartDecision::NotRestarting {
                reason: REASON_NO_RESTARTS.to_string(),
            };
        }
        let start = match self.interval_start {
            Some(s) if now.saturating_duration_since(s) <= self.policy.interval => s,
            _ => {
                self.count = 0;
                self.interval_start = Some(now);
                now
            }
        };
        self.count += 1;
        self.streak += 1;
        if self.count > self.policy.attempts {
            let attempts = self.policy.attempts;
            let interval = humantime(self.policy.interval);
            return match self.policy.mode {
                RestartMode::Fail => RestartDecision::NotRestarting {
                    reason: format!(
                        "Exceeded allowed attempts {attempts} in interval {interval} and mode is \"fail\""
                    ),
                },
                RestartMode::Delay => {
                    let until_next = (start + self.policy.interval).saturating_duration_since(now);
                    let delay = until_next.max(self.backoff());
                    // The wait spans into the next interval, which starts counting afresh.
                    self.count = 0;
                    self.interval_start = None;
                    RestartDecision::Restart {
                        delay,
                        reason: format!(
                            "Exceeded allowed attempts {attempts} in interval {interval} and mode is \"delay\", delaying for {}",
                            humantime(delay)
                        ),
                    }
                }
            };
        }
        RestartDecision::Restart {
            delay: self.backoff(),
            reason: REASON_WITHIN_POLICY.to_string(),
        }
    }

    /// The delay for the current streak: quick first, then `delay` doubling up to the cap,
    /// plus up to 25% jitter.
    fn backoff(&mut self) -> Duration {
        backoff_delay(&self.policy, self.streak.max(1), self.jitter.next_unit())
    }
}

/// The back-off curve as one function: failure `n` (1-based) of a streak waits
/// `min(delay, 1s)` for n = 1, then `delay · 2^(n-2)` capped at `max(delay, 5m)`, each plus
/// `unit · 25%` of itself.
pub fn backoff_delay(policy: &RestartPolicy, n: u32, unit: f64) -> Duration {
    let cap = policy.delay.max(MAX_BACKOFF);
    let base = if n <= 1 {
        policy.delay.min(QUICK_RESTART)
    } else {
        let factor = 2u32.saturating_pow((n - 2).min(20));
        policy.delay.saturating_mul(factor).min(cap)
    };
    base + base.mul_f64(JITTER_FRACTION * unit.clamp(0.0, 1.0))
}

/// `30m0s`-style durations, as Nomad prints them in reasons.
fn humantime(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let frac = d.subsec_millis();
    let s = if frac > 0 {
        format!("{s}.{frac:03}s")
    } else {
        format!("{s}s")
    };
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitResult {
        ExitResult {
            exit_code: code,
            ..ExitResult::default()
        }
    }

    /// Jitter that always returns the same value.
    struct Fixed(f64);
    impl Jitter for Fixed {
        fn next_unit(&mut self) -> f64 {
            self.0
        }
    }

    fn tracker(policy: RestartPolicy, job_type: &str) -> RestartTracker {
        RestartTracker::new(policy, job_type, Box::new(Fixed(0.0)))
    }

    fn delay_of(d: RestartDecision) -> Duration {
        match d {
            RestartDecision::Restart { delay, .. } => delay,
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn service_default_restarts_twice_then_fails() {
        let t0 = Instant::now();
        let mut t = tracker(RestartPolicy::service_default(), "service");
        t.on_started(t0);
        let d = t.on_exit(t0 + S, &exit(1));
        assert_eq!(
            d,
            RestartDecision::Restart {
                delay: QUICK_RESTART,
                reason: REASON_WITHIN_POLICY.into()
            }
        );
        t.on_started(t0 + 2 * S);
        assert_eq!(delay_of(t.on_exit(t0 + 3 * S, &exit(1))), 15 * S);
        t.on_started(t0 + 20 * S);
        match t.on_exit(t0 + 21 * S, &exit(1)) {
            RestartDecision::NotRestarting { reason } => assert_eq!(
                reason,
                "Exceeded allowed attempts 2 in interval 30m0s and mode is \"fail\""
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_service_that_exits_zero_is_restarted_but_a_batch_task_completes() {
        let t0 = Instant::now();
        let mut svc = tracker(RestartPolicy::service_default(), "service");
        assert!(matches!(
            svc.on_exit(t0, &exit(0)),
            RestartDecision::Restart { .. }
        ));
        let mut batch = tracker(RestartPolicy::batch_default(), "batch");
        assert_eq!(batch.on_exit(t0, &exit(0)), RestartDecision::Terminated);
        assert!(matches!(
            batch.on_exit(t0, &exit(2)),
            RestartDecision::Restart { .. }
        ));
        let oom = ExitResult {
            oom_killed: true,
            ..ExitResult::default()
        };
        assert!(matches!(
            batch.on_exit(t0, &oom),
            RestartDecision::Restart { .. }
        ));
    }

    #[test]
    fn attempts_are_counted_per_interval() {
        let t0 = Instant::now();
        let mut t = tracker(RestartPolicy::service_default(), "service");
        t.on_exit(t0, &exit(1));
        t.on_exit(t0 + S, &exit(1));
        // The interval (30m) has passed: the count starts again.
        let later = t0 + Duration::from_secs(31 * 60);
        assert!(matches!(
            t.on_exit(later, &exit(1)),
            RestartDecision::Restart { .. }
        ));
        assert!(matches!(
            t.on_exit(later + S, &exit(1)),
            RestartDecision::Restart { .. }
        ));
        assert!(matches!(
            t.on_exit(later + 2 * S, &exit(1)),
            RestartDecision::NotRestarting { .. }
        ));
    }

    #[test]
    fn mode_delay_waits_for_the_next_interval() {
        let t0 = Instant::now();
        let policy = RestartPolicy {
            attempts: 1,
            interval: Duration::from_secs(600),
            delay: Duration::from_secs(5),
            mode: RestartMode::Delay,
            render_templates: false,
        };
        let mut t = tracker(policy, "service");
        assert_eq!(delay_of(t.on_exit(t0, &exit(1))), S);
        match t.on_exit(t0 + 100 * S, &exit(1)) {
            RestartDecision::Restart { delay, reason } => {
                assert_eq!(delay, 500 * S);
                assert_eq!(
                    reason,
                    "Exceeded allowed attempts 1 in interval 10m0s and mode is \"delay\", delaying for 8m20s"
                );
            }
            other => panic!("{other:?}"),
        }
        // After the wait, a new interval: within policy again.
        let d = t.on_exit(t0 + 700 * S, &exit(1));
        assert!(
            matches!(d, RestartDecision::Restart { ref reason, .. } if reason == REASON_WITHIN_POLICY)
        );
    }

    #[test]
    fn a_crash_loop_backs_off_exponentially_to_the_cap() {
        let t0 = Instant::now();
        let policy = RestartPolicy {
            attempts: 1000,
            interval: Duration::from_secs(3600),
            delay: Duration::from_secs(10),
            mode: RestartMode::Delay,
            render_templates: false,
        };
        let mut t = tracker(policy, "service");
        let mut now = t0;
        let delays: Vec<u64> = (0..9)
            .map(|_| {
                t.on_started(now);
                now += S;
                let d = delay_of(t.on_exit(now, &exit(1)));
                now += d;
                d.as_secs()
            })
            .collect();
        assert_eq!(delays, vec![1, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn a_long_run_resets_the_back_off() {
        let t0 = Instant::now();
        let policy = RestartPolicy {
            attempts: 10,
            interval: Duration::from_secs(60),
            delay: Duration::from_secs(10),
            mode: RestartMode::Fail,
            render_templates: false,
        };
        let mut t = tracker(policy, "service");
        t.on_started(t0);
        assert_eq!(delay_of(t.on_exit(t0 + S, &exit(1))), S);
        t.on_started(t0 + 2 * S);
        assert_eq!(delay_of(t.on_exit(t0 + 3 * S, &exit(1))), 10 * S);
        // Runs for longer than the interval, then crashes: quick again.
        t.on_started(t0 + 20 * S);
        assert_eq!(delay_of(t.on_exit(t0 + 200 * S, &exit(1))), S);
    }

    #[test]
    fn start_errors_count_unless_unrecoverable() {
        let t0 = Instant::now();
        let mut t = tracker(RestartPolicy::service_default(), "service");
        let bad = DriverError::InvalidConfig {
            alloc_id: "a".into(),
            task: "t".into(),
            field: "config.image".into(),
            message: "empty".into(),
        };
        assert_eq!(
            t.on_start_error(t0, &bad),
            RestartDecision::NotRestarting {
                reason: REASON_UNRECOVERABLE.into()
            }
        );
        let transient = DriverError::EngineUnavailable {
            driver: "docker",
            message: "down".into(),
        };
        assert!(matches!(
            t.on_start_error(t0, &transient),
            RestartDecision::Restart { .. }
        ));
        assert!(matches!(
            t.on_start_error(t0 + S, &transient),
            RestartDecision::Restart { .. }
        ));
        assert!(matches!(
            t.on_start_error(t0 + 2 * S, &transient),
            RestartDecision::NotRestarting { .. }
        ));
    }

    #[test]
    fn zero_attempts_never_restart() {
        let policy = RestartPolicy {
            attempts: 0,
            ..RestartPolicy::service_default()
        };
        let mut t = tracker(policy, "service");
        assert_eq!(
            t.on_exit(Instant::now(), &exit(1)),
            RestartDecision::NotRestarting {
                reason: REASON_NO_RESTARTS.into()
            }
        );
    }

    #[test]
    fn jitter_is_seeded_and_bounded() {
        let policy = RestartPolicy::service_default();
        let run = |seed| {
            let mut t =
                RestartTracker::new(policy.clone(), "service", Box::new(SplitMix64::new(seed)));
            let t0 = Instant::now();
            (0..2)
                .map(|i| delay_of(t.on_exit(t0 + i * S, &exit(1))))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        for d in run(42) {
            assert!(d >= S && d < Duration::from_secs(19), "{d:?}");
        }
        let first = run(42)[0];
        assert!(first >= S && first < S.mul_f64(1.25), "{first:?}");
        let mut rng = SplitMix64::new(1);
        assert!(
            (0..1000)
                .map(|_| rng.next_unit())
                .all(|u| (0.0..1.0).contains(&u))
        );
    }
}
