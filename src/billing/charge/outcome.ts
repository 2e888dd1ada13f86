import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import { num } from '../../db/values.ts';
import {
  type AttemptState,
  attemptMachine,
  type ChargeState,
  type MandateStatus,
  UNSENT_CHARGE_STATES,
} from '../../domain/lifecycle.ts';
import type { AuthorizeResult, Instrument } from '../../gateways/types.ts';
import type { RetryDecision } from '../dunning/retry-policy.ts';
import {
  chargeMayBecome,
  mayBecome,
  movesTo,
  outcomeState,
  takeOverWaitingCharges,
  transitionMandate,
} from '../sql/transitions.ts';
import type { ClaimedCharge } from './claim.ts';

/** An attempt whose write-ahead row is committed: from here on it may be sent. */
export interface PlannedAttempt {
  charge: ClaimedCharge;
  attemptId: number;
  attemptNo: number;
  reference: string;
  kind: 'recurring' | 'migrate' | 'liquido';
  linkHref: string | null;
  asOf: Date;
  /** The charge's state while this attempt is open: `attempting`, or `unknown` once reconciled. */
  chargeState: 'attempting' | 'unknown';
}

/** Guard on an attempt row still open (sending or unknown), derived from the attempt table. */
const attemptMay = (to: AttemptState, opts: { orSame?: boolean } = {}) =>
  mayBecome(attemptMachine, 'attempts.state', to, opts);

export interface SettlePlan {
  kind: 'settle' | 'partialSettle';
  reference: string;
  amount: number;
  currency: string;
  linkHref: string;
}

/** The relations of a link that continues a credential's chain (kept with the credential's id). */
export const RECURRING_RELS = ['payments:recurringAuthorize', 'payments:migrateRecurringAuthorize'];

/**
 * The links an authorization's commit keeps, as (relation, href) pairs: every link returned,
 * and the next recurring link under `payments:recurringAuthorize` when the gateway gave it
 * outside the links; `nextRel` is the relation the credential moves to (null: none came back).
 */
function linkEntries(r: Extract<AuthorizeResult, { outcome: 'authorized' }>) {
  const entries = Object.entries(r.links);
  if (r.nextRecurringLink && !entries.some(([, h]) => h === r.nextRecurringLink)) {
    entries.push(['payments:recurringAuthorize', r.nextRecurringLink]);
  }
  const nextRel = r.nextRecurringLink
    ? (entries.find(([, h]) => h === r.nextRecurringLink)?.[0] ?? null)
    : null;
  return { entries, nextRel };
}

/** The same, one href per relation, or null when two links share a relation (kept one by one). */
export function linksToKeep(
  r: Extract<AuthorizeResult, { outcome: 'authorized' }>,
): { links: Record<string, string>; nextRel: string | null } | null {
  const { entries, nextRel } = linkEntries(r);
  const links = Object.fromEntries(entries);
  return Object.keys(links).length === entries.length ? { links, nextRel } : null;
}

/** The audit reason of an authorization's commit. */
export function authorizedReason(
  p: PlannedAttempt,
  nextRel: string | null,
  opts: { recovered?: boolean },
): string {
  if (!opts.recovered) return `attempt ${p.reference} authorized`;
  return `attempt ${p.reference} authorized (recovered by query)${nextRel === null ? '; no new recurring link returned, credential keeps its link' : ''}`;
}

/**
 * Commit an authorization in one statement: the attempt's outcome, every returned link
 * (append-only), the credential's move to the newest recurring link, the charge's new state,
 * and, when the mandate settles automatically, the settle action's write-ahead row. The
 * fencing token guards it: a worker whose lease was taken over writes nothing.
 * Returns the settle action id when one was written, or null; false when fenced out. The send
 * loop commits plain authorizations in batches instead (`outcomeBatcher`); this is the one-charge
 * form, for migrations, recoveries and a batch's fallback.
 */
export async function commitAuthorized(
  database: Database,
  p: PlannedAttempt,
  r: Extract<AuthorizeResult, { outcome: 'authorized' }>,
  settle: SettlePlan | null,
  opts: { recovered?: boolean; erasePan?: boolean } = {},
): Promise<{ settleActionId: number | null } | false> {
  const { entries, nextRel } = linkEntries(r);
  const source = p.kind === 'migrate' ? 'migrate' : opts.recovered ? 'recovery' : 'authorize';
  const linkValues = entries.map(
    ([rel, href]) =>
      sql`(${RECURRING_RELS.includes(rel) ? p.charge.credentialId : null}::bigint, ${p.attemptId}::bigint, ${source}, ${rel}, ${href})`,
  );
  const linksCte: SQL =
    linkValues.length === 0
      ? sql`lk as (select null::bigint as id, null::text as rel where false)`
      : sql`lk as (
          insert into links (credential_id, attempt_id, source, rel, href)
          select v.* from (values ${sql.join(linkValues, sql`, `)}) as v(credential_id, attempt_id, source, rel, href)
          where exists (select 1 from ch)
          returning id, rel)`;
  const credentialCte: SQL =
    nextRel !== null
      ? sql`, cred as (
          update credentials set current_link_id = (select max(id) from lk where rel = ${nextRel}),
                 updated_at = now(),
                 migrated_at = coalesce(migrated_at, now())
                 ${opts.erasePan ? sql`, encrypted_pan = null` : sql``}
           where id = ${p.charge.credentialId} and exists (select 1 from ch) returning id)${
             opts.erasePan
               ? sql`, migrated as (
          insert into events (type, mandate_id, customer_ref, data)
          select 'legacy.migrated', m.id, cu.ref,
                 jsonb_build_object('mandateId', m.id, 'legacyId', m.legacy_id, 'credentialId', ${p.charge.credentialId}::bigint,
                                    'chargeId', ${p.charge.id}::bigint, 'transactionReference', ${p.reference}::text)
            from mandates m join customers cu on cu.id = m.customer_id
           where m.id = ${p.charge.mandateId} and exists (select 1 from cred))`
               : sql``
           }`
      : sql``;
  const settleCte: SQL = settle
    ? sql`, act as (
        insert into payment_actions (charge_id, attempt_id, kind, reference, amount, currency, link_href)
        select ${p.charge.id}, ${p.attemptId}, ${settle.kind}, ${settle.reference}, ${settle.amount}, ${settle.currency}, ${settle.linkHref}
        where exists (select 1 from ch)
        on conflict (reference) do nothing
        returning id)`
    : sql`, act as (select null::bigint as id where false)`;
  const rows = await database.rows(
    sql`
    with ch as (
      update charges set state = 'authorized', authorized_attempt_id = ${p.attemptId}, state_reason = null,
             lease_owner = case when ${settle !== null}::boolean then lease_owner else null end,
             lease_expires_at = case when ${settle !== null}::boolean then lease_expires_at else null end,
             updated_at = now()
       where id = ${p.charge.id} and fence = ${p.charge.fence} and ${chargeMayBecome('authorized')} returning id
    ), att as (
      update attempts set state = 'authorized', outcome = 'authorized', http_status = ${r.httpStatus ?? null},
             kind = ${p.kind}, link_href = ${p.linkHref},
             correlation_id = ${r.correlationId ?? null}, latency_ms = ${Math.round(r.latencyMs)},
             scheme_reference = ${r.schemeReference ?? null}, auth_code = ${r.authorizationCode ?? null},
             gateway_payment_id = ${r.paymentId}, completed_at = now()
       where id = ${p.attemptId} and ${attemptMay('authorized')} and exists (select 1 from ch) returning id
    ), ${linksCte}${credentialCte}${settleCte}, aud as (
      insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      select 'charge', ${p.charge.id}, ${p.chargeState}, 'authorized', ${authorizedReason(p, nextRel, opts)}
      where exists (select 1 from ch)
    )
    select (select count(*) from ch)::int as ok, (select max(id) from act) as action_id, (select count(*) from att)::int as att`,
    undefined,
    // One statement per charge, its text fixed but for a few shapes (links returned, settle or not):
    // prepared, so PostgreSQL parses and plans it once per connection.
    { prepare: true },
  );
  const row = rows[0];
  if (!row || num(row.ok) === 0) return false;
  return {
    settleActionId: row.action_id === null || row.action_id === undefined ? null : num(row.action_id),
  };
}

/** Record an unknown outcome: the attempt stays open and blocks the charge until reconciled. */
export async function commitUnknown(
  database: Database,
  p: PlannedAttempt,
  info: {
    httpStatus?: number | undefined;
    correlationId?: string | undefined;
    latencyMs: number;
    reason: string;
  },
): Promise<boolean> {
  const rows = await database.rows(sql`
    with ch as (
      update charges set state = 'unknown', state_reason = ${info.reason}, lease_owner = null, lease_expires_at = null, updated_at = now()
       where id = ${p.charge.id} and fence = ${p.charge.fence} and ${chargeMayBecome('unknown', 'charges', { orSame: true })} returning id
    ), att as (
      update attempts set state = 'unknown', outcome = 'unknown', http_status = ${info.httpStatus ?? null},
             kind = ${p.kind}, link_href = ${p.linkHref},
             correlation_id = ${info.correlationId ?? null}, latency_ms = ${Math.round(info.latencyMs)}, error = ${info.reason}
       where id = ${p.attemptId} and ${attemptMay('unknown', { orSame: true })} and exists (select 1 from ch) returning id
    ), aud as (
      insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      select 'charge', ${p.charge.id}, ${p.chargeState}, 'unknown', ${`attempt ${p.reference}: ${info.reason}`} where exists (select 1 from ch)
    )
    select (select count(*) from ch)::int as ok`);
  return num(rows[0]?.ok ?? 0) > 0;
}

export interface RefusalInfo {
  httpStatus?: number | undefined;
  correlationId?: string | undefined;
  latencyMs?: number | undefined;
  code: string | null;
  description?: string | undefined;
  adviceCode?: string | undefined;
  /** Attempt state: refused by the issuer, an error the gateway answered, or never reached it. */
  attemptState: 'refused' | 'error' | 'not_found' | 'not_sent';
  error?: string | undefined;
}

/** How a refusal decision lands on the charge, its mandate and its credential. */
export function chargeStateFor(decision: RetryDecision): ChargeState {
  switch (decision.action) {
    case 'retry':
      return 'retry_scheduled';
    case 'needs_new_credential':
      return 'needs_new_credential';
    case 'stop':
      return 'stopped';
    case 'fail':
      return 'failed';
  }
}

/**
 * Commit a refusal (or an attempt that ended without a payment) with the dunning decision, in
 * one transaction: attempt, charge, and where the decision says so, mandate and credential.
 * Fenced out (the lease was taken over, or an operator moved the charge meanwhile): nothing is
 * written and the answer is false; the caller counts it and carries on.
 */
export async function commitRefused(
  database: Database,
  p: {
    chargeId: number;
    fence: number;
    attemptId: number;
    reference: string;
    mandateId: number;
    credentialId: number;
    chargeState: 'attempting' | 'unknown';
  },
  info: RefusalInfo,
  decision: RetryDecision,
  mandateStatus: MandateStatus | null,
): Promise<boolean> {
  const chargeState = chargeStateFor(decision);
  const retryAt = decision.action === 'retry' ? decision.retryAt.toISOString() : null;
  const blocksCard = 'blockCard' in decision && decision.blockCard === true;
  return database.db.transaction(async (tx) => {
    // A refusal that blocks the card takes the card's row before anything else (holding
    // nothing while it waits), so no other worker writes an attempt on it ahead meanwhile
    // (writeAhead reads it under a share lock), and the attempt's completed_at is after any
    // attempt written ahead before it.
    if (blocksCard) await tx.execute(sql`select id from credentials where id = ${p.credentialId} for update`);
    const target = outcomeState(chargeState, p.mandateId);
    const ch = await database.rows(
      sql`update charges c set state = ${target}, state_reason = ${decision.reason},
                 next_attempt_at = coalesce(${retryAt}::timestamptz, next_attempt_at),
                 lease_owner = null, lease_expires_at = null, updated_at = now()
           where id = ${p.chargeId} and fence = ${p.fence} and ${movesTo(target, [chargeState, 'cancelled'])}
           returning state`,
      tx,
    );
    // Nothing written yet: returning ends the transaction with nothing in it.
    if (ch.length === 0) return false;
    const landed = String(ch[0]?.state);
    await tx.execute(sql`update attempts set state = ${info.attemptState}, outcome = ${info.attemptState},
        http_status = ${info.httpStatus ?? null}, correlation_id = ${info.correlationId ?? null},
        latency_ms = ${info.latencyMs === undefined ? null : Math.round(info.latencyMs)},
        refusal_code = ${info.code}, refusal_description = ${info.description ?? null}, advice_code = ${info.adviceCode ?? null},
        decision = ${decision.action}, decision_reason = ${decision.reason}, retry_at = ${retryAt}::timestamptz,
        error = ${info.error ?? null}, completed_at = ${blocksCard ? sql`clock_timestamp()` : sql`now()`}
      where id = ${p.attemptId} and ${attemptMay(info.attemptState)}`);
    await tx.execute(sql`insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      values ('charge', ${p.chargeId}, ${p.chargeState}, ${landed}, ${`attempt ${p.reference}: ${decision.reason}${landed === chargeState ? '' : '; its mandate was cancelled meanwhile'}`})`);
    if (mandateStatus !== null) {
      // Only an active mandate is moved by a refusal: a pause or cancel meanwhile stands.
      const moved = await transitionMandate(database, tx, {
        id: p.mandateId,
        to: mandateStatus,
        from: ['active'],
        reason: decision.reason,
      });
      // Dunning's final action cancels the mandate: its other charges not yet sent end with it,
      // as on an operator's cancel (a pause holds them until resume instead).
      if (moved.ok && mandateStatus === 'cancelled')
        await takeOverWaitingCharges(database, tx, p.mandateId, {
          to: 'cancelled',
          from: UNSENT_CHARGE_STATES,
          reason: `mandate cancelled: ${decision.reason}`,
          actor: 'system',
        });
    }
    if (blocksCard) {
      await tx.execute(sql`with b as (
          update credentials set status = 'blocked', status_reason = ${decision.reason}, updated_at = now()
           where id = ${p.credentialId} and status = 'active' returning id)
        insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
        select 'credential', id, 'active', 'blocked', ${decision.reason} from b`);
    }
    return true;
  });
}

/**
 * An attempt that ended without reaching the issuer for a reason that is not the card's: it
 * never left the process (`not_sent`), or the gateway turned the request itself away for our
 * credentials, throttling, or a request it could not take (`error`). The charge goes back to
 * waiting as it was (pending for a first attempt, else retry_scheduled, its due time
 * unchanged), the mandate is untouched, and the run keeps the lease until it finishes, so the
 * charge is not picked up again in the same run but is in the next one.
 */
export async function commitDeferred(
  database: Database,
  p: PlannedAttempt,
  info: {
    attemptState: 'error' | 'not_sent';
    httpStatus?: number | undefined;
    correlationId?: string | undefined;
    latencyMs?: number | undefined;
    reason: string;
  },
): Promise<boolean> {
  const back = outcomeState(p.attemptNo <= 1 ? 'pending' : 'retry_scheduled', p.charge.mandateId);
  const rows = await database.rows(sql`
    with ch as (
      update charges c set state = ${back}, state_reason = ${info.reason}, updated_at = now()
       where id = ${p.charge.id} and fence = ${p.charge.fence}
         and ${movesTo(back, ['pending', 'retry_scheduled', 'cancelled'])} returning id, state
    ), att as (
      update attempts set state = ${info.attemptState}, outcome = ${info.attemptState}, http_status = ${info.httpStatus ?? null},
             correlation_id = ${info.correlationId ?? null},
             latency_ms = ${info.latencyMs === undefined ? null : Math.round(info.latencyMs)},
             decision = 'defer', decision_reason = ${info.reason}, error = ${info.reason}, completed_at = now()
       where id = ${p.attemptId} and ${attemptMay(info.attemptState)} and exists (select 1 from ch) returning id
    ), aud as (
      insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      select 'charge', id, ${p.chargeState}, state, ${`attempt ${p.reference}: ${info.reason}`} from ch
    )
    select (select count(*) from ch)::int as ok`);
  return num(rows[0]?.ok ?? 0) > 0;
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
