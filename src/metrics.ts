import { sql } from 'drizzle-orm';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BillingMetrics } from './billing/context.ts';
import type { Database } from './db/client.ts';

/**
 * Prometheus metrics of one process, in a registry of its own (so two daemons in one test
 * process, or a library user, never collide on the global one). Counters and histograms are
 * fed by the billing code through BillingMetrics; the backlog gauges are read from the
 * database at scrape time, so every replica reports the same truth.
 */
export interface Metrics {
  registry: Registry;
  billing: BillingMetrics;
  runFinished(trigger: string, status: string, seconds: number): void;
  /** One daemon tick: `ran`, `empty` (nothing to do: no run recorded), `not-elected`, `busy` or `failed`. */
  tick(outcome: string): void;
  webhook(outcome: string): void;
  /** One outbound webhook delivery attempt: delivered, retried or failed (for good). */
  delivery(result: string): void;
  /** Refresh the database-backed gauges (one query), then render the text exposition. */
  render(): Promise<string>;
  contentType: string;
}

export function createMetrics(database: Database): Metrics {
  const registry = new Registry();
  const attempts = new Counter({
    name: 'rebill_charge_attempts_total',
    help: 'Authorization attempts by outcome, gateway and refusal code',
    labelNames: ['outcome', 'gateway', 'refusal_code'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'rebill_gateway_request_seconds',
    help: 'Gateway request latency by operation',
    labelNames: ['op'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [registry],
  });
  const takeovers = new Counter({
    name: 'rebill_lease_takeovers_total',
    help: 'Charges claimed after another worker let its lease expire',
    registers: [registry],
  });
  const runs = new Histogram({
    name: 'rebill_run_duration_seconds',
    help: 'Billing run duration by trigger and final status',
    labelNames: ['trigger', 'status'] as const,
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
    registers: [registry],
  });
  const ticks = new Counter({
    name: 'rebill_daemon_ticks_total',
    help: 'Daemon ticks by outcome (ran, empty: nothing to do and no run recorded, not-elected, busy, failed)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const webhooks = new Counter({
    name: 'rebill_webhook_events_total',
    help: 'Worldpay webhook deliveries by outcome (applied, duplicate, unknown_reference, bad_signature, ignored)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const unknown = new Gauge({
    name: 'rebill_unknown_attempts',
    help: 'Authorization attempts whose outcome is not known yet (sending or unknown)',
    registers: [registry],
  });
  const unknownAge = new Gauge({
    name: 'rebill_unknown_attempt_oldest_age_seconds',
    help: 'Age of the oldest authorization attempt whose outcome is not known (0 when none)',
    registers: [registry],
  });
  const backlog = new Gauge({
    name: 'rebill_retry_backlog',
    help: 'Charges waiting for a retry (retry_scheduled)',
    registers: [registry],
  });
  const pendingActions = new Gauge({
    name: 'rebill_payment_actions_pending',
    help: 'Payment actions (settle, refund, ...) requested without a known outcome',
    registers: [registry],
  });

  const deliveries = new Counter({
    name: 'rebill_webhook_deliveries_total',
    help: 'Outbound webhook delivery attempts by result (delivered, retried, failed for good)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const undeliveredAge = new Gauge({
    name: 'rebill_webhook_oldest_undelivered_age_seconds',
    help: 'Age of the oldest event still waiting to be delivered to an endpoint (0 when none)',
    registers: [registry],
  });
  const unsequencedAge = new Gauge({
    name: 'rebill_events_oldest_unsequenced_age_seconds',
    help: 'Age of the oldest committed event still waiting for its id (held by an older transaction still open in this database; 0 when none)',
    registers: [registry],
  });
  const disabledEndpoints = new Gauge({
    name: 'rebill_webhook_endpoints_disabled',
    help: 'Webhook endpoints disabled after failing every delivery for the give-up window',
    registers: [registry],
  });

  async function refresh(): Promise<void> {
    // One row (a select without FROM): counts (int8) and ages in seconds (numeric), as numbers.
    const rows = await database.rows<{
      unknown: number;
      oldest: number;
      backlog: number;
      pending: number;
      undelivered: number;
      unsequenced: number;
      disabled: number;
    }>(sql`select
        (select count(*) from attempts where state in ('sending', 'unknown')) as unknown,
        (select coalesce(extract(epoch from now() - min(sent_at)), 0) from attempts where state in ('sending', 'unknown')) as oldest,
        (select count(*) from charges where state = 'retry_scheduled') as backlog,
        (select count(*) from payment_actions where state = 'requested') as pending,
        (select coalesce(extract(epoch from now() - min(e.created_at)), 0)
           from webhook_deliveries d join events e on e.id = d.event_id where d.state = 'pending') as undelivered,
        (select coalesce(extract(epoch from now() - min(created_at)), 0) from events where id is null) as unsequenced,
        (select count(*) from webhook_endpoints where status = 'disabled') as disabled`);
    const r = rows[0];
    if (!r) return;
    unknown.set(r.unknown);
    unknownAge.set(Math.max(0, r.oldest));
    backlog.set(r.backlog);
    pendingActions.set(r.pending);
    undeliveredAge.set(Math.max(0, r.undelivered));
    unsequencedAge.set(Math.max(0, r.unsequenced));
    disabledEndpoints.set(r.disabled);
  }

  return {
    registry,
    contentType: registry.contentType,
    billing: {
      attempt(outcome, gateway, refusalCode) {
        attempts.inc({ outcome, gateway, refusal_code: refusalCode ?? '' });
      },
      gatewayLatency(op, seconds) {
        latency.observe({ op }, seconds);
      },
      leaseTakeover() {
        takeovers.inc();
      },
    },
    runFinished(trigger, status, seconds) {
      runs.observe({ trigger, status }, seconds);
    },
    tick(outcome) {
      ticks.inc({ outcome });
    },
    webhook(outcome) {
      webhooks.inc({ outcome });
    },
    delivery(result) {
      deliveries.inc({ result });
    },
    async render() {
      await refresh();
      return registry.metrics();
    },
  };
}
