CREATE TABLE "attempts" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"charge_id" bigint NOT NULL,
	"credential_id" bigint NOT NULL,
	"attempt_no" integer NOT NULL,
	"transaction_reference" text NOT NULL,
	"kind" text NOT NULL,
	"link_href" text,
	"state" text DEFAULT 'sending' NOT NULL,
	"fence" bigint NOT NULL,
	"http_status" integer,
	"outcome" text,
	"refusal_code" text,
	"refusal_description" text,
	"advice_code" text,
	"decision" text,
	"decision_reason" text,
	"retry_at" timestamp with time zone,
	"correlation_id" text,
	"latency_ms" integer,
	"scheme_reference" text,
	"auth_code" text,
	"gateway_payment_id" text,
	"error" text,
	"attempted_at" timestamp with time zone NOT NULL,
	"sent_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "attempts_transaction_reference_unique" UNIQUE("transaction_reference")
);
--> statement-breakpoint
CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"entity_type" text NOT NULL,
	"entity_id" bigint NOT NULL,
	"from_state" text,
	"to_state" text NOT NULL,
	"reason" text,
	"actor" text DEFAULT 'system' NOT NULL,
	"run_id" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "billing_runs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"trigger" text NOT NULL,
	"as_of" timestamp with time zone NOT NULL,
	"dry_run" boolean DEFAULT false NOT NULL,
	"mandate_id" bigint,
	"limit" integer,
	"status" text DEFAULT 'running' NOT NULL,
	"counts" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"owner" text,
	"error" text,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "charges" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"mandate_id" bigint NOT NULL,
	"cycle" integer NOT NULL,
	"amount" bigint NOT NULL,
	"currency" text NOT NULL,
	"due_at" timestamp with time zone NOT NULL,
	"state" text DEFAULT 'pending' NOT NULL,
	"state_reason" text,
	"next_attempt_at" timestamp with time zone,
	"attempt_count" integer DEFAULT 0 NOT NULL,
	"lease_owner" text,
	"lease_expires_at" timestamp with time zone,
	"fence" bigint DEFAULT 0 NOT NULL,
	"authorized_attempt_id" bigint,
	"settled_amount" bigint DEFAULT 0 NOT NULL,
	"refunded_amount" bigint DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "credentials" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"customer_id" bigint NOT NULL,
	"gateway" text DEFAULT 'worldpay' NOT NULL,
	"instrument_type" text NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"status_reason" text,
	"brand" text,
	"bin" text,
	"last_four" text,
	"expiry_month" smallint,
	"expiry_year" smallint,
	"card_holder_name" text,
	"token_href" text,
	"vaulted_card_id" text,
	"encrypted_pan" text,
	"fingerprint" text,
	"scheme_reference" text,
	"current_link_id" bigint,
	"migrated_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "cron_slots" (
	"name" text PRIMARY KEY NOT NULL,
	"last_slot" timestamp with time zone NOT NULL,
	"owner" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "customers" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"ref" text NOT NULL,
	"name" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "customers_ref_unique" UNIQUE("ref")
);
--> statement-breakpoint
CREATE TABLE "idempotency_keys" (
	"key" text PRIMARY KEY NOT NULL,
	"method" text NOT NULL,
	"path" text NOT NULL,
	"request_hash" text NOT NULL,
	"status_code" integer,
	"response" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "links" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"credential_id" bigint,
	"attempt_id" bigint,
	"action_id" bigint,
	"source" text NOT NULL,
	"rel" text NOT NULL,
	"href" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "mandates" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"customer_id" bigint NOT NULL,
	"credential_id" bigint NOT NULL,
	"gateway" text DEFAULT 'worldpay' NOT NULL,
	"intent" text NOT NULL,
	"amount" bigint NOT NULL,
	"currency" text NOT NULL,
	"entity" text NOT NULL,
	"narrative" text NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"status_reason" text,
	"interval_unit" text,
	"interval_count" integer,
	"timezone" text DEFAULT 'UTC' NOT NULL,
	"anchor_at" timestamp with time zone NOT NULL,
	"anchor_cycle" integer DEFAULT 0 NOT NULL,
	"start_at" timestamp with time zone NOT NULL,
	"end_at" timestamp with time zone,
	"trial_end_at" timestamp with time zone,
	"instalments_total" integer,
	"last_instalment_amount" bigint,
	"cancel_at_period_end" boolean DEFAULT false NOT NULL,
	"next_cycle" integer DEFAULT 0 NOT NULL,
	"next_due_at" timestamp with time zone,
	"settle_mode" text DEFAULT 'full' NOT NULL,
	"settle_percent" integer,
	"legacy_id" text,
	"legacy_hash" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "mandates_legacy_id_unique" UNIQUE("legacy_id")
);
--> statement-breakpoint
CREATE TABLE "payment_actions" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"charge_id" bigint NOT NULL,
	"attempt_id" bigint NOT NULL,
	"kind" text NOT NULL,
	"reference" text NOT NULL,
	"amount" bigint,
	"currency" text,
	"state" text DEFAULT 'requested' NOT NULL,
	"link_href" text NOT NULL,
	"http_status" integer,
	"correlation_id" text,
	"error" text,
	"last_event" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "payment_actions_reference_unique" UNIQUE("reference")
);
--> statement-breakpoint
CREATE TABLE "payment_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"attempt_id" bigint,
	"event_id" text,
	"source" text NOT NULL,
	"last_event" text NOT NULL,
	"transaction_reference" text,
	"payload" jsonb,
	"occurred_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "payment_events_event_id_unique" UNIQUE("event_id")
);
--> statement-breakpoint
ALTER TABLE "attempts" ADD CONSTRAINT "attempts_charge_id_charges_id_fk" FOREIGN KEY ("charge_id") REFERENCES "public"."charges"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "attempts" ADD CONSTRAINT "attempts_credential_id_credentials_id_fk" FOREIGN KEY ("credential_id") REFERENCES "public"."credentials"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "charges" ADD CONSTRAINT "charges_mandate_id_mandates_id_fk" FOREIGN KEY ("mandate_id") REFERENCES "public"."mandates"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "credentials" ADD CONSTRAINT "credentials_customer_id_customers_id_fk" FOREIGN KEY ("customer_id") REFERENCES "public"."customers"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "links" ADD CONSTRAINT "links_credential_id_credentials_id_fk" FOREIGN KEY ("credential_id") REFERENCES "public"."credentials"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mandates" ADD CONSTRAINT "mandates_customer_id_customers_id_fk" FOREIGN KEY ("customer_id") REFERENCES "public"."customers"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mandates" ADD CONSTRAINT "mandates_credential_id_credentials_id_fk" FOREIGN KEY ("credential_id") REFERENCES "public"."credentials"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "payment_actions" ADD CONSTRAINT "payment_actions_charge_id_charges_id_fk" FOREIGN KEY ("charge_id") REFERENCES "public"."charges"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "payment_actions" ADD CONSTRAINT "payment_actions_attempt_id_attempts_id_fk" FOREIGN KEY ("attempt_id") REFERENCES "public"."attempts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "payment_events" ADD CONSTRAINT "payment_events_attempt_id_attempts_id_fk" FOREIGN KEY ("attempt_id") REFERENCES "public"."attempts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "attempts_charge_no_uq" ON "attempts" USING btree ("charge_id","attempt_no");--> statement-breakpoint
CREATE INDEX "attempts_credential_time_idx" ON "attempts" USING btree ("credential_id","attempted_at");--> statement-breakpoint
CREATE INDEX "attempts_open_idx" ON "attempts" USING btree ("state") WHERE "attempts"."state" in ('sending', 'unknown');--> statement-breakpoint
CREATE INDEX "audit_log_entity_idx" ON "audit_log" USING btree ("entity_type","entity_id");--> statement-breakpoint
CREATE UNIQUE INDEX "charges_mandate_cycle_uq" ON "charges" USING btree ("mandate_id","cycle");--> statement-breakpoint
CREATE INDEX "charges_work_idx" ON "charges" USING btree ("next_attempt_at") WHERE "charges"."state" in ('pending', 'retry_scheduled', 'unknown', 'authorized');--> statement-breakpoint
CREATE INDEX "charges_state_idx" ON "charges" USING btree ("state");--> statement-breakpoint
CREATE INDEX "credentials_customer_idx" ON "credentials" USING btree ("customer_id");--> statement-breakpoint
CREATE UNIQUE INDEX "credentials_customer_fingerprint_uq" ON "credentials" USING btree ("customer_id","fingerprint");--> statement-breakpoint
CREATE INDEX "links_credential_idx" ON "links" USING btree ("credential_id");--> statement-breakpoint
CREATE INDEX "links_attempt_idx" ON "links" USING btree ("attempt_id");--> statement-breakpoint
CREATE INDEX "mandates_due_idx" ON "mandates" USING btree ("next_due_at") WHERE "mandates"."status" = 'active' and "mandates"."next_due_at" is not null;--> statement-breakpoint
CREATE INDEX "mandates_customer_idx" ON "mandates" USING btree ("customer_id");--> statement-breakpoint
CREATE INDEX "mandates_credential_idx" ON "mandates" USING btree ("credential_id");--> statement-breakpoint
CREATE INDEX "payment_actions_charge_idx" ON "payment_actions" USING btree ("charge_id");--> statement-breakpoint
CREATE INDEX "payment_events_attempt_idx" ON "payment_events" USING btree ("attempt_id");