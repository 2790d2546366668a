//! Listening sockets for both front doors.
//!
//! `remod` can be reached four ways: a unix socket it creates (`unix:PATH`,
//! with a mode and group so the web server's user can connect), a TCP
//! address (`HOST:PORT`, `[v6]:PORT`), the listening socket mod_fcgid hands
//! over on fd 0, or a systemd-activated socket (`LISTEN_FDS`, fd 3).
//! Every constructor must run inside a tokio runtime, since the socket is
//! registered with its reactor.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use nix::sys::socket::{
    getsockname, getsockopt, sockopt, AddressFamily, SockaddrLike, SockaddrStorage,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Why a listening socket could not be set up; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The listen specification cannot be parsed or resolved.
    #[error("bad listen address {spec:?}: {reason}")]
    BadSpec {
        /// The specification given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The socket path exists and is not a socket: never removed.
    #[error("{0}: exists and is not a socket; refusing to remove it")]
    NotASocket(PathBuf),
    /// Another process accepts connections on the socket path.
    #[error("{0}: another process is listening on it")]
    InUse(PathBuf),
    /// bind(2)/listen(2) failed.
    #[error("cannot listen on {what}: {source}")]
    Bind {
        /// Address or path.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// The group named for the socket does not exist.
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    /// chmod/chown of the socket failed.
    #[error("cannot set owner/mode of {path}: {source}")]
    Permissions {
        /// Socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// An inherited descriptor is not a listening socket (e.g. `remod` was
    /// started by hand with `--fd0` instead of by mod_fcgid).
    #[error("fd {fd} is not a listening socket ({detail})")]
    NotListening {
        /// The descriptor.
        fd: RawFd,
        /// What was found instead.
        detail: String,
    },
    /// An inherited socket has a family other than unix/IPv4/IPv6.
    #[error("fd {fd}: unsupported socket family")]
    UnsupportedFamily {
        /// The descriptor.
        fd: RawFd,
    },
    /// The systemd activation variables are inconsistent.
    #[error("socket activation: {0}")]
    Systemd(String),
    /// The socket's directory is missing and could not be created.
    #[error("cannot create {dir}, the directory of the socket: {source} (create it yourself: mkdir -m 0755 {dir})")]
    SocketDir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another OS error while adopting a socket.
    #[error("socket setup: {0}")]
    Io(#[from] io::Error),
}

/// How a unix socket created by [`Listener::bind`] is made reachable.
#[derive(Debug, Clone)]
pub struct UnixOptions {
    /// Permission bits of the socket file (connect needs write permission).
    pub mode: u32,
    /// Group to give the socket, so the web server's user can connect.
    pub group: Option<String>,
}

impl Default for UnixOptions {
    fn default() -> Self {
        UnixOptions {
            mode: 0o660,
            group: None,
        }
    }
}

/// A listening socket of either family, so the FastCGI loop need not care.
#[derive(Debug)]
pub enum Listener {
    /// A unix-domain listener.
    Unix(UnixListener),
    /// A TCP listener.
    Tcp(TcpListener),
}

/// An accepted connection of either family.
#[derive(Debug)]
pub(crate) enum Stream {
    /// A unix-domain connection.
    Unix(UnixStream),
    /// A TCP connection.
    Tcp(TcpStream),
}

/// Who connected, for log lines.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    /// A unix-domain peer (usually unnamed).
    Unix,
    /// A TCP peer.
    Tcp(SocketAddr),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Unix => f.write_str("unix"),
            Peer::Tcp(a) => write!(f, "{a}"),
        }
    }
}

impl Listener {
    /// Creates a listener from `unix:PATH`, `HOST:PORT` or `[v6]:PORT`.
    ///
    /// A stale unix socket file is removed first, but only if it is a socket
    /// and nothing accepts on it; the new socket gets `unix.mode` and group.
    pub fn bind(spec: &str, unix: &UnixOptions) -> Result<Listener, ListenError> {
        if let Some(path) = spec.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(ListenError::BadSpec {
                    spec: spec.to_string(),
                    reason: "empty socket path".into(),
                });
            }
            return bind_unix(Path::new(path), unix);
        }
        let addrs: Vec<SocketAddr> = spec
            .to_socket_addrs()
            .map_err(|e| ListenError::BadSpec {
                spec: spec.to_string(),
                reason: e.to_string(),
            })?
            .collect();
        let Some(first) = addrs.first() else {
            return Err(ListenError::BadSpec {
                spec: spec.to_string(),
                reason: "resolves to no address".into(),
            });
        };
        let l = std::net::TcpListener::bind(&addrs[..]).map_err(|source| ListenError::Bind {
            what: first.to_string(),
            source,
        })?;
        l.set_nonblocking(true)?;
        Ok(Listener::Tcp(TcpListener::from_std(l)?))
    }

    /// Adopts the listening socket mod_fcgid passes on fd 0.
    ///
    /// The socket is moved to a new close-on-exec descriptor and fd 0 is
    /// pointed at /dev/null, so nothing reading stdin can eat connections.
    pub fn from_fd0() -> Result<Listener, ListenError> {
        check_listening(0)?;
        // SAFETY: fd 0 is open (check_listening succeeded on it).
        let fd0 = unsafe { BorrowedFd::borrow_raw(0) };
        let owned = fd0.try_clone_to_owned()?;
        let devnull = std::fs::File::open("/dev/null")?;
        nix::unistd::dup2(devnull.as_raw_fd(), 0).map_err(io::Error::from)?;
        adopt(owned)
    }

    /// Adopts a systemd-activated socket (fd 3), or `None` when not activated.
    ///
    /// The activation variables are removed afterwards so that child
    /// processes do not believe they were activated too. Call this early,
    /// before other threads read the environment.
    pub(crate) fn from_systemd() -> Result<Option<Listener>, ListenError> {
        let pid = std::env::var("LISTEN_PID").ok();
        let fds = std::env::var("LISTEN_FDS").ok();
        let (Some(pid), Some(fds)) = (pid, fds) else {
            return Ok(None);
        };
        let pid: u32 = pid
            .trim()
            .parse()
            .map_err(|_| ListenError::Systemd(format!("bad LISTEN_PID {pid:?}")))?;
        if pid != std::process::id() {
            return Ok(None);
        }
        let n: u32 = fds
            .trim()
            .parse()
            .map_err(|_| ListenError::Systemd(format!("bad LISTEN_FDS {fds:?}")))?;
        for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(v);
        }
        if n < 1 {
            return Err(ListenError::Systemd("LISTEN_FDS is 0".into()));
        }
        const SD_LISTEN_FDS_START: RawFd = 3;
        check_listening(SD_LISTEN_FDS_START)?;
        // SAFETY: fd 3 is open and a listening socket (checked above), and
        // systemd hands its ownership to this process.
        let owned = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START) };
        let flags = nix::fcntl::fcntl(owned.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD)
            .map_err(io::Error::from)?;
        let flags = nix::fcntl::FdFlag::from_bits_truncate(flags) | nix::fcntl::FdFlag::FD_CLOEXEC;
        nix::fcntl::fcntl(owned.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFD(flags))
            .map_err(io::Error::from)?;
        adopt(owned).map(Some)
    }

    /// Waits for the next connection.
    pub(crate) async fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), Peer::Unix))
            }
            Listener::Tcp(l) => {
                let (s, a) = l.accept().await?;
                // Small records must not wait for Nagle.
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), Peer::Tcp(a)))
            }
        }
    }

    /// The bound address, for the start-up log line and tests.
    pub(crate) fn local_description(&self) -> String {
        match self {
            Listener::Unix(l) => match l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            {
                Some(p) => format!("unix:{}", p.display()),
                None => "unix:(unnamed)".to_string(),
            },
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => a.to_string(),
                Err(_) => "tcp:(unknown)".to_string(),
            },
        }
    }

    /// The address of a TCP listener that other hosts can reach (not on a
    /// loopback address); None for unix sockets and loopback TCP.
    ///
    /// FastCGI params configure remod, so whoever can connect to a FastCGI
    /// listener configures it: on such an address, every host that can
    /// route to it.
    pub(crate) fn reachable_from_network(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .ok()
                .filter(|a| !a.ip().is_loopback() && !is_mapped_loopback(a)),
            Listener::Unix(_) => None,
        }
    }

    /// For a unix socket bound at a path: the path and the socket file's
    /// (device, inode), so shutdown removes that file and not a newer one.
    pub(crate) fn unix_file(&self) -> Option<(PathBuf, (u64, u64))> {
        use std::os::unix::fs::MetadataExt;
        let Listener::Unix(l) = self else { return None };
        let path = l.local_addr().ok()?.as_pathname()?.to_path_buf();
        let md = std::fs::symlink_metadata(&path).ok()?;
        Some((path, (md.dev(), md.ino())))
    }
}

/// Creates the unix socket at `path` with its mode and group.
fn is_mapped_loopback(a: &SocketAddr) -> bool {
    match a.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        std::net::IpAddr::V4(_) => false,
    }
}

/// Creates the missing directories above a socket path, each mode 0755
/// (whatever the umask) and owned by remod's user: without systemd nothing
/// else makes `/run/remo`, and the web server's user must be able to reach
/// the socket inside. Existing directories are left as they are.
fn make_socket_dir(path: &Path) -> Result<(), ListenError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur.filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::symlink_metadata(d) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(d),
            Err(source) => {
                return Err(ListenError::SocketDir {
                    dir: d.to_path_buf(),
                    source,
                })
            }
        }
        cur = d.parent();
    }
    for d in missing.into_iter().rev() {
        // chmod through a descriptor opened without following a symlink: a
        // directory renamed away and replaced by a link meanwhile cannot
        // make remod (root) chmod what the link points to.
        let made = std::fs::create_dir(d).and_then(|()| {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(d)?
                .set_permissions(std::fs::Permissions::from_mode(0o755))
        });
        match made {
            Ok(()) => log::info!("created {} (mode 0755) for the socket", d.display()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(ListenError::SocketDir {
                    dir: d.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(())
}

fn bind_unix(path: &Path, opts: &UnixOptions) -> Result<Listener, ListenError> {
    make_socket_dir(path)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_socket() {
                return Err(ListenError::NotASocket(path.to_path_buf()));
            }
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(ListenError::InUse(path.to_path_buf())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    log::info!("removing stale socket {}", path.display());
                    std::fs::remove_file(path).map_err(|source| ListenError::Bind {
                        what: path.display().to_string(),
                        source,
                    })?;
                }
                Err(source) => {
                    return Err(ListenError::Bind {
                        what: path.display().to_string(),
                        source,
                    })
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ListenError::Bind {
                what: path.display().to_string(),
                source,
            })
        }
    }
    let l = std::os::unix::net::UnixListener::bind(path).map_err(|source| ListenError::Bind {
        what: path.display().to_string(),
        source,
    })?;
    let perm_err = |source: io::Error| ListenError::Permissions {
        path: path.to_path_buf(),
        source,
    };
    if let Some(g) = &opts.group {
        let group = nix::unistd::Group::from_name(g)
            .map_err(|e| perm_err(e.into()))?
            .ok_or_else(|| ListenError::UnknownGroup(g.clone()))?;
        nix::unistd::chown(path, None, Some(group.gid)).map_err(|e| perm_err(e.into()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(opts.mode)).map_err(perm_err)?;
    l.set_nonblocking(true)?;
    Ok(Listener::Unix(UnixListener::from_std(l)?))
}

/// Fails with a clear message unless `fd` is a listening socket.
fn check_listening(fd: RawFd) -> Result<(), ListenError> {
    // SAFETY: only used for the duration of this call; getsockopt on a
    // closed or non-socket descriptor returns an error, it does not crash.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    match getsockopt(&b, sockopt::AcceptConn) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ListenError::NotListening {
            fd,
            detail: "a socket, but not listening".into(),
        }),
        Err(nix::errno::Errno::ENOTSOCK) => Err(ListenError::NotListening {
            fd,
            detail: "not a socket".into(),
        }),
        Err(nix::errno::Errno::EBADF) => Err(ListenError::NotListening {
            fd,
            detail: "not open".into(),
        }),
        Err(e) => Err(ListenError::NotListening {
            fd,
            detail: e.to_string(),
        }),
    }
}

/// Turns an inherited listening descriptor into a tokio listener.
fn adopt(fd: OwnedFd) -> Result<Listener, ListenError> {
    let raw = fd.as_raw_fd();
    let addr: SockaddrStorage = getsockname(raw).map_err(io::Error::from)?;
    match addr.family() {
        Some(AddressFamily::Unix) => {
            let l = std::os::unix::net::UnixListener::from(fd);
            l.set_nonblocking(true)?;
            Ok(Listener::Unix(UnixListener::from_std(l)?))
        }
        Some(AddressFamily::Inet) | Some(AddressFamily::Inet6) => {
            let l = std::net::TcpListener::from(fd);
            l.set_nonblocking(true)?;
            Ok(Listener::Tcp(TcpListener::from_std(l)?))
        }
        _ => Err(ListenError::UnsupportedFamily { fd: raw }),
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Unix(s) => s.is_write_vectored(),
            Stream::Tcp(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_socket_replaced_live_refused_file_kept() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.sock");
        let spec = format!("unix:{}", p.display());
        let l = Listener::bind(&spec, &UnixOptions::default()).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        // Live: refused.
        assert!(matches!(
            Listener::bind(&spec, &UnixOptions::default()),
            Err(ListenError::InUse(_))
        ));
        drop(l);
        // Stale (file left behind, nobody listening): replaced.
        assert!(p.exists());
        let _l = Listener::bind(&spec, &UnixOptions::default()).unwrap();
        // A regular file is never removed.
        let f = d.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(matches!(
            Listener::bind(&format!("unix:{}", f.display()), &UnixOptions::default()),
            Err(ListenError::NotASocket(_))
        ));
        assert!(matches!(
            Listener::bind(
                &spec,
                &UnixOptions {
                    mode: 0o600,
                    group: Some("no-such-group-remo".into())
                }
            ),
            Err(ListenError::InUse(_)) | Err(ListenError::UnknownGroup(_))
        ));
    }

    #[tokio::test]
    async fn missing_socket_directories_are_made_0755() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/remo/remod.sock");
        let _l = Listener::bind(&format!("unix:{}", p.display()), &UnixOptions::default()).unwrap();
        for dir in [d.path().join("run"), d.path().join("run/remo")] {
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o755, "{}", dir.display());
        }
        // A file where a directory should be: a clear error naming it.
        let f = d.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        let e = Listener::bind(
            &format!("unix:{}/sub/s.sock", f.display()),
            &UnixOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("mkdir -m 0755"), "{e}");
    }

    #[tokio::test]
    async fn tcp_specs() {
        let l = Listener::bind("127.0.0.1:0", &UnixOptions::default()).unwrap();
        assert!(l.local_description().starts_with("127.0.0.1:"));
        let l6 = Listener::bind("[::1]:0", &UnixOptions::default());
        if let Ok(l6) = l6 {
            assert!(l6.local_description().starts_with("[::1]:"));
        }
        assert!(matches!(
            Listener::bind("no-port", &UnixOptions::default()),
            Err(ListenError::BadSpec { .. })
        ));
        assert!(matches!(
            Listener::bind("unix:", &UnixOptions::default()),
            Err(ListenError::BadSpec { .. })
        ));
    }

    #[tokio::test]
    async fn adopt_checks_listening() {
        // A connected (non-listening) socket is refused with a clear error.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        assert!(matches!(
            check_listening(fd),
            Err(ListenError::NotListening { .. })
        ));
        // A regular file: not a socket.
        let f = tempfile::tempfile().unwrap();
        assert!(matches!(
            check_listening(f.as_raw_fd()),
            Err(ListenError::NotListening { .. })
        ));
        // A listening socket is adopted.
        let d = tempfile::tempdir().unwrap();
        let l = std::os::unix::net::UnixListener::bind(d.path().join("x")).unwrap();
        check_listening(l.as_raw_fd()).unwrap();
        assert!(matches!(
            adopt(OwnedFd::from(l)).unwrap(),
            Listener::Unix(_)
        ));
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(matches!(adopt(OwnedFd::from(t)).unwrap(), Listener::Tcp(_)));
    }

    #[tokio::test]
    async fn systemd_not_activated_or_other_pid() {
        // The only test touching LISTEN_*.
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        assert!(Listener::from_systemd().unwrap().is_none());
        std::env::set_var("LISTEN_PID", "1");
        std::env::set_var("LISTEN_FDS", "1");
        assert!(Listener::from_systemd().unwrap().is_none());
        std::env::set_var("LISTEN_PID", "x");
        assert!(matches!(
            Listener::from_systemd(),
            Err(ListenError::Systemd(_))
        ));
        std::env::set_var("LISTEN_PID", std::process::id().to_string());
        std::env::set_var("LISTEN_FDS", "0");
        assert!(matches!(
            Listener::from_systemd(),
            Err(ListenError::Systemd(_))
        ));
        assert!(
            std::env::var_os("LISTEN_PID").is_none(),
            "cleared after use"
        );
    }
}
