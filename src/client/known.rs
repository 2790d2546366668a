//! `~/.config/remo/known_servers`: server keys pinned on first use, like
//! ssh's `known_hosts`, so a later impostor (or a replaced key) is refused.
//!
//! One line per server: `BASE_URL KEY_B64 FINGERPRINT`. Blank lines and
//! lines starting with `#` are ignored. There is deliberately no option to
//! accept a changed key: the user deletes the line, knowingly.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::ClientError;
use crate::proto::identity::PublicKey;

/// The known-servers file in the config directory.
pub(crate) fn default_path() -> Result<PathBuf, ClientError> {
    Ok(super::config::config_dir()?.join("known_servers"))
}

/// The form of a base URL used as the key of the file.
pub(crate) fn normalize(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// A pinned entry found in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pin {
    /// The pinned key.
    pub key: PublicKey,
    /// 1-based line number (for "delete line N").
    pub line: usize,
}

/// Looks up the key pinned for `url`.
pub(crate) fn lookup(path: &Path, url: &str) -> Result<Option<Pin>, ClientError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClientError::io(path, "cannot read", e)),
    };
    lookup_text(&text, path, url)
}

/// [`lookup`] in the text of the file at `path` (named in errors).
pub(crate) fn lookup_text(text: &str, path: &Path, url: &str) -> Result<Option<Pin>, ClientError> {
    let url = normalize(url);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(u), Some(k)) = (fields.next(), fields.next()) else {
            return Err(ClientError::Config(format!(
                "{}:{}: malformed line (want URL KEY FINGERPRINT)",
                path.display(),
                i + 1
            )));
        };
        if normalize(u) != url {
            continue;
        }
        let key = PublicKey::from_b64(k).map_err(|e| {
            ClientError::Config(format!("{}:{}: bad key: {e}", path.display(), i + 1))
        })?;
        return Ok(Some(Pin { key, line: i + 1 }));
    }
    Ok(None)
}

/// What [`check_or_pin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinOutcome {
    /// The key matches the pinned one.
    Known,
    /// No key was pinned for this URL; this one is now.
    NewlyPinned,
}

/// Checks `key` against the pin for `url`, pinning it if there is none. A
/// different key is [`ClientError::ServerKeyChanged`].
pub(crate) fn check_or_pin(
    path: &Path,
    url: &str,
    key: &PublicKey,
) -> Result<PinOutcome, ClientError> {
    match lookup(path, url)? {
        Some(pin) if &pin.key == key => Ok(PinOutcome::Known),
        Some(pin) => Err(changed(path, url, &pin, key)),
        None => {
            append(path, url, key)?;
            Ok(PinOutcome::NewlyPinned)
        }
    }
}

/// The loud error for a key that differs from the pin.
pub(crate) fn changed(path: &Path, url: &str, pin: &Pin, presented: &PublicKey) -> ClientError {
    ClientError::ServerKeyChanged {
        url: normalize(url).to_string(),
        pinned: pin.key.fingerprint(),
        presented: presented.fingerprint(),
        file: path.to_path_buf(),
        line: pin.line,
    }
}

/// Appends a pin line, creating the file (0600) and its directory (0700).
pub(crate) fn append(path: &Path, url: &str, key: &PublicKey) -> Result<(), ClientError> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut f = open_options_private()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| ClientError::io(path, "cannot open", e))?;
    writeln!(
        f,
        "{} {} {}",
        normalize(url),
        key.to_b64(),
        key.fingerprint()
    )
    .map_err(|e| ClientError::io(path, "cannot write", e))
}

/// Creates a directory (and parents) readable only by us.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), ClientError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ClientError::io(dir, "cannot create directory", e))
}

/// Checks that `dir` is ours alone, for files that hold secrets or that we
/// overwrite (the session cache, upload state): a real directory, not a
/// symlink, owned by us and writable by no one else. A cache directory
/// someone else controls (`sudo remo` with the invoking user's `HOME`, a
/// shared `XDG_CACHE_HOME`) could otherwise point our writes at any file.
pub(crate) fn check_private_dir(dir: &Path) -> Result<(), ClientError> {
    use std::os::unix::fs::MetadataExt;
    let md =
        std::fs::symlink_metadata(dir).map_err(|e| ClientError::io(dir, "cannot examine", e))?;
    let me = nix::unistd::geteuid().as_raw();
    if !md.is_dir() || md.uid() != me || md.mode() & 0o022 != 0 {
        return Err(ClientError::Local(format!(
            "{}: not a private directory of ours (a symlink, owned by uid {} instead of {me}, \
             or writable by others); fix it or point XDG_CACHE_HOME elsewhere (with sudo: sudo -H)",
            dir.display(),
            md.uid()
        )));
    }
    Ok(())
}

/// Opens a private file in a directory [`check_private_dir`] passed:
/// never through a symlink, and only our own regular file with one link
/// and no access for others.
pub(crate) fn open_private_file(
    path: &Path,
    create: bool,
) -> Result<Option<std::fs::File>, ClientError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut o = open_options_private();
    o.read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if create {
        o.create(true);
    }
    let f = match o.open(path) {
        Ok(f) => f,
        Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClientError::io(path, "cannot open", e)),
    };
    let md = f
        .metadata()
        .map_err(|e| ClientError::io(path, "cannot examine", e))?;
    let me = nix::unistd::geteuid().as_raw();
    if !md.is_file() || md.uid() != me || md.nlink() != 1 || md.mode() & 0o077 != 0 {
        return Err(ClientError::Local(format!(
            "{}: not a private file of ours (another owner, other links, or access for others); \
             remove it",
            path.display()
        )));
    }
    Ok(Some(f))
}

/// `OpenOptions` that create files 0600.
pub(crate) fn open_options_private() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.mode(0o600);
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::identity::IdentityKey;

    #[test]
    fn pin_then_accept_then_refuse_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_servers");
        let k1 = IdentityKey::generate().public();
        let k2 = IdentityKey::generate().public();
        let other = IdentityKey::generate().public();
        assert_eq!(
            check_or_pin(&path, "http://a/remo/", &k1).unwrap(),
            PinOutcome::NewlyPinned
        );
        assert_eq!(
            check_or_pin(&path, "http://b/remo", &other).unwrap(),
            PinOutcome::NewlyPinned
        );
        assert_eq!(
            check_or_pin(&path, "http://a/remo", &k1).unwrap(),
            PinOutcome::Known
        );
        let err = check_or_pin(&path, "http://a/remo", &k2).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&k1.fingerprint()) && msg.contains(&k2.fingerprint()));
        assert!(msg.contains("line 1 of"));
        assert_eq!(lookup(&path, "http://b/remo").unwrap().unwrap().line, 2);
    }
}
