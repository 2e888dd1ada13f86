import { describe, expect, it } from 'vitest';
import {
  CHARGE_ACTION_MOVES,
  CHARGE_ACTION_STATES,
  type ChargeAction,
  chargeActions,
} from '../../src/domain/charge-actions.ts';
import { type ChargeState, canMove, chargeMachine, finalStates } from '../../src/domain/lifecycle.ts';

const actions = Object.keys(CHARGE_ACTION_STATES) as ChargeAction[];

describe('charge actions', () => {
  it("open each action only in states from which the charge machine has the action's move", () => {
    for (const a of actions)
      for (const from of CHARGE_ACTION_STATES[a]) {
        const to = CHARGE_ACTION_MOVES[a];
        // staying is a move too: a second partial refund, a retry brought forward
        expect([a, from, canMove(chargeMachine, from, to) || from === to]).toEqual([a, from, true]);
      }
  });

  it('offer nothing on a final charge, nor while an attempt is in flight', () => {
    const closed: ChargeState[] = [...finalStates(chargeMachine), 'attempting', 'unknown'];
    for (const state of closed)
      expect([state, chargeActions({ state, amount: 1000, settledAmount: 1000, refundedAmount: 0 })]).toEqual(
        [state, []],
      );
  });

  it('follow the amounts: nothing settled, part settled, part refunded, all refunded', () => {
    const at = (state: ChargeState, settledAmount: number, refundedAmount = 0) =>
      chargeActions({ state, amount: 1000, settledAmount, refundedAmount });
    expect(at('authorized', 0)).toEqual(['settle', 'partialSettle', 'cancel', 'reversal']);
    expect(at('settling', 400)).toEqual(['partialSettle', 'refund', 'partialRefund', 'reversal']);
    expect(at('settling', 1000)).toEqual(['refund', 'partialRefund', 'reversal']);
    expect(at('partially_refunded', 1000, 1)).toEqual(['refund', 'partialRefund']);
    expect(at('stopped', 0)).toEqual(['retryNow']);
  });
});

describe('retry now', () => {
  const parked = { state: 'needs_new_credential', amount: 1000, settledAmount: 0, refundedAmount: 0 };
  it("is offered only while the charge's mandate takes retries and its card is active", () => {
    const card = (status: string, credentialStatus = 'active') =>
      chargeActions(parked, { status, credentialStatus }).includes('retryNow');
    expect(card('active')).toBe(true);
    expect(card('stopped')).toBe(true);
    expect(card('needs_new_credential')).toBe(false);
    expect(card('paused')).toBe(false);
    expect(card('active', 'blocked')).toBe(false);
    // without the mandate known, the charge's state alone decides
    expect(chargeActions(parked)).toEqual(['retryNow']);
  });
});
