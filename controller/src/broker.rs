//! The evaluation broker (after Nomad's `eval_broker.go` and kube-rs' scheduler/runner): the
//! work queue between triggers and workers, keyed by job. At most one evaluation per job waits
//! and at most one runs: a newer trigger for a job that already waits replaces it (the older is
//! superseded, to be marked canceled) and keeps its place in line; a trigger for a job that is
//! running waits until that one is acked. Delayed evaluations (`wait_until`) sit in a heap until
//! due. Delivery is at least once: a nacked evaluation comes back after a back-off, until the
//! delivery limit fails it. The broker is in memory; evaluations are persisted by the store, and
//! a restart re-enqueues the pending ones.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::structs::{Evaluation, unix_nanos};

/// Why the broker refused an ack or nack.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BrokerError {
    #[error("failed to settle evaluation {eval_id}: it is not outstanding")]
    NotOutstanding { eval_id: String },
    #[error("failed to settle evaluation {eval_id}: the token does not match its delivery")]
    TokenMismatch { eval_id: String },
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Deliveries before a nacked evaluation is failed (Nomad's `EvalDeliveryLimit`).
    pub delivery_limit: u32,
    /// Back-off after a nack, multiplied by the number of deliveries so far.
    pub nack_delay: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            delivery_limit: 3,
            nack_delay: Duration::from_secs(1),
        }
    }
}

/// What happened to a nacked evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackOutcome {
    /// It will be delivered again after the back-off.
    Requeued,
    /// The delivery limit is reached: mark it failed.
    Failed,
}

/// Counts for metrics and `drover status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    pub ready: usize,
    pub delayed: usize,
    pub inflight: usize,
}

type JobKey = (String, String);

fn key(e: &Evaluation) -> JobKey {
    (e.namespace.clone(), e.job_id.clone())
}

#[derive(Default)]
struct State {
    /// Line order: sequence number → job.
    order: BTreeMap<u64, JobKey>,
    /// The one due evaluation per job, with its place in line.
    pending: HashMap<JobKey, (u64, Evaluation)>,
    /// The job's evaluation a worker holds: (eval id, token).
    inflight: HashMap<JobKey, (String, String)>,
    delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    delayed_evals: HashMap<u64, Evaluation>,
    deliveries: HashMap<String, u32>,
    superseded: Vec<Evaluation>,
    seq: u64,
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Makes `eval` its job's due evaluation, merging with one already waiting.
    fn make_ready(&mut self, eval: Evaluation) {
        let k = key(&eval);
        match self.pending.remove(&k) {
            Some((seq, older)) => {
                self.superseded.push(older);
                self.pending.insert(k, (seq, eval));
            }
            None => {
                let seq = self.next_seq();
                self.order.insert(seq, k.clone());
                self.pending.insert(k, (seq, eval));
            }
        }
    }

    fn promote_due(&mut self, now: Instant) {
        while let Some(Reverse((at, seq))) = self.delayed.peek().copied() {
            if at > now {
                break;
            }
            self.delayed.pop();
            if let Some(eval) = self.delayed_evals.remove(&seq) {
                self.make_ready(eval);
            }
        }
    }

    fn take_deliverable(&mut self) -> Option<Evaluation> {
        let seq = self
            .order
            .iter()
            .find(|(_, k)| !self.inflight.contains_key(*k))
            .map(|(seq, _)| *seq)?;
        let k = self.order.remove(&seq)?;
        let (_, eval) = self.pending.remove(&k)?;
        Some(eval)
    }
}

/// The broker. Share it behind an `Arc`.
pub struct Broker {
    state: Mutex<State>,
    notify: Notify,
    config: BrokerConfig,
}

impl Default for Broker {
    fn default() -> Self {
        Broker::new(BrokerConfig::default())
    }
}

impl Broker {
    pub fn new(config: BrokerConfig) -> Self {
        Broker {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain data updated in short sections; a panic mid-way cannot leave it
        // worse than a lost wakeup.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enqueues an evaluation, delayed until its `wait_until` (wall clock, unix nanoseconds).
    pub fn enqueue(&self, eval: Evaluation) {
        self.enqueue_at(eval, unix_nanos(SystemTime::now()));
    }

    /// [`Broker::enqueue`] with the wall-clock time passed in.
    pub fn enqueue_at(&self, eval: Evaluation, now: i64) {
        let delay = eval
            .wait_until
            .map(|t| t.saturating_sub(now))
            .filter(|d| *d > 0)
            .map(|d| Duration::from_nanos(d as u64));
        let mut st = self.lock();
        match delay {
            Some(d) => {
                let seq = st.next_seq();
                st.delayed.push(Reverse((Instant::now() + d, seq)));
                st.delayed_evals.insert(seq, eval);
            }
            None => st.make_ready(eval),
        }
        drop(st);
        self.notify.notify_waiters();
    }

    /// Waits for the next evaluation no other worker holds a sibling of. Returns it with the
    /// token to ack or nack it with.
    pub async fn dequeue(&self) -> (Evaluation, String) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut st = self.lock();
                st.promote_due(Instant::now());
                if let Some(eval) = st.take_deliverable() {
                    let token = uuid::Uuid::new_v4().to_string();
                    st.inflight
                        .insert(key(&eval), (eval.id.clone(), token.clone()));
                    *st.deliveries.entry(eval.id.clone()).or_default() += 1;
                    return (eval, token);
                }
                st.delayed.peek().map(|Reverse((at, _))| *at)
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    fn settle(&self, st: &mut State, eval: &Evaluation, token: &str) -> Result<(), BrokerError> {
        let k = key(eval);
        match st.inflight.get(&k) {
            Some((id, t)) if *id == eval.id && t == token => {
                st.inflight.remove(&k);
                Ok(())
            }
            Some((id, _)) if *id == eval.id => Err(BrokerError::TokenMismatch {
                eval_id: eval.id.clone(),
            }),
            _ => Err(BrokerError::NotOutstanding {
                eval_id: eval.id.clone(),
            }),
        }
    }

    /// The evaluation is done; its job may run again.
    pub fn ack(&self, eval: &Evaluation, token: &str) -> Result<(), BrokerError> {
        let mut st = self.lock();
        self.settle(&mut st, eval, token)?;
        st.deliveries.remove(&eval.id);
        drop(st);
        self.notify.notify_waiters();
        Ok(())
    }

    /// The evaluation could not be processed: deliver it again after a back-off, or fail it at
    /// the delivery limit.
    pub fn nack(&self, eval: &Evaluation, token: &str) -> Result<NackOutcome, BrokerError> {
        let mut st = self.lock();
        self.settle(&mut st, eval, token)?;
        let deliveries = st.deliveries.get(&eval.id).copied().unwrap_or(1);
        let outcome = if deliveries >= self.config.delivery_limit {
            st.deliveries.remove(&eval.id);
            NackOutcome::Failed
        } else {
            let seq = st.next_seq();
            let at = Instant::now() + self.config.nack_delay * deliveries;
            st.delayed.push(Reverse((at, seq)));
            st.delayed_evals.insert(seq, eval.clone());
            NackOutcome::Requeued
        };
        drop(st);
        self.notify.notify_waiters();
        Ok(outcome)
    }

    /// Evaluations replaced by a newer one for the same job since the last call: the caller
    /// marks them canceled.
    pub fn take_superseded(&self) -> Vec<Evaluation> {
        std::mem::take(&mut self.lock().superseded)
    }

    pub fn stats(&self) -> BrokerStats {
        let st = self.lock();
        BrokerStats {
            ready: st.pending.len(),
            delayed: st.delayed_evals.len(),
            inflight: st.inflight.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::EvalTrigger;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn eval(job: &str, trigger: EvalTrigger) -> Evaluation {
        Evaluation::new(job, "default", trigger, NOW)
    }

    async fn nothing_within(b: &Broker, d: Duration) -> bool {
        tokio::time::timeout(d, b.dequeue()).await.is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn newer_triggers_merge_into_one_pending_eval_per_job() {
        let b = Broker::default();
        let first = eval("web", EvalTrigger::JobRegister);
        let second = eval("web", EvalTrigger::Scheduled);
        let other = eval("db", EvalTrigger::JobRegister);
        b.enqueue_at(first.clone(), NOW);
        b.enqueue_at(other.clone(), NOW);
        b.enqueue_at(second.clone(), NOW);
        assert_eq!(b.stats().ready, 2);
        // `web` keeps its place in line but runs as the newer evaluation.
        let (got, _) = b.dequeue().await;
        assert_eq!(got.id, second.id);
        let (got, _) = b.dequeue().await;
        assert_eq!(got.id, other.id);
        let superseded: Vec<String> = b.take_superseded().into_iter().map(|e| e.id).collect();
        assert_eq!(superseded, [first.id]);
        assert!(nothing_within(&b, Duration::from_secs(60)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn never_two_workers_on_one_job() {
        let b = Broker::default();
        b.enqueue_at(eval("web", EvalTrigger::JobRegister), NOW);
        let (running, token) = b.dequeue().await;
        let again = eval("web", EvalTrigger::AllocStop);
        b.enqueue_at(again.clone(), NOW);
        b.enqueue_at(eval("db", EvalTrigger::JobRegister), NOW);
        let (got, db_token) = b.dequeue().await;
        assert_eq!(got.job_id, "db", "web is held; db may run");
        assert!(nothing_within(&b, Duration::from_secs(5)).await);
        b.ack(&running, &token).expect("ack");
        let (got, _) = b.dequeue().await;
        assert_eq!(got.id, again.id);
        assert_eq!(
            b.ack(&running, &token),
            Err(BrokerError::NotOutstanding {
                eval_id: running.id.clone()
            })
        );
        assert!(
            b.ack(&got, &db_token).is_err(),
            "a token belongs to one delivery"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_evals_wait_until_due() {
        let b = Broker::default();
        let mut e = eval("web", EvalTrigger::RetryFailedAlloc);
        e.wait_until = Some(NOW + 30_000_000_000);
        b.enqueue_at(e.clone(), NOW);
        assert_eq!(b.stats().delayed, 1);
        assert!(nothing_within(&b, Duration::from_secs(29)).await);
        let (got, _) = tokio::time::timeout(Duration::from_secs(2), b.dequeue())
            .await
            .expect("due at 30s");
        assert_eq!(got.id, e.id);
    }

    #[tokio::test(start_paused = true)]
    async fn a_delayed_eval_does_not_swallow_an_immediate_one() {
        let b = Broker::default();
        let mut later = eval("web", EvalTrigger::RetryFailedAlloc);
        later.wait_until = Some(NOW + 30_000_000_000);
        let now = eval("web", EvalTrigger::JobRegister);
        b.enqueue_at(later.clone(), NOW);
        b.enqueue_at(now.clone(), NOW);
        let (got, token) = b.dequeue().await;
        assert_eq!(got.id, now.id);
        b.ack(&got, &token).expect("ack");
        tokio::time::advance(Duration::from_secs(30)).await;
        let (got, _) = b.dequeue().await;
        assert_eq!(got.id, later.id);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_worker_wakes_on_enqueue() {
        let b = std::sync::Arc::new(Broker::default());
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.dequeue().await.0.job_id }
        });
        tokio::task::yield_now().await;
        b.enqueue_at(eval("web", EvalTrigger::JobRegister), NOW);
        assert_eq!(waiter.await.expect("joined"), "web");
    }

    #[tokio::test(start_paused = true)]
    async fn nack_requeues_with_backoff_until_the_delivery_limit() {
        let b = Broker::new(BrokerConfig {
            delivery_limit: 2,
            nack_delay: Duration::from_secs(10),
        });
        b.enqueue_at(eval("web", EvalTrigger::JobRegister), NOW);
        let (e, token) = b.dequeue().await;
        assert_eq!(b.nack(&e, &token), Ok(NackOutcome::Requeued));
        assert!(nothing_within(&b, Duration::from_secs(9)).await);
        let (again, token) = b.dequeue().await;
        assert_eq!(again.id, e.id);
        assert_eq!(b.nack(&again, &token), Ok(NackOutcome::Failed));
        assert!(nothing_within(&b, Duration::from_secs(600)).await);
    }
}
