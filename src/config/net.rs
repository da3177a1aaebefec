//! Network-shaped config values: listen origins, upstream destinations, trusted CIDRs.

use std::fmt;
use std::net::IpAddr;

/// An IP network such as `10.0.0.0/8` or `::1/128`; a bare address means a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{s:?} has a prefix length outside 0..={max}")),
            },
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
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

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `scheme://host[:port]` without path: what the browser sees, or where an upstream lives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    tls: bool,
    host: String,
    port: u16,
}

fn parse_host_port(s: &str) -> Result<HostPort, String> {
    let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("{s:?} must start with http:// or https://"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(format!("{s:?} must not have a path, query or fragment"));
    }
    if rest.contains('@') {
        return Err(format!("{s:?} must not carry credentials"));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{s:?} has an unclosed IPv6 bracket"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| format!("{s:?} has an invalid port"))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("{s:?} has junk after the IPv6 address")),
        };
        (format!("[{h}]"), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| format!("{s:?} has an invalid port"))?,
            ),
            None => (rest.to_string(), default_port),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'));
    if !valid_host {
        return Err(format!("{s:?} has an invalid host name"));
    }
    if port == 0 {
        return Err(format!("{s:?} has port 0"));
    }
    Ok(HostPort {
        tls,
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// The origin the browser sees, e.g. `https://app.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    hp: HostPort,
    /// Serialised once (RFC 6454 form, default port omitted) for cheap comparisons.
    text: String,
}

impl Origin {
    pub fn parse(s: &str) -> Result<Origin, String> {
        let hp = parse_host_port(s)?;
        let default = if hp.tls { 443 } else { 80 };
        let scheme = if hp.tls { "https" } else { "http" };
        let text = if hp.port == default {
            format!("{scheme}://{}", hp.host)
        } else {
            format!("{scheme}://{}:{}", hp.host, hp.port)
        };
        Ok(Origin { hp, text })
    }

    pub fn is_https(&self) -> bool {
        self.hp.tls
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host (lower-case; IPv6 in brackets), without port.
    pub fn host(&self) -> &str {
        &self.hp.host
    }

    /// Browsers treat loopback origins as secure contexts even over plain http.
    pub fn is_loopback(&self) -> bool {
        let host = self.hp.host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One upstream server of a cluster: `http://api-1:8080` or `https://api.internal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub tls: bool,
    /// Host name or IP literal (IPv6 in brackets), lower-case.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as sent in the `Host` header (default port omitted).
    pub authority: String,
    /// The configured text, used as the metric label.
    pub url: String,
}

impl Destination {
    pub fn parse(s: &str) -> Result<Destination, String> {
        let hp = parse_host_port(s)?;
        let default = if hp.tls { 443 } else { 80 };
        let authority = if hp.port == default {
            hp.host.clone()
        } else {
            format!("{}:{}", hp.host, hp.port)
        };
        Ok(Destination {
            tls: hp.tls,
            url: format!("{}://{authority}", if hp.tls { "https" } else { "http" }),
            host: hp.host,
            port: hp.port,
            authority,
        })
    }

    /// The host for name resolution and TLS SNI (IPv6 without brackets).
    pub fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matches_v4_v6_and_mapped_addresses() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("ten").is_err());
    }

    #[test]
    fn destinations_parse_ports_and_reject_paths_and_credentials() {
        let d = Destination::parse("https://API.internal").unwrap();
        assert_eq!(
            (d.tls, d.port, d.authority.as_str()),
            (true, 443, "api.internal")
        );
        let d = Destination::parse("http://127.0.0.1:8081/").unwrap();
        assert_eq!((d.port, d.authority.as_str()), (8081, "127.0.0.1:8081"));
        let d = Destination::parse("http://[::1]:9000").unwrap();
        assert_eq!(d.bare_host(), "::1");
        assert!(Destination::parse("ftp://x").is_err());
        assert!(Destination::parse("http://x/base").is_err());
        assert!(Destination::parse("http://u:p@x").is_err());
        assert!(Destination::parse("http://x:99999").is_err());
    }

    #[test]
    fn origin_omits_default_port() {
        assert_eq!(
            Origin::parse("https://App.example.com:443")
                .unwrap()
                .as_str(),
            "https://app.example.com"
        );
        assert_eq!(
            Origin::parse("http://localhost:8080").unwrap().as_str(),
            "http://localhost:8080"
        );
    }
}
