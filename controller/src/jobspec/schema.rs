//! What drover knows of Nomad's jobspec, block by block: every attribute and block current Nomad
//! accepts is either *supported* (decoded and run), *ignored* (kept harmless, with a warning
//! saying why) or *unsupported* (a validation error containing "unsupported"). Anything else is a
//! typo and gets "did you mean". `docs/jobspec.md` lists the same table; a test keeps them equal.

pub struct BlockSchema {
    /// How the block is named in messages and in the docs table (`job`, `group`, `task`, …).
    pub block: &'static str,
    pub supported: &'static [&'static str],
    /// Accepted and ignored: (name, why it is safe to ignore).
    pub ignored: &'static [(&'static str, &'static str)],
    /// Known to Nomad, refused by drover: (name, what the feature is).
    pub unsupported: &'static [(&'static str, &'static str)],
}

impl BlockSchema {
    pub fn all_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.supported
            .iter()
            .copied()
            .chain(self.ignored.iter().map(|(n, _)| *n))
            .chain(self.unsupported.iter().map(|(n, _)| *n))
    }

    pub fn is_known(&self, name: &str) -> bool {
        self.all_names().any(|n| n == name)
    }
}

/// `, did you mean "x"?` when a known name is close to `name`, else nothing.
pub fn did_you_mean(name: &str, candidates: &[&str]) -> String {
    let best = candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&name.to_lowercase(), &c.to_lowercase()),
                *c,
            )
        })
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1) + 1 && *d < c.len().max(2))
        .min();
    match best {
        Some((_, c)) => format!("; did you mean {c:?}?"),
        None => String::new(),
    }
}

pub const FILE: BlockSchema = BlockSchema {
    block: "file",
    supported: &["job", "variable", "variables", "locals"],
    ignored: &[],
    unsupported: &[],
};

pub const VARIABLE: BlockSchema = BlockSchema {
    block: "variable",
    supported: &[
        "default",
        "type",
        "description",
        "validation",
        "sensitive",
        "nullable",
    ],
    ignored: &[],
    unsupported: &[],
};

pub const JOB: BlockSchema = BlockSchema {
    block: "job",
    supported: &[
        "id",
        "name",
        "namespace",
        "region",
        "type",
        "priority",
        "all_at_once",
        "datacenters",
        "node_pool",
        "constraint",
        "affinity",
        "spread",
        "update",
        "reschedule",
        "meta",
        "group",
        "task",
    ],
    ignored: &[
        (
            "ui",
            "display hints for Nomad's web UI; drover's status page shows the job's own fields",
        ),
        (
            "consul_token",
            "deprecated in Nomad; drover needs no Consul",
        ),
        (
            "vault_token",
            "deprecated in Nomad; Vault is not integrated",
        ),
        (
            "migrate",
            "drain migration uses drover's defaults (max_parallel 1)",
        ),
        (
            "consul",
            "selects a Consul cluster or namespace; drover's own catalog serves services",
        ),
    ],
    unsupported: &[
        ("periodic", "periodic (cron) jobs"),
        ("parameterized", "parameterized (dispatch) jobs"),
        (
            "multiregion",
            "multi-region deployments, a Nomad Enterprise feature",
        ),
        ("vault", "Vault secrets for every task of the job"),
        (
            "secret",
            "secrets fetched from a secrets provider for every task of the job",
        ),
    ],
};

pub const GROUP: BlockSchema = BlockSchema {
    block: "group",
    supported: &[
        "count",
        "constraint",
        "affinity",
        "spread",
        "network",
        "service",
        "restart",
        "reschedule",
        "update",
        "ephemeral_disk",
        "meta",
        "shutdown_delay",
        "stop_after_client_disconnect",
        "max_client_disconnect",
        "task",
    ],
    ignored: &[
        (
            "scaling",
            "autoscaler policy, read by the Nomad Autoscaler, not by the scheduler",
        ),
        (
            "migrate",
            "drain migration uses drover's defaults (max_parallel 1)",
        ),
        (
            "consul",
            "selects a Consul cluster or namespace; drover's own catalog serves services",
        ),
        (
            "disconnect",
            "drover applies its own heartbeat rules to disconnected clients",
        ),
        (
            "prevent_reschedule_on_lost",
            "lost allocations are rescheduled by the reschedule policy",
        ),
    ],
    unsupported: &[
        ("volume", "host and CSI volumes requested by the group"),
        ("vault", "Vault secrets"),
        (
            "secret",
            "secrets fetched from a secrets provider for every task of the group",
        ),
        (
            "max_run_duration",
            "stopping the group's allocations once they have run this long",
        ),
    ],
};

pub const TASK: BlockSchema = BlockSchema {
    block: "task",
    supported: &[
        "driver",
        "config",
        "env",
        "meta",
        "resources",
        "restart",
        "service",
        "artifact",
        "constraint",
        "affinity",
        "kill_timeout",
        "kill_signal",
        "shutdown_delay",
        "user",
        "leader",
        "logs",
    ],
    ignored: &[
        (
            "identity",
            "workload identity tokens; nothing in drover consumes them",
        ),
        (
            "scaling",
            "autoscaler policy, read by the Nomad Autoscaler, not by the scheduler",
        ),
        (
            "consul",
            "selects a Consul cluster or namespace; drover's own catalog serves services",
        ),
        ("kind", "set by Nomad itself for Connect sidecars"),
        (
            "action",
            "named commands run on demand with `nomad action`; they do not change what runs",
        ),
    ],
    unsupported: &[
        (
            "template",
            "templates rendered into the task (consul-template)",
        ),
        ("vault", "Vault secrets"),
        ("lifecycle", "prestart, poststart and poststop task hooks"),
        ("volume_mount", "mounting a group volume into the task"),
        ("dispatch_payload", "the payload of a parameterized job"),
        ("csi_plugin", "running the task as a CSI plugin"),
        (
            "schedule",
            "time-based task execution, a Nomad Enterprise feature",
        ),
        ("secret", "secrets fetched from a secrets provider"),
    ],
};

pub const RESOURCES: BlockSchema = BlockSchema {
    block: "resources",
    supported: &["cpu", "cores", "memory", "memory_max", "network"],
    ignored: &[
        ("iops", "removed from Nomad; never enforced"),
        (
            "disk",
            "moved to ephemeral_disk in Nomad; never enforced at task level",
        ),
    ],
    unsupported: &[
        ("device", "device plugins (GPUs, FPGAs)"),
        ("numa", "NUMA-aware placement, a Nomad Enterprise feature"),
        ("secrets", "an in-memory secrets dir size"),
    ],
};

pub const NETWORK: BlockSchema = BlockSchema {
    block: "network",
    supported: &["mode", "port", "hostname", "dns", "mbits"],
    ignored: &[
        (
            "device",
            "the node picks the interface when it places the network; Nomad ignores it in a job too",
        ),
        (
            "cidr",
            "the node picks the address when it places the network; Nomad ignores it in a job too",
        ),
        (
            "ip",
            "the node picks the address when it places the network; Nomad ignores it in a job too",
        ),
    ],
    unsupported: &[
        ("cni", "arguments passed to CNI plugins"),
        (
            "reserved_ports",
            "the API's list of static ports as a block; write `port \"label\" { static = N }`",
        ),
    ],
};

pub const PORT: BlockSchema = BlockSchema {
    block: "port",
    supported: &["static", "to", "host_network", "ignore_collision"],
    ignored: &[],
    unsupported: &[],
};

pub const DNS: BlockSchema = BlockSchema {
    block: "dns",
    supported: &["servers", "searches", "options"],
    ignored: &[],
    unsupported: &[],
};

pub const SERVICE: BlockSchema = BlockSchema {
    block: "service",
    supported: &[
        "name",
        "port",
        "tags",
        "canary_tags",
        "address_mode",
        "address",
        "provider",
        "task",
        "meta",
        "check",
        "check_restart",
        "on_update",
    ],
    ignored: &[
        (
            "enable_tag_override",
            "a Consul anti-entropy setting; drover's catalog is its own",
        ),
        (
            "canary_meta",
            "canary deployments are not run yet; the service's meta applies",
        ),
        (
            "tagged_addresses",
            "Consul tagged addresses; drover answers with the service address",
        ),
        (
            "weights",
            "Consul DNS SRV weights; drover gives every instance weight 1",
        ),
        (
            "cluster",
            "selects a Consul cluster; drover's own catalog serves services",
        ),
        (
            "identity",
            "workload identity tokens; nothing in drover consumes them",
        ),
        ("kind", "a Consul service kind for gateways"),
        (
            "id",
            "from older Nomad versions, which ignored it; service IDs come from the allocation",
        ),
    ],
    unsupported: &[("connect", "Consul Connect service mesh")],
};

pub const CHECK: BlockSchema = BlockSchema {
    block: "check",
    supported: &[
        "name",
        "type",
        "port",
        "path",
        "method",
        "protocol",
        "body",
        "header",
        "interval",
        "timeout",
        "address_mode",
        "command",
        "args",
        "task",
        "tls_skip_verify",
        "initial_status",
        "success_before_passing",
        "failures_before_critical",
        "check_restart",
        "on_update",
    ],
    ignored: &[
        (
            "tls_server_name",
            "drover's HTTP checks do not verify certificates beyond tls_skip_verify",
        ),
        (
            "failures_before_warning",
            "drover reports passing or critical, never warning",
        ),
        ("notes", "free text shown by Consul"),
        (
            "expose",
            "exposes a check through Consul Connect, which drover does not run",
        ),
        (
            "grpc_service",
            "gRPC checks are refused by type; kept only with them",
        ),
        (
            "grpc_use_tls",
            "gRPC checks are refused by type; kept only with them",
        ),
        (
            "advertise",
            "Nomad's parser accepts it but nothing in Nomad reads it",
        ),
        (
            "id",
            "from older Nomad versions, which ignored it; check IDs come from the service",
        ),
    ],
    unsupported: &[],
};

pub const CHECK_RESTART: BlockSchema = BlockSchema {
    block: "check_restart",
    supported: &["limit", "grace", "ignore_warnings"],
    ignored: &[],
    unsupported: &[],
};

pub const ARTIFACT: BlockSchema = BlockSchema {
    block: "artifact",
    supported: &["source", "destination", "mode", "options", "headers"],
    ignored: &[(
        "chown",
        "artifacts are written by the agent's user, readable by the task",
    )],
    unsupported: &[(
        "insecure",
        "artifact downloads that skip TLS certificate verification",
    )],
};

pub const RESTART: BlockSchema = BlockSchema {
    block: "restart",
    supported: &["attempts", "interval", "delay", "mode", "render_templates"],
    ignored: &[],
    unsupported: &[],
};

pub const RESCHEDULE: BlockSchema = BlockSchema {
    block: "reschedule",
    supported: &[
        "attempts",
        "interval",
        "delay",
        "delay_function",
        "max_delay",
        "unlimited",
    ],
    ignored: &[],
    unsupported: &[],
};

pub const UPDATE: BlockSchema = BlockSchema {
    block: "update",
    supported: &[
        "max_parallel",
        "health_check",
        "min_healthy_time",
        "healthy_deadline",
        "progress_deadline",
        "auto_revert",
        "auto_promote",
        "canary",
        "stagger",
    ],
    ignored: &[],
    unsupported: &[],
};

pub const CONSTRAINT: BlockSchema = BlockSchema {
    block: "constraint",
    supported: &[
        "attribute",
        "operator",
        "value",
        "distinct_hosts",
        "distinct_property",
        "regexp",
        "version",
        "semver",
        "set_contains",
        "set_contains_any",
        "set_contains_all",
    ],
    ignored: &[
        (
            "is_set",
            "Nomad's parser accepts it but ignores it; write operator = \"is_set\"",
        ),
        (
            "is_not_set",
            "Nomad's parser accepts it but ignores it; write operator = \"is_not_set\"",
        ),
    ],
    unsupported: &[],
};

pub const AFFINITY: BlockSchema = BlockSchema {
    block: "affinity",
    supported: &[
        "attribute",
        "operator",
        "value",
        "weight",
        "regexp",
        "version",
        "semver",
        "set_contains",
        "set_contains_any",
        "set_contains_all",
    ],
    ignored: &[],
    unsupported: &[],
};

pub const SPREAD: BlockSchema = BlockSchema {
    block: "spread",
    supported: &["attribute", "weight", "target"],
    ignored: &[],
    unsupported: &[],
};

pub const SPREAD_TARGET: BlockSchema = BlockSchema {
    block: "target",
    supported: &["value", "percent"],
    ignored: &[],
    unsupported: &[],
};

pub const EPHEMERAL_DISK: BlockSchema = BlockSchema {
    block: "ephemeral_disk",
    supported: &["size", "sticky", "migrate"],
    ignored: &[],
    unsupported: &[],
};

pub const LOGS: BlockSchema = BlockSchema {
    block: "logs",
    supported: &["max_files", "max_file_size", "disabled", "enabled"],
    ignored: &[],
    unsupported: &[],
};

pub const DOCKER_CONFIG: BlockSchema = BlockSchema {
    block: "config (docker)",
    supported: &[
        "image",
        "command",
        "args",
        "entrypoint",
        "ports",
        "port_map",
        "dns_servers",
        "dns_search_domains",
        "dns_options",
        "volumes",
        "labels",
        "network_mode",
        "hostname",
        "extra_hosts",
        "work_dir",
        "privileged",
        "cap_add",
        "cap_drop",
        "init",
        "interactive",
        "tty",
        "force_pull",
    ],
    ignored: &[
        (
            "auth",
            "registry credentials; drover uses images already on the node",
        ),
        (
            "auth_soft_fail",
            "registry credentials; drover uses images already on the node",
        ),
        ("image_pull_timeout", "pulls use the engine's own timeout"),
        (
            "logging",
            "container logs always go through the engine's json-file driver for `alloc logs`",
        ),
        (
            "healthchecks",
            "Docker's own HEALTHCHECK; drover runs the service checks",
        ),
        (
            "network_aliases",
            "aliases on user-defined networks; drover uses the network_mode as given",
        ),
        (
            "advertise_ipv6_address",
            "service addresses are IPv4 in drover",
        ),
        (
            "load",
            "loading an image from an artifact tarball; load it on the node instead",
        ),
    ],
    unsupported: &[
        (
            "mount",
            "typed bind, volume and tmpfs mounts (use `volumes`)",
        ),
        (
            "mounts",
            "typed bind, volume and tmpfs mounts (use `volumes`)",
        ),
        ("devices", "host devices passed into the container"),
        ("security_opt", "Docker security options"),
        ("sysctl", "kernel parameters set in the container"),
        ("ulimit", "resource limits set in the container"),
        ("ipc_mode", "the container's IPC namespace"),
        ("pid_mode", "the container's PID namespace"),
        ("uts_mode", "the container's UTS namespace"),
        ("userns_mode", "the container's user namespace"),
        (
            "ipv4_address",
            "a fixed container address on a user-defined network",
        ),
        (
            "ipv6_address",
            "a fixed container address on a user-defined network",
        ),
        ("mac_address", "a fixed container MAC address"),
        ("shm_size", "the size of /dev/shm"),
        ("storage_opt", "storage driver options"),
        ("readonly_rootfs", "a read-only root filesystem"),
        ("runtime", "an alternative OCI runtime"),
        ("pids_limit", "a limit on the container's processes"),
        ("isolation", "Windows container isolation"),
        ("volume_driver", "Docker volume plugins"),
        (
            "memory_hard_limit",
            "the legacy hard memory limit (use resources.memory_max)",
        ),
        ("cpu_hard_limit", "CFS-quota CPU limits"),
        ("cpu_cfs_period", "CFS-quota CPU limits"),
        ("cpuset_cpus", "pinning the container to CPUs"),
        ("group_add", "extra groups for the container's user"),
        ("oom_score_adj", "the container's OOM score"),
        (
            "container_exists_attempts",
            "attempts to reuse a container of the same name",
        ),
        ("cgroupns", "the container's cgroup namespace mode"),
    ],
};

pub const RAW_EXEC_CONFIG: BlockSchema = BlockSchema {
    block: "config (raw_exec)",
    supported: &["command", "args", "work_dir"],
    ignored: &[
        (
            "cgroup_v2_override",
            "drover does not place raw_exec tasks in custom cgroups",
        ),
        (
            "cgroup_v1_override",
            "drover does not place raw_exec tasks in custom cgroups",
        ),
    ],
    unsupported: &[
        ("oom_score_adj", "the task's OOM score"),
        (
            "denied_envvars",
            "environment variables withheld from the task",
        ),
    ],
};

/// Drivers drover runs.
pub const DRIVERS: &[&str] = &["docker", "raw_exec"];

/// Task drivers that exist for Nomad but not in drover.
pub const UNSUPPORTED_DRIVERS: &[&str] = &[
    "exec",
    "exec2",
    "java",
    "qemu",
    "podman",
    "containerd-driver",
    "nspawn",
    "lxc",
    "singularity",
    "rkt",
    "firecracker-task-driver",
    "iis",
    "win_iis",
    "jail-task-driver",
    "pot",
    "virt",
    "nomad-driver-podman",
    "nomad-pot-driver",
    "raw_exec2",
];

/// Every block schema, for the docs table and its test.
pub const ALL: &[&BlockSchema] = &[
    &FILE,
    &VARIABLE,
    &JOB,
    &GROUP,
    &TASK,
    &RESOURCES,
    &NETWORK,
    &PORT,
    &DNS,
    &SERVICE,
    &CHECK,
    &CHECK_RESTART,
    &ARTIFACT,
    &RESTART,
    &RESCHEDULE,
    &UPDATE,
    &CONSTRAINT,
    &AFFINITY,
    &SPREAD,
    &SPREAD_TARGET,
    &EPHEMERAL_DISK,
    &LOGS,
    &DOCKER_CONFIG,
    &RAW_EXEC_CONFIG,
];

/// The table in `docs/jobspec.md`, generated from the schema so the two cannot drift.
pub fn markdown_table() -> String {
    let mut out = String::from("| block | attribute or block | drover |\n|---|---|---|\n");
    for s in ALL {
        for n in s.supported {
            out.push_str(&format!("| {} | `{n}` | supported |\n", s.block));
        }
        for (n, why) in s.ignored {
            out.push_str(&format!(
                "| {} | `{n}` | accepted, ignored: {why} |\n",
                s.block
            ));
        }
        for (n, what) in s.unsupported {
            out.push_str(&format!(
                "| {} | `{n}` | **unsupported**: {what} |\n",
                s.block
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("cout", &["count", "constraint"]),
            "; did you mean \"count\"?"
        );
        assert_eq!(
            did_you_mean("datacenter", JOB.supported),
            "; did you mean \"datacenters\"?"
        );
        assert_eq!(did_you_mean("zzzzzz", &["count"]), "");
    }

    #[test]
    fn no_name_is_listed_twice_in_a_block() {
        for s in ALL {
            let mut names: Vec<_> = s.all_names().collect();
            names.sort();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len(), "duplicate names in {}", s.block);
        }
    }

    #[test]
    fn docs_table_is_current() {
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/jobspec.md"))
                .expect("docs/jobspec.md exists");
        assert!(
            docs.contains(&markdown_table()),
            "docs/jobspec.md is out of date: print the table with \
             `cargo run -q -p drover-controller -- job schema-table` and replace the one in the docs"
        );
    }
}
