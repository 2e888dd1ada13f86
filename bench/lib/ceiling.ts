import { Pool } from 'undici';
import { verifyChains } from './chains.ts';

export interface Ceiling {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** CPU of this process per request: what the bare client costs, to set rebill's CPU against. */
  cpuMsPerRequest: number;
}

const HEADERS = {
  'content-type': 'application/vnd.worldpay.payments-v6+json',
  accept: 'application/vnd.worldpay.payments-v6.hal+json',
  authorization: `Basic ${Buffer.from('sandbox:sandbox').toString('base64')}`,
};

/**
 * What the peer allows with no database and no logic: `concurrency` loops over one undici Pool
 * sending the same pair a charge sends (a recurring authorization, then its settle), for
 * `seconds`. Requests per second here is the ceiling rebill's throughput is compared with.
 */
export async function measureCeiling(
  sandboxUrl: string,
  opts: { concurrency: number; seconds: number },
): Promise<Ceiling> {
  const chains = await verifyChains(sandboxUrl, opts.concurrency);
  const origin = new URL(sandboxUrl).origin;
  const pool = new Pool(sandboxUrl, { connections: opts.concurrency, pipelining: 1 });
  const path = (href: string) => (href.startsWith(origin) ? href.slice(origin.length) : href);
  let requests = 0;
  // references are unique per entity at the sandbox, as at Worldpay: one prefix per measurement
  const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const end = started + opts.seconds * 1000;
  try {
    await Promise.all(
      chains.map(async (chain, loop) => {
        let i = 0;
        while (performance.now() < end) {
          const auth = await pool.request({
            path: path(chain.href),
            method: 'POST',
            headers: HEADERS,
            body: JSON.stringify({
              transactionReference: `ceiling-${run}-${loop}-${i++}`,
              merchant: { entity: 'default' },
              instruction: {
                narrative: { line1: 'Bench' },
                value: { amount: 500, currency: 'GBP' },
                intent: 'subscription',
              },
            }),
          });
          const body = (await auth.body.json()) as { _links?: Record<string, { href: string }> };
          requests++;
          const settle = body._links?.['payments:settle']?.href;
          if (auth.statusCode !== 201 || !settle)
            throw new Error(`ceiling authorize answered ${auth.statusCode}`);
          const res = await pool.request({
            path: path(settle),
            method: 'POST',
            headers: HEADERS,
            body: '{}',
          });
          await res.body.dump();
          requests++;
          if (res.statusCode !== 202) throw new Error(`ceiling settle answered ${res.statusCode}`);
        }
      }),
    );
  } finally {
    await pool.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    requests,
    seconds,
    requestsPerSecond: requests / seconds,
    cpuMsPerRequest: (cpu.user + cpu.system) / 1000 / requests,
  };
}
