import { createHmac, timingSafeEqual } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { sql } from 'drizzle-orm';
import { Agent, request } from 'undici';
import type { BillingContext } from '../billing/context.ts';
import {
  disableEndpoint,
  failPendingDeliveries,
  markAttemptFailed,
  markDelivered,
} from '../billing/sql/webhooks.ts';
import { maskCardNumbers } from '../domain/card.ts';
import { errorMessage } from '../errors.ts';
import { appendEvent } from './append.ts';
import { isBlockedAddress } from './endpoints.ts';
import { sequenceEvents } from './sequence.ts';

/**
 * Webhook delivery: claim due deliveries with a lease (FOR UPDATE SKIP LOCKED, as charges are
 * claimed, so replicas split the work and a killed replica's claims come back when its lease
 * ends), POST each, and record the answer under the claim's fence. At least once: a receiver
 * dedupes on the event id. Per mandate in order: a delivery waits while an earlier event of the
 * same mandate is still pending for the same endpoint (delivered or failed for good unblocks it).
 */
const MAX_RESPONSE = 64 * 1024;

export interface DeliveryStats {
  delivered: number;
  retried: number;
  failed: number;
}

export interface Deliverer {
  /** One pass: sequence new events, claim what is due, deliver it. */
  deliverDue(opts?: { limit?: number; dueBy?: Date }): Promise<DeliveryStats & { claimed: number }>;
  /** Passes until nothing is due now (`rebill webhooks deliver`). */
  drain(): Promise<DeliveryStats>;
  close(): Promise<void>;
}

/** HMAC-SHA256(secret, "<t>.<body>"): what one `v1` entry carries. */
const mac = (secret: string, t: number, body: string) =>
  createHmac('sha256', secret).update(`${t}.${body}`).digest();

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one v1 per live secret. */
export function signature(secrets: readonly string[], body: string, t: number): string {
  return [`t=${t}`, ...secrets.map((s) => `v1=${mac(s, t, body).toString('hex')}`)].join(',');
}

/**
 * What a receiver does with `Rebill-Signature` (the README shows the same in a few lines):
 * true when a `v1` matches one of `secrets` and `t` is within the tolerance of `nowSec`.
 */
export function verifySignature(
  header: string,
  body: string,
  secrets: readonly string[],
  nowSec = Date.now() / 1000,
  toleranceSec = 300,
): boolean {
  const parts = header.split(',').map((p) => p.split('='));
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  if (!Number.isInteger(t) || Math.abs(nowSec - t) > toleranceSec) return false;
  const given = parts.filter(([k]) => k === 'v1').map(([, v]) => Buffer.from(v ?? '', 'hex'));
  return secrets.some((s) => {
    const want = mac(s, t, body);
    return given.some((g) => g.length === want.length && timingSafeEqual(g, want));
  });
}

/** The bytes a delivery carries: the same for every attempt of one event. */
export function deliveryBody(e: {
  id: number | string;
  type: string;
  createdAt: Date;
  data: unknown;
}): string {
  return JSON.stringify({
    id: String(e.id),
    type: e.type,
    createdAt: e.createdAt.toISOString(),
    data: e.data,
  });
}

/** The wait before attempt n+1 (n from 1), from the schedule, with ±10 % jitter. */
export function retryDelay(schedule: readonly number[], attempts: number, random = Math.random): number {
  const base = schedule[Math.min(Math.max(attempts, 1), schedule.length) - 1]!;
  return Math.round(base * (0.9 + 0.2 * random()));
}

export function createDeliverer(
  ctx: BillingContext,
  metrics?: { delivery(result: string): void },
): Deliverer {
  const cfg = ctx.config.events;
  const log = ctx.logger.child({ component: 'webhooks' });
  // Name resolution that refuses what a webhook must not reach: checked on the address actually
  // connected to, so a name that resolves to 10.0.0.5 (or rebinds to it later) is refused too.
  const lookup = (
    hostname: string,
    options: object,
    cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return cb(err, []);
      const list = addresses as LookupAddress[];
      if (!cfg.webhookAllowInsecure && list.some((a) => isBlockedAddress(a.address)))
        return cb(
          Object.assign(new Error(`${hostname} resolves to a private address`), { code: 'EBLOCKED' }),
          [],
        );
      const all = (options as { all?: boolean }).all;
      if (all) return cb(null, list);
      cb(null, list[0]!.address, list[0]!.family);
    });
  };
  const agent = new Agent({
    connect: { lookup: lookup as never, timeout: cfg.webhookTimeoutMs },
    headersTimeout: cfg.webhookTimeoutMs,
    bodyTimeout: cfg.webhookTimeoutMs,
    connections: 16,
  });
  const leaseSeconds = Math.ceil((cfg.webhookTimeoutMs * 2) / 1000) + 5;

  async function send(
    url: string,
    body: string,
    headers: Record<string, string>,
  ): Promise<{ status: number | null; response: string | null; error: string | null }> {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    if (!cfg.webhookAllowInsecure && isBlockedAddress(host))
      return { status: null, response: null, error: 'refused: a loopback, private or link-local address' };
    try {
      const res = await request(url, {
        method: 'POST',
        body,
        headers,
        dispatcher: agent,
        signal: AbortSignal.timeout(cfg.webhookTimeoutMs),
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (size < MAX_RESPONSE) chunks.push(chunk.subarray(0, MAX_RESPONSE - size));
        size += chunk.length;
        if (size >= MAX_RESPONSE) break;
      }
      const response = Buffer.concat(chunks).toString('utf8');
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      return { status: res.statusCode, response, error: ok ? null : `HTTP ${res.statusCode}` };
    } catch (err) {
      const e = err as { name?: string; code?: string };
      const reason =
        e.name === 'TimeoutError' || e.name === 'AbortError'
          ? `timed out after ${cfg.webhookTimeoutMs} ms`
          : `${e.code ?? e.name ?? 'error'}: ${errorMessage(err)}`;
      return { status: null, response: null, error: reason.slice(0, 500) };
    }
  }

  async function deliverDue(opts: { limit?: number; dueBy?: Date } = {}) {
    await sequenceEvents(ctx.database);
    const limit = opts.limit ?? 64;
    const dueBy = opts.dueBy ? sql`${opts.dueBy.toISOString()}::timestamptz` : sql`now()`;
    const claimed = await ctx.database.rows<{
      id: number;
      fence: number;
      attempts: number;
      endpoint_id: number;
      url: string;
      secret: string;
      previous_secret: string | null;
      previous_secret_expires_at: Date | null;
      event_id: number;
      type: string;
      event_created_at: Date;
      data: Record<string, unknown>;
    }>(
      sql`with c as (
            select d.id from webhook_deliveries d join webhook_endpoints ep on ep.id = d.endpoint_id
             where d.state = 'pending' and d.next_attempt_at <= ${dueBy}
               and (d.lease_expires_at is null or d.lease_expires_at < now()) and ep.status = 'enabled'
               and not exists (
                 select 1 from webhook_deliveries p
                  where p.endpoint_id = d.endpoint_id and p.mandate_id = d.mandate_id
                    and p.state = 'pending' and p.event_id < d.event_id)
             order by d.next_attempt_at, d.id
             limit ${limit}
             for update of d skip locked
          )
          update webhook_deliveries d set lease_owner = ${ctx.workerId},
                 lease_expires_at = now() + make_interval(secs => ${leaseSeconds}), fence = d.fence + 1
            from c, events e, webhook_endpoints ep
           where d.id = c.id and e.id = d.event_id and ep.id = d.endpoint_id
          returning d.id, d.fence, d.attempts, d.endpoint_id, ep.url, ep.secret, ep.previous_secret,
                    ep.previous_secret_expires_at, e.id as event_id, e.type, e.created_at as event_created_at, e.data`,
    );
    const stats = { delivered: 0, retried: 0, failed: 0, claimed: claimed.length };
    await Promise.all(
      claimed.map(async (r) => {
        const body = deliveryBody({
          id: r.event_id,
          type: r.type,
          createdAt: r.event_created_at,
          data: r.data,
        });
        const secrets = [r.secret];
        const prevUntil = r.previous_secret_expires_at;
        if (r.previous_secret && prevUntil && prevUntil.getTime() > Date.now())
          secrets.push(r.previous_secret);
        const t = Math.floor(Date.now() / 1000);
        const out = await send(r.url, body, {
          'content-type': 'application/json',
          'user-agent': 'rebill-webhooks/1',
          'rebill-event-id': String(r.event_id),
          'rebill-signature': signature(secrets, body, t),
        });
        const result = await record(
          { id: r.id, fence: r.fence, attempts: r.attempts + 1, endpointId: r.endpoint_id },
          r.event_created_at,
          out,
        );
        stats[result]++;
        metrics?.delivery(result);
        if (result !== 'delivered')
          log.info(
            {
              deliveryId: r.id,
              eventId: String(r.event_id),
              endpointId: r.endpoint_id,
              error: out.error,
            },
            result === 'failed' ? 'webhook delivery failed for good' : 'webhook delivery failed; will retry',
          );
      }),
    );
    return stats;
  }

  /** Write one attempt's result, only while the claim's fence holds. */
  async function record(
    d: { id: number; fence: number; attempts: number; endpointId: number },
    eventCreatedAt: Date,
    out: { status: number | null; response: string | null; error: string | null },
  ): Promise<keyof DeliveryStats> {
    // A receiver may echo what it was sent or anything else: card-like digit runs never get stored.
    const response = out.response === null ? null : maskCardNumbers(out.response.replaceAll('\u0000', ''));
    if (out.error === null) {
      await ctx.database.db.transaction(async (tx) => {
        await markDelivered(ctx.database, tx, { ...d, status: out.status, response });
        await ctx.database.rows(
          sql`update webhook_endpoints set failing_since = null where id = ${d.endpointId} and failing_since is not null`,
          tx,
        );
      });
      return 'delivered';
    }
    const wait = retryDelay(cfg.webhookRetrySchedule, d.attempts);
    const giveUp = Date.now() + wait - eventCreatedAt.getTime() > cfg.webhookGiveUpAfterMs;
    return ctx.database.db.transaction(async (tx) => {
      await markAttemptFailed(ctx.database, tx, {
        ...d,
        status: out.status,
        response,
        error: out.error,
        waitMs: wait,
        giveUp,
      });
      // An endpoint that has failed everything for the whole give-up window is disabled.
      const ep = await ctx.database.rows<{ status: string; dead: boolean }>(
        sql`update webhook_endpoints set failing_since = coalesce(failing_since, now()) where id = ${d.endpointId}
            returning status, failing_since < now() - make_interval(secs => ${cfg.webhookGiveUpAfterMs / 1000}) as dead`,
        tx,
      );
      if (ep[0]?.dead === true && ep[0]?.status === 'enabled') {
        const reason = `every delivery failed for ${Math.round(cfg.webhookGiveUpAfterMs / 3_600_000)} h`;
        await disableEndpoint(ctx.database, tx, d.endpointId, reason);
        await failPendingDeliveries(ctx.database, tx, d.endpointId, 'endpoint disabled');
        await appendEvent(ctx.database, tx, {
          type: 'webhook_endpoint.disabled',
          data: { endpointId: d.endpointId, reason },
        });
        log.warn({ endpointId: d.endpointId, reason }, 'webhook endpoint disabled');
      }
      return giveUp ? 'failed' : 'retried';
    });
  }

  return {
    deliverDue,
    async drain() {
      // What is due when the drain starts, each at most once: a retry it schedules waits for
      // the next drain (or the daemon), so a receiver that is down cannot keep it running.
      await sequenceEvents(ctx.database); // fan out what has committed, then fix the horizon
      const rows = await ctx.database.rows<{ t: Date }>(sql`select clock_timestamp() as t`);
      const dueBy = rows[0]!.t;
      const total = { delivered: 0, retried: 0, failed: 0 };
      for (;;) {
        const s = await deliverDue({ limit: 256, dueBy });
        total.delivered += s.delivered;
        total.retried += s.retried;
        total.failed += s.failed;
        if (s.claimed === 0) return total;
      }
    },
    close: () => agent.close(),
  };
}
