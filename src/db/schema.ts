import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  smallint,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import {
  actionMachine,
  attemptMachine,
  chargeMachine,
  credentialMachine,
  type Machine,
  mandateMachine,
  runMachine,
  states,
} from '../domain/lifecycle.ts';

/**
 * One schema for PostgreSQL and PGlite. Money is integer minor units (bigint, read as a JS
 * number: amounts are far below 2^53) beside an ISO-4217 code; every instant is timestamptz.
 */
const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
const id = () => bigserial('id', { mode: 'number' }).primaryKey();
const ref = (name: string) => bigint(name, { mode: 'number' });
const money = (name: string) => bigint(name, { mode: 'number' });
const created = () => ts('created_at').notNull().defaultNow();

/** A CHECK that a state column holds one of its machine's states (the list comes from the table). */
const oneOf = (name: string, column: string, m: Machine<string>) =>
  check(
    name,
    sql.raw(
      `"${column}" in (${states(m)
        .map((s) => `'${s}'`)
        .join(', ')})`,
    ),
  );

export const customers = pgTable('customers', {
  id: id(),
  ref: text('ref').notNull().unique(),
  name: text('name'),
  createdAt: created(),
});
export type Customer = typeof customers.$inferSelect;

/**
 * A stored credential: what the gateway is asked to charge. For Worldpay it is either a
 * recurring link chain (`current_link_id`) or, for a legacy mandate not yet migrated, an
 * instrument (`card/plain`, `card/token`, `card/networkToken+applepay`) sent through
 * migrateRecurring. For Liquido it is a vaulted card id.
 */
export const credentials = pgTable(
  'credentials',
  {
    id: id(),
    customerId: ref('customer_id')
      .notNull()
      .references(() => customers.id),
    gateway: text('gateway').notNull().default('worldpay'),
    instrumentType: text('instrument_type').notNull(),
    status: text('status').notNull().default('active'),
    statusReason: text('status_reason'),
    brand: text('brand'),
    bin: text('bin'),
    lastFour: text('last_four'),
    expiryMonth: smallint('expiry_month'),
    expiryYear: smallint('expiry_year'),
    cardHolderName: text('card_holder_name'),
    tokenHref: text('token_href'),
    vaultedCardId: text('vaulted_card_id'),
    /** AES-256-GCM ciphertext of the PAN or DPAN; erased after the first migrateRecurring. */
    encryptedPan: text('encrypted_pan'),
    /** Keyed hash of the PAN/DPAN/token (HMAC), to share one credential per customer and card. */
    fingerprint: text('fingerprint'),
    schemeReference: text('scheme_reference'),
    currentLinkId: ref('current_link_id'),
    migratedAt: ts('migrated_at'),
    createdAt: created(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    index('credentials_customer_idx').on(t.customerId),
    uniqueIndex('credentials_customer_fingerprint_uq').on(t.customerId, t.fingerprint),
    oneOf('credentials_status_check', 'status', credentialMachine),
  ],
);
export type Credential = typeof credentials.$inferSelect;

/** Append-only: every link any gateway response returned, and which response it came from. */
export const links = pgTable(
  'links',
  {
    id: id(),
    credentialId: ref('credential_id').references(() => credentials.id),
    attemptId: ref('attempt_id'),
    actionId: ref('action_id'),
    source: text('source').notNull(),
    rel: text('rel').notNull(),
    href: text('href').notNull(),
    createdAt: created(),
  },
  (t) => [index('links_credential_idx').on(t.credentialId), index('links_attempt_idx').on(t.attemptId)],
);
export type Link = typeof links.$inferSelect;

export const mandates = pgTable(
  'mandates',
  {
    id: id(),
    customerId: ref('customer_id')
      .notNull()
      .references(() => customers.id),
    credentialId: ref('credential_id')
      .notNull()
      .references(() => credentials.id),
    gateway: text('gateway').notNull().default('worldpay'),
    intent: text('intent').notNull(),
    amount: money('amount').notNull(),
    currency: text('currency').notNull(),
    entity: text('entity').notNull(),
    narrative: text('narrative').notNull(),
    status: text('status').notNull().default('active'),
    statusReason: text('status_reason'),
    /** Calendar: interval and an anchor kept apart from the last charge date. */
    intervalUnit: text('interval_unit'),
    intervalCount: integer('interval_count'),
    timezone: text('timezone').notNull().default('UTC'),
    /** Cycle `anchor_cycle` falls due at `anchor_at`; every other cycle is counted from it. */
    anchorAt: ts('anchor_at').notNull(),
    anchorCycle: integer('anchor_cycle').notNull().default(0),
    startAt: ts('start_at').notNull(),
    endAt: ts('end_at'),
    trialEndAt: ts('trial_end_at'),
    instalmentsTotal: integer('instalments_total'),
    /** Amount of the last instalment when the total does not divide evenly (the remainder made explicit). */
    lastInstalmentAmount: money('last_instalment_amount'),
    cancelAtPeriodEnd: boolean('cancel_at_period_end').notNull().default(false),
    /**
     * Cycles up to this one may be charged however late they are (`backfill` at creation); later
     * missed cycles are bounded by REBILL_MAX_CATCH_UP_CYCLES. Null: no backfill asked.
     */
    backfillThroughCycle: integer('backfill_through_cycle'),
    /** Next cycle to materialise (0-based) and when it falls due; null when nothing is scheduled. */
    nextCycle: integer('next_cycle').notNull().default(0),
    nextDueAt: ts('next_due_at'),
    settleMode: text('settle_mode').notNull().default('full'),
    settlePercent: integer('settle_percent'),
    /** Credit owed to the customer (proration), in minor units: taken off the next charges. */
    creditBalance: money('credit_balance').notNull().default(0),
    legacyId: text('legacy_id').unique(),
    legacyHash: text('legacy_hash'),
    createdAt: created(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    // (next_due_at, id) matches the materialiser's ORDER BY, so a batch is an index range scan
    // instead of a sort of every due row.
    index('mandates_due_idx')
      .on(t.nextDueAt, t.id)
      .where(sql`${t.status} = 'active' and ${t.nextDueAt} is not null`),
    index('mandates_customer_idx').on(t.customerId),
    index('mandates_credential_idx').on(t.credentialId),
    oneOf('mandates_status_check', 'status', mandateMachine),
  ],
);
export type Mandate = typeof mandates.$inferSelect;

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
    index('charges_state_idx').on(t.state),
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
    error: text('error'),
    /** Business time the attempt was made at (the run's as-of time). */
    attemptedAt: ts('attempted_at').notNull(),
    sentAt: ts('sent_at').notNull().defaultNow(),
    completedAt: ts('completed_at'),
  },
  (t) => [
    uniqueIndex('attempts_charge_no_uq').on(t.chargeId, t.attemptNo),
    index('attempts_credential_time_idx').on(t.credentialId, t.attemptedAt),
    // Reports and exports window on the attempt's instant (src/billing/reports.ts).
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

export const billingRuns = pgTable(
  'billing_runs',
  {
    id: id(),
    trigger: text('trigger').notNull(),
    asOf: ts('as_of').notNull(),
    dryRun: boolean('dry_run').notNull().default(false),
    mandateId: ref('mandate_id'),
    limit: integer('limit'),
    status: text('status').notNull().default('running'),
    counts: jsonb('counts').$type<Record<string, number>>().notNull().default({}),
    owner: text('owner'),
    error: text('error'),
    startedAt: ts('started_at').notNull().defaultNow(),
    /** Written while the run works: a `running` run whose heartbeat stopped lost its worker. */
    heartbeatAt: ts('heartbeat_at'),
    /** A dry run's answer: what it would send (at most the run's limit). */
    wouldSend: jsonb('would_send'),
    finishedAt: ts('finished_at'),
  },
  () => [oneOf('billing_runs_status_check', 'status', runMachine)],
);
export type BillingRun = typeof billingRuns.$inferSelect;

/** Audit trail of every state change of a mandate, charge, credential or action. */
export const auditLog = pgTable(
  'audit_log',
  {
    id: id(),
    entityType: text('entity_type').notNull(),
    entityId: bigint('entity_id', { mode: 'number' }).notNull(),
    fromState: text('from_state'),
    toState: text('to_state').notNull(),
    reason: text('reason'),
    /** Structured before/after of a change that is not a state move (a mandate update). */
    detail: jsonb('detail'),
    actor: text('actor').notNull().default('system'),
    runId: ref('run_id'),
    at: created(),
  },
  (t) => [index('audit_log_entity_idx').on(t.entityType, t.entityId)],
);
export type AuditEntry = typeof auditLog.$inferSelect;

/**
 * The allowed moves of every state machine, loaded from `src/domain/lifecycle.ts` by migration:
 * triggers on the stateful tables refuse a change of state that has no row here, so no
 * statement, however written, can make a move the tables forbid. `from_state` null: a state a
 * row may be created in.
 */
export const stateTransitions = pgTable(
  'state_transitions',
  {
    machine: text('machine').notNull(),
    fromState: text('from_state'),
    toState: text('to_state').notNull(),
  },
  (t) => [uniqueIndex('state_transitions_uq').on(t.machine, t.fromState, t.toState)],
);

/** Daemon ticks coordinated across replicas: one row per schedule slot that fired. */
export const cronSlots = pgTable('cron_slots', {
  name: text('name').primaryKey(),
  lastSlot: ts('last_slot').notNull(),
  owner: text('owner'),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

/** Admin API idempotency: the first response to a key is replayed for the same key. */
export const idempotencyKeys = pgTable('idempotency_keys', {
  key: text('key').primaryKey(),
  method: text('method').notNull(),
  path: text('path').notNull(),
  requestHash: text('request_hash').notNull(),
  statusCode: integer('status_code'),
  response: jsonb('response'),
  /** While the first request runs: past this, a retry with the key may run it again. */
  lockedUntil: ts('locked_until'),
  createdAt: created(),
});

/**
 * The outbox: what happened, for the merchant's systems. Rows are written in the transaction of
 * the state change they report (a trigger on `audit_log` for state moves, `appendEvent` for the
 * rest), with `id` null. The sequencer (`src/events/sequence.ts`) gives each committed event its
 * public `id`, in commit order, so a consumer paging by `id` never skips an event that committed
 * late; `seq` is only the insertion key.
 */
export const events = pgTable(
  'events',
  {
    seq: bigserial('seq', { mode: 'number' }).primaryKey(),
    id: bigint('id', { mode: 'number' }),
    type: text('type').notNull(),
    mandateId: ref('mandate_id'),
    customerRef: text('customer_ref'),
    data: jsonb('data').notNull(),
    /** The inserting transaction: sequenced once no older transaction is still running. */
    tx: bigint('tx', { mode: 'number' }).notNull().default(sql`(pg_current_xact_id()::text::bigint)`),
    /** For `ping`: delivered to this endpoint only. */
    endpointId: ref('endpoint_id'),
    createdAt: created(),
  },
  (t) => [
    // Partial on `id is not null`: an event is inserted on the hot path (in its state change's
    // statement) with no id, touching only the primary key and the unsequenced index; the read
    // indexes are written when the sequencer numbers it, off the hot path.
    uniqueIndex('events_id_uq').on(t.id).where(sql`${t.id} is not null`),
    index('events_unsequenced_idx').on(t.seq).where(sql`${t.id} is null`),
    index('events_mandate_idx').on(t.mandateId, t.id).where(sql`${t.id} is not null`),
    index('events_type_idx').on(t.type, t.id).where(sql`${t.id} is not null`),
  ],
);

/** Where events are delivered: the merchant's HTTPS endpoints, each with its signing secret. */
export const webhookEndpoints = pgTable(
  'webhook_endpoints',
  {
    id: id(),
    url: text('url').notNull(),
    events: text('events').array().notNull(),
    description: text('description'),
    secret: text('secret').notNull(),
    /** The secret before the last rotation: still signs beside the new one until it expires. */
    previousSecret: text('previous_secret'),
    previousSecretExpiresAt: ts('previous_secret_expires_at'),
    status: text('status').notNull().default('enabled'),
    statusReason: text('status_reason'),
    /** Since when every delivery has failed (null: the last one succeeded). */
    failingSince: ts('failing_since'),
    createdAt: created(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  () => [check('webhook_endpoints_status_check', sql`"status" in ('enabled', 'disabled', 'removed')`)],
);

/** One event to one endpoint: retried with backoff until delivered or given up. */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: id(),
    endpointId: ref('endpoint_id').notNull(),
    eventId: bigint('event_id', { mode: 'number' }).notNull(),
    mandateId: ref('mandate_id'),
    state: text('state').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: ts('next_attempt_at').notNull().defaultNow(),
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: ts('lease_expires_at'),
    fence: bigint('fence', { mode: 'number' }).notNull().default(0),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    /** The receiver's last answer, cut at 64 KiB. */
    lastResponse: text('last_response'),
    lastAttemptAt: ts('last_attempt_at'),
    deliveredAt: ts('delivered_at'),
    createdAt: created(),
  },
  (t) => [
    uniqueIndex('webhook_deliveries_uq').on(t.endpointId, t.eventId),
    index('webhook_deliveries_due_idx').on(t.nextAttemptAt, t.id).where(sql`${t.state} = 'pending'`),
    index('webhook_deliveries_order_idx')
      .on(t.endpointId, t.mandateId, t.eventId)
      .where(sql`${t.state} = 'pending'`),
    check('webhook_deliveries_state_check', sql`"state" in ('pending', 'delivered', 'failed')`),
  ],
);

/** Once per credential and expiry: the credential.expiring notice was sent. */
export const expiryNotices = pgTable(
  'expiry_notices',
  {
    credentialId: ref('credential_id').notNull(),
    expiry: text('expiry').notNull(),
    createdAt: created(),
  },
  (t) => [uniqueIndex('expiry_notices_uq').on(t.credentialId, t.expiry)],
);

/**
 * A change of a mandate (amount, interval, billing anchor, narrative, end, settle mode) to
 * apply at an instant: the billing run applies it before the first cycle due at or after that
 * instant (src/billing/mandate-changes.ts).
 */
export const mandateChanges = pgTable(
  'mandate_changes',
  {
    id: id(),
    mandateId: ref('mandate_id').notNull(),
    effectiveAt: ts('effective_at').notNull(),
    changes: jsonb('changes').notNull(),
    proration: text('proration').notNull().default('none'),
    state: text('state').notNull().default('scheduled'),
    result: jsonb('result'),
    createdAt: created(),
    appliedAt: ts('applied_at'),
  },
  (t) => [
    index('mandate_changes_due_idx').on(t.effectiveAt, t.id).where(sql`${t.state} = 'scheduled'`),
    index('mandate_changes_mandate_idx').on(t.mandateId, t.id),
    check('mandate_changes_state_check', sql`"state" in ('scheduled', 'applied', 'cancelled')`),
    check('mandate_changes_proration_check', sql`"proration" in ('none', 'charge', 'credit')`),
  ],
);
