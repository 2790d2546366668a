//! `@SPEC` → a list of targets, from config.toml `[groups]` and `[hosts]` and
//! an Ansible inventory file (docs/fleet.md, "Choosing hosts").
//!
//! The inventory readers follow Ansible's documented INI and YAML rules for
//! the part remo needs (hosts, groups, children, vars, host ranges, the
//! implicit `all` and `ungrouped`) and refuse, with `file:line`, what they do
//! not support rather than guess. Every reader is total: any input gives a
//! value or an error, never a panic, and sizes are bounded (ranges, host
//! count, nesting).
//!
//! Name lookup, the same for a spec item and a `[groups]` member: a group
//! (config `[groups]` first, then the inventory's, then the built-in `all`),
//! then a host (`[hosts]` alias first, then inventory host). `@name` looks
//! for a group only. Config wins over the inventory so that one machine or
//! group of a shared inventory can be given local settings.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use crate::client::config::{is_url, resolve, Config, EnvValues, HostEntry, Overrides, Target};
use crate::client::error::ClientError;

/// Most hosts one range pattern (`web[0001:9999]`) may expand to.
pub(crate) const MAX_RANGE_HOSTS: usize = 10_000;
/// Most hosts one inventory may hold.
pub(crate) const MAX_HOSTS: usize = 100_000;
/// Deepest nesting of groups (inventory children, config groups) and of
/// YAML collections.
pub(crate) const MAX_DEPTH: usize = 64;
/// Largest inventory file read.
pub(crate) const MAX_FILE_BYTES: u64 = 16 << 20;
/// URL of an inventory host without `remo_server` (see `Config::fleet_url`).
pub(crate) const DEFAULT_FLEET_URL: &str = "https://{host}/remo";

/// Why a spec, a `[groups]` table or an inventory was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FleetError {
    /// The inventory file could not be read.
    #[error("cannot read inventory {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An inventory line or YAML node remo does not accept.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The inventory file (or the label given to `parse`).
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// The spec itself is malformed (empty item, bad name).
    #[error("target @{spec}: {message}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// A name that is no group, alias or inventory host.
    #[error("unknown host or group '{name}'{context}; known groups: {known}")]
    Unknown {
        /// The name.
        name: String,
        /// Where it was used (` (in [groups].web)`), or empty.
        context: String,
        /// The groups that do exist.
        known: String,
    },
    /// config.toml `[groups]` is unusable (cycle, reserved name, too deep).
    #[error("config.toml [groups]: {0}")]
    Groups(String),
    /// The `fleet_url` template (or its result) is not usable.
    #[error("fleet_url: {0}")]
    Template(String),
    /// The spec selects nothing.
    #[error("target @{0} selects no host")]
    Empty(String),
}

/// Which inventory reader to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Ansible INI (`[group]`, `[group:children]`, `[group:vars]`).
    Ini,
    /// Ansible YAML (`all: {hosts, children, vars}`), also JSON.
    Yaml,
}

impl Format {
    /// `.yml`/`.yaml`/`.json` are YAML, `.ini` is INI; otherwise the text
    /// decides: a first line (after blank and `#` lines) that is `---`, a
    /// `{`, or a lone `name:` key is YAML, anything else INI.
    pub(crate) fn detect(path: Option<&Path>, text: &str) -> Format {
        let ext = path
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("yml" | "yaml" | "json") => return Format::Yaml,
            Some("ini") => return Format::Ini,
            _ => {}
        }
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        let Some(first) = first else {
            return Format::Ini;
        };
        let key_only = first
            .split('#')
            .next()
            .map(str::trim_end)
            .and_then(|k| k.strip_suffix(':'))
            .is_some_and(|k| !k.is_empty() && k.chars().all(name_char));
        if first.starts_with("---") || first.starts_with('{') || key_only {
            Format::Yaml
        } else {
            Format::Ini
        }
    }
}

/// The variables remo reads; every other variable is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Vars {
    /// `ansible_host`: the address used for `{host}`.
    ansible_host: Option<String>,
    /// `remo_server`: the host's full base URL (wins over `fleet_url`).
    remo_server: Option<String>,
    /// `remo_user`.
    remo_user: Option<String>,
    /// `remo_key`: identity key file.
    remo_key: Option<String>,
    /// `ansible_group_priority` (groups only): orders groups of equal depth.
    priority: Option<i64>,
}

impl Vars {
    /// Later definitions win, as in Ansible.
    fn overlay(&mut self, other: &Vars) {
        fn take<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
            if b.is_some() {
                a.clone_from(b);
            }
        }
        take(&mut self.ansible_host, &other.ansible_host);
        take(&mut self.remo_server, &other.remo_server);
        take(&mut self.remo_user, &other.remo_user);
        take(&mut self.remo_key, &other.remo_key);
        take(&mut self.priority, &other.priority);
    }

    /// Whether remo reads this variable.
    fn wanted(key: &str) -> bool {
        matches!(
            key,
            "ansible_host" | "remo_server" | "remo_user" | "remo_key" | "ansible_group_priority"
        )
    }

    /// Sets a wanted variable from its raw value; other keys are ignored.
    fn set(&mut self, key: &str, raw: Raw<'_>) -> Result<(), String> {
        if !Self::wanted(key) {
            return Ok(());
        }
        let text = match raw {
            Raw::Str(s) => s,
            Raw::Plain(s) => {
                if key != "ansible_group_priority" && reads_as_non_string(s) {
                    return Err(format!(
                        "{key}: the value '{s}' is not read as a string (number, boolean or null); quote it"
                    ));
                }
                s
            }
            Raw::Other(what) => return Err(format!("{key} must be a string, not {what}")),
        };
        if text.contains("{{") || text.contains("{%") {
            return Err(format!("{key}: Jinja templates are not supported"));
        }
        if text.chars().any(char::is_control) {
            return Err(format!("{key}: control characters are not allowed"));
        }
        match key {
            "ansible_host" => {
                if !valid_address(text) {
                    return Err(format!(
                        "ansible_host '{text}' is not a host name, IPv4 or IPv6 address"
                    ));
                }
                self.ansible_host = Some(text.to_string());
            }
            "remo_server" => {
                if !is_url(text) || text.contains(char::is_whitespace) {
                    return Err(format!(
                        "remo_server '{text}' is not an http:// or https:// URL"
                    ));
                }
                self.remo_server = Some(text.trim_end_matches('/').to_string());
            }
            "remo_user" | "remo_key" => {
                if text.is_empty() || text.trim() != text {
                    return Err(format!("{key} is empty or has blanks at its ends"));
                }
                if key == "remo_user" {
                    self.remo_user = Some(text.to_string());
                } else {
                    self.remo_key = Some(text.to_string());
                }
            }
            _ => {
                let n = text
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| format!("ansible_group_priority '{text}' is not an integer"))?;
                self.priority = Some(n);
            }
        }
        Ok(())
    }
}

/// A variable's value as the file wrote it.
#[derive(Debug, Clone, Copy)]
enum Raw<'a> {
    /// Certainly a string (quoted).
    Str(&'a str),
    /// Unquoted: a string unless it reads as a number, boolean or null.
    Plain(&'a str),
    /// Not a string at all (a list, a mapping, null…).
    Other(&'static str),
}

/// Whether an unquoted value would be read as something else than the same
/// string (Python `literal_eval` for INI, YAML 1.1 for YAML): a number in a
/// form whose text changes (`007`, `1.50`, `0x10`, `1_000`, `+5`), a boolean
/// or a null. Plain decimal integers (`0`, `42`) read back as themselves and
/// are accepted. Deliberately a little wider than either language.
fn reads_as_non_string(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "" | "~"
            | "null"
            | "none"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | ".inf"
            | "+.inf"
            | "-.inf"
            | ".nan"
    ) {
        return true;
    }
    let b = s.as_bytes();
    let canonical_int = s == "0"
        || (b.first().is_some_and(|c| (b'1'..=b'9').contains(c))
            && b.iter().all(u8::is_ascii_digit));
    if canonical_int {
        return false;
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let bb = body.as_bytes();
    let radix = bb.len() > 2
        && bb.first() == Some(&b'0')
        && matches!(bb.get(1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B'))
        && bb
            .iter()
            .skip(2)
            .all(|c| c.is_ascii_hexdigit() || *c == b'_');
    let decimal = bb.first().is_some_and(|c| c.is_ascii_digit() || *c == b'.')
        && bb
            .iter()
            .all(|c| c.is_ascii_digit() || b"_.:eEjJ+-".contains(c))
        && bb.iter().filter(|c| **c == b'.').count() <= 1
        && bb.iter().any(u8::is_ascii_digit);
    radix || decimal
}

/// Characters of a host or group name: letters, digits, `.`, `-`, `_`.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// A usable host or group name.
fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.chars().all(name_char)
}

/// A host name, IPv4 or IPv6 address (for `ansible_host`).
fn valid_address(s: &str) -> bool {
    valid_name(s) || s.parse::<std::net::Ipv6Addr>().is_ok()
}

/// One host of the inventory.
#[derive(Debug, Clone)]
struct Host {
    /// Inventory name (the output label).
    name: String,
    /// Groups that list it directly.
    groups: Vec<usize>,
    /// Its own variables (host lines, `hosts:` entries).
    own: Vars,
    /// Group variables then its own, in Ansible's order.
    vars: Vars,
}

/// One group of the inventory.
#[derive(Debug, Clone)]
struct Group {
    /// Group name.
    name: String,
    /// Direct member hosts, in the order the file names them.
    hosts: Vec<usize>,
    /// Child groups, in order.
    children: Vec<usize>,
    /// Parent groups.
    parents: Vec<usize>,
    /// Group variables.
    vars: Vars,
    /// Longest path from `all` (Ansible's group depth).
    depth: usize,
    /// Line of the `[name]`/`[name:children]` section or YAML key; `None`
    /// while only referenced (INI `[x:vars]`, `[p:children]` member).
    declared: Option<usize>,
}

/// A parsed Ansible inventory: hosts, groups, and the variables remo reads.
#[derive(Debug, Clone)]
pub(crate) struct Inventory {
    /// The file name used in messages.
    source: String,
    hosts: Vec<Host>,
    host_ix: HashMap<String, usize>,
    groups: Vec<Group>,
    group_ix: HashMap<String, usize>,
    /// A reference to a group that must be declared somewhere, with its
    /// line and the message if it is not (INI only).
    pending: Vec<(usize, usize, String)>,
    /// Child edges with the line that made them (for cycle messages).
    edge_lines: HashMap<(usize, usize), usize>,
}

/// Index of `all` in `Inventory::groups`.
const ALL: usize = 0;
/// Index of `ungrouped`.
const UNGROUPED: usize = 1;

impl Inventory {
    /// Reads and parses an inventory file, choosing the format with
    /// [`Format::detect`].
    pub(crate) fn load(path: &Path) -> Result<Inventory, FleetError> {
        let read_err = |source| FleetError::Read {
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(read_err(std::io::Error::other(format!(
                "larger than {} MiB",
                MAX_FILE_BYTES >> 20
            ))));
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        let format = Format::detect(Some(path), &text);
        Inventory::parse(&text, &path.display().to_string(), format)
    }

    /// The inventory to use: the `--inventory` path if given, else
    /// config.toml's `inventory`, else none.
    pub(crate) fn load_configured(
        flag: Option<&Path>,
        cfg: &Config,
    ) -> Result<Option<Inventory>, FleetError> {
        match flag.map(Path::to_path_buf).or_else(|| cfg.inventory_path()) {
            Some(p) => Inventory::load(&p).map(Some),
            None => Ok(None),
        }
    }

    /// Parses inventory text; `source` names it in error messages.
    pub(crate) fn parse(text: &str, source: &str, format: Format) -> Result<Inventory, FleetError> {
        let mut inv = Inventory {
            source: source.to_string(),
            hosts: Vec::new(),
            host_ix: HashMap::new(),
            groups: Vec::new(),
            group_ix: HashMap::new(),
            pending: Vec::new(),
            edge_lines: HashMap::new(),
        };
        inv.group("all", 0)?;
        inv.group("ungrouped", 0)?;
        inv.groups.iter_mut().for_each(|g| g.declared = Some(0));
        inv.add_child(ALL, UNGROUPED, 0)?;
        match format {
            Format::Ini => inv.read_ini(text)?,
            Format::Yaml => inv.read_yaml(text)?,
        }
        inv.finish()?;
        Ok(inv)
    }

    /// The group names, `all` and `ungrouped` first, then in file order.
    pub(crate) fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.name.as_str())
    }

    /// A `file:line:` error.
    fn err(&self, line: usize, message: impl Into<String>) -> FleetError {
        FleetError::Parse {
            file: self.source.clone(),
            line,
            message: message.into(),
        }
    }

    /// The group of that name, created if new.
    fn group(&mut self, name: &str, line: usize) -> Result<usize, FleetError> {
        if let Some(&i) = self.group_ix.get(name) {
            return Ok(i);
        }
        if !valid_name(name) {
            return Err(self.err(
                line,
                format!(
                    "group name '{name}': only letters, digits, '.', '-' and '_' are supported"
                ),
            ));
        }
        let i = self.groups.len();
        self.groups.push(Group {
            name: name.to_string(),
            hosts: Vec::new(),
            children: Vec::new(),
            parents: Vec::new(),
            vars: Vars::default(),
            depth: 0,
            declared: None,
        });
        self.group_ix.insert(name.to_string(), i);
        Ok(i)
    }

    /// Marks a group declared (INI section, YAML key).
    fn declare(&mut self, g: usize, line: usize) {
        if let Some(grp) = self.groups.get_mut(g) {
            grp.declared.get_or_insert(line);
        }
    }

    /// Makes `child` a child of `parent`.
    fn add_child(&mut self, parent: usize, child: usize, line: usize) -> Result<(), FleetError> {
        if child == ALL {
            return Err(self.err(line, "'all' cannot be a child group"));
        }
        if parent == child {
            let name = self.groups.get(parent).map_or("", |g| g.name.as_str());
            return Err(self.err(line, format!("group '{name}' cannot be its own child")));
        }
        let known = self
            .groups
            .get(parent)
            .is_some_and(|g| g.children.contains(&child));
        if !known {
            if let Some(p) = self.groups.get_mut(parent) {
                p.children.push(child);
            }
            if let Some(c) = self.groups.get_mut(child) {
                c.parents.push(parent);
            }
            self.edge_lines.insert((parent, child), line);
        }
        Ok(())
    }

    /// Adds the hosts of one host pattern to group `g` with their variables.
    fn add_hosts(
        &mut self,
        pattern: &str,
        g: usize,
        vars: &Vars,
        line: usize,
    ) -> Result<(), FleetError> {
        let names = expand_pattern(pattern).map_err(|m| self.err(line, m))?;
        for name in names {
            let h = match self.host_ix.get(&name) {
                Some(&h) => h,
                None => {
                    if self.hosts.len() >= MAX_HOSTS {
                        return Err(self.err(line, format!("more than {MAX_HOSTS} hosts")));
                    }
                    let h = self.hosts.len();
                    self.hosts.push(Host {
                        name: name.clone(),
                        groups: Vec::new(),
                        own: Vars::default(),
                        vars: Vars::default(),
                    });
                    self.host_ix.insert(name, h);
                    h
                }
            };
            let (Some(host), Some(grp)) = (self.hosts.get_mut(h), self.groups.get_mut(g)) else {
                continue;
            };
            host.own.overlay(vars);
            if !host.groups.contains(&g) {
                host.groups.push(g);
                grp.hosts.push(h);
            }
        }
        Ok(())
    }

    /// After reading: undeclared groups, `all`'s children, cycles, depths,
    /// `ungrouped`, and each host's variables in Ansible's order.
    fn finish(&mut self) -> Result<(), FleetError> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_by_key(|p| p.1);
        for (g, line, message) in &pending {
            if self.groups.get(*g).is_some_and(|g| g.declared.is_none()) {
                return Err(self.err(*line, message.clone()));
            }
        }
        // Groups without a parent are children of `all`.
        for g in 0..self.groups.len() {
            let orphan = self
                .groups
                .get(g)
                .is_some_and(|grp| g != ALL && grp.parents.is_empty());
            if orphan {
                self.add_child(ALL, g, 0)?;
            }
        }
        self.depths()?;
        // `ungrouped`: the hosts in no group but `all` and `ungrouped`.
        for h in 0..self.hosts.len() {
            let Some(host) = self.hosts.get_mut(h) else {
                continue;
            };
            let alone = host.groups.iter().all(|&g| g == ALL || g == UNGROUPED);
            let listed = host.groups.contains(&UNGROUPED);
            if alone && !listed {
                host.groups.push(UNGROUPED);
                if let Some(u) = self.groups.get_mut(UNGROUPED) {
                    u.hosts.push(h);
                }
            } else if !alone && listed {
                host.groups.retain(|&g| g != UNGROUPED);
                if let Some(u) = self.groups.get_mut(UNGROUPED) {
                    u.hosts.retain(|&x| x != h);
                }
            }
        }
        // Variables: groups by (depth, priority, name), then the host's own.
        for h in 0..self.hosts.len() {
            let Some(host) = self.hosts.get(h) else {
                continue;
            };
            let mut seen: HashSet<usize> = HashSet::new();
            let mut queue: VecDeque<usize> = host.groups.iter().copied().collect();
            queue.push_back(ALL);
            while let Some(g) = queue.pop_front() {
                if seen.insert(g) {
                    if let Some(grp) = self.groups.get(g) {
                        queue.extend(grp.parents.iter().copied());
                    }
                }
            }
            let mut chain: Vec<&Group> = seen.iter().filter_map(|&g| self.groups.get(g)).collect();
            chain.sort_by(|a, b| {
                (a.depth, a.vars.priority.unwrap_or(1), &a.name).cmp(&(
                    b.depth,
                    b.vars.priority.unwrap_or(1),
                    &b.name,
                ))
            });
            let mut vars = Vars::default();
            for grp in chain {
                vars.overlay(&grp.vars);
            }
            vars.overlay(&host.own);
            if let Some(host) = self.hosts.get_mut(h) {
                host.vars = vars;
            }
        }
        Ok(())
    }

    /// Depth of every group (longest path from `all`), refusing cycles and
    /// nesting deeper than [`MAX_DEPTH`]. Kahn's algorithm: no recursion.
    fn depths(&mut self) -> Result<(), FleetError> {
        let n = self.groups.len();
        let mut indegree: Vec<usize> = self.groups.iter().map(|g| g.parents.len()).collect();
        let mut queue: VecDeque<usize> = (0..n).filter(|&g| indegree.get(g) == Some(&0)).collect();
        let mut done = 0;
        while let Some(g) = queue.pop_front() {
            done += 1;
            let (depth, children) = match self.groups.get(g) {
                Some(grp) => (grp.depth, grp.children.clone()),
                None => continue,
            };
            for c in children {
                if let Some(child) = self.groups.get_mut(c) {
                    child.depth = child.depth.max(depth + 1);
                    if child.depth > MAX_DEPTH {
                        let (name, line) = (child.name.clone(), self.edge_lines.get(&(g, c)));
                        return Err(self.err(
                            line.copied().unwrap_or(0),
                            format!("group '{name}' is nested more than {MAX_DEPTH} deep"),
                        ));
                    }
                }
                if let Some(d) = indegree.get_mut(c) {
                    *d = d.saturating_sub(1);
                    if *d == 0 {
                        queue.push_back(c);
                    }
                }
            }
        }
        if done == n {
            return Ok(());
        }
        // The groups left all sit on or under a cycle: walk children that
        // are left until one repeats, and name that loop.
        let left: Vec<bool> = indegree.iter().map(|&d| d > 0).collect();
        let Some(mut g) = left.iter().position(|&l| l) else {
            return Ok(());
        };
        let mut path: Vec<usize> = Vec::new();
        loop {
            if let Some(at) = path.iter().position(|&p| p == g) {
                let cycle: Vec<usize> = path.get(at..).map(<[usize]>::to_vec).unwrap_or_default();
                let mut names: Vec<&str> = cycle
                    .iter()
                    .filter_map(|&c| self.groups.get(c).map(|x| x.name.as_str()))
                    .collect();
                if let Some(first) = names.first().copied() {
                    names.push(first);
                }
                let line = cycle
                    .last()
                    .and_then(|&last| self.edge_lines.get(&(last, g)))
                    .copied()
                    .unwrap_or(0);
                return Err(self.err(line, format!("group cycle: {}", names.join(" -> "))));
            }
            path.push(g);
            let next = self.groups.get(g).and_then(|grp| {
                grp.children
                    .iter()
                    .copied()
                    .find(|&c| left.get(c) == Some(&true))
            });
            match next {
                Some(c) => g = c,
                None => return Err(self.err(0, "group cycle")),
            }
        }
    }

    /// The hosts of a group and its descendants, breadth first as Ansible
    /// lists them, each once.
    fn group_hosts(&self, g: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut seen_hosts = HashSet::new();
        let mut seen_groups = HashSet::new();
        let mut queue = VecDeque::from([g]);
        while let Some(g) = queue.pop_front() {
            if !seen_groups.insert(g) {
                continue;
            }
            let Some(grp) = self.groups.get(g) else {
                continue;
            };
            for &h in &grp.hosts {
                if seen_hosts.insert(h) {
                    out.push(h);
                }
            }
            queue.extend(grp.children.iter().copied());
        }
        out
    }
}

/// What an INI section holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Hosts,
    Children,
    Vars,
}

impl Inventory {
    /// Ansible's INI inventory: lines before any section are `ungrouped`
    /// hosts; `[g]` holds host lines (`pattern key=value …`, split like a
    /// shell line, `#` starts a comment), `[g:children]` group names,
    /// `[g:vars]` one `key=value` per line (the rest of the line is the
    /// value). Lines starting with `#` or `;` are comments.
    fn read_ini(&mut self, text: &str) -> Result<(), FleetError> {
        let mut group = UNGROUPED;
        let mut section = Section::Hosts;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(head) = parse_section_header(line) {
                let (name, tag) = head.map_err(|m| self.err(line_no, m))?;
                section = match tag {
                    None | Some("hosts") => Section::Hosts,
                    Some("children") => Section::Children,
                    Some("vars") => Section::Vars,
                    Some(other) => {
                        return Err(self.err(
                            line_no,
                            format!("section [{name}:{other}] has unknown type '{other}' (hosts, children or vars)"),
                        ))
                    }
                };
                group = self.group(name, line_no)?;
                if section == Section::Vars {
                    self.pending.push((
                        group,
                        line_no,
                        format!("section [{name}:vars] is for a group that is never declared"),
                    ));
                } else {
                    self.declare(group, line_no);
                }
                continue;
            }
            match section {
                Section::Hosts => {
                    let tokens = shlex_split(line)
                        .map_err(|m| self.err(line_no, format!("host line: {m}")))?;
                    let mut tokens = tokens.iter();
                    let Some(pattern) = tokens.next() else {
                        continue;
                    };
                    if pattern == "---" {
                        return Err(self.err(
                            line_no,
                            "'---' starts a YAML document: name the file .yml or .yaml",
                        ));
                    }
                    let mut vars = Vars::default();
                    for t in tokens {
                        let Some((k, v)) = t.split_once('=') else {
                            return Err(self.err(
                                line_no,
                                format!("expected key=value after the host, got '{t}'"),
                            ));
                        };
                        if Vars::wanted(k) {
                            let raw = ini_host_value(v)
                                .map_err(|m| self.err(line_no, format!("{k}: {m}")))?;
                            vars.set(k, raw).map_err(|m| self.err(line_no, m))?;
                        }
                    }
                    self.add_hosts(pattern, group, &vars, line_no)?;
                }
                Section::Vars => {
                    let Some((k, v)) = line.split_once('=') else {
                        return Err(self.err(line_no, format!("expected key=value, got '{line}'")));
                    };
                    let (k, v) = (k.trim(), v.trim());
                    if Vars::wanted(k) {
                        let raw = ini_vars_value(v)
                            .map_err(|m| self.err(line_no, format!("{k}: {m}")))?;
                        let mut vars = self
                            .groups
                            .get(group)
                            .map(|g| g.vars.clone())
                            .unwrap_or_default();
                        vars.set(k, raw).map_err(|m| self.err(line_no, m))?;
                        if let Some(g) = self.groups.get_mut(group) {
                            g.vars = vars;
                        }
                    }
                }
                Section::Children => {
                    let mut parts = line.splitn(2, char::is_whitespace);
                    let name = parts.next().unwrap_or_default();
                    let rest = parts.next().unwrap_or_default().trim_start();
                    if name.contains([':', ']']) || !(rest.is_empty() || rest.starts_with('#')) {
                        return Err(
                            self.err(line_no, format!("expected a group name, got '{line}'"))
                        );
                    }
                    let child = self.group(name, line_no)?;
                    let parent_name = self
                        .groups
                        .get(group)
                        .map(|g| g.name.clone())
                        .unwrap_or_default();
                    self.pending.push((
                        child,
                        line_no,
                        format!("section [{parent_name}:children] includes group '{name}' that is never declared"),
                    ));
                    self.add_child(group, child, line_no)?;
                }
            }
        }
        Ok(())
    }
}

/// `[name]`, `[name:tag]`, with optional blanks and a `#` comment after:
/// `None` if the line is no section header, `Some(Err)` if it looks like one
/// but is malformed (Ansible's "Invalid section entry").
fn parse_section_header(line: &str) -> Option<Result<(&str, Option<&str>), String>> {
    let inner_rest = line.strip_prefix('[')?;
    let malformed = || {
        Some(Err(format!(
            "invalid section '{line}': no spaces or other characters around [name] or [name:type]"
        )))
    };
    let (inner, rest) = inner_rest.split_once(']')?;
    let rest = rest.trim_start();
    let (name, tag) = match inner.split_once(':') {
        Some((n, t)) => (n, Some(t)),
        None => (inner, None),
    };
    let name_ok = !name.is_empty() && !name.contains(char::is_whitespace);
    let tag_ok =
        tag.is_none_or(|t| !t.is_empty() && t.chars().all(|c| c.is_alphanumeric() || c == '_'));
    if !(rest.is_empty() || rest.starts_with('#')) || !name_ok || !tag_ok {
        // Like Ansible: only a line that also ends in ']' is a bad section;
        // anything else (`[::1]:22 x=1`) is left to the host parser.
        return if line.ends_with(']') {
            malformed()
        } else {
            None
        };
    }
    Some(Ok((name, tag)))
}

/// Splits a host line as Python's `shlex.split(line, comments=True)` does
/// (Ansible's reader): blanks separate, `'…'` is literal, `"…"` honours
/// `\"` and `\\`, `\` outside quotes escapes any character, `#` outside
/// quotes ends the line.
fn shlex_split(line: &str) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let mut tok = String::new();
    let mut started = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if started {
                    out.push(std::mem::take(&mut tok));
                    started = false;
                }
            }
            '#' => break,
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => tok.push(c),
                        None => return Err("no closing quotation"),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => tok.push(c),
                            Some(c) => {
                                tok.push('\\');
                                tok.push(c);
                            }
                            None => return Err("no escaped character"),
                        },
                        Some(c) => tok.push(c),
                        None => return Err("no closing quotation"),
                    }
                }
            }
            '\\' => {
                started = true;
                match chars.next() {
                    Some(c) => tok.push(c),
                    None => return Err("no escaped character"),
                }
            }
            c => {
                started = true;
                tok.push(c);
            }
        }
    }
    if started {
        out.push(tok);
    }
    Ok(out)
}

/// A Python string literal at the start of `v` (`'…'` or `"…"`, no
/// backslash escapes): its content and what follows it.
fn python_quoted(v: &str) -> Result<Option<(&str, &str)>, String> {
    let Some(q) = v.chars().next().filter(|c| matches!(c, '\'' | '"')) else {
        return Ok(None);
    };
    let body = v.get(1..).unwrap_or_default();
    let Some(end) = body.find(q) else {
        return Err("unterminated quoted value".into());
    };
    let (inner, rest) = (
        body.get(..end).unwrap_or_default(),
        body.get(end + 1..).unwrap_or_default(),
    );
    if inner.contains('\\') {
        return Err("backslash escapes in quoted values are not supported".into());
    }
    Ok(Some((inner, rest)))
}

/// How Ansible reads a host-line value (after shell-like splitting): a
/// Python literal if it is one, else the string.
fn ini_host_value(v: &str) -> Result<Raw<'_>, String> {
    if let Some((inner, rest)) = python_quoted(v)? {
        if !rest.is_empty() {
            return Err("text after the closing quote is not supported".into());
        }
        return Ok(Raw::Str(inner));
    }
    plain_python(v)
}

/// How Ansible reads a `[g:vars]` value (the whole rest of the line): a
/// Python literal (a trailing `# comment` is then ignored) or else the
/// string, trailing comment included. Unquoted values with blanks are
/// refused, since that comment would become part of the value.
fn ini_vars_value(v: &str) -> Result<Raw<'_>, String> {
    if let Some((inner, rest)) = python_quoted(v)? {
        let rest = rest.trim_start();
        if !(rest.is_empty() || rest.starts_with('#')) {
            return Err("text after the closing quote is not supported".into());
        }
        return Ok(Raw::Str(inner));
    }
    if v.contains(char::is_whitespace) {
        return Err(
            "unquoted value with blanks (Ansible keeps a trailing comment in it): quote the value"
                .into(),
        );
    }
    plain_python(v)
}

/// An unquoted Python-literal-or-string value.
fn plain_python(v: &str) -> Result<Raw<'_>, String> {
    if v.starts_with(['[', '{', '(']) {
        return Ok(Raw::Other("a Python list, dict or tuple"));
    }
    let prefix_len = v.find(['\'', '"']);
    if prefix_len.is_some_and(|n| {
        n <= 2
            && v.get(..n)
                .is_some_and(|p| p.chars().all(|c| c.is_ascii_alphabetic()))
    }) {
        return Err("prefixed Python strings (r'…', b'…') are not supported".into());
    }
    Ok(Raw::Plain(v))
}

/// Expands an Ansible host pattern: `name`, `name:port` (the port is
/// Ansible's and dropped), and ranges `[BEG:END]` or `[BEG:END:STEP]` with
/// numbers (`[01:10]` keeps the width) or single letters (`[a:f]`). Several
/// ranges multiply; at most [`MAX_RANGE_HOSTS`] names.
fn expand_pattern(pattern: &str) -> Result<Vec<String>, String> {
    // A port: the last ':' outside brackets, followed by digits only.
    let mut depth = 0i32;
    let mut colon = None;
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => {
                if colon.is_some() {
                    return Err(format!(
                        "host '{pattern}': IPv6 addresses as host names are not supported (use a name with ansible_host=…)"
                    ));
                }
                colon = Some(i);
            }
            _ => {}
        }
    }
    let name_part = match colon {
        Some(i) => {
            let port = pattern.get(i + 1..).unwrap_or_default();
            if port.is_empty() {
                return Err(format!(
                    "host '{pattern}': a ':' at the end is reserved for a port"
                ));
            }
            if port.len() > 5
                || !port.bytes().all(|b| b.is_ascii_digit())
                || port.parse::<u32>().map_or(true, |p| p > 65_535)
            {
                return Err(format!("host '{pattern}': '{port}' is not a port"));
            }
            pattern.get(..i).unwrap_or_default()
        }
        None => pattern,
    };
    // Split into literal text and ranges.
    let mut parts: Vec<Vec<String>> = Vec::new();
    let mut rest = name_part;
    let mut total: usize = 1;
    while let Some(open) = rest.find('[') {
        let lit = rest.get(..open).unwrap_or_default();
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find(']') else {
            return Err(format!("host '{pattern}': '[' without ']'"));
        };
        let inner = after.get(..close).unwrap_or_default();
        if inner.contains('[') {
            return Err(format!("host '{pattern}': nested '['"));
        }
        let seq = expand_range(inner).map_err(|m| format!("host '{pattern}': {m}"))?;
        total = total
            .checked_mul(seq.len())
            .filter(|&t| t <= MAX_RANGE_HOSTS)
            .ok_or_else(|| {
                format!("host '{pattern}' expands to more than {MAX_RANGE_HOSTS} hosts")
            })?;
        parts.push(vec![lit.to_string()]);
        parts.push(seq);
        rest = after.get(close + 1..).unwrap_or_default();
        if parts.len() > 2 * MAX_DEPTH {
            return Err(format!("host '{pattern}': too many ranges"));
        }
    }
    parts.push(vec![rest.to_string()]);
    for lit in parts.iter().step_by(2).flatten() {
        if !lit.chars().all(name_char) {
            return Err(format!(
                "host '{pattern}': only letters, digits, '.', '-', '_' and [ranges] are supported in host names"
            ));
        }
    }
    let mut names = vec![String::new()];
    for part in &parts {
        let mut next = Vec::with_capacity(names.len().saturating_mul(part.len()));
        for prefix in &names {
            for p in part {
                next.push(format!("{prefix}{p}"));
            }
        }
        names = next;
    }
    for n in &names {
        if !valid_name(n) {
            return Err(format!("host '{pattern}': '{n}' is not a usable host name"));
        }
    }
    Ok(names)
}

/// The items of one range, `BEG:END` or `BEG:END:STEP` (Ansible's rules:
/// an empty BEG is 0; a BEG with a leading zero sets the width and END
/// must have the same length; single letters run through a–z then A–Z).
fn expand_range(inner: &str) -> Result<Vec<String>, String> {
    let bounds: Vec<&str> = inner.split(':').collect();
    let (beg, end, step) = match bounds.as_slice() {
        [b, e] => (*b, *e, "1"),
        [b, e, s] => (*b, *e, *s),
        _ => {
            return Err(format!(
                "range [{inner}] must be [BEG:END] or [BEG:END:STEP]"
            ))
        }
    };
    let beg = if beg.is_empty() { "0" } else { beg };
    if end.is_empty() {
        return Err(format!("range [{inner}] has no end"));
    }
    let step: usize = match step.parse() {
        Ok(s) if s > 0 && step.bytes().all(|b| b.is_ascii_digit()) => s,
        _ => {
            return Err(format!(
                "range [{inner}]: the step must be a positive number"
            ))
        }
    };
    const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let letter = |s: &str| {
        let mut cs = s.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) => LETTERS.find(c),
            _ => None,
        }
    };
    if let (Some(b), Some(e)) = (letter(beg), letter(end)) {
        if b > e {
            return Err(format!("range [{inner}]: begin is after end"));
        }
        return Ok(LETTERS
            .get(b..=e)
            .unwrap_or_default()
            .chars()
            .step_by(step)
            .map(String::from)
            .collect());
    }
    let digits = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(beg) || !digits(end) {
        return Err(format!(
            "range [{inner}]: bounds must be both numbers (at most 9 digits) or both single letters"
        ));
    }
    let width = if beg.len() > 1 && beg.starts_with('0') {
        if end.len() != beg.len() {
            return Err(format!(
                "range [{inner}]: with a leading zero, begin and end must have the same length"
            ));
        }
        beg.len()
    } else {
        0
    };
    let (b, e): (usize, usize) = match (beg.parse(), end.parse()) {
        (Ok(b), Ok(e)) => (b, e),
        _ => return Err(format!("range [{inner}]: bad number")),
    };
    if b > e {
        return Err(format!("range [{inner}]: begin is after end"));
    }
    if (e - b) / step >= MAX_RANGE_HOSTS {
        return Err(format!(
            "range [{inner}] expands to more than {MAX_RANGE_HOSTS} hosts"
        ));
    }
    Ok((b..=e)
        .step_by(step)
        .map(|n| format!("{n:0width$}"))
        .collect())
}

/// A YAML node with its line, built from saphyr's events.
#[derive(Debug)]
struct YNode {
    line: usize,
    value: YValue,
}

#[derive(Debug)]
enum YValue {
    /// A scalar: its text, whether it was quoted or a block, its tag.
    Scalar {
        text: String,
        quoted: bool,
        tag: Option<String>,
    },
    Map(Vec<(YNode, YNode)>),
    /// A sequence (its items are not needed).
    Seq,
}

impl YNode {
    /// An empty plain scalar, `~` or `null`: YAML's null.
    fn is_null(&self) -> bool {
        matches!(&self.value, YValue::Scalar { text, quoted: false, tag: None }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A scalar's text, for mapping keys (group and host names, var names).
    fn key(&self) -> Option<&str> {
        match &self.value {
            YValue::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value as a variable sees it.
    fn raw(&self) -> Raw<'_> {
        match &self.value {
            _ if self.is_null() => Raw::Other("null"),
            YValue::Scalar { tag: Some(t), .. } if t != "tag:yaml.org,2002:str" => {
                Raw::Other("a tagged value (!vault and the like)")
            }
            YValue::Scalar {
                text, quoted: true, ..
            }
            | YValue::Scalar {
                text, tag: Some(_), ..
            } => Raw::Str(text),
            YValue::Scalar { text, .. } => Raw::Plain(text),
            YValue::Map(_) => Raw::Other("a mapping"),
            YValue::Seq => Raw::Other("a list"),
        }
    }
}

/// A collection being built.
enum Frame {
    Map {
        line: usize,
        entries: Vec<(YNode, YNode)>,
        key: Option<YNode>,
    },
    Seq {
        line: usize,
    },
}

/// Parses one YAML document into a tree, refusing aliases, more than one
/// document and nesting deeper than [`MAX_DEPTH`].
fn yaml_tree(text: &str) -> Result<Option<YNode>, (usize, String)> {
    use saphyr_parser::{Event, Parser, ScalarStyle};
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<YNode> = None;
    let mut documents = 0;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| (e.marker().line(), e.info().to_string()))?;
        let line = span.start.line();
        let node = match ev {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => continue,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err((line, "more than one YAML document".into()));
                }
                continue;
            }
            Event::Alias(_) => {
                return Err((
                    line,
                    "YAML aliases (*name, <<: *name) are not supported".into(),
                ))
            }
            Event::Scalar(text, style, _, tag) => YNode {
                line,
                value: YValue::Scalar {
                    text: text.into_owned(),
                    quoted: !matches!(style, ScalarStyle::Plain),
                    tag: tag.map(|t| format!("{}{}", t.handle, t.suffix)),
                },
            },
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err((line, format!("nested more than {MAX_DEPTH} deep")));
                }
                stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        line,
                        entries: Vec::new(),
                        key: None,
                    }
                } else {
                    Frame::Seq { line }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { line, entries, .. }) => YNode {
                    line,
                    value: YValue::Map(entries),
                },
                Some(Frame::Seq { line }) => YNode {
                    line,
                    value: YValue::Seq,
                },
                None => return Err((line, "unbalanced YAML".into())),
            },
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { .. }) => {}
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
    Ok(root)
}

impl Inventory {
    /// Ansible's YAML inventory: top-level keys are groups (usually `all`);
    /// a group maps `hosts` (host pattern → vars or null), `vars` and
    /// `children` (group → group). Keys other than these three are refused
    /// (Ansible skips them with a warning).
    fn read_yaml(&mut self, text: &str) -> Result<(), FleetError> {
        let root = yaml_tree(text).map_err(|(line, m)| self.err(line, m))?;
        let Some(root) = root.filter(|r| !r.is_null()) else {
            return Err(self.err(1, "empty YAML inventory"));
        };
        let YValue::Map(groups) = &root.value else {
            return Err(self.err(
                root.line,
                "a YAML inventory is a mapping of groups (all: …)",
            ));
        };
        if groups.iter().any(|(k, _)| k.key() == Some("plugin")) {
            return Err(self.err(
                root.line,
                "this is an inventory plugin's configuration, not an inventory",
            ));
        }
        self.yaml_groups(groups, None, 0)
    }

    /// Reads a mapping of group name → group data, under `parent`.
    fn yaml_groups(
        &mut self,
        entries: &[(YNode, YNode)],
        parent: Option<usize>,
        depth: usize,
    ) -> Result<(), FleetError> {
        if depth > MAX_DEPTH {
            let line = entries.first().map_or(0, |(k, _)| k.line);
            return Err(self.err(line, format!("groups nested more than {MAX_DEPTH} deep")));
        }
        self.no_duplicates(entries)?;
        for (k, v) in entries {
            let name = self.yaml_key(k)?;
            let g = self.group(name, k.line)?;
            self.declare(g, k.line);
            if let Some(p) = parent {
                self.add_child(p, g, k.line)?;
            }
            self.yaml_group(g, name, v, depth)?;
        }
        Ok(())
    }

    /// Reads one group's data.
    fn yaml_group(
        &mut self,
        g: usize,
        name: &str,
        data: &YNode,
        depth: usize,
    ) -> Result<(), FleetError> {
        if data.is_null() {
            return Ok(());
        }
        let YValue::Map(entries) = &data.value else {
            return Err(self.err(
                data.line,
                format!("group '{name}' must be a mapping (hosts, vars, children)"),
            ));
        };
        self.no_duplicates(entries)?;
        for (k, v) in entries {
            let section = self.yaml_key(k)?;
            if !matches!(section, "hosts" | "vars" | "children") {
                return Err(self.err(
                    k.line,
                    format!("unexpected key '{section}' in group '{name}' (only hosts, vars and children)"),
                ));
            }
            if v.is_null() {
                continue;
            }
            // A plain string stands for a one-entry mapping (Ansible).
            let single;
            let entries: &[(YNode, YNode)] = match &v.value {
                YValue::Map(e) => e,
                YValue::Scalar { .. } => {
                    single = [(
                        YNode {
                            line: v.line,
                            value: YValue::Scalar {
                                text: v.key().unwrap_or_default().to_string(),
                                quoted: false,
                                tag: None,
                            },
                        },
                        YNode {
                            line: v.line,
                            value: YValue::Scalar {
                                text: String::new(),
                                quoted: false,
                                tag: None,
                            },
                        },
                    )];
                    &single
                }
                YValue::Seq => {
                    return Err(self.err(
                        v.line,
                        format!("'{section}' of group '{name}' must be a mapping, not a list"),
                    ))
                }
            };
            match section {
                "hosts" => {
                    self.no_duplicates(entries)?;
                    for (hk, hv) in entries {
                        let pattern = self.yaml_key(hk)?;
                        let mut vars = Vars::default();
                        if !hv.is_null() {
                            let YValue::Map(hvars) = &hv.value else {
                                return Err(self.err(
                                    hv.line,
                                    format!("host '{pattern}': its variables must be a mapping"),
                                ));
                            };
                            self.yaml_vars(hvars, &mut vars)?;
                        }
                        self.add_hosts(pattern, g, &vars, hk.line)?;
                    }
                }
                "vars" => {
                    let mut vars = self
                        .groups
                        .get(g)
                        .map(|x| x.vars.clone())
                        .unwrap_or_default();
                    self.yaml_vars(entries, &mut vars)?;
                    if let Some(grp) = self.groups.get_mut(g) {
                        grp.vars = vars;
                    }
                }
                _ => self.yaml_groups(entries, Some(g), depth + 1)?,
            }
        }
        Ok(())
    }

    /// Reads the wanted variables of a vars mapping.
    fn yaml_vars(&self, entries: &[(YNode, YNode)], vars: &mut Vars) -> Result<(), FleetError> {
        self.no_duplicates(entries)?;
        for (k, v) in entries {
            let key = self.yaml_key(k)?;
            vars.set(key, v.raw()).map_err(|m| self.err(v.line, m))?;
        }
        Ok(())
    }

    /// A mapping key that must be a non-empty scalar.
    fn yaml_key<'y>(&self, k: &'y YNode) -> Result<&'y str, FleetError> {
        match k.key() {
            Some(s) if !k.is_null() => Ok(s),
            _ => Err(self.err(k.line, "expected a name as the key")),
        }
    }

    /// Refuses a mapping that repeats a key (Ansible would keep the last
    /// silently).
    fn no_duplicates(&self, entries: &[(YNode, YNode)]) -> Result<(), FleetError> {
        let mut seen = HashSet::new();
        for (k, _) in entries {
            if let Some(s) = k.key() {
                if !seen.insert(s) {
                    return Err(self.err(k.line, format!("duplicate key '{s}'")));
                }
            }
        }
        Ok(())
    }
}

/// One target of a fleet command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FleetHost {
    /// Label for its output lines: the alias, the inventory name, or a URL
    /// item without its scheme.
    pub name: String,
    /// How to reach it.
    pub via: Via,
}

/// Where a fleet target's server, user and key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Via {
    /// A `[hosts]` alias: resolved exactly like `remo ALIAS …`.
    Alias(String),
    /// An inventory host or a URL item. `user` and `key` (`remo_user`,
    /// `remo_key`) rank like an alias's: below flags and environment.
    Url {
        /// Base URL without a trailing `/`.
        server: String,
        /// `remo_user`.
        user: Option<String>,
        /// `remo_key` (a `~/` is expanded by `target`).
        key: Option<String>,
    },
}

impl FleetHost {
    /// The full target, with the usual precedence (config::resolve): the
    /// command line's `host` and `server` are replaced by this host, its
    /// `user`/`key`/`cacert` flags and the environment still win.
    pub(crate) fn target(
        &self,
        cfg: &Config,
        ov: &Overrides,
        env: &EnvValues,
    ) -> Result<Target, ClientError> {
        match &self.via {
            Via::Alias(alias) => {
                let ov = Overrides {
                    host: Some(alias.clone()),
                    server: None,
                    ..ov.clone()
                };
                resolve(cfg, &ov, env)
            }
            Via::Url { server, user, key } => {
                // A one-entry config: the host's settings at alias rank,
                // the top-level defaults kept.
                let one = Config {
                    user: cfg.user.clone(),
                    key: cfg.key.clone(),
                    hosts: [(
                        self.name.clone(),
                        HostEntry {
                            server: server.clone(),
                            user: user.clone(),
                            key: key.clone(),
                            ..HostEntry::default()
                        },
                    )]
                    .into(),
                    ..Config::default()
                };
                let ov = Overrides {
                    host: Some(self.name.clone()),
                    server: None,
                    ..ov.clone()
                };
                resolve(&one, &ov, env)
            }
        }
    }
}

/// Identity of a selected host, for dedup and exclusion.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Pick {
    Alias(String),
    Inv(usize),
    Url(String),
}

/// Looks names up for one `resolve_spec` call.
struct Resolver<'a> {
    cfg: &'a Config,
    inv: Option<&'a Inventory>,
}

/// Resolves `SPEC` (the text after `@`) into targets.
///
/// `SPEC` is a comma-separated list of items: a group, a `[hosts]` alias, an
/// inventory host, a URL, or `@group` (groups only); `!item` excludes the
/// hosts of that item from the whole result (a spec of exclusions only
/// starts from `all`). `all` is every inventory host when an inventory is
/// given, else every `[hosts]` alias; `ungrouped` needs an inventory. The
/// result keeps first-seen order, each host once. An unknown name, a cycle
/// in `[groups]` and an empty result are errors.
pub(crate) fn resolve_spec(
    spec: &str,
    cfg: &Config,
    inventory: Option<&Inventory>,
) -> Result<Vec<FleetHost>, FleetError> {
    let spec_err = |message: String| FleetError::Spec {
        spec: spec.to_string(),
        message,
    };
    for (name, members) in &cfg.groups {
        if matches!(name.as_str(), "all" | "ungrouped") {
            return Err(FleetError::Groups(format!(
                "'{name}' is a built-in group and cannot be defined"
            )));
        }
        if !valid_name(name) {
            return Err(FleetError::Groups(format!(
                "group name '{name}': only letters, digits, '.', '-' and '_'"
            )));
        }
        if members.iter().any(|m| m.trim().is_empty()) {
            return Err(FleetError::Groups(format!(
                "group '{name}' has an empty member"
            )));
        }
    }
    let r = Resolver {
        cfg,
        inv: inventory,
    };
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    let mut any_include = false;
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(spec_err(
                "empty item (two commas, or a comma at an end)".into(),
            ));
        }
        match item.strip_prefix('!') {
            Some(rest) => r.item(rest.trim(), "", &mut Vec::new(), &mut exclude)?,
            None => {
                any_include = true;
                r.item(item, "", &mut Vec::new(), &mut include)?;
            }
        }
    }
    if !any_include {
        r.item("all", "", &mut Vec::new(), &mut include)?;
    }
    let excluded: HashSet<&Pick> = exclude.iter().collect();
    let mut seen = HashSet::new();
    let mut labels: HashMap<String, Pick> = HashMap::new();
    let mut out = Vec::new();
    for pick in &include {
        if excluded.contains(pick) || !seen.insert(pick) {
            continue;
        }
        let host = r.fleet_host(pick)?;
        if let Some(other) = labels.insert(host.name.clone(), pick.clone()) {
            if &other != pick {
                return Err(spec_err(format!(
                    "two different targets would both be labelled '{}'",
                    host.name
                )));
            }
        }
        out.push(host);
    }
    if out.is_empty() {
        return Err(FleetError::Empty(spec.to_string()));
    }
    Ok(out)
}

impl Resolver<'_> {
    /// Appends the hosts of one item (URL, `@group`, or name).
    fn item(
        &self,
        item: &str,
        context: &str,
        stack: &mut Vec<String>,
        out: &mut Vec<Pick>,
    ) -> Result<(), FleetError> {
        if is_url(item) {
            out.push(Pick::Url(item.trim_end_matches('/').to_string()));
            return Ok(());
        }
        if let Some(group) = item.strip_prefix('@') {
            return match self.group(group, stack, out)? {
                true => Ok(()),
                false => Err(self.unknown(group, context)),
            };
        }
        if self.group(item, stack, out)? {
            return Ok(());
        }
        if self.cfg.hosts.contains_key(item) {
            out.push(Pick::Alias(item.to_string()));
            return Ok(());
        }
        if let Some(&h) = self.inv.and_then(|inv| inv.host_ix.get(item)) {
            out.push(Pick::Inv(h));
            return Ok(());
        }
        Err(self.unknown(item, context))
    }

    /// Appends a group's hosts; `false` if there is no such group.
    fn group(
        &self,
        name: &str,
        stack: &mut Vec<String>,
        out: &mut Vec<Pick>,
    ) -> Result<bool, FleetError> {
        if let Some(members) = self.cfg.groups.get(name) {
            if stack.iter().any(|s| s == name) {
                let mut path = stack.clone();
                path.push(name.to_string());
                return Err(FleetError::Groups(format!(
                    "group cycle: {}",
                    path.join(" -> ")
                )));
            }
            if stack.len() >= MAX_DEPTH {
                return Err(FleetError::Groups(format!(
                    "groups nested more than {MAX_DEPTH} deep"
                )));
            }
            stack.push(name.to_string());
            let context = format!(" (in [groups].{name})");
            for m in members {
                self.item(m.trim(), &context, stack, out)?;
            }
            stack.pop();
            return Ok(true);
        }
        if let Some(inv) = self.inv {
            if let Some(&g) = inv.group_ix.get(name) {
                out.extend(inv.group_hosts(g).into_iter().map(Pick::Inv));
                return Ok(true);
            }
        } else if name == "all" {
            out.extend(self.cfg.hosts.keys().map(|a| Pick::Alias(a.clone())));
            return Ok(true);
        }
        Ok(false)
    }

    /// The error for a name nothing knows.
    fn unknown(&self, name: &str, context: &str) -> FleetError {
        let mut known: Vec<&str> = self.cfg.groups.keys().map(String::as_str).collect();
        match self.inv {
            Some(inv) => known.extend(inv.group_names()),
            None => known.push("all"),
        }
        known.sort_unstable();
        known.dedup();
        let mut list = known
            .iter()
            .take(30)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        if known.len() > 30 {
            list.push_str(", …");
        }
        FleetError::Unknown {
            name: name.to_string(),
            context: context.to_string(),
            known: list,
        }
    }

    /// The target for a pick.
    fn fleet_host(&self, pick: &Pick) -> Result<FleetHost, FleetError> {
        Ok(match pick {
            Pick::Alias(a) => FleetHost {
                name: a.clone(),
                via: Via::Alias(a.clone()),
            },
            Pick::Url(u) => FleetHost {
                name: u
                    .split_once("://")
                    .map_or(u.as_str(), |(_, rest)| rest)
                    .to_string(),
                via: Via::Url {
                    server: u.clone(),
                    user: None,
                    key: None,
                },
            },
            Pick::Inv(h) => {
                let host = self.inv.and_then(|inv| inv.hosts.get(*h)).ok_or_else(|| {
                    FleetError::Groups("internal: inventory host vanished".into())
                })?;
                let server = match &host.vars.remo_server {
                    Some(s) => s.clone(),
                    None => fleet_url(
                        self.cfg.fleet_url.as_deref().unwrap_or(DEFAULT_FLEET_URL),
                        host.vars.ansible_host.as_deref().unwrap_or(&host.name),
                        &host.name,
                    )?,
                };
                FleetHost {
                    name: host.name.clone(),
                    via: Via::Url {
                        server,
                        user: host.vars.remo_user.clone(),
                        key: host.vars.remo_key.clone(),
                    },
                }
            }
        })
    }
}

/// Fills the `fleet_url` template: `{host}` (an IPv6 address in brackets)
/// and `{name}`; any other `{…}` or a stray brace is an error, and the
/// result must be an http(s) URL. The trailing `/` is removed.
fn fleet_url(template: &str, host: &str, name: &str) -> Result<String, FleetError> {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i..).unwrap_or_default();
        let Some(inner) = after.strip_prefix('{') else {
            return Err(FleetError::Template(format!(
                "'{template}': a '}}' without '{{'"
            )));
        };
        let Some(end) = inner.find('}') else {
            return Err(FleetError::Template(format!(
                "'{template}': a '{{' without '}}'"
            )));
        };
        match inner.get(..end).unwrap_or_default() {
            "host" => out.push_str(&host),
            "name" => out.push_str(name),
            other => {
                return Err(FleetError::Template(format!(
                    "'{template}': unknown placeholder {{{other}}} (use {{host}} or {{name}})"
                )))
            }
        }
        rest = inner.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    if !is_url(&out) || out.contains(char::is_whitespace) {
        return Err(FleetError::Template(format!(
            "'{template}' gives '{out}', not an http:// or https:// URL"
        )));
    }
    Ok(out.trim_end_matches('/').to_string())
}
