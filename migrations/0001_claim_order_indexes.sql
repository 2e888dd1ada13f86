DROP INDEX "charges_work_idx";--> statement-breakpoint
DROP INDEX "mandates_due_idx";--> statement-breakpoint
CREATE INDEX "charges_work_idx" ON "charges" USING btree ("next_attempt_at","id") WHERE "charges"."state" in ('pending', 'retry_scheduled', 'unknown', 'authorized');--> statement-breakpoint
CREATE INDEX "mandates_due_idx" ON "mandates" USING btree ("next_due_at","id") WHERE "mandates"."status" = 'active' and "mandates"."next_due_at" is not null;