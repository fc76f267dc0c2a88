//! Nomad's job summary, per job and task group: the group's `count` in the job's latest
//! version and its allocations by client status, read with two indexed SQL queries over
//! plain columns (no job or allocation body is decoded), so `/metrics` and the status page
//! stay cheap with thousands of jobs.

use std::collections::{BTreeMap, HashMap};

use rusqlite::Connection;

use super::{JobSource, Store, StoreError, sql};
use crate::structs::{ClientStatus, DesiredStatus, JobType};

/// One task group of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group's `count` in the job's latest version; `None` for a group only allocations
    /// of an older version still name.
    pub count: Option<u32>,
    /// Every allocation the store holds for the group, by client status (what Nomad's job
    /// summary counts: `Starting` is `pending`).
    pub allocs: BTreeMap<ClientStatus, u64>,
    /// Of those, the ones the server still wants to run (desired status `run`).
    pub wanted: BTreeMap<ClientStatus, u64>,
    /// Failed allocations nothing replaced: what the group is short of.
    pub failed_unreplaced: u64,
}

impl GroupSummary {
    /// Allocations wanted and reported in `status`.
    pub fn wanted(&self, status: ClientStatus) -> u64 {
        self.wanted.get(&status).copied().unwrap_or(0)
    }

    /// Allocations that may still run: wanted, and not finished on their node.
    pub fn live(&self) -> u64 {
        self.wanted
            .iter()
            .filter(|(s, _)| {
                !matches!(
                    s,
                    ClientStatus::Complete | ClientStatus::Failed | ClientStatus::Lost
                )
            })
            .map(|(_, n)| n)
            .sum()
    }
}

/// A job's head and its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub namespace: String,
    pub id: String,
    pub name: String,
    /// `None` for a type this build does not know.
    pub job_type: Option<JobType>,
    pub version: u64,
    pub stop: bool,
    pub source: JobSource,
    pub submit_time: i64,
    /// By group name.
    pub groups: BTreeMap<String, GroupSummary>,
}

impl JobSummary {
    /// The same rule as `api::convert::job_status`: `dead` when stopped, `running` while an
    /// allocation may run, `dead` for a batch-like job whose allocations all finished,
    /// otherwise `pending`.
    pub fn status(&self) -> &'static str {
        if self.stop {
            return "dead";
        }
        if self.groups.values().any(|g| g.live() > 0) {
            return "running";
        }
        let any = self
            .groups
            .values()
            .any(|g| g.allocs.values().any(|n| *n > 0));
        if any && self.job_type.is_some_and(JobType::is_batch_like) {
            return "dead";
        }
        "pending"
    }

    /// The sum of the groups' counts; 0 for a stopped job.
    pub fn desired(&self) -> u64 {
        if self.stop {
            return 0;
        }
        self.groups
            .values()
            .filter_map(|g| g.count)
            .map(u64::from)
            .sum()
    }

    /// Allocations wanted and reported in `status`, over every group.
    pub fn wanted(&self, status: ClientStatus) -> u64 {
        self.groups.values().map(|g| g.wanted(status)).sum()
    }
}

impl Store {
    /// Every job's summary, by namespace and id.
    pub fn job_summaries(&self) -> Result<Vec<JobSummary>, StoreError> {
        let conn = self.lock();
        summaries(&conn, None)
    }

    /// One job's summary.
    pub fn job_summary(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Result<Option<JobSummary>, StoreError> {
        let conn = self.lock();
        Ok(summaries(&conn, Some((namespace, job_id)))?.pop())
    }
}

type Key = (String, String);

fn summaries(conn: &Connection, only: Option<(&str, &str)>) -> Result<Vec<JobSummary>, StoreError> {
    let what = "read the job summaries";
    // `?1 IS NULL` keeps one statement (and one cached plan) for all jobs and for one.
    let (ns, id) = only.unzip();
    let mut out: Vec<JobSummary> = Vec::new();
    let mut at: HashMap<Key, usize> = HashMap::new();
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT h.namespace, h.id, h.name, h.job_type, h.version, h.stop, h.source,
                        h.submit_time, g.task_group, g.count
                 FROM job_heads h LEFT JOIN job_groups g
                   ON g.namespace = h.namespace AND g.id = h.id AND g.version = h.version
                 WHERE ?1 IS NULL OR (h.namespace = ?1 AND h.id = ?2)
                 ORDER BY h.namespace, h.id",
            )
            .map_err(sql(what))?;
        let mut rows = stmt.query(rusqlite::params![ns, id]).map_err(sql(what))?;
        while let Some(r) = rows.next().map_err(sql(what))? {
            let key: Key = (r.get(0).map_err(sql(what))?, r.get(1).map_err(sql(what))?);
            let i = match at.get(&key) {
                Some(i) => *i,
                None => {
                    let job_type: String = r.get(3).map_err(sql(what))?;
                    let source: String = r.get(6).map_err(sql(what))?;
                    out.push(JobSummary {
                        namespace: key.0.clone(),
                        id: key.1.clone(),
                        name: r.get(2).map_err(sql(what))?,
                        job_type: JobType::parse(&job_type),
                        version: r.get::<_, i64>(4).map_err(sql(what))?.max(0) as u64,
                        stop: r.get(5).map_err(sql(what))?,
                        source: JobSource::decode(&source),
                        submit_time: r.get(7).map_err(sql(what))?,
                        groups: BTreeMap::new(),
                    });
                    at.insert(key, out.len() - 1);
                    out.len() - 1
                }
            };
            let group: Option<String> = r.get(8).map_err(sql(what))?;
            let count: Option<i64> = r.get(9).map_err(sql(what))?;
            if let (Some(group), Some(count)) = (group, count) {
                out[i].groups.entry(group).or_default().count =
                    Some(u32::try_from(count.max(0)).unwrap_or(u32::MAX));
            }
        }
    }
    // Read from the `allocations_summary` index alone: no row, no body.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT namespace, job_id, task_group, client_status,
                    desired_status NOT IN ('{stop}', '{evict}') AS wanted, count(*)
             FROM allocations
             WHERE ?1 IS NULL OR (namespace = ?1 AND job_id = ?2)
             GROUP BY namespace, job_id, task_group, client_status, wanted",
            stop = DesiredStatus::Stop.as_str(),
            evict = DesiredStatus::Evict.as_str(),
        ))
        .map_err(sql(what))?;
    let mut rows = stmt.query(rusqlite::params![ns, id]).map_err(sql(what))?;
    while let Some(r) = rows.next().map_err(sql(what))? {
        let Some(g) = group_of(&mut out, &at, r).map_err(sql(what))? else {
            continue;
        };
        let status: String = r.get(3).map_err(sql(what))?;
        // A status this build does not know (a newer database) is left out.
        let Some(status) = ClientStatus::parse(&status) else {
            continue;
        };
        let wanted: bool = r.get(4).map_err(sql(what))?;
        let n = r.get::<_, i64>(5).map_err(sql(what))?.max(0) as u64;
        *g.allocs.entry(status).or_default() += n;
        if wanted {
            *g.wanted.entry(status).or_default() += n;
        }
    }
    drop(rows);
    // Only failed allocations' bodies are looked into: the index filters them first.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT namespace, job_id, task_group, count(*) FROM allocations
             WHERE client_status = '{failed}' AND json_extract(body, '$.next_allocation') IS NULL
               AND (?1 IS NULL OR (namespace = ?1 AND job_id = ?2))
             GROUP BY namespace, job_id, task_group",
            failed = ClientStatus::Failed.as_str(),
        ))
        .map_err(sql(what))?;
    let mut rows = stmt.query(rusqlite::params![ns, id]).map_err(sql(what))?;
    while let Some(r) = rows.next().map_err(sql(what))? {
        let Some(g) = group_of(&mut out, &at, r).map_err(sql(what))? else {
            continue;
        };
        g.failed_unreplaced += r.get::<_, i64>(3).map_err(sql(what))?.max(0) as u64;
    }
    Ok(out)
}

/// The group a row's namespace, job id and group (its first three columns) name. `None` for
/// allocations of a purged job, which wait for the scheduler to stop them and belong to no job
/// the summary lists.
fn group_of<'a>(
    out: &'a mut [JobSummary],
    at: &HashMap<Key, usize>,
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Option<&'a mut GroupSummary>> {
    let key: Key = (r.get(0)?, r.get(1)?);
    let Some(i) = at.get(&key) else {
        return Ok(None);
    };
    let group: String = r.get(2)?;
    Ok(Some(out[*i].groups.entry(group).or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PlanWrite;
    use crate::structs::mock::{self, MockAlloc, MockJob};

    #[test]
    fn groups_count_their_allocations_by_client_status() {
        let store = Store::open_in_memory().expect("open");
        let job = mock::job().with(|j| j.task_groups[0].count = 3);
        let group = job.task_groups[0].name.clone();
        store
            .register_job(job.clone(), &JobSource::Api, 0)
            .expect("register");
        let failed = mock::alloc(&job, 2)
            .id("a-2")
            .client_status(ClientStatus::Failed);
        let mut replaced = mock::alloc(&job, 1)
            .id("a-1")
            .client_status(ClientStatus::Failed);
        replaced.next_allocation = Some("a-3".into());
        store
            .commit_plan(
                &job.id,
                PlanWrite {
                    allocs: vec![
                        mock::alloc(&job, 0)
                            .id("a-0")
                            .client_status(ClientStatus::Running),
                        replaced,
                        failed,
                        mock::alloc(&job, 1)
                            .id("a-3")
                            .client_status(ClientStatus::Running)
                            .desired_status(DesiredStatus::Stop),
                    ],
                    evals: vec![],
                    guard: None,
                },
            )
            .expect("place");
        let all = store.job_summaries().expect("summaries");
        assert_eq!(all.len(), 1);
        let s = &all[0];
        assert_eq!((s.status(), s.desired()), ("running", 3));
        let g = &s.groups[&group];
        assert_eq!(g.count, Some(3));
        assert_eq!(g.allocs[&ClientStatus::Running], 2);
        assert_eq!(g.allocs[&ClientStatus::Failed], 2);
        assert_eq!(
            g.wanted(ClientStatus::Running),
            1,
            "a stopping one is not wanted"
        );
        assert_eq!(g.failed_unreplaced, 1);
        assert_eq!(
            store.job_summary("default", &job.id).expect("one").as_ref(),
            Some(s)
        );
        assert_eq!(store.job_summary("default", "nope").expect("none"), None);

        store
            .deregister_job("default", &job.id, false, None, 0)
            .expect("stop");
        let s = store
            .job_summary("default", &job.id)
            .expect("one")
            .expect("kept");
        assert_eq!((s.status(), s.desired()), ("dead", 0));
    }
}
