//! The `[firewall]` table of `REMO_CONFIG`: profiles (ports to open,
//! DNAT forwards, durations, guests, source ranges), the nft command and
//! the trusted proxies. Everything is validated while the file is parsed,
//! so a bad profile is a configuration error at load, not a runtime surprise.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::Deserialize;

use super::addr::{printable, Cidr};

/// Longest grant any profile may allow (the kernel keeps set timeouts in
/// milliseconds; 30 days keeps far away from any overflow).
pub(crate) const MAX_GRANT_SECS: u64 = 30 * 24 * 3600;
/// Default `default_duration` of a profile.
pub(crate) const DEFAULT_DURATION_SECS: u64 = 3600;
/// Default `max_grants` (addresses per profile and family).
pub(crate) const DEFAULT_MAX_GRANTS: u32 = 1024;
/// Default `max_grants_per_user`.
pub(crate) const DEFAULT_MAX_GRANTS_PER_USER: u32 = 16;
/// Largest `max_grants` (kernel set sizes are this times a profile's ports).
pub(crate) const MAX_MAX_GRANTS: u32 = 65_536;

/// `conntrack` where `nft` is: the last argument's `nft` replaced (so an
/// `ip netns exec NS nft` prefix carries over), else plain `conntrack`.
fn default_conntrack(nft: &[String]) -> Vec<String> {
    let mut v = nft.to_vec();
    if let Some(last) = v.last_mut() {
        if last == "nft" || last.ends_with("/nft") {
            let cut = last.len() - 3;
            last.replace_range(cut.., "conntrack");
            return v;
        }
    }
    vec!["conntrack".to_string()]
}

/// Default table name in family `inet`.
pub(crate) const DEFAULT_TABLE: &str = "remo";

/// A transport protocol nftables can match with `meta l4proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The nft keyword (also the JSON spelling in `nft -j` output).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port and protocol, written `22/tcp` or `51820/udp` in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSpec {
    /// The protocol.
    pub proto: Proto,
    /// The port (1–65535).
    pub port: u16,
}

impl FromStr for PortSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{:?} is not PORT/tcp or PORT/udp (e.g. \"22/tcp\")",
                printable(s)
            )
        };
        let (p, proto) = s.split_once('/').ok_or_else(bad)?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(bad()),
        };
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let port = p.parse::<u16>().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        Ok(PortSpec { proto, port })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

/// A DNAT forward: traffic to the public `port` on this host goes to `to`
/// (the router case: a LAN host behind this machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The public port and protocol.
    pub public: PortSpec,
    /// The LAN host and port.
    pub to: SocketAddr,
    /// The target is a web service: the console links to it on the public
    /// port with this scheme once the grant is in place.
    pub web: Option<WebScheme>,
}

/// How a forward's web service is reached (`web = "http"` / `"https"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebScheme {
    /// `http://`.
    Http,
    /// `https://`.
    Https,
}

impl WebScheme {
    /// The URL scheme.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WebScheme::Http => "http",
            WebScheme::Https => "https",
        }
    }
}

/// One profile: what an `open` of it allows, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The name (`open:NAME` permission, `remo open NAME`).
    pub name: String,
    /// Local ports opened for the granted address.
    pub ports: Vec<PortSpec>,
    /// DNAT forwards enabled for the granted address.
    pub forwards: Vec<Forward>,
    /// Seconds a grant lasts when the request names no duration.
    pub default_duration: u64,
    /// Longest grant, in seconds; longer requests are capped to it.
    pub max_duration: u64,
    /// May a user open it for another address than their own?
    pub guests: bool,
    /// Addresses a grant may be for (empty: any).
    pub allow_from: Vec<Cidr>,
    /// Guard this profile's ports on the loopback interface too (default
    /// false: this host's own connections, e.g. health checks, pass).
    pub guard_loopback: bool,
    /// Established TCP connections outlive the grant that let them in
    /// (default from `[firewall] keep_established`, itself default false).
    /// Never UDP: a flow that keeps sending would keep its access forever.
    pub keep_established: bool,
    /// Also drop traffic routed through this host straight to the forwards'
    /// LAN targets, unless it came through a granted forward.
    pub guard_forward: bool,
}

impl Profile {
    /// Does the profile have anything to open for this address family?
    /// Ports apply to both; a forward only to its target's family (no NAT64).
    pub(crate) fn serves(&self, v6: bool) -> bool {
        !self.ports.is_empty() || self.forwards.iter().any(|f| f.to.is_ipv6() == v6)
    }

    /// The forwards usable from this address family.
    pub(crate) fn forwards_for(&self, v6: bool) -> impl Iterator<Item = &Forward> {
        self.forwards.iter().filter(move |f| f.to.is_ipv6() == v6)
    }

    /// Is `ip` inside the profile's allowed source ranges?
    pub(crate) fn allows_source(&self, ip: IpAddr) -> bool {
        self.allow_from.is_empty() || self.allow_from.iter().any(|c| c.contains(ip))
    }
}

/// The validated `[firewall]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawFirewall")]
pub struct FirewallConfig {
    /// The nft command and any prefix (`["ip","netns","exec","NS","nft"]`
    /// in tests); run directly, never through a shell.
    pub nft: Vec<String>,
    /// The name of remod's table in family `inet`.
    pub table: String,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// The default of the profiles' `keep_established` (false).
    pub keep_established: bool,
    /// Most grants (addresses) per profile and address family; also sizes
    /// the kernel sets, so they are bounded even against remod itself.
    pub max_grants: u32,
    /// Most live grants one user may hold (each profile and address counts).
    pub max_grants_per_user: u32,
    /// The conntrack command (`close` deletes a grant's connections);
    /// default: `conntrack` beside the configured nft.
    pub conntrack: Vec<String>,
    /// The profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

impl FirewallConfig {
    /// The guarded ports this host's own connections (interface `lo`) may
    /// reach without a grant: all, minus those of `guard_loopback` profiles.
    pub(crate) fn loopback_open(&self) -> Vec<PortSpec> {
        let strict: Vec<PortSpec> = self
            .profiles
            .values()
            .filter(|p| p.guard_loopback)
            .flat_map(public_ports)
            .collect();
        self.guarded()
            .into_iter()
            .filter(|g| !strict.contains(g))
            .collect()
    }

    /// Every (protocol, port) the guard rule drops for addresses without a grant:
    /// every profile's ports and every forward's public port.
    pub(crate) fn guarded(&self) -> Vec<PortSpec> {
        let mut v: Vec<PortSpec> = self.profiles.values().flat_map(public_ports).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A profile's guarded (protocol, port)s: its ports and its forwards' public ports.
fn public_ports(p: &Profile) -> impl Iterator<Item = PortSpec> + '_ {
    p.ports
        .iter()
        .copied()
        .chain(p.forwards.iter().map(|f| f.public))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFirewall {
    #[serde(default)]
    nft: Option<Vec<String>>,
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    keep_established: Option<bool>,
    #[serde(default)]
    max_grants: Option<u32>,
    #[serde(default)]
    max_grants_per_user: Option<u32>,
    #[serde(default)]
    conntrack: Option<Vec<String>>,
    #[serde(default)]
    profiles: BTreeMap<String, RawProfile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    forward: Vec<RawForward>,
    #[serde(default)]
    default_duration: Option<DurationValue>,
    #[serde(default)]
    max_duration: Option<DurationValue>,
    #[serde(default)]
    guests: bool,
    #[serde(default)]
    allow_from: Vec<String>,
    #[serde(default)]
    guard_loopback: bool,
    #[serde(default)]
    keep_established: Option<bool>,
    #[serde(default)]
    guard_forward: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    port: String,
    to: String,
    #[serde(default)]
    web: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Secs(u64),
    Text(String),
}

impl DurationValue {
    fn secs(&self, what: &str) -> Result<u64, String> {
        let s = match self {
            DurationValue::Secs(n) => *n,
            DurationValue::Text(t) => parse_duration(t).map_err(|e| format!("{what}: {e}"))?,
        };
        if s == 0 || s > MAX_GRANT_SECS {
            return Err(format!(
                "{what}: must be between 1 second and 30 days, not {s} s"
            ));
        }
        Ok(s)
    }
}

/// A text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration (e.g. 90, 90s, 30m, 2h, 1h30m, 1d)")]
pub(crate) struct BadDuration(String);

/// Parses a duration: whole seconds (`90`) or units `s`, `m`, `h`, `d`,
/// combinable (`1h30m`). Shared by the file and the client's `--for`.
pub(crate) fn parse_duration(s: &str) -> Result<u64, BadDuration> {
    let bad = || BadDuration(printable(s));
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map_err(|_| bad());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// Names usable inside nft identifiers (`g_NAME_v4`) and in permissions.
pub(crate) fn valid_profile_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

fn valid_table_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

impl TryFrom<RawFirewall> for FirewallConfig {
    type Error = String;

    fn try_from(raw: RawFirewall) -> Result<Self, Self::Error> {
        let nft = raw.nft.unwrap_or_else(|| vec!["nft".to_string()]);
        if nft.is_empty() || nft.iter().any(|a| a.is_empty()) {
            return Err("firewall.nft must be a non-empty list of non-empty arguments".into());
        }
        let table = raw.table.unwrap_or_else(|| DEFAULT_TABLE.to_string());
        if !valid_table_name(&table) {
            return Err(format!(
                "firewall.table {:?}: letters, digits and _ only, starting with a letter",
                printable(&table)
            ));
        }
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .map(|s| {
                s.parse::<Cidr>()
                    .map_err(|e| format!("trusted_proxies: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_grants = raw.max_grants.unwrap_or(DEFAULT_MAX_GRANTS);
        let max_grants_per_user = raw
            .max_grants_per_user
            .unwrap_or(DEFAULT_MAX_GRANTS_PER_USER);
        if !(1..=MAX_MAX_GRANTS).contains(&max_grants) || max_grants_per_user == 0 {
            return Err(format!(
                "firewall.max_grants must be 1 to {MAX_MAX_GRANTS} and max_grants_per_user at least 1"
            ));
        }
        let conntrack = match raw.conntrack {
            Some(c) => c,
            None => default_conntrack(&nft),
        };
        if conntrack.is_empty() || conntrack.iter().any(|a| a.is_empty()) {
            return Err(
                "firewall.conntrack must be a non-empty list of non-empty arguments".into(),
            );
        }
        let mut profiles = BTreeMap::new();
        let mut public_ports: BTreeMap<(PortSpec, bool), String> = BTreeMap::new();
        let keep = raw.keep_established.unwrap_or(false);
        for (name, rp) in raw.profiles {
            let p = profile(&name, rp, keep)?;
            for f in &p.forwards {
                let key = (f.public, f.to.is_ipv6());
                if let Some(other) = public_ports.insert(key, name.clone()) {
                    return Err(format!(
                        "profiles {other:?} and {name:?} both forward {} for {}",
                        f.public,
                        if key.1 { "IPv6" } else { "IPv4" }
                    ));
                }
            }
            profiles.insert(name, p);
        }
        Ok(FirewallConfig {
            nft,
            table,
            trusted_proxies,
            keep_established: keep,
            max_grants,
            max_grants_per_user,
            conntrack,
            profiles,
        })
    }
}

fn profile(name: &str, rp: RawProfile, keep: bool) -> Result<Profile, String> {
    if !valid_profile_name(name) {
        return Err(format!(
            "profile {:?}: names are 1-32 letters, digits, _ or -, starting with a letter or digit",
            printable(name)
        ));
    }
    let ctx = |e: String| format!("profile {name:?}: {e}");
    let mut ports = rp
        .ports
        .iter()
        .map(|s| s.parse::<PortSpec>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(ctx)?;
    ports.sort();
    ports.dedup();
    let mut forwards = Vec::new();
    for f in &rp.forward {
        let public = f.port.parse::<PortSpec>().map_err(ctx)?;
        let to = SocketAddr::from_str(&f.to).map_err(|_| {
            ctx(format!(
                "forward to {:?}: not HOST:PORT (IPv6 as [ADDR]:PORT)",
                printable(&f.to)
            ))
        })?;
        let to = SocketAddr::new(to.ip().to_canonical(), to.port());
        if to.port() == 0 || to.ip().is_unspecified() || to.ip().is_multicast() {
            return Err(ctx(format!("forward to {to}: not a usable host and port")));
        }
        let web = match f.web.as_deref() {
            None => None,
            Some("http") => Some(WebScheme::Http),
            Some("https") => Some(WebScheme::Https),
            Some(other) => {
                return Err(ctx(format!(
                    "forward web = {:?}: want \"http\" or \"https\"",
                    printable(other)
                )))
            }
        };
        if web.is_some() && public.proto != Proto::Tcp {
            return Err(ctx(format!("forward {public}: web needs a TCP port")));
        }
        forwards.push(Forward { public, to, web });
    }
    if ports.is_empty() && forwards.is_empty() {
        return Err(ctx("needs ports or a forward".into()));
    }
    let default_duration = match &rp.default_duration {
        Some(d) => d.secs("default_duration").map_err(ctx)?,
        None => DEFAULT_DURATION_SECS,
    };
    let max_duration = match &rp.max_duration {
        Some(d) => d.secs("max_duration").map_err(ctx)?,
        None => default_duration,
    };
    let default_duration = if rp.default_duration.is_none() {
        default_duration.min(max_duration)
    } else {
        default_duration
    };
    if default_duration > max_duration {
        return Err(ctx(format!(
            "default_duration ({default_duration} s) exceeds max_duration ({max_duration} s)"
        )));
    }
    let allow_from = rp
        .allow_from
        .iter()
        .map(|s| s.parse::<Cidr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(ctx)?;
    Ok(Profile {
        name: name.to_string(),
        ports,
        forwards,
        default_duration,
        max_duration,
        guests: rp.guests,
        allow_from,
        guard_loopback: rp.guard_loopback,
        keep_established: rp.keep_established.unwrap_or(keep),
        guard_forward: rp.guard_forward,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        firewall: FirewallConfig,
    }

    fn load(s: &str) -> Result<FirewallConfig, String> {
        toml::from_str::<File>(s)
            .map(|f| f.firewall)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("1d"), Ok(86400));
        for bad in ["", "m", "1x", "1h30", "-1", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(
            "22/tcp".parse::<PortSpec>(),
            Ok(PortSpec {
                proto: Proto::Tcp,
                port: 22
            })
        );
        for bad in [
            "22",
            "0/tcp",
            "65536/udp",
            "22/icmp",
            "+22/tcp",
            "/tcp",
            "tcp/22",
        ] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwards_may_name_a_web_service() {
        let c = load(
            r#"
            [firewall.profiles.intranet]
            forward = [{ port = "8080/tcp", to = "10.0.0.2:80", web = "http" },
                       { port = "8443/tcp", to = "10.0.0.2:443", web = "https" },
                       { port = "2222/tcp", to = "10.0.0.2:22" }]
            "#,
        )
        .unwrap();
        let webs: Vec<_> = c.profiles["intranet"]
            .forwards
            .iter()
            .map(|f| f.web)
            .collect();
        assert_eq!(webs, [Some(WebScheme::Http), Some(WebScheme::Https), None]);
        for bad in [
            r#"forward = [{ port = "8080/tcp", to = "10.0.0.2:80", web = "ftp" }]"#,
            r#"forward = [{ port = "8080/udp", to = "10.0.0.2:80", web = "http" }]"#,
        ] {
            assert!(
                load(&format!("[firewall.profiles.x]\n{bad}\n")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn profiles_parse_and_validate() {
        let c = load(
            r#"
            [firewall]
            trusted_proxies = ["127.0.0.1", "::1"]
            [firewall.profiles.ssh]
            ports = ["22/tcp", "60001/udp"]
            default_duration = "30m"
            max_duration = "2h"
            allow_from = ["203.0.113.0/24", "2001:db8::/32"]
            [firewall.profiles.rdp]
            forward = [{ port = "3389/tcp", to = "192.168.1.10:3389" }]
            guests = true
            "#,
        )
        .unwrap();
        assert_eq!(c.nft, ["nft"]);
        assert_eq!(c.table, "remo");
        let ssh = &c.profiles["ssh"];
        assert_eq!((ssh.default_duration, ssh.max_duration), (1800, 7200));
        assert!(ssh.allows_source("203.0.113.9".parse().unwrap()));
        assert!(!ssh.allows_source("198.51.100.9".parse().unwrap()));
        let rdp = &c.profiles["rdp"];
        assert!(rdp.guests && rdp.serves(false) && !rdp.serves(true));
        assert_eq!((rdp.default_duration, rdp.max_duration), (3600, 3600));
        assert_eq!(c.guarded().len(), 3);
        assert_eq!(c.conntrack, ["conntrack"]);
        assert_eq!((c.max_grants, c.max_grants_per_user), (1024, 16));
        assert!(!ssh.keep_established && !ssh.guard_forward && !ssh.guard_loopback);
        assert_eq!(
            default_conntrack(&[
                "ip".into(),
                "netns".into(),
                "exec".into(),
                "x".into(),
                "/usr/sbin/nft".into()
            ]),
            ["ip", "netns", "exec", "x", "/usr/sbin/conntrack"]
        );
        assert_eq!(default_conntrack(&["mynft".into()]), ["conntrack"]);
        assert!(load("[firewall]\nmax_grants = 0\n").is_err());
        assert!(load("[firewall]\nmax_grants_per_user = 0\n").is_err());

        for bad in [
            "[firewall.profiles.x]\n",
            "[firewall.profiles.x]\nports=[\"22\"]\n",
            "[firewall.profiles.\"a b\"]\nports=[\"22/tcp\"]\n",
            "[firewall.profiles.x]\nports=[\"22/tcp\"]\ndefault_duration=10\nmax_duration=5\n",
            "[firewall.profiles.x]\nports=[\"22/tcp\"]\nmax_duration=0\n",
            "[firewall.profiles.x]\nports=[\"22/tcp\"]\nmax_duration=\"31d\"\n",
            "[firewall.profiles.x]\nports=[\"22/tcp\"]\nallow_from=[\"x\"]\n",
            "[firewall.profiles.x]\nports=[\"22/tcp\"]\nbogus=1\n",
            "[firewall.profiles.x]\nforward=[{port=\"80/tcp\",to=\"host:80\"}]\n",
            "[firewall]\ntable=\"a-b\"\n",
            "[firewall]\nnft=[]\n",
            "[firewall.profiles.a]\nforward=[{port=\"80/tcp\",to=\"10.0.0.1:80\"}]\n\
             [firewall.profiles.b]\nforward=[{port=\"80/tcp\",to=\"10.0.0.2:80\"}]\n",
        ] {
            assert!(load(bad).is_err(), "{bad}");
        }
    }
}
