//! The SQLite schema as numbered migrations. A database records the last one applied in
//! `schema_version`; opening runs the rest, each in its own transaction. Never edit a released
//! migration: add the next one.

/// Migration `i` brings the schema to version `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: jobs with every version, their sources and parse errors; allocations, evaluations,
    // nodes, task events; the raft-like index.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('index', 0);

    CREATE TABLE job_heads (
        namespace    TEXT NOT NULL,
        id           TEXT NOT NULL,
        version      INTEGER NOT NULL,
        source       TEXT NOT NULL,
        stop         INTEGER NOT NULL,
        create_index INTEGER NOT NULL,
        modify_index INTEGER NOT NULL,
        submit_time  INTEGER NOT NULL,
        PRIMARY KEY (namespace, id)
    );

    CREATE TABLE job_versions (
        namespace    TEXT NOT NULL,
        id           TEXT NOT NULL,
        version      INTEGER NOT NULL,
        spec         TEXT NOT NULL,
        create_index INTEGER NOT NULL,
        submit_time  INTEGER NOT NULL,
        PRIMARY KEY (namespace, id, version)
    );

    CREATE TABLE source_errors (
        path       TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        line       INTEGER NOT NULL,
        col        INTEGER NOT NULL,
        field      TEXT NOT NULL,
        message    TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        PRIMARY KEY (path, seq)
    );

    CREATE TABLE allocations (
        id             TEXT PRIMARY KEY,
        namespace      TEXT NOT NULL,
        job_id         TEXT NOT NULL,
        node_id        TEXT NOT NULL,
        desired_status TEXT NOT NULL,
        client_status  TEXT NOT NULL,
        modify_index   INTEGER NOT NULL,
        body           TEXT NOT NULL
    );
    CREATE INDEX allocations_by_job ON allocations (namespace, job_id);
    CREATE INDEX allocations_by_node ON allocations (node_id);

    CREATE TABLE evaluations (
        id           TEXT PRIMARY KEY,
        namespace    TEXT NOT NULL,
        job_id       TEXT NOT NULL,
        status       TEXT NOT NULL,
        modify_index INTEGER NOT NULL,
        body         TEXT NOT NULL
    );
    CREATE INDEX evaluations_by_job ON evaluations (namespace, job_id);
    CREATE INDEX evaluations_by_status ON evaluations (status);

    CREATE TABLE nodes (
        id           TEXT PRIMARY KEY,
        status       TEXT NOT NULL,
        modify_index INTEGER NOT NULL,
        body         TEXT NOT NULL
    );

    CREATE TABLE task_events (
        alloc_id   TEXT NOT NULL,
        task       TEXT NOT NULL,
        time       INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        body       TEXT NOT NULL,
        PRIMARY KEY (alloc_id, task, time, event_type)
    );
    "#,
    // 2: when a job was stopped, so stopped jobs can be collected after Nomad's 4 h.
    r#"
    ALTER TABLE job_heads ADD COLUMN stopped_at INTEGER;
    "#,
    // 3: what the job summary (`/metrics`, the status page) reads without decoding a job or an
    // allocation body: the head's name and type, each version's groups with their count, and
    // each allocation's group and name, and task events by time. Existing rows are filled from their JSON.
    r#"
    ALTER TABLE job_heads ADD COLUMN name TEXT NOT NULL DEFAULT '';
    ALTER TABLE job_heads ADD COLUMN job_type TEXT NOT NULL DEFAULT '';
    UPDATE job_heads SET
        name = coalesce((SELECT json_extract(v.spec, '$.name') FROM job_versions v
                         WHERE v.namespace = job_heads.namespace AND v.id = job_heads.id
                           AND v.version = job_heads.version), ''),
        job_type = coalesce((SELECT json_extract(v.spec, '$.job_type') FROM job_versions v
                             WHERE v.namespace = job_heads.namespace AND v.id = job_heads.id
                               AND v.version = job_heads.version), '');

    CREATE TABLE job_groups (
        namespace  TEXT NOT NULL,
        id         TEXT NOT NULL,
        version    INTEGER NOT NULL,
        task_group TEXT NOT NULL,
        count      INTEGER NOT NULL,
        PRIMARY KEY (namespace, id, version, task_group)
    );
    INSERT OR IGNORE INTO job_groups (namespace, id, version, task_group, count)
        SELECT v.namespace, v.id, v.version,
               coalesce(json_extract(g.value, '$.name'), ''),
               coalesce(json_extract(g.value, '$.count'), 0)
        FROM job_versions v, json_each(v.spec, '$.task_groups') g;

    ALTER TABLE allocations ADD COLUMN task_group TEXT NOT NULL DEFAULT '';
    ALTER TABLE allocations ADD COLUMN name TEXT NOT NULL DEFAULT '';
    UPDATE allocations SET
        task_group = coalesce(json_extract(body, '$.task_group'), ''),
        name = coalesce(json_extract(body, '$.name'), '');

    -- The job summary and the status page's counts read only these columns: from this index
    -- alone, without reading an allocation's row (its body fills most of a page).
    CREATE INDEX allocations_summary ON allocations
        (namespace, job_id, task_group, client_status, desired_status, node_id);

    -- The status page lists the newest task events.
    CREATE INDEX task_events_by_time ON task_events (time);
    "#,
];
