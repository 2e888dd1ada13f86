import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { sql } from 'drizzle-orm';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import type { BillingContext } from '../billing/context.ts';
import { freeText, parseInput } from '../billing/mandates/schemas.ts';
import { failPendingDeliveries, removeEndpointRow, resendDeliveryRow } from '../billing/sql/webhooks.ts';
import type { webhookDeliveries, webhookEndpoints } from '../db/schema.ts';
import type { RawRow } from '../db/values.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import { appendEvent } from './append.ts';
import { sequenceEvents } from './sequence.ts';
import { isEventType } from './types.ts';

/**
 * Addresses a webhook must not reach unless REBILL_WEBHOOK_ALLOW_INSECURE=1: anything ipaddr.js
 * does not classify as plain `unicast` (loopback, the private ranges, link-local, where cloud
 * metadata lives at 169.254.169.254, CGNAT, multicast, reserved and documentation ranges, the
 * unspecified address, unique-local and site-local IPv6). An IPv6 address that reaches IPv4
 * space through a transition mechanism is judged by the IPv4 address it carries (IPv4-mapped
 * `::ffff:0:0/96`, SIIT `::ffff:0:0:0/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`); the ones
 * whose IPv4 address cannot be told (local-use NAT64 `64:ff9b:1::/48`, Teredo `2001::/32`) and
 * the deprecated IPv4-compatible `::/96` are refused. A merchant's endpoint is on the internet;
 * anything else is a way into the network rebill runs in.
 */
export function isBlockedAddress(address: string): boolean {
  if (isIP(address) === 0) return false;
  const ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv4') return ip.range() !== 'unicast';
  const v6 = ip as ipaddr.IPv6;
  const v4 = embeddedIPv4(v6);
  if (v4) return v4.range() !== 'unicast';
  // ::/96 holds IPv4-compatible addresses (and ::, ::1, which range() names already)
  return v6.range() !== 'unicast' || v6.parts.slice(0, 6).every((p) => p === 0);
}

/** The IPv4 address an IPv6 one carries when a transition range says where it is, or undefined. */
function embeddedIPv4(v6: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const p = v6.parts;
  const from = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  switch (v6.range()) {
    case 'ipv4Mapped':
    case 'rfc6145':
      return from(p[6]!, p[7]!);
    case 'rfc6052':
      // 64:ff9b::/96 only; the local-use 64:ff9b:1::/48 may embed it anywhere
      return p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0 ? from(p[6]!, p[7]!) : undefined;
    case '6to4':
      return from(p[1]!, p[2]!);
    default:
      return undefined;
  }
}

/** An endpoint URL as rebill will call it, or a ValidationError naming `url`. */
export function checkEndpointUrl(raw: string, allowInsecure: boolean): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ValidationError('url', 'must be an absolute URL');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw new ValidationError('url', 'must be an https URL');
  if (u.username || u.password) throw new ValidationError('url', 'must not carry a user name or password');
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const local = host === 'localhost' || host.endsWith('.localhost') || isBlockedAddress(host);
  if (!allowInsecure) {
    if (u.protocol !== 'https:')
      throw new ValidationError(
        'url',
        'must be an https URL (http is allowed to loopback only with REBILL_WEBHOOK_ALLOW_INSECURE=1)',
      );
    if (local)
      throw new ValidationError(
        'url',
        'is a loopback, private or link-local address; webhooks go to the internet (REBILL_WEBHOOK_ALLOW_INSECURE=1 allows it for tests)',
      );
  } else if (u.protocol === 'http:' && !local) {
    throw new ValidationError('url', 'http is allowed to loopback and private addresses only; use https');
  }
  u.hash = '';
  return u.toString();
}

const text = (max: number) =>
  freeText(z.string().max(max), 'looks like a card number (the value is not repeated)');

export const endpointInputSchema = z
  .object({
    url: text(2048),
    events: z
      .array(z.string().max(64))
      .min(1, 'subscribe to at least one event type, or ["*"]')
      .max(64)
      .superRefine((list, ctx) => {
        for (const [i, t] of list.entries())
          if (t !== '*' && !isEventType(t))
            ctx.addIssue({
              code: 'custom',
              path: [i],
              message: 'not an event type (GET /openapi.json lists them)',
            });
      }),
    description: text(256).optional(),
  })
  .strict();

export interface EndpointView {
  id: number;
  url: string;
  events: string[];
  description: string | null;
  status: string;
  statusReason: string | null;
  failingSince: string | null;
  /** While a rotated-out secret still signs beside the current one. */
  previousSecretExpiresAt: string | null;
  createdAt: string;
}

type EndpointRow = RawRow<typeof webhookEndpoints>;

function toEndpointView(r: EndpointRow): EndpointView {
  const prev = r.previous_secret_expires_at;
  return {
    id: r.id,
    url: r.url,
    events: r.events ?? [],
    description: r.description,
    status: r.status,
    statusReason: r.status_reason,
    failingSince: r.failing_since?.toISOString() ?? null,
    previousSecretExpiresAt: prev && prev.getTime() > Date.now() ? prev.toISOString() : null,
    createdAt: r.created_at.toISOString(),
  };
}

const newSecret = () => `whsec_${randomBytes(32).toString('base64url')}`;

/** A new endpoint; its signing secret is in this answer and never shown again. */
export async function createEndpoint(
  ctx: BillingContext,
  raw: unknown,
): Promise<EndpointView & { secret: string }> {
  const input = parseInput(endpointInputSchema, raw);
  const url = checkEndpointUrl(input.url, ctx.config.events.webhookAllowInsecure);
  const events = [...new Set(input.events)];
  const secret = newSecret();
  const rows = await ctx.database.rows<EndpointRow>(
    sql`insert into webhook_endpoints (url, events, description, secret)
        values (${url}, ${`{${events.map((e) => `"${e}"`).join(',')}}`}::text[], ${input.description ?? null}, ${secret})
        returning *`,
  );
  return { ...toEndpointView(rows[0]!), secret };
}

export async function listEndpoints(ctx: BillingContext): Promise<{ items: EndpointView[] }> {
  const rows = await ctx.database.rows<EndpointRow>(
    sql`select * from webhook_endpoints where status <> 'removed' order by id`,
  );
  return { items: rows.map(toEndpointView) };
}

export async function getEndpoint(ctx: BillingContext, id: number): Promise<EndpointView> {
  const rows = await ctx.database.rows<EndpointRow>(
    sql`select * from webhook_endpoints where id = ${id} and status <> 'removed'`,
  );
  if (!rows[0]) throw new NotFoundError('webhook endpoint', id);
  return toEndpointView(rows[0]);
}

/** Remove an endpoint: nothing more is delivered to it; what was waiting ends as failed. */
export async function removeEndpoint(ctx: BillingContext, id: number): Promise<EndpointView> {
  const view = await ctx.database.db.transaction(async (tx) => {
    const row = await removeEndpointRow<EndpointRow>(ctx.database, tx, id);
    if (!row) throw new NotFoundError('webhook endpoint', id);
    await failPendingDeliveries(ctx.database, tx, id, 'endpoint removed', { releaseLease: true });
    return toEndpointView(row);
  });
  return view;
}

/** What `PATCH /v1/webhook-endpoints/{id}` may change: the event types it receives, its description. */
export const endpointUpdateSchema = endpointInputSchema
  .pick({ events: true, description: true })
  .partial()
  .strict()
  .refine((b) => b.events !== undefined || b.description !== undefined, {
    message: 'give events or description to change',
  });

/** The event types an endpoint receives (from the next event on), or its description. */
export async function updateEndpoint(ctx: BillingContext, id: number, raw: unknown): Promise<EndpointView> {
  const input = parseInput(endpointUpdateSchema, raw);
  const events = input.events ? [...new Set(input.events)] : null;
  const rows = await ctx.database.rows<EndpointRow>(
    sql`update webhook_endpoints
           set events = coalesce(${events === null ? null : `{${events.map((e) => `"${e}"`).join(',')}}`}::text[], events),
               description = ${input.description === undefined ? sql`description` : input.description},
               updated_at = now()
         where id = ${id} and status <> 'removed' returning *`,
  );
  if (!rows[0]) throw new NotFoundError('webhook endpoint', id);
  return toEndpointView(rows[0]);
}

/** A new secret; the old one keeps signing beside it for 24 hours. */
export async function rotateSecret(
  ctx: BillingContext,
  id: number,
): Promise<EndpointView & { secret: string }> {
  const secret = newSecret();
  const rows = await ctx.database.rows<EndpointRow>(
    sql`update webhook_endpoints set previous_secret = secret, previous_secret_expires_at = now() + interval '24 hours',
               secret = ${secret}, updated_at = now()
         where id = ${id} and status <> 'removed' returning *`,
  );
  if (!rows[0]) throw new NotFoundError('webhook endpoint', id);
  return { ...toEndpointView(rows[0]), secret };
}

/** A `ping` event for this endpoint alone; delivered like any other. */
export async function testEndpoint(ctx: BillingContext, id: number): Promise<{ eventId: string }> {
  const ep = await getEndpoint(ctx, id);
  if (ep.status !== 'enabled') throw new ConflictError(`webhook endpoint ${id} is ${ep.status}`);
  await appendEvent(ctx.database, undefined, {
    type: 'ping',
    endpointId: id,
    data: { endpointId: id, message: 'a test event from rebill' },
  });
  await sequenceEvents(ctx.database);
  const rows = await ctx.database.rows<{ id: number | null }>(
    sql`select max(event_id) as id from webhook_deliveries where endpoint_id = ${id}`,
  );
  return { eventId: String(rows[0]?.id) };
}

export interface DeliveryView {
  id: number;
  endpointId: number;
  eventId: string;
  eventType: string | null;
  mandateId: number | null;
  state: string;
  attempts: number;
  nextAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  lastResponse: string | null;
  lastAttemptAt: string | null;
  deliveredAt: string | null;
}

/** A delivery, with its event's type where the event is still kept. */
type DeliveryRow = RawRow<typeof webhookDeliveries> & { type?: string | null };

function toDeliveryView(r: DeliveryRow): DeliveryView {
  return {
    id: r.id,
    endpointId: r.endpoint_id,
    eventId: String(r.event_id),
    eventType: r.type ?? null,
    mandateId: r.mandate_id,
    state: r.state,
    attempts: r.attempts,
    nextAttemptAt: r.state === 'pending' ? r.next_attempt_at.toISOString() : null,
    lastStatus: r.last_status,
    lastError: r.last_error,
    lastResponse: r.last_response,
    lastAttemptAt: r.last_attempt_at?.toISOString() ?? null,
    deliveredAt: r.delivered_at?.toISOString() ?? null,
  };
}

export const DELIVERY_STATES = ['pending', 'delivered', 'failed'] as const;

/** An endpoint's deliveries, newest first (keyset on id). */
export async function listDeliveries(
  ctx: BillingContext,
  endpointId: number,
  f: { state?: string | undefined; limit?: number | undefined; before?: number | undefined } = {},
): Promise<{ items: DeliveryView[]; next: number | null }> {
  await getEndpoint(ctx, endpointId);
  const limit = f.limit ?? 50;
  const rows = await ctx.database.rows<DeliveryRow>(
    sql`select d.*, e.type from webhook_deliveries d left join events e on e.id = d.event_id
         where d.endpoint_id = ${endpointId}
           ${f.state ? sql`and d.state = ${f.state}` : sql``}
           ${f.before !== undefined ? sql`and d.id < ${f.before}` : sql``}
         order by d.id desc limit ${limit}`,
  );
  const items = rows.map(toDeliveryView);
  return { items, next: items.length === limit ? items[items.length - 1]!.id : null };
}

/** Deliver an event to an endpoint again, now (after a receiver fixed a bug, say). */
export async function resendDelivery(ctx: BillingContext, deliveryId: number): Promise<DeliveryView> {
  const row = await resendDeliveryRow<DeliveryRow>(ctx.database, deliveryId);
  if (!row) {
    const exists = await ctx.database.rows(sql`select 1 from webhook_deliveries where id = ${deliveryId}`);
    if (exists.length === 0) throw new NotFoundError('webhook delivery', deliveryId);
    throw new ConflictError(`webhook delivery ${deliveryId} belongs to an endpoint that is not enabled`);
  }
  return toDeliveryView(row);
}
