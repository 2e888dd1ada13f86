-- A charge's dispute, from Worldpay's informationRequested and chargedBack events (one per
-- charge). Its status follows src/domain/lifecycle.ts disputeMachine: the pairs join
-- state_transitions and a trigger refuses any other change, whoever sends it.
CREATE TABLE "disputes" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"charge_id" bigint NOT NULL,
	"status" text NOT NULL,
	"amount" bigint NOT NULL,
	"currency" text NOT NULL,
	"reason_code" text,
	"reason" text,
	"disputed_at" timestamp with time zone NOT NULL,
	"charged_back_at" timestamp with time zone,
	"opened_by_event_id" text NOT NULL,
	"charged_back_event_id" text,
	"policy" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "disputes_charge_id_unique" UNIQUE("charge_id"),
	CONSTRAINT "disputes_status_check" CHECK ("status" in ('information_requested', 'charged_back'))
);
--> statement-breakpoint
ALTER TABLE "disputes" ADD CONSTRAINT "disputes_charge_id_charges_id_fk" FOREIGN KEY ("charge_id") REFERENCES "public"."charges"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "disputes_status_idx" ON "disputes" USING btree ("status");--> statement-breakpoint
INSERT INTO "state_transitions" ("machine", "from_state", "to_state") VALUES
  ('dispute', null, 'information_requested'),
  ('dispute', null, 'charged_back'),
  ('dispute', 'information_requested', 'charged_back');--> statement-breakpoint
CREATE TRIGGER "disputes_transition_guard" BEFORE UPDATE OF "status" ON "disputes" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status") EXECUTE FUNCTION "rebill_guard_status"('dispute');
