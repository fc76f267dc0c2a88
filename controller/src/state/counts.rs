//! Counts of jobs, allocations and nodes by status, for `/metrics` and systemd's `STATUS=`
//! line. Allocations and nodes are counted by SQLite with `GROUP BY` on plain columns, jobs by
//! status from the job summary ([`JobSummary::status`]), without decoding a job or allocation
//! body, so a scrape stays cheap with thousands of jobs.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::{JobSummary, Store, StoreError, sql};
use crate::structs::{ClientStatus, NodeStatus};

/// Jobs by Nomad's job status (`pending`, `running`, `dead`), allocations by client status,
/// nodes by status. Every known status is present, with 0 when nothing has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub jobs: BTreeMap<&'static str, u64>,
    pub allocations: BTreeMap<&'static str, u64>,
    pub nodes: BTreeMap<&'static str, u64>,
}

impl StateCounts {
    pub fn jobs_total(&self) -> u64 {
        self.jobs.values().sum()
    }
}

/// Nomad's job statuses, as `api::convert::job_status` computes them one job at a time.
pub const JOB_STATUSES: [&str; 3] = ["pending", "running", "dead"];

impl Store {
    pub fn counts(&self) -> Result<StateCounts, StoreError> {
        let jobs = self.job_summaries()?;
        self.counts_with(&jobs)
    }

    /// The counts, with jobs by status taken from `jobs` (what `/metrics` read already).
    pub fn counts_with(&self, jobs: &[JobSummary]) -> Result<StateCounts, StoreError> {
        let mut by_status: BTreeMap<&'static str, u64> =
            JOB_STATUSES.iter().map(|s| (*s, 0)).collect();
        for j in jobs {
            *by_status.entry(j.status()).or_default() += 1;
        }
        let conn = self.lock();
        Ok(StateCounts {
            jobs: by_status,
            allocations: grouped(
                &conn,
                "SELECT client_status, count(*) FROM allocations GROUP BY client_status",
                ClientStatus::ALL.map(ClientStatus::as_str),
                "count allocations by client status",
            )?,
            nodes: grouped(
                &conn,
                "SELECT status, count(*) FROM nodes GROUP BY status",
                NodeStatus::ALL.map(NodeStatus::as_str),
                "count nodes by status",
            )?,
        })
    }
}

fn grouped<const N: usize>(
    conn: &Connection,
    query: &str,
    known: [&'static str; N],
    what: &str,
) -> Result<BTreeMap<&'static str, u64>, StoreError> {
    let mut out: BTreeMap<&'static str, u64> = known.iter().map(|k| (*k, 0)).collect();
    let mut stmt = conn.prepare_cached(query).map_err(sql(what))?;
    let rows: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(sql(what))?;
    for (status, n) in rows {
        // A status this build does not know (a newer database) is left out rather than
        // invented as a label value.
        if let Some(k) = known.iter().find(|k| **k == status) {
            *out.entry(k).or_default() += n.max(0) as u64;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{JobSource, PlanWrite};
    use crate::structs::mock::{self, MockJob};

    #[test]
    fn counts_follow_the_api_job_status_rule() {
        let store = Store::open_in_memory().expect("open");
        store.upsert_node(mock::node()).expect("node");
        let empty = store.counts().expect("counts");
        assert_eq!(empty.jobs_total(), 0);
        assert_eq!(empty.nodes["ready"], 1);
        assert_eq!(empty.allocations["running"], 0);

        let job = |id: &str| {
            mock::job().with(|j| {
                j.id = id.into();
                j.name = id.into();
            })
        };
        // pending: registered, nothing placed.
        store
            .register_job(job("p"), &JobSource::Api, 0)
            .expect("register");
        // running: one allocation placed (pending on the client counts as live).
        let running = job("r");
        store
            .register_job(running.clone(), &JobSource::Api, 0)
            .expect("register");
        let alloc = mock::alloc(&running, 0);
        store
            .commit_plan(
                "r",
                PlanWrite {
                    allocs: vec![alloc],
                    evals: vec![],
                    guard: None,
                },
            )
            .expect("place");
        // dead: stopped.
        store
            .register_job(job("s"), &JobSource::Api, 0)
            .expect("register");
        store
            .deregister_job("default", "s", false, None, 0)
            .expect("stop");

        let c = store.counts().expect("counts");
        assert_eq!(
            (c.jobs["pending"], c.jobs["running"], c.jobs["dead"]),
            (1, 1, 1),
            "{c:?}"
        );
        assert_eq!(c.allocations.values().sum::<u64>(), 1, "{c:?}");
    }
}
