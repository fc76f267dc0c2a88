//! The agent's read-only status page, `GET /ui` (and `/ui/`; `/` redirects there, as Nomad's
//! agent does): jobs with their status, version and source file, the job files that fail to
//! parse, allocations with their tasks, restarts and health, nodes, and recent task events and
//! evaluations.
//!
//! The page is rendered here, on the server, so it reads the same without JavaScript (a
//! `<noscript>` meta refresh reloads it). With JavaScript, the inline script fetches the page
//! again every few seconds and swaps its content in place, keeping the scroll position and
//! showing the last good snapshot when the agent stops answering. Everything the page needs is
//! compiled into the binary (`include_str!`): no external asset, no CDN. Every string that
//! comes from a job file, a job, a task or the file system goes through [`Html::text`], which
//! escapes it; a per-response CSP nonce additionally keeps any script but the page's own from
//! running.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{AgentInfo, ApiError, AppState, blocking, convert};
use crate::manifests::ManifestsStatus;
use crate::state::{JobRecord, JobSource};
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
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let now = now_nanos();
    let html = {
        let nonce = nonce.clone();
        blocking(st, move |st| {
            let snap = Snapshot::read(st, now)?;
            Ok(render(&snap, &nonce))
        })
        .await?
    };
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    let mut resp = html.into_response();
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
    Ok(resp)
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Everything the page shows, read at one moment.
struct Snapshot {
    now: i64,
    agent: AgentInfo,
    manifests: ManifestsStatus,
    jobs: Vec<JobView>,
    nodes: Vec<Node>,
    evals: Vec<Evaluation>,
}

struct JobView {
    record: JobRecord,
    allocs: Vec<Allocation>,
    /// The job's versions by number, for each live allocation's group (health needs its
    /// update strategy); empty when the job has no live allocation.
    versions: BTreeMap<u64, Job>,
}

impl Snapshot {
    fn read(st: &AppState, now: i64) -> Result<Snapshot, ApiError> {
        let manifests = st
            .manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut jobs = Vec::new();
        for record in st.server.jobs()? {
            let ns = record.job.namespace.clone();
            let id = record.job.id.clone();
            let allocs = st.server.allocs_by_job(&ns, &id)?;
            // Only live allocations have a health to show; a page of mostly finished or
            // idle jobs need not read every job's history.
            let versions = if allocs.iter().any(|a| !a.terminal()) {
                st.server
                    .job_versions(&ns, &id)?
                    .into_iter()
                    .map(|j| (j.version, j))
                    .collect()
            } else {
                BTreeMap::new()
            };
            jobs.push(JobView {
                record,
                allocs,
                versions,
            });
        }
        jobs.sort_by(|a, b| a.record.job.id.cmp(&b.record.job.id));
        let mut nodes = st.server.nodes()?;
        nodes.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(Snapshot {
            now,
            agent: st.agent.clone(),
            manifests,
            jobs,
            nodes,
            evals: st.server.evals()?,
        })
    }
}

/// HTML being written. Markup can only be added from `&'static str` literals; everything else
/// goes through [`Html::text`], so no string from a job or a file reaches the page unescaped.
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

fn render(snap: &Snapshot, nonce: &str) -> String {
    let mut h = Html(String::with_capacity(32 * 1024));
    h.raw("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
        .raw("<meta name=\"color-scheme\" content=\"light dark\">\n")
        .raw("<title>")
        .text(&title(snap))
        .raw("</title>\n<link rel=\"icon\" href=\"data:,\">\n")
        .raw("<noscript><meta http-equiv=\"refresh\" content=\"")
        .num(NOSCRIPT_REFRESH_SECS)
        .raw("\"></noscript>\n<style nonce=\"")
        .text(nonce)
        .raw("\">")
        .raw(CSS)
        .raw("</style>\n</head>\n<body>\n<header class=\"top\">\n<h1>drover</h1>\n")
        .raw("<p class=\"agent\">");
    let a = &snap.agent;
    h.text(&a.name)
        .raw(" · ")
        .text(&a.region)
        .raw("/")
        .text(&a.datacenter)
        .raw(" · v")
        .text(env!("CARGO_PKG_VERSION"))
        .raw("</p>\n<p id=\"live\" class=\"live\" data-refresh=\"")
        .num(REFRESH_SECS)
        .raw("\">read-only · reloads every ")
        .num(NOSCRIPT_REFRESH_SECS)
        .raw(" s</p>\n</header>\n<main id=\"content\">\n");
    h.raw("<p class=\"snapshot\">Snapshot of ")
        .raw("<time datetime=\"")
        .text(&utc(snap.now))
        .raw("\">")
        .text(&utc(snap.now).replace('T', " "))
        .raw("</time></p>\n");
    summary(&mut h, snap);
    manifest_problems(&mut h, snap);
    jobs(&mut h, snap);
    allocations(&mut h, snap);
    nodes(&mut h, snap);
    events(&mut h, snap);
    h.raw("</main>\n<footer>This page only reads. Jobs change through the files in ");
    match &snap.manifests.dir {
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

/// The tab's title carries the one thing worth noticing from another tab: broken files.
fn title(snap: &Snapshot) -> String {
    let broken = snap.manifests.files_in_error();
    if broken > 0 {
        format!(
            "({broken} broken file{}) drover · {}",
            if broken == 1 { "" } else { "s" },
            snap.agent.name
        )
    } else {
        format!("drover · {}", snap.agent.name)
    }
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
        *job_status
            .entry(convert::job_status(&j.record.job, &j.allocs))
            .or_default() += 1;
    }
    let live = |s: ClientStatus| {
        snap.jobs
            .iter()
            .flat_map(|j| &j.allocs)
            .filter(|a| a.client_status == s && !a.server_terminal())
            .count()
    };
    let failed = snap
        .jobs
        .iter()
        .flat_map(|j| &j.allocs)
        .filter(|a| a.client_status == ClientStatus::Failed)
        .count();
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
    let running = live(ClientStatus::Running);
    let pending = live(ClientStatus::Pending);
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

fn manifest_problems(h: &mut Html, snap: &Snapshot) {
    let m = &snap.manifests;
    let broken: Vec<_> = m
        .files
        .iter()
        .filter(|(_, f)| !f.errors.is_empty())
        .collect();
    if broken.is_empty() && m.error.is_none() && m.held.is_none() {
        return;
    }
    h.raw("<section id=\"problems\" class=\"problems\">\n<h2>Job files with errors</h2>\n")
        .raw("<p class=\"note\">Nothing that runs was changed: each job keeps its last good ")
        .raw("version until its file parses again.</p>\n<ul>\n");
    for msg in m.error.iter().chain(m.held.iter()) {
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

fn jobs(h: &mut Html, snap: &Snapshot) {
    h.raw("<section id=\"jobs\">\n<h2>Jobs</h2>\n");
    if snap.jobs.is_empty() {
        h.raw("<p class=\"empty\">No jobs.</p>\n</section>\n");
        return;
    }
    h.raw("<table>\n<thead><tr><th>ID</th><th>Status</th><th>Type</th><th>Version</th>")
        .raw("<th>Allocations</th><th>Source</th><th>Submitted</th></tr></thead>\n<tbody>\n");
    let dir = snap.manifests.dir.as_deref();
    for j in snap.jobs.iter().take(MAX_JOBS) {
        let job = &j.record.job;
        let status = convert::job_status(job, &j.allocs);
        h.raw("<tr>");
        h.td("ID").raw("<strong>").text(&job.id).raw("</strong>");
        if job.name != job.id {
            h.raw("<br><span class=\"muted\">")
                .text(&job.name)
                .raw("</span>");
        }
        h.raw("</div></td>");
        h.td("Status")
            .badge(job_tone(status), status)
            .raw("</div></td>");
        h.td("Type").text(job.job_type.as_str()).raw("</div></td>");
        h.td("Version").num(job.version).raw("</div></td>");
        let desired: u32 = if job.stop {
            0
        } else {
            job.task_groups.iter().map(|g| g.count).sum()
        };
        let count = |s: ClientStatus| {
            j.allocs
                .iter()
                .filter(|a| a.client_status == s && !a.server_terminal())
                .count()
        };
        h.td("Allocations")
            .num(count(ClientStatus::Running))
            .raw("/")
            .num(desired)
            .raw(" running");
        let pending = count(ClientStatus::Pending);
        if pending > 0 {
            h.raw(", <span class=\"warn\">")
                .num(pending)
                .raw(" pending</span>");
        }
        // A batch job's finished allocations are its result; a failed allocation that was
        // not replaced is one the job is short of.
        let complete = count(ClientStatus::Complete);
        if complete > 0 && job.job_type.is_batch_like() {
            h.raw(", <span class=\"good\">")
                .num(complete)
                .raw(" complete</span>");
        }
        let failed = j
            .allocs
            .iter()
            .filter(|a| a.client_status == ClientStatus::Failed && a.next_allocation.is_none())
            .count();
        if failed > 0 {
            h.raw(", <span class=\"bad\">")
                .num(failed)
                .raw(" failed</span>");
        }
        h.raw("</div></td>");
        h.td("Source");
        match &j.record.source {
            JobSource::File(p) => {
                h.raw("<code title=\"")
                    .text(&p.display().to_string())
                    .raw("\">")
                    .text(&display_path(p, dir))
                    .raw("</code>");
                let broken = snap
                    .manifests
                    .files
                    .get(p)
                    .is_some_and(|f| !f.errors.is_empty());
                if broken {
                    h.raw(" ").badge(Tone::Bad, "file has errors");
                }
            }
            JobSource::Api => {
                h.raw("<span class=\"muted\">API</span>");
            }
        }
        h.raw("</div></td>");
        h.td("Submitted")
            .ago(snap.now, j.record.submit_time)
            .raw("</div></td></tr>\n");
    }
    h.raw("</tbody>\n</table>\n");
    more(h, snap.jobs.len(), MAX_JOBS, "drover status");
    h.raw("</section>\n");
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

fn allocations(h: &mut Html, snap: &Snapshot) {
    let nodes: BTreeMap<&str, &Node> = snap.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut live: Vec<(&JobView, &Allocation)> = Vec::new();
    let mut past: Vec<(&JobView, &Allocation)> = Vec::new();
    for j in &snap.jobs {
        for a in &j.allocs {
            if a.terminal() {
                past.push((j, a));
            } else {
                live.push((j, a));
            }
        }
    }
    let total = live.len() + past.len();
    live.sort_by(|x, y| {
        (x.1.job_id.as_str(), x.1.name.as_str()).cmp(&(y.1.job_id.as_str(), y.1.name.as_str()))
    });
    past.sort_by_key(|(_, a)| std::cmp::Reverse(a.modify_time));
    past.truncate(MAX_TERMINAL_ALLOCS);
    let shown: Vec<_> = live.into_iter().chain(past).take(MAX_ALLOCS).collect();

    h.raw("<section id=\"allocations\">\n<h2>Allocations</h2>\n");
    if shown.is_empty() {
        h.raw("<p class=\"empty\">No allocations.</p>\n</section>\n");
        return;
    }
    h.raw("<table>\n<thead><tr><th>ID</th><th>Name</th><th>Node</th><th>Version</th>")
        .raw("<th>Status</th><th>Tasks</th><th>Health</th><th>Modified</th></tr></thead>\n")
        .raw("<tbody>\n");
    for (j, a) in &shown {
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
                    .map_or(short(&a.node_id), |n| n.name.as_str()),
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
        match health(a, j.versions.get(&a.job_version), snap.now) {
            Some((tone, label)) => h.badge(tone, &label),
            None => h.raw("<span class=\"muted\">–</span>"),
        };
        h.raw("</div></td>");
        h.td("Modified")
            .ago(snap.now, a.modify_time)
            .raw("</div></td></tr>\n");
    }
    h.raw("</tbody>\n</table>\n");
    more(h, total, shown.len(), "drover alloc status");
    h.raw("</section>\n");
}

fn nodes(h: &mut Html, snap: &Snapshot) {
    h.raw("<section id=\"nodes\">\n<h2>Nodes</h2>\n");
    if snap.nodes.is_empty() {
        h.raw("<p class=\"empty\">No nodes.</p>\n</section>\n");
        return;
    }
    h.raw("<table>\n<thead><tr><th>Name</th><th>ID</th><th>DC</th><th>Address</th>")
        .raw("<th>Status</th><th>Eligibility</th><th>Drivers</th><th>Allocations</th>")
        .raw("</tr></thead>\n<tbody>\n");
    for n in &snap.nodes {
        let running = snap
            .jobs
            .iter()
            .flat_map(|j| &j.allocs)
            .filter(|a| a.node_id == n.id && !a.terminal())
            .count();
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

fn events(h: &mut Html, snap: &Snapshot) {
    let mut list: Vec<Event> = Vec::new();
    for a in snap.jobs.iter().flat_map(|j| &j.allocs) {
        for (task, t) in &a.task_states {
            for e in &t.events {
                let bad = e.exit_code.is_some_and(|c| c != 0)
                    || matches!(
                        e.event_type.as_str(),
                        "Driver Failure" | "Not Restarting" | "Setup Failure" | "Killed"
                    );
                list.push(Event {
                    time: e.time,
                    kind: "task",
                    subject: format!("{} · {task} · {}", a.name, short(&a.id)),
                    what: &e.event_type,
                    tone: if bad { Tone::Bad } else { Tone::Muted },
                    message: e.message.clone(),
                });
            }
        }
    }
    for e in &snap.evals {
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
    h.raw("<section id=\"events\">\n<h2>Recent events</h2>\n");
    if list.is_empty() {
        h.raw("<p class=\"empty\">No events yet.</p>\n</section>\n");
        return;
    }
    h.raw("<table>\n<thead><tr><th>When</th><th>Kind</th><th>Subject</th><th>Event</th>")
        .raw("<th>Message</th></tr></thead>\n<tbody>\n");
    for e in list.iter().take(MAX_EVENTS) {
        h.raw("<tr>");
        h.td("When").ago(snap.now, e.time).raw("</div></td>");
        h.td("Kind").raw(e.kind).raw("</div></td>");
        h.td("Subject").text(&e.subject).raw("</div></td>");
        h.td("Event").badge(e.tone, e.what).raw("</div></td>");
        h.td("Message").text(&e.message).raw("</div></td></tr>\n");
    }
    h.raw("</tbody>\n</table>\n</section>\n");
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

    #[tokio::test]
    async fn every_string_from_jobs_and_files_is_escaped() {
        let app = app();
        let resp = get(&app, "/ui").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii")
            .to_string();
        let html = body(resp).await;

        // The page's own script is the only one, and the CSP lets only it run.
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
            "<strong>web</strong>",
            "<code title=\"/srv/jobs/web.nomad\">web.nomad</code>",
            "<td data-label=\"Version\"><div>0</div></td>",
            "<td data-label=\"Allocations\"><div>0/1 running</div></td>",
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
