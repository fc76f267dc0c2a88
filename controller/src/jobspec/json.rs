//! Nomad's API JSON form of a job, the shape `nomad job run -output` and `GET /v1/job/:id` print
//! (`{"Job": {"ID": …, "TaskGroups": [{"Tasks": [{"Config": {…}}]}]}}`), written from the model
//! and read back.
//!
//! Reading does not decode the API structs itself: it renames the API fields into the HCL-JSON
//! tree the HCL and YAML readers produce (`TaskGroups[0]` with `Name` "web" becomes
//! `group "web"`, nanosecond durations become `"30s"`) and runs the one [`decode`] over it, so
//! JSON jobs get exactly the defaults and validation HCL jobs get. The decoder's messages are
//! then renamed back to API field paths (`Job > TaskGroups[0] "web" > Count`), keeping the line
//! and column of the JSON they came from: the JSON is read by a small position-keeping reader,
//! after serde_json has vouched for its syntax.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use super::Parsed;
use super::decode;
use super::error::{Diagnostic, JobspecError};
use super::fields::{format_duration, type_error};
use super::tree::{Body, Entry, Item, ItemKind, Pos, Value, ValueKind};
use super::yaml::encode_config;
use crate::structs::*;

// ---------------------------------------------------------------------------------------------
// Writing

/// The job wrapped as Nomad's CLI and `/v1/jobs` take it: `{"Job": {…}}`.
pub fn to_api_json(job: &Job) -> Json {
    object([("Job", to_api_job(job))])
}

/// The job in Nomad's API shape, every field of Nomad's `api.Job` present in Nomad's order.
/// Fields drover does not model print as Nomad prints them unset (`null`, `""`, `false`);
/// durations are integer nanoseconds, as Go's `time.Duration` marshals.
pub fn to_api_job(job: &Job) -> Json {
    object([
        ("Region", Json::from(job.region.as_str())),
        ("Namespace", Json::from(job.namespace.as_str())),
        ("ID", Json::from(job.id.as_str())),
        ("Name", Json::from(job.name.as_str())),
        ("Type", Json::from(job.job_type.as_str())),
        ("Priority", Json::from(job.priority)),
        ("AllAtOnce", Json::from(job.all_at_once)),
        ("Datacenters", Json::from(job.datacenters.clone())),
        ("NodePool", Json::from(job.node_pool.as_str())),
        ("Constraints", list(&job.constraints, api_constraint)),
        ("Affinities", list(&job.affinities, api_affinity)),
        (
            "TaskGroups",
            Json::Array(job.task_groups.iter().map(api_group).collect()),
        ),
        ("Update", api_update(&job.update)),
        ("Multiregion", Json::Null),
        ("Spreads", list(&job.spreads, api_spread)),
        ("Periodic", Json::Null),
        ("ParameterizedJob", Json::Null),
        // The model keeps no job-level policy: it is merged into every group's.
        ("Reschedule", Json::Null),
        ("Migrate", Json::Null),
        ("Meta", string_map(&job.meta)),
        ("UI", Json::Null),
        ("Stop", Json::from(job.stop)),
        ("ParentID", Json::Null),
        ("Dispatched", Json::from(false)),
        ("DispatchIdempotencyToken", Json::Null),
        ("Payload", Json::Null),
        ("ConsulNamespace", Json::Null),
        ("VaultNamespace", Json::Null),
        ("NomadTokenID", Json::Null),
        ("Status", Json::Null),
        ("StatusDescription", Json::Null),
        ("Stable", Json::Null),
        ("Version", Json::from(job.version)),
        ("SubmitTime", Json::Null),
        ("CreateIndex", Json::Null),
        ("ModifyIndex", Json::Null),
        ("JobModifyIndex", Json::Null),
        ("VersionTag", Json::Null),
    ])
}

fn object<const N: usize>(fields: [(&str, Json); N]) -> Json {
    Json::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<_, _>>(),
    )
}

/// Go's `time.Duration` is an int64 of nanoseconds.
fn nanos(d: Duration) -> Json {
    Json::from(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn opt_nanos(d: Option<Duration>) -> Json {
    d.map_or(Json::Null, nanos)
}

/// Nomad's plain `string` fields print `""` when unset.
fn opt_string(s: &Option<String>) -> Json {
    Json::from(s.as_deref().unwrap_or(""))
}

/// Go prints a nil slice as `null`; Nomad leaves unset lists nil.
fn strings(v: &[String]) -> Json {
    if v.is_empty() {
        Json::Null
    } else {
        Json::from(v.to_vec())
    }
}

fn string_map(m: &BTreeMap<String, String>) -> Json {
    if m.is_empty() {
        Json::Null
    } else {
        Json::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), Json::from(v.as_str())))
                .collect(),
        )
    }
}

fn list<T>(items: &[T], f: impl Fn(&T) -> Json) -> Json {
    if items.is_empty() {
        Json::Null
    } else {
        Json::Array(items.iter().map(f).collect())
    }
}

fn api_constraint(c: &Constraint) -> Json {
    object([
        ("LTarget", Json::from(c.attribute.as_str())),
        ("RTarget", Json::from(c.value.as_str())),
        ("Operand", Json::from(c.operator.as_str())),
    ])
}

fn api_affinity(a: &Affinity) -> Json {
    object([
        ("LTarget", Json::from(a.attribute.as_str())),
        ("RTarget", Json::from(a.value.as_str())),
        ("Operand", Json::from(a.operator.as_str())),
        ("Weight", Json::from(a.weight)),
    ])
}

fn api_spread(s: &Spread) -> Json {
    object([
        ("Attribute", Json::from(s.attribute.as_str())),
        ("Weight", Json::from(s.weight)),
        (
            "SpreadTarget",
            list(&s.targets, |t| {
                object([
                    ("Value", Json::from(t.value.as_str())),
                    ("Percent", Json::from(t.percent)),
                ])
            }),
        ),
    ])
}

fn api_update(u: &UpdateStrategy) -> Json {
    object([
        ("Stagger", nanos(u.stagger)),
        ("MaxParallel", Json::from(u.max_parallel)),
        ("HealthCheck", Json::from(u.health_check.as_str())),
        ("MinHealthyTime", nanos(u.min_healthy_time)),
        ("HealthyDeadline", nanos(u.healthy_deadline)),
        ("ProgressDeadline", nanos(u.progress_deadline)),
        ("Canary", Json::from(u.canary)),
        ("AutoRevert", Json::from(u.auto_revert)),
        ("AutoPromote", Json::from(u.auto_promote)),
    ])
}

fn api_restart(r: &RestartPolicy) -> Json {
    object([
        ("Interval", nanos(r.interval)),
        ("Attempts", Json::from(r.attempts)),
        ("Delay", nanos(r.delay)),
        ("Mode", Json::from(r.mode.as_str())),
        ("RenderTemplates", Json::from(r.render_templates)),
    ])
}

fn api_reschedule(r: &ReschedulePolicy) -> Json {
    object([
        ("Attempts", Json::from(r.attempts)),
        ("Interval", nanos(r.interval)),
        ("Delay", nanos(r.delay)),
        ("DelayFunction", Json::from(r.delay_function.as_str())),
        ("MaxDelay", nanos(r.max_delay)),
        ("Unlimited", Json::from(r.unlimited)),
    ])
}

fn api_group(g: &TaskGroup) -> Json {
    object([
        ("Name", Json::from(g.name.as_str())),
        ("Count", Json::from(g.count)),
        ("Constraints", list(&g.constraints, api_constraint)),
        ("Affinities", list(&g.affinities, api_affinity)),
        ("Tasks", Json::Array(g.tasks.iter().map(api_task).collect())),
        ("Spreads", list(&g.spreads, api_spread)),
        ("Volumes", Json::Null),
        ("RestartPolicy", api_restart(&g.restart)),
        ("Disconnect", Json::Null),
        ("ReschedulePolicy", api_reschedule(&g.reschedule)),
        (
            "EphemeralDisk",
            object([
                ("Sticky", Json::from(g.ephemeral_disk.sticky)),
                ("Migrate", Json::from(g.ephemeral_disk.migrate)),
                ("SizeMB", Json::from(g.ephemeral_disk.size)),
            ]),
        ),
        ("Update", api_update(&g.update)),
        ("Migrate", Json::Null),
        ("Networks", list(&g.networks, api_network)),
        ("Meta", string_map(&g.meta)),
        ("Services", list(&g.services, api_service)),
        ("ShutdownDelay", nanos(g.shutdown_delay)),
        ("MaxRunDuration", Json::Null),
        (
            "StopAfterClientDisconnect",
            opt_nanos(g.stop_after_client_disconnect),
        ),
        ("MaxClientDisconnect", opt_nanos(g.max_client_disconnect)),
        ("Scaling", Json::Null),
        ("Consul", Json::Null),
        ("PreventRescheduleOnLost", Json::Null),
    ])
}

fn api_network(n: &NetworkResource) -> Json {
    let ports = |ports: &[Port]| {
        list(ports, |p| {
            object([
                ("Label", Json::from(p.label.as_str())),
                ("Value", Json::from(p.value)),
                ("To", Json::from(p.to)),
                ("HostNetwork", opt_string(&p.host_network)),
                ("IgnoreCollision", Json::from(p.ignore_collision)),
            ])
        })
    };
    let dns = n.dns.as_ref().map_or(Json::Null, |d| {
        object([
            ("Servers", strings(&d.servers)),
            ("Searches", strings(&d.searches)),
            ("Options", strings(&d.options)),
        ])
    });
    object([
        ("Mode", Json::from(n.mode.as_str())),
        ("Device", Json::from("")),
        ("CIDR", Json::from("")),
        ("IP", Json::from("")),
        ("DNS", dns),
        ("ReservedPorts", ports(&n.reserved_ports)),
        ("DynamicPorts", ports(&n.dynamic_ports)),
        ("Hostname", opt_string(&n.hostname)),
        ("MBits", Json::Null),
        ("CNI", Json::Null),
    ])
}

fn api_check_restart(c: &Option<CheckRestart>) -> Json {
    c.as_ref().map_or(Json::Null, |c| {
        object([
            ("Limit", Json::from(c.limit)),
            ("Grace", nanos(c.grace)),
            ("IgnoreWarnings", Json::from(c.ignore_warnings)),
        ])
    })
}

fn api_service(s: &Service) -> Json {
    object([
        ("Name", Json::from(s.name.as_str())),
        ("Tags", strings(&s.tags)),
        ("CanaryTags", strings(&s.canary_tags)),
        ("EnableTagOverride", Json::from(false)),
        ("PortLabel", opt_string(&s.port)),
        ("AddressMode", Json::from(s.address_mode.as_str())),
        ("Address", opt_string(&s.address)),
        ("Checks", list(&s.checks, api_check)),
        ("CheckRestart", api_check_restart(&s.check_restart)),
        ("Connect", Json::Null),
        ("Meta", string_map(&s.meta)),
        ("CanaryMeta", Json::Null),
        ("TaggedAddresses", Json::Null),
        ("TaskName", opt_string(&s.task)),
        ("OnUpdate", Json::from(s.on_update.as_str())),
        ("Identity", Json::Null),
        ("Weights", Json::Null),
        ("Provider", Json::from(s.provider.as_str())),
        ("Cluster", Json::from("")),
        ("Kind", Json::from("")),
    ])
}

fn api_check(c: &ServiceCheck) -> Json {
    let header = if c.header.is_empty() {
        Json::Null
    } else {
        Json::Object(
            c.header
                .iter()
                .map(|(k, v)| (k.clone(), Json::from(v.clone())))
                .collect(),
        )
    };
    object([
        ("Name", Json::from(c.name.as_str())),
        ("Type", Json::from(c.check_type.as_str())),
        ("Command", opt_string(&c.command)),
        ("Args", strings(&c.args)),
        ("Path", opt_string(&c.path)),
        ("Protocol", opt_string(&c.protocol)),
        ("PortLabel", opt_string(&c.port)),
        ("Expose", Json::from(false)),
        ("AddressMode", opt_string(&c.address_mode)),
        ("Advertise", Json::from("")),
        ("Interval", nanos(c.interval)),
        ("Timeout", nanos(c.timeout)),
        ("InitialStatus", opt_string(&c.initial_status)),
        ("Notes", Json::from("")),
        ("TLSServerName", Json::from("")),
        ("TLSSkipVerify", Json::from(c.tls_skip_verify)),
        ("Header", header),
        ("Method", opt_string(&c.method)),
        ("CheckRestart", api_check_restart(&c.check_restart)),
        ("GRPCService", Json::from("")),
        ("GRPCUseTLS", Json::from(false)),
        ("TaskName", opt_string(&c.task)),
        ("SuccessBeforePassing", Json::from(c.success_before_passing)),
        (
            "FailuresBeforeCritical",
            Json::from(c.failures_before_critical),
        ),
        ("FailuresBeforeWarning", Json::from(0)),
        ("Body", opt_string(&c.body)),
        ("OnUpdate", Json::from(c.on_update.as_str())),
    ])
}

fn api_task(t: &Task) -> Json {
    let r = &t.resources;
    let artifact = |a: &Artifact| {
        object([
            ("GetterSource", Json::from(a.source.as_str())),
            ("GetterOptions", string_map(&a.options)),
            ("GetterHeaders", string_map(&a.headers)),
            ("GetterMode", Json::from(a.mode.as_str())),
            ("GetterInsecure", Json::from(false)),
            ("RelativeDest", Json::from(a.destination.as_str())),
            ("Chown", Json::from(a.chown)),
        ])
    };
    object([
        ("Name", Json::from(t.name.as_str())),
        ("Driver", Json::from(t.driver.as_str())),
        ("User", opt_string(&t.user)),
        ("Lifecycle", Json::Null),
        ("Config", encode_config(&t.config)),
        ("Constraints", list(&t.constraints, api_constraint)),
        ("Affinities", list(&t.affinities, api_affinity)),
        ("Env", string_map(&t.env)),
        ("Services", list(&t.services, api_service)),
        (
            "Resources",
            object([
                ("CPU", Json::from(r.cpu)),
                ("Cores", Json::from(r.cores)),
                ("MemoryMB", Json::from(r.memory)),
                ("MemoryMaxMB", Json::from(r.memory_max)),
                ("DiskMB", Json::Null),
                ("Networks", Json::Null),
                ("Devices", Json::Null),
                ("NUMA", Json::Null),
                ("SecretsMB", Json::Null),
                ("IOPS", Json::Null),
            ]),
        ),
        // `null` inherits the group's policy, as the model's `None` does.
        (
            "RestartPolicy",
            t.restart.as_ref().map_or(Json::Null, api_restart),
        ),
        ("Meta", string_map(&t.meta)),
        ("KillTimeout", nanos(t.kill_timeout)),
        (
            "LogConfig",
            object([
                ("MaxFiles", Json::from(t.logs.max_files)),
                ("MaxFileSizeMB", Json::from(t.logs.max_file_size)),
                ("Enabled", Json::Null),
                ("Disabled", Json::from(t.logs.disabled)),
            ]),
        ),
        ("Artifacts", list(&t.artifacts, artifact)),
        ("Vault", Json::Null),
        ("Consul", Json::Null),
        ("Templates", Json::Null),
        ("DispatchPayload", Json::Null),
        ("VolumeMounts", Json::Null),
        ("Leader", Json::from(t.leader)),
        ("ShutdownDelay", nanos(t.shutdown_delay)),
        ("KillSignal", opt_string(&t.kill_signal)),
        ("Kind", Json::from("")),
        ("ScalingPolicies", Json::Null),
        ("Secrets", Json::Null),
        ("Identity", Json::Null),
        ("Identities", Json::Null),
        ("Actions", Json::Null),
        ("Schedule", Json::Null),
    ])
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Reads a JSON job: `{"Job": {…}}` or the job object itself, as `nomad job run` accepts both.
/// Unknown fields are ignored and `null` means unset, as Go's JSON decoding into Nomad's API
/// structs does; unset fields take the defaults the HCL decoder applies.
pub fn from_api_json(path: &Path, src: &str) -> Result<Parsed, JobspecError> {
    // `parse` checks this already; callers holding JSON text of their own may not have.
    if src.len() > super::MAX_FILE_BYTES {
        return Err(super::too_large(path, src.len()));
    }
    let fail = |pos: Pos, msg: String| JobspecError::single(path, pos, "", msg);
    // serde_json's syntax errors are better than anything a second parser would say.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(src) {
        let msg = e.to_string();
        let msg = msg
            .rsplit_once(" at line ")
            .map_or(msg.as_str(), |(m, _)| m);
        return Err(fail(
            serde_error_pos(src, &e),
            format!("invalid JSON: {msg}"),
        ));
    }
    let (root, spans) =
        read_positioned(src).map_err(|(pos, msg)| fail(pos, format!("invalid JSON: {msg}")))?;
    let job = match &root.kind {
        ValueKind::Map(entries) => match set_value(entries, "Job") {
            Some(v) if matches!(v.kind, ValueKind::Map(_)) => v,
            None => &root,
            Some(v) => {
                return Err(JobspecError::new(
                    path,
                    vec![type_error(v.pos, "Job", "an object", &v.kind)],
                ));
            }
        },
        other => {
            return Err(fail(
                root.pos,
                format!(
                    "expected a JSON object holding a job ({{\"Job\": {{…}}}} or the job itself), found {}",
                    other.type_name()
                ),
            ));
        }
    };

    let mut diags = Vec::new();
    let body = ToTree { d: &mut diags }.file(job);
    let converted = diags.len();
    let decoded = decode::decode_file(&body, &mut diags);
    for d in &mut diags[converted..] {
        d.field = api_path(&d.field, d.pos, job, &spans);
    }
    let stop = read_stop(job, &mut diags);

    match decoded {
        Some(mut job) if !diags.iter().any(Diagnostic::is_error) => {
            job.stop = stop;
            diags.sort_by_key(|d| d.pos);
            Ok(Parsed {
                job,
                warnings: diags,
            })
        }
        _ => Err(JobspecError::new(path, diags)),
    }
}

/// `Stop` registers the job stopped, as Nomad does; the HCL jobspec has no such field.
/// `Version` and the indexes are the state store's to set, so they are not read.
fn read_stop(job: &Value, d: &mut Vec<Diagnostic>) -> bool {
    let ValueKind::Map(entries) = &job.kind else {
        return false;
    };
    match set_value(entries, "Stop") {
        None => false,
        Some(Value {
            kind: ValueKind::Bool(b),
            ..
        }) => *b,
        Some(v) => {
            d.push(type_error(
                v.pos,
                "Job > Stop",
                "a bool (true or false)",
                &v.kind,
            ));
            false
        }
    }
}

/// serde_json counts columns in bytes; editors, and the other readers, count characters.
fn serde_error_pos(src: &str, e: &serde_json::Error) -> Pos {
    let line = e.line().max(1);
    let text = src.split('\n').nth(line - 1).unwrap_or("");
    let mut end = e.column().min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Pos::new(line as u32, text[..end].chars().count().max(1) as u32)
}

/// A field of an API object: exactly named, else matched ignoring case, as Go's JSON decoding
/// matches struct fields.
fn lookup<'v>(entries: &'v [Entry], name: &str) -> Option<&'v Entry> {
    entries
        .iter()
        .find(|e| e.key == name)
        .or_else(|| entries.iter().find(|e| e.key.eq_ignore_ascii_case(name)))
}

/// The value of a field that is set at all: `null` is Go's nil, the same as absent.
fn set_value<'v>(entries: &'v [Entry], name: &str) -> Option<&'v Value> {
    lookup(entries, name)
        .map(|e| &e.value)
        .filter(|v| !matches!(v.kind, ValueKind::Null))
}

// The position-keeping JSON reader --------------------------------------------------------------

/// The start and end positions of every JSON object and array, keyed by start: they tell which
/// list element a decoder message points into.
type Spans = BTreeMap<Pos, Pos>;

/// Deeper nesting than serde_json's own limit never gets here; this only keeps the stack safe.
const MAX_DEPTH: usize = 256;

type ReadResult<T> = Result<T, (Pos, String)>;

fn read_positioned(src: &str) -> ReadResult<(Value, Spans)> {
    let mut r = Reader {
        src,
        i: 0,
        at: 0,
        line: 1,
        col: 1,
        spans: Spans::new(),
    };
    let root = r.value(0)?;
    r.skip_ws();
    if r.i < src.len() {
        return r.fail("trailing characters after the JSON value");
    }
    Ok((root, r.spans))
}

struct Reader<'s> {
    src: &'s str,
    i: usize,
    /// `line:col` is the position of byte `at`. Reading only moves forward, so positions are
    /// found by counting from the last one: linear even in a one-line (minified) file.
    at: usize,
    line: u32,
    col: u32,
    spans: Spans,
}

impl Reader<'_> {
    fn pos(&mut self) -> Pos {
        let upto = self.i.min(self.src.len());
        for c in self.src.get(self.at..upto).unwrap_or("").chars() {
            if c == '\n' {
                self.line += 1;
                self.col = 1;
            } else {
                self.col += 1;
            }
        }
        self.at = upto;
        Pos::new(self.line, self.col)
    }

    fn fail<T>(&mut self, msg: &str) -> ReadResult<T> {
        Err((self.pos(), msg.to_string()))
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> ReadResult<Value> {
        self.skip_ws();
        let pos = self.pos();
        if depth > MAX_DEPTH {
            return self.fail("nested too deeply");
        }
        let kind = match self.peek() {
            Some(b'{') => ValueKind::Map(self.object(pos, depth)?),
            Some(b'[') => ValueKind::List(self.array(pos, depth)?),
            Some(b'"') => ValueKind::String(self.string()?),
            Some(b't') if self.src[self.i..].starts_with("true") => {
                self.literal(4, ValueKind::Bool(true))
            }
            Some(b'f') if self.src[self.i..].starts_with("false") => {
                self.literal(5, ValueKind::Bool(false))
            }
            Some(b'n') if self.src[self.i..].starts_with("null") => {
                self.literal(4, ValueKind::Null)
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.i += 1;
                }
                match self.src[start..self.i].parse::<f64>() {
                    Ok(n) if n.is_finite() => ValueKind::Number(n),
                    _ => return Err((pos, "invalid number".into())),
                }
            }
            _ => return self.fail("expected a JSON value"),
        };
        Ok(Value { pos, kind })
    }

    fn literal(&mut self, len: usize, kind: ValueKind) -> ValueKind {
        self.i += len;
        kind
    }

    fn object(&mut self, start: Pos, depth: usize) -> ReadResult<Vec<Entry>> {
        self.i += 1;
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        self.skip_ws();
        if self.peek() != Some(b'}') {
            loop {
                self.skip_ws();
                let key_pos = self.pos();
                if self.peek() != Some(b'"') {
                    return self.fail("expected a string key");
                }
                let key = self.string()?;
                // Go keeps the last of duplicate keys without a word; say so instead.
                if !seen.insert(key.clone()) {
                    return Err((key_pos, format!("duplicate key {key:?}")));
                }
                self.skip_ws();
                if self.peek() != Some(b':') {
                    return self.fail("expected `:` after an object key");
                }
                self.i += 1;
                let value = self.value(depth + 1)?;
                entries.push(Entry {
                    key,
                    pos: key_pos,
                    value,
                });
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b'}') => break,
                    _ => return self.fail("expected `,` or `}`"),
                }
            }
        }
        let end = self.pos();
        self.i += 1;
        self.spans.insert(start, end);
        Ok(entries)
    }

    fn array(&mut self, start: Pos, depth: usize) -> ReadResult<Vec<Value>> {
        self.i += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() != Some(b']') {
            loop {
                items.push(self.value(depth + 1)?);
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b']') => break,
                    _ => return self.fail("expected `,` or `]`"),
                }
            }
        }
        let end = self.pos();
        self.i += 1;
        self.spans.insert(start, end);
        Ok(items)
    }

    /// A string token, unescaped by serde_json so escapes and surrogate pairs follow the spec.
    fn string(&mut self) -> ReadResult<String> {
        let pos = self.pos();
        let bytes = self.src.as_bytes();
        let start = self.i;
        let mut j = start + 1;
        loop {
            match bytes.get(j) {
                None => return Err((pos, "unterminated string".into())),
                Some(b'\\') => j += 2,
                Some(b'"') => break,
                Some(_) => j += 1,
            }
        }
        self.i = j + 1;
        let token = self.src.get(start..=j).unwrap_or("");
        serde_json::from_str::<String>(token).map_err(|e| (pos, format!("invalid string: {e}")))
    }
}

// API fields to the HCL-JSON tree ---------------------------------------------------------------

/// How one API field becomes (or does not become) an HCL attribute or block.
#[derive(Clone, Copy)]
enum Kind {
    /// Read by the decoder as is. `""`, `[]` and `{}` count as unset: Go prints its zero values
    /// for fields nobody set.
    Attr,
    /// A `time.Duration` in nanoseconds, handed on as a Go duration string (`"30s"`).
    Nanos,
    /// A map keyed by the user's own names (meta, env, the driver config): handed on as is.
    FreeMap,
    Block(&'static [Field]),
    Blocks(&'static [Field]),
    /// A list of blocks labelled by one of their fields (a group by its `Name`).
    Labeled(&'static [Field], &'static str),
    /// `Resources.CPU`, which Nomad sets to 0 when `Cores` reserves whole cores.
    Cpu,
    /// A feature drover refuses: handed on only when set, so the decoder names it unsupported.
    /// The features drover accepts and ignores (`Migrate`, `Scaling`, `Identity`, …) are left
    /// out of the tables instead: Nomad's own output fills several with defaults, and a warning
    /// for what nobody wrote helps no one.
    Unsupported,
}

struct Field {
    api: &'static str,
    hcl: &'static str,
    kind: Kind,
}

const fn field(api: &'static str, hcl: &'static str, kind: Kind) -> Field {
    Field { api, hcl, kind }
}

use Kind::*;

const JOB: &[Field] = &[
    field("Name", "name", Attr),
    field("Namespace", "namespace", Attr),
    field("Region", "region", Attr),
    field("Type", "type", Attr),
    field("Priority", "priority", Attr),
    field("AllAtOnce", "all_at_once", Attr),
    field("Datacenters", "datacenters", Attr),
    field("NodePool", "node_pool", Attr),
    field("Constraints", "constraint", Blocks(CONSTRAINT)),
    field("Affinities", "affinity", Blocks(AFFINITY)),
    field("Spreads", "spread", Blocks(SPREAD)),
    field("Update", "update", Block(UPDATE)),
    field("Reschedule", "reschedule", Block(RESCHEDULE)),
    field("Meta", "meta", FreeMap),
    field("TaskGroups", "group", Labeled(GROUP, "Name")),
    field("Periodic", "periodic", Unsupported),
    field("ParameterizedJob", "parameterized", Unsupported),
    field("Multiregion", "multiregion", Unsupported),
];

const GROUP: &[Field] = &[
    field("Count", "count", Attr),
    field("Constraints", "constraint", Blocks(CONSTRAINT)),
    field("Affinities", "affinity", Blocks(AFFINITY)),
    field("Spreads", "spread", Blocks(SPREAD)),
    field("Networks", "network", Blocks(NETWORK)),
    field("Services", "service", Blocks(SERVICE)),
    field("RestartPolicy", "restart", Block(RESTART)),
    field("ReschedulePolicy", "reschedule", Block(RESCHEDULE)),
    field("Update", "update", Block(UPDATE)),
    field("EphemeralDisk", "ephemeral_disk", Block(EPHEMERAL_DISK)),
    field("Meta", "meta", FreeMap),
    field("ShutdownDelay", "shutdown_delay", Nanos),
    field(
        "StopAfterClientDisconnect",
        "stop_after_client_disconnect",
        Nanos,
    ),
    field("MaxClientDisconnect", "max_client_disconnect", Nanos),
    field("Tasks", "task", Labeled(TASK, "Name")),
    field("Volumes", "volume", Unsupported),
    field("MaxRunDuration", "max_run_duration", Unsupported),
];

const NETWORK: &[Field] = &[
    field("Mode", "mode", Attr),
    field("Hostname", "hostname", Attr),
    field("DNS", "dns", Block(DNS)),
    field("ReservedPorts", "port", Labeled(RESERVED_PORT, "Label")),
    field("DynamicPorts", "port", Labeled(DYNAMIC_PORT, "Label")),
    field("MBits", "mbits", Attr),
    field("CNI", "cni", Unsupported),
];

const RESERVED_PORT: &[Field] = &[
    field("Value", "static", Attr),
    field("To", "to", Attr),
    field("HostNetwork", "host_network", Attr),
    field("IgnoreCollision", "ignore_collision", Attr),
];

/// A dynamic port's `Value` is the port an allocation was given, not part of the spec.
const DYNAMIC_PORT: &[Field] = &[
    field("To", "to", Attr),
    field("HostNetwork", "host_network", Attr),
    field("IgnoreCollision", "ignore_collision", Attr),
];

const DNS: &[Field] = &[
    field("Servers", "servers", Attr),
    field("Searches", "searches", Attr),
    field("Options", "options", Attr),
];

const TASK: &[Field] = &[
    field("Driver", "driver", Attr),
    field("User", "user", Attr),
    field("Config", "config", FreeMap),
    field("Constraints", "constraint", Blocks(CONSTRAINT)),
    field("Affinities", "affinity", Blocks(AFFINITY)),
    field("Env", "env", FreeMap),
    field("Services", "service", Blocks(SERVICE)),
    field("Resources", "resources", Block(RESOURCES)),
    field("RestartPolicy", "restart", Block(RESTART)),
    field("Meta", "meta", FreeMap),
    field("KillTimeout", "kill_timeout", Nanos),
    field("LogConfig", "logs", Block(LOGS)),
    field("Artifacts", "artifact", Blocks(ARTIFACT)),
    field("Leader", "leader", Attr),
    field("ShutdownDelay", "shutdown_delay", Nanos),
    field("KillSignal", "kill_signal", Attr),
    field("Lifecycle", "lifecycle", Unsupported),
    field("Vault", "vault", Unsupported),
    field("Templates", "template", Unsupported),
    field("DispatchPayload", "dispatch_payload", Unsupported),
    field("VolumeMounts", "volume_mount", Unsupported),
    field("CSIPluginConfig", "csi_plugin", Unsupported),
    field("Schedule", "schedule", Unsupported),
    field("Secrets", "secret", Unsupported),
];

const RESOURCES: &[Field] = &[
    field("CPU", "cpu", Cpu),
    field("Cores", "cores", Attr),
    field("MemoryMB", "memory", Attr),
    field("MemoryMaxMB", "memory_max", Attr),
    // The legacy task-level network; the decoder moves its ports to the group.
    field("Networks", "network", Blocks(NETWORK)),
    field("Devices", "device", Unsupported),
    field("NUMA", "numa", Unsupported),
    field("SecretsMB", "secrets", Unsupported),
];

const RESTART: &[Field] = &[
    field("Attempts", "attempts", Attr),
    field("Interval", "interval", Nanos),
    field("Delay", "delay", Nanos),
    field("Mode", "mode", Attr),
    field("RenderTemplates", "render_templates", Attr),
];

const RESCHEDULE: &[Field] = &[
    field("Attempts", "attempts", Attr),
    field("Interval", "interval", Nanos),
    field("Delay", "delay", Nanos),
    field("DelayFunction", "delay_function", Attr),
    field("MaxDelay", "max_delay", Nanos),
    field("Unlimited", "unlimited", Attr),
];

const UPDATE: &[Field] = &[
    field("MaxParallel", "max_parallel", Attr),
    field("HealthCheck", "health_check", Attr),
    field("MinHealthyTime", "min_healthy_time", Nanos),
    field("HealthyDeadline", "healthy_deadline", Nanos),
    field("ProgressDeadline", "progress_deadline", Nanos),
    field("AutoRevert", "auto_revert", Attr),
    field("AutoPromote", "auto_promote", Attr),
    field("Canary", "canary", Attr),
    field("Stagger", "stagger", Nanos),
];

const EPHEMERAL_DISK: &[Field] = &[
    field("SizeMB", "size", Attr),
    field("Sticky", "sticky", Attr),
    field("Migrate", "migrate", Attr),
];

const CONSTRAINT: &[Field] = &[
    field("LTarget", "attribute", Attr),
    field("Operand", "operator", Attr),
    field("RTarget", "value", Attr),
];

const AFFINITY: &[Field] = &[
    field("LTarget", "attribute", Attr),
    field("Operand", "operator", Attr),
    field("RTarget", "value", Attr),
    field("Weight", "weight", Attr),
];

const SPREAD: &[Field] = &[
    field("Attribute", "attribute", Attr),
    field("Weight", "weight", Attr),
    field("SpreadTarget", "target", Labeled(SPREAD_TARGET, "Value")),
];

const SPREAD_TARGET: &[Field] = &[
    field("Value", "value", Attr),
    field("Percent", "percent", Attr),
];

const LOGS: &[Field] = &[
    field("MaxFiles", "max_files", Attr),
    field("MaxFileSizeMB", "max_file_size", Attr),
    field("Disabled", "disabled", Attr),
    field("Enabled", "enabled", Attr),
];

const ARTIFACT: &[Field] = &[
    field("GetterSource", "source", Attr),
    field("RelativeDest", "destination", Attr),
    field("GetterMode", "mode", Attr),
    field("GetterOptions", "options", FreeMap),
    field("GetterHeaders", "headers", FreeMap),
    field("Chown", "chown", Unsupported),
    field("GetterInsecure", "insecure", Unsupported),
];

const SERVICE: &[Field] = &[
    field("Name", "name", Attr),
    field("PortLabel", "port", Attr),
    field("Tags", "tags", Attr),
    field("CanaryTags", "canary_tags", Attr),
    field("AddressMode", "address_mode", Attr),
    field("Address", "address", Attr),
    field("Provider", "provider", Attr),
    field("TaskName", "task", Attr),
    field("Meta", "meta", FreeMap),
    field("Checks", "check", Blocks(CHECK)),
    field("CheckRestart", "check_restart", Block(CHECK_RESTART)),
    field("OnUpdate", "on_update", Attr),
    field("Connect", "connect", Unsupported),
];

const CHECK: &[Field] = &[
    field("Name", "name", Attr),
    field("Type", "type", Attr),
    field("PortLabel", "port", Attr),
    field("Path", "path", Attr),
    field("Method", "method", Attr),
    field("Protocol", "protocol", Attr),
    field("Body", "body", Attr),
    field("Header", "header", FreeMap),
    field("Interval", "interval", Nanos),
    field("Timeout", "timeout", Nanos),
    field("AddressMode", "address_mode", Attr),
    field("Command", "command", Attr),
    field("Args", "args", Attr),
    field("TaskName", "task", Attr),
    field("TLSSkipVerify", "tls_skip_verify", Attr),
    field("InitialStatus", "initial_status", Attr),
    field("SuccessBeforePassing", "success_before_passing", Attr),
    field("FailuresBeforeCritical", "failures_before_critical", Attr),
    field("CheckRestart", "check_restart", Block(CHECK_RESTART)),
    field("OnUpdate", "on_update", Attr),
];

const CHECK_RESTART: &[Field] = &[
    field("Limit", "limit", Attr),
    field("Grace", "grace", Nanos),
    field("IgnoreWarnings", "ignore_warnings", Attr),
];

/// Go's zero values, which Nomad prints for every field nobody set.
fn is_unset(v: &Value) -> bool {
    match &v.kind {
        ValueKind::Null => true,
        ValueKind::String(s) => s.is_empty(),
        ValueKind::List(l) => l.is_empty(),
        ValueKind::Map(m) => m.is_empty(),
        _ => false,
    }
}

/// Whether a refused feature is really asked for: `false`, `0` and objects of nothing but zero
/// values are how Nomad prints it unset.
fn is_zero(v: &Value) -> bool {
    match &v.kind {
        ValueKind::Bool(b) => !b,
        ValueKind::Number(n) => *n == 0.0,
        ValueKind::Map(m) => m.iter().all(|e| is_zero(&e.value)),
        _ => is_unset(v),
    }
}

struct ToTree<'d> {
    d: &'d mut Vec<Diagnostic>,
}

impl ToTree<'_> {
    /// The file body: one `job` block labelled with the job's `ID`.
    fn file(&mut self, job: &Value) -> Body {
        let ValueKind::Map(entries) = &job.kind else {
            return Body {
                pos: job.pos,
                items: Vec::new(),
            };
        };
        // An empty label makes the decoder say the job ID must not be empty.
        let (id, id_pos) = match set_value(entries, "ID") {
            None => (String::new(), job.pos),
            Some(v) => match &v.kind {
                ValueKind::String(s) => (s.clone(), v.pos),
                other => {
                    self.d
                        .push(type_error(v.pos, "Job > ID", "a string", other));
                    (String::new(), v.pos)
                }
            },
        };
        let body = self.body("Job", job, JOB);
        let labelled = Value {
            pos: job.pos,
            kind: ValueKind::Map(vec![Entry {
                key: id,
                pos: id_pos,
                value: body,
            }]),
        };
        Body {
            pos: job.pos,
            items: vec![Item {
                key: "job".into(),
                pos: job.pos,
                kind: ItemKind::Attr(labelled),
            }],
        }
    }

    /// One API object as an HCL-JSON block body (a map of HCL names).
    fn body(&mut self, path: &str, obj: &Value, table: &'static [Field]) -> Value {
        let ValueKind::Map(entries) = &obj.kind else {
            return Value {
                pos: obj.pos,
                kind: ValueKind::Map(Vec::new()),
            };
        };
        let mut out = Vec::new();
        for f in table {
            let Some(e) = lookup(entries, f.api) else {
                continue;
            };
            let v = &e.value;
            let here = format!("{path} > {}", f.api);
            let converted = match f.kind {
                Attr | FreeMap => (!is_unset(v)).then(|| v.clone()),
                Unsupported => (!is_zero(v)).then(|| v.clone()),
                Nanos => self.duration(&here, v),
                Cpu => {
                    let cores = lookup(entries, "Cores")
                        .is_some_and(|c| matches!(c.value.kind, ValueKind::Number(n) if n > 0.0));
                    let zero = matches!(v.kind, ValueKind::Number(n) if n == 0.0);
                    let placeholder = cores && zero;
                    (!is_unset(v) && !placeholder).then(|| v.clone())
                }
                Block(t) => match &v.kind {
                    ValueKind::Null => None,
                    ValueKind::Map(_) => Some(self.body(&here, v, t)),
                    other => {
                        self.d.push(type_error(v.pos, here, "an object", other));
                        None
                    }
                },
                Blocks(t) => self.list(&here, v, |this, i, item| {
                    Some(this.body(&format!("{here}[{i}]"), item, t))
                }),
                Labeled(t, label) => self.list(&here, v, |this, i, item| {
                    this.labeled(&format!("{here}[{i}]"), item, t, label)
                }),
            };
            if let Some(value) = converted {
                out.push(Entry {
                    key: f.hcl.to_string(),
                    pos: e.pos,
                    value,
                });
            }
        }
        Value {
            pos: obj.pos,
            kind: ValueKind::Map(out),
        }
    }

    fn duration(&mut self, here: &str, v: &Value) -> Option<Value> {
        match &v.kind {
            ValueKind::Null => None,
            ValueKind::Number(n) if *n >= 0.0 && n.fract() == 0.0 && *n < i64::MAX as f64 => {
                Some(Value {
                    pos: v.pos,
                    kind: ValueKind::String(format_duration(Duration::from_nanos(*n as u64))),
                })
            }
            // Not what Go would accept, but unambiguous; the decoder checks the syntax.
            ValueKind::String(s) if !s.is_empty() => Some(v.clone()),
            ValueKind::String(_) => None,
            other => {
                self.d.push(type_error(
                    v.pos,
                    here,
                    "a duration in nanoseconds (a whole number, 30000000000 for 30s)",
                    other,
                ));
                None
            }
        }
    }

    /// A list of objects, each converted by `each`; `null` and `[]` are unset.
    fn list(
        &mut self,
        here: &str,
        v: &Value,
        mut each: impl FnMut(&mut Self, usize, &Value) -> Option<Value>,
    ) -> Option<Value> {
        match &v.kind {
            ValueKind::Null => None,
            ValueKind::List(items) if items.is_empty() => None,
            ValueKind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match &item.kind {
                        ValueKind::Map(_) => out.extend(each(self, i, item)),
                        other => self.d.push(type_error(
                            item.pos,
                            format!("{here}[{i}]"),
                            "an object",
                            other,
                        )),
                    }
                }
                Some(Value {
                    pos: v.pos,
                    kind: ValueKind::List(out),
                })
            }
            other => {
                self.d
                    .push(type_error(v.pos, here, "a list of objects", other));
                None
            }
        }
    }

    /// `{"Name": "web", …}` as the HCL-JSON labelled block `{"web": {…}}`.
    fn labeled(
        &mut self,
        here: &str,
        item: &Value,
        table: &'static [Field],
        label: &str,
    ) -> Option<Value> {
        let ValueKind::Map(entries) = &item.kind else {
            return None;
        };
        let (name, name_pos) = match set_value(entries, label).map(|v| (&v.kind, v.pos)) {
            Some((ValueKind::String(s), pos)) if !s.is_empty() => (s.clone(), pos),
            None | Some((ValueKind::String(_), _)) => {
                let msg = format!("{label} is required");
                self.d.push(Diagnostic::error(item.pos, here, msg));
                return None;
            }
            Some((other, pos)) => {
                let field = format!("{here} > {label}");
                self.d.push(type_error(pos, field, "a string", other));
                return None;
            }
        };
        let body = self.body(&format!("{here} {name:?}"), item, table);
        Some(Value {
            pos: item.pos,
            kind: ValueKind::Map(vec![Entry {
                key: name,
                pos: name_pos,
                value: body,
            }]),
        })
    }
}

// Decoder field paths back to API field paths ---------------------------------------------------

/// Renames a decoder field path (`job "web" > group "web" > task "api" > config > image`) into
/// the API one (`Job > TaskGroups[0] "web" > Tasks[0] "api" > Config > image`), finding list
/// indexes by label, or by which element's text holds the message's position. Whatever cannot
/// be renamed (keys of free maps, names the tables do not know) is kept as the decoder wrote it.
fn api_path(field: &str, pos: Pos, job: &Value, spans: &Spans) -> String {
    let Some((_, mut rest)) = field.strip_prefix("job ").and_then(split_quoted) else {
        return field.to_string();
    };
    let mut out = String::from("Job");
    let mut table: &[Field] = JOB;
    let mut obj = Some(job);
    while let Some(seg_text) = rest.strip_prefix(" > ") {
        let Some(seg) = Segment::parse(seg_text) else {
            out.push_str(rest);
            return out;
        };
        let mut candidates = table.iter().filter(|f| f.hcl == seg.name).peekable();
        let Some(first) = candidates.peek().copied() else {
            out.push_str(rest);
            return out;
        };
        match first.kind {
            Attr | Nanos | Cpu | Unsupported | FreeMap => {
                out.push_str(" > ");
                out.push_str(first.api);
                out.push_str(seg.suffix);
                out.push_str(seg.rest);
                return out;
            }
            Block(t) => {
                out.push_str(" > ");
                out.push_str(first.api);
                obj = obj.and_then(|o| child(o, first.api));
                table = t;
            }
            Blocks(t) => {
                let items = obj.and_then(|o| child(o, first.api)).and_then(items_of);
                let found = items.and_then(|items| pick(items, seg.label, pos, spans));
                out.push_str(" > ");
                out.push_str(first.api);
                if let Some((i, _)) = found {
                    out.push_str(&format!("[{i}]"));
                }
                if let Some(l) = seg.label {
                    out.push(' ');
                    out.push_str(l);
                }
                obj = found.map(|(_, item)| item);
                table = t;
            }
            Labeled(t, _) => {
                // Reserved and dynamic ports are both `port` blocks: the label tells which.
                let found = candidates.find_map(|f| {
                    let Labeled(ft, label_field) = f.kind else { return None };
                    let items = obj.and_then(|o| child(o, f.api)).and_then(items_of)?;
                    let (i, item) = items.iter().enumerate().find(|(_, item)| {
                        item_field(item, label_field).is_some_and(|v| matches!(&v.kind, ValueKind::String(s) if Some(format!("{s:?}").as_str()) == seg.label))
                    })?;
                    Some((f.api, i, item, ft))
                });
                out.push_str(" > ");
                match found {
                    Some((api, i, item, ft)) => {
                        out.push_str(&format!("{api}[{i}]"));
                        obj = Some(item);
                        table = ft;
                    }
                    None => {
                        out.push_str(first.api);
                        obj = None;
                        table = t;
                    }
                }
                if let Some(l) = seg.label {
                    out.push(' ');
                    out.push_str(l);
                }
            }
        }
        out.push_str(seg.suffix);
        rest = seg.rest;
    }
    out.push_str(rest);
    out
}

/// One step of a decoder path: `name`, `name "label"` or `name[0]`, and what follows it.
struct Segment<'a> {
    name: &'a str,
    /// Still quoted, as the decoder wrote it with `{:?}`.
    label: Option<&'a str>,
    suffix: &'a str,
    rest: &'a str,
}

impl<'a> Segment<'a> {
    fn parse(text: &'a str) -> Option<Segment<'a>> {
        let end = text.find([' ', '[']).unwrap_or(text.len());
        let (name, mut rest) = text.split_at(end);
        let mut label = None;
        if let Some(quoted) = rest.strip_prefix(' ').filter(|r| r.starts_with('"')) {
            let (l, after) = split_quoted(quoted)?;
            label = Some(l);
            rest = after;
        }
        let before_suffix = rest;
        while rest.starts_with('[') {
            rest = &rest[rest.find(']')? + 1..];
        }
        let suffix = &before_suffix[..before_suffix.len() - rest.len()];
        Some(Segment {
            name,
            label,
            suffix,
            rest,
        })
    }
}

/// Splits `"a \"b\"" > rest` after the closing quote of a `{:?}`-quoted string.
fn split_quoted(s: &str) -> Option<(&str, &str)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut escaped = false;
    for (i, c) in chars {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(s.split_at(i + 1)),
            _ => {}
        }
    }
    None
}

fn child<'v>(obj: &'v Value, name: &str) -> Option<&'v Value> {
    item_field(obj, name)
}

fn item_field<'v>(obj: &'v Value, name: &str) -> Option<&'v Value> {
    match &obj.kind {
        ValueKind::Map(entries) => lookup(entries, name).map(|e| &e.value),
        _ => None,
    }
}

fn items_of(v: &Value) -> Option<&[Value]> {
    match &v.kind {
        ValueKind::List(items) => Some(items),
        _ => None,
    }
}

/// Which element of an unlabelled block list a message is about: the one named by the
/// decoder's label (`service "web"`), the only one, or the one whose text holds `pos`.
fn pick<'v>(
    items: &'v [Value],
    label: Option<&str>,
    pos: Pos,
    spans: &Spans,
) -> Option<(usize, &'v Value)> {
    if let Some(label) = label {
        return items.iter().enumerate().find(|(_, item)| {
            item_field(item, "Name").is_some_and(
                |v| matches!(&v.kind, ValueKind::String(s) if format!("{s:?}") == label),
            )
        });
    }
    if let [only] = items {
        return Some((0, only));
    }
    items.iter().enumerate().find(|(_, item)| {
        spans
            .get(&item.pos)
            .is_some_and(|end| item.pos <= pos && pos <= *end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positioned(src: &str) -> (Value, Spans) {
        read_positioned(src).unwrap_or_else(|(pos, msg)| panic!("{pos}: {msg}"))
    }

    #[test]
    fn reader_keeps_positions_of_keys_and_values() {
        let (v, spans) = positioned("{\n  \"A\": [1, {\"é\": \"x\"}],\n  \"B\": null\n}");
        let ValueKind::Map(entries) = &v.kind else {
            panic!("not a map")
        };
        assert_eq!(entries[0].pos, Pos::new(2, 3));
        assert_eq!(entries[0].value.pos, Pos::new(2, 8));
        assert_eq!(entries[1].pos, Pos::new(3, 3));
        assert_eq!(spans.get(&Pos::new(1, 1)), Some(&Pos::new(4, 1)));
        let ValueKind::List(items) = &entries[0].value.kind else {
            panic!("not a list")
        };
        let ValueKind::Map(inner) = &items[1].kind else {
            panic!("not a map")
        };
        assert_eq!(inner[0].key, "é");
        assert_eq!(inner[0].value.pos, Pos::new(2, 18));
    }

    #[test]
    fn reader_refuses_duplicate_keys() {
        let err = read_positioned("{\"a\": 1,\n \"a\": 2}").err();
        assert_eq!(
            err,
            Some((Pos::new(2, 2), "duplicate key \"a\"".to_string()))
        );
    }

    #[test]
    fn reader_unescapes_strings() {
        let (v, _) = positioned(r#"["a\"b\\c\u00e9\ud83d\ude00"]"#);
        let ValueKind::List(items) = &v.kind else {
            panic!("not a list")
        };
        assert_eq!(items[0].kind, ValueKind::String("a\"b\\cé😀".into()));
    }

    #[test]
    fn paths_are_renamed_with_indexes() {
        let src = r#"{"ID": "j", "TaskGroups": [
            {"Name": "db", "Tasks": [{"Name": "pg"}]},
            {"Name": "web", "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
             "Services": [{"Name": "a"}, {"Name": "b",
                "Checks": [{"Type": "http"}]}],
             "Tasks": [{"Name": "x"}, {"Name": "api", "Config": {"image": 1}}]}]}"#;
        let (job, spans) = positioned(src);
        let at = |line, col| Pos::new(line, col);
        let cases = [
            (
                r#"job "j" > group "web" > task "api" > config > image"#,
                at(1, 1),
                r#"Job > TaskGroups[1] "web" > Tasks[1] "api" > Config > image"#,
            ),
            (
                r#"job "j" > group "web" > count"#,
                at(1, 1),
                r#"Job > TaskGroups[1] "web" > Count"#,
            ),
            (
                r#"job "j" > group "web" > network > port "http""#,
                at(1, 1),
                r#"Job > TaskGroups[1] "web" > Networks[0] > DynamicPorts[0] "http""#,
            ),
            (
                r#"job "j" > group "web" > service > check > interval"#,
                at(5, 18),
                r#"Job > TaskGroups[1] "web" > Services[1] > Checks[0] > Interval"#,
            ),
            (
                r#"job "j" > group "web" > service "a" > port"#,
                at(1, 1),
                r#"Job > TaskGroups[1] "web" > Services[0] "a" > PortLabel"#,
            ),
            (
                r#"job "j" > datacenters[0]"#,
                at(1, 1),
                "Job > Datacenters[0]",
            ),
            (
                r#"job "j" > meta > some key"#,
                at(1, 1),
                "Job > Meta > some key",
            ),
            (r#"job "j""#, at(1, 1), "Job"),
            ("", at(1, 1), ""),
        ];
        for (hcl, pos, api) in cases {
            assert_eq!(api_path(hcl, pos, &job, &spans), api, "{hcl}");
        }
    }
}
