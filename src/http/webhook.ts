import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { receivePaymentEvent } from '../billing/charge/follow.ts';
import type { BillingContext } from '../billing/context.ts';
import { disputeDetails } from '../billing/disputes/record.ts';
import { receivePaypalEvent } from '../billing/paypal/webhook.ts';
import { keepUnmatchedEvent } from '../billing/sql/inbox.ts';
import { ValidationError } from '../errors.ts';
import { normalisePaymentStatus } from '../gateways/worldpay/status.ts';
import type { Metrics } from '../metrics.ts';

export const WEBHOOK_PATH = '/webhooks/worldpay';
/** At most this many signatures are checked, in a header of at most this many characters. */
const MAX_SIGNATURES = 8;
const MAX_SIGNATURE_HEADER = 2048;
const MEDIA_TYPES = ['application/vnd.worldpay.events-v1.hal+json', 'application/json'];

/**
 * Check `Event-Signature: {keyId}/{hashFunction}/{hex}` (possibly several, comma-separated, in
 * any order) against the raw body. Signatures whose key id has no configured secret are
 * skipped, so a rotation works by configuring the new key beside the old one.
 */
export function verifySignature(
  raw: Buffer,
  header: string | undefined,
  secrets: Map<string, string>,
): boolean {
  // Bounded before any HMAC is computed: a rotation needs two entries, not two hundred.
  if (!header || header.length > MAX_SIGNATURE_HEADER) return false;
  for (const part of header.split(',', MAX_SIGNATURES)) {
    const [keyId, fn, hex] = part.trim().split('/');
    if (!keyId || !fn || !hex || fn.toUpperCase() !== 'SHA256' || !/^[0-9a-fA-F]{64}$/.test(hex)) continue;
    const secret = secrets.get(keyId);
    if (secret === undefined) continue;
    const expected = createHmac('sha256', secret).update(raw).digest();
    if (timingSafeEqual(expected, Buffer.from(hex, 'hex'))) return true;
  }
  return false;
}

interface EventBody {
  eventId?: unknown;
  eventTimestamp?: unknown;
  eventDetails?: { transactionReference?: unknown; type?: unknown; reference?: unknown };
}

export type WebhookOutcome =
  | 'applied'
  | 'recorded'
  | 'duplicate'
  | 'unknown_reference'
  | 'bad_signature'
  | 'not_configured'
  | 'bad_request';

/**
 * POST /webhooks/worldpay. Authenticated by signature, not by bearer token. Answers 200 for
 * anything well-formed and signed, even an event for a payment rebill does not know, so that
 * Worldpay does not redeliver it forever; the event is persisted (deduped on eventId) and
 * applied in the same request (one short transaction).
 */
export function webhookRoutes(ctx: BillingContext, metrics?: Metrics) {
  const secrets = ctx.config.webhook.secrets;
  return async (app: FastifyInstance) => {
    // The signature covers the raw bytes: keep them (this plugin's parsers only).
    for (const type of MEDIA_TYPES) {
      if (app.hasContentTypeParser(type)) app.removeContentTypeParser(type);
      app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: 1024 * 1024 }, (_req, body, done) =>
        done(null, body),
      );
    }
    app.post(WEBHOOK_PATH, { config: { auth: 'signature' } }, async (req, reply) => {
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.from('');
      const log = ctx.logger.child({ webhook: 'worldpay' });
      const answer = (status: number, outcome: WebhookOutcome, message?: string) => {
        metrics?.webhook(outcome);
        return reply
          .code(status)
          .send(
            status === 200
              ? { ok: true, outcome }
              : { error: { code: outcome, message: message ?? outcome } },
          );
      };
      // Fail closed: without secrets nobody's events are accepted, unless unsigned ones were
      // asked for by name (a sandbox, a test).
      if (secrets.size === 0 && !ctx.config.webhook.allowUnsigned) {
        log.error('webhook refused: WORLDPAY_WEBHOOK_SECRETS is not set');
        return answer(
          503,
          'not_configured',
          'webhook signatures are not configured (WORLDPAY_WEBHOOK_SECRETS); set WORLDPAY_WEBHOOK_ALLOW_UNSIGNED=1 to accept unsigned events',
        );
      }
      if (
        secrets.size > 0 &&
        !verifySignature(raw, req.headers['event-signature'] as string | undefined, secrets)
      ) {
        log.warn('webhook rejected: missing or wrong Event-Signature');
        return answer(400, 'bad_signature', 'Event-Signature missing or not valid for any configured key');
      }
      let body: EventBody;
      try {
        body = JSON.parse(raw.toString('utf8')) as EventBody;
      } catch {
        return answer(400, 'bad_request', 'body is not JSON');
      }
      const eventId = typeof body?.eventId === 'string' ? body.eventId : undefined;
      const reference = body?.eventDetails?.transactionReference;
      const type = body?.eventDetails?.type;
      if (!eventId || typeof reference !== 'string' || typeof type !== 'string')
        return answer(
          400,
          'bad_request',
          'eventId, eventDetails.transactionReference and eventDetails.type are required',
        );
      const occurred = typeof body.eventTimestamp === 'string' ? new Date(body.eventTimestamp) : undefined;
      const event = {
        eventId,
        transactionReference: reference,
        type,
        payload: body,
        occurredAt: occurred && !Number.isNaN(occurred.getTime()) ? occurred : undefined,
      };
      const status = normalisePaymentStatus(type);
      if (status === 'chargedBack' || status === 'informationRequested') {
        // Checked before anything is written: a malformed amount is refused, naming its field.
        try {
          disputeDetails(body.eventDetails);
        } catch (err) {
          if (err instanceof ValidationError) return answer(400, 'bad_request', err.message);
          throw err;
        }
      }
      // A type Worldpay added after this list was written is kept (payment_events, raw) and
      // answered 200 like any other, never applied: the operator hears of it here.
      if (status === 'other')
        log.warn(
          { eventId, transactionReference: reference, type },
          'webhook of an unknown event type kept, not applied',
        );
      const card = await receivePaymentEvent(ctx, event);
      // Not a card payment's: perhaps a PayPal payment's, by its refund reference or transactionReference.
      const refundRef = body.eventDetails?.reference;
      const out =
        card.outcome === 'unknown_reference'
          ? await receivePaypalEvent(ctx, {
              ...event,
              reference: typeof refundRef === 'string' ? refundRef : undefined,
            })
          : card;
      if (out.outcome === 'unknown_reference') {
        const kept = await keepUnmatchedEvent(ctx.database, event);
        log.warn(
          { eventId, transactionReference: reference, type, kept },
          'webhook for an unknown transaction reference kept, not applied',
        );
        return answer(200, 'unknown_reference');
      }
      if (out.outcome === 'duplicate') {
        log.info({ eventId, ...out }, 'webhook redelivered: already applied');
        return answer(200, 'duplicate');
      }
      log.info({ eventId, transactionReference: reference, type, ...out }, 'webhook event recorded');
      return answer(200, out.outcome);
    });
  };
}
