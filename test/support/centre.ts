import { sql } from 'drizzle-orm';
import type { App } from '../../src/app.ts';
import type { ClaimedCharge } from '../../src/billing/charge/claim.ts';
import type { PlannedAttempt } from '../../src/billing/charge/outcome.ts';
import { transactionReference } from '../../src/billing/charge/references.ts';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { materializeDueCharges } from '../../src/billing/mandates/materialize.ts';
import { type RunTally, zero } from '../../src/billing/run/tally.ts';
import { claimDueCharges } from '../../src/billing/sql/claim-due.ts';
import { num, str } from '../../src/db/values.ts';
import type { AuthorizeResult } from '../../src/gateways/types.ts';
import type { World } from './world.ts';

/**
 * Helpers for the tests of the billing centre (claim, write-ahead, outcome commits, groups):
 * mandates due at one instant on real sandbox links, and the rows that tell what happened.
 */

export interface DueMandate {
  id: number;
  chainId: string;
  /** The verification link the mandate's credential starts on. */
  href: string;
}

/**
 * `n` monthly mandates due at `at`. With `shared`, all on one credential (one customer, one
 * verification link), else each on its own card.
 */
export async function dueMandates(
  w: World,
  app: App,
  opts: { tag: string; n: number; at: Date; shared?: boolean },
): Promise<DueMandate[]> {
  const out: DueMandate[] = [];
  const shared = opts.shared ? await w.verify() : undefined;
  for (let i = 0; i < opts.n; i++) {
    const v = shared ?? (await w.verify());
    const m = await createMandate(app, {
      customerRef: opts.shared ? opts.tag : `${opts.tag}-${i}`,
      intent: 'subscription',
      amount: 1000 + i,
      currency: 'GBP',
      narrative: 'Centre test',
      interval: '1 month',
      start: opts.at,
      credential: { link: v.href },
    });
    out.push({ id: m.id, chainId: v.chainId, href: v.href });
  }
  return out;
}

/** Materialize and claim every charge due at `at` for `owner` (default: the app's worker). */
export async function claimDue(app: App, at: Date, owner = app.workerId): Promise<ClaimedCharge[]> {
  await materializeDueCharges(app.database, at, { batchSize: 100 });
  return claimDueCharges(app.database, { asOf: at, owner, leaseSeconds: 300, limit: 100 });
}

/** What `writeAhead` takes for a claimed charge on its stored link. */
export function aheadItem(app: App, c: ClaimedCharge) {
  return {
    charge: c,
    reference: transactionReference(
      app.config.billing.referencePrefix,
      c.mandateId,
      c.cycle,
      c.attemptCount + 1,
    ),
    kind: 'recurring' as PlannedAttempt['kind'],
    linkHref: c.linkHref,
  };
}

/** A written-ahead attempt sent to the sandbox on its link; it must come back authorized. */
export async function authorizeAtSandbox(
  app: App,
  p: PlannedAttempt,
): Promise<Extract<AuthorizeResult, { outcome: 'authorized' }>> {
  const r = await app.gateway('worldpay').authorize({
    reference: p.reference,
    instrument: { type: 'link', href: p.linkHref! },
    value: { amount: p.charge.amount, currency: p.charge.currency },
    entity: p.charge.entity,
    narrative: p.charge.narrative,
    intent: p.charge.intent,
  });
  if (r.outcome !== 'authorized') throw new Error(`not authorized: ${r.outcome}`);
  return r;
}

/** One charge as the database holds it, with the traces an attempt leaves. */
export async function chargeRow(app: App, id: number) {
  const rows = await app.database.rows(sql`select c.state, c.fence, c.attempt_count, c.authorized_attempt_id,
      (select count(*) from attempts a where a.charge_id = c.id)::int as attempts,
      (select count(*) from audit_log al where al.entity_type = 'charge' and al.entity_id = c.id
          and al.actor = 'system')::int as audits,
      (select count(*) from payment_actions pa where pa.charge_id = c.id)::int as actions,
      (select count(*) from payment_links l where l.charge_id = c.id)::int as links
    from charges c where c.id = ${id}`);
  const r = rows[0];
  if (!r) throw new Error(`no charge ${id}`);
  return {
    state: String(r.state),
    fence: num(r.fence),
    attemptCount: num(r.attempt_count),
    authorizedAttemptId: r.authorized_attempt_id === null ? null : num(r.authorized_attempt_id),
    attempts: num(r.attempts),
    audits: num(r.audits),
    actions: num(r.actions),
    links: num(r.links),
  };
}

/** The attempts of a charge, oldest first. */
export async function attemptsOf(app: App, chargeId: number) {
  const rows = await app.database.rows(
    sql`select id, state, attempt_no, link_href, refusal_code from attempts where charge_id = ${chargeId} order by attempt_no`,
  );
  return rows.map((r) => ({
    id: num(r.id),
    state: String(r.state),
    attemptNo: num(r.attempt_no),
    linkHref: str(r.link_href),
    refusalCode: str(r.refusal_code),
  }));
}

/** The charges of a mandate, in cycle order. */
export async function chargesOf(app: App, mandateId: number) {
  const rows = await app.database.rows(
    sql`select id, state, cycle from charges where mandate_id = ${mandateId} order by cycle`,
  );
  return rows.map((r) => ({ id: num(r.id), state: String(r.state), cycle: num(r.cycle) }));
}

/** The sandbox's authorization requests on a chain, in the order it received them. */
export function authorizationsOn(w: World, chainId: string) {
  return w.sandbox.ledger().filter((e) => e.chainId === chainId && e.op === 'authorize');
}

/** The link data a sandbox recurring-authorize href carries (what the ledger records as `linkUsed`). */
export function linkData(href: string): string {
  const marker = '/payments/authorizations/recurring/';
  const at = href.indexOf(marker);
  if (at < 0) throw new Error(`not a recurring link: ${href}`);
  return href.slice(at + marker.length);
}

/** A run's tally for calling the send loop's steps directly (no run row: run 0), held by the app's worker. */
export function runTally(app: App): RunTally {
  return {
    runId: 0,
    counts: zero(),
    held: new Map(),
    credentials: new Set(),
    holder: app.workerId,
    errors: [],
  };
}
