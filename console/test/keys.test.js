// Key files made on the fly by `openssl` and by the real `remo keygen`,
// imported by keys.js: every form remo documents, the refusals with their
// reasons (and the conversion command that fixes them, run for real), and a
// deterministic fuzz loop over truncated and bit-flipped DER that must only
// ever produce a KeyFileError.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { DerError, KeyFileError } from '../src/errors.js';
import { b64encode, base64StdEncode, fromHex, utf8 } from '../src/b64.js';
import {
  DerReader,
  derBitString,
  derContext,
  derInteger,
  derNull,
  derOctetString,
  derOid,
  derSequence,
} from '../src/der.js';
import {
  CONVERT_COMMAND,
  KEY_LIMITS,
  importPrivateKeyPem,
  importPublicKeyPem,
  importPublicKeyRaw,
  isEncryptedPem,
  parsePem,
  pkcs8FromScalar,
  publicKeyPem,
} from '../src/keys.js';
import { signP1363, verifyP1363 } from '../src/handshake.js';
import { binary, prng, run, scratch } from '../test-support/helpers.js';

const CODES = new Set([
  'malformed',
  'unsupported_key',
  'unsupported_encryption',
  'unsupported_kdf',
  'unsupported_cipher',
  'passphrase_needed',
  'wrong_passphrase',
  'is_private_key',
  'is_public_key',
]);

function openssl(dir, ...args) {
  return run('openssl', args, { cwd: dir });
}

/** `SHA256:` ‖ b64 of the SPKI DER as OpenSSL writes it: an independent fingerprint. */
function opensslFingerprint(dir, pubFile) {
  const derFile = join(dir, `${pubFile}.der`);
  openssl(dir, 'pkey', '-pubin', '-in', pubFile, '-outform', 'DER', '-out', derFile);
  return `SHA256:${createHash('sha256').update(readFileSync(derFile)).digest('base64url')}`;
}

/** A P1363 signature as the DER `ECDSA-Sig-Value` openssl verifies. */
function p1363ToDer(sig) {
  return derSequence(derInteger(sig.subarray(0, 32)), derInteger(sig.subarray(32)));
}

/** Rejects with a KeyFileError of `code`; returns the error. */
async function refused(promise, code, what) {
  let caught;
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof KeyFileError, `${what}: not a KeyFileError: ${e?.stack ?? e}`);
    assert.equal(e.code, code, `${what}: ${e.message}`);
    caught = e;
    return true;
  });
  return caught;
}

function pem(label, der) {
  const lines = base64StdEncode(der).match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.map((l) => `${l}\n`).join('')}-----END ${label}-----\n`;
}

test('openssl: PKCS#8, SEC1 and SPKI of one key import to the same key', async (t) => {
  const { dir, cleanup } = scratch('keys');
  t.after(cleanup);
  openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sec1.pem');
  openssl(dir, 'pkcs8', '-topk8', '-nocrypt', '-in', 'sec1.pem', '-out', 'p8.pem');
  openssl(dir, 'pkey', '-in', 'p8.pem', '-pubout', '-out', 'pub.pem');
  const read = (f) => readFileSync(join(dir, f), 'utf8');
  assert.match(read('sec1.pem'), /^-----BEGIN EC PRIVATE KEY-----/);
  assert.match(read('p8.pem'), /^-----BEGIN PRIVATE KEY-----/);

  const fp = opensslFingerprint(dir, 'pub.pem');
  const pub = await importPublicKeyPem(read('pub.pem'));
  assert.equal(pub.fingerprint, fp);
  assert.equal(publicKeyPem(pub.publicRaw), read('pub.pem'));
  for (const f of ['sec1.pem', 'p8.pem']) {
    const k = await importPrivateKeyPem(read(f));
    assert.equal(k.fingerprint, fp, f);
    assert.equal(b64encode(k.publicRaw), b64encode(pub.publicRaw), f);
    assert.equal(k.privateKey.extractable, false, f);
    assert.equal(isEncryptedPem(read(f)), false);
  }
  // A signature made in JavaScript verifies with openssl, under the file's key.
  const k = await importPrivateKeyPem(read('sec1.pem'));
  const sig = await signP1363(k.privateKey, utf8('hello remo\n'));
  writeFileSync(join(dir, 'msg'), 'hello remo\n');
  writeFileSync(join(dir, 'sig.der'), p1363ToDer(sig));
  assert.match(openssl(dir, 'dgst', '-sha256', '-verify', 'pub.pem', '-signature', 'sig.der', 'msg'), /Verified OK/);
  // CRLF line ends and text around the block, as editors and mail leave them.
  const crlf = `some words\r\n${read('p8.pem').replace(/\n/g, '\r\n')}trailing\r\n`;
  assert.equal((await importPrivateKeyPem(crlf)).fingerprint, fp);
});

test('openssl: PBES2 with PBKDF2 (SHA-1/256/384/512) and AES-128/192/256-CBC', async (t) => {
  const { dir, cleanup } = scratch('pbes2');
  t.after(cleanup);
  openssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'p8.pem');
  const plain = await importPrivateKeyPem(readFileSync(join(dir, 'p8.pem'), 'utf8'));
  const variants = [
    ['aes-256-cbc', 'hmacWithSHA256'],
    ['aes-128-cbc', 'hmacWithSHA1'],
    ['aes-192-cbc', 'hmacWithSHA512'],
    ['aes-256-cbc', 'hmacWithSHA384'],
  ];
  for (const [cipher, prf] of variants) {
    const out = `enc-${cipher}-${prf}.pem`;
    openssl(dir, 'pkcs8', '-topk8', '-in', 'p8.pem', '-v2', cipher, '-v2prf', prf, '-iter', '5000', '-passout', 'pass:pässwörd ok', '-out', out);
    const text = readFileSync(join(dir, out), 'utf8');
    assert.equal(isEncryptedPem(text), true);
    const k = await importPrivateKeyPem(text, { passphrase: 'pässwörd ok' });
    assert.equal(k.fingerprint, plain.fingerprint, out);
    assert.equal(k.privateKey.extractable, false);
    await refused(importPrivateKeyPem(text, { passphrase: 'pässwörd ko' }), 'wrong_passphrase', out);
    await refused(importPrivateKeyPem(text), 'passphrase_needed', out);
  }
});

test('openssl: scrypt, 3DES, PBES1 and legacy PEM encryption are refused with the command that converts them', async (t) => {
  const { dir, cleanup } = scratch('unsupported');
  t.after(cleanup);
  openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sec1.pem');
  const plain = await importPrivateKeyPem(readFileSync(join(dir, 'sec1.pem'), 'utf8'));
  const cases = [
    ['scrypt.pem', ['pkcs8', '-topk8', '-scrypt', '-in', 'sec1.pem'], 'unsupported_kdf', /scrypt/],
    ['des3.pem', ['pkcs8', '-topk8', '-v2', 'des3', '-in', 'sec1.pem'], 'unsupported_cipher', /cipher/],
    ['pbes1.pem', ['pkcs8', '-topk8', '-v1', 'PBE-SHA1-3DES', '-in', 'sec1.pem'], 'unsupported_encryption', /PBES1/],
    ['legacy.pem', ['ec', '-aes256', '-in', 'sec1.pem'], 'unsupported_encryption', /legacy/],
  ];
  for (const [file, args, code, what] of cases) {
    openssl(dir, ...args, '-passout', 'pass:pw', '-out', file);
    const text = readFileSync(join(dir, file), 'utf8');
    assert.equal(isEncryptedPem(text), true, file);
    // Said before a passphrase is asked for, and with one.
    for (const options of [{}, { passphrase: 'pw' }]) {
      const e = await refused(importPrivateKeyPem(text, options), code, file);
      assert.match(e.message, what, file);
      assert.ok(e.message.includes(CONVERT_COMMAND), `${file}: the message gives the command: ${e.message}`);
    }
    // The command given converts the file into one that imports.
    const argv = CONVERT_COMMAND.split(' ').slice(1).map((a) => (a === 'old.pem' ? file : a === 'new.pem' ? `new-${file}` : a));
    openssl(dir, ...argv, '-passin', 'pass:pw', '-passout', 'pass:pw2');
    const converted = await importPrivateKeyPem(readFileSync(join(dir, `new-${file}`), 'utf8'), { passphrase: 'pw2' });
    assert.equal(converted.fingerprint, plain.fingerprint, `${file} converted`);
  }
});

test('openssl: key files without the public point import and derive it', async (t) => {
  const { dir, cleanup } = scratch('nopub');
  t.after(cleanup);
  openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sec1.pem');
  openssl(dir, 'ec', '-in', 'sec1.pem', '-no_public', '-out', 'nopub-sec1.pem');
  openssl(dir, 'pkcs8', '-topk8', '-nocrypt', '-in', 'nopub-sec1.pem', '-out', 'nopub-p8.pem');
  openssl(dir, 'pkcs8', '-topk8', '-in', 'nopub-sec1.pem', '-v2', 'aes-256-cbc', '-iter', '10', '-passout', 'pass:pw', '-out', 'nopub-enc.pem');
  const want = (await importPrivateKeyPem(readFileSync(join(dir, 'sec1.pem'), 'utf8'))).fingerprint;
  for (const f of ['nopub-sec1.pem', 'nopub-p8.pem', 'nopub-enc.pem']) {
    const text = readFileSync(join(dir, f), 'utf8');
    assert.doesNotMatch(openssl(dir, 'asn1parse', '-in', f.replace('-enc', '-p8')), /BIT STRING/, f);
    const k = await importPrivateKeyPem(text, { passphrase: 'pw' });
    assert.equal(k.fingerprint, want, f);
    assert.equal(k.privateKey.extractable, false, f);
  }
});

test('openssl: other curves and algorithms are named in the refusal', async (t) => {
  const { dir, cleanup } = scratch('algs');
  t.after(cleanup);
  const cases = [
    ['ed25519.pem', ['genpkey', '-algorithm', 'ed25519'], /Ed25519/],
    ['x25519.pem', ['genpkey', '-algorithm', 'x25519'], /X25519/],
    ['p384.pem', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'], /P-384/],
    ['k256.pem', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1'], /secp256k1/],
    ['rsa.pem', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'], /RSA/],
  ];
  for (const [file, args, name] of cases) {
    openssl(dir, ...args, '-out', file);
    const e = await refused(importPrivateKeyPem(readFileSync(join(dir, file), 'utf8')), 'unsupported_key', file);
    assert.match(e.message, name, file);
    assert.match(e.message, /P-256/, file);
    openssl(dir, 'pkey', '-in', file, '-pubout', '-out', `${file}.pub`);
    const p = await refused(importPublicKeyPem(readFileSync(join(dir, `${file}.pub`), 'utf8')), 'unsupported_key', `${file}.pub`);
    assert.match(p.message, name);
  }
  openssl(dir, 'rsa', '-in', 'rsa.pem', '-traditional', '-out', 'rsa-trad.pem');
  await refused(importPrivateKeyPem(readFileSync(join(dir, 'rsa-trad.pem'), 'utf8')), 'unsupported_key', 'RSA PRIVATE KEY');
  openssl(dir, 'ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', 'p384-sec1.pem');
  const e = await refused(importPrivateKeyPem(readFileSync(join(dir, 'p384-sec1.pem'), 'utf8')), 'unsupported_key', 'SEC1 P-384');
  assert.match(e.message, /P-384/);
});

test('public and private keys are not confused; compressed and off-curve points are refused', async (t) => {
  const { dir, cleanup } = scratch('confuse');
  t.after(cleanup);
  openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sec1.pem');
  openssl(dir, 'ec', '-in', 'sec1.pem', '-pubout', '-out', 'pub.pem');
  openssl(dir, 'ec', '-in', 'sec1.pem', '-pubout', '-conv_form', 'compressed', '-out', 'pubc.pem');
  const read = (f) => readFileSync(join(dir, f), 'utf8');
  await refused(importPrivateKeyPem(read('pub.pem')), 'is_public_key', 'public as private');
  await refused(importPublicKeyPem(read('sec1.pem')), 'is_private_key', 'private as public');
  const c = await refused(importPublicKeyPem(read('pubc.pem')), 'unsupported_key', 'compressed');
  assert.match(c.message, /conv_form uncompressed/);
  const raw = (await importPublicKeyPem(read('pub.pem'))).publicRaw;
  const off = raw.slice();
  off[64] ^= 1;
  await refused(importPublicKeyRaw(off), 'malformed', 'off-curve point');
  await refused(importPublicKeyRaw(raw.subarray(0, 64)), 'malformed', 'short point');
  await refused(importPrivateKeyPem('hello'), 'malformed', 'not PEM');
  await refused(importPrivateKeyPem(read('sec1.pem').replace('END EC', 'END XX')), 'malformed', 'mismatched END');
  await refused(importPrivateKeyPem('x'.repeat(KEY_LIMITS.maxKeyFile + 1)), 'malformed', 'too large');
  await refused(
    importPrivateKeyPem('-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n'),
    'unsupported_key',
    'OpenSSH',
  );
});

test('a private key whose embedded public point is another key, or whose scalar is out of range, is refused', async () => {
  const sec1 = await importPrivateKeyPem(
    '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIF8MEs5qs36j+6SjplMYuVhEPerdMVub0T95TYYf4SuqoAoGCCqGSM49\nAwEHoUQDQgAEcwUyMEcLdHsk23MBXQHR54aGt6O+8jl0rKilKUVdqjGXzbKO40ft\na6pYmSSx1SEtkLgMBqk6GZk557P70LCW7Q==\n-----END EC PRIVATE KEY-----\n',
  );
  const d = fromHex('5f0c12ce6ab37ea3fba4a3a65318b958443deadd315b9bd13f794d861fe12baa');
  // The right pair imports…
  assert.equal((await importPrivateKeyPem(pem('PRIVATE KEY', pkcs8FromScalar(d, sec1.publicRaw)))).fingerprint, sec1.fingerprint);
  // …another public point with it does not.
  const other = (await importPublicKeyPem(
    '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEejoYuHNbHGvATJFLfplmwj2Uxjo4\nuqFUW9EBedfxkLdZLgXNj6XHSLHEszC/6D8GVYSMleqU6Y6GI2be08TXtQ==\n-----END PUBLIC KEY-----\n',
  )).publicRaw;
  // Refused by WebCrypto's own pair check where it has one (node), else by
  // the sign-and-verify check of keys.js.
  const e = await refused(importPrivateKeyPem(pem('PRIVATE KEY', pkcs8FromScalar(d, other))), 'malformed', 'mismatched pair');
  assert.match(e.message, /does not match|could not be imported/);
  const n = fromHex('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
  for (const bad of [new Uint8Array(32), n]) {
    const e = await refused(importPrivateKeyPem(pem('PRIVATE KEY', pkcs8FromScalar(bad, null))), 'malformed', 'scalar out of range');
    assert.match(e.message, /scalar out of range/);
  }
  // A 31-byte scalar is not P-256's.
  await refused(importPrivateKeyPem(pem('PRIVATE KEY', pkcs8FromScalar(d.subarray(1), null))), 'unsupported_key', '31-byte scalar');
});

/** An EncryptedPrivateKeyInfo with PBES2 parameters built by hand. */
function pbes2({ kdf, cipher = '2.16.840.1.101.3.4.1.42', iv = new Uint8Array(16), data = new Uint8Array(48) }) {
  return pem(
    'ENCRYPTED PRIVATE KEY',
    derSequence(
      derSequence(derOid('1.2.840.113549.1.5.13'), derSequence(kdf, derSequence(derOid(cipher), derOctetString(iv)))),
      derOctetString(data),
    ),
  );
}

function pbkdf2({ salt = new Uint8Array(8), iterations = 1000, keyLength, prf = '1.2.840.113549.2.9', saltOther = false }) {
  const parts = [saltOther ? derSequence(derOid('1.2.3.4')) : derOctetString(salt), derInteger(iterations)];
  if (keyLength !== undefined) parts.push(derInteger(keyLength));
  if (prf !== null) parts.push(derSequence(derOid(prf), derNull()));
  return derSequence(derOid('1.2.840.113549.1.5.12'), derSequence(...parts));
}

test('hand-built PBES2 parameters: limits and unsupported choices are refused before any decryption', async () => {
  const cases = [
    [pbes2({ kdf: pbkdf2({ iterations: KEY_LIMITS.maxPbkdf2Iterations + 1 }) }), 'unsupported_kdf', /above the limit/],
    [pbes2({ kdf: pbkdf2({ prf: '1.2.840.113549.2.8' }) }), 'unsupported_kdf', /PRF/],
    [pbes2({ kdf: pbkdf2({ saltOther: true }) }), 'unsupported_kdf', /salt/],
    [pbes2({ kdf: derSequence(derOid('1.2.3.4.5')) }), 'unsupported_kdf', /KDF/],
    [pbes2({ kdf: pbkdf2({}), cipher: '2.16.840.1.101.3.4.1.46' }), 'unsupported_cipher', /cipher/],
    [pbes2({ kdf: pbkdf2({ keyLength: 16 }) }), 'malformed', /key length/],
    [pbes2({ kdf: pbkdf2({}), iv: new Uint8Array(8) }), 'malformed', /IV/],
    [pbes2({ kdf: pbkdf2({}), data: new Uint8Array(47) }), 'malformed', /blocks/],
    [pbes2({ kdf: pbkdf2({ iterations: 0 }) }), 'malformed', /iteration/],
  ];
  for (const [text, code, message] of cases) {
    for (const options of [{}, { passphrase: 'x' }]) {
      const e = await refused(importPrivateKeyPem(text, options), code, String(message));
      assert.match(e.message, message);
    }
  }
  // Within the limits, with the default PRF (SHA-1, no prf field): a wrong
  // passphrase (the data is zeros) is reported as such.
  await refused(importPrivateKeyPem(pbes2({ kdf: pbkdf2({ prf: null, keyLength: 32 }) }), { passphrase: 'x' }), 'wrong_passphrase', 'zeros');
});

test('remo keygen: plain and encrypted key files import, with the fingerprint it prints', async (t) => {
  const remo = binary('remo');
  const { dir, cleanup } = scratch('keygen');
  t.after(cleanup);
  const env = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'config') };
  const plainOut = run(remo, ['keygen', '--no-passphrase', '-o', join(dir, 'plain')], { env });
  const encOut = run(remo, ['keygen', '-o', join(dir, 'enc')], { env: { ...env, REMO_PASSPHRASE: 'remo console test' } });
  const printed = (out) => /fingerprint: (SHA256:\S+)/.exec(out)?.[1];
  for (const [name, out, passphrase] of [
    ['plain', plainOut, undefined],
    ['enc', encOut, 'remo console test'],
  ]) {
    const text = readFileSync(join(dir, name), 'utf8');
    const pubText = readFileSync(join(dir, `${name}.pub`), 'utf8');
    assert.equal(isEncryptedPem(text), passphrase !== undefined, name);
    const k = await importPrivateKeyPem(text, { passphrase });
    assert.equal(k.fingerprint, printed(out), `${name}: fingerprint printed by remo keygen`);
    assert.equal(k.privateKey.extractable, false);
    const p = await importPublicKeyPem(pubText);
    assert.equal(p.fingerprint, k.fingerprint, name);
    assert.equal(publicKeyPem(k.publicRaw), pubText, `${name}: the .pub we would write is remo's`);
    assert.equal(opensslFingerprint(dir, `${name}.pub`), k.fingerprint);
    const sig = await signP1363(k.privateKey, utf8('m'));
    assert.equal(await verifyP1363(p.publicKey, utf8('m'), sig), true);
    if (passphrase) {
      // remo writes PBKDF2-HMAC-SHA256 with AES-256-CBC.
      const der = parsePem(text)[0].der;
      assert.ok(toHexIncludes(der, derOid('1.2.840.113549.2.9')), 'hmacWithSHA256');
      assert.ok(toHexIncludes(der, derOid('2.16.840.1.101.3.4.1.42')), 'aes-256-cbc');
      await refused(importPrivateKeyPem(text, { passphrase: 'remo console tesT' }), 'wrong_passphrase', name);
      await refused(importPrivateKeyPem(text), 'passphrase_needed', name);
    }
  }
});

function toHexIncludes(hay, needle) {
  return Buffer.from(hay).includes(Buffer.from(needle));
}

/** Every DER a fuzz case starts from: its PEM label and the options to import it with. */
function fuzzSeeds(dir) {
  openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sec1.pem');
  openssl(dir, 'pkcs8', '-topk8', '-nocrypt', '-in', 'sec1.pem', '-out', 'p8.pem');
  openssl(dir, 'pkcs8', '-topk8', '-in', 'sec1.pem', '-v2', 'aes-128-cbc', '-iter', '1', '-passout', 'pass:pw', '-out', 'enc.pem');
  openssl(dir, 'ec', '-in', 'sec1.pem', '-pubout', '-out', 'pub.pem');
  const der = (f) => parsePem(readFileSync(join(dir, f), 'utf8'))[0].der;
  return [
    ['EC PRIVATE KEY', der('sec1.pem'), 'private'],
    ['PRIVATE KEY', der('p8.pem'), 'private'],
    ['ENCRYPTED PRIVATE KEY', der('enc.pem'), 'private'],
    ['PUBLIC KEY', der('pub.pem'), 'public'],
  ];
}

/** Imports and accepts only success or a KeyFileError with a known code. */
async function importTotal(label, der, kind, what) {
  const text = pem(label, der);
  try {
    if (kind === 'public') await importPublicKeyPem(text);
    else await importPrivateKeyPem(text, { passphrase: 'pw' });
    return 'ok';
  } catch (e) {
    if (!(e instanceof KeyFileError) || !CODES.has(e.code)) {
      assert.fail(`${what}: threw something other than a KeyFileError: ${e?.stack ?? e}`);
    }
    return e.code;
  }
}

test('fuzz: truncated, bit-flipped and random DER only ever gives a KeyFileError', async (t) => {
  const { dir, cleanup } = scratch('fuzz');
  t.after(cleanup);
  const next = prng(0x5eed2024);
  const seen = new Map();
  const count = (code) => seen.set(code, (seen.get(code) ?? 0) + 1);
  for (const [label, der, kind] of fuzzSeeds(dir)) {
    assert.equal(await importTotal(label, der, kind, label), 'ok', `${label}: the seed itself imports`);
    for (let n = 0; n < der.length; n++) count(await importTotal(label, der.subarray(0, n), kind, `${label} cut at ${n}`));
    for (let k = 0; k < 300; k++) {
      const m = der.slice();
      const flips = 1 + (next() % 3);
      for (let f = 0; f < flips; f++) m[next() % m.length] ^= 1 << (next() % 8);
      count(await importTotal(label, m, kind, `${label} flip #${k}`));
    }
    for (let k = 0; k < 100; k++) {
      const m = new Uint8Array(next() % 160);
      for (let i = 0; i < m.length; i++) m[i] = next() & 255;
      // Half of them start like the seed, so they get past the first tag.
      if (k % 2 === 0) m.set(der.subarray(0, Math.min(4, m.length)));
      count(await importTotal(label, m, kind, `${label} random #${k}`));
    }
  }
  // The loop reached the decoders' refusals, not just the PEM layer.
  assert.ok((seen.get('malformed') ?? 0) > 100, JSON.stringify([...seen]));
  assert.ok((seen.get('wrong_passphrase') ?? 0) > 0, JSON.stringify([...seen]));

  // The reader itself, on every prefix of a seed and on random bytes, with
  // every accessor: only DerError.
  const der = fuzzSeeds(dir)[2][1];
  const inputs = [];
  for (let n = 0; n <= der.length; n++) inputs.push(der.subarray(0, n));
  for (let k = 0; k < 500; k++) inputs.push(Uint8Array.from({ length: next() % 40 }, () => next() & 255));
  for (const input of inputs) {
    for (const walk of [
      (r) => r.sequence().sequence().oid(),
      (r) => r.integer(),
      (r) => r.smallInteger(1000),
      (r) => r.oid(),
      (r) => r.bitString(),
      (r) => r.octetString(),
      (r) => r.nullValue(),
      (r) => r.context(0)?.end(),
      (r) => {
        const s = r.sequence();
        while (!s.atEnd) s.read(s.peekTag());
      },
    ]) {
      try {
        walk(new DerReader(input));
      } catch (e) {
        if (!(e instanceof DerError) || e.code !== 'malformed' || !Number.isInteger(e.offset)) {
          assert.fail(`DerReader threw ${e?.stack ?? e}`);
        }
      }
    }
  }
});

test('DER reader: strict DER', () => {
  const bad = [
    ['30 80 00 00', /indefinite/],
    ['30 81 05 0500050000', /non-minimal length/],
    ['02 02 00 7f', /non-minimal INTEGER/],
    ['02 01 80', /negative/],
    ['06 02 80 01', /non-minimal OID/],
    ['06 01 81', /truncated OID/],
    ['03 02 01 00', /unused bits/],
    ['1f 01 00', /multi-byte tag/],
    ['30 03 0500', /past the end/],
    ['30 85 0000000001 00', /length too large/],
  ];
  for (const [hex, why] of bad) {
    const bytes = fromHex(hex.replace(/ /g, ''));
    assert.throws(
      () => {
        const r = new DerReader(bytes);
        const t = r.peekTag();
        if (t === 0x02) r.integer();
        else if (t === 0x06) r.oid();
        else if (t === 0x03) r.bitString();
        else r.sequence();
      },
      (e) => e instanceof DerError && why.test(e.message),
      hex,
    );
  }
  // Round trips through the writer.
  const oids = ['1.2.840.10045.3.1.7', '2.16.840.1.101.3.4.1.42', '1.3.6.1.4.1.11591.4.11', '2.999.1'];
  for (const o of oids) assert.equal(new DerReader(derOid(o)).oid(), o);
  for (const n of [0, 1, 127, 128, 255, 256, 65535, 2 ** 40]) assert.equal(new DerReader(derInteger(n)).smallInteger(2 ** 48), n);
  const long = new Uint8Array(300).fill(7);
  assert.deepEqual(new DerReader(derOctetString(long)).octetString(), long);
  assert.deepEqual(new DerReader(derBitString(long)).bitString(), long);
  assert.equal(new DerReader(derContext(1, derNull())).context(1).peekTag(), 0x05);
  assert.throws(() => new DerReader(derInteger(70000)).smallInteger(65535), DerError);
});
