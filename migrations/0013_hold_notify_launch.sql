-- A cancel or pause wins at the POST (src/billing/charge/holds.ts, docs/operations.md).
-- `launched_at`: committed right before an attempt's request goes out (sql/write-ahead.ts
-- `launchAttempts`); an attempt still `sending` without it provably never left its process, and
-- recovery records it `not_sent`, counted in no ledger.
ALTER TABLE "attempts" ADD COLUMN "launched_at" timestamp with time zone;--> statement-breakpoint
-- Every change of a mandate's status is announced on `rebill_mandate_status` ("<id> <status>"),
-- delivered at its commit to every process that listens: each sender keeps the mandates held
-- since its attempts were launched and sends nothing of theirs. A trigger, so no path that moves
-- a mandate (an operator's pause or cancel, dunning's, a period end's) can forget it.
CREATE FUNCTION "rebill_notify_mandate_status"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('rebill_mandate_status', NEW."id"::text || ' ' || NEW."status");
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER "mandates_status_notify" AFTER UPDATE OF "status" ON "mandates" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status") EXECUTE FUNCTION "rebill_notify_mandate_status"();
