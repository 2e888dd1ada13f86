import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startNode } from '../../bench/lib/worker-cli.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';

const soak = fileURLToPath(new URL('../../bench/soak.ts', import.meta.url));

function runSoak(args: string[]) {
  return startNode(['--import', 'tsx', soak, ...args], { ...process.env }).done;
}

/**
 * The small fault soak CI runs: 500 mandates of every intent over two months of business
 * time, faults at 10% of requests, 20 workers SIGKILLed, two workers at once part of the time.
 * Every invariant must hold: each violation count is printed and must be zero.
 */
/** The card APIs the soak bills: v6 chains alone, and half the cards Card Payments v7 beside them. */
const CARDS = [
  { cards: 'v6 chains', v7Share: '0' },
  { cards: 'v6 chains beside v7 cards', v7Share: '0.5' },
];

describe.skipIf(!hasServer).each(CARDS)(
  'fault soak (worker processes sharing PostgreSQL, $cards)',
  ({ v7Share }) => {
    it('bills two months through faults and kills with zero violations', { timeout: 600_000 }, async () => {
      const r = await runSoak([
        '--v7-share',
        v7Share,
        '--mandates',
        '500',
        '--kills',
        '20',
        '--fault-rate',
        '0.1',
        '--months',
        '2',
        '--step-hours',
        '96',
        // CI must not leave result files in the working tree
        '--no-save',
      ]);
      const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
        violations: Record<string, number>;
        workers: { kills: number; twoWorkerSteps: number };
        operator: { paused: number; resumed: number; cancelled: number };
        counts: { gatewayAuthorizations: number; gatewayRefusals: number; v7Authorizations: number };
        injected: Record<string, number>;
        examples: Record<string, string[]>;
      };
      // the soak really exercised something: kills landed, faults were injected, charges went through
      expect(out.workers.kills).toBe(20);
      expect(out.counts.gatewayAuthorizations).toBeGreaterThan(500);
      expect(out.counts.gatewayRefusals).toBeGreaterThan(0);
      // v7 cards were charged (each with its first scheme reference: a violation otherwise), or none
      if (v7Share === '0') expect(out.counts.v7Authorizations).toBe(0);
      else expect(out.counts.v7Authorizations).toBeGreaterThan(100);
      expect(out.violations).toHaveProperty('v7WithoutFirstSchemeReference');
      expect(Object.values(out.injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      // and an operator paused and cancelled mandates while workers ran and were killed
      expect(out.operator.paused + out.operator.cancelled).toBeGreaterThan(0);
      expect(out.violations).toHaveProperty('sentWhileHeld');
      const zero = Object.fromEntries(Object.keys(out.violations).map((k) => [k, 0]));
      expect(out.violations, JSON.stringify(out.examples, null, 1)).toEqual(zero);
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
    });
  },
);

describe('fault soak set-up', () => {
  it('refuses to run without PostgreSQL, with exit 2 and the reason', async () => {
    const { DATABASE_URL: _, ...env } = process.env;
    const { code, stderr } = await startNode(['--import', 'tsx', soak], env).done;
    expect(code).toBe(2);
    expect(stderr).toMatch(/DATABASE_URL must name a PostgreSQL server/);
  });
});

describe.skipIf(hasServer)('fault soak', () => {
  it.skip(`worker processes: ${serverSkipReason}`, () => {});
});
