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
//! Name lookup, the same for a spec item and a `[groups]` member: config.toml
//! first (`[groups]`, then `[hosts]` aliases), then the inventory (groups,
//! then hosts); `all` and `ungrouped` are always the built-in groups.
//! `@name` looks for a group only. Config wins over the inventory so that
//! one machine or group of a shared inventory can be given local settings
//! (an alias with `pin_certificate`, say), and adding a group to the shared
//! inventory never changes what a config group means.

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
/// `SPEC` is a comma-separated list of items: a config group, a `[hosts]`
/// alias, an inventory group, an inventory host (looked up in that order),
/// a URL, or `@group` (groups only); `!item` excludes the
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
            return match self.config_group(group, stack, out)? || self.inventory_group(group, out) {
                true => Ok(()),
                false => Err(self.unknown(group, context)),
            };
        }
        if self.config_group(item, stack, out)? {
            return Ok(());
        }
        if !matches!(item, "all" | "ungrouped") && self.cfg.hosts.contains_key(item) {
            out.push(Pick::Alias(item.to_string()));
            return Ok(());
        }
        if self.inventory_group(item, out) {
            return Ok(());
        }
        if let Some(&h) = self.inv.and_then(|inv| inv.host_ix.get(item)) {
            out.push(Pick::Inv(h));
            return Ok(());
        }
        Err(self.unknown(item, context))
    }

    /// Appends the hosts of a config.toml group; `false` if there is none.
    fn config_group(
        &self,
        name: &str,
        stack: &mut Vec<String>,
        out: &mut Vec<Pick>,
    ) -> Result<bool, FleetError> {
        let Some(members) = self.cfg.groups.get(name) else {
            return Ok(false);
        };
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
        Ok(true)
    }

    /// Appends the hosts of an inventory group, or of `all` without an
    /// inventory (every alias); `false` if there is no such group.
    fn inventory_group(&self, name: &str, out: &mut Vec<Pick>) -> bool {
        match self.inv {
            Some(inv) => match inv.group_ix.get(name) {
                Some(&g) => {
                    out.extend(inv.group_hosts(g).into_iter().map(Pick::Inv));
                    true
                }
                None => false,
            },
            None if name == "all" => {
                out.extend(self.cfg.hosts.keys().map(|a| Pick::Alias(a.clone())));
                true
            }
            None => false,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Ansible's INI documentation example (ini inventory plugin, example 1
    /// and 2), with remo variables added.
    const INI_DOC: &str = r#"
# example cfg file
[web]
host1
host2 ansible_port=222 # defined inline, interpreted as an integer

[web:vars]
http_port=8080 # all members of 'web' will inherit these
myvar=23 # defined in a :vars section, interpreted as a string

[web:children] # child groups will automatically add their hosts to parent group
apache
nginx

[apache]
tomcat1
tomcat2 myvar=34 # host specific vars override group vars
tomcat3 mysecret="'03#pa33w0rd'" # proper quoting to prevent value changes

[nginx]
jenkins1

[nginx:vars]
has_java = True # vars in child groups override same in parent

[all:vars]
has_java = False # 'all' is 'top' parent
"#;

    /// The YAML documentation example of the yaml inventory plugin.
    const YAML_DOC: &str = r#"
all: # keys must be unique, i.e. only one 'hosts' per group
    hosts:
        test1:
        test2:
            host_var: value
    vars:
        group_all_var: value
    children:   # key order does not matter, indentation does
        other_group:
            children:
                group_x:
                    hosts:
                        test5   # Note that one machine will work without a colon
                group_y:
                    hosts:
                        test6:  # So always use a colon
            vars:
                g2_var2: value3
            hosts:
                test4:
                    ansible_host: 127.0.0.1
        last_group:
            hosts:
                test1 # same host as above, additional group membership
            vars:
                group_last_var: value
"#;

    fn ini(text: &str) -> Inventory {
        Inventory::parse(text, "inv", Format::Ini).unwrap()
    }

    fn yaml(text: &str) -> Inventory {
        Inventory::parse(text, "inv", Format::Yaml).unwrap()
    }

    /// Host names of a group, as resolution lists them.
    fn members(inv: &Inventory, group: &str) -> Vec<String> {
        let g = inv.group_ix[group];
        inv.group_hosts(g)
            .into_iter()
            .map(|h| inv.hosts[h].name.clone())
            .collect()
    }

    fn names(hosts: &[FleetHost]) -> Vec<&str> {
        hosts.iter().map(|h| h.name.as_str()).collect()
    }

    fn server(h: &FleetHost) -> &str {
        match &h.via {
            Via::Url { server, .. } => server,
            Via::Alias(a) => panic!("alias {a}"),
        }
    }

    fn parse_err(text: &str, format: Format) -> (usize, String) {
        match Inventory::parse(text, "inv", format) {
            Err(FleetError::Parse {
                file,
                line,
                message,
            }) => {
                assert_eq!(file, "inv");
                (line, message)
            }
            other => panic!("expected a parse error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn ini_documentation_example_groups_and_children() {
        let inv = ini(INI_DOC);
        // Children add their hosts to the parent, breadth first.
        assert_eq!(
            members(&inv, "web"),
            ["host1", "host2", "tomcat1", "tomcat2", "tomcat3", "jenkins1"]
        );
        assert_eq!(members(&inv, "apache"), ["tomcat1", "tomcat2", "tomcat3"]);
        assert_eq!(members(&inv, "all").len(), 6);
        assert!(members(&inv, "ungrouped").is_empty());
        // `web` is a child of `all`; apache/nginx are not (they have a parent).
        let all = &inv.groups[ALL];
        let kids: Vec<&str> = all
            .children
            .iter()
            .map(|&c| inv.groups[c].name.as_str())
            .collect();
        assert_eq!(kids, ["ungrouped", "web"]);
        assert_eq!(inv.groups[inv.group_ix["nginx"]].depth, 2);
    }

    #[test]
    fn ini_ungrouped_hosts_and_multi_group_membership() {
        // Ansible's example 2.
        let inv = ini(r#"
host1 # this is 'ungrouped'

# both hosts have same IP but diff ports, also 'ungrouped'
host2 ansible_host=127.0.0.1 ansible_port=44
host3 ansible_host=127.0.0.1 ansible_port=45

[g1]
host4

[g2]
host4 # same host as above, but member of 2 groups, will inherit vars from both
      # inventory hostnames are unique
"#);
        assert_eq!(members(&inv, "ungrouped"), ["host1", "host2", "host3"]);
        assert_eq!(members(&inv, "g1"), ["host4"]);
        assert_eq!(members(&inv, "g2"), ["host4"]);
        assert_eq!(inv.hosts.len(), 4);
        assert_eq!(inv.hosts[1].vars.ansible_host.as_deref(), Some("127.0.0.1"));
        // A host listed before any section and later in a group is not
        // ungrouped any more (Ansible's reconcile).
        let inv = ini("a\nb\n[g]\na\n");
        assert_eq!(members(&inv, "ungrouped"), ["b"]);
    }

    #[test]
    fn ini_ranges_numeric_padded_alphabetic_and_step() {
        let inv = ini("[web]\nwww[01:03].example.com\n[db]\ndb-[a:c]-node.example.com\n[odd]\nh[1:9:4]\n[two]\nr[1:2]c[a:b]\n[open]\nx[:2]\n");
        assert_eq!(
            members(&inv, "web"),
            [
                "www01.example.com",
                "www02.example.com",
                "www03.example.com"
            ]
        );
        assert_eq!(
            members(&inv, "db"),
            [
                "db-a-node.example.com",
                "db-b-node.example.com",
                "db-c-node.example.com"
            ]
        );
        assert_eq!(members(&inv, "odd"), ["h1", "h5", "h9"]);
        assert_eq!(members(&inv, "two"), ["r1ca", "r1cb", "r2ca", "r2cb"]);
        assert_eq!(members(&inv, "open"), ["x0", "x1", "x2"]);
        // Without a leading zero there is no padding; letters run a–z, A–Z.
        assert_eq!(expand_pattern("h[8:10]").unwrap(), ["h8", "h9", "h10"]);
        assert_eq!(expand_pattern("h[y:B]").unwrap(), ["hy", "hz", "hA", "hB"]);
        // A port is Ansible's (ssh) and is dropped.
        assert_eq!(expand_pattern("h[1:2]:2222").unwrap(), ["h1", "h2"]);
    }

    #[test]
    fn ranges_are_bounded_and_malformed_ranges_refused() {
        assert_eq!(expand_pattern("h[1:10000]").unwrap().len(), 10_000);
        for bad in [
            "h[1:10001]",
            "h[0:99][0:99][0:9]",
            "h[0:999999999]",
            "h[01:100]",
            "h[3:1]",
            "h[c:a]",
            "h[1:]",
            "h[1:3:0]",
            "h[1:3:-1]",
            "h[1:3:]",
            "h[a:3]",
            "h[aa:b]",
            "h[1]",
            "h[1:2:3:4]",
            "h[1:2",
            "h[[1:2]]",
            "h[+1:3]",
            "h:",
            "h:99999",
            "h:x",
            "::1",
            "h/x",
            "",
        ] {
            assert!(expand_pattern(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn ini_vars_precedence_host_over_child_over_parent_over_all() {
        let inv = ini(r#"
[all:vars]
remo_user=everyone
remo_key=/k/all

[web]
w1
w2 remo_user=hostuser

[web:vars]
remo_user=webuser
ansible_host=shared.example

[web:children]
edge

[edge]
e1

[edge:vars]
remo_user='edgeuser' # a comment after a quoted value
"#);
        let v = |n: &str| inv.hosts[inv.host_ix[n]].vars.clone();
        assert_eq!(v("w1").remo_user.as_deref(), Some("webuser"));
        assert_eq!(v("w2").remo_user.as_deref(), Some("hostuser"));
        assert_eq!(v("e1").remo_user.as_deref(), Some("edgeuser"));
        assert_eq!(v("e1").remo_key.as_deref(), Some("/k/all"));
        assert_eq!(v("e1").ansible_host.as_deref(), Some("shared.example"));
    }

    #[test]
    fn group_priority_orders_groups_of_equal_depth() {
        let text = |pa: i32, pb: i32| {
            format!("[a]\nh\n[b]\nh\n[a:vars]\nremo_user=ua\nansible_group_priority={pa}\n[b:vars]\nremo_user=ub\nansible_group_priority={pb}\n")
        };
        // Equal priority: by name, so b (later) wins.
        let inv = ini(&text(1, 1));
        assert_eq!(inv.hosts[0].vars.remo_user.as_deref(), Some("ub"));
        let inv = ini(&text(5, 1));
        assert_eq!(inv.hosts[0].vars.remo_user.as_deref(), Some("ua"));
    }

    #[test]
    fn ini_host_line_quoting_like_shlex() {
        assert_eq!(
            shlex_split(r#"h a=1 b="x y" c='p q' d=e\ f g="\"q\"" # rest"#).unwrap(),
            ["h", "a=1", "b=x y", "c=p q", "d=e f", "g=\"q\""]
        );
        assert_eq!(shlex_split("h#c").unwrap(), ["h"]);
        assert_eq!(shlex_split(r#"a"b c"d"#).unwrap(), ["ab cd"]);
        assert_eq!(shlex_split(r#""a\x""#).unwrap(), [r"a\x"]);
        assert!(shlex_split("h a='x").is_err());
        assert!(shlex_split("h a=\\").is_err());
        // A Python string literal inside shell quotes, as Ansible documents.
        let inv = ini("h remo_user=\"'03#pa33w0rd'\" remo_key='/k/a b'\n");
        assert_eq!(inv.hosts[0].vars.remo_user.as_deref(), Some("03#pa33w0rd"));
        assert_eq!(inv.hosts[0].vars.remo_key.as_deref(), Some("/k/a b"));
    }

    #[test]
    fn values_that_are_not_strings_are_refused_for_remo_vars() {
        for bad in [
            "h remo_user=007",
            "h remo_user=1.50",
            "h remo_user=0x10",
            "h remo_user=True",
            "h remo_user=None",
            "h remo_user=[1]",
            "h remo_user=\"r'x'\"",
            "h remo_user=\"'a\\\\b'\"",
            "h remo_user=\"'a'b\"",
            "h remo_server=ftp://x",
            "h remo_server='https://{{ x }}/r'",
            "h ansible_host=a/b",
            "h ansible_host=a@b",
            "[g]\nh\n[g:vars]\nremo_user=alice # comment",
            "[g]\nh\n[g:vars]\nansible_group_priority=high",
        ] {
            let (line, msg) = parse_err(bad, Format::Ini);
            assert!(line >= 1, "{bad}: {msg}");
        }
        // Other variables are not ours to judge.
        let inv = ini("h ansible_port=[1,2] foo=True x='y'\n");
        assert_eq!(inv.hosts[0].vars, Vars::default());
        // A canonical integer reads back as itself; an IPv4/IPv6 address is a string.
        let inv = ini("h remo_user=42 ansible_host=10.0.0.1\ni ansible_host=2001:db8::1\n");
        assert_eq!(inv.hosts[0].vars.remo_user.as_deref(), Some("42"));
        assert_eq!(
            inv.hosts[1].vars.ansible_host.as_deref(),
            Some("2001:db8::1")
        );
    }

    #[test]
    fn ini_sections_and_declarations_are_checked() {
        let cases: &[(&str, usize, &str)] = &[
            ("[web:vars]\nx=1\n", 1, "never declared"),
            ("[web:children]\napache\n", 2, "never declared"),
            ("[web:bogus]\n", 1, "unknown type"),
            ("[web ]\n", 1, "invalid section"),
            ("[we b]\n", 1, "invalid section"),
            ("[w+b]\n", 1, "group name"),
            ("[g]\nh\n[g:vars]\njust-a-word\n", 4, "key=value"),
            ("[g]\nh x\n", 2, "key=value"),
            ("[g]\n---\n", 2, "YAML"),
            ("[g]\n[g:children]\ng\n", 3, "own child"),
            ("[a:children]\nb\n[b:children]\na\n", 4, "cycle: "),
            ("[a:children]\nall\n", 2, "'all' cannot"),
            ("[g:children]\nx y\n", 2, "group name"),
        ];
        for (text, line, want) in cases {
            let (l, msg) = parse_err(text, Format::Ini);
            assert!(msg.contains(want), "{text:?}: {msg}");
            assert_eq!(l, *line, "{text:?}: {msg}");
        }
        // Children may be declared after they are referenced.
        let inv = ini("[web:children]\napache\n[apache]\nt1\n[web:vars]\nremo_user=u\n");
        assert_eq!(members(&inv, "web"), ["t1"]);
        assert_eq!(inv.hosts[0].vars.remo_user.as_deref(), Some("u"));
    }

    #[test]
    fn cycles_name_the_loop() {
        let (_, msg) = parse_err(
            "[a:children]\nb\n[b:children]\nc\n[c:children]\na\n[x]\nh\n",
            Format::Ini,
        );
        assert!(
            msg.contains("a -> b -> c -> a")
                || msg.contains("b -> c -> a -> b")
                || msg.contains("c -> a -> b -> c"),
            "{msg}"
        );
        let (_, msg) = parse_err("all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n", Format::Yaml);
        assert!(msg.contains("cycle"), "{msg}");
    }

    #[test]
    fn yaml_documentation_example() {
        let inv = yaml(YAML_DOC);
        assert_eq!(members(&inv, "other_group"), ["test4", "test5", "test6"]);
        assert_eq!(members(&inv, "last_group"), ["test1"]);
        assert_eq!(members(&inv, "group_x"), ["test5"]);
        // test2 is only in `all`, so it is ungrouped; test1 is also in last_group.
        assert_eq!(members(&inv, "ungrouped"), ["test2"]);
        let t4 = &inv.hosts[inv.host_ix["test4"]];
        assert_eq!(t4.vars.ansible_host.as_deref(), Some("127.0.0.1"));
        let all = members(&inv, "all");
        assert_eq!(all.len(), 5);
        assert_eq!(&all[..2], ["test1", "test2"]);
    }

    #[test]
    fn yaml_ranges_vars_and_precedence() {
        let inv = yaml(
            r#"---
all:
  vars:
    remo_user: root
  children:
    webservers:
      hosts:
        www[01:03].example.com:
        web-[a:b]:
          remo_user: "007"
      vars:
        remo_key: ~/.config/remo/web
    db:
      hosts:
        db1:
          remo_server: https://db1.example:8443/remo/
          remo_user: 'dba'
"#,
        );
        assert_eq!(
            members(&inv, "webservers"),
            [
                "www01.example.com",
                "www02.example.com",
                "www03.example.com",
                "web-a",
                "web-b"
            ]
        );
        let v = |n: &str| inv.hosts[inv.host_ix[n]].vars.clone();
        assert_eq!(v("www02.example.com").remo_user.as_deref(), Some("root"));
        assert_eq!(v("web-b").remo_user.as_deref(), Some("007"));
        assert_eq!(v("web-a").remo_key.as_deref(), Some("~/.config/remo/web"));
        assert_eq!(
            v("db1").remo_server.as_deref(),
            Some("https://db1.example:8443/remo")
        );
        assert_eq!(v("db1").remo_user.as_deref(), Some("dba"));
    }

    #[test]
    fn yaml_refusals_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "empty"),
            ("- a\n- b\n", 1, "mapping of groups"),
            ("plugin: aws_ec2\n", 1, "plugin"),
            ("all:\n  hostz:\n    a:\n", 2, "unexpected key 'hostz'"),
            ("all:\n  hosts:\n    - a\n", 3, "not a list"),
            ("all:\n  hosts:\n    a: 5\n", 3, "must be a mapping"),
            ("all:\n  hosts:\n    a:\n    a:\n", 4, "duplicate"),
            (
                "all:\n  hosts:\n    a:\n      remo_user: yes\n",
                4,
                "not read as a string",
            ),
            (
                "all:\n  hosts:\n    a:\n      remo_user: [x]\n",
                4,
                "a list",
            ),
            ("all:\n  hosts:\n    a:\n      remo_user:\n", 4, "null"),
            (
                "all:\n  hosts:\n    a:\n      remo_user: !vault |\n        xyz\n",
                4,
                "tagged",
            ),
            ("x: &a\n  hosts:\n    h:\ny: *a\n", 4, "aliases"),
            ("all:\n  hosts: {a: }\n---\nb:\n", 3, "more than one"),
            ("all:\n  hosts:\n    web[1:3:0]:\n", 3, "step"),
            ("all:\n  hosts:\n    a: {\n", 4, "did not find"),
            ("all:\n  children:\n    'a b':\n", 3, "group name"),
            ("all:\n  vars: remo_user\n", 2, "null"),
        ];
        for (text, line, want) in cases {
            let (l, msg) = parse_err(text, Format::Yaml);
            assert!(msg.contains(want), "{text:?}: {msg}");
            assert_eq!(l, *line, "{text:?}: {msg}");
        }
        // A `!!str` tag makes a string of anything; a host key may stand alone.
        let inv = yaml("all:\n  hosts: solo\n  children:\n    g:\n      hosts:\n        h:\n          remo_user: !!str 007\n");
        assert_eq!(
            inv.hosts[inv.host_ix["h"]].vars.remo_user.as_deref(),
            Some("007")
        );
        assert_eq!(members(&inv, "ungrouped"), ["solo"]);
    }

    #[test]
    fn yaml_nesting_is_bounded() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        let (_, msg) = parse_err(&format!("all:\n  vars:\n    x: {deep}\n"), Format::Yaml);
        assert!(msg.contains("deep"), "{msg}");
        let mut text = String::from("all:\n");
        for i in 0..70 {
            let pad = "  ".repeat(2 * i + 1);
            text.push_str(&format!("{pad}children:\n{pad}  g{i}:\n"));
        }
        let (_, msg) = parse_err(&text, Format::Yaml);
        assert!(msg.contains("deep"), "{msg}");
    }

    #[test]
    fn format_detection() {
        let p = |s: &str| Some(Path::new(s).to_path_buf());
        let d =
            |path: Option<std::path::PathBuf>, text: &str| Format::detect(path.as_deref(), text);
        assert_eq!(d(p("hosts.yml"), "[web]\n"), Format::Yaml);
        assert_eq!(d(p("hosts.YAML"), ""), Format::Yaml);
        assert_eq!(d(p("hosts.ini"), "all:\n"), Format::Ini);
        assert_eq!(d(p("hosts"), "# c\n\n---\nall:\n"), Format::Yaml);
        assert_eq!(d(p("hosts"), "all:\n  hosts:\n"), Format::Yaml);
        assert_eq!(d(p("hosts"), "webservers: # c\n"), Format::Yaml);
        assert_eq!(d(p("hosts"), "web1:22\n"), Format::Ini);
        assert_eq!(d(p("hosts"), "[web]\nall:\n"), Format::Ini);
        assert_eq!(d(None, "mail.example.com\n"), Format::Ini);
    }

    #[test]
    fn load_reads_files_and_names_them_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let yml = dir.path().join("inv.yml");
        std::fs::write(&yml, "all:\n  hosts:\n    a:\n").unwrap();
        assert_eq!(Inventory::load(&yml).unwrap().hosts.len(), 1);
        let bad = dir.path().join("hosts");
        std::fs::write(&bad, "[g]\nh\n[g:nope]\n").unwrap();
        let e = Inventory::load(&bad).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:3: section [g:nope] has unknown type 'nope' (hosts, children or vars)",
                bad.display()
            )
        );
        assert!(matches!(
            Inventory::load(&dir.path().join("missing")),
            Err(FleetError::Read { .. })
        ));
        // --inventory beats config.toml's inventory; neither means none.
        let cfg = Config {
            inventory: Some(bad.display().to_string()),
            ..Config::default()
        };
        assert!(Inventory::load_configured(Some(&yml), &cfg)
            .unwrap()
            .is_some());
        assert!(Inventory::load_configured(None, &cfg).is_err());
        assert!(Inventory::load_configured(None, &Config::default())
            .unwrap()
            .is_none());
    }

    /// Truncations and byte-level garbling of valid inventories: every
    /// result is a value or an error, and errors carry a line in the text.
    #[test]
    fn garbled_inputs_never_panic() {
        let mut seeds: Vec<(String, Format)> = vec![
            (INI_DOC.to_string(), Format::Ini),
            (YAML_DOC.to_string(), Format::Yaml),
            ("[a:children]\nb\n[b]\nh[01:03] remo_user='x' remo_server=\"https://h/r\"\n[b:vars]\nansible_host=h\n".into(), Format::Ini),
            ("all:\n  children:\n    g:\n      hosts:\n        w[a:c]:\n          remo_user: \"u\"\n      vars: {remo_key: k}\n".into(), Format::Yaml),
        ];
        let extra: Vec<(String, Format)> = seeds
            .iter()
            .map(|(t, f)| {
                (
                    t.clone(),
                    if *f == Format::Ini {
                        Format::Yaml
                    } else {
                        Format::Ini
                    },
                )
            })
            .collect();
        seeds.extend(extra);
        let specials = [
            '[', ']', ':', '=', '"', '\'', '\\', '#', '\n', '{', '*', '&', '!', '-', ' ',
        ];
        let mut runs = 0;
        for (text, format) in &seeds {
            let chars: Vec<char> = text.chars().collect();
            let lines = text.lines().count().max(1) + 1;
            let mut check = |t: String| {
                runs += 1;
                if let Err(FleetError::Parse { line, .. }) = Inventory::parse(&t, "g", *format) {
                    assert!(line <= lines + 1, "line {line} past the end in {t:?}");
                }
            };
            for cut in 0..=chars.len() {
                check(chars[..cut].iter().collect());
            }
            for (i, special) in (0..chars.len()).step_by(3).zip(specials.iter().cycle()) {
                let mut c = chars.clone();
                c[i] = *special;
                check(c.iter().collect());
                let mut c = chars.clone();
                c.remove(i);
                check(c.iter().collect());
            }
        }
        assert!(runs > 1000, "{runs}");
    }

    /// The config for the resolution tests.
    fn cfg() -> Config {
        Config::parse(
            r#"
user = "top"
fleet_url = "https://{host}:8443/remo/"

[hosts.web1]
server = "https://web1.example/remo"
[hosts.db1]
server = "https://db1.example/remo"
user = "dba"
[hosts.w2]
server = "https://w2.other/remo"

[groups]
web = ["web1", "w2"]
db = ["db1"]
both = ["@web", "db", "web1", "https://extra.example/remo/"]
"#,
        )
        .unwrap()
    }

    #[test]
    fn spec_order_dedup_and_aliases() {
        let cfg = cfg();
        let got = resolve_spec("both", &cfg, None).unwrap();
        assert_eq!(names(&got), ["web1", "w2", "db1", "extra.example/remo"]);
        assert_eq!(got[0].via, Via::Alias("web1".into()));
        assert_eq!(server(&got[3]), "https://extra.example/remo");
        let got = resolve_spec("db1,web, web1 ,db", &cfg, None).unwrap();
        assert_eq!(names(&got), ["db1", "web1", "w2"]);
        // `all` without an inventory: every alias (sorted, as config keeps them).
        assert_eq!(
            names(&resolve_spec("all", &cfg, None).unwrap()),
            ["db1", "w2", "web1"]
        );
    }

    #[test]
    fn spec_exclusions() {
        let cfg = cfg();
        assert_eq!(
            names(&resolve_spec("both,!web", &cfg, None).unwrap()),
            ["db1", "extra.example/remo"]
        );
        assert_eq!(
            names(&resolve_spec("!w2,both", &cfg, None).unwrap()),
            ["web1", "db1", "extra.example/remo"]
        );
        // Only exclusions: from `all`.
        assert_eq!(
            names(&resolve_spec("!db", &cfg, None).unwrap()),
            ["w2", "web1"]
        );
        assert!(matches!(
            resolve_spec("web,!web", &cfg, None),
            Err(FleetError::Empty(_))
        ));
        assert!(matches!(
            resolve_spec("web,!nope", &cfg, None),
            Err(FleetError::Unknown { .. })
        ));
    }

    #[test]
    fn spec_errors_unknown_empty_items_cycles_reserved() {
        let cfg = cfg();
        match resolve_spec("web,nosuch", &cfg, None) {
            Err(e @ FleetError::Unknown { .. }) => {
                let m = e.to_string();
                assert!(m.contains("'nosuch'") && m.contains("both, db, web"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        // `@name` is a group only; `db1` is an alias, not a group.
        assert!(matches!(
            resolve_spec("@db1", &cfg, None),
            Err(FleetError::Unknown { .. })
        ));
        for bad in ["", "web,", ",web", "web,,db", "!"] {
            assert!(resolve_spec(bad, &cfg, None).is_err(), "{bad:?}");
        }
        let mut c = cfg.clone();
        c.groups.insert("a".into(), vec!["b".into()]);
        c.groups
            .insert("b".into(), vec!["web1".into(), "@a".into()]);
        match resolve_spec("a", &c, None) {
            Err(FleetError::Groups(m)) => assert!(m.contains("a -> b -> a"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A group that names itself.
        let mut c = cfg.clone();
        c.groups.insert("me".into(), vec!["me".into()]);
        assert!(matches!(
            resolve_spec("me", &c, None),
            Err(FleetError::Groups(_))
        ));
        // Unknown member: the message says where it was used.
        let mut c = cfg.clone();
        c.groups.insert("bad".into(), vec!["ghost".into()]);
        let m = resolve_spec("bad", &c, None).unwrap_err().to_string();
        assert!(m.contains("'ghost' (in [groups].bad)"), "{m}");
        // Reserved and malformed group names in config.
        for name in ["all", "ungrouped", "a b"] {
            let mut c = cfg.clone();
            c.groups.insert(name.into(), vec!["web1".into()]);
            assert!(
                matches!(resolve_spec("web1", &c, None), Err(FleetError::Groups(_))),
                "{name}"
            );
        }
        // `ungrouped` needs an inventory.
        assert!(matches!(
            resolve_spec("ungrouped", &cfg, None),
            Err(FleetError::Unknown { .. })
        ));
    }

    #[test]
    fn config_groups_nesting_is_bounded() {
        let mut c = Config::default();
        c.hosts.insert(
            "h".into(),
            HostEntry {
                server: "https://h/r".into(),
                ..HostEntry::default()
            },
        );
        for i in 0..100 {
            c.groups
                .insert(format!("g{i}"), vec![format!("g{}", i + 1)]);
        }
        c.groups.insert("g100".into(), vec!["h".into()]);
        match resolve_spec("g0", &c, None) {
            Err(FleetError::Groups(m)) => assert!(m.contains("deep"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(names(&resolve_spec("g90", &c, None).unwrap()), ["h"]);
    }

    #[test]
    fn inventory_hosts_urls_from_remo_server_ansible_host_and_template() {
        let inv = ini(r#"
plain
[front]
i1 ansible_host=10.0.0.5
i2 remo_server=https://w2.example/custom/ remo_user=deploy remo_key=~/k
i3 ansible_host=2001:db8::7
[front:vars]
remo_user=webops
"#);
        let cfg = cfg();
        let got = resolve_spec("front,plain", &cfg, Some(&inv)).unwrap();
        assert_eq!(names(&got), ["i1", "i2", "i3", "plain"]);
        assert_eq!(
            got[0].via,
            Via::Url {
                server: "https://10.0.0.5:8443/remo".into(),
                user: Some("webops".into()),
                key: None
            }
        );
        assert_eq!(
            got[1].via,
            Via::Url {
                server: "https://w2.example/custom".into(),
                user: Some("deploy".into()),
                key: Some("~/k".into())
            }
        );
        assert_eq!(server(&got[2]), "https://[2001:db8::7]:8443/remo");
        assert_eq!(server(&got[3]), "https://plain:8443/remo");
        // The default template, and {name}.
        let mut c = cfg.clone();
        c.fleet_url = None;
        assert_eq!(
            server(&resolve_spec("i1", &c, Some(&inv)).unwrap()[0]),
            "https://10.0.0.5/remo"
        );
        c.fleet_url = Some("http://gw.example/{name}/remo?via={host}".into());
        assert_eq!(
            server(&resolve_spec("i1", &c, Some(&inv)).unwrap()[0]),
            "http://gw.example/i1/remo?via=10.0.0.5"
        );
        for bad in [
            "https://{hostname}/r",
            "https://{host/r",
            "https://host}/r",
            "{host}/remo",
            "https://{host} x",
        ] {
            c.fleet_url = Some(bad.into());
            assert!(
                matches!(
                    resolve_spec("i1", &c, Some(&inv)),
                    Err(FleetError::Template(_))
                ),
                "{bad}"
            );
        }
        // remo_server needs no template.
        assert_eq!(
            server(&resolve_spec("i2", &c, Some(&inv)).unwrap()[0]),
            "https://w2.example/custom"
        );
    }

    #[test]
    fn lookup_order_config_over_inventory_groups_over_hosts() {
        let inv = ini("[web]\nweb1\nw9\n[db]\ndb1\n[web1]\nx\n");
        let cfg = cfg();
        // Config [groups].web wins over the inventory's web.
        assert_eq!(
            names(&resolve_spec("web", &cfg, Some(&inv)).unwrap()),
            ["web1", "w2"]
        );
        // `db1` is an alias and an inventory host: the alias wins.
        assert_eq!(
            resolve_spec("db1", &cfg, Some(&inv)).unwrap()[0].via,
            Via::Alias("db1".into())
        );
        // `web1` is an inventory group and an alias: the alias wins (in
        // config [groups] too); `@` asks for the group.
        assert_eq!(
            resolve_spec("web1", &cfg, Some(&inv)).unwrap()[0].via,
            Via::Alias("web1".into())
        );
        assert_eq!(
            names(&resolve_spec("@web1", &cfg, Some(&inv)).unwrap()),
            ["x"]
        );
        assert_eq!(
            names(&resolve_spec("@db", &cfg, Some(&inv)).unwrap()),
            ["db1"]
        );
        // An inventory host through two groups appears once; `all` is the inventory's.
        assert_eq!(
            names(&resolve_spec("all", &cfg, Some(&inv)).unwrap()),
            ["web1", "w9", "db1", "x"]
        );
        assert_eq!(
            names(&resolve_spec("!@web1", &cfg, Some(&inv)).unwrap()),
            ["web1", "w9", "db1"]
        );
        // Known groups in the message include the inventory's.
        let m = resolve_spec("zzz", &cfg, Some(&inv))
            .unwrap_err()
            .to_string();
        assert!(m.contains("ungrouped") && m.contains("both"), "{m}");
    }

    #[test]
    fn duplicate_labels_are_refused() {
        let mut c = cfg();
        c.groups
            .insert("clash".into(), vec!["https://web1".into(), "@x".into()]);
        c.groups.insert("x".into(), vec!["https://web1/".into()]);
        // Same URL twice (trailing slash ignored): one target.
        assert_eq!(names(&resolve_spec("clash", &c, None).unwrap()), ["web1"]);
        // A URL labelled like an alias.
        assert!(matches!(
            resolve_spec("web1,https://web1", &c, None),
            Err(FleetError::Spec { .. })
        ));
    }

    #[test]
    fn target_precedence_for_inventory_hosts() {
        let cfg = Config {
            user: Some("top".into()),
            key: Some("/k/top".into()),
            ..cfg()
        };
        let h = FleetHost {
            name: "w".into(),
            via: Via::Url {
                server: "https://w/remo".into(),
                user: Some("invuser".into()),
                key: None,
            },
        };
        let env = EnvValues {
            login: Some("me".into()),
            ..Default::default()
        };
        let ov = Overrides {
            host: Some("ignored".into()),
            server: Some("https://ignored".into()),
            ..Default::default()
        };
        let t = h.target(&cfg, &ov, &env).unwrap();
        assert_eq!(
            (t.server.as_str(), t.user.as_str(), t.key.to_str().unwrap()),
            ("https://w/remo", "invuser", "/k/top")
        );
        let env2 = EnvValues {
            user: Some("envuser".into()),
            ..env.clone()
        };
        assert_eq!(h.target(&cfg, &ov, &env2).unwrap().user, "envuser");
        let ov2 = Overrides {
            user: Some("flag".into()),
            ..ov.clone()
        };
        assert_eq!(h.target(&cfg, &ov2, &env2).unwrap().user, "flag");
        // An alias resolves as `remo ALIAS` does.
        let a = FleetHost {
            name: "db1".into(),
            via: Via::Alias("db1".into()),
        };
        let t = a.target(&cfg, &ov, &env).unwrap();
        assert_eq!(
            (t.server.as_str(), t.user.as_str()),
            ("https://db1.example/remo", "dba")
        );
    }
}
