//! The recorded state: one SQLite database (WAL) holding jobs with every version and their
//! source, parse errors per source file, allocations, evaluations, nodes and task events. One
//! writer (a mutex around the connection, never held across `.await`); every write is one
//! transaction that bumps the raft-like `index` (Nomad's ModifyIndex), and a `watch` channel
//! carries the new index so blocking queries wake. Reads return owned snapshots.
//!
//! The store also keeps the planner's [`ClusterView`] (every node and the usage of every live
//! allocation) in memory once a worker first asks for it: each write hands the view the nodes
//! and allocations it wrote, after the commit and before the connection is released, so the
//! view is always at the store's index and a worker reads from SQLite only the job it plans.

mod counts;
pub use counts::{JOB_STATUSES, StateCounts};
mod schema;
mod summary;
pub use summary::{GroupSummary, JobSummary};
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use drover_runtime::spec::AllocUpdate;

use crate::scheduler::{ClusterSnapshot, ClusterView};
use crate::structs::{
    Allocation, ClientStatus, DesiredStatus, DrainMetadata, DrainStrategy, EvalStatus, EvalTrigger,
    Evaluation, Job, Node, NodeStatus, SchedulingEligibility, TaskEvent,
};

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to open the state database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("failed to migrate the state database to schema version {version}")]
    Migrate {
        version: usize,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the state database has schema version {found}, newer than this drover knows ({known}); refusing to open it"
    )]
    SchemaTooNew { found: usize, known: usize },
    #[error("failed to {what}: the database or its disk is full")]
    Full { what: String },
    #[error("failed to {what}: the database is read-only")]
    ReadOnly { what: String },
    #[error("failed to {what}")]
    Sqlite {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("failed to encode {what}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to decode {what} {id} from the state database")]
    Decode {
        what: &'static str,
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("job {job_id:?} is managed by {owner}; refusing to change it from {attempted}")]
    JobOwned {
        job_id: String,
        owner: JobSource,
        attempted: JobSource,
    },
    #[error("job {job_id:?} not found")]
    JobNotFound { job_id: String },
    #[error("evaluation {eval_id} not found")]
    EvalNotFound { eval_id: String },
    #[error("node {node_id} not found")]
    NodeNotFound { node_id: String },
    #[error(
        "node {node_id}: can not set the node's scheduling eligibility to eligible while it is draining"
    )]
    NodeDraining { node_id: String },
    #[error(
        "failed to apply the plan for job {job_id:?}: allocations on its nodes changed after index {snapshot_index}"
    )]
    StalePlan { job_id: String, snapshot_index: u64 },
}

impl StoreError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::Open { .. } => "open",
            StoreError::Migrate { .. } | StoreError::SchemaTooNew { .. } => "migrate",
            StoreError::Full { .. } => "full",
            StoreError::ReadOnly { .. } => "read_only",
            StoreError::Sqlite { .. } => "sqlite",
            StoreError::Encode { .. } | StoreError::Decode { .. } => "codec",
            StoreError::JobOwned { .. } => "job_owned",
            StoreError::JobNotFound { .. }
            | StoreError::EvalNotFound { .. }
            | StoreError::NodeNotFound { .. } => "not_found",
            StoreError::StalePlan { .. } => "stale_plan",
            StoreError::NodeDraining { .. } => "node_draining",
        }
    }
}

/// Wraps a SQLite error with what was being done, classing a full disk and a read-only
/// database so the operator sees which it is.
fn sql(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| {
        let what = what.into();
        match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full { what },
            Some(rusqlite::ErrorCode::ReadOnly) => StoreError::ReadOnly { what },
            _ => StoreError::Sqlite { what, source },
        }
    }
}

fn encode<T: Serialize>(what: &str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|source| StoreError::Encode {
        what: what.to_string(),
        source,
    })
}

fn decode<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    id: &str,
    body: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Decode {
        what,
        id: id.to_string(),
        source,
    })
}

/// Who owns a job: the file it came from, or the HTTP API. One source per job, so a file and
/// `drover job run` never fight over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobSource {
    File(PathBuf),
    Api,
}

impl JobSource {
    fn encode(&self) -> String {
        match self {
            JobSource::File(p) => format!("file:{}", p.display()),
            JobSource::Api => "api".into(),
        }
    }

    fn decode(s: &str) -> JobSource {
        match s.strip_prefix("file:") {
            Some(p) => JobSource::File(PathBuf::from(p)),
            None => JobSource::Api,
        }
    }
}

impl fmt::Display for JobSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobSource::File(p) => write!(f, "file {}", p.display()),
            JobSource::Api => f.write_str("the API"),
        }
    }
}

/// The latest version of a job with its bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: Job,
    pub source: JobSource,
    pub create_index: u64,
    pub modify_index: u64,
    /// Unix nanoseconds of the latest registration.
    pub submit_time: i64,
}

/// What `register_job` did.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRegistration {
    pub version: u64,
    /// Whether the spec differed from the latest version (and so `version` is new).
    pub changed: bool,
    pub eval: Evaluation,
}

/// One parse error of a manifest file, as `drover status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceError {
    pub path: PathBuf,
    pub line: u32,
    pub col: u32,
    pub field: String,
    pub message: String,
    /// Unix nanoseconds when this file first failed with this error.
    pub first_seen: i64,
    pub last_seen: i64,
}

/// Everything one evaluation plans from, read at one index.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub index: u64,
    /// `None` once the job was purged.
    pub job: Option<Job>,
    pub versions: BTreeMap<u64, Job>,
    /// The job's allocations, plus every other allocation that still holds node resources.
    pub allocs: Vec<Allocation>,
    pub nodes: Vec<Node>,
}

/// What a worker plans one job from, read at one index: the job and its own allocations from
/// SQLite, every node and the usage of every other allocation from the kept [`ClusterView`].
#[derive(Debug, Clone)]
pub struct JobSnapshot {
    pub index: u64,
    /// `None` once the job was purged.
    pub job: Option<Job>,
    pub versions: BTreeMap<u64, Job>,
    /// The job's allocations only.
    pub allocs: Vec<Allocation>,
    pub cluster: ClusterSnapshot,
}

/// A plan turned into rows, written by [`Store::commit_plan`] in one transaction.
#[derive(Debug, Clone, Default)]
pub struct PlanWrite {
    /// New allocations and changed existing ones (stops, in-place updates, follow-up ids).
    pub allocs: Vec<Allocation>,
    /// Follow-up evaluations, and the planning evaluation itself marked complete.
    pub evals: Vec<Evaluation>,
    /// Refuse the write if allocations on these nodes changed after the snapshot the plan
    /// was computed from: another job's plan may have taken the same ports or capacity.
    pub guard: Option<PlanGuard>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanGuard {
    pub snapshot_index: u64,
    pub nodes: Vec<String>,
}

/// An allocation whose client status changed in a client update.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientTransition {
    pub alloc_id: String,
    pub namespace: String,
    pub job_id: String,
    pub from: ClientStatus,
    pub to: ClientStatus,
}

/// What one client update changed: client status transitions and newly reported restarts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientUpdates {
    pub transitions: Vec<ClientTransition>,
    pub restarts: Vec<TaskRestart>,
}

/// A task restart a node reported (a `Restarting` task event seen for the first time).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRestart {
    pub alloc_id: String,
    pub job_id: String,
    pub task: String,
    /// See [`drover_runtime::taskrunner::restart_reason`].
    pub reason: &'static str,
}

/// A task event with the allocation it belongs to, as the status page lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentTaskEvent {
    pub alloc_id: String,
    /// Empty when the allocation is gone.
    pub alloc_name: String,
    pub task: String,
    pub event: TaskEvent,
}

/// The SQL condition for an allocation that may still run, Nomad's `!TerminalStatus()`:
/// the server wants it and the node has not finished it.
fn live_clause() -> String {
    format!(
        "desired_status NOT IN ('{}', '{}') AND client_status NOT IN ('{}', '{}', '{}')",
        DesiredStatus::Stop.as_str(),
        DesiredStatus::Evict.as_str(),
        ClientStatus::Complete.as_str(),
        ClientStatus::Failed.as_str(),
        ClientStatus::Lost.as_str(),
    )
}

/// The state store. Cheap to share behind an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
    index_tx: watch::Sender<u64>,
    /// Built on first use ([`Store::job_snapshot`]), then kept up to date by every write. Locked
    /// only while holding `conn`, so it changes in commit order. `None` again after a write
    /// whose outcome is in doubt: the next reader rebuilds it from the database.
    cluster: Mutex<Option<ClusterView>>,
}

/// A write transaction that notes the nodes and allocations written through it, for the
/// [`ClusterView`].
struct Tx<'c> {
    tx: Transaction<'c>,
    track: bool,
    written: RefCell<Written>,
}

#[derive(Default)]
struct Written {
    nodes: Vec<Node>,
    allocs: Vec<Allocation>,
}

impl<'c> Deref for Tx<'c> {
    type Target = Transaction<'c>;
    fn deref(&self) -> &Transaction<'c> {
        &self.tx
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("index", &*self.index_tx.borrow())
            .finish()
    }
}

const ALLOC_COLUMNS: &str = "body";

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Store::init(conn, path)
    }

    /// A private in-memory database, for tests and offline planning.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: PathBuf::from(":memory:"),
            source,
        })?;
        Store::init(conn, Path::new(":memory:"))
    }

    /// Opens an agent's existing database without changing it (`drover job plan -offline
    /// -data-dir`): read-only at the SQLite level, `query_only` on top, no migration. A
    /// database of another schema version is refused rather than misread; one the agent is
    /// writing at the same time is read consistently (WAL).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let conn = if Path::new(&wal).exists() {
            // An agent has it open (or died with it open): read through its WAL and
            // shared-memory index, as any reader beside the writer does.
            Connection::open_with_flags(path, flags)
        } else {
            // Closed cleanly, the file holds everything. `immutable` keeps SQLite from
            // creating the -wal and -shm files a WAL reader otherwise makes next to it.
            Connection::open_with_flags(
                format!("file:{}?immutable=1", uri_path(path)),
                flags | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )
        }
        .map_err(open_err)?;
        conn.pragma_update(None, "query_only", "ON")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        let found: Option<i64> = conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(sql(format!(
                "read the schema version of {}",
                path.display()
            )))?;
        let found = found.unwrap_or(0) as usize;
        let known = schema::MIGRATIONS.len();
        if found > known {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        if found < known {
            return Err(StoreError::ReadOnly {
                what: format!(
                    "read {}: its schema version {found} is older than this drover's ({known}); start the agent once to migrate it",
                    path.display()
                ),
            });
        }
        let index: i64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'index'", [], |r| {
                r.get(0)
            })
            .map_err(sql("read the state index"))?;
        let (index_tx, _) = watch::channel(index as u64);
        Ok(Store {
            conn: Mutex::new(conn),
            index_tx,
            cluster: Mutex::new(None),
        })
    }

    fn init(mut conn: Connection, path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        // WAL keeps readers off the writer's back; NORMAL sync is durable across process
        // crashes, which is what a kill -9 needs.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        migrate(&mut conn)?;
        let index: i64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'index'", [], |r| {
                r.get(0)
            })
            .map_err(sql("read the state index"))?;
        let (index_tx, _) = watch::channel(index as u64);
        Ok(Store {
            conn: Mutex::new(conn),
            index_tx,
            cluster: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent (the transaction
        // rolls back on drop), so the connection is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_cluster(&self) -> MutexGuard<'_, Option<ClusterView>> {
        // The view is changed only by plain assignments and in-memory updates; a panic in one
        // may leave it behind the store, so it is dropped and rebuilt.
        self.cluster.lock().unwrap_or_else(|e| {
            let mut view = e.into_inner();
            *view = None;
            self.cluster.clear_poison();
            view
        })
    }

    /// Runs `f` in one immediate transaction with a freshly bumped index; commits only if `f`
    /// succeeds, hands what it wrote to the cluster view, then publishes the index.
    fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Tx<'_>, u64) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let track = self.lock_cluster().is_some();
        let (out, index, written, committed) = {
            let tx = Tx {
                tx: conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql(format!("begin a transaction to {what}")))?,
                track,
                written: RefCell::default(),
            };
            let index: i64 = tx
                .query_row("SELECT value FROM meta WHERE key = 'index'", [], |r| {
                    r.get(0)
                })
                .map_err(sql(format!("read the index to {what}")))?;
            let index = index as u64 + 1;
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'index'",
                params![index as i64],
            )
            .map_err(sql(format!("bump the index to {what}")))?;
            let out = f(&tx, index)?;
            let Tx { tx, written, .. } = tx;
            let committed = tx.commit().map_err(sql(format!("commit: {what}")));
            (out, index, written.into_inner(), committed)
        };
        {
            let mut cluster = self.lock_cluster();
            match (&committed, cluster.as_mut()) {
                (Ok(()), Some(view)) => {
                    view.upsert_nodes(written.nodes);
                    view.update_allocs(&written.allocs);
                    view.set_index(index);
                }
                (Ok(()), None) => {}
                // SQLite rolls a failed commit back, but the view is cheap to rebuild and
                // costly to get wrong.
                (Err(_), _) => *cluster = None,
            }
        }
        committed?;
        drop(conn);
        self.index_tx.send_replace(index);
        Ok(out)
    }

    /// The latest index.
    pub fn index(&self) -> u64 {
        *self.index_tx.borrow()
    }

    /// A receiver that sees every new index: blocking queries wait on it.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.index_tx.subscribe()
    }

    // ---- jobs ----------------------------------------------------------------------------

    /// Registers a job from `source` (Nomad's `Job.Register`): in one transaction compares it
    /// with the latest version, bumps the version only on a real change, and always writes a
    /// `job-register` evaluation. A job owned by another source is refused, unless it is stopped.
    pub fn register_job(
        &self,
        mut job: Job,
        source: &JobSource,
        now: i64,
    ) -> Result<JobRegistration, StoreError> {
        let what = format!("register job {:?}", job.id);
        self.write(&what, |tx, index| {
            let head = read_head(tx, &job.namespace, &job.id)?;
            let (version, changed, create_index) = match &head {
                Some(h) => {
                    if h.source != *source && !h.job.stop {
                        return Err(StoreError::JobOwned {
                            job_id: job.id.clone(),
                            owner: h.source.clone(),
                            attempted: source.clone(),
                        });
                    }
                    if h.job.spec_changed(&job) {
                        (h.job.version + 1, true, h.create_index)
                    } else {
                        (h.job.version, false, h.create_index)
                    }
                }
                None => (0, true, index),
            };
            job.version = version;
            if changed {
                let spec = encode("the job spec", &job)?;
                tx.execute(
                    "INSERT INTO job_versions (namespace, id, version, spec, create_index, submit_time)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![job.namespace, job.id, version as i64, spec, index as i64, now],
                )
                .map_err(sql(format!("write version {version} of job {:?}", job.id)))?;
                for g in &job.task_groups {
                    tx.execute(
                        "INSERT OR REPLACE INTO job_groups (namespace, id, version, task_group, count)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![job.namespace, job.id, version as i64, g.name, g.count],
                    )
                    .map_err(sql(format!("write the groups of version {version} of job {:?}", job.id)))?;
                }
            }
            tx.execute(
                "INSERT INTO job_heads (namespace, id, version, source, stop, create_index, modify_index, submit_time, stopped_at, name, job_type)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, CASE WHEN ?5 THEN ?8 END, ?9, ?10)
                 ON CONFLICT (namespace, id) DO UPDATE SET version = ?3, source = ?4, stop = ?5,
                    modify_index = ?7, submit_time = ?8,
                    stopped_at = CASE WHEN ?5 THEN coalesce(stopped_at, ?8) END,
                    name = ?9, job_type = ?10",
                params![
                    job.namespace,
                    job.id,
                    version as i64,
                    source.encode(),
                    job.stop,
                    create_index as i64,
                    index as i64,
                    now,
                    job.name,
                    job.job_type.as_str()
                ],
            )
            .map_err(sql(format!("write the head of job {:?}", job.id)))?;
            let mut eval = Evaluation::new(&job.id, &job.namespace, EvalTrigger::JobRegister, now);
            eval.priority = job.priority;
            put_eval(tx, &mut eval, index)?;
            Ok(JobRegistration {
                version,
                changed,
                eval,
            })
        })
    }

    /// Stops a job (or deletes it with `purge`) and writes a `job-deregister` evaluation. With
    /// `source`, only that source may do it.
    pub fn deregister_job(
        &self,
        namespace: &str,
        job_id: &str,
        purge: bool,
        source: Option<&JobSource>,
        now: i64,
    ) -> Result<Evaluation, StoreError> {
        self.write(&format!("deregister job {job_id:?}"), |tx, index| {
            let Some(head) = read_head(tx, namespace, job_id)? else {
                return Err(StoreError::JobNotFound {
                    job_id: job_id.to_string(),
                });
            };
            if let Some(source) = source
                && head.source != *source
            {
                return Err(StoreError::JobOwned {
                    job_id: job_id.to_string(),
                    owner: head.source,
                    attempted: source.clone(),
                });
            }
            if purge {
                for table in ["job_heads", "job_versions", "job_groups"] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE namespace = ?1 AND id = ?2"),
                        params![namespace, job_id],
                    )
                    .map_err(sql(format!("purge job {job_id:?}")))?;
                }
            } else {
                tx.execute(
                    "UPDATE job_heads SET stop = 1, modify_index = ?3, stopped_at = coalesce(stopped_at, ?4)
                     WHERE namespace = ?1 AND id = ?2",
                    params![namespace, job_id, index as i64, now],
                )
                .map_err(sql(format!("stop job {job_id:?}")))?;
            }
            let mut eval = Evaluation::new(job_id, namespace, EvalTrigger::JobDeregister, now);
            eval.priority = head.job.priority;
            put_eval(tx, &mut eval, index)?;
            Ok(eval)
        })
    }

    /// The latest version of a job.
    pub fn job(&self, namespace: &str, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let conn = self.lock();
        read_head(&conn, namespace, job_id)
    }

    /// The latest version of every job, by namespace and id.
    pub fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.lock();
        let keys: Vec<(String, String)> = {
            let mut stmt = conn
                .prepare("SELECT namespace, id FROM job_heads ORDER BY namespace, id")
                .map_err(sql("list jobs"))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(sql("list jobs"))?
        };
        let mut out = Vec::with_capacity(keys.len());
        for (ns, id) in keys {
            if let Some(rec) = read_head(&conn, &ns, &id)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Every recorded version of a job, oldest first.
    pub fn job_versions(&self, namespace: &str, job_id: &str) -> Result<Vec<Job>, StoreError> {
        let conn = self.lock();
        read_versions(&conn, namespace, job_id).map(|m| m.into_values().collect())
    }

    // ---- manifest parse errors -----------------------------------------------------------

    /// Records the parse errors of a manifest file, keeping when each was first seen.
    pub fn record_source_error(
        &self,
        path: &Path,
        errors: &[(u32, u32, String, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        let p = path.display().to_string();
        self.write(&format!("record the parse errors of {p}"), |tx, _| {
            let first_seen: Option<i64> = tx
                .query_row(
                    "SELECT MIN(first_seen) FROM source_errors WHERE path = ?1",
                    params![p],
                    |r| r.get(0),
                )
                .map_err(sql(format!("read the parse errors of {p}")))?;
            tx.execute("DELETE FROM source_errors WHERE path = ?1", params![p])
                .map_err(sql(format!("replace the parse errors of {p}")))?;
            for (seq, (line, col, field, message)) in errors.iter().enumerate() {
                tx.execute(
                    "INSERT INTO source_errors (path, seq, line, col, field, message, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![p, seq as i64, line, col, field, message, first_seen.unwrap_or(now), now],
                )
                .map_err(sql(format!("record a parse error of {p}")))?;
            }
            Ok(())
        })
    }

    /// Forgets the parse errors of a manifest file (it parsed, or it is gone).
    pub fn clear_source_error(&self, path: &Path) -> Result<(), StoreError> {
        let p = path.display().to_string();
        self.write(&format!("clear the parse errors of {p}"), |tx, _| {
            tx.execute("DELETE FROM source_errors WHERE path = ?1", params![p])
                .map_err(sql(format!("clear the parse errors of {p}")))?;
            Ok(())
        })
    }

    /// Every recorded parse error, by path.
    pub fn source_errors(&self) -> Result<Vec<SourceError>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT path, line, col, field, message, first_seen, last_seen
                 FROM source_errors ORDER BY path, seq",
            )
            .map_err(sql("list parse errors"))?;
        stmt.query_map([], |r| {
            Ok(SourceError {
                path: PathBuf::from(r.get::<_, String>(0)?),
                line: r.get(1)?,
                col: r.get(2)?,
                field: r.get(3)?,
                message: r.get(4)?,
                first_seen: r.get(5)?,
                last_seen: r.get(6)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(sql("list parse errors"))
    }

    // ---- nodes ---------------------------------------------------------------------------

    /// Registers or re-registers a node: it becomes ready, keeping its eligibility and drain.
    pub fn upsert_node(&self, mut node: Node) -> Result<Node, StoreError> {
        self.write(&format!("register node {}", node.id), |tx, index| {
            if let Some(old) = read_node(tx, &node.id)? {
                node.create_index = old.create_index;
                node.scheduling_eligibility = old.scheduling_eligibility;
                node.drain = old.drain;
                node.drain_strategy = old.drain_strategy;
                node.last_drain = old.last_drain;
            } else {
                node.create_index = index;
            }
            node.modify_index = index;
            put_node(tx, &node)?;
            Ok(node)
        })
    }

    pub fn node(&self, node_id: &str) -> Result<Option<Node>, StoreError> {
        read_node(&self.lock(), node_id)
    }

    pub fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        read_nodes(&self.lock())
    }

    /// Nodes with a drain in progress, without decoding every node (the drainer asks each
    /// second).
    pub fn draining_nodes(&self) -> Result<Vec<Node>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT id, body FROM nodes WHERE json_extract(body, '$.drain') = 1 ORDER BY id",
            )
            .map_err(sql("list draining nodes"))?;
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(sql("list draining nodes"))?;
        rows.into_iter()
            .map(|(id, body)| decode("node", &id, &body))
            .collect()
    }

    /// Marks a node down in one transaction: its live allocations become `lost` and each job
    /// that had one gets a `node-update` evaluation, which this returns.
    pub fn mark_node_down(
        &self,
        node_id: &str,
        description: &str,
        now: i64,
    ) -> Result<Vec<Evaluation>, StoreError> {
        self.write(&format!("mark node {node_id} down"), |tx, index| {
            let Some(mut node) = read_node(tx, node_id)? else {
                return Err(StoreError::NodeNotFound {
                    node_id: node_id.to_string(),
                });
            };
            node.status = NodeStatus::Down;
            node.status_description = description.to_string();
            node.status_updated_at = now / 1_000_000_000;
            node.modify_index = index;
            put_node(tx, &node)?;
            let mut jobs = BTreeMap::new();
            for mut a in query_allocs(tx, "WHERE node_id = ?1", params![node_id])? {
                if a.terminal() {
                    continue;
                }
                a.client_status = ClientStatus::Lost;
                a.client_description = "alloc is lost since its node is down".into();
                a.modify_index = index;
                a.modify_time = now;
                put_alloc(tx, &a)?;
                jobs.insert((a.namespace.clone(), a.job_id.clone()), ());
            }
            let mut evals = Vec::new();
            for (ns, job_id) in jobs.into_keys() {
                let mut eval = Evaluation::new(&job_id, &ns, EvalTrigger::NodeUpdate, now);
                eval.node_id = Some(node_id.to_string());
                put_eval(tx, &mut eval, index)?;
                evals.push(eval);
            }
            Ok(evals)
        })
    }

    // ---- allocations ---------------------------------------------------------------------

    pub fn alloc(&self, alloc_id: &str) -> Result<Option<Allocation>, StoreError> {
        let conn = self.lock();
        Ok(query_allocs(&conn, "WHERE id = ?1", params![alloc_id])?
            .into_iter()
            .next())
    }

    /// Allocations whose id starts with `prefix` (what `drover alloc status 8f3a` resolves).
    pub fn allocs_by_id_prefix(&self, prefix: &str) -> Result<Vec<Allocation>, StoreError> {
        let conn = self.lock();
        let escaped: String = prefix
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        query_allocs(
            &conn,
            "WHERE id LIKE ?1 ESCAPE '\\' ORDER BY id",
            params![format!("{escaped}%")],
        )
    }

    pub fn allocs_by_job(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Result<Vec<Allocation>, StoreError> {
        let conn = self.lock();
        query_allocs(
            &conn,
            "WHERE namespace = ?1 AND job_id = ?2 ORDER BY id",
            params![namespace, job_id],
        )
    }

    /// Allocations the server wants running and the node reports running: what the service
    /// catalog is made of.
    pub fn running_allocs(&self) -> Result<Vec<Allocation>, StoreError> {
        let conn = self.lock();
        query_allocs(
            &conn,
            "WHERE client_status = 'running' AND desired_status = 'run' ORDER BY id",
            [],
        )
    }

    pub fn allocs_by_node(&self, node_id: &str) -> Result<Vec<Allocation>, StoreError> {
        let conn = self.lock();
        query_allocs(&conn, "WHERE node_id = ?1 ORDER BY id", params![node_id])
    }

    /// The highest modify index among a node's allocations: what a node's blocking query
    /// waits to see move.
    pub fn node_alloc_index(&self, node_id: &str) -> Result<u64, StoreError> {
        let conn = self.lock();
        let idx: Option<i64> = conn
            .query_row(
                "SELECT MAX(modify_index) FROM allocations WHERE node_id = ?1",
                params![node_id],
                |r| r.get(0),
            )
            .map_err(sql(format!("read the allocation index of node {node_id}")))?;
        Ok(idx.unwrap_or(0) as u64)
    }

    /// Applies what a node reports about its allocations, in one transaction, and returns
    /// the client status changes (the server turns `failed` into an `alloc-failure` eval).
    /// Updates for allocations that are not on this node are ignored.
    pub fn update_allocs_from_client(
        &self,
        node_id: &str,
        updates: &[AllocUpdate],
        now: i64,
    ) -> Result<Vec<ClientTransition>, StoreError> {
        Ok(self
            .update_allocs_from_client_counted(node_id, updates, now)?
            .transitions)
    }

    /// [`Store::update_allocs_from_client`], also returning the task restarts this update
    /// reported for the first time. A task event is recorded once (its key is the allocation,
    /// task, time and type), so an update sent again, or again after an agent restart, counts
    /// nothing twice.
    pub fn update_allocs_from_client_counted(
        &self,
        node_id: &str,
        updates: &[AllocUpdate],
        now: i64,
    ) -> Result<ClientUpdates, StoreError> {
        self.write(
            &format!("record allocation updates from node {node_id}"),
            |tx, index| {
                let mut out = ClientUpdates::default();
                for u in updates {
                    let Some(mut a) = query_allocs(tx, "WHERE id = ?1", params![u.id])?
                        .into_iter()
                        .next()
                    else {
                        continue;
                    };
                    if a.node_id != node_id {
                        continue;
                    }
                    let from = a.client_status;
                    // A node that comes back cannot revive what the server declared lost.
                    if from == ClientStatus::Lost && a.server_terminal() {
                        continue;
                    }
                    if a.client_status == u.client_status
                        && a.client_description == u.client_description
                        && a.task_states == u.task_states
                        && a.checks == u.checks
                        && a.driver_networks == u.driver_networks
                    {
                        continue;
                    }
                    a.client_status = u.client_status;
                    a.client_description = u.client_description.clone();
                    a.task_states = u.task_states.clone();
                    a.checks = u.checks.clone();
                    a.driver_networks = u.driver_networks.clone();
                    if u.client_status == ClientStatus::Running && from != ClientStatus::Running {
                        a.running_since = Some(now);
                    } else if u.client_status != ClientStatus::Running {
                        a.running_since = None;
                    }
                    a.modify_index = index;
                    a.modify_time = now;
                    put_alloc(tx, &a)?;
                    for (task, state) in &u.task_states {
                        for (i, ev) in state.events.iter().enumerate() {
                            let recorded = put_task_event(tx, &a.id, task, ev)?;
                            if recorded
                                && ev.event_type == drover_runtime::taskrunner::event::RESTARTING
                            {
                                out.restarts.push(TaskRestart {
                                    alloc_id: a.id.clone(),
                                    job_id: a.job_id.clone(),
                                    task: task.clone(),
                                    reason: drover_runtime::taskrunner::restart_reason(
                                        &state.events,
                                        i,
                                    ),
                                });
                            }
                        }
                    }
                    if from != u.client_status {
                        out.transitions.push(ClientTransition {
                            alloc_id: a.id.clone(),
                            namespace: a.namespace.clone(),
                            job_id: a.job_id.clone(),
                            from,
                            to: u.client_status,
                        });
                    }
                }
                Ok(out)
            },
        )
    }

    /// Task events of an allocation, oldest first, by task.
    pub fn task_events(&self, alloc_id: &str) -> Result<Vec<(String, TaskEvent)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT task, body FROM task_events WHERE alloc_id = ?1 ORDER BY time, task")
            .map_err(sql(format!("list task events of allocation {alloc_id}")))?;
        let rows: Vec<(String, String)> = stmt
            .query_map(params![alloc_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(sql(format!("list task events of allocation {alloc_id}")))?;
        rows.into_iter()
            .map(|(task, body)| Ok((task, decode("task event of allocation", alloc_id, &body)?)))
            .collect()
    }

    /// Allocations that may still run (wanted, and not finished on their node), by job and
    /// name; at most `limit`.
    pub fn live_allocs(&self, limit: usize) -> Result<Vec<Allocation>, StoreError> {
        let conn = self.lock();
        query_allocs(
            &conn,
            &format!(
                "WHERE {} ORDER BY namespace, job_id, name, id LIMIT ?1",
                live_clause()
            ),
            params![limit as i64],
        )
    }

    /// Allocations stopped or finished, the most recently changed first; at most `limit`.
    pub fn recent_terminal_allocs(&self, limit: usize) -> Result<Vec<Allocation>, StoreError> {
        let conn = self.lock();
        query_allocs(
            &conn,
            &format!(
                "WHERE NOT ({}) ORDER BY modify_index DESC LIMIT ?1",
                live_clause()
            ),
            params![limit as i64],
        )
    }

    /// How many allocations that may still run each node holds.
    pub fn live_allocs_per_node(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let conn = self.lock();
        let what = "count live allocations per node";
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT node_id, count(*) FROM allocations WHERE {} GROUP BY node_id",
                live_clause()
            ))
            .map_err(sql(what))?;
        let rows: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(sql(what))?;
        Ok(rows
            .into_iter()
            .map(|(n, c)| (n, c.max(0) as u64))
            .collect())
    }

    /// The newest task events, newest first, of every job or of one (`job`: namespace, id);
    /// at most `limit`.
    pub fn recent_task_events(
        &self,
        job: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<RecentTaskEvent>, StoreError> {
        let conn = self.lock();
        let what = "list recent task events";
        let (ns, id) = job.unzip();
        let mut stmt = conn
            .prepare_cached(
                "SELECT e.alloc_id, coalesce(a.name, ''), e.task, e.body FROM task_events e
                 LEFT JOIN allocations a ON a.id = e.alloc_id
                 WHERE ?1 IS NULL OR e.alloc_id IN
                     (SELECT id FROM allocations WHERE namespace = ?1 AND job_id = ?2)
                 ORDER BY e.time DESC LIMIT ?3",
            )
            .map_err(sql(what))?;
        let rows: Vec<(String, String, String, String)> = stmt
            .query_map(params![ns, id, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(sql(what))?;
        rows.into_iter()
            .map(|(alloc_id, alloc_name, task, body)| {
                let event = decode("task event of allocation", &alloc_id, &body)?;
                Ok(RecentTaskEvent {
                    alloc_id,
                    alloc_name,
                    task,
                    event,
                })
            })
            .collect()
    }

    // ---- evaluations ---------------------------------------------------------------------

    /// The most recently changed evaluations first; at most `limit`.
    pub fn recent_evals(&self, limit: usize) -> Result<Vec<Evaluation>, StoreError> {
        let conn = self.lock();
        query_evals(
            &conn,
            "ORDER BY modify_index DESC LIMIT ?1",
            params![limit as i64],
        )
    }

    /// Writes a new evaluation (pending), or updates one.
    pub fn upsert_eval(&self, eval: &Evaluation) -> Result<Evaluation, StoreError> {
        let mut eval = eval.clone();
        self.write(&format!("write evaluation {}", eval.id), |tx, index| {
            put_eval(tx, &mut eval, index)?;
            Ok(eval)
        })
    }

    /// Sets an evaluation's status.
    pub fn set_eval_status(
        &self,
        eval_id: &str,
        status: EvalStatus,
        description: &str,
        now: i64,
    ) -> Result<Evaluation, StoreError> {
        self.write(&format!("update evaluation {eval_id}"), |tx, index| {
            let Some(mut eval) = query_evals(tx, "WHERE id = ?1", params![eval_id])?
                .into_iter()
                .next()
            else {
                return Err(StoreError::EvalNotFound {
                    eval_id: eval_id.to_string(),
                });
            };
            eval.status = status;
            eval.status_description = description.to_string();
            eval.modify_time = now;
            put_eval(tx, &mut eval, index)?;
            Ok(eval)
        })
    }

    pub fn eval(&self, eval_id: &str) -> Result<Option<Evaluation>, StoreError> {
        let conn = self.lock();
        Ok(query_evals(&conn, "WHERE id = ?1", params![eval_id])?
            .into_iter()
            .next())
    }

    pub fn evals_by_job(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Result<Vec<Evaluation>, StoreError> {
        let conn = self.lock();
        query_evals(
            &conn,
            "WHERE namespace = ?1 AND job_id = ?2 ORDER BY modify_index",
            params![namespace, job_id],
        )
    }

    pub fn evals_by_status(&self, status: EvalStatus) -> Result<Vec<Evaluation>, StoreError> {
        let conn = self.lock();
        query_evals(
            &conn,
            "WHERE status = ?1 ORDER BY modify_index",
            params![status.as_str()],
        )
    }

    pub fn evals(&self) -> Result<Vec<Evaluation>, StoreError> {
        let conn = self.lock();
        query_evals(&conn, "ORDER BY modify_index", params![])
    }

    /// Deletes jobs stopped before `cutoff` (unix nanoseconds) whose allocations are all
    /// finished, with their versions, allocations, task events and evaluations (Nomad's job
    /// GC). Returns the ids collected.
    pub fn gc_jobs(&self, cutoff: i64) -> Result<Vec<String>, StoreError> {
        self.write("collect stopped jobs", |tx, _| {
            let candidates: Vec<(String, String)> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT namespace, id FROM job_heads
                         WHERE stop = 1 AND stopped_at IS NOT NULL AND stopped_at < ?1",
                    )
                    .map_err(sql("list stopped jobs"))?;
                stmt.query_map(params![cutoff], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|rows| rows.collect())
                    .map_err(sql("list stopped jobs"))?
            };
            let mut collected = Vec::new();
            for (ns, id) in candidates {
                let allocs =
                    query_allocs(tx, "WHERE namespace = ?1 AND job_id = ?2", params![ns, id])?;
                if allocs.iter().any(|a| !a.terminal()) {
                    continue;
                }
                let what = format!("collect job {id:?}");
                for a in &allocs {
                    tx.execute("DELETE FROM task_events WHERE alloc_id = ?1", params![a.id])
                        .map_err(sql(what.clone()))?;
                }
                for table in ["allocations", "evaluations"] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE namespace = ?1 AND job_id = ?2"),
                        params![ns, id],
                    )
                    .map_err(sql(what.clone()))?;
                }
                for table in ["job_heads", "job_versions", "job_groups"] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE namespace = ?1 AND id = ?2"),
                        params![ns, id],
                    )
                    .map_err(sql(what.clone()))?;
                }
                collected.push(id);
            }
            Ok(collected)
        })
    }

    /// Deletes finished evaluations last changed before `cutoff` (unix nanoseconds); returns
    /// how many.
    pub fn gc_evals(&self, cutoff: i64) -> Result<usize, StoreError> {
        self.write("collect old evaluations", |tx, _| {
            tx.execute(
                "DELETE FROM evaluations WHERE status IN ('complete', 'failed', 'canceled')
                 AND json_extract(body, '$.modify_time') < ?1",
                params![cutoff],
            )
            .map_err(sql("collect old evaluations"))
        })
    }

    /// Changes a node's scheduling eligibility (`drover node eligibility`). A draining node
    /// cannot be made eligible, as in Nomad: the drain must be disabled first.
    pub fn set_node_eligibility(
        &self,
        node_id: &str,
        eligibility: SchedulingEligibility,
    ) -> Result<Node, StoreError> {
        self.write(
            &format!("update the eligibility of node {node_id}"),
            |tx, index| {
                let mut node = read_node(tx, node_id)?.ok_or_else(|| StoreError::NodeNotFound {
                    node_id: node_id.to_string(),
                })?;
                if node.drain && eligibility == SchedulingEligibility::Eligible {
                    return Err(StoreError::NodeDraining {
                        node_id: node_id.to_string(),
                    });
                }
                node.scheduling_eligibility = eligibility;
                node.modify_index = index;
                put_node(tx, &node)?;
                Ok(node)
            },
        )
    }

    /// Starts (`Some`) or cancels (`None`) a node's drain (`drover node drain`). A draining node
    /// is ineligible; a canceled drain leaves it ineligible unless `mark_eligible`.
    pub fn set_node_drain(
        &self,
        node_id: &str,
        strategy: Option<DrainStrategy>,
        mark_eligible: bool,
        now: i64,
    ) -> Result<Node, StoreError> {
        self.write(
            &format!("update the drain of node {node_id}"),
            |tx, index| {
                let mut node = read_node(tx, node_id)?.ok_or_else(|| StoreError::NodeNotFound {
                    node_id: node_id.to_string(),
                })?;
                match strategy {
                    Some(strategy) => {
                        // Changing the deadline of a running drain keeps when it started.
                        let started_at = node
                            .drain_strategy
                            .as_ref()
                            .map_or(strategy.started_at, |d| d.started_at);
                        node.last_drain = Some(DrainMetadata {
                            started_at,
                            updated_at: now,
                            status: "draining".into(),
                        });
                        node.drain = true;
                        node.drain_strategy = Some(strategy);
                        node.scheduling_eligibility = SchedulingEligibility::Ineligible;
                    }
                    None => {
                        if node.drain
                            && let Some(last) = node.last_drain.as_mut()
                        {
                            last.status = "canceled".into();
                            last.updated_at = now;
                        }
                        node.drain = false;
                        node.drain_strategy = None;
                        if mark_eligible {
                            node.scheduling_eligibility = SchedulingEligibility::Eligible;
                        }
                    }
                }
                node.modify_index = index;
                put_node(tx, &node)?;
                Ok(node)
            },
        )
    }

    /// Ends a drain that has nothing left to move: the node stays ineligible, as in Nomad.
    pub fn complete_node_drain(&self, node_id: &str, now: i64) -> Result<Node, StoreError> {
        self.write(
            &format!("complete the drain of node {node_id}"),
            |tx, index| {
                let mut node = read_node(tx, node_id)?.ok_or_else(|| StoreError::NodeNotFound {
                    node_id: node_id.to_string(),
                })?;
                node.drain = false;
                node.drain_strategy = None;
                if let Some(last) = node.last_drain.as_mut() {
                    last.status = "complete".into();
                    last.updated_at = now;
                }
                node.modify_index = index;
                put_node(tx, &node)?;
                Ok(node)
            },
        )
    }

    /// Sets a node's status (a down node heartbeating again becomes ready).
    pub fn set_node_status(
        &self,
        node_id: &str,
        status: NodeStatus,
        description: &str,
        now: i64,
    ) -> Result<Node, StoreError> {
        self.write(
            &format!("update the status of node {node_id}"),
            |tx, index| {
                let Some(mut node) = read_node(tx, node_id)? else {
                    return Err(StoreError::NodeNotFound {
                        node_id: node_id.to_string(),
                    });
                };
                node.status = status;
                node.status_description = description.to_string();
                node.status_updated_at = now / 1_000_000_000;
                node.modify_index = index;
                put_node(tx, &node)?;
                Ok(node)
            },
        )
    }

    // ---- planning ------------------------------------------------------------------------

    /// Everything a plan of a job could look at, read from the database in one transaction so
    /// it is consistent: every node and every allocation holding node resources. Workers read
    /// [`Store::job_snapshot`] instead, which takes the cluster from the kept view.
    pub fn snapshot(&self, namespace: &str, job_id: &str) -> Result<Snapshot, StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(sql(format!("read a snapshot for job {job_id:?}")))?;
        let (index, job, versions, allocs) = read_job(
            &tx,
            namespace,
            job_id,
            "WHERE (namespace = ?1 AND job_id = ?2)
                OR (desired_status = 'run' AND client_status NOT IN ('complete', 'failed', 'lost'))
             ORDER BY id",
        )?;
        let nodes = read_nodes(&tx)?;
        drop(tx);
        Ok(Snapshot {
            index,
            job,
            versions,
            allocs,
            nodes,
        })
    }

    /// What a worker plans `job_id` from (see [`JobSnapshot`]): the job's rows from SQLite and
    /// a snapshot of the kept cluster view, both at one index. The first call builds the view
    /// from the database (every node and live allocation, as [`Store::snapshot`] reads them).
    pub fn job_snapshot(&self, namespace: &str, job_id: &str) -> Result<JobSnapshot, StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(sql(format!("read a snapshot for job {job_id:?}")))?;
        let (index, job, versions, allocs) = read_job(
            &tx,
            namespace,
            job_id,
            "WHERE namespace = ?1 AND job_id = ?2 ORDER BY id",
        )?;
        let mut cluster = self.lock_cluster();
        let cluster = match cluster.as_mut() {
            Some(view) => view.snapshot(),
            None => {
                let view = read_cluster(&tx)?;
                cluster.insert(view).snapshot()
            }
        };
        drop(tx);
        Ok(JobSnapshot {
            index,
            job,
            versions,
            allocs,
            cluster,
        })
    }

    /// Builds the cluster view from the database now (the server does at start, so the first
    /// evaluation does not pay for it), replacing any kept one.
    pub fn rebuild_cluster_view(&self) -> Result<(), StoreError> {
        let conn = self.lock();
        let view = read_cluster(&conn)?;
        *self.lock_cluster() = Some(view);
        Ok(())
    }

    /// The cluster view as the database holds it now, built afresh; the kept one is left as
    /// it is.
    pub fn read_cluster_view(&self) -> Result<ClusterView, StoreError> {
        read_cluster(&self.lock())
    }

    /// A copy of the kept cluster view, if one is kept (for checking it against a rebuilt one).
    pub fn cluster_view(&self) -> Option<ClusterView> {
        let _conn = self.lock();
        self.lock_cluster().clone()
    }

    /// Forgets the kept cluster view: the next evaluation rebuilds it from the database. For a
    /// caller in doubt whether the view still matches the store.
    pub fn drop_cluster_view(&self) {
        let _conn = self.lock();
        *self.lock_cluster() = None;
    }

    /// Writes a plan's rows in one transaction: all of it or none of it.
    pub fn commit_plan(&self, job_id: &str, mut write: PlanWrite) -> Result<u64, StoreError> {
        self.write(
            &format!("apply the plan for job {job_id:?}"),
            |tx, index| {
                if let Some(guard) = &write.guard {
                    check_guard(tx, job_id, guard)?;
                }
                for a in &mut write.allocs {
                    if a.create_index == 0 {
                        a.create_index = index;
                    } else {
                        keep_client_fields(tx, a)?;
                    }
                    a.modify_index = index;
                    put_alloc(tx, a)?;
                }
                for e in &mut write.evals {
                    put_eval(tx, e, index)?;
                }
                Ok(index)
            },
        )
    }
}

/// The index the database records.
fn read_index(conn: &Connection) -> Result<u64, StoreError> {
    let index: i64 = conn
        .query_row("SELECT value FROM meta WHERE key = 'index'", [], |r| {
            r.get(0)
        })
        .map_err(sql("read the state index"))?;
    Ok(index as u64)
}

/// The index, a job's head and versions, and the allocations `allocs` selects (`?1` is the
/// namespace, `?2` the job id): what a plan of that job reads besides the cluster.
#[allow(clippy::type_complexity)]
fn read_job(
    conn: &Connection,
    namespace: &str,
    job_id: &str,
    allocs: &str,
) -> Result<(u64, Option<Job>, BTreeMap<u64, Job>, Vec<Allocation>), StoreError> {
    let index = read_index(conn)?;
    let job = read_head(conn, namespace, job_id)?.map(|h| h.job);
    let versions = read_versions(conn, namespace, job_id)?;
    let allocs = query_allocs(conn, allocs, params![namespace, job_id])?;
    Ok((index, job, versions, allocs))
}

/// The cluster view read from the database: every node and every allocation that still holds
/// node resources, as of the index it records.
fn read_cluster(conn: &Connection) -> Result<ClusterView, StoreError> {
    let index = read_index(conn)?;
    let nodes = read_nodes(conn)?;
    let live = query_allocs(
        conn,
        "WHERE desired_status = 'run' AND client_status NOT IN ('complete', 'failed', 'lost')",
        [],
    )?;
    Ok(ClusterView::new(index, nodes, &live))
}

/// What a client reports about an allocation is the client's. A plan rewrites an existing
/// allocation from the copy its snapshot held (to stop it, update it in place, link it); a
/// client update that landed after that snapshot must not be written back over. As Nomad's
/// state store does, the current row's client fields win, except a `lost` the plan decided
/// for a client that has not itself said it is done.
fn keep_client_fields(tx: &Tx<'_>, planned: &mut Allocation) -> Result<(), StoreError> {
    let current: Option<(i64, String)> = tx
        .prepare_cached(&format!(
            "SELECT modify_index, {ALLOC_COLUMNS} FROM allocations WHERE id = ?1"
        ))
        .and_then(|mut stmt| {
            stmt.query_row(params![planned.id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql(format!("read allocation {}", planned.id)))?;
    let Some((modify_index, body)) = current else {
        return Ok(());
    };
    if modify_index as u64 == planned.modify_index {
        return Ok(());
    }
    let current: Allocation = decode("allocation", &planned.id, &body)?;
    if planned.client_status == ClientStatus::Lost && !current.client_terminal() {
        return Ok(());
    }
    planned.client_status = current.client_status;
    planned.client_description = current.client_description;
    planned.task_states = current.task_states;
    planned.running_since = current.running_since;
    planned.checks = current.checks;
    planned.driver_networks = current.driver_networks;
    Ok(())
}

/// Refuses a plan when allocations on its nodes changed after its snapshot.
fn check_guard(tx: &Transaction<'_>, job_id: &str, guard: &PlanGuard) -> Result<(), StoreError> {
    for node in &guard.nodes {
        let changed: Option<i64> = tx
            .query_row(
                "SELECT MAX(modify_index) FROM allocations WHERE node_id = ?1",
                params![node],
                |r| r.get(0),
            )
            .map_err(sql(format!(
                "check node {node} for the plan of job {job_id:?}"
            )))?;
        if changed.unwrap_or(0) as u64 > guard.snapshot_index {
            return Err(StoreError::StalePlan {
                job_id: job_id.to_string(),
                snapshot_index: guard.snapshot_index,
            });
        }
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(|source| StoreError::Migrate { version: 0, source })?;
    let current: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .map_err(|source| StoreError::Migrate { version: 0, source })?;
    let current = current.unwrap_or(0) as usize;
    if current > schema::MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: schema::MIGRATIONS.len(),
        });
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(current) {
        let version = i + 1;
        let err = |source| StoreError::Migrate { version, source };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            params![version as i64],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

/// `path` for an SQLite `file:` URI: the characters a URI gives meaning to, percent-encoded.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'%' | b'?' | b'#' | 0x80.. => out.push_str(&format!("%{b:02X}")),
            _ => out.push(*b as char),
        }
    }
    out
}

/// The schema version of an open database.
pub fn schema_version(path: &Path) -> Result<usize, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let v: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .map_err(sql("read the schema version"))?;
    Ok(v.unwrap_or(0) as usize)
}

fn read_head(
    conn: &Connection,
    namespace: &str,
    job_id: &str,
) -> Result<Option<JobRecord>, StoreError> {
    let row: Option<(i64, String, bool, i64, i64, i64)> = conn
        .query_row(
            "SELECT version, source, stop, create_index, modify_index, submit_time
             FROM job_heads WHERE namespace = ?1 AND id = ?2",
            params![namespace, job_id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .optional()
        .map_err(sql(format!("read job {job_id:?}")))?;
    let Some((version, source, stop, create_index, modify_index, submit_time)) = row else {
        return Ok(None);
    };
    let spec: String = conn
        .query_row(
            "SELECT spec FROM job_versions WHERE namespace = ?1 AND id = ?2 AND version = ?3",
            params![namespace, job_id, version],
            |r| r.get(0),
        )
        .map_err(sql(format!("read version {version} of job {job_id:?}")))?;
    let mut job: Job = decode("job", job_id, &spec)?;
    job.stop = stop;
    Ok(Some(JobRecord {
        job,
        source: JobSource::decode(&source),
        create_index: create_index as u64,
        modify_index: modify_index as u64,
        submit_time,
    }))
}

fn read_versions(
    conn: &Connection,
    namespace: &str,
    job_id: &str,
) -> Result<BTreeMap<u64, Job>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT version, spec FROM job_versions WHERE namespace = ?1 AND id = ?2 ORDER BY version")
        .map_err(sql(format!("list versions of job {job_id:?}")))?;
    let rows: Vec<(i64, String)> = stmt
        .query_map(params![namespace, job_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(sql(format!("list versions of job {job_id:?}")))?;
    rows.into_iter()
        .map(|(v, spec)| Ok((v as u64, decode("job", job_id, &spec)?)))
        .collect()
}

impl Store {
    /// The spec of one version of a job.
    pub fn job_version(
        &self,
        namespace: &str,
        job_id: &str,
        version: u64,
    ) -> Result<Option<Job>, StoreError> {
        let conn = self.lock();
        let spec: Option<String> = conn
            .query_row(
                "SELECT spec FROM job_versions WHERE namespace = ?1 AND id = ?2 AND version = ?3",
                params![namespace, job_id, version as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(format!("read version {version} of job {job_id:?}")))?;
        spec.map(|s| decode("job", job_id, &s)).transpose()
    }
}

fn query_allocs(
    conn: &Connection,
    clause: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Allocation>, StoreError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, {ALLOC_COLUMNS} FROM allocations {clause}"
        ))
        .map_err(sql("query allocations"))?;
    let rows: Vec<(String, String)> = stmt
        .query_map(params, |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(sql("query allocations"))?;
    rows.into_iter()
        .map(|(id, body)| decode("allocation", &id, &body))
        .collect()
}

fn put_alloc(tx: &Tx<'_>, a: &Allocation) -> Result<(), StoreError> {
    let body = encode("an allocation", a)?;
    tx.execute(
        "INSERT INTO allocations (id, namespace, job_id, node_id, desired_status, client_status, modify_index, body, task_group, name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET node_id = ?4, desired_status = ?5, client_status = ?6,
            modify_index = ?7, body = ?8, task_group = ?9, name = ?10",
        params![
            a.id,
            a.namespace,
            a.job_id,
            a.node_id,
            a.desired_status.as_str(),
            a.client_status.as_str(),
            a.modify_index as i64,
            body,
            a.task_group,
            a.name
        ],
    )
    .map_err(sql(format!("write allocation {}", a.id)))?;
    if tx.track {
        tx.written.borrow_mut().allocs.push(a.clone());
    }
    Ok(())
}

fn put_task_event(
    conn: &Connection,
    alloc_id: &str,
    task: &str,
    ev: &TaskEvent,
) -> Result<bool, StoreError> {
    let body = encode("a task event", ev)?;
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO task_events (alloc_id, task, time, event_type, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![alloc_id, task, ev.time, ev.event_type, body],
    )
    .map_err(sql(format!("record a task event of allocation {alloc_id}")))?;
    Ok(inserted > 0)
}

fn query_evals(
    conn: &Connection,
    clause: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Evaluation>, StoreError> {
    let mut stmt = conn
        .prepare(&format!("SELECT id, body FROM evaluations {clause}"))
        .map_err(sql("query evaluations"))?;
    let rows: Vec<(String, String)> = stmt
        .query_map(params, |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(sql("query evaluations"))?;
    rows.into_iter()
        .map(|(id, body)| decode("evaluation", &id, &body))
        .collect()
}

fn put_eval(conn: &Connection, e: &mut Evaluation, index: u64) -> Result<(), StoreError> {
    if e.create_index == 0 {
        e.create_index = index;
    }
    e.modify_index = index;
    let body = encode("an evaluation", e)?;
    conn.execute(
        "INSERT INTO evaluations (id, namespace, job_id, status, modify_index, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET status = ?4, modify_index = ?5, body = ?6",
        params![
            e.id,
            e.namespace,
            e.job_id,
            e.status.as_str(),
            index as i64,
            body
        ],
    )
    .map_err(sql(format!("write evaluation {}", e.id)))?;
    Ok(())
}

fn read_node(conn: &Connection, node_id: &str) -> Result<Option<Node>, StoreError> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM nodes WHERE id = ?1",
            params![node_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(format!("read node {node_id}")))?;
    body.map(|b| decode("node", node_id, &b)).transpose()
}

fn read_nodes(conn: &Connection) -> Result<Vec<Node>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT id, body FROM nodes ORDER BY id")
        .map_err(sql("list nodes"))?;
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(sql("list nodes"))?;
    rows.into_iter()
        .map(|(id, body)| decode("node", &id, &body))
        .collect()
}

fn put_node(tx: &Tx<'_>, n: &Node) -> Result<(), StoreError> {
    let body = encode("a node", n)?;
    tx.execute(
        "INSERT INTO nodes (id, status, modify_index, body) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET status = ?2, modify_index = ?3, body = ?4",
        params![n.id, n.status.as_str(), n.modify_index as i64, body],
    )
    .map_err(sql(format!("write node {}", n.id)))?;
    if tx.track {
        tx.written.borrow_mut().nodes.push(n.clone());
    }
    Ok(())
}
