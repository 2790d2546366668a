//! Run-as: acting as a configured system account (`run-as:ACCOUNT`), so
//! `remod` can run as root while a user's commands and file operations
//! carry only that account's rights.
//!
//! * Commands: the child switches before it execs ([`super::spawn`]):
//!   `setgroups` (the account's supplementary groups, computed in the
//!   parent), `setresgid`, `setresuid`, and only then `chdir`, so the
//!   working directory is entered with the account's rights.
//! * File operations (`get`/`put`/`list`) and the look-ups made for a
//!   command: their file-system calls run on a dedicated `std::thread` that
//!   first switches *its own* credentials with raw
//!   `setgroups`/`setresgid`/`setresuid` system calls. On Linux
//!   credentials are per thread at the kernel level; only glibc's wrappers
//!   broadcast a change to every thread of the process, so the raw calls
//!   leave the daemon's other threads untouched (they take 32-bit ids on
//!   x86_64 and aarch64 only; elsewhere, and for an id of -1, run-as is
//!   refused). The thread never returns to a pool: it ends when the
//!   operation's file-system step is done. The descriptors it opened are
//!   then used (read, written) by the daemon, which is what the account
//!   could have done with them.
//!
//!   The thread changes only its *effective* ids (and with them the
//!   file-system ids, which the kernel checks files against); its real and
//!   saved ids stay remod's own (root's). The thread is one of remod's
//!   (`/proc/PID/task/TID`): with the account's *real* uid, any process of
//!   the account could `kill(TID, SIGSTOP)` — which stops the whole daemon
//!   — or `SIGKILL` it, and with `fs.suid_dumpable` 1 `ptrace` it, i.e.
//!   write into remod's memory as root; the step can be held open for
//!   that (a slow file system, a huge directory) or raced. `kill` lets a
//!   sender whose real or effective uid is the target's real or saved uid
//!   through, `ptrace` one whose uids are all three of the target's, so
//!   with real and saved uid 0 the account gets neither. The permission
//!   checks are still the account's: when the effective uid leaves 0 the
//!   kernel clears the effective capabilities (the permitted ones stay,
//!   which is why the thread ends instead of being reused) — unless the
//!   process had set `SECBIT_NO_SETUID_FIXUP`, which remod never does; the
//!   switch checks the effective set is empty anyway and refuses
//!   otherwise. Each switch of the effective uid also sets remod's
//!   dumpable flag to `fs.suid_dumpable`; at 1 the kernel would give the
//!   thread's `/proc/PID/task/TID` files to the account, `oom_score_adj`
//!   (the whole process's) among them, so the switch sets it back to 0 at
//!   once. Nothing on the thread may depend on the real uid: plain
//!   `access()` would check as root, so look-ups use `faccessat` with
//!   `AT_EACCESS`.
//!
//!   A command's child is different: it execs the account's program, so it
//!   switches all three ids ([`super::spawn`]).

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

    /// Switches the calling thread (only) to act as the account:
    /// supplementary groups, then the effective gid, then the effective uid;
    /// real and saved ids stay remod's, so the account cannot signal or
    /// trace the thread. The thread keeps its permitted capabilities and
    /// must end after its step (see the module documentation).
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
            // Effective ids only (-1: real and saved unchanged, remod's).
            if libc::syscall(libc::SYS_setresgid, UNCHANGED, self.gid, UNCHANGED) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::syscall(libc::SYS_setresuid, UNCHANGED, self.uid, UNCHANGED) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The switch set remod's dumpable flag to fs.suid_dumpable; at
            // 1 the kernel would give this thread's /proc files (its
            // oom_score_adj, which is the whole process's) to the account.
            if !super::spawn::clear_dumpable() {
                return Err(std::io::Error::last_os_error());
            }
        }
        no_effective_capabilities()
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

/// `-1` for `setresuid`/`setresgid`: leave that id as it is.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const UNCHANGED: libc::c_uint = libc::c_uint::MAX;

/// Checks that the calling thread has no effective capability left. The
/// kernel clears them when the effective uid leaves 0, unless
/// `SECBIT_NO_SETUID_FIXUP` is set (remod never sets it; it is off by
/// default) or remod did not run as uid 0 but with capabilities: then the
/// thread would keep e.g. `CAP_DAC_OVERRIDE` and its checks would not be
/// the account's, so the step is refused.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn no_effective_capabilities() -> std::io::Result<()> {
    /// `struct __user_cap_header_struct`.
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    /// `struct __user_cap_data_struct`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    /// `_LINUX_CAPABILITY_VERSION_3`: two data structs (64 capabilities).
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: a valid header and room for the two data structs version 3
    // writes; pid 0 is the calling thread.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if data.iter().any(|d| d.effective != 0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the thread kept effective capabilities after taking the account's uid \
             (SECBIT_NO_SETUID_FIXUP set, or remod not running as uid 0)",
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids of one `Uid:`/`Gid:` line and the `CapEff:` of the calling
    /// thread.
    fn own_status() -> (Vec<u32>, Vec<u32>, String) {
        let s = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let ids = |key: &str| -> Vec<u32> {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap()
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect()
        };
        let cap = s
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap()
            .trim()
            .to_string();
        (ids("Uid:"), ids("Gid:"), cap)
    }

    fn someone() -> Account {
        Account {
            name: "someone".into(),
            uid: 54_321,
            gid: 54_322,
            groups: vec![54_323],
            home: PathBuf::from("/"),
        }
    }

    /// Only the effective (and so file-system) ids change: real and saved
    /// stay root's, so the account can neither signal nor trace the thread;
    /// no effective capability is left; the caller is untouched.
    #[test]
    fn a_run_as_thread_changes_only_its_effective_ids() {
        assert!(nix::unistd::geteuid().is_root(), "needs root");
        let a = someone();
        let (uid, gid, cap, groups) = std::thread::spawn(move || {
            a.become_on_this_thread().unwrap();
            let (u, g, c) = own_status();
            (u, g, c, nix::unistd::getgroups().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(uid, [0, 54_321, 0, 54_321], "Uid: real effective saved fs");
        assert_eq!(gid, [0, 54_322, 0, 54_322], "Gid: real effective saved fs");
        assert_eq!(cap, "0000000000000000", "CapEff");
        assert_eq!(groups, [nix::unistd::Gid::from_raw(54_323)]);
        let (u, g, _) = own_status();
        assert_eq!((u, g), (vec![0; 4], vec![0; 4]));
    }

    /// With `SECBIT_NO_SETUID_FIXUP` the kernel would leave the effective
    /// capabilities (root's rights) in place: the switch refuses.
    #[test]
    fn a_thread_that_keeps_capabilities_is_refused() {
        assert!(nix::unistd::geteuid().is_root(), "needs root");
        let a = someone();
        let r = std::thread::spawn(move || {
            const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
            // SAFETY: prctl with integer arguments; securebits are per
            // thread, and this thread ends here.
            let set = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP) };
            assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
            a.become_on_this_thread()
        })
        .join()
        .unwrap();
        let e = r.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    }
}
