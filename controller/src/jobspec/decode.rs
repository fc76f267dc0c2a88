//! Decodes the format-neutral tree into a [`Job`], applying Nomad's defaults and merge rules
//! (job → group → task for `update`, `reschedule` and `restart`), normalising the legacy
//! task-level network and docker `port_map` into the group network, and validating as it goes:
//! every problem is collected, none stops the others from being found.

use std::time::Duration;

use super::error::Diagnostic;
use super::fields::{BlockRef, Diags, Fields};
use super::schema::{self, did_you_mean};
use super::tree::{Block, Body, Item, ItemKind, Pos};
use crate::structs::*;

pub fn decode_file(body: &Body, d: &mut Diags) -> Option<Job> {
    let mut f = Fields::new("", body.pos, body, &schema::FILE);
    // Variables and locals were consumed by the HCL reader; YAML has none.
    let errors_before = d.iter().filter(|x| x.is_error()).count();
    for name in ["variable", "variables", "locals"] {
        if f.has(name) {
            f.skip(name);
            d.push(Diagnostic::error(
                body.pos,
                name,
                format!("{name} is unsupported in YAML job files: variables and locals are HCL2 features; write the values in place"),
            ));
        }
    }
    let jobs = f.blocks(d, "job", 1);
    f.finish(d);
    match jobs.len() {
        1 => jobs.into_iter().next().map(|b| decode_job(&b, d)),
        // A `job` that is there but malformed was reported already.
        0 if d.iter().filter(|x| x.is_error()).count() > errors_before => None,
        0 => {
            d.push(Diagnostic::error(
                body.pos,
                "job",
                "no job found: a job file holds one `job \"name\" { … }` block",
            ));
            None
        }
        n => {
            d.push(Diagnostic::error(
                jobs[1].pos,
                format!("job {:?}", jobs[1].labels[0].name),
                format!(
                    "a job file holds exactly one job, found {n}; put each job in its own file"
                ),
            ));
            None
        }
    }
}

fn decode_job(b: &BlockRef, d: &mut Diags) -> Job {
    let label = &b.labels[0];
    let path = format!("job {:?}", label.name);
    let mut f = Fields::new(&path, b.pos, &b.body, &schema::JOB);

    let id = f.string(d, "id").unwrap_or_else(|| label.name.clone());
    validate_job_id(&id, label.pos, &path, d);
    let name = f.string(d, "name").unwrap_or_else(|| id.clone());
    let job_type = match f.string(d, "type") {
        None => JobType::Service,
        Some(t) => JobType::parse(&t).unwrap_or_else(|| {
            let names: Vec<&str> = JobType::ALL.iter().map(|t| t.as_str()).collect();
            d.push(Diagnostic::error(
                b.pos,
                f.child("type"),
                format!(
                    "invalid job type {t:?}: expected one of service, batch, system, sysbatch{}",
                    did_you_mean(&t, &names)
                ),
            ));
            JobType::Service
        }),
    };
    let priority = f.int(d, "priority", 1, 100).unwrap_or(50) as u8;
    let datacenters = f
        .string_list(d, "datacenters")
        .unwrap_or_else(|| vec!["*".into()]);
    if datacenters.is_empty() {
        d.push(Diagnostic::error(
            b.pos,
            f.child("datacenters"),
            "datacenters must not be empty; omit it to run in every datacenter",
        ));
    }

    let update = match f.block(d, "update") {
        Some(u) => decode_update(&f, &u, UpdateStrategy::default(), d),
        None => UpdateStrategy::default(),
    };
    let reschedule_default = if job_type.is_batch_like() {
        ReschedulePolicy::batch_default()
    } else {
        ReschedulePolicy::service_default()
    };
    let reschedule = match f.block(d, "reschedule") {
        Some(r) => decode_reschedule(&f, &r, reschedule_default, d),
        None => reschedule_default,
    };
    let defaults = GroupDefaults {
        job_type,
        update: update.clone(),
        reschedule,
    };

    let mut job = Job {
        id,
        name,
        namespace: f.string_or(d, "namespace", "default"),
        region: f.string_or(d, "region", "global"),
        job_type,
        priority,
        all_at_once: f.bool(d, "all_at_once").unwrap_or(false),
        datacenters,
        node_pool: f.string_or(d, "node_pool", "default"),
        constraints: decode_constraints(&mut f, d),
        affinities: decode_affinities(&mut f, d),
        spreads: decode_spreads(&mut f, d),
        update,
        meta: f.string_map(d, "meta"),
        task_groups: Vec::new(),
        stop: false,
        version: 0,
    };

    // A task written directly in the job is, as in Nomad, a group of its own named after the
    // task, placed before the job's groups.
    let has_group = f.has("group") || f.has("task");
    let mut groups: Vec<BlockRef> = f
        .blocks(d, "task", 1)
        .into_iter()
        .map(lone_task_group)
        .collect();
    groups.extend(f.blocks(d, "group", 1));
    if groups.is_empty() && !has_group {
        d.push(Diagnostic::error(
            b.pos,
            path.clone(),
            "a job needs at least one group block",
        ));
    }
    for g in groups {
        let group = decode_group(&f, &g, &defaults, d);
        if job.task_groups.iter().any(|x| x.name == group.name) {
            d.push(Diagnostic::error(
                g.pos,
                f.child_labeled("group", &group.name),
                format!(
                    "duplicate group name {:?}: group names must be unique in a job",
                    group.name
                ),
            ));
            continue;
        }
        job.task_groups.push(group);
    }
    f.finish(d);
    job
}

fn lone_task_group(t: BlockRef) -> BlockRef {
    let task = Item {
        key: "task".into(),
        pos: t.pos,
        kind: ItemKind::Block(Block {
            labels: t.labels.clone(),
            body: t.body,
        }),
    };
    BlockRef {
        pos: t.pos,
        labels: t.labels,
        body: Body {
            pos: t.pos,
            items: vec![task],
        },
    }
}

fn validate_job_id(id: &str, pos: Pos, path: &str, d: &mut Diags) {
    if id.is_empty() {
        d.push(Diagnostic::error(pos, path, "the job ID must not be empty"));
    } else if id.len() > 128 {
        d.push(Diagnostic::error(
            pos,
            path,
            "the job ID must be at most 128 characters",
        ));
    } else if id.contains(char::is_whitespace) || id.contains('\0') || id.contains('/') {
        d.push(Diagnostic::error(
            pos,
            path,
            "the job ID must not contain spaces, slashes or NUL",
        ));
    }
}

struct GroupDefaults {
    job_type: JobType,
    update: UpdateStrategy,
    reschedule: ReschedulePolicy,
}

fn decode_group(
    parent: &Fields,
    b: &BlockRef,
    defaults: &GroupDefaults,
    d: &mut Diags,
) -> TaskGroup {
    let name = b.labels[0].name.clone();
    let mut f = Fields::new(
        parent.child_labeled("group", &name),
        b.pos,
        &b.body,
        &schema::GROUP,
    );
    let restart_default = if defaults.job_type.is_batch_like() {
        RestartPolicy::batch_default()
    } else {
        RestartPolicy::service_default()
    };
    let restart = match f.block(d, "restart") {
        Some(r) => decode_restart(&f, &r, restart_default, RestartLevel::Group, d),
        None => restart_default,
    };
    let reschedule = match f.block(d, "reschedule") {
        Some(r) => decode_reschedule(&f, &r, defaults.reschedule.clone(), d),
        None => defaults.reschedule.clone(),
    };
    let update = match f.block(d, "update") {
        Some(u) => decode_update(&f, &u, defaults.update.clone(), d),
        None => defaults.update.clone(),
    };
    let ephemeral_disk = match f.block(d, "ephemeral_disk") {
        Some(e) => {
            let mut ef = Fields::new(
                f.child("ephemeral_disk"),
                e.pos,
                &e.body,
                &schema::EPHEMERAL_DISK,
            );
            let disk = EphemeralDisk {
                size: ef.u64(d, "size").unwrap_or(300),
                sticky: ef.bool(d, "sticky").unwrap_or(false),
                migrate: ef.bool(d, "migrate").unwrap_or(false),
            };
            ef.finish(d);
            disk
        }
        None => EphemeralDisk::default(),
    };
    let mut sites = PortSites::default();
    let mut networks: Vec<NetworkResource> = Vec::new();
    let network_blocks = f.blocks(d, "network", 0);
    if network_blocks.len() > 1 {
        d.push(Diagnostic::error(
            network_blocks[1].pos,
            f.child("network"),
            "only one network block is allowed in a group",
        ));
    }
    if let Some(n) = network_blocks.first() {
        networks.push(decode_network(&f, n, &mut sites, d));
    }

    let mut group = TaskGroup {
        count: f.u32(d, "count").unwrap_or(1),
        constraints: decode_constraints(&mut f, d),
        affinities: decode_affinities(&mut f, d),
        spreads: decode_spreads(&mut f, d),
        networks,
        services: Vec::new(),
        restart,
        reschedule,
        update,
        ephemeral_disk,
        meta: f.string_map(d, "meta"),
        shutdown_delay: f.duration(d, "shutdown_delay").unwrap_or(Duration::ZERO),
        stop_after_client_disconnect: f.duration(d, "stop_after_client_disconnect"),
        max_client_disconnect: f.duration(d, "max_client_disconnect"),
        tasks: Vec::new(),
        name,
    };

    let service_blocks = f.blocks(d, "service", 0);
    let has_task = f.has("task");
    let task_blocks = f.blocks(d, "task", 1);
    // Nomad adds the task itself for a Connect gateway; the `connect` block is then refused as
    // unsupported, which says all there is to say.
    let connect_gateway = service_blocks
        .iter()
        .any(|s| s.body.items.iter().any(|i| i.key == "connect"));
    if task_blocks.is_empty() && !has_task && !connect_gateway {
        d.push(Diagnostic::error(
            b.pos,
            f.path.clone(),
            "a group needs at least one task block",
        ));
    }
    let mut legacy_nets = Vec::new();
    for t in &task_blocks {
        let (task, mut legacy) = decode_task(&f, t, &group, d);
        if group.tasks.iter().any(|x| x.name == task.name) {
            d.push(Diagnostic::error(
                t.pos,
                f.child_labeled("task", &task.name),
                format!(
                    "duplicate task name {:?}: task names must be unique in a group",
                    task.name
                ),
            ));
            continue;
        }
        sites.task_ports.push(legacy.ports_pos.unwrap_or(t.pos));
        sites
            .task_services
            .push(std::mem::take(&mut legacy.service_pos));
        legacy_nets.push(legacy);
        group.tasks.push(task);
    }
    let group_labels: Vec<String> = group
        .networks
        .iter()
        .flat_map(|n| n.ports())
        .map(|p| p.label.clone())
        .collect();
    for (i, legacy) in legacy_nets.into_iter().enumerate() {
        normalise_legacy_network(&f.path, &mut group, i, legacy, &group_labels, &mut sites, d);
    }
    for s in service_blocks {
        let svc = decode_service(&f, &s, None, d);
        group.services.push(svc);
        sites.services.push(s.pos);
    }
    validate_group_ports(&f.path, b.pos, &group, &sites, d);
    f.finish(d);
    group
}

/// Where the ports of a group and the references to them were written, so the group-wide port
/// checks can point at the line at fault rather than at the group.
#[derive(Default)]
struct PortSites {
    /// Every port label declared in the group, in order, with its `port` block.
    ports: Vec<(String, Pos)>,
    /// Per task (in `group.tasks` order): its docker `ports` attribute, else the task block.
    task_ports: Vec<Pos>,
    /// Per task: its `service` blocks.
    task_services: Vec<Vec<Pos>>,
    /// The group's own `service` blocks.
    services: Vec<Pos>,
}

fn decode_network(
    parent: &Fields,
    b: &BlockRef,
    sites: &mut PortSites,
    d: &mut Diags,
) -> NetworkResource {
    let mut f = Fields::new(parent.child("network"), b.pos, &b.body, &schema::NETWORK);
    let mode = f.string_or(d, "mode", "host");
    if !matches!(mode.as_str(), "host" | "bridge" | "none") {
        if mode.starts_with("cni/") {
            d.push(Diagnostic::error(b.pos, f.child("mode"), format!("network mode {mode:?} is unsupported in drover (CNI networks); use host or bridge")));
        } else {
            d.push(Diagnostic::error(
                b.pos,
                f.child("mode"),
                format!(
                    "invalid network mode {mode:?}: expected host, bridge or none{}",
                    did_you_mean(&mode, &["host", "bridge", "none"])
                ),
            ));
        }
    }
    // `mbits` is deprecated in Nomad and never enforced: read and dropped.
    let _ = f.u64(d, "mbits");
    let mut net = NetworkResource {
        mode,
        hostname: f.string(d, "hostname"),
        ..Default::default()
    };
    if let Some(dns) = f.block(d, "dns") {
        let mut df = Fields::new(f.child("dns"), dns.pos, &dns.body, &schema::DNS);
        net.dns = Some(DnsConfig {
            servers: df.string_list(d, "servers").unwrap_or_default(),
            searches: df.string_list(d, "searches").unwrap_or_default(),
            options: df.string_list(d, "options").unwrap_or_default(),
        });
        df.finish(d);
    }
    for p in f.blocks(d, "port", 1) {
        let (port, is_static) = decode_port(&f, &p, d);
        sites.ports.push((port.label.clone(), p.pos));
        if is_static {
            net.reserved_ports.push(port);
        } else {
            net.dynamic_ports.push(port);
        }
    }
    f.finish(d);
    net
}

fn decode_port(parent: &Fields, b: &BlockRef, d: &mut Diags) -> (Port, bool) {
    let label = b.labels[0].name.clone();
    let mut f = Fields::new(
        parent.child_labeled("port", &label),
        b.pos,
        &b.body,
        &schema::PORT,
    );
    if label.is_empty()
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        d.push(Diagnostic::error(
            b.pos,
            f.path.clone(),
            format!("invalid port label {label:?}: use letters, digits, _ and -"),
        ));
    }
    let value = f.int(d, "static", 1, 65535).map(|n| n as u16);
    // `to = -1` means "the same as the host port", which drover writes as 0.
    let to = f.int(d, "to", -1, 65535).map_or(0, |n| n.max(0) as u16);
    let port = Port {
        label,
        value: value.unwrap_or(0),
        to,
        host_network: f.string(d, "host_network"),
        ignore_collision: f.bool(d, "ignore_collision").unwrap_or(false),
    };
    f.finish(d);
    (port, value.is_some())
}

/// The task-level `resources { network { … } }` of the legacy form, and where the task refers
/// to ports.
struct LegacyNetwork {
    pos: Pos,
    ports: Vec<(Port, bool, Pos)>,
    port_map: Vec<(String, u16, Pos)>,
    ports_pos: Option<Pos>,
    service_pos: Vec<Pos>,
}

fn decode_task(
    parent: &Fields,
    b: &BlockRef,
    group: &TaskGroup,
    d: &mut Diags,
) -> (Task, LegacyNetwork) {
    let name = b.labels[0].name.clone();
    let mut f = Fields::new(
        parent.child_labeled("task", &name),
        b.pos,
        &b.body,
        &schema::TASK,
    );
    let driver = match f.string(d, "driver") {
        Some(dr) => dr,
        None => {
            if !f.failed("driver") {
                d.push(Diagnostic::error(
                    b.pos,
                    f.path.clone(),
                    "driver is required: set driver = \"docker\" or \"raw_exec\"",
                ));
            }
            String::new()
        }
    };
    let mut legacy = LegacyNetwork {
        pos: b.pos,
        ports: Vec::new(),
        port_map: Vec::new(),
        ports_pos: None,
        service_pos: Vec::new(),
    };
    let config = decode_config(&mut f, &driver, b.pos, &mut legacy, d);
    let resources = match f.block(d, "resources") {
        Some(r) => decode_resources(&f, &r, &mut legacy, d),
        None => Resources::default(),
    };
    let restart = f
        .block(d, "restart")
        .map(|r| decode_restart(&f, &r, group.restart.clone(), RestartLevel::Task, d));
    let logs = match f.block(d, "logs") {
        Some(l) => {
            let mut lf = Fields::new(f.child("logs"), l.pos, &l.body, &schema::LOGS);
            let enabled = lf.bool(d, "enabled");
            let disabled = lf.bool(d, "disabled");
            let cfg = LogConfig {
                max_files: lf.u32(d, "max_files").unwrap_or(10),
                max_file_size: lf.u32(d, "max_file_size").unwrap_or(10),
                disabled: disabled.unwrap_or(false) || enabled == Some(false),
            };
            lf.finish(d);
            cfg
        }
        None => LogConfig::default(),
    };
    let kill_signal = f.string(d, "kill_signal");
    if let Some(sig) = &kill_signal
        && !valid_signal(sig)
    {
        d.push(Diagnostic::error(
            b.pos,
            f.child("kill_signal"),
            format!(
                "invalid kill_signal {sig:?}: expected a signal name like \"SIGTERM\" or \"SIGINT\""
            ),
        ));
    }
    let mut task = Task {
        driver,
        config,
        env: f.string_map(d, "env"),
        meta: f.string_map(d, "meta"),
        resources,
        restart,
        services: Vec::new(),
        artifacts: Vec::new(),
        constraints: decode_constraints(&mut f, d),
        affinities: decode_affinities(&mut f, d),
        kill_timeout: f
            .duration(d, "kill_timeout")
            .unwrap_or(drover_runtime::spec::DEFAULT_KILL_TIMEOUT),
        kill_signal,
        shutdown_delay: f.duration(d, "shutdown_delay").unwrap_or(Duration::ZERO),
        user: f.string(d, "user"),
        leader: f.bool(d, "leader").unwrap_or(false),
        logs,
        name,
    };
    for a in f.blocks(d, "artifact", 0) {
        task.artifacts.push(decode_artifact(&f, &a, d));
    }
    for s in f.blocks(d, "service", 0) {
        task.services
            .push(decode_service(&f, &s, Some(&task.name), d));
        legacy.service_pos.push(s.pos);
    }
    f.finish(d);
    (task, legacy)
}

fn valid_signal(sig: &str) -> bool {
    sig.strip_prefix("SIG").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+' || c == '-')
    })
}

fn decode_config(
    f: &mut Fields,
    driver: &str,
    task_pos: Pos,
    legacy: &mut LegacyNetwork,
    d: &mut Diags,
) -> TaskConfig {
    let block = f.block(d, "config");
    let empty = Body {
        pos: task_pos,
        items: vec![],
    };
    let (pos, body) = match &block {
        Some(b) => (b.pos, &b.body),
        None => (task_pos, &empty),
    };
    match driver {
        "docker" => {
            let mut c = Fields::new(f.child("config"), pos, body, &schema::DOCKER_CONFIG);
            let image = c.string(d, "image").unwrap_or_default();
            if image.trim().is_empty() && !c.failed("image") {
                d.push(Diagnostic::error(
                    pos,
                    c.path.clone(),
                    "image is required for the docker driver",
                ));
            }
            let command = c.string(d, "command");
            let entrypoint = c.string_list(d, "entrypoint");
            legacy.ports_pos = c.pos_of("ports");
            for (label, pos, v) in c.map_entries(d, "port_map") {
                match &v.kind {
                    super::tree::ValueKind::Number(n)
                        if *n >= 1.0 && *n <= 65535.0 && n.fract() == 0.0 =>
                    {
                        legacy.port_map.push((label, *n as u16, pos));
                    }
                    super::tree::ValueKind::String(s) if s.parse::<u16>().is_ok_and(|p| p > 0) => {
                        legacy.port_map.push((label, s.parse().unwrap_or(0), pos));
                    }
                    // `http = "${NOMAD_PORT_http}"`: the container listens on the host port,
                    // which drover writes as `to = 0`.
                    super::tree::ValueKind::String(s) if s.trim() == format!("${{NOMAD_PORT_{label}}}") => {
                        legacy.port_map.push((label, 0, pos));
                    }
                    super::tree::ValueKind::String(s) if s.contains("${") => d.push(Diagnostic::error(
                        pos,
                        format!("{} > port_map > {label}", c.path),
                        format!("a port_map value known only at run time ({s:?}) is unsupported in drover; give the container port as a number"),
                    )),
                    other => d.push(super::fields::type_error(
                        pos,
                        format!("{} > port_map > {label}", c.path),
                        "a port number between 1 and 65535",
                        other,
                    )),
                }
            }
            let cfg = DockerConfig {
                image,
                command,
                args: c.string_list(d, "args").unwrap_or_default(),
                entrypoint,
                ports: c.string_list(d, "ports").unwrap_or_default(),
                dns_servers: c.string_list(d, "dns_servers").unwrap_or_default(),
                dns_search_domains: c.string_list(d, "dns_search_domains").unwrap_or_default(),
                dns_options: c.string_list(d, "dns_options").unwrap_or_default(),
                volumes: c.string_list(d, "volumes").unwrap_or_default(),
                labels: c.string_map(d, "labels"),
                network_mode: c.string(d, "network_mode"),
                hostname: c.string(d, "hostname"),
                extra_hosts: c.string_list(d, "extra_hosts").unwrap_or_default(),
                work_dir: c.string(d, "work_dir"),
                privileged: c.bool(d, "privileged").unwrap_or(false),
                cap_add: c.string_list(d, "cap_add").unwrap_or_default(),
                cap_drop: c.string_list(d, "cap_drop").unwrap_or_default(),
                init: c.bool(d, "init").unwrap_or(false),
                interactive: c.bool(d, "interactive").unwrap_or(false),
                tty: c.bool(d, "tty").unwrap_or(false),
                force_pull: c.bool(d, "force_pull").unwrap_or(false),
            };
            for v in &cfg.volumes {
                if v.split(':').count() < 2 {
                    d.push(Diagnostic::error(
                        pos,
                        format!("{} > volumes", c.path),
                        format!(
                            "invalid volume {v:?}: expected \"host/path:/container/path[:ro]\""
                        ),
                    ));
                }
            }
            c.finish(d);
            TaskConfig::Docker(cfg)
        }
        "raw_exec" => {
            let mut c = Fields::new(f.child("config"), pos, body, &schema::RAW_EXEC_CONFIG);
            let command = c.string(d, "command").unwrap_or_default();
            if command.trim().is_empty() && !c.failed("command") {
                d.push(Diagnostic::error(
                    pos,
                    c.path.clone(),
                    "command is required for the raw_exec driver",
                ));
            }
            let cfg = RawExecConfig {
                command,
                args: c.string_list(d, "args").unwrap_or_default(),
                work_dir: c.string(d, "work_dir"),
            };
            c.finish(d);
            TaskConfig::RawExec(cfg)
        }
        other => {
            if !other.is_empty() {
                let msg = if schema::UNSUPPORTED_DRIVERS.contains(&other) {
                    format!(
                        "driver {other:?} is unsupported in drover, which runs docker and raw_exec"
                    )
                } else {
                    let mut known: Vec<&str> = schema::DRIVERS.to_vec();
                    known.extend_from_slice(schema::UNSUPPORTED_DRIVERS);
                    format!(
                        "unknown driver {other:?}: expected docker or raw_exec{}",
                        did_you_mean(other, &known)
                    )
                };
                d.push(Diagnostic::error(task_pos, f.child("driver"), msg));
            }
            // Without a known driver the config cannot be checked; keep what parses.
            TaskConfig::RawExec(RawExecConfig::default())
        }
    }
}

fn decode_resources(
    parent: &Fields,
    b: &BlockRef,
    legacy: &mut LegacyNetwork,
    d: &mut Diags,
) -> Resources {
    let mut f = Fields::new(
        parent.child("resources"),
        b.pos,
        &b.body,
        &schema::RESOURCES,
    );
    let defaults = Resources::default();
    let cores = f.u64(d, "cores").unwrap_or(0);
    let cpu = f.u64(d, "cpu");
    if cores > 0 && cpu.is_some() {
        d.push(Diagnostic::error(
            b.pos,
            f.path.clone(),
            "set cpu or cores, not both",
        ));
    }
    let memory = f.u64(d, "memory").unwrap_or(defaults.memory);
    let memory_max = f.u64(d, "memory_max").unwrap_or(0);
    if memory == 0 {
        d.push(Diagnostic::error(
            b.pos,
            f.child("memory"),
            "memory must be at least 1 MB",
        ));
    }
    if memory_max != 0 && memory_max < memory {
        d.push(Diagnostic::error(
            b.pos,
            f.child("memory_max"),
            format!("memory_max ({memory_max} MB) must be at least memory ({memory} MB)"),
        ));
    }
    let networks = f.blocks(d, "network", 0);
    if networks.len() > 1 {
        d.push(Diagnostic::error(
            networks[1].pos,
            f.child("network"),
            "only one network block is allowed in resources",
        ));
    }
    if let Some(n) = networks.first() {
        let mut nf = Fields::new(f.child("network"), n.pos, &n.body, &schema::NETWORK);
        let _ = nf.u64(d, "mbits");
        nf.skip("mode");
        // The network namespace's hostname and DNS belong to the group network.
        for key in ["hostname", "dns"] {
            if nf.has(key) {
                nf.skip(key);
                d.push(Diagnostic::warning(
                    n.pos,
                    nf.child(key),
                    format!("{key} in a task-level network has no effect; set it in the group's network block"),
                ));
            }
        }
        legacy.pos = n.pos;
        for p in nf.blocks(d, "port", 1) {
            let (port, is_static) = decode_port(&nf, &p, d);
            legacy.ports.push((port, is_static, p.pos));
        }
        nf.finish(d);
    }
    let r = Resources {
        cpu: if cores > 0 {
            0
        } else {
            cpu.unwrap_or(defaults.cpu)
        },
        cores,
        memory,
        memory_max,
    };
    f.finish(d);
    r
}

/// Moves a task's legacy ports into the group network (Nomad deprecated the task-level form)
/// and makes the docker task bind them; `port_map` becomes each port's `to`.
/// `group_labels` are the ports of the group's own network block; any other label already in the
/// group network came from an earlier task's legacy network.
fn normalise_legacy_network(
    group_path: &str,
    group: &mut TaskGroup,
    task_index: usize,
    legacy: LegacyNetwork,
    group_labels: &[String],
    sites: &mut PortSites,
    d: &mut Diags,
) {
    let task_name = group.tasks[task_index].name.clone();
    let task_path = format!("{group_path} > task {task_name:?}");
    if !legacy.ports.is_empty() {
        let labels: Vec<String> = legacy
            .ports
            .iter()
            .map(|(p, _, _)| format!("{:?}", p.label))
            .collect();
        d.push(Diagnostic::warning(
            legacy.pos,
            format!("{task_path} > resources > network"),
            format!(
                "the task-level network is deprecated in Nomad; drover moves its ports ({}) to the group network and binds them to this task",
                labels.join(", ")
            ),
        ));
        if group.networks.is_empty() {
            group.networks.push(NetworkResource {
                mode: "host".into(),
                ..Default::default()
            });
        }
    }
    let mut bound = Vec::new();
    for (mut port, is_static, port_pos) in legacy.ports {
        if group.networks[0].ports().any(|p| p.label == port.label) {
            let message = if group_labels.contains(&port.label) || bound.contains(&port.label) {
                format!(
                    "port label {:?} is declared more than once in the group",
                    port.label
                )
            } else {
                // Nomad gives each task's legacy network its own labels; drover has one
                // group network, where two tasks' "http" ports would be one port.
                format!(
                    "port label {:?} is also declared by another task's task-level network: a port label per task is unsupported in drover, which moves task-level ports into the one group network; rename one of them",
                    port.label
                )
            };
            d.push(Diagnostic::error(
                port_pos,
                format!("{task_path} > resources > network > port {:?}", port.label),
                message,
            ));
            continue;
        }
        if let Some((_, to, _)) = legacy.port_map.iter().find(|(l, _, _)| *l == port.label) {
            port.to = *to;
        }
        bound.push(port.label.clone());
        sites.ports.push((port.label.clone(), port_pos));
        let net = &mut group.networks[0];
        if is_static {
            net.reserved_ports.push(port);
        } else {
            net.dynamic_ports.push(port);
        }
    }
    for (label, to, pos) in &legacy.port_map {
        if bound.contains(label) {
            continue;
        }
        let net_port = group.networks.first_mut().and_then(|n| {
            n.reserved_ports
                .iter_mut()
                .chain(n.dynamic_ports.iter_mut())
                .find(|p| &p.label == label)
        });
        match net_port {
            Some(p) => {
                if p.to == 0 {
                    p.to = *to;
                }
                bound.push(label.clone());
            }
            None => {
                let known: Vec<&str> = group
                    .networks
                    .iter()
                    .flat_map(|n| n.ports())
                    .map(|p| p.label.as_str())
                    .collect();
                d.push(Diagnostic::error(
                    *pos,
                    format!("{task_path} > config > port_map > {label}"),
                    format!(
                        "port_map names port {label:?}, which no network declares{}",
                        did_you_mean(label, &known)
                    ),
                ));
            }
        }
    }
    if let TaskConfig::Docker(cfg) = &mut group.tasks[task_index].config {
        for label in bound {
            if !cfg.ports.contains(&label) {
                cfg.ports.push(label);
            }
        }
    }
}

fn validate_group_ports(path: &str, pos: Pos, group: &TaskGroup, sites: &PortSites, d: &mut Diags) {
    let labels: Vec<&str> = group
        .networks
        .iter()
        .flat_map(|n| n.ports())
        .map(|p| p.label.as_str())
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    for (l, at) in &sites.ports {
        if seen.contains(&l.as_str()) {
            d.push(Diagnostic::error(
                *at,
                format!("{path} > network > port {l:?}"),
                format!("port label {l:?} is declared more than once in the group"),
            ));
        }
        seen.push(l);
    }
    let mut statics: Vec<(&str, u16)> = Vec::new();
    for p in group.networks.iter().flat_map(|n| n.reserved_ports.iter()) {
        if let Some((other, _)) = statics.iter().find(|(_, v)| *v == p.value)
            && !p.ignore_collision
        {
            // Both ports may share a label (reported above); point at the later one.
            let at = sites
                .ports
                .iter()
                .rev()
                .find(|(l, _)| *l == p.label)
                .map_or(pos, |(_, p)| *p);
            d.push(Diagnostic::error(
                at,
                format!("{path} > network > port {:?}", p.label),
                format!(
                    "static port {} is also used by port {other:?} in this group",
                    p.value
                ),
            ));
        }
        statics.push((&p.label, p.value));
    }
    for (i, t) in group.tasks.iter().enumerate() {
        let task_path = format!("{path} > task {:?}", t.name);
        if let TaskConfig::Docker(cfg) = &t.config {
            for p in &cfg.ports {
                if !labels.contains(&p.as_str()) {
                    d.push(Diagnostic::error(
                        sites.task_ports.get(i).copied().unwrap_or(pos),
                        format!("{task_path} > config > ports"),
                        format!(
                            "{p:?} is not a port declared in the group network{}",
                            did_you_mean(p, &labels)
                        ),
                    ));
                }
            }
        }
        let service_pos = sites.task_services.get(i);
        for (j, s) in t.services.iter().enumerate() {
            let at = service_pos.and_then(|v| v.get(j)).copied().unwrap_or(pos);
            check_service_port(&task_path, at, s, &labels, d);
        }
    }
    for (j, s) in group.services.iter().enumerate() {
        check_service_port(
            path,
            sites.services.get(j).copied().unwrap_or(pos),
            s,
            &labels,
            d,
        );
    }
}

fn check_service_port(path: &str, pos: Pos, s: &Service, labels: &[&str], d: &mut Diags) {
    if let Some(p) = &s.port
        && p.parse::<u16>().is_err()
        && !labels.contains(&p.as_str())
    {
        d.push(Diagnostic::error(
            pos,
            format!("{path} > service > port"),
            format!(
                "service port {p:?} is not a port declared in the group network{}",
                did_you_mean(p, labels)
            ),
        ));
    }
}

fn decode_service(parent: &Fields, b: &BlockRef, task: Option<&str>, d: &mut Diags) -> Service {
    let mut f = Fields::new(parent.child("service"), b.pos, &b.body, &schema::SERVICE);
    let name = f.string(d, "name").unwrap_or_default();
    if !name.is_empty() && !name.contains("${") && !valid_dns_label(&name) {
        d.push(Diagnostic::error(
            b.pos,
            f.child("name"),
            format!("service name {name:?} must be a valid DNS label: letters, digits and dashes, at most 63"),
        ));
    }
    let address_mode = f.string_or(d, "address_mode", "auto");
    check_address_mode(&f, b.pos, &address_mode, d);
    let provider = f.string_or(d, "provider", "consul");
    if !matches!(provider.as_str(), "consul" | "nomad") {
        d.push(Diagnostic::error(
            b.pos,
            f.child("provider"),
            format!("invalid provider {provider:?}: expected consul or nomad"),
        ));
    }
    let check_restart = f
        .block(d, "check_restart")
        .map(|c| decode_check_restart(&f, &c, d));
    let mut svc = Service {
        name,
        port: f.string(d, "port"),
        tags: f.string_list(d, "tags").unwrap_or_default(),
        canary_tags: f.string_list(d, "canary_tags").unwrap_or_default(),
        address_mode,
        address: f.string(d, "address"),
        provider,
        task: f.string(d, "task").or_else(|| task.map(str::to_string)),
        meta: f.string_map(d, "meta"),
        checks: Vec::new(),
        check_restart,
        on_update: f.string_or(d, "on_update", "require_healthy"),
    };
    for c in f.blocks(d, "check", 0) {
        svc.checks.push(decode_check(&f, &c, d));
    }
    f.finish(d);
    svc
}

fn valid_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check_address_mode(f: &Fields, pos: Pos, mode: &str, d: &mut Diags) {
    if !matches!(mode, "auto" | "host" | "driver" | "alloc") {
        d.push(Diagnostic::error(
            pos,
            f.child("address_mode"),
            format!(
                "invalid address_mode {mode:?}: expected auto, host, driver or alloc{}",
                did_you_mean(mode, &["auto", "host", "driver", "alloc"])
            ),
        ));
    }
}

fn decode_check(parent: &Fields, b: &BlockRef, d: &mut Diags) -> ServiceCheck {
    let mut f = Fields::new(parent.child("check"), b.pos, &b.body, &schema::CHECK);
    let check_type = f.string(d, "type").unwrap_or_default();
    match check_type.as_str() {
        "tcp" | "http" => {}
        "script" | "grpc" => d.push(Diagnostic::error(
            b.pos,
            f.child("type"),
            format!(
                "check type {check_type:?} is unsupported in drover, which runs tcp and http checks"
            ),
        )),
        "" if f.failed("type") => {}
        "" => d.push(Diagnostic::error(
            b.pos,
            f.path.clone(),
            "type is required: tcp or http",
        )),
        other => d.push(Diagnostic::error(
            b.pos,
            f.child("type"),
            format!(
                "invalid check type {other:?}: expected tcp or http{}",
                did_you_mean(other, &["tcp", "http", "script", "grpc"])
            ),
        )),
    }
    let interval = f.duration(d, "interval");
    let timeout = f.duration(d, "timeout");
    if interval.is_none_or(|i| i.is_zero()) && !f.failed("interval") {
        d.push(Diagnostic::error(
            b.pos,
            f.child("interval"),
            "interval is required and must be more than 0, like \"10s\"",
        ));
    }
    if timeout.is_none_or(|t| t.is_zero()) && !f.failed("timeout") {
        d.push(Diagnostic::error(
            b.pos,
            f.child("timeout"),
            "timeout is required and must be more than 0, like \"2s\"",
        ));
    }
    let path = f.string(d, "path");
    if check_type == "http" && path.is_none() && !f.failed("path") {
        d.push(Diagnostic::error(
            b.pos,
            f.child("path"),
            "path is required for an http check, like \"/health\"",
        ));
    }
    let address_mode = f.string(d, "address_mode");
    if let Some(m) = &address_mode {
        check_address_mode(&f, b.pos, m, d);
    }
    let protocol = f.string(d, "protocol");
    if let Some(p) = &protocol
        && !matches!(p.as_str(), "http" | "https")
    {
        d.push(Diagnostic::error(
            b.pos,
            f.child("protocol"),
            format!("invalid protocol {p:?}: expected http or https"),
        ));
    }
    let check_restart = f
        .block(d, "check_restart")
        .map(|c| decode_check_restart(&f, &c, d));
    let c = ServiceCheck {
        name: f.string(d, "name").unwrap_or_default(),
        check_type,
        port: f.string(d, "port"),
        path,
        method: f.string(d, "method"),
        protocol,
        body: f.string(d, "body"),
        header: f.string_list_map(d, "header"),
        interval: interval.unwrap_or_default(),
        timeout: timeout.unwrap_or_default(),
        address_mode,
        command: f.string(d, "command"),
        args: f.string_list(d, "args").unwrap_or_default(),
        task: f.string(d, "task"),
        tls_skip_verify: f.bool(d, "tls_skip_verify").unwrap_or(false),
        initial_status: f.string(d, "initial_status"),
        success_before_passing: f.u32(d, "success_before_passing").unwrap_or(0),
        failures_before_critical: f.u32(d, "failures_before_critical").unwrap_or(0),
        check_restart,
        on_update: f.string_or(d, "on_update", "require_healthy"),
    };
    f.finish(d);
    c
}

fn decode_check_restart(parent: &Fields, b: &BlockRef, d: &mut Diags) -> CheckRestart {
    let mut f = Fields::new(
        parent.child("check_restart"),
        b.pos,
        &b.body,
        &schema::CHECK_RESTART,
    );
    let defaults = CheckRestart::default();
    let c = CheckRestart {
        limit: f.u32(d, "limit").unwrap_or(defaults.limit),
        grace: f.duration(d, "grace").unwrap_or(defaults.grace),
        ignore_warnings: f.bool(d, "ignore_warnings").unwrap_or(false),
    };
    f.finish(d);
    c
}

fn decode_artifact(parent: &Fields, b: &BlockRef, d: &mut Diags) -> Artifact {
    let mut f = Fields::new(parent.child("artifact"), b.pos, &b.body, &schema::ARTIFACT);
    let source = f.string(d, "source").unwrap_or_default();
    if source.trim().is_empty() && !f.failed("source") {
        d.push(Diagnostic::error(
            b.pos,
            f.path.clone(),
            "source is required: the URL to fetch",
        ));
    }
    let mode = f.string_or(d, "mode", "any");
    if !matches!(mode.as_str(), "any" | "file" | "dir") {
        d.push(Diagnostic::error(
            b.pos,
            f.child("mode"),
            format!("invalid mode {mode:?}: expected any, file or dir"),
        ));
    }
    let a = Artifact {
        source,
        destination: f.string_or(d, "destination", "local/"),
        mode,
        options: f.string_map(d, "options"),
        headers: f.string_map(d, "headers"),
        // Ignored (see schema::ARTIFACT): the fetched files are the agent user's.
        chown: false,
    };
    // The node fetches with the same checks; catching an unsupported getter, a bad checksum
    // or an escaping destination here fails the job at submit time instead. Values that are
    // only known on the node (`${…}`) are checked there.
    let node_only = drover_runtime::artifact::is_interpolated(&a.source)
        || drover_runtime::artifact::is_interpolated(&a.destination)
        || a.options
            .values()
            .any(|v| drover_runtime::artifact::is_interpolated(v));
    let already_reported = f.failed("source")
        || a.source.trim().is_empty()
        || !matches!(a.mode.as_str(), "any" | "file" | "dir");
    if !node_only
        && !already_reported
        && let Err(e) = drover_runtime::artifact::Plan::new(&a)
    {
        let field = e.field();
        let pos = f
            .pos_of(field.split('.').next().unwrap_or(field))
            .unwrap_or(b.pos);
        d.push(Diagnostic::error(
            pos,
            f.child(&field.replace('.', " > ")),
            e.to_string(),
        ));
    }
    f.finish(d);
    a
}

/// Where a `restart` block sits: Nomad checks only the group's policy for attempts × delay
/// fitting in the interval, and takes a task's override as written.
#[derive(Clone, Copy, PartialEq)]
enum RestartLevel {
    Group,
    Task,
}

fn decode_restart(
    parent: &Fields,
    b: &BlockRef,
    base: RestartPolicy,
    level: RestartLevel,
    d: &mut Diags,
) -> RestartPolicy {
    let mut f = Fields::new(parent.child("restart"), b.pos, &b.body, &schema::RESTART);
    let mode = match f.string(d, "mode") {
        None => base.mode,
        Some(m) if m == "fail" => RestartMode::Fail,
        Some(m) if m == "delay" => RestartMode::Delay,
        Some(m) => {
            d.push(Diagnostic::error(
                b.pos,
                f.child("mode"),
                format!(
                    "invalid restart mode {m:?}: expected fail or delay{}",
                    did_you_mean(&m, &["fail", "delay"])
                ),
            ));
            base.mode
        }
    };
    let r = RestartPolicy {
        attempts: f.u32(d, "attempts").unwrap_or(base.attempts),
        interval: f.duration(d, "interval").unwrap_or(base.interval),
        delay: f.duration(d, "delay").unwrap_or(base.delay),
        mode,
        render_templates: f
            .bool(d, "render_templates")
            .unwrap_or(base.render_templates),
    };
    if level == RestartLevel::Group && r.attempts > 0 && r.interval < r.delay * r.attempts.min(1000)
    {
        d.push(Diagnostic::error(
            b.pos,
            f.path.clone(),
            format!(
                "interval ({}) must be at least attempts × delay ({} × {}), as Nomad requires",
                super::fields::format_duration(r.interval),
                r.attempts,
                super::fields::format_duration(r.delay)
            ),
        ));
    }
    f.finish(d);
    r
}

fn decode_reschedule(
    parent: &Fields,
    b: &BlockRef,
    base: ReschedulePolicy,
    d: &mut Diags,
) -> ReschedulePolicy {
    let mut f = Fields::new(
        parent.child("reschedule"),
        b.pos,
        &b.body,
        &schema::RESCHEDULE,
    );
    let delay_function = f
        .string(d, "delay_function")
        .unwrap_or(base.delay_function.clone());
    if !matches!(
        delay_function.as_str(),
        "constant" | "exponential" | "fibonacci"
    ) {
        d.push(Diagnostic::error(
            b.pos,
            f.child("delay_function"),
            format!("invalid delay_function {delay_function:?}: expected constant, exponential or fibonacci"),
        ));
    }
    let r = ReschedulePolicy {
        attempts: f.u32(d, "attempts").unwrap_or(base.attempts),
        interval: f.duration(d, "interval").unwrap_or(base.interval),
        delay: f.duration(d, "delay").unwrap_or(base.delay),
        delay_function,
        max_delay: f.duration(d, "max_delay").unwrap_or(base.max_delay),
        unlimited: f.bool(d, "unlimited").unwrap_or(base.unlimited),
    };
    f.finish(d);
    r
}

fn decode_update(
    parent: &Fields,
    b: &BlockRef,
    base: UpdateStrategy,
    d: &mut Diags,
) -> UpdateStrategy {
    let mut f = Fields::new(parent.child("update"), b.pos, &b.body, &schema::UPDATE);
    let health_check = f
        .string(d, "health_check")
        .unwrap_or(base.health_check.clone());
    if !matches!(health_check.as_str(), "checks" | "task_states" | "manual") {
        d.push(Diagnostic::error(
            b.pos,
            f.child("health_check"),
            format!(
                "invalid health_check {health_check:?}: expected checks, task_states or manual"
            ),
        ));
    }
    let u = UpdateStrategy {
        max_parallel: f.u32(d, "max_parallel").unwrap_or(base.max_parallel),
        health_check,
        min_healthy_time: f
            .duration(d, "min_healthy_time")
            .unwrap_or(base.min_healthy_time),
        healthy_deadline: f
            .duration(d, "healthy_deadline")
            .unwrap_or(base.healthy_deadline),
        progress_deadline: f
            .duration(d, "progress_deadline")
            .unwrap_or(base.progress_deadline),
        auto_revert: f.bool(d, "auto_revert").unwrap_or(base.auto_revert),
        auto_promote: f.bool(d, "auto_promote").unwrap_or(base.auto_promote),
        canary: f.u32(d, "canary").unwrap_or(base.canary),
        stagger: f.duration(d, "stagger").unwrap_or(base.stagger),
    };
    if u.healthy_deadline < u.min_healthy_time {
        d.push(Diagnostic::error(
            b.pos,
            f.path.clone(),
            "healthy_deadline must be at least min_healthy_time",
        ));
    }
    f.finish(d);
    u
}

/// Shorthand attributes that name the operator: `regexp = "…"` is `operator = "regexp"`.
const OPERATOR_SHORTHANDS: &[&str] = &[
    "regexp",
    "version",
    "semver",
    "set_contains",
    "set_contains_any",
    "set_contains_all",
];
const OPERATORS: &[&str] = &[
    "=",
    "==",
    "is",
    "!=",
    "not",
    ">",
    ">=",
    "<",
    "<=",
    "distinct_hosts",
    "distinct_property",
    "regexp",
    "set_contains",
    "set_contains_all",
    "set_contains_any",
    "version",
    "semver",
    "is_set",
    "is_not_set",
];

fn decode_constraints(f: &mut Fields, d: &mut Diags) -> Vec<Constraint> {
    let mut out = Vec::new();
    for b in f.blocks(d, "constraint", 0) {
        let mut c = Fields::new(f.child("constraint"), b.pos, &b.body, &schema::CONSTRAINT);
        let mut con = Constraint {
            attribute: c.string(d, "attribute").unwrap_or_default(),
            operator: c.string(d, "operator").unwrap_or_else(|| "=".into()),
            value: c.string(d, "value").unwrap_or_default(),
        };
        if let Some(true) = c.bool(d, "distinct_hosts") {
            con.operator = "distinct_hosts".into();
            con.value = "true".into();
        }
        if let Some(prop) = c.string(d, "distinct_property") {
            con.operator = "distinct_property".into();
            con.attribute = prop;
        }
        for op in OPERATOR_SHORTHANDS {
            if let Some(v) = c.string(d, op) {
                con.operator = (*op).into();
                con.value = v;
            }
        }
        check_operator(&c, b.pos, &con.operator, d);
        if con.attribute.is_empty()
            && !matches!(con.operator.as_str(), "distinct_hosts")
            && !c.failed("attribute")
        {
            d.push(Diagnostic::error(
                b.pos,
                c.path.clone(),
                "attribute is required, like attribute = \"${attr.kernel.name}\"",
            ));
        }
        c.finish(d);
        out.push(con);
    }
    out
}

fn check_operator(f: &Fields, pos: Pos, op: &str, d: &mut Diags) {
    if !OPERATORS.contains(&op) {
        d.push(Diagnostic::error(
            pos,
            f.child("operator"),
            format!("invalid operator {op:?}{}", did_you_mean(op, OPERATORS)),
        ));
    }
}

fn decode_affinities(f: &mut Fields, d: &mut Diags) -> Vec<Affinity> {
    let mut out = Vec::new();
    for b in f.blocks(d, "affinity", 0) {
        let mut c = Fields::new(f.child("affinity"), b.pos, &b.body, &schema::AFFINITY);
        let mut a = Affinity {
            attribute: c.string(d, "attribute").unwrap_or_default(),
            operator: c.string(d, "operator").unwrap_or_else(|| "=".into()),
            value: c.string(d, "value").unwrap_or_default(),
            weight: c.int(d, "weight", -100, 100).unwrap_or(50) as i32,
        };
        for op in OPERATOR_SHORTHANDS {
            if let Some(v) = c.string(d, op) {
                a.operator = (*op).into();
                a.value = v;
            }
        }
        check_operator(&c, b.pos, &a.operator, d);
        c.finish(d);
        out.push(a);
    }
    out
}

fn decode_spreads(f: &mut Fields, d: &mut Diags) -> Vec<Spread> {
    let mut out = Vec::new();
    for b in f.blocks(d, "spread", 0) {
        let mut c = Fields::new(f.child("spread"), b.pos, &b.body, &schema::SPREAD);
        let attribute = c.string(d, "attribute").unwrap_or_default();
        if attribute.is_empty() && !c.failed("attribute") {
            d.push(Diagnostic::error(
                b.pos,
                c.path.clone(),
                "attribute is required",
            ));
        }
        let weight = c.int(d, "weight", 0, 100).unwrap_or(50) as i32;
        let mut targets = Vec::new();
        for t in c.blocks(d, "target", 1) {
            let mut tf = Fields::new(
                c.child_labeled("target", &t.labels[0].name),
                t.pos,
                &t.body,
                &schema::SPREAD_TARGET,
            );
            targets.push(SpreadTarget {
                value: tf
                    .string(d, "value")
                    .unwrap_or_else(|| t.labels[0].name.clone()),
                percent: tf.int(d, "percent", 0, 100).unwrap_or(0) as u32,
            });
            tf.finish(d);
        }
        c.finish(d);
        out.push(Spread {
            attribute,
            weight,
            targets,
        });
    }
    out
}
