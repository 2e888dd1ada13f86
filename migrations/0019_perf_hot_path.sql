-- What a charge makes PostgreSQL write (docs/benchmark.md, December 2026, morning).
-- charges_state_idx no longer indexes the states every charge passes through that
-- charges_work_idx already finds (its predicate covers pending and authorized): a charge's
-- materialisation and its authorization write no entry here. The reads by state (recovery's
-- attempting and unknown, follow-up's settling, the console's lists) still use it.
DROP INDEX "charges_state_idx";--> statement-breakpoint
CREATE INDEX "charges_state_idx" ON "charges" USING btree ("state") WHERE "charges"."state" not in ('pending', 'authorized');--> statement-breakpoint
-- Room on each page for a row's next version, so an update that changes no indexed column is
-- HOT (no index entry): the claim's lease and fence on a charge, the launch's launched_at on an
-- attempt. A state change is never HOT: state is read by an index's key or predicate on both.
-- Pages written from now on keep the room; existing ones get it when rewritten.
ALTER TABLE "charges" SET (fillfactor = 70);--> statement-breakpoint
ALTER TABLE "attempts" SET (fillfactor = 70);
