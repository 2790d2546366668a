//! `list`: a directory's entries. They travel as data records — NDJSON, one
//! [`ListEntry`] per line, whole lines in every record — and not in the
//! result, which one record's 65,537 bytes would bound; the result only
//! counts them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Descriptor, OpName};
use crate::proto::b64;

/// The `list` descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListDesc {
    /// The directory (relative: below the home directory). A symbolic link
    /// to a directory is followed, within the granted root.
    pub path: String,
}

/// The `list` result; the entries came before it, as data records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ListResult {
    /// Entries sent.
    pub count: u64,
    /// The directory holds more than `[limits] list_max_entries` entries:
    /// only the first ones by name were sent.
    pub truncated: bool,
}

impl Descriptor for ListDesc {
    const NAME: OpName = OpName::List;
    type Result = ListResult;
}

/// What an entry is, as `lstat` sees it (a symbolic link is not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EntryType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (`target` holds its text).
    Symlink,
    /// Anything else: device, FIFO, socket.
    Other,
}

/// One entry of a `list` response: a line of its data. Not
/// `deny_unknown_fields`, so a later server may add fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ListEntry {
    /// The name. A name that is not valid UTF-8 has each bad byte
    /// replaced by U+FFFD here and comes exactly in `name_b64`.
    pub name: String,
    /// The name's bytes (b64url), only when they are not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_b64: Option<String>,
    /// What it is (the link itself for a symbolic link).
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Size in bytes (of the link itself for a symbolic link).
    pub size: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// A symbolic link's text, as written (never followed); like `name`
    /// when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The link's text (b64url), only when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_b64: Option<String>,
}

/// Bytes as JSON carries them: the text (lossy when the bytes are not
/// UTF-8) and, only then, the exact bytes in b64url.
pub(crate) fn text_and_b64(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(b64::encode(bytes)),
        ),
    }
}

impl ListEntry {
    /// The name's exact bytes (from `name_b64` when present).
    pub(crate) fn name_bytes(&self) -> Result<Vec<u8>, b64::B64Error> {
        match &self.name_b64 {
            Some(b) => b64::decode(b),
            None => Ok(self.name.as_bytes().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_utf8_keep_their_bytes() {
        assert_eq!(text_and_b64(b"plain"), ("plain".to_string(), None));
        let (t, b) = text_and_b64(b"a\xffb");
        assert_eq!(t, "a\u{fffd}b");
        let e = ListEntry {
            name: t,
            name_b64: b,
            kind: EntryType::File,
            size: 0,
            mode: 0o644,
            mtime: 0,
            target: None,
            target_b64: None,
        };
        assert_eq!(e.name_bytes().unwrap(), b"a\xffb");
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(
            line,
            r#"{"name":"a�b","name_b64":"Yf9i","type":"file","size":0,"mode":420,"mtime":0}"#
        );
        let back: ListEntry = serde_json::from_str(&line).unwrap();
        assert_eq!(back, e);
    }
}
