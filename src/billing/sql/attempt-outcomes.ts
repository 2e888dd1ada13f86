/**
 * The commits of an attempt that did not end authorized (that one is `authorized-outcomes.ts`):
 * unknown, deferred (never reached the issuer, not the card's fault) and refused with its
 * dunning decision. Each is fenced by the claim's token and guarded by the charge and attempt
 * machines; a commit the fence or a guard refuses writes nothing and answers false.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import {
  type AttemptState,
  attemptMachine,
  type ChargeState,
  type MandateStatus,
  UNSENT_CHARGE_STATES,
} from '../../domain/lifecycle.ts';
import { applyCredentialUpdate, type CredentialUpdate } from './credential-updates.ts';
import { blockCredential, lockCredential } from './credentials.ts';
import {
  chargeMayBecome,
  mayBecome,
  movesTo,
  outcomeState,
  takeOverWaitingCharges,
  transitionMandate,
} from './transitions.ts';

/** Guard on an attempt row still open (sending or unknown), derived from the attempt table. */
const attemptMay = (to: AttemptState, opts: { orSame?: boolean } = {}) =>
  mayBecome(attemptMachine, 'attempts.state', to, opts);

/** An attempt written ahead, and the claim its charge is held by. */
export interface OpenAttempt {
  chargeId: number;
  fence: number;
  mandateId: number;
  attemptId: number;
  attemptNo: number;
  reference: string;
  kind: string;
  linkHref: string | null;
  /** The charge's state while this attempt is open. */
  chargeState: 'attempting' | 'unknown';
}

/** Record an unknown outcome: the attempt stays open and blocks the charge until reconciled. */
export async function commitUnknownOutcome(
  database: Database,
  p: OpenAttempt,
  info: {
    httpStatus?: number | undefined;
    correlationId?: string | undefined;
    latencyMs: number;
    reason: string;
  },
): Promise<boolean> {
  const rows = await database.rows<{ ok: number }>(sql`
    with ch as (
      update charges set state = 'unknown', state_reason = ${info.reason}, lease_owner = null, lease_expires_at = null, updated_at = now()
       where id = ${p.chargeId} and fence = ${p.fence} and ${chargeMayBecome('unknown', 'charges', { orSame: true })} returning id
    ), att as (
      update attempts set state = 'unknown', outcome = 'unknown', http_status = ${info.httpStatus ?? null},
             kind = ${p.kind}, link_href = ${p.linkHref},
             correlation_id = ${info.correlationId ?? null}, latency_ms = ${Math.round(info.latencyMs)}, error = ${info.reason}
       where id = ${p.attemptId} and ${attemptMay('unknown', { orSame: true })} and exists (select 1 from ch) returning id
    ), aud as (
      insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      select 'charge', ${p.chargeId}, ${p.chargeState}, 'unknown', ${`attempt ${p.reference}: ${info.reason}`} where exists (select 1 from ch)
    )
    select (select count(*) from ch)::int as ok`);
  return (rows[0]?.ok ?? 0) > 0;
}

/**
 * An attempt that ended without reaching the issuer for a reason that is not the card's: the
 * charge goes back to waiting (pending for a first attempt, else retry_scheduled; cancelled
 * when its mandate was cancelled meanwhile), its lease kept.
 */
export async function commitDeferredOutcome(
  database: Database,
  p: OpenAttempt,
  info: {
    attemptState: 'error' | 'not_sent';
    httpStatus?: number | undefined;
    correlationId?: string | undefined;
    latencyMs?: number | undefined;
    reason: string;
    unlaunched?: boolean;
  },
): Promise<boolean> {
  const back = outcomeState(p.attemptNo <= 1 ? 'pending' : 'retry_scheduled', p.mandateId);
  const unlaunched: SQL = info.unlaunched
    ? sql`and not exists (select 1 from attempts x where x.id = ${p.attemptId} and x.launched_at is not null)`
    : sql``;
  const rows = await database.rows<{ ok: number }>(sql`
    with ch as (
      update charges c set state = ${back}, state_reason = ${info.reason}, updated_at = now()
       where id = ${p.chargeId} and fence = ${p.fence}
         and ${movesTo(back, ['pending', 'retry_scheduled', 'cancelled'])} ${unlaunched} returning id, state
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
  return (rows[0]?.ok ?? 0) > 0;
}

/** What the issuer (or the gateway) answered about a refused attempt. */
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
  /** What the Account Updater said about the card in the same answer (v7), applied with it. */
  accountUpdate?: CredentialUpdate | undefined;
}

/** A dunning decision, as the refusal's commit writes it. */
export interface RefusalLanding {
  /** The charge's target state. */
  chargeState: ChargeState;
  action: string;
  reason: string;
  retryAt: Date | null;
  blocksCard: boolean;
  /** The mandate's new status, or null: untouched. */
  mandateStatus: MandateStatus | null;
}

/** The attempt a refusal commit updates, fenced by the claim's token. */
export interface RefusalTarget {
  chargeId: number;
  fence: number;
  attemptId: number;
  reference: string;
  mandateId: number;
  credentialId: number;
  chargeState: 'attempting' | 'unknown';
}

/**
 * Commit a refusal with its dunning decision, in one transaction: attempt, charge, and where
 * the decision says so, mandate and credential. Fenced out: nothing is written, false.
 */
export async function commitRefusedOutcome(
  database: Database,
  p: RefusalTarget,
  info: RefusalInfo,
  d: RefusalLanding,
): Promise<boolean> {
  const retryAt = d.retryAt?.toISOString() ?? null;
  return database.db.transaction(async (tx) => {
    // A refusal that blocks the card takes the card's row before anything else (holding
    // nothing while it waits), so no other worker writes an attempt on it ahead meanwhile
    // (writeAhead reads it under a share lock), and the attempt's completed_at is after any
    // attempt written ahead before it.
    if (d.blocksCard) await lockCredential(database, tx, p.credentialId);
    const target = outcomeState(d.chargeState, p.mandateId);
    // Only a retry has a next attempt: a charge stopped, failed, cancelled or waiting for new
    // card details is not sent again until an operator acts (retry-now, a new credential),
    // which sets one; keeping the old due time would show an attempt that will never come.
    const ch = await database.rows<{ state: string }>(
      sql`update charges c set state = ${target}, state_reason = ${d.reason},
                 next_attempt_at = ${retryAt}::timestamptz,
                 lease_owner = null, lease_expires_at = null, updated_at = now()
           where id = ${p.chargeId} and fence = ${p.fence} and ${movesTo(target, [d.chargeState, 'cancelled'])}
           returning state`,
      tx,
    );
    // Nothing written yet: returning ends the transaction with nothing in it.
    if (ch.length === 0) return false;
    const landed = ch[0]!.state;
    const completedAt: SQL = d.blocksCard ? sql`clock_timestamp()` : sql`now()`;
    await tx.execute(sql`update attempts set state = ${info.attemptState}, outcome = ${info.attemptState},
        http_status = ${info.httpStatus ?? null}, correlation_id = ${info.correlationId ?? null},
        latency_ms = ${info.latencyMs === undefined ? null : Math.round(info.latencyMs)},
        refusal_code = ${info.code}, refusal_description = ${info.description ?? null}, advice_code = ${info.adviceCode ?? null},
        decision = ${d.action}, decision_reason = ${d.reason}, retry_at = ${retryAt}::timestamptz,
        error = ${info.error ?? null}, completed_at = ${completedAt}
      where id = ${p.attemptId} and ${attemptMay(info.attemptState)}`);
    await tx.execute(sql`insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      values ('charge', ${p.chargeId}, ${p.chargeState}, ${landed}, ${`attempt ${p.reference}: ${d.reason}${landed === d.chargeState ? '' : '; its mandate was cancelled meanwhile'}`})`);
    if (d.mandateStatus !== null) {
      // Only an active mandate is moved by a refusal: a pause or cancel meanwhile stands.
      const moved = await transitionMandate(database, tx, {
        id: p.mandateId,
        to: d.mandateStatus,
        from: ['active'],
        reason: d.reason,
      });
      // Dunning's final action cancels the mandate: its other charges not yet sent end with it,
      // as on an operator's cancel (a pause holds them until resume instead).
      if (moved.ok && d.mandateStatus === 'cancelled')
        await takeOverWaitingCharges(database, tx, p.mandateId, {
          to: 'cancelled',
          from: UNSENT_CHARGE_STATES,
          reason: `mandate cancelled: ${d.reason}`,
          actor: 'system',
        });
    }
    if (info.accountUpdate !== undefined) await applyCredentialUpdate(database, tx, info.accountUpdate);
    if (d.blocksCard) await blockCredential(database, tx, p.credentialId, d.reason);
    return true;
  });
}
