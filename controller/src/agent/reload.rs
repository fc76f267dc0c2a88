//! SIGHUP: the agent reads its configuration again (the same `-config` files and flags it
//! started with) and rescans the manifests directory, touching no workload. What can change
//! in a running agent is applied; everything else is named in the log as needing a restart.
//!
//! Applied live: `log_level`, `manifests { allow_empty }`. Everything else (addresses and
//! ports, `data_dir`, the manifests directory and its `resync_interval`, which also paces the
//! server's periodic evaluations, server and client settings, plugin settings, `log_json`)
//! is read when the agent starts.

use super::AgentConfig;

/// One setting that differs between the running configuration and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The setting as written in the agent HCL (`log_level`, `client > meta`, …).
    pub key: &'static str,
    pub from: String,
    pub to: String,
    /// Applied by the reload; otherwise it takes a restart.
    pub live: bool,
}

/// What differs between `old` and `new`, setting by setting, in a stable order.
pub fn changes(old: &AgentConfig, new: &AgentConfig) -> Vec<Change> {
    let mut out = Vec::new();
    let mut cmp = |key: &'static str, live: bool, a: String, b: String| {
        if a != b {
            out.push(Change {
                key,
                from: a,
                to: b,
                live,
            });
        }
    };
    let d = |v: &dyn std::fmt::Debug| format!("{v:?}");
    cmp("log_level", true, d(&old.log_level), d(&new.log_level));
    cmp(
        "manifests > allow_empty",
        true,
        d(&old.manifests.allow_empty),
        d(&new.manifests.allow_empty),
    );
    cmp("log_json", false, d(&old.log_json), d(&new.log_json));
    cmp("name", false, d(&old.name), d(&new.name));
    cmp("region", false, d(&old.region), d(&new.region));
    cmp("datacenter", false, d(&old.datacenter), d(&new.datacenter));
    cmp("data_dir", false, d(&old.data_dir), d(&new.data_dir));
    cmp("bind_addr", false, d(&old.bind_addr), d(&new.bind_addr));
    cmp("advertise", false, d(&old.advertise), d(&new.advertise));
    cmp("ports > http", false, d(&old.http_port), d(&new.http_port));
    cmp("ports > rpc", false, d(&old.rpc_port), d(&new.rpc_port));
    cmp("server", false, d(&old.server), d(&new.server));
    cmp("client", false, d(&old.client), d(&new.client));
    cmp("plugin \"docker\"", false, d(&old.docker), d(&new.docker));
    cmp(
        "plugin \"raw_exec\"",
        false,
        d(&old.raw_exec_enabled),
        d(&new.raw_exec_enabled),
    );
    cmp(
        "manifests > dir",
        false,
        d(&old.manifests.dir),
        d(&new.manifests.dir),
    );
    cmp(
        "manifests > resync_interval",
        false,
        d(&old.manifests.resync_interval),
        d(&new.manifests.resync_interval),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_restart_settings_are_told_apart() {
        let old = AgentConfig::dev();
        let mut new = old.clone();
        assert!(changes(&old, &new).is_empty());
        new.log_level = "INFO".into();
        new.http_port = 5646;
        new.manifests.allow_empty = true;
        new.client.meta.insert("rack".into(), "r1".into());
        let c = changes(&old, &new);
        let keys: Vec<(&str, bool)> = c.iter().map(|c| (c.key, c.live)).collect();
        assert_eq!(
            keys,
            [
                ("log_level", true),
                ("manifests > allow_empty", true),
                ("ports > http", false),
                ("client", false)
            ]
        );
        assert_eq!(
            (c[0].from.as_str(), c[0].to.as_str()),
            ("\"DEBUG\"", "\"INFO\"")
        );
    }
}
