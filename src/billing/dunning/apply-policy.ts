import {
  type CardLedger,
  DEFAULT_DUNNING_CONFIG,
  type DunningConfig,
  decide,
  decideBeforeSend,
} from '../../domain/dunning/index.ts';
import type { CardHistory, RetryDecision, RetryPolicy } from './retry-policy.ts';

/** Attempts that never reached the issuer (rejected, or found not to have happened) are not reattempts. */
const REACHED_ISSUER = new Set(['sending', 'unknown', 'authorized', 'refused']);

/**
 * The ledger the dunning policy counts, from the credential's attempt history: reattempts
 * across all mandates on the card, declines (the refusal being decided included), and a block.
 */
export function ledgerOf(h: CardHistory, current?: { at: Date; refused: boolean }): CardLedger {
  const reached = h.attempts.filter((a) => REACHED_ISSUER.has(a.state));
  const declines = reached.filter((a) => a.state === 'refused').map((a) => a.at);
  if (current?.refused) declines.push(current.at);
  return {
    reattempts: reached.filter((a) => !a.first).map((a) => a.at),
    declines,
    blocked: h.blocked,
  };
}

/** The dunning policy (src/domain/dunning) behind the charge loop's RetryPolicy interface. */
export function dunningPolicy(config: DunningConfig = DEFAULT_DUNNING_CONFIG): RetryPolicy {
  return {
    decide(input): RetryDecision {
      const isRefusal = !('gatewayError' in input.refusal);
      const d = decide({
        refusal: input.refusal,
        intent: input.intent,
        now: input.now,
        chargeId: input.chargeId,
        firstRefusedAt: input.firstRefusedAt,
        retriesSoFar: input.retriesSoFar,
        gatewayErrorsSoFar: input.gatewayErrorsSoFar,
        ledger: ledgerOf(input.ledger, { at: input.now, refused: isRefusal }),
        config,
      });
      const base = { reason: d.reason, category: d.category, unknownCode: d.unknownCode };
      switch (d.action) {
        case 'retry':
          return { action: 'retry', retryAt: d.retryAt, ...base };
        case 'needs_new_credential':
          return { action: 'needs_new_credential', blockCard: d.blocksCredential, ...base };
        case 'stop':
          return { action: 'stop', blockCard: d.blocksCredential, ...base };
        case 'fail':
          return { action: 'fail', finalAction: d.finalAction, ...base };
      }
    },
    beforeSend(input) {
      const d = decideBeforeSend({
        expiry:
          input.expiryMonth !== null && input.expiryYear !== null
            ? { month: input.expiryMonth, year: input.expiryYear }
            : null,
        now: input.now,
        kind: input.isRetry ? 'reattempt' : 'first',
        intent: input.intent,
        ledger: ledgerOf(input.ledger),
        config,
        firstRefusedAt: input.firstRefusedAt,
      });
      switch (d.action) {
        case 'send':
          return { ok: true };
        case 'defer':
          return {
            ok: false,
            decision: { action: 'retry', retryAt: d.until, reason: d.reason, category: 'ledger' },
          };
        case 'needs_new_credential':
          return {
            ok: false,
            decision: { action: 'needs_new_credential', reason: d.reason, category: 'expired' },
          };
        case 'stop':
          return { ok: false, decision: { action: 'stop', reason: d.reason, category: 'ledger' } };
        case 'fail':
          return {
            ok: false,
            decision: { action: 'fail', reason: d.reason, finalAction: d.finalAction, category: 'ledger' },
          };
      }
    },
  };
}
