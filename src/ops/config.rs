//! `config`: read and edit the files named in `[files]` by section and key
//! (docs/config-files.md). One descriptor per `action`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Descriptor, OpName};

/// The `config` descriptor, by `action`. `section` is an address
/// (`NAME`, `NAME[INDEX]`, `NAME[KEY=VALUE]`; empty: the global section);
/// `if_version` makes a change fail with `conflict` if the file changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum ConfigDesc {
    /// The names the caller may use.
    List {},
    /// The whole file, a section, or a key's values (on stdout).
    Read {
        /// The file's configured name.
        name: String,
        /// A section, if not the whole file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        section: Option<String>,
        /// A key (in the global section if no `section`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// Replace the whole content with the data records.
    Write {
        /// The file's configured name.
        name: String,
        /// Expected current version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_version: Option<String>,
    },
    /// Set a key.
    Set {
        /// The file's configured name.
        name: String,
        /// The section (default: global).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        section: Option<String>,
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// Expected current version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_version: Option<String>,
    },
    /// Remove a key.
    Unset {
        /// The file's configured name.
        name: String,
        /// The section (default: global).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        section: Option<String>,
        /// The key.
        key: String,
        /// Expected current version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_version: Option<String>,
    },
    /// Append a section.
    AddSection {
        /// The file's configured name.
        name: String,
        /// The new section's name.
        section: String,
        /// Its entries, in order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entries: Option<Vec<(String, String)>>,
        /// Expected current version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_version: Option<String>,
    },
    /// Delete a section.
    DeleteSection {
        /// The file's configured name.
        name: String,
        /// The section.
        section: String,
        /// Expected current version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_version: Option<String>,
    },
    /// The file's backups.
    Backups {
        /// The file's configured name.
        name: String,
    },
    /// Put a backup back.
    Restore {
        /// The file's configured name.
        name: String,
        /// The backup's id.
        backup: String,
        /// Expected current version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_version: Option<String>,
    },
    /// Diff a backup (default the newest), or the data records
    /// (`candidate`), against the file (on stdout).
    Diff {
        /// The file's configured name.
        name: String,
        /// The backup's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backup: Option<String>,
        /// Compare the data records instead of a backup.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        candidate: Option<bool>,
    },
}

/// One configured file, as `list` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct FileInfo {
    /// Its configured name.
    pub name: String,
    /// `ini`, `wireguard`, `keyvalue`, … (docs/config-files.md).
    pub format: String,
    /// Its path on the server.
    pub path: String,
    /// Changes are backed up.
    pub backup: bool,
    /// A validator is configured.
    pub validate: bool,
    /// A reload command is configured.
    pub reload: bool,
}

/// One backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct BackupInfo {
    /// Its id (a UTC timestamp).
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was taken, Unix seconds.
    pub mtime: i64,
}

/// The `config` result; which fields an action fills is in
/// docs/operations.md.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ConfigResult {
    /// `list`: the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileInfo>>,
    /// `backups`: the backups, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups: Option<Vec<BackupInfo>>,
    /// The file's version (after a change: the new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `read`: the file's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `read`: the file's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// A change: the content changed; `diff`: the diff is not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
    /// A change: the backup taken (`null`: none); `diff`: the backup
    /// compared.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    #[schemars(with = "Option<String>")]
    pub backup: Option<Option<String>>,
    /// A change: the reload command ran and succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reloaded: Option<bool>,
    /// `restore`: the backup put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<String>,
    /// `unset`: the entries removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<u64>,
    /// `add-section`: the new section's index among those of its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

impl Descriptor for ConfigDesc {
    const NAME: OpName = OpName::Config;
    type Result = ConfigResult;
}

/// A field that may be absent, `null` or a value: `None`, `Some(None)`,
/// `Some(Some(v))`.
mod present {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer, T: Serialize>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
