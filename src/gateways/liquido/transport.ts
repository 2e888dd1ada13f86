import type { Logger } from 'pino';
import { createHttpClient, type RetryPolicy } from '../http.ts';

/**
 * The Liquido client's view of the shared HTTP client (src/gateways/http.ts: keep-alive pool,
 * in-flight limit, bounded reads, failures mapped onto the gateway errors, resend only where
 * it cannot double-charge): requests by path under the configured base URL, answers with the
 * JSON already parsed.
 */

export interface TransportRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string | undefined;
  /** `idempotent` for reads and the token; `notProcessed` for charge, capture and cancel. */
  retry: RetryPolicy;
  /** Short label for logs. */
  kind: string;
}

export interface TransportResponse {
  status: number;
  /** Parsed JSON, or undefined when the body was empty or not JSON. */
  json: unknown;
  correlationId: string | undefined;
  latencyMs: number;
}

export interface Transport {
  /** Resolves with any HTTP status; rejects with ConnectionError, TimeoutError or ContractError. */
  request(req: TransportRequest): Promise<TransportResponse>;
  close(): Promise<void>;
}

export function createTransport(opts: {
  url: string;
  maxInFlight: number;
  requestTimeoutMs: number;
  logger?: Logger | undefined;
}): Transport {
  const base = opts.url.replace(/\/+$/, '');
  const http = createHttpClient({
    maxInFlight: opts.maxInFlight,
    requestTimeoutMs: opts.requestTimeoutMs,
    logger: opts.logger,
  });

  return {
    async request(req) {
      const res = await http.request({
        url: base + req.path,
        method: req.method,
        headers: req.headers,
        body: req.body,
        retry: req.retry,
        kind: `liquido.${req.kind}`,
      });
      let json: unknown;
      if (res.body.length > 0) {
        try {
          json = JSON.parse(res.body);
        } catch {
          json = undefined;
        }
      }
      const rid = res.headers['x-request-id'];
      return {
        status: res.status,
        json,
        correlationId: Array.isArray(rid) ? rid[0] : rid,
        latencyMs: res.latencyMs,
      };
    },
    close: () => http.close(),
  };
}
