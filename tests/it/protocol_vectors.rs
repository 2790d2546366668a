//! Checks the implementation against `shared/protocol-vectors.json`, the
//! vectors computed with OpenSSL: key files, fingerprints, handshake
//! signatures and keys, sealed records in both framings, and the
//! must-reject cases.

// Test harness: a failed unwrap is a failed test.

use remo::keyfile::{self, KeyFileError};
use remo::proto::b64;
use remo::proto::framing::{open_message_framed, seal_message_framed, BinarySplitter, Framing};
use remo::proto::handshake::{
    derive_session_keys, m1, m2, server_accept, ClientHandshake, Ephemeral, ParsedAuth,
};
use remo::proto::identity::{IdentityKey, PublicKey};
use remo::proto::record::{open_message, seal_message, RecordError, RecordKey};
use serde_json::Value;

/// The repository's own copy, so a clone stands alone.
const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/protocol-vectors.json"
);

/// The shared originals, beside the repository in the workspace only.
const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");

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

fn hex32(text: &str) -> [u8; 32] {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn identity(v: &Value, who: &str) -> IdentityKey {
    let k = keyfile::parse_private_key_pem(s(v, &[who, "private_pem"]), None).unwrap();
    assert_eq!(
        k.public().to_b64(),
        s(v, &[who, "public_sec1_b64"]),
        "{who}"
    );
    assert_eq!(
        k.public().fingerprint(),
        s(v, &[who, "fingerprint"]),
        "{who}"
    );
    let p = keyfile::parse_public_key_pem(s(v, &[who, "public_pem"])).unwrap();
    assert_eq!(p, k.public(), "{who}");
    k
}

#[test]
fn identity_keys_and_fingerprints() {
    let v = vectors();
    identity(&v, "user");
    identity(&v, "server");
    // Our own SPKI PEM encodes to what OpenSSL wrote.
    let server = identity(&v, "server");
    assert_eq!(
        keyfile::public_key_to_pem(&server.public()),
        s(&v, &["server", "public_pem"])
    );
}

#[test]
fn handshake_signatures_verify() {
    let v = vectors();
    let user = identity(&v, "user").public();
    let server = identity(&v, "server").public();
    let h = &v["handshake"];
    let name = s(&v, &["user", "name"]);
    let time = h["time"].as_i64().unwrap();
    let msg1 = m1(name, s(h, &["Qc_b64"]), time);
    assert_eq!(msg1, s(h, &["M1"]));
    let sig1 = b64::decode(s(h, &["M1_sig_b64_verify_with_user_key"])).unwrap();
    user.verify(msg1.as_bytes(), &sig1).unwrap();
    assert!(server.verify(msg1.as_bytes(), &sig1).is_err());

    let msg2 = m2(
        name,
        s(h, &["Qc_b64"]),
        s(h, &["Qs_b64"]),
        s(h, &["session"]),
    );
    assert_eq!(msg2, s(h, &["M2"]));
    let sig2 = b64::decode(s(h, &["M2_sig_b64_verify_with_server_key"])).unwrap();
    server.verify(msg2.as_bytes(), &sig2).unwrap();
    assert!(user.verify(msg2.as_bytes(), &sig2).is_err());
}

#[test]
fn handshake_ephemerals_and_session_keys() {
    let v = vectors();
    let h = &v["handshake"];
    let c = Ephemeral::from_scalar_bytes(&hex32(s(h, &["client_ephemeral_private_hex"]))).unwrap();
    let se = Ephemeral::from_scalar_bytes(&hex32(s(h, &["server_ephemeral_private_hex"]))).unwrap();
    assert_eq!(b64::encode(c.public_sec1()), s(h, &["Qc_b64"]));
    assert_eq!(b64::encode(se.public_sec1()), s(h, &["Qs_b64"]));
    let z = c.shared_secret(se.public_sec1()).unwrap();
    assert_eq!(hex::encode(*z), s(h, &["Z_hex"]));
    assert_eq!(*se.shared_secret(c.public_sec1()).unwrap(), *z);
    let keys = derive_session_keys(&*z, c.public_sec1(), se.public_sec1(), s(h, &["session"]));
    assert_eq!(hex::encode(*keys.c2s), s(h, &["K_c2s_hex"]));
    assert_eq!(hex::encode(*keys.s2c), s(h, &["K_s2c_hex"]));
}

#[test]
fn full_handshake_with_vector_keys() {
    let v = vectors();
    let h = &v["handshake"];
    let user = identity(&v, "user");
    let server = identity(&v, "server");
    let name = s(&v, &["user", "name"]);
    let time = h["time"].as_i64().unwrap();
    let c = Ephemeral::from_scalar_bytes(&hex32(s(h, &["client_ephemeral_private_hex"]))).unwrap();
    let se = Ephemeral::from_scalar_bytes(&hex32(s(h, &["server_ephemeral_private_hex"]))).unwrap();

    let (hs, req) = ClientHandshake::start_with(name, &user, time, c);
    assert_eq!(req.key, s(h, &["Qc_b64"]));
    let body = serde_json::to_vec(&req).unwrap();
    let parsed = ParsedAuth::parse(&body).unwrap();
    parsed.verify(&user.public(), time + 1).unwrap();
    assert!(parsed.verify(&server.public(), time).is_err());

    let (resp, skeys) = server_accept(&parsed, &server, &se, s(h, &["session"]), 600).unwrap();
    assert_eq!(resp.key, s(h, &["Qs_b64"]));
    // ECDSA signatures are randomised, so ours differ from the vector's but
    // must verify the same way.
    let sig2 = b64::decode(&resp.sig).unwrap();
    server
        .public()
        .verify(s(h, &["M2"]).as_bytes(), &sig2)
        .unwrap();
    let cs = hs.finish(&resp, &server.public()).unwrap();
    assert_eq!(hex::encode(*cs.keys.c2s), s(h, &["K_c2s_hex"]));
    assert_eq!(hex::encode(*cs.keys.s2c), s(h, &["K_s2c_hex"]));
    assert_eq!(*skeys.c2s, *cs.keys.c2s);
    assert_eq!(*skeys.s2c, *cs.keys.s2c);
}

fn plaintexts(rec: &Value) -> Vec<Vec<u8>> {
    if let Some(list) = rec["plaintexts"].as_array() {
        list.iter()
            .map(|p| p.as_str().unwrap().as_bytes().to_vec())
            .collect()
    } else {
        rec["plaintexts_hex"]
            .as_array()
            .expect("record vector without plaintexts")
            .iter()
            .map(|p| hex::decode(p.as_str().unwrap()).unwrap())
            .collect()
    }
}

#[test]
fn records_reproduce_byte_for_byte() {
    let v = vectors();
    let h = &v["handshake"];
    let c2s = RecordKey::new(&hex32(s(h, &["K_c2s_hex"])));
    let s2c = RecordKey::new(&hex32(s(h, &["K_s2c_hex"])));
    let records = v["records"].as_object().unwrap();
    assert!(!records.is_empty());
    for (name, rec) in records {
        let key = if name.contains("response") {
            &s2c
        } else {
            &c2s
        };
        let other = if name.contains("response") {
            &c2s
        } else {
            &s2c
        };
        let op = s(rec, &["op"]);
        let r = rec["R"].as_u64().unwrap();
        let pts = plaintexts(rec);
        let refs: Vec<&[u8]> = pts.iter().map(Vec::as_slice).collect();
        let body = seal_message(key, r, op, &refs).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            s(rec, &["body"]),
            "{name}"
        );
        let opened = open_message(key, Some(r), op, s(rec, &["body"]).as_bytes()).unwrap();
        assert_eq!(opened, pts, "{name}");
        // The wrong direction's key, another R or another op must not open it.
        assert!(open_message(other, Some(r), op, s(rec, &["body"]).as_bytes()).is_err());
        assert!(open_message(key, Some(r + 1), op, s(rec, &["body"]).as_bytes()).is_err());
        assert!(open_message(key, Some(r), "xyz", s(rec, &["body"]).as_bytes()).is_err());
    }
}

#[test]
fn must_reject_cases_are_rejected() {
    let v = vectors();
    let h = &v["handshake"];
    let c2s = RecordKey::new(&hex32(s(h, &["K_c2s_hex"])));
    let s2c = RecordKey::new(&hex32(s(h, &["K_s2c_hex"])));
    let cases = v["must_reject"].as_object().unwrap();
    assert!(!cases.is_empty());
    for (name, case) in cases {
        if let Some(text) = case["text"].as_str() {
            assert!(b64::decode(text).is_err(), "{name}: b64 accepted {text:?}");
            continue;
        }
        let op = s(case, &["op"]);
        let r = case["R"].as_u64().unwrap();
        let body = s(case, &["body"]).as_bytes();
        for key in [&c2s, &s2c] {
            assert!(
                open_message(key, Some(r), op, body).is_err(),
                "{name} was accepted"
            );
            assert!(open_message(key, None, op, body).is_err(), "{name}");
        }
    }
}

/// §4.1: every `binary_framing` entry sealed from its plaintexts under the
/// session keys of the `handshake` section, byte for byte, and opened back;
/// its records carry the same `N ‖ C` as the text body of the same name in
/// `records`.
#[test]
fn binary_framing_reproduces_byte_for_byte() {
    let v = vectors();
    let h = &v["handshake"];
    let c2s = RecordKey::new(&hex32(s(h, &["K_c2s_hex"])));
    let s2c = RecordKey::new(&hex32(s(h, &["K_s2c_hex"])));
    let section = v["binary_framing"].as_object().unwrap();
    let mut checked = 0;
    for (name, rec) in section {
        if name == "about" || name == "must_reject" {
            continue;
        }
        let (key, other) = if name.contains("response") {
            (&s2c, &c2s)
        } else {
            (&c2s, &s2c)
        };
        let op = s(rec, &["op"]);
        let r = rec["R"].as_u64().unwrap();
        let pts = plaintexts(rec);
        let refs: Vec<&[u8]> = pts.iter().map(Vec::as_slice).collect();
        let want = hex::decode(s(rec, &["body_hex"])).unwrap();
        let body = seal_message_framed(key, r, op, &refs, Framing::Binary).unwrap();
        assert_eq!(hex::encode(&body), s(rec, &["body_hex"]), "{name}");
        let opened = open_message_framed(key, Some(r), op, &want, Framing::Binary).unwrap();
        assert_eq!(opened, pts, "{name}");
        assert!(open_message_framed(other, Some(r), op, &want, Framing::Binary).is_err());
        assert!(open_message_framed(key, Some(r + 1), op, &want, Framing::Binary).is_err());
        assert!(open_message_framed(key, Some(r), "xyz", &want, Framing::Binary).is_err());
        // The same records as the text vector of that name: re-framed
        // line by line, the text body is the binary one.
        if let Some(text) = v["records"][name.as_str()]["body"].as_str() {
            let mut reframed = Vec::new();
            for line in text.split_terminator("\r\n") {
                let raw = b64::decode(line).unwrap();
                reframed.extend_from_slice(&u32::try_from(raw.len()).unwrap().to_be_bytes());
                reframed.extend_from_slice(&raw);
            }
            assert_eq!(reframed, want, "{name}: not the records of records.{name}");
        }
        checked += 1;
    }
    assert_eq!(checked, section.len() - 2, "entries left unchecked");
    assert!(checked > 0);
}

/// Why each `binary_framing.must_reject` case must fail. A case missing
/// here fails the test: a new vector needs its reason.
fn binary_reject_reason(name: &str) -> RecordError {
    match name {
        "length_27" => RecordError::LengthTooSmall(27),
        "length_65566" => RecordError::LengthTooLarge(65_566),
        "truncated_inside_record" => RecordError::PartialRecord,
        "missing_last_record" => RecordError::Truncated,
        other => panic!("binary_framing.must_reject.{other}: no expected reason in this test"),
    }
}

#[test]
fn binary_must_reject_cases_fail_for_their_reason() {
    let v = vectors();
    let h = &v["handshake"];
    let c2s = RecordKey::new(&hex32(s(h, &["K_c2s_hex"])));
    let cases = v["binary_framing"]["must_reject"].as_object().unwrap();
    assert!(!cases.is_empty());
    for (name, case) in cases {
        let want = binary_reject_reason(name);
        let body = hex::decode(s(case, &["body_hex"])).unwrap();
        // The cases without an op or R fail on their length alone,
        // whatever the message would have been.
        let op = case["op"].as_str().unwrap_or("put");
        let r = case["R"].as_u64();
        for r in [r, None] {
            assert_eq!(
                open_message_framed(&c2s, r, op, &body, Framing::Binary),
                Err(want.clone()),
                "{name} ({})",
                s(case, &["why"])
            );
        }
        // A length out of range is refused from its 4 bytes, before any
        // byte of its record has arrived.
        if matches!(
            want,
            RecordError::LengthTooSmall(_) | RecordError::LengthTooLarge(_)
        ) {
            let mut split = BinarySplitter::new();
            split.push(&body[..4]);
            assert_eq!(split.next_record(), Err(want), "{name}");
        }
    }
}

#[test]
fn openssl_key_files() {
    let v = vectors();
    let enc = &v["key_files"]["openssl_encrypted_pkcs8"];
    let pem = s(enc, &["pem"]);
    assert!(keyfile::is_encrypted_pem(pem));
    let pass = s(enc, &["passphrase"]);
    let k = keyfile::parse_private_key_pem(pem, Some(pass.as_bytes())).unwrap();
    assert_eq!(k.public().to_b64(), s(enc, &["public_sec1_b64"]));
    assert!(matches!(
        keyfile::parse_private_key_pem(pem, Some(b"wrong horse")),
        Err(KeyFileError::WrongPassphrase)
    ));
    assert!(matches!(
        keyfile::parse_private_key_pem(pem, None),
        Err(KeyFileError::PassphraseNeeded)
    ));

    let sec1 = &v["key_files"]["openssl_sec1_ec_private_key"];
    let pem = s(sec1, &["pem"]);
    assert!(!keyfile::is_encrypted_pem(pem));
    let k = keyfile::parse_private_key_pem(pem, None).unwrap();
    assert_eq!(k.public().to_b64(), s(sec1, &["public_sec1_b64"]));
    let p = PublicKey::from_b64(s(sec1, &["public_sec1_b64"])).unwrap();
    assert_eq!(k.public(), p);
}

/// The repository carries copies of the specification and the vectors
/// (docs/protocol.md, tests/vectors/, docs/fastcgi-notes.md); where the
/// shared originals exist beside it, the copies must be identical, so they
/// cannot drift.
#[test]
fn copies_match_the_shared_originals() {
    let root = env!("CARGO_MANIFEST_DIR");
    let pairs = [
        (
            "protocol-vectors.json",
            "tests/vectors/protocol-vectors.json",
        ),
        ("PROTOCOL.md", "docs/protocol.md"),
        ("FASTCGI-NOTES.md", "docs/fastcgi-notes.md"),
    ];
    let mut compared = 0;
    for (shared, ours) in pairs {
        let ours_text = std::fs::read(format!("{root}/{ours}"))
            .unwrap_or_else(|e| panic!("{ours} is missing from the repository: {e}"));
        assert!(!ours_text.is_empty(), "{ours} is empty");
        let Ok(original) = std::fs::read(format!("{SHARED}/{shared}")) else {
            continue;
        };
        assert!(
            original == ours_text,
            "{ours} differs from ../shared/{shared}: copy it again (cp ../shared/{shared} {ours})"
        );
        compared += 1;
    }
    if std::path::Path::new(SHARED).join("PROTOCOL.md").exists() {
        assert_eq!(compared, pairs.len());
    }
}
