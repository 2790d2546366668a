//! Throwaway system accounts for run-as tests, and a guarded change of
//! `fs.suid_dumpable` (a machine-wide setting).

use std::os::unix::process::CommandExt;
use std::process::Command;

/// A system account, removed on drop.
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Account {
    /// `PREFIX` and this process's number: tests run in parallel, each
    /// with a prefix of its own. Fails (never skips) without root or
    /// `useradd` (Debian package `passwd`).
    pub fn create_as(prefix: &str) -> Account {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the run-as test needs root (tests/run runs as root)"
        );
        let name = format!("{prefix}{}", std::process::id() % 100_000);
        let ok = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/bin/sh", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "useradd failed (Debian package passwd) for {name}");
        let u = nix::unistd::User::from_name(&name).unwrap().unwrap();
        Account {
            name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }
    }

    /// `program` as the account: its uid and gid, no supplementary groups
    /// (std drops them when root sets a uid).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.uid(self.uid).gid(self.gid);
        c
    }

    /// `sh -c SCRIPT` as the account.
    pub fn sh(&self, script: &str) -> Command {
        let mut c = self.command("/bin/sh");
        c.args(["-c", script]);
        c
    }

    /// `kill(pid, 0)` from a process of the account: `Ok(())` when the
    /// kernel would let the account signal `pid`, else the shell's error
    /// ("… Operation not permitted", "… No such process").
    pub fn kill0(&self, pid: u32) -> Result<(), String> {
        let out = self
            .sh(&format!("kill -0 {pid}"))
            .output()
            .expect("run sh as the account");
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// Sets `fs.suid_dumpable` and puts the old value back on drop (also when
/// the test panics). Tests run as parallel processes: a lock file keeps
/// two of them from interleaving their changes (and restoring each
/// other's value).
pub struct SuidDumpable {
    old: String,
    /// Released after `drop` has put the old value back.
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl SuidDumpable {
    const PATH: &'static str = "/proc/sys/fs/suid_dumpable";

    pub fn set(v: &str) -> SuidDumpable {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/remo-tests-suid_dumpable.lock")
            .unwrap();
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .unwrap_or_else(|(_, e)| panic!("lock suid_dumpable: {e}"));
        let old = std::fs::read_to_string(Self::PATH).unwrap();
        std::fs::write(Self::PATH, v).unwrap();
        SuidDumpable {
            old: old.trim().to_string(),
            _lock: lock,
        }
    }
}

impl Drop for SuidDumpable {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.old);
    }
}
