import { sql } from 'drizzle-orm';
import { bigint, index, integer, jsonb, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { actionMachine, attemptMachine, chargeMachine } from '../../domain/lifecycle.ts';
import { created, id, money, oneOf, ref, ts } from './columns.ts';
import { credentials, mandates } from './mandates.ts';

/** The charge protocol's rows: charges, the attempts that authorize them, the actions on a payment, the events seen for it. */

/** One charge per mandate and cycle. The unit of work the charge loop claims under a lease. */
export const charges = pgTable(
  'charges',
  {
    id: id(),
    mandateId: ref('mandate_id')
      .notNull()
      .references(() => mandates.id),
    cycle: integer('cycle').notNull(),
    amount: money('amount').notNull(),
    currency: text('currency').notNull(),
    dueAt: ts('due_at').notNull(),
    /** `cycle`: a calendar cycle; `proration`: a one-off for a mandate change (cycle below 0). */
    kind: text('kind').notNull().default('cycle'),
    /** Credit taken off this charge; `amount` is what is charged. */
    creditApplied: money('credit_applied').notNull().default(0),
    state: text('state').notNull().default('pending'),
    stateReason: text('state_reason'),
    nextAttemptAt: ts('next_attempt_at'),
    attemptCount: integer('attempt_count').notNull().default(0),
    /** Lease: who works on it, until when, and a fencing token bumped on every claim. */
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: ts('lease_expires_at'),
    fence: bigint('fence', { mode: 'number' }).notNull().default(0),
    authorizedAttemptId: ref('authorized_attempt_id'),
    settledAmount: money('settled_amount').notNull().default(0),
    refundedAmount: money('refunded_amount').notNull().default(0),
    createdAt: created(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('charges_mandate_cycle_uq').on(t.mandateId, t.cycle),
    // (next_attempt_at, id) matches the claim's ORDER BY: see mandates_due_idx.
    index('charges_work_idx')
      .on(t.nextAttemptAt, t.id)
      .where(sql`${t.state} in ('pending', 'retry_scheduled', 'unknown', 'authorized')`),
    // Not the states every charge passes through that charges_work_idx already finds (pending,
    // authorized): a charge's move into one of them writes no entry here (migration 0019).
    index('charges_state_idx').on(t.state).where(sql`${t.state} not in ('pending', 'authorized')`),
    oneOf('charges_state_check', 'state', chargeMachine),
  ],
);
export type Charge = typeof charges.$inferSelect;

/** One authorization request. Written (state `sending`) and committed before the request goes out. */
export const attempts = pgTable(
  'attempts',
  {
    id: id(),
    chargeId: ref('charge_id')
      .notNull()
      .references(() => charges.id),
    credentialId: ref('credential_id')
      .notNull()
      .references(() => credentials.id),
    attemptNo: integer('attempt_no').notNull(),
    transactionReference: text('transaction_reference').notNull().unique(),
    kind: text('kind').notNull(),
    linkHref: text('link_href'),
    state: text('state').notNull().default('sending'),
    fence: bigint('fence', { mode: 'number' }).notNull(),
    httpStatus: integer('http_status'),
    outcome: text('outcome'),
    refusalCode: text('refusal_code'),
    refusalDescription: text('refusal_description'),
    adviceCode: text('advice_code'),
    decision: text('decision'),
    decisionReason: text('decision_reason'),
    retryAt: ts('retry_at'),
    correlationId: text('correlation_id'),
    latencyMs: integer('latency_ms'),
    schemeReference: text('scheme_reference'),
    authCode: text('auth_code'),
    gatewayPaymentId: text('gateway_payment_id'),
    /**
     * Every link the authorization's answer gave, as [relation, href] pairs in the order given
     * (a relation may repeat), kept on its attempt row rather than as rows of their own: the
     * `payment_links` view reads them with the actions' links. The recurring one is also a
     * `links` row, the credential's chain.
     */
    links: jsonb('links').$type<[string, string][]>(),
    error: text('error'),
    /** Business time the attempt was made at (the run's as-of time). */
    attemptedAt: ts('attempted_at').notNull(),
    sentAt: ts('sent_at').notNull().defaultNow(),
    /** Committed right before the request goes out: without it, a `sending` attempt never left its process. */
    launchedAt: ts('launched_at'),
    completedAt: ts('completed_at'),
  },
  (t) => [
    uniqueIndex('attempts_charge_no_uq').on(t.chargeId, t.attemptNo),
    index('attempts_credential_time_idx').on(t.credentialId, t.attemptedAt),
    // Reports and exports window on the attempt's instant (src/billing/reporting/reports.ts).
    index('attempts_attempted_at_idx').on(t.attemptedAt),
    index('attempts_open_idx').on(t.state).where(sql`${t.state} in ('sending', 'unknown')`),
    oneOf('attempts_state_check', 'state', attemptMachine),
  ],
);
export type Attempt = typeof attempts.$inferSelect;

/** Settle, partial settle, cancel, refund, partial refund, reversal: each with its own reference. */
export const paymentActions = pgTable(
  'payment_actions',
  {
    id: id(),
    chargeId: ref('charge_id')
      .notNull()
      .references(() => charges.id),
    attemptId: ref('attempt_id')
      .notNull()
      .references(() => attempts.id),
    kind: text('kind').notNull(),
    reference: text('reference').notNull().unique(),
    amount: money('amount'),
    currency: text('currency'),
    state: text('state').notNull().default('requested'),
    linkHref: text('link_href').notNull(),
    httpStatus: integer('http_status'),
    correlationId: text('correlation_id'),
    error: text('error'),
    lastEvent: text('last_event'),
    /** The links the action's accepted answer gave (relation to href), read through the `payment_links` view. */
    links: jsonb('links').$type<Record<string, string>>(),
    createdAt: created(),
    completedAt: ts('completed_at'),
  },
  (t) => [
    index('payment_actions_charge_idx').on(t.chargeId),
    oneOf('payment_actions_state_check', 'state', actionMachine),
  ],
);
export type PaymentAction = typeof paymentActions.$inferSelect;

/** The last event seen for a payment, from the events query or the webhook. */
export const paymentEvents = pgTable(
  'payment_events',
  {
    id: id(),
    attemptId: ref('attempt_id').references(() => attempts.id),
    eventId: text('event_id').unique(),
    source: text('source').notNull(),
    lastEvent: text('last_event').notNull(),
    transactionReference: text('transaction_reference'),
    payload: jsonb('payload'),
    occurredAt: ts('occurred_at'),
    receivedAt: created(),
  },
  (t) => [index('payment_events_attempt_idx').on(t.attemptId)],
);
export type PaymentEvent = typeof paymentEvents.$inferSelect;
