-- The transition guard read the moving column through to_jsonb(OLD) and to_jsonb(NEW): two
-- whole rows made into JSON on every state change, twice per charge on the hot path. These two
-- functions read the column itself (one for tables whose column is `state`, one for `status`);
-- the table they check, the WHEN clauses and the error are the same as before.
CREATE FUNCTION "rebill_guard_state"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM state_transitions
     WHERE machine = TG_ARGV[0] AND from_state = OLD.state AND to_state = NEW.state
  ) THEN
    RAISE EXCEPTION '% % cannot go from % to %', TG_ARGV[0], OLD.id, OLD.state, NEW.state
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE FUNCTION "rebill_guard_status"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM state_transitions
     WHERE machine = TG_ARGV[0] AND from_state = OLD.status AND to_state = NEW.status
  ) THEN
    RAISE EXCEPTION '% % cannot go from % to %', TG_ARGV[0], OLD.id, OLD.status, NEW.status
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
DROP TRIGGER "charges_transition_guard" ON "charges";--> statement-breakpoint
CREATE TRIGGER "charges_transition_guard" BEFORE UPDATE OF "state" ON "charges" FOR EACH ROW
  WHEN (OLD."state" IS DISTINCT FROM NEW."state") EXECUTE FUNCTION "rebill_guard_state"('charge');--> statement-breakpoint
DROP TRIGGER "mandates_transition_guard" ON "mandates";--> statement-breakpoint
CREATE TRIGGER "mandates_transition_guard" BEFORE UPDATE OF "status" ON "mandates" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status") EXECUTE FUNCTION "rebill_guard_status"('mandate');--> statement-breakpoint
DROP TRIGGER "attempts_transition_guard" ON "attempts";--> statement-breakpoint
CREATE TRIGGER "attempts_transition_guard" BEFORE UPDATE OF "state" ON "attempts" FOR EACH ROW
  WHEN (OLD."state" IS DISTINCT FROM NEW."state") EXECUTE FUNCTION "rebill_guard_state"('attempt');--> statement-breakpoint
DROP TRIGGER "payment_actions_transition_guard" ON "payment_actions";--> statement-breakpoint
CREATE TRIGGER "payment_actions_transition_guard" BEFORE UPDATE OF "state" ON "payment_actions" FOR EACH ROW
  WHEN (OLD."state" IS DISTINCT FROM NEW."state") EXECUTE FUNCTION "rebill_guard_state"('payment_action');--> statement-breakpoint
DROP TRIGGER "billing_runs_transition_guard" ON "billing_runs";--> statement-breakpoint
CREATE TRIGGER "billing_runs_transition_guard" BEFORE UPDATE OF "status" ON "billing_runs" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status") EXECUTE FUNCTION "rebill_guard_status"('run');--> statement-breakpoint
DROP TRIGGER "credentials_transition_guard" ON "credentials";--> statement-breakpoint
CREATE TRIGGER "credentials_transition_guard" BEFORE UPDATE OF "status" ON "credentials" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status") EXECUTE FUNCTION "rebill_guard_status"('credential');--> statement-breakpoint
DROP FUNCTION "rebill_guard_transition"();
