//! `remo ca`: a certificate authority for remo user certificates (§7) —
//! make the CA key, sign a user's key into a certificate, keep the
//! revocation list, show a certificate. Local files only, no server.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::admin::{finish, iso8601_utc, write_new_key, Failure};
use crate::certfile::{CertFile, Revocations, MAX_CERT_FILE_LEN, MAX_REVOCATION_LEN};
use crate::keyfile::{self, PassphraseSource};
use crate::proto::cert::Certificate;
use crate::proto::identity::PublicKey;

/// `remo ca`, parsed apart from the client's command line (whose global
/// `--user` and `--key` mean something else).
#[derive(Debug, clap::Parser)]
#[command(
    name = "remo ca",
    about = "A certificate authority for remo user certificates (docs/fleet.md)"
)]
struct CaArgs {
    #[command(subcommand)]
    cmd: CaCmd,
}

#[derive(Debug, clap::Subcommand)]
enum CaCmd {
    /// Make a CA key pair (passphrase-protected unless --no-passphrase).
    Init {
        /// Private key file; the public key goes to FILE.pub, which is
        /// what servers trust (REMO_CA_KEYS). Default: ~/.config/remo/ca_p256.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Write the CA key unencrypted (not recommended).
        #[arg(long)]
        no_passphrase: bool,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Sign a user's public key into a certificate, written beside the key
    /// as KEY-cert (id_p256.pub gives id_p256-cert), where remo finds it.
    Sign(SignArgs),
    /// Add a certificate, a serial or a key to a revocation list.
    Revoke(RevokeArgs),
    /// Print a certificate; with --ca, check its signature.
    Show {
        /// The certificate file.
        file: PathBuf,
        /// The CA's public key (FILE.pub of `remo ca init`), to check the signature.
        #[arg(long, value_name = "CA.pub")]
        ca: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The CA's private key.
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    /// The user name the certificate is for.
    #[arg(long, value_name = "NAME")]
    user: String,
    /// The user's public key file (from `remo keygen`).
    #[arg(long, value_name = "PUB")]
    key: PathBuf,
    /// How long it is valid, from now: 90s, 30m, 8h, 7d, 1h30m.
    #[arg(long, value_name = "DURATION")]
    valid: String,
    /// Server-name patterns it is valid on (`*` matches any run): one
    /// argument with spaces, or the option repeated. `*` alone: every server.
    #[arg(long, value_name = "PATTERNS", required = true)]
    hosts: Vec<String>,
    /// A permission it grants, as in `remod user grant` (repeat the option).
    #[arg(long, value_name = "GRANT")]
    grant: Vec<String>,
    /// The serial (default: random); unique per CA, what revocation names.
    #[arg(long, value_name = "N")]
    serial: Option<u64>,
    /// Where to write it (default: beside the key, KEY-cert).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Read the CA key's passphrase from FILE (else REMO_PASSPHRASE, else ask).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["cert", "serial", "key"])))]
struct RevokeArgs {
    /// The revocation list (created if missing) that servers read (REMO_REVOKED).
    #[arg(long, value_name = "FILE")]
    list: PathBuf,
    /// Revoke this certificate (its serial, under its CA).
    #[arg(long, value_name = "CERT")]
    cert: Option<PathBuf>,
    /// Revoke a serial of the CA given with --ca.
    #[arg(long, value_name = "N", requires = "ca")]
    serial: Option<u64>,
    /// The CA of --serial: its public key file, or its SHA256: fingerprint.
    #[arg(long, value_name = "CA.pub|FINGERPRINT")]
    ca: Option<String>,
    /// Revoke a user key, every certificate of it: a public key file or a
    /// SHA256: fingerprint.
    #[arg(long, value_name = "PUB|FINGERPRINT")]
    key: Option<String>,
}

/// Runs `remo ca ARGS`; returns the exit code.
pub(crate) fn run(args: Vec<String>) -> i32 {
    use clap::Parser;
    let a = match CaArgs::try_parse_from(std::iter::once("remo ca".to_string()).chain(args)) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let r = match a.cmd {
        CaCmd::Init {
            output,
            no_passphrase,
            force,
        } => init(output, no_passphrase, force),
        CaCmd::Sign(s) => sign(s),
        CaCmd::Revoke(r) => revoke(r),
        CaCmd::Show { file, ca } => show(&file, ca.as_deref()),
    };
    finish("remo", r)
}

fn init(output: Option<PathBuf>, no_passphrase: bool, force: bool) -> Result<(), Failure> {
    let path = match output {
        Some(p) => p,
        None => crate::admin::default_key_file("ca_p256")?,
    };
    let (key, pub_path) = write_new_key(&path, no_passphrase, force)?;
    println!("wrote CA private key {}", path.display());
    println!("wrote CA public key  {}", pub_path.display());
    println!("fingerprint: {}", key.public().fingerprint());
    println!(
        "servers trust it with: remod serve --ca-keys {} (or REMO_CA_KEYS; see docs/fleet.md)",
        pub_path.display()
    );
    Ok(())
}

/// A random serial, 1 ≤ S < 2^63.
fn random_serial() -> u64 {
    use rand_core::RngCore;
    loop {
        let n = rand_core::OsRng.next_u64() >> 1;
        if n != 0 {
            return n;
        }
    }
}

fn now() -> i64 {
    crate::server::core::instance::unix_now()
}

fn read_passphrase_file(p: &Path) -> Result<PassphraseSource, Failure> {
    let text = Zeroizing::new(
        std::fs::read_to_string(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))?,
    );
    let line = text.lines().next().unwrap_or("");
    Ok(PassphraseSource::Given(Zeroizing::new(line.to_string())))
}

fn sign(a: SignArgs) -> Result<(), Failure> {
    let secs = crate::firewall::config::parse_duration(&a.valid)
        .map_err(|e| Failure::usage(format!("--valid: {e}")))?;
    if secs == 0 {
        return Err(Failure::usage("--valid must be longer than 0 seconds"));
    }
    let hosts: Vec<String> = a
        .hosts
        .iter()
        .flat_map(|h| h.split_ascii_whitespace())
        .map(str::to_string)
        .collect();
    if hosts.is_empty() {
        return Err(Failure::usage("--hosts: give at least one pattern"));
    }
    let user_key = keyfile::read_public_key(&a.key)?;
    let source = match &a.passphrase_file {
        Some(p) => read_passphrase_file(p)?,
        None => PassphraseSource::Prompt,
    };
    let ca = keyfile::load_identity(&a.ca, &source)?;
    let not_before = now();
    let not_after = i64::try_from(secs)
        .ok()
        .and_then(|s| not_before.checked_add(s))
        .ok_or_else(|| Failure::usage("--valid is too long"))?;
    let cert = Certificate {
        ca: ca.public().fingerprint(),
        serial: a.serial.unwrap_or_else(random_serial),
        user: a.user.clone(),
        key: user_key.clone(),
        not_before,
        not_after,
        hosts,
        grants: a.grant.clone(),
    };
    let sig = cert
        .sign(&ca)
        .map_err(|e| Failure::usage(format!("cannot make this certificate: {e}")))?;
    let file = CertFile::new(cert, sig);
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| CertFile::path_for_key(&a.key));
    keyfile::write_file_atomic(&out, file.to_text().as_bytes(), 0o644, true)?;
    log_issued(&a.ca, &file);
    let c = &file.cert;
    println!("wrote certificate {}", out.display());
    println!(
        "serial {} for user {} key {}, valid until {}, hosts {}",
        c.serial,
        c.user,
        user_key.fingerprint(),
        iso8601_utc(c.not_after),
        c.hosts.join(" ")
    );
    if c.grants.is_empty() {
        eprintln!("remo: note: the certificate grants nothing (no --grant)");
    }
    Ok(())
}

/// Appends what was issued to `CA.issued` beside the CA key, so the serial
/// of a certificate to revoke can be found later. A failure here is said,
/// not fatal: the certificate is made.
fn log_issued(ca: &Path, f: &CertFile) {
    let mut p = ca.as_os_str().to_os_string();
    p.push(".issued");
    let c = &f.cert;
    let line = format!(
        "{} serial {} user {} key {} valid {} {} hosts {}\n",
        iso8601_utc(now()),
        c.serial,
        c.user,
        c.key.fingerprint(),
        c.not_before,
        c.not_after,
        c.hosts.join(" ")
    );
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&p)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = r {
        eprintln!(
            "remo: warning: cannot record the certificate in {}: {e}",
            PathBuf::from(p).display()
        );
    }
}

/// A fingerprint given as such, or the public key file it is of.
fn fingerprint_of(given: &str) -> Result<String, Failure> {
    if given.starts_with("SHA256:") {
        return Ok(given.to_string());
    }
    let key: PublicKey = keyfile::read_public_key(Path::new(given))?;
    Ok(key.fingerprint())
}

/// Reads a file of at most `max` bytes; `None` if it does not exist.
fn read_capped(p: &Path, max: u64) -> Result<Option<Vec<u8>>, Failure> {
    let f = match std::fs::File::open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: cannot read: {e}", p.display()).into()),
    };
    crate::certfile::read_at_most(f, max)
        .map_err(|e| format!("{}: cannot read: {e}", p.display()))?
        .map(Some)
        .ok_or_else(|| format!("{}: larger than {max} bytes", p.display()).into())
}

fn read_cert(p: &Path) -> Result<CertFile, Failure> {
    let bytes = read_capped(p, MAX_CERT_FILE_LEN as u64)?
        .ok_or_else(|| format!("{}: no such file", p.display()))?;
    CertFile::parse(&bytes).map_err(|e| format!("{}: {e}", p.display()).into())
}

fn revoke(a: RevokeArgs) -> Result<(), Failure> {
    let mut list = match read_capped(&a.list, MAX_REVOCATION_LEN)? {
        Some(b) => Revocations::parse(&b).map_err(|e| format!("{}: {e}", a.list.display()))?,
        None => Revocations::default(),
    };
    let mut said = Vec::new();
    if let Some(c) = &a.cert {
        let f = read_cert(c)?;
        let new = list.add_serial(&f.cert.ca, f.cert.serial)?;
        said.push((new, format!("serial {} of CA {}", f.cert.serial, f.cert.ca)));
    }
    if let (Some(n), Some(ca)) = (a.serial, &a.ca) {
        let fp = fingerprint_of(ca)?;
        let new = list
            .add_serial(&fp, n)
            .map_err(|e| Failure::usage(e.to_string()))?;
        said.push((new, format!("serial {n} of CA {fp}")));
    }
    if let Some(k) = &a.key {
        let fp = fingerprint_of(k)?;
        let new = list
            .add_key(&fp)
            .map_err(|e| Failure::usage(e.to_string()))?;
        said.push((new, format!("key {fp}")));
    }
    keyfile::write_file_atomic(&a.list, list.to_text().as_bytes(), 0o644, true)?;
    for (new, what) in said {
        if new {
            println!("revoked {what}");
        } else {
            println!("already revoked: {what}");
        }
    }
    println!(
        "{}: {} entries; remod re-reads it within a second where REMO_REVOKED names it",
        a.list.display(),
        list.len()
    );
    Ok(())
}

/// "in 7h 59m" / "2h 3m ago".
fn relative(secs: i64) -> String {
    let a = secs.unsigned_abs();
    let text = if a >= 86_400 {
        format!("{}d {}h", a / 86_400, a % 86_400 / 3600)
    } else if a >= 3600 {
        format!("{}h {}m", a / 3600, a % 3600 / 60)
    } else {
        format!("{}m {}s", a / 60, a % 60)
    };
    if secs >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

fn show(file: &Path, ca: Option<&Path>) -> Result<(), Failure> {
    let f = read_cert(file)?;
    let c = &f.cert;
    let now = now();
    let check = match ca {
        None => "signature not checked (give --ca CA.pub)".to_string(),
        Some(p) => {
            let key = keyfile::read_public_key(p)?;
            c.verify_issuer(&key, &f.sig)
                .map_err(|e| format!("{}: {e} under {}", file.display(), p.display()))?;
            format!("signature verifies under {}", p.display())
        }
    };
    let state = match c.check_validity(now) {
        Ok(()) => format!("valid, expires {}", relative(c.not_after - now)),
        Err(crate::proto::cert::CertError::NotYetValid { .. }) => {
            format!("NOT YET VALID, starts {}", relative(c.not_before - now))
        }
        Err(_) => format!("EXPIRED {}", relative(c.not_after - now)),
    };
    println!("certificate {}", file.display());
    println!("  ca      {} ({check})", c.ca);
    println!("  serial  {}", c.serial);
    println!("  user    {}", c.user);
    println!("  key     {}", c.key.fingerprint());
    println!(
        "  valid   {} to {} ({state})",
        iso8601_utc(c.not_before),
        iso8601_utc(c.not_after)
    );
    println!("  hosts   {}", c.hosts.join(" "));
    if c.grants.is_empty() {
        println!("  grants  none");
    }
    for g in &c.grants {
        println!("  grant   {g}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        CaArgs::command().debug_assert();
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(3 * 3600 + 120), "in 3h 2m");
        assert_eq!(relative(-(2 * 86_400 + 3600)), "2d 1h ago");
        assert_eq!(relative(59), "in 0m 59s");
    }

    #[test]
    fn serials_are_in_range() {
        for _ in 0..1000 {
            let n = random_serial();
            assert!((1..1 << 63).contains(&n));
        }
    }
}
