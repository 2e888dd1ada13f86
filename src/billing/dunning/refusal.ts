import type { ChargeState, MandateStatus } from '../../domain/lifecycle.ts';
import type { ClaimedCharge } from '../charge/claim.ts';
import { chargeDunning, loadCardHistory } from '../charge/claim.ts';
import type { BillingContext } from '../context.ts';
import type { CardHistory, RetryDecision, RetryInput } from './retry-policy.ts';

/** The mandate status a decision implies, or null when the mandate carries on. */
export function mandateStatusFor(decision: RetryDecision): MandateStatus | null {
  switch (decision.action) {
    case 'retry':
      return null;
    case 'needs_new_credential':
      return 'needs_new_credential';
    case 'stop':
      return 'stopped';
    case 'fail':
      switch (decision.finalAction) {
        case 'pause':
          return 'paused';
        case 'cancel':
          return 'cancelled';
        case 'stop':
          return 'stopped';
        default:
          return null; // carry arrears (instalment) or fail the one request (unscheduled)
      }
  }
}

export async function cardHistory(
  ctx: BillingContext,
  credentialId: number,
  asOf: Date,
): Promise<CardHistory> {
  const map = await loadCardHistory(ctx.database, [credentialId], asOf);
  return { attempts: map.get(credentialId) ?? [], blocked: null };
}

/** Ask the dunning policy what follows a refusal (or a payment that never happened). */
export async function decideRefusal(
  ctx: BillingContext,
  charge: ClaimedCharge,
  refusal: RetryInput['refusal'],
  asOf: Date,
): Promise<{ decision: RetryDecision; mandateStatus: MandateStatus | null }> {
  const ledger = await cardHistory(ctx, charge.credentialId, asOf);
  // The attempt being decided is still open in the database: these counts are of earlier ones.
  const so = await chargeDunning(ctx.database, charge.id);
  const first = so.firstRefusedAt ?? asOf;
  const decision = ctx.policy.decide({
    refusal,
    intent: charge.intent,
    now: asOf,
    chargeId: charge.id,
    firstRefusedAt: first < asOf ? first : asOf,
    retriesSoFar: so.refused,
    gatewayErrorsSoFar: so.notFound,
    ledger,
  });
  return { decision, mandateStatus: mandateStatusFor(decision) };
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
