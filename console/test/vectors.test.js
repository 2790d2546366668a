// Every entry of tests/vectors/protocol-vectors.json (the vectors computed
// with OpenSSL) reproduced by the console's protocol layer, section by
// section, as tests/it/protocol_vectors.rs and src/proto/cert.rs do for the
// Rust side. A section or a must_reject case this file does not know fails
// the run: a new vector needs its check here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { B64Error, CertError, RecordError, SessionError } from '../src/errors.js';
import { b64decode, b64encode, fromHex, fromUtf8, toHex, utf8, concatBytes } from '../src/b64.js';
import { importPrivateKeyPem, importPublicKeyPem, isEncryptedPem, publicKeyPem } from '../src/keys.js';
import {
  authRequest,
  ephemeralFromScalar,
  finishAuth,
  m1,
  m2,
  sessionKeyBytes,
  sharedSecret,
  signP1363,
  verifyP1363,
} from '../src/handshake.js';
import { importRecordKey } from '../src/record.js';
import { BinarySplitter, openMessage, sealMessage } from '../src/framing.js';
import {
  certificateText,
  certMatchesHost,
  parseCertificate,
  verifyCertificate,
  verifyCertificateSignature,
} from '../src/cert.js';

const VECTORS = fileURLToPath(new URL('../../tests/vectors/protocol-vectors.json', import.meta.url));
const v = JSON.parse(readFileSync(VECTORS, 'utf8'));
const h = v.handshake;

/** The sections this file checks; any other fails `every section is checked`. */
const SECTIONS = ['about', 'user', 'server', 'handshake', 'records', 'must_reject', 'key_files', 'binary_framing', 'certificate'];

test('every section of the vectors is checked here', () => {
  assert.deepEqual(Object.keys(v).sort(), [...SECTIONS].sort());
});

async function identity(who) {
  const k = await importPrivateKeyPem(v[who].private_pem);
  assert.equal(b64encode(k.publicRaw), v[who].public_sec1_b64, who);
  assert.equal(k.fingerprint, v[who].fingerprint, who);
  assert.equal(k.privateKey.extractable, false, `${who}: the private key must be non-extractable`);
  assert.deepEqual(k.privateKey.usages, ['sign']);
  const p = await importPublicKeyPem(v[who].public_pem);
  assert.equal(b64encode(p.publicRaw), v[who].public_sec1_b64, who);
  assert.equal(p.fingerprint, v[who].fingerprint, who);
  // Our SPKI PEM is what OpenSSL wrote.
  assert.equal(publicKeyPem(k.publicRaw), v[who].public_pem, who);
  return k;
}

test('user and server: keys, public points, fingerprints, PEM', async () => {
  assert.equal(v.user.name, 'alice');
  await identity('user');
  await identity('server');
});

test('handshake: M1 and M2 texts and their signatures', async () => {
  const user = await identity('user');
  const server = await identity('server');
  const name = v.user.name;
  const msg1 = m1(name, h.Qc_b64, h.time);
  assert.equal(msg1, h.M1);
  const sig1 = b64decode(h.M1_sig_b64_verify_with_user_key);
  assert.equal(await verifyP1363(user.publicKey, utf8(msg1), sig1), true);
  assert.equal(await verifyP1363(server.publicKey, utf8(msg1), sig1), false);

  const msg2 = m2(name, h.Qc_b64, h.Qs_b64, h.session);
  assert.equal(msg2, h.M2);
  const sig2 = b64decode(h.M2_sig_b64_verify_with_server_key);
  assert.equal(await verifyP1363(server.publicKey, utf8(msg2), sig2), true);
  assert.equal(await verifyP1363(user.publicKey, utf8(msg2), sig2), false);
  // A signature of the wrong length is a refusal, not an exception.
  assert.equal(await verifyP1363(server.publicKey, utf8(msg2), sig2.subarray(0, 63)), false);
});

test('handshake: ephemerals, Z and the session keys', async () => {
  const c = await ephemeralFromScalar(fromHex(h.client_ephemeral_private_hex));
  const s = await ephemeralFromScalar(fromHex(h.server_ephemeral_private_hex));
  assert.equal(b64encode(c.publicRaw), h.Qc_b64);
  assert.equal(b64encode(s.publicRaw), h.Qs_b64);
  assert.equal(c.privateKey.extractable, false);
  const z = await sharedSecret(c.privateKey, s.publicRaw);
  assert.equal(toHex(z), h.Z_hex);
  assert.equal(toHex(await sharedSecret(s.privateKey, c.publicRaw)), h.Z_hex);
  const keys = await sessionKeyBytes(z, c.publicRaw, s.publicRaw, h.session);
  assert.equal(toHex(keys.c2s), h.K_c2s_hex);
  assert.equal(toHex(keys.s2c), h.K_s2c_hex);
});

test('handshake: a whole login with the vector keys', async () => {
  const user = await identity('user');
  const server = await identity('server');
  const name = v.user.name;
  const ephemeral = await ephemeralFromScalar(fromHex(h.client_ephemeral_private_hex));
  const { body, qcB64 } = await authRequest({ user: name, key: user.privateKey, time: h.time, ephemeral });
  assert.deepEqual(Object.keys(body).sort(), ['key', 'sig', 'time', 'user']);
  assert.equal(body.key, h.Qc_b64);
  assert.equal(body.user, name);
  assert.equal(body.time, h.time);
  // ECDSA is randomised: ours differs from the vector's, and verifies the same.
  assert.equal(await verifyP1363(user.publicKey, utf8(h.M1), b64decode(body.sig)), true);

  // The server's answer with the vector's M2 signature…
  const answer = { session: h.session, key: h.Qs_b64, sig: h.M2_sig_b64_verify_with_server_key, timeout: 600 };
  const done = await finishAuth({ user: name, qcB64, ephemeral, response: answer, serverKey: server.publicKey });
  assert.equal(done.sid, h.session);
  assert.equal(done.timeout, 600);
  assert.equal(done.c2s.extractable, false);
  // …gives the vector's keys: they seal the vector's records byte for byte.
  const rec = v.records.cmd_request_R1;
  const sealed = await sealMessage(done.c2s, rec.R, rec.op, rec.plaintexts.map(utf8), 'text');
  assert.equal(fromUtf8(sealed), rec.body);
  const resp = v.records.cmd_response_R1;
  assert.equal((await openMessage(done.s2c, resp.R, resp.op, utf8(resp.body), 'text')).length, 2);

  // …and one we sign with the server's private key does too.
  const ours = await signP1363(server.privateKey, utf8(h.M2));
  await finishAuth({ user: name, qcB64, ephemeral, response: { ...answer, sig: b64encode(ours) }, serverKey: server.publicKey });

  // Under another key, or for another session id: refused.
  for (const [response, serverKey] of [
    [answer, user.publicKey],
    [{ ...answer, session: 'AAECAwQFBgcICQoLDA0ODg' }, server.publicKey],
    [{ ...answer, key: b64encode((await ephemeralFromScalar(fromHex(h.client_ephemeral_private_hex))).publicRaw) }, server.publicKey],
  ]) {
    await assert.rejects(
      finishAuth({ user: name, qcB64, ephemeral, response, serverKey }),
      (e) => e instanceof SessionError && e.code === 'bad_server_signature',
    );
  }
  for (const response of [null, [], { ...answer, timeout: '600' }, { ...answer, session: 'a b' }, { ...answer, sig: 'YWI=' }]) {
    await assert.rejects(
      finishAuth({ user: name, qcB64, ephemeral, response, serverKey: server.publicKey }),
      (e) => e instanceof SessionError && e.code === 'protocol',
    );
  }
});

async function recordKeys() {
  return {
    c2s: await importRecordKey(fromHex(h.K_c2s_hex)),
    s2c: await importRecordKey(fromHex(h.K_s2c_hex)),
  };
}

function plaintexts(rec) {
  if (rec.plaintexts) return rec.plaintexts.map(utf8);
  assert.ok(Array.isArray(rec.plaintexts_hex), 'record vector without plaintexts');
  return rec.plaintexts_hex.map(fromHex);
}

async function rejectsWith(promise, code, what) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof RecordError, `${what}: ${e}`);
    assert.equal(e.code, code, what);
    return true;
  });
}

test('records: every entry sealed and opened byte for byte (text framing)', async () => {
  const keys = await recordKeys();
  const names = Object.keys(v.records);
  assert.ok(names.length >= 3);
  for (const name of names) {
    const rec = v.records[name];
    const [key, other] = name.includes('response') ? [keys.s2c, keys.c2s] : [keys.c2s, keys.s2c];
    const pts = plaintexts(rec);
    const body = await sealMessage(key, rec.R, rec.op, pts, 'text');
    assert.equal(fromUtf8(body), rec.body, name);
    const opened = await openMessage(key, rec.R, rec.op, utf8(rec.body), 'text');
    assert.deepEqual(opened.map(toHex), pts.map(toHex), name);
    assert.deepEqual((await openMessage(key, null, rec.op, utf8(rec.body), 'text')).map(toHex), pts.map(toHex));
    // The wrong direction's key, another R or another op must not open it.
    await rejectsWith(openMessage(other, rec.R, rec.op, utf8(rec.body), 'text'), 'auth', `${name} other key`);
    await rejectsWith(openMessage(key, rec.R + 1, rec.op, utf8(rec.body), 'text'), 'wrong_request', `${name} R+1`);
    await rejectsWith(openMessage(key, rec.R, 'xyz', utf8(rec.body), 'text'), 'auth', `${name} op`);
  }
});

/** Why each must_reject case must fail; a case missing here fails the test. */
const TEXT_REJECT = {
  token_marked_more_as_only_record: 'truncated',
  padded_base64: 'b64',
  truncated_put: 'truncated',
};

test('must_reject: every case refused for its reason', async () => {
  const keys = await recordKeys();
  const names = Object.keys(v.must_reject);
  assert.ok(names.length >= 3);
  for (const name of names) {
    const c = v.must_reject[name];
    const want = TEXT_REJECT[name];
    assert.ok(want, `must_reject.${name}: no expected reason in this test (${c.why})`);
    if (c.text !== undefined) {
      assert.throws(() => b64decode(c.text), (e) => e instanceof B64Error && e.code === want, name);
      continue;
    }
    for (const r of [c.R, null]) {
      await rejectsWith(openMessage(keys.c2s, r, c.op, utf8(c.body), 'text'), want, `${name} (${c.why})`);
      // Under the other key it fails too (it does not authenticate).
      await assert.rejects(openMessage(keys.s2c, r, c.op, utf8(c.body), 'text'), RecordError, name);
    }
  }
});

test('binary_framing: every entry byte for byte, the same records as the text vectors', async () => {
  const keys = await recordKeys();
  const section = v.binary_framing;
  let checked = 0;
  for (const [name, rec] of Object.entries(section)) {
    if (name === 'about' || name === 'must_reject') continue;
    const [key, other] = name.includes('response') ? [keys.s2c, keys.c2s] : [keys.c2s, keys.s2c];
    const pts = plaintexts(rec);
    const want = fromHex(rec.body_hex);
    assert.equal(toHex(await sealMessage(key, rec.R, rec.op, pts, 'binary')), rec.body_hex, name);
    assert.deepEqual((await openMessage(key, rec.R, rec.op, want, 'binary')).map(toHex), pts.map(toHex), name);
    await rejectsWith(openMessage(other, rec.R, rec.op, want, 'binary'), 'auth', name);
    await rejectsWith(openMessage(key, rec.R + 1, rec.op, want, 'binary'), 'wrong_request', name);
    await rejectsWith(openMessage(key, rec.R, 'xyz', want, 'binary'), 'auth', name);
    const text = v.records[name]?.body;
    if (text !== undefined) {
      const reframed = [];
      for (const line of text.split('\r\n').slice(0, -1)) {
        const raw = b64decode(line);
        const len = new Uint8Array(4);
        new DataView(len.buffer).setUint32(0, raw.length);
        reframed.push(len, raw);
      }
      assert.equal(toHex(concatBytes(reframed)), rec.body_hex, `${name}: not the records of records.${name}`);
    }
    checked += 1;
  }
  assert.equal(checked, Object.keys(section).length - 2, 'entries left unchecked');
  assert.ok(checked > 0);
});

/** Why each binary_framing.must_reject case must fail. */
const BINARY_REJECT = {
  length_27: ['length_too_small', 27],
  length_65566: ['length_too_large', 65566],
  truncated_inside_record: ['partial_record'],
  missing_last_record: ['truncated'],
};

test('binary_framing.must_reject: every case refused for its reason', async () => {
  const keys = await recordKeys();
  const cases = v.binary_framing.must_reject;
  assert.ok(Object.keys(cases).length >= 4);
  for (const [name, c] of Object.entries(cases)) {
    const want = BINARY_REJECT[name];
    assert.ok(want, `binary_framing.must_reject.${name}: no expected reason in this test (${c.why})`);
    const [code, length] = want;
    const body = fromHex(c.body_hex);
    const op = c.op ?? 'put';
    for (const r of [c.R ?? null, null]) {
      await assert.rejects(openMessage(keys.c2s, r, op, body, 'binary'), (e) => {
        assert.ok(e instanceof RecordError, `${name}: ${e}`);
        assert.equal(e.code, code, `${name} (${c.why})`);
        if (length !== undefined) assert.equal(e.length, length, name);
        return true;
      });
    }
    // A length out of range is refused from its 4 bytes, before any byte
    // of its record has arrived.
    if (length !== undefined) {
      const split = new BinarySplitter();
      split.push(body.subarray(0, 4));
      assert.throws(() => split.next(), (e) => e instanceof RecordError && e.code === code && e.length === length, name);
    }
  }
});

test('key_files: OpenSSL encrypted PKCS#8 and SEC1', async () => {
  const names = Object.keys(v.key_files).sort();
  assert.deepEqual(names, ['openssl_encrypted_pkcs8', 'openssl_sec1_ec_private_key'], 'a new key_files entry needs its check');
  const enc = v.key_files.openssl_encrypted_pkcs8;
  assert.equal(isEncryptedPem(enc.pem), true);
  const k = await importPrivateKeyPem(enc.pem, { passphrase: enc.passphrase });
  assert.equal(b64encode(k.publicRaw), enc.public_sec1_b64);
  assert.equal(k.privateKey.extractable, false);
  await assert.rejects(importPrivateKeyPem(enc.pem, { passphrase: 'wrong horse' }), { code: 'wrong_passphrase' });
  await assert.rejects(importPrivateKeyPem(enc.pem), { code: 'passphrase_needed' });

  const sec1 = v.key_files.openssl_sec1_ec_private_key;
  assert.equal(isEncryptedPem(sec1.pem), false);
  const s = await importPrivateKeyPem(sec1.pem);
  assert.equal(b64encode(s.publicRaw), sec1.public_sec1_b64);
  assert.equal(s.privateKey.extractable, false);
  // The decrypted and the SEC1 keys sign: what is imported is usable.
  for (const key of [k, s]) {
    const sig = await signP1363(key.privateKey, utf8('x'));
    assert.equal(await verifyP1363(key.publicKey, utf8('x'), sig), true);
  }
});

const c = v.certificate;

function vectorText() {
  assert.equal(b64encode(utf8(c.cert_text)), c.cert_b64);
  assert.equal(fromUtf8(b64decode(c.cert_b64)), c.cert_text);
  return c.cert_text;
}

test('certificate: the text parses to the fields and back', async () => {
  const cert = await parseCertificate(b64decode(c.cert_b64));
  const f = c.fields;
  assert.equal(cert.serial, BigInt(f.serial));
  assert.equal(cert.user, f.user);
  assert.equal(cert.keyB64, f.key_sec1_b64);
  assert.equal(b64encode(cert.key), f.key_sec1_b64);
  assert.equal(cert.keyB64, v.user.public_sec1_b64, 'the certificate is for the user of the vectors');
  assert.equal(cert.notBefore, BigInt(f.not_before));
  assert.equal(cert.notAfter, BigInt(f.not_after));
  assert.deepEqual(cert.hosts, f.hosts);
  assert.deepEqual(cert.grants, f.grants);
  assert.equal(cert.ca, c.ca.fingerprint);
  assert.equal(cert.text, vectorText());
  assert.equal(certificateText(cert), c.cert_text);
  assert.deepEqual(Object.keys(f).sort(), ['grants', 'hosts', 'key_sec1_b64', 'not_after', 'not_before', 'serial', 'user']);
});

test('certificate: CA key, fingerprint and signature', async () => {
  const cert = await parseCertificate(vectorText());
  const ca = await importPublicKeyPem(c.ca.public_pem);
  assert.equal(ca.fingerprint, c.ca.fingerprint);
  const caPriv = await importPrivateKeyPem(c.ca.private_pem);
  assert.equal(b64encode(caPriv.publicRaw), b64encode(ca.publicRaw));
  assert.equal(caPriv.fingerprint, c.ca.fingerprint);

  const sig = b64decode(c.cert_sig_b64_verify_with_ca_key);
  assert.equal(await verifyCertificateSignature(cert.bytes, ca.publicKey, sig), true);
  await verifyCertificate(cert, ca, sig);

  // Under another key, or with another CA named: refused.
  const other = await importPublicKeyPem(v.server.public_pem);
  assert.equal(await verifyCertificateSignature(cert.bytes, other.publicKey, sig), false);
  await assert.rejects(verifyCertificate(cert, other, sig), (e) => e instanceof CertError && e.code === 'ca_mismatch');
  await assert.rejects(verifyCertificate(cert, ca, sig.subarray(0, 63)), (e) => e instanceof CertError && e.code === 'bad_signature');
  // Our signature with the CA's private key verifies the same way.
  const ours = await signP1363(caPriv.privateKey, cert.bytes);
  await verifyCertificate(cert, ca, ours);
});

test('certificate: host_matching', async () => {
  const cert = await parseCertificate(vectorText());
  const cases = Object.entries(c.host_matching);
  assert.ok(cases.length >= 6);
  for (const [host, want] of cases) {
    assert.equal(certMatchesHost(cert, host), want, host);
    assert.equal(certMatchesHost(cert, host.toUpperCase()), want, `${host} upper-cased`);
  }
});

/** Why each certificate.must_reject case must fail (cases with a signature are checked by it). */
const CERT_REJECT = {
  no_final_newline: { code: 'no_final_newline' },
  crlf: { code: 'carriage_return' },
  lines_out_of_order: { code: 'bad_line', line: 3, expected: 'serial' },
  leading_zero_serial: { code: 'leading_zero', field: 'serial' },
  not_before_after_not_after: { code: 'validity_order' },
  signature_over_other_bytes: { signature: true },
};

test('certificate.must_reject: every case refused for its reason', async () => {
  const ca = await importPublicKeyPem(c.ca.public_pem);
  const goodSig = b64decode(c.cert_sig_b64_verify_with_ca_key);
  const cases = Object.entries(c.must_reject);
  assert.ok(cases.length >= 6);
  for (const [name, kase] of cases) {
    const want = CERT_REJECT[name];
    assert.ok(want, `certificate.must_reject.${name}: no expected reason in this test (${kase.why})`);
    const bytes = b64decode(kase.cert_b64);
    if ('cert_sig_b64' in kase) {
      assert.ok(want.signature, name);
      // Parses, but the given signature (null: the vector's certificate
      // signature) is not over these bytes.
      const sig = kase.cert_sig_b64 === null ? goodSig : b64decode(kase.cert_sig_b64);
      assert.equal(await verifyCertificateSignature(bytes, ca.publicKey, sig), false, `${name} verifies`);
      const cert = await parseCertificate(bytes);
      await assert.rejects(verifyCertificate(cert, ca, sig), (e) => e instanceof CertError && e.code === 'bad_signature', name);
      continue;
    }
    await assert.rejects(parseCertificate(bytes), (e) => {
      assert.ok(e instanceof CertError, `${name}: ${e}`);
      for (const [k, val] of Object.entries(want)) assert.equal(e[k], val, `${name}.${k} (${kase.why})`);
      return true;
    });
  }
});
