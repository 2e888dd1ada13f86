/**
 * The one commit of an authorization, for one charge or many in one statement: the attempt
 * authorized with every returned link kept on it, the recurring one also appended to the
 * credential's chain (`links`) and the credential moved to it, the charge authorized and, when it settles automatically, the settle action
 * written ahead, the move audited. `commitAuthorized` (charge/outcome.ts) is a batch of one;
 * the send loop's batcher commits every authorization that came back while the previous commit
 * was running. A migration that erases the card data adds its two writes (the PAN erased with
 * the credential's move, `legacy.migrated` beside it) to the same statement.
 *
 * Why one statement for many: per charge this was the largest cost of a run. With
 * pg_stat_statements on the 20,000-mandate bench it took 3.0 ms of the backend's time per charge
 * (every other statement of the run together about 1 ms), most of it the fixed cost of one
 * statement and one transaction (executor start-up for a dozen CTE nodes, trigger set-up, the
 * commit's WAL flush) rather than the rows. Batched, that cost is shared; the rows are the same.
 *
 * Why JSON and not a VALUES list (the one statement of it; the other batch statements under
 * src/billing/sql/ point here): the batch is bound as one jsonb array, so the text is the same
 * whatever the batch size, a named prepared statement parsed and planned once per connection.
 * A VALUES list changes its text with every size and is parsed and planned every time (the
 * write-ahead's, as a VALUES list of 500 rows, was 4,000 parameters, planned at every batch).
 *
 * Write-ahead is not weakened: a charge's settle request is sent only after the statement that
 * holds its authorization and its settle's action row has committed; a crash before that commit
 * leaves the attempt `sending`, which reconciliation resolves by reference.
 *
 * Locks: charges are each the run's own (leased, fenced); credentials are taken in id order
 * before any is updated, the same order `writeAhead` takes its share locks in, so two batches
 * (or a batch and a write-ahead) sharing credentials wait for each other instead of deadlocking.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/client.ts';
import { attemptMachine } from '../../domain/lifecycle.ts';
import { chargeMayBecome, mayBecome } from './transitions.ts';

/** The relations of a link that continues a credential's chain (kept with the credential's id). */
export const RECURRING_RELS = ['payments:recurringAuthorize', 'payments:migrateRecurringAuthorize'];

/** One authorized charge's outcome, as the statement binds it. */
export interface AuthorizedOutcome {
  chargeId: number;
  fence: number;
  attemptId: number;
  credentialId: number;
  /** The charge's state while the attempt was open (audited as the move's origin). */
  fromState: 'attempting' | 'unknown';
  kind: 'recurring' | 'migrate' | 'liquido' | 'mit';
  /** Where the links came from: `links.source`. */
  source: 'authorize' | 'migrate' | 'recovery';
  linkHref: string | null;
  httpStatus: number | null;
  correlationId: string | null;
  latencyMs: number;
  schemeReference: string | null;
  authCode: string | null;
  paymentId: string;
  /** Every link the authorization returned, as (relation, href), in the order given (a relation may repeat). */
  links: [string, string][];
  /** The relation of the link the credential moves to, or null when none came back. */
  nextRel: string | null;
  auditReason: string;
  settle: {
    kind: 'settle' | 'partialSettle';
    reference: string;
    amount: number;
    currency: string;
    linkHref: string;
  } | null;
  /**
   * A legacy card migrated by this authorization: its PAN is erased with the credential's move
   * to the new link, and `legacy.migrated` is written beside it. Absent on the hot path.
   */
  migrated?: { mandateId: number; reference: string } | undefined;
}

const RECURRING_LIST = sql.raw(RECURRING_RELS.map((r) => `'${r}'`).join(', '));

/** The credential's move, plain or erasing the migrated cards' PAN (two fixed texts). */
const credentialMove = (erase: boolean): SQL => sql`, newest as (
      select v.credential_id, max(lk.id) as link_id${erase ? sql`, bool_or(v.erase_pan) as erase_pan` : sql``}
        from lk join v on v.attempt_id = lk.attempt_id and lk.rel = v.next_rel
       group by v.credential_id
    ), locked as (
      select cr.id from credentials cr where cr.id in (select credential_id from newest) order by cr.id for update
    ), cred as (
      update credentials cr set current_link_id = newest.link_id, updated_at = now(),
             migrated_at = coalesce(cr.migrated_at, now())${
               erase
                 ? sql`, encrypted_pan = case when newest.erase_pan then null else cr.encrypted_pan end`
                 : sql``
             }
        from newest join locked on locked.id = newest.credential_id
       where cr.id = newest.credential_id
      returning cr.id
    )${
      erase
        ? sql`, migrated as (
      insert into events (type, mandate_id, customer_ref, data)
      select 'legacy.migrated', m.id, cu.ref,
             jsonb_build_object('mandateId', m.id, 'legacyId', m.legacy_id, 'credentialId', v.credential_id,
                                'chargeId', v.charge_id, 'transactionReference', v.migrated_reference)
        from v join cred on cred.id = v.credential_id
        join mandates m on m.id = v.migrated_mandate_id join customers cu on cu.id = m.customer_id
       where v.erase_pan)`
        : sql``
    }`;

/**
 * Commit the outcomes; returns, for each charge whose commit applied, its settle action's id
 * (null when it does not settle automatically). A charge missing from the answer was fenced
 * out: its lease was taken over, or an operator moved it meanwhile, and nothing of it was written.
 */
export async function commitAuthorizedOutcomes(
  database: Database,
  items: AuthorizedOutcome[],
  /** A transaction to commit in (an Account Updater's update beside it), else its own. */
  on?: Executor,
): Promise<Map<number, number | null>> {
  const out = new Map<number, number | null>();
  if (items.length === 0) return out;
  const erase = items.some((o) => o.migrated !== undefined);
  const payload = JSON.stringify(
    items.map((o) => ({
      charge_id: o.chargeId,
      fence: o.fence,
      attempt_id: o.attemptId,
      credential_id: o.credentialId,
      from_state: o.fromState,
      kind: o.kind,
      source: o.source,
      link_href: o.linkHref,
      http_status: o.httpStatus,
      correlation_id: o.correlationId,
      latency_ms: Math.round(o.latencyMs),
      scheme_reference: o.schemeReference,
      auth_code: o.authCode,
      payment_id: o.paymentId,
      links: o.links,
      next_rel: o.nextRel,
      audit_reason: o.auditReason,
      settle_kind: o.settle?.kind ?? null,
      settle_reference: o.settle?.reference ?? null,
      settle_amount: o.settle?.amount ?? null,
      settle_currency: o.settle?.currency ?? null,
      settle_link: o.settle?.linkHref ?? null,
      ...(erase
        ? {
            erase_pan: o.migrated !== undefined,
            migrated_mandate_id: o.migrated?.mandateId ?? null,
            migrated_reference: o.migrated?.reference ?? null,
          }
        : {}),
    })),
  );
  const rows = await database.rows<{ charge_id: number; action_id: number | null }>(
    sql`
    with v as (
      select * from jsonb_to_recordset(${payload}::jsonb) as v(charge_id bigint, fence bigint, attempt_id bigint,
        credential_id bigint, from_state text, kind text, source text, link_href text, http_status int, correlation_id text,
        latency_ms int, scheme_reference text, auth_code text, payment_id text, links jsonb, next_rel text,
        audit_reason text, settle_kind text, settle_reference text, settle_amount bigint, settle_currency text,
        settle_link text${erase ? sql`, erase_pan boolean, migrated_mandate_id bigint, migrated_reference text` : sql``})
    ), ch as (
      update charges c set state = 'authorized', authorized_attempt_id = v.attempt_id, state_reason = null,
             lease_owner = case when v.settle_kind is null then null else c.lease_owner end,
             lease_expires_at = case when v.settle_kind is null then null else c.lease_expires_at end,
             updated_at = now()
        from v
       where c.id = v.charge_id and c.fence = v.fence and ${chargeMayBecome('authorized', 'c')}
      returning c.id
    ), att as (
      update attempts a set state = 'authorized', outcome = 'authorized', http_status = v.http_status,
             kind = v.kind, link_href = v.link_href, correlation_id = v.correlation_id, latency_ms = v.latency_ms,
             scheme_reference = v.scheme_reference, auth_code = v.auth_code, gateway_payment_id = v.payment_id,
             links = v.links, completed_at = now()
        from v join ch on ch.id = v.charge_id
       where a.id = v.attempt_id and ${mayBecome(attemptMachine, 'a.state', 'authorized')}
    ), lk as (
      insert into links (credential_id, attempt_id, source, rel, href)
      select v.credential_id, v.attempt_id, v.source, l.value ->> 0, l.value ->> 1
        from v join ch on ch.id = v.charge_id cross join lateral jsonb_array_elements(v.links) l
       where l.value ->> 0 in (${RECURRING_LIST})
      returning id, attempt_id, rel
    )${credentialMove(erase)}, act as (
      insert into payment_actions (charge_id, attempt_id, kind, reference, amount, currency, link_href)
      select v.charge_id, v.attempt_id, v.settle_kind, v.settle_reference, v.settle_amount, v.settle_currency, v.settle_link
        from v join ch on ch.id = v.charge_id
       where v.settle_kind is not null
      on conflict (reference) do nothing
      returning id, charge_id
    ), aud as (
      insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      select 'charge', v.charge_id, v.from_state, 'authorized', v.audit_reason from v join ch on ch.id = v.charge_id
    )
    select ch.id as charge_id, act.id as action_id from ch left join act on act.charge_id = ch.id`,
    on,
    { prepare: true },
  );
  for (const r of rows) out.set(r.charge_id, r.action_id);
  return out;
}
