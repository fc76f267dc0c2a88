//! The YAML form of a job: the HCL-JSON shape (a labelled block is a mapping from its label to
//! its body) written as YAML, so it maps 1:1 onto the same model and is decoded by the same code
//! as HCL. Read with serde-saphyr keeping every node's line and column; written from the model.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json, json};
use serde_saphyr::Spanned;

use super::error::Diagnostic;
use super::fields::format_duration;
use super::tree::{Body, Entry, Item, ItemKind, Pos, Value, ValueKind};
use crate::structs::*;

/// One YAML node, deserialized with its position.
enum Node {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Node, D::Error> {
        Node::deserialize(de)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Number(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Spanned<Node>>()? {
            out.push(v);
        }
        Ok(Node::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out: Vec<(Spanned<String>, Spanned<Node>)> = Vec::new();
        // A set, not a scan of `out`: a mapping of n keys must not cost n².
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = map.next_key::<Spanned<String>>()? {
            let v = map.next_value::<Spanned<Node>>()?;
            if !seen.insert(k.value.clone()) {
                return Err(de::Error::custom(format!("duplicate key {:?}", k.value)));
            }
            out.push((k, v));
        }
        Ok(Node::Map(out))
    }
}

fn pos_of<T>(s: &Spanned<T>) -> Pos {
    let l = s.referenced;
    Pos::new(l.line().max(1) as u32, l.column().max(1) as u32)
}

fn to_value(n: Spanned<Node>) -> Value {
    let pos = pos_of(&n);
    let kind = match n.value {
        Node::Null => ValueKind::Null,
        Node::Bool(b) => ValueKind::Bool(b),
        Node::Number(x) => ValueKind::Number(x),
        Node::String(s) => ValueKind::String(s),
        Node::List(items) => ValueKind::List(items.into_iter().map(to_value).collect()),
        Node::Map(entries) => ValueKind::Map(
            entries
                .into_iter()
                .map(|(k, v)| Entry {
                    pos: pos_of(&k),
                    key: k.value,
                    value: to_value(v),
                })
                .collect(),
        ),
    };
    Value { pos, kind }
}

/// How deeply a YAML job file may nest mappings and lists.
const MAX_DEPTH: usize = 24;

/// Reads a YAML job file into the tree; the top level is a mapping with one `job` key.
pub fn read(src: &str) -> Result<Body, Diagnostic> {
    // Each level of nesting costs serde-saphyr's deserializer a deep stack of frames (about
    // 40 KiB in a debug build); its default limit of 64 levels overflows a 2 MiB thread stack
    // first. No job file nests half this deep.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    let root: Spanned<Node> = serde_saphyr::from_str_with_options(src, options).map_err(|e| {
        let pos = e.location().map_or(Pos::new(1, 1), |l| {
            Pos::new(l.line().max(1) as u32, l.column().max(1) as u32)
        });
        let msg = e.to_string();
        // The first line holds the reason; the rest repeats the source around it.
        let first = msg.lines().next().unwrap_or("invalid YAML").trim();
        Diagnostic::error(
            pos,
            "",
            format!("invalid YAML: {}", clean_yaml_message(first)),
        )
    })?;
    let pos = pos_of(&root);
    match to_value(root) {
        Value {
            kind: ValueKind::Map(entries),
            ..
        } => Ok(Body {
            pos,
            items: entries
                .into_iter()
                .map(|e| Item {
                    key: e.key,
                    pos: e.pos,
                    kind: ItemKind::Attr(e.value),
                })
                .collect(),
        }),
        other => Err(Diagnostic::error(
            other.pos,
            "",
            format!(
                "expected a mapping with a `job` key at the top of the file, found {}",
                other.kind.type_name()
            ),
        )),
    }
}

/// serde-saphyr's messages repeat the position the diagnostic already shows and can end with
/// advice about its own API; keep only the reason.
fn clean_yaml_message(m: &str) -> String {
    let mut m = m.strip_prefix("error: ").unwrap_or(m);
    if let Some(rest) = m.strip_prefix("line ")
        && let Some((loc, reason)) = rest.split_once(": ")
        && loc
            .split(" column ")
            .all(|n| n.chars().all(|c| c.is_ascii_digit()))
    {
        m = reason;
    }
    if m.starts_with("budget breached: Depth") || m == "recursion limit exceeded" {
        return format!("invalid nesting depth; expected at most {MAX_DEPTH} nested levels");
    }
    if let Some(what) = m.strip_prefix("budget breached: ") {
        // serde-saphyr's limits on nodes, scalar bytes, aliases…: a job file is far below them.
        return format!("the document is larger than a job file can be ({what})");
    }
    if let Some(key) = m.strip_prefix("duplicate mapping key: ") {
        let key = key.split(", set DuplicateKeyPolicy").next().unwrap_or(key);
        return format!("duplicate key {key:?}: a key may appear once in a mapping");
    }
    if m.is_empty() {
        "unexpected input".into()
    } else {
        m.to_string()
    }
}

/// Writes a job in the YAML form; reading it back gives the identical job.
pub fn to_yaml(job: &Job) -> String {
    let doc = json!({ "job": { job.id.clone(): encode_job(job) } });
    serde_saphyr::to_string(&doc).unwrap_or_else(|e| format!("# failed to write YAML: {e}\n"))
}

fn dur(d: std::time::Duration) -> Json {
    Json::String(format_duration(d))
}

fn put_map(m: &mut Map<String, Json>, key: &str, map: &std::collections::BTreeMap<String, String>) {
    if !map.is_empty() {
        m.insert(key.into(), json!(map));
    }
}

fn put_opt<T: serde::Serialize>(m: &mut Map<String, Json>, key: &str, v: &Option<T>) {
    if let Some(v) = v {
        m.insert(key.into(), json!(v));
    }
}

fn put_list(m: &mut Map<String, Json>, key: &str, v: &[String]) {
    if !v.is_empty() {
        m.insert(key.into(), json!(v));
    }
}

/// The job in the HCL-JSON shape: the same names as the HCL attributes and blocks.
pub(crate) fn encode_job(job: &Job) -> Json {
    let mut m = Map::new();
    if job.name != job.id {
        m.insert("name".into(), json!(job.name));
    }
    m.insert("namespace".into(), json!(job.namespace));
    m.insert("region".into(), json!(job.region));
    m.insert("type".into(), json!(job.job_type.as_str()));
    m.insert("priority".into(), json!(job.priority));
    m.insert("all_at_once".into(), json!(job.all_at_once));
    m.insert("datacenters".into(), json!(job.datacenters));
    m.insert("node_pool".into(), json!(job.node_pool));
    encode_placement(&mut m, &job.constraints, &job.affinities, &job.spreads);
    m.insert("update".into(), encode_update(&job.update));
    put_map(&mut m, "meta", &job.meta);
    let mut groups = Map::new();
    for g in &job.task_groups {
        groups.insert(g.name.clone(), encode_group(g));
    }
    m.insert("group".into(), Json::Object(groups));
    Json::Object(m)
}

fn encode_placement(
    m: &mut Map<String, Json>,
    cs: &[Constraint],
    afs: &[Affinity],
    sps: &[Spread],
) {
    if !cs.is_empty() {
        let list: Vec<Json> = cs
            .iter()
            .map(|c| json!({"attribute": c.attribute, "operator": c.operator, "value": c.value}))
            .collect();
        m.insert("constraint".into(), Json::Array(list));
    }
    if !afs.is_empty() {
        let list: Vec<Json> = afs
            .iter()
            .map(|a| json!({"attribute": a.attribute, "operator": a.operator, "value": a.value, "weight": a.weight}))
            .collect();
        m.insert("affinity".into(), Json::Array(list));
    }
    if !sps.is_empty() {
        let list: Vec<Json> = sps
            .iter()
            .map(|s| {
                let mut targets = Map::new();
                for t in &s.targets {
                    targets.insert(
                        t.value.clone(),
                        json!({"value": t.value, "percent": t.percent}),
                    );
                }
                let mut o = Map::new();
                o.insert("attribute".into(), json!(s.attribute));
                o.insert("weight".into(), json!(s.weight));
                if !targets.is_empty() {
                    o.insert("target".into(), Json::Object(targets));
                }
                Json::Object(o)
            })
            .collect();
        m.insert("spread".into(), Json::Array(list));
    }
}

fn encode_update(u: &UpdateStrategy) -> Json {
    json!({
        "max_parallel": u.max_parallel,
        "health_check": u.health_check,
        "min_healthy_time": dur(u.min_healthy_time),
        "healthy_deadline": dur(u.healthy_deadline),
        "progress_deadline": dur(u.progress_deadline),
        "auto_revert": u.auto_revert,
        "auto_promote": u.auto_promote,
        "canary": u.canary,
        "stagger": dur(u.stagger),
    })
}

fn encode_restart(r: &RestartPolicy) -> Json {
    json!({
        "attempts": r.attempts,
        "interval": dur(r.interval),
        "delay": dur(r.delay),
        "mode": r.mode.as_str(),
        "render_templates": r.render_templates,
    })
}

fn encode_group(g: &TaskGroup) -> Json {
    let mut m = Map::new();
    m.insert("count".into(), json!(g.count));
    encode_placement(&mut m, &g.constraints, &g.affinities, &g.spreads);
    if let Some(n) = g.networks.first() {
        m.insert("network".into(), encode_network(n));
    }
    if !g.services.is_empty() {
        m.insert(
            "service".into(),
            Json::Array(g.services.iter().map(encode_service).collect()),
        );
    }
    m.insert("restart".into(), encode_restart(&g.restart));
    let r = &g.reschedule;
    m.insert(
        "reschedule".into(),
        json!({
            "attempts": r.attempts,
            "interval": dur(r.interval),
            "delay": dur(r.delay),
            "delay_function": r.delay_function,
            "max_delay": dur(r.max_delay),
            "unlimited": r.unlimited,
        }),
    );
    m.insert("update".into(), encode_update(&g.update));
    m.insert(
        "ephemeral_disk".into(),
        json!({"size": g.ephemeral_disk.size, "sticky": g.ephemeral_disk.sticky, "migrate": g.ephemeral_disk.migrate}),
    );
    put_map(&mut m, "meta", &g.meta);
    m.insert("shutdown_delay".into(), dur(g.shutdown_delay));
    if let Some(d) = g.stop_after_client_disconnect {
        m.insert("stop_after_client_disconnect".into(), dur(d));
    }
    if let Some(d) = g.max_client_disconnect {
        m.insert("max_client_disconnect".into(), dur(d));
    }
    let mut tasks = Map::new();
    for t in &g.tasks {
        tasks.insert(t.name.clone(), encode_task(t));
    }
    m.insert("task".into(), Json::Object(tasks));
    Json::Object(m)
}

fn encode_network(n: &NetworkResource) -> Json {
    let mut m = Map::new();
    m.insert("mode".into(), json!(n.mode));
    put_opt(&mut m, "hostname", &n.hostname);
    if let Some(dns) = &n.dns {
        m.insert(
            "dns".into(),
            json!({"servers": dns.servers, "searches": dns.searches, "options": dns.options}),
        );
    }
    let mut ports = Map::new();
    for (p, is_static) in n
        .reserved_ports
        .iter()
        .map(|p| (p, true))
        .chain(n.dynamic_ports.iter().map(|p| (p, false)))
    {
        let mut o = Map::new();
        if is_static {
            o.insert("static".into(), json!(p.value));
        }
        if p.to != 0 {
            o.insert("to".into(), json!(p.to));
        }
        put_opt(&mut o, "host_network", &p.host_network);
        if p.ignore_collision {
            o.insert("ignore_collision".into(), json!(true));
        }
        ports.insert(p.label.clone(), Json::Object(o));
    }
    if !ports.is_empty() {
        m.insert("port".into(), Json::Object(ports));
    }
    Json::Object(m)
}

fn encode_check_restart(c: &CheckRestart) -> Json {
    json!({"limit": c.limit, "grace": dur(c.grace), "ignore_warnings": c.ignore_warnings})
}

fn encode_service(s: &Service) -> Json {
    let mut m = Map::new();
    m.insert("name".into(), json!(s.name));
    put_opt(&mut m, "port", &s.port);
    put_list(&mut m, "tags", &s.tags);
    put_list(&mut m, "canary_tags", &s.canary_tags);
    m.insert("address_mode".into(), json!(s.address_mode));
    put_opt(&mut m, "address", &s.address);
    m.insert("provider".into(), json!(s.provider));
    put_opt(&mut m, "task", &s.task);
    put_map(&mut m, "meta", &s.meta);
    if let Some(c) = &s.check_restart {
        m.insert("check_restart".into(), encode_check_restart(c));
    }
    m.insert("on_update".into(), json!(s.on_update));
    if !s.checks.is_empty() {
        let checks: Vec<Json> = s
            .checks
            .iter()
            .map(|c| {
                let mut o = Map::new();
                o.insert("name".into(), json!(c.name));
                o.insert("type".into(), json!(c.check_type));
                put_opt(&mut o, "port", &c.port);
                put_opt(&mut o, "path", &c.path);
                put_opt(&mut o, "method", &c.method);
                put_opt(&mut o, "protocol", &c.protocol);
                put_opt(&mut o, "body", &c.body);
                if !c.header.is_empty() {
                    o.insert("header".into(), json!(c.header));
                }
                o.insert("interval".into(), dur(c.interval));
                o.insert("timeout".into(), dur(c.timeout));
                put_opt(&mut o, "address_mode", &c.address_mode);
                put_opt(&mut o, "command", &c.command);
                put_list(&mut o, "args", &c.args);
                put_opt(&mut o, "task", &c.task);
                o.insert("tls_skip_verify".into(), json!(c.tls_skip_verify));
                put_opt(&mut o, "initial_status", &c.initial_status);
                o.insert(
                    "success_before_passing".into(),
                    json!(c.success_before_passing),
                );
                o.insert(
                    "failures_before_critical".into(),
                    json!(c.failures_before_critical),
                );
                if let Some(cr) = &c.check_restart {
                    o.insert("check_restart".into(), encode_check_restart(cr));
                }
                o.insert("on_update".into(), json!(c.on_update));
                Json::Object(o)
            })
            .collect();
        m.insert("check".into(), Json::Array(checks));
    }
    Json::Object(m)
}

fn encode_task(t: &Task) -> Json {
    let mut m = Map::new();
    m.insert("driver".into(), json!(t.driver));
    m.insert("config".into(), encode_config(&t.config));
    put_map(&mut m, "env", &t.env);
    put_map(&mut m, "meta", &t.meta);
    let r = &t.resources;
    let mut res = Map::new();
    if r.cores > 0 {
        res.insert("cores".into(), json!(r.cores));
    } else {
        res.insert("cpu".into(), json!(r.cpu));
    }
    res.insert("memory".into(), json!(r.memory));
    if r.memory_max > 0 {
        res.insert("memory_max".into(), json!(r.memory_max));
    }
    m.insert("resources".into(), Json::Object(res));
    if let Some(rp) = &t.restart {
        m.insert("restart".into(), encode_restart(rp));
    }
    if !t.services.is_empty() {
        m.insert(
            "service".into(),
            Json::Array(t.services.iter().map(encode_service).collect()),
        );
    }
    if !t.artifacts.is_empty() {
        let arts: Vec<Json> = t
            .artifacts
            .iter()
            .map(|a| {
                let mut o = Map::new();
                o.insert("source".into(), json!(a.source));
                o.insert("destination".into(), json!(a.destination));
                o.insert("mode".into(), json!(a.mode));
                put_map(&mut o, "options", &a.options);
                put_map(&mut o, "headers", &a.headers);
                if a.chown {
                    o.insert("chown".into(), json!(true));
                }
                Json::Object(o)
            })
            .collect();
        m.insert("artifact".into(), Json::Array(arts));
    }
    encode_placement(&mut m, &t.constraints, &t.affinities, &[]);
    m.insert("kill_timeout".into(), dur(t.kill_timeout));
    put_opt(&mut m, "kill_signal", &t.kill_signal);
    m.insert("shutdown_delay".into(), dur(t.shutdown_delay));
    put_opt(&mut m, "user", &t.user);
    m.insert("leader".into(), json!(t.leader));
    m.insert(
        "logs".into(),
        json!({"max_files": t.logs.max_files, "max_file_size": t.logs.max_file_size, "disabled": t.logs.disabled}),
    );
    Json::Object(m)
}

/// The driver config under its HCL names, unset fields left out. Shared with the API JSON
/// writer: Nomad's `Config` is the same free map.
pub(super) fn encode_config(c: &TaskConfig) -> Json {
    let mut m = Map::new();
    match c {
        TaskConfig::Docker(d) => {
            m.insert("image".into(), json!(d.image));
            put_opt(&mut m, "command", &d.command);
            put_list(&mut m, "args", &d.args);
            put_opt(&mut m, "entrypoint", &d.entrypoint);
            put_list(&mut m, "ports", &d.ports);
            put_list(&mut m, "dns_servers", &d.dns_servers);
            put_list(&mut m, "dns_search_domains", &d.dns_search_domains);
            put_list(&mut m, "dns_options", &d.dns_options);
            put_list(&mut m, "volumes", &d.volumes);
            put_map(&mut m, "labels", &d.labels);
            put_opt(&mut m, "network_mode", &d.network_mode);
            put_opt(&mut m, "hostname", &d.hostname);
            put_list(&mut m, "extra_hosts", &d.extra_hosts);
            put_opt(&mut m, "work_dir", &d.work_dir);
            for (k, v) in [
                ("privileged", d.privileged),
                ("init", d.init),
                ("interactive", d.interactive),
                ("tty", d.tty),
                ("force_pull", d.force_pull),
            ] {
                if v {
                    m.insert(k.into(), json!(true));
                }
            }
            put_list(&mut m, "cap_add", &d.cap_add);
            put_list(&mut m, "cap_drop", &d.cap_drop);
        }
        TaskConfig::RawExec(r) => {
            m.insert("command".into(), json!(r.command));
            put_list(&mut m, "args", &r.args);
            put_opt(&mut m, "work_dir", &r.work_dir);
        }
    }
    Json::Object(m)
}
