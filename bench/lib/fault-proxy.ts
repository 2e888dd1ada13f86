import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import type { Outcome, Sandbox } from '../../src/sandbox/server.ts';
import { pick } from './rng.ts';

/**
 * A fault injector in front of the sandbox. It decides per request, at `rate`, whether to
 * inject a fault, and injects it through the sandbox's own script API keyed by the request's
 * transaction reference, so the sandbox commits (or not) and records it in its ledger exactly
 * as it would on its own. Switching the rate to 0 switches faults off at once, with nothing
 * left queued.
 */
export interface FaultProxy {
  url: string;
  /** The sandbox to forward to; started after the proxy so its hrefs can name the proxy. */
  attach(sandbox: Sandbox): void;
  setRate(rate: number): void;
  /** Faults injected, by kind. */
  injected: Record<string, number>;
  /** Authorizations whose answer was held beyond the client's timeout. */
  slowReferences: Set<string>;
  close(): Promise<void>;
}

const SOFT: Outcome[] = [
  { type: 'refuse', code: '51' },
  { type: 'refuse', code: '5' },
  { type: 'refuse', code: '51', adviceCode: '02' },
  { type: 'refuse', code: '5', adviceCode: '24' },
  { type: 'refuse', code: '51', adviceCode: '25' },
  { type: 'refuse', code: '5', adviceCode: '26' },
  { type: 'refuse', code: '51', adviceCode: '27' },
  { type: 'refuse', code: '5', adviceCode: '28' },
  { type: 'refuse', code: '51', adviceCode: '29' },
  { type: 'refuse', code: '5', adviceCode: '30' },
];
const HARD: Outcome[] = ['33', '54', '14', '41', '43', '46'].map((code) => ({ type: 'refuse', code }));
const STOP: Outcome[] = ['34', '59', '4'].map((code) => ({ type: 'refuse', code }));
const MAC: Outcome[] = ['01', '03', '21'].map((adviceCode) => ({ type: 'refuse', code: '5', adviceCode }));

/** Decode `{k, n}` from a recurring link's data (base64 JSON, a dot, an opaque tail). */
export function linkPosition(href: string): { chainId: string; n: number } | null {
  const tail = href.slice(href.lastIndexOf('/recurring/') + '/recurring/'.length);
  const json = tail.slice(0, tail.indexOf('.'));
  try {
    const v = JSON.parse(Buffer.from(json, 'base64').toString('utf8')) as { k?: string; n?: number };
    return typeof v.k === 'string' && typeof v.n === 'number' ? { chainId: v.k, n: v.n } : null;
  } catch {
    return null;
  }
}

export async function startFaultProxy(opts: {
  rate: number;
  random: () => number;
  clientTimeoutMs: number;
}): Promise<FaultProxy> {
  let rate = opts.rate;
  const random = opts.random;
  const injected: Record<string, number> = {};
  const slowReferences = new Set<string>();
  const settleRefs = new Map<string, string>();
  let sandbox: Sandbox | undefined;
  let upstream: Pool | undefined;
  const count = (kind: string) => {
    injected[kind] = (injected[kind] ?? 0) + 1;
  };
  const slow = (next?: Outcome): Outcome => ({
    type: 'slow',
    ms: opts.clientTimeoutMs + 500,
    ...(next ? { next } : {}),
  });

  function authorizeFault(): [string, Outcome] {
    const r = random();
    if (r < 0.2) return ['refuse soft', pick(random, SOFT)];
    if (r < 0.3) return ['refuse hard', pick(random, HARD)];
    if (r < 0.38) return ['refuse stop', pick(random, STOP)];
    if (r < 0.46) return ['refuse MAC 01/03/21', pick(random, MAC)];
    if (r < 0.54) return ['500', { type: 'error', status: 500 }];
    if (r < 0.62) return ['503', { type: 'error', status: 503 }];
    if (r < 0.7) return ['429', { type: 'error', status: 429, retryAfterSeconds: 0 }];
    if (r < 0.85) return ['slow beyond timeout', slow(random() < 0.5 ? undefined : pick(random, SOFT))];
    return ['lost', { type: 'lost' }];
  }

  function settleFault(): [string, Outcome] {
    const r = random();
    if (r < 0.2) return ['settle 500', { type: 'error', status: 500 }];
    if (r < 0.4) return ['settle 503', { type: 'error', status: 503 }];
    if (r < 0.6) return ['settle 429', { type: 'error', status: 429, retryAfterSeconds: 0 }];
    if (r < 0.8) return ['settle slow beyond timeout', slow()];
    return ['settle lost', { type: 'lost' }];
  }

  const readBody = async (req: IncomingMessage): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!sandbox || !upstream) {
      res.writeHead(503).end();
      return;
    }
    const path = req.url ?? '/';
    const body = await readBody(req);
    const isAuthorize =
      req.method === 'POST' &&
      (path.startsWith('/payments/authorizations/recurring/') ||
        path === '/cardPayments/merchantInitiatedTransactions');
    const settleLink = path.match(/^\/payments\/settlements\/(?:full|partials)\/(.+)$/)?.[1];
    if (req.method === 'GET' && path.startsWith('/payments') && random() < rate / 2) {
      count('query 503');
      res.writeHead(503, { 'content-type': 'application/vnd.worldpay.payments-v6.hal+json' });
      res.end(JSON.stringify({ errorName: 'serviceUnavailable', message: 'injected by the soak' }));
      return;
    }
    let reference: string | undefined;
    if (isAuthorize) {
      try {
        reference = (JSON.parse(body.toString('utf8')) as { transactionReference?: string })
          .transactionReference;
      } catch {
        reference = undefined;
      }
      if (reference && random() < rate) {
        const [kind, outcome] = authorizeFault();
        count(kind);
        if (outcome.type === 'slow') slowReferences.add(reference);
        sandbox.script({ match: { transactionReference: reference }, outcomes: [outcome] });
      }
    } else if (req.method === 'POST' && settleLink !== undefined) {
      const ref = settleRefs.get(settleLink);
      if (ref && random() < rate) {
        const [kind, outcome] = settleFault();
        count(kind);
        sandbox.script({ match: { transactionReference: ref, op: 'settle' }, outcomes: [outcome] });
      }
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === 'string' && !['host', 'connection', 'content-length', 'keep-alive'].includes(k))
        headers[k] = v;
    }
    let status: number;
    let answerHeaders: Record<string, string>;
    let text: string;
    try {
      const up = await upstream.request({
        path,
        method: req.method as 'GET' | 'POST',
        headers,
        body: body.length > 0 ? body : null,
      });
      status = up.statusCode;
      text = await up.body.text();
      answerHeaders = {};
      for (const k of ['content-type', 'wp-correlationid', 'retry-after']) {
        const v = up.headers[k];
        if (typeof v === 'string') answerHeaders[k] = v;
      }
    } catch {
      // the sandbox dropped the connection on purpose (`lost`): the client must see the same
      res.socket?.destroy();
      return;
    }
    if (res.socket === null || res.socket.destroyed) return; // the client gave up (timeout)
    if (isAuthorize && status === 201 && reference) {
      try {
        const links = (JSON.parse(text) as { _links?: Record<string, { href?: string }> })._links ?? {};
        const settle = links['payments:settle']?.href;
        if (settle) settleRefs.set(settle.slice(settle.indexOf('/full/') + '/full/'.length), reference);
      } catch {
        // not JSON: nothing to learn
      }
    }
    res.writeHead(status, answerHeaders);
    res.end(text);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.socket?.destroy());
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    attach(s) {
      sandbox = s;
      upstream = new Pool(s.url, { connections: 64 });
    },
    setRate(r) {
      rate = r;
    },
    injected,
    slowReferences,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await upstream?.close();
    },
  };
}
