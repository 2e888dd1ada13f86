import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followSettlements } from '../../src/billing/charge/follow.ts';
import { queueCharge, showMandate } from '../../src/billing/mandates/index.ts';
import { paymentAction } from '../../src/billing/operator/payments.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { haveSpec, type Json, loadSpec } from '../support/openapi-v7.ts';
import { at } from '../support/time.ts';
import { mandateFor, payer } from '../support/v7.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * Every request rebill sends to Worldpay for v7 credentials, captured by a loopback recording
 * proxy between rebill and the sandbox (the sandbox's links point at the proxy, so settles,
 * refunds, cancels, reversals and queries pass through it too), validated with ajv against the
 * Card Payments v7 OpenAPI file: the operation its path hits, its v7 media types, its body; and
 * the sandbox's answer to it against the file's answer schema.
 */

const V7 = 'application/vnd.worldpay.payments-v7+json';

interface Exchange {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
  answer: string;
}

describe.skipIf(!haveSpec)('rebill v7 requests against the published Card Payments v7 OpenAPI', () => {
  const seen: Exchange[] = [];
  let proxy: Server;
  let target = '';
  let w: World;

  beforeAll(async () => {
    proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        const headers = { ...req.headers };
        delete headers.host;
        delete headers.connection;
        delete headers['content-length'];
        request(target + (req.url ?? ''), {
          method: (req.method ?? 'GET') as 'GET',
          headers: headers as Record<string, string>,
          ...(body === '' ? {} : { body }),
        })
          .then(async (r) => {
            const answer = await r.body.text();
            seen.push({
              method: req.method ?? '',
              url: req.url ?? '',
              headers: req.headers,
              body,
              status: r.statusCode,
              answer,
            });
            res.statusCode = r.statusCode;
            for (const h of ['content-type', 'wp-correlationid']) {
              const v = r.headers[h];
              if (v !== undefined) res.setHeader(h, v as string);
            }
            res.end(answer);
          })
          // The sandbox dropped the connection (a scripted lost answer): so does the proxy.
          .catch(() => {
            seen.push({
              method: req.method ?? '',
              url: req.url ?? '',
              headers: req.headers,
              body,
              status: 0,
              answer: '',
            });
            req.socket.destroy();
          });
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    w = await startWorld({
      sandbox: { publicUrl: proxyUrl },
      env: { WORLDPAY_URL: proxyUrl, WORLDPAY_ACCOUNT_UPDATER: 'request' },
    });
    target = w.sandbox.url;
  });

  afterAll(async () => {
    await w?.close();
    await new Promise((resolve) => proxy?.close(resolve));
  });

  it('every merchant-initiated transaction, settle, refund, cancel, reversal and query rebill sends is valid v7', async () => {
    const spec = loadSpec();
    const app = await w.app(at('2026-06-01T00:00:00Z'));
    const make = async (
      p: Awaited<ReturnType<typeof payer>>,
      ref: string,
      extra: Record<string, unknown>,
    ) => {
      const m = await mandateFor(app, w, p, {
        customerRef: ref,
        amount: 1000,
        currency: 'GBP',
        narrative: 'Contract & Co.',
        ...extra,
      });
      return m;
    };
    const plain = await payer(w, 'v7', { holder: 'Sherlock Holmes' });
    const token = await payer(w, 'v7', { instrument: 'card/token' });
    const network = await payer(w, 'v7', { instrument: 'card/networkToken' });
    const lost = await payer(w, 'v7');
    const refused = await payer(w, 'v7');
    const sub = await make(plain, 'c-sub', {
      intent: 'subscription',
      interval: '1 month',
      start: at('2026-06-01T00:00:00Z'),
    });
    await make(token, 'c-inst', {
      intent: 'instalment',
      instalments: 2,
      interval: '1 month',
      start: at('2026-06-01T00:00:00Z'),
      settleMode: 'partial',
      settlePercent: 50,
    });
    const uns = await make(network, 'c-uns', { intent: 'unscheduled', settleMode: 'none' });
    const rev = await make(lost, 'c-lost', { intent: 'unscheduled' });
    const ref = await make(refused, 'c-refused', { intent: 'unscheduled' });
    await queueCharge(app, uns.id, { amount: 700 });
    await queueCharge(app, rev.id, { amount: 800 });
    await queueCharge(app, ref.id, { amount: 900 });
    w.sandbox.script({
      match: plain.match,
      outcomes: [
        {
          type: 'authorize',
          accountUpdater: { message: 'TThe expiration date was changed', expiryMonth: 3, expiryYear: 2036 },
        },
      ],
    });
    w.sandbox.script({ match: lost.match, outcomes: [{ type: 'lost' }] });
    w.sandbox.script({ match: refused.match, outcomes: [{ type: 'refuse', code: '51', adviceCode: '02' }] });
    await runBilling(app, { asOf: at('2026-06-01T01:00:00Z'), trigger: 'test' });
    // the lost answer recovered by its reference
    await runBilling(app, { asOf: at('2026-06-01T02:00:00Z'), trigger: 'test' });
    await followSettlements(app, { limit: 100 });
    const chargeOf = async (id: number) => (await showMandate(w.t.database, id)).charges[0]!.id;
    await paymentAction(app, await chargeOf(sub.id), 'partialRefund', { amount: 100 });
    await paymentAction(app, await chargeOf(sub.id), 'refund');
    await paymentAction(app, await chargeOf(uns.id), 'cancel');
    await paymentAction(app, await chargeOf(rev.id), 'reversal');

    const worldpay = seen.filter((e) => !e.url.startsWith('/_sandbox'));
    const hit = new Set<string>();
    for (const e of worldpay) {
      const what = `${e.method} ${e.url} ${e.body}`;
      const template = spec.find(e.method, e.url);
      expect(template, what).toBeDefined();
      hit.add(`${e.method} ${template}`);
      // v7's one media type, asked for and (with a body) sent
      expect(e.headers.accept, what).toBe(V7);
      if (e.method === 'POST') expect(e.headers['content-type'], what).toBe(V7);
      if (e.body !== '') {
        const validate = spec.request(template!, e.method.toLowerCase());
        const ok = validate(JSON.parse(e.body));
        expect(validate.errors ?? [], what).toEqual([]);
        expect(ok).toBe(true);
      }
      if (e.status >= 200 && e.status < 300) {
        const validate = spec.response(template!, e.method.toLowerCase(), e.status);
        const ok = validate(JSON.parse(e.answer) as Json);
        expect(validate.errors ?? [], `answer to ${what}: ${e.answer}`).toEqual([]);
        expect(ok).toBe(true);
      }
    }
    expect([...hit].sort()).toEqual(
      expect.arrayContaining([
        'POST /cardPayments/merchantInitiatedTransactions',
        'POST /payments/settlements/{linkData}',
        'POST /payments/settlements/partials/{linkData}',
        'POST /payments/settlements/refunds/partials/{linkData}',
        'POST /payments/settlements/refunds/full/{linkData}',
        'POST /payments/authorizations/cancellations/{linkData}',
        'POST /payments/sales/reversals/{linkData}',
        'GET /payments/events',
        'GET /payments/events/{linkData}',
      ]),
    );
    // what each merchant-initiated transaction said, as the file names it
    const mits = worldpay
      .filter((e) => e.url === '/cardPayments/merchantInitiatedTransactions')
      .map(
        (e) =>
          JSON.parse(e.body) as { instruction: Json & { customerAgreement: Json; paymentInstrument: Json } },
      );
    expect(mits.length).toBeGreaterThanOrEqual(5);
    for (const b of mits) {
      expect(b.instruction.requestAutoSettlement).toEqual({ enabled: false });
      expect(b.instruction.requestAccountUpdater).toBe(true);
    }
    const agreements = mits.map((b) => b.instruction.customerAgreement);
    expect(agreements).toContainEqual({
      type: 'installment',
      installmentType: 'merchant',
      schemeReference: token.schemeReference,
    });
    expect(agreements).toContainEqual({ type: 'subscription', schemeReference: plain.schemeReference });
    expect(agreements).toContainEqual({ type: 'unscheduled', schemeReference: network.schemeReference });
    expect(mits.map((b) => b.instruction.paymentInstrument.type).sort()).toEqual(
      expect.arrayContaining(['card/networkToken', 'card/plain', 'card/token']),
    );
  });
});
