import { index, pgTable, text } from 'drizzle-orm/pg-core';
import { disputeMachine } from '../../domain/lifecycle.ts';
import { charges } from './charges.ts';
import { created, id, money, oneOf, ref, ts } from './columns.ts';

/**
 * A charge's dispute, from Worldpay's `informationRequested` and `chargedBack` events: one per
 * charge, opened by the first of them and moved to `charged_back` by the second. The amount is
 * the event's (minor units), else the charge's; reason and code only when Worldpay sends them.
 */
export const disputes = pgTable(
  'disputes',
  {
    id: id(),
    chargeId: ref('charge_id')
      .notNull()
      .unique()
      .references(() => charges.id),
    status: text('status').notNull(),
    amount: money('amount').notNull(),
    currency: text('currency').notNull(),
    reasonCode: text('reason_code'),
    reason: text('reason'),
    /** When the dispute was opened (its first event's timestamp) and when the money went back. */
    disputedAt: ts('disputed_at').notNull(),
    chargedBackAt: ts('charged_back_at'),
    /** The Worldpay events that opened it and charged it back (their eventId). */
    openedByEventId: text('opened_by_event_id').notNull(),
    chargedBackEventId: text('charged_back_event_id'),
    /** What rebill did about the card's mandates: `pause` or `notify` (REBILL_CHARGEBACK_POLICY). */
    policy: text('policy'),
    /** When rebill received the first event of it. */
    createdAt: created(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    index('disputes_status_idx').on(t.status),
    oneOf('disputes_status_check', 'status', disputeMachine),
  ],
);
export type Dispute = typeof disputes.$inferSelect;
