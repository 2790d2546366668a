//! `admin`: what an administrator does to the server itself — the users
//! and their grants, disabling and enabling one, the live sessions and
//! interactive processes, ending a session, and reading the audit log.
//! Only for the `admin` grant, checked by the server on every action.
//!
//! One operation with an `action` field, like `config` and `open`: one
//! name for one permission check, one descriptor type whose variants each
//! refuse unknown fields, and one result whose fields each action fills.
//!
//! Every answer is bounded: at most `[limits] admin_page_max` rows, and
//! never more than fits one response record (a page then ends early and
//! says where to go on). Sessions are named by their tag (a hash of the
//! id, as in the audit and `remod status`): nothing here gives a session's
//! id or keys, so an admin can end a session but not act in it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Descriptor, OpName};

/// The `admin` descriptor, by `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum AdminDesc {
    /// The registered users with their grants, by name.
    Users {
        /// Only names after this one (the previous page's `next`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        /// At most this many (default and cap: `[limits] admin_page_max`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Disable a user: no new login, and their live sessions end with
    /// their processes (as `remod user disable`). Not oneself.
    Disable {
        /// The user.
        name: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// The user.
        name: String,
    },
    /// The live sessions and interactive processes, oldest session first.
    Sessions {
        /// Only this user's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// End a session and everything it started (as `remod session end`).
    End {
        /// The session's tag, from `sessions`.
        id: String,
    },
    /// Rows of the audit log, newest first.
    Audit {
        /// Only this user's rows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// Only this operation (`auth`, `cmd`, `admin`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op: Option<String>,
        /// Only this outcome: `ok`, an error code, or the first word of a
        /// longer one (`401`, `auth-failed`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
        /// Only rows at or after this Unix time (seconds).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<i64>,
        /// Only rows before this Unix time (seconds).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<i64>,
        /// Only rows older than this one (the previous page's `next`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<i64>,
        /// At most this many (default and cap: `[limits] admin_page_max`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
}

/// A registered user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct UserInfo {
    /// The name.
    pub name: String,
    /// False when disabled.
    pub enabled: bool,
    /// When added, Unix seconds.
    pub created: i64,
    /// The grants, sorted (docs/permissions.md).
    pub grants: Vec<String>,
    /// Only the first grants are listed (they would not fit one record).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grants_truncated: bool,
    /// Live sessions of this user now.
    pub sessions: u64,
}

/// One live session, as `remod status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionStatus {
    /// Its tag (a hash of its id; not the id).
    pub id: String,
    /// Its user.
    pub user: String,
    /// The address of its latest request.
    pub remote: String,
    /// When it logged in, Unix seconds.
    pub since: i64,
    /// Seconds since its last request.
    pub idle_secs: u64,
    /// `CA#serial` of a certificate session.
    pub cert: Option<String>,
    /// The session this request came in (`admin` only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub yours: bool,
}

/// One interactive process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessStatus {
    /// Its id on the wire (usable only in its own session).
    pub id: String,
    /// Its session's tag.
    pub session: String,
    /// Its session's user.
    pub user: String,
    /// Whether it has a terminal.
    pub pty: bool,
}

/// One row of the audit log (docs/security.md, "Audit").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct AuditRow {
    /// Its number: `before` takes it to page on.
    pub id: i64,
    /// When it started, Unix milliseconds.
    pub time_ms: i64,
    /// The user (`-` if unknown).
    pub user: String,
    /// The source address.
    pub remote: String,
    /// The session's tag (`-` if none).
    pub session: String,
    /// The operation.
    pub op: String,
    /// What was asked (never data or secrets).
    pub summary: String,
    /// `ok`, an error code, a pre-check status or `auth-failed: REASON`.
    pub outcome: String,
    /// A command's exit code.
    pub exit: Option<i64>,
    /// Request bytes after the descriptor.
    pub bytes_in: u64,
    /// Response data bytes.
    pub bytes_out: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// The certificate behind the session, `CA#serial` (empty for a key).
    pub cert: String,
}

/// The `admin` result: `users` fills `users` (and `next`); `disable` and
/// `enable` `name` and `ended`; `sessions` `sessions`, `processes`,
/// `total_sessions`, `total_processes` and `truncated`; `end` `ended`;
/// `audit` `rows` (and `next`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct AdminResult {
    /// `users`: this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserInfo>>,
    /// `users`: the `after` of the next page, when there may be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// `disable`, `enable`: the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `disable`, `end`: sessions ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<u64>,
    /// `sessions`: the sessions listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<SessionStatus>>,
    /// `sessions`: the interactive processes listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<Vec<ProcessStatus>>,
    /// `sessions`: how many sessions there are (of the user asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_sessions: Option<u64>,
    /// `sessions`: how many interactive processes there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_processes: Option<u64>,
    /// `sessions`: not all of them are listed (page limit or record size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// `audit`: this page, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<AuditRow>>,
    /// `audit`: the `before` of the next (older) page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

impl Descriptor for AdminDesc {
    const NAME: OpName = OpName::Admin;
    type Result = AdminResult;
}
