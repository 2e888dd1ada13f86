import type { Logger } from 'pino';
import { ContractError, GatewayError, type GatewayErrorClasses } from '../errors.ts';
import { LiquidoAuthError } from './errors.ts';
import type { Transport } from './transport.ts';

/**
 * OAuth2 client-credentials token for Liquido: cached, refreshed a little before it expires,
 * and fetched at most once at a time (concurrent callers share one refresh), so a burst of
 * charges costs one token request, not one each.
 */
export interface TokenSource {
  get(): Promise<string>;
  /** A call was answered 401 with `token`: drop it if it is still the cached one. */
  invalidate(token: string): void;
}

/** No token could be fetched, so the call that needed it was never sent. */
export class TokenUnavailableError extends GatewayError {
  static override readonly type: string = 'TokenUnavailableError';
  readonly requestSent = false;
}

/**
 * The token endpoint's error answers: 400, 401 and 403 are our client credentials, any other
 * 4xx the request, anything else (5xx, an unexpected success) no token to be had now.
 */
const TOKEN_ERRORS: GatewayErrorClasses = {
  credentials: LiquidoAuthError,
  credentialStatuses: [400, 401, 403],
  other: TokenUnavailableError,
};

interface Cached {
  token: string;
  /** Epoch ms after which the token is not used any more (expiry minus a margin). */
  useUntil: number;
}

const DEFAULT_REFRESH_EARLY_MS = 60_000;

export function createTokenSource(opts: {
  transport: Transport;
  clientId: string;
  clientSecret: string;
  now: () => Date;
  logger: Logger;
  refreshEarlyMs?: number;
}): TokenSource {
  const refreshEarlyMs = opts.refreshEarlyMs ?? DEFAULT_REFRESH_EARLY_MS;
  let cached: Cached | undefined;
  let inflight: Promise<Cached> | undefined;

  async function fetchToken(): Promise<Cached> {
    const body = new URLSearchParams({
      client_id: opts.clientId,
      client_secret: opts.clientSecret,
      grant_type: 'client_credentials',
    }).toString();
    let res: Awaited<ReturnType<Transport['request']>>;
    try {
      res = await opts.transport.request({
        method: 'POST',
        path: '/oauth2/token',
        retry: 'idempotent',
        kind: 'token',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
      });
    } catch (err) {
      throw new TokenUnavailableError(`Liquido token request failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const details = { correlationId: res.correlationId, latencyMs: res.latencyMs };
    opts.logger.debug({ gateway: 'liquido', op: 'token', httpStatus: res.status, latencyMs: res.latencyMs });
    if (res.status !== 200) {
      // Never echo the body or the request: either could carry the client secret.
      throw GatewayError.generate(
        { ...details, status: res.status },
        (kind) =>
          kind === 'credentials'
            ? `Liquido rejected the client credentials (HTTP ${res.status})`
            : `Liquido token endpoint answered HTTP ${res.status}`,
        TOKEN_ERRORS,
      );
    }
    const json = res.json as { access_token?: unknown; expires_in?: unknown } | undefined;
    const token = json?.access_token;
    const expiresIn = Number(json?.expires_in);
    if (typeof token !== 'string' || token === '' || !Number.isFinite(expiresIn) || expiresIn <= 0) {
      throw new ContractError('Liquido token response lacks access_token or expires_in', {
        ...details,
        httpStatus: res.status,
      });
    }
    const lifetimeMs = expiresIn * 1000;
    // A short-lived token is refreshed halfway through rather than never being "fresh".
    const margin = Math.min(refreshEarlyMs, lifetimeMs / 2);
    return { token, useUntil: opts.now().getTime() + lifetimeMs - margin };
  }

  return {
    async get() {
      if (cached !== undefined && opts.now().getTime() < cached.useUntil) return cached.token;
      if (inflight === undefined) {
        inflight = fetchToken()
          .then((fresh) => {
            cached = fresh;
            return fresh;
          })
          .finally(() => {
            inflight = undefined;
          });
      }
      return (await inflight).token;
    },
    invalidate(token) {
      if (cached?.token === token) cached = undefined;
    },
  };
}
