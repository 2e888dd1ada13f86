import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { runBilling } from '../../src/billing/run/run.ts';
import { dueMandates } from '../support/centre.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * A settle goes off the slot: once an authorization and its settle's write-ahead row are
 * committed, the sender takes its credential's next charge without waiting for the settle's
 * answer. Checked at the wire: a proxy in front of the sandbox holds the group's first settle
 * until the group's second authorization arrives. A sender that waited for the settle would
 * never send that authorization; the proxy then lets the settle go on its own after a while
 * (so such a run still ends) and says so.
 */
describe.skipIf(!hasServer)('charge: the settle goes off the slot (PostgreSQL)', () => {
  const at = new Date('2026-05-01T09:00:00Z');
  const runAt = new Date('2026-05-01T10:00:00Z');
  let w: World | undefined;
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await w?.close();
    await close?.();
  });

  /** A loopback proxy to the sandbox that holds the first settle until a second authorization. */
  async function holdingProxy() {
    let upstream = '';
    let authorizations = 0;
    let settles = 0;
    let released: 'by the second authorization' | 'on its own' | undefined;
    let release: (() => void) | undefined;
    const body = async (req: IncomingMessage) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    };
    const server = createServer((req, res) => {
      void (async () => {
        const path = req.url ?? '/';
        const payload = await body(req);
        if (req.method === 'POST' && path.startsWith('/payments/authorizations/recurring/')) {
          authorizations++;
          if (authorizations === 2 && release) {
            released ??= 'by the second authorization';
            release();
          }
        } else if (req.method === 'POST' && path.startsWith('/payments/settlements/')) {
          settles++;
          if (settles === 1) {
            await new Promise<void>((resolve) => {
              release = resolve;
              setTimeout(() => {
                released ??= 'on its own';
                resolve();
              }, 3000);
            });
          }
        }
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers))
          if (typeof v === 'string' && !['host', 'connection', 'content-length'].includes(k)) headers[k] = v;
        const up = await request(`${upstream}${path}`, {
          method: req.method as 'GET' | 'POST',
          headers,
          body: payload.length > 0 ? payload : null,
        });
        const text = await up.body.text();
        const ct = up.headers['content-type'];
        res.writeHead(up.statusCode, typeof ct === 'string' ? { 'content-type': ct } : {});
        res.end(text);
      })().catch(() => res.socket?.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    close = async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    };
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      attach: (url: string) => {
        upstream = url;
      },
      released: () => released,
    };
  }

  it("a credential's next charge is sent while the settle before it waits for its answer", async () => {
    const proxy = await holdingProxy();
    w = await startWorld({
      sandbox: { publicUrl: proxy.url },
      // one sender: the second authorization can only come from the slot that sent the first
      env: { WORLDPAY_URL: proxy.url, WORLDPAY_TIMEOUT_MS: '10000', REBILL_CONCURRENCY: '1' },
    });
    proxy.attach(w.sandbox.url);
    const app = await w.app(runAt);
    await dueMandates(w, app, { tag: 'off-slot', n: 2, at, shared: true });

    const report = await runBilling(app, { asOf: runAt, trigger: 'test' });

    expect(proxy.released()).toBe('by the second authorization');
    expect(report.counts).toMatchObject({ attempted: 2, authorized: 2, settleRequested: 2, errors: 0 });
    // The run ended only after both settles' answers were committed.
    const rows = await app.database.rows<{ charge: string; action: string }>(
      sql`select c.state as charge, pa.state as action from charges c join payment_actions pa on pa.charge_id = c.id`,
    );
    expect(rows).toEqual([
      { charge: 'settling', action: 'accepted' },
      { charge: 'settling', action: 'accepted' },
    ]);
  });
});

describe.skipIf(hasServer)('charge: the settle goes off the slot', () => {
  it.skip(`PostgreSQL: ${serverSkipReason}`, () => {});
});
