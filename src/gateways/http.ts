import type { Logger } from 'pino';
import { Pool } from 'undici';
import { ClientClosedError, ConnectionError, ContractError, GatewayError, TimeoutError } from './errors.ts';

/**
 * Shared HTTP plumbing for gateway clients: one keep-alive undici Pool per origin, a limiter
 * (max in-flight + requests per second), bounded body reads, a per-attempt timeout and retry
 * with exponential backoff and full jitter. Retry is decided per request by its policy,
 * because only the caller knows whether a resend could charge a card twice.
 */

/**
 * - `idempotent`: reads. Retried on 429, 503 and on failures that never reached the server.
 * - `notProcessed`: writes. Retried only when the server provably did nothing: 429 (throttled
 *   before processing) and failures that never reached it (refused, connect timeout). Never
 *   after a timeout, reset or 5xx: the write may have happened.
 */
export type RetryPolicy = 'idempotent' | 'notProcessed';

export interface HttpClientOptions {
  /** Max requests in flight across all origins (also the pool's connection count). */
  maxInFlight?: number | undefined;
  /** 0 = unlimited. */
  requestsPerSecond?: number | undefined;
  connectTimeoutMs?: number | undefined;
  /** Whole attempt: headers and body must arrive within it. */
  requestTimeoutMs?: number | undefined;
  /** Resends after the first attempt, for requests whose policy allows it. */
  maxRetries?: number | undefined;
  retryBaseMs?: number | undefined;
  retryMaxMs?: number | undefined;
  /** A Retry-After longer than this is not waited for: the response is returned as is. */
  maxRetryAfterMs?: number | undefined;
  maxBodyBytes?: number | undefined;
  logger?: Logger | undefined;
  /** Injected for tests of the backoff. */
  random?: (() => number) | undefined;
}

export interface HttpRequest {
  /** Absolute URL; the path part is sent exactly as written (no re-encoding, no normalising). */
  url: string;
  method: 'GET' | 'POST';
  headers?: Record<string, string> | undefined;
  body?: string | undefined;
  retry: RetryPolicy;
  /** Short label for logs (`authorize.recurring`, `settle`): never the href or the body. */
  kind: string;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** From the first attempt to the end of the last body. */
  latencyMs: number;
  attempts: number;
}

export interface HttpClient {
  /** Resolves with any HTTP status; rejects with ConnectionError, TimeoutError or ContractError. */
  request(req: HttpRequest): Promise<HttpResponse>;
  stats(): { requests: number; retries: number; inFlight: number };
  close(): Promise<void>;
}

/** Splits an href into origin and the path exactly as written (`/a/b+c=:d?x=1`). */
export function splitHref(href: string): { origin: string; path: string } {
  const m = /^(https?:\/\/[^/?#]+)([^#]*)/i.exec(href);
  if (!m) throw new GatewayError(`not an absolute http(s) URL: ${describeHref(href)}`);
  const origin = m[1]!.toLowerCase();
  const rest = m[2] ?? '';
  return { origin, path: rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest };
}

/** Origin + first path segment, for error messages: link data stays out of logs. */
function describeHref(href: string): string {
  const m = /^(https?:\/\/[^/?#]+)?(\/[^/?#]*)?/i.exec(href);
  return m ? `${m[1] ?? ''}${m[2] ?? ''}/...` : '(unparseable)';
}

/** Retry-After as milliseconds (delta-seconds or HTTP date); undefined when absent/invalid. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(raw)) return Number(raw.trim()) * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Full jitter: uniform in [0, min(max, base * 2^attempt)). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

const neverSentCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown }; errors?: { code?: unknown }[] };
  for (const c of [e?.code, e?.cause?.code, e?.errors?.[0]?.code]) if (typeof c === 'string') return c;
  return undefined;
}

/** Maps undici / socket failures onto the gateway error hierarchy. */
function transportError(err: unknown, timedOut: boolean, latencyMs: number): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = errorCode(err);
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new TimeoutError('connect timeout', { phase: 'connect', latencyMs, cause: err });
  }
  if (code !== undefined && neverSentCodes.has(code)) {
    return new ConnectionError(`connection failed (${code})`, {
      reachedServer: false,
      code,
      latencyMs,
      cause: err,
    });
  }
  if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new TimeoutError('no complete response in time', { phase: 'response', latencyMs, cause: err });
  }
  return new ConnectionError(`connection lost (${code ?? 'unknown'})`, {
    reachedServer: true,
    code,
    latencyMs,
    cause: err,
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createHttpClient(opts: HttpClientOptions = {}): HttpClient {
  const maxInFlight = Math.max(1, opts.maxInFlight ?? 32);
  const rps = opts.requestsPerSecond ?? 0;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
  const maxRetries = opts.maxRetries ?? 3;
  const retryBaseMs = opts.retryBaseMs ?? 100;
  const retryMaxMs = opts.retryMaxMs ?? 5_000;
  const maxRetryAfterMs = opts.maxRetryAfterMs ?? 30_000;
  const maxBodyBytes = opts.maxBodyBytes ?? 1024 * 1024;
  const random = opts.random ?? Math.random;
  const logger = opts.logger;

  const pools = new Map<string, Pool>();
  let closed = false;
  let requests = 0;
  let retries = 0;

  // In-flight semaphore: a FIFO of waiters, so throughput stays fair under load.
  let inFlight = 0;
  const waiters: (() => void)[] = [];
  async function acquire(): Promise<void> {
    if (inFlight < maxInFlight) {
      inFlight++;
      return;
    }
    await new Promise<void>((resolve) => waiters.push(resolve));
  }
  function release(): void {
    const next = waiters.shift();
    if (next) next();
    else inFlight--;
  }

  // Requests-per-second: evenly spaced start slots; each caller books the next free slot.
  let nextSlot = 0;
  async function pace(): Promise<void> {
    if (rps <= 0) return;
    const now = Date.now();
    const slot = Math.max(now, nextSlot);
    nextSlot = slot + 1000 / rps;
    if (slot > now) await sleep(slot - now);
  }

  function poolFor(origin: string): Pool {
    let pool = pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: maxInFlight,
        pipelining: 1,
        connect: { timeout: connectTimeoutMs },
        headersTimeout: requestTimeoutMs,
        bodyTimeout: requestTimeoutMs,
      });
      pools.set(origin, pool);
    }
    return pool;
  }

  // The whole-request deadline, for a response that trickles in (the Pool's header and body
  // timeouts restart with every chunk). One sweep every 100 ms aborts whatever is past its
  // deadline, instead of a timer per request (AbortSignal.timeout): the charge loop's hot path
  // makes two requests per charge.
  const deadlines = new Map<AbortController, number>();
  let sweeper: NodeJS.Timeout | undefined;
  function sweep(): void {
    const now = Date.now();
    for (const [controller, deadline] of deadlines)
      if (deadline <= now) {
        deadlines.delete(controller);
        controller.abort();
      }
    if (deadlines.size === 0 && sweeper) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }
  function withDeadline(): AbortController {
    const controller = new AbortController();
    deadlines.set(controller, Date.now() + requestTimeoutMs);
    if (!sweeper) {
      sweeper = setInterval(sweep, Math.min(100, requestTimeoutMs));
      sweeper.unref();
    }
    return controller;
  }

  async function attempt(
    req: HttpRequest,
    origin: string,
    path: string,
  ): Promise<Omit<HttpResponse, 'latencyMs' | 'attempts'>> {
    const controller = withDeadline();
    const started = Date.now();
    try {
      const res = await poolFor(origin).request({
        path,
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal: controller.signal,
      });
      const declared = Number(res.headers['content-length']);
      let body: string;
      if (Number.isFinite(declared) && res.headers['content-length'] !== undefined) {
        // A declared length is checked before anything is read, then the body read in one go.
        if (declared > maxBodyBytes) {
          // Not read at all: destroying it emits an abort error no reader is there to take.
          res.body.on('error', () => {});
          res.body.destroy();
          throw new ContractError(`response body over ${maxBodyBytes} bytes`, { httpStatus: res.statusCode });
        }
        body = await res.body.text();
      } else {
        // Chunked: counted as it comes, so an endless body stops at the bound.
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of res.body) {
          size += (chunk as Buffer).length;
          if (size > maxBodyBytes) {
            res.body.destroy();
            throw new ContractError(`response body over ${maxBodyBytes} bytes`, {
              httpStatus: res.statusCode,
            });
          }
          chunks.push(chunk as Buffer);
        }
        body = Buffer.concat(chunks).toString('utf8');
      }
      return {
        status: res.statusCode,
        headers: res.headers as Record<string, string | string[] | undefined>,
        body,
      };
    } catch (err) {
      throw transportError(err, controller.signal.aborted, Date.now() - started);
    } finally {
      deadlines.delete(controller);
    }
  }

  async function request(req: HttpRequest): Promise<HttpResponse> {
    if (closed) throw new ClientClosedError();
    const { origin, path } = splitHref(req.url);
    const started = Date.now();
    for (let n = 0; ; n++) {
      await acquire();
      let outcome: Omit<HttpResponse, 'latencyMs' | 'attempts'> | GatewayError;
      try {
        await pace();
        requests++;
        outcome = await attempt(req, origin, path);
      } catch (err) {
        outcome = err instanceof GatewayError ? err : transportError(err, false, Date.now() - started);
      } finally {
        release();
      }

      const latencyMs = Date.now() - started;
      let delay: number | undefined;
      if (outcome instanceof GatewayError) {
        outcome.latencyMs = latencyMs;
        const neverSent =
          (outcome instanceof ConnectionError || outcome instanceof TimeoutError) && !outcome.reachedServer;
        if (!neverSent || n >= maxRetries) throw outcome;
        delay = backoffDelay(n, retryBaseMs, retryMaxMs, random);
      } else {
        const retryable = outcome.status === 429 || (outcome.status === 503 && req.retry === 'idempotent');
        if (!retryable || n >= maxRetries) return { ...outcome, latencyMs, attempts: n + 1 };
        const retryAfter = parseRetryAfter(outcome.headers['retry-after']);
        if (retryAfter !== undefined && retryAfter > maxRetryAfterMs) {
          return { ...outcome, latencyMs, attempts: n + 1 };
        }
        delay = retryAfter ?? backoffDelay(n, retryBaseMs, retryMaxMs, random);
      }
      retries++;
      logger?.debug(
        {
          kind: req.kind,
          method: req.method,
          attempt: n + 1,
          delayMs: delay,
          reason: outcome instanceof GatewayError ? outcome.name : outcome.status,
        },
        'gateway request retry',
      );
      await sleep(delay);
      // The try before was not processed (that is why it is retried): nothing went out.
      if (closed) throw new ClientClosedError('http client closed while retrying');
    }
  }

  return {
    request,
    stats: () => ({ requests, retries, inFlight }),
    async close() {
      closed = true;
      if (sweeper) clearInterval(sweeper);
      sweeper = undefined;
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((p) => p.close()));
    },
  };
}
