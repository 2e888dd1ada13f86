/**
 * Card data at rest: AES-256-GCM with node:crypto. A ciphertext names the key that made it
 * (`v1:<keyId>:<iv>:<tag>:<ct>`, base64), so after a rotation a reader can tell old from new
 * and `decryptSecret` picks the right key instead of trying each one.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { RebillError } from '../errors.ts';

/** Stored card data that does not decrypt (no such key, tampered, not ours): internal. */
export class DecryptError extends RebillError {
  static override readonly type: string = 'DecryptError';
}

/** A key that is not one (not 32 bytes): internal; configuration reports a bad key as a ConfigError. */
export class KeyError extends RebillError {
  static override readonly type: string = 'KeyError';
}

const VERSION = 'v1';

/** A short, stable name for a key: enough to tell keys apart, far too short to help guess one. */
export function keyId(key: Buffer): string {
  let id = keyIds.get(key);
  if (id === undefined) {
    id = createHash('sha256').update('rebill key id\0').update(key).digest('hex').slice(0, 8);
    keyIds.set(key, id);
  }
  return id;
}

// Per-key derivations, cached: an import calls these once a row.
const keyIds = new WeakMap<Buffer, string>();
const fingerprintKeys = new WeakMap<Buffer, Buffer>();

export function assertKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== 32) throw new KeyError('an encryption key must be 32 bytes');
}

/** Parse a key given as 64 hex characters or base64 of 32 bytes (the REBILL_ENCRYPTION_KEY forms). */
export function parseKey(text: string): Buffer {
  const trimmed = text.trim();
  const buf = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, 'hex')
    : Buffer.from(trimmed, 'base64');
  if (buf.length !== 32) throw new KeyError('the key must be 32 bytes, given as 64 hex characters or base64');
  return buf;
}

export function encryptSecret(plain: string, key: Buffer): string {
  assertKey(key);
  const id = keyId(key);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  // The header is authenticated too, so a blob cannot be relabelled with another key id.
  cipher.setAAD(Buffer.from(`${VERSION}:${id}`));
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return `${VERSION}:${id}:${iv.toString('base64')}:${tag.toString('base64')}:${ct.toString('base64')}`;
}

/** The key id a blob was encrypted under, or null when it is not a v1 blob. */
export function blobKeyId(blob: string): string | null {
  const parts = blob.split(':');
  return parts.length === 5 && parts[0] === VERSION ? parts[1]! : null;
}

export function decryptSecret(blob: string, keys: readonly Buffer[]): string {
  const parts = blob.split(':');
  if (parts.length !== 5 || parts[0] !== VERSION) throw new DecryptError('not a v1 ciphertext');
  const [, id, iv, tag, ct] = parts as [string, string, string, string, string];
  const key = keys.find((k) => keyId(k) === id);
  if (!key) throw new DecryptError(`no key with id ${id} is configured`);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
    decipher.setAAD(Buffer.from(`${VERSION}:${id}`));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new DecryptError('the ciphertext does not authenticate (tampered, or the wrong key)', {
      cause: err,
    });
  }
}

/**
 * Keyed hash of a PAN/DPAN: equal cards of one customer get equal fingerprints, and without the
 * key nobody can test guesses against it (a plain hash of a 16-digit number with a known BIN and
 * last four is brute-forced in seconds). The HMAC key is derived, not the encryption key itself.
 */
export function fingerprint(value: string, key: Buffer): string {
  assertKey(key);
  let sub = fingerprintKeys.get(key);
  if (sub === undefined) {
    sub = createHmac('sha256', key).update('rebill fingerprint v1').digest();
    fingerprintKeys.set(key, sub);
  }
  return createHmac('sha256', sub).update(value).digest('base64url');
}

/**
 * Identity of a v7 instrument within its customer: `<kind>:<hash>`, keyed (HMAC) for numbers so
 * a key rotation re-fingerprints them (src/legacy/rotate-key.ts keeps the kind). Apart from the
 * v6 kinds, so a card charged through v6 and the same card through v7 are two credentials.
 * The API (src/billing/mandates/credentials.ts) and the legacy import (src/legacy/import.ts)
 * both fingerprint v7 instruments with this function.
 */
export function v7Fingerprint(
  kind: 'token' | 'card' | 'networkToken',
  value: string,
  key: Buffer | undefined,
): string {
  if (kind === 'token') return `v7token:${createHash('sha256').update(value).digest('hex')}`;
  if (!key) throw new RebillError('a card number needs an encryption key');
  return `${kind === 'card' ? 'v7pan' : 'v7ntok'}:${fingerprint(value, key)}`;
}
