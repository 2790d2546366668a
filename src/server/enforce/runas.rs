//! Run-as: acting as a configured system account (`run-as:ACCOUNT`), so
//! `remod` can run as root while a user's commands and file operations
//! carry only that account's rights.
//!
//! * Commands: the child switches before it execs ([`super::spawn`]):
//!   `setgroups` (the account's supplementary groups, computed in the
//!   parent), `setresgid`, `setresuid`, and only then `chdir`, so the
//!   working directory is entered with the account's rights.
//! * File operations (`get`/`put`): their file-system calls run on a
//!   dedicated `std::thread` that first switches *its own* credentials with
//!   raw `setgroups`/`setresgid`/`setresuid` system calls. On Linux
//!   credentials are per thread at the kernel level; only glibc's wrappers
//!   broadcast a change to every thread of the process, so the raw calls
//!   leave the daemon's other threads untouched (they take 32-bit ids on
//!   x86_64 and aarch64 only; elsewhere, and for an id of -1, run-as is
//!   refused). The thread never returns to
//!   a pool: it ends when the operation's file-system step is done. The
//!   descriptors it opened are then used (read, written) by the daemon,
//!   which is what the account could have done with them.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::Arc;

use crate::perms::Grants;
use crate::proto::response::{ErrorCode, OpError};
use crate::server::enforce::spawn::{Credentials, Spawn};

/// A resolved system account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from the group database, as `initgroups` would set).
    pub groups: Vec<u32>,
    /// Home directory.
    pub home: PathBuf,
}

impl Account {
    /// Looks the account up in the password and group databases.
    pub(crate) fn lookup(name: &str) -> Result<Account, OpError> {
        let missing = || {
            OpError::new(
                ErrorCode::Internal,
                format!("run-as account {name:?} does not exist on the server"),
            )
        };
        let u = nix::unistd::User::from_name(name)
            .map_err(|_| missing())?
            .ok_or_else(missing)?;
        let cname = CString::new(name).map_err(|_| missing())?;
        let groups = nix::unistd::getgrouplist(&cname, u.gid)
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|_| vec![u.gid.as_raw()]);
        Ok(Account {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            groups,
            home: u.dir,
        })
    }

    /// An identity without any rights of its own (the overflow ids, no
    /// supplementary groups): what every local account may see, for
    /// look-ups made for a program-restricted user without a run-as account.
    pub(crate) fn unprivileged() -> Account {
        Account {
            name: "nobody".into(),
            uid: 65_534,
            gid: 65_534,
            groups: Vec::new(),
            home: PathBuf::from("/"),
        }
    }

    /// The account's home if it is a directory, else `/` (system accounts
    /// often have a home that does not exist).
    pub(crate) fn default_cwd(&self) -> PathBuf {
        if self.home.is_dir() {
            self.home.clone()
        } else {
            PathBuf::from("/")
        }
    }

    /// Switches the calling thread (only) to the account: supplementary
    /// groups, then gid, then uid (after which it cannot switch back).
    ///
    /// Raw system calls on purpose: see the module documentation.
    /// Refused off the architectures where the raw calls take 32-bit ids,
    /// and for an id of -1 ("unchanged": the thread would stay root), see
    /// [`Credentials::check`].
    pub(crate) fn become_on_this_thread(&self) -> std::io::Result<()> {
        self.credentials().check()?;
        self.switch_raw()
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn switch_raw(&self) -> std::io::Result<()> {
        let groups: &[u32] = &self.groups;
        // SAFETY: plain system calls with a valid pointer/length pair.
        unsafe {
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::syscall(libc::SYS_setresgid, self.gid, self.gid, self.gid) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::syscall(libc::SYS_setresuid, self.uid, self.uid, self.uid) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Never reached: [`Credentials::check`] refuses first.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn switch_raw(&self) -> std::io::Result<()> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
        }
    }

    /// Makes a command's child switch to the account before it enters its
    /// working directory and execs (the spawn checks the ids).
    pub(crate) fn apply_to_command(&self, cmd: &mut Spawn) {
        cmd.credentials(self.credentials());
    }
}

/// The account a user's grants name, looked up; `None` when there is no
/// `run-as` grant.
pub(crate) fn account_for(grants: &Grants) -> Result<Option<Arc<Account>>, OpError> {
    match grants.run_as() {
        None => Ok(None),
        Some(name) => Account::lookup(name).map(|a| Some(Arc::new(a))),
    }
}

/// Runs a file-system step `f` with the account's credentials when there is
/// one (on a fresh thread that switches and then ends), else on a blocking
/// pool thread with the daemon's own.
pub(crate) async fn fs_step<T, F>(acct: Option<Arc<Account>>, f: F) -> Result<T, OpError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, OpError> + Send + 'static,
{
    let lost = || OpError::new(ErrorCode::Internal, "file-system worker failed");
    match acct {
        None => tokio::task::spawn_blocking(f).await.map_err(|_| lost())?,
        Some(a) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("remod-runas".into())
                .spawn(move || {
                    let r = match a.become_on_this_thread() {
                        Ok(()) => f(),
                        Err(e) => Err(OpError::new(
                            ErrorCode::Internal,
                            format!("cannot act as {}: {e}", a.name),
                        )),
                    };
                    let _ = tx.send(r);
                })
                .map_err(|_| lost())?;
            rx.await.map_err(|_| lost())?
        }
    }
}
