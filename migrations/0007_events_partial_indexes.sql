DROP INDEX "events_id_uq";--> statement-breakpoint
DROP INDEX "events_mandate_idx";--> statement-breakpoint
DROP INDEX "events_type_idx";--> statement-breakpoint
CREATE UNIQUE INDEX "events_id_uq" ON "events" USING btree ("id") WHERE "events"."id" is not null;--> statement-breakpoint
CREATE INDEX "events_mandate_idx" ON "events" USING btree ("mandate_id","id") WHERE "events"."id" is not null;--> statement-breakpoint
CREATE INDEX "events_type_idx" ON "events" USING btree ("type","id") WHERE "events"."id" is not null;--> statement-breakpoint
-- The two views as PL/pgSQL: a SQL-language function that is not inlined is planned again on
-- every call, which the outbox trigger makes once per event on the hot path; PL/pgSQL keeps
-- its plans for the session. Same text, same answer.
CREATE OR REPLACE FUNCTION "rebill_mandate_json"(mid bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (select jsonb_build_object(
    'id', m.id, 'customerRef', cu.ref, 'intent', m.intent, 'amount', m.amount, 'currency', m.currency,
    'entity', m.entity, 'narrative', m.narrative, 'gateway', m.gateway, 'status', m.status,
    'statusReason', m.status_reason,
    'interval', case when m.interval_unit is null then null else m.interval_count || ' ' || m.interval_unit end,
    'timezone', m.timezone, 'startAt', rebill_iso(m.start_at), 'anchorAt', rebill_iso(m.anchor_at),
    'endAt', rebill_iso(m.end_at), 'instalmentsTotal', m.instalments_total,
    'lastInstalmentAmount', m.last_instalment_amount, 'nextCycle', m.next_cycle,
    'nextDueAt', rebill_iso(m.next_due_at), 'cancelAtPeriodEnd', m.cancel_at_period_end,
    'settleMode', m.settle_mode, 'legacyId', m.legacy_id, 'creditBalance', m.credit_balance,
    'credential', jsonb_build_object(
      'id', cr.id, 'instrumentType', cr.instrument_type, 'status', cr.status, 'brand', cr.brand,
      'lastFour', cr.last_four,
      'expiry', case when cr.expiry_month is null or cr.expiry_year is null then null
                     else lpad(cr.expiry_month::text, 2, '0') || '/' || cr.expiry_year end,
      'currentLink', l.href, 'holdsCardData', cr.encrypted_pan is not null),
    'createdAt', rebill_iso(m.created_at))
  from mandates m join customers cu on cu.id = m.customer_id join credentials cr on cr.id = m.credential_id
  left join links l on l.id = cr.current_link_id
  where m.id = mid);
END
$$;--> statement-breakpoint
CREATE OR REPLACE FUNCTION "rebill_charge_json"(cid bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (select jsonb_build_object(
    'id', c.id, 'mandateId', c.mandate_id, 'cycle', c.cycle, 'kind', c.kind, 'amount', c.amount,
    'creditApplied', c.credit_applied, 'currency', c.currency,
    'state', c.state, 'stateReason', c.state_reason, 'dueAt', rebill_iso(c.due_at),
    'nextAttemptAt', rebill_iso(c.next_attempt_at), 'attemptCount', c.attempt_count,
    'settledAmount', c.settled_amount, 'refundedAmount', c.refunded_amount,
    'transactionReference', pa.transaction_reference,
    'lastAttempt', case when la.id is null then null else jsonb_build_object(
      'reference', la.transaction_reference, 'state', la.state, 'refusalCode', la.refusal_code,
      'refusalDescription', la.refusal_description, 'adviceCode', la.advice_code,
      'decision', la.decision, 'decisionReason', la.decision_reason, 'correlationId', la.correlation_id) end,
    'updatedAt', rebill_iso(c.updated_at))
  from charges c
  left join attempts pa on pa.id = c.authorized_attempt_id
  left join lateral (select * from attempts a where a.charge_id = c.id order by a.attempt_no desc limit 1) la on true
  where c.id = cid);
END
$$;
