//! Addresses: parsing and re-printing through `std::net::IpAddr` (nothing
//! from a request is ever pasted into nft text), CIDR ranges, and the
//! caller's address behind trusted proxies.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::FwError;

/// Parses one address strictly and canonicalises it: an IPv4-mapped IPv6
/// address (`::ffff:192.0.2.1`, as dual-stack sockets report IPv4 peers)
/// becomes the IPv4 address, so the same client always gets the same grant.
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, FwError> {
    IpAddr::from_str(s)
        .map(|ip| ip.to_canonical())
        .map_err(|_| FwError::BadAddress(printable(s)))
}

/// Refuses addresses a grant cannot meaningfully be for: unspecified,
/// loopback, multicast, broadcast. A loopback caller usually means remod
/// sits behind a proxy that is not listed in `trusted_proxies`.
pub(crate) fn check_grantable(ip: IpAddr) -> Result<IpAddr, FwError> {
    let bad = match ip {
        IpAddr::V4(v4) => {
            v4.is_unspecified() || v4.is_loopback() || v4.is_multicast() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_loopback() || v6.is_multicast(),
    };
    if bad {
        Err(FwError::NotGrantable(ip))
    } else {
        Ok(ip)
    }
}

/// A short, control-character-free rendering of untrusted text for messages.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// An address range, `ADDR/PREFIX` or a bare address (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` (canonicalised) lies in the range; families never mix.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                mask32(u32::from(net), self.prefix) == mask32(u32::from(a), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                mask128(u128::from(net), self.prefix) == mask128(u128::from(a), self.prefix)
            }
            _ => false,
        }
    }
}

fn mask32(v: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        v & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask128(v: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        v & (u128::MAX << (128 - u32::from(prefix)))
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(a)
            .map_err(|_| format!("{:?} is not an address range", printable(s)))?
            .to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("{:?}: bad prefix length", printable(s))),
            },
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Joins every `X-Forwarded-For` value, in arrival order, into one list:
/// proxies may append their own header line instead of extending the
/// client's, so reading only the first line would believe the client.
/// Values that are not UTF-8 are kept (lossily) so they fail to parse
/// instead of being skipped.
pub(crate) fn join_forwarded_for<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<String> {
    let parts: Vec<String> = values
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(", "))
    }
}

/// The caller's address: `REMOTE_ADDR`, unless that is a trusted proxy and
/// the request carries `X-Forwarded-For`; then the right-most address in the
/// header that is not itself a trusted proxy (each proxy appends the peer it
/// saw, so everything left of the first untrusted hop may be forged).
pub(crate) fn client_ip(
    remote_addr: &str,
    forwarded_for: Option<&str>,
    trusted: &[Cidr],
) -> Result<IpAddr, FwError> {
    let peer = parse_ip(remote_addr.trim())?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let Some(xff) = forwarded_for.filter(|_| is_trusted(peer)) else {
        return Ok(peer);
    };
    let mut last = peer;
    for part in xff.rsplit(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let ip = parse_ip(part).map_err(|_| FwError::BadForwardedFor(printable(xff)))?;
        if !is_trusted(ip) {
            return Ok(ip);
        }
        last = ip;
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_canonicalises() {
        assert_eq!(parse_ip("192.0.2.1").unwrap().to_string(), "192.0.2.1");
        assert_eq!(
            parse_ip("::ffff:192.0.2.1").unwrap().to_string(),
            "192.0.2.1"
        );
        assert_eq!(
            parse_ip("2001:DB8:0:0::1").unwrap().to_string(),
            "2001:db8::1"
        );
        for bad in [
            "",
            " 1.2.3.4",
            "1.2.3",
            "1.2.3.4; flush ruleset",
            "fe80::1%eth0",
            "[::1]",
        ] {
            assert!(parse_ip(bad).is_err(), "{bad}");
        }
        assert!(check_grantable(parse_ip("127.0.0.1").unwrap()).is_err());
        assert!(check_grantable(parse_ip("::").unwrap()).is_err());
        assert!(check_grantable(parse_ip("ff02::1").unwrap()).is_err());
        assert!(check_grantable(parse_ip("255.255.255.255").unwrap()).is_err());
        assert!(check_grantable(parse_ip("10.0.0.1").unwrap()).is_ok());
    }

    #[test]
    fn cidr_matching() {
        assert!(c("203.0.113.0/24").contains(parse_ip("203.0.113.77").unwrap()));
        assert!(!c("203.0.113.0/24").contains(parse_ip("203.0.114.1").unwrap()));
        assert!(c("0.0.0.0/0").contains(parse_ip("8.8.8.8").unwrap()));
        assert!(!c("0.0.0.0/0").contains(parse_ip("::1").unwrap()));
        assert!(c("2001:db8::/32").contains(parse_ip("2001:db8:ffff::1").unwrap()));
        assert!(!c("2001:db8::/32").contains(parse_ip("2001:db9::1").unwrap()));
        assert!(c("10.0.0.1").contains(parse_ip("::ffff:10.0.0.1").unwrap()));
        assert!(!c("10.0.0.1").contains(parse_ip("10.0.0.2").unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0.0/+8".parse::<Cidr>().is_err());
        assert!("::/129".parse::<Cidr>().is_err());
        assert_eq!(c("2001:db8::/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = [c("127.0.0.1"), c("::1"), c("10.9.0.0/16")];
        assert_eq!(
            client_ip("203.0.113.5", Some("198.51.100.1"), &trusted)
                .unwrap()
                .to_string(),
            "203.0.113.5"
        );
        assert_eq!(
            client_ip("127.0.0.1", Some("198.51.100.1"), &trusted)
                .unwrap()
                .to_string(),
            "198.51.100.1"
        );
        // Right-most untrusted: the forged left part is ignored.
        assert_eq!(
            client_ip(
                "127.0.0.1",
                Some("6.6.6.6, 198.51.100.1, 10.9.1.1"),
                &trusted
            )
            .unwrap()
            .to_string(),
            "198.51.100.1"
        );
        assert_eq!(
            client_ip("::1", Some("10.9.0.1"), &trusted)
                .unwrap()
                .to_string(),
            "10.9.0.1"
        );
        assert!(client_ip("127.0.0.1", Some("junk"), &trusted).is_err());
        assert_eq!(
            client_ip("127.0.0.1", None, &[]).unwrap().to_string(),
            "127.0.0.1"
        );
        assert!(client_ip("-", None, &[]).is_err());
    }

    #[test]
    fn forwarded_for_lines_join_in_order() {
        let trusted = [c("127.0.0.1")];
        let lines: [&[u8]; 2] = [b"10.0.0.1", b"10.0.0.2, 127.0.0.1"];
        let x = join_forwarded_for(lines.into_iter()).unwrap();
        assert_eq!(x, "10.0.0.1, 10.0.0.2, 127.0.0.1");
        assert_eq!(
            client_ip("127.0.0.1", Some(&x), &trusted)
                .unwrap()
                .to_string(),
            "10.0.0.2"
        );
        assert!(join_forwarded_for(std::iter::empty()).is_none());
        let bad: [&[u8]; 2] = [b"\xff", b"10.0.0.2"];
        let x = join_forwarded_for(bad.into_iter()).unwrap();
        assert_eq!(
            client_ip("127.0.0.1", Some(&x), &trusted)
                .unwrap()
                .to_string(),
            "10.0.0.2"
        );
    }
}
