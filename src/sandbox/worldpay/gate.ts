import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { WorldpayState } from './worldpayState.js';

// What every Worldpay-facing request passes first, whichever API it speaks (v6 under /payments,
// v7 under /cardPayments): a correlation id, the configured latency, the rate limit (one window
// for the whole server) and Basic auth.

export interface GateOptions {
  state: WorldpayState;
  username: string;
  password: string;
  latencyMs: number;
  requestsPerSecond?: number;
}

/** The gate's check; `responseType` is the media type its 401 and 429 answers carry. */
export type WorldpayGate = (
  request: FastifyRequest,
  reply: FastifyReply,
  responseType: string,
) => Promise<FastifyReply | undefined>;

export function createWorldpayGate(options: GateOptions): WorldpayGate {
  const { state } = options;
  const expectedAuth = 'Basic ' + Buffer.from(`${options.username}:${options.password}`).toString('base64');
  let windowSecond = 0;
  let windowCount = 0;

  return async (request, reply, responseType) => {
    reply.header('wp-correlationid', randomUUID());
    state.countRequest();
    if (options.latencyMs > 0) await sleep(options.latencyMs);
    if (options.requestsPerSecond !== undefined) {
      const second = Math.floor(Date.now() / 1000);
      if (second !== windowSecond) {
        windowSecond = second;
        windowCount = 0;
      }
      windowCount += 1;
      if (windowCount > options.requestsPerSecond) {
        state.countThrottled();
        return reply
          .code(429)
          .type(responseType)
          .header('retry-after', '1')
          .send({ errorName: 'tooManyRequests', message: 'Request rate limit exceeded.' });
      }
    }
    if (request.headers.authorization !== expectedAuth) {
      return reply
        .code(401)
        .type(responseType)
        .send({ errorName: 'accessDenied', message: 'Access to the requested resource has been denied' });
    }
    return undefined;
  };
}
