import { createHmac } from 'node:crypto';
import { request } from 'undici';
import type { WebhookOptions } from './types.js';

// Delivers payment events the way Worldpay's events service does: signed with HMAC-SHA256 of
// the raw body, redelivered with growing delay until a 2xx. Worldpay waits 15 min growing to
// 2 h; the sandbox uses milliseconds so tests and demos see redelivery quickly.

export interface WebhookSender {
  send(body: object): void;
  stats(): { delivered: number; failedAttempts: number; pending: number };
  /** Resolves once every event sent so far was acknowledged (or given up on close). */
  drained(): Promise<void>;
  close(): Promise<void>;
}

export function signBody(raw: string, secret: string, keyId: string): string {
  return `${keyId}/SHA256/${createHmac('sha256', secret).update(raw).digest('hex')}`;
}

export function createWebhookSender(options: WebhookOptions): WebhookSender {
  const baseMs = options.retryBaseMs ?? 50;
  const maxMs = options.retryMaxMs ?? 2000;
  const keyId = options.keyId ?? '1';
  const timers = new Set<NodeJS.Timeout>();
  const inFlight = new Set<Promise<void>>();
  let delivered = 0;
  let failedAttempts = 0;
  let pending = 0;
  let closed = false;
  let waiters: Array<() => void> = [];

  function settleOne(): void {
    pending -= 1;
    if (pending > 0) return;
    const ready = waiters;
    waiters = [];
    for (const resolve of ready) resolve();
  }

  async function attempt(raw: string, signature: string, attemptNo: number): Promise<void> {
    let ok = false;
    try {
      const res = await request(options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/vnd.worldpay.events-v1.hal+json',
          'event-signature': signature,
        },
        body: raw,
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      await res.body.dump();
      ok = res.statusCode >= 200 && res.statusCode < 300;
    } catch {
      ok = false;
    }
    if (ok) {
      delivered += 1;
      settleOne();
      return;
    }
    failedAttempts += 1;
    if (closed) {
      settleOne();
      return;
    }
    const delay = Math.min(maxMs, baseMs * 2 ** attemptNo);
    const timer = setTimeout(() => {
      timers.delete(timer);
      track(attempt(raw, signature, attemptNo + 1));
    }, delay);
    timers.add(timer);
  }

  function track(promise: Promise<void>): void {
    inFlight.add(promise);
    void promise.finally(() => inFlight.delete(promise));
  }

  return {
    send(body) {
      if (closed) return;
      const raw = JSON.stringify(body);
      pending += 1;
      track(attempt(raw, signBody(raw, options.secret, keyId), 0));
    },
    stats: () => ({ delivered, failedAttempts, pending }),
    drained: () =>
      pending === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve)),
    async close() {
      closed = true;
      for (const timer of timers) {
        clearTimeout(timer);
        settleOne();
      }
      timers.clear();
      await Promise.allSettled([...inFlight]);
    },
  };
}
