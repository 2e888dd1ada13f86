import { Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, openApp } from '../../src/app.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { fixedClock } from '../../src/clock.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { createRowValidator } from '../../src/legacy/rows.ts';
import { createLogger } from '../../src/logger.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * Hostile input, table-driven: every field of every body the admin API takes, and every query
 * parameter, against {null, wrong type, NUL, control characters, huge, deep, a Luhn-valid card
 * number}. Each must be a 4xx naming the field (never a 500), echo no card number, write no row,
 * and log no card number even at trace level. Then a fast-check fuzz of the mandate body and of
 * the legacy row.
 */
const TOKEN = 'tok-hostile-0123456789';
const NOW = new Date('2026-06-01T10:00:00Z');
const PAN = '4929301661318602'; // Luhn-valid, never a valid value of any field but cardNumber
const PANS = [PAN, '4012888888881881', '5188247082276544'];

type Json = ReturnType<typeof JSON.parse>;

describe('hostile input: every route, every field', () => {
  let w: World;
  let app: App;
  let server: AdminServer;
  let url: string;
  let linkHref: string;
  const logged: string[] = [];

  beforeAll(async () => {
    w = await startWorld({
      env: { REBILL_ADMIN_TOKENS: TOKEN, REBILL_ADMIN_AUTH_FAILURES_PER_MINUTE: '100000' },
    });
    const sink = new Writable({
      write(chunk, _enc, done) {
        logged.push(String(chunk));
        done();
      },
    });
    app = await openApp(w.config, {
      database: w.t.database,
      clock: fixedClock(NOW),
      logger: createLogger({ level: 'trace', destination: sink }),
    });
    server = await createAdminServer({ ctx: app, runner: createRunner(app) });
    url = await server.listen('127.0.0.1:0');
    linkHref = (await w.verify()).href;
  });
  afterAll(async () => {
    await server?.close();
    await app?.close();
    await w?.close();
  });

  async function send(method: string, path: string, raw?: string, headers: Record<string, string> = {}) {
    const res = await request(`${url}${path}`, {
      method: method as 'GET',
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(raw !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: raw,
    });
    const text = await res.body.text();
    let body: Json = text;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: res.statusCode, body, text };
  }

  const rowCounts = async () => {
    const r = await w.t.database.rows(sql`select
      (select count(*) from mandates)::int as mandates, (select count(*) from charges)::int as charges,
      (select count(*) from credentials)::int as credentials, (select count(*) from payment_actions)::int as actions`);
    return r[0];
  };

  const validMandate = () => ({
    customerRef: 'hostile-ok',
    intent: 'subscription',
    amount: 1000,
    currency: 'GBP',
    narrative: 'Mind Palace Ltd',
    interval: '1 month',
    start: '2026-06-01T09:00:00Z',
    timezone: 'Europe/London',
    credential: { link: linkHref },
  });

  const deep = (n: number): unknown => {
    let v: unknown = 'x';
    for (let i = 0; i < n; i++) v = { a: v };
    return v;
  };
  // The bad values every field meets. A value that is valid for a field is skipped for it.
  const badValues: { name: string; value: unknown }[] = [
    { name: 'null', value: null },
    { name: 'number', value: 0 },
    { name: 'boolean', value: true },
    { name: 'array', value: ['x'] },
    { name: 'object', value: { x: 1 } },
    { name: 'NUL', value: 'a\u0000b' },
    { name: 'control', value: 'a\u0007b\u001bc' },
    { name: 'huge string', value: 'x'.repeat(100_000) },
    { name: 'huge number', value: 2 ** 53 - 1 },
    { name: 'negative', value: -1 },
    { name: 'fraction', value: 1.5 },
    { name: 'deep', value: deep(50) },
    { name: 'card number', value: PAN },
    { name: 'grouped card number', value: '4929 3016 6131 8602' },
    { name: 'year 275760', value: '+275760-09-13T00:00:00Z' },
    { name: 'impossible date', value: '2027-02-30' },
    { name: 'emoji', value: '\u{1F4B8}\u{1F4B8}' },
  ];

  // Values that are legitimately valid for a field (a free-text customer reference may well
  // read like a date); every other combination must be refused.
  const accepted: Record<string, string[]> = {
    customerRef: ['year 275760', 'impossible date', 'emoji'],
    narrative: ['year 275760', 'impossible date'],
    backfill: ['boolean'],
  };

  const mandateFields = Object.keys(validMandate()).concat([
    'entity',
    'localTime',
    'trialEnd',
    'end',
    'backfill',
    'instalments',
    'totalAmount',
    'gateway',
    'settleMode',
    'settlePercent',
  ]);

  it('POST /v1/mandates: every field x every bad value is a 400 naming the field, and writes nothing', async () => {
    const before = await rowCounts();
    let tried = 0;
    for (const field of mandateFields) {
      for (const bad of badValues) {
        if (accepted[field]?.includes(bad.name)) continue;
        const body = { ...validMandate(), [field]: bad.value } as Record<string, unknown>;
        const res = await send('POST', '/v1/mandates', JSON.stringify(body));
        tried++;
        const label = `${field} = ${bad.name}: ${res.status} ${res.text.slice(0, 200)}`;
        expect.soft(res.status, label).toBeGreaterThanOrEqual(400);
        expect.soft(res.status, label).toBeLessThan(500);
        expect.soft(res.body.error?.code, label).toBe('validation_error');
        expect.soft(String(res.body.error?.field ?? ''), label).toMatch(new RegExp(`^(${field}|body)`));
        for (const p of PANS) expect.soft(res.text, label).not.toContain(p);
      }
    }
    // the credential's own fields
    for (const [cred, field] of [
      [{ link: 'javascript:alert(1)' }, 'credential'],
      [{ link: 'file:///etc/passwd' }, 'credential'],
      [{ link: 'https://evil.example.com/payments/recurring/x' }, 'credential.link'],
      [{ cardNumber: PAN, expiryMonth: 1, expiryYear: 2020 }, 'credential'],
      [{ cardNumber: PAN, expiryMonth: 13, expiryYear: 2030 }, 'credential'],
      [{ cardNumber: PAN, expiryMonth: 12, expiryYear: 2030, cardHolderName: PAN }, 'credential'],
      [{ cardNumber: `${PAN}\u0000`, expiryMonth: 12, expiryYear: 2030 }, 'credential'],
      [{ cardNumber: null, expiryMonth: 12, expiryYear: 2030 }, 'credential'],
    ] as const) {
      const res = await send('POST', '/v1/mandates', JSON.stringify({ ...validMandate(), credential: cred }));
      tried++;
      const label = `credential ${JSON.stringify(cred).slice(0, 60)}: ${res.status} ${res.text.slice(0, 200)}`;
      expect.soft(res.status, label).toBe(400);
      expect.soft(String(res.body.error?.field), label).toMatch(new RegExp(`^${field.replace('.', '\\.')}`));
      for (const p of PANS) expect.soft(res.text, label).not.toContain(p);
    }
    expect(await rowCounts()).toEqual(before);
    expect(tried).toBeGreaterThan(300);
  });

  it('the 684-charge case: start null, 0 or true is refused, and a start in 2000 is out of range', async () => {
    for (const start of [
      null,
      0,
      true,
      '1970-01-01T00:00:00Z',
      '1999-12-31T23:59:59Z',
      '2100-01-02T00:00:00Z',
    ]) {
      const res = await send('POST', '/v1/mandates', JSON.stringify({ ...validMandate(), start }));
      expect(res.status, JSON.stringify(start)).toBe(400);
      expect(res.body.error.field).toBe('start');
    }
  });

  it('other bodies: runs, cancel, queued charges, credentials and payment actions', async () => {
    const created = await send(
      'POST',
      '/v1/mandates',
      JSON.stringify({
        ...validMandate(),
        customerRef: 'hostile-base',
        intent: 'unscheduled',
        interval: undefined,
        start: undefined,
      }),
    );
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as number;
    const before = await rowCounts();
    // Each body with every other field valid, so the refusal is the bad field's.
    const cases: { path: string; fields: string[]; base?: Record<string, unknown> }[] = [
      { path: '/v1/runs', fields: ['asOf', 'dryRun', 'allowFuture', 'mandateId', 'limit'] },
      { path: `/v1/mandates/${id}/cancel`, fields: ['atPeriodEnd'] },
      { path: `/v1/mandates/${id}/charges`, fields: ['amount'] },
      { path: `/v1/mandates/${id}/credential`, fields: ['link', 'cardNumber'] },
      { path: '/v1/charges/1/partial-settle', fields: ['amount', 'reference'], base: { amount: 100 } },
      { path: '/v1/charges/1/partial-refund', fields: ['amount', 'reference'], base: { amount: 100 } },
    ];
    for (const c of cases) {
      for (const field of c.fields) {
        for (const bad of badValues) {
          if (['dryRun', 'allowFuture', 'atPeriodEnd'].includes(field) && bad.name === 'boolean') continue;
          // a partial action's own reference: letters, digits and dashes (a date string passes)
          if (field === 'reference' && bad.name === 'impossible date') continue;
          const res = await send('POST', c.path, JSON.stringify({ ...c.base, [field]: bad.value }));
          const label = `${c.path} ${field} = ${bad.name}: ${res.status} ${res.text.slice(0, 200)}`;
          expect.soft(res.status, label).toBeGreaterThanOrEqual(400);
          expect.soft(res.status, label).toBeLessThan(500);
          for (const p of PANS) expect.soft(res.text, label).not.toContain(p);
          if (res.status === 400)
            expect
              .soft(String(res.body.error?.field ?? ''), label)
              .toMatch(new RegExp(`^(${field}|body|credential)`));
        }
      }
    }
    expect(await rowCounts()).toEqual(before);
  });

  it('query parameters and ids: NUL, control characters, unknown values and huge numbers are 400s', async () => {
    const cases = [
      '/v1/mandates?customerRef=a%00b',
      '/v1/mandates?customerRef=a%07b',
      `/v1/mandates?customerRef=${PAN}`,
      `/v1/charges?q=${PAN}`,
      '/v1/charges?q=a%00b',
      `/v1/mandates?q=${'x'.repeat(201)}`,
      '/v1/events?before=0',
      '/v1/mandates?status=bogus',
      '/v1/mandates?status=%00',
      '/v1/mandates?limit=99999999999999999999',
      '/v1/mandates?limit=-1',
      '/v1/mandates?after=1e400',
      '/v1/charges?state=bogus',
      '/v1/charges?state=a%00',
      '/v1/charges?mandateId=%00',
      '/v1/runs?limit=abc',
      '/v1/runs?before=0',
      '/v1/mandates/%00',
      '/v1/mandates/99999999999999999999',
      '/v1/charges/-1',
      '/v1/runs/1.5',
      '/v1/mandates?customerRef=a&customerRef=b',
    ];
    for (const path of cases) {
      const res = await send('GET', path);
      expect.soft(res.status, `${path}: ${res.text}`).toBe(400);
      expect.soft(res.body.error?.code, path).toBe('validation_error');
      expect.soft(res.body.error?.field, path).toBeTruthy();
      for (const p of PANS) expect(res.text, path).not.toContain(p);
    }
  });

  it('malformed JSON, deep nesting (with an Idempotency-Key), a wrong content type and a huge body are 4xx in the same envelope', async () => {
    const deepText = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    for (const [raw, headers, status] of [
      ['{"customerRef": ', {}, 400],
      [deepText, {}, 400],
      [deepText, { 'idempotency-key': 'deep-1' }, 400],
      [`${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`, { 'idempotency-key': 'deep-2' }, 400],
      ['{"a":"\\u0000"}', {}, 400],
      [JSON.stringify({ ...validMandate(), pad: 'x'.repeat(2 * 1024 * 1024) }), {}, 413],
    ] as const) {
      const res = await send('POST', '/v1/mandates', raw, headers);
      expect.soft(res.status, `${raw.slice(0, 30)}: ${res.text.slice(0, 200)}`).toBe(status);
      expect.soft(res.body.error?.code).toBeTruthy();
    }
    const typed = await request(`${url}/v1/mandates`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'text/plain' },
      body: 'hello',
    });
    expect(typed.statusCode).toBe(415);
    expect((await typed.body.json()) as Json).toMatchObject({
      error: { code: 'unsupported_media_type', field: 'content-type', message: expect.any(String) },
    });
    const malformed = await send('POST', '/v1/mandates', '{"customerRef": ');
    expect(malformed.body.error).toMatchObject({ code: 'validation_error', field: 'body' });
    // every filter the API documents is accepted, and checked
    expect((await send('GET', '/v1/charges?code=51')).status).toBe(200);
    expect((await send('GET', '/v1/charges?code=5%201')).body.error.field).toBe('code');
  });

  it('a fuzzed mandate body is never a 500, and anything accepted is a valid mandate', async () => {
    const field = fc.constantFrom(...mandateFields);
    const anyValue = fc.oneof(
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.double(),
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.constantFrom(PAN, '2027-02-30', '1999-01-01', 'Europe/London', '1 month', '0 day', 'GBP', 'JPY'),
      fc.jsonValue({ maxDepth: 4 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.dictionary(field, anyValue, { maxKeys: 4 }), async (patch) => {
        const body = { ...validMandate(), customerRef: 'fuzz', ...patch };
        const res = await send('POST', '/v1/mandates', JSON.stringify(body));
        expect(res.status, res.text.slice(0, 300)).not.toBe(500);
        expect([201, 400]).toContain(res.status);
        for (const p of PANS) expect(res.text).not.toContain(p);
        if (res.status === 201) {
          expect(res.body.amount).toBeLessThanOrEqual(100_000 * 100);
          const start = Date.parse(res.body.nextDueAt ?? res.body.createdAt);
          expect(start).toBeGreaterThanOrEqual(Date.parse('2000-01-01T00:00:00Z'));
        }
      }),
      { numRuns: 300, seed: 4242 },
    );
  });

  it('no card number or token reached the trace-level log of a billing story', async () => {
    // A card mandate bills through migrateRecurring, is refused once, and retried.
    const created = await send(
      'POST',
      '/v1/mandates',
      JSON.stringify({
        ...validMandate(),
        customerRef: 'hostile-story',
        intent: 'unscheduled',
        interval: undefined,
        start: undefined,
        credential: { cardNumber: PANS[1], expiryMonth: 12, expiryYear: 2030, cardHolderName: 'A Holder' },
      }),
    );
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as number;
    expect((await send('POST', `/v1/mandates/${id}/charges`, JSON.stringify({ amount: 1234 }))).status).toBe(
      201,
    );
    w.sandbox.script({ match: { any: true }, outcomes: [{ type: 'refuse', code: '51' }] });
    const first = await runBilling(app, { asOf: NOW, trigger: 'test' });
    expect(first.counts.refused).toBe(1);
    const later = new Date(NOW.getTime() + 3 * 86_400_000);
    await runBilling(app, { asOf: later, trigger: 'test' });
    const all = logged.join('');
    expect(all.length).toBeGreaterThan(0);
    for (const p of PANS) expect(all).not.toContain(p);
    expect(all).not.toContain(TOKEN);
  });
});

describe('hostile legacy rows', () => {
  it('a fuzzed legacy row is accepted or rejected with a field, never thrown, never echoing a card number', () => {
    const base = {
      legacy_id: 'L-1',
      customer_ref: 'c-1',
      intent: 'subscription',
      amount: '1000',
      currency: 'GBP',
      interval: '1 month',
      next_charge_at: '2026-12-01T09:00:00Z',
      timezone: 'Europe/London',
      entity: 'MindPalaceLtd',
      narrative: 'Mind Palace Ltd',
      instrument_type: 'card/plain',
      card_number: '4444333322221111',
      expiry_month: '12',
      expiry_year: '2030',
    };
    const keys = [
      ...Object.keys(base),
      'card_holder_name',
      'scheme_reference',
      'token_href',
      'dpan',
      'extra',
    ];
    let n = 0;
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.constantFrom(...keys),
          fc.oneof(
            fc.string(),
            fc.string({ unit: 'binary' }),
            fc.constantFrom(PAN, '', '\u0000', '5188247082276544'),
          ),
          { maxKeys: 3 },
        ),
        (patch) => {
          const validate = createRowValidator({ now: NOW, canStoreCardData: true });
          const r = validate(1, { ...base, legacy_id: `L-${n++}`, ...patch });
          const text = JSON.stringify(r.ok ? { ok: true } : r);
          for (const p of PANS) expect(text).not.toContain(p);
          if (!r.ok) expect(r.errors.length).toBeGreaterThan(0);
        },
      ),
      { numRuns: 500, seed: 77 },
    );
  });

  it('imports nothing of a card number shifted into the amount column', () => {
    const validate = createRowValidator({ now: NOW, canStoreCardData: true });
    const r = validate(1, {
      legacy_id: 'L-shift',
      customer_ref: 'c-1',
      intent: 'subscription',
      amount: '5188247082276544',
      currency: 'GBP',
      interval: '1 month',
      next_charge_at: '2026-12-01T09:00:00Z',
      timezone: 'UTC',
      entity: 'MindPalaceLtd',
      narrative: 'Mind Palace Ltd',
      instrument_type: 'card/token',
      token_href: 'https://try.access.worldpay.com/tokens/abc',
    });
    expect(r.ok).toBe(false);
    expect(JSON.stringify(r)).not.toContain('5188247082276544');
  });
});
