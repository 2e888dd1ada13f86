/** The admin API's answers, as far as the console reads them (the OpenAPI document has the rest). */
export interface Page<T> {
  items: T[];
  next: number | null;
}

export interface Mandate {
  id: number;
  customerRef: string;
  intent: string;
  amount: number;
  currency: string;
  narrative: string;
  gateway: string;
  status: string;
  statusReason: string | null;
  interval: string | null;
  timezone: string;
  startAt: string;
  endAt: string | null;
  instalmentsTotal: number | null;
  nextCycle: number;
  nextDueAt: string | null;
  cancelAtPeriodEnd: boolean;
  settleMode: string;
  creditBalance: number;
  credential: {
    instrumentType: string;
    status: string;
    brand: string | null;
    lastFour: string | null;
    expiry: string | null;
  };
}

export interface Attempt {
  no: number;
  reference: string;
  state: string;
  refusalCode: string | null;
  adviceCode: string | null;
  decision: string | null;
  decisionReason: string | null;
  attemptedAt: string;
}

export interface MandateDetail extends Mandate {
  links: { id: number; rel: string; source: string; current: boolean; createdAt: string }[];
  charges: {
    id: number;
    cycle: number;
    amount: number;
    currency: string;
    dueAt: string;
    state: string;
    stateReason: string | null;
    nextAttemptAt: string | null;
    attempts: Attempt[];
  }[];
}

export interface Charge {
  id: number;
  mandateId: number;
  cycle: number;
  kind: string;
  amount: number;
  creditApplied: number;
  currency: string;
  state: string;
  stateReason: string | null;
  dueAt: string;
  nextAttemptAt: string | null;
  attemptCount: number;
  settledAmount: number;
  refundedAmount: number;
  lastAttempt: {
    state: string;
    refusalCode: string | null;
    refusalDescription: string | null;
    adviceCode: string | null;
    decision: string | null;
    decisionReason: string | null;
  } | null;
}

export interface ChargeDetail extends Charge {
  actions: {
    id: number;
    kind: string;
    reference: string;
    amount: number | null;
    currency: string | null;
    state: string;
    lastEvent: string | null;
    error: string | null;
    createdAt: string;
  }[];
  events: { source: string; lastEvent: string; eventId: string | null; receivedAt: string }[];
}

export interface Run {
  id: number;
  trigger: string;
  asOf: string;
  dryRun: boolean;
  mandateId: number | null;
  status: string;
  counts: Record<string, number>;
  error: string | null;
  startedAt: string;
  finishedAt: string | null;
  wouldSend?: unknown;
}

export interface Change {
  id: number;
  effectiveAt: string;
  changes: Record<string, unknown>;
  proration: string;
  state: 'scheduled' | 'applied' | 'cancelled';
  createdAt: string;
  appliedAt: string | null;
}

export interface ForecastAnswer {
  totals: { bucket: string; currency: string; charges: number; amount: number }[];
  items: {
    mandateId: number;
    currency: string;
    kind: string;
    cycle: number | null;
    dueAt: string;
    amount: number;
    creditApplied: number;
  }[];
  truncated: boolean;
}

export interface Summary {
  currencies: {
    currency: string;
    charged: { charges: number; amount: number };
    settledAmount: number;
    firstAttemptRate: number | null;
    refusals: number;
    recoveredByRetry: { charges: number; amount: number };
    failedForGood: { charges: number; amount: number };
  }[];
  unknownOpen: number;
  mandatesByStatus: Record<string, number>;
  /** null when asked without it (`forecast=false`). */
  forecastNext30Days: Record<string, { charges: number; amount: number }> | null;
}

export interface Recovery {
  byCode: {
    refusalCode: string;
    adviceCode: string | null;
    refused: number;
    recovered: number;
    recoveryRate: number;
    recoveredAmount: Record<string, number>;
    medianDaysToRecover: number | null;
    medianAttemptsToRecover: number | null;
    failed: number;
    stopped: number;
    needsNewCredential: number;
  }[];
  funnel: { attempt: number; attempts: number; authorized: number; rate: number }[];
}

export interface Daily {
  days: { day: string; currency: string; authorized: number; refused: number; recovered: number }[];
}

export interface Endpoint {
  id: number;
  url: string;
  events: string[];
  description: string | null;
  status: string;
  statusReason: string | null;
  failingSince: string | null;
  createdAt: string;
}

export interface Delivery {
  id: number;
  eventId: string;
  eventType: string | null;
  mandateId: number | null;
  state: string;
  attempts: number;
  nextAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  lastAttemptAt: string | null;
  deliveredAt: string | null;
}

export interface EventItem {
  id: string;
  type: string;
  createdAt: string;
  mandateId: number | null;
  customerRef: string | null;
}
