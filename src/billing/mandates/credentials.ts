/** Credentials: what can be checked before anything is stored, and one per customer and card. */
import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Tx } from '../../db/client.ts';
import { cardBrand, luhnValid } from '../../domain/card.ts';
import { encryptSecret, fingerprint, v7Fingerprint } from '../../domain/card-crypto.ts';
import { ConflictError, ValidationError } from '../../errors.ts';
import type { BillingContext } from '../context.ts';
import { writeAudit } from '../sql/transitions.ts';
import type { CredentialInput, V7CredentialInput } from './schemas.ts';

/** A v7 credential input, told apart from the v6 and Liquido shapes by its `api`. */
export function isV7(c: CredentialInput): c is V7CredentialInput {
  return 'api' in c && c.api === 'v7';
}

/** The columns of a v7 credential, checked; card data encrypted. */
function v7Columns(
  c: V7CredentialInput,
  key: Buffer | undefined,
): { cols: Record<string, unknown>; fp: string } {
  const common = { api: 'v7', scheme_reference: c.schemeReference ?? null };
  if (c.tokenHref !== undefined)
    return {
      cols: { ...common, instrument_type: 'card/token', token_href: c.tokenHref },
      fp: v7Fingerprint('token', c.tokenHref, key),
    };
  const [data, field, kind] = c.card
    ? ([c.card, 'credential.card.number', 'card'] as const)
    : ([c.networkToken!, 'credential.networkToken.number', 'networkToken'] as const);
  if (!luhnValid(data.number)) throw new ValidationError(field, 'fails the Luhn check');
  if (!key) throw new ValidationError(field, 'REBILL_ENCRYPTION_KEY is not set: card data cannot be stored');
  return {
    cols: {
      ...common,
      instrument_type: kind === 'card' ? 'card/plain' : 'card/networkToken',
      encrypted_pan: encryptSecret(data.number, key),
      brand: cardBrand(data.number),
      bin: data.number.slice(0, 6),
      last_four: data.number.slice(-4),
      expiry_month: data.expiryMonth,
      expiry_year: data.expiryYear,
      card_holder_name: c.card?.holderName ?? null,
    },
    fp: v7Fingerprint(kind, data.number, key),
  };
}

/** Create (or find) the credential for a customer; one per card/link, shared by its mandates. */
export async function upsertCredential(
  ctx: BillingContext,
  tx: Tx,
  customerId: number,
  gateway: string,
  c: CredentialInput,
): Promise<number> {
  const key = ctx.config.encryptionKey;
  const hash = (v: string) => createHash('sha256').update(v).digest('hex');
  let cols: Record<string, unknown>;
  let fp: string;
  let linkHref: string | null = null;
  if (isV7(c)) {
    if (gateway !== 'worldpay')
      throw new ValidationError(
        'credential.api',
        `Card Payments v7 is Worldpay's; this mandate's gateway is ${gateway}`,
      );
    ({ cols, fp } = v7Columns(c, key));
  } else if ('link' in c) {
    cols = { instrument_type: 'link' };
    fp = `link:${hash(c.link)}`;
    linkHref = c.link;
  } else if ('tokenHref' in c) {
    cols = { instrument_type: 'card/token', token_href: c.tokenHref };
    fp = `token:${hash(c.tokenHref)}`;
  } else if ('liquidoCardId' in c) {
    cols = { instrument_type: 'liquido/cardId', vaulted_card_id: c.liquidoCardId };
    fp = `liquido:${hash(c.liquidoCardId)}`;
  } else {
    const pan = 'cardNumber' in c ? c.cardNumber : c.dpan;
    const field = 'cardNumber' in c ? 'credential.cardNumber' : 'credential.dpan';
    if (!luhnValid(pan)) throw new ValidationError(field, 'fails the Luhn check');
    if (!key)
      throw new ValidationError(field, 'REBILL_ENCRYPTION_KEY is not set: card data cannot be stored');
    cols = {
      instrument_type: 'cardNumber' in c ? 'card/plain' : 'card/networkToken+applepay',
      encrypted_pan: encryptSecret(pan, key),
      brand: cardBrand(pan),
      bin: pan.slice(0, 6),
      last_four: pan.slice(-4),
      expiry_month: c.expiryMonth,
      expiry_year: c.expiryYear,
      card_holder_name: c.cardHolderName ?? null,
    };
    fp = `pan:${fingerprint(pan, key)}`;
  }
  const existing = await ctx.database.rows<{ id: number; status: string; scheme_reference: string | null }>(
    sql`select id, status, scheme_reference from credentials where customer_id = ${customerId} and fingerprint = ${fp}`,
    tx,
  );
  if (existing[0]) {
    const id = existing[0].id;
    if (existing[0].status !== 'active') {
      throw new ConflictError(
        `credential ${id} for this card is ${existing[0].status}; attach a new card instead`,
      );
    }
    // One v7 credential per card: a second first payment's reference would be dropped silently.
    if (isV7(c) && c.schemeReference !== undefined && c.schemeReference !== existing[0].scheme_reference)
      throw new ConflictError(
        `credential ${id} already holds this ${String(cols.instrument_type)} with ${existing[0].scheme_reference === null ? 'no' : 'another'} scheme reference: one credential per customer and card keeps the reference of the card's first payment`,
      );
    return id;
  }
  const names = Object.keys(cols);
  const rows = await ctx.database.rows<{ id: number }>(
    sql`insert into credentials (customer_id, gateway, fingerprint, ${sql.raw(names.join(', '))})
        values (${customerId}, ${gateway}, ${fp}, ${sql.join(
          names.map((n) => sql`${cols[n] ?? null}`),
          sql`, `,
        )}) returning id`,
    tx,
  );
  const id = rows[0]!.id;
  if (linkHref) {
    const link = await ctx.database.rows<{ id: number }>(
      sql`insert into links (credential_id, source, rel, href) values (${id}, 'verification', 'payments:recurringAuthorize', ${linkHref}) returning id`,
      tx,
    );
    await tx.execute(sql`update credentials set current_link_id = ${link[0]!.id} where id = ${id}`);
  }
  await writeAudit(tx, 'credential', id, null, 'active', `created (${String(cols.instrument_type)})`);
  return id;
}

/**
 * What can be checked of a credential before anything is stored: a link or token must point at
 * the configured Worldpay (the client would refuse to send our credentials anywhere else), and
 * a card must not have expired.
 */
export function assertCredentialUsable(ctx: BillingContext, c: CredentialInput, now: Date): void {
  const base = new URL(ctx.config.worldpay.url);
  const basePath = base.pathname.replace(/\/$/, '');
  const sameOrigin = (field: string, href: string, path: string | null) => {
    let u: URL;
    try {
      u = new URL(href);
    } catch {
      throw new ValidationError(field, 'must be an absolute URL');
    }
    if (u.origin !== base.origin)
      throw new ValidationError(field, `must be a link on the configured Worldpay origin ${base.origin}`);
    if (
      path !== null &&
      (!u.pathname.startsWith(basePath + path) || u.pathname.length <= (basePath + path).length)
    )
      throw new ValidationError(field, `must be a recurring authorization link (${basePath}${path}...)`);
  };
  const notExpired = (field: string, e: { expiryMonth: number; expiryYear: number }, what: string) => {
    const thisMonth = now.getUTCFullYear() * 12 + now.getUTCMonth();
    if (e.expiryYear * 12 + (e.expiryMonth - 1) < thisMonth)
      throw new ValidationError(
        field,
        `the ${what} expired at the end of ${String(e.expiryMonth).padStart(2, '0')}/${e.expiryYear}`,
      );
  };
  if (isV7(c)) {
    if (c.tokenHref !== undefined) sameOrigin('credential.tokenHref', c.tokenHref, null);
    if (c.card) notExpired('credential.card.expiryYear', c.card, 'card');
    if (c.networkToken) notExpired('credential.networkToken.expiryYear', c.networkToken, 'network token');
    return;
  }
  if ('link' in c) sameOrigin('credential.link', c.link, '/payments/authorizations/recurring/');
  if ('tokenHref' in c) sameOrigin('credential.tokenHref', c.tokenHref, null);
  if ('expiryYear' in c) notExpired('credential.expiryYear', c, 'card');
}
