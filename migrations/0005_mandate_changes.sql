CREATE TABLE "mandate_changes" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"mandate_id" bigint NOT NULL,
	"effective_at" timestamp with time zone NOT NULL,
	"changes" jsonb NOT NULL,
	"proration" text DEFAULT 'none' NOT NULL,
	"state" text DEFAULT 'scheduled' NOT NULL,
	"result" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"applied_at" timestamp with time zone,
	CONSTRAINT "mandate_changes_state_check" CHECK ("state" in ('scheduled', 'applied', 'cancelled')),
	CONSTRAINT "mandate_changes_proration_check" CHECK ("proration" in ('none', 'charge', 'credit'))
);
--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "detail" jsonb;--> statement-breakpoint
ALTER TABLE "charges" ADD COLUMN "kind" text DEFAULT 'cycle' NOT NULL;--> statement-breakpoint
ALTER TABLE "charges" ADD COLUMN "credit_applied" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "mandates" ADD COLUMN "credit_balance" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "mandate_changes_due_idx" ON "mandate_changes" USING btree ("effective_at","id") WHERE "mandate_changes"."state" = 'scheduled';--> statement-breakpoint
CREATE INDEX "mandate_changes_mandate_idx" ON "mandate_changes" USING btree ("mandate_id","id");--> statement-breakpoint
-- Events carry what the API now shows: a mandate's credit, a charge's kind and the credit it used;
-- a mandate.updated event carries the change's before and after (audit_log.detail) as `changes`.
CREATE OR REPLACE FUNCTION "rebill_mandate_json"(mid bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
  select jsonb_build_object(
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
  where m.id = mid
$$;--> statement-breakpoint
CREATE OR REPLACE FUNCTION "rebill_charge_json"(cid bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
  select jsonb_build_object(
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
  where c.id = cid
$$;--> statement-breakpoint
CREATE OR REPLACE FUNCTION "rebill_event_from_audit"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  t text;
  extra text;
  mid bigint;
  d jsonb;
  att text;
BEGIN
  IF NEW.entity_type = 'charge' THEN
    IF NEW.from_state IS NOT DISTINCT FROM NEW.to_state OR NEW.to_state IN ('pending', 'attempting', 'skipped') THEN
      RETURN NULL;
    END IF;
    IF NEW.from_state IN ('attempting', 'unknown')
       AND NEW.to_state IN ('retry_scheduled', 'needs_new_credential', 'stopped', 'failed', 'cancelled') THEN
      SELECT a.state INTO att FROM attempts a WHERE a.charge_id = NEW.entity_id ORDER BY a.attempt_no DESC LIMIT 1;
      IF att IS DISTINCT FROM 'refused' THEN
        -- Never reached the issuer (not sent, our credentials, throttled): back to waiting, no news.
        IF NEW.to_state NOT IN ('failed', 'cancelled') THEN RETURN NULL; END IF;
      ELSE
        t := 'charge.refused';
      END IF;
    END IF;
    extra := CASE NEW.to_state
      WHEN 'authorized' THEN 'charge.authorized'
      WHEN 'settling' THEN CASE WHEN NEW.from_state IN ('attempting', 'unknown') THEN 'charge.authorized' END
      WHEN 'settled' THEN 'charge.settled'
      WHEN 'settle_failed' THEN 'charge.settlement_failed'
      WHEN 'refunded' THEN 'charge.refunded'
      WHEN 'partially_refunded' THEN 'charge.partially_refunded'
      WHEN 'cancelled' THEN 'charge.cancelled'
      WHEN 'unknown' THEN 'charge.outcome_unknown'
      WHEN 'failed' THEN 'charge.failed'
      WHEN 'retry_scheduled' THEN 'charge.retry_scheduled'
    END;
    SELECT c.mandate_id INTO mid FROM charges c WHERE c.id = NEW.entity_id;
    d := rebill_charge_json(NEW.entity_id) || jsonb_build_object('previous', jsonb_build_object('state', NEW.from_state));
  ELSIF NEW.entity_type = 'mandate' THEN
    extra := CASE
      WHEN NEW.from_state IS NULL THEN 'mandate.created'
      WHEN NEW.from_state = NEW.to_state THEN 'mandate.updated'
      WHEN NEW.to_state = 'paused' THEN 'mandate.paused'
      WHEN NEW.to_state = 'active' THEN 'mandate.resumed'
      WHEN NEW.to_state = 'cancelled' THEN 'mandate.cancelled'
      WHEN NEW.to_state = 'completed' THEN 'mandate.completed'
      WHEN NEW.to_state = 'stopped' THEN 'mandate.stopped'
      WHEN NEW.to_state = 'needs_new_credential' THEN 'mandate.needs_new_credential'
    END;
    mid := NEW.entity_id;
    d := rebill_mandate_json(NEW.entity_id)
      || jsonb_build_object('previous', jsonb_build_object('status', NEW.from_state), 'reason', NEW.reason)
      || CASE WHEN NEW.detail IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('changes', NEW.detail) END;
  ELSIF NEW.entity_type = 'credential' AND NEW.to_state = 'blocked' THEN
    -- A refusal blocked the card: every mandate on it waits for new card details.
    INSERT INTO events (type, mandate_id, customer_ref, data)
    SELECT 'credential.updated', m.id, cu.ref,
           jsonb_build_object('credential', rebill_mandate_json(m.id)->'credential', 'mandateId', m.id,
                              'reason', NEW.reason, 'previous', jsonb_build_object('status', NEW.from_state))
      FROM mandates m JOIN customers cu ON cu.id = m.customer_id
     WHERE m.credential_id = NEW.entity_id AND m.status NOT IN ('cancelled', 'completed');
    RETURN NULL;
  ELSE
    RETURN NULL;
  END IF;
  IF t IS NULL AND extra IS NULL THEN RETURN NULL; END IF;
  IF t IS NOT NULL THEN
    INSERT INTO events (type, mandate_id, customer_ref, data)
    SELECT t, mid, cu.ref, d FROM mandates m JOIN customers cu ON cu.id = m.customer_id WHERE m.id = mid;
  END IF;
  IF extra IS NOT NULL AND extra IS DISTINCT FROM t THEN
    INSERT INTO events (type, mandate_id, customer_ref, data)
    SELECT extra, mid, cu.ref, d FROM mandates m JOIN customers cu ON cu.id = m.customer_id WHERE m.id = mid;
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
-- The trigger fires only for rows that make an event: a charge written ahead (pending ->
-- attempting, once per charge on the hot path) or created no longer calls the function at all.
DROP TRIGGER "audit_log_events" ON "audit_log";--> statement-breakpoint
CREATE TRIGGER "audit_log_events" AFTER INSERT ON "audit_log"
  FOR EACH ROW WHEN (
    (NEW.entity_type = 'charge' AND NEW.to_state NOT IN ('pending', 'attempting', 'skipped')
      AND NEW.from_state IS DISTINCT FROM NEW.to_state)
    OR NEW.entity_type = 'mandate'
    OR (NEW.entity_type = 'credential' AND NEW.to_state = 'blocked'))
  EXECUTE FUNCTION "rebill_event_from_audit"();
