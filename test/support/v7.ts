/**
 * Both Worldpay card APIs as a test parameter. A payer is a customer's card as one API knows
 * it: v6, a verification's `payments:recurringAuthorize` link; v7, a first payment made at the
 * sandbox (`/_sandbox/v7/first-payments`: a token, the card, its network token and the scheme
 * reference belong together there) whose credential row is stored with api = 'v7' and the
 * first payment's scheme reference. Tests create mandates through `createMandate` and check
 * the sandbox ledger through `authorizations`, whichever API the payer speaks.
 */
import { sql } from 'drizzle-orm';
import { request } from 'undici';
import type { App } from '../../src/app.ts';
import { createMandate } from '../../src/billing/mandates/index.ts';
import type { CredentialInput } from '../../src/billing/mandates/schemas.ts';
import type { MandateView } from '../../src/billing/mandates/views.ts';
import { encryptSecret } from '../../src/domain/card-crypto.ts';
import type { LedgerEntry, ScriptMatch } from '../../src/sandbox/worldpay/types.ts';
import type { World } from './world.ts';

export type Api = 'v6' | 'v7';
export const APIS: Api[] = ['v6', 'v7'];
export type V7Instrument = 'card/token' | 'card/plain' | 'card/networkToken';

export interface Payer {
  api: Api;
  /** What `createMandate` is given (v7: the card as a legacy credential, made v7 by `attach`). */
  credential: CredentialInput;
  /** Script rules for this payer's charges. */
  match: ScriptMatch;
  /** v7: the card, the instrument charged, and the first payment's scheme reference. */
  cardNumber?: string;
  instrument?: V7Instrument;
  schemeReference?: string;
  tokenHref?: string;
  networkToken?: { number: string; expiryMonth: number; expiryYear: number };
}

let seq = 0;

/** A Luhn-valid Visa number of its own for each call. */
export function cardNumber(): string {
  seq += 1;
  const body = `4${String(Date.now() % 1e9).padStart(9, '0')}${String(seq).padStart(5, '0')}`;
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return body + String((10 - (sum % 10)) % 10);
}

/** A first, customer-initiated payment at the sandbox, as a merchant's checkout would make it. */
export async function firstPayment(
  w: World,
  body: {
    cardNumber: string;
    expiryMonth: number;
    expiryYear: number;
    cardHolderName?: string;
    networkToken?: true;
  },
): Promise<{
  tokenHref: string;
  schemeReference: string;
  lastFour: string;
  networkToken?: { number: string; expiryMonth: number; expiryYear: number };
}> {
  const res = await request(`${w.sandbox.url}/_sandbox/v7/first-payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const out = (await res.body.json()) as Record<string, unknown>;
  if (res.statusCode !== 201) throw new Error(`first payment: HTTP ${res.statusCode} ${JSON.stringify(out)}`);
  return out as never;
}

/** A payer of this API (v7: a card/plain credential unless another instrument is asked for). */
export async function payer(
  w: World,
  api: Api,
  opts: { instrument?: V7Instrument; expiryMonth?: number; expiryYear?: number; holder?: string } = {},
): Promise<Payer> {
  if (api === 'v6') {
    const v = await w.verify();
    return { api, credential: { link: v.href }, match: { chainId: v.chainId } };
  }
  const number = cardNumber();
  const expiryMonth = opts.expiryMonth ?? 12;
  const expiryYear = opts.expiryYear ?? 2035;
  const instrument = opts.instrument ?? 'card/plain';
  const first = await firstPayment(w, {
    cardNumber: number,
    expiryMonth,
    expiryYear,
    ...(opts.holder ? { cardHolderName: opts.holder } : {}),
    ...(instrument === 'card/networkToken' ? { networkToken: true as const } : {}),
  });
  // A network token is stored over the card's row by `attach` (the sandbox's token numbers are
  // not Luhn-valid, which a legacy DPAN must be).
  const credential: CredentialInput =
    instrument === 'card/token'
      ? { tokenHref: first.tokenHref }
      : {
          cardNumber: number,
          expiryMonth,
          expiryYear,
          ...(opts.holder ? { cardHolderName: opts.holder } : {}),
        };
  return {
    api,
    credential,
    match: { cardNumber: number },
    cardNumber: number,
    instrument,
    schemeReference: first.schemeReference,
    tokenHref: first.tokenHref,
    ...(first.networkToken ? { networkToken: first.networkToken } : {}),
  };
}

/**
 * Make a mandate's credential the payer's v7 one: the row `createMandate` stored (its card
 * encrypted as legacy cards are) becomes api = 'v7' with the first payment's scheme reference,
 * byte for byte. A v6 payer's mandate is left as it is.
 */
export async function attach(w: World, mandateId: number, p: Payer): Promise<void> {
  if (p.api === 'v6') return;
  if (p.instrument === 'card/networkToken') {
    const t = p.networkToken!;
    await w.t.database.rows(
      sql`update credentials set encrypted_pan = ${encryptSecret(t.number, w.config.encryptionKey!)},
            expiry_month = ${t.expiryMonth}, expiry_year = ${t.expiryYear}
          where id = (select credential_id from mandates where id = ${mandateId})`,
    );
  }
  await w.t.database.rows(
    sql`update credentials set api = 'v7', scheme_reference = ${p.schemeReference!},
          instrument_type = ${p.instrument!}
        where id = (select credential_id from mandates where id = ${mandateId})`,
  );
}

/** `createMandate` with the payer's credential, attached as the payer's API wants it. */
export async function mandateFor(
  app: App,
  w: World,
  p: Payer,
  input: Record<string, unknown>,
): Promise<MandateView> {
  const m = await createMandate(app, { ...input, credential: p.credential });
  await attach(w, m.id, p);
  return m;
}

/** The sandbox's ledger entries of a mandate's charges (their references are `rb-<mandate>-...`). */
export function ledgerOf(w: World, mandateId: number, op?: LedgerEntry['op']): LedgerEntry[] {
  const prefix = `rb-${mandateId}-`;
  return w.sandbox
    .ledger()
    .filter((e) => e.transactionReference?.startsWith(prefix) && (op === undefined || e.op === op));
}

/** The authorizations the sandbox took (or refused) for a mandate's charges, in order. */
export const authorizations = (w: World, mandateId: number): LedgerEntry[] =>
  ledgerOf(w, mandateId, 'authorize').filter((e) => e.outcome === 'authorized' || e.outcome === 'refused');
