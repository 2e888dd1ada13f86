import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker } from '../../bench/lib/worker-cli.ts';
import { openApp } from '../../src/app.ts';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { fixedClock } from '../../src/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { createDatabase } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { silentLogger } from '../../src/logger.ts';
import { type Sandbox, startSandbox } from '../../src/sandbox/server.ts';
import { rebillBin, runCli } from '../support/cli.ts';
import { clusterSkipReason, type Pair, startPair } from '../support/clusters.ts';

const T = '2027-01-10T01:00:00Z';
const MANDATES = 40;
const skip = clusterSkipReason();

/**
 * PostgreSQL fails over under a billing run, on two clusters the test makes itself, with
 * DATABASE_URL naming both hosts (target_session_attrs=primary). Whatever the surviving
 * database remembers, the gateway remembers the rest: no charge is authorized twice, every
 * authorization at the gateway ends settled and recorded in the surviving database, and no
 * charge is stopped because its reference was already used.
 */
describe.skipIf(skip !== undefined)(
  `PostgreSQL failover under a run${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let sandbox: Sandbox;
    beforeAll(async () => {
      sandbox = await startSandbox({ port: 0, latencyMs: 15 });
    });
    afterAll(async () => sandbox?.close());

    const env = (url: string): Record<string, string> => ({
      DATABASE_URL: url,
      WORLDPAY_URL: sandbox.url,
      WORLDPAY_USERNAME: 'sandbox',
      WORLDPAY_PASSWORD: 'sandbox',
      WORLDPAY_ENTITY: 'default',
      REBILL_EVENT_LAG_MINUTES: '0',
      REBILL_ALLOW_FUTURE_RUNS: '1',
      REBILL_LOG_LEVEL: 'silent',
      WORLDPAY_TIMEOUT_MS: '2000',
      REBILL_BATCH_SIZE: '10',
      REBILL_CONCURRENCY: '2',
      REBILL_LEASE_SECONDS: '5',
    });

    /** A pair of clusters whose database holds `MANDATES` monthly mandates due at T, tagged. */
    async function pairWithMandates(tag: string): Promise<{ pair: Pair; prefixes: string[] }> {
      const ids: number[] = [];
      const pair = await startPair('rebill', async (url) => {
        const database = await createDatabase({ databaseUrl: url, maxConnections: 2 });
        await migrate(database);
        const app = await openApp(loadConfig(env(url)), {
          database,
          clock: fixedClock(new Date(T)),
          logger: silentLogger,
        });
        for (let i = 0; i < MANDATES; i++) {
          const res = await request(`${sandbox.url}/_sandbox/verifications`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{}',
          });
          const v = (await res.body.json()) as { href: string };
          const m = await createMandate(app, {
            customerRef: `${tag}-${i}`,
            intent: 'subscription',
            amount: 1000 + i,
            currency: 'GBP',
            narrative: 'Failover test',
            interval: '1 month',
            start: new Date(T),
            credential: { link: v.href },
          });
          ids.push(m.id);
        }
        await app.close();
        await database.close();
      });
      // Mandate ids repeat across the two scenarios' databases: each has its own reference prefix.
      return { pair, prefixes: ids.map((id) => `${tag}-${id}-`) };
    }

    /** A run started as a child process; resolves once the gateway has authorized `n` of `prefix`. */
    async function runUntil(url: string, prefix: string, n: number) {
      const worker = startWorker({ argv: [rebillBin], dispose: () => {} }, ['run', '--at', T, '--json'], {
        ...env(url),
        REBILL_REFERENCE_PREFIX: prefix,
      });
      const deadline = Date.now() + 30_000;
      while (authorized(prefix).length < n) {
        if (Date.now() > deadline) throw new Error(`run did not reach ${n} authorizations`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return worker;
    }

    const authorized = (prefix: string) =>
      sandbox
        .ledger()
        .filter((e) => e.op === 'authorize' && e.outcome === 'authorized')
        .filter((e) => e.transactionReference?.startsWith(`${prefix}-`));

    /** The promises the issue names, checked against the gateway's ledger and the surviving database. */
    async function expectWhole(pair: Pair, prefix: string) {
      const byRef = new Map<string, number>();
      for (const e of authorized(prefix))
        byRef.set(e.transactionReference!, (byRef.get(e.transactionReference!) ?? 0) + 1);
      // One authorization per charge: one reference per (mandate, cycle), each authorized once.
      const cycles = [...byRef.keys()].map((r) => r.split('-').slice(0, 3).join('-'));
      expect(new Set(cycles).size).toBe(cycles.length);
      expect([...byRef.values()].every((n) => n === 1)).toBe(true);
      // A charge whose lease the failed run still held waits for the next run: not authorized yet.
      expect(byRef.size).toBeGreaterThanOrEqual(MANDATES / 2);
      const database = await createDatabase({ databaseUrl: pair.url('rebill'), maxConnections: 1 });
      try {
        const rows = await database.rows<{ reference: string; state: string }>(
          sql`select a.transaction_reference as reference, c.state from charges c
              join attempts a on a.id = c.authorized_attempt_id`,
        );
        const recorded = new Map(rows.map((r) => [r.reference, r.state]));
        for (const ref of byRef.keys()) expect(recorded.get(ref), ref).toBe('settled');
        const stopped = await database.rows<{ n: number }>(
          sql`select count(*)::int as n from charges where state in ('stopped', 'needs_new_credential', 'failed')`,
        );
        expect(stopped[0]?.n).toBe(0);
        const settles = sandbox
          .ledger()
          .filter(
            (e) =>
              e.op === 'settle' &&
              e.outcome === 'accepted' &&
              e.transactionReference?.startsWith(`${prefix}-`),
          );
        expect(settles).toHaveLength(byRef.size);
      } finally {
        await database.close();
      }
    }

    it('a streaming standby promoted in the middle of a run', async () => {
      const { pair } = await pairWithMandates('fa');
      try {
        const run = await runUntil(pair.url('rebill'), 'fa', 10);
        await pair.primary.stop('immediate');
        await pair.standby.promote();
        const first = await run.done;
        // The run carries on through the new primary or fails on the lost connection; either way
        // the next run finishes the rest.
        expect(first.signal).toBeNull();
        // A run that lost a commit to the failover (it failed, or it carried on and only that
        // commit was lost) leaves that charge's lease behind: the next run waits it out.
        await new Promise((r) => setTimeout(r, 5_500));
        const next = await runCli(['run', '--at', T, '--follow-settlements', '--json'], {
          ...env(pair.url('rebill')),
          REBILL_REFERENCE_PREFIX: 'fa',
        });
        expect(next.code, next.stderr).toBe(0);
        await expectWhole(pair, 'fa');
      } finally {
        await pair.dispose();
      }
    }, 90_000);

    it('a standby that had stopped replicating, promoted after part of a run', async () => {
      const { pair } = await pairWithMandates('fb');
      try {
        // The standby stops before the run: everything the run writes on the primary is lost.
        await pair.standby.stop('fast');
        const run = await runUntil(pair.url('rebill'), 'fb', 20);
        await pair.primary.stop('immediate');
        run.kill();
        await run.done;
        await pair.standby.start();
        await pair.standby.promote();
        const next = await runCli(['run', '--at', T, '--follow-settlements', '--json'], {
          ...env(pair.url('rebill')),
          REBILL_REFERENCE_PREFIX: 'fb',
        });
        expect(next.code, next.stderr).toBe(0);
        const report = JSON.parse(next.stdout) as { counts: { adopted: number; stopped: number } };
        expect(report.counts.adopted).toBeGreaterThanOrEqual(20);
        expect(report.counts.stopped).toBe(0);
        await expectWhole(pair, 'fb');
      } finally {
        await pair.dispose();
      }
    }, 90_000);
  },
);
