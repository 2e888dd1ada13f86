ALTER TABLE "credentials" ADD COLUMN "lease_owner" text;--> statement-breakpoint
ALTER TABLE "credentials" ADD COLUMN "lease_expires_at" timestamp with time zone;--> statement-breakpoint
-- A run's lease, the outcome's move to the next link and the release at the run's end update
-- a credential up to three times per charge, none of them an indexed column: room on each page
-- for the next version makes them HOT (no index entry). Existing pages get it when rewritten.
ALTER TABLE "credentials" SET (fillfactor = 70);
