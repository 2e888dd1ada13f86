import { randomBytes } from 'node:crypto';
import { LATEST_INSTANT } from '../../domain/instant.ts';
import { ValidationError } from '../../errors.ts';
import type { ClaimedCharge } from '../charge/claim.ts';
import { followSettlements } from '../charge/follow.ts';
import type { PlannedAttempt } from '../charge/outcome.ts';
import { type Adopted, adoptAnswer, reconcileUnknown, resumeSettlements } from '../charge/recover.ts';
import { transactionReference } from '../charge/references.ts';
import type { BillingContext } from '../context.ts';
import { applyDueChanges } from '../mandates/changes.ts';
import { materializeDueCharges } from '../mandates/materialize.ts';
import { type ClaimCursor, claimCursor, claimDueCharges } from '../sql/claim-due.ts';
import { releaseCredentials, releaseLease } from '../sql/transitions.ts';
import { writeAhead } from '../sql/write-ahead.ts';

/** One reference the gateway knew and the database did not, and what was made of it. */
export interface AdoptedReference {
  chargeId: number;
  mandateId: number;
  cycle: number;
  reference: string;
  /** The payment's status as the gateway reported it (`Authorized`, `Settled`, `Refused`...). */
  gatewayStatus: string;
  /** The charge's state after the adoption. */
  outcome: Adopted;
}

export interface ReconciliationReport {
  since: string;
  asOf: string;
  /** References asked about: the next one of every charge waiting and due, and every open attempt. */
  checked: number;
  /** Of those, what the gateway had and rebill adopted. */
  adopted: AdoptedReference[];
  /** Open attempts (written ahead, or unknown) resolved on the way. */
  openResolved: number;
  /** Settles finished for authorized charges (their settle lost or never sent). */
  settlesResumed: number;
  /** Settlements the gateway reported finished. */
  settled: number;
  /** References the gateway could not be asked about (no answer): run it again. */
  errors: number;
  durationMs: number;
}

/** At most this many passes: each pass follows one more retry a lost worker may have sent. */
const MAX_PASSES = 10;

/**
 * After a restore or a lossy failover, before anything new is sent: ask the gateway about every
 * reference rebill could have used since `since`, and adopt what it knows. References are
 * deterministic (mandate, cycle, attempt), so they can be named without the rows that were
 * lost: every open attempt (reconciliation of unknown outcomes), then the next attempt of every
 * charge that is waiting and due now, turning due cycles into charges first as a run would. A
 * charge due before `since` counts too: it was still waiting then, and a worker could have sent
 * it any time after. A reference the gateway has is written ahead as the attempt it was and its
 * outcome committed (authorized: settled as the mandate says; settled or refunded: recorded;
 * refused: dunning decides), and the same charge's next reference is asked in the next pass.
 * A reference it does not have leaves the charge as it was. Then settlements are finished.
 */
export async function reconcileWithGateway(
  ctx: BillingContext,
  opts: { since: Date; asOf: Date },
): Promise<ReconciliationReport> {
  const started = Date.now();
  if (opts.since.getTime() > opts.asOf.getTime())
    throw new ValidationError('since', `must not be later than now (${opts.asOf.toISOString()})`);
  const report: ReconciliationReport = {
    since: opts.since.toISOString(),
    asOf: opts.asOf.toISOString(),
    checked: 0,
    adopted: [],
    openResolved: 0,
    settlesResumed: 0,
    settled: 0,
    errors: 0,
    durationMs: 0,
  };
  const open = await reconcileUnknown(ctx, { asOf: opts.asOf, limit: 100_000 });
  report.checked += open.checked;
  report.openResolved = open.authorized + open.refused + open.notFound;
  report.errors += open.errors + open.stillUnknown;
  await applyDueChanges(ctx, opts.asOf, {});
  await materializeDueCharges(ctx.database, opts.asOf, {
    batchSize: ctx.config.billing.batchSize,
    maxCatchUp: ctx.config.billing.maxCatchUpCycles,
  });
  // A refusal adopted means its retry may have gone out too, whenever the lost worker
  // scheduled it: the next pass asks those charges' next reference, due or not.
  let ask: Set<number> | undefined;
  // The sweeps' claims lease the charges' credentials as a run's do: released after them, so
  // the run or daemon started next is not kept off those cards until the leases run out.
  const held = {
    holder: `${ctx.workerId}/reconcile-${randomBytes(4).toString('hex')}`,
    credentials: new Set<number>(),
  };
  try {
    for (let pass = 0; pass < MAX_PASSES && ask?.size !== 0; pass++) {
      ask = await sweep(ctx, opts.asOf, report, ask, held);
    }
  } finally {
    await releaseCredentials(ctx.database, held.holder, held.credentials);
  }
  report.settlesResumed = await resumeSettlements(ctx, { limit: 100_000 });
  report.settled = (await followSettlements(ctx, { limit: 100_000 })).settled;
  report.durationMs = Date.now() - started;
  ctx.logger.info(
    { since: report.since, checked: report.checked, adopted: report.adopted.length, errors: report.errors },
    'reconciliation with the gateway finished',
  );
  return report;
}

/**
 * One pass: the next reference of every charge waiting and due (the first pass) or of the
 * charges in `only` (due or not). Returns the charges whose adopted attempt was a refusal.
 */
async function sweep(
  ctx: BillingContext,
  asOf: Date,
  report: ReconciliationReport,
  only: Set<number> | undefined,
  held: { holder: string; credentials: Set<number> },
): Promise<Set<number>> {
  const refused = new Set<number>();
  let after: ClaimCursor | null = null;
  for (;;) {
    const claimed = await claimDueCharges(ctx.database, {
      asOf: only ? LATEST_INSTANT : asOf,
      owner: ctx.workerId,
      holder: held.holder,
      leaseSeconds: ctx.config.billing.leaseSeconds,
      limit: ctx.config.billing.batchSize,
      after,
    });
    if (claimed.length === 0) return refused;
    for (const c of claimed) held.credentials.add(c.credentialId);
    after = claimCursor(claimed) ?? after;
    for (const c of claimed) {
      if (only && !only.has(c.id)) {
        await releaseLease(ctx.database, { chargeId: c.id, owner: ctx.workerId, fence: c.fence });
        continue;
      }
      report.checked++;
      if ((await askOne(ctx, c, asOf, report)) === 'refused') refused.add(c.id);
    }
  }
}

/** Ask the gateway about a claimed charge's next reference; adopt it when the gateway has it. */
async function askOne(
  ctx: BillingContext,
  c: ClaimedCharge,
  asOf: Date,
  report: ReconciliationReport,
): Promise<Adopted | undefined> {
  const reference = transactionReference(
    ctx.config.billing.referencePrefix,
    c.mandateId,
    c.cycle,
    c.attemptCount + 1,
  );
  const api = c.api === 'v7' ? 'v7' : 'v6';
  const q = await ctx.gateway(c.gateway).queryByReference(reference, c.entity, api);
  if (q.found !== true) {
    if (q.found === 'unknown') report.errors++;
    await releaseLease(ctx.database, { chargeId: c.id, owner: ctx.workerId, fence: c.fence });
    return undefined;
  }
  // Written ahead as the attempt it was (its link, as far as this database knows it), so the
  // outcome commits through the same door as any other.
  const kind: PlannedAttempt['kind'] =
    c.gateway === 'liquido' ? 'liquido' : api === 'v7' ? 'mit' : c.linkHref ? 'recurring' : 'migrate';
  const [p] = await writeAhead(ctx.database, [{ charge: c, reference, kind, linkHref: c.linkHref }], asOf);
  if (!p) return undefined; // taken over meanwhile: its new holder meets the reference itself
  const outcome = await adoptAnswer(ctx, p, q, asOf, { lagPassed: true });
  report.adopted.push({
    chargeId: c.id,
    mandateId: c.mandateId,
    cycle: c.cycle,
    reference,
    gatewayStatus: q.rawStatus,
    outcome,
  });
  return outcome;
}
