//! `~/.config/remo/config.toml` and how a command's server, user and key
//! are resolved from flags, environment, host aliases and defaults.
//!
//! Precedence: command-line flags > environment (`REMO_SERVER`, `REMO_USER`,
//! `REMO_KEY`) > host alias > top-level defaults > built-in defaults
//! (`$USER`, `~/.config/remo/id_p256`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::ClientError;

/// Environment variable naming the server base URL.
pub(crate) const ENV_SERVER: &str = "REMO_SERVER";
/// Environment variable naming the user.
pub(crate) const ENV_USER: &str = "REMO_USER";
/// Environment variable naming the identity key file.
pub(crate) const ENV_KEY: &str = "REMO_KEY";

/// One `[hosts.NAME]` entry: a short name for a server, like an ssh `Host`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct HostEntry {
    /// Base URL, e.g. `https://web1.example.org/remo`.
    pub server: String,
    /// User on that server.
    pub user: Option<String>,
    /// Identity key file for that server.
    pub key: Option<String>,
    /// CA certificates (PEM) trusted for this server besides the system's.
    pub cacert: Option<String>,
    /// Accept a certificate no CA vouches for (self-signed) if its
    /// fingerprint is the one pinned on first use.
    #[serde(default)]
    pub pin_certificate: bool,
}

/// The parsed configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Alias used when a command names no host.
    pub default_host: Option<String>,
    /// Default user.
    pub user: Option<String>,
    /// Default identity key file.
    pub key: Option<String>,
    /// Host aliases.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostEntry>,
    /// Host groups for `remo @GROUP …`: each member is a `[hosts]` alias, an
    /// inventory host, another group (plain or as `@name`) or a URL
    /// (client::fleet::inventory resolves them).
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Default Ansible inventory file for `@SPEC` targets (`--inventory`
    /// overrides it); `~/` is expanded, see [`Config::inventory_path`].
    pub inventory: Option<String>,
    /// URL template for inventory hosts without `remo_server`:
    /// `{host}` = `ansible_host` or else the inventory name, `{name}` = the
    /// inventory name. Default `https://{host}/remo`.
    pub fleet_url: Option<String>,
}

/// The user's home directory (`$HOME` first, so tests can redirect it).
pub(crate) fn home_dir() -> Option<PathBuf> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Some(PathBuf::from(h)),
        _ => dirs::home_dir(),
    }
}

/// `$XDG_CONFIG_HOME/remo`, or `~/.config/remo`.
pub(crate) fn config_dir() -> Result<PathBuf, ClientError> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME") {
        let p = PathBuf::from(x);
        if p.is_absolute() {
            return Ok(p.join("remo"));
        }
    }
    home_dir()
        .map(|h| h.join(".config").join("remo"))
        .ok_or_else(|| ClientError::Config("cannot find the home directory (set HOME)".into()))
}

/// `$XDG_CACHE_HOME/remo`, or `~/.cache/remo`: what may be lost without
/// harm (the state of interrupted uploads).
pub(crate) fn cache_dir() -> Result<PathBuf, ClientError> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        let p = PathBuf::from(x);
        if p.is_absolute() {
            return Ok(p.join("remo"));
        }
    }
    home_dir()
        .map(|h| h.join(".cache").join("remo"))
        .ok_or_else(|| ClientError::Config("cannot find the home directory (set HOME)".into()))
}

/// Expands a leading `~/` to the home directory.
pub(crate) fn expand_tilde(path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(h) = home_dir() {
            return h.join(rest);
        }
    } else if path == "~" {
        if let Some(h) = home_dir() {
            return h;
        }
    }
    PathBuf::from(path)
}

impl Config {
    /// The `inventory` setting with `~/` expanded.
    pub(crate) fn inventory_path(&self) -> Option<PathBuf> {
        self.inventory.as_deref().map(expand_tilde)
    }

    /// Loads `config.toml` from the config directory; a missing file is an
    /// empty configuration.
    pub(crate) fn load() -> Result<Config, ClientError> {
        Self::load_from(&config_dir()?.join("config.toml"))
    }

    /// Loads a given file; a missing file is an empty configuration.
    pub(crate) fn load_from(path: &Path) -> Result<Config, ClientError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(ClientError::io(path, "cannot read", e)),
        };
        Self::parse(&text).map_err(|e| ClientError::Config(format!("{}:{e}", path.display())))
    }

    /// Parses configuration text.
    pub(crate) fn parse(text: &str) -> Result<Config, ParseError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| {
                    let before = text.get(..span.start).unwrap_or(text);
                    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
                    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    (line, col)
                })
                .unwrap_or((1, 1));
            ParseError {
                line,
                column,
                message: e.message().trim_end().to_string(),
            }
        })
    }
}

/// Why a configuration file was refused, and where (displayed as
/// `LINE:COLUMN: what`, after the file name the caller adds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong there.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Whether a host argument is a URL rather than an alias.
pub(crate) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// What the command line gave, before resolution.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    /// The `HOST` positional: alias or URL.
    pub host: Option<String>,
    /// `--server URL`.
    pub server: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--key`.
    pub key: Option<String>,
    /// `--cacert`.
    pub cacert: Option<String>,
}

/// The environment values that matter (passed in, so resolution is testable).
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvValues {
    /// `REMO_SERVER`.
    pub server: Option<String>,
    /// `REMO_USER`.
    pub user: Option<String>,
    /// `REMO_KEY`.
    pub key: Option<String>,
    /// `USER` (the last fallback for the user name).
    pub login: Option<String>,
}

impl EnvValues {
    /// Reads the process environment; empty values count as unset.
    pub(crate) fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        EnvValues {
            server: get(ENV_SERVER),
            user: get(ENV_USER),
            key: get(ENV_KEY),
            login: get("USER").or_else(|| get("LOGNAME")),
        }
    }
}

/// Where a command connects, as whom, with which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Base URL without a trailing `/`.
    pub server: String,
    /// User name.
    pub user: String,
    /// Identity key file.
    pub key: PathBuf,
    /// What TLS trusts for this server.
    pub tls: super::tls::TlsOptions,
}

/// Resolves the target of a command.
pub(crate) fn resolve(
    cfg: &Config,
    ov: &Overrides,
    env: &EnvValues,
) -> Result<Target, ClientError> {
    let mut server: Option<String> = None;
    let mut alias: Option<(&str, &HostEntry)> = None;
    let lookup = |name: &str| -> Result<(&str, &HostEntry), ClientError> {
        cfg.hosts
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "unknown host '{name}' (not a URL and no [hosts.{name}] in {})",
                    config_dir()
                        .map(|d| d.join("config.toml").display().to_string())
                        .unwrap_or_else(|_| "config.toml".into())
                ))
            })
    };
    if let Some(s) = &ov.server {
        server = Some(s.clone());
    }
    if let Some(h) = &ov.host {
        if is_url(h) {
            server = server.or_else(|| Some(h.clone()));
        } else {
            alias = Some(lookup(h)?);
        }
    }
    if server.is_none() && alias.is_none() {
        if let Some(s) = &env.server {
            server = Some(s.clone());
        } else if let Some(d) = &cfg.default_host {
            alias = Some(lookup(d)?);
        }
    }
    let server = match (server, alias) {
        (Some(s), _) => s,
        (None, Some((_, entry))) => entry.server.clone(),
        (None, None) => {
            return Err(ClientError::Config(format!(
                "no server given: name a HOST (alias or URL), use --server URL, set {ENV_SERVER}, or set default_host in config.toml"
            )))
        }
    };
    if !is_url(&server) {
        return Err(ClientError::Config(format!(
            "server '{server}' is not an http:// or https:// URL"
        )));
    }
    let entry = alias.map(|(_, e)| e);
    let user = ov
        .user
        .clone()
        .or_else(|| env.user.clone())
        .or_else(|| entry.and_then(|e| e.user.clone()))
        .or_else(|| cfg.user.clone())
        .or_else(|| env.login.clone())
        .ok_or_else(|| ClientError::Config("no user given (use --user or set REMO_USER)".into()))?;
    let key = match ov
        .key
        .clone()
        .or_else(|| env.key.clone())
        .or_else(|| entry.and_then(|e| e.key.clone()))
        .or_else(|| cfg.key.clone())
    {
        Some(k) => expand_tilde(&k),
        None => config_dir()?.join("id_p256"),
    };
    let tls = super::tls::TlsOptions {
        cacert: ov
            .cacert
            .clone()
            .or_else(|| entry.and_then(|e| e.cacert.clone()))
            .map(|c| expand_tilde(&c)),
        pin_certificate: entry.is_some_and(|e| e.pin_certificate),
    };
    Ok(Target {
        server: server.trim_end_matches('/').to_string(),
        user,
        key,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
default_host = "web1"
user = "top"
key = "/keys/top"

[hosts.web1]
server = "https://web1.example/remo/"
user = "alice"

[hosts.db]
server = "http://db.example/remo"
key = "/keys/db"
"#;

    #[test]
    fn precedence_flags_env_alias_defaults() {
        let cfg = Config::parse(CFG).unwrap();
        let none = EnvValues {
            login: Some("me".into()),
            ..Default::default()
        };
        // Default host.
        let t = resolve(&cfg, &Overrides::default(), &none).unwrap();
        assert_eq!(t.server, "https://web1.example/remo");
        assert_eq!(t.user, "alice");
        assert_eq!(t.key, PathBuf::from("/keys/top"));
        // Alias by name; top-level user as fallback.
        let ov = Overrides {
            host: Some("db".into()),
            ..Default::default()
        };
        let t = resolve(&cfg, &ov, &none).unwrap();
        assert_eq!(
            (t.user.as_str(), t.key.to_str().unwrap()),
            ("top", "/keys/db")
        );
        // Env beats alias, flags beat env.
        let env = EnvValues {
            user: Some("envuser".into()),
            key: Some("/keys/env".into()),
            ..none.clone()
        };
        let t = resolve(&cfg, &ov, &env).unwrap();
        assert_eq!(
            (t.user.as_str(), t.key.to_str().unwrap()),
            ("envuser", "/keys/env")
        );
        let ov2 = Overrides {
            user: Some("flag".into()),
            ..ov.clone()
        };
        assert_eq!(resolve(&cfg, &ov2, &env).unwrap().user, "flag");
        // A URL host needs no alias; REMO_SERVER beats default_host.
        let ov = Overrides {
            host: Some("http://x:1/r".into()),
            ..Default::default()
        };
        let t = resolve(&Config::default(), &ov, &none).unwrap();
        assert_eq!((t.server.as_str(), t.user.as_str()), ("http://x:1/r", "me"));
        let env = EnvValues {
            server: Some("http://env/r".into()),
            ..none.clone()
        };
        let t = resolve(&cfg, &Overrides::default(), &env).unwrap();
        assert_eq!(
            (t.server.as_str(), t.user.as_str()),
            ("http://env/r", "top")
        );
    }

    #[test]
    fn groups_inventory_and_fleet_url_parse() {
        let cfg = Config::parse(
            "inventory = \"/ops/hosts.yml\"\nfleet_url = \"https://{host}/remo\"\n[groups]\nweb = [\"web1\", \"@db\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.groups["web"], ["web1", "@db"]);
        assert_eq!(cfg.inventory_path(), Some(PathBuf::from("/ops/hosts.yml")));
        assert_eq!(cfg.fleet_url.as_deref(), Some("https://{host}/remo"));
        assert!(Config::default().inventory_path().is_none());
        // Members are a list, not a string.
        let e = Config::parse("[groups]\nweb = \"web1\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn unknown_alias_and_missing_server_are_errors() {
        let ov = Overrides {
            host: Some("nope".into()),
            ..Default::default()
        };
        assert!(resolve(&Config::default(), &ov, &EnvValues::default()).is_err());
        assert!(resolve(
            &Config::default(),
            &Overrides::default(),
            &EnvValues::default()
        )
        .is_err());
        let e = Config::parse("[hosts.a]\nserver='x'\nbogus=1").unwrap_err();
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        assert!(e.to_string().starts_with("3:1: "), "{e}");
        assert!(e.message.contains("bogus"), "{e}");
    }
}
