import { sql } from 'drizzle-orm';
import {
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  smallint,
  text,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import { credentialMachine, mandateMachine } from '../../domain/lifecycle.ts';
import { created, id, money, oneOf, ref, ts } from './columns.ts';

/** Who is charged and with what: customers, their credentials and links, mandates and their scheduled changes. */

export const customers = pgTable(
  'customers',
  {
    id: id(),
    ref: text('ref').notNull().unique(),
    name: text('name'),
    createdAt: created(),
  },
  // The lists' search finds a customer ref by prefix (`ref like 'ada%'`): the unique index's
  // collation cannot serve a LIKE, text_pattern_ops can.
  (t) => [index('customers_ref_prefix_idx').on(t.ref.op('text_pattern_ops'))],
);
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
    /**
     * Worldpay's card API the credential is charged through: `v6` (the `recurringAuthorize`
     * link chain, or migrateRecurring for a legacy card) or `v7` (Card Payments v7
     * merchant-initiated transactions, tied to the first payment by `scheme_reference`).
     */
    api: text('api').notNull().default('v6'),
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
    /**
     * The run sending this credential's charges: one sender per credential at a time, so each
     * charge goes on the link the one before it returned (two workers sending on one link at
     * once each get a new link, and the credential could move to the older). Taken with the
     * claim, renewed with a charge's lease, released when the run ends.
     */
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: ts('lease_expires_at'),
    migratedAt: ts('migrated_at'),
    createdAt: created(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    index('credentials_customer_idx').on(t.customerId),
    uniqueIndex('credentials_customer_fingerprint_uq').on(t.customerId, t.fingerprint),
    oneOf('credentials_status_check', 'status', credentialMachine),
    check('credentials_api_check', sql`"api" in ('v6', 'v7')`),
  ],
);
export type Credential = typeof credentials.$inferSelect;

/**
 * Append-only: the recurring chain, every `payments:recurringAuthorize` (or migrate) link a
 * verification or an authorization gave, kept with its credential; `credentials.current_link_id`
 * is the newest. The other links of an answer (settle, cancel, refund, events...) are kept on
 * the answer's own row (`attempts.links`, `payment_actions.links`), read through the
 * `payment_links` view: eight rows and their index entries per charge became one.
 */
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

/**
 * A change of a mandate (amount, interval, billing anchor, narrative, end, settle mode) to
 * apply at an instant: the billing run applies it before the first cycle due at or after that
 * instant (src/billing/mandates/changes.ts).
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
