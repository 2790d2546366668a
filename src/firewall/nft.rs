//! nftables text: the batches remod feeds to `nft -f -` and the reading of
//! `nft -j list table` output. Pure functions, so every byte remod sends to
//! the kernel is testable without a kernel.
//!
//! Layout (family `inet`, one table remod owns, see docs/firewall.md):
//! per profile and address family a set `g_NAME_v4` / `g_NAME_v6` of
//! `addr . inet_proto . inet_service` with `flags timeout` for its ports,
//! and a map `f_NAME_v4` / `f_NAME_v6` from the same key to the LAN
//! `addr . inet_service` for its forwards. A grant is one element per port
//! (or forward), all with the same timeout, so the kernel expires it.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::Value;

use super::config::{FirewallConfig, Profile};
use super::FwError;

/// The name of a profile's port set for a family.
pub(crate) fn set_name(profile: &str, v6: bool) -> String {
    format!("g_{profile}_{}", fam(v6))
}

/// The name of a profile's forward map for a family.
pub(crate) fn map_name(profile: &str, v6: bool) -> String {
    format!("f_{profile}_{}", fam(v6))
}

fn fam(v6: bool) -> &'static str {
    if v6 {
        "v6"
    } else {
        "v4"
    }
}

fn addr_type(v6: bool) -> &'static str {
    if v6 {
        "ipv6_addr"
    } else {
        "ipv4_addr"
    }
}

fn saddr(v6: bool) -> &'static str {
    if v6 {
        "ip6 saddr"
    } else {
        "ip saddr"
    }
}

/// The table's structure: created if missing, sets and maps left as they
/// are (so live grants survive), chains rewritten from the configuration in
/// the same atomic batch. Idempotent, so every mutating batch starts with it.
pub(crate) fn structure(cfg: &FirewallConfig) -> String {
    let t = &cfg.table;
    let mut b = String::new();
    let n = u64::from(cfg.max_grants);
    let _ = writeln!(b, "add table inet {t}");
    // Sizes bound the kernel's memory even if remod's own checks were
    // bypassed; one grant's worth of headroom lets a refresh (add, delete,
    // add in one transaction) succeed at the limit.
    let ledger_size = (n + 1) * (cfg.profiles.len().max(1) as u64) * 2;
    for v6 in [false, true] {
        let _ = writeln!(
            b,
            "add set inet {t} {} {{ type {} . mark . mark; flags timeout; size {ledger_size}; }}",
            ledger_name(v6),
            addr_type(v6)
        );
    }
    for p in cfg.profiles.values() {
        for v6 in [false, true] {
            if !p.ports.is_empty() {
                let _ = writeln!(
                    b,
                    "add set inet {t} {} {{ type {} . inet_proto . inet_service; flags timeout; size {}; }}",
                    set_name(&p.name, v6),
                    addr_type(v6),
                    (n + 1) * p.ports.len() as u64
                );
            }
            let fwds = p.forwards_for(v6).count() as u64;
            if fwds > 0 {
                let _ = writeln!(
                    b,
                    "add map inet {t} {} {{ type {a} . inet_proto . inet_service : {a} . inet_service; flags timeout; size {s}; }}",
                    map_name(&p.name, v6),
                    a = addr_type(v6),
                    s = (n + 1) * fwds
                );
                let _ = writeln!(
                    b,
                    "add set inet {t} {} {{ type {a} . inet_proto . {a} . inet_service; flags timeout; size {s}; }}",
                    dnat_set_name(&p.name, v6),
                    a = addr_type(v6),
                    s = (n + 1) * fwds
                );
            }
        }
    }
    let _ = writeln!(
        b,
        "add chain inet {t} input {{ type filter hook input priority -10; policy accept; }}"
    );
    let _ = writeln!(
        b,
        "add chain inet {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}"
    );
    let _ = writeln!(
        b,
        "add chain inet {t} forward {{ type filter hook forward priority -10; policy accept; }}"
    );
    for c in ["input", "prerouting", "forward"] {
        let _ = writeln!(b, "flush chain inet {t} {c}");
    }
    let guarded = cfg.guarded();
    // This host's own connections (health checks) pass: loopback
    // addresses can never be granted, so a guard there only blocks them.
    let local = cfg.loopback_open();
    if !local.is_empty() {
        let _ = writeln!(
            b,
            "add rule inet {t} input iif lo meta l4proto . th dport {{ {} }} accept",
            port_list(&local)
        );
    }
    // Established TCP outlives its grant only for profiles that say so;
    // everything else is checked against the grant sets packet by packet,
    // so it ends with the grant, in the kernel, with or without remod.
    let kept: Vec<u16> = {
        let mut v: Vec<u16> = cfg
            .profiles
            .values()
            .filter(|p| p.keep_established)
            .flat_map(|p| p.ports.iter())
            .filter(|p| p.proto == super::config::Proto::Tcp)
            .map(|p| p.port)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    if !kept.is_empty() {
        let _ = writeln!(
            b,
            "add rule inet {t} input meta l4proto tcp th dport {{ {} }} ct state established accept",
            join(kept.iter())
        );
    }
    for p in cfg.profiles.values() {
        if p.ports.is_empty() {
            continue;
        }
        for v6 in [false, true] {
            let _ = writeln!(
                b,
                "add rule inet {t} input {} . meta l4proto . th dport @{} accept",
                saddr(v6),
                set_name(&p.name, v6)
            );
        }
    }
    if !guarded.is_empty() {
        let _ = writeln!(
            b,
            "add rule inet {t} input meta l4proto . th dport {{ {} }} drop",
            port_list(&guarded)
        );
    }
    for v6 in [false, true] {
        let ip = if v6 { "ip6" } else { "ip" };
        let target = |f: &super::config::Forward| {
            format!("{} . {} . {}", f.to.ip(), f.public.proto, f.to.port())
        };
        let mut all = Vec::new();
        let mut guard = Vec::new();
        for p in cfg.profiles.values() {
            if p.forwards_for(v6).next().is_none() {
                continue;
            }
            let _ = writeln!(
                b,
                // Only connections addressed to this host: a granted
                // client's traffic routed through it to other hosts is
                // not rewritten.
                "add rule inet {t} prerouting fib daddr type local meta l4proto {{ tcp, udp }} dnat {ip} to {} . meta l4proto . th dport map @{}",
                saddr(v6),
                map_name(&p.name, v6)
            );
            let targets: Vec<String> = p.forwards_for(v6).map(target).collect();
            let kept: Vec<String> = p
                .forwards_for(v6)
                .filter(|f| p.keep_established && f.public.proto == super::config::Proto::Tcp)
                .map(target)
                .collect();
            if !kept.is_empty() {
                let _ = writeln!(
                    b,
                    "add rule inet {t} forward ct status dnat ct state established {ip} daddr . meta l4proto . th dport {{ {} }} accept",
                    kept.join(", ")
                );
            }
            let _ = writeln!(
                b,
                "add rule inet {t} forward ct status dnat {} . meta l4proto . {ip} daddr . th dport @{} accept",
                saddr(v6),
                dnat_set_name(&p.name, v6)
            );
            if p.guard_forward {
                guard.extend(targets.iter().cloned());
            }
            all.extend(targets);
        }
        if !all.is_empty() {
            // A translated connection whose grant ended (expiry or close).
            let _ = writeln!(
                b,
                "add rule inet {t} forward ct status dnat {ip} daddr . meta l4proto . th dport {{ {} }} drop",
                all.join(", ")
            );
        }
        if !guard.is_empty() {
            // guard_forward: the LAN target, routed to directly.
            let _ = writeln!(
                b,
                "add rule inet {t} forward {ip} daddr . meta l4proto . th dport {{ {} }} drop",
                guard.join(", ")
            );
        }
    }
    b
}

fn join<T: std::fmt::Display>(v: impl Iterator<Item = T>) -> String {
    v.map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

/// The name of a profile's translated-connection set for a family
/// (client . proto . LAN address . LAN port), checked in the forward hook
/// so a forwarded connection ends with its grant.
pub(crate) fn dnat_set_name(profile: &str, v6: bool) -> String {
    format!("d_{profile}_{}", fam(v6))
}

fn port_list(ports: &[super::config::PortSpec]) -> String {
    let list: Vec<String> = ports
        .iter()
        .map(|g| format!("{} . {}", g.proto, g.port))
        .collect();
    list.join(", ")
}

/// The elements of one grant: `(set or map name, key text, map data text)`.
/// Addresses are printed from parsed `IpAddr`s, never copied from input.
fn elements(p: &Profile, ip: IpAddr) -> Vec<(String, String, Option<String>)> {
    let v6 = ip.is_ipv6();
    let mut v = Vec::new();
    for port in &p.ports {
        v.push((
            set_name(&p.name, v6),
            format!("{ip} . {} . {}", port.proto, port.port),
            None,
        ));
    }
    for f in p.forwards_for(v6) {
        v.push((
            map_name(&p.name, v6),
            format!("{ip} . {} . {}", f.public.proto, f.public.port),
            Some(format!("{} . {}", f.to.ip(), f.to.port())),
        ));
        v.push((
            dnat_set_name(&p.name, v6),
            format!(
                "{ip} . {} . {} . {}",
                f.public.proto,
                f.to.ip(),
                f.to.port()
            ),
            None,
        ));
    }
    v
}

/// The name of the ownership ledger of a family: one element per
/// (address, user, profile) with that user's own timeout, so the grant
/// elements can last as long as the longest of their owners' grants.
pub(crate) fn ledger_name(v6: bool) -> String {
    format!("u_{}", fam(v6))
}

/// A 32-bit tag of a name, for the ledger key (`mark` is the widest plain
/// integer type nft concatenates). The element comment carries the full
/// names, and remod refuses a key whose comment names someone else.
pub(crate) fn tag(name: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(name.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn ledger_key(ip: IpAddr, user: &str, profile: &str) -> String {
    format!("{ip} . {:#010x} . {:#010x}", tag(user), tag(profile))
}

/// Add-delete-add: the portable way to give an element a new timeout
/// (refreshing or shortening) in one atomic transaction.
fn refresh(b: &mut String, t: &str, set: &str, key: &str, secs: u64, comment: &str, data: &str) {
    let _ = writeln!(
        b,
        "add element inet {t} {set} {{ {key} timeout {secs}s{data} }}"
    );
    let _ = writeln!(b, "delete element inet {t} {set} {{ {key} }}");
    let _ = writeln!(
        b,
        "add element inet {t} {set} {{ {key} timeout {secs}s comment \"{comment}\"{data} }}"
    );
}

fn remove(b: &mut String, t: &str, set: &str, key: &str, data: &str) {
    let _ = writeln!(b, "add element inet {t} {set} {{ {key} timeout 1s{data} }}");
    let _ = writeln!(b, "delete element inet {t} {set} {{ {key} }}");
}

/// A batch that records `who`'s grant of the profile for `ip` for `secs`
/// seconds (their ledger entry) and sets the packet-path elements to
/// `packet_secs` (at least `secs`: the longest of the owners' grants, so
/// nobody shortens another user's grant). `who` is a validated user name.
pub(crate) fn open_batch(
    cfg: &FirewallConfig,
    p: &Profile,
    ip: IpAddr,
    secs: u64,
    packet_secs: u64,
    who: &str,
) -> String {
    let t = &cfg.table;
    let mut b = structure(cfg);
    let comment = comment_for(who);
    refresh(
        &mut b,
        t,
        &ledger_name(ip.is_ipv6()),
        &ledger_key(ip, who, &p.name),
        secs,
        &ledger_comment(who, &p.name),
        "",
    );
    for (set, key, data) in elements(p, ip) {
        let data = data.map(|d| format!(" : {d}")).unwrap_or_default();
        refresh(&mut b, t, &set, &key, packet_secs, &comment, &data);
    }
    b
}

/// A batch that removes the ledger entries of `owners` for the profile and
/// `ip`; the packet-path elements then last `remaining` seconds (the other
/// owners' longest grant) or, with `None`, are removed.
pub(crate) fn close_batch(
    cfg: &FirewallConfig,
    p: &Profile,
    ip: IpAddr,
    owners: &[String],
    remaining: Option<u64>,
) -> String {
    let t = &cfg.table;
    let mut b = structure(cfg);
    for who in owners {
        remove(
            &mut b,
            t,
            &ledger_name(ip.is_ipv6()),
            &ledger_key(ip, who, &p.name),
            "",
        );
    }
    for (set, key, data) in elements(p, ip) {
        let data = data.map(|d| format!(" : {d}")).unwrap_or_default();
        match remaining {
            Some(secs) => refresh(&mut b, t, &set, &key, secs, COMMENT_PREFIX, &data),
            None => remove(&mut b, t, &set, &key, &data),
        }
    }
    b
}

/// A batch that removes the table (and with it every grant), even if absent.
pub(crate) fn uninstall_batch(cfg: &FirewallConfig) -> String {
    format!("add table inet {t}\ndelete table inet {t}\n", t = cfg.table)
}

/// Sets and maps in the table that no configured profile uses any more
/// (a removed profile): `install` deletes them after rewriting the chains.
pub(crate) fn stale_sets(cfg: &FirewallConfig, listing: &Value) -> Vec<(String, bool)> {
    let mut wanted = Vec::new();
    for p in cfg.profiles.values() {
        for v6 in [false, true] {
            if !p.ports.is_empty() {
                wanted.push(set_name(&p.name, v6));
            }
            if p.forwards_for(v6).next().is_some() {
                wanted.push(map_name(&p.name, v6));
                wanted.push(dnat_set_name(&p.name, v6));
            }
        }
    }
    let mut stale = Vec::new();
    for item in items(listing) {
        for (kind, is_map) in [("set", false), ("map", true)] {
            if let Some(name) = item
                .get(kind)
                .and_then(|s| s.get("name"))
                .and_then(Value::as_str)
            {
                if !wanted.iter().any(|w| w == name) && parse_set_name(name).is_some() {
                    stale.push((name.to_string(), is_map));
                }
            }
        }
    }
    stale
}

/// The deletion of stale sets, to append to a structure batch.
pub(crate) fn delete_sets(cfg: &FirewallConfig, stale: &[(String, bool)]) -> String {
    let mut b = String::new();
    for (name, is_map) in stale {
        let _ = writeln!(
            b,
            "delete {} inet {} {name}",
            if *is_map { "map" } else { "set" },
            cfg.table
        );
    }
    b
}

const COMMENT_PREFIX: &str = "remo:";

fn comment_for(who: &str) -> String {
    // User names are `[A-Za-z0-9._-]`; filter anyway so nothing can leave the quotes.
    let safe: String = who
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    format!("{COMMENT_PREFIX}{safe}")
}

/// `remo:USER/PROFILE`: the names behind a ledger key.
fn ledger_comment(who: &str, profile: &str) -> String {
    format!("{}/{profile}", comment_for(who))
}

/// One owner's grant, from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned {
    /// The profile.
    pub profile: String,
    /// The granted address.
    pub ip: IpAddr,
    /// The user who opened it.
    pub user: String,
    /// Whole seconds until the kernel removes it.
    pub expires_in: u64,
}

/// Reads the ledger entries out of `nft -j list set inet TABLE u_v4|u_v6`
/// output. An element whose key does not match its comment's names (which
/// remod never writes) is skipped.
pub(crate) fn parse_ledger(listing: &Value, table: &str) -> Vec<Owned> {
    let mut out = Vec::new();
    for item in items(listing) {
        let Some(set) = item.get("set") else {
            continue;
        };
        if set.get("table").and_then(Value::as_str) != Some(table)
            || set.get("family").and_then(Value::as_str) != Some("inet")
        {
            continue;
        }
        let name = set.get("name").and_then(Value::as_str);
        if name != Some("u_v4") && name != Some("u_v6") {
            continue;
        }
        let elems = set.get("elem").and_then(Value::as_array);
        for e in elems.into_iter().flatten() {
            let Some(inner) = e.get("elem") else {
                continue;
            };
            let Some(expires) = inner.get("expires").and_then(Value::as_u64) else {
                continue;
            };
            let Some(concat) = inner
                .get("val")
                .and_then(|v| v.get("concat"))
                .and_then(Value::as_array)
            else {
                continue;
            };
            let ip = concat
                .first()
                .and_then(Value::as_str)
                .and_then(|s| super::addr::parse_ip(s).ok());
            let tags: Vec<u64> = concat.iter().skip(1).filter_map(Value::as_u64).collect();
            let names = inner
                .get("comment")
                .and_then(Value::as_str)
                .and_then(|c| c.strip_prefix(COMMENT_PREFIX))
                .and_then(|c| c.split_once('/'));
            let (Some(ip), Some((user, profile))) = (ip, names) else {
                continue;
            };
            if tags != [u64::from(tag(user)), u64::from(tag(profile))] {
                continue;
            }
            out.push(Owned {
                profile: profile.to_string(),
                ip,
                user: user.to_string(),
                expires_in: expires,
            });
        }
    }
    out
}

/// `g_NAME_v4` → `("NAME", false)`.
fn parse_set_name(name: &str) -> Option<(String, bool)> {
    let rest = name
        .strip_prefix("g_")
        .or_else(|| name.strip_prefix("f_"))
        .or_else(|| name.strip_prefix("d_"))?;
    let (profile, v6) = if let Some(p) = rest.strip_suffix("_v4") {
        (p, false)
    } else {
        (rest.strip_suffix("_v6")?, true)
    };
    super::config::valid_profile_name(profile).then(|| (profile.to_string(), v6))
}

fn items(listing: &Value) -> impl Iterator<Item = &Value> {
    listing
        .get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Parses `nft -j` output.
pub(crate) fn parse_listing(text: &str) -> Result<Value, FwError> {
    serde_json::from_str(text).map_err(|e| FwError::Listing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FirewallConfig {
        #[derive(serde::Deserialize)]
        struct F {
            firewall: FirewallConfig,
        }
        toml::from_str::<F>(
            r#"
            [firewall.profiles.ssh]
            ports = ["22/tcp", "51820/udp"]
            [firewall.profiles.lan]
            forward = [{ port = "2222/tcp", to = "10.0.2.2:22" }, { port = "2223/tcp", to = "[fd00:2::2]:22" }]
            keep_established = true
            guard_forward = true
            guard_loopback = true
            "#,
        )
        .unwrap()
        .firewall
    }

    #[test]
    fn structure_text() {
        let s = structure(&cfg());
        let expected = "\
add table inet remo
add set inet remo u_v4 { type ipv4_addr . mark . mark; flags timeout; size 4100; }
add set inet remo u_v6 { type ipv6_addr . mark . mark; flags timeout; size 4100; }
add map inet remo f_lan_v4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags timeout; size 1025; }
add set inet remo d_lan_v4 { type ipv4_addr . inet_proto . ipv4_addr . inet_service; flags timeout; size 1025; }
add map inet remo f_lan_v6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags timeout; size 1025; }
add set inet remo d_lan_v6 { type ipv6_addr . inet_proto . ipv6_addr . inet_service; flags timeout; size 1025; }
add set inet remo g_ssh_v4 { type ipv4_addr . inet_proto . inet_service; flags timeout; size 2050; }
add set inet remo g_ssh_v6 { type ipv6_addr . inet_proto . inet_service; flags timeout; size 2050; }
add chain inet remo input { type filter hook input priority -10; policy accept; }
add chain inet remo prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain inet remo forward { type filter hook forward priority -10; policy accept; }
flush chain inet remo input
flush chain inet remo prerouting
flush chain inet remo forward
add rule inet remo input iif lo meta l4proto . th dport { tcp . 22, udp . 51820 } accept
add rule inet remo input ip saddr . meta l4proto . th dport @g_ssh_v4 accept
add rule inet remo input ip6 saddr . meta l4proto . th dport @g_ssh_v6 accept
add rule inet remo input meta l4proto . th dport { tcp . 22, tcp . 2222, tcp . 2223, udp . 51820 } drop
add rule inet remo prerouting fib daddr type local meta l4proto { tcp, udp } dnat ip to ip saddr . meta l4proto . th dport map @f_lan_v4
add rule inet remo forward ct status dnat ct state established ip daddr . meta l4proto . th dport { 10.0.2.2 . tcp . 22 } accept
add rule inet remo forward ct status dnat ip saddr . meta l4proto . ip daddr . th dport @d_lan_v4 accept
add rule inet remo forward ct status dnat ip daddr . meta l4proto . th dport { 10.0.2.2 . tcp . 22 } drop
add rule inet remo forward ip daddr . meta l4proto . th dport { 10.0.2.2 . tcp . 22 } drop
add rule inet remo prerouting fib daddr type local meta l4proto { tcp, udp } dnat ip6 to ip6 saddr . meta l4proto . th dport map @f_lan_v6
add rule inet remo forward ct status dnat ct state established ip6 daddr . meta l4proto . th dport { fd00:2::2 . tcp . 22 } accept
add rule inet remo forward ct status dnat ip6 saddr . meta l4proto . ip6 daddr . th dport @d_lan_v6 accept
add rule inet remo forward ct status dnat ip6 daddr . meta l4proto . th dport { fd00:2::2 . tcp . 22 } drop
add rule inet remo forward ip6 daddr . meta l4proto . th dport { fd00:2::2 . tcp . 22 } drop
";
        assert_eq!(s, expected);
    }

    #[test]
    fn open_and_close_text() {
        let c = cfg();
        let ip: IpAddr = "2001:DB8::1".parse().unwrap();
        let b = open_batch(&c, &c.profiles["ssh"], ip, 120, 300, "alice");
        let tail: Vec<&str> = b.lines().skip(structure(&c).lines().count()).collect();
        let (ta, tp) = (tag("alice"), tag("ssh"));
        assert_eq!(
            tail[..3],
            [
                format!("add element inet remo u_v6 {{ 2001:db8::1 . {ta:#010x} . {tp:#010x} timeout 120s }}"),
                format!("delete element inet remo u_v6 {{ 2001:db8::1 . {ta:#010x} . {tp:#010x} }}"),
                format!("add element inet remo u_v6 {{ 2001:db8::1 . {ta:#010x} . {tp:#010x} timeout 120s comment \"remo:alice/ssh\" }}"),
            ]
        );
        assert_eq!(
            tail[3..],
            [
                "add element inet remo g_ssh_v6 { 2001:db8::1 . tcp . 22 timeout 300s }",
                "delete element inet remo g_ssh_v6 { 2001:db8::1 . tcp . 22 }",
                "add element inet remo g_ssh_v6 { 2001:db8::1 . tcp . 22 timeout 300s comment \"remo:alice\" }",
                "add element inet remo g_ssh_v6 { 2001:db8::1 . udp . 51820 timeout 300s }",
                "delete element inet remo g_ssh_v6 { 2001:db8::1 . udp . 51820 }",
                "add element inet remo g_ssh_v6 { 2001:db8::1 . udp . 51820 timeout 300s comment \"remo:alice\" }",
            ]
        );
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let b = close_batch(&c, &c.profiles["lan"], ip, &["bob".into()], None);
        assert!(b.ends_with(
            "add element inet remo f_lan_v4 { 10.0.0.9 . tcp . 2222 timeout 1s : 10.0.2.2 . 22 }\n\
             delete element inet remo f_lan_v4 { 10.0.0.9 . tcp . 2222 }\n\
             add element inet remo d_lan_v4 { 10.0.0.9 . tcp . 10.0.2.2 . 22 timeout 1s }\n\
             delete element inet remo d_lan_v4 { 10.0.0.9 . tcp . 10.0.2.2 . 22 }\n"
        ));
        // Another owner remains: the packet-path elements get their time.
        let b = close_batch(&c, &c.profiles["lan"], ip, &["bob".into()], Some(40));
        assert!(b.contains("add element inet remo f_lan_v4 { 10.0.0.9 . tcp . 2222 timeout 40s comment \"remo:\" : 10.0.2.2 . 22 }\n"), "{b}");
        assert_eq!(comment_for("a\"b;c"), "remo:abc");
    }

    #[test]
    fn ledger_from_json() {
        let (ta, tp) = (u64::from(tag("alice")), u64::from(tag("ssh")));
        let j = serde_json::json!({"nftables": [
            {"set": {"family": "inet", "name": "u_v4", "table": "remo",
                "elem": [
                    {"elem": {"val": {"concat": ["10.0.0.1", ta, tp]}, "expires": 100, "comment": "remo:alice/ssh"}},
                    // a key that does not match its comment is not believed
                    {"elem": {"val": {"concat": ["10.0.0.2", ta, tp]}, "expires": 100, "comment": "remo:bob/ssh"}},
                    {"elem": {"val": {"concat": ["10.0.0.3", ta, tp]}, "expires": 100}}
                ]}},
            {"set": {"family": "inet", "name": "u_v4", "table": "other",
                "elem": [{"elem": {"val": {"concat": ["10.0.0.1", ta, tp]}, "expires": 5, "comment": "remo:alice/ssh"}}]}}
        ]});
        assert_eq!(
            parse_ledger(&j, "remo"),
            [Owned {
                profile: "ssh".into(),
                ip: "10.0.0.1".parse().unwrap(),
                user: "alice".into(),
                expires_in: 100
            }]
        );
    }
}
