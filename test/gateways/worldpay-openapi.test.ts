import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createWorldpayGateway, type WorldpayGateway } from '../../src/gateways/worldpay/index.ts';
import { addFormats } from '../support/ajv.ts';
import { sharedFile } from '../support/shared.ts';

/**
 * The requests the Worldpay client sends, captured on a loopback recorder that answers the
 * seeds' canned responses, checked against Worldpay's published OpenAPI request schemas where
 * the path exists there (manage payments, query a payment), and against seed 003's example
 * bodies for the authorizations (not in the published files).
 */

const openapiDir = sharedFile('worldpay-openapi');
const haveOpenapi = existsSync(openapiDir);
if (!haveOpenapi) console.warn(`worldpay-openapi tests skipped: ${openapiDir} is missing`);

interface Captured {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

type Json = Record<string, unknown>;

interface Operation {
  template: string;
  parameters?: { in: string; name: string; required?: boolean }[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Json }> };
}

/**
 * Errata of the published files, applied before validating. The manage-payments `value` schema
 * says currency is 3 characters long *and* matches `^[A-Z]$` (one character): no value can
 * pass, so the pattern is read as the `^[A-Z]{3}$` it obviously means. Returns what was fixed.
 */
function applyErrata(node: unknown, fixed: string[] = [], at = '#'): string[] {
  // Arrays are walked by Object.entries too (keys '0', '1', ...).
  if (node !== null && typeof node === 'object') {
    const o = node as Json;
    if (o.pattern === '^[A-Z]$' && o.minLength === 3 && o.maxLength === 3) {
      o.pattern = '^[A-Z]{3}$';
      fixed.push(at);
    }
    for (const [k, v] of Object.entries(o)) applyErrata(v, fixed, `${at}/${k}`);
  }
  return fixed;
}

/** One OpenAPI file: finds the operation a captured request hits and validates its body. */
function loadSpec(file: string, ajv: Ajv) {
  const doc = parse(readFileSync(path.join(openapiDir, file), 'utf8')) as Json;
  const errata = applyErrata(doc.components);
  const id = `spec:${file}`;
  ajv.addSchema({ $id: id, components: doc.components ?? {} });
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const validators = new Map<string, ValidateFunction>();

  function find(method: string, requestPath: string): Operation | undefined {
    const pathOnly = requestPath.split('?')[0]!;
    let best: Operation | undefined;
    for (const [template, item] of Object.entries(paths)) {
      const op = item[method.toLowerCase()];
      if (!op) continue;
      // Link data is opaque and may itself hold '/': `{param}` matches the rest of the path.
      const pattern = new RegExp(
        `^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '.+')}$`,
      );
      if (!pattern.test(pathOnly)) continue;
      // The most specific template wins (`/settlements/partials/{d}` over `/settlements/{d}`).
      if (!best || template.split('{')[0]!.length > best.template.split('{')[0]!.length) {
        best = { template, ...(op as Omit<Operation, 'template'>) };
      }
    }
    return best;
  }

  function bodyValidator(op: Operation): ValidateFunction | undefined {
    const content = op.requestBody?.content;
    const schema = content ? Object.values(content)[0]?.schema : undefined;
    if (!schema) return undefined;
    const key = `${op.template}`;
    let validate = validators.get(key);
    if (!validate) {
      // Local refs (`#/components/...`) resolve against the spec document registered above.
      const rewritten = JSON.parse(
        JSON.stringify(schema).replaceAll('"#/components/', `"${id}#/components/`),
      );
      validate = ajv.compile(rewritten);
      validators.set(key, validate);
    }
    return validate;
  }

  return { find, bodyValidator, errata };
}

function originOf(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe.skipIf(!haveOpenapi)('Worldpay requests against the published OpenAPI', () => {
  const captured: Captured[] = [];
  let server: Server;
  let gw: WorldpayGateway;
  let base: string;
  // Link data shaped like Try's, with the characters a careless client would re-encode.
  const d = 'eyJrIjoia2FhYzM1ZiIsImxpbmtWZXJzaW9uIjoiMS4wLjAifQ==.rTSa+b/c:d=';
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  let manage: ReturnType<typeof loadSpec>;
  let query: ReturnType<typeof loadSpec>;

  const links = () => ({
    'payments:cancel': `${base}/payments/authorizations/cancellations/${d}`,
    'payments:settle': `${base}/payments/settlements/full/${d}`,
    'payments:partialSettle': `${base}/payments/settlements/partials/${d}`,
    'payments:refund': `${base}/payments/settlements/refunds/full/${d}`,
    'payments:partialRefund': `${base}/payments/settlements/refunds/partials/${d}`,
    'payments:reversal': `${base}/payments/sales/reversals/${d}`,
    'payments:events': `${base}/payments/events/${d}`,
  });
  const hal = () => ({
    _links: {
      ...Object.fromEntries(Object.entries(links()).map(([rel, href]) => [rel, { href }])),
      'payments:recurringAuthorize': { href: `${base}/payments/authorizations/recurring/${d}` },
      curies: [{ name: 'payments', href: `${base}/rels/payments/{rel}`, templated: true }],
    },
  });

  beforeAll(async () => {
    manage = loadSpec('worldpay-manage-payments-api-openapi.yml', ajv);
    query = loadSpec('worldpay-query-a-payment-api-openapi.yml', ajv);
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = req.url ?? '';
        captured.push({
          method: req.method ?? '',
          url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString(),
        });
        res.setHeader('content-type', 'application/vnd.worldpay.payments-v6.hal+json');
        res.setHeader('wp-correlationid', `rec-${captured.length}`);
        if (req.method === 'GET' && url === '/payments') {
          res.statusCode = 404;
          res.end(JSON.stringify({ errorName: 'endpointNotFound' }));
        } else if (req.method === 'GET') {
          res.end(JSON.stringify({ lastEvent: 'Authorized', ...hal() }));
        } else if (
          url.startsWith('/payments/authorizations/migrateRecurring') ||
          url.includes('/recurring/')
        ) {
          res.statusCode = 201;
          res.end(JSON.stringify({ outcome: 'authorized', scheme: { reference: '1260019172' }, ...hal() }));
        } else {
          res.statusCode = 202;
          res.end(JSON.stringify(hal()));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = originOf(server);
    gw = createWorldpayGateway({ url: base, username: 'u', password: 'p', entity: 'MindPalaceLtd' });
  });

  afterAll(async () => {
    await gw?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  /** The request the last call sent, checked against the spec's operation for its path. */
  function checkAgainst(spec: ReturnType<typeof loadSpec>, expectedTemplate: string): Captured {
    const req = captured.at(-1)!;
    const op = spec.find(req.method, req.url);
    expect(op?.template, `${req.method} ${req.url}`).toBe(expectedTemplate);
    for (const p of op!.parameters ?? []) {
      if (p.in === 'header' && p.required) expect(req.headers[p.name.toLowerCase()], p.name).toBeDefined();
    }
    const validate = spec.bodyValidator(op!);
    if (req.body === '') {
      expect(op!.requestBody?.required ?? false).toBe(false);
    } else {
      expect(validate, 'the spec defines a body for this operation').toBeDefined();
      const ok = validate!(JSON.parse(req.body));
      expect(validate!.errors ?? [], req.body).toEqual([]);
      expect(ok).toBe(true);
    }
    return req;
  }

  const payment = () => ({ links: links(), paymentId: links()['payments:events'] });

  it('partial settlement body matches payments_partialSettle and hits the link verbatim', async () => {
    await gw.action({
      kind: 'partialSettle',
      ...payment(),
      reference: 'partial-settle-reference',
      value: { amount: 125, currency: 'GBP' },
    });
    const req = checkAgainst(manage, '/payments/settlements/partials/{linkData}');
    expect(req.url).toBe(`/payments/settlements/partials/${d}`);
    expect(JSON.parse(req.body)).toEqual({
      value: { amount: 125, currency: 'GBP' },
      reference: 'partial-settle-reference',
    });
  });

  it('partial refund body matches payments_partialRefund', async () => {
    await gw.action({
      kind: 'partialRefund',
      ...payment(),
      reference: 'partial-refund-reference',
      value: { amount: 125, currency: 'GBP' },
    });
    checkAgainst(manage, '/payments/settlements/refunds/partials/{linkData}');
  });

  it('patches only the known currency-pattern erratum (one-character pattern on 3-character currencies) of the manage-payments file', () => {
    expect(manage.errata).toContain('#/schemas/value/properties/currency');
    expect(manage.errata.every((at) => at.endsWith('/currency'))).toBe(true);
    expect(query.errata).toEqual([]);
  });

  it('a schema check that can fail: a bad partial body is rejected by the same validator', () => {
    const op = manage.find('POST', `/payments/settlements/partials/${d}`)!;
    const validate = manage.bodyValidator(op)!;
    expect(validate({ value: { amount: 1.5, currency: 'GBP' }, reference: 'x' })).toBe(false);
    expect(validate({ value: { amount: 1, currency: 'GBP' }, reference: 'has space' })).toBe(false);
    expect(validate({ value: { amount: 1, currency: 'GBP' } })).toBe(false);
    expect(validate({ value: { amount: 1, currency: 'GB' }, reference: 'x' })).toBe(false);
  });

  it('full refund, cancel and reversal send no body where none is required', async () => {
    await gw.action({ kind: 'refund', ...payment(), reference: 'r' });
    checkAgainst(manage, '/payments/settlements/refunds/full/{linkData}');
    await gw.action({ kind: 'cancel', ...payment(), reference: 'c' });
    checkAgainst(manage, '/payments/authorizations/cancellations/{linkData}');
    await gw.action({ kind: 'reversal', ...payment(), reference: 'v' });
    checkAgainst(manage, '/payments/sales/reversals/{linkData}');
  });

  it('settle posts to the seed path (/settlements/full/ is not in the published file)', async () => {
    await gw.action({ kind: 'settle', ...payment(), reference: 's' });
    const req = captured.at(-1)!;
    expect(req).toMatchObject({ method: 'POST', url: `/payments/settlements/full/${d}`, body: '' });
  });

  it('the events query and the recovery query hit the query-a-payment paths', async () => {
    const found = await gw.query(payment());
    expect(found).toMatchObject({
      found: true,
      status: 'authorized',
      correlationId: `rec-${captured.length}`,
    });
    checkAgainst(query, '/payments/events/{linkData}');
    await gw.queryByReference('Memory265-13/08/1876', 'Mind Palace');
    const req = checkAgainst(query, '/payments/events');
    const params = new URLSearchParams(req.url.split('?')[1]);
    expect(params.get('transactionRef')).toBe('Memory265-13/08/1876');
    expect(params.get('entity')).toBe('Mind Palace');
    expect(req.url).toContain('transactionRef=Memory265-13%2F08%2F1876&entity=Mind%20Palace');
  });

  it('sends the v6 media types and Basic auth on every request', () => {
    expect(captured.length).toBeGreaterThan(0);
    for (const req of captured) {
      expect(req.headers.accept).toBe('application/vnd.worldpay.payments-v6.hal+json');
      expect(req.headers['content-type']).toBe('application/vnd.worldpay.payments-v6+json');
      expect(req.headers.authorization).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    }
  });

  it('migrateRecurring bodies are exactly seed 003 examples (discovery falls back to the documented path)', async () => {
    const common = {
      reference: 'Memory265-13/08/1876',
      value: { amount: 250, currency: 'GBP' },
      entity: 'MindPalaceLtd',
    };
    await gw.authorize({
      ...common,
      narrative: 'trading name',
      intent: 'subscription',
      instrument: { type: 'card/plain', cardNumber: '4444333322221111', expiryMonth: 12, expiryYear: 2035 },
    });
    let req = captured.at(-1)!;
    expect(req.url).toBe('/payments/authorizations/migrateRecurring');
    expect(JSON.parse(req.body)).toEqual({
      transactionReference: 'Memory265-13/08/1876',
      merchant: { entity: 'MindPalaceLtd' },
      instruction: {
        narrative: { line1: 'trading name' },
        paymentInstrument: {
          type: 'card/plain',
          cardNumber: '4444333322221111',
          cardExpiryDate: { month: 12, year: 2035 },
        },
        value: { currency: 'GBP', amount: 250 },
        intent: 'subscription',
      },
    });

    await gw.authorize({
      ...common,
      narrative: 'Mind Palace Ltd',
      intent: 'unscheduled',
      instrument: { type: 'card/token', href: 'https://try.access.worldpay.com/tokens/abc' },
    });
    req = captured.at(-1)!;
    expect(JSON.parse(req.body).instruction).toEqual({
      narrative: { line1: 'Mind Palace Ltd' },
      value: { currency: 'GBP', amount: 250 },
      paymentInstrument: { type: 'card/token', href: 'https://try.access.worldpay.com/tokens/abc' },
      intent: 'unscheduled',
    });

    await gw.authorize({
      ...common,
      narrative: 'Mind Palace Ltd',
      intent: 'instalment',
      instrument: {
        type: 'card/networkToken+applepay',
        dpan: '4444333322221111',
        expiryMonth: 5,
        expiryYear: 2035,
      },
    });
    req = captured.at(-1)!;
    expect(JSON.parse(req.body).instruction).toEqual({
      intent: 'instalment',
      narrative: { line1: 'Mind Palace Ltd' },
      value: { currency: 'GBP', amount: 250 },
      paymentInstrument: {
        type: 'card/networkToken+applepay',
        dpan: '4444333322221111',
        cardExpiryDate: { month: 5, year: 2035 },
      },
    });
  });

  it('a recurring authorization POSTs to the stored link verbatim', async () => {
    const href = `${base}/payments/authorizations/recurring/${d}`;
    const result = await gw.authorize({
      reference: 'Memory265-2',
      value: { amount: 250, currency: 'GBP' },
      entity: 'MindPalaceLtd',
      narrative: 'Mind Palace Ltd',
      intent: 'subscription',
      instrument: { type: 'link', href },
      credential: { type: 'card/token', href: 'https://try.access.worldpay.com/tokens/abc' },
    });
    expect(result.outcome).toBe('authorized');
    const req = captured.at(-1)!;
    expect(base + req.url).toBe(href);
    expect(JSON.parse(req.body).instruction.paymentInstrument).toEqual({
      type: 'card/token',
      href: 'https://try.access.worldpay.com/tokens/abc',
    });
  });
});
