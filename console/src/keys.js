/**
 * PEM key files (PROTOCOL.md §1) imported into WebCrypto, interchangeable
 * with `openssl` and `remo keygen`.
 *
 * Private keys: PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` (what `openssl
 * ecparam -genkey` writes), and `ENCRYPTED PRIVATE KEY` with PBES2 =
 * PBKDF2 (HMAC-SHA1/256/384/512) + AES-128/192/256-CBC (what `openssl
 * pkcs8 -topk8 -v2 …` and `remo keygen` with a passphrase write: PBKDF2-
 * HMAC-SHA256, 200,000 iterations, AES-256-CBC), decrypted with WebCrypto.
 * scrypt, PBES1, legacy `Proc-Type` encryption and other ciphers are
 * refused with a `KeyFileError` whose message gives the `openssl` command
 * that converts the file. Public keys: SPKI `PUBLIC KEY`.
 *
 * Every private key is re-encoded into one canonical PKCS#8 (version 0,
 * ecPublicKey/P-256, an `ECPrivateKey` with the scalar and the public
 * point) and imported NON-extractable. The public point comes from the
 * file (OpenSSL and `remo keygen` always write it) and is checked against
 * the private key by signing and verifying a fixed message. If a file has
 * no public point, the key is imported once as extractable, inside
 * `importPrivateKeyPem` only, to read the point from its JWK, and then
 * imported again non-extractable; the extractable object is dropped at once
 * (WebCrypto has no other way to derive the public point; some browsers
 * cannot import a PKCS#8 EC key without its public point at all, and then
 * the import fails with `'malformed'`).
 *
 * Exported API:
 *
 * - `KEY_LIMITS` — `{maxKeyFile: 65536, maxPbkdf2Iterations: 10_000_000}`:
 *   a larger file is not a key file; a larger iteration count is refused
 *   (`'unsupported_kdf'`) so a hostile file cannot make the tab spin.
 * - `CONVERT_COMMAND` — the `openssl` command given in the messages.
 * - `parsePem(text: string): {label: string, der: Uint8Array,
 *   encryptedHeaders: boolean}[]` — the PEM blocks; tolerant of line width,
 *   CRLF and text around the blocks, strict about the frame and the base64.
 * - `isEncryptedPem(text): boolean` — whether a passphrase will be needed
 *   (ask for it before calling `importPrivateKeyPem`).
 * - `importPrivateKeyPem(text, {passphrase?: string} = {}):
 *   Promise<PrivateIdentity>` where `PrivateIdentity = {privateKey:
 *   CryptoKey (ECDSA P-256, usages ['sign'], extractable false), publicKey:
 *   CryptoKey (ECDSA P-256, ['verify']), publicRaw: Uint8Array (65-byte
 *   SEC1 point), spki: Uint8Array, fingerprint: string ('SHA256:…')}`.
 * - `importPublicKeyPem(text): Promise<PublicIdentity>` where
 *   `PublicIdentity = {publicKey, publicRaw, spki, fingerprint}`.
 * - `importPublicKeyRaw(raw: Uint8Array): Promise<PublicIdentity>` — a
 *   65-byte uncompressed point (as `/info`'s `key` and certificates carry
 *   it); not on P-256 → `KeyFileError('malformed')`.
 * - `spkiFromRaw(raw): Uint8Array` — the SPKI DER of a point.
 * - `pkcs8FromScalar(d: Uint8Array(32), pub: Uint8Array(65)|null):
 *   Uint8Array` — the canonical PKCS#8 DER every private key is imported
 *   from (holds the scalar: wipe it after use).
 * - `fingerprintOfSpki(spki): Promise<string>` — `"SHA256:" ‖ b64(SHA-256(spki))`.
 * - `publicKeyPem(raw): string` — SPKI `PUBLIC KEY` PEM (what `remo keygen`
 *   writes to `KEY.pub`, what `remod user add --key` reads).
 *
 * All failures are `KeyFileError` (codes in errors.js); messages never
 * contain key material or the passphrase.
 */

import {
  DerReader,
  TAG,
  derBitString,
  derContext,
  derInteger,
  derOctetString,
  derOid,
  derSequence,
} from './der.js';
import { KeyFileError } from './errors.js';
import { b64decode, b64encode, base64StdDecode, base64StdEncode, concatBytes, utf8 } from './b64.js';

export const KEY_LIMITS = Object.freeze({ maxKeyFile: 65536, maxPbkdf2Iterations: 10_000_000 });

/** What every "unsupported encryption" message tells the user to run. */
export const CONVERT_COMMAND =
  'openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -in old.pem -out new.pem';

const NEED_P256 = 'remo needs an ECDSA P-256 key';

const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  p256: '1.2.840.10045.3.1.7',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  scrypt: '1.3.6.1.4.1.11591.4.11',
};

/** Names of the key algorithms and curves we recognise, for messages. */
const KEY_NAMES = {
  '1.3.132.0.34': 'EC key on P-384',
  '1.3.132.0.35': 'EC key on P-521',
  '1.3.132.0.10': 'EC key on secp256k1',
  '1.3.36.3.3.2.8.1.1.7': 'EC key on brainpoolP256r1',
  '1.2.156.10197.1.301': 'EC key on SM2',
  '1.3.101.112': 'Ed25519 key',
  '1.3.101.113': 'Ed448 key',
  '1.3.101.110': 'X25519 key',
  '1.3.101.111': 'X448 key',
  '1.2.840.113549.1.1.1': 'RSA key',
  '1.2.840.113549.1.1.10': 'RSA key',
  '1.2.840.10040.4.1': 'DSA key',
};

/** PBKDF2 PRFs WebCrypto has, by OID. */
const PRFS = {
  '1.2.840.113549.2.7': { hash: 'SHA-1', name: 'hmacWithSHA1' },
  '1.2.840.113549.2.9': { hash: 'SHA-256', name: 'hmacWithSHA256' },
  '1.2.840.113549.2.10': { hash: 'SHA-384', name: 'hmacWithSHA384' },
  '1.2.840.113549.2.11': { hash: 'SHA-512', name: 'hmacWithSHA512' },
};
const PRF_SHA1 = '1.2.840.113549.2.7';

/** AES-CBC by OID: key length in bytes. */
const CIPHERS = {
  '2.16.840.1.101.3.4.1.2': { bytes: 16, name: 'AES-128-CBC' },
  '2.16.840.1.101.3.4.1.22': { bytes: 24, name: 'AES-192-CBC' },
  '2.16.840.1.101.3.4.1.42': { bytes: 32, name: 'AES-256-CBC' },
};

/** The P-256 group order n, to check a private scalar is in [1, n). */
const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

const ECDSA = { name: 'ECDSA', namedCurve: 'P-256' };

function err(code, message) {
  return new KeyFileError(code, message);
}

function malformed(what) {
  return err('malformed', `malformed key file: ${what}`);
}

/** Shows a label from a file in a message: printable ASCII only, bounded. */
function showLabel(label) {
  return label.replace(/[^\x20-\x7e]/g, '').slice(0, 40);
}

/**
 * Splits PEM text into blocks.
 * @param {string} text
 * @returns {{label: string, der: Uint8Array, encryptedHeaders: boolean}[]}
 */
export function parsePem(text) {
  if (typeof text !== 'string') throw malformed('not text');
  if (text.length > KEY_LIMITS.maxKeyFile) {
    throw malformed(`larger than ${KEY_LIMITS.maxKeyFile} bytes, not a key file`);
  }
  const blocks = [];
  let cur = null;
  for (const raw of text.split(/\r?\n|\r/)) {
    const line = raw.trim();
    if (cur === null) {
      const m = /^-----BEGIN (.*)-----$/.exec(line);
      if (m) cur = { label: m[1], headers: false, b64: [] };
      continue;
    }
    const end = /^-----END (.*)-----$/.exec(line);
    if (end) {
      if (end[1] !== cur.label) {
        throw malformed(`PEM block BEGIN ${showLabel(cur.label)} ends with END ${showLabel(end[1])}`);
      }
      let der;
      try {
        der = base64StdDecode(cur.b64.join(''));
      } catch {
        throw malformed(`bad base64 in PEM block ${showLabel(cur.label)}`);
      }
      blocks.push({ label: cur.label, der, encryptedHeaders: cur.headers });
      cur = null;
      continue;
    }
    if (line.startsWith('-----')) throw malformed(`PEM block ${showLabel(cur.label)} has no END line`);
    if (line.includes(':')) {
      if (line.startsWith('Proc-Type:') && line.includes('ENCRYPTED')) cur.headers = true;
    } else {
      cur.b64.push(line);
    }
  }
  if (cur !== null) throw malformed(`PEM block ${showLabel(cur.label)} has no END line`);
  if (blocks.length === 0) {
    throw malformed('no PEM block found (want -----BEGIN PRIVATE KEY----- or similar)');
  }
  return blocks;
}

/**
 * Whether PEM text holds an encrypted private key.
 * @param {string} text
 * @returns {boolean}
 */
export function isEncryptedPem(text) {
  try {
    return parsePem(text).some((b) => b.label === 'ENCRYPTED PRIVATE KEY' || b.encryptedHeaders);
  } catch {
    return false;
  }
}

const PRIVATE_LABELS = new Set([
  'PRIVATE KEY',
  'ENCRYPTED PRIVATE KEY',
  'EC PRIVATE KEY',
  'RSA PRIVATE KEY',
  'DSA PRIVATE KEY',
  'OPENSSH PRIVATE KEY',
]);

/** The private key block, skipping `EC PARAMETERS`; refuses known non-keys. */
function privateBlock(blocks) {
  let other = null;
  for (const b of blocks) {
    if (b.label === 'PRIVATE KEY' || b.label === 'ENCRYPTED PRIVATE KEY' || b.label === 'EC PRIVATE KEY') {
      return b;
    }
    if (b.label !== 'EC PARAMETERS' && other === null) other = b;
  }
  if (other === null) throw malformed('no private key in the PEM text');
  switch (other.label) {
    case 'PUBLIC KEY':
      throw err('is_public_key', 'this is a public key; give the private key file');
    case 'RSA PRIVATE KEY':
      throw err('unsupported_key', `RSA key; ${NEED_P256}`);
    case 'DSA PRIVATE KEY':
      throw err('unsupported_key', `DSA key; ${NEED_P256}`);
    case 'OPENSSH PRIVATE KEY':
      throw err('unsupported_key', `OpenSSH key format; ${NEED_P256} in PKCS#8 PEM (make one with: remo keygen)`);
    default:
      throw malformed(
        `PEM block ${showLabel(other.label)} is not a private key (want PRIVATE KEY, ENCRYPTED PRIVATE KEY or EC PRIVATE KEY)`,
      );
  }
}

/** Checks an AlgorithmIdentifier (PKCS#8 or SPKI) is ecPublicKey on P-256. */
function checkKeyAlgorithm(alg) {
  const oid = alg.oid();
  if (oid === OID.ecPublicKey) {
    if (alg.peekTag() !== TAG.OID) throw err('unsupported_key', `EC key without a named curve; ${NEED_P256}`);
    const curve = alg.oid();
    alg.end();
    if (curve === OID.p256) return;
    throw err('unsupported_key', `${KEY_NAMES[curve] ?? `EC key on curve ${curve}`}; ${NEED_P256}`);
  }
  throw err('unsupported_key', `${KEY_NAMES[oid] ?? `key of algorithm ${oid}`}; ${NEED_P256}`);
}

/** A 65-byte uncompressed point, or null if `bytes` is another form. */
function uncompressed(bytes) {
  return bytes.length === 65 && bytes[0] === 0x04 ? bytes : null;
}

/**
 * A SEC1 `ECPrivateKey`: the 32-byte scalar and the public point if the
 * structure carries one in uncompressed form.
 */
function parseEcPrivateKey(der) {
  const outer = new DerReader(der);
  const r = outer.sequence();
  outer.end();
  if (r.smallInteger(255) !== 1) throw malformed('ECPrivateKey version is not 1');
  const d = r.octetString();
  const params = r.context(0);
  if (params) {
    if (params.peekTag() !== TAG.OID) throw err('unsupported_key', `EC key without a named curve; ${NEED_P256}`);
    const curve = params.oid();
    params.end();
    if (curve !== OID.p256) {
      throw err('unsupported_key', `${KEY_NAMES[curve] ?? `EC key on curve ${curve}`}; ${NEED_P256}`);
    }
  }
  const pubTag = r.context(1);
  let pub = null;
  if (pubTag) {
    pub = uncompressed(pubTag.bitString());
    pubTag.end();
  }
  r.end();
  if (d.length !== 32) {
    throw err('unsupported_key', `EC private key of ${d.length} bytes (not P-256); ${NEED_P256}`);
  }
  let v = 0n;
  for (const x of d) v = (v << 8n) | BigInt(x);
  if (v === 0n || v >= P256_ORDER) throw malformed('private scalar out of range');
  // Copies: the caller wipes the decrypted buffer these would point into.
  return { d: d.slice(), pub: pub && pub.slice() };
}

/** A plain PKCS#8 `PrivateKeyInfo` (v1 or v2) holding a P-256 key. */
function parsePkcs8(der) {
  const outer = new DerReader(der);
  const r = outer.sequence();
  outer.end();
  const version = r.smallInteger(255);
  if (version !== 0 && version !== 1) throw malformed(`PKCS#8 version ${version}`);
  const alg = r.sequence();
  checkKeyAlgorithm(alg);
  const inner = r.octetString();
  // OneAsymmetricKey's optional attributes [0] and public key [1].
  if (r.peekTag() === 0xa0) r.read(0xa0);
  if (r.peekTag() === 0x81) r.read(0x81);
  r.end();
  return parseEcPrivateKey(inner);
}

/**
 * The canonical PKCS#8 DER for a P-256 scalar and, if known, its public
 * point (the caller should wipe it after use: it holds the scalar).
 * @param {Uint8Array} d 32-byte private scalar
 * @param {Uint8Array|null} pub 65-byte SEC1 point or null
 * @returns {Uint8Array}
 */
export function pkcs8FromScalar(d, pub) {
  const ec = [derInteger(1), derOctetString(d)];
  if (pub) ec.push(derContext(1, derBitString(pub)));
  return derSequence(
    derInteger(0),
    derSequence(derOid(OID.ecPublicKey), derOid(OID.p256)),
    derOctetString(derSequence(...ec)),
  );
}

/** The PBES2 parameters of an `EncryptedPrivateKeyInfo`, checked. */
function parseEncrypted(der) {
  const outer = new DerReader(der);
  const r = outer.sequence();
  outer.end();
  const alg = r.sequence();
  const data = r.octetString();
  r.end();
  const scheme = alg.oid();
  if (scheme !== OID.pbes2) {
    if (scheme.startsWith('1.2.840.113549.1.5.') || scheme.startsWith('1.2.840.113549.1.12.1.')) {
      throw err(
        'unsupported_encryption',
        `PBES1/PKCS#12 key-file encryption (obsolete); re-encrypt with: ${CONVERT_COMMAND}`,
      );
    }
    throw err('unsupported_encryption', `key-file encryption ${scheme} is not PBES2; re-encrypt with: ${CONVERT_COMMAND}`);
  }
  const params = alg.sequence();
  alg.end();
  const kdf = params.sequence();
  const enc = params.sequence();
  params.end();

  const kdfOid = kdf.oid();
  if (kdfOid === OID.scrypt) {
    throw err(
      'unsupported_kdf',
      `this key file is encrypted with scrypt, which browsers cannot run (WebCrypto has PBKDF2 only); re-encrypt it with PBKDF2: ${CONVERT_COMMAND}`,
    );
  }
  if (kdfOid !== OID.pbkdf2) {
    throw err('unsupported_kdf', `key-file KDF ${kdfOid} is not supported (want PBKDF2); re-encrypt with: ${CONVERT_COMMAND}`);
  }
  const kp = kdf.sequence();
  kdf.end();
  if (kp.peekTag() !== TAG.OCTET_STRING) {
    throw err('unsupported_kdf', `PBKDF2 salt from another source is not supported; re-encrypt with: ${CONVERT_COMMAND}`);
  }
  const salt = kp.octetString();
  const iterations = kp.smallInteger(Number.MAX_SAFE_INTEGER);
  if (iterations < 1) throw malformed('PBKDF2 iteration count 0');
  if (iterations > KEY_LIMITS.maxPbkdf2Iterations) {
    throw err(
      'unsupported_kdf',
      `PBKDF2 iteration count ${iterations} is above the limit of ${KEY_LIMITS.maxPbkdf2Iterations}; re-encrypt with: ${CONVERT_COMMAND}`,
    );
  }
  let keyLength = null;
  if (kp.peekTag() === TAG.INTEGER) keyLength = kp.smallInteger(1024);
  let prfOid = PRF_SHA1;
  if (!kp.atEnd) {
    const prf = kp.sequence();
    prfOid = prf.oid();
    if (!prf.atEnd) prf.nullValue();
    prf.end();
  }
  kp.end();
  const prf = PRFS[prfOid];
  if (!prf) {
    throw err('unsupported_kdf', `PBKDF2 PRF ${prfOid} is not supported (want hmacWithSHA256 or hmacWithSHA1); re-encrypt with: ${CONVERT_COMMAND}`);
  }

  const cipherOid = enc.oid();
  const cipher = CIPHERS[cipherOid];
  if (!cipher) {
    throw err('unsupported_cipher', `key-file cipher ${cipherOid} is not supported (want AES-CBC); re-encrypt with: ${CONVERT_COMMAND}`);
  }
  const iv = enc.octetString();
  enc.end();
  if (iv.length !== 16) throw malformed(`${cipher.name} IV of ${iv.length} bytes`);
  if (keyLength !== null && keyLength !== cipher.bytes) {
    throw malformed(`PBKDF2 key length ${keyLength} does not fit ${cipher.name}`);
  }
  if (data.length === 0 || data.length % 16 !== 0) throw malformed('encrypted data is not whole AES blocks');
  return { salt, iterations, prf, cipher, iv, data };
}

/** Decrypts PBES2 data into the inner PKCS#8 DER. */
async function decryptPbes2(p, passphrase) {
  const subtle = globalThis.crypto.subtle;
  const pass = await subtle.importKey('raw', utf8(passphrase), 'PBKDF2', false, ['deriveBits']);
  const bits = new Uint8Array(
    await subtle.deriveBits(
      { name: 'PBKDF2', hash: p.prf.hash, salt: p.salt, iterations: p.iterations },
      pass,
      p.cipher.bytes * 8,
    ),
  );
  let key;
  try {
    key = await subtle.importKey('raw', bits, { name: 'AES-CBC' }, false, ['decrypt']);
  } catch {
    throw err(
      'unsupported_cipher',
      `${p.cipher.name} is not available in this browser; re-encrypt with: ${CONVERT_COMMAND}`,
    );
  } finally {
    bits.fill(0);
  }
  try {
    return new Uint8Array(await subtle.decrypt({ name: 'AES-CBC', iv: p.iv }, key, p.data));
  } catch {
    // Bad padding: what a wrong passphrase gives.
    throw err('wrong_passphrase', 'wrong passphrase (the key file could not be decrypted)');
  }
}

/** Reads the x, y of a JWK into a SEC1 point. */
function pointFromJwk(jwk) {
  const x = b64decode(jwk.x);
  const y = b64decode(jwk.y);
  if (x.length !== 32 || y.length !== 32) throw malformed('derived public key has a bad size');
  return concatBytes([new Uint8Array([4]), x, y]);
}

/** A fixed message signed and verified to check a key pair belongs together. */
const PAIR_CHECK = utf8('remo console: key pair check');

/** Imports a scalar and its point as a non-extractable identity. */
async function importParts(d, pub) {
  const subtle = globalThis.crypto.subtle;
  if (!pub) {
    // No public point in the file: import once extractable, only to read
    // the point from the JWK, then import again non-extractable below.
    let tmp;
    const der = pkcs8FromScalar(d, null);
    try {
      tmp = await subtle.importKey('pkcs8', der, ECDSA, true, ['sign']);
    } catch {
      throw malformed('the private key could not be imported');
    } finally {
      der.fill(0);
    }
    pub = pointFromJwk(await subtle.exportKey('jwk', tmp));
    tmp = null;
  }
  let privateKey;
  const der = pkcs8FromScalar(d, pub);
  try {
    privateKey = await subtle.importKey('pkcs8', der, ECDSA, false, ['sign']);
  } catch {
    throw malformed('the private key could not be imported');
  } finally {
    der.fill(0);
  }
  const pubId = await importPublicKeyRaw(pub);
  const sig = await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, PAIR_CHECK);
  if (!(await subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, pubId.publicKey, sig, PAIR_CHECK))) {
    throw malformed('embedded public key does not match the private key');
  }
  return { privateKey, ...pubId };
}

/**
 * Imports a private key file.
 * @param {string} text the PEM text
 * @param {{passphrase?: string}} [options] the passphrase, used only if the file is encrypted
 * @returns {Promise<{privateKey: CryptoKey, publicKey: CryptoKey, publicRaw: Uint8Array, spki: Uint8Array, fingerprint: string}>}
 * @throws {KeyFileError}
 */
export async function importPrivateKeyPem(text, { passphrase } = {}) {
  const block = privateBlock(parsePem(text));
  if (block.encryptedHeaders) {
    throw err(
      'unsupported_encryption',
      `legacy OpenSSL PEM encryption (Proc-Type/DEK-Info headers); convert with: ${CONVERT_COMMAND}`,
    );
  }
  let parts;
  if (block.label === 'PRIVATE KEY') {
    parts = parsePkcs8(block.der);
  } else if (block.label === 'EC PRIVATE KEY') {
    parts = parseEcPrivateKey(block.der);
  } else {
    // Structure and scheme first, so a broken or unsupported file is said
    // before anyone is asked for a passphrase.
    const p = parseEncrypted(block.der);
    if (passphrase === undefined || passphrase === null) {
      throw err('passphrase_needed', 'the key file is encrypted: give its passphrase');
    }
    if (typeof passphrase !== 'string') throw new TypeError('passphrase must be a string');
    const inner = await decryptPbes2(p, passphrase);
    try {
      parts = parsePkcs8(inner);
    } catch (e) {
      // One wrong passphrase in 256 gives valid padding and garbage.
      if (e instanceof KeyFileError && e.code === 'malformed') {
        throw err('wrong_passphrase', 'wrong passphrase (the key file could not be decrypted)');
      }
      throw e;
    } finally {
      inner.fill(0);
    }
  }
  try {
    return await importParts(parts.d, parts.pub);
  } finally {
    parts.d.fill(0);
  }
}

/**
 * Imports an SPKI `PUBLIC KEY` file. A private key is refused
 * (`'is_private_key'`): registering a user never needs it.
 * @param {string} text
 * @returns {Promise<{publicKey: CryptoKey, publicRaw: Uint8Array, spki: Uint8Array, fingerprint: string}>}
 * @throws {KeyFileError}
 */
export async function importPublicKeyPem(text) {
  const blocks = parsePem(text);
  const block = blocks.find((b) => b.label === 'PUBLIC KEY');
  if (!block) {
    if (blocks.some((b) => PRIVATE_LABELS.has(b.label))) {
      throw err(
        'is_private_key',
        'this is a private key; give the .pub file (or derive it: openssl pkey -in KEY -pubout)',
      );
    }
    throw malformed(`no PUBLIC KEY block (found ${blocks.map((b) => showLabel(b.label)).join(', ')})`);
  }
  const outer = new DerReader(block.der);
  const r = outer.sequence();
  outer.end();
  checkKeyAlgorithm(r.sequence());
  const point = r.bitString();
  r.end();
  if (!uncompressed(point)) {
    throw err(
      'unsupported_key',
      'compressed public key point; convert with: openssl ec -pubin -in KEY.pub -conv_form uncompressed -out NEW.pub',
    );
  }
  return importPublicKeyRaw(point);
}

/**
 * Imports a 65-byte uncompressed SEC1 point as an ECDSA verify key.
 * @param {Uint8Array} raw
 * @returns {Promise<{publicKey: CryptoKey, publicRaw: Uint8Array, spki: Uint8Array, fingerprint: string}>}
 * @throws {KeyFileError}
 */
export async function importPublicKeyRaw(raw) {
  if (!(raw instanceof Uint8Array) || !uncompressed(raw)) {
    throw malformed('public key is not a 65-byte uncompressed P-256 point');
  }
  let publicKey;
  try {
    publicKey = await globalThis.crypto.subtle.importKey('raw', raw, ECDSA, true, ['verify']);
  } catch {
    throw malformed('public key is not a point on P-256');
  }
  const publicRaw = raw.slice();
  const spki = spkiFromRaw(publicRaw);
  return { publicKey, publicRaw, spki, fingerprint: await fingerprintOfSpki(spki) };
}

/**
 * The SPKI DER of a P-256 point.
 * @param {Uint8Array} raw
 * @returns {Uint8Array}
 */
export function spkiFromRaw(raw) {
  return derSequence(derSequence(derOid(OID.ecPublicKey), derOid(OID.p256)), derBitString(raw));
}

/**
 * `"SHA256:" ‖ b64(SHA-256(spki))`.
 * @param {Uint8Array} spki
 * @returns {Promise<string>}
 */
export async function fingerprintOfSpki(spki) {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', spki));
  return `SHA256:${b64encode(digest)}`;
}

/**
 * SPKI `PUBLIC KEY` PEM of a point, 64-character lines, as OpenSSL writes it.
 * @param {Uint8Array} raw
 * @returns {string}
 */
export function publicKeyPem(raw) {
  const b64 = base64StdEncode(spkiFromRaw(raw));
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN PUBLIC KEY-----\n${lines.join('\n')}\n-----END PUBLIC KEY-----\n`;
}

