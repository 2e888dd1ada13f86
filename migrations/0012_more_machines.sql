-- Three more state machines of src/domain/lifecycle.ts under the transition guard of migrations
-- 0002 and 0009: a mandate's scheduled change, a webhook delivery and a webhook endpoint. Their
-- pairs join `state_transitions` (test/lifecycle.test.ts checks it equals the code's tables),
-- and a trigger on each table refuses any other change of its state, whoever sends it.
INSERT INTO "state_transitions" ("machine", "from_state", "to_state") VALUES
  ('mandate_change', null, 'scheduled'),
  ('mandate_change', 'scheduled', 'applied'),
  ('mandate_change', 'scheduled', 'cancelled'),
  ('webhook_delivery', null, 'pending'),
  ('webhook_delivery', 'pending', 'delivered'),
  ('webhook_delivery', 'pending', 'failed'),
  ('webhook_delivery', 'delivered', 'pending'),
  ('webhook_delivery', 'failed', 'pending'),
  ('webhook_endpoint', null, 'enabled'),
  ('webhook_endpoint', 'enabled', 'disabled'),
  ('webhook_endpoint', 'enabled', 'removed'),
  ('webhook_endpoint', 'disabled', 'removed');--> statement-breakpoint
CREATE TRIGGER "mandate_changes_transition_guard" BEFORE UPDATE OF "state" ON "mandate_changes" FOR EACH ROW
  WHEN (OLD."state" IS DISTINCT FROM NEW."state") EXECUTE FUNCTION "rebill_guard_state"('mandate_change');--> statement-breakpoint
CREATE TRIGGER "webhook_deliveries_transition_guard" BEFORE UPDATE OF "state" ON "webhook_deliveries" FOR EACH ROW
  WHEN (OLD."state" IS DISTINCT FROM NEW."state") EXECUTE FUNCTION "rebill_guard_state"('webhook_delivery');--> statement-breakpoint
CREATE TRIGGER "webhook_endpoints_transition_guard" BEFORE UPDATE OF "status" ON "webhook_endpoints" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status") EXECUTE FUNCTION "rebill_guard_status"('webhook_endpoint');
