//! The host's network fingerprint: its interfaces' IPv4 addresses and the interface holding
//! the default route. An agent bound to `0.0.0.0` cannot register that as its node's address
//! (services, DNS answers and log relays would point nowhere), so, as Nomad does, the node
//! takes the address of `client { network_interface }`, or else of the default-route
//! interface. Reading the host ([`HostNetwork::read`]) is kept apart from choosing
//! ([`HostNetwork::interface_ipv4`], [`HostNetwork::default_ipv4`]) so the choice is tested
//! on a fake route table.

use std::ffi::CStr;
use std::net::Ipv4Addr;

/// Where Linux lists its IPv4 routes.
const ROUTE_TABLE: &str = "/proc/net/route";
/// `RTF_UP` in a route's flags: the route is usable.
const RTF_UP: u32 = 0x1;

/// One network interface and its IPv4 addresses, in the kernel's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ipv4: Vec<Ipv4Addr>,
}

/// What the host's network looks like, as far as choosing a node address needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostNetwork {
    pub interfaces: Vec<Interface>,
    /// The interface of the default route with the lowest metric, if there is one.
    pub default_route: Option<String>,
}

impl HostNetwork {
    /// The host's interfaces (`getifaddrs`) and its default route (`/proc/net/route`; a host
    /// without one, or without that file, has no default route).
    pub fn read() -> std::io::Result<HostNetwork> {
        let routes = std::fs::read_to_string(ROUTE_TABLE).unwrap_or_default();
        Ok(HostNetwork::new(interfaces()?, &routes))
    }

    /// `interfaces` with the default route read from a `/proc/net/route` table.
    pub fn new(interfaces: Vec<Interface>, route_table: &str) -> HostNetwork {
        HostNetwork {
            interfaces,
            default_route: default_route_interface(route_table),
        }
    }

    /// The first IPv4 address of interface `name` (Nomad's `network_interface`), or why not.
    pub fn interface_ipv4(&self, name: &str) -> Result<Ipv4Addr, String> {
        let Some(iface) = self.interfaces.iter().find(|i| i.name == name) else {
            let names: Vec<&str> = self.interfaces.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "no network interface named {name:?} on this host (it has {})",
                names.join(", ")
            ));
        };
        iface
            .ipv4
            .first()
            .copied()
            .ok_or_else(|| format!("network interface {name:?} has no IPv4 address"))
    }

    /// The address a node (or an advertised address) defaults to when the agent binds
    /// `0.0.0.0`: the first IPv4 address of the default-route interface; on a host without a
    /// default route, the first private IPv4 address (Nomad's `GetPrivateIP`).
    pub fn default_ipv4(&self) -> Result<Ipv4Addr, String> {
        if let Some(ip) = self
            .default_route
            .as_deref()
            .and_then(|name| self.interface_ipv4(name).ok())
        {
            return Ok(ip);
        }
        self.interfaces
            .iter()
            .flat_map(|i| i.ipv4.iter())
            .find(|ip| ip.is_private())
            .copied()
            .ok_or_else(|| {
                "the host has no default route and no private IPv4 address to use".to_string()
            })
    }
}

/// The interface of the usable default route (destination and mask 0) with the lowest
/// metric in a `/proc/net/route` table; `None` when there is none.
pub fn default_route_interface(table: &str) -> Option<String> {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, flags, metric, mask) = (
                cols.first()?,
                hex(cols.get(1)?)?,
                hex(cols.get(3)?)?,
                cols.get(6)?.parse::<u32>().ok()?,
                hex(cols.get(7)?)?,
            );
            (dest == 0 && mask == 0 && flags & RTF_UP != 0).then(|| (metric, iface.to_string()))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, iface)| iface)
}

/// Every interface (`getifaddrs` lists each once per address family) with its IPv4
/// addresses; an interface without one is listed with none, so "no such interface" and
/// "no IPv4 address" stay distinct.
fn interfaces() -> std::io::Result<Vec<Interface>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: on success getifaddrs points `head` at a list owned by us until freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out: Vec<Interface> = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed; its name is
        // a NUL-terminated string and its address, when set, is a sockaddr of its family.
        let (name, ip, next) = unsafe {
            let ifa = &*cur;
            let name = CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
            let addr = ifa.ifa_addr;
            let ip =
                (!addr.is_null() && i32::from((*addr).sa_family) == libc::AF_INET).then(|| {
                    let sin = &*(addr as *const libc::sockaddr_in);
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))
                });
            (name, ip, ifa.ifa_next)
        };
        let idx = match out.iter().position(|i| i.name == name) {
            Some(idx) => idx,
            None => {
                out.push(Interface {
                    name,
                    ipv4: Vec::new(),
                });
                out.len() - 1
            }
        };
        out[idx].ipv4.extend(ip);
        cur = next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once; nothing borrows from it now.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host with Docker's bridge, a second NIC and two default routes (the backup one with
    /// a higher metric, one route down).
    const ROUTES: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth1\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0
eth1\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    fn iface(name: &str, ips: &[[u8; 4]]) -> Interface {
        Interface {
            name: name.into(),
            ipv4: ips.iter().map(|o| Ipv4Addr::from(*o)).collect(),
        }
    }

    fn host(routes: &str) -> HostNetwork {
        HostNetwork::new(
            vec![
                iface("lo", &[[127, 0, 0, 1]]),
                iface("eth0", &[[192, 0, 2, 2], [192, 0, 2, 3]]),
                iface("docker0", &[[172, 17, 0, 1]]),
                iface("eth1", &[[192, 168, 1, 7]]),
                iface("wg0", &[]),
            ],
            routes,
        )
    }

    #[test]
    fn the_node_address_comes_from_the_default_route_or_the_named_interface() {
        let h = host(ROUTES);
        assert_eq!(
            h.default_route.as_deref(),
            Some("eth0"),
            "lowest metric, up"
        );
        assert_eq!(h.default_ipv4(), Ok(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(h.interface_ipv4("eth1"), Ok(Ipv4Addr::new(192, 168, 1, 7)));
        assert_eq!(h.interface_ipv4("lo"), Ok(Ipv4Addr::LOCALHOST));
        let err = h.interface_ipv4("eth9").expect_err("no such interface");
        assert!(err.contains("\"eth9\"") && err.contains("eth0"), "{err}");
        let err = h.interface_ipv4("wg0").expect_err("no IPv4");
        assert_eq!(err, "network interface \"wg0\" has no IPv4 address");
    }

    #[test]
    fn without_a_default_route_the_first_private_address_is_used() {
        let header = ROUTES.lines().next().unwrap_or_default();
        let h = host(header);
        assert_eq!(h.default_route, None);
        // 192.0.2.0/24 is documentation space, not private: Docker's bridge comes first.
        assert_eq!(h.default_ipv4(), Ok(Ipv4Addr::new(172, 17, 0, 1)));
        let bare = HostNetwork::new(vec![iface("lo", &[[127, 0, 0, 1]])], "");
        assert!(bare.default_ipv4().is_err());
    }

    #[test]
    fn this_host_lists_its_loopback_interface() {
        let h = HostNetwork::read().expect("getifaddrs");
        assert_eq!(h.interface_ipv4("lo"), Ok(Ipv4Addr::LOCALHOST), "{h:?}");
    }
}
