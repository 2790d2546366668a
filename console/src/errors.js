/**
 * Typed errors of the console's protocol layer.
 *
 * Every error this layer throws on purpose is a {@link RemoError} with a
 * stable string `code`, so the UI can branch on `err.code` and show
 * `err.message` (which never contains key material or passphrases).
 * Errors of the platform (a `TypeError` from `fetch` when the network is
 * down, an `AbortError` `DOMException` when a caller's `signal` aborts) are
 * passed through unchanged.
 *
 * Exported API:
 *
 * - `class RemoError extends Error` — `code: string`; base of all below.
 * - `class B64Error extends RemoError` — code `'b64'`: not canonical
 *   unpadded base64url (§1).
 * - `class KeyFileError extends RemoError` — a PEM key file could not be
 *   used. Codes: `'malformed'`, `'unsupported_key'` (not P-256 / other
 *   algorithm), `'unsupported_encryption'` (PBES1, legacy `Proc-Type`
 *   PEM encryption), `'unsupported_kdf'` (scrypt, an unknown PRF, an
 *   iteration count above the limit), `'unsupported_cipher'` (not
 *   AES-CBC, or AES-192 where the browser lacks it), `'passphrase_needed'`,
 *   `'wrong_passphrase'`, `'is_private_key'`, `'is_public_key'`. For the
 *   unsupported ones the message gives the `openssl` command that converts
 *   the file.
 * - `class DerError extends KeyFileError` — code `'malformed'`, plus
 *   `offset` (byte position in the DER where reading failed).
 * - `class RecordError extends RemoError` — a sealed record or message was
 *   refused (§4, §4.1). Codes (the Rust `RecordError` variants):
 *   `'line_too_long'`, `'partial_line'`, `'malformed'`, `'too_large'`,
 *   `'auth'`, `'wrong_request'`, `'out_of_order'`, `'after_last'`,
 *   `'truncated'`, `'empty'`, `'length_too_small'` / `'length_too_large'`
 *   (with `length`), `'partial_record'`, `'too_many_records'`.
 * - `class CertError extends RemoError` — a §7 certificate was refused.
 *   Codes: `'too_long'`, `'not_utf8'`, `'carriage_return'`,
 *   `'no_final_newline'`, `'bad_line'` / `'missing_line'` (with `line`,
 *   `expected`), `'bad_fingerprint'`, `'not_decimal'` / `'leading_zero'` /
 *   `'time_out_of_range'` (with `field`), `'serial_out_of_range'`,
 *   `'validity_order'`, `'bad_user'`, `'bad_key'`, `'empty_hosts'`,
 *   `'empty_pattern'`, `'empty_grant'` (with `line`), `'not_yet_valid'`,
 *   `'expired'`, `'ca_mismatch'`, `'bad_signature'`, `'no_signature'` (a
 *   certificate file without its `sig` line).
 * - `class SessionError extends RemoError` — login or a request failed
 *   outside the operation. Codes: `'auth_failed'` (401 from `/auth`),
 *   `'server_key_changed'` (with `pinned` and `offered` fingerprints),
 *   `'bad_server_signature'` (M2 does not verify under the server key),
 *   `'protocol'` (the server broke remo/1: bad JSON, a record that does not
 *   open, a truncated response…; `cause` holds the underlying error),
 *   `'http'` (an unexpected HTTP status: `status`, and `serverMessage`
 *   from the server's `{"error": …}` body if any; 401 on a request means
 *   the session is gone), `'closed'` (the session was logged out).
 * - `class OpError extends RemoError` — the operation ran and failed: `code`
 *   is the result's error code (`'bad_request'`, `'forbidden'`,
 *   `'not_found'`, `'exists'`, `'conflict'`, `'too_large'`, `'timeout'`,
 *   `'unavailable'`, `'internal'`, or whatever a newer server sends),
 *   `message` its text, `result` the whole final JSON object.
 */

/** Base class: an error with a stable `code`. */
export class RemoError extends Error {
  /**
   * @param {string} code stable machine-readable reason
   * @param {string} message human-readable text
   * @param {object} [extra] more fields to set on the error (`cause` too)
   */
  constructor(code, message, extra = undefined) {
    super(message, extra && 'cause' in extra ? { cause: extra.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    if (extra) {
      for (const [k, v] of Object.entries(extra)) {
        if (k !== 'cause') this[k] = v;
      }
    }
  }
}

/** Not canonical unpadded base64url. */
export class B64Error extends RemoError {
  /** @param {string} [message] */
  constructor(message = 'invalid base64url (no padding, URL-safe alphabet only)') {
    super('b64', message);
  }
}

/** A key file that cannot be used; see the module comment for the codes. */
export class KeyFileError extends RemoError {}

/** Malformed DER: a {@link KeyFileError} with code `'malformed'` and the byte `offset`. */
export class DerError extends KeyFileError {
  /**
   * @param {string} what what was wrong
   * @param {number} offset byte position in the DER
   */
  constructor(what, offset) {
    super('malformed', `malformed key file: ${what} (DER offset ${offset})`, { offset });
  }
}

/** A sealed record or message that was refused. */
export class RecordError extends RemoError {}

/** A certificate that was refused. */
export class CertError extends RemoError {}

/** Login or request failure outside the operation itself. */
export class SessionError extends RemoError {}

/** The operation's own failure, from the final record's `error`. */
export class OpError extends RemoError {
  /**
   * @param {string} code the result's `error.code`
   * @param {string} message the result's `error.message`
   * @param {object} result the whole final JSON result
   */
  constructor(code, message, result) {
    super(code, message, { result });
  }
}
