//! The client's address: the TCP peer's, or, when the peer is a trusted proxy
//! (`--trusted-proxies`), the address that proxy says it forwarded for.
//!
//! Behind a load balancer every connection comes from the balancer, so per-IP caps, rate
//! limits, logs and the welcome's address would all see one client. A proxy names the real
//! client in `Forwarded: for=…` (RFC 7239) or `X-Forwarded-For`; each proxy on the way appends
//! the address it received from. Anyone can send those headers, so they are read only when the
//! TCP peer is a trusted proxy, and then from the right: the nearest address that is not itself
//! a trusted proxy is the client. A forged entry further left changes nothing.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address block such as `10.0.0.0/8`, `fd00::/8`, or one address (`192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block (e.g. 10.0.0.0/8)"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { net, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Where a client connects from, as far as the server can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: IpAddr,
    /// Known for a direct connection; a proxy's header rarely gives one.
    pub port: Option<u16>,
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => SocketAddr::new(self.ip, port).fmt(f),
            None => self.ip.fmt(f),
        }
    }
}

/// The proxies whose forwarding headers are believed (`--trusted-proxies`; empty: none).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> Self {
        Self(blocks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    /// Whether a connection from `peer` comes through one of the trusted proxies.
    pub fn is_proxy(&self, peer: SocketAddr) -> bool {
        self.trusts(canonical(peer.ip()))
    }

    /// The client's address for a connection from `peer` with these request headers.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientAddr {
        let direct = ClientAddr {
            ip: canonical(peer.ip()),
            port: Some(peer.port()),
        };
        if !self.trusts(direct.ip) {
            return direct;
        }
        let chain = forwarded_for(headers);
        let mut client = direct;
        // From the nearest hop outwards: each trusted hop vouches for the one left of it.
        for entry in chain.iter().rev() {
            let Some(ip) = entry else {
                // "unknown" or an obfuscated name: nothing further can be believed.
                break;
            };
            client = ClientAddr {
                ip: canonical(*ip),
                port: None,
            };
            if !self.trusts(client.ip) {
                break;
            }
        }
        client
    }
}

/// The forwarded-for chain, leftmost (farthest) first: from `Forwarded` if present (RFC 7239),
/// else from `X-Forwarded-For`. An entry that is not an address is `None`.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|line| line.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value))
                })
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
        .map(parse_node)
        .collect()
}

/// `192.0.2.60`, `"192.0.2.60:4711"`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let node = raw.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let inner = node.strip_prefix('[')?;
    inner.split_once(']')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn proxies(blocks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(blocks.iter().map(|b| b.parse().unwrap()).collect())
    }

    const PROXY: &str = "10.0.0.5:40000";

    #[test]
    fn blocks_parse_and_match() {
        let block: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains("10.200.1.1".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        assert!(block.contains("::ffff:10.1.2.3".parse().unwrap()));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        for bad in ["10.0.0.0/33", "proxy.example", "10.0.0.0/x", "::/129", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_from_an_untrusted_peer_change_nothing() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        let got = p.client("198.51.100.1:5000".parse().unwrap(), &h);
        assert_eq!(got.to_string(), "198.51.100.1:5000");
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(PROXY.parse().unwrap(), &h).to_string(),
            "10.0.0.5:40000"
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_forged_entries_to_its_left_are_ignored() {
        let p = proxies(&["10.0.0.0/8"]);
        // The client forged "1.2.3.4"; the proxy appended the address it really saw.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7")]);
        assert_eq!(
            p.client(PROXY.parse().unwrap(), &h).to_string(),
            "203.0.113.7"
        );
        // Two trusted hops: the nearest untrusted entry is the client.
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "10.0.0.9"),
        ]);
        assert_eq!(
            p.client(PROXY.parse().unwrap(), &h).to_string(),
            "203.0.113.7"
        );
        // No header: the proxy itself.
        assert_eq!(
            p.client(PROXY.parse().unwrap(), &HeaderMap::new())
                .to_string(),
            "10.0.0.5:40000"
        );
    }

    #[test]
    fn forwarded_takes_precedence_and_its_forms_parse() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[
            (
                "forwarded",
                r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.9"#,
            ),
            ("x-forwarded-for", "198.51.100.77"),
        ]);
        assert_eq!(
            p.client(PROXY.parse().unwrap(), &h).to_string(),
            "2001:db8::1"
        );
        let h = headers(&[("forwarded", "for=unknown, for=198.51.100.2")]);
        assert_eq!(
            p.client(PROXY.parse().unwrap(), &h).to_string(),
            "198.51.100.2"
        );
    }
}
