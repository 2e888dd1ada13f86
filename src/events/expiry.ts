import { sql } from 'drizzle-orm';
import type { BillingContext } from '../billing/context.ts';

/**
 * Pre-dunning: a card whose stored expiry falls before an active mandate's next due charge will
 * be refused (or at best stopped) when that charge comes. REBILL_EXPIRY_NOTICE_DAYS before that
 * charge, `credential.expiring` tells the merchant, who can ask the customer for a new card in
 * time. Once per credential and expiry (a card renewed with a new expiry gets a new notice);
 * the notice row and its event commit together. Called by every billing run.
 */
export async function noticeExpiringCards(ctx: BillingContext, asOf: Date): Promise<number> {
  const days = ctx.config.events.expiryNoticeDays;
  if (days === 0) return 0;
  const rows = await ctx.database.rows(sql`
    with due as (
      select distinct on (cr.id) cr.id as credential_id, m.id as mandate_id, m.next_due_at,
             lpad(cr.expiry_month::text, 2, '0') || '/' || cr.expiry_year as expiry
        from credentials cr join mandates m on m.credential_id = cr.id
       where m.status = 'active' and m.next_due_at is not null and cr.status = 'active'
         and cr.expiry_month is not null and cr.expiry_year is not null
         and m.next_due_at <= ${asOf.toISOString()}::timestamptz + make_interval(days => ${days})
         and make_timestamptz(cr.expiry_year, cr.expiry_month, 1, 0, 0, 0, 'UTC') + interval '1 month' <= m.next_due_at
       order by cr.id, m.next_due_at, m.id
    ), noted as (
      insert into expiry_notices (credential_id, expiry)
      select credential_id, expiry from due
      on conflict do nothing
      returning credential_id, expiry
    )
    insert into events (type, mandate_id, customer_ref, data)
    select 'credential.expiring', d.mandate_id, cu.ref,
           jsonb_build_object('credential', rebill_mandate_json(d.mandate_id)->'credential', 'expiry', d.expiry,
                              'mandateId', d.mandate_id, 'nextDueAt', rebill_iso(d.next_due_at),
                              'mandateIds', (select jsonb_agg(m2.id order by m2.id) from mandates m2
                                              where m2.credential_id = d.credential_id and m2.status = 'active'))
      from noted n join due d on d.credential_id = n.credential_id
      join mandates m on m.id = d.mandate_id join customers cu on cu.id = m.customer_id
    returning 1`);
  return rows.length;
}
