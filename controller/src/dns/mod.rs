//! Consul's DNS interface, served by every client agent from the service catalog (hickory-server
//! over UDP and TCP, port 8600 by default): `NAME.service.consul`, `TAG.NAME.service.consul`,
//! `NAME.service.DC.consul` (A, AAAA and SRV of the healthy instances), `<hex>.addr.DC.consul`.
//! The answers themselves are [`answer::answer`], a pure function of the catalog.
//!
//! Names outside the domain are REFUSED, unless `recursors` are configured: then the query is
//! forwarded as is over UDP to each recursor in turn (the first that answers wins), the way
//! Consul's `recursors` work, and its answer relayed.
//!
//! The catalog comes through [`CatalogSource`]: the in-process server's store, or a remote
//! server's catalog for a client-only agent; nothing here knows which.

pub mod answer;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, Metadata, ResponseCode};
use hickory_proto::rr::{Name, Record};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::services::CatalogSource;
pub use answer::{Outcome, Zone};

/// Consul's DNS port.
pub const DEFAULT_PORT: u16 = 8600;
/// Consul's `udp_answer_limit`: a UDP answer carries at most this many instances (a resolver
/// that wants them all asks over TCP), rotated so clients spread over the instances.
pub const DEFAULT_UDP_ANSWER_LIMIT: usize = 3;
/// How long one recursor gets to answer before the next is tried.
const RECURSOR_TIMEOUT: Duration = Duration::from_secs(2);
/// A TCP client that sends nothing for this long is dropped.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The agent's `dns { … }` block (drover's own; Nomad has no DNS).
#[derive(Debug, Clone, PartialEq)]
pub struct DnsConfig {
    pub enabled: bool,
    pub port: u16,
    /// Addresses to listen on, `IP` (on `port`) or `IP:PORT`; empty means the agent's bind
    /// address plus the node's address when that differs and the bind is not `0.0.0.0`.
    pub bind: Vec<String>,
    /// `ip` or `ip:port` of DNS servers for names outside the domain; none means REFUSED.
    pub recursors: Vec<String>,
    pub domain: String,
    /// Seconds; 0 like Consul.
    pub ttl: u32,
    pub udp_answer_limit: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            enabled: true,
            port: DEFAULT_PORT,
            bind: Vec::new(),
            recursors: Vec::new(),
            domain: "consul".into(),
            ttl: 0,
            udp_answer_limit: DEFAULT_UDP_ANSWER_LIMIT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("dns: {0}")]
    Config(String),
    #[error("dns: failed to listen on {proto} {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Parses `ip` or `ip:port` (port 53 by default) of a recursor.
pub fn parse_recursor(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("recursor {s:?} is not an IP address or IP:port"))
}

/// Answers DNS questions from a catalog source.
pub struct DnsHandler<C> {
    source: C,
    zone: Zone,
    udp_limit: usize,
    recursors: Vec<SocketAddr>,
    /// Rotates the instances handed out, as Consul shuffles them.
    turn: AtomicUsize,
}

impl<C: CatalogSource> DnsHandler<C> {
    pub fn new(source: C, zone: Zone, udp_limit: usize, recursors: Vec<SocketAddr>) -> Self {
        DnsHandler {
            source,
            zone,
            udp_limit,
            recursors,
            turn: AtomicUsize::new(0),
        }
    }

    /// Forwards the raw query to the recursors in turn; `None` when none answered.
    async fn forward(&self, raw: &[u8]) -> Option<Message> {
        for r in &self.recursors {
            let bind: SocketAddr = if r.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
                continue;
            };
            let exchange = async {
                sock.send_to(raw, r).await?;
                let mut buf = vec![0u8; 4096];
                loop {
                    let (n, from) = sock.recv_from(&mut buf).await?;
                    if from == *r {
                        return Ok::<_, std::io::Error>(buf[..n].to_vec());
                    }
                }
            };
            match tokio::time::timeout(RECURSOR_TIMEOUT, exchange).await {
                Ok(Ok(bytes)) => match Message::from_vec(&bytes) {
                    Ok(m) => return Some(m),
                    Err(e) => {
                        tracing::debug!(recursor = %r, error = %e, "bad answer from recursor")
                    }
                },
                Ok(Err(e)) => tracing::debug!(recursor = %r, error = %e, "recursor failed"),
                Err(_) => tracing::debug!(recursor = %r, "recursor timed out"),
            }
        }
        None
    }
}

#[async_trait::async_trait]
impl<C: CatalogSource + Unpin> RequestHandler for DnsHandler<C> {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut meta = Metadata::response_from_request(&request.metadata);
        let info = match request.request_info() {
            Ok(info) => info,
            Err(_) => {
                meta.response_code = ResponseCode::FormErr;
                return send(&mut response, builder.build_no_records(meta)).await;
            }
        };
        let qname: Name = info.query.original().name().clone();
        let qtype = info.query.query_type();
        let limit = match request.protocol() {
            hickory_server::net::xfer::Protocol::Udp => self.udp_limit,
            _ => usize::MAX,
        };
        let catalog = self.source.catalog();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let outcome = answer::answer(&catalog, &self.zone, &qname, qtype, turn, limit);
        let none: [&Record; 0] = [];
        match outcome {
            Outcome::Records {
                answers,
                additionals,
            } => {
                meta.authoritative = true;
                let msg = builder.build(meta, answers.iter(), none, none, additionals.iter());
                send(&mut response, msg).await
            }
            Outcome::NoData | Outcome::NxDomain => {
                meta.authoritative = true;
                if outcome == Outcome::NxDomain {
                    meta.response_code = ResponseCode::NXDomain;
                }
                let soa = [self.zone.soa(catalog.index)];
                let msg = builder.build(meta, none, none, soa.iter(), none);
                send(&mut response, msg).await
            }
            Outcome::NotInZone if self.recursors.is_empty() => {
                meta.response_code = ResponseCode::Refused;
                send(&mut response, builder.build_no_records(meta)).await
            }
            Outcome::NotInZone => {
                meta.recursion_available = true;
                match self.forward(request.as_slice()).await {
                    Some(m) => {
                        meta.response_code = m.metadata.response_code;
                        meta.authoritative = false;
                        let msg = builder.build(
                            meta,
                            m.answers.iter(),
                            m.authorities.iter(),
                            none,
                            m.additionals.iter(),
                        );
                        send(&mut response, msg).await
                    }
                    None => {
                        meta.response_code = ResponseCode::ServFail;
                        send(&mut response, builder.build_no_records(meta)).await
                    }
                }
            }
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    msg: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    let id = msg.metadata().id;
    let op = msg.metadata().op_code;
    match response.send_response(msg).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "failed to send a DNS response");
            let mut m = Metadata::new(id, hickory_proto::op::MessageType::Response, op);
            m.response_code = ResponseCode::ServFail;
            hickory_proto::op::Header {
                metadata: m,
                counts: Default::default(),
            }
            .into()
        }
    }
}

/// A running DNS server.
pub struct DnsServer {
    /// Where it listens (UDP and TCP on each).
    pub addrs: Vec<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Binds every address (UDP and TCP) and serves until `shutdown` resolves. A port already
    /// taken is an error naming the address, so the agent says why DNS is not there.
    pub async fn start<C: CatalogSource + Unpin>(
        addrs: &[SocketAddr],
        handler: DnsHandler<C>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<DnsServer, DnsError> {
        let mut server = Server::new(handler);
        let mut bound = Vec::new();
        for addr in addrs {
            let udp = tokio::net::UdpSocket::bind(addr)
                .await
                .map_err(|source| DnsError::Bind {
                    proto: "udp",
                    addr: *addr,
                    source,
                })?;
            let local = udp.local_addr().unwrap_or(*addr);
            // The same port over TCP, for truncated answers and resolvers that prefer it.
            let tcp = tokio::net::TcpListener::bind(local)
                .await
                .map_err(|source| DnsError::Bind {
                    proto: "tcp",
                    addr: local,
                    source,
                })?;
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE_TIMEOUT, 64 * 1024);
            bound.push(local);
        }
        let token = server.shutdown_token().clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = shutdown => token.cancel(),
                r = server.block_until_done() => {
                    if let Err(e) = r {
                        tracing::error!(error = %e, "the DNS server stopped");
                    }
                    return;
                }
            }
            let _ = server.block_until_done().await;
        });
        Ok(DnsServer { addrs: bound, task })
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// The addresses to listen on for `config`, given the agent's bind address and the node's
/// address (`AgentConfig::node_address`).
pub fn listen_addrs(
    config: &DnsConfig,
    bind_addr: &str,
    network_address: Option<&str>,
) -> Result<Vec<SocketAddr>, DnsError> {
    let mut ips: Vec<String> = if config.bind.is_empty() {
        let mut v = vec![bind_addr.to_string()];
        // A wildcard bind already answers on the node's address (and would refuse a second
        // socket on the same port).
        let wildcard = bind_addr
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        if let Some(n) = network_address.filter(|n| *n != bind_addr && !wildcard) {
            v.push(n.to_string());
        }
        v
    } else {
        config.bind.clone()
    };
    ips.dedup();
    ips.iter().map(|b| parse_bind(b, config.port)).collect()
}

/// A `bind` entry: an IP (on the `port`), or `IP:PORT` for a listener on a port of its own —
/// containers can only use port 53, which the loopback listener need not take.
pub fn parse_bind(entry: &str, port: u16) -> Result<SocketAddr, DnsError> {
    if let Ok(a) = entry.parse::<SocketAddr>() {
        return Ok(a);
    }
    entry
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|_| {
            DnsError::Config(format!(
                "bind address {entry:?} is not an IP address or IP:port"
            ))
        })
}

/// Builds the handler for `config` over `source`.
pub fn handler<C: CatalogSource>(
    config: &DnsConfig,
    datacenter: &str,
    source: C,
) -> Result<DnsHandler<C>, DnsError> {
    let zone = Zone::new(&config.domain, datacenter, config.ttl).map_err(DnsError::Config)?;
    let recursors = config
        .recursors
        .iter()
        .map(|r| parse_recursor(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DnsError::Config)?;
    Ok(DnsHandler::new(
        source,
        zone,
        config.udp_answer_limit,
        recursors,
    ))
}

impl<C> std::fmt::Debug for DnsHandler<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsHandler")
            .field("zone", &self.zone.domain.to_string())
            .field("recursors", &self.recursors)
            .finish()
    }
}

#[cfg(test)]
mod tests;
