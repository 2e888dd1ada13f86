-- PayPal payments an operator manages (Worldpay's APM "manage PayPal payments" page): the
-- payment as tracked by its action:events link, every link Worldpay answered with (append-only,
-- like card links), and each refund written ahead before it is sent. A refund's state moves only
-- as src/domain/lifecycle.ts paypalRefundMachine allows: its pairs join state_transitions and a
-- trigger refuses any other move.
CREATE TABLE "paypal_links" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"payment_id" bigint NOT NULL,
	"refund_id" bigint,
	"source" text NOT NULL,
	"rel" text NOT NULL,
	"href" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "paypal_payments" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"events_href" text NOT NULL,
	"amount" bigint NOT NULL,
	"currency" text NOT NULL,
	"transaction_reference" text,
	"customer_ref" text,
	"mandate_id" bigint,
	"last_event" text NOT NULL,
	"checked_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "paypal_payments_events_href_unique" UNIQUE("events_href"),
	CONSTRAINT "paypal_payments_transaction_reference_unique" UNIQUE("transaction_reference")
);
--> statement-breakpoint
CREATE TABLE "paypal_refunds" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"payment_id" bigint NOT NULL,
	"kind" text NOT NULL,
	"reference" text NOT NULL,
	"amount" bigint NOT NULL,
	"currency" text NOT NULL,
	"state" text DEFAULT 'requested' NOT NULL,
	"link_href" text NOT NULL,
	"http_status" integer,
	"correlation_id" text,
	"error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "paypal_refunds_reference_unique" UNIQUE("reference"),
	CONSTRAINT "paypal_refunds_state_check" CHECK ("state" in ('requested', 'accepted', 'failed'))
);
--> statement-breakpoint
ALTER TABLE "paypal_links" ADD CONSTRAINT "paypal_links_payment_id_paypal_payments_id_fk" FOREIGN KEY ("payment_id") REFERENCES "public"."paypal_payments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "paypal_payments" ADD CONSTRAINT "paypal_payments_mandate_id_mandates_id_fk" FOREIGN KEY ("mandate_id") REFERENCES "public"."mandates"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "paypal_refunds" ADD CONSTRAINT "paypal_refunds_payment_id_paypal_payments_id_fk" FOREIGN KEY ("payment_id") REFERENCES "public"."paypal_payments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "paypal_links_payment_idx" ON "paypal_links" USING btree ("payment_id");--> statement-breakpoint
CREATE INDEX "paypal_payments_customer_idx" ON "paypal_payments" USING btree ("customer_ref");--> statement-breakpoint
CREATE INDEX "paypal_payments_mandate_idx" ON "paypal_payments" USING btree ("mandate_id");--> statement-breakpoint
CREATE INDEX "paypal_refunds_payment_idx" ON "paypal_refunds" USING btree ("payment_id");--> statement-breakpoint
INSERT INTO "state_transitions" ("machine", "from_state", "to_state") VALUES
  ('paypal_refund', null, 'requested'),
  ('paypal_refund', 'requested', 'accepted'),
  ('paypal_refund', 'requested', 'failed'),
  ('paypal_refund', 'accepted', 'failed');--> statement-breakpoint
CREATE TRIGGER "paypal_refunds_transition_guard" BEFORE UPDATE OF "state" ON "paypal_refunds" FOR EACH ROW
  WHEN (OLD."state" IS DISTINCT FROM NEW."state") EXECUTE FUNCTION "rebill_guard_state"('paypal_refund');
