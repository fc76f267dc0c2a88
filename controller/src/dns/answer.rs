//! DNS answers from the service catalog, as Consul's DNS interface gives them — a pure function
//! of the catalog, the question and a rotation offset, so every rule is unit-tested without a
//! socket:
//!
//! - `NAME.service[.DC].consul` and `TAG.NAME.service[.DC].consul` (and RFC 2782's
//!   `_NAME._TAG.service…`, where `_tcp`/`_udp` mean any tag): A/AAAA records of the healthy
//!   instances' addresses, or SRV records whose target is `<hex ip>.addr.<dc>.consul` with the
//!   address as an additional record, as Consul does for service addresses;
//! - `<hex ip>.addr[.DC].consul`: that address;
//! - a name under the domain that matches nothing, or a service with no healthy instance:
//!   NXDOMAIN, with the zone's SOA for negative caching.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::services::Catalog;
use crate::structs::ServiceRegistration;

/// What the DNS server is authoritative for.
#[derive(Debug, Clone)]
pub struct Zone {
    /// `consul.` by default, like Consul's `domain`.
    pub domain: Name,
    /// The datacenter a name without one means (the agent's).
    pub datacenter: String,
    /// TTL of service and address records; 0 by default, like Consul.
    pub ttl: u32,
}

impl Zone {
    pub fn new(domain: &str, datacenter: &str, ttl: u32) -> Result<Zone, String> {
        let mut domain = Name::from_str(domain)
            .map_err(|e| format!("dns domain {domain:?} is not a domain name: {e}"))?;
        domain.set_fqdn(true);
        Ok(Zone {
            domain: domain.to_lowercase(),
            datacenter: datacenter.to_ascii_lowercase(),
            ttl,
        })
    }

    /// The zone's SOA, put in the authority section of negative answers.
    pub fn soa(&self, serial: u64) -> Record {
        let ns = Name::from_ascii("ns")
            .and_then(|n| n.append_domain(&self.domain))
            .unwrap_or_else(|_| self.domain.clone());
        let hostmaster = Name::from_ascii("hostmaster")
            .and_then(|n| n.append_domain(&self.domain))
            .unwrap_or_else(|_| self.domain.clone());
        Record::from_rdata(
            self.domain.clone(),
            0,
            RData::SOA(SOA::new(ns, hostmaster, serial as u32, 3600, 600, 86400, 0)),
        )
    }
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// The name exists but has no record of the asked type (NOERROR, empty).
    NoData,
    NxDomain,
    /// Not under the zone: refused, or forwarded to the recursors.
    NotInZone,
}

/// What a name under the zone asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    Service {
        name: String,
        tag: Option<String>,
        datacenter: String,
    },
    Addr(IpAddr),
}

fn parse(zone: &Zone, qname: &Name) -> Option<Option<Lookup>> {
    let lower = qname.to_lowercase();
    if !zone.domain.zone_of(&lower) {
        return None;
    }
    let labels: Vec<String> = lower
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let rest = &labels[..labels.len() - zone.domain.num_labels() as usize];
    let kind_at = |kind: &str| -> Option<(usize, String)> {
        match rest {
            [.., k] if k == kind => Some((rest.len() - 1, zone.datacenter.clone())),
            [.., k, dc] if k == kind => Some((rest.len() - 2, dc.clone())),
            _ => None,
        }
    };
    if let Some((at, datacenter)) = kind_at("service") {
        let (name, tag) = match &rest[..at] {
            [name] => (name.clone(), None),
            [a, b] if a.starts_with('_') && b.starts_with('_') => {
                let tag = &b[1..];
                let tag = (!matches!(tag, "tcp" | "udp")).then(|| tag.to_string());
                (a[1..].to_string(), tag)
            }
            [tag, name] => (name.clone(), Some(tag.clone())),
            _ => return Some(None),
        };
        return Some(Some(Lookup::Service {
            name,
            tag,
            datacenter,
        }));
    }
    if let Some((at, _)) = kind_at("addr") {
        return Some(match &rest[..at] {
            [hex] => parse_hex_ip(hex).map(Lookup::Addr),
            _ => None,
        });
    }
    Some(None)
}

fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    match hex.len() {
        8 => u32::from_str_radix(hex, 16)
            .ok()
            .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        32 => u128::from_str_radix(hex, 16)
            .ok()
            .map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        _ => None,
    }
}

/// `<hex>.addr.<dc>.<domain>`: how Consul names a service address in an SRV target.
pub fn addr_name(zone: &Zone, ip: IpAddr, datacenter: &str) -> Option<Name> {
    let hex = match ip {
        IpAddr::V4(v4) => format!("{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => format!("{:032x}", u128::from(v6)),
    };
    Name::from_ascii(format!("{hex}.addr.{datacenter}"))
        .ok()?
        .append_domain(&zone.domain)
        .ok()
}

fn ip_record(name: Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(name, ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(name, ttl, RData::AAAA(AAAA(v6))),
    }
}

fn wants(qtype: RecordType, ip: IpAddr) -> bool {
    match qtype {
        RecordType::A => ip.is_ipv4(),
        RecordType::AAAA => ip.is_ipv6(),
        RecordType::ANY => true,
        _ => false,
    }
}

/// Answers `qname`/`qtype` from `catalog`: healthy instances only, rotated by `start` (so
/// clients spread over instances), at most `limit` of them.
pub fn answer(
    catalog: &Catalog,
    zone: &Zone,
    qname: &Name,
    qtype: RecordType,
    start: usize,
    limit: usize,
) -> Outcome {
    let lookup = match parse(zone, qname) {
        None => return Outcome::NotInZone,
        Some(None) => return Outcome::NxDomain,
        Some(Some(l)) => l,
    };
    let ttl = zone.ttl;
    let (name, tag, datacenter) = match lookup {
        Lookup::Addr(ip) => {
            return if wants(qtype, ip) {
                Outcome::Records {
                    answers: vec![ip_record(qname.clone(), ttl, ip)],
                    additionals: vec![],
                }
            } else {
                Outcome::NoData
            };
        }
        Lookup::Service {
            name,
            tag,
            datacenter,
        } => (name, tag, datacenter),
    };
    let indexes = catalog.healthy_indexes(&name, &datacenter);
    let tagged: Vec<usize>;
    let healthy: &[usize] = match &tag {
        None => indexes,
        Some(t) => {
            tagged = indexes
                .iter()
                .copied()
                .filter(|i| {
                    catalog.registrations[*i]
                        .tags
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(t))
                })
                .collect();
            &tagged
        }
    };
    if healthy.is_empty() {
        return Outcome::NxDomain;
    }
    let n = healthy.len();
    let picked = (0..n.min(limit.max(1)))
        .map(|i| -> &ServiceRegistration { &catalog.registrations[healthy[(start + i) % n]] });
    let mut answers = Vec::new();
    let mut additionals = Vec::new();
    match qtype {
        RecordType::SRV => {
            for r in picked {
                let target = match IpAddr::from_str(&r.address) {
                    Ok(ip) => {
                        let Some(target) = addr_name(zone, ip, &r.datacenter.to_ascii_lowercase())
                        else {
                            continue;
                        };
                        additionals.push(ip_record(target.clone(), ttl, ip));
                        target
                    }
                    // A hostname address is its own target, as in Consul.
                    Err(_) => match Name::from_str(&r.address) {
                        Ok(mut host) => {
                            host.set_fqdn(true);
                            host
                        }
                        Err(_) => continue,
                    },
                };
                answers.push(Record::from_rdata(
                    qname.clone(),
                    ttl,
                    RData::SRV(SRV::new(1, 1, r.port, target)),
                ));
            }
        }
        RecordType::A | RecordType::AAAA | RecordType::ANY => {
            let mut seen = HashSet::new();
            for r in picked {
                match IpAddr::from_str(&r.address) {
                    Ok(ip) if wants(qtype, ip) => {
                        if seen.insert(ip) {
                            answers.push(ip_record(qname.clone(), ttl, ip));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if let Ok(mut host) = Name::from_str(&r.address) {
                            host.set_fqdn(true);
                            answers.push(Record::from_rdata(
                                qname.clone(),
                                ttl,
                                RData::CNAME(CNAME(host)),
                            ));
                        }
                    }
                }
            }
        }
        _ => {}
    }
    if answers.is_empty() {
        return Outcome::NoData;
    }
    Outcome::Records {
        answers,
        additionals,
    }
}
