/**
 * §7 user certificates: strict parser, canonical text, CA signature,
 * validity window, host patterns, and remo's certificate file.
 *
 * Exported API:
 *
 * - `MAX_CERT_LEN` (8192), `NOT_BEFORE_GRACE_SECS` (300)
 * - `parseCertificate(bytes|string) → Promise<Certificate>`
 * - `certificateText(cert) → string`
 * - `parseCertFile(bytes|string) → Promise<{cert, sig}>`
 * - `verifyCertificate(cert, ca: PublicIdentity, sig) → Promise<void>`
 * - `checkValidity(cert, now) → void`
 * - `hostMatches(pattern, host) → boolean`, `certMatchesHost(cert, host) → boolean`
 */
export async function parseCertificate() { throw new Error('not implemented yet'); }
