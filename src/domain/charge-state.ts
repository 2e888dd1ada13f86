/**
 * The charge state machine, in one table. Every state change of a charge goes through
 * `assertTransition`, so an impossible move is a bug caught where it happens.
 *
 *   pending ──claim──> attempting ──authorized──> authorized ──settle──> settling ──> settled
 *      ^                   │  │                       │                      └──> settle_failed
 *      │                   │  └─unknown──> unknown ───┤ (reconciled)
 *   retry_scheduled <──────┤                          └──cancel──> cancelled
 *                          ├──> needs_new_credential ──(new credential)──> retry_scheduled
 *                          ├──> stopped
 *                          └──> failed
 */
export type ChargeState =
  | 'pending'
  | 'attempting'
  | 'unknown'
  | 'authorized'
  | 'settling'
  | 'settled'
  | 'settle_failed'
  | 'retry_scheduled'
  | 'needs_new_credential'
  | 'stopped'
  | 'failed'
  | 'cancelled'
  | 'refunded';

const transitions: Record<ChargeState, readonly ChargeState[]> = {
  pending: ['attempting', 'needs_new_credential', 'stopped', 'failed', 'cancelled'],
  retry_scheduled: ['attempting', 'needs_new_credential', 'stopped', 'failed', 'cancelled'],
  attempting: [
    'authorized',
    'settling',
    'retry_scheduled',
    'needs_new_credential',
    'stopped',
    'failed',
    'unknown',
    'attempting',
  ],
  unknown: [
    'authorized',
    'settling',
    'retry_scheduled',
    'needs_new_credential',
    'stopped',
    'failed',
    'unknown',
  ],
  authorized: ['settling', 'settled', 'cancelled', 'settle_failed'],
  settling: ['settled', 'settle_failed', 'refunded'],
  settled: ['refunded'],
  settle_failed: ['settling'],
  needs_new_credential: ['retry_scheduled', 'cancelled', 'failed'],
  stopped: ['retry_scheduled', 'cancelled'],
  failed: [],
  cancelled: [],
  refunded: [],
};

export function canTransition(from: ChargeState, to: ChargeState): boolean {
  return transitions[from]?.includes(to) ?? false;
}

export class InvalidTransitionError extends Error {
  override name = 'InvalidTransitionError';
  constructor(from: string, to: string) {
    super(`charge cannot go from ${from} to ${to}`);
  }
}

export function assertTransition(from: ChargeState, to: ChargeState): void {
  if (!canTransition(from, to)) throw new InvalidTransitionError(from, to);
}

/** States whose charge is finished: nothing more will be sent for it. */
export const finalChargeStates: readonly ChargeState[] = ['settled', 'failed', 'cancelled', 'refunded'];

export type MandateStatus =
  | 'active'
  | 'paused'
  | 'needs_new_credential'
  | 'stopped'
  | 'cancelled'
  | 'completed';

const mandateTransitions: Record<MandateStatus, readonly MandateStatus[]> = {
  active: ['paused', 'needs_new_credential', 'stopped', 'cancelled', 'completed'],
  paused: ['active', 'cancelled'],
  needs_new_credential: ['active', 'cancelled'],
  stopped: ['active', 'cancelled'],
  cancelled: [],
  completed: [],
};

export function canTransitionMandate(from: MandateStatus, to: MandateStatus): boolean {
  return mandateTransitions[from]?.includes(to) ?? false;
}
