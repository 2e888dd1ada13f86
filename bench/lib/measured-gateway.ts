import type { Gateway } from '../../src/gateways/types.ts';
import { createHistogram, type Histogram } from './histogram.ts';

export interface GatewayTimings {
  /** Authorization start to settle answer, per charge. */
  perCharge: Histogram;
  /** The authorization request alone, and the settle request alone: the rest of a charge is rebill's. */
  authorize: Histogram;
  settle: Histogram;
  /** performance.now() of the first request and of the last answer, or null. */
  first: number | null;
  last: number | null;
  requests: number;
}

/**
 * Wrap a gateway to time each charge from the moment its authorization is sent to the moment
 * its settle is answered, keyed by payment id; entries leave the map at the settle, so memory
 * stays flat over a long run.
 */
export function measuredGateway(inner: Gateway): { gateway: Gateway; timings: GatewayTimings } {
  const started = new Map<string, number>();
  const timings: GatewayTimings = {
    perCharge: createHistogram(),
    authorize: createHistogram(),
    settle: createHistogram(),
    first: null,
    last: null,
    requests: 0,
  };
  const gateway: Gateway = {
    name: inner.name,
    async authorize(req) {
      const t = performance.now();
      timings.first ??= t;
      timings.requests++;
      const r = await inner.authorize(req);
      if (r.outcome === 'authorized') started.set(r.paymentId, t);
      timings.last = performance.now();
      timings.authorize.record(timings.last - t);
      return r;
    },
    async action(req) {
      timings.requests++;
      const sent = performance.now();
      const r = await inner.action(req);
      const now = performance.now();
      timings.settle.record(now - sent);
      timings.last = now;
      const t = started.get(req.paymentId);
      if (t !== undefined) {
        started.delete(req.paymentId);
        timings.perCharge.record(now - t);
      }
      return r;
    },
    query: (p) => inner.query(p),
    queryByReference: (ref, entity) => inner.queryByReference(ref, entity),
    close: () => inner.close(),
  };
  return { gateway, timings };
}
