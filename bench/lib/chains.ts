import { Pool } from 'undici';

export interface Chain {
  chainId: string;
  href: string;
}

/**
 * Start `n` recurring chains at the sandbox, as `n` customers verifying a card would: each
 * gives the first `payments:recurringAuthorize` link of its chain.
 */
export async function verifyChains(
  sandboxUrl: string,
  n: number,
  opts: { concurrency?: number; body?: (i: number) => Record<string, unknown> } = {},
): Promise<Chain[]> {
  const pool = new Pool(sandboxUrl, { connections: opts.concurrency ?? 16 });
  const out: Chain[] = new Array(n);
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: Math.min(n, opts.concurrency ?? 16) }, async () => {
        while (next < n) {
          const i = next++;
          const res = await pool.request({
            path: '/_sandbox/verifications',
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(opts.body?.(i) ?? {}),
          });
          if (res.statusCode !== 200) throw new Error(`verification answered ${res.statusCode}`);
          out[i] = (await res.body.json()) as Chain;
        }
      }),
    );
  } finally {
    await pool.close();
  }
  return out;
}
