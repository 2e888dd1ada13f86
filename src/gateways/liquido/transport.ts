import { Pool } from 'undici';
import { ConnectionError, ContractError, TimeoutError } from '../errors.ts';

/**
 * A deliberately small HTTP layer for the Liquido client: one keep-alive pool for the one
 * origin (its connection count is the in-flight limit), a deadline per request, bounded
 * response reads, and undici failures mapped onto the shared gateway errors. No retries
 * here: whether a failed call may be resent is the caller's decision.
 */

export interface TransportRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string | undefined;
}

export interface TransportResponse {
  status: number;
  /** Parsed JSON, or undefined when the body was empty or not JSON. */
  json: unknown;
  /** Raw text, kept short, for error messages on non-JSON answers. */
  text: string;
  correlationId: string | undefined;
  latencyMs: number;
}

export interface Transport {
  /** Resolves with any HTTP status; rejects with ConnectionError, TimeoutError or ContractError. */
  request(req: TransportRequest): Promise<TransportResponse>;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;

export function createTransport(opts: {
  url: string;
  maxInFlight: number;
  requestTimeoutMs: number;
  connectTimeoutMs?: number;
}): Transport {
  const base = new URL(opts.url);
  // Keep any path prefix of the configured URL (e.g. a proxy mount) in front of API paths.
  const prefix = base.pathname.replace(/\/+$/, '');
  const pool = new Pool(base.origin, {
    connections: opts.maxInFlight,
    connect: { timeout: opts.connectTimeoutMs ?? Math.min(opts.requestTimeoutMs, 10_000) },
    headersTimeout: opts.requestTimeoutMs,
    bodyTimeout: opts.requestTimeoutMs,
  });

  async function request(req: TransportRequest): Promise<TransportResponse> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    try {
      const res = await pool.request({
        method: req.method,
        path: prefix + req.path,
        headers: req.headers,
        body: req.body,
        // One deadline for the whole exchange, body included.
        signal: AbortSignal.timeout(opts.requestTimeoutMs),
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > MAX_BODY_BYTES) {
          res.body.destroy();
          throw new ContractError(`response body larger than ${MAX_BODY_BYTES} bytes`, {
            httpStatus: res.statusCode,
            latencyMs: elapsed(),
          });
        }
        chunks.push(chunk as Buffer);
      }
      const text = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      if (text.length > 0) {
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
      }
      const rid = res.headers['x-request-id'];
      return {
        status: res.statusCode,
        json,
        text: text.slice(0, 300),
        correlationId: Array.isArray(rid) ? rid[0] : rid,
        latencyMs: elapsed(),
      };
    } catch (err) {
      throw mapFailure(err, req, elapsed());
    }
  }

  return {
    request,
    async close() {
      await pool.close();
    },
  };
}

function mapFailure(err: unknown, req: TransportRequest, latencyMs: number): Error {
  if (err instanceof ContractError) return err;
  const e = err as { code?: string; name?: string; message?: string };
  const what = `${req.method} ${req.path}`;
  const code = e.code;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new TimeoutError(`${what}: connect timed out`, { phase: 'connect', latencyMs, cause: err });
  }
  if (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    e.name === 'TimeoutError' ||
    e.name === 'AbortError'
  ) {
    return new TimeoutError(`${what}: no complete answer in time`, {
      phase: 'response',
      latencyMs,
      cause: err,
    });
  }
  // Only these prove the request never left this process.
  const neverSent = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
  return new ConnectionError(`${what}: ${code ?? e.name ?? 'connection failed'}`, {
    reachedServer: !neverSent,
    code,
    latencyMs,
    cause: err,
  });
}
