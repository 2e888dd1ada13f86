import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../config.ts';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';

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
    if (!m) throw new UnauthorizedError('missing bearer token (Authorization: Bearer <token>)');
    const presented = digest(m[1]!);
    let ok = false;
    for (const k of known) ok = timingSafeEqual(k, presented) || ok;
    if (!ok) throw new ForbiddenError('the bearer token is not valid');
  };
}

/**
 * Failed authentications per client address: after `maxFailures` within a minute the client
 * is answered 429 (with Retry-After) until that minute has passed, correct token or not, so
 * guessing tokens costs a minute per `maxFailures` tries instead of thousands a second. Memory
 * is bounded: at most 10,000 addresses are tracked, expired entries go first.
 */
export function createAuthLockout(maxFailures: number, windowMs = 60_000) {
  const failures = new Map<string, { count: number; since: number }>();
  const current = (client: string, now: number) => {
    const f = failures.get(client);
    if (f && now - f.since >= windowMs) {
      failures.delete(client);
      return undefined;
    }
    return f;
  };
  return {
    /** Milliseconds this client must wait, or 0. */
    blockedFor(client: string, now = Date.now()): number {
      if (maxFailures === 0) return 0;
      const f = current(client, now);
      return f && f.count >= maxFailures ? f.since + windowMs - now : 0;
    },
    failed(client: string, now = Date.now()): void {
      if (maxFailures === 0) return;
      const f = current(client, now);
      if (f) f.count++;
      else {
        if (failures.size >= 10_000)
          for (const [k, v] of failures)
            if (now - v.since >= windowMs || failures.size >= 10_000) failures.delete(k);
        failures.set(client, { count: 1, since: now });
      }
    },
  };
}
