//! The agent's configuration: Nomad's agent HCL (`data_dir`, `bind_addr`, `ports`, `server`,
//! `client`, `plugin "docker"` …) plus drover's own `manifests { … }` block, read with the same
//! HCL reader and field checks as job files, then overridden by command-line flags.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_runtime::client::network::HostNetwork;

use crate::jobspec::fields::{Diags, Fields};
use crate::jobspec::schema::BlockSchema;
use crate::jobspec::tree::Pos;
use crate::jobspec::{Diagnostic, JobspecError, hcl};

#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub dev: bool,
    pub name: String,
    pub region: String,
    pub datacenter: String,
    /// `None` in dev mode means a fresh temporary directory.
    pub data_dir: Option<PathBuf>,
    /// The address the agent binds; loopback unless configured.
    pub bind_addr: String,
    /// Nomad's `addresses { http }`: the HTTP API's own address, `bind_addr` when unset.
    pub http_addr: Option<String>,
    /// Nomad's `advertise { http, rpc, serf }`: what other agents are told to dial.
    pub advertise: Advertise,
    /// drover's `http_api_token` (or `DROVER_TOKEN` in the agent's environment): writes to
    /// the HTTP API must carry it. Required when the API listens beyond loopback.
    pub http_api_token: Option<String>,
    pub http_port: u16,
    pub rpc_port: u16,
    pub log_level: String,
    pub log_json: bool,
    pub server: ServerConfig,
    pub client: ClientConfig,
    pub docker: DockerPluginConfig,
    pub raw_exec_enabled: bool,
    pub manifests: ManifestsConfig,
    /// drover's `dns { … }` block: the Consul-compatible DNS interface of a client agent.
    pub dns: crate::dns::DnsConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub enabled: bool,
    pub bootstrap_expect: u32,
    pub join_token: Option<String>,
    pub min_heartbeat_ttl: Duration,
    pub heartbeat_grace: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    pub enabled: bool,
    /// `host:port` of servers to join; empty when the server runs in this agent.
    pub servers: Vec<String>,
    pub join_token: Option<String>,
    pub node_class: String,
    pub node_pool: String,
    pub meta: BTreeMap<String, String>,
    /// drover's `network_address`: the address the node registers and its task ports bind
    /// on. See [`AgentConfig::node_address`] for what applies when unset.
    pub network_address: Option<String>,
    /// Nomad's `network_interface`: the node's address is this interface's first IPv4 address.
    pub network_interface: Option<String>,
    /// Nomad's `client { artifact { … } }`.
    pub artifact: drover_runtime::artifact::ArtifactLimits,
}

/// Nomad's `advertise` block, each `host` or `host:port` as written (checked when read).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Advertise {
    pub http: Option<String>,
    pub rpc: Option<String>,
    pub serf: Option<String>,
}

/// The addresses an agent settles on at start, once the host's network is known.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAddrs {
    /// The node's address: what it registers, what its services and DNS answers carry,
    /// where its task ports bind. `None` for an agent without the client role.
    pub node: Option<String>,
    /// `host:port` of the HTTP API as other agents should reach it (a server relays
    /// `alloc logs` to a node's).
    pub http: String,
    /// `host:port` a client dials to reach this server.
    pub rpc: String,
    pub serf: String,
}

/// Nomad's serf port; drover has no gossip, but advertises one as Nomad's agents do.
const SERF_PORT: u16 = 4648;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DockerPluginConfig {
    pub volumes_enabled: bool,
    pub allow_privileged: bool,
    /// `None`: Nomad's default list.
    pub allow_caps: Option<Vec<String>>,
    /// drover's own gate on `network_mode = "host"`.
    pub allow_host_network: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ManifestsConfig {
    /// The watched directory; `./manifests` in dev mode, none (API only) otherwise.
    pub dir: Option<PathBuf>,
    pub resync_interval: Duration,
    pub allow_empty: bool,
}

impl AgentConfig {
    /// Nomad's defaults for an agent that has neither role until configured.
    pub fn base() -> Self {
        AgentConfig {
            dev: false,
            name: hostname(),
            region: "global".into(),
            datacenter: "dc1".into(),
            data_dir: None,
            bind_addr: "127.0.0.1".into(),
            http_addr: None,
            advertise: Advertise::default(),
            http_api_token: None,
            http_port: 4646,
            rpc_port: 4647,
            log_level: "INFO".into(),
            log_json: false,
            server: ServerConfig {
                enabled: false,
                bootstrap_expect: 0,
                join_token: None,
                min_heartbeat_ttl: Duration::from_secs(10),
                heartbeat_grace: Duration::from_secs(10),
            },
            client: ClientConfig {
                enabled: false,
                servers: Vec::new(),
                join_token: None,
                node_class: String::new(),
                node_pool: "default".into(),
                meta: BTreeMap::new(),
                network_address: None,
                network_interface: None,
                artifact: Default::default(),
            },
            docker: DockerPluginConfig::default(),
            raw_exec_enabled: false,
            manifests: ManifestsConfig {
                dir: None,
                resync_interval: Duration::from_secs(30),
                allow_empty: false,
            },
            dns: crate::dns::DnsConfig::default(),
        }
    }

    /// `drover agent -dev`: server and client in one process, raw_exec on, `./manifests` watched.
    pub fn dev() -> Self {
        let mut c = AgentConfig::base();
        c.dev = true;
        c.server.enabled = true;
        c.server.bootstrap_expect = 1;
        c.client.enabled = true;
        c.raw_exec_enabled = true;
        c.log_level = "DEBUG".into();
        c.manifests.dir = Some(PathBuf::from("manifests"));
        c
    }

    /// Applies an agent HCL file on top of `self`; returns the warnings it raised.
    pub fn merge_file(&mut self, path: &Path) -> Result<Vec<Diagnostic>, JobspecError> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            JobspecError::single(
                path,
                Pos::new(1, 1),
                "",
                format!("failed to read the agent config: {e}"),
            )
            .in_agent_config()
        })?;
        let file = hcl::read_plain(&src, path.parent());
        let mut d = file.diagnostics;
        if !d.iter().any(Diagnostic::is_error) {
            let interface_at = self.decode(&file.body, &mut d);
            // The one key that needs the host: an interface that is not there is this
            // file's error, not a surprise at start.
            if let (Some(pos), Some(name)) = (interface_at, &self.client.network_interface) {
                let found = HostNetwork::read()
                    .map_err(|e| format!("failed to list the host's network interfaces: {e}"))
                    .and_then(|host| host.interface_ipv4(name));
                if let Err(msg) = found {
                    d.push(Diagnostic::error(pos, "client > network_interface", msg));
                }
            }
        }
        if d.iter().any(Diagnostic::is_error) {
            return Err(JobspecError::new(path, d).in_agent_config());
        }
        Ok(d)
    }

    /// Reads `body` into `self`; returns where `client { network_interface }` was set, for
    /// the host check `merge_file` makes.
    fn decode(&mut self, body: &crate::jobspec::tree::Body, d: &mut Diags) -> Option<Pos> {
        let mut interface_at = None;
        let mut f = Fields::new("", body.pos, body, &AGENT);
        if let Some(v) = f.string(d, "name") {
            self.name = v;
        }
        if let Some(v) = f.string(d, "region") {
            self.region = v;
        }
        if let Some(v) = f.string(d, "datacenter") {
            self.datacenter = v;
        }
        if let Some(v) = f.string(d, "data_dir") {
            self.data_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = f.string(d, "bind_addr") {
            self.bind_addr = v;
        }
        if let Some(a) = f.block(d, "addresses") {
            let mut af = Fields::new("addresses", a.pos, &a.body, &ADDRESSES);
            if let Some(v) = af.string(d, "http") {
                self.http_addr = Some(v);
            }
            af.finish(d);
        }
        if let Some(a) = f.block(d, "advertise") {
            let mut af = Fields::new("advertise", a.pos, &a.body, &ADVERTISE);
            for (key, slot) in [
                ("http", &mut self.advertise.http),
                ("rpc", &mut self.advertise.rpc),
                ("serf", &mut self.advertise.serf),
            ] {
                if let Some(v) = af.string(d, key) {
                    if let Err(msg) = parse_advertise(&v) {
                        d.push(Diagnostic::error(
                            af.pos_of(key).unwrap_or(a.pos),
                            af.child(key),
                            msg,
                        ));
                    }
                    *slot = Some(v);
                }
            }
            af.finish(d);
        }
        if let Some(v) = f.string(d, "http_api_token") {
            if v.is_empty() {
                d.push(Diagnostic::error(
                    body.pos,
                    "http_api_token",
                    "http_api_token must not be empty",
                ));
            }
            self.http_api_token = Some(v);
        }
        if let Some(v) = f.string(d, "log_level") {
            self.log_level = v.to_uppercase();
        }
        if let Some(v) = f.bool(d, "log_json") {
            self.log_json = v;
        }
        if let Some(p) = f.block(d, "ports") {
            let mut pf = Fields::new("ports", p.pos, &p.body, &PORTS);
            if let Some(v) = pf.int(d, "http", 1, 65535) {
                self.http_port = v as u16;
            }
            if let Some(v) = pf.int(d, "rpc", 1, 65535) {
                self.rpc_port = v as u16;
            }
            pf.finish(d);
        }
        if let Some(s) = f.block(d, "server") {
            let mut sf = Fields::new("server", s.pos, &s.body, &SERVER);
            let c = &mut self.server;
            c.enabled = sf.bool(d, "enabled").unwrap_or(c.enabled);
            c.bootstrap_expect = sf.u32(d, "bootstrap_expect").unwrap_or(c.bootstrap_expect);
            c.join_token = sf.string(d, "join_token").or(c.join_token.take());
            c.min_heartbeat_ttl = sf
                .duration(d, "min_heartbeat_ttl")
                .unwrap_or(c.min_heartbeat_ttl);
            c.heartbeat_grace = sf
                .duration(d, "heartbeat_grace")
                .unwrap_or(c.heartbeat_grace);
            sf.finish(d);
        }
        if let Some(c) = f.block(d, "client") {
            let mut cf = Fields::new("client", c.pos, &c.body, &CLIENT);
            let cl = &mut self.client;
            cl.enabled = cf.bool(d, "enabled").unwrap_or(cl.enabled);
            cl.servers = cf
                .string_list(d, "servers")
                .unwrap_or(std::mem::take(&mut cl.servers));
            cl.join_token = cf.string(d, "join_token").or(cl.join_token.take());
            cl.node_class = cf
                .string(d, "node_class")
                .unwrap_or(std::mem::take(&mut cl.node_class));
            cl.node_pool = cf
                .string(d, "node_pool")
                .unwrap_or(std::mem::take(&mut cl.node_pool));
            cl.meta.extend(cf.string_map(d, "meta"));
            if let Some(v) = cf.string(d, "network_address") {
                if let Err(msg) = parse_node_ip(&v) {
                    d.push(Diagnostic::error(
                        cf.pos_of("network_address").unwrap_or(c.pos),
                        "client > network_address",
                        msg,
                    ));
                }
                cl.network_address = Some(v);
            }
            if let Some(v) = cf.string(d, "network_interface") {
                interface_at = Some(cf.pos_of("network_interface").unwrap_or(c.pos));
                cl.network_interface = Some(v);
            }
            if cl.network_address.is_some() && cl.network_interface.is_some() {
                d.push(Diagnostic::error(
                    c.pos,
                    "client",
                    "set network_address or network_interface, not both: each names the node's address",
                ));
            }
            if let Some(a) = cf.block(d, "artifact") {
                let mut af = Fields::new("client > artifact", a.pos, &a.body, &CLIENT_ARTIFACT);
                let lim = &mut cl.artifact;
                if let Some(t) = af.duration(d, "http_read_timeout") {
                    lim.http_read_timeout = t;
                }
                for (key, slot) in [
                    ("http_max_size", &mut lim.http_max_size),
                    (
                        "decompression_size_limit",
                        &mut lim.decompression_size_limit,
                    ),
                ] {
                    if let Some(v) = af.string(d, key) {
                        match parse_size(&v) {
                            Ok(n) => *slot = n,
                            Err(msg) => d.push(Diagnostic::error(
                                af.pos_of(key).unwrap_or(a.pos),
                                af.child(key),
                                msg,
                            )),
                        }
                    }
                }
                if let Some(n) = af.u64(d, "decompression_file_count_limit") {
                    lim.decompression_file_count_limit = n;
                }
                af.finish(d);
            }
            let options = cf.string_map(d, "options");
            if let Some(v) = options.get("driver.raw_exec.enable") {
                self.raw_exec_enabled = v == "true" || v == "1";
            }
            cf.finish(d);
        }
        for p in f.blocks(d, "plugin", 1) {
            let name = p.labels[0].name.clone();
            let mut pf = Fields::new(format!("plugin {name:?}"), p.pos, &p.body, &PLUGIN);
            if let Some(cfg) = pf.block(d, "config") {
                let mut cf = Fields::new(
                    format!("plugin {name:?} > config"),
                    cfg.pos,
                    &cfg.body,
                    &PLUGIN_CONFIG,
                );
                match name.as_str() {
                    "docker" => {
                        if let Some(v) = cf.block(d, "volumes") {
                            let mut vf = Fields::new(
                                format!("plugin {name:?} > config > volumes"),
                                v.pos,
                                &v.body,
                                &PLUGIN_VOLUMES,
                            );
                            self.docker.volumes_enabled = vf.bool(d, "enabled").unwrap_or(false);
                            vf.finish(d);
                        }
                        self.docker.allow_privileged =
                            cf.bool(d, "allow_privileged").unwrap_or(false);
                        if let Some(caps) = cf.string_list(d, "allow_caps") {
                            self.docker.allow_caps = Some(caps);
                        }
                        if let Some(v) = cf.bool(d, "allow_host_network") {
                            self.docker.allow_host_network = v;
                        }
                    }
                    "raw_exec" => {
                        if let Some(v) = cf.bool(d, "enabled") {
                            self.raw_exec_enabled = v;
                        }
                    }
                    _ => {}
                }
                cf.finish(d);
            }
            pf.finish(d);
        }
        if let Some(b) = f.block(d, "dns") {
            let mut df = Fields::new("dns", b.pos, &b.body, &DNS);
            let c = &mut self.dns;
            c.enabled = df.bool(d, "enabled").unwrap_or(c.enabled);
            if let Some(v) = df.int(d, "port", 1, 65535) {
                c.port = v as u16;
            }
            if let Some(v) = df.string_list(d, "bind") {
                for entry in &v {
                    if let Err(e) = crate::dns::parse_bind(entry, 0) {
                        d.push(Diagnostic::error(b.pos, "dns > bind", e.to_string()));
                    }
                }
                c.bind = v;
            }
            if let Some(v) = df.string_list(d, "recursors") {
                for r in &v {
                    if let Err(e) = crate::dns::parse_recursor(r) {
                        d.push(Diagnostic::error(b.pos, "dns > recursors", e));
                    }
                }
                c.recursors = v;
            }
            if let Some(v) = df.string(d, "domain") {
                if let Err(e) = crate::dns::Zone::new(&v, "dc1", 0) {
                    d.push(Diagnostic::error(b.pos, "dns > domain", e));
                }
                c.domain = v.trim_end_matches('.').to_string();
            }
            if let Some(v) = df.duration(d, "ttl") {
                c.ttl = v.as_secs().min(u32::MAX as u64) as u32;
            }
            if let Some(v) = df.int(d, "udp_answer_limit", 1, 64) {
                c.udp_answer_limit = v as usize;
            }
            df.finish(d);
        }
        if let Some(m) = f.block(d, "manifests") {
            let mut mf = Fields::new("manifests", m.pos, &m.body, &MANIFESTS);
            if let Some(dir) = mf.string(d, "dir") {
                self.manifests.dir = Some(PathBuf::from(dir));
            }
            self.manifests.resync_interval = mf
                .duration(d, "resync_interval")
                .unwrap_or(self.manifests.resync_interval);
            self.manifests.allow_empty = mf
                .bool(d, "allow_empty")
                .unwrap_or(self.manifests.allow_empty);
            if self.manifests.resync_interval < Duration::from_secs(1) {
                d.push(Diagnostic::error(
                    m.pos,
                    "manifests > resync_interval",
                    "resync_interval must be at least 1s",
                ));
            }
            mf.finish(d);
        }
        f.finish(d);
        interface_at
    }
}

impl AgentConfig {
    /// The address the HTTP API listens on.
    pub fn http_listen_addr(&self) -> &str {
        self.http_addr.as_deref().unwrap_or(&self.bind_addr)
    }

    /// `HOST:PORT` of the HTTP API: what both server and client agents bind, and what a node
    /// reports as its HTTP address (a server relays log requests there). An IPv6 literal gets
    /// its brackets before the port.
    pub fn http_listen_socket(&self) -> String {
        match self.http_listen_addr() {
            a if a.contains(':') && !a.starts_with('[') => format!("[{a}]:{}", self.http_port),
            a => format!("{a}:{}", self.http_port),
        }
    }

    /// Takes the API token from `DROVER_TOKEN` when the config set none (a systemd
    /// `EnvironmentFile` keeps it out of the config file).
    pub fn token_from_env(&mut self, env: Option<String>) {
        if self.http_api_token.is_none() {
            self.http_api_token = env.filter(|t| !t.is_empty());
        }
    }

    /// An API that anyone on the network can reach must not accept anonymous writes: the
    /// agent refuses to start on a non-loopback HTTP address without a token.
    pub fn check_api_exposure(&self) -> Result<(), String> {
        let addr = self.http_listen_addr();
        if self.http_api_token.is_some() || is_loopback(addr) {
            return Ok(());
        }
        Err(format!(
            "the HTTP API would listen on {addr}, beyond loopback, with no API token: anyone who can reach it could run and stop jobs. Set http_api_token in the agent config (or DROVER_TOKEN in the agent's environment), or bind the API to 127.0.0.1 (addresses {{ http = \"127.0.0.1\" }})"
        ))
    }
}

impl AgentConfig {
    /// The RPC port hands workloads, and the secrets in their job files, to whoever joins it:
    /// a server whose RPC port listens beyond loopback refuses to start without a join token
    /// (`server { join_token }`, or `env_token`, the agent's `DROVER_JOIN_TOKEN`).
    pub fn check_rpc_exposure(&self, env_token: Option<&str>) -> Result<(), String> {
        if !self.server.enabled
            || is_loopback(&self.bind_addr)
            || effective_join_token(self.server.join_token.as_deref(), env_token).is_some()
        {
            return Ok(());
        }
        Err(format!(
            "the RPC port would listen on {}:{}, beyond loopback, with no join token: any machine that reaches it could join as a client and be handed workloads. Set server {{ join_token = \"…\" }} in the agent config (or DROVER_JOIN_TOKEN in the agent's environment), and the same token on the clients",
            self.bind_addr, self.rpc_port
        ))
    }

    /// The node's address: `client { network_address }`; else the first IPv4 address of
    /// `client { network_interface }`; else `bind_addr`, unless that is `0.0.0.0`, when it is
    /// the default-route interface's address (as Nomad fingerprints it).
    pub fn node_address(&self, host: &HostNetwork) -> Result<String, String> {
        if let Some(a) = &self.client.network_address {
            return Ok(a.clone());
        }
        if let Some(name) = &self.client.network_interface {
            return host
                .interface_ipv4(name)
                .map(|ip| ip.to_string())
                .map_err(|e| format!("client {{ network_interface }}: {e}"));
        }
        if !is_unspecified(&self.bind_addr) {
            return Ok(self.bind_addr.clone());
        }
        host.default_ipv4().map(|ip| ip.to_string()).map_err(|e| {
            format!(
                "bind_addr is {} and {e}: set client {{ network_interface = \"…\" }} to name the node's address",
                self.bind_addr
            )
        })
    }

    /// The node's address and the advertised addresses. An `advertise` entry without a port
    /// takes the service's port; an unset one is the service's bound address (`addresses {
    /// http }` or `bind_addr`), or, when that is `0.0.0.0`, the default-route interface's.
    pub fn resolve_addrs(&self, host: &HostNetwork) -> Result<ResolvedAddrs, String> {
        let node = if self.client.enabled {
            Some(self.node_address(host)?)
        } else {
            None
        };
        let advertised = |set: &Option<String>, key: &str, bound: &str, port: u16| {
            let (h, p) = match set {
                Some(v) => parse_advertise(v).map_err(|e| format!("advertise {{ {key} }}: {e}"))?,
                None if !is_unspecified(bound) => (unbracket(bound).to_string(), None),
                None => {
                    let ip = host.default_ipv4().map_err(|e| {
                        format!("{bound} is bound and {e}: set advertise {{ {key} = \"…\" }}")
                    })?;
                    (ip.to_string(), None)
                }
            };
            Ok::<_, String>(join_host_port(&h, p.unwrap_or(port)))
        };
        Ok(ResolvedAddrs {
            node,
            http: advertised(
                &self.advertise.http,
                "http",
                self.http_listen_addr(),
                self.http_port,
            )?,
            rpc: advertised(&self.advertise.rpc, "rpc", &self.bind_addr, self.rpc_port)?,
            serf: advertised(&self.advertise.serf, "serf", &self.bind_addr, SERF_PORT)?,
        })
    }
}

/// An `advertise` entry: `host` or `host:port`, the host an IP address or a DNS name (an
/// IPv6 address takes brackets before a port). `0.0.0.0` is refused: no one can dial it.
pub fn parse_advertise(v: &str) -> Result<(String, Option<u16>), String> {
    let bad = |why: &str| format!("invalid advertise address {v:?}: {why}");
    let t = v.trim();
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
        match after {
            "" => (h, None),
            p => (
                h,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("expected :PORT after ']'"))?,
                ),
            ),
        }
    } else if t.matches(':').count() > 1 {
        (t, None)
    } else {
        match t.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (t, None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))
        })
        .transpose()?;
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => Err(bad(&format!(
            "{ip} is not an address other agents can dial; advertise this host's own IP address"
        ))),
        Ok(ip) => Ok((ip.to_string(), port)),
        Err(_) if is_dns_name(host) => Ok((host.to_string(), port)),
        Err(_) if host.contains("{{") => Err(bad(
            "go-sockaddr templates are not supported; write the address, or name the node's interface with client { network_interface }",
        )),
        Err(_) => Err(bad(
            "expected an IP address or a host name, optionally with :PORT",
        )),
    }
}

/// `client { network_address }`: an IP address this node can be reached at.
fn parse_node_ip(v: &str) -> Result<IpAddr, String> {
    match v.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => Err(format!(
            "invalid network_address {v:?}: {ip} is not an address others can reach; set this node's own IP address or client {{ network_interface }}"
        )),
        Ok(ip) => Ok(ip),
        Err(_) => Err(format!(
            "invalid network_address {v:?}: expected an IP address"
        )),
    }
}

/// A DNS name: dot-separated labels of letters, digits and inner hyphens, not all digits
/// (`10.0.0` is a mistyped address, not a name).
fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(label_ok)
        && !s.split('.').all(|l| l.chars().all(|c| c.is_ascii_digit()))
}

fn unbracket(addr: &str) -> &str {
    addr.trim_start_matches('[').trim_end_matches(']')
}

/// `host:port`, an IPv6 host in brackets.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `0.0.0.0` or `::`: every address of the host, none of which it names.
/// The join token in effect: `configured` (`server` or `client { join_token }`), else `env`
/// (`DROVER_JOIN_TOKEN`), trimmed; a blank one counts as unset. [`AgentConfig::check_rpc_exposure`]
/// and the RPC port both use it, so the port enforces the token the check counted.
pub fn effective_join_token(configured: Option<&str>, env: Option<&str>) -> Option<String> {
    [configured, env]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|t| !t.is_empty())
        .map(str::to_string)
}

pub(crate) fn is_unspecified(addr: &str) -> bool {
    unbracket(addr)
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
}

/// `127.0.0.0/8`, `::1` and `localhost`; anything else (including `0.0.0.0`) is reachable
/// from the network.
pub(crate) fn is_loopback(addr: &str) -> bool {
    let host = unbracket(addr);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "drover".into())
}

const NOT_USED: &str = "a Nomad agent setting that drover does not use";

static AGENT: BlockSchema = BlockSchema {
    block: "agent config",
    supported: &[
        "name",
        "region",
        "datacenter",
        "data_dir",
        "bind_addr",
        "addresses",
        "advertise",
        "http_api_token",
        "log_level",
        "log_json",
        "ports",
        "server",
        "client",
        "plugin",
        "manifests",
        "dns",
    ],
    ignored: &[
        (
            "acl",
            "drover uses a join token and an API token instead of Nomad's ACL system",
        ),
        ("audit", NOT_USED),
        ("autopilot", "drover runs one server"),
        (
            "consul",
            "drover needs no Consul: it has its own catalog and DNS",
        ),
        ("vault", NOT_USED),
        ("telemetry", "drover always serves /metrics and /v1/metrics"),
        ("tls", NOT_USED),
        ("ui", "drover serves its own status page at /ui"),
        ("limits", NOT_USED),
        (
            "leave_on_interrupt",
            "an interrupted drover agent always leaves workloads running",
        ),
        (
            "leave_on_terminate",
            "a terminated drover agent always leaves workloads running",
        ),
        ("enable_syslog", NOT_USED),
        ("syslog_facility", NOT_USED),
        (
            "log_file",
            "drover logs to stderr; systemd's journal keeps them",
        ),
        ("log_rotate_bytes", NOT_USED),
        ("log_rotate_duration", NOT_USED),
        ("log_rotate_max_files", NOT_USED),
        ("disable_update_check", NOT_USED),
        ("disable_anonymous_signature", NOT_USED),
        ("enable_debug", NOT_USED),
        ("plugin_dir", "drover's drivers are built in"),
        ("http_api_response_headers", NOT_USED),
        ("keyring", NOT_USED),
        ("reporting", NOT_USED),
        ("sentinel", NOT_USED),
    ],
    unsupported: &[],
};

static ADDRESSES: BlockSchema = BlockSchema {
    block: "addresses",
    supported: &["http"],
    ignored: &[
        ("rpc", "drover binds RPC on bind_addr"),
        ("serf", "drover runs one server and needs no gossip"),
    ],
    unsupported: &[],
};

static ADVERTISE: BlockSchema = BlockSchema {
    block: "advertise",
    supported: &["http", "rpc", "serf"],
    ignored: &[],
    unsupported: &[],
};

static DNS: BlockSchema = BlockSchema {
    block: "dns",
    supported: &[
        "enabled",
        "port",
        "bind",
        "recursors",
        "domain",
        "ttl",
        "udp_answer_limit",
    ],
    ignored: &[],
    unsupported: &[],
};

static PORTS: BlockSchema = BlockSchema {
    block: "ports",
    supported: &["http", "rpc"],
    ignored: &[("serf", "drover runs one server and needs no gossip")],
    unsupported: &[],
};

static SERVER: BlockSchema = BlockSchema {
    block: "server",
    supported: &[
        "enabled",
        "bootstrap_expect",
        "join_token",
        "min_heartbeat_ttl",
        "heartbeat_grace",
    ],
    ignored: &[
        ("server_join", "drover runs one server"),
        ("retry_join", "drover runs one server"),
        ("start_join", "drover runs one server"),
        (
            "encrypt",
            "drover runs one server and needs no gossip encryption",
        ),
        ("data_dir", "the agent's data_dir is used"),
        ("num_schedulers", NOT_USED),
        ("job_gc_threshold", NOT_USED),
        ("eval_gc_threshold", NOT_USED),
        ("node_gc_threshold", NOT_USED),
        ("raft_protocol", "drover keeps its state in SQLite"),
        ("default_scheduler_config", NOT_USED),
        (
            "max_heartbeats_per_second",
            "drover scales the heartbeat TTL with Nomad's default, 50 per second",
        ),
        ("license_path", NOT_USED),
        ("authoritative_region", NOT_USED),
    ],
    unsupported: &[],
};

static CLIENT: BlockSchema = BlockSchema {
    block: "client",
    supported: &[
        "enabled",
        "servers",
        "join_token",
        "node_class",
        "node_pool",
        "meta",
        "network_address",
        "network_interface",
        "options",
        "artifact",
    ],
    ignored: &[
        ("state_dir", "the agent's data_dir is used"),
        ("alloc_dir", "the agent's data_dir is used"),
        ("cpu_total_compute", "drover reads the CPU from the host"),
        ("memory_total_mb", "drover reads the memory from the host"),
        ("reserved", NOT_USED),
        ("host_volume", NOT_USED),
        ("host_network", NOT_USED),
        ("server_join", "set servers instead"),
        ("gc_interval", NOT_USED),
        ("gc_max_allocs", NOT_USED),
        ("drain_on_shutdown", NOT_USED),
        ("cni_path", NOT_USED),
        ("bridge_network_name", NOT_USED),
        ("max_kill_timeout", NOT_USED),
        ("template", NOT_USED),
        ("chroot_env", NOT_USED),
    ],
    unsupported: &[],
};

static PLUGIN: BlockSchema = BlockSchema {
    block: "plugin",
    supported: &["config"],
    ignored: &[("args", "drover's drivers are built in")],
    unsupported: &[],
};

static PLUGIN_CONFIG: BlockSchema = BlockSchema {
    block: "plugin config",
    supported: &[
        "volumes",
        "allow_privileged",
        "allow_caps",
        "allow_host_network",
        "enabled",
    ],
    ignored: &[
        ("gc", NOT_USED),
        ("auth", NOT_USED),
        ("extra_labels", NOT_USED),
        ("logging", NOT_USED),
        ("pull_activity_timeout", NOT_USED),
        ("infra_image", NOT_USED),
        ("allow_runtimes", NOT_USED),
        ("no_cgroups", NOT_USED),
        ("endpoint", "set DOCKER_HOST instead"),
    ],
    unsupported: &[],
};

static CLIENT_ARTIFACT: BlockSchema = BlockSchema {
    block: "artifact",
    supported: &[
        "http_read_timeout",
        "http_max_size",
        "decompression_size_limit",
        "decompression_file_count_limit",
    ],
    ignored: &[
        (
            "gcs_timeout",
            "drover fetches http, https and file sources only",
        ),
        (
            "git_timeout",
            "drover fetches http, https and file sources only",
        ),
        (
            "hg_timeout",
            "drover fetches http, https and file sources only",
        ),
        (
            "s3_timeout",
            "drover fetches http, https and file sources only",
        ),
        ("disable_filesystem_isolation", NOT_USED),
        ("set_environment_variables", NOT_USED),
    ],
    unsupported: &[],
};

/// A size as Nomad's agent config writes it (go-humanize): `100GB` (powers of 1000), `1GiB`
/// (powers of 1024), or plain bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number and a unit such as 1GiB or 500MB")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1000,
        "kib" | "ki" => 1 << 10,
        "mb" | "m" => 1000 * 1000,
        "mib" | "mi" => 1 << 20,
        "gb" | "g" => 1000 * 1000 * 1000,
        "gib" | "gi" => 1 << 30,
        "tb" | "t" => 1000u64.pow(4),
        "tib" | "ti" => 1 << 40,
        other => return Err(format!("invalid size {s:?}: unknown unit {other:?}")),
    };
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("invalid size {s:?}: must be at least 1 byte"));
    }
    Ok(bytes as u64)
}

static PLUGIN_VOLUMES: BlockSchema = BlockSchema {
    block: "volumes",
    supported: &["enabled"],
    ignored: &[("selinuxlabel", NOT_USED)],
    unsupported: &[],
};

static MANIFESTS: BlockSchema = BlockSchema {
    block: "manifests",
    supported: &["dir", "resync_interval", "allow_empty"],
    ignored: &[],
    unsupported: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/seed")
            .join(name)
    }

    #[test]
    fn the_seed_agent_files_read() {
        let mut server = AgentConfig::base();
        let w = server
            .merge_file(&seed("server.hcl"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(w.is_empty(), "{w:?}");
        assert!(server.server.enabled && !server.client.enabled);
        assert_eq!(server.server.bootstrap_expect, 1);
        assert_eq!(server.log_level, "DEBUG");
        assert_eq!(server.data_dir.as_deref(), Some(Path::new("/etc/nomad.d")));

        let mut client = AgentConfig::base();
        client
            .merge_file(&seed("client.hcl"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(client.client.enabled && !client.server.enabled);
    }

    /// deploy/server.hcl and deploy/client.hcl, as deploy/drover.service loads them: one
    /// agent, both roles, no warnings.
    #[test]
    fn the_deploy_agent_files_read() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let mut c = AgentConfig::base();
        for f in ["server.hcl", "client.hcl"] {
            let w = c
                .merge_file(&deploy.join(f))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(w.is_empty(), "{f}: {w:?}");
        }
        assert!(c.server.enabled && c.client.enabled);
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/var/lib/drover")));
        assert_eq!(
            c.manifests.dir.as_deref(),
            Some(Path::new("/etc/drover/jobs"))
        );
        assert_eq!(c.manifests.resync_interval, Duration::from_secs(30));
        assert_eq!((c.bind_addr.as_str(), c.http_port), ("127.0.0.1", 4646));
        assert_eq!(c.client.meta.get("rack").map(String::as_str), Some("r1"));
        assert!(!c.raw_exec_enabled && !c.docker.volumes_enabled);
    }

    #[test]
    fn api_beyond_loopback_needs_a_token() {
        let mut c = AgentConfig::base();
        assert!(c.check_api_exposure().is_ok(), "loopback by default");
        for open in ["0.0.0.0", "10.1.2.3", "::"] {
            c.bind_addr = open.into();
            let err = c.check_api_exposure().expect_err(open);
            assert!(
                err.contains(open) && err.contains("http_api_token"),
                "{err}"
            );
        }
        c.http_addr = Some("127.0.0.9".into());
        assert!(
            c.check_api_exposure().is_ok(),
            "addresses.http wins over bind_addr"
        );
        c.http_addr = Some("[::1]".into());
        assert!(c.check_api_exposure().is_ok());
        c.http_addr = None;
        c.token_from_env(Some(String::new()));
        assert!(
            c.check_api_exposure().is_err(),
            "an empty DROVER_TOKEN is no token"
        );
        c.token_from_env(Some("s3cret".into()));
        assert!(c.check_api_exposure().is_ok());

        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("agent.hcl");
        std::fs::write(
            &p,
            "bind_addr = \"0.0.0.0\"\naddresses {\n  http = \"10.0.0.5\"\n}\nhttp_api_token = \"abc\"\n",
        )
        .expect("write");
        let mut c = AgentConfig::base();
        c.merge_file(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.http_listen_addr(), "10.0.0.5");
        assert_eq!(c.http_listen_socket(), "10.0.0.5:4646");
        c.http_addr = Some("::1".into());
        assert_eq!(c.http_listen_socket(), "[::1]:4646");
        c.http_addr = Some("[::1]".into());
        assert_eq!(c.http_listen_socket(), "[::1]:4646");
        assert_eq!(c.http_api_token.as_deref(), Some("abc"));
        c.token_from_env(Some("other".into()));
        assert_eq!(c.http_api_token.as_deref(), Some("abc"), "the file wins");
    }

    #[test]
    fn a_server_rpc_port_beyond_loopback_needs_a_join_token() {
        let mut c = AgentConfig::base();
        c.server.enabled = true;
        assert!(c.check_rpc_exposure(None).is_ok(), "loopback by default");
        c.bind_addr = "0.0.0.0".into();
        let err = c.check_rpc_exposure(None).expect_err("open RPC port");
        assert!(
            err.contains("0.0.0.0:4647") && err.contains("join_token"),
            "{err}"
        );
        assert!(
            c.check_rpc_exposure(Some(" ")).is_err(),
            "a blank token is none"
        );
        assert!(c.check_rpc_exposure(Some("s3cret")).is_ok());
        c.server.join_token = Some("s3cret".into());
        assert!(c.check_rpc_exposure(None).is_ok());
        // A blank token in the file stands for none: the check lets the environment's
        // through, and that is the token the RPC port then asks for.
        c.server.join_token = Some(" ".into());
        assert!(
            c.check_rpc_exposure(None).is_err(),
            "a blank file token is none"
        );
        assert!(c.check_rpc_exposure(Some("from-env")).is_ok());
        assert_eq!(
            effective_join_token(c.server.join_token.as_deref(), Some("from-env")).as_deref(),
            Some("from-env"),
            "the check passed on the environment's token, so the RPC port must enforce it"
        );
        c.server.join_token = None;
        c.server.enabled = false;
        assert!(
            c.check_rpc_exposure(None).is_ok(),
            "a client-only agent serves no RPC port"
        );
    }

    #[test]
    fn drover_keys_and_typos() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("agent.hcl");
        std::fs::write(
            &p,
            "bind_addr = \"127.0.0.2\"\nports { http = 5646 }\nmanifests {\n  dir = \"/srv/jobs\"\n  resync_interval = \"10s\"\n}\nclient {\n  enabled = true\n  servers = [\"127.0.0.1:4647\"]\n}\nplugin \"docker\" {\n  config {\n    volumes { enabled = true }\n  }\n}\nconsul { address = \"x\" }\n",
        )
        .expect("write");
        let mut c = AgentConfig::base();
        let warnings = c.merge_file(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.bind_addr, "127.0.0.2");
        assert_eq!(c.http_port, 5646);
        assert_eq!(c.manifests.dir.as_deref(), Some(Path::new("/srv/jobs")));
        assert_eq!(c.manifests.resync_interval, Duration::from_secs(10));
        assert_eq!(c.client.servers, ["127.0.0.1:4647"]);
        assert!(c.docker.volumes_enabled);
        assert!(!c.docker.allow_host_network);
        assert_eq!(c.docker.allow_caps, None);
        assert_eq!(
            c.client.artifact,
            drover_runtime::artifact::ArtifactLimits::default()
        );
        assert!(
            warnings.iter().any(|w| w.message.contains("consul")),
            "{warnings:?}"
        );

        std::fs::write(&p, "data_dri = \"/x\"\n").expect("write");
        let err = AgentConfig::base()
            .merge_file(&p)
            .expect_err("a typo fails");
        assert!(
            err.to_string().contains("did you mean \"data_dir\""),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("failed to parse agent config "),
            "an agent config is not called a job file: {err}"
        );
    }

    #[test]
    fn artifact_limits_and_docker_gates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("agent.hcl");
        std::fs::write(
            &p,
            "client {\n  artifact {\n    http_read_timeout = \"5m\"\n    http_max_size = \"100MB\"\n    decompression_size_limit = \"2GiB\"\n    decompression_file_count_limit = 10\n    git_timeout = \"1m\"\n  }\n}\nplugin \"docker\" {\n  config {\n    allow_privileged = true\n    allow_host_network = true\n    allow_caps = [\"net_raw\"]\n  }\n}\n",
        )
        .expect("write");
        let mut c = AgentConfig::base();
        let warnings = c.merge_file(&p).unwrap_or_else(|e| panic!("{e}"));
        let a = c.client.artifact;
        assert_eq!(a.http_read_timeout, Duration::from_secs(300));
        assert_eq!(a.http_max_size, 100_000_000);
        assert_eq!(a.decompression_size_limit, 2 << 30);
        assert_eq!(a.decompression_file_count_limit, 10);
        assert!(
            warnings.iter().any(|w| w.message.contains("git_timeout")),
            "{warnings:?}"
        );
        assert!(c.docker.allow_privileged && c.docker.allow_host_network);
        assert_eq!(c.docker.allow_caps, Some(vec!["net_raw".to_string()]));

        std::fs::write(
            &p,
            "client {\n  artifact {\n    http_max_size = \"lots\"\n  }\n}\n",
        )
        .expect("write");
        let err = AgentConfig::base().merge_file(&p).expect_err("bad size");
        assert!(err.to_string().contains("http_max_size"), "{err}");
    }

    /// A host with a default route on eth0 (192.0.2.2) and the usual loopback.
    fn fake_host() -> HostNetwork {
        use drover_runtime::client::network::Interface;
        let iface = |name: &str, ip: [u8; 4]| Interface {
            name: name.into(),
            ipv4: vec![ip.into()],
        };
        HostNetwork::new(
            vec![iface("lo", [127, 0, 0, 1]), iface("eth0", [192, 0, 2, 2])],
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
             eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n",
        )
    }

    fn read(hcl: &str) -> Result<AgentConfig, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("agent.hcl");
        std::fs::write(&p, hcl).expect("write");
        let mut c = AgentConfig::base();
        c.merge_file(&p).map(|_| c).map_err(|e| e.to_string())
    }

    #[test]
    fn advertise_and_network_interface_name_the_addresses_others_dial() {
        let c = read(
            "bind_addr = \"0.0.0.0\"\naddresses { http = \"127.0.0.1\" }\nadvertise {\n  http = \"10.0.0.5\"\n  rpc = \"10.0.0.5:5647\"\n  serf = \"[fd00::1]:4648\"\n}\nclient {\n  enabled = true\n  network_interface = \"lo\"\n}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.advertise.http.as_deref(), Some("10.0.0.5"));
        assert_eq!(c.client.network_interface.as_deref(), Some("lo"));
        let r = c.resolve_addrs(&fake_host()).expect("resolves");
        assert_eq!(r.node.as_deref(), Some("127.0.0.1"), "lo's address");
        assert_eq!(r.http, "10.0.0.5:4646", "the HTTP port is added");
        assert_eq!(r.rpc, "10.0.0.5:5647");
        assert_eq!(r.serf, "[fd00::1]:4648");

        // Nothing set on 0.0.0.0: the default-route interface's address, everywhere but the
        // HTTP API, which is advertised where addresses { http } put it.
        let c = read("bind_addr = \"0.0.0.0\"\naddresses { http = \"127.0.0.1\" }\nclient { enabled = true }\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let r = c.resolve_addrs(&fake_host()).expect("resolves");
        assert_eq!(r.node.as_deref(), Some("192.0.2.2"));
        assert_eq!(
            (r.http.as_str(), r.rpc.as_str()),
            ("127.0.0.1:4646", "192.0.2.2:4647")
        );
        assert_eq!(r.serf, "192.0.2.2:4648");

        // A specific bind address stays the node's address (two clients on one host, each
        // on its own loopback address, each hold the same static port).
        let mut c = AgentConfig::dev();
        c.bind_addr = "127.0.0.3".into();
        let r = c
            .resolve_addrs(&HostNetwork::default())
            .expect("needs no host");
        assert_eq!(r.node.as_deref(), Some("127.0.0.3"));
        assert_eq!(r.http, "127.0.0.3:4646");
        c.client.network_address = Some("127.0.0.4".into());
        assert_eq!(
            c.node_address(&HostNetwork::default()).as_deref(),
            Ok("127.0.0.4")
        );

        // 0.0.0.0 on a host with no address to offer: the error names what to set.
        c.bind_addr = "0.0.0.0".into();
        c.client.network_address = None;
        let err = c
            .resolve_addrs(&HostNetwork::default())
            .expect_err("nothing to advertise");
        assert!(err.contains("network_interface"), "{err}");
        c.client.enabled = false;
        let err = c
            .resolve_addrs(&HostNetwork::default())
            .expect_err("nothing to advertise");
        assert!(err.contains("advertise { http"), "{err}");
    }

    #[test]
    fn bad_advertise_addresses_and_interfaces_are_errors_naming_file_and_key() {
        for (bad, why) in [
            ("0.0.0.0", "is not an address other agents can dial"),
            ("[::]:4646", "is not an address other agents can dial"),
            ("10.0.0.5:http", "the port must be a number"),
            ("10.0.0.5:0", "the port must be a number"),
            ("10.0.0", "expected an IP address or a host name"),
            ("{{ GetPrivateIP }}", "templates are not supported"),
            ("[fd00::1", "missing ']'"),
        ] {
            let err = read(&format!("advertise {{\n  rpc = {bad:?}\n}}\n")).expect_err(bad);
            assert!(
                err.contains("agent.hcl:2") && err.contains("advertise > rpc") && err.contains(why),
                "{bad}: {err}"
            );
        }
        let err = read("client {\n  enabled = true\n  network_interface = \"drover-nope0\"\n}\n")
            .expect_err("no such interface");
        assert!(
            err.contains("agent.hcl:3")
                && err.contains("client > network_interface")
                && err.contains("no network interface named \"drover-nope0\""),
            "{err}"
        );
        let err = read("client {\n  network_address = \"0.0.0.0\"\n}\n").expect_err("wildcard");
        assert!(err.contains("client > network_address"), "{err}");
        let err =
            read("client {\n  network_address = \"127.0.0.2\"\n  network_interface = \"lo\"\n}\n")
                .expect_err("both");
        assert!(err.contains("not both"), "{err}");

        assert_eq!(
            parse_advertise("nomad-1.example.com"),
            Ok(("nomad-1.example.com".into(), None))
        );
        assert_eq!(parse_advertise("fd00::1"), Ok(("fd00::1".into(), None)));
        assert_eq!(
            parse_advertise(" 10.0.0.5:80 "),
            Ok(("10.0.0.5".into(), Some(80)))
        );
    }

    #[test]
    fn sizes_parse_like_nomads() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("100GB"), Ok(100_000_000_000));
        assert_eq!(parse_size("1.5 MiB"), Ok(1_572_864));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1 parsec").is_err());
    }

    #[test]
    fn the_dns_block_reads_and_refuses_bad_addresses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("agent.hcl");
        std::fs::write(
            &p,
            "dns {\n  port = 8653\n  bind = [\"127.0.0.1\", \"172.17.0.1:53\"]\n  recursors = [\"1.1.1.1\", \"9.9.9.9:5353\"]\n  ttl = \"5s\"\n}\n",
        )
        .expect("write");
        let mut c = AgentConfig::dev();
        c.merge_file(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.dns.enabled);
        assert_eq!(c.dns.port, 8653);
        assert_eq!(c.dns.bind, ["127.0.0.1", "172.17.0.1:53"]);
        assert_eq!(c.dns.recursors, ["1.1.1.1", "9.9.9.9:5353"]);
        assert_eq!(c.dns.ttl, 5);
        assert_eq!(c.dns.domain, "consul");

        std::fs::write(
            &p,
            "dns {\n  recursors = [\"dns.example\"]\n  bind = [\"eth0\"]\n}\n",
        )
        .expect("write");
        let err = AgentConfig::dev().merge_file(&p).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("recursor \"dns.example\""), "{msg}");
        assert!(msg.contains("bind address \"eth0\""), "{msg}");
    }
}
