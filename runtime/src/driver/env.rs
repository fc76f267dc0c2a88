//! A task's environment as Nomad builds it: the `NOMAD_*` variables, `${…}` interpolation of
//! config strings and env values (`${NOMAD_*}`, `${node.*}`, `${attr.*}`, `${meta.*}`), and where
//! a task's `volumes` entries land on the host. All pure: no I/O except the symlink check of a
//! volume source that already exists.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{NodeEnv, TaskCtx, TaskDirs};

/// Why a task's environment or volumes could not be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvError {
    #[error(
        "failed to parse volume {entry:?}: expected \"source:destination[:mode]\" with an absolute destination"
    )]
    VolumeFormat { entry: String },
    #[error(
        "failed to mount volume {entry:?}: {path} is outside the task directory (relative volumes stay in the task's own directory or the shared alloc/)"
    )]
    VolumeEscapes { entry: String, path: PathBuf },
    #[error(
        "failed to mount volume {entry:?}: host paths are disabled on this node (plugin \"docker\" config volumes {{ enabled = true }} allows them); use a path relative to the task directory"
    )]
    HostVolumeDisabled { entry: String },
}

/// How the task sees its directories: a container mounts them at `/alloc`, `/local` and
/// `/secrets`; a process sees the host paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathView {
    Container,
    Host,
}

/// Nomad's `helper.CleanEnvVar`: anything but letters, digits and `_` becomes `_`.
pub fn clean_env_key(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The index in an allocation name `job.group[3]`.
pub fn alloc_index(name: &str) -> Option<u32> {
    let open = name.rfind('[')?;
    let rest = &name[open + 1..];
    rest.strip_suffix(']')?.parse().ok()
}

/// The task's environment: `NOMAD_*` first, then the task's `env` block with its values
/// interpolated (so `env { URL = "http://${NOMAD_ADDR_http}" }` works).
pub fn task_env(ctx: &TaskCtx, view: PathView) -> BTreeMap<String, String> {
    let alloc = &ctx.alloc;
    let task = &ctx.task;
    let node = &ctx.node;
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    set("NOMAD_ALLOC_ID", alloc.id.clone());
    set(
        "NOMAD_SHORT_ALLOC_ID",
        alloc.id.chars().take(8).collect::<String>(),
    );
    set("NOMAD_ALLOC_NAME", alloc.name.clone());
    if let Some(i) = alloc_index(&alloc.name) {
        set("NOMAD_ALLOC_INDEX", i.to_string());
    }
    set("NOMAD_JOB_ID", alloc.job_id.clone());
    set("NOMAD_JOB_NAME", alloc.job_id.clone());
    set("NOMAD_GROUP_NAME", alloc.group.clone());
    set("NOMAD_TASK_NAME", task.name.clone());
    set("NOMAD_NAMESPACE", alloc.namespace.clone());
    set("NOMAD_DC", node.datacenter.clone());
    set("NOMAD_REGION", node.region.clone());
    set("NOMAD_CPU_LIMIT", task.resources.cpu.to_string());
    set("NOMAD_MEMORY_LIMIT", task.resources.memory.to_string());
    if task.resources.memory_max > 0 {
        set(
            "NOMAD_MEMORY_MAX_LIMIT",
            task.resources.memory_max.to_string(),
        );
    }
    match view {
        PathView::Container => {
            set("NOMAD_ALLOC_DIR", "/alloc".into());
            set("NOMAD_TASK_DIR", "/local".into());
            set("NOMAD_SECRETS_DIR", "/secrets".into());
        }
        PathView::Host => {
            set(
                "NOMAD_ALLOC_DIR",
                ctx.dirs.shared_alloc_dir.display().to_string(),
            );
            set("NOMAD_TASK_DIR", ctx.dirs.local_dir.display().to_string());
            set(
                "NOMAD_SECRETS_DIR",
                ctx.dirs.secrets_dir.display().to_string(),
            );
        }
    }
    for port in alloc.networks.iter().flat_map(|n| n.ports()) {
        let label = clean_env_key(&port.label);
        let inside = if port.to == 0 { port.value } else { port.to };
        set(&format!("NOMAD_PORT_{label}"), inside.to_string());
        set(&format!("NOMAD_HOST_PORT_{label}"), port.value.to_string());
        set(&format!("NOMAD_IP_{label}"), node.address.clone());
        set(&format!("NOMAD_HOST_IP_{label}"), node.address.clone());
        let addr = format!("{}:{}", node.address, port.value);
        set(&format!("NOMAD_ADDR_{label}"), addr.clone());
        set(&format!("NOMAD_HOST_ADDR_{label}"), addr);
    }
    for (k, v) in &task.meta {
        set(&format!("NOMAD_META_{}", clean_env_key(k)), v.clone());
        set(
            &format!("NOMAD_META_{}", clean_env_key(k).to_uppercase()),
            v.clone(),
        );
    }
    let user: Vec<(String, String)> = task
        .env
        .iter()
        .map(|(k, v)| (k.clone(), interpolate(v, &env, node)))
        .collect();
    env.extend(user);
    env
}

/// Replaces `${…}` references Nomad resolves on the client. Unknown references are left as
/// written, as Nomad does, so a typo shows up in the task rather than vanishing.
pub fn interpolate(input: &str, env: &BTreeMap<String, String>, node: &NodeEnv) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = after[..end].trim();
        match lookup(key, env, node) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn lookup(key: &str, env: &BTreeMap<String, String>, node: &NodeEnv) -> Option<String> {
    let from_node = match key {
        "node.unique.id" => Some(node.node_id.clone()),
        "node.unique.name" => Some(node.name.clone()),
        "node.datacenter" => Some(node.datacenter.clone()),
        "node.region" => Some(node.region.clone()),
        "node.class" => Some(node.node_class.clone()),
        "node.pool" => Some(node.node_pool.clone()),
        _ => None,
    };
    if from_node.is_some() {
        return from_node;
    }
    if let Some(attr) = key.strip_prefix("attr.") {
        return node.attributes.get(attr).cloned();
    }
    if let Some(meta) = key.strip_prefix("meta.") {
        return node.meta.get(meta).cloned();
    }
    if let Some(var) = key.strip_prefix("env.") {
        return env.get(var).cloned();
    }
    env.get(key).cloned()
}

/// Resolves one docker `volumes` entry to a bind (`host:container[:mode]`).
///
/// A relative source is taken from the task directory and must stay inside the allocation
/// directory (so `../alloc/data` reaches the shared dir, as in Nomad, but `../../x` is refused).
/// Absolute host paths are allowed only when the operator enabled them.
pub fn resolve_volume(entry: &str, dirs: &TaskDirs, allow_host: bool) -> Result<String, EnvError> {
    let mut parts = entry.splitn(3, ':');
    let (Some(src), Some(dst)) = (parts.next(), parts.next()) else {
        return Err(EnvError::VolumeFormat {
            entry: entry.to_string(),
        });
    };
    let mode = parts.next();
    if src.is_empty() || !dst.starts_with('/') {
        return Err(EnvError::VolumeFormat {
            entry: entry.to_string(),
        });
    }
    let host = if Path::new(src).is_absolute() {
        if !allow_host {
            return Err(EnvError::HostVolumeDisabled {
                entry: entry.to_string(),
            });
        }
        PathBuf::from(src)
    } else {
        let joined = normalize(&dirs.task_dir.join(src));
        // The task's own directory and the allocation's shared alloc/ (Nomad's `../alloc`);
        // never a sibling task's directory or anything above the allocation.
        let allowed = [normalize(&dirs.task_dir), normalize(&dirs.shared_alloc_dir)];
        if !allowed.iter().any(|r| joined.starts_with(r)) {
            return Err(EnvError::VolumeEscapes {
                entry: entry.to_string(),
                path: joined,
            });
        }
        // A symlink on the way (the task can leave one in its own local/ between restarts)
        // could still lead out of it: every existing step is resolved and checked.
        let real_allowed: Vec<PathBuf> = allowed
            .iter()
            .filter_map(|r| r.canonicalize().ok())
            .collect();
        if !real_allowed.is_empty() {
            let mut at = PathBuf::new();
            for c in joined.components() {
                at.push(c);
                match std::fs::symlink_metadata(&at) {
                    Ok(m) if m.file_type().is_symlink() => {
                        let escapes = |path: PathBuf| EnvError::VolumeEscapes {
                            entry: entry.to_string(),
                            path,
                        };
                        let Ok(real) = at.canonicalize() else {
                            // Dangling: the engine would create its target on the host.
                            return Err(escapes(at));
                        };
                        if !real_allowed.iter().any(|r| real.starts_with(r)) {
                            return Err(escapes(real));
                        }
                        at = real;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        joined
    };
    Ok(match mode {
        Some(m) => format!("{}:{dst}:{m}", host.display()),
        None => format!("{}:{dst}", host.display()),
    })
}

/// Lexical normalisation: `.` dropped, `..` pops (never above the root).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AllocSpec, DesiredStatus, NetworkResource, Port, RestartPolicy};
    use std::sync::Arc;

    fn ctx() -> TaskCtx {
        let task = crate::testutil::task_docker("web", "img");
        let mut task = task;
        task.env
            .insert("URL".into(), "http://${NOMAD_ADDR_http}/x".into());
        task.env
            .insert("DC".into(), "${node.datacenter}-${attr.kernel.name}".into());
        task.meta.insert("owner".into(), "ops".into());
        let alloc = AllocSpec {
            id: "0123456789abcdef".into(),
            name: "whoami.web[2]".into(),
            namespace: "default".into(),
            job_id: "whoami".into(),
            job_version: 0,
            job_type: "service".into(),
            group: "web".into(),
            node_id: "n1".into(),
            desired_status: DesiredStatus::Run,
            tasks: vec![task.clone()],
            networks: vec![NetworkResource {
                mode: "host".into(),
                reserved_ports: vec![Port {
                    label: "http".into(),
                    value: 8080,
                    to: 80,
                    ..Port::default()
                }],
                ..NetworkResource::default()
            }],
            restart: RestartPolicy::service_default(),
            services: vec![],
            modify_index: 1,
        };
        let node = NodeEnv {
            node_id: "node-1".into(),
            name: "box".into(),
            datacenter: "dc1".into(),
            region: "global".into(),
            address: "127.0.0.1".into(),
            attributes: [("kernel.name".to_string(), "linux".to_string())].into(),
            ..NodeEnv::default()
        };
        TaskCtx {
            dirs: TaskDirs::new(Path::new("/data"), &alloc.id, "web"),
            alloc: Arc::new(alloc),
            task,
            node: Arc::new(node),
            replaces: None,
        }
    }

    #[test]
    fn nomad_variables_are_set() {
        let env = task_env(&ctx(), PathView::Container);
        assert_eq!(env["NOMAD_ALLOC_INDEX"], "2");
        assert_eq!(env["NOMAD_SHORT_ALLOC_ID"], "01234567");
        assert_eq!(env["NOMAD_PORT_http"], "80");
        assert_eq!(env["NOMAD_HOST_PORT_http"], "8080");
        assert_eq!(env["NOMAD_ADDR_http"], "127.0.0.1:8080");
        assert_eq!(env["NOMAD_IP_http"], "127.0.0.1");
        assert_eq!(env["NOMAD_TASK_DIR"], "/local");
        assert_eq!(env["NOMAD_CPU_LIMIT"], "100");
        assert_eq!(env["NOMAD_MEMORY_LIMIT"], "300");
        assert_eq!(env["NOMAD_DC"], "dc1");
        assert_eq!(env["NOMAD_META_owner"], "ops");
        assert_eq!(env["URL"], "http://127.0.0.1:8080/x");
        assert_eq!(env["DC"], "dc1-linux");
        let host = task_env(&ctx(), PathView::Host);
        assert_eq!(
            host["NOMAD_TASK_DIR"],
            "/data/alloc/0123456789abcdef/web/local"
        );
    }

    #[test]
    fn interpolation_leaves_unknown_references() {
        let c = ctx();
        let env = task_env(&c, PathView::Container);
        assert_eq!(
            interpolate("${NOMAD_TASK_NAME}/${nope}/${meta.x", &env, &c.node),
            "web/${nope}/${meta.x"
        );
        assert_eq!(interpolate("${node.unique.id}", &env, &c.node), "node-1");
        assert_eq!(interpolate("plain", &env, &c.node), "plain");
    }

    #[test]
    fn volumes_resolve_inside_the_alloc_dir_only() {
        let dirs = TaskDirs::new(Path::new("/data"), "a1", "web");
        assert_eq!(
            resolve_volume("local/config:/app/config", &dirs, false).as_deref(),
            Ok("/data/alloc/a1/web/local/config:/app/config")
        );
        assert_eq!(
            resolve_volume("../alloc/data:/data:ro", &dirs, false).as_deref(),
            Ok("/data/alloc/a1/alloc/data:/data:ro")
        );
        assert!(matches!(
            resolve_volume("../../../etc:/etc", &dirs, false),
            Err(EnvError::VolumeEscapes { .. })
        ));
        assert!(matches!(
            resolve_volume("local/../../../../x:/x", &dirs, false),
            Err(EnvError::VolumeEscapes { .. })
        ));
        assert!(matches!(
            resolve_volume("/etc:/etc", &dirs, false),
            Err(EnvError::HostVolumeDisabled { .. })
        ));
        assert_eq!(
            resolve_volume("/srv:/srv", &dirs, true).as_deref(),
            Ok("/srv:/srv")
        );
        assert!(matches!(
            resolve_volume("local", &dirs, false),
            Err(EnvError::VolumeFormat { .. })
        ));
        assert!(matches!(
            resolve_volume("local:relative", &dirs, false),
            Err(EnvError::VolumeFormat { .. })
        ));
    }

    #[test]
    fn symlinks_out_of_the_alloc_dir_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dirs = TaskDirs::new(tmp.path(), "a1", "web");
        dirs.create().expect("layout");
        std::os::unix::fs::symlink("/etc", dirs.local_dir.join("etc")).expect("symlink");
        assert!(matches!(
            resolve_volume("local/etc:/x", &dirs, false),
            Err(EnvError::VolumeEscapes { .. })
        ));
        // A path that does not exist yet under a symlink out is refused too: the engine
        // would create it on the host.
        let e = resolve_volume("local/etc/new/dir:/x", &dirs, false).expect_err("through");
        assert!(
            e.to_string().contains("/etc is outside the task directory"),
            "{e}"
        );
        std::os::unix::fs::symlink("/nonexistent-drover", dirs.local_dir.join("dangling"))
            .expect("symlink");
        assert!(matches!(
            resolve_volume("local/dangling:/x", &dirs, false),
            Err(EnvError::VolumeEscapes { .. })
        ));
        // A symlink that stays inside is fine, and so is the shared alloc dir.
        std::fs::create_dir_all(dirs.local_dir.join("real")).expect("real");
        std::os::unix::fs::symlink(dirs.local_dir.join("real"), dirs.local_dir.join("inside"))
            .expect("symlink");
        resolve_volume("local/inside:/x", &dirs, false).expect("inside");
        resolve_volume("../alloc/data:/data", &dirs, false).expect("shared alloc dir");
        // A sibling task's directory is not this task's.
        std::fs::create_dir_all(tmp.path().join("alloc/a1/db/local")).expect("sibling");
        let e = resolve_volume("../db/local:/x", &dirs, false).expect_err("sibling");
        assert!(e.to_string().contains("outside the task directory"), "{e}");
    }
}
