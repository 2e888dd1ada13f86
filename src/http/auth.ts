import { createHash, timingSafeEqual } from 'node:crypto';
import ipaddr from 'ipaddr.js';
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

/** All clients together may fail this many times the per-client limit in one window. */
export const GLOBAL_FAILURE_FACTOR = 10;

/**
 * The key a client's failures count under: its IPv4 address (an IPv4-mapped IPv6 one too), or
 * the /64 of its IPv6 address, the block one host or home is usually given, where every guess
 * could otherwise come from a fresh address.
 */
export function clientKey(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const ip = ipaddr.process(address);
  if (ip.kind() === 'ipv4') return ip.toString();
  return `${ipaddr.IPv6.networkAddressFromCIDR(`${ip.toString()}/64`).toString()}/64`;
}

/**
 * Failed guesses (a wrong token, at the API or the console's sign-in) per client (`clientKey`):
 * after `maxFailures` within a minute the client is answered 429 (with Retry-After) until that
 * minute has passed, correct token or not, so guessing tokens costs a minute per `maxFailures`
 * tries instead of thousands a second. All clients together are bounded too: after
 * GLOBAL_FAILURE_FACTOR × `maxFailures` failures in a minute every token check waits for the
 * minute to pass (a signed-in console session is not a token check and goes on working), so
 * guesses spread over many addresses gain nothing either. Memory is bounded: at most 10,000
 * clients are tracked, expired entries go first.
 */
export function createAuthLockout(maxFailures: number, windowMs = 60_000) {
  const failures = new Map<string, { count: number; since: number }>();
  let all = { count: 0, since: 0 };
  const current = (client: string, now: number) => {
    const f = failures.get(client);
    if (f && now - f.since >= windowMs) {
      failures.delete(client);
      return undefined;
    }
    return f;
  };
  const waitFor = (f: { count: number; since: number } | undefined, max: number, now: number) =>
    f && f.count >= max && now - f.since < windowMs ? f.since + windowMs - now : 0;
  return {
    /** Milliseconds this client must wait, or 0. */
    blockedFor(address: string, now = Date.now()): number {
      if (maxFailures === 0) return 0;
      return waitFor(current(clientKey(address), now), maxFailures, now);
    },
    /** Milliseconds every token check must wait (the global bound), or 0. */
    allBlockedFor(now = Date.now()): number {
      if (maxFailures === 0) return 0;
      return waitFor(all, maxFailures * GLOBAL_FAILURE_FACTOR, now);
    },
    failed(address: string, now = Date.now()): void {
      if (maxFailures === 0) return;
      if (now - all.since >= windowMs) all = { count: 0, since: now };
      all.count++;
      const client = clientKey(address);
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
