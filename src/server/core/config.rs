//! Server settings: where they come from (FastCGI params, the process
//! environment, flags) and the limits file (`REMO_CONFIG`, TOML).
//!
//! In FastCGI mode every request carries its own `REMO_*` params, so one
//! daemon can serve several vhosts, each with its own key and user database;
//! a param that is absent falls back to the daemon's own settings.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::server::core::request::Params;

/// Default idle timeout of a session, in seconds.
pub(crate) const DEFAULT_SESSION_TIMEOUT: u64 = 600;

/// Why the settings could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// A required setting is missing.
    #[error("{0} is not set (give it as a FastCGI param, an environment variable or a flag)")]
    Missing(&'static str),
    /// A setting has a value that cannot be used.
    #[error("{name} is invalid: {why}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The TOML file could not be read or parsed.
    #[error("config file {path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The settings that select a server instance (key, users, limits, timeout).
/// Two requests with equal `InstanceKey`s share sessions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct InstanceKey {
    /// `REMO_KEY_FILE`: the server's private key.
    pub key_file: Option<PathBuf>,
    /// `REMO_USER_DB`: the user database.
    pub user_db: Option<PathBuf>,
    /// `REMO_CONFIG`: the optional TOML file.
    pub config: Option<PathBuf>,
    /// `REMO_SESSION_TIMEOUT`, as given.
    pub session_timeout: Option<String>,
    /// Whether `config` may be missing (then it counts as empty): only
    /// `remod serve --dir DIR`'s `DIR/remo.toml`, so that a file added
    /// later takes effect at the next reload (SIGHUP).
    pub config_optional: bool,
    /// `--ca-keys`, `--revoked`, `--server-name` (or `REMO_CA_KEYS`, …
    /// in remod's environment): certificate logins (§7); where unset, the
    /// config file's `[certificates]`. Never from FastCGI params.
    pub certs: CertSettings,
    /// Where the `[certificates]` table comes from: remod's own config
    /// file, also when a param names another one (see [`CertTable`]).
    pub cert_table: CertTable,
    /// A certificate setting a request tried to give as a FastCGI param:
    /// refused (see [`CERT_PARAMS`]).
    pub refused_param: Option<&'static str>,
}

/// The certificate settings, which a FastCGI param may not give. Any
/// process that can reach the socket chooses params, and these would let
/// it choose whom remod believes: a root-owned public key whose private
/// half a user holds (a registered user's `.pub`) named as a CA lets that
/// user sign herself any grants; another revocation list (or a missing
/// one) un-revokes; another server name makes a `web*` certificate valid
/// here. They come from remod's flags, its environment, or the
/// `[certificates]` table of its config file.
pub(crate) const CERT_PARAMS: [&str; 3] = ["REMO_CA_KEYS", "REMO_REVOKED", "REMO_SERVER_NAME"];

/// Where an instance's `[certificates]` table is read. Certificate trust
/// is one decision, made by whoever set remod up: its flags, environment
/// and own config file together, or a config file of its own that names
/// all of it. A FastCGI peer may choose among root's config files
/// (`REMO_CONFIG`), and must not be able to mix them: picking an empty
/// file would otherwise drop the revocation list that remod's own config
/// file names while the CA from its flags stays trusted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum CertTable {
    /// The instance's config file is remod's own (no `REMO_CONFIG`
    /// param, or the param names that file): its table applies.
    #[default]
    Own,
    /// `REMO_CONFIG` came from a param. If remod has certificate settings
    /// of its own (flags, environment, or this file's table: `path`, which
    /// may be missing when `optional`), they apply and the param's file
    /// may not have a table; if it has none, the param's file's table
    /// applies whole.
    Daemon {
        /// remod's own config file.
        path: Option<PathBuf>,
        /// Whether it may be missing.
        optional: bool,
    },
}

/// Daemon-wide defaults, used where a request carries no param.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// Instance selection defaults.
    pub instance: InstanceKey,
    /// `REMO_BASE` default (mount prefix).
    pub base: Option<String>,
}

fn param_path(params: &Params, name: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    params
        .get(name)
        .filter(|v| !v.is_empty())
        .map(|v| PathBuf::from(std::ffi::OsStr::from_bytes(v)))
}

/// What a request selects, read from its params in one place: the mount
/// prefix it is served under and the instance that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    /// `REMO_BASE`: the mount prefix, if configured.
    pub base: Option<String>,
    /// The instance: key, users, limits file, session timeout.
    pub instance: InstanceKey,
}

impl Defaults {
    /// Everything a request selects: its params, else these defaults.
    pub(crate) fn select(&self, params: &Params) -> Selection {
        Selection {
            base: self.base_for(params),
            instance: self.instance_for(params),
        }
    }

    fn instance_for(&self, params: &Params) -> InstanceKey {
        let config = param_path(params, "REMO_CONFIG");
        let config_param = config.is_some();
        InstanceKey {
            key_file: param_path(params, "REMO_KEY_FILE")
                .or_else(|| self.instance.key_file.clone()),
            user_db: param_path(params, "REMO_USER_DB").or_else(|| self.instance.user_db.clone()),
            config_optional: config.is_none() && self.instance.config_optional,
            config: config.or_else(|| self.instance.config.clone()),
            session_timeout: params
                .get_str("REMO_SESSION_TIMEOUT")
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .or_else(|| self.instance.session_timeout.clone()),
            certs: self.instance.certs.clone(),
            cert_table: if config_param {
                CertTable::Daemon {
                    path: self.instance.config.clone(),
                    optional: self.instance.config_optional,
                }
            } else {
                CertTable::Own
            },
            refused_param: CERT_PARAMS
                .into_iter()
                .find(|name| params.get(name).is_some_and(|v| !v.is_empty())),
        }
    }

    fn base_for(&self, params: &Params) -> Option<String> {
        params
            .get_str("REMO_BASE")
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .or_else(|| self.base.clone())
    }
}

/// The settings, as named (params, environment, flags or `[certificates]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertSettings {
    /// File of trusted CA public keys (PEM, one or more `PUBLIC KEY` blocks).
    pub ca_keys: Option<PathBuf>,
    /// The revocation list (see [`crate::certfile`]); may be missing (empty).
    pub revoked: Option<PathBuf>,
    /// The server's name for `hosts` patterns (default: the host name).
    pub server_name: Option<String>,
}

impl CertSettings {
    /// `self` where set, else `other` (params over the config file).
    pub(crate) fn or(&self, other: &CertSettings) -> CertSettings {
        CertSettings {
            ca_keys: self.ca_keys.clone().or_else(|| other.ca_keys.clone()),
            revoked: self.revoked.clone().or_else(|| other.revoked.clone()),
            server_name: self
                .server_name
                .clone()
                .or_else(|| other.server_name.clone()),
        }
    }
}

/// Limits, all explicit and configurable in the `[limits]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body in bytes (uploads, stdin), counted on the wire.
    pub max_request_bytes: u64,
    /// Largest combined stdout+stderr of one `cmd`; beyond it the command is killed.
    pub max_output_bytes: u64,
    /// Most live sessions in this instance.
    pub max_sessions: usize,
    /// Most live sessions per user.
    pub max_sessions_per_user: usize,
    /// Longest a session may live, idle or not, in seconds.
    pub max_session_lifetime: u64,
    /// Most commands running at once in this instance.
    pub max_commands: usize,
    /// Largest `timeout` a `cmd` may ask for, in seconds (0: no cap).
    pub max_command_timeout: u64,
    /// Most interactive processes in this instance.
    pub max_processes: usize,
    /// Most interactive processes per session.
    pub max_processes_per_session: usize,
    /// Output buffered per interactive process before remod stops reading
    /// from it (the process then blocks on write, as on a slow terminal).
    pub process_buffer_bytes: usize,
    /// An interactive process nobody polled for this many seconds is killed.
    pub process_idle_timeout: u64,
    /// Most commands one user runs at once (default: a quarter of
    /// `max_commands`, at least 1).
    pub max_commands_per_user: Option<usize>,
    /// Most interactive processes of one user (default: a quarter of
    /// `max_processes`, at least 1).
    pub max_processes_per_user: Option<usize>,
    /// Command slots only admins may use (default: `max_commands / 16`).
    pub admin_reserve_commands: Option<usize>,
    /// Interactive-process slots only admins may use (default:
    /// `max_processes / 16`).
    pub admin_reserve_processes: Option<usize>,
    /// Session slots only admins may use (default: `max_sessions / 16`).
    pub admin_reserve_sessions: Option<usize>,
    /// A `cmd` whose request body brings no byte for this many seconds is
    /// ended with `timeout` (0: never).
    pub stdin_idle_timeout: u64,
    /// `pids.max` of each session's cgroup (0: none).
    pub session_pids_max: u64,
    /// `memory.max` of each session's cgroup in bytes (0: none).
    pub session_memory_max: u64,
    /// Most entries one `list` sends (the first ones by name); it also
    /// bounds the names remod holds to sort them.
    pub list_max_entries: usize,
    /// Most staged (resumable) uploads in this instance.
    pub max_uploads: usize,
    /// Most staged uploads of one user.
    pub max_uploads_per_user: usize,
    /// A staged upload no request touched for this many seconds is discarded.
    pub upload_idle_timeout: u64,
    /// Most rows (users, sessions, processes, audit rows) one answer of the
    /// `admin` operation holds; a page also ends when one record is full.
    pub admin_page_max: usize,
    /// Most `get`, `put` and `list` requests in progress in this instance.
    pub max_transfers: usize,
    /// Most transfers one user has in progress (default: a quarter of
    /// `max_transfers`, at least 1).
    pub max_transfers_per_user: Option<usize>,
    /// Transfer slots only admins may use (default: `max_transfers / 16`).
    pub admin_reserve_transfers: Option<usize>,
    /// A transfer whose client sends no byte of its body, or takes no byte
    /// of its answer, for this many seconds is ended with `timeout` (0:
    /// never).
    pub transfer_idle_timeout: u64,
}

/// The share of a global limit one user gets by default.
fn quarter(max: usize) -> usize {
    max.div_ceil(4).max(1)
}

impl Limits {
    /// `max_commands_per_user`, defaulted.
    pub(crate) fn commands_per_user(&self) -> usize {
        self.max_commands_per_user
            .unwrap_or_else(|| quarter(self.max_commands))
    }

    /// `max_processes_per_user`, defaulted.
    pub(crate) fn processes_per_user(&self) -> usize {
        self.max_processes_per_user
            .unwrap_or_else(|| quarter(self.max_processes))
    }

    /// `admin_reserve_commands`, defaulted.
    pub(crate) fn commands_admin_reserve(&self) -> usize {
        self.admin_reserve_commands
            .unwrap_or(self.max_commands / 16)
    }

    /// `admin_reserve_processes`, defaulted.
    pub(crate) fn processes_admin_reserve(&self) -> usize {
        self.admin_reserve_processes
            .unwrap_or(self.max_processes / 16)
    }

    /// `max_transfers_per_user`, defaulted.
    pub(crate) fn transfers_per_user(&self) -> usize {
        self.max_transfers_per_user
            .unwrap_or_else(|| quarter(self.max_transfers))
    }

    /// `admin_reserve_transfers`, defaulted.
    pub(crate) fn transfers_admin_reserve(&self) -> usize {
        self.admin_reserve_transfers
            .unwrap_or(self.max_transfers / 16)
    }

    /// `transfer_idle_timeout` as a duration; `None` for never.
    pub(crate) fn transfer_idle(&self) -> Option<std::time::Duration> {
        (self.transfer_idle_timeout > 0)
            .then(|| std::time::Duration::from_secs(self.transfer_idle_timeout))
    }

    /// `admin_reserve_sessions`, defaulted.
    pub(crate) fn sessions_admin_reserve(&self) -> usize {
        self.admin_reserve_sessions
            .unwrap_or(self.max_sessions / 16)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 1 << 40,
            max_output_bytes: 1 << 30,
            max_sessions: 16_384,
            max_sessions_per_user: 256,
            max_session_lifetime: 12 * 3600,
            max_commands: 256,
            max_command_timeout: 0,
            max_processes: 256,
            max_processes_per_session: 32,
            process_buffer_bytes: 1 << 20,
            process_idle_timeout: 600,
            max_commands_per_user: None,
            max_processes_per_user: None,
            admin_reserve_commands: None,
            admin_reserve_processes: None,
            admin_reserve_sessions: None,
            stdin_idle_timeout: 600,
            session_pids_max: 0,
            session_memory_max: 0,
            list_max_entries: 100_000,
            max_uploads: 64,
            max_uploads_per_user: 8,
            upload_idle_timeout: 3600,
            admin_page_max: 200,
            max_transfers: 128,
            max_transfers_per_user: None,
            admin_reserve_transfers: None,
            transfer_idle_timeout: 600,
        }
    }
}

/// The `REMO_CONFIG` TOML file. Later features add tables here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// `[limits]`.
    pub limits: Limits,
    /// `[files.NAME]`: the configuration files the `config` operation may edit.
    pub files: std::collections::BTreeMap<String, crate::server::store::cfgfiles::FileSpec>,
    /// `[firewall]`: profiles for the `open` operation (docs/firewall.md).
    pub firewall: Option<crate::firewall::FirewallConfig>,
    /// `[certificates]`: CA keys, revocation list and server name for
    /// certificate logins (docs/fleet.md), where no param or flag sets them.
    pub certificates: CertSettings,
}

impl ConfigFile {
    /// Reads and parses the file; unknown keys are errors so typos surface.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        let mut file: ConfigFile = toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            why: toml_error(&text, &e),
        })?;
        crate::server::store::cfgfiles::check_specs(&mut file.files).map_err(|e| {
            ConfigError::File {
                path: path.to_path_buf(),
                why: match table_line(&text, &e.to_string()) {
                    Some(line) => format!("line {line}, column 1: {e}"),
                    None => e.to_string(),
                },
            }
        })?;
        Ok(file)
    }
}

/// The line of the `[files.NAME]` header a check's message (`files.NAME:
/// …`) is about, so the admin is sent to the right place.
fn table_line(text: &str, why: &str) -> Option<usize> {
    let table = why.split(':').next()?;
    let header = format!("[{table}]");
    text.lines()
        .position(|l| l.trim().replace(' ', "") == header)
        .map(|i| i + 1)
}

/// A TOML error as "line L, column C: what", without the file's text.
///
/// The parser's own message quotes the offending line, and its messages
/// quote keys and values from the file. The file may be one the requester
/// could not read (a param can name any root-owned file), so the log gets
/// the position and the kind of error only, with every quoted part
/// replaced by `…`: the admin can look at the line.
pub(crate) fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let what = redact_quoted(e.message());
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {col}: {what}")
        }
        None => what,
    }
}

/// Replaces every `quoted` and "quoted" part of a message with `…`, and
/// drops control characters, so nothing from the file reaches the log.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut quote: Option<char> = None;
    for c in msg.chars() {
        match quote {
            Some(q) if c == q => {
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if c == '`' || c == '"' || c == '\'' => {
                out.push(c);
                out.push('…');
                quote = Some(c);
            }
            None if c.is_control() => out.push(' '),
            None => out.push(c),
        }
    }
    out
}

/// Parses `REMO_SESSION_TIMEOUT`.
pub(crate) fn parse_timeout(v: Option<&str>) -> Result<u64, ConfigError> {
    match v {
        None => Ok(DEFAULT_SESSION_TIMEOUT),
        Some(s) => match s.trim().parse::<u64>() {
            Ok(n) if n > 0 && n <= 7 * 24 * 3600 => Ok(n),
            _ => Err(ConfigError::Invalid {
                name: "REMO_SESSION_TIMEOUT",
                why: format!("{s:?} is not a number of seconds between 1 and 604800"),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_override_defaults() {
        let d = Defaults {
            instance: InstanceKey {
                key_file: Some("/d/key".into()),
                user_db: Some("/d/db".into()),
                config: None,
                session_timeout: None,
                config_optional: false,
                certs: Default::default(),
                cert_table: CertTable::Own,
                refused_param: None,
            },
            base: Some("/remo".into()),
        };
        let mut p = Params::new();
        p.push("REMO_USER_DB", "/p/db");
        p.push("REMO_BASE", "");
        let s = d.select(&p);
        assert_eq!(s.instance.refused_param, None);
        assert_eq!(s.instance.key_file.as_deref(), Some(Path::new("/d/key")));
        assert_eq!(s.instance.user_db.as_deref(), Some(Path::new("/p/db")));
        assert_eq!(s.base.as_deref(), Some("/remo"));
        for name in CERT_PARAMS {
            let mut p = Params::new();
            p.push(name, "/etc/remo/x");
            assert_eq!(d.select(&p).instance.refused_param, Some(name));
        }
    }

    #[test]
    fn timeout_and_file_parsing() {
        assert_eq!(parse_timeout(None).unwrap(), 600);
        assert_eq!(parse_timeout(Some("30")).unwrap(), 30);
        assert!(parse_timeout(Some("0")).is_err());
        assert!(parse_timeout(Some("x")).is_err());
        let c: ConfigFile = toml::from_str("[limits]\nmax_sessions = 5\n").unwrap();
        assert_eq!(c.limits.max_sessions, 5);
        assert_eq!(c.limits.max_sessions_per_user, 256);
        assert!(toml::from_str::<ConfigFile>("[limits]\nmax_sesions = 5\n").is_err());
    }

    #[test]
    fn toml_errors_keep_the_position_and_lose_the_text() {
        let text = "[limits]\nSECRETKEY = 1\n";
        let e = toml::from_str::<ConfigFile>(text).unwrap_err();
        let m = toml_error(text, &e);
        assert!(m.starts_with("line 2, column 1: "), "{m}");
        assert!(!m.contains("SECRETKEY"), "{m}");
        let text = "root:$y$j9T$SECRETHASH:19000:0:99999:7:::\n";
        let e = toml::from_str::<ConfigFile>(text).unwrap_err();
        let m = toml_error(text, &e);
        assert!(m.starts_with("line 1, column "), "{m}");
        assert!(!m.contains("SECRETHASH") && !m.contains("root"), "{m}");
        let text = "[limits]\nmax_sessions = \"SECRETVALUE\"\n";
        let e = toml::from_str::<ConfigFile>(text).unwrap_err();
        let m = toml_error(text, &e);
        assert!(!m.contains("SECRETVALUE"), "{m}");
        assert_eq!(redact_quoted("a `b` \"c\" d\ne"), "a `…` \"…\" d e");
    }
}
