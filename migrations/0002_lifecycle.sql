CREATE TABLE "state_transitions" (
	"machine" text NOT NULL,
	"from_state" text,
	"to_state" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "mandates" ADD COLUMN "backfill_through_cycle" integer;--> statement-breakpoint
CREATE UNIQUE INDEX "state_transitions_uq" ON "state_transitions" USING btree ("machine","from_state","to_state");--> statement-breakpoint
ALTER TABLE "attempts" ADD CONSTRAINT "attempts_state_check" CHECK ("state" in ('sending', 'unknown', 'authorized', 'refused', 'error', 'not_found', 'not_sent'));--> statement-breakpoint
ALTER TABLE "billing_runs" ADD CONSTRAINT "billing_runs_status_check" CHECK ("status" in ('running', 'completed', 'completed_with_errors', 'failed', 'interrupted'));--> statement-breakpoint
ALTER TABLE "charges" ADD CONSTRAINT "charges_state_check" CHECK ("state" in ('pending', 'retry_scheduled', 'attempting', 'unknown', 'authorized', 'settling', 'settled', 'settle_failed', 'partially_refunded', 'needs_new_credential', 'stopped', 'skipped', 'failed', 'cancelled', 'refunded'));--> statement-breakpoint
ALTER TABLE "credentials" ADD CONSTRAINT "credentials_status_check" CHECK ("status" in ('active', 'blocked'));--> statement-breakpoint
ALTER TABLE "mandates" ADD CONSTRAINT "mandates_status_check" CHECK ("status" in ('active', 'paused', 'needs_new_credential', 'stopped', 'cancelled', 'completed'));--> statement-breakpoint
ALTER TABLE "payment_actions" ADD CONSTRAINT "payment_actions_state_check" CHECK ("state" in ('requested', 'accepted', 'failed'));--> statement-breakpoint
INSERT INTO "state_transitions" ("machine", "from_state", "to_state") VALUES
  ('charge', null, 'pending'),
  ('charge', null, 'skipped'),
  ('charge', 'pending', 'attempting'),
  ('charge', 'pending', 'retry_scheduled'),
  ('charge', 'pending', 'needs_new_credential'),
  ('charge', 'pending', 'stopped'),
  ('charge', 'pending', 'failed'),
  ('charge', 'pending', 'cancelled'),
  ('charge', 'retry_scheduled', 'attempting'),
  ('charge', 'retry_scheduled', 'needs_new_credential'),
  ('charge', 'retry_scheduled', 'stopped'),
  ('charge', 'retry_scheduled', 'failed'),
  ('charge', 'retry_scheduled', 'cancelled'),
  ('charge', 'attempting', 'authorized'),
  ('charge', 'attempting', 'settling'),
  ('charge', 'attempting', 'unknown'),
  ('charge', 'attempting', 'pending'),
  ('charge', 'attempting', 'retry_scheduled'),
  ('charge', 'attempting', 'needs_new_credential'),
  ('charge', 'attempting', 'stopped'),
  ('charge', 'attempting', 'failed'),
  ('charge', 'attempting', 'cancelled'),
  ('charge', 'unknown', 'authorized'),
  ('charge', 'unknown', 'settling'),
  ('charge', 'unknown', 'retry_scheduled'),
  ('charge', 'unknown', 'needs_new_credential'),
  ('charge', 'unknown', 'stopped'),
  ('charge', 'unknown', 'failed'),
  ('charge', 'unknown', 'cancelled'),
  ('charge', 'authorized', 'settling'),
  ('charge', 'authorized', 'settled'),
  ('charge', 'authorized', 'settle_failed'),
  ('charge', 'authorized', 'cancelled'),
  ('charge', 'authorized', 'refunded'),
  ('charge', 'settling', 'settled'),
  ('charge', 'settling', 'settle_failed'),
  ('charge', 'settling', 'cancelled'),
  ('charge', 'settling', 'refunded'),
  ('charge', 'settling', 'partially_refunded'),
  ('charge', 'settled', 'refunded'),
  ('charge', 'settled', 'partially_refunded'),
  ('charge', 'settle_failed', 'settling'),
  ('charge', 'settle_failed', 'settled'),
  ('charge', 'partially_refunded', 'refunded'),
  ('charge', 'needs_new_credential', 'retry_scheduled'),
  ('charge', 'needs_new_credential', 'cancelled'),
  ('charge', 'needs_new_credential', 'failed'),
  ('charge', 'stopped', 'retry_scheduled'),
  ('charge', 'stopped', 'cancelled'),
  ('mandate', null, 'active'),
  ('mandate', 'active', 'paused'),
  ('mandate', 'active', 'needs_new_credential'),
  ('mandate', 'active', 'stopped'),
  ('mandate', 'active', 'cancelled'),
  ('mandate', 'active', 'completed'),
  ('mandate', 'paused', 'active'),
  ('mandate', 'paused', 'cancelled'),
  ('mandate', 'paused', 'completed'),
  ('mandate', 'needs_new_credential', 'active'),
  ('mandate', 'needs_new_credential', 'paused'),
  ('mandate', 'needs_new_credential', 'cancelled'),
  ('mandate', 'stopped', 'active'),
  ('mandate', 'stopped', 'paused'),
  ('mandate', 'stopped', 'cancelled'),
  ('attempt', null, 'sending'),
  ('attempt', 'sending', 'authorized'),
  ('attempt', 'sending', 'refused'),
  ('attempt', 'sending', 'error'),
  ('attempt', 'sending', 'unknown'),
  ('attempt', 'sending', 'not_found'),
  ('attempt', 'sending', 'not_sent'),
  ('attempt', 'unknown', 'authorized'),
  ('attempt', 'unknown', 'refused'),
  ('attempt', 'unknown', 'error'),
  ('attempt', 'unknown', 'not_found'),
  ('payment_action', null, 'requested'),
  ('payment_action', 'requested', 'accepted'),
  ('payment_action', 'requested', 'failed'),
  ('run', null, 'running'),
  ('run', 'running', 'completed'),
  ('run', 'running', 'completed_with_errors'),
  ('run', 'running', 'failed'),
  ('run', 'running', 'interrupted'),
  ('credential', null, 'active'),
  ('credential', 'active', 'blocked');--> statement-breakpoint

-- The backstop of the one door: a change of state that `state_transitions` does not list is
-- refused whoever sends it. The WHEN clause keeps the trigger off updates that leave the state
-- as it was (leases, amounts), so the hot path pays only for real moves.
CREATE FUNCTION "rebill_guard_transition"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  old_state text := to_jsonb(OLD) ->> TG_ARGV[1];
  new_state text := to_jsonb(NEW) ->> TG_ARGV[1];
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM state_transitions
     WHERE machine = TG_ARGV[0] AND from_state = old_state AND to_state = new_state
  ) THEN
    RAISE EXCEPTION '% % cannot go from % to %', TG_ARGV[0], OLD.id, old_state, new_state
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER "charges_transition_guard" BEFORE UPDATE OF "state" ON "charges" FOR EACH ROW
  WHEN (OLD."state" IS DISTINCT FROM NEW."state") EXECUTE FUNCTION "rebill_guard_transition"('charge', 'state');--> statement-breakpoint
CREATE TRIGGER "mandates_transition_guard" BEFORE UPDATE OF "status" ON "mandates" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status") EXECUTE FUNCTION "rebill_guard_transition"('mandate', 'status');--> statement-breakpoint
CREATE TRIGGER "attempts_transition_guard" BEFORE UPDATE OF "state" ON "attempts" FOR EACH ROW
  WHEN (OLD."state" IS DISTINCT FROM NEW."state") EXECUTE FUNCTION "rebill_guard_transition"('attempt', 'state');--> statement-breakpoint
CREATE TRIGGER "payment_actions_transition_guard" BEFORE UPDATE OF "state" ON "payment_actions" FOR EACH ROW
  WHEN (OLD."state" IS DISTINCT FROM NEW."state") EXECUTE FUNCTION "rebill_guard_transition"('payment_action', 'state');--> statement-breakpoint
CREATE TRIGGER "billing_runs_transition_guard" BEFORE UPDATE OF "status" ON "billing_runs" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status") EXECUTE FUNCTION "rebill_guard_transition"('run', 'status');--> statement-breakpoint
CREATE TRIGGER "credentials_transition_guard" BEFORE UPDATE OF "status" ON "credentials" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status") EXECUTE FUNCTION "rebill_guard_transition"('credential', 'status');
