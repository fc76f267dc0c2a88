//! The agent's read-only status page, `GET /ui` (and `/ui/`; `/` redirects there, as Nomad's
//! agent does): jobs with their status, version and source file, the job files that fail to
//! parse, allocations with their tasks, restarts and health, nodes, and recent task events and
//! evaluations. `GET /ui/job/:id` (`?namespace=`, default `default`) shows one job: its groups
//! with desired and running allocations, every allocation with its tasks, its source file
//! with any parse error, and its recent events.
//!
//! The page is rendered here, on the server, so it reads the same without JavaScript (a
//! `<noscript>` meta refresh reloads it). With JavaScript, the inline script fetches the page
//! again every few seconds and swaps its content in place, keeping the scroll position and
//! showing the last good snapshot when the agent stops answering. Everything the page needs is
//! compiled into the binary (`include_str!`): no external asset, no CDN. Every string that
//! comes from a job file, a job, a task or the file system goes through [`Html::text`], which
//! escapes it; a per-response CSP nonce additionally keeps any script but the page's own from
//! running.
//!
//! The main page reads what it shows, not everything: job rows and counts come from the
//! store's job summary (plain columns, no job or allocation decoded), and only the
//! allocations, events and evaluations it lists are read in full, so it costs about the same
//! with 10,000 jobs as with 100.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{AgentInfo, ApiError, AppState, blocking, internal};
use crate::manifests::ManifestsStatus;
use crate::state::{JobRecord, JobSource, JobSummary, RecentTaskEvent};
use crate::structs::{Allocation, Evaluation, Job, Node};
use drover_runtime::spec::{ClientStatus, TaskStateKind};

const CSS: &str = include_str!("status_page/page.css");
const JS: &str = include_str!("status_page/refresh.js");

/// How often the script refreshes the page; the no-JavaScript fallback reloads half as often,
/// since a full reload costs more and resets the view.
const REFRESH_SECS: u32 = 5;
const NOSCRIPT_REFRESH_SECS: u32 = 10;

/// Lists are cut so that a page for thousands of jobs stays a page; the CLI and the JSON API
/// show the rest.
const MAX_JOBS: usize = 500;
const MAX_ALLOCS: usize = 200;
/// Terminal allocations shown below the live ones: the recent past explains the present.
const MAX_TERMINAL_ALLOCS: usize = 20;
const MAX_EVENTS: usize = 30;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(root))
        .route("/ui", get(page))
        .route("/ui/", get(page))
        .route("/ui/job/{id}", get(job_page))
}

/// Nomad's agent answers `/` with a 307 to `/ui/`, keeping the query string.
async fn root(RawQuery(query): RawQuery) -> Response {
    let target = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("/ui/?{q}"),
        None => "/ui/".to_string(),
    };
    let location =
        HeaderValue::from_str(&target).unwrap_or_else(|_| HeaderValue::from_static("/ui/"));
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

async fn page(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    // A fresh nonce per response: only the page's own inline script and style may run, even if
    // a string ever slipped through unescaped.
    let nonce = new_nonce();
    let now = now_nanos();
    let html = {
        let nonce = nonce.clone();
        blocking(st, move |st| {
            let snap = Snapshot::read(st, now)?;
            Ok(render(&snap, &nonce))
        })
        .await?
    };
    Ok(html_response(StatusCode::OK, html, &nonce))
}

async fn job_page(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let nonce = new_nonce();
    let now = now_nanos();
    let namespace = q
        .get("namespace")
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| "default".into());
    let (status, html) = {
        let nonce = nonce.clone();
        blocking(st, move |st| {
            Ok(match JobPage::read(st, &namespace, &id, now)? {
                Some(p) => (StatusCode::OK, render_job(&p, &nonce)),
                None => (
                    StatusCode::NOT_FOUND,
                    render_missing_job(st, &id, now, &nonce),
                ),
            })
        })
        .await?
    };
    Ok(html_response(status, html, &nonce))
}

fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn html_response(status: StatusCode, html: String, nonce: &str) -> Response {
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Everything the main page shows, read at one moment.
struct Snapshot {
    now: i64,
    agent: AgentInfo,
    manifests: ManifestsStatus,
    /// Every job, by id.
    jobs: Vec<JobSummary>,
    nodes: Vec<Node>,
    live_per_node: BTreeMap<String, u64>,
    /// The allocations listed: live ones by job and name, then the most recent finished ones.
    allocs: Vec<Allocation>,
    /// All allocations of the jobs listed.
    allocs_total: u64,
    /// The job versions the live allocations listed run, for their health.
    versions: Versions,
    task_events: Vec<RecentTaskEvent>,
    evals: Vec<Evaluation>,
}

/// Job versions by namespace, id and version.
type Versions = BTreeMap<(String, String, u64), Job>;

impl Snapshot {
    fn read(st: &AppState, now: i64) -> Result<Snapshot, ApiError> {
        let manifests = st
            .manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let store = st.server.store();
        let mut jobs = store.job_summaries().map_err(internal)?;
        jobs.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.namespace.cmp(&b.namespace)));
        let allocs_total = jobs
            .iter()
            .flat_map(|j| j.groups.values())
            .flat_map(|g| g.allocs.values())
            .sum();
        let mut allocs = store.live_allocs(MAX_ALLOCS).map_err(internal)?;
        allocs.extend(
            store
                .recent_terminal_allocs(MAX_TERMINAL_ALLOCS)
                .map_err(internal)?,
        );
        allocs.truncate(MAX_ALLOCS);
        let mut versions = Versions::new();
        for a in allocs.iter().filter(|a| !a.terminal()) {
            let key = (a.namespace.clone(), a.job_id.clone(), a.job_version);
            if versions.contains_key(&key) {
                continue;
            }
            if let Some(job) = store
                .job_version(&a.namespace, &a.job_id, a.job_version)
                .map_err(internal)?
            {
                versions.insert(key, job);
            }
        }
        let mut nodes = st.server.nodes()?;
        nodes.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(Snapshot {
            now,
            agent: st.agent.clone(),
            manifests,
            jobs,
            nodes,
            live_per_node: store.live_allocs_per_node().map_err(internal)?,
            allocs,
            allocs_total,
            versions,
            task_events: store
                .recent_task_events(None, MAX_EVENTS)
                .map_err(internal)?,
            evals: store.recent_evals(MAX_EVENTS).map_err(internal)?,
        })
    }
}

/// Everything one job's page shows.
struct JobPage {
    now: i64,
    agent: AgentInfo,
    manifests: ManifestsStatus,
    record: JobRecord,
    summary: JobSummary,
    /// Live allocations by name, then finished ones, the most recent first.
    allocs: Vec<Allocation>,
    versions: Versions,
    node_names: BTreeMap<String, String>,
    task_events: Vec<RecentTaskEvent>,
    evals: Vec<Evaluation>,
}

impl JobPage {
    fn read(
        st: &AppState,
        namespace: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<JobPage>, ApiError> {
        let store = st.server.store();
        let Some(record) = store.job(namespace, id).map_err(internal)? else {
            return Ok(None);
        };
        let Some(summary) = store.job_summary(namespace, id).map_err(internal)? else {
            return Ok(None);
        };
        let mut allocs = store.allocs_by_job(namespace, id).map_err(internal)?;
        // Live first (false sorts before true).
        allocs.sort_by(|x, y| {
            x.terminal().cmp(&y.terminal()).then_with(|| {
                if x.terminal() {
                    y.modify_index.cmp(&x.modify_index)
                } else {
                    x.name.cmp(&y.name).then_with(|| x.id.cmp(&y.id))
                }
            })
        });
        let versions = store
            .job_versions(namespace, id)
            .map_err(internal)?
            .into_iter()
            .map(|j| ((j.namespace.clone(), j.id.clone(), j.version), j))
            .collect();
        let node_names = st
            .server
            .nodes()?
            .into_iter()
            .map(|n| (n.id, n.name))
            .collect();
        let mut evals = store.evals_by_job(namespace, id).map_err(internal)?;
        evals.reverse();
        evals.truncate(MAX_EVENTS);
        Ok(Some(JobPage {
            now,
            agent: st.agent.clone(),
            manifests: st
                .manifests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            record,
            summary,
            allocs,
            versions,
            node_names,
            task_events: store
                .recent_task_events(Some((namespace, id)), MAX_EVENTS)
                .map_err(internal)?,
            evals,
        }))
    }
}

struct Html(String);

impl Html {
    fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Text or a double-quoted attribute value, escaped.
    fn text(&mut self, s: &str) -> &mut Self {
        for c in s.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&#39;"),
                c => self.0.push(c),
            }
        }
        self
    }

    fn num(&mut self, n: impl std::fmt::Display) -> &mut Self {
        let s = n.to_string();
        self.text(&s)
    }

    /// `<span class="badge KIND">label</span>`, with KIND one of the page's fixed classes.
    fn badge(&mut self, kind: Tone, label: &str) -> &mut Self {
        self.raw("<span class=\"badge ")
            .raw(kind.class())
            .raw("\">")
            .text(label)
            .raw("</span>")
    }

    /// A `<td>` with the column's label, which narrow screens show in front of the value; the
    /// value is wrapped in one `<div>` (closed by `</div></td>`) so it lays out as one block.
    fn td(&mut self, label: &'static str) -> &mut Self {
        self.raw("<td data-label=\"").raw(label).raw("\"><div>")
    }

    /// How long ago `nanos` was, with the exact UTC time on hover.
    fn ago(&mut self, now: i64, nanos: i64) -> &mut Self {
        if nanos <= 0 {
            return self.raw("<span class=\"muted\">–</span>");
        }
        let exact = utc(nanos);
        self.raw("<time datetime=\"")
            .text(&exact)
            .raw("\" title=\"")
            .text(&exact)
            .raw("\">")
            .text(&age(now - nanos))
            .raw("</time>")
    }
}

#[derive(Clone, Copy)]
enum Tone {
    Good,
    Warn,
    Bad,
    Muted,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Good => "good",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
            Tone::Muted => "muted",
        }
    }
}

fn utc(nanos: i64) -> String {
    format!("{}Z", crate::timefmt::utc_parts(nanos).0)
}

/// `5s ago`, `3m ago`, `2h ago`, `4d ago`.
fn age(delta_nanos: i64) -> String {
    let s = (delta_nanos / 1_000_000_000).max(0);
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h{:02}m ago", s / 3600, (s % 3600) / 60),
        _ => format!("{}d ago", s / 86_400),
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A job file's path as the page shows it: relative to the watched directory when inside it.
fn display_path(path: &Path, dir: Option<&Path>) -> String {
    dir.and_then(|d| path.strip_prefix(d).ok())
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn job_tone(status: &str) -> Tone {
    match status {
        "running" => Tone::Good,
        "pending" => Tone::Warn,
        _ => Tone::Muted,
    }
}

fn client_tone(s: ClientStatus) -> Tone {
    match s {
        ClientStatus::Running | ClientStatus::Complete => Tone::Good,
        ClientStatus::Pending | ClientStatus::Unknown => Tone::Warn,
        ClientStatus::Failed | ClientStatus::Lost => Tone::Bad,
    }
}

/// An allocation's health as the page shows it. drover has no deployments yet, so this follows
/// the rule its rolling updates use: a running allocation is healthy once all its tasks have
/// run for the group's `update.min_healthy_time`.
/// `None` for a finished allocation, which has no health any more.
fn health(a: &Allocation, job: Option<&Job>, now: i64) -> Option<(Tone, String)> {
    if a.terminal() {
        return None;
    }
    if a.client_status == ClientStatus::Failed || a.task_states.values().any(|t| t.failed) {
        return Some((Tone::Bad, "unhealthy".into()));
    }
    let all_running = !a.task_states.is_empty()
        && a.task_states
            .values()
            .all(|t| t.state == TaskStateKind::Running);
    if a.client_status != ClientStatus::Running || !all_running {
        return Some((Tone::Warn, "not yet".into()));
    }
    let min_healthy = job
        .and_then(|j| j.group(&a.task_group))
        .map(|g| i64::try_from(g.update.min_healthy_time.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Some(
        match a.running_since.map(|t| t.saturating_add(min_healthy)) {
            Some(at) if at > now => (
                Tone::Warn,
                format!("healthy in {}s", (at - now + 999_999_999) / 1_000_000_000),
            ),
            _ => (Tone::Good, "healthy".into()),
        },
    )
}

/// A path segment or query value, percent-encoded: a job id can hold any character.
fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The per-job page's address.
fn job_href(namespace: &str, id: &str) -> String {
    let mut href = format!("/ui/job/{}", url_component(id));
    if namespace != "default" {
        href.push_str("?namespace=");
        href.push_str(&url_component(namespace));
    }
    href
}

/// The page around `content`: head, header, footer and the refresh script, the same for
/// every page.
fn shell(
    title: &str,
    nonce: &str,
    agent: &AgentInfo,
    dir: Option<&Path>,
    now: i64,
    content: impl FnOnce(&mut Html),
) -> String {
    let mut h = Html(String::with_capacity(32 * 1024));
    h.raw("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
        .raw("<meta name=\"color-scheme\" content=\"light dark\">\n")
        .raw("<title>")
        .text(title)
        .raw("</title>\n<link rel=\"icon\" href=\"data:,\">\n")
        .raw("<noscript><meta http-equiv=\"refresh\" content=\"")
        .num(NOSCRIPT_REFRESH_SECS)
        .raw("\"></noscript>\n<style nonce=\"")
        .text(nonce)
        .raw("\">")
        .raw(CSS)
        .raw("</style>\n</head>\n<body>\n<header class=\"top\">\n<h1><a href=\"/ui/\">drover</a></h1>\n")
        .raw("<p class=\"agent\">");
    h.text(&agent.name)
        .raw(" · ")
        .text(&agent.region)
        .raw("/")
        .text(&agent.datacenter)
        .raw(" · v")
        .text(env!("CARGO_PKG_VERSION"))
        .raw("</p>\n<p id=\"live\" class=\"live\" data-refresh=\"")
        .num(REFRESH_SECS)
        .raw("\">read-only · reloads every ")
        .num(NOSCRIPT_REFRESH_SECS)
        .raw(" s</p>\n</header>\n<main id=\"content\">\n");
    h.raw("<p class=\"snapshot\">Snapshot of ")
        .raw("<time datetime=\"")
        .text(&utc(now))
        .raw("\">")
        .text(&utc(now).replace('T', " "))
        .raw("</time></p>\n");
    content(&mut h);
    h.raw("</main>\n<footer>This page only reads. Jobs change through the files in ");
    match dir {
        Some(d) => h
            .raw("<code>")
            .text(&d.display().to_string())
            .raw("</code>"),
        None => h.raw("the watched directory"),
    };
    h.raw(" or <code>drover job run</code>. The same data as JSON: ")
        .raw("<code>/v1/jobs</code>, <code>/v1/allocations</code>, <code>/v1/nodes</code>, ")
        .raw("<code>/v1/evaluations</code>, <code>/v1/drover/manifests</code>.</footer>\n")
        .raw("<script nonce=\"")
        .text(nonce)
        .raw("\">")
        .raw(JS)
        .raw("</script>\n</body>\n</html>\n");
    h.0
}

fn render(snap: &Snapshot, nonce: &str) -> String {
    shell(
        &title(None, &snap.manifests, &snap.agent),
        nonce,
        &snap.agent,
        snap.manifests.dir.as_deref(),
        snap.now,
        |h| {
            summary(h, snap);
            manifest_problems(h, &snap.manifests, None);
            jobs(h, snap);
            let nodes: BTreeMap<&str, &str> = snap
                .nodes
                .iter()
                .map(|n| (n.id.as_str(), n.name.as_str()))
                .collect();
            allocations(
                h,
                &snap.allocs,
                snap.allocs_total,
                &nodes,
                &snap.versions,
                snap.now,
            );
            node_table(h, snap);
            events(h, &snap.task_events, &snap.evals, snap.now);
        },
    )
}

/// The tab's title carries the one thing worth noticing from another tab: broken files.
fn title(page: Option<&str>, manifests: &ManifestsStatus, agent: &AgentInfo) -> String {
    let broken = manifests.files_in_error();
    let mut t = String::new();
    if broken > 0 {
        t.push_str(&format!(
            "({broken} broken file{}) ",
            if broken == 1 { "" } else { "s" }
        ));
    }
    if let Some(page) = page {
        t.push_str(page);
        t.push_str(" · ");
    }
    t.push_str("drover · ");
    t.push_str(&agent.name);
    t
}
fn tile(h: &mut Html, label: &'static str, total: usize, parts: &[(Tone, usize, &'static str)]) {
    h.raw("<div class=\"tile\"><span class=\"tile-n\">")
        .num(total)
        .raw("</span><span class=\"tile-l\">")
        .raw(label)
        .raw("</span><span class=\"tile-parts\">");
    let mut any = false;
    for (tone, n, what) in parts {
        if *n == 0 {
            continue;
        }
        any = true;
        h.raw("<span class=\"")
            .raw(tone.class())
            .raw("\">")
            .num(n)
            .raw(" ")
            .raw(what)
            .raw("</span> ");
    }
    if !any {
        h.raw("<span class=\"muted\">none</span>");
    }
    h.raw("</span></div>\n");
}

fn summary(h: &mut Html, snap: &Snapshot) {
    let mut job_status: BTreeMap<&str, usize> = BTreeMap::new();
    for j in &snap.jobs {
        *job_status.entry(j.status()).or_default() += 1;
    }
    let wanted =
        |s: ClientStatus| -> usize { snap.jobs.iter().map(|j| j.wanted(s)).sum::<u64>() as usize };
    let failed = snap
        .jobs
        .iter()
        .flat_map(|j| j.groups.values())
        .filter_map(|g| g.allocs.get(&ClientStatus::Failed))
        .sum::<u64>() as usize;
    let ready = snap
        .nodes
        .iter()
        .filter(|n| n.status.as_str() == "ready")
        .count();
    let broken = snap.manifests.files_in_error();
    let n = |s: &str| job_status.get(s).copied().unwrap_or(0);
    h.raw("<section class=\"tiles\" aria-label=\"Summary\">\n");
    tile(
        h,
        "jobs",
        snap.jobs.len(),
        &[
            (Tone::Good, n("running"), "running"),
            (Tone::Warn, n("pending"), "pending"),
            (Tone::Muted, n("dead"), "dead"),
        ],
    );
    let running = wanted(ClientStatus::Running);
    let pending = wanted(ClientStatus::Pending);
    tile(
        h,
        "allocations live",
        running + pending,
        &[
            (Tone::Good, running, "running"),
            (Tone::Warn, pending, "pending"),
            (Tone::Bad, failed, "failed (all time)"),
        ],
    );
    tile(
        h,
        "nodes",
        snap.nodes.len(),
        &[
            (Tone::Good, ready, "ready"),
            (Tone::Bad, snap.nodes.len() - ready, "not ready"),
        ],
    );
    tile(
        h,
        "job files",
        snap.manifests.files.len(),
        &[
            (Tone::Good, snap.manifests.files.len() - broken, "ok"),
            (Tone::Bad, broken, "broken"),
        ],
    );
    h.raw("</section>\n");
}

/// The job files that fail to parse (only `file`'s, on a job's page), and the directory's
/// own errors on the main page.
fn manifest_problems(h: &mut Html, m: &ManifestsStatus, file: Option<&Path>) {
    let broken: Vec<_> = m
        .files
        .iter()
        .filter(|(p, f)| !f.errors.is_empty() && file.is_none_or(|only| only == p.as_path()))
        .collect();
    let dir_errors: Vec<&String> = if file.is_none() {
        m.error.iter().chain(m.held.iter()).collect()
    } else {
        Vec::new()
    };
    if broken.is_empty() && dir_errors.is_empty() {
        return;
    }
    h.raw("<section id=\"problems\" class=\"problems\">\n<h2>")
        .raw(if file.is_some() {
            "The job file has errors"
        } else {
            "Job files with errors"
        })
        .raw("</h2>\n")
        .raw("<p class=\"note\">Nothing that runs was changed: each job keeps its last good ")
        .raw("version until its file parses again.</p>\n<ul>\n");
    for msg in dir_errors {
        h.raw("<li class=\"problem\"><span class=\"msg\">")
            .text(msg)
            .raw("</span></li>\n");
    }
    let dir = m.dir.as_deref();
    for (path, f) in broken {
        let shown = display_path(path, dir);
        for d in &f.errors {
            h.raw("<li class=\"problem\"><code class=\"where\" title=\"")
                .text(&path.display().to_string())
                .raw("\">")
                .text(&format!("{shown}:{}:{}", d.pos.line, d.pos.col))
                .raw("</code>");
            if !d.field.is_empty() {
                h.raw(" <span class=\"field\">")
                    .text(&d.field)
                    .raw("</span>");
            }
            h.raw("<span class=\"msg\">")
                .text(&d.message)
                .raw("</span>");
            if let Some(job) = &f.job_id {
                h.raw("<span class=\"muted\">job ")
                    .text(job)
                    .raw(" keeps its last good version</span>");
            }
            h.raw("</li>\n");
        }
    }
    h.raw("</ul>\n</section>\n");
}

/// The job's source: its file (relative to the watched directory, flagged when it fails to
/// parse) or the API.
fn source(h: &mut Html, src: &JobSource, manifests: &ManifestsStatus) {
    match src {
        JobSource::File(p) => {
            h.raw("<code title=\"")
                .text(&p.display().to_string())
                .raw("\">")
                .text(&display_path(p, manifests.dir.as_deref()))
                .raw("</code>");
            let broken = manifests.files.get(p).is_some_and(|f| !f.errors.is_empty());
            if broken {
                h.raw(" ").badge(Tone::Bad, "file has errors");
            }
        }
        JobSource::Api => {
            h.raw("<span class=\"muted\">API</span>");
        }
    }
}

/// `2/3 running, 1 pending, …`: a job's or a group's allocations against its count.
fn running_of(
    h: &mut Html,
    running: u64,
    desired: u64,
    pending: u64,
    complete: Option<u64>,
    failed: u64,
) {
    h.raw(if running < desired {
        "<span class=\"warn\">"
    } else {
        "<span>"
    })
    .num(running)
    .raw("/")
    .num(desired)
    .raw(" running</span>");
    if pending > 0 {
        h.raw(", <span class=\"warn\">")
            .num(pending)
            .raw(" pending</span>");
    }
    if let Some(complete) = complete.filter(|n| *n > 0) {
        h.raw(", <span class=\"good\">")
            .num(complete)
            .raw(" complete</span>");
    }
    if failed > 0 {
        h.raw(", <span class=\"bad\">")
            .num(failed)
            .raw(" failed</span>");
    }
}

fn jobs(h: &mut Html, snap: &Snapshot) {
    if !open_section(h, "jobs", "Jobs", snap.jobs.is_empty(), "No jobs.") {
        return;
    }
    h.raw("<table>\n<thead><tr><th>ID</th><th>Status</th><th>Type</th><th>Version</th>")
        .raw("<th>Allocations</th><th>Source</th><th>Submitted</th></tr></thead>\n<tbody>\n");
    for j in snap.jobs.iter().take(MAX_JOBS) {
        let status = j.status();
        h.raw("<tr>");
        h.td("ID")
            .raw("<strong><a href=\"")
            .text(&job_href(&j.namespace, &j.id))
            .raw("\">")
            .text(&j.id)
            .raw("</a></strong>");
        if j.name != j.id && !j.name.is_empty() {
            h.raw("<br><span class=\"muted\">")
                .text(&j.name)
                .raw("</span>");
        }
        h.raw("</div></td>");
        h.td("Status")
            .badge(job_tone(status), status)
            .raw("</div></td>");
        h.td("Type")
            .text(j.job_type.map_or("?", |t| t.as_str()))
            .raw("</div></td>");
        h.td("Version").num(j.version).raw("</div></td>");
        h.td("Allocations");
        // A batch job's finished allocations are its result; a failed allocation that was
        // not replaced is one the job is short of.
        let batch = j.job_type.is_some_and(|t| t.is_batch_like());
        running_of(
            h,
            j.wanted(ClientStatus::Running),
            j.desired(),
            j.wanted(ClientStatus::Pending),
            batch.then(|| j.wanted(ClientStatus::Complete)),
            j.groups.values().map(|g| g.failed_unreplaced).sum(),
        );
        h.raw("</div></td>");
        h.td("Source");
        source(h, &j.source, &snap.manifests);
        h.raw("</div></td>");
        h.td("Submitted")
            .ago(snap.now, j.submit_time)
            .raw("</div></td></tr>\n");
    }
    h.raw("</tbody>\n</table>\n");
    more(h, snap.jobs.len(), MAX_JOBS, "drover status");
    h.raw("</section>\n");
}
/// Opens a section with its heading; when `empty`, says `nothing` instead, closes it and
/// returns false.
fn open_section(
    h: &mut Html,
    id: &'static str,
    heading: &'static str,
    empty: bool,
    nothing: &'static str,
) -> bool {
    h.raw("<section id=\"")
        .raw(id)
        .raw("\">\n<h2>")
        .raw(heading)
        .raw("</h2>\n");
    if empty {
        h.raw("<p class=\"empty\">")
            .raw(nothing)
            .raw("</p>\n</section>\n");
    }
    !empty
}

fn more(h: &mut Html, total: usize, shown: usize, cli: &'static str) {
    if total > shown {
        h.raw("<p class=\"note\">")
            .num(total - shown)
            .raw(" more not shown; see <code>")
            .raw(cli)
            .raw("</code>.</p>\n");
    }
}

fn allocations(
    h: &mut Html,
    shown: &[Allocation],
    total: u64,
    nodes: &BTreeMap<&str, &str>,
    versions: &Versions,
    now: i64,
) {
    if !open_section(
        h,
        "allocations",
        "Allocations",
        shown.is_empty(),
        "No allocations.",
    ) {
        return;
    }
    h.raw("<table>\n<thead><tr><th>ID</th><th>Name</th><th>Node</th><th>Version</th>")
        .raw("<th>Status</th><th>Tasks</th><th>Health</th><th>Modified</th></tr></thead>\n")
        .raw("<tbody>\n");
    for a in shown {
        h.raw(if a.terminal() {
            "<tr class=\"past\">"
        } else {
            "<tr>"
        });
        h.td("ID")
            .raw("<code title=\"")
            .text(&a.id)
            .raw("\">")
            .text(short(&a.id))
            .raw("</code></div></td>");
        h.td("Name").text(&a.name).raw("</div></td>");
        h.td("Node")
            .text(
                nodes
                    .get(a.node_id.as_str())
                    .copied()
                    .unwrap_or(short(&a.node_id)),
            )
            .raw("</div></td>");
        h.td("Version").num(a.job_version).raw("</div></td>");
        h.td("Status")
            .badge(client_tone(a.client_status), a.client_status.as_str());
        if a.desired_status.as_str() != "run" {
            h.raw(" <span class=\"muted\">desired ")
                .text(a.desired_status.as_str())
                .raw("</span>");
        }
        if !a.client_description.is_empty() {
            h.raw("<br><span class=\"muted\">")
                .text(&a.client_description)
                .raw("</span>");
        }
        h.raw("</div></td>");
        h.td("Tasks");
        if a.task_states.is_empty() {
            h.raw("<span class=\"muted\">not started</span>");
        }
        for (name, t) in &a.task_states {
            let tone = match (t.state, t.failed) {
                (_, true) => Tone::Bad,
                (TaskStateKind::Running, _) => Tone::Good,
                (TaskStateKind::Pending, _) => Tone::Warn,
                (TaskStateKind::Dead, false) => Tone::Muted,
            };
            h.raw("<span class=\"task\">")
                .text(name)
                .raw(" ")
                .badge(tone, t.state.as_str());
            if t.restarts > 0 {
                h.raw(" <span class=\"warn\">")
                    .num(t.restarts)
                    .raw(if t.restarts == 1 {
                        " restart"
                    } else {
                        " restarts"
                    })
                    .raw("</span>");
            }
            h.raw("</span>");
        }
        h.raw("</div></td>");
        h.td("Health");
        let version = versions.get(&(a.namespace.clone(), a.job_id.clone(), a.job_version));
        match health(a, version, now) {
            Some((tone, label)) => h.badge(tone, &label),
            None => h.raw("<span class=\"muted\">–</span>"),
        };
        h.raw("</div></td>");
        h.td("Modified")
            .ago(now, a.modify_time)
            .raw("</div></td></tr>\n");
    }
    h.raw("</tbody>\n</table>\n");
    more(h, total as usize, shown.len(), "drover alloc status");
    h.raw("</section>\n");
}

fn node_table(h: &mut Html, snap: &Snapshot) {
    if !open_section(h, "nodes", "Nodes", snap.nodes.is_empty(), "No nodes.") {
        return;
    }
    h.raw("<table>\n<thead><tr><th>Name</th><th>ID</th><th>DC</th><th>Address</th>")
        .raw("<th>Status</th><th>Eligibility</th><th>Drivers</th><th>Allocations</th>")
        .raw("</tr></thead>\n<tbody>\n");
    for n in &snap.nodes {
        let running = snap.live_per_node.get(&n.id).copied().unwrap_or(0);
        h.raw("<tr>");
        h.td("Name")
            .raw("<strong>")
            .text(&n.name)
            .raw("</strong></div></td>");
        h.td("ID")
            .raw("<code title=\"")
            .text(&n.id)
            .raw("\">")
            .text(short(&n.id))
            .raw("</code></div></td>");
        h.td("DC").text(&n.datacenter).raw("</div></td>");
        h.td("Address").text(&n.address).raw("</div></td>");
        let status = n.status.as_str();
        h.td("Status").badge(
            if status == "ready" {
                Tone::Good
            } else {
                Tone::Bad
            },
            status,
        );
        if !n.status_description.is_empty() && status != "ready" {
            h.raw("<br><span class=\"muted\">")
                .text(&n.status_description)
                .raw("</span>");
        }
        h.raw("</div></td>");
        h.td("Eligibility").text(n.scheduling_eligibility.as_str());
        if n.drain {
            h.raw(" ").badge(Tone::Warn, "draining");
        }
        h.raw("</div></td>");
        h.td("Drivers");
        for (name, d) in n.drivers.iter().filter(|(_, d)| d.detected) {
            h.badge(if d.healthy { Tone::Good } else { Tone::Bad }, name)
                .raw(" ");
        }
        h.raw("</div></td>");
        h.td("Allocations")
            .num(running)
            .raw(" live</div></td></tr>\n");
    }
    h.raw("</tbody>\n</table>\n</section>\n");
}

/// One line of the recent-events list: a task event or an evaluation.
struct Event<'a> {
    time: i64,
    kind: &'static str,
    subject: String,
    what: &'a str,
    tone: Tone,
    message: String,
}

fn events(h: &mut Html, task_events: &[RecentTaskEvent], evals: &[Evaluation], now: i64) {
    let mut list: Vec<Event> = Vec::new();
    for r in task_events {
        let e = &r.event;
        let bad = e.exit_code.is_some_and(|c| c != 0)
            || matches!(
                e.event_type.as_str(),
                "Driver Failure" | "Not Restarting" | "Setup Failure" | "Killed"
            );
        list.push(Event {
            time: e.time,
            kind: "task",
            subject: format!("{} · {} · {}", r.alloc_name, r.task, short(&r.alloc_id)),
            what: &e.event_type,
            tone: if bad { Tone::Bad } else { Tone::Muted },
            message: e.message.clone(),
        });
    }
    for e in evals {
        let mut message = format!("triggered by {}", e.triggered_by.as_str());
        if !e.status_description.is_empty() {
            message.push_str(": ");
            message.push_str(&e.status_description);
        }
        if !e.failed_tg_allocs.is_empty() {
            let groups: Vec<&str> = e.failed_tg_allocs.keys().map(String::as_str).collect();
            message.push_str(&format!("; placement failed for {}", groups.join(", ")));
        }
        let status = e.status.as_str();
        list.push(Event {
            time: e.modify_time.max(e.create_time),
            kind: "evaluation",
            subject: format!("{} · {}", e.job_id, short(&e.id)),
            what: status,
            tone: match status {
                "complete" if e.failed_tg_allocs.is_empty() => Tone::Good,
                "failed" | "canceled" => Tone::Bad,
                _ => Tone::Warn,
            },
            message,
        });
    }
    list.sort_by_key(|e| std::cmp::Reverse(e.time));
    if !open_section(
        h,
        "events",
        "Recent events",
        list.is_empty(),
        "No events yet.",
    ) {
        return;
    }
    h.raw("<table>\n<thead><tr><th>When</th><th>Kind</th><th>Subject</th><th>Event</th>")
        .raw("<th>Message</th></tr></thead>\n<tbody>\n");
    for e in list.iter().take(MAX_EVENTS) {
        h.raw("<tr>");
        h.td("When").ago(now, e.time).raw("</div></td>");
        h.td("Kind").raw(e.kind).raw("</div></td>");
        h.td("Subject").text(&e.subject).raw("</div></td>");
        h.td("Event").badge(e.tone, e.what).raw("</div></td>");
        h.td("Message").text(&e.message).raw("</div></td></tr>\n");
    }
    h.raw("</tbody>\n</table>\n</section>\n");
}

fn render_job(p: &JobPage, nonce: &str) -> String {
    let job = &p.record.job;
    shell(
        &title(Some(&format!("job {}", job.id)), &p.manifests, &p.agent),
        nonce,
        &p.agent,
        p.manifests.dir.as_deref(),
        p.now,
        |h| {
            h.raw("<p class=\"crumbs\"><a href=\"/ui/\">← all jobs</a></p>\n");
            job_facts(h, p);
            if let JobSource::File(path) = &p.record.source {
                manifest_problems(h, &p.manifests, Some(path));
            }
            groups(h, p);
            let nodes: BTreeMap<&str, &str> = p
                .node_names
                .iter()
                .map(|(id, name)| (id.as_str(), name.as_str()))
                .collect();
            let shown = &p.allocs[..p.allocs.len().min(MAX_ALLOCS)];
            allocations(h, shown, p.allocs.len() as u64, &nodes, &p.versions, p.now);
            events(h, &p.task_events, &p.evals, p.now);
        },
    )
}

/// The job's head: status, type, version, where it came from.
fn job_facts(h: &mut Html, p: &JobPage) {
    let job = &p.record.job;
    let status = p.summary.status();
    h.raw("<section id=\"job\">\n<h2>Job <strong>")
        .text(&job.id)
        .raw("</strong> ")
        .badge(job_tone(status), status)
        .raw("</h2>\n<dl class=\"facts\">\n");
    if job.name != job.id {
        h.raw("<dt>Name</dt><dd>").text(&job.name).raw("</dd>\n");
    }
    if job.namespace != "default" {
        h.raw("<dt>Namespace</dt><dd>")
            .text(&job.namespace)
            .raw("</dd>\n");
    }
    h.raw("<dt>Type</dt><dd>")
        .text(job.job_type.as_str())
        .raw("</dd>\n<dt>Version</dt><dd>")
        .num(job.version)
        .raw("</dd>\n<dt>Priority</dt><dd>")
        .num(job.priority)
        .raw("</dd>\n<dt>Datacenters</dt><dd>")
        .text(&job.datacenters.join(", "))
        .raw("</dd>\n<dt>Source</dt><dd>");
    source(h, &p.record.source, &p.manifests);
    h.raw("</dd>\n<dt>Submitted</dt><dd>")
        .ago(p.now, p.record.submit_time)
        .raw("</dd>\n</dl>\n</section>\n");
}

/// Each group's count against its allocations: what the job is short of.
fn groups(h: &mut Html, p: &JobPage) {
    let s = &p.summary;
    if !open_section(
        h,
        "groups",
        "Task groups",
        s.groups.is_empty(),
        "No task groups.",
    ) {
        return;
    }
    h.raw("<table>\n<thead><tr><th>Group</th><th>Desired vs running</th><th>Complete</th>")
        .raw("<th>Failed</th><th>Lost</th></tr></thead>\n<tbody>\n");
    for (name, g) in &s.groups {
        let desired = if s.stop {
            0
        } else {
            g.count.map_or(0, u64::from)
        };
        let all = |st: ClientStatus| g.allocs.get(&st).copied().unwrap_or(0);
        h.raw("<tr>");
        h.td("Group").raw("<strong>").text(name).raw("</strong>");
        if g.count.is_none() {
            h.raw("<br><span class=\"muted\">not in the latest version</span>");
        }
        h.raw("</div></td>");
        h.td("Desired vs running");
        running_of(
            h,
            g.wanted(ClientStatus::Running),
            desired,
            g.wanted(ClientStatus::Pending),
            None,
            0,
        );
        h.raw("</div></td>");
        h.td("Complete")
            .num(all(ClientStatus::Complete))
            .raw("</div></td>");
        h.td("Failed");
        if all(ClientStatus::Failed) > 0 {
            h.raw("<span class=\"bad\">")
                .num(all(ClientStatus::Failed))
                .raw("</span>");
            if g.failed_unreplaced > 0 {
                h.raw(" <span class=\"muted\">(")
                    .num(g.failed_unreplaced)
                    .raw(" not replaced)</span>");
            }
        } else {
            h.raw("0");
        }
        h.raw("</div></td>");
        h.td("Lost")
            .num(all(ClientStatus::Lost))
            .raw("</div></td></tr>\n");
    }
    h.raw("</tbody>\n</table>\n</section>\n");
}

/// A job page for a job the store does not hold (purged, collected, or a wrong link).
fn render_missing_job(st: &AppState, id: &str, now: i64, nonce: &str) -> String {
    let manifests = st.manifests.lock().unwrap_or_else(|e| e.into_inner());
    shell(
        &title(Some("no such job"), &manifests, &st.agent),
        nonce,
        &st.agent,
        manifests.dir.as_deref(),
        now,
        |h| {
            h.raw("<p class=\"crumbs\"><a href=\"/ui/\">← all jobs</a></p>\n")
                .raw("<section id=\"job\">\n<h2>No job <strong>")
                .text(id)
                .raw("</strong></h2>\n<p class=\"empty\">The agent holds no job with this id: ")
                .raw("it was purged or collected, or never registered.</p>\n</section>\n");
        },
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::jobspec::{self, Diagnostic, ParseOptions, Pos};
    use crate::manifests::FileStatus;
    use crate::server::{Server, ServerConfig};
    use crate::state::Store;

    const HOSTILE_NAME: &str = "<script>document.title='pwned'</script>";
    const HOSTILE_FILE: &str = "/srv/jobs/<img src=x onerror=alert(1)>.nomad";

    fn app() -> Router {
        let store = Arc::new(Store::open_in_memory().expect("store"));
        let server = Server::with_store(store, ServerConfig::new("/nonexistent")).expect("server");
        let hcl = format!(
            "job \"web\" {{\n  name = \"{HOSTILE_NAME}\"\n  group \"g\" {{\n    task \"t\" {{\n      driver = \"raw_exec\"\n      config {{ command = \"/bin/true\" }}\n    }}\n  }}\n}}\n"
        );
        let parsed = jobspec::parse(
            Path::new("web.nomad"),
            hcl.as_bytes(),
            &ParseOptions::default(),
        )
        .expect("the job parses");
        server
            .register_job(parsed.job, JobSource::File("/srv/jobs/web.nomad".into()))
            .expect("registered");
        let mut manifests = ManifestsStatus {
            dir: Some(PathBuf::from("/srv/jobs")),
            ..Default::default()
        };
        manifests.files.insert(
            "/srv/jobs/web.nomad".into(),
            FileStatus {
                job_id: Some("web".into()),
                ..Default::default()
            },
        );
        manifests.files.insert(
            HOSTILE_FILE.into(),
            FileStatus {
                job_id: None,
                errors: vec![Diagnostic::error(
                    Pos::new(3, 13),
                    "job \"x\" > group \"g\"",
                    "unknown attribute \"</span><script>alert(2)</script>\"",
                )],
                ..Default::default()
            },
        );
        let state = Arc::new(AppState {
            server,
            manifests: Arc::new(Mutex::new(manifests)),
            agent: AgentInfo {
                name: "node-<1>".into(),
                region: "global".into(),
                datacenter: "dc1".into(),
                bind_addr: "127.0.0.1".into(),
                advertise_http: "127.0.0.1:4646".into(),
                advertise_rpc: "127.0.0.1:4647".into(),
                advertise_serf: "127.0.0.1:4648".into(),
                http_port: 4646,
                rpc_port: 4647,
                server: true,
                client: false,
                node_id: None,
            },
            logs: None,
            api_token: None,
        });
        super::super::router(state)
    }

    async fn get(app: &Router, uri: &str) -> Response {
        let req = Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        app.clone().oneshot(req).await.expect("response")
    }

    async fn body(resp: Response) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// GETs `uri`: its status and HTML, checked to carry the page's own script as its only
    /// one, with a CSP that lets only that script run.
    async fn html_page(app: &Router, uri: &str) -> (StatusCode, String) {
        let resp = get(app, uri).await;
        let status = resp.status();
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii")
            .to_string();
        let html = body(resp).await;
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|s| s.split('\'').next())
            .expect("a nonce in the CSP");
        assert!(
            html.contains(&format!("<script nonce=\"{nonce}\">")),
            "{csp}"
        );
        assert!(csp.contains("default-src 'none'"), "{csp}");
        (status, html)
    }

    #[tokio::test]
    async fn every_string_from_jobs_and_files_is_escaped() {
        let app = app();
        let (status, html) = html_page(&app, "/ui").await;
        assert_eq!(status, StatusCode::OK);

        assert!(
            html.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"),
            "the job's name is shown as text: {html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;.nomad:3:13"),
            "the broken file is shown relative to the directory, with line and column: {html}"
        );
        assert!(
            html.contains("unknown attribute &quot;&lt;/span&gt;&lt;script&gt;alert(2)"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("node-&lt;1&gt;"), "{html}");
        assert!(
            html.contains("<title>(1 broken file) drover · node-&lt;1&gt;</title>"),
            "{html}"
        );
    }

    #[tokio::test]
    async fn shows_jobs_with_version_and_source_and_is_phone_ready() {
        let app = app();
        let html = body(get(&app, "/ui/").await).await;
        for want in [
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript>",
            "<strong><a href=\"/ui/job/web\">web</a></strong>",
            "<code title=\"/srv/jobs/web.nomad\">web.nomad</code>",
            "<td data-label=\"Version\"><div>0</div></td>",
            "<td data-label=\"Allocations\"><div><span class=\"warn\">0/1 running</span></div></td>",
            "@media (max-width: 720px)",
        ] {
            assert!(html.contains(want), "missing {want:?} in {html}");
        }
        // Nothing is loaded from anywhere else.
        for external in ["http://", "https://", "src=\"", "<link rel=\"stylesheet\""] {
            assert!(!html.contains(external), "{external:?} in {html}");
        }
    }

    #[tokio::test]
    async fn root_redirects_to_the_ui_like_nomad_and_the_api_is_untouched() {
        let app = app();
        let resp = get(&app, "/").await;
        assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(resp.headers()[header::LOCATION], "/ui/");
        let resp = get(&app, "/?region=global").await;
        assert_eq!(resp.headers()[header::LOCATION], "/ui/?region=global");

        let resp = get(&app, "/v1/jobs").await;
        assert_eq!(resp.status(), StatusCode::OK);
        let list: serde_json::Value = serde_json::from_str(&body(resp).await).expect("json");
        assert_eq!(list[0]["ID"], "web");
        assert_eq!(get(&app, "/nope").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get(&app, "/v1/nope").await.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_job_page_shows_groups_allocations_and_the_file_escaped() {
        let app = app();
        let (status, html) = html_page(&app, "/ui/job/web").await;
        assert_eq!(status, StatusCode::OK);
        for want in [
            "<title>(1 broken file) job web · drover · node-&lt;1&gt;</title>",
            "<a href=\"/ui/\">← all jobs</a>",
            "<h2>Job <strong>web</strong> <span class=\"badge warn\">pending</span></h2>",
            "<dd>&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;</dd>",
            "<code title=\"/srv/jobs/web.nomad\">web.nomad</code>",
            "<td data-label=\"Group\"><div><strong>g</strong></div></td>",
            "<td data-label=\"Desired vs running\"><div><span class=\"warn\">0/1 running</span></div></td>",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript>",
        ] {
            assert!(html.contains(want), "missing {want:?} in {html}");
        }
        // Another file's error belongs on the main page, not on this job's.
        assert!(!html.contains("alert(2)"), "{html}");
        for external in ["http://", "https://", "src=\""] {
            assert!(!html.contains(external), "{external:?} in {html}");
        }

        let (status, html) = html_page(&app, "/ui/job/%3Cnope%3E").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            html.contains("No job <strong>&lt;nope&gt;</strong>"),
            "{html}"
        );
    }

    #[test]
    fn job_links_encode_the_id() {
        assert_eq!(job_href("default", "web"), "/ui/job/web");
        assert_eq!(
            job_href("prod", "a b/<c>"),
            "/ui/job/a%20b%2F%3Cc%3E?namespace=prod"
        );
    }

    #[test]
    fn health_waits_for_min_healthy_time_and_ends_with_the_allocation() {
        use crate::structs::mock;
        use drover_runtime::spec::TaskState;

        let s = 1_000_000_000;
        let job = mock::job();
        let mut a = mock::alloc(&job, 0);
        a.task_states.insert(
            "web".into(),
            TaskState {
                state: TaskStateKind::Running,
                ..Default::default()
            },
        );
        let now = 100 * s;
        a.running_since = Some(now - 4 * s);
        // mock::job() keeps Nomad's default min_healthy_time of 10 s.
        let (_, label) = health(&a, Some(&job), now).expect("live");
        assert_eq!(label, "healthy in 6s");
        a.running_since = Some(now - 60 * s);
        assert_eq!(health(&a, Some(&job), now).expect("live").1, "healthy");
        a.task_states.get_mut("web").expect("task").failed = true;
        assert_eq!(health(&a, Some(&job), now).expect("live").1, "unhealthy");
        a.client_status = ClientStatus::Complete;
        assert!(health(&a, Some(&job), now).is_none());
    }

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        let s = 1_000_000_000;
        assert_eq!(age(0), "0s ago");
        assert_eq!(age(59 * s), "59s ago");
        assert_eq!(age(61 * s), "1m ago");
        assert_eq!(age(3 * 3600 * s + 5 * 60 * s), "3h05m ago");
        assert_eq!(age(49 * 3600 * s), "2d ago");
        assert_eq!(
            age(-5 * s),
            "0s ago",
            "clock skew never shows a negative age"
        );
    }
}
