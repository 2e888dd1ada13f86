/**
 * Before the first request of a claimed batch: the checks that settle a charge without sending
 * it, the instrument each one goes out with, and the write-ahead of the rest.
 */
import { sql } from 'drizzle-orm';
import { ConfigError } from '../../config.ts';
import { decryptSecret } from '../../domain/card-crypto.ts';
import type { Instrument } from '../../gateways/types.ts';
import type { BillingContext } from '../context.ts';
import { chargeStateFor, mandateStatusFor } from '../dunning/refusal.ts';
import type { RetryDecision } from '../dunning/retry-policy.ts';
import { count, noteError, type RunTally } from '../run/tally.ts';
import { lockMandate, transitionCharge, transitionMandate } from '../sql/transitions.ts';
import { writeAhead } from '../sql/write-ahead.ts';
import { type ClaimedCharge, loadCardHistory } from './claim.ts';
import type { PlannedAttempt } from './outcome.ts';
import { transactionReference } from './references.ts';

/** A decision taken before anything is sent (expired card, blocked card, ledger full). */
async function commitWithoutAttempt(
  ctx: BillingContext,
  c: ClaimedCharge,
  decision: RetryDecision,
  book: RunTally,
) {
  const state = chargeStateFor(decision);
  const mandateStatus = mandateStatusFor(decision);
  const retryAt = decision.action === 'retry' ? decision.retryAt.toISOString() : null;
  const moved = await ctx.database.db.transaction(async (tx) => {
    if (mandateStatus) await lockMandate(ctx.database, tx, c.mandateId);
    const r = await transitionCharge(ctx.database, tx, {
      id: c.id,
      to: state,
      fence: c.fence,
      release: true,
      orSame: true,
      reason: `not sent: ${decision.reason}`,
      runId: book.runId,
      set: [sql`next_attempt_at = ${retryAt}::timestamptz`],
    });
    if (!r.ok) return false;
    if (mandateStatus) {
      await transitionMandate(ctx.database, tx, {
        id: c.mandateId,
        to: mandateStatus,
        from: ['active'],
        reason: decision.reason,
        runId: book.runId,
      });
    }
    return true;
  });
  if (!moved) {
    book.counts.lostLeases++;
    return;
  }
  book.counts.skipped++;
  count(book.counts, decision);
}

/** Whether the next attempt is a retry: an earlier one of the charge left the process. */
const isRetry = (c: ClaimedCharge): boolean => c.attemptCount > c.unsentAttempts;

/**
 * A v7 charge's first attempt with the Account Updater on is sent whatever the stored expiry
 * says: the updater answers with the card's new expiry (or says it was closed), where parking
 * it would wait for a new card the updater may already have.
 */
const sendsPastExpiry = (ctx: BillingContext, c: ClaimedCharge): boolean =>
  c.api === 'v7' && ctx.config.worldpay.accountUpdater !== 'off' && !isRetry(c);

/** An attempt written ahead and ready to send, with the instrument it goes out with. */
export interface Ready {
  attempt: PlannedAttempt;
  instrument: Instrument;
}

/** The card data of a legacy credential, or a ConfigError naming what is wrong with the key. */
function decryptor(ctx: BillingContext, credentialId: number) {
  return (blob: string): string => {
    const key = ctx.config.encryptionKey;
    if (!key)
      throw new ConfigError(
        'REBILL_ENCRYPTION_KEY',
        `is not set: cannot read the stored card data of credential ${credentialId}`,
      );
    try {
      return decryptSecret(blob, [key]);
    } catch (err) {
      throw new ConfigError(
        'REBILL_ENCRYPTION_KEY',
        `cannot decrypt the stored card data of credential ${credentialId}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  };
}

/**
 * Everything before the first request of a claimed batch: the retry ledger of the cards that
 * need it, the checks that stop a charge before it is sent, and the write-ahead of the rest in
 * one statement. Returns the attempts grouped by credential: charges of one credential go out
 * one after another, each on the link the previous one returned, so the newest link is always
 * the one used, and mandates sharing a legacy card share the one chain its first
 * migrateRecurring starts. Different credentials are sent in parallel.
 */
export async function prepareBatch(
  ctx: BillingContext,
  claimed: ClaimedCharge[],
  asOf: Date,
  book: RunTally,
): Promise<Ready[][]> {
  const retries = claimed.filter((c) => isRetry(c) || c.expiryYear !== null);
  const histories = await loadCardHistory(
    ctx.database,
    [...new Set(retries.map((c) => c.credentialId))],
    asOf,
  );
  const toSend: {
    charge: ClaimedCharge;
    reference: string;
    kind: PlannedAttempt['kind'];
    linkHref: string | null;
  }[] = [];
  const instruments = new Map<number, Instrument>();
  for (const c of claimed) {
    if (c.credentialStatus !== 'active') {
      await commitWithoutAttempt(
        ctx,
        c,
        { action: 'needs_new_credential', reason: `credential ${c.credentialId} is ${c.credentialStatus}` },
        book,
      );
      continue;
    }
    const attempts = histories.get(c.credentialId) ?? [];
    const refusedAt = attempts
      .filter((a) => a.chargeId === c.id && (a.state === 'refused' || a.state === 'not_found'))
      .map((a) => a.at.getTime());
    const check = ctx.policy.beforeSend({
      now: asOf,
      // With the Account Updater on, a v7 charge on a card whose stored expiry has passed goes
      // out once (its first attempt): the answer may carry the new expiry. A retry is checked
      // against the expiry as always.
      expiryMonth: sendsPastExpiry(ctx, c) ? null : c.expiryMonth,
      expiryYear: sendsPastExpiry(ctx, c) ? null : c.expiryYear,
      ledger: { attempts, blocked: null },
      isRetry: isRetry(c),
      intent: c.intent,
      firstRefusedAt: refusedAt.length > 0 ? new Date(Math.min(...refusedAt)) : null,
    });
    if (!check.ok) {
      await commitWithoutAttempt(ctx, c, check.decision, book);
      continue;
    }
    let inst: ReturnType<typeof instrumentFor>;
    try {
      inst = instrumentFor(c, decryptor(ctx, c.credentialId));
    } catch (err) {
      inst = { error: (err as Error).message };
    }
    if ('error' in inst) {
      // Not the card's answer (a key that is missing or wrong, a credential with nothing left
      // to send): nothing is sent, the charge and the mandate stay as they are, the run says so.
      ctx.logger.error({ chargeId: c.id, credentialId: c.credentialId, err: inst.error }, 'charge not sent');
      noteError(book, inst.error);
      book.held.set(c.id, c.fence);
      continue;
    }
    instruments.set(c.id, inst.instrument);
    toSend.push({
      charge: c,
      reference: transactionReference(
        ctx.config.billing.referencePrefix,
        c.mandateId,
        c.cycle,
        c.attemptCount + 1,
      ),
      kind: inst.kind,
      linkHref: inst.linkHref,
    });
  }
  const planned = await writeAhead(ctx.database, toSend, asOf);
  book.counts.lostLeases += toSend.length - planned.length;
  for (const p of planned)
    await ctx.faults?.hit('after-write-ahead', { chargeId: p.charge.id, reference: p.reference });
  const groups = new Map<number, Ready[]>();
  for (const p of planned) {
    const instrument = instruments.get(p.charge.id);
    if (!instrument) continue;
    const g = groups.get(p.charge.credentialId);
    if (g) g.push({ attempt: p, instrument });
    else groups.set(p.charge.credentialId, [{ attempt: p, instrument }]);
  }
  return [...groups.values()];
}

/** The instrument to send for a claimed charge, or why there is none. */
export function instrumentFor(
  c: ClaimedCharge,
  decrypt: (blob: string) => string,
): { instrument: Instrument; kind: PlannedAttempt['kind']; linkHref: string | null } | { error: string } {
  if (c.gateway === 'liquido') {
    if (!c.vaultedCardId) return { error: 'credential has no vaulted Liquido card id' };
    return {
      instrument: { type: 'liquido/cardId', cardId: c.vaultedCardId },
      kind: 'liquido',
      linkHref: null,
    };
  }
  if (c.api === 'v7') return mitInstrumentFor(c, decrypt);
  if (c.linkHref)
    return { instrument: { type: 'link', href: c.linkHref }, kind: 'recurring', linkHref: c.linkHref };
  switch (c.instrumentType) {
    case 'card/plain':
    case 'card/networkToken+applepay': {
      if (!c.encryptedPan || c.expiryMonth === null || c.expiryYear === null) {
        return { error: `legacy ${c.instrumentType} credential has no card data left and no recurring link` };
      }
      const secret = decrypt(c.encryptedPan);
      const holder = c.cardHolderName ?? undefined;
      return c.instrumentType === 'card/plain'
        ? {
            instrument: {
              type: 'card/plain',
              cardNumber: secret,
              expiryMonth: c.expiryMonth,
              expiryYear: c.expiryYear,
              cardHolderName: holder,
            },
            kind: 'migrate',
            linkHref: null,
          }
        : {
            instrument: {
              type: 'card/networkToken+applepay',
              dpan: secret,
              expiryMonth: c.expiryMonth,
              expiryYear: c.expiryYear,
              cardHolderName: holder,
            },
            kind: 'migrate',
            linkHref: null,
          };
    }
    case 'card/token':
      if (!c.tokenHref) return { error: 'legacy card/token credential has no token href' };
      return { instrument: { type: 'card/token', href: c.tokenHref }, kind: 'migrate', linkHref: null };
    default:
      return { error: `credential ${c.credentialId} has no recurring link` };
  }
}

/**
 * A Card Payments v7 credential's instrument: its token, or its card or network token
 * decrypted. Its card data is kept after every charge (v7 needs it each time), and it has no
 * link chain: the charge goes to the one merchant-initiated endpoint with the scheme reference
 * of the customer's first payment, required for a card or network token.
 */
function mitInstrumentFor(
  c: ClaimedCharge,
  decrypt: (blob: string) => string,
): { instrument: Instrument; kind: PlannedAttempt['kind']; linkHref: string | null } | { error: string } {
  const mit = (card: Extract<Instrument, { type: 'mit' }>['card']) => ({
    instrument: { type: 'mit' as const, card },
    kind: 'mit' as const,
    linkHref: null,
  });
  switch (c.instrumentType) {
    case 'card/token':
      if (!c.tokenHref) return { error: `v7 credential ${c.credentialId} has no token href` };
      return mit({ type: 'card/token', href: c.tokenHref });
    case 'card/plain':
    case 'card/networkToken': {
      if (!c.encryptedPan || c.expiryMonth === null || c.expiryYear === null) {
        return { error: `v7 ${c.instrumentType} credential ${c.credentialId} has no card data` };
      }
      if (c.schemeReference === null) {
        return {
          error: `v7 ${c.instrumentType} credential ${c.credentialId} has no scheme reference (the first payment's)`,
        };
      }
      const secret = decrypt(c.encryptedPan);
      return c.instrumentType === 'card/plain'
        ? mit({
            type: 'card/plain',
            cardNumber: secret,
            expiryMonth: c.expiryMonth,
            expiryYear: c.expiryYear,
            cardHolderName: c.cardHolderName ?? undefined,
          })
        : mit({
            type: 'card/networkToken',
            tokenNumber: secret,
            expiryMonth: c.expiryMonth,
            expiryYear: c.expiryYear,
          });
    }
    default:
      return {
        error: `v7 credential ${c.credentialId} has instrument type ${c.instrumentType}, which v7 cannot charge`,
      };
  }
}
