import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { decryptSecret, fingerprint } from '../../src/domain/card-crypto.ts';
import { adminRoutes } from '../../src/http/routes/index.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startWorld, TEST_KEY, type World } from '../support/world.ts';

/**
 * Card Payments v7 credentials through the admin API: each shape stored as it must be charged
 * (api v7, the scheme reference byte for byte, card data encrypted and kept), each refusal
 * naming its field with nothing written, and no card number in any answer.
 */
const T = new Date('2027-03-01T09:00:00Z');
const TOKEN = 'tok-v7-0123456789';
const PAN = '4444333322221111';
const NETWORK_TOKEN = '5555555555554444';
const OTHER_PAN = '4929301661318602';
/** Worldpay's own example ends in two spaces: they are part of it. */
const REF = 'MCCOLXT1C0104  ';
const KEY = Buffer.from(TEST_KEY, 'hex');

type Json = ReturnType<typeof JSON.parse>;

describe('v7 credentials through the API', () => {
  let w: World;
  let app: App;
  let server: AdminServer;
  let url: string;
  let n = 0;
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: TOKEN } });
    app = await w.app(T);
    server = await createAdminServer({
      ctx: app,
      runner: createRunner(app),
      metrics: createMetrics(w.t.database),
    });
    url = await server.listen('127.0.0.1:0');
  });
  afterAll(async () => {
    await server?.close();
    await w?.close();
  });

  async function call(
    method: string,
    path: string,
    body: unknown,
  ): Promise<{ status: number; body: Json; text: string }> {
    const res = await request(`${url}${path}`, {
      method: method as 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: JSON.parse(text), text };
  }
  const mandate = (credential: unknown, over: Record<string, unknown> = {}) => ({
    customerRef: `v7-${++n}`,
    intent: 'subscription',
    amount: 1999,
    currency: 'GBP',
    narrative: 'Acme v7',
    interval: '1 month',
    credential,
    ...over,
  });
  const credentialRow = async (id: number) =>
    (
      await w.t.database.rows<Record<string, unknown>>(
        sql`select api, instrument_type, token_href, scheme_reference, encrypted_pan, fingerprint, brand, bin,
              last_four, expiry_month, expiry_year, card_holder_name, current_link_id, octet_length(scheme_reference) as ref_bytes
            from credentials where id = ${id}`,
      )
    )[0]!;
  const counts = async () =>
    (
      await w.t.database.rows<{ c: number; m: number; cu: number }>(
        sql`select (select count(*)::int from credentials) as c, (select count(*)::int from mandates) as m,
              (select count(*)::int from customers) as cu`,
      )
    )[0];

  it('stores a card with its scheme reference byte for byte, encrypted and fingerprinted, and answers without its number', async () => {
    const res = await call(
      'POST',
      '/v1/mandates',
      mandate({
        api: 'v7',
        schemeReference: REF,
        card: { number: PAN, expiryMonth: 12, expiryYear: 2030, holderName: 'Ada Lovelace' },
      }),
    );
    expect(res.status, res.text).toBe(201);
    expect(res.text).not.toContain(PAN);
    expect(res.body.credential).toMatchObject({
      api: 'v7',
      instrumentType: 'card/plain',
      schemeReference: REF,
      brand: 'visa',
      lastFour: '1111',
      expiry: '12/2030',
      currentLink: null,
      holdsCardData: true,
    });
    const row = await credentialRow(res.body.credential.id);
    expect(row).toMatchObject({
      api: 'v7',
      instrument_type: 'card/plain',
      scheme_reference: REF,
      ref_bytes: 15,
      bin: '444433',
      last_four: '1111',
      brand: 'visa',
      expiry_month: 12,
      expiry_year: 2030,
      card_holder_name: 'Ada Lovelace',
      current_link_id: null,
      token_href: null,
      fingerprint: `v7pan:${fingerprint(PAN, KEY)}`,
    });
    expect(row.encrypted_pan).not.toContain(PAN);
    expect(decryptSecret(row.encrypted_pan as string, [KEY])).toBe(PAN);
    // GET shows the same, and the list too
    const shown = await request(`${url}/v1/mandates/${res.body.id}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const shownText = await shown.body.text();
    expect(shownText).not.toContain(PAN);
    expect(JSON.parse(shownText).credential).toMatchObject({ api: 'v7', schemeReference: REF });
  });

  it('stores a network token (card/networkToken) and a token with or without a scheme reference', async () => {
    const nt = await call(
      'POST',
      '/v1/mandates',
      mandate({
        api: 'v7',
        schemeReference: 'NT-REF-1 ',
        networkToken: { number: NETWORK_TOKEN, expiryMonth: 3, expiryYear: 2031 },
      }),
    );
    expect(nt.status, nt.text).toBe(201);
    expect(nt.text).not.toContain(NETWORK_TOKEN);
    expect(nt.body.credential).toMatchObject({
      api: 'v7',
      instrumentType: 'card/networkToken',
      brand: 'mastercard',
      lastFour: '4444',
      expiry: '03/2031',
    });
    const ntRow = await credentialRow(nt.body.credential.id);
    expect(ntRow).toMatchObject({
      scheme_reference: 'NT-REF-1 ',
      fingerprint: `v7ntok:${fingerprint(NETWORK_TOKEN, KEY)}`,
    });
    expect(decryptSecret(ntRow.encrypted_pan as string, [KEY])).toBe(NETWORK_TOKEN);

    const href = `${w.sandbox.url}/tokens/v7-token-1`;
    const tok = await call('POST', '/v1/mandates', mandate({ api: 'v7', tokenHref: href }));
    expect(tok.status, tok.text).toBe(201);
    expect(tok.body.credential).toMatchObject({
      api: 'v7',
      instrumentType: 'card/token',
      schemeReference: null,
      holdsCardData: false,
    });
    expect(await credentialRow(tok.body.credential.id)).toMatchObject({
      token_href: href,
      scheme_reference: null,
    });
    const withRef = await call(
      'POST',
      '/v1/mandates',
      mandate({ api: 'v7', schemeReference: 'TOKREF', tokenHref: `${w.sandbox.url}/tokens/v7-token-2` }),
    );
    expect(withRef.status, withRef.text).toBe(201);
    expect(withRef.body.credential).toMatchObject({
      instrumentType: 'card/token',
      schemeReference: 'TOKREF',
    });
  });

  it('refuses each bad v7 credential with a 400 naming its field, writing nothing and repeating no number', async () => {
    const before = await counts();
    const card = (over: Record<string, unknown> = {}) => ({
      number: PAN,
      expiryMonth: 12,
      expiryYear: 2030,
      ...over,
    });
    const cases: [credential: Record<string, unknown>, field: string, message: RegExp][] = [
      [{ api: 'v7', card: card() }, 'credential.schemeReference', /is required for a card/],
      [
        { api: 'v7', networkToken: { number: NETWORK_TOKEN, expiryMonth: 1, expiryYear: 2030 } },
        'credential.schemeReference',
        /is required for a network token/,
      ],
      [
        { api: 'v7', schemeReference: REF, card: card({ number: '4444333322221112' }) },
        'credential.card.number',
        /Luhn/,
      ],
      [
        {
          api: 'v7',
          schemeReference: REF,
          networkToken: { number: '5555555555554445', expiryMonth: 1, expiryYear: 2030 },
        },
        'credential.networkToken.number',
        /Luhn/,
      ],
      [
        { api: 'v7', schemeReference: REF, card: card({ number: '4444-3333' }) },
        'credential.card.number',
        /12-19 digits/,
      ],
      [
        { api: 'v7', schemeReference: REF, card: card({ expiryMonth: 2, expiryYear: 2027 }) },
        'credential.card.expiryYear',
        /expired at the end of 02\/2027/,
      ],
      [
        {
          api: 'v7',
          schemeReference: REF,
          networkToken: { number: NETWORK_TOKEN, expiryMonth: 1, expiryYear: 2027 },
        },
        'credential.networkToken.expiryYear',
        /network token expired/,
      ],
      [
        { api: 'v7', schemeReference: REF, card: card({ expiryMonth: 13 }) },
        'credential.card.expiryMonth',
        /12/,
      ],
      [{ api: 'v7', schemeReference: REF, card: card({ cvc: '123' }) }, 'credential.card', /cvc/],
      [
        { api: 'v7', schemeReference: REF, card: card({ holderName: `Mr ${OTHER_PAN}` }) },
        'credential.card.holderName',
        /card number/,
      ],
      [
        { api: 'v7', tokenHref: 'https://example.com/tokens/x' },
        'credential.tokenHref',
        /configured Worldpay origin/,
      ],
      [{ api: 'v7', schemeReference: '', card: card() }, 'credential.schemeReference', /empty/],
      [{ api: 'v7', schemeReference: '   ', card: card() }, 'credential.schemeReference', /only spaces/],
      [
        { api: 'v7', schemeReference: 'x'.repeat(256), card: card() },
        'credential.schemeReference',
        /at most 255/,
      ],
      [
        { api: 'v7', schemeReference: 'ab\tc', card: card() },
        'credential.schemeReference',
        /control characters/,
      ],
      [
        { api: 'v7', schemeReference: `ref ${PAN}`, card: card() },
        'credential.schemeReference',
        /card number/,
      ],
      [{ api: 'v7', schemeReference: OTHER_PAN, card: card() }, 'credential.schemeReference', /card number/],
      [{ api: 'v7', schemeReference: REF }, 'credential', /exactly one of tokenHref, card or networkToken/],
      [
        { api: 'v7', schemeReference: REF, card: card(), tokenHref: `${w.sandbox.url}/tokens/x` },
        'credential',
        /exactly one/,
      ],
    ];
    for (const [credential, field, message] of cases) {
      const res = await call('POST', '/v1/mandates', mandate(credential));
      expect(res.status, `${field}: ${res.text}`).toBe(400);
      expect(res.body.error.field, res.text).toBe(field);
      expect(res.body.error.message).toMatch(message);
      for (const number of [PAN, NETWORK_TOKEN, OTHER_PAN, '4444333322221112', '5555555555554445'])
        expect(res.text).not.toContain(number);
    }
    // v7 is Worldpay's: a Liquido mandate cannot have one
    const liquido = await call(
      'POST',
      '/v1/mandates',
      mandate({ api: 'v7', schemeReference: REF, card: card() }, { gateway: 'liquido' }),
    );
    expect(liquido.status).toBe(400);
    expect(liquido.body.error.field).toBe('credential');
    expect(await counts()).toEqual(before);
  });

  it('a Visa transaction identifier (15 digits, Luhn-valid) is a scheme reference, not a card number', async () => {
    const visaRef = '123456789012347';
    const res = await call(
      'POST',
      '/v1/mandates',
      mandate({
        api: 'v7',
        schemeReference: visaRef,
        card: { number: OTHER_PAN, expiryMonth: 6, expiryYear: 2029 },
      }),
    );
    expect(res.status, res.text).toBe(201);
    expect(res.body.credential.schemeReference).toBe(visaRef);
  });

  it('attaches a v7 credential to a v6 mandate, shares one credential per card, and refuses a second reference for it', async () => {
    const v = await w.verify();
    const created = await call(
      'POST',
      '/v1/mandates',
      mandate({ link: v.href }, { customerRef: 'v7-attach' }),
    );
    expect(created.status, created.text).toBe(201);
    expect(created.body.credential.api).toBe('v6');
    const id = created.body.id as number;
    const v7card = {
      api: 'v7',
      schemeReference: REF,
      card: { number: OTHER_PAN, expiryMonth: 6, expiryYear: 2029 },
    };

    const missing = await call('POST', `/v1/mandates/${id}/credential`, { api: 'v7', card: v7card.card });
    expect(missing.status).toBe(400);
    expect(missing.body.error.field).toBe('credential.schemeReference');
    expect(missing.text).not.toContain(OTHER_PAN);

    const attached = await call('POST', `/v1/mandates/${id}/credential`, v7card);
    expect(attached.status, attached.text).toBe(200);
    expect(attached.text).not.toContain(OTHER_PAN);
    expect(attached.body.credential).toMatchObject({
      api: 'v7',
      instrumentType: 'card/plain',
      schemeReference: REF,
      lastFour: '8602',
      currentLink: null,
    });
    // the event's mandate shows the credential as the API does, scheme reference included
    const event = await w.t.database.rows<{ data: { credential: Record<string, unknown> } }>(
      sql`select data from events where type = 'credential.updated' and mandate_id = ${id}`,
    );
    expect(event.map((e) => e.data.credential)).toEqual([attached.body.credential]);

    // a second mandate of the customer on the same card and reference shares the credential
    const second = await call('POST', '/v1/mandates', mandate(v7card, { customerRef: 'v7-attach' }));
    expect(second.status, second.text).toBe(201);
    expect(second.body.credential.id).toBe(attached.body.credential.id);
    // another reference for the same card is not dropped silently
    const before = await counts();
    const other = await call(
      'POST',
      '/v1/mandates',
      mandate({ ...v7card, schemeReference: 'OTHER' }, { customerRef: 'v7-attach' }),
    );
    expect(other.status, other.text).toBe(409);
    expect(other.body.error.message).toMatch(/already holds this card\/plain with another scheme reference/);
    expect(other.text).not.toContain(OTHER_PAN);
    expect(await counts()).toEqual(before);
    // the same card through v6 is another credential (the APIs charge it differently)
    const v6 = await call(
      'POST',
      '/v1/mandates',
      mandate({ cardNumber: OTHER_PAN, expiryMonth: 6, expiryYear: 2029 }, { customerRef: 'v7-attach' }),
    );
    expect(v6.status, v6.text).toBe(201);
    expect(v6.body.credential).toMatchObject({ api: 'v6', instrumentType: 'card/plain' });
    expect(v6.body.credential.id).not.toBe(attached.body.credential.id);
  });

  it("takes what the sandbox's first payment answered: its token href and its scheme reference, byte for byte", async () => {
    const res = await request(`${w.sandbox.url}/_sandbox/v7/first-payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cardNumber: '5555555555554444', expiryMonth: 9, expiryYear: 2031 }),
    });
    const first = (await res.body.json()) as { tokenHref: string; schemeReference: string };
    expect(res.statusCode).toBe(201);
    const created = await call(
      'POST',
      '/v1/mandates',
      mandate({ api: 'v7', schemeReference: first.schemeReference, tokenHref: first.tokenHref }),
    );
    expect(created.status, created.text).toBe(201);
    expect(created.body.credential).toMatchObject({
      api: 'v7',
      instrumentType: 'card/token',
      schemeReference: first.schemeReference,
    });
    // a Mastercard first payment's reference ends in spaces: kept
    expect(first.schemeReference).toMatch(/ $/);
  });

  it('refuses a v7 credential for a Liquido mandate, naming credential.api', async () => {
    const created = await call(
      'POST',
      '/v1/mandates',
      mandate({ liquidoCardId: 'lq-card-1' }, { gateway: 'liquido', currency: 'BRL' }),
    );
    expect(created.status, created.text).toBe(201);
    const res = await call('POST', `/v1/mandates/${created.body.id}/credential`, {
      api: 'v7',
      tokenHref: `${w.sandbox.url}/tokens/lq`,
    });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('credential.api');
  });

  it('the OpenAPI document offers the v7 shapes on both routes', async () => {
    const routes = adminRoutes(app, createRunner(app));
    const create = routes.find((r) => r.method === 'POST' && r.url === '/v1/mandates')!;
    const attach = routes.find((r) => r.method === 'POST' && r.url === '/v1/mandates/:id/credential')!;
    for (const r of [create, attach]) expect(JSON.stringify(r.examples)).toContain('"api":"v7"');
  });
});
