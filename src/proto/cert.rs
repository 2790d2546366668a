//! User certificates (PROTOCOL.md §7): the strict parser, the canonical text,
//! CA signatures, host patterns and the validity window.
//!
//! The CA signs the exact bytes of the certificate, so the grammar allows one
//! spelling of every certificate: the parser refuses anything else (other
//! line order, `\r`, leading zeros, doubled spaces, …) and [`Certificate::to_text`]
//! gives back exactly the bytes that were parsed. No I/O here: the server's
//! `/auth` parses (400 on error), picks the trusted CA named by
//! [`Certificate::ca`], then checks the signature, the window, the user and
//! the host pattern (401 on any failure).

use super::b64;
use super::identity::{valid_user_name, IdentityKey, KeyError, PublicKey, SIG_LEN};

/// Largest certificate, in bytes (§7).
pub const MAX_CERT_LEN: usize = 8192;
/// How early a certificate may be used before its `NB` (§7: `NB − 300 ≤ now`),
/// the same allowance as the clock skew of §3.
pub const NOT_BEFORE_GRACE_SECS: i64 = 300;
/// Serials are `1 ≤ S < 2^63` (§7).
const SERIAL_LIMIT: u64 = 1 << 63;
/// The literal first line.
const FIRST_LINE: &str = "remo/1 cert";
/// Fingerprints are `SHA256:` ‖ b64 of a 32-byte digest (§1).
const FP_PREFIX: &str = "SHA256:";

/// Why a certificate was refused; each variant names one precise reason for
/// the logs (the client only ever sees 400 or 401). No variant carries text
/// from the certificate, so logging one cannot inject anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// More than [`MAX_CERT_LEN`] bytes.
    #[error("certificate too long: {len} bytes (at most 8192)")]
    TooLong {
        /// The length received.
        len: usize,
    },
    /// Not valid UTF-8.
    #[error("certificate is not valid UTF-8")]
    NotUtf8,
    /// A `\r` somewhere (lines end with `\n` only).
    #[error("certificate contains a carriage return")]
    CarriageReturn,
    /// The last line is not ended by `\n`.
    #[error("certificate does not end with a newline")]
    NoFinalNewline,
    /// A line is not the one the fixed order requires (or is an extra line).
    #[error("certificate line {line}: expected the `{expected}` line")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The keyword (or literal first line) expected there.
        expected: &'static str,
    },
    /// The text ends before a required line.
    #[error("certificate line {line}: missing the `{expected}` line")]
    MissingLine {
        /// 1-based line number.
        line: usize,
        /// The keyword (or literal first line) expected there.
        expected: &'static str,
    },
    /// The `ca` value is not `SHA256:` ‖ b64 of 32 bytes.
    #[error("certificate `ca` is not a SHA256 fingerprint")]
    BadFingerprint,
    /// A number is empty or has a character other than `0-9` (no sign).
    #[error("certificate {field}: not a decimal number")]
    NotDecimal {
        /// Which number.
        field: &'static str,
    },
    /// A number has a leading zero.
    #[error("certificate {field}: leading zero")]
    LeadingZero {
        /// Which number.
        field: &'static str,
    },
    /// The serial is 0 or at least 2^63.
    #[error("certificate serial out of range (1 to 2^63-1)")]
    SerialOutOfRange,
    /// A time does not fit in a signed 64-bit number of seconds.
    #[error("certificate {field} out of range")]
    TimeOutOfRange {
        /// Which time.
        field: &'static str,
    },
    /// A certificate built field by field whose text parses back to other
    /// fields (a space inside a host pattern, a newline inside a grant).
    #[error("certificate fields do not survive their own text")]
    NotCanonical,
    /// `NB ≥ NA`.
    #[error("certificate validity: not_before is not before not_after")]
    ValidityOrder,
    /// The `user` value is not a valid user name.
    #[error("certificate user is not a valid user name")]
    BadUser,
    /// The `key` value is not b64 of an uncompressed P-256 point.
    #[error("certificate key: {0}")]
    BadKey(KeyError),
    /// `hosts` with no pattern at all.
    #[error("certificate hosts line has no pattern")]
    EmptyHosts,
    /// An empty host pattern (a doubled, leading or trailing space).
    #[error("certificate hosts line has an empty pattern")]
    EmptyPattern,
    /// `grant` with an empty grant.
    #[error("certificate line {line}: empty grant")]
    EmptyGrant {
        /// 1-based line number.
        line: usize,
    },
    /// `now < NB − 300`.
    #[error("certificate not yet valid (not_before {not_before}, now {now})")]
    NotYetValid {
        /// The certificate's `NB`.
        not_before: i64,
        /// The time checked.
        now: i64,
    },
    /// `now > NA`.
    #[error("certificate expired (not_after {not_after}, now {now})")]
    Expired {
        /// The certificate's `NA`.
        not_after: i64,
        /// The time checked.
        now: i64,
    },
    /// The certificate's `ca` line does not name this CA key.
    #[error("certificate names another CA")]
    CaMismatch,
    /// The CA signature is malformed or does not verify.
    #[error("certificate signature: {0}")]
    Signature(KeyError),
}

/// A parsed §7 certificate. Fields are public so a CA tool can build one;
/// [`Certificate::check`] (and [`Certificate::sign`]) make sure it is one
/// that [`Certificate::parse`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Fingerprint of the CA key, `SHA256:…` (§1).
    pub ca: String,
    /// Serial, unique per CA, `1 ≤ serial < 2^63`.
    pub serial: u64,
    /// The user name the certificate is for.
    pub user: String,
    /// The user's public key (the `sig` of `/auth` must verify under it).
    pub key: PublicKey,
    /// `NB`, Unix seconds.
    pub not_before: i64,
    /// `NA`, Unix seconds; sessions end no later than this.
    pub not_after: i64,
    /// Server-name patterns, at least one; `*` matches any run.
    pub hosts: Vec<String>,
    /// Grant strings, in certificate order.
    pub grants: Vec<String>,
}

/// Walks the lines in their fixed order, numbering them for errors.
struct Lines<'a> {
    iter: std::str::Split<'a, char>,
    line: usize,
}

impl<'a> Lines<'a> {
    /// The next line, or `MissingLine` naming what should have been there.
    fn next_line(&mut self, expected: &'static str) -> Result<&'a str, CertError> {
        self.line += 1;
        self.iter.next().ok_or(CertError::MissingLine {
            line: self.line,
            expected,
        })
    }

    /// The value of the next line, which must be `keyword ‖ " " ‖ value`.
    fn field(&mut self, keyword: &'static str) -> Result<&'a str, CertError> {
        let line = self.next_line(keyword)?;
        strip_keyword(line, keyword).ok_or(CertError::BadLine {
            line: self.line,
            expected: keyword,
        })
    }
}

fn strip_keyword<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    line.strip_prefix(keyword)?.strip_prefix(' ')
}

/// A §1 fingerprint: the prefix and the canonical b64 of exactly 32 bytes
/// (also what a revocation list names CAs and keys by).
pub(crate) fn valid_fingerprint(text: &str) -> bool {
    text.strip_prefix(FP_PREFIX)
        .is_some_and(|d| b64::decode_array::<32>(d).is_ok())
}

/// Digits only, no sign, no leading zero; `Ok(None)` if beyond `u64`.
fn decimal(text: &str, field: &'static str) -> Result<Option<u64>, CertError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CertError::NotDecimal { field });
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(CertError::LeadingZero { field });
    }
    Ok(text.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    }))
}

/// A §7 serial: decimal without a leading zero, `1 ≤ S < 2^63` (also the
/// serials of a revocation list).
pub(crate) fn parse_serial(text: &str) -> Result<u64, CertError> {
    match decimal(text, "serial")? {
        Some(s) if (1..SERIAL_LIMIT).contains(&s) => Ok(s),
        _ => Err(CertError::SerialOutOfRange),
    }
}

fn time(text: &str, field: &'static str) -> Result<i64, CertError> {
    decimal(text, field)?
        .and_then(|v| i64::try_from(v).ok())
        .ok_or(CertError::TimeOutOfRange { field })
}

impl Certificate {
    /// Parses the bytes of a certificate, accepting exactly the §7 grammar.
    /// Total: any input gives a certificate or an error, never a panic.
    pub fn parse(bytes: &[u8]) -> Result<Certificate, CertError> {
        if bytes.len() > MAX_CERT_LEN {
            return Err(CertError::TooLong { len: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| CertError::NotUtf8)?;
        if text.contains('\r') {
            return Err(CertError::CarriageReturn);
        }
        let Some(body) = text.strip_suffix('\n') else {
            return Err(if text.is_empty() {
                CertError::MissingLine {
                    line: 1,
                    expected: FIRST_LINE,
                }
            } else {
                CertError::NoFinalNewline
            });
        };
        let mut lines = Lines {
            iter: body.split('\n'),
            line: 0,
        };

        if lines.next_line(FIRST_LINE)? != FIRST_LINE {
            return Err(CertError::BadLine {
                line: 1,
                expected: FIRST_LINE,
            });
        }

        let ca = lines.field("ca")?;
        if !valid_fingerprint(ca) {
            return Err(CertError::BadFingerprint);
        }

        let serial = parse_serial(lines.field("serial")?)?;

        let user = lines.field("user")?;
        if !valid_user_name(user) {
            return Err(CertError::BadUser);
        }

        let key = PublicKey::from_b64(lines.field("key")?).map_err(CertError::BadKey)?;

        let valid = lines.field("valid")?;
        // A missing separator leaves NA empty, which is not decimal.
        let (nb, na) = valid.split_once(' ').unwrap_or((valid, ""));
        let not_before = time(nb, "not_before")?;
        let not_after = time(na, "not_after")?;
        if not_before >= not_after {
            return Err(CertError::ValidityOrder);
        }

        let hosts_line = lines.field("hosts")?;
        if hosts_line.is_empty() {
            return Err(CertError::EmptyHosts);
        }
        let hosts = hosts_line
            .split(' ')
            .map(|p| {
                if p.is_empty() {
                    Err(CertError::EmptyPattern)
                } else {
                    Ok(p.to_owned())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;

        let mut grants = Vec::new();
        for line in lines.iter {
            lines.line += 1;
            let grant = strip_keyword(line, "grant").ok_or(CertError::BadLine {
                line: lines.line,
                expected: "grant",
            })?;
            if grant.is_empty() {
                return Err(CertError::EmptyGrant { line: lines.line });
            }
            grants.push(grant.to_owned());
        }

        Ok(Certificate {
            ca: ca.to_owned(),
            serial,
            user: user.to_owned(),
            key,
            not_before,
            not_after,
            hosts,
            grants,
        })
    }

    /// The canonical text: for a parsed certificate, exactly the bytes it was
    /// parsed from (so it is also what the CA signed).
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(256);
        s.push_str(FIRST_LINE);
        s.push_str("\nca ");
        s.push_str(&self.ca);
        s.push_str("\nserial ");
        s.push_str(&self.serial.to_string());
        s.push_str("\nuser ");
        s.push_str(&self.user);
        s.push_str("\nkey ");
        s.push_str(&self.key.to_b64());
        s.push_str("\nvalid ");
        s.push_str(&self.not_before.to_string());
        s.push(' ');
        s.push_str(&self.not_after.to_string());
        s.push_str("\nhosts ");
        s.push_str(&self.hosts.join(" "));
        s.push('\n');
        for g in &self.grants {
            s.push_str("grant ");
            s.push_str(g);
            s.push('\n');
        }
        s
    }

    /// Checks that a certificate built field by field is one [`Certificate::parse`]
    /// accepts unchanged (e.g. no space inside a host pattern).
    pub fn check(&self) -> Result<(), CertError> {
        let parsed = Certificate::parse(self.to_text().as_bytes())?;
        if &parsed == self {
            Ok(())
        } else {
            Err(CertError::NotCanonical)
        }
    }

    /// Signs the canonical text with the CA key, after checking the
    /// certificate is valid and names that CA (for CA tools).
    pub fn sign(&self, ca: &IdentityKey) -> Result<[u8; SIG_LEN], CertError> {
        self.check()?;
        sign(self.to_text().as_bytes(), ca)
    }

    /// Checks that `ca` is the key the `ca` line names and that `sig` is its
    /// signature over this certificate. Because parsing is canonical, the
    /// signature is checked over [`Certificate::to_text`], which equals the
    /// bytes received.
    pub fn verify_issuer(&self, ca: &PublicKey, sig: &[u8]) -> Result<(), CertError> {
        if ca.fingerprint() != self.ca {
            return Err(CertError::CaMismatch);
        }
        verify_signature(self.to_text().as_bytes(), ca, sig)
    }

    /// §7: usable from `NB − 300` to `NA`, both included.
    pub fn check_validity(&self, now: i64) -> Result<(), CertError> {
        if now < self.not_before.saturating_sub(NOT_BEFORE_GRACE_SECS) {
            return Err(CertError::NotYetValid {
                not_before: self.not_before,
                now,
            });
        }
        if now > self.not_after {
            return Err(CertError::Expired {
                not_after: self.not_after,
                now,
            });
        }
        Ok(())
    }

    /// Whether any `hosts` pattern matches the server's name.
    pub fn matches_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|p| host_matches(p, host))
    }
}

/// Verifies a CA signature (P1363, §1) over the certificate bytes as received.
/// The caller picks `ca` by the certificate's `ca` fingerprint among the keys
/// it trusts.
pub fn verify_signature(cert_bytes: &[u8], ca: &PublicKey, sig: &[u8]) -> Result<(), CertError> {
    ca.verify(cert_bytes, sig).map_err(CertError::Signature)
}

/// Signs certificate bytes with the CA key. Refuses bytes that are not a
/// valid certificate naming this CA, so the CA key signs nothing else.
pub fn sign(cert_text: &[u8], ca: &IdentityKey) -> Result<[u8; SIG_LEN], CertError> {
    let cert = Certificate::parse(cert_text)?;
    if cert.ca != ca.public().fingerprint() {
        return Err(CertError::CaMismatch);
    }
    Ok(ca.sign(cert_text))
}

/// Whether a §7 host pattern matches the whole of `host`, ASCII
/// case-insensitively; `*` matches any run, the empty one included.
///
/// Greedy with backtracking to the last `*` only: a later star can always
/// absorb what an earlier one would have, so earlier choices never need
/// revisiting, and the worst case is O(len(pattern) · len(host)), not
/// exponential in the number of stars.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match_counting(pattern, host).0
}

/// [`host_matches`], and how many steps the loop took (the tests bound it).
fn match_counting(pattern: &str, host: &str) -> (bool, usize) {
    let (p, h) = (pattern.as_bytes(), host.as_bytes());
    let (mut pi, mut hi) = (0usize, 0usize);
    // After the last star seen: where the pattern resumes, and the host
    // position the star's run currently ends at.
    let mut star: Option<(usize, usize)> = None;
    let mut steps = 0usize;
    while let Some(&c) = h.get(hi) {
        steps += 1;
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, hi));
            }
            Some(q) if q.eq_ignore_ascii_case(&c) => {
                pi += 1;
                hi += 1;
            }
            _ => match star {
                Some((sp, sh)) => {
                    // Let the last star absorb one more character and retry.
                    pi = sp;
                    hi = sh + 1;
                    star = Some((sp, hi));
                }
                None => return (false, steps),
            },
        }
    }
    let rest_stars = p
        .get(pi..)
        .is_some_and(|rest| rest.iter().all(|&b| b == b'*'));
    (rest_stars, steps)
}

/// The obvious recursive `*` matcher, exponential in the stars: the
/// reference [`host_matches`] is checked against on short inputs (unit
/// tests and the certificate fuzz target).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn reference_match(p: &[u8], h: &[u8]) -> bool {
    match p.split_first() {
        None => h.is_empty(),
        Some((b'*', rest)) => {
            (0..=h.len()).any(|i| reference_match(rest, h.get(i..).unwrap_or(&[])))
        }
        Some((c, rest)) => match h.split_first() {
            Some((d, hr)) => c.eq_ignore_ascii_case(d) && reference_match(rest, hr),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyfile;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The repository's own copy, so a clone stands alone (as tests/it/protocol_vectors.rs).
    const VECTORS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/protocol-vectors.json"
    );

    fn vectors() -> Value {
        let text = std::fs::read_to_string(VECTORS)
            .unwrap_or_else(|e| panic!("cannot read the protocol vectors at {VECTORS}: {e}"));
        serde_json::from_str(&text).expect("protocol-vectors.json is not valid JSON")
    }

    fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
        let mut cur = v;
        for p in path {
            cur = &cur[*p];
        }
        cur.as_str()
            .unwrap_or_else(|| panic!("vector field {} missing or not a string", path.join(".")))
    }

    fn cert_vectors() -> Value {
        vectors()["certificate"].clone()
    }

    /// The vector certificate's text, checked against its b64.
    fn vector_text(c: &Value) -> String {
        let text = s(c, &["cert_text"]).to_owned();
        assert_eq!(b64::encode(text.as_bytes()), s(c, &["cert_b64"]));
        assert_eq!(b64::decode(s(c, &["cert_b64"])).unwrap(), text.as_bytes());
        text
    }

    /// The vector text with one line replaced (by its 0-based index).
    fn with_line(text: &str, index: usize, new: &str) -> Vec<u8> {
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        lines[index] = new;
        lines.concat().into_bytes()
    }

    #[test]
    fn vector_text_parses_to_the_fields_and_back() {
        let v = vectors();
        let c = &v["certificate"];
        let text = vector_text(c);
        let cert = Certificate::parse(text.as_bytes()).unwrap();
        let f = &c["fields"];
        assert_eq!(cert.serial, f["serial"].as_u64().unwrap());
        assert_eq!(cert.user, s(f, &["user"]));
        assert_eq!(cert.key.to_b64(), s(f, &["key_sec1_b64"]));
        // The certificate is for the user of the vectors file.
        assert_eq!(cert.key.to_b64(), s(&v, &["user", "public_sec1_b64"]));
        assert_eq!(cert.not_before, f["not_before"].as_i64().unwrap());
        assert_eq!(cert.not_after, f["not_after"].as_i64().unwrap());
        let strings = |k: &str| -> Vec<String> {
            f[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(cert.hosts, strings("hosts"));
        assert_eq!(cert.grants, strings("grants"));
        assert_eq!(cert.to_text(), text);
        cert.check().unwrap();
    }

    #[test]
    fn vector_ca_fingerprint_and_signature() {
        let c = cert_vectors();
        let text = vector_text(&c);
        let cert = Certificate::parse(text.as_bytes()).unwrap();
        let ca = keyfile::parse_public_key_pem(s(&c, &["ca", "public_pem"])).unwrap();
        assert_eq!(ca.fingerprint(), s(&c, &["ca", "fingerprint"]));
        assert_eq!(cert.ca, ca.fingerprint());

        let sig = b64::decode(s(&c, &["cert_sig_b64_verify_with_ca_key"])).unwrap();
        verify_signature(text.as_bytes(), &ca, &sig).unwrap();
        cert.verify_issuer(&ca, &sig).unwrap();

        // Under another key, or with another CA named: refused.
        let other = IdentityKey::generate().public();
        assert!(matches!(
            verify_signature(text.as_bytes(), &other, &sig),
            Err(CertError::Signature(KeyError::BadSignature))
        ));
        assert_eq!(cert.verify_issuer(&other, &sig), Err(CertError::CaMismatch));
        assert!(matches!(
            verify_signature(text.as_bytes(), &ca, &sig[..63]),
            Err(CertError::Signature(KeyError::MalformedSignature))
        ));

        // Our signature with the CA's private key verifies the same way.
        let ca_key = keyfile::parse_private_key_pem(s(&c, &["ca", "private_pem"]), None).unwrap();
        assert_eq!(ca_key.public(), ca);
        let ours = cert.sign(&ca_key).unwrap();
        verify_signature(text.as_bytes(), &ca, &ours).unwrap();
        assert_eq!(
            cert.sign(&IdentityKey::generate()),
            Err(CertError::CaMismatch)
        );
        assert_eq!(
            sign(b"remo/1 auth\nalice\n", &ca_key),
            Err(CertError::BadLine {
                line: 1,
                expected: FIRST_LINE
            })
        );
    }

    #[test]
    fn vector_host_matching() {
        let c = cert_vectors();
        let cert = Certificate::parse(vector_text(&c).as_bytes()).unwrap();
        let cases = c["host_matching"].as_object().unwrap();
        assert!(!cases.is_empty());
        for (host, want) in cases {
            let want = want.as_bool().unwrap();
            assert_eq!(cert.matches_host(host), want, "host {host}");
            assert_eq!(
                cert.matches_host(&host.to_ascii_uppercase()),
                want,
                "host {host} upper-cased"
            );
        }
    }

    #[test]
    fn vector_must_reject() {
        let c = cert_vectors();
        let ca = keyfile::parse_public_key_pem(s(&c, &["ca", "public_pem"])).unwrap();
        let good_sig = b64::decode(s(&c, &["cert_sig_b64_verify_with_ca_key"])).unwrap();
        let cases = c["must_reject"].as_object().unwrap();
        assert!(cases.len() >= 6);
        for (name, case) in cases {
            let bytes = b64::decode(s(case, &["cert_b64"])).unwrap();
            let parsed = Certificate::parse(&bytes);
            if let Some(sig) = case.get("cert_sig_b64") {
                // Parses, but the given signature (null: the vector's
                // certificate signature) is not over these bytes.
                let sig = match sig.as_str() {
                    Some(t) => b64::decode(t).unwrap(),
                    None => good_sig.clone(),
                };
                assert!(
                    verify_signature(&bytes, &ca, &sig).is_err(),
                    "{name} verifies"
                );
                if let Ok(cert) = parsed {
                    assert!(cert.verify_issuer(&ca, &sig).is_err(), "{name} verifies");
                }
                continue;
            }
            let err = parsed.expect_err(name);
            let expected = match name.as_str() {
                "no_final_newline" => Some(CertError::NoFinalNewline),
                "crlf" => Some(CertError::CarriageReturn),
                "lines_out_of_order" => Some(CertError::BadLine {
                    line: 3,
                    expected: "serial",
                }),
                "leading_zero_serial" => Some(CertError::LeadingZero { field: "serial" }),
                "not_before_after_not_after" => Some(CertError::ValidityOrder),
                _ => None,
            };
            if let Some(e) = expected {
                assert_eq!(err, e, "{name}");
            }
        }
    }

    #[test]
    fn serial_range_and_number_syntax() {
        let text = vector_text(&cert_vectors());
        let serial = |v: &str| Certificate::parse(&with_line(&text, 2, &format!("serial {v}\n")));
        assert_eq!(serial("0"), Err(CertError::SerialOutOfRange));
        assert_eq!(serial("1").unwrap().serial, 1);
        assert_eq!(
            serial("9223372036854775807").unwrap().serial,
            (1u64 << 63) - 1
        );
        assert_eq!(
            serial("9223372036854775808"),
            Err(CertError::SerialOutOfRange)
        );
        assert_eq!(
            serial("18446744073709551616"),
            Err(CertError::SerialOutOfRange)
        );
        for bad in ["+42", "-1", "", " 42", "42 ", "4 2", "0x2a", "４２"] {
            assert_eq!(
                serial(bad),
                Err(CertError::NotDecimal { field: "serial" }),
                "{bad:?}"
            );
        }
        assert_eq!(
            serial("00"),
            Err(CertError::LeadingZero { field: "serial" })
        );

        let valid = |v: &str| Certificate::parse(&with_line(&text, 5, &format!("valid {v}\n")));
        let ok = valid("0 1").unwrap();
        assert_eq!((ok.not_before, ok.not_after), (0, 1));
        let max = valid("0 9223372036854775807").unwrap();
        assert_eq!(max.not_after, i64::MAX);
        assert_eq!(
            valid("0 9223372036854775808"),
            Err(CertError::TimeOutOfRange { field: "not_after" })
        );
        assert_eq!(
            valid("-1 5"),
            Err(CertError::NotDecimal {
                field: "not_before"
            })
        );
        assert_eq!(
            valid("+1 5"),
            Err(CertError::NotDecimal {
                field: "not_before"
            })
        );
        assert_eq!(
            valid("1 -5"),
            Err(CertError::NotDecimal { field: "not_after" })
        );
        assert_eq!(
            valid("01 5"),
            Err(CertError::LeadingZero {
                field: "not_before"
            })
        );
        assert_eq!(valid("5 5"), Err(CertError::ValidityOrder));
        assert_eq!(valid("6 5"), Err(CertError::ValidityOrder));
        for bad in ["1", "1  5", "1 5 ", " 1 5", "1 5 7"] {
            assert!(
                matches!(valid(bad), Err(CertError::NotDecimal { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hosts_and_grants_syntax() {
        let text = vector_text(&cert_vectors());
        let hosts = |v: &str| Certificate::parse(&with_line(&text, 6, v));
        assert_eq!(hosts("hosts \n"), Err(CertError::EmptyHosts));
        assert_eq!(
            hosts("hosts\n"),
            Err(CertError::BadLine {
                line: 7,
                expected: "hosts"
            })
        );
        for bad in ["hosts a  b\n", "hosts a \n", "hosts  a\n"] {
            assert_eq!(hosts(bad), Err(CertError::EmptyPattern), "{bad:?}");
        }
        assert_eq!(hosts("hosts *\n").unwrap().hosts, ["*"]);

        // Zero grants is fine; a grant may contain spaces but not be empty.
        let no_grants: String = text.split_inclusive('\n').take(7).collect();
        assert!(Certificate::parse(no_grants.as_bytes())
            .unwrap()
            .grants
            .is_empty());
        let spaced = format!("{no_grants}grant  a b \n");
        assert_eq!(
            Certificate::parse(spaced.as_bytes()).unwrap().grants,
            [" a b "]
        );
        assert_eq!(
            Certificate::parse(format!("{no_grants}grant \n").as_bytes()),
            Err(CertError::EmptyGrant { line: 8 })
        );
        // No other line after the hosts, before or after grants.
        for extra in ["hosts x\n", "\n", "grant\n", "Grant x\n", "x grant y\n"] {
            assert_eq!(
                Certificate::parse(format!("{text}{extra}").as_bytes()),
                Err(CertError::BadLine {
                    line: 10,
                    expected: "grant"
                }),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn framing_of_lines() {
        let text = vector_text(&cert_vectors());
        assert_eq!(
            Certificate::parse(b""),
            Err(CertError::MissingLine {
                line: 1,
                expected: FIRST_LINE
            })
        );
        assert_eq!(
            Certificate::parse(b"remo/1 cert\n"),
            Err(CertError::MissingLine {
                line: 2,
                expected: "ca"
            })
        );
        let upto_valid: String = text.split_inclusive('\n').take(6).collect();
        assert_eq!(
            Certificate::parse(upto_valid.as_bytes()),
            Err(CertError::MissingLine {
                line: 7,
                expected: "hosts"
            })
        );
        assert_eq!(
            Certificate::parse(&with_line(&text, 0, "remo/2 cert\n")),
            Err(CertError::BadLine {
                line: 1,
                expected: FIRST_LINE
            })
        );
        assert_eq!(
            Certificate::parse(format!("\n{text}").as_bytes()),
            Err(CertError::BadLine {
                line: 1,
                expected: FIRST_LINE
            })
        );
        // A blank line between fields is "another line".
        let blank = text.replacen("serial", "\nserial", 1);
        assert_eq!(
            Certificate::parse(blank.as_bytes()),
            Err(CertError::BadLine {
                line: 3,
                expected: "serial"
            })
        );
        // A lone \r anywhere, even where a grant could hold it.
        let cr = text.replacen("nginx", "ng\rinx", 1);
        assert_eq!(
            Certificate::parse(cr.as_bytes()),
            Err(CertError::CarriageReturn)
        );
        let mut bytes = text.clone().into_bytes();
        bytes.pop();
        assert_eq!(Certificate::parse(&bytes), Err(CertError::NoFinalNewline));
        let mut bad = text.clone().into_bytes();
        bad.truncate(bad.len() - 1);
        bad.extend_from_slice(b"\xff\n");
        assert_eq!(Certificate::parse(&bad), Err(CertError::NotUtf8));
    }

    #[test]
    fn length_limit() {
        let text = vector_text(&cert_vectors());
        // Pad one grant so the whole is exactly the limit, then one more byte.
        let pad = MAX_CERT_LEN - text.len();
        let at_limit = format!("{text}grant {}\n", "x".repeat(pad - "grant \n".len()));
        assert_eq!(at_limit.len(), MAX_CERT_LEN);
        assert!(Certificate::parse(at_limit.as_bytes()).is_ok());
        let over = format!("{text}grant {}\n", "x".repeat(pad + 1 - "grant \n".len()));
        assert_eq!(over.len(), MAX_CERT_LEN + 1);
        assert_eq!(
            Certificate::parse(over.as_bytes()),
            Err(CertError::TooLong {
                len: MAX_CERT_LEN + 1
            })
        );
    }

    #[test]
    fn ca_user_and_key_values() {
        let text = vector_text(&cert_vectors());
        let ca = |v: &str| Certificate::parse(&with_line(&text, 1, &format!("ca {v}\n")));
        let fp = s(&cert_vectors(), &["ca", "fingerprint"]).to_owned();
        let digest = fp.strip_prefix("SHA256:").unwrap().to_owned();
        for bad in [
            "".to_owned(),
            format!("sha256:{digest}"),
            format!("SHA256: {digest}"),
            format!("SHA256:{digest}="),
            format!("SHA256:{}", &digest[..42]),
            format!("SHA256:{digest}A"),
            format!("SHA256:{}+", &digest[..42]),
            // Non-canonical trailing bits: the last character must encode 0b..00.
            format!("SHA256:{}V", &digest[..42]),
            digest.clone(),
        ] {
            assert_eq!(ca(&bad), Err(CertError::BadFingerprint), "{bad:?}");
        }

        let user = |v: &str| Certificate::parse(&with_line(&text, 3, &format!("user {v}\n")));
        for bad in ["", "al ice", "alice ", "é", &"x".repeat(65)] {
            assert_eq!(user(bad), Err(CertError::BadUser), "{bad:?}");
        }
        assert_eq!(user(&"x".repeat(64)).unwrap().user.len(), 64);

        let key = |v: &str| Certificate::parse(&with_line(&text, 4, &format!("key {v}\n")));
        let good = IdentityKey::generate().public();
        let sec1 = good.to_sec1();
        let mut compressed = vec![0x02 | (sec1[64] & 1)];
        compressed.extend_from_slice(&sec1[1..33]);
        let mut off_curve = sec1;
        off_curve[64] ^= 1;
        for bad in [
            b64::encode(&compressed),
            b64::encode(&off_curve),
            b64::encode(&[0u8; 65]),
            format!("{}=", good.to_b64()),
            String::new(),
        ] {
            assert!(matches!(key(&bad), Err(CertError::BadKey(_))), "{bad:?}");
        }
        assert_eq!(key(&good.to_b64()).unwrap().key, good);
    }

    #[test]
    fn validity_window() {
        let cert = Certificate::parse(vector_text(&cert_vectors()).as_bytes()).unwrap();
        let (nb, na) = (cert.not_before, cert.not_after);
        assert!(cert.check_validity(nb - 300).is_ok());
        assert!(cert.check_validity(nb).is_ok());
        assert!(cert.check_validity(na).is_ok());
        assert_eq!(
            cert.check_validity(nb - 301),
            Err(CertError::NotYetValid {
                not_before: nb,
                now: nb - 301
            })
        );
        assert_eq!(
            cert.check_validity(na + 1),
            Err(CertError::Expired {
                not_after: na,
                now: na + 1
            })
        );
        let mut edge = cert.clone();
        edge.not_before = 0;
        edge.not_after = i64::MAX;
        assert!(edge.check_validity(i64::MAX).is_ok());
        assert!(edge.check_validity(-300).is_ok());
        assert!(edge.check_validity(i64::MIN).is_err());
        edge.not_before = i64::MIN; // not parseable, but must not overflow
        assert!(edge.check_validity(i64::MIN).is_ok());
    }

    #[test]
    fn host_patterns() {
        for (p, h, want) in [
            ("*", "", true),
            ("*", "anything.example", true),
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("**", "x", true),
            ("web*", "web", true),
            ("*.example.org", "a.b.example.org", true),
            ("*.example.org", "example.org", false),
            ("WEB*.Example.ORG", "web1.example.org", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyycd", false),
            ("a*b*c", "acb", false),
            ("*ab", "aab", true),
            ("*aab", "aaab", true),
            ("db1", "db10", false),
            ("db1", "d", false),
            // Only ASCII letters fold.
            ("É", "é", false),
            ("é*", "é.example", true),
        ] {
            assert_eq!(host_matches(p, h), want, "{p:?} vs {h:?}");
        }
    }

    /// Exponential backtracking would need ~C(4000, 15) steps here; the
    /// matcher's own step count stays within (|pattern| + 1)·(|host| + 1).
    /// Counted, not timed, so it holds on any machine (and under Miri).
    #[test]
    fn host_pattern_is_not_exponential() {
        let pattern = format!("{}b", "*a".repeat(15));
        let host = "a".repeat(4000);
        let star_heavy = format!("{}*", "*".repeat(2000));
        let cases = [
            (pattern.as_str(), host.clone(), false),
            (pattern.as_str(), format!("{host}b"), true),
            (star_heavy.as_str(), host.clone(), true),
        ];
        for (p, h, want) in cases {
            let (got, steps) = match_counting(p, &h);
            assert_eq!(got, want);
            let bound = (p.len() + 1) * (h.len() + 1);
            assert!(steps <= bound, "{steps} steps > {bound}");
        }
    }

    fn arb_cert() -> impl Strategy<Value = Certificate> {
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            1..SERIAL_LIMIT,
            "[A-Za-z0-9._-]{1,64}",
            0..i64::MAX,
            any::<u64>(),
            prop::collection::vec("[^ \n\r]{1,20}", 1..5),
            prop::collection::vec("[^\n\r]{1,40}", 0..6),
        )
            .prop_filter_map(
                "scalars out of range",
                |(ca, user_key, serial, user, nb, span, hosts, grants)| {
                    let key = |b: [u8; 32]| {
                        p256::ecdsa::SigningKey::from_slice(&b)
                            .ok()
                            .map(|k| IdentityKey::from(k).public())
                    };
                    let span = i64::try_from(span % (i64::MAX - nb) as u64).ok()?;
                    Some(Certificate {
                        ca: key(ca)?.fingerprint(),
                        serial,
                        user,
                        key: key(user_key)?,
                        not_before: nb,
                        not_after: nb + span + 1,
                        hosts,
                        grants,
                    })
                },
            )
    }

    proptest! {
        #[test]
        fn text_round_trips(cert in arb_cert()) {
            let text = cert.to_text();
            prop_assert_eq!(Certificate::parse(text.as_bytes()), Ok(cert.clone()));
            prop_assert_eq!(cert.check(), Ok(()));
        }

        /// Random edits of a valid text: never a panic, and whatever is
        /// accepted is its own canonical text (one spelling per certificate).
        #[test]
        fn edits_never_panic_and_accepted_is_canonical(
            cert in arb_cert(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(b"\n\r 0+-*a\xff\xc3".to_vec())), 1..4),
        ) {
            let mut bytes = cert.to_text().into_bytes();
            for (at, op, b) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 => bytes.insert(i, b),
                    1 if i < bytes.len() => { bytes.remove(i); }
                    _ => if let Some(x) = bytes.get_mut(i) { *x = b },
                }
            }
            if let Ok(c) = Certificate::parse(&bytes) {
                prop_assert_eq!(c.to_text().into_bytes(), bytes);
            }
        }

        #[test]
        fn host_matches_agrees_with_the_reference(p in "[abA*]{0,9}", h in "[abAB]{0,12}") {
            prop_assert_eq!(host_matches(&p, &h), reference_match(p.as_bytes(), h.as_bytes()));
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Certificate::parse(&bytes);
        }
    }

    #[test]
    fn check_refuses_what_would_not_round_trip() {
        let mut cert = Certificate::parse(vector_text(&cert_vectors()).as_bytes()).unwrap();
        cert.hosts = vec!["a b".into()];
        assert_eq!(cert.check(), Err(CertError::NotCanonical));
        cert.hosts = vec![];
        assert_eq!(cert.check(), Err(CertError::EmptyHosts));
        cert.hosts = vec!["a".into()];
        cert.grants = vec!["x\ngrant y".into()];
        assert_eq!(cert.check(), Err(CertError::NotCanonical));
        cert.grants = vec![];
        cert.serial = 0;
        assert_eq!(cert.check(), Err(CertError::SerialOutOfRange));
    }
}
