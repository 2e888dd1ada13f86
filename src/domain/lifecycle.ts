/**
 * The state machines of rebill, one table each. These tables are the only statement of which
 * moves are allowed: every state write is under `src/billing/sql/` (test/billing/sql-layer.test.ts
 * holds it there), which derives its SQL guard from them (`mayBecome` in
 * `src/billing/sql/transitions.ts`), and migrations 0002 and 0012 load the same pairs into
 * `state_transitions`, where a trigger on each table refuses any other move, so a statement
 * that bypasses the door still cannot make an impossible one. `test/billing/lifecycle.test.ts` checks
 * the database copy equals this one and that every machine has its trigger.
 *
 * Charge:
 *
 *   (born) pending ─claim─> attempting ─authorized─> authorized ─settle─> settling ─> settled ─> refunded
 *   (born) skipped    │  ▲      │ │ └─unknown─> unknown ──┘ (reconciled)   │  └> settle_failed   └> partially_refunded
 *                     │  │      │ └─not sent─> pending / retry_scheduled   └──> cancelled
 *                     v  │      ├──> retry_scheduled ──> attempting ...
 *   retry_scheduled ──┘  │      ├──> needs_new_credential ──(new credential)──> retry_scheduled
 *                        │      ├──> stopped ──(resume / retry now)──> retry_scheduled
 *                        │      └──> failed
 *   pending / retry_scheduled / needs_new_credential / stopped ──(mandate cancelled)──> cancelled
 */
import { ConflictError } from '../errors.ts';

export type ChargeState =
  | 'pending'
  | 'skipped'
  | 'attempting'
  | 'unknown'
  | 'authorized'
  | 'settling'
  | 'settled'
  | 'settle_failed'
  | 'partially_refunded'
  | 'refunded'
  | 'retry_scheduled'
  | 'needs_new_credential'
  | 'stopped'
  | 'failed'
  | 'cancelled';

export type MandateStatus =
  | 'active'
  | 'paused'
  | 'needs_new_credential'
  | 'stopped'
  | 'cancelled'
  | 'completed';

export type AttemptState =
  | 'sending'
  | 'authorized'
  | 'refused'
  | 'error'
  | 'unknown'
  | 'not_found'
  | 'not_sent';

export type ActionState = 'requested' | 'accepted' | 'failed';

export type PaypalRefundState = 'requested' | 'accepted' | 'failed';

export type RunStatus = 'running' | 'completed' | 'completed_with_errors' | 'failed' | 'interrupted';

export type CredentialStatus = 'active' | 'blocked';

export type MandateChangeState = 'scheduled' | 'applied' | 'cancelled';

export type DeliveryState = 'pending' | 'delivered' | 'failed';

export type EndpointStatus = 'enabled' | 'disabled' | 'removed';

export type DisputeStatus = 'information_requested' | 'charged_back';

/** One state machine: the states a row may be created in, and the moves between states. */
export interface Machine<S extends string> {
  name: string;
  initial: readonly S[];
  transitions: Readonly<Record<S, readonly S[]>>;
}

/** Charges still waiting to be sent: what an operator's pause or cancel takes away from a run. */
export const WAITING_CHARGE_STATES = ['pending', 'retry_scheduled'] as const satisfies readonly ChargeState[];

/** A mandate in these statuses holds its charges: nothing of it is sent (an operator's word). */
export const HOLDING_MANDATE_STATUSES = ['paused', 'cancelled'] as const satisfies readonly MandateStatus[];

/** Charges with nothing at the gateway (not sent, or refused and parked): what a cancel ends. */
export const UNSENT_CHARGE_STATES = [
  'pending',
  'retry_scheduled',
  'needs_new_credential',
  'stopped',
] as const satisfies readonly ChargeState[];

export const chargeMachine: Machine<ChargeState> = {
  name: 'charge',
  initial: ['pending', 'skipped'],
  transitions: {
    pending: ['attempting', 'retry_scheduled', 'needs_new_credential', 'stopped', 'failed', 'cancelled'],
    retry_scheduled: ['attempting', 'needs_new_credential', 'stopped', 'failed', 'cancelled'],
    // `pending` / `retry_scheduled` from here: the attempt provably never left the process.
    // `cancelled`: its mandate was cancelled while it was in flight, and it was not paid.
    attempting: [
      'authorized',
      'settling',
      'unknown',
      'pending',
      'retry_scheduled',
      'needs_new_credential',
      'stopped',
      'failed',
      'cancelled',
    ],
    unknown: [
      'authorized',
      'settling',
      'retry_scheduled',
      'needs_new_credential',
      'stopped',
      'failed',
      'cancelled',
    ],
    authorized: ['settling', 'settled', 'settle_failed', 'cancelled', 'refunded'],
    settling: ['settled', 'settle_failed', 'cancelled', 'refunded', 'partially_refunded'],
    settled: ['refunded', 'partially_refunded'],
    // A settled event that arrives after settlementFailed (a re-settle, or out of order) wins.
    settle_failed: ['settling', 'settled'],
    partially_refunded: ['refunded'],
    needs_new_credential: ['retry_scheduled', 'cancelled', 'failed'],
    stopped: ['retry_scheduled', 'cancelled'],
    skipped: [],
    failed: [],
    cancelled: [],
    refunded: [],
  },
};

export const mandateMachine: Machine<MandateStatus> = {
  name: 'mandate',
  initial: ['active'],
  transitions: {
    active: ['paused', 'needs_new_credential', 'stopped', 'cancelled', 'completed'],
    paused: ['active', 'cancelled', 'completed'],
    needs_new_credential: ['active', 'paused', 'cancelled'],
    stopped: ['active', 'paused', 'cancelled'],
    cancelled: [],
    completed: [],
  },
};

export const attemptMachine: Machine<AttemptState> = {
  name: 'attempt',
  initial: ['sending'],
  transitions: {
    sending: ['authorized', 'refused', 'error', 'unknown', 'not_found', 'not_sent'],
    unknown: ['authorized', 'refused', 'error', 'not_found'],
    authorized: [],
    refused: [],
    error: [],
    not_found: [],
    not_sent: [],
  },
};

export const actionMachine: Machine<ActionState> = {
  name: 'payment_action',
  initial: ['requested'],
  transitions: { requested: ['accepted', 'failed'], accepted: [], failed: [] },
};

/**
 * A PayPal refund: written ahead (`requested`) before it is sent; `accepted` by Worldpay's 202
 * or, when that answer was lost, by the payment's next `sentForRefund`; `failed` when Worldpay
 * turns it down or reports `refundFailed`, also after it accepted the request.
 */
export const paypalRefundMachine: Machine<PaypalRefundState> = {
  name: 'paypal_refund',
  initial: ['requested'],
  transitions: { requested: ['accepted', 'failed'], accepted: ['failed'], failed: [] },
};

export const runMachine: Machine<RunStatus> = {
  name: 'run',
  initial: ['running'],
  transitions: {
    running: ['completed', 'completed_with_errors', 'failed', 'interrupted'],
    completed: [],
    completed_with_errors: [],
    failed: [],
    interrupted: [],
  },
};

export const credentialMachine: Machine<CredentialStatus> = {
  name: 'credential',
  initial: ['active'],
  transitions: { active: ['blocked'], blocked: [] },
};

/** A scheduled change of a mandate's plan: applied by the run when its instant comes, or cancelled. */
export const mandateChangeMachine: Machine<MandateChangeState> = {
  name: 'mandate_change',
  initial: ['scheduled'],
  transitions: { scheduled: ['applied', 'cancelled'], applied: [], cancelled: [] },
};

/**
 * A webhook delivery: pending until its endpoint answers 2xx (delivered) or the give-up window
 * passes or the endpoint goes (failed). An operator's resend makes any delivery pending again.
 */
export const deliveryMachine: Machine<DeliveryState> = {
  name: 'webhook_delivery',
  initial: ['pending'],
  transitions: { pending: ['delivered', 'failed'], delivered: ['pending'], failed: ['pending'] },
};

/** A webhook endpoint: disabled when everything failed for the give-up window, removed by an operator. */
export const endpointMachine: Machine<EndpointStatus> = {
  name: 'webhook_endpoint',
  initial: ['enabled'],
  transitions: { enabled: ['disabled', 'removed'], disabled: ['removed'], removed: [] },
};

/**
 * A dispute of a charge, from Worldpay's events: opened by `informationRequested` (the issuer
 * asks, the funds are held) or straight away by `chargedBack`; an open one ends charged back.
 */
export const disputeMachine: Machine<DisputeStatus> = {
  name: 'dispute',
  initial: ['information_requested', 'charged_back'],
  transitions: { information_requested: ['charged_back'], charged_back: [] },
};

export const machines = [
  chargeMachine,
  mandateMachine,
  attemptMachine,
  actionMachine,
  runMachine,
  credentialMachine,
  mandateChangeMachine,
  deliveryMachine,
  endpointMachine,
  paypalRefundMachine,
  disputeMachine,
] as const;

export function states<S extends string>(m: Machine<S>): S[] {
  return Object.keys(m.transitions) as S[];
}

export function canMove<S extends string>(m: Machine<S>, from: S, to: S): boolean {
  return m.transitions[from]?.includes(to) ?? false;
}

/** Every state from which `to` may be reached: what a guarded UPDATE's `state in (...)` lists. */
export function sourcesOf<S extends string>(m: Machine<S>, to: S): S[] {
  return states(m).filter((from) => m.transitions[from].includes(to));
}

/** The states with no way out. */
export function finalStates<S extends string>(m: Machine<S>): S[] {
  return states(m).filter((s) => m.transitions[s].length === 0);
}

/** A move the state machine does not allow: a conflict with the current state. */
export class InvalidTransitionError extends ConflictError {
  static override readonly type: string = 'InvalidTransitionError';
  constructor(machine: string, from: string, to: string) {
    super(`${machine} cannot go from ${from} to ${to}`);
  }
}

export function assertMove<S extends string>(m: Machine<S>, from: S, to: S): void {
  if (!canMove(m, from, to)) throw new InvalidTransitionError(m.name, from, to);
}

/** Every allowed (machine, from, to) triple, plus (machine, null, initial): the database copy. */
export function transitionRows(): { machine: string; from: string | null; to: string }[] {
  const out: { machine: string; from: string | null; to: string }[] = [];
  for (const m of machines as readonly Machine<string>[]) {
    for (const s of m.initial) out.push({ machine: m.name, from: null, to: s });
    for (const from of states(m))
      for (const to of m.transitions[from] ?? []) out.push({ machine: m.name, from, to });
  }
  return out;
}
