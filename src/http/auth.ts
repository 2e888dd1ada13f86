import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../config.ts';
import { HttpError } from './errors.ts';

const digest = (v: string) => createHash('sha256').update(v, 'utf8').digest();

/**
 * Bearer-token check. Tokens are compared as SHA-256 digests with timingSafeEqual, so the
 * comparison takes the same time whatever the length or content of the presented token, and
 * every configured token is compared (no early exit that would tell which one matched).
 */
export function createTokenCheck(tokens: readonly string[]): (header: string | undefined) => void {
  if (tokens.length === 0)
    throw new ConfigError(
      'REBILL_ADMIN_TOKENS',
      'no admin API token configured: set REBILL_ADMIN_TOKENS or REBILL_ADMIN_TOKENS_FILE',
    );
  const known = tokens.map(digest);
  return (header) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!m) throw new HttpError(401, 'unauthorized', 'missing bearer token (Authorization: Bearer <token>)');
    const presented = digest(m[1]!);
    let ok = false;
    for (const k of known) ok = timingSafeEqual(k, presented) || ok;
    if (!ok) throw new HttpError(403, 'forbidden', 'the bearer token is not valid');
  };
}
